/**
 * The proxy benchmark's own load generators and echo server, run as separate processes (pinned by the harness to
 * the load-generator CPU) where wrk / h2load do not fit:
 *
 * - `echo-server PORT`: a TCP echo server on 127.0.0.1 (the TCP workload's upstream); prints `listening` once up.
 * - `tcp-echo HOST:PORT CONNECTIONS SIZE SECONDS`: closed loop over CONNECTIONS connections, each writing SIZE
 *   bytes and waiting for them to come back before writing again; one round trip counts as one request.
 * - `http-rate HOST:PORT HOSTHEADER PATH RPS CONNECTIONS SECONDS`: HTTP/1.1 keep-alive GETs at a fixed total rate
 *   (each connection sends on its own schedule, RPS / CONNECTIONS per second; a late response delays that
 *   connection's next request), for the added-latency-per-hop figure at a fixed 1,000 rps.
 *
 * Both clients print one JSON line: `{ requests, errors, seconds, rps, p50Us, p90Us, p99Us, p999Us, maxUs }`.
 * Latencies are kept in a histogram of 1 µs buckets up to 1 s (larger values land in the last bucket).
 */
import { connect, createServer } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';

const MAX_US = 1_000_000;

class Histogram {
  readonly counts = new Uint32Array(MAX_US + 1);
  n = 0;
  record(us: number): void {
    this.counts[us > MAX_US ? MAX_US : us < 0 ? 0 : us | 0]!++;
    this.n++;
  }
  percentile(p: number): number {
    if (this.n === 0) return NaN;
    const want = Math.ceil((p / 100) * this.n);
    let seen = 0;
    for (let i = 0; i <= MAX_US; i++) {
      seen += this.counts[i]!;
      if (seen >= want) return i;
    }
    return MAX_US;
  }
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Us: number;
  p99Us: number;
  /** The fixed-rate and TCP clients also give p90, p99.9 and the largest latency (wrk and h2load parsers do not). */
  p90Us?: number;
  p999Us?: number;
  maxUs?: number;
}

function nowUs(): number {
  return performance.now() * 1000;
}

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i), port: Number(s.slice(i + 1)) };
}

function finish(h: Histogram, errors: number, seconds: number): void {
  const r: LoadResult = {
    requests: h.n,
    errors,
    seconds,
    rps: h.n / seconds,
    p50Us: h.percentile(50),
    p99Us: h.percentile(99),
    p90Us: h.percentile(90),
    p999Us: h.percentile(99.9),
    maxUs: h.percentile(100),
  };
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exit(0);
}

function echoServer(port: number): void {
  const server = createServer((s) => {
    s.setNoDelay(true);
    s.on('data', (d) => s.write(d));
    s.on('error', () => s.destroy());
    s.on('end', () => s.end());
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('listening\n'));
}

function tcpEcho(target: string, connections: number, size: number, seconds: number): void {
  const { host, port } = hostPort(target);
  const h = new Histogram();
  const payload = Buffer.alloc(size, 'x');
  let errors = 0;
  let running = true;
  // The window opens with the first connection (a busy machine may take a while to schedule the target), and
  // closes after `seconds`; no connection within 10 s ends the run with what it has (nothing: an error).
  let start = 0;
  const stop = () => {
    if (!running) return;
    running = false;
    const elapsed = start === 0 ? 0 : (nowUs() - start) / 1e6;
    for (const s of sockets) s.destroy();
    finish(h, start === 0 ? errors + 1 : errors, elapsed);
  };
  const noConnection = setTimeout(stop, 10_000);
  const sockets: Socket[] = [];
  for (let c = 0; c < connections; c++) {
    const s = connect(port, host);
    sockets.push(s);
    s.setNoDelay(true);
    let got = 0;
    let sentAt = 0;
    const send = () => {
      got = 0;
      sentAt = nowUs();
      s.write(payload);
    };
    s.on('connect', () => {
      if (start === 0) {
        start = nowUs();
        clearTimeout(noConnection);
        setTimeout(stop, seconds * 1000);
      }
      send();
    });
    s.on('data', (d: Buffer) => {
      got += d.length;
      if (got < size) return;
      h.record(nowUs() - sentAt);
      if (running) send();
    });
    s.on('error', () => {
      if (running) errors++;
    });
  }
}

function httpRate(target: string, hostHeader: string, path: string, rps: number, connections: number, seconds: number): void {
  const { host, port } = hostPort(target);
  const h = new Histogram();
  const request = Buffer.from(`GET ${path} HTTP/1.1\r\nHost: ${hostHeader}\r\nUser-Agent: weft-bench\r\n\r\n`, 'latin1');
  const intervalUs = (1e6 * connections) / rps;
  let errors = 0;
  let running = true;
  const start = nowUs();
  const sockets: Socket[] = [];
  for (let c = 0; c < connections; c++) {
    const s = connect(port, host);
    sockets.push(s);
    s.setNoDelay(true);
    // Stagger the connections' schedules over one interval.
    let next = start + (intervalUs * c) / connections;
    let sentAt = 0;
    let buf: Buffer = Buffer.alloc(0);
    let inFlight = false;
    const schedule = () => {
      if (!running) return;
      next += intervalUs;
      const wait = next - nowUs();
      if (wait > 1000) setTimeout(send, wait / 1000);
      else setImmediate(send);
    };
    const send = () => {
      if (!running || inFlight) return;
      inFlight = true;
      sentAt = nowUs();
      s.write(request);
    };
    s.on('connect', schedule);
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      const total = end + 4 + (m ? Number(m[1]) : 0);
      if (buf.length < total) return;
      if (!head.startsWith('HTTP/1.1 200')) errors++;
      buf = buf.subarray(total);
      h.record(nowUs() - sentAt);
      inFlight = false;
      schedule();
    });
    s.on('error', () => errors++);
  }
  setTimeout(() => {
    running = false;
    const elapsed = (nowUs() - start) / 1e6;
    for (const s of sockets) s.destroy();
    finish(h, errors, elapsed);
  }, seconds * 1000);
}

const [mode, ...a] = process.argv.slice(2);
if (mode === 'echo-server') echoServer(Number(a[0]));
else if (mode === 'tcp-echo') tcpEcho(a[0]!, Number(a[1]), Number(a[2]), Number(a[3]));
else if (mode === 'http-rate') httpRate(a[0]!, a[1]!, a[2]!, Number(a[3]), Number(a[4]), Number(a[5]));
else {
  process.stderr.write('usage: loadgen.js echo-server PORT | tcp-echo HOST:PORT CONNS SIZE SECONDS | http-rate HOST:PORT HOST PATH RPS CONNS SECONDS\n');
  process.exit(2);
}
