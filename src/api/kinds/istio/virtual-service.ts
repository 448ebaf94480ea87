/**
 * networking.istio.io VirtualService: schema (istio/api networking/v1alpha3/virtual_service.proto, the CRD's
 * oneof rules, and the errors of istio/istio pkg/config/validation ValidateVirtualService) and translation into
 * a RouteTable of the model.
 */
import { Buffer } from 'node:buffer';
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type {
  CorsPolicy,
  Destination,
  FaultPolicy,
  HeaderMatch,
  HeaderOps,
  HttpRoute,
  L4Match,
  MirrorPolicy,
  QueryParamMatch,
  Redirect,
  RetryPolicy,
  Rewrite,
  RouteAction,
  RouteMatch,
  RouteTable,
  StringMatch,
} from '../../model.js';
import { emptyHeaderOps } from '../../model.js';
import { port } from '../../schema/common.js';
import type { JsonPath } from '../../source.js';
import { reduceWeightsOf } from '../weights.js';
import {
  NETWORKING_GROUP,
  NETWORKING_VERSIONS,
  checkExportTo,
  checkGatewayNames,
  checkHeaderOperations,
  checkPercentage,
  checkStringMatch,
  corsHeaderNameError,
  exportToOf,
  headersSchema,
  hostSubsetOf,
  hostsOverlap,
  int32,
  ipSubnetError,
  isAuthorityHeader,
  isDns1123Label,
  isIpAddress,
  isJwtClaimHeader,
  issuer,
  istioDuration,
  k8sLabels,
  matchHeaderNameError,
  ms,
  percentMessage,
  regexError,
  resolveGatewayName,
  stringMatchSchema,
  uint32,
  wildcardDomainError,
  wrapper,
} from './common.js';
import type { HeadersSpec, Issue, StringMatchSpec } from './common.js';

// ---------------------------------------------------------------------------------------------------------------
// Schema

const portSelector = () => z.strictObject({ number: port() });

export const destinationSchema = () =>
  z.strictObject({
    host: z.string(),
    subset: z.string().optional(),
    port: portSelector().optional(),
  });
export type DestinationSpec = z.output<ReturnType<typeof destinationSchema>>;

/** Route weights: int32, never negative (Istio `validateWeight`); they need not add up to 100. */
const weight = () => z.number().int('weight must be an integer').min(0, 'weight must not be negative').max(2147483647);

const httpMatchRequest = z.strictObject({
  name: z.string().optional(),
  uri: stringMatchSchema().optional(),
  scheme: stringMatchSchema().optional(),
  method: stringMatchSchema().optional(),
  authority: stringMatchSchema().optional(),
  headers: z.record(z.string(), stringMatchSchema()).optional(),
  port: port().optional(),
  sourceLabels: k8sLabels().optional(),
  gateways: z.array(z.string()).optional(),
  queryParams: z.record(z.string(), stringMatchSchema()).optional(),
  ignoreUriCase: z.boolean().optional(),
  withoutHeaders: z.record(z.string(), stringMatchSchema()).optional(),
  sourceNamespace: z.string().optional(),
  statPrefix: z.string().optional(),
});
export type HttpMatchSpec = z.output<typeof httpMatchRequest>;

const httpRouteDestination = z.strictObject({
  destination: destinationSchema(),
  weight: weight().optional(),
  headers: headersSchema().optional(),
});

const routeDestination = z.strictObject({
  destination: destinationSchema(),
  weight: weight().optional(),
});

const httpRedirect = z
  .strictObject({
    uri: z.string().optional(),
    authority: z.string().optional(),
    port: port().optional(),
    derivePort: z.enum(['FROM_PROTOCOL_DEFAULT', 'FROM_REQUEST_PORT']).optional(),
    scheme: z.string().optional(),
    redirectCode: uint32().optional(),
  })
  .superRefine((r, ctx) => {
    if (r.port !== undefined && r.derivePort !== undefined) issuer(ctx)(['derivePort'], 'only one of port or derivePort may be set');
  });

const httpDirectResponse = z.strictObject({
  status: uint32(),
  body: z
    .strictObject({ string: z.string().optional(), bytes: z.base64('bytes must be base64-encoded').optional() })
    .superRefine((b, ctx) => {
      if (b.string !== undefined && b.bytes !== undefined) issuer(ctx)(['bytes'], 'only one of string or bytes may be set');
    })
    .optional(),
});

const delegateSchema = z.strictObject({ name: z.string().optional(), namespace: z.string().optional() });

const httpRewrite = z.strictObject({
  uri: z.string().optional(),
  authority: z.string().optional(),
  uriRegexRewrite: z.strictObject({ match: z.string().optional(), rewrite: z.string().optional() }).optional(),
});

const httpRetry = z.strictObject({
  attempts: int32().optional(),
  perTryTimeout: istioDuration().optional(),
  retryOn: z.string().optional(),
  retryRemoteLocalities: wrapper(z.boolean()),
  retryIgnorePreviousHosts: wrapper(z.boolean()),
  backoff: istioDuration().optional(),
});

const httpFaultInjection = z.strictObject({
  delay: z
    .strictObject({
      fixedDelay: istioDuration().optional(),
      exponentialDelay: istioDuration().optional(),
      percentage: percentMessage().optional(),
      /** Deprecated integer percentage (0-100). */
      percent: z.number().int('percent must be an integer').min(0, 'percentage must be 0-100').max(100, 'percentage must be 0-100').optional(),
    })
    .superRefine((d, ctx) => {
      if (d.fixedDelay !== undefined && d.exponentialDelay !== undefined) issuer(ctx)(['exponentialDelay'], 'only one of fixedDelay or exponentialDelay may be set');
    })
    .optional(),
  abort: z
    .strictObject({
      httpStatus: int32().optional(),
      grpcStatus: z.string().optional(),
      http2Error: z.string().optional(),
      percentage: percentMessage().optional(),
    })
    .superRefine((a, ctx) => {
      const set = (['httpStatus', 'grpcStatus', 'http2Error'] as const).filter((k) => a[k] !== undefined);
      if (set.length > 1) issuer(ctx)([set[1]!], `only one of httpStatus, grpcStatus or http2Error may be set (found ${set.join(' and ')})`);
    })
    .optional(),
});

const httpMirrorPolicy = z.strictObject({ destination: destinationSchema(), percentage: percentMessage().optional() });

const corsPolicy = z.strictObject({
  /** Deprecated: exact origins; use allowOrigins. */
  allowOrigin: z.array(z.string()).optional(),
  allowOrigins: z.array(stringMatchSchema()).optional(),
  allowMethods: z.array(z.string()).optional(),
  allowHeaders: z.array(z.string()).optional(),
  exposeHeaders: z.array(z.string()).optional(),
  maxAge: istioDuration().optional(),
  allowCredentials: wrapper(z.boolean()),
  unmatchedPreflights: z.enum(['UNSPECIFIED', 'FORWARD', 'IGNORE']).optional(),
});

const httpRoute = z.strictObject({
  name: z.string().optional(),
  match: z.array(httpMatchRequest).optional(),
  route: z.array(httpRouteDestination).optional(),
  redirect: httpRedirect.optional(),
  directResponse: httpDirectResponse.optional(),
  delegate: delegateSchema.optional(),
  rewrite: httpRewrite.optional(),
  timeout: istioDuration().optional(),
  retries: httpRetry.optional(),
  fault: httpFaultInjection.optional(),
  mirror: destinationSchema().optional(),
  mirrors: z.array(httpMirrorPolicy).optional(),
  /** Deprecated (proto JSON name `mirror_percent`; the CRD also lists `mirrorPercent`). */
  mirrorPercent: wrapper(uint32()),
  mirror_percent: wrapper(uint32()),
  mirrorPercentage: percentMessage().optional(),
  corsPolicy: corsPolicy.optional(),
  headers: headersSchema().optional(),
});
export type HttpRouteSpec = z.output<typeof httpRoute>;

const l4Match = z.strictObject({
  destinationSubnets: z.array(z.string()).optional(),
  port: port().optional(),
  sourceLabels: k8sLabels().optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
  /** Deprecated and ignored by Istio. */
  sourceSubnet: z.string().optional(),
});

const tlsMatch = z.strictObject({
  sniHosts: z.array(z.string()),
  destinationSubnets: z.array(z.string()).optional(),
  port: port().optional(),
  sourceLabels: k8sLabels().optional(),
  gateways: z.array(z.string()).optional(),
  sourceNamespace: z.string().optional(),
});

const tcpRoute = z.strictObject({ match: z.array(l4Match).optional(), route: z.array(routeDestination).optional() });
const tlsRoute = z.strictObject({ match: z.array(tlsMatch), route: z.array(routeDestination).optional() });

const virtualServiceBase = z.strictObject({
  hosts: z.array(z.string()).optional(),
  gateways: z.array(z.string()).optional(),
  http: z.array(httpRoute).optional(),
  tls: z.array(tlsRoute).optional(),
  tcp: z.array(tcpRoute).optional(),
  exportTo: z.array(z.string()).optional(),
});
export type VirtualServiceSpec = z.output<typeof virtualServiceBase>;
export const virtualServiceSpec = virtualServiceBase.superRefine((vs, ctx) => validateVirtualService(vs, issuer(ctx)));

// ---------------------------------------------------------------------------------------------------------------
// Cross-field validation (istio/istio pkg/config/validation: ValidateVirtualService and helpers)

/** Retry conditions Envoy understands (x-envoy-retry-on and x-envoy-retry-grpc-on), as Istio's validation lists them. */
const RETRY_ON = new Set([
  '5xx', 'gateway-error', 'reset', 'reset-before-request', 'connect-failure', 'retriable-4xx', 'refused-stream',
  'retriable-status-codes', 'retriable-headers', 'envoy-ratelimited', 'http3-post-connect-failure',
  'cancelled', 'deadline-exceeded', 'internal', 'resource-exhausted', 'unavailable',
]);

/** HTTP status codes that have a standard reason phrase (Go `http.StatusText`), which Istio accepts in retryOn. */
const HTTP_STATUS_CODES = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308,
  400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423,
  424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

/** gRPC status names Istio accepts for fault aborts. */
const GRPC_STATUS = new Set([
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED',
  'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
]);

const CORS_METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', '*']);

function checkDestination(d: DestinationSpec | undefined, at: JsonPath, issue: Issue): void {
  if (!d) return;
  if (d.host === '*') issue([...at, 'host'], `invalid destination host ${d.host}`);
  else {
    const err = wildcardDomainError(d.host);
    if (err) issue([...at, 'host'], err);
  }
  if (d.subset !== undefined) {
    if (d.subset === '') issue([...at, 'subset'], 'subset name cannot be empty');
    else if (!isDns1123Label(d.subset)) issue([...at, 'subset'], `subset name is invalid: ${d.subset}`);
  }
}

function checkRouteWeights(route: ReadonlyArray<{ weight?: number | undefined }> | undefined, at: JsonPath, issue: Issue): void {
  if (!route || route.length < 2) return;
  if (route.reduce((s, r) => s + (r.weight ?? 0), 0) === 0) issue(at, 'total destination weight = 0 (with more than one destination, give at least one a weight)');
}

function checkMatch(m: HttpMatchSpec, at: JsonPath, issue: Issue, appliesToGateway: boolean, gateways: readonly string[]): void {
  for (const [name, h] of Object.entries(m.headers ?? {})) {
    const err = matchHeaderNameError(name);
    if (err) issue([...at, 'headers', name], err);
    if (isJwtClaimHeader(name) && !appliesToGateway) issue([...at, 'headers', name], `JWT claim based routing (key: ${name}) is only supported for gateway, found no gateways: [${gateways.join(' ')}]`);
    checkStringMatch(h, 'headers', [...at, 'headers', name], issue);
  }
  for (const [name, h] of Object.entries(m.withoutHeaders ?? {})) {
    const err = matchHeaderNameError(name);
    if (err) issue([...at, 'withoutHeaders', name], err);
    if (isJwtClaimHeader(name) && !appliesToGateway) issue([...at, 'withoutHeaders', name], `JWT claim based routing (key: ${name}) is only supported for gateway, found no gateways: [${gateways.join(' ')}]`);
    checkStringMatch(h, 'withoutHeaders', [...at, 'withoutHeaders', name], issue, { allowStar: true });
  }
  checkStringMatch(m.uri, 'uri', [...at, 'uri'], issue, { allowEmptyPrefix: true });
  checkStringMatch(m.scheme, 'scheme', [...at, 'scheme'], issue);
  checkStringMatch(m.method, 'method', [...at, 'method'], issue);
  checkStringMatch(m.authority, 'authority', [...at, 'authority'], issue);
  for (const [name, q] of Object.entries(m.queryParams ?? {})) checkStringMatch(q, 'queryParams', [...at, 'queryParams', name], issue);
  checkGatewayNames(m.gateways, [...at, 'gateways'], issue);
  if (m.sourceNamespace && !isDns1123Label(m.sourceNamespace)) issue([...at, 'sourceNamespace'], `sourceNamespace match ${m.sourceNamespace} is invalid`);
}

function checkHttpRoute(r: HttpRouteSpec, at: JsonPath, issue: Issue, isDelegateVs: boolean, appliesToGateway: boolean, gateways: readonly string[]): void {
  const isRoot = !isDelegateVs && r.delegate !== undefined;
  const routes = r.route ?? [];
  if (isRoot) {
    const which = r.name ? `root HTTP route ${r.name}` : 'a root HTTP route (with delegate)';
    if (r.redirect) issue([...at, 'redirect'], `${which} must not specify redirect`);
    if (r.route) issue([...at, 'route'], `${which} must not specify route`);
  } else {
    if (isDelegateVs && r.delegate) issue([...at, 'delegate'], 'delegate HTTP route cannot contain delegate');
    if (r.redirect) {
      if (routes.length) issue([...at, 'redirect'], 'HTTP route cannot contain both route and redirect');
      if (r.fault) issue([...at, 'fault'], 'HTTP route cannot contain both fault and redirect');
      if (r.rewrite) issue([...at, 'rewrite'], 'HTTP route rule cannot contain both rewrite and redirect');
      if (r.directResponse) issue([...at, 'directResponse'], 'HTTP route rule cannot contain both direct_response and redirect');
    } else if (r.directResponse) {
      if (routes.length) issue([...at, 'directResponse'], 'HTTP route cannot contain both route and direct_response');
      if (r.fault) issue([...at, 'fault'], 'HTTP route cannot contain both fault and direct_response');
      if (r.rewrite) issue([...at, 'rewrite'], 'HTTP route rule cannot contain both rewrite and direct_response');
    } else if (routes.length === 0) {
      issue(at, 'HTTP route, redirect or direct_response is required');
    }
  }
  if (r.mirror && r.mirrors && r.mirrors.length) issue([...at, 'mirrors'], 'HTTP route cannot contain both mirror and mirrors');
  (r.match ?? []).forEach((m, i) => checkMatch(m, [...at, 'match', i], issue, appliesToGateway, gateways));
  checkHeaderOperations(r.headers, [...at, 'headers'], issue);

  if (r.corsPolicy) {
    const c = r.corsPolicy;
    (c.allowOrigins ?? []).forEach((o, i) => {
      const value = o.exact ?? o.prefix ?? o.regex ?? '';
      if (value === '') issue([...at, 'corsPolicy', 'allowOrigins', i], `'${value}' is not a valid match type for CORS allow origins`);
      else checkStringMatch(o, 'corsPolicy.allowOrigins', [...at, 'corsPolicy', 'allowOrigins', i], issue);
    });
    (c.allowMethods ?? []).forEach((m, i) => {
      if (!CORS_METHODS.has(m)) issue([...at, 'corsPolicy', 'allowMethods', i], `"${m}" is not a supported HTTP method`);
    });
    for (const f of ['allowHeaders', 'exposeHeaders'] as const) {
      (c[f] ?? []).forEach((h, i) => {
        const err = corsHeaderNameError(h);
        if (err) issue([...at, 'corsPolicy', f, i], err);
      });
    }
    if (c.maxAge !== undefined && ms(c.maxAge) % 1000 !== 0) issue([...at, 'corsPolicy', 'maxAge'], 'max_age duration is accurate only to seconds precision');
  }

  if (r.fault) {
    const f = r.fault;
    if (!f.abort && !f.delay) issue([...at, 'fault'], 'HTTP fault injection must have an abort and/or a delay');
    if (f.abort) {
      checkPercentage(f.abort.percentage?.value, [...at, 'fault', 'abort', 'percentage', 'value'], issue);
      if (f.abort.grpcStatus !== undefined && !GRPC_STATUS.has(f.abort.grpcStatus)) {
        issue([...at, 'fault', 'abort', 'grpcStatus'], `gRPC status "${f.abort.grpcStatus}" is not supported; use a code name such as NOT_FOUND or UNAVAILABLE`);
      }
      if (f.abort.http2Error !== undefined) issue([...at, 'fault', 'abort', 'http2Error'], 'HTTP/2 abort fault injection not supported yet');
      if (f.abort.httpStatus !== undefined && (f.abort.httpStatus < 200 || f.abort.httpStatus > 600)) {
        issue([...at, 'fault', 'abort', 'httpStatus'], `HTTP status ${f.abort.httpStatus} is not in range 200-599`);
      }
    }
    if (f.delay) {
      checkPercentage(f.delay.percentage?.value, [...at, 'fault', 'delay', 'percentage', 'value'], issue);
      if (f.delay.exponentialDelay !== undefined) issue([...at, 'fault', 'delay', 'exponentialDelay'], 'exponentialDelay not supported yet');
    }
  }

  for (const key of ['mirrorPercent', 'mirror_percent'] as const) {
    const v = r[key];
    if (v !== undefined && v > 100) issue([...at, key], `mirror_percent must have a max value of 100 (it has ${v})`);
  }
  if (r.mirrorPercentage) {
    const v = r.mirrorPercentage.value ?? 0;
    if (v > 100) issue([...at, 'mirrorPercentage', 'value'], `mirror_percentage must have a max value of 100 (it has ${v})`);
    if (v < 0) issue([...at, 'mirrorPercentage', 'value'], `mirror_percentage must have a min value of 0 (it has ${v})`);
  }
  checkDestination(r.mirror, [...at, 'mirror'], issue);
  (r.mirrors ?? []).forEach((m, i) => {
    checkDestination(m.destination, [...at, 'mirrors', i, 'destination'], issue);
    const v = m.percentage?.value ?? 0;
    if (v > 100) issue([...at, 'mirrors', i, 'percentage', 'value'], `mirror percentage must have a max value of 100 (it has ${v})`);
    if (v < 0) issue([...at, 'mirrors', i, 'percentage', 'value'], `mirror percentage must have a min value of 0 (it has ${v})`);
  });

  if (r.redirect) {
    const rd = r.redirect;
    if (!rd.uri && !rd.authority && rd.port === undefined && rd.derivePort === undefined && !rd.scheme) issue([...at, 'redirect'], 'redirect must specify URI, authority, scheme, or port');
    else if (rd.redirectCode !== undefined && rd.redirectCode !== 0 && (rd.redirectCode < 300 || rd.redirectCode > 399)) issue([...at, 'redirect', 'redirectCode'], `${rd.redirectCode} is not a valid redirect code, must be 3xx`);
    else if (rd.scheme && rd.scheme !== 'http' && rd.scheme !== 'https') issue([...at, 'redirect', 'scheme'], 'invalid redirect scheme, must be "http" or "https"');
  }
  if (r.directResponse) {
    const d = r.directResponse;
    const size = d.body?.string !== undefined ? Buffer.byteLength(d.body.string) : d.body?.bytes !== undefined ? Buffer.from(d.body.bytes, 'base64').length : 0;
    if (size > 1024 * 1024) issue([...at, 'directResponse', 'body'], 'large direct_responses may impact control plane performance, must be less than 1MB');
    if (d.status < 200 || d.status > 600) issue([...at, 'directResponse', 'status'], `HTTP status ${d.status} is not in range 200-599`);
  }
  if (r.retries) {
    const rt = r.retries;
    const attempts = rt.attempts ?? 0;
    if (attempts < 0) issue([...at, 'retries', 'attempts'], 'attempts cannot be negative');
    if (attempts === 0 && (rt.perTryTimeout !== undefined || (rt.retryOn ?? '') !== '' || rt.retryRemoteLocalities !== undefined)) {
      issue([...at, 'retries'], 'http retry policy configured when attempts are set to 0 (disabled)');
    }
    if (rt.retryOn) {
      for (const policy of rt.retryOn.split(',')) {
        const code = /^[+-]?\d+$/.test(policy) ? Number(policy) : NaN;
        if (!HTTP_STATUS_CODES.has(code) && !RETRY_ON.has(policy)) issue([...at, 'retries', 'retryOn'], `"${policy}" is not a valid retryOn policy`);
      }
    }
  }
  if (r.rewrite) {
    const rw = r.rewrite;
    if (rw.uri && rw.uriRegexRewrite) issue([...at, 'rewrite'], 'rewrite may only contain one of URI or UriRegexRewrite');
    else if (!rw.uri && !rw.uriRegexRewrite && !rw.authority) issue([...at, 'rewrite'], 'rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified');
    else if (rw.uriRegexRewrite) {
      const rr = rw.uriRegexRewrite;
      if (!rr.match || !rr.rewrite) issue([...at, 'rewrite', 'uriRegexRewrite'], 'UriRegexRewrite requires both Rewrite and Match fields to be specified');
      else {
        const err = regexError(rr.match, 'HTTPRewrite.UriRegexRewrite.Match');
        if (err) issue([...at, 'rewrite', 'uriRegexRewrite', 'match'], err);
      }
    }
  }
  // Authority may be rewritten in one place only.
  let authority = r.rewrite?.authority ?? '';
  for (const op of ['set', 'add'] as const) {
    for (const [k, v] of Object.entries(r.headers?.request?.[op] ?? {})) {
      if (!isAuthorityHeader(k)) continue;
      if (authority !== '') issue([...at, 'headers', 'request', op, k], `authority header cannot be set multiple times: have "${authority}", attempting to set "${v}"`);
      authority = v;
    }
  }
  routes.forEach((d, i) => {
    checkHeaderOperations(d.headers, [...at, 'route', i, 'headers'], issue);
    checkDestination(d.destination, [...at, 'route', i, 'destination'], issue);
  });
  checkRouteWeights(routes, [...at, 'route'], issue);
}

function checkL4Match(m: { destinationSubnets?: string[] | undefined; gateways?: string[] | undefined }, at: JsonPath, issue: Issue): void {
  (m.destinationSubnets ?? []).forEach((s, i) => {
    const err = ipSubnetError(s);
    if (err) issue([...at, 'destinationSubnets', i], err);
  });
  checkGatewayNames(m.gateways, [...at, 'gateways'], issue);
}

function validateVirtualService(vs: VirtualServiceSpec, issue: Issue): void {
  const hosts = vs.hosts ?? [];
  const gateways = vs.gateways ?? [];
  const isDelegate = hosts.length === 0;
  if (isDelegate) {
    if (gateways.length) issue(['gateways'], 'delegate virtual service must have no gateways specified');
    if ((vs.tls ?? []).length) issue(['tls'], 'delegate virtual service must have no tls route specified');
    if ((vs.tcp ?? []).length) issue(['tcp'], 'delegate virtual service must have no tcp route specified');
  }
  checkGatewayNames(gateways, ['gateways'], issue);
  const appliesToGateway = gateways.length > 0 && !gateways.includes('mesh');
  const appliesToMesh = !appliesToGateway;
  let allValid = true;
  hosts.forEach((h, i) => {
    const err = wildcardDomainError(h);
    if (err) {
      if (!isIpAddress(h)) {
        issue(['hosts', i], err);
        allValid = false;
      }
    } else if (appliesToMesh && h === '*') {
      issue(['hosts', i], 'wildcard host * is not allowed for virtual services bound to the mesh gateway');
      allValid = false;
    }
  });
  if (allValid) {
    for (let i = 0; i < hosts.length; i++) {
      for (let j = i + 1; j < hosts.length; j++) {
        if (hostsOverlap(hosts[i]!, hosts[j]!)) issue(['hosts', j], `duplicate hosts in virtual service: ${hosts[i]} & ${hosts[j]}`);
      }
    }
  }
  if (!(vs.http ?? []).length && !(vs.tcp ?? []).length && !(vs.tls ?? []).length) issue([], 'http, tcp or tls must be provided in virtual service');
  (vs.http ?? []).forEach((r, i) => checkHttpRoute(r, ['http', i], issue, isDelegate, appliesToGateway, gateways));
  (vs.tls ?? []).forEach((t, i) => {
    const at: JsonPath = ['tls', i];
    if (t.match.length === 0) issue([...at, 'match'], 'TLS route must have at least one match condition');
    t.match.forEach((m, j) => {
      if (m.sniHosts.length === 0) issue([...at, 'match', j, 'sniHosts'], 'TLS match must have at least one SNI host');
      m.sniHosts.forEach((sniHost, k) => {
        const err = wildcardDomainError(sniHost);
        if (err) {
          if (!isIpAddress(sniHost)) issue([...at, 'match', j, 'sniHosts', k], err);
        } else if (!hosts.some((h) => hostSubsetOf(sniHost, h))) {
          issue([...at, 'match', j, 'sniHosts', k], `SNI host "${sniHost}" is not a compatible subset of any of the virtual service hosts: [${hosts.join(', ')}]`);
        }
      });
      checkL4Match(m, [...at, 'match', j], issue);
    });
    if (!(t.route ?? []).length) issue(at, 'TLS route is required');
    (t.route ?? []).forEach((d, j) => checkDestination(d.destination, [...at, 'route', j, 'destination'], issue));
    checkRouteWeights(t.route, [...at, 'route'], issue);
  });
  (vs.tcp ?? []).forEach((t, i) => {
    const at: JsonPath = ['tcp', i];
    (t.match ?? []).forEach((m, j) => checkL4Match(m, [...at, 'match', j], issue));
    if (!(t.route ?? []).length) issue(at, 'TCP route is required');
    (t.route ?? []).forEach((d, j) => checkDestination(d.destination, [...at, 'route', j, 'destination'], issue));
    checkRouteWeights(t.route, [...at, 'route'], issue);
  });
  checkExportTo(vs.exportTo, undefined, false, issue);
}

// ---------------------------------------------------------------------------------------------------------------
// Translation

/** Istio's default route retry conditions, used when a policy sets attempts but no retryOn (see defaults.ts). */
const DEFAULT_RETRY_ON = ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'];

function toStringMatch(m: StringMatchSpec): StringMatch | undefined {
  if (m.exact !== undefined) return { exact: m.exact };
  if (m.prefix !== undefined) return { prefix: m.prefix };
  if (m.regex !== undefined) return { regex: m.regex };
  return undefined;
}

function toHeaderMatch(name: string, m: StringMatchSpec, invert: boolean): HeaderMatch {
  const sm = m.regex === '*' ? undefined : toStringMatch(m);
  const out: HeaderMatch = sm ? { name, match: sm } : { name, present: true };
  if (invert) out.invert = true;
  return out;
}

function toRouteMatch(m: HttpMatchSpec, namespace: string): RouteMatch {
  const out: RouteMatch = {
    headers: [
      ...Object.entries(m.headers ?? {}).map(([n, h]) => toHeaderMatch(n, h, false)),
      ...Object.entries(m.withoutHeaders ?? {}).map(([n, h]) => toHeaderMatch(n, h, true)),
    ],
    queryParams: Object.entries(m.queryParams ?? {}).map(([name, q]): QueryParamMatch => {
      const sm = toStringMatch(q);
      return sm ? { name, match: sm } : { name, present: true };
    }),
    gateways: (m.gateways ?? []).map((g) => resolveGatewayName(g, namespace)),
  };
  if (m.name) out.name = m.name;
  const path = m.uri && toStringMatch(m.uri);
  if (path) out.path = path;
  if (m.ignoreUriCase) out.ignoreCase = true;
  for (const k of ['method', 'authority', 'scheme'] as const) {
    const sm = m[k] && toStringMatch(m[k]);
    if (sm) out[k] = sm;
  }
  if (m.port !== undefined) out.port = m.port;
  if (m.sourceLabels && Object.keys(m.sourceLabels).length) out.sourceLabels = { ...m.sourceLabels };
  if (m.sourceNamespace) out.sourceNamespace = m.sourceNamespace;
  return out;
}

function toHeaderOps(h: HeadersSpec | undefined, side: 'request' | 'response'): HeaderOps {
  const ops = h?.[side];
  const out = emptyHeaderOps();
  if (!ops) return out;
  Object.assign(out.set, ops.set ?? {});
  Object.assign(out.add, ops.add ?? {});
  out.remove.push(...(ops.remove ?? []));
  return out;
}

function hasHeaderOps(h: HeadersSpec | undefined): boolean {
  return !!h && (['request', 'response'] as const).some((s) => {
    const o = h[s];
    return !!o && (Object.keys(o.set ?? {}).length > 0 || Object.keys(o.add ?? {}).length > 0 || (o.remove ?? []).length > 0);
  });
}

function toDestination(d: DestinationSpec, weight: number, namespace: string, ctx: TranslateContext): Destination {
  const out: Destination = { host: ctx.fqdn(d.host, namespace), weight };
  if (d.subset) out.subset = d.subset;
  if (d.port) out.port = d.port.number;
  return out;
}

/**
 * A weighted list: a single destination receives all traffic whatever its weight; with several, a missing weight
 * is 0 (no traffic). Weights are reduced by their GCD.
 */
function toDestinations(
  list: ReadonlyArray<{ destination: DestinationSpec; weight?: number | undefined; headers?: HeadersSpec | undefined }>,
  namespace: string,
  ctx: TranslateContext,
): Destination[] {
  const out = list.map((r) => {
    const d = toDestination(r.destination, list.length === 1 ? 1 : (r.weight ?? 0), namespace, ctx);
    if (hasHeaderOps(r.headers)) d.headers = { request: toHeaderOps(r.headers, 'request'), response: toHeaderOps(r.headers, 'response') };
    return d;
  });
  return reduceWeightsOf(out);
}

/** Istio `parseRetryOn`: numbers that are HTTP status codes become retriable status codes, the rest conditions. */
export function parseRetryOn(retryOn: string): { retryOn: string[]; codes: number[] } {
  const conditions: string[] = [];
  const codes: number[] = [];
  for (const raw of retryOn.split(',')) {
    const part = raw.trim();
    if (!part) continue;
    const n = /^[+-]?\d+$/.test(part) ? Number(part) : NaN;
    if (HTTP_STATUS_CODES.has(n)) codes.push(n);
    else conditions.push(part);
  }
  if (codes.length && !conditions.some((c) => c.includes('retriable-status-codes'))) conditions.push('retriable-status-codes');
  return { retryOn: conditions, codes };
}

/** Istio `retry.ConvertPolicy`: attempts <= 0 disables retries; unset fields keep Istio's default policy. */
function toRetryPolicy(rt: NonNullable<HttpRouteSpec['retries']>): RetryPolicy {
  const attempts = rt.attempts ?? 0;
  if (attempts <= 0) return { attempts: 0, retryOn: [], retriableStatusCodes: [] };
  const out: RetryPolicy = { attempts, retryOn: [...DEFAULT_RETRY_ON], retriableStatusCodes: [503] };
  if (rt.retryOn) {
    const parsed = parseRetryOn(rt.retryOn);
    out.retryOn = parsed.retryOn;
    out.retriableStatusCodes = parsed.codes;
  }
  if (rt.perTryTimeout !== undefined) out.perTryTimeoutMs = ms(rt.perTryTimeout);
  if (rt.retryRemoteLocalities !== undefined) out.retryRemoteLocalities = rt.retryRemoteLocalities;
  if (rt.retryIgnorePreviousHosts !== undefined) out.retryIgnorePreviousHosts = rt.retryIgnorePreviousHosts;
  if (rt.backoff !== undefined) out.backoff = { baseIntervalMs: ms(rt.backoff) };
  return out;
}

function toFault(f: NonNullable<HttpRouteSpec['fault']>): FaultPolicy {
  const out: FaultPolicy = {};
  // A percentage that is not given means no request is faulted (Istio docs); the deprecated integer `percent`
  // is used when `percentage` is absent.
  if (f.delay && f.delay.fixedDelay !== undefined) {
    out.delay = { fixedDelayMs: ms(f.delay.fixedDelay), percent: f.delay.percentage ? (f.delay.percentage.value ?? 0) : (f.delay.percent ?? 0) };
  }
  if (f.abort) {
    const abort: NonNullable<FaultPolicy['abort']> = { percent: f.abort.percentage?.value ?? 0 };
    if (f.abort.httpStatus !== undefined) abort.httpStatus = f.abort.httpStatus;
    if (f.abort.grpcStatus !== undefined) abort.grpcStatus = f.abort.grpcStatus;
    out.abort = abort;
  }
  return out;
}

function toMirror(d: DestinationSpec, pct: number, namespace: string, ctx: TranslateContext): MirrorPolicy {
  const out: MirrorPolicy = { host: ctx.fqdn(d.host, namespace), percent: pct };
  if (d.subset) out.subset = d.subset;
  if (d.port) out.port = d.port.number;
  return out;
}

/** `mirror` + `mirrorPercentage` (or the deprecated integer) and `mirrors`; 100% when unset, none when 0. */
function toMirrors(r: HttpRouteSpec, namespace: string, ctx: TranslateContext): MirrorPolicy[] {
  const out: MirrorPolicy[] = [];
  if (r.mirror) {
    const deprecated = r.mirrorPercent ?? r.mirror_percent;
    const pct = r.mirrorPercentage ? (r.mirrorPercentage.value ?? 0) : deprecated !== undefined ? deprecated : 100;
    if (pct > 0) out.push(toMirror(r.mirror, pct, namespace, ctx));
  }
  for (const m of r.mirrors ?? []) {
    const pct = m.percentage ? (m.percentage.value ?? 0) : 100;
    if (pct > 0) out.push(toMirror(m.destination, pct, namespace, ctx));
  }
  return out;
}

function toCors(c: NonNullable<HttpRouteSpec['corsPolicy']>): CorsPolicy {
  const origins = c.allowOrigins ? c.allowOrigins.map(toStringMatch).filter((x): x is StringMatch => x !== undefined) : (c.allowOrigin ?? []).map((o) => ({ exact: o }));
  const out: CorsPolicy = {
    allowOrigins: origins,
    allowMethods: [...(c.allowMethods ?? [])],
    allowHeaders: [...(c.allowHeaders ?? [])],
    exposeHeaders: [...(c.exposeHeaders ?? [])],
  };
  if (c.maxAge !== undefined) out.maxAgeSeconds = Math.floor(ms(c.maxAge) / 1000);
  if (c.allowCredentials !== undefined) out.allowCredentials = c.allowCredentials;
  return out;
}

function toRewrite(rw: NonNullable<HttpRouteSpec['rewrite']>): Rewrite | undefined {
  const out: Rewrite = {};
  if (rw.uri) out.prefix = rw.uri;
  if (rw.uriRegexRewrite?.match) out.regex = { pattern: rw.uriRegexRewrite.match, substitution: rw.uriRegexRewrite.rewrite ?? '' };
  if (rw.authority) out.authority = rw.authority;
  return Object.keys(out).length ? out : undefined;
}

function toAction(r: HttpRouteSpec, namespace: string, ctx: TranslateContext): RouteAction | undefined {
  if (r.redirect) {
    const rd = r.redirect;
    // Istio: the default redirect code is 301 (MOVED_PERMANENTLY).
    const redirect: Redirect = { statusCode: rd.redirectCode || 301 };
    if (rd.scheme) redirect.scheme = rd.scheme;
    if (rd.authority) redirect.host = rd.authority;
    if (rd.port !== undefined) redirect.port = rd.port;
    if (rd.derivePort) redirect.derivePort = rd.derivePort;
    if (rd.uri) redirect.path = rd.uri;
    return { kind: 'redirect', redirect };
  }
  if (r.directResponse) {
    const d = r.directResponse;
    const action: RouteAction = { kind: 'direct', status: d.status };
    if (d.body?.string !== undefined) action.body = d.body.string;
    else if (d.body?.bytes !== undefined) action.body = Buffer.from(d.body.bytes, 'base64').toString('utf8');
    return action;
  }
  if (r.route && r.route.length) return { kind: 'route', destinations: toDestinations(r.route, namespace, ctx) };
  return undefined;
}

function toHttpRoute(r: HttpRouteSpec, namespace: string, ctx: TranslateContext, res: Resource<unknown>, at: JsonPath): HttpRoute | undefined {
  const action = toAction(r, namespace, ctx);
  if (!action) return undefined;
  const out: HttpRoute = {
    matches: (r.match ?? []).map((m) => toRouteMatch(m, namespace)),
    action,
    mirrors: toMirrors(r, namespace, ctx),
    headers: { request: toHeaderOps(r.headers, 'request'), response: toHeaderOps(r.headers, 'response') },
    origin: ctx.origin(res, at),
  };
  if (r.name) out.name = r.name;
  const rewrite = r.rewrite && toRewrite(r.rewrite);
  if (rewrite) out.rewrite = rewrite;
  if (r.timeout !== undefined) out.timeoutMs = ms(r.timeout);
  if (r.retries) out.retries = toRetryPolicy(r.retries);
  if (r.fault) {
    if (r.fault.delay && r.fault.delay.fixedDelay === undefined) {
      ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: 'fault delay without fixedDelay injects no delay', hint: 'set fault.delay.fixedDelay (for example "5s")', at: [...at, 'fault', 'delay'] });
    }
    const fault = toFault(r.fault);
    if (fault.delay || fault.abort) out.fault = fault;
  }
  if (r.corsPolicy) out.cors = toCors(r.corsPolicy);
  return out;
}

function toL4Match(m: z.output<typeof l4Match> | z.output<typeof tlsMatch>, namespace: string): L4Match {
  const out: L4Match = {
    destinationSubnets: [...(m.destinationSubnets ?? [])],
    sniHosts: 'sniHosts' in m ? [...m.sniHosts] : [],
    gateways: (m.gateways ?? []).map((g) => resolveGatewayName(g, namespace)),
  };
  if (m.port !== undefined) out.port = m.port;
  if (m.sourceLabels && Object.keys(m.sourceLabels).length) out.sourceLabels = { ...m.sourceLabels };
  if (m.sourceNamespace) out.sourceNamespace = m.sourceNamespace;
  return out;
}

// --- Delegation (Istio pilot/pkg/model virtualservice.go: mergeHTTPRoutes) -----------------------------------

function stringMatchConflict(root: StringMatchSpec | undefined, leaf: StringMatchSpec | undefined): boolean {
  if (!root || !leaf) return false;
  if (root.regex) return !!(leaf.regex || leaf.prefix || leaf.exact);
  if (leaf.regex) return !!(root.regex || root.prefix || root.exact);
  if (root.exact) return !!leaf.prefix || leaf.exact !== root.exact;
  if (root.prefix) {
    if (leaf.prefix) return !leaf.prefix.startsWith(root.prefix);
    if (leaf.exact) return !leaf.exact.startsWith(root.prefix);
  }
  return true;
}

function matchConflict(root: HttpMatchSpec, leaf: HttpMatchSpec): boolean {
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) if (stringMatchConflict(root[k], leaf[k])) return true;
  for (const k of ['headers', 'withoutHeaders', 'queryParams'] as const) {
    for (const [name, v] of Object.entries(leaf[k] ?? {})) if (stringMatchConflict(root[k]?.[name], v)) return true;
  }
  if (!!root.ignoreUriCase !== !!leaf.ignoreUriCase) return true;
  if (root.port && leaf.port && root.port !== leaf.port) return true;
  if (root.sourceNamespace && leaf.sourceNamespace !== root.sourceNamespace) return true;
  for (const [k, v] of Object.entries(leaf.sourceLabels ?? {})) if (root.sourceLabels && k in root.sourceLabels && root.sourceLabels[k] !== v) return true;
  const rg = root.gateways ?? [];
  const lg = leaf.gateways ?? [];
  if (rg.length && lg.length && (rg.length < lg.length || lg.some((g) => !rg.includes(g)))) return true;
  return false;
}

function mergeMatch(root: HttpMatchSpec, leaf: HttpMatchSpec): HttpMatchSpec {
  const out: HttpMatchSpec = { ...leaf };
  const name = leaf.name ? (root.name ? `${root.name}-${leaf.name}` : leaf.name) : root.name;
  if (name !== undefined) out.name = name;
  for (const k of ['uri', 'scheme', 'method', 'authority'] as const) if (out[k] === undefined && root[k] !== undefined) out[k] = root[k];
  for (const k of ['headers', 'withoutHeaders', 'queryParams'] as const) if (root[k] || leaf[k]) out[k] = { ...(root[k] ?? {}), ...(leaf[k] ?? {}) };
  if (root.sourceLabels || leaf.sourceLabels) out.sourceLabels = { ...(root.sourceLabels ?? {}), ...(leaf.sourceLabels ?? {}) };
  if (!out.port && root.port) out.port = root.port;
  if (!out.sourceNamespace && root.sourceNamespace) out.sourceNamespace = root.sourceNamespace;
  if (!(out.gateways ?? []).length && root.gateways) out.gateways = root.gateways;
  if (!out.statPrefix && root.statPrefix) out.statPrefix = root.statPrefix;
  return out;
}

/** Merged matches, or undefined when a delegate match has no compatible root match (the route is dropped). */
function mergeMatches(root: HttpMatchSpec[], leaf: HttpMatchSpec[]): HttpMatchSpec[] | undefined {
  if (root.length === 0) return leaf;
  if (leaf.length === 0) return root;
  const out: HttpMatchSpec[] = [];
  for (const sub of leaf) {
    const merged = root.filter((r) => !matchConflict(r, sub)).map((r) => mergeMatch(r, sub));
    if (merged.length === 0) return undefined;
    out.push(...merged);
  }
  return out;
}

/** Gives a route's hosts and gateway names their fully resolved form, so that it can move to another namespace. */
function resolveRouteSpec(r: HttpRouteSpec, namespace: string, ctx: TranslateContext): HttpRouteSpec {
  const dest = (d: DestinationSpec): DestinationSpec => ({ ...d, host: ctx.fqdn(d.host, namespace) });
  const out: HttpRouteSpec = { ...r };
  if (r.match) out.match = r.match.map((m) => (m.gateways ? { ...m, gateways: m.gateways.map((g) => resolveGatewayName(g, namespace)) } : m));
  if (r.route) out.route = r.route.map((d) => ({ ...d, destination: dest(d.destination) }));
  if (r.mirror) out.mirror = dest(r.mirror);
  if (r.mirrors) out.mirrors = r.mirrors.map((m) => ({ ...m, destination: dest(m.destination) }));
  return out;
}

function mergeRoute(root: HttpRouteSpec, leaf: HttpRouteSpec): HttpRouteSpec | undefined {
  const matches = mergeMatches(root.match ?? [], leaf.match ?? []);
  if (!matches) return undefined;
  const out: HttpRouteSpec = { ...leaf, match: matches };
  const name = leaf.name ? (root.name ? `${root.name}-${leaf.name}` : leaf.name) : root.name;
  if (name !== undefined) out.name = name;
  const inherited = ['rewrite', 'directResponse', 'timeout', 'retries', 'fault', 'mirror', 'mirrorPercent', 'mirror_percent', 'mirrorPercentage', 'corsPolicy', 'mirrors', 'headers'] as const;
  for (const k of inherited) if (out[k] === undefined && root[k] !== undefined) (out as Record<string, unknown>)[k] = root[k];
  return out;
}

interface PlacedRoute {
  spec: HttpRouteSpec;
  res: Resource<unknown>;
  at: JsonPath;
}

/** The HTTP routes of a root VirtualService with its delegates' routes merged in, in order. */
function expandDelegates(res: Resource<VirtualServiceSpec>, ctx: TranslateContext): PlacedRoute[] {
  const out: PlacedRoute[] = [];
  (res.spec.http ?? []).forEach((route, i) => {
    const at: JsonPath = ['spec', 'http', i];
    if (!route.delegate) {
      out.push({ spec: route, res, at });
      return;
    }
    const name = route.delegate.name ?? '';
    const ns = route.delegate.namespace || res.namespace;
    const delegate = ctx.lookup<VirtualServiceSpec>(NETWORKING_GROUP, 'VirtualService', ns, name);
    if (!delegate) {
      ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: `delegate VirtualService ${ns}/${name} not found: the route is ignored`, hint: 'create the delegate VirtualService (with no hosts) or fix delegate.name/namespace', at: [...at, 'delegate'] });
      return;
    }
    if ((delegate.spec.hosts ?? []).length) {
      ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: `VirtualService ${ns}/${name} has hosts, so it is not a delegate: the route is ignored`, hint: 'a delegate VirtualService must have no hosts', at: [...at, 'delegate'] });
      return;
    }
    const exported = delegate.spec.exportTo ?? [];
    if (exported.length && !exported.includes('*') && !exported.includes(res.namespace) && !(exported.includes('.') && ns === res.namespace)) {
      ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: `delegate VirtualService ${ns}/${name} is not exported to namespace ${res.namespace}: the route is ignored`, hint: `add "${res.namespace}" (or "*") to the delegate's exportTo`, at: [...at, 'delegate'] });
      return;
    }
    const root = resolveRouteSpec(route, res.namespace, ctx);
    (delegate.spec.http ?? []).forEach((leaf, j) => {
      const merged = mergeRoute(root, resolveRouteSpec(leaf, ns, ctx));
      if (merged) out.push({ spec: merged, res: delegate as Resource<unknown>, at: ['spec', 'http', j] });
      else ctx.report(delegate as Resource<unknown>, { severity: 'Warning', code: 'WFT0106', message: `route conflicts with the matches of root VirtualService ${res.namespace}/${res.name}: it is ignored`, hint: 'a delegate route must match a subset of what the root route matches', at: ['spec', 'http', j, 'match'] });
    });
  });
  return out;
}

export function translateVirtualService(res: Resource<VirtualServiceSpec>, ctx: TranslateContext): void {
  const spec = res.spec;
  const ns = res.namespace;
  const hosts = spec.hosts ?? [];
  if (hosts.length === 0) return; // a delegate: merged into the VirtualServices that delegate to it
  const exportTo = spec.exportTo ?? [];
  if (exportTo.includes('.') && exportTo.includes(ns)) {
    ctx.report(res, { severity: 'Error', code: 'WFT0106', message: `duplicate entries in exportTo: . and current namespace ${ns}`, hint: 'keep one of them', at: ['spec', 'exportTo'] });
    return;
  }
  const http: HttpRoute[] = [];
  for (const placed of expandDelegates(res, ctx)) {
    const route = toHttpRoute(placed.spec, ns, ctx, placed.res, placed.at);
    if (route) http.push(route);
  }
  const table: RouteTable = {
    hosts: hosts.map((h) => ctx.fqdn(h, ns)),
    namespace: ns,
    // Istio: no gateways means the mesh (all sidecars).
    gateways: (spec.gateways && spec.gateways.length ? spec.gateways : ['mesh']).map((g) => resolveGatewayName(g, ns)),
    exportTo: exportToOf(spec.exportTo),
    ports: [],
    http,
    tcp: (spec.tcp ?? []).map((t, i) => ({
      matches: (t.match ?? []).map((m) => toL4Match(m, ns)),
      destinations: toDestinations(t.route ?? [], ns, ctx),
      origin: ctx.origin(res, ['spec', 'tcp', i]),
    })),
    tls: spec.tls
      ? spec.tls.map((t, i) => ({
          matches: t.match.map((m) => toL4Match(m, ns)),
          destinations: toDestinations(t.route ?? [], ns, ctx),
          origin: ctx.origin(res, ['spec', 'tls', i]),
        }))
      : [],
    origin: ctx.origin(res),
  };
  ctx.model.routes.push(table);
}

export const virtualServiceKind = defineKind<VirtualServiceSpec>({
  group: NETWORKING_GROUP,
  kind: 'VirtualService',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: virtualServiceSpec,
  translate: translateVirtualService,
});
