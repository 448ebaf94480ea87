// Mutual TLS in the translation (src/controlplane/translate/security/mtls.ts): PeerAuthentication precedence
// (workload selector over namespace over mesh, UNSET inheriting, portLevelMtls), the inbound chains of each mode
// (STRICT TLS only, PERMISSIVE TLS + plaintext behind the TLS inspector, DISABLE plaintext), proxies without a
// workload certificate, auto mTLS (transport_socket_matches, SAN = the service accounts as SPIFFE ids, Istio SNI,
// in-mesh ALPN), ISTIO_MUTUAL / DISABLE DestinationRules, DISABLE endpoints losing tlsMode, and proxyless gRPC
// clients without mTLS.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Any } from '@bufbuild/protobuf/wkt';
import { unpack } from '../../src/xds/index.js';
import { DownstreamTlsContextSchema, UpstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import type { Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { mtlsMode } from '../../src/controlplane/translate/security/mtls.js';
import { translateYaml } from '../helpers/translate.js';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { TranslationCache } from '../../src/controlplane/translate/cache.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: {name: server, namespace: app}
spec:
  selector: {app: server}
  ports: [{name: http, port: 8080}, {name: tcp-db, port: 5432}, {name: grpc, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-1, namespace: app}
spec: {address: 10.0.0.1, serviceAccount: server-sa, labels: {app: server, security.istio.io/tlsMode: istio}, ports: {http: 8080, tcp-db: 5432, grpc: 9090}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: server-2, namespace: app}
spec: {address: 10.0.0.2, serviceAccount: other-sa, labels: {app: server, security.istio.io/tlsMode: istio}, ports: {http: 8080, tcp-db: 5432, grpc: 9090}}
`;

const pa = (ns: string, name: string, spec: string) => `---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: ${name}, namespace: ${ns}}\nspec:\n${spec}\n`;

function model(extra: string) {
  const parsed = parseConfigText(SERVICES + extra, 'mesh.yaml');
  assert.deepEqual(parsed.diagnostics, []);
  return buildModel(parsed.resources).model;
}

const INBOUND = [
  { port: 8080, targetPort: 18080, protocol: 'http' },
  { port: 5432, targetPort: 15432, protocol: 'tcp' },
  { port: 7000, targetPort: 17000 },
];

const node = (o: { ns?: string; app?: string; identity?: boolean; type?: string; transparent?: boolean } = {}) => ({
  id: 'n',
  metadata: {
    NAMESPACE: o.ns ?? 'app',
    SERVICE_ACCOUNT: 'server-sa',
    LABELS: { app: o.app ?? 'server' },
    ...(o.identity === false ? {} : { WEFT_WORKLOAD_IDENTITY: 'true' }),
    WEFT_INBOUND: INBOUND,
    ...(o.transparent ? { WEFT_MODE: 'transparent' } : {}),
    ...(o.type === 'grpc' ? { GENERATOR: 'grpc' } : {}),
  } as never,
});

function inbound(listeners: Listener[], port: number): Listener {
  const l = listeners.find((x) => x.name === `inbound|${port}`);
  assert.ok(l, `inbound|${port}`);
  return l;
}

const chains = (l: Listener) => l.filterChains.map((c) => `${c.filterChainMatch?.transportProtocol ?? ''}[${c.filterChainMatch?.applicationProtocols.join(',') ?? ''}]${c.transportSocket ? '+tls' : ''}`);
const filters = (l: Listener) => l.listenerFilters.map((f) => f.name.replace('envoy.filters.listener.', ''));

describe('PeerAuthentication precedence', () => {
  test('mesh default, mesh policy, namespace, workload selector, portLevelMtls, UNSET inherits', () => {
    const m = (yaml: string, ns = 'app', labels = { app: 'server' }, port = 8080) => mtlsMode(model(yaml), ns, labels, port);
    assert.equal(m(''), 'PERMISSIVE', "Istio's default");
    assert.equal(m(pa('weft-system', 'default', '  mtls: {mode: STRICT}')), 'STRICT');
    assert.equal(m(pa('weft-system', 'default', '  mtls: {mode: STRICT}') + pa('app', 'ns', '  mtls: {mode: DISABLE}')), 'DISABLE', 'namespace over mesh');
    assert.equal(m(pa('weft-system', 'default', '  mtls: {mode: STRICT}') + pa('app', 'ns', '  mtls: {mode: UNSET}')), 'STRICT', 'UNSET inherits');
    const wl = pa('app', 'ns', '  mtls: {mode: STRICT}') + pa('app', 'wl', '  selector: {matchLabels: {app: server}}\n  mtls: {mode: PERMISSIVE}\n  portLevelMtls: {5432: {mode: DISABLE}}');
    assert.equal(m(wl), 'PERMISSIVE', 'workload over namespace');
    assert.equal(m(wl, 'app', { app: 'server' }, 5432), 'DISABLE', 'portLevelMtls');
    assert.equal(m(wl, 'app', { app: 'other' }), 'STRICT', 'selector does not match: namespace');
    assert.equal(m(wl, 'elsewhere'), 'PERMISSIVE', 'another namespace: mesh default');
  });
});

describe('inbound chains', () => {
  test('PERMISSIVE (default): TLS and plaintext chains behind the TLS inspector; HTTP, TCP and sniffed ports', () => {
    const r = translateYaml(SERVICES, 'mesh.yaml', node());
    const http = inbound(r.listeners, 8080);
    assert.deepEqual(filters(http), ['tls_inspector']);
    assert.deepEqual(chains(http), ['tls[]+tls', 'raw_buffer[]']);
    const sniffed = inbound(r.listeners, 7000);
    assert.deepEqual(filters(sniffed), ['tls_inspector', 'http_inspector']);
    assert.deepEqual(chains(sniffed), ['tls[istio-http/1.0,istio-http/1.1,istio-h2]+tls', 'tls[]+tls', 'raw_buffer[http/1.0,http/1.1,h2c]', 'raw_buffer[]']);
    const ctx = unpack(DownstreamTlsContextSchema, http.filterChains[0]!.transportSocket!.configType.value as Any);
    assert.equal(ctx.requireClientCertificate, true);
    assert.deepEqual(ctx.commonTlsContext?.tlsCertificateSdsSecretConfigs.map((s) => s.name), ['default']);
    const v = ctx.commonTlsContext?.validationContextType;
    assert.equal(v?.case, 'combinedValidationContext');
    if (v?.case === 'combinedValidationContext') {
      assert.equal(v.value.validationContextSdsSecretConfig?.name, 'ROOTCA');
      assert.equal(v.value.defaultValidationContext?.matchTypedSubjectAltNames[0]?.matcher?.matchPattern.value, 'spiffe://cluster.local/');
    }
    assert.deepEqual(ctx.commonTlsContext?.alpnProtocols, ['h2', 'http/1.1']);
  });

  test('STRICT: TLS chains only; DISABLE: plaintext; portLevelMtls per port; virtualInbound in transparent mode', () => {
    const strict = translateYaml(SERVICES + pa('app', 'ns', '  mtls: {mode: STRICT}\n---\n' + pa('app', 'wl', '  selector: {matchLabels: {app: server}}\n  portLevelMtls: {5432: {mode: DISABLE}}').slice(4)), 'mesh.yaml', node());
    assert.deepEqual(chains(inbound(strict.listeners, 8080)), ['tls[]+tls']);
    assert.deepEqual(filters(inbound(strict.listeners, 8080)), ['tls_inspector']);
    assert.deepEqual(chains(inbound(strict.listeners, 5432)), ['[]'], 'port-level DISABLE: plaintext');
    assert.deepEqual(chains(inbound(strict.listeners, 7000)), ['tls[istio-http/1.0,istio-http/1.1,istio-h2]+tls', 'tls[]+tls']);
    const disabled = translateYaml(SERVICES + pa('weft-system', 'default', '  mtls: {mode: DISABLE}'), 'mesh.yaml', node());
    assert.deepEqual(chains(inbound(disabled.listeners, 8080)), ['[]']);
    assert.deepEqual(filters(inbound(disabled.listeners, 8080)), []);
    const transparent = translateYaml(SERVICES + pa('app', 'ns', '  mtls: {mode: STRICT}'), 'mesh.yaml', node({ transparent: true }));
    const vi = transparent.listeners.find((l) => l.name === 'virtualInbound')!;
    assert.deepEqual(filters(vi), ['original_dst', 'tls_inspector']);
    const on8080 = vi.filterChains.filter((c) => c.filterChainMatch?.destinationPort === 8080);
    assert.deepEqual(on8080.map((c) => c.filterChainMatch?.transportProtocol), ['tls']);
  });

  test('a proxy without a workload certificate: PERMISSIVE serves plaintext, STRICT refuses all and says why', () => {
    const r = translateYaml(SERVICES, 'mesh.yaml', node({ identity: false }));
    assert.deepEqual(chains(inbound(r.listeners, 8080)), ['[]']);
    const s = translateYaml(SERVICES + pa('app', 'ns', '  mtls: {mode: STRICT}'), 'mesh.yaml', node({ identity: false }));
    assert.deepEqual(chains(inbound(s.listeners, 8080)), ['tls[]+tls']);
    assert.ok(s.errors.some((e) => /inbound port 8080 is STRICT mTLS but the proxy has no workload certificate/.test(e.message)));
  });
});

describe('client side', () => {
  const upstream = (c: Cluster | undefined) => {
    assert.ok(c);
    const ts = c.transportSocket ?? c.transportSocketMatches[0]?.transportSocket;
    return unpack(UpstreamTlsContextSchema, ts!.configType.value as Any);
  };
  const cluster = (r: ReturnType<typeof translateYaml>, name: string) => r.clusters.find((c) => c.name === name);

  test('auto mTLS: tlsMode istio → ISTIO_MUTUAL with the service accounts as SANs, Istio SNI, in-mesh ALPN', () => {
    const r = translateYaml(SERVICES, 'mesh.yaml', node({ ns: 'client', app: 'client' }));
    const http = cluster(r, 'outbound|8080||server.app.svc.cluster.local')!;
    assert.equal(http.transportSocket, undefined);
    assert.deepEqual(http.transportSocketMatches.map((m) => [m.name, JSON.stringify(m.match)]), [['tlsMode-istio', '{"tlsMode":"istio"}'], ['tlsMode-disabled', '{}']]);
    const ctx = upstream(http);
    assert.equal(ctx.sni, 'outbound_.8080_._.server.app.svc.cluster.local');
    const v = ctx.commonTlsContext!.validationContextType;
    assert.equal(v.case, 'combinedValidationContext');
    if (v.case === 'combinedValidationContext') {
      assert.deepEqual(v.value.defaultValidationContext!.matchTypedSubjectAltNames.map((m) => m.matcher?.matchPattern.value), ['spiffe://cluster.local/ns/app/sa/other-sa', 'spiffe://cluster.local/ns/app/sa/server-sa']);
    }
    assert.deepEqual(ctx.commonTlsContext!.alpnProtocols, ['istio-http/1.1', 'http/1.1']);
    assert.deepEqual(upstream(cluster(r, 'outbound|5432||server.app.svc.cluster.local')).commonTlsContext!.alpnProtocols, ['istio-peer-exchange', 'istio']);
    assert.deepEqual(upstream(cluster(r, 'outbound|9090||server.app.svc.cluster.local')).commonTlsContext!.alpnProtocols, ['istio-h2', 'h2']);
  });

  test('DestinationRule ISTIO_MUTUAL / DISABLE; no workload certificate or enableAutoMtls off → no auto mTLS; proxyless gRPC → none', () => {
    const dr = (mode: string) => `---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: dr, namespace: app}\nspec:\n  host: server.app.svc.cluster.local\n  trafficPolicy: {tls: {mode: ${mode}}}\n`;
    const mutual = translateYaml(SERVICES + dr('ISTIO_MUTUAL'), 'mesh.yaml', node({ ns: 'client', app: 'client' }));
    const c = cluster(mutual, 'outbound|8080||server.app.svc.cluster.local')!;
    assert.equal(c.transportSocketMatches.length, 0);
    assert.equal(upstream(c).sni, 'outbound_.8080_._.server.app.svc.cluster.local');
    const off = translateYaml(SERVICES + dr('DISABLE'), 'mesh.yaml', node({ ns: 'client', app: 'client' }));
    const d = cluster(off, 'outbound|8080||server.app.svc.cluster.local')!;
    assert.equal(d.transportSocket, undefined);
    assert.equal(d.transportSocketMatches.length, 0);
    const noId = translateYaml(SERVICES, 'mesh.yaml', node({ ns: 'client', app: 'client', identity: false }));
    assert.equal(cluster(noId, 'outbound|8080||server.app.svc.cluster.local')!.transportSocketMatches.length, 0);
    const meshOff = translateYaml(SERVICES + '---\napiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {enableAutoMtls: false}\n', 'mesh.yaml', node({ ns: 'client', app: 'client' }));
    assert.equal(cluster(meshOff, 'outbound|8080||server.app.svc.cluster.local')!.transportSocketMatches.length, 0);
    const grpc = translateYaml(SERVICES + dr('ISTIO_MUTUAL'), 'mesh.yaml', node({ ns: 'client', app: 'client', type: 'grpc' }));
    for (const g of grpc.clusters) {
      assert.equal(g.transportSocket, undefined, g.name);
      assert.equal(g.transportSocketMatches.length, 0, g.name);
    }
  });

  test('endpoints of a DISABLE workload port lose tlsMode (auto mTLS sends them plaintext)', () => {
    const r = translateYaml(SERVICES + pa('app', 'wl', '  selector: {matchLabels: {app: server}}\n  portLevelMtls: {5432: {mode: DISABLE}}'), 'mesh.yaml', node({ ns: 'client', app: 'client' }));
    const tlsMode = (name: string) => r.endpoints.find((e) => e.clusterName === name)!.endpoints.flatMap((g) => g.lbEndpoints.map((e) => JSON.stringify(e.metadata?.filterMetadata['envoy.transport_socket_match'] ?? null)));
    assert.deepEqual(tlsMode('outbound|8080||server.app.svc.cluster.local'), ['{"tlsMode":"istio"}', '{"tlsMode":"istio"}']);
    assert.deepEqual(tlsMode('outbound|5432||server.app.svc.cluster.local'), ['null', 'null']);
  });
});

describe('translation cache', () => {
  test('two proxies alike but for the workload certificate do not share clusters or listeners', () => {
    const m = model('');
    const reg = new ServiceRegistry();
    reg.setModel(m);
    const cache = new TranslationCache();
    const tr = (identity: boolean) => translateProxy({ model: m, registry: reg, proxy: proxyFromNode(create(NodeSchema, node({ identity }))) }, cache);
    const plain = tr(false);
    const withId = tr(true);
    const c = (r: typeof plain) => r.clusters.find((x) => x.name === 'outbound|8080||server.app.svc.cluster.local')!;
    assert.equal(c(plain).transportSocketMatches.length, 0);
    assert.equal(c(withId).transportSocketMatches.length, 2);
    assert.deepEqual(chains(inbound(plain.listeners, 8080)), ['[]']);
    assert.deepEqual(chains(inbound(withId.listeners, 8080)), ['tls[]+tls', 'raw_buffer[]']);
  });

  test('a workload of a new service account joining through the registry changes the cached clusters\' SANs', () => {
    const m = model('');
    const reg = new ServiceRegistry();
    reg.setModel(m);
    const cache = new TranslationCache();
    const client = proxyFromNode(create(NodeSchema, node({ ns: 'client', app: 'client' })));
    const sans = () => {
      const r = translateProxy({ model: m, registry: reg, proxy: client }, cache);
      const c = r.clusters.find((x) => x.name === 'outbound|8080||server.app.svc.cluster.local')!;
      const ctx = unpack(UpstreamTlsContextSchema, c.transportSocketMatches[0]!.transportSocket!.configType.value as Any);
      const v = ctx.commonTlsContext!.validationContextType;
      return v.case === 'combinedValidationContext' ? v.value.defaultValidationContext!.matchTypedSubjectAltNames.map((x) => x.matcher?.matchPattern.value) : [];
    };
    assert.deepEqual(sans(), ['spiffe://cluster.local/ns/app/sa/other-sa', 'spiffe://cluster.local/ns/app/sa/server-sa']);
    reg.register({ name: 'vm', namespace: 'app', address: '10.0.0.9', labels: { app: 'server', 'security.istio.io/tlsMode': 'istio' }, ports: { http: 8080 }, serviceAccount: 'vm-sa', sidecar: true, source: 'Registered', ttlMs: 0 });
    assert.deepEqual(sans(), ['spiffe://cluster.local/ns/app/sa/other-sa', 'spiffe://cluster.local/ns/app/sa/server-sa', 'spiffe://cluster.local/ns/app/sa/vm-sa']);
    reg.deregister('app', 'vm');
    assert.deepEqual(sans(), ['spiffe://cluster.local/ns/app/sa/other-sa', 'spiffe://cluster.local/ns/app/sa/server-sa']);
  });
});
