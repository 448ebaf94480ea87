/**
 * The HTTP connection manager (envoy.filters.network.http_connection_manager) for HTTP/1.1 downstreams:
 * compiled once from its proto, then `onRequest(stream)` runs per request.
 *
 *   const hcm = compileHcm(proto, { listener, field, routes, clusters });   // throws ConfigError → NACK
 *   new H1ServerConnection(socket, hcm, hcm.parserOptions, hcm.serverPolicy, onClose);
 *
 * Per request, in Envoy's order (ConnectionManagerUtility::mutateRequestHeaders, then the router filter):
 * - x-forwarded-proto set to the connection's scheme when absent;
 * - x-forwarded-for: the client address appended only with use_remote_address (the sidecar's outbound HCM has it
 *   off, as Istio sets it: the header passes unchanged);
 * - x-request-id: generated (UUID v4) when absent and generate_request_id is on (default); an external request
 *   (use_remote_address and not from a trusted address) gets a new one unless preserve_external_request_id;
 * - route lookup in the route configuration (inline route_config, or RDS by name: the latest accepted version
 *   is read per request, so an RDS update applies to the next request and never to one in flight);
 *   no route → 404 NR; redirect / direct response → local answer; unknown cluster → cluster_not_found_response_code
 *   (503) NC; otherwise header mutations, path rewrite, then the upstream request (route-path/upstream-request.ts).
 * HTTP filters: `envoy.filters.http.router` (required, last); `envoy.filters.http.fault` and
 * `envoy.filters.http.cors` are accepted and pass requests through unchanged in this version (their per-route
 * configurations are reported once, see `warnings`); any other filter is a ConfigError unless is_optional.
 * Downstream codecs (codec_type, see serve.ts): AUTO (HTTP/1.1, or HTTP/2 when the connection starts with the
 * HTTP/2 preface or ALPN chose h2), HTTP1, HTTP2; HTTP3 is a ConfigError. http2_protocol_options gives the HTTP/2
 * settings (max_concurrent_streams, initial stream and connection windows); max_request_headers_kb and
 * max_headers_count limit header blocks of both codecs; common_http_protocol_options.idle_timeout closes idle
 * HTTP/2 connections (default 1 h).
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
import { RouterRequest, type UpstreamCluster } from '../route-path/upstream-request.js';
import type { DownstreamStream, ServerHeaderPolicy } from './connection.js';
import { DEFAULT_H2_SERVER_OPTIONS, type H2ServerOptions } from './h2-connection.js';
import type { CodecType, HttpServerConfig } from './serve.js';
import { durationToMs } from '../../upstream/pool/types.js';
import type { HttpConnStats } from '../../stats/request-stats.js';

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
   * The stats of this connection manager (`http.<stat_prefix>.`), created when it is compiled; called once, after
   * the configuration compiled. Absent: no stats are kept.
   */
  httpStats?(statPrefix: string): HttpConnStats;
}

const ROUTER = 'envoy.filters.http.router';
const PASS_THROUGH_FILTERS = new Map([
  ['envoy.filters.http.fault', 'envoy.extensions.filters.http.fault.v3.HTTPFault'],
  ['envoy.filters.http.cors', 'envoy.extensions.filters.http.cors.v3.Cors'],
]);
const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router';

export class HttpConnectionManagerImpl implements HttpServerConfig {
  readonly parserOptions: H1RequestParserOptions;
  readonly serverPolicy: ServerHeaderPolicy;
  /** RDS name, '' for an inline route configuration. */
  readonly rdsName: string;

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
    readonly codec: CodecType = 'auto',
    readonly h2Options: H2ServerOptions = DEFAULT_H2_SERVER_OPTIONS,
  ) {
    this.rdsName = rdsName;
    this.parserOptions = parserOptions;
    this.serverPolicy = serverPolicy;
  }

  onRequest(stream: DownstreamStream): void {
    const head = stream.head;
    const h = head.headers;
    if (!hasHeader(h, 'x-forwarded-proto')) h.push('x-forwarded-proto', head.scheme);
    if (this.useRemoteAddress) appendXff(h, stream.remoteAddress);
    if (this.generateRequestId) {
      const external = this.useRemoteAddress && !isLoopback(stream.remoteAddress);
      if (!hasHeader(h, 'x-request-id')) h.push('x-request-id', randomUUID());
      else if (external && !this.preserveExternalRequestId) setFirst(h, 'x-request-id', randomUUID());
    }
    const rc = this.routes.current;
    const d = rc?.route(head);
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
    const cluster = d.cluster === '' ? undefined : this.clusters(d.cluster);
    if (cluster === undefined) {
      stream.localReply(d.clusterNotFoundStatus, '', 'NC', 'cluster_not_found');
      return;
    }
    applyRequestHeaders(d, head);
    rewritePath(d, head, true);
    new RouterRequest(stream, d, cluster).start();
  }
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
  // HTTP filters: router last; fault and cors pass through.
  const filters = p.httpFilters;
  if (filters.length === 0) fail('http_filters', 'must end with envoy.filters.http.router');
  filters.forEach((f, i) => {
    const type = f.configType.case === 'typedConfig' ? typeNameOf(f.configType.value.typeUrl) : undefined;
    const last = i === filters.length - 1;
    if (f.name === ROUTER || type === ROUTER_TYPE) {
      if (!last) fail(`http_filters[${i}]`, 'the router filter must be the last HTTP filter');
      return;
    }
    if (last) fail(`http_filters[${i}]`, `the last HTTP filter must be ${ROUTER}, got ${f.name}`);
    const known = PASS_THROUGH_FILTERS.get(f.name);
    if (known !== undefined && (type === undefined || type === known)) return;
    if (f.isOptional) {
      ctx.warn(`${ctx.field}.http_filters[${i}]: optional filter ${f.name} is not supported and is skipped`);
      return;
    }
    fail(`http_filters[${i}]`, `HTTP filter ${f.name}${type ? ` (${type})` : ''} is not supported`);
  });
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
    idleTimeoutMs: durationToMs(p.commonHttpProtocolOptions?.idleTimeout) ?? DEFAULT_H2_SERVER_OPTIONS.idleTimeoutMs,
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
  return new HttpConnectionManagerImpl(
    routes,
    ctx.cluster,
    rdsName,
    p.useRemoteAddress === true,
    p.generateRequestId ?? true,
    p.preserveExternalRequestId,
    parserOptions,
    serverPolicy,
    ctx.httpStats?.(p.statPrefix) ?? null,
    codec,
    h2Options,
  );
}
