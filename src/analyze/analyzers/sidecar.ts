/**
 * WFT1005: a Sidecar egress host (`namespace/dnsName`) that imports nothing. Whole-namespace imports
 * (`ns/*`, `./*`, `*\/*`) and `~/...` (import nothing, on purpose) are not checked: an empty namespace is
 * legitimate. A specific dnsName must match a service of that namespace (or of any namespace for `*`).
 */
import type { Analyzer } from '../types.js';
import { hostsOverlap } from '../context.js';

export const sidecarEgressAnalyzer: Analyzer = {
  name: 'sidecar.egress-hosts',
  description: 'Checks that each specific Sidecar egress host matches a service',
  codes: ['WFT1005'],
  analyze(ctx) {
    for (const sc of ctx.model.sidecars) {
      sc.egress.forEach((eg, i) => {
        eg.hosts.forEach((h) => {
          const slash = h.indexOf('/');
          const nsPart = slash < 0 ? '*' : h.slice(0, slash);
          const dns = (slash < 0 ? h : h.slice(slash + 1)).toLowerCase();
          if (nsPart === '~' || dns === '*') return;
          const ns = nsPart === '.' ? sc.namespace : nsPart;
          const found = ctx.model.services.some((s) => (ns === '*' || s.namespace === ns) && hostsOverlap(dns, s.hostname));
          if (found) return;
          const elsewhere = [...new Set(ctx.model.services.filter((s) => hostsOverlap(dns, s.hostname)).map((s) => s.namespace))];
          const writtenAs = (v: unknown) => typeof v === 'string' && (v === h || v.replace(/^\.\//, `${sc.namespace}/`) === h);
          const where = ctx.whereOf(sc.origin, ctx.findUnder(writtenAs, ['spec', 'egress', i, 'hosts']));
          const raw = (ctx.resourceOf(sc.origin)?.body.spec as { egress?: Array<{ hosts?: unknown[] }> } | undefined)?.egress?.[i]?.hosts?.find(writtenAs);
          ctx.report(
            'WFT1005',
            where,
            `Sidecar ${sc.namespace}/${sc.origin.name} egress host "${typeof raw === 'string' ? raw : h}" matches no service${ns === '*' ? '' : ` in namespace ${ns}`}${elsewhere.length ? ` (a service with that name exists in namespace ${elsewhere.join(', ')})` : ''}`,
            elsewhere.length ? `use ${elsewhere[0]}/${dns}` : 'fix the host (namespace/FQDN, e.g. ./reviews.default.svc.cluster.local or istio-system/*), or add the service it should import',
          );
        });
      });
    }
  },
};
