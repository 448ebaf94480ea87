/**
 * RDS for gateways (Istio `buildGatewayHTTPRouteConfig`): the RouteConfiguration of a set of HTTP servers.
 *
 * - Plain HTTP servers of one port share `http.<port>` (`.<bind>` appended when the server binds an address);
 *   each terminating HTTPS server gets its own `https.<port>.<portName>.<gateway>.<namespace>`.
 * - For each server, the route tables bound to its Gateway (VirtualService `gateways`, Gateway API parentRefs;
 *   see src/api/precedence.ts for how tables of one host merge) whose hosts intersect the server's hosts (the
 *   `namespace/host` form restricts the tables' namespace) and that are not restricted to another port give one
 *   virtual host per intersected host: `<host>:<port>`, domains `<host>` and `<host>:*` (a wildcard host keeps its
 *   port instead: Envoy allows one wildcard per domain), as Istio's `buildGatewayVirtualHostDomains`.
 *   Matches that name gateways apply only when this server's Gateway is among them, and a match's port must
 *   be the server's port.
 * - Virtual hosts of the same name (several servers or Gateways on one port with the same host) are merged,
 *   routes in order; a domain already taken is not repeated.
 * - `httpsRedirect`: the server's virtual hosts get `require_tls: ALL` (Envoy answers 301 to `https://`), and
 *   each host of the server gets such a virtual host even with no route bound.
 * - No virtual host at all: one `blackhole:<port>` virtual host without routes, so every request is answered 404
 *   with the NR (no route) flag, as Istio.
 */
import { create } from '@bufbuild/protobuf';
import type { GatewayDef, GatewayServer, MeshModel, Service } from '../../../api/model.js';
import { effectiveRoutes } from '../../../api/precedence.js';
import type { EffectiveRoutes } from '../../../api/precedence.js';
import { TypeUrl } from '../../../xds/index.js';
import { RouteConfigurationSchema } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { RouteConfiguration } from '../../../xds/gen/envoy/config/route/v3/route_pb.js';
import { VirtualHost_TlsRequirementType, VirtualHostSchema } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { Route, VirtualHost } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { ProxyInfo } from '../../proxy.js';
import type { TranslateError } from '../index.js';
import { outboundClusterName } from '../names.js';
import { MAX_DIRECT_RESPONSE_BODY_BYTES } from '../route.js';
import type { RoutingScope } from '../route.js';
import { RouteError, translateHttpRoute } from '../route/http.js';
import type { HttpRouteContext } from '../route/http.js';
import { gatewayName, hostsOnServer, serverHosts } from './select.js';

/** One server of one Gateway, as the gateway translation handles it. */
export interface BoundServer {
  gateway: GatewayDef;
  server: GatewayServer;
  /** Index in the Gateway's servers (for messages). */
  index: number;
}

/** Istio `gatewayRDSRouteName`. */
export function gatewayRouteName(b: BoundServer, https: boolean): string {
  const bind = b.server.bind ? `.${b.server.bind}` : '';
  if (!https) return `http.${b.server.port.number}${bind}`;
  return `https.${b.server.port.number}.${b.server.port.name ?? ''}.${b.gateway.name}.${b.gateway.namespace}${bind}`;
}

/** Istio `buildGatewayVirtualHostDomains`. */
export function gatewayDomains(host: string, port: number): string[] {
  if (host === '*') return ['*'];
  return host.startsWith('*') ? [host, `${host}:${port}`] : [host, `${host}:*`];
}

export interface GatewayRouteInput {
  model: MeshModel;
  proxy: ProxyInfo;
  scope: Pick<RoutingScope, 'destinationPolicy'> & { services: readonly Service[] };
}

/** Builds gateway RouteConfigurations; route tables per Gateway are computed once. */
export class GatewayRoutes {
  readonly errors: TranslateError[] = [];
  private readonly eff = new Map<string, EffectiveRoutes>();
  private readonly byHost = new Map<string, Service>();

  constructor(private readonly input: GatewayRouteInput) {
    for (const s of input.scope.services) if (!this.byHost.has(s.hostname)) this.byHost.set(s.hostname, s);
  }

  /** The route tables bound to a Gateway, by host (merged per Istio's gateway rules). */
  tables(gw: GatewayDef): EffectiveRoutes {
    const name = gatewayName(gw);
    let e = this.eff.get(name);
    if (!e) {
      e = effectiveRoutes(this.input.model, { gateway: name, namespace: this.input.proxy.namespace });
      this.eff.set(name, e);
    }
    return e;
  }

  private context(gw: GatewayDef): HttpRouteContext {
    return {
      client: { namespace: this.input.proxy.namespace, labels: this.input.proxy.labels, gateway: gatewayName(gw) },
      grpc: false,
      mesh: this.input.model.mesh,
      service: (h) => this.byHost.get(h),
      destinationPolicy: (h) => this.input.scope.destinationPolicy(h),
    };
  }

  /** The routes of one host on one server (empty when no rule applies there). */
  private routesFor(b: BoundServer, host: string, resource: string): Route[] {
    const port = b.server.port.number;
    const ctx = this.context(b.gateway);
    const hosts = serverHosts(b.server, b.gateway.namespace);
    const out: Route[] = [];
    const eff = this.tables(b.gateway);
    // Exact hosts first, then the most specific wildcard.
    const keys = [...eff.byHost.keys()].sort((a, b) => (a.startsWith('*') ? 1 : 0) - (b.startsWith('*') ? 1 : 0) || b.length - a.length);
    outer: for (const k of keys) {
      for (const t of eff.byHost.get(k)!) {
        if (t.ports.length && !t.ports.includes(port)) continue;
        if (!hostsOnServer([k], t.namespace, hosts).includes(host)) continue;
        for (const r of t.http) {
          try {
            const tr = translateHttpRoute(ctx, r, port, outboundClusterName(port, undefined, host));
            out.push(...tr.routes);
            if (tr.catchAll) break outer;
          } catch (e) {
            if (!(e instanceof RouteError)) throw e;
            const source = `${r.origin.kind} ${r.origin.namespace}/${r.origin.name}`;
            this.errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource, message: `${host}:${port}: route ${r.name ?? r.origin.path ?? ''} of ${source}: ${e.message}`, source });
          }
        }
      }
    }
    return out;
  }

  /** The hosts a server serves: every table host intersected with the server's hosts, in host order. */
  private hostsOf(b: BoundServer): string[] {
    const port = b.server.port.number;
    const hosts = serverHosts(b.server, b.gateway.namespace);
    const eff = this.tables(b.gateway);
    const out: string[] = [];
    for (const [k, tables] of eff.byHost) {
      for (const t of tables) {
        if (t.ports.length && !t.ports.includes(port)) continue;
        if (!t.http.length) continue;
        for (const h of hostsOnServer([k], t.namespace, hosts)) if (!out.includes(h)) out.push(h);
      }
    }
    return out.sort();
  }

  /** The RouteConfiguration `name` for these HTTP servers (all on one port). */
  routeConfig(name: string, servers: readonly BoundServer[]): RouteConfiguration {
    const vhosts = new Map<string, VirtualHost>();
    const used = new Set<string>();
    for (const b of servers) {
      const port = b.server.port.number;
      const redirect = b.server.tls?.httpsRedirect === true;
      const hosts = this.hostsOf(b);
      if (redirect) for (const sh of serverHosts(b.server, b.gateway.namespace)) if (!hosts.includes(sh.host)) hosts.push(sh.host);
      for (const host of hosts) {
        const vname = `${host}:${port}`;
        const routes = this.routesFor(b, host, name);
        if (!routes.length && !redirect) continue;
        let vh = vhosts.get(vname);
        if (!vh) {
          const domains = gatewayDomains(host, port).filter((d) => !used.has(d.toLowerCase()));
          if (!domains.length) continue;
          for (const d of domains) used.add(d.toLowerCase());
          vh = create(VirtualHostSchema, { name: vname, domains, routes: [], includeRequestAttemptCount: true });
          vhosts.set(vname, vh);
        }
        vh.routes.push(...routes);
        if (redirect) vh.requireTls = VirtualHost_TlsRequirementType.ALL;
      }
    }
    const list = [...vhosts.values()];
    if (!list.length) {
      const port = servers[0]?.server.port.number ?? 0;
      list.push(create(VirtualHostSchema, { name: `blackhole:${port}`, domains: ['*'], routes: [] }));
    }
    return create(RouteConfigurationSchema, { name, virtualHosts: list, validateClusters: false, maxDirectResponseBodySizeBytes: MAX_DIRECT_RESPONSE_BODY_BYTES });
  }
}
