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
 * - CDS: prepareCluster (validation) → a ClusterEntry (config/cluster-entry.ts) whose ClusterRuntime
 *   (upstream/cluster) is built at once, or — EDS and STATIC clusters without health checks, which do nothing
 *   until used — on first use: until then the entry holds the prepared settings and the few stats that change
 *   without traffic (upstream/cluster/idle.ts), and /stats and /clusters show it as its runtime would. A changed
 *   cluster replaces the old one, which keeps serving the requests that hold it while its idle upstream
 *   connections close (a replacement of a cluster in use is built at once); an EDS cluster takes the last
 *   ClusterLoadAssignment of its service name at once. EDS subscriptions follow the EDS clusters.
 * - EDS: ClusterEntry.updateHosts(cla) for every cluster of that service name; pools of removed hosts drain.
 * - LDS: compileListener (listener/listener.ts) with its HTTP connection manager; RDS names are subscribed before
 *   the handler returns; binding failures are errors of that listener. Listeners missing from a response are
 *   removed (they stop accepting and drain).
 * - RDS: compileRouteConfiguration (http/router) into the holder the connection managers read per request.
 *
 * Stats (`opts.stats`, a StatsStore; default a private one): each cluster gets the scope `cluster.<stat name>.`
 * listing its runtime's ClusterStats (an idle cluster's, see below) plus ClusterRequestStats (response codes, upstream_rq_time);
 * each listener `listener.<address>_<port>.` (or `listener.<stat_prefix>.`) and its HTTP connection manager
 * `http.<stat_prefix>.`; a TCP proxy `tcp.<stat_prefix>.`. They are created when the resource compiles and
 * removed when it is replaced or removed (stats of the same name carry over: Envoy keeps a replaced cluster's
 * counters, so the new runtime's counters start from the old one's values).
 * With `opts.istio` (IstioMetrics), the connection managers and TCP proxies of listeners with a traffic_direction
 * also keep Istio's standard metrics and run the metadata exchange (stats/istio): reporter `destination` on INBOUND
 * listeners, `source` on OUTBOUND ones.
 *
 * Config dump (`configSnapshot()`, the admin /config_dump input): every resource in force with the version it came
 * with and when it was applied, and for a rejected update the NACK's details, the rejected resource and the time
 * (error_state); the type-level version_info is the last ACKed version of the type.
 */
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { TypeUrl } from '../../xds/index.js';
import type { AdsClient, ResourceEntry, ResourceUpdate } from '../../xds/client/index.js';
import type { ConfigSnapshot, DumpedResource } from '../admin/config-dump.js';
import { ClientResourceStatus } from '../../xds/gen/envoy/admin/v3/config_dump_shared_pb.js';
import { StatsStore, type Scope } from '../stats/store.js';
import { ClusterRequestStats, HttpConnStats, ListenerStats } from '../stats/request-stats.js';
import { TcpProxyStats } from '../tcp/stats.js';
import { TrafficDirection } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { IstioHttpStats } from '../stats/istio/http.js';
import { IstioTcpStats } from '../stats/istio/tcp.js';
import type { IstioMetrics, Reporter } from '../stats/istio/metrics.js';
import { GAUGES } from '../upstream/cluster/stats.js';
import { compileRouteConfiguration, type CompiledRouteConfig } from '../http/router/index.js';
import type { RouteSource } from '../http/server/hcm.js';
import { compileListener, type CompiledListener, type ListenerManager } from '../listener/listener.js';
import { ClusterRuntime, IdleCluster, prepareCluster, type IdleClusterContext, type PreparedCluster } from '../upstream/cluster/index.js';
import { IdleCounts } from '../upstream/cluster/idle.js';
import { ClusterEntry } from './cluster-entry.js';
import type { Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { compileSecret, SecretManager } from '../tls/secrets.js';
import type { LocalInfo, TracingContext } from '../tracing/tracer.js';

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

export { ClusterEntry } from './cluster-entry.js';

/**
 * A resource in force as the config dump lists it. It holds the client's entry, not its message: the client keeps
 * the bytes and decodes them again when the dump is read. (A class: an object literal with a getter would cost a
 * closure and a dictionary-mode object per resource.)
 */
class AcceptedResource<T> implements DumpedResource<T> {
  readonly clientStatus = ClientResourceStatus.ACKED;
  constructor(
    private readonly entry: ResourceEntry & { message: T },
    readonly lastUpdated: number,
  ) {}
  get resource(): T {
    return this.entry.message;
  }
  get versionInfo(): string {
    return this.entry.version;
  }
}

/** Copies the counters (not the gauges) of a replaced cluster's stats into its successor's. */
function carryCounters(from: object, to: object): void {
  const dst = to as Record<string, unknown>;
  for (const [k, v] of Object.entries(from)) {
    if (typeof v === 'number') {
      if (!GAUGES.has(k) && typeof dst[k] === 'number') dst[k] = v;
    } else if (v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Map) && dst[k] !== null && typeof dst[k] === 'object') {
      carryCounters(v, dst[k] as object);
    }
  }
}

/** The stats a compiled listener created (removed when it is replaced, removed or fails to apply). */
class ListenerStatsSet {
  listener: ListenerStats | undefined;
  readonly http: HttpConnStats[] = [];
  readonly tcpPrefixes: string[] = [];
  /** Network filters' scopes (RBAC, ext_authz). */
  readonly scopes: Scope[] = [];

  remove(release: (prefix: string) => void): void {
    for (const h of this.http) h.remove();
    for (const s of this.scopes) s.remove();
    this.listener?.remove();
    for (const p of this.tcpPrefixes) release(p);
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
  /** Where the stats of clusters, listeners and connection managers go (default: a private store). */
  stats?: StatsStore;
  /** Istio's standard metrics and the metadata exchange (stats/istio), on every sidecar listener; absent: none. */
  istio?: IstioMetrics;
  /** TLS secrets (the workload identity's `default` / `ROOTCA`, and SDS); default: a manager with no identity. */
  secrets?: SecretManager;
  /** The proxy's node as spans describe it (tracing/tracer.ts). */
  local?: LocalInfo;
}

type Dumped<T> = Map<string, DumpedResource<T>>;

export class XdsConfig {
  readonly clusters = new Map<string, ClusterEntry>();
  /** What access logs and tracing need of the proxy (listener/listener.ts sets the direction per listener). */
  private readonly telemetry: Omit<TracingContext, 'listener' | 'field'>;
  readonly routes = new Map<string, RdsHolder>();
  private readonly lastCla = new Map<string, ResourceEntry<ClusterLoadAssignment>>();
  /** How idle clusters build their runtime (upstream/cluster/idle.ts). */
  private readonly idleContext: IdleClusterContext;
  private readonly edsNames = new Set<string>();
  private readonly warned = new Set<string>();
  private readonly log: ConfigLogger;
  /** Resources applied so far per type (for status output). */
  readonly applied = { cds: 0, eds: 0, lds: 0, rds: 0 };
  readonly stats: StatsStore;
  private readonly istio: IstioMetrics | undefined;
  readonly secrets: SecretManager;
  /** SDS names subscribed over ADS. */
  private readonly sdsNames = new Set<string>();
  private readonly listenerStats = new Map<string, ListenerStatsSet>();
  private readonly tcpStats = new Map<string, { stats: TcpProxyStats; remove: () => void; refs: number }>();
  private readonly dumped = {
    clusters: new Map() as Dumped<Cluster>,
    endpoints: new Map() as Dumped<ClusterLoadAssignment>,
    listeners: new Map() as Dumped<Listener>,
    routes: new Map() as Dumped<RouteConfiguration>,
  };

  constructor(
    private readonly client: AdsClient,
    private readonly listeners: ListenerManager,
    opts: XdsConfigOptions = {},
  ) {
    this.log = opts.log ?? silent;
    this.stats = opts.stats ?? new StatsStore();
    this.istio = opts.istio;
    this.secrets = opts.secrets ?? new SecretManager();
    const lastCla = this.lastCla;
    this.idleContext = { opts: { secrets: this.secrets }, cla: (n) => lastCla.get(n)?.message };
    this.telemetry = {
      direction: 'UNSPECIFIED',
      local: opts.local ?? { nodeId: '', cluster: '', zone: '' },
      collectorHost: (c) => this.clusters.get(c)?.runtime.lb.choose(),
      statsScope: (prefix) => this.stats.scope(prefix),
    };
  }

  /** The configuration in force and the rejected updates, for the admin /config_dump. */
  configSnapshot(): ConfigSnapshot {
    const types = this.client.state().types;
    const acked = (t: string) => types[t]?.ackedVersion ?? '';
    const sortedValues = <T>(m: Dumped<T>) => [...m.entries()].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)).map((e) => e[1]);
    return {
      clusters: { versionInfo: acked(TypeUrl.Cluster), resources: sortedValues(this.dumped.clusters) },
      endpoints: { resources: sortedValues(this.dumped.endpoints) },
      listeners: { versionInfo: acked(TypeUrl.Listener), resources: sortedValues(this.dumped.listeners) },
      routes: { resources: sortedValues(this.dumped.routes) },
    };
  }

  private accepted<T>(m: Dumped<T>, name: string, entry: ResourceEntry & { message: T }): void {
    m.set(name, new AcceptedResource(entry, Date.now()));
  }

  private rejected<T>(m: Dumped<T>, name: string, entry: ResourceEntry & { message: T }, details: string): void {
    const prev = m.get(name);
    // The version in force stays listed (read through its getters: an AcceptedResource's are on its prototype).
    const inForce: DumpedResource<T> = prev?.resource !== undefined ? { resource: prev.resource, versionInfo: prev.versionInfo, lastUpdated: prev.lastUpdated } : { name };
    m.set(name, {
      ...inForce,
      error: { details, versionInfo: entry.version, failedConfiguration: entry.message, lastUpdateAttempt: Date.now() },
      clientStatus: ClientResourceStatus.NACKED,
    });
  }

  private tcpStatsFor(prefix: string, reporter: Reporter | undefined): TcpProxyStats {
    let e = this.tcpStats.get(prefix);
    if (e === undefined) {
      const stats = new TcpProxyStats();
      if (this.istio !== undefined && reporter !== undefined) {
        stats.istio = IstioTcpStats.of(this.istio, reporter);
        stats.exchange = this.istio.tcpExchange;
      }
      const scope = this.stats.scope(`tcp.${prefix}.`);
      scope.addSource(stats);
      e = { stats, remove: () => scope.remove(), refs: 0 };
      this.tcpStats.set(prefix, e);
    }
    e.refs++;
    return e.stats;
  }

  private releaseTcpStats = (prefix: string): void => {
    const e = this.tcpStats.get(prefix);
    if (e !== undefined && --e.refs <= 0) {
      this.tcpStats.delete(prefix);
      e.remove();
    }
  };

  watch(): void {
    this.client.watch<Cluster>(TypeUrl.Cluster, { wildcard: true, onUpdate: (u) => this.onClusters(u) });
    this.client.watch<ClusterLoadAssignment>(TypeUrl.ClusterLoadAssignment, { onUpdate: (u) => this.onEndpoints(u) });
    this.client.watch<Listener>(TypeUrl.Listener, { wildcard: true, onUpdate: (u) => this.onListeners(u) });
    this.client.watch<RouteConfiguration>(TypeUrl.RouteConfiguration, { onUpdate: (u) => this.onRoutes(u) });
    this.client.watch<Secret>(TypeUrl.Secret, { onUpdate: (u) => this.onSecrets(u) });
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
    const compiled: Array<[string, PreparedCluster]> = [];
    for (const [name, entry] of u.added) {
      try {
        const p = prepareCluster(entry.message, this.secrets);
        for (const w of p.settings.warnings) this.warnOnce(`cluster ${JSON.stringify(name)}: ${w.field}: ${w.detail}`);
        compiled.push([name, p]);
        this.accepted(this.dumped.clusters, name, entry);
      } catch (e) {
        errors.push(messageOf(e));
        this.rejected(this.dumped.clusters, name, entry, messageOf(e));
      }
    }
    for (const [name, p] of compiled) {
      const rt = new ClusterRuntime(p, this.idleContext.opts);
      if (rt.type === 'EDS') {
        const cla = this.lastCla.get(rt.edsServiceName)?.message;
        if (cla !== undefined) {
          try {
            rt.updateHosts(cla);
          } catch (e) {
            errors.push(messageOf(e));
          }
        }
      }
      const old = this.clusters.get(name);
      const carry = old !== undefined && old.settings.statName === p.settings.statName;
      if (carry) carryCounters(old.idleCounts ?? old.runtime.stats, rt.stats);
      // A cluster that can wait keeps only its settings and counts until first used; one that replaces a cluster
      // in use is in use.
      const idle = IdleCluster.canWait(p) && (old === undefined || !old.awake);
      const scope = this.stats.scope(`cluster.${p.settings.statName}.`);
      const c = new ClusterEntry(idle ? new IdleCluster(p, IdleCounts.of(rt.stats), this.idleContext) : rt, new ClusterRequestStats(scope));
      if (!idle) rt.start();
      if (!p.transport.plaintext) scope.addSource(p.transport.stats);
      this.clusters.set(name, c);
      old?.retire();
    }
    for (const name of u.removed) {
      const old = this.clusters.get(name);
      this.clusters.delete(name);
      this.dumped.clusters.delete(name);
      old?.retire();
    }
    this.applied.cds++;
    this.syncEdsSubscriptions();
    this.syncSdsSubscriptions();
    throwIfErrors(errors);
  }

  private syncEdsSubscriptions(): void {
    const want = new Set<string>();
    for (const c of this.clusters.values()) if (c.settings.type === 'EDS') want.add(c.settings.edsServiceName);
    const add = [...want].filter((n) => !this.edsNames.has(n));
    const drop = [...this.edsNames].filter((n) => !want.has(n));
    for (const n of add) this.edsNames.add(n);
    for (const n of drop) {
      this.edsNames.delete(n);
      this.lastCla.delete(n);
      this.dumped.endpoints.delete(n);
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
        if (c.settings.type !== 'EDS' || c.settings.edsServiceName !== name) continue;
        try {
          c.updateHosts(entry.message);
        } catch (e) {
          ok = false;
          errors.push(messageOf(e));
        }
      }
      if (ok) {
        this.lastCla.set(name, entry);
        this.accepted(this.dumped.endpoints, name, entry);
      } else this.rejected(this.dumped.endpoints, name, entry, errors[errors.length - 1]!);
    }
    for (const name of u.removed) this.dumped.endpoints.delete(name);
    this.applied.eds++;
    throwIfErrors(errors);
  }

  // ---------------------------------------------------------------------------------------------------- LDS

  async onListeners(u: ResourceUpdate<Listener>): Promise<void> {
    const errors: string[] = [];
    const compiled: Array<{ l: CompiledListener; entry: ResourceEntry<Listener>; stats: ListenerStatsSet }> = [];
    for (const [name, entry] of u.added) {
      const set = new ListenerStatsSet();
      const listenerScope = (): ListenerStats => (set.listener ??= new ListenerStats(this.stats.scope(`listener.${listenerStatName(entry.message)}.`)));
      const reporter = reporterOf(entry.message);
      try {
        const l = compileListener(entry.message, {
          rds: (n) => this.rdsHolder(n),
          inlineRoutes: (rc) => new FixedRoutes(compileRouteConfiguration(rc as RouteConfiguration, { validateClustersDefault: true })),
          cluster: (n) => this.clusters.get(n),
          warn: (m) => this.warnOnce(m),
          httpStats: (prefix) => {
            const h = new HttpConnStats(this.stats.scope(`http.${prefix}.`), listenerScope());
            if (this.istio !== undefined && reporter !== undefined) h.istio = IstioHttpStats.of(this.istio, reporter);
            set.http.push(h);
            return h;
          },
          tcpStats: (prefix) => {
            set.tcpPrefixes.push(prefix);
            return this.tcpStatsFor(prefix, reporter);
          },
          listenerStats: listenerScope,
          networkStats: (prefix) => {
            const s = this.stats.scope(prefix);
            set.scopes.push(s);
            return s;
          },
          secrets: this.secrets,
          tlsStats: (tls) => {
            listenerScope().scope.addSource(tls);
          },
          telemetry: this.telemetry,
        });
        compiled.push({ l, entry, stats: set });
      } catch (e) {
        set.remove(this.releaseTcpStats);
        errors.push(messageOf(e));
        this.rejected(this.dumped.listeners, name, entry, messageOf(e));
      }
    }
    const rdsNames = compiled.flatMap((c) => c.l.rdsNames);
    if (rdsNames.length) this.client.subscribe(TypeUrl.RouteConfiguration, rdsNames);
    for (const { l, entry, stats } of compiled) {
      try {
        await this.listeners.apply(l);
        this.listenerStats.get(l.name)?.remove(this.releaseTcpStats);
        this.listenerStats.set(l.name, stats);
        this.accepted(this.dumped.listeners, l.name, entry);
      } catch (e) {
        stats.remove(this.releaseTcpStats);
        errors.push(messageOf(e));
        this.rejected(this.dumped.listeners, l.name, entry, messageOf(e));
      }
    }
    for (const name of u.removed) {
      this.listeners.remove(name);
      this.listenerStats.get(name)?.remove(this.releaseTcpStats);
      this.listenerStats.delete(name);
      this.dumped.listeners.delete(name);
    }
    this.applied.lds++;
    this.syncSdsSubscriptions();
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
        this.accepted(this.dumped.routes, name, entry);
      } catch (e) {
        errors.push(messageOf(e));
        this.rejected(this.dumped.routes, name, entry, messageOf(e));
      }
    }
    for (const [name, rc] of compiled) this.rdsHolder(name).current = rc;
    this.applied.rds++;
    throwIfErrors(errors);
  }

  // ---------------------------------------------------------------------------------------------------- SDS

  /**
   * Subscribes the SDS names the listeners and clusters in force refer to (except those the local identity
   * serves), and drops the others. Secrets are never put in the config dump (they hold private keys).
   */
  private syncSdsSubscriptions(): void {
    const want = new Set<string>();
    for (const c of this.clusters.values()) for (const n of c.transport.sdsNames()) want.add(n);
    for (const n of this.listeners.sdsNames()) want.add(n);
    for (const n of [...want]) if (this.secrets.isLocal(n)) want.delete(n);
    const add = [...want].filter((n) => !this.sdsNames.has(n));
    const drop = [...this.sdsNames].filter((n) => !want.has(n));
    for (const n of add) this.sdsNames.add(n);
    for (const n of drop) {
      this.sdsNames.delete(n);
      this.secrets.applyAds(n, undefined);
    }
    if (add.length) this.client.subscribe(TypeUrl.Secret, add);
    if (drop.length) this.client.unsubscribe(TypeUrl.Secret, drop);
  }

  onSecrets(u: ResourceUpdate<Secret>): void {
    const errors: string[] = [];
    for (const [name, entry] of u.added) {
      try {
        this.secrets.applyAds(name, compileSecret(entry.message));
      } catch (e) {
        errors.push(messageOf(e));
      }
    }
    for (const name of u.removed) this.secrets.applyAds(name, undefined);
    throwIfErrors(errors);
  }

  /** Stops every cluster (shutdown, after the listeners drained). */
  close(): void {
    for (const c of this.clusters.values()) c.close();
    this.clusters.clear();
    for (const s of this.listenerStats.values()) s.remove(this.releaseTcpStats);
    this.listenerStats.clear();
  }
}

/**
 * The Istio reporter of a listener's traffic: its traffic_direction (INBOUND → destination, OUTBOUND → source), as
 * Istio configures its stats filters per direction; undefined (no Istio metrics) for an unspecified direction.
 */
function reporterOf(l: Listener): Reporter | undefined {
  if (l.trafficDirection === TrafficDirection.INBOUND) return 'destination';
  if (l.trafficDirection === TrafficDirection.OUTBOUND) return 'source';
  return undefined;
}

/** Envoy's listener stats prefix: stat_prefix, else the address as `<ip>_<port>` (the store sanitizes `:`). */
function listenerStatName(l: Listener): string {
  if (l.statPrefix !== '') return l.statPrefix;
  const a = l.address?.address;
  if (a?.case === 'socketAddress') {
    const sa = a.value;
    const port = sa.portSpecifier.case === 'portValue' ? sa.portSpecifier.value : 0;
    return sa.address.includes(':') ? `[${sa.address}]:${port}` : `${sa.address}:${port}`;
  }
  return l.name;
}
