// Raw-socket and plain HTTP clients for proxy end-to-end tests: send exact bytes and collect what comes back until
// the proxy closes the connection, make an ordinary request through a listener with a Host header, and read a
// counter from the proxy's admin /stats. Every wait is bounded.
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { adminGet } from './admin-http.js';

export interface RawResult {
  /** Everything received, latin1. */
  text: string;
  /** The proxy closed the connection (FIN or reset) before the wait ended. */
  closed: boolean;
}

/**
 * Connects to 127.0.0.1:port, runs `drive(socket)` (which writes), and collects the bytes received until the
 * connection closes or `waitMs` passes (then it is destroyed and `closed` is false).
 */
export function rawSession(port: number, drive: (s: Socket) => void | Promise<void>, waitMs = 15_000): Promise<RawResult> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let done = false;
    const finish = (closed: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      s.destroy();
      resolve({ text: Buffer.concat(chunks).toString('latin1'), closed });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('error', () => finish(true));
    s.on('close', () => finish(true));
    s.on('end', () => finish(true));
    s.once('connect', () => void Promise.resolve(drive(s)).catch(() => finish(true)));
  });
}

/** Sends `bytes` at once and collects the answer until the connection closes. */
export function rawExchange(port: number, bytes: string | Buffer, waitMs?: number): Promise<RawResult> {
  return rawSession(port, (s) => void s.write(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes), waitMs);
}

export interface SimpleResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One request on a new connection to 127.0.0.1:port with the given Host header. */
export function httpRequest(port: number, host: string, path: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<SimpleResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', agent: false, headers: { host, ...opts.headers }, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** The value of one stat from the proxy's admin /stats (0 when it does not exist yet). */
export async function statValue(adminPort: number, name: string): Promise<number> {
  const quoted = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const r = await adminGet(adminPort, `/stats?filter=${encodeURIComponent('^' + quoted + '$')}`);
  const m = new RegExp(`^${quoted}: (\\d+)$`, 'm').exec(r.body);
  return m ? Number(m[1]) : 0;
}

/** Polls `fn` every 50 ms until it returns true (bounded: throws after `timeoutMs`). */
export async function eventually(fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
