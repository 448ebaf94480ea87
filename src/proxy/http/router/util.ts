/**
 * Compile-time helpers shared by the router's compilers: the compile context (errors and warnings that name the
 * RouteConfiguration and the field), proto value conversions (durations, fractional percentages) and the
 * validation rules Envoy's protos carry (protoc-gen-validate), which Envoy checks before it builds a route table.
 * Also small ASCII string helpers used on the request path (no allocation).
 */
import type { Duration } from '@bufbuild/protobuf/wkt';
import { FractionalPercent_DenominatorType } from '../../../xds/gen/envoy/type/v3/percent_pb.js';
import type { FractionalPercent } from '../../../xds/gen/envoy/type/v3/percent_pb.js';
import type { RuntimeFractionalPercent } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { ConfigError } from '../../config-error.js';
import { Re2, Substitution } from './regex.js';
import type { RegexMatcher, RegexMatchAndSubstitute } from '../../../xds/gen/envoy/type/matcher/v3/regex_pb.js';

/** Errors and warnings while compiling one RouteConfiguration. */
export class CompileContext {
  private readonly seen = new Set<string>();
  private shared: Map<string, object> | undefined;
  readonly warnings: string[] = [];
  constructor(readonly resource: string) {}

  /**
   * One object per value within a route configuration: the first object compiled with this `key` (a complete
   * description of the value), returned for every later one. Thousands of routes with the same retry policy hold
   * one.
   */
  share<T extends object>(key: string, value: T): T {
    const m = (this.shared ??= new Map());
    const have = m.get(key);
    if (have !== undefined) return have as T;
    m.set(key, value);
    return value;
  }

  fail(field: string, detail: string): never {
    throw new ConfigError(this.resource, field, detail, 'route_config');
  }

  /**
   * Records a field that is accepted but has no effect here. Reported once per field kind: indices are collapsed
   * (`virtual_hosts[*].routes[*].decorator`) so a config with 1,000 routes says it once.
   */
  warn(field: string, detail: string): void {
    const key = field.replace(/\[\d+\]/g, '[*]');
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.warnings.push(`route_config ${JSON.stringify(this.resource)}: ${key}: ${detail}`);
  }
}

const MAX_DURATION_SECONDS = 315_576_000_000n;

/**
 * A protobuf Duration in whole milliseconds, as Envoy's PROTOBUF_GET_MS_* (truncating). Negative or out-of-range
 * durations are rejected, as Envoy's DurationUtil does.
 */
export function durationMs(ctx: CompileContext, field: string, d: Duration): number {
  if (d.seconds < 0n || d.nanos < 0) ctx.fail(field, 'duration must not be negative');
  if (d.seconds > MAX_DURATION_SECONDS || d.nanos > 999_999_999) ctx.fail(field, 'duration out of range');
  return Number(d.seconds) * 1000 + Math.floor(d.nanos / 1_000_000);
}

export function optionalDurationMs(ctx: CompileContext, field: string, d: Duration | undefined): number | undefined {
  return d === undefined ? undefined : durationMs(ctx, field, d);
}

export function denominatorOf(ctx: CompileContext, field: string, t: FractionalPercent_DenominatorType): number {
  switch (t) {
    case FractionalPercent_DenominatorType.HUNDRED:
      return 100;
    case FractionalPercent_DenominatorType.TEN_THOUSAND:
      return 10_000;
    case FractionalPercent_DenominatorType.MILLION:
      return 1_000_000;
    default:
      return ctx.fail(`${field}.denominator`, `unknown denominator ${String(t)}`);
  }
}

/** A fraction as [numerator, denominator]; the numerator is capped at the denominator (Envoy's convertPercent). */
export function fraction(ctx: CompileContext, field: string, f: FractionalPercent): [number, number] {
  const den = denominatorOf(ctx, field, f.denominator);
  return [Math.min(f.numerator, den), den];
}

/** RuntimeFractionalPercent: the default value (this proxy has no runtime layer; `runtime_key` is not consulted). */
export function runtimeFraction(ctx: CompileContext, field: string, r: RuntimeFractionalPercent): [number, number] {
  if (!r.defaultValue) ctx.fail(`${field}.default_value`, 'is required');
  return fraction(ctx, `${field}.default_value`, r.defaultValue);
}

/**
 * Envoy's `random_value % denominator < numerator` with a uniform random number in [0, 1).
 */
export function sampled(num: number, den: number, random: number): boolean {
  return Math.floor(random * den) < num;
}

// protoc-gen-validate well-known regexes, non-strict mode (as Envoy's route protos use them): no NUL, CR or LF.
const HEADER_NAME_LAX = /^[^\0\n\r]+$/;
const HEADER_VALUE_LAX = /^[^\0\n\r]*$/;

export function checkHeaderName(ctx: CompileContext, field: string, name: string): void {
  if (name.length === 0) ctx.fail(field, 'must not be empty');
  if (!HEADER_NAME_LAX.test(name)) ctx.fail(field, 'must not contain NUL, CR or LF');
}

export function checkHeaderValue(ctx: CompileContext, field: string, value: string): void {
  if (!HEADER_VALUE_LAX.test(value)) ctx.fail(field, 'must not contain NUL, CR or LF');
}

/** Compiles an RE2 regex of a RegexMatcher (min_len 1). */
export function compileRegex(ctx: CompileContext, field: string, m: RegexMatcher | undefined): Re2 {
  if (!m) return ctx.fail(field, 'is required');
  if (m.regex.length === 0) ctx.fail(`${field}.regex`, 'must not be empty');
  const re = Re2.compile(m.regex);
  if (typeof re === 'string') ctx.fail(`${field}.regex`, `invalid regex ${JSON.stringify(m.regex)}: ${re}`);
  return re;
}

/** A compiled regex + substitution (regex_rewrite, host_rewrite_path_regex, hash policy regex_rewrite). */
export interface RegexRewrite {
  re: Re2;
  sub: Substitution;
}

export function compileRegexRewrite(ctx: CompileContext, field: string, r: RegexMatchAndSubstitute): RegexRewrite {
  const re = compileRegex(ctx, `${field}.pattern`, r.pattern);
  const sub = Substitution.parse(r.substitution, re.groupCount);
  if (typeof sub === 'string') ctx.fail(`${field}.substitution`, sub);
  return { re, sub };
}

// ---------------------------------------------------------------------------------------------------------------
// ASCII helpers (absl's *IgnoreCase functions fold ASCII letters only)

export function lowerAscii(c: number): number {
  return c >= 65 && c <= 90 ? c + 32 : c;
}

/** Whether s[at..] starts with `lowerPrefix` (already lower-case), ignoring ASCII case. */
export function startsWithIgnoreCase(s: string, lowerPrefix: string, at = 0): boolean {
  const n = lowerPrefix.length;
  if (s.length - at < n) return false;
  for (let i = 0; i < n; i++) if (lowerAscii(s.charCodeAt(at + i)) !== lowerPrefix.charCodeAt(i)) return false;
  return true;
}

export function equalsIgnoreCase(s: string, lower: string): boolean {
  return s.length === lower.length && startsWithIgnoreCase(s, lower, 0);
}

export function endsWithIgnoreCase(s: string, lowerSuffix: string): boolean {
  return s.length >= lowerSuffix.length && startsWithIgnoreCase(s, lowerSuffix, s.length - lowerSuffix.length);
}

export function includesIgnoreCase(s: string, lowerNeedle: string): boolean {
  const n = lowerNeedle.length;
  for (let i = 0; i + n <= s.length; i++) if (startsWithIgnoreCase(s, lowerNeedle, i)) return true;
  return false;
}

/** ASCII lower-case (absl::AsciiStrToLower): other characters are kept. */
export function asciiLower(s: string): string {
  let needs = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 65 && c <= 90) {
      needs = true;
      break;
    }
  }
  if (!needs) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) out += String.fromCharCode(lowerAscii(s.charCodeAt(i)));
  return out;
}

/** Whether a header name (as received) equals a lower-case name, ignoring ASCII case. */
export function nameIs(name: string, lower: string): boolean {
  return name === lower || equalsIgnoreCase(name, lower);
}
