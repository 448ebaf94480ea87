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
 *   localReply(status, body, flags, details), onReset (set by the consumer: the client went away).
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

export interface RequestBodySink {
  onRequestBody(chunk: Buffer): void;
  onRequestEnd(trailers: HeaderList | null): void;
}

/** One downstream request as the connection manager and the router use it, whatever the protocol. */
export interface DownstreamStream {
  readonly head: RequestHead;
  readonly remoteAddress: string;
  /** The whole request (body and trailers) has been received. */
  readonly requestComplete: boolean;
  readonly responseStarted: boolean;
  /** The request asked for the debug response headers (x-weft-debug: 1). */
  readonly debug: boolean;
  readonly startMs: number;
  /** Response flags earned so far (comma-separated, Envoy's short names). */
  flags: string;
  /** Response code details (Envoy's %RESPONSE_CODE_DETAILS%). */
  details: string;
  /** Set by the consumer: called once if the client goes away (or resets the stream) before the response completed. */
  onReset: (() => void) | null;
  /** Set by the consumer: called when a full transport buffer has drained. */
  onResponseDrain: (() => void) | null;
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
}

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
  requestComplete = false;
  responseStarted = false;
  responseComplete = false;
  /** Set by the consumer: called once if the client goes away before the response completed. */
  onReset: (() => void) | null = null;
  /** Set by the consumer: called when a full socket buffer has drained. */
  onResponseDrain: (() => void) | null = null;
  readonly startMs = Date.now();
  readonly debug: boolean;
  private sink: RequestBodySink | null = null;
  private framing = 0;
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
    this.sink?.onRequestBody(chunk);
  }

  /** @internal */
  deliverEnd(trailers: HeaderList | null): void {
    if (this.requestComplete) return; // a request without a body was complete with its head
    this.requestComplete = true;
    this.sink?.onRequestEnd(trailers);
  }

  /** Writes the response head. `endStream`: no body follows. */
  sendHead(resp: ResponseHead, endStream: boolean): void {
    if (this.responseStarted || this.reset) return;
    this.responseStarted = true;
    this.status = resp.status;
    const st = this.conn.stats;
    if (st !== null) st.responseHead(resp.status);
    const h = resp.headers;
    applyServerHeaders(h, this.conn.policy, this.debug, this.flags);
    const closing = this.conn.closeAfterResponse || !this.requestComplete;
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
      sock.cork();
      sock.write(s, 'latin1');
      process.nextTick(uncork, sock);
    }
  }

  sendBody(chunk: Buffer): boolean {
    if (this.reset || this.responseComplete || chunk.length === 0 || this.headRequest) return true;
    const sock = this.conn.socket;
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0) {
      sock.write(chunkHeader(chunk.length), 'latin1');
      sock.write(chunk);
      return sock.write(CHUNK_END, 'latin1');
    }
    return sock.write(chunk);
  }

  sendEnd(trailers: HeaderList | null): void {
    if (this.reset || this.responseComplete) return;
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
      if (!this.headRequest) this.conn.socket.write(body as Buffer);
      this.finish();
    }
  }

  /** The response cannot be completed (upstream broke mid-body): close the connection. */
  abortResponse(): void {
    if (this.responseComplete) return;
    this.responseComplete = true;
    this.conn.closeAfterResponse = true;
    this.conn.socket.destroy();
  }

  /** @internal the client went away. */
  onDownstreamReset(): void {
    if (this.reset || this.responseComplete) return;
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

function uncork(sock: Socket): void {
  sock.uncork();
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
  requests = 0;
  /** The connection manager's stats (null: none kept). */
  readonly stats: HttpConnStats | null;

  constructor(
    readonly socket: Socket,
    private readonly handler: StreamHandler,
    parserOptions: H1RequestParserOptions,
    readonly policy: ServerHeaderPolicy,
    private readonly onClosed: (c: H1ServerConnection) => void,
  ) {
    this.parser = new H1RequestParser(this, parserOptions);
    this.stats = handler.stats ?? null;
    if (this.stats !== null) this.stats.connectionOpen();
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('end', () => this.onEnd());
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
    socket.on('drain', () => this.current?.onResponseDrain?.());
  }

  /** Stop after the current exchange (listener drain, shutdown). */
  drain(): void {
    this.closeAfterResponse = true;
    if (this.current === null && this.parser.idle) this.socket.end();
  }

  get idle(): boolean {
    return this.current === null;
  }

  private onData(chunk: Buffer): void {
    this.execute(chunk);
  }

  private execute(chunk: Buffer): void {
    const n = this.parser.execute(chunk);
    if (n < 0) {
      this.onParseError();
      return;
    }
    if (n < chunk.length) {
      this.leftover = chunk.subarray(n);
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
    const body = STATUS_CODES[status] ?? '';
    let stream = cur;
    if (stream === null) {
      stream = new H1DownstreamStream(this, { method: 'GET', path: '', authority: '', scheme: 'http', headers: [], httpVersion: '1.1' });
      if (this.stats !== null) this.stats.requestStart();
    }
    stream.requestComplete = true;
    (stream as { responseStarted: boolean }).responseStarted = false;
    stream.reset = false;
    this.current = stream;
    stream.localReply(status, body, 'DPE', h1ErrorDetails(code));
  }

  private onEnd(): void {
    // The client half-closed: a request cut short is a reset; otherwise finish the current exchange and close.
    if (this.parser.finish() < 0 || (this.current !== null && !this.current.requestComplete)) {
      this.current?.onDownstreamReset();
      this.socket.destroy();
      return;
    }
    this.closeAfterResponse = true;
    if (this.current === null) this.socket.end();
  }

  private onClose(): void {
    if (this.closed) return;
    this.closed = true;
    const cur = this.current;
    if (cur !== null) {
      cur.onDownstreamReset();
      if (this.stats !== null) this.stats.requestEnd(cur.startMs);
    }
    if (this.stats !== null) this.stats.connectionClose();
    this.onClosed(this);
  }

  /** @internal */
  onResponseComplete(s: H1DownstreamStream): void {
    if (this.current !== s) return;
    this.current = null;
    if (this.stats !== null) this.stats.requestEnd(s.startMs);
    if (this.closeAfterResponse || !s.requestComplete || !this.parser.keepAlive) {
      this.closeAfterResponse = true;
      this.socket.end();
      return;
    }
    if (this.waitingForResponse) {
      this.waitingForResponse = false;
      const rest = this.leftover;
      this.leftover = null;
      this.socket.resume();
      if (rest !== null && rest.length > 0) this.execute(rest);
    }
  }

  // H1RequestHandler ----------------------------------------------------------------------------------------------

  onRequestHead(head: RequestHead): void {
    this.requests++;
    const s = new H1DownstreamStream(this, head);
    if (this.stats !== null) this.stats.requestStart();
    // A request without a body is complete with its head (Envoy: decodeHeaders with end_stream).
    s.requestComplete = !this.parser.hasBody;
    this.current = s;
    if (!this.parser.keepAlive) this.closeAfterResponse = true;
    if (this.parser.expectContinue) {
      // proxy_100_continue off (Envoy's default): the proxy answers 100 Continue and drops the Expect header.
      this.socket.write('HTTP/1.1 100 Continue\r\n\r\n', 'latin1');
      removeExpect(head.headers);
    }
    this.handler.onRequest(s);
  }

  onBody(chunk: Buffer): void {
    this.current?.deliverBody(chunk);
  }

  onMessageComplete(trailers: HeaderList | null): void {
    const s = this.current;
    if (s === null) return;
    s.deliverEnd(trailers);
    // Pipelining: read the next request only once this one has been answered.
    if (this.current === s && !s.responseComplete) this.parser.pause();
  }
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
