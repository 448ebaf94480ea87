/**
 * Micro-benchmark of the stats hot path (not a test): `counter.inc()`, `gauge.inc()/dec()`, `histogram.record(ms)`
 * on preallocated stats, and `family.get(labels)` cached lookups (the istio_* standard-metrics hook). Also renders
 * `/stats/prometheus` for a store holding 1,000 clusters' worth of stats, which is the admin path, for scale.
 * Prints ops/s for each.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/proxy/micro/stats-record.js [--seconds 1]
 */
import { HistogramUnit, StatsStore, parseStatsParams, renderPrometheus } from '../../../src/proxy/stats/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

function bench(label: string, fn: () => unknown, batch = 10_000): void {
  for (let i = 0; i < 20_000; i++) fn();
  const end = performance.now() + SECONDS * 1000;
  let ops = 0;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < batch; i++) fn();
    ops += batch;
  }
  const rate = ops / ((performance.now() - start) / 1000);
  console.log(`${label.padEnd(56)} ${Math.round(rate).toLocaleString('en-US').padStart(14)} ops/s`);
}

const store = new StatsStore();
const cluster = store.scope('cluster.outbound|9080||reviews.default.svc.cluster.local.');
const rqTotal = cluster.counter('upstream_rq_total');
const cxActive = cluster.gauge('upstream_cx_active');
const rqTime = cluster.histogram('upstream_rq_time', HistogramUnit.Milliseconds);

// Latencies spread over several decades, as a real service shows them.
const latencies = Float64Array.from({ length: 4096 }, (_, i) => 0.2 + ((i * 7919) % 4096) ** 1.6 / 100);
let li = 0;

const requests = store.counterFamily('istio_requests_total', ['reporter', 'source_workload', 'destination_service', 'response_code']);
const fullLabels = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
];
const istioFull = store.counterFamily('istio_requests_total_full', fullLabels);
const codes = ['200', '201', '204', '301', '404', '500', '503', '504'];
const labelSets = codes.map((code) => ['destination', 'productpage-v1', 'reviews.default.svc.cluster.local', code]);
const fullSets = codes.map((code) => fullLabels.map((l, i) => (l === 'response_code' ? code : `value-${i}`)));
for (const s of labelSets) requests.get(s);
for (const s of fullSets) istioFull.get(s);
let ki = 0;

console.log(`stats hot path, ${SECONDS}s per case (Node ${process.version})`);
bench('counter.inc()', () => rqTotal.inc());
bench('gauge.inc() + gauge.dec()', () => {
  cxActive.inc();
  cxActive.dec();
});
bench('histogram.record(ms), values over 5 decades', () => rqTime.record(latencies[li++ & 4095]!));
bench('histogram.record(ms), one value', () => rqTime.record(12));
bench('family.get(4 labels), cached, + inc()', () => requests.get(labelSets[ki++ & 7]!).inc());
bench('family.get(19 labels, Istio standard set), cached', () => istioFull.get(fullSets[ki++ & 7]!));

// The admin side, for scale: 1,000 clusters with 20 counters, 4 gauges and 1 histogram each.
const big = new StatsStore();
for (let c = 0; c < 1000; c++) {
  const s = big.scope(`cluster.outbound|80||svc-${c}.ns.svc.cluster.local.`);
  for (let i = 0; i < 20; i++) s.counter(`counter_${i}`).add(i);
  for (let i = 0; i < 4; i++) s.gauge(`gauge_${i}`).set(i);
  s.histogram('upstream_rq_time', HistogramUnit.Milliseconds).record(c % 50);
}
const p = parseStatsParams(new URLSearchParams(), true);
if ('error' in p) throw new Error(p.error);
let size = 0;
const t0 = performance.now();
size = renderPrometheus(big, p.params).length;
const first = performance.now() - t0;
const t1 = performance.now();
for (let i = 0; i < 5; i++) renderPrometheus(big, p.params);
const again = (performance.now() - t1) / 5;
console.log(`/stats/prometheus, 25,000 stats: first render ${first.toFixed(0)} ms (tag extraction), then ${again.toFixed(0)} ms, ${(size / 1e6).toFixed(1)} MB`);
