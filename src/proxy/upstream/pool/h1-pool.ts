/**
 * HTTP/1.1 connection pool for one upstream host (Envoy's Http1::ConnPoolImpl over ConnPoolImplBase).
 *
 *   const pool = new H1Pool(cluster, host);
 *   const handle = pool.newStream(req);   // req.onPoolReady(conn) (maybe synchronously) or req.onPoolFailure(why)
 *   pool.cancel(req);                     // the request gave up while waiting (timeout, downstream reset)
 *   conn.sendHead(sink, head, endStream); conn.sendBody(buf); conn.sendEnd(trailers)   // UpstreamStream (types.ts)
 *   pool.drain();                         // host removed / cluster replaced: close idle, finish busy, then close
 *
 * One request at a time per connection; a connection whose request and response both completed with keep-alive
 * goes back to the pool (most recently used first) or straight to the oldest pending request. Limits, with
 * Envoy's semantics and stats:
 * - circuit breakers (cluster.circuitBreaker()): `pending` for each request waiting for a connection (overflow →
 *   onPoolFailure('overflow'), the router answers 503 UO); `connections` (and the per-host limit) before opening a
 *   connection — a pool with no connection at all may always open one, as Envoy's tryCreateNewConnection;
 * - connect timeout: cluster.connectTimeoutMs (upstream_cx_connect_timeout) → 'connection failure';
 * - idle timeout: common_http_protocol_options.idle_timeout (Envoy's default 1 h) closes idle connections;
 * - max_requests_per_connection: the connection closes after that many requests; when it takes its last one, its
 *   replacement is opened (onLastRequest), so the next request does not wait for a connect and TLS handshake.
 * Upgrades: `sendHead(sink, head, endStream, true)` sends an Upgrade request without body framing (bytes after the
 * head are raw); after a 101 the router calls `startTunnel()`: the connection is never reused, allows half-open, an end
 * (FIN) from the upstream completes the response and is passed on while the request side may continue, and
 * `endTunnel()` half-closes the upstream when the client is done; the socket closes once both sides have ended.
 * When a connection fails to connect, pending requests that the remaining connecting connections cannot serve
 * fail with 'connection failure' (Envoy purges them the same way).
 */
import type { Socket } from 'node:net';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/host.js';
import {
  CHUNK_END,
  chunkHeader,
  FRAME_END_STREAM,
  FRAME_HAS_CONTENT_LENGTH,
  FRAMING_CHUNK_BODY,
  FRAME_UPGRADE,
  H1ResponseParser,
  LAST_CHUNK,
  requestFraming,
  serializeRequestHead,
  serializeTrailers,
  type H1ResponseHandler,
} from '../../http/codec/h1/index.js';
import { hasHeader, type HeaderList, type RequestHead, type ResponseHead } from '../../http/headers.js';
import { DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS, durationToMs, type PoolRequest, type ResponseSink, type TunnelStream, type UpstreamPool } from './types.js';
import { PendingRequests } from './pending.js';

export type { PoolFailure, PoolRequest, ResponseSink } from './types.js';
export { DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS } from './types.js';

/** The read buffer of every upstream HTTP/1 connection (see H1Connection). */
const READ_BUFFER = Buffer.allocUnsafe(65536);

export class H1Connection implements H1ResponseHandler, TunnelStream {
  readonly protocol = 1;
  readonly socket: Socket;
  private framing = 0;
  private readonly parser: H1ResponseParser;
  private sink: ResponseSink | null = null;
  /** The socket event that says the connection is ready: 'connect' (TCP), 'secureConnect' (TLS handshake done). */
  readonly readyEvent: 'connect' | 'secureConnect';
  /** Connected (TCP and, with TLS, the TLS handshake done). */
  connected = false;
  closed = false;
  private requestDone = false;
  private responseDone = false;
  private reusable = true;
  /** A 101 turned this connection into a raw tunnel. */
  private tunnel = false;
  requests = 0;

  constructor(
    readonly pool: H1Pool,
    readonly host: Host,
  ) {
    this.parser = new H1ResponseParser(this);
    // Reads land in one buffer shared by every upstream connection (`onread`): no buffer allocated per read and no
    // readable-stream machinery. Safe because a read is parsed synchronously, the parser copies what it keeps of a
    // partial line, and body chunks are copied before they leave this connection (onBody).
    const opened = pool.cluster.transport.connect(host, {
      alpnFallback: 'http/1.1',
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array): boolean => {
          this.onData(Buffer.from(buf.buffer, buf.byteOffset, n));
          return true;
        },
      },
    });
    const s = opened.socket;
    this.socket = s;
    this.readyEvent = opened.event;
    s.on('error', () => undefined);
    s.on('close', () => this.onClose());
    s.on('end', () => {
      // Half-close from the upstream: it ends a tunnel's upstream direction (the client's may go on); it ends a
      // close-delimited body, anything else is a reset.
      if (this.tunnel && this.sink !== null) {
        this.parser.finish();
        return;
      }
      if (!this.closed) s.destroy();
    });
    // Envoy's idle_timeout: the connection closes after this long without an active request. The socket's
    // inactivity timer is armed once and re-armed by Node on every read and write, so an idle connection's timer
    // started with the last byte of its last response; when it fires on a busy connection (a request quiet for
    // that long), the next byte re-arms it. One listener for the connection's life: no timer work per request.
    if (pool.idleTimeoutMs > 0) {
      s.setTimeout(pool.idleTimeoutMs);
      s.on('timeout', () => {
        if (this.sink === null) this.destroy();
      });
    }
  }

  /** Attaches the request that will use this connection and writes its head (UpstreamStream). */
  sendHead(sink: ResponseSink, head: RequestHead, endStream: boolean, upgrade?: boolean): void {
    this.sink = sink;
    this.requestDone = false;
    this.responseDone = false;
    if (++this.requests === this.pool.maxRequestsPerConnection) this.pool.onLastRequest();
    this.parser.expectResponseTo(head.method);
    let flags = 0;
    if (hasHeader(head.headers, 'content-length')) flags |= FRAME_HAS_CONTENT_LENGTH;
    if (endStream) flags |= FRAME_END_STREAM;
    if (upgrade === true) flags |= FRAME_UPGRADE;
    this.framing = requestFraming(head.method, flags);
    if (endStream) {
      this.write(serializeRequestHead(head, this.framing));
      return;
    }
    // The body already received (or buffered for a retry) follows in the same tick: one write to the socket.
    this.socket.cork();
    this.write(serializeRequestHead(head, this.framing));
    process.nextTick(uncork, this.socket);
  }

  sendBody(chunk: Buffer): boolean {
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0) {
      this.write(chunkHeader(chunk.length));
      this.write(chunk);
      return this.write(CHUNK_END);
    }
    return this.write(chunk);
  }

  sendEnd(trailers: HeaderList | null): void {
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0) {
      this.write(trailers !== null && trailers.length > 0 ? serializeTrailers(trailers) : LAST_CHUNK);
    }
    this.requestComplete();
  }

  onWritable(cb: () => void): void {
    this.socket.once('drain', cb);
  }

  /** Writes request bytes (head string or body buffer). Returns false when the socket buffer is full. */
  write(data: string | Buffer): boolean {
    if (this.closed) return true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  /** The request has been fully written. */
  requestComplete(): void {
    this.requestDone = true;
    if (this.responseDone) this.release();
  }

  /** The request is abandoned (timeout, downstream gone): the connection cannot be reused. */
  abort(): void {
    this.sink = null;
    this.reusable = false;
    this.destroy();
  }

  destroy(): void {
    if (!this.closed) this.socket.destroy();
  }

  /** The upstream answered 101: the connection is a raw tunnel from now on (see the module comment). */
  startTunnel(): void {
    this.tunnel = true;
    this.reusable = false;
    this.socket.allowHalfOpen = true;
  }

  /** The client ended its side of a tunnel (or of an upgrade request): half-close the upstream. */
  endTunnel(): void {
    this.requestDone = true;
    this.reusable = false;
    if (this.closed) return;
    if (this.responseDone) this.sink = null;
    this.socket.end();
  }

  /** Marks the connection for closing once its current request is done (drain). */
  noReuse(): void {
    this.reusable = false;
  }

  private onData(chunk: Buffer): void {
    this.pool.cluster.stats.upstream_cx_rx_bytes_total += chunk.length;
    if (this.sink === null) {
      // Bytes from an idle connection (or after an abandoned request): not HTTP we can use.
      this.reusable = false;
      this.destroy();
      return;
    }
    const n = this.parser.execute(chunk);
    if (n < 0) {
      const sink = this.sink;
      this.sink = null;
      this.reusable = false;
      this.destroy();
      sink?.onUpstreamReset('remote reset');
    }
  }

  private onClose(): void {
    this.closed = true;
    this.pool.onConnectionClosed(this);
    const sink = this.sink;
    if (sink === null) return;
    if (this.parser.finish() === 0 && this.responseDone && (!this.tunnel || this.requestDone)) return;
    this.sink = null;
    sink.onUpstreamReset('connection termination');
  }

  /** Stops / resumes reading the response (downstream flow control). */
  pauseResponse(): void {
    this.socket.pause();
  }

  resumeResponse(): void {
    this.socket.resume();
  }

  onConnected(): void {
    this.connected = true;
  }

  // H1ResponseHandler ---------------------------------------------------------------------------------------------

  onResponseHead(head: ResponseHead): void {
    if (!this.parser.keepAlive) this.reusable = false;
    this.sink?.onResponseHead(head, !this.parser.hasBody);
  }

  onInterimHead(): void {
    // 1xx responses (100 Continue from the upstream) are not passed downstream: the proxy answered the
    // client's Expect itself, as Envoy does when proxy_100_continue is off.
  }

  onBody(chunk: Buffer): void {
    // The chunk is a view of the shared read buffer: the consumer may queue it for writing, so it gets a copy.
    this.sink?.onResponseBody(Buffer.from(chunk));
  }

  onMessageComplete(trailers: HeaderList | null): void {
    this.responseDone = true;
    const sink = this.sink;
    if (this.tunnel) {
      // The upstream's direction of the tunnel ended; the connection stays for the client's direction.
      if (this.requestDone) this.sink = null;
      sink?.onResponseComplete(trailers);
      return;
    }
    if (this.requestDone) this.release();
    else this.reusable = false; // response before the request was sent: close once the request is abandoned
    sink?.onResponseComplete(trailers);
    if (!this.requestDone) {
      this.sink = null;
      this.destroy();
    }
  }

  private release(): void {
    this.sink = null;
    // The last response may have ended while downstream backpressure had paused reading: an idle connection
    // must read (the next response, or the upstream closing it).
    this.socket.resume();
    const max = this.pool.maxRequestsPerConnection;
    if (!this.reusable || this.closed || this.pool.draining || (max > 0 && this.requests >= max)) {
      this.destroy();
      return;
    }
    // The response may have been paused for a client that went away (its socket refused the write, so the drain
    // that resumes never comes): a pooled connection must read, for its next response and to see the upstream
    // close it while idle.
    this.socket.resume();
    this.pool.onConnectionFree(this);
  }
}

function uncork(s: Socket): void {
  s.uncork();
}

export class H1Pool implements UpstreamPool {
  private readonly idle: H1Connection[] = [];
  private readonly pending: PendingRequests;
  private readonly all = new Set<H1Connection>();
  private connecting = 0;
  draining = false;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;

  constructor(
    readonly cluster: ClusterRuntime,
    readonly host: Host,
  ) {
    this.pending = new PendingRequests(cluster);
    const common = cluster.httpProtocolOptions?.commonHttpProtocolOptions;
    this.idleTimeoutMs = durationToMs(common?.idleTimeout) ?? DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS;
    this.maxRequestsPerConnection = common?.maxRequestsPerConnection ?? 0;
  }

  /** Number of connections (connecting, busy and idle). */
  get size(): number {
    return this.all.size;
  }

  get idleCount(): number {
    return this.idle.length;
  }

  newStream(req: PoolRequest): void {
    while (this.idle.length > 0) {
      const c = this.idle.pop()!;
      if (c.closed) continue;
      req.onPoolReady(c);
      return;
    }
    if (!this.pending.add(req)) return;
    if (this.connecting < this.pending.length) this.tryConnect();
  }

  /** Removes a request that is still waiting for a connection. */
  cancel(req: PoolRequest): void {
    this.pending.cancel(req);
  }

  /** Closes idle connections and lets busy ones finish; the pool opens no new connection for new requests. */
  drain(): void {
    this.draining = true;
    for (const c of this.idle.splice(0)) c.destroy();
    for (const c of this.all) c.noReuse();
  }

  private tryConnect(): void {
    const cb = this.cluster.circuitBreaker();
    const stats = this.cluster.stats;
    const first = this.all.size === 0;
    if (!cb.canCreateConnection(this.host) && !first) {
      stats.upstream_cx_overflow++;
      return;
    }
    cb.connections++;
    this.connecting++;
    const c = new H1Connection(this, this.host);
    this.all.add(c);
    stats.upstream_cx_total++;
    stats.upstream_cx_http1_total++;
    stats.upstream_cx_active++;
    this.host.stats.cx_total++;
    this.host.stats.cx_active++;
    const timeoutMs = this.cluster.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        stats.upstream_cx_connect_timeout++;
        c.destroy();
      }, timeoutMs);
    }
    c.socket.once(c.readyEvent, () => {
      clearTimeout(timer);
      this.connecting--;
      c.onConnected();
      this.host.outlier.putResult('local-origin-success');
      this.onConnectionFree(c);
    });
    c.socket.once('close', () => clearTimeout(timer));
  }

  /**
   * A connection took its last request (max_requests_per_connection) and closes after it: when no other connection
   * is idle or connecting, its replacement is opened now, so the next request finds it ready instead of waiting for
   * a connect (and, over TLS, a handshake). The number of connections stays what the traffic had; the circuit
   * breaker's connection limit applies as to any new connection.
   */
  onLastRequest(): void {
    if (this.draining || this.connecting > 0 || this.idle.length > 0) return;
    if (!this.cluster.circuitBreaker().canCreateConnection(this.host)) return;
    this.tryConnect();
  }

  /** A connection is ready for a request: give it to the oldest waiting request, or keep it idle. */
  onConnectionFree(c: H1Connection): void {
    if (this.draining && this.pending.length === 0) {
      c.destroy();
      return;
    }
    const req = this.pending.shift();
    if (req !== undefined) {
      req.onPoolReady(c);
      return;
    }
    this.idle.push(c);
  }

  onConnectionClosed(c: H1Connection): void {
    if (!this.all.delete(c)) return;
    const stats = this.cluster.stats;
    stats.upstream_cx_active--;
    stats.upstream_cx_destroy++;
    this.host.stats.cx_active--;
    this.cluster.circuitBreaker().release('connections');
    const i = this.idle.indexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
    if (!c.connected) {
      this.connecting--;
      stats.upstream_cx_connect_fail++;
      this.host.stats.cx_connect_fail++;
      this.host.outlier.putResult('local-origin-failure', 503);
      // Fail the waiting requests that the connections still connecting cannot serve.
      while (this.pending.length > this.connecting) {
        this.pending.shift()!.onPoolFailure('connection failure');
      }
    } else if (this.pending.length > this.connecting && !this.draining) {
      this.tryConnect();
    }
  }

  /** Closes every connection now (proxy shutdown). */
  close(): void {
    this.drain();
    for (const c of this.all) c.destroy();
  }
}
