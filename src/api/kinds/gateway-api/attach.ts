/**
 * Attaching HTTPRoutes and GRPCRoutes to their parents and merging them into route tables.
 *
 * - A parentRef to a Service (group "", kind Service) or ServiceImport is a GAMMA mesh route: the table is for
 *   the Service's FQDN with gateways `['mesh']`. A route in the Service's namespace is a producer route
 *   (exportTo `*`: every caller); a route in another namespace is a consumer route, which applies only to
 *   callers in its own namespace (exportTo `.`). Route hostnames are not used for mesh routes (GEP-1426).
 *   `port` (or `sectionName`, the Service port name) restricts the table to one port; a port's table also holds
 *   the routes attached to the whole Service, merged by precedence.
 * - A parentRef to a Gateway attaches to the listeners it selects (sectionName, port) that accept the route
 *   (protocol, allowedRoutes kinds and namespaces). Each accepting listener yields one table per effective
 *   hostname (the route's hostnames intersected with the listener's), restricted to the listener port, with
 *   gateways `['<namespace>/<gateway>']`.
 * - All routes attached to the same table are merged and ordered by Gateway API precedence. When HTTPRoutes and
 *   GRPCRoutes attach to the same table only one kind is kept: for a Service the GRPCRoutes (GEP-1426); for a
 *   Gateway listener the kind of the oldest route (then `namespace/name`).
 */
import type { Origin, RouteTable } from '../../model.js';
import type { JsonPath } from '../../source.js';
import type { Resource, TranslateContext } from '../kind.js';
import { backendHost, compareEntries, compareRoutes, translateRules } from './rules.js';
import type { Entry, RouteRes } from './rules.js';
import { GATEWAY_GROUP } from './schema.js';
import type { GatewaySpec, GrpcRouteSpec, HttpRouteSpec, LabelSelector, Listener, ParentReference } from './schema.js';

interface Table {
  spec: Omit<RouteTable, 'http' | 'tcp' | 'tls' | 'origin'>;
  mesh: boolean;
  /** For a mesh table restricted to a port: the key of the same Service's whole-Service table. */
  wholeServiceKey?: string;
  members: Map<RouteRes, JsonPath>;
}

const done = new WeakSet<object>();

function parseCreated(v: unknown): number | undefined {
  if (typeof v !== 'string') return undefined;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : t;
}

function report(ctx: TranslateContext, rr: RouteRes, at: JsonPath, severity: 'Error' | 'Warning' | 'Info', code: string, message: string, hint: string): void {
  ctx.report(rr.res as Resource<unknown>, { severity, code, message, hint, at });
}

function selectorMatches(sel: LabelSelector | undefined, labels: Record<string, string>): boolean {
  if (!sel) return false; // from: Selector without a selector selects nothing
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.prototype.hasOwnProperty.call(labels, e.key);
    const vals = e.values ?? [];
    if (e.operator === 'In' && !(has && vals.includes(labels[e.key]!))) return false;
    if (e.operator === 'NotIn' && has && vals.includes(labels[e.key]!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

function namespaceLabels(ctx: TranslateContext, ns: string): Record<string, string> {
  const fromModel = ctx.model.namespaces.find((n) => n.name === ns)?.labels;
  const fromRes = ctx.lookup('', 'Namespace', '', ns)?.metadata.labels;
  return { ...(fromRes ?? {}), ...(fromModel ?? {}), 'kubernetes.io/metadata.name': ns };
}

function listenerAcceptsKind(l: Listener, kind: string): boolean {
  const proto = l.protocol.toUpperCase();
  if (proto !== 'HTTP' && proto !== 'HTTPS') return false;
  const kinds = l.allowedRoutes.kinds;
  if (!kinds?.length) return true;
  return kinds.some((k) => k.group === GATEWAY_GROUP && k.kind === kind);
}

function listenerAcceptsNamespace(ctx: TranslateContext, l: Listener, gatewayNs: string, routeNs: string): boolean {
  const ns = l.allowedRoutes.namespaces;
  if (ns.from === 'All') return true;
  if (ns.from === 'Same') return routeNs === gatewayNs;
  return selectorMatches(ns.selector, namespaceLabels(ctx, routeNs));
}

/** Whether `host` is covered by the wildcard `pattern` (`*.example.com` covers `a.example.com`, `*.b.example.com`). */
function coveredBy(host: string, pattern: string): boolean {
  if (!pattern.startsWith('*.')) return false;
  const suffix = pattern.slice(1);
  return host.endsWith(suffix) && host.length > suffix.length && host !== pattern;
}

/** The hostnames a route serves on a listener: the more specific side of each matching pair. */
export function intersectHostnames(listenerHost: string | undefined, routeHosts: readonly string[]): string[] {
  if (!listenerHost) return routeHosts.length ? [...new Set(routeHosts)] : ['*'];
  if (!routeHosts.length) return [listenerHost];
  const out: string[] = [];
  for (const r of routeHosts) {
    if (r === listenerHost || coveredBy(r, listenerHost)) out.push(r);
    else if (coveredBy(listenerHost, r)) out.push(listenerHost);
  }
  return [...new Set(out)];
}

class Attacher {
  readonly tables = new Map<string, Table>();

  constructor(private readonly ctx: TranslateContext) {}

  private add(key: string, spec: Table['spec'], rr: RouteRes, at: JsonPath, mesh: boolean, wholeServiceKey?: string): void {
    let t = this.tables.get(key);
    if (!t) {
      t = { spec, mesh, members: new Map() };
      if (wholeServiceKey) t.wholeServiceKey = wholeServiceKey;
      this.tables.set(key, t);
    }
    if (!t.members.has(rr)) t.members.set(rr, at);
  }

  attach(rr: RouteRes, ref: ParentReference, at: JsonPath): void {
    const isService = (ref.group === '' || ref.group === 'core') && ref.kind === 'Service';
    const isServiceImport = ref.group === 'multicluster.x-k8s.io' && ref.kind === 'ServiceImport';
    if (isService || isServiceImport) return this.attachMesh(rr, ref, at);
    if (ref.group === GATEWAY_GROUP && ref.kind === 'Gateway') return this.attachGateway(rr, ref, at);
    if (ref.kind === 'Service' && ref.group === GATEWAY_GROUP) {
      report(this.ctx, rr, at, 'Warning', 'WFT0101', `parentRef ${ref.name} names kind Service in group ${GATEWAY_GROUP} (the default group), which does not exist: not attached`, 'a Service parent (GAMMA mesh route) needs group: "" explicitly');
      return;
    }
    report(this.ctx, rr, at, 'Warning', 'WFT1010', `parentRef kind ${ref.group || 'core'}/${ref.kind} is not supported: not attached`, 'attach routes to a Gateway (gateway.networking.k8s.io) or to a Service (group "")');
  }

  private attachMesh(rr: RouteRes, ref: ParentReference, at: JsonPath): void {
    const routeNs = rr.res.namespace;
    const svcNs = ref.namespace ?? routeNs;
    const host = backendHost({ group: ref.group, kind: ref.kind, name: ref.name, namespace: svcNs }, routeNs, this.ctx)!;
    const svc = this.ctx.model.services.find((s) => s.hostname === host);
    let port = ref.port;
    if (ref.sectionName !== undefined) {
      const named = svc?.ports.find((p) => p.name === ref.sectionName);
      if (!svc) {
        report(this.ctx, rr, [...at, 'sectionName'], 'Warning', 'WFT0101', `sectionName "${ref.sectionName}" names a port of Service ${svcNs}/${ref.name}, which is not among the loaded resources: not attached`, 'load the Service definition, or use parentRef.port instead of sectionName');
        return;
      }
      if (!named) {
        report(this.ctx, rr, [...at, 'sectionName'], 'Warning', 'WFT0101', `Service ${svcNs}/${ref.name} has no port named "${ref.sectionName}": not attached`, `ports of the Service: ${svc.ports.map((p) => p.name ?? String(p.port)).join(', ') || 'none'}`);
        return;
      }
      if (port !== undefined && named.port !== port) {
        report(this.ctx, rr, [...at, 'port'], 'Warning', 'WFT0101', `Service port "${ref.sectionName}" is ${named.port}, not ${port}: not attached`, 'when both sectionName and port are set they must select the same port');
        return;
      }
      port = named.port;
    } else if (port !== undefined && svc && !svc.ports.some((p) => p.port === port)) {
      report(this.ctx, rr, [...at, 'port'], 'Warning', 'WFT0101', `Service ${svcNs}/${ref.name} has no port ${port}: not attached`, `ports of the Service: ${svc.ports.map((p) => p.port).join(', ') || 'none'}`);
      return;
    }
    if (!svc) {
      report(this.ctx, rr, at, 'Info', 'WFT0101', `parent Service ${svcNs}/${ref.name} is not among the loaded resources; routes are attached to ${host}`, 'define the Service, or make sure the service registry provides it');
    }
    const consumer = svcNs !== routeNs;
    const scope = consumer ? routeNs : '';
    const key = (p: number | undefined) => `mesh|${host}|${scope}|${p ?? '*'}`;
    const spec: Table['spec'] = { hosts: [host], namespace: routeNs, gateways: ['mesh'], exportTo: consumer ? ['.'] : ['*'], ports: port !== undefined ? [port] : [] };
    this.add(key(port), spec, rr, at, true, port !== undefined ? key(undefined) : undefined);
  }

  private attachGateway(rr: RouteRes, ref: ParentReference, at: JsonPath): void {
    const gwNs = ref.namespace ?? rr.res.namespace;
    const gwName = `${gwNs}/${ref.name}`;
    const routeHosts = (rr.res.spec as HttpRouteSpec | GrpcRouteSpec).hostnames ?? [];
    const gw = this.ctx.lookup<GatewaySpec>(GATEWAY_GROUP, 'Gateway', gwNs, ref.name);
    if (!gw) {
      report(this.ctx, rr, at, 'Info', 'WFT0101', `parent Gateway ${gwName} is not among the loaded resources; the route is attached with its own hostnames`, 'define the Gateway so that its listeners (ports, hostnames, allowedRoutes) are taken into account');
      const ports = ref.port !== undefined ? [ref.port] : [];
      for (const h of routeHosts.length ? [...new Set(routeHosts)] : ['*']) {
        this.add(`gw|${gwName}|${ports.join(',') || '*'}|${h}`, { hosts: [h], namespace: gwNs, gateways: [gwName], exportTo: ['*'], ports }, rr, at, false);
      }
      return;
    }
    const selected = gw.spec.listeners.filter((l) => (ref.sectionName === undefined || l.name === ref.sectionName) && (ref.port === undefined || l.port === ref.port));
    if (!selected.length) {
      const what = [ref.sectionName !== undefined ? `named "${ref.sectionName}"` : '', ref.port !== undefined ? `on port ${ref.port}` : ''].filter(Boolean).join(' ');
      report(this.ctx, rr, at, 'Warning', 'WFT0101', `Gateway ${gwName} has no listener ${what}: not attached (NoMatchingParent)`, `listeners: ${gw.spec.listeners.map((l) => `${l.name} (${l.protocol} ${l.port})`).join(', ')}`);
      return;
    }
    const accepting = selected.filter((l) => listenerAcceptsKind(l, rr.kind) && listenerAcceptsNamespace(this.ctx, l, gwNs, rr.res.namespace));
    if (!accepting.length) {
      report(this.ctx, rr, at, 'Warning', 'WFT0101', `no listener of Gateway ${gwName} allows this ${rr.kind} from namespace ${rr.res.namespace}: not attached (NotAllowedByListeners)`, 'check the listeners\' protocol (HTTP/HTTPS) and allowedRoutes (namespaces.from defaults to Same; kinds)');
      return;
    }
    let attached = 0;
    for (const l of accepting) {
      for (const h of intersectHostnames(l.hostname, routeHosts)) {
        attached++;
        this.add(`gw|${gwName}|${l.port}|${h}`, { hosts: [h], namespace: gwNs, gateways: [gwName], exportTo: ['*'], ports: [l.port] }, rr, at, false);
      }
    }
    if (!attached) {
      report(this.ctx, rr, at, 'Warning', 'WFT0101', `none of the route's hostnames matches the hostnames of the listeners of Gateway ${gwName}: not attached (NoMatchingListenerHostname)`, `listener hostnames: ${accepting.map((l) => l.hostname ?? '(any)').join(', ')}`);
    }
  }

  /** Keeps one route kind per table (GEP-1426 for Services, oldest route for Gateway listeners). */
  private resolveKinds(t: Table, members: Map<RouteRes, JsonPath>): RouteRes[] {
    const sorted = [...members.keys()].sort(compareRoutes);
    if (new Set(sorted.map((m) => m.kind)).size < 2) return sorted;
    const winner = t.mesh ? 'GRPCRoute' : sorted[0]!.kind;
    const where = t.mesh
      ? `Service ${t.spec.hosts[0]}${t.spec.ports.length ? ` port ${t.spec.ports[0]}` : ''}`
      : `Gateway ${t.spec.gateways[0]} port ${t.spec.ports.join(',') || '(any)'} host ${t.spec.hosts[0]}`;
    const why = t.mesh ? 'GRPCRoute takes precedence over HTTPRoute for the same Service and port (GEP-1426)' : 'the oldest Route (then namespace/name) decides which route kind a listener hostname serves';
    for (const m of sorted) {
      if (m.kind !== winner) report(this.ctx, m, members.get(m)!, 'Warning', 'WFT0109', `${m.kind} ${m.id} is not applied to ${where}: a ${winner} is attached there too`, why);
    }
    return sorted.filter((m) => m.kind === winner);
  }

  tablesOut(entriesOf: (rr: RouteRes) => Entry[]): RouteTable[] {
    const out: RouteTable[] = [];
    for (const t of this.tables.values()) {
      const whole = t.wholeServiceKey ? this.tables.get(t.wholeServiceKey) : undefined;
      const members = new Map(t.members);
      for (const [rr, at] of whole?.members ?? []) if (!members.has(rr)) members.set(rr, at);
      const kept = this.resolveKinds(t, members);
      if (!kept.length) continue;
      const entries = kept.flatMap(entriesOf).sort(compareEntries);
      const first = kept[0]!;
      const origin: Origin = this.ctx.origin(first.res as Resource<unknown>, members.get(first)!);
      out.push({ ...t.spec, http: entries.map((e) => structuredClone(e.http)), tcp: [], tls: [], origin });
    }
    return out;
  }
}

/** Translates every HTTPRoute and GRPCRoute at once (both kinds share parents); runs once per model. */
export function finalizeRoutes(ctx: TranslateContext): void {
  if (done.has(ctx.model)) return;
  done.add(ctx.model);
  const routes: RouteRes[] = [
    ...ctx.all<HttpRouteSpec>(GATEWAY_GROUP, 'HTTPRoute').map((res) => ({ res, kind: 'HTTPRoute' as const })),
    ...ctx.all<GrpcRouteSpec>(GATEWAY_GROUP, 'GRPCRoute').map((res) => ({ res, kind: 'GRPCRoute' as const })),
  ].map(({ res, kind }) => {
    const rr: RouteRes = { res, kind, id: `${res.namespace}/${res.name}` };
    const created = parseCreated(res.metadata.creationTimestamp);
    if (created !== undefined) rr.created = created;
    return rr;
  });
  routes.sort(compareRoutes);
  const defaultGateways = ctx.all<GatewaySpec>(GATEWAY_GROUP, 'Gateway').filter((g) => g.spec.defaultScope === 'All');
  const attacher = new Attacher(ctx);
  const entries = new Map<RouteRes, Entry[]>();
  for (const rr of routes) {
    entries.set(rr, translateRules(rr, ctx));
    const spec = rr.res.spec as HttpRouteSpec | GrpcRouteSpec;
    const refs = spec.parentRefs ?? [];
    refs.forEach((ref, i) => attacher.attach(rr, ref, ['spec', 'parentRefs', i]));
    if (spec.useDefaultGateways === 'All') {
      for (const g of defaultGateways) {
        attacher.attach(rr, { group: GATEWAY_GROUP, kind: 'Gateway', namespace: g.namespace, name: g.name }, ['spec', 'useDefaultGateways']);
      }
    }
    if (!refs.length && spec.useDefaultGateways !== 'All') {
      report(ctx, rr, ['spec'], 'Warning', 'WFT0101', `${rr.kind} ${rr.id} has no parentRefs: it is not attached to anything`, 'add parentRefs: a Service (group: "", kind: Service) for mesh traffic, or a Gateway');
    }
    const hostnames = spec.hostnames ?? [];
    if (hostnames.length && refs.length && refs.every((r) => (r.group === '' || r.group === 'core' || r.group === 'multicluster.x-k8s.io') && (r.kind === 'Service' || r.kind === 'ServiceImport'))) {
      report(ctx, rr, ['spec', 'hostnames'], 'Info', 'WFT1010', 'hostnames are not used for routes attached to Services (GAMMA): the Service decides which traffic the route applies to', 'remove hostnames, or match the Host header with a header match if that is what you need');
    }
  }
  ctx.model.routes.push(...attacher.tablesOut((rr) => entries.get(rr) ?? []));
}
