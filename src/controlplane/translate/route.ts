/**
 * RDS: RouteConfigurations from the effective route tables (src/api/precedence.ts) for one proxy.
 *
 * - Sidecars get one RouteConfiguration, `outbound` (the explicit-mode outbound HTTP listener's): a virtual host
 *   `<fqdn>:<port>` per visible service port whose protocol is HTTP-like or UNKNOWN, with every authority a
 *   client in the proxy's namespace can use for it (see route/domains.ts), then a catch-all virtual host per the
 *   outbound traffic policy: ALLOW_ANY → `allow_any` to PassthroughCluster, REGISTRY_ONLY → `block_all`
 *   answering 502, as Istio's `buildCatchAllVirtualHost`. Domains are unique across virtual hosts (Envoy rejects
 *   duplicates): the first service keeps a domain, and an alias never takes a name that is another service's
 *   real hostname.
 * - Proxyless gRPC clients get one RouteConfiguration per `host:port` authority of every visible service port,
 *   named like the api_listener that refers to it, with one virtual host.
 * - Inbound HTTP listeners carry an inline RouteConfiguration forwarding everything to `inbound|<port>||`.
 *
 * A service port's routes come from the route tables that win for its host in the proxy's namespace (exact host,
 * else the most specific wildcard host), restricted to tables bound to that port or to every port; model routes
 * are taken in order and a catch-all route ends the list (Istio `BuildHTTPRoutesForVirtualService`). When no rule
 * applies (no table, or every match is for other ports or other clients) the port gets Istio's default route
 * to `outbound|<port>||<host>` with the mesh retry policy.
 */
import { create } from '@bufbuild/protobuf';
import type { DestinationPolicy, MeshModel, OutboundTrafficPolicy, RouteTable, Service } from '../../api/model.js';
import { effectiveRoutes } from '../../api/precedence.js';
import type { EffectiveRoutes } from '../../api/precedence.js';
import { isHttpProtocol } from '../../api/protocol.js';
import { TypeUrl } from '../../xds/index.js';
import { RouteConfigurationSchema } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import {
  DirectResponseActionSchema,
  RetryPolicySchema,
  RouteAction_MaxStreamDurationSchema,
  RouteActionSchema,
  RouteSchema,
  VirtualHostSchema,
} from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { Route, VirtualHost } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { InboundPort, ProxyInfo } from '../proxy.js';
import type { TranslateError } from './index.js';
import { labelsKey } from './cache.js';
import type { TranslationCache } from './cache.js';
import { inboundClusterName, outboundClusterName, OUTBOUND_LISTENER, PASSTHROUGH_CLUSTER } from './names.js';
import { aliasAuthorities, virtualHostDomains } from './route/domains.js';
import { defaultRoute, DEFAULT_ROUTE_NAME, RouteError, translateHttpRoute } from './route/http.js';
import type { HttpRouteContext } from './route/http.js';
import { MESH_GATEWAY } from './route/match.js';
import { durationMs, FAULT_FILTER, hostPort } from './route/util.js';

/** Name of the catch-all virtual host (and its route) under ALLOW_ANY / REGISTRY_ONLY (Istio util.Passthrough / util.BlackHole). */
export const ALLOW_ANY_ROUTE = 'allow_any';
export const BLOCK_ALL_ROUTE = 'block_all';

/** Istio's RouteConfiguration.max_direct_response_body_size_bytes: 1 MiB (Envoy's default is 4 KiB). */
export const MAX_DIRECT_RESPONSE_BODY_BYTES = 1024 * 1024;

/** What route generation reads of the proxy's scope (Sidecar egress, exportTo, DestinationRules). */
export interface RoutingScope {
  /** Services the proxy may reach. */
  services: readonly Service[];
  /** The DestinationRule that applies to a host for this proxy, if any. */
  destinationPolicy(host: string): DestinationPolicy | undefined;
  outboundTrafficPolicy: OutboundTrafficPolicy;
  /**
   * Whether a route table is visible to the proxy (exported to its namespace and imported by its Sidecar's
   * egress hosts). Undefined = every table; exportTo is applied by the precedence rules either way.
   */
  routeTableVisible?(table: RouteTable): boolean;
}

/** The route tables that win for each host in the proxy's view, from the tables its scope can see. */
export function proxyRoutes(model: Pick<MeshModel, 'routes' | 'services'>, proxy: Pick<ProxyInfo, 'namespace'>, scope: Pick<RoutingScope, 'routeTableVisible'>): EffectiveRoutes {
  const visible = scope.routeTableVisible;
  const routes = visible ? model.routes.filter((t) => visible.call(scope, t)) : model.routes;
  return effectiveRoutes({ routes, services: model.services }, { namespace: proxy.namespace, gateway: MESH_GATEWAY });
}

export interface RouteInput {
  model: MeshModel;
  proxy: ProxyInfo;
  scope: RoutingScope;
}

/** A proxyless gRPC target: the `host:port` authority a client dials, its RouteConfiguration and service port. */
export interface GrpcTarget {
  name: string;
  service: Service;
  port: number;
  route: RouteConfiguration;
}

export interface RouteResult {
  routes: RouteConfiguration[];
  /** For proxyless gRPC: one per RouteConfiguration, for the api_listeners. */
  grpcTargets: GrpcTarget[];
  errors: TranslateError[];
}

function sourceOf(o: { kind: string; namespace: string; name: string }): string {
  return `${o.kind} ${o.namespace}/${o.name}`;
}

/** Whether a wildcard host pattern (`*.example.com`, `*`) covers a host. */
function wildcardCovers(pattern: string, host: string): boolean {
  if (pattern === '*') return true;
  if (!pattern.startsWith('*.')) return false;
  return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
}

const wildcardKeys = new WeakMap<EffectiveRoutes, string[]>();

/** The route tables for one service port: those of its host (else of the most specific wildcard covering it). */
export function tablesFor(eff: EffectiveRoutes, host: string, port: number): RouteTable[] {
  let tables = eff.byHost.get(host);
  if (!tables) {
    let keys = wildcardKeys.get(eff);
    if (!keys) wildcardKeys.set(eff, (keys = [...eff.byHost.keys()].filter((k) => k.startsWith('*'))));
    let best: string | undefined;
    for (const k of keys) if (wildcardCovers(k, host) && (best === undefined || k.length > best.length)) best = k;
    tables = best !== undefined ? eff.byHost.get(best) : undefined;
  }
  if (!tables) return [];
  const forPort = tables.filter((t) => t.ports.includes(port));
  return forPort.length ? forPort : tables.filter((t) => t.ports.length === 0);
}

/** Whether the proxy can route a port of this protocol as HTTP on its outbound listener. */
function routedAsHttp(p: Service['ports'][number]): boolean {
  return isHttpProtocol(p.protocol) || p.protocol === 'UNKNOWN';
}

class RouteBuilder {
  readonly errors: TranslateError[] = [];
  readonly eff: EffectiveRoutes;
  readonly ctx: HttpRouteContext;
  /** Visible services, one per hostname (the first wins), in hostname order. */
  readonly services: Service[];
  private readonly byHost = new Map<string, Service>();

  constructor(
    private readonly input: RouteInput,
    private readonly cache?: TranslationCache,
  ) {
    const grpc = input.proxy.type === 'grpc';
    for (const s of input.scope.services) if (!this.byHost.has(s.hostname)) this.byHost.set(s.hostname, s);
    this.services = [...this.byHost.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : a.hostname > b.hostname ? 1 : 0));
    this.eff = proxyRoutes(input.model, input.proxy, input.scope);
    this.ctx = {
      client: { namespace: input.proxy.namespace, labels: input.proxy.labels },
      grpc,
      mesh: input.model.mesh,
      service: (h) => this.byHost.get(h),
      destinationPolicy: (h) => input.scope.destinationPolicy(h),
    };
  }

  /** The routes of one service port (never empty). */
  routesFor(svc: Service, port: number, resource: string): Route[] {
    const hostCluster = outboundClusterName(port, undefined, svc.hostname);
    const routes: Route[] = [];
    outer: for (const t of tablesFor(this.eff, svc.hostname, port)) {
      for (const r of t.http) {
        try {
          const tr = translateHttpRoute(this.ctx, r, port, hostCluster);
          routes.push(...tr.routes);
          if (tr.catchAll) break outer;
        } catch (e) {
          if (!(e instanceof RouteError)) throw e;
          const what = r.name ? `route "${r.name}"` : `route ${r.origin.path ?? ''}`.trim();
          this.errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource, message: `${hostPort(svc.hostname, port)}: ${what} of ${sourceOf(r.origin)}: ${e.message}`, source: sourceOf(r.origin) });
        }
      }
    }
    return routes.length ? routes : [defaultRoute(this.ctx, svc, port)];
  }

  /** Real hostnames of visible services, with and without ports: an alias must not take one of these. */
  knownHosts(): Set<string> {
    const out = new Set<string>();
    for (const s of this.services) {
      out.add(s.hostname.toLowerCase());
      for (const p of s.ports) out.add(hostPort(s.hostname, p.port).toLowerCase());
    }
    return out;
  }

  /** Builds one virtual host; an unexpected failure leaves it out and is reported. */
  guard(svc: Service, port: number, resource: string, f: () => VirtualHost): VirtualHost | undefined {
    try {
      return f();
    } catch (e) {
      this.errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource, message: `virtual host ${hostPort(svc.hostname, port)} left out: ${e instanceof Error ? e.message : String(e)}` });
      return undefined;
    }
  }

  virtualHost(svc: Service, port: number, domains: string[], resource: string): VirtualHost {
    const cache = this.cache;
    if (!cache) {
      return create(VirtualHostSchema, {
        name: hostPort(svc.hostname, port),
        domains,
        routes: this.routesFor(svc, port, resource),
        includeRequestAttemptCount: true,
      });
    }
    const routesKey = this.routesKey(cache, svc, port);
    let cached = cache.routes.get(routesKey);
    if (cached) cache.stats.hits++;
    else {
      cache.stats.misses++;
      const errors: TranslateError[] = [];
      const saved = this.errors.length;
      const routes = this.routesFor(svc, port, resource);
      for (const e of this.errors.splice(saved)) errors.push(e);
      cached = { routes, errors: errors.map((e) => (e.source !== undefined ? { message: e.message, source: e.source } : { message: e.message })) };
      cache.routes.set(routesKey, cached);
    }
    for (const e of cached.errors) this.errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource, ...e });
    const vhKey = `${routesKey}#${domains.join(',')}`;
    let vh = cache.virtualHosts.get(vhKey);
    if (!vh) {
      vh = create(VirtualHostSchema, { name: hostPort(svc.hostname, port), domains, routes: cached.routes, includeRequestAttemptCount: true });
      cache.virtualHosts.set(vhKey, vh);
    }
    return vh;
  }

  /**
   * What the routes of a service port depend on (see cache.ts): the route tables that apply, the client's
   * namespace and labels when a match reads them, and for every host routed or mirrored to (and the port's own
   * host, for the default route): the visible service's port count and the DestinationRule that applies.
   */
  private routesKey(cache: TranslationCache, svc: Service, port: number): string {
    const tables = tablesFor(this.eff, svc.hostname, port);
    const parts: string[] = [this.ctx.grpc ? 'g' : 's', String(port), svc.hostname];
    const hosts = new Set<string>([svc.hostname]);
    let labels = false;
    let ns = false;
    for (const t of tables) {
      parts.push(String(cache.id(t)));
      const f = cache.tableFacts(t);
      for (const h of f.hosts) hosts.add(h);
      labels ||= f.sourceLabels;
      ns ||= f.sourceNamespace;
    }
    if (ns) parts.push(`ns=${this.input.proxy.namespace}`);
    if (labels) parts.push(`labels=${labelsKey(this.input.proxy.labels)}`);
    for (const h of hosts) {
      const s = this.byHost.get(h);
      const ports = s ? (s.ports.length === 1 ? String(s.ports[0]!.port) : '*') : '-';
      parts.push(`${h}=${ports}=${cache.policyKey(this.input.scope.destinationPolicy(h))}`);
    }
    return parts.join('|');
  }

  /** The sidecar's `outbound` RouteConfiguration. */
  outbound(): RouteConfiguration {
    const used = new Set<string>(['*']);
    const known = this.knownHosts();
    const vhosts: VirtualHost[] = [];
    for (const svc of this.services) {
      const own = new Set([svc.hostname.toLowerCase()]);
      for (const p of svc.ports) {
        if (!routedAsHttp(p)) continue;
        own.add(hostPort(svc.hostname, p.port).toLowerCase());
        const domains: string[] = [];
        for (const d of virtualHostDomains(svc, p.port, this.input.proxy.namespace)) {
          const k = d.toLowerCase();
          if (used.has(k) || (known.has(k) && !own.has(k))) continue;
          used.add(k);
          domains.push(d);
        }
        if (!domains.length) continue;
        const vh = this.guard(svc, p.port, OUTBOUND_LISTENER, () => this.virtualHost(svc, p.port, domains, OUTBOUND_LISTENER));
        if (vh) vhosts.push(vh);
      }
    }
    vhosts.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const policy = this.input.scope.outboundTrafficPolicy;
    const cache = this.cache;
    if (!cache) {
      vhosts.push(catchAllVirtualHost(policy));
      return outboundRouteConfig(vhosts);
    }
    let catchAll = cache.virtualHosts.get(`catch-all|${policy}`);
    if (!catchAll) cache.virtualHosts.set(`catch-all|${policy}`, (catchAll = catchAllVirtualHost(policy)));
    vhosts.push(catchAll);
    // Proxies that get the same virtual hosts share one RouteConfiguration (and its encoding).
    const key = `outbound|${vhosts.map((v) => cache.id(v)).join(',')}`;
    let rc = cache.routeConfigs.get(key);
    if (rc) cache.stats.hits++;
    else {
      cache.stats.misses++;
      rc = outboundRouteConfig(vhosts);
      cache.routeConfigs.set(key, rc);
    }
    return rc;
  }

  /** A proxyless gRPC client's RouteConfiguration for one authority (shared through the cache). */
  private grpcRouteConfig(name: string, vhost: VirtualHost): RouteConfiguration {
    const cache = this.cache;
    if (!cache) return create(RouteConfigurationSchema, { name, virtualHosts: [vhost], validateClusters: false });
    const key = `grpc|${name}|${cache.id(vhost)}`;
    let rc = cache.routeConfigs.get(key);
    if (!rc) cache.routeConfigs.set(key, (rc = create(RouteConfigurationSchema, { name, virtualHosts: [vhost], validateClusters: false })));
    return rc;
  }

  /** Proxyless gRPC: one RouteConfiguration per authority of every visible service port. */
  grpc(): GrpcTarget[] {
    const known = this.knownHosts();
    const taken = new Set<string>();
    const out: GrpcTarget[] = [];
    for (const svc of this.services) {
      for (const p of svc.ports) {
        const names = aliasAuthorities(svc, p.port, this.input.proxy.namespace).filter((n) => {
          const k = n.toLowerCase();
          const own = k === svc.hostname.toLowerCase() || k === hostPort(svc.hostname, p.port).toLowerCase();
          if (taken.has(k) || (known.has(k) && !own)) return false;
          taken.add(k);
          return true;
        });
        if (!names.length) continue;
        const first = names.find((n) => n.includes(':')) ?? names[0]!;
        const vhost = this.guard(svc, p.port, first, () => this.virtualHost(svc, p.port, virtualHostDomains(svc, p.port, this.input.proxy.namespace), first));
        if (!vhost) continue;
        for (const name of names) out.push({ name, service: svc, port: p.port, route: this.grpcRouteConfig(name, vhost) });
      }
    }
    return out;
  }
}

/** The sidecar's `outbound` RouteConfiguration with these virtual hosts. */
function outboundRouteConfig(vhosts: VirtualHost[]): RouteConfiguration {
  return create(RouteConfigurationSchema, {
    name: OUTBOUND_LISTENER,
    virtualHosts: vhosts,
    validateClusters: false,
    maxDirectResponseBodySizeBytes: MAX_DIRECT_RESPONSE_BODY_BYTES,
  });
}

/** Istio `buildCatchAllVirtualHost`. */
export function catchAllVirtualHost(policy: OutboundTrafficPolicy): VirtualHost {
  if (policy === 'ALLOW_ANY') {
    const action = create(RouteActionSchema, {
      clusterSpecifier: { case: 'cluster', value: PASSTHROUGH_CLUSTER },
      timeout: durationMs(0),
      maxGrpcTimeout: durationMs(0),
    });
    return create(VirtualHostSchema, {
      name: ALLOW_ANY_ROUTE,
      domains: ['*'],
      routes: [create(RouteSchema, { name: ALLOW_ANY_ROUTE, match: { pathSpecifier: { case: 'prefix', value: '/' } }, action: { case: 'route', value: action } })],
      includeRequestAttemptCount: true,
    });
  }
  return create(VirtualHostSchema, {
    name: BLOCK_ALL_ROUTE,
    domains: ['*'],
    routes: [
      create(RouteSchema, {
        name: BLOCK_ALL_ROUTE,
        match: { pathSpecifier: { case: 'prefix', value: '/' } },
        action: { case: 'directResponse', value: create(DirectResponseActionSchema, { status: 502 }) },
      }),
    ],
    includeRequestAttemptCount: true,
  });
}

/**
 * The inline RouteConfiguration of an inbound HTTP listener (Istio `buildSidecarInboundHTTPRouteConfig`): one
 * virtual host `inbound|http|<port>` for every authority, forwarding to `inbound|<targetPort>||` with no timeout
 * and Istio's inbound retry of requests whose connection was reset before they were sent.
 */
export function inboundRouteConfig(inbound: Pick<InboundPort, 'port' | 'targetPort'>): RouteConfiguration {
  const cluster = inboundClusterName(inbound.targetPort);
  const action = create(RouteActionSchema, {
    clusterSpecifier: { case: 'cluster', value: cluster },
    timeout: durationMs(0),
    maxStreamDuration: create(RouteAction_MaxStreamDurationSchema, { maxStreamDuration: durationMs(0), grpcTimeoutHeaderMax: durationMs(0) }),
    retryPolicy: create(RetryPolicySchema, { retryOn: 'reset-before-request', numRetries: 2 }),
  });
  return create(RouteConfigurationSchema, {
    name: cluster,
    virtualHosts: [
      create(VirtualHostSchema, {
        name: `inbound|http|${inbound.port}`,
        domains: ['*'],
        routes: [create(RouteSchema, { name: DEFAULT_ROUTE_NAME, match: { pathSpecifier: { case: 'prefix', value: '/' } }, action: { case: 'route', value: action } })],
      }),
    ],
    validateClusters: false,
  });
}

/** Whether any route of the configuration injects faults (so the HCM needs the fault filter). */
export function usesFault(rc: RouteConfiguration): boolean {
  return rc.virtualHosts.some((vh) => FAULT_FILTER in vh.typedPerFilterConfig || vh.routes.some((r) => FAULT_FILTER in r.typedPerFilterConfig));
}

/** Every RouteConfiguration served over RDS to this proxy. Routers (gateways) get none here. */
export function buildRoutes(input: RouteInput, cache?: TranslationCache): RouteResult {
  if (input.proxy.type === 'router') return { routes: [], grpcTargets: [], errors: [] };
  const b = new RouteBuilder(input, cache);
  if (input.proxy.type === 'grpc') {
    const grpcTargets = b.grpc();
    return { routes: grpcTargets.map((t) => t.route), grpcTargets, errors: b.errors };
  }
  return { routes: [b.outbound()], grpcTargets: [], errors: b.errors };
}
