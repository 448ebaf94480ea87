/**
 * HTTP/1 codec error codes. A parser that meets bad input never throws: it stops, sets `parser.error` to one of these
 * codes and `execute()` returns -1. The proxy answers a request-side error with `h1ErrorStatus(code)` (and
 * `connection: close`), logs `h1ErrorDetails(code)` as the response code details (Envoy's strings where Envoy has
 * one), and closes the connection. `H2C_PRIOR_KNOWLEDGE` is not a failure: the bytes are an HTTP/2 connection
 * preface and the listener switches to its HTTP/2 codec (`parser.rest` holds every byte from the preface on).
 *
 * Exports: H1ErrorCode, h1ErrorStatus(code), h1ErrorDetails(code), H1_ERROR_CODES.
 */

export type H1ErrorCode =
  /** Request line is not `method SP target SP version CRLF`. */
  | 'INVALID_REQUEST_LINE'
  /** Method has a non-token byte, or is not a known method while custom methods are not allowed. */
  | 'INVALID_METHOD'
  /** Request target has a forbidden byte or does not fit its method (origin/absolute/authority/asterisk form). */
  | 'INVALID_URL'
  /** Absolute-form target with a scheme other than http/https. */
  | 'INVALID_SCHEME'
  /** Version is not `HTTP/DIGIT.DIGIT`. */
  | 'INVALID_VERSION'
  /** Major version other than 1 (`HTTP/2.0` outside the connection preface, `HTTP/0.9`, ...). */
  | 'UNSUPPORTED_VERSION'
  /** HTTP/1.0 request while `acceptHttp10` is off (Envoy: 426 Upgrade Required). */
  | 'HTTP10_NOT_ACCEPTED'
  /** Empty field name or a non-token byte in it. */
  | 'INVALID_HEADER_NAME'
  /** Field line without a colon. */
  | 'INVALID_HEADER_LINE'
  /** Field name with an underscore while headersWithUnderscores is `reject` (Envoy). */
  | 'UNDERSCORE_IN_HEADER_NAME'
  /** Whitespace between field name and colon in a request (RFC 9112 §5.1). */
  | 'WHITESPACE_BEFORE_COLON'
  /** A field line starting with whitespace: obs-fold (RFC 9112 §5.2), or whitespace right after the start line. */
  | 'OBS_FOLD'
  /** Control byte (other than HTAB) or DEL in a field value or reason phrase. */
  | 'INVALID_HEADER_VALUE'
  /** LF without CR before it, or CR not followed by LF. */
  | 'INVALID_LINE_ENDING'
  /** Head (or trailer section) larger than maxHeaderBytes. */
  | 'HEADERS_TOO_LARGE'
  /** More field lines than maxHeaderCount. */
  | 'TOO_MANY_HEADERS'
  /** Content-Length that is not 1*DIGIT or exceeds 2^53-1. */
  | 'INVALID_CONTENT_LENGTH'
  /** Several Content-Length fields with different values. */
  | 'CONFLICTING_CONTENT_LENGTH'
  /** Both Content-Length and Transfer-Encoding (Envoy rejects unless allow_chunked_length). */
  | 'CONTENT_LENGTH_AND_TRANSFER_ENCODING'
  /** Transfer-Encoding other than exactly `chunked`, or Transfer-Encoding on CONNECT (Envoy: 501). */
  | 'UNSUPPORTED_TRANSFER_ENCODING'
  /** Chunk size missing, not hex, overflowing, or followed by junk. */
  | 'INVALID_CHUNK_SIZE'
  /** Chunk extension with a forbidden byte or longer than maxHeaderBytes. */
  | 'INVALID_CHUNK_EXTENSION'
  /** Chunk data not followed by CRLF. */
  | 'INVALID_CHUNK_DATA'
  /** No Host header (and no absolute-form target / default host for HTTP/1.0). */
  | 'MISSING_HOST'
  /** More than one Host field line (RFC 9112 §3.2). */
  | 'MULTIPLE_HOST'
  /** Host value that is not a valid authority. */
  | 'INVALID_HOST'
  /** Connection header nominates a protected header or too many headers (Envoy sanitizeConnectionHeader). */
  | 'CONNECTION_HEADER_REJECTED'
  /** CONNECT request with a non-zero Content-Length (Envoy: body_disallowed). */
  | 'CONNECT_WITH_BODY'
  /** The bytes are the HTTP/2 connection preface: switch the connection to HTTP/2. */
  | 'H2C_PRIOR_KNOWLEDGE'
  /** Response status line is malformed. */
  | 'INVALID_STATUS_LINE'
  /** Transfer-Encoding on a 1xx or 204 response. */
  | 'TRANSFER_ENCODING_NOT_ALLOWED'
  /** Non-zero Content-Length on a 1xx or 204 response. */
  | 'CONTENT_LENGTH_NOT_ALLOWED'
  /** The connection ended in the middle of a message. */
  | 'INCOMPLETE_MESSAGE';

const STATUS: Record<H1ErrorCode, number> = {
  INVALID_REQUEST_LINE: 400,
  INVALID_METHOD: 400,
  INVALID_URL: 400,
  INVALID_SCHEME: 400,
  INVALID_VERSION: 400,
  UNSUPPORTED_VERSION: 505,
  HTTP10_NOT_ACCEPTED: 426,
  INVALID_HEADER_NAME: 400,
  INVALID_HEADER_LINE: 400,
  UNDERSCORE_IN_HEADER_NAME: 400,
  WHITESPACE_BEFORE_COLON: 400,
  OBS_FOLD: 400,
  INVALID_HEADER_VALUE: 400,
  INVALID_LINE_ENDING: 400,
  HEADERS_TOO_LARGE: 431,
  TOO_MANY_HEADERS: 431,
  INVALID_CONTENT_LENGTH: 400,
  CONFLICTING_CONTENT_LENGTH: 400,
  CONTENT_LENGTH_AND_TRANSFER_ENCODING: 400,
  UNSUPPORTED_TRANSFER_ENCODING: 501,
  INVALID_CHUNK_SIZE: 400,
  INVALID_CHUNK_EXTENSION: 400,
  INVALID_CHUNK_DATA: 400,
  MISSING_HOST: 400,
  MULTIPLE_HOST: 400,
  INVALID_HOST: 400,
  CONNECTION_HEADER_REJECTED: 400,
  CONNECT_WITH_BODY: 400,
  H2C_PRIOR_KNOWLEDGE: 0,
  INVALID_STATUS_LINE: 400,
  TRANSFER_ENCODING_NOT_ALLOWED: 400,
  CONTENT_LENGTH_NOT_ALLOWED: 400,
  INCOMPLETE_MESSAGE: 400,
};

// Envoy's response code details (source/common/http/http1/codec_impl.cc Http1ResponseCodeDetailValues and
// StreamInfo::ResponseCodeDetails); codes without a dedicated Envoy string use its generic `http1.codec_error`.
const DETAILS: Partial<Record<H1ErrorCode, string>> = {
  HEADERS_TOO_LARGE: 'http1.headers_too_large',
  TOO_MANY_HEADERS: 'http1.too_many_headers',
  INVALID_HEADER_VALUE: 'http1.invalid_characters',
  CONNECTION_HEADER_REJECTED: 'http1.connection_header_rejected',
  INVALID_URL: 'http1.invalid_url',
  INVALID_SCHEME: 'http1.invalid_scheme',
  UNSUPPORTED_TRANSFER_ENCODING: 'http1.invalid_transfer_encoding',
  CONNECT_WITH_BODY: 'http1.body_disallowed',
  CONTENT_LENGTH_AND_TRANSFER_ENCODING: 'http1.content_length_and_chunked_not_allowed',
  TRANSFER_ENCODING_NOT_ALLOWED: 'http1.transfer_encoding_not_allowed',
  CONTENT_LENGTH_NOT_ALLOWED: 'http1.content_length_not_allowed',
  HTTP10_NOT_ACCEPTED: 'low_version',
  MISSING_HOST: 'missing_host_header',
  UNDERSCORE_IN_HEADER_NAME: 'http1.unexpected_underscore',
};

export const H1_ERROR_CODES: readonly H1ErrorCode[] = Object.keys(STATUS) as H1ErrorCode[];

/**
 * The status a server answers a request-side error with: 400, 431 (limits), 501 (transfer coding), 505 (version),
 * 426 (HTTP/1.0 refused). 0 for H2C_PRIOR_KNOWLEDGE (not an error reply). On the response side (upstream errors) the
 * proxy answers 502/503 itself; this table does not apply there.
 */
export function h1ErrorStatus(code: H1ErrorCode): number {
  return STATUS[code];
}

/** Envoy-style response code details for access logs (`%RESPONSE_CODE_DETAILS%`). */
export function h1ErrorDetails(code: H1ErrorCode): string {
  return DETAILS[code] ?? 'http1.codec_error';
}
