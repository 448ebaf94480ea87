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
import { labelsKey } from './cache.js';
import type { CachedSection, EndpointSource, ProxyDependence, TranslationCache } from './cache.js';
import { buildClusters, inboundServices } from './cluster.js';
import { buildEndpoints, proxyDependenceKey } from './endpoint.js';
import type { ProxyResources, TranslateError, TranslateInput } from './index.js';
import { buildListeners } from './listener.js';
import { buildRoutes } from './route.js';
import type { GrpcTarget } from './route.js';
import { HCM_FILTER, TCP_PROXY_FILTER } from './route/util.js';
import { computeScope } from './scope.js';
import { OUTBOUND_LISTENER } from './names.js';
import { buildTransparent } from './transparent.js';
import { buildGateway } from './gateway/index.js';
import { SecretSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { credentialSecret } from './gateway/tls.js';
import { securityKey } from './security/index.js';
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

/**
 * Whether a message encodes (`toBinary` enforces field ranges and types); the error message when it does not.
 * With a cache the encoding is kept (see TranslationCache.encode), so it is done once per shared message.
 */
function encodeError<D extends DescMessage>(schema: D, m: MessageShape<D>, name: string, cache: TranslationCache | undefined): string | undefined {
  if (cache) {
    const e = cache.encode(schema, m, name);
    return e.ok ? undefined : e.message;
  }
  try {
    toBinary(schema, m);
    return undefined;
  } catch (e) {
    return messageOf(e);
  }
}

/** The messages that encode; the others are reported and left out. */
function encodable<D extends DescMessage>(
  schema: D,
  typeUrl: string,
  items: Array<MessageShape<D>>,
  nameOf: (m: MessageShape<D>) => string,
  errors: TranslateError[],
  cache: TranslationCache | undefined,
): Array<MessageShape<D>> {
  return items.filter((m) => {
    const err = encodeError(schema, m, nameOf(m), cache);
    if (err === undefined) return true;
    errors.push({ typeUrl, resource: nameOf(m), message: `invalid resource, not sent: ${err}` });
    return false;
  });
}

/** A RouteConfiguration that encodes, dropping the virtual hosts that do not (undefined when none is left). */
function validRoute(rc: RouteConfiguration, errors: TranslateError[], cache: TranslationCache | undefined): RouteConfiguration | undefined {
  const err = encodeError(RouteConfigurationSchema, rc, rc.name, cache);
  if (err === undefined) return rc;
  const kept: VirtualHost[] = [];
  for (const vh of rc.virtualHosts) {
    try {
      toBinary(VirtualHostSchema, vh);
      kept.push(vh);
    } catch (vhErr) {
      errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource: rc.name, message: `virtual host ${vh.name} is invalid and was left out: ${messageOf(vhErr)}` });
    }
  }
  const out = { ...rc, virtualHosts: kept };
  try {
    toBinary(RouteConfigurationSchema, out);
    return out;
  } catch {
    errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource: rc.name, message: `invalid resource, not sent: ${err}` });
    return undefined;
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

/** `f(x)`, memoized in `memo` when there is one. */
function memoized<K extends object, V>(memo: WeakMap<K, V> | undefined, x: K, f: (x: K) => V): V {
  if (!memo) return f(x);
  let v = memo.get(x);
  if (v === undefined) {
    v = f(x);
    memo.set(x, v);
  }
  return v;
}

function reportMissingClusters(clusters: readonly Cluster[], routes: readonly RouteConfiguration[], listeners: readonly Listener[], errors: TranslateError[], cache: TranslationCache | undefined): void {
  const have = new Set(clusters.map((c) => c.name));
  const seen = new WeakSet<VirtualHost>();
  for (const rc of routes) {
    for (const vh of rc.virtualHosts) {
      // Proxyless gRPC configurations share one virtual host per service port: report it once.
      if (seen.has(vh)) continue;
      seen.add(vh);
      for (const c of memoized(cache?.vhostClusters, vh, vhostClusters)) {
        if (!have.has(c)) errors.push({ typeUrl: TypeUrl.RouteConfiguration, resource: rc.name, message: `virtual host ${vh.name} routes to cluster ${c}, ${MISSING}` });
      }
    }
  }
  for (const l of listeners) {
    for (const c of memoized(cache?.listenerClusters, l, listenerClusters)) {
      if (!have.has(c)) errors.push({ typeUrl: TypeUrl.Listener, resource: l.name, message: `listener forwards to cluster ${c}, ${MISSING}` });
    }
  }
}

/**
 * Everything `input.proxy` should get (see the module comment). With a `cache` (see cache.ts), the pieces other
 * proxies share with this one are taken from it and the new ones are added to it; the output is the same as
 * without it (it may share arrays and messages with other proxies' output: treat them as read-only).
 *
 * With a cache, each stage's output (with its errors) is also kept whole, keyed by what the stage reads of the
 * proxy, so proxies that differ only in what a stage ignores share that stage's output:
 * - clusters: what the scope shows (`TranslationCache.viewKey`: the visible services and the DestinationRule of
 *   each, not the namespace the scope was computed for), the proxy type and capture mode, its inbound target ports
 *   and the services selecting it (inbound cluster metadata); not kept when a DNS service is in scope (DNS
 *   clusters hold endpoints, and read the proxy's addresses and locality);
 * - endpoints: the clusters' key, and the proxy's locality (and labels) only when some assignment's locality load
 *   balancing reads them (see endpointsSection); checked against the registry's current endpoint lists before use;
 * - routes: the scope, the proxy type, and its labels when a route matches on source labels;
 * - listeners: the routes' key, the outbound port, upstreams, inbound ports and bind address (and the labels,
 *   when the proxy has upstreams: TCP route matches may name source labels), and the security policies that apply
 *   to the workload (security/index.ts `securityKey`).
 */
export function translateProxy(input: TranslateInput, cache?: TranslationCache): ProxyResources {
  cache?.bind(input.model, input.registry.services(), input.registry.serviceAccountsVersion?.() ?? 0);
  const errors: TranslateError[] = [];
  const out: ProxyResources = { clusters: [], endpoints: [], listeners: [], routes: [], errors };
  let scope: ProxyScope;
  try {
    scope = computeScope(input.model, input.registry, input.proxy);
  } catch (e) {
    errors.push({ typeUrl: TypeUrl.Listener, resource: '*', message: `cannot compute what proxy ${input.proxy.id} can see, nothing generated: ${messageOf(e)}` });
    return out;
  }
  const keys = cache && scope.key !== undefined ? sectionKeys(input, scope, cache) : undefined;

  const clusterSection = section(cache, keys?.clusters, errors, (errs) => {
    const built = guarded(errs, TypeUrl.Cluster, '*', { clusters: [] as Cluster[], credentialSecrets: [] as string[], errors: [] as TranslateError[] }, () =>
      buildClusters(input, scope, cache),
    );
    errs.push(...built.errors);
    return { clusters: encodable(ClusterSchema, TypeUrl.Cluster, built.clusters, (c) => c.name, errs, cache), credentialSecrets: built.credentialSecrets };
  });
  const cds = clusterSection.clusters;
  out.clusters = cds;

  out.endpoints = endpointsSection(input, cache, keys?.endpoints, errors, (inp, errs) => {
    const built = guarded(errs, TypeUrl.ClusterLoadAssignment, '*', { endpoints: [] as ClusterLoadAssignment[], errors: [] as TranslateError[] }, () =>
      buildEndpoints(inp, scope, cds.map((c) => c.name), cache),
    );
    errs.push(...built.errors);
    const endpoints = encodable(ClusterLoadAssignmentSchema, TypeUrl.ClusterLoadAssignment, built.endpoints, (e) => e.clusterName, errs, cache);
    return built.dependence ? { endpoints, dependence: built.dependence } : { endpoints };
  });

  const rds = section(cache, keys?.routes, errors, (errs) => {
    const built = guarded(errs, TypeUrl.RouteConfiguration, '*', { routes: [] as RouteConfiguration[], grpcTargets: [] as GrpcTarget[], errors: [] as TranslateError[] }, () =>
      buildRoutes({ model: input.model, proxy: input.proxy, scope }, cache),
    );
    errs.push(...built.errors);
    const routes: RouteConfiguration[] = [];
    const routeByName = new Map<string, RouteConfiguration>();
    for (const rc of built.routes) {
      const ok = validRoute(rc, errs, cache);
      if (ok) {
        routes.push(ok);
        routeByName.set(ok.name, ok);
      }
    }
    // gRPC api_listeners follow the (validated) route configurations they refer to.
    const grpcTargets = built.grpcTargets.flatMap((t) => {
      const rc = routeByName.get(t.name);
      return rc ? [{ ...t, route: rc }] : [];
    });
    return { routes, grpcTargets };
  });

  const transparent = input.proxy.mode === 'transparent' && input.proxy.type === 'sidecar';
  if (input.proxy.type === 'router') {
    // Gateways (gateway/): listeners and routes from the Gateways that select the proxy, and the credential
    // Secrets they name. Not kept in the cache: they read the credentials, and gateways are few.
    const empty = { listeners: [] as Listener[], routes: [] as RouteConfiguration[], secrets: [], errors: [] as TranslateError[] };
    const built = guarded(errors, TypeUrl.Listener, '*', empty, () =>
      buildGateway({ model: input.model, proxy: input.proxy, scope, ...(input.credentials ? { credentials: input.credentials } : {}) }),
    );
    errors.push(...built.errors);
    out.listeners = encodable(ListenerSchema, TypeUrl.Listener, built.listeners, (l) => l.name, errors, undefined);
    out.routes = built.routes.flatMap((rc) => validRoute(rc, errors, undefined) ?? []);
    out.secrets = encodable(SecretSchema, TypeUrl.Secret, built.secrets, (s) => s.name, errors, undefined);
  } else if (transparent) {
    // Transparent capture (transparent.ts): Istio's virtualOutbound/virtualInbound set, per-port routes, DNS table.
    // Kept per listeners key and labels (TCP route matches may read them), like the other stages.
    const key = keys ? `tp|${keys.listeners}|${labelsKey(input.proxy.labels)}` : undefined;
    const t = section(cache, key, errors, (errs) => {
      const built = guarded(errs, TypeUrl.Listener, '*', undefined, () =>
        buildTransparent({ model: input.model, proxy: input.proxy, scope, registry: input.registry, outbound: rds.routes.find((r) => r.name === OUTBOUND_LISTENER) }),
      );
      if (!built) return undefined;
      errs.push(...built.errors);
      const routes: RouteConfiguration[] = [];
      for (const rc of built.routes) {
        const ok = validRoute(rc, errs, cache);
        if (ok) routes.push(ok);
      }
      return {
        listeners: encodable(ListenerSchema, TypeUrl.Listener, built.listeners, (l) => l.name, errs, cache),
        routes,
        clusters: encodable(ClusterSchema, TypeUrl.Cluster, built.clusters, (c) => c.name, errs, cache),
        nameTables: [built.nameTable],
      };
    });
    out.routes = t?.routes ?? [];
    if (t) {
      out.listeners = t.listeners;
      out.clusters = [...cds, ...t.clusters];
      out.nameTables = t.nameTables;
    }
  } else {
    out.listeners = section(cache, keys?.listeners, errors, (errs) => {
      const built = guarded(errs, TypeUrl.Listener, '*', { listeners: [] as Listener[], errors: [] as TranslateError[] }, () =>
        buildListeners({ model: input.model, proxy: input.proxy, scope }, rds.grpcTargets, cache),
      );
      errs.push(...built.errors);
      return encodable(ListenerSchema, TypeUrl.Listener, built.listeners, (l) => l.name, errs, cache);
    });
    out.routes = rds.routes;
  }

  clusterCredentials(clusterSection.credentialSecrets, input.credentials, out, errors);

  const missingKey = keys?.clusters !== undefined && !transparent && input.proxy.type !== 'router' ? `missing|${keys.clusters}|${keys.listeners}` : undefined;
  section(cache, missingKey, errors, (errs) => reportMissingClusters(out.clusters, out.routes, out.listeners, errs, cache));
  return out;
}

/**
 * The credential Secrets (`kubernetes://<name>`, `-cacert`) that DestinationRule `credentialName`s make clusters
 * read (TLS origination with the control plane's credentials), added to the proxy's Secrets next to a gateway's own.
 * A credential the secrets directory does not have is reported; the cluster keeps waiting for it (as Envoy's SDS).
 */
function clusterCredentials(names: readonly string[], view: TranslateInput['credentials'], out: ProxyResources, errors: TranslateError[]): void {
  if (!names.length) return;
  const have = new Set((out.secrets ?? []).map((s) => s.name));
  const add: Secret[] = [];
  for (const name of names) {
    if (have.has(name)) continue;
    have.add(name);
    const secret = view ? credentialSecret(name, view) : undefined;
    if (secret) add.push(secret);
    else {
      const why = view ? `not found in ${view.where}` : 'no credentials directory is configured (weft control-plane --secrets-dir)';
      errors.push({ typeUrl: TypeUrl.Secret, resource: name, message: `credential secret ${name} named by a DestinationRule credentialName: ${why}; TLS to that destination fails until it exists` });
    }
  }
  if (add.length) out.secrets = [...(out.secrets ?? []), ...encodable(SecretSchema, TypeUrl.Secret, add, (s) => s.name, errors, undefined)];
}

interface SectionKeys {
  clusters?: string;
  endpoints?: string;
  routes: string;
  listeners: string;
}

/** The keys of the stages' outputs for this proxy (see translateProxy). */
function sectionKeys(input: TranslateInput, scope: ProxyScope, cache: TranslationCache): SectionKeys {
  const proxy = input.proxy;
  const facts = cache.modelFacts(input.model);
  const routes = `rds|${scope.key}|${proxy.type}|${facts.sourceLabels ? labelsKey(proxy.labels) : ''}`;
  // mTLS (security/mtls.ts): a proxy with a workload certificate gets TLS chains and auto mTLS; its inbound modes
  // follow the PeerAuthentications that select its namespace and labels.
  const mtls = `${proxy.workloadIdentity ? 'id' : ''}|${proxy.inbound.length && input.model.peerAuthentications.length ? `${proxy.namespace}|${labelsKey(proxy.labels)}` : ''}`;
  const listeners =
    `lds|${routes}|${proxy.outboundPort}|${proxy.inboundBind}|${JSON.stringify(proxy.upstreams)}|${JSON.stringify(proxy.inbound)}` +
    `|${proxy.upstreams.length ? labelsKey(proxy.labels) : ''}` +
    `|${proxy.inbound.length ? securityKey(input.model, proxy) : ''}|${mtls}`;
  const keys: SectionKeys = { routes, listeners };
  if (scope.services.some((s) => s.resolution === 'DNS' || s.resolution === 'DNS_ROUND_ROBIN')) return keys;
  // Outbound clusters read the scope's services and the DestinationRule of each (its view key), not the namespace
  // the scope was computed for; inbound clusters name the services that select the proxy (their metadata); the
  // passthrough cluster follows the capture mode.
  const inboundHosts = proxy.inbound.length ? inboundServices(input.model.services, proxy).map((s) => s.hostname).join(',') : '';
  keys.clusters =
    `cds|${cache.viewKey(scope)}|${proxy.type}|${proxy.mode}|${proxy.inbound.map((p) => `${p.targetPort}/${p.protocol}`).join(',')}|${inboundHosts}` +
    `|${proxy.workloadIdentity ? 'id' : ''}`;
  // The assignments read the proxy's locality (and labels) only under some locality load-balancing settings: the
  // stage says which (see endpointsSection).
  keys.endpoints = `eds|${keys.clusters}`;
  return keys;
}

/** A stage's output, from the cache when `key` is given and the stage was kept; its errors are added to `errors`. */
function section<T>(cache: TranslationCache | undefined, key: string | undefined, errors: TranslateError[], build: (errs: TranslateError[]) => T): T {
  if (!cache || key === undefined) return build(errors);
  const hit = cache.sections.get(key) as CachedSection<T> | undefined;
  if (hit) {
    cache.stats.hits++;
    errors.push(...hit.errors);
    return hit.value;
  }
  cache.stats.misses++;
  const errs: TranslateError[] = [];
  const value = build(errs);
  cache.sections.set(key, { value, errors: errs });
  errors.push(...errs);
  return value;
}

/**
 * The endpoints stage: like `section`, but a kept output is used only while every endpoint list it was built
 * from is still the registry's current one (the registry replaces a list when its endpoints change), and an
 * output that depends on the proxy's locality (or labels) is kept per locality (and labels): the entry under
 * `key` then only says so (`proxyKey`).
 */
function endpointsSection(
  input: TranslateInput,
  cache: TranslationCache | undefined,
  key: string | undefined,
  errors: TranslateError[],
  build: (input: TranslateInput, errs: TranslateError[]) => { endpoints: ClusterLoadAssignment[]; dependence?: ProxyDependence },
): ClusterLoadAssignment[] {
  if (!cache || key === undefined) return build(input, errors).endpoints;
  const registry = input.registry;
  const version = registry.endpointsVersion?.();
  const base = cache.sections.get(key) as CachedSection<ClusterLoadAssignment[]> | undefined;
  const hit = base?.proxyKey ? (cache.sections.get(`${key}|${proxyDependenceKey(input.proxy, base.proxyKey)}`) as CachedSection<ClusterLoadAssignment[]> | undefined) : base;
  if (hit?.from && ((version !== undefined && hit.endpointsVersion === version) || hit.from.every((d) => registry.endpoints(d.host, d.port) === d.list))) {
    if (version !== undefined) hit.endpointsVersion = version;
    cache.stats.hits++;
    errors.push(...hit.errors);
    return hit.value;
  }
  cache.stats.misses++;
  // Records the endpoint lists the stage reads.
  const from = new Map<string, EndpointSource>();
  const recording: TranslateInput = {
    ...input,
    registry: {
      services: () => registry.services(),
      servicesByHost: (host) => registry.servicesByHost(host),
      endpoints: (host, port) => {
        const list = registry.endpoints(host, port);
        from.set(`${host}|${port}`, { host, port, list });
        return list;
      },
    },
  };
  const errs: TranslateError[] = [];
  const built = build(recording, errs);
  const entry: CachedSection<ClusterLoadAssignment[]> = { value: built.endpoints, errors: errs, from: [...from.values()] };
  if (version !== undefined) entry.endpointsVersion = version;
  if (built.dependence) {
    cache.sections.set(key, { value: [], errors: [], proxyKey: built.dependence });
    cache.sections.set(`${key}|${proxyDependenceKey(input.proxy, built.dependence)}`, entry);
  } else cache.sections.set(key, entry);
  errors.push(...errs);
  return built.endpoints;
}
