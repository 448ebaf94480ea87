/**
 * The requests waiting for a connection (HTTP/1.1) or a stream slot (HTTP/2) of one host's pool, oldest first,
 * under the cluster's `pending` circuit breaker (Envoy's ConnPoolImplBase pending list): a request that would
 * overflow max_pending_requests fails at once with 'overflow' (the router answers 503 UO); each waiting request
 * counts in upstream_rq_pending_total / _active until it leaves the queue.
 *
 *   if (!pending.add(req)) return;      // overflow: req.onPoolFailure('overflow') was called
 *   const next = pending.shift();       // the oldest request, its pending slot released
 *   pending.cancel(req);                // a request that gave up while waiting
 */
import type { ClusterRuntime } from '../cluster/cluster.js';
import type { PoolRequest } from './types.js';

export class PendingRequests {
  private readonly queue: PoolRequest[] = [];

  constructor(private readonly cluster: ClusterRuntime) {}

  get length(): number {
    return this.queue.length;
  }

  /** Queues a request; false (after answering it with 'overflow') when the pending circuit breaker is full. */
  add(req: PoolRequest): boolean {
    if (!this.cluster.circuitBreaker().tryAcquire('pending')) {
      req.onPoolFailure('overflow');
      return false;
    }
    const stats = this.cluster.stats;
    stats.upstream_rq_pending_total++;
    stats.upstream_rq_pending_active++;
    this.queue.push(req);
    return true;
  }

  /** The oldest waiting request, removed from the queue (its pending slot released); undefined when none waits. */
  shift(): PoolRequest | undefined {
    const req = this.queue.shift();
    if (req !== undefined) this.release();
    return req;
  }

  /** Removes a request that is still waiting. */
  cancel(req: PoolRequest): void {
    const i = this.queue.indexOf(req);
    if (i < 0) return;
    this.queue.splice(i, 1);
    this.release();
  }

  private release(): void {
    this.cluster.circuitBreaker().release('pending');
    this.cluster.stats.upstream_rq_pending_active--;
  }
}
