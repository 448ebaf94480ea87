/**
 * IdleCluster: a cluster that has not carried traffic yet. Most clusters of a sidecar (one per service of the
 * mesh) are never used, so the proxy holds only what a runtime is built from — the validated settings and the
 * transport (PreparedCluster) — and the few stats that change without traffic; the ClusterRuntime (load balancer,
 * hosts, circuit breakers, outlier detector, stats objects) is built on first use (config/cluster-entry.ts).
 *
 *   const idle = new IdleCluster(prepared, counts, ctx);   // counts: what a runtime built now has counted
 *   idle.updateHosts(cla);          // EDS: validated and counted as the runtime would (throws ConfigError)
 *   scope.addSource(idle);          // /stats: every cluster stat, zero except the ones below
 *   const rt = idle.build();        // first use (or a view for /clusters): hosts from ctx.cla(), counts restored
 *
 * Only clusters whose runtime does nothing on its own are kept idle: EDS and STATIC clusters without active health
 * checks (DNS clusters resolve, ORIGINAL_DST clusters sweep, health checkers probe, so those are built at once).
 * Without traffic, a runtime changes only its update and membership stats; those are `IdleCounts`. A built runtime
 * is in the state an eagerly built one would be: its hosts are the ClusterLoadAssignment in force (ctx.cla), and
 * its counters are the recorded ones.
 */
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { CircuitBreaker } from '../circuit-breaker.js';
import { ClusterRuntime, type CompileOptions, type PreparedCluster } from './cluster.js';
import { ClusterStats, type StatVisitor } from './stats.js';

/** What a proxy's idle clusters share: how runtimes are built and the ClusterLoadAssignments in force. */
export interface IdleClusterContext {
  readonly opts: CompileOptions;
  /** The ClusterLoadAssignment in force for an EDS service name. */
  cla(edsServiceName: string): ClusterLoadAssignment | undefined;
}

/** The ClusterStats fields a runtime changes without traffic. */
const IDLE_FIELDS = [
  'update_attempt',
  'update_success',
  'update_failure',
  'update_empty',
  'update_no_rebuild',
  'membership_change',
  'membership_total',
  'membership_healthy',
  'membership_degraded',
  'membership_excluded',
  'max_host_weight',
] as const satisfies ReadonlyArray<keyof ClusterStats>;

type IdleField = (typeof IDLE_FIELDS)[number];

function copyCounts(from: Readonly<Record<IdleField, number>>, to: Record<IdleField, number>): void {
  for (const k of IDLE_FIELDS) to[k] = from[k];
}

/** What an idle cluster has counted: the `IDLE_FIELDS` of its ClusterStats (same names). */
export class IdleCounts implements Record<IdleField, number> {
  update_attempt = 0;
  update_success = 0;
  update_failure = 0;
  update_empty = 0;
  update_no_rebuild = 0;
  membership_change = 0;
  membership_total = 0;
  membership_healthy = 0;
  membership_degraded = 0;
  membership_excluded = 0;
  max_host_weight = 0;

  static of(st: ClusterStats): IdleCounts {
    const c = new IdleCounts();
    c.copyFrom(st);
    return c;
  }

  copyFrom(st: ClusterStats): void {
    copyCounts(st, this);
  }

  copyTo(st: ClusterStats): void {
    copyCounts(this, st);
  }
}

export class IdleCluster {
  constructor(
    readonly prepared: PreparedCluster,
    readonly counts: IdleCounts,
    private readonly ctx: IdleClusterContext,
  ) {}

  /** Whether a cluster of these settings can wait for its first use (nothing of it runs on its own). */
  static canWait(p: PreparedCluster): boolean {
    const s = p.settings;
    return (s.type === 'EDS' || s.type === 'STATIC') && s.healthCheck === undefined;
  }

  /** A runtime in the state the cluster is in (not started): hosts of the assignment in force, counters restored. */
  build(): ClusterRuntime {
    const rt = new ClusterRuntime(this.prepared, this.ctx.opts);
    if (rt.type === 'EDS') {
      const cla = this.ctx.cla(rt.edsServiceName);
      if (cla !== undefined) {
        try {
          rt.updateHosts(cla);
        } catch {
          // Refused for this cluster when it came (NACKed): it has no hosts from it, as an eagerly built one.
        }
      }
    }
    this.counts.copyTo(rt.stats);
    return rt;
  }

  /** EDS: checks and counts an update as the runtime would (throws ConfigError when it cannot be applied). */
  updateHosts(cla: ClusterLoadAssignment): void {
    const rt = this.build();
    try {
      rt.updateHosts(cla);
    } finally {
      this.counts.copyFrom(rt.stats);
    }
  }

  /** The cluster's stats as its runtime would list them (StatsSource for the `cluster.<name>.` scope). */
  forEach(cb: StatVisitor): void {
    const st = new ClusterStats();
    const t = this.prepared.settings.thresholds;
    new CircuitBreaker('default', t.default, st);
    new CircuitBreaker('high', t.high, st);
    this.counts.copyTo(st);
    st.forEach(cb);
  }
}
