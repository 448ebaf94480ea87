// /config_dump (src/proxy/admin/config-dump.ts) over a real socket, fed with the messages the control plane's
// translator produces: Envoy's ConfigDump JSON shape, include_eds, resource, mask, name_regex, listener states and
// NACKed updates.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create, equals, fromJson, type JsonValue } from '@bufbuild/protobuf';
import { anyUnpack } from '@bufbuild/protobuf/wkt';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { registry } from '../../src/xds/json.js';
import { ConfigDumpSchema } from '../../src/xds/gen/envoy/admin/v3/config_dump_pb.js';
import { ClustersConfigDumpSchema, ListenersConfigDumpSchema } from '../../src/xds/gen/envoy/admin/v3/config_dump_shared_pb.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { adminGet } from '../helpers/admin-http.js';
import { translateYaml } from '../helpers/translate.js';
import { startAdmin, type AdminServer, type ConfigSnapshot } from '../../src/proxy/admin/index.js';
import { ClientResourceStatus, trimMessage } from '../../src/proxy/admin/config-dump.js';

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
spec: {address: 10.1.0.1, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: shop}
spec: {address: 10.1.0.2, labels: {app: reviews}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}
`;

const REVIEWS = 'outbound|9080||reviews.shop.svc.cluster.local';
const T0 = Date.parse('2026-01-02T03:04:05.678Z');

function translate(): ProxyResources {
  const out = translateYaml(CONFIG, 'admin-config-dump.yaml', { id: 'sidecar~shop', metadata: { NAMESPACE: 'shop', LABELS: { app: 'client' } } });
  assert.deepEqual(out.errors, []);
  return out;
}

function snapshotOf(res: ProxyResources): ConfigSnapshot {
  return {
    listeners: { versionInfo: '7', resources: res.listeners.map((l) => ({ resource: l, versionInfo: '7', lastUpdated: T0, clientStatus: ClientResourceStatus.ACKED })) },
    clusters: { versionInfo: '7', resources: res.clusters.map((c) => ({ resource: c, versionInfo: '7', lastUpdated: new Date(T0) })) },
    routes: { resources: res.routes.map((r) => ({ resource: r, versionInfo: '3', lastUpdated: T0 })) },
    endpoints: { resources: res.endpoints.map((e) => ({ resource: e, versionInfo: '9', lastUpdated: T0 })) },
  };
}

type Json = Record<string, unknown>;

async function dump(port: number, query = ''): Promise<Json[]> {
  const r = await adminGet(port, `/config_dump${query}`);
  assert.equal(r.status, 200, r.body);
  assert.equal(r.type, 'application/json');
  return (JSON.parse(r.body) as { configs: Json[] }).configs;
}

describe('/config_dump', () => {
  const res = translate();
  let snap = snapshotOf(res);
  let admin: AdminServer;
  before(async () => {
    admin = await startAdmin({ port: 0, handlers: { configDump: () => snap } });
  });
  after(() => admin.close());

  test('clusters, listeners and routes in Envoy order, proto field names, Any expanded', async () => {
    const configs = await dump(admin.port);
    assert.deepEqual(
      configs.map((c) => c['@type']),
      ['type.googleapis.com/envoy.admin.v3.ClustersConfigDump', 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump', 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump'],
    );
    const clusters = configs[0] as { version_info: string; dynamic_active_clusters: Array<{ version_info: string; last_updated: string; cluster: Json }> };
    assert.equal(clusters.version_info, '7');
    assert.equal(clusters.dynamic_active_clusters.length, res.clusters.length);
    const reviews = clusters.dynamic_active_clusters.find((c) => c.cluster.name === REVIEWS);
    assert.ok(reviews);
    assert.equal(reviews.cluster['@type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
    assert.equal(reviews.version_info, '7');
    assert.equal(reviews.last_updated, '2026-01-02T03:04:05.678Z');
    assert.ok('outlier_detection' in reviews.cluster, 'snake_case field names inside the resource too');
    assert.equal((reviews.cluster.outlier_detection as Json).consecutive_5xx, 3);

    const listeners = configs[1] as { version_info: string; dynamic_listeners: Array<{ name: string; active_state: { version_info: string; listener: Json }; client_status: string }> };
    assert.equal(listeners.version_info, '7');
    assert.deepEqual(
      listeners.dynamic_listeners.map((l) => l.name),
      res.listeners.map((l) => l.name),
    );
    assert.equal(listeners.dynamic_listeners[0]!.active_state.listener['@type'], 'type.googleapis.com/envoy.config.listener.v3.Listener');
    assert.equal(listeners.dynamic_listeners[0]!.client_status, 'ACKED');

    const routes = configs[2] as { dynamic_route_configs: Array<{ version_info: string; route_config: Json }> };
    assert.equal(routes.dynamic_route_configs[0]!.version_info, '3');
    assert.equal(routes.dynamic_route_configs[0]!.route_config.name, res.routes[0]!.name);
  });

  test('the JSON reads back into the same messages', async () => {
    const r = await adminGet(admin.port, '/config_dump');
    const msg = fromJson(ConfigDumpSchema, JSON.parse(r.body) as JsonValue, { registry });
    const cd = anyUnpack(msg.configs[0]!, ClustersConfigDumpSchema)!;
    for (const [i, c] of res.clusters.entries()) assert.ok(equals(ClusterSchema, anyUnpack(cd.dynamicActiveClusters[i]!.cluster!, ClusterSchema)!, c), `cluster ${c.name} round-trips`);
    const ld = anyUnpack(msg.configs[1]!, ListenersConfigDumpSchema)!;
    assert.ok(equals(ListenerSchema, anyUnpack(ld.dynamicListeners[0]!.activeState!.listener!, ListenerSchema)!, res.listeners[0]!));
  });

  test('include_eds adds the endpoints after the clusters', async () => {
    const configs = await dump(admin.port, '?include_eds');
    assert.deepEqual(
      configs.map((c) => (c['@type'] as string).split('.').pop()),
      ['ClustersConfigDump', 'EndpointsConfigDump', 'ListenersConfigDump', 'RoutesConfigDump'],
    );
    const eds = configs[1] as { dynamic_endpoint_configs: Array<{ version_info: string; endpoint_config: { cluster_name: string; endpoints: Array<{ lb_endpoints: Array<{ endpoint: { address: { socket_address: { address: string; port_value: number } } } }> }> } }> };
    const cla = eds.dynamic_endpoint_configs[0]!;
    assert.equal(cla.version_info, '9');
    assert.equal(cla.endpoint_config.cluster_name, REVIEWS);
    const addrs = cla.endpoint_config.endpoints.flatMap((e) => e.lb_endpoints.map((l) => `${l.endpoint.address.socket_address.address}:${l.endpoint.address.socket_address.port_value}`));
    assert.deepEqual(addrs.sort(), ['10.1.0.1:9080', '10.1.0.2:9080']);
  });

  test('resource= dumps the elements of a repeated field', async () => {
    const configs = await dump(admin.port, '?resource=dynamic_active_clusters');
    assert.equal(configs.length, res.clusters.length);
    for (const c of configs) assert.equal(c['@type'], 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster');
    assert.deepEqual(
      configs.map((c) => (c.cluster as Json).name),
      res.clusters.map((c) => c.name),
    );
    const eds = await adminGet(admin.port, '/config_dump?resource=dynamic_endpoint_configs');
    assert.deepEqual([eds.status, eds.body], [404, 'dynamic_endpoint_configs not found in config dump']);
    assert.equal((await dump(admin.port, '?resource=dynamic_endpoint_configs&include_eds')).length, 1);
  });

  test('resource= errors: not repeated (400), unknown (404)', async () => {
    const notRepeated = await adminGet(admin.port, '/config_dump?resource=version_info');
    assert.equal(notRepeated.status, 400);
    assert.equal(notRepeated.body, 'version_info is not a repeated field. Use ?mask=version_info to get only this field');
    assert.equal(notRepeated.type, 'text/plain; charset=UTF-8');
    const unknown = await adminGet(admin.port, '/config_dump?resource=bogus');
    assert.deepEqual([unknown.status, unknown.body], [404, 'bogus not found in config dump']);
  });

  test('mask with resource applies through the Any to the embedded resource', async () => {
    const configs = await dump(admin.port, '?resource=dynamic_active_clusters&mask=cluster.name');
    for (const c of configs) {
      assert.deepEqual(Object.keys(c).sort(), ['@type', 'cluster']);
      assert.deepEqual(Object.keys(c.cluster as Json).sort(), ['@type', 'name']);
    }
    const two = await dump(admin.port, '?resource=dynamic_active_clusters&mask=cluster.outlier_detection.consecutive_5xx,version_info&name_regex=outbound.*');
    assert.equal(two.length, 1);
    assert.deepEqual(two[0], {
      '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump.DynamicCluster',
      version_info: '7',
      cluster: { '@type': 'type.googleapis.com/envoy.config.cluster.v3.Cluster', outlier_detection: { consecutive_5xx: 3 } },
    });
    const bad = await adminGet(admin.port, '/config_dump?resource=dynamic_active_clusters&mask=cluster.nosuch');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /could not be successfully used/);
  });

  test('mask without resource applies to each dump, skipping those it does not fit', async () => {
    const configs = await dump(admin.port, '?mask=version_info');
    assert.deepEqual(configs, [
      { '@type': 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump', version_info: '7' },
      { '@type': 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump', version_info: '7' },
    ]);
    const none = await adminGet(admin.port, '/config_dump?mask=bogus');
    assert.deepEqual([none.status, none.body], [400, 'FieldMask bogus could not be successfully applied to any configs.']);
  });

  test('name_regex keeps resources whose name fully matches', async () => {
    const configs = await dump(admin.port, `?name_regex=${encodeURIComponent('outbound\\|.*')}`);
    const clusters = configs[0] as { dynamic_active_clusters: Array<{ cluster: Json }> };
    assert.deepEqual(
      clusters.dynamic_active_clusters.map((c) => c.cluster.name),
      [REVIEWS],
    );
    const listeners = configs[1] as { dynamic_listeners?: unknown[] };
    assert.equal(listeners.dynamic_listeners, undefined, 'listener "outbound" does not fully match');
    const bad = await adminGet(admin.port, '/config_dump?name_regex=(');
    assert.equal(bad.status, 400);
    assert.match(bad.body, /Error while parsing name_regex from \(/);
  });

  test('listener states, static resources and NACKed updates', async () => {
    const base = res.listeners[0]!;
    const next = create(ListenerSchema, { ...base, statPrefix: 'next' });
    const rejected = create(ListenerSchema, { name: 'bad', statPrefix: 'bad' });
    const admin2 = create(ListenerSchema, { name: 'static_admin' });
    snap = {
      ...snapshotOf(res),
      listeners: {
        versionInfo: '8',
        resources: [
          { resource: base, versionInfo: '7', lastUpdated: T0 },
          { resource: next, versionInfo: '8', lastUpdated: T0 + 1000, state: 'warming' },
          { resource: create(ListenerSchema, { name: 'old' }), versionInfo: '6', state: 'draining' },
          { name: 'bad', error: { details: 'Listener bad: missing address', versionInfo: '8', failedConfiguration: rejected, lastUpdateAttempt: T0 + 2000 }, clientStatus: ClientResourceStatus.NACKED },
          { resource: admin2, static: true, lastUpdated: T0 },
        ],
      },
      clusters: {
        versionInfo: '8',
        resources: [
          { resource: res.clusters[0]!, versionInfo: '8', state: 'warming' },
          { resource: create(ClusterSchema, { name: 'static_cluster' }), static: true },
        ],
      },
    };
    try {
      const configs = await dump(admin.port);
      const l = configs.find((c) => (c['@type'] as string).endsWith('ListenersConfigDump')) as {
        version_info: string;
        static_listeners: Array<{ listener: Json }>;
        dynamic_listeners: Array<Json & { name: string }>;
      };
      assert.equal(l.version_info, '8');
      assert.equal(l.static_listeners[0]!.listener.name, 'static_admin');
      assert.deepEqual(
        l.dynamic_listeners.map((d) => d.name),
        [base.name, 'old', 'bad'],
      );
      const main = l.dynamic_listeners[0] as unknown as { active_state: { version_info: string }; warming_state: { version_info: string; listener: Json } };
      assert.equal(main.active_state.version_info, '7');
      assert.equal(main.warming_state.version_info, '8');
      assert.equal(main.warming_state.listener.stat_prefix, 'next');
      assert.ok('draining_state' in l.dynamic_listeners[1]!);
      const bad = l.dynamic_listeners[2] as unknown as { error_state: { details: string; version_info: string; last_update_attempt: string; failed_configuration: Json }; client_status: string };
      assert.equal(bad.client_status, 'NACKED');
      assert.equal(bad.error_state.details, 'Listener bad: missing address');
      assert.equal(bad.error_state.version_info, '8');
      assert.equal(bad.error_state.last_update_attempt, '2026-01-02T03:04:07.678Z');
      assert.equal(bad.error_state.failed_configuration['@type'], 'type.googleapis.com/envoy.config.listener.v3.Listener');
      assert.equal(bad.error_state.failed_configuration.stat_prefix, 'bad');
      assert.equal('active_state' in bad, false);

      const c = configs[0] as { dynamic_warming_clusters: Array<{ cluster: Json }>; static_clusters: Array<{ cluster: Json }>; dynamic_active_clusters?: unknown };
      assert.equal(c.dynamic_warming_clusters[0]!.cluster.name, res.clusters[0]!.name);
      assert.equal(c.static_clusters[0]!.cluster.name, 'static_cluster');
      assert.equal(c.dynamic_active_clusters, undefined);
    } finally {
      snap = snapshotOf(res);
    }
  });

  test('without a provider the dump is empty (no configs field, as proto3 JSON omits empty lists)', async () => {
    const a = await startAdmin({ port: 0, handlers: {} });
    try {
      const r = await adminGet(a.port, '/config_dump');
      assert.deepEqual([r.status, JSON.parse(r.body)], [200, {}]);
    } finally {
      await a.close();
    }
  });
});

describe('FieldMask trimming', () => {
  test('keeps whole fields, nested sub-fields and oneof members; refuses unknown paths', () => {
    const c = create(ClusterSchema, {
      name: 'c',
      altStatName: 'alt',
      clusterDiscoveryType: { case: 'type', value: 3 },
      outlierDetection: { consecutive5xx: 5, interval: { seconds: 10n } },
    });
    const t = trimMessage(ClusterSchema, c, ['name', 'outlier_detection.interval', 'type']) as typeof c;
    assert.equal(t.name, 'c');
    assert.equal(t.altStatName, '');
    assert.deepEqual(t.clusterDiscoveryType, { case: 'type', value: 3 });
    assert.equal(t.outlierDetection?.consecutive5xx, undefined);
    assert.equal(t.outlierDetection?.interval?.seconds, 10n);
    assert.equal(trimMessage(ClusterSchema, c, ['name.nested']), undefined, 'a scalar has no sub-fields');
    assert.equal(trimMessage(ClusterSchema, c, ['nosuch']), undefined);
  });
});
