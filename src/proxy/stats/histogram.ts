/**
 * Histograms, recorded on the request path without allocating:
 *
 *   const h = scope.histogram('upstream_rq_time', HistogramUnit.Milliseconds);   // at config time
 *   h.record(12.5);                                                             // per request
 *
 * A histogram keeps
 * - the Prometheus view: a fixed bucket array (Envoy's default bounds `DEFAULT_BUCKETS`, or the configured ones),
 *   `sum` and `count`. A value v falls in the first bucket whose upper bound b has v <= b (Prometheus `le`), or in the
 *   overflow slot. These counts are exact.
 * - the quantile view: a log-linear histogram with two significant decimal digits per bin, the layout Envoy's
 *   circllhist uses (bins [1.0, 1.1), [1.1, 1.2) ... [99, 100), [100, 110) ...). Quantiles are interpolated within a
 *   bin exactly as circllhist's `hist_approx_quantile` does, so `/stats` prints the same P0..P100 numbers Envoy does
 *   (one sample of 1 → P25 1.025, P100 1.1). The bins of a decade are allocated the first time a value lands in
 *   that decade (a handful of times per histogram's life, never per record afterwards).
 * Both are allocated by the first record: a sidecar has a histogram per cluster, and most never record a value.
 *
 * Intervals: Envoy reports each histogram twice — over the last completed stats-flush interval and cumulatively.
 * `flushInterval()` (the store calls it from its flush timer, 5 s by default like Envoy's stats_flush_interval)
 * closes an interval. Cumulative values are live (Envoy shows them as of the last flush).
 *
 * Values are in the histogram's unit (milliseconds for latencies); negative values and NaN count as 0, values below
 * 1e-8 fall in the zero bin of the quantile view and values from 1e16 on in its top bin.
 */

import { Metric } from './metric.js';

/** Envoy's default histogram bucket bounds (HistogramSettingsImpl::defaultBuckets). */
export const DEFAULT_BUCKETS: readonly number[] = Object.freeze([
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000,
]);

/** The quantiles Envoy reports (HistogramStatisticsImpl::supportedQuantiles), as fractions. */
export const SUPPORTED_QUANTILES: readonly number[] = Object.freeze([0, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.995, 0.999, 1]);

/** envoy Stats::Histogram::Unit. */
export enum HistogramUnit {
  Unspecified = 0,
  Bytes = 1,
  Microseconds = 2,
  Milliseconds = 3,
  Percent = 4,
}

// Log-linear bins: exponents MIN_EXP..MAX_EXP, 90 bins (mantissa 10..99) per decade.
const MIN_EXP = -8;
const MAX_EXP = 15;
const DECADES = MAX_EXP - MIN_EXP + 1;
/** 10^e for e in MIN_EXP-1..MAX_EXP+1 (index e - MIN_EXP + 1), parsed from literals so they are correctly rounded. */
const POW10: Float64Array = (() => {
  const a = new Float64Array(DECADES + 2);
  for (let e = MIN_EXP - 1; e <= MAX_EXP + 1; e++) a[e - MIN_EXP + 1] = Number(`1e${e}`);
  return a;
})();
function pow10(e: number): number {
  return POW10[e - MIN_EXP + 1]!;
}

/** Computed statistics of one view (interval or cumulative). */
export interface HistogramStatistics {
  /** Samples. */
  count: number;
  /** Sum of the samples. */
  sum: number;
  /** One value per SUPPORTED_QUANTILES entry; NaN when there are no samples. */
  quantiles: number[];
  /** Cumulative counts per bucket bound (count of samples <= bound), one per bound. */
  cumulativeBuckets: number[];
  /** Counts per bucket ((previous bound, bound]), one per bound; samples above the last bound are not in any. */
  disjointBuckets: number[];
}

export class Histogram extends Metric {
  /** Samples recorded (all time). */
  count = 0;
  /** Sum of the samples (all time). */
  sum = 0;
  /** Samples equal to zero (the log-linear zero bin). */
  private zero = 0;
  // Allocated by the first record: most histograms of a sidecar (one per cluster) never record a value.
  private buckets: Float64Array | undefined;
  /** Log-linear bins per decade, each allocated on first use. */
  private bins: Array<Float64Array | undefined> | undefined;
  // Interval state: the snapshot at the last flush, and the last completed interval.
  private snap: IntervalState | undefined;
  private last: IntervalState | undefined;

  constructor(
    name: string,
    readonly unit: HistogramUnit,
    /** Bucket upper bounds, ascending. */
    readonly bounds: readonly number[],
    pinEnd = 0,
    explicitTags: readonly string[] | undefined = undefined,
  ) {
    super(name, pinEnd, explicitTags);
  }

  /** Per-bucket (disjoint) counts; the last slot counts values above the last bound. Read only. */
  get counts(): Float64Array {
    return this.buckets ?? zeros(this.bounds.length + 1);
  }

  /** Records one value. */
  record(v: number): void {
    if (!(v > 0)) v = 0;
    this.count++;
    this.sum += v;
    this.used = true;
    const bounds = this.bounds;
    const n = bounds.length;
    let i = 0;
    while (i < n && v > bounds[i]!) i++;
    (this.buckets ??= new Float64Array(n + 1))[i]!++;
    if (v === 0) {
      this.zero++;
      return;
    }
    // The decimal exponent by comparison with powers of ten (cheaper than Math.log10 for the usual range).
    let e = 0;
    if (v >= 1) {
      while (e < MAX_EXP && v >= POW10[e + 2 - MIN_EXP]!) e++;
    } else {
      e = -1;
      while (e >= MIN_EXP && v < POW10[e + 1 - MIN_EXP]!) e--;
      if (e < MIN_EXP) {
        this.zero++;
        return;
      }
    }
    // circllhist's double_to_hist_bucket: two significant digits, with a tolerance for rounding at bin edges.
    let m = Math.floor((v / pow10(e)) * 10 + 1e-13);
    if (m >= 100) {
      if (e < MAX_EXP) {
        e++;
        m = 10;
      } else {
        m = 99;
      }
    } else if (m < 10) {
      m = 10;
    }
    const d = e - MIN_EXP;
    const all = (this.bins ??= new Array<Float64Array | undefined>(DECADES).fill(undefined));
    let bins = all[d];
    if (bins === undefined) bins = all[d] = new Float64Array(90);
    bins[m - 10]!++;
  }

  /** Closes the current interval (called by the store's flush timer). */
  flushInterval(): void {
    if (!this.used) return;
    const snap = (this.snap ??= new IntervalState(this.counts.length));
    const last = (this.last ??= new IntervalState(this.counts.length));
    last.count = this.count - snap.count;
    last.sum = this.sum - snap.sum;
    last.zero = this.zero - snap.zero;
    snap.count = this.count;
    snap.sum = this.sum;
    snap.zero = this.zero;
    const counts = this.counts;
    for (let i = 0; i < counts.length; i++) {
      last.counts[i] = counts[i]! - snap.counts[i]!;
      snap.counts[i] = counts[i]!;
    }
    const bins = this.bins ?? NO_BINS;
    for (let d = 0; d < bins.length; d++) {
      const live = bins[d];
      if (live === undefined) continue;
      const s = (snap.bins[d] ??= new Float64Array(90));
      const l = (last.bins[d] ??= new Float64Array(90));
      for (let j = 0; j < 90; j++) {
        l[j] = live[j]! - s[j]!;
        s[j] = live[j]!;
      }
    }
  }

  /** Statistics over everything recorded. */
  cumulativeStatistics(): HistogramStatistics {
    return statistics(this.count, this.sum, this.zero, this.counts, this.bins ?? NO_BINS, this.bounds);
  }

  /** Statistics over the last completed flush interval (no samples before the first flush). */
  intervalStatistics(): HistogramStatistics {
    const last = this.last;
    if (!last) return statistics(0, 0, 0, new Float64Array(this.counts.length), [], this.bounds);
    return statistics(last.count, last.sum, last.zero, last.counts, last.bins, this.bounds);
  }

  /** Forgets everything recorded (Envoy's `/reset_counters` leaves histograms alone; so does the store's). */
  reset(): void {
    this.count = 0;
    this.sum = 0;
    this.zero = 0;
    this.used = false;
    this.buckets?.fill(0);
    if (this.bins !== undefined) for (const b of this.bins) b?.fill(0);
    this.snap = undefined;
    this.last = undefined;
  }
}

const NO_BINS: ReadonlyArray<Float64Array | undefined> = Object.freeze([]);
const ZEROS = new Map<number, Float64Array>();

/** A zero bucket array of length n, shared by the histograms that have recorded nothing (never written). */
function zeros(n: number): Float64Array {
  let z = ZEROS.get(n);
  if (z === undefined) ZEROS.set(n, (z = new Float64Array(n)));
  return z;
}

class IntervalState {
  count = 0;
  sum = 0;
  zero = 0;
  readonly counts: Float64Array;
  readonly bins: Array<Float64Array | undefined> = new Array<Float64Array | undefined>(DECADES).fill(undefined);
  constructor(n: number) {
    this.counts = new Float64Array(n);
  }
}

function statistics(
  count: number,
  sum: number,
  zero: number,
  counts: Float64Array,
  bins: ReadonlyArray<Float64Array | undefined>,
  bounds: readonly number[],
): HistogramStatistics {
  const disjoint: number[] = new Array<number>(bounds.length);
  const cumulative: number[] = new Array<number>(bounds.length);
  let running = 0;
  for (let i = 0; i < bounds.length; i++) {
    disjoint[i] = counts[i]!;
    running += counts[i]!;
    cumulative[i] = running;
  }
  return { count, sum, quantiles: quantiles(count, zero, bins), cumulativeBuckets: cumulative, disjointBuckets: disjoint };
}

/** circllhist's hist_approx_quantile over the zero bin and the log-linear bins, for SUPPORTED_QUANTILES. */
function quantiles(total: number, zero: number, bins: ReadonlyArray<Float64Array | undefined>): number[] {
  const qs = SUPPORTED_QUANTILES;
  const out = new Array<number>(qs.length);
  if (total === 0) return out.fill(NaN);
  // The non-empty bins in ascending order, as (left, width, count).
  const lefts: number[] = [];
  const widths: number[] = [];
  const cnts: number[] = [];
  if (zero > 0) {
    lefts.push(0);
    widths.push(0);
    cnts.push(zero);
  }
  for (let d = 0; d < bins.length; d++) {
    const b = bins[d];
    if (b === undefined) continue;
    const e = d + MIN_EXP;
    const p = pow10(e);
    for (let j = 0; j < 90; j++) {
      const c = b[j]!;
      if (c === 0) continue;
      lefts.push(((j + 10) / 10) * p);
      widths.push(p / 10);
      cnts.push(c);
    }
  }
  let ib = 0;
  let lower = 0;
  let upper = cnts[0] ?? 0;
  for (let iq = 0; iq < qs.length; iq++) {
    const target = total * qs[iq]!;
    while (ib < cnts.length - 1 && upper < target) {
      ib++;
      lower = upper;
      upper = lower + cnts[ib]!;
    }
    const left = lefts[ib] ?? 0;
    const width = widths[ib] ?? 0;
    if (lower === target) out[iq] = left;
    else if (upper === target) out[iq] = left + width;
    else if (width === 0) out[iq] = left;
    else out[iq] = left + ((target - lower) / (upper - lower)) * width;
  }
  return out;
}
