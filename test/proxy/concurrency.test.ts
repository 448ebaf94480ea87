// `weft proxy --concurrency 2` end to end: the real `weft control-plane` and `weft proxy` in child processes and a
// node:http upstream. Both workers hold the configuration (two xDS streams for one node), share the outbound
// listener and serve requests (per-worker counts from the primary's /workers); the primary's /stats and stats port
// sum the workers; health is ready only once every worker is; SIGTERM drains both workers (a request in flight
// completes) and the primary exits 0 with no worker left. Bad values are usage errors. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freePort, MeshWorkDir, proxyArgs, run, serviceYaml, sleep, startControlPlane, syncStatus, waitProxyReady, WEFT, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { mergeStatsJson, mergeStatsText } from '../../src/proxy/workers.js';
import { SCRAPE_QUERY } from '../../src/controlplane/telemetry/telemetry.js';
import { parsePrometheusText } from '../../src/controlplane/telemetry/prometheus-text.js';

const NODE_ID = 'concurrency-client';

/** One GET through the proxy (a new connection each time, so the kernel picks the accepting worker). */
function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host: 'echo:9080' }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

interface WorkerInfo {
  worker: number;
  pid: number;
  ready: boolean;
  downstreamRequests: number;
}

describe('weft proxy --concurrency 2', () => {
  const mesh = new MeshWorkDir('weft-proxy-concurrency-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const releases: Array<() => void> = [];
  let upstream: Server;
  let cpHttp = '';
  let outbound = 0;
  let healthPort = 0;
  let admin = '';
  let statsPort = 0;

  before(async () => {
    upstream = createServer((req, res) => {
      const reply = () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(`echo ${req.url}`);
      };
      if (req.url?.startsWith('/hold')) releases.push(reply);
      else reply();
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    mesh.writeConfig('mesh.yaml', yamlDocuments([serviceYaml('echo', { name: 'http', port: 9080 }), workloadEntryYaml('echo-1', { app: 'echo' }, 'http', (upstream.address() as AddressInfo).port)]));
    const addr = await startControlPlane(cp, mesh.config);
    cpHttp = addr.http;
    outbound = await freePort();
    healthPort = await freePort();
    const adminPort = await freePort();
    statsPort = await freePort();
    admin = `http://127.0.0.1:${adminPort}`;
    const ports = ['--outbound-port', String(outbound), '--health-port', String(healthPort), '--admin-port', String(adminPort), '--stats-port', String(statsPort), '--concurrency', '2'];
    await proxy.start(proxyArgs(addr.xds, NODE_ID, ports), /weft proxy .* started \(2 workers\)/, 'proxy');
    await waitProxyReady(healthPort, proxy);
  });

  after(async () => {
    for (const r of releases.splice(0)) r();
    await proxy.stop();
    await cp.stop();
    upstream.closeAllConnections();
    await new Promise<void>((r) => upstream.close(() => r()));
    mesh.remove();
  });

  const workers = async (): Promise<WorkerInfo[]> => (await (await fetch(`${admin}/workers`)).json()) as WorkerInfo[];

  test('two workers, each with its own xDS stream, both ready', async () => {
    const ws = await workers();
    assert.equal(ws.length, 2);
    assert.ok(ws.every((w) => w.ready && pidAlive(w.pid)), JSON.stringify(ws));
    assert.notEqual(ws[0]!.pid, ws[1]!.pid);
    const list = (await (await fetch(`${cpHttp}/debug/syncz`)).json()) as Array<{ id: string; streams?: number }>;
    assert.equal(list.find((p) => p.id === NODE_ID)?.streams, 2);
    assert.equal((await syncStatus(cpHttp, NODE_ID))?.RDS?.state, 'SYNCED');
    assert.equal((await fetch(`${admin}/ready`)).status, 200);
  });

  test('both workers serve the shared listener; /stats and the stats port sum them', async () => {
    let ws = await workers();
    const before = ws.reduce((a, w) => a + w.downstreamRequests, 0);
    let sent = 0;
    // New connections in batches of 20 until each worker has accepted some (bounded).
    for (let round = 0; round < 25 && !(await workers()).every((w) => w.downstreamRequests > 0); round++) {
      const rs = await Promise.all(Array.from({ length: 20 }, (_, i) => get(outbound, `/r${round}-${i}`)));
      for (const r of rs) assert.equal(r.status, 200, r.body);
      sent += rs.length;
    }
    ws = await workers();
    assert.ok(ws.every((w) => w.downstreamRequests > 0), `every worker served requests: ${JSON.stringify(ws)}`);
    assert.equal(ws.reduce((a, w) => a + w.downstreamRequests, 0) - before, sent);

    const total = ws.reduce((a, w) => a + w.downstreamRequests, 0);
    const text = await (await fetch(`${admin}/stats?filter=downstream_rq_total`)).text();
    assert.match(text, new RegExp(`^http\\.outbound\\.downstream_rq_total: ${total}$`, 'm'));
    const json = (await (await fetch(`${admin}/stats?format=json&filter=downstream_rq_total`)).json()) as { stats: Array<{ name: string; value: number }> };
    assert.equal(json.stats.find((s) => s.name === 'http.outbound.downstream_rq_total')?.value, total);
    const prom = await (await fetch(`http://127.0.0.1:${statsPort}/stats/prometheus`)).text();
    assert.match(prom, new RegExp(`^envoy_http_downstream_rq_total\\{envoy_http_conn_manager_prefix="outbound"\\} ${total}$`, 'm'));
    // A narrow scrape (Envoy's usedonly and filter) goes to every worker and is summed the same way.
    const narrow = await (await fetch(`http://127.0.0.1:${statsPort}/stats/prometheus?usedonly&filter=${encodeURIComponent('^http\\.outbound\\.downstream_rq_total$')}`)).text();
    assert.equal(narrow, `# TYPE envoy_http_downstream_rq_total counter\nenvoy_http_downstream_rq_total{envoy_http_conn_manager_prefix="outbound"} ${total}\n`);
    // The control plane's telemetry scrape: only Istio's request series (and ejections, none here).
    const scrape = parsePrometheusText(await (await fetch(`http://127.0.0.1:${statsPort}/stats/prometheus?${SCRAPE_QUERY}`)).text());
    assert.ok(scrape.some((x) => x.name === 'istio_requests_total'));
    assert.deepEqual([...new Set(scrape.map((x) => x.name.replace(/_(bucket|sum|count)$/, '')))].sort(), ['istio_request_duration_milliseconds', 'istio_requests_total']);
  });

  test('SIGTERM drains both workers: the request in flight completes, then everything exits', async () => {
    const pids = (await workers()).map((w) => w.pid);
    const held = get(outbound, '/hold/1');
    for (let i = 0; i < 200 && releases.length === 0; i++) await sleep(25);
    assert.equal(releases.length, 1, 'the request reached the upstream');
    const exited = proxy.exited();
    proxy.proc!.kill('SIGTERM');
    // Draining: the health port says not ready while the request is still in flight.
    let health = 200;
    for (let i = 0; i < 100 && health === 200; i++) {
      health = await fetch(`http://127.0.0.1:${healthPort}/healthz/ready`).then((r) => r.status, () => 0);
      if (health === 200) await sleep(25);
    }
    assert.notEqual(health, 200);
    releases.shift()!();
    const r = await held.catch((e: Error) => assert.fail(`${e.message}\n${proxy.log()}`));
    assert.equal(r.status, 200);
    assert.equal(r.body, 'echo /hold/1');
    assert.equal(await exited, 0);
    for (let i = 0; i < 100 && pids.some(pidAlive); i++) await sleep(50);
    assert.deepEqual(pids.filter(pidAlive), [], 'no worker left');
  });

  test('--concurrency must be a number of workers', async () => {
    for (const bad of ['0', 'two', '-1']) {
      const r = await run(process.execPath, [WEFT, 'proxy', '--xds', '127.0.0.1:1', '--id', 'x', '--concurrency', bad]);
      assert.equal(r.status, 2, bad);
      assert.match(r.stderr.toString(), /expected a number of workers/);
    }
  });
});

describe('--concurrency stats merging', () => {
  test('sums counters, gauges and histogram buckets; keeps per-process server gauges and summaries', () => {
    const a = '# TYPE envoy_x counter\nenvoy_x{a="b c"} 2\nenvoy_server_uptime 10\nenvoy_h_bucket{le="1"} 1\n';
    const b = '# TYPE envoy_x counter\nenvoy_x{a="b c"} 3\nenvoy_server_uptime 11\nenvoy_h_bucket{le="1"} 4\nenvoy_only_b 7\n';
    assert.equal(mergeStatsText([a, b]), '# TYPE envoy_x counter\nenvoy_x{a="b c"} 5\nenvoy_server_uptime 10\nenvoy_h_bucket{le="1"} 5\nenvoy_only_b 7\n');
    const t1 = 'cluster.a.upstream_rq_total: 4\nserver.live: 1\ncluster.a.upstream_rq_time: P0(1,1) P50(2,2)\n';
    const t2 = 'cluster.a.upstream_rq_total: 6\nserver.live: 1\ncluster.a.upstream_rq_time: P0(3,3) P50(4,4)\n';
    assert.equal(mergeStatsText([t1, t2]), 'cluster.a.upstream_rq_total: 10\nserver.live: 1\ncluster.a.upstream_rq_time: P0(1,1) P50(2,2)\n');
    // Istio's metrics sum like any counter; istio_build (one per proxy) does not.
    const i1 = 'istio_requests_total{reporter="source",response_code="200"} 2\nistio_build{component="proxy",tag="0.1.0"} 1\n';
    assert.equal(mergeStatsText([i1, i1]), 'istio_requests_total{reporter="source",response_code="200"} 4\nistio_build{component="proxy",tag="0.1.0"} 1\n');
    const j = JSON.parse(mergeStatsJson([JSON.stringify({ stats: [{ name: 'a', value: 1 }, { name: 'server.state', value: 0 }] }), JSON.stringify({ stats: [{ name: 'a', value: 2 }, { name: 'server.state', value: 0 }, { name: 'b', value: 1 }] })])) as unknown;
    assert.deepEqual(j, { stats: [{ name: 'a', value: 3 }, { name: 'server.state', value: 0 }, { name: 'b', value: 1 }] });
  });
});
