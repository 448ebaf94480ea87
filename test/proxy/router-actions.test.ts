// HTTP router: route actions → RouteDecision (clusters, weights, timeouts, retry/mirror/hash policies, rewrites,
// redirects, direct responses, per-filter configs, require_tls), on hand-built RouteConfigurations.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { StringValueSchema } from '@bufbuild/protobuf/wkt';
import { pack } from '../../src/xds/index.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { FilterConfigSchema, RouteAction_ClusterNotFoundResponseCode, RetryPolicy_ResetHeaderFormat } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import { PreviousHostsPredicateSchema } from '../../src/xds/gen/envoy/extensions/retry/host/previous_hosts/v3/previous_hosts_pb.js';
import type { RequestHead } from '../../src/proxy/http/headers.js';
import {
  applyRequestHeaders,
  autoRewriteHost,
  compileRouteConfiguration,
  localReplyLocation,
  rewritePath,
} from '../../src/proxy/http/router/index.js';
import type { CompileOptions, CompiledRouteConfig, RouteDecision } from '../../src/proxy/http/router/index.js';

type RcInit = MessageInitShape<typeof RouteConfigurationSchema>;
type VhInit = NonNullable<RcInit['virtualHosts']>[number];
type RouteInit = NonNullable<VhInit['routes']>[number];
type ActionInit = Exclude<Extract<NonNullable<RouteInit['action']>, { case: 'route' }>['value'], { $typeName: string }>;
type RedirectInit = Extract<NonNullable<RouteInit['action']>, { case: 'redirect' }>['value'];

function compile(init: RcInit, opts?: CompileOptions): CompiledRouteConfig {
  return compileRouteConfiguration(create(RouteConfigurationSchema, { name: 'test', ...init } as RcInit), opts);
}

function head(authority: string, path: string, headers: string[] = [], method = 'GET', scheme: 'http' | 'https' = 'http'): RequestHead {
  return { method, path, authority, scheme, headers, httpVersion: '1.1' };
}

const ALL = { pathSpecifier: { case: 'prefix' as const, value: '/' } };

function routeTo(action: ActionInit, match: RouteInit['match'] = ALL, extra: Partial<RouteInit> = {}): RouteInit {
  return { name: 'r', match, action: { case: 'route', value: action }, ...extra } as RouteInit;
}

function withRoutes(routes: RouteInit[], vh: Partial<VhInit> = {}, rc: Partial<RcInit> = {}, opts?: CompileOptions): CompiledRouteConfig {
  return compile({ virtualHosts: [{ name: 'vh', domains: ['*'], routes, ...vh } as VhInit], ...rc } as RcInit, opts);
}

function decide(c: CompiledRouteConfig, h: RequestHead = head('h', '/'), random = 0.5): RouteDecision {
  const d = c.route(h, { random });
  assert.ok(d, 'a route');
  return d;
}

const cluster = (name: string): ActionInit => ({ clusterSpecifier: { case: 'cluster', value: name } });

describe('cluster selection', () => {
  test('a single cluster; cluster_not_found_response_code', () => {
    const d = decide(withRoutes([routeTo(cluster('a'))]));
    assert.equal(d.kind, 'cluster');
    assert.equal(d.cluster, 'a');
    assert.equal(d.clusterNotFoundStatus, 503);
    const nf = decide(withRoutes([routeTo({ ...cluster('a'), clusterNotFoundResponseCode: RouteAction_ClusterNotFoundResponseCode.NOT_FOUND })]));
    assert.equal(nf.clusterNotFoundStatus, 404);
    const ise = decide(withRoutes([routeTo({ ...cluster('a'), clusterNotFoundResponseCode: RouteAction_ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR })]));
    assert.equal(ise.clusterNotFoundStatus, 500);
  });

  test('cluster_header: the first value of the request header; missing → empty cluster name', () => {
    const c = withRoutes([routeTo({ clusterSpecifier: { case: 'clusterHeader', value: 'X-Cluster' } })]);
    assert.equal(decide(c, head('h', '/', ['x-cluster', 'blue', 'x-cluster', 'green'])).cluster, 'blue');
    assert.equal(decide(c, head('h', '/')).cluster, '');
    assert.equal(c.clusterNames.size, 0);
  });

  test('weighted clusters: by intervals of the total weight; weight 0 gets nothing', () => {
    const c = withRoutes([
      routeTo({
        clusterSpecifier: {
          case: 'weightedClusters',
          value: { clusters: [{ name: 'a', weight: 1 }, { name: 'zero', weight: 0 }, { name: 'b', weight: 2 }, { name: 'c', weight: 7 }] },
        },
      }),
    ]);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) {
      const d = decide(c, head('h', '/'), (i + 0.5) / 10_000);
      counts[d.cluster] = (counts[d.cluster] ?? 0) + 1;
    }
    assert.deepEqual(counts, { a: 1000, b: 2000, c: 7000 });
    assert.deepEqual([...c.clusterNames].sort(), ['a', 'b', 'c', 'zero']);
  });

  test('weighted clusters: header_name supplies the random value (single-valued, unsigned)', () => {
    const c = withRoutes([
      routeTo({
        clusterSpecifier: {
          case: 'weightedClusters',
          value: { clusters: [{ name: 'a', weight: 50 }, { name: 'b', weight: 50 }], randomValueSpecifier: { case: 'headerName', value: 'x-rand' } },
        },
      }),
    ]);
    assert.equal(decide(c, head('h', '/', ['x-rand', '10']), 0.99).cluster, 'a', '10 % 100 = 10 → a');
    assert.equal(decide(c, head('h', '/', ['x-rand', '160']), 0).cluster, 'b', '160 % 100 = 60 → b');
    assert.equal(decide(c, head('h', '/', ['x-rand', '18446744073709551615']), 0).cluster, 'a', '2^64-1 % 100 = 15');
    assert.equal(decide(c, head('h', '/', ['x-rand', 'x']), 0.99).cluster, 'b', 'invalid: the request random value');
    assert.equal(decide(c, head('h', '/', ['x-rand', '10', 'x-rand', '10']), 0.99).cluster, 'b', 'multi-valued: ignored');
  });

  test('weighted cluster entries carry their own cluster_header, header mutations, host rewrite and filter configs', () => {
    const fc = pack(StringValueSchema, { value: 'cluster-level' });
    const c = withRoutes([
      routeTo(
        {
          clusterSpecifier: {
            case: 'weightedClusters',
            value: {
              clusters: [
                { clusterHeader: 'x-pick', weight: 1 },
                {
                  name: 'b',
                  weight: 1,
                  requestHeadersToAdd: [{ header: { key: 'x-w', value: 'b' } }],
                  hostRewriteSpecifier: { case: 'hostRewriteLiteral', value: 'b.internal' },
                  typedPerFilterConfig: { 'my.filter': fc },
                },
              ],
            },
          },
        },
        ALL,
        { typedPerFilterConfig: { 'my.filter': pack(StringValueSchema, { value: 'route-level' }), other: pack(StringValueSchema, { value: 'o' }) } },
      ),
    ]);
    const a = decide(c, head('h', '/', ['x-pick', 'dyn']), 0.1);
    assert.equal(a.cluster, 'dyn');
    const h = head('h', '/');
    const b = decide(c, h, 0.9);
    assert.equal(b.cluster, 'b');
    applyRequestHeaders(b, h);
    assert.deepEqual(h.headers, ['x-w', 'b']);
    assert.equal(h.authority, 'b.internal');
    assert.deepEqual(b.filterConfig('my.filter'), fc, 'the weighted cluster level is the most specific');
    assert.ok(b.filterConfig('other'), 'inherited from the route');
    assert.equal(a.filterConfig('my.filter')?.value.length, pack(StringValueSchema, { value: 'route-level' }).value.length);
  });
});

describe('timeouts and policies', () => {
  test('route timeout: 15 s when unset, 0 = none; idle, gRPC and stream-duration timeouts', () => {
    assert.equal(decide(withRoutes([routeTo(cluster('a'))])).timeoutMs, 15_000);
    assert.equal(decide(withRoutes([routeTo({ ...cluster('a'), timeout: { seconds: 0n } })])).timeoutMs, 0);
    const d = decide(
      withRoutes([
        routeTo({
          ...cluster('a'),
          timeout: { seconds: 2n, nanos: 500_000_000 },
          idleTimeout: { seconds: 30n },
          maxGrpcTimeout: { seconds: 10n },
          grpcTimeoutOffset: { nanos: 5_000_000 },
          maxStreamDuration: { maxStreamDuration: { seconds: 60n }, grpcTimeoutHeaderMax: { seconds: 20n } },
        }),
      ]),
    );
    assert.equal(d.timeoutMs, 2500);
    assert.equal(d.idleTimeoutMs, 30_000);
    assert.equal(d.maxGrpcTimeoutMs, 10_000);
    assert.equal(d.grpcTimeoutOffsetMs, 5);
    assert.equal(d.maxStreamDurationMs, 60_000);
    assert.equal(d.grpcTimeoutHeaderMaxMs, 20_000);
    assert.equal(d.grpcTimeoutHeaderOffsetMs, undefined);
    assert.equal(decide(withRoutes([routeTo(cluster('a'))])).idleTimeoutMs, undefined);
  });

  test('retry policy: every field; the virtual host policy applies when the route has none', () => {
    const vhPolicy = { retryOn: 'gateway-error', numRetries: 4 };
    const c = withRoutes(
      [
        routeTo(
          {
            ...cluster('a'),
            retryPolicy: {
              retryOn: '5xx, reset ,retriable-4xx,unavailable,deadline-exceeded,bogus',
              perTryTimeout: { seconds: 1n },
              perTryIdleTimeout: { nanos: 200_000_000 },
              retriableStatusCodes: [409, 503],
              retryHostPredicate: [{ name: 'envoy.retry_host_predicates.previous_hosts', configType: { case: 'typedConfig', value: pack(PreviousHostsPredicateSchema, {}) } }],
              hostSelectionRetryMaxAttempts: 3n,
              retryBackOff: { baseInterval: { nanos: 100_000_000 }, maxInterval: { seconds: 1n } },
              rateLimitedRetryBackOff: { resetHeaders: [{ name: 'Retry-After', format: RetryPolicy_ResetHeaderFormat.SECONDS }, { name: 'x-reset', format: RetryPolicy_ResetHeaderFormat.UNIX_TIMESTAMP }] },
              retriableHeaders: [{ name: 'x-retry-me' }],
              retriableRequestHeaders: [{ name: ':method', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'GET' } } } }],
            },
          },
          { pathSpecifier: { case: 'prefix', value: '/own' } },
        ),
        routeTo(cluster('b')),
      ],
      { retryPolicy: vhPolicy },
    );
    const own = decide(c, head('h', '/own')).retryPolicy!;
    assert.deepEqual(own.retryOn, ['5xx', 'reset', 'retriable-4xx', 'unavailable', 'deadline-exceeded']);
    assert.equal(own.numRetries, 1, 'num_retries defaults to 1');
    assert.equal(own.perTryTimeoutMs, 1000);
    assert.equal(own.perTryIdleTimeoutMs, 200);
    assert.deepEqual(own.retriableStatusCodes, [409, 503]);
    assert.equal(own.previousHosts, true);
    assert.equal(own.hostSelectionMaxAttempts, 3);
    assert.equal(own.baseIntervalMs, 100);
    assert.equal(own.maxIntervalMs, 1000);
    assert.deepEqual(own.resetHeaders, [{ name: 'retry-after', format: 'SECONDS' }, { name: 'x-reset', format: 'UNIX_TIMESTAMP' }]);
    assert.equal(own.resetMaxIntervalMs, 300_000);
    assert.equal(own.requestRetriable(head('h', '/own')), true);
    assert.equal(own.requestRetriable(head('h', '/own', [], 'POST')), false);
    assert.equal(own.responseHeadersRetriable({ status: 200, headers: ['X-Retry-Me', '1'] }), true);
    assert.equal(own.responseHeadersRetriable({ status: 200, headers: [] }), false);
    assert.deepEqual(c.warnings, ['route_config "test": virtual_hosts[*].routes[*].route.retry_policy.retry_on: unknown retry condition "bogus" is ignored (as Envoy ignores it)']);

    const inherited = decide(c, head('h', '/other')).retryPolicy!;
    assert.deepEqual(inherited.retryOn, ['gateway-error']);
    assert.equal(inherited.numRetries, 4);
    assert.equal(inherited.hostSelectionMaxAttempts, 1);
    assert.equal(inherited.baseIntervalMs, undefined, 'no back-off configured: the retry state uses its defaults');
    assert.equal(decide(withRoutes([routeTo(cluster('a'))])).retryPolicy, undefined);
  });

  test('mirror policies: route, else virtual host, else route configuration; runtime fraction', () => {
    const c = withRoutes(
      [
        routeTo({ ...cluster('a'), requestMirrorPolicies: [{ cluster: 'route-mirror', runtimeFraction: { defaultValue: { numerator: 10, denominator: 0 } } }] }, { pathSpecifier: { case: 'prefix', value: '/own' } }),
        routeTo(cluster('b')),
      ],
      { requestMirrorPolicies: [{ clusterHeader: 'X-Mirror', disableShadowHostSuffixAppend: true }] },
      { requestMirrorPolicies: [{ cluster: 'rc-mirror' }] },
    );
    const own = decide(c, head('h', '/own')).mirrorPolicies;
    assert.equal(own.length, 1);
    assert.equal(own[0]!.cluster, 'route-mirror');
    assert.equal(own[0]!.sampled(0.09), true);
    assert.equal(own[0]!.sampled(0.1), false);
    const vh = decide(c, head('h', '/x')).mirrorPolicies;
    assert.equal(vh[0]!.clusterHeader, 'x-mirror');
    assert.equal(vh[0]!.disableShadowHostSuffixAppend, true);
    assert.equal(vh[0]!.sampled(0.999), true, 'no runtime_fraction: always');
    const rcOnly = withRoutes([routeTo(cluster('a'))], {}, { requestMirrorPolicies: [{ cluster: 'rc-mirror' }] });
    assert.equal(decide(rcOnly).mirrorPolicies[0]!.cluster, 'rc-mirror');
    assert.ok(rcOnly.clusterNames.has('rc-mirror'));
  });

  test('hash policies: header (with regex rewrite), cookie, source IP, query parameter, filter state; terminal', () => {
    const d = decide(
      withRoutes([
        routeTo({
          ...cluster('a'),
          hashPolicy: [
            { policySpecifier: { case: 'header', value: { headerName: 'X-User', regexRewrite: { pattern: { regex: '^(\\w+)-.*$' }, substitution: '\\1' } } }, terminal: true },
            { policySpecifier: { case: 'cookie', value: { name: 'sid', ttl: { seconds: 60n }, path: '/', attributes: [{ name: 'SameSite', value: 'Lax' }] } } },
            { policySpecifier: { case: 'connectionProperties', value: { sourceIp: true } } },
            { policySpecifier: { case: 'connectionProperties', value: { sourceIp: false } } },
            { policySpecifier: { case: 'queryParameter', value: { name: 'u' } } },
            { policySpecifier: { case: 'filterState', value: { key: 'k' } } },
          ],
        }),
      ]),
    );
    assert.deepEqual(
      d.hashPolicies.map((p) => p.kind),
      ['header', 'cookie', 'sourceIp', 'queryParameter', 'filterState'],
      'connection_properties without source_ip adds no hash',
    );
    const h = d.hashPolicies[0]!;
    assert.ok(h.kind === 'header' && h.terminal && h.headerName === 'x-user');
    assert.equal(h.regexRewrite!.re.replaceAll('alice-123', h.regexRewrite!.sub), 'alice');
    assert.deepEqual(d.hashPolicies[1], { kind: 'cookie', name: 'sid', ttlMs: 60_000, path: '/', attributes: [{ name: 'SameSite', value: 'Lax' }], terminal: false });
  });

  test('upgrade configs, priority, auto host rewrite, buffer limits', () => {
    const d = decide(
      withRoutes(
        [
          routeTo(
            {
              ...cluster('a'),
              upgradeConfigs: [{ upgradeType: 'WebSocket' }, { upgradeType: 'h2c', enabled: false }],
              priority: 1,
              hostRewriteSpecifier: { case: 'autoHostRewrite', value: { value: true } },
              appendXForwardedHost: true,
            },
            ALL,
            { perRequestBufferLimitBytes: 1024 },
          ),
        ],
        { includeAttemptCountInResponse: true, perRequestBufferLimitBytes: 4096 },
      ),
    );
    assert.deepEqual([...d.upgrades], [['websocket', true], ['h2c', false]]);
    assert.equal(d.priority, 'HIGH');
    assert.equal(d.autoHostRewrite, true);
    assert.equal(d.perRequestBufferLimitBytes, 1024);
    assert.equal(d.virtualHost.includeAttemptCountInResponse, true);
    const h = head('svc:80', '/');
    autoRewriteHost(d, h, 'pod-1.internal');
    assert.equal(h.authority, 'pod-1.internal');
    assert.deepEqual(h.headers, ['x-forwarded-host', 'svc:80']);
  });

  test('typed_per_filter_config: most specific level wins; FilterConfig wrappers (disabled)', () => {
    const v = (s: string) => pack(StringValueSchema, { value: s });
    const c = withRoutes(
      [
        routeTo(cluster('a'), { pathSpecifier: { case: 'prefix', value: '/route' } }, {
          typedPerFilterConfig: { fault: v('route'), cors: pack(FilterConfigSchema, { disabled: true }) },
        }),
        routeTo(cluster('b')),
      ],
      { typedPerFilterConfig: { fault: v('vhost'), rbac: pack(FilterConfigSchema, { config: v('wrapped'), isOptional: true }) } },
      { typedPerFilterConfig: { fault: v('rc'), cors: v('rc-cors') } },
    );
    const r = decide(c, head('h', '/route'));
    assert.deepEqual(r.filterConfig('fault'), v('route'));
    assert.deepEqual(r.filterConfig('cors'), v('rc-cors'), 'a disabled-only wrapper carries no config');
    assert.equal(r.filterDisabled('cors'), true);
    assert.deepEqual(r.filterConfig('rbac'), v('wrapped'), 'the wrapper is unwrapped');
    assert.equal(r.filterDisabled('rbac'), false);
    const other = decide(c, head('h', '/other'));
    assert.deepEqual(other.filterConfig('fault'), v('vhost'));
    assert.equal(other.filterDisabled('cors'), undefined);
    assert.equal(other.filterConfig('none'), undefined);
  });
});

describe('rewrites', () => {
  const rw = (action: Partial<ActionInit>, match: RouteInit['match']): CompiledRouteConfig => withRoutes([routeTo({ ...cluster('a'), ...action } as ActionInit, match)]);
  const run = (c: CompiledRouteConfig, path: string): string => {
    const h = head('h', path);
    rewritePath(decide(c, h), h);
    return h.path;
  };

  test('prefix_rewrite replaces the matched prefix; the query stays', () => {
    const c = rw({ prefixRewrite: '/v2/' }, { pathSpecifier: { case: 'prefix', value: '/api/' } });
    assert.equal(run(c, '/api/users?x=1'), '/v2/users?x=1');
    const slash = rw({ prefixRewrite: '/' }, { pathSpecifier: { case: 'prefix', value: '/strip' } });
    assert.equal(run(slash, '/strip/me'), '//me', 'Envoy replaces exactly the matched prefix');
    const ci = rw({ prefixRewrite: '/new' }, { pathSpecifier: { case: 'prefix', value: '/old' }, caseSensitive: false });
    assert.equal(run(ci, '/OLD/x'), '/new/x');
    const exact = rw({ prefixRewrite: '/b' }, { pathSpecifier: { case: 'path', value: '/a' } });
    assert.equal(run(exact, '/a?q'), '/b?q');
    const regexRoute = rw({ prefixRewrite: '/all' }, { pathSpecifier: { case: 'safeRegex', value: { regex: '/x/.*' } } });
    assert.equal(run(regexRoute, '/x/y?z'), '/all?z', 'a regex route replaces the whole path');
  });

  test('regex_rewrite with capture groups, on the path only; every match replaced', () => {
    const c = rw({ regexRewrite: { pattern: { regex: '^/service/([^/]+)(/.*)$' }, substitution: '\\2/instance/\\1' } }, ALL);
    assert.equal(run(c, '/service/foo/v1/api?k=v'), '/v1/api/instance/foo?k=v');
    const all = rw({ regexRewrite: { pattern: { regex: 'one' }, substitution: 'two' } }, ALL);
    assert.equal(run(all, '/xxx/one/yyy/one/zzz'), '/xxx/two/yyy/two/zzz');
    const empty = rw({ regexRewrite: { pattern: { regex: 'x*' }, substitution: '-' } }, ALL);
    assert.equal(run(empty, '/ab'), '-/-a-b-', 'empty matches as RE2::GlobalReplace');
    const whole = rw({ regexRewrite: { pattern: { regex: '^.*$' }, substitution: '/fixed' } }, ALL);
    assert.equal(run(whole, '/any/path?keep=1'), '/fixed?keep=1');
    const escaped = rw({ regexRewrite: { pattern: { regex: '(a)' }, substitution: '\\\\\\1\\0' } }, ALL);
    assert.equal(run(escaped, '/a'), '/\\aa');
    const none = rw({ regexRewrite: { pattern: { regex: 'nomatch' }, substitution: 'x' } }, ALL);
    assert.equal(run(none, '/p?q'), '/p?q');
    const noRewrite = rw({}, ALL);
    const h = head('h', '/p');
    assert.equal(rewritePath(decide(noRewrite, h), h), false);
  });

  test('host rewrites: literal, from a header, from the path; x-forwarded-host appended once', () => {
    const lit = withRoutes([routeTo({ ...cluster('a'), hostRewriteSpecifier: { case: 'hostRewriteLiteral', value: 'new.host' }, appendXForwardedHost: true })]);
    const h = head('old.host', '/', ['x-forwarded-host', 'edge.example']);
    applyRequestHeaders(decide(lit, h), h);
    assert.equal(h.authority, 'new.host');
    assert.deepEqual(h.headers, ['x-forwarded-host', 'edge.example,old.host']);
    const again = head('old.host', '/', ['x-forwarded-host', 'edge.example, old.host']);
    applyRequestHeaders(decide(lit, again), again);
    assert.deepEqual(again.headers, ['x-forwarded-host', 'edge.example, old.host'], 'not appended twice');

    const fromHeader = withRoutes([routeTo({ ...cluster('a'), hostRewriteSpecifier: { case: 'hostRewriteHeader', value: 'X-Host' } })]);
    const h2 = head('old', '/', ['x-host', 'from-header']);
    applyRequestHeaders(decide(fromHeader, h2), h2);
    assert.equal(h2.authority, 'from-header');
    assert.deepEqual(h2.headers, ['x-host', 'from-header'], 'no x-forwarded-host unless asked');
    const h3 = head('old', '/');
    applyRequestHeaders(decide(fromHeader, h3), h3);
    assert.equal(h3.authority, 'old', 'missing header: unchanged');

    const fromPath = withRoutes([
      routeTo({ ...cluster('a'), hostRewriteSpecifier: { case: 'hostRewritePathRegex', value: { pattern: { regex: '^/([^/]+)/.*$' }, substitution: '\\1.svc' } } }),
    ]);
    const h4 = head('old', '/tenant-a/x?y');
    applyRequestHeaders(decide(fromPath, h4), h4);
    assert.equal(h4.authority, 'tenant-a.svc');
  });
});

describe('redirects and direct responses', () => {
  const redirect = (r: RedirectInit, match: RouteInit['match'] = ALL): CompiledRouteConfig => withRoutes([{ name: 'redir', match, action: { case: 'redirect', value: r } } as RouteInit]);
  const loc = (c: CompiledRouteConfig, h: RequestHead): string | undefined => localReplyLocation(decide(c, h), h);

  test('response codes', () => {
    const codes = [301, 302, 303, 307, 308];
    codes.forEach((status, responseCode) => assert.equal(decide(redirect({ responseCode, hostRedirect: 'x' })).status, status));
  });

  test('scheme, host and port redirects follow Envoy’s port handling', () => {
    assert.equal(loc(redirect({ schemeRewriteSpecifier: { case: 'httpsRedirect', value: true } }), head('example.com', '/a?b')), 'https://example.com/a?b');
    assert.equal(loc(redirect({ schemeRewriteSpecifier: { case: 'httpsRedirect', value: true } }), head('example.com:80', '/a')), 'https://example.com/a', 'the old scheme’s default port is dropped');
    assert.equal(loc(redirect({ schemeRewriteSpecifier: { case: 'httpsRedirect', value: true } }), head('example.com:8080', '/a')), 'https://example.com:8080/a');
    assert.equal(loc(redirect({ schemeRewriteSpecifier: { case: 'schemeRedirect', value: 'https' }, portRedirect: 8443 }), head('example.com:8080', '/a')), 'https://example.com:8443/a');
    assert.equal(loc(redirect({ hostRedirect: 'other.org' }), head('example.com:8080', '/a')), 'http://other.org/a');
    assert.equal(loc(redirect({ hostRedirect: 'other.org', portRedirect: 81 }), head('example.com', '/a')), 'http://other.org:81/a');
    assert.equal(loc(redirect({ portRedirect: 9000 }), head('[::1]:8080', '/a')), 'http://[::1]:9000/a');
    // x-forwarded-proto decides which default port is dropped.
    const tls = head('example.com:443', '/a', ['x-forwarded-proto', 'https']);
    assert.equal(loc(redirect({ schemeRewriteSpecifier: { case: 'schemeRedirect', value: 'http' } }), tls), 'http://example.com/a');
  });

  test('path_redirect, prefix_rewrite, regex_rewrite, strip_query', () => {
    assert.equal(loc(redirect({ pathRewriteSpecifier: { case: 'pathRedirect', value: '/new' } }), head('h', '/old?x=1')), 'http://h/new?x=1', 'the request query is kept');
    assert.equal(loc(redirect({ pathRewriteSpecifier: { case: 'pathRedirect', value: '/new?y=2' }, stripQuery: true }), head('h', '/old?x=1')), 'http://h/new?y=2', 'path_redirect’s own query wins and is never stripped');
    assert.equal(loc(redirect({ pathRewriteSpecifier: { case: 'pathRedirect', value: '/new' }, stripQuery: true }), head('h', '/old?x=1')), 'http://h/new');
    assert.equal(loc(redirect({ pathRewriteSpecifier: { case: 'pathRedirect', value: 'relative' } }), head('h', '/old')), 'http://h/relative');
    assert.equal(
      loc(redirect({ pathRewriteSpecifier: { case: 'prefixRewrite', value: '/v2' } }, { pathSpecifier: { case: 'prefix', value: '/v1' } }), head('h', '/v1/items?q')),
      'http://h/v2/items?q',
    );
    assert.equal(
      loc(redirect({ pathRewriteSpecifier: { case: 'regexRewrite', value: { pattern: { regex: '^/u/([0-9]+)$' }, substitution: '/users/\\1' } }, stripQuery: true }), head('h', '/u/42?z')),
      'http://h/users/42',
    );
  });

  test('direct responses: inline string, bytes, environment variable, file; Location only for 201 and 3xx', () => {
    const direct = (status: number, body?: object, opts?: CompileOptions) =>
      withRoutes([{ name: 'd', match: ALL, action: { case: 'directResponse', value: { status, body } } } as RouteInit], {}, {}, opts);
    const s = decide(direct(200, { specifier: { case: 'inlineString', value: 'ok' } }));
    assert.equal(s.kind, 'direct');
    assert.equal(s.body?.toString(), 'ok');
    assert.equal(localReplyLocation(s, head('h', '/p')), undefined);
    assert.deepEqual(decide(direct(200, { specifier: { case: 'inlineBytes', value: new Uint8Array([0, 1, 2]) } })).body, Buffer.from([0, 1, 2]));
    assert.equal(decide(direct(200, { specifier: { case: 'environmentVariable', value: 'BODY' } }, { env: { BODY: 'from env' } })).body?.toString(), 'from env');
    assert.equal(decide(direct(200, { specifier: { case: 'filename', value: '/body.txt' } }, { readFile: (p) => Buffer.from(`file ${p}`) })).body?.toString(), 'file /body.txt');
    assert.equal(decide(direct(204)).body, undefined);
    const moved = decide(direct(301));
    assert.equal(localReplyLocation(moved, head('h:8080', '/p?q')), 'http://h:8080/p?q', 'a 3xx direct response points at the request URL');
    assert.equal(localReplyLocation(decide(direct(201)), head('h', '/created')), 'http://h/created');
  });

  test('require_tls: ALL redirects plain requests with 301; EXTERNAL_ONLY spares x-envoy-internal requests', () => {
    const all = withRoutes([routeTo(cluster('a'))], { requireTls: 2 });
    const d = decide(all, head('h:8080', '/p?q'));
    assert.equal(d.kind, 'redirect');
    assert.equal(d.status, 301);
    assert.equal(localReplyLocation(d, head('h:8080', '/p?q')), 'https://h:8080/p?q');
    assert.equal(decide(all, head('h', '/', [], 'GET', 'https')).cluster, 'a');
    assert.equal(decide(all, head('h', '/', ['x-forwarded-proto', 'https'])).cluster, 'a', 'x-forwarded-proto is the scheme Envoy checks');
    const ext = withRoutes([routeTo(cluster('a'))], { requireTls: 1 });
    assert.equal(decide(ext, head('h', '/')).kind, 'redirect');
    assert.equal(decide(ext, head('h', '/', ['x-envoy-internal', 'true'])).cluster, 'a');
  });
});
