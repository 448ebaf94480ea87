// RDS translation: RouteConfigurations from real config (YAML → model) and a real service registry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, toBinary } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import type { MeshModel } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import type { ProxyInfo } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { buildRoutes, inboundRouteConfig } from '../../src/controlplane/translate/route.js';
import type { RouteResult } from '../../src/controlplane/translate/route.js';
import { computeScope } from '../../src/controlplane/translate/scope.js';
import { unpack } from '../../src/xds/index.js';
import { HeaderValueOption_HeaderAppendAction, NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import type { RouteConfiguration } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { RedirectAction_RedirectResponseCode, RouteAction_ClusterNotFoundResponseCode } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { HeaderMatcher, Route, RouteAction, VirtualHost } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import { CorsPolicySchema } from '../../src/xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import { HTTPFaultSchema } from '../../src/xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { PreviousPrioritiesConfigSchema } from '../../src/xds/gen/envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config_pb.js';
import { FractionalPercent_DenominatorType } from '../../src/xds/gen/envoy/type/v3/percent_pb.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

function load(...files: string[]): { model: MeshModel; registry: ServiceRegistry } {
  const raws = files.flatMap((f) => {
    const r = parseConfigText(readFileSync(fixtures + f, 'utf8'), f);
    assert.deepEqual(r.diagnostics, [], `${f} parses`);
    return r.resources;
  });
  const { model, diagnostics } = buildModel(raws);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error'), [], 'config builds without errors');
  const registry = new ServiceRegistry();
  registry.setModel(model);
  return { model, registry };
}

function proxy(namespace: string, labels: Record<string, string> = {}, extra: Record<string, unknown> = {}): ProxyInfo {
  return proxyFromNode(create(NodeSchema, { id: `test~${namespace}`, metadata: { NAMESPACE: namespace, LABELS: labels, ...extra } as never }));
}

function routes(env: { model: MeshModel; registry: ServiceRegistry }, p: ProxyInfo): RouteResult {
  const res = buildRoutes({ model: env.model, proxy: p, scope: computeScope(env.model, env.registry, p) });
  for (const rc of res.routes) assert.ok(toBinary(RouteConfigurationSchema, rc).length > 0, `${rc.name} encodes`);
  return res;
}

function outbound(res: RouteResult): RouteConfiguration {
  assert.equal(res.routes.length, 1);
  assert.equal(res.routes[0]!.name, 'outbound');
  return res.routes[0]!;
}

function vhost(rc: RouteConfiguration, name: string): VirtualHost {
  const vh = rc.virtualHosts.find((v) => v.name === name);
  assert.ok(vh, `virtual host ${name} in ${rc.virtualHosts.map((v) => v.name).join(', ')}`);
  return vh;
}

function route(vh: VirtualHost, name: string): Route {
  const r = vh.routes.find((x) => x.name === name);
  assert.ok(r, `route ${name} in ${vh.routes.map((x) => x.name).join(', ')}`);
  return r;
}

function action(r: Route): RouteAction {
  assert.equal(r.action.case, 'route');
  return r.action.value as RouteAction;
}

function cluster(r: Route): string {
  const a = action(r);
  assert.equal(a.clusterSpecifier.case, 'cluster');
  return a.clusterSpecifier.value as string;
}

function header(r: Route, name: string): HeaderMatcher {
  const h = r.match!.headers.find((x) => x.name === name);
  assert.ok(h, `header matcher ${name}`);
  return h;
}

const REVIEWS = 'reviews.bookinfo.svc.cluster.local';
const RULES = ['translate/route-services.yaml', 'translate/route-rules.yaml'];

describe('virtual hosts and domains', () => {
  const env = load('translate/route-services.yaml');

  test('a proxy in the service namespace gets every alias with the port; port 80 also bare, with the cluster IP', () => {
    const rc = outbound(routes(env, proxy('bookinfo')));
    assert.deepEqual(vhost(rc, `${REVIEWS}:9080`).domains, [`${REVIEWS}:9080`, 'reviews.bookinfo.svc:9080', 'reviews.bookinfo:9080', 'reviews:9080']);
    assert.deepEqual(vhost(rc, 'web.bookinfo.svc.cluster.local:80').domains, [
      'web.bookinfo.svc.cluster.local',
      'web.bookinfo.svc.cluster.local:80',
      'web.bookinfo.svc',
      'web.bookinfo.svc:80',
      'web.bookinfo',
      'web.bookinfo:80',
      'web',
      'web:80',
      '10.0.0.80',
      '10.0.0.80:80',
    ]);
    assert.equal(rc.validateClusters, false);
    assert.equal(rc.maxDirectResponseBodySizeBytes, 1024 * 1024);
  });

  test('a proxy in another namespace does not get the short name', () => {
    const rc = outbound(routes(env, proxy('other')));
    assert.deepEqual(vhost(rc, `${REVIEWS}:9080`).domains, [`${REVIEWS}:9080`, 'reviews.bookinfo.svc:9080', 'reviews.bookinfo:9080']);
    assert.deepEqual(vhost(rc, 'echo.other.svc.cluster.local:8080').domains.at(-1), 'echo:8080');
  });

  test('HTTP and sniffed (UNKNOWN) ports get virtual hosts, TCP ports do not; every port of a multi-port service', () => {
    const rc = outbound(routes(env, proxy('bookinfo')));
    const names = rc.virtualHosts.map((v) => v.name);
    assert.ok(names.includes('sniffed.bookinfo.svc.cluster.local:7000'));
    assert.ok(names.includes('details.bookinfo.svc.cluster.local:9080'));
    assert.ok(names.includes('details.bookinfo.svc.cluster.local:9090'));
    assert.ok(!names.some((n) => n.startsWith('db.')), 'no virtual host for the TCP service');
    const all = rc.virtualHosts.flatMap((v) => v.domains);
    assert.equal(new Set(all).size, all.length, 'domains are unique across virtual hosts');
  });

  test('a service without routing rules gets the default route with the mesh retry policy (as Istio)', () => {
    const rc = outbound(routes(env, proxy('bookinfo')));
    const vh = vhost(rc, 'shadow.bookinfo.svc.cluster.local:9080');
    assert.equal(vh.includeRequestAttemptCount, true);
    assert.equal(vh.routes.length, 1);
    const r = vh.routes[0]!;
    assert.equal(r.name, 'default');
    assert.equal(r.match!.pathSpecifier.case, 'prefix');
    assert.equal(r.match!.pathSpecifier.value, '/');
    assert.equal(cluster(r), 'outbound|9080||shadow.bookinfo.svc.cluster.local');
    const a = action(r);
    assert.equal(a.timeout!.seconds, 0n);
    assert.equal(a.maxGrpcTimeout!.seconds, 0n);
    const rp = a.retryPolicy!;
    assert.equal(rp.numRetries, 2);
    assert.equal(rp.retryOn, 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes');
    assert.deepEqual(rp.retriableStatusCodes, [503]);
    assert.equal(rp.hostSelectionRetryMaxAttempts, 5n);
    assert.deepEqual(rp.retryHostPredicate.map((p) => p.name), ['envoy.retry_host_predicates.previous_hosts']);
    assert.equal(rp.retryHostPredicate[0]!.configType.value!.typeUrl, 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate');
  });

  test('catch-all virtual host: ALLOW_ANY passes through, REGISTRY_ONLY answers 502 (Sidecar outboundTrafficPolicy)', () => {
    const allow = outbound(routes(env, proxy('bookinfo')));
    const last = allow.virtualHosts.at(-1)!;
    assert.equal(last.name, 'allow_any');
    assert.deepEqual(last.domains, ['*']);
    assert.equal(cluster(last.routes[0]!), 'PassthroughCluster');
    assert.equal(action(last.routes[0]!).timeout!.seconds, 0n);

    const locked = load('translate/route-services.yaml', 'translate/route-registry-only.yaml');
    const block = outbound(routes(locked, proxy('bookinfo'))).virtualHosts.at(-1)!;
    assert.equal(block.name, 'block_all');
    assert.deepEqual(block.domains, ['*']);
    assert.equal(block.routes[0]!.action.case, 'directResponse');
    assert.equal((block.routes[0]!.action.value as { status: number }).status, 502);
    // Other namespaces keep the mesh default.
    assert.equal(outbound(routes(locked, proxy('other'))).virtualHosts.at(-1)!.name, 'allow_any');
  });
});

describe('routing features (VirtualService)', () => {
  const env = load(...RULES);
  const rc = outbound(routes(env, proxy('bookinfo')));
  const reviews = vhost(rc, `${REVIEWS}:9080`);

  test('routes keep the model order; each match is a route; a catch-all ends the list', () => {
    assert.deepEqual(
      reviews.routes.map((r) => r.name),
      ['exact.one', 'exact.two', 'headers', 'split', 'rest'],
    );
  });

  test('path matches: exact with ignoreCase, regex (RE2 safe_regex), prefix', () => {
    const one = route(reviews, 'exact.one');
    assert.equal(one.match!.pathSpecifier.case, 'path');
    assert.equal(one.match!.pathSpecifier.value, '/exact');
    assert.equal(one.match!.caseSensitive, false);
    const two = route(reviews, 'exact.two');
    assert.equal(two.match!.pathSpecifier.case, 'safeRegex');
    assert.equal((two.match!.pathSpecifier.value as { regex: string }).regex, '/r/[a-z]+');
    assert.equal(two.match!.caseSensitive, true);
    assert.equal(cluster(one), `outbound|9080|v1|${REVIEWS}`);
  });

  test('header, pseudo-header and query parameter matches', () => {
    const r = route(reviews, 'headers');
    assert.equal(r.match!.pathSpecifier.case, 'prefix');
    assert.equal(r.match!.pathSpecifier.value, '/api');
    // Sorted by name, then :method, :authority, :scheme.
    assert.deepEqual(r.match!.headers.map((h) => h.name), ['x-absent', 'x-any', 'x-no', 'x-pre', 'x-re', 'x-user', ':method', ':authority', ':scheme']);
    const exact = header(r, 'x-user');
    assert.equal(exact.headerMatchSpecifier.case, 'stringMatch');
    assert.deepEqual((exact.headerMatchSpecifier.value as { matchPattern: unknown }).matchPattern, { case: 'exact', value: 'test' });
    assert.deepEqual((header(r, 'x-pre').headerMatchSpecifier.value as { matchPattern: unknown }).matchPattern, { case: 'prefix', value: 'ab' });
    const re = (header(r, 'x-re').headerMatchSpecifier.value as { matchPattern: { case: string; value: { regex: string } } }).matchPattern;
    assert.equal(re.case, 'safeRegex');
    assert.equal(re.value.regex, 'a.*b');
    assert.deepEqual(header(r, 'x-any').headerMatchSpecifier, { case: 'presentMatch', value: true });
    const no = header(r, 'x-no');
    assert.equal(no.invertMatch, true);
    assert.equal(no.treatMissingHeaderAsEmpty, true);
    const absent = header(r, 'x-absent');
    assert.equal(absent.invertMatch, true);
    assert.deepEqual(absent.headerMatchSpecifier, { case: 'presentMatch', value: true });
    assert.equal(absent.treatMissingHeaderAsEmpty, false);
    assert.deepEqual((header(r, ':method').headerMatchSpecifier.value as { matchPattern: unknown }).matchPattern, { case: 'exact', value: 'POST' });
    assert.deepEqual((header(r, ':authority').headerMatchSpecifier.value as { matchPattern: unknown }).matchPattern, { case: 'prefix', value: 'reviews' });
    assert.deepEqual((header(r, ':scheme').headerMatchSpecifier.value as { matchPattern: unknown }).matchPattern, { case: 'exact', value: 'http' });
    const q = Object.fromEntries(r.match!.queryParameters.map((x) => [x.name, x.queryParameterMatchSpecifier]));
    assert.deepEqual((q.q!.value as { matchPattern: unknown }).matchPattern, { case: 'exact', value: '1' });
    assert.equal((q.r!.value as { matchPattern: { case: string } }).matchPattern.case, 'safeRegex');
  });

  test('sourceLabels/sourceNamespace: only proxies that match get the route', () => {
    const pp = vhost(outbound(routes(env, proxy('bookinfo', { app: 'productpage' }))), `${REVIEWS}:9080`);
    assert.equal(cluster(route(pp, 'from-productpage')), `outbound|9080|v3|${REVIEWS}`);
    assert.ok(!reviews.routes.some((r) => r.name === 'from-productpage'), 'not for a proxy without the labels');
    // Right labels, wrong namespace.
    const elsewhere = vhost(outbound(routes(env, proxy('other', { app: 'productpage' }))), `${REVIEWS}:9080`);
    assert.ok(!elsewhere.routes.some((r) => r.name === 'from-productpage'));
  });

  test('weighted destinations: weighted clusters (GCD-reduced weights, weight 0 left out) with per-destination headers', () => {
    const a = action(route(reviews, 'split'));
    assert.equal(a.clusterSpecifier.case, 'weightedClusters');
    const wc = (a.clusterSpecifier.value as { clusters: Array<{ name: string; weight?: number; requestHeadersToAdd: Array<{ header?: { key: string; value: string }; appendAction: number }>; responseHeadersToAdd: Array<{ header?: { key: string } }>; responseHeadersToRemove: string[] }> }).clusters;
    assert.deepEqual(wc.map((c) => [c.name, c.weight]), [
      [`outbound|9080|v1|${REVIEWS}`, 3],
      [`outbound|9080|v2|${REVIEWS}`, 1],
    ]);
    assert.deepEqual(wc[0]!.requestHeadersToAdd.map((h) => [h.header!.key, h.header!.value, h.appendAction]), [['x-split', 'v1', HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD]]);
    assert.deepEqual(wc[1]!.responseHeadersToAdd.map((h) => h.header!.key), ['x-from']);
    assert.deepEqual(wc[1]!.responseHeadersToRemove, ['x-internal']);
  });

  test('route header operations: set overwrites, add appends, sorted by name; :authority becomes a host rewrite', () => {
    const r = route(reviews, 'split');
    assert.deepEqual(r.requestHeadersToAdd.map((h) => [h.header!.key, h.header!.value, h.appendAction]), [
      ['x-a', '1', HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD],
      ['x-b', '2', HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD],
      ['x-added', 'yes', HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD],
    ]);
    assert.deepEqual(r.requestHeadersToRemove, ['x-secret']);
    assert.deepEqual(r.responseHeadersToAdd.map((h) => [h.header!.key, h.header!.value]), [['x-resp', 'r']]);
    assert.deepEqual(action(r).hostRewriteSpecifier, { case: 'hostRewriteLiteral', value: 'reviews.internal' });
  });

  test('mirroring with a percentage (over a MILLION), trace_sampled false', () => {
    const m = action(route(reviews, 'split')).requestMirrorPolicies;
    assert.equal(m.length, 1);
    assert.equal(m[0]!.cluster, 'outbound|9080||shadow.bookinfo.svc.cluster.local');
    assert.equal(m[0]!.runtimeFraction!.defaultValue!.numerator, 500000);
    assert.equal(m[0]!.runtimeFraction!.defaultValue!.denominator, FractionalPercent_DenominatorType.MILLION);
    assert.equal(m[0]!.traceSampled, false);
  });

  test('CORS as per-route config of envoy.filters.http.cors', () => {
    const any = route(reviews, 'split').typedPerFilterConfig['envoy.filters.http.cors'];
    assert.ok(any);
    const c = unpack(CorsPolicySchema, any);
    assert.deepEqual(c.allowOriginStringMatch.map((m) => m.matchPattern.case), ['exact', 'safeRegex']);
    assert.equal(c.allowMethods, 'GET,POST');
    assert.equal(c.allowHeaders, 'x-a,x-b');
    assert.equal(c.exposeHeaders, 'x-c');
    assert.equal(c.maxAge, '86400');
    assert.equal(c.allowCredentials, true);
    assert.equal(c.filterEnabled!.defaultValue!.numerator, 100);
    assert.equal(c.forwardNotMatchingPreflights, true);
  });

  test('consistent hash from the DestinationRule; no previous_hosts retry predicate for a hashed single destination', () => {
    const r = route(reviews, 'exact.one');
    assert.deepEqual(action(r).hashPolicy.map((h) => h.policySpecifier.case), ['header']);
    assert.equal((action(r).hashPolicy[0]!.policySpecifier.value as { headerName: string }).headerName, 'x-user');
    assert.deepEqual(action(r).retryPolicy!.retryHostPredicate, []);
    // Weighted: one hash policy per destination, predicate kept.
    const split = action(route(reviews, 'split'));
    assert.equal(split.hashPolicy.length, 2);
    assert.equal(split.retryPolicy!.retryHostPredicate.length, 1);
  });

  test('hash policies: cookie with ttl, source IP, query parameter, port-level override', () => {
    const ratings = vhost(rc, 'ratings.bookinfo.svc.cluster.local:9080');
    const cookie = action(route(ratings, 'faulty')).hashPolicy[0]!;
    assert.equal(cookie.policySpecifier.case, 'cookie');
    const cv = cookie.policySpecifier.value as { name: string; path: string; ttl: { seconds: bigint } };
    assert.deepEqual([cv.name, cv.path, cv.ttl.seconds], ['session', '/', 10n]);
    const pp = vhost(rc, 'productpage.bookinfo.svc.cluster.local:9080');
    assert.deepEqual(action(route(pp, 'sticky')).hashPolicy[0]!.policySpecifier.case, 'connectionProperties');
    assert.equal((action(route(pp, 'sticky')).hashPolicy[0]!.policySpecifier.value as { sourceIp: boolean }).sourceIp, true);
    const details80 = vhost(rc, 'details.bookinfo.svc.cluster.local:9080');
    const q = action(route(details80, 'prefix-rewrite')).hashPolicy[0]!;
    assert.deepEqual([q.policySpecifier.case, (q.policySpecifier.value as { name: string }).name], ['queryParameter', 'q']);
    const details90 = vhost(rc, 'details.bookinfo.svc.cluster.local:9090');
    const h = action(route(details90, 'admin-only')).hashPolicy[0]!;
    assert.equal((h.policySpecifier.value as { headerName: string }).headerName, 'x-admin');
  });

  test('retries: attempts, per-try timeout, retry_on with status codes, remote localities; retryIgnorePreviousHosts; attempts 0 = none', () => {
    const ratings = vhost(rc, 'ratings.bookinfo.svc.cluster.local:9080');
    const rp = action(route(ratings, 'retried')).retryPolicy!;
    assert.equal(rp.numRetries, 3);
    assert.equal(rp.perTryTimeout!.seconds, 1n);
    assert.equal(rp.perTryTimeout!.nanos, 500_000_000);
    assert.equal(rp.retryOn, '5xx,connect-failure,retriable-status-codes');
    assert.deepEqual(rp.retriableStatusCodes, [429]);
    assert.equal(rp.hostSelectionRetryMaxAttempts, 5n);
    assert.equal(rp.retryPriority!.name, 'envoy.retry_priorities.previous_priorities');
    assert.equal(unpack(PreviousPrioritiesConfigSchema, rp.retryPriority!.configType.value!).updateFrequency, 2);
    assert.equal(action(route(ratings, 'no-retry')).retryPolicy, undefined);
    // Hashed destination, but retryIgnorePreviousHosts: true asks for the predicate.
    const pp = vhost(rc, 'productpage.bookinfo.svc.cluster.local:9080');
    assert.equal(action(route(pp, 'sticky')).retryPolicy!.retryHostPredicate.length, 1);
  });

  test('timeouts: the route timeout (and gRPC deadline cap); none (0s) by default', () => {
    const ratings = vhost(rc, 'ratings.bookinfo.svc.cluster.local:9080');
    assert.equal(action(route(ratings, 'retried')).timeout!.seconds, 5n);
    assert.equal(action(route(ratings, 'retried')).maxGrpcTimeout!.seconds, 5n);
    assert.equal(action(route(ratings, 'faulty')).timeout!.seconds, 0n);
  });

  test('faults: delay and abort with percentages over a MILLION; gRPC status aborts', () => {
    const ratings = vhost(rc, 'ratings.bookinfo.svc.cluster.local:9080');
    const f = unpack(HTTPFaultSchema, route(ratings, 'faulty').typedPerFilterConfig['envoy.filters.http.fault']!);
    assert.equal(f.delay!.percentage!.numerator, 75000);
    assert.equal(f.delay!.percentage!.denominator, FractionalPercent_DenominatorType.MILLION);
    assert.deepEqual(f.delay!.faultDelaySecifier.case, 'fixedDelay');
    assert.equal((f.delay!.faultDelaySecifier.value as { seconds: bigint }).seconds, 2n);
    assert.equal(f.abort!.percentage!.numerator, 1000);
    assert.deepEqual(f.abort!.errorType, { case: 'httpStatus', value: 503 });
    const g = unpack(HTTPFaultSchema, route(ratings, 'grpc-fault').typedPerFilterConfig['envoy.filters.http.fault']!);
    assert.deepEqual(g.abort!.errorType, { case: 'grpcStatus', value: 14 });
    assert.equal(g.abort!.percentage!.numerator, 1_000_000);
    assert.equal(route(ratings, 'retried').typedPerFilterConfig['envoy.filters.http.fault'], undefined);
  });

  test('port match: the route only on the matching port; destination port defaults to the routed port', () => {
    const d80 = vhost(rc, 'details.bookinfo.svc.cluster.local:9080');
    const d90 = vhost(rc, 'details.bookinfo.svc.cluster.local:9090');
    assert.ok(!d80.routes.some((r) => r.name === 'admin-only'));
    assert.equal(cluster(route(d90, 'admin-only')), 'outbound|9090||details.bookinfo.svc.cluster.local');
    // No destination port on a two-port service: the port being routed.
    assert.equal(cluster(route(d80, 'prefix-rewrite')), 'outbound|9080||details.bookinfo.svc.cluster.local');
    assert.equal(cluster(route(d90, 'prefix-rewrite')), 'outbound|9090||details.bookinfo.svc.cluster.local');
    // An explicit destination port wins.
    assert.equal(cluster(route(d90, 'regex-rewrite')), 'outbound|9080||details.bookinfo.svc.cluster.local');
  });

  test('rewrites: prefix, regex, authority', () => {
    const d = vhost(rc, 'details.bookinfo.svc.cluster.local:9080');
    const p = action(route(d, 'prefix-rewrite'));
    assert.equal(p.prefixRewrite, '/new');
    assert.deepEqual(p.hostRewriteSpecifier, { case: 'hostRewriteLiteral', value: 'details.example' });
    const re = action(route(d, 'regex-rewrite')).regexRewrite!;
    assert.equal(re.pattern!.regex, '^/re/(.*)$');
    assert.equal(re.substitution, '/v2/\\1');
  });

  test('redirects: response codes, host, scheme, default-port elision, derivePort', () => {
    const d = vhost(rc, 'details.bookinfo.svc.cluster.local:9080');
    const redirect = (name: string) => {
      const r = route(d, name);
      assert.equal(r.action.case, 'redirect');
      return r.action.value as { hostRedirect: string; portRedirect: number; responseCode: number; pathRewriteSpecifier: unknown; schemeRewriteSpecifier: unknown };
    };
    const moved = redirect('moved');
    assert.equal(moved.responseCode, RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY);
    assert.equal(moved.hostRedirect, 'details.example');
    assert.deepEqual(moved.pathRewriteSpecifier, { case: 'pathRedirect', value: '/new-home' });
    const see = redirect('see-other');
    assert.equal(see.responseCode, RedirectAction_RedirectResponseCode.SEE_OTHER);
    assert.deepEqual(see.schemeRewriteSpecifier, { case: 'schemeRedirect', value: 'https' });
    assert.equal(see.portRedirect, 0, '443 is https\'s default port');
    const same = redirect('same-port');
    assert.equal(same.responseCode, RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT);
    assert.equal(same.portRedirect, 9080);
  });

  test('direct response with an inline body', () => {
    const r = route(vhost(rc, 'details.bookinfo.svc.cluster.local:9080'), 'teapot');
    assert.equal(r.action.case, 'directResponse');
    const dr = r.action.value as { status: number; body: { specifier: unknown } };
    assert.equal(dr.status, 418);
    assert.deepEqual(dr.body.specifier, { case: 'inlineString', value: 'short and stout' });
  });

  test('no translation errors for valid config', () => {
    assert.deepEqual(routes(env, proxy('bookinfo')).errors, []);
  });
});

describe('the same split from three APIs', () => {
  const base = 'equal-model/services.yaml';
  const rcFor = (file: string) => {
    const env = load(base, `equal-model/${file}`);
    return vhost(outbound(routes(env, proxy('bookinfo'))), `${REVIEWS}:9080`);
  };

  test('VirtualService, SMI TrafficSplit and GAMMA HTTPRoute give the same virtual host (GAMMA: 500 for a missing backend)', () => {
    const vs = rcFor('istio.yaml');
    const a = action(vs.routes[0]!);
    assert.equal(a.clusterSpecifier.case, 'weightedClusters');
    assert.deepEqual((a.clusterSpecifier.value as { clusters: Array<{ name: string; weight?: number }> }).clusters.map((c) => [c.name, c.weight]), [
      ['outbound|9080||reviews-v1.bookinfo.svc.cluster.local', 4],
      ['outbound|9080||reviews-v2.bookinfo.svc.cluster.local', 1],
    ]);
    assert.equal(a.clusterNotFoundResponseCode, RouteAction_ClusterNotFoundResponseCode.SERVICE_UNAVAILABLE);
    const bytes = (vh: VirtualHost) => Buffer.from(toBinary(RouteConfigurationSchema, create(RouteConfigurationSchema, { name: 'x', virtualHosts: [vh] })));
    assert.ok(bytes(rcFor('smi.yaml')).equals(bytes(vs)), 'SMI TrafficSplit');
    // The Gateway API answers 500 (not 503) for a backend that does not exist; otherwise the same.
    const gamma = rcFor('gateway-api.yaml');
    assert.equal(action(gamma.routes[0]!).clusterNotFoundResponseCode, RouteAction_ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR);
    action(gamma.routes[0]!).clusterNotFoundResponseCode = RouteAction_ClusterNotFoundResponseCode.SERVICE_UNAVAILABLE;
    assert.ok(bytes(gamma).equals(bytes(vs)), 'GAMMA HTTPRoute');
  });
});

describe('proxyless gRPC route configurations', () => {
  const env = load(...RULES);

  test('one RouteConfiguration per host:port authority, with the routes of the service port', () => {
    const res = routes(env, proxy('bookinfo', {}, { GENERATOR: 'grpc' }));
    const names = res.routes.map((r) => r.name);
    for (const n of [`${REVIEWS}:9080`, 'reviews.bookinfo.svc:9080', 'reviews.bookinfo:9080', 'reviews:9080', 'web', 'web:80']) assert.ok(names.includes(n), n);
    assert.ok(names.includes('db:5432'), 'gRPC clients get every port');
    const rc = res.routes.find((r) => r.name === 'reviews:9080')!;
    assert.equal(rc.virtualHosts.length, 1);
    assert.ok(rc.virtualHosts[0]!.domains.includes('reviews:9080'));
    assert.equal(rc.virtualHosts[0]!.name, `${REVIEWS}:9080`);
    assert.deepEqual(rc.virtualHosts[0]!.routes.map((r) => r.name), ['exact.one', 'exact.two', 'headers', 'split', 'rest']);
    // gRPC deadlines: max_stream_duration instead of max_grpc_timeout.
    const a = action(rc.virtualHosts[0]!.routes[0]!);
    assert.equal(a.maxGrpcTimeout, undefined);
    assert.equal(a.maxStreamDuration!.maxStreamDuration!.seconds, 0n);
    // No CORS config for gRPC clients (they would reject the configuration).
    assert.equal(route(rc.virtualHosts[0]!, 'split').typedPerFilterConfig['envoy.filters.http.cors'], undefined);
  });

  test('redirects are left out and reported; direct responses become an abort fault', () => {
    const res = routes(env, proxy('bookinfo', {}, { GENERATOR: 'grpc' }));
    const vh = res.routes.find((r) => r.name === 'details:9080')!.virtualHosts[0]!;
    assert.ok(!vh.routes.some((r) => r.action.case === 'redirect' || r.action.case === 'directResponse'));
    const teapot = route(vh, 'teapot');
    assert.equal(cluster(teapot), 'outbound|9080||details.bookinfo.svc.cluster.local');
    const f = unpack(HTTPFaultSchema, teapot.typedPerFilterConfig['envoy.filters.http.fault']!);
    assert.deepEqual(f.abort!.errorType, { case: 'httpStatus', value: 418 });
    assert.equal(f.abort!.percentage!.numerator, 1_000_000);
    const errs = res.errors.filter((e) => e.message.includes('redirect'));
    assert.equal(errs.length, 6, 'three redirect routes on each of the two ports');
    assert.ok(errs.every((e) => e.source === 'VirtualService bookinfo/details'));
  });
});

test('inbound route configuration forwards everything to the inbound cluster', () => {
  const rc = inboundRouteConfig({ port: 9080, targetPort: 8080 });
  assert.equal(rc.name, 'inbound|8080||');
  assert.equal(rc.virtualHosts[0]!.name, 'inbound|http|9080');
  assert.deepEqual(rc.virtualHosts[0]!.domains, ['*']);
  const r = rc.virtualHosts[0]!.routes[0]!;
  assert.equal(cluster(r), 'inbound|8080||');
  assert.equal(action(r).timeout!.seconds, 0n);
  assert.equal(action(r).retryPolicy!.retryOn, 'reset-before-request');
  assert.ok(toBinary(RouteConfigurationSchema, rc).length > 0);
});
