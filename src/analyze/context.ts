/**
 * What an analyzer works with: the input, lookups over the model (services by host, workloads of a service,
 * destination rules of a host, the resource behind a model object) and `report`, which fills in severity from
 * the code catalog and the source position of the most precise node it can find.
 */
import { DEFAULT_DOMAIN } from '../api/defaults.js';
import type { Diagnostic } from '../api/diagnostics.js';
import { formatPath } from '../api/diagnostics.js';
import type { Resource } from '../api/kinds/kind.js';
import { splitApiVersion } from '../api/kinds/kind.js';
import type { DestinationPolicy, Labels, MeshModel, Origin, Service } from '../api/model.js';
import type { RouteConflict } from '../api/precedence.js';
import { allRouteConflicts, isVisibleTo } from '../api/precedence.js';
import type { JsonPath } from '../api/source.js';
import { codeInfo } from './codes.js';
import { findLeaf, getAt, parsePath } from './locate.js';
import type { AnalysisInput, AnalysisMessage, Where } from './types.js';

/** A workload as the analyzers see it (WorkloadEntry, LocalWorkload or registered instance). */
export interface WorkloadRef {
  kind: string;
  name: string;
  namespace: string;
  labels: Labels;
}

/** Whether `labels` carry every key/value of `selector` (an empty selector selects everything). */
export function selects(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector) return true;
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** Istio host matching: `*` matches all, `*.x.y` matches any name ending in `.x.y`; else equality. */
export function hostMatches(pattern: string, host: string): boolean {
  if (pattern === host || pattern === '*') return true;
  if (pattern.startsWith('*.')) return host.endsWith(pattern.slice(1)) && host.length > pattern.length - 1;
  return false;
}

/** Whether two host names (either possibly a wildcard pattern) can name the same host. */
export function hostsOverlap(a: string, b: string): boolean {
  return hostMatches(a, b) || hostMatches(b, a);
}

export function formatLabels(l: Labels | undefined): string {
  if (!l || !Object.keys(l).length) return '{}';
  return Object.entries(l)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

export class AnalysisContext {
  readonly model: MeshModel;
  readonly resources: ReadonlyArray<Resource<unknown>>;
  /** DNS domain of Kubernetes hostnames. */
  readonly domain: string;
  readonly messages: AnalysisMessage[] = [];
  /**
   * Loading/translation diagnostics that an analyzer message replaces: same resource and line, one of these
   * codes (a translator noticed the same problem with a less precise code or severity).
   */
  readonly replaced: Array<{ codes: readonly string[]; where: Where }> = [];
  /** The analyzer currently running (set by the runner). */
  analyzer = '';
  private readonly byKey = new Map<string, Resource<unknown>>();
  private conflicts?: RouteConflict[];
  private workloadList?: WorkloadRef[];

  constructor(readonly input: AnalysisInput) {
    this.model = input.model;
    this.resources = input.resources;
    this.domain = input.domain ?? DEFAULT_DOMAIN;
    for (const r of input.resources) this.byKey.set(`${r.group}/${r.kind}/${r.namespace}/${r.name}`, r);
  }

  /**
   * Adds a message; severity comes from the code catalog. `replaces` lists codes of earlier diagnostics (from
   * loading or translation) at the same resource and line that this message supersedes.
   */
  report(code: string, where: Where, message: string, hint: string, replaces?: readonly string[]): void {
    if (replaces?.length) this.replaced.push({ codes: replaces, where });
    const info = codeInfo(code);
    const d: AnalysisMessage = { severity: info?.severity ?? 'Error', code, message, hint };
    if (where.resource) d.resource = where.resource;
    if (where.pos) d.pos = where.pos;
    if (where.path) d.path = where.path;
    if (this.analyzer) d.analyzer = this.analyzer;
    this.messages.push(d);
  }

  /** Every validated resource of a kind (any group when `group` is undefined). */
  ofKind(kind: string, group?: string): Array<Resource<unknown>> {
    return this.resources.filter((r) => r.kind === kind && (group === undefined || r.group === group));
  }

  /** The validated resource a model object came from. */
  resourceOf(origin: Origin | undefined): Resource<unknown> | undefined {
    if (!origin) return undefined;
    const { group } = splitApiVersion(origin.apiVersion);
    return this.byKey.get(`${group}/${origin.kind}/${origin.namespace}/${origin.name}`);
  }

  /** Where a resource (or a path inside it) is. */
  whereIn(res: Resource<unknown>, path: JsonPath = []): Where {
    const w: Where = { resource: res.ref, pos: res.locate(path) };
    if (path.length) w.path = formatPath(path);
    return w;
  }

  /**
   * Where a model object is: its origin's resource and path, refined by `sub` (a path below the origin path, or
   * a search function over the raw document that returns the precise path). Falls back to the origin position.
   */
  whereOf(origin: Origin, sub?: JsonPath | ((res: Resource<unknown>, base: JsonPath) => JsonPath | undefined)): Where {
    const res = this.resourceOf(origin);
    const base = parsePath(origin.path);
    const ref = { kind: origin.kind, namespace: origin.namespace, name: origin.name };
    if (!res) {
      const w: Where = { resource: ref };
      if (origin.pos) w.pos = origin.pos;
      if (origin.path) w.path = origin.path;
      return w;
    }
    let path: JsonPath = base;
    if (typeof sub === 'function') path = sub(res, base) ?? base;
    else if (sub && getAt(res.body, [...base, ...sub]) !== undefined) path = [...base, ...sub];
    return this.whereIn(res, path);
  }

  /** Where an absolute path inside the resource of `origin` is (the origin itself when the path is absent). */
  whereAt(origin: Origin, path: JsonPath): Where {
    const res = this.resourceOf(origin);
    if (!res) {
      const w: Where = { resource: { kind: origin.kind, namespace: origin.namespace, name: origin.name } };
      if (origin.pos) w.pos = origin.pos;
      return w;
    }
    return this.whereIn(res, getAt(res.body, path) !== undefined ? path : parsePath(origin.path));
  }

  /**
   * A search for a leaf (see `findLeaf`) under the object's path plus `extra`. When nothing matches there (or the
   * path is not in the document: a translator may point at a node it synthesized), the search widens to each
   * enclosing node in turn, down to `spec`, so the nearest written occurrence is found.
   */
  findUnder(pred: (value: unknown, key: string | number) => boolean, extra: JsonPath = []): (res: Resource<unknown>, base: JsonPath) => JsonPath | undefined {
    return (res, base) => {
      const start = base.length || extra.length ? [...base, ...extra] : ['spec'];
      for (let n = start.length; n >= 1; n--) {
        const at = start.slice(0, n);
        if (getAt(res.body, at) === undefined) continue;
        const found = findLeaf(res.body, at, (v, k) => pred(v, k));
        if (found) return found;
        if (n <= 1) break;
      }
      return extra.length && getAt(res.body, start) !== undefined ? start : undefined;
    };
  }

  // -------------------------------------------------------------------------------------------------------------
  // Services

  /** Services whose hostname is `host`, or whose wildcard hostname covers it (or that a wildcard `host` covers). */
  servicesFor(host: string): Service[] {
    return this.model.services.filter((s) => hostsOverlap(s.hostname, host));
  }

  /** Whether a service is visible from a namespace (its exportTo; empty = everywhere). */
  serviceVisible(s: Service, fromNs: string): boolean {
    return isVisibleTo(s.exportTo, s.namespace, fromNs);
  }

  /** Every workload known from config: WorkloadEntries, registered instances and LocalWorkloads. */
  workloads(): WorkloadRef[] {
    if (!this.workloadList) {
      this.workloadList = [
        ...this.model.workloads.map((w) => ({ kind: w.kind, name: w.name, namespace: w.namespace, labels: w.labels })),
        ...this.model.localWorkloads.map((w) => ({ kind: 'LocalWorkload', name: w.name, namespace: w.namespace, labels: w.labels })),
      ];
    }
    return this.workloadList;
  }

  /**
   * The label sets of a service's instances: workloads in its namespace its selector picks, plus its static
   * endpoints (ServiceEntry). Empty when config says nothing about its instances.
   */
  instanceLabels(s: Service): Labels[] {
    const out: Labels[] = s.endpoints.map((e) => e.labels);
    if (s.selector && Object.keys(s.selector).length) {
      for (const w of this.workloads()) if (w.namespace === s.namespace && selects(s.selector, w.labels)) out.push(w.labels);
    }
    return out;
  }

  /** DestinationRules that can apply to `host` (exact or wildcard) for clients in `fromNs`. */
  destinationPoliciesFor(host: string, fromNs: string): DestinationPolicy[] {
    return this.model.destinationPolicies.filter((p) => hostMatches(p.host, host) && isVisibleTo(p.exportTo, p.namespace, fromNs));
  }

  /** Route conflicts over every view (computed once). */
  routeConflicts(): RouteConflict[] {
    if (!this.conflicts) this.conflicts = allRouteConflicts(this.model);
    return this.conflicts;
  }
}

export function internalError(what: string, e: unknown, where: Where = {}): Diagnostic {
  const msg = e instanceof Error ? e.message : String(e);
  const d: Diagnostic = {
    severity: 'Error',
    code: 'WFT0001',
    message: `internal error in ${what}: ${msg}`,
    hint: 'this is a bug in Weft; please report it with the config that triggers it',
  };
  if (where.resource) d.resource = where.resource;
  if (where.pos) d.pos = where.pos;
  return d;
}
