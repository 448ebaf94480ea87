/**
 * Push scheduling: changes are debounced and merged the way istiod does it (pilot/pkg/xds/discovery.go):
 *
 * - every change restarts a quiet period (`debounceMs`, istiod's PILOT_DEBOUNCE_AFTER, 100 ms), counted from when
 *   the change happened (a config file's change from its file events, not from when it had been read and parsed);
 * - the merged push starts once no change came for the quiet period, or once the first change of the burst is
 *   `maxMs` old (PILOT_DEBOUNCE_MAX, 10 s), whichever is first, so a steady stream of changes still pushes;
 * - merged requests keep every reason (with counts) and the union of the hosts whose endpoints changed; one
 *   full request makes the merged push full.
 *
 * Endpoint-only changes are debounced too (istiod's PILOT_ENABLE_EDS_DEBOUNCE defaults to true).
 */

/** Why a push happens, with istiod's trigger names where istiod has one (`pilot_push_triggers{type}`). */
export type PushReason =
  /** Configuration changed (a config file was added, changed or removed). */
  | 'config'
  /** The set of services changed. */
  | 'service'
  /** Endpoints changed (config-declared endpoints, health expiry of registered workloads). */
  | 'endpoint'
  /** A workload registered, deregistered, or changed health over the registration API. */
  | 'registration'
  /** A proxy connected and was given its configuration (never debounced). */
  | 'proxyrequest'
  /**
   * A secret changed: a gateway credential (secrets directory), or the trust bundle (the CA files were replaced:
   * every proxy gets the new ROOTCA secret).
   */
  | 'secret';

export interface PushRequest {
  /** Regenerate everything for every connected proxy; otherwise only EDS for `endpointHosts`. */
  full: boolean;
  /** Hosts whose endpoints changed (what an EDS-only push regenerates). */
  endpointHosts: Set<string>;
  /** Every reason merged into this push, with how many changes had it. */
  reasons: Map<PushReason, number>;
  /** When the first change merged into this request happened (ms since epoch). */
  start: number;
  /**
   * When the last change merged into this request happened (ms since epoch): the quiet period runs from it. A config
   * change happened when its file events arrived, before its files were read and parsed (ConfigChange.seen).
   */
  last: number;
}

export function pushRequest(reason: PushReason, opts: { full: boolean; hosts?: Iterable<string>; start?: number; last?: number }): PushRequest {
  const now = Date.now();
  const start = Math.min(opts.start ?? now, now);
  return { full: opts.full, endpointHosts: new Set(opts.hosts ?? []), reasons: new Map([[reason, 1]]), start, last: Math.max(start, Math.min(opts.last ?? now, now)) };
}

/** Merges two requests; the result is full when either is, and keeps the earlier start. */
export function mergePush(a: PushRequest, b: PushRequest): PushRequest {
  const reasons = new Map(a.reasons);
  for (const [r, n] of b.reasons) reasons.set(r, (reasons.get(r) ?? 0) + n);
  return {
    full: a.full || b.full,
    endpointHosts: new Set([...a.endpointHosts, ...b.endpointHosts]),
    reasons,
    start: Math.min(a.start, b.start),
    last: Math.max(a.last, b.last),
  };
}

export interface PushDebouncerOptions {
  /** Quiet period (ms): push once no change arrived for this long. */
  debounceMs: number;
  /** Longest delay (ms) between the first change of a burst and its push. */
  maxMs: number;
  /** Runs a merged push (synchronously). `debouncedMs` is how long the first change waited. */
  push(req: PushRequest, debouncedMs: number): void;
  /** Called when `push` throws (the debouncer keeps working). */
  onError?(err: unknown): void;
}

export class PushDebouncer {
  private pending?: PushRequest;
  private firstAt = 0;
  private lastAt = 0;
  private timer?: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly opts: PushDebouncerOptions) {}

  /**
   * Adds a change; the push runs once no change happened for the quiet period (counted from the request's `last`,
   * when the change happened), or the max delay after the first.
   */
  enqueue(req: PushRequest): void {
    if (this.closed) return;
    const now = Date.now();
    if (!this.pending) {
      this.pending = req;
      this.firstAt = Math.min(req.start, now);
      this.lastAt = Math.min(req.last, now);
    } else {
      this.pending = mergePush(this.pending, req);
      this.lastAt = Math.max(this.lastAt, Math.min(req.last, now));
    }
    if (!this.timer) this.arm(Math.min(this.opts.debounceMs - (now - this.lastAt), this.opts.maxMs - (now - this.firstAt)));
  }

  /** Whether a push is waiting. */
  get waiting(): boolean {
    return this.pending !== undefined;
  }

  /** Runs the waiting push now, if any. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.run();
  }

  /** Drops any waiting push and stops the timer. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.pending = undefined;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(() => this.tick(), Math.max(0, ms));
  }

  private tick(): void {
    this.timer = undefined;
    if (!this.pending) return;
    const now = Date.now();
    const quiet = now - this.lastAt;
    const waited = now - this.firstAt;
    if (quiet >= this.opts.debounceMs || waited >= this.opts.maxMs) {
      this.run();
    } else {
      this.arm(Math.min(this.opts.debounceMs - quiet, this.opts.maxMs - waited));
    }
  }

  private run(): void {
    const req = this.pending;
    if (!req) return;
    this.pending = undefined;
    try {
      this.opts.push(req, Date.now() - this.firstAt);
    } catch (e) {
      if (this.opts.onError) this.opts.onError(e);
      else throw e;
    }
  }
}
