/**
 * The interface between the router (http/route-path/upstream-request.ts) and the upstream connection pools
 * (h1-pool.ts, h2-pool.ts): Envoy's Http::ConnectionPool::Instance / GenericConnectionPoolCallbacks, reduced to
 * what the request path uses, so one RouterRequest drives either protocol.
 *
 *   pool.newStream(req);                 // req.onPoolReady(stream) (maybe synchronously) or req.onPoolFailure(why)
 *   stream.sendHead(head, endStream);    // then sendBody(chunk) → false when the transport buffer is full
 *   stream.sendEnd(trailers);            // the request is complete
 *   stream.onWritable(cb);               // once, when a full buffer has drained
 *   sink.onResponseHead(head, endStream) / onResponseBody / onResponseComplete / onUpstreamReset
 *   stream.abort();                      // the request gave up (timeout, retry, downstream reset)
 *   pool.cancel(req);                    // the request gave up while waiting for a stream
 */
import type { Socket } from 'node:net';
import type { HeaderList, RequestHead, ResponseHead } from '../../http/headers.js';

export type PoolFailure = 'overflow' | 'connection failure';

/** Why an upstream stream ended before its response completed (Envoy's StreamResetReason, as the router names it). */
export type UpstreamResetReason = 'connection termination' | 'remote reset' | 'remote refused stream reset';

/** A request that wants an upstream stream. */
export interface PoolRequest {
  onPoolReady(stream: UpstreamStream): void;
  onPoolFailure(reason: PoolFailure): void;
}

/** Receives the response of the request on an upstream stream. */
export interface ResponseSink {
  /** `endStream`: the response has no body (and no trailers). */
  onResponseHead(head: ResponseHead, endStream: boolean): void;
  onResponseBody(chunk: Buffer): void;
  onResponseComplete(trailers: HeaderList | null): void;
  /** The stream or its connection ended or broke before the response completed. */
  onUpstreamReset(reason: UpstreamResetReason): void;
}

/** One request/response exchange on an upstream connection (an HTTP/1.1 connection or an HTTP/2 stream). */
export interface UpstreamStream {
  /** 1 for HTTP/1.1, 2 for HTTP/2. */
  readonly protocol: 1 | 2;
  /** The transport socket (HTTP/2: the session's), for the upstream local address of header variables. */
  readonly socket: Socket;
  /**
   * Binds the response sink and sends the request head; `endStream`: no body follows. `upgrade`: an HTTP/1.1
   * Upgrade request (bytes after the head are raw, see TunnelStream); only HTTP/1.1 streams get one.
   */
  sendHead(sink: ResponseSink, head: RequestHead, endStream: boolean, upgrade?: boolean): void;
  /** Sends request body bytes; false when the transport buffer is full (wait for onWritable). */
  sendBody(chunk: Buffer): boolean;
  /** Ends the request (with trailers when the protocol can carry them). */
  sendEnd(trailers: HeaderList | null): void;
  /** Calls `cb` once when a full transport buffer has drained. */
  onWritable(cb: () => void): void;
  /** Stops / resumes delivering the response (downstream flow control). */
  pauseResponse(): void;
  resumeResponse(): void;
  /** Abandons the exchange: HTTP/1.1 closes the connection, HTTP/2 resets the stream. No sink call follows. */
  abort(): void;
}

/**
 * An HTTP/1.1 upstream stream that can become a raw tunnel (WebSocket upgrades). The router uses it only for
 * upgrade requests, which go to HTTP/1.1 pools only (the connection manager refuses upgrades to HTTP/2 clusters:
 * extended CONNECT, RFC 8441, is not supported).
 */
export interface TunnelStream extends UpstreamStream {
  /** The upstream answered 101: the exchange is a raw tunnel from now on. */
  startTunnel(): void;
  /** The client ended its side of the tunnel (or of the upgrade request): half-close the upstream. */
  endTunnel(): void;
}

/** A connection pool for one upstream host. */
export interface UpstreamPool {
  newStream(req: PoolRequest): void;
  /** Removes a request that is still waiting for a stream. */
  cancel(req: PoolRequest): void;
  /** Host removed / cluster replaced: finish what is in flight, then close. */
  drain(): void;
  /** Proxy shutdown: close everything now. */
  close(): void;
}

/** Envoy's default idle timeout for upstream HTTP connections (1 hour). */
export const DEFAULT_UPSTREAM_IDLE_TIMEOUT_MS = 3_600_000;

export function durationToMs(d: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}
