// HTTP upstreams and a curl client for the proxy's end-to-end tests: an upstream node:http server on 127.0.0.1 that
// records every request it receives (method, URL, headers, body length and SHA-256, client port) and answers per a
// behaviour (by default a JSON identity, or the body echoed back for `/echo`), and curl with the response parsed.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createServer, request, type Agent, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { run } from './mesh-processes.js';

// ---------------------------------------------------------------------------------------------------------------
// Upstreams

export interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyLength: number;
  bodySha: string;
  remotePort: number;
}

/** An upstream HTTP server that records every request and answers per its behaviour. */
export class Upstream {
  readonly seen: Seen[] = [];
  server!: Server;
  port = 0;
  constructor(
    readonly name: string,
    private readonly behave: (req: IncomingMessage, res: ServerResponse, body: Buffer, u: Upstream) => void = (req, res, body, u) => u.reply(res, body),
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          headers: req.headers,
          bodyLength: body.length,
          bodySha: createHash('sha256').update(body).digest('hex'),
          remotePort: req.socket.remotePort ?? 0,
        });
        this.behave(req, res, body, this);
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** 200 with a JSON identity, or the request body echoed back (chunked) for `/echo`. */
  reply(res: ServerResponse, body: Buffer): void {
    const last = this.seen[this.seen.length - 1]!;
    if (last.url.startsWith('/echo')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-upstream': this.name });
      // No content-length: node writes the body chunked.
      for (let i = 0; i < body.length; i += 65536) res.write(body.subarray(i, i + 65536));
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': this.name });
    res.end(JSON.stringify({ name: this.name, url: last.url, headers: last.headers, bodyLength: last.bodyLength, bodySha: last.bodySha }));
  }

  count(pred: (s: Seen) => boolean = () => true): number {
    return this.seen.filter(pred).length;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// curl

export interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** One request with curl; `args` are extra curl arguments. Headers are returned lower-cased (last value wins). */
export async function curl(url: string, args: string[] = []): Promise<CurlResult> {
  const r = await run('curl', ['-s', '-S', '-i', '--max-time', '20', ...args, url]);
  assert.equal(r.status, 0, `curl failed: ${r.stderr.toString()}`);
  return parseCurl(r.stdout);
}

export function parseCurl(out: Buffer): CurlResult {
  // Skip interim responses (100 Continue): the final head is the last one before the body.
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

// ---------------------------------------------------------------------------------------------------------------
// node:http client (for many requests: one process, keep-alive)

export interface SentResponse {
  status: number;
  headers: IncomingMessage['headers'];
  body: Buffer;
}

/**
 * One request to `port` on 127.0.0.1 with node:http (`agent`: a keep-alive agent to reuse connections, or false).
 * Rejects on a connection error or after 20 s.
 */
export function send(
  port: number,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: Buffer | string; agent?: Agent | false },
): Promise<SentResponse> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: opts.path, headers: opts.headers, agent: opts.agent ?? false, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`no response to ${opts.path} within 20 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Polls `fn` (every 20 ms, up to `timeoutMs`) until it returns true; throws `what` otherwise. */
export async function eventually(fn: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}
