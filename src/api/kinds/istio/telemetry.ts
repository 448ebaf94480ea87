/**
 * telemetry.istio.io Telemetry (v1, v1alpha1): tracing and access logging for the mesh (a Telemetry without a
 * selector in the root namespace), a namespace (one without a selector elsewhere) or the workloads it selects.
 * Schema from istio/api telemetry/v1alpha1/telemetry.proto; translation into `model.telemetries` (how a proxy's
 * settings are merged from the three levels: src/controlplane/translate/telemetry.ts).
 *
 * - tracing[]: match.mode (CLIENT / SERVER / CLIENT_AND_SERVER, the default), providers[].name,
 *   randomSamplingPercentage (0-100), disableSpanReporting, customTags (literal / environment / header);
 * - accessLogging[]: match.mode, providers[].name, disabled, filter.expression. Envoy runs the filter as CEL; Weft
 *   accepts the response-code comparisons `response.code >= N` (also `>`, `==`, `<=`, `<`) and reports any other
 *   expression as an error rather than logging more than asked;
 * - metrics[] is accepted as written and not used here (metrics are always on, docs/metrics.md);
 * - selector.matchLabels; targetRef / targetRefs are errors (no gateways here to attach to).
 */
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type { Labels, TelemetryAccessLogging, TelemetryCustomTag, TelemetryMode, TelemetryTracing } from '../../model.js';
import { issuer, typeWorkloadSelector, wrapper } from './common.js';

export const TELEMETRY_GROUP = 'telemetry.istio.io';

const mode = () => z.enum(['CLIENT_AND_SERVER', 'CLIENT', 'SERVER']);
const providerRefs = () => z.array(z.strictObject({ name: z.string().min(1, 'provider name must not be empty') }));
const match = () => z.strictObject({ mode: mode().optional() }).optional();

const customTag = z
  .strictObject({
    literal: z.strictObject({ value: z.string() }).optional(),
    environment: z.strictObject({ name: z.string().min(1, 'environment name must not be empty'), defaultValue: z.string().optional() }).optional(),
    header: z.strictObject({ name: z.string().min(1, 'header name must not be empty'), defaultValue: z.string().optional() }).optional(),
  })
  .superRefine((t, ctx) => {
    const n = [t.literal, t.environment, t.header].filter((x) => x !== undefined).length;
    if (n !== 1) issuer(ctx)([], 'a custom tag needs exactly one of literal, environment, header');
  });

/** `response.code <op> N`: the CEL filters Weft runs (Envoy's status_code_filter). */
const FILTER = /^\s*response\.code\s*(>=|<=|==|>|<)\s*(\d{3})\s*$/;

export function parseCodeFilter(expression: string): { op: 'EQ' | 'GE' | 'LE'; code: number } | undefined {
  const m = FILTER.exec(expression);
  if (!m) return undefined;
  const n = Number(m[2]);
  switch (m[1]) {
    case '>=':
      return { op: 'GE', code: n };
    case '>':
      return { op: 'GE', code: n + 1 };
    case '<=':
      return { op: 'LE', code: n };
    case '<':
      return { op: 'LE', code: n - 1 };
    default:
      return { op: 'EQ', code: n };
  }
}

export const telemetrySpecSchema = z
  .strictObject({
    selector: typeWorkloadSelector().optional(),
    targetRef: z.unknown().optional(),
    targetRefs: z.array(z.unknown()).optional(),
    tracing: z
      .array(
        z.strictObject({
          match: match(),
          providers: providerRefs().optional(),
          randomSamplingPercentage: wrapper(z.number().min(0, 'randomSamplingPercentage must be in [0, 100]').max(100, 'randomSamplingPercentage must be in [0, 100]')),
          disableSpanReporting: wrapper(z.boolean()),
          customTags: z.record(z.string().min(1), customTag).optional(),
          useRequestIdForTraceSampling: wrapper(z.boolean()),
        }),
      )
      .optional(),
    accessLogging: z
      .array(
        z.strictObject({
          match: match(),
          providers: providerRefs().optional(),
          disabled: wrapper(z.boolean()),
          filter: z.strictObject({ expression: z.string() }).optional(),
        }),
      )
      .optional(),
    metrics: z.array(z.unknown()).optional(),
  })
  .superRefine((t, ctx) => {
    const issue = issuer(ctx);
    if (t.targetRef !== undefined || (t.targetRefs ?? []).length > 0) issue(['targetRef'], 'targetRef / targetRefs are not supported (use selector)');
    t.tracing?.forEach((tr, i) => {
      if ((tr.providers ?? []).length > 1) issue(['tracing', i, 'providers'], 'at most one tracing provider is supported (as in Istio)');
    });
    t.accessLogging?.forEach((a, i) => {
      if (a.filter !== undefined && parseCodeFilter(a.filter.expression) === undefined) {
        issue(['accessLogging', i, 'filter', 'expression'], `unsupported filter ${JSON.stringify(a.filter.expression)}: Weft runs the response code comparisons "response.code >= 400" (>=, >, ==, <=, <)`);
      }
    });
  });

export type TelemetrySpec = z.output<typeof telemetrySpecSchema>;

function translateTelemetry(res: Resource<TelemetrySpec>, ctx: TranslateContext): void {
  const s = res.spec;
  const tracing = (s.tracing ?? []).map((t): TelemetryTracing => {
    const customTags: Record<string, TelemetryCustomTag> = {};
    for (const [k, v] of Object.entries(t.customTags ?? {})) {
      if (v.literal) customTags[k] = { literal: v.literal.value };
      else if (v.header) customTags[k] = { header: v.header.name, ...(v.header.defaultValue !== undefined ? { defaultValue: v.header.defaultValue } : {}) };
      else if (v.environment) customTags[k] = { environment: v.environment.name, ...(v.environment.defaultValue !== undefined ? { defaultValue: v.environment.defaultValue } : {}) };
    }
    const out: TelemetryTracing = { mode: (t.match?.mode ?? 'CLIENT_AND_SERVER') as TelemetryMode, providers: (t.providers ?? []).map((p) => p.name), customTags };
    if (t.randomSamplingPercentage !== undefined) out.randomSamplingPercentage = t.randomSamplingPercentage;
    if (t.disableSpanReporting !== undefined) out.disableSpanReporting = t.disableSpanReporting;
    return out;
  });
  const accessLogging = (s.accessLogging ?? []).map((a): TelemetryAccessLogging => {
    const out: TelemetryAccessLogging = { mode: (a.match?.mode ?? 'CLIENT_AND_SERVER') as TelemetryMode, providers: (a.providers ?? []).map((p) => p.name) };
    if (a.disabled !== undefined) out.disabled = a.disabled;
    if (a.filter !== undefined) out.filter = { expression: a.filter.expression, ...parseCodeFilter(a.filter.expression)! };
    return out;
  });
  const labels: Labels = { ...(s.selector?.matchLabels ?? {}) };
  ctx.model.telemetries.push({
    namespace: res.namespace,
    name: res.name,
    ...(Object.keys(labels).length ? { selector: labels } : {}),
    tracing,
    accessLogging,
    origin: ctx.origin(res),
  });
}

export const telemetryKind = defineKind<TelemetrySpec>({
  group: TELEMETRY_GROUP,
  kind: 'Telemetry',
  family: 'istio',
  versions: ['v1', 'v1alpha1'],
  namespaced: true,
  schema: telemetrySpecSchema as unknown as z.ZodType<TelemetrySpec>,
  translate: translateTelemetry,
});
