// LDS translation: sidecar listeners (outbound HTTP, explicit TCP upstreams, inbound) and proxyless gRPC
// api_listeners, from real config (YAML → model) and a real service registry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create, toBinary } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import type { MeshModel } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import type { ProxyInfo } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { buildListeners } from '../../src/controlplane/translate/listener.js';
import type { ListenerResult } from '../../src/controlplane/translate/listener.js';
import { buildRoutes } from '../../src/controlplane/translate/route.js';
import { computeScope } from '../../src/controlplane/translate/scope.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { unpack } from '../../src/xds/index.js';
import { NodeSchema, TrafficDirection } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { ApiVersion } from '../../src/xds/gen/envoy/config/core/v3/config_source_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import type { Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { FilterChain } from '../../src/xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { HttpConnectionManagerSchema, HttpConnectionManager_CodecType } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { HttpConnectionManager } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import type { TcpProxy } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));

function load(...files: string[]): { model: MeshModel; registry: ServiceRegistry } {
  const raws = files.flatMap((f) => {
    const r = parseConfigText(readFileSync(fixtures + f, 'utf8'), f);
    assert.deepEqual(r.diagnostics, [], `${f} parses`);
    return r.resources;
  });
  const { model, diagnostics } = buildModel(raws);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error'), [], 'config builds without errors');
  const registry = new ServiceRegistry();
  registry.setModel(model);
  return { model, registry };
}

function proxy(namespace: string, metadata: Record<string, unknown> = {}): ProxyInfo {
  return proxyFromNode(create(NodeSchema, { id: `test~${namespace}`, metadata: { NAMESPACE: namespace, ...metadata } as never }));
}

function listeners(env: { model: MeshModel; registry: ServiceRegistry }, p: ProxyInfo): ListenerResult {
  const scope = computeScope(env.model, env.registry, p);
  const routes = buildRoutes({ model: env.model, proxy: p, scope });
  const res = buildListeners({ model: env.model, proxy: p, scope }, routes.grpcTargets);
  for (const l of res.listeners) assert.ok(toBinary(ListenerSchema, l).length > 0, `${l.name} encodes`);
  return res;
}

function listener(res: ListenerResult, name: string): Listener {
  const l = res.listeners.find((x) => x.name === name);
  assert.ok(l, `listener ${name} in ${res.listeners.map((x) => x.name).join(', ')}`);
  return l;
}

function socket(l: Listener): [string, number] {
  assert.equal(l.address!.address.case, 'socketAddress');
  const s = l.address!.address.value as { address: string; portSpecifier: { value: number } };
  return [s.address, s.portSpecifier.value];
}

function hcmOf(chain: FilterChain): HttpConnectionManager {
  assert.equal(chain.filters.length, 1);
  assert.equal(chain.filters[0]!.name, 'envoy.filters.network.http_connection_manager');
  return unpack(HttpConnectionManagerSchema, chain.filters[0]!.configType.value as never);
}

function tcpOf(chain: FilterChain): TcpProxy {
  assert.equal(chain.filters.length, 1);
  assert.equal(chain.filters[0]!.name, 'envoy.filters.network.tcp_proxy');
  return unpack(TcpProxySchema, chain.filters[0]!.configType.value as never);
}

const SERVICES = 'translate/route-services.yaml';

describe('sidecar outbound listener', () => {
  const env = load(SERVICES);

  test('`outbound` on 127.0.0.1:15001 by default, HCM on RDS `outbound` over ADS with fault, cors, router', () => {
    const res = listeners(env, proxy('bookinfo'));
    const l = listener(res, 'outbound');
    assert.deepEqual(socket(l), ['127.0.0.1', 15001]);
    assert.equal(l.trafficDirection, TrafficDirection.OUTBOUND);
    const hcm = hcmOf(l.filterChains[0]!);
    assert.equal(hcm.routeSpecifier.case, 'rds');
    const rds = hcm.routeSpecifier.value as { routeConfigName: string; configSource: { configSourceSpecifier: { case: string }; resourceApiVersion: number } };
    assert.equal(rds.routeConfigName, 'outbound');
    assert.equal(rds.configSource.configSourceSpecifier.case, 'ads');
    assert.equal(rds.configSource.resourceApiVersion, ApiVersion.V3);
    assert.deepEqual(hcm.httpFilters.map((f) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.cors', 'envoy.filters.http.router']);
    assert.deepEqual(hcm.httpFilters.map((f) => (f.configType.value as { typeUrl: string }).typeUrl), [
      'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault',
      'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors',
      'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
    ]);
    assert.equal(hcm.statPrefix, 'outbound');
    assert.equal(hcm.codecType, HttpConnectionManager_CodecType.AUTO);
    assert.equal(hcm.useRemoteAddress, false);
    assert.equal(hcm.normalizePath, true);
    assert.equal(hcm.httpProtocolOptions!.allowAbsoluteUrl, true);
    assert.deepEqual(hcm.upgradeConfigs.map((u) => u.upgradeType), ['websocket']);
    assert.equal(hcm.requestIdExtension!.typedConfig!.typeUrl, 'type.googleapis.com/envoy.extensions.request_id.uuid.v3.UuidRequestIdConfig');
    assert.deepEqual(res.errors, []);
  });

  test('WEFT_OUTBOUND_PORT moves it', () => {
    assert.deepEqual(socket(listener(listeners(env, proxy('bookinfo', { WEFT_OUTBOUND_PORT: 16001 })), 'outbound')), ['127.0.0.1', 16001]);
    assert.deepEqual(socket(listener(listeners(env, proxy('bookinfo', { WEFT_OUTBOUND_PORT: '17001' })), 'outbound')), ['127.0.0.1', 17001]);
  });
});

describe('explicit TCP upstream listeners', () => {
  const env = load(SERVICES, 'translate/listener-tcp.yaml');
  const upstreams = [
    { host: 'db', port: 5432, localPort: 25432 },
    { host: 'reviews.bookinfo', port: 9080, localPort: 29080 },
  ];

  test('one listener per upstream on 127.0.0.1:<localPort>; a TCP route split becomes weighted clusters', () => {
    const res = listeners(env, proxy('bookinfo', { WEFT_UPSTREAMS: upstreams }));
    const db = listener(res, '127.0.0.1_25432');
    assert.deepEqual(socket(db), ['127.0.0.1', 25432]);
    const tcp = tcpOf(db.filterChains[0]!);
    assert.equal(tcp.statPrefix, 'outbound|5432||db.bookinfo.svc.cluster.local');
    assert.equal(tcp.clusterSpecifier.case, 'weightedClusters');
    assert.deepEqual((tcp.clusterSpecifier.value as { clusters: Array<{ name: string; weight: number }> }).clusters.map((c) => [c.name, c.weight]), [
      ['outbound|5432|primary|db.bookinfo.svc.cluster.local', 9],
      ['outbound|5432|replica|db.bookinfo.svc.cluster.local', 1],
    ]);
    // No TCP routes: straight to the service's cluster (an HTTP service used as an opaque TCP upstream).
    const reviews = tcpOf(listener(res, '127.0.0.1_29080').filterChains[0]!);
    assert.deepEqual(reviews.clusterSpecifier, { case: 'cluster', value: 'outbound|9080||reviews.bookinfo.svc.cluster.local' });
    assert.deepEqual(res.errors, []);
  });

  test('TCP route sourceLabels select the route for matching proxies only', () => {
    const res = listeners(env, proxy('bookinfo', { WEFT_UPSTREAMS: upstreams, LABELS: { app: 'batch' } }));
    assert.deepEqual(tcpOf(listener(res, '127.0.0.1_25432').filterChains[0]!).clusterSpecifier, { case: 'cluster', value: 'outbound|5432|replica|db.bookinfo.svc.cluster.local' });
  });

  test('short names resolve from the proxy namespace only; unknown hosts and ports are reported, not listened on', () => {
    const res = listeners(env, proxy('other', { WEFT_UPSTREAMS: [...upstreams, { host: 'nowhere', port: 1, localPort: 20001 }, { host: 'db.bookinfo', port: 9999, localPort: 20002 }] }));
    assert.deepEqual(res.listeners.map((l) => l.name).sort(), ['127.0.0.1_29080', 'outbound']);
    assert.deepEqual(res.errors.map((e) => e.resource), ['127.0.0.1_25432', '127.0.0.1_20001', '127.0.0.1_20002']);
    assert.match(res.errors[2]!.message, /has no port 9999/);
    assert.ok(res.errors.every((e) => e.typeUrl === 'type.googleapis.com/envoy.config.listener.v3.Listener'));
  });
});

describe('inbound listeners', () => {
  const env = load(SERVICES);
  const inbound = [
    { port: 9080, targetPort: 8080, protocol: 'HTTP', name: 'http' },
    { port: 5432, targetPort: 15432, protocol: 'tcp' },
    { port: 7000, targetPort: 17000 },
  ];

  test('HTTP: HCM with an inline route to inbound|<targetPort>||, on WEFT_INBOUND_BIND', () => {
    const res = listeners(env, proxy('bookinfo', { WEFT_INBOUND: inbound, WEFT_INBOUND_BIND: '10.1.2.3' }));
    const l = listener(res, 'inbound|9080');
    assert.deepEqual(socket(l), ['10.1.2.3', 9080]);
    assert.equal(l.trafficDirection, TrafficDirection.INBOUND);
    const hcm = hcmOf(l.filterChains[0]!);
    assert.equal(hcm.routeSpecifier.case, 'routeConfig');
    const rc = hcm.routeSpecifier.value as { name: string; virtualHosts: Array<{ domains: string[]; routes: Array<{ action: { value: { clusterSpecifier: unknown } } }> }> };
    assert.equal(rc.name, 'inbound|8080||');
    assert.deepEqual(rc.virtualHosts[0]!.routes[0]!.action.value.clusterSpecifier, { case: 'cluster', value: 'inbound|8080||' });
    assert.deepEqual(hcm.httpFilters.map((f) => f.name), ['envoy.filters.http.router']);
    assert.equal(hcm.statPrefix, 'inbound_10.1.2.3_9080');
  });

  test('TCP: tcp_proxy to the inbound cluster; default bind 0.0.0.0', () => {
    const res = listeners(env, proxy('bookinfo', { WEFT_INBOUND: inbound }));
    const l = listener(res, 'inbound|5432');
    assert.deepEqual(socket(l), ['0.0.0.0', 5432]);
    assert.deepEqual(tcpOf(l.filterChains[0]!).clusterSpecifier, { case: 'cluster', value: 'inbound|15432||' });
    assert.equal(l.listenerFilters.length, 0);
  });

  test('unknown protocol: HTTP inspector, HTTP chain for http/1.x and h2c, TCP chain otherwise', () => {
    const l = listener(listeners(env, proxy('bookinfo', { WEFT_INBOUND: inbound })), 'inbound|7000');
    assert.deepEqual(l.listenerFilters.map((f) => f.name), ['envoy.filters.listener.http_inspector']);
    assert.equal(l.continueOnListenerFiltersTimeout, true);
    assert.equal(l.filterChains.length, 2);
    assert.deepEqual(l.filterChains[0]!.filterChainMatch!.applicationProtocols, ['http/1.0', 'http/1.1', 'h2c']);
    assert.equal(hcmOf(l.filterChains[0]!).routeSpecifier.case, 'routeConfig');
    assert.equal(l.filterChains[1]!.filterChainMatch, undefined);
    assert.deepEqual(tcpOf(l.filterChains[1]!).clusterSpecifier, { case: 'cluster', value: 'inbound|17000||' });
  });

  test('WEFT_INBOUND entries are parsed into ProxyInfo (JSON string accepted, invalid entries dropped)', () => {
    const p = proxy('bookinfo', { WEFT_INBOUND: JSON.stringify([{ port: 80, targetPort: '8080', protocol: 'grpc' }, { port: 81 }, { port: 'x', targetPort: 1 }]) });
    assert.deepEqual(p.inbound, [{ port: 80, targetPort: 8080, protocol: 'GRPC' }]);
    assert.equal(p.inboundBind, '0.0.0.0');
    assert.equal(p.outboundPort, 15001);
  });
});

describe('proxyless gRPC api_listeners', () => {
  const env = load(SERVICES, 'translate/route-rules.yaml');

  test('one api_listener per host:port authority, RDS of the same name, router last; fault only where a route injects faults', () => {
    const res = listeners(env, proxy('bookinfo', { GENERATOR: 'grpc', WEFT_INBOUND: [{ port: 1, targetPort: 2 }] }));
    const names = res.listeners.map((l) => l.name);
    for (const n of ['reviews:9080', 'reviews.bookinfo:9080', 'reviews.bookinfo.svc:9080', 'reviews.bookinfo.svc.cluster.local:9080', 'web', 'web:80']) assert.ok(names.includes(n), n);
    assert.ok(!names.some((n) => n.startsWith('inbound') || n === 'outbound'), 'no sidecar listeners for gRPC clients');
    const l = listener(res, 'reviews:9080');
    assert.ok(l.apiListener?.apiListener);
    assert.equal(l.filterChains.length, 0);
    const hcm = unpack(HttpConnectionManagerSchema, l.apiListener.apiListener);
    assert.equal(hcm.routeSpecifier.case, 'rds');
    assert.equal((hcm.routeSpecifier.value as { routeConfigName: string }).routeConfigName, 'reviews:9080');
    assert.equal(((hcm.routeSpecifier.value as { configSource: { configSourceSpecifier: { case: string } } }).configSource.configSourceSpecifier.case), 'ads');
    assert.deepEqual(hcm.httpFilters.map((f) => f.name), ['envoy.filters.http.router']);
    const ratings = unpack(HttpConnectionManagerSchema, listener(res, 'ratings:9080').apiListener!.apiListener!);
    assert.deepEqual(ratings.httpFilters.map((f) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
    // A direct response becomes a fault for gRPC, so details needs the fault filter too.
    const details = unpack(HttpConnectionManagerSchema, listener(res, 'details:9080').apiListener!.apiListener!);
    assert.deepEqual(details.httpFilters.map((f) => f.name), ['envoy.filters.http.fault', 'envoy.filters.http.router']);
  });

  test('a client in another namespace gets no short-name listener', () => {
    const res = listeners(env, proxy('other', { GENERATOR: 'grpc' }));
    const names = res.listeners.map((l) => l.name);
    assert.ok(names.includes('reviews.bookinfo:9080'));
    assert.ok(!names.includes('reviews:9080'));
    assert.ok(names.includes('echo:8080'));
  });
});

describe('translateProxy', () => {
  const encodeAll = (r: ProxyResources) => {
    for (const c of r.clusters) toBinary(ClusterSchema, c);
    for (const e of r.endpoints) toBinary(ClusterLoadAssignmentSchema, e);
    for (const l of r.listeners) toBinary(ListenerSchema, l);
    for (const rc of r.routes) toBinary(RouteConfigurationSchema, rc);
  };

  test('a sidecar gets clusters, endpoints, listeners and routes that all encode; every routed cluster exists', () => {
    const env = load(SERVICES, 'translate/route-rules.yaml', 'translate/listener-tcp.yaml');
    const p = proxy('bookinfo', { WEFT_UPSTREAMS: [{ host: 'db', port: 5432, localPort: 25432 }], WEFT_INBOUND: [{ port: 9080, targetPort: 8080, protocol: 'http' }] });
    const r = translateProxy({ model: env.model, registry: env.registry, proxy: p });
    encodeAll(r);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.listeners.map((l) => l.name), ['outbound', '127.0.0.1_25432', 'inbound|9080']);
    assert.deepEqual(r.routes.map((rc) => rc.name), ['outbound']);
    const names = new Set(r.clusters.map((c) => c.name));
    for (const n of ['outbound|9080|v1|reviews.bookinfo.svc.cluster.local', 'outbound|5432|replica|db.bookinfo.svc.cluster.local', 'inbound|8080||', 'PassthroughCluster']) {
      assert.ok(names.has(n), `cluster ${n}`);
    }
    // EDS resources only for EDS clusters, named after them.
    assert.ok(r.endpoints.length > 0);
    for (const e of r.endpoints) assert.ok(names.has(e.clusterName), e.clusterName);
  });

  test('a route to a cluster the proxy does not get is kept (503 NC, as Istio) and reported', () => {
    const env = load(SERVICES, 'translate/listener-missing-subset.yaml');
    const r = translateProxy({ model: env.model, registry: env.registry, proxy: proxy('bookinfo') });
    encodeAll(r);
    const web = r.routes[0]!.virtualHosts.find((v) => v.name === 'web.bookinfo.svc.cluster.local:80')!;
    assert.deepEqual(web.routes.map((x) => x.name), ['canary', 'stable']);
    assert.equal(r.errors.length, 1);
    assert.equal(r.errors[0]!.typeUrl, 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration');
    assert.equal(r.errors[0]!.resource, 'outbound');
    assert.match(r.errors[0]!.message, /outbound\|80\|canary\|web\.bookinfo\.svc\.cluster\.local/);
  });

  test('a proxyless gRPC client gets api_listeners matching its route configurations', () => {
    const env = load(SERVICES, 'translate/listener-missing-subset.yaml');
    const r = translateProxy({ model: env.model, registry: env.registry, proxy: proxy('bookinfo', { GENERATOR: 'grpc' }) });
    encodeAll(r);
    assert.deepEqual(r.listeners.map((l) => l.name), r.routes.map((rc) => rc.name));
    assert.ok(r.listeners.every((l) => l.apiListener !== undefined));
    // The missing subset is reported once, though four authorities share the virtual host.
    assert.equal(r.errors.filter((e) => e.message.includes('canary')).length, 1);
  });
});
