/**
 * The HTTP inspector listener filter (envoy.filters.listener.http_inspector): looks at the first bytes of a
 * connection, without consuming them, and reports the application protocol for filter chain matching
 * (FilterChainMatch.application_protocols) — what Istio's inbound protocol sniffing relies on.
 *
 *   inspectHttp(bytes)   // 'h2c' | 'http/1.1' | 'http/1.0' | '' (not HTTP) | undefined (need more bytes)
 *   peekProtocol(socket, timeoutMs, done)   // reads in paused mode, puts the bytes back, calls done(result)
 *   peekSocket(socket, timeoutMs, continueOnTimeout, classify, onTimeout, done)   // the same for any classifier
 *
 * Envoy's rules (source/extensions/filters/listener/http_inspector/http_inspector.cc): the HTTP/2 connection
 * preface `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n` is `h2c`; otherwise the first line must be an HTTP/1 request line —
 * a method token, SP, a request target, SP, `HTTP/1.0` or `HTTP/1.1`, CRLF — which gives `http/1.0` / `http/1.1`;
 * anything that cannot be that (a byte that is not a token character in the method, a control character in the
 * target, another version) is no protocol at once, as is a first line longer than the inspector reads (64 KiB).
 * A connection that ends before the decision, or errors, is closed. `listener_filters_timeout` (Envoy's default
 * 15 s) bounds the wait: with continue_on_listener_filters_timeout the connection goes on without a protocol
 * (a server-first protocol, whose client sends nothing, reaches a raw TCP filter chain that way), else it is closed.
 */
import type { Socket } from 'node:net';
import { CR, LF, SP, TOKEN } from '../http/codec/h1/chars.js';

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const HTTP1 = Buffer.from('HTTP/1.', 'latin1');
/** Envoy's http_inspector reads at most this many bytes looking for the request line. */
export const MAX_INSPECT_BYTES = 64 * 1024;

/** The protocol the first bytes of a connection show; undefined when more bytes are needed to tell. */
export function inspectHttp(b: Buffer): string | undefined {
  const n = b.length;
  if (n === 0) return undefined;
  // The HTTP/2 preface (or a prefix of it so far).
  const p = n < H2_PREFACE.length ? n : H2_PREFACE.length;
  if (b.compare(H2_PREFACE, 0, p, 0, p) === 0) return p === H2_PREFACE.length ? 'h2c' : undefined;
  let i = 0;
  while (i < n && TOKEN[b[i]!] === 1) i++;
  if (i === n) return n >= MAX_INSPECT_BYTES ? '' : undefined;
  if (i === 0 || b[i] !== SP) return '';
  let j = i + 1;
  while (j < n && b[j]! > SP && b[j] !== 0x7f) j++;
  if (j === n) return n >= MAX_INSPECT_BYTES ? '' : undefined;
  if (j === i + 1 || b[j] !== SP) return '';
  // "HTTP/1." DIGIT CR LF
  let k = j + 1;
  for (let m = 0; m < HTTP1.length; m++, k++) {
    if (k === n) return undefined;
    if (b[k] !== HTTP1[m]) return '';
  }
  if (k === n) return undefined;
  const minor = b[k]!;
  if (minor !== 0x30 && minor !== 0x31) return '';
  if (++k === n) return undefined;
  if (b[k] !== CR) return '';
  if (++k === n) return undefined;
  if (b[k] !== LF) return '';
  return minor === 0x31 ? 'http/1.1' : 'http/1.0';
}

/**
 * Waits for enough bytes to classify the connection with `classify` (undefined: more bytes needed), then puts them
 * back (`unshift`) and calls `done` with the result, or with `undefined` when the connection must be closed (it
 * ended or failed first, or the timeout passed without `continueOnTimeout`; with it, `done(classify on what came,
 * else onTimeout)`). The socket is left unread: the next consumer's 'data' listener receives every byte. The TLS
 * inspector (tls-inspector.ts) and the HTTP inspector share it: the listener composes their classifiers.
 */
export function peekSocket<T>(socket: Socket, timeoutMs: number, continueOnTimeout: boolean, classify: (b: Buffer, final: boolean) => T | undefined, onTimeout: T, done: (result: T | undefined) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  let finished = false;
  let timer: NodeJS.Timeout | undefined;
  const finish = (result: T | undefined) => {
    if (finished) return;
    finished = true;
    clearTimeout(timer);
    socket.removeListener('readable', onReadable);
    socket.removeListener('end', onEnd);
    socket.removeListener('error', onEnd);
    if (result !== undefined && size > 0) socket.unshift(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
    done(result);
  };
  const onReadable = () => {
    let c: Buffer | null;
    while ((c = socket.read() as Buffer | null) !== null) {
      chunks.push(c);
      size += c.length;
    }
    if (size === 0) return;
    const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
    chunks.length = 0;
    chunks.push(all);
    const r = classify(all, false);
    if (r !== undefined) finish(r);
  };
  const onEnd = () => finish(undefined);
  socket.on('readable', onReadable);
  socket.once('end', onEnd);
  socket.once('error', onEnd);
  if (timeoutMs > 0) {
    timer = setTimeout(() => {
      if (!continueOnTimeout) return finish(undefined);
      finish((size > 0 ? classify(chunks[0]!, true) : undefined) ?? onTimeout);
    }, timeoutMs);
  }
}

/** The HTTP inspector alone: `done(protocol)` ('' for none; undefined: close the connection). */
export function peekProtocol(socket: Socket, timeoutMs: number, continueOnTimeout: boolean, done: (protocol: string | undefined) => void): void {
  peekSocket(socket, timeoutMs, continueOnTimeout, inspectHttp, '', done);
}
