// HTTP/2 test clients and upstreams for the proxy's end-to-end tests: one request over node:http2 (h2c prior
// knowledge) with its response, trailers and reset code; curl (HTTP/1.1 or --http2-prior-knowledge) with its
// parsed response; an h2c upstream server (node:http2) that records what it received per session and stream.
import { connect, constants, createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type IncomingHttpHeaders } from 'node:http2';
import { createHash } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { run } from './mesh-processes.js';

/** `p`, or a rejection naming `what` after 10 s. */
export function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within 10 s`)), 10_000);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

export interface H2Result {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  trailers: IncomingHttpHeaders | undefined;
  /** RST_STREAM code when the stream was reset before it ended (undefined: it ended normally). */
  rstCode: number | undefined;
}

export interface H2RequestOptions {
  authority: string;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer;
}

/** One request on a new h2c connection to 127.0.0.1:port. Rejects only on connection errors. */
export function h2Request(port: number, o: H2RequestOptions): Promise<H2Result> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.on('error', reject);
    const guard = setTimeout(() => {
      session.destroy();
      reject(new Error(`no complete answer to ${o.method ?? 'GET'} ${o.authority}${o.path ?? '/'} within 20 s`));
    }, 20_000);
    const st = session.request({ ':method': o.method ?? 'GET', ':path': o.path ?? '/', ':authority': o.authority, ...o.headers }, { endStream: o.body === undefined });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    let ended = false;
    st.on('response', (h) => {
      headers = h;
      status = Number(h[':status']);
    });
    st.on('trailers', (t) => (trailers = t));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => (ended = true));
    st.on('error', () => undefined);
    st.on('close', () => {
      clearTimeout(guard);
      const rst = ended && st.rstCode === constants.NGHTTP2_NO_ERROR ? undefined : st.rstCode;
      session.close();
      resolve({ status, headers, body: Buffer.concat(chunks), trailers, rstCode: rst });
    });
    if (o.body !== undefined) st.end(o.body);
  });
}

export interface CurlResult {
  status: number;
  /** Lower-cased names, last value wins. */
  headers: Record<string, string>;
  body: Buffer;
}

/** One request with curl (`args` are extra curl arguments); asserts curl itself succeeded. */
export async function curl(url: string, args: string[] = []): Promise<CurlResult> {
  const r = await run('curl', ['-s', '-S', '-i', '--max-time', '30', ...args, url]);
  if (r.status !== 0) throw new Error(`curl ${args.join(' ')} ${url} failed (${r.status}): ${r.stderr.toString()}`);
  return parseCurl(r.stdout);
}

export function parseCurl(out: Buffer): CurlResult {
  let start = 0;
  for (;;) {
    const end = out.indexOf('\r\n\r\n', start);
    const head = out.subarray(start, end).toString('latin1');
    const status = Number(/^HTTP\/[\d.]+ (\d{3})/.exec(head)?.[1]);
    if (status >= 100 && status < 200) {
      start = end + 4;
      continue;
    }
    const headers: Record<string, string> = {};
    for (const line of head.split('\r\n').slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    return { status, headers, body: out.subarray(end + 4) };
  }
}

export function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface H2Seen {
  method: string;
  path: string;
  authority: string;
  headers: IncomingHttpHeaders;
  bodyLength: number;
  bodySha: string;
  session: number;
}

/**
 * An h2c upstream (node:http2 createServer) that records each request (with the id of its session) and answers
 * per `behave` (default: 200 JSON identity; `/echo` echoes the body). Tracks the most streams seen open at once
 * on one session.
 */
export class H2Upstream {
  readonly seen: H2Seen[] = [];
  server!: Http2Server;
  port = 0;
  sessions = 0;
  maxConcurrentPerSession = 0;
  /** Streams closed by the proxy with RST_STREAM before the response ended, by path. */
  readonly resets: string[] = [];
  private readonly live = new Set<{ destroy(): void; once(e: 'close', f: () => void): unknown }>();

  constructor(
    readonly name: string,
    private readonly settings: { maxConcurrentStreams?: number } = {},
    private readonly behave?: (req: Http2ServerRequest, res: Http2ServerResponse, body: Buffer, u: H2Upstream) => void,
  ) {}

  async start(): Promise<void> {
    const open = new Map<object, number>();
    this.server = createServer({ settings: this.settings });
    this.server.on('session', (s) => {
      this.sessions++;
      (s as unknown as { weftId: number }).weftId = this.sessions;
      open.set(s, 0);
      this.live.add(s);
      s.once('close', () => this.live.delete(s));
    });
    this.server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const sess = req.stream.session!;
      const n = (open.get(sess) ?? 0) + 1;
      open.set(sess, n);
      if (n > this.maxConcurrentPerSession) this.maxConcurrentPerSession = n;
      req.stream.once('close', () => {
        open.set(sess, (open.get(sess) ?? 1) - 1);
        if (req.stream.rstCode !== constants.NGHTTP2_NO_ERROR || !res.writableEnded) this.resets.push(req.url);
      });
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({
          method: req.method,
          path: req.url,
          authority: req.authority,
          headers: req.headers,
          bodyLength: body.length,
          bodySha: sha256(body),
          session: (sess as unknown as { weftId: number }).weftId,
        });
        if (this.behave) this.behave(req, res, body, this);
        else this.reply(req, res, body);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  reply(req: Http2ServerRequest, res: Http2ServerResponse, body: Buffer): void {
    if (req.url.startsWith('/echo')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': this.name });
      res.end(body);
      return;
    }
    const last = this.seen[this.seen.length - 1]!;
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': this.name });
    res.end(JSON.stringify({ name: this.name, path: last.path, authority: last.authority, headers: last.headers, bodyLength: last.bodyLength, bodySha: last.bodySha, httpVersion: req.httpVersion }));
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => {
      this.server.close(() => r());
      // Sessions the proxy keeps open would hold close() forever.
      for (const s of this.live) s.destroy();
    });
  }
}
