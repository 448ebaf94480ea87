/**
 * Request mirroring (route `request_mirror_policies`; Envoy's shadow policies, source/common/router/router.cc and
 * shadow_writer_impl.cc): a fire-and-forget copy of the request to another cluster whose answer is discarded.
 *
 *   const m = startMirrors(decision, stream.head, clusters, random);   // null when no policy samples this request
 *   m?.onBody(chunk); m?.onEnd();                                      // the router tees the request body
 *
 * Per policy: the request is mirrored with probability runtime_fraction (all requests without one); the cluster is
 * `cluster`, or the one named by the `cluster_header` request header (missing header or unknown cluster: not
 * mirrored, as Envoy). The copy has the request's headers after the route's mutations, and its authority gets
 * `-shadow` appended to the host (`reviews:9080` → `reviews-shadow:9080`) unless disable_shadow_host_suffix_append.
 * As Envoy's (non-streaming) shadow, the copy is sent once the whole request body has arrived, with a
 * Content-Length; a body larger than the buffer limit (1 MiB by default) is not mirrored, and trailers are not
 * copied. The mirror uses the mirror cluster's load balancer, `requests` circuit breaker (overflow: dropped) and
 * host pools of the mirror cluster's protocol (HTTP/1.1 or HTTP/2, through the common pool interface,
 * upstream/pool/types.ts); the route timeout bounds it. Nothing the mirror does (no host, overflow, connection failure, a slow
 * or hung answer) reaches the main request: its response is read and dropped. trace_sampled has no effect (no
 * tracing here). Stats: the mirror cluster's upstream_rq_total / _active / response codes.
 */
import { removeHopByHopHeaders } from '../codec/h1/index.js';
import { removeHeader, type HeaderList, type RequestHead, type ResponseHead } from '../headers.js';
import type { MirrorPolicy } from '../router/policies.js';
import type { RouteDecision } from '../router/decision.js';
import { listHeaderFirst } from '../router/match.js';
import type { Host } from '../../upstream/cluster/host.js';
import type { PoolFailure, PoolRequest, ResponseSink, UpstreamStream } from '../../upstream/pool/types.js';
import { upstreamProtocolOf, type UpstreamCluster } from './upstream-request.js';

/** `host` → `host-shadow`, `host:port` → `host-shadow:port` (Envoy's ShadowWriterImpl). */
export function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':');
  // An IPv6 literal's colons are inside brackets: only a colon after the closing bracket starts a port.
  if (colon < 0 || (authority.charCodeAt(0) === 91 && colon < authority.indexOf(']'))) return authority + '-shadow';
  return authority.slice(0, colon) + '-shadow' + authority.slice(colon);
}

/** The mirrored copies of one request. */
export class RequestMirrors {
  private bytes = 0;
  private chunks: Buffer[] | null = [];

  constructor(
    private readonly copies: MirrorRequest[],
    private readonly limit: number,
  ) {}

  onBody(chunk: Buffer): void {
    if (this.chunks === null) return;
    this.bytes += chunk.length;
    if (this.bytes > this.limit) this.chunks = null;
    else this.chunks.push(chunk);
  }

  /** The request is complete: send the copies (unless the body was too big to keep). */
  onEnd(): void {
    const chunks = this.chunks;
    this.chunks = null;
    if (chunks === null) return;
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    for (const c of this.copies) c.send(body);
  }
}

/**
 * Starts the request's mirrors (picks them; they are sent on `onEnd`). null when none applies. `clusters` looks a
 * cluster up by name; `bufferLimit` caps the body kept for them.
 */
export function startMirrors(
  d: RouteDecision,
  head: RequestHead,
  clusters: (name: string) => UpstreamCluster | undefined,
  random: () => number,
  bufferLimit: number,
): RequestMirrors | null {
  let copies: MirrorRequest[] | null = null;
  const policies = d.mirrorPolicies;
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!;
    if (!p.sampled(random())) continue;
    const name = p.cluster !== '' ? p.cluster : (listHeaderFirst(head.headers, p.clusterHeader) ?? '');
    const cluster = name === '' ? undefined : clusters(name);
    if (cluster === undefined) continue;
    (copies ??= []).push(new MirrorRequest(cluster, copyHead(head, p), d.timeoutMs));
  }
  return copies === null ? null : new RequestMirrors(copies, bufferLimit);
}

function copyHead(head: RequestHead, p: MirrorPolicy): RequestHead {
  const headers = head.headers.slice();
  removeHopByHopHeaders(headers, false);
  return {
    method: head.method,
    path: head.path,
    authority: p.disableShadowHostSuffixAppend ? head.authority : shadowAuthority(head.authority),
    scheme: head.scheme,
    headers,
    httpVersion: head.httpVersion,
  };
}

/** One mirrored request: fire and forget, its response drained and dropped. */
class MirrorRequest implements PoolRequest, ResponseSink {
  private host: Host | undefined;
  private conn: UpstreamStream | null = null;
  /** The mirror cluster's upstream protocol (1 or 2), as for the main request. */
  private readonly protocol: 1 | 2;
  private body: Buffer | null = null;
  private holdsRequest = false;
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(
    private readonly cluster: UpstreamCluster,
    private readonly head: RequestHead,
    private readonly timeoutMs: number,
  ) {
    this.protocol = upstreamProtocolOf(cluster.runtime, head.httpVersion);
  }

  send(body: Buffer): void {
    const rt = this.cluster.runtime;
    const h = this.head.headers;
    removeHeader(h, 'content-length');
    removeHeader(h, 'transfer-encoding');
    if (body.length > 0 || !bodiless(this.head.method)) h.push('content-length', String(body.length));
    this.body = body;
    const host = rt.lb.choose({});
    if (host === undefined) {
      rt.stats.upstream_cx_none_healthy++;
      return;
    }
    if (!rt.circuitBreaker().tryAcquire('requests')) return;
    this.holdsRequest = true;
    this.host = host;
    rt.stats.upstream_rq_total++;
    rt.stats.upstream_rq_active++;
    host.stats.rq_total++;
    host.stats.rq_active++;
    if (this.timeoutMs > 0) this.timer = setTimeout(() => this.abandon(), this.timeoutMs);
    this.cluster.pool(host, this.protocol).newStream(this);
  }

  onPoolReady(conn: UpstreamStream): void {
    if (this.done) {
      // Cannot happen (abandon cancels the pool wait), but never leak a stream.
      conn.abort();
      return;
    }
    this.conn = conn;
    const body = this.body!;
    this.body = null;
    conn.sendHead(this, this.head, body.length === 0);
    if (this.conn !== conn) return; // reset at once (the HTTP/2 session went away)
    if (body.length > 0) conn.sendBody(body);
    conn.sendEnd(null);
  }

  onPoolFailure(_reason: PoolFailure): void {
    if (this.host !== undefined) this.host.stats.rq_error++;
    this.finish();
  }

  onResponseHead(head: ResponseHead): void {
    this.cluster.stats?.chargeCode(head.status);
    if (this.host !== undefined) {
      if (head.status >= 500) this.host.stats.rq_error++;
      else this.host.stats.rq_success++;
    }
  }

  onResponseBody(_chunk: Buffer): void {
    // Discarded.
  }

  onResponseComplete(_trailers: HeaderList | null): void {
    this.conn = null;
    this.finish();
  }

  onUpstreamReset(): void {
    this.conn = null;
    if (this.host !== undefined) this.host.stats.rq_error++;
    this.finish();
  }

  /** The route timeout passed: give the mirror up (its connection is closed, or its pool wait cancelled). */
  private abandon(): void {
    this.timer = undefined;
    if (this.done) return;
    this.cluster.runtime.stats.upstream_rq_timeout++;
    const c = this.conn;
    this.conn = null;
    if (c !== null) c.abort();
    else if (this.host !== undefined) this.cluster.pool(this.host, this.protocol).cancel(this);
    this.finish();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.timer);
    this.body = null;
    if (this.holdsRequest) {
      this.holdsRequest = false;
      const rt = this.cluster.runtime;
      rt.circuitBreaker().release('requests');
      rt.stats.upstream_rq_active--;
      if (this.host !== undefined) this.host.stats.rq_active--;
    }
  }
}

function bodiless(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'TRACE';
}
