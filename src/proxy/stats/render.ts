/**
 * The admin stats outputs, as Envoy prints them (source/server/admin/stats_render.cc, prometheus_stats.cc):
 *
 *   const q = parseStatsParams(url.searchParams);          // { params } or { error } (→ 400)
 *   renderStatsText(store, q.params)                        // GET /stats
 *   renderStatsJson(store, q.params)                        // GET /stats?format=json
 *   renderPrometheus(store, q.params)                       // GET /stats/prometheus, /stats?format=prometheus
 *
 * Text: text readouts (`name: "value"`), then counters and gauges together (`name: value`), then histograms
 * (`name: P0(interval,cumulative) P25(...) ... P100(...)`, or `No recorded values`); each part sorted by name.
 * `histogram_buckets=cumulative|disjoint` prints `B<bound>(interval,cumulative)` bucket counts instead.
 *
 * JSON: `{"stats":[{"name","value"}..., {"histograms":{"supported_quantiles":[0,25,...,100],
 * "computed_quantiles":[{"name","values":[{"cumulative","interval"}...]}]}}]}` (null for a quantile without
 * samples); with `histogram_buckets` the histograms entry is `[{"name","buckets":[{"upper_bound","interval",
 * "cumulative"}...]}]`.
 *
 * Prometheus text exposition: stats grouped by tag-extracted name (counters, then gauges, then text readouts when
 * `text_readouts` is given, then histograms), each group sorted and preceded by `# TYPE <name> <type>`; names are
 * `envoy_` + the tag-extracted name with every character outside [a-zA-Z0-9_] replaced by `_` (family stats keep
 * their own name); labels are the sanitized tag names with escaped values. Histograms print cumulative
 * `_bucket{le="..."}` lines, `le="+Inf"`, `_sum` and `_count`; `histogram_buckets=summary` prints quantiles of the
 * last interval instead.
 *
 * Query parameters: `usedonly` (only stats written since start), `filter=<RE2>` (partial match on the full stat
 * name), `type=All|Counters|Gauges|Histograms|TextReadouts`, `histogram_buckets`, `format`, `text_readouts`.
 * Differences from Envoy: bucket counts and `_sum` are exact (Envoy derives them from its log-linear histogram);
 * cumulative histogram values are live rather than as of the last flush.
 */
import { RE2JS } from 're2js';
import { formatG, formatShortest } from './format.js';
import { SUPPORTED_QUANTILES, type Histogram, type HistogramStatistics } from './histogram.js';
import type { Counter, Gauge, Metric, TextReadout } from './metric.js';
import type { Scope, SourceStatKind, StatsStore } from './store.js';
import type { ExtractedTags } from './tags.js';

export type StatsType = 'All' | 'Counters' | 'Gauges' | 'Histograms' | 'TextReadouts';
export type HistogramBucketsMode = 'none' | 'cumulative' | 'disjoint' | 'summary';
export type StatsFormat = 'text' | 'json' | 'prometheus';

export interface StatsParams {
  usedOnly: boolean;
  /** Compiled `filter`; undefined shows everything. */
  filter: RE2JS | undefined;
  type: StatsType;
  histogramBuckets: HistogramBucketsMode;
  format: StatsFormat;
  textReadouts: boolean;
}

const TYPES: ReadonlySet<string> = new Set(['All', 'Counters', 'Gauges', 'Histograms', 'TextReadouts']);

/** Parses the query of `/stats` or `/stats/prometheus`. Errors carry Envoy's message for a 400 answer. */
export function parseStatsParams(q: URLSearchParams, prometheusEndpoint = false): { params: StatsParams } | { error: string } {
  const params: StatsParams = {
    usedOnly: q.has('usedonly'),
    filter: undefined,
    type: 'All',
    histogramBuckets: 'none',
    format: prometheusEndpoint ? 'prometheus' : 'text',
    textReadouts: q.has('text_readouts'),
  };
  const filter = q.get('filter');
  if (filter !== null && filter !== '') {
    try {
      params.filter = RE2JS.compile(filter);
    } catch {
      return { error: 'Invalid re2 regex' };
    }
  }
  const hb = q.get('histogram_buckets');
  if (hb) {
    if (hb === 'cumulative' || hb === 'disjoint' || hb === 'summary' || hb === 'none') params.histogramBuckets = hb;
    else return { error: 'usage: /stats?histogram_buckets=(cumulative|disjoint|summary|none)\n' };
  }
  const type = q.get('type');
  if (type) {
    if (!TYPES.has(type)) return { error: 'invalid &type= param' };
    params.type = type as StatsType;
  }
  const format = q.get('format');
  if (format && !prometheusEndpoint) {
    if (format === 'json' || format === 'text' || format === 'prometheus') params.format = format;
    else if (format === 'html' || format === 'active-html') return { error: 'HTML output is not supported by this proxy' };
    else return { error: 'usage: /stats?format=(json|prometheus|text)\n\n' };
  }
  if (params.format === 'prometheus' && params.histogramBuckets === 'disjoint') return { error: 'unsupported prometheus histogram bucket mode' };
  if (params.format !== 'prometheus' && params.histogramBuckets === 'summary') return { error: 'usage: /stats?histogram_buckets=(cumulative|disjoint|none)\n' };
  return { params };
}

// ---- collection ------------------------------------------------------------------------------------------------

interface NumericRow {
  name: string;
  value: number;
  used: boolean;
  kind: SourceStatKind;
  /** The stat object, or undefined for a source stat. */
  metric: Metric | undefined;
  scope: Scope | undefined;
  shortName: string;
}

function shown(p: StatsParams, name: string, used: boolean): boolean {
  return (!p.usedOnly || used) && (p.filter === undefined || p.filter.test(name));
}

function collectNumeric(store: StatsStore, p: StatsParams, kind: SourceStatKind): NumericRow[] {
  const rows: NumericRow[] = [];
  const add = (m: Counter | Gauge): void => {
    if (shown(p, m.name, m.used)) rows.push({ name: m.name, value: m.value, used: m.used, kind, metric: m, scope: undefined, shortName: '' });
  };
  if (kind === 'counter') {
    for (const c of store.counterMap.values()) add(c);
  } else {
    for (const g of store.gaugeMap.values()) add(g);
  }
  for (const f of store.familyMap.values()) {
    if (f.kind !== kind) continue;
    for (const c of f.children()) add(c as Counter | Gauge);
  }
  for (const scope of store.sourceScopes) {
    for (const src of scope.sources) {
      src.forEach((short, value, k) => {
        if (k !== kind) return;
        const name = scope.prefix + short;
        // A source stat counts as used once it is non-zero.
        if (shown(p, name, value !== 0)) rows.push({ name, value, used: value !== 0, kind, metric: undefined, scope, shortName: short });
      });
    }
  }
  return rows;
}

function collectHistograms(store: StatsStore, p: StatsParams): Histogram[] {
  const out: Histogram[] = [];
  for (const h of store.histogramMap.values()) if (shown(p, h.name, h.used)) out.push(h);
  for (const f of store.familyMap.values()) {
    if (f.kind !== 'histogram') continue;
    for (const h of f.children()) if (shown(p, h.name, h.used)) out.push(h as Histogram);
  }
  return out;
}

function collectTextReadouts(store: StatsStore, p: StatsParams): TextReadout[] {
  const out: TextReadout[] = [];
  for (const t of store.textReadoutMap.values()) if (shown(p, t.name, t.used)) out.push(t);
  return out;
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

function showsType(p: StatsParams, t: StatsType): boolean {
  return p.type === 'All' || p.type === t;
}

// ---- text ------------------------------------------------------------------------------------------------------

export function renderStatsText(store: StatsStore, p: StatsParams): string {
  const parts: string[] = [];
  if (showsType(p, 'TextReadouts')) {
    for (const t of collectTextReadouts(store, p).sort(byName)) parts.push(`${t.name}: "${t.value}"\n`);
  }
  const numeric: NumericRow[] = [];
  if (showsType(p, 'Counters')) numeric.push(...collectNumeric(store, p, 'counter'));
  if (showsType(p, 'Gauges')) numeric.push(...collectNumeric(store, p, 'gauge'));
  for (const r of numeric.sort(byName)) parts.push(`${r.name}: ${r.value}\n`);
  if (showsType(p, 'Histograms')) {
    for (const h of collectHistograms(store, p).sort(byName)) parts.push(`${h.name}: ${histogramText(h, p.histogramBuckets)}\n`);
  }
  return parts.join('');
}

function histogramText(h: Histogram, mode: HistogramBucketsMode): string {
  if (!h.used) return 'No recorded values';
  const interval = h.intervalStatistics();
  const cumulative = h.cumulativeStatistics();
  if (mode === 'cumulative' || mode === 'disjoint') {
    const iv = mode === 'cumulative' ? interval.cumulativeBuckets : interval.disjointBuckets;
    const cv = mode === 'cumulative' ? cumulative.cumulativeBuckets : cumulative.disjointBuckets;
    return h.bounds.map((b, i) => `B${formatG(b)}(${iv[i]},${cv[i]})`).join(' ');
  }
  return quantileSummary(interval, cumulative);
}

/** Envoy's ParentHistogram::quantileSummary: `P0(interval,cumulative) P25(...) ...`. */
export function quantileSummary(interval: HistogramStatistics, cumulative: HistogramStatistics): string {
  const out: string[] = [];
  for (let i = 0; i < SUPPORTED_QUANTILES.length; i++) {
    out.push(`P${formatG(100 * SUPPORTED_QUANTILES[i]!)}(${formatShortest(interval.quantiles[i]!)},${formatShortest(cumulative.quantiles[i]!)})`);
  }
  return out.join(' ');
}

// ---- JSON ------------------------------------------------------------------------------------------------------

export function renderStatsJson(store: StatsStore, p: StatsParams, pretty = false): string {
  const stats: unknown[] = [];
  if (showsType(p, 'TextReadouts')) {
    for (const t of collectTextReadouts(store, p).sort(byName)) stats.push({ name: t.name, value: t.value });
  }
  const numeric: NumericRow[] = [];
  if (showsType(p, 'Counters')) numeric.push(...collectNumeric(store, p, 'counter'));
  if (showsType(p, 'Gauges')) numeric.push(...collectNumeric(store, p, 'gauge'));
  for (const r of numeric.sort(byName)) stats.push({ name: r.name, value: r.value });
  if (showsType(p, 'Histograms')) {
    const hs = collectHistograms(store, p).sort(byName);
    if (hs.length > 0) {
      if (p.histogramBuckets === 'cumulative' || p.histogramBuckets === 'disjoint') {
        const cum = p.histogramBuckets === 'cumulative';
        stats.push({
          histograms: hs.map((h) => {
            const iv = h.intervalStatistics();
            const cv = h.cumulativeStatistics();
            const ib = cum ? iv.cumulativeBuckets : iv.disjointBuckets;
            const cb = cum ? cv.cumulativeBuckets : cv.disjointBuckets;
            return { name: h.name, buckets: h.bounds.map((b, i) => ({ upper_bound: b, interval: ib[i], cumulative: cb[i] })) };
          }),
        });
      } else {
        stats.push({
          histograms: {
            supported_quantiles: SUPPORTED_QUANTILES.map((q) => Number(formatG(q * 100))),
            computed_quantiles: hs.map((h) => {
              const iv = h.intervalStatistics().quantiles;
              const cv = h.cumulativeStatistics().quantiles;
              return { name: h.name, values: cv.map((c, i) => ({ cumulative: nullIfNaN(c), interval: nullIfNaN(iv[i]!) })) };
            }),
          },
        });
      }
    }
  }
  return JSON.stringify({ stats }, null, pretty ? 2 : undefined);
}

function nullIfNaN(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}

// ---- Prometheus --------------------------------------------------------------------------------------------------

/** Prometheus names: every character outside [a-zA-Z0-9_] becomes `_`. */
export function sanitizePrometheusName(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, '_');
}

/** Escapes a label value for the text exposition format (backslash, newline, double quote). */
export function escapeLabelValue(v: string): string {
  if (!/[\\\n"]/.test(v)) return v;
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function formatTags(tags: readonly string[]): string {
  let s = '';
  for (let i = 0; i < tags.length; i += 2) {
    if (i > 0) s += ',';
    s += `${sanitizePrometheusName(tags[i]!)}="${escapeLabelValue(tags[i + 1]!)}"`;
  }
  return s;
}

interface PromEntry {
  name: string;
  tags: readonly string[];
  render: (metric: string, tags: string) => string;
}

/** Sort key: Envoy orders metric names token by token (a dot sorts before anything else). */
function tokenKey(s: string): string {
  return s.replaceAll('.', '\u0000');
}

function emitGroups(out: string[], type: string, entries: Array<{ metricName: string; extractedName: string; e: PromEntry }>): void {
  // Grouped by Prometheus name; groups ordered by tag-extracted name and stats by full name, both token by token.
  const groups = new Map<string, { key: string; list: PromEntry[] }>();
  for (const { metricName, extractedName, e } of entries) {
    let g = groups.get(metricName);
    if (!g) groups.set(metricName, (g = { key: tokenKey(extractedName), list: [] }));
    g.list.push(e);
  }
  const names = [...groups.keys()].sort((a, b) => {
    const ka = groups.get(a)!.key;
    const kb = groups.get(b)!.key;
    return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
  for (const metric of names) {
    out.push(`# TYPE ${metric} ${type}\n`);
    const g = groups.get(metric)!.list.sort((a, b) => {
      const ka = tokenKey(a.name);
      const kb = tokenKey(b.name);
      return ka < kb ? -1 : ka > kb ? 1 : 0;
    });
    for (const e of g) out.push(e.render(metric, formatTags(e.tags)));
  }
}

function promName(store: StatsStore, m: Metric): { metricName: string; extractedName: string; tags: readonly string[] } {
  const t = store.tagsOf(m);
  const metricName = m.explicitTags !== undefined ? sanitizePrometheusName(t.extractedName) : 'envoy_' + sanitizePrometheusName(t.extractedName);
  return { metricName, extractedName: t.extractedName, tags: t.tags };
}

function sourceTags(store: StatsStore, r: NumericRow): ExtractedTags {
  const scope = r.scope!;
  return scope.sourceTags(r.shortName, () => store.extract(r.name, scope.pinEnd));
}

export function renderPrometheus(store: StatsStore, p: StatsParams): string {
  const out: string[] = [];
  for (const kind of ['counter', 'gauge'] as const) {
    const rows = collectNumeric(store, p, kind);
    const entries = rows.map((r) => {
      let metricName: string;
      let extractedName: string;
      let tags: readonly string[];
      if (r.metric) {
        ({ metricName, extractedName, tags } = promName(store, r.metric));
      } else {
        const t = sourceTags(store, r);
        extractedName = t.extractedName;
        metricName = 'envoy_' + sanitizePrometheusName(extractedName);
        tags = t.tags;
      }
      const value = r.value;
      return { metricName, extractedName, e: { name: r.name, tags, render: (m: string, t: string) => `${m}{${t}} ${value}\n` } };
    });
    emitGroups(out, kind, entries);
  }
  if (p.textReadouts) {
    const entries = collectTextReadouts(store, p).map((t) => {
      const { metricName, extractedName, tags } = promName(store, t);
      return { metricName, extractedName, e: { name: t.name, tags: [...tags, 'text_value', t.value], render: (m: string, tg: string) => `${m}{${tg}} 0\n` } };
    });
    emitGroups(out, 'gauge', entries);
  }
  const summary = p.histogramBuckets === 'summary';
  const entries = collectHistograms(store, p).map((h) => {
    const { metricName, extractedName, tags } = promName(store, h);
    return { metricName, extractedName, e: { name: h.name, tags, render: (m: string, t: string) => (summary ? summaryLines(h, m, t) : histogramLines(h, m, t)) } };
  });
  emitGroups(out, summary ? 'summary' : 'histogram', entries);
  return out.join('');
}

function histogramLines(h: Histogram, metric: string, tags: string): string {
  const s = h.cumulativeStatistics();
  const ht = tags === '' ? '' : tags + ',';
  let out = '';
  for (let i = 0; i < h.bounds.length; i++) out += `${metric}_bucket{${ht}le="${formatShortest(h.bounds[i]!)}"} ${s.cumulativeBuckets[i]}\n`;
  out += `${metric}_bucket{${ht}le="+Inf"} ${s.count}\n`;
  out += `${metric}_sum{${tags}} ${formatShortest(s.sum)}\n`;
  out += `${metric}_count{${tags}} ${s.count}\n`;
  return out;
}

function summaryLines(h: Histogram, metric: string, tags: string): string {
  const s = h.intervalStatistics();
  const ht = tags === '' ? '' : tags + ',';
  let out = '';
  for (let i = 0; i < SUPPORTED_QUANTILES.length; i++) out += `${metric}{${ht}quantile="${formatShortest(SUPPORTED_QUANTILES[i]!)}"} ${formatShortest(s.quantiles[i]!)}\n`;
  out += `${metric}_sum{${tags}} ${formatShortest(s.sum)}\n`;
  out += `${metric}_count{${tags}} ${s.count}\n`;
  return out;
}
