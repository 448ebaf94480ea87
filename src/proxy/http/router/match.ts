/**
 * Request matchers compiled from Envoy protos: StringMatcher, HeaderMatcher and QueryParameterMatcher, with
 * Envoy's semantics (source/common/common/matchers.cc, source/common/http/header_utility.cc,
 * source/common/router/config_utility.cc):
 *
 * - StringMatcher: exact / prefix / suffix / contains, `ignore_case` folding ASCII letters only; `safe_regex` is a
 *   full match and rejects `ignore_case`.
 * - HeaderMatcher: every value of a repeated header is joined with `,` before matching; `:method`,
 *   `:authority` (and `host`, which Envoy maps to it), `:path` and `:scheme` are the request's pseudo-headers.
 *   A missing header fails every value matcher (inverted or not) unless `treat_missing_header_as_empty`;
 *   `present_match` holds when presence equals the flag, then `invert_match` flips the result. The deprecated
 *   `exact_match` with an empty value matches any value.
 * - QueryParameterMatcher: the query string after the first `?` split on `&` (no percent-decoding, as Envoy's
 *   parseQueryString); the first value of the named parameter is matched; a parameter without `=` has the empty
 *   value; `present_match` (either value) means "present".
 *
 * Matching allocates nothing except when a header is repeated (the joined value).
 */
import type { HeaderMatcher, QueryParameterMatcher } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { StringMatcher } from '../../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import type { HeaderList, RequestHead, ResponseHead } from '../headers.js';
import type { Re2 } from './regex.js';
import {
  asciiLower,
  checkHeaderName,
  compileRegex,
  endsWithIgnoreCase,
  equalsIgnoreCase,
  includesIgnoreCase,
  nameIs,
  startsWithIgnoreCase,
} from './util.js';
import type { CompileContext } from './util.js';

const SM_EXACT = 0;
const SM_PREFIX = 1;
const SM_SUFFIX = 2;
const SM_CONTAINS = 3;
const SM_REGEX = 4;

export class StringMatch {
  constructor(
    private readonly kind: number,
    /** The pattern (lower-cased when ignoreCase). */
    private readonly value: string,
    private readonly ignoreCase: boolean,
    private readonly re: Re2 | null,
  ) {}

  match(v: string): boolean {
    switch (this.kind) {
      case SM_EXACT:
        return this.ignoreCase ? equalsIgnoreCase(v, this.value) : v === this.value;
      case SM_PREFIX:
        return this.ignoreCase ? startsWithIgnoreCase(v, this.value, 0) : v.startsWith(this.value);
      case SM_SUFFIX:
        return this.ignoreCase ? endsWithIgnoreCase(v, this.value) : v.endsWith(this.value);
      case SM_CONTAINS:
        return this.ignoreCase ? includesIgnoreCase(v, this.value) : v.includes(this.value);
      default:
        return this.re!.fullMatch(v);
    }
  }

  static exact(value: string, ignoreCase = false): StringMatch {
    return new StringMatch(SM_EXACT, ignoreCase ? asciiLower(value) : value, ignoreCase, null);
  }

  static prefix(value: string, ignoreCase = false): StringMatch {
    return new StringMatch(SM_PREFIX, ignoreCase ? asciiLower(value) : value, ignoreCase, null);
  }

  static suffix(value: string): StringMatch {
    return new StringMatch(SM_SUFFIX, value, false, null);
  }

  static contains(value: string): StringMatch {
    return new StringMatch(SM_CONTAINS, value, false, null);
  }

  static regex(re: Re2): StringMatch {
    return new StringMatch(SM_REGEX, re.source, false, re);
  }
}

/** envoy.type.matcher.v3.StringMatcher → StringMatch. */
export function compileStringMatcher(ctx: CompileContext, field: string, m: StringMatcher | undefined): StringMatch {
  if (!m) return ctx.fail(field, 'is required');
  const p = m.matchPattern;
  const ic = m.ignoreCase;
  switch (p.case) {
    case 'exact':
      return StringMatch.exact(p.value, ic);
    case 'prefix':
      if (p.value.length === 0) ctx.fail(`${field}.prefix`, 'must not be empty');
      return new StringMatch(SM_PREFIX, ic ? asciiLower(p.value) : p.value, ic, null);
    case 'suffix':
      if (p.value.length === 0) ctx.fail(`${field}.suffix`, 'must not be empty');
      return new StringMatch(SM_SUFFIX, ic ? asciiLower(p.value) : p.value, ic, null);
    case 'contains':
      if (p.value.length === 0) ctx.fail(`${field}.contains`, 'must not be empty');
      return new StringMatch(SM_CONTAINS, ic ? asciiLower(p.value) : p.value, ic, null);
    case 'safeRegex':
      if (ic) ctx.fail(`${field}.ignore_case`, 'ignore_case has no effect for safe_regex');
      return StringMatch.regex(compileRegex(ctx, `${field}.safe_regex`, p.value));
    case 'custom':
      return ctx.fail(`${field}.custom`, `custom string matcher extensions are not supported (${p.value.name || 'unnamed'})`);
    default:
      return ctx.fail(field, 'one of exact, prefix, suffix, safe_regex or contains is required');
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Header lookups

export const PSEUDO_NONE = 0;
export const PSEUDO_METHOD = 1;
export const PSEUDO_AUTHORITY = 2;
export const PSEUDO_PATH = 3;
export const PSEUDO_SCHEME = 4;
export const PSEUDO_STATUS = 5;
/** Any other `:name`: never present in a request this proxy sees. */
export const PSEUDO_OTHER = 6;

/** Which pseudo-header a lower-case header name denotes. `host` is `:authority`, as in Envoy's header map. */
export function pseudoOf(lower: string): number {
  switch (lower) {
    case ':method':
      return PSEUDO_METHOD;
    case ':authority':
    case 'host':
      return PSEUDO_AUTHORITY;
    case ':path':
      return PSEUDO_PATH;
    case ':scheme':
      return PSEUDO_SCHEME;
    case ':status':
      return PSEUDO_STATUS;
    default:
      return lower.startsWith(':') ? PSEUDO_OTHER : PSEUDO_NONE;
  }
}

/** Every value of a header in a list, joined with `,` (Envoy's getAllOfHeaderAsString); undefined when absent. */
export function listHeaderJoined(h: HeaderList, lower: string): string | undefined {
  let out: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    if (nameIs(h[i]!, lower)) out = out === undefined ? h[i + 1]! : `${out},${h[i + 1]!}`;
  }
  return out;
}

/** The first value of a header in a list. */
export function listHeaderFirst(h: HeaderList, lower: string): string | undefined {
  for (let i = 0; i < h.length; i += 2) if (nameIs(h[i]!, lower)) return h[i + 1];
  return undefined;
}

/** A request header (or pseudo-header) as a HeaderMatcher sees it. */
export function requestHeaderJoined(head: RequestHead, lower: string, pseudo: number): string | undefined {
  switch (pseudo) {
    case PSEUDO_NONE:
      return listHeaderJoined(head.headers, lower);
    case PSEUDO_METHOD:
      return head.method || undefined;
    case PSEUDO_AUTHORITY:
      return head.authority || undefined;
    case PSEUDO_PATH:
      return head.path || undefined;
    case PSEUDO_SCHEME:
      return head.scheme || undefined;
    default:
      return undefined;
  }
}

/** The first value of a request header (or pseudo-header), as Envoy's `headers.get(name)[0]`. */
export function requestHeaderFirst(head: RequestHead, lower: string, pseudo: number): string | undefined {
  return pseudo === PSEUDO_NONE ? listHeaderFirst(head.headers, lower) : requestHeaderJoined(head, lower, pseudo);
}

function responseHeaderJoined(resp: ResponseHead, lower: string, pseudo: number): string | undefined {
  if (pseudo === PSEUDO_NONE) return listHeaderJoined(resp.headers, lower);
  return pseudo === PSEUDO_STATUS ? String(resp.status) : undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// HeaderMatcher

const HM_PRESENT = 0;
const HM_EXACT = 1;
const HM_STRING = 2;
const HM_RANGE = 3;

const INT_RE = /^\s*([+-]?)(\d+)\s*$/;
const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;

/** absl::SimpleAtoi for int64: optional sign, digits, surrounding ASCII whitespace; undefined when invalid. */
function parseInt64(v: string): bigint | undefined {
  const m = INT_RE.exec(v);
  if (!m) return undefined;
  const n = BigInt(m[1] === '-' ? `-${m[2]!}` : m[2]!);
  return n < INT64_MIN || n > INT64_MAX ? undefined : n;
}

export class HeaderMatch {
  constructor(
    /** Lower-case header name. */
    readonly name: string,
    private readonly pseudo: number,
    private readonly kind: number,
    private readonly present: boolean,
    private readonly exact: string,
    private readonly str: StringMatch | null,
    private readonly rangeStart: bigint,
    private readonly rangeEnd: bigint,
    private readonly invert: boolean,
    private readonly treatMissingAsEmpty: boolean,
  ) {}

  /** The match result for the header's (joined) value, undefined when the header is absent. */
  matchValue(value: string | undefined): boolean {
    if (this.kind === HM_PRESENT) {
      if (value === undefined && !this.treatMissingAsEmpty) return this.invert === this.present;
      return this.present !== this.invert;
    }
    let v = value;
    if (v === undefined) {
      if (!this.treatMissingAsEmpty) return false;
      v = '';
    }
    let m: boolean;
    if (this.kind === HM_EXACT) m = this.exact.length === 0 || v === this.exact;
    else if (this.kind === HM_STRING) m = this.str!.match(v);
    else {
      const n = parseInt64(v);
      m = n !== undefined && n >= this.rangeStart && n < this.rangeEnd;
    }
    return m !== this.invert;
  }

  matchRequest(head: RequestHead): boolean {
    return this.matchValue(requestHeaderJoined(head, this.name, this.pseudo));
  }

  matchResponse(resp: ResponseHead): boolean {
    return this.matchValue(responseHeaderJoined(resp, this.name, this.pseudo));
  }
}

export function compileHeaderMatcher(ctx: CompileContext, field: string, h: HeaderMatcher): HeaderMatch {
  checkHeaderName(ctx, `${field}.name`, h.name);
  const name = asciiLower(h.name);
  const s = h.headerMatchSpecifier;
  let kind = HM_PRESENT;
  let present = true;
  let exact = '';
  let str: StringMatch | null = null;
  let start = 0n;
  let end = 0n;
  switch (s.case) {
    case 'exactMatch':
      kind = HM_EXACT;
      exact = s.value;
      break;
    case 'safeRegexMatch':
      kind = HM_STRING;
      str = StringMatch.regex(compileRegex(ctx, `${field}.safe_regex_match`, s.value));
      break;
    case 'rangeMatch':
      kind = HM_RANGE;
      start = s.value.start;
      end = s.value.end;
      break;
    case 'presentMatch':
      present = s.value;
      break;
    case 'prefixMatch':
      if (s.value.length === 0) ctx.fail(`${field}.prefix_match`, 'must not be empty (use present_match)');
      kind = HM_STRING;
      str = StringMatch.prefix(s.value);
      break;
    case 'suffixMatch':
      if (s.value.length === 0) ctx.fail(`${field}.suffix_match`, 'must not be empty (use present_match)');
      kind = HM_STRING;
      str = StringMatch.suffix(s.value);
      break;
    case 'containsMatch':
      if (s.value.length === 0) ctx.fail(`${field}.contains_match`, 'must not be empty (use present_match)');
      kind = HM_STRING;
      str = StringMatch.contains(s.value);
      break;
    case 'stringMatch':
      kind = HM_STRING;
      str = compileStringMatcher(ctx, `${field}.string_match`, s.value);
      break;
    default:
      // No specifier: the header must be present.
      break;
  }
  return new HeaderMatch(name, pseudoOf(name), kind, present, exact, str, start, end, h.invertMatch, h.treatMissingHeaderAsEmpty);
}

/** Whether every matcher matches the request (an empty list matches). */
export function matchAllHeaders(ms: readonly HeaderMatch[], head: RequestHead): boolean {
  for (let i = 0; i < ms.length; i++) if (!ms[i]!.matchRequest(head)) return false;
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// QueryParameterMatcher

export class QueryMatch {
  constructor(
    readonly name: string,
    /** null = present match. */
    private readonly str: StringMatch | null,
  ) {}

  /** `path` is the full :path; `q` the index of its first `?` (or -1). */
  match(path: string, q: number): boolean {
    if (q < 0) return false;
    const name = this.name;
    const n = path.length;
    let start = q + 1;
    while (start < n) {
      let end = path.indexOf('&', start);
      if (end < 0) end = n;
      const eq = path.indexOf('=', start);
      const keyEnd = eq >= 0 && eq < end ? eq : end;
      if (keyEnd - start === name.length && path.startsWith(name, start)) {
        if (this.str === null) return true;
        return this.str.match(keyEnd === end ? '' : path.slice(keyEnd + 1, end));
      }
      start = end + 1;
    }
    return false;
  }
}

export function compileQueryMatcher(ctx: CompileContext, field: string, q: QueryParameterMatcher): QueryMatch {
  if (q.name.length === 0) ctx.fail(`${field}.name`, 'must not be empty');
  if (Buffer.byteLength(q.name) > 1024) ctx.fail(`${field}.name`, 'must be at most 1024 bytes');
  const s = q.queryParameterMatchSpecifier;
  if (s.case === 'stringMatch') return new QueryMatch(q.name, compileStringMatcher(ctx, `${field}.string_match`, s.value));
  return new QueryMatch(q.name, null);
}
