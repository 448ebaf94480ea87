/**
 * ClusterEntry: a cluster in force — its runtime (built on first use for clusters that can wait, see
 * upstream/cluster/idle.ts), its request stats and one HTTP/1.1 and/or HTTP/2 pool per host.
 *
 *   const e = new ClusterEntry(runtime, stats);          // built at once (health checks, DNS, ...)
 *   const e = new ClusterEntry(idleCluster, stats);      // idle: settings and a few counts
 *
 * The entry lists the cluster's stats in `stats.scope` (the idle cluster's, then the runtime's ClusterStats).
 *   e.runtime                 // the request path: builds and starts the runtime the first time
 *   e.inspect()               // /clusters: the runtime, or for an idle cluster a throwaway one in the same state
 *   e.updateHosts(cla)        // EDS
 */
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { ClusterRequestStats } from '../stats/request-stats.js';
import type { UpstreamCluster } from '../http/route-path/upstream-request.js';
import type { ClusterRuntime } from '../upstream/cluster/cluster.js';
import type { ClusterSettings } from '../upstream/cluster/compile.js';
import type { IdleCluster } from '../upstream/cluster/idle.js';
import type { Host } from '../upstream/cluster/host.js';
import { H1Pool } from '../upstream/pool/h1-pool.js';
import { H2Pool } from '../upstream/pool/h2-pool.js';
import type { UpstreamPool } from '../upstream/pool/types.js';
import type { UpstreamTransport } from '../tls/upstream.js';

export class ClusterEntry implements UpstreamCluster {
  readonly settings: ClusterSettings;
  readonly transport: UpstreamTransport;
  private rt: ClusterRuntime | undefined;
  private idle: IdleCluster | undefined;
  // Created on first use: most clusters of a sidecar never carry a request.
  private pools: Map<Host, UpstreamPool> | undefined;
  private h2Pools: Map<Host, UpstreamPool> | undefined;
  private retired = false;

  constructor(
    cluster: ClusterRuntime | IdleCluster,
    readonly stats: ClusterRequestStats,
  ) {
    if ('prepared' in cluster) {
      this.idle = cluster;
      this.settings = cluster.prepared.settings;
      this.transport = cluster.prepared.transport;
      stats.scope.addSource(cluster);
    } else {
      this.settings = cluster.settings;
      this.transport = cluster.transport;
      stats.scope.addSource(cluster.stats);
      this.adopt(cluster);
    }
  }

  get name(): string {
    return this.settings.name;
  }

  /** The runtime; an idle cluster's is built (with the hosts in force and its counts) and started now. */
  get runtime(): ClusterRuntime {
    return this.rt ?? this.wake();
  }

  /** Whether the runtime exists (the cluster was used, or cannot wait). */
  get awake(): boolean {
    return this.rt !== undefined;
  }

  /** What an idle cluster has counted (update and membership stats); undefined once awake. */
  get idleCounts(): object | undefined {
    return this.idle?.counts;
  }

  /** The runtime for admin output, without waking an idle cluster (a runtime in the same state, not kept). */
  inspect(): ClusterRuntime {
    return this.rt ?? this.idle!.build();
  }

  /** Applies a ClusterLoadAssignment (throws ConfigError when it cannot be applied; nothing changes then). */
  updateHosts(cla: ClusterLoadAssignment): void {
    if (this.rt !== undefined) this.rt.updateHosts(cla);
    else this.idle!.updateHosts(cla);
  }

  private wake(): ClusterRuntime {
    const idle = this.idle!;
    const rt = idle.build();
    this.idle = undefined;
    this.stats.scope.replaceSource(idle, rt.stats);
    this.adopt(rt);
    // A retired cluster still reached by a request in flight gets a runtime that runs nothing.
    if (this.retired) rt.close();
    else rt.start();
    return rt;
  }

  private adopt(rt: ClusterRuntime): void {
    this.rt = rt;
    rt.onHostsChanged((_added, removed) => {
      for (const h of removed) {
        for (const m of [this.pools, this.h2Pools]) {
          const p = m?.get(h);
          if (p !== undefined) {
            m!.delete(h);
            p.drain();
          }
        }
      }
    });
  }

  pool(host: Host, protocol: 1 | 2): UpstreamPool {
    const m = protocol === 2 ? (this.h2Pools ??= new Map()) : (this.pools ??= new Map());
    let p = m.get(host);
    if (p === undefined) {
      const rt = this.runtime;
      p = protocol === 2 ? new H2Pool(rt, host) : new H1Pool(rt, host);
      if (this.retired) p.drain();
      m.set(host, p);
    }
    return p;
  }

  /** Replaced or removed: finish what is in flight, open nothing new for idle reuse, stop timers. */
  retire(): void {
    this.retired = true;
    for (const p of this.pools?.values() ?? []) p.drain();
    for (const p of this.h2Pools?.values() ?? []) p.drain();
    this.rt?.close();
    this.stats.remove();
  }

  /** Proxy shutdown. */
  close(): void {
    this.retired = true;
    for (const p of this.pools?.values() ?? []) p.close();
    for (const p of this.h2Pools?.values() ?? []) p.close();
    this.rt?.close();
    this.stats.remove();
  }
}
