/**
 * Golden metrics for the dashboard, computed from the sidecars' own Envoy stats (no Prometheus needed): request
 * rate, success rate and latency percentiles per workload, per service and per call edge.
 *
 *   const samples = parsePrometheusText(await (await fetch(`http://127.0.0.1:${admin}/stats/prometheus?filter=${STATS_FILTER}`)).text());
 *   const snap = snapshotOf(samples, Date.now());                 // cumulative counters of one sidecar
 *   window.add(key, snap); const d = window.delta(key);           // what happened over the last few scrapes
 *   golden(d.inbound, d.seconds)                                  // { rps, successRate, p50, p99 }
 *
 * What is read (Envoy's names, as `weft proxy` renders them on /stats/prometheus, src/proxy/stats):
 * - **Inbound** (what a workload served, whoever called it, also from outside the mesh): the HTTP connection
 *   managers whose stat prefix starts with `inbound_` — `envoy_http_downstream_rq_xx{envoy_response_code_class}`
 *   and the `envoy_http_downstream_rq_time` histogram (ms, request head to end of stream).
 * - **Outbound** (calls a workload made, per destination cluster `outbound|PORT|SUBSET|FQDN`):
 *   `envoy_cluster_upstream_rq_xx{envoy_response_code_class}` and the `envoy_cluster_upstream_rq_time` histogram.
 *
 * Success rate is Istio's "non-5xx / all" (as Kiali and `istioctl dashboard` compute it from
 * istio_requests_total). Percentiles are Prometheus' histogram_quantile over the bucket deltas of the window
 * (linear interpolation inside the bucket, the lower bound of the first bucket being 0).
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The RE2 filter for a sidecar's `/stats` that keeps only what the dashboard reads (full Envoy stat names). */
export const STATS_FILTER = '(downstream_rq_[1-5]xx|downstream_rq_time|upstream_rq_[1-5]xx|upstream_rq_time)$';

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the Prometheus text exposition format; comment lines and malformed lines are skipped. */
export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line.trim());
    if (!m) continue;
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Cumulative request counters of one direction: total, 5xx, and the latency histogram's cumulative buckets. */
export interface RequestCounters {
  total: number;
  errors: number;
  /** upper bound (ms, Infinity for +Inf) → cumulative count. */
  buckets: Map<number, number>;
}

export interface Snapshot {
  /** ms since the epoch. */
  at: number;
  inbound: RequestCounters;
  /** By outbound cluster name. */
  outbound: Map<string, RequestCounters>;
}

const emptyCounters = (): RequestCounters => ({ total: 0, errors: 0, buckets: new Map() });

function addTo(c: RequestCounters, s: PromSample, kind: 'xx' | 'bucket'): void {
  if (kind === 'xx') {
    c.total += s.value;
    if (s.labels['envoy_response_code_class'] === '5') c.errors += s.value;
    return;
  }
  const le = s.labels['le'] === '+Inf' ? Infinity : Number(s.labels['le']);
  if (!Number.isNaN(le)) c.buckets.set(le, (c.buckets.get(le) ?? 0) + s.value);
}

/** One sidecar's cumulative counters from its /stats/prometheus samples. */
export function snapshotOf(samples: readonly PromSample[], at: number): Snapshot {
  const snap: Snapshot = { at, inbound: emptyCounters(), outbound: new Map() };
  for (const s of samples) {
    const prefix = s.labels['envoy_http_conn_manager_prefix'];
    if (prefix !== undefined && prefix.startsWith('inbound_')) {
      if (s.name === 'envoy_http_downstream_rq_xx') addTo(snap.inbound, s, 'xx');
      else if (s.name === 'envoy_http_downstream_rq_time_bucket') addTo(snap.inbound, s, 'bucket');
      continue;
    }
    const cluster = s.labels['envoy_cluster_name'];
    if (cluster !== undefined && cluster.startsWith('outbound|')) {
      const kind = s.name === 'envoy_cluster_upstream_rq_xx' ? 'xx' : s.name === 'envoy_cluster_upstream_rq_time_bucket' ? 'bucket' : undefined;
      if (!kind) continue;
      let c = snap.outbound.get(cluster);
      if (!c) snap.outbound.set(cluster, (c = emptyCounters()));
      addTo(c, s, kind);
    }
  }
  return snap;
}

/** `later - earlier`; a counter that went down (the sidecar restarted) counts from 0. */
export function diffCounters(later: RequestCounters, earlier: RequestCounters | undefined): RequestCounters {
  if (!earlier || later.total < earlier.total) return { total: later.total, errors: later.errors, buckets: new Map(later.buckets) };
  const buckets = new Map<number, number>();
  for (const [le, v] of later.buckets) buckets.set(le, Math.max(0, v - (earlier.buckets.get(le) ?? 0)));
  return { total: later.total - earlier.total, errors: Math.max(0, later.errors - earlier.errors), buckets };
}

/** Sums counters (several replicas of a service, several sources of an edge). */
export function sumCounters(list: Iterable<RequestCounters>): RequestCounters {
  const out = emptyCounters();
  for (const c of list) {
    out.total += c.total;
    out.errors += c.errors;
    for (const [le, v] of c.buckets) out.buckets.set(le, (out.buckets.get(le) ?? 0) + v);
  }
  return out;
}

/** Prometheus' histogram_quantile over cumulative buckets; undefined without samples. */
export function quantile(q: number, buckets: Map<number, number>): number | undefined {
  const sorted = [...buckets.entries()].sort((a, b) => a[0] - b[0]);
  const count = sorted.at(-1)?.[1] ?? 0;
  if (count <= 0) return undefined;
  const rank = q * count;
  let prevLe = 0;
  let prevCount = 0;
  for (const [le, cum] of sorted) {
    if (cum >= rank) {
      if (le === Infinity) return prevLe;
      if (cum === prevCount) return le;
      return prevLe + ((le - prevLe) * (rank - prevCount)) / (cum - prevCount);
    }
    prevLe = le;
    prevCount = cum;
  }
  return prevLe;
}

export interface Golden {
  /** Requests per second over the window. */
  rps: number;
  /** Non-5xx share of the requests (undefined without requests). */
  successRate: number | undefined;
  /** Latency percentiles in ms (undefined without requests). */
  p50: number | undefined;
  p99: number | undefined;
}

export function golden(c: RequestCounters, seconds: number): Golden {
  return {
    rps: seconds > 0 ? c.total / seconds : 0,
    successRate: c.total > 0 ? (c.total - c.errors) / c.total : undefined,
    p50: quantile(0.5, c.buckets),
    p99: quantile(0.99, c.buckets),
  };
}

export interface WindowDelta {
  seconds: number;
  inbound: RequestCounters;
  outbound: Map<string, RequestCounters>;
}

/**
 * The last snapshots of every scraped sidecar, and what changed between the oldest one inside the window and the
 * newest. A key (a sidecar) not scraped again is dropped after `windowMs`.
 */
export class SnapshotWindow {
  readonly #series = new Map<string, Snapshot[]>();
  constructor(readonly windowMs = 10_000) {}

  add(key: string, snap: Snapshot): void {
    let s = this.#series.get(key);
    if (!s) this.#series.set(key, (s = []));
    s.push(snap);
    // Keep the newest snapshot at or before the window's start as the base, and everything after it.
    while (s.length > 2 && s[1]!.at <= snap.at - this.windowMs) s.shift();
  }

  /** Forgets keys whose newest snapshot is older than the window (sidecars that went away). */
  prune(now: number): void {
    for (const [k, s] of this.#series) if ((s.at(-1)?.at ?? 0) < now - this.windowMs) this.#series.delete(k);
  }

  delta(key: string): WindowDelta | undefined {
    const s = this.#series.get(key);
    if (!s || s.length < 2) return undefined;
    const first = s[0]!;
    const last = s.at(-1)!;
    const outbound = new Map<string, RequestCounters>();
    for (const [cluster, c] of last.outbound) outbound.set(cluster, diffCounters(c, first.outbound.get(cluster)));
    return { seconds: (last.at - first.at) / 1000, inbound: diffCounters(last.inbound, first.inbound), outbound };
  }
}

/** `outbound|9080|v1|reviews.bookinfo.svc.cluster.local` → { port, subset, host, service, namespace }. */
export function parseOutboundCluster(name: string): { port: number; subset: string; host: string; service: string; namespace: string } | undefined {
  const parts = name.split('|');
  if (parts.length !== 4 || parts[0] !== 'outbound') return undefined;
  const host = parts[3]!;
  const labels = host.split('.');
  return { port: Number(parts[1]), subset: parts[2]!, host, service: labels[0]!, namespace: labels.length > 2 && labels[2] === 'svc' ? labels[1]! : '' };
}
