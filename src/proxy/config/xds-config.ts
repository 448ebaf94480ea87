/**
 * Applying xDS to the proxy: the CDS, EDS, LDS and RDS watch handlers of the AdsClient.
 *
 *   const cfg = new XdsConfig(client, listeners, { log });
 *   cfg.watch();                                   // registers the four watches (CDS/LDS wildcard, EDS/RDS by name)
 *   await client.synced([CDS, EDS, LDS, RDS]);     // the first full config is applied
 *
 * Each handler compiles everything it received first and swaps it in afterwards, so a request sees either the old
 * or the new version of a resource, never a mix. A resource that does not compile is left out and the response is
 * NACKed with every error (ConfigError messages: `<kind> "<name>": <field>: <what is wrong>`); the resource's last
 * good version stays in force, and the other resources of the same response apply (Envoy applies the valid
 * listeners and clusters of an LDS / CDS response and reports the rest).
 *
 * - CDS: compileCluster → ClusterRuntime (upstream/cluster). A changed cluster replaces the old one, which keeps
 *   serving the requests that hold it while its idle upstream connections close; an EDS cluster takes the last
 *   ClusterLoadAssignment of its service name at once. EDS subscriptions follow the EDS clusters.
 * - EDS: ClusterRuntime.updateHosts(cla) for every cluster of that service name; pools of removed hosts drain.
 * - LDS: compileListener (listener/listener.ts) with its HTTP connection manager; RDS names are subscribed before
 *   the handler returns; binding failures are errors of that listener. Listeners missing from a response are
 *   removed (they stop accepting and drain).
 * - RDS: compileRouteConfiguration (http/router) into the holder the connection managers read per request.
 */
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { TypeUrl } from '../../xds/index.js';
import type { AdsClient, ResourceUpdate } from '../../xds/client/index.js';
import { compileRouteConfiguration, type CompiledRouteConfig } from '../http/router/index.js';
import type { UpstreamCluster } from '../http/route-path/upstream-request.js';
import type { RouteSource } from '../http/server/hcm.js';
import { compileListener, type CompiledListener, type ListenerManager } from '../listener/listener.js';
import { compileCluster, type ClusterRuntime } from '../upstream/cluster/index.js';
import type { Host } from '../upstream/cluster/host.js';
import { H1Pool } from '../upstream/pool/h1-pool.js';

export interface ConfigLogger {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

const silent: ConfigLogger = { info() {}, warn() {} };

/** The latest accepted version of a route configuration. */
export class RdsHolder implements RouteSource {
  current: CompiledRouteConfig | undefined;
  constructor(readonly name: string) {}
}

class FixedRoutes implements RouteSource {
  constructor(readonly current: CompiledRouteConfig) {}
}

/** A cluster in force: its runtime and one HTTP/1.1 pool per host. */
export class ClusterEntry implements UpstreamCluster {
  private readonly pools = new Map<Host, H1Pool>();
  private retired = false;

  constructor(readonly runtime: ClusterRuntime) {
    runtime.onHostsChanged((_added, removed) => {
      for (const h of removed) {
        const p = this.pools.get(h);
        if (p !== undefined) {
          this.pools.delete(h);
          p.drain();
        }
      }
    });
  }

  pool(host: Host): H1Pool {
    let p = this.pools.get(host);
    if (p === undefined) {
      p = new H1Pool(this.runtime, host);
      if (this.retired) p.drain();
      this.pools.set(host, p);
    }
    return p;
  }

  /** Replaced or removed: finish what is in flight, open nothing new for idle reuse, stop timers. */
  retire(): void {
    this.retired = true;
    for (const p of this.pools.values()) p.drain();
    this.runtime.close();
  }

  /** Proxy shutdown. */
  close(): void {
    this.retired = true;
    for (const p of this.pools.values()) p.close();
    this.runtime.close();
  }
}

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Throws one Error whose message lists every error (the NACK's error_detail). */
function throwIfErrors(errors: string[]): void {
  if (errors.length === 1) throw new Error(errors[0]);
  if (errors.length > 1) throw new Error(`${errors.length} errors: ${errors.join('; ')}`);
}

export interface XdsConfigOptions {
  log?: ConfigLogger;
}

export class XdsConfig {
  readonly clusters = new Map<string, ClusterEntry>();
  readonly routes = new Map<string, RdsHolder>();
  private readonly lastCla = new Map<string, ClusterLoadAssignment>();
  private readonly edsNames = new Set<string>();
  private readonly warned = new Set<string>();
  private readonly log: ConfigLogger;
  /** Resources applied so far per type (for status output). */
  readonly applied = { cds: 0, eds: 0, lds: 0, rds: 0 };

  constructor(
    private readonly client: AdsClient,
    private readonly listeners: ListenerManager,
    opts: XdsConfigOptions = {},
  ) {
    this.log = opts.log ?? silent;
  }

  watch(): void {
    this.client.watch<Cluster>(TypeUrl.Cluster, { wildcard: true, onUpdate: (u) => this.onClusters(u) });
    this.client.watch<ClusterLoadAssignment>(TypeUrl.ClusterLoadAssignment, { onUpdate: (u) => this.onEndpoints(u) });
    this.client.watch<Listener>(TypeUrl.Listener, { wildcard: true, onUpdate: (u) => this.onListeners(u) });
    this.client.watch<RouteConfiguration>(TypeUrl.RouteConfiguration, { onUpdate: (u) => this.onRoutes(u) });
  }

  /** The cluster of a name (what the request path uses). */
  cluster(name: string): ClusterEntry | undefined {
    return this.clusters.get(name);
  }

  private warnOnce(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    this.log.warn({ warning: message }, 'config accepted with unsupported fields');
  }

  // ---------------------------------------------------------------------------------------------------- CDS

  onClusters(u: ResourceUpdate<Cluster>): void {
    const errors: string[] = [];
    const compiled: Array<[string, ClusterRuntime]> = [];
    for (const [name, entry] of u.added) {
      try {
        const rt = compileCluster(entry.message);
        for (const w of rt.warnings) this.warnOnce(`cluster ${JSON.stringify(name)}: ${w.field}: ${w.detail}`);
        compiled.push([name, rt]);
      } catch (e) {
        errors.push(messageOf(e));
      }
    }
    for (const [name, rt] of compiled) {
      if (rt.type === 'EDS') {
        const cla = this.lastCla.get(rt.edsServiceName);
        if (cla !== undefined) {
          try {
            rt.updateHosts(cla);
          } catch (e) {
            errors.push(messageOf(e));
          }
        }
      }
      rt.start();
      const old = this.clusters.get(name);
      this.clusters.set(name, new ClusterEntry(rt));
      old?.retire();
    }
    for (const name of u.removed) {
      const old = this.clusters.get(name);
      this.clusters.delete(name);
      old?.retire();
    }
    this.applied.cds++;
    this.syncEdsSubscriptions();
    throwIfErrors(errors);
  }

  private syncEdsSubscriptions(): void {
    const want = new Set<string>();
    for (const c of this.clusters.values()) if (c.runtime.type === 'EDS') want.add(c.runtime.edsServiceName);
    const add = [...want].filter((n) => !this.edsNames.has(n));
    const drop = [...this.edsNames].filter((n) => !want.has(n));
    for (const n of add) this.edsNames.add(n);
    for (const n of drop) {
      this.edsNames.delete(n);
      this.lastCla.delete(n);
    }
    if (add.length) this.client.subscribe(TypeUrl.ClusterLoadAssignment, add);
    if (drop.length) this.client.unsubscribe(TypeUrl.ClusterLoadAssignment, drop);
  }

  // ---------------------------------------------------------------------------------------------------- EDS

  onEndpoints(u: ResourceUpdate<ClusterLoadAssignment>): void {
    const errors: string[] = [];
    for (const [name, entry] of u.added) {
      let ok = true;
      for (const c of this.clusters.values()) {
        if (c.runtime.type !== 'EDS' || c.runtime.edsServiceName !== name) continue;
        try {
          c.runtime.updateHosts(entry.message);
        } catch (e) {
          ok = false;
          errors.push(messageOf(e));
        }
      }
      if (ok) this.lastCla.set(name, entry.message);
    }
    this.applied.eds++;
    throwIfErrors(errors);
  }

  // ---------------------------------------------------------------------------------------------------- LDS

  async onListeners(u: ResourceUpdate<Listener>): Promise<void> {
    const errors: string[] = [];
    const compiled: CompiledListener[] = [];
    for (const [, entry] of u.added) {
      try {
        compiled.push(
          compileListener(entry.message, {
            rds: (name) => this.rdsHolder(name),
            inlineRoutes: (rc) => new FixedRoutes(compileRouteConfiguration(rc as RouteConfiguration, { validateClustersDefault: true })),
            cluster: (name) => this.clusters.get(name),
            warn: (m) => this.warnOnce(m),
          }),
        );
      } catch (e) {
        errors.push(messageOf(e));
      }
    }
    const rdsNames = compiled.map((l) => l.hcm.rdsName).filter((n) => n !== '');
    if (rdsNames.length) this.client.subscribe(TypeUrl.RouteConfiguration, rdsNames);
    for (const l of compiled) {
      try {
        await this.listeners.apply(l);
      } catch (e) {
        errors.push(messageOf(e));
      }
    }
    for (const name of u.removed) this.listeners.remove(name);
    this.applied.lds++;
    throwIfErrors(errors);
  }

  private rdsHolder(name: string): RdsHolder {
    let h = this.routes.get(name);
    if (h === undefined) this.routes.set(name, (h = new RdsHolder(name)));
    return h;
  }

  // ---------------------------------------------------------------------------------------------------- RDS

  onRoutes(u: ResourceUpdate<RouteConfiguration>): void {
    const errors: string[] = [];
    const compiled: Array<[string, CompiledRouteConfig]> = [];
    for (const [name, entry] of u.added) {
      try {
        const rc = compileRouteConfiguration(entry.message);
        for (const w of rc.warnings) this.warnOnce(`route_config ${JSON.stringify(name)}: ${w}`);
        compiled.push([name, rc]);
      } catch (e) {
        errors.push(messageOf(e));
      }
    }
    for (const [name, rc] of compiled) this.rdsHolder(name).current = rc;
    this.applied.rds++;
    throwIfErrors(errors);
  }

  /** Stops every cluster (shutdown, after the listeners drained). */
  close(): void {
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
  }
}
