/**
 * Route precedence: which route tables apply to a host when several API families (or several resources of one
 * family) route it. The control plane and the analyzer use the same function, so what `weft analyze` says wins
 * is what the proxies get.
 *
 * ## Upstream behaviour this follows
 *
 * - **Istio, sidecars (`mesh`)**: VirtualServices for the same host are NOT merged. Istiod orders them by
 *   creation time (then name, then namespace) and, for each host, only the first one is used; `istioctl analyze`
 *   reports the overlap as IST0109 (ConflictingMeshGatewayVirtualServiceHosts). For a client in namespace N the
 *   candidates are, in this order: VirtualServices private to N (`exportTo: ["."]` in N), those exported to N
 *   by name, then the public ones (`exportTo` empty or `*`).
 * - **Istio, gateways**: VirtualServices bound to the same gateway and host ARE merged: their rules are
 *   concatenated in the same creation order.
 * - **Gateway API (GAMMA, Service parentRef)**: all routes attached to a Service in one namespace are merged
 *   (the Gateway API route merging rules: match specificity first, then the oldest route, then
 *   `{namespace}/{name}`). A *producer* route (same namespace as the Service) applies to every client; a
 *   *consumer* route (another namespace) applies only to clients in its own namespace and, there, replaces the
 *   producer routes. Routes attached to a Gateway are merged per gateway and hostname.
 * - **Istio with both**: Istio turns GAMMA routes into internal VirtualServices and keeps the oldest per host,
 *   except that gateway-semantics routes in the client's own namespace are preferred.
 * - **SMI TrafficSplit**: the spec leaves two TrafficSplits for the same root service undefined
 *   (servicemeshinterface/smi-spec#59, #227).
 *
 * ## Weft's rule
 *
 * 1. **Across families, one family wins a host**, by this fixed rank: `weft` > `gateway-api` > `istio` > `smi`.
 *    Creation timestamps cannot decide here: config files usually carry none, and a rule that changes with
 *    `kubectl apply` order is what IST0109 warns about. Reasons: Weft's own kinds are the most specific
 *    statement of intent; GAMMA routes attach to the Service itself (its owner's routing, and what Istio
 *    prefers in the consumer's namespace); VirtualService is Istio's older, host-name based API; SMI
 *    TrafficSplit only splits weights and SMI is archived. The family is chosen per host and per view, not per
 *    port: when a GAMMA route binds only some ports of a Service, a VirtualService for that host is still
 *    ignored on every port (the conflict says so).
 * 2. **Within the winning family**, upstream semantics:
 *    - `istio` / `weft`, gateway `mesh`: the first table in visibility tier order (private, exported-to,
 *      public), oldest first (creation time, then name, then namespace), wins alone. Two tables in the same tier
 *      are a `duplicate` conflict (IST0109); a table from a narrower tier hiding a public one is an `override`.
 *    - `istio`, other gateways: every visible table applies, merged in the same order.
 *    - `gateway-api`: consumer routes of the client's namespace if there are any (an `override` of the producer
 *      routes), otherwise the producer routes; all of them apply, ordered oldest first (creation time, then
 *      namespace, then name). Rule-level ordering by match specificity is left to the consumer of the list.
 *    - `smi`: the oldest TrafficSplit (creation time, then namespace, then name) wins alone; the others are a
 *      `duplicate` conflict.
 * 3. A table without `metadata.creationTimestamp` counts as newer than any table that has one (it is being
 *    created now); two tables without one fall back to the name order.
 *
 * Hosts are compared exactly as they appear in `RouteTable.hosts` (FQDNs or wildcard patterns): a wildcard
 * table and an exact one are different virtual hosts, and the proxy prefers the exact one.
 */
import type { ApiFamily, MeshModel, Origin, RouteTable } from './model.js';

/** Family rank, highest precedence first. */
export const FAMILY_PRECEDENCE: readonly ApiFamily[] = ['weft', 'gateway-api', 'istio', 'smi', 'kubernetes'];

const FAMILY_REASON: Record<ApiFamily, string> = {
  weft: "Weft's own kinds are the most specific statement of intent",
  'gateway-api': 'a GAMMA route attaches to the Service itself and is what its owner declared for it',
  istio: 'a VirtualService expresses everything a TrafficSplit does, and more',
  smi: 'SMI TrafficSplit has the lowest rank (SMI is archived)',
  kubernetes: 'Kubernetes kinds do not route',
};

/** Whose view of the routes to compute. */
export interface RouteView {
  /**
   * Namespace of the client proxy (or of the gateway). Undefined = a client in a namespace that has no routes
   * of its own: only public tables and GAMMA producer routes count.
   */
  namespace?: string;
  /** `mesh` (sidecars, the default) or `namespace/name` of a gateway. */
  gateway?: string;
}

export type ConflictKind =
  /** Tables of several API families route the host; one family wins. */
  | 'family'
  /** Several tables of one family and visibility scope, of which only one can apply (upstream: undefined). */
  | 'duplicate'
  /** A narrower-scoped table (private VirtualService, GAMMA consumer route) hides wider ones: intended. */
  | 'override';

export interface RouteConflict {
  kind: ConflictKind;
  host: string;
  gateway: string;
  /** The client namespace of the view where this shows; undefined = every client namespace. */
  namespace?: string;
  /** The tables that apply, in precedence order. */
  winners: RouteTable[];
  /** The tables that are ignored. */
  losers: RouteTable[];
  /** Why the winners win, in words. */
  reason: string;
}

export interface EffectiveRoutes {
  /** For each host, the tables that apply, in precedence order (a single table where upstream does not merge). */
  byHost: Map<string, RouteTable[]>;
  conflicts: RouteConflict[];
}

/** The gateways a table is bound to (`mesh` when none is given, as Istio defaults). */
export function tableGateways(t: RouteTable): string[] {
  return t.gateways.length ? t.gateways : ['mesh'];
}

/** Whether a table's `exportTo` makes it visible to clients in `clientNs` (empty = everywhere, Istio's default). */
export function isVisibleTo(exportTo: readonly string[], ownerNs: string, clientNs: string): boolean {
  if (exportTo.length === 0) return true;
  return exportTo.some((e) => e === '*' || (e === '.' && ownerNs === clientNs) || e === clientNs);
}

/** Whether a table is visible in every namespace. */
export function isPublic(exportTo: readonly string[]): boolean {
  return exportTo.length === 0 || exportTo.includes('*');
}

/**
 * Compares two origins by creation time (older first), a missing timestamp counting as newest, then by the
 * given name order: Istio sorts by name then namespace, Gateway API by `{namespace}/{name}`.
 */
export function compareCreation(a: Origin, b: Origin, order: 'name-namespace' | 'namespace-name' = 'name-namespace'): number {
  const ta = createdMs(a.created);
  const tb = createdMs(b.created);
  if (ta !== tb) return ta < tb ? -1 : 1;
  const [a1, a2, b1, b2] = order === 'name-namespace' ? [a.name, a.namespace, b.name, b.namespace] : [a.namespace, a.name, b.namespace, b.name];
  return a1 < b1 ? -1 : a1 > b1 ? 1 : a2 < b2 ? -1 : a2 > b2 ? 1 : 0;
}

function createdMs(created: string | undefined): number {
  if (!created) return Number.POSITIVE_INFINITY;
  const t = Date.parse(created);
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/**
 * The namespace of the Service behind a hostname: from the model's services, else from the
 * `name.namespace.svc.<domain>` form, else undefined (external hosts).
 */
export function serviceNamespaceOf(model: Pick<MeshModel, 'services'>, host: string): string | undefined {
  const svc = model.services.find((s) => s.hostname === host);
  if (svc) return svc.namespace;
  const m = /^[^.]+\.([^.]+)\.svc(\.|$)/.exec(host);
  return m?.[1];
}

/** Visibility tier of a table for a client namespace: 0 private to it, 1 exported to it by name, 2 public. */
function tierOf(t: RouteTable, clientNs: string | undefined): number | undefined {
  if (clientNs === undefined) return isPublic(t.exportTo) ? 2 : undefined;
  if (!isVisibleTo(t.exportTo, t.namespace, clientNs)) return undefined;
  if (t.exportTo.includes('.') && t.namespace === clientNs) return 0;
  if (isPublic(t.exportTo)) return 2;
  return 1;
}

function describe(t: RouteTable): string {
  return `${t.origin.kind} ${t.origin.namespace}/${t.origin.name}`;
}

/**
 * The route tables that apply to each host for one view (client namespace and gateway), and the conflicts
 * resolved on the way. Pure: the model is not modified and the same input always gives the same output.
 */
export function effectiveRoutes(model: Pick<MeshModel, 'routes' | 'services'>, view: RouteView = {}): EffectiveRoutes {
  const gateway = view.gateway ?? 'mesh';
  const clientNs = view.namespace ?? (gateway !== 'mesh' && gateway.includes('/') ? gateway.slice(0, gateway.indexOf('/')) : undefined);
  const byHostAll = new Map<string, RouteTable[]>();
  for (const t of model.routes) {
    if (!tableGateways(t).includes(gateway)) continue;
    for (const h of new Set(t.hosts)) {
      const list = byHostAll.get(h);
      if (list) list.push(t);
      else byHostAll.set(h, [t]);
    }
  }
  const byHost = new Map<string, RouteTable[]>();
  const conflicts: RouteConflict[] = [];
  const hosts = [...byHostAll.keys()].sort();
  for (const host of hosts) {
    const candidates = byHostAll.get(host)!;
    // Visible candidates, per family, after the family's own resolution.
    const perFamily = new Map<ApiFamily, { winners: RouteTable[]; visible: RouteTable[] }>();
    for (const family of FAMILY_PRECEDENCE) {
      const mine = candidates.filter((t) => t.origin.family === family);
      if (!mine.length) continue;
      const resolved = resolveFamily(model, family, host, gateway, clientNs, mine, conflicts);
      if (resolved.visible.length) perFamily.set(family, resolved);
    }
    const families = [...perFamily.keys()];
    if (!families.length) continue;
    const top = families[0]!;
    const winners = perFamily.get(top)!.winners;
    byHost.set(host, winners);
    if (families.length > 1) {
      const losers = families.slice(1).flatMap((f) => perFamily.get(f)!.visible);
      const ports = winners.every((t) => t.ports.length > 0) ? [...new Set(winners.flatMap((t) => t.ports))].sort((a, b) => a - b) : [];
      const portNote = ports.length ? ` (the winning routes bind only port${ports.length > 1 ? 's' : ''} ${ports.join(', ')}, but precedence is per host, so the others are ignored on every port)` : '';
      conflicts.push({
        kind: 'family',
        host,
        gateway,
        ...(clientNs !== undefined ? { namespace: clientNs } : {}),
        winners,
        losers,
        reason: `${familyLabel(top)} wins over ${families.slice(1).map(familyLabel).join(' and ')} for ${host} (family precedence Weft > Gateway API > Istio > SMI: ${FAMILY_REASON[top]})${portNote}`,
      });
    }
  }
  return { byHost, conflicts };
}

function familyLabel(f: ApiFamily): string {
  switch (f) {
    case 'gateway-api':
      return 'Gateway API';
    case 'istio':
      return 'Istio';
    case 'smi':
      return 'SMI';
    case 'weft':
      return 'Weft';
    default:
      return 'Kubernetes';
  }
}

function resolveFamily(
  model: Pick<MeshModel, 'routes' | 'services'>,
  family: ApiFamily,
  host: string,
  gateway: string,
  clientNs: string | undefined,
  tables: RouteTable[],
  conflicts: RouteConflict[],
): { winners: RouteTable[]; visible: RouteTable[] } {
  const base = { host, gateway, ...(clientNs !== undefined ? { namespace: clientNs } : {}) };
  if (family === 'gateway-api') {
    const byAge = (a: RouteTable, b: RouteTable) => compareCreation(a.origin, b.origin, 'namespace-name');
    if (gateway !== 'mesh') {
      const visible = tables.filter((t) => clientNs === undefined || isVisibleTo(t.exportTo, t.namespace, clientNs)).sort(byAge);
      return { winners: visible, visible };
    }
    const svcNs = serviceNamespaceOf(model, host);
    const producers = tables.filter((t) => svcNs === undefined || t.namespace === svcNs).sort(byAge);
    const consumers = clientNs !== undefined && clientNs !== svcNs ? tables.filter((t) => t.namespace === clientNs).sort(byAge) : [];
    if (consumers.length) {
      if (producers.length) {
        conflicts.push({ kind: 'override', ...base, winners: consumers, losers: producers, reason: `consumer routes in namespace ${clientNs} replace the producer routes of ${host} for clients in ${clientNs} (GAMMA)` });
      }
      return { winners: consumers, visible: [...consumers, ...producers] };
    }
    return { winners: producers, visible: producers };
  }
  if (family === 'smi' || family === 'kubernetes') {
    const visible = tables.filter((t) => tierOf(t, clientNs) !== undefined).sort((a, b) => compareCreation(a.origin, b.origin, 'namespace-name'));
    if (visible.length > 1) {
      conflicts.push({ kind: 'duplicate', ...base, winners: [visible[0]!], losers: visible.slice(1), reason: `${visible.length} ${visible[0]!.origin.kind}s route ${host}; the oldest, ${describe(visible[0]!)}, wins (creation time, then namespace/name)` });
    }
    return { winners: visible.slice(0, 1), visible };
  }
  // istio and weft: VirtualService semantics.
  const tiered = tables
    .map((t) => ({ t, tier: tierOf(t, clientNs) }))
    .filter((x): x is { t: RouteTable; tier: number } => x.tier !== undefined)
    .sort((a, b) => a.tier - b.tier || compareCreation(a.t.origin, b.t.origin, 'name-namespace'));
  const visible = tiered.map((x) => x.t);
  if (gateway !== 'mesh') return { winners: visible, visible };
  if (tiered.length > 1) {
    const first = tiered[0]!;
    const sameTier = tiered.filter((x) => x.tier === first.tier).map((x) => x.t);
    const wider = tiered.filter((x) => x.tier !== first.tier).map((x) => x.t);
    if (sameTier.length > 1) {
      conflicts.push({
        kind: 'duplicate',
        ...base,
        winners: [first.t],
        losers: sameTier.slice(1),
        reason: `${sameTier.length} ${first.t.origin.kind}s bound to the mesh define ${host} and are not merged; the oldest, ${describe(first.t)}, wins (creation time, then name, then namespace)`,
      });
    }
    if (wider.length) {
      conflicts.push({
        kind: 'override',
        ...base,
        winners: [first.t],
        losers: wider,
        reason: `${describe(first.t)} is ${first.tier === 0 ? 'private to' : 'exported to'} namespace ${clientNs} and hides the more widely exported ${wider.map(describe).join(', ')} there`,
      });
    }
  }
  return { winners: visible.slice(0, 1), visible };
}

/** Every namespace a view can be computed for: those of routes, services, workloads and declared namespaces. */
export function viewNamespaces(model: MeshModel): string[] {
  const s = new Set<string>();
  for (const t of model.routes) s.add(t.namespace);
  for (const x of model.services) s.add(x.namespace);
  for (const x of model.workloads) s.add(x.namespace);
  for (const x of model.localWorkloads) s.add(x.namespace);
  for (const x of model.namespaces) s.add(x.name);
  s.delete('');
  return [...s].sort();
}

/**
 * Effective routes over every view the config can produce (each client namespace, plus the anonymous view, for
 * the mesh and for every gateway any table is bound to), with conflicts deduplicated: what the analyzer
 * reports. A conflict that shows in every view keeps `namespace` undefined.
 */
export function allRouteConflicts(model: MeshModel): RouteConflict[] {
  const gateways = new Set<string>(['mesh']);
  for (const t of model.routes) for (const g of tableGateways(t)) gateways.add(g);
  const seen = new Map<string, RouteConflict>();
  const key = (c: RouteConflict) =>
    [c.kind, c.host, c.gateway, c.winners.map(originKey).join(','), c.losers.map(originKey).join(',')].join('|');
  for (const gateway of [...gateways].sort()) {
    // A gateway proxy runs in the gateway's namespace: one view. Sidecars: every client namespace.
    const views: Array<string | undefined> = gateway === 'mesh' ? [undefined, ...viewNamespaces(model)] : [undefined];
    for (const namespace of views) {
      const { conflicts } = effectiveRoutes(model, namespace === undefined ? { gateway } : { gateway, namespace });
      for (const c of conflicts) {
        const k = key(c);
        const prev = seen.get(k);
        if (!prev) seen.set(k, c);
        else if (prev.namespace !== undefined && c.namespace === undefined) seen.set(k, c);
      }
    }
  }
  return [...seen.values()];
}

export function originKey(t: { origin: Origin }): string {
  return `${t.origin.kind}/${t.origin.namespace}/${t.origin.name}`;
}
