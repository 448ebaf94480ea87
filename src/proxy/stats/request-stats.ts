/**
 * The stats the request path updates, created once when a cluster or listener is compiled (never per request) and
 * removed with it. Each object owns one store scope; `remove()` drops its stats from the store (objects still held
 * by in-flight requests keep working, they are just no longer listed).
 *
 *   const cs = new ClusterRequestStats(store.scope(`cluster.${rt.statName}.`));
 *   cs.chargeCode(503);                   // upstream_rq_completed, upstream_rq_5xx, upstream_rq_503
 *   cs.upstream_rq_time.record(ms);       // response complete
 *
 *   const ls = new ListenerStats(store.scope(`listener.${address}_${port}.`));
 *   const hs = new HttpConnStats(store.scope(`http.${statPrefix}.`), ls);
 *   hs.connectionOpen(); hs.requestStart(); hs.responseHead(stream, resp); hs.requestEnd(stream); hs.connectionClose();
 *   hs.istio = IstioHttpStats.of(metrics, 'destination');    // Istio's standard metrics too (stats/istio)
 *
 * Names and meanings are Envoy's:
 * - cluster (CodeStatsImpl::chargeBasicResponseStat): `upstream_rq_completed`, `upstream_rq_<class>xx`,
 *   `upstream_rq_<code>` for every response (upstream or local) of a request routed to the cluster;
 *   `upstream_rq_time` (ms, upstream request start to response end). The rest of the cluster's stats
 *   (upstream_rq_total, upstream_rq_retry, upstream_rq_timeout, upstream_cx_total, upstream_cx_active, ...) are the
 *   runtime's plain-field ClusterStats, listed through `scope.addSource`.
 * - HTTP connection manager, `http.<stat_prefix>.`: downstream_cx_total / _active, downstream_cx_http1_total /
 *   _active, downstream_cx_http2_total / _active, downstream_cx_destroy, downstream_rq_total,
 *   downstream_rq_http1_total, downstream_rq_http2_total, downstream_rq_active,
 *   downstream_rq_completed and downstream_rq_<class>xx (charged when the response head is written, as
 *   ConnectionManagerImpl::ActiveStream::chargeStats), downstream_rq_time (ms, request head to stream end).
 * - listener, `listener.<address>_<port>.` (or `listener.<stat_prefix>.`): downstream_cx_total / _active,
 *   downstream_cx_destroy.
 *
 * Per-code counters (`upstream_rq_503`) are created the first time a cluster sees that code and kept in an array
 * indexed by the code: one creation per code per cluster, an array read afterwards.
 */
import type { Counter, Gauge } from './metric.js';
import { HistogramUnit, type Histogram } from './histogram.js';
import type { Scope, SourceStatKind, StatsSource } from './store.js';
import type { ResponseHead } from '../http/headers.js';
import type { DownstreamStream } from '../http/server/connection.js';
import type { IstioHttpStats } from './istio/http.js';

function classCounters(scope: Scope, prefix: string): Counter[] {
  // Index 1..5 → <prefix>1xx..<prefix>5xx; index 0 unused.
  const out: Counter[] = [];
  for (let i = 1; i <= 5; i++) out[i] = scope.counter(`${prefix}${i}xx`);
  out[0] = out[1]!;
  return out;
}

const CLASS_NAMES = ['', 'upstream_rq_1xx', 'upstream_rq_2xx', 'upstream_rq_3xx', 'upstream_rq_4xx', 'upstream_rq_5xx'];

/**
 * The counters are created by the first response (most clusters of a sidecar never see one); until then the object
 * lists them as zero (a StatsSource of its scope), so `/stats` shows the same names either way. A replaced cluster's
 * counters (still in the store) are taken at once, so their values carry over.
 */
export class ClusterRequestStats implements StatsSource {
  readonly upstream_rq_time: Histogram;
  private completed: Counter | undefined;
  private classes: Counter[] | undefined;
  /** Per-status counters, created on first use; allocated on the first response (idle clusters hold none). */
  private codes: Array<Counter | undefined> | null = null;

  constructor(readonly scope: Scope) {
    this.upstream_rq_time = scope.histogram('upstream_rq_time', HistogramUnit.Milliseconds);
    if (scope.hasCounter('upstream_rq_completed')) this.createCounters();
    else scope.addSource(this);
  }

  /** A response to a request routed to this cluster (from the upstream or a local reply). */
  chargeCode(status: number): void {
    (this.completed ?? this.createCounters()).inc();
    if (status < 100 || status >= 600) return;
    const cls = (status / 100) | 0;
    this.classes![cls]!.inc();
    const codes = (this.codes ??= new Array<Counter | undefined>(600).fill(undefined));
    let c = codes[status];
    if (c === undefined) codes[status] = c = this.scope.counter(`upstream_rq_${status}`);
    c.inc();
  }

  /** The counters not created yet, as zero. */
  forEach(cb: (name: string, value: number, kind: SourceStatKind) => void): void {
    if (this.completed !== undefined) return;
    cb('upstream_rq_completed', 0, 'counter');
    for (let i = 1; i <= 5; i++) cb(CLASS_NAMES[i]!, 0, 'counter');
  }

  private createCounters(): Counter {
    this.classes = classCounters(this.scope, 'upstream_rq_');
    return (this.completed = this.scope.counter('upstream_rq_completed'));
  }

  remove(): void {
    this.scope.remove();
  }
}

export class ListenerStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_active: Gauge;
  readonly downstream_cx_destroy: Counter;

  constructor(readonly scope: Scope) {
    this.downstream_cx_total = scope.counter('downstream_cx_total');
    this.downstream_cx_active = scope.gauge('downstream_cx_active');
    this.downstream_cx_destroy = scope.counter('downstream_cx_destroy');
  }

  remove(): void {
    this.scope.remove();
  }
}

/** The HTTP connection manager's stats (and its listener's connection counts). */
export class HttpConnStats {
  readonly downstream_cx_total: Counter;
  readonly downstream_cx_active: Gauge;
  readonly downstream_cx_http1_total: Counter;
  readonly downstream_cx_http1_active: Gauge;
  readonly downstream_cx_http2_total: Counter;
  readonly downstream_cx_http2_active: Gauge;
  readonly downstream_cx_destroy: Counter;
  readonly downstream_rq_total: Counter;
  readonly downstream_rq_http1_total: Counter;
  readonly downstream_rq_http2_total: Counter;
  readonly downstream_rq_active: Gauge;
  readonly downstream_rq_completed: Counter;
  readonly downstream_rq_time: Histogram;
  /** Timeouts and upgrades (conn_manager_impl.cc): request_headers_timeout, connection idle_timeout, stream_idle_timeout, request_timeout, max_connection_duration. */
  readonly downstream_rq_header_timeout: Counter;
  readonly downstream_cx_idle_timeout: Counter;
  readonly downstream_rq_idle_timeout: Counter;
  readonly downstream_rq_timeout: Counter;
  readonly downstream_cx_max_duration_reached: Counter;
  readonly downstream_cx_drain_close: Counter;
  readonly downstream_rq_ws_on_non_ws_route: Counter;
  readonly downstream_cx_upgrades_total: Counter;
  readonly downstream_cx_upgrades_active: Gauge;
  private readonly classes: Counter[];
  /** Istio's metrics and metadata exchange of the connection manager's direction (stats/istio/http.ts); null: none. */
  istio: IstioHttpStats | null = null;

  constructor(
    readonly scope: Scope,
    /** The listener the connection manager runs in (its connection counts are kept here too); null: none. */
    readonly listener: ListenerStats | null,
  ) {
    this.downstream_cx_total = scope.counter('downstream_cx_total');
    this.downstream_cx_active = scope.gauge('downstream_cx_active');
    this.downstream_cx_http1_total = scope.counter('downstream_cx_http1_total');
    this.downstream_cx_http1_active = scope.gauge('downstream_cx_http1_active');
    this.downstream_cx_http2_total = scope.counter('downstream_cx_http2_total');
    this.downstream_cx_http2_active = scope.gauge('downstream_cx_http2_active');
    this.downstream_cx_destroy = scope.counter('downstream_cx_destroy');
    this.downstream_rq_total = scope.counter('downstream_rq_total');
    this.downstream_rq_http1_total = scope.counter('downstream_rq_http1_total');
    this.downstream_rq_http2_total = scope.counter('downstream_rq_http2_total');
    this.downstream_rq_active = scope.gauge('downstream_rq_active');
    this.downstream_rq_completed = scope.counter('downstream_rq_completed');
    this.downstream_rq_time = scope.histogram('downstream_rq_time', HistogramUnit.Milliseconds);
    this.downstream_rq_header_timeout = scope.counter('downstream_rq_header_timeout');
    this.downstream_cx_idle_timeout = scope.counter('downstream_cx_idle_timeout');
    this.downstream_rq_idle_timeout = scope.counter('downstream_rq_idle_timeout');
    this.downstream_rq_timeout = scope.counter('downstream_rq_timeout');
    this.downstream_cx_max_duration_reached = scope.counter('downstream_cx_max_duration_reached');
    this.downstream_cx_drain_close = scope.counter('downstream_cx_drain_close');
    this.downstream_rq_ws_on_non_ws_route = scope.counter('downstream_rq_ws_on_non_ws_route');
    this.downstream_cx_upgrades_total = scope.counter('downstream_cx_upgrades_total');
    this.downstream_cx_upgrades_active = scope.gauge('downstream_cx_upgrades_active');
    this.classes = classCounters(scope, 'downstream_rq_');
  }

  connectionOpen(h2 = false): void {
    this.downstream_cx_total.inc();
    this.downstream_cx_active.inc();
    if (h2) {
      this.downstream_cx_http2_total.inc();
      this.downstream_cx_http2_active.inc();
    } else {
      this.downstream_cx_http1_total.inc();
      this.downstream_cx_http1_active.inc();
    }
    const l = this.listener;
    if (l !== null) {
      l.downstream_cx_total.inc();
      l.downstream_cx_active.inc();
    }
  }

  connectionClose(h2 = false): void {
    this.downstream_cx_active.dec();
    if (h2) this.downstream_cx_http2_active.dec();
    else this.downstream_cx_http1_active.dec();
    this.downstream_cx_destroy.inc();
    const l = this.listener;
    if (l !== null) {
      l.downstream_cx_active.dec();
      l.downstream_cx_destroy.inc();
    }
  }

  /** A request head arrived (or a codec error created a stream for its local reply). */
  requestStart(h2 = false): void {
    this.downstream_rq_total.inc();
    if (h2) this.downstream_rq_http2_total.inc();
    else this.downstream_rq_http1_total.inc();
    this.downstream_rq_active.inc();
  }

  /** The response head is about to be written (the Istio recorder may still change its headers). */
  responseHead(stream: DownstreamStream, resp: ResponseHead): void {
    const status = resp.status;
    this.downstream_rq_completed.inc();
    if (status >= 100 && status < 600) this.classes[(status / 100) | 0]!.inc();
    if (this.istio !== null) this.istio.onResponseHead(stream, resp);
  }

  /** The stream is over (response complete, or the connection closed under it). */
  requestEnd(stream: DownstreamStream): void {
    this.downstream_rq_active.dec();
    this.downstream_rq_time.record(Date.now() - stream.startMs);
    if (this.istio !== null) this.istio.record(stream);
  }

  remove(): void {
    this.scope.remove();
  }
}
