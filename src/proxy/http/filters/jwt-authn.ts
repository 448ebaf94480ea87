/**
 * The JWT authentication filter, `envoy.filters.http.jwt_authn` (envoy.extensions.filters.http.jwt_authn.v3.
 * JwtAuthentication), with Envoy's semantics (source/extensions/filters/http/jwt_authn/): JWS signatures are
 * checked with `jose`, keys come from src/proxy/authz/jwks.ts.
 *
 * - Which requirement applies: the first of `rules` whose match holds (prefix / path / safe_regex on the path
 *   without query), or the route's PerRouteConfig (`requirement_name` from `requirement_map`, or `disabled`);
 *   none → the request passes untouched. CORS preflights pass when bypass_cors_preflight is set.
 * - Requirements: provider_name, provider_and_audiences, requires_any (OK when one is; else the first error that is
 *   not "missing"), requires_all, allow_missing (OK when the request carries no token for the providers of the
 *   requirement), allow_missing_or_failed (always OK).
 * - Token locations per provider: from_headers (value_prefix stripped), from_params (query), from_cookies; none
 *   configured: `Authorization: Bearer <token>` and the `access_token` query parameter (Envoy's defaults).
 * - A token is checked in Envoy's order: three base64url sections (`Jwt is not in the form of
 *   Header.Payload.Signature with two dots and 3 sections`), issuer (`Jwt issuer is not configured`), exp / nbf
 *   with clock_skew_seconds (default 60: `Jwt is expired`, `Jwt not yet valid`), audiences (`Audiences in Jwt are
 *   not allowed`), the key (`Jwks doesn't have key to match kid or alg from Jwt`; a remote set is refetched once
 *   for an unknown kid) and the signature (`Jwt verification fails`). A remote JWKS that cannot be fetched is
 *   `Jwks remote fetch is failed`.
 * - Success: the token is removed from its header unless `forward`; forward_payload_header gets the base64url
 *   payload; claim_to_headers copies claims (nested with `.`) into headers; payload_in_metadata stores the payload
 *   under that key in the dynamic metadata namespace `envoy.filters.http.jwt_authn` (what Istio's istio_authn
 *   filter and RBAC metadata matchers read).
 * - Failure: 401 (403 for `Audiences in Jwt are not allowed`, as Envoy) with the status message as body,
 *   `www-authenticate: Bearer realm="http://<host><path>", error="invalid_token"` (the realm without query; no
 *   error for a missing token), and
 *   response code details `jwt_authn_access_denied{<message with spaces as _>}`.
 * Requests whose providers find no token are decided synchronously (no allocation beyond the lookups); the others
 * are held (the body is buffered meanwhile) while the keys are read and the signature checked.
 * Stats `http.<stat_prefix>.jwt_authn.`: allowed, denied, cors_preflight_bypassed, jwks_fetch_success,
 * jwks_fetch_failed. Not supported (ConfigError): filter_state_rules, jwt_cache_config, remote_jwks async_fetch /
 * retry_policy are accepted and ignored (reported once); subjects and max_lifetime are enforced.
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import type { JWTPayload, ProtectedHeaderParameters } from 'jose';
import { unpack } from '../../../xds/index.js';
import {
  JwtAuthenticationSchema,
  PerRouteConfigSchema,
  type JwtAuthentication,
  type JwtProvider,
  type JwtRequirement,
} from '../../../xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { DEFAULT_JWKS_CACHE_MS, loadJose, LocalJwks, parseJwks, remoteJwks, type JwksSource } from '../../authz/jwks.js';
import type { Counter } from '../../stats/metric.js';
import { getHeader, removeHeader, setHeader } from '../headers.js';
import type { RouteDecision } from '../router/decision.js';
import { compileStringMatcher, listHeaderFirst, type StringMatch } from '../router/match.js';
import { compileRegex, type CompileContext } from '../router/util.js';
import type { DownstreamStream } from '../server/connection.js';
import { HeldRequest } from './hold.js';
import { setMetadata } from './metadata.js';
import { CONTINUE, decodeOrFail, STOP, type FilterChainCallbacks, type FilterFactoryContext, type FilterStatus, type HttpFilter, type HttpFilterFactory } from './registry.js';

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
const JWT_TYPE = 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';
const JWT_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.jwt_authn.v3.PerRouteConfig';

/** Envoy's jwt_verify status messages (jwt_verify_lib status.cc). */
export const JwtStatus = {
  Ok: 'OK',
  Missing: 'Jwt is missing',
  BadFormat: 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections',
  UnknownIssuer: 'Jwt issuer is not configured',
  Expired: 'Jwt is expired',
  NotYetValid: 'Jwt not yet valid',
  NoExpiration: 'Jwt does not have an expiration time',
  AudienceNotAllowed: 'Audiences in Jwt are not allowed',
  KidAlgMismatch: "Jwks doesn't have key to match kid or alg from Jwt",
  VerificationFail: 'Jwt verification fails',
  JwksFetchFail: 'Jwks remote fetch is failed',
  WrongSubject: 'Jwt subject is not allowed',
  LifetimeTooLong: 'Jwt lifetime exceeds the maximum allowed',
} as const;
type Status = (typeof JwtStatus)[keyof typeof JwtStatus];

interface TokenLocation {
  kind: 'header' | 'param' | 'cookie';
  /** Lower-case header name, parameter or cookie name. */
  name: string;
  prefix: string;
}

class Provider {
  constructor(
    readonly name: string,
    readonly issuer: string,
    readonly audiences: readonly string[],
    readonly jwks: JwksSource,
    readonly forward: boolean,
    readonly locations: readonly TokenLocation[],
    readonly forwardPayloadHeader: string,
    readonly payloadInMetadata: string,
    readonly claimToHeaders: ReadonlyArray<{ header: string; claim: string[] }>,
    readonly clockSkewS: number,
    readonly requireExpiration: boolean,
    readonly subjects: StringMatch | null,
    readonly maxLifetimeS: number,
  ) {}
}

/** A compiled JwtRequirement. */
type Req =
  | { kind: 'provider'; provider: Provider; audiences: readonly string[] | null }
  | { kind: 'any' | 'all'; list: readonly Req[] }
  | { kind: 'allowMissing' | 'allowMissingOrFailed' };

interface Rule {
  prefix: string | null;
  path: string | null;
  regex: ReturnType<typeof compileRegex> | null;
  req: Req | null;
}

class JwtStats {
  constructor(
    readonly allowed: Counter | null,
    readonly denied: Counter | null,
    readonly corsBypassed: Counter | null,
  ) {}
}

function compileLocations(p: JwtProvider): TokenLocation[] {
  const out: TokenLocation[] = [];
  for (const h of p.fromHeaders) out.push({ kind: 'header', name: h.name.toLowerCase(), prefix: h.valuePrefix });
  for (const q of p.fromParams) out.push({ kind: 'param', name: q, prefix: '' });
  for (const c of p.fromCookies) out.push({ kind: 'cookie', name: c, prefix: '' });
  if (out.length === 0) out.push({ kind: 'header', name: 'authorization', prefix: 'Bearer ' }, { kind: 'param', name: 'access_token', prefix: '' });
  return out;
}

function durationS(d: { seconds: bigint; nanos: number } | undefined): number {
  return d === undefined ? 0 : Number(d.seconds) + d.nanos / 1e9;
}

function compileProvider(ctx: FilterFactoryContext, field: string, name: string, p: JwtProvider, fetched: (ok: boolean) => void): Provider {
  let jwks: JwksSource;
  const src = p.jwksSourceSpecifier;
  if (src.case === 'localJwks') {
    const ds = src.value.specifier;
    if (ds.case !== 'inlineString' && ds.case !== 'inlineBytes') ctx.compile.fail(`${field}.local_jwks`, 'only inline_string / inline_bytes are supported');
    const text = ds.case === 'inlineString' ? ds.value : Buffer.from(ds.value as Uint8Array).toString('utf8');
    try {
      jwks = new LocalJwks(parseJwks(text));
    } catch (e) {
      return ctx.compile.fail(`${field}.local_jwks`, e instanceof Error ? e.message : String(e));
    }
  } else if (src.case === 'remoteJwks') {
    const uri = src.value.httpUri;
    if (!uri || uri.uri === '') return ctx.compile.fail(`${field}.remote_jwks.http_uri.uri`, 'is required');
    let url: URL;
    try {
      url = new URL(uri.uri);
    } catch {
      return ctx.compile.fail(`${field}.remote_jwks.http_uri.uri`, `invalid URI ${JSON.stringify(uri.uri)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') ctx.compile.fail(`${field}.remote_jwks.http_uri.uri`, 'must be http or https');
    if (!uri.timeout) ctx.compile.fail(`${field}.remote_jwks.http_uri.timeout`, 'is required');
    const timeoutMs = Math.max(1, Math.round(durationS(uri.timeout) * 1000));
    const cacheMs = src.value.cacheDuration ? Math.round(durationS(src.value.cacheDuration) * 1000) : DEFAULT_JWKS_CACHE_MS;
    if (src.value.asyncFetch || src.value.retryPolicy) ctx.warn(`${field}.remote_jwks: async_fetch and retry_policy are accepted and have no effect`);
    const r = remoteJwks(uri.uri, cacheMs, timeoutMs);
    r.onFetch = fetched;
    jwks = r;
  } else return ctx.compile.fail(`${field}`, 'one of local_jwks or remote_jwks is required');
  const claimToHeaders = p.claimToHeaders.map((c, i) => {
    if (c.headerName === '') ctx.compile.fail(`${field}.claim_to_headers[${i}].header_name`, 'must not be empty');
    if (c.claimName === '') ctx.compile.fail(`${field}.claim_to_headers[${i}].claim_name`, 'must not be empty');
    return { header: c.headerName, claim: c.claimName.split('.') };
  });
  if (p.jwtCacheConfig) ctx.warn(`${field}.jwt_cache_config: accepted, tokens are not cached`);
  if (p.normalizePayloadInMetadata) ctx.compile.fail(`${field}.normalize_payload_in_metadata`, 'is not supported');
  if (p.headerInMetadata !== '' || p.failedStatusInMetadata !== '') ctx.compile.fail(`${field}.header_in_metadata`, 'header_in_metadata / failed_status_in_metadata are not supported');
  return new Provider(
    name,
    p.issuer,
    p.audiences,
    jwks,
    p.forward,
    compileLocations(p),
    p.forwardPayloadHeader,
    p.payloadInMetadata,
    claimToHeaders,
    p.clockSkewSeconds === 0 ? 60 : p.clockSkewSeconds,
    p.requireExpiration,
    p.subjects ? compileStringMatcher(ctx.compile, `${field}.subjects`, p.subjects) : null,
    durationS(p.maxLifetime),
  );
}

function compileReq(ctx: CompileContext, field: string, r: JwtRequirement, providers: ReadonlyMap<string, Provider>): Req {
  const t = r.requiresType;
  const provider = (name: string, f: string): Provider => providers.get(name) ?? ctx.fail(f, `unknown provider ${JSON.stringify(name)}`);
  switch (t.case) {
    case 'providerName':
      return { kind: 'provider', provider: provider(t.value, `${field}.provider_name`), audiences: null };
    case 'providerAndAudiences':
      return { kind: 'provider', provider: provider(t.value.providerName, `${field}.provider_and_audiences.provider_name`), audiences: t.value.audiences };
    case 'requiresAny':
    case 'requiresAll': {
      const key = t.case === 'requiresAny' ? 'requires_any' : 'requires_all';
      if (t.value.requirements.length < 2) ctx.fail(`${field}.${key}.requirements`, 'at least 2 requirements are required');
      return { kind: t.case === 'requiresAny' ? 'any' : 'all', list: t.value.requirements.map((x, i) => compileReq(ctx, `${field}.${key}.requirements[${i}]`, x, providers)) };
    }
    case 'allowMissing':
      return { kind: 'allowMissing' };
    case 'allowMissingOrFailed':
      return { kind: 'allowMissingOrFailed' };
    default:
      return ctx.fail(field, 'a requirement type is required');
  }
}

class JwtConfig {
  constructor(
    readonly providers: ReadonlyMap<string, Provider>,
    readonly rules: readonly Rule[],
    readonly requirementMap: ReadonlyMap<string, Req>,
    readonly bypassCors: boolean,
    readonly stripFailureResponse: boolean,
    readonly stats: JwtStats,
  ) {}
}

/** Per-route config: a requirement (from the map) or disabled. */
class PerRoute {
  constructor(
    readonly disabled: boolean,
    readonly requirementName: string,
  ) {}
}

/** The token found for a provider in one request ('' none), with where it was. */
interface Found {
  token: string;
  loc: TokenLocation | null;
}

function cookieValue(cookieHeader: string, name: string): string | undefined {
  for (const part of cookieHeader.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === name) return part.slice(i + 1).trim();
  }
  return undefined;
}

function queryValue(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  for (const kv of path.slice(q + 1).split('&')) {
    const i = kv.indexOf('=');
    const k = i < 0 ? kv : kv.slice(0, i);
    if (k === name) {
      try {
        return decodeURIComponent(i < 0 ? '' : kv.slice(i + 1));
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}

function extract(stream: DownstreamStream, p: Provider): Found | null {
  const head = stream.head;
  for (const loc of p.locations) {
    let v: string | undefined;
    if (loc.kind === 'header') {
      v = listHeaderFirst(head.headers, loc.name);
      if (v !== undefined && loc.prefix !== '') {
        // Envoy: the value must start with the prefix; the token is what follows it (up to a comma or space).
        const i = v.indexOf(loc.prefix);
        if (i < 0) v = undefined;
        else {
          v = v.slice(i + loc.prefix.length);
          const end = v.search(/[ ,]/);
          if (end >= 0) v = v.slice(0, end);
        }
      }
    } else if (loc.kind === 'param') {
      if (head.path.indexOf('?') >= 0) v = queryValue(head.path, loc.name);
    } else {
      const c = listHeaderFirst(head.headers, 'cookie');
      if (c !== undefined) v = cookieValue(c, loc.name);
    }
    if (v !== undefined && v !== '') return { token: v, loc };
  }
  return null;
}

/** Whether any provider reachable from the requirement finds a token. */
function anyToken(r: Req, stream: DownstreamStream): boolean {
  if (r.kind === 'provider') return extract(stream, r.provider) !== null;
  if (r.kind === 'any' || r.kind === 'all') return r.list.some((x) => anyToken(x, stream));
  return false;
}

interface Verified {
  provider: Provider;
  payload: JWTPayload;
  found: Found;
}

/** Verifies one provider's token: its status and, when OK, the payload. */
async function verifyToken(p: Provider, found: Found, audiences: readonly string[] | null): Promise<{ status: Status; payload?: JWTPayload }> {
  const token = found.token;
  const parts = token.split('.');
  if (parts.length !== 3) return { status: JwtStatus.BadFormat };
  const { compactVerify, decodeJwt, decodeProtectedHeader } = await loadJose();
  let header: ProtectedHeaderParameters;
  let payload: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    payload = decodeJwt(token);
  } catch {
    return { status: JwtStatus.BadFormat };
  }
  if (p.issuer !== '' && payload.iss !== p.issuer) return { status: JwtStatus.UnknownIssuer };
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.nbf === 'number' && payload.nbf > now + p.clockSkewS) return { status: JwtStatus.NotYetValid };
  if (typeof payload.exp === 'number' && payload.exp < now - p.clockSkewS) return { status: JwtStatus.Expired };
  if (payload.exp === undefined && p.requireExpiration) return { status: JwtStatus.NoExpiration };
  if (p.maxLifetimeS > 0 && (typeof payload.exp !== 'number' || typeof payload.iat !== 'number' || payload.exp - payload.iat > p.maxLifetimeS)) return { status: JwtStatus.LifetimeTooLong };
  const allowed = audiences ?? p.audiences;
  if (allowed.length > 0) {
    const aud = payload.aud === undefined ? [] : Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!aud.some((a) => allowed.includes(a))) return { status: JwtStatus.AudienceNotAllowed };
  }
  if (p.subjects !== null && (typeof payload.sub !== 'string' || !p.subjects.match(payload.sub))) return { status: JwtStatus.WrongSubject };
  const alg = header.alg;
  if (typeof alg !== 'string' || alg === 'none') return { status: JwtStatus.BadFormat };
  let set;
  try {
    set = await p.jwks.get();
    if (header.kid !== undefined && !set.hasKid(header.kid)) set = await p.jwks.refetchFor(header.kid);
  } catch {
    return { status: JwtStatus.JwksFetchFail };
  }
  const keys = set.candidates(header.kid, alg);
  if (keys.length === 0) return { status: JwtStatus.KidAlgMismatch };
  for (const k of keys) {
    try {
      await compactVerify(token, await k.key, { algorithms: [alg] });
      return { status: JwtStatus.Ok, payload };
    } catch {
      // next candidate
    }
  }
  return { status: JwtStatus.VerificationFail };
}

/**
 * Evaluates a requirement: OK or the failure status. Tokens are verified once per provider (memo `cache`).
 * `verified` collects the providers whose token verified (outputs are applied for them).
 */
async function evaluate(r: Req, stream: DownstreamStream, cache: Map<Provider, Promise<{ status: Status; payload?: JWTPayload; found: Found | null }>>, verified: Map<Provider, Verified>): Promise<Status> {
  switch (r.kind) {
    case 'provider': {
      const key = r.provider;
      let p = r.audiences === null ? cache.get(key) : undefined;
      if (p === undefined) {
        const found = extract(stream, key);
        p = found === null ? Promise.resolve({ status: JwtStatus.Missing as Status, found: null }) : verifyToken(key, found, r.audiences).then((v) => ({ ...v, found }));
        if (r.audiences === null) cache.set(key, p);
      }
      const v = await p;
      if (v.status === JwtStatus.Ok && v.payload !== undefined && v.found !== null) verified.set(key, { provider: key, payload: v.payload, found: v.found });
      return v.status;
    }
    case 'any': {
      let firstError: Status | undefined;
      for (const x of r.list) {
        const s = await evaluate(x, stream, cache, verified);
        if (s === JwtStatus.Ok) return s;
        if (s !== JwtStatus.Missing && firstError === undefined) firstError = s;
      }
      return firstError ?? JwtStatus.Missing;
    }
    case 'all': {
      for (const x of r.list) {
        const s = await evaluate(x, stream, cache, verified);
        if (s !== JwtStatus.Ok) return s;
      }
      return JwtStatus.Ok;
    }
    case 'allowMissing':
      // OK only when the request carries no token for any provider (Envoy's AllowMissingVerifier).
      return JwtStatus.Missing;
    case 'allowMissingOrFailed':
      return JwtStatus.Ok;
  }
}

function claimValue(payload: JWTPayload, path: readonly string[]): unknown {
  let v: unknown = payload;
  for (const k of path) v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>)[k] : undefined;
  return v;
}

function applyOutputs(stream: DownstreamStream, v: Verified): void {
  const p = v.provider;
  const h = stream.head.headers;
  if (!p.forward && v.found.loc?.kind === 'header') removeHeader(h, v.found.loc.name);
  if (p.forwardPayloadHeader !== '') setHeader(h, p.forwardPayloadHeader, v.found.token.split('.')[1]!);
  for (const c of p.claimToHeaders) {
    const val = claimValue(v.payload, c.claim);
    if (typeof val === 'string' || typeof val === 'number' || typeof val === 'boolean') setHeader(h, c.header, String(val));
  }
  if (p.payloadInMetadata !== '') setMetadata(stream, JWT_AUTHN_FILTER, p.payloadInMetadata, v.payload);
}

class JwtFilter implements HttpFilter {
  disabledByDefault = false;
  constructor(
    readonly name: string,
    private readonly cfg: JwtConfig,
  ) {}

  private requirementFor(stream: DownstreamStream, decision: RouteDecision | undefined): Req | null {
    if (decision !== undefined) {
      const own = decision.compiledFilterConfig(this.name);
      if (own instanceof PerRoute) return own.disabled ? null : (this.cfg.requirementMap.get(own.requirementName) ?? null);
    }
    const rules = this.cfg.rules;
    if (rules.length === 0) return null;
    const path = stream.head.path;
    const q = path.indexOf('?');
    const p = q < 0 ? path : path.slice(0, q);
    for (const r of rules) {
      if (r.prefix !== null ? p.startsWith(r.prefix) : r.path !== null ? p === r.path : r.regex!.fullMatch(p)) return r.req;
    }
    return null;
  }

  decodeHeaders(stream: DownstreamStream, decision: RouteDecision | undefined, index: number, chain: FilterChainCallbacks): FilterStatus {
    const req = this.requirementFor(stream, decision);
    if (req === null) return CONTINUE;
    const head = stream.head;
    if (this.cfg.bypassCors && head.method === 'OPTIONS' && getHeader(head.headers, 'origin') !== undefined && getHeader(head.headers, 'access-control-request-method') !== undefined) {
      this.cfg.stats.corsBypassed?.inc();
      return CONTINUE;
    }
    if (!anyToken(req, stream)) {
      // Nothing to verify: decided now.
      const status = missingOnly(req);
      if (status === JwtStatus.Ok) {
        this.cfg.stats.allowed?.inc();
        return CONTINUE;
      }
      this.deny(stream, status);
      return STOP;
    }
    let cancelled = false;
    const held = new HeldRequest(stream, decision, index + 1, chain, () => (cancelled = true));
    const verified = new Map<Provider, Verified>();
    evaluate(req, stream, new Map(), verified).then(
      (status) => {
        if (cancelled) return;
        if (status !== JwtStatus.Ok) {
          held.release();
          this.deny(stream, status);
          return;
        }
        for (const v of verified.values()) applyOutputs(stream, v);
        this.cfg.stats.allowed?.inc();
        held.resume();
      },
      () => {
        if (cancelled) return;
        held.release();
        this.deny(stream, JwtStatus.VerificationFail);
      },
    );
    return STOP;
  }

  private deny(stream: DownstreamStream, status: Status): void {
    this.cfg.stats.denied?.inc();
    const head = stream.head;
    const q = head.path.indexOf('?');
    const realm = `http://${head.authority}${q < 0 ? head.path : head.path.slice(0, q)}`;
    const code = status === JwtStatus.AudienceNotAllowed ? 403 : 401;
    const extra = ['www-authenticate', status === JwtStatus.Missing ? `Bearer realm="${realm}"` : `Bearer realm="${realm}", error="invalid_token"`];
    const body = this.cfg.stripFailureResponse ? '' : status;
    stream.localReply(code, body, '', `jwt_authn_access_denied{${status.replace(/ /g, '_')}}`, extra);
  }
}

/** The status of a requirement when no provider found a token. */
function missingOnly(r: Req): Status {
  switch (r.kind) {
    case 'provider':
    case 'allowMissing':
      return r.kind === 'provider' ? JwtStatus.Missing : JwtStatus.Ok;
    case 'allowMissingOrFailed':
      return JwtStatus.Ok;
    case 'any':
      return r.list.some((x) => missingOnly(x) === JwtStatus.Ok) ? JwtStatus.Ok : JwtStatus.Missing;
    case 'all':
      return r.list.every((x) => missingOnly(x) === JwtStatus.Ok) ? JwtStatus.Ok : JwtStatus.Missing;
  }
}

function compileConfig(ctx: FilterFactoryContext, p: JwtAuthentication): JwtConfig {
  const field = ctx.field;
  const c = ctx.compile;
  const sc = ctx.stats?.scope('jwt_authn.');
  const fetchOk = sc?.counter('jwks_fetch_success');
  const fetchFail = sc?.counter('jwks_fetch_failed');
  const fetched = (ok: boolean) => (ok ? fetchOk : fetchFail)?.inc();
  const providers = new Map<string, Provider>();
  for (const name of Object.keys(p.providers).sort()) providers.set(name, compileProvider(ctx, `${field}.providers[${JSON.stringify(name)}]`, name, p.providers[name]!, fetched));
  if (p.filterStateRules) c.fail(`${field}.filter_state_rules`, 'is not supported');
  const requirementMap = new Map<string, Req>();
  for (const [name, r] of Object.entries(p.requirementMap)) requirementMap.set(name, compileReq(c, `${field}.requirement_map[${JSON.stringify(name)}]`, r, providers));
  const rules: Rule[] = p.rules.map((r, i) => {
    const f = `${field}.rules[${i}]`;
    const m = r.match;
    if (!m) return c.fail(`${f}.match`, 'is required');
    if (m.headers.length > 0 || m.queryParameters.length > 0 || m.grpc || m.runtimeFraction || m.dynamicMetadata.length > 0) c.fail(`${f}.match`, 'only prefix, path and safe_regex path matches are supported');
    const ps = m.pathSpecifier;
    const rule: Rule = { prefix: null, path: null, regex: null, req: null };
    if (ps.case === 'prefix') rule.prefix = ps.value;
    else if (ps.case === 'path') rule.path = ps.value;
    else if (ps.case === 'safeRegex') rule.regex = compileRegex(c, `${f}.match.safe_regex`, ps.value);
    else c.fail(`${f}.match`, 'one of prefix, path or safe_regex is required');
    const rt = r.requirementType;
    if (rt.case === 'requires') rule.req = compileReq(c, `${f}.requires`, rt.value, providers);
    else if (rt.case === 'requirementName') rule.req = requirementMap.get(rt.value) ?? c.fail(`${f}.requirement_name`, `unknown requirement ${JSON.stringify(rt.value)}`);
    return rule;
  });
  return new JwtConfig(providers, rules, requirementMap, p.bypassCorsPreflight, p.stripFailureResponse, new JwtStats(sc?.counter('allowed') ?? null, sc?.counter('denied') ?? null, sc?.counter('cors_preflight_bypassed') ?? null));
}

export const jwtAuthnFilterFactory: HttpFilterFactory = {
  name: JWT_AUTHN_FILTER,
  configType: JWT_TYPE,
  perRouteTypes: [JWT_PER_ROUTE_TYPE],
  create(config: Any | undefined, ctx: FilterFactoryContext): HttpFilter {
    if (config === undefined) return ctx.compile.fail(ctx.field, 'a JwtAuthentication typed_config is required');
    const proto = decodeOrFail(ctx.compile, ctx.field, () => unpack(JwtAuthenticationSchema, config));
    // jose is loaded with the first jwt_authn filter, before its first request needs it.
    loadJose().catch(() => undefined);
    return new JwtFilter(ctx.name, compileConfig(ctx, proto));
  },
  compilePerRoute(config: Any, ctx: CompileContext, field: string): unknown {
    const pr = decodeOrFail(ctx, field, () => unpack(PerRouteConfigSchema, config));
    const s = pr.requirementSpecifier;
    if (s.case === 'disabled') return new PerRoute(s.value, '');
    if (s.case === 'requirementName') return new PerRoute(false, s.value);
    return ctx.fail(field, 'one of disabled or requirement_name is required');
  },
};
