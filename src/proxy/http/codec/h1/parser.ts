/**
 * Incremental HTTP/1.1 parsers over raw Buffers: `H1RequestParser` (server side: what a downstream client sends) and
 * `H1ResponseParser` (client side: what an upstream sends). One parser per connection, reused for every message on it
 * (keep-alive, pipelining). No streams, no per-byte allocation: bytes are classified with lookup tables while the
 * positions of names and values are noted, a head is decoded with one latin1 call and its strings are cut out of that,
 * and bodies are handed on as views of the caller's chunk (zero copy).
 *
 * Use:
 *   const p = new H1RequestParser(handler, options);
 *   socket.on('data', (chunk) => { const n = p.execute(chunk); if (n < 0) reject(p.error) ... });
 *   socket.on('end', () => p.finish());
 *
 * `execute(chunk)` returns the number of bytes of `chunk` it consumed: `chunk.length` unless a callback called
 * `pause()` (then the caller keeps `chunk.subarray(n)` and executes it later), or -1 on an error (`parser.error`
 * holds an H1ErrorCode, see errors.ts; the parser stays failed until `reset()`). It never throws on any input.
 * `finish()` tells the parser the peer closed: it completes a message delimited by the close (a response without
 * framing, an upgraded tunnel) and returns 0, or returns -1 with INCOMPLETE_MESSAGE when the close cut a message.
 * `idle` is true between messages; `messages` counts completed ones; `reset()` readies the object for a new
 * connection.
 *
 * Callbacks (one handler object per parser; the parser must not be re-entered from them):
 *   onRequestHead(head) / onResponseHead(head)   the head is complete; the per-message facts below are set;
 *   onInterimHead(head)                          (responses) a 1xx other than 101; the final response follows;
 *   onBody(chunk)                                body bytes, de-chunked; a view of the caller's Buffer;
 *   onMessageComplete(trailers)                  end of message; trailers of a chunked body, or null.
 * A message without a body gets onMessageComplete right after its head. After an upgrade (Upgrade request/101,
 * CONNECT and its 2xx) every later byte is passed to onBody unchanged, and `finish()` completes the message.
 *
 * Per-message facts, valid from the head callback on:
 *   keepAlive       the connection may carry another message (HTTP/1.1 unless `close`; HTTP/1.0 only with
 *                   `keep-alive`; false for upgrades and close-delimited responses);
 *   upgrade         the connection becomes a raw tunnel after this head;
 *   chunked         the body is chunked (Transfer-Encoding: chunked);
 *   contentLength   the Content-Length value, or -1;
 *   hasBody         body bytes (or tunnel bytes) follow the head;
 *   expectContinue  (requests) HTTP/1.1 `Expect: 100-continue`;
 *   readUntilClose  (responses) the body ends when the connection closes.
 *
 * Semantics (Envoy's HTTP/1 codec, source/common/http/http1/codec_impl.cc + balsa_parser.cc, and RFC 9110/9112):
 * - Content-Length and Transfer-Encoding together → CONTENT_LENGTH_AND_TRANSFER_ENCODING (400), unless
 *   `allowChunkedLength` (Envoy allow_chunked_length) and TE is chunked: then Content-Length is dropped.
 * - Transfer-Encoding whose (combined) value is not exactly `chunked`, or on CONNECT → UNSUPPORTED_TRANSFER_ENCODING
 *   (501). Several Content-Length fields are rejected, even with equal values (as Envoy).
 * - Field names must be tokens; no whitespace before the colon (requests; a response has it removed, RFC 9112 §5.1);
 *   no obs-fold; values may hold VCHAR, obs-text, SP and HTAB only. Every line ends in CRLF: a bare LF or bare CR is
 *   INVALID_LINE_ENDING (llhttp strict mode, Node's default). Empty lines before a start line are skipped.
 * - Limits: the head's bytes (start line and field lines) over `maxHeaderBytes` → HEADERS_TOO_LARGE (431), more than
 *   `maxHeaderCount` field lines → TOO_MANY_HEADERS (431); the same limits apply to a trailer section.
 * - Requests: method a token, and one of Envoy's known methods unless `allowCustomMethods`; targets in origin form,
 *   `*` (OPTIONS only), absolute form (`http://host:port/p`: authority and scheme from the URI, Host ignored, as
 *   RFC 9112 §3.2.2 and Envoy with allow_absolute_url) or authority form (CONNECT only, port required). HTTP/1.1 and
 *   1.x (x > 1, RFC 9110 §2.5) are served as 1.1; HTTP/1.0 only with `acceptHttp10` (else HTTP10_NOT_ACCEPTED,
 *   Envoy's 426); another major version → UNSUPPORTED_VERSION (505). Exactly one Host (RFC 9112 §3.2), valid as an
 *   authority; an HTTP/1.0 request without one takes `defaultHostForHttp10` if set. The Host field is not kept in
 *   `head.headers`: its value is `head.authority`. `Upgrade: h2c` is ignored as Envoy does (see hop-by-hop.ts).
 *   Connection options are sanitized as Envoy's codec does (CONNECTION_HEADER_REJECTED). Field names with `_` follow
 *   `headersWithUnderscores` (Envoy headers_with_underscores_action). The first request line of a connection that is
 *   the HTTP/2 preface (`PRI * HTTP/2.0`) → H2C_PRIOR_KNOWLEDGE with `parser.rest`.
 * - Responses: call `expectResponseTo(method)` before a response arrives, so HEAD responses have no body and a 2xx
 *   to CONNECT opens a tunnel. 1xx/204/304 have no body; a 1xx or 204 with Transfer-Encoding or a non-zero
 *   Content-Length is rejected (Envoy's client codec). No framing → the body runs until the connection closes.
 */
import type { HeaderList, RequestHead, ResponseHead } from '../../headers.js';
import { removeHeader } from '../../headers.js';
import { COLON, CR, FIELD_VALUE, HEX, HOST, HT, LF, SCHEME, SP, TARGET, TOKEN } from './chars.js';
import type { H1ErrorCode } from './errors.js';
import { sanitizeConnectionHeader, stripH2cUpgrade } from './hop-by-hop.js';

export interface H1RequestHandler {
  onRequestHead(head: RequestHead): void;
  onBody(chunk: Buffer): void;
  onMessageComplete(trailers: HeaderList | null): void;
}

export interface H1ResponseHandler {
  onResponseHead(head: ResponseHead): void;
  onInterimHead(head: ResponseHead): void;
  onBody(chunk: Buffer): void;
  onMessageComplete(trailers: HeaderList | null): void;
}

export interface H1ParserOptions {
  /**
   * Byte limit for a head (start line + field lines, CRLFs included) and for a trailer section. Default: 60 KiB for
   * requests (Envoy max_request_headers_kb default 60), 80 KiB for responses (Envoy MAX_RESPONSE_HEADERS_KB).
   */
  maxHeaderBytes?: number;
  /** Field-line limit per head / trailer section. Default 100 (Envoy max_headers_count default). */
  maxHeaderCount?: number;
  /** Envoy Http1ProtocolOptions.allow_chunked_length: accept CL + `TE: chunked` by dropping CL. Default false. */
  allowChunkedLength?: boolean;
}

export interface H1RequestParserOptions extends H1ParserOptions {
  /** Envoy Http1ProtocolOptions.accept_http_10. Default false: HTTP/1.0 requests fail with HTTP10_NOT_ACCEPTED. */
  acceptHttp10?: boolean;
  /** Envoy default_host_for_http_10: authority of an HTTP/1.0 request without Host. */
  defaultHostForHttp10?: string;
  /** Envoy allow_custom_methods. Default false: only Envoy's known methods are accepted. */
  allowCustomMethods?: boolean;
  /** Scheme of origin-form requests on this connection (`https` behind TLS). Default `http`. */
  scheme?: 'http' | 'https';
  /**
   * Envoy HttpProtocolOptions.headers_with_underscores_action for request fields and trailers. Default `allow`;
   * `reject` fails with UNDERSCORE_IN_HEADER_NAME (400), `drop` removes the field (counted in
   * `droppedUnderscoreHeaders`).
   */
  headersWithUnderscores?: 'allow' | 'reject' | 'drop';
}

interface Latin1Buffer extends Buffer {
  latin1Slice(start: number, end: number): string;
}
const hasLatin1Slice = typeof (Buffer.prototype as Partial<Latin1Buffer>).latin1Slice === 'function';
function latin1(b: Buffer, s: number, e: number): string {
  return hasLatin1Slice ? (b as Latin1Buffer).latin1Slice(s, e) : b.toString('latin1', s, e);
}

// Parser states. The first three are line states: input is consumed a line at a time.
const S_START = 0;
const S_HEADERS = 1;
const S_TRAILERS = 2;
const S_BODY = 3;
const S_CHUNK_SIZE = 4;
const S_CHUNK_BWS = 5;
const S_CHUNK_EXT = 6;
const S_CHUNK_LF = 7;
const S_CHUNK_DATA = 8;
const S_CHUNK_DATA_CR = 9;
const S_CHUNK_DATA_LF = 10;
const S_RAW = 11;
const S_ERROR = 12;

const NEED_MORE = -1;
const FAILED = -2;
const EMPTY = Buffer.alloc(0);

// Kinds of deferred strings (see H1ParserBase.record).
const K_FIELD = 0;
const K_HOST = 1;
const K_UPGRADE = 2;
const K_TE = 3;
const K_TARGET = 4;
const K_REASON = 5;
const REC = 5;

const US_ALLOW = 0;
const US_REJECT = 1;
const US_DROP = 2;

const CONN_CLOSE = 1;
const CONN_KEEP_ALIVE = 2;
const CONN_UPGRADE = 4;
const CONN_OTHER = 8;

/** Largest chunk size accumulator before one more hex digit could pass 2^53. */
const CHUNK_SIZE_LIMIT = 2 ** 49;

/** Methods Envoy's BalsaParser accepts when allow_custom_methods is false (balsa_parser.cc kValidMethods). */
const KNOWN_METHODS = new Set([
  'ACL', 'BIND', 'CHECKOUT', 'CONNECT', 'COPY', 'DELETE', 'GET', 'HEAD', 'LINK', 'LOCK', 'MERGE', 'MKACTIVITY',
  'MKCALENDAR', 'MKCOL', 'MOVE', 'MSEARCH', 'NOTIFY', 'OPTIONS', 'PATCH', 'POST', 'PROPFIND', 'PROPPATCH', 'PURGE',
  'PUT', 'REBIND', 'REPORT', 'SEARCH', 'SOURCE', 'SUBSCRIBE', 'TRACE', 'UNBIND', 'UNLINK', 'UNLOCK', 'UNSUBSCRIBE',
]);

/** Case-sensitive compare of bytes at `s` with an ASCII string. */
function bytesAre(b: Buffer, s: number, str: string): boolean {
  for (let k = 0; k < str.length; k++) if (b[s + k] !== str.charCodeAt(k)) return false;
  return true;
}

/** Case-insensitive compare of token bytes at `s` with a lower-case ASCII string (letters, digits, '-'). */
function lowerAre(b: Buffer, s: number, lower: string): boolean {
  for (let k = 0; k < lower.length; k++) if ((b[s + k]! | 0x20) !== lower.charCodeAt(k)) return false;
  return true;
}

/** The method as a string; the common ones are returned as constants (no allocation, fast === later). */
function methodString(b: Buffer, s: number, e: number): string {
  switch (e - s) {
    case 3:
      if (bytesAre(b, s, 'GET')) return 'GET';
      if (bytesAre(b, s, 'PUT')) return 'PUT';
      break;
    case 4:
      if (bytesAre(b, s, 'POST')) return 'POST';
      if (bytesAre(b, s, 'HEAD')) return 'HEAD';
      break;
    case 5:
      if (bytesAre(b, s, 'PATCH')) return 'PATCH';
      if (bytesAre(b, s, 'TRACE')) return 'TRACE';
      break;
    case 6:
      if (bytesAre(b, s, 'DELETE')) return 'DELETE';
      break;
    case 7:
      if (bytesAre(b, s, 'OPTIONS')) return 'OPTIONS';
      if (bytesAre(b, s, 'CONNECT')) return 'CONNECT';
      break;
  }
  return latin1(b, s, e);
}

const V_NEED = -1;
const V_BAD = -2;
const V_BARE_LF = -3;
/** Matches `HTTP/d.d` at i; returns major*10+minor, V_NEED when the bytes run out first, V_BAD / V_BARE_LF. */
function matchVersion(b: Buffer, i: number, end: number): number {
  const H = 'HTTP/';
  for (let k = 0; k < 5; k++) {
    if (i + k === end) return V_NEED;
    const c = b[i + k]!;
    if (c !== H.charCodeAt(k)) return c === LF ? V_BARE_LF : V_BAD;
  }
  if (i + 5 === end) return V_NEED;
  const major = b[i + 5]! - 0x30;
  if (major < 0 || major > 9) return V_BAD;
  if (i + 6 === end) return V_NEED;
  if (b[i + 6] !== 0x2e) return V_BAD;
  if (i + 7 === end) return V_NEED;
  const minor = b[i + 7]! - 0x30;
  if (minor < 0 || minor > 9) return V_BAD;
  return major * 10 + minor;
}

/** Connection option flags of the value bytes [s, e), with the number of options in the bits above 4. */
function connectionOptions(b: Buffer, s: number, e: number): number {
  let flags = 0;
  let count = 0;
  let i = s;
  while (i < e) {
    let c = b[i]!;
    if (c === SP || c === HT || c === 0x2c) {
      i++;
      continue;
    }
    const ts = i;
    while (i < e && b[i] !== 0x2c) i++;
    let te = i;
    while (te > ts && ((c = b[te - 1]!) === SP || c === HT)) te--;
    const n = te - ts;
    count++;
    if (n === 5 && lowerAre(b, ts, 'close')) flags |= CONN_CLOSE;
    else if (n === 10 && lowerAre(b, ts, 'keep-alive')) flags |= CONN_KEEP_ALIVE;
    else if (n === 7 && lowerAre(b, ts, 'upgrade')) flags |= CONN_UPGRADE;
    else flags |= CONN_OTHER;
  }
  return flags | (count << 4);
}

function hasUnderscore(b: Buffer, s: number, e: number): boolean {
  for (let i = s; i < e; i++) if (b[i] === 0x5f) return true;
  return false;
}

function isChunked(te: string): boolean {
  return te.length === 7 && (te === 'chunked' || te.toLowerCase() === 'chunked');
}

/** isValidAuthority over bytes [s, e) of a buffer (the Host value, checked during the scan). */
function isValidAuthorityBytes(b: Buffer, s: number, e: number): boolean {
  if (s === e) return false;
  let i = s;
  let c = b[s]!;
  if (c === 0x5b) {
    i++;
    while (i < e && ((c = b[i]!) === 0x3a || c === 0x2e || HEX[c]! >= 0)) i++;
    if (i === s + 1 || i === e || b[i] !== 0x5d) return false;
    i++;
  } else {
    while (i < e && HOST[b[i]!] === 1) i++;
    if (i === s) return false;
  }
  if (i === e) return true;
  if (b[i] !== 0x3a) return false;
  i++;
  let port = 0;
  while (i < e) {
    const d = b[i]! - 0x30;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
    if (port > 65535) return false;
    i++;
  }
  return true;
}

/**
 * host [":" port] with host = reg-name / IPv4 / "[" IPv6 "]" and port = *DIGIT ≤ 65535. `requirePort` (CONNECT)
 * needs a non-empty port.
 */
export function isValidAuthority(a: string, requirePort: boolean): boolean {
  const n = a.length;
  if (n === 0) return false;
  let i = 0;
  let c = a.charCodeAt(0);
  if (c === 0x5b) {
    i = 1;
    while (i < n && ((c = a.charCodeAt(i)) === 0x3a || c === 0x2e || (c < 256 && HEX[c]! >= 0))) i++;
    if (i === 1 || i === n || a.charCodeAt(i) !== 0x5d) return false;
    i++;
  } else {
    while (i < n && (c = a.charCodeAt(i)) < 256 && HOST[c] === 1) i++;
    if (i === 0) return false;
  }
  if (i === n) return !requirePort;
  if (a.charCodeAt(i) !== 0x3a) return false;
  i++;
  const ps = i;
  let port = 0;
  while (i < n) {
    const d = a.charCodeAt(i) - 0x30;
    if (d < 0 || d > 9) return false;
    port = port * 10 + d;
    if (port > 65535) return false;
    i++;
  }
  return !(requirePort && i === ps);
}

/** Sink for the callbacks the shared body machinery makes. */
interface BodySink {
  onBody(chunk: Buffer): void;
  onMessageComplete(trailers: HeaderList | null): void;
}

abstract class H1ParserBase {
  /** Set when execute()/finish() returned -1. */
  error: H1ErrorCode | null = null;
  /** After H2C_PRIOR_KNOWLEDGE: every byte received from the preface on (for the HTTP/2 codec). */
  rest: Buffer | null = null;
  keepAlive = false;
  upgrade = false;
  chunked = false;
  contentLength = -1;
  hasBody = false;
  /** Messages completed on this connection. */
  messages = 0;
  /** Fields dropped for an underscore in the name (Envoy stat http1.dropped_headers_with_underscores). */
  droppedUnderscoreHeaders = 0;

  protected state = S_START;
  protected paused = false;
  protected pend: Buffer = EMPTY;
  protected pendLen = 0;
  protected headBytes = 0;
  protected fieldCount = 0;
  protected remaining = 0;
  protected chunkLineBytes = 0;
  protected headers: HeaderList = [];
  protected trailers: HeaderList | null = null;
  // Facts gathered from the fields of the current head.
  protected te: string | null = null;
  protected conn = 0;
  protected connCount = 0;
  protected upgradeValue: string | null = null;
  protected versionMinor = 1;
  protected target = '';
  protected host = '';
  protected reason = '';
  // Deferred decoding: the scan records where names and values are (REC ints each: kind, name start/end, value
  // start/end) and flushRecords() decodes the whole span with one latin1 call, cutting the strings out of it.
  private rec = new Int32Array(32 * REC);
  protected nRec = 0;
  private recBuf: Buffer | null = null;

  readonly maxHeaderBytes: number;
  readonly maxHeaderCount: number;
  readonly allowChunkedLength: boolean;
  protected abstract readonly sink: BodySink;
  protected abstract readonly isRequest: boolean;
  protected underscores = US_ALLOW;

  constructor(opts: H1ParserOptions, defaultMaxHeaderBytes: number) {
    this.maxHeaderBytes = opts.maxHeaderBytes ?? defaultMaxHeaderBytes;
    this.maxHeaderCount = opts.maxHeaderCount ?? 100;
    this.allowChunkedLength = opts.allowChunkedLength ?? false;
  }

  /** Stops execute() after the current callback; it returns the bytes consumed so far. */
  pause(): void {
    this.paused = true;
  }

  /** Back to a fresh connection state (reuse of a parser object). */
  reset(): void {
    this.error = null;
    this.rest = null;
    this.keepAlive = false;
    this.upgrade = false;
    this.chunked = false;
    this.contentLength = -1;
    this.hasBody = false;
    this.messages = 0;
    this.state = S_START;
    this.paused = false;
    this.pendLen = 0;
    this.headBytes = 0;
    this.fieldCount = 0;
    this.remaining = 0;
    this.trailers = null;
    this.nRec = 0;
    this.recBuf = null;
  }

  /** True between messages (nothing of a next message received yet). */
  get idle(): boolean {
    return this.state === S_START && this.pendLen === 0;
  }

  execute(buf: Buffer): number {
    const r = this.run(buf);
    // Strings must not be cut out of a chunk after the caller got it back.
    if (this.nRec !== 0) this.flushRecords();
    return r;
  }

  private run(buf: Buffer): number {
    if (this.state === S_ERROR) return -1;
    this.paused = false;
    const end = buf.length;
    let pos = 0;
    while (pos < end) {
      switch (this.state) {
        case S_START:
        case S_HEADERS:
        case S_TRAILERS: {
          if (this.pendLen !== 0) {
            // A line began in an earlier chunk: gather it up to its LF, then parse it from the stash. A CR is only
            // ever legal right before LF, so a stash ending in CR fails at once if LF does not follow.
            if (this.pend[this.pendLen - 1] === CR && buf[pos] !== LF) {
              this.pendLen = 0;
              return this.failExec('INVALID_LINE_ENDING');
            }
            const lf = buf.indexOf(LF, pos);
            const stop = lf < 0 ? end : lf + 1;
            if (!this.stash(buf, pos, stop)) return -1;
            if (lf < 0) return end;
            const r = this.line(this.pend, 0, this.pendLen);
            if (this.nRec !== 0) this.flushRecords();
            if (r < 0) {
              if (r === NEED_MORE) this.fail('INVALID_LINE_ENDING');
              if (this.error === 'H2C_PRIOR_KNOWLEDGE') {
                this.rest = Buffer.concat([this.pend.subarray(0, this.pendLen), buf.subarray(stop)]);
              }
              this.pendLen = 0;
              return -1;
            }
            this.pendLen = 0;
            // A connection that once sent a huge line does not keep a huge stash.
            if (this.pend.length > 8192) this.pend = EMPTY;
            pos = stop;
          } else {
            const r = this.line(buf, pos, end);
            if (r === NEED_MORE) {
              if (this.nRec !== 0) this.flushRecords();
              if (!this.stash(buf, pos, end)) return -1;
              return end;
            }
            if (r === FAILED) {
              if (this.error === 'H2C_PRIOR_KNOWLEDGE') this.rest = buf.subarray(pos);
              return -1;
            }
            pos = r;
          }
          break;
        }
        case S_BODY:
        case S_CHUNK_DATA: {
          const avail = end - pos;
          let n = this.remaining;
          if (n > avail) n = avail;
          this.remaining -= n;
          const chunk = n === end ? buf : buf.subarray(pos, pos + n);
          pos += n;
          if (this.remaining === 0) {
            if (this.state === S_BODY) {
              this.sink.onBody(chunk);
              this.complete(null);
            } else {
              this.state = S_CHUNK_DATA_CR;
              this.sink.onBody(chunk);
            }
          } else {
            this.sink.onBody(chunk);
          }
          break;
        }
        case S_CHUNK_SIZE: {
          let c = 0;
          let v = 0;
          while (pos < end && (v = HEX[(c = buf[pos]!)]!) >= 0) {
            if (this.remaining >= CHUNK_SIZE_LIMIT) return this.failExec('INVALID_CHUNK_SIZE');
            this.remaining = this.remaining * 16 + v;
            pos++;
            if (++this.chunkLineBytes > this.maxHeaderBytes) return this.failExec('INVALID_CHUNK_SIZE');
          }
          if (pos === end) break;
          if (this.chunkLineBytes === 0) return this.failExec('INVALID_CHUNK_SIZE');
          pos++;
          this.chunkLineBytes++;
          if (c === CR) this.state = S_CHUNK_LF;
          else if (c === 0x3b) this.state = S_CHUNK_EXT;
          else if (c === SP || c === HT) this.state = S_CHUNK_BWS;
          else return this.failExec('INVALID_CHUNK_SIZE');
          break;
        }
        case S_CHUNK_BWS: {
          // chunk-ext = *( BWS ";" BWS ext-name ... ): whitespace after the size must lead to ';'.
          const c = buf[pos++]!;
          if (++this.chunkLineBytes > this.maxHeaderBytes) return this.failExec('INVALID_CHUNK_EXTENSION');
          if (c === 0x3b) this.state = S_CHUNK_EXT;
          else if (c !== SP && c !== HT) return this.failExec('INVALID_CHUNK_SIZE');
          break;
        }
        case S_CHUNK_EXT: {
          // Extensions are accepted and ignored; only their bytes are checked (no CTLs, no bare CR/LF).
          const start = pos;
          while (pos < end && FIELD_VALUE[buf[pos]!] === 1) pos++;
          this.chunkLineBytes += pos - start;
          if (this.chunkLineBytes > this.maxHeaderBytes) return this.failExec('INVALID_CHUNK_EXTENSION');
          if (pos === end) break;
          if (buf[pos] !== CR) return this.failExec('INVALID_CHUNK_EXTENSION');
          pos++;
          this.state = S_CHUNK_LF;
          break;
        }
        case S_CHUNK_LF: {
          if (buf[pos] !== LF) return this.failExec('INVALID_CHUNK_SIZE');
          pos++;
          if (this.remaining === 0) {
            this.state = S_TRAILERS;
            this.headBytes = 0;
            this.fieldCount = 0;
            this.trailers = null;
          } else {
            this.state = S_CHUNK_DATA;
          }
          break;
        }
        case S_CHUNK_DATA_CR: {
          if (buf[pos] !== CR) return this.failExec('INVALID_CHUNK_DATA');
          pos++;
          this.state = S_CHUNK_DATA_LF;
          break;
        }
        case S_CHUNK_DATA_LF: {
          if (buf[pos] !== LF) return this.failExec('INVALID_CHUNK_DATA');
          pos++;
          this.state = S_CHUNK_SIZE;
          this.remaining = 0;
          this.chunkLineBytes = 0;
          break;
        }
        case S_RAW: {
          const chunk = pos === 0 ? buf : buf.subarray(pos);
          pos = end;
          this.sink.onBody(chunk);
          break;
        }
        default:
          return -1;
      }
      if (this.paused) return pos;
    }
    return pos;
  }

  /** The peer closed its side. */
  finish(): number {
    if (this.state === S_ERROR) return -1;
    if (this.state === S_RAW) {
      this.complete(null);
      return 0;
    }
    if (this.state === S_START && this.pendLen === 0) return 0;
    return this.failExec('INCOMPLETE_MESSAGE');
  }

  protected fail(code: H1ErrorCode): number {
    this.error = code;
    this.state = S_ERROR;
    this.nRec = 0;
    this.recBuf = null;
    return FAILED;
  }

  /** Notes a string to decode later: a field (name and value) or a single value (ns/ne unused). */
  protected record(b: Buffer, kind: number, ns: number, ne: number, vs: number, ve: number): void {
    if (b !== this.recBuf) {
      if (this.nRec !== 0) this.flushRecords();
      this.recBuf = b;
    }
    let r = this.rec;
    const k = this.nRec * REC;
    if (k + REC > r.length) {
      const bigger = new Int32Array(r.length * 2);
      bigger.set(r);
      this.rec = r = bigger;
    }
    r[k] = kind;
    r[k + 1] = ns;
    r[k + 2] = ne;
    r[k + 3] = vs;
    r[k + 4] = ve;
    this.nRec++;
  }

  /** Decodes every recorded string with one latin1 call and stores them where they belong. */
  protected flushRecords(): void {
    const n = this.nRec;
    const b = this.recBuf;
    this.nRec = 0;
    this.recBuf = null;
    if (n === 0 || b === null || this.state === S_ERROR) return;
    const r = this.rec;
    const base = r[0] === K_TARGET || r[0] === K_REASON ? r[3]! : r[1]!;
    const str = latin1(b, base, r[(n - 1) * REC + 4]!);
    const h = this.headers;
    for (let i = 0; i < n; i++) {
      const k = i * REC;
      const kind = r[k]!;
      const value = str.slice(r[k + 3]! - base, r[k + 4]! - base);
      switch (kind) {
        case K_FIELD:
          h.push(str.slice(r[k + 1]! - base, r[k + 2]! - base), value);
          break;
        case K_HOST:
          this.host = value;
          break;
        case K_UPGRADE:
          h.push(str.slice(r[k + 1]! - base, r[k + 2]! - base), value);
          this.upgradeValue = this.upgradeValue === null ? value : this.upgradeValue + ',' + value;
          break;
        case K_TE:
          h.push(str.slice(r[k + 1]! - base, r[k + 2]! - base), value);
          this.te = this.te === null ? value : this.te + ',' + value;
          break;
        case K_TARGET:
          this.target = value;
          break;
        default:
          this.reason = value;
      }
    }
  }

  protected failField(code: H1ErrorCode): number {
    this.fail(code);
    return -1;
  }

  protected failExec(code: H1ErrorCode): number {
    this.fail(code);
    return -1;
  }

  /**
   * Appends bytes of an unfinished line to the stash. The limit is enforced exactly when the line completes; this
   * guard only stops unbounded buffering (its 2 bytes of slack are the CRLF of a head's final empty line).
   */
  private stash(buf: Buffer, s: number, e: number): boolean {
    const need = this.pendLen + (e - s);
    if (this.headBytes + need > this.maxHeaderBytes + 2) {
      this.pendLen = 0;
      this.fail('HEADERS_TOO_LARGE');
      return false;
    }
    if (need > this.pend.length) {
      let cap = this.pend.length * 2;
      if (cap < 256) cap = 256;
      if (cap < need) cap = need;
      const next = Buffer.allocUnsafe(cap);
      this.pend.copy(next, 0, 0, this.pendLen);
      this.pend = next;
    }
    buf.copy(this.pend, this.pendLen, s, e);
    this.pendLen = need;
    return true;
  }

  protected complete(trailers: HeaderList | null): void {
    this.state = S_START;
    this.headBytes = 0;
    this.fieldCount = 0;
    this.messages++;
    this.afterComplete();
    this.sink.onMessageComplete(trailers);
  }

  protected afterComplete(): void {}

  /** Starts the body state the facts call for; the caller has already reported the head. */
  protected startBody(raw: boolean): void {
    if (raw) {
      this.state = S_RAW;
    } else if (this.chunked) {
      this.state = S_CHUNK_SIZE;
      this.remaining = 0;
      this.chunkLineBytes = 0;
    } else if (this.contentLength > 0) {
      this.state = S_BODY;
      this.remaining = this.contentLength;
    }
  }

  /** Resets the per-head facts before the fields of a new head. */
  protected beginHead(lineBytes: number): void {
    this.state = S_HEADERS;
    this.headBytes = lineBytes;
    this.fieldCount = 0;
    this.headers = [];
    this.te = null;
    this.conn = 0;
    this.connCount = 0;
    this.upgradeValue = null;
    this.contentLength = -1;
    this.keepAlive = false;
    this.upgrade = false;
    this.chunked = false;
    this.hasBody = false;
  }

  /** One complete-or-partial line at s: returns the next position, NEED_MORE or FAILED. */
  private line(b: Buffer, s: number, end: number): number {
    if (this.state === S_START) {
      const c = b[s];
      if (c === CR) {
        // Empty lines before a start line are ignored (RFC 9112 §2.2).
        if (s + 1 === end) return NEED_MORE;
        if (b[s + 1] !== LF) return this.fail('INVALID_LINE_ENDING');
        return s + 2;
      }
      if (c === LF) return this.fail('INVALID_LINE_ENDING');
      return this.firstLine(b, s, end);
    }
    return this.fieldLine(b, s, end, this.state === S_TRAILERS);
  }

  protected abstract firstLine(b: Buffer, s: number, end: number): number;
  protected abstract headDone(next: number): number;
  protected abstract specialField(b: Buffer, s: number, ne: number, vs: number, ve: number): number;

  private fieldLine(b: Buffer, s: number, end: number, trailer: boolean): number {
    let c = b[s]!;
    if (c === CR) {
      if (s + 1 === end) return NEED_MORE;
      if (b[s + 1] !== LF) return this.fail('INVALID_LINE_ENDING');
      if (trailer) {
        const t = this.trailers;
        this.trailers = null;
        this.complete(t);
        return s + 2;
      }
      return this.headDone(s + 2);
    }
    if (c === SP || c === HT) return this.fail('OBS_FOLD');
    if (c === LF) return this.fail('INVALID_LINE_ENDING');
    let i = s;
    while (i < end && TOKEN[b[i]!] === 1) i++;
    if (i === end) return NEED_MORE;
    const ne = i;
    c = b[i]!;
    if (c !== COLON) {
      if (c === SP || c === HT) {
        if (this.isRequest) return this.fail('WHITESPACE_BEFORE_COLON');
        // A proxy removes whitespace before the colon of a response field (RFC 9112 §5.1).
        while (i < end && ((c = b[i]!) === SP || c === HT)) i++;
        if (i === end) return NEED_MORE;
        if (c !== COLON) return this.fail('INVALID_HEADER_LINE');
      } else if (c === CR || c === LF) {
        return this.fail('INVALID_HEADER_LINE');
      } else {
        return this.fail('INVALID_HEADER_NAME');
      }
    }
    if (ne === s) return this.fail('INVALID_HEADER_NAME');
    i++;
    while (i < end && ((c = b[i]!) === SP || c === HT)) i++;
    const vs = i;
    while (i < end && FIELD_VALUE[b[i]!] === 1) i++;
    if (i === end) return NEED_MORE;
    c = b[i]!;
    if (c !== CR) return this.fail(c === LF ? 'INVALID_LINE_ENDING' : 'INVALID_HEADER_VALUE');
    if (i + 1 === end) return NEED_MORE;
    if (b[i + 1] !== LF) return this.fail('INVALID_LINE_ENDING');
    let ve = i;
    while (ve > vs && ((c = b[ve - 1]!) === SP || c === HT)) ve--;
    const next = i + 2;
    if ((this.headBytes += next - s) > this.maxHeaderBytes) return this.fail('HEADERS_TOO_LARGE');
    if (this.underscores !== US_ALLOW && hasUnderscore(b, s, ne)) {
      // Envoy headers_with_underscores_action (requests only): a dropped field does not count towards the limit.
      if (this.underscores === US_REJECT) return this.fail('UNDERSCORE_IN_HEADER_NAME');
      this.droppedUnderscoreHeaders++;
      return next;
    }
    if (++this.fieldCount > this.maxHeaderCount) return this.fail('TOO_MANY_HEADERS');
    if (trailer) {
      const t = this.trailers ?? (this.trailers = []);
      t.push(latin1(b, s, ne), latin1(b, vs, ve));
      return next;
    }
    const n = ne - s;
    if (n === 4 || n === 6 || n === 7 || n === 10 || n === 14 || n === 17) {
      const r = this.specialField(b, s, ne, vs, ve);
      if (r !== 0) return r === 1 ? next : FAILED;
    }
    this.record(b, K_FIELD, s, ne, vs, ve);
    return next;
  }

  /**
   * The fields both directions interpret. Returns 1 when the field was fully handled (pushed or dropped), 0 to let
   * the caller push it, -1 on failure.
   */
  protected commonField(b: Buffer, s: number, ne: number, vs: number, ve: number): number {
    switch (ne - s) {
      case 7:
        if (lowerAre(b, s, 'upgrade')) {
          this.record(b, K_UPGRADE, s, ne, vs, ve);
          return 1;
        }
        return 0;
      case 10:
        if (lowerAre(b, s, 'connection')) {
          const r = connectionOptions(b, vs, ve);
          this.conn |= r & 15;
          this.connCount += r >> 4;
        }
        return 0;
      case 14:
        if (lowerAre(b, s, 'content-length')) {
          if (vs === ve) return this.failField('INVALID_CONTENT_LENGTH');
          let n = 0;
          for (let k = vs; k < ve; k++) {
            const d = b[k]! - 0x30;
            if (d < 0 || d > 9) return this.failField('INVALID_CONTENT_LENGTH');
            n = n * 10 + d;
            if (n > Number.MAX_SAFE_INTEGER) return this.failField('INVALID_CONTENT_LENGTH');
          }
          if (this.contentLength >= 0) {
            // Several Content-Length fields are refused even when equal, as Envoy does (Balsa with
            // disallow_multiple_content_length): RFC 9110 §8.6 only permits merging them, and a proxy that merges
            // while another hop does not is a request-smuggling gap.
            return this.failField('CONFLICTING_CONTENT_LENGTH');
          }
          this.contentLength = n;
        }
        return 0;
      case 17:
        if (lowerAre(b, s, 'transfer-encoding')) {
          this.record(b, K_TE, s, ne, vs, ve);
          return 1;
        }
        return 0;
      default:
        return 0;
    }
  }

  /**
   * Content-Length / Transfer-Encoding rules both directions share (Envoy onHeadersCompleteImpl). Sets `chunked`.
   * Returns false after fail().
   */
  protected framing(isConnect: boolean): boolean {
    const te = this.te;
    if (te === null) return true;
    if (this.contentLength >= 0) {
      if (this.allowChunkedLength && isChunked(te)) {
        removeHeader(this.headers, 'content-length');
        this.contentLength = -1;
      } else {
        this.fail('CONTENT_LENGTH_AND_TRANSFER_ENCODING');
        return false;
      }
    }
    if (isConnect || !isChunked(te)) {
      this.fail('UNSUPPORTED_TRANSFER_ENCODING');
      return false;
    }
    this.chunked = true;
    return true;
  }

  protected keepAliveFor(http10: boolean): boolean {
    const c = this.conn;
    if (http10) return (c & CONN_KEEP_ALIVE) !== 0 && (c & CONN_CLOSE) === 0;
    return (c & CONN_CLOSE) === 0;
  }
}

export class H1RequestParser extends H1ParserBase {
  expectContinue = false;

  protected readonly sink: H1RequestHandler;
  protected readonly isRequest = true;
  private readonly handler: H1RequestHandler;
  private readonly acceptHttp10: boolean;
  private readonly defaultHost: string;
  private readonly allowCustomMethods: boolean;
  private readonly scheme: 'http' | 'https';
  private method = '';
  private hostCount = 0;
  private hostInvalid = false;
  private expect = false;

  constructor(handler: H1RequestHandler, opts: H1RequestParserOptions = {}) {
    super(opts, 60 * 1024);
    this.handler = handler;
    this.sink = handler;
    this.acceptHttp10 = opts.acceptHttp10 ?? false;
    this.defaultHost = opts.defaultHostForHttp10 ?? '';
    this.allowCustomMethods = opts.allowCustomMethods ?? false;
    this.scheme = opts.scheme ?? 'http';
    const u = opts.headersWithUnderscores ?? 'allow';
    this.underscores = u === 'reject' ? US_REJECT : u === 'drop' ? US_DROP : US_ALLOW;
  }

  override reset(): void {
    super.reset();
    this.expectContinue = false;
  }

  protected firstLine(b: Buffer, s: number, end: number): number {
    let i = s;
    while (i < end && TOKEN[b[i]!] === 1) i++;
    if (i === end) return NEED_MORE;
    const me = i;
    let c = b[i]!;
    if (c !== SP || me === s) {
      if (me !== s && (c === CR || c === LF)) return this.fail('INVALID_REQUEST_LINE');
      return this.fail('INVALID_METHOD');
    }
    i++;
    const ts = i;
    while (i < end && TARGET[b[i]!] === 1) i++;
    if (i === end) return NEED_MORE;
    const te = i;
    c = b[i]!;
    if (c !== SP) return this.fail(c === CR || c === LF ? 'INVALID_REQUEST_LINE' : 'INVALID_URL');
    if (te === ts) return this.fail('INVALID_URL');
    i++;
    const v = matchVersion(b, i, end);
    if (v < 0) {
      if (v === V_NEED) return NEED_MORE;
      return this.fail(v === V_BARE_LF ? 'INVALID_LINE_ENDING' : 'INVALID_VERSION');
    }
    i += 8;
    if (i === end) return NEED_MORE;
    c = b[i]!;
    if (c !== CR) return this.fail(c === LF ? 'INVALID_LINE_ENDING' : 'INVALID_VERSION');
    if (i + 1 === end) return NEED_MORE;
    if (b[i + 1] !== LF) return this.fail('INVALID_LINE_ENDING');
    const next = i + 2;
    if (next - s > this.maxHeaderBytes) return this.fail('HEADERS_TOO_LARGE');
    // HTTP/2 connection preface (RFC 9113 §3.4) at the start of the connection: prior-knowledge h2c.
    if (v === 20 && this.messages === 0 && me - s === 3 && bytesAre(b, s, 'PRI') && te - ts === 1 && b[ts] === 0x2a) {
      return this.fail('H2C_PRIOR_KNOWLEDGE');
    }
    const method = methodString(b, s, me);
    if (!this.allowCustomMethods && !KNOWN_METHODS.has(method)) return this.fail('INVALID_METHOD');
    if (v < 10 || v >= 20) return this.fail('UNSUPPORTED_VERSION');
    this.beginHead(next - s);
    this.method = method;
    this.record(b, K_TARGET, ts, ts, ts, te);
    this.versionMinor = v - 10;
    this.host = '';
    this.hostCount = 0;
    this.hostInvalid = false;
    this.expect = false;
    this.expectContinue = false;
    return next;
  }

  protected specialField(b: Buffer, s: number, ne: number, vs: number, ve: number): number {
    const n = ne - s;
    if (n === 4) {
      if (!lowerAre(b, s, 'host')) return 0;
      this.hostCount++;
      // An empty Host is allowed (RFC 9112 §3.2: no authority in the target URI).
      if (vs !== ve && !isValidAuthorityBytes(b, vs, ve)) this.hostInvalid = true;
      this.record(b, K_HOST, s, ne, vs, ve);
      return 1;
    }
    if (n === 6) {
      if (lowerAre(b, s, 'expect') && ve - vs === 12 && lowerAre(b, vs, '100-continue')) this.expect = true;
      return 0;
    }
    return this.commonField(b, s, ne, vs, ve);
  }

  protected headDone(next: number): number {
    if (this.nRec !== 0) this.flushRecords();
    const h = this.headers;
    const method = this.method;
    let upgrade = false;
    if ((this.conn & CONN_UPGRADE) !== 0 && this.upgradeValue !== null) {
      if (this.upgradeValue.trim().toLowerCase() === 'h2c') stripH2cUpgrade(h);
      else upgrade = true;
    }
    const isConnect = method === 'CONNECT';
    if (isConnect) {
      if (this.contentLength > 0) return this.fail('CONNECT_WITH_BODY');
      if (this.contentLength === 0) {
        removeHeader(h, 'content-length');
        this.contentLength = -1;
      }
      upgrade = true;
    }
    if (!this.framing(isConnect)) return FAILED;
    if (!upgrade && this.connCount > 0 && ((this.conn & CONN_OTHER) !== 0 || this.connCount >= 10)) {
      if (!sanitizeConnectionHeader(h)) return this.fail('CONNECTION_HEADER_REJECTED');
    }

    const t = this.target;
    let path: string;
    let authority: string | null = null;
    let scheme = this.scheme;
    const c0 = t.charCodeAt(0);
    if (isConnect) {
      if (!isValidAuthority(t, true)) return this.fail('INVALID_URL');
      path = '';
      authority = t;
    } else if (c0 === 0x2f) {
      path = t;
    } else if (c0 === 0x2a && t.length === 1 && method === 'OPTIONS') {
      path = '*';
    } else {
      // Absolute form (RFC 9112 §3.2.2): scheme "://" authority [path-abempty] ["?" query].
      const n = t.length;
      if (!((c0 >= 0x41 && c0 <= 0x5a) || (c0 >= 0x61 && c0 <= 0x7a))) return this.fail('INVALID_URL');
      let i = 1;
      while (i < n && SCHEME[t.charCodeAt(i)] === 1) i++;
      if (t.charCodeAt(i) !== 0x3a || t.charCodeAt(i + 1) !== 0x2f || t.charCodeAt(i + 2) !== 0x2f) {
        return this.fail('INVALID_URL');
      }
      const sch = t.slice(0, i).toLowerCase();
      if (sch === 'http') scheme = 'http';
      else if (sch === 'https') scheme = 'https';
      else return this.fail('INVALID_SCHEME');
      const as = i + 3;
      let j = as;
      while (j < n) {
        const c = t.charCodeAt(j);
        if (c === 0x2f || c === 0x3f || c === 0x23) break;
        j++;
      }
      authority = t.slice(as, j);
      if (!isValidAuthority(authority, false)) return this.fail('INVALID_URL');
      path = j === n ? '/' : t.charCodeAt(j) === 0x2f ? t.slice(j) : '/' + t.slice(j);
    }

    const http10 = this.versionMinor === 0;
    if (http10 && !this.acceptHttp10) return this.fail('HTTP10_NOT_ACCEPTED');
    if (this.hostCount > 1) return this.fail('MULTIPLE_HOST');
    if (authority === null) {
      if (this.hostCount === 1) {
        if (this.hostInvalid) return this.fail('INVALID_HOST');
        authority = this.host;
      } else if (http10 && this.defaultHost !== '') {
        authority = this.defaultHost;
      } else {
        return this.fail('MISSING_HOST');
      }
    }

    let keepAlive = this.keepAliveFor(http10);
    // RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing; close after it.
    if (http10 && this.chunked) keepAlive = false;
    if (upgrade) {
      // The connection becomes a tunnel: framing no longer applies (Envoy: handling_upgrade_).
      keepAlive = false;
      this.chunked = false;
    }
    this.keepAlive = keepAlive;
    this.upgrade = upgrade;
    this.expectContinue = !http10 && this.expect;
    this.hasBody = upgrade || this.chunked || this.contentLength > 0;
    const head: RequestHead = {
      method,
      path,
      authority,
      scheme,
      headers: h,
      httpVersion: http10 ? '1.0' : '1.1',
    };
    this.state = S_START;
    this.startBody(upgrade);
    this.handler.onRequestHead(head);
    if (!this.hasBody) this.complete(null);
    return next;
  }
}

export interface H1ResponseParserOptions extends H1ParserOptions {}

export class H1ResponseParser extends H1ParserBase {
  readUntilClose = false;

  protected readonly sink: H1ResponseHandler;
  protected readonly isRequest = false;
  private readonly handler: H1ResponseHandler;
  private status = 0;
  private toHead = false;
  private toConnect = false;

  constructor(handler: H1ResponseHandler, opts: H1ResponseParserOptions = {}) {
    super(opts, 80 * 1024);
    this.handler = handler;
    this.sink = handler;
  }

  /** Declares the method of the request the next response answers (HEAD: no body; CONNECT: 2xx opens a tunnel). */
  expectResponseTo(method: string): void {
    this.toHead = method === 'HEAD';
    this.toConnect = method === 'CONNECT';
  }

  override reset(): void {
    super.reset();
    this.readUntilClose = false;
    this.toHead = false;
    this.toConnect = false;
  }

  protected override afterComplete(): void {
    this.toHead = false;
    this.toConnect = false;
  }

  protected firstLine(b: Buffer, s: number, end: number): number {
    const v = matchVersion(b, s, end);
    if (v < 0) {
      if (v === V_NEED) return NEED_MORE;
      return this.fail(v === V_BARE_LF ? 'INVALID_LINE_ENDING' : 'INVALID_STATUS_LINE');
    }
    let i = s + 8;
    if (i === end) return NEED_MORE;
    if (b[i] !== SP) return this.fail('INVALID_STATUS_LINE');
    i++;
    let status = 0;
    for (let k = 0; k < 3; k++, i++) {
      if (i === end) return NEED_MORE;
      const d = b[i]! - 0x30;
      if (d < 0 || d > 9) return this.fail('INVALID_STATUS_LINE');
      status = status * 10 + d;
    }
    if (status < 100) return this.fail('INVALID_STATUS_LINE');
    if (i === end) return NEED_MORE;
    let c = b[i]!;
    let rs = i;
    let re = i;
    if (c === SP) {
      // reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ); a missing one (no SP) is tolerated, as llhttp does.
      i++;
      rs = i;
      while (i < end && FIELD_VALUE[b[i]!] === 1) i++;
      if (i === end) return NEED_MORE;
      re = i;
      c = b[i]!;
    }
    if (c !== CR) return this.fail(c === LF ? 'INVALID_LINE_ENDING' : 'INVALID_STATUS_LINE');
    if (i + 1 === end) return NEED_MORE;
    if (b[i + 1] !== LF) return this.fail('INVALID_LINE_ENDING');
    const next = i + 2;
    if (next - s > this.maxHeaderBytes) return this.fail('HEADERS_TOO_LARGE');
    if (v < 10 || v >= 20) return this.fail('UNSUPPORTED_VERSION');
    this.beginHead(next - s);
    this.status = status;
    if (re === rs) this.reason = '';
    else if (re - rs === 2 && bytesAre(b, rs, 'OK')) this.reason = 'OK';
    else this.record(b, K_REASON, rs, rs, rs, re);
    this.versionMinor = v - 10;
    this.readUntilClose = false;
    return next;
  }

  protected specialField(b: Buffer, s: number, ne: number, vs: number, ve: number): number {
    return this.commonField(b, s, ne, vs, ve);
  }

  protected headDone(next: number): number {
    if (this.nRec !== 0) this.flushRecords();
    const status = this.status;
    const h = this.headers;
    if (!this.framing(false)) return FAILED;
    const informational = status < 200;
    if (informational || status === 204) {
      if (this.chunked) return this.fail('TRANSFER_ENCODING_NOT_ALLOWED');
      if (this.contentLength > 0) return this.fail('CONTENT_LENGTH_NOT_ALLOWED');
      if (this.contentLength === 0) {
        removeHeader(h, 'content-length');
        this.contentLength = -1;
      }
    }
    const head: ResponseHead = { status, reason: this.reason, headers: h };
    if (informational && status !== 101) {
      this.state = S_START;
      this.headBytes = 0;
      this.fieldCount = 0;
      this.handler.onInterimHead(head);
      return next;
    }
    const http10 = this.versionMinor === 0;
    let keepAlive = this.keepAliveFor(http10);
    if (http10 && this.chunked) keepAlive = false;
    const upgrade = status === 101 || (this.toConnect && status >= 200 && status < 300);
    const noBody = this.toHead || status === 204 || status === 304;
    let raw = false;
    if (upgrade) {
      raw = true;
      keepAlive = false;
      this.chunked = false;
    } else if (noBody) {
      this.chunked = false;
    } else if (!this.chunked && this.contentLength < 0) {
      this.readUntilClose = true;
      raw = true;
      keepAlive = false;
    }
    this.keepAlive = keepAlive;
    this.upgrade = upgrade;
    this.hasBody = raw || (!noBody && (this.chunked || this.contentLength > 0));
    this.state = S_START;
    if (this.hasBody) this.startBody(raw);
    this.handler.onResponseHead(head);
    if (!this.hasBody) this.complete(null);
    return next;
  }
}
