/**
 * Match coverage: whether every request one route match accepts is also accepted by another. Used to find
 * rules that can never be reached and matches that never take effect (IST0130/IST0131), generalizing Istio's
 * duplicate-match and prefix-overlap checks: a later match is shadowed when an earlier one asks for a subset of
 * its conditions, each no stricter.
 */
import type { HeaderMatch, Labels, QueryParamMatch, RouteMatch, StringMatch } from '../api/model.js';

/** A match with no conditions: what a rule without `match` means. */
export function matchAll(): RouteMatch {
  return { headers: [], queryParams: [], gateways: [] };
}

/** Whether every string `b` accepts, `a` accepts too (`a` undefined accepts everything). */
export function stringCovers(a: StringMatch | undefined, b: StringMatch | undefined, aIgnoreCase = false, bIgnoreCase = false): boolean {
  if (!a) return true;
  if (!b) return false;
  if (bIgnoreCase && !aIgnoreCase) return false;
  const norm = (s: string) => (aIgnoreCase ? s.toLowerCase() : s);
  if ('exact' in a) return 'exact' in b && norm(b.exact) === norm(a.exact);
  if ('prefix' in a) {
    const p = norm(a.prefix);
    return ('exact' in b && norm(b.exact).startsWith(p)) || ('prefix' in b && norm(b.prefix).startsWith(p));
  }
  return 'regex' in b && b.regex === a.regex && aIgnoreCase === bIgnoreCase;
}

function headerCovers(a: HeaderMatch, b: HeaderMatch): boolean {
  if (a.name.toLowerCase() !== b.name.toLowerCase()) return false;
  if (a.invert || b.invert) return JSON.stringify({ ...a, name: '' }) === JSON.stringify({ ...b, name: '' });
  if (!a.match) return true; // presence (or any value) is implied by any condition on the same header
  return stringCovers(a.match, b.match);
}

function queryCovers(a: QueryParamMatch, b: QueryParamMatch): boolean {
  if (a.name !== b.name) return false;
  if (!a.match) return true;
  return stringCovers(a.match, b.match);
}

function labelsCover(a: Labels | undefined, b: Labels | undefined): boolean {
  if (!a) return true;
  if (!b) return false;
  return Object.entries(a).every(([k, v]) => b[k] === v);
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const s = new Set(a);
  return b.every((x) => s.has(x));
}

/**
 * Whether match `a` accepts every request match `b` accepts. `tableGateways` is what an empty `gateways` list
 * means (the route table's gateways).
 */
export function matchCovers(a: RouteMatch, b: RouteMatch, tableGateways: readonly string[]): boolean {
  const ga = a.gateways.length ? a.gateways : tableGateways;
  const gb = b.gateways.length ? b.gateways : tableGateways;
  if (!sameSet(ga, gb)) return false;
  if (!stringCovers(a.path, b.path, a.ignoreCase ?? false, b.ignoreCase ?? false)) return false;
  if (!stringCovers(a.method, b.method)) return false;
  if (!stringCovers(a.authority, b.authority)) return false;
  if (!stringCovers(a.scheme, b.scheme)) return false;
  if (a.port !== undefined && a.port !== b.port) return false;
  if (a.sourceNamespace !== undefined && a.sourceNamespace !== b.sourceNamespace) return false;
  if (!labelsCover(a.sourceLabels, b.sourceLabels)) return false;
  if (!a.headers.every((ha) => b.headers.some((hb) => headerCovers(ha, hb)))) return false;
  if (!a.queryParams.every((qa) => b.queryParams.some((qb) => queryCovers(qa, qb)))) return false;
  return true;
}

/** A comparable serialization of a match's conditions (names excluded), for exact-duplicate checks. */
export function matchKey(m: unknown): string {
  if (m && typeof m === 'object' && !Array.isArray(m)) {
    const { name: _n, ...rest } = m as Record<string, unknown>;
    return stableJson(rest);
  }
  return stableJson(m);
}

function stableJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${stableJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}
