/**
 * Mesh telemetry in the control plane: golden metrics of every call in the mesh, over a sliding window, from
 * Istio's standard request metrics (istio.ts) — no Prometheus needed, Prometheus used when configured.
 *
 *   const t = new MeshTelemetry({ targets: () => cp.statsTargets() });   // or { prometheus: 'http://prom:9090' }
 *   t.start();  ...  t.window()  // { seconds, series (one per request path), recentErrors, scrapeErrors }
 *   await t.close();
 *
 * - Scrape mode (default): every `intervalMs` (2 s) each connected proxy that announced its Prometheus port (node
 *   metadata WEFT_STATS_PORT, address INSTANCE_IPS else 127.0.0.1) is read at `/stats/prometheus`, asking with
 *   Envoy's query parameters for only what is used here (SCRAPE_QUERY: stats written since start, of Istio's request
 *   count and duration families and the outbound clusters' ejection gauge) — a sidecar with 1,000 clusters answers
 *   a few lines instead of ~13 MB; each proxy keeps its snapshots of the last `windowMs` (10 s) and the window is
 *   what changed between the oldest and the newest, summed over the proxies. A proxy that does not answer is a
 *   scrape error; the others still count.
 * - Prometheus mode (`prometheus` set): each interval runs `sum by (labels) (increase(istio_requests_total[W]))`
 *   and the same over `istio_request_duration_milliseconds_bucket` through the HTTP query API; the answers are
 *   the window's deltas directly.
 * - Recent errors: requests answered 5xx or with response flags (response_flags != "-") over the last
 *   `errorsWindowMs` (5 min), per request path, code and flags, with when they were last seen.
 * - Outlier ejections: the Envoy gauge `envoy_cluster_outlier_detection_ejections_active` of each proxy's
 *   outbound clusters (`outbound|PORT|SUBSET|HOST`), where it is above zero: which caller ejected how many hosts.
 */
import type { Logger } from '../log.js';
import { addBucket, addRequests, addStats, dedupeReporters, diffSeries, REQUEST_DURATION, REQUESTS_TOTAL, SERIES_LABELS, seriesKey, snapshotOf } from './istio.js';
import type { Series, SeriesLabels, SeriesSet } from './istio.js';
import { parsePrometheusText } from './prometheus-text.js';

/** A proxy's Prometheus endpoint. */
export interface ScrapeTarget {
  /** The proxy's node id. */
  proxy: string;
  url: string;
}

export interface TelemetryOptions {
  /** The proxies to scrape (called every interval); unused with `prometheus`. */
  targets?: () => ScrapeTarget[];
  /** Prometheus' base URL (`http://127.0.0.1:9090`): query it instead of scraping the proxies. */
  prometheus?: string;
  /** How often proxies are scraped / Prometheus is queried (default 2000 ms). */
  intervalMs?: number;
  /** The window golden metrics are computed over (default 10000 ms). */
  windowMs?: number;
  /** How long errors stay in `recentErrors` (default 300000 ms). */
  errorsWindowMs?: number;
  /** Per-request timeout (default 2000 ms). */
  timeoutMs?: number;
  /**
   * The mesh service a `destination_service` names, when it is not a service host as written: a proxy that does
   * not know the service of a request (no `istio.services` metadata on its cluster) reports the request's
   * authority (`reviews:9080`, `127.0.0.1:15006`), as Istio's stats filter does. Undefined: leave it.
   */
  resolveService?: (l: SeriesLabels) => { host: string; name: string; namespace: string } | undefined;
  logger?: Logger;
}

/** Requests of one path answered 5xx or with response flags. */
export interface RecentError {
  labels: SeriesLabels;
  code: string;
  /** Envoy response flags (`UH`, `UF`, `NR`, `URX`, ...; `-` for none). */
  flags: string;
  count: number;
  lastSeen: string;
}

/** Hosts of an outbound cluster a proxy's outlier detection has ejected now. */
export interface Ejection {
  /** The proxy (scrape mode: its node id; Prometheus mode: the scrape's `instance`). */
  proxy: string;
  /** `outbound|PORT|SUBSET|HOST`. */
  cluster: string;
  ejected: number;
}

export const EJECTIONS_ACTIVE = 'envoy_cluster_outlier_detection_ejections_active';

/**
 * The `/stats/prometheus` query of a scrape: `usedonly` (a stat never written — a zero gauge — is left out) and a
 * `filter` on Envoy's stat names selecting the family children of `istio_requests_total` and
 * `istio_request_duration_milliseconds` (named `<family>.<label>.<value>...`) and
 * `cluster.outbound|....outlier_detection.ejections_active`. The proxy matches these literal alternatives without a
 * regex engine, and skips whole clusters and families by their prefix (src/proxy/stats/render.ts).
 */
export const SCRAPE_FILTER = `^${REQUESTS_TOTAL}\\.|^${REQUEST_DURATION}\\.|^cluster\\.outbound\\|.*\\.outlier_detection\\.ejections_active$`;
export const SCRAPE_QUERY = `usedonly&filter=${encodeURIComponent(SCRAPE_FILTER)}`;

export interface TelemetryWindow {
  /** `scrape` or `prometheus`. */
  source: 'scrape' | 'prometheus';
  /** When the window was last updated (ISO time; absent before the first update). */
  updatedAt?: string;
  /** The window's length in seconds (0 until two scrapes are in). */
  seconds: number;
  /** One series per request path (see dedupeReporters), deltas over the window. */
  series: Series[];
  recentErrors: RecentError[];
  ejections: Ejection[];
  scrapeErrors: Array<{ target: string; error: string }>;
}

interface Snap {
  at: number;
  set: SeriesSet;
}

const MAX_ERROR_EVENTS = 2000;

function errorText(e: unknown, timeoutMs: number): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError') return `no answer within ${timeoutMs} ms`;
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

export class MeshTelemetry {
  readonly intervalMs: number;
  readonly windowMs: number;
  readonly errorsWindowMs: number;
  readonly #timeoutMs: number;
  readonly #opts: TelemetryOptions;
  /** Scrape mode: snapshots per proxy, oldest first. */
  readonly #snaps = new Map<string, Snap[]>();
  /** Error observations: [when, series, code and flags, count]. */
  #errorEvents: Array<{ at: number; labels: SeriesLabels; failure: string; count: number }> = [];
  #current: TelemetryWindow;
  #timer?: NodeJS.Timeout;
  #running?: Promise<void>;
  #closed = false;

  constructor(opts: TelemetryOptions) {
    this.#opts = opts;
    this.intervalMs = opts.intervalMs ?? 2000;
    this.windowMs = opts.windowMs ?? 10_000;
    this.errorsWindowMs = opts.errorsWindowMs ?? 300_000;
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    if (opts.prometheus !== undefined && !/^https?:\/\/[^/]/.test(opts.prometheus)) throw new Error(`telemetry: --prometheus must be an http(s) URL, got ${JSON.stringify(opts.prometheus)}`);
    this.#current = { source: opts.prometheus ? 'prometheus' : 'scrape', seconds: 0, series: [], recentErrors: [], ejections: [], scrapeErrors: [] };
  }

  /** Starts the periodic updates (the first one at once). */
  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => this.tick(), this.intervalMs);
    this.#timer.unref();
    this.tick();
  }

  /** Runs an update unless one is running; resolves when it is done. */
  tick(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#running ??= (this.#opts.prometheus ? this.#queryPrometheus(this.#opts.prometheus) : this.#scrape()).catch((e: unknown) => {
      this.#opts.logger?.warn({ err: (e as Error)?.message ?? String(e) }, 'telemetry update failed');
    }).finally(() => (this.#running = undefined));
    return this.#running;
  }

  /** The current window. */
  window(): TelemetryWindow {
    return this.#current;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#running;
  }

  async #get(url: string): Promise<string> {
    const res = await fetch(url, { signal: AbortSignal.timeout(this.#timeoutMs) });
    const body = await res.text();
    if (res.status !== 200) throw new Error(`answered ${res.status}${body ? `: ${body.slice(0, 200).trim()}` : ''}`);
    return body;
  }

  async #scrape(): Promise<void> {
    const targets = this.#opts.targets?.() ?? [];
    const scrapeErrors: TelemetryWindow['scrapeErrors'] = [];
    const ejections: Ejection[] = [];
    const now = Date.now();
    await Promise.all(
      targets.map(async (t) => {
        let text: string;
        try {
          text = await this.#get(`${t.url}${t.url.includes('?') ? '&' : '?'}${SCRAPE_QUERY}`);
        } catch (e) {
          scrapeErrors.push({ target: `proxy ${t.proxy} (${t.url})`, error: errorText(e, this.#timeoutMs) });
          return;
        }
        const samples = parsePrometheusText(text);
        const set = snapshotOf(samples);
        for (const s of samples) if (s.name === EJECTIONS_ACTIVE && s.value > 0 && s.labels['envoy_cluster_name']?.startsWith('outbound|')) ejections.push({ proxy: t.proxy, cluster: s.labels['envoy_cluster_name'], ejected: s.value });
        let snaps = this.#snaps.get(t.proxy);
        if (!snaps) this.#snaps.set(t.proxy, (snaps = []));
        const prev = snaps.at(-1);
        if (prev) for (const s of diffSeries(set, prev.set).values()) this.#noteErrors(now, s);
        snaps.push({ at: now, set });
        // Keep the newest snapshot at or before the window's start as the base, and everything after it.
        while (snaps.length > 2 && snaps[1]!.at <= now - this.windowMs) snaps.shift();
      }),
    );
    // Proxies gone (disconnected, or not answering for a whole window) leave the window.
    const live = new Set(targets.map((t) => t.proxy));
    for (const [id, snaps] of this.#snaps) if (!live.has(id) || snaps.at(-1)!.at < now - this.windowMs) this.#snaps.delete(id);

    const sum: SeriesSet = new Map();
    let seconds = 0;
    for (const snaps of this.#snaps.values()) {
      if (snaps.length < 2) continue;
      const first = snaps[0]!;
      const last = snaps.at(-1)!;
      seconds = Math.max(seconds, (last.at - first.at) / 1000);
      for (const [k, s] of diffSeries(last.set, first.set)) {
        const into = sum.get(k);
        if (into) addStats(into.stats, s.stats);
        else sum.set(k, { labels: s.labels, stats: s.stats });
      }
    }
    this.#publish(now, 'scrape', seconds, sum, scrapeErrors, ejections);
  }

  #noteErrors(at: number, s: Series): void {
    for (const [failure, count] of s.stats.failures) this.#errorEvents.push({ at, labels: s.labels, failure, count });
    if (this.#errorEvents.length > MAX_ERROR_EVENTS) this.#errorEvents = this.#errorEvents.slice(-MAX_ERROR_EVENTS);
  }

  async #promQuery(base: string, query: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
    const text = await this.#get(`${base.replace(/\/+$/, '')}/api/v1/query?query=${encodeURIComponent(query)}`);
    const body = JSON.parse(text) as { status?: string; error?: string; data?: { resultType?: string; result?: Array<{ metric: Record<string, string>; value: [number, string] }> } };
    if (body.status !== 'success' || body.data?.resultType !== 'vector') throw new Error(`query ${query}: ${body.error ?? `unexpected answer (${body.data?.resultType ?? body.status})`}`);
    return body.data.result ?? [];
  }

  async #queryPrometheus(base: string): Promise<void> {
    const now = Date.now();
    const w = `${Math.max(1, Math.round(this.windowMs / 1000))}s`;
    const ew = `${Math.max(1, Math.round(this.errorsWindowMs / 1000))}s`;
    const by = SERIES_LABELS.join(', ');
    const outcome = `${by}, response_code, response_flags, connection_security_policy`;
    const set: SeriesSet = new Map();
    const ejections: Ejection[] = [];
    try {
      const [requests, buckets, failures, ejected] = await Promise.all([
        this.#promQuery(base, `sum by (${outcome}) (increase(${REQUESTS_TOTAL}[${w}]))`),
        this.#promQuery(base, `sum by (${by}, le) (increase(${REQUEST_DURATION}_bucket[${w}]))`),
        this.#promQuery(base, `sum by (${outcome}) (increase(${REQUESTS_TOTAL}{response_code=~"5.*"}[${ew}]) or increase(${REQUESTS_TOTAL}{response_flags!="-"}[${ew}]))`),
        this.#promQuery(base, `${EJECTIONS_ACTIVE}{envoy_cluster_name=~"outbound[|].*"} > 0`),
      ]);
      for (const r of ejected) ejections.push({ proxy: r.metric['instance'] ?? 'unknown', cluster: r.metric['envoy_cluster_name'] ?? '', ejected: Number(r.value[1]) });
      for (const r of requests) addRequests(set, r.metric, Number(r.value[1]));
      for (const r of buckets) addBucket(set, r.metric, Number(r.value[1]));
      const errSet: SeriesSet = new Map();
      for (const r of failures) addRequests(errSet, r.metric, Number(r.value[1]));
      this.#errorEvents = [];
      for (const s of errSet.values()) this.#noteErrors(now, s);
    } catch (e) {
      this.#publish(now, 'prometheus', 0, set, [{ target: `Prometheus ${base}`, error: errorText(e, this.#timeoutMs) }], []);
      return;
    }
    this.#publish(now, 'prometheus', this.windowMs / 1000, set, [], ejections);
  }

  /** Series with their destination service resolved (see `resolveService`), merged where they became one. */
  #resolved(set: SeriesSet): SeriesSet {
    const resolve = this.#opts.resolveService;
    if (!resolve) return set;
    const out: SeriesSet = new Map();
    for (const s of set.values()) {
      const r = resolve(s.labels);
      const labels = r ? { ...s.labels, destination_service: r.host, destination_service_name: r.name, destination_service_namespace: r.namespace } : s.labels;
      const k = seriesKey(labels);
      const into = out.get(k);
      if (into) addStats(into.stats, s.stats);
      else out.set(k, { labels, stats: { ...s.stats, buckets: new Map(s.stats.buckets), failures: new Map(s.stats.failures) } });
    }
    return out;
  }

  #publish(now: number, source: TelemetryWindow['source'], seconds: number, set: SeriesSet, scrapeErrors: TelemetryWindow['scrapeErrors'], ejections: Ejection[]): void {
    const resolve = this.#opts.resolveService;
    this.#errorEvents = this.#errorEvents.filter((e) => e.at >= now - this.errorsWindowMs);
    // Per request path, code and flags; the same failures reported by both proxies of a call: the destination's.
    const errors = new Map<string, RecentError>();
    for (const ev of this.#errorEvents) {
      const r = resolve?.(ev.labels);
      const e = r ? { ...ev, labels: { ...ev.labels, destination_service: r.host, destination_service_name: r.name, destination_service_namespace: r.namespace } } : ev;
      const [code, flags] = e.failure.split(' ');
      const k = `${SERIES_LABELS.map((l) => (l === 'reporter' ? '' : e.labels[l])).join('\u001f')}\u001f${e.failure}`;
      const prev = errors.get(k);
      if (prev && prev.labels.reporter === e.labels.reporter) {
        prev.count += e.count;
        if (Date.parse(prev.lastSeen) < e.at) prev.lastSeen = new Date(e.at).toISOString();
      } else if (!prev || (prev.labels.reporter !== 'destination' && e.labels.reporter === 'destination')) {
        errors.set(k, { labels: e.labels, code: code!, flags: flags ?? '-', count: e.count, lastSeen: new Date(e.at).toISOString() });
      }
    }
    this.#current = {
      source,
      updatedAt: new Date(now).toISOString(),
      seconds: Math.round(seconds * 1000) / 1000,
      series: dedupeReporters(this.#resolved(set)),
      recentErrors: [...errors.values()].sort((a, b) => b.lastSeen.localeCompare(a.lastSeen) || b.count - a.count),
      ejections: ejections.sort((a, b) => a.cluster.localeCompare(b.cluster) || a.proxy.localeCompare(b.proxy)),
      scrapeErrors: scrapeErrors.sort((a, b) => a.target.localeCompare(b.target)),
    };
  }
}
