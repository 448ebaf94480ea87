/**
 * Micro-benchmark of the per-request stats calls (not a test): ClusterRequestStats.chargeCode and
 * upstream_rq_time.record, and HttpConnStats requestStart / responseHead / requestEnd, on stats created once, without
 * and with Istio's standard metrics (stats/istio: one label set per request, as a steady stream of requests sees).
 * Prints ops/s for each.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/proxy/micro/request-stats.js [--seconds 1]
 */
import { StatsStore } from '../../../src/proxy/stats/index.js';
import { ClusterRequestStats, HttpConnStats, ListenerStats } from '../../../src/proxy/stats/request-stats.js';
import { IstioMetrics } from '../../../src/proxy/stats/istio/metrics.js';
import { IstioHttpStats } from '../../../src/proxy/stats/istio/http.js';
import { compileCluster } from '../../../src/proxy/upstream/cluster/index.js';
import { H1DownstreamStream, H1ServerConnection, type DownstreamStream } from '../../../src/proxy/http/server/connection.js';
import type { ResponseHead } from '../../../src/proxy/http/headers.js';
import { Socket } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { ClusterSchema } from '../../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';

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
// A real downstream stream on an unconnected socket (nothing is written: the calls below only touch stats).
const conn = new H1ServerConnection(new Socket(), { onRequest() {} }, {}, { serverName: '', serverHeader: 'PASS_THROUGH' }, () => undefined);
const stream = new H1DownstreamStream(conn, { method: 'GET', path: '/', authority: 'reviews:9080', scheme: 'http', headers: [], httpVersion: '1.1' });
stream.status = 200;
const resp: ResponseHead = { status: 200, headers: [] };
bench('http requestStart + responseHead + requestEnd', () => {
  http.requestStart();
  http.responseHead(stream, resp);
  http.requestEnd(stream);
});

const metrics = new IstioMetrics(store, { nodeId: 'productpage-v1', metadata: { NAMESPACE: 'default', LABELS: { app: 'productpage', version: 'v1' } } });
const rt = compileCluster(
  create(ClusterSchema, {
    name: 'outbound|9080||reviews.default.svc.cluster.local',
    clusterDiscoveryType: { case: 'type', value: 0 },
    metadata: { filterMetadata: { istio: { services: [{ host: 'reviews.default.svc.cluster.local', name: 'reviews', namespace: 'default' }] } } },
  }),
);
const withIstio = new HttpConnStats(store.scope('http.outbound_istio.'), listener);
withIstio.istio = IstioHttpStats.of(metrics, 'source');
(stream as DownstreamStream).cluster = { runtime: rt } as DownstreamStream['cluster'];
bench('... with Istio metrics (istio_requests_total and histograms)', () => {
  withIstio.requestStart();
  withIstio.responseHead(stream, resp);
  withIstio.requestEnd(stream);
});
rt.close();
conn.socket.destroy();
