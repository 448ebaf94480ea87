/**
 * HTTP/2 (h2c) connection pool for one upstream host: Envoy's Http2::ConnPoolImpl (multiplexed
 * ConnPoolImplBase) on node:http2 client sessions (nghttp2).
 *
 *   const pool = new H2Pool(cluster, host);
 *   pool.newStream(req);        // req.onPoolReady(stream) (maybe synchronously) or req.onPoolFailure(why)
 *   stream.sendHead(sink, head, endStream); stream.sendBody(chunk); stream.sendEnd(trailers);   // see types.ts
 *   pool.drain(); pool.close();
 *
 * Multiplexing, as Envoy: a request goes to the first connected session with a free stream slot; a session's
 * slots are min(the cluster's http2_protocol_options.max_concurrent_streams (Envoy default 2^31-1), the peer's
 * SETTINGS_MAX_CONCURRENT_STREAMS); when every session is full (or none is connected) the request waits (the
 * `pending` circuit breaker, overflow → 'overflow' → 503 UO) and a new session is opened when the sessions being
 * connected cannot take the waiting requests (the `connections` circuit breaker and the per-host limit; a pool with
 * no session may always open one). The `requests` circuit breaker (taken by the router per attempt) therefore
 * limits streams, as Envoy's HTTP/2 pool. max_requests_per_connection retires a session after that many streams.
 * - connect timeout: cluster.connectTimeoutMs (upstream_cx_connect_timeout) → waiting requests fail with
 *   'connection failure' (UF) once no session being connected can serve them;
 * - idle timeout: common_http_protocol_options.idle_timeout (default 1 h) closes a session without streams;
 * - GOAWAY from the upstream: the session takes no new streams; its streams above the last stream id are reset by
 *   nghttp2 (the router sees a remote reset and may retry), the others finish; the session closes when empty.
 * - Resets: a stream the router abandons (timeout, retry, downstream gone) is reset with INTERNAL_ERROR, Envoy's
 *   default since envoyproxy/envoy#42269 (NO_ERROR before); `stream.destroy(error)` sends it without ending the
 *   request first (node's `close(code)` would send END_STREAM, making a cut request look complete); a RST_STREAM from the
 *   upstream is 'remote reset' (UR), REFUSED_STREAM 'remote refused stream reset' (UR, retriable with
 *   retry_on refused-stream); the session closing under a stream is 'connection termination' (UC).
 * - A session takes streams once the peer's first SETTINGS frame arrived, so its max_concurrent_streams is known.
 * Headers on the wire: `:method`, `:scheme` (http), `:authority` (the request's authority, i.e. HTTP/1 Host),
 * `:path`; no Host and no hop-by-hop fields (the router already removed them; `te: trailers` stays). Request
 * trailers cannot be sent on HTTP/2 here (the stream would need to announce them before its body); they are
 * dropped, and response trailers are passed on.
 * Stats: upstream_cx_total / _active / _http2_total / _connect_fail / _connect_timeout / _destroy / _overflow,
 * upstream_rq_pending_total / _active.
 */
import { connect as h2connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { Host } from '../cluster/host.js';
import type { HeaderList, RequestHead, ResponseHead } from '../../http/headers.js';
import { fromH2Headers, RESET_ERROR, toH2Headers } from '../../http/codec/h2/headers.js';
import { DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS, durationToMs, type PoolRequest, type ResponseSink, type UpstreamPool, type UpstreamStream } from './types.js';
import { PendingRequests } from './pending.js';

/** Envoy's default SETTINGS_MAX_CONCURRENT_STREAMS for its HTTP/2 codec (2^31 - 1). */
const DEFAULT_MAX_CONCURRENT_STREAMS = 2147483647;
/** Stream and connection receive windows Weft announces unless the cluster's http2_protocol_options say. */
export const DEFAULT_H2_STREAM_WINDOW = 1 << 20;
export const DEFAULT_H2_CONNECTION_WINDOW = 4 << 20;
const FLAG_END_STREAM = constants.NGHTTP2_FLAG_END_STREAM;

class H2Session {
  readonly session: ClientHttp2Session;
  connected = false;
  /** No new streams (GOAWAY received, drain, max requests reached). */
  closing = false;
  closed = false;
  /** Streams reserved or open. */
  active = 0;
  /** Streams ever started (max_requests_per_connection). */
  total = 0;
  maxStreams: number;
  idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly pool: H2Pool,
    configuredMax: number,
  ) {
    this.maxStreams = configuredMax;
    const host = pool.host;
    const opened = pool.cluster.transport.connect(host, { alpnFallback: 'h2' });
    const scheme = opened.tls ? 'https' : 'http';
    this.session = h2connect(`${scheme}://${host.address.includes(':') ? `[${host.address}]` : host.address}:${host.port}`, {
      createConnection: () => opened.socket,
      settings: { enablePush: false, initialWindowSize: pool.streamWindow },
      maxSessionMemory: 64,
    });
  }

  get capacity(): number {
    return this.closing || this.closed ? 0 : this.maxStreams - this.active;
  }
}

/** One request on an HTTP/2 session. */
class H2UpstreamStream implements UpstreamStream {
  readonly protocol = 2;
  private s: ClientHttp2Stream | null = null;
  private sink: ResponseSink | null = null;
  private trailers: HeaderList | null = null;
  private done = false;

  constructor(private readonly sess: H2Session) {}

  get socket(): Socket {
    return this.sess.session.socket as Socket;
  }

  sendHead(sink: ResponseSink, head: RequestHead, endStream: boolean): void {
    this.sink = sink;
    const obj: OutgoingHttpHeaders = { ':method': head.method, ':scheme': 'http', ':authority': head.authority, ':path': head.path };
    if (head.method === 'CONNECT') {
      delete obj[':scheme'];
      delete obj[':path'];
    }
    toH2Headers(obj, head.headers, true);
    let s: ClientHttp2Stream;
    try {
      s = this.sess.session.request(obj, { endStream });
    } catch {
      // The session went away between the reservation and now, or a header value HTTP/2 cannot carry.
      this.finish();
      queueMicrotask(() => sink.onUpstreamReset(this.sess.closed ? 'connection termination' : 'remote reset'));
      return;
    }
    this.s = s;
    s.on('response', (h: IncomingHttpHeaders, flags: number) => this.onResponse(h, flags));
    s.on('data', (chunk: Buffer) => this.sink?.onResponseBody(chunk));
    s.on('trailers', (h: IncomingHttpHeaders) => {
      this.trailers = fromH2Headers(h);
    });
    s.on('end', () => this.onEnd());
    s.on('error', () => undefined);
    s.on('close', () => this.onClose());
  }

  private onResponse(h: IncomingHttpHeaders, flags: number): void {
    const status = Number(h[':status']);
    const head: ResponseHead = { status, headers: fromH2Headers(h) };
    this.sink?.onResponseHead(head, (flags & FLAG_END_STREAM) !== 0);
  }

  private onEnd(): void {
    const sink = this.sink;
    if (sink === null) return;
    this.sink = null;
    sink.onResponseComplete(this.trailers);
  }

  private onClose(): void {
    const s = this.s!;
    const sink = this.sink;
    this.finish();
    if (sink === null) return;
    this.sink = null;
    // Closed without a complete response: the session went away, or the upstream reset the stream.
    if (s.rstCode === constants.NGHTTP2_NO_ERROR && s.readableEnded) {
      sink.onResponseComplete(this.trailers);
      return;
    }
    sink.onUpstreamReset(
      s.rstCode === constants.NGHTTP2_REFUSED_STREAM
        ? 'remote refused stream reset'
        : this.sess.closed || this.sess.session.destroyed
          ? 'connection termination'
          : 'remote reset',
    );
  }

  sendBody(chunk: Buffer): boolean {
    const s = this.s;
    if (s === null || s.destroyed) return true;
    return s.write(chunk);
  }

  sendEnd(_trailers: HeaderList | null): void {
    const s = this.s;
    if (s !== null && !s.destroyed && !s.writableEnded) s.end();
  }

  onWritable(cb: () => void): void {
    const s = this.s;
    if (s === null || s.destroyed) cb();
    else s.once('drain', cb);
  }

  pauseResponse(): void {
    this.s?.pause();
  }

  resumeResponse(): void {
    this.s?.resume();
  }

  abort(): void {
    this.sink = null;
    const s = this.s;
    if (s !== null && !s.destroyed) s.destroy(RESET_ERROR);
    this.finish();
  }

  /** Gives the stream slot back to the session (once). */
  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.sess.pool.onStreamDone(this.sess);
  }
}

export class H2Pool implements UpstreamPool {
  private readonly sessions: H2Session[] = [];
  private readonly pending: PendingRequests;
  draining = false;
  readonly idleTimeoutMs: number;
  readonly maxRequestsPerConnection: number;
  readonly maxConcurrentStreams: number;
  readonly streamWindow: number;
  readonly connectionWindow: number;

  constructor(
    readonly cluster: ClusterRuntime,
    readonly host: Host,
  ) {
    this.pending = new PendingRequests(cluster);
    const o = cluster.httpProtocolOptions;
    const common = o?.commonHttpProtocolOptions;
    this.idleTimeoutMs = durationToMs(common?.idleTimeout) ?? DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS;
    this.maxRequestsPerConnection = common?.maxRequestsPerConnection ?? 0;
    const u = o?.upstreamProtocolOptions;
    const h2 =
      u?.case === 'explicitHttpConfig' && u.value.protocolConfig.case === 'http2ProtocolOptions'
        ? u.value.protocolConfig.value
        : u?.case === 'useDownstreamProtocolConfig'
          ? u.value.http2ProtocolOptions
          : undefined;
    this.maxConcurrentStreams = h2?.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS;
    this.streamWindow = Math.min(h2?.initialStreamWindowSize ?? DEFAULT_H2_STREAM_WINDOW, 2147483647);
    this.connectionWindow = Math.min(h2?.initialConnectionWindowSize ?? DEFAULT_H2_CONNECTION_WINDOW, 2147483647);
  }

  /** Number of sessions (connecting, busy and idle). */
  get size(): number {
    return this.sessions.length;
  }

  newStream(req: PoolRequest): void {
    const s = this.available();
    if (s !== undefined) {
      this.reserve(s);
      req.onPoolReady(new H2UpstreamStream(s));
      return;
    }
    if (!this.pending.add(req)) return;
    if (!this.draining && this.connectingCapacity() < this.pending.length) this.tryConnect();
  }

  cancel(req: PoolRequest): void {
    this.pending.cancel(req);
  }

  drain(): void {
    this.draining = true;
    for (const s of this.sessions.slice()) {
      s.closing = true;
      if (s.active === 0) this.closeSession(s);
    }
  }

  close(): void {
    this.draining = true;
    for (const s of this.sessions.slice()) s.session.destroy();
  }

  private available(): H2Session | undefined {
    for (const s of this.sessions) if (s.connected && s.capacity > 0) return s;
    return undefined;
  }

  private connectingCapacity(): number {
    let n = 0;
    for (const s of this.sessions) if (!s.connected && !s.closed) n += s.maxStreams;
    return n;
  }

  private reserve(s: H2Session): void {
    s.active++;
    s.total++;
    if (s.idleTimer !== undefined) {
      clearTimeout(s.idleTimer);
      s.idleTimer = undefined;
    }
    const max = this.maxRequestsPerConnection;
    if (max > 0 && s.total >= max) s.closing = true;
  }

  private tryConnect(): void {
    const cb = this.cluster.circuitBreaker();
    const stats = this.cluster.stats;
    if (!cb.canCreateConnection(this.host) && this.sessions.length > 0) {
      stats.upstream_cx_overflow++;
      return;
    }
    cb.connections++;
    const s = new H2Session(this, this.maxConcurrentStreams);
    this.sessions.push(s);
    stats.upstream_cx_total++;
    stats.upstream_cx_http2_total++;
    stats.upstream_cx_active++;
    this.host.stats.cx_total++;
    this.host.stats.cx_active++;
    const sess = s.session;
    const timeoutMs = this.cluster.connectTimeoutMs;
    let timer: NodeJS.Timeout | undefined;
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        stats.upstream_cx_connect_timeout++;
        sess.destroy();
      }, timeoutMs);
    }
    sess.on('error', () => undefined);
    // Ready once the peer's first SETTINGS arrived (not at TCP connect): streams sent before it could exceed the
    // peer's SETTINGS_MAX_CONCURRENT_STREAMS and be refused.
    sess.on('remoteSettings', (settings) => {
      const peer = settings.maxConcurrentStreams;
      s.maxStreams = peer !== undefined ? Math.min(peer, this.maxConcurrentStreams) : this.maxConcurrentStreams;
      if (!s.connected) {
        clearTimeout(timer);
        s.connected = true;
        try {
          if (this.connectionWindow > 65535) sess.setLocalWindowSize(this.connectionWindow);
        } catch {
          // The session already failed: its close handler cleans up.
        }
        this.host.outlier.putResult('local-origin-success');
      }
      this.servePending();
    });
    sess.on('goaway', () => {
      s.closing = true;
      if (s.active === 0) this.closeSession(s);
      else if (this.pending.length > 0 && !this.draining && this.connectingCapacity() < this.pending.length) this.tryConnect();
    });
    sess.on('stream', (st) => st.close(constants.NGHTTP2_REFUSED_STREAM)); // no server push
    sess.once('close', () => {
      clearTimeout(timer);
      this.onSessionClosed(s);
    });
  }

  /** Hands free stream slots to waiting requests, oldest first. */
  private servePending(): void {
    while (this.pending.length > 0) {
      const s = this.available();
      if (s === undefined) break;
      const req = this.pending.shift()!;
      this.reserve(s);
      req.onPoolReady(new H2UpstreamStream(s));
    }
    if (this.pending.length > 0 && !this.draining && this.connectingCapacity() < this.pending.length) this.tryConnect();
  }

  /** @internal a stream of `s` ended (complete, reset or abandoned). */
  onStreamDone(s: H2Session): void {
    s.active--;
    if (s.closed) return;
    if (s.active === 0 && (s.closing || this.draining)) {
      this.closeSession(s);
      return;
    }
    if (this.pending.length > 0) this.servePending();
    if (s.active === 0 && this.idleTimeoutMs > 0 && s.idleTimer === undefined) {
      s.idleTimer = setTimeout(() => {
        s.idleTimer = undefined;
        if (s.active === 0) this.closeSession(s);
      }, this.idleTimeoutMs);
      s.idleTimer.unref?.();
    }
  }

  /** Graceful close: GOAWAY, then the socket closes once no stream is left. */
  private closeSession(s: H2Session): void {
    s.closing = true;
    if (s.idleTimer !== undefined) clearTimeout(s.idleTimer);
    if (!s.session.closed && !s.session.destroyed) s.session.close();
  }

  private onSessionClosed(s: H2Session): void {
    if (s.closed) return;
    s.closed = true;
    if (s.idleTimer !== undefined) clearTimeout(s.idleTimer);
    const i = this.sessions.indexOf(s);
    if (i >= 0) this.sessions.splice(i, 1);
    const stats = this.cluster.stats;
    stats.upstream_cx_active--;
    stats.upstream_cx_destroy++;
    this.host.stats.cx_active--;
    this.cluster.circuitBreaker().release('connections');
    if (!s.connected) {
      stats.upstream_cx_connect_fail++;
      this.host.stats.cx_connect_fail++;
      this.host.outlier.putResult('local-origin-failure', 503);
      // Fail the waiting requests that the sessions still connecting cannot serve.
      while (this.pending.length > this.connectingCapacity()) {
        this.pending.shift()!.onPoolFailure('connection failure');
      }
    } else if (this.pending.length > 0) this.servePending();
  }
}
