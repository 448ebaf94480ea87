/**
 * The OpenTelemetry exporter (envoy.tracers.opentelemetry with an http_service): OTLP/HTTP with a protobuf body,
 * POST to the http_uri's path (conventionally `/v1/traces`), content-type application/x-protobuf.
 *
 * The body is an `opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest`, written field by field with
 * protobuf-es's BinaryWriter (the OTLP protos are not part of Weft's proto tree). The fields written:
 *
 *   ExportTraceServiceRequest { 1: repeated ResourceSpans }
 *   ResourceSpans   { 1: Resource { 1: repeated KeyValue attributes }, 2: repeated ScopeSpans }
 *   ScopeSpans      { 1: InstrumentationScope { 1: name, 2: version }, 2: repeated Span }
 *   Span            { 1: bytes trace_id (16), 2: bytes span_id (8), 3: trace_state, 4: bytes parent_span_id,
 *                     5: name, 6: SpanKind kind (2 SERVER, 3 CLIENT), 7: fixed64 start_time_unix_nano,
 *                     8: fixed64 end_time_unix_nano, 9: repeated KeyValue attributes,
 *                     15: Status { 3: code (2 ERROR) } when the span has error=true }
 *   KeyValue        { 1: key, 2: AnyValue { 1: string_value } }
 *
 * The resource carries `service.name` (the config's service_name, else the node's cluster).
 */
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { SpanExporter, type ExporterStats, type HostPicker } from './exporter.js';
import type { Span } from './span.js';

const SCOPE_NAME = 'weft';

export class OtlpHttpExporter extends SpanExporter {
  constructor(
    pick: HostPicker,
    path: string,
    authority: string,
    timeoutMs: number,
    stats: ExporterStats,
    private readonly serviceName: string,
  ) {
    super(pick, path, 'application/x-protobuf', authority, timeoutMs, stats);
  }

  protected encode(spans: readonly Span[]): Uint8Array {
    return encodeExportRequest(spans, this.serviceName);
  }
}

function keyValue(w: BinaryWriter, field: number, key: string, value: string): void {
  w.tag(field, WireType.LengthDelimited).fork();
  w.tag(1, WireType.LengthDelimited).string(key);
  w.tag(2, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(value).join();
  w.join();
}

function nanos(ms: number): bigint {
  return BigInt(Math.round(ms * 1000)) * 1000n;
}

/** ExportTraceServiceRequest bytes for one resource (this proxy) and its spans. */
export function encodeExportRequest(spans: readonly Span[], serviceName: string): Uint8Array {
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).fork(); // ResourceSpans
  w.tag(1, WireType.LengthDelimited).fork(); // Resource
  keyValue(w, 1, 'service.name', serviceName);
  w.join();
  w.tag(2, WireType.LengthDelimited).fork(); // ScopeSpans
  w.tag(1, WireType.LengthDelimited).fork().tag(1, WireType.LengthDelimited).string(SCOPE_NAME).join();
  for (const s of spans) {
    w.tag(2, WireType.LengthDelimited).fork();
    w.tag(1, WireType.LengthDelimited).bytes(Buffer.from(s.traceId.padStart(32, '0'), 'hex'));
    w.tag(2, WireType.LengthDelimited).bytes(Buffer.from(s.spanId, 'hex'));
    if (s.traceState !== '') w.tag(3, WireType.LengthDelimited).string(s.traceState);
    if (s.parentId !== '') w.tag(4, WireType.LengthDelimited).bytes(Buffer.from(s.parentId, 'hex'));
    w.tag(5, WireType.LengthDelimited).string(s.name);
    w.tag(6, WireType.Varint).int32(s.kind === 'SERVER' ? 2 : 3);
    w.tag(7, WireType.Bit64).fixed64(nanos(s.startMs));
    w.tag(8, WireType.Bit64).fixed64(nanos(s.endMs));
    let error = false;
    for (let i = 0; i < s.tags.length; i += 2) {
      keyValue(w, 9, s.tags[i]!, s.tags[i + 1]!);
      if (s.tags[i] === 'error' && s.tags[i + 1] === 'true') error = true;
    }
    if (error) w.tag(15, WireType.LengthDelimited).fork().tag(3, WireType.Varint).int32(2).join();
    w.join();
  }
  w.join(); // ScopeSpans
  w.join(); // ResourceSpans
  return w.finish();
}
