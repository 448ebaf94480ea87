/**
 * The request path from a route decision to the upstream and back: Envoy's router filter
 * (source/common/router/router.cc, retry_state_impl.cc) for HTTP/1.1 and HTTP/2 upstreams and any downstream
 * (DownstreamStream, server/connection.ts).
 *
 *   new RouterRequest(stream, decision, cluster, random).start();
 *
 * The upstream protocol is the cluster's (UpstreamProtocol: http1, http2, or the downstream's for
 * use_downstream_protocol_config); the host's pool of that protocol gives an UpstreamStream (upstream/pool/types.ts),
 * so HTTP/1.1 framing and HTTP/2 streams look the same here.
 *
 * Per attempt: choose a host (cluster.lb, previous-hosts predicate on retries) → no host: 503 UH; take the
 * `requests` circuit breaker → overflow: 503 UO; ask the host's pool for a connection (pending overflow: 503 UO,
 * connection failure: UF); send the head at once and stream the body as it arrives. The request body is also kept
 * (up to `bufferLimitBytes`, Envoy's 1 MiB default connection buffer limit) so a retry can resend it; beyond that,
 * retries are off for the request, as Envoy does.
 *
 * Retries (route retry policy, else the virtual host's): `5xx` (any 5xx, resets, connect failures and per-try
 * timeouts), `gateway-error` (502/503/504, resets, per-try timeouts), `reset`, `connect-failure`,
 * `retriable-4xx` (409), `retriable-status-codes` (the policy's codes plus x-envoy-retriable-status-codes),
 * `reset-before-request`; `num_retries` (default 1), `per_try_timeout`, `retriable_request_headers`, the
 * `retries` circuit breaker (overflow: flag UO, the response is passed on), and the jittered exponential back-off:
 * each wait is uniform in [0, interval) with interval = base (25 ms unless retry_back_off says) doubling up to
 * max (10 × base). Retries exhausted on a retriable answer → flag URX, the last answer is passed on.
 * A retry after response headers resets the upstream stream (HTTP/1: the connection closes), as Envoy does.
 *
 * Timeouts: the route timeout (decision.timeoutMs: 15 s unless the route says; 0 = none) runs from the end of the
 * downstream request until the response is complete → 504 UT `upstream request timeout` (or a reset downstream
 * if the response had begun); per_try_timeout runs from the end of the upstream request to response headers.
 * gRPC (Envoy's FilterUtility::finalTimeout and the HCM's refreshDurationTimeout): with max_grpc_timeout the
 * request's grpc-timeout is the route timeout (and the upstream's grpc-timeout says what is left); a route with
 * max_stream_duration has no route timeout, its stream duration (grpc-timeout when grpc_timeout_header_max is set)
 * ends the stream with 408 `downstream duration timeout` (gRPC: DEADLINE_EXCEEDED).
 * gRPC retries: retry_on cancelled / deadline-exceeded / internal / resource-exhausted / unavailable match the
 * grpc-status of a trailers-only response (RetryStateImpl::wouldRetryFromHeaders).
 *
 * Headers: the upstream request gets x-envoy-expected-rq-timeout-ms (when a timeout applies) and
 * x-envoy-attempt-count (virtual host include_request_attempt_count); hop-by-hop fields are removed both ways.
 * The response gets x-envoy-upstream-service-time (ms from the upstream request's start to its response head)
 * and x-envoy-attempt-count when include_attempt_count_in_response, then the route's response header mutations.
 * Hooks (the connection manager's): `holdBody(held)` — the request body an HTTP filter kept while it held the
 * request is sent first; `mirrorTo(mirrors)` — the request body is teed to the request mirrors (route-path/
 * mirror.ts); the route's hash policies give RING_HASH / MAGLEV clusters the request hash (route-path/hash.ts),
 * and generated hash cookies are returned in Set-Cookie.
 * Upgrades (WebSocket, HTTP/1.1 upstreams only: the connection manager has checked the type is allowed and refuses
 * upgrades to HTTP/2 clusters, so the pool's stream is a TunnelStream, upstream/pool/types.ts): the request goes out
 * with Connection and Upgrade kept and no body framing, without retries; bytes the client sends before the answer
 * are held until the connection is ready and then written raw. A 101 answer turns the exchange into a tunnel (Envoy's upgrade handling
 * in the router and codecs): the route timeout no longer applies, raw bytes are relayed both ways with flow control,
 * an end from either side half-closes the other, and the request is over once both directions have ended; a reset
 * on either side resets the other. Any other answer is an ordinary response.
 * Stats: cluster upstream_rq_total/_active/_retry/_retry_success/_timeout/_per_try_timeout/_cancelled (runtime
 * ClusterStats), upstream_rq_completed/_<code>/_<n>xx and upstream_rq_time (UpstreamCluster.stats, created with the cluster),
 * host rq_*; outlier results are reported for every attempt.
 */
import { peerOf } from '../../tls/peer.js';
import { isIP } from 'node:net';
import { isOwnAddress } from '../../listener/own-ports.js';
import { removeHopByHopHeaders } from '../codec/h1/index.js';
import { getHeader, removeHeader, setHeader, type HeaderList, type ResponseHead } from '../headers.js';
import { grpcStatusOf, GrpcStatus, isGrpcRequest, parseGrpcTimeout } from '../grpc/common.js';
import { applyResponseHeaders, autoRewriteHost, RetryOn, type RetryPolicy, type RouteDecision } from '../router/index.js';
import type { ClusterRuntime } from '../../upstream/cluster/cluster.js';
import type { Host } from '../../upstream/cluster/host.js';
import type { LbContext } from '../../upstream/lb/load-balancer.js';
import type { PoolFailure, PoolRequest, ResponseSink, TunnelStream, UpstreamPool, UpstreamResetReason, UpstreamStream } from '../../upstream/pool/types.js';
import { originalDstOf } from '../../listener/original-dst.js';
import type { DownstreamStream, RequestBodySink } from '../server/connection.js';
import type { ClusterRequestStats } from '../../stats/request-stats.js';
import type { HeldBody } from '../filters/registry.js';
import { requestHash } from './hash.js';
import type { RequestMirrors } from './mirror.js';
import type { StreamVars } from './stream-vars.js';
import { NO_HEALTHY_UPSTREAM, resetBody, resetFlag, UPSTREAM_TIMEOUT, type ResetReason } from '../server/local-reply.js';

/**
 * A cluster as the request path uses it: the runtime, a pool per host and protocol, and its response-code and
 * timing stats.
 */
export interface UpstreamCluster {
  readonly runtime: ClusterRuntime;
  /** Response-code counters and upstream_rq_time (absent: not kept, e.g. in unit tests). */
  readonly stats?: ClusterRequestStats;
  /** The pool of a host for HTTP/1.1 (1) or HTTP/2 (2). */
  pool(host: Host, protocol: 1 | 2): UpstreamPool;
}

/**
 * The protocol of a cluster's upstream requests: HTTP/2 for http2_protocol_options, the downstream's for
 * use_downstream_protocol_config, else HTTP/1.1.
 */
export function upstreamProtocolOf(cluster: ClusterRuntime, downstreamVersion: string): 1 | 2 {
  const p = cluster.protocol;
  return p === 'http2' || (p === 'downstream' && downstreamVersion === '2') ? 2 : 1;
}

/** Envoy's default per-connection buffer limit, used as the retry buffer limit. */
export const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;
const DEFAULT_BACKOFF_BASE_MS = 25;

const RESET_RETRY = RetryOn['5xx'] | RetryOn['gateway-error'] | RetryOn.reset;
const GRPC_RETRY = RetryOn.cancelled | RetryOn['deadline-exceeded'] | RetryOn['resource-exhausted'] | RetryOn.unavailable | RetryOn.internal;
const CONNECT_FAILURE_RETRY = RESET_RETRY | RetryOn['connect-failure'] | RetryOn['reset-before-request'];

/** The load balancer context of RouterRequest.startAttempt, reused (see there). */
const LB_CONTEXT: LbContext = { hash: undefined, previousHosts: undefined, attempt: 1, hostSelectionRetries: undefined, originalDst: undefined };

export class RouterRequest implements RequestBodySink, PoolRequest, ResponseSink {
  private readonly cluster: ClusterRuntime;
  private readonly policy: RetryPolicy | undefined;
  private retriable: boolean;
  private body: Buffer[] | null = [];
  private bodyBytes = 0;
  private trailers: HeaderList | null = null;
  private headOnly: boolean;
  private held: HeldBody | null = null;
  private mirrors: RequestMirrors | null = null;
  /** The request hash for RING_HASH / MAGLEV (route hash policies); undefined: random. */
  private hash: bigint | undefined;
  /** Set-Cookie values of generated hash cookies, for the response. */
  private setCookies: string[] | null = null;
  /** Header formatting variables (only for routes with header mutations). */
  private vars: StreamVars | undefined;
  // Attempt state.
  private attempt = 0;
  private retriesLeft: number;
  private backoffMs: number;
  private readonly backoffMaxMs: number;
  private host: Host | null = null;
  private triedHosts: Host[] | undefined;
  private pool: UpstreamPool | null = null;
  private waitingPool = false;
  private conn: UpstreamStream | null = null;
  /** 1 or 2: the upstream protocol of this request (cluster protocol, or the downstream's). */
  private readonly upstreamProtocol: 1 | 2;
  /** The router's global timeout for this request (route timeout, or from grpc-timeout); 0 = none. */
  private globalTimeoutMs: number;
  private durationTimer: NodeJS.Timeout | undefined;
  private requestSent = false;
  private attemptStartMs = 0;
  private forwarding = false;
  private holdsRequest = false;
  private perTryTimer: NodeJS.Timeout | undefined;
  private globalTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private done = false;
  /** An Upgrade request (stream.upgrade), and whether the upstream accepted it (101: a tunnel). */
  private readonly upgrade: boolean;
  private tunnel = false;
  private tunnelResponseDone = false;
  private retried = false;
  private retryStatusCodes: readonly number[];
  private readonly bufferLimit: number;

  constructor(
    private readonly stream: DownstreamStream,
    private readonly decision: RouteDecision,
    private readonly upstream: UpstreamCluster,
    private readonly random: () => number = Math.random,
    bufferLimitBytes = DEFAULT_BUFFER_LIMIT_BYTES,
  ) {
    this.cluster = upstream.runtime;
    this.policy = decision.retryPolicy;
    this.retriesLeft = this.policy?.numRetries ?? 0;
    this.retriable = this.policy !== undefined && this.retriesLeft > 0 && this.policy.requestRetriable(stream.head);
    this.backoffMs = this.policy?.baseIntervalMs ?? DEFAULT_BACKOFF_BASE_MS;
    this.backoffMaxMs = this.policy?.maxIntervalMs ?? this.backoffMs * 10;
    this.retryStatusCodes = this.policy?.retriableStatusCodes ?? [];
    this.headOnly = stream.requestComplete;
    this.upgrade = stream.upgrade !== '';
    if (this.upgrade) this.retriable = false;
    this.bufferLimit = decision.perRequestBufferLimitBytes ?? bufferLimitBytes;
    this.upstreamProtocol = upstreamProtocolOf(upstream.runtime, stream.head.httpVersion);
    this.globalTimeoutMs = decision.timeoutMs;
  }

  /** The request body a filter kept while it held the request (sent before what arrives next). */
  holdBody(held: HeldBody): void {
    this.held = held;
    this.headOnly = held.headOnly;
  }

  /** The variables the route's response header mutations format with (the upstream is filled in here). */
  formatVars(vars: StreamVars): void {
    this.vars = vars;
  }

  /** Tee the request body to these mirrors (sent when the request is complete). */
  mirrorTo(mirrors: RequestMirrors | null): void {
    this.mirrors = mirrors;
  }

  start(): void {
    const s = this.stream;
    const head = s.head;
    const lbPolicy = this.cluster.lbPolicy;
    if (this.decision.hashPolicies.length > 0 && (lbPolicy === 'RING_HASH' || lbPolicy === 'MAGLEV')) {
      // Envoy computes the hash only for load balancers that use one (so only they generate cookies).
      const sock = s.socket;
      const cookies: string[] = [];
      this.hash = requestHash(this.decision.hashPolicies, head, { remoteAddress: sock.remoteAddress ?? '', remotePort: sock.remotePort ?? 0, localAddress: sock.localAddress ?? '', localPort: sock.localPort ?? 0 }, cookies);
      if (cookies.length > 0) this.setCookies = cookies;
    }
    removeHopByHopHeaders(head.headers, this.upgrade);
    if (this.retriable && (this.policy!.retryOnMask & RetryOn['retriable-status-codes']) !== 0) {
      const extra = getHeader(head.headers, 'x-envoy-retriable-status-codes');
      if (extra !== undefined) {
        const codes = extra.split(',').map((c) => Number(c.trim())).filter((n) => Number.isInteger(n) && n >= 100 && n < 600);
        this.retryStatusCodes = [...this.retryStatusCodes, ...codes];
      }
    }
    const d = this.decision;
    // Envoy's FilterUtility::finalTimeout: a route with max_stream_duration ("new timeouts") has no router
    // timeout (the stream duration below applies); a gRPC request on a route with max_grpc_timeout takes its
    // grpc-timeout (minus grpc_timeout_offset, capped at max_grpc_timeout, 0 = infinite) as the route timeout.
    const newTimeouts = d.maxStreamDurationMs !== undefined || d.grpcTimeoutHeaderMaxMs !== undefined || d.grpcTimeoutHeaderOffsetMs !== undefined;
    let grpcTimeoutHeader = false;
    if (newTimeouts) this.globalTimeoutMs = 0;
    else if (d.maxGrpcTimeoutMs !== undefined && isGrpcRequest(head)) {
      let t = parseGrpcTimeout(getHeader(head.headers, 'grpc-timeout')) ?? 0;
      const off = d.grpcTimeoutOffsetMs;
      if (off !== undefined && off < t) t -= off;
      const max = d.maxGrpcTimeoutMs;
      if (max !== 0 && (t === 0 || t > max)) t = max;
      this.globalTimeoutMs = t;
      grpcTimeoutHeader = true;
    }
    const timeout = this.globalTimeoutMs;
    const perTry = this.policy?.perTryTimeoutMs ?? 0;
    const expected = perTry > 0 && (timeout === 0 || perTry < timeout) ? perTry : timeout;
    if (expected > 0) {
      setHeader(head.headers, 'x-envoy-expected-rq-timeout-ms', String(expected));
      // setTimeoutHeaders: with max_grpc_timeout the upstream's grpc-timeout says the time it really has.
      if (grpcTimeoutHeader) setHeader(head.headers, 'grpc-timeout', `${expected}m`);
    } else removeHeader(head.headers, 'x-envoy-expected-rq-timeout-ms');
    if (newTimeouts && !this.armStreamDuration()) return;
    s.setBodySink(this);
    s.onReset = (byTimeout) => this.onDownstreamReset(byTimeout);
    const held = this.held;
    if (held !== null) {
      this.held = null;
      for (const c of held.chunks) this.onRequestBody(c);
      if (s.requestComplete && !held.headOnly) this.onRequestEnd(held.trailers);
    }
    if (s.requestComplete) {
      if (this.headOnly) this.mirrors?.onEnd();
      this.startGlobalTimer();
    }
    this.cluster.stats.upstream_rq_total++;
    this.startAttempt();
  }

  /**
   * The HCM's stream duration (ConnectionManagerImpl::ActiveStream::refreshDurationTimeout) for a route with
   * max_stream_duration: a grpc-timeout header, when grpc_timeout_header_max is set, gives the duration (capped
   * at grpc_timeout_header_max unless 0, minus grpc_timeout_header_offset); otherwise max_stream_duration (0 =
   * none). Measured from the stream's start. False when the time is already up (the reply has been sent).
   */
  private armStreamDuration(): boolean {
    const d = this.decision;
    const ht = parseGrpcTimeout(getHeader(this.stream.head.headers, 'grpc-timeout'));
    let t: number;
    if (ht === undefined || d.grpcTimeoutHeaderMaxMs === undefined) {
      if (d.maxStreamDurationMs === undefined || d.maxStreamDurationMs === 0) return true;
      t = d.maxStreamDurationMs;
    } else {
      t = ht;
      const max = d.grpcTimeoutHeaderMaxMs;
      if (max !== 0 && t > max) t = max;
      const off = d.grpcTimeoutHeaderOffsetMs;
      if (t !== 0 && off !== undefined) t = t > off ? t - off : 0;
    }
    const left = t - (Date.now() - this.stream.startMs);
    if (left <= 0) {
      this.onStreamDuration();
      return false;
    }
    this.durationTimer = setTimeout(() => this.onStreamDuration(), left);
    return true;
  }

  /** onStreamMaxDurationReached: 408 `downstream duration timeout` (gRPC: DEADLINE_EXCEEDED); a reset if the response began. */
  private onStreamDuration(): void {
    this.durationTimer = undefined;
    if (this.done) return;
    this.dropAttempt();
    this.stream.localReply(408, 'downstream duration timeout', '', 'max_duration_timeout', undefined, GrpcStatus.DEADLINE_EXCEEDED);
    this.cleanup();
  }

  // ------------------------------------------------------------------------------------------------ attempts

  private startAttempt(): void {
    if (this.done) return;
    this.attempt++;
    const rt = this.cluster;
    const od = rt.originalDst;
    // One context object for every choice (the load balancers read it during choose() and keep nothing of it).
    const ctx = LB_CONTEXT;
    ctx.hash = this.hash;
    ctx.previousHosts = this.triedHosts;
    ctx.attempt = this.attempt;
    ctx.hostSelectionRetries = this.policy?.hostSelectionMaxAttempts;
    ctx.originalDst = od !== undefined ? this.originalDestination(od.useHttpHeader ? od.httpHeaderName : undefined) : undefined;
    const host = rt.lb.choose(ctx);
    ctx.previousHosts = undefined;
    if (host === undefined) {
      rt.stats.upstream_cx_none_healthy++;
      this.finishLocal(503, NO_HEALTHY_UPSTREAM, 'UH', 'no_healthy_upstream');
      return;
    }
    this.host = host;
    this.stream.upstreamHost = host;
    if (this.stream.record !== null) this.stream.record.attempt(host, this.attempt);
    if (this.policy?.previousHosts) (this.triedHosts ??= []).push(host);
    if (!rt.circuitBreaker().tryAcquire('requests')) {
      this.finishLocal(503, resetBody('overflow', this.retried), 'UO', 'upstream_reset_before_response_started{overflow}');
      return;
    }
    this.holdsRequest = true;
    rt.stats.upstream_rq_active++;
    host.stats.rq_total++;
    host.stats.rq_active++;
    this.requestSent = false;
    this.forwarding = false;
    this.pool = this.upstream.pool(host, this.upstreamProtocol);
    this.waitingPool = true;
    this.pool.newStream(this);
  }

  /**
   * The destination of an ORIGINAL_DST cluster's host (Envoy's OriginalDstCluster::LoadBalancer::chooseHost). With
   * use_http_header (`header` set) the request header names it, an IP:port (`:authority` / `host` name the
   * request's authority; requestOverrideHost); a value that is anything else is counted in
   * original_dst_host_invalid, and so is one of the proxy's own listeners, which would make the request loop
   * through the proxy forever. Without a usable header: the downstream connection's original destination, when
   * its listener restored one (transparent capture: listener/original-dst.ts); else no host. An explicit-mode
   * listener restores none, so there only the header can name the destination.
   */
  private originalDestination(header: string | undefined): string | undefined {
    if (header !== undefined) {
      const head = this.stream.head;
      const v = header === ':authority' || header === 'host' ? head.authority : getHeader(head.headers, header);
      if (v !== undefined) {
        if (isIpAndPort(v) && !isOwnDestination(v)) return v;
        this.cluster.stats.inc('original_dst_host_invalid');
      }
    }
    return originalDstOf(this.stream.socket);
  }

  onPoolReady(conn: UpstreamStream): void {
    this.waitingPool = false;
    if (this.done) {
      // Cannot happen (cancel removes the request), but never leak a connection.
      conn.abort();
      return;
    }
    this.conn = conn;
    this.stream.upstreamPeer = peerOf(conn.socket);
    const head = this.stream.head;
    if (this.decision.virtualHost.includeRequestAttemptCount) setHeader(head.headers, 'x-envoy-attempt-count', String(this.attempt));
    if (this.host !== null) autoRewriteHost(this.decision, head, this.host.hostname);
    this.attemptStartMs = Date.now();
    if (this.stream.record !== null) this.stream.record.upstreamRequest(head.headers, this.cluster.name);
    conn.sendHead(this, head, this.headOnly, this.upgrade);
    if (this.conn !== conn) return; // reset at once (the HTTP/2 session went away)
    if (this.body !== null) for (const b of this.body) conn.sendBody(b);
    if (this.stream.requestComplete) this.endUpstreamRequest();
    if (this.upgrade) {
      // Tunnel bytes are never resent: nothing more is kept.
      if (this.body !== null && this.bodyBytes > this.bufferLimit) this.stream.resumeRequestBody();
      this.body = null;
    } else if (!this.retriable && this.body !== null && this.bodyBytes > this.bufferLimit) {
      this.body = null;
      this.stream.resumeRequestBody();
    }
  }

  onPoolFailure(reason: PoolFailure): void {
    this.waitingPool = false;
    this.releaseAttempt();
    if (this.done) return;
    if (reason === 'overflow') {
      this.finishLocal(503, resetBody('overflow', this.retried), 'UO', 'upstream_reset_before_response_started{overflow}');
      return;
    }
    if (this.host !== null) this.host.stats.rq_error++;
    this.onAttemptReset('connection failure', CONNECT_FAILURE_RETRY);
  }

  private endUpstreamRequest(): void {
    const c = this.conn!;
    this.requestSent = true;
    if (this.upgrade) {
      // The client ended its side of the (requested or accepted) tunnel: half-close the upstream.
      (c as TunnelStream).endTunnel();
      if (this.tunnelResponseDone) this.finishTunnel();
      return;
    }
    c.sendEnd(this.trailers);
    const perTry = this.policy?.perTryTimeoutMs ?? 0;
    if (perTry > 0 && !this.forwarding) this.perTryTimer = setTimeout(() => this.onPerTryTimeout(), perTry);
  }

  // ------------------------------------------------------------------------------------------------ request body

  onRequestBody(chunk: Buffer): void {
    if (this.mirrors !== null) this.mirrors.onBody(chunk);
    if (this.done) return;
    const sending = this.conn !== null && !this.requestSent;
    if (this.body !== null) {
      this.bodyBytes += chunk.length;
      if (this.bodyBytes > this.bufferLimit) {
        // Too big to keep for a retry: retries are off for this request, the body is only streamed.
        this.retriable = false;
        if (sending) this.body = null;
        else {
          // Not connected yet: keep what arrived for the connection, and hold the client until then.
          this.body.push(chunk);
          this.stream.pauseRequestBody();
        }
      } else this.body.push(chunk);
    }
    if (sending && !this.conn!.sendBody(chunk)) {
      this.stream.pauseRequestBody();
      this.conn!.onWritable(() => this.stream.resumeRequestBody());
    }
  }

  onRequestEnd(trailers: HeaderList | null): void {
    if (this.mirrors !== null) this.mirrors.onEnd();
    if (this.done) return;
    this.trailers = trailers;
    this.startGlobalTimer();
    if (this.conn !== null && !this.requestSent) this.endUpstreamRequest();
  }

  private startGlobalTimer(): void {
    if (this.tunnel) return;
    const t = this.globalTimeoutMs;
    if (t > 0 && this.globalTimer === undefined) this.globalTimer = setTimeout(() => this.onGlobalTimeout(), t);
  }

  // ------------------------------------------------------------------------------------------------ response

  onResponseHead(head: ResponseHead, endStream: boolean): void {
    clearTimeout(this.perTryTimer);
    const conn = this.conn!;
    const status = head.status;
    const host = this.host!;
    if (this.stream.record !== null) this.stream.record.attemptStatus = status;
    host.outlier.putResult(status >= 500 ? '5xx' : 'success', status);
    if (this.shouldRetryStatus(status) || this.shouldRetryGrpc(head.headers)) {
      if (this.retriesLeft > 0 && this.tryScheduleRetry()) {
        host.stats.rq_error++;
        this.conn = null;
        conn.abort();
        this.releaseAttempt();
        return;
      }
      if (this.retriesLeft === 0) this.stream.flags = addFlagTo(this.stream.flags, 'URX');
    }
    if (status >= 500) host.stats.rq_error++;
    else host.stats.rq_success++;
    if (this.retried) this.cluster.stats.upstream_rq_retry_success++;
    this.countStatus(status);
    this.forwarding = true;
    const h = head.headers;
    if (this.upgrade && status === 101) {
      // The upstream switched protocols: a raw tunnel from now on, kept open as long as both sides want.
      this.tunnel = true;
      clearTimeout(this.globalTimer);
      this.globalTimer = undefined;
      (conn as TunnelStream).startTunnel();
    }
    removeHopByHopHeaders(h, this.tunnel);
    setHeader(h, 'x-envoy-upstream-service-time', String(Date.now() - this.attemptStartMs)); // set, not appended (Envoy setEnvoyUpstreamServiceTime)
    if (this.decision.virtualHost.includeAttemptCountInResponse) h.push('x-envoy-attempt-count', String(this.attempt));
    if (this.setCookies !== null) for (const c of this.setCookies) h.push('set-cookie', c);
    const vars = this.vars;
    if (vars !== undefined) {
      vars.host = host;
      vars.upstreamSocket = conn.socket;
    }
    applyResponseHeaders(this.decision, head, this.stream.head, vars);
    const end = endStream;
    this.stream.onResponseDrain = end ? null : () => conn.resumeResponse();
    this.stream.sendHead(head, end);
  }

  onResponseBody(chunk: Buffer): void {
    if (!this.forwarding || this.done) return;
    if (!this.stream.sendBody(chunk)) this.conn?.pauseResponse();
  }

  onResponseComplete(trailers: HeaderList | null): void {
    if (!this.forwarding || this.done) return;
    if (this.tunnel) {
      // The upstream ended its side: half-close the client's; the request is over once the client ends too.
      this.tunnelResponseDone = true;
      this.stream.sendEnd(null);
      if (this.requestSent) this.finishTunnel();
      return;
    }
    const conn = this.conn;
    this.conn = null;
    if (conn !== null && !this.requestSent) {
      // The upstream answered before the whole request was sent: that connection cannot be reused.
      conn.abort();
    }
    const st = this.upstream.stats;
    if (st !== undefined) st.upstream_rq_time.record(Date.now() - this.attemptStartMs);
    this.stream.sendEnd(trailers);
    this.cleanup();
  }

  onUpstreamReset(reason: UpstreamResetReason): void {
    this.conn = null;
    if (this.done) return;
    clearTimeout(this.perTryTimer);
    this.host?.outlier.putResult('local-origin-failure', 503);
    if (this.host) this.host.stats.rq_error++;
    if (this.forwarding) {
      // The response had begun: nothing to retry, the client sees the reset.
      this.cluster.stats.upstream_rq_rx_reset++;
      this.stream.flags = addFlagTo(this.stream.flags, 'UC');
      this.stream.abortResponse();
      this.cleanup();
      return;
    }
    this.cluster.stats.upstream_rq_rx_reset++;
    this.releaseAttempt();
    this.onAttemptReset(reason, reason === 'remote refused stream reset' ? RESET_RETRY | RetryOn['refused-stream'] : RESET_RETRY);
  }

  /** Both directions of a tunnel have ended. */
  private finishTunnel(): void {
    this.conn = null;
    const st = this.upstream.stats;
    if (st !== undefined) st.upstream_rq_time.record(Date.now() - this.attemptStartMs);
    this.cleanup();
  }

  // ------------------------------------------------------------------------------------------------ retries

  private shouldRetryStatus(status: number): boolean {
    if (!this.retriable) return false;
    const m = this.policy!.retryOnMask;
    if ((m & RetryOn['5xx']) !== 0 && status >= 500) return true;
    if ((m & RetryOn['gateway-error']) !== 0 && (status === 502 || status === 503 || status === 504)) return true;
    if ((m & RetryOn['retriable-4xx']) !== 0 && status === 409) return true;
    if ((m & RetryOn['retriable-status-codes']) !== 0 && this.retryStatusCodes.includes(status)) return true;
    return false;
  }

  /**
   * gRPC retry_on conditions (RetryStateImpl::wouldRetryFromHeaders): the grpc-status of a trailers-only
   * response (grpc-status in the response head) is cancelled (1), deadline-exceeded (4), resource-exhausted (8),
   * internal (13) or unavailable (14), and the policy names that condition.
   */
  private shouldRetryGrpc(h: HeaderList): boolean {
    if (!this.retriable) return false;
    const m = this.policy!.retryOnMask;
    if ((m & GRPC_RETRY) === 0) return false;
    switch (grpcStatusOf(h)) {
      case GrpcStatus.CANCELLED:
        return (m & RetryOn.cancelled) !== 0;
      case GrpcStatus.DEADLINE_EXCEEDED:
        return (m & RetryOn['deadline-exceeded']) !== 0;
      case GrpcStatus.RESOURCE_EXHAUSTED:
        return (m & RetryOn['resource-exhausted']) !== 0;
      case GrpcStatus.INTERNAL:
        return (m & RetryOn.internal) !== 0;
      case GrpcStatus.UNAVAILABLE:
        return (m & RetryOn.unavailable) !== 0;
      default:
        return false;
    }
  }

  /** Takes the retries circuit breaker and arms the back-off timer; false on overflow (flag UO). */
  private tryScheduleRetry(): boolean {
    const cb = this.cluster.circuitBreaker();
    if (!cb.tryAcquire('retries')) {
      this.stream.flags = addFlagTo(this.stream.flags, 'UO');
      return false;
    }
    this.retriesLeft--;
    this.retried = true;
    this.cluster.stats.upstream_rq_retry++;
    const interval = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.backoffMaxMs);
    const delay = Math.floor(this.random() * interval);
    this.backoffTimer = setTimeout(() => {
      this.backoffTimer = undefined;
      cb.release('retries');
      this.startAttempt();
    }, delay);
    return true;
  }

  /** An attempt failed without a response: retry when the policy says, else answer locally. */
  private onAttemptReset(reason: ResetReason, retryMask: number): void {
    if (this.retriable && (this.policy!.retryOnMask & retryMask) !== 0) {
      if (this.retriesLeft > 0 && this.tryScheduleRetry()) return;
      if (this.retriesLeft === 0) this.stream.flags = addFlagTo(this.stream.flags, 'URX');
    }
    const flag = resetFlag(reason);
    this.finishLocal(503, resetBody(reason, this.retried), flag, `upstream_reset_before_response_started{${reason.replace(/ /g, '_')}}`);
  }

  private onPerTryTimeout(): void {
    this.perTryTimer = undefined;
    if (this.done || this.forwarding) return;
    this.cluster.stats.upstream_rq_per_try_timeout++;
    this.host?.outlier.putResult('local-origin-failure', 504);
    if (this.host) this.host.stats.rq_timeout++;
    this.dropAttempt();
    if (this.retriable && (this.policy!.retryOnMask & RESET_RETRY) !== 0) {
      if (this.retriesLeft > 0 && this.tryScheduleRetry()) return;
      if (this.retriesLeft === 0) this.stream.flags = addFlagTo(this.stream.flags, 'URX');
    }
    this.finishLocal(504, UPSTREAM_TIMEOUT, 'UT', 'upstream_per_try_timeout');
  }

  private onGlobalTimeout(): void {
    this.globalTimer = undefined;
    if (this.done) return;
    this.cluster.stats.upstream_rq_timeout++;
    if (this.host) {
      this.host.stats.rq_timeout++;
      if (!this.forwarding) this.host.outlier.putResult('local-origin-failure', 504);
    }
    if (this.forwarding) {
      this.stream.flags = addFlagTo(this.stream.flags, 'UT');
      this.dropAttempt();
      this.stream.abortResponse();
      this.cleanup();
      return;
    }
    this.dropAttempt();
    this.finishLocal(504, UPSTREAM_TIMEOUT, 'UT', 'upstream_response_timeout');
  }

  private onDownstreamReset(byTimeout?: boolean): void {
    if (this.done) return;
    // A timeout of the connection manager earns its own flag there; only a client that went away is DC.
    if (byTimeout !== true) this.stream.flags = addFlagTo(this.stream.flags, 'DC');
    this.cluster.stats.upstream_rq_cancelled++;
    this.dropAttempt();
    this.cleanup();
  }

  // ------------------------------------------------------------------------------------------------ endings

  /** Abandons the current attempt (connection or pool wait). */
  private dropAttempt(): void {
    if (this.waitingPool) {
      this.waitingPool = false;
      this.pool?.cancel(this);
    }
    const c = this.conn;
    this.conn = null;
    c?.abort();
    this.releaseAttempt();
  }

  private releaseAttempt(): void {
    if (!this.holdsRequest) return;
    this.holdsRequest = false;
    this.cluster.circuitBreaker().release('requests');
    this.cluster.stats.upstream_rq_active--;
    if (this.host) this.host.stats.rq_active--;
  }

  private finishLocal(status: number, body: string, flag: string, details: string): void {
    this.countStatus(status);
    this.stream.localReply(status, body, flag, details);
    this.cleanup();
  }

  private countStatus(status: number): void {
    const st = this.upstream.stats;
    if (st !== undefined) st.chargeCode(status);
  }

  private cleanup(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.perTryTimer);
    clearTimeout(this.globalTimer);
    clearTimeout(this.backoffTimer);
    clearTimeout(this.durationTimer);
    this.releaseAttempt();
    this.stream.setBodySink(null);
    this.stream.onReset = null;
    this.stream.onResponseDrain = null;
    this.body = null;
  }
}

/** One of this proxy's own listeners (see listener/own-ports.ts): forwarding there would loop. */
function isOwnDestination(v: string): boolean {
  const i = v.lastIndexOf(':');
  const host = v.startsWith('[') ? v.slice(1, i - 1) : v.slice(0, i);
  return isOwnAddress(host, Number(v.slice(i + 1)));
}

/** `a.b.c.d:port` or `[v6]:port` with a port in 1..65535. */
function isIpAndPort(v: string): boolean {
  let host: string;
  let port: string;
  if (v.startsWith('[')) {
    const end = v.indexOf(']');
    if (end < 0 || v[end + 1] !== ':') return false;
    host = v.slice(1, end);
    port = v.slice(end + 2);
    if (isIP(host) !== 6) return false;
  } else {
    const i = v.lastIndexOf(':');
    if (i < 0) return false;
    host = v.slice(0, i);
    port = v.slice(i + 1);
    if (isIP(host) !== 4) return false;
  }
  const n = Number(port);
  return port !== '' && Number.isInteger(n) && n >= 1 && n <= 65535;
}

function addFlagTo(flags: string, flag: string): string {
  if (flags === '') return flag;
  return (',' + flags + ',').includes(',' + flag + ',') ? flags : flags + ',' + flag;
}
