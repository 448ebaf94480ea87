/**
 * Canonical form of the model, applied after every family has translated, so that configs that mean the same
 * thing produce the same model whatever API wrote them:
 * - a destination (or mirror) without a port that names a mesh Service with exactly one port gets that port
 *   (Istio allows omitting the port only in that case; SMI backends never carry one);
 * - a route match that matches every request (only `prefix: /`, or nothing at all) makes the route match-all,
 *   written as an empty `matches` list (Gateway API's default match is `PathPrefix /`).
 */
import type { Destination, MeshModel, MirrorPolicy, RouteMatch } from './model.js';

export function normalizeModel(model: MeshModel): void {
  const singlePort = new Map<string, number>();
  for (const s of model.services) if (s.ports.length === 1) singlePort.set(s.hostname, s.ports[0]!.port);
  const fillPort = (d: Destination | MirrorPolicy) => {
    if (d.port === undefined) {
      const p = singlePort.get(d.host);
      if (p !== undefined) d.port = p;
    }
  };
  for (const table of model.routes) {
    for (const r of table.http) {
      if (r.action.kind === 'route') r.action.destinations.forEach(fillPort);
      r.mirrors.forEach(fillPort);
      if (r.matches.some(matchesEverything)) r.matches = [];
    }
    for (const r of [...table.tcp, ...table.tls]) r.destinations.forEach(fillPort);
  }
}

/** True when a match has no condition but (at most) the path prefix `/`. */
export function matchesEverything(m: RouteMatch): boolean {
  const pathAll = m.path === undefined || ('prefix' in m.path && m.path.prefix === '/');
  return (
    pathAll &&
    m.method === undefined &&
    m.authority === undefined &&
    m.scheme === undefined &&
    m.headers.length === 0 &&
    m.queryParams.length === 0 &&
    m.port === undefined &&
    m.sourceLabels === undefined &&
    m.sourceNamespace === undefined &&
    m.gateways.length === 0
  );
}
