/**
 * LDS: the listeners of one proxy.
 *
 * Sidecars (explicit mode; see BRIEF: no traffic capture, applications address the sidecar):
 * - `outbound` on 127.0.0.1:<WEFT_OUTBOUND_PORT>: an HttpConnectionManager on RDS route `outbound` (route.ts),
 *   whose catch-all virtual host applies the outbound traffic policy. Absolute-form request URIs are accepted,
 *   so applications can use the sidecar as their HTTP proxy.
 * - `127.0.0.1_<localPort>` per WEFT_UPSTREAMS entry: tcp_proxy to the upstream service's cluster, or weighted
 *   clusters when the host's TCP routes split traffic (the first TCP route whose matches hold for this port and
 *   proxy, as Istio picks them; a match on destinationSubnets cannot hold here, there being no destination
 *   address in explicit mode).
 * - `inbound|<port>` per WEFT_INBOUND entry on <WEFT_INBOUND_BIND>:<port>: HTTP ports get an HCM with an inline
 *   route to `inbound|<targetPort>||`, TCP-like ports a tcp_proxy to it, and ports of unknown protocol are sniffed
 *   with the HTTP inspector (HTTP/1.x and h2c go to the HCM, everything else to the tcp_proxy), as Istio's
 *   inbound protocol detection does. The workload's RequestAuthentication and AuthorizationPolicy filters
 *   (security/) go before the router (HTTP) and before the tcp_proxy (TCP).
 *   inbound protocol detection does. PeerAuthentication turns them into mTLS chains (security/mtls.ts): STRICT
 *   TLS only, PERMISSIVE TLS and plaintext told apart by the TLS inspector, DISABLE plaintext.
 *
 * HTTP connection managers follow Istio's sidecar settings: codec AUTO, `use_remote_address` false, path
 * normalization on (Istio's default BASE normalization), escaped slashes kept, websocket upgrades, no stream
 * idle timeout, the UUID request-id extension, and the HTTP filters `fault`, `cors`, `router` on the outbound
 * listener (always present, as in Istio, so that route changes never need a listener change; they do nothing
 * unless a route configures them). The inbound listeners' inline routes use neither, so they get `router` only.
 *
 * Access logs and tracing (telemetry.ts) go on these HCMs and tcp_proxy filters: the CLIENT side's on the
 * outbound and upstream listeners, the SERVER side's on the inbound ones.
 *
 * Proxyless gRPC clients get an api_listener per RouteConfiguration (`host:port`), with RDS of the same name and
 * the filters gRPC requires: `fault` when a route of that configuration injects faults, `router` last.
 *
 * Routers (gateways) get their listeners from the gateway translation, not here.
 */
import { create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { L4Match, MeshModel, Service } from '../../api/model.js';
import type { EffectiveRoutes } from '../../api/precedence.js';
import { isHttpProtocol } from '../../api/protocol.js';
import { pack, TypeUrl } from '../../xds/index.js';
import { AddressSchema, SocketAddressSchema } from '../../xds/gen/envoy/config/core/v3/address_pb.js';
import type { Address } from '../../xds/gen/envoy/config/core/v3/address_pb.js';
import { TrafficDirection } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { AggregatedConfigSourceSchema, ApiVersion, ConfigSourceSchema } from '../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import type { ConfigSource } from '../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import { Http1ProtocolOptionsSchema } from '../../xds/gen/envoy/config/core/v3/protocol_pb.js';
import { ApiListenerSchema } from '../../xds/gen/envoy/config/listener/v3/api_listener_pb.js';
import { FilterChainMatchSchema, FilterChainSchema, FilterSchema, ListenerFilterSchema } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import type { Filter, FilterChain } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { ListenerSchema } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { CorsSchema } from '../../xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import { HTTPFaultSchema } from '../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { RouterSchema } from '../../xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { HttpInspectorSchema } from '../../xds/gen/envoy/extensions/filters/listener/http_inspector/v3/http_inspector_pb.js';
import {
  HttpConnectionManager_CodecType,
  HttpConnectionManager_PathWithEscapedSlashesAction,
  HttpConnectionManager_UpgradeConfigSchema,
  HttpConnectionManagerSchema,
  HttpFilterSchema,
  RdsSchema,
  RequestIDExtensionSchema,
} from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { HttpConnectionManager, HttpFilter } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import {
  TcpProxy_WeightedCluster_ClusterWeightSchema,
  TcpProxy_WeightedClusterSchema,
  TcpProxySchema,
} from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import type { TcpProxy } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { UuidRequestIdConfigSchema } from '../../xds/gen/envoy/extensions/request_id/uuid/v3/uuid_pb.js';
import type { InboundPort, ProxyInfo } from '../proxy.js';
import type { TranslationCache } from './cache.js';
import type { TranslateError } from './index.js';
import { baseService } from './scope.js';
import { inboundClusterName, outboundClusterName, OUTBOUND_LISTENER } from './names.js';
import { inboundSecurity, NO_SECURITY, type InboundSecurity } from './security/index.js';
import { applyInboundMtls, inboundMtlsMode, type EffectiveMtlsMode } from './security/mtls.js';
import { inboundRouteConfig, proxyRoutes, tablesFor, usesFault } from './route.js';
import type { GrpcTarget, RoutingScope } from './route.js';
import { hostAliases } from './route/domains.js';
import { matchAppliesToClient } from './route/match.js';
import type { RouteClient } from './route/match.js';
import { applyHcmTelemetry, applyTcpTelemetry, NO_TELEMETRY, proxyTelemetry, type SideTelemetry } from './telemetry.js';
import { CORS_FILTER, durationMs, FAULT_FILTER, HCM_FILTER, HTTP_INSPECTOR_FILTER, ROUTER_FILTER, TCP_PROXY_FILTER } from './route/util.js';

/** The ALPN values the HTTP inspector reports for plaintext HTTP (Istio's inbound HTTP filter chain match). */
export const SNIFFED_HTTP_PROTOCOLS = ['http/1.0', 'http/1.1', 'h2c'];

export interface ListenerInput {
  model: MeshModel;
  proxy: ProxyInfo;
  scope: Pick<RoutingScope, 'services' | 'routeTableVisible'>;
}

export interface ListenerResult {
  listeners: Listener[];
  errors: TranslateError[];
}

/** `{ ads: {}, resource_api_version: V3 }`. */
export function adsConfigSource(): ConfigSource {
  return create(ConfigSourceSchema, { configSourceSpecifier: { case: 'ads', value: create(AggregatedConfigSourceSchema) }, resourceApiVersion: ApiVersion.V3 });
}

export function socketAddress(address: string, port: number): Address {
  return create(AddressSchema, { address: { case: 'socketAddress', value: create(SocketAddressSchema, { address, portSpecifier: { case: 'portValue', value: port } }) } });
}

function httpFilter(name: string, config: Any): HttpFilter {
  return create(HttpFilterSchema, { name, configType: { case: 'typedConfig', value: config } });
}

export const faultFilter = (): HttpFilter => httpFilter(FAULT_FILTER, pack(HTTPFaultSchema, {}));
export const corsFilter = (): HttpFilter => httpFilter(CORS_FILTER, pack(CorsSchema, {}));
export const routerFilter = (): HttpFilter => httpFilter(ROUTER_FILTER, pack(RouterSchema, {}));

export function networkFilter(name: string, config: Any): Filter {
  return create(FilterSchema, { name, configType: { case: 'typedConfig', value: config } });
}

/** A sidecar HttpConnectionManager with Istio's settings (see the module comment). */
export function sidecarHcm(statPrefix: string, filters: HttpFilter[], route: { rds: string } | { inline: RouteConfiguration }): HttpConnectionManager {
  const hcm = create(HttpConnectionManagerSchema, {
    codecType: HttpConnectionManager_CodecType.AUTO,
    statPrefix,
    httpFilters: filters,
    useRemoteAddress: false,
    normalizePath: true,
    pathWithEscapedSlashesAction: HttpConnectionManager_PathWithEscapedSlashesAction.KEEP_UNCHANGED,
    upgradeConfigs: [create(HttpConnectionManager_UpgradeConfigSchema, { upgradeType: 'websocket' })],
    streamIdleTimeout: durationMs(0),
    requestIdExtension: create(RequestIDExtensionSchema, { typedConfig: pack(UuidRequestIdConfigSchema, {}) }),
  });
  hcm.routeSpecifier =
    'rds' in route
      ? { case: 'rds', value: create(RdsSchema, { configSource: adsConfigSource(), routeConfigName: route.rds }) }
      : { case: 'routeConfig', value: route.inline };
  return hcm;
}

export function tcpProxy(statPrefix: string, clusters: Array<{ name: string; weight: number }>): TcpProxy {
  const p = create(TcpProxySchema, { statPrefix });
  if (clusters.length === 1) p.clusterSpecifier = { case: 'cluster', value: clusters[0]!.name };
  else {
    p.clusterSpecifier = {
      case: 'weightedClusters',
      value: create(TcpProxy_WeightedClusterSchema, { clusters: clusters.map((c) => create(TcpProxy_WeightedCluster_ClusterWeightSchema, c)) }),
    };
  }
  return p;
}

/** The `outbound` listener. */
export function outboundListener(proxy: Pick<ProxyInfo, 'outboundPort'>, telemetry: SideTelemetry = NO_TELEMETRY): Listener {
  const hcm = sidecarHcm(OUTBOUND_LISTENER, [faultFilter(), corsFilter(), routerFilter()], { rds: OUTBOUND_LISTENER });
  applyHcmTelemetry(hcm, telemetry);
  hcm.httpProtocolOptions = create(Http1ProtocolOptionsSchema, { allowAbsoluteUrl: true });
  return create(ListenerSchema, {
    name: OUTBOUND_LISTENER,
    address: socketAddress('127.0.0.1', proxy.outboundPort),
    trafficDirection: TrafficDirection.OUTBOUND,
    filterChains: [create(FilterChainSchema, { filters: [networkFilter(HCM_FILTER, pack(HttpConnectionManagerSchema, hcm))] })],
  });
}

/**
 * An inbound listener `inbound|<port>` forwarding to the workload on 127.0.0.1:<targetPort>; `sec` are the
 * authentication and authorization filters of the workload (security/index.ts): its HTTP filters go before the
 * router, its network filters before the tcp_proxy.
 */
export function inboundListener(inbound: InboundPort, bind: string, sec: InboundSecurity = NO_SECURITY, telemetry: SideTelemetry = NO_TELEMETRY): Listener {
  const cluster = inboundClusterName(inbound.targetPort);
  const statPrefix = `inbound_${bind}_${inbound.port}`;
  const httpChain = (): FilterChain => {
    const hcm = sidecarHcm(statPrefix, [...sec.http, routerFilter()], { inline: inboundRouteConfig(inbound) });
    applyHcmTelemetry(hcm, telemetry);
    return create(FilterChainSchema, { filters: [networkFilter(HCM_FILTER, pack(HttpConnectionManagerSchema, hcm))] });
  };
  const tcpChain = (): FilterChain => {
    const tp = tcpProxy(cluster, [{ name: cluster, weight: 1 }]);
    applyTcpTelemetry(tp, telemetry);
    return create(FilterChainSchema, { filters: [...sec.tcp, networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tp))] });
  };
  const l = create(ListenerSchema, {
    name: `inbound|${inbound.port}`,
    address: socketAddress(bind, inbound.port),
    trafficDirection: TrafficDirection.INBOUND,
  });
  if (isHttpProtocol(inbound.protocol)) l.filterChains = [httpChain()];
  else if (inbound.protocol !== 'UNKNOWN') l.filterChains = [tcpChain()];
  else {
    const http = httpChain();
    http.name = 'inbound-http';
    http.filterChainMatch = create(FilterChainMatchSchema, { applicationProtocols: [...SNIFFED_HTTP_PROTOCOLS] });
    const tcp = tcpChain();
    tcp.name = 'inbound-tcp';
    l.filterChains = [http, tcp];
    l.listenerFilters = [create(ListenerFilterSchema, { name: HTTP_INSPECTOR_FILTER, configType: { case: 'typedConfig', value: pack(HttpInspectorSchema, {}) } })];
    // A server-first protocol sends nothing to inspect: fall back to TCP when the inspection times out.
    l.continueOnListenerFiltersTimeout = true;
  }
  return l;
}

/** A proxyless gRPC api_listener for one target. */
export function grpcApiListener(t: GrpcTarget): Listener {
  const filters = usesFault(t.route) ? [faultFilter(), routerFilter()] : [routerFilter()];
  const hcm = create(HttpConnectionManagerSchema, {
    httpFilters: filters,
    routeSpecifier: { case: 'rds', value: create(RdsSchema, { configSource: adsConfigSource(), routeConfigName: t.name }) },
  });
  const address = t.service.addresses.find((a) => a && !a.includes('/')) ?? '0.0.0.0';
  return create(ListenerSchema, {
    name: t.name,
    address: socketAddress(address, t.port),
    apiListener: create(ApiListenerSchema, { apiListener: pack(HttpConnectionManagerSchema, hcm) }),
  });
}

/** `grpcApiListener`, shared through the cache by the clients that get the same target. */
function grpcListener(t: GrpcTarget, cache: TranslationCache | undefined): Listener {
  if (!cache) return grpcApiListener(t);
  const key = `grpc|${t.name}|${t.port}|${cache.id(baseService(t.service))}|${usesFault(t.route) ? 'fault' : ''}`;
  let l = cache.listeners.get(key);
  if (!l) cache.listeners.set(key, (l = grpcApiListener(t)));
  return l;
}

/** Whether an L4 match holds for the proxy on `port` in explicit mode. */
function l4MatchHolds(m: L4Match, port: number, client: RouteClient): boolean {
  if (m.port !== undefined && m.port !== port) return false;
  if (m.destinationSubnets.length) return false;
  return matchAppliesToClient(m, client);
}

/**
 * The clusters a TCP service port forwards to for this client: the destinations of the first TCP route of the
 * host whose matches hold for the port and client (as Istio picks them), else the port's own cluster.
 * `error` reports a route whose destinations all have weight 0 (the port's own cluster is used then).
 */
export function tcpRouteClusters(
  scope: Pick<ListenerInput['scope'], 'services'>,
  eff: EffectiveRoutes,
  svc: Service,
  port: number,
  client: RouteClient,
  error: (message: string, source: string) => void,
): Array<{ name: string; weight: number }> {
  const own = outboundClusterName(port, undefined, svc.hostname);
  const route = tablesFor(eff, svc.hostname, port)
    .flatMap((t) => t.tcp)
    .find((r) => r.matches.length === 0 || r.matches.some((m) => l4MatchHolds(m, port, client)));
  if (!route) return [{ name: own, weight: 1 }];
  const byService = new Map(scope.services.map((s) => [s.hostname, s]));
  const weighted = route.destinations
    .filter((d) => route.destinations.length === 1 || d.weight > 0)
    .map((d) => {
      const ds = byService.get(d.host);
      const p = d.port ?? (ds && ds.ports.length === 1 ? ds.ports[0]!.port : port);
      return { name: outboundClusterName(p, d.subset, d.host), weight: d.weight };
    });
  if (weighted.length) return weighted;
  const source = `${route.origin.kind} ${route.origin.namespace}/${route.origin.name}`;
  error(`every TCP destination of ${source} for ${svc.hostname}:${port} has weight 0: traffic goes to ${own}`, source);
  return [{ name: own, weight: 1 }];
}

class ListenerBuilder {
  readonly errors: TranslateError[] = [];
  private readonly client: RouteClient;
  /** Access logs and tracing per side (telemetry.ts). */
  private readonly telemetry: { client: SideTelemetry; server: SideTelemetry };

  constructor(
    private readonly input: ListenerInput,
    private readonly cache?: TranslationCache,
  ) {
    this.client = { namespace: input.proxy.namespace, labels: input.proxy.labels };
    const t = proxyTelemetry(input.model, input.proxy, input.scope.services);
    for (const m of t.errors) this.error(OUTBOUND_LISTENER, m);
    this.telemetry = t;
  }

  private error(resource: string, message: string, source?: string): void {
    this.errors.push({ typeUrl: TypeUrl.Listener, resource, message, ...(source ? { source } : {}) });
  }

  /** Builds one listener; an unexpected failure leaves it out and is reported. */
  private guard(name: string, f: () => Listener | undefined): Listener | undefined {
    try {
      return f();
    } catch (e) {
      this.error(name, `listener left out: ${e instanceof Error ? e.message : String(e)}`);
      return undefined;
    }
  }

  /** The visible service an upstream host names, by any alias the proxy's namespace can use. */
  private resolve(host: string): Service | undefined {
    const h = host.toLowerCase().replace(/\.$/, '');
    const services = this.input.scope.services;
    return services.find((s) => s.hostname.toLowerCase() === h) ?? services.find((s) => hostAliases(s, this.input.proxy.namespace).some((a) => a.toLowerCase() === h));
  }

  upstreamListener(u: ProxyInfo['upstreams'][number], eff: EffectiveRoutes): Listener | undefined {
    const name = `127.0.0.1_${u.localPort}`;
    const svc = this.resolve(u.host);
    if (!svc) {
      this.error(name, `upstream ${u.host}:${u.port} (local port ${u.localPort}) is not a service this proxy can reach: no listener`);
      return undefined;
    }
    if (!svc.ports.some((p) => p.port === u.port)) {
      this.error(name, `upstream ${u.host}:${u.port} (local port ${u.localPort}): service ${svc.hostname} has no port ${u.port} (ports: ${svc.ports.map((p) => p.port).join(', ') || 'none'}): no listener`);
      return undefined;
    }
    const own = outboundClusterName(u.port, undefined, svc.hostname);
    const clusters = tcpRouteClusters(this.input.scope, eff, svc, u.port, this.client, (m, source) => this.error(name, m, source));
    const tp = tcpProxy(own, clusters);
    applyTcpTelemetry(tp, this.telemetry.client);
    return create(ListenerSchema, {
      name,
      address: socketAddress('127.0.0.1', u.localPort),
      trafficDirection: TrafficDirection.OUTBOUND,
      filterChains: [create(FilterChainSchema, { filters: [networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tp))] })],
    });
  }

  /** The mTLS mode of an inbound port (security/mtls.ts; see inboundMtlsMode). */
  private inboundMtls(i: InboundPort): EffectiveMtlsMode {
    return inboundMtlsMode(this.input.model, this.input.proxy, i, (m) => this.error(`inbound|${i.port}`, m));
  }

  /** A listener that depends on nothing but its key, from the cache when there is one. */
  private shared(key: string, build: () => Listener): Listener {
    const cache = this.cache;
    if (!cache) return build();
    let l = cache.listeners.get(key);
    if (!l) cache.listeners.set(key, (l = build()));
    return l;
  }

  sidecar(): Listener[] {
    const p = this.input.proxy;
    const tel = this.telemetry;
    const out: Listener[] = [this.shared(`outbound|${p.outboundPort}|${tel.client.key}`, () => outboundListener(p, tel.client))];
    const eff = proxyRoutes(this.input.model, p, this.input.scope);
    const localPorts = new Set<number>([p.outboundPort]);
    for (const u of p.upstreams) {
      if (localPorts.has(u.localPort)) {
        this.error(`127.0.0.1_${u.localPort}`, `upstream ${u.host}:${u.port}: local port ${u.localPort} is already in use by another listener of this proxy: no listener`);
        continue;
      }
      const l = this.guard(`127.0.0.1_${u.localPort}`, () => this.upstreamListener(u, eff));
      if (l) {
        localPorts.add(u.localPort);
        out.push(l);
      }
    }
    let sec = NO_SECURITY;
    try {
      if (p.inbound.length > 0) sec = inboundSecurity(this.input.model, p, this.input.scope.services, this.errors);
    } catch (e) {
      // Fail closed: without its authorization filters no inbound listener is served.
      this.error('inbound', `inbound listeners left out: authorization could not be translated: ${e instanceof Error ? e.message : String(e)}`);
      return out;
    }
    const td = this.input.model.mesh.trustDomain;
    for (const i of p.inbound) {
      const mode = this.inboundMtls(i);
      const key = `inbound|${i.port}|${i.targetPort}|${i.protocol}|${p.inboundBind}${sec.key === '' ? '' : `|${sec.key}`}|${tel.server.key}|${mode}|${td}`;
      const l = this.guard(`inbound|${i.port}`, () => this.shared(key, () => applyInboundMtls(inboundListener(i, p.inboundBind, sec, tel.server), mode, td)));
      if (l) out.push(l);
    }
    return out;
  }
}

/** Every listener served over LDS to this proxy; `grpcTargets` come from buildRoutes (proxyless gRPC). */
export function buildListeners(input: ListenerInput, grpcTargets: readonly GrpcTarget[], cache?: TranslationCache): ListenerResult {
  if (input.proxy.type === 'router') return { listeners: [], errors: [] };
  if (input.proxy.type === 'grpc') return { listeners: grpcTargets.map((t) => grpcListener(t, cache)), errors: [] };
  const b = new ListenerBuilder(input, cache);
  return { listeners: b.sidecar(), errors: b.errors };
}
