/**
 * What one proxy can see: its services, the DestinationRule that applies to each host, its Sidecar and its
 * outbound traffic policy. Istio's semantics (istio/istio pilot/pkg/model sidecar.go and push_context.go):
 *
 * **Sidecar selection** (`getSidecarScope`): among the Sidecars of the proxy's namespace, those with a
 * `workloadSelector` come first (oldest first), then those without; the first selector that is a subset of the
 * proxy's labels wins, else the first namespace-wide one. When none applies, the root namespace's Sidecar without
 * a selector is the mesh default, applied as if it lived in the proxy's namespace (`./` then means the proxy's
 * namespace). No Sidecar at all: one catch-all egress listener `*\/*`. Gateways (`router`) ignore Sidecars.
 *
 * **Services exported to a namespace** (`servicesExportedToNamespace`): `exportTo` `*` (the default) = public;
 * `~` = nobody; `.` or the service's own namespace = that namespace only; any other entry = that namespace. The
 * order is private, then exported by name, then public (each oldest first), which decides which of several
 * services with one hostname a proxy sees.
 *
 * **Egress hosts** (`selectServices`): `ns/host` with `ns` a namespace, `.` (the proxy's namespace), `*` (any) or
 * `~` (none); `host` exact, `*` or `*.suffix`. An entry for the service's own namespace is used instead of the
 * `*` entries. A listener with a port keeps only that port of each service. Services named as destinations by the
 * VirtualServices a listener imports are added too (same-namespace service first, else the first namespace in
 * alphabetical order that exports it), without overriding the services the hosts name.
 *
 * **DestinationRule lookup** (`PushContext.destinationRule`, `SidecarScope.DestinationRule`): first the rules of
 * the proxy's namespace (for a proxy in the root namespace: the root namespace's private rules), then the
 * service's namespace rules exported to the proxy's namespace, then the root namespace's exported rules. In each
 * pool the exact host wins over the longest matching wildcard host. Rules for one host in one namespace are
 * merged (oldest first, rules with a `workloadSelector` before the others): unique subsets are appended and the
 * first top-level traffic policy wins; a rule with a `workloadSelector` is never exported and applies only to
 * proxies in its namespace whose labels it selects, in preference to the namespace-wide rule.
 */
import type {
  DestinationPolicy,
  Labels,
  MeshModel,
  OutboundTrafficPolicy,
  RouteTable,
  Service,
  ServicePort,
  SidecarScope,
  TrafficPolicy,
} from '../../api/model.js';
import { isVisibleTo } from '../../api/precedence.js';
import type { ProxyInfo } from '../proxy.js';
import type { RegistryView } from './index.js';

export interface ProxyScope {
  /** The proxy this scope was computed for. */
  proxy: ProxyInfo;
  /**
   * What the scope depends on of the proxy (type, namespace, and which label selectors of its namespace select
   * it): proxies with equal keys get equal scopes from the same model and registry services.
   */
  key?: string;
  /** Every service the proxy can reach, one per hostname, with only the ports its Sidecar imports. */
  services: Service[];
  /** Whether a visible service has exactly this hostname. */
  hostVisible(host: string): boolean;
  /** The visible service with this hostname. */
  serviceFor(host: string): Service | undefined;
  /**
   * The DestinationRule that applies to traffic from this proxy to `host`, after Istio's lookup order and
   * merging (see the module comment); undefined when none does. Memoized per host.
   */
  destinationPolicy(host: string): DestinationPolicy | undefined;
  /** The Sidecar resource in force for this proxy; undefined = Istio's default scope (everything exported). */
  sidecar?: SidecarScope;
  /** The Sidecar's outbound traffic policy, else the mesh's. */
  outboundTrafficPolicy: OutboundTrafficPolicy;
  /**
   * Whether a route table (VirtualService, HTTPRoute, ...) is visible to this proxy: exported to its namespace and
   * imported by one of its egress listeners (Istio `SelectVirtualServices`; Gateway API routes use the stricter
   * host subset test). Gateway binding (`mesh` or a gateway) is left to the caller.
   */
  routeTableVisible(table: RouteTable): boolean;
}

// ---------------------------------------------------------------------------------------------------------------
// Hostname matching (istio/istio pkg/config/host Name.SubsetOf / Name.Matches)

function isWildcard(h: string): boolean {
  return h.startsWith('*');
}

/** Whether every host `n` stands for is also covered by `o` (`a.b.com` ⊂ `*.b.com` ⊂ `*`). */
export function hostSubsetOf(n: string, o: string): boolean {
  if (n === o) return true;
  if (!isWildcard(o)) return false;
  const suffix = o.slice(1);
  return isWildcard(n) ? n.slice(1).endsWith(suffix) : n.endsWith(suffix);
}

/** Whether the host sets of `n` and `o` overlap (used for VirtualService hosts, either may be a wildcard). */
export function hostMatches(n: string, o: string): boolean {
  const nw = isWildcard(n);
  const ow = isWildcard(o);
  if (nw && ow) return n.length < o.length ? o.slice(1).endsWith(n.slice(1)) : n.slice(1).endsWith(o.slice(1));
  if (nw) return o.endsWith(n.slice(1));
  if (ow) return n.endsWith(o.slice(1));
  return n === o;
}

/** Whether every label of `selector` is on `labels` with the same value. */
export function labelsSubsetOf(selector: Labels, labels: Labels): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

function createdMs(created: string | undefined): number {
  if (!created) return Number.POSITIVE_INFINITY;
  const t = Date.parse(created);
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** Oldest first (a missing creation time counts as newest); stable otherwise. */
function byCreation<T extends { origin: { created?: string } }>(items: readonly T[]): T[] {
  return items
    .map((x, i) => ({ x, i, t: createdMs(x.origin.created) }))
    .sort((a, b) => (a.t !== b.t ? (a.t < b.t ? -1 : 1) : a.i - b.i))
    .map((e) => e.x);
}

function isKubernetesService(s: Service): boolean {
  return s.origin.family === 'kubernetes';
}

// ---------------------------------------------------------------------------------------------------------------
// Services exported to a namespace (cached per registry service list)

interface ServiceIndex {
  /** Services private to a namespace (`.` or its own name in exportTo). */
  privateByNs: Map<string, Service[]>;
  /** Services exported by name to a namespace. */
  exportedToNs: Map<string, Service[]>;
  public: Service[];
  /** hostname → namespace → the service (oldest wins, a Kubernetes Service over a ServiceEntry). */
  byHostAndNs: Map<string, Map<string, Service>>;
}

const serviceIndexCache = new WeakMap<readonly Service[], ServiceIndex>();

function serviceIndex(services: readonly Service[]): ServiceIndex {
  const cached = serviceIndexCache.get(services);
  if (cached) return cached;
  const idx: ServiceIndex = { privateByNs: new Map(), exportedToNs: new Map(), public: [], byHostAndNs: new Map() };
  const push = (m: Map<string, Service[]>, k: string, s: Service) => {
    const l = m.get(k);
    if (l) l.push(s);
    else m.set(k, [s]);
  };
  for (const s of byCreation(services)) {
    let byNs = idx.byHostAndNs.get(s.hostname);
    if (!byNs) idx.byHostAndNs.set(s.hostname, (byNs = new Map()));
    const existing = byNs.get(s.namespace);
    if (!existing || (!isKubernetesService(existing) && isKubernetesService(s))) byNs.set(s.namespace, s);
    const exportTo = s.exportTo.length ? s.exportTo : ['*'];
    if (exportTo.includes('*')) {
      idx.public.push(s);
      continue;
    }
    if (exportTo.includes('~')) continue;
    let privateDone = false;
    for (const e of new Set(exportTo)) {
      if (e === '.' || e === s.namespace) {
        if (!privateDone) push(idx.privateByNs, s.namespace, s);
        privateDone = true;
      } else push(idx.exportedToNs, e, s);
    }
  }
  serviceIndexCache.set(services, idx);
  return idx;
}

function servicesExportedTo(idx: ServiceIndex, ns: string): Service[] {
  return [...(idx.privateByNs.get(ns) ?? []), ...(idx.exportedToNs.get(ns) ?? []), ...idx.public];
}

function serviceVisibleTo(s: Service, ns: string): boolean {
  const exportTo = s.exportTo.length ? s.exportTo : ['*'];
  if (exportTo.includes('*')) return true;
  if (exportTo.includes('~')) return false;
  return exportTo.some((e) => ((e === '.' || e === s.namespace) && s.namespace === ns) || e === ns);
}

// ---------------------------------------------------------------------------------------------------------------
// Sidecar selection and egress listeners

/** Picks the Sidecar in force for a proxy (see the module comment); undefined = default scope. */
export function selectSidecar(model: MeshModel, proxy: ProxyInfo): SidecarScope | undefined {
  if (proxy.type === 'router') return undefined;
  const inNs = model.sidecars.filter((s) => s.namespace === proxy.namespace);
  const withSelector = byCreation(inNs.filter((s) => s.workloadSelector));
  for (const s of withSelector) if (labelsSubsetOf(s.workloadSelector!, proxy.labels)) return s;
  const nsWide = byCreation(inNs.filter((s) => !s.workloadSelector));
  if (nsWide.length) return nsWide[0];
  const root = byCreation(model.sidecars.filter((s) => s.namespace === model.mesh.rootNamespace && !s.workloadSelector));
  return root[0];
}

interface EgressListener {
  /** The port services are trimmed to, when the listener has one. */
  port?: number;
  /** namespace (or `*`) → hosts. */
  hostsByNs: Map<string, string[]>;
}

function egressListeners(sidecar: SidecarScope | undefined, proxyNs: string): EgressListener[] {
  const egress = sidecar?.egress.length ? sidecar.egress : [{ hosts: ['*/*'] } as SidecarScope['egress'][number]];
  return egress.map((e) => {
    const hostsByNs = new Map<string, string[]>();
    for (const h of e.writtenHosts ?? e.hosts) {
      const slash = h.indexOf('/');
      if (slash < 0) continue;
      let ns = h.slice(0, slash);
      if (ns === '.') ns = proxyNs;
      const list = hostsByNs.get(ns);
      if (list) list.push(h.slice(slash + 1));
      else hostsByNs.set(ns, [h.slice(slash + 1)]);
    }
    const out: EgressListener = { hostsByNs };
    if (e.port && e.port.number !== 0) out.port = e.port.number;
    return out;
  });
}

/** Registry services behind the copies a scope makes of them (with fewer or merged ports). */
const baseServices = new WeakMap<Service, Service>();

/** A copy of a service with other ports (the copy remembers the registry's service). */
function withPorts(s: Service, ports: ServicePort[]): Service {
  const copy = { ...s, ports };
  baseServices.set(copy, baseService(s));
  return copy;
}

/**
 * The registry's service a scope service stands for: scopes trim services to the ports a Sidecar imports, and
 * such a copy differs from the registry's service in its `ports` only.
 */
export function baseService(s: Service): Service {
  return baseServices.get(s) ?? s;
}

/** The service trimmed to the listener's port (undefined when it has no such port), or as is. */
function forListener(s: Service, l: EgressListener): Service | undefined {
  if (l.port === undefined) return s;
  const p = s.ports.find((x) => x.port === l.port);
  return p ? withPorts(s, [p]) : undefined;
}

function selectServices(candidates: Service[], l: EgressListener, proxyNs: string): Service[] {
  const wildcardHosts = l.hostsByNs.get('*');
  const imported: Service[] = [];
  for (const s of candidates) {
    const hosts = l.hostsByNs.get(s.namespace) ?? wildcardHosts;
    if (!hosts) continue;
    if (!hosts.some((h) => hostSubsetOf(s.hostname, h))) continue;
    const t = forListener(s, l);
    if (t) imported.push(t);
  }
  // One namespace per hostname: the proxy's namespace if it has one, else the first found.
  const chosen = new Map<string, string>();
  for (const s of imported) if (!chosen.has(s.hostname) || s.namespace === proxyNs) chosen.set(s.hostname, s.namespace);
  return imported.filter((s) => chosen.get(s.hostname) === s.namespace);
}

/** Whether a route table's hosts are imported by an egress listener (Istio `SelectVirtualServices`). */
function listenerImportsTable(l: EgressListener, t: RouteTable): boolean {
  const gatewaySemantics = t.origin.family === 'gateway-api';
  const test = (hosts: string[] | undefined) =>
    !!hosts && hosts.some((ih) => t.hosts.some((vh) => (gatewaySemantics ? hostSubsetOf(vh, ih) : hostMatches(vh, ih))));
  return test(l.hostsByNs.get(t.namespace)) || test(l.hostsByNs.get('*'));
}

function destinationHostsOf(t: RouteTable): string[] {
  const out = new Set<string>();
  for (const r of t.http) {
    if (r.action.kind === 'route') for (const d of r.action.destinations) out.add(d.host);
    for (const m of r.mirrors) out.add(m.host);
  }
  for (const r of t.tcp) for (const d of r.destinations) out.add(d.host);
  for (const r of t.tls) for (const d of r.destinations) out.add(d.host);
  return [...out];
}

// ---------------------------------------------------------------------------------------------------------------
// DestinationRule index (cached per model)

interface MergedRule {
  policy: DestinationPolicy;
  selector?: Labels;
  /** Effective exportTo of the merged entry (`.` only for rules with a workloadSelector). */
  exportTo: string[];
}

interface RulePool {
  specific: Map<string, MergedRule[]>;
  wildcard: Map<string, MergedRule[]>;
}

interface RuleIndex {
  local: Map<string, RulePool>;
  exported: Map<string, RulePool>;
  rootLocal: RulePool;
  rootNamespace: string;
}

const ruleIndexCache = new WeakMap<MeshModel, RuleIndex>();

function newPool(): RulePool {
  return { specific: new Map(), wildcard: new Map() };
}

function labelsEqual(a: Labels | undefined, b: Labels | undefined): boolean {
  const ak = Object.keys(a ?? {});
  const bk = Object.keys(b ?? {});
  return ak.length === bk.length && ak.every((k) => (a ?? {})[k] === (b ?? {})[k]);
}

function copyRule(p: DestinationPolicy): DestinationPolicy {
  return { ...p, subsets: [...p.subsets] };
}

/** Istio `mergeDestinationRule`. */
function mergeInto(pool: RulePool, dr: DestinationPolicy, exportTo: string[]): void {
  const map = isWildcard(dr.host) ? pool.wildcard : pool.specific;
  const list = map.get(dr.host);
  const entry: MergedRule = { policy: copyRule(dr), exportTo };
  if (dr.workloadSelector) entry.selector = dr.workloadSelector;
  if (!list) {
    map.set(dr.host, [entry]);
    return;
  }
  let addAsNew = true;
  for (const m of list) {
    const bothWithout = !dr.workloadSelector && !m.selector;
    const bothWith = !!dr.workloadSelector && !!m.selector;
    const selectorsMatch = labelsEqual(m.selector, dr.workloadSelector);
    if (bothWith && !selectorsMatch) continue;
    if (bothWithout || (dr.workloadSelector && selectorsMatch)) addAsNew = false;
    const names = new Set(m.policy.subsets.map((s) => s.name));
    for (const s of dr.subsets) if (!names.has(s.name)) m.policy.subsets.push(s);
    if (!m.policy.trafficPolicy && dr.trafficPolicy) m.policy.trafficPolicy = dr.trafficPolicy;
    if (m.exportTo.length === 0 && exportTo.length) m.exportTo = exportTo;
  }
  if (addAsNew) list.push(entry);
}

function ruleIndex(model: MeshModel): RuleIndex {
  const cached = ruleIndexCache.get(model);
  if (cached) return cached;
  const root = model.mesh.rootNamespace;
  const idx: RuleIndex = { local: new Map(), exported: new Map(), rootLocal: newPool(), rootNamespace: root };
  // Rules with a workloadSelector first, then by creation time, name, namespace (sortConfigBySelectorAndCreationTime).
  const sorted = [...model.destinationPolicies].sort((a, b) => {
    if (!!a.workloadSelector !== !!b.workloadSelector) return a.workloadSelector ? -1 : 1;
    const ta = createdMs(a.origin.created);
    const tb = createdMs(b.origin.created);
    if (ta !== tb) return ta < tb ? -1 : 1;
    if (a.origin.name !== b.origin.name) return a.origin.name < b.origin.name ? -1 : 1;
    return a.namespace < b.namespace ? -1 : a.namespace > b.namespace ? 1 : 0;
  });
  for (const dr of sorted) {
    const exportTo = dr.workloadSelector ? ['.'] : [...new Set(dr.exportTo)];
    const ns = dr.namespace;
    if (exportTo.length === 0 || exportTo.includes('*') || exportTo.includes('.') || exportTo.includes(ns)) {
      let pool = idx.local.get(ns);
      if (!pool) idx.local.set(ns, (pool = newPool()));
      mergeInto(pool, dr, exportTo);
    }
    const privateOnly = exportTo.length === 1 && (exportTo[0] === '.' || exportTo[0] === ns);
    if (!privateOnly) {
      let pool = idx.exported.get(ns);
      if (!pool) idx.exported.set(ns, (pool = newPool()));
      mergeInto(pool, dr, exportTo);
    } else if (ns === root) mergeInto(idx.rootLocal, dr, exportTo);
  }
  ruleIndexCache.set(model, idx);
  return idx;
}

/** Istio `MostSpecificHostMatch`: the exact host, else the longest wildcard host covering it. */
function mostSpecific(host: string, pool: RulePool | undefined): MergedRule[] | undefined {
  if (!pool) return undefined;
  if (!isWildcard(host)) {
    const exact = pool.specific.get(host);
    if (exact) return exact;
  } else {
    const exact = pool.wildcard.get(host);
    if (exact) return exact;
  }
  const needle = isWildcard(host) ? host.slice(1) : host;
  let best: string | undefined;
  for (const h of pool.wildcard.keys()) {
    if (needle.endsWith(h.slice(1)) && (best === undefined || h.length > best.length)) best = h;
  }
  return best === undefined ? undefined : pool.wildcard.get(best);
}

function exportedFrom(idx: RuleIndex, owner: string, host: string, clientNs: string): MergedRule[] {
  const found = mostSpecific(host, idx.exported.get(owner));
  if (!found) return [];
  return found.filter((m) => m.exportTo.length === 0 || m.exportTo.includes('*') || m.exportTo.includes(clientNs));
}

/** Istio `PushContext.destinationRule`: the merged rules for a service host, by the namespace lookup order. */
function rulesFor(idx: RuleIndex, proxyNs: string, host: string, serviceNs: string | undefined): MergedRule[] {
  if (proxyNs !== idx.rootNamespace) {
    const local = mostSpecific(host, idx.local.get(proxyNs));
    if (local) return local;
  } else {
    const local = mostSpecific(host, idx.rootLocal);
    if (local) return local;
  }
  if (serviceNs !== undefined) {
    const fromService = exportedFrom(idx, serviceNs, host, proxyNs);
    if (fromService.length) return fromService;
  }
  return exportedFrom(idx, idx.rootNamespace, host, proxyNs);
}

/** Istio `SidecarScope.DestinationRule`: a selecting rule of the proxy's namespace, else the catch-all rule. */
function pickForProxy(rules: MergedRule[], proxy: ProxyInfo): DestinationPolicy | undefined {
  let catchAll: MergedRule | undefined;
  for (const r of rules) {
    if (!r.selector) catchAll = r;
    else if (r.policy.namespace === proxy.namespace && labelsSubsetOf(r.selector, proxy.labels)) return r.policy;
  }
  return catchAll?.policy;
}

// ---------------------------------------------------------------------------------------------------------------
// Traffic policy selection for a port and subset (istio/istio pilot/pkg/networking/util MergeSubsetTrafficPolicy)

/** A traffic policy without port-level settings: what applies to one cluster. */
export type ClusterTrafficPolicy = Omit<TrafficPolicy, 'portLevelSettings'>;

function portLevelPolicy(tp: TrafficPolicy | undefined, port: number): { policy?: ClusterTrafficPolicy; portLevel: boolean } {
  if (!tp) return { portLevel: false };
  const p = tp.portLevelSettings.find((x) => x.port === port);
  if (!p) {
    const { portLevelSettings: _p, ...rest } = tp;
    return { policy: rest, portLevel: false };
  }
  // Port-level settings replace the destination-level ones entirely (no inheritance), and carry only these four.
  const out: ClusterTrafficPolicy = {};
  if (p.loadBalancer) out.loadBalancer = p.loadBalancer;
  if (p.connectionPool) out.connectionPool = p.connectionPool;
  if (p.outlierDetection) out.outlierDetection = p.outlierDetection;
  if (p.tls) out.tls = p.tls;
  return { policy: out, portLevel: true };
}

/**
 * The traffic policy of cluster `port`/`subset` of a DestinationRule: the rule's policy or its port-level
 * override, with the subset's policy (or the subset's port-level override) replacing it field by field (a
 * subset port-level override also clears the fields it leaves out).
 */
export function clusterTrafficPolicy(dp: DestinationPolicy | undefined, port: number, subset?: string): ClusterTrafficPolicy | undefined {
  if (!dp) return undefined;
  const original = portLevelPolicy(dp.trafficPolicy, port).policy;
  const subsetTp = subset !== undefined ? dp.subsets.find((s) => s.name === subset)?.trafficPolicy : undefined;
  if (!subsetTp) return original;
  const { policy: sp, portLevel } = portLevelPolicy(subsetTp, port);
  if (!original) return sp;
  const merged: ClusterTrafficPolicy = { ...original };
  const set = <K extends 'connectionPool' | 'outlierDetection' | 'loadBalancer' | 'tls'>(k: K) => {
    if (sp?.[k] !== undefined || portLevel) {
      if (sp?.[k] !== undefined) merged[k] = sp[k];
      else delete merged[k];
    }
  };
  set('connectionPool');
  set('outlierDetection');
  set('loadBalancer');
  set('tls');
  if (sp?.tunnel) merged.tunnel = sp.tunnel;
  if (sp?.proxyProtocol) merged.proxyProtocol = sp.proxyProtocol;
  return merged;
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * Scopes already computed, per model and registry service list, keyed by what a scope depends on of a proxy (see
 * `scopeKey`): EDS-only pushes recompute scopes for every proxy and get them from here.
 */
const scopeCache = new WeakMap<MeshModel, WeakMap<readonly Service[], Map<string, ProxyScope>>>();

/**
 * Per namespace, the label selectors that can make a scope depend on a proxy's labels: the workloadSelectors of
 * the namespace's Sidecars (which one applies) and of its DestinationRules (which rule applies to the proxy).
 */
const selectorIndex = new WeakMap<MeshModel, Map<string, Labels[]>>();

function labelSelectors(model: MeshModel, ns: string): readonly Labels[] {
  let idx = selectorIndex.get(model);
  if (!idx) {
    idx = new Map();
    const add = (n: string, sel: Labels) => {
      const l = idx!.get(n);
      if (l) l.push(sel);
      else idx!.set(n, [sel]);
    };
    for (const sc of model.sidecars) if (sc.workloadSelector) add(sc.namespace, sc.workloadSelector);
    for (const dr of model.destinationPolicies) if (dr.workloadSelector) add(dr.namespace, dr.workloadSelector);
    selectorIndex.set(model, idx);
  }
  return idx.get(ns) ?? [];
}

/**
 * What a scope depends on of a proxy: its type, its namespace, and which of the label selectors of its namespace
 * select it (its labels matter through nothing else), so proxies of one namespace whose labels no selector tells
 * apart share a scope.
 */
function scopeKey(model: MeshModel, proxy: ProxyInfo): string {
  const bits = labelSelectors(model, proxy.namespace)
    .map((sel) => (labelsSubsetOf(sel, proxy.labels) ? '1' : '0'))
    .join('');
  return `${proxy.type}\u0000${proxy.namespace}\u0000${bits}`;
}

/**
 * Computes what `proxy` can see. Pure: the result depends only on the model, the registry's services and the
 * proxy's type, namespace and the label selectors that select it, and is cached on those (the indexes it builds
 * are cached per model and per service list too).
 */
export function computeScope(model: MeshModel, registry: RegistryView, proxy: ProxyInfo): ProxyScope {
  const services = registry.services();
  let byServices = scopeCache.get(model);
  if (!byServices) scopeCache.set(model, (byServices = new WeakMap()));
  let byKey = byServices.get(services);
  if (!byKey) byServices.set(services, (byKey = new Map()));
  const key = scopeKey(model, proxy);
  const cached = byKey.get(key);
  if (cached) return cached.proxy === proxy ? cached : { ...cached, proxy };
  const scope = buildScope(model, registry, proxy, key);
  byKey.set(key, scope);
  return scope;
}

function buildScope(model: MeshModel, registry: RegistryView, proxy: ProxyInfo, key: string): ProxyScope {
  const ns = proxy.namespace;
  const sidecar = selectSidecar(model, proxy);
  const idx = serviceIndex(registry.services());
  const exported = servicesExportedTo(idx, ns);
  const listeners = egressListeners(sidecar, ns);

  const byHost = new Map<string, Service>();
  const order: string[] = [];
  const add = (s: Service) => {
    const found = byHost.get(s.hostname);
    if (!found) {
      byHost.set(s.hostname, s);
      order.push(s.hostname);
      return;
    }
    if (sidecar) {
      // Istio merges the ports each listener imported when both come from the same namespace.
      if (found.namespace !== s.namespace) return;
      const extra = s.ports.filter((p) => !found.ports.some((q) => q.port === p.port));
      if (extra.length) byHost.set(s.hostname, withPorts(found, [...found.ports, ...extra]));
    } else if (!isKubernetesService(found) && isKubernetesService(s)) {
      // Default scope: the oldest service wins, except that a Kubernetes Service beats a ServiceEntry.
      byHost.set(s.hostname, s);
    }
  };

  const tables = model.routes.filter((t) => isVisibleTo(t.exportTo, t.namespace, ns));
  if (!sidecar) {
    for (const s of exported) add(s);
  } else {
    for (const l of listeners) {
      for (const s of selectServices(exported, l, ns)) add(s);
      // Destinations of the route tables this listener imports.
      for (const t of tables) {
        if (!listenerImportsTable(l, t)) continue;
        for (const h of destinationHostsOf(t)) {
          const byNs = idx.byHostAndNs.get(h);
          if (!byNs) continue;
          let s = byNs.get(ns);
          if (!s) {
            const visible = [...byNs.keys()].filter((n) => serviceVisibleTo(byNs.get(n)!, ns)).sort();
            s = visible.length ? byNs.get(visible[0]!) : undefined;
          }
          const t2 = s && forListener(s, l);
          if (t2) add(t2);
        }
      }
    }
  }
  const services = order.map((h) => byHost.get(h)!);

  const rules = ruleIndex(model);
  const drMemo = new Map<string, DestinationPolicy | undefined>();
  const destinationPolicy = (host: string): DestinationPolicy | undefined => {
    if (drMemo.has(host)) return drMemo.get(host);
    const svcNs = byHost.get(host)?.namespace ?? registry.servicesByHost(host)[0]?.namespace;
    const dp = pickForProxy(rulesFor(rules, ns, host, svcNs), proxy);
    drMemo.set(host, dp);
    return dp;
  };

  const scope: ProxyScope = {
    proxy,
    key,
    services,
    hostVisible: (host) => byHost.has(host),
    serviceFor: (host) => byHost.get(host),
    destinationPolicy,
    outboundTrafficPolicy: sidecar?.outboundTrafficPolicy ?? model.mesh.outboundTrafficPolicy,
    routeTableVisible: (t) => isVisibleTo(t.exportTo, t.namespace, ns) && listeners.some((l) => listenerImportsTable(l, t)),
  };
  if (sidecar) scope.sidecar = sidecar;
  return scope;
}
