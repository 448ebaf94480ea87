/**
 * Circuit breakers: Envoy's per-cluster, per-routing-priority resource limits
 * (envoy.config.cluster.v3.CircuitBreakers; source/common/upstream/resource_manager_impl.h).
 *
 *   const cb = cluster.circuitBreaker('default');
 *   if (!cb.tryAcquire('pending')) → answer 503 with response flag UO (the overflow stat is already counted)
 *   ... later: cb.release('pending')
 *
 * Kinds and their limits (Envoy's defaults when unset): `connections` max_connections (1024), `pending`
 * max_pending_requests (1024), `requests` max_requests (1024), `retries` max_retries (3) — or, with a
 * retry_budget, max(budget_percent (20%) × (active requests + pending requests), min_retry_concurrency (3)) —
 * and `connectionPools` max_connection_pools (unlimited). per_host_thresholds supports max_connections only,
 * checked with `canCreateConnection(host)`.
 *
 * A failed `tryAcquire` counts the overflow in the cluster stats as Envoy does: connections →
 * upstream_cx_overflow; pending and requests → upstream_rq_pending_overflow; retries → upstream_rq_retry_overflow;
 * connectionPools → upstream_cx_pool_overflow. Gauges `circuit_breakers.<priority>.{cx,rq,rq_pending,rq_retry,
 * cx_pool}_open` (1 while the limit is reached) and, with track_remaining, `remaining_{cx,rq,pending,retries,
 * cx_pools}` are registered in the cluster stats.
 */
import type { Host } from './cluster/host.js';
import type { ClusterStats } from './cluster/stats.js';

export type ResourceKind = 'connections' | 'pending' | 'requests' | 'retries' | 'connectionPools';
export type RoutingPriority = 'default' | 'high';

export interface Thresholds {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
  maxRetries: number;
  maxConnectionPools: number;
  maxConnectionsPerHost: number;
  trackRemaining: boolean;
  /** When set, max_retries is replaced by the budget. */
  retryBudget?: { budgetPercent: number; minRetryConcurrency: number };
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  maxConnections: 1024,
  maxPendingRequests: 1024,
  maxRequests: 1024,
  maxRetries: 3,
  maxConnectionPools: Number.MAX_SAFE_INTEGER,
  maxConnectionsPerHost: Number.MAX_SAFE_INTEGER,
  trackRemaining: false,
};

export class CircuitBreaker {
  connections = 0;
  pending = 0;
  requests = 0;
  retries = 0;
  connectionPools = 0;

  constructor(
    readonly priority: RoutingPriority,
    readonly thresholds: Thresholds,
    private readonly stats: ClusterStats,
  ) {
    stats.extraGauges.push({ prefix: `circuit_breakers.${priority}.`, source: () => this.gauges() });
  }

  /** The current limit for a kind (retries follow the retry budget when one is configured). */
  max(kind: ResourceKind): number {
    const t = this.thresholds;
    switch (kind) {
      case 'connections':
        return t.maxConnections;
      case 'pending':
        return t.maxPendingRequests;
      case 'requests':
        return t.maxRequests;
      case 'connectionPools':
        return t.maxConnectionPools;
      case 'retries':
        if (t.retryBudget) {
          const active = this.requests + this.pending;
          return Math.max(Math.floor((t.retryBudget.budgetPercent / 100) * active), t.retryBudget.minRetryConcurrency);
        }
        return t.maxRetries;
    }
  }

  count(kind: ResourceKind): number {
    return this[kind];
  }

  canCreate(kind: ResourceKind): boolean {
    return this[kind] < this.max(kind);
  }

  /** Takes one unit of `kind`; false (and the overflow stat counted) when the limit is reached. */
  tryAcquire(kind: ResourceKind): boolean {
    if (this[kind] < this.max(kind)) {
      this[kind]++;
      return true;
    }
    const s = this.stats;
    switch (kind) {
      case 'connections':
        s.upstream_cx_overflow++;
        break;
      case 'pending':
      case 'requests':
        s.upstream_rq_pending_overflow++;
        break;
      case 'retries':
        s.upstream_rq_retry_overflow++;
        break;
      case 'connectionPools':
        s.upstream_cx_pool_overflow++;
        break;
    }
    return false;
  }

  release(kind: ResourceKind): void {
    if (this[kind] > 0) this[kind]--;
  }

  /** Envoy's HostImpl::canCreateConnection: the per-host limit, then the cluster's connection limit. */
  canCreateConnection(host: Host): boolean {
    if (host.stats.cx_active >= this.thresholds.maxConnectionsPerHost) return false;
    return this.canCreate('connections');
  }

  private *gauges(): Iterable<[string, number]> {
    const open = (k: ResourceKind) => (this.canCreate(k) ? 0 : 1);
    const remaining = (k: ResourceKind) => Math.max(0, this.max(k) - this[k]);
    yield ['cx_open', open('connections')];
    yield ['cx_pool_open', open('connectionPools')];
    yield ['rq_open', open('requests')];
    yield ['rq_pending_open', open('pending')];
    yield ['rq_retry_open', open('retries')];
    if (this.thresholds.trackRemaining) {
      yield ['remaining_cx', remaining('connections')];
      yield ['remaining_cx_pools', remaining('connectionPools')];
      yield ['remaining_pending', remaining('pending')];
      yield ['remaining_retries', remaining('retries')];
      yield ['remaining_rq', remaining('requests')];
    }
  }
}
