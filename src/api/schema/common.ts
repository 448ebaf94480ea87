/**
 * Shared schema pieces for every API family: durations, RE2 regexes, ports, percentages, label maps, and the
 * conversion of schema issues into diagnostics with file:line:column.
 */
import { RE2JS } from 're2js';
import { z } from 'zod';
import type { Diagnostic, ResourceRef } from '../diagnostics.js';
import { formatPath } from '../diagnostics.js';
import type { JsonPath, RawResource } from '../source.js';

const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, 'μs': 0.001, ns: 0.000001 };
const GO_DURATION = /^(?:\d+(?:\.\d*)?|\.\d+)(?:h|m|s|ms|us|µs|μs|ns)(?:(?:\d+(?:\.\d*)?|\.\d+)(?:h|m|s|ms|us|µs|μs|ns))*$/;

/**
 * Parses a duration as Istio accepts it (Go `time.ParseDuration` syntax such as `1h30m`, `250ms`, `1.5s`, which
 * includes protobuf JSON's `1.5s`) into milliseconds. Returns undefined when the text is not a duration.
 */
export function parseDurationMs(text: string): number | undefined {
  const s = text.trim();
  if (s === '0') return 0;
  if (!GO_DURATION.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|μs|ns)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!;
  return total;
}

/** Gateway API durations (GEP-2257): 1 to 4 groups of `<1-5 digits><h|m|s|ms>`, e.g. `1h30m`, `500ms`. */
const GATEWAY_DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/;

/** A duration string in Go / protobuf syntax (`10s`, `1.5s`, `100ms`, `1h30m`). */
export const duration = () =>
  z.string().refine((s) => parseDurationMs(s) !== undefined, {
    message: 'expected a duration such as "10s", "1.5s", "100ms" or "1h30m"',
  });

/** A duration string that must be at least 1ms (Istio rejects smaller timeouts and intervals). */
export const positiveDuration = (min = 1) =>
  z.string().refine((s) => { const v = parseDurationMs(s); return v !== undefined && v >= min; }, {
    message: `expected a duration of at least ${min}ms such as "10s", "100ms" or "1h30m"`,
  });

/** A Gateway API duration (`10s`, `500ms`, `1h30m`; no fractions). */
export const gatewayDuration = () =>
  z.string().regex(GATEWAY_DURATION, 'expected a Gateway API duration such as "10s", "500ms" or "1h30m" (GEP-2257)');

/** Milliseconds of a Gateway API duration (which the regex above has already validated). */
export function gatewayDurationMs(text: string): number {
  return parseDurationMs(text) ?? 0;
}

/** The RE2 syntax error of a pattern, or undefined when it compiles (Envoy and Istio use RE2). */
export function re2Error(pattern: string): string | undefined {
  try {
    RE2JS.compile(pattern);
    return undefined;
  } catch (e) {
    return (e as Error).message;
  }
}

/** A regular expression in RE2 syntax. */
export const re2 = () =>
  z.string().superRefine((s, ctx) => {
    const err = re2Error(s);
    if (err) ctx.addIssue({ code: 'custom', message: `invalid RE2 regular expression: ${err}` });
  });

export const port = () => z.number().int('expected an integer port').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535');
export const portOrZero = () => z.number().int().min(0).max(65535);
export const uint32 = () => z.number().int().min(0).max(4294967295);
export const int32 = () => z.number().int().min(-2147483648).max(2147483647);
/** A percentage in [0, 100] (fractions allowed). */
export const percent = () => z.number().min(0, 'percentage must be 0-100').max(100, 'percentage must be 0-100');
export const labels = () => z.record(z.string(), z.string());
export const stringList = () => z.array(z.string());

/** Converts schema issues into diagnostics that point at the offending place in the source. */
export function issuesToDiagnostics(
  res: RawResource,
  ref: ResourceRef,
  issues: readonly z.core.$ZodIssue[],
  prefix: JsonPath,
): Diagnostic[] {
  const out: Diagnostic[] = [];
  for (const issue of issues) {
    const base = [...prefix, ...(issue.path as Array<string | number>)];
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) {
        const p = [...base, key];
        out.push({
          severity: 'Error',
          code: 'WFT0106',
          message: `unknown field "${key}" in ${ref.kind}${base.length ? ` at ${formatPath(base)}` : ''}`,
          hint: 'remove it or check its spelling and indentation against the API reference (docs/config-reference.md)',
          resource: ref,
          pos: res.locate(p),
          path: formatPath(p),
        });
      }
      continue;
    }
    out.push({
      severity: 'Error',
      code: 'WFT0106',
      message: `${formatPath(base) || ref.kind}: ${describeIssue(issue, res, base)}`,
      hint: hintFor(issue),
      resource: ref,
      pos: res.locate(base),
      path: formatPath(base),
    });
  }
  return out;
}

function valueAt(res: RawResource, path: JsonPath): unknown {
  let v: unknown = res.body;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

function describeIssue(issue: z.core.$ZodIssue, res: RawResource, path: JsonPath): string {
  switch (issue.code) {
    case 'invalid_type': {
      const got = valueAt(res, path);
      if (got === undefined) return `required field missing (expected ${issue.expected})`;
      return `expected ${issue.expected}, got ${got === null ? 'null' : Array.isArray(got) ? 'array' : typeof got}${typeof got === 'string' || typeof got === 'number' ? ` ${JSON.stringify(got)}` : ''}`;
    }
    case 'invalid_value': {
      const got = valueAt(res, path);
      const expected = issue.values.map((v) => JSON.stringify(v)).join(', ');
      if (got === undefined) return `required field missing (expected one of ${expected})`;
      return `invalid value ${JSON.stringify(got)}; expected one of ${expected}`;
    }
    case 'too_small':
    case 'too_big':
    case 'invalid_format':
    case 'custom':
    default:
      return `${issue.message}${issue.code !== 'custom' && issue.code !== 'invalid_format' ? ` (got ${JSON.stringify(valueAt(res, path))})` : ''}`;
  }
}

function hintFor(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_type':
      return 'check the field type against the API reference';
    case 'invalid_value':
      return 'use one of the listed values (they are case-sensitive)';
    case 'too_small':
    case 'too_big':
      return 'use a value in the allowed range';
    default:
      return 'see the API reference for this field (docs/config-reference.md)';
  }
}
