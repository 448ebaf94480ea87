/**
 * Why requests to a service fail: structural causes derived from the model and the registry (a route to a
 * subset no DestinationRule defines, a subset or service that selects no endpoints, endpoints all unhealthy, a
 * fault injected by a route), matched with the response flags the proxies observed (Envoy's short names, as
 * Istio's `response_flags` label carries them).
 *
 *   explain({ host, model, registry, errors })  // ["503 UH: subset v3 of reviews selects no endpoints", ...]
 */
import type { MeshModel } from '../../api/model.js';
import type { Endpoint } from '../registry/registry.js';
import type { Ejection, RecentError } from '../telemetry/telemetry.js';
import { fileLine, sourceRef } from './render.js';

/** Envoy response flags (short form) and what they mean. */
export const RESPONSE_FLAGS: Record<string, string> = {
  UH: 'no healthy upstream host',
  UF: 'upstream connection failure',
  UO: 'upstream overflow (circuit breaking)',
  NR: 'no route configured',
  NC: 'upstream cluster not found',
  URX: 'upstream retry limit exceeded',
  UT: 'upstream request timeout',
  UC: 'upstream connection termination',
  UR: 'upstream remote reset',
  LR: 'connection local reset',
  DC: 'downstream connection termination',
  DI: 'request delayed by fault injection',
  FI: 'request aborted by fault injection',
  RL: 'rate limited',
  UAEX: 'denied by the external authorization service',
  RLSE: 'rate limit service error',
  DPE: 'downstream protocol error',
  UPE: 'upstream protocol error',
  UMSDR: 'upstream max stream duration reached',
  SI: 'stream idle timeout',
  RBAC: 'denied by an authorization policy (RBAC)',
  NFCF: 'no filter config found',
};

export interface ExplainInput {
  host: string;
  model: MeshModel;
  /** Endpoints of the service (all ports). */
  endpoints: readonly Endpoint[];
  /** Recent failures of requests to this service. */
  errors: readonly RecentError[];
  /** The callers' active outlier ejections (any service; those of this host are used). */
  ejections?: readonly Ejection[];
}

const short = (h: string): string => h.replace(/\.svc\.cluster\.local$/, '').split('.')[0]!;
const selects = (sel: Record<string, string>, labels: Record<string, string>): boolean => Object.entries(sel).every(([k, v]) => labels[k] === v);

/** One line per cause; observed failures without a known structural cause are described by their flag. */
export function explain(inp: ExplainInput): string[] {
  const out: string[] = [];
  const name = short(inp.host);
  const structural: Array<{ flag: string; text: string }> = [];

  // Subsets the routes to this host use.
  const policies = inp.model.destinationPolicies.filter((p) => p.host === inp.host);
  const subsets = new Map<string, Record<string, string>>();
  for (const p of policies) for (const s of p.subsets) if (!subsets.has(s.name)) subsets.set(s.name, s.labels);
  const used = new Map<string, string>(); // subset → where a route uses it
  for (const t of inp.model.routes) {
    for (const r of t.http) {
      if (r.action.kind !== 'route') continue;
      for (const d of r.action.destinations) if (d.host === inp.host && d.subset && !used.has(d.subset)) used.set(d.subset, fileLine(sourceRef(r.origin)));
      if (r.fault?.abort && r.action.destinations.some((d) => d.host === inp.host)) {
        const code = r.fault.abort.httpStatus ?? r.fault.abort.grpcStatus ?? '';
        structural.push({ flag: 'FI', text: `${code} FI: ${r.origin.kind} ${r.origin.namespace}/${r.origin.name} aborts ${r.fault.abort.percent}% of matching requests to ${name} (fault injection, ${fileLine(sourceRef(r.origin))})` });
      }
      if (r.fault?.delay && r.action.destinations.some((d) => d.host === inp.host)) structural.push({ flag: 'DI', text: `DI: ${r.origin.kind} ${r.origin.namespace}/${r.origin.name} delays ${r.fault.delay.percent}% of matching requests to ${name} by ${r.fault.delay.fixedDelayMs} ms (${fileLine(sourceRef(r.origin))})` });
    }
  }
  const healthy = inp.endpoints.filter((e) => e.healthy);
  if (inp.endpoints.length === 0) structural.push({ flag: 'UH', text: `503 UH: ${name} has no endpoints (no running workload matches its selector)` });
  else if (healthy.length === 0) structural.push({ flag: 'UH', text: `503 UH: all ${inp.endpoints.length} endpoints of ${name} are unhealthy` });
  for (const [subset, where] of used) {
    const labels = subsets.get(subset);
    if (!labels) {
      structural.push({ flag: 'NC', text: `503 NC: subset ${subset} of ${name} is used by a route (${where}) but no DestinationRule for ${name} defines it` });
      continue;
    }
    const eps = inp.endpoints.filter((e) => selects(labels, e.labels));
    if (eps.length === 0) structural.push({ flag: 'UH', text: `503 UH: subset ${subset} of ${name} selects no endpoints (labels ${Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',')}; route at ${where})` });
    else if (!eps.some((e) => e.healthy)) structural.push({ flag: 'UH', text: `503 UH: every endpoint of subset ${subset} of ${name} is unhealthy` });
  }
  for (const e of inp.ejections ?? []) {
    const [, , subset, host] = e.cluster.split('|');
    if (host !== inp.host) continue;
    const eps = subset ? inp.endpoints.filter((x) => selects(subsets.get(subset) ?? {}, x.labels)) : inp.endpoints;
    structural.push({ flag: e.ejected >= eps.length ? 'UH' : '', text: `${e.ejected >= eps.length ? '503 UH: ' : ''}outlier detection of ${e.proxy} has ejected ${e.ejected} of the ${eps.length} endpoint${eps.length === 1 ? '' : 's'} of ${subset ? `subset ${subset} of ` : ''}${name}` });
  }
  for (const s of structural) out.push(s.text);

  // Observed failures: tie each flag to a structural cause, else say what the flag means.
  const seen = new Set<string>();
  for (const e of inp.errors) {
    for (const flag of e.flags.split(',')) {
      const k = `${e.code} ${flag}`;
      if (seen.has(k)) continue;
      seen.add(k);
      if (flag === '-') {
        if (e.code.startsWith('5')) out.push(`${e.code}: answered by ${e.labels.destination_workload !== 'unknown' ? e.labels.destination_workload : name} itself (no proxy flag: the application returned it)`);
        continue;
      }
      if (structural.some((s) => s.flag === flag)) continue;
      out.push(`${e.code} ${flag}: ${RESPONSE_FLAGS[flag] ?? 'see Envoy response flags'} (observed ${e.count}×, last ${e.lastSeen})`);
    }
  }
  return out;
}
