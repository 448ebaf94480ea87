/**
 * The stat objects the request path holds and updates. Each is created once (at config time) through a scope of the
 * store (store.ts) and then only touched through its methods:
 *
 *   counter.inc(); counter.add(n);            // only grows (admin /reset_counters sets it back to 0)
 *   gauge.set(n); gauge.inc(); gauge.dec(); gauge.add(n); gauge.sub(n);
 *   textReadout.set('v1.2.3');
 *   histogram.record(ms);                     // histogram.ts
 *
 * `used` tells whether the stat was ever written (`/stats?usedonly`). Writing a stat whose scope was removed is
 * harmless: it is just no longer listed.
 */

/** What every stat shares: its full name and the store's bookkeeping. */
export abstract class Metric {
  /** Set by every write. */
  used = false;
  /** How many scopes hold this stat; it leaves the store when the last one is removed. */
  refs = 0;
  /** Tag extraction result, computed on first use by the Prometheus output. */
  tagCache: { extractedName: string; tags: string[] } | undefined = undefined;

  constructor(
    /** The full dot-separated Envoy name, e.g. `cluster.reviews.upstream_rq_total`. */
    readonly name: string,
    /** End of a named scope's name inside `name` (one token for tag extraction); 0 for none. */
    readonly pinEnd = 0,
    /** Tags given explicitly (labelled families), flat name/value pairs; undefined → extracted from the name. */
    readonly explicitTags: readonly string[] | undefined = undefined,
  ) {}
}

export class Counter extends Metric {
  value = 0;

  inc(): void {
    this.value++;
    this.used = true;
  }

  add(n: number): void {
    this.value += n;
    this.used = true;
  }

  reset(): void {
    this.value = 0;
  }
}

export class Gauge extends Metric {
  value = 0;

  set(v: number): void {
    this.value = v;
    this.used = true;
  }

  inc(): void {
    this.value++;
    this.used = true;
  }

  dec(): void {
    this.value--;
    this.used = true;
  }

  add(n: number): void {
    this.value += n;
    this.used = true;
  }

  sub(n: number): void {
    this.value -= n;
    this.used = true;
  }
}

export class TextReadout extends Metric {
  value = '';

  set(v: string): void {
    this.value = v;
    this.used = true;
  }
}
