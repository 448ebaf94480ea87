/**
 * Unreachable rules (WFT0130) and ineffective matches (WFT0131), as istioctl's VirtualService checks, over the
 * model's route tables:
 * - first-match families (Istio, SMI, Weft): a rule is unreachable when every one of its matches is covered by
 *   a match of an earlier rule (a rule without matches covers everything); a covered match alone is ineffective;
 * - Gateway API orders matches by specificity, so only an identical match in an earlier rule (same specificity,
 *   earlier in list order) shadows a later one.
 */
import type { HttpRoute, L4Match, RouteMatch, RouteTable } from '../../api/model.js';
import { tableGateways } from '../../api/precedence.js';
import type { AnalysisContext } from '../context.js';
import { getAt, parsePath } from '../locate.js';
import { matchAll, matchCovers, matchKey } from '../match.js';
import type { Analyzer } from '../types.js';

function ruleName(r: { name?: string }, i: number): string {
  return r.name ? `"${r.name}"` : `#${i}`;
}

function matchName(m: { name?: string }, k: number): string {
  return m.name ? `"${m.name}"` : `#${k}`;
}

function matchPath(ctx: AnalysisContext, r: HttpRoute, k: number): Array<string | number> {
  const res = ctx.resourceOf(r.origin);
  if (!res) return [];
  const base = parsePath(r.origin.path);
  for (const key of ['match', 'matches']) if (getAt(res.body, [...base, key, k]) !== undefined) return [key, k];
  return [];
}

function describeMatch(m: RouteMatch): string {
  const parts: string[] = [];
  const sm = (s: RouteMatch['path']) => (s ? ('exact' in s ? `exact ${s.exact}` : 'prefix' in s ? `prefix ${s.prefix}` : `regex ${s.regex}`) : '');
  if (m.path) parts.push(`uri ${sm(m.path)}`);
  if (m.method) parts.push(`method ${sm(m.method)}`);
  if (m.authority) parts.push(`authority ${sm(m.authority)}`);
  for (const h of m.headers) parts.push(`header ${h.name}${h.invert ? ' (without)' : ''}${h.match ? ` ${sm(h.match)}` : ''}`);
  for (const q of m.queryParams) parts.push(`query ${q.name}${q.match ? ` ${sm(q.match)}` : ''}`);
  if (m.port !== undefined) parts.push(`port ${m.port}`);
  if (m.sourceLabels) parts.push(`sourceLabels ${Object.entries(m.sourceLabels).map(([k, v]) => `${k}=${v}`).join(',')}`);
  if (m.sourceNamespace) parts.push(`sourceNamespace ${m.sourceNamespace}`);
  return parts.length ? parts.join(', ') : 'every request';
}

function analyzeFirstMatch(ctx: AnalysisContext, t: RouteTable): void {
  const gws = tableGateways(t);
  const seen: Array<{ m: RouteMatch; rule: number; catchAll: boolean }> = [];
  t.http.forEach((r, i) => {
    const matches = r.matches.length ? r.matches : [matchAll()];
    const catchAll = r.matches.length === 0;
    const covered: Array<{ k: number; by: { rule: number; catchAll: boolean }; exact: boolean }> = [];
    matches.forEach((m, k) => {
      const by = seen.find((s) => matchCovers(s.m, m, gws));
      if (by) covered.push({ k, by, exact: matchKey(by.m) === matchKey(m) });
    });
    if (covered.length === matches.length && matches.length > 0) {
      const first = covered[0]!.by;
      const reason = catchAll
        ? first.catchAll
          ? `only the last rule can have no matches; rule ${ruleName(t.http[first.rule]!, first.rule)} before it already matches every request`
          : `earlier rules cover every request it would take`
        : covered.every((c) => c.by.catchAll)
          ? `rule ${ruleName(t.http[first.rule]!, first.rule)} before it has no matches and takes every request`
          : `all its matches are used by prior rules (${[...new Set(covered.map((c) => ruleName(t.http[c.by.rule]!, c.by.rule)))].join(', ')})`;
      ctx.report(
        'WFT0130',
        ctx.whereOf(r.origin),
        `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} rule ${ruleName(r, i)} is never used (${reason})`,
        'rules are evaluated in order and the first match wins: put specific rules before broad ones, keep a rule without matches last, or remove the dead rule',
      );
    } else {
      for (const c of covered) {
        const m = matches[c.k]!;
        ctx.report(
          'WFT0131',
          ctx.whereOf(r.origin, matchPath(ctx, r, c.k)),
          `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} rule ${ruleName(r, i)} match ${matchName(m, c.k)} (${describeMatch(m)}) is not used (${c.exact ? 'duplicate' : 'overlapping'} match in rule ${ruleName(t.http[c.by.rule]!, c.by.rule)})`,
          c.exact ? 'remove the duplicate match' : 'move the narrower match into an earlier rule, or remove it',
        );
      }
    }
    matches.forEach((m) => seen.push({ m, rule: i, catchAll }));
  });
  analyzeL4(ctx, t, 'tcp', t.tcp);
  analyzeL4(ctx, t, 'tls', t.tls);
}

function analyzeL4(ctx: AnalysisContext, t: RouteTable, kind: 'tcp' | 'tls', routes: Array<{ matches: L4Match[]; origin: RouteTable['origin'] }>): void {
  const seen = new Map<string, number>();
  let catchAllAt = -1;
  routes.forEach((r, i) => {
    if (r.matches.length === 0) {
      if (catchAllAt >= 0) {
        ctx.report('WFT0130', ctx.whereOf(r.origin), `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} ${kind} rule #${i} is never used (only the last rule can have no matches; rule #${catchAllAt} before it already matches every connection)`, 'remove the extra rule without matches or give it match conditions');
      }
      catchAllAt = i;
      return;
    }
    if (catchAllAt >= 0) {
      ctx.report('WFT0130', ctx.whereOf(r.origin), `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} ${kind} rule #${i} is never used (rule #${catchAllAt} before it has no matches and takes every connection)`, 'move the rule without matches to the end');
      return;
    }
    const dups: Array<{ k: number; prev: number }> = [];
    r.matches.forEach((m, k) => {
      const prev = seen.get(matchKey(m));
      if (prev !== undefined) dups.push({ k, prev });
    });
    r.matches.forEach((m) => {
      if (!seen.has(matchKey(m))) seen.set(matchKey(m), i);
    });
    if (dups.length === r.matches.length) {
      ctx.report('WFT0130', ctx.whereOf(r.origin), `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} ${kind} rule #${i} is never used (all matches used by prior rules)`, 'remove the rule or change its matches');
      return;
    }
    for (const { k, prev } of dups) {
      ctx.report('WFT0131', ctx.whereOf(r.origin, ['match', k]), `${t.origin.kind} ${t.origin.namespace}/${t.origin.name} ${kind} rule #${i} match #${k} is not used (duplicate match in rule #${prev})`, 'remove the duplicate match');
    }
  });
}

/**
 * Gateway API: matches are ordered by specificity, then route age, then rule order, so only an identical match
 * of higher precedence shadows another. The translator may expand one written match into several model entries
 * (a path prefix becomes an exact and a prefix match); entries with the same origin are one written match.
 */
function analyzeSpecificity(ctx: AnalysisContext, t: RouteTable): void {
  interface Unit {
    key: string;
    origin: HttpRoute['origin'];
    entries: RouteMatch[];
  }
  const units = new Map<string, Unit>();
  for (const r of t.http) {
    const key = `${r.origin.kind}/${r.origin.namespace}/${r.origin.name}#${r.origin.path ?? ''}`;
    const u = units.get(key) ?? { key, origin: r.origin, entries: [] };
    u.entries.push(...(r.matches.length ? r.matches : [matchAll()]));
    units.set(key, u);
  }
  const seen = new Map<string, Unit>();
  const shadowed: Array<{ u: Unit; by: Unit }> = [];
  for (const u of units.values()) {
    const keys = u.entries.map((m) => matchKey({ ...m, gateways: m.gateways.length ? m.gateways : tableGateways(t) }));
    const by = keys.map((k) => seen.get(k));
    if (by.every((x): x is Unit => x !== undefined && x !== u)) shadowed.push({ u, by: by[0]! });
    for (const k of keys) if (!seen.has(k)) seen.set(k, u);
  }
  if (!shadowed.length) return;
  // Group the written matches by rule: a rule all of whose matches are shadowed is unreachable.
  const ruleOf = (u: Unit) => {
    const m = /^(.*rules\[\d+\])/.exec(u.origin.path ?? '');
    return `${u.origin.kind}/${u.origin.namespace}/${u.origin.name}#${m ? m[1] : u.origin.path ?? ''}`;
  };
  const label = (o: HttpRoute['origin']) => {
    const m = /rules\[(\d+)\](?:\.matches\[(\d+)\])?/.exec(o.path ?? '');
    return m ? `rule #${m[1]}${m[2] !== undefined ? ` match #${m[2]}` : ''}` : (o.path ?? 'rule');
  };
  const byRule = new Map<string, Unit[]>();
  for (const u of units.values()) {
    const k = ruleOf(u);
    byRule.set(k, [...(byRule.get(k) ?? []), u]);
  }
  const reportedRules = new Set<string>();
  for (const { u, by } of shadowed) {
    const rk = ruleOf(u);
    const all = byRule.get(rk)!;
    const who = `${u.origin.kind} ${u.origin.namespace}/${u.origin.name}`;
    const other = `${by.origin.namespace}/${by.origin.name}` === `${u.origin.namespace}/${u.origin.name}` ? label(by.origin) : `${label(by.origin)} of ${by.origin.kind} ${by.origin.namespace}/${by.origin.name}`;
    if (all.every((x) => shadowed.some((s) => s.u === x))) {
      if (reportedRules.has(rk)) continue;
      reportedRules.add(rk);
      const rulePath = /^(.*rules\[\d+\])/.exec(u.origin.path ?? '')?.[1];
      ctx.report(
        'WFT0130',
        rulePath ? ctx.whereAt(u.origin, parsePath(rulePath)) : ctx.whereOf(u.origin),
        `${who} ${label(u.origin).replace(/ match #\d+$/, '')} is never used (its matches are identical to matches of ${other}, which take precedence)`,
        'equal matches go to the oldest route and then the first rule: merge the rules or make the later one more specific',
      );
      continue;
    }
    ctx.report(
      'WFT0131',
      ctx.whereOf(u.origin),
      `${who} ${label(u.origin)} (${describeMatch(u.entries[0]!)}) is not used (duplicate match in ${other})`,
      'remove the duplicate match or make it more specific',
    );
  }
}

export const unreachableRuleAnalyzer: Analyzer = {
  name: 'route.unreachable-rules',
  description: 'Finds routing rules that can never be used and matches that never take effect',
  codes: ['WFT0130', 'WFT0131'],
  analyze(ctx) {
    for (const t of ctx.model.routes) {
      if (t.origin.family === 'gateway-api') analyzeSpecificity(ctx, t);
      else analyzeFirstMatch(ctx, t);
    }
  },
};

export const ruleAnalyzers: Analyzer[] = [unreachableRuleAnalyzer];
