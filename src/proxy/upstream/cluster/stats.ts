/**
 * Cluster and host statistics, named as Envoy names them (the admin `/stats`, `/stats/prometheus` and `/clusters`
 * output prefixes cluster stats with `cluster.<name>.`).
 *
 * Stats are plain numeric fields so the request path updates them with `stats.upstream_rq_total++` — no lookups,
 * no closures. Counters only grow; gauges (listed in `GAUGES`) go up and down. Status-code counters and other
 * names not declared here go through `ClusterStats.inc(name)` into a small map.
 *
 *   stats.forEach((name, value, kind) => ...)   // every stat: 'upstream_rq_total', 'outlier_detection.ejections_active', ...
 *
 * Who updates what:
 * - the request path / connection pools: upstream_cx_*, upstream_rq_*, and the per-host HostStats;
 * - circuit breakers (circuit-breaker.ts): upstream_cx_overflow, upstream_rq_pending_overflow,
 *   upstream_rq_retry_overflow, upstream_cx_pool_overflow and the circuit_breakers.<priority>.* gauges;
 * - the cluster: membership_*, max_host_weight, update_*, lb_healthy_panic, upstream_cx_none_healthy;
 * - outlier detection: outlier_detection.*; health checking: health_check.*.
 */

export type StatKind = 'counter' | 'gauge';
export type StatVisitor = (name: string, value: number, kind: StatKind) => void;

/** Gauge names (everything else is a counter). */
export const GAUGES: ReadonlySet<string> = new Set([
  'upstream_cx_active',
  'upstream_rq_active',
  'upstream_rq_pending_active',
  'membership_total',
  'membership_healthy',
  'membership_degraded',
  'membership_excluded',
  'max_host_weight',
  'ejections_active',
  'healthy',
  'degraded',
  'cx_active',
  'rq_active',
]);

function visit(obj: object, prefix: string, cb: StatVisitor): void {
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'number') cb(prefix + k, v, GAUGES.has(k) ? 'gauge' : 'counter');
  }
}

export class OutlierStats {
  ejections_active = 0;
  ejections_overflow = 0;
  ejections_enforced_total = 0;
  ejections_total = 0;
  ejections_consecutive_5xx = 0;
  ejections_success_rate = 0;
  ejections_detected_consecutive_5xx = 0;
  ejections_enforced_consecutive_5xx = 0;
  ejections_detected_success_rate = 0;
  ejections_enforced_success_rate = 0;
  ejections_detected_consecutive_gateway_failure = 0;
  ejections_enforced_consecutive_gateway_failure = 0;
  ejections_detected_consecutive_local_origin_failure = 0;
  ejections_enforced_consecutive_local_origin_failure = 0;
  ejections_detected_local_origin_success_rate = 0;
  ejections_enforced_local_origin_success_rate = 0;
  ejections_detected_failure_percentage = 0;
  ejections_enforced_failure_percentage = 0;
  ejections_detected_local_origin_failure_percentage = 0;
  ejections_enforced_local_origin_failure_percentage = 0;
}

export class HealthCheckStats {
  attempt = 0;
  success = 0;
  failure = 0;
  passive_failure = 0;
  network_failure = 0;
  verify_cluster = 0;
  healthy = 0;
  degraded = 0;
}

export class ClusterStats {
  // Connections (pools).
  upstream_cx_total = 0;
  upstream_cx_active = 0;
  upstream_cx_http1_total = 0;
  upstream_cx_http2_total = 0;
  upstream_cx_connect_fail = 0;
  upstream_cx_connect_timeout = 0;
  upstream_cx_destroy = 0;
  upstream_cx_destroy_local = 0;
  upstream_cx_destroy_remote = 0;
  upstream_cx_overflow = 0;
  upstream_cx_pool_overflow = 0;
  upstream_cx_none_healthy = 0;
  upstream_cx_rx_bytes_total = 0;
  upstream_cx_tx_bytes_total = 0;
  // Requests (router, pools).
  upstream_rq_total = 0;
  upstream_rq_active = 0;
  upstream_rq_pending_total = 0;
  upstream_rq_pending_active = 0;
  upstream_rq_pending_overflow = 0;
  upstream_rq_retry = 0;
  upstream_rq_retry_success = 0;
  upstream_rq_retry_overflow = 0;
  upstream_rq_timeout = 0;
  upstream_rq_per_try_timeout = 0;
  upstream_rq_rx_reset = 0;
  upstream_rq_tx_reset = 0;
  upstream_rq_cancelled = 0;
  // Load balancing and membership (cluster).
  lb_healthy_panic = 0;
  membership_total = 0;
  membership_healthy = 0;
  membership_degraded = 0;
  membership_excluded = 0;
  membership_change = 0;
  max_host_weight = 0;
  update_attempt = 0;
  update_success = 0;
  update_failure = 0;
  update_empty = 0;
  update_no_rebuild = 0;

  readonly outlier = new OutlierStats();
  readonly healthCheck = new HealthCheckStats();
  /** Stats registered by the cluster's circuit breakers: `circuit_breakers.default.cx_open` and friends. */
  readonly extraGauges: Array<{ prefix: string; source: () => Iterable<[string, number]> }> = [];
  /** Counters not declared as fields, created on first use (most clusters of a sidecar never count one). */
  private dynamic: Map<string, number> | undefined;

  /** Adds to a counter not declared as a field (`upstream_rq_503`, `upstream_rq_5xx`, ...). */
  inc(name: string, n = 1): void {
    const d = (this.dynamic ??= new Map());
    d.set(name, (d.get(name) ?? 0) + n);
  }

  /** The value of any stat by its name (without the `cluster.<name>.` prefix); 0 when unknown. */
  get(name: string): number {
    let found = 0;
    this.forEach((n, v) => {
      if (n === name) found = v;
    });
    return found;
  }

  forEach(cb: StatVisitor): void {
    visit(this, '', cb);
    visit(this.outlier, 'outlier_detection.', cb);
    visit(this.healthCheck, 'health_check.', cb);
    for (const g of this.extraGauges) for (const [k, v] of g.source()) cb(g.prefix + k, v, 'gauge');
    if (this.dynamic !== undefined) for (const [k, v] of this.dynamic) cb(k, v, 'counter');
  }
}

/** Per-host stats, as the admin `/clusters` output lists them (`<cluster>::<host>::rq_active::3`). */
export class HostStats {
  cx_total = 0;
  cx_active = 0;
  cx_connect_fail = 0;
  rq_total = 0;
  rq_active = 0;
  rq_error = 0;
  rq_success = 0;
  rq_timeout = 0;

  forEach(cb: StatVisitor): void {
    visit(this, '', cb);
  }
}
