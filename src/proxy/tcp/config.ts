/**
 * The tcp_proxy network filter's configuration (envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy), compiled
 * once per listener update; every connection of the listener then runs a TcpProxySession (session.ts) with it.
 *
 *   const cfg = compileTcpProxy(proto, { listener, field, cluster, warn });   // throws ConfigError → NACK
 *   const name = cfg.pickCluster();            // per connection: `cluster`, or weighted_clusters by weight
 *   const runtime = cfg.cluster(name);         // the cluster in force now (undefined → flag NC, closed)
 *
 * Semantics (Envoy's tcp_proxy.cc / tcp_proxy.proto):
 * - `cluster`, or `weighted_clusters`: one cluster per connection, chosen with probability weight / total weight
 *   (Envoy's WeightedClusterUtil::pickCluster: a uniform number in [0, total) falls into the running sums), once
 *   per connection — connect retries stay in that cluster;
 * - `idle_timeout`: 1 h when unset, 0 disables; `max_connect_attempts` (default 1, at least 1);
 *   `max_downstream_connection_duration` (at least 1 ms): the connection is closed when it is reached;
 * - `hash_policy` with `source_ip` gives RING_HASH / MAGLEV clusters the xxHash64 of the client's address, as
 *   Envoy's SourceIpHashMethod; without it hash-based load balancers pick randomly;
 * - `access_log`: written when a session ends (accesslog/access-log.ts, accesslog/tcp-record.ts);
 *   `access_log_options` (periodic or on-connect logs) is accepted without effect (reported once through `warn`);
 *   `downstream_idle_timeout` / `upstream_idle_timeout` are not implemented by Envoy either and are ignored the
 *   same way;
 * - `tunneling_config`, `on_demand`, `metadata_match` (also per weighted cluster) and `filter_state` hash policies
 *   change where connections go and are not implemented: ConfigErrors naming the field.
 * Validation follows the proto's rules: stat_prefix non-empty, a cluster specifier, at least one weighted cluster,
 * names non-empty, weights ≥ 1.
 */
import type { TcpProxy } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { ConfigError } from '../config-error.js';
import type { ClusterRuntime } from '../upstream/cluster/cluster.js';
import type { TcpProxySession } from './session.js';
import { TcpProxyStats } from './stats.js';
import type { ListenerStats } from '../stats/request-stats.js';
import { compileAccessLogs, type AccessLogs } from '../accesslog/access-log.js';

/** Envoy's default tcp_proxy idle timeout: 1 hour. */
export const DEFAULT_TCP_IDLE_TIMEOUT_MS = 3_600_000;

export interface TcpProxyContext {
  /** The listener's name and the field path of this filter inside it (for error messages). */
  listener: string;
  field: string;
  /** The cluster of that name in force now, if the proxy has it (looked up per connection). */
  cluster(name: string): ClusterRuntime | undefined;
  /** Warnings for fields accepted without effect (reported once by the caller). */
  warn(message: string): void;
  /** Uniform [0, 1) numbers for the weighted cluster choice (default Math.random). */
  random?: () => number;
  /** The stats of a stat_prefix (shared across listener updates); default: a new TcpProxyStats. */
  stats?(statPrefix: string): TcpProxyStats;
  /** Called once per session when both its connections are closed (where access logs hook in). */
  onSessionClose?(session: TcpProxySession): void;
  /** The listener's `listener.<address>.downstream_cx_*` stats (absent: not kept). */
  listenerStats?(): ListenerStats;
}

function durationMs(d: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}

export class TcpProxyConfig {
  /** `tcp.<stat_prefix>.` is where its stats go. */
  readonly statPrefix: string;
  /** Cluster names and cumulative weights (one entry with weight 1 for a single `cluster`). */
  readonly clusterNames: readonly string[];
  private readonly cumulative: Uint32Array;
  readonly totalWeight: number;
  /** 0 = no idle timeout. */
  readonly idleTimeoutMs: number;
  readonly maxConnectAttempts: number;
  /** 0 = no maximum. */
  readonly maxDownstreamConnectionDurationMs: number;
  /** hash_policy source_ip. */
  readonly hashSourceIp: boolean;
  readonly stats: TcpProxyStats;
  readonly cluster: (name: string) => ClusterRuntime | undefined;
  readonly onSessionClose: ((session: TcpProxySession) => void) | undefined;
  /** The listener's connection counts (null: not kept). */
  readonly listenerStats: ListenerStats | null;
  /** access_log (null: none). */
  readonly accessLogs: AccessLogs | null;
  private readonly random: () => number;

  constructor(init: {
    statPrefix: string;
    clusters: ReadonlyArray<{ name: string; weight: number }>;
    idleTimeoutMs: number;
    maxConnectAttempts: number;
    maxDownstreamConnectionDurationMs: number;
    hashSourceIp: boolean;
    stats: TcpProxyStats;
    cluster: (name: string) => ClusterRuntime | undefined;
    random?: () => number;
    onSessionClose?: (session: TcpProxySession) => void;
    listenerStats?: ListenerStats | null;
    accessLogs?: AccessLogs | null;
  }) {
    this.statPrefix = init.statPrefix;
    this.clusterNames = init.clusters.map((c) => c.name);
    this.cumulative = new Uint32Array(init.clusters.length);
    let sum = 0;
    init.clusters.forEach((c, i) => (this.cumulative[i] = sum += c.weight));
    this.totalWeight = sum;
    this.idleTimeoutMs = init.idleTimeoutMs;
    this.maxConnectAttempts = init.maxConnectAttempts;
    this.maxDownstreamConnectionDurationMs = init.maxDownstreamConnectionDurationMs;
    this.hashSourceIp = init.hashSourceIp;
    this.stats = init.stats;
    this.cluster = init.cluster;
    this.random = init.random ?? Math.random;
    this.onSessionClose = init.onSessionClose;
    this.listenerStats = init.listenerStats ?? null;
    this.accessLogs = init.accessLogs ?? null;
  }

  /** The cluster for a new connection. */
  pickCluster(): string {
    const names = this.clusterNames;
    if (names.length === 1) return names[0]!;
    const r = Math.floor(this.random() * this.totalWeight);
    const cum = this.cumulative;
    for (let i = 0; i < cum.length; i++) if (r < cum[i]!) return names[i]!;
    return names[names.length - 1]!;
  }
}

export function compileTcpProxy(p: TcpProxy, ctx: TcpProxyContext): TcpProxyConfig {
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(ctx.listener, `${ctx.field}.${field}`, detail, 'listener');
  };
  const warn = (field: string, what: string) => ctx.warn(`listener ${JSON.stringify(ctx.listener)}: ${ctx.field}.${field}: ${what}`);
  if (p.statPrefix === '') fail('stat_prefix', 'must not be empty');
  let clusters: Array<{ name: string; weight: number }>;
  const spec = p.clusterSpecifier;
  if (spec.case === 'cluster') {
    if (spec.value === '') fail('cluster', 'must not be empty');
    clusters = [{ name: spec.value, weight: 1 }];
  } else if (spec.case === 'weightedClusters') {
    const list = spec.value.clusters;
    if (list.length === 0) fail('weighted_clusters.clusters', 'needs at least one cluster');
    clusters = list.map((c, i) => {
      if (c.name === '') fail(`weighted_clusters.clusters[${i}].name`, 'must not be empty');
      if (c.weight < 1) fail(`weighted_clusters.clusters[${i}].weight`, `must be at least 1 (got ${c.weight})`);
      if (c.metadataMatch) fail(`weighted_clusters.clusters[${i}].metadata_match`, 'subset load balancing is not supported');
      return { name: c.name, weight: c.weight };
    });
    const total = clusters.reduce((s, c) => s + c.weight, 0);
    if (total > 0xffffffff) fail('weighted_clusters.clusters', `the sum of the weights (${total}) exceeds 2^32-1`);
  } else {
    return fail('cluster_specifier', 'one of cluster or weighted_clusters is required');
  }
  if (p.tunnelingConfig) fail('tunneling_config', 'tunneling TCP over HTTP is not supported');
  if (p.onDemand) fail('on_demand', 'on-demand cluster discovery is not supported');
  if (p.metadataMatch) fail('metadata_match', 'subset load balancing is not supported');
  if (p.hashPolicy.length > 1) fail('hash_policy', `at most one hash policy is allowed (got ${p.hashPolicy.length})`);
  let hashSourceIp = false;
  const hp = p.hashPolicy[0];
  if (hp !== undefined) {
    if (hp.policySpecifier.case === 'sourceIp') hashSourceIp = true;
    else fail('hash_policy[0]', hp.policySpecifier.case ? `${hp.policySpecifier.case} hashing is not supported (only source_ip)` : 'a policy is required');
  }
  const idle = durationMs(p.idleTimeout);
  if (idle !== undefined && idle < 0) fail('idle_timeout', 'must not be negative');
  let maxDuration = 0;
  if (p.maxDownstreamConnectionDuration) {
    maxDuration = durationMs(p.maxDownstreamConnectionDuration)!;
    if (maxDuration < 1) fail('max_downstream_connection_duration', 'must be at least 1ms');
  }
  const attempts = p.maxConnectAttempts ?? 1;
  if (attempts < 1) fail('max_connect_attempts', 'must be at least 1');
  const accessLogs = compileAccessLogs(p.accessLog, { listener: ctx.listener, field: `${ctx.field}.access_log` });
  if (p.accessLogOptions || p.accessLogFlushInterval || p.flushAccessLogOnConnected) warn('access_log_options', 'ignored (access logs are written when a session ends)');
  if (p.downstreamIdleTimeout || p.upstreamIdleTimeout) warn('downstream_idle_timeout', 'not implemented (as in Envoy); idle_timeout applies');
  return new TcpProxyConfig({
    statPrefix: p.statPrefix,
    clusters,
    idleTimeoutMs: idle ?? DEFAULT_TCP_IDLE_TIMEOUT_MS,
    maxConnectAttempts: attempts,
    maxDownstreamConnectionDurationMs: maxDuration,
    hashSourceIp,
    stats: ctx.stats?.(p.statPrefix) ?? new TcpProxyStats(),
    cluster: ctx.cluster,
    random: ctx.random,
    onSessionClose: ctx.onSessionClose,
    listenerStats: ctx.listenerStats?.() ?? null,
    accessLogs,
  });
}
