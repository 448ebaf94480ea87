/**
 * WFT0002 (IST0002): fields deprecated upstream, found in the documents as written (the model keeps only their
 * meaning). Deprecated apiVersions are reported by validation (WFT1007), not here.
 */
import type { JsonPath } from '../../api/source.js';
import type { Analyzer } from '../types.js';

interface DeprecatedField {
  group: string;
  kind: string;
  /** Path pattern from the document root; `*` matches one segment (key or index), `**` any number. */
  pattern: string[];
  replacement: string;
}

/** The deprecated fields of the Istio networking API (istio/api networking/v1alpha3 protos). */
export const DEPRECATED_FIELDS: readonly DeprecatedField[] = [
  { group: 'networking.istio.io', kind: 'VirtualService', pattern: ['spec', 'http', '*', 'mirrorPercent'], replacement: 'mirrorPercentage: {value: <percent>} (a double)' },
  { group: 'networking.istio.io', kind: 'VirtualService', pattern: ['spec', 'http', '*', 'corsPolicy', 'allowOrigin'], replacement: 'allowOrigins, a list of string matches ({exact: ...}, {prefix: ...} or {regex: ...})' },
  { group: 'networking.istio.io', kind: 'VirtualService', pattern: ['spec', 'http', '*', 'fault', 'delay', 'percent'], replacement: 'percentage: {value: <percent>}' },
  { group: 'networking.istio.io', kind: 'DestinationRule', pattern: ['spec', '**', 'outlierDetection', 'consecutiveErrors'], replacement: 'consecutiveGatewayErrors (502, 503 and 504, what consecutiveErrors counted) or consecutive5xxErrors' },
  { group: 'networking.istio.io', kind: 'DestinationRule', pattern: ['spec', '**', 'consistentHash', 'minimumRingSize'], replacement: 'consistentHash.ringHash.minimumRingSize' },
  { group: 'networking.istio.io', kind: 'DestinationRule', pattern: ['spec', '**', 'loadBalancer', 'warmupDurationSecs'], replacement: 'loadBalancer.warmup.duration' },
];

/** Every path in `root` that matches `pattern`. */
export function matchPattern(root: unknown, pattern: readonly string[]): JsonPath[] {
  const out: JsonPath[] = [];
  const children = (v: unknown): Array<[string | number, unknown]> =>
    Array.isArray(v) ? v.map((x, i) => [i, x] as [number, unknown]) : v && typeof v === 'object' ? Object.entries(v as Record<string, unknown>) : [];
  const walk = (v: unknown, pi: number, path: Array<string | number>, depth: number): void => {
    if (depth > 40) return;
    if (pi === pattern.length) {
      out.push(path);
      return;
    }
    const seg = pattern[pi]!;
    if (seg === '**') {
      walk(v, pi + 1, path, depth + 1);
      for (const [k, x] of children(v)) walk(x, pi, [...path, k], depth + 1);
      return;
    }
    for (const [k, x] of children(v)) if (seg === '*' || String(k) === seg) walk(x, pi + 1, [...path, k], depth + 1);
  };
  walk(root, 0, [], 0);
  // `**` can reach one node along several routes; keep each path once.
  const seen = new Set<string>();
  return out.filter((p) => {
    const k = JSON.stringify(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

export const deprecatedFieldsAnalyzer: Analyzer = {
  name: 'config.deprecated-fields',
  description: 'Finds fields that are deprecated upstream',
  codes: ['WFT0002'],
  analyze(ctx) {
    for (const res of ctx.resources) {
      for (const f of DEPRECATED_FIELDS) {
        if (res.group !== f.group || res.kind !== f.kind) continue;
        for (const path of matchPattern(res.body, f.pattern)) {
          const field = String(path[path.length - 1]);
          ctx.report('WFT0002', ctx.whereIn(res, path), `deprecated: ${res.kind} field ${field} is deprecated upstream`, `use ${f.replacement}`);
        }
      }
    }
  },
};
