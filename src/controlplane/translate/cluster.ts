/**
 * CDS: the clusters a proxy gets. Istio's semantics (istio/istio pilot/pkg/networking/core cluster.go,
 * cluster_builder.go, cluster_traffic_policy.go, cluster_tls.go), with Istio's defaults:
 *
 * - One cluster `outbound|<port>||<host>` per visible service port (UDP ports have none), plus one
 *   `outbound|<port>|<subset>|<host>` per subset of the DestinationRule that applies. The cluster type comes
 *   from the resolution (see `discoveryKind`); EDS clusters read their endpoints over ADS
 *   (`initial_fetch_timeout` 0 as Istio), DNS clusters carry their endpoints inline (a ServiceEntry without
 *   endpoints resolves its own host; a Kubernetes ExternalName Service its external name, as Istio did before it
 *   turned ExternalName Services into aliases), and a DNS cluster without endpoints is not built (Istio).
 *   DYNAMIC_DNS (Envoy's dynamic forward proxy) is not supported: reported, no cluster.
 * - Every cluster: connect timeout 10s (MeshConfig.connectTimeout default), circuit breaker thresholds
 *   max_connections / max_pending_requests / max_requests / max_retries = 2^32-1 with track_remaining
 *   (`getDefaultCircuitBreakerThresholds`), an empty common_lb_config, and `filter_metadata.istio.services`
 *   = [{host, name, namespace}] (plus `config` naming the DestinationRule, `subset`, and `external` for
 *   MESH_EXTERNAL services).
 * - Upstream protocol (`envoy.extensions.upstreams.http.v3.HttpProtocolOptions`): explicit HTTP/2 for HTTP2,
 *   GRPC and GRPC-Web ports; for sidecars, the downstream protocol on UNKNOWN (sniffed) ports; the downstream
 *   protocol when `useClientProtocol`; HTTP/2 when `h2UpgradePolicy: UPGRADE` (the mesh default
 *   DO_NOT_UPGRADE never upgrades).
 * - DestinationRule traffic policy (port-level and subset overrides, see `clusterTrafficPolicy`):
 *   load balancer (unset → LEAST_REQUEST, Istio's default; LEAST_CONN → LEAST_REQUEST; RANDOM; ROUND_ROBIN;
 *   PASSTHROUGH → ORIGINAL_DST; warmup → slow_start_config; consistentHash → RING_HASH with the ring size given,
 *   else 1024, or MAGLEV with its table size), locality LB (LocalityWeightedLbConfig when `distribute` is set or
 *   when failover rules are set with outlier detection; the weights and priorities themselves are in EDS),
 *   connection pool (circuit breaker thresholds for values > 0, connect timeout, TCP keepalive, idle timeout,
 *   max connection duration, max requests per connection, HTTP/2 max concurrent streams, retry budget),
 *   outlier detection (consecutive_5xx / consecutive_gateway_failure with enforcing 100% when > 0 and 0% when 0,
 *   local-origin failures when split, success-rate ejection off, healthy_panic_threshold = minHealthPercent) and
 *   client TLS (below).
 * - TLS `SIMPLE` / `MUTUAL`: an UpstreamTlsContext transport socket with the certificate files (inline
 *   DataSource file names) or, with `credentialName`, SDS secrets `kubernetes://<credentialName>` and
 *   `kubernetes://<credentialName>-cacert` over ADS (Istio's names; the control plane serves them from its secrets
 *   directory to the proxies whose clusters name them); CA unset → the OS roots (Istio verifies with the system CAs); SNI unset →
 *   auto SNI, and auto SAN validation too when no SANs are given; ServiceEntry `subjectAltNames` when the rule
 *   gives none; ALPN h2 on HTTP/2 clusters. As Istio, a sidecar ignores `credentialName` unless the rule has a
 *   `workloadSelector` (no transport socket then). `ISTIO_MUTUAL`, and auto mTLS when the rule sets no client TLS
 *   (transport_socket_matches on the endpoints' `tlsMode`), come from security/mtls.ts (meshTls). `proxyProtocol` has no
 *   generated transport socket type yet: reported, the cluster is sent without it.
 * - Special clusters: `BlackHoleCluster` (STATIC, no endpoints, ROUND_ROBIN), `PassthroughCluster`
 *   (ORIGINAL_DST, CLUSTER_PROVIDED, downstream protocol with a 5 min idle timeout; for explicit-mode sidecars,
 *   which have no original destination address, `original_dst_lb_config` takes the destination from the request's
 *   `:authority` — `use_http_header` with `http_header_name: ":authority"`, so an HTTP_PROXY request for
 *   `http://10.1.2.3:8080/` reaches 10.1.2.3:8080; Envoy's ORIGINAL_DST needs an IP:port there) and one
 *   `inbound|<targetPort>||` (STATIC 127.0.0.1:<targetPort>) per WEFT_INBOUND target port, for sidecars, with
 *   `filter_metadata.istio.services` naming the services that select the proxy (as Istio's inbound clusters);
 *   gateways get BlackHoleCluster only; proxyless gRPC clients get outbound EDS clusters only, with the load
 *   balancers gRPC implements (ROUND_ROBIN by default, LEAST_REQUEST, RING_HASH; others fall back to
 *   ROUND_ROBIN and are reported), and no TLS (a rule asking for SIMPLE/MUTUAL drops the cluster, reported).
 */
import { create } from '@bufbuild/protobuf';
import type { JsonObject } from '@bufbuild/protobuf';
import { DurationSchema, type Duration } from '@bufbuild/protobuf/wkt';
import type { DestinationPolicy, Protocol, Service, ServicePort, Subset } from '../../api/model.js';
import { isHttp2Protocol, isHttpProtocol } from '../../api/protocol.js';
import {
  ClusterSchema,
  Cluster_CommonLbConfigSchema,
  Cluster_DiscoveryType,
  Cluster_OriginalDstLbConfigSchema,
  Cluster_DnsLookupFamily,
  Cluster_EdsClusterConfigSchema,
  Cluster_CommonLbConfig_LocalityWeightedLbConfigSchema,
  Cluster_LbPolicy,
  Cluster_LeastRequestLbConfigSchema,
  Cluster_MaglevLbConfigSchema,
  Cluster_RingHashLbConfigSchema,
  Cluster_RoundRobinLbConfigSchema,
  Cluster_SlowStartConfigSchema,
  UpstreamConnectionOptionsSchema,
  type Cluster,
} from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import {
  CircuitBreakersSchema,
  CircuitBreakers_ThresholdsSchema,
  CircuitBreakers_Thresholds_RetryBudgetSchema,
  type CircuitBreakers_Thresholds,
} from '../../xds/gen/envoy/config/cluster/v3/circuit_breaker_pb.js';
import { OutlierDetectionSchema } from '../../xds/gen/envoy/config/cluster/v3/outlier_detection_pb.js';
import { DataSourceSchema, MetadataSchema, TransportSocketSchema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { ApiVersion, ConfigSourceSchema, type ConfigSource } from '../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import { TcpKeepaliveSchema } from '../../xds/gen/envoy/config/core/v3/address_pb.js';
import {
  Http2ProtocolOptionsSchema,
  HttpProtocolOptionsSchema as CoreHttpProtocolOptionsSchema,
  UpstreamHttpProtocolOptionsSchema,
} from '../../xds/gen/envoy/config/core/v3/protocol_pb.js';
import { StringMatcherSchema } from '../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import { ClusterLoadAssignmentSchema } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { PercentSchema } from '../../xds/gen/envoy/type/v3/percent_pb.js';
import {
  HttpProtocolOptionsSchema,
  HttpProtocolOptions_ExplicitHttpConfigSchema,
  HttpProtocolOptions_UseDownstreamHttpConfigSchema,
  type HttpProtocolOptions,
} from '../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import {
  CertificateValidationContextSchema,
  CertificateValidationContext_SystemRootCertsSchema,
  TlsCertificateSchema,
} from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { SdsSecretConfigSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import {
  CommonTlsContext_CombinedCertificateValidationContextSchema,
  UpstreamTlsContextSchema,
  type UpstreamTlsContext,
} from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { pack, TypeUrl } from '../../xds/index.js';
import type { Endpoint } from '../registry/registry.js';
import type { TranslateError, TranslateInput } from './index.js';
import { BLACKHOLE_CLUSTER, inboundClusterName, outboundClusterName, PASSTHROUGH_CLUSTER } from './names.js';
import { baseService, clusterTrafficPolicy, labelsSubsetOf, type ClusterTrafficPolicy, type ProxyScope } from './scope.js';
import type { CachedCluster, TranslationCache } from './cache.js';
import { credentialSecretName } from './gateway/tls.js';
import { autoMtlsMatches, istioMutualSocket, MESH_ALPN, meshSni, spiffeId } from './security/mtls.js';
import { applyLocalityLb, discoveryKind, localityGroups, localitySetting, subsetEndpoints, type DiscoveryKind } from './endpoint.js';

/** Istio MeshConfig.connectTimeout default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Istio MeshConfig.dnsRefreshRate default. */
export const DEFAULT_DNS_REFRESH_RATE_MS = 60_000;
/** Istio's default circuit breaker limit (math.MaxUint32). */
export const MAX_UINT32 = 0xffffffff;
/** Envoy's minimum ring size, which Istio sets when a consistent hash gives no ring size. */
export const DEFAULT_MIN_RING_SIZE = 1024;
/** Idle timeout Istio sets on PassthroughCluster connections. */
export const PASSTHROUGH_IDLE_TIMEOUT_MS = 5 * 60_000;
export const HTTP_PROTOCOL_OPTIONS_KEY = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
export const TLS_TRANSPORT_SOCKET = 'envoy.transport_sockets.tls';

export function duration(ms: number): Duration {
  const seconds = Math.floor(ms / 1000);
  return create(DurationSchema, { seconds: BigInt(seconds), nanos: Math.round((ms - seconds * 1000) * 1e6) });
}

/** `{ ads: {}, resourceApiVersion: V3 }`; EDS cluster configs add Istio's initial_fetch_timeout 0 (wait forever). */
function adsSource(initialFetchTimeoutZero: boolean): ConfigSource {
  const cs = create(ConfigSourceSchema, { configSourceSpecifier: { case: 'ads', value: {} }, resourceApiVersion: ApiVersion.V3 });
  if (initialFetchTimeoutZero) cs.initialFetchTimeout = duration(0);
  return cs;
}

/** Istio `buildServiceMetadata`: ServiceEntry services are named by their host. */
function serviceMetadata(svc: Service): JsonObject {
  return { host: svc.hostname, name: svc.name ?? svc.hostname, namespace: svc.namespace };
}

/** Upstream HTTP options being assembled for one cluster (Istio's clusterWrapper.httpProtocolOptions). */
interface HttpOptions {
  upstream?: 'h2' | 'downstream';
  idleTimeoutMs?: number;
  maxConnectionDurationMs?: number;
  maxRequestsPerConnection?: number;
  maxConcurrentStreams?: number;
  autoSni?: boolean;
  autoSanValidation?: boolean;
}

function hasHttpOptions(o: HttpOptions): boolean {
  return Object.values(o).some((v) => v !== undefined && v !== false);
}

function httpOptionsMessage(o: HttpOptions): HttpProtocolOptions {
  const msg = create(HttpProtocolOptionsSchema, {});
  if (o.idleTimeoutMs !== undefined || o.maxConnectionDurationMs !== undefined || o.maxRequestsPerConnection !== undefined) {
    msg.commonHttpProtocolOptions = create(CoreHttpProtocolOptionsSchema, {});
    if (o.idleTimeoutMs !== undefined) msg.commonHttpProtocolOptions.idleTimeout = duration(o.idleTimeoutMs);
    if (o.maxConnectionDurationMs !== undefined) msg.commonHttpProtocolOptions.maxConnectionDuration = duration(o.maxConnectionDurationMs);
    if (o.maxRequestsPerConnection !== undefined) msg.commonHttpProtocolOptions.maxRequestsPerConnection = o.maxRequestsPerConnection;
  }
  if (o.autoSni || o.autoSanValidation) {
    msg.upstreamHttpProtocolOptions = create(UpstreamHttpProtocolOptionsSchema, { autoSni: !!o.autoSni, autoSanValidation: !!o.autoSanValidation });
  }
  if (o.upstream === 'h2') {
    const h2 = create(Http2ProtocolOptionsSchema, {});
    // Only HTTP/2 clusters get max_concurrent_streams (Istio).
    if (o.maxConcurrentStreams !== undefined) h2.maxConcurrentStreams = o.maxConcurrentStreams;
    msg.upstreamProtocolOptions = { case: 'explicitHttpConfig', value: create(HttpProtocolOptions_ExplicitHttpConfigSchema, { protocolConfig: { case: 'http2ProtocolOptions', value: h2 } }) };
  } else if (o.upstream === 'downstream') {
    msg.upstreamProtocolOptions = {
      case: 'useDownstreamProtocolConfig',
      value: create(HttpProtocolOptions_UseDownstreamHttpConfigSchema, { httpProtocolOptions: {}, http2ProtocolOptions: {} }),
    };
  } else {
    // upstream_protocol_options is required by Envoy: HTTP/1.1 when nothing else was chosen (Istio clusterWrapper.build).
    msg.upstreamProtocolOptions = { case: 'explicitHttpConfig', value: create(HttpProtocolOptions_ExplicitHttpConfigSchema, { protocolConfig: { case: 'httpProtocolOptions', value: {} } }) };
  }
  return msg;
}

function defaultThresholds(): CircuitBreakers_Thresholds {
  return create(CircuitBreakers_ThresholdsSchema, { maxConnections: MAX_UINT32, maxPendingRequests: MAX_UINT32, maxRequests: MAX_UINT32, maxRetries: MAX_UINT32, trackRemaining: true });
}

const DISCOVERY: Record<DiscoveryKind, Cluster_DiscoveryType> = {
  EDS: Cluster_DiscoveryType.EDS,
  STRICT_DNS: Cluster_DiscoveryType.STRICT_DNS,
  LOGICAL_DNS: Cluster_DiscoveryType.LOGICAL_DNS,
  ORIGINAL_DST: Cluster_DiscoveryType.ORIGINAL_DST,
};

/** Istio: V6_ONLY when every proxy IP is IPv6, else V4_ONLY (dual stack disabled, its default). */
function dnsLookupFamily(ips: string[]): Cluster_DnsLookupFamily {
  return ips.length > 0 && ips.every((ip) => ip.includes(':')) ? Cluster_DnsLookupFamily.V6_ONLY : Cluster_DnsLookupFamily.V4_ONLY;
}

/** The DestinationRule's config path, as Istio's `istio.config` cluster metadata names it. */
function configPath(dp: DestinationPolicy): string {
  return `/apis/${dp.origin.apiVersion}/namespaces/${dp.origin.namespace}/destination-rule/${dp.origin.name}`;
}

function sourceOf(x: { origin: { kind: string; namespace: string; name: string } } | undefined): string | undefined {
  return x ? `${x.origin.kind} ${x.origin.namespace}/${x.origin.name}` : undefined;
}

type LoadBalancer = NonNullable<ClusterTrafficPolicy['loadBalancer']>;
type ClientTls = NonNullable<ClusterTrafficPolicy['tls']>;

class ClusterBuilder {
  readonly clusters: Cluster[] = [];
  readonly errors: TranslateError[] = [];
  /** SDS names of the `credentialName` secrets the clusters read (`kubernetes://<name>[-cacert]`), in order. */
  readonly credentialSecrets: string[] = [];
  private readonly names = new Set<string>();

  constructor(
    private readonly input: TranslateInput,
    private readonly scope: ProxyScope,
    private readonly cache?: TranslationCache,
  ) {}

  private error(resource: string, message: string, source?: string): void {
    const e: TranslateError = { typeUrl: TypeUrl.Cluster, resource, message };
    if (source) e.source = source;
    this.errors.push(e);
  }

  private add(c: Cluster): void {
    // Istio normalizeClusters: the first cluster of a name wins.
    if (this.names.has(c.name)) return;
    this.names.add(c.name);
    this.clusters.push(c);
  }

  build(): void {
    const proxy = this.input.proxy;
    for (const svc of this.scope.services) {
      if (svc.resolution === 'DYNAMIC_DNS' && proxy.type !== 'grpc') {
        this.error(
          outboundClusterName(svc.ports[0]?.port ?? 0, undefined, svc.hostname),
          `resolution DYNAMIC_DNS is not supported yet (it needs Envoy's dynamic forward proxy cluster); ${svc.hostname} gets no cluster`,
          sourceOf(svc),
        );
        continue;
      }
      const dp = this.scope.destinationPolicy(svc.hostname);
      for (const sp of svc.ports) {
        if (sp.protocol === 'UDP') continue; // Istio builds no clusters for UDP ports.
        this.addOutbound(svc, sp, dp, undefined);
        for (const subset of dp?.subsets ?? []) this.addOutbound(svc, sp, dp, subset);
      }
    }
    if (proxy.type === 'grpc') return;
    this.add(this.shared('special|blackhole', () => this.blackHole()));
    if (proxy.type === 'router') return;
    const explicit = proxy.mode === 'explicit';
    this.add(this.shared(explicit ? 'special|passthrough|explicit' : 'special|passthrough', () => this.passthrough(explicit)));
    for (const c of this.inbound()) this.add(c);
  }

  /** A cluster that depends on nothing but its key (special and inbound clusters), from the cache when there is one. */
  private shared(key: string, build: () => Cluster): Cluster {
    if (!this.cache) return build();
    const hit = this.cache.clusters.get(key);
    if (hit?.cluster) {
      this.cache.stats.hits++;
      return hit.cluster;
    }
    this.cache.stats.misses++;
    const cluster = build();
    this.cache.clusters.set(key, { cluster, errors: [] });
    return cluster;
  }

  /**
   * Adds an outbound cluster (with its errors). With a cache, a cluster that does not depend on endpoints (every
   * kind but DNS) is keyed by what it reads: the proxy type, the cluster name, the registry's service and the
   * DestinationRule's content.
   */
  private addOutbound(svc: Service, sp: ServicePort, dp: DestinationPolicy | undefined, subset: Subset | undefined): void {
    const cache = this.cache;
    const proxy = this.input.proxy;
    let key: string | undefined;
    if (cache) {
      const kind = discoveryKind(svc, clusterTrafficPolicy(dp, sp.port, subset?.name), proxy);
      if (kind !== 'STRICT_DNS' && kind !== 'LOGICAL_DNS') {
        key = `${proxy.type}|${outboundClusterName(sp.port, subset?.name, svc.hostname)}|${cache.id(baseService(svc))}|${cache.policyKey(dp)}|${this.meshTlsKey(svc, sp, dp, subset)}`;
      }
    }
    if (cache && key !== undefined) {
      const hit = cache.clusters.get(key);
      if (hit) {
        cache.stats.hits++;
        this.errors.push(...hit.errors);
        if (hit.cluster) {
          this.add(hit.cluster);
          if (hit.credentialSecrets) this.credentialSecrets.push(...hit.credentialSecrets);
        }
        return;
      }
      cache.stats.misses++;
    }
    const before = this.errors.length;
    const secretsBefore = this.credentialSecrets.length;
    const cluster = this.outbound(svc, sp, dp, subset);
    if (cache && key !== undefined) {
      const entry: CachedCluster = { errors: this.errors.slice(before) };
      if (cluster) entry.cluster = cluster;
      if (this.credentialSecrets.length > secretsBefore) entry.credentialSecrets = this.credentialSecrets.slice(secretsBefore);
      cache.clusters.set(key, entry);
    }
    if (cluster) this.add(cluster);
  }

  private outbound(svc: Service, sp: ServicePort, dp: DestinationPolicy | undefined, subset: Subset | undefined): Cluster | undefined {
    const proxy = this.input.proxy;
    const name = outboundClusterName(sp.port, subset?.name, svc.hostname);
    const policy = clusterTrafficPolicy(dp, sp.port, subset?.name);
    const kind = discoveryKind(svc, policy, proxy);
    if (!kind) return undefined; // proxyless gRPC: not an EDS service.
    try {
      const c = create(ClusterSchema, { name, clusterDiscoveryType: { case: 'type', value: DISCOVERY[kind] }, commonLbConfig: {} });
      if (kind === 'STRICT_DNS' || kind === 'LOGICAL_DNS') {
        c.dnsLookupFamily = dnsLookupFamily(proxy.ipAddresses);
        c.dnsRefreshRate = duration(DEFAULT_DNS_REFRESH_RATE_MS);
        c.respectDnsTtl = true;
        let eps = this.dnsEndpoints(svc, sp, subset);
        // Envoy accepts a single endpoint in a LOGICAL_DNS cluster (Istio's validation allows at most one).
        if (kind === 'LOGICAL_DNS') eps = eps.slice(0, 1);
        if (eps.length === 0) return undefined; // Istio builds no DNS cluster without endpoints.
        c.loadAssignment = create(ClusterLoadAssignmentSchema, { clusterName: name, endpoints: localityGroups(eps, undefined, this.input.model).map((w) => w.group) });
      } else if (kind === 'EDS') {
        c.edsClusterConfig = create(Cluster_EdsClusterConfigSchema, { serviceName: name, edsConfig: adsSource(true) });
      }
      const http: HttpOptions = {};
      // Istio setUpstreamProtocol: HTTP/2 ports use HTTP/2; sniffed ports follow the downstream protocol (sidecars).
      if (isHttp2Protocol(sp.protocol)) http.upstream = 'h2';
      else if (proxy.type === 'sidecar' && sp.protocol === 'UNKNOWN') http.upstream = 'downstream';
      if (!this.applyPolicy(c, http, policy, sp.protocol, svc, dp, name)) return undefined;
      this.meshTls(c, http, svc, sp, dp, subset);
      if (c.clusterDiscoveryType.value === Cluster_DiscoveryType.ORIGINAL_DST) {
        c.lbPolicy = Cluster_LbPolicy.CLUSTER_PROVIDED;
        c.lbConfig = { case: undefined };
        delete c.loadAssignment;
        delete c.edsClusterConfig;
      }
      const md: JsonObject = { services: [serviceMetadata(svc)] };
      if (svc.location === 'MESH_EXTERNAL') md['external'] = true;
      if (dp) md['config'] = configPath(dp);
      if (subset) md['subset'] = subset.name;
      c.metadata = create(MetadataSchema, { filterMetadata: { istio: md } });
      if (hasHttpOptions(http)) c.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY] = pack(HttpProtocolOptionsSchema, httpOptionsMessage(http));
      return c;
    } catch (e) {
      this.error(name, `cannot build cluster: ${(e as Error).message}`, sourceOf(dp) ?? sourceOf(svc));
      return undefined;
    }
  }

  /** Inline endpoints of a DNS cluster: registry endpoints, else the ServiceEntry host / ExternalName itself. */
  private dnsEndpoints(svc: Service, sp: ServicePort, subset: Subset | undefined): Endpoint[] {
    const eps = subsetEndpoints(this.input, svc.hostname, sp.port, subset?.labels);
    if (eps.length || svc.endpoints.length || svc.selector) return eps;
    // Istio: a DNS ServiceEntry without endpoints has one endpoint per host, the host itself, on the target port;
    // it has no labels, so a subset with labels selects nothing.
    if (subset && Object.keys(subset.labels).length) return [];
    const address = svc.externalName ?? svc.hostname;
    if (address.startsWith('*')) return [];
    const port = !svc.externalName && typeof sp.targetPort === 'number' ? sp.targetPort : sp.port;
    return [{ address, port, labels: {}, weight: 1, serviceAccount: '', namespace: svc.namespace, workload: svc.origin.name, healthy: true, tlsMode: 'disabled' }];
  }

  /**
   * In-mesh mTLS (security/mtls.ts): DestinationRule ISTIO_MUTUAL → an ISTIO_MUTUAL transport socket; no client TLS
   * setting → auto mTLS (transport_socket_matches on the endpoints' tlsMode) when the mesh enables it and the proxy
   * has a workload certificate. Sidecars only: proxyless gRPC clients get no mTLS (gRPC's xDS TLS needs certificate
   * providers, which Weft does not serve); MESH_EXTERNAL services get no auto mTLS.
   */
  private meshTlsMode(svc: Service, sp: ServicePort, dp: DestinationPolicy | undefined, subset: Subset | undefined): 'ISTIO_MUTUAL' | 'AUTO' | undefined {
    const proxy = this.input.proxy;
    if (proxy.type !== 'sidecar') return undefined;
    const tls = clusterTrafficPolicy(dp, sp.port, subset?.name)?.tls;
    if (tls?.mode === 'ISTIO_MUTUAL') return 'ISTIO_MUTUAL';
    if (tls !== undefined) return undefined;
    if (!this.input.model.mesh.enableAutoMtls || !proxy.workloadIdentity || svc.location === 'MESH_EXTERNAL') return undefined;
    return 'AUTO';
  }

  /** The destination's service accounts as SPIFFE ids (Istio's SAN list for in-mesh TLS), sorted. */
  private meshSans(svc: Service, sp: ServicePort): string[] {
    const td = this.input.model.mesh.trustDomain;
    const ids = new Set<string>();
    for (const ep of subsetEndpoints(this.input, svc.hostname, sp.port, undefined)) if (ep.serviceAccount) ids.add(spiffeId(td, ep.namespace, ep.serviceAccount));
    return [...ids].sort();
  }

  /** What the in-mesh TLS of a cluster depends on (translation cache key part). */
  private meshTlsKey(svc: Service, sp: ServicePort, dp: DestinationPolicy | undefined, subset: Subset | undefined): string {
    const mode = this.meshTlsMode(svc, sp, dp, subset);
    return mode === undefined ? '' : `${mode}|${this.input.model.mesh.trustDomain}|${this.meshSans(svc, sp).join(',')}`;
  }

  private meshTls(c: Cluster, http: HttpOptions, svc: Service, sp: ServicePort, dp: DestinationPolicy | undefined, subset: Subset | undefined): void {
    const mode = this.meshTlsMode(svc, sp, dp, subset);
    if (mode === undefined) return;
    const tls = clusterTrafficPolicy(dp, sp.port, subset?.name)?.tls;
    const sni = tls?.sni || meshSni(sp.port, subset?.name, svc.hostname);
    const sans = tls?.subjectAltNames.length ? tls.subjectAltNames : this.meshSans(svc, sp);
    const alpn = http.upstream === 'h2' ? MESH_ALPN.http2 : http.upstream === 'downstream' ? MESH_ALPN.downstream : isHttpProtocol(sp.protocol) ? MESH_ALPN.http1 : MESH_ALPN.tcp;
    if (mode === 'ISTIO_MUTUAL') c.transportSocket = istioMutualSocket(sni, sans, alpn);
    else c.transportSocketMatches = autoMtlsMatches(sni, sans, alpn);
  }

  /** Istio `applyTrafficPolicy` for an outbound cluster; false = the cluster must not be sent. */
  private applyPolicy(c: Cluster, http: HttpOptions, policy: ClusterTrafficPolicy | undefined, protocol: Protocol, svc: Service, dp: DestinationPolicy | undefined, name: string): boolean {
    const proxy = this.input.proxy;
    this.connectionPool(c, http, policy);
    // h2UpgradePolicy UPGRADE forces HTTP/2; DEFAULT follows the mesh default (DO_NOT_UPGRADE), so never upgrades.
    if (policy?.connectionPool?.http?.h2UpgradePolicy === 'UPGRADE') http.upstream = 'h2';
    this.outlier(c, policy);
    this.loadBalancer(c, policy, name, dp);
    if (policy?.proxyProtocol) {
      this.error(name, 'trafficPolicy.proxyProtocol is not supported yet (no upstream PROXY protocol transport socket); the cluster is sent without it', sourceOf(dp));
    }
    const tls = policy?.tls;
    if (tls && (tls.mode === 'SIMPLE' || tls.mode === 'MUTUAL')) {
      if (proxy.type === 'grpc') {
        this.error(name, `TLS mode ${tls.mode} cannot be applied to a proxyless gRPC client (gRPC's xDS TLS uses certificate providers); the cluster is not sent`, sourceOf(dp));
        return false;
      }
      const ctx = this.tlsContext(tls, http, protocol, svc, dp);
      if (ctx) c.transportSocket = create(TransportSocketSchema, { name: TLS_TRANSPORT_SOCKET, configType: { case: 'typedConfig', value: pack(UpstreamTlsContextSchema, ctx) } });
    }
    return true;
  }

  /** Istio `applyConnectionPool`, applied to every cluster: default thresholds and connect timeout. */
  private connectionPool(c: Cluster, http: HttpOptions, policy: ClusterTrafficPolicy | undefined): void {
    const t = defaultThresholds();
    const cp = policy?.connectionPool;
    let idle: number | undefined;
    // Zero means unset for these (Istio cannot tell them apart either).
    if (cp?.http) {
      const h = cp.http;
      if ((h.http2MaxRequests ?? 0) > 0) t.maxRequests = h.http2MaxRequests!;
      if ((h.http1MaxPendingRequests ?? 0) > 0) t.maxPendingRequests = h.http1MaxPendingRequests!;
      if ((h.maxRetries ?? 0) > 0) t.maxRetries = h.maxRetries!;
      idle = h.idleTimeoutMs;
      if ((h.maxRequestsPerConnection ?? 0) > 0) http.maxRequestsPerConnection = h.maxRequestsPerConnection!;
      if ((h.maxConcurrentStreams ?? 0) > 0) http.maxConcurrentStreams = h.maxConcurrentStreams!;
    }
    c.connectTimeout = duration(DEFAULT_CONNECT_TIMEOUT_MS);
    if (cp?.tcp) {
      const tcp = cp.tcp;
      if (tcp.connectTimeoutMs !== undefined) c.connectTimeout = duration(tcp.connectTimeoutMs);
      if ((tcp.maxConnections ?? 0) > 0) t.maxConnections = tcp.maxConnections!;
      if (tcp.maxConnectionDurationMs !== undefined) http.maxConnectionDurationMs = tcp.maxConnectionDurationMs;
      if (idle === undefined) idle = tcp.idleTimeoutMs;
      if (tcp.tcpKeepalive) {
        // An empty tcp_keepalive sets SO_KEEPALIVE with the OS defaults; the given values override them (seconds).
        const ka = create(TcpKeepaliveSchema, {});
        if ((tcp.tcpKeepalive.probes ?? 0) > 0) ka.keepaliveProbes = tcp.tcpKeepalive.probes!;
        if (tcp.tcpKeepalive.timeMs !== undefined) ka.keepaliveTime = Math.floor(tcp.tcpKeepalive.timeMs / 1000);
        if (tcp.tcpKeepalive.intervalMs !== undefined) ka.keepaliveInterval = Math.floor(tcp.tcpKeepalive.intervalMs / 1000);
        c.upstreamConnectionOptions = create(UpstreamConnectionOptionsSchema, { tcpKeepalive: ka });
      }
    }
    if (idle !== undefined) http.idleTimeoutMs = idle;
    if (policy?.retryBudget) {
      t.retryBudget = create(CircuitBreakers_Thresholds_RetryBudgetSchema, {
        budgetPercent: { value: policy.retryBudget.percent },
        minRetryConcurrency: policy.retryBudget.minRetryConcurrency,
      });
    }
    c.circuitBreakers = create(CircuitBreakersSchema, { thresholds: [t] });
    if (cp?.http?.useClientProtocol) http.upstream = 'downstream';
  }

  /** Istio `applyOutlierDetection`. */
  private outlier(c: Cluster, policy: ClusterTrafficPolicy | undefined): void {
    const o = policy?.outlierDetection;
    if (!o) return;
    // Success-rate ejection is turned off.
    const out = create(OutlierDetectionSchema, { enforcingSuccessRate: 0 });
    if (o.consecutive5xxErrors !== undefined) {
      out.consecutive5xx = o.consecutive5xxErrors;
      out.enforcingConsecutive5xx = o.consecutive5xxErrors > 0 ? 100 : 0;
    }
    // Unset and 0 both leave gateway-failure ejection off (Envoy enforces it at 0% by default).
    if ((o.consecutiveGatewayErrors ?? 0) > 0) {
      out.consecutiveGatewayFailure = o.consecutiveGatewayErrors!;
      out.enforcingConsecutiveGatewayFailure = 100;
    }
    out.interval = duration(o.intervalMs);
    out.baseEjectionTime = duration(o.baseEjectionTimeMs);
    if (o.maxEjectionPercent > 0) out.maxEjectionPercent = o.maxEjectionPercent;
    if (o.splitExternalLocalOriginErrors) {
      out.splitExternalLocalOriginErrors = true;
      if ((o.consecutiveLocalOriginFailures ?? 0) > 0) {
        out.consecutiveLocalOriginFailure = o.consecutiveLocalOriginFailures!;
        out.enforcingConsecutiveLocalOriginFailure = 100;
      }
      out.enforcingLocalOriginSuccessRate = 0;
    }
    c.outlierDetection = out;
    // The panic threshold is set even at 0 (Envoy's default is 50%): minHealthPercent, default 0.
    c.commonLbConfig ??= create(Cluster_CommonLbConfigSchema, {});
    c.commonLbConfig.healthyPanicThreshold = create(PercentSchema, { value: o.minHealthPercent });
  }

  /** Istio `applyLoadBalancer` (and, for proxyless gRPC clients, what gRPC implements). */
  private loadBalancer(c: Cluster, policy: ClusterTrafficPolicy | undefined, name: string, dp: DestinationPolicy | undefined): void {
    const proxy = this.input.proxy;
    const lb = policy?.loadBalancer;
    const locality = localitySetting(policy);
    // Failover only works with outlier detection: without it Envoy never leaves priority 0.
    const failover = c.outlierDetection !== undefined;
    c.commonLbConfig ??= create(Cluster_CommonLbConfigSchema, {});
    if (locality && (locality.distribute.length > 0 || (failover && (locality.failover.length > 0 || locality.failoverPriority.length > 0)))) {
      c.commonLbConfig.localityConfigSpecifier = { case: 'localityWeightedLbConfig', value: create(Cluster_CommonLbConfig_LocalityWeightedLbConfigSchema, {}) };
    }
    if (c.loadAssignment) {
      // DNS clusters: the same locality weights and priorities, inline (label-based priorities are EDS-only in Istio).
      c.loadAssignment.endpoints = applyLocalityLb(
        c.loadAssignment.endpoints.map((group) => ({ group, endpoints: [] })),
        proxy,
        locality && { ...locality, failoverPriority: [] },
        failover,
      );
    }
    if (proxy.type === 'grpc') {
      this.grpcLoadBalancer(c, lb, name, dp);
      return;
    }
    const slowStart = lb?.warmupDurationMs !== undefined ? create(Cluster_SlowStartConfigSchema, { slowStartWindow: duration(lb.warmupDurationMs) }) : undefined;
    switch (lb?.simple) {
      case 'RANDOM':
        c.lbPolicy = Cluster_LbPolicy.RANDOM;
        break;
      case 'ROUND_ROBIN':
        c.lbPolicy = Cluster_LbPolicy.ROUND_ROBIN;
        if (slowStart) c.lbConfig = { case: 'roundRobinLbConfig', value: create(Cluster_RoundRobinLbConfigSchema, { slowStartConfig: slowStart }) };
        break;
      case 'PASSTHROUGH':
        c.lbPolicy = Cluster_LbPolicy.CLUSTER_PROVIDED;
        c.clusterDiscoveryType = { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST };
        delete c.loadAssignment;
        break;
      default:
        // LEAST_REQUEST, and Istio's default when unset (applySimpleDefaultLoadBalancer).
        c.lbPolicy = Cluster_LbPolicy.LEAST_REQUEST;
        if (slowStart) c.lbConfig = { case: 'leastRequestLbConfig', value: create(Cluster_LeastRequestLbConfigSchema, { slowStartConfig: slowStart }) };
    }
    const ch = lb?.consistentHash;
    if (ch) {
      if (ch.maglev) {
        c.lbPolicy = Cluster_LbPolicy.MAGLEV;
        c.lbConfig = ch.maglev.tableSize ? { case: 'maglevLbConfig', value: create(Cluster_MaglevLbConfigSchema, { tableSize: BigInt(ch.maglev.tableSize) }) } : { case: undefined };
      } else this.ringHash(c, ch);
    }
  }

  /** grpc-js-xds implements round_robin, least_request and ring_hash (gRFC A27, A48, A42); the rest falls back. */
  private grpcLoadBalancer(c: Cluster, lb: LoadBalancer | undefined, name: string, dp: DestinationPolicy | undefined): void {
    const ch = lb?.consistentHash;
    if (ch && !ch.maglev) {
      this.ringHash(c, ch);
      return;
    }
    if (!ch && lb?.simple === 'LEAST_REQUEST') {
      c.lbPolicy = Cluster_LbPolicy.LEAST_REQUEST;
      return;
    }
    c.lbPolicy = Cluster_LbPolicy.ROUND_ROBIN;
    const asked = ch ? 'consistentHash.maglev' : lb?.simple && lb.simple !== 'ROUND_ROBIN' && lb.simple !== 'UNSPECIFIED' ? lb.simple : undefined;
    if (asked) this.error(name, `load balancer ${asked} is not implemented by proxyless gRPC clients; ROUND_ROBIN is used instead`, sourceOf(dp));
  }

  /** RING_HASH with the given minimum ring size; without a ringHash block, the default 1024 (Istio). */
  private ringHash(c: Cluster, ch: NonNullable<LoadBalancer['consistentHash']>): void {
    c.lbPolicy = Cluster_LbPolicy.RING_HASH;
    const size = ch.ringHash ? ch.ringHash.minimumRingSize : DEFAULT_MIN_RING_SIZE;
    c.lbConfig = size ? { case: 'ringHashLbConfig', value: create(Cluster_RingHashLbConfigSchema, { minimumRingSize: BigInt(size) }) } : { case: undefined };
  }

  /** Istio `constructUpstreamTLS` for SIMPLE / MUTUAL (undefined = no transport socket). */
  private tlsContext(tls: ClientTls, http: HttpOptions, protocol: Protocol, svc: Service, dp: DestinationPolicy | undefined): UpstreamTlsContext | undefined {
    // Istio: a sidecar honours `credentialName` only in a rule with a workloadSelector; otherwise no TLS context.
    if (tls.credentialName && this.input.proxy.type === 'sidecar' && !dp?.workloadSelector) return undefined;
    const ctx = create(UpstreamTlsContextSchema, { sni: tls.sni ?? '', commonTlsContext: {} });
    const common = ctx.commonTlsContext!;
    // Istio setAutoSniAndAutoSanValidation: SNI and SAN checks from the request's host when not given.
    if (!tls.sni) http.autoSni = true;
    if (!tls.sni && tls.subjectAltNames.length === 0 && !tls.insecureSkipVerify) http.autoSanValidation = true;
    // A ServiceEntry's subjectAltNames apply when the rule gives none.
    const sans = tls.subjectAltNames.length ? tls.subjectAltNames : svc.origin.kind === 'ServiceEntry' ? svc.subjectAltNames : [];
    const matchSubjectAltNames = sans.map((s) => ({ matchPattern: { case: 'exact' as const, value: s } }));
    const sds = (secret: string) => create(SdsSecretConfigSchema, { name: secret, sdsConfig: adsSource(false) });
    if (tls.credentialName) {
      // Istio's SDS names for credentials (`kubernetes://<name>`, CA `kubernetes://<name>-cacert`), served by the
      // control plane from its secrets directory (translate.ts adds them to the proxy's Secrets).
      if (tls.mode === 'MUTUAL') {
        const cert = credentialSecretName(tls.credentialName);
        common.tlsCertificateSdsSecretConfigs = [sds(cert)];
        this.credentialSecrets.push(cert);
      }
      if (!tls.insecureSkipVerify) {
        const ca = credentialSecretName(tls.credentialName, true);
        this.credentialSecrets.push(ca);
        common.validationContextType = {
          case: 'combinedValidationContext',
          value: create(CommonTlsContext_CombinedCertificateValidationContextSchema, {
            defaultValidationContext: { matchSubjectAltNames },
            validationContextSdsSecretConfig: sds(ca),
          }),
        };
      }
    } else {
      if (tls.mode === 'MUTUAL') {
        common.tlsCertificates = [
          create(TlsCertificateSchema, {
            certificateChain: { specifier: { case: 'filename', value: tls.clientCertificate ?? '' } },
            privateKey: { specifier: { case: 'filename', value: tls.privateKey ?? '' } },
          }),
        ];
      }
      const vc = create(CertificateValidationContextSchema, {});
      if (!tls.insecureSkipVerify) {
        vc.matchSubjectAltNames = matchSubjectAltNames.map((m) => create(StringMatcherSchema, m));
        // No CA file: verify with the OS CA certificates (Istio's `system` roots).
        if (tls.caCertificates) vc.trustedCa = create(DataSourceSchema, { specifier: { case: 'filename', value: tls.caCertificates } });
        else vc.systemRootCerts = create(CertificateValidationContext_SystemRootCertsSchema, {});
      }
      common.validationContextType = { case: 'validationContext', value: vc };
    }
    if (http.upstream === 'h2' || isHttp2Protocol(protocol)) common.alpnProtocols = ['h2'];
    return ctx;
  }

  private blackHole(): Cluster {
    return create(ClusterSchema, {
      name: BLACKHOLE_CLUSTER,
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
      connectTimeout: duration(DEFAULT_CONNECT_TIMEOUT_MS),
      lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
    });
  }

  private passthrough(explicit: boolean): Cluster {
    const c = create(ClusterSchema, {
      name: PASSTHROUGH_CLUSTER,
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST },
      connectTimeout: duration(DEFAULT_CONNECT_TIMEOUT_MS),
      lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
      circuitBreakers: { thresholds: [defaultThresholds()] },
    });
    if (explicit) c.lbConfig = { case: 'originalDstLbConfig', value: create(Cluster_OriginalDstLbConfigSchema, { useHttpHeader: true, httpHeaderName: ':authority' }) };
    c.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY] = pack(HttpProtocolOptionsSchema, httpOptionsMessage({ upstream: 'downstream', idleTimeoutMs: PASSTHROUGH_IDLE_TIMEOUT_MS }));
    return c;
  }

  /**
   * `inbound|<targetPort>||` → STATIC 127.0.0.1:<targetPort>, one per target port of WEFT_INBOUND, with Istio's
   * `filter_metadata.istio.services`: the services of the proxy's namespace whose selector selects its labels
   * (the server side's destination_service in the metrics).
   */
  private inbound(): Cluster[] {
    const out: Cluster[] = [];
    const seen = new Set<number>();
    const proxy = this.input.proxy;
    const own = inboundServices(this.input.model.services, proxy);
    const key = own.map((s) => s.hostname).join(',');
    for (const p of proxy.inbound ?? []) {
      if (seen.has(p.targetPort)) continue;
      seen.add(p.targetPort);
      out.push(this.shared(`inbound|${p.targetPort}|${p.protocol}|${key}`, () => this.inboundCluster(p, own)));
    }
    return out;
  }

  private inboundCluster(p: { targetPort: number; protocol: Protocol }, services: readonly Service[]): Cluster {
    const name = inboundClusterName(p.targetPort);
    const c = create(ClusterSchema, {
      name,
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
      connectTimeout: duration(DEFAULT_CONNECT_TIMEOUT_MS),
      commonLbConfig: {},
      circuitBreakers: { thresholds: [defaultThresholds()] },
      loadAssignment: {
        clusterName: name,
        endpoints: [
          {
            lbEndpoints: [
              { hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: p.targetPort } } } } } } },
            ],
          },
        ],
      },
    });
    const http: HttpOptions = {};
    if (isHttp2Protocol(p.protocol)) http.upstream = 'h2';
    else if (p.protocol === 'UNKNOWN') http.upstream = 'downstream';
    if (hasHttpOptions(http)) c.typedExtensionProtocolOptions[HTTP_PROTOCOL_OPTIONS_KEY] = pack(HttpProtocolOptionsSchema, httpOptionsMessage(http));
    if (services.length > 0) c.metadata = create(MetadataSchema, { filterMetadata: { istio: { services: services.map(serviceMetadata) } } });
    return c;
  }
}

/**
 * The clusters of a proxy (see the module comment). A cluster that cannot be built is left out and reported;
 * the others are still returned.
 */
export function buildClusters(input: TranslateInput, scope: ProxyScope, cache?: TranslationCache): { clusters: Cluster[]; credentialSecrets: string[]; errors: TranslateError[] } {
  const b = new ClusterBuilder(input, scope, cache);
  b.build();
  return { clusters: b.clusters, credentialSecrets: b.credentialSecrets, errors: b.errors };
}

/** Per service list, the services with a (non-empty) selector by namespace, sorted by host. */
const selectingByNamespace = new WeakMap<readonly Service[], Map<string, Service[]>>();

/** The services of a proxy's inbound clusters: those of its namespace whose selector selects its labels, by host. */
export function inboundServices(services: readonly Service[], proxy: { namespace: string; labels: Readonly<Record<string, string>> }): Service[] {
  let byNs = selectingByNamespace.get(services);
  if (!byNs) {
    byNs = new Map();
    const sorted = services
      .filter((s) => s.selector !== undefined && Object.keys(s.selector).length > 0)
      .sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
    for (const s of sorted) {
      const list = byNs.get(s.namespace);
      if (list) list.push(s);
      else byNs.set(s.namespace, [s]);
    }
    selectingByNamespace.set(services, byNs);
  }
  return (byNs.get(proxy.namespace) ?? []).filter((s) => labelsSubsetOf(s.selector!, proxy.labels));
}
