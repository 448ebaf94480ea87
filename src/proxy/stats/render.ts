/**
 * The admin stats outputs, as Envoy prints them (source/server/admin/stats_render.cc, prometheus_stats.cc):
 *
 *   const q = parseStatsParams(url.searchParams);          // { params } or { error } (→ 400)
 *   statsTextChunks(store, q.params)                        // GET /stats
 *   statsJsonChunks(store, q.params, pretty)                // GET /stats?format=json
 *   prometheusChunks(store, q.params)                       // GET /stats/prometheus, /stats?format=prometheus
 *   renderStatsText / renderStatsJson / renderPrometheus    // the same, as one string
 *
 * Each output is produced piece by piece: the `*Chunks` generators yield strings of about CHUNK_CHARS characters,
 * which the HTTP side writes as the connection takes them (admin/stream.ts), so a proxy with 1,000 clusters (~100k
 * series, 13 MB of Prometheus text) never holds its whole output, and a piece's garbage dies young. A section's
 * stats (the counters, the gauges, ...) are collected when its first piece is asked for: values as of then, names
 * kept as (scope prefix, name in the scope) pairs and compared in place, never concatenated to be sorted.
 *
 * Text: text readouts (`name: "value"`), then counters and gauges together (`name: value`), then histograms
 * (`name: P0(interval,cumulative) P25(...) ... P100(...)`, or `No recorded values`); each part sorted by name.
 * `histogram_buckets=cumulative|disjoint` prints `B<bound>(interval,cumulative)` bucket counts instead.
 *
 * JSON: `{"stats":[{"name","value"}..., {"histograms":{"supported_quantiles":[0,25,...,100],
 * "computed_quantiles":[{"name","values":[{"cumulative","interval"}...]}]}}]}` (null for a quantile without
 * samples); with `histogram_buckets` the histograms entry is `[{"name","buckets":[{"upper_bound","interval",
 * "cumulative"}...]}]`. `pretty` prints it as JSON.stringify(doc, null, 2) would.
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
 * A filter made of alternatives of literal text and `.*`, optionally anchored (`^istio_requests_total\.`,
 * `^cluster\.outbound\|.*\.outlier_detection\.ejections_active$`) is matched with string comparisons, and decides for
 * a whole scope or family at once from its prefix where it can; any other RE2 runs as a regex (re2js).
 * Differences from Envoy: bucket counts and `_sum` are exact (Envoy derives them from its log-linear histogram);
 * cumulative histogram values are live rather than as of the last flush.
 */
import { RE2JS } from 're2js';
import { formatG, formatShortest } from './format.js';
import { SUPPORTED_QUANTILES, type Histogram, type HistogramStatistics } from './histogram.js';
import type { Counter, Gauge, TextReadout } from './metric.js';
import type { Scope, SourceStatKind, StatsStore } from './store.js';

export type StatsType = 'All' | 'Counters' | 'Gauges' | 'Histograms' | 'TextReadouts';
export type HistogramBucketsMode = 'none' | 'cumulative' | 'disjoint' | 'summary';
export type StatsFormat = 'text' | 'json' | 'prometheus';

export interface StatsParams {
  usedOnly: boolean;
  /** Compiled `filter`; undefined shows everything. */
  filter: StatFilter | undefined;
  type: StatsType;
  histogramBuckets: HistogramBucketsMode;
  format: StatsFormat;
  textReadouts: boolean;
}

/** About how many characters each piece of output has. */
export const CHUNK_CHARS = 64 * 1024;

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
      params.filter = compileStatFilter(filter);
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

// ---- the filter ------------------------------------------------------------------------------------------------

/** What a filter says about every stat under a prefix (see StatFilter.under). */
export enum Under {
  /** No stat under the prefix is shown. */
  None = 0,
  /** Every stat under the prefix is shown. */
  All = 1,
  /** Each name has to be tested. */
  Some = 2,
}

/** `filter=`: an RE2 regex, partially matched against full stat names. */
export interface StatFilter {
  test(name: string): boolean;
  /** What the filter says about every stat whose name starts with `prefix`. */
  under(prefix: string): Under;
}

/**
 * One alternative of a literal filter: literal segments with `.*` between them, anchored at the start (`^`) and/or
 * the end (`$`); unanchored ends match anywhere (RE2 partial match).
 */
class Glob {
  constructor(
    readonly start: boolean,
    readonly end: boolean,
    readonly segs: readonly string[],
  ) {}

  /** Leftmost matching of each segment after the previous one is exact for literals joined by `.*`. */
  matches(name: string): boolean {
    const segs = this.segs;
    const n = segs.length;
    let pos = 0;
    let i = 0;
    if (this.start) {
      const s = segs[0]!;
      if (!name.startsWith(s)) return false;
      if (n === 1) return !this.end || name.length === s.length;
      pos = s.length;
      i = 1;
    }
    const last = this.end ? n - 1 : n;
    for (; i < last; i++) {
      const s = segs[i]!;
      const at = name.indexOf(s, pos);
      if (at < 0) return false;
      pos = at + s.length;
    }
    if (!this.end) return true;
    const s = segs[n - 1]!;
    return name.length - s.length >= pos && name.endsWith(s);
  }

  under(prefix: string): Under {
    const s = this.segs[0]!;
    if (!this.start) return this.segs.length === 1 && !this.end && prefix.includes(s) ? Under.All : Under.Some;
    if (prefix.startsWith(s)) return this.segs.length === 1 && !this.end ? Under.All : Under.Some;
    return s.startsWith(prefix) ? Under.Some : Under.None;
  }
}

class LiteralFilter implements StatFilter {
  constructor(
    private readonly globs: readonly Glob[],
    private readonly re: RE2JS,
  ) {}

  test(name: string): boolean {
    // `.` does not match a newline: the regex decides for the (never seen in practice) names that contain one.
    if (name.indexOf('\n') >= 0) return this.re.test(name);
    for (const g of this.globs) if (g.matches(name)) return true;
    return false;
  }

  under(prefix: string): Under {
    if (prefix.indexOf('\n') >= 0) return Under.Some;
    let out = Under.None;
    for (const g of this.globs) {
      const u = g.under(prefix);
      if (u === Under.All) return Under.All;
      if (u === Under.Some) out = Under.Some;
    }
    return out;
  }
}

class RegexFilter implements StatFilter {
  constructor(private readonly re: RE2JS) {}
  test(name: string): boolean {
    return this.re.test(name);
  }
  under(): Under {
    return Under.Some;
  }
}

/** Escaped punctuation is a literal in RE2. */
const PUNCT = /^[!-/:-@[-`{-~]$/;

/** The alternatives of `re` when it only uses literals, `\<punctuation>`, `.*` (or `.*?`), `^`, `$` and `|`. */
function literalGlobs(re: string): Glob[] | undefined {
  const globs: Glob[] = [];
  let start = false;
  let end = false;
  let segs: string[] = [''];
  const close = (): void => {
    globs.push(new Glob(start, end, segs));
    start = false;
    end = false;
    segs = [''];
  };
  for (let i = 0; i < re.length; i++) {
    const c = re[i]!;
    if (end && c !== '|') return undefined;
    if (c === '|') {
      close();
    } else if (c === '^') {
      if (start || segs.length > 1 || segs[0] !== '') return undefined;
      start = true;
    } else if (c === '$') {
      end = true;
    } else if (c === '\\') {
      const d = re[i + 1];
      if (d === undefined || !PUNCT.test(d)) return undefined;
      segs[segs.length - 1] += d;
      i++;
    } else if (c === '.') {
      if (re[i + 1] !== '*') return undefined;
      i++;
      if (re[i + 1] === '?') i++;
      segs.push('');
    } else if ('*+?()[]{}'.includes(c)) {
      return undefined;
    } else {
      segs[segs.length - 1] += c;
    }
  }
  close();
  return globs;
}

/** Compiles `filter=` (throws on an invalid RE2 regex). */
export function compileStatFilter(re: string): StatFilter {
  const compiled = RE2JS.compile(re);
  const globs = literalGlobs(re);
  return globs ? new LiteralFilter(globs, compiled) : new RegexFilter(compiled);
}

// ---- collection ------------------------------------------------------------------------------------------------

/**
 * Visits the counters or gauges a query shows, in the store's order: stats, family children, then the scopes' source
 * stats; a stat's full name is `pre + suf` (`suf` is '' for the store's own stats, whose `metric` is given).
 */
type NumericVisitor = (pre: string, suf: string, value: number, metric: Counter | Gauge | undefined, scope: Scope | undefined) => void;

function forEachNumeric(store: StatsStore, p: StatsParams, kind: SourceStatKind, visit: NumericVisitor): void {
  const f = p.filter;
  const used = p.usedOnly;
  for (const m of kind === 'counter' ? store.counterMap.values() : store.gaugeMap.values()) {
    if ((!used || m.used) && (f === undefined || f.test(m.name))) visit(m.name, '', m.value, m, undefined);
  }
  for (const fam of store.familyMap.values()) {
    if (fam.kind !== kind) continue;
    const sel = f === undefined ? Under.All : f.under(fam.name);
    if (sel === Under.None) continue;
    for (const c of fam.children() as ReadonlyArray<Counter | Gauge>) {
      if ((!used || c.used) && (sel === Under.All || f!.test(c.name))) visit(c.name, '', c.value, c, undefined);
    }
  }
  for (const scope of store.sourceScopes) {
    const sel = f === undefined ? Under.All : f.under(scope.prefix);
    if (sel === Under.None) continue;
    const prefix = scope.prefix;
    const each = (short: string, value: number, k: SourceStatKind): void => {
      // A source stat counts as used once it is non-zero.
      if (k !== kind || (used && value === 0)) return;
      if (sel === Under.Some && !f!.test(prefix + short)) return;
      visit(prefix, short, value, undefined, scope);
    };
    for (const src of scope.sources) src.forEach(each);
  }
}

function forEachHistogram(store: StatsStore, p: StatsParams, visit: (h: Histogram) => void): void {
  const f = p.filter;
  const shown = (h: Histogram): boolean => (!p.usedOnly || h.used) && (f === undefined || f.test(h.name));
  for (const h of store.histogramMap.values()) if (shown(h)) visit(h);
  for (const fam of store.familyMap.values()) {
    if (fam.kind !== 'histogram') continue;
    if (f !== undefined && f.under(fam.name) === Under.None) continue;
    for (const h of fam.children() as readonly Histogram[]) if (shown(h)) visit(h);
  }
}

function collectTextReadouts(store: StatsStore, p: StatsParams): TextReadout[] {
  const out: TextReadout[] = [];
  for (const t of store.textReadoutMap.values()) if ((!p.usedOnly || t.used) && (p.filter === undefined || p.filter.test(t.name))) out.push(t);
  return out;
}

/**
 * Compares the names `a1 + a2` and `b1 + b2` without building them: by UTF-16 code unit, or with `tokens`
 * token by token as Envoy orders Prometheus output (a dot sorts before any other character).
 */
function compareSplit(a1: string, a2: string, b1: string, b2: string, tokens: boolean): number {
  if (a1 === b1) {
    a1 = a2;
    b1 = b2;
    a2 = b2 = '';
  }
  const a1n = a1.length;
  const b1n = b1.length;
  const la = a1n + a2.length;
  const lb = b1n + b2.length;
  const n = la < lb ? la : lb;
  for (let i = 0; i < n; i++) {
    let x = i < a1n ? a1.charCodeAt(i) : a2.charCodeAt(i - a1n);
    let y = i < b1n ? b1.charCodeAt(i) : b2.charCodeAt(i - b1n);
    if (x === y) continue;
    if (tokens) {
      if (x === 46) x = 0;
      if (y === 46) y = 0;
      if (x === y) continue;
    }
    return x - y;
  }
  return la - lb;
}

/** Numeric stats of one section, in parallel arrays (one entry per stat). */
class Rows {
  n = 0;
  readonly pre: string[] = [];
  readonly suf: string[] = [];
  readonly val: number[] = [];
  /** The source scope of a source stat (its `pre` is the scope's prefix). */
  readonly scope: Array<Scope | undefined> = [];
  private ranks: Int32Array | undefined;

  add(pre: string, suf: string, value: number, scope?: Scope): number {
    this.pre.push(pre);
    this.suf.push(suf);
    this.val.push(value);
    this.scope.push(scope);
    return this.n++;
  }

  /** Entry indexes in name order (`tokens`: Envoy's token order), ties in collection order. */
  sorted(tokens: boolean, from = 0, to = this.n, order?: Int32Array): Int32Array {
    let idx = order?.subarray(from, to);
    if (idx === undefined) {
      idx = new Int32Array(to - from);
      for (let i = 0; i < idx.length; i++) idx[i] = from + i;
    }
    const pre = this.pre;
    const suf = this.suf;
    const rank = (this.ranks ??= this.scopeRanks(tokens));
    return idx.sort((a, b) => {
      const ra = rank[a]!;
      const rb = rank[b]!;
      if (ra >= 0 && rb >= 0) return ra !== rb ? ra - rb : compareSplit(suf[a]!, '', suf[b]!, '', tokens) || a - b;
      return compareSplit(pre[a]!, suf[a]!, pre[b]!, suf[b]!, tokens) || a - b;
    });
  }

  /**
   * Per entry, the rank of its source scope's prefix among the section's scope prefixes (-1 for the store's own
   * stats). When no prefix begins another, two source stats of different scopes compare as their prefixes do, so
   * the sort compares two numbers instead of two long names; otherwise every rank is -1.
   */
  private scopeRanks(tokens: boolean): Int32Array {
    const out = new Int32Array(this.n).fill(-1);
    const scopes = [...new Set(this.scope)].filter((x): x is Scope => x !== undefined);
    if (scopes.length < 2) return out;
    scopes.sort((a, b) => compareSplit(a.prefix, '', b.prefix, '', tokens));
    const rankOf = new Map<Scope, number>();
    let r = 0;
    for (let i = 0; i < scopes.length; i++) {
      const p = scopes[i]!.prefix;
      if (i > 0) {
        const prev = scopes[i - 1]!.prefix;
        if (p !== prev) {
          if (p.startsWith(prev)) return out;
          r++;
        }
      }
      rankOf.set(scopes[i]!, r);
    }
    for (let i = 0; i < this.n; i++) {
      const sc = this.scope[i];
      if (sc !== undefined) out[i] = rankOf.get(sc)!;
    }
    return out;
  }
}

function showsType(p: StatsParams, t: StatsType): boolean {
  return p.type === 'All' || p.type === t;
}

const byName = <T extends { name: string }>(a: T, b: T): number => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

/** The pieces of an output as one string. */
export function joinChunks(chunks: Iterable<string>): string {
  let s = '';
  for (const c of chunks) s += c;
  return s;
}

/** Appends pieces and hands out about CHUNK_CHARS characters at a time. */
class Pieces {
  s = '';
  get full(): boolean {
    return this.s.length >= CHUNK_CHARS;
  }
  take(): string {
    const s = this.s;
    this.s = '';
    return s;
  }
}

// ---- text ------------------------------------------------------------------------------------------------------

/** The counters and gauges `p` selects, as rows (`/stats` text and JSON list them sorted by name). */
function numericRows(store: StatsStore, p: StatsParams): Rows {
  const rows = new Rows();
  const add: NumericVisitor = (pre, suf, value, _m, scope) => rows.add(pre, suf, value, scope);
  if (showsType(p, 'Counters')) forEachNumeric(store, p, 'counter', add);
  if (showsType(p, 'Gauges')) forEachNumeric(store, p, 'gauge', add);
  return rows;
}

export function* statsTextChunks(store: StatsStore, p: StatsParams): Generator<string, void, undefined> {
  const out = new Pieces();
  if (showsType(p, 'TextReadouts')) {
    for (const t of collectTextReadouts(store, p).sort(byName)) {
      out.s += `${t.name}: "${t.value}"\n`;
      if (out.full) yield out.take();
    }
  }
  const rows = numericRows(store, p);
  for (const i of rows.sorted(false)) {
    out.s += `${rows.pre[i]}${rows.suf[i]}: ${rows.val[i]}\n`;
    if (out.full) yield out.take();
  }
  if (showsType(p, 'Histograms')) {
    for (const h of sortedHistograms(store, p)) {
      out.s += `${h.name}: ${histogramText(h, p.histogramBuckets)}\n`;
      if (out.full) yield out.take();
    }
  }
  if (out.s !== '') yield out.take();
}

export function renderStatsText(store: StatsStore, p: StatsParams): string {
  return joinChunks(statsTextChunks(store, p));
}

function sortedHistograms(store: StatsStore, p: StatsParams): Histogram[] {
  const hs: Histogram[] = [];
  forEachHistogram(store, p, (h) => hs.push(h));
  return hs.sort(byName);
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

const ITEM = '\u0001weft-json-item\u0001';
const QUOTED_ITEM = JSON.stringify(ITEM);

/**
 * The text JSON.stringify prints for `doc`, whose one list holds only ITEM, split around that item: what comes
 * before it, the indentation of the list's items (with `pretty`), and what comes after; every line after the first is
 * indented further by `indent`.
 */
function jsonFrame(doc: unknown, pretty: boolean, indent = ''): { head: string; itemIndent: string; tail: string } {
  let text = JSON.stringify(doc, null, pretty ? 2 : undefined);
  if (indent !== '') text = text.replaceAll('\n', '\n' + indent);
  const at = text.indexOf(QUOTED_ITEM);
  const lineStart = text.lastIndexOf('\n', at) + 1;
  return { head: text.slice(0, at), itemIndent: pretty ? text.slice(lineStart, at) : '', tail: text.slice(at + QUOTED_ITEM.length) };
}

/** One list item as JSON.stringify prints it at `itemIndent` (the first line's indentation is the caller's). */
function jsonItem(v: unknown, pretty: boolean, itemIndent: string): string {
  if (!pretty) return JSON.stringify(v);
  return JSON.stringify(v, null, 2).replaceAll('\n', '\n' + itemIndent);
}

function nullIfNaN(x: number): number | null {
  return Number.isNaN(x) ? null : x;
}

export function* statsJsonChunks(store: StatsStore, p: StatsParams, pretty = false): Generator<string, void, undefined> {
  const out = new Pieces();
  const frame = jsonFrame({ stats: [ITEM] }, pretty);
  const ind = frame.itemIndent;
  const sep = pretty ? `,\n${ind}` : ',';
  // `{"name": ..., "value": ...}` at the stats list's indentation.
  const nameValue = pretty ? (name: string, value: string) => `{\n${ind}  "name": ${name},\n${ind}  "value": ${value}\n${ind}}` : (name: string, value: string) => `{"name":${name},"value":${value}}`;
  let items = 0;
  const next = (): void => {
    out.s += items++ === 0 ? frame.head : sep;
  };
  if (showsType(p, 'TextReadouts')) {
    for (const t of collectTextReadouts(store, p).sort(byName)) {
      next();
      out.s += nameValue(JSON.stringify(t.name), JSON.stringify(t.value));
      if (out.full) yield out.take();
    }
  }
  const rows = numericRows(store, p);
  for (const i of rows.sorted(false)) {
    next();
    out.s += nameValue(JSON.stringify(rows.pre[i]! + rows.suf[i]!), JSON.stringify(rows.val[i]!));
    if (out.full) yield out.take();
  }
  if (showsType(p, 'Histograms')) {
    const hs = sortedHistograms(store, p);
    if (hs.length > 0) {
      next();
      const buckets = p.histogramBuckets === 'cumulative' || p.histogramBuckets === 'disjoint';
      const doc = buckets ? { histograms: [ITEM] } : { histograms: { supported_quantiles: SUPPORTED_QUANTILES.map((q) => Number(formatG(q * 100))), computed_quantiles: [ITEM] } };
      const hf = jsonFrame(doc, pretty, ind);
      const hsep = pretty ? `,\n${hf.itemIndent}` : ',';
      out.s += hf.head;
      for (let k = 0; k < hs.length; k++) {
        if (k > 0) out.s += hsep;
        out.s += jsonItem(buckets ? histogramBuckets(hs[k]!, p.histogramBuckets === 'cumulative') : histogramQuantiles(hs[k]!), pretty, hf.itemIndent);
        if (out.full) yield out.take();
      }
      out.s += hf.tail;
    }
  }
  out.s += items === 0 ? JSON.stringify({ stats: [] }, null, pretty ? 2 : undefined) : frame.tail;
  yield out.take();
}

export function renderStatsJson(store: StatsStore, p: StatsParams, pretty = false): string {
  return joinChunks(statsJsonChunks(store, p, pretty));
}

function histogramBuckets(h: Histogram, cumulative: boolean): unknown {
  const iv = h.intervalStatistics();
  const cv = h.cumulativeStatistics();
  const ib = cumulative ? iv.cumulativeBuckets : iv.disjointBuckets;
  const cb = cumulative ? cv.cumulativeBuckets : cv.disjointBuckets;
  return { name: h.name, buckets: h.bounds.map((b, i) => ({ upper_bound: b, interval: ib[i], cumulative: cb[i] })) };
}

function histogramQuantiles(h: Histogram): unknown {
  const iv = h.intervalStatistics().quantiles;
  const cv = h.cumulativeStatistics().quantiles;
  return { name: h.name, values: cv.map((c, i) => ({ cumulative: nullIfNaN(c), interval: nullIfNaN(iv[i]!) })) };
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

/**
 * The metric groups of one section: a group per Prometheus name, ordered by the tag-extracted name of the stat that
 * opened it (token by token), then by that name.
 */
class Groups {
  readonly metric: string[] = [];
  readonly key: string[] = [];
  private readonly byMetric = new Map<string, number>();
  private readonly envoy = new Map<string, number>();
  private readonly own = new Map<string, number>();

  /** The group of a stat with this tag-extracted name; `own`: a family stat, printed without `envoy_`. */
  of(extractedName: string, own: boolean): number {
    const map = own ? this.own : this.envoy;
    let g = map.get(extractedName);
    if (g === undefined) {
      const metric = own ? sanitizePrometheusName(extractedName) : 'envoy_' + sanitizePrometheusName(extractedName);
      g = this.byMetric.get(metric);
      if (g === undefined) {
        g = this.metric.length;
        this.metric.push(metric);
        this.key.push(extractedName);
        this.byMetric.set(metric, g);
      }
      map.set(extractedName, g);
    }
    return g;
  }

  /** Group numbers in output order. */
  order(): number[] {
    const keys = this.key.map((k) => k.replaceAll('.', '\u0000'));
    const m = this.metric;
    return m.map((_, i) => i).sort((a, b) => (keys[a]! < keys[b]! ? -1 : keys[a]! > keys[b]! ? 1 : m[a]! < m[b]! ? -1 : m[a]! > m[b]! ? 1 : 0));
  }
}

/** Entry indexes grouped by `group` in the groups' output order, each group's entries sorted token by token. */
function groupedOrder(rows: Rows, group: readonly number[], groups: Groups): { order: Int32Array; groupOrder: number[]; starts: Int32Array } {
  const groupOrder = groups.order();
  const rank = new Int32Array(groupOrder.length);
  groupOrder.forEach((g, r) => (rank[g] = r));
  const starts = new Int32Array(groupOrder.length + 1);
  for (let i = 0; i < rows.n; i++) starts[rank[group[i]!]! + 1]!++;
  for (let r = 0; r < groupOrder.length; r++) starts[r + 1]! += starts[r]!;
  const fill = starts.slice(0, groupOrder.length);
  const order = new Int32Array(rows.n);
  for (let i = 0; i < rows.n; i++) order[fill[rank[group[i]!]!]!++] = i;
  for (let r = 0; r < groupOrder.length; r++) if (starts[r + 1]! - starts[r]! > 1) rows.sorted(true, starts[r]!, starts[r + 1]!, order);
  return { order, groupOrder, starts };
}

/** Per render: label text by tag array (the store shares one tag array among the stats of a scope). */
class TagText {
  private readonly cache = new Map<readonly string[], string>();
  of(tags: readonly string[]): string {
    let s = this.cache.get(tags);
    if (s === undefined) this.cache.set(tags, (s = formatTags(tags)));
    return s;
  }
}

function* numericSection(store: StatsStore, p: StatsParams, kind: SourceStatKind, tagText: TagText, out: Pieces): Generator<string, void, undefined> {
  const rows = new Rows();
  const tags: Array<readonly string[]> = [];
  const group: number[] = [];
  const groups = new Groups();
  forEachNumeric(store, p, kind, (pre, suf, value, metric, scope) => {
    const t = metric !== undefined ? store.tagsOf(metric) : scope!.sourceTags(suf);
    rows.add(pre, suf, value, scope);
    tags.push(t.tags);
    group.push(groups.of(t.extractedName, metric !== undefined && metric.explicitTags !== undefined));
  });
  const { order, groupOrder, starts } = groupedOrder(rows, group, groups);
  for (let r = 0; r < groupOrder.length; r++) {
    const metric = groups.metric[groupOrder[r]!]!;
    out.s += `# TYPE ${metric} ${kind}\n`;
    for (let k = starts[r]!; k < starts[r + 1]!; k++) {
      const i = order[k]!;
      out.s += `${metric}{${tagText.of(tags[i]!)}} ${rows.val[i]}\n`;
      if (out.full) yield out.take();
    }
  }
}

function* textReadoutSection(store: StatsStore, p: StatsParams, out: Pieces): Generator<string, void, undefined> {
  const rows = new Rows();
  const labels: string[] = [];
  const group: number[] = [];
  const groups = new Groups();
  for (const t of collectTextReadouts(store, p)) {
    const x = store.tagsOf(t);
    rows.add(t.name, '', 0);
    labels.push(formatTags([...x.tags, 'text_value', t.value]));
    group.push(groups.of(x.extractedName, t.explicitTags !== undefined));
  }
  const { order, groupOrder, starts } = groupedOrder(rows, group, groups);
  for (let r = 0; r < groupOrder.length; r++) {
    const metric = groups.metric[groupOrder[r]!]!;
    out.s += `# TYPE ${metric} gauge\n`;
    for (let k = starts[r]!; k < starts[r + 1]!; k++) {
      out.s += `${metric}{${labels[order[k]!]}} 0\n`;
      if (out.full) yield out.take();
    }
  }
}

function* histogramSection(store: StatsStore, p: StatsParams, tagText: TagText, out: Pieces): Generator<string, void, undefined> {
  const rows = new Rows();
  const hs: Histogram[] = [];
  const group: number[] = [];
  const groups = new Groups();
  forEachHistogram(store, p, (h) => {
    const t = store.tagsOf(h);
    rows.add(h.name, '', 0);
    hs.push(h);
    group.push(groups.of(t.extractedName, h.explicitTags !== undefined));
  });
  const summary = p.histogramBuckets === 'summary';
  const le = new Map<readonly number[], string[]>();
  const { order, groupOrder, starts } = groupedOrder(rows, group, groups);
  for (let r = 0; r < groupOrder.length; r++) {
    const metric = groups.metric[groupOrder[r]!]!;
    out.s += `# TYPE ${metric} ${summary ? 'summary' : 'histogram'}\n`;
    for (let k = starts[r]!; k < starts[r + 1]!; k++) {
      const h = hs[order[k]!]!;
      const t = tagText.of(store.tagsOf(h).tags);
      if (summary) summaryLines(h, metric, t, out);
      else {
        let bounds = le.get(h.bounds);
        if (bounds === undefined) le.set(h.bounds, (bounds = h.bounds.map((b) => `le="${formatShortest(b)}"} `)));
        histogramLines(h, metric, t, bounds, out);
      }
      if (out.full) yield out.take();
    }
  }
}

export function* prometheusChunks(store: StatsStore, p: StatsParams): Generator<string, void, undefined> {
  const out = new Pieces();
  const tagText = new TagText();
  yield* numericSection(store, p, 'counter', tagText, out);
  yield* numericSection(store, p, 'gauge', tagText, out);
  if (p.textReadouts) yield* textReadoutSection(store, p, out);
  yield* histogramSection(store, p, tagText, out);
  if (out.s !== '') yield out.take();
}

export function renderPrometheus(store: StatsStore, p: StatsParams): string {
  return joinChunks(prometheusChunks(store, p));
}

/** Cumulative buckets straight from the histogram's counts (no quantiles computed). */
function histogramLines(h: Histogram, metric: string, tags: string, le: readonly string[], out: Pieces): void {
  const ht = tags === '' ? '' : tags + ',';
  const counts = h.counts;
  let running = 0;
  let s = '';
  for (let i = 0; i < le.length; i++) {
    running += counts[i]!;
    s += `${metric}_bucket{${ht}${le[i]}${running}\n`;
  }
  s += `${metric}_bucket{${ht}le="+Inf"} ${h.count}\n`;
  s += `${metric}_sum{${tags}} ${formatShortest(h.sum)}\n`;
  s += `${metric}_count{${tags}} ${h.count}\n`;
  out.s += s;
}

function summaryLines(h: Histogram, metric: string, tags: string, out: Pieces): void {
  const s = h.intervalStatistics();
  const ht = tags === '' ? '' : tags + ',';
  let o = '';
  for (let i = 0; i < SUPPORTED_QUANTILES.length; i++) o += `${metric}{${ht}quantile="${formatShortest(SUPPORTED_QUANTILES[i]!)}"} ${formatShortest(s.quantiles[i]!)}\n`;
  o += `${metric}_sum{${tags}} ${formatShortest(s.sum)}\n`;
  o += `${metric}_count{${tags}} ${s.count}\n`;
  out.s += o;
}
