// CDS and EDS translation: cluster names and types, every DestinationRule mapping (load balancers, connection
// pool → circuit breakers, outlier detection, port-level and subset overrides, client TLS), Istio's defaults, the
// special clusters, proxyless gRPC clusters, and ClusterLoadAssignments (localities, weights, health, metadata,
// locality failover / distribute / failoverPriority relative to the proxy). Real model and registry from YAML.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { JsonObject } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import type { MeshModel } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import type { ProxyInfo } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { buildClusters, HTTP_PROTOCOL_OPTIONS_KEY, MAX_UINT32 } from '../../src/controlplane/translate/cluster.js';
import { buildEndpoints } from '../../src/controlplane/translate/endpoint.js';
import type { TranslateError } from '../../src/controlplane/translate/index.js';
import { computeScope } from '../../src/controlplane/translate/scope.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { unpack } from '../../src/xds/index.js';
import type { Any } from '@bufbuild/protobuf/wkt';
import {
  ClusterSchema,
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  Cluster_LbPolicy,
} from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { ApiVersion } from '../../src/xds/gen/envoy/config/core/v3/config_source_pb.js';
import { HealthStatus } from '../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { ClusterLoadAssignment } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { HttpProtocolOptionsSchema } from '../../src/xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import type { HttpProtocolOptions } from '../../src/xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import { UpstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import type { UpstreamTlsContext } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';

const FIXTURES = new URL('../../../test/fixtures/translate/', import.meta.url);

function load(file: string): { model: MeshModel; registry: ServiceRegistry } {
  const text = readFileSync(new URL(file, FIXTURES), 'utf8');
  const parsed = parseConfigText(text, file);
  assert.deepEqual(parsed.diagnostics, [], 'the YAML parses');
  const built = buildModel(parsed.resources);
  assert.deepEqual(built.diagnostics.filter((d) => d.severity === 'Error'), [], 'the config is valid');
  const registry = new ServiceRegistry();
  registry.setModel(built.model);
  return { model: built.model, registry };
}

interface NodeOpts {
  namespace: string;
  labels?: Record<string, string>;
  locality?: [string, string, string?];
  generator?: string;
  type?: 'router';
  inbound?: Array<{ port: number; targetPort: number; protocol?: string }>;
  ips?: string;
}

function proxy(o: NodeOpts): ProxyInfo {
  const metadata: JsonObject = { NAMESPACE: o.namespace, LABELS: o.labels ?? {} };
  if (o.generator) metadata['GENERATOR'] = o.generator;
  if (o.type) metadata['WEFT_PROXY_TYPE'] = o.type;
  if (o.inbound) metadata['WEFT_INBOUND'] = o.inbound;
  if (o.ips) metadata['INSTANCE_IPS'] = o.ips;
  const node = create(NodeSchema, { id: `test~${o.namespace}`, metadata });
  if (o.locality) node.locality = { $typeName: 'envoy.config.core.v3.Locality', region: o.locality[0], zone: o.locality[1], subZone: o.locality[2] ?? '' };
  return proxyFromNode(node);
}

/** Every resource must survive binary encoding unchanged. */
function assertEncodes(clusters: Cluster[], clas: ClusterLoadAssignment[] = []): void {
  for (const c of clusters) {
    const bytes = toBinary(ClusterSchema, c);
    assert.ok(equals(ClusterSchema, fromBinary(ClusterSchema, bytes), c), `${c.name} round-trips through binary`);
  }
  for (const cla of clas) {
    const bytes = toBinary(ClusterLoadAssignmentSchema, cla);
    assert.ok(equals(ClusterLoadAssignmentSchema, fromBinary(ClusterLoadAssignmentSchema, bytes), cla), `${cla.clusterName} round-trips`);
  }
}

function translate(file: string, p: ProxyInfo, setup?: (r: ServiceRegistry) => void) {
  const { model, registry } = load(file);
  setup?.(registry);
  const input = { model, registry, proxy: p };
  const scope = computeScope(model, registry, p);
  const { clusters, errors } = buildClusters(input, scope);
  const byName = new Map(clusters.map((c) => [c.name, c]));
  const get = (name: string): Cluster => {
    const c = byName.get(name);
    assert.ok(c, `cluster ${name} exists (have: ${[...byName.keys()].join(', ')})`);
    return c;
  };
  const eds = (names: string[]) => {
    const out = buildEndpoints(input, scope, names);
    assertEncodes([], out.endpoints);
    return out;
  };
  const cla = (name: string): ClusterLoadAssignment => {
    const r = eds([name]).endpoints;
    assert.equal(r.length, 1, `one ClusterLoadAssignment for ${name}`);
    return r[0]!;
  };
  assertEncodes(clusters);
  return { clusters, errors, byName, get, eds, cla, scope };
}

function httpOptions(c: Cluster): HttpProtocolOptions | undefined {
  const any = c.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY];
  return any ? unpack(HttpProtocolOptionsSchema, any) : undefined;
}

/** `httpProtocolOptions` / `http2ProtocolOptions` (explicit), `useDownstreamProtocolConfig`, or undefined. */
function upstreamProtocol(h: HttpProtocolOptions | undefined): string | undefined {
  const u = h?.upstreamProtocolOptions;
  if (!u || u.case === undefined) return undefined;
  return u.case === 'explicitHttpConfig' ? u.value.protocolConfig.case : u.case;
}

function tlsOf(c: Cluster): UpstreamTlsContext | undefined {
  if (!c.transportSocket) return undefined;
  assert.equal(c.transportSocket.name, 'envoy.transport_sockets.tls');
  assert.equal(c.transportSocket.configType.case, 'typedConfig');
  return unpack(UpstreamTlsContextSchema, c.transportSocket.configType.value!);
}

function seconds(d: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return d === undefined ? undefined : Number(d.seconds) + d.nanos / 1e9;
}

function thresholds(c: Cluster) {
  assert.equal(c.circuitBreakers?.thresholds.length, 1);
  const t = c.circuitBreakers!.thresholds[0]!;
  return { maxConnections: t.maxConnections, maxPendingRequests: t.maxPendingRequests, maxRequests: t.maxRequests, maxRetries: t.maxRetries, trackRemaining: t.trackRemaining };
}

const POLICIES = 'cluster-policies.yaml';
const RESOLUTION = 'cluster-resolution.yaml';
const REVIEWS = 'reviews.shop.svc.cluster.local';
const SHOP_ZONE1 = () => proxy({ namespace: 'shop', labels: { app: 'productpage' }, locality: ['us-east', 'zone-1', 'a'] });

describe('clusters', () => {
  test('one outbound|port|subset|host cluster per service port and DestinationRule subset; none for UDP ports', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    const reviews = t.clusters.map((c) => c.name).filter((n) => n.endsWith(`|${REVIEWS}`));
    const expected: string[] = [];
    for (const port of [9080, 7070, 8000, 5432]) for (const subset of ['', 'v1', 'v2', 'v3', 'sticky', 'upgraded', 'client-protocol']) expected.push(`outbound|${port}|${subset}|${REVIEWS}`);
    assert.deepEqual(reviews.sort(), expected.sort());
    assert.ok(!t.byName.has(`outbound|53||${REVIEWS}`), 'no cluster for the UDP port');
    const c = t.get(`outbound|9080|v1|${REVIEWS}`);
    assert.equal(c.clusterDiscoveryType.case, 'type');
    assert.equal(c.clusterDiscoveryType.value, Cluster_DiscoveryType.EDS);
    assert.equal(c.edsClusterConfig?.serviceName, `outbound|9080|v1|${REVIEWS}`);
    assert.equal(c.edsClusterConfig?.edsConfig?.configSourceSpecifier.case, 'ads');
    assert.equal(c.edsClusterConfig?.edsConfig?.resourceApiVersion, ApiVersion.V3);
    assert.equal(seconds(c.edsClusterConfig?.edsConfig?.initialFetchTimeout), 0, "Istio's initial_fetch_timeout 0");
    assert.deepEqual(c.metadata?.filterMetadata['istio'], {
      services: [{ host: REVIEWS, name: 'reviews', namespace: 'shop' }],
      config: '/apis/networking.istio.io/v1/namespaces/shop/destination-rule/reviews',
      subset: 'v1',
    });
    assert.deepEqual(t.errors, []);
  });

  test("Istio's defaults: 10s connect timeout, 2^32-1 circuit breakers, LEAST_REQUEST, no outlier detection", () => {
    const t = translate(RESOLUTION, proxy({ namespace: 'default' }));
    const c = t.get('outbound|5432||db.default.svc.cluster.local');
    assert.equal(seconds(c.connectTimeout), 10);
    assert.deepEqual(thresholds(c), { maxConnections: MAX_UINT32, maxPendingRequests: MAX_UINT32, maxRequests: MAX_UINT32, maxRetries: MAX_UINT32, trackRemaining: true });
    assert.equal(MAX_UINT32, 2 ** 32 - 1);
    assert.equal(c.lbPolicy, Cluster_LbPolicy.LEAST_REQUEST);
    assert.equal(c.outlierDetection, undefined);
    assert.equal(c.commonLbConfig?.healthyPanicThreshold, undefined);
    assert.equal(c.transportSocket, undefined);
    assert.equal(httpOptions(c), undefined, 'a TCP port without HTTP settings has no HTTP protocol options');
    assert.deepEqual(c.metadata?.filterMetadata['istio'], { services: [{ host: 'db.default.svc.cluster.local', name: 'db', namespace: 'default' }] });
  });

  test('DestinationRule traffic policy: load balancer, connection pool, keepalive, outlier detection', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    const c = t.get(`outbound|9080||${REVIEWS}`);
    assert.equal(c.lbPolicy, Cluster_LbPolicy.ROUND_ROBIN);
    assert.equal(c.lbConfig.case, undefined);
    assert.equal(seconds(c.connectTimeout), 3);
    assert.deepEqual(thresholds(c), { maxConnections: 100, maxPendingRequests: 10, maxRequests: 1000, maxRetries: 3, trackRemaining: true });
    const ka = c.upstreamConnectionOptions?.tcpKeepalive;
    assert.deepEqual([ka?.keepaliveProbes, ka?.keepaliveTime, ka?.keepaliveInterval], [4, 600, 30]);
    const http = httpOptions(c)!;
    assert.equal(seconds(http.commonHttpProtocolOptions?.idleTimeout), 90);
    assert.equal(seconds(http.commonHttpProtocolOptions?.maxConnectionDuration), 3600);
    assert.equal(http.commonHttpProtocolOptions?.maxRequestsPerConnection, 5);
    assert.equal(upstreamProtocol(http), 'httpProtocolOptions', 'an HTTP/1.1 port with HTTP settings: explicit HTTP/1.1');
    const o = c.outlierDetection!;
    assert.equal(o.consecutive5xx, 7);
    assert.equal(o.enforcingConsecutive5xx, 100);
    assert.equal(o.consecutiveGatewayFailure, 3);
    assert.equal(o.enforcingConsecutiveGatewayFailure, 100);
    assert.equal(o.enforcingSuccessRate, 0, 'success-rate ejection is off');
    assert.equal(seconds(o.interval), 5);
    assert.equal(seconds(o.baseEjectionTime), 900);
    assert.equal(o.maxEjectionPercent, 50);
    assert.equal(o.splitExternalLocalOriginErrors, false);
    assert.equal(c.commonLbConfig?.healthyPanicThreshold?.value, 20, 'minHealthPercent → healthy_panic_threshold');
    assert.equal(c.commonLbConfig?.localityConfigSpecifier.case, undefined, 'no locality rules: no locality weighted LB config');
  });

  test('port-level settings replace the destination-level policy for that port (no inheritance)', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    const grpc = t.get(`outbound|7070||${REVIEWS}`);
    assert.deepEqual(thresholds(grpc), { maxConnections: MAX_UINT32, maxPendingRequests: MAX_UINT32, maxRequests: 50, maxRetries: MAX_UINT32, trackRemaining: true });
    assert.equal(grpc.lbPolicy, Cluster_LbPolicy.LEAST_REQUEST, 'the rule-level ROUND_ROBIN is not inherited');
    assert.equal(grpc.outlierDetection, undefined, 'nor its outlier detection');
    assert.equal(seconds(grpc.connectTimeout), 10, 'nor its connect timeout');
    const db = t.get(`outbound|5432||${REVIEWS}`);
    assert.equal(db.lbPolicy, Cluster_LbPolicy.RANDOM);
    assert.equal(db.outlierDetection, undefined);
    assert.equal(thresholds(db).maxConnections, MAX_UINT32);
    // Subsets merge over the port-level policy too.
    const dbV1 = t.get(`outbound|5432|v1|${REVIEWS}`);
    assert.equal(dbV1.lbPolicy, Cluster_LbPolicy.RING_HASH);
    assert.equal(dbV1.outlierDetection, undefined);
  });

  test('subset traffic policies override the rule field by field', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    const v1 = t.get(`outbound|9080|v1|${REVIEWS}`);
    assert.equal(v1.lbPolicy, Cluster_LbPolicy.RING_HASH);
    assert.equal(v1.lbConfig.case, 'ringHashLbConfig');
    assert.equal(v1.lbConfig.value?.minimumRingSize, 4096n);
    assert.equal(v1.outlierDetection?.consecutive5xx, 7, 'outlier detection inherited from the rule');
    assert.equal(thresholds(v1).maxConnections, 100, 'connection pool inherited from the rule');

    const v2 = t.get(`outbound|9080|v2|${REVIEWS}`);
    assert.equal(v2.lbPolicy, Cluster_LbPolicy.MAGLEV);
    assert.equal(v2.lbConfig.case, 'maglevLbConfig');
    assert.equal(v2.lbConfig.value?.tableSize, 65537n);
    assert.deepEqual(thresholds(v2), { maxConnections: 7, maxPendingRequests: MAX_UINT32, maxRequests: MAX_UINT32, maxRetries: MAX_UINT32, trackRemaining: true }, "the subset's connection pool replaces the rule's");
    assert.equal(seconds(v2.connectTimeout), 10);

    const v3 = t.get(`outbound|9080|v3|${REVIEWS}`);
    assert.equal(v3.lbPolicy, Cluster_LbPolicy.LEAST_REQUEST);
    assert.equal(v3.lbConfig.case, 'leastRequestLbConfig');
    assert.equal(seconds(v3.lbConfig.value?.slowStartConfig?.slowStartWindow), 30, 'warmup → slow start window');

    const sticky = t.get(`outbound|9080|sticky|${REVIEWS}`);
    assert.equal(sticky.lbPolicy, Cluster_LbPolicy.RING_HASH);
    assert.equal(sticky.lbConfig.value && 'minimumRingSize' in sticky.lbConfig.value ? sticky.lbConfig.value.minimumRingSize : undefined, 1024n, 'consistent hash without ringHash: ring size 1024');
    const o = sticky.outlierDetection!;
    assert.equal(o.consecutive5xx, 0);
    assert.equal(o.enforcingConsecutive5xx, 0, 'consecutive5xxErrors 0 disables 5xx ejection');
    assert.equal(o.splitExternalLocalOriginErrors, true);
    assert.equal(o.consecutiveLocalOriginFailure, 2);
    assert.equal(o.enforcingConsecutiveLocalOriginFailure, 100);
    assert.equal(o.enforcingLocalOriginSuccessRate, 0);
    assert.equal(seconds(o.interval), 10, 'interval default 10s');
    assert.equal(seconds(o.baseEjectionTime), 30, 'base ejection time default 30s');
    assert.equal(o.maxEjectionPercent, 10, 'max ejection default 10%');
    assert.equal(sticky.commonLbConfig?.healthyPanicThreshold?.value, 0, 'panic threshold set to 0 (minHealthPercent default)');
  });

  test('upstream protocol: HTTP/2 for gRPC ports, downstream protocol for sniffed ports, nothing for TCP', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    assert.equal(upstreamProtocol(httpOptions(t.get(`outbound|7070||${REVIEWS}`))), 'http2ProtocolOptions');
    const sniffed = httpOptions(t.get(`outbound|8000||${REVIEWS}`))!;
    assert.equal(upstreamProtocol(sniffed), 'useDownstreamProtocolConfig');
    const down = sniffed.upstreamProtocolOptions.value as { httpProtocolOptions?: object; http2ProtocolOptions?: object };
    assert.ok(down.httpProtocolOptions && down.http2ProtocolOptions, 'HTTP/1.1 and HTTP/2 options both given');
    const tcp = t.get(`outbound|5432||${REVIEWS}`);
    assert.equal(httpOptions(tcp), undefined);
    // The rule's HTTP settings ride along on the HTTP/1.1 port, and max_concurrent_streams only on HTTP/2 clusters.
    assert.equal(upstreamProtocol(httpOptions(t.get(`outbound|9080||${REVIEWS}`))), 'httpProtocolOptions');
    // h2UpgradePolicy UPGRADE makes an HTTP/1.1 port HTTP/2, with max_concurrent_streams.
    const upgraded = httpOptions(t.get(`outbound|9080|upgraded|${REVIEWS}`))!;
    assert.equal(upstreamProtocol(upgraded), 'http2ProtocolOptions');
    const h2 = upgraded.upstreamProtocolOptions.value as { protocolConfig: { value: { maxConcurrentStreams?: number } } };
    assert.equal(h2.protocolConfig.value.maxConcurrentStreams, 32);
    assert.equal(upstreamProtocol(httpOptions(t.get(`outbound|9080|client-protocol|${REVIEWS}`))), 'useDownstreamProtocolConfig', 'useClientProtocol');
    assert.equal(upstreamProtocol(httpOptions(t.get(`outbound|7070|client-protocol|${REVIEWS}`))), 'useDownstreamProtocolConfig', 'useClientProtocol wins over HTTP/2 ports too');
  });

  test('TLS SIMPLE with files: SNI, CA file, SANs, ALPN h2 on HTTP/2 clusters', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    const tls = tlsOf(t.get(`outbound|9080|v3|${REVIEWS}`))!;
    assert.equal(tls.sni, 'reviews.example.com');
    const vc = tls.commonTlsContext?.validationContextType;
    assert.equal(vc?.case, 'validationContext');
    const v = vc!.value as Extract<NonNullable<typeof vc>, { case: 'validationContext' }>['value'];
    assert.equal(v.trustedCa?.specifier.case, 'filename');
    assert.equal(v.trustedCa?.specifier.value, '/etc/certs/ca.pem');
    assert.deepEqual(v.matchSubjectAltNames.map((m) => [m.matchPattern.case, m.matchPattern.value]), [['exact', 'reviews.example.com']]);
    assert.deepEqual(tls.commonTlsContext?.tlsCertificates, [], 'SIMPLE sends no client certificate');
    assert.deepEqual(tls.commonTlsContext?.alpnProtocols, []);
    assert.equal(httpOptions(t.get(`outbound|9080|v3|${REVIEWS}`))?.upstreamHttpProtocolOptions, undefined, 'SNI given: no auto SNI');
    assert.deepEqual(tlsOf(t.get(`outbound|7070|v3|${REVIEWS}`))?.commonTlsContext?.alpnProtocols, ['h2']);
    assert.equal(t.get(`outbound|9080||${REVIEWS}`).transportSocket, undefined, 'no TLS on clusters whose policy has none');
  });

  test('TLS MUTUAL with files: client certificate, OS roots without a CA file, auto SNI/SAN, ServiceEntry SANs', () => {
    const t = translate(RESOLUTION, proxy({ namespace: 'default' }));
    const c = t.get('outbound|443||api.example.com');
    const tls = tlsOf(c)!;
    assert.equal(tls.sni, '');
    const cert = tls.commonTlsContext!.tlsCertificates[0]!;
    assert.deepEqual([cert.certificateChain?.specifier.value, cert.privateKey?.specifier.value], ['/etc/certs/client.pem', '/etc/certs/client-key.pem']);
    const vc = tls.commonTlsContext!.validationContextType;
    assert.equal(vc.case, 'validationContext');
    const v = vc.value as Extract<typeof vc, { case: 'validationContext' }>['value'];
    assert.equal(v.trustedCa, undefined);
    assert.ok(v.systemRootCerts, 'no caCertificates: verify with the OS CA certificates');
    assert.deepEqual(v.matchSubjectAltNames.map((m) => m.matchPattern.value), ['spiffe://example.com/api'], "the ServiceEntry's subjectAltNames");
    const http = httpOptions(c)!;
    assert.equal(http.upstreamHttpProtocolOptions?.autoSni, true);
    assert.equal(http.upstreamHttpProtocolOptions?.autoSanValidation, true);
  });

  test('credentialName: ignored by sidecars unless the rule has a workloadSelector; SDS secrets over ADS otherwise', () => {
    const plain = translate(RESOLUTION, proxy({ namespace: 'egress', labels: { app: 'other' } }));
    assert.equal(plain.get('outbound|8080||legacy.internal').transportSocket, undefined);
    assert.deepEqual(plain.errors.filter((e) => e.resource.includes('legacy')), [], 'silently, as Istio');

    const selected = translate(RESOLUTION, proxy({ namespace: 'egress', labels: { app: 'egress-client' } }));
    const c = selected.get('outbound|8080||legacy.internal');
    assert.equal(c.metadata?.filterMetadata['istio']?.['config'], '/apis/networking.istio.io/v1/namespaces/egress/destination-rule/legacy-credential-selected');
    const tls = tlsOf(c)!;
    const sds = tls.commonTlsContext!.tlsCertificateSdsSecretConfigs;
    assert.deepEqual(sds.map((s) => s.name), ['kubernetes://legacy-client'], "Istio's SDS name for a credential");
    assert.equal(sds[0]!.sdsConfig?.configSourceSpecifier.case, 'ads');
    const vc = tls.commonTlsContext!.validationContextType;
    assert.equal(vc.case, 'combinedValidationContext');
    const combined = vc.value as Extract<typeof vc, { case: 'combinedValidationContext' }>['value'];
    assert.equal(combined.validationContextSdsSecretConfig?.name, 'kubernetes://legacy-client-cacert');
    assert.deepEqual(combined.defaultValidationContext?.matchSubjectAltNames.map((m) => m.matchPattern.value), ['legacy.internal']);

    const gateway = translate(RESOLUTION, proxy({ namespace: 'default', type: 'router' }));
    const gtls = tlsOf(gateway.get('outbound|8080||legacy.internal'))!;
    assert.deepEqual(gtls.commonTlsContext!.tlsCertificateSdsSecretConfigs, [], 'SIMPLE: no client certificate');
    const gvc = gtls.commonTlsContext!.validationContextType;
    assert.equal(gvc.case, 'combinedValidationContext');
    assert.equal((gvc.value as { validationContextSdsSecretConfig?: { name: string } }).validationContextSdsSecretConfig?.name, 'kubernetes://legacy-ca-cacert');
  });

  test('credentialName: the proxy gets the Secrets its clusters read; a missing credential is reported', () => {
    const { model, registry } = load(RESOLUTION);
    const p = proxy({ namespace: 'egress', labels: { app: 'egress-client' } });
    const view = { where: 'the secrets directory /s', get: (n: string) => (n === 'legacy-client' ? { certChainPem: 'CERT', keyPem: 'KEY', caPem: 'CA' } : undefined) };
    const out = translateProxy({ model, registry, proxy: p, credentials: view });
    const secrets = new Map((out.secrets ?? []).map((s) => [s.name, s]));
    assert.deepEqual([...secrets.keys()].sort(), ['kubernetes://legacy-client', 'kubernetes://legacy-client-cacert']);
    assert.equal(secrets.get('kubernetes://legacy-client')!.type.case, 'tlsCertificate');
    assert.equal(secrets.get('kubernetes://legacy-client-cacert')!.type.case, 'validationContext');
    assert.deepEqual(out.errors.filter((e) => e.resource.startsWith('kubernetes://')), []);

    const missing = translateProxy({ model, registry, proxy: p, credentials: { where: 'the secrets directory /s', get: () => undefined } });
    assert.deepEqual(missing.secrets ?? [], []);
    const errs = missing.errors.filter((e) => e.resource.startsWith('kubernetes://'));
    assert.deepEqual(errs.map((e) => e.resource), ['kubernetes://legacy-client', 'kubernetes://legacy-client-cacert']);
    assert.match(errs[0]!.message, /DestinationRule credentialName: not found in the secrets directory \/s/);

    const other = translateProxy({ model, registry, proxy: proxy({ namespace: 'egress', labels: { app: 'other' } }), credentials: view });
    assert.deepEqual(other.secrets ?? [], [], 'a sidecar the rule does not select gets no credential');
  });

  test('ISTIO_MUTUAL: the mesh mTLS transport socket (SDS default / ROOTCA, Istio SNI); proxyProtocol is reported', () => {
    const t = translate(RESOLUTION, proxy({ namespace: 'default' }));
    const rr = t.get('outbound|80||rr.example.com');
    assert.equal(rr.transportSocket?.name, 'envoy.transport_sockets.tls');
    const ctx = unpack(UpstreamTlsContextSchema, rr.transportSocket!.configType.value as Any);
    assert.equal(ctx.sni, 'outbound_.80_._.rr.example.com');
    assert.deepEqual(ctx.commonTlsContext?.tlsCertificateSdsSecretConfigs.map((c) => c.name), ['default']);
    assert.equal(ctx.commonTlsContext?.validationContextType.case, 'combinedValidationContext');
    assert.deepEqual(rr.transportSocketMatches, []);
    const errs: TranslateError[] = t.errors;
    assert.equal(errs.length, 1);
    assert.equal(errs[0]!.resource, 'outbound|80||rr.example.com');
    assert.match(errs[0]!.message, /proxyProtocol/);
    assert.equal(errs[0]!.source, 'DestinationRule egress/rr-istio-mutual');
  });

  test('cluster types by resolution: DNS, DNS_ROUND_ROBIN, ExternalName, NONE, headless, PASSTHROUGH', () => {
    const t = translate(RESOLUTION, proxy({ namespace: 'default' }));
    const type = (n: string) => t.get(n).clusterDiscoveryType.value;
    const dns = t.get('outbound|443||api.example.com');
    assert.equal(type('outbound|443||api.example.com'), Cluster_DiscoveryType.STRICT_DNS);
    assert.equal(dns.dnsLookupFamily, Cluster_DnsLookupFamily.V4_ONLY);
    assert.equal(seconds(dns.dnsRefreshRate), 60);
    assert.equal(dns.respectDnsTtl, true);
    assert.equal(dns.edsClusterConfig, undefined);
    const addr = (c: Cluster) =>
      c.loadAssignment!.endpoints.flatMap((l) =>
        l.lbEndpoints.map((e) => {
          const sa = e.hostIdentifier.case === 'endpoint' && e.hostIdentifier.value.address?.address.case === 'socketAddress' ? e.hostIdentifier.value.address.address.value : undefined;
          return `${sa?.address}:${sa?.portSpecifier.value}`;
        }),
      );
    assert.deepEqual(addr(dns), ['api.example.com:443'], 'a DNS ServiceEntry without endpoints resolves its host');
    assert.equal(type('outbound|80||rr.example.com'), Cluster_DiscoveryType.LOGICAL_DNS);
    assert.deepEqual(addr(t.get('outbound|80||rr.example.com')), ['rr-backend.example.com:80']);
    assert.deepEqual(addr(t.get('outbound|8080||legacy.internal')), ['legacy-b.internal:8080', 'legacy-a.internal:18080'], 'endpoints grouped by locality, with their ports');
    assert.equal(type('outbound|80||httpbin.default.svc.cluster.local'), Cluster_DiscoveryType.STRICT_DNS);
    assert.deepEqual(addr(t.get('outbound|80||httpbin.default.svc.cluster.local')), ['httpbin.org:80'], 'ExternalName resolves the external name');
    const wiki = t.get('outbound|443||*.wiki.example');
    assert.equal(wiki.clusterDiscoveryType.value, Cluster_DiscoveryType.ORIGINAL_DST, 'NONE without an endpoint source');
    assert.equal(wiki.lbPolicy, Cluster_LbPolicy.CLUSTER_PROVIDED);
    assert.equal(wiki.edsClusterConfig, undefined);
    assert.equal(type('outbound|5432||db.default.svc.cluster.local'), Cluster_DiscoveryType.EDS, 'headless Service with a selector');
    const vms = t.get('outbound|80||vms.internal');
    assert.equal(vms.clusterDiscoveryType.value, Cluster_DiscoveryType.ORIGINAL_DST, 'PASSTHROUGH load balancing');
    assert.equal(vms.lbPolicy, Cluster_LbPolicy.CLUSTER_PROVIDED);
    assert.equal(vms.edsClusterConfig, undefined);
    assert.equal(vms.loadAssignment, undefined);
    assert.equal(t.get('outbound|443||api.example.com').metadata?.filterMetadata['istio']?.['external'], true);
    assert.deepEqual(t.eds(['outbound|80||vms.internal', 'outbound|443||api.example.com']).endpoints, [], 'no EDS for non-EDS clusters');
  });

  test('DNS lookup family follows the proxy IPs', () => {
    const v6 = translate(RESOLUTION, proxy({ namespace: 'default', ips: 'fd00::1,fd00::2' }));
    assert.equal(v6.get('outbound|443||api.example.com').dnsLookupFamily, Cluster_DnsLookupFamily.V6_ONLY);
    const mixed = translate(RESOLUTION, proxy({ namespace: 'default', ips: '10.0.0.1,fd00::1' }));
    assert.equal(mixed.get('outbound|443||api.example.com').dnsLookupFamily, Cluster_DnsLookupFamily.V4_ONLY);
  });

  test('special clusters for sidecars: BlackHoleCluster, PassthroughCluster and inbound|targetPort||', () => {
    const t = translate(RESOLUTION, proxy({
      namespace: 'default',
      inbound: [
        { port: 9080, targetPort: 8080, protocol: 'http' },
        { port: 9081, targetPort: 8080, protocol: 'http' },
        { port: 7070, targetPort: 7000, protocol: 'grpc' },
        { port: 5000, targetPort: 5001 },
      ],
    }));
    const bh = t.get('BlackHoleCluster');
    assert.equal(bh.clusterDiscoveryType.value, Cluster_DiscoveryType.STATIC);
    assert.equal(bh.loadAssignment, undefined);
    assert.equal(bh.lbPolicy, Cluster_LbPolicy.ROUND_ROBIN);
    assert.equal(seconds(bh.connectTimeout), 10);
    const pt = t.get('PassthroughCluster');
    assert.equal(pt.clusterDiscoveryType.value, Cluster_DiscoveryType.ORIGINAL_DST);
    assert.equal(pt.lbPolicy, Cluster_LbPolicy.CLUSTER_PROVIDED);
    const ptHttp = httpOptions(pt)!;
    assert.equal(upstreamProtocol(ptHttp), 'useDownstreamProtocolConfig');
    assert.equal(seconds(ptHttp.commonHttpProtocolOptions?.idleTimeout), 300);
    const inbound = t.clusters.filter((c) => c.name.startsWith('inbound|')).map((c) => c.name);
    assert.deepEqual(inbound, ['inbound|8080||', 'inbound|7000||', 'inbound|5001||'], 'one per target port');
    const in8080 = t.get('inbound|8080||');
    assert.equal(in8080.clusterDiscoveryType.value, Cluster_DiscoveryType.STATIC);
    const ep = in8080.loadAssignment!.endpoints[0]!.lbEndpoints[0]!;
    assert.equal(ep.hostIdentifier.case, 'endpoint');
    const sa = ep.hostIdentifier.value!.address!.address;
    assert.equal(sa.case, 'socketAddress');
    assert.deepEqual([sa.value!.address, sa.value!.portSpecifier.value], ['127.0.0.1', 8080]);
    assert.equal(httpOptions(in8080), undefined, 'HTTP/1.1 inbound: no options');
    assert.equal(upstreamProtocol(httpOptions(t.get('inbound|7000||'))), 'http2ProtocolOptions');
    assert.equal(upstreamProtocol(httpOptions(t.get('inbound|5001||'))), 'useDownstreamProtocolConfig');
  });

  test('PassthroughCluster of an explicit-mode sidecar takes its destination from :authority; transparent ones do not', () => {
    const explicit = translate(RESOLUTION, proxy({ namespace: 'default' })).get('PassthroughCluster');
    assert.equal(explicit.lbConfig.case, 'originalDstLbConfig');
    const od = explicit.lbConfig.value as { useHttpHeader: boolean; httpHeaderName: string };
    assert.equal(od.useHttpHeader, true);
    assert.equal(od.httpHeaderName, ':authority');
    const node = create(NodeSchema, { id: 'test~default', metadata: { NAMESPACE: 'default', LABELS: {}, INTERCEPTION_MODE: 'REDIRECT' } });
    const transparent = translate(RESOLUTION, proxyFromNode(node)).get('PassthroughCluster');
    assert.equal(transparent.lbConfig.case, undefined, 'Istio: the connection original destination');
  });

  test('gateways get BlackHoleCluster only; their NONE services use EDS', () => {
    const t = translate(RESOLUTION, proxy({ namespace: 'default', type: 'router', inbound: [{ port: 1, targetPort: 2 }] }));
    assert.ok(t.byName.has('BlackHoleCluster'));
    assert.ok(!t.byName.has('PassthroughCluster'));
    assert.ok(!t.clusters.some((c) => c.name.startsWith('inbound|')));
    assert.equal(t.get('outbound|443||*.wiki.example').clusterDiscoveryType.value, Cluster_DiscoveryType.EDS);
  });

  test('proxyless gRPC: outbound EDS clusters only, with load balancers gRPC implements', () => {
    const grpc = proxy({ namespace: 'shop', generator: 'grpc', locality: ['us-east', 'zone-1', 'a'] });
    const t = translate(POLICIES, grpc);
    assert.ok(t.clusters.every((c) => c.name.startsWith('outbound|') && c.clusterDiscoveryType.value === Cluster_DiscoveryType.EDS));
    assert.equal(t.get('outbound|80||details.shop.svc.cluster.local').lbPolicy, Cluster_LbPolicy.ROUND_ROBIN, 'gRPC default: ROUND_ROBIN');
    assert.equal(t.get(`outbound|9080|v1|${REVIEWS}`).lbPolicy, Cluster_LbPolicy.RING_HASH);
    assert.equal(t.byName.has(`outbound|9080|v3|${REVIEWS}`), false, 'a TLS subset cannot be sent to a gRPC client');
    const v2 = t.get(`outbound|9080|v2|${REVIEWS}`);
    assert.equal(v2.lbPolicy, Cluster_LbPolicy.ROUND_ROBIN, 'MAGLEV falls back to ROUND_ROBIN');
    assert.equal(v2.lbConfig.case, undefined);
    assert.equal(t.get(`outbound|5432||${REVIEWS}`).lbPolicy, Cluster_LbPolicy.ROUND_ROBIN, 'RANDOM falls back to ROUND_ROBIN');
    const reported = t.errors.map((e) => `${e.resource}: ${e.message}`);
    assert.ok(reported.some((m) => m.startsWith(`outbound|9080|v2|${REVIEWS}: load balancer consistentHash.maglev`)), reported.join('\n'));
    assert.ok(reported.some((m) => m.startsWith(`outbound|5432||${REVIEWS}: load balancer RANDOM`)));
    assert.ok(reported.some((m) => m.startsWith(`outbound|9080|v3|${REVIEWS}: TLS mode SIMPLE`)));
    const dns = translate(RESOLUTION, proxy({ namespace: 'default', generator: 'grpc' }));
    assert.deepEqual(dns.clusters.map((c) => c.name).sort(), ['outbound|5432||db.default.svc.cluster.local', 'outbound|80||vms.internal'], 'only EDS services');
    assert.equal(dns.get('outbound|80||vms.internal').clusterDiscoveryType.value, Cluster_DiscoveryType.EDS, 'PASSTHROUGH does not apply to gRPC clients');
  });

  test('locality weighted LB config: with distribute, or failover rules under outlier detection', () => {
    const t = translate(POLICIES, SHOP_ZONE1());
    const spec = (h: string) => t.get(`outbound|${h.startsWith('ratings') ? 9080 : 80}||${h}.shop.svc.cluster.local`).commonLbConfig?.localityConfigSpecifier.case;
    assert.equal(spec('ratings'), 'localityWeightedLbConfig', 'distribute');
    assert.equal(spec('details'), 'localityWeightedLbConfig', 'failover + outlier detection');
    assert.equal(spec('pricing'), 'localityWeightedLbConfig', 'failoverPriority + outlier detection');
    assert.equal(spec('catalog'), undefined, 'failover without outlier detection');
    assert.equal(spec('inventory'), undefined, 'locality LB disabled');
  });
});

describe('endpoints', () => {
  const unhealthy = (r: ServiceRegistry) => {
    r.register({ name: 'reviews-vm', namespace: 'shop', address: '10.0.2.2', labels: { app: 'reviews', version: 'v2' }, ports: {}, locality: 'us-east/zone-2', weight: 4, serviceAccount: 'reviews', sidecar: false, source: 'Registered', ttlMs: 0, healthy: false });
  };

  const summary = (cla: ClusterLoadAssignment) =>
    cla.endpoints.map((l) => ({
      locality: l.locality ? [l.locality.region, l.locality.zone, l.locality.subZone].filter(Boolean).join('/') : '',
      priority: l.priority,
      weight: l.loadBalancingWeight,
      endpoints: l.lbEndpoints.map((e) => (e.hostIdentifier.case === 'endpoint' && e.hostIdentifier.value.address?.address.case === 'socketAddress' ? e.hostIdentifier.value.address.address.value.address : '?')),
    }));

  test('localities, endpoint and locality weights, health, workload and tlsMode metadata', () => {
    const t = translate(POLICIES, SHOP_ZONE1(), unhealthy);
    const cla = t.cla(`outbound|9080||${REVIEWS}`);
    assert.equal(cla.clusterName, `outbound|9080||${REVIEWS}`);
    const zone2 = cla.endpoints.find((l) => l.locality?.zone === 'zone-2')!;
    assert.equal(zone2.loadBalancingWeight, 5, 'locality weight = sum of endpoint weights (1 + 4)');
    const [we, vm] = zone2.lbEndpoints;
    assert.equal(we!.loadBalancingWeight, 1);
    assert.equal(we!.healthStatus, HealthStatus.HEALTHY);
    assert.equal(vm!.loadBalancingWeight, 4);
    assert.equal(vm!.healthStatus, HealthStatus.UNHEALTHY);
    assert.deepEqual(vm!.metadata?.filterMetadata['istio'], { workload: 'reviews-vm;shop;reviews;v2;Kubernetes' });
    assert.equal(vm!.metadata?.filterMetadata['envoy.transport_socket_match'], undefined, 'no sidecar: no tlsMode');
    const zone1 = cla.endpoints.find((l) => l.locality?.subZone === 'a')!;
    assert.deepEqual([zone1.locality?.region, zone1.locality?.zone, zone1.locality?.subZone], ['us-east', 'zone-1', 'a']);
    assert.equal(zone1.loadBalancingWeight, 2);
    assert.deepEqual(zone1.lbEndpoints[0]!.metadata?.filterMetadata['envoy.transport_socket_match'], { tlsMode: 'istio' });
    const ep = zone1.lbEndpoints[0]!;
    const sa = ep.hostIdentifier.case === 'endpoint' ? ep.hostIdentifier.value.address?.address : undefined;
    assert.equal(sa?.case, 'socketAddress');
    assert.deepEqual([sa!.value!.address, sa!.value!.portSpecifier.value], ['10.0.1.1', 9080]);
  });

  test('subset clusters keep only the endpoints with the subset labels', () => {
    const t = translate(POLICIES, SHOP_ZONE1(), unhealthy);
    assert.deepEqual(summary(t.cla(`outbound|9080|v2|${REVIEWS}`)).flatMap((l) => l.endpoints), ['10.0.2.1', '10.0.2.2']);
    assert.deepEqual(summary(t.cla(`outbound|9080|v1|${REVIEWS}`)).flatMap((l) => l.endpoints).sort(), ['10.0.1.1', '10.0.3.1']);
    assert.deepEqual(t.cla(`outbound|9080|v3|${REVIEWS}`).endpoints, [], 'a subset nothing matches: an empty assignment');
    const names = [`outbound|9080|nope|${REVIEWS}`, 'BlackHoleCluster', 'inbound|8080||', 'outbound|9080||unknown.example.com', `outbound|9999||${REVIEWS}`];
    assert.deepEqual(t.eds(names).endpoints, [], 'unknown subsets, hosts and ports, and non-outbound names get no assignment');
  });

  test('locality failover priorities (outlier detection on): a proxy in zone-1 and one in zone-2', () => {
    const z1 = translate(POLICIES, SHOP_ZONE1()).cla(`outbound|9080||${REVIEWS}`);
    assert.deepEqual(summary(z1).map((l) => [l.locality, l.priority]), [
      ['eu-west/zone-1', 2],
      ['us-east/zone-1/a', 0],
      ['us-east/zone-2', 1],
    ]);
    const z2 = translate(POLICIES, proxy({ namespace: 'shop', locality: ['us-east', 'zone-2'] })).cla(`outbound|9080||${REVIEWS}`);
    assert.deepEqual(summary(z2).map((l) => [l.locality, l.priority]), [
      ['eu-west/zone-1', 2],
      ['us-east/zone-1/a', 1],
      ['us-east/zone-2', 0],
    ]);
    const eu = translate(POLICIES, proxy({ namespace: 'shop', locality: ['eu-west', 'zone-1'] })).cla(`outbound|9080||${REVIEWS}`);
    assert.deepEqual(summary(eu).map((l) => l.priority), [0, 1, 1], 'other regions share the lowest priority');
  });

  test('failover rules send a region to the named region first, and without outlier detection nothing changes', () => {
    const t = translate(POLICIES, proxy({ namespace: 'shop', locality: ['us-east', 'zone-1'] }));
    assert.deepEqual(summary(t.cla('outbound|80||details.shop.svc.cluster.local')).map((l) => [l.locality, l.priority]), [
      ['eu-west/zone-1', 1],
      ['us-east/zone-1', 0],
      ['us-west/zone-1', 2],
    ]);
    assert.deepEqual(summary(t.cla('outbound|80||catalog.shop.svc.cluster.local')).map((l) => l.priority), [0, 0, 0], 'no outlier detection');
    assert.deepEqual(summary(t.cla('outbound|80||inventory.shop.svc.cluster.local')).map((l) => l.priority), [0, 0, 0], 'enabled: false');
  });

  test('distribute rewrites locality weights for proxies in the from locality and drops the rest', () => {
    const z1 = translate(POLICIES, SHOP_ZONE1()).cla('outbound|9080||ratings.shop.svc.cluster.local');
    assert.deepEqual(summary(z1), [
      { locality: 'eu-west/zone-1/a', priority: 0, weight: 1, endpoints: [] },
      { locality: 'us-east/zone-1/a', priority: 0, weight: 80, endpoints: ['10.1.1.1'] },
      { locality: 'us-east/zone-2/a', priority: 0, weight: 20, endpoints: ['10.1.2.1'] },
    ]);
    const eu = translate(POLICIES, proxy({ namespace: 'shop', locality: ['eu-west', 'zone-1', 'a'] })).cla('outbound|9080||ratings.shop.svc.cluster.local');
    assert.deepEqual(summary(eu).map((l) => l.weight), [1, 3, 1], 'no rule for eu-west: weights are the endpoint sums');
  });

  test('failoverPriority orders endpoints by the labels they share with the proxy', () => {
    const t = translate(POLICIES, proxy({ namespace: 'shop', labels: { app: 'checkout', env: 'prod' }, locality: ['us-east', 'zone-1'] }));
    assert.deepEqual(summary(t.cla('outbound|80||pricing.shop.svc.cluster.local')), [
      { locality: 'eu-west/zone-1', priority: 2, weight: 1, endpoints: ['10.3.2.1'] },
      { locality: 'us-east/zone-1', priority: 0, weight: 1, endpoints: ['10.3.1.1'] },
      { locality: 'us-east/zone-1', priority: 1, weight: 1, endpoints: ['10.3.1.2'] },
    ]);
    const dev = translate(POLICIES, proxy({ namespace: 'shop', labels: { env: 'dev' }, locality: ['eu-west', 'zone-1'] }));
    // Same region but another env (priority 1), other region (2); renumbered without gaps, one group per locality
    // and priority.
    assert.deepEqual(summary(dev.cla('outbound|80||pricing.shop.svc.cluster.local')).map((l) => [l.endpoints.join(), l.priority]), [
      ['10.3.2.1', 0],
      ['10.3.1.1,10.3.1.2', 1],
    ]);
  });

  test('DNS clusters carry the locality priorities inline', () => {
    const { model, registry } = load(RESOLUTION);
    const p = proxy({ namespace: 'egress', labels: { app: 'other' }, locality: ['us-east', 'zone-1'] });
    // Add outlier detection through a derived model: the inline assignment gets priorities like EDS.
    const dp = model.destinationPolicies.find((d) => d.origin.name === 'legacy-credential')!;
    const derived: MeshModel = {
      ...model,
      destinationPolicies: model.destinationPolicies.map((d) =>
        d === dp ? { ...d, trafficPolicy: { portLevelSettings: [], outlierDetection: { consecutive5xxErrors: 5, splitExternalLocalOriginErrors: false, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0 } } } : d,
      ),
    };
    const scope = computeScope(derived, registry, p);
    const { clusters } = buildClusters({ model: derived, registry, proxy: p }, scope);
    const c = clusters.find((x) => x.name === 'outbound|8080||legacy.internal')!;
    assertEncodes([c]);
    assert.deepEqual(c.loadAssignment!.endpoints.map((l) => [l.locality?.region, l.priority]), [
      ['eu-west', 1],
      ['us-east', 0],
    ]);
  });
});
