// Gateway translation (router proxies): listeners per server port, RDS from VirtualServices bound with `gateways`
// and HTTPRoutes bound with parentRefs, TLS modes, SNI chains, httpsRedirect, credential Secrets, and the errors
// for a port conflict and an unknown credential. Real config (YAML → model) and a real service registry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { unpack } from '../../src/xds/index.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import type { Credential, CredentialView } from '../../src/controlplane/translate/gateway/tls.js';
import type { Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { FilterChain } from '../../src/xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { VirtualHost_TlsRequirementType } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { DownstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import type { DownstreamTlsContext } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { translateYaml } from '../helpers/translate.js';

const yaml = readFileSync(fileURLToPath(new URL('../../../test/fixtures/gateway/translate.yaml', import.meta.url)), 'utf8');

const creds: Record<string, Credential> = {
  'bookinfo-cred': { certChainPem: 'CERT-bookinfo', keyPem: 'KEY-bookinfo' },
  'mtls-cred': { certChainPem: 'CERT-mtls', keyPem: 'KEY-mtls', caPem: 'CA-mtls' },
};
const view: CredentialView = { get: (n) => creds[n], where: 'the test credentials' };

function gateway(labels: Record<string, string>): ProxyResources {
  return translateYaml(yaml, 'translate.yaml', { id: 'gw', metadata: { NAMESPACE: 'default', LABELS: labels, WEFT_PROXY_TYPE: 'router' } as never }, { credentials: view });
}

function listener(res: ProxyResources, name: string): Listener {
  const l = res.listeners.find((x) => x.name === name);
  assert.ok(l, `listener ${name} in ${res.listeners.map((x) => x.name).join(', ')}`);
  return l;
}

function hcmRds(chain: FilterChain): string {
  const f = chain.filters[0]!;
  assert.equal(f.configType.case, 'typedConfig');
  const hcm = unpack(HttpConnectionManagerSchema, f.configType.value!);
  assert.equal(hcm.routeSpecifier.case, 'rds');
  return hcm.routeSpecifier.value!.routeConfigName;
}

function tlsContext(chain: FilterChain): DownstreamTlsContext {
  const ts = chain.transportSocket;
  assert.ok(ts, 'chain has a transport socket');
  assert.equal(ts.name, 'envoy.transport_sockets.tls');
  assert.equal(ts.configType.case, 'typedConfig');
  return unpack(DownstreamTlsContextSchema, ts.configType.value!);
}

function tcpCluster(chain: FilterChain): string {
  const f = chain.filters[0]!;
  assert.equal(f.configType.case, 'typedConfig');
  const t = unpack(TcpProxySchema, f.configType.value!);
  assert.equal(t.clusterSpecifier.case, 'cluster');
  return t.clusterSpecifier.value!;
}

describe('gateway translation (Istio Gateway)', () => {
  const res = gateway({ istio: 'ingressgateway' });

  test('one listener per server port, no sidecar listeners', () => {
    assert.deepEqual(res.listeners.map((l) => l.name), ['0.0.0.0_8080', '0.0.0.0_8081', '0.0.0.0_8443', '0.0.0.0_9443', '0.0.0.0_9444', '0.0.0.0_9445', '0.0.0.0_15443']);
    const a = listener(res, '0.0.0.0_8080').address?.address;
    assert.equal(a?.case, 'socketAddress');
    assert.equal(a.value.address, '0.0.0.0');
    assert.deepEqual(a.value.portSpecifier, { case: 'portValue', value: 8080 });
  });

  test('plain HTTP: http.<port> with virtual hosts from VirtualServices bound to the gateway only', () => {
    assert.equal(hcmRds(listener(res, '0.0.0.0_8080').filterChains[0]!), 'http.8080');
    const rc = res.routes.find((r) => r.name === 'http.8080');
    assert.ok(rc);
    assert.deepEqual(rc.virtualHosts.map((v) => v.name), ['bookinfo.example.com:8080', 'internal.example.com:8080', 'mtls.example.com:8080']);
    const vh = rc.virtualHosts[0]!;
    assert.deepEqual(vh.domains, ['bookinfo.example.com', 'bookinfo.example.com:*']);
    const r = vh.routes[0]!;
    assert.equal(r.match?.pathSpecifier.case, 'prefix');
    assert.equal(r.match?.pathSpecifier.value, '/productpage');
    assert.equal(r.action.case, 'route');
    assert.deepEqual(r.action.value?.clusterSpecifier, { case: 'cluster', value: 'outbound|9080||productpage.default.svc.cluster.local' });
    // The mesh-only VirtualService for reviews is not on the gateway.
    assert.ok(!res.routes.some((rc2) => rc2.virtualHosts.some((v) => v.name.startsWith('reviews'))));
  });

  test('httpsRedirect: require_tls ALL on the server hosts, even without a route', () => {
    const rc = res.routes.find((r) => r.name === 'http.8081');
    assert.ok(rc);
    assert.deepEqual(rc.virtualHosts.map((v) => [v.name, v.requireTls]), [['secure.example.com:8081', VirtualHost_TlsRequirementType.ALL]]);
  });

  test('SIMPLE: server_names from hosts, SDS kubernetes://<credentialName>, https.<port>.<portName>.<gateway>.<ns> route', () => {
    const chain = listener(res, '0.0.0.0_8443').filterChains[0]!;
    assert.deepEqual(chain.filterChainMatch?.serverNames, ['bookinfo.example.com']);
    const ctx = tlsContext(chain);
    assert.ok(!ctx.requireClientCertificate);
    assert.deepEqual(ctx.commonTlsContext?.tlsCertificateSdsSecretConfigs.map((s) => s.name), ['kubernetes://bookinfo-cred']);
    assert.equal(ctx.commonTlsContext?.tlsCertificateSdsSecretConfigs[0]?.sdsConfig?.configSourceSpecifier.case, 'ads');
    assert.deepEqual(ctx.commonTlsContext?.alpnProtocols, ['h2', 'http/1.1']);
    assert.equal(hcmRds(chain), 'https.8443.https.bookinfo-gateway.default');
    const rc = res.routes.find((r) => r.name === 'https.8443.https.bookinfo-gateway.default');
    assert.deepEqual(rc?.virtualHosts.map((v) => v.name), ['bookinfo.example.com:8443']);
    assert.deepEqual(
      listener(res, '0.0.0.0_8443').listenerFilters.map((f) => f.name),
      ['envoy.filters.listener.tls_inspector'],
    );
  });

  test('MUTUAL: client certificates required, verified against kubernetes://<credentialName>-cacert', () => {
    const ctx = tlsContext(listener(res, '0.0.0.0_9443').filterChains[0]!);
    assert.equal(ctx.requireClientCertificate, true);
    const v = ctx.commonTlsContext?.validationContextType;
    assert.equal(v?.case, 'combinedValidationContext');
    assert.equal(v.value.validationContextSdsSecretConfig?.name, 'kubernetes://mtls-cred-cacert');
  });

  test('ISTIO_MUTUAL: the workload certificate (default) and the mesh root (ROOTCA)', () => {
    const ctx = tlsContext(listener(res, '0.0.0.0_9445').filterChains[0]!);
    assert.equal(ctx.requireClientCertificate, true);
    assert.deepEqual(ctx.commonTlsContext?.tlsCertificateSdsSecretConfigs.map((s) => s.name), ['default']);
    const v = ctx.commonTlsContext?.validationContextType;
    assert.equal(v?.case, 'combinedValidationContext');
    assert.equal(v.value.validationContextSdsSecretConfig?.name, 'ROOTCA');
  });

  test('PASSTHROUGH: a chain per TLS route with its SNI hosts, tcp_proxy to the destination', () => {
    const l = listener(res, '0.0.0.0_9444');
    assert.equal(l.filterChains.length, 1);
    const chain = l.filterChains[0]!;
    assert.deepEqual(chain.filterChainMatch?.serverNames, ['db.passthrough.example']);
    assert.equal(chain.transportSocket, undefined);
    assert.equal(tcpCluster(chain), 'outbound|443||db.passthrough.example');
  });

  test("AUTO_PASSTHROUGH: Istio's SNI form outbound_.<port>_.<subset>_.<host> per service port", () => {
    const chains = listener(res, '0.0.0.0_15443').filterChains;
    const names = chains.map((c) => c.filterChainMatch?.serverNames[0]);
    assert.deepEqual(names, ['outbound_.9080_._.productpage.default.svc.cluster.local', 'outbound_.9080_._.reviews.default.svc.cluster.local']);
    assert.equal(tcpCluster(chains[0]!), 'outbound|9080||productpage.default.svc.cluster.local');
  });

  test('credential Secrets are sent for the credentials the listeners name', () => {
    const names = (res.secrets ?? []).map((s) => s.name);
    assert.deepEqual(names, ['kubernetes://bookinfo-cred', 'kubernetes://mtls-cred', 'kubernetes://mtls-cred-cacert']);
    const cert = res.secrets![0]!;
    assert.equal(cert.type.case, 'tlsCertificate');
    assert.deepEqual(cert.type.value?.certificateChain?.specifier, { case: 'inlineString', value: 'CERT-bookinfo' });
    const ca = res.secrets![2]!;
    assert.equal(ca.type.case, 'validationContext');
    assert.deepEqual(ca.type.value?.trustedCa?.specifier, { case: 'inlineString', value: 'CA-mtls' });
  });

  test('a port conflict and an unknown credential are reported, naming the Gateway', () => {
    const clash = res.errors.find((e) => e.message.includes('port conflict'));
    assert.ok(clash, JSON.stringify(res.errors));
    assert.equal(clash.source, 'Gateway default/clash');
    assert.match(clash.message, /Gateway default\/clash servers\[0\] \(port 8080 HTTPS "https"\) is TLS but port 8080 already serves HTTP for Gateway default\/bookinfo-gateway servers\[0\]/);
    const missing = res.errors.find((e) => e.message.includes('"nope"'));
    assert.ok(missing, JSON.stringify(res.errors));
    assert.equal(missing.source, 'Gateway default/clash');
    assert.match(missing.message, /credential "nope" was not found in the test credentials: server left out/);
    assert.ok(!res.listeners.some((l) => l.name === '0.0.0.0_8444'));
  });

  test('clusters: outbound clusters and BlackHoleCluster only', () => {
    const names = res.clusters.map((c) => c.name).sort();
    assert.ok(names.includes('outbound|9080||productpage.default.svc.cluster.local'));
    assert.ok(names.includes('BlackHoleCluster'));
    assert.ok(!names.includes('PassthroughCluster'));
  });
});

describe('gateway translation (Gateway API)', () => {
  test('the Gateway runs on proxies labelled gateway.networking.k8s.io/gateway-name in its namespace; HTTPRoute hostnames are intersected', () => {
    const res = gateway({ 'gateway.networking.k8s.io/gateway-name': 'api-gw' });
    assert.deepEqual(res.listeners.map((l) => l.name), ['0.0.0.0_8090', '0.0.0.0_8493']);
    const rc = res.routes.find((r) => r.name === 'http.8090');
    assert.ok(rc);
    assert.deepEqual(rc.virtualHosts.map((v) => [v.name, v.domains]), [['a.api.example.com:8090', ['a.api.example.com', 'a.api.example.com:*']]]);
    const a = rc.virtualHosts[0]!.routes[0]!.action;
    assert.equal(a.case, 'route');
    assert.deepEqual(a.value?.clusterSpecifier, { case: 'cluster', value: 'outbound|9080||reviews.default.svc.cluster.local' });
    assert.deepEqual(res.errors, []);
    // An HTTPS listener (tls.mode Terminate) serves certificateRefs[0] as a credential.
    const chain = listener(res, '0.0.0.0_8493').filterChains[0]!;
    assert.deepEqual(chain.filterChainMatch?.serverNames, ['*.api.example.com']);
    assert.deepEqual(tlsContext(chain).commonTlsContext?.tlsCertificateSdsSecretConfigs.map((s) => s.name), ['kubernetes://bookinfo-cred']);
    assert.equal(hcmRds(chain), 'https.8493.https.api-gw.default');
    assert.deepEqual(res.routes.find((r) => r.name === 'https.8493.https.api-gw.default')?.virtualHosts.map((v) => v.name), ['a.api.example.com:8493']);
    assert.deepEqual(res.secrets?.map((s) => s.name), ['kubernetes://bookinfo-cred']);
  });

  test('a proxy of another namespace does not run it', () => {
    const res = translateYaml(yaml, 'translate.yaml', { id: 'gw2', metadata: { NAMESPACE: 'other', LABELS: { 'gateway.networking.k8s.io/gateway-name': 'api-gw' }, WEFT_PROXY_TYPE: 'router' } as never });
    assert.deepEqual(res.listeners, []);
  });

  test('without a credentials directory a credentialName is reported', () => {
    const res = translateYaml(yaml, 'translate.yaml', { id: 'gw3', metadata: { NAMESPACE: 'default', LABELS: { istio: 'ingressgateway' }, WEFT_PROXY_TYPE: 'router' } as never });
    assert.ok(res.errors.some((e) => /no credentials directory is configured/.test(e.message) && e.source === 'Gateway default/bookinfo-gateway'));
    assert.ok(!res.listeners.some((l) => l.name === '0.0.0.0_8443'));
  });
});
