// /clusters (src/proxy/admin/clusters.ts) over a real socket: Envoy's text lines and the envoy.admin.v3.Clusters
// JSON, for cluster views built from the Cluster / ClusterLoadAssignment messages the control plane translates.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { registry } from '../../src/xds/json.js';
import { ClustersSchema } from '../../src/xds/gen/envoy/admin/v3/clusters_pb.js';
import type { Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { RoutingPriority } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { HealthStatus } from '../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import type { ClusterLoadAssignment } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { adminGet } from '../helpers/admin-http.js';
import { translateYaml } from '../helpers/translate.js';
import { healthFlagsToString, hostAddressString, startAdmin, type AdminServer, type CircuitBreakerView, type ClusterStatusView } from '../../src/proxy/admin/index.js';

const CONFIG = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: shop}
spec: {address: 10.1.0.1, labels: {app: reviews}, locality: us-east/zone-1/a, weight: 3}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: shop}
spec: {address: 10.1.0.2, labels: {app: reviews}, locality: us-east/zone-1/a}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 5}
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}
`;

const REVIEWS = 'outbound|9080||reviews.shop.svc.cluster.local';

/** Envoy's thresholds when a priority has none configured. */
const ENVOY_DEFAULT_THRESHOLDS: CircuitBreakerView = { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 };

function thresholds(c: Cluster, p: RoutingPriority): CircuitBreakerView {
  const t = c.circuitBreakers?.thresholds.find((x) => x.priority === p);
  if (!t) return ENVOY_DEFAULT_THRESHOLDS;
  return {
    maxConnections: t.maxConnections ?? 1024,
    maxPendingRequests: t.maxPendingRequests ?? 1024,
    maxRequests: t.maxRequests ?? 1024,
    maxRetries: t.maxRetries ?? 3,
  };
}

/** A view as the proxy would assemble it from its cluster runtime, seeded from the xDS messages. */
function viewOf(c: Cluster, cla: ClusterLoadAssignment | undefined): ClusterStatusView {
  return {
    name: c.name,
    observabilityName: c.altStatName || c.name,
    edsServiceName: c.edsClusterConfig?.serviceName ?? '',
    addedViaApi: true,
    circuitBreakers: { default: thresholds(c, RoutingPriority.DEFAULT), high: thresholds(c, RoutingPriority.HIGH) },
    ...(c.outlierDetection ? { outlier: { successRateAverage: -1, successRateEjectionThreshold: -1, localOriginSuccessRateAverage: -1, localOriginSuccessRateEjectionThreshold: -1 } } : {}),
    hosts: (cla?.endpoints ?? []).flatMap((group) =>
      group.lbEndpoints.map((lb) => {
        const ep = lb.hostIdentifier.case === 'endpoint' ? lb.hostIdentifier.value : undefined;
        const sa = ep?.address?.address.case === 'socketAddress' ? ep.address.address.value : undefined;
        assert.ok(sa, 'socket address');
        return {
          address: sa.address,
          port: sa.portSpecifier.case === 'portValue' ? sa.portSpecifier.value : 0,
          hostname: ep?.hostname ?? '',
          weight: lb.loadBalancingWeight ?? 1,
          priority: group.priority,
          locality: { region: group.locality?.region ?? '', zone: group.locality?.zone ?? '', subZone: group.locality?.subZone ?? '' },
          health: { failedEdsHealth: lb.healthStatus === HealthStatus.UNHEALTHY },
          stats: [
            { name: 'cx_active', value: 0, kind: 'gauge' as const },
            { name: 'cx_connect_fail', value: 0, kind: 'counter' as const },
            { name: 'cx_total', value: 0, kind: 'counter' as const },
            { name: 'rq_active', value: 0, kind: 'gauge' as const },
            { name: 'rq_error', value: 0, kind: 'counter' as const },
            { name: 'rq_success', value: 0, kind: 'counter' as const },
            { name: 'rq_timeout', value: 0, kind: 'counter' as const },
            { name: 'rq_total', value: 0, kind: 'counter' as const },
          ],
        };
      }),
    ),
  };
}

function views(): ClusterStatusView[] {
  const out = translateYaml(CONFIG, 'admin-clusters.yaml', { id: 'sidecar~shop', metadata: { NAMESPACE: 'shop', LABELS: { app: 'client' } }, locality: { region: 'us-east', zone: 'zone-1', subZone: 'a' } });
  return out.clusters.map((c) => viewOf(c, out.endpoints.find((e) => e.clusterName === (c.edsClusterConfig?.serviceName || c.name))));
}

describe('/clusters', () => {
  const vs = views();
  const reviews = vs.find((v) => v.name === REVIEWS)!;
  // Live state the request path would have produced: traffic on host 1, host 2 ejected by outlier detection.
  const h1 = reviews.hosts.find((h) => h.address === '10.1.0.1')!;
  const h2 = reviews.hosts.find((h) => h.address === '10.1.0.2')!;
  Object.assign(h1, {
    stats: h1.stats!.map((s) => ({ ...s, value: s.name === 'rq_total' ? 12 : s.name === 'rq_success' ? 11 : s.name === 'rq_error' ? 1 : s.name === 'cx_active' ? 2 : s.name === 'cx_total' ? 3 : 0 })),
    successRate: 91.5,
  });
  Object.assign(h2, { health: { failedOutlierCheck: true } });
  Object.assign(reviews, { outlier: { successRateAverage: 95.25, successRateEjectionThreshold: 85.5, localOriginSuccessRateAverage: -1, localOriginSuccessRateEjectionThreshold: -1 } });

  let admin: AdminServer;
  before(async () => {
    admin = await startAdmin({ port: 0, handlers: { clusters: () => vs } });
  });
  after(() => admin.close());

  test('text: Envoy lines per cluster and per host', async () => {
    const r = await adminGet(admin.port, '/clusters');
    assert.equal(r.status, 200);
    assert.equal(r.type, 'text/plain; charset=UTF-8');
    const lines = r.body.split('\n').filter((l) => l.startsWith(`${REVIEWS}::`));
    const a1 = `${REVIEWS}::10.1.0.1:9080`;
    const a2 = `${REVIEWS}::10.1.0.2:9080`;
    const expectedHead = [
      `${REVIEWS}::observability_name::${REVIEWS}`,
      `${REVIEWS}::outlier::success_rate_average::95.25`,
      `${REVIEWS}::outlier::success_rate_ejection_threshold::85.5`,
      `${REVIEWS}::outlier::local_origin_success_rate_average::-1`,
      `${REVIEWS}::outlier::local_origin_success_rate_ejection_threshold::-1`,
      `${REVIEWS}::default_priority::max_connections::5`,
      `${REVIEWS}::default_priority::max_pending_requests::4294967295`,
      `${REVIEWS}::default_priority::max_requests::4294967295`,
      `${REVIEWS}::default_priority::max_retries::4294967295`,
      `${REVIEWS}::high_priority::max_connections::1024`,
      `${REVIEWS}::high_priority::max_pending_requests::1024`,
      `${REVIEWS}::high_priority::max_requests::1024`,
      `${REVIEWS}::high_priority::max_retries::3`,
      `${REVIEWS}::added_via_api::true`,
      `${REVIEWS}::eds_service_name::${reviews.edsServiceName}`,
    ].filter((l) => !l.endsWith('::eds_service_name::'));
    assert.deepEqual(lines.slice(0, expectedHead.length), expectedHead);
    const host1 = lines.filter((l) => l.startsWith(`${a1}::`));
    assert.deepEqual(host1, [
      `${a1}::cx_active::2`,
      `${a1}::cx_connect_fail::0`,
      `${a1}::cx_total::3`,
      `${a1}::rq_active::0`,
      `${a1}::rq_error::1`,
      `${a1}::rq_success::11`,
      `${a1}::rq_timeout::0`,
      `${a1}::rq_total::12`,
      `${a1}::hostname::`,
      `${a1}::health_flags::healthy`,
      `${a1}::weight::3`,
      `${a1}::region::us-east`,
      `${a1}::zone::zone-1`,
      `${a1}::sub_zone::a`,
      `${a1}::canary::false`,
      `${a1}::priority::0`,
      `${a1}::success_rate::91.5`,
      `${a1}::local_origin_success_rate::-1`,
    ]);
    assert.ok(lines.includes(`${a2}::health_flags::/failed_outlier_check`));
    assert.ok(lines.includes(`${a2}::success_rate::-1`));
    // Clusters are sorted by name; clusters without outlier detection have no outlier lines.
    const names = [...new Set(r.body.split('\n').filter((l) => l).map((l) => l.slice(0, l.indexOf('::'))))];
    assert.deepEqual(names, [...names].sort());
    assert.ok(names.includes('BlackHoleCluster'));
    assert.equal(r.body.includes('BlackHoleCluster::outlier::'), false);
  });

  test('json: envoy.admin.v3.Clusters with proto field names', async () => {
    const r = await adminGet(admin.port, '/clusters?format=json');
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/json');
    const doc = JSON.parse(r.body) as { cluster_statuses: Array<Record<string, unknown>> };
    const c = doc.cluster_statuses.find((x) => x.name === REVIEWS) as {
      added_via_api: boolean;
      observability_name: string;
      success_rate_ejection_threshold: { value: number };
      local_origin_success_rate_ejection_threshold?: unknown;
      circuit_breakers: { thresholds: Array<Record<string, unknown>> };
      host_statuses: Array<{
        address: { socket_address: { address: string; port_value: number } };
        stats: Array<{ name: string; value?: string; type?: string }>;
        health_status: Record<string, unknown>;
        success_rate?: { value: number };
        weight: number;
        priority?: number;
        locality: Record<string, string>;
      }>;
    };
    assert.ok(c);
    assert.equal(c.added_via_api, true);
    assert.equal(c.observability_name, REVIEWS);
    assert.deepEqual(c.success_rate_ejection_threshold, { value: 85.5 });
    assert.equal(c.local_origin_success_rate_ejection_threshold, undefined);
    assert.deepEqual(c.circuit_breakers.thresholds, [
      { max_connections: 5, max_pending_requests: 4294967295, max_requests: 4294967295, max_retries: 4294967295 },
      { priority: 'HIGH', max_connections: 1024, max_pending_requests: 1024, max_requests: 1024, max_retries: 3 },
    ]);
    const hs1 = c.host_statuses.find((h) => h.address.socket_address.address === '10.1.0.1')!;
    assert.deepEqual(hs1.address, { socket_address: { address: '10.1.0.1', port_value: 9080 } });
    assert.deepEqual(hs1.stats.find((s) => s.name === 'rq_total'), { name: 'rq_total', value: '12' });
    assert.deepEqual(hs1.stats.find((s) => s.name === 'cx_active'), { name: 'cx_active', value: '2', type: 'GAUGE' });
    assert.deepEqual(hs1.health_status, { eds_health_status: 'HEALTHY' });
    assert.deepEqual(hs1.success_rate, { value: 91.5 });
    assert.equal(hs1.weight, 3);
    assert.deepEqual(hs1.locality, { region: 'us-east', zone: 'zone-1', sub_zone: 'a' });
    const hs2 = c.host_statuses.find((h) => h.address.socket_address.address === '10.1.0.2')!;
    assert.deepEqual(hs2.health_status, { failed_outlier_check: true, eds_health_status: 'HEALTHY' });
    assert.equal(hs2.success_rate, undefined);
    // The JSON is a valid envoy.admin.v3.Clusters.
    const msg = fromJson(ClustersSchema, JSON.parse(r.body) as JsonValue, { registry });
    assert.equal(msg.clusterStatuses.length, vs.length);
  });

  test('health flags and addresses', () => {
    assert.equal(healthFlagsToString(undefined), 'healthy');
    assert.equal(healthFlagsToString({ failedActiveHc: true, failedOutlierCheck: true, edsStatusDraining: true }), '/failed_active_hc/failed_outlier_check/eds_status_draining');
    assert.equal(healthFlagsToString({ degradedEdsHealth: true, pendingDynamicRemoval: true, activeHcTimeout: true }), '/degraded_eds_health/pending_dynamic_removal/active_hc_timeout');
    assert.equal(hostAddressString({ address: '::1', port: 80, weight: 1, priority: 0 }), '[::1]:80');
    assert.equal(hostAddressString({ address: '10.0.0.1', port: 80, weight: 1, priority: 0 }), '10.0.0.1:80');
  });

  test('eds health status in JSON: unhealthy, degraded, draining', async () => {
    const mk = (health: ClusterStatusView['hosts'][number]['health']): ClusterStatusView => ({
      name: 'c',
      addedViaApi: false,
      circuitBreakers: { default: ENVOY_DEFAULT_THRESHOLDS, high: ENVOY_DEFAULT_THRESHOLDS },
      hosts: [{ address: '10.0.0.9', port: 80, weight: 1, priority: 1, health }],
    });
    const a = await startAdmin({ port: 0, handlers: { clusters: () => [mk({ failedEdsHealth: true })] } });
    try {
      const doc = JSON.parse((await adminGet(a.port, '/clusters?format=json')).body) as { cluster_statuses: Array<{ added_via_api?: boolean; host_statuses: Array<{ health_status: Record<string, unknown>; priority: number }> }> };
      assert.deepEqual(doc.cluster_statuses[0]!.host_statuses[0]!.health_status, { eds_health_status: 'UNHEALTHY' });
      assert.equal(doc.cluster_statuses[0]!.host_statuses[0]!.priority, 1);
      assert.equal(doc.cluster_statuses[0]!.added_via_api, undefined, 'false is omitted in proto3 JSON');
      const text = (await adminGet(a.port, '/clusters')).body;
      assert.match(text, /^c::10\.0\.0\.9:80::health_flags::\/failed_eds_health$/m);
      assert.match(text, /^c::added_via_api::false$/m);
    } finally {
      await a.close();
    }
  });
});
