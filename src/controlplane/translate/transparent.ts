/**
 * The listeners, routes and name table of a sidecar in transparent mode (node metadata `WEFT_MODE=transparent`
 * or Istio's `INTERCEPTION_MODE`), where iptables sends the workload's traffic to the sidecar (see
 * src/runtime/capture/): Istio's sidecar listener set (pilot/pkg/networking/core/listener*.go), in place of the
 * explicit-mode set of listener.ts. translate.ts calls `buildTransparent` for such proxies.
 *
 * - `virtualOutbound` 0.0.0.0:15001, `use_original_dst: true`: every outbound TCP connection of the workload
 *   arrives here and is handed to the listener of its original destination (Envoy's hand-off: exact `ip:port`,
 *   else `0.0.0.0:port`); what no listener takes runs the passthrough chain: tcp_proxy to `PassthroughCluster`
 *   (ORIGINAL_DST) under ALLOW_ANY, to `BlackHoleCluster` under REGISTRY_ONLY. A `virtualOutbound-blackhole`
 *   chain on destination port 15001 stops connections addressed to 15001 itself from looping (Istio).
 * - `0.0.0.0_<port>` per HTTP (or unknown-protocol) service port, `bind_to_port: false`: an HCM on RDS `<port>`.
 *   RouteConfiguration `<port>` holds the virtual hosts of every visible service on that port (the same virtual
 *   hosts as explicit mode's `outbound`, plus the automatic VIP as a domain) and the catch-all virtual host of
 *   the outbound traffic policy (allow_any → PassthroughCluster, block_all → 502).
 * - `<vip>_<port>` per TCP service port and VIP, `bind_to_port: false`: tcp_proxy to the port's cluster (or the
 *   weighted clusters of its TCP route, listener.ts `tcpRouteClusters`).
 * - `virtualInbound` 0.0.0.0:15006 with the `original_dst` listener filter: iptables sends inbound connections
 *   here; one filter chain per WEFT_INBOUND port matched on `destination_port` (HTTP: HCM with the inline inbound
 *   route to `inbound|<targetPort>||`; TCP: tcp_proxy; unknown: Istio's sniffing chains, as listener.ts
 *   `inboundListener` builds them, with the workload's authentication and authorization filters), a
 *   `virtualInbound-blackhole` chain on port 15006, and a passthrough chain to
 *   `InboundPassthroughCluster` (ORIGINAL_DST) for every other port.
 *
 * Services without an address get an automatic VIP (dns.ts); the name table for the DNS proxy maps every name a
 * client in the proxy's namespace can use for a visible service to its VIPs.
 */
import { create } from '@bufbuild/protobuf';
import type { MeshModel, Service } from '../../api/model.js';
import { isHttpProtocol } from '../../api/protocol.js';
import { pack, TypeUrl } from '../../xds/index.js';
import { Cluster_DiscoveryType, Cluster_LbPolicy, ClusterSchema } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { TrafficDirection } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { FilterChainMatchSchema, FilterChainSchema, ListenerFilterSchema } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import type { FilterChain, ListenerFilter } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { ListenerSchema } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { VirtualHostSchema } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { VirtualHost } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RouteConfigurationSchema } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { OriginalDstSchema } from '../../xds/gen/envoy/extensions/filters/listener/original_dst/v3/original_dst_pb.js';
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import type { NameTable } from '../../xds/name-table.js';
import type { ProxyInfo } from '../proxy.js';
import { DEFAULT_CONNECT_TIMEOUT_MS, duration } from './cluster.js';
import { autoVips, nameTable, ownVips, serviceVips } from './dns.js';
import type { RegistryView, TranslateError } from './index.js';
import { applyHcmTelemetry, applyTcpTelemetry, NO_TELEMETRY, proxyTelemetry, type SideTelemetry } from './telemetry.js';
import { applyInboundMtls, inboundMtlsMode } from './security/mtls.js';
import { corsFilter, faultFilter, inboundListener, networkFilter, routerFilter, sidecarHcm, socketAddress, tcpProxy, tcpRouteClusters } from './listener.js';
import type { ListenerInput } from './listener.js';
import { BLACKHOLE_CLUSTER, INBOUND_PASSTHROUGH_CLUSTER, outboundClusterName, PASSTHROUGH_CLUSTER, VIRTUAL_INBOUND_LISTENER, VIRTUAL_OUTBOUND_LISTENER } from './names.js';
import { ALLOW_ANY_ROUTE, BLOCK_ALL_ROUTE, MAX_DIRECT_RESPONSE_BODY_BYTES, proxyRoutes } from './route.js';
import type { RouteClient } from './route/match.js';
import { HCM_FILTER, TCP_PROXY_FILTER } from './route/util.js';
import { inboundSecurity, NO_SECURITY, type InboundSecurity } from './security/index.js';
import { hostPort } from './route/util.js';

/** Istio's capture ports: outbound (ProxyOutboundListenPort) and inbound (ProxyInboundListenPort). */
export const VIRTUAL_OUTBOUND_PORT = 15001;
export const VIRTUAL_INBOUND_PORT = 15006;
const ORIGINAL_DST_LISTENER_FILTER = 'envoy.filters.listener.original_dst';

export interface TransparentInput extends ListenerInput {
  scope: ListenerInput['scope'] & { outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY' };
  registry: Pick<RegistryView, 'services'>;
  /** The explicit-mode `outbound` RouteConfiguration (route.ts): its virtual hosts are regrouped per port. */
  outbound: RouteConfiguration | undefined;
}

export interface TransparentResult {
  listeners: Listener[];
  routes: RouteConfiguration[];
  /** Clusters transparent mode adds (InboundPassthroughCluster). */
  clusters: Cluster[];
  nameTable: NameTable;
  errors: TranslateError[];
}

/** Whether the port is routed as HTTP on the outbound side (as route.ts does for the `outbound` route). */
function routedAsHttp(p: Service['ports'][number]): boolean {
  return isHttpProtocol(p.protocol) || p.protocol === 'UNKNOWN';
}

function chain(name: string, filter: ReturnType<typeof networkFilter>, destinationPort?: number): FilterChain {
  const c = create(FilterChainSchema, { name, filters: [filter] });
  if (destinationPort !== undefined) c.filterChainMatch = create(FilterChainMatchSchema, { destinationPort });
  return c;
}

function tcpChain(name: string, cluster: string, destinationPort?: number): FilterChain {
  return chain(name, networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tcpProxy(cluster, [{ name: cluster, weight: 1 }]))), destinationPort);
}

function originalDstFilter(): ListenerFilter {
  return create(ListenerFilterSchema, { name: ORIGINAL_DST_LISTENER_FILTER, configType: { case: 'typedConfig', value: pack(OriginalDstSchema, {}) } });
}

/** `virtualOutbound` (see the module comment). */
export function virtualOutboundListener(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY'): Listener {
  const passthrough = policy === 'ALLOW_ANY' ? PASSTHROUGH_CLUSTER : BLACKHOLE_CLUSTER;
  return create(ListenerSchema, {
    name: VIRTUAL_OUTBOUND_LISTENER,
    address: socketAddress('0.0.0.0', VIRTUAL_OUTBOUND_PORT),
    useOriginalDst: true,
    trafficDirection: TrafficDirection.OUTBOUND,
    filterChains: [
      tcpChain(`${VIRTUAL_OUTBOUND_LISTENER}-blackhole`, BLACKHOLE_CLUSTER, VIRTUAL_OUTBOUND_PORT),
      tcpChain(`${VIRTUAL_OUTBOUND_LISTENER}-catchall-tcp`, passthrough),
    ],
  });
}

/** `0.0.0.0_<port>`: the outbound HTTP listener of a port, on RDS `<port>`, not bound. */
export function outboundHttpListener(port: number, telemetry: SideTelemetry = NO_TELEMETRY): Listener {
  const name = `0.0.0.0_${port}`;
  const hcm = sidecarHcm(`outbound_${name}`, [faultFilter(), corsFilter(), routerFilter()], { rds: String(port) });
  applyHcmTelemetry(hcm, telemetry);
  return create(ListenerSchema, {
    name,
    address: socketAddress('0.0.0.0', port),
    bindToPort: false,
    trafficDirection: TrafficDirection.OUTBOUND,
    filterChains: [chain('', networkFilter(HCM_FILTER, pack(HttpConnectionManagerSchema, hcm)))],
  });
}

/** `<vip>_<port>`: the outbound TCP listener of a service port's VIP, not bound. */
export function outboundTcpListener(vip: string, port: number, own: string, clusters: Array<{ name: string; weight: number }>, telemetry: SideTelemetry = NO_TELEMETRY): Listener {
  const tp = tcpProxy(own, clusters);
  applyTcpTelemetry(tp, telemetry);
  return create(ListenerSchema, {
    name: `${vip}_${port}`,
    address: socketAddress(vip, port),
    bindToPort: false,
    trafficDirection: TrafficDirection.OUTBOUND,
    filterChains: [chain('', networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tp)))],
  });
}

/** `virtualInbound` for the proxy's inbound ports (see the module comment). */
export function virtualInboundListener(proxy: Pick<ProxyInfo, 'inbound' | 'namespace' | 'labels' | 'workloadIdentity' | 'type'>, errors: TranslateError[], model: Pick<MeshModel, 'mesh' | 'peerAuthentications'>, sec: InboundSecurity = NO_SECURITY, telemetry: SideTelemetry = NO_TELEMETRY): Listener {
  const chains: FilterChain[] = [tcpChain(`${VIRTUAL_INBOUND_LISTENER}-blackhole`, BLACKHOLE_CLUSTER, VIRTUAL_INBOUND_PORT)];
  const filters: ListenerFilter[] = [originalDstFilter()];
  let sniffing = false;
  for (const i of proxy.inbound) {
    if (i.port === VIRTUAL_INBOUND_PORT || i.port === VIRTUAL_OUTBOUND_PORT) {
      errors.push({ typeUrl: TypeUrl.Listener, resource: VIRTUAL_INBOUND_LISTENER, message: `inbound port ${i.port} is a capture port of the sidecar: not served` });
      continue;
    }
    // The explicit-mode inbound listener of the port, its chains matched on the port (Istio's inbound chains).
    const mode = inboundMtlsMode(model, proxy, i, (message) => errors.push({ typeUrl: TypeUrl.Listener, resource: VIRTUAL_INBOUND_LISTENER, message }));
    const l = applyInboundMtls(inboundListener(i, '0.0.0.0', sec, telemetry), mode, model.mesh.trustDomain);
    for (const c of l.filterChains) {
      c.name = `0.0.0.0_${i.port}${c.name ? `_${c.name}` : ''}`;
      c.filterChainMatch ??= create(FilterChainMatchSchema, {});
      c.filterChainMatch.destinationPort = i.port;
      chains.push(c);
    }
    for (const f of l.listenerFilters) {
      if (!filters.some((x) => x.name === f.name)) filters.push(f);
      sniffing = true;
    }
  }
  chains.push(tcpChain(VIRTUAL_INBOUND_LISTENER, INBOUND_PASSTHROUGH_CLUSTER));
  return create(ListenerSchema, {
    name: VIRTUAL_INBOUND_LISTENER,
    address: socketAddress('0.0.0.0', VIRTUAL_INBOUND_PORT),
    trafficDirection: TrafficDirection.INBOUND,
    listenerFilters: filters,
    continueOnListenerFiltersTimeout: sniffing,
    filterChains: chains,
  });
}

/** Istio's InboundPassthroughCluster: ORIGINAL_DST, for inbound connections to ports the workload does not declare. */
export function inboundPassthroughCluster(): Cluster {
  return create(ClusterSchema, {
    name: INBOUND_PASSTHROUGH_CLUSTER,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST },
    connectTimeout: duration(DEFAULT_CONNECT_TIMEOUT_MS),
    lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED,
  });
}

/** The port of a virtual host named `host:port`; undefined for the catch-all virtual hosts. */
function vhostPort(vh: VirtualHost): number | undefined {
  if (vh.name === ALLOW_ANY_ROUTE || vh.name === BLOCK_ALL_ROUTE) return undefined;
  const i = vh.name.lastIndexOf(':');
  const port = i < 0 ? NaN : Number(vh.name.slice(i + 1));
  return Number.isInteger(port) ? port : undefined;
}

/** Every transparent-mode resource of a sidecar (see the module comment). */
export function buildTransparent(input: TransparentInput): TransparentResult {
  const errors: TranslateError[] = [];
  const { proxy, scope } = input;
  const auto = autoVips(input.registry.services());
  const listeners: Listener[] = [virtualOutboundListener(scope.outboundTrafficPolicy)];
  const tel = proxyTelemetry(input.model, proxy, scope.services);
  for (const m of tel.errors) errors.push({ typeUrl: TypeUrl.Listener, resource: VIRTUAL_OUTBOUND_LISTENER, message: m });
  const names = new Set<string>([VIRTUAL_OUTBOUND_LISTENER, VIRTUAL_INBOUND_LISTENER]);
  const reserved = (port: number, what: string): boolean => {
    if (port !== VIRTUAL_OUTBOUND_PORT && port !== VIRTUAL_INBOUND_PORT) return false;
    errors.push({ typeUrl: TypeUrl.Listener, resource: `0.0.0.0_${port}`, message: `${what}: port ${port} is a capture port of the sidecar, so its traffic is not routed` });
    return true;
  };

  // HTTP ports: one listener and one RouteConfiguration per port.
  const httpPorts = new Set<number>();
  const byVhost = new Map<string, Service>();
  for (const svc of scope.services) {
    for (const p of svc.ports) {
      if (!routedAsHttp(p)) continue;
      byVhost.set(hostPort(svc.hostname, p.port), svc);
      if (!httpPorts.has(p.port) && !reserved(p.port, `${svc.hostname}:${p.port}`)) httpPorts.add(p.port);
    }
  }
  const perPort = new Map<number, VirtualHost[]>();
  for (const p of httpPorts) perPort.set(p, []);
  let catchAll: VirtualHost | undefined;
  for (const vh of input.outbound?.virtualHosts ?? []) {
    const port = vhostPort(vh);
    if (port === undefined) {
      catchAll = vh;
      continue;
    }
    const list = perPort.get(port);
    if (!list) continue;
    const svc = byVhost.get(vh.name);
    const extra = svc && !ownVips(svc).length ? serviceVips(svc, auto) : [];
    if (!extra.length) {
      list.push(vh);
      continue;
    }
    const domains = [...vh.domains];
    for (const v of extra) {
      if (port === 80) domains.push(v);
      domains.push(hostPort(v, port));
    }
    list.push(create(VirtualHostSchema, { ...vh, domains }));
  }
  const routes: RouteConfiguration[] = [];
  for (const [port, vhosts] of [...perPort].sort((a, b) => a[0] - b[0])) {
    if (catchAll) vhosts.push(catchAll);
    routes.push(create(RouteConfigurationSchema, { name: String(port), virtualHosts: vhosts, validateClusters: false, maxDirectResponseBodySizeBytes: MAX_DIRECT_RESPONSE_BODY_BYTES }));
    listeners.push(outboundHttpListener(port, tel.client));
    names.add(`0.0.0.0_${port}`);
  }

  // TCP ports: one listener per VIP and port.
  const eff = proxyRoutes(input.model, proxy, scope);
  const client: RouteClient = { namespace: proxy.namespace, labels: proxy.labels };
  for (const svc of scope.services) {
    const tcpPorts = svc.ports.filter((p) => !routedAsHttp(p));
    if (!tcpPorts.length) continue;
    const vips = serviceVips(svc, auto);
    for (const p of tcpPorts) {
      if (reserved(p.port, `${svc.hostname}:${p.port}`)) continue;
      if (!vips.length) {
        errors.push({ typeUrl: TypeUrl.Listener, resource: `${svc.hostname}:${p.port}`, message: `TCP port ${p.port} of ${svc.hostname} has no address to capture (wildcard host): no listener` });
        continue;
      }
      for (const vip of vips) {
        const name = `${vip}_${p.port}`;
        if (names.has(name)) {
          errors.push({ typeUrl: TypeUrl.Listener, resource: name, message: `${svc.hostname}:${p.port}: another service already has a listener on ${vip}:${p.port}: left out` });
          continue;
        }
        const own = outboundClusterName(p.port, undefined, svc.hostname);
        const clusters = tcpRouteClusters(scope, eff, svc, p.port, client, (message, source) => errors.push({ typeUrl: TypeUrl.Listener, resource: name, message, source }));
        listeners.push(outboundTcpListener(vip, p.port, own, clusters, tel.client));
        names.add(name);
      }
    }
  }

  listeners.push(virtualInboundListener(proxy, errors, input.model, proxy.inbound.length > 0 ? inboundSecurity(input.model, proxy, scope.services, errors) : NO_SECURITY, tel.server));
  return {
    listeners,
    routes,
    clusters: [inboundPassthroughCluster()],
    nameTable: nameTable(scope.services, auto, proxy.namespace),
    errors,
  };
}
