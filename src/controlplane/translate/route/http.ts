/**
 * One model HTTP route → Envoy routes, following Istio's `translateRoute` (pilot/pkg/networking/core/route):
 *
 * - one Envoy route per model match that applies to this proxy and port (a route without matches is one
 *   catch-all route); routes are named `<route name>` or `<route name>.<match name>`;
 * - a single destination routes to its cluster directly, several become weighted clusters (weight 0 left
 *   out); clusters are `outbound|<port>|<subset>|<host>` with the destination's port, else the port of a
 *   single-port service, else the port being routed;
 * - retries (Istio `retry.ConvertPolicy`): `attempts` 0 = none; otherwise num_retries, retry_on,
 *   retriable_status_codes, per_try_timeout, back-off, `host_selection_retry_max_attempts` 5 and the
 *   `previous_hosts` predicate (left out when the single destination hashes consistently, unless
 *   retryIgnorePreviousHosts says otherwise), `previous_priorities` for retryRemoteLocalities;
 * - timeout: the route's, else the mesh default (0 = none); gRPC deadlines are capped the same way
 *   (`max_grpc_timeout` for Envoy, `max_stream_duration` for proxyless gRPC);
 * - fault and CORS as typed_per_filter_config of the `envoy.filters.http.fault` / `envoy.filters.http.cors`
 *   filters, percentages over a MILLION;
 * - mirrors as request_mirror_policies (trace_sampled false), rewrites (regex > full path > prefix, host),
 *   redirects (response codes 301/302/303/307/308; `derivePort: FROM_REQUEST_PORT` = the routed port; the
 *   scheme's default port is left out), direct responses, header operations (`set` overwrites, `add` appends;
 *   `:authority`/`host` become a host rewrite), consistent-hash policies from the destination's
 *   DestinationRule (subset port-level > subset > port-level > top level);
 * - Gateway API routes answer 500 when their backend's cluster does not exist (`cluster_not_found_response_code`,
 *   as the Gateway API requires for invalid backends and Istio configures); other routes keep Envoy's 503.
 *
 * Proxyless gRPC clients reject a whole RouteConfiguration that holds a redirect or direct-response action or
 * a per-filter config they do not know (gRFC A28/A31), so for them: redirects are dropped (and reported),
 * a direct response becomes an abort fault with the same HTTP status for every request (gRPC maps the status
 * to a gRPC code exactly as it would for a proxy's direct response), and CORS is left out (it means nothing
 * to a gRPC client).
 */
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import type {
  CorsPolicy as ModelCors,
  DestinationPolicy,
  Destination,
  FaultPolicy,
  HeaderOps,
  HttpRoute,
  LoadBalancerSettings,
  MeshSettings,
  Redirect,
  RetryPolicy as ModelRetry,
  RouteMatch as ModelMatch,
  Service,
} from '../../../api/model.js';
import { pack } from '../../../xds/index.js';
import { DataSourceSchema, HeaderValueOption_HeaderAppendAction, HeaderValueOptionSchema, HeaderValueSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { HeaderValueOption } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import {
  DirectResponseActionSchema,
  RedirectAction_RedirectResponseCode,
  RedirectActionSchema,
  RouteAction_ClusterNotFoundResponseCode,
  RetryPolicy_RetryBackOffSchema,
  RetryPolicy_RetryHostPredicateSchema,
  RetryPolicy_RetryPrioritySchema,
  RetryPolicySchema,
  RouteAction_HashPolicy_ConnectionPropertiesSchema,
  RouteAction_HashPolicy_CookieSchema,
  RouteAction_HashPolicy_HeaderSchema,
  RouteAction_HashPolicy_QueryParameterSchema,
  RouteAction_HashPolicySchema,
  RouteAction_MaxStreamDurationSchema,
  RouteAction_RequestMirrorPolicySchema,
  RouteActionSchema,
  RouteSchema,
  WeightedCluster_ClusterWeightSchema,
  WeightedClusterSchema,
} from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { RetryPolicy, Route, RouteAction, RouteAction_HashPolicy, WeightedCluster_ClusterWeight } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { FaultDelaySchema } from '../../../xds/gen/envoy/extensions/filters/common/fault/v3/fault_pb.js';
import { CorsPolicySchema } from '../../../xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import { FaultAbortSchema, HTTPFaultSchema } from '../../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import type { HTTPFault } from '../../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { PreviousHostsPredicateSchema } from '../../../xds/gen/envoy/extensions/retry/host/previous_hosts/v3/previous_hosts_pb.js';
import { PreviousPrioritiesConfigSchema } from '../../../xds/gen/envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config_pb.js';
import { RegexMatchAndSubstituteSchema, RegexMatcherSchema } from '../../../xds/gen/envoy/type/matcher/v3/regex_pb.js';
import { outboundClusterName } from '../names.js';
import { isCatchAll, matchAppliesToClient, matchAppliesToPort, routeMatchOf } from './match.js';
import type { RouteClient } from './match.js';
import { CORS_FILTER, durationMs, FAULT_FILTER, fractionalPercent, fullRuntimeFraction, runtimeFraction, stringMatcher } from './util.js';

/** The name of the route generated for a service without routing rules (Istio `DefaultRouteName`). */
export const DEFAULT_ROUTE_NAME = 'default';

/** Istio's `host_selection_retry_max_attempts` (Envoy's default is 1). */
export const HOST_SELECTION_RETRY_MAX_ATTEMPTS = 5n;

const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';
const PREVIOUS_PRIORITIES = 'envoy.retry_priorities.previous_priorities';
/** The predicate's (empty) configuration, packed once: it is the same in every retry policy. */
const PREVIOUS_HOSTS_CONFIG = pack(PreviousHostsPredicateSchema, {});

/** gRPC status codes by name (grpc/grpc doc/statuscodes.md), for abort faults. */
const GRPC_CODES: Readonly<Record<string, number>> = {
  OK: 0, CANCELLED: 1, UNKNOWN: 2, INVALID_ARGUMENT: 3, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, FAILED_PRECONDITION: 9, ABORTED: 10, OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, DATA_LOSS: 15, UNAUTHENTICATED: 16,
};

const REDIRECT_CODES: Readonly<Record<number, RedirectAction_RedirectResponseCode>> = {
  301: RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY,
  302: RedirectAction_RedirectResponseCode.FOUND,
  303: RedirectAction_RedirectResponseCode.SEE_OTHER,
  307: RedirectAction_RedirectResponseCode.TEMPORARY_REDIRECT,
  308: RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT,
};

/** A route that cannot be expressed: it is left out and reported. */
export class RouteError extends Error {}

/** What route translation needs to know about the proxy and the mesh. */
export interface HttpRouteContext {
  client: RouteClient;
  /** Proxyless gRPC client (see the module comment). */
  grpc: boolean;
  mesh: Pick<MeshSettings, 'defaultRetries' | 'defaultTimeoutMs'>;
  /** A service visible to the proxy, by hostname. */
  service(host: string): Service | undefined;
  /** The DestinationRule that applies to a host for this proxy. */
  destinationPolicy(host: string): DestinationPolicy | undefined;
}

type ConsistentHash = NonNullable<LoadBalancerSettings['consistentHash']>;

// ---------------------------------------------------------------------------------------------------------------
// Pieces

/** Istio `ConvertPolicy`: undefined when retries are off. */
export function retryPolicyOf(p: ModelRetry, consistentHash: boolean): RetryPolicy | undefined {
  if (p.attempts <= 0) return undefined;
  const out = create(RetryPolicySchema, {
    numRetries: p.attempts,
    retryOn: p.retryOn.join(','),
    retriableStatusCodes: [...p.retriableStatusCodes],
    hostSelectionRetryMaxAttempts: HOST_SELECTION_RETRY_MAX_ATTEMPTS,
  });
  const ignorePrevious = p.retryIgnorePreviousHosts ?? !consistentHash;
  if (ignorePrevious) {
    out.retryHostPredicate = [
      create(RetryPolicy_RetryHostPredicateSchema, { name: PREVIOUS_HOSTS, configType: { case: 'typedConfig', value: PREVIOUS_HOSTS_CONFIG } }),
    ];
  }
  if (p.perTryTimeoutMs !== undefined) out.perTryTimeout = durationMs(p.perTryTimeoutMs);
  if (p.retryRemoteLocalities) {
    out.retryPriority = create(RetryPolicy_RetryPrioritySchema, {
      name: PREVIOUS_PRIORITIES,
      configType: { case: 'typedConfig', value: pack(PreviousPrioritiesConfigSchema, { updateFrequency: 2 }) },
    });
  }
  if (p.backoff) {
    out.retryBackOff = create(RetryPolicy_RetryBackOffSchema, { baseInterval: durationMs(p.backoff.baseIntervalMs) });
    if (p.backoff.maxIntervalMs !== undefined) out.retryBackOff.maxInterval = durationMs(p.backoff.maxIntervalMs);
  }
  return out;
}

/** Istio `TranslateFault`; undefined when neither a delay nor an abort remains. */
export function faultOf(f: FaultPolicy): HTTPFault | undefined {
  const out = create(HTTPFaultSchema);
  if (f.delay) {
    out.delay = create(FaultDelaySchema, {
      percentage: fractionalPercent(f.delay.percent),
      faultDelaySecifier: { case: 'fixedDelay', value: durationMs(f.delay.fixedDelayMs) },
    });
  }
  if (f.abort) {
    const a = f.abort;
    if (a.httpStatus !== undefined) {
      out.abort = create(FaultAbortSchema, { percentage: fractionalPercent(a.percent), errorType: { case: 'httpStatus', value: a.httpStatus } });
    } else if (a.grpcStatus !== undefined && GRPC_CODES[a.grpcStatus] !== undefined) {
      out.abort = create(FaultAbortSchema, { percentage: fractionalPercent(a.percent), errorType: { case: 'grpcStatus', value: GRPC_CODES[a.grpcStatus]! } });
    }
  }
  return out.delay || out.abort ? out : undefined;
}

/** Istio `TranslateCORSPolicy` (unmatched preflights are forwarded, the Istio default). */
export function corsOf(c: ModelCors): Any {
  const p = create(CorsPolicySchema, {
    allowOriginStringMatch: c.allowOrigins.map((o) => stringMatcher(o)),
    allowMethods: c.allowMethods.join(','),
    allowHeaders: c.allowHeaders.join(','),
    exposeHeaders: c.exposeHeaders.join(','),
    filterEnabled: fullRuntimeFraction(),
    forwardNotMatchingPreflights: true,
  });
  if (c.maxAgeSeconds !== undefined) p.maxAge = String(c.maxAgeSeconds);
  if (c.allowCredentials !== undefined) p.allowCredentials = c.allowCredentials;
  return pack(CorsPolicySchema, p);
}

function isInternalHeader(name: string): boolean {
  return name.startsWith(':') || name.toLowerCase() === 'host';
}

function isAuthorityHeader(name: string): boolean {
  const l = name.toLowerCase();
  return l === ':authority' || l === 'host';
}

function headerValues(headers: Record<string, string>, append: boolean): { options: HeaderValueOption[]; authority?: string } {
  let authority: string | undefined;
  const keys = Object.keys(headers).sort();
  const options: HeaderValueOption[] = [];
  for (const key of keys) {
    const value = headers[key]!;
    if (isAuthorityHeader(key)) authority = value;
    if (isInternalHeader(key)) continue;
    options.push(
      create(HeaderValueOptionSchema, {
        header: create(HeaderValueSchema, { key, value }),
        appendAction: append ? HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD : HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD,
      }),
    );
  }
  return authority !== undefined ? { options, authority } : { options };
}

interface HeaderOperations {
  requestHeadersToAdd: HeaderValueOption[];
  requestHeadersToRemove: string[];
  responseHeadersToAdd: HeaderValueOption[];
  responseHeadersToRemove: string[];
  /** A `:authority`/`host` set (or added) on the request: becomes a host rewrite. */
  authority?: string;
}

/** Istio `TranslateHeadersOperations`: `set` entries (overwrite) then `add` entries (append), each sorted by name. */
export function headerOperations(h: { request: HeaderOps; response: HeaderOps }): HeaderOperations {
  const reqSet = headerValues(h.request.set, false);
  const reqAdd = headerValues(h.request.add, true);
  const respSet = headerValues(h.response.set, false);
  const respAdd = headerValues(h.response.add, true);
  const out: HeaderOperations = {
    requestHeadersToAdd: [...reqSet.options, ...reqAdd.options],
    requestHeadersToRemove: h.request.remove.filter((k) => !isInternalHeader(k)),
    responseHeadersToAdd: [...respSet.options, ...respAdd.options],
    responseHeadersToRemove: h.response.remove.filter((k) => !isInternalHeader(k)),
  };
  const authority = reqSet.authority ?? reqAdd.authority;
  if (authority !== undefined) out.authority = authority;
  return out;
}

function hasHeaderOps(h: { request: HeaderOps; response: HeaderOps } | undefined): boolean {
  if (!h) return false;
  return [h.request, h.response].some((o) => Object.keys(o.set).length > 0 || Object.keys(o.add).length > 0 || o.remove.length > 0);
}

/**
 * The consistent hash that applies to traffic for `host` (subset, port), Istio `hashForHTTPDestination`: the
 * subset's port-level setting, else the subset's, else the port-level, else the top-level one.
 */
export function consistentHashFor(policy: DestinationPolicy | undefined, subset: string | undefined, port: number | undefined): ConsistentHash | undefined {
  if (!policy) return undefined;
  const tp = policy.trafficPolicy;
  const atPort = (pls: Array<{ port: number; loadBalancer?: LoadBalancerSettings }> | undefined) =>
    port === undefined ? undefined : pls?.find((s) => s.port === port)?.loadBalancer?.consistentHash;
  const sub = subset !== undefined ? policy.subsets.find((s) => s.name === subset) : undefined;
  return atPort(sub?.trafficPolicy?.portLevelSettings) ?? sub?.trafficPolicy?.loadBalancer?.consistentHash ?? atPort(tp?.portLevelSettings) ?? tp?.loadBalancer?.consistentHash;
}

/** Istio `consistentHashToHashPolicy`. */
export function hashPolicyOf(h: ConsistentHash | undefined): RouteAction_HashPolicy | undefined {
  if (!h) return undefined;
  if (h.httpHeaderName !== undefined) {
    return create(RouteAction_HashPolicySchema, { policySpecifier: { case: 'header', value: create(RouteAction_HashPolicy_HeaderSchema, { headerName: h.httpHeaderName }) } });
  }
  if (h.httpCookie) {
    const cookie = create(RouteAction_HashPolicy_CookieSchema, { name: h.httpCookie.name, path: h.httpCookie.path ?? '' });
    if (h.httpCookie.ttlMs !== undefined) cookie.ttl = durationMs(h.httpCookie.ttlMs);
    return create(RouteAction_HashPolicySchema, { policySpecifier: { case: 'cookie', value: cookie } });
  }
  if (h.useSourceIp) {
    return create(RouteAction_HashPolicySchema, { policySpecifier: { case: 'connectionProperties', value: create(RouteAction_HashPolicy_ConnectionPropertiesSchema, { sourceIp: true }) } });
  }
  if (h.httpQueryParameterName !== undefined) {
    return create(RouteAction_HashPolicySchema, { policySpecifier: { case: 'queryParameter', value: create(RouteAction_HashPolicy_QueryParameterSchema, { name: h.httpQueryParameterName }) } });
  }
  return undefined;
}

/** Istio `setTimeout`. */
function setTimeout(action: RouteAction, timeoutMs: number, grpc: boolean): void {
  action.timeout = durationMs(timeoutMs);
  if (grpc) action.maxStreamDuration = create(RouteAction_MaxStreamDurationSchema, { maxStreamDuration: durationMs(timeoutMs) });
  else action.maxGrpcTimeout = durationMs(timeoutMs);
}

// ---------------------------------------------------------------------------------------------------------------
// Routes

/** The route for a service port without routing rules (Istio `BuildDefaultHTTPOutboundRoute`). */
export function defaultRoute(ctx: HttpRouteContext, svc: Service, port: number): Route {
  const cluster = outboundClusterName(port, undefined, svc.hostname);
  const action = create(RouteActionSchema, { clusterSpecifier: { case: 'cluster', value: cluster } });
  const retry = retryPolicyOf(ctx.mesh.defaultRetries, false);
  if (retry) action.retryPolicy = retry;
  setTimeout(action, 0, ctx.grpc);
  const hash = hashPolicyOf(consistentHashFor(ctx.destinationPolicy(svc.hostname), undefined, port));
  if (hash) action.hashPolicy = [hash];
  return create(RouteSchema, { name: DEFAULT_ROUTE_NAME, match: routeMatchOf(undefined), action: { case: 'route', value: action } });
}

/** `outbound|port|subset|host` for a destination routed on `listenerPort` (Istio `GetDestinationCluster`). */
export function destinationCluster(ctx: HttpRouteContext, d: { host: string; subset?: string; port?: number }, listenerPort: number): string {
  let port = d.port;
  if (port === undefined) {
    const svc = ctx.service(d.host);
    port = svc && svc.ports.length === 1 ? svc.ports[0]!.port : listenerPort;
  }
  return outboundClusterName(port, d.subset, d.host);
}

function destinationPort(ctx: HttpRouteContext, d: Destination, listenerPort: number): number {
  if (d.port !== undefined) return d.port;
  const svc = ctx.service(d.host);
  return svc && svc.ports.length === 1 ? svc.ports[0]!.port : listenerPort;
}

function redirectOf(rd: Redirect, port: number): Route['action'] {
  const code = REDIRECT_CODES[rd.statusCode];
  if (code === undefined) throw new RouteError(`redirect status ${rd.statusCode} is not supported by Envoy (use 301, 302, 303, 307 or 308)`);
  const out = create(RedirectActionSchema, { hostRedirect: rd.host ?? '', responseCode: code });
  if (rd.path !== undefined) out.pathRewriteSpecifier = { case: 'pathRedirect', value: rd.path };
  else if (rd.prefixRewrite !== undefined) out.pathRewriteSpecifier = { case: 'prefixRewrite', value: rd.prefixRewrite };
  if (rd.scheme) out.schemeRewriteSpecifier = { case: 'schemeRedirect', value: rd.scheme };
  if (rd.port !== undefined || rd.derivePort !== undefined) {
    // FROM_REQUEST_PORT: Envoy cannot derive the port, but routes are generated per destination port, so that
    // port is the request's. FROM_PROTOCOL_DEFAULT is Envoy's own behaviour (no port).
    if (rd.port !== undefined) out.portRedirect = rd.port;
    else if (rd.derivePort === 'FROM_REQUEST_PORT') out.portRedirect = port;
    const scheme = rd.scheme || 'http';
    if ((out.portRedirect === 80 && scheme === 'http') || (out.portRedirect === 443 && scheme === 'https')) out.portRedirect = 0;
  }
  return { case: 'redirect', value: out };
}

function directOf(status: number, body: string | undefined): Route['action'] {
  const d = create(DirectResponseActionSchema, { status });
  if (body !== undefined) d.body = create(DataSourceSchema, { specifier: { case: 'inlineString', value: body } });
  return { case: 'directResponse', value: d };
}

/** The result of translating one model route. */
export interface TranslatedRoute {
  routes: Route[];
  /** A catch-all route was produced: later model routes can never match. */
  catchAll: boolean;
}

/**
 * Envoy routes for one model route on destination port `port` of a virtual host whose own cluster is
 * `hostCluster`. Throws RouteError when the route cannot be expressed.
 */
export function translateHttpRoute(ctx: HttpRouteContext, r: HttpRoute, port: number, hostCluster: string): TranslatedRoute {
  const out: Route[] = [];
  if (r.matches.length === 0) {
    out.push(translateOne(ctx, r, undefined, port, hostCluster));
    return { routes: out, catchAll: true };
  }
  for (const m of r.matches) {
    if (!matchAppliesToPort(m, port) || !matchAppliesToClient(m, ctx.client)) continue;
    const route = translateOne(ctx, r, m, port, hostCluster);
    out.push(route);
    if (isCatchAll(route)) return { routes: out, catchAll: true };
  }
  return { routes: out, catchAll: false };
}

function translateOne(ctx: HttpRouteContext, r: HttpRoute, m: ModelMatch | undefined, port: number, hostCluster: string): Route {
  const name = m?.name ? `${r.name ?? ''}.${m.name}` : (r.name ?? '');
  const route = create(RouteSchema, { name, match: routeMatchOf(m) });
  const ops = headerOperations(r.headers);
  route.requestHeadersToAdd = ops.requestHeadersToAdd;
  route.requestHeadersToRemove = ops.requestHeadersToRemove;
  route.responseHeadersToAdd = ops.responseHeadersToAdd;
  route.responseHeadersToRemove = ops.responseHeadersToRemove;
  let fault = r.fault ? faultOf(r.fault) : undefined;

  const a = r.action;
  if (a.kind === 'redirect') {
    if (ctx.grpc) throw new RouteError('gRPC clients cannot follow HTTP redirects (a proxyless gRPC client would reject the whole route configuration): the route is left out');
    route.action = redirectOf(a.redirect, port);
  } else if (a.kind === 'direct' && !ctx.grpc) {
    route.action = directOf(a.status, a.body);
  } else if (a.kind === 'direct') {
    // Proxyless gRPC: answer every request with the status, through the fault filter.
    const action = create(RouteActionSchema, { clusterSpecifier: { case: 'cluster', value: hostCluster } });
    setTimeout(action, r.timeoutMs ?? ctx.mesh.defaultTimeoutMs, true);
    route.action = { case: 'route', value: action };
    fault = create(HTTPFaultSchema, {
      ...(fault?.delay ? { delay: fault.delay } : {}),
      abort: create(FaultAbortSchema, { percentage: fractionalPercent(100), errorType: { case: 'httpStatus', value: a.status } }),
    });
  } else {
    route.action = { case: 'route', value: routeActionOf(ctx, r, a.destinations, port, ops, route) };
  }

  if (fault) route.typedPerFilterConfig[FAULT_FILTER] = pack(HTTPFaultSchema, fault);
  if (r.cors && !ctx.grpc) route.typedPerFilterConfig[CORS_FILTER] = corsOf(r.cors);
  return route;
}

function routeActionOf(ctx: HttpRouteContext, r: HttpRoute, destinations: Destination[], port: number, ops: HeaderOperations, route: Route): RouteAction {
  const action = create(RouteActionSchema);
  setTimeout(action, r.timeoutMs ?? ctx.mesh.defaultTimeoutMs, ctx.grpc);
  // Gateway API: requests for a backend that does not exist get 500 (Istio does this for gateway-semantics routes).
  if (r.origin.family === 'gateway-api') action.clusterNotFoundResponseCode = RouteAction_ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR;
  let authority = ops.authority;
  const rw = r.rewrite;
  if (rw) {
    if (rw.regex) {
      action.regexRewrite = create(RegexMatchAndSubstituteSchema, { pattern: create(RegexMatcherSchema, { regex: rw.regex.pattern }), substitution: rw.regex.substitution });
    } else if (rw.fullPath !== undefined) {
      // Envoy has no literal path replacement; a regex over the whole path (query excluded) is what Istio uses.
      action.regexRewrite = create(RegexMatchAndSubstituteSchema, { pattern: create(RegexMatcherSchema, { regex: '^.*$' }), substitution: rw.fullPath });
    } else if (rw.prefix !== undefined) {
      action.prefixRewrite = rw.prefix;
    }
    if (rw.authority) authority = rw.authority;
  }
  if (authority !== undefined && authority !== '') action.hostRewriteSpecifier = { case: 'hostRewriteLiteral', value: authority };

  for (const mirror of r.mirrors) {
    if (mirror.percent <= 0) continue;
    action.requestMirrorPolicies.push(
      create(RouteAction_RequestMirrorPolicySchema, { cluster: destinationCluster(ctx, mirror, port), runtimeFraction: runtimeFraction(mirror.percent), traceSampled: false }),
    );
  }

  let consistentHash = false;
  if (destinations.length === 1) {
    const d = destinations[0]!;
    action.clusterSpecifier = { case: 'cluster', value: destinationCluster(ctx, d, port) };
    if (hasHeaderOps(d.headers)) {
      const dops = headerOperations(d.headers!);
      route.requestHeadersToAdd.push(...dops.requestHeadersToAdd);
      route.requestHeadersToRemove.push(...dops.requestHeadersToRemove);
      route.responseHeadersToAdd.push(...dops.responseHeadersToAdd);
      route.responseHeadersToRemove.push(...dops.responseHeadersToRemove);
      if (dops.authority && action.hostRewriteSpecifier.case === undefined) action.hostRewriteSpecifier = { case: 'hostRewriteLiteral', value: dops.authority };
    }
    const hash = hashPolicyOf(consistentHashFor(ctx.destinationPolicy(d.host), d.subset, destinationPort(ctx, d, port)));
    if (hash) {
      action.hashPolicy.push(hash);
      consistentHash = true;
    }
  } else {
    const clusters: WeightedCluster_ClusterWeight[] = [];
    for (const d of destinations) {
      if (d.weight === 0) continue;
      const cw = create(WeightedCluster_ClusterWeightSchema, { name: destinationCluster(ctx, d, port), weight: d.weight });
      if (hasHeaderOps(d.headers)) {
        const dops = headerOperations(d.headers!);
        cw.requestHeadersToAdd = dops.requestHeadersToAdd;
        cw.requestHeadersToRemove = dops.requestHeadersToRemove;
        cw.responseHeadersToAdd = dops.responseHeadersToAdd;
        cw.responseHeadersToRemove = dops.responseHeadersToRemove;
        if (dops.authority) cw.hostRewriteSpecifier = { case: 'hostRewriteLiteral', value: dops.authority };
      }
      clusters.push(cw);
      const hash = hashPolicyOf(consistentHashFor(ctx.destinationPolicy(d.host), d.subset, destinationPort(ctx, d, port)));
      if (hash) action.hashPolicy.push(hash);
    }
    if (!clusters.length) throw new RouteError('every destination has weight 0: no cluster can receive traffic, so the route is left out');
    action.clusterSpecifier = { case: 'weightedClusters', value: create(WeightedClusterSchema, { clusters }) };
  }
  const retry = retryPolicyOf(r.retries ?? ctx.mesh.defaultRetries, consistentHash);
  if (retry) action.retryPolicy = retry;
  return action;
}
