/**
 * Downstream HTTP/2 connections (h2c prior knowledge, or h2 chosen by ALPN on TLS) on node:http2's native
 * nghttp2 session, taking over a socket that has already been accepted (and sniffed, see serve.ts):
 *
 *   const conn = new H2ServerConnection(socket, handler, policy, options, onClose);
 *   handler.onRequest(stream)   // once per stream, with a DownstreamStream (connection.ts) — H2DownstreamStream
 *   conn.drain()                // GOAWAY (NO_ERROR, last processed stream), let open streams finish, then close
 *
 * Envoy behaviour kept (source/common/http/http2/codec_impl.cc, conn_manager_impl.cc):
 * - SETTINGS from the HCM's http2_protocol_options: max_concurrent_streams (default 2^31-1),
 *   initial_stream_window_size / initial_connection_window_size (Weft's defaults are 1 MiB / 4 MiB instead of
 *   Envoy's 256 MiB: nghttp2's flow control is this proxy's backpressure, see below), max header list size from
 *   max_request_headers_kb and the header count limit from common_http_protocol_options.max_headers_count.
 * - Flow control both ways: a request stream is paused when the upstream cannot take more (no WINDOW_UPDATE is
 *   sent until it resumes); `sendBody` returns false when the stream's write buffer is full and
 *   `onResponseDrain` fires when it drained, so the router pauses the upstream.
 * - Resets: a RST_STREAM from the client (or the connection closing) before the response completed calls
 *   `onReset` (the router resets the upstream request and flags DC); `abortResponse` (upstream reset after the
 *   response began) resets the stream with INTERNAL_ERROR — Envoy's codec used NO_ERROR for local resets until
 *   envoyproxy/envoy#42269 made INTERNAL_ERROR the default, because clients (curl, node) take a NO_ERROR reset
 *   after DATA as a complete response. (The reset is `stream.destroy(error)`: node's `close(code)` would first
 *   end the stream with an END_STREAM frame, which the client reads as a complete response.)
 * - Protocol errors (bad preface, invalid HPACK, frames on the wrong stream, flow-control violations) are
 *   nghttp2's: a GOAWAY with the error code; other connections are not affected. node:http2 does not tell JS
 *   about most of them, so the connection closes when the client closes it (clients do after such a GOAWAY) or,
 *   at the latest, at the idle timeout.
 * - Timeouts (the connection manager's, see connection.ts; Envoy applies them to HTTP/2 streams alike):
 *   common_http_protocol_options.idle_timeout (default 1 h) drains a connection without streams and without
 *   frames for that long (GOAWAY, close; downstream_cx_idle_timeout); max_connection_duration drains it (GOAWAY,
 *   the open streams finish; downstream_cx_max_duration_reached); per stream, stream_idle_timeout (no frame on
 *   the stream for that long) and request_timeout (the request incomplete after that long) answer 408/504 as on
 *   HTTP/1.1 — or reset the stream when the response has begun — and the connection's other streams go on.
 *   request_headers_timeout does not apply (node:http2 surfaces a stream only with its complete header block);
 *   drain_timeout neither (node closes the session once the streams open at the GOAWAY are done).
 * - Trailers: a response that is gRPC (content-type application/grpc…) or answers a request with
 *   `te: trailers` is sent with trailers (an empty trailing HEADERS frame when the upstream sent none); request
 *   trailers are passed to the router.
 * - Cookie crumbs are joined into one `cookie` field (codec/h2/headers.ts); `expect: 100-continue` is answered
 *   by the proxy with a 100 and removed (proxy_100_continue off, Envoy's default), as on HTTP/1.1.
 */
import { constants, performServerHandshake, type IncomingHttpHeaders, type OutgoingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { getHeader, removeHeader, type HeaderList, type RequestHead, type ResponseHead } from '../headers.js';
import { fromH2Headers, requestFieldsFromRaw, RESET_ERROR, toH2Headers } from '../codec/h2/headers.js';
import { isGrpcContentType, isGrpcRequest } from '../grpc/common.js';
import type { HttpConnStats } from '../../stats/request-stats.js';
import type { GrpcFrameCounter } from '../../stats/istio/grpc-frames.js';
import type { Workload } from '../../stats/istio/workload.js';
import type { UpstreamCluster } from '../route-path/upstream-request.js';
import type { Host } from '../../upstream/cluster/host.js';
import { PLAINTEXT_PEER, type PeerInfo } from '../../tls/peer.js';
import type { StreamRecord } from '../../accesslog/record.js';
import { applyServerHeaders, hasDebugHeader, type DownstreamStream, type RequestBodySink, type ResponseHeadersHook, type ServerHeaderPolicy, type StreamHandler, NO_TIMEOUTS, type ConnectionTimeouts } from './connection.js';
import { localReplyHeaders } from './local-reply.js';

/** The HCM's HTTP/2 settings (compiled from http2_protocol_options). */
export interface H2ServerOptions {
  maxConcurrentStreams: number;
  initialStreamWindowSize: number;
  initialConnectionWindowSize: number;
  maxHeaderListSize: number;
  maxHeaderListPairs: number;
}

export const DEFAULT_H2_SERVER_OPTIONS: H2ServerOptions = {
  maxConcurrentStreams: 2147483647,
  initialStreamWindowSize: 1 << 20,
  initialConnectionWindowSize: 4 << 20,
  maxHeaderListSize: 60 * 1024,
  maxHeaderListPairs: 100,
};

const FLAG_END_STREAM = constants.NGHTTP2_FLAG_END_STREAM;


export class H2DownstreamStream implements DownstreamStream {
  flags = '';
  details = '';
  bytesReceived = 0;
  bytesSent = 0;
  cluster: UpstreamCluster | null = null;
  upstreamHost: Host | null = null;
  upstreamPeer: PeerInfo = PLAINTEXT_PEER;
  peer: Workload | null = null;
  grpcFrames: GrpcFrameCounter | null = null;
  grpcStatus = -1;
  requestComplete: boolean;
  responseStarted = false;
  responseComplete = false;
  onReset: ((byTimeout?: boolean) => void) | null = null;
  onResponseDrain: (() => void) | null = null;
  /** HTTP/2 extended CONNECT (RFC 8441) is not supported: never an upgrade. */
  readonly upgrade = '';
  responseHeadersHook: ResponseHeadersHook | null = null;
  record: StreamRecord | null = null;
  readonly startMs = Date.now();
  readonly debug: boolean;
  status = 0;
  reset = false;
  private sink: RequestBodySink | null = null;
  private requestTrailers: HeaderList | null = null;
  private sendsTrailers = false;
  responseTrailers: HeaderList | null = null;
  private readonly headRequest: boolean;
  private requestTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly conn: H2ServerConnection,
    readonly st: ServerHttp2Stream,
    readonly head: RequestHead,
    endStream: boolean,
  ) {
    this.requestComplete = endStream;
    this.headRequest = head.method === 'HEAD';
    this.debug = hasDebugHeader(head.headers);
    st.on('data', (chunk: Buffer) => this.onData(chunk));
    st.on('trailers', (h: IncomingHttpHeaders) => {
      this.requestTrailers = fromH2Headers(h);
    });
    st.on('end', () => this.deliverEnd());
    st.on('error', () => undefined);
    st.on('drain', () => this.onResponseDrain?.());
    st.on('close', () => this.onClose());
    st.on('wantTrailers', () => this.onWantTrailers());
    const t = conn.timeouts;
    // stream_idle_timeout: node's per-stream timer, refreshed by every frame read or written on the stream.
    if (t.streamIdleMs > 0) st.setTimeout(t.streamIdleMs, () => this.onTimer('stream'));
    if (t.requestMs > 0 && !endStream) this.requestTimer = setTimeout(onRequestTimeout, t.requestMs, this).unref();
  }

  private onData(chunk: Buffer): void {
    this.bytesReceived += chunk.length;
    if (this.grpcFrames !== null) this.grpcFrames.request(chunk);
    this.sink?.onRequestBody(chunk);
  }

  /** @internal stream_idle_timeout / request_timeout fired (same replies and stats as on HTTP/1.1, connection.ts). */
  onTimer(kind: 'stream' | 'request'): void {
    if (this.reset || this.responseComplete) return;
    const st = this.conn.stats;
    if (kind === 'stream') {
      if (st !== null) st.downstream_rq_idle_timeout.inc();
      this.endByTimeout(this.requestComplete ? 504 : 408, 'stream timeout', 'SI', 'stream_idle_timeout');
      return;
    }
    this.requestTimer = undefined;
    if (this.requestComplete || this.responseStarted) return;
    if (st !== null) st.downstream_rq_timeout.inc();
    this.endByTimeout(408, 'request timeout', '', 'request_overall_timeout');
  }

  /**
   * The connection manager ends the stream (a timeout): the consumer is told (onReset(true)) and lets go, then the
   * client gets the local reply, or a stream reset when the response has begun. Other streams go on.
   */
  private endByTimeout(status: number, body: string, flag: string, details: string): void {
    const cb = this.onReset;
    this.onReset = null;
    this.sink = null;
    this.onResponseDrain = null;
    cb?.(true);
    if (this.responseStarted) {
      if (flag !== '') this.flags = this.flags === '' ? flag : this.flags + ',' + flag;
      this.abortResponse();
      return;
    }
    // An incomplete request is stopped after the reply (stopRequest).
    this.localReply(status, body, flag, details);
  }

  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  setBodySink(sink: RequestBodySink | null): void {
    this.sink = sink;
  }

  pauseRequestBody(): void {
    this.st.pause();
  }

  resumeRequestBody(): void {
    this.st.resume();
  }

  private deliverEnd(): void {
    if (this.requestComplete) return;
    this.requestComplete = true;
    this.clearRequestTimer();
    this.sink?.onRequestEnd(this.requestTrailers);
  }

  sendHead(resp: ResponseHead, endStream: boolean): void {
    if (this.responseStarted || this.reset) return;
    this.responseStarted = true;
    this.status = resp.status;
    this.clearRequestTimer();
    if (this.responseHeadersHook !== null) this.responseHeadersHook.onResponseHeaders(resp);
    const st = this.conn.stats;
    if (st !== null) st.responseHead(this, resp);
    if (this.record !== null) this.record.responseHead(resp);
    const h = resp.headers;
    applyServerHeaders(h, this.conn.policy, this.debug, this.flags);
    const obj: OutgoingHttpHeaders = { ':status': resp.status };
    toH2Headers(obj, h, false);
    const end = endStream || this.headRequest || resp.status === 204 || resp.status === 304;
    this.sendsTrailers = !end && (isGrpcContentType(getHeader(h, 'content-type')) || getHeader(this.head.headers, 'te') === 'trailers');
    try {
      this.st.respond(obj, { endStream: end, waitForTrailers: this.sendsTrailers });
    } catch {
      // A header HTTP/2 cannot carry, or the stream is already gone: the client sees the stream reset.
      this.abortResponse();
      return;
    }
    if (end) {
      this.finish();
      this.stopRequest();
    }
  }

  sendBody(chunk: Buffer): boolean {
    if (this.reset || this.responseComplete || chunk.length === 0) return true;
    this.bytesSent += chunk.length;
    if (this.grpcFrames !== null) this.grpcFrames.response(chunk);
    return this.st.write(chunk);
  }

  sendEnd(trailers: HeaderList | null): void {
    if (this.reset || this.responseComplete) return;
    this.responseTrailers = trailers;
    this.finish();
    this.st.end();
    this.stopRequest();
  }

  private onWantTrailers(): void {
    const t = this.responseTrailers;
    const obj: OutgoingHttpHeaders = {};
    if (t !== null) toH2Headers(obj, t, false);
    try {
      this.st.sendTrailers(obj);
    } catch {
      this.st.destroy(RESET_ERROR);
    }
  }

  localReply(status: number, body: string | Buffer, flag: string, details: string, extra?: HeaderList, grpcStatus?: number): void {
    if (this.responseStarted) {
      this.abortResponse();
      return;
    }
    if (flag !== '') this.flags = this.flags === '' ? flag : this.flags + ',' + flag;
    this.details = details;
    const headers: HeaderList = extra ? extra.slice() : [];
    const r = localReplyHeaders(headers, status, body, details, this.debug, isGrpcRequest(this.head), grpcStatus);
    if (r.len === 0 || this.headRequest) {
      this.sendHead({ status: r.status, headers }, true);
      return;
    }
    this.sendHead({ status: r.status, headers }, false);
    if (this.reset) return;
    this.finish();
    this.bytesSent += r.len;
    this.st.end(typeof body === 'string' ? Buffer.from(body) : body);
    this.stopRequest();
  }

  /**
   * The response is complete but the request is not: RST_STREAM NO_ERROR once the response has been written, so
   * the client stops sending (RFC 9113 §8.1; Envoy's doEndStream resets a stream that is not remote-complete).
   */
  private stopRequest(): void {
    if (this.requestComplete) return;
    this.sink = null;
    this.clearRequestTimer();
    if (!this.st.destroyed) this.st.close(constants.NGHTTP2_NO_ERROR);
  }

  abortResponse(): void {
    if (this.responseComplete) return;
    this.responseComplete = true;
    if (!this.st.destroyed) this.st.destroy(RESET_ERROR);
  }

  private finish(): void {
    this.responseComplete = true;
  }

  private clearRequestTimer(): void {
    if (this.requestTimer !== undefined) {
      clearTimeout(this.requestTimer);
      this.requestTimer = undefined;
    }
  }

  private onClose(): void {
    this.clearRequestTimer();
    this.conn.onStreamClosed(this);
    if (this.reset || this.responseComplete) return;
    // The client reset the stream (or the connection went away) before the response completed.
    this.reset = true;
    const cb = this.onReset;
    this.onReset = null;
    cb?.();
  }
}

function onMaxDuration(c: H2ServerConnection): void {
  c.onMaxDuration();
}

function onRequestTimeout(s: H2DownstreamStream): void {
  s.onTimer('request');
}

export class H2ServerConnection {
  readonly session: ServerHttp2Session;
  readonly remoteAddress: string;
  readonly stats: HttpConnStats | null;
  private closed = false;
  private draining = false;
  requests = 0;
  private active = 0;
  /** The connection manager's timeouts (the stream ones are armed per stream, see H2DownstreamStream). */
  readonly timeouts: ConnectionTimeouts;
  private durationTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Socket,
    private readonly handler: StreamHandler,
    readonly policy: ServerHeaderPolicy,
    options: H2ServerOptions,
    private readonly onClosed: (c: H2ServerConnection) => void,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.stats = handler.stats ?? null;
    if (this.stats !== null) this.stats.connectionOpen(true);
    socket.setNoDelay(true);
    const session = performServerHandshake(socket, {
      settings: {
        maxConcurrentStreams: Math.min(options.maxConcurrentStreams, 4294967295),
        initialWindowSize: Math.min(options.initialStreamWindowSize, 2147483647),
        maxHeaderListSize: options.maxHeaderListSize,
        enablePush: false,
      },
      maxHeaderListPairs: options.maxHeaderListPairs + 4,
      maxSessionMemory: 64,
    });
    this.session = session;
    session.on('stream', (st: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, raw: string[]) => this.onStream(st, headers, flags, raw));
    session.on('error', () => undefined);
    session.on('close', () => this.onClose());
    socket.on('close', () => this.onClose());
    const t = handler.timeouts ?? NO_TIMEOUTS;
    this.timeouts = t;
    if (t.idleMs > 0) {
      session.setTimeout(t.idleMs, () => {
        if (this.active !== 0) return;
        if (this.stats !== null && !this.draining) this.stats.downstream_cx_idle_timeout.inc();
        this.drain();
      });
    }
    if (t.maxConnectionDurationMs > 0) this.durationTimer = setTimeout(onMaxDuration, t.maxConnectionDurationMs, this).unref();
    try {
      if (options.initialConnectionWindowSize > 65535) session.setLocalWindowSize(Math.min(options.initialConnectionWindowSize, 2147483647));
    } catch {
      // The session failed already (bad preface): its close handler cleans up.
    }
  }

  get idle(): boolean {
    return this.active === 0;
  }

  /** @internal max_connection_duration reached: drain (GOAWAY, the open streams finish). */
  onMaxDuration(): void {
    this.durationTimer = undefined;
    if (this.closed || this.draining) return;
    if (this.stats !== null) this.stats.downstream_cx_max_duration_reached.inc();
    this.drain();
  }

  /** Graceful drain (listener change, shutdown): GOAWAY now, close once the open streams are done. */
  drain(): void {
    if (this.draining || this.closed) return;
    this.draining = true;
    const s = this.session;
    if (s.closed || s.destroyed) return;
    try {
      s.goaway(constants.NGHTTP2_NO_ERROR);
    } catch {
      // Already closing.
    }
    s.close();
  }

  private onStream(st: ServerHttp2Stream, h: IncomingHttpHeaders, flags: number, raw: string[]): void {
    this.requests++;
    this.active++;
    const fields = requestFieldsFromRaw(raw);
    const authority = (h[':authority'] as string | undefined) ?? getHeader(fields, 'host') ?? '';
    const scheme = h[':scheme'] === 'https' ? 'https' : 'http';
    const head: RequestHead = {
      method: (h[':method'] as string | undefined) ?? 'GET',
      path: (h[':path'] as string | undefined) ?? '',
      authority,
      scheme,
      headers: fields,
      httpVersion: '2',
    };
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if (h.expect !== undefined && !endStream) {
      // proxy_100_continue off (Envoy's default): the proxy answers 100 Continue itself and drops Expect, as the
      // HTTP/1.1 connection does.
      removeHeader(fields, 'expect');
      if (h.expect.toLowerCase() === '100-continue') {
        try {
          st.additionalHeaders({ ':status': 100 });
        } catch {
          // The stream is already gone: its close handler runs.
        }
      }
    }
    const s = new H2DownstreamStream(this, st, head, endStream);
    if (this.stats !== null) this.stats.requestStart(true);
    this.handler.onRequest(s);
  }

  /** @internal */
  onStreamClosed(s: H2DownstreamStream): void {
    this.active--;
    if (this.stats !== null) this.stats.requestEnd(s);
    if (s.record !== null) s.record.end();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.durationTimer);
    if (!this.session.destroyed) this.session.destroy();
    if (!this.socket.destroyed) this.socket.destroy();
    if (this.stats !== null) this.stats.connectionClose(true);
    this.onClosed(this);
  }
}
