// The pieces of Istio's metrics that work on bytes and names alone (stats/istio): the x-envoy-peer-metadata encoding
// (a protobuf Struct, decoded with @bufbuild/protobuf's own Struct reader) and header removal, gRPC message counting
// across arbitrary chunk boundaries, the local workload from node metadata, and a cluster's service metadata. The
// end-to-end behaviour (both reporters, Prometheus) is test/proxy/e2e-metrics.test.ts.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary, toJson } from '@bufbuild/protobuf';
import { StructSchema } from '@bufbuild/protobuf/wkt';
import { GrpcFrameCounter } from '../../src/proxy/stats/istio/grpc-frames.js';
import { decodePeerMetadata, encodePeerMetadata, PEER_CACHE_SIZE, PeerExchange, takePeerHeaders } from '../../src/proxy/stats/istio/peer-metadata.js';
import { meshServiceOf } from '../../src/proxy/stats/istio/service.js';
import { localWorkload, workloadFromEndpointMetadata } from '../../src/proxy/stats/istio/workload.js';
import { IstioMetrics, namespaceOfPrincipal } from '../../src/proxy/stats/istio/metrics.js';
import { IstioHttpStats, MAX_PEERS } from '../../src/proxy/stats/istio/http.js';
import { H1DownstreamStream, H1ServerConnection } from '../../src/proxy/http/server/connection.js';
import { Socket } from 'node:net';
import { ISTIO_STATS_TAGS } from '../../src/proxy/stats/istio/tags.js';
import { StatsStore, parseStatsParams, renderPrometheus } from '../../src/proxy/stats/index.js';
import { ClusterRequestStats, HttpConnStats, ListenerStats } from '../../src/proxy/stats/request-stats.js';

function frame(len: number, compressed = 0): Buffer {
  const b = Buffer.alloc(5 + len, 0x61);
  b[0] = compressed;
  b.writeUInt32BE(len, 1);
  return b;
}

describe('peer metadata exchange encoding', () => {
  const local = localWorkload('reviews-v2-5d8f.default', {
    NAMESPACE: 'default',
    WORKLOAD_NAME: 'reviews-v2',
    CLUSTER_ID: 'east',
    LABELS: { app: 'reviews', version: 'v2', 'service.istio.io/canonical-revision': 'r2' },
  });

  test('the header value is base64 of a protobuf Struct with Istio keys, and decodes to the same workload', () => {
    const value = encodePeerMetadata(local, 'reviews-v2-5d8f.default');
    const json = toJson(StructSchema, fromBinary(StructSchema, Buffer.from(value, 'base64')));
    assert.deepEqual(json, {
      CLUSTER_ID: 'east',
      LABELS: { app: 'reviews', 'service.istio.io/canonical-name': 'reviews', 'service.istio.io/canonical-revision': 'r2', version: 'v2' },
      NAME: 'reviews-v2-5d8f.default',
      NAMESPACE: 'default',
      WORKLOAD_NAME: 'reviews-v2',
    });
    const back = decodePeerMetadata(value)!;
    assert.deepEqual({ ...back }, { ...local, serviceAccount: '' });
  });

  test('values that are not a Struct decode to nothing; the cache answers a value once and stays bounded', () => {
    assert.equal(decodePeerMetadata('%%%not base64'), undefined);
    assert.equal(decodePeerMetadata(Buffer.from([0xff, 0xff, 0xff]).toString('base64')), undefined);
    const x = new PeerExchange(local, 'id-1');
    const v = x.value;
    assert.equal(x.peer(v), x.peer(v), 'one object per value');
    assert.equal(x.peer('garbage!'), undefined);
    for (let i = 0; i < PEER_CACHE_SIZE * 2; i++) x.peer(encodePeerMetadata({ ...local, workloadName: `w${i}` }, `n${i}`));
    assert.ok((x as unknown as { cache: Map<string, unknown> }).cache.size <= PEER_CACHE_SIZE);
  });

  test('takePeerHeaders removes both headers in any case and keeps the others in order', () => {
    const h = ['Host', 'a', 'X-Envoy-Peer-Metadata-Id', 'id', 'accept', '*/*', 'x-envoy-peer-metadata', 'VALUE', 'x-envoy-peer-metadata', 'second', 'x-other', '1'];
    assert.equal(takePeerHeaders(h), 'VALUE');
    assert.deepEqual(h, ['Host', 'a', 'accept', '*/*', 'x-other', '1']);
    const none = ['host', 'a', 'x-envoy-peer-metadatx', 'b'];
    assert.equal(takePeerHeaders(none), '');
    assert.deepEqual(none, ['host', 'a', 'x-envoy-peer-metadatx', 'b']);
    const x = new PeerExchange(local, 'id-1');
    const out = ['x-envoy-peer-metadata', 'spoofed', 'content-type', 'text/plain'];
    assert.equal(takePeerHeaders(out), 'spoofed');
    x.inject(out);
    assert.deepEqual(out, ['content-type', 'text/plain', 'x-envoy-peer-metadata-id', 'id-1', 'x-envoy-peer-metadata', x.value]);
  });
});

describe('gRPC message counting', () => {
  test('counts messages whatever the chunk boundaries, including empty and large messages', () => {
    const stream = Buffer.concat([frame(3), frame(0), frame(70_000, 1), frame(1), frame(0)]);
    for (const size of [1, 2, 3, 5, 7, 4096, stream.length]) {
      const c = new GrpcFrameCounter();
      for (let i = 0; i < stream.length; i += size) c.request(stream.subarray(i, i + size));
      assert.equal(c.requestMessages, 5, `chunks of ${size}`);
      assert.equal(c.responseMessages, 0);
    }
    const c = new GrpcFrameCounter();
    c.response(frame(10).subarray(0, 4));
    assert.equal(c.responseMessages, 0, 'a prefix not complete yet');
    c.response(frame(10).subarray(4));
    assert.equal(c.responseMessages, 1);
  });
});

describe('workload identity', () => {
  test("the local workload: Istio's node id gives the pod name, canonical labels fall back as the injector's", () => {
    const w = localWorkload('sidecar~10.0.0.1~ratings-v1-abc.default~default.svc.cluster.local', { NAMESPACE: 'default', LABELS: { 'app.kubernetes.io/name': 'ratings', version: 'v1' } });
    assert.equal(w.workloadName, 'ratings-v1-abc');
    assert.equal(w.canonicalService, 'ratings');
    assert.equal(w.canonicalRevision, 'v1');
    assert.equal(w.clusterId, 'Kubernetes');
    assert.equal(w.app, '');
    const bare = localWorkload('plain-id', undefined);
    assert.equal(bare.workloadName, 'plain-id');
    assert.equal(bare.canonicalService, 'plain-id');
    assert.equal(bare.canonicalRevision, 'latest');
  });

  test("an endpoint's istio.workload metadata and a principal's namespace", () => {
    assert.deepEqual(workloadFromEndpointMetadata('reviews-v1;bookinfo;reviews;v1;Kubernetes'), {
      workloadName: 'reviews-v1',
      namespace: 'bookinfo',
      canonicalService: 'reviews',
      canonicalRevision: 'v1',
      clusterId: 'Kubernetes',
      app: '',
      version: '',
      serviceAccount: '',
    });
    assert.equal(workloadFromEndpointMetadata('a;b'), undefined);
    assert.equal(namespaceOfPrincipal('spiffe://cluster.local/ns/bookinfo/sa/reviews'), 'bookinfo');
    assert.equal(namespaceOfPrincipal('spiffe://cluster.local/ns/bookinfo'), 'bookinfo');
    assert.equal(namespaceOfPrincipal('spiffe://cluster.local/sa/x'), '');
  });

  test("a cluster's service from filter_metadata.istio, and the clusters that never get exchange headers", () => {
    const md = (istio: Record<string, unknown>) => ({ filterMetadata: { istio } }) as never;
    assert.deepEqual(meshServiceOf({ name: 'outbound|9080||reviews.bookinfo.svc.cluster.local', metadata: md({ services: [{ host: 'reviews.bookinfo.svc.cluster.local', name: 'reviews', namespace: 'bookinfo' }] }) }), {
      host: 'reviews.bookinfo.svc.cluster.local',
      name: 'reviews',
      namespace: 'bookinfo',
      external: false,
    });
    assert.equal(meshServiceOf({ name: 'x', metadata: md({ services: [{ host: 'api.example.com' }], external: true }) }).name, 'api');
    assert.equal(meshServiceOf({ name: 'x', metadata: md({ services: [{ host: 'api.example.com' }], external: true }) }).external, true);
    assert.deepEqual(meshServiceOf({ name: 'PassthroughCluster', metadata: undefined }), { host: '', name: 'PassthroughCluster', namespace: '', external: true });
    assert.deepEqual(meshServiceOf({ name: 'inbound|8080||', metadata: undefined }), { host: '', name: '', namespace: '', external: false });
  });
});

describe("Istio's tag extraction (--stats-tags istio)", () => {
  test('Envoy stats print with the labels an Istio sidecar gives them', () => {
    const store = new StatsStore({ useAllDefaultTags: false, statsTags: ISTIO_STATS_TAGS });
    const cluster = new ClusterRequestStats(store.scope('cluster.outbound|9080||reviews.default.svc.cluster.local.'));
    cluster.chargeCode(200);
    cluster.chargeCode(503);
    const inbound = new HttpConnStats(store.scope('http.10.0.0.1_9080.'), new ListenerStats(store.scope('listener.10.0.0.1:9080.')));
    inbound.connectionOpen();
    const outbound = new HttpConnStats(store.scope('http.outbound.'), null);
    outbound.requestStart();
    const q = parseStatsParams(new URLSearchParams(), true);
    assert.ok('params' in q);
    const text = renderPrometheus(store, q.params);
    const has = (line: string) => assert.ok(text.split('\n').includes(line), `${line} missing in\n${text}`);
    const c = 'cluster_name="outbound|9080||reviews.default.svc.cluster.local"';
    has(`envoy_cluster_upstream_rq_completed{${c}} 2`);
    has(`envoy_cluster_upstream_rq{response_code="200",${c}} 1`);
    has(`envoy_cluster_upstream_rq{response_code_class="5xx",${c}} 1`);
    has('envoy_http_downstream_cx_total{http_conn_manager_prefix="10.0.0.1_9080"} 1');
    has('envoy_listener_downstream_cx_total{listener_address="10.0.0.1_9080"} 1');
    has('envoy_http_outbound_downstream_rq_total{} 1');
  });
});

describe('label sets stay bounded', () => {
  test('peers a client makes up beyond MAX_PEERS are counted as unknown', () => {
    const store = new StatsStore();
    const metrics = new IstioMetrics(store, { nodeId: 'reviews-v1', metadata: { NAMESPACE: 'default', LABELS: { app: 'reviews' } } });
    const rec = IstioHttpStats.of(metrics, 'destination');
    // Real downstream streams on a connection whose socket never connects (nothing is written).
    const conn = new H1ServerConnection(new Socket(), { onRequest() {} }, {}, { serverName: '', serverHeader: 'PASS_THROUGH' }, () => undefined);
    const fake = (i: number) => encodePeerMetadata({ ...localWorkload(`w${i}`, { NAMESPACE: 'x' }) }, `n${i}`);
    const extra = 25;
    for (let i = 0; i < MAX_PEERS + extra; i++) {
      const s = new H1DownstreamStream(conn, { method: 'GET', path: '/', authority: 'reviews', scheme: 'http', headers: [], httpVersion: '1.1' });
      s.status = 200;
      s.peer = metrics.exchange.peer(fake(i)) ?? null;
      rec.record(s);
    }
    conn.socket.destroy();
    const series = metrics.requests.children();
    assert.equal(series.length, MAX_PEERS + 1);
    const unknown = series.filter((c) => c.explicitTags![3] === 'unknown');
    assert.equal(unknown.length, 1);
    assert.equal(unknown[0]!.value, extra);
  });
});

