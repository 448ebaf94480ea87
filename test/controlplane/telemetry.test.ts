// The control plane's mesh telemetry (src/controlplane/telemetry) on Istio's standard request metrics:
// - from Prometheus text: series, reporter de-duplication, deltas (with a counter reset), the graph's edges and
//   the golden metrics (rate, success rate, histogram_quantile percentiles, mTLS share);
// - scrape mode over HTTP: a test exporter serving the text a sidecar serves (counters advancing by a fixed
//   amount per scrape), plus a target that does not answer (a scrape error, the rest still counted); and a proxy's
//   own stats port (startStatsServer on a proxy-like store), asked only for the series the telemetry reads;
// - Prometheus mode: a real Prometheus (/usr/bin/prometheus) scraping the same kind of exporter, read through
//   its query API; the same success rate, mTLS share and percentiles come out. Skipped (with the reason) when
//   Prometheus is not installed.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { aggregate } from '../../src/controlplane/telemetry/aggregate.js';
import { dedupeReporters, diffSeries, golden, snapshotOf } from '../../src/controlplane/telemetry/istio.js';
import { histogramQuantile, parsePrometheusText } from '../../src/controlplane/telemetry/prometheus-text.js';
import { MeshTelemetry, SCRAPE_QUERY } from '../../src/controlplane/telemetry/telemetry.js';
import { startStatsServer } from '../../src/proxy/admin-wiring.js';
import { HistogramUnit, StatsStore } from '../../src/proxy/stats/index.js';
import { ClusterStats } from '../../src/proxy/upstream/cluster/stats.js';
import { explain } from '../../src/controlplane/meshapi/explain.js';
import { emptyModel } from '../../src/api/defaults.js';
import { freePort, sleep } from '../helpers/mesh-processes.js';

const PROMETHEUS = '/usr/bin/prometheus';
const BUCKETS = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000];

interface Path {
  reporter: 'source' | 'destination';
  src: string;
  dst: string;
  version: string;
  code: string;
  flags: string;
  mtls: string;
  /** Requests so far, all observed at `ms`. */
  n: number;
  ms: number;
}

/** The Istio text one sidecar would serve for these paths (counters and the duration histogram). */
function istioText(paths: readonly Path[]): string {
  const lines = ['# TYPE istio_requests_total counter', '# TYPE istio_request_duration_milliseconds histogram'];
  for (const p of paths) {
    const l = `reporter="${p.reporter}",source_workload="${p.src}",source_workload_namespace="shop",source_app="${p.src}",destination_service="${p.dst}.shop.svc.cluster.local",destination_service_name="${p.dst}",destination_service_namespace="shop",destination_workload="${p.dst}-${p.version}",destination_workload_namespace="shop",destination_app="${p.dst}",destination_version="${p.version}",request_protocol="http",response_code="${p.code}",grpc_response_status="",response_flags="${p.flags}",connection_security_policy="${p.mtls}"`;
    lines.push(`istio_requests_total{${l}} ${p.n}`);
    for (const b of BUCKETS) lines.push(`istio_request_duration_milliseconds_bucket{${l},le="${b}"} ${p.ms <= b ? p.n : 0}`);
    lines.push(`istio_request_duration_milliseconds_bucket{${l},le="+Inf"} ${p.n}`);
    lines.push(`istio_request_duration_milliseconds_sum{${l}} ${p.n * p.ms}`, `istio_request_duration_milliseconds_count{${l}} ${p.n}`);
  }
  lines.push('# TYPE envoy_cluster_upstream_rq_total counter', 'envoy_cluster_upstream_rq_total{envoy_cluster_name="outbound|80||cart.shop.svc.cluster.local"} 12');
  lines.push('# TYPE envoy_cluster_outlier_detection_ejections_active gauge');
  lines.push('envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name="outbound|80|v1|cart.shop.svc.cluster.local"} 1');
  lines.push('envoy_cluster_outlier_detection_ejections_active{envoy_cluster_name="outbound|80|v3|cart.shop.svc.cluster.local"} 0');
  return `${lines.join('\n')}\n`;
}

const path = (o: Partial<Path>): Path => ({ reporter: 'destination', src: 'web', dst: 'cart', version: 'v1', code: '200', flags: '-', mtls: 'mutual_tls', n: 0, ms: 20, ...o });

/** The request URLs exporters were asked for. */
const asked: string[] = [];

/** An HTTP server serving istioText(paths), advancing each path by its step on every scrape. */
async function exporter(paths: Path[], steps: number[]): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer((req, res) => {
    asked.push(req.url ?? '');
    paths.forEach((p, i) => (p.n += steps[i]!));
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(istioText(paths));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/stats/prometheus`, server };
}

describe('telemetry: Istio metrics in Prometheus text', () => {
  test('series, deltas with a reset, reporter de-duplication, edges and golden metrics', () => {
    const before = snapshotOf(parsePrometheusText(istioText([path({ n: 100 }), path({ code: '503', flags: 'UH', n: 10, ms: 0.4 }), path({ reporter: 'source', n: 100, mtls: 'unknown' }), path({ dst: 'pay', n: 50 })])));
    const later = snapshotOf(parsePrometheusText(istioText([path({ n: 190 }), path({ code: '503', flags: 'UH', n: 20, ms: 0.4 }), path({ reporter: 'source', n: 190, mtls: 'unknown' }), path({ dst: 'pay', n: 5 })])));
    // 3 series: the two response codes of web → cart v1 (destination report) are one series; envoy_* is ignored.
    assert.equal(before.size, 3, [...before.keys()].join('\n'));
    const delta = diffSeries(later, before);
    const series = dedupeReporters(delta);
    // The source report of web → cart v1 is dropped (the destination reported the same path).
    assert.equal(series.length, 2);
    assert.ok(series.every((s) => s.labels.reporter === 'destination'));
    const cart = series.find((s) => s.labels.destination_service_name === 'cart')!;
    assert.equal(cart.stats.total, 100);
    assert.equal(cart.stats.errors, 10);
    assert.equal(cart.stats.failures.get('503 UH'), 10);
    // pay's counter went from 50 to 5: its proxy restarted, the 5 count from zero.
    assert.equal(series.find((s) => s.labels.destination_service_name === 'pay')!.stats.total, 5);

    const g = golden(cart.stats, 10);
    assert.equal(g.rps, 10);
    assert.equal(g.successRate, 0.9);
    assert.equal(g.mtls, 1);
    // 10 observations ≤ 0.5 ms, 90 in (10, 25]: p50 interpolates inside (10, 25] at rank 50 → 10 + 15 × 40/90.
    assert.equal(g.p50, Math.round((10 + (15 * 40) / 90) * 100) / 100);
    assert.equal(g.p99, Math.round((10 + (15 * 89) / 90) * 100) / 100);

    const agg = aggregate(series, 10);
    assert.deepEqual(agg.edges.map((e) => `${e.id} ${e.requests}`), ['svc:cart.shop.svc.cluster.local>wl:shop/cart-v1 100', 'svc:pay.shop.svc.cluster.local>wl:shop/pay-v1 5', 'wl:shop/web>svc:cart.shop.svc.cluster.local 100', 'wl:shop/web>svc:pay.shop.svc.cluster.local 5']);
    assert.equal(agg.nodes.get('wl:shop/cart-v1')?.version, 'v1');
    assert.equal(agg.services.get('cart.shop.svc.cluster.local')?.successRate, 0.9);
    assert.equal(agg.workloads.get('shop/web')?.outbound.requests, 105);
  });

  test('histogram_quantile: the +Inf bucket gives the highest finite bound; no observations, undefined', () => {
    assert.equal(histogramQuantile(0.99, new Map([[5, 1], [10, 1], [Infinity, 100]])), 10);
    assert.equal(histogramQuantile(0.5, new Map([[5, 0], [Infinity, 0]])), undefined);
  });
});

describe('telemetry: scraping proxies', () => {
  const servers: http.Server[] = [];
  const telemetries: MeshTelemetry[] = [];
  after(async () => {
    for (const t of telemetries) await t.close();
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  test('rates and success rates over the window, recent errors with flags, a dead proxy as a scrape error', async () => {
    const { url, server } = await exporter([path({ version: 'v1' }), path({ version: 'v1', code: '503', flags: 'UH', ms: 0.4 }), path({ version: 'v3', mtls: 'none' })], [9, 1, 5]);
    servers.push(server);
    const dead = `http://127.0.0.1:${await freePort()}/stats/prometheus`;
    const t = new MeshTelemetry({ targets: () => [{ proxy: 'cart-v1', url }, { proxy: 'gone', url: dead }], intervalMs: 60_000, windowMs: 60_000 });
    telemetries.push(t);
    // Ticks 20 ms apart, so the window has a length (rates are per second of it).
    for (let i = 0; i < 4; i++) {
      if (i > 0) await new Promise((r) => setTimeout(r, 20));
      await t.tick();
    }
    const w = t.window();
    assert.equal(w.source, 'scrape');
    assert.deepEqual(w.scrapeErrors.map((e) => e.target), [`proxy gone (${dead})`]);
    assert.match(w.scrapeErrors[0]!.error, /ECONNREFUSED/);
    const agg = aggregate(w.series, w.seconds);
    const v1 = agg.edges.find((e) => e.id === 'svc:cart.shop.svc.cluster.local>wl:shop/cart-v1')!;
    const v3 = agg.edges.find((e) => e.id === 'svc:cart.shop.svc.cluster.local>wl:shop/cart-v3')!;
    // Three scrape intervals: 30 requests to v1 (3 of them 503), 15 to v3.
    assert.equal(v1.requests, 30);
    assert.equal(v1.successRate, 0.9);
    assert.equal(v1.mtls, 1);
    assert.equal(v3.requests, 15);
    assert.equal(v3.mtls, 0);
    assert.ok(v1.rps > 0 && v3.rps > 0);
    const web = agg.edges.find((e) => e.id === 'wl:shop/web>svc:cart.shop.svc.cluster.local')!;
    assert.equal(web.requests, 45);
    assert.deepEqual(w.recentErrors.map((e) => `${e.code} ${e.flags} ${e.count} ${e.labels.destination_workload}`), ['503 UH 3 cart-v1']);
    // The v1 cluster's ejection gauge (the v3 one is 0: not listed).
    assert.deepEqual(w.ejections, [{ proxy: 'cart-v1', cluster: 'outbound|80|v1|cart.shop.svc.cluster.local', ejected: 1 }]);
    // Why: subset v1 has one endpoint, ejected → 503 UH; the observed UH is that cause, not listed again.
    const model = emptyModel();
    const origin = { family: 'istio' as const, kind: 'DestinationRule', apiVersion: 'networking.istio.io/v1', namespace: 'shop', name: 'cart' };
    model.destinationPolicies.push({ host: 'cart.shop.svc.cluster.local', namespace: 'shop', exportTo: ['*'], subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v3', labels: { version: 'v3' } }], origin });
    const ep = (version: string) => ({ address: '10.0.0.1', port: 80, labels: { app: 'cart', version }, weight: 1, serviceAccount: 'default', namespace: 'shop', workload: `cart-${version}-0`, healthy: true, tlsMode: 'istio' as const });
    assert.deepEqual(explain({ host: 'cart.shop.svc.cluster.local', model, endpoints: [ep('v1'), ep('v3')], errors: w.recentErrors, ejections: w.ejections }), [
      '503 UH: outlier detection of cart-v1 has ejected 1 of the 1 endpoint of subset v1 of cart',
    ]);
    // Each scrape asked for only what the telemetry reads (Envoy's usedonly and filter).
    assert.ok(asked.length >= 4);
    for (const u of asked) assert.equal(u, `/stats/prometheus?${SCRAPE_QUERY}`);
  });

  test("a proxy's stats port answers the narrow scrape: the requests, latencies and outbound ejections come through", async () => {
    // A proxy-like store: 200 clusters whose stats are plain fields in a source (one outbound and one inbound
    // cluster with ejected hosts), server stats, and Istio's families.
    const store = new StatsStore();
    const clusters: ClusterStats[] = [];
    for (let c = 0; c < 200; c++) {
      const st = new ClusterStats();
      st.membership_total = 1;
      store.scope(c === 199 ? 'cluster.inbound|9080||.' : `cluster.outbound|9080||svc-${c}.shop.svc.cluster.local.`).addSource(st);
      clusters.push(st);
    }
    clusters[3]!.outlier.ejections_active = 1;
    clusters[199]!.outlier.ejections_active = 1;
    store.gauge('server.live').set(1);
    const labels = ['reporter', 'source_workload', 'source_workload_namespace', 'destination_service', 'destination_service_name', 'destination_service_namespace', 'destination_workload', 'destination_workload_namespace', 'response_code', 'response_flags', 'connection_security_policy'];
    const requests = store.counterFamily('istio_requests_total', labels);
    const duration = store.histogramFamily('istio_request_duration_milliseconds', labels, HistogramUnit.Milliseconds);
    store.counterFamily('istio_request_messages_total', labels);
    const ok = ['destination', 'web', 'shop', 'svc-3.shop.svc.cluster.local', 'svc-3', 'shop', 'svc-3-v1', 'shop', '200', '-', 'mutual_tls'];
    const server = await startStatsServer({ store, port: await freePort(), host: '127.0.0.1' });
    try {
      const t = new MeshTelemetry({ targets: () => [{ proxy: 'svc-3-v1', url: `http://127.0.0.1:${server.port}/stats/prometheus` }], intervalMs: 60_000, windowMs: 60_000 });
      telemetries.push(t);
      await t.tick();
      for (let i = 0; i < 8; i++) {
        requests.get(ok).inc();
        duration.get(ok).record(12);
      }
      await sleep(20);
      await t.tick();
      const w = t.window();
      assert.deepEqual(w.scrapeErrors, []);
      assert.deepEqual(w.ejections, [{ proxy: 'svc-3-v1', cluster: 'outbound|9080||svc-3.shop.svc.cluster.local', ejected: 1 }]);
      assert.equal(w.series.length, 1);
      assert.equal(w.series[0]!.stats.total, 8);
      assert.equal(w.series[0]!.stats.mtls, 8);
      assert.equal(w.series[0]!.stats.buckets.get(25), 8);
      // What the scrape reads: a few lines, not the 200 clusters' stats.
      const body = await (await fetch(`http://127.0.0.1:${server.port}/stats/prometheus?${SCRAPE_QUERY}`)).text();
      const full = await (await fetch(`http://127.0.0.1:${server.port}/stats/prometheus`)).text();
      const names = [...new Set(parsePrometheusText(body).map((x) => x.name))].sort();
      assert.deepEqual(names, ['envoy_cluster_outlier_detection_ejections_active', 'istio_request_duration_milliseconds_bucket', 'istio_request_duration_milliseconds_count', 'istio_request_duration_milliseconds_sum', 'istio_requests_total']);
      assert.ok(body.length * 20 < full.length, `${body.length} bytes instead of ${full.length}`);
    } finally {
      await server.close();
    }
  });
});

describe('telemetry: Prometheus query API', { skip: existsSync(PROMETHEUS) ? false : `${PROMETHEUS} is not installed (apt-get install prometheus)` }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-prom-'));
  let prom: ChildProcess | undefined;
  let server: http.Server | undefined;
  let t: MeshTelemetry | undefined;
  let log = '';
  after(async () => {
    await t?.close();
    if (prom && prom.exitCode === null) {
      prom.kill('SIGTERM');
      await new Promise((r) => prom!.once('exit', r));
    }
    if (server) await new Promise((r) => server!.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  test('the window from increase() queries: success rate, mTLS share, percentiles and recent errors', async () => {
    const ex = await exporter([path({ version: 'v1' }), path({ version: 'v1', code: '503', flags: 'UF', ms: 0.4 })], [9, 1]);
    server = ex.server;
    const target = new URL(ex.url);
    writeFileSync(join(dir, 'prometheus.yml'), `global:\n  scrape_interval: 1s\nscrape_configs:\n- job_name: sidecars\n  metrics_path: /stats/prometheus\n  static_configs:\n  - targets: ['${target.host}']\n`);
    const port = await freePort();
    prom = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    prom.stderr!.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
    t = new MeshTelemetry({ prometheus: `http://127.0.0.1:${port}`, intervalMs: 60_000, windowMs: 10_000 });
    let edge;
    for (let i = 0; i < 60; i++) {
      await t.tick();
      edge = aggregate(t.window().series, t.window().seconds).edges.find((e) => e.id === 'svc:cart.shop.svc.cluster.local>wl:shop/cart-v1');
      if (edge && edge.requests >= 20) break;
      await sleep(500);
    }
    assert.ok(edge && edge.requests >= 20, `Prometheus answered no window with traffic: ${JSON.stringify(t.window())}\n${log}`);
    assert.equal(t.window().source, 'prometheus');
    assert.deepEqual(t.window().scrapeErrors, []);
    // increase() extrapolates both counters alike: the ratio stays 9:1.
    assert.ok(Math.abs(edge.successRate! - 0.9) < 0.02, String(edge.successRate));
    assert.equal(edge.mtls, 1);
    // 10 % of the observations ≤ 0.5 ms, 90 % in (10, 25]: p50 and p99 inside (10, 25].
    assert.ok(edge.p50! > 10 && edge.p50! <= 25 && edge.p99! > 10 && edge.p99! <= 25, JSON.stringify(edge));
    const err = t.window().recentErrors.find((e) => e.flags === 'UF');
    assert.ok(err && err.code === '503' && err.count > 0, JSON.stringify(t.window().recentErrors));
    assert.deepEqual(t.window().ejections, [{ proxy: target.host, cluster: 'outbound|80|v1|cart.shop.svc.cluster.local', ejected: 1 }]);
  });
});
