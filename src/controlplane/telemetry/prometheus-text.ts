/**
 * The Prometheus text exposition format, read side: what the control plane's telemetry needs to read its proxies'
 * `/stats/prometheus`, and Prometheus' `histogram_quantile` over cumulative buckets.
 *
 *   for (const s of parsePrometheusText(text)) s.name, s.labels, s.value
 *   histogramQuantile(0.99, new Map([[5, 10], [10, 40], [Infinity, 42]]))   // ms, linear inside a bucket
 */

export interface PromSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+-?\d+)?$/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Parses the text format; comments, blank and malformed lines are skipped (a scrape is never rejected whole). */
export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (Number.isNaN(value)) continue;
    const labels: Record<string, string> = {};
    if (m[2]) for (const l of m[2].matchAll(LABEL)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** A bucket's `le` label as a number (`+Inf` → Infinity); NaN when malformed. */
export function leOf(le: string | undefined): number {
  return le === '+Inf' ? Infinity : le === undefined ? NaN : Number(le);
}

/**
 * Prometheus' histogram_quantile over cumulative buckets (upper bound → cumulative count): linear interpolation
 * inside the bucket holding the rank, the lower bound of the first bucket taken as 0, and the highest finite
 * bound when the rank falls in the +Inf bucket. Undefined without observations.
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<number, number>): number | undefined {
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
