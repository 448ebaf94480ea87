/**
 * The service registry: mesh services (Kubernetes Services, ServiceEntries) and the endpoints behind each
 * service port, from WorkloadEntries, ServiceEntry endpoints and workloads registered live (VMs, the local
 * runtime's LocalWorkload instances) with heartbeats and health.
 *
 * Selection follows Istio: a Service's selector (or a ServiceEntry's workloadSelector) selects workloads with
 * matching labels in the service's namespace; the endpoint port for a service port is the workload's port of the
 * same name, else the service port's targetPort (a number, or a workload port name), else the service port.
 */
import type { Labels, MeshModel, Service, ServicePort, Workload } from '../../api/model.js';

export type TlsMode = 'istio' | 'disabled';

/** One endpoint of one service port. */
export interface Endpoint {
  address: string;
  port: number;
  labels: Labels;
  /** `region/zone/subzone`. */
  locality?: string;
  weight: number;
  network?: string;
  serviceAccount: string;
  namespace: string;
  /** The workload's name (WorkloadEntry name, registered id, or `<ServiceEntry>-<n>` for inline endpoints). */
  workload: string;
  healthy: boolean;
  /** `istio` when the endpoint has a sidecar that terminates mesh mTLS (label `security.istio.io/tlsMode`). */
  tlsMode: TlsMode;
}

/** A workload registered over the live API. */
export interface RegisteredWorkload {
  name: string;
  namespace: string;
  address: string;
  labels: Labels;
  /** Port name → port number. */
  ports: Record<string, number>;
  locality?: string;
  weight?: number;
  network?: string;
  serviceAccount: string;
  /** Whether the workload runs a sidecar (endpoints then carry tlsMode `istio`). */
  sidecar: boolean;
  /** `Registered` (VMs, API clients) or `LocalWorkload` (an instance the local runtime started). */
  source: 'Registered' | 'LocalWorkload';
  /** Heartbeat deadline: marked unhealthy when no heartbeat came for this long, removed after 3×. 0 = never. */
  ttlMs: number;
  healthy: boolean;
  lastHeartbeat: number;
}

export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';

export interface RegistryChange {
  /**
   * Service definitions were added, removed or changed (needs a full push). A ServiceEntry whose inline
   * endpoints changed, and nothing else, is an endpoint change (its hosts are in `endpointHosts`), unless the
   * change gives it its first endpoints or takes its last (that changes how its clusters find endpoints).
   */
  services: boolean;
  /** Hosts whose endpoints changed (an EDS push suffices when `services` and `serviceAccounts` are false). */
  endpointHosts: Set<string>;
  /**
   * The service accounts of some service port's endpoints changed (a new one appeared, or the last endpoint of
   * one left). Clusters carry them as the SANs in-mesh TLS verifies, so this needs a full push, as istiod does
   * when an endpoint update changes a service's service accounts.
   */
  serviceAccounts?: boolean;
}

type ChangeListener = (c: RegistryChange) => void;

/** Whether a selector picks these labels. No selector, or an empty one, selects nothing (as for Services). */
function selects(selector: Labels | undefined, labels: Labels): boolean {
  if (!selector) return false;
  let any = false;
  for (const [k, v] of Object.entries(selector)) {
    if (labels[k] !== v) return false;
    any = true;
  }
  return any;
}

export class ServiceRegistry {
  private svcs: Service[] = [];
  private byHost = new Map<string, Service[]>();
  private entries: Workload[] = [];
  /** WorkloadEntries by `namespace\0label=value`, so selection does not scan every workload. */
  private entryIndex = new Map<string, Workload[]>();
  private readonly registered = new Map<string, RegisteredWorkload>();
  private readonly endpointCache = new Map<string, readonly Endpoint[]>();
  /** Counts the changes that may replace endpoint lists (see endpointsVersion). */
  private endpointsChanges = 0;
  private readonly listeners = new Set<ChangeListener>();
  /** The services as last set (without their origins), and their definitions without inline endpoints. */
  private fingerprint = '';
  private definitions = '';
  private modelServices?: readonly Service[];

  /** Called on every change with what changed. */
  onChange(l: ChangeListener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** `host|port` → the service accounts of its endpoints (`namespace/name`, sorted, comma-separated); '' = none. */
  private readonly accounts = new Map<string, string>();
  private accountsChanges = 0;

  /** Records the service accounts of the endpoints of `key` (`host|port`); whether they differ from the last record. */
  private noteAccounts(key: string, eps: readonly Endpoint[] | undefined): boolean {
    let ids: Set<string> | undefined;
    if (eps) for (const e of eps) if (e.serviceAccount) (ids ??= new Set()).add(`${e.namespace}/${e.serviceAccount}`);
    const now = ids ? [...ids].sort().join(',') : '';
    if ((this.accounts.get(key) ?? '') === now) return false;
    if (now) this.accounts.set(key, now);
    else this.accounts.delete(key);
    return true;
  }

  /**
   * Changes whenever the service accounts of some service port's endpoints change (see RegistryChange
   * .serviceAccounts); translation does not reuse clusters across a change.
   */
  serviceAccountsVersion(): number {
    return this.accountsChanges;
  }

  private emit(c: RegistryChange): void {
    if (c.serviceAccounts) this.accountsChanges++;
    if (!c.services && c.endpointHosts.size === 0) return;
    for (const l of this.listeners) l(c);
  }

  /**
   * Replaces the config-derived part (services, WorkloadEntries) from a new model; returns what changed.
   *
   * What did not change keeps its identity: when the services are equal to the current ones (apart from where
   * they were defined) the current list and objects stay, and a service port whose endpoints are equal keeps its
   * endpoint list, so whatever was computed from them (translation caches) stays valid.
   */
  setModel(model: MeshModel): RegistryChange {
    // The same list as last time (a model rebuilt for WorkloadEntry changes keeps it): no need to compare it.
    const same = model.services === this.modelServices;
    const full = same ? this.fingerprint : JSON.stringify(model.services.map(({ origin: _o, ...s }) => s));
    const defs = same ? this.definitions : JSON.stringify(model.services.map(({ origin: _o, endpoints, ...s }) => ({ ...s, hasEndpoints: endpoints.length > 0 })));
    this.modelServices = model.services;
    const servicesChanged = defs !== this.definitions;
    const entries = model.workloads.filter((w) => w.kind === 'WorkloadEntry' && w.address);
    // Only the workload entries changed (the same services): only the hosts that select a changed entry (by its
    // old or new labels) can have other endpoints.
    const affected = same ? this.hostsSelectingChanged(this.entries, entries) : undefined;
    const before = new Map<string, readonly Endpoint[]>();
    for (const s of this.svcs) {
      if (affected && !affected.has(s.hostname)) continue;
      for (const p of s.ports) before.set(`${s.hostname}|${p.port}`, this.endpoints(s.hostname, p.port));
    }
    this.definitions = defs;
    if (full !== this.fingerprint) {
      this.fingerprint = full;
      this.svcs = model.services;
      this.byHost = new Map();
      for (const s of this.svcs) {
        const list = this.byHost.get(s.hostname);
        if (list) list.push(s); else this.byHost.set(s.hostname, [s]);
      }
    }
    this.entries = entries;
    this.entryIndex = new Map();
    for (const w of this.entries) {
      for (const [k, v] of Object.entries(w.labels)) {
        const key = `${w.namespace}\0${k}=${v}`;
        const list = this.entryIndex.get(key);
        if (list) list.push(w); else this.entryIndex.set(key, [w]);
      }
    }
    this.endpointsChanges++;
    if (affected) {
      for (const k of [...this.endpointCache.keys()]) if (affected.has(k.slice(0, k.indexOf('|')))) this.endpointCache.delete(k);
    } else {
      this.endpointCache.clear();
    }
    const endpointHosts = new Set<string>();
    let accounts = false;
    const seen = new Set<string>();
    for (const s of this.svcs) {
      if (affected && !affected.has(s.hostname)) continue;
      for (const p of s.ports) {
        const k = `${s.hostname}|${p.port}`;
        if (seen.has(k)) continue;
        seen.add(k);
        const now = this.endpoints(s.hostname, p.port);
        const old = before.get(k);
        if (old && sameEndpoints(old, now)) this.endpointCache.set(k, old);
        else {
          endpointHosts.add(s.hostname);
          if (this.noteAccounts(k, now)) accounts = true;
        }
        before.delete(k);
      }
    }
    for (const k of before.keys()) {
      endpointHosts.add(k.slice(0, k.indexOf('|')));
      if (this.noteAccounts(k, undefined)) accounts = true;
    }
    const change: RegistryChange = { services: servicesChanged, endpointHosts, serviceAccounts: accounts };
    this.emit(change);
    return change;
  }

  /**
   * `setModel` for a model made from the current one by replacing workloads in place (`replaced`: old → new, each
   * new one where the old one was in the list; the services are the same list): the entries are replaced where
   * they are, and only the endpoints of the hosts that select a replaced entry are recomputed, so the cost does
   * not grow with the number of workloads. Falls back to `setModel` when a replacement changes the services
   * selecting it (a workload enters or leaves the entries, or changes its namespace or labels).
   */
  replaceWorkloads(model: MeshModel, replaced: ReadonlyArray<readonly [Workload, Workload]>): RegistryChange {
    if (model.services !== this.modelServices) return this.setModel(model);
    const places: number[] = [];
    for (const [a, b] of replaced) {
      const entry = isEntry(a);
      if (entry !== isEntry(b)) return this.setModel(model);
      if (!entry) continue;
      if (a.namespace !== b.namespace || !sameLabels(a.labels, b.labels)) return this.setModel(model);
      const i = this.entries.indexOf(a);
      if (i < 0) return this.setModel(model);
      places.push(i);
    }
    // The endpoints of the hosts selecting a replaced entry, before and after.
    const hosts = new Set<string>();
    for (const [a] of replaced) if (isEntry(a)) for (const h of this.hostsSelecting(a.namespace, a.labels)) hosts.add(h);
    const before = new Map<string, readonly Endpoint[]>();
    for (const h of hosts) for (const s of this.byHost.get(h) ?? []) for (const p of s.ports) before.set(`${h}|${p.port}`, this.endpoints(h, p.port));
    let n = 0;
    for (const [a, b] of replaced) {
      if (!isEntry(a)) continue;
      (this.entries as Workload[])[places[n++]!] = b;
      for (const [k, v] of Object.entries(a.labels)) {
        const list = this.entryIndex.get(`${a.namespace}\0${k}=${v}`);
        const j = list ? list.indexOf(a) : -1;
        if (j >= 0) list![j] = b;
      }
    }
    this.endpointsChanges++;
    for (const k of before.keys()) this.endpointCache.delete(k);
    const endpointHosts = new Set<string>();
    let accounts = false;
    for (const [k, old] of before) {
      const h = k.slice(0, k.lastIndexOf('|'));
      const now = this.endpoints(h, Number(k.slice(k.lastIndexOf('|') + 1)));
      if (sameEndpoints(old, now)) this.endpointCache.set(k, old);
      else {
        endpointHosts.add(h);
        if (this.noteAccounts(k, now)) accounts = true;
      }
    }
    const change: RegistryChange = { services: false, endpointHosts, serviceAccounts: accounts };
    this.emit(change);
    return change;
  }

  /**
   * Hosts whose selector picks, in its namespace, a workload entry of one list and not of the other (entries are
   * compared by identity: a model rebuilt for WorkloadEntry changes keeps the unchanged entries' objects).
   */
  private hostsSelectingChanged(before: readonly Workload[], after: readonly Workload[]): Set<string> {
    const a = new Set(before);
    const b = new Set(after);
    const hosts = new Set<string>();
    for (const w of before) if (!b.has(w)) for (const h of this.hostsSelecting(w.namespace, w.labels)) hosts.add(h);
    for (const w of after) if (!a.has(w)) for (const h of this.hostsSelecting(w.namespace, w.labels)) hosts.add(h);
    return hosts;
  }

  services(): readonly Service[] {
    return this.svcs;
  }

  /** The services with this hostname (several when ServiceEntries in different namespaces share a host). */
  servicesByHost(host: string): readonly Service[] {
    return this.byHost.get(host) ?? [];
  }

  /**
   * A number that stays the same as long as every endpoint list `endpoints` hands out stays the same object (it
   * changes with every change that may replace one), so what was built from the lists needs no other check.
   */
  endpointsVersion(): number {
    return this.endpointsChanges;
  }

  /** Healthy and unhealthy endpoints of a service port (callers decide what to do with health). */
  endpoints(host: string, port: number): readonly Endpoint[] {
    const key = `${host}|${port}`;
    const cached = this.endpointCache.get(key);
    if (cached) return cached;
    const out: Endpoint[] = [];
    for (const svc of this.byHost.get(host) ?? []) {
      const sp = svc.ports.find((p) => p.port === port);
      if (!sp) continue;
      svc.endpoints.forEach((e, i) => {
        const target = (sp.name !== undefined ? e.ports[sp.name] : undefined) ?? numericTarget(sp) ?? sp.port;
        out.push({
          address: e.address,
          port: target,
          labels: e.labels,
          locality: e.locality,
          weight: e.weight ?? 1,
          network: e.network,
          serviceAccount: e.serviceAccount ?? 'default',
          namespace: svc.namespace,
          workload: `${svc.origin.name}-${i}`,
          healthy: true,
          tlsMode: e.labels[TLS_MODE_LABEL] === 'istio' ? 'istio' : 'disabled',
        });
      });
      for (const w of this.candidates(svc)) {
        if (w.namespace !== svc.namespace || !selects(svc.selector, w.labels)) continue;
        const target = workloadPort(sp, w.ports);
        if (target === undefined) continue;
        out.push({
          address: w.address!,
          port: target,
          labels: w.labels,
          locality: w.locality,
          weight: w.weight ?? 1,
          network: w.network,
          serviceAccount: w.serviceAccount,
          namespace: w.namespace,
          workload: w.name,
          healthy: true,
          tlsMode: w.labels[TLS_MODE_LABEL] === 'istio' ? 'istio' : 'disabled',
        });
      }
      for (const w of this.registered.values()) {
        if (w.namespace !== svc.namespace || !selects(svc.selector, w.labels)) continue;
        const target = workloadPort(sp, w.ports);
        if (target === undefined) continue;
        out.push({
          address: w.address,
          port: target,
          labels: w.labels,
          locality: w.locality,
          weight: w.weight ?? 1,
          network: w.network,
          serviceAccount: w.serviceAccount,
          namespace: w.namespace,
          workload: w.name,
          healthy: w.healthy,
          tlsMode: w.labels[TLS_MODE_LABEL] === 'disabled' ? 'disabled' : w.sidecar ? 'istio' : 'disabled',
        });
      }
    }
    this.endpointCache.set(key, out);
    return out;
  }

  /** WorkloadEntries that may match the service's selector: the shortest index list among its labels. */
  private candidates(svc: Service): readonly Workload[] {
    if (!svc.selector) return [];
    let best: Workload[] | undefined;
    for (const [k, v] of Object.entries(svc.selector)) {
      const list = this.entryIndex.get(`${svc.namespace}\0${k}=${v}`);
      if (!list) return [];
      if (!best || list.length < best.length) best = list;
    }
    // An empty selector ({}) selects nothing, as in Kubernetes for Services.
    return best ?? [];
  }

  /** Hosts whose selector picks a workload with these labels in this namespace. */
  private hostsSelecting(namespace: string, labels: Labels): Set<string> {
    const out = new Set<string>();
    for (const s of this.svcs) if (s.namespace === namespace && selects(s.selector, labels)) out.add(s.hostname);
    return out;
  }

  private touched(hosts: Set<string>): void {
    this.endpointsChanges++;
    for (const key of [...this.endpointCache.keys()]) if (hosts.has(key.slice(0, key.indexOf('|')))) this.endpointCache.delete(key);
    let accounts = false;
    for (const h of hosts) for (const s of this.byHost.get(h) ?? []) for (const p of s.ports) if (this.noteAccounts(`${h}|${p.port}`, this.endpoints(h, p.port))) accounts = true;
    this.emit({ services: false, endpointHosts: hosts, serviceAccounts: accounts });
  }

  /** Registers (or replaces) a workload. */
  register(w: Omit<RegisteredWorkload, 'lastHeartbeat' | 'healthy'> & { healthy?: boolean }): RegisteredWorkload {
    const key = `${w.namespace}/${w.name}`;
    const old = this.registered.get(key);
    const rec: RegisteredWorkload = { ...w, healthy: w.healthy ?? true, lastHeartbeat: Date.now() };
    this.registered.set(key, rec);
    const hosts = this.hostsSelecting(rec.namespace, rec.labels);
    if (old) for (const h of this.hostsSelecting(old.namespace, old.labels)) hosts.add(h);
    this.touched(hosts);
    return rec;
  }

  /** Records a heartbeat (and, when given, the health the workload reports). False if it is not registered. */
  heartbeat(namespace: string, name: string, healthy = true): boolean {
    const w = this.registered.get(`${namespace}/${name}`);
    if (!w) return false;
    w.lastHeartbeat = Date.now();
    return this.setHealth(namespace, name, healthy);
  }

  setHealth(namespace: string, name: string, healthy: boolean): boolean {
    const w = this.registered.get(`${namespace}/${name}`);
    if (!w) return false;
    if (w.healthy !== healthy) {
      w.healthy = healthy;
      this.touched(this.hostsSelecting(w.namespace, w.labels));
    }
    return true;
  }

  deregister(namespace: string, name: string): boolean {
    const key = `${namespace}/${name}`;
    const w = this.registered.get(key);
    if (!w) return false;
    this.registered.delete(key);
    this.touched(this.hostsSelecting(w.namespace, w.labels));
    return true;
  }

  registeredWorkloads(): RegisteredWorkload[] {
    return [...this.registered.values()];
  }

  /**
   * Applies heartbeat deadlines: a workload silent for its ttl is marked unhealthy, for 3× its ttl removed.
   * Returns the names affected. The control plane calls this on a timer.
   */
  expire(now = Date.now()): { unhealthy: string[]; removed: string[] } {
    const unhealthy: string[] = [];
    const removed: string[] = [];
    for (const w of [...this.registered.values()]) {
      if (!w.ttlMs) continue;
      const silent = now - w.lastHeartbeat;
      if (silent > 3 * w.ttlMs) {
        this.deregister(w.namespace, w.name);
        removed.push(`${w.namespace}/${w.name}`);
      } else if (silent > w.ttlMs && w.healthy) {
        this.setHealth(w.namespace, w.name, false);
        unhealthy.push(`${w.namespace}/${w.name}`);
      }
    }
    return { unhealthy, removed };
  }
}

/** Whether a model workload is one of the registry's entries (a WorkloadEntry with an address). */
function isEntry(w: Workload): boolean {
  return w.kind === 'WorkloadEntry' && !!w.address;
}

function sameLabels(a: Labels, b: Labels): boolean {
  if (a === b) return true;
  const ak = Object.keys(a);
  if (ak.length !== Object.keys(b).length) return false;
  for (const k of ak) if (a[k] !== b[k]) return false;
  return true;
}

/** Whether two endpoint lists are equal, field by field and in order. */
function sameEndpoints(a: readonly Endpoint[], b: readonly Endpoint[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (
      x.address !== y.address ||
      x.port !== y.port ||
      x.locality !== y.locality ||
      x.weight !== y.weight ||
      x.network !== y.network ||
      x.serviceAccount !== y.serviceAccount ||
      x.namespace !== y.namespace ||
      x.workload !== y.workload ||
      x.healthy !== y.healthy ||
      x.tlsMode !== y.tlsMode ||
      !sameLabels(x.labels, y.labels)
    ) {
      return false;
    }
  }
  return true;
}

function numericTarget(sp: ServicePort): number | undefined {
  return typeof sp.targetPort === 'number' ? sp.targetPort : undefined;
}

/** The workload port serving service port `sp`, or undefined when a named targetPort is not on the workload. */
function workloadPort(sp: ServicePort, ports: Record<string, number>): number | undefined {
  if (sp.name !== undefined && ports[sp.name] !== undefined) return ports[sp.name];
  if (typeof sp.targetPort === 'string') return ports[sp.targetPort];
  return sp.targetPort ?? sp.port;
}
