/**
 * `translateProxy`: everything one proxy gets, as pure functions of (model, registry, proxy).
 *
 *   scope (scope.ts) → clusters (cluster.ts) → endpoints of the EDS clusters (endpoint.ts)
 *                    → routes (route.ts) → listeners (listener.ts; gRPC api_listeners follow the routes)
 *
 * Errors never escape: a resource whose generation throws is left out and reported, and so is a resource that
 * does not encode (every message is checked with `toBinary`, which enforces field ranges and types). A
 * RouteConfiguration that does not encode loses only the virtual hosts that do not encode on their own.
 *
 * Routes and tcp_proxy filters that name a cluster this proxy does not get are kept, as Istio keeps them
 * (`validate_clusters` is false): Envoy answers such requests with 503 and the `NC` (no cluster) flag, a gRPC
 * client fails them with UNAVAILABLE, and every other route keeps working. Each such reference is reported
 * (once per virtual host or listener) so that `weft proxy-status` and the config-error metrics show it.
 */
import { toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { TypeUrl, unpack } from '../../xds/index.js';
import { ClusterSchema } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { VirtualHostSchema } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { VirtualHost } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RouteConfigurationSchema } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { buildClusters } from './cluster.js';
import { buildEndpoints } from './endpoint.js';
import type { ProxyResources, TranslateError, TranslateInput } from './index.js';
import { buildListeners } from './listener.js';
import { buildRoutes } from './route.js';
import type { GrpcTarget } from './route.js';
import { HCM_FILTER, TCP_PROXY_FILTER } from './route/util.js';
import { computeScope } from './scope.js';
import type { ProxyScope } from './scope.js';

function messageOf(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Runs one generation step; a throw becomes a reported error and an empty result. */
function guarded<T>(errors: TranslateError[], typeUrl: string, what: string, empty: T, f: () => T): T {
  try {
    return f();
  } catch (e) {
    errors.push({ typeUrl, resource: what, message: `generation failed: ${messageOf(e)}` });
    return empty;
  }
}

/** The messages that encode; the others are reported and left out. */
function encodable<D extends DescMessage>(schema: D, typeUrl: string, items: Array<MessageShape<D>>, nameOf: (m: MessageShape<D>) => string, errors: TranslateError[]): Array<MessageShape<D>> {
  return items.filter((m) => {
    try {
      toBinary(schema, m);
      return true;
    } catch (e) {
      errors.push({ typeUrl, resource: nameOf(m), message: `invalid resource, not sent: ${messageOf(e)}` });
      return false;
    }
  });
}

/** A RouteConfiguration that encodes, dropping the virtual hosts that do not (undefined when none is left). */
function validRoute(rc: RouteConfiguration, errors: TranslateError[]): RouteConfiguration | undefined {
  try {
    toBinary(RouteConfigurationSchema, rc);
    return rc;
  } catch (e) {
    const kept: VirtualHost[] = [];
    for (const vh of rc.virtualHosts) {
      try {
        toBinary(VirtualHostSchema, vh);
        kept.push(vh);
      } catch (err) {
        errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource: rc.name, message: `virtual host ${vh.name} is invalid and was left out: ${messageOf(err)}` });
      }
    }
    const out = { ...rc, virtualHosts: kept };
    try {
      toBinary(RouteConfigurationSchema, out);
      return out;
    } catch {
      errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource: rc.name, message: `invalid resource, not sent: ${messageOf(e)}` });
      return undefined;
    }
  }
}

/** Clusters named by a virtual host's routes (route, weighted and mirror clusters). */
function vhostClusters(vh: VirtualHost): Set<string> {
  const out = new Set<string>();
  for (const r of vh.routes) {
    if (r.action.case !== 'route') continue;
    const a = r.action.value;
    if (a.clusterSpecifier.case === 'cluster') out.add(a.clusterSpecifier.value);
    else if (a.clusterSpecifier.case === 'weightedClusters') for (const c of a.clusterSpecifier.value.clusters) out.add(c.name);
    for (const m of a.requestMirrorPolicies) if (m.cluster) out.add(m.cluster);
  }
  return out;
}

/** Clusters named by a listener's tcp_proxy filters and inline routes. */
function listenerClusters(l: Listener): Set<string> {
  const out = new Set<string>();
  for (const chain of l.filterChains) {
    for (const f of chain.filters) {
      if (f.configType.case !== 'typedConfig') continue;
      if (f.name === TCP_PROXY_FILTER) {
        const t = unpack(TcpProxySchema, f.configType.value);
        if (t.clusterSpecifier.case === 'cluster') out.add(t.clusterSpecifier.value);
        else if (t.clusterSpecifier.case === 'weightedClusters') for (const c of t.clusterSpecifier.value.clusters) out.add(c.name);
      } else if (f.name === HCM_FILTER) {
        const h = unpack(HttpConnectionManagerSchema, f.configType.value);
        if (h.routeSpecifier.case === 'routeConfig') for (const vh of h.routeSpecifier.value.virtualHosts) for (const c of vhostClusters(vh)) out.add(c);
      }
    }
  }
  return out;
}

const MISSING = 'which this proxy does not have: requests sent there fail with 503 (NC, no cluster) until it exists';

function reportMissingClusters(clusters: readonly Cluster[], routes: readonly RouteConfiguration[], listeners: readonly Listener[], errors: TranslateError[]): void {
  const have = new Set(clusters.map((c) => c.name));
  const seen = new WeakSet<VirtualHost>();
  for (const rc of routes) {
    for (const vh of rc.virtualHosts) {
      // Proxyless gRPC configurations share one virtual host per service port: report it once.
      if (seen.has(vh)) continue;
      seen.add(vh);
      for (const c of vhostClusters(vh)) {
        if (!have.has(c)) errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource: rc.name, message: `virtual host ${vh.name} routes to cluster ${c}, ${MISSING}` });
      }
    }
  }
  for (const l of listeners) {
    for (const c of listenerClusters(l)) {
      if (!have.has(c)) errors.push({ typeUrl: TypeUrl.Listener, resource: l.name, message: `listener forwards to cluster ${c}, ${MISSING}` });
    }
  }
}

/** Everything `input.proxy` should get (see the module comment). */
export function translateProxy(input: TranslateInput): ProxyResources {
  const errors: TranslateError[] = [];
  const out: ProxyResources = { clusters: [], endpoints: [], listeners: [], routes: [], errors };
  let scope: ProxyScope;
  try {
    scope = computeScope(input.model, input.registry, input.proxy);
  } catch (e) {
    errors.push({ typeUrl: TypeUrl.Listener, resource: '*', message: `cannot compute what proxy ${input.proxy.id} can see, nothing generated: ${messageOf(e)}` });
    return out;
  }

  const cds = guarded(errors, TypeUrl.Cluster, '*', { clusters: [] as Cluster[], errors: [] as TranslateError[] }, () => buildClusters(input, scope));
  errors.push(...cds.errors);
  out.clusters = encodable(ClusterSchema, TypeUrl.Cluster, cds.clusters, (c) => c.name, errors);

  const eds = guarded(errors, TypeUrl.ClusterLoadAssignment, '*', { endpoints: [] as ClusterLoadAssignment[], errors: [] as TranslateError[] }, () =>
    buildEndpoints(input, scope, out.clusters.map((c) => c.name)),
  );
  errors.push(...eds.errors);
  out.endpoints = encodable(ClusterLoadAssignmentSchema, TypeUrl.ClusterLoadAssignment, eds.endpoints, (e) => e.clusterName, errors);

  const rds = guarded(errors, TypeUrl.RouteConfiguration, '*', { routes: [] as RouteConfiguration[], grpcTargets: [] as GrpcTarget[], errors: [] as TranslateError[] }, () =>
    buildRoutes({ model: input.model, proxy: input.proxy, scope }),
  );
  errors.push(...rds.errors);
  const routes: RouteConfiguration[] = [];
  const routeByName = new Map<string, RouteConfiguration>();
  for (const rc of rds.routes) {
    const ok = validRoute(rc, errors);
    if (ok) {
      routes.push(ok);
      routeByName.set(ok.name, ok);
    }
  }
  // gRPC api_listeners follow the (validated) route configurations they refer to.
  const grpcTargets = rds.grpcTargets.flatMap((t) => {
    const rc = routeByName.get(t.name);
    return rc ? [{ ...t, route: rc }] : [];
  });

  const lds = guarded(errors, TypeUrl.Listener, '*', { listeners: [] as Listener[], errors: [] as TranslateError[] }, () =>
    buildListeners({ model: input.model, proxy: input.proxy, scope }, grpcTargets),
  );
  errors.push(...lds.errors);
  out.listeners = encodable(ListenerSchema, TypeUrl.Listener, lds.listeners, (l) => l.name, errors);
  out.routes = routes;

  reportMissingClusters(out.clusters, out.routes, out.listeners, errors);
  return out;
}
