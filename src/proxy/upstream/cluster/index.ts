/**
 * The upstream host-selection API in one import:
 *
 *   import { compileCluster, ConfigError } from '../upstream/cluster/index.js';
 *   const cluster = compileCluster(clusterProto, opts);   // ClusterRuntime; ConfigError → NACK
 *   cluster.updateHosts(cla); cluster.start(); await cluster.ready;
 *   const host = cluster.lb.choose({ hash, previousHosts, attempt });
 *   cluster.circuitBreaker('default').tryAcquire('pending');
 *   host.outlier.putResult('5xx', 503);
 *
 * See cluster.ts (ClusterRuntime), host.ts (Host, health flags), lb/load-balancer.ts (LbContext, priorities,
 * panic), circuit-breaker.ts, outlier/detector.ts, health/health-checker.ts and stats.ts.
 */
export { ClusterRuntime, compileCluster, prepareCluster, type CompileOptions, type HostsChangedListener, type PreparedCluster } from './cluster.js';
export { IdleCluster, type IdleClusterContext } from './idle.js';
export type { ConfigWarning, DiscoveryType, LbPolicyName, UpstreamProtocol } from './compile.js';
export { ConfigError } from '../../config-error.js';
export { ManualClock, systemClock, type Clock, type Timer } from './clock.js';
export { seededRandom, defaultRandom, type RandomFn } from './random.js';
export { systemResolver, type DnsResolver, type DnsAnswer, type DnsFamily } from './dns.js';
export { Host, HostSet, HealthFlag, NO_OUTLIER, type HostOutlier, type OutlierResult, type Locality } from './host.js';
export { ClusterStats, HostStats, GAUGES, type StatKind, type StatVisitor } from './stats.js';
export { CircuitBreaker, type ResourceKind, type RoutingPriority, type Thresholds } from '../circuit-breaker.js';
export type { LbContext, LoadBalancer } from '../lb/load-balancer.js';
export { xxhash64, xxhash64Bytes, xxhash64String, hashResult, toBigInt, toHex64, mod64 } from '../lb/xxhash64.js';
export type { SocketFactory } from '../health/probes.js';
