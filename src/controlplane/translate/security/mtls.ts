/**
 * Mutual TLS in the translation (Istio's authn policy applier and cluster_tls.go, for Weft's proxies).
 *
 *   mtlsMode(model, namespace, labels, port)      // the PeerAuthentication mode in force: STRICT | PERMISSIVE | DISABLE
 *   applyInboundMtls(listener, mode, trustDomain)  // listener.ts / transparent.ts: inbound chains for that mode
 *   istioMutualSocket(sni, sans, alpn)             // cluster.ts: DestinationRule ISTIO_MUTUAL
 *   autoMtlsMatches(sni, sans, alpn)               // cluster.ts: auto mTLS (endpoint metadata tlsMode: istio)
 *
 * PeerAuthentication resolution, as Istio: a policy with a workload selector matching the workload's labels (in
 * its namespace; of several, the oldest, then by name) beats the namespace's policy without selector, which beats
 * the mesh policy (root namespace, no selector); each level that says UNSET inherits from the next; the mesh
 * level's UNSET is MeshSettings.defaultMtlsMode (PERMISSIVE unless set). portLevelMtls (only on selector policies,
 * as Istio) keys the workload's port as the registry knows it — the endpoint port, which is the sidecar's inbound
 * port (WEFT_INBOUND's PORT) in explicit mode and the application's port in transparent mode — and overrides the
 * policy's mode for that port (UNSET there inherits the policy's mode). Endpoints whose mode is DISABLE lose their
 * `tlsMode: istio` metadata (endpoint.ts), so auto mTLS clients send them plaintext, as Istio does.
 *
 * Inbound chains per mode (Istio's inbound listener builder):
 * - DISABLE: the plaintext chains only (what listener.ts builds without mTLS).
 * - STRICT: every chain is a TLS chain — `transport_protocol: tls`, a DownstreamTlsContext requiring a client
 *   certificate (SDS `default`, trust SDS `ROOTCA`, peer SAN prefix `spiffe://<trust domain>/`), ALPN h2 and
 *   http/1.1 on HTTP chains — with the tls_inspector listener filter; a sniffed port's HTTP chain matches the
 *   in-mesh ALPN values `istio-http/1.0`, `istio-http/1.1`, `istio-h2`. Plaintext finds no chain: refused.
 * - PERMISSIVE: the TLS chains and the plaintext chains (matched on `transport_protocol: raw_buffer`), the
 *   tls_inspector before the http_inspector: each connection is detected as mTLS or plaintext.
 * HTTP connection managers of TLS chains forward the peer identity to the application in x-forwarded-client-cert
 * (APPEND_FORWARD with subject, URI and DNS: Istio's inbound setting); plaintext chains keep the default SANITIZE,
 * so a forged header never reaches the application.
 *
 * Client side: ISTIO_MUTUAL uses the workload certificate (SDS `default`), verifies the server against ROOTCA and
 * the destination service's service accounts as SPIFFE URIs (`spiffe://<td>/ns/<ns>/sa/<sa>`, Istio's SAN list),
 * SNI `outbound_.<port>_.<subset>_.<host>`, TLS 1.2–1.3. ALPN: Istio offers `istio-peer-exchange, istio` and its
 * ALPN filter rewrites them per upstream protocol; Weft writes the result into the cluster directly — HTTP/1.1
 * clusters `istio-http/1.1, http/1.1`, HTTP/2 `istio-h2, h2`, clusters following the downstream protocol both
 * (each pool offers only its own protocol's values, see proxy tls/upstream.ts), TCP `istio-peer-exchange, istio`.
 */
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { Labels, MeshModel, MtlsMode, PeerAuthenticationPolicy } from '../../../api/model.js';
import { pack, unpack } from '../../../xds/index.js';
import { TransportSocketSchema, type TransportSocket } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { AggregatedConfigSourceSchema, ApiVersion, ConfigSourceSchema } from '../../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import { Cluster_TransportSocketMatchSchema, type Cluster_TransportSocketMatch } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { FilterChainMatchSchema, ListenerFilterSchema, type FilterChain } from '../../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import type { Listener } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { TlsInspectorSchema } from '../../../xds/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
import { HttpConnectionManager_ForwardClientCertDetails, HttpConnectionManagerSchema } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { SubjectAltNameMatcher_SanType, TlsParameters_TlsProtocol } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { SdsSecretConfigSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { DownstreamTlsContextSchema, UpstreamTlsContextSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { labelsSubsetOf } from '../scope.js';
import type { InboundPort, ProxyInfo } from '../../proxy.js';

/** The mode in force for a port (UNSET resolved). */
export type EffectiveMtlsMode = Exclude<MtlsMode, 'UNSET'>;

export const TLS_INSPECTOR_FILTER = 'envoy.filters.listener.tls_inspector';
const TLS_SOCKET = 'envoy.transport_sockets.tls';
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
/** Istio's SDS names: the workload certificate and the mesh trust bundle. */
export const SDS_WORKLOAD_CERT = 'default';
export const SDS_ROOT_CA = 'ROOTCA';
/** The ALPN values Istio's in-mesh clients send for HTTP (matched by sniffed ports' TLS HTTP chains). */
export const MTLS_HTTP_ALPNS = ['istio-http/1.0', 'istio-http/1.1', 'istio-h2'];
/** In-mesh ALPN per upstream protocol (see the module comment). */
export const MESH_ALPN = {
  http1: ['istio-http/1.1', 'http/1.1'],
  http2: ['istio-h2', 'h2'],
  downstream: ['istio-http/1.1', 'istio-h2', 'h2', 'http/1.1'],
  tcp: ['istio-peer-exchange', 'istio'],
} as const;
/**
 * Istio's inbound ALPN for TCP ports under mTLS (ALPNDownstreamWithMxc): `istio-peer-exchange` first, so two
 * sidecars agree on it and run the in-band TCP metadata exchange (proxy stats/istio/tcp-exchange.ts).
 */
export const ALPN_DOWNSTREAM_WITH_MX = ['istio-peer-exchange', 'h2', 'http/1.1'] as const;

function createdMs(p: PeerAuthenticationPolicy): number {
  const t = Date.parse(p.origin.created ?? '');
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** Istio's order among policies of the same level: oldest first, then namespace/name. */
function older(a: PeerAuthenticationPolicy, b: PeerAuthenticationPolicy): number {
  return createdMs(a) - createdMs(b) || `${a.origin.namespace}/${a.origin.name}`.localeCompare(`${b.origin.namespace}/${b.origin.name}`);
}

/** The PeerAuthentication mode in force for a workload port (see the module comment). */
export function mtlsMode(model: Pick<MeshModel, 'mesh' | 'peerAuthentications'>, namespace: string, labels: Labels, port: number): EffectiveMtlsMode {
  const root = model.mesh.rootNamespace;
  let workload: PeerAuthenticationPolicy | undefined;
  let ns: PeerAuthenticationPolicy | undefined;
  let mesh: PeerAuthenticationPolicy | undefined;
  for (const p of model.peerAuthentications) {
    const sel = p.selector !== undefined && Object.keys(p.selector).length > 0;
    if (p.namespace === namespace && sel && labelsSubsetOf(p.selector!, labels)) {
      if (workload === undefined || older(p, workload) < 0) workload = p;
    } else if (p.namespace === namespace && !sel && namespace !== root) {
      if (ns === undefined || older(p, ns) < 0) ns = p;
    } else if (p.namespace === root && !sel) {
      if (mesh === undefined || older(p, mesh) < 0) mesh = p;
    }
  }
  const fallback = model.mesh.defaultMtlsMode === 'UNSET' ? 'PERMISSIVE' : model.mesh.defaultMtlsMode;
  let mode: EffectiveMtlsMode = mesh && mesh.mode !== 'UNSET' ? mesh.mode : fallback;
  if (ns && ns.mode !== 'UNSET') mode = ns.mode;
  if (workload) {
    if (workload.mode !== 'UNSET') mode = workload.mode;
    const pl = workload.portLevel[port];
    if (pl !== undefined && pl !== 'UNSET') mode = pl;
  }
  return mode;
}

/**
 * The mode of a proxy's inbound port. A proxy without a workload certificate cannot terminate mTLS: PERMISSIVE
 * falls back to plaintext for it, and STRICT stays STRICT — every connection is refused — with an error saying why.
 */
export function inboundMtlsMode(model: Pick<MeshModel, 'mesh' | 'peerAuthentications'>, proxy: Pick<ProxyInfo, 'namespace' | 'labels' | 'workloadIdentity' | 'type'>, i: Pick<InboundPort, 'port' | 'targetPort'>, error: (message: string) => void): EffectiveMtlsMode {
  if (proxy.type !== 'sidecar') return 'DISABLE';
  const mode = mtlsMode(model, proxy.namespace, proxy.labels, i.port);
  if (proxy.workloadIdentity) return mode;
  if (mode === 'STRICT') error(`inbound port ${i.port} is STRICT mTLS but the proxy has no workload certificate: every connection is refused`);
  return mode === 'STRICT' ? 'STRICT' : 'DISABLE';
}

function sds(name: string) {
  return create(SdsSecretConfigSchema, {
    name,
    sdsConfig: create(ConfigSourceSchema, { resourceApiVersion: ApiVersion.V3, configSourceSpecifier: { case: 'ads', value: create(AggregatedConfigSourceSchema, {}) } }),
  });
}

/** Istio's inbound mTLS context: the workload certificate, a client certificate from the mesh required. */
export function downstreamMtlsSocket(trustDomain: string, http: boolean): TransportSocket {
  const ctx = create(DownstreamTlsContextSchema, {
    requireClientCertificate: true,
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_2, tlsMaximumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_3 },
      tlsCertificateSdsSecretConfigs: [sds(SDS_WORKLOAD_CERT)],
      validationContextType: {
        case: 'combinedValidationContext',
        value: {
          defaultValidationContext: { matchTypedSubjectAltNames: [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { matchPattern: { case: 'prefix', value: `spiffe://${trustDomain}/` } } }] },
          validationContextSdsSecretConfig: sds(SDS_ROOT_CA),
        },
      },
      alpnProtocols: http ? ['h2', 'http/1.1'] : [...ALPN_DOWNSTREAM_WITH_MX],
    },
  });
  return create(TransportSocketSchema, { name: TLS_SOCKET, configType: { case: 'typedConfig', value: pack(DownstreamTlsContextSchema, ctx) } });
}

/** The ISTIO_MUTUAL client transport socket. */
export function istioMutualSocket(sni: string, sans: readonly string[], alpn: readonly string[]): TransportSocket {
  const ctx = create(UpstreamTlsContextSchema, {
    sni,
    commonTlsContext: {
      tlsParams: { tlsMinimumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_2, tlsMaximumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_3 },
      tlsCertificateSdsSecretConfigs: [sds(SDS_WORKLOAD_CERT)],
      validationContextType: {
        case: 'combinedValidationContext',
        value: {
          defaultValidationContext: { matchTypedSubjectAltNames: sans.map((s) => ({ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { matchPattern: { case: 'exact' as const, value: s } } })) },
          validationContextSdsSecretConfig: sds(SDS_ROOT_CA),
        },
      },
      alpnProtocols: [...alpn],
    },
  });
  return create(TransportSocketSchema, { name: TLS_SOCKET, configType: { case: 'typedConfig', value: pack(UpstreamTlsContextSchema, ctx) } });
}

/** Istio's auto mTLS transport_socket_matches: `tlsMode: istio` endpoints get ISTIO_MUTUAL, the others plaintext. */
export function autoMtlsMatches(sni: string, sans: readonly string[], alpn: readonly string[]): Cluster_TransportSocketMatch[] {
  return [
    create(Cluster_TransportSocketMatchSchema, { name: 'tlsMode-istio', match: { tlsMode: 'istio' }, transportSocket: istioMutualSocket(sni, sans, alpn) }),
    create(Cluster_TransportSocketMatchSchema, { name: 'tlsMode-disabled', match: {}, transportSocket: create(TransportSocketSchema, { name: 'envoy.transport_sockets.raw_buffer' }) }),
  ];
}

/** Istio's SNI for in-mesh TLS: `outbound_.<port>_.<subset>_.<host>`. */
export function meshSni(port: number, subset: string | undefined, host: string): string {
  return `outbound_.${port}_.${subset ?? ''}_.${host}`;
}

/** `spiffe://<td>/ns/<ns>/sa/<sa>`. */
export function spiffeId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;
}

/**
 * Rewrites a plaintext inbound listener (listener.ts inboundListener) for the mode: see the module comment.
 * Returns the same listener for DISABLE.
 */
export function applyInboundMtls(l: Listener, mode: EffectiveMtlsMode, trustDomain: string): Listener {
  if (mode === 'DISABLE') return l;
  const tlsChains = l.filterChains.map((c) => tlsChain(c, trustDomain));
  const plainChains = mode === 'PERMISSIVE' ? l.filterChains.map(plainChain) : [];
  l.filterChains = [...tlsChains, ...plainChains];
  const inspector = create(ListenerFilterSchema, { name: TLS_INSPECTOR_FILTER, configType: { case: 'typedConfig', value: pack(TlsInspectorSchema, {}) } });
  // STRICT needs no HTTP inspector: only TLS chains are left, told apart by the ClientHello's ALPN.
  l.listenerFilters = mode === 'STRICT' ? [inspector] : [inspector, ...l.listenerFilters];
  return l;
}

function isHcm(c: FilterChain): boolean {
  const f = c.filters[0];
  return f?.configType.case === 'typedConfig' && (f.configType.value as Any).typeUrl.endsWith(HCM_TYPE);
}

function tlsChain(c: FilterChain, trustDomain: string): FilterChain {
  const http = isHcm(c);
  const out = create(FilterChainMatchSchema, {});
  const m = c.filterChainMatch;
  if (m?.destinationPort !== undefined) out.destinationPort = m.destinationPort;
  out.transportProtocol = 'tls';
  // A sniffed port's HTTP chain (matched on the HTTP inspector's values) matches the in-mesh HTTP ALPN values.
  if (m !== undefined && m.applicationProtocols.length > 0) out.applicationProtocols = [...MTLS_HTTP_ALPNS];
  const filters = c.filters.map((f) => {
    if (!http) return f;
    const hcm = unpack(HttpConnectionManagerSchema, f.configType.value as Any);
    hcm.forwardClientCertDetails = HttpConnectionManager_ForwardClientCertDetails.APPEND_FORWARD;
    hcm.setCurrentClientCertDetails = { $typeName: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager.SetCurrentClientCertDetails', subject: true, cert: false, chain: false, dns: true, uri: true };
    return { ...f, configType: { case: 'typedConfig' as const, value: pack(HttpConnectionManagerSchema, hcm) } };
  });
  return { ...c, name: c.name ? `${c.name}-mtls` : 'mtls', filterChainMatch: out, transportSocket: downstreamMtlsSocket(trustDomain, http), filters };
}

function plainChain(c: FilterChain): FilterChain {
  const m = create(FilterChainMatchSchema, {});
  if (c.filterChainMatch?.destinationPort !== undefined) m.destinationPort = c.filterChainMatch.destinationPort;
  m.applicationProtocols = [...(c.filterChainMatch?.applicationProtocols ?? [])];
  m.transportProtocol = 'raw_buffer';
  return { ...c, name: c.name ? c.name : 'plaintext', filterChainMatch: m };
}
