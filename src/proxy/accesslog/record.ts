/**
 * What one HTTP stream did, for its access log lines and its span: the telemetry hook of an HTTP connection
 * manager. A connection manager with neither access logs nor tracing has no `HttpTelemetry` and its streams no
 * record: nothing is allocated or counted per request then.
 *
 *   const t = compileHttpTelemetry(hcmProto, ctx);        // null when access_log is empty and tracing is off
 *   stream.record = t.begin(stream);                       // HCM, per request, after x-request-id (starts the span)
 *   rec.route = decision;                                  // HCM: the route (ROUTE_NAME, the cluster)
 *   rec.attempt(host, n); rec.upstreamRequest(head);       // router: per upstream attempt
 *   rec.attemptStatus = status;                            // router: what that attempt answered
 *   rec.responseHead(head)                                 // downstream codec (bytes: the stream's counters)
 *   rec.end();                                             // downstream codec, once, when the stream is over
 *
 * A record is the stream's FormatVars (it extends route-path/stream-vars.ts, which the router also fills in for
 * header formatting), so access log formats and header templates read the same values. `end()` writes the access
 * log lines (accesslog/access-log.ts) and finishes the span (tracing/tracer.ts).
 */
import type { HttpConnectionManager } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import type { ResponseHead, HeaderList } from '../http/headers.js';
import type { FormatRoute } from '../http/router/formatter.js';
import { StreamVars } from '../http/route-path/stream-vars.js';
import type { DownstreamStream } from '../http/server/connection.js';
import { peerOf } from '../tls/peer.js';
import type { Host } from '../upstream/cluster/host.js';
import { compileTracing, type Tracer, type TracingContext } from '../tracing/tracer.js';
import type { Span } from '../tracing/span.js';
import { compileAccessLogs, type AccessLogs } from './access-log.js';

const NO_ROUTE: FormatRoute = Object.freeze({ routeName: '', cluster: '' });

/** The access logs and tracer of one connection manager. */
export class HttpTelemetry {
  constructor(
    readonly logs: AccessLogs | null,
    readonly tracer: Tracer | null,
    readonly useRemoteAddress: boolean,
    /** The router's start_child_span: a CLIENT span per upstream attempt. */
    readonly childSpans: boolean,
  ) {}

  /** Per request, once its x-request-id is settled: the record, with the span started and propagated. */
  begin(stream: DownstreamStream): StreamRecord {
    const r = new StreamRecord(stream, this);
    if (this.tracer !== null) r.span = this.tracer.start(stream.head, stream.startMs);
    return r;
  }
}

export class StreamRecord extends StreamVars {
  /** Body bytes received and sent downstream: the stream counts them (connection.ts, h2-connection.ts). */
  get bytesReceived(): number {
    return this.stream.bytesReceived;
  }
  get bytesSent(): number {
    return this.stream.bytesSent;
  }
  /** The response head written downstream (upstream's or a local reply), and when. */
  response: ResponseHead | null = null;
  responseStartMs = 0;
  endMs = 0;
  /** The route chosen (undefined: none matched). */
  route: FormatRoute | undefined = undefined;
  upstreamRequestAttemptCount = 0;
  /** Router: the status the current upstream attempt answered (0: none yet). */
  attemptStatus = 0;
  span: Span | null = null;
  private child: Span | null = null;
  private childCluster = '';
  private ended = false;

  constructor(
    stream: DownstreamStream,
    private readonly telemetry: HttpTelemetry,
  ) {
    super(stream, telemetry.useRemoteAddress);
  }

  /** Downstream codec: the response head is being written. */
  responseHead(resp: ResponseHead): void {
    this.response = resp;
    this.responseStartMs = Date.now();
  }

  /** Router: an upstream attempt chose `host`. */
  attempt(host: Host, n: number): void {
    this.host = host;
    this.upstreamRequestAttemptCount = n;
  }

  /** Router: an attempt's request head is about to be sent (start_child_span: a span of its own). */
  upstreamRequest(h: HeaderList, cluster: string): void {
    const t = this.telemetry;
    if (!t.childSpans || t.tracer === null || this.span === null) return;
    this.endChild(this.attemptStatus);
    this.attemptStatus = 0;
    this.child = t.tracer.startChild(this.span, h, cluster, Date.now());
    this.childCluster = cluster;
  }

  private endChild(status: number): void {
    const c = this.child;
    if (c === null) return;
    this.child = null;
    const h = this.host;
    this.telemetry.tracer!.finishChild(c, this.childCluster, status, h !== null ? `${h.address}:${h.port}` : undefined, Date.now());
  }

  get durationMs(): number | undefined {
    return this.endMs === 0 ? undefined : Math.round(this.endMs - this.stream.startMs);
  }

  get responseDurationMs(): number | undefined {
    return this.responseStartMs === 0 ? undefined : Math.round(this.responseStartMs - this.stream.startMs);
  }

  get responseCodeDetails(): string | undefined {
    const d = this.stream.details;
    if (d !== '') return d;
    return this.upstreamSocket !== null ? 'via_upstream' : undefined;
  }

  get upstreamCluster(): string | undefined {
    return this.route?.cluster || undefined;
  }

  get requestedServerName(): string | undefined {
    return peerOf(this.stream.socket).sni || undefined;
  }

  get downstreamPeerUriSan(): string | undefined {
    return peerOf(this.stream.socket).principal || undefined;
  }

  /** The stream is over (response complete, or reset): log and finish the span. Runs once. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.endMs = Date.now();
    const t = this.telemetry;
    const head = this.stream.head;
    const resp = this.response;
    if (t.logs !== null) t.logs.log(head, resp, this, this.route ?? NO_ROUTE);
    const span = this.span;
    if (span !== null && t.tracer !== null) {
      const status = resp !== null ? resp.status : 0;
      this.endChild(this.attemptStatus !== 0 ? this.attemptStatus : status);
      const h = this.host;
      t.tracer.finish(
        span,
        head,
        {
          status,
          flags: this.stream.flags,
          bytesReceived: this.bytesReceived,
          bytesSent: this.bytesSent,
          upstreamCluster: this.route?.cluster ?? '',
          upstreamAddress: h !== null ? `${h.address}:${h.port}` : undefined,
          peerAddress: this.downstreamRemoteAddress,
          peerPrincipal: peerOf(this.stream.socket).principal,
          operation: undefined,
        },
        this.endMs,
      );
    }
  }
}

export interface HttpTelemetryContext extends Omit<TracingContext, 'field'> {
  field: string;
}

/**
 * The telemetry of an HttpConnectionManager: its access_log list and its tracing. Null when it has neither.
 * Throws ConfigError naming the field.
 */
export function compileHttpTelemetry(p: HttpConnectionManager, ctx: HttpTelemetryContext): HttpTelemetry | null {
  const logs = compileAccessLogs(p.accessLog, { listener: ctx.listener, field: `${ctx.field}.access_log` });
  const tracer = compileTracing(p.tracing, ctx);
  if (logs === null && tracer === null) return null;
  return new HttpTelemetry(logs, tracer, p.useRemoteAddress === true, tracer !== null && routerStartsChildSpans(p));
}

function routerStartsChildSpans(p: HttpConnectionManager): boolean {
  const last = p.httpFilters[p.httpFilters.length - 1];
  if (last === undefined || last.configType.case !== 'typedConfig') return false;
  const any = last.configType.value;
  if (typeNameOf(any.typeUrl) !== RouterSchema.typeName) return false;
  try {
    return unpack(RouterSchema, any).startChildSpan;
  } catch {
    return false; // the filter chain's own compilation reports an undecodable router
  }
}
