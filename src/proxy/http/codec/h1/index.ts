/**
 * Weft's HTTP/1.1 codec: the proxy's fast path on raw net.Socket.
 *
 * - parser.ts: H1RequestParser (server side) and H1ResponseParser (client side), incremental over Buffer chunks,
 *   Envoy-strict (request smuggling defences), callbacks on a handler object.
 * - serialize.ts: one-string heads, Envoy's body framing decision, chunked-body helpers, field validators.
 * - hop-by-hop.ts: RFC 9110 §7.6.1 hop-by-hop removal with Envoy's Upgrade and `TE: trailers` exceptions.
 * - errors.ts: error codes, the status each maps to (400/426/431/501/505) and Envoy's response code details.
 */
export {
  H1RequestParser,
  H1ResponseParser,
  isValidAuthority,
  type H1ParserOptions,
  type H1RequestHandler,
  type H1RequestParserOptions,
  type H1ResponseHandler,
  type H1ResponseParserOptions,
} from './parser.js';
export {
  CHUNK_END,
  FRAME_CONNECT_REQUEST,
  FRAME_END_STREAM,
  FRAME_HAS_CONTENT_LENGTH,
  FRAME_HEAD_REQUEST,
  FRAME_HTTP10,
  FRAME_UPGRADE,
  FRAMING_CHUNK_BODY,
  FRAMING_CONTENT_LENGTH_ZERO,
  FRAMING_TRANSFER_ENCODING,
  LAST_CHUNK,
  chunkHeader,
  encodeChunk,
  isValidFieldName,
  isValidFieldValue,
  requestFraming,
  responseFraming,
  serializeRequestHead,
  serializeResponseHead,
  serializeTrailers,
} from './serialize.js';
export { removeHopByHopHeaders, sanitizeConnectionHeader } from './hop-by-hop.js';
export { H1_ERROR_CODES, h1ErrorDetails, h1ErrorStatus, type H1ErrorCode } from './errors.js';
