/**
 * DestinationRule checks:
 * - WFT0174: the host matches no service (IST0174);
 * - WFT0173: a subset selects none of the host's workloads (IST0173). Only reported when config declares at
 *   least one workload of the service (WorkloadEntry, LocalWorkload, ServiceEntry endpoint): with none, the
 *   instances come from elsewhere (registration at run time) and there is nothing to compare against;
 * - WFT1003/WFT1004: several DestinationRules for the same host, namespace, workload selector and exportTo.
 *   Istio merges them, oldest first: subsets are concatenated (a repeated subset name keeps the first), the first top-level
 *   trafficPolicy wins. WFT1003 when something is dropped, WFT1004 (Info) when the merge is clean.
 */
import type { DestinationPolicy } from '../../api/model.js';
import { compareCreation } from '../../api/precedence.js';
import type { AnalysisContext } from '../context.js';
import { formatLabels, selects } from '../context.js';
import type { Analyzer } from '../types.js';

function subsetPath(ctx: AnalysisContext, p: DestinationPolicy, subset: string, leaf?: string): Array<string | number> {
  const res = ctx.resourceOf(p.origin);
  const list = (res?.body.spec as { subsets?: unknown } | undefined)?.subsets;
  if (!Array.isArray(list)) return ['spec', 'subsets'];
  const i = list.findIndex((s) => s && typeof s === 'object' && (s as { name?: unknown }).name === subset);
  if (i < 0) return ['spec', 'subsets'];
  const item = list[i] as Record<string, unknown>;
  return leaf && item[leaf] !== undefined ? ['spec', 'subsets', i, leaf] : ['spec', 'subsets', i];
}

export const unknownHostAnalyzer: Analyzer = {
  name: 'destinationrule.unknown-host',
  description: 'Checks that each DestinationRule host matches a service',
  codes: ['WFT0174'],
  analyze(ctx) {
    for (const p of ctx.model.destinationPolicies) {
      if (ctx.servicesFor(p.host).length) continue;
      ctx.report(
        'WFT0174',
        ctx.whereAt(p.origin, ['spec', 'host']),
        `the host ${p.host} defined in DestinationRule ${p.namespace}/${p.origin.name} does not match any service in the mesh`,
        'fix the host (a short name resolves in the DestinationRule namespace), or add the Service or ServiceEntry it is for',
      );
    }
  },
};

export const subsetSelectsNothingAnalyzer: Analyzer = {
  name: 'destinationrule.subset-workloads',
  description: 'Checks that every DestinationRule subset selects at least one workload of its host',
  codes: ['WFT0173'],
  analyze(ctx) {
    for (const p of ctx.model.destinationPolicies) {
      if (!p.subsets.length) continue;
      const services = ctx.servicesFor(p.host).filter((s) => !s.hostname.includes('*'));
      if (!services.length) continue;
      const instances = services.flatMap((s) => ctx.instanceLabels(s));
      if (!instances.length) continue;
      for (const sub of p.subsets) {
        if (instances.some((l) => selects(sub.labels, l))) continue;
        const where = ctx.whereAt(p.origin, subsetPath(ctx, p, sub.name, 'labels'));
        const selectors = services.map((s) => formatLabels(s.selector)).join(' / ');
        ctx.report(
          'WFT0173',
          where,
          `the subset ${sub.name} (labels ${formatLabels(sub.labels)}) defined in DestinationRule ${p.namespace}/${p.origin.name} selects none of the ${instances.length} workload${instances.length > 1 ? 's' : ''} of ${p.host} (service selector ${selectors}); requests routed to it fail with 503 (no healthy upstream)`,
          'fix the subset labels to match the labels of the intended workloads, or deploy workloads with these labels',
        );
      }
    }
  },
};

export const overlappingRulesAnalyzer: Analyzer = {
  name: 'destinationrule.overlap',
  description: 'Reports DestinationRules for the same host and workload selector, which are merged',
  codes: ['WFT1003', 'WFT1004'],
  analyze(ctx) {
    const groups = new Map<string, DestinationPolicy[]>();
    for (const p of ctx.model.destinationPolicies) {
      // Istio merges rules of one namespace and host with equal workload selectors and equal exportTo.
      const k = `${p.namespace}|${p.host}|${formatLabels(p.workloadSelector)}|${p.workloadSelector ? 'sel' : 'nosel'}|${p.exportTo.length ? [...p.exportTo].sort().join(',') : '*'}`;
      const g = groups.get(k);
      if (g) g.push(p);
      else groups.set(k, [p]);
    }
    for (const list of groups.values()) {
      if (list.length < 2) continue;
      list.sort((a, b) => compareCreation(a.origin, b.origin, 'name-namespace'));
      const first = list[0]!;
      const subsets = new Map(first.subsets.map((s) => [s.name, first] as const));
      let policyFrom: DestinationPolicy | undefined = first.trafficPolicy ? first : undefined;
      for (const p of list.slice(1)) {
        const sel = p.workloadSelector ? ` and workload selector ${formatLabels(p.workloadSelector)}` : '';
        const head = `DestinationRules ${list.map((x) => `${x.namespace}/${x.origin.name}`).join(', ')} all apply to host ${p.host}${sel} in namespace ${p.namespace} and are merged, oldest first`;
        let dropped = false;
        for (const s of p.subsets) {
          const owner = subsets.get(s.name);
          if (owner) {
            dropped = true;
            ctx.report(
              'WFT1003',
              ctx.whereAt(p.origin, subsetPath(ctx, p, s.name, 'name')),
              `${head}: subset ${s.name} of ${p.namespace}/${p.origin.name} is ignored because ${owner.namespace}/${owner.origin.name} already defines it`,
              'give the subset another name, or define it in one DestinationRule only',
            );
          } else subsets.set(s.name, p);
        }
        if (p.trafficPolicy) {
          if (policyFrom) {
            dropped = true;
            ctx.report(
              'WFT1003',
              ctx.whereAt(p.origin, ['spec', 'trafficPolicy']),
              `${head}: the top-level trafficPolicy of ${p.namespace}/${p.origin.name} is ignored; the one of ${policyFrom.namespace}/${policyFrom.origin.name} applies`,
              'keep the host-level trafficPolicy in one DestinationRule (merge them), or use subset- or port-level policies',
            );
          } else policyFrom = p;
        }
        if (!dropped) {
          ctx.report(
            'WFT1004',
            ctx.whereAt(p.origin, ['spec', 'host']),
            `${head}: ${p.namespace}/${p.origin.name} adds its ${p.subsets.length ? `subsets (${p.subsets.map((s) => s.name).join(', ')})` : 'settings'} to ${first.namespace}/${first.origin.name}`,
            'nothing is lost; consider one DestinationRule per host for readability',
          );
        }
      }
    }
  },
};

export const destinationRuleAnalyzers: Analyzer[] = [unknownHostAnalyzer, subsetSelectsNothingAnalyzer, overlappingRulesAnalyzer];
