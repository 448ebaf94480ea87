/**
 * `/clusters`: upstream cluster and host status, in Envoy's text format (source/server/admin/clusters_*.cc)
 *
 *   outbound|9080||reviews.default.svc.cluster.local::observability_name::outbound|9080||reviews.default.svc.cluster.local
 *   <cluster>::outlier::success_rate_average::-1                 (clusters with outlier detection)
 *   <cluster>::default_priority::max_connections::1024           (and max_pending_requests, max_requests, max_retries; high_priority too)
 *   <cluster>::added_via_api::true
 *   <cluster>::eds_service_name::<name>                           (when set)
 *   <cluster>::10.0.0.1:9080::cx_active::2                        (host stats, sorted by name)
 *   <cluster>::10.0.0.1:9080::hostname::
 *   <cluster>::10.0.0.1:9080::health_flags::/failed_outlier_check (or healthy)
 *   <cluster>::10.0.0.1:9080::weight::1, region, zone, sub_zone, canary, priority, success_rate, local_origin_success_rate
 *
 * or, with `?format=json`, as an envoy.admin.v3.Clusters message in proto3 JSON (proto field names).
 *
 * The proxy supplies the data through `ClusterStatusView`s (one per active cluster); the handler does not know
 * the upstream implementation. Clusters are listed sorted by name, hosts in the order given.
 */
import { create, toJson, type MessageInitShape } from '@bufbuild/protobuf';
import { ClustersSchema, type Clusters } from '../../xds/gen/envoy/admin/v3/clusters_pb.js';
import { SimpleMetric_Type } from '../../xds/gen/envoy/admin/v3/metrics_pb.js';
import { RoutingPriority } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { HealthStatus } from '../../xds/gen/envoy/config/core/v3/health_check_pb.js';
import { formatG, formatShortest } from '../stats/format.js';

/** Envoy's host health flags (Upstream::Host::HealthFlag); absent = false. */
export interface HostHealthView {
  failedActiveHc?: boolean;
  failedOutlierCheck?: boolean;
  failedEdsHealth?: boolean;
  degradedActiveHc?: boolean;
  degradedEdsHealth?: boolean;
  pendingDynamicRemoval?: boolean;
  pendingActiveHc?: boolean;
  excludedViaImmediateHcFail?: boolean;
  activeHcTimeout?: boolean;
  edsStatusDraining?: boolean;
}

export interface HostStatView {
  name: string;
  value: number;
  kind: 'counter' | 'gauge';
}

export interface HostStatusView {
  /** IP address (or a pipe path when `port` is 0 and the address is not an IP). */
  address: string;
  port: number;
  hostname?: string;
  /** Per-host stats: cx_total, cx_active, rq_total, rq_active, rq_error, rq_success, rq_timeout, cx_connect_fail... */
  stats?: readonly HostStatView[];
  health?: HostHealthView;
  weight: number;
  priority: number;
  locality?: { region?: string; zone?: string; subZone?: string };
  canary?: boolean;
  /** Outlier detection success rate in percent; negative or absent = not computed (Envoy prints -1). */
  successRate?: number;
  localOriginSuccessRate?: number;
}

export interface CircuitBreakerView {
  maxConnections: number;
  maxPendingRequests: number;
  maxRequests: number;
  maxRetries: number;
}

export interface ClusterStatusView {
  name: string;
  /** alt_stat_name, or the name. */
  observabilityName?: string;
  edsServiceName?: string;
  addedViaApi: boolean;
  circuitBreakers: { default: CircuitBreakerView; high: CircuitBreakerView };
  /** Present when the cluster has outlier detection; averages and thresholds are -1 until computed. */
  outlier?: {
    successRateAverage: number;
    successRateEjectionThreshold: number;
    localOriginSuccessRateAverage: number;
    localOriginSuccessRateEjectionThreshold: number;
  };
  hosts: readonly HostStatusView[];
}

const FLAGS: ReadonlyArray<[keyof HostHealthView, string]> = [
  ['failedActiveHc', '/failed_active_hc'],
  ['failedOutlierCheck', '/failed_outlier_check'],
  ['failedEdsHealth', '/failed_eds_health'],
  ['degradedActiveHc', '/degraded_active_hc'],
  ['degradedEdsHealth', '/degraded_eds_health'],
  ['pendingDynamicRemoval', '/pending_dynamic_removal'],
  ['pendingActiveHc', '/pending_active_hc'],
  ['excludedViaImmediateHcFail', '/excluded_via_immediate_hc_fail'],
  ['activeHcTimeout', '/active_hc_timeout'],
  ['edsStatusDraining', '/eds_status_draining'],
];

/** HostUtility::healthFlagsToString: `healthy`, or each set flag as `/name` in Envoy's order. */
export function healthFlagsToString(h: HostHealthView | undefined): string {
  let s = '';
  if (h) for (const [k, text] of FLAGS) if (h[k]) s += text;
  return s === '' ? 'healthy' : s;
}

/** Envoy's Address::asString for an IP host: `1.2.3.4:80`, `[::1]:80`. */
export function hostAddressString(h: HostStatusView): string {
  if (h.port === 0 && !/^[\d.:a-fA-F]+$/.test(h.address)) return h.address;
  return h.address.includes(':') ? `[${h.address}]:${h.port}` : `${h.address}:${h.port}`;
}

function sorted(clusters: readonly ClusterStatusView[]): ClusterStatusView[] {
  return [...clusters].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

function rate(x: number | undefined): number {
  return x === undefined || x < 0 ? -1 : x;
}

export function renderClustersText(clusters: readonly ClusterStatusView[]): string {
  const out: string[] = [];
  for (const c of sorted(clusters)) {
    const n = c.name;
    out.push(`${n}::observability_name::${c.observabilityName || n}\n`);
    if (c.outlier) {
      out.push(`${n}::outlier::success_rate_average::${formatG(c.outlier.successRateAverage)}\n`);
      out.push(`${n}::outlier::success_rate_ejection_threshold::${formatG(c.outlier.successRateEjectionThreshold)}\n`);
      out.push(`${n}::outlier::local_origin_success_rate_average::${formatG(c.outlier.localOriginSuccessRateAverage)}\n`);
      out.push(`${n}::outlier::local_origin_success_rate_ejection_threshold::${formatG(c.outlier.localOriginSuccessRateEjectionThreshold)}\n`);
    }
    for (const [prio, cb] of [['default', c.circuitBreakers.default], ['high', c.circuitBreakers.high]] as const) {
      out.push(`${n}::${prio}_priority::max_connections::${cb.maxConnections}\n`);
      out.push(`${n}::${prio}_priority::max_pending_requests::${cb.maxPendingRequests}\n`);
      out.push(`${n}::${prio}_priority::max_requests::${cb.maxRequests}\n`);
      out.push(`${n}::${prio}_priority::max_retries::${cb.maxRetries}\n`);
    }
    out.push(`${n}::added_via_api::${c.addedViaApi}\n`);
    if (c.edsServiceName) out.push(`${n}::eds_service_name::${c.edsServiceName}\n`);
    for (const h of c.hosts) {
      const a = `${n}::${hostAddressString(h)}`;
      const stats = [...(h.stats ?? [])].sort((x, y) => (x.name < y.name ? -1 : x.name > y.name ? 1 : 0));
      for (const s of stats) out.push(`${a}::${s.name}::${s.value}\n`);
      out.push(`${a}::hostname::${h.hostname ?? ''}\n`);
      out.push(`${a}::health_flags::${healthFlagsToString(h.health)}\n`);
      out.push(`${a}::weight::${h.weight}\n`);
      out.push(`${a}::region::${h.locality?.region ?? ''}\n`);
      out.push(`${a}::zone::${h.locality?.zone ?? ''}\n`);
      out.push(`${a}::sub_zone::${h.locality?.subZone ?? ''}\n`);
      out.push(`${a}::canary::${h.canary === true}\n`);
      out.push(`${a}::priority::${h.priority}\n`);
      out.push(`${a}::success_rate::${formatShortest(rate(h.successRate))}\n`);
      out.push(`${a}::local_origin_success_rate::${formatShortest(rate(h.localOriginSuccessRate))}\n`);
    }
  }
  return out.join('');
}

function edsHealth(h: HostHealthView | undefined): HealthStatus {
  if (h?.failedEdsHealth) return HealthStatus.UNHEALTHY;
  if (h?.degradedEdsHealth) return HealthStatus.DEGRADED;
  if (h?.edsStatusDraining) return HealthStatus.DRAINING;
  return HealthStatus.HEALTHY;
}

type ClustersInit = MessageInitShape<typeof ClustersSchema>;
type ClusterStatusInit = NonNullable<ClustersInit['clusterStatuses']>[number];
type HostStatusInit = NonNullable<ClusterStatusInit['hostStatuses']>[number];

function thresholds(priority: RoutingPriority, cb: CircuitBreakerView) {
  return {
    priority,
    maxConnections: cb.maxConnections,
    maxPendingRequests: cb.maxPendingRequests,
    maxRequests: cb.maxRequests,
    maxRetries: cb.maxRetries,
  };
}

function hostStatus(h: HostStatusView): HostStatusInit {
  const health = h.health ?? {};
  return {
    address: { address: { case: 'socketAddress', value: { address: h.address, portSpecifier: { case: 'portValue', value: h.port } } } },
    hostname: h.hostname ?? '',
    stats: (h.stats ?? []).map((s) => ({
      name: s.name,
      value: BigInt(Math.max(0, Math.trunc(s.value))),
      type: s.kind === 'gauge' ? SimpleMetric_Type.GAUGE : SimpleMetric_Type.COUNTER,
    })),
    healthStatus: {
      failedActiveHealthCheck: health.failedActiveHc === true,
      failedOutlierCheck: health.failedOutlierCheck === true,
      failedActiveDegradedCheck: health.degradedActiveHc === true,
      pendingDynamicRemoval: health.pendingDynamicRemoval === true,
      pendingActiveHc: health.pendingActiveHc === true,
      excludedViaImmediateHcFail: health.excludedViaImmediateHcFail === true,
      activeHcTimeout: health.activeHcTimeout === true,
      edsHealthStatus: edsHealth(h.health),
    },
    weight: h.weight,
    priority: h.priority,
    ...(h.locality ? { locality: { region: h.locality.region ?? '', zone: h.locality.zone ?? '', subZone: h.locality.subZone ?? '' } } : {}),
    ...(rate(h.successRate) >= 0 ? { successRate: { value: h.successRate! } } : {}),
    ...(rate(h.localOriginSuccessRate) >= 0 ? { localOriginSuccessRate: { value: h.localOriginSuccessRate! } } : {}),
  };
}

/** The envoy.admin.v3.Clusters message of the clusters. */
export function clustersMessage(clusters: readonly ClusterStatusView[]): Clusters {
  return create(ClustersSchema, {
    clusterStatuses: sorted(clusters).map(
      (c): ClusterStatusInit => ({
        name: c.name,
        addedViaApi: c.addedViaApi,
        observabilityName: c.observabilityName || c.name,
        edsServiceName: c.edsServiceName ?? '',
        circuitBreakers: { thresholds: [thresholds(RoutingPriority.DEFAULT, c.circuitBreakers.default), thresholds(RoutingPriority.HIGH, c.circuitBreakers.high)] },
        hostStatuses: c.hosts.map(hostStatus),
        ...(c.outlier && c.outlier.successRateEjectionThreshold > 0 ? { successRateEjectionThreshold: { value: c.outlier.successRateEjectionThreshold } } : {}),
        ...(c.outlier && c.outlier.localOriginSuccessRateEjectionThreshold > 0
          ? { localOriginSuccessRateEjectionThreshold: { value: c.outlier.localOriginSuccessRateEjectionThreshold } }
          : {}),
      }),
    ),
  });
}

export function renderClustersJson(clusters: readonly ClusterStatusView[]): string {
  // envoy.admin.v3.Clusters holds no Any: proto3 JSON without the type registry (xds/json.ts is not loaded for it).
  return JSON.stringify(toJson(ClustersSchema, clustersMessage(clusters), { useProtoFieldName: true }), null, 2) + '\n';
}
