/**
 * The proxy's stats store (Envoy's Stats::Store): counters, gauges, histograms and text readouts named with
 * Envoy's dot-separated names, grouped by scopes.
 *
 *   const store = new StatsStore();                                     // Envoy's default tag extractors
 *   const cs = store.scope(`cluster.${cluster.name}.`);                 // at config time
 *   const rqTotal = cs.counter('upstream_rq_total');                    // cluster.<name>.upstream_rq_total
 *   const rqTime = cs.histogram('upstream_rq_time', HistogramUnit.Milliseconds);
 *   rqTotal.inc(); rqTime.record(3.2);                                   // request path: no lookups, no allocation
 *   cs.addSource(clusterRuntime.stats);                                 // stats kept elsewhere (plain fields)
 *   drained.then(() => cs.remove());                                    // cluster removed: its stats go away
 *   store.startFlushTimer();                                            // histogram intervals (5 s)
 *
 * Names: a scope's prefix gets Envoy's sanitizing (`:` → `_`, so `listener.127.0.0.1:15001.` becomes
 * `listener.127.0.0.1_15001.`); asking twice for the same name returns the same object. A scope created directly
 * on the store as `<kind>.<name>.` for a kind whose Envoy tag is `<kind>.$.**` (cluster, http, tcp, vhost, ...)
 * keeps `<name>` as one tag value even when it contains dots (see tags.ts); create nested parts with
 * `scope.scope('...')`, not in the same prefix.
 *
 * Removal: each scope holds a reference on the stats it created; `scope.remove()` (also removing its child scopes and
 * sources) drops them, and a stat leaves the store when no scope holds it any more. Objects held by in-flight
 * requests keep working; they are just no longer listed.
 *
 * Labelled families (the hook for Istio's standard metrics, `istio_requests_total{reporter=...,response_code=...}`):
 *
 *   const requests = store.counterFamily('istio_requests_total', ['reporter', 'source_workload', 'response_code']);
 *   requests.get(['destination', 'productpage-v1', '200']).inc();      // child created once per label set, cached
 *
 * A family child is listed in `/stats` as `<family>.<label>.<value>...` (Envoy's name for explicitly tagged stats)
 * and in `/stats/prometheus` as `<family>{<label>="<value>",...}` without the `envoy_` prefix, as Envoy prints stats
 * of a custom namespace.
 *
 * Stats sources: `scope.addSource({ forEach(cb) })` lists stats kept outside the store (the upstream cluster's
 * plain-field ClusterStats); `cb(name, value, 'counter' | 'gauge')` is called at render time with names relative to
 * the scope.
 */
import { RE2JS } from 're2js';
import { DEFAULT_BUCKETS, Histogram, HistogramUnit } from './histogram.js';
import { Counter, Gauge, Metric, TextReadout } from './metric.js';
import { NAMED_SCOPE_KINDS, TagProducer, type ExtractedTags, type TagProducerOptions } from './tags.js';

export type SourceStatKind = 'counter' | 'gauge';

/** Stats kept outside the store, listed at render time. */
export interface StatsSource {
  forEach(cb: (name: string, value: number, kind: SourceStatKind) => void): void;
}

/** An Envoy StringMatcher over stat names (one field set). */
export interface StatNameMatcher {
  exact?: string;
  prefix?: string;
  suffix?: string;
  contains?: string;
  /** RE2, matching the whole name. */
  regex?: string;
}

export interface StatsStoreOptions extends TagProducerOptions {
  /** `stats_config.histogram_bucket_settings`: the first matching entry gives a histogram its bounds. */
  histogramBucketSettings?: ReadonlyArray<{ match: StatNameMatcher; buckets: readonly number[] }>;
}

/** Envoy's Stats::Utility::sanitizeStatsName applied to scope prefixes. */
export function sanitizeStatsName(name: string): string {
  if (name.indexOf(':') < 0 && name.indexOf('\0') < 0) return name;
  return name.replaceAll('://', '_').replaceAll(':/', '_').replaceAll(':', '_').replaceAll('\0', '_');
}

const METRIC_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

export class StatsStore {
  readonly tagProducer: TagProducer;
  /** The scope without prefix. */
  readonly root: Scope;
  /** @internal */ readonly counterMap = new Map<string, Counter>();
  /** @internal */ readonly gaugeMap = new Map<string, Gauge>();
  /** @internal */ readonly histogramMap = new Map<string, Histogram>();
  /** @internal */ readonly textReadoutMap = new Map<string, TextReadout>();
  /** @internal */ readonly familyMap = new Map<string, Family<Counter | Gauge | Histogram>>();
  /** Scopes with sources. @internal */ readonly sourceScopes = new Set<Scope>();
  private readonly bucketSettings: Array<{ match: (name: string) => boolean; buckets: readonly number[] }>;
  private flushTimer: NodeJS.Timeout | undefined;

  /** Throws on an invalid tag specifier or bucket setting (configuration errors, found at start-up). */
  constructor(opts: StatsStoreOptions = {}) {
    this.tagProducer = new TagProducer(opts);
    this.bucketSettings = (opts.histogramBucketSettings ?? []).map((s) => ({ match: compileMatcher(s.match), buckets: checkBuckets(s.buckets) }));
    this.root = new Scope(this, '', 0, undefined);
  }

  /** A scope whose stats are named `<prefix><name>`; `prefix` normally ends with a dot. */
  scope(prefix: string): Scope {
    return this.root.scope(prefix);
  }

  counter(name: string): Counter {
    return this.root.counter(name);
  }
  gauge(name: string): Gauge {
    return this.root.gauge(name);
  }
  histogram(name: string, unit: HistogramUnit = HistogramUnit.Unspecified, buckets?: readonly number[]): Histogram {
    return this.root.histogram(name, unit, buckets);
  }
  textReadout(name: string): TextReadout {
    return this.root.textReadout(name);
  }

  /** A counter family with fixed label names (see the file comment). Asking again returns the same family. */
  counterFamily(name: string, labelNames: readonly string[]): Family<Counter> {
    return this.family(name, 'counter', labelNames, (full, tags) => new Counter(full, 0, tags));
  }

  gaugeFamily(name: string, labelNames: readonly string[]): Family<Gauge> {
    return this.family(name, 'gauge', labelNames, (full, tags) => new Gauge(full, 0, tags));
  }

  histogramFamily(name: string, labelNames: readonly string[], unit: HistogramUnit = HistogramUnit.Unspecified, buckets?: readonly number[]): Family<Histogram> {
    const bounds = buckets ? checkBuckets(buckets) : this.bucketsFor(name);
    return this.family(name, 'histogram', labelNames, (full, tags) => new Histogram(full, unit, bounds, 0, tags));
  }

  private family<T extends Counter | Gauge | Histogram>(name: string, kind: FamilyKind, labelNames: readonly string[], make: (fullName: string, tags: string[]) => T): Family<T> {
    const existing = this.familyMap.get(name);
    if (existing) {
      if (existing.kind !== kind || existing.labelNames.join(',') !== labelNames.join(',')) {
        throw new Error(`stat family ${name} already exists as a ${existing.kind} family with labels [${existing.labelNames.join(', ')}]`);
      }
      return existing as unknown as Family<T>;
    }
    if (!METRIC_NAME.test(name)) throw new Error(`stat family name ${JSON.stringify(name)} must match [a-zA-Z_][a-zA-Z0-9_]*`);
    for (const l of labelNames) {
      if (!METRIC_NAME.test(l)) throw new Error(`label name ${JSON.stringify(l)} of ${name} must match [a-zA-Z_][a-zA-Z0-9_]*`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new Error(`stat family ${name} repeats a label name`);
    const f = new Family<T>(this, name, kind, [...labelNames], make);
    this.familyMap.set(name, f as unknown as Family<Counter | Gauge | Histogram>);
    return f;
  }

  /** The bucket bounds a histogram of this full name gets. */
  bucketsFor(name: string): readonly number[] {
    for (const s of this.bucketSettings) if (s.match(name)) return s.buckets;
    return DEFAULT_BUCKETS;
  }

  /** Closes the current histogram interval (Envoy does this at every stats flush). */
  flushHistograms(): void {
    for (const h of this.histogramMap.values()) h.flushInterval();
    for (const f of this.familyMap.values()) {
      if (f.kind !== 'histogram') continue;
      for (const c of f.children()) (c as Histogram).flushInterval();
    }
  }

  /** Flushes histogram intervals every `intervalMs` (Envoy's stats_flush_interval, default 5 s); returns a stop function. */
  startFlushTimer(intervalMs = 5000): () => void {
    this.stopFlushTimer();
    const t = setInterval(() => this.flushHistograms(), intervalMs);
    t.unref();
    this.flushTimer = t;
    return () => this.stopFlushTimer();
  }

  stopFlushTimer(): void {
    if (this.flushTimer) clearInterval(this.flushTimer);
    this.flushTimer = undefined;
  }

  /** Admin `/reset_counters`: every counter back to zero. */
  resetCounters(): void {
    for (const c of this.counterMap.values()) c.reset();
    for (const f of this.familyMap.values()) {
      if (f.kind !== 'counter') continue;
      for (const c of f.children()) (c as Counter).reset();
    }
  }

  /** The tag-extracted name and tags of a stat (computed once per stat). */
  tagsOf(m: Metric): ExtractedTags {
    let t = m.tagCache;
    if (t === undefined) {
      t = m.explicitTags !== undefined ? { extractedName: familyNameOf(m.name, m.explicitTags), tags: m.explicitTags as string[] } : this.extract(m.name, m.pinEnd);
      m.tagCache = t;
    }
    return t;
  }

  /**
   * Tag extraction with the resulting strings shared between stats (thousands of stats have the same
   * tag-extracted name and the same cluster name value). @internal
   */
  extract(name: string, pinEnd: number): ExtractedTags {
    const t = this.tagProducer.produce(name, pinEnd);
    if (this.internPool.size > 100_000) this.internPool.clear();
    if (this.tagsPool.size > 100_000) this.tagsPool.clear();
    const key = t.tags.join('\u0000');
    let tags = this.tagsPool.get(key);
    if (tags === undefined) {
      tags = t.tags.map((x) => this.intern(x));
      this.tagsPool.set(key, tags);
    }
    return { extractedName: this.intern(t.extractedName), tags };
  }

  private readonly internPool = new Map<string, string>();
  private readonly tagsPool = new Map<string, string[]>();
  private intern(s: string): string {
    const have = this.internPool.get(s);
    if (have !== undefined) return have;
    this.internPool.set(s, s);
    return s;
  }

  // ---- creation (used by Scope) ------------------------------------------------------------------------------

  /** @internal */
  getCounter(name: string, pinEnd: number): Counter {
    let c = this.counterMap.get(name);
    if (!c) this.counterMap.set(name, (c = new Counter(name, pinEnd)));
    return c;
  }
  /** @internal */
  getGauge(name: string, pinEnd: number): Gauge {
    let g = this.gaugeMap.get(name);
    if (!g) this.gaugeMap.set(name, (g = new Gauge(name, pinEnd)));
    return g;
  }
  /** @internal */
  getHistogram(name: string, pinEnd: number, unit: HistogramUnit, buckets: readonly number[] | undefined): Histogram {
    let h = this.histogramMap.get(name);
    if (!h) this.histogramMap.set(name, (h = new Histogram(name, unit, buckets ? checkBuckets(buckets) : this.bucketsFor(name), pinEnd)));
    return h;
  }
  /** @internal */
  getTextReadout(name: string, pinEnd: number): TextReadout {
    let t = this.textReadoutMap.get(name);
    if (!t) this.textReadoutMap.set(name, (t = new TextReadout(name, pinEnd)));
    return t;
  }
  /** @internal Drops a stat no scope holds any more. */
  release(m: Metric): void {
    if (--m.refs > 0) return;
    if (m instanceof Counter) {
      if (this.counterMap.get(m.name) === m) this.counterMap.delete(m.name);
    } else if (m instanceof Gauge) {
      if (this.gaugeMap.get(m.name) === m) this.gaugeMap.delete(m.name);
    } else if (m instanceof Histogram) {
      if (this.histogramMap.get(m.name) === m) this.histogramMap.delete(m.name);
    } else if (m instanceof TextReadout) {
      if (this.textReadoutMap.get(m.name) === m) this.textReadoutMap.delete(m.name);
    }
  }
}

export class Scope {
  // The collections are created on first use: a proxy holds a scope per cluster, most of which never get a child
  // scope, and whose tag cache is filled only when /stats/prometheus is read.
  private owned: Set<Metric> | undefined;
  private childScopes: Set<Scope> | undefined;
  /** @internal */ readonly sources: StatsSource[] = [];
  /** Tag extraction of source stats, by name relative to the scope. */
  /**
   * Tag extraction of source stats by name relative to the scope: the tag-extracted name alone when the tags are
   * `commonTags` (the scope's own tags, which almost every stat of a cluster has), else the whole result.
   */
  private tagCache: Map<string, ExtractedTags | string> | undefined;
  private commonTags: string[] | undefined;
  private removed = false;

  /** @internal */
  constructor(
    private readonly store: StatsStore,
    /** Prefix of every stat of this scope ('' or ending with a dot). */
    readonly prefix: string,
    /** @internal */ readonly pinEnd: number,
    private readonly parent: Scope | undefined,
  ) {}

  /** A child scope: its prefix is this prefix plus `prefix` (sanitized; a trailing dot is added when missing). */
  scope(prefix: string): Scope {
    let p = sanitizeStatsName(prefix);
    while (p.startsWith('.')) p = p.slice(1);
    if (p !== '' && !p.endsWith('.')) p += '.';
    const full = this.prefix + p;
    let pinEnd = this.pinEnd;
    if (this.parent === undefined && this.prefix === '') {
      const dot = full.indexOf('.');
      if (dot > 0 && dot < full.length - 1 && NAMED_SCOPE_KINDS.has(full.slice(0, dot))) pinEnd = full.length - 1;
    }
    const s = new Scope(this.store, full, pinEnd, this);
    if (!this.removed) (this.childScopes ??= new Set()).add(s);
    else s.removed = true;
    return s;
  }

  counter(name: string): Counter {
    if (this.removed) return new Counter(this.prefix + name, this.pinEnd);
    return this.own(this.store.getCounter(this.prefix + name, this.pinEnd));
  }

  gauge(name: string): Gauge {
    if (this.removed) return new Gauge(this.prefix + name, this.pinEnd);
    return this.own(this.store.getGauge(this.prefix + name, this.pinEnd));
  }

  /** A histogram; `buckets` overrides the configured / default bounds when the histogram is new. */
  histogram(name: string, unit: HistogramUnit = HistogramUnit.Unspecified, buckets?: readonly number[]): Histogram {
    const full = this.prefix + name;
    if (this.removed) return new Histogram(full, unit, buckets ?? this.store.bucketsFor(full), this.pinEnd);
    return this.own(this.store.getHistogram(full, this.pinEnd, unit, buckets));
  }

  textReadout(name: string): TextReadout {
    if (this.removed) return new TextReadout(this.prefix + name, this.pinEnd);
    return this.own(this.store.getTextReadout(this.prefix + name, this.pinEnd));
  }

  /** Whether the store has a counter of this name (relative to the scope), created through any scope. */
  hasCounter(name: string): boolean {
    return this.store.counterMap.has(this.prefix + name);
  }

  /** Lists stats kept elsewhere under this scope's prefix; returns a function that stops listing them. */
  addSource(source: StatsSource): () => void {
    if (this.removed) return () => {};
    this.sources.push(source);
    this.store.sourceScopes.add(this);
    return () => {
      const i = this.sources.indexOf(source);
      if (i >= 0) this.sources.splice(i, 1);
      if (this.sources.length === 0) {
        this.store.sourceScopes.delete(this);
        this.tagCache = undefined;
        this.commonTags = undefined;
      }
    };
  }

  /** Lists `next` where `prev` was listed (a cluster's stats moving to its runtime on first use); no-op once removed. */
  replaceSource(prev: StatsSource, next: StatsSource): void {
    const i = this.sources.indexOf(prev);
    if (i >= 0) this.sources[i] = next;
  }

  /** Removes the scope, its child scopes and sources; stats no other scope holds leave the store. Idempotent. */
  remove(): void {
    if (this.removed) return;
    this.removed = true;
    if (this.childScopes !== undefined) for (const c of [...this.childScopes]) c.remove();
    if (this.owned !== undefined) for (const m of this.owned) this.store.release(m);
    this.owned = undefined;
    this.sources.length = 0;
    this.tagCache = undefined;
    this.commonTags = undefined;
    this.store.sourceScopes.delete(this);
    this.parent?.childScopes?.delete(this);
  }

  /** The tags of a source stat, by its name relative to the scope; extracted once per name. @internal */
  sourceTags(shortName: string): ExtractedTags {
    const cache = (this.tagCache ??= new Map());
    const c = cache.get(shortName);
    if (typeof c === 'string') return { extractedName: c, tags: this.commonTags! };
    if (c !== undefined) return c;
    const t = this.store.extract(this.prefix + shortName, this.pinEnd);
    this.commonTags ??= t.tags;
    cache.set(shortName, t.tags === this.commonTags ? t.extractedName : t);
    return t;
  }

  get isRemoved(): boolean {
    return this.removed;
  }

  private own<T extends Metric>(m: T): T {
    const owned = (this.owned ??= new Set());
    if (!owned.has(m)) {
      owned.add(m);
      m.refs++;
    }
    return m;
  }
}

export type FamilyKind = 'counter' | 'gauge' | 'histogram';

type Level<T> = Map<string, Level<T> | T>;

/**
 * A metric family with fixed label names. `get(values)` returns the child for one set of label values, creating
 * it on first use; later calls walk one small map per label and allocate nothing.
 */
export class Family<T extends Counter | Gauge | Histogram> {
  private readonly rootLevel: Level<T> = new Map();
  private readonly list: T[] = [];
  private single: T | undefined;

  /** @internal */
  constructor(
    private readonly store: StatsStore,
    readonly name: string,
    readonly kind: FamilyKind,
    readonly labelNames: readonly string[],
    private readonly make: (fullName: string, tags: string[]) => T,
  ) {}

  /** The child for these label values (one per label name, in order). */
  get(values: readonly string[]): T {
    const n = this.labelNames.length;
    if (values.length !== n) throw new Error(`${this.name} takes ${n} label values, got ${values.length}`);
    if (n === 0) return (this.single ??= this.create(values));
    let level = this.rootLevel;
    for (let i = 0; i < n - 1; i++) {
      const v = values[i]!;
      let next = level.get(v) as Level<T> | undefined;
      if (next === undefined) level.set(v, (next = new Map()));
      level = next;
    }
    const last = values[n - 1]!;
    let child = level.get(last) as T | undefined;
    if (child === undefined) level.set(last, (child = this.create(values)));
    return child;
  }

  /** Drops the child of these label values; returns whether there was one. */
  delete(values: readonly string[]): boolean {
    const n = this.labelNames.length;
    if (values.length !== n) return false;
    let child: T | undefined;
    if (n === 0) {
      child = this.single;
      this.single = undefined;
    } else {
      let level: Level<T> | undefined = this.rootLevel;
      for (let i = 0; i < n - 1 && level; i++) level = level.get(values[i]!) as Level<T> | undefined;
      if (!level) return false;
      child = level.get(values[n - 1]!) as T | undefined;
      level.delete(values[n - 1]!);
    }
    if (!child) return false;
    const i = this.list.indexOf(child);
    if (i >= 0) this.list.splice(i, 1);
    return true;
  }

  /** Every child, in creation order. */
  children(): readonly T[] {
    return this.list;
  }

  /** Removes the family and its children from the store. */
  remove(): void {
    if (this.store.familyMap.get(this.name) === (this as unknown)) this.store.familyMap.delete(this.name);
  }

  private create(values: readonly string[]): T {
    const tags: string[] = [];
    let full = this.name;
    for (let i = 0; i < values.length; i++) {
      tags.push(this.labelNames[i]!, values[i]!);
      full += `.${this.labelNames[i]}.${values[i]}`;
    }
    const child = this.make(full, tags);
    this.list.push(child);
    return child;
  }
}

/** The tag-extracted name of a family child: the family name (the part of the name before the tags). */
function familyNameOf(fullName: string, tags: readonly string[]): string {
  if (tags.length === 0) return fullName;
  const first = `.${tags[0]}.`;
  const i = fullName.indexOf(first);
  return i < 0 ? fullName : fullName.slice(0, i);
}

function checkBuckets(b: readonly number[]): readonly number[] {
  if (b.length === 0) throw new Error('histogram buckets must not be empty');
  for (let i = 0; i < b.length; i++) {
    if (!Number.isFinite(b[i]!)) throw new Error(`histogram bucket ${b[i]} is not a finite number`);
    if (i > 0 && !(b[i]! > b[i - 1]!)) throw new Error(`histogram buckets must be strictly increasing (${b[i - 1]} then ${b[i]})`);
  }
  return Object.freeze([...b]);
}

function compileMatcher(m: StatNameMatcher): (name: string) => boolean {
  if (m.exact !== undefined) {
    const x = m.exact;
    return (n) => n === x;
  }
  if (m.prefix !== undefined) {
    const x = m.prefix;
    return (n) => n.startsWith(x);
  }
  if (m.suffix !== undefined) {
    const x = m.suffix;
    return (n) => n.endsWith(x);
  }
  if (m.contains !== undefined) {
    const x = m.contains;
    return (n) => n.includes(x);
  }
  if (m.regex !== undefined) {
    const re = RE2JS.compile(m.regex);
    return (n) => re.matches(n);
  }
  throw new Error('a histogram bucket setting needs a matcher (exact, prefix, suffix, contains or regex)');
}
