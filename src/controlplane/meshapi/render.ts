/**
 * Plain-text renderings of model objects for the mesh API (and so for the dashboard and `weft describe`): a
 * route's match and action, a traffic policy, a security policy, and an origin as `Kind ns/name (file:line)`.
 */
import type { AuthorizationPolicy, Destination, HttpRoute, Origin, PeerAuthenticationPolicy, RouteMatch, StringMatch, TrafficPolicy } from '../../api/model.js';

/** Where an object was written: kind, name and source position. */
export interface SourceRef {
  kind: string;
  namespace: string;
  name: string;
  /** JSON path inside the resource (`spec.http[1]`). */
  path?: string;
  file?: string;
  line?: number;
}

export function sourceRef(o: Origin): SourceRef {
  return { kind: o.kind, namespace: o.namespace, name: o.name, ...(o.path ? { path: o.path } : {}), ...(o.pos ? { file: o.pos.file, line: o.pos.line } : {}) };
}

/** `file:line`, or '' when unknown. */
export const fileLine = (s: SourceRef): string => (s.file ? `${s.file}:${s.line ?? 0}` : '');

function str(m: StringMatch | undefined): string {
  if (!m) return '';
  if ('exact' in m) return m.exact;
  if ('prefix' in m) return `${m.prefix}*`;
  return `~${m.regex}`;
}

export function matchText(m: RouteMatch): string {
  const parts: string[] = [];
  if (m.path) parts.push(`path ${str(m.path)}`);
  if (m.method) parts.push(`method ${str(m.method)}`);
  if (m.authority) parts.push(`authority ${str(m.authority)}`);
  for (const h of m.headers) parts.push(`header ${h.name}${h.invert ? ' not' : ''}${h.match ? `=${str(h.match)}` : ' present'}`);
  for (const q of m.queryParams) parts.push(`query ${q.name}${q.match ? `=${str(q.match)}` : ' present'}`);
  if (m.port !== undefined) parts.push(`port ${m.port}`);
  if (m.sourceLabels) parts.push(`from ${Object.entries(m.sourceLabels).map(([k, v]) => `${k}=${v}`).join(',')}`);
  if (m.sourceNamespace) parts.push(`from namespace ${m.sourceNamespace}`);
  return parts.join(' and ') || 'any request';
}

/** A Kubernetes service host by its short name (`reviews.bookinfo.svc.cluster.local` → `reviews`); others as written. */
const shortHost = (h: string): string => (/\.svc\.cluster\.local$/.test(h) ? h.split('.')[0]! : h);

export function destinationsText(ds: readonly Destination[]): string {
  const total = ds.reduce((a, d) => a + d.weight, 0);
  return ds
    .map((d) => `${shortHost(d.host)}${d.subset ? ` ${d.subset}` : ''}${ds.length > 1 && total > 0 ? ` ${Math.round((d.weight / total) * 1000) / 10}%` : ''}`)
    .join(', ');
}

export function actionText(r: HttpRoute): string {
  const a = r.action;
  let s = a.kind === 'route' ? `→ ${destinationsText(a.destinations)}` : a.kind === 'redirect' ? `redirect ${a.redirect.host ?? ""}${a.redirect.path ?? a.redirect.prefixRewrite ?? ""}` : `respond ${a.status}`;
  if (r.fault?.abort) s += `; fault: abort ${r.fault.abort.httpStatus ?? r.fault.abort.grpcStatus} for ${r.fault.abort.percent}%`;
  if (r.fault?.delay) s += `; fault: delay ${r.fault.delay.fixedDelayMs} ms for ${r.fault.delay.percent}%`;
  if (r.timeoutMs) s += `; timeout ${r.timeoutMs} ms`;
  if (r.retries && r.retries.attempts > 0) s += `; retries ${r.retries.attempts}`;
  if (r.mirrors.length) s += `; mirror ${r.mirrors.map((m) => shortHost(m.host)).join(', ')}`;
  return s;
}

export function trafficPolicyText(p: TrafficPolicy | undefined): string {
  if (!p) return '';
  const parts: string[] = [];
  if (p.loadBalancer?.simple) parts.push(`lb ${p.loadBalancer.simple}`);
  if (p.loadBalancer?.consistentHash) parts.push('lb consistent hash');
  if (p.tls?.mode) parts.push(`tls ${p.tls.mode}`);
  if (p.outlierDetection) parts.push(`outlier detection (${p.outlierDetection.consecutive5xxErrors ?? p.outlierDetection.consecutiveGatewayErrors ?? '?'} errors)`);
  if (p.connectionPool) parts.push('connection pool limits');
  return parts.join('; ');
}

export function peerAuthText(p: PeerAuthenticationPolicy): string {
  const ports = Object.entries(p.portLevel).map(([port, m]) => `port ${port}: ${m}`);
  return `mTLS ${p.mode}${ports.length ? ` (${ports.join(', ')})` : ''}`;
}

export function authzText(p: AuthorizationPolicy): string {
  return `${p.action}${p.provider ? ` (${p.provider})` : ''}, ${p.rules.length} rule${p.rules.length === 1 ? '' : 's'}${p.rules.length === 0 && p.action === 'ALLOW' ? ' (denies everything it selects)' : ''}`;
}
