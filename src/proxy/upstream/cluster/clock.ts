/**
 * Time for the upstream machinery (outlier detection sweeps, health check intervals and timeouts, DNS refresh,
 * original-destination host cleanup, slow start). Everything takes a `Clock` so tests can inject a `ManualClock`
 * and move time forward deterministically instead of sleeping.
 *
 * - `systemClock`: monotonic milliseconds (`performance.now()`), `setTimeout` timers that do not keep the process
 *   alive (unref'd).
 * - `ManualClock`: time moves only with `advance(ms)`, which runs the timers that fall due in deadline order
 *   (timers a callback schedules inside the window run too). `advance` is synchronous; tests that need I/O to
 *   settle between ticks await it themselves.
 */
import { performance } from 'node:perf_hooks';

/** An opaque timer handle. */
export interface Timer {
  readonly __timer?: never;
}

export interface Clock {
  /** Monotonic time in milliseconds. */
  now(): number;
  /** Runs `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(t: Timer | undefined): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref();
    return t as unknown as Timer;
  },
  clearTimeout(t) {
    if (t) clearTimeout(t as unknown as NodeJS.Timeout);
  },
};

interface ManualTimer extends Timer {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class ManualClock implements Clock {
  private time: number;
  private seq = 0;
  private timers: ManualTimer[] = [];

  constructor(start = 0) {
    this.time = start;
  }

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const t: ManualTimer = { at: this.time + Math.max(0, ms), seq: this.seq++, fn, cancelled: false };
    this.timers.push(t);
    return t;
  }

  clearTimeout(t: Timer | undefined): void {
    if (t) (t as ManualTimer).cancelled = true;
  }

  /** Number of timers still pending. */
  get pending(): number {
    return this.timers.filter((t) => !t.cancelled).length;
  }

  /** Moves time forward by `ms`, running every timer due by then (earliest first). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      let next: ManualTimer | undefined;
      for (const t of this.timers) {
        if (t.cancelled || t.at > end) continue;
        if (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq)) next = t;
      }
      if (!next) break;
      this.timers = this.timers.filter((t) => t !== next && !t.cancelled);
      this.time = Math.max(this.time, next.at);
      next.fn();
    }
    this.time = end;
  }
}
