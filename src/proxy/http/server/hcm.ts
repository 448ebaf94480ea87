/**
 * The HTTP connection manager (envoy.filters.network.http_connection_manager) for HTTP/1.1 downstreams:
 * compiled once from its proto, then `onRequest(stream)` runs per request.
 *
 *   const hcm = compileHcm(proto, { listener, field, routes, clusters });   // throws ConfigError → NACK
 *   new H1ServerConnection(socket, hcm, hcm.parserOptions, hcm.serverPolicy, onClose);
 *
 * Per request, in Envoy's order (ConnectionManagerUtility::mutateRequestHeaders, then the router filter):
 * - x-forwarded-proto set to the connection's scheme when absent (`https` on a TLS connection);
 * - x-forwarded-client-cert per forward_client_cert_details (tls/xfcc.ts; SANITIZE, the default, removes it);
 * - x-forwarded-for: the client address appended only with use_remote_address (the sidecar's outbound HCM has it
 *   off, as Istio sets it: the header passes unchanged);
 * - normalize_path / merge_slashes: the path is normalized (path-normalize.ts) before anything reads it;
 * - x-request-id: generated (UUID v4) when absent and generate_request_id is on (default); an external request
 *   (use_remote_address and not from a trusted address) gets a new one unless preserve_external_request_id;
 * - route lookup in the route configuration (inline route_config, or RDS by name: the latest accepted version
 *   is read per request, so an RDS update applies to the next request and never to one in flight);
 *   no route → 404 NR; redirect / direct response → local answer; unknown cluster → cluster_not_found_response_code
 *   (503) NC; otherwise header mutations, path rewrite, then the upstream request (route-path/upstream-request.ts).
 * Access logs (`access_log`) and tracing (`tracing`): accesslog/record.ts, tracing/tracer.ts; a stream gets a
 * record only when the connection manager has either.
 * HTTP filters (filters/registry.ts): `http_filters` compiles into the filters that run before the router, which
 * must be last; an unknown filter is a ConfigError naming `http_filters[i]` unless is_optional (skipped, reported
 * once). Per request, after route selection, each filter's decodeHeaders runs in order (no route: they run with no
 * decision, then 404 NR): one may answer (fault abort, CORS preflight) or hold the request and resume the chain
 * later (fault delay). With no filters (or none that applies) nothing is allocated.
 * Downstream codecs (codec_type, see serve.ts): AUTO (HTTP/1.1, or HTTP/2 when the connection starts with the
 * HTTP/2 preface or ALPN chose h2), HTTP1, HTTP2; HTTP3 is a ConfigError. http2_protocol_options gives the HTTP/2
 * settings (max_concurrent_streams, initial stream and connection windows); max_request_headers_kb and
 * max_headers_count limit header blocks of both codecs. Filters run on HTTP/1.1 and HTTP/2 streams alike.
 * Downstream timeouts (request_headers_timeout — 10 s when unset, Weft's slowloris default —, stream_idle_timeout,
 * request_timeout, common_http_protocol_options idle_timeout / max_connection_duration, drain_timeout) are compiled
 * into `timeouts` and enforced by the connection (connection.ts; on HTTP/2, h2-connection.ts: the stream timeouts
 * per stream, idle_timeout / max_connection_duration per connection with a GOAWAY drain). `upgrade_configs` (types compared
 * case-insensitively; CONNECT and upgrade filter chains are ConfigErrors) decide which Upgrade requests pass: an
 * upgrade not allowed by the connection manager or the route → 403 `upgrade_failed`, connection closed. Upgrades
 * are HTTP/1.1 only (HTTP/2 extended CONNECT is not supported).
 */
import { randomUUID } from 'node:crypto';
import type { HttpConnectionManager } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import {
  HttpConnectionManager_CodecType,
  HttpConnectionManager_ServerHeaderTransformation,
} from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { HttpProtocolOptions_HeadersWithUnderscoresAction } from '../../../xds/gen/envoy/config/core/v3/protocol_pb.js';
import { typeNameOf } from '../../../xds/index.js';
import { ConfigError } from '../../config-error.js';
import type { H1RequestParserOptions } from '../codec/h1/index.js';
import { hasHeader } from '../headers.js';
import { applyRequestHeaders, localReplyLocation, rewritePath, type CompiledRouteConfig } from '../router/index.js';
import { DEFAULT_BUFFER_LIMIT_BYTES, RouterRequest, upstreamProtocolOf, type UpstreamCluster } from '../route-path/upstream-request.js';
import { startMirrors } from '../route-path/mirror.js';
import { StreamVars } from '../route-path/stream-vars.js';
import { compileHttpFilters, STOP, type FilterChainCallbacks, type HeldBody, type HttpFilter } from '../filters/index.js';
import type { RouteDecision } from '../router/decision.js';
import { H1DownstreamStream, type ConnectionTimeouts, type DownstreamStream, type ServerHeaderPolicy } from './connection.js';
import { DEFAULT_H2_SERVER_OPTIONS, type H2ServerOptions } from './h2-connection.js';
import type { CodecType, HttpServerConfig } from './serve.js';
import { durationMs } from '../../upstream/cluster/compile.js';
import { normalizeRequestPath } from '../path-normalize.js';
import type { HttpConnStats } from '../../stats/request-stats.js';
import type { IstioHttpStats } from '../../stats/istio/http.js';
import { peerOf } from '../../tls/peer.js';
import { applyXfcc, compileXfcc, type XfccPolicy } from '../../tls/xfcc.js';
import { compileHttpTelemetry, type HttpTelemetry } from '../../accesslog/record.js';
import type { TracingContext } from '../../tracing/tracer.js';

/** Where the connection manager finds its routes: a fixed (inline) configuration or the latest RDS version. */
export interface RouteSource {
  readonly current: CompiledRouteConfig | undefined;
}

export interface HcmContext {
  /** The listener's name and the field path of this HCM inside it (for error messages). */
  listener: string;
  field: string;
  /** The RDS holder for a route configuration name (created and subscribed on first use). */
  rds(name: string): RouteSource;
  /** Compiles an inline route_config (throws ConfigError). */
  inlineRoutes(rc: NonNullable<HttpConnectionManager['routeSpecifier']['value']>): RouteSource;
  /** The cluster of that name, if the proxy has it. */
  cluster(name: string): UpstreamCluster | undefined;
  /** Warnings for fields accepted without effect (reported once by the caller). */
  warn(message: string): void;
  /**
   * The stats of this connection manager (`http.<stat_prefix>.`; its HTTP filters' stats live under it), called
   * once while it is compiled (the caller removes them when compiling fails). Absent: no stats are kept.
   */
  httpStats?(statPrefix: string): HttpConnStats;
  /**
   * What access logs and tracing need besides the HCM's own fields (accesslog/record.ts): the listener's traffic
   * direction, the proxy's node, collector clusters. Absent: spans describe an unnamed node.
   */
  telemetry?: Omit<TracingContext, 'listener' | 'field'>;
}

/**
 * Weft's request_headers_timeout when the connection manager leaves it unset. Envoy's default is no timeout, which
 * lets a client that sends its request head slowly (slowloris) hold a connection for as long as the idle timeout;
 * 10 s is far above what any real client needs to send a head and ends such connections quickly. `0s` disables it.
 */
export const DEFAULT_REQUEST_HEADERS_TIMEOUT_MS = 10_000;
/** Envoy's defaults: stream_idle_timeout 5 min, common_http_protocol_options.idle_timeout 1 h, drain_timeout 5 s. */
export const DEFAULT_STREAM_IDLE_TIMEOUT_MS = 300_000;
export const DEFAULT_CONNECTION_IDLE_TIMEOUT_MS = 3_600_000;
export const DEFAULT_DRAIN_TIMEOUT_MS = 5_000;

export class HttpConnectionManagerImpl implements HttpServerConfig, FilterChainCallbacks {
  private readonly someDisabledByDefault: boolean;
  readonly parserOptions: H1RequestParserOptions;
  readonly serverPolicy: ServerHeaderPolicy;
  /** RDS name, '' for an inline route configuration. */
  readonly rdsName: string;
  /** Downstream timeouts (connection.ts). */
  timeouts: ConnectionTimeouts = { requestHeadersMs: DEFAULT_REQUEST_HEADERS_TIMEOUT_MS, streamIdleMs: DEFAULT_STREAM_IDLE_TIMEOUT_MS, requestMs: 0, idleMs: DEFAULT_CONNECTION_IDLE_TIMEOUT_MS, maxConnectionDurationMs: 0, drainMs: DEFAULT_DRAIN_TIMEOUT_MS };
  /** upgrade_configs: lower-case upgrade type → enabled. */
  upgrades: ReadonlyMap<string, boolean> = new Map();
  /** Istio's metrics and metadata exchange (the stats' recorder, read once here); null: none. */
  private readonly istio: IstioHttpStats | null;
  /** normalize_path / merge_slashes (path-normalize.ts), applied before routing and the filters. */
  normalizePath = false;
  mergeSlashes = false;
  /** forward_client_cert_details / set_current_client_cert_details (null: SANITIZE, Envoy's default). */
  xfcc: XfccPolicy | null = null;
  /** Access logs and tracing (null: neither, nothing is recorded per request). */
  telemetry: HttpTelemetry | null = null;

  constructor(
    private readonly routes: RouteSource,
    private readonly clusters: HcmContext['cluster'],
    rdsName: string,
    private readonly useRemoteAddress: boolean,
    private readonly generateRequestId: boolean,
    private readonly preserveExternalRequestId: boolean,
    parserOptions: H1RequestParserOptions,
    serverPolicy: ServerHeaderPolicy,
    /** `http.<stat_prefix>.` stats, updated by the downstream connections (null: none kept). */
    readonly stats: HttpConnStats | null = null,
    /** The HTTP filters before the router, in order. */
    private readonly filters: readonly HttpFilter[] = [],
    /** Per filter: http_filters[i].disabled (off unless a route enables it). */
    private readonly disabledByDefault: readonly boolean[] = [],
    readonly codec: CodecType = 'auto',
    readonly h2Options: H2ServerOptions = DEFAULT_H2_SERVER_OPTIONS,
  ) {
    this.someDisabledByDefault = disabledByDefault.includes(true);
    this.istio = stats?.istio ?? null;
    this.rdsName = rdsName;
    this.parserOptions = parserOptions;
    this.serverPolicy = serverPolicy;
  }

  onRequest(stream: DownstreamStream): void {
    const head = stream.head;
    const h = head.headers;
    if (!hasHeader(h, 'x-forwarded-proto')) h.push('x-forwarded-proto', peerOf(stream.socket).tls ? 'https' : head.scheme);
    applyXfcc(this.xfcc, h, stream.socket);
    if (this.useRemoteAddress) appendXff(h, stream.remoteAddress);
    if (this.generateRequestId) {
      const external = this.useRemoteAddress && !isLoopback(stream.remoteAddress);
      if (!hasHeader(h, 'x-request-id')) h.push('x-request-id', randomUUID());
      else if (external && !this.preserveExternalRequestId) setFirst(h, 'x-request-id', randomUUID());
    }
    if (this.istio !== null) this.istio.onRequest(stream);
    if (this.normalizePath || this.mergeSlashes) head.path = normalizeRequestPath(head.path, this.normalizePath, this.mergeSlashes);
    if (this.telemetry !== null) stream.record = this.telemetry.begin(stream);
    const d = this.routes.current?.route(head);
    if (stream.record !== null) stream.record.route = d;
    if (this.filters.length === 0 || this.runFilters(stream, d, 0)) this.route(stream, d, null);
  }

  /**
   * Runs the filters from `from`; false when one stopped the request. A route's FilterConfig `disabled: true`
   * skips a filter; a filter disabled by default (http_filters[i].disabled) runs only on routes that enable it
   * (FilterConfig `disabled: false`, or a per-route config of its own), as Envoy's FilterChainUtility.
   */
  private runFilters(stream: DownstreamStream, d: RouteDecision | undefined, from: number): boolean {
    const filters = this.filters;
    const check = this.someDisabledByDefault || (d !== undefined && d.disabledFilters.size > 0);
    for (let i = from; i < filters.length; i++) {
      const f = filters[i]!;
      if (check && !this.filterEnabled(i, f.name, d)) continue;
      if (f.decodeHeaders(stream, d, i, this) === STOP) return false;
    }
    return true;
  }

  private filterEnabled(i: number, name: string, d: RouteDecision | undefined): boolean {
    const routeSays = d?.filterDisabled(name);
    if (routeSays !== undefined) return !routeSays;
    return !this.disabledByDefault[i] || d?.filterConfig(name) !== undefined;
  }

  /** FilterChainCallbacks: a filter that held the request lets it go on, from filter `next`. */
  resume(stream: DownstreamStream, d: RouteDecision | undefined, next: number, held: HeldBody | null): void {
    if (stream.reset || stream.responseStarted) return;
    if (this.runFilters(stream, d, next)) this.route(stream, d, held);
  }

  /** The router filter: local answers, or the upstream request. */
  private route(stream: DownstreamStream, d: RouteDecision | undefined, held: HeldBody | null): void {
    const head = stream.head;
    if (d === undefined) {
      stream.localReply(404, '', 'NR', 'route_not_found');
      return;
    }
    if (d.kind !== 'cluster') {
      const location = localReplyLocation(d, head);
      const extra = location !== undefined ? ['location', location] : undefined;
      const body = d.body ?? '';
      stream.localReply(d.status, body, '', d.kind === 'redirect' ? 'via_route_redirect' : 'direct_response', extra);
      return;
    }
    if (stream.upgrade !== '' && !this.upgradeAllowed(stream.upgrade, d.upgrades)) {
      // Envoy: an upgrade the connection manager (or the route) does not allow is refused with 403 and the
      // connection closes after it (its later bytes could be a smuggled request).
      if (this.stats !== null) this.stats.downstream_rq_ws_on_non_ws_route.inc();
      refuseUpgrade(stream);
      return;
    }
    const cluster = d.cluster === '' ? undefined : this.clusters(d.cluster);
    if (cluster === undefined) {
      stream.localReply(d.clusterNotFoundStatus, '', 'NC', 'cluster_not_found');
      return;
    }
    stream.cluster = cluster;
    if (this.istio !== null) this.istio.onUpstream(stream, cluster);
    if (stream.upgrade !== '' && upstreamProtocolOf(cluster.runtime, head.httpVersion) === 2) {
      // An HTTP/2 upstream would need extended CONNECT (RFC 8441), which Weft does not speak: refused as an
      // upgrade that cannot be made.
      refuseUpgrade(stream);
      return;
    }
    const vars = stream.record ?? (d.needsFormatVars ? new StreamVars(stream, this.useRemoteAddress) : undefined);
    applyRequestHeaders(d, head, vars);
    rewritePath(d, head, true);
    const rr = new RouterRequest(stream, d, cluster);
    if (held !== null) rr.holdBody(held);
    if (vars !== undefined) rr.formatVars(vars);
    if (d.mirrorPolicies.length > 0) rr.mirrorTo(startMirrors(d, head, this.clusters, Math.random, d.perRequestBufferLimitBytes ?? DEFAULT_BUFFER_LIMIT_BYTES));
    rr.start();
  }

  /**
   * Envoy's FilterChainUtility::createUpgradeFilterChain: the connection manager must have an upgrade_config for the
   * type; the route's upgrade_configs entry for it then decides (enabled or not), else the connection manager's.
   */
  upgradeAllowed(type: string, route: ReadonlyMap<string, boolean>): boolean {
    const hcm = this.upgrades.get(type);
    if (hcm === undefined) return false;
    const r = route.get(type);
    return r !== undefined ? r : hcm;
  }
}

/** 403 `upgrade_failed`; the HTTP/1.1 connection closes after it (upgrades exist only on HTTP/1.1 streams). */
function refuseUpgrade(stream: DownstreamStream): void {
  if (stream instanceof H1DownstreamStream) stream.conn.closeAfterResponse = true;
  stream.localReply(403, '', '', 'upgrade_failed');
}

function isLoopback(addr: string): boolean {
  return addr.startsWith('127.') || addr === '::1' || addr.startsWith('::ffff:127.');
}

function appendXff(h: string[], addr: string): void {
  const a = addr.startsWith('::ffff:') ? addr.slice(7) : addr;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 15 && n.toLowerCase() === 'x-forwarded-for') {
      h[i + 1] = h[i + 1] === '' ? a : h[i + 1] + ',' + a;
      return;
    }
  }
  h.push('x-forwarded-for', a);
}

function setFirst(h: string[], lower: string, value: string): void {
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.toLowerCase() === lower) {
      h[i + 1] = value;
      return;
    }
  }
}

const NO_TELEMETRY_CONTEXT: Omit<TracingContext, 'listener' | 'field'> = {
  direction: 'UNSPECIFIED',
  local: { nodeId: '', cluster: '', zone: '' },
  collectorHost: () => undefined,
};

/** The name Weft writes in the `server` header unless server_name says otherwise. */
export const DEFAULT_SERVER_NAME = 'weft';

/** Compiles an HttpConnectionManager. Throws ConfigError naming the listener and the field. */
export function compileHcm(p: HttpConnectionManager, ctx: HcmContext): HttpConnectionManagerImpl {
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(ctx.listener, `${ctx.field}.${field}`, detail, 'listener');
  };
  if (p.codecType === HttpConnectionManager_CodecType.HTTP3) fail('codec_type', 'HTTP3 downstreams are not supported');
  const codec: CodecType =
    p.codecType === HttpConnectionManager_CodecType.HTTP2 ? 'http2' : p.codecType === HttpConnectionManager_CodecType.HTTP1 ? 'http1' : 'auto';
  // HTTP filters: the router last, the others from the registry. Their stats live under http.<stat_prefix>.
  const httpStats = ctx.httpStats?.(p.statPrefix) ?? null;
  const filters = compileHttpFilters(p.httpFilters, { listener: ctx.listener, field: ctx.field, stats: httpStats?.scope, cluster: (n) => ctx.cluster(n)?.runtime, useRemoteAddress: p.useRemoteAddress === true, warn: ctx.warn });
  const disabledByDefault = filters.map((f) => f.disabledByDefault);
  let routes: RouteSource;
  let rdsName = '';
  const rs = p.routeSpecifier;
  if (rs.case === 'rds') {
    rdsName = rs.value.routeConfigName;
    if (!rdsName) fail('rds.route_config_name', 'must not be empty');
    const src = rs.value.configSource?.configSourceSpecifier.case;
    if (src !== 'ads') fail('rds.config_source', `only ADS config sources are supported (got ${src ?? 'none'})`);
    routes = ctx.rds(rdsName);
  } else if (rs.case === 'routeConfig') {
    routes = ctx.inlineRoutes(rs.value);
  } else {
    routes = fail('route_specifier', rs.case === undefined ? 'one of rds or route_config is required' : `${rs.case} is not supported`);
  }
  const h1 = p.httpProtocolOptions;
  const us = p.commonHttpProtocolOptions?.headersWithUnderscoresAction;
  const parserOptions: H1RequestParserOptions = {
    acceptHttp10: h1?.acceptHttp10 ?? false,
    defaultHostForHttp10: h1?.defaultHostForHttp10 || undefined,
    allowChunkedLength: h1?.allowChunkedLength ?? false,
    allowCustomMethods: false,
    maxHeaderBytes: (p.maxRequestHeadersKb ?? 60) * 1024,
    maxHeaderCount: p.commonHttpProtocolOptions?.maxHeadersCount ?? 100,
    headersWithUnderscores:
      us === HttpProtocolOptions_HeadersWithUnderscoresAction.REJECT_REQUEST
        ? 'reject'
        : us === HttpProtocolOptions_HeadersWithUnderscoresAction.DROP_HEADER
          ? 'drop'
          : 'allow',
  };
  const h2p = p.http2ProtocolOptions;
  const h2Options: H2ServerOptions = {
    maxConcurrentStreams: h2p?.maxConcurrentStreams ?? DEFAULT_H2_SERVER_OPTIONS.maxConcurrentStreams,
    initialStreamWindowSize: h2p?.initialStreamWindowSize ?? DEFAULT_H2_SERVER_OPTIONS.initialStreamWindowSize,
    initialConnectionWindowSize: h2p?.initialConnectionWindowSize ?? DEFAULT_H2_SERVER_OPTIONS.initialConnectionWindowSize,
    maxHeaderListSize: parserOptions.maxHeaderBytes ?? DEFAULT_H2_SERVER_OPTIONS.maxHeaderListSize,
    maxHeaderListPairs: parserOptions.maxHeaderCount ?? DEFAULT_H2_SERVER_OPTIONS.maxHeaderListPairs,
  };
  if (h2Options.maxConcurrentStreams < 1) fail('http2_protocol_options.max_concurrent_streams', 'must be at least 1');
  if (h2Options.initialStreamWindowSize < 65535) fail('http2_protocol_options.initial_stream_window_size', 'must be at least 65535');
  if (h2Options.initialConnectionWindowSize < 65535) fail('http2_protocol_options.initial_connection_window_size', 'must be at least 65535');
  const sht = p.serverHeaderTransformation;
  const serverPolicy: ServerHeaderPolicy = {
    serverName: p.serverName || DEFAULT_SERVER_NAME,
    serverHeader:
      sht === HttpConnectionManager_ServerHeaderTransformation.APPEND_IF_ABSENT
        ? 'APPEND_IF_ABSENT'
        : sht === HttpConnectionManager_ServerHeaderTransformation.PASS_THROUGH
          ? 'PASS_THROUGH'
          : 'OVERWRITE',
  };
  // Upgrades (upgrade_configs): types compared case-insensitively; CONNECT tunnelling and upgrade filter chains are
  // not supported.
  const upgrades = new Map<string, boolean>();
  p.upgradeConfigs.forEach((u, i) => {
    const type = u.upgradeType.toLowerCase();
    if (type === '') fail(`upgrade_configs[${i}].upgrade_type`, 'must not be empty');
    if (type === 'connect' || type === 'connect-udp') fail(`upgrade_configs[${i}].upgrade_type`, `${u.upgradeType} tunnelling is not supported`);
    if (u.filters.length > 0) fail(`upgrade_configs[${i}].filters`, 'upgrade-specific filter chains are not supported');
    if (upgrades.has(type)) fail(`upgrade_configs[${i}].upgrade_type`, `duplicate upgrade type ${u.upgradeType}`);
    upgrades.set(type, u.enabled ?? true);
  });
  const common = p.commonHttpProtocolOptions;
  if (common?.maxStreamDuration !== undefined) fail('common_http_protocol_options.max_stream_duration', 'is not supported');
  const timeouts: ConnectionTimeouts = {
    requestHeadersMs: durationMs(p.requestHeadersTimeout, DEFAULT_REQUEST_HEADERS_TIMEOUT_MS),
    streamIdleMs: durationMs(p.streamIdleTimeout, DEFAULT_STREAM_IDLE_TIMEOUT_MS),
    requestMs: durationMs(p.requestTimeout, 0),
    idleMs: durationMs(common?.idleTimeout, DEFAULT_CONNECTION_IDLE_TIMEOUT_MS),
    maxConnectionDurationMs: durationMs(common?.maxConnectionDuration, 0),
    drainMs: durationMs(p.drainTimeout, DEFAULT_DRAIN_TIMEOUT_MS),
  };
  const hcm = new HttpConnectionManagerImpl(
    routes,
    ctx.cluster,
    rdsName,
    p.useRemoteAddress === true,
    p.generateRequestId ?? true,
    p.preserveExternalRequestId,
    parserOptions,
    serverPolicy,
    httpStats,
    filters,
    disabledByDefault,
    codec,
    h2Options,
  );
  hcm.timeouts = timeouts;
  hcm.upgrades = upgrades;
  hcm.normalizePath = p.normalizePath === true;
  hcm.mergeSlashes = p.mergeSlashes;
  hcm.xfcc = compileXfcc(p);
  hcm.telemetry = compileHttpTelemetry(p, { ...(ctx.telemetry ?? NO_TELEMETRY_CONTEXT), listener: ctx.listener, field: ctx.field });
  return hcm;
}
