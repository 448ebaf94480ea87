// Resilience end to end, configured with Istio DestinationRules through the real `weft control-plane` and a real
// `weft proxy`, against real upstream servers on 127.0.0.1:
// - outlier detection: consecutive 5xx eject a host (admin /clusters shows /failed_outlier_check), traffic moves to
//   the healthy hosts, the host comes back after the base ejection time, and max_ejection_percent caps ejections
//   (outlier_detection.ejections_overflow);
// - circuit breakers: with one connection and one pending request allowed, a third concurrent request gets
//   503 with flag UO;
// - connect failures: a refused connection → 503 UF; a connection that is never accepted (the listener's process
//   is stopped and its backlog is full) → 503 UF after the DestinationRule's connectTimeout
//   (upstream_cx_connect_timeout).
// No timing is asserted: every wait polls for the behaviour, bounded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { adminGet } from '../helpers/admin-http.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, sleep, startControlPlane, startProxyOnFreePorts, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { eventually, httpRequest, statValue } from '../helpers/raw-client.js';

const POOL = 'outbound|9090||pool.default.svc.cluster.local';
const NARROW = 'outbound|9091||narrow.default.svc.cluster.local';
const STALLED = 'outbound|9093||stalled.default.svc.cluster.local';

/** An upstream that answers 200 `<name>` or, while `failing`, 500. */
class PoolMember {
  server!: Server;
  port = 0;
  failing = false;
  hits = 0;
  constructor(readonly name: string) {}
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.hits++;
      req.resume();
      res.writeHead(this.failing ? 500 : 200, { 'content-type': 'text/plain' });
      res.end(this.failing ? 'failing' : this.name);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
}

describe('weft proxy: outlier detection, circuit breakers and connect failures end to end', () => {
  const mesh = new MeshWorkDir('weft-resilience-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const members = [new PoolMember('p1'), new PoolMember('p2'), new PoolMember('p3')];
  let narrow: Server;
  const held: ServerResponse[] = [];
  let stalled: ChildProcess | undefined;
  const backlogFill: Socket[] = [];
  let outbound = 0;
  let admin = 0;

  before(async () => {
    for (const m of members) await m.start();
    narrow = createServer((req, res) => {
      req.resume();
      held.push(res);
    });
    await new Promise<void>((r) => narrow.listen(0, '127.0.0.1', r));
    const narrowPort = (narrow.address() as AddressInfo).port;
    const downPort = await freePort();
    // A listener that never accepts: a child process listening with a backlog of 1, then stopped; two connections
    // fill its accept queue, so the proxy's SYNs go unanswered.
    stalled = spawn(process.execPath, ['-e', "const s=require('net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>console.log(s.address().port))"]);
    const stalledPort = await new Promise<number>((resolve) => stalled!.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim()))));
    stalled.kill('SIGSTOP');
    for (let i = 0; i < 3; i++) {
      const s = connect({ host: '127.0.0.1', port: stalledPort });
      s.on('error', () => undefined);
      backlogFill.push(s);
    }
    await sleep(200);

    const svc = (name: string, port: number) => serviceYaml(name, { name: 'http', port });
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        svc('pool', 9090),
        ...members.map((m) => workloadEntryYaml(m.name, { app: 'pool' }, 'http', m.port)),
        svc('narrow', 9091),
        workloadEntryYaml('narrow-1', { app: 'narrow' }, 'http', narrowPort),
        svc('down', 9092),
        workloadEntryYaml('down-1', { app: 'down' }, 'http', downPort),
        svc('stalled', 9093),
        workloadEntryYaml('stalled-1', { app: 'stalled' }, 'http', stalledPort),
        `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: pool, namespace: default}\nspec:\n  host: pool\n  trafficPolicy:\n    loadBalancer: {simple: ROUND_ROBIN}\n    outlierDetection: {consecutive5xxErrors: 3, interval: 200ms, baseEjectionTime: 3s, maxEjectionPercent: 34}\n`,
        `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: narrow, namespace: default}\nspec:\n  host: narrow\n  trafficPolicy:\n    connectionPool:\n      tcp: {maxConnections: 1}\n      http: {http1MaxPendingRequests: 1}\n`,
        `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: stalled, namespace: default}\nspec:\n  host: stalled\n  trafficPolicy:\n    connectionPool:\n      tcp: {connectTimeout: 300ms}\n`,
        // No retries on these routes: each request is one attempt, so what the client sees is what the host did.
        ...['pool', 'narrow', 'down', 'stalled'].map(
          (h) => `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${h}, namespace: default}\nspec:\n  hosts: [${h}]\n  http:\n  - route: [{destination: {host: ${h}}}]\n    retries: {attempts: 0}\n`,
        ),
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    ({ outbound, admin } = await startProxyOnFreePorts(proxy, (p) =>
      proxyArgs(addr.xds, 'resilience', ['--outbound-port', String(p.outbound), '--admin-port', String(p.admin), '--health-port', String(p.health), '--stats-port', '0']),
    ));
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    for (const r of held.splice(0)) r.end();
    for (const s of backlogFill) s.destroy();
    if (stalled) {
      stalled.kill('SIGKILL');
      stalled.kill('SIGCONT');
    }
    for (const s of [...members.map((m) => m.server), narrow]) {
      s?.closeAllConnections();
      await new Promise<void>((r) => s?.close(() => r()));
    }
    mesh.remove();
  });

  /** health_flags of each host of a cluster, by port, from admin /clusters. */
  async function healthFlags(cluster: string): Promise<Map<number, string>> {
    const body = (await adminGet(admin, '/clusters')).body;
    const out = new Map<number, string>();
    for (const line of body.split('\n')) {
      if (!line.startsWith(cluster + '::127.0.0.1:')) continue;
      const m = /::127\.0\.0\.1:(\d+)::health_flags::(\S+)$/.exec(line);
      if (m) out.set(Number(m[1]), m[2]!);
    }
    return out;
  }

  const get = (host: string, debug = false) => httpRequest(outbound, host, '/', debug ? { headers: { 'x-weft-debug': '1' } } : {});

  test('outlier detection: consecutive 5xx eject a host, traffic moves away, the host returns after its ejection', async () => {
    const [p1] = members;
    p1!.failing = true;
    // Send until p1 has failed 3 times in a row and is ejected (bounded).
    await eventually(async () => {
      await get('pool:9090');
      return (await healthFlags(POOL)).get(p1!.port)?.includes('/failed_outlier_check') ?? false;
    }, 'p1 to be ejected');
    const flags = await healthFlags(POOL);
    assert.equal(flags.get(members[1]!.port), 'healthy');
    assert.equal(flags.get(members[2]!.port), 'healthy');

    // While ejected, nothing reaches p1 and every request succeeds on p2 / p3.
    const hits = p1!.hits;
    p1!.failing = false;
    let served = 0;
    for (let i = 0; i < 20; i++) {
      const stillEjected = (await healthFlags(POOL)).get(p1!.port)?.includes('/failed_outlier_check');
      const r = await get('pool:9090');
      if (!stillEjected) break; // the ejection ended meanwhile
      assert.equal(r.status, 200);
      assert.notEqual(r.body, 'p1');
      served++;
    }
    assert.ok(served > 0, 'requests were served while p1 was ejected');
    assert.equal(p1!.hits, hits, 'no request reached the ejected host');
    assert.ok((await statValue(admin, `cluster.${POOL}.outlier_detection.ejections_enforced_total`)) >= 1);

    // After the base ejection time the host is back and gets traffic again.
    await eventually(async () => (await healthFlags(POOL)).get(p1!.port) === 'healthy', 'p1 to return', 20_000);
    await eventually(async () => (await get('pool:9090')).body === 'p1', 'a request to reach p1 again');
  });

  test('max_ejection_percent: with two failing hosts of three, only one is ejected at a time', async () => {
    const [p1, p2] = members;
    await eventually(async () => [...(await healthFlags(POOL)).values()].every((f) => f === 'healthy'), 'all hosts healthy', 20_000);
    const overflowBefore = await statValue(admin, `cluster.${POOL}.outlier_detection.ejections_overflow`);
    p1!.failing = true;
    p2!.failing = true;
    let maxEjected = 0;
    for (let i = 0; i < 60; i++) {
      await get('pool:9090');
      const ejected = [...(await healthFlags(POOL)).values()].filter((f) => f.includes('/failed_outlier_check')).length;
      maxEjected = Math.max(maxEjected, ejected);
    }
    p1!.failing = false;
    p2!.failing = false;
    assert.equal(maxEjected, 1, 'one host ejected at most (34% of 3 hosts)');
    assert.ok((await statValue(admin, `cluster.${POOL}.outlier_detection.ejections_overflow`)) > overflowBefore, 'the refused ejections are counted');
  });

  test('circuit breakers: one connection and one pending request allowed → the third concurrent request gets 503 UO', async () => {
    const first = get('narrow:9091');
    await eventually(() => held.length === 1, 'the first request to reach the upstream');
    const second = get('narrow:9091');
    await eventually(async () => (await statValue(admin, `cluster.${NARROW}.upstream_rq_pending_active`)) === 1, 'the second request to wait for the connection');
    const third = await get('narrow:9091', true);
    assert.equal(third.status, 503);
    assert.equal(third.headers['x-weft-response-flags'], 'UO');
    assert.match(third.body, /reset reason: overflow/);
    assert.ok((await statValue(admin, `cluster.${NARROW}.upstream_rq_pending_overflow`)) >= 1);
    // Release the held requests: both complete normally.
    const release = async () => {
      for (let i = 0; i < 2; i++) {
        await eventually(() => held.length > 0, 'a held request');
        const r = held.shift()!;
        r.writeHead(200, { 'content-type': 'text/plain' });
        r.end('released');
      }
    };
    const [a, b] = await Promise.all([first, second, release()]);
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
  });

  test('a refused connection → 503 UF', async () => {
    const r = await get('down:9092', true);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-weft-response-flags'], 'UF');
    assert.match(r.body, /reset reason: connection failure/);
  });

  test('a connection never accepted → 503 UF after the connect timeout', async () => {
    const before = await statValue(admin, `cluster.${STALLED}.upstream_cx_connect_timeout`);
    const r = await get('stalled:9093', true);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-weft-response-flags'], 'UF');
    assert.match(r.body, /reset reason: connection failure/);
    assert.ok((await statValue(admin, `cluster.${STALLED}.upstream_cx_connect_timeout`)) > before);
  });
});
