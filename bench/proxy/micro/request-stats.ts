/**
 * Micro-benchmark of the per-request stats calls (not a test): ClusterRequestStats.chargeCode and
 * upstream_rq_time.record, and HttpConnStats requestStart / responseHead / requestEnd, on stats created once.
 * Prints ops/s for each.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/proxy/micro/request-stats.js [--seconds 1]
 */
import { StatsStore } from '../../../src/proxy/stats/index.js';
import { ClusterRequestStats, HttpConnStats, ListenerStats } from '../../../src/proxy/stats/request-stats.js';

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
const cluster = new ClusterRequestStats(store.scope('cluster.outbound|9080||reviews.default.svc.cluster.local.'));
const listener = new ListenerStats(store.scope('listener.127.0.0.1:15001.'));
const http = new HttpConnStats(store.scope('http.outbound.'), listener);
const codes = [200, 200, 200, 404, 503];
let i = 0;

bench('cluster chargeCode (200/404/503 mix)', () => cluster.chargeCode(codes[i++ % 5]!));
bench('cluster upstream_rq_time.record', () => cluster.upstream_rq_time.record(i++ % 50));
const t0 = Date.now();
bench('http requestStart + responseHead + requestEnd', () => {
  http.requestStart();
  http.responseHead(200);
  http.requestEnd(t0);
});
