// Traffic to hosts the mesh does not know, from an explicit-mode sidecar (real `weft control-plane` and
// `weft proxy`, curl with the sidecar as its HTTP proxy, a Node server on 127.0.0.1 that is in no mesh config):
// - ALLOW_ANY (the default): the PassthroughCluster takes the destination from the request's authority
//   (original_dst_lb_config use_http_header on `:authority`), so `http://127.0.0.1:<port>/` reaches that server;
//   a name that is not an IP:port cannot be an original destination → 503 UH, nor can the sidecar's own listener
//   (that would loop);
// - REGISTRY_ONLY (MeshConfig outboundTrafficPolicy): Istio's block_all virtual host → 502, nothing sent; the access
//   log line is Envoy's for that direct response (no response flag, details direct_response, route block_all).
// No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { MeshWorkDir, proxyArgs, run, serviceYaml, startControlPlane, startProxyOnFreePorts, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { eventually, statValue } from '../helpers/raw-client.js';

describe('weft proxy: passthrough to hosts outside the mesh (explicit mode)', () => {
  const mesh = new MeshWorkDir('weft-passthrough-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  let outside: Server;
  let outsidePort = 0;
  let inMesh: Server;
  const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
  let outbound = 0;
  let admin = 0;

  before(async () => {
    outside = createServer((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('outside the mesh');
    });
    await new Promise<void>((r) => outside.listen(0, '127.0.0.1', r));
    outsidePort = (outside.address() as AddressInfo).port;
    inMesh = createServer((req, res) => {
      req.resume();
      res.end('in the mesh');
    });
    await new Promise<void>((r) => inMesh.listen(0, '127.0.0.1', r));
    mesh.writeConfig('mesh.yaml', yamlDocuments([serviceYaml('known', { name: 'http', port: 9080 }), workloadEntryYaml('known-1', { app: 'known' }, 'http', (inMesh.address() as AddressInfo).port)]));
    const addr = await startControlPlane(cp, mesh.config);
    ({ outbound, admin } = await startProxyOnFreePorts(proxy, (p) =>
      proxyArgs(addr.xds, 'passthrough', ['--outbound-port', String(p.outbound), '--admin-port', String(p.admin), '--health-port', String(p.health), '--stats-port', '0']),
    ));
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    for (const s of [outside, inMesh]) {
      s?.closeAllConnections();
      await new Promise<void>((r) => s?.close(() => r()));
    }
    mesh.remove();
  });

  /** curl through the sidecar as HTTP_PROXY; returns status, the flags header and the body. */
  async function viaProxy(url: string): Promise<{ status: number; flags: string; body: string }> {
    const r = await run('curl', ['-s', '-S', '-o', '-', '-w', '\n%{http_code}', '-D', '-', '--max-time', '20', '-x', `http://127.0.0.1:${outbound}`, '-H', 'x-weft-debug: 1', url]);
    assert.equal(r.status, 0, r.stderr.toString());
    const out = r.stdout.toString('latin1');
    const status = Number(out.slice(out.lastIndexOf('\n') + 1));
    const flags = /\r\nx-weft-response-flags: ([^\r\n]*)\r\n/i.exec(out)?.[1] ?? '';
    const body = out.slice(out.indexOf('\r\n\r\n') + 4, out.lastIndexOf('\n'));
    return { status, flags, body };
  }

  test('ALLOW_ANY: an IP:port destination outside the mesh is reached through the PassthroughCluster', async () => {
    const r = await viaProxy(`http://127.0.0.1:${outsidePort}/hello?x=1`);
    assert.equal(r.status, 200);
    assert.equal(r.body, 'outside the mesh');
    assert.equal(seen.at(-1)?.url, '/hello?x=1');
    assert.equal(seen.at(-1)?.headers.host, `127.0.0.1:${outsidePort}`);
    // The mesh's own services still route as before.
    assert.equal((await viaProxy('http://known:9080/')).body, 'in the mesh');
    assert.ok((await statValue(admin, 'cluster.PassthroughCluster.upstream_rq_total')) >= 1);
  });

  test('ALLOW_ANY: a host name that is not an IP:port has no original destination → 503 UH', async () => {
    const n = seen.length;
    const r = await viaProxy(`http://not-in-the-mesh.example:${outsidePort}/`);
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'UH');
    assert.equal(seen.length, n);
    assert.ok((await statValue(admin, 'cluster.PassthroughCluster.original_dst_host_invalid')) >= 1);
  });

  test("ALLOW_ANY: the sidecar's own listener as destination is refused (503 UH), not a forwarding loop", async () => {
    const before = await statValue(admin, 'http.outbound.downstream_rq_total');
    const r = await viaProxy(`http://127.0.0.1:${outbound}/loop`);
    assert.equal(r.status, 503);
    assert.equal(r.flags, 'UH');
    assert.equal(await statValue(admin, 'http.outbound.downstream_rq_total'), before + 1, 'the request entered the proxy once');
  });

  test('REGISTRY_ONLY: unknown hosts get 502 and nothing is sent; the access log shows the block_all direct response', async () => {
    const logFile = join(mesh.work, 'access.log');
    mesh.writeConfig(
      'meshconfig.yaml',
      'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n' +
        `  accessLogFile: ${logFile}\n  accessLogFormat: "%REQ(:PATH)% %RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %ROUTE_NAME% %UPSTREAM_CLUSTER%\\n"\n`,
    );
    await eventually(async () => (await viaProxy(`http://127.0.0.1:${outsidePort}/probe`)).status === 502, 'REGISTRY_ONLY to apply', 20_000);
    const n = seen.length;
    const r = await viaProxy(`http://127.0.0.1:${outsidePort}/blocked`);
    assert.equal(r.status, 502);
    assert.equal(seen.length, n, 'no request reached the outside server');
    // As Envoy under Istio: the catch-all `block_all` route's direct_response (502) sets no response flag, and no
    // upstream cluster is chosen (Istio's telemetry calls it BlackHoleCluster by the route name).
    const logged = () => (existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').filter((l) => l.startsWith('/blocked ')) : []);
    await eventually(() => logged().length > 0, 'the blocked request logged', 20_000);
    assert.deepEqual(logged(), ['/blocked 502 - direct_response block_all -']);
    assert.equal((await viaProxy('http://known:9080/')).body, 'in the mesh');
  });
});
