/**
 * HTTP/1.1 serializers: a whole head as one latin1 string (write it with `socket.write(s, 'latin1')`, one syscall
 * with the body when corked), chunked-body helpers, and Envoy's choice of body framing.
 *
 * - `serializeRequestHead(head, framing)`: `METHOD target HTTP/1.1`, `host: <authority>`, the fields, the framing
 *   field, blank line. The target is `head.path`, or `head.authority` for CONNECT. A Host entry left in
 *   `head.headers` is skipped (the authority is the Host). Upstream requests are always HTTP/1.1 (Envoy).
 * - `serializeResponseHead(head, framing, http10?, preserveReason?)`: `HTTP/1.1 <status> <reason>`; the reason is the
 *   standard phrase for the status, as Envoy writes it, unless `preserveReason` and `head.reason` is non-empty.
 *   `http10` writes `HTTP/1.0` (a response to an HTTP/1.0 request).
 * - `requestFraming(method, flags)` / `responseFraming(status, flags)`: Envoy's StreamEncoderImpl::encodeHeadersBase
 *   decision, returned as FRAMING_* bits: add `content-length: 0`, add `transfer-encoding: chunked`, chunk-encode the
 *   body. Input flags (FRAME_*): the message has a Content-Length, ends with its head (end_stream), is or answers an
 *   upgrade, answers a HEAD / CONNECT request, answers an HTTP/1.0 request.
 * - Chunked body: `chunkHeader(n)` (`<hex>\r\n`), then the data, then CHUNK_END (`\r\n`); LAST_CHUNK ends a body
 *   without trailers, `serializeTrailers(t)` ends it with trailers; `encodeChunk(buf)` builds one chunk as a Buffer.
 *
 * Contract: names and values must be valid field content (the parsers guarantee it for what they produced; filters
 * that set values from untrusted data check them with isValidFieldName / isValidFieldValue). The serializers do
 * not re-validate on the hot path.
 */
import { STATUS_CODES } from 'node:http';
import type { HeaderList, RequestHead, ResponseHead } from '../../headers.js';
import { FIELD_VALUE, TOKEN } from './chars.js';

/** Add `content-length: 0`. */
export const FRAMING_CONTENT_LENGTH_ZERO = 1;
/** Add `transfer-encoding: chunked`. */
export const FRAMING_TRANSFER_ENCODING = 2;
/** Chunk-encode the body (chunkHeader/CHUNK_END per write, LAST_CHUNK or serializeTrailers at the end). */
export const FRAMING_CHUNK_BODY = 4;

/** The message carries a Content-Length field. */
export const FRAME_HAS_CONTENT_LENGTH = 1;
/** The head is the whole message (no body follows). */
export const FRAME_END_STREAM = 2;
/** Upgrade request (Connection: upgrade + Upgrade), or a response passing an upgrade through. */
export const FRAME_UPGRADE = 4;
/** Response to a HEAD request. */
export const FRAME_HEAD_REQUEST = 8;
/** Response to a CONNECT request. */
export const FRAME_CONNECT_REQUEST = 16;
/** Response to an HTTP/1.0 request. */
export const FRAME_HTTP10 = 32;

/** Envoy HeaderUtility::requestShouldHaveNoBody. */
function bodilessMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'TRACE' || method === 'CONNECT';
}

/** Framing of an upstream request (Envoy RequestEncoderImpl::encodeHeaders + encodeHeadersBase). */
export function requestFraming(method: string, flags: number): number {
  if ((flags & FRAME_HAS_CONTENT_LENGTH) !== 0) return 0;
  // CONNECT and upgrades disable chunk encoding: the body is the tunnel's raw bytes.
  if (method === 'CONNECT' || (flags & FRAME_UPGRADE) !== 0) return 0;
  if ((flags & FRAME_END_STREAM) !== 0) return bodilessMethod(method) ? 0 : FRAMING_CONTENT_LENGTH_ZERO;
  return FRAMING_TRANSFER_ENCODING | FRAMING_CHUNK_BODY;
}

/** Framing of a downstream response (Envoy ResponseEncoderImpl::encodeHeaders + encodeHeadersBase). */
export function responseFraming(status: number, flags: number): number {
  if ((flags & FRAME_HAS_CONTENT_LENGTH) !== 0) return 0;
  // 1xx, 204 and 304 never carry a body or body framing (RFC 9110 §6.4.1, RFC 9112 §6.1).
  if (status < 200 || status === 204 || status === 304) return 0;
  const head = (flags & FRAME_HEAD_REQUEST) !== 0;
  if ((flags & FRAME_END_STREAM) !== 0 && !head) return FRAMING_CONTENT_LENGTH_ZERO;
  // An HTTP/1.0 client gets a close-delimited body.
  if ((flags & FRAME_HTTP10) !== 0) return 0;
  // A CONNECT that was not refused (status < 300) turns into a tunnel: no chunking, no framing field.
  const connect = (flags & FRAME_CONNECT_REQUEST) !== 0 && status < 300;
  if (connect) return 0;
  // A HEAD response announces chunking (as the GET response would) but carries no body.
  if (head || (flags & FRAME_UPGRADE) !== 0) return FRAMING_TRANSFER_ENCODING;
  return FRAMING_TRANSFER_ENCODING | FRAMING_CHUNK_BODY;
}

function framingFields(framing: number): string {
  if ((framing & FRAMING_TRANSFER_ENCODING) !== 0) return 'transfer-encoding: chunked\r\n\r\n';
  if ((framing & FRAMING_CONTENT_LENGTH_ZERO) !== 0) return 'content-length: 0\r\n\r\n';
  return '\r\n';
}

export function serializeRequestHead(head: RequestHead, framing: number): string {
  const method = head.method;
  let s =
    method + ' ' + (method === 'CONNECT' ? head.authority : head.path) + ' HTTP/1.1\r\nhost: ' + head.authority + '\r\n';
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) {
    const name = h[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host') continue;
    s += name + ': ' + h[i + 1]! + '\r\n';
  }
  return s + framingFields(framing);
}

const STATUS_LINE_11: string[] = [];
const STATUS_LINE_10: string[] = [];
for (let code = 100; code < 600; code++) {
  const reason = STATUS_CODES[code] ?? 'Unknown';
  STATUS_LINE_11[code] = 'HTTP/1.1 ' + code + ' ' + reason + '\r\n';
  STATUS_LINE_10[code] = 'HTTP/1.0 ' + code + ' ' + reason + '\r\n';
}

function statusLine(status: number, http10: boolean, reason: string | undefined, preserveReason: boolean): string {
  if (!(preserveReason && reason)) {
    const cached = http10 ? STATUS_LINE_10[status] : STATUS_LINE_11[status];
    if (cached !== undefined) return cached;
    reason = STATUS_CODES[status] ?? 'Unknown';
  }
  return (http10 ? 'HTTP/1.0 ' : 'HTTP/1.1 ') + status + ' ' + reason + '\r\n';
}

export function serializeResponseHead(
  head: ResponseHead,
  framing: number,
  http10 = false,
  preserveReason = false,
): string {
  let s = statusLine(head.status, http10, head.reason, preserveReason);
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) s += h[i]! + ': ' + h[i + 1]! + '\r\n';
  return s + framingFields(framing);
}

/** `<size in hex>\r\n`: the line before a chunk's data. */
export function chunkHeader(size: number): string {
  return size.toString(16) + '\r\n';
}

/** Written after each chunk's data. */
export const CHUNK_END = '\r\n';

/** Last chunk and empty trailer section: ends a chunked body. */
export const LAST_CHUNK = '0\r\n\r\n';

/** Last chunk with a trailer section. */
export function serializeTrailers(trailers: HeaderList): string {
  let s = '0\r\n';
  for (let i = 0; i < trailers.length; i += 2) s += trailers[i]! + ': ' + trailers[i + 1]! + '\r\n';
  return s + '\r\n';
}

/** One chunk (size line, data, CRLF) as a single Buffer. An empty `data` yields an empty Buffer (not a last chunk). */
export function encodeChunk(data: Buffer): Buffer {
  if (data.length === 0) return Buffer.alloc(0);
  const hdr = chunkHeader(data.length);
  const out = Buffer.allocUnsafe(hdr.length + data.length + 2);
  out.write(hdr, 0, 'latin1');
  data.copy(out, hdr.length);
  out[out.length - 2] = 13;
  out[out.length - 1] = 10;
  return out;
}

/** A field name is a non-empty token (RFC 9110 §5.1). */
export function isValidFieldName(name: string): boolean {
  if (name.length === 0) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c > 255 || TOKEN[c] !== 1) return false;
  }
  return true;
}

/** A field value holds only VCHAR, obs-text, SP and HTAB: no CR, LF, NUL or other control, nothing above 0xFF. */
export function isValidFieldValue(value: string): boolean {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c > 255 || FIELD_VALUE[c] !== 1) return false;
  }
  return true;
}
