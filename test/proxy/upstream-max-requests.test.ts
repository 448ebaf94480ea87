// max_requests_per_connection (DestinationRule connectionPool.http.maxRequestsPerConnection) on the HTTP/1.1 pool,
// end to end: the real `weft control-plane` and `weft proxy`, a node:http upstream that records its connections and
// which connection served each request. A connection serves exactly that many requests; when it takes its last one,
// the pool opens its replacement, so the next request finds a connection ready rather than waiting for a connect
// (and, between sidecars, a TLS handshake) — which the test sees as the upstream accepting the second connection
// before any further request is sent. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, sleep, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const MAX = 3;

describe('weft proxy: max_requests_per_connection opens the replacement connection ahead of the next request', () => {
  const mesh = new MeshWorkDir('weft-proxy-maxreq-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  /** Upstream connections in accept order, with the paths each one served. */
  const conns: Array<{ socket: Socket; served: string[]; closed: boolean }> = [];
  let upstream: Server;
  let outbound = 0;

  const get = (path: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: outbound, path, headers: { host: 'maxreq:9080' }, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end();
    });

  const waitFor = async (what: string, ok: () => boolean): Promise<void> => {
    for (let i = 0; i < 200 && !ok(); i++) await sleep(50);
    assert.ok(ok(), what);
  };

  before(async () => {
    upstream = createServer((req, res) => {
      conns.find((c) => c.socket === req.socket)?.served.push(req.url ?? '');
      res.end(`ok ${req.url}`);
    });
    upstream.keepAliveTimeout = 60_000;
    upstream.on('connection', (socket: Socket) => {
      const c = { socket, served: [] as string[], closed: false };
      conns.push(c);
      socket.on('close', () => (c.closed = true));
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('maxreq', { name: 'http', port: 9080 }),
        workloadEntryYaml('maxreq-1', { app: 'maxreq' }, 'http', (upstream.address() as AddressInfo).port),
        `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: maxreq, namespace: default}\nspec:\n  host: maxreq\n  trafficPolicy:\n    connectionPool: {http: {maxRequestsPerConnection: ${MAX}}}\n`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    await proxy.start(proxyArgs(addr.xds, 'maxreq-client', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', '0', '--stats-port', '0']), /weft proxy .* started/, 'proxy');
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

  test('the connection that takes its last request has its replacement opened before the next request comes', async () => {
    for (let i = 0; i < MAX; i++) assert.equal((await get(`/a${i}`)).body, `ok /a${i}`);
    assert.deepEqual(conns[0]?.served, ['/a0', '/a1', '/a2'], 'the first connection serves max_requests_per_connection requests');
    // No request is in flight now: a second connection can only come from the pool replacing the retiring one.
    await waitFor('the replacement connection is opened without a further request', () => conns.length === 2);
    await waitFor('the retired connection closes', () => conns[0]!.closed);
    assert.deepEqual(conns[1]!.served, [], 'the replacement has served nothing yet');
    assert.equal((await get('/b0')).body, 'ok /b0');
    assert.deepEqual(conns[1]!.served, ['/b0'], 'the next request uses the replacement');
    assert.equal(conns.length, 2, 'and no other connection');
  });

  test('one replacement per retired connection: the pool keeps the connection count the traffic needs', async () => {
    // The second connection has served one request; 2 more retire it (→ a third), 3 more retire the third (→ a fourth).
    for (let i = 1; i < 6; i++) assert.equal((await get(`/b${i}`)).body, `ok /b${i}`);
    await waitFor('the fourth connection is opened', () => conns.length === 4);
    assert.deepEqual(
      conns.map((c) => c.served.length),
      [MAX, MAX, MAX, 0],
    );
    await waitFor('the retired connections close', () => conns.slice(0, 3).every((c) => c.closed));
    assert.equal(conns[3]!.closed, false, 'the replacement stays open, idle');
  });
});
