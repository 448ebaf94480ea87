// Upstream HTTP/1.1 connection reuse and Envoy's idle_timeout (DestinationRule connectionPool.http.idleTimeout →
// the cluster's common_http_protocol_options.idle_timeout), end to end: the real `weft control-plane` and
// `weft proxy`, a node:http upstream that records its connections. Many requests reuse one upstream connection
// without growing per-request state on it (no MaxListenersExceededWarning from the proxy); the connection closes
// once idle for the timeout; a request that runs longer than the idle timeout is not cut (the timer is for idle
// connections only); clients that vanish with requests in flight (as a load generator stopping) leave no pooled
// connection that has stopped reading. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, sleep, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

describe('weft proxy: upstream connection reuse and idle timeout', () => {
  const mesh = new MeshWorkDir('weft-proxy-idle-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const conns: Array<{ socket: Socket; closed: boolean }> = [];
  let upstream: Server;
  let outbound = 0;

  /** A GET through the proxy on the shared keep-alive client connection, or (`fresh`) on a new one. */
  const get = (path: string, fresh = false): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: outbound, path, headers: { host: 'idle:9080' }, agent: fresh ? false : agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  before(async () => {
    upstream = createServer((req, res) => {
      const reply = () => res.end(`ok ${req.url}`);
      if (req.url?.startsWith('/slow')) setTimeout(reply, 2500);
      else reply();
    });
    upstream.keepAliveTimeout = 60_000;
    upstream.on('connection', (socket: Socket) => {
      const c = { socket, closed: false };
      conns.push(c);
      socket.on('close', () => (c.closed = true));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('idle', { name: 'http', port: 9080 }),
        workloadEntryYaml('idle-1', { app: 'idle' }, 'http', (upstream.address() as AddressInfo).port),
        `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: idle, namespace: default}\nspec:\n  host: idle\n  trafficPolicy:\n    connectionPool: {http: {idleTimeout: 1s}}\n`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    await proxy.start(proxyArgs(addr.xds, 'idle-client', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', '0', '--stats-port', '0']), /weft proxy .* started/, 'proxy');
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    agent.destroy();
    await proxy.stop();
    await cp.stop();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
    mesh.remove();
  });

  test('sequential requests reuse one upstream connection, which closes once idle for the timeout', async () => {
    for (let i = 0; i < 40; i++) {
      const r = await get(`/r${i}`);
      assert.equal(r.status, 200);
      assert.equal(r.body, `ok /r${i}`);
    }
    assert.equal(conns.length, 1, 'one upstream connection for all requests');
    assert.doesNotMatch(proxy.stderr, /MaxListenersExceeded/, 'no listener added per request');
    for (let i = 0; i < 200 && !conns[0]!.closed; i++) await sleep(50);
    assert.ok(conns[0]!.closed, 'the idle upstream connection was closed by the proxy');
    const r = await get('/after');
    assert.equal(r.status, 200);
    assert.equal(conns.length, 2, 'a new connection after the idle one closed');
  });

  test('a request longer than the idle timeout is not cut', async () => {
    const r = await get('/slow');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok /slow');
  });

  test('clients that vanish with requests in flight leave no stuck upstream connection', async () => {
    // 50 keep-alive clients sending back to back, all dropped at once mid-flight, several times over.
    for (let round = 0; round < 6; round++) {
      const sockets = Array.from({ length: 50 }, () => {
        const s = connect(outbound, '127.0.0.1');
        const send = () => s.write('GET /loop HTTP/1.1\r\nHost: idle:9080\r\n\r\n');
        s.on('connect', send);
        s.on('data', send);
        s.on('error', () => undefined);
        return s;
      });
      await sleep(300);
      for (const s of sockets) s.destroy();
      await sleep(50);
      // Every pooled connection still serves: each of these concurrent requests completes (a stuck one would hang).
      const rs = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          Promise.race([get(`/after-${round}-${i}`, true), sleep(15_000).then(() => ({ status: 0, body: 'no answer within 15 s' }))]),
        ),
      );
      for (const r of rs) assert.equal(r.status, 200, r.body);
    }
  });
});
