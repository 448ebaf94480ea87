/**
 * compileRouteConfiguration: an Envoy RouteConfiguration → a CompiledRouteConfig whose `route()` picks the
 * RouteDecision for a request, with Envoy's semantics (source/common/router/config_impl.cc):
 *
 * Virtual host by :authority (lower-cased; the port is part of the name unless ignore_port_in_host_matching):
 * exact domain, then suffix wildcards (`*.foo.com`, `*-bar.foo.com`; longest first; the wildcard never matches an
 * empty string), then prefix wildcards (`foo.*`; longest first), then the `*` virtual host. Domains are unique
 * across the configuration and only one `*` is allowed. No authority → no route (404).
 *
 * Routes in order, the first match wins. A route matches when its path matcher (prefix, path, safe_regex — a full
 * match —, path_separated_prefix, connect_matcher; against the path without query and fragment, and without
 * `;params` when ignore_path_parameters_in_path_matching; case_sensitive applies to prefix/path/separated prefix),
 * runtime_fraction (the request's random value), grpc (content-type application/grpc or application/grpc+…),
 * headers, query_parameters and tls_context all hold. The request's one random value also picks the weighted
 * cluster (`value % total weight`, or the value in `header_name`), as Envoy uses one random value per request.
 *
 * Everything that needs work per request is precompiled here; what cannot be honoured is a ConfigError naming
 * the field (the xDS client NACKs it), and fields that are accepted without effect are listed once in `warnings`.
 * Cluster existence is left to the caller (`clusterNames` lists every cluster the routes name; `validateClusters`
 * says whether the configuration asked Envoy to reject unknown ones).
 */
import { readFileSync } from 'node:fs';
import type { Any } from '@bufbuild/protobuf/wkt';
import { typeNameOf, unpack } from '../../../xds/index.js';
import type { DataSource } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { RoutingPriority } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import {
  FilterConfigSchema,
  RedirectAction_RedirectResponseCode,
  RouteAction_ClusterNotFoundResponseCode,
  RouteAction_InternalRedirectAction,
  VirtualHost_TlsRequirementType,
} from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type {
  DirectResponseAction,
  HedgePolicy,
  RedirectAction,
  Route,
  RouteAction,
  RouteAction_RequestMirrorPolicy,
  RouteMatch,
  VirtualHost,
  WeightedCluster,
} from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { RequestHead } from '../headers.js';
import { NO_COMPILED_FILTER_CONFIG, NO_DISABLED_FILTERS, NO_FILTER_CONFIG, NO_UPGRADES, RedirectSpec, RouteDecision, VirtualHostInfo } from './decision.js';
import type { DecisionInit } from './decision.js';
import { compilePerRouteFilterConfig, mergePerRouteFilterConfig } from '../filters/index.js';
import type { FormatterOptions } from './formatter.js';
import { compileHeaderParser } from './header-ops.js';
import type { HeaderParser } from './header-ops.js';
import { compileHeaderMatcher, compileQueryMatcher, listHeaderFirst, matchAllHeaders } from './match.js';
import type { HeaderMatch, QueryMatch } from './match.js';
import { compileHashPolicy, compileMirrorPolicy, compileRetryPolicy } from './policies.js';
import type { HashPolicy, MirrorPolicy, RetryPolicy } from './policies.js';
import type { Re2 } from './regex.js';
import {
  asciiLower,
  checkHeaderName,
  checkHeaderValue,
  compileRegex,
  compileRegexRewrite,
  CompileContext,
  durationMs,
  nameIs,
  optionalDurationMs,
  runtimeFraction,
  startsWithIgnoreCase,
} from './util.js';
import { isGrpcRequest } from '../grpc/common.js';
import type { RegexRewrite } from './util.js';

export interface CompileOptions extends FormatterOptions {
  /**
   * validate_clusters when the RouteConfiguration leaves it unset: false for RDS (Envoy's default), true for a
   * route_config inline in the connection manager.
   */
  validateClustersDefault?: boolean;
  /** Reads a direct_response body file (default fs.readFileSync). */
  readFile?: (path: string) => Buffer;
}

/** Per-request inputs of `route()` besides the request head. */
export interface RouteContext {
  /** The request's random value, uniform in [0, 1), or a generator of such values (default Math.random). */
  random?: number | (() => number);
  /** tls_context matching: whether the client presented / the proxy validated a certificate (default false). */
  peerCertificatePresented?: boolean;
  peerCertificateValidated?: boolean;
}

/** The route timeout when a route does not set one (Envoy's DEFAULT_ROUTE_TIMEOUT_MS). */
export const DEFAULT_ROUTE_TIMEOUT_MS = 15_000;
/** Envoy's default max_direct_response_body_size_bytes. */
export const DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES = 4096;

const P_PREFIX = 0;
const P_PATH = 1;
const P_REGEX = 2;
const P_SEPARATED = 3;
const P_CONNECT = 4;

const TLS_ANY = -1;

class CompiledRoute {
  constructor(
    readonly pathKind: number,
    /** prefix / path (lower-cased when !caseSensitive). */
    readonly pathValue: string,
    readonly caseSensitive: boolean,
    readonly re: Re2 | null,
    readonly runtimeNum: number,
    readonly runtimeDen: number,
    readonly grpc: boolean,
    readonly headers: readonly HeaderMatch[] | null,
    readonly query: readonly QueryMatch[] | null,
    readonly tlsPresented: number,
    readonly tlsValidated: number,
    /** The decision (single cluster, cluster_header, redirect, direct). null when weighted. */
    readonly decision: RouteDecision | null,
    readonly weighted: readonly RouteDecision[] | null,
    /** Cumulative weights: entry i takes values in [cumulative[i-1], cumulative[i]). */
    readonly cumulative: readonly number[] | null,
    readonly totalWeight: number,
    /** weighted_clusters.header_name (lower case) or ''. */
    readonly weightHeader: string,
  ) {}
}

class CompiledVirtualHost {
  constructor(
    readonly info: VirtualHostInfo,
    readonly routes: readonly CompiledRoute[],
    /** 0 none, 1 external only, 2 all. */
    readonly requireTls: number,
    readonly sslRedirect: RouteDecision | null,
  ) {}
}

function draw(ctx: RouteContext): number {
  const r = ctx.random;
  const v = typeof r === 'number' ? r : typeof r === 'function' ? r() : Math.random();
  return v >= 1 ? 0.9999999999999999 : v < 0 ? 0 : v;
}

/** Envoy's HeaderUtility::getPortStart: the index of the port's `:` in host[:port] / [v6]:port, else -1. */
export function portStart(host: string): number {
  const p = host.lastIndexOf(':');
  if (p < 0) return -1;
  const v6 = host.lastIndexOf(']');
  return v6 < 0 || v6 < p ? p : -1;
}

/** The end of the path proper: the first `?` or `#` (and `;` when path parameters are ignored). */
function pathEnd(path: string, ignoreParams: boolean): number {
  const n = path.length;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */ || (ignoreParams && c === 59) /* ; */) return i;
  }
  return n;
}


/** uint64 from a header (absl::SimpleAtoi) modulo `total`; -1 when the value is not a valid unsigned number. */
function headerRandomModulo(v: string, total: number): number {
  const m = /^\s*\+?(\d+)\s*$/.exec(v);
  if (!m) return -1;
  const digits = m[1]!;
  if (digits.length <= 15) return Number(digits) % total;
  const n = BigInt(digits);
  if (n > 0xffff_ffff_ffff_ffffn) return -1;
  return Number(n % BigInt(total));
}

/** The compiled RouteConfiguration. */
export class CompiledRouteConfig {
  /** @internal */
  constructor(
    readonly name: string,
    private readonly exact: ReadonlyMap<string, CompiledVirtualHost>,
    private readonly suffixLens: readonly number[],
    private readonly suffixMaps: ReadonlyArray<ReadonlyMap<string, CompiledVirtualHost>>,
    private readonly prefixLens: readonly number[],
    private readonly prefixMaps: ReadonlyArray<ReadonlyMap<string, CompiledVirtualHost>>,
    private readonly defaultHost: CompiledVirtualHost | undefined,
    private readonly ignorePort: boolean,
    private readonly ignorePathParams: boolean,
    /** The virtual hosts, in configuration order. */
    readonly virtualHosts: readonly VirtualHostInfo[],
    /** Every cluster named by a route, weighted cluster or mirror policy. */
    readonly clusterNames: ReadonlySet<string>,
    /** validate_clusters (or the default from the options). */
    readonly validateClusters: boolean,
    /** internal_only_headers, lower case: the connection manager strips them from external requests. */
    readonly internalOnlyHeaders: readonly string[],
    readonly maxDirectResponseBodySizeBytes: number,
    /** Fields accepted without effect, once per kind. */
    readonly warnings: readonly string[],
  ) {}

  /** The virtual host for an authority (exact, suffix wildcard, prefix wildcard, `*`). */
  private findHost(authority: string): CompiledVirtualHost | undefined {
    if (this.exact.size === 0 && this.suffixLens.length === 0 && this.prefixLens.length === 0) return this.defaultHost;
    if (!authority) return undefined;
    let host = authority;
    if (this.ignorePort) {
      const p = portStart(host);
      if (p >= 0) host = host.slice(0, p);
    }
    host = asciiLower(host);
    const v = this.exact.get(host);
    if (v !== undefined) return v;
    const n = host.length;
    const sl = this.suffixLens;
    for (let i = 0; i < sl.length; i++) {
      const len = sl[i]!;
      if (len >= n) continue;
      const s = this.suffixMaps[i]!.get(host.slice(n - len));
      if (s !== undefined) return s;
    }
    const pl = this.prefixLens;
    for (let i = 0; i < pl.length; i++) {
      const len = pl[i]!;
      if (len >= n) continue;
      const s = this.prefixMaps[i]!.get(host.slice(0, len));
      if (s !== undefined) return s;
    }
    return this.defaultHost;
  }

  /** The name of the virtual host that serves an authority (for diagnostics and tests). */
  virtualHostFor(authority: string): string | undefined {
    return this.findHost(authority)?.info.name;
  }

  /** The decision for a request; undefined = no route (404, flag NR). */
  route(head: RequestHead, ctx: RouteContext = {}): RouteDecision | undefined {
    const vh = this.findHost(head.authority);
    if (vh === undefined) return undefined;
    if (vh.requireTls !== 0 && forwardedProto(head) !== 'https') {
      if (vh.requireTls === 2 || listHeaderFirst(head.headers, 'x-envoy-internal') !== 'true') return vh.sslRedirect!;
    }
    const path = head.path;
    const hasPath = path.length > 0;
    const end = hasPath ? pathEnd(path, this.ignorePathParams) : 0;
    let pathOnly: string | undefined;
    let random = -1;
    const routes = vh.routes;
    for (let i = 0; i < routes.length; i++) {
      const rt = routes[i]!;
      const kind = rt.pathKind;
      if (kind === P_CONNECT) {
        if (head.method !== 'CONNECT') continue;
      } else {
        if (!hasPath) continue;
        const v = rt.pathValue;
        const len = v.length;
        if (kind === P_PREFIX || kind === P_SEPARATED) {
          if (end < len) continue;
          if (rt.caseSensitive ? !path.startsWith(v) : !startsWithIgnoreCase(path, v, 0)) continue;
          if (kind === P_SEPARATED && end !== len && path.charCodeAt(len) !== 47 /* / */) continue;
        } else if (kind === P_PATH) {
          if (end !== len) continue;
          if (rt.caseSensitive ? !path.startsWith(v) : !startsWithIgnoreCase(path, v, 0)) continue;
        } else {
          if (pathOnly === undefined) pathOnly = end === path.length ? path : path.slice(0, end);
          if (!rt.re!.fullMatch(pathOnly)) continue;
        }
      }
      if (rt.runtimeNum >= 0) {
        if (random < 0) random = draw(ctx);
        if (!(Math.floor(random * rt.runtimeDen) < rt.runtimeNum)) continue;
      }
      if (rt.grpc && !isGrpcRequest(head)) continue;
      if (rt.headers !== null && !matchAllHeaders(rt.headers, head)) continue;
      if (rt.query !== null) {
        const q = path.indexOf('?');
        let ok = true;
        for (let j = 0; j < rt.query.length; j++) {
          if (!rt.query[j]!.match(path, q)) {
            ok = false;
            break;
          }
        }
        if (!ok) continue;
      }
      if (rt.tlsPresented !== TLS_ANY && (ctx.peerCertificatePresented === true ? 1 : 0) !== rt.tlsPresented) continue;
      if (rt.tlsValidated !== TLS_ANY && (ctx.peerCertificateValidated === true ? 1 : 0) !== rt.tlsValidated) continue;

      // Matched: pick the cluster.
      let d = rt.decision;
      if (d === null) {
        const total = rt.totalWeight;
        let value = -1;
        if (rt.weightHeader) {
          const hv = singleHeader(head, rt.weightHeader);
          if (hv !== undefined) value = headerRandomModulo(hv, total);
        }
        if (value < 0) {
          if (random < 0) random = draw(ctx);
          value = Math.floor(random * total);
        }
        const cum = rt.cumulative!;
        let k = 0;
        while (k < cum.length - 1 && value >= cum[k]!) k++;
        d = rt.weighted![k]!;
      }
      if (d.clusterHeader) return d.withCluster(listHeaderFirst(head.headers, d.clusterHeader) ?? '');
      return d;
    }
    return undefined;
  }
}

/** The value of a header that occurs exactly once, else undefined. */
function singleHeader(head: RequestHead, lower: string): string | undefined {
  const h = head.headers;
  let out: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    if (nameIs(h[i]!, lower)) {
      if (out !== undefined) return undefined;
      out = h[i + 1]!;
    }
  }
  return out;
}

/** The request's scheme as Envoy's router sees it: x-forwarded-proto when present, else the request's scheme. */
export function forwardedProto(head: RequestHead): string {
  return listHeaderFirst(head.headers, 'x-forwarded-proto') ?? head.scheme;
}

// ---------------------------------------------------------------------------------------------------------------
// Compilation

/** Levels above a route that its decisions inherit from. */
interface Parent {
  rcName: string;
  mostSpecificWins: boolean;
  maxBodyBytes: number;
  vhInfo: VirtualHostInfo;
  rcRequest: HeaderParser;
  rcResponse: HeaderParser;
  vhRequest: HeaderParser;
  vhResponse: HeaderParser;
  /** Merged filter configs of the route configuration and the virtual host. */
  filterConfig: ReadonlyMap<string, Any>;
  compiledFilters: ReadonlyMap<string, unknown>;
  disabledFilters: ReadonlyMap<string, boolean>;
  vhRetry: RetryPolicy | undefined;
  vhHedge: HedgePolicy | undefined;
  mirrors: readonly MirrorPolicy[];
  clusters: Set<string>;
}

const FILTER_CONFIG_TYPE = 'envoy.config.route.v3.FilterConfig';

/** typed_per_filter_config of one level merged over the levels above it. */
function mergeFilterConfigs(
  ctx: CompileContext,
  field: string,
  own: { [key: string]: Any },
  baseConfig: ReadonlyMap<string, Any>,
  baseCompiled: ReadonlyMap<string, unknown>,
  baseDisabled: ReadonlyMap<string, boolean>,
): [ReadonlyMap<string, Any>, ReadonlyMap<string, unknown>, ReadonlyMap<string, boolean>] {
  const names = Object.keys(own);
  if (names.length === 0) return [baseConfig, baseCompiled, baseDisabled];
  const config = new Map(baseConfig);
  let compiled: Map<string, unknown> | undefined;
  let disabled: Map<string, boolean> | undefined;
  for (const name of names) {
    let any = own[name]!;
    const f = `${field ? `${field}.` : ''}typed_per_filter_config[${JSON.stringify(name)}]`;
    let inner = f;
    if (typeNameOf(any.typeUrl) === FILTER_CONFIG_TYPE) {
      let fc;
      try {
        fc = unpack(FilterConfigSchema, any);
      } catch (e) {
        return ctx.fail(f, e instanceof Error ? e.message : String(e));
      }
      if (!fc.config && !fc.disabled) ctx.fail(f, `empty per-filter configuration for filter ${name}`);
      disabled ??= new Map(baseDisabled);
      disabled.set(name, fc.disabled);
      if (!fc.config) continue;
      any = fc.config;
      inner = `${f}.config`;
    }
    config.set(name, any);
    // Compiled by the filter that owns the type (a bad config NACKs the route configuration here).
    const c = mergePerRouteFilterConfig(any, compilePerRouteFilterConfig(ctx, inner, name, any), baseCompiled.get(name));
    compiled ??= new Map(baseCompiled);
    if (c === undefined) compiled.delete(name);
    else compiled.set(name, c);
  }
  return [config, compiled ?? baseCompiled, disabled ?? baseDisabled];
}

function hedgeCheck(ctx: CompileContext, field: string, h: HedgePolicy | undefined): void {
  if (!h) return;
  const asks = (h.initialRequests ?? 1) > 1 || (h.additionalRequestChance?.numerator ?? 0) > 0 || h.hedgeOnPerTryTimeout;
  if (asks) ctx.fail(field, 'request hedging is not supported');
}

/** The empty list every route without hash policies, mirrors or header operations shares. */
const NONE: readonly never[] = Object.freeze([]);

function compileMirrors(ctx: CompileContext, field: string, ms: readonly RouteAction_RequestMirrorPolicy[], clusters: Set<string>): readonly MirrorPolicy[] {
  if (ms.length === 0) return NONE;
  return ms.map((m, i) => {
    const p = compileMirrorPolicy(ctx, `${field}[${i}]`, m);
    if (p.cluster) clusters.add(p.cluster);
    return p;
  });
}

function dataSourceBody(ctx: CompileContext, field: string, ds: DataSource, maxBytes: number, opts: CompileOptions): Buffer {
  let body: Buffer;
  const s = ds.specifier;
  switch (s.case) {
    case 'inlineString':
      body = Buffer.from(s.value, 'utf8');
      break;
    case 'inlineBytes':
      body = Buffer.from(s.value);
      break;
    case 'filename':
      try {
        body = (opts.readFile ?? readFileSync)(s.value);
      } catch (e) {
        return ctx.fail(`${field}.filename`, `cannot read response body file ${s.value}: ${e instanceof Error ? e.message : String(e)}`);
      }
      break;
    case 'environmentVariable': {
      const v = (opts.env ?? process.env)[s.value];
      if (v === undefined) ctx.fail(`${field}.environment_variable`, `environment variable ${s.value} does not exist`);
      body = Buffer.from(v, 'utf8');
      break;
    }
    default:
      body = Buffer.alloc(0);
  }
  if (body.length > maxBytes) ctx.fail(field, `response body size is ${body.length} bytes; maximum is ${maxBytes}`);
  return body;
}

const REDIRECT_STATUS: Readonly<Record<number, number>> = {
  [RedirectAction_RedirectResponseCode.MOVED_PERMANENTLY]: 301,
  [RedirectAction_RedirectResponseCode.FOUND]: 302,
  [RedirectAction_RedirectResponseCode.SEE_OTHER]: 303,
  [RedirectAction_RedirectResponseCode.TEMPORARY_REDIRECT]: 307,
  [RedirectAction_RedirectResponseCode.PERMANENT_REDIRECT]: 308,
};

const CLUSTER_NOT_FOUND_STATUS: Readonly<Record<number, number>> = {
  [RouteAction_ClusterNotFoundResponseCode.SERVICE_UNAVAILABLE]: 503,
  [RouteAction_ClusterNotFoundResponseCode.NOT_FOUND]: 404,
  [RouteAction_ClusterNotFoundResponseCode.INTERNAL_SERVER_ERROR]: 500,
};

function compileRedirect(ctx: CompileContext, field: string, r: RedirectAction): { spec: RedirectSpec; status: number } {
  let scheme = '';
  if (r.schemeRewriteSpecifier.case === 'httpsRedirect') scheme = r.schemeRewriteSpecifier.value ? 'https' : '';
  else if (r.schemeRewriteSpecifier.case === 'schemeRedirect') scheme = r.schemeRewriteSpecifier.value;
  checkHeaderValue(ctx, `${field}.host_redirect`, r.hostRedirect);
  let pathRedirect = '';
  let prefixRewrite = '';
  let regex: RegexRewrite | null = null;
  const p = r.pathRewriteSpecifier;
  if (p.case === 'pathRedirect') {
    checkHeaderValue(ctx, `${field}.path_redirect`, p.value);
    pathRedirect = p.value;
  } else if (p.case === 'prefixRewrite') {
    checkHeaderValue(ctx, `${field}.prefix_rewrite`, p.value);
    prefixRewrite = p.value;
  } else if (p.case === 'regexRewrite') {
    regex = compileRegexRewrite(ctx, `${field}.regex_rewrite`, p.value);
  }
  if (r.portRedirect > 65535) ctx.fail(`${field}.port_redirect`, 'must be a port number (0..65535)');
  const status = REDIRECT_STATUS[r.responseCode];
  if (status === undefined) ctx.fail(`${field}.response_code`, `unknown redirect response code ${String(r.responseCode)}`);
  const spec = new RedirectSpec(
    scheme,
    r.hostRedirect,
    r.portRedirect ? `:${r.portRedirect}` : '',
    pathRedirect,
    pathRedirect.includes('?'),
    prefixRewrite,
    regex,
    r.stripQuery,
    false,
  );
  return { spec, status };
}

/** Common decision fields of a route (before its action). */
function baseInit(parent: Parent, routeName: string, filterConfig: ReadonlyMap<string, Any>, compiled: ReadonlyMap<string, unknown>, disabled: ReadonlyMap<string, boolean>, routeReq: HeaderParser, routeResp: HeaderParser, bufferLimit: number | undefined): DecisionInit {
  const order = (rc: HeaderParser, vh: HeaderParser, rt: HeaderParser): readonly HeaderParser[] => {
    if (rc.empty && vh.empty && rt.empty) return NONE;
    return (parent.mostSpecificWins ? [rc, vh, rt] : [rt, vh, rc]).filter((p) => !p.empty);
  };
  return {
    kind: 'cluster',
    routeName,
    routeConfigName: parent.rcName,
    virtualHost: parent.vhInfo,
    cluster: '',
    clusterHeader: '',
    clusterNotFoundStatus: 503,
    timeoutMs: DEFAULT_ROUTE_TIMEOUT_MS,
    idleTimeoutMs: undefined,
    maxStreamDurationMs: undefined,
    grpcTimeoutHeaderMaxMs: undefined,
    grpcTimeoutHeaderOffsetMs: undefined,
    maxGrpcTimeoutMs: undefined,
    grpcTimeoutOffsetMs: undefined,
    retryPolicy: undefined,
    hashPolicies: NONE,
    mirrorPolicies: parent.mirrors,
    priority: 'DEFAULT',
    upgrades: NO_UPGRADES,
    autoHostRewrite: false,
    appendXForwardedHost: false,
    status: 0,
    body: undefined,
    perFilterConfig: filterConfig,
    compiledFilterConfig: compiled,
    disabledFilters: disabled,
    perRequestBufferLimitBytes: bufferLimit,
    clusterRequestParser: null,
    clusterResponseParser: null,
    clusterHostRewrite: '',
    requestParsers: order(parent.rcRequest, parent.vhRequest, routeReq),
    responseParsers: order(parent.rcResponse, parent.vhResponse, routeResp),
    hostRewriteLiteral: '',
    hostRewriteHeader: '',
    hostRewriteRegex: null,
    prefixRewrite: '',
    regexRewrite: null,
    matchedLength: -1,
    redirect: null,
  };
}

interface MatchInfo {
  kind: number;
  value: string;
  caseSensitive: boolean;
  re: Re2 | null;
  runtimeNum: number;
  runtimeDen: number;
  grpc: boolean;
  headers: HeaderMatch[] | null;
  query: QueryMatch[] | null;
  tlsPresented: number;
  tlsValidated: number;
  /** Length replaced by prefix_rewrite (-1 = path without query). */
  matchedLength: number;
}

const SEPARATED_PREFIX_RE = /^[^?#]+[^?#/]$/;

function compileMatch(ctx: CompileContext, field: string, m: RouteMatch | undefined): MatchInfo {
  if (!m) return ctx.fail(field, 'is required');
  const caseSensitive = m.caseSensitive ?? true;
  let kind: number;
  let value = '';
  let re: Re2 | null = null;
  const p = m.pathSpecifier;
  switch (p.case) {
    case 'prefix':
      kind = P_PREFIX;
      value = p.value;
      break;
    case 'path':
      kind = P_PATH;
      value = p.value;
      break;
    case 'safeRegex':
      kind = P_REGEX;
      re = compileRegex(ctx, `${field}.safe_regex`, p.value);
      break;
    case 'pathSeparatedPrefix':
      if (!SEPARATED_PREFIX_RE.test(p.value)) ctx.fail(`${field}.path_separated_prefix`, `${JSON.stringify(p.value)} must not be empty, contain ? or # or end with /`);
      kind = P_SEPARATED;
      value = p.value;
      break;
    case 'connectMatcher':
      kind = P_CONNECT;
      break;
    case 'pathMatchPolicy':
      return ctx.fail(`${field}.path_match_policy`, `path match policy extensions are not supported (${p.value.name || 'unnamed'})`);
    default:
      return ctx.fail(field, 'one of prefix, path, safe_regex, connect_matcher or path_separated_prefix is required');
  }
  if (m.dynamicMetadata.length > 0) ctx.fail(`${field}.dynamic_metadata`, 'dynamic metadata matching is not supported');
  let runtimeNum = -1;
  let runtimeDen = 1;
  if (m.runtimeFraction) [runtimeNum, runtimeDen] = runtimeFraction(ctx, `${field}.runtime_fraction`, m.runtimeFraction);
  const headers = m.headers.length ? m.headers.map((h, i) => compileHeaderMatcher(ctx, `${field}.headers[${i}]`, h)) : null;
  const query = m.queryParameters.length ? m.queryParameters.map((q, i) => compileQueryMatcher(ctx, `${field}.query_parameters[${i}]`, q)) : null;
  const tls = m.tlsContext;
  const lowerIfInsensitive = kind === P_PREFIX || kind === P_PATH || kind === P_SEPARATED;
  return {
    kind,
    value: lowerIfInsensitive && !caseSensitive ? asciiLower(value) : value,
    caseSensitive,
    re,
    runtimeNum,
    runtimeDen,
    grpc: m.grpc !== undefined,
    headers,
    query,
    tlsPresented: tls?.presented === undefined ? TLS_ANY : tls.presented ? 1 : 0,
    tlsValidated: tls?.validated === undefined ? TLS_ANY : tls.validated ? 1 : 0,
    matchedLength: kind === P_REGEX || kind === P_CONNECT ? -1 : value.length,
  };
}

interface ActionResult {
  decision: RouteDecision | null;
  weighted: RouteDecision[] | null;
  cumulative: number[] | null;
  total: number;
  weightHeader: string;
}

function compileRouteAction(ctx: CompileContext, field: string, a: RouteAction, init: DecisionInit, parent: Parent, match: MatchInfo, opts: CompileOptions): ActionResult {
  init.matchedLength = match.matchedLength;
  init.clusterNotFoundStatus = CLUSTER_NOT_FOUND_STATUS[a.clusterNotFoundResponseCode] ?? ctx.fail(`${field}.cluster_not_found_response_code`, `unknown code ${String(a.clusterNotFoundResponseCode)}`);
  if (a.metadataMatch) ctx.fail(`${field}.metadata_match`, 'subset load balancing by metadata_match is not supported');

  // Path and host rewrites.
  const rewrites = (a.prefixRewrite ? 1 : 0) + (a.regexRewrite ? 1 : 0) + (a.pathRewritePolicy ? 1 : 0);
  if (rewrites > 1) ctx.fail(field, 'specify only one of prefix_rewrite, regex_rewrite or path_rewrite_policy');
  if (a.pathRewritePolicy) ctx.fail(`${field}.path_rewrite_policy`, `path rewrite policy extensions are not supported (${a.pathRewritePolicy.name || 'unnamed'})`);
  if (a.prefixRewrite) {
    checkHeaderValue(ctx, `${field}.prefix_rewrite`, a.prefixRewrite);
    init.prefixRewrite = a.prefixRewrite;
  }
  if (a.regexRewrite) init.regexRewrite = compileRegexRewrite(ctx, `${field}.regex_rewrite`, a.regexRewrite);
  const h = a.hostRewriteSpecifier;
  switch (h.case) {
    case 'hostRewriteLiteral':
      checkHeaderValue(ctx, `${field}.host_rewrite_literal`, h.value);
      init.hostRewriteLiteral = h.value;
      break;
    case 'autoHostRewrite':
      init.autoHostRewrite = h.value.value;
      break;
    case 'hostRewriteHeader':
      checkHeaderName(ctx, `${field}.host_rewrite_header`, h.value);
      init.hostRewriteHeader = asciiLower(h.value);
      break;
    case 'hostRewritePathRegex':
      init.hostRewriteRegex = compileRegexRewrite(ctx, `${field}.host_rewrite_path_regex`, h.value);
      break;
    default:
      break;
  }
  init.appendXForwardedHost = a.appendXForwardedHost;

  // Timeouts.
  if (a.timeout) init.timeoutMs = durationMs(ctx, `${field}.timeout`, a.timeout);
  init.idleTimeoutMs = optionalDurationMs(ctx, `${field}.idle_timeout`, a.idleTimeout);
  init.maxGrpcTimeoutMs = optionalDurationMs(ctx, `${field}.max_grpc_timeout`, a.maxGrpcTimeout);
  init.grpcTimeoutOffsetMs = optionalDurationMs(ctx, `${field}.grpc_timeout_offset`, a.grpcTimeoutOffset);
  if (a.maxStreamDuration) {
    const f = `${field}.max_stream_duration`;
    init.maxStreamDurationMs = optionalDurationMs(ctx, `${f}.max_stream_duration`, a.maxStreamDuration.maxStreamDuration);
    init.grpcTimeoutHeaderMaxMs = optionalDurationMs(ctx, `${f}.grpc_timeout_header_max`, a.maxStreamDuration.grpcTimeoutHeaderMax);
    init.grpcTimeoutHeaderOffsetMs = optionalDurationMs(ctx, `${f}.grpc_timeout_header_offset`, a.maxStreamDuration.grpcTimeoutHeaderOffset);
  }

  // Policies: the route's, else the virtual host's.
  if (a.retryPolicyTypedConfig) ctx.fail(`${field}.retry_policy_typed_config`, 'retry policy extensions are not supported');
  let retry: RetryPolicy | undefined;
  if (a.retryPolicy) retry = compileRetryPolicy(ctx, `${field}.retry_policy`, a.retryPolicy);
  else retry = parent.vhRetry;
  init.retryPolicy = retry;
  hedgeCheck(ctx, `${field}.hedge_policy`, a.hedgePolicy ?? parent.vhHedge);
  if (a.requestMirrorPolicies.length > 0) init.mirrorPolicies = compileMirrors(ctx, `${field}.request_mirror_policies`, a.requestMirrorPolicies, parent.clusters);
  const hashes: HashPolicy[] = [];
  a.hashPolicy.forEach((p, i) => {
    const c = compileHashPolicy(ctx, `${field}.hash_policy[${i}]`, p);
    if (c) hashes.push(c);
  });
  init.hashPolicies = hashes.length === 0 ? NONE : hashes;
  init.priority = a.priority === RoutingPriority.HIGH ? 'HIGH' : 'DEFAULT';

  if (a.upgradeConfigs.length > 0) {
    const up = new Map<string, boolean>();
    a.upgradeConfigs.forEach((u, i) => {
      const f = `${field}.upgrade_configs[${i}]`;
      const type = asciiLower(u.upgradeType);
      if (!type) ctx.fail(`${f}.upgrade_type`, 'must not be empty');
      if (up.has(type)) ctx.fail(`${f}.upgrade_type`, `duplicate upgrade ${u.upgradeType}`);
      if (u.connectConfig && type !== 'connect' && type !== 'connect-udp') ctx.fail(`${f}.connect_config`, `non-CONNECT upgrade type ${u.upgradeType} has a connect_config`);
      up.set(type, u.enabled ?? true);
    });
    init.upgrades = up;
  }

  if (a.internalRedirectPolicy) ctx.fail(`${field}.internal_redirect_policy`, 'internal redirects are not supported');
  if (a.internalRedirectAction === RouteAction_InternalRedirectAction.HANDLE_INTERNAL_REDIRECT) ctx.fail(`${field}.internal_redirect_action`, 'internal redirects are not supported');
  if (a.rateLimits.length > 0) ctx.warn(`${field}.rate_limits`, 'global rate limit actions are not supported and are ignored');
  if (a.cors) ctx.warn(`${field}.cors`, 'the deprecated route cors field is ignored (the CORS filter reads typed_per_filter_config)');
  if (a.earlyDataPolicy) ctx.warn(`${field}.early_data_policy`, 'early data policies are ignored (no HTTP/3)');

  // Cluster.
  const cs = a.clusterSpecifier;
  switch (cs.case) {
    case 'cluster':
      if (!cs.value) ctx.fail(`${field}.cluster`, 'must not be empty');
      init.cluster = cs.value;
      parent.clusters.add(cs.value);
      return { decision: new RouteDecision(init), weighted: null, cumulative: null, total: 0, weightHeader: '' };
    case 'clusterHeader':
      checkHeaderName(ctx, `${field}.cluster_header`, cs.value);
      init.clusterHeader = asciiLower(cs.value);
      return { decision: new RouteDecision(init), weighted: null, cumulative: null, total: 0, weightHeader: '' };
    case 'weightedClusters':
      return compileWeighted(ctx, `${field}.weighted_clusters`, cs.value, init, parent, opts);
    case 'clusterSpecifierPlugin':
    case 'inlineClusterSpecifierPlugin':
      return ctx.fail(`${field}.${cs.case === 'clusterSpecifierPlugin' ? 'cluster_specifier_plugin' : 'inline_cluster_specifier_plugin'}`, 'cluster specifier plugins are not supported');
    default:
      return ctx.fail(field, 'one of cluster, cluster_header or weighted_clusters is required');
  }
}

function compileWeighted(ctx: CompileContext, field: string, w: WeightedCluster, init: DecisionInit, parent: Parent, opts: CompileOptions): ActionResult {
  if (w.clusters.length === 0) ctx.fail(`${field}.clusters`, 'must have at least one cluster');
  if (w.runtimeKeyPrefix) ctx.warn(`${field}.runtime_key_prefix`, 'runtime weight overrides are not supported; the configured weights apply');
  const decisions: RouteDecision[] = [];
  const cumulative: number[] = [];
  let total = 0;
  w.clusters.forEach((c, i) => {
    const f = `${field}.clusters[${i}]`;
    if (c.name && c.clusterHeader) ctx.fail(f, 'only one of name or cluster_header can be specified');
    if (!c.name && !c.clusterHeader) ctx.fail(f, 'at least one of name or cluster_header needs to be specified');
    if (c.metadataMatch) ctx.fail(`${f}.metadata_match`, 'subset load balancing by metadata_match is not supported');
    const weight = c.weight ?? 0;
    total += weight;
    if (total > 0xffff_ffff) ctx.fail(`${field}`, `the sum of weights of all weighted clusters exceeds ${0xffff_ffff}`);
    cumulative.push(total);
    const req = compileHeaderParser(ctx, `${f}.request`, c.requestHeadersToAdd, c.requestHeadersToRemove, opts);
    const resp = compileHeaderParser(ctx, `${f}.response`, c.responseHeadersToAdd, c.responseHeadersToRemove, opts);
    const [config, compiled, disabled] = mergeFilterConfigs(ctx, f, c.typedPerFilterConfig, init.perFilterConfig, init.compiledFilterConfig, init.disabledFilters);
    let hostRewrite = '';
    if (c.hostRewriteSpecifier.case === 'hostRewriteLiteral') {
      checkHeaderValue(ctx, `${f}.host_rewrite_literal`, c.hostRewriteSpecifier.value);
      hostRewrite = c.hostRewriteSpecifier.value;
    }
    if (c.clusterHeader) checkHeaderName(ctx, `${f}.cluster_header`, c.clusterHeader);
    if (c.name) parent.clusters.add(c.name);
    decisions.push(
      new RouteDecision({
        ...init,
        cluster: c.name,
        clusterHeader: asciiLower(c.clusterHeader),
        perFilterConfig: config,
        compiledFilterConfig: compiled,
        disabledFilters: disabled,
        clusterRequestParser: req.empty ? null : req,
        clusterResponseParser: resp.empty ? null : resp,
        clusterHostRewrite: hostRewrite,
      }),
    );
  });
  if (total === 0) ctx.fail(field, 'sum of weights in the weighted_cluster must be greater than 0');
  if (w.totalWeight !== undefined && w.totalWeight > 0 && w.totalWeight !== total) {
    ctx.warn(`${field}.total_weight`, 'the deprecated total_weight is ignored: the sum of the cluster weights is used');
  }
  const header = w.randomValueSpecifier.case === 'headerName' ? w.randomValueSpecifier.value : '';
  if (header) checkHeaderName(ctx, `${field}.header_name`, header);
  return { decision: null, weighted: decisions, cumulative, total, weightHeader: asciiLower(header) };
}

function compileDirect(ctx: CompileContext, field: string, d: DirectResponseAction, init: DecisionInit, parent: Parent, opts: CompileOptions): RouteDecision {
  if (d.status < 100 || d.status > 599) ctx.fail(`${field}.status`, `must be in [100, 600), got ${d.status}`);
  init.kind = 'direct';
  init.status = d.status;
  if (d.body) init.body = dataSourceBody(ctx, `${field}.body`, d.body, parent.maxBodyBytes, opts);
  return new RouteDecision(init);
}

function compileRoute(ctx: CompileContext, field: string, r: Route, parent: Parent, opts: CompileOptions): CompiledRoute {
  const match = compileMatch(ctx, `${field}.match`, r.match);
  const req = compileHeaderParser(ctx, `${field}.request`, r.requestHeadersToAdd, r.requestHeadersToRemove, opts);
  const resp = compileHeaderParser(ctx, `${field}.response`, r.responseHeadersToAdd, r.responseHeadersToRemove, opts);
  const [config, compiled, disabled] = mergeFilterConfigs(ctx, field, r.typedPerFilterConfig, parent.filterConfig, parent.compiledFilters, parent.disabledFilters);
  if (r.decorator) ctx.warn(`${field}.decorator`, 'tracing decorators are ignored');
  if (r.tracing) ctx.warn(`${field}.tracing`, 'route tracing settings are ignored');
  if (r.statPrefix) ctx.warn(`${field}.stat_prefix`, 'per-route stats are not emitted');
  const init = baseInit(parent, r.name, config, compiled, disabled, req, resp, r.perRequestBufferLimitBytes ?? parent.vhInfo.perRequestBufferLimitBytes);
  let res: ActionResult;
  const a = r.action;
  switch (a.case) {
    case 'route':
      res = compileRouteAction(ctx, `${field}.route`, a.value, init, parent, match, opts);
      break;
    case 'redirect': {
      const { spec, status } = compileRedirect(ctx, `${field}.redirect`, a.value);
      init.kind = 'redirect';
      init.status = status;
      init.redirect = spec;
      init.matchedLength = match.matchedLength;
      res = { decision: new RouteDecision(init), weighted: null, cumulative: null, total: 0, weightHeader: '' };
      break;
    }
    case 'directResponse':
      res = { decision: compileDirect(ctx, `${field}.direct_response`, a.value, init, parent, opts), weighted: null, cumulative: null, total: 0, weightHeader: '' };
      break;
    case 'filterAction':
      return ctx.fail(`${field}.filter_action`, 'filter_action routes are not supported');
    case 'nonForwardingAction':
      return ctx.fail(`${field}.non_forwarding_action`, 'non_forwarding_action routes are not supported');
    default:
      return ctx.fail(field, 'one of route, redirect or direct_response is required');
  }
  return new CompiledRoute(
    match.kind,
    match.value,
    match.caseSensitive,
    match.re,
    match.runtimeNum,
    match.runtimeDen,
    match.grpc,
    match.headers,
    match.query,
    match.tlsPresented,
    match.tlsValidated,
    res.decision,
    res.weighted,
    res.cumulative,
    res.total,
    res.weightHeader,
  );
}

interface RcLevel {
  rcName: string;
  mostSpecificWins: boolean;
  maxBodyBytes: number;
  rcRequest: HeaderParser;
  rcResponse: HeaderParser;
  filterConfig: ReadonlyMap<string, Any>;
  compiledFilters: ReadonlyMap<string, unknown>;
  disabledFilters: ReadonlyMap<string, boolean>;
  mirrors: readonly MirrorPolicy[];
  clusters: Set<string>;
}

function compileVirtualHost(ctx: CompileContext, field: string, vh: VirtualHost, rc: RcLevel, opts: CompileOptions): CompiledVirtualHost {
  if (!vh.name) ctx.fail(`${field}.name`, 'must not be empty');
  if (vh.matcher) ctx.fail(`${field}.matcher`, 'matcher trees are not supported (use routes)');
  if (vh.retryPolicyTypedConfig) ctx.fail(`${field}.retry_policy_typed_config`, 'retry policy extensions are not supported');
  if (vh.virtualClusters.length > 0) ctx.warn(`${field}.virtual_clusters`, 'virtual cluster stats are not emitted');
  if (vh.rateLimits.length > 0) ctx.warn(`${field}.rate_limits`, 'global rate limit actions are not supported and are ignored');
  if (vh.cors) ctx.warn(`${field}.cors`, 'the deprecated virtual host cors field is ignored (the CORS filter reads typed_per_filter_config)');
  const info = new VirtualHostInfo(vh.name, vh.includeRequestAttemptCount, vh.includeAttemptCountInResponse, vh.includeIsTimeoutRetryHeader, vh.perRequestBufferLimitBytes);
  const [filterConfig, compiledFilters, disabledFilters] = mergeFilterConfigs(ctx, field, vh.typedPerFilterConfig, rc.filterConfig, rc.compiledFilters, rc.disabledFilters);
  const parent: Parent = {
    rcName: rc.rcName,
    mostSpecificWins: rc.mostSpecificWins,
    maxBodyBytes: rc.maxBodyBytes,
    vhInfo: info,
    rcRequest: rc.rcRequest,
    rcResponse: rc.rcResponse,
    vhRequest: compileHeaderParser(ctx, `${field}.request`, vh.requestHeadersToAdd, vh.requestHeadersToRemove, opts),
    vhResponse: compileHeaderParser(ctx, `${field}.response`, vh.responseHeadersToAdd, vh.responseHeadersToRemove, opts),
    filterConfig,
    compiledFilters,
    disabledFilters,
    vhRetry: vh.retryPolicy ? compileRetryPolicy(ctx, `${field}.retry_policy`, vh.retryPolicy) : undefined,
    vhHedge: vh.hedgePolicy,
    mirrors: vh.requestMirrorPolicies.length > 0 ? compileMirrors(ctx, `${field}.request_mirror_policies`, vh.requestMirrorPolicies, rc.clusters) : rc.mirrors,
    clusters: rc.clusters,
  };
  const routes = vh.routes.map((r, i) => compileRoute(ctx, `${field}.routes[${i}]`, r, parent, opts));
  let requireTls = 0;
  let sslRedirect: RouteDecision | null = null;
  if (vh.requireTls === VirtualHost_TlsRequirementType.EXTERNAL_ONLY) requireTls = 1;
  else if (vh.requireTls === VirtualHost_TlsRequirementType.ALL) requireTls = 2;
  if (requireTls !== 0) {
    const init = baseInit(parent, '', NO_FILTER_CONFIG, NO_COMPILED_FILTER_CONFIG, NO_DISABLED_FILTERS, parent.vhRequest, parent.vhResponse, info.perRequestBufferLimitBytes);
    init.kind = 'redirect';
    init.status = 301;
    init.requestParsers = [];
    init.responseParsers = [];
    init.redirect = new RedirectSpec('https', '', '', '', false, '', null, false, true);
    sslRedirect = new RouteDecision(init);
  }
  return new CompiledVirtualHost(info, routes, requireTls, sslRedirect);
}

/**
 * Compiles a RouteConfiguration. Throws ConfigError (naming the field) when it is invalid or uses something the
 * router does not implement.
 */
export function compileRouteConfiguration(rc: RouteConfiguration, opts: CompileOptions = {}): CompiledRouteConfig {
  const ctx = new CompileContext(rc.name);
  if (rc.vhds) ctx.fail('vhds', 'virtual host discovery (VHDS) is not supported');
  if (rc.clusterSpecifierPlugins.length > 0) ctx.fail('cluster_specifier_plugins', 'cluster specifier plugins are not supported');
  const internalOnly = rc.internalOnlyHeaders.map((h, i) => {
    checkHeaderName(ctx, `internal_only_headers[${i}]`, h);
    return asciiLower(h);
  });
  const clusters = new Set<string>();
  const [filterConfig, compiledFilters, disabledFilters] = mergeFilterConfigs(ctx, '', rc.typedPerFilterConfig, NO_FILTER_CONFIG, NO_COMPILED_FILTER_CONFIG, NO_DISABLED_FILTERS);
  const level: RcLevel = {
    rcName: rc.name,
    mostSpecificWins: rc.mostSpecificHeaderMutationsWins,
    maxBodyBytes: rc.maxDirectResponseBodySizeBytes ?? DEFAULT_MAX_DIRECT_RESPONSE_BODY_BYTES,
    rcRequest: compileHeaderParser(ctx, 'request', rc.requestHeadersToAdd, rc.requestHeadersToRemove, opts),
    rcResponse: compileHeaderParser(ctx, 'response', rc.responseHeadersToAdd, rc.responseHeadersToRemove, opts),
    filterConfig,
    compiledFilters,
    disabledFilters,
    mirrors: compileMirrors(ctx, 'request_mirror_policies', rc.requestMirrorPolicies, clusters),
    clusters,
  };

  const exact = new Map<string, CompiledVirtualHost>();
  const suffixes = new Map<number, Map<string, CompiledVirtualHost>>();
  const prefixes = new Map<number, Map<string, CompiledVirtualHost>>();
  let defaultHost: CompiledVirtualHost | undefined;
  const infos: VirtualHostInfo[] = [];
  rc.virtualHosts.forEach((vh, i) => {
    const field = `virtual_hosts[${i}]`;
    const compiled = compileVirtualHost(ctx, field, vh, level, opts);
    infos.push(compiled.info);
    if (vh.domains.length === 0) ctx.fail(`${field}.domains`, 'must have at least one domain');
    vh.domains.forEach((d, j) => {
      const f = `${field}.domains[${j}]`;
      checkHeaderValue(ctx, f, d);
      const domain = asciiLower(d);
      let dup = false;
      if (domain === '*') {
        if (defaultHost) ctx.fail(f, `only a single wildcard domain is permitted in route ${rc.name}`);
        defaultHost = compiled;
      } else if (domain.startsWith('*')) {
        const key = domain.slice(1);
        let m = suffixes.get(key.length);
        if (!m) suffixes.set(key.length, (m = new Map()));
        dup = m.has(key);
        m.set(key, compiled);
      } else if (domain.endsWith('*')) {
        const key = domain.slice(0, -1);
        let m = prefixes.get(key.length);
        if (!m) prefixes.set(key.length, (m = new Map()));
        dup = m.has(key);
        m.set(key, compiled);
      } else {
        dup = exact.has(domain);
        exact.set(domain, compiled);
      }
      if (dup) ctx.fail(f, `only unique values for domains are permitted: duplicate entry of domain ${domain} in route ${rc.name}`);
    });
  });
  const byLengthDesc = (m: Map<number, Map<string, CompiledVirtualHost>>): [number[], Array<Map<string, CompiledVirtualHost>>] => {
    const lens = [...m.keys()].sort((a, b) => b - a);
    return [lens, lens.map((l) => m.get(l)!)];
  };
  const [suffixLens, suffixMaps] = byLengthDesc(suffixes);
  const [prefixLens, prefixMaps] = byLengthDesc(prefixes);
  return new CompiledRouteConfig(
    rc.name,
    exact,
    suffixLens,
    suffixMaps,
    prefixLens,
    prefixMaps,
    defaultHost,
    rc.ignorePortInHostMatching,
    rc.ignorePathParametersInPathMatching,
    infos,
    clusters,
    rc.validateClusters ?? opts.validateClustersDefault ?? false,
    internalOnly,
    level.maxBodyBytes,
    ctx.warnings,
  );
}
