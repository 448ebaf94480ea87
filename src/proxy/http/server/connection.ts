/**
 * Downstream HTTP/1.1 connections on raw net.Socket with the strict H1 parser (codec/h1).
 *
 *   const conn = new H1ServerConnection(socket, handler, parserOptions, onClose);
 *   handler.onRequest(stream)   // once per request, after its head; see DownstreamStream
 *   conn.drain()                // listener changed / shutdown: finish the current exchange, then close
 *
 * Requests on a connection are handled one at a time, in order (pipelining-safe): once a request is complete the
 * parser pauses and the socket stops reading until its response has been written; then the bytes already
 * received are parsed for the next request. A response that completes before its request was fully received
 * ends the connection after it (`connection: close`), as Envoy's HTTP/1 codec does. Codec errors are answered with
 * the parser's status (400/426/431/501/505), the status text as body, `connection: close`, and the connection
 * closes; the proxy keeps serving everyone else. Flow control: a full socket buffer on either side pauses the
 * other side (`pauseRequestBody` / `onResponseDrain`).
 *
 * DownstreamStream (one request, protocol-neutral: H1DownstreamStream here, H2DownstreamStream in h2-connection.ts):
 *   head, remoteAddress, requestComplete, setBodySink(sink) (body chunks as Buffers, then the end + trailers),
 *   sendHead(head, endStream), sendBody(chunk) → false when the transport buffer is full, sendEnd(trailers),
 *   localReply(status, body, flags, details), onReset (set by the consumer: the client went away, or a timeout
 *   ended the stream: then it is called with `true`), responseHeadersHook (set by a filter, CORS), socket (the
 *   downstream connection's socket: addresses for hash policies and header variables), upgrade (the lower-case
 *   Upgrade type, '' for none; always '' on HTTP/2, where extended CONNECT is not supported).
 *
 * Timeouts (the connection manager's `timeouts`, Envoy's ConnectionManagerImpl semantics, 0 = off):
 * - request_headers_timeout: from the first byte of a request until its head is complete → 408 `request header
 *   timeout` (details request_header_timeout, downstream_rq_header_timeout), the connection closes. Envoy's default
 *   is off; Weft's is 10 s when unset (see hcm.ts) so that a slowloris client cannot hold a connection open.
 * - stream_idle_timeout (default 5 min; Istio's sidecars set 0): no byte in either direction of a request for that
 *   long → 408 (request incomplete) or 504 `stream timeout`, flag SI, downstream_rq_idle_timeout; a reset when the
 *   response has begun.
 * - request_timeout (default off): the whole request must arrive within it → 408/504 `request timeout`
 *   (request_overall_timeout, downstream_rq_timeout); disarmed once the request is complete or the response began.
 * - common_http_protocol_options.idle_timeout (default 1 h): a connection with no request for that long is closed
 *   (downstream_cx_idle_timeout).
 * - common_http_protocol_options.max_connection_duration (default off): the connection closes after its current
 *   request (`connection: close`), at once when idle (downstream_cx_max_duration_reached); if the request is still
 *   running after drain_timeout (default 5 s) the connection is closed (downstream_cx_drain_close).
 * A connection the proxy closes is ended (FIN) and destroyed once its bytes are flushed or after 1 s (Envoy's
 * delayed_close_timeout default), so a client that never closes its side cannot keep it.
 *
 * Upgrades (WebSocket): an Upgrade request whose type the connection manager allows is forwarded with Connection
 * and Upgrade kept (route-path/upstream-request.ts). When the upstream answers 101 the stream becomes a tunnel:
 * the 101 head is written without `connection: close`, the socket allows half-open connections, and raw bytes flow
 * both ways through the same body paths (with their flow control) until both directions have ended; an end from
 * one side is passed to the other as a half-close. Any other answer is an ordinary response, after which the
 * connection closes (its later bytes belong to the refused tunnel).
 */
import type { Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';
import {
  CHUNK_END,
  chunkHeader,
  FRAME_END_STREAM,
  FRAME_HAS_CONTENT_LENGTH,
  FRAME_HEAD_REQUEST,
  FRAMING_CHUNK_BODY,
  H1RequestParser,
  h1ErrorDetails,
  h1ErrorStatus,
  LAST_CHUNK,
  responseFraming,
  serializeResponseHead,
  serializeTrailers,
  type H1RequestHandler,
  type H1RequestParserOptions,
} from '../codec/h1/index.js';
import { hasHeader, type HeaderList, type RequestHead, type ResponseHead } from '../headers.js';
import { DEBUG_HEADER, FLAGS_HEADER, localReplyHeaders } from './local-reply.js';
import { isGrpcRequest } from '../grpc/common.js';
import type { HttpConnStats } from '../../stats/request-stats.js';
import type { GrpcFrameCounter } from '../../stats/istio/grpc-frames.js';
import type { Workload } from '../../stats/istio/workload.js';
import type { UpstreamCluster } from '../route-path/upstream-request.js';
import type { Host } from '../../upstream/cluster/host.js';
import { PLAINTEXT_PEER, type PeerInfo } from '../../tls/peer.js';
import type { StreamRecord } from '../../accesslog/record.js';
import { useSharedReadBuffer } from './read-buffer.js';

export interface RequestBodySink {
  onRequestBody(chunk: Buffer): void;
  onRequestEnd(trailers: HeaderList | null): void;
}

/** Sees (and may change) a response head before it is written: upstream responses and local replies alike. */
export interface ResponseHeadersHook {
  onResponseHeaders(resp: ResponseHead): void;
}

/** One downstream request as the connection manager and the router use it, whatever the protocol. */
export interface DownstreamStream {
  readonly head: RequestHead;
  readonly remoteAddress: string;
  /** The downstream connection's socket (addresses: hash policies, header variables). */
  readonly socket: Socket;
  /** The whole request (body and trailers) has been received. */
  readonly requestComplete: boolean;
  readonly responseStarted: boolean;
  /** The client went away (or reset the stream) before the response completed. */
  readonly reset: boolean;
  /** The request asked for the debug response headers (x-weft-debug: 1). */
  readonly debug: boolean;
  readonly startMs: number;
  /** Response flags earned so far (comma-separated, Envoy's short names). */
  flags: string;
  /** Response code details (Envoy's %RESPONSE_CODE_DETAILS%). */
  details: string;
  /** The response status written (0 until the response head is written). */
  readonly status: number;
  /** Request body bytes received and response body bytes sent so far. */
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** The response trailers sent (null: none). */
  readonly responseTrailers: HeaderList | null;
  /** The cluster the router sends the request to (null: not routed to a cluster). */
  cluster: UpstreamCluster | null;
  /** The upstream host of the current (or last) attempt (null: none chosen). */
  upstreamHost: Host | null;
  /** The TLS peer of the upstream connection of the current (or last) attempt (PLAINTEXT_PEER: plaintext / none). */
  upstreamPeer: PeerInfo;
  /** Metrics (stats/istio): the peer workload from the metadata exchange (null: none received). */
  peer: Workload | null;
  /** Metrics: the gRPC message counts of a gRPC request (null: not counted). */
  grpcFrames: GrpcFrameCounter | null;
  /** Metrics: the grpc-status of the response head (-1: none). */
  grpcStatus: number;
  /**
   * Set by the consumer: called once if the client goes away (or resets the stream) before the response completed,
   * or with `true` when the connection manager ends the stream itself (a timeout; it then answers or resets).
   */
  onReset: ((byTimeout?: boolean) => void) | null;
  /** Set by the consumer: called when a full transport buffer has drained. */
  onResponseDrain: (() => void) | null;
  /** The Upgrade type of an HTTP/1.1 upgrade request (lower case; `connect` for CONNECT), '' for none (HTTP/2: ''). */
  readonly upgrade: string;
  /** Set by an HTTP filter (CORS): runs on the response head before it is written (Envoy's encodeHeaders). */
  responseHeadersHook: ResponseHeadersHook | null;
  /** What the stream did, for access logs and tracing (set by the connection manager; null when it has neither). */
  record: StreamRecord | null;
  setBodySink(sink: RequestBodySink | null): void;
  pauseRequestBody(): void;
  resumeRequestBody(): void;
  /** Writes the response head. `endStream`: no body follows. */
  sendHead(resp: ResponseHead, endStream: boolean): void;
  /** false when the transport buffer is full (wait for onResponseDrain). */
  sendBody(chunk: Buffer): boolean;
  sendEnd(trailers: HeaderList | null): void;
  /**
   * A response written by the proxy itself (Envoy's local reply; gRPC-shaped for gRPC requests, see
   * local-reply.ts). `flag` is added to the stream's flags; `grpcStatus` overrides the mapped gRPC status.
   */
  localReply(status: number, body: string | Buffer, flag: string, details: string, extra?: HeaderList, grpcStatus?: number): void;
  /** The response cannot be completed (upstream broke mid-body): HTTP/1 closes the connection, HTTP/2 resets the stream. */
  abortResponse(): void;
}

export interface StreamHandler {
  onRequest(stream: DownstreamStream): void;
  /** The connection manager's stats (stats/request-stats.ts), updated by the connection; null: none kept. */
  readonly stats?: HttpConnStats | null;
  /** The connection manager's downstream timeouts (absent: none). */
  readonly timeouts?: ConnectionTimeouts;
}

/** Downstream timeouts in milliseconds, 0 = none (see the module comment). */
export interface ConnectionTimeouts {
  requestHeadersMs: number;
  streamIdleMs: number;
  requestMs: number;
  idleMs: number;
  maxConnectionDurationMs: number;
  drainMs: number;
}

export const NO_TIMEOUTS: ConnectionTimeouts = { requestHeadersMs: 0, streamIdleMs: 0, requestMs: 0, idleMs: 0, maxConnectionDurationMs: 0, drainMs: 0 };

/** Envoy's delayed_close_timeout default: how long a closing connection waits for the peer after its last byte. */
const DELAYED_CLOSE_MS = 1000;

/** What a local reply or the response head adds besides the upstream's headers. */
export interface ServerHeaderPolicy {
  /** `server` header value for local replies and (OVERWRITE) every response; '' = leave as is. */
  serverName: string;
  /** Envoy server_header_transformation: OVERWRITE (default), APPEND_IF_ABSENT, PASS_THROUGH. */
  serverHeader: 'OVERWRITE' | 'APPEND_IF_ABSENT' | 'PASS_THROUGH';
}

export class H1DownstreamStream implements DownstreamStream {
  /** Response flags earned so far (comma-separated, Envoy's short names). */
  flags = '';
  /** Response code details (Envoy's %RESPONSE_CODE_DETAILS%). */
  details = '';
  bytesReceived = 0;
  bytesSent = 0;
  responseTrailers: HeaderList | null = null;
  cluster: UpstreamCluster | null = null;
  upstreamHost: Host | null = null;
  upstreamPeer: PeerInfo = PLAINTEXT_PEER;
  peer: Workload | null = null;
  grpcFrames: GrpcFrameCounter | null = null;
  grpcStatus = -1;
  requestComplete = false;
  responseStarted = false;
  responseComplete = false;
  /**
   * Set by the consumer: called once if the client goes away before the response completed, or with `true` when
   * the connection manager ends the stream itself (a timeout; it then answers or resets the client).
   */
  onReset: ((byTimeout?: boolean) => void) | null = null;
  /** The Upgrade type of an upgrade request (lower case; `connect` for CONNECT), '' for none. */
  upgrade = '';
  /** The upstream accepted the upgrade (101 written): raw bytes flow both ways. */
  tunnel = false;
  /** Set by the consumer: called when a full socket buffer has drained. */
  onResponseDrain: (() => void) | null = null;
  /** Set by an HTTP filter (CORS): runs on the response head before it is written (Envoy's encodeHeaders). */
  responseHeadersHook: ResponseHeadersHook | null = null;
  record: StreamRecord | null = null;
  readonly startMs = Date.now();
  readonly debug: boolean;
  private sink: RequestBodySink | null = null;
  private framing = 0;
  /** The serialized response head not written yet: it leaves with the first body chunk, or on the next tick. */
  private pendingHead: string | null = null;
  private headRequest: boolean;
  status = 0;
  reset = false;

  constructor(
    readonly conn: H1ServerConnection,
    readonly head: RequestHead,
  ) {
    this.headRequest = head.method === 'HEAD';
    this.debug = hasDebugHeader(head.headers);
  }

  get remoteAddress(): string {
    return this.conn.socket.remoteAddress ?? '';
  }

  get socket(): Socket {
    return this.conn.socket;
  }

  setBodySink(sink: RequestBodySink | null): void {
    this.sink = sink;
  }

  pauseRequestBody(): void {
    this.conn.socket.pause();
  }

  resumeRequestBody(): void {
    if (!this.conn.waitingForResponse) this.conn.socket.resume();
  }

  /** @internal */
  deliverBody(chunk: Buffer): void {
    this.conn.touch();
    this.bytesReceived += chunk.length;
    if (this.grpcFrames !== null) this.grpcFrames.request(chunk);
    this.sink?.onRequestBody(chunk);
  }

  /** @internal */
  deliverEnd(trailers: HeaderList | null): void {
    if (this.requestComplete) return; // a request without a body was complete with its head
    this.requestComplete = true;
    this.conn.requestArmed = false;
    this.sink?.onRequestEnd(trailers);
    if (this.tunnel && this.responseComplete) this.conn.onTunnelDone(this);
  }

  /** Writes the response head. `endStream`: no body follows. */
  sendHead(resp: ResponseHead, endStream: boolean): void {
    if (this.responseStarted || this.reset) return;
    this.responseStarted = true;
    this.status = resp.status;
    const conn = this.conn;
    conn.requestArmed = false;
    conn.touch();
    if (resp.status === 101 && this.upgrade !== '') {
      this.tunnel = true;
      conn.upgraded = true;
      if (conn.stats !== null) {
        conn.stats.downstream_cx_upgrades_total.inc();
        conn.stats.downstream_cx_upgrades_active.inc();
      }
    }
    if (this.responseHeadersHook !== null) this.responseHeadersHook.onResponseHeaders(resp);
    const st = this.conn.stats;
    if (st !== null) st.responseHead(this, resp);
    if (this.record !== null) this.record.responseHead(resp);
    const h = resp.headers;
    applyServerHeaders(h, this.conn.policy, this.debug, this.flags);
    const closing = !this.tunnel && (this.conn.closeAfterResponse || !this.requestComplete);
    if (closing) h.push('connection', 'close');
    let flags = 0;
    if (hasHeader(h, 'content-length')) flags |= FRAME_HAS_CONTENT_LENGTH;
    if (endStream) flags |= FRAME_END_STREAM;
    if (this.headRequest) flags |= FRAME_HEAD_REQUEST;
    this.framing = responseFraming(resp.status, flags);
    const s = serializeResponseHead(resp, this.framing);
    const sock = this.conn.socket;
    if (endStream) {
      sock.write(s, 'latin1');
      this.finish();
    } else {
      this.pendingHead = s;
      process.nextTick(flushHead, this);
    }
  }

  /** @internal writes the response head if it is still pending. */
  flushHead(): void {
    const head = this.pendingHead;
    if (head === null) return;
    this.pendingHead = null;
    if (!this.reset) this.conn.socket.write(head, 'latin1');
  }

  sendBody(chunk: Buffer): boolean {
    if (this.reset || this.responseComplete || chunk.length === 0 || this.headRequest) return true;
    this.conn.touch();
    this.bytesSent += chunk.length;
    if (this.grpcFrames !== null) this.grpcFrames.response(chunk);
    const sock = this.conn.socket;
    if (this.pendingHead !== null) {
      if ((this.framing & FRAMING_CHUNK_BODY) === 0 && chunk.length <= COALESCE_MAX_BODY) {
        // Head and (small) body in one write: one buffer, no writev.
        const head = this.pendingHead;
        this.pendingHead = null;
        const b = Buffer.allocUnsafe(head.length + chunk.length);
        b.write(head, 0, head.length, 'latin1');
        chunk.copy(b, head.length);
        return sock.write(b);
      }
      this.flushHead();
    }
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0) {
      sock.write(chunkHeader(chunk.length), 'latin1');
      sock.write(chunk);
      return sock.write(CHUNK_END, 'latin1');
    }
    return sock.write(chunk);
  }

  sendEnd(trailers: HeaderList | null): void {
    if (this.reset || this.responseComplete) return;
    this.responseTrailers = trailers;
    this.flushHead();
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0 && !this.headRequest) {
      this.conn.socket.write(trailers !== null && trailers.length > 0 ? serializeTrailers(trailers) : LAST_CHUNK, 'latin1');
    }
    this.finish();
  }

  /**
   * A response written by the proxy itself: Envoy's local reply shape (content-length, content-type text/plain
   * when there is a body, date, server) plus the debug headers. `flag` is added to the stream's flags.
   */
  localReply(status: number, body: string | Buffer, flag: string, details: string, extra?: HeaderList, grpcStatus?: number): void {
    if (this.responseStarted) {
      // Too late for a reply: the client sees the connection end instead.
      this.abortResponse();
      return;
    }
    if (flag !== '') this.flags = this.flags === '' ? flag : this.flags + ',' + flag;
    this.details = details;
    const headers: HeaderList = extra ? extra.slice() : [];
    const r = localReplyHeaders(headers, status, body, details, this.debug, isGrpcRequest(this.head), grpcStatus);
    const len = r.len;
    this.sendHead({ status: r.status, headers }, len === 0);
    if (len > 0) {
      this.flushHead();
      if (!this.headRequest) {
        this.bytesSent += len;
        this.conn.socket.write(body as Buffer);
      }
      this.finish();
    }
  }

  /**
   * The connection manager ends the stream (a timeout): the consumer is told (onReset(true)) and lets go, then the
   * client gets the local reply, or a reset when the response has begun. The connection closes after it.
   */
  endByTimeout(status: number, body: string, flag: string, details: string): void {
    const cb = this.onReset;
    this.onReset = null;
    this.sink = null;
    this.onResponseDrain = null;
    cb?.(true);
    this.conn.closeAfterResponse = true;
    // Whatever the client sends after this is not read as another request.
    this.conn.refuse();
    if (this.responseStarted) {
      if (flag !== '') this.flags = this.flags === '' ? flag : this.flags + ',' + flag;
      this.abortResponse();
      return;
    }
    this.requestComplete = true;
    this.localReply(status, body, flag, details);
  }

  /** The response cannot be completed (upstream broke mid-body, or a tunnel's upstream went away): close the connection. */
  abortResponse(): void {
    if (this.responseComplete && !this.tunnel) return;
    this.responseComplete = true;
    this.conn.closeAfterResponse = true;
    this.conn.socket.destroy();
  }

  /** @internal the client went away. */
  onDownstreamReset(): void {
    if (this.reset || (this.responseComplete && !this.tunnel)) return;
    this.reset = true;
    const cb = this.onReset;
    this.onReset = null;
    cb?.();
  }

  private finish(): void {
    if (this.responseComplete) return;
    this.responseComplete = true;
    this.conn.onResponseComplete(this);
  }
}

/** Bodies up to this size are copied behind the response head into one write (a copy is cheaper than writev). */
const COALESCE_MAX_BODY = 8192;

function flushHead(s: H1DownstreamStream): void {
  s.flushHead();
}

/** The `server` header per the HCM's server_header_transformation, and the debug flags header. */
export function applyServerHeaders(h: HeaderList, policy: ServerHeaderPolicy, debug: boolean, flags: string): void {
  if (policy.serverName !== '' && policy.serverHeader !== 'PASS_THROUGH') {
    if (policy.serverHeader === 'OVERWRITE') setOrAdd(h, 'server', policy.serverName);
    else if (!hasHeader(h, 'server')) h.push('server', policy.serverName);
  }
  if (debug && flags !== '') h.push(FLAGS_HEADER, flags);
}

function setOrAdd(h: HeaderList, lower: string, value: string): void {
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === lower.length && n.toLowerCase() === lower) {
      h[i + 1] = value;
      return;
    }
  }
  h.push(lower, value);
}

export function hasDebugHeader(h: HeaderList): boolean {
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 12 && n.toLowerCase() === DEBUG_HEADER) return h[i + 1] === '1';
  }
  return false;
}

export class H1ServerConnection implements H1RequestHandler {
  private readonly parser: H1RequestParser;
  private current: H1DownstreamStream | null = null;
  private leftover: Buffer | null = null;
  /** The socket is paused because a complete request waits for its response. */
  waitingForResponse = false;
  closeAfterResponse = false;
  private closed = false;
  private refused = false;
  requests = 0;
  /** The connection manager's stats (null: none kept). */
  readonly stats: HttpConnStats | null;
  /** An upgrade was accepted on this connection (counted in downstream_cx_upgrades_active until it closes). */
  upgraded = false;
  private readonly timeouts: ConnectionTimeouts;
  /** Reads land in the shared read buffer (read-buffer.ts): chunks are views valid only during onData. */
  private readonly shared: boolean;
  // Timers: one object per kind and connection, re-armed with refresh(); a flag says whether a firing counts.
  private headerTimer: NodeJS.Timeout | undefined;
  private headerArmed = false;
  private idleTimer: NodeJS.Timeout | undefined;
  private idleArmed = false;
  private streamTimer: NodeJS.Timeout | undefined;
  private streamArmed = false;
  private requestTimer: NodeJS.Timeout | undefined;
  /** The request timeout counts (cleared when the request is complete or the response begins). */
  requestArmed = false;
  private durationTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly socket: Socket,
    private readonly handler: StreamHandler,
    parserOptions: H1RequestParserOptions,
    readonly policy: ServerHeaderPolicy,
    private readonly onClosed: (c: H1ServerConnection) => void,
    /** Bytes already read from the socket (the codec sniffing of serve.ts), parsed first. */
    initial: Buffer | null = null,
  ) {
    this.parser = new H1RequestParser(this, parserOptions);
    this.stats = handler.stats ?? null;
    this.timeouts = handler.timeouts ?? NO_TIMEOUTS;
    if (this.stats !== null) this.stats.connectionOpen();
    this.armIdle();
    if (this.timeouts.maxConnectionDurationMs > 0) this.durationTimer = setTimeout(onMaxDuration, this.timeouts.maxConnectionDurationMs, this).unref();
    socket.setNoDelay(true);
    // Plaintext sockets read into one buffer shared by all connections (read-buffer.ts): no buffer allocated per
    // read and no readable-stream machinery. Bytes that outlive the read (request body chunks, a pipelined rest)
    // are copied (`shared`).
    this.shared = useSharedReadBuffer(socket, (n: number, buf: Buffer) => this.onData(buf.subarray(0, n)));
    if (this.shared) {
      if (initial !== null) process.nextTick(deliverInitial, this, initial);
    } else {
      if (initial !== null) socket.unshift(initial);
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
    }
    socket.on('end', () => this.onEnd());
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.current?.onResponseDrain?.());
  }

  /** Stop after the current exchange (listener drain, shutdown). */
  drain(): void {
    this.closeAfterResponse = true;
    if (this.current === null && this.parser.idle) this.endConnection();
  }

  /** Ends the connection (FIN after the bytes written); destroys it once flushed and the peer closed, or after 1 s. */
  endConnection(): void {
    this.socket.end();
    if (this.closeTimer === undefined && !this.closed) this.closeTimer = setTimeout(destroySocket, DELAYED_CLOSE_MS, this.socket).unref();
  }

  /** Stops reading requests from the connection (it closes after the current reply). */
  refuse(): void {
    this.refused = true;
  }

  /** Activity on the current stream: re-arms the stream idle timeout. */
  touch(): void {
    if (this.streamArmed) this.streamTimer!.refresh();
  }

  private armIdle(): void {
    const ms = this.timeouts.idleMs;
    if (ms <= 0) return;
    this.idleArmed = true;
    if (this.idleTimer === undefined) this.idleTimer = setTimeout(onConnectionIdle, ms, this).unref();
    else this.idleTimer.refresh();
  }

  private armHeader(): void {
    this.idleArmed = false;
    const ms = this.timeouts.requestHeadersMs;
    if (ms <= 0 || this.headerArmed) return;
    this.headerArmed = true;
    if (this.headerTimer === undefined) this.headerTimer = setTimeout(onHeaderTimeout, ms, this).unref();
    else this.headerTimer.refresh();
  }

  /** @internal timer callbacks */
  onTimer(kind: 'header' | 'idle' | 'stream' | 'request' | 'duration' | 'drain'): void {
    if (this.closed) return;
    const st = this.stats;
    switch (kind) {
      case 'header':
        if (!this.headerArmed || this.current !== null) return;
        this.headerArmed = false;
        if (st !== null) st.downstream_rq_header_timeout.inc();
        this.replyWithoutRequest(408, 'request header timeout', '', 'request_header_timeout');
        return;
      case 'idle':
        if (!this.idleArmed || this.current !== null) return;
        this.idleArmed = false;
        if (st !== null) st.downstream_cx_idle_timeout.inc();
        this.closeAfterResponse = true;
        this.endConnection();
        return;
      case 'stream': {
        const s = this.current;
        if (!this.streamArmed || s === null) return;
        this.streamArmed = false;
        if (st !== null) st.downstream_rq_idle_timeout.inc();
        s.endByTimeout(s.requestComplete ? 504 : 408, 'stream timeout', 'SI', 'stream_idle_timeout');
        return;
      }
      case 'request': {
        const s = this.current;
        if (!this.requestArmed || s === null || s.requestComplete || s.responseStarted) return;
        this.requestArmed = false;
        if (st !== null) st.downstream_rq_timeout.inc();
        s.endByTimeout(408, 'request timeout', '', 'request_overall_timeout');
        return;
      }
      case 'duration':
        if (st !== null) st.downstream_cx_max_duration_reached.inc();
        this.closeAfterResponse = true;
        if (this.current === null) {
          this.endConnection();
          return;
        }
        if (this.timeouts.drainMs > 0) this.drainTimer = setTimeout(onDrainTimeout, this.timeouts.drainMs, this).unref();
        return;
      case 'drain':
        if (st !== null) st.downstream_cx_drain_close.inc();
        this.current?.onDownstreamReset();
        this.socket.destroy();
        return;
    }
  }

  get idle(): boolean {
    return this.current === null;
  }

  /** @internal */
  onData(chunk: Buffer): void {
    // After a reply that ends the connection (codec error, header timeout) later bytes are not read as requests.
    if (this.refused) return;
    this.execute(chunk);
  }

  private execute(chunk: Buffer): void {
    // The first byte of a request starts its header timeout (Envoy creates the stream on the message's first byte).
    if (this.current === null && !this.closeAfterResponse) this.armHeader();
    const n = this.parser.execute(chunk);
    if (n < 0) {
      this.onParseError();
      return;
    }
    if (n < chunk.length) {
      this.leftover = this.shared ? Buffer.from(chunk.subarray(n)) : chunk.subarray(n);
      this.waitingForResponse = true;
      this.socket.pause();
    }
  }

  private onParseError(): void {
    const code = this.parser.error!;
    const status = h1ErrorStatus(code);
    const cur = this.current;
    this.closeAfterResponse = true;
    if (status === 0 || (cur !== null && cur.responseStarted)) {
      // The HTTP/2 preface on an HTTP/1-only connection (codec_type HTTP1; AUTO sniffs it in serve.ts) or an error
      // after the response began: just close.
      cur?.onDownstreamReset();
      this.socket.destroy();
      return;
    }
    if (cur !== null) cur.onDownstreamReset();
    this.replyWithoutRequest(status, STATUS_CODES[status] ?? '', 'DPE', h1ErrorDetails(code));
  }

  /** A local reply on the connection when no request (or a broken one) is current; the connection closes after it. */
  private replyWithoutRequest(status: number, body: string, flag: string, details: string): void {
    this.closeAfterResponse = true;
    this.refused = true;
    this.headerArmed = false;
    this.streamArmed = false;
    this.requestArmed = false;
    let stream = this.current;
    if (stream === null) {
      stream = new H1DownstreamStream(this, { method: 'GET', path: '', authority: '', scheme: 'http', headers: [], httpVersion: '1.1' });
      if (this.stats !== null) this.stats.requestStart();
    }
    stream.requestComplete = true;
    (stream as { responseStarted: boolean }).responseStarted = false;
    stream.reset = false;
    this.current = stream;
    stream.localReply(status, body, flag, details);
  }

  private onEnd(): void {
    // The client half-closed: a request cut short is a reset; otherwise finish the current exchange and close.
    if (this.parser.finish() < 0 || (this.current !== null && !this.current.requestComplete)) {
      this.current?.onDownstreamReset();
      this.socket.destroy();
      return;
    }
    this.closeAfterResponse = true;
    if (this.current === null) this.endConnection();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.headerArmed = this.idleArmed = this.streamArmed = this.requestArmed = false;
    clearTimeout(this.headerTimer);
    clearTimeout(this.idleTimer);
    clearTimeout(this.streamTimer);
    clearTimeout(this.requestTimer);
    clearTimeout(this.durationTimer);
    clearTimeout(this.drainTimer);
    clearTimeout(this.closeTimer);
    if (this.upgraded && this.stats !== null) this.stats.downstream_cx_upgrades_active.dec();
    const cur = this.current;
    if (cur !== null) {
      cur.onDownstreamReset();
      if (this.stats !== null) this.stats.requestEnd(cur);
      if (cur.record !== null) cur.record.end();
    }
    if (this.stats !== null) this.stats.connectionClose();
    this.onClosed(this);
  }

  /** @internal */
  onResponseComplete(s: H1DownstreamStream): void {
    if (this.current !== s) return;
    if (s.tunnel && !s.requestComplete) {
      // The upstream ended its side of the tunnel: pass the half-close on; the client may still send.
      this.socket.end();
      return;
    }
    this.current = null;
    this.streamArmed = false;
    this.requestArmed = false;
    if (this.stats !== null) this.stats.requestEnd(s);
    if (s.record !== null) s.record.end();
    if (this.closeAfterResponse || !s.requestComplete || !this.parser.keepAlive) {
      this.closeAfterResponse = true;
      this.endConnection();
      return;
    }
    this.armIdle();
    if (this.waitingForResponse) {
      this.waitingForResponse = false;
      const rest = this.leftover;
      this.leftover = null;
      this.socket.resume();
      if (rest !== null && rest.length > 0) this.execute(rest);
    }
  }

  /** @internal both directions of a tunnel have ended. */
  onTunnelDone(s: H1DownstreamStream): void {
    if (this.current !== s) return;
    this.current = null;
    this.streamArmed = false;
    if (this.stats !== null) this.stats.requestEnd(s);
    if (s.record !== null) s.record.end();
    this.closeAfterResponse = true;
    this.endConnection();
  }

  // H1RequestHandler ----------------------------------------------------------------------------------------------

  onRequestHead(head: RequestHead): void {
    this.requests++;
    this.headerArmed = false;
    this.idleArmed = false;
    const s = new H1DownstreamStream(this, head);
    if (this.stats !== null) this.stats.requestStart();
    // A request without a body is complete with its head (Envoy: decodeHeaders with end_stream).
    s.requestComplete = !this.parser.hasBody;
    if (this.parser.upgrade) {
      s.upgrade = head.method === 'CONNECT' ? 'connect' : upgradeType(head.headers);
      // A tunnel may be half-closed by either side.
      this.socket.allowHalfOpen = true;
    }
    this.current = s;
    const t = this.timeouts;
    if (t.streamIdleMs > 0) {
      this.streamArmed = true;
      if (this.streamTimer === undefined) this.streamTimer = setTimeout(onStreamIdle, t.streamIdleMs, this).unref();
      else this.streamTimer.refresh();
    }
    if (t.requestMs > 0 && !s.requestComplete) {
      this.requestArmed = true;
      if (this.requestTimer === undefined) this.requestTimer = setTimeout(onRequestTimeout, t.requestMs, this).unref();
      else this.requestTimer.refresh();
    }
    if (!this.parser.keepAlive) this.closeAfterResponse = true;
    if (this.parser.expectContinue) {
      // proxy_100_continue off (Envoy's default): the proxy answers 100 Continue and drops the Expect header.
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      removeExpect(head.headers);
    }
    this.handler.onRequest(s);
  }

  onBody(chunk: Buffer): void {
    // A view of the shared read buffer must not leave this call: the consumer may queue or keep the chunk.
    this.current?.deliverBody(this.shared ? Buffer.from(chunk) : chunk);
  }

  onMessageComplete(trailers: HeaderList | null): void {
    const s = this.current;
    if (s === null) return;
    s.deliverEnd(trailers);
    // Pipelining: read the next request only once this one has been answered.
    if (this.current === s && !s.responseComplete) this.parser.pause();
  }
}

function onHeaderTimeout(c: H1ServerConnection): void {
  c.onTimer('header');
}
function onConnectionIdle(c: H1ServerConnection): void {
  c.onTimer('idle');
}
function onStreamIdle(c: H1ServerConnection): void {
  c.onTimer('stream');
}
function onRequestTimeout(c: H1ServerConnection): void {
  c.onTimer('request');
}
function onMaxDuration(c: H1ServerConnection): void {
  c.onTimer('duration');
}
function onDrainTimeout(c: H1ServerConnection): void {
  c.onTimer('drain');
}
function deliverInitial(c: H1ServerConnection, initial: Buffer): void {
  if (!c.socket.destroyed) c.onData(initial);
}
function destroySocket(s: Socket): void {
  s.destroy();
}

/** The lower-case value of the Upgrade field ('' when absent). */
function upgradeType(h: HeaderList): string {
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 7 && n.toLowerCase() === 'upgrade') return h[i + 1]!.trim().toLowerCase();
  }
  return '';
}

function removeExpect(h: HeaderList): void {
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 6 && n.toLowerCase() === 'expect') {
      h.splice(i, 2);
      i -= 2;
    }
  }
}
