/**
 * The tracing of one HTTP connection manager (its `tracing` field), compiled once per listener update.
 *
 *   const tracer = compileTracing(hcm.tracing, ctx);    // null when the HCM has no tracing or no provider
 *   const span = tracer.start(stream.head, startMs);     // per request: decide, open the span, inject the context
 *   tracer.finish(span, record);                         // at stream end: tags, end time, queued for export
 *
 * Providers (tracing.provider.typed_config): envoy.config.trace.v3.ZipkinConfig (collector_cluster,
 * collector_endpoint, collector_endpoint_version HTTP_JSON, collector_hostname, trace_id_128bit) and
 * envoy.config.trace.v3.OpenTelemetryConfig with an http_service (http_uri: cluster, path of the uri, timeout;
 * service_name). OTLP over gRPC (grpc_service), Zipkin's HTTP_PROTO / GRPC versions, resource detectors and samplers
 * are ConfigErrors naming the field.
 *
 * Sampling, as Envoy's ConnectionManagerUtility and tracers decide it:
 * - the x-request-id (a UUID) carries the trace decision in its 15th character (Envoy's UUID request id extension:
 *   `9` sampled, `a` forced, `b` client): a request arriving with a decision keeps it;
 * - otherwise `x-envoy-force-trace` forces the trace, else random_sampling (a Percent, default 100) decides with
 *   the first 8 hex digits of x-request-id modulo 10,000 (so every proxy on the path, and a retry, decides the
 *   same) and a sampled request gets `9` written into its x-request-id; overall_sampling is applied on top;
 * - a sampling flag in the caller's trace headers (traceparent flags, x-b3-sampled, b3) wins over that decision,
 *   both ways.
 * The span continues the caller's trace (its span is the parent) or starts a new one. Spans that are not sampled
 * are still propagated (with the not-sampled flag) but never exported. The span's kind follows the listener's
 * traffic direction (outbound: CLIENT, inbound: SERVER) and its name is the route's decorator operation, else
 * Envoy's `ingress` / `egress`. With the router's start_child_span, each upstream attempt also gets a CLIENT span
 * (`router <cluster> egress`), child of the connection manager's span, whose context is what that attempt sends.
 *
 * Tags (Envoy's HttpTracerUtility): component, node_id, zone, guid:x-request-id, http.url (truncated to
 * max_path_tag_length, default 256), http.method, http.protocol, downstream_cluster, user_agent, peer.address,
 * request_size, response_size, http.status_code, response_flags, upstream_cluster, upstream_cluster.name,
 * upstream_address, error (true for a 5xx or no response), istio.peer_principal (Weft: the downstream's verified
 * identity, when it has one), and the custom tags (literal, request_header, environment; metadata tags are a
 * ConfigError).
 */
import type { Percent } from '../../xds/gen/envoy/type/v3/percent_pb.js';
import type { HttpConnectionManager_Tracing } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { ZipkinConfig_CollectorEndpointVersion, ZipkinConfigSchema } from '../../xds/gen/envoy/config/trace/v3/zipkin_pb.js';
import { OpenTelemetryConfigSchema } from '../../xds/gen/envoy/config/trace/v3/opentelemetry_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import { ConfigError } from '../config-error.js';
import type { RequestHead, HeaderList } from '../http/headers.js';
import { getHeader } from '../http/headers.js';
import { StatsStore, type Scope } from '../stats/store.js';
import type { Host } from '../upstream/cluster/host.js';
import { extractContext, hasB3Single, injectContext, type ContextFormat } from './context.js';
import { DEFAULT_TIMEOUT_MS, exporterFor, exporterStats, type SpanExporter } from './exporter.js';
import { OtlpHttpExporter } from './otlp.js';
import { randomId, Span, type SpanKind } from './span.js';
import { ZipkinExporter } from './zipkin.js';

const ZIPKIN_TYPE = 'envoy.config.trace.v3.ZipkinConfig';
const OTEL_TYPE = 'envoy.config.trace.v3.OpenTelemetryConfig';

/** Envoy's max_path_tag_length default. */
export const DEFAULT_MAX_PATH_TAG_LENGTH = 256;

/** The proxy itself, as its spans describe it. */
export interface LocalInfo {
  nodeId: string;
  /** The node's cluster (Zipkin's local service name). */
  cluster: string;
  /** The node's locality zone ('' when unknown). */
  zone: string;
}

export interface TracingContext {
  listener: string;
  field: string;
  /** The listener's traffic direction: outbound spans are CLIENT spans, the others SERVER spans. */
  direction: 'INBOUND' | 'OUTBOUND' | 'UNSPECIFIED';
  local: LocalInfo;
  /** A host of the named cluster (the collector), picked by its load balancer; undefined when none. */
  collectorHost(cluster: string): Host | undefined;
  /** The stats scope `tracing.<provider>.` (absent: stats kept privately). */
  statsScope?(prefix: string): Scope;
  env?: Readonly<Record<string, string | undefined>>;
}

/** What the end of a stream tells the tracer (accesslog/record.ts fills it). */
export interface FinishedStream {
  readonly status: number;
  readonly flags: string;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  readonly upstreamCluster: string;
  readonly upstreamAddress: string | undefined;
  readonly peerAddress: string | undefined;
  readonly peerPrincipal: string;
  readonly operation: string | undefined;
}

type CustomTag = { tag: string; literal?: string; header?: string; defaultValue: string };

/** The 15th character of a UUID x-request-id: Envoy's packed trace reason. */
const TRACE_BYTE = 14;
const TRACE_SAMPLED = '9';
const TRACE_FORCED = 'a';
const TRACE_CLIENT = 'b';

export class Tracer {
  constructor(
    private readonly exporter: SpanExporter,
    private readonly prefer: ContextFormat,
    /** Out of 10,000. */
    private readonly random: number,
    private readonly overall: number,
    private readonly kind: SpanKind,
    private readonly defaultName: string,
    private readonly maxPathTagLength: number,
    private readonly customTags: readonly CustomTag[],
    private readonly local: LocalInfo,
  ) {}

  /**
   * Decides, opens the request's span and writes its context into the request headers (which the router forwards).
   * Returns the span (sampled or not).
   */
  start(head: RequestHead, startMs: number): Span {
    const h = head.headers;
    const traced = this.decide(h);
    const ctx = extractContext(h, this.prefer);
    let traceId: string;
    let parentId = '';
    let sampled = traced;
    if (ctx !== null) {
      if (ctx.sampled !== undefined) sampled = ctx.sampled;
      if (ctx.traceId !== '') {
        traceId = ctx.traceId;
        parentId = ctx.spanId;
      } else traceId = randomId(16);
    } else traceId = randomId(16);
    const span = new Span(traceId, randomId(8), parentId, this.defaultName, this.kind, startMs, sampled, ctx?.traceState ?? '');
    injectContext(h, span, hasB3Single(h));
    return span;
  }

  /** A child CLIENT span for one upstream attempt (router start_child_span); its context goes in `h`. */
  startChild(parent: Span, h: HeaderList, cluster: string, startMs: number): Span {
    const s = new Span(parent.traceId, randomId(8), parent.spanId, `router ${cluster} egress`, 'CLIENT', startMs, parent.sampled, parent.traceState);
    injectContext(h, s, hasB3Single(h));
    return s;
  }

  /** Envoy's trace decision, written into x-request-id when it samples. */
  private decide(h: HeaderList): boolean {
    let at = -1;
    for (let i = 0; i < h.length; i += 2) {
      if (h[i]!.length === 12 && h[i]!.toLowerCase() === 'x-request-id') {
        at = i + 1;
        break;
      }
    }
    const rid = at >= 0 ? h[at]! : '';
    if (rid.length === 36) {
      const c = rid[TRACE_BYTE];
      if (c === TRACE_SAMPLED || c === TRACE_FORCED || c === TRACE_CLIENT) return true;
    }
    let reason = '';
    if (getHeader(h, 'x-envoy-force-trace') !== undefined) reason = TRACE_FORCED;
    else if (this.random > 0 && rid.length >= 8) {
      const n = parseInt(rid.slice(0, 8), 16);
      if (!Number.isNaN(n) && n % 10000 < this.random) reason = TRACE_SAMPLED;
    }
    if (reason === '') return false;
    if (this.overall < 10000 && Math.floor(Math.random() * 10000) >= this.overall) return false;
    if (rid.length === 36) h[at] = rid.slice(0, TRACE_BYTE) + reason + rid.slice(TRACE_BYTE + 1);
    return true;
  }

  /** Tags the span from the request and how it ended, and queues it for export (sampled spans only). */
  finish(span: Span, head: RequestHead, f: FinishedStream, endMs: number): void {
    span.endMs = endMs;
    if (!span.sampled) return;
    if (f.operation !== undefined) span.name = f.operation;
    const h = head.headers;
    const l = this.local;
    span.tag('component', 'proxy');
    span.tag('node_id', l.nodeId);
    span.tag('zone', l.zone);
    const rid = getHeader(h, 'x-request-id');
    if (rid !== undefined) span.tag('guid:x-request-id', rid);
    const path = getHeader(h, 'x-envoy-original-path') ?? head.path;
    span.tag('http.url', `${head.scheme}://${head.authority}${path.length > this.maxPathTagLength ? path.slice(0, this.maxPathTagLength) : path}`);
    span.tag('http.method', head.method);
    span.tag('http.protocol', head.httpVersion === '2' ? 'HTTP/2' : `HTTP/${head.httpVersion}`);
    span.tag('downstream_cluster', getHeader(h, 'x-envoy-downstream-service-cluster') ?? '-');
    span.tag('user_agent', getHeader(h, 'user-agent') ?? '-');
    if (f.peerAddress !== undefined) span.tag('peer.address', f.peerAddress);
    if (f.peerPrincipal !== '') span.tag('istio.peer_principal', f.peerPrincipal);
    span.tag('request_size', String(f.bytesReceived));
    span.tag('response_size', String(f.bytesSent));
    span.tag('http.status_code', String(f.status));
    span.tag('response_flags', f.flags === '' ? '-' : f.flags);
    if (f.upstreamCluster !== '') {
      span.tag('upstream_cluster', f.upstreamCluster);
      span.tag('upstream_cluster.name', f.upstreamCluster);
    }
    if (f.upstreamAddress !== undefined) span.tag('upstream_address', f.upstreamAddress);
    if (f.status === 0 || f.status >= 500) span.tag('error', 'true');
    for (const t of this.customTags) {
      const v = t.literal ?? (t.header !== undefined ? getHeader(h, t.header) : undefined) ?? t.defaultValue;
      if (v !== '') span.tag(t.tag, v);
    }
    this.exporter.push(span);
  }

  /** Ends an upstream attempt's span: its status (0: no response) and upstream address. */
  finishChild(span: Span, cluster: string, status: number, address: string | undefined, endMs: number): void {
    span.endMs = endMs;
    if (!span.sampled) return;
    span.tag('component', 'proxy');
    span.tag('upstream_cluster', cluster);
    span.tag('upstream_cluster.name', cluster);
    if (address !== undefined) span.tag('upstream_address', address);
    span.tag('http.status_code', String(status));
    if (status === 0 || status >= 500) span.tag('error', 'true');
    this.exporter.push(span);
  }
}

/** Percent (0-100, default 100) → numerator out of 10,000. */
function tenThousandths(p: Percent | undefined, field: string, fail: (f: string, d: string) => never): number {
  if (p === undefined) return 10000;
  if (!(p.value >= 0 && p.value <= 100)) fail(field, `must be between 0 and 100 (got ${p.value})`);
  return Math.round(p.value * 100);
}

/** Compiles an HCM's `tracing`; null when there is none (nothing runs per request). Throws ConfigError. */
export function compileTracing(t: HttpConnectionManager_Tracing | undefined, ctx: TracingContext): Tracer | null {
  if (t === undefined || t.provider === undefined) return null;
  const base = `${ctx.field}.tracing`;
  const fail = (f: string, detail: string): never => {
    throw new ConfigError(ctx.listener, `${base}.${f}`, detail, 'listener');
  };
  const random = tenThousandths(t.randomSampling, 'random_sampling', fail);
  const overall = tenThousandths(t.overallSampling, 'overall_sampling', fail);
  tenThousandths(t.clientSampling, 'client_sampling', fail);
  const customTags = t.customTags.map((c, i): CustomTag => {
    if (c.tag === '') fail(`custom_tags[${i}].tag`, 'must not be empty');
    switch (c.type.case) {
      case 'literal':
        return { tag: c.tag, literal: c.type.value.value, defaultValue: '' };
      case 'requestHeader':
        if (c.type.value.name === '') fail(`custom_tags[${i}].request_header.name`, 'must not be empty');
        return { tag: c.tag, header: c.type.value.name.toLowerCase(), defaultValue: c.type.value.defaultValue };
      case 'environment': {
        const env = ctx.env ?? process.env;
        return { tag: c.tag, literal: env[c.type.value.name] ?? c.type.value.defaultValue, defaultValue: '' };
      }
      default:
        return fail(`custom_tags[${i}]`, `${c.type.case ?? 'an empty'} custom tag is not supported (literal, request_header and environment are)`);
    }
  });
  const p = t.provider;
  if (p.configType.case !== 'typedConfig') return fail('provider.typed_config', 'is required');
  const any = p.configType.value;
  const type = typeNameOf(any.typeUrl);
  const pf = 'provider.typed_config';
  const decode = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return fail(pf, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const stats = (name: string) => exporterStats(ctx.statsScope?.(`tracing.${name}.`) ?? privateScope());
  let exporter: SpanExporter;
  let prefer: ContextFormat;
  if (type === ZIPKIN_TYPE) {
    const z = decode(() => unpack(ZipkinConfigSchema, any));
    if (z.collectorCluster === '') fail(`${pf}.collector_cluster`, 'must not be empty');
    if (z.collectorEndpoint === '' || !z.collectorEndpoint.startsWith('/')) fail(`${pf}.collector_endpoint`, 'must be a path starting with /');
    if (z.collectorEndpointVersion !== ZipkinConfig_CollectorEndpointVersion.HTTP_JSON) {
      fail(`${pf}.collector_endpoint_version`, `only HTTP_JSON is supported (got ${ZipkinConfig_CollectorEndpointVersion[z.collectorEndpointVersion]})`);
    }
    const cluster = z.collectorCluster;
    const pick = () => ctx.collectorHost(cluster);
    const key = `zipkin|${cluster}|${z.collectorEndpoint}|${z.collectorHostname}|${ctx.local.cluster}`;
    exporter = exporterFor(key, pick, () => new ZipkinExporter(pick, z.collectorEndpoint, z.collectorHostname, DEFAULT_TIMEOUT_MS, stats('zipkin'), ctx.local.cluster || ctx.local.nodeId));
    prefer = 'b3';
  } else if (type === OTEL_TYPE) {
    const o = decode(() => unpack(OpenTelemetryConfigSchema, any));
    if (o.grpcService !== undefined) fail(`${pf}.grpc_service`, 'OTLP over gRPC is not supported: use http_service (OTLP/HTTP)');
    if (o.resourceDetectors.length > 0) fail(`${pf}.resource_detectors`, 'is not supported');
    if (o.sampler !== undefined) fail(`${pf}.sampler`, 'is not supported');
    const hs = o.httpService;
    if (hs === undefined) return fail(`${pf}.http_service`, 'is required');
    const uri = hs.httpUri;
    if (uri === undefined) return fail(`${pf}.http_service.http_uri`, 'is required');
    if (uri.httpUpstreamType.case !== 'cluster' || uri.httpUpstreamType.value === '') return fail(`${pf}.http_service.http_uri.cluster`, 'is required');
    let url: URL;
    try {
      url = new URL(uri.uri);
    } catch {
      return fail(`${pf}.http_service.http_uri.uri`, `not a URL: ${JSON.stringify(uri.uri)}`);
    }
    if (hs.requestHeadersToAdd.length > 0) fail(`${pf}.http_service.request_headers_to_add`, 'is not supported');
    const timeoutMs = uri.timeout !== undefined ? Number(uri.timeout.seconds) * 1000 + Math.floor(uri.timeout.nanos / 1e6) : DEFAULT_TIMEOUT_MS;
    const cluster = uri.httpUpstreamType.value;
    const pick = () => ctx.collectorHost(cluster);
    const service = o.serviceName || ctx.local.cluster || ctx.local.nodeId;
    const key = `otlp|${cluster}|${url.pathname}|${url.host}|${timeoutMs}|${service}`;
    exporter = exporterFor(key, pick, () => new OtlpHttpExporter(pick, url.pathname + url.search, url.host, timeoutMs || DEFAULT_TIMEOUT_MS, stats('opentelemetry'), service));
    prefer = 'w3c';
  } else {
    return fail(pf, `tracer ${p.name || type} is not supported (only ${ZIPKIN_TYPE} and ${OTEL_TYPE})`);
  }
  const outbound = ctx.direction === 'OUTBOUND';
  return new Tracer(exporter, prefer, random, overall, outbound ? 'CLIENT' : 'SERVER', outbound ? 'egress' : 'ingress', t.maxPathTagLength ?? DEFAULT_MAX_PATH_TAG_LENGTH, customTags, ctx.local);
}

let scope: Scope | undefined;
function privateScope(): Scope {
  // Tests and embedders that give no stats store: a store of their own (the counters still count).
  return (scope ??= new StatsStore().scope(''));
}
