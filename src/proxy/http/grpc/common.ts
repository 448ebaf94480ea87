/**
 * gRPC helpers for the request path, after Envoy's Grpc::Common and Grpc::Utility (source/common/grpc/).
 *
 * - `isGrpcContentType(ct)` / `isGrpcRequest(head)`: content-type `application/grpc` or `application/grpc+…`
 *   (Grpc::Common::isGrpcRequestHeaders; gRPC-Web is not gRPC here).
 * - `httpToGrpcStatus(status)`: Grpc::Utility::httpToGrpcStatus, the mapping of gRPC's
 *   http-grpc-status-mapping.md: 400 → INTERNAL (13), 401 → UNAUTHENTICATED (16), 403 → PERMISSION_DENIED (7),
 *   404 → UNIMPLEMENTED (12), 429/502/503/504 → UNAVAILABLE (14), anything else → UNKNOWN (2). Local replies to
 *   gRPC requests use it (see server/local-reply.ts).
 * - `parseGrpcTimeout(value)`: Grpc::Common::getGrpcTimeout — 1 to 8 ASCII digits and a unit `H M S m u n`;
 *   anything else is no timeout. Converted to whole milliseconds, rounded up so that a sub-millisecond timeout
 *   is not read as "none", and capped at 2^31-1 ms (about 24.8 days, the longest node timer).
 * - `grpcStatusOf(headers)`: the `grpc-status` of a response head (a trailers-only response carries it there),
 *   used by the retry conditions `cancelled`, `deadline-exceeded`, `internal`, `resource-exhausted`,
 *   `unavailable` (RetryStateImpl::wouldRetryFromHeaders).
 * - `encodeGrpcMessage(text)`: percent-encoding of grpc-message (gRPC's PROTOCOL-HTTP2: every byte outside
 *   0x20–0x7E, and `%`, as %XX of its UTF-8 bytes).
 */
import { getHeader, type HeaderList, type RequestHead } from '../headers.js';

export const GrpcStatus = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export function isGrpcContentType(ct: string | undefined): boolean {
  return ct !== undefined && ct.startsWith('application/grpc') && (ct.length === 16 || ct.charCodeAt(16) === 43 /* + */);
}

export function isGrpcRequest(head: RequestHead): boolean {
  return head.path !== '' && isGrpcContentType(getHeader(head.headers, 'content-type'));
}

export function httpToGrpcStatus(status: number): number {
  switch (status) {
    case 400:
      return GrpcStatus.INTERNAL;
    case 401:
      return GrpcStatus.UNAUTHENTICATED;
    case 403:
      return GrpcStatus.PERMISSION_DENIED;
    case 404:
      return GrpcStatus.UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
      return GrpcStatus.UNAVAILABLE;
    default:
      return GrpcStatus.UNKNOWN;
  }
}

const MAX_TIMER_MS = 2147483647;

/** grpc-timeout → milliseconds; undefined when absent or malformed. */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  const ms = grpcTimeoutMs(value);
  return ms === undefined || ms <= MAX_TIMER_MS ? ms : MAX_TIMER_MS;
}

function grpcTimeoutMs(value: string | undefined): number | undefined {
  if (value === undefined || value.length < 2 || value.length > 9) return undefined;
  let n = 0;
  for (let i = 0; i < value.length - 1; i++) {
    const c = value.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return undefined;
    n = n * 10 + c;
  }
  switch (value.charCodeAt(value.length - 1)) {
    case 72: // H
      return n * 3_600_000;
    case 77: // M
      return n * 60_000;
    case 83: // S
      return n * 1000;
    case 109: // m
      return n;
    case 117: // u
      return Math.ceil(n / 1000);
    case 110: // n
      return Math.ceil(n / 1_000_000);
    default:
      return undefined;
  }
}

/** The grpc-status of a header list, or undefined when absent or not a number. */
export function grpcStatusOf(h: HeaderList): number | undefined {
  const v = getHeader(h, 'grpc-status');
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  return Number.isInteger(n) && n >= 0 ? n : undefined;
}

export function encodeGrpcMessage(text: string): string {
  let plain = true;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return text;
  let out = '';
  for (const b of Buffer.from(text, 'utf8')) {
    out += b < 0x20 || b > 0x7e || b === 0x25 ? '%' + b.toString(16).toUpperCase().padStart(2, '0') : String.fromCharCode(b);
  }
  return out;
}
