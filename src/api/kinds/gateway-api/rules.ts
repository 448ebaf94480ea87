/**
 * Translation of HTTPRoute and GRPCRoute rules into model HTTP routes, independent of the parent they attach to.
 *
 * Every match of a rule becomes its own model route (with the rule's action), so that routes can be ordered by
 * Gateway API precedence across all the Routes attached to one parent: precedence is defined per match, not per
 * rule. A PathPrefix match on `/foo` matches whole path elements (`/foo`, `/foo/`, `/foo/bar`, not `/foobar`); the
 * model's string prefix does not, so it becomes two adjacent model routes: exact `/foo`, then prefix `/foo/`.
 */
import type {
  CorsPolicy,
  Destination,
  HeaderMatch,
  HeaderOps,
  HttpRoute,
  MirrorPolicy,
  QueryParamMatch,
  Redirect,
  RetryPolicy,
  Rewrite,
  RouteAction,
  RouteMatch,
  StringMatch,
} from '../../model.js';
import { emptyHeaderOps } from '../../model.js';
import { gatewayDurationMs } from '../../schema/common.js';
import type { JsonPath } from '../../source.js';
import type { Resource, TranslateContext } from '../kind.js';
import { reduceWeights } from '../weights.js';
import type {
  CorsFilter,
  GrpcBackendRef,
  GrpcRouteFilter,
  GrpcRouteMatch,
  GrpcRouteRule,
  GrpcRouteSpec,
  HeaderFilter,
  HttpBackendRef,
  HttpRouteFilter,
  HttpRouteMatch,
  HttpRouteRule,
  HttpRouteSpec,
  MirrorFilter,
  PathModifier,
} from './schema.js';

export type RouteKind = 'HTTPRoute' | 'GRPCRoute';

/** A validated route resource with what precedence needs to know about it. */
export interface RouteRes {
  res: Resource<HttpRouteSpec> | Resource<GrpcRouteSpec>;
  kind: RouteKind;
  /** metadata.creationTimestamp in ms; undefined when absent or unparsable. */
  created?: number;
  /** `namespace/name`. */
  id: string;
}

/** One model route and where it sits in Gateway API precedence. */
export interface Entry {
  route: RouteRes;
  http: HttpRoute;
  /** Match specificity, compared element by element; lower sorts first. */
  key: number[];
  ruleIndex: number;
  matchIndex: number;
  part: number;
}

/** Orders routes oldest first (those with a creationTimestamp before those without), then by `namespace/name`. */
export function compareRoutes(a: RouteRes, b: RouteRes): number {
  const ca = a.created ?? Number.POSITIVE_INFINITY;
  const cb = b.created ?? Number.POSITIVE_INFINITY;
  if (ca !== cb) return ca < cb ? -1 : 1;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Gateway API precedence: match specificity, then the older Route, then `namespace/name`, then list order. */
export function compareEntries(a: Entry, b: Entry): number {
  const n = Math.max(a.key.length, b.key.length);
  for (let i = 0; i < n; i++) {
    const d = (a.key[i] ?? 0) - (b.key[i] ?? 0);
    if (d !== 0) return d;
  }
  const r = compareRoutes(a.route, b.route);
  if (r !== 0) return r;
  return a.ruleIndex - b.ruleIndex || a.matchIndex - b.matchIndex || a.part - b.part;
}

const MULTICLUSTER_GROUP = 'multicluster.x-k8s.io';

/** The host a Service or ServiceImport reference stands for, or undefined for kinds Weft cannot route to. */
export function backendHost(ref: { group: string; kind: string; name: string; namespace?: string | undefined }, routeNs: string, ctx: TranslateContext): string | undefined {
  const ns = ref.namespace ?? routeNs;
  if ((ref.group === '' || ref.group === 'core') && ref.kind === 'Service') return ctx.fqdn(ref.name, ns);
  if (ref.group === MULTICLUSTER_GROUP && ref.kind === 'ServiceImport') return `${ref.name}.${ns}.svc.clusterset.local`.toLowerCase();
  return undefined;
}

function headerOps(f: HeaderFilter | undefined): HeaderOps {
  const ops = emptyHeaderOps();
  for (const h of f?.set ?? []) ops.set[h.name] = h.value;
  for (const h of f?.add ?? []) ops.add[h.name] = h.value;
  ops.remove.push(...(f?.remove ?? []));
  return ops;
}

function stringMatch(type: 'Exact' | 'RegularExpression', value: string): StringMatch {
  return type === 'Exact' ? { exact: value } : { regex: value };
}

function escapeRegex(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** A CORS origin as a string match: `*` alone allows any origin; a `*` in the host is greedy to the left. */
function originMatch(origin: string): StringMatch {
  if (origin === '*') return { regex: '.*' };
  if (!origin.includes('*')) return { exact: origin };
  return { regex: origin.split('*').map(escapeRegex).join('.*') };
}

function corsPolicy(c: CorsFilter): CorsPolicy {
  const p: CorsPolicy = {
    allowOrigins: (c.allowOrigins ?? []).map(originMatch),
    allowMethods: [...(c.allowMethods ?? [])],
    allowHeaders: [...(c.allowHeaders ?? [])],
    exposeHeaders: [...(c.exposeHeaders ?? [])],
    maxAgeSeconds: c.maxAge,
  };
  if (c.allowCredentials !== undefined) p.allowCredentials = c.allowCredentials;
  return p;
}

/** Path replacement for one part of an expanded PathPrefix match. */
interface PathPart {
  path?: StringMatch;
  /** For the parts of a PathPrefix match other than `/`: which half this is. */
  half?: 'exact' | 'prefix';
}

function trimTrailingSlashes(p: string): string {
  const t = p.replace(/\/+$/, '');
  return t === '' ? '/' : t;
}

/** The parts a path match becomes, and its precedence rank and length. */
function pathParts(path: HttpRouteMatch['path']): { parts: PathPart[]; rank: number; length: number } {
  switch (path.type) {
    case 'Exact':
      return { parts: [{ path: { exact: path.value } }], rank: 0, length: path.value.length };
    case 'RegularExpression':
      return { parts: [{ path: { regex: path.value } }], rank: 2, length: path.value.length };
    case 'PathPrefix': {
      const p = trimTrailingSlashes(path.value);
      if (p === '/') return { parts: [{}], rank: 1, length: 1 };
      return { parts: [{ path: { exact: p }, half: 'exact' }, { path: { prefix: `${p}/` }, half: 'prefix' }], rank: 1, length: p.length };
    }
  }
}

/** ReplacePrefixMatch, applied to one part: the exact half gets a full path, the prefix half a prefix. */
function replacePrefix(replacement: string, half: PathPart['half']): { fullPath: string } | { prefix: string } {
  if (half === 'exact') return { fullPath: trimTrailingSlashes(replacement) };
  return { prefix: replacement === '' ? '/' : replacement.endsWith('/') ? replacement : `${replacement}/` };
}

function rewriteFor(mod: PathModifier | undefined, hostname: string | undefined, half: PathPart['half']): Rewrite | undefined {
  const r: Rewrite = {};
  if (hostname !== undefined) r.authority = hostname;
  if (mod?.type === 'ReplaceFullPath' && mod.replaceFullPath !== undefined) r.fullPath = mod.replaceFullPath;
  if (mod?.type === 'ReplacePrefixMatch' && mod.replacePrefixMatch !== undefined) Object.assign(r, replacePrefix(mod.replacePrefixMatch, half));
  return Object.keys(r).length ? r : undefined;
}

type RedirectFilter = NonNullable<HttpRouteFilter['requestRedirect']>;

function redirectFor(f: RedirectFilter, half: PathPart['half']): Redirect {
  const r: Redirect = { statusCode: f.statusCode };
  if (f.scheme !== undefined) r.scheme = f.scheme;
  if (f.hostname !== undefined) r.host = f.hostname;
  // Without a port, a redirect with a scheme goes to the scheme's well-known port (http 80, https 443, left out
  // of the Location header); without scheme and port, to the port the request came in on (the listener's).
  if (f.port !== undefined) r.port = f.port;
  else r.derivePort = f.scheme !== undefined ? 'FROM_PROTOCOL_DEFAULT' : 'FROM_REQUEST_PORT';
  if (f.path?.type === 'ReplaceFullPath' && f.path.replaceFullPath !== undefined) r.path = f.path.replaceFullPath;
  if (f.path?.type === 'ReplacePrefixMatch' && f.path.replacePrefixMatch !== undefined) {
    const p = replacePrefix(f.path.replacePrefixMatch, half);
    if ('fullPath' in p) r.path = p.fullPath;
    else r.prefixRewrite = p.prefix;
  }
  return r;
}

/** What a rule does, shared by all of its matches. */
interface RuleCommon {
  name?: string;
  /** The action when no redirect applies (a redirect depends on the match part). */
  action: RouteAction;
  redirect?: RedirectFilter;
  rewrite?: { hostname?: string; path?: PathModifier };
  mirrors: MirrorPolicy[];
  headers: { request: HeaderOps; response: HeaderOps };
  cors?: CorsPolicy;
  timeoutMs?: number;
  retries?: RetryPolicy;
}

class RuleTranslator {
  constructor(
    private readonly ctx: TranslateContext,
    private readonly rr: RouteRes,
  ) {}

  private get res(): Resource<unknown> {
    return this.rr.res as Resource<unknown>;
  }

  warn(at: JsonPath, message: string, hint: string, code = 'WFT1010', severity: 'Warning' | 'Info' = 'Warning'): void {
    this.ctx.report(this.res, { severity, code, message, hint, at });
  }

  mirror(f: MirrorFilter, at: JsonPath): MirrorPolicy | undefined {
    const host = backendHost(f.backendRef, this.rr.res.namespace, this.ctx);
    if (!host) {
      this.warn([...at, 'backendRef'], `mirror backend ${f.backendRef.group || 'core'}/${f.backendRef.kind} ${f.backendRef.name} is not a Service or ServiceImport: mirroring dropped`, 'mirror to a Service (group "") with a port');
      return undefined;
    }
    const percent = f.fraction ? (f.fraction.numerator / f.fraction.denominator) * 100 : (f.percent ?? 100);
    const m: MirrorPolicy = { host, percent };
    if (f.backendRef.port !== undefined) m.port = f.backendRef.port;
    return m;
  }

  /** Destinations of the backendRefs, or the direct response upstream prescribes when none can take traffic. */
  destinations(refs: ReadonlyArray<HttpBackendRef | GrpcBackendRef>, at: JsonPath): RouteAction {
    const grpc = this.rr.kind === 'GRPCRoute';
    // gRPC clients read HTTP 503 as UNAVAILABLE, which GRPCRoute prescribes where HTTPRoute prescribes 500.
    const failure = grpc ? 503 : 500;
    const valid: Destination[] = [];
    refs.forEach((ref, i) => {
      const p = [...at, i];
      const host = backendHost(ref, this.rr.res.namespace, this.ctx);
      if (!host) {
        this.warn(p, `backendRef ${ref.group || 'core'}/${ref.kind} ${ref.name} is not a Service or ServiceImport: the backend is invalid`, `upstream answers ${failure} for the share of traffic sent to an invalid backend; Weft drops it from the split. Use a Service (group "") with a port`, 'WFT0101');
        return;
      }
      let request: HeaderOps | undefined;
      let response: HeaderOps | undefined;
      let invalid = false;
      (ref.filters ?? []).forEach((f: HttpRouteFilter | GrpcRouteFilter, j) => {
        const fp = [...p, 'filters', j];
        if (f.type === 'RequestHeaderModifier') request = headerOps(f.requestHeaderModifier);
        else if (f.type === 'ResponseHeaderModifier') response = headerOps(f.responseHeaderModifier);
        else if (f.type === 'ExtensionRef' || f.type === 'ExternalAuth') {
          invalid = true;
          this.warn(fp, `${f.type} filters are not supported by Weft: the backend is treated as invalid`, `a filter that cannot be applied must not be skipped; upstream answers with an error for this backend's share of traffic. Remove the filter`);
        } else {
          this.warn(fp, `${f.type} filters on a backendRef are not supported by Weft (implementation-specific): ignored`, 'move the filter to the rule (rules[].filters)');
        }
      });
      if (invalid) return;
      const d: Destination = { host, weight: ref.weight };
      if (ref.port !== undefined) d.port = ref.port;
      if (request || response) d.headers = { request: request ?? emptyHeaderOps(), response: response ?? emptyHeaderOps() };
      valid.push(d);
    });
    if (!valid.length) return { kind: 'direct', status: failure };
    if (valid.every((d) => d.weight === 0)) {
      this.warn(at, `every backendRef has weight 0: no backend receives traffic`, `requests matching this rule get ${failure}; give at least one backend a weight above 0`, 'WFT0106', 'Info');
      return { kind: 'direct', status: failure };
    }
    const weights = reduceWeights(valid.map((d) => d.weight));
    valid.forEach((d, i) => (d.weight = weights[i]!));
    return { kind: 'route', destinations: valid };
  }

  retries(rule: HttpRouteRule, at: JsonPath): RetryPolicy | undefined {
    const backendMs = rule.timeouts?.backendRequest !== undefined ? gatewayDurationMs(rule.timeouts.backendRequest) : undefined;
    if (!rule.retry && !backendMs) return undefined;
    const def = this.ctx.model.mesh.defaultRetries;
    let p: RetryPolicy;
    if (rule.retry) {
      let attempts = rule.retry.attempts ?? def.attempts;
      if (attempts < 0) {
        this.warn([...at, 'retry', 'attempts'], `retry.attempts ${attempts} is negative: retries disabled`, 'use 0 to disable retries, or a positive number', 'WFT0106');
        attempts = 0;
      }
      const codes = [...(rule.retry.codes ?? [])];
      // Retry when the connection could not be made or the backend refused the request before processing it
      // (REFUSED_STREAM, gRPC UNAVAILABLE), and on the listed status codes.
      const retryOn = ['connect-failure', 'refused-stream', 'unavailable'];
      if (codes.length) retryOn.push('retriable-status-codes');
      p = { attempts, retryOn, retriableStatusCodes: codes };
      if (rule.retry.backoff !== undefined) p.backoff = { baseIntervalMs: gatewayDurationMs(rule.retry.backoff) };
    } else {
      p = { ...def, retryOn: [...def.retryOn], retriableStatusCodes: [...def.retriableStatusCodes] };
      if (def.backoff) p.backoff = { ...def.backoff };
    }
    if (backendMs) p.perTryTimeoutMs = backendMs;
    return p;
  }

  common(rule: HttpRouteRule | GrpcRouteRule, at: JsonPath): RuleCommon {
    const c: RuleCommon = { action: { kind: 'direct', status: 404 }, mirrors: [], headers: { request: emptyHeaderOps(), response: emptyHeaderOps() } };
    if (rule.name !== undefined) c.name = rule.name;
    let unsupported = false;
    const filters: Array<HttpRouteFilter | GrpcRouteFilter> = rule.filters ?? [];
    filters.forEach((f, i) => {
      const fp = [...at, 'filters', i];
      switch (f.type) {
        case 'RequestHeaderModifier':
          c.headers.request = headerOps(f.requestHeaderModifier);
          break;
        case 'ResponseHeaderModifier':
          c.headers.response = headerOps(f.responseHeaderModifier);
          break;
        case 'RequestMirror': {
          const m = f.requestMirror && this.mirror(f.requestMirror, [...fp, 'requestMirror']);
          if (m) c.mirrors.push(m);
          break;
        }
        case 'RequestRedirect':
          c.redirect = (f as HttpRouteFilter).requestRedirect!;
          break;
        case 'URLRewrite': {
          const u = (f as HttpRouteFilter).urlRewrite!;
          c.rewrite = {};
          if (u.hostname !== undefined) c.rewrite.hostname = u.hostname;
          if (u.path !== undefined) c.rewrite.path = u.path;
          break;
        }
        case 'CORS':
          c.cors = corsPolicy((f as HttpRouteFilter).cors!);
          break;
        case 'ExtensionRef':
        case 'ExternalAuth':
          unsupported = true;
          this.warn(fp, `${f.type} filters are not supported by Weft: requests matching this rule get HTTP 500`, 'a filter that cannot be applied must not be skipped (Gateway API); remove the filter or use a Weft/Istio policy instead');
          break;
      }
    });
    if ('sessionPersistence' in rule && rule.sessionPersistence) {
      this.warn([...at, 'sessionPersistence'], 'sessionPersistence is accepted but not applied by Weft', 'use a DestinationRule consistentHash (httpCookie) load balancer for session affinity', 'WFT1010', 'Info');
    }
    if (unsupported) c.action = { kind: 'direct', status: 500 };
    else if (c.redirect) c.action = { kind: 'redirect', redirect: redirectFor(c.redirect, undefined) };
    else if (rule.backendRefs?.length) c.action = this.destinations(rule.backendRefs, [...at, 'backendRefs']);
    // else: no backendRefs and no filter that answers the request: 404.
    if ('timeouts' in rule && rule.timeouts?.request !== undefined) c.timeoutMs = gatewayDurationMs(rule.timeouts.request);
    if (this.rr.kind === 'HTTPRoute') {
      const r = this.retries(rule as HttpRouteRule, at);
      if (r) c.retries = r;
    }
    return c;
  }

  /** A model route for one match part, with the rule's shared pieces. */
  build(c: RuleCommon, match: RouteMatch | undefined, half: PathPart['half'], at: JsonPath): HttpRoute {
    const h: HttpRoute = {
      matches: match ? [match] : [],
      action: c.redirect && c.action.kind === 'redirect' ? { kind: 'redirect', redirect: redirectFor(c.redirect, half) } : structuredClone(c.action),
      mirrors: structuredClone(c.mirrors),
      headers: structuredClone(c.headers),
      origin: this.ctx.origin(this.res, at),
    };
    if (c.name !== undefined) h.name = c.name;
    if (c.rewrite && c.action.kind === 'route') {
      const r = rewriteFor(c.rewrite.path, c.rewrite.hostname, half);
      if (r) h.rewrite = r;
    }
    if (c.timeoutMs !== undefined) h.timeoutMs = c.timeoutMs;
    if (c.retries) h.retries = structuredClone(c.retries);
    if (c.cors) h.cors = structuredClone(c.cors);
    return h;
  }

  headerMatches(list: ReadonlyArray<{ type: 'Exact' | 'RegularExpression'; name: string; value: string }> | undefined, at: JsonPath): HeaderMatch[] {
    const out: HeaderMatch[] = [];
    const seen = new Set<string>();
    (list ?? []).forEach((h, i) => {
      const k = h.name.toLowerCase();
      if (seen.has(k)) {
        this.warn([...at, i, 'name'], `header match "${h.name}" repeats an earlier header name (header names are case-insensitive): ignored`, 'only the first entry for a header name is considered; remove the duplicate', 'WFT0106', 'Info');
        return;
      }
      seen.add(k);
      out.push({ name: h.name, match: stringMatch(h.type, h.value) });
    });
    return out;
  }

  httpRule(rule: HttpRouteRule, i: number): Entry[] {
    const at: JsonPath = ['spec', 'rules', i];
    const c = this.common(rule, at);
    const matches = rule.matches.length ? rule.matches : [{ path: { type: 'PathPrefix' as const, value: '/' } }];
    const entries: Entry[] = [];
    matches.forEach((m: HttpRouteMatch, j) => {
      const mp: JsonPath = rule.matches.length ? [...at, 'matches', j] : at;
      const { parts, rank, length } = pathParts(m.path);
      const headers = this.headerMatches(m.headers, [...mp, 'headers']);
      const queryParams: QueryParamMatch[] = (m.queryParams ?? []).map((q) => ({ name: q.name, match: stringMatch(q.type, q.value) }));
      const key = [rank, -length, m.method ? 0 : 1, -headers.length, -queryParams.length];
      parts.forEach((part, k) => {
        const rm: RouteMatch = { headers, queryParams, gateways: [] };
        if (part.path) rm.path = part.path;
        if (m.method) rm.method = { exact: m.method };
        const trivial = !rm.path && !rm.method && !headers.length && !queryParams.length;
        entries.push({ route: this.rr, http: this.build(c, trivial ? undefined : structuredClone(rm), part.half, mp), key, ruleIndex: i, matchIndex: j, part: k });
      });
    });
    return entries;
  }

  /** The request path a gRPC method match stands for (GEP-1016). */
  grpcPath(m: GrpcRouteMatch['method']): StringMatch | undefined {
    if (!m) return undefined;
    const { service: s, method: me } = m;
    if (m.type === 'Exact') {
      if (s && me) return { exact: `/${s}/${me}` };
      if (s) return { prefix: `/${s}/` };
      return { regex: `/.+/${escapeRegex(me!)}` };
    }
    if (s && me) return { regex: `/${s}/${me}` };
    if (s) return { regex: `/${s}/.+` };
    if (me) return { regex: `/.+/${me}` };
    return undefined;
  }

  grpcRule(rule: GrpcRouteRule, i: number): Entry[] {
    const at: JsonPath = ['spec', 'rules', i];
    const c = this.common(rule, at);
    const matches = rule.matches?.length ? rule.matches : [undefined];
    return matches.map((m, j) => {
      const mp: JsonPath = m ? [...at, 'matches', j] : at;
      const headers = this.headerMatches(m?.headers, [...mp, 'headers']);
      const path = this.grpcPath(m?.method);
      const rm: RouteMatch = { headers, queryParams: [], gateways: [] };
      if (path) rm.path = path;
      const trivial = !path && !headers.length;
      const key = [-(m?.method?.service?.length ?? 0), -(m?.method?.method?.length ?? 0), -headers.length];
      return { route: this.rr, http: this.build(c, trivial ? undefined : rm, undefined, mp), key, ruleIndex: i, matchIndex: j, part: 0 };
    });
  }
}

/** All model routes of one Route resource, in list order. Problems are reported once, here. */
export function translateRules(rr: RouteRes, ctx: TranslateContext): Entry[] {
  const t = new RuleTranslator(ctx, rr);
  if (rr.kind === 'HTTPRoute') return (rr.res.spec as HttpRouteSpec).rules.flatMap((r, i) => t.httpRule(r, i));
  return ((rr.res.spec as GrpcRouteSpec).rules ?? []).flatMap((r, i) => t.grpcRule(r, i));
}
