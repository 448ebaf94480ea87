/**
 * The Zipkin exporter (envoy.tracers.zipkin with collector_endpoint_version HTTP_JSON): spans as a Zipkin v2 JSON
 * list, POSTed to collector_endpoint (Istio: `/api/v2/spans`).
 *
 * Each span: traceId, id, parentId (absent for a root), name, kind (SERVER / CLIENT), timestamp and duration in
 * microseconds, localEndpoint { serviceName } (the node's cluster, as Envoy's local_info), and tags.
 */
import { SpanExporter, type ExporterStats, type HostPicker } from './exporter.js';
import type { Span } from './span.js';

export class ZipkinExporter extends SpanExporter {
  constructor(
    pick: HostPicker,
    path: string,
    authority: string,
    timeoutMs: number,
    stats: ExporterStats,
    private readonly serviceName: string,
  ) {
    super(pick, path, 'application/json', authority, timeoutMs, stats);
  }

  protected encode(spans: readonly Span[]): string {
    return JSON.stringify(spans.map((s) => zipkinSpan(s, this.serviceName)));
  }
}

export function zipkinSpan(s: Span, serviceName: string): Record<string, unknown> {
  const tags: Record<string, string> = {};
  for (let i = 0; i < s.tags.length; i += 2) tags[s.tags[i]!] = s.tags[i + 1]!;
  const out: Record<string, unknown> = {
    traceId: s.traceId,
    id: s.spanId,
    name: s.name,
    kind: s.kind,
    timestamp: Math.round(s.startMs * 1000),
    duration: Math.max(1, Math.round((s.endMs - s.startMs) * 1000)),
    localEndpoint: { serviceName },
    tags,
  };
  if (s.parentId !== '') out.parentId = s.parentId;
  return out;
}
