/**
 * Translation: pure functions from (model + registry + proxy) to the Envoy resources that proxy should have.
 * Nothing here does I/O, and no memo kept here changes a result. The control plane calls `translateProxy` per
 * proxy shape, passing its TranslationCache (cache.ts) explicitly: pieces shared by proxies are built once, and
 * the output is the same as without the cache.
 *
 *   clusters  (CDS) ─ cluster.ts   services × ports × subsets, DestinationRule policies, special clusters
 *   endpoints (EDS) ─ endpoint.ts  ClusterLoadAssignments with locality, weight, health, priorities
 *   listeners (LDS) ─ listener.ts  outbound/inbound listeners (sidecars) or api_listeners (proxyless gRPC)
 *   routes    (RDS) ─ route.ts     RouteConfigurations from the effective route tables
 *   gateways        ─ gateway/     routers: listeners, routes and credential Secrets (SDS) from Gateways
 *
 * A translation error in one resource drops that resource and is reported in `errors`; the rest still goes out.
 */
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { MeshModel, Service } from '../../api/model.js';
import type { NameTable } from '../../xds/name-table.js';
import type { ProxyInfo } from '../proxy.js';
import type { Endpoint } from '../registry/registry.js';
import type { CredentialView } from './gateway/tls.js';

/** What translation reads of the service registry. */
export interface RegistryView {
  services(): readonly Service[];
  servicesByHost(host: string): readonly Service[];
  endpoints(host: string, port: number): readonly Endpoint[];
  /**
   * Changes whenever an endpoint list may have been replaced (ServiceRegistry.endpointsVersion); while it stays,
   * the lists `endpoints` hands out are the same objects. Optional: without it, lists are compared one by one.
   */
  endpointsVersion?(): number;
  /**
   * Changes whenever the service accounts of some service port's endpoints change (ServiceRegistry
   * .serviceAccountsVersion): clusters carry them as the SANs in-mesh TLS verifies, so translated clusters are not
   * reused across such a change. Optional: without it, clusters are reused for as long as the model and service list.
   */
  serviceAccountsVersion?(): number;
}

export interface TranslateInput {
  model: MeshModel;
  registry: RegistryView;
  proxy: ProxyInfo;
  /** Gateway credentials (`credentialName`) the control plane serves over SDS; undefined = none. */
  credentials?: CredentialView;
}

export interface TranslateError {
  /** The xDS resource that was dropped (or would have been generated). */
  typeUrl: string;
  resource: string;
  message: string;
  /** The config that caused it, when known: `Kind namespace/name`. */
  source?: string;
}

export interface ProxyResources {
  clusters: Cluster[];
  endpoints: ClusterLoadAssignment[];
  listeners: Listener[];
  routes: RouteConfiguration[];
  /** Transparent-mode sidecars: the DNS proxy's name table (one, `name-table`; see transparent.ts, dns.ts). */
  nameTables?: NameTable[];
  /** Gateways: the SDS Secrets of the credentials their listeners name (gateway/tls.ts). */
  secrets?: Secret[];
  errors: TranslateError[];
}
