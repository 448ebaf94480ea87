/**
 * Local replies: responses the proxy writes itself (no route, no healthy upstream, upstream failures, timeouts,
 * overflow), with Envoy's status codes, bodies and response flags (source/common/router/router.cc,
 * source/common/stream_info/utility.cc).
 *
 *   flag  status  body                                                          when
 *   NR    404     (empty)                                                       no route matched
 *   NC    503*    (empty)                                                       the route's cluster is unknown
 *   UH    503     no healthy upstream                                           the load balancer found no host
 *   UO    503     upstream connect error or disconnect/reset before headers.   circuit breaker overflow
 *                 reset reason: overflow
 *   UF    503     upstream connect error or disconnect/reset before headers.   connection to the upstream failed
 *                 reset reason: connection failure
 *   UC    503     ... reset reason: connection termination                     upstream closed before a response
 *   UR    503     ... reset reason: remote reset                                upstream sent garbage (protocol error)
 *                                                                                 or reset the HTTP/2 stream
 *   UR    503     ... reset reason: remote refused stream reset                 HTTP/2 REFUSED_STREAM
 *   UT    504     upstream request timeout                                      route timeout / per-try timeout
 *   URX   -       (the upstream's response)                                     retries exhausted on a retriable answer
 *   (*) cluster_not_found_response_code, 503 by default.
 * When retries were made, the reset body says `retried and the latest reset reason: ...` as Envoy does.
 *
 * Every local reply carries `content-length`, `content-type: text/plain` when it has a body, `date` and `server`.
 * The debug header: a request carrying `x-weft-debug: 1` gets `x-weft-response-flags: <flags>` on any response
 * that earned flags (local or proxied), and `x-weft-response-code-details: <details>` on local replies.
 *
 * gRPC requests (content-type application/grpc…) get a gRPC-shaped local reply, as Envoy's
 * Http::Utility::sendLocalReply with is_grpc: a trailers-only response — HTTP 200, `content-type:
 * application/grpc`, `grpc-status` = Grpc::Utility::httpToGrpcStatus(status) (503 → 14 UNAVAILABLE, 404 → 12
 * UNIMPLEMENTED, 504 → 14, ...) unless the caller names a gRPC status (the stream duration timeout gives 4
 * DEADLINE_EXCEEDED), `grpc-message` = the body text (percent-encoded) when there is one — and no body.
 */
import { hasHeader, type HeaderList } from '../headers.js';
import { encodeGrpcMessage, httpToGrpcStatus } from '../grpc/common.js';

/** The request header that asks for the debug response headers. */
export const DEBUG_HEADER = 'x-weft-debug';
export const FLAGS_HEADER = 'x-weft-response-flags';
export const DETAILS_HEADER = 'x-weft-response-code-details';

export type ResetReason = 'overflow' | 'connection failure' | 'connection termination' | 'remote reset' | 'remote refused stream reset' | 'local reset';

const RESET_PREFIX = 'upstream connect error or disconnect/reset before headers. ';

/** Envoy's body for a reply caused by an upstream reset (`retried` when at least one retry was made). */
export function resetBody(reason: ResetReason, retried: boolean): string {
  return RESET_PREFIX + (retried ? 'retried and the latest reset reason: ' : 'reset reason: ') + reason;
}

/** The response flag Envoy sets for a reset reason. */
export function resetFlag(reason: ResetReason): string {
  switch (reason) {
    case 'overflow':
      return 'UO';
    case 'connection failure':
      return 'UF';
    case 'connection termination':
      return 'UC';
    case 'remote reset':
    case 'remote refused stream reset':
      return 'UR';
    case 'local reset':
      return 'LR';
  }
}

export const NO_HEALTHY_UPSTREAM = 'no healthy upstream';
export const UPSTREAM_TIMEOUT = 'upstream request timeout';

/** Adds a flag to a comma-separated flag list (Envoy prints several flags joined by `,`). */
export function addFlag(flags: string, flag: string): string {
  if (flags === '') return flag;
  if ((',' + flags + ',').includes(',' + flag + ',')) return flags;
  return flags + ',' + flag;
}

let cachedDate = '';
let cachedDateAt = 0;
/** The HTTP date of now, recomputed at most once a second. */
export function httpDate(): string {
  const now = Date.now();
  if (now - cachedDateAt >= 1000) {
    cachedDate = new Date(now).toUTCString();
    cachedDateAt = now - (now % 1000);
  }
  return cachedDate;
}

/**
 * The headers of a local reply (both protocols); returns the status to send and the body length (0 = none).
 * `headers` receives the fields; `grpcStatus` overrides the mapped gRPC status of a gRPC-shaped reply.
 */
export function localReplyHeaders(
  headers: HeaderList,
  status: number,
  body: string | Buffer,
  details: string,
  debug: boolean,
  grpc: boolean,
  grpcStatus?: number,
): { status: number; len: number } {
  if (grpc) {
    headers.push('content-type', 'application/grpc', 'grpc-status', String(grpcStatus ?? httpToGrpcStatus(status)));
    const text = typeof body === 'string' ? body : body.toString('utf8');
    if (text !== '') headers.push('grpc-message', encodeGrpcMessage(text));
    headers.push('date', httpDate());
    if (debug) headers.push(DETAILS_HEADER, details);
    return { status: 200, len: 0 };
  }
  const len = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
  if (len > 0 && !hasHeader(headers, 'content-type')) headers.push('content-type', 'text/plain');
  headers.push('content-length', String(len), 'date', httpDate());
  if (debug) headers.push(DETAILS_HEADER, details);
  return { status, len };
}
