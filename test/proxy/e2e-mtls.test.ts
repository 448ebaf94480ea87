// Automatic mTLS end to end: the real `weft control-plane` and two `weft proxy` sidecars (client and server) with
// workload certificates from `--cert-dir` (test CA, SPIFFE ids of service accounts `client` and `server`), the
// server registered as a WorkloadEntry with `security.istio.io/tlsMode: istio` (it has a sidecar).
//
// - PERMISSIVE (the mesh default): the client sidecar's auto mTLS carries HTTP/1.1, HTTP/2, gRPC and TCP to the
//   server sidecar over mutual TLS; the application sees x-forwarded-client-cert with the client's SPIFFE id; a
//   plaintext client reaching the server sidecar directly is served too.
// - STRICT (a namespace PeerAuthentication): plaintext to the server sidecar is refused, a client certificate from
//   another CA is refused, the client sidecar still gets through.
// - portLevelMtls DISABLE on the HTTP port (workload selector over namespace): plaintext is accepted there and the
//   client sidecar sends plaintext to it (the endpoint lost tlsMode), while the TCP port stays STRICT.
// - Rotation at half life under ~500 requests/s: certificates living 8 s are replaced at 4 s on both sides (files
//   rewritten); upstream connections are recycled every 50 requests so new handshakes happen all along, and run on
//   past the old certificates' expiry: zero failed requests.
// No timing is asserted: waits are bounded polls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { startGreeter, greeterService, type Greeter } from '../apps/greeter.js';
import { H2Upstream, h2Request } from '../helpers/h2-clients.js';
import { Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, run, serviceYaml, sleep, startControlPlane, waitProxyReady, WeftProcess, yamlDocuments } from '../helpers/mesh-processes.js';
import { createCa, spiffe, type IssuedCert, type TestCa } from '../helpers/certs.js';

const GreeterClient = makeGenericClientConstructor(greeterService, 'Greeter');
type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

/** Writes a workload identity in the --cert-dir layout; each file replaced atomically (write + rename). */
function writeIdentity(dir: string, id: IssuedCert, root: string): void {
  mkdirSync(dir, { recursive: true });
  for (const [f, text] of [['key.pem', id.keyPem], ['cert-chain.pem', id.certPem], ['root-cert.pem', root]] as const) {
    writeFileSync(join(dir, `.${f}.tmp`), text, { mode: 0o600 });
    renameSync(join(dir, `.${f}.tmp`), join(dir, f));
  }
}

async function until(what: string, check: () => Promise<boolean>, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The sum of every `…ssl.<name>` counter in a proxy's admin /stats. */
async function sslStat(adminPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/stats`)).text();
  let n = 0;
  for (const m of text.matchAll(new RegExp(`\\.ssl\\.${name}: (\\d+)`, 'g'))) n += Number(m[1]);
  return n;
}

/** Whether a plaintext TCP client gets its bytes echoed by the server sidecar's TCP port. */
function plainEcho(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1', () => s.write('plaintext'));
    s.on('data', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(false));
  });
}

/** curl's status code ('000' when the connection failed). */
async function status(args: string[]): Promise<string> {
  return (await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', ...args])).stdout.toString();
}

describe('weft proxy: automatic mTLS between sidecars', () => {
  const mesh = new MeshWorkDir('weft-mtls-e2e-');
  const cp = new WeftProcess();
  const serverProxy = new WeftProcess();
  const clientProxy = new WeftProcess();
  let ca: TestCa;
  let app: Upstream;
  let h2app: H2Upstream;
  let greeter: Greeter;
  let echo: Server;
  const inb = { http: 0, h2: 0, grpc: 0, tcp: 0 };
  let outbound = 0;
  let tcpLocal = 0;
  let serverAdmin = 0;
  let clientAdmin = 0;
  const dirs = { server: '', client: '' };

  function meshYaml(extra: string[] = []): string {
    const we = `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: server-1, namespace: default}\nspec: {address: 127.0.0.1, serviceAccount: server, labels: {app: server, security.istio.io/tlsMode: istio}, ports: {http: ${inb.http}, h2: ${inb.h2}, grpc: ${inb.grpc}, tcp-echo: ${inb.tcp}}}\n`;
    const svc = `apiVersion: v1\nkind: Service\nmetadata: {name: server, namespace: default}\nspec:\n  selector: {app: server}\n  ports: [{name: http, port: 8080}, {name: h2, port: 8081, appProtocol: http2}, {name: grpc, port: 50051}, {name: tcp-echo, port: 9000}]\n`;
    // A recycled upstream connection every 50 requests keeps handshakes going during the rotation test.
    const dr = `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: server, namespace: default}\nspec:\n  host: server\n  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 50}}}\n`;
    return yamlDocuments([svc, we, dr, ...extra]);
  }

  before(async () => {
    ca = await createCa();
    app = new Upstream('app');
    await app.start();
    h2app = new H2Upstream('h2app', {}, (req, res) => {
      res.setHeader('x-seen-xfcc', String(req.headers['x-forwarded-client-cert'] ?? ''));
      res.end('h2-ok');
    });
    await h2app.start();
    greeter = await startGreeter('greeter-1');
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    for (const k of Object.keys(inb) as Array<keyof typeof inb>) inb[k] = await freePort();
    dirs.server = join(mesh.work, 'server-certs');
    dirs.client = join(mesh.work, 'client-certs');
    writeIdentity(dirs.server, await ca.issue({ uri: spiffe('default', 'server') }), ca.certPem);
    writeIdentity(dirs.client, await ca.issue({ uri: spiffe('default', 'client') }), ca.certPem);
    mesh.writeConfig('mesh.yaml', meshYaml());
    const cpAddr = await startControlPlane(cp, mesh.config);
    const common = async () => ['--stats-port', '0', '--outbound-port', String(await freePort())];
    const serverHealth = await freePort();
    serverAdmin = await freePort();
    await serverProxy.start(
      [
        'proxy', '--xds', cpAddr.xds, '--id', 'server-1', '--namespace', 'default', '--service-account', 'server', '--labels', 'app=server', '--cert-dir', dirs.server,
        '--workload-port', `${inb.http}:${app.port}/http`, '--workload-port', `${inb.h2}:${h2app.port}/http2`, '--workload-port', `${inb.grpc}:${greeter.port}/grpc`, '--workload-port', `${inb.tcp}:${(echo.address() as AddressInfo).port}/tcp`,
        '--health-port', String(serverHealth), '--admin-port', String(serverAdmin), ...(await common()),
      ],
      /weft proxy .* started/,
      'server sidecar',
    );
    const clientHealth = await freePort();
    clientAdmin = await freePort();
    tcpLocal = await freePort();
    const cargs = await common();
    outbound = Number(cargs[3]);
    await clientProxy.start(
      ['proxy', '--xds', cpAddr.xds, '--id', 'client-1', '--namespace', 'default', '--service-account', 'client', '--labels', 'app=client', '--cert-dir', dirs.client, '--upstream', `server:9000=${tcpLocal}`, '--health-port', String(clientHealth), '--admin-port', String(clientAdmin), ...cargs],
      /weft proxy .* started/,
      'client sidecar',
    );
    await waitProxyReady(serverHealth, serverProxy);
    await waitProxyReady(clientHealth, clientProxy);
  });

  after(async () => {
    await clientProxy.stop();
    await serverProxy.stop();
    await cp.stop();
    await app?.stop();
    await h2app?.stop();
    await greeter?.close();
    await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
    ca?.close();
    mesh.remove();
  });

  test('PERMISSIVE: HTTP/1.1, HTTP/2, gRPC and TCP over mTLS; the app sees the client identity; plaintext also served', async () => {
    const before = app.seen.length;
    assert.equal(await status(['-x', `http://127.0.0.1:${outbound}`, 'http://server:8080/hello']), '200', clientProxy.log());
    const xfcc = String(app.seen[before]!.headers['x-forwarded-client-cert']);
    assert.match(xfcc, /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/server;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/client$/);
    const h2 = await h2Request(outbound, { authority: 'server:8081', path: '/h2' });
    assert.equal(h2.status, 200);
    assert.match(String(h2.headers['x-seen-xfcc']), /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/client$/);
    const g = new GreeterClient(`127.0.0.1:${outbound}`, credentials.createInsecure(), { 'grpc.default_authority': 'server:50051' }) as unknown as AnyClient;
    const reply = await new Promise<{ err: ServiceError | null; res?: { message: string } }>((resolve) => g['SayHello']!({ name: 'mtls' }, new Metadata(), { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res: { message: string }) => resolve({ err, res })));
    g.close();
    assert.equal(reply.err, null);
    assert.equal(reply.res?.message, 'hello mtls');
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = connect(tcpLocal, '127.0.0.1', () => s.end('tcp over mtls'));
      let d = '';
      s.on('data', (b: Buffer) => (d += b));
      s.on('error', reject);
      s.on('close', () => resolve(d));
    });
    assert.equal(echoed, 'tcp over mtls');
    assert.ok((await sslStat(serverAdmin, 'handshake')) >= 4, 'the server sidecar terminated mTLS');
    assert.ok((await sslStat(clientAdmin, 'handshake')) >= 4, 'the client sidecar originated it');
    // PERMISSIVE: a plaintext client reaching the server sidecar directly; a forged XFCC does not pass.
    const n = app.seen.length;
    assert.equal(await status(['-H', 'x-forwarded-client-cert: URI=spiffe://cluster.local/ns/default/sa/admin', `http://127.0.0.1:${inb.http}/plain`]), '200');
    assert.equal(app.seen[n]!.headers['x-forwarded-client-cert'], undefined);
  });

  test('STRICT: plaintext and a foreign CA refused; the client sidecar gets through', async () => {
    mesh.writeConfig('mesh.yaml', meshYaml([`apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n`]));
    await until('plaintext refused', async () => (await status([`http://127.0.0.1:${inb.http}/plain`])) === '000');
    const other = await createCa();
    try {
      const foreign = await other.issue({ uri: spiffe('default', 'client') });
      writeFileSync(join(other.dir, 'f.crt'), foreign.certPem);
      writeFileSync(join(other.dir, 'f.key'), foreign.keyPem);
      writeFileSync(join(other.dir, 'mesh-ca.crt'), ca.certPem);
      assert.equal(await status(['--cacert', join(other.dir, 'mesh-ca.crt'), '--cert', join(other.dir, 'f.crt'), '--key', join(other.dir, 'f.key'), '-k', `https://127.0.0.1:${inb.http}/foreign`]), '000');
    } finally {
      other.close();
    }
    assert.equal(await status(['-x', `http://127.0.0.1:${outbound}`, 'http://server:8080/strict']), '200');
  });

  test('portLevelMtls DISABLE on the HTTP port: plaintext there (also from the client sidecar), TCP port still STRICT', async () => {
    const ns = `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: default}\nspec: {mtls: {mode: STRICT}}\n`;
    const wl = `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: server, namespace: default}\nspec:\n  selector: {matchLabels: {app: server}}\n  portLevelMtls: {${inb.http}: {mode: DISABLE}}\n`;
    mesh.writeConfig('mesh.yaml', meshYaml([ns, wl]));
    await until('plaintext accepted on the HTTP port', async () => (await status([`http://127.0.0.1:${inb.http}/plain`])) === '200');
    const before = app.seen.length;
    await until('the client sidecar sends plaintext', async () => {
      const n = app.seen.length;
      if ((await status(['-x', `http://127.0.0.1:${outbound}`, 'http://server:8080/port-level'])) !== '200') return false;
      return app.seen.length > n && app.seen[app.seen.length - 1]!.headers['x-forwarded-client-cert'] === undefined;
    });
    assert.ok(app.seen.length > before);
    assert.equal(await plainEcho(inb.tcp), false, 'the TCP port stays STRICT');
    mesh.writeConfig('mesh.yaml', meshYaml());
    await until('back to PERMISSIVE', () => plainEcho(inb.tcp));
  });

  test('rotation at half life under ~500 requests/s: zero failed requests, past the old certificates\' expiry', async () => {
    const ttl = 8;
    writeIdentity(dirs.server, await ca.issue({ uri: spiffe('default', 'server'), notAfter: ttl }), ca.certPem);
    writeIdentity(dirs.client, await ca.issue({ uri: spiffe('default', 'client'), notAfter: ttl }), ca.certPem);
    const startHandshakes = await sslStat(serverAdmin, 'handshake');
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    let ok = 0;
    const failures: string[] = [];
    const one = () =>
      new Promise<void>((resolve) => {
        const req = request({ host: '127.0.0.1', port: outbound, path: 'http://server:8080/load', agent, headers: { host: 'server:8080' } }, (res) => {
          res.resume();
          res.on('end', () => {
            if (res.statusCode === 200) ok++;
            else failures.push(String(res.statusCode));
            resolve();
          });
        });
        req.on('error', (e) => {
          failures.push(e.message);
          resolve();
        });
        req.end();
      });
    const started = Date.now();
    const inflight = new Set<Promise<void>>();
    let rotated = false;
    // 500 requests/s in ticks of 10 ms, for 2 × ttl: rotation at ttl/2, the old certificates expire at ttl.
    for (let tick = 0; Date.now() - started < ttl * 2 * 1000 - 500; tick++) {
      if (!rotated && Date.now() - started >= (ttl / 2) * 1000) {
        writeIdentity(dirs.server, await ca.issue({ uri: spiffe('default', 'server'), notAfter: 3600 }), ca.certPem);
        writeIdentity(dirs.client, await ca.issue({ uri: spiffe('default', 'client'), notAfter: 3600 }), ca.certPem);
        rotated = true;
      }
      for (let i = 0; i < 5; i++) {
        const p = one();
        inflight.add(p);
        void p.then(() => inflight.delete(p));
      }
      const next = started + (tick + 1) * 10;
      await sleep(Math.max(0, next - Date.now()));
    }
    await Promise.all(inflight);
    agent.destroy();
    assert.deepEqual(failures.slice(0, 5), [], `${failures.length} failed of ${ok + failures.length}`);
    assert.ok(ok > 1000, `${ok} requests`);
    assert.ok((await sslStat(serverAdmin, 'handshake')) - startHandshakes > ok / 50 / 2, 'connections were recycled: new handshakes all along');
  });
});
