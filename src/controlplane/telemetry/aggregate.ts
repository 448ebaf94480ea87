/**
 * From request series (istio.ts) to the mesh graph's numbers: golden metrics per edge, per service and per
 * workload, as Kiali's versioned graph with service nodes draws them:
 *
 *   caller workload ──▶ service ──▶ destination workload (a version)
 *
 * A caller → service edge sums what the caller sent to the service (whatever version served it); a service →
 * workload edge what that workload served of the service's requests — so a traffic shift between versions shows
 * on the service's outgoing edges. Callers outside the mesh (source_workload "unknown") are the node `unknown`.
 *
 * Node ids: `svc:<destination_service>` (the FQDN), `wl:<namespace>/<workload>`, `unknown`.
 */
import { addStats, emptyStats, golden } from './istio.js';
import type { Golden, RequestStats, Series } from './istio.js';

export interface GraphNode {
  id: string;
  kind: 'service' | 'workload' | 'unknown';
  name: string;
  namespace: string;
  /** Services: the FQDN. */
  host?: string;
  /** Workloads: app and version labels, as the metrics report them. */
  app?: string;
  version?: string;
}

export interface GraphEdge extends Golden {
  id: string;
  source: string;
  target: string;
  /** Requests in the window. */
  requests: number;
  /** Requests answered 5xx in the window. */
  errors: number;
}

export interface Aggregate {
  nodes: Map<string, GraphNode>;
  edges: GraphEdge[];
  /** By service host: every request to it. */
  services: Map<string, Golden & { requests: number }>;
  /** By `namespace/workload`: requests it served (inbound) and sent (outbound). */
  workloads: Map<string, { inbound: Golden & { requests: number }; outbound: Golden & { requests: number } }>;
}

export const serviceNodeId = (host: string): string => `svc:${host}`;
export const workloadNodeId = (namespace: string, workload: string): string => `wl:${namespace}/${workload}`;

function bump(m: Map<string, RequestStats>, k: string, st: RequestStats): void {
  let a = m.get(k);
  if (!a) m.set(k, (a = emptyStats()));
  addStats(a, st);
}

const withCount = (st: RequestStats | undefined, seconds: number) => ({ ...golden(st ?? emptyStats(), seconds), requests: st?.total ?? 0 });

export function aggregate(series: readonly Series[], seconds: number): Aggregate {
  const nodes = new Map<string, GraphNode>();
  const edgeStats = new Map<string, RequestStats>();
  const svc = new Map<string, RequestStats>();
  const inbound = new Map<string, RequestStats>();
  const outbound = new Map<string, RequestStats>();
  for (const { labels: l, stats } of series) {
    const host = l.destination_service;
    if (host === 'unknown') continue;
    const sid = serviceNodeId(host);
    if (!nodes.has(sid)) {
      const short = l.destination_service_name !== 'unknown' ? l.destination_service_name : host.split('.')[0]!;
      const ns = l.destination_service_namespace !== 'unknown' ? l.destination_service_namespace : '';
      nodes.set(sid, { id: sid, kind: 'service', name: short, namespace: ns, host });
    }
    let from = 'unknown';
    if (l.source_workload !== 'unknown') {
      from = workloadNodeId(l.source_workload_namespace, l.source_workload);
      if (!nodes.has(from)) nodes.set(from, { id: from, kind: 'workload', name: l.source_workload, namespace: l.source_workload_namespace, ...(l.source_app !== 'unknown' ? { app: l.source_app } : {}) });
      bump(outbound, `${l.source_workload_namespace}/${l.source_workload}`, stats);
    } else if (!nodes.has(from)) nodes.set(from, { id: from, kind: 'unknown', name: 'unknown', namespace: '' });
    bump(edgeStats, `${from}\u001f${sid}`, stats);
    bump(svc, host, stats);
    if (l.destination_workload !== 'unknown') {
      const to = workloadNodeId(l.destination_workload_namespace, l.destination_workload);
      const n = nodes.get(to);
      const app = l.destination_app !== 'unknown' ? l.destination_app : undefined;
      const version = l.destination_version !== 'unknown' ? l.destination_version : undefined;
      if (!n) nodes.set(to, { id: to, kind: 'workload', name: l.destination_workload, namespace: l.destination_workload_namespace, ...(app ? { app } : {}), ...(version ? { version } : {}) });
      else {
        n.app ??= app;
        n.version ??= version;
      }
      bump(edgeStats, `${sid}\u001f${to}`, stats);
      bump(inbound, `${l.destination_workload_namespace}/${l.destination_workload}`, stats);
    }
  }
  const edges: GraphEdge[] = [...edgeStats].map(([k, st]) => {
    const [source, target] = k.split('\u001f') as [string, string];
    return { id: `${source}>${target}`, source, target, requests: st.total, errors: st.errors, ...golden(st, seconds) };
  });
  edges.sort((a, b) => a.id.localeCompare(b.id));
  const workloads: Aggregate['workloads'] = new Map();
  for (const k of new Set([...inbound.keys(), ...outbound.keys()])) workloads.set(k, { inbound: withCount(inbound.get(k), seconds), outbound: withCount(outbound.get(k), seconds) });
  return { nodes, edges, services: new Map([...svc].map(([h, st]) => [h, withCount(st, seconds)])), workloads };
}
