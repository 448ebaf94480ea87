// What the control plane sends a transparent-mode sidecar (translate/transparent.ts, dns.ts): Istio's
// virtualOutbound / per-port outbound / virtualInbound listener set, per-port RouteConfigurations, the
// InboundPassthroughCluster, automatic VIPs and the DNS name table — from real YAML through a real registry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { create, toBinary } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import type { MeshModel } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { TranslationCache } from '../../src/controlplane/translate/cache.js';
import { autoVips } from '../../src/controlplane/translate/dns.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { unpack } from '../../src/xds/index.js';
import { Cluster_DiscoveryType, Cluster_LbPolicy } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { NodeSchema, TrafficDirection } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import type { Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { FilterChain } from '../../src/xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { NameTableSchema } from '../../src/xds/name-table.js';

const FIXTURE = new URL('../../../test/fixtures/capture/mesh.yaml', import.meta.url);
const REGISTRY_ONLY = 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n';

function env(extra = ''): { model: MeshModel; registry: ServiceRegistry } {
  const text = readFileSync(FIXTURE, 'utf8') + (extra ? `---\n${extra}` : '');
  const parsed = parseConfigText(text, 'mesh.yaml');
  assert.deepEqual(parsed.diagnostics, []);
  const built = buildModel(parsed.resources);
  assert.deepEqual(built.diagnostics.filter((d) => d.severity === 'Error'), []);
  const registry = new ServiceRegistry();
  registry.setModel(built.model);
  return { model: built.model, registry };
}

function translate(e: { model: MeshModel; registry: ServiceRegistry }, metadata: Record<string, unknown>, cache?: TranslationCache): ProxyResources {
  const proxy = proxyFromNode(create(NodeSchema, { id: `p~${String(metadata.NAMESPACE ?? 'default')}`, metadata: { NAMESPACE: 'default', ...metadata } as never }));
  return translateProxy({ model: e.model, registry: e.registry, proxy }, cache);
}

const TRANSPARENT = { WEFT_MODE: 'transparent', WEFT_INBOUND: [{ port: 9080, targetPort: 9080, protocol: 'http' }, { port: 5432, targetPort: 5432, protocol: 'tcp' }] };

function listener(r: ProxyResources, name: string): Listener {
  const l = r.listeners.find((x) => x.name === name);
  assert.ok(l, `listener ${name} in ${r.listeners.map((x) => x.name).join(', ')}`);
  assert.ok(toBinary(ListenerSchema, l).length > 0);
  return l;
}

function tcpCluster(c: FilterChain): string {
  const f = c.filters[0]!;
  assert.equal(f.configType.case, 'typedConfig');
  const t = unpack(TcpProxySchema, f.configType.value!);
  assert.equal(t.clusterSpecifier.case, 'cluster');
  return t.clusterSpecifier.value as string;
}

function address(l: Listener): string {
  const a = l.address!.address;
  assert.equal(a.case, 'socketAddress');
  return `${a.value.address}:${a.value.portSpecifier.value}`;
}

describe('transparent-mode translation', () => {
  test('listener set: virtualOutbound, 0.0.0.0_<port> (HTTP, RDS <port>), <vip>_<port> (TCP), virtualInbound; no explicit listeners', () => {
    const r = translate(env(), TRANSPARENT);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.listeners.map((l) => l.name), ['virtualOutbound', '0.0.0.0_9080', '198.18.200.20_5432', 'virtualInbound']);

    const vo = listener(r, 'virtualOutbound');
    assert.equal(address(vo), '0.0.0.0:15001');
    assert.equal(vo.useOriginalDst, true);
    assert.equal(vo.trafficDirection, TrafficDirection.OUTBOUND);
    assert.deepEqual(vo.filterChains.map((c) => [c.name, c.filterChainMatch?.destinationPort, tcpCluster(c)]), [
      ['virtualOutbound-blackhole', 15001, 'BlackHoleCluster'],
      ['virtualOutbound-catchall-tcp', undefined, 'PassthroughCluster'],
    ]);

    const http = listener(r, '0.0.0.0_9080');
    assert.equal(address(http), '0.0.0.0:9080');
    assert.equal(http.bindToPort, false);
    const f = http.filterChains[0]!.filters[0]!;
    const hcm = unpack(HttpConnectionManagerSchema, f.configType.value as never);
    assert.equal(hcm.routeSpecifier.case, 'rds');
    assert.equal(hcm.routeSpecifier.value!.routeConfigName, '9080');
    assert.deepEqual(hcm.httpFilters.map((x) => x.name), ['envoy.filters.http.fault', 'envoy.filters.http.cors', 'envoy.filters.http.router']);

    const tcp = listener(r, '198.18.200.20_5432');
    assert.equal(tcp.bindToPort, false);
    assert.equal(tcpCluster(tcp.filterChains[0]!), 'outbound|5432||db.default.svc.cluster.local');

    const vi = listener(r, 'virtualInbound');
    assert.equal(address(vi), '0.0.0.0:15006');
    assert.equal(vi.useOriginalDst, undefined);
    assert.deepEqual(vi.listenerFilters.map((x) => x.name), ['envoy.filters.listener.original_dst']);
    assert.deepEqual(vi.filterChains.map((c) => [c.name, c.filterChainMatch?.destinationPort]), [
      ['virtualInbound-blackhole', 15006],
      ['0.0.0.0_9080', 9080],
      ['0.0.0.0_5432', 5432],
      ['virtualInbound', undefined],
    ]);
    const inboundHcm = unpack(HttpConnectionManagerSchema, vi.filterChains[1]!.filters[0]!.configType.value as never);
    assert.equal(inboundHcm.routeSpecifier.case, 'routeConfig');
    assert.equal(tcpCluster(vi.filterChains[2]!), 'inbound|5432||');
    assert.equal(tcpCluster(vi.filterChains[3]!), 'InboundPassthroughCluster');

    const ipc = r.clusters.find((c) => c.name === 'InboundPassthroughCluster');
    assert.ok(ipc);
    assert.equal(ipc.clusterDiscoveryType.value, Cluster_DiscoveryType.ORIGINAL_DST);
    assert.equal(ipc.lbPolicy, Cluster_LbPolicy.CLUSTER_PROVIDED);
  });

  test('RouteConfiguration per HTTP port: the services of the port (VirtualService routes kept, automatic VIP as a domain) and the catch-all', () => {
    const e = env();
    const r = translate(e, TRANSPARENT);
    assert.deepEqual(r.routes.map((x) => x.name), ['9080']);
    const rc = r.routes[0]!;
    assert.deepEqual(rc.virtualHosts.map((v) => v.name), ['reviews.default.svc.cluster.local:9080', 'allow_any']);
    const vip = autoVips(e.registry.services()).get('reviews.default.svc.cluster.local');
    assert.match(vip!, /^240\.240\.\d+\.\d+$/);
    assert.ok(rc.virtualHosts[0]!.domains.includes('reviews:9080'));
    assert.ok(rc.virtualHosts[0]!.domains.includes(`${vip}:9080`));
    const route = rc.virtualHosts[0]!.routes[0]!;
    assert.equal(route.action.case, 'route');
    assert.equal(route.action.value.clusterSpecifier.value, 'outbound|9080|v2|reviews.default.svc.cluster.local');
    assert.deepEqual(route.requestHeadersToAdd.map((h) => h.header?.key), ['x-routed-by']);
  });

  test('REGISTRY_ONLY: the passthrough chain and the per-port catch-all block', () => {
    const r = translate(env(REGISTRY_ONLY), TRANSPARENT);
    const vo = listener(r, 'virtualOutbound');
    assert.equal(tcpCluster(vo.filterChains[1]!), 'BlackHoleCluster');
    assert.equal(r.routes[0]!.virtualHosts.at(-1)!.name, 'block_all');
  });

  test('name table: every alias the proxy namespace can use → VIPs (clusterIP, else automatic); short names only in the same namespace', () => {
    const e = env();
    const vip = autoVips(e.registry.services()).get('reviews.default.svc.cluster.local')!;
    const same = translate(e, TRANSPARENT).nameTables![0]!;
    assert.equal(same.$typeName, NameTableSchema.typeName);
    assert.equal(same.name, 'name-table');
    assert.deepEqual(Object.keys(same.table).sort(), [
      'db',
      'db.default',
      'db.default.svc',
      'db.default.svc.cluster.local',
      'reviews',
      'reviews.default',
      'reviews.default.svc',
      'reviews.default.svc.cluster.local',
    ]);
    assert.deepEqual(same.table.reviews!.ips, [vip]);
    assert.deepEqual(same.table.db!.ips, ['198.18.200.20']);
    assert.equal(same.table.db!.shortname, 'db');
    assert.equal(same.table.db!.namespace, 'default');
    const other = translate(e, { ...TRANSPARENT, NAMESPACE: 'other' }).nameTables![0]!;
    assert.equal(other.table.reviews, undefined);
    assert.deepEqual(other.table['reviews.default']!.ips, [vip]);
  });

  test('automatic VIPs are stable per host and distinct across hosts', () => {
    const a = autoVips(env().registry.services());
    const b = autoVips(env().registry.services());
    assert.equal(a.get('reviews.default.svc.cluster.local'), b.get('reviews.default.svc.cluster.local'));
    assert.equal(a.has('db.default.svc.cluster.local'), false, 'a service with a clusterIP gets no automatic VIP');
    const many = env(
      Array.from({ length: 50 }, (_, i) => `apiVersion: v1\nkind: Service\nmetadata: {name: s${i}, namespace: default}\nspec:\n  ports: [{name: http, port: 80}]\n`).join('---\n'),
    );
    const vips = [...autoVips(many.registry.services()).values()];
    assert.equal(vips.length, 51);
    assert.equal(new Set(vips).size, 51);
    for (const v of vips) assert.match(v, /^240\.240\.\d+\.\d+$/);
  });

  test("Istio's INTERCEPTION_MODE selects transparent mode too; explicit proxies are unchanged, also through a shared cache", () => {
    const e = env();
    const cache = new TranslationCache();
    const t1 = translate(e, { INTERCEPTION_MODE: 'REDIRECT' }, cache);
    assert.ok(t1.listeners.some((l) => l.name === 'virtualOutbound'));
    const explicit = translate(e, {}, cache);
    assert.deepEqual(explicit.listeners.map((l) => l.name), ['outbound']);
    assert.deepEqual(explicit.routes.map((x) => x.name), ['outbound']);
    assert.equal(explicit.nameTables, undefined);
    const t2 = translate(e, { WEFT_MODE: 'transparent' }, cache);
    assert.deepEqual(t2.listeners.map((l) => l.name), ['virtualOutbound', '0.0.0.0_9080', '198.18.200.20_5432', 'virtualInbound']);
    assert.deepEqual(t2.routes.map((x) => x.name), ['9080']);
  });
});
