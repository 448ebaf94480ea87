/**
 * The request path from a route decision to the upstream and back: Envoy's router filter
 * (source/common/router/router.cc, retry_state_impl.cc) for HTTP/1.1 upstreams.
 *
 *   new RouterRequest(stream, decision, cluster, random).start();
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
 *
 * Headers: the upstream request gets x-envoy-expected-rq-timeout-ms (when a timeout applies) and
 * x-envoy-attempt-count (virtual host include_request_attempt_count); hop-by-hop fields are removed both ways.
 * The response gets x-envoy-upstream-service-time (ms from the upstream request's start to its response head)
 * and x-envoy-attempt-count when include_attempt_count_in_response, then the route's response header mutations.
 * Stats: cluster upstream_rq_total/_active/_retry/_retry_success/_timeout/_per_try_timeout/_cancelled (runtime
 * ClusterStats), upstream_rq_completed/_<code>/_<n>xx and upstream_rq_time (UpstreamCluster.stats, preallocated),
 * host rq_*; outlier results are reported for every attempt.
 */
import {
  CHUNK_END,
  chunkHeader,
  FRAME_END_STREAM,
  FRAME_HAS_CONTENT_LENGTH,
  FRAMING_CHUNK_BODY,
  LAST_CHUNK,
  removeHopByHopHeaders,
  requestFraming,
  serializeRequestHead,
  serializeTrailers,
} from '../codec/h1/index.js';
import { getHeader, hasHeader, removeHeader, setHeader, type HeaderList, type ResponseHead } from '../headers.js';
import { applyResponseHeaders, autoRewriteHost, RetryOn, type RetryPolicy, type RouteDecision } from '../router/index.js';
import type { ClusterRuntime } from '../../upstream/cluster/cluster.js';
import type { Host } from '../../upstream/cluster/host.js';
import { originalDstOf } from '../../listener/original-dst.js';
import type { H1Connection, H1Pool, PoolFailure, PoolRequest, ResponseSink } from '../../upstream/pool/h1-pool.js';
import type { DownstreamStream, RequestBodySink } from '../server/connection.js';
import type { ClusterRequestStats } from '../../stats/request-stats.js';
import { NO_HEALTHY_UPSTREAM, resetBody, resetFlag, UPSTREAM_TIMEOUT, type ResetReason } from '../server/local-reply.js';

/** A cluster as the request path uses it: the runtime, a pool per host, and its response-code and timing stats. */
export interface UpstreamCluster {
  readonly runtime: ClusterRuntime;
  /** Response-code counters and upstream_rq_time (absent: not kept, e.g. in unit tests). */
  readonly stats?: ClusterRequestStats;
  pool(host: Host): H1Pool;
}

/** Envoy's default per-connection buffer limit, used as the retry buffer limit. */
export const DEFAULT_BUFFER_LIMIT_BYTES = 1024 * 1024;
const DEFAULT_BACKOFF_BASE_MS = 25;

const RESET_RETRY = RetryOn['5xx'] | RetryOn['gateway-error'] | RetryOn.reset;
const CONNECT_FAILURE_RETRY = RESET_RETRY | RetryOn['connect-failure'] | RetryOn['reset-before-request'];

export class RouterRequest implements RequestBodySink, PoolRequest, ResponseSink {
  private readonly cluster: ClusterRuntime;
  private readonly policy: RetryPolicy | undefined;
  private retriable: boolean;
  private body: Buffer[] | null = [];
  private bodyBytes = 0;
  private trailers: HeaderList | null = null;
  private readonly headOnly: boolean;
  // Attempt state.
  private attempt = 0;
  private retriesLeft: number;
  private backoffMs: number;
  private readonly backoffMaxMs: number;
  private host: Host | null = null;
  private triedHosts: Host[] | undefined;
  private pool: H1Pool | null = null;
  private waitingPool = false;
  private conn: H1Connection | null = null;
  private framing = 0;
  private requestSent = false;
  private attemptStartMs = 0;
  private forwarding = false;
  private holdsRequest = false;
  private perTryTimer: NodeJS.Timeout | undefined;
  private globalTimer: NodeJS.Timeout | undefined;
  private backoffTimer: NodeJS.Timeout | undefined;
  private done = false;
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
    this.bufferLimit = decision.perRequestBufferLimitBytes ?? bufferLimitBytes;
  }

  start(): void {
    const s = this.stream;
    const head = s.head;
    removeHopByHopHeaders(head.headers, false);
    if (this.retriable && (this.policy!.retryOnMask & RetryOn['retriable-status-codes']) !== 0) {
      const extra = getHeader(head.headers, 'x-envoy-retriable-status-codes');
      if (extra !== undefined) {
        const codes = extra.split(',').map((c) => Number(c.trim())).filter((n) => Number.isInteger(n) && n >= 100 && n < 600);
        this.retryStatusCodes = [...this.retryStatusCodes, ...codes];
      }
    }
    const timeout = this.decision.timeoutMs;
    const perTry = this.policy?.perTryTimeoutMs ?? 0;
    const expected = perTry > 0 && (timeout === 0 || perTry < timeout) ? perTry : timeout;
    if (expected > 0) setHeader(head.headers, 'x-envoy-expected-rq-timeout-ms', String(expected));
    else removeHeader(head.headers, 'x-envoy-expected-rq-timeout-ms');
    s.setBodySink(this);
    s.onReset = () => this.onDownstreamReset();
    if (s.requestComplete) this.startGlobalTimer();
    this.cluster.stats.upstream_rq_total++;
    this.startAttempt();
  }

  // ------------------------------------------------------------------------------------------------ attempts

  private startAttempt(): void {
    if (this.done) return;
    this.attempt++;
    const rt = this.cluster;
    const host = rt.lb.choose({
      previousHosts: this.triedHosts,
      attempt: this.attempt,
      hostSelectionRetries: this.policy?.hostSelectionMaxAttempts,
      // ORIGINAL_DST clusters: the downstream connection's restored original destination (transparent capture).
      originalDst: rt.originalDst !== undefined ? originalDstOf(this.stream.conn.socket) : undefined,
    });
    if (host === undefined) {
      rt.stats.upstream_cx_none_healthy++;
      this.finishLocal(503, NO_HEALTHY_UPSTREAM, 'UH', 'no_healthy_upstream');
      return;
    }
    this.host = host;
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
    this.pool = this.upstream.pool(host);
    this.waitingPool = true;
    this.pool.newStream(this);
  }

  onPoolReady(conn: H1Connection): void {
    this.waitingPool = false;
    if (this.done) {
      // Cannot happen (cancel removes the request), but never leak a connection.
      conn.requestComplete();
      return;
    }
    this.conn = conn;
    conn.attach(this, this.stream.head.method);
    const head = this.stream.head;
    if (this.decision.virtualHost.includeRequestAttemptCount) setHeader(head.headers, 'x-envoy-attempt-count', String(this.attempt));
    if (this.host !== null) autoRewriteHost(this.decision, head, this.host.hostname);
    let flags = 0;
    if (hasHeader(head.headers, 'content-length')) flags |= FRAME_HAS_CONTENT_LENGTH;
    if (this.headOnly) flags |= FRAME_END_STREAM;
    this.framing = requestFraming(head.method, flags);
    this.attemptStartMs = Date.now();
    const sock = conn.socket;
    sock.cork();
    conn.write(serializeRequestHead(head, this.framing));
    if (this.body !== null) for (const b of this.body) this.writeBody(b);
    if (this.stream.requestComplete) this.endUpstreamRequest();
    sock.uncork();
    if (!this.retriable && this.body !== null && this.bodyBytes > this.bufferLimit) {
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

  private writeBody(b: Buffer): boolean {
    const c = this.conn!;
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0) {
      c.write(chunkHeader(b.length));
      c.write(b);
      return c.write(CHUNK_END);
    }
    return c.write(b);
  }

  private endUpstreamRequest(): void {
    const c = this.conn!;
    if ((this.framing & FRAMING_CHUNK_BODY) !== 0) {
      const t = this.trailers;
      c.write(t !== null && t.length > 0 ? serializeTrailers(t) : LAST_CHUNK);
    }
    this.requestSent = true;
    c.requestComplete();
    const perTry = this.policy?.perTryTimeoutMs ?? 0;
    if (perTry > 0 && !this.forwarding) this.perTryTimer = setTimeout(() => this.onPerTryTimeout(), perTry);
  }

  // ------------------------------------------------------------------------------------------------ request body

  onRequestBody(chunk: Buffer): void {
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
    if (sending && !this.writeBody(chunk)) {
      this.stream.pauseRequestBody();
      this.conn!.socket.once('drain', () => this.stream.resumeRequestBody());
    }
  }

  onRequestEnd(trailers: HeaderList | null): void {
    if (this.done) return;
    this.trailers = trailers;
    this.startGlobalTimer();
    if (this.conn !== null && !this.requestSent) this.endUpstreamRequest();
  }

  private startGlobalTimer(): void {
    const t = this.decision.timeoutMs;
    if (t > 0 && this.globalTimer === undefined) this.globalTimer = setTimeout(() => this.onGlobalTimeout(), t);
  }

  // ------------------------------------------------------------------------------------------------ response

  onResponseHead(head: ResponseHead, conn: H1Connection): void {
    clearTimeout(this.perTryTimer);
    const status = head.status;
    const host = this.host!;
    host.outlier.putResult(status >= 500 ? '5xx' : 'success', status);
    if (this.shouldRetryStatus(status)) {
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
    removeHopByHopHeaders(h, false);
    h.push('x-envoy-upstream-service-time', String(Date.now() - this.attemptStartMs));
    if (this.decision.virtualHost.includeAttemptCountInResponse) h.push('x-envoy-attempt-count', String(this.attempt));
    applyResponseHeaders(this.decision, head, this.stream.head);
    const end = !conn.responseHasBody;
    this.stream.onResponseDrain = end ? null : () => conn.resumeResponse();
    this.stream.sendHead(head, end);
  }

  onResponseBody(chunk: Buffer): void {
    if (!this.forwarding || this.done) return;
    if (!this.stream.sendBody(chunk)) this.conn?.pauseResponse();
  }

  onResponseComplete(trailers: HeaderList | null): void {
    if (!this.forwarding || this.done) return;
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

  onUpstreamReset(reason: 'connection termination' | 'remote reset'): void {
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
    this.onAttemptReset(reason, RESET_RETRY);
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
    this.finishLocal(503, resetBody(reason, this.retried), flag, `upstream_reset_before_response_started{${reason.replace(' ', '_')}}`);
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

  private onDownstreamReset(): void {
    if (this.done) return;
    this.stream.flags = addFlagTo(this.stream.flags, 'DC');
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
    this.releaseAttempt();
    this.stream.setBodySink(null);
    this.stream.onReset = null;
    this.stream.onResponseDrain = null;
    this.body = null;
  }
}

function addFlagTo(flags: string, flag: string): string {
  if (flags === '') return flag;
  return (',' + flags + ',').includes(',' + flag + ',') ? flags : flags + ',' + flag;
}
