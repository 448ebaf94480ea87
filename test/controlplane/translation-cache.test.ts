// The translation cache (src/controlplane/translate/cache.ts): translation with it is byte-for-byte translation
// without it, for every fixture and many proxy shapes sharing one cache; pieces are shared between proxies; and
// entries follow endpoint and model changes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { create, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, JsonObject, MessageShape } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import type { Labels, MeshModel } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import type { ProxyInfo } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { BoundedMap, TranslationCache } from '../../src/controlplane/translate/cache.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';

const FIXTURES = new URL('../../../test/fixtures/', import.meta.url);

function load(files: string[]): { model: MeshModel; registry: ServiceRegistry } {
  const raws = files.flatMap((f) => {
    const parsed = parseConfigText(readFileSync(new URL(f, FIXTURES), 'utf8'), f);
    assert.deepEqual(parsed.diagnostics, [], `${f} parses`);
    return parsed.resources;
  });
  const { model } = buildModel(raws);
  const registry = new ServiceRegistry();
  registry.setModel(model);
  return { model, registry };
}

interface NodeOpts {
  namespace: string;
  labels?: Labels;
  locality?: [string, string];
  generator?: string;
  router?: boolean;
  inbound?: JsonObject[];
  upstreams?: JsonObject[];
  ips?: string;
  network?: string;
  transparent?: boolean;
}

let nodeCount = 0;
function proxy(o: NodeOpts): ProxyInfo {
  const metadata: JsonObject = { NAMESPACE: o.namespace, LABELS: o.labels ?? {} };
  if (o.generator) metadata['GENERATOR'] = o.generator;
  if (o.router) metadata['WEFT_PROXY_TYPE'] = 'router';
  if (o.inbound) metadata['WEFT_INBOUND'] = o.inbound;
  if (o.upstreams) metadata['WEFT_UPSTREAMS'] = o.upstreams;
  if (o.ips) metadata['INSTANCE_IPS'] = o.ips;
  if (o.network) metadata['NETWORK'] = o.network;
  if (o.transparent) metadata['WEFT_MODE'] = 'transparent';
  const node = create(NodeSchema, { id: `test-${++nodeCount}~${o.namespace}`, metadata });
  if (o.locality) node.locality = { $typeName: 'envoy.config.core.v3.Locality', region: o.locality[0], zone: o.locality[1], subZone: '' };
  return proxyFromNode(node);
}

/** Proxies of many shapes for a model: every namespace, the labels its selectors and routes name, localities. */
function proxiesFor(model: MeshModel): ProxyInfo[] {
  const namespaces = new Set<string>(['default']);
  for (const s of model.services) namespaces.add(s.namespace);
  for (const s of model.sidecars) namespaces.add(s.namespace);
  for (const d of model.destinationPolicies) namespaces.add(d.namespace);
  const labelSets: Labels[] = [{}, { app: 'client', version: 'v1' }];
  for (const s of model.sidecars) if (s.workloadSelector) labelSets.push({ ...s.workloadSelector });
  for (const d of model.destinationPolicies) if (d.workloadSelector) labelSets.push({ ...d.workloadSelector });
  for (const t of model.routes) for (const r of t.http) for (const m of r.matches) if (m.sourceLabels) labelSets.push({ ...m.sourceLabels });
  const localities: Array<[string, string] | undefined> = [undefined];
  for (const w of model.workloads) if (w.locality) localities.push(w.locality.split('/') as [string, string]);
  for (const s of model.services) for (const e of s.endpoints) if (e.locality) localities.push(e.locality.split('/') as [string, string]);
  const out: ProxyInfo[] = [];
  for (const namespace of namespaces) {
    for (const labels of labelSets) {
      for (const locality of localities.slice(0, 3)) {
        out.push(proxy({ namespace, labels, locality, inbound: [{ port: 9080, targetPort: 19080, protocol: 'HTTP' }] }));
      }
      out.push(proxy({ namespace, labels, generator: 'grpc', locality: localities[1] }));
    }
    // Transparent capture: the same identity and ports as an explicit proxy above, another passthrough cluster.
    out.push(proxy({ namespace, transparent: true, inbound: [{ port: 9080, targetPort: 19080, protocol: 'HTTP' }] }));
    out.push(proxy({ namespace, router: true }));
    out.push(proxy({ namespace, ips: 'fd00::1', network: 'net-2', labels: { app: 'client' } }));
    const host = model.services.find((s) => s.namespace === namespace) ?? model.services[0];
    if (host) out.push(proxy({ namespace, upstreams: [{ host: host.hostname, port: host.ports[0]?.port ?? 80, localPort: 17001 }] }));
  }
  return out;
}

/** Every resource of a translation as bytes, by type, in order; and its errors. */
function bytesOf(r: ProxyResources) {
  return {
    clusters: r.clusters.map((c) => Buffer.from(toBinary(ClusterSchema, c)).toString('base64')),
    endpoints: r.endpoints.map((c) => Buffer.from(toBinary(ClusterLoadAssignmentSchema, c)).toString('base64')),
    listeners: r.listeners.map((c) => Buffer.from(toBinary(ListenerSchema, c)).toString('base64')),
    routes: r.routes.map((c) => Buffer.from(toBinary(RouteConfigurationSchema, c)).toString('base64')),
    errors: r.errors,
  };
}

/** The same, from the resources the cache packed (as snapshots hold them). */
function encodedBytesOf(cache: TranslationCache, r: ProxyResources) {
  const packed = <D extends DescMessage>(schema: D, list: ReadonlyArray<MessageShape<D>>, nameOf: (m: MessageShape<D>) => string) =>
    list.map((m) => {
      const e = cache.encode(schema, m, nameOf(m));
      assert.ok(e.ok);
      return Buffer.from(e.resource.resource.value).toString('base64');
    });
  return {
    clusters: packed(ClusterSchema, r.clusters, (c) => c.name),
    endpoints: packed(ClusterLoadAssignmentSchema, r.endpoints, (c) => c.clusterName),
    listeners: packed(ListenerSchema, r.listeners, (c) => c.name),
    routes: packed(RouteConfigurationSchema, r.routes, (c) => c.name),
    errors: undefined,
  };
}

const ROUTE_SERVICES = 'translate/route-services.yaml';

/** Every translate fixture (with the services the route and listener fixtures are written against), and more. */
const CASES: string[][] = [
  ...readdirSync(new URL('translate/', FIXTURES))
    .filter((f) => f.endsWith('.yaml') && `translate/${f}` !== ROUTE_SERVICES)
    .map((f) => (f.startsWith('route-') || f.startsWith('listener-') ? [ROUTE_SERVICES, `translate/${f}`] : [`translate/${f}`])),
  ['proxyless/services.yaml', 'proxyless/destination-rule.yaml', 'proxyless/vs-split.yaml', 'proxyless/vs-fault.yaml'],
  ['proxyless/services.yaml', 'proxyless/trafficsplit-header.yaml'],
  ['proxyless/services.yaml', 'proxyless/httproute.yaml', 'proxyless/grpcroute.yaml'],
  ...['istio.yaml', 'smi.yaml', 'gateway-api.yaml'].map((f) => ['equal-model/services.yaml', `equal-model/${f}`]),
];

describe('translation cache', () => {
  for (const files of CASES) {
    test(`translation with a shared cache is byte-identical to translation without (${files.join(', ')})`, () => {
      const { model, registry } = load(files);
      const cache = new TranslationCache();
      const proxies = proxiesFor(model);
      assert.ok(proxies.length > 5);
      // Twice over: a cold cache, then a warm one (every piece from the cache).
      for (const round of [1, 2]) {
        for (const p of proxies) {
          const input = { model, registry, proxy: p };
          const plain = bytesOf(translateProxy(input));
          const withCache = translateProxy(input, cache);
          const cached = bytesOf(withCache);
          assert.deepEqual(cached, plain, `round ${round}, proxy ${p.type} ${p.namespace} ${JSON.stringify(p.labels)} ${JSON.stringify(p.locality)}`);
          assert.deepEqual(encodedBytesOf(cache, withCache), { ...plain, errors: undefined }, 'the packed resources hold the same bytes');
        }
      }
      assert.ok(cache.stats.hits > 0, 'the cache was used');
    });
  }

  test('proxies that differ only in what a piece ignores share it (same message and encoding)', () => {
    const { model, registry } = load([ROUTE_SERVICES, 'translate/route-rules.yaml']);
    const cache = new TranslationCache();
    // Another locality: clusters and routes do not depend on it (these rules do not use locality load balancing).
    const a = translateProxy({ model, registry, proxy: proxy({ namespace: 'bookinfo', labels: { app: 'a' }, locality: ['r1', 'z1'] }) }, cache);
    const b = translateProxy({ model, registry, proxy: proxy({ namespace: 'bookinfo', labels: { app: 'a' }, locality: ['r2', 'z2'] }) }, cache);
    assert.ok(a.clusters.length > 0 && a.routes.length > 0);
    assert.equal(b.clusters, a.clusters, 'one cluster list for both');
    assert.equal(b.routes[0], a.routes[0], 'one RouteConfiguration for both');
    const ea = cache.encode(ClusterSchema, a.clusters[0]!, a.clusters[0]!.name);
    const eb = cache.encode(ClusterSchema, b.clusters[0]!, b.clusters[0]!.name);
    assert.ok(ea.ok && eb.ok);
    assert.equal(eb.resource, ea.resource, 'encoded once: the same packed resource');
    // Another namespace sees other short host aliases: its route configuration is its own.
    const c = translateProxy({ model, registry, proxy: proxy({ namespace: 'other', labels: { app: 'a' } }) }, cache);
    assert.notEqual(c.routes[0], a.routes[0]);
  });

  // Two namespaces' worth of services with endpoints in two zones, and a DestinationRule private to namespace `a`
  // (for a service of `b`); `extra` is appended to the YAML.
  function namespacesMesh(extra = ''): { model: MeshModel; registry: ServiceRegistry } {
    const docs: string[] = [];
    for (const ns of ['a', 'b']) {
      docs.push(`apiVersion: v1
kind: Service
metadata: {name: web, namespace: ${ns}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80}]`);
      for (let i = 0; i < 2; i++) {
        docs.push(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: web-${i}, namespace: ${ns}}
spec:
  address: 10.0.${ns === 'a' ? 1 : 2}.${i + 1}
  labels: {app: web, version: v${i + 1}}
  locality: r1/z${i + 1}`);
      }
    }
    docs.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-b-local, namespace: a}
spec:
  host: web.b.svc.cluster.local
  exportTo: ["."]
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 7}
  subsets:
  - {name: v1, labels: {version: v1}}`);
    if (extra) docs.push(extra);
    const parsed = parseConfigText(docs.join('\n---\n'), 'namespaces.yaml');
    assert.deepEqual(parsed.diagnostics, []);
    const built = buildModel(parsed.resources);
    assert.deepEqual(built.diagnostics.filter((d) => d.severity === 'Error'), []);
    const registry = new ServiceRegistry();
    registry.setModel(built.model);
    return { model: built.model, registry };
  }

  test('proxies of different namespaces that see the same services with the same rules share clusters and endpoints', () => {
    const { model, registry } = namespacesMesh();
    const cache = new TranslationCache();
    const inbound = [{ port: 9080, targetPort: 19080, protocol: 'HTTP' }];
    // `b` and `c` (a namespace without services) see both services and no rule of their own.
    const b = translateProxy({ model, registry, proxy: proxy({ namespace: 'b', labels: { app: 'client' }, inbound, locality: ['r1', 'z1'] }) }, cache);
    const misses = cache.stats.misses;
    const c = translateProxy({ model, registry, proxy: proxy({ namespace: 'c', labels: { app: 'other' }, inbound, locality: ['r1', 'z2'] }) }, cache);
    assert.ok(b.clusters.length >= 4 && b.endpoints.length === 2);
    assert.equal(c.clusters, b.clusters, 'one cluster list');
    assert.equal(c.endpoints, b.endpoints, 'one assignment list (no locality load balancing applies: the locality does not matter)');
    assert.notEqual(c.routes[0], b.routes[0], 'routes are per namespace (short host names)');
    const url = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
    assert.equal(cache.encodeList(url, ClusterSchema, c.clusters, (x) => x.name).resources, cache.encodeList(url, ClusterSchema, b.clusters, (x) => x.name).resources, 'one encoded map');
    // Only the scope, the routes and the listeners were new for `c`.
    assert.ok(cache.stats.misses - misses < misses, 'most of c came from the cache');
    for (const [p, r] of [
      [proxy({ namespace: 'b', labels: { app: 'client' }, inbound, locality: ['r1', 'z1'] }), b],
      [proxy({ namespace: 'c', labels: { app: 'other' }, inbound, locality: ['r1', 'z2'] }), c],
    ] as const) {
      assert.deepEqual(bytesOf(r), bytesOf(translateProxy({ model, registry, proxy: p })), `${p.namespace}: the output without a cache`);
    }
  });

  test("a namespace-local DestinationRule gives that namespace's proxies their own clusters", () => {
    const { model, registry } = namespacesMesh();
    const cache = new TranslationCache();
    const pa = proxy({ namespace: 'a', labels: { app: 'client' } });
    const pb = proxy({ namespace: 'b', labels: { app: 'client' } });
    const b = translateProxy({ model, registry, proxy: pb }, cache);
    const a = translateProxy({ model, registry, proxy: pa }, cache);
    assert.notEqual(a.clusters, b.clusters);
    const names = (r: ProxyResources) => r.clusters.map((x) => x.name).sort();
    assert.ok(names(a).includes('outbound|80|v1|web.b.svc.cluster.local'), "the rule's subset, in a");
    assert.ok(!names(b).includes('outbound|80|v1|web.b.svc.cluster.local'), 'no subset elsewhere');
    const main = (r: ProxyResources) => r.clusters.find((x) => x.name === 'outbound|80||web.b.svc.cluster.local')!;
    assert.equal(main(a).circuitBreakers?.thresholds[0]?.maxConnections, 7, "the rule's connection pool, in a");
    assert.notEqual(main(b).circuitBreakers?.thresholds[0]?.maxConnections, 7);
    assert.ok(a.endpoints.some((x) => x.clusterName === 'outbound|80|v1|web.b.svc.cluster.local'));
    assert.deepEqual(bytesOf(a), bytesOf(translateProxy({ model, registry, proxy: pa })));
    assert.deepEqual(bytesOf(b), bytesOf(translateProxy({ model, registry, proxy: pb })));
  });

  test('assignments are kept per locality only when locality load balancing reads it', () => {
    // Outlier detection turns on locality failover (the mesh default): the proxy's zone orders the priorities.
    const { model, registry } = namespacesMesh(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web-a, namespace: a}
spec:
  host: web.a.svc.cluster.local
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 5}`);
    const cache = new TranslationCache();
    const at = (zone: string) => proxy({ namespace: 'c', labels: { app: 'client' }, locality: ['r1', zone] });
    const z1 = translateProxy({ model, registry, proxy: at('z1') }, cache);
    const z2 = translateProxy({ model, registry, proxy: at('z2') }, cache);
    const z1again = translateProxy({ model, registry, proxy: proxy({ namespace: 'b', labels: { app: 'x' }, locality: ['r1', 'z1'] }) }, cache);
    assert.equal(z2.clusters, z1.clusters, 'clusters do not depend on the locality');
    assert.notEqual(z2.endpoints, z1.endpoints, 'assignments do');
    assert.equal(z1again.endpoints, z1.endpoints, 'the same zone (and the same clusters) in another namespace: the same assignments');
    const priorities = (r: ProxyResources) => r.endpoints.find((x) => x.clusterName === 'outbound|80||web.a.svc.cluster.local')!.endpoints.map((g) => `${g.locality?.zone}:${g.priority}`);
    assert.deepEqual(priorities(z1), ['z1:0', 'z2:1']);
    assert.deepEqual(priorities(z2), ['z1:1', 'z2:0']);
    const other = (r: ProxyResources) => r.endpoints.find((x) => x.clusterName === 'outbound|80||web.b.svc.cluster.local');
    assert.equal(other(z2), other(z1), 'an assignment without locality load balancing is one object for both');
    for (const zone of ['z1', 'z2']) assert.deepEqual(bytesOf(translateProxy({ model, registry, proxy: at(zone) }, cache)), bytesOf(translateProxy({ model, registry, proxy: at(zone) })));
  });

  test('a cached assignment is rebuilt when the registry hands out new endpoints; other pieces stay', () => {
    const { model, registry } = load(['translate/cluster-policies.yaml']);
    const cache = new TranslationCache();
    const p = proxy({ namespace: 'default', labels: { app: 'client' } });
    const before = translateProxy({ model, registry, proxy: p }, cache);
    const target = model.services.find((s) => s.selector && registry.endpoints(s.hostname, s.ports[0]!.port).length > 0);
    assert.ok(target, 'a service with endpoints');
    registry.register({
      name: 'vm-1',
      namespace: target.namespace,
      address: '10.99.0.1',
      labels: { ...target.selector },
      ports: Object.fromEntries(target.ports.map((sp) => [sp.name ?? 'http', sp.port])),
      // The service account of the existing endpoints: a new one would change the clusters' SANs (and drop the
      // cached clusters, see the mTLS translation tests).
      serviceAccount: registry.endpoints(target.hostname, target.ports[0]!.port)[0]!.serviceAccount,
      sidecar: false,
      source: 'Registered',
      ttlMs: 0,
    });
    const after = translateProxy({ model, registry, proxy: p }, cache);
    assert.deepEqual(bytesOf(after), bytesOf(translateProxy({ model, registry, proxy: p })), 'up to date with the registry');
    const name = `outbound|${target.ports[0]!.port}||${target.hostname}`;
    const cla = after.endpoints.find((c) => c.clusterName === name);
    assert.ok(cla, name);
    assert.ok(JSON.stringify(toBinary(ClusterLoadAssignmentSchema, cla)).length > 0);
    assert.ok(Buffer.from(toBinary(ClusterLoadAssignmentSchema, cla)).includes(Buffer.from('10.99.0.1')), 'the new endpoint is in the assignment');
    assert.equal(after.clusters, before.clusters, 'clusters do not depend on endpoints: still shared');
    const other = after.endpoints.find((c) => !c.clusterName.endsWith(target.hostname));
    if (other) assert.ok(before.endpoints.includes(other), 'assignments of other hosts are the cached ones');
  });

  test('binding to another model drops every entry', () => {
    const first = load([ROUTE_SERVICES, 'translate/route-rules.yaml']);
    const cache = new TranslationCache();
    const p = proxy({ namespace: 'bookinfo' });
    const a = translateProxy({ model: first.model, registry: first.registry, proxy: p }, cache);
    const second = load([ROUTE_SERVICES, 'translate/route-rules.yaml']);
    const b = translateProxy({ model: second.model, registry: second.registry, proxy: p }, cache);
    assert.notEqual(b.clusters, a.clusters, 'a new model gets new pieces');
    assert.deepEqual(bytesOf(b), bytesOf(a), 'equal configuration, equal output');
    assert.equal(cache.bind(second.model, second.registry.services()), true, 'bound to the second model');
    assert.equal(cache.bind(first.model, first.registry.services()), false, 'rebinding to the first drops the entries');
    assert.equal(cache.sections.size, 0);
    assert.equal(cache.clusters.size, 0);
  });

  test('lists of the same resources encode to one map, whatever list object they come in', () => {
    const cache = new TranslationCache();
    const c1 = create(ClusterSchema, { name: 'outbound|80||a.ns.svc.cluster.local' });
    const c2 = create(ClusterSchema, { name: 'outbound|80||b.ns.svc.cluster.local' });
    const url = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
    const first = cache.encodeList(url, ClusterSchema, [c1, c2], (c) => c.name);
    const again = cache.encodeList(url, ClusterSchema, [c1, c2], (c) => c.name);
    assert.equal(again.resources, first.resources, 'another list of the same messages: the same map');
    const reordered = cache.encodeList(url, ClusterSchema, [c2, c1], (c) => c.name);
    assert.notEqual(reordered.resources, first.resources, 'another order is another map');
    assert.deepEqual([...reordered.resources.keys()], [c2.name, c1.name]);
    const fewer = cache.encodeList(url, ClusterSchema, [c1], (c) => c.name);
    assert.notEqual(fewer.resources, first.resources, 'other resources, another map');
    assert.equal(fewer.resources.size, 1);
    // An equal message that is another object is packed into the same bytes, as another resource object: the
    // maps stay apart (sharing follows resource identity), with equal contents.
    const other = cache.encodeList(url, ClusterSchema, [create(ClusterSchema, { name: c1.name }), c2], (c) => c.name);
    assert.notEqual(other.resources, first.resources);
    assert.equal(other.resources.get(c1.name)!.version, first.resources.get(c1.name)!.version);
    const p = load([ROUTE_SERVICES, 'translate/route-rules.yaml']);
    cache.bind(p.model, p.registry.services());
    const afterBind = cache.encodeList(url, ClusterSchema, [c1, c2], (c) => c.name);
    assert.notEqual(afterBind.resources, first.resources, 'binding to a model dropped the shared maps');
    assert.equal(afterBind.resources.get(c1.name), first.resources.get(c1.name), 'encodings of a message are kept');
    assert.equal(cache.encodeList(url, ClusterSchema, [c1, c2], (c) => c.name).resources, afterBind.resources);
  });

  test('cache maps stay below their bound by dropping their oldest entries', () => {
    const m = new BoundedMap<number, number>(8);
    for (let i = 0; i < 20; i++) m.set(i, i);
    assert.ok(m.size <= 8);
    assert.ok(m.has(19) && m.has(18), 'the newest entries stay');
    assert.ok(!m.has(0), 'the oldest went');
    m.set(19, 1);
    assert.equal(m.get(19), 1, 'replacing an entry drops nothing');
  });
});
