// HTTP router on RouteConfigurations produced by Weft's translator from real config (YAML → model → xDS), the
// messages the proxy actually receives: every routing rule of the fixtures, asserted on requests.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { unpack } from '../../src/xds/index.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import type { RouteConfiguration } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HTTPFaultSchema } from '../../src/xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { CorsPolicySchema } from '../../src/xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import type { RequestHead, ResponseHead } from '../../src/proxy/http/headers.js';
import {
  applyRequestHeaders,
  applyResponseHeaders,
  compileRouteConfiguration,
  localReplyLocation,
  rewritePath,
} from '../../src/proxy/http/router/index.js';
import type { CompiledRouteConfig, RouteDecision } from '../../src/proxy/http/router/index.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

function outboundFor(files: string[], namespace: string, labels: Record<string, string> = {}): RouteConfiguration {
  const raws = files.flatMap((f) => {
    const r = parseConfigText(readFileSync(fixtures + f, 'utf8'), f);
    assert.deepEqual(r.diagnostics, [], `${f} parses`);
    return r.resources;
  });
  const { model, diagnostics } = buildModel(raws);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error'), []);
  const registry = new ServiceRegistry();
  registry.setModel(model);
  const proxy = proxyFromNode(create(NodeSchema, { id: `test~${namespace}`, metadata: { NAMESPACE: namespace, LABELS: labels } as never }));
  const res = translateProxy({ model, registry, proxy });
  const rc = res.routes.find((r) => r.name === 'outbound');
  assert.ok(rc, 'an outbound RouteConfiguration');
  return rc;
}

function head(authority: string, path: string, headers: string[] = [], method = 'GET'): RequestHead {
  return { method, path, authority, scheme: 'http', headers, httpVersion: '1.1' };
}

/** A small deterministic uniform generator (Park–Miller). */
function rng(seed: number): () => number {
  let s = seed;
  return () => ((s = (s * 16807) % 2147483647) - 1) / 2147483646;
}

function must(c: CompiledRouteConfig, h: RequestHead, random = 0.5): RouteDecision {
  const d = c.route(h, { random });
  assert.ok(d, `a route for ${h.authority}${h.path}`);
  return d;
}

const REVIEWS = 'reviews.bookinfo.svc.cluster.local';
const cl = (port: number, subset: string, host: string): string => `outbound|${port}|${subset}|${host}`;

describe('translator output: route-rules.yaml', () => {
  const rc = outboundFor(['translate/route-services.yaml', 'translate/route-rules.yaml'], 'bookinfo');
  const c = compileRouteConfiguration(rc);

  test('compiles with nothing ignored; every routed cluster is listed', () => {
    assert.deepEqual(c.warnings, []);
    assert.equal(c.validateClusters, false);
    assert.equal(c.maxDirectResponseBodySizeBytes, 1024 * 1024);
    assert.ok(c.clusterNames.has(cl(9080, 'v1', REVIEWS)));
    assert.ok(c.clusterNames.has(cl(9080, '', 'shadow.bookinfo.svc.cluster.local')), 'mirror clusters too');
    assert.ok(c.clusterNames.has('PassthroughCluster'));
  });

  test('every alias of a service port reaches its virtual host; unknown hosts go to allow_any', () => {
    for (const a of [`${REVIEWS}:9080`, 'reviews.bookinfo.svc:9080', 'reviews.bookinfo:9080', 'reviews:9080', 'Reviews:9080']) {
      assert.equal(c.virtualHostFor(a), `${REVIEWS}:9080`, a);
    }
    assert.equal(c.virtualHostFor('web'), 'web.bookinfo.svc.cluster.local:80', 'port 80 also without the port');
    assert.equal(c.virtualHostFor('10.0.0.80:80'), 'web.bookinfo.svc.cluster.local:80');
    const d = must(c, head('example.org', '/anything'));
    assert.equal(d.virtualHost.name, 'allow_any');
    assert.equal(d.cluster, 'PassthroughCluster');
    assert.equal(d.timeoutMs, 0, 'timeout 0s: none');
    assert.equal(d.virtualHost.includeRequestAttemptCount, true);
    // reviews without the port is not a domain (only port 80 has bare names): passthrough.
    assert.equal(must(c, head('reviews', '/')).cluster, 'PassthroughCluster');
  });

  test('uri exact with ignoreUriCase, uri regex, catch-all', () => {
    assert.equal(must(c, head('reviews:9080', '/exact')).routeName, 'exact.one');
    assert.equal(must(c, head('reviews:9080', '/EXACT?x=1')).routeName, 'exact.one');
    assert.equal(must(c, head('reviews:9080', '/exact/more')).routeName, 'rest');
    assert.equal(must(c, head('reviews:9080', '/r/abc')).routeName, 'exact.two');
    assert.equal(must(c, head('reviews:9080', '/r/abc1')).routeName, 'rest', 'the regex must match the whole path');
    assert.equal(must(c, head('reviews:9080', '/r/abc')).cluster, cl(9080, 'v1', REVIEWS));
  });

  test('headers, withoutHeaders, method, authority, scheme and query params all must hold', () => {
    const good = ['x-user', 'test', 'x-pre', 'abc', 'x-re', 'a--b', 'x-any', ''];
    const ok = (h: string[], path = '/api/x?q=1&r=22', method = 'POST', authority = 'reviews:9080') => must(c, head(authority, path, h, method)).routeName;
    assert.equal(ok(good), 'headers');
    assert.equal(must(c, head('reviews:9080', '/api/x?q=1&r=22', good, 'POST')).cluster, cl(9080, 'v2', REVIEWS));
    assert.equal(ok(['x-user', 'other', ...good.slice(2)]), 'rest', 'x-user exact');
    assert.equal(ok(good.slice(0, 6)), 'rest', 'x-any must be present');
    assert.equal(ok([...good, 'x-no', 'bad']), 'rest', 'withoutHeaders x-no: bad');
    assert.equal(ok([...good, 'x-no', 'fine']), 'headers');
    assert.equal(ok([...good, 'x-absent', '1']), 'rest', 'withoutHeaders x-absent: {} (must be absent)');
    assert.equal(ok(good, '/api/x?q=1&r=22', 'GET'), 'rest', 'method POST');
    assert.equal(ok(good, '/api/x?q=2&r=22'), 'rest', 'query q=1');
    assert.equal(ok(good, '/api/x?q=1&r=2x'), 'rest', 'query r regex');
    assert.equal(ok(good, '/api/x?q=1&r=22', 'POST', `${REVIEWS}:9080`), 'headers', 'authority prefix "reviews"');
    assert.equal(ok(good, '/api/x?q=1&r=22', 'POST', '10.0.0.80:80'), 'default', 'another host entirely');
  });

  test('weighted split 3:1 over 10,000 random values', () => {
    const counts = new Map<string, number>();
    const random = rng(42);
    for (let i = 0; i < 10_000; i++) {
      const d = must(c, head('reviews:9080', '/split'), random());
      counts.set(d.cluster, (counts.get(d.cluster) ?? 0) + 1);
    }
    const v1 = counts.get(cl(9080, 'v1', REVIEWS)) ?? 0;
    const v2 = counts.get(cl(9080, 'v2', REVIEWS)) ?? 0;
    assert.equal(v1 + v2, 10_000, 'the weight-0 destination gets nothing');
    assert.ok(Math.abs(v1 - 7500) < 250, `v1 ~75%: ${v1}`);
    assert.ok(Math.abs(v2 - 2500) < 250, `v2 ~25%: ${v2}`);
    // The split is by intervals: [0, 3) → v1, [3, 4) → v2.
    assert.equal(must(c, head('reviews:9080', '/split'), 0.74).cluster, cl(9080, 'v1', REVIEWS));
    assert.equal(must(c, head('reviews:9080', '/split'), 0.75).cluster, cl(9080, 'v2', REVIEWS));
  });

  test('split: header operations per destination and per route, host rewrite from :authority', () => {
    const h = head('reviews:9080', '/split', ['x-secret', 's', 'x-a', 'old', 'x-added', 'first']);
    const d = must(c, h, 0.1);
    applyRequestHeaders(d, h);
    // Destination first (x-split), then the route: remove x-secret, overwrite x-a and x-b (moved to the end, as
    // Envoy's setReferenceKey does), append x-added.
    assert.deepEqual(h.headers, ['x-added', 'first', 'x-split', 'v1', 'x-a', '1', 'x-b', '2', 'x-added', 'yes']);
    assert.equal(h.authority, 'reviews.internal');

    const h2 = head('reviews:9080', '/split');
    const d2 = must(c, h2, 0.9);
    const resp: ResponseHead = { status: 200, headers: ['x-internal', 'secret', 'x-resp', 'upstream'] };
    applyResponseHeaders(d2, resp, h2);
    assert.deepEqual(resp.headers, ['x-from', 'v2', 'x-resp', 'r'], 'the destination removes x-internal and adds x-from, then the route sets x-resp');
  });

  test('split: mirror 50% to shadow, CORS as per-filter config, consistent hash on x-user', () => {
    const d = must(c, head('reviews:9080', '/split'));
    assert.equal(d.mirrorPolicies.length, 1);
    const m = d.mirrorPolicies[0]!;
    assert.equal(m.cluster, cl(9080, '', 'shadow.bookinfo.svc.cluster.local'));
    assert.equal(m.traceSampled, false);
    assert.equal(m.sampled(0.49), true);
    assert.equal(m.sampled(0.5), false);
    const cors = unpack(CorsPolicySchema, d.filterConfig('envoy.filters.http.cors')!);
    assert.equal(cors.allowMethods, 'GET,POST');
    assert.deepEqual(d.hashPolicies.map((p) => p.kind === 'header' && p.headerName), ['x-user', 'x-user']);
  });

  test('retries, timeouts and faults (ratings)', () => {
    const retried = must(c, head('ratings:9080', '/anything'));
    assert.equal(retried.routeName, 'retried');
    assert.equal(retried.timeoutMs, 5000);
    assert.equal(retried.maxGrpcTimeoutMs, 5000);
    const rp = retried.retryPolicy!;
    assert.deepEqual(rp.retryOn, ['5xx', 'connect-failure', 'retriable-status-codes']);
    assert.equal(rp.has('5xx'), true);
    assert.equal(rp.has('gateway-error'), false);
    assert.equal(rp.numRetries, 3);
    assert.equal(rp.perTryTimeoutMs, 1500);
    assert.deepEqual(rp.retriableStatusCodes, [429]);
    assert.equal(rp.hostSelectionMaxAttempts, 5);
    assert.equal(rp.previousPrioritiesUpdateFrequency, 2);
    assert.equal(rp.previousHosts, false, 'a cookie hash: no previous_hosts predicate');

    assert.equal(must(c, head('ratings:9080', '/once')).retryPolicy, undefined, 'attempts: 0 → no retry policy');
    const mesh = must(c, head('ratings:9080', '/fault')).retryPolicy!;
    assert.deepEqual(mesh.retryOn, ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']);
    assert.equal(mesh.numRetries, 2);

    const fault = unpack(HTTPFaultSchema, must(c, head('ratings:9080', '/fault')).filterConfig('envoy.filters.http.fault')!);
    assert.equal(fault.delay?.percentage?.numerator, 75_000);
    assert.equal(fault.abort?.errorType.case, 'httpStatus');
    assert.equal(must(c, head('ratings:9080', '/once')).filterConfig('envoy.filters.http.fault'), undefined);
    const cookie = must(c, head('ratings:9080', '/x')).hashPolicies[0]!;
    assert.deepEqual(cookie, { kind: 'cookie', name: 'session', path: '/', attributes: [], ttlMs: 10_000, terminal: false });
  });

  test('productpage: previous_hosts predicate, source-IP hash', () => {
    const d = must(c, head('productpage:9080', '/'));
    assert.equal(d.retryPolicy!.previousHosts, true);
    assert.deepEqual(d.hashPolicies, [{ kind: 'sourceIp', terminal: false }]);
  });

  test('details: prefix rewrite with host rewrite, regex rewrite with a capture group', () => {
    const h = head('details:9080', '/old/page?x=1');
    const d = must(c, h);
    assert.equal(d.routeName, 'prefix-rewrite');
    applyRequestHeaders(d, h);
    assert.equal(rewritePath(d, h), true);
    assert.equal(h.path, '/new/page?x=1');
    assert.equal(h.authority, 'details.example');

    const h2 = head('details:9080', '/re/a/b?y=2');
    const d2 = must(c, h2);
    assert.equal(rewritePath(d2, h2, true), true);
    assert.equal(h2.path, '/v2/a/b?y=2');
    assert.deepEqual(h2.headers, ['x-envoy-original-path', '/re/a/b?y=2']);
  });

  test('details: redirects and a direct response', () => {
    const moved = must(c, head('details:9080', '/moved?k=v'));
    assert.equal(moved.kind, 'redirect');
    assert.equal(moved.status, 301);
    assert.equal(localReplyLocation(moved, head('details:9080', '/moved?k=v')), 'http://details.example/new-home?k=v');

    const see = must(c, head('details:9080', '/see'));
    assert.equal(see.status, 303);
    // The scheme changes but the request port (9080) is not the old scheme's default, so it stays.
    assert.equal(localReplyLocation(see, head('details:9080', '/see')), 'https://details:9080/other');

    const same = must(c, head('details:9080', '/same'));
    assert.equal(same.status, 308);
    assert.equal(localReplyLocation(same, head('details:9080', '/same')), 'http://details:9080/here');

    const teapot = must(c, head('details:9080', '/teapot'));
    assert.equal(teapot.kind, 'direct');
    assert.equal(teapot.status, 418);
    assert.equal(teapot.body?.toString(), 'short and stout');
    assert.equal(localReplyLocation(teapot, head('details:9080', '/teapot')), undefined);
  });

  test('port-specific rules: /admin only on the 9090 virtual host', () => {
    assert.equal(must(c, head('details:9090', '/admin')).routeName, 'admin-only');
    assert.equal(must(c, head('details:9090', '/admin')).cluster, cl(9090, '', 'details.bookinfo.svc.cluster.local'));
    assert.notEqual(c.route(head('details:9080', '/admin'))?.routeName, 'admin-only');
  });

  test('a proxy labelled app=productpage gets the sourceLabels route', () => {
    const pc = compileRouteConfiguration(outboundFor(['translate/route-services.yaml', 'translate/route-rules.yaml'], 'bookinfo', { app: 'productpage' }));
    const d = must(pc, head('reviews:9080', '/pp/x'));
    assert.equal(d.routeName, 'from-productpage');
    assert.equal(d.cluster, cl(9080, 'v3', REVIEWS));
    assert.equal(must(c, head('reviews:9080', '/pp/x')).routeName, 'rest', 'others do not');
  });
});

describe('translator output: other fixtures', () => {
  test('REGISTRY_ONLY: unknown hosts get a 502 direct response', () => {
    const c = compileRouteConfiguration(outboundFor(['translate/route-registry-only.yaml'], 'bookinfo'));
    const d = must(c, head('example.org', '/'));
    assert.equal(d.kind, 'direct');
    assert.equal(d.status, 502);
    assert.equal(d.virtualHost.name, 'block_all');
  });

  test('Istio, SMI and Gateway API configs that mean the same route the same: 80/20 over 10,000 requests', () => {
    for (const f of ['istio.yaml', 'smi.yaml', 'gateway-api.yaml']) {
      const c = compileRouteConfiguration(outboundFor(['equal-model/services.yaml', `equal-model/${f}`], 'bookinfo'));
      const random = rng(7);
      let v1 = 0;
      for (let i = 0; i < 10_000; i++) {
        const d = must(c, head('reviews:9080', '/x'), random());
        if (d.cluster.endsWith('reviews-v1.bookinfo.svc.cluster.local')) v1++;
        else assert.ok(d.cluster.endsWith('reviews-v2.bookinfo.svc.cluster.local'), d.cluster);
      }
      assert.ok(Math.abs(v1 - 8000) < 250, `${f}: v1 ~80%, got ${v1}`);
    }
  });

  test('the translator’s other route fixtures all compile', () => {
    for (const files of [['translate/route-services.yaml'], ['translate/cluster-policies.yaml'], ['translate/scope-sidecars.yaml'], ['translate/scope-destination-rules.yaml']]) {
      for (const ns of ['bookinfo', 'default', 'other']) {
        const rc = outboundFor(files, ns);
        const c = compileRouteConfiguration(rc);
        assert.equal(c.virtualHosts.length, rc.virtualHosts.length);
      }
    }
  });
});
