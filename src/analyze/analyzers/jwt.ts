/**
 * JWT claim based routing (`@request.auth.claims.*` header matches). Istio supports it on ingress gateways
 * only, and only once a RequestAuthentication has validated the token there:
 * WFT0149 (IST0149): a rule bound to a gateway matches claims, but no RequestAuthentication (in the root
 * namespace or the workload's namespace) selects that gateway's workloads. (Claim matches in a VirtualService
 * bound to the mesh only are rejected by validation, as Istio's validation does.)
 */
import type { GatewayDef, RouteMatch } from '../../api/model.js';
import { tableGateways } from '../../api/precedence.js';
import type { AnalysisContext, WorkloadRef } from '../context.js';
import { formatLabels, selects } from '../context.js';
import type { Analyzer } from '../types.js';

/** The header prefix Istio uses for JWT claim routing. */
export const JWT_CLAIM_PREFIX = '@request.auth.claims';

function claimKey(m: RouteMatch): string | undefined {
  return m.headers.find((h) => h.name.startsWith(JWT_CLAIM_PREFIX))?.name;
}

function gatewayWorkloads(ctx: AnalysisContext, gw: GatewayDef): WorkloadRef[] {
  const found = Object.keys(gw.selector).length ? ctx.workloads().filter((w) => selects(gw.selector, w.labels)) : [];
  // Without a matching workload in config, check the workload the selector describes.
  return found.length ? found : [{ kind: 'gateway', name: `${gw.name} (selector ${formatLabels(gw.selector)})`, namespace: gw.namespace, labels: gw.selector }];
}

export const jwtClaimRouteAnalyzer: Analyzer = {
  name: 'route.jwt-claims',
  description: 'Checks that JWT claim based routing has a RequestAuthentication where the claims are read',
  codes: ['WFT0149'],
  analyze(ctx) {
    const root = ctx.model.mesh.rootNamespace;
    const gateways = new Map(ctx.model.gateways.map((g) => [`${g.namespace}/${g.name}`, g]));
    for (const t of ctx.model.routes) {
      t.http.forEach((r) => {
        r.matches.forEach((m) => {
          const key = claimKey(m);
          if (!key) return;
          const where = ctx.whereOf(r.origin, ctx.findUnder((_v, k) => k === key || (typeof _v === 'string' && _v === key)));
          const gws = m.gateways.length ? m.gateways : tableGateways(t);
          for (const g of gws) {
            if (g === 'mesh') continue;
            const gw = gateways.get(g);
            if (!gw) continue; // reported by route.parents
            const missing = gatewayWorkloads(ctx, gw).filter(
              (w) => !ctx.model.requestAuthentications.some((ra) => (ra.namespace === root || ra.namespace === w.namespace) && selects(ra.selector, w.labels)),
            );
            if (!missing.length) continue;
            ctx.report(
              'WFT0149',
              where,
              `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} routes on JWT claim ${key} but no RequestAuthentication applies to the workload${missing.length > 1 ? 's' : ''} of gateway ${g} (${missing.map((w) => `${w.namespace}/${w.name}`).join(', ')}); the token must be validated there for the claims to exist`,
              `add a RequestAuthentication in namespace ${gw.namespace} (or ${root}) whose selector matches ${formatLabels(gw.selector)}`,
            );
          }
        });
      });
    }
  },
};
