/**
 * Istio's standard request metrics, as the telemetry reads them: `istio_requests_total` (counter) and the
 * `istio_request_duration_milliseconds` histogram, with Istio's labels (reporter, source_workload,
 * source_workload_namespace, source_app, destination_service, destination_service_name,
 * destination_service_namespace, destination_workload, destination_workload_namespace, destination_app,
 * destination_version, response_code, response_flags, connection_security_policy, ...).
 *
 * A *series* here is one (reporter, caller workload, destination service, destination workload) combination —
 * the labels an edge of the mesh graph is made of; the other labels (response code and flags, mTLS policy,
 * protocol, `le`) are folded into its `RequestStats`. Sidecar scrapes (cumulative, `snapshotOf` then `diffSeries`)
 * and Prometheus `increase(...)` queries (already deltas) both end up as a `SeriesSet` of deltas over the window,
 * which `golden` summarises.
 */
import { histogramQuantile, leOf } from './prometheus-text.js';
import type { PromSample } from './prometheus-text.js';

export const REQUESTS_TOTAL = 'istio_requests_total';
export const REQUEST_DURATION = 'istio_request_duration_milliseconds';

/** The labels a series is identified by (Istio's names). `unknown` where the reporter did not know. */
export const SERIES_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_app',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_workload',
  'destination_workload_namespace',
  'destination_app',
  'destination_version',
] as const;

export type SeriesLabel = (typeof SERIES_LABELS)[number];
export type SeriesLabels = Record<SeriesLabel, string>;

/** Requests of one series: cumulative (a scrape) or over a window (a delta). */
export interface RequestStats {
  total: number;
  /** Responses with a 5xx code (Istio's dashboards: success = response_code !~ "5.*"). */
  errors: number;
  /** Requests with connection_security_policy="mutual_tls" (only the destination reporter knows it). */
  mtls: number;
  /** Requests whose reporter knew the security policy (connection_security_policy != "unknown"). */
  mtlsKnown: number;
  /** Duration histogram: upper bound in ms (Infinity for +Inf) → cumulative count. */
  buckets: Map<number, number>;
  /** `"<response_code> <response_flags>"` → requests, for responses that are 5xx or carry response flags. */
  failures: Map<string, number>;
}

export interface Series {
  labels: SeriesLabels;
  stats: RequestStats;
}

/** Series by key (`seriesKey`). */
export type SeriesSet = Map<string, Series>;

export const emptyStats = (): RequestStats => ({ total: 0, errors: 0, mtls: 0, mtlsKnown: 0, buckets: new Map(), failures: new Map() });

/** The labels of a sample that identify its series (missing ones are `unknown`, as Istio writes them). */
export function seriesLabelsOf(labels: Record<string, string>): SeriesLabels {
  const out = {} as SeriesLabels;
  for (const k of SERIES_LABELS) out[k] = labels[k] || 'unknown';
  return out;
}

export function seriesKey(l: SeriesLabels): string {
  return SERIES_LABELS.map((k) => l[k]).join('\u001f');
}

function seriesOf(set: SeriesSet, labels: Record<string, string>): RequestStats {
  const l = seriesLabelsOf(labels);
  const k = seriesKey(l);
  let s = set.get(k);
  if (!s) set.set(k, (s = { labels: l, stats: emptyStats() }));
  return s.stats;
}

/** Adds one `istio_requests_total` sample (or an increase of it) to its series. */
export function addRequests(set: SeriesSet, labels: Record<string, string>, value: number): void {
  if (!(value > 0)) return;
  const st = seriesOf(set, labels);
  const code = labels['response_code'] ?? '';
  const flags = labels['response_flags'] ?? '-';
  st.total += value;
  if (code.startsWith('5')) st.errors += value;
  const policy = labels['connection_security_policy'] ?? 'unknown';
  if (policy !== 'unknown') st.mtlsKnown += value;
  if (policy === 'mutual_tls') st.mtls += value;
  if (code.startsWith('5') || (flags !== '-' && flags !== '')) {
    const f = `${code || '0'} ${flags || '-'}`;
    st.failures.set(f, (st.failures.get(f) ?? 0) + value);
  }
}

/** Adds one `istio_request_duration_milliseconds_bucket` sample (or an increase of it) to its series. */
export function addBucket(set: SeriesSet, labels: Record<string, string>, value: number): void {
  const le = leOf(labels['le']);
  if (Number.isNaN(le) || !(value >= 0)) return;
  const st = seriesOf(set, labels);
  st.buckets.set(le, (st.buckets.get(le) ?? 0) + value);
}

/** The Istio request series of one scrape (cumulative counters). Other metrics are ignored. */
export function snapshotOf(samples: readonly PromSample[]): SeriesSet {
  const set: SeriesSet = new Map();
  for (const s of samples) {
    if (s.name === REQUESTS_TOTAL) addRequests(set, s.labels, s.value);
    else if (s.name === `${REQUEST_DURATION}_bucket`) addBucket(set, s.labels, s.value);
  }
  return set;
}

function diffMap(later: Map<number, number> | Map<string, number>, earlier: Map<unknown, number> | undefined): Map<never, number> {
  const out = new Map<unknown, number>();
  for (const [k, v] of later as Map<unknown, number>) {
    const d = v - (earlier?.get(k) ?? 0);
    if (d > 0) out.set(k, d);
  }
  return out as Map<never, number>;
}

/** `later - earlier`; a series whose count went down (its proxy restarted) counts from zero. */
export function diffStats(later: RequestStats, earlier: RequestStats | undefined): RequestStats {
  if (!earlier || later.total < earlier.total) return { ...later, buckets: new Map(later.buckets), failures: new Map(later.failures) };
  return {
    total: later.total - earlier.total,
    errors: Math.max(0, later.errors - earlier.errors),
    mtls: Math.max(0, later.mtls - earlier.mtls),
    mtlsKnown: Math.max(0, later.mtlsKnown - earlier.mtlsKnown),
    buckets: diffMap(later.buckets, earlier.buckets),
    failures: diffMap(later.failures, earlier.failures),
  };
}

/** What happened between two scrapes of one proxy. */
export function diffSeries(later: SeriesSet, earlier: SeriesSet | undefined): SeriesSet {
  const out: SeriesSet = new Map();
  for (const [k, s] of later) {
    const d = diffStats(s.stats, earlier?.get(k)?.stats);
    if (d.total > 0) out.set(k, { labels: s.labels, stats: d });
  }
  return out;
}

/** Adds `b` into `a`. */
export function addStats(a: RequestStats, b: RequestStats): void {
  a.total += b.total;
  a.errors += b.errors;
  a.mtls += b.mtls;
  a.mtlsKnown += b.mtlsKnown;
  for (const [le, v] of b.buckets) a.buckets.set(le, (a.buckets.get(le) ?? 0) + v);
  for (const [f, v] of b.failures) a.failures.set(f, (a.failures.get(f) ?? 0) + v);
}

/** Golden metrics of some requests over a window. */
export interface Golden {
  /** Requests per second. */
  rps: number;
  /** Non-5xx share, 0..1 (absent without requests). */
  successRate?: number;
  /** Latency percentiles in ms, from the duration histogram (absent without observations). */
  p50?: number;
  p90?: number;
  p99?: number;
  /** Share of the requests received over mutual TLS, 0..1 (absent when no destination proxy reported them). */
  mtls?: number;
}

const r = (v: number | undefined, scale: number): number | undefined => (v === undefined ? undefined : Math.round(v * scale) / scale);

export function golden(st: RequestStats, seconds: number): Golden {
  const g: Golden = { rps: seconds > 0 ? Math.round((st.total / seconds) * 1000) / 1000 : 0 };
  if (st.total > 0) g.successRate = r((st.total - st.errors) / st.total, 10_000);
  const p50 = histogramQuantile(0.5, st.buckets);
  if (p50 !== undefined) {
    g.p50 = r(p50, 100);
    g.p90 = r(histogramQuantile(0.9, st.buckets), 100);
    g.p99 = r(histogramQuantile(0.99, st.buckets), 100);
  }
  if (st.mtlsKnown > 0) g.mtls = r(st.mtls / st.mtlsKnown, 10_000);
  return g;
}

/**
 * One series per request path: when both proxies of a call reported it (reporter source and destination, same
 * caller, service and destination workload), the destination's report is kept — it knows the security policy and
 * the workload that served — and the source's dropped, so no request is counted twice. Requests that never reached
 * a workload (a 503 UH, a fault injected by the caller's proxy) only have the source's report, which stays.
 */
export function dedupeReporters(set: SeriesSet | Iterable<Series>): Series[] {
  const byPath = new Map<string, Series>();
  for (const s of set instanceof Map ? set.values() : set) {
    const k = seriesKey({ ...s.labels, reporter: '' });
    const prev = byPath.get(k);
    if (!prev || (prev.labels.reporter !== 'destination' && s.labels.reporter === 'destination')) byPath.set(k, s);
  }
  return [...byPath.values()];
}
