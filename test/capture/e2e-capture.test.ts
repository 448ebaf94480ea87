// Transparent capture end to end: a real control plane, a workload namespace with `weft proxy --mode transparent`
// under uid 1337 and istio-iptables-style rules (src/runtime/capture/), and an unmodified curl inside it.
// - `curl http://reviews:9080/` resolves through the sidecar's DNS proxy (automatic VIP) and is routed by the
//   sidecar: the VirtualService sends everything to subset v2 and sets a request header the server echoes.
// - A server on the host side of the veth pair that is not in the registry follows the outbound traffic policy:
//   ALLOW_ANY passes (PassthroughCluster), REGISTRY_ONLY blocks (BlackHoleCluster / block_all 502).
// - The sidecar uid is not captured: its xDS connection keeps working (the REGISTRY_ONLY push arrives), and a
//   request made as uid 1337 reaches the non-mesh server directly even under REGISTRY_ONLY.
// - Inbound: a declared HTTP port goes through virtualInbound's HTTP chain, an undeclared one passes through, and a
//   port declared without a protocol is sniffed (http_inspector): HTTP through the connection manager, other bytes
//   through the TCP proxy, on the same port.
// Needs root and iptables: skipped with the reason otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import type { ChildProcess } from 'node:child_process';
import { captureSupport, PROXY_UID, startCapturedWorkload } from '../../src/runtime/capture/index.js';
import type { CapturedWorkload } from '../../src/runtime/capture/index.js';
import { MeshWorkDir, sleep, startControlPlane, WeftProcess } from '../helpers/mesh-processes.js';

/**
 * The workload's application: echoes who connected and the request headers, on 0.0.0.0:8080 and :8081; on :8082 a
 * raw TCP server that reads up to an empty line and answers, as an HTTP response, who connected and the bytes it got
 * (so both an HTTP request and other bytes can be seen arriving, and by which chain).
 */
const INBOUND_APP = `const http = require('http'); const net = require('net'); let n = 0;
for (const port of [8080, 8081]) http.createServer((q, s) => { const b = JSON.stringify({ port, remote: q.socket.remoteAddress, headers: q.headers });
  s.writeHead(200, { 'content-length': Buffer.byteLength(b) }); s.end(b); }).listen(port, '0.0.0.0', () => console.log('listening ' + ++n));
net.createServer((c) => { let got = ''; c.on('data', (d) => { got += d.toString('latin1'); if (!got.includes('\\r\\n\\r\\n')) return;
  const b = JSON.stringify({ port: 8082, remote: c.remoteAddress, got });
  c.end('HTTP/1.1 200 OK\\r\\ncontent-length: ' + Buffer.byteLength(b) + '\\r\\nconnection: close\\r\\n\\r\\n' + b); }); c.on('error', () => {}); })
  .listen(8082, '0.0.0.0', () => console.log('listening ' + ++n));`;

const FIXTURE = new URL('../../../test/fixtures/capture/mesh.yaml', import.meta.url);
const skip = captureSupport();

/** An HTTP server on `host` answering with its name and the request's headers as JSON. */
async function echoServer(host: string, name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const body = JSON.stringify({ server: name, headers: req.headers, remote: req.socket.remoteAddress });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, host, r));
  return { server, port: (server.address() as AddressInfo).port };
}

interface CurlResult {
  code: number | null;
  out: string;
  err: string;
}

/** Runs curl inside the workload namespace (as root: captured, or as `uid`). */
function curl(w: CapturedWorkload, args: string[], uid?: number): Promise<CurlResult> {
  const p = w.spawn(['curl', '-sS', '--max-time', '15', ...args], { uid, gid: uid });
  let out = '';
  let err = '';
  p.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  return new Promise((resolve) => p.once('close', (code) => resolve({ code, out, err })));
}

async function register(cpHttp: string, body: object): Promise<void> {
  const r = await fetch(`${cpHttp}/v1/workloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.ok(r.status === 200 || r.status === 201, await r.text());
}

describe('transparent capture: curl in a namespace through its sidecar', { skip }, () => {
  const dir = new MeshWorkDir('weft-capture-');
  const cp = new WeftProcess();
  let cpHttp = '';
  let w: CapturedWorkload;
  const servers: Server[] = [];
  let outside = 0;
  let sidecarLog = '';
  let app: ChildProcess | undefined;

  before(async () => {
    dir.writeConfig('mesh.yaml', readFileSync(FIXTURE, 'utf8'));
    const addrs = await startControlPlane(cp, dir.config);
    cpHttp = addrs.http;
    w = await startCapturedWorkload({
      workload: 'productpage',
      labels: { app: 'productpage' },
      xds: addrs.xds,
      workloadPorts: ['8080/http', '8082'],
      onSidecarOutput: (s) => (sidecarLog += s),
    });
    // The application in the namespace: port 8080 (declared, HTTP), 8081 (not declared), 8082 (no protocol: sniffed).
    const a = w.spawn([process.execPath, '-e', INBOUND_APP]);
    app = a;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`app not listening after 30 s: ${out}`)), 30_000);
      a.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('listening 3')) {
          clearTimeout(t);
          resolve();
        }
      });
      a.once('exit', (c) => {
        clearTimeout(t);
        reject(new Error(`app exited ${c}`));
      });
    });
    // reviews v1 and v2 and a server that is not in the mesh, on the host side of the veth pair.
    for (const v of ['v1', 'v2']) {
      const s = await echoServer(w.hostAddress, `reviews-${v}`);
      servers.push(s.server);
      await register(cpHttp, { name: `reviews-${v}`, address: w.hostAddress, labels: { app: 'reviews', version: v }, ports: { http: s.port } });
    }
    const o = await echoServer(w.hostAddress, 'outside');
    servers.push(o.server);
    outside = o.port;
  });

  after(async () => {
    app?.kill();
    await w?.close();
    await cp.stop();
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
    dir.remove();
  });

  /** Retries a curl until `ok` holds for its result (config and endpoints arrive asynchronously); bounded. */
  async function eventually(args: string[], ok: (r: CurlResult) => boolean, uid?: number): Promise<CurlResult> {
    let r: CurlResult = { code: null, out: '', err: '' };
    for (let i = 0; i < 40; i++) {
      r = await curl(w, args, uid);
      if (ok(r)) return r;
      await sleep(250);
    }
    const syncz = await fetch(`${cpHttp}/debug/syncz`).then((x) => x.text(), (e: Error) => e.message);
    const xds = await curl(w, ['http://127.0.0.1:15000/xds']);
    assert.fail(`curl ${args.join(' ')} never succeeded: exit ${r.code} ${r.err} ${r.out}\nsidecar:\n${sidecarLog.slice(-3000)}\ncontrol plane:\n${cp.log(40)}\nsyncz: ${syncz}\nsidecar xds: ${xds.out}`);
  }

  test('an unmodified curl reaches reviews by name, routed by the sidecar (subset v2 + header)', async () => {
    const r = await eventually(['http://reviews:9080/'], (x) => x.code === 0 && x.out.includes('"server"'));
    for (let i = 0; i < 5; i++) {
      const res = i === 0 ? r : await curl(w, ['http://reviews:9080/']);
      assert.equal(res.code, 0, res.err);
      const body = JSON.parse(res.out) as { server: string; headers: Record<string, string> };
      assert.equal(body.server, 'reviews-v2', 'the VirtualService routes everything to v2');
      assert.equal(body.headers['x-routed-by'], 'weft-sidecar');
      assert.ok(body.headers['x-request-id'], 'the sidecar adds a request id');
    }
    // The FQDN resolves too, to the same automatic VIP.
    const fq = await curl(w, ['http://reviews.default.svc.cluster.local:9080/']);
    assert.equal(fq.code, 0, fq.err);
    assert.equal((JSON.parse(fq.out) as { server: string }).server, 'reviews-v2');
  });

  test('ALLOW_ANY: a non-mesh address passes through; REGISTRY_ONLY: it is blocked; uid 1337 is never captured', async () => {
    const url = `http://${w.hostAddress}:${outside}/`;
    const pass = await eventually([url], (x) => x.code === 0);
    const body = JSON.parse(pass.out) as { server: string; remote: string };
    assert.equal(body.server, 'outside');
    assert.equal(body.remote, w.address, 'the passthrough connection comes from the workload namespace');

    dir.writeConfig('meshconfig.yaml', 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n');
    // The push reaches the sidecar over its (uncaptured) xDS connection; then the passthrough chain is a black hole.
    const blocked = await eventually([url], (x) => x.code !== 0);
    assert.notEqual(blocked.code, 0, 'REGISTRY_ONLY blocks the connection');
    // An HTTP port of the mesh answers a non-mesh host with the block_all route's 502.
    const mesh = await curl(w, ['-o', '/dev/null', '-w', '%{http_code}', `http://${w.hostAddress}:9080/`]);
    assert.equal(mesh.out, '502');
    // Mesh traffic still flows.
    const r = await curl(w, ['http://reviews:9080/']);
    assert.equal(r.code, 0, r.err);
    // The sidecar's uid is excluded from capture: its traffic goes straight out.
    const direct = await curl(w, [url], PROXY_UID);
    assert.equal(direct.code, 0, `uid ${PROXY_UID} is not captured: ${direct.err}`);
    assert.equal((JSON.parse(direct.out) as { server: string }).server, 'outside');
  });

  test('inbound capture: a declared port goes through virtualInbound to the app; another port passes through', async () => {
    // From the host (outside the namespace): PREROUTING redirects to 15006.
    const declared = (await (await fetch(`http://${w.address}:8080/`)).json()) as { port: number; remote: string; headers: Record<string, string> };
    assert.equal(declared.port, 8080);
    assert.equal(declared.remote, '127.0.0.1', 'the inbound sidecar connects to the app on loopback (inbound|8080||)');
    assert.ok(declared.headers['x-request-id'], 'the inbound HTTP connection manager handled the request');
    const other = (await (await fetch(`http://${w.address}:8081/`)).json()) as { port: number; remote: string; headers: Record<string, string> };
    assert.equal(other.port, 8081);
    assert.equal(other.remote, w.address, 'InboundPassthroughCluster connects to the original destination');
    assert.equal(other.headers['x-request-id'], undefined, 'passed through as TCP');
  });

  test('inbound protocol sniffing: a port without a protocol takes HTTP through the connection manager and other bytes as TCP', async () => {
    const http = (await (await fetch(`http://${w.address}:8082/sniffed`)).json()) as { port: number; remote: string; got: string };
    assert.equal(http.remote, '127.0.0.1', 'the inbound sidecar connects to the app on loopback (inbound|8082||)');
    assert.match(http.got, /^GET \/sniffed HTTP\/1\.1\r\n/);
    assert.match(http.got, /\r\nx-request-id: /i, 'sniffed as HTTP: the inbound HTTP connection manager handled the request');
    // Not HTTP (the HTTP inspector decides at once): the TCP chain relays the bytes unchanged.
    const raw = await new Promise<string>((resolve, reject) => {
      const c = connect(8082, w.address, () => c.write('PING weft\r\n\r\n'));
      let out = '';
      c.setTimeout(15_000, () => c.destroy(new Error(`no answer in 15 s: ${out}`)));
      c.on('data', (d: Buffer) => (out += d.toString('latin1')));
      c.on('end', () => resolve(out));
      c.on('error', reject);
    });
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { remote: string; got: string };
    assert.equal(body.got, 'PING weft\r\n\r\n', 'relayed byte for byte by the TCP proxy chain');
    assert.equal(body.remote, '127.0.0.1', 'through the sidecar (inbound|8082||), not passed through');
  });
});
