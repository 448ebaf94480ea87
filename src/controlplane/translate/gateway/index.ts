/**
 * Gateway proxies (`router`, `weft proxy --gateway`): listeners, routes and SDS secrets from the Gateways that
 * select the proxy (select.ts), as Istio's gateway translation builds them (pilot/pkg/networking/core
 * gateway.go). A gateway has no sidecar listeners; it has one listener per server port:
 *
 * - `0.0.0.0_<port>` (`<bind>_<port>` when a server binds an address). Every server of every selected Gateway
 *   on that port is merged into it. A port carries one kind of server: plain HTTP (HTTP, HTTP2, GRPC), TLS
 *   (HTTPS, TLS) or TCP (TCP, Mongo, Redis, MySQL...). A server whose kind differs from the port's (the oldest
 *   Gateway's server decides), or a TLS server whose SNI names are already served on the port, clashes: it is
 *   left out and reported, naming both Gateways.
 * - Plain HTTP: one filter chain with an HTTP connection manager reading RDS `http.<port>` (routes.ts).
 * - TLS, one filter chain per server (the tls_inspector reads the SNI first):
 *   - SIMPLE / MUTUAL / OPTIONAL_MUTUAL / ISTIO_MUTUAL (tls.ts): `server_names` = the server's hosts (none when
 *     a host is `*`), the DownstreamTlsContext as transport socket, then an HTTP connection manager on RDS
 *     `https.<port>.<portName>.<gateway>.<namespace>` (HTTPS) or a tcp_proxy from TCP routes (TLS protocol).
 *     A `credentialName` the credentials directory does not have leaves the server out (reported).
 *   - PASSTHROUGH: one chain per TLS route match (VirtualService `tls`) bound to the Gateway, with the SNI hosts
 *     it shares with the server as `server_names`, forwarding the still-encrypted stream with a tcp_proxy.
 *   - AUTO_PASSTHROUGH: one chain per service port (and DestinationRule subset) whose host the server's hosts
 *     cover, matching Istio's SNI `outbound_.<port>_.<subset>_.<host>` and forwarding to
 *     `outbound|<port>|<subset>|<host>` (Istio's multi-network gateways use this form).
 * - TCP: one chain with a tcp_proxy to the destinations of the first TCP route bound to the Gateway whose host
 *   the server's hosts cover.
 *
 * HTTP connection managers are the sidecar's outbound ones (listener.ts) with `use_remote_address` true, as
 * Istio's gateways: the gateway is the edge, the peer address is the client's.
 */
import { create } from '@bufbuild/protobuf';
import type { GatewayServer, L4Match, RouteTable, Service, TcpRoute, TlsRoute } from '../../../api/model.js';
import { isHttpProtocol, parseProtocol } from '../../../api/protocol.js';
import { pack, TypeUrl } from '../../../xds/index.js';
import { TrafficDirection } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { FilterChainMatchSchema, FilterChainSchema, ListenerFilterSchema } from '../../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import type { FilterChain } from '../../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { ListenerSchema } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Listener } from '../../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { Secret } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { TlsInspectorSchema } from '../../../xds/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
import { HttpConnectionManagerSchema } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import type { TranslateError } from '../index.js';
import { corsFilter, faultFilter, networkFilter, routerFilter, sidecarHcm, socketAddress, tcpProxy } from '../listener.js';
import { outboundClusterName } from '../names.js';
import { HCM_FILTER, TCP_PROXY_FILTER } from '../route/util.js';
import { gatewayRouteName, GatewayRoutes } from './routes.js';
import type { BoundServer, GatewayRouteInput } from './routes.js';
import { gatewayName, gatewaysForProxy, gatewaySource, hostsOnServer, intersectHost, serverHosts } from './select.js';
import { CA_SUFFIX, credentialCa, credentialSecret, downstreamTransportSocket, serverTlsContext, terminatesTls } from './tls.js';
import type { CredentialView } from './tls.js';

export const TLS_INSPECTOR_FILTER = 'envoy.filters.listener.tls_inspector';

export interface GatewayInput extends GatewayRouteInput {
  /** The credentials (`credentialName`) the control plane serves; undefined = none configured. */
  credentials?: CredentialView;
}

export interface GatewayResult {
  listeners: Listener[];
  routes: RouteConfiguration[];
  /** SDS Secrets of the credentials the listeners name. */
  secrets: Secret[];
  errors: TranslateError[];
}

type PortKind = 'http' | 'tls' | 'tcp';

interface PortPlan {
  name: string;
  address: string;
  port: number;
  kind: PortKind;
  servers: BoundServer[];
}

function serverKind(s: GatewayServer): PortKind | undefined {
  const p = parseProtocol(s.port.protocol === 'HTTP_PROXY' ? 'HTTP' : s.port.protocol);
  if (!p || p === 'UDP' || p === 'UNKNOWN') return undefined;
  if (p === 'HTTPS' || p === 'TLS') return 'tls';
  if (isHttpProtocol(p)) return 'http';
  return 'tcp';
}

function where(b: BoundServer): string {
  return `${gatewaySource(b.gateway)} servers[${b.index}] (port ${b.server.port.number} ${b.server.port.protocol}${b.server.port.name ? ` "${b.server.port.name}"` : ''})`;
}

/** Whether an L4 match applies on this server of this Gateway. */
function l4Applies(m: L4Match, b: BoundServer): boolean {
  if (m.port !== undefined && m.port !== b.server.port.number) return false;
  return m.gateways.length === 0 || m.gateways.includes(gatewayName(b.gateway));
}

class GatewayBuilder {
  readonly errors: TranslateError[] = [];
  readonly routes: RouteConfiguration[] = [];
  readonly secretNames = new Set<string>();
  readonly http: GatewayRoutes;
  private readonly byHost = new Map<string, Service>();

  constructor(private readonly input: GatewayInput) {
    this.http = new GatewayRoutes(input);
    for (const s of input.scope.services) if (!this.byHost.has(s.hostname)) this.byHost.set(s.hostname, s);
  }

  private error(typeUrl: string, resource: string, message: string, source?: string): void {
    this.errors.push({ typeUrl, resource, message, ...(source ? { source } : {}) });
  }

  /** Groups the servers of the selected Gateways by listener, leaving out (and reporting) clashes. */
  plans(): PortPlan[] {
    const plans = new Map<string, PortPlan>();
    for (const gw of gatewaysForProxy(this.input.model.gateways, this.input.proxy)) {
      gw.servers.forEach((server, index) => {
        const b: BoundServer = { gateway: gw, server, index };
        const kind = serverKind(server);
        const address = server.bind ?? '0.0.0.0';
        const name = `${address}_${server.port.number}`;
        if (!kind) {
          this.error(TypeUrl.Listener, name, `${where(b)}: protocol ${server.port.protocol} cannot be served by a gateway: server left out`, gatewaySource(gw));
          return;
        }
        if (address.startsWith('unix://')) {
          this.error(TypeUrl.Listener, name, `${where(b)}: unix domain socket binds are not supported: server left out`, gatewaySource(gw));
          return;
        }
        let plan = plans.get(name);
        if (!plan) plans.set(name, (plan = { name, address, port: server.port.number, kind, servers: [] }));
        const first = plan.servers[0];
        if (plan.kind !== kind) {
          this.error(
            TypeUrl.Listener,
            name,
            `port conflict: ${where(b)} is ${kind.toUpperCase()} but port ${server.port.number} already serves ${plan.kind.toUpperCase()} for ${first ? where(first) : 'another server'}: server left out`,
            gatewaySource(gw),
          );
          return;
        }
        if (kind === 'tls') {
          const mine = this.sniNames(b);
          const other = plan.servers.find((o) => o.server.tls?.mode !== 'PASSTHROUGH' && b.server.tls?.mode !== 'PASSTHROUGH' && sameSet(this.sniNames(o), mine));
          if (other) {
            this.error(TypeUrl.Listener, name, `port conflict: ${where(b)} serves the same TLS server names (${mine.join(', ') || '*'}) as ${where(other)}: server left out`, gatewaySource(gw));
            return;
          }
        }
        plan.servers.push(b);
      });
    }
    return [...plans.values()].sort((a, b) => a.port - b.port || (a.name < b.name ? -1 : 1));
  }

  /** The SNI names a terminating server matches (none = any). */
  private sniNames(b: BoundServer): string[] {
    const hosts = serverHosts(b.server, b.gateway.namespace).map((h) => h.host);
    return hosts.includes('*') ? [] : [...new Set(hosts)].sort();
  }

  listener(plan: PortPlan): Listener | undefined {
    const chains: FilterChain[] = [];
    let inspect = false;
    if (plan.kind === 'http') {
      const rds = gatewayRouteName(plan.servers[0]!, false);
      this.routes.push(this.http.routeConfig(rds, plan.servers));
      chains.push(create(FilterChainSchema, { filters: [networkFilter(HCM_FILTER, pack(HttpConnectionManagerSchema, this.hcm(plan, rds)))] }));
    } else if (plan.kind === 'tcp') {
      const b = plan.servers[0]!;
      if (plan.servers.length > 1) {
        for (const o of plan.servers.slice(1)) this.error(TypeUrl.Listener, plan.name, `port conflict: ${where(o)} is a second TCP server on port ${plan.port} (TCP cannot tell servers apart; ${where(b)} is used): server left out`, gatewaySource(o.gateway));
      }
      const chain = this.tcpChain(plan, b);
      if (chain) chains.push(chain);
    } else {
      inspect = true;
      const seen = new Set<string>();
      for (const b of plan.servers) {
        for (const chain of this.tlsChains(plan, b)) {
          const key = [...(chain.filterChainMatch?.serverNames ?? [])].sort().join(',');
          if (seen.has(key)) {
            this.error(TypeUrl.Listener, plan.name, `${where(b)}: TLS server names ${key || '*'} are already matched by another filter chain on port ${plan.port}: chain left out`, gatewaySource(b.gateway));
            continue;
          }
          seen.add(key);
          chains.push(chain);
        }
      }
    }
    if (!chains.length) {
      this.error(TypeUrl.Listener, plan.name, `no server on port ${plan.port} has anything to serve (no route bound, or every server was left out): no listener`);
      return undefined;
    }
    const l = create(ListenerSchema, { name: plan.name, address: socketAddress(plan.address, plan.port), trafficDirection: TrafficDirection.OUTBOUND, filterChains: chains });
    if (inspect) l.listenerFilters = [create(ListenerFilterSchema, { name: TLS_INSPECTOR_FILTER, configType: { case: 'typedConfig', value: pack(TlsInspectorSchema, {}) } })];
    return l;
  }

  private hcm(plan: PortPlan, rds: string) {
    const hcm = sidecarHcm(`outbound_${plan.address}_${plan.port}`, [faultFilter(), corsFilter(), routerFilter()], { rds });
    hcm.useRemoteAddress = true;
    return hcm;
  }

  /** Filter chains of one TLS server (see the module comment). */
  private tlsChains(plan: PortPlan, b: BoundServer): FilterChain[] {
    const tls = b.server.tls;
    const mode = tls?.mode ?? 'PASSTHROUGH';
    if (mode === 'PASSTHROUGH') return this.passthroughChains(plan, b);
    if (mode === 'AUTO_PASSTHROUGH') return this.autoPassthroughChains(b);
    if (!tls || !terminatesTls(mode)) {
      this.error(TypeUrl.Listener, plan.name, `${where(b)}: TLS mode ${mode} is not supported: server left out`, gatewaySource(b.gateway));
      return [];
    }
    if (tls.credentialName) {
      const view = this.input.credentials;
      const cred = view?.get(tls.credentialName);
      const missing = !view
        ? 'no credentials directory is configured (weft control-plane --secrets-dir)'
        : !cred?.certChainPem
          ? `credential "${tls.credentialName}" was not found in ${view.where}`
          : undefined;
      const needsCa = mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
      const noCa =
        !missing && needsCa && credentialCa(`${tls.credentialName}${CA_SUFFIX}`, view!) === undefined
          ? `credential "${tls.credentialName}" has no CA certificate (ca.crt) to verify client certificates with (mode ${mode})`
          : undefined;
      if (missing || noCa) {
        this.error(TypeUrl.Listener, plan.name, `${where(b)}: ${missing ?? noCa}: server left out`, gatewaySource(b.gateway));
        return [];
      }
    } else if (mode !== 'ISTIO_MUTUAL' && (!tls.serverCertificate || !tls.privateKey)) {
      this.error(TypeUrl.Listener, plan.name, `${where(b)}: TLS mode ${mode} needs credentialName, or serverCertificate and privateKey: server left out`, gatewaySource(b.gateway));
      return [];
    }
    const https = parseProtocol(b.server.port.protocol) === 'HTTPS';
    const st = serverTlsContext(tls, https);
    for (const s of st.credentialSecrets) this.secretNames.add(s);
    const chain = https ? this.httpsChain(plan, b) : this.tcpChain(plan, b);
    if (!chain) return [];
    const names = this.sniNames(b);
    chain.filterChainMatch = create(FilterChainMatchSchema, { serverNames: names });
    chain.transportSocket = downstreamTransportSocket(st.context);
    return [chain];
  }

  private httpsChain(plan: PortPlan, b: BoundServer): FilterChain {
    const rds = gatewayRouteName(b, true);
    this.routes.push(this.http.routeConfig(rds, [b]));
    return create(FilterChainSchema, { filters: [networkFilter(HCM_FILTER, pack(HttpConnectionManagerSchema, this.hcm(plan, rds)))] });
  }

  /** The clusters of L4 destinations routed on `port`. */
  private clusters(route: TcpRoute | TlsRoute, port: number): Array<{ name: string; weight: number }> {
    const list = route.destinations.filter((d) => route.destinations.length === 1 || d.weight > 0);
    return list.map((d) => {
      const svc = this.byHost.get(d.host);
      const p = d.port ?? (svc && svc.ports.length === 1 ? svc.ports[0]!.port : port);
      return { name: outboundClusterName(p, d.subset, d.host), weight: d.weight };
    });
  }

  /** Route tables bound to the server's Gateway that serve hosts of the server, most specific host first. */
  private tablesOn(b: BoundServer): Array<{ host: string; table: RouteTable }> {
    const eff = this.http.tables(b.gateway);
    const hosts = serverHosts(b.server, b.gateway.namespace);
    const out: Array<{ host: string; table: RouteTable }> = [];
    const keys = [...eff.byHost.keys()].sort((x, y) => (x.startsWith('*') ? 1 : 0) - (y.startsWith('*') ? 1 : 0) || y.length - x.length);
    for (const k of keys) {
      for (const t of eff.byHost.get(k)!) {
        if (t.ports.length && !t.ports.includes(b.server.port.number)) continue;
        if (hostsOnServer([k], t.namespace, hosts).length) out.push({ host: k, table: t });
      }
    }
    return out;
  }

  private tcpChain(plan: PortPlan, b: BoundServer): FilterChain | undefined {
    for (const { table } of this.tablesOn(b)) {
      const route = table.tcp.find((r) => r.matches.length === 0 || r.matches.some((m) => l4Applies(m, b)));
      if (!route) continue;
      const clusters = this.clusters(route, plan.port);
      if (!clusters.length) continue;
      return create(FilterChainSchema, { filters: [networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tcpProxy(clusters[0]!.name, clusters)))] });
    }
    this.error(TypeUrl.Listener, plan.name, `${where(b)}: no TCP route (VirtualService tcp) bound to the gateway serves its hosts: server left out`, gatewaySource(b.gateway));
    return undefined;
  }

  private passthroughChains(plan: PortPlan, b: BoundServer): FilterChain[] {
    const hosts = serverHosts(b.server, b.gateway.namespace);
    const out: FilterChain[] = [];
    for (const { table } of this.tablesOn(b)) {
      for (const r of table.tls) {
        for (const m of r.matches) {
          if (!l4Applies(m, b)) continue;
          const sni = hostsOnServer(m.sniHosts, table.namespace, hosts);
          if (!sni.length) continue;
          const clusters = this.clusters(r, b.server.port.number);
          if (!clusters.length) continue;
          out.push(
            create(FilterChainSchema, {
              filterChainMatch: create(FilterChainMatchSchema, { serverNames: sni.includes('*') ? [] : sni }),
              filters: [networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tcpProxy(clusters[0]!.name, clusters)))],
            }),
          );
        }
      }
    }
    if (!out.length) this.error(TypeUrl.Listener, plan.name, `${where(b)}: PASSTHROUGH server has no TLS route (VirtualService tls with sniHosts) bound to the gateway for its hosts`, gatewaySource(b.gateway));
    return out;
  }

  private autoPassthroughChains(b: BoundServer): FilterChain[] {
    const hosts = serverHosts(b.server, b.gateway.namespace);
    const out: FilterChain[] = [];
    for (const svc of [...this.byHost.values()].sort((x, y) => (x.hostname < y.hostname ? -1 : 1))) {
      if (!hosts.some((h) => (h.namespace === '*' || h.namespace === svc.namespace) && intersectHost(h.host, svc.hostname) === svc.hostname.toLowerCase())) continue;
      const dp = this.input.scope.destinationPolicy(svc.hostname);
      for (const p of svc.ports) {
        if (p.protocol === 'UDP') continue;
        for (const subset of ['', ...(dp?.subsets ?? []).map((s) => s.name)]) {
          const sni = `outbound_.${p.port}_.${subset}_.${svc.hostname}`;
          out.push(
            create(FilterChainSchema, {
              filterChainMatch: create(FilterChainMatchSchema, { serverNames: [sni] }),
              filters: [networkFilter(TCP_PROXY_FILTER, pack(TcpProxySchema, tcpProxy(sni, [{ name: outboundClusterName(p.port, subset || undefined, svc.hostname), weight: 1 }])))],
            }),
          );
        }
      }
    }
    return out;
  }
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** Everything a gateway proxy gets besides its clusters and endpoints (see the module comment). */
export function buildGateway(input: GatewayInput): GatewayResult {
  const b = new GatewayBuilder(input);
  const listeners: Listener[] = [];
  for (const plan of b.plans()) {
    try {
      const l = b.listener(plan);
      if (l) listeners.push(l);
    } catch (e) {
      b.errors.push({ typeUrl: TypeUrl.Listener, resource: plan.name, message: `listener left out: ${e instanceof Error ? e.message : String(e)}` });
    }
  }
  const secrets: Secret[] = [];
  const view = input.credentials;
  if (view) {
    for (const name of [...b.secretNames].sort()) {
      const s = credentialSecret(name, view);
      if (s) secrets.push(s);
    }
  }
  return { listeners, routes: b.routes, secrets, errors: [...b.errors, ...b.http.errors] };
}
