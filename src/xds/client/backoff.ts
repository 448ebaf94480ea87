/**
 * Exponential backoff with full jitter: the n-th delay (n from 0) is uniform in [0, min(max, base * 2^n)).
 * `reset()` starts over (the ADS client resets once a stream has received a response, as Envoy does).
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly baseMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {
    if (!(baseMs > 0) || !(maxMs >= baseMs)) throw new Error(`backoff: need 0 < baseMs <= maxMs (got ${baseMs}, ${maxMs})`);
  }

  /** Failures since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The upper bound of the next delay. */
  ceiling(): number {
    return Math.min(this.maxMs, this.baseMs * 2 ** Math.min(this.attempt, 40));
  }

  /** The next delay in ms; counts an attempt. */
  next(): number {
    const cap = this.ceiling();
    this.attempt++;
    return Math.floor(this.random() * cap);
  }

  reset(): void {
    this.attempt = 0;
  }
}
