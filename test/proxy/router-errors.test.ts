// HTTP router: invalid or unsupported RouteConfigurations are ConfigErrors naming the resource and the field (the
// xDS client NACKs them), and accepted-but-ignored fields are reported once.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { StringValueSchema } from '@bufbuild/protobuf/wkt';
import { pack } from '../../src/xds/index.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { FilterConfigSchema, RouteAction_InternalRedirectAction } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import { HeaderValueOption_HeaderAppendAction } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { compileRouteConfiguration, ConfigError } from '../../src/proxy/http/router/index.js';

type RcInit = MessageInitShape<typeof RouteConfigurationSchema>;
type VhInit = NonNullable<RcInit['virtualHosts']>[number];
type RouteInit = NonNullable<VhInit['routes']>[number];

const ALL = { pathSpecifier: { case: 'prefix' as const, value: '/' } };
const TO_A = { case: 'route' as const, value: { clusterSpecifier: { case: 'cluster' as const, value: 'a' } } };

function rc(init: object): RcInit {
  return create(RouteConfigurationSchema, { name: 'outbound', ...init } as RcInit);
}

function withRoute(route: object, vh: object = {}, top: object = {}): RcInit {
  return rc({ virtualHosts: [{ name: 'vh', domains: ['*'], routes: [{ name: 'r', match: ALL, action: TO_A, ...route } as RouteInit], ...vh }], ...top });
}

function withAction(action: object): RcInit {
  return withRoute({ action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'a' }, ...action } } });
}

/** Asserts that compiling fails with exactly this message. */
function rejects(init: RcInit, message: string | RegExp): void {
  assert.throws(
    () => compileRouteConfiguration(create(RouteConfigurationSchema, init)),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `a ConfigError, got ${String(e)}`);
      if (typeof message === 'string') assert.equal(e.message, message);
      else assert.match(e.message, message);
      return true;
    },
  );
}

const R = 'route_config "outbound": virtual_hosts[0].routes[0]';

describe('ConfigError', () => {
  test('names the resource, the field and the problem', () => {
    try {
      compileRouteConfiguration(create(RouteConfigurationSchema, withRoute({ match: { pathSpecifier: { case: 'safeRegex', value: { regex: '(' } } } })));
      assert.fail('expected a ConfigError');
    } catch (e) {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.resource, 'outbound');
      assert.equal(e.field, 'virtual_hosts[0].routes[0].match.safe_regex.regex');
      assert.equal(e.kind, 'route_config');
      assert.equal(e.message, `${R}.match.safe_regex.regex: invalid regex "(": error parsing regexp: missing closing ): \`(\``);
    }
  });

  test('invalid regexes anywhere', () => {
    rejects(withRoute({ match: { ...ALL, headers: [{ name: 'x', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex', value: { regex: 'a(?=b)' } } } } }] } }), /virtual_hosts\[0\]\.routes\[0\]\.match\.headers\[0\]\.string_match\.safe_regex\.regex: invalid regex "a\(\?=b\)": .*Perl syntax/);
    rejects(withAction({ regexRewrite: { pattern: { regex: '[' }, substitution: 'x' } }), /routes\[0\]\.route\.regex_rewrite\.pattern\.regex: invalid regex "\["/);
    rejects(withRoute({ match: { pathSpecifier: { case: 'safeRegex', value: { regex: '' } } } }), `${R}.match.safe_regex.regex: must not be empty`);
    rejects(withAction({ regexRewrite: { pattern: { regex: '^/(a)$' }, substitution: '/\\2' } }), `${R}.route.regex_rewrite.substitution: substitution refers to group \\2 but the regex has 1 capture group`);
    rejects(withAction({ regexRewrite: { pattern: { regex: 'a' }, substitution: '\\n' } }), `${R}.route.regex_rewrite.substitution: invalid escape in substitution at position 0: only \\0..\\9 and \\\\ are allowed`);
    rejects(
      withRoute({ match: { ...ALL, headers: [{ name: 'x', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex', value: { regex: 'a' } }, ignoreCase: true } } }] } }),
      `${R}.match.headers[0].string_match.ignore_case: ignore_case has no effect for safe_regex`,
    );
  });

  test('unknown or malformed header templates', () => {
    const hdr = (value: string) => withRoute({ requestHeadersToAdd: [{ header: { key: 'x-v', value } }] });
    rejects(hdr('%FOO_BAR%'), `${R}.request_headers_to_add[0].header.value: unknown command %FOO_BAR%`);
    rejects(hdr('%UPSTREAM_METADATA(["a","b"])%'), `${R}.request_headers_to_add[0].header.value: %UPSTREAM_METADATA% is not supported by this proxy`);
    rejects(hdr('100%'), `${R}.request_headers_to_add[0].header.value: invalid header value "100%": couldn't find a valid command at position 3 (a literal % is written %%)`);
    rejects(hdr('%req(x)%'), /couldn't find a valid command at position 0/);
    rejects(hdr('%REQ%'), `${R}.request_headers_to_add[0].header.value: %REQ(...)% requires a header name`);
    rejects(hdr('%REQ(a?b?c)%'), /more than 1 alternative header/);
    rejects(hdr('%PROTOCOL(x)%'), `${R}.request_headers_to_add[0].header.value: %PROTOCOL% does not take any parameters or length`);
    rejects(hdr('%PROTOCOL:3%'), /%PROTOCOL% does not take any parameters or length/);
    rejects(hdr('%START_TIME(%Q)%'), /%START_TIME\(%Q\)%: unsupported time format specifier %Q/);
    rejects(withRoute({ responseHeadersToAdd: [{ header: { key: 'x', value: '%BYTES_SENT%' } }] }), `${R}.response_headers_to_add[0].header.value: %BYTES_SENT% is not supported by this proxy`);
    rejects(rc({ requestHeadersToAdd: [{ header: { key: 'x', value: '%NOPE%' } }], virtualHosts: [] }), 'route_config "outbound": request_headers_to_add[0].header.value: unknown command %NOPE%');
  });

  test('header mutations that Envoy refuses', () => {
    rejects(withRoute({ requestHeadersToAdd: [{ header: { key: ':path', value: '/x' } }] }), `${R}.request_headers_to_add[0].header.key: :-prefixed or host headers may not be modified (:path)`);
    rejects(withRoute({ requestHeadersToAdd: [{ header: { key: 'Host', value: 'x' } }] }), /may not be modified \(Host\)/);
    rejects(withRoute({ requestHeadersToRemove: ['host'] }), `${R}.request_headers_to_remove[0]: :-prefixed or host headers may not be removed (host)`);
    rejects(withRoute({}, { responseHeadersToRemove: [':status'] }), 'route_config "outbound": virtual_hosts[0].response_headers_to_remove[0]: :-prefixed or host headers may not be removed (:status)');
    rejects(
      withRoute({ requestHeadersToAdd: [{ header: { key: 'x', value: 'v' }, append: true, appendAction: HeaderValueOption_HeaderAppendAction.ADD_IF_ABSENT }] }),
      `${R}.request_headers_to_add[0]: both append and append_action are set and it is not allowed`,
    );
    rejects(withRoute({ requestHeadersToAdd: [{ header: { key: 'x', value: 'a\nb' } }] }), `${R}.request_headers_to_add[0].header.value: must not contain NUL, CR or LF`);
    rejects(withRoute({ requestHeadersToAdd: [{ header: { key: '', value: 'v' } }] }), `${R}.request_headers_to_add[0].header.key: must not be empty`);
  });

  test('unsupported actions and features', () => {
    rejects(withRoute({ action: { case: 'filterAction', value: {} } }), `${R}.filter_action: filter_action routes are not supported`);
    rejects(withRoute({ action: { case: 'nonForwardingAction', value: {} } }), `${R}.non_forwarding_action: non_forwarding_action routes are not supported`);
    rejects(withRoute({ action: { case: undefined } }), `${R}: one of route, redirect or direct_response is required`);
    rejects(withRoute({ action: { case: 'route', value: { clusterSpecifier: { case: 'clusterSpecifierPlugin', value: 'p' } } } }), `${R}.route.cluster_specifier_plugin: cluster specifier plugins are not supported`);
    rejects(withRoute({ action: { case: 'route', value: {} } }), `${R}.route: one of cluster, cluster_header or weighted_clusters is required`);
    rejects(withAction({ metadataMatch: { filterMetadata: {} } }), `${R}.route.metadata_match: subset load balancing by metadata_match is not supported`);
    rejects(withAction({ internalRedirectAction: RouteAction_InternalRedirectAction.HANDLE_INTERNAL_REDIRECT }), `${R}.route.internal_redirect_action: internal redirects are not supported`);
    rejects(withAction({ internalRedirectPolicy: {} }), `${R}.route.internal_redirect_policy: internal redirects are not supported`);
    rejects(withAction({ hedgePolicy: { initialRequests: 2 } }), `${R}.route.hedge_policy: request hedging is not supported`);
    rejects(withAction({ pathRewritePolicy: { name: 'uri_template' } }), `${R}.route.path_rewrite_policy: path rewrite policy extensions are not supported (uri_template)`);
    rejects(withAction({ prefixRewrite: '/a', regexRewrite: { pattern: { regex: 'a' }, substitution: 'b' } }), `${R}.route: specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy`);
    rejects(withRoute({ match: { ...ALL, dynamicMetadata: [{ filter: 'f' }] } }), `${R}.match.dynamic_metadata: dynamic metadata matching is not supported`);
    rejects(withRoute({ match: { pathSpecifier: { case: 'pathMatchPolicy', value: { name: 'tmpl' } } } }), `${R}.match.path_match_policy: path match policy extensions are not supported (tmpl)`);
    rejects(rc({ vhds: {}, virtualHosts: [] }), 'route_config "outbound": vhds: virtual host discovery (VHDS) is not supported');
    rejects(rc({ clusterSpecifierPlugins: [{}], virtualHosts: [] }), 'route_config "outbound": cluster_specifier_plugins: cluster specifier plugins are not supported');
    rejects(withRoute({}, { matcher: {} }), 'route_config "outbound": virtual_hosts[0].matcher: matcher trees are not supported (use routes)');
    rejects(
      withAction({ retryPolicy: { retryHostPredicate: [{ name: 'envoy.retry_host_predicates.omit_canary_hosts' }] } }),
      `${R}.route.retry_policy.retry_host_predicate[0]: retry host predicate envoy.retry_host_predicates.omit_canary_hosts is not supported (only envoy.retry_host_predicates.previous_hosts)`,
    );
    rejects(withAction({ retryPolicyTypedConfig: pack(StringValueSchema, {}) }), `${R}.route.retry_policy_typed_config: retry policy extensions are not supported`);
  });

  test('invalid values', () => {
    rejects(withRoute({ match: undefined }), `${R}.match: is required`);
    rejects(withRoute({ match: {} }), `${R}.match: one of prefix, path, safe_regex, connect_matcher or path_separated_prefix is required`);
    rejects(withRoute({ match: { pathSpecifier: { case: 'pathSeparatedPrefix', value: '/api/' } } }), `${R}.match.path_separated_prefix: "/api/" must not be empty, contain ? or # or end with /`);
    rejects(withAction({ timeout: { seconds: -1n } }), `${R}.route.timeout: duration must not be negative`);
    rejects(withAction({ retryPolicy: { retryBackOff: { baseInterval: { seconds: 2n }, maxInterval: { seconds: 1n } } } }), `${R}.route.retry_policy.retry_back_off.max_interval: must be greater than or equal to the base_interval`);
    rejects(withAction({ retryPolicy: { retryBackOff: {} } }), `${R}.route.retry_policy.retry_back_off.base_interval: is required`);
    rejects(withAction({ retryPolicy: { retryBackOff: { baseInterval: {} } } }), `${R}.route.retry_policy.retry_back_off.base_interval: must be greater than 0`);
    rejects(withAction({ retryPolicy: { rateLimitedRetryBackOff: { resetHeaders: [] } } }), `${R}.route.retry_policy.rate_limited_retry_back_off.reset_headers: must have at least one header`);
    rejects(withAction({ requestMirrorPolicies: [{ cluster: 'm', clusterHeader: 'x-m' }] }), /only one of cluster 'm' or cluster_header 'x-m'/);
    rejects(withAction({ requestMirrorPolicies: [{}] }), `${R}.route.request_mirror_policies[0]: exactly one of cluster or cluster_header in request mirror policy needs to be specified`);
    rejects(withAction({ upgradeConfigs: [{ upgradeType: 'websocket' }, { upgradeType: 'WebSocket' }] }), `${R}.route.upgrade_configs[1].upgrade_type: duplicate upgrade WebSocket`);
    rejects(withRoute({ match: { ...ALL, runtimeFraction: { runtimeKey: 'k' } } }), `${R}.match.runtime_fraction.default_value: is required`);
    rejects(withRoute({ action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: '' } } } }), `${R}.route.cluster: must not be empty`);
    rejects(
      withRoute({ action: { case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 0 }, { name: 'b' }] } } } } }),
      `${R}.route.weighted_clusters: sum of weights in the weighted_cluster must be greater than 0`,
    );
    rejects(withRoute({ action: { case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [] } } } } }), `${R}.route.weighted_clusters.clusters: must have at least one cluster`);
    rejects(
      withRoute({ action: { case: 'route', value: { clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', clusterHeader: 'x', weight: 1 }] } } } } }),
      `${R}.route.weighted_clusters.clusters[0]: only one of name or cluster_header can be specified`,
    );
    rejects(withRoute({ action: { case: 'directResponse', value: { status: 99 } } }), `${R}.direct_response.status: must be in [100, 600), got 99`);
    rejects(
      withRoute({ action: { case: 'directResponse', value: { status: 200, body: { specifier: { case: 'inlineString', value: 'x'.repeat(4097) } } } } }),
      `${R}.direct_response.body: response body size is 4097 bytes; maximum is 4096`,
    );
    // max_direct_response_body_size_bytes raises the limit.
    compileRouteConfiguration(
      create(RouteConfigurationSchema, withRoute({ action: { case: 'directResponse', value: { status: 200, body: { specifier: { case: 'inlineString', value: 'x'.repeat(4097) } } } } }, {}, { maxDirectResponseBodySizeBytes: 8192 })),
    );
    rejects(
      withRoute({ action: { case: 'directResponse', value: { status: 200, body: { specifier: { case: 'environmentVariable', value: 'WEFT_ROUTER_TEST_UNSET_VARIABLE' } } } } }),
      `${R}.direct_response.body.environment_variable: environment variable WEFT_ROUTER_TEST_UNSET_VARIABLE does not exist`,
    );
    rejects(withRoute({ typedPerFilterConfig: { f: pack(FilterConfigSchema, {}) } }), `${R}.typed_per_filter_config["f"]: empty per-filter configuration for filter f`);
    rejects(withRoute({ match: { ...ALL, headers: [{ name: 'x', headerMatchSpecifier: { case: 'prefixMatch', value: '' } }] } }), `${R}.match.headers[0].prefix_match: must not be empty (use present_match)`);
    rejects(withRoute({ match: { ...ALL, queryParameters: [{ name: '' }] } }), `${R}.match.query_parameters[0].name: must not be empty`);
  });

  test('virtual hosts and domains', () => {
    rejects(rc({ virtualHosts: [{ name: '', domains: ['a'] }] }), 'route_config "outbound": virtual_hosts[0].name: must not be empty');
    rejects(rc({ virtualHosts: [{ name: 'a', domains: [] }] }), 'route_config "outbound": virtual_hosts[0].domains: must have at least one domain');
    rejects(
      rc({ virtualHosts: [{ name: 'a', domains: ['x.com'] }, { name: 'b', domains: ['y.com', 'X.COM'] }] }),
      'route_config "outbound": virtual_hosts[1].domains[1]: only unique values for domains are permitted: duplicate entry of domain x.com in route outbound',
    );
    rejects(rc({ virtualHosts: [{ name: 'a', domains: ['*.x.com'] }, { name: 'b', domains: ['*.x.com'] }] }), /virtual_hosts\[1\]\.domains\[0\]: only unique values for domains are permitted/);
    rejects(rc({ virtualHosts: [{ name: 'a', domains: ['*'] }, { name: 'b', domains: ['*'] }] }), 'route_config "outbound": virtual_hosts[1].domains[0]: only a single wildcard domain is permitted in route outbound');
  });
});

describe('warnings', () => {
  test('accepted-but-ignored fields are reported once per field, not per route', () => {
    const routes = Array.from({ length: 50 }, (_, i) => ({ name: `r${i}`, match: ALL, action: TO_A, decorator: { operation: 'op' }, statPrefix: 's' }));
    const c = compileRouteConfiguration(
      create(RouteConfigurationSchema, rc({ virtualHosts: [{ name: 'a', domains: ['a'], routes, virtualClusters: [{ name: 'vc', headers: [{ name: 'x' }] }] }, { name: 'b', domains: ['b'], routes }] })),
    );
    assert.deepEqual(c.warnings, [
      'route_config "outbound": virtual_hosts[*].virtual_clusters: virtual cluster stats are not emitted',
      'route_config "outbound": virtual_hosts[*].routes[*].decorator: tracing decorators are ignored',
      'route_config "outbound": virtual_hosts[*].routes[*].stat_prefix: per-route stats are not emitted',
    ]);
  });

  test('a clean configuration has no warnings', () => {
    assert.deepEqual(compileRouteConfiguration(create(RouteConfigurationSchema, withRoute({}))).warnings, []);
  });
});
