/**
 * The mesh API's documents (served under `/api/` on the control plane's HTTP port; read by the dashboard and by
 * `weft top / stat / edges / describe`). Everything is computed on request from what the control plane holds:
 * the normalized model (routes and policies with their source file and line), the registry (services and
 * endpoints with health), the proxies' sync state, the analyzer's messages, and the telemetry window.
 *
 *   meshView(src)                       GET /api/mesh        graph nodes and edges, services, proxies
 *   serviceDetail(src, ns, name)        GET /api/services/NS/NAME
 *   workloadDetail(src, ns, name)       GET /api/workloads/NS/NAME
 */
import type { MeshModel, Service } from '../../api/model.js';
import type { AnalysisMessage } from '../../analyze/types.js';
import type { Endpoint } from '../registry/registry.js';
import type { ProxySyncStatus } from '../controlplane.js';
import { aggregate, serviceNodeId, workloadNodeId } from '../telemetry/aggregate.js';
import type { GraphEdge, GraphNode } from '../telemetry/aggregate.js';
import type { Golden } from '../telemetry/istio.js';
import type { RecentError, TelemetryWindow } from '../telemetry/telemetry.js';
import { explain } from './explain.js';
import { actionText, authzText, destinationsText, fileLine, matchText, peerAuthText, sourceRef, trafficPolicyText } from './render.js';
import type { SourceRef } from './render.js';

/** What the views read (the control plane implements it). */
export interface MeshSource {
  model: MeshModel;
  services(): readonly Service[];
  endpoints(host: string, port: number): readonly Endpoint[];
  syncStatus(): ProxySyncStatus[];
  /** The analyzer's messages for the current config. */
  analysis(): readonly AnalysisMessage[];
  telemetry(): TelemetryWindow;
}

type Metrics = Golden & { requests: number };

export interface ProxyView {
  id: string;
  namespace: string;
  type: string;
  labels: Record<string, string>;
  /** Per xDS type (CDS, LDS, EDS, RDS, ...): SYNCED, NOT SENT, STALE, NACKED. */
  sync: Record<string, string>;
  /** NACK messages, per type. */
  nacks: Record<string, string>;
}

export interface ServiceSummary extends Metrics {
  host: string;
  name: string;
  namespace: string;
  endpoints: number;
  healthyEndpoints: number;
}

export interface MeshView {
  generatedAt: string;
  telemetry: { source: string; updatedAt?: string; windowSeconds: number; scrapeErrors: TelemetryWindow['scrapeErrors'] };
  nodes: GraphNode[];
  edges: GraphEdge[];
  services: ServiceSummary[];
  proxies: ProxyView[];
}

export interface RouteView {
  /** The route table's resource. */
  table: SourceRef;
  hosts: string[];
  rules: Array<{ match: string; action: string; source: SourceRef; at: string }>;
}

export interface PolicyView {
  source: SourceRef;
  at: string;
  summary: string;
  subsets?: Array<{ name: string; labels: Record<string, string>; endpoints: number; policy: string }>;
}

export interface EndpointView {
  address: string;
  port: number;
  workload: string;
  namespace: string;
  labels: Record<string, string>;
  healthy: boolean;
  tlsMode: string;
  locality?: string;
}

export interface MessageView {
  severity: string;
  code: string;
  message: string;
  at: string;
}

export interface ErrorView {
  source: string;
  workload: string;
  code: string;
  flags: string;
  count: number;
  lastSeen: string;
}

export interface ServiceDetail {
  host: string;
  name: string;
  namespace: string;
  source: SourceRef;
  at: string;
  ports: Array<{ name?: string; port: number; protocol: string }>;
  metrics: Metrics;
  inbound: GraphEdge[];
  outbound: GraphEdge[];
  endpoints: EndpointView[];
  /** Hosts of this service the callers' outlier detection has ejected now (per caller proxy and subset). */
  outlierEjections: Array<{ proxy: string; subset: string; port: number; ejected: number }>;
  routes: RouteView[];
  destinationPolicies: PolicyView[];
  securityPolicies: PolicyView[];
  proxies: ProxyView[];
  analyzer: MessageView[];
  recentErrors: ErrorView[];
  explanations: string[];
}

export interface WorkloadDetail {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  services: Array<{ host: string; name: string; namespace: string }>;
  inbound: Metrics;
  outbound: Metrics;
  edges: GraphEdge[];
  endpoints: EndpointView[];
  securityPolicies: PolicyView[];
  proxies: ProxyView[];
  analyzer: MessageView[];
  recentErrors: ErrorView[];
  explanations: string[];
}

const NO_METRICS: Metrics = { rps: 0, requests: 0 };
const selects = (sel: Record<string, string> | undefined, labels: Record<string, string>): boolean => !!sel && Object.entries(sel).every(([k, v]) => labels[k] === v);

function proxyView(p: ProxySyncStatus): ProxyView {
  const sync: Record<string, string> = {};
  const nacks: Record<string, string> = {};
  for (const [t, s] of Object.entries(p.xds)) {
    sync[t] = s.state;
    if (s.nack) nacks[t] = s.nack.message;
  }
  return { id: p.id, namespace: p.namespace, type: p.type, labels: p.labels, sync, nacks };
}

function serviceEndpoints(src: MeshSource, s: Service): EndpointView[] {
  const out: EndpointView[] = [];
  const seen = new Set<string>();
  for (const p of s.ports) {
    for (const e of src.endpoints(s.hostname, p.port)) {
      const k = `${e.address}:${e.port}`;
      if (seen.has(k)) continue;
      seen.add(k);
      out.push({ address: e.address, port: e.port, workload: e.workload, namespace: e.namespace, labels: e.labels, healthy: e.healthy, tlsMode: e.tlsMode, ...(e.locality ? { locality: e.locality } : {}) });
    }
  }
  return out.sort((a, b) => a.workload.localeCompare(b.workload) || a.port - b.port);
}

function rawEndpoints(src: MeshSource, s: Service): Endpoint[] {
  return s.ports.flatMap((p) => [...src.endpoints(s.hostname, p.port)]);
}

function errorView(e: RecentError): ErrorView {
  const l = e.labels;
  return { source: l.source_workload === 'unknown' ? 'unknown' : `${l.source_workload_namespace}/${l.source_workload}`, workload: l.destination_workload === 'unknown' ? '' : `${l.destination_workload_namespace}/${l.destination_workload}`, code: e.code, flags: e.flags, count: e.count, lastSeen: e.lastSeen };
}

function messageView(m: AnalysisMessage): MessageView {
  return { severity: m.severity, code: m.code, message: m.message, at: m.pos ? `${m.pos.file}:${m.pos.line}` : '' };
}

function findService(src: MeshSource, namespace: string, name: string): Service | undefined {
  return src.services().find((s) => s.namespace === namespace && (s.name === name || s.hostname === name)) ?? src.services().find((s) => s.hostname === name);
}

export function meshView(src: MeshSource): MeshView {
  const tw = src.telemetry();
  const agg = aggregate(tw.series, tw.seconds);
  const nodes = new Map(agg.nodes);
  const services: ServiceSummary[] = [];
  for (const s of src.services()) {
    if (s.location !== 'MESH_INTERNAL') continue;
    const id = serviceNodeId(s.hostname);
    if (!nodes.has(id)) nodes.set(id, { id, kind: 'service', name: s.name ?? s.hostname, namespace: s.namespace, host: s.hostname });
    const eps = rawEndpoints(src, s);
    services.push({ host: s.hostname, name: s.name ?? s.hostname, namespace: s.namespace, endpoints: eps.length, healthyEndpoints: eps.filter((e) => e.healthy).length, ...(agg.services.get(s.hostname) ?? NO_METRICS) });
  }
  return {
    generatedAt: new Date().toISOString(),
    telemetry: { source: tw.source, ...(tw.updatedAt ? { updatedAt: tw.updatedAt } : {}), windowSeconds: tw.seconds, scrapeErrors: tw.scrapeErrors },
    nodes: [...nodes.values()].sort((a, b) => a.id.localeCompare(b.id)),
    edges: agg.edges,
    services: services.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`)),
    proxies: src.syncStatus().map(proxyView),
  };
}

/** Security policies whose selector picks a workload with `labels` in `namespace` (or the whole namespace / mesh). */
function securityPolicies(model: MeshModel, namespace: string, labelSets: ReadonlyArray<Record<string, string>>, serviceName?: string): PolicyView[] {
  const root = model.mesh.rootNamespace;
  const applies = (ns: string, sel: Record<string, string> | undefined) => (ns === namespace || (ns === root && !sel)) && (!sel || labelSets.some((l) => selects(sel, l)));
  const out: PolicyView[] = [];
  for (const p of model.peerAuthentications) if (applies(p.namespace, p.selector)) out.push({ source: sourceRef(p.origin), at: fileLine(sourceRef(p.origin)), summary: peerAuthText(p) });
  for (const p of model.authorizationPolicies) {
    const byRef = p.targetRefs?.some((r) => r.kind === 'Service' && r.name === serviceName && p.namespace === namespace);
    if (p.targetRefs ? byRef : applies(p.namespace, p.selector)) out.push({ source: sourceRef(p.origin), at: fileLine(sourceRef(p.origin)), summary: authzText(p) });
  }
  return out;
}

function relevantMessages(src: MeshSource, refs: readonly SourceRef[], words: readonly string[]): MessageView[] {
  const keys = new Set(refs.map((r) => `${r.kind}/${r.namespace}/${r.name}`));
  return src
    .analysis()
    .filter((m) => (m.resource && keys.has(`${m.resource.kind}/${m.resource.namespace}/${m.resource.name}`)) || words.some((w) => m.message.includes(w)))
    .map(messageView);
}

function proxiesOf(src: MeshSource, namespace: string, labelSets: ReadonlyArray<Record<string, string>>): ProxyView[] {
  return src
    .syncStatus()
    .filter((p) => p.namespace === namespace && labelSets.some((l) => Object.keys(l).length > 0 && selects(l, p.labels)))
    .map(proxyView);
}

export function serviceDetail(src: MeshSource, namespace: string, name: string): ServiceDetail | undefined {
  const s = findService(src, namespace, name);
  if (!s) return undefined;
  const model = src.model;
  const tw = src.telemetry();
  const agg = aggregate(tw.series, tw.seconds);
  const id = serviceNodeId(s.hostname);
  const endpoints = serviceEndpoints(src, s);

  const routes: RouteView[] = model.routes
    .filter((t) => t.hosts.includes(s.hostname) && (t.gateways.length === 0 || t.gateways.includes('mesh')))
    .map((t) => ({
      table: sourceRef(t.origin),
      hosts: t.hosts,
      rules: [
        ...t.http.map((r) => ({ match: r.matches.length ? r.matches.map(matchText).join(' or ') : 'any request', action: actionText(r), source: sourceRef(r.origin), at: fileLine(sourceRef(r.origin)) })),
        ...t.tcp.map((r) => ({ match: 'tcp', action: `→ ${destinationsText(r.destinations)}`, source: sourceRef(r.origin), at: fileLine(sourceRef(r.origin)) })),
      ],
    }));
  const destinationPolicies: PolicyView[] = model.destinationPolicies
    .filter((p) => p.host === s.hostname)
    .map((p) => ({
      source: sourceRef(p.origin),
      at: fileLine(sourceRef(p.origin)),
      summary: trafficPolicyText(p.trafficPolicy),
      subsets: p.subsets.map((sub) => ({ name: sub.name, labels: sub.labels, endpoints: endpoints.filter((e) => selects(sub.labels, e.labels)).length, policy: trafficPolicyText(sub.trafficPolicy) })),
    }));
  const labelSets = s.selector ? [s.selector] : endpoints.map((e) => e.labels);
  const securityPols = securityPolicies(model, s.namespace, endpoints.length ? endpoints.map((e) => e.labels) : labelSets, s.name);
  const refs = [sourceRef(s.origin), ...routes.map((r) => r.table), ...destinationPolicies.map((p) => p.source), ...securityPols.map((p) => p.source)];
  const errors = tw.recentErrors.filter((e) => e.labels.destination_service === s.hostname);
  return {
    host: s.hostname,
    name: s.name ?? s.hostname,
    namespace: s.namespace,
    source: sourceRef(s.origin),
    at: fileLine(sourceRef(s.origin)),
    ports: s.ports.map((p) => ({ ...(p.name ? { name: p.name } : {}), port: p.port, protocol: p.protocol })),
    metrics: agg.services.get(s.hostname) ?? NO_METRICS,
    inbound: agg.edges.filter((e) => e.target === id),
    outbound: agg.edges.filter((e) => e.source === id),
    endpoints,
    outlierEjections: tw.ejections.flatMap((e) => {
      const [, port, subset, host] = e.cluster.split('|');
      return host === s.hostname ? [{ proxy: e.proxy, subset: subset ?? '', port: Number(port), ejected: e.ejected }] : [];
    }),
    routes,
    destinationPolicies,
    securityPolicies: securityPols,
    proxies: proxiesOf(src, s.namespace, labelSets),
    analyzer: relevantMessages(src, refs, [s.hostname]),
    recentErrors: errors.map(errorView),
    explanations: explain({ host: s.hostname, model, endpoints: rawEndpoints(src, s), errors, ejections: tw.ejections }),
  };
}

export function workloadDetail(src: MeshSource, namespace: string, name: string): WorkloadDetail | undefined {
  const tw = src.telemetry();
  const agg = aggregate(tw.series, tw.seconds);
  // A workload: the endpoints named after it (`name` or `name-<replica>`), or what the metrics call it.
  const mine = (w: string) => w === name || (w.startsWith(`${name}-`) && /^\d+$/.test(w.slice(name.length + 1)));
  const endpoints: EndpointView[] = [];
  const services = new Map<string, Service>();
  for (const s of src.services()) {
    for (const e of serviceEndpoints(src, s)) {
      if (e.namespace !== namespace || !mine(e.workload)) continue;
      services.set(s.hostname, s);
      if (!endpoints.some((x) => x.address === e.address && x.port === e.port)) endpoints.push(e);
    }
  }
  const modelWl = src.model.workloads.find((w) => w.namespace === namespace && w.name === name) ?? src.model.localWorkloads.find((w) => w.namespace === namespace && w.name === name);
  const id = workloadNodeId(namespace, name);
  const metrics = agg.workloads.get(`${namespace}/${name}`);
  if (!modelWl && endpoints.length === 0 && !metrics) return undefined;
  const labels = modelWl?.labels ?? endpoints[0]?.labels ?? {};
  const edges = agg.edges.filter((e) => e.source === id || e.target === id);
  const errors = tw.recentErrors.filter((e) => (e.labels.destination_workload === name && e.labels.destination_workload_namespace === namespace) || (e.labels.source_workload === name && e.labels.source_workload_namespace === namespace));
  const secPols = securityPolicies(src.model, namespace, [labels]);
  const explanations: string[] = [];
  // Why the calls this workload makes fail: per destination service it called with errors.
  for (const host of new Set(errors.filter((e) => e.labels.source_workload === name).map((e) => e.labels.destination_service))) {
    const s = src.services().find((x) => x.hostname === host);
    if (s) explanations.push(...explain({ host, model: src.model, endpoints: rawEndpoints(src, s), errors: errors.filter((e) => e.labels.destination_service === host), ejections: tw.ejections }));
  }
  const refs = [...(modelWl?.origin ? [sourceRef(modelWl.origin)] : []), ...secPols.map((p) => p.source)];
  return {
    name,
    namespace,
    labels,
    services: [...services.values()].map((s) => ({ host: s.hostname, name: s.name ?? s.hostname, namespace: s.namespace })),
    inbound: metrics?.inbound ?? NO_METRICS,
    outbound: metrics?.outbound ?? NO_METRICS,
    edges,
    endpoints,
    securityPolicies: secPols,
    proxies: proxiesOf(src, namespace, [labels]),
    analyzer: relevantMessages(src, refs, []),
    recentErrors: errors.map(errorView),
    explanations: [...new Set(explanations)],
  };
}
