/**
 * ClusterRuntime: one upstream cluster as the proxy runs it — its hosts by priority and locality, its load
 * balancer, circuit breakers, outlier detector, health checker and (for DNS clusters) resolver.
 *
 *   const cluster = compileCluster(clusterProto, { clock, random });   // throws ConfigError → NACK
 *   cluster.updateHosts(cla);          // EDS (also STATIC); hosts keep identity by address:port
 *   cluster.start();                   // health checks, outlier sweeps, DNS refresh, original-dst cleanup
 *   await cluster.ready;               // endpoints known and every initial host health checked once
 *   const host = cluster.lb.choose({ hash, previousHosts, attempt });
 *   if (!cluster.circuitBreaker().tryAcquire('requests')) → 503 UO
 *   host.outlier.putResult('5xx', 503);
 *   cluster.close();
 *
 * Host membership follows Envoy's BaseDynamicClusterImpl::updateDynamicHostList: an endpoint present in an update
 * keeps its Host (weight, priority, locality, metadata and EDS health are updated in place); a new one starts
 * failing active health checks when the cluster has health checks (excluded until checked with
 * ignore_new_hosts_until_first_hc); an endpoint missing from the update is removed — unless the cluster has
 * health checks, ignore_health_on_host_removal is off and the host is passing them, in which case it stays with
 * /pending_dynamic_removal until it fails one. `onHostsChanged` tells the pools which hosts were added/removed.
 */
import { meshServiceOf, type MeshService } from '../../stats/istio/service.js';
import type { Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { HttpProtocolOptions } from '../../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import type { SecretManager } from '../../tls/secrets.js';
import { compileUpstreamTransport, type ConnectOptions, type UpstreamTransport } from '../../tls/upstream.js';
import { CircuitBreaker, type RoutingPriority } from '../circuit-breaker.js';
import { HealthChecker, Transition, type ProbeFactory } from '../health/health-checker.js';
import { GrpcProbe, HttpProbe, TcpProbe, type SocketFactory } from '../health/probes.js';
import { LeastRequestLb, RandomLb, RoundRobinLb } from '../lb/edf-lb.js';
import { MaglevLb, RingHashLb } from '../lb/hashing.js';
import type { LbContext, LbEnv, LoadBalancer } from '../lb/load-balancer.js';
import { OutlierDetector, type OutlierConfig } from '../outlier/detector.js';
import { systemClock, type Clock, type Timer } from './clock.js';
import { ConfigError } from '../../config-error.js';
import { compileSettings, parseAssignment, type ClusterSettings, type ConfigWarning, type DiscoveryType, type HostsSpec, type LbPolicyName, type UpstreamProtocol } from './compile.js';
import { DnsDiscovery, systemResolver, type DnsResolver } from './dns.js';
import { HealthFlag, Host, HostSet, addressKey, type HostInit } from './host.js';
import { defaultRandom, type RandomFn } from './random.js';
import { ClusterStats } from './stats.js';

export interface CompileOptions {
  /** Time source for every timer of the cluster (default: the system clock). */
  clock?: Clock;
  /** Uniform uint32 random numbers (default: a generator seeded from the OS). */
  random?: RandomFn;
  /** DNS resolver for STRICT_DNS / LOGICAL_DNS (default: node:dns with a getaddrinfo fallback). */
  resolver?: DnsResolver;
  /**
   * Opens health check connections (default: the cluster's transport, so checks of a TLS cluster go over TLS with
   * its context, as Envoy's do).
   */
  healthCheckSocket?: SocketFactory;
  /** TLS secrets for the cluster's transport sockets (without it only inline certificates resolve). */
  secrets?: SecretManager;
}

export type HostsChangedListener = (added: readonly Host[], removed: readonly Host[]) => void;

/**
 * A Cluster validated and compiled into what its runtime is built from: everything a NACK needs to know about is
 * checked here, so a runtime can be built from it later (on first use) without failing.
 */
export interface PreparedCluster {
  readonly settings: ClusterSettings;
  readonly transport: UpstreamTransport;
  readonly meshService: MeshService;
}

/** Validates and compiles a Cluster; throws ConfigError naming the cluster and the field (→ NACK). */
export function prepareCluster(config: Cluster, secrets: SecretManager | undefined): PreparedCluster {
  const transport = compileUpstreamTransport(config, secrets);
  return { settings: compileSettings(config, !transport.plaintext), transport, meshService: meshServiceOf(config) };
}

export class ClusterRuntime implements LbEnv {
  readonly name: string;
  /** The stats prefix: `cluster.<statName>.` (alt_stat_name when set). */
  readonly statName: string;
  readonly type: DiscoveryType;
  readonly lbPolicy: LbPolicyName;
  /** The EDS resource name (eds_cluster_config.service_name, else the cluster name). */
  readonly edsServiceName: string;
  readonly connectTimeoutMs: number;
  readonly perConnectionBufferLimitBytes: number;
  /** Upstream HTTP protocol (typed HttpProtocolOptions, or the deprecated cluster fields). */
  readonly protocol: UpstreamProtocol;
  /** The raw upstream HttpProtocolOptions (idle timeout, max requests per connection, HTTP/2 settings, ...). */
  readonly httpProtocolOptions: HttpProtocolOptions | undefined;
  /** How connections are opened: plaintext or TLS per host (transport_socket / transport_socket_matches). */
  readonly transport: UpstreamTransport;
  readonly outlierDetection: OutlierConfig | undefined;
  /** ORIGINAL_DST: where the destination comes from (the router reads the header when useHttpHeader). */
  readonly originalDst: ClusterSettings['originalDst'];
  /** Unsupported fields that were ignored (report them once). */
  readonly warnings: readonly ConfigWarning[];
  /** The service the cluster's `filter_metadata.istio` names (metrics labels, metadata exchange; stats/istio). */
  readonly meshService: MeshService;
  readonly stats = new ClusterStats();
  readonly clock: Clock;
  readonly random: RandomFn;
  readonly lb: LoadBalancer;
  /** Fraction of requests to drop (ClusterLoadAssignment policy drop_overloads); the router drops them. */
  dropOverload = 0;
  /** Per priority. Always at least one (possibly empty). */
  hostSets: HostSet[] = [new HostSet(0)];
  /** Resolves once the cluster is initialized (endpoints known, initial hosts health checked once). */
  readonly ready: Promise<void>;

  /** The compiled settings the runtime was built from. */
  readonly settings: ClusterSettings;
  private readonly hostMap = new Map<string, Host>();
  private localityWeights: Array<Map<string, number>> = [new Map()];
  private readonly breakers: Record<RoutingPriority, CircuitBreaker>;
  private readonly outlier: OutlierDetector | undefined;
  private readonly healthChecker: HealthChecker | undefined;
  private readonly dns: DnsDiscovery | undefined;
  private readonly listeners = new Set<HostsChangedListener>();
  private started = false;
  private closed = false;
  private cleanupTimer: Timer | undefined;
  // Initialization.
  private hostsKnown = false;
  private pendingInitialChecks: Set<Host> | undefined;
  private resolveReady!: () => void;
  private isReady = false;

  constructor(prepared: PreparedCluster, opts: CompileOptions = {}) {
    const { settings: s, transport } = prepared;
    this.transport = transport;
    this.settings = s;
    this.name = s.name;
    this.statName = s.statName;
    this.type = s.type;
    this.lbPolicy = s.lbPolicy;
    this.edsServiceName = s.edsServiceName;
    this.connectTimeoutMs = s.connectTimeoutMs;
    this.perConnectionBufferLimitBytes = s.perConnectionBufferLimitBytes;
    this.protocol = s.protocol;
    this.httpProtocolOptions = s.httpProtocolOptions;
    this.outlierDetection = s.outlier;
    this.originalDst = s.originalDst;
    this.warnings = s.warnings;
    this.meshService = prepared.meshService;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.random ?? defaultRandom();
    this.ready = new Promise((r) => (this.resolveReady = r));
    this.breakers = {
      default: new CircuitBreaker('default', s.thresholds.default, this.stats),
      high: new CircuitBreaker('high', s.thresholds.high, this.stats),
    };
    if (s.outlier) {
      this.outlier = new OutlierDetector(s.outlier, this.clock, this.random, this.stats.outlier, () => this.refresh());
    }
    const hc = s.healthCheck;
    if (hc) {
      // Plaintext clusters: the probes' own plain TCP; TLS clusters: the transport (ALPN as an HTTP pool's).
      const socket = opts.healthCheckSocket ?? (transport.plaintext ? undefined : transportSocketFactory(transport, hc.kind === 'http' ? (hc.http.http2 ? 'h2' : 'http/1.1') : undefined));
      const factory: ProbeFactory =
        hc.kind === 'http'
          ? (sess) => new HttpProbe(sess, hc.http, socket)
          : hc.kind === 'tcp'
            ? (sess) => new TcpProbe(sess, hc.tcp, socket)
            : (sess) => new GrpcProbe(sess, hc.grpc);
      this.healthChecker = new HealthChecker(hc.settings, factory, {
        clusterName: s.name,
        clock: this.clock,
        random: this.random,
        stats: this.stats.healthCheck,
        hasTraffic: () => this.stats.upstream_cx_total > 0 || this.stats.upstream_cx_tx_bytes_total > 0 || this.stats.upstream_cx_rx_bytes_total > 0,
        onResult: (host, transition, healthy) => this.onHealthCheckResult(host, transition, healthy),
      });
    }
    this.lb = this.createLb();
    if (s.type === 'STRICT_DNS' || s.type === 'LOGICAL_DNS') {
      const spec = s.staticHosts!;
      this.dns = new DnsDiscovery(
        s.dnsTargets,
        s.dns,
        opts.resolver ?? systemResolver,
        this.clock,
        this.random,
        s.type === 'LOGICAL_DNS',
        (hosts) => this.applyHosts({ ...spec, hosts }),
        () => this.onHostsKnown(),
      );
    }
    if (s.type === 'STATIC') this.applyHosts(s.staticHosts!);
    this.refresh();
    if (s.type === 'STATIC' || s.type === 'ORIGINAL_DST') this.onHostsKnown();
  }

  private createLb(): LoadBalancer {
    const s = this.settings;
    switch (s.lbPolicy) {
      case 'ROUND_ROBIN':
        return new RoundRobinLb(this, s.common, s.slowStart);
      case 'LEAST_REQUEST':
        return new LeastRequestLb(this, s.common, s.slowStart, s.leastRequest);
      case 'RANDOM':
        return new RandomLb(this, s.common, undefined);
      case 'RING_HASH':
        return new RingHashLb(this, s.common, s.ringHash);
      case 'MAGLEV':
        return new MaglevLb(this, s.common, s.maglev);
      case 'CLUSTER_PROVIDED':
        return new OriginalDstLb(this);
    }
  }

  /** The circuit breaker of a routing priority. */
  circuitBreaker(priority: RoutingPriority = 'default'): CircuitBreaker {
    return this.breakers[priority];
  }

  /** Every host, in priority order. */
  hosts(): Host[] {
    return this.hostSets.flatMap((hs) => hs.hosts);
  }

  /** A host by `address:port` (Envoy's format, `[v6]:port` for IPv6). */
  host(key: string): Host | undefined {
    return this.hostMap.get(key);
  }

  /** Outlier detector details for the admin output (success-rate averages and thresholds). */
  get outlierDetector(): OutlierDetector | undefined {
    return this.outlier;
  }

  onHostsChanged(cb: HostsChangedListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /**
   * Applies a ClusterLoadAssignment (EDS clusters; STATIC clusters accept one too). Throws ConfigError (kind
   * `cluster_load_assignment`) when it cannot be applied; nothing changes then.
   */
  updateHosts(cla: ClusterLoadAssignment): void {
    if (this.type !== 'EDS' && this.type !== 'STATIC') {
      throw new ConfigError(this.name, 'endpoints', `cluster type ${this.type} does not take endpoint updates`, 'cluster_load_assignment');
    }
    this.stats.update_attempt++;
    let spec: HostsSpec;
    try {
      spec = parseAssignment(cla, cla.clusterName || this.name, 'ip', '', 'cluster_load_assignment');
    } catch (e) {
      this.stats.update_failure++;
      throw e;
    }
    if (spec.hosts.length === 0) this.stats.update_empty++;
    this.applyHosts(spec);
    this.stats.update_success++;
    this.onHostsKnown();
  }

  /** Starts health checks, outlier detection, DNS resolution and original-destination cleanup. */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    this.outlier?.start();
    this.healthChecker?.start(this.hostMap.values());
    this.dns?.start();
    this.maybeReady();
    if (this.originalDst) this.armCleanup();
  }

  /** Stops every timer and connection of the cluster (a removed or replaced cluster). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.outlier?.stop();
    this.healthChecker?.stop();
    this.dns?.stop();
    this.clock.clearTimeout(this.cleanupTimer);
    this.markReady();
  }

  // -------------------------------------------------------------------------------------------------------------

  private onHostsKnown(): void {
    this.hostsKnown = true;
    this.maybeReady();
  }

  /** Ready once endpoints are known and, with health checks, every host present then was checked once. */
  private maybeReady(): void {
    if (this.isReady || !this.hostsKnown) return;
    if (this.healthChecker) {
      if (!this.started) return;
      this.pendingInitialChecks ??= new Set([...this.hostMap.values()].filter((h) => this.healthChecker!.has(h)));
      if (this.pendingInitialChecks.size > 0) return;
    }
    this.markReady();
  }

  private markReady(): void {
    if (this.isReady) return;
    this.isReady = true;
    this.resolveReady();
  }

  private onHealthCheckResult(host: Host, transition: Transition, healthy: boolean): void {
    if (healthy) this.outlier?.onHealthCheckSuccess(host);
    if (transition === Transition.Changed) {
      if (host.has(HealthFlag.PENDING_DYNAMIC_REMOVAL) && host.has(HealthFlag.FAILED_ACTIVE_HC)) this.removePendingHost(host);
      else this.refresh();
    }
    const pending = this.pendingInitialChecks;
    if (pending && pending.delete(host) && pending.size === 0) this.markReady();
  }

  /** A host kept only because it passed health checks failed one: remove it now. */
  private removePendingHost(host: Host): void {
    this.hostMap.delete(host.key);
    host.removed = true;
    for (const hs of this.hostSets) hs.hosts = hs.hosts.filter((h) => h !== host);
    this.outlier?.removeHost(host);
    this.healthChecker?.removeHost(host);
    this.stats.membership_change++;
    this.refresh();
    for (const l of this.listeners) l([], [host]);
  }

  /** Replaces the cluster's hosts with `spec` (identity by address:port). */
  private applyHosts(spec: HostsSpec): void {
    const s = this.settings;
    const hc = this.healthChecker;
    const seen = new Set<string>();
    const added: Host[] = [];
    const removed: Host[] = [];
    const byPriority: Host[][] = [];
    const put = (h: Host) => (byPriority[h.priority] ??= []).push(h);
    for (const init of spec.hosts) {
      const key = addressKey(init.address, init.port);
      if (seen.has(key)) continue;
      seen.add(key);
      let h = this.type === 'LOGICAL_DNS' ? [...this.hostMap.values()][0] : this.hostMap.get(key);
      if (h) {
        h.clear(HealthFlag.PENDING_DYNAMIC_REMOVAL);
        if (this.type === 'LOGICAL_DNS' && h.key !== key) {
          // The logical host follows DNS: same Host, new address.
          this.hostMap.delete(h.key);
          h.address = init.address;
          (h as { key: string }).key = key;
          this.hostMap.set(key, h);
        }
        h.update(init);
      } else {
        h = new Host(init);
        if (hc && !h.disableActiveHealthCheck) {
          h.set(HealthFlag.FAILED_ACTIVE_HC);
          if (s.ignoreNewHostsUntilFirstHc) h.set(HealthFlag.PENDING_ACTIVE_HC);
        }
        this.hostMap.set(key, h);
        added.push(h);
      }
      put(h);
    }
    for (const [key, h] of this.hostMap) {
      if (seen.has(key)) continue;
      const keep = hc !== undefined && !s.ignoreHealthOnHostRemoval && !h.has(HealthFlag.FAILED_ACTIVE_HC | HealthFlag.FAILED_EDS_HEALTH) && !h.disableActiveHealthCheck;
      if (keep) {
        h.set(HealthFlag.PENDING_DYNAMIC_REMOVAL);
        put(h);
      } else {
        this.hostMap.delete(key);
        h.removed = true;
        removed.push(h);
      }
    }
    const n = Math.max(1, byPriority.length, spec.localityWeights.length);
    this.hostSets = Array.from({ length: n }, (_, p) => {
      const hs = new HostSet(p);
      hs.hosts = byPriority[p] ?? [];
      hs.overprovisioningFactor = spec.overprovisioningFactor;
      hs.weightedPriorityHealth = spec.weightedPriorityHealth;
      return hs;
    });
    this.localityWeights = Array.from({ length: n }, (_, p) => spec.localityWeights[p] ?? new Map());
    this.dropOverload = spec.dropOverload;
    for (const h of added) {
      this.outlier?.addHost(h);
      hc?.addHost(h);
    }
    for (const h of removed) {
      this.outlier?.removeHost(h);
      hc?.removeHost(h);
    }
    if (added.length || removed.length) this.stats.membership_change++;
    else this.stats.update_no_rebuild++;
    this.refresh();
    if (added.length || removed.length) for (const l of this.listeners) l(added, removed);
  }

  /** Recomputes partitions, membership stats and the load balancer after any host or health change. */
  refresh(): void {
    let total = 0;
    let healthy = 0;
    let degraded = 0;
    let excluded = 0;
    let maxWeight = 1;
    this.hostSets.forEach((hs, p) => {
      hs.partition(this.localityWeights[p] ?? new Map());
      total += hs.hosts.length;
      healthy += hs.healthy.length;
      degraded += hs.degraded.length;
      excluded += hs.excluded.length;
      for (const h of hs.hosts) if (h.weight > maxWeight) maxWeight = h.weight;
    });
    const st = this.stats;
    st.membership_total = total;
    st.membership_healthy = healthy;
    st.membership_degraded = degraded;
    st.membership_excluded = excluded;
    st.max_host_weight = maxWeight;
    this.lb.refresh();
  }

  // ORIGINAL_DST ------------------------------------------------------------------------------------------------

  /** The host for an original destination `ip:port`, created on first use. */
  originalDstHost(dest: string): Host | undefined {
    const parsed = parseHostPort(dest);
    if (!parsed) return undefined;
    const port = this.originalDst?.upstreamPortOverride ?? parsed.port;
    const key = addressKey(parsed.address, port);
    let h = this.hostMap.get(key);
    if (!h) {
      const init: HostInit = { address: parsed.address, port };
      h = new Host(init);
      this.hostMap.set(key, h);
      this.hostSets[0]!.hosts = [...this.hostSets[0]!.hosts, h];
      this.outlier?.addHost(h);
      this.stats.membership_change++;
      this.refresh();
      for (const l of this.listeners) l([h], []);
    }
    h.used = true;
    return h;
  }

  private armCleanup(): void {
    if (this.closed || !this.originalDst) return;
    this.cleanupTimer = this.clock.setTimeout(() => {
      this.cleanupOriginalDst();
      this.armCleanup();
    }, this.originalDst.cleanupIntervalMs);
  }

  /** Removes original-destination hosts not used since the previous sweep (Envoy's cleanup_interval). */
  cleanupOriginalDst(): void {
    const removed: Host[] = [];
    for (const [key, h] of this.hostMap) {
      if (h.used) h.used = false;
      else {
        this.hostMap.delete(key);
        h.removed = true;
        removed.push(h);
        this.outlier?.removeHost(h);
      }
    }
    if (removed.length === 0) return;
    this.hostSets[0]!.hosts = this.hostSets[0]!.hosts.filter((h) => !h.removed);
    this.stats.membership_change++;
    this.refresh();
    for (const l of this.listeners) l([], removed);
  }
}

function parseHostPort(s: string): { address: string; port: number } | undefined {
  let address: string;
  let portStr: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0 || s[end + 1] !== ':') return undefined;
    address = s.slice(1, end);
    portStr = s.slice(end + 2);
  } else {
    const i = s.lastIndexOf(':');
    if (i < 0) return undefined;
    address = s.slice(0, i);
    portStr = s.slice(i + 1);
  }
  const port = Number(portStr);
  if (!address || !Number.isInteger(port) || port < 1 || port > 65535) return undefined;
  return { address, port };
}

/** CLUSTER_PROVIDED for ORIGINAL_DST: the host is the request's original destination. */
class OriginalDstLb implements LoadBalancer {
  constructor(private readonly cluster: ClusterRuntime) {}
  choose(ctx?: LbContext): Host | undefined {
    const dest = ctx?.originalDst;
    return dest ? this.cluster.originalDstHost(dest) : undefined;
  }
  refresh(): void {}
}

/**
 * Builds the runtime of a Cluster. Throws ConfigError naming the cluster and the field when the cluster is invalid
 * or uses something not supported, so the proxy NACKs it.
 */
export function compileCluster(c: Cluster, opts: CompileOptions = {}): ClusterRuntime {
  return new ClusterRuntime(prepareCluster(c, opts.secrets), opts);
}

/** Health check connections through a cluster's transport (TLS per host), to the host's health check address. */
function transportSocketFactory(transport: UpstreamTransport, alpnFallback: string | undefined): SocketFactory {
  const opts: ConnectOptions = alpnFallback === undefined ? {} : { alpnFallback };
  return (address, port, host) => transport.connect(host, { ...opts, address, port }).socket;
}
