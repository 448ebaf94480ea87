/**
 * Route ownership conflicts, decided by src/api/precedence.ts (the function the control plane uses):
 * - several API families route one host (WFT1001): the losing family's tables are ignored;
 * - several mesh-bound VirtualServices define one host in the same visibility scope (WFT0109, as istioctl):
 *   they are not merged and only the oldest applies;
 * - several TrafficSplits (or other non-merging tables) for one root (WFT1002).
 * Overrides (a private VirtualService or a GAMMA consumer route hiding wider ones) are intended and not reported.
 */
import type { RouteConflict } from '../../api/precedence.js';
import { originKey } from '../../api/precedence.js';
import type { RouteTable } from '../../api/model.js';
import type { AnalysisContext } from '../context.js';
import { writtenHostNames } from '../locate.js';
import type { Analyzer } from '../types.js';

function name(t: RouteTable): string {
  return `${t.origin.namespace}/${t.origin.name}`;
}

function whereHost(ctx: AnalysisContext, t: RouteTable, host: string) {
  return ctx.whereOf(
    t.origin,
    ctx.findUnder((v, k) => typeof v === 'string' && (typeof k === 'number' || k === 'service' || k === 'name' || k === 'host') && (v === host || writtenHostNames(v, host)), ['spec']),
  );
}

function scope(c: RouteConflict): string {
  const gw = c.gateway === 'mesh' ? 'for sidecars' : `on gateway ${c.gateway}`;
  return c.namespace !== undefined ? `${gw}, for clients in namespace ${c.namespace}` : gw;
}

export const routeConflictAnalyzer: Analyzer = {
  name: 'route.conflicts',
  description: 'Reports hosts routed by several API families or by several non-merging resources, and which one wins',
  codes: ['WFT0109', 'WFT1001', 'WFT1002'],
  analyze(ctx) {
    for (const c of ctx.routeConflicts()) {
      if (c.kind === 'override') continue;
      if (c.kind === 'family') {
        const winners = c.winners.map((t) => `${t.origin.kind} ${name(t)}`).join(', ');
        for (const t of c.losers) {
          ctx.report(
            'WFT1001',
            whereHost(ctx, t, c.host),
            `${t.origin.kind} ${name(t)} is ignored ${scope(c)}: host ${c.host} is also routed by ${winners}. ${c.reason}`,
            `route ${c.host} with one API family: move these rules into ${winners}, or delete ${t.origin.kind} ${name(t)}`,
          );
        }
        continue;
      }
      const all = [...c.winners, ...c.losers];
      const istio = all.every((t) => t.origin.kind === 'VirtualService') && c.gateway === 'mesh';
      if (istio) {
        const names = all.map(name).join(', ');
        const winner = c.winners[0]!;
        for (const t of all) {
          const wins = originKey(t) === originKey(winner);
          ctx.report(
            'WFT0109',
            whereHost(ctx, t, c.host),
            `the VirtualServices ${names} bound to the mesh define the same host ${c.host} ${scope(c)}; they are not merged and only ${name(winner)} (the oldest) applies${wins ? '' : `, so ${name(t)} is ignored`}`,
            'merge the VirtualServices into one resource, give them different hosts, or limit them with exportTo',
          );
        }
        continue;
      }
      for (const t of c.losers) {
        ctx.report(
          'WFT1002',
          whereHost(ctx, t, c.host),
          `${t.origin.kind} ${name(t)} is ignored ${scope(c)}: ${c.reason}`,
          `keep one ${t.origin.kind} per host: merge the backends into ${c.winners.map(name).join(', ')}, or delete this one`,
        );
      }
    }
  },
};
