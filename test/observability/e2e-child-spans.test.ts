// Per-attempt upstream spans: a `weft proxy` fed by a static ADS server with the control plane's translation,
// edited to give the outbound HCM Zipkin tracing and the router `start_child_span`. The upstream answers 503 to a
// request's first attempt and 200 to its retry (Istio's default retry policy retries 503), so the request's
// egress span gets two `router <cluster> egress` CLIENT children, one per attempt, each carrying its own context
// to the upstream. Also: access logs and tracing on an HTTP/2 (h2c) downstream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { ZipkinConfig_CollectorEndpointVersion, ZipkinConfigSchema } from '../../src/xds/gen/envoy/config/trace/v3/zipkin_pb.js';
import { Tracing_HttpSchema } from '../../src/xds/gen/envoy/config/trace/v3/http_tracer_pb.js';
import { HttpConnectionManager_TracingSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { PercentSchema } from '../../src/xds/gen/envoy/type/v3/percent_pb.js';
import { eventually, send, Upstream } from '../helpers/http-upstream.js';
import { h2Request } from '../helpers/h2-clients.js';
import { serviceYaml, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { editHcm, startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { TraceCollector } from './collector.js';

describe('per-attempt upstream spans (router start_child_span)', () => {
  const collector = new TraceCollector();
  const failedOnce = new Set<string>();
  // 503 to the first attempt of each request id, 200 afterwards.
  const app = new Upstream('app', (req, res, body, u) => {
    const rid = String(req.headers['x-request-id']);
    if (req.url === '/retry' && !failedOnce.has(rid)) {
      failedOnce.add(rid);
      res.writeHead(503).end();
      return;
    }
    u.reply(res, body);
  });
  let sp: StaticProxy;

  before(async () => {
    await collector.start();
    await app.start();
    const yaml = yamlDocuments([
      serviceYaml('app', { name: 'http', port: 9080 }),
      workloadEntryYaml('app-1', { app: 'app' }, 'http', app.port),
      serviceYaml('zipkin', { name: 'http', port: 9411 }),
      workloadEntryYaml('zipkin-1', { app: 'zipkin' }, 'http', collector.port),
    ]);
    sp = await startStaticProxy(yaml, {
      nodeId: 'child-spans',
      mutate: (r) =>
        editHcm(r, 'outbound', (hcm) => {
          const z = create(ZipkinConfigSchema, { collectorCluster: 'outbound|9411||zipkin.default.svc.cluster.local', collectorEndpoint: '/api/v2/spans', collectorEndpointVersion: ZipkinConfig_CollectorEndpointVersion.HTTP_JSON });
          hcm.tracing = create(HttpConnectionManager_TracingSchema, {
            randomSampling: create(PercentSchema, { value: 100 }),
            provider: create(Tracing_HttpSchema, { name: 'envoy.tracers.zipkin', configType: { case: 'typedConfig', value: pack(ZipkinConfigSchema, z) } }),
          });
          const router = hcm.httpFilters[hcm.httpFilters.length - 1]!;
          router.configType = { case: 'typedConfig', value: pack(RouterSchema, create(RouterSchema, { startChildSpan: true })) };
        }),
    });
  });

  after(async () => {
    await sp.stop();
    await app.stop();
    await collector.stop();
  });

  test('one CLIENT span per upstream attempt, children of the egress span, each propagated to its attempt', async () => {
    const r = await send(sp.outboundPort, { path: '/retry', headers: { host: 'app:9080' } });
    assert.equal(r.status, 200);
    const attempts = app.seen.filter((s) => s.url === '/retry');
    assert.equal(attempts.length, 2);
    const traceId = String(attempts[0]!.headers['x-b3-traceid']);
    await eventually(() => collector.trace(traceId).length >= 3, 'the egress span and two attempt spans');
    const spans = collector.trace(traceId);
    assert.equal(spans.length, 3);
    const egress = spans.find((s) => s.name === 'egress')!;
    const tries = spans.filter((s) => s.name === 'router outbound|9080||app.default.svc.cluster.local egress');
    assert.equal(tries.length, 2);
    for (const t of tries) {
      assert.equal(t.kind, 'CLIENT');
      assert.equal(t.parentId, egress.id);
    }
    // Each attempt carried its own span as the parent for the upstream.
    assert.deepEqual(new Set(attempts.map((a) => a.headers['x-b3-spanid'])), new Set(tries.map((t) => t.id)));
    assert.deepEqual(tries.map((t) => t.tags['http.status_code']).sort(), ['200', '503']);
    assert.equal(tries.find((t) => t.tags['http.status_code'] === '503')!.tags['error'], 'true');
    assert.equal(egress.tags['http.status_code'], '200');
  });

  test('HTTP/2 (h2c) downstream requests are traced too', async () => {
    const r = await h2Request(sp.outboundPort, { authority: 'app:9080', path: '/h2' });
    assert.equal(r.status, 200);
    const seen = app.seen.find((s) => s.url === '/h2')!;
    const traceId = String(seen.headers['x-b3-traceid']);
    await eventually(() => collector.trace(traceId).length >= 2, 'the h2 request spans');
    const egress = collector.trace(traceId).find((s) => s.name === 'egress')!;
    assert.equal(egress.tags['http.protocol'], 'HTTP/2');
    assert.ok(Number(egress.tags['response_size']) > 0);
  });
});
