/**
 * A small built-in load generator: `weft demo` runs one against the Bookinfo product page so that the dashboard
 * has live traffic to show, and tests use it to drive a mesh.
 *
 *   const t = startTraffic({ target: 'http://127.0.0.1:15006/productpage', rps: 5, headers: { 'end-user': 'jason' } });
 *   t.stats();      // { sent, ok, failed, byStatus: { '200': 40, '503': 2, error: 1 }, inFlight, skipped }
 *   await t.stop(); // stops sending, aborts what is still in flight, closes the keep-alive connections
 *
 * - **Bounded rate**: a token bucket refilled at `rps` per second (burst of one second's worth at most), checked
 *   every `1000 / rps` ms (at least every 10 ms), so the rate never exceeds `rps` over any second.
 * - **Never piles up**: at most `maxInFlight` requests are outstanding (default 2 × rps, at least 1, at most 64);
 *   when the target is slow and every slot is busy, the due request is skipped (counted in `skipped`), not queued.
 * - **Keep-alive**: one `http.Agent` with keep-alive and `maxSockets = maxInFlight`: connections are reused.
 * - Each request has a timeout (`timeoutMs`, default 10 s); a timeout, a connection error or a reset counts as a
 *   failure under `byStatus.error`. `ok` counts 2xx and 3xx answers; every other status is `failed`.
 */
import http from 'node:http';
import https from 'node:https';

export interface TrafficOptions {
  /** http:// or https:// URL to GET. */
  target: string;
  /** Requests per second (> 0, at most 10,000). */
  rps: number;
  /** Extra request headers. */
  headers?: Record<string, string>;
  /** Outstanding requests at most (default 2 × rps, clamped to 1..64). */
  maxInFlight?: number;
  /** Per-request timeout in ms (default 10,000). */
  timeoutMs?: number;
}

export interface TrafficStats {
  /** Requests sent. */
  sent: number;
  /** Answers with a 2xx or 3xx status. */
  ok: number;
  /** Other answers, errors and timeouts. */
  failed: number;
  /** Count per status code (`"200"`, `"503"`), and `"error"` for connection errors, resets and timeouts. */
  byStatus: Record<string, number>;
  /** Requests outstanding now. */
  inFlight: number;
  /** Requests not sent because `maxInFlight` requests were outstanding. */
  skipped: number;
}

export interface TrafficGenerator {
  stats(): TrafficStats;
  stop(): Promise<void>;
}

/** Starts sending; throws a TypeError naming the option when the options are invalid. */
export function startTraffic(opts: TrafficOptions): TrafficGenerator {
  let url: URL;
  try {
    url = new URL(opts.target);
  } catch {
    throw new TypeError(`traffic target ${JSON.stringify(opts.target)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`traffic target ${opts.target}: only http:// and https:// URLs are supported`);
  if (!(Number.isFinite(opts.rps) && opts.rps > 0 && opts.rps <= 10_000)) throw new TypeError(`traffic rps must be a number in (0, 10000], got ${opts.rps}`);
  const maxInFlight = opts.maxInFlight ?? Math.min(64, Math.max(1, Math.ceil(opts.rps * 2)));
  if (!(Number.isInteger(maxInFlight) && maxInFlight >= 1)) throw new TypeError(`traffic maxInFlight must be an integer >= 1, got ${opts.maxInFlight}`);
  const timeoutMs = opts.timeoutMs ?? 10_000;
  if (!(Number.isFinite(timeoutMs) && timeoutMs > 0)) throw new TypeError(`traffic timeoutMs must be > 0, got ${opts.timeoutMs}`);

  const mod = url.protocol === 'https:' ? https : http;
  const agent = new mod.Agent({ keepAlive: true, maxSockets: maxInFlight });
  const requestOptions: http.RequestOptions = {
    method: 'GET',
    agent,
    headers: { ...opts.headers },
    timeout: timeoutMs,
  };
  const st: TrafficStats = { sent: 0, ok: 0, failed: 0, byStatus: {}, inFlight: 0, skipped: 0 };
  const outstanding = new Set<http.ClientRequest>();
  let stopped = false;
  let idle: (() => void) | undefined;

  /** Settles a request once: counts its outcome (unless stopping) and frees its slot. */
  const settle = (req: http.ClientRequest, status: number | undefined): void => {
    if (!outstanding.delete(req)) return;
    st.inFlight--;
    if (!stopped) {
      const key = status === undefined ? 'error' : String(status);
      st.byStatus[key] = (st.byStatus[key] ?? 0) + 1;
      if (status !== undefined && status >= 200 && status < 400) st.ok++;
      else st.failed++;
    }
    if (outstanding.size === 0) idle?.();
  };

  const send = (): void => {
    st.sent++;
    st.inFlight++;
    const req = mod.request(url, requestOptions, (res) => {
      res.on('end', () => settle(req, res.statusCode ?? 0));
      res.on('error', () => settle(req, undefined));
      res.on('close', () => settle(req, undefined)); // closed before its end: a reset
      res.resume();
    });
    outstanding.add(req);
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', () => settle(req, undefined));
    req.on('close', () => settle(req, undefined));
    req.end();
  };

  // Token bucket: `rps` tokens per second, at most one second's worth (and at least one) saved up.
  const burst = Math.max(1, opts.rps);
  let tokens = 1;
  let last = performance.now();
  const tick = (): void => {
    const now = performance.now();
    tokens = Math.min(burst, tokens + ((now - last) * opts.rps) / 1000);
    last = now;
    while (tokens >= 1) {
      tokens--;
      if (outstanding.size >= maxInFlight) st.skipped++;
      else send();
    }
  };
  const timer = setInterval(tick, Math.max(10, Math.floor(1000 / opts.rps)));
  timer.unref();
  tick();

  return {
    stats: () => ({ ...st, byStatus: { ...st.byStatus } }),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      if (outstanding.size > 0) {
        const settled = new Promise<void>((resolve) => (idle = resolve));
        for (const req of outstanding) req.destroy();
        await settled;
      }
      agent.destroy();
    },
  };
}
