/**
 * Route matches: which model matches apply to a proxy (port, source labels/namespace, gateways) and their Envoy
 * form, as Istio's `translateRoute` / `TranslateRouteMatch` build them.
 */
import { create } from '@bufbuild/protobuf';
import type { HeaderMatch, Labels, RouteMatch as ModelMatch, QueryParamMatch, StringMatch } from '../../../api/model.js';
import {
  HeaderMatcherSchema,
  QueryParameterMatcherSchema,
  RouteMatchSchema,
} from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { HeaderMatcher, QueryParameterMatcher, RouteMatch, Route } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RegexMatcherSchema } from '../../../xds/gen/envoy/type/matcher/v3/regex_pb.js';
import { stringMatcher } from './util.js';

/** The gateway name sidecars answer to. */
export const MESH_GATEWAY = 'mesh';

/** Who the routes are generated for. */
export interface RouteClient {
  namespace: string;
  labels: Labels;
  /** The gateway (`namespace/name`) routes are generated for; undefined = `mesh` (sidecars). */
  gateway?: string;
}

function subsetOf(want: Labels | undefined, have: Labels): boolean {
  if (!want) return true;
  for (const [k, v] of Object.entries(want)) if (have[k] !== v) return false;
  return true;
}

/**
 * Whether a match applies to this client (Istio `sourceMatchHTTP`): a match that names gateways applies when
 * the client's gateway (`mesh` for sidecars) is among them (its source labels are then not consulted); otherwise its sourceLabels must be a subset
 * of the client's labels and its sourceNamespace, when set, the client's namespace.
 */
export function matchAppliesToClient(m: Pick<ModelMatch, 'gateways' | 'sourceLabels' | 'sourceNamespace'>, client: RouteClient): boolean {
  if (m.gateways.length) return m.gateways.includes(client.gateway ?? MESH_GATEWAY);
  if (!subsetOf(m.sourceLabels, client.labels)) return false;
  return !m.sourceNamespace || m.sourceNamespace === client.namespace;
}

/** Whether a match applies on this destination port (a match without a port applies on every port). */
export function matchAppliesToPort(m: Pick<ModelMatch, 'port'>, port: number): boolean {
  return m.port === undefined || m.port === port;
}

function headerMatcher(name: string, match: StringMatch | undefined, present: boolean | undefined, invert: boolean): HeaderMatcher {
  const h = create(HeaderMatcherSchema, { name, invertMatch: invert });
  if (match) {
    h.headerMatchSpecifier = { case: 'stringMatch', value: stringMatcher(match) };
    // Istio: a negated value match also holds when the header is absent.
    if (invert) h.treatMissingHeaderAsEmpty = true;
  } else {
    h.headerMatchSpecifier = { case: 'presentMatch', value: present ?? true };
  }
  return h;
}

function headerOf(h: HeaderMatch): HeaderMatcher {
  return headerMatcher(h.name, h.match, h.present, h.invert === true);
}

function queryOf(q: QueryParamMatch): QueryParameterMatcher {
  const out = create(QueryParameterMatcherSchema, { name: q.name });
  if (q.match) out.queryParameterMatchSpecifier = { case: 'stringMatch', value: stringMatcher(q.match) };
  else out.queryParameterMatchSpecifier = { case: 'presentMatch', value: q.present ?? true };
  return out;
}

/**
 * The Envoy match for a model match (undefined = match everything: prefix `/`). Header matchers are sorted by
 * name, then `:method`, `:authority` and `:scheme` follow, as Istio orders them.
 */
export function routeMatchOf(m: ModelMatch | undefined): RouteMatch {
  const out = create(RouteMatchSchema, { pathSpecifier: { case: 'prefix', value: '/' } });
  if (!m) return out;
  out.headers = [...m.headers].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).map(headerOf);
  if (m.path) {
    if ('exact' in m.path) out.pathSpecifier = { case: 'path', value: m.path.exact };
    else if ('prefix' in m.path) out.pathSpecifier = { case: 'prefix', value: m.path.prefix };
    else out.pathSpecifier = { case: 'safeRegex', value: create(RegexMatcherSchema, { regex: m.path.regex }) };
  }
  out.caseSensitive = !m.ignoreCase;
  if (m.method) out.headers.push(headerMatcher(':method', m.method, undefined, false));
  if (m.authority) out.headers.push(headerMatcher(':authority', m.authority, undefined, false));
  if (m.scheme) out.headers.push(headerMatcher(':scheme', m.scheme, undefined, false));
  out.queryParameters = m.queryParams.map(queryOf);
  return out;
}

/** Istio `IsCatchAllRoute`: prefix `/` (or regex `.*`) with no header, query or metadata condition. */
export function isCatchAll(r: Pick<Route, 'match'>): boolean {
  const m = r.match;
  if (!m) return true;
  let all = false;
  if (m.pathSpecifier.case === 'prefix') all = m.pathSpecifier.value === '/';
  else if (m.pathSpecifier.case === 'pathSeparatedPrefix') all = m.pathSpecifier.value === '/';
  else if (m.pathSpecifier.case === 'safeRegex') all = m.pathSpecifier.value.regex === '.*';
  return all && m.headers.length === 0 && m.queryParameters.length === 0 && m.dynamicMetadata.length === 0;
}
