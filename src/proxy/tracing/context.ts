/**
 * Trace context propagation: reading the caller's span context from request headers and writing this proxy's span
 * into the request it forwards. Three wire formats, as Envoy's tracers read them:
 *
 * - W3C Trace Context: `traceparent: 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` (flag 01 = sampled),
 *   `tracestate` passed on unchanged. An all-zero id, a version `ff`, or a malformed value is ignored.
 * - B3 multi-header: `x-b3-traceid` (16 or 32 hex), `x-b3-spanid`, `x-b3-parentspanid`, `x-b3-sampled` (`1`/`0`,
 *   also `true`/`false`), `x-b3-flags: 1` (debug, implies sampled).
 * - B3 single header: `b3: <traceid>-<spanid>[-<sampling>[-<parentspanid>]]`, or only the sampling state
 *   (`0`, `1`, `d`).
 *
 *   const ctx = extractContext(head.headers, 'b3');    // preference: which format wins when several are present
 *   injectContext(head.headers, span, hadB3Single);     // replaces every trace header with this span's context
 *
 * Extraction tries the preferred format first (B3 for the Zipkin tracer, W3C for OpenTelemetry), then the others,
 * so a trace started by an application in either format continues. Injection writes both W3C and B3 multi headers
 * (and `b3` when the request carried one), so the next hop continues the trace whichever format it reads; ids
 * are lower-case hex, a 64-bit B3 trace id is left-padded to 128 bits in `traceparent`.
 */
import type { HeaderList } from '../http/headers.js';

/** The caller's span as the request headers carry it. */
export interface SpanContext {
  /** 16 or 32 lower-case hex digits. */
  traceId: string;
  /** The caller's span id (16 hex); '' when the headers carry only a sampling decision. */
  spanId: string;
  /** The caller's sampling decision; undefined when it made none. */
  sampled: boolean | undefined;
  /** W3C tracestate, '' when absent. */
  traceState: string;
}

export type ContextFormat = 'w3c' | 'b3';

const HEX = /^[0-9a-f]+$/;

function validId(id: string, lengths: readonly number[]): boolean {
  return lengths.includes(id.length) && HEX.test(id) && !/^0+$/.test(id);
}

function b3Sampled(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  const s = v.toLowerCase();
  if (s === '1' || s === 'true' || s === 'd') return true;
  if (s === '0' || s === 'false') return false;
  return undefined;
}

/** The first value of each trace header (one pass over the list). */
interface TraceHeaders {
  traceparent?: string;
  tracestate?: string;
  b3?: string;
  traceid?: string;
  spanid?: string;
  sampled?: string;
  flags?: string;
}

function collect(h: HeaderList): TraceHeaders {
  const t: TraceHeaders = {};
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    const c = n.charCodeAt(0) | 0x20;
    if (c !== 0x74 /* t */ && c !== 0x62 /* b */ && c !== 0x78 /* x */) continue;
    const l = n.toLowerCase();
    const v = h[i + 1]!.trim();
    switch (l) {
      case 'traceparent':
        t.traceparent ??= v;
        break;
      case 'tracestate':
        t.tracestate = t.tracestate === undefined ? v : `${t.tracestate},${v}`;
        break;
      case 'b3':
        t.b3 ??= v;
        break;
      case 'x-b3-traceid':
        t.traceid ??= v.toLowerCase();
        break;
      case 'x-b3-spanid':
        t.spanid ??= v.toLowerCase();
        break;
      case 'x-b3-sampled':
        t.sampled ??= v;
        break;
      case 'x-b3-flags':
        t.flags ??= v;
        break;
    }
  }
  return t;
}

function fromW3c(t: TraceHeaders): SpanContext | null {
  const v = t.traceparent;
  if (v === undefined) return null;
  const p = v.toLowerCase().split('-');
  if (p.length < 4 || p[0]!.length !== 2 || !HEX.test(p[0]!) || p[0] === 'ff') return null;
  if (p[0] === '00' && p.length !== 4) return null;
  const [, traceId, spanId, flags] = p as [string, string, string, string];
  if (!validId(traceId, [32]) || !validId(spanId, [16]) || flags.length !== 2 || !HEX.test(flags)) return null;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1, traceState: t.tracestate ?? '' };
}

function fromB3Single(t: TraceHeaders): SpanContext | null {
  const v = t.b3;
  if (v === undefined) return null;
  const p = v.toLowerCase().split('-');
  if (p.length === 1) {
    const sampled = b3Sampled(p[0]);
    return sampled === undefined ? null : { traceId: '', spanId: '', sampled, traceState: t.tracestate ?? '' };
  }
  if (p.length > 4 || !validId(p[0]!, [16, 32]) || !validId(p[1]!, [16])) return null;
  const sampled = p.length >= 3 ? b3Sampled(p[2]) : undefined;
  if (p.length >= 3 && sampled === undefined) return null;
  return { traceId: p[0]!, spanId: p[1]!, sampled, traceState: t.tracestate ?? '' };
}

function fromB3Multi(t: TraceHeaders): SpanContext | null {
  const flagsDebug = t.flags === '1';
  const sampled = flagsDebug ? true : b3Sampled(t.sampled);
  if (t.traceid === undefined || t.spanid === undefined) {
    // Only a sampling decision (x-b3-sampled: 0 without ids is how a caller says "do not trace").
    return sampled === undefined ? null : { traceId: '', spanId: '', sampled, traceState: t.tracestate ?? '' };
  }
  if (!validId(t.traceid, [16, 32]) || !validId(t.spanid, [16])) return null;
  return { traceId: t.traceid, spanId: t.spanid, sampled, traceState: t.tracestate ?? '' };
}

/** The caller's context, or null when the request carries none (or only malformed trace headers). */
export function extractContext(h: HeaderList, prefer: ContextFormat): SpanContext | null {
  const t = collect(h);
  if (prefer === 'w3c') return fromW3c(t) ?? fromB3Multi(t) ?? fromB3Single(t);
  return fromB3Multi(t) ?? fromB3Single(t) ?? fromW3c(t);
}

/** Whether the request carries a B3 single header (it is then rewritten too). */
export function hasB3Single(h: HeaderList): boolean {
  for (let i = 0; i < h.length; i += 2) if (h[i]!.length === 2 && h[i]!.toLowerCase() === 'b3') return true;
  return false;
}

const TRACE_HEADERS = new Set(['traceparent', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags']);

/** What injection writes: the span the next hop becomes a child of. */
export interface InjectedSpan {
  readonly traceId: string;
  readonly spanId: string;
  readonly parentId: string;
  readonly sampled: boolean;
  readonly traceState: string;
}

/** Replaces the trace headers of `h` with `s`'s context (W3C + B3 multi, and `b3` when `b3Single`). */
export function injectContext(h: HeaderList, s: InjectedSpan, b3Single: boolean): void {
  let w = 0;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    const c = n.charCodeAt(0) | 0x20;
    if ((c === 0x74 || c === 0x62 || c === 0x78) && TRACE_HEADERS.has(n.toLowerCase())) continue;
    h[w++] = n;
    h[w++] = h[i + 1]!;
  }
  h.length = w;
  const flag = s.sampled ? '1' : '0';
  h.push('traceparent', `00-${s.traceId.padStart(32, '0')}-${s.spanId}-0${flag}`);
  h.push('x-b3-traceid', s.traceId, 'x-b3-spanid', s.spanId, 'x-b3-sampled', flag);
  if (s.parentId !== '') h.push('x-b3-parentspanid', s.parentId);
  if (b3Single) h.push('b3', `${s.traceId}-${s.spanId}-${flag}${s.parentId !== '' ? '-' + s.parentId : ''}`);
}
