/**
 * RouteDecision: what the router decided for a request: forward to a cluster, answer with a redirect, or answer
 * directly. Decisions are built at config time and shared by every request that takes the same route (and, for
 * weighted clusters, the same cluster), so routing allocates nothing; only `cluster_header` routes make a copy
 * carrying the cluster named by the request.
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import type { HeaderParser } from './header-ops.js';
import type { HashPolicy, MirrorPolicy, RetryPolicy } from './policies.js';
import type { RegexRewrite } from './util.js';

export type DecisionKind = 'cluster' | 'redirect' | 'direct';

/** Virtual host properties the HTTP connection manager and router read. */
export class VirtualHostInfo {
  constructor(
    readonly name: string,
    readonly includeRequestAttemptCount: boolean,
    readonly includeAttemptCountInResponse: boolean,
    readonly includeIsTimeoutRetryHeader: boolean,
    readonly perRequestBufferLimitBytes: number | undefined,
  ) {}
}

/** A compiled RedirectAction (or the https redirect of `require_tls`). */
export class RedirectSpec {
  constructor(
    /** scheme_redirect ('' = keep), or 'https' for https_redirect. */
    readonly scheme: string,
    readonly host: string,
    /** ':<port_redirect>' or ''. */
    readonly port: string,
    readonly pathRedirect: string,
    readonly pathRedirectHasQuery: boolean,
    readonly prefixRewrite: string,
    readonly regexRewrite: RegexRewrite | null,
    readonly stripQuery: boolean,
    /** require_tls: `https://` + the request's authority and path, nothing else. */
    readonly ssl: boolean,
  ) {}
}

export interface DecisionInit {
  kind: DecisionKind;
  routeName: string;
  routeConfigName: string;
  virtualHost: VirtualHostInfo;
  cluster: string;
  clusterHeader: string;
  clusterNotFoundStatus: number;
  timeoutMs: number;
  idleTimeoutMs: number | undefined;
  maxStreamDurationMs: number | undefined;
  grpcTimeoutHeaderMaxMs: number | undefined;
  grpcTimeoutHeaderOffsetMs: number | undefined;
  maxGrpcTimeoutMs: number | undefined;
  grpcTimeoutOffsetMs: number | undefined;
  retryPolicy: RetryPolicy | undefined;
  hashPolicies: readonly HashPolicy[];
  mirrorPolicies: readonly MirrorPolicy[];
  priority: 'DEFAULT' | 'HIGH';
  upgrades: ReadonlyMap<string, boolean>;
  autoHostRewrite: boolean;
  appendXForwardedHost: boolean;
  status: number;
  body: Buffer | undefined;
  perFilterConfig: ReadonlyMap<string, Any>;
  compiledFilterConfig: ReadonlyMap<string, unknown>;
  disabledFilters: ReadonlyMap<string, boolean>;
  perRequestBufferLimitBytes: number | undefined;
  clusterRequestParser: HeaderParser | null;
  clusterResponseParser: HeaderParser | null;
  clusterHostRewrite: string;
  requestParsers: readonly HeaderParser[];
  responseParsers: readonly HeaderParser[];
  hostRewriteLiteral: string;
  hostRewriteHeader: string;
  hostRewriteRegex: RegexRewrite | null;
  prefixRewrite: string;
  regexRewrite: RegexRewrite | null;
  matchedLength: number;
  redirect: RedirectSpec | null;
}

const EMPTY_MAP: ReadonlyMap<string, never> = new Map<string, never>();

export class RouteDecision {
  /** 'cluster' (forward upstream), 'redirect' or 'direct' (answer locally with `status`). */
  readonly kind: DecisionKind;
  /** Route.name ('' when unnamed). */
  readonly routeName: string;
  readonly routeConfigName: string;
  readonly virtualHost: VirtualHostInfo;
  /**
   * The upstream cluster ('' for local answers, and for cluster_header routes whose header is missing). Whether
   * it exists is for the caller to check: a missing cluster is answered with `clusterNotFoundStatus` (flag NC).
   */
  readonly cluster: string;
  /** @internal cluster_header (lower case), '' when the cluster is fixed. */
  readonly clusterHeader: string;
  /** cluster_not_found_response_code: 503 (default), 404 or 500. */
  readonly clusterNotFoundStatus: number;
  /** Route timeout in ms; 15000 when unset (Envoy's default), 0 = no timeout. */
  readonly timeoutMs: number;
  /** Stream idle timeout override (0 disables); undefined = the connection manager's. */
  readonly idleTimeoutMs: number | undefined;
  readonly maxStreamDurationMs: number | undefined;
  readonly grpcTimeoutHeaderMaxMs: number | undefined;
  readonly grpcTimeoutHeaderOffsetMs: number | undefined;
  /** Deprecated max_grpc_timeout / grpc_timeout_offset. */
  readonly maxGrpcTimeoutMs: number | undefined;
  readonly grpcTimeoutOffsetMs: number | undefined;
  /** The route's retry policy, else the virtual host's. */
  readonly retryPolicy: RetryPolicy | undefined;
  readonly hashPolicies: readonly HashPolicy[];
  /** The route's mirror policies, else the virtual host's, else the route configuration's. */
  readonly mirrorPolicies: readonly MirrorPolicy[];
  readonly priority: 'DEFAULT' | 'HIGH';
  /** upgrade_configs: lower-case upgrade type → enabled (overrides the connection manager's). */
  readonly upgrades: ReadonlyMap<string, boolean>;
  /** auto_host_rewrite: the caller rewrites the authority to the chosen host's hostname (autoRewriteHost). */
  readonly autoHostRewrite: boolean;
  readonly appendXForwardedHost: boolean;
  /** Status of a local answer (redirect or direct), 0 for 'cluster'. */
  readonly status: number;
  /** direct_response body. */
  readonly body: Buffer | undefined;
  /**
   * typed_per_filter_config by filter name, most specific level first (weighted cluster, route, virtual host,
   * route configuration): the raw Any for the filter to read (FilterConfig wrappers are unwrapped).
   */
  readonly perFilterConfig: ReadonlyMap<string, Any>;
  /**
   * typed_per_filter_config compiled by the filter that owns its type (filters/registry.ts) at RDS compile time,
   * merged across levels by that filter's rules; by filter name.
   */
  readonly compiledFilterConfigs: ReadonlyMap<string, unknown>;
  /** FilterConfig.disabled by filter name, most specific level that says. */
  readonly disabledFilters: ReadonlyMap<string, boolean>;
  readonly perRequestBufferLimitBytes: number | undefined;
  /** @internal weighted cluster header mutations and host_rewrite_literal (applied first). */
  readonly clusterRequestParser: HeaderParser | null;
  /** @internal */
  readonly clusterResponseParser: HeaderParser | null;
  /** @internal */
  readonly clusterHostRewrite: string;
  /** @internal route / virtual host / route configuration mutations, in application order. */
  readonly requestParsers: readonly HeaderParser[];
  /** @internal */
  readonly responseParsers: readonly HeaderParser[];
  /** @internal */
  readonly hostRewriteLiteral: string;
  /** @internal */
  readonly hostRewriteHeader: string;
  /** @internal */
  readonly hostRewriteRegex: RegexRewrite | null;
  /** @internal */
  readonly prefixRewrite: string;
  /** @internal */
  readonly regexRewrite: RegexRewrite | null;
  /** @internal length of the matched prefix/path replaced by prefix_rewrite; -1 = the whole path (regex, CONNECT). */
  readonly matchedLength: number;
  /** @internal */
  readonly redirect: RedirectSpec | null;
  /** @internal whether applyRequestHeaders has anything to do. */
  readonly hasRequestMutations: boolean;
  /** @internal */
  readonly hasResponseMutations: boolean;
  /** Whether any header mutation has a command (%...%) that reads FormatVars. */
  readonly needsFormatVars: boolean;

  constructor(f: DecisionInit) {
    this.kind = f.kind;
    this.routeName = f.routeName;
    this.routeConfigName = f.routeConfigName;
    this.virtualHost = f.virtualHost;
    this.cluster = f.cluster;
    this.clusterHeader = f.clusterHeader;
    this.clusterNotFoundStatus = f.clusterNotFoundStatus;
    this.timeoutMs = f.timeoutMs;
    this.idleTimeoutMs = f.idleTimeoutMs;
    this.maxStreamDurationMs = f.maxStreamDurationMs;
    this.grpcTimeoutHeaderMaxMs = f.grpcTimeoutHeaderMaxMs;
    this.grpcTimeoutHeaderOffsetMs = f.grpcTimeoutHeaderOffsetMs;
    this.maxGrpcTimeoutMs = f.maxGrpcTimeoutMs;
    this.grpcTimeoutOffsetMs = f.grpcTimeoutOffsetMs;
    this.retryPolicy = f.retryPolicy;
    this.hashPolicies = f.hashPolicies;
    this.mirrorPolicies = f.mirrorPolicies;
    this.priority = f.priority;
    this.upgrades = f.upgrades;
    this.autoHostRewrite = f.autoHostRewrite;
    this.appendXForwardedHost = f.appendXForwardedHost;
    this.status = f.status;
    this.body = f.body;
    this.perFilterConfig = f.perFilterConfig;
    this.compiledFilterConfigs = f.compiledFilterConfig;
    this.disabledFilters = f.disabledFilters;
    this.perRequestBufferLimitBytes = f.perRequestBufferLimitBytes;
    this.clusterRequestParser = f.clusterRequestParser;
    this.clusterResponseParser = f.clusterResponseParser;
    this.clusterHostRewrite = f.clusterHostRewrite;
    this.requestParsers = f.requestParsers;
    this.responseParsers = f.responseParsers;
    this.hostRewriteLiteral = f.hostRewriteLiteral;
    this.hostRewriteHeader = f.hostRewriteHeader;
    this.hostRewriteRegex = f.hostRewriteRegex;
    this.prefixRewrite = f.prefixRewrite;
    this.regexRewrite = f.regexRewrite;
    this.matchedLength = f.matchedLength;
    this.redirect = f.redirect;
    this.hasRequestMutations =
      f.clusterRequestParser !== null ||
      f.clusterHostRewrite !== '' ||
      f.requestParsers.length > 0 ||
      f.hostRewriteLiteral !== '' ||
      f.hostRewriteHeader !== '' ||
      f.hostRewriteRegex !== null;
    this.hasResponseMutations = f.clusterResponseParser !== null || f.responseParsers.length > 0;
    this.needsFormatVars =
      f.clusterRequestParser?.dynamic === true ||
      f.clusterResponseParser?.dynamic === true ||
      f.requestParsers.some((p) => p.dynamic) ||
      f.responseParsers.some((p) => p.dynamic);
  }

  /** The most specific typed_per_filter_config of a filter (undefined when none). */
  filterConfig(name: string): Any | undefined {
    return this.perFilterConfig.get(name);
  }

  /** The compiled typed_per_filter_config of a filter (undefined when none, or no filter understands it). */
  compiledFilterConfig(name: string): unknown {
    return this.compiledFilterConfigs.size === 0 ? undefined : this.compiledFilterConfigs.get(name);
  }

  /** Whether a filter is disabled for this route (FilterConfig.disabled); undefined when no level says. */
  filterDisabled(name: string): boolean | undefined {
    return this.disabledFilters.get(name);
  }

  /** @internal a copy for a cluster named by the request (cluster_header). */
  withCluster(cluster: string): RouteDecision {
    return new RouteDecision({ ...this, compiledFilterConfig: this.compiledFilterConfigs, cluster });
  }
}

export const NO_FILTER_CONFIG: ReadonlyMap<string, Any> = EMPTY_MAP;
export const NO_COMPILED_FILTER_CONFIG: ReadonlyMap<string, unknown> = EMPTY_MAP;
export const NO_DISABLED_FILTERS: ReadonlyMap<string, boolean> = EMPTY_MAP;
export const NO_UPGRADES: ReadonlyMap<string, boolean> = EMPTY_MAP;
