/**
 * Header conversion between Weft's flat HeaderList (http/headers.ts) and node:http2 header objects, used by the
 * downstream HTTP/2 connection (server/h2-connection.ts) and the upstream HTTP/2 pool (upstream/pool/h2-pool.ts).
 *
 * - `toH2Headers(out, list, skipHost)`: names lower-cased (HTTP/2 requires it), repeated names become arrays,
 *   connection-specific fields (Connection, Keep-Alive, Proxy-Connection, Transfer-Encoding, Upgrade) left out as
 *   RFC 9113 §8.2.2 requires (node:http2 would throw on them), Host left out when `skipHost` (the request's
 *   authority travels as `:authority`, as Envoy's HTTP/2 codec sends it).
 * - `fromH2Headers(obj)`: the regular fields of a received header block, pseudo-headers left out.
 * - `requestFieldsFromRaw(raw)`: the regular fields of a request from node's raw [name, value, ...] array, in
 *   order, with cookie crumbs joined into one `cookie` field by "; " (RFC 9113 §8.2.3, Envoy's
 *   reconstituteCrumbledCookies), so an HTTP/1.1 upstream sees one Cookie header.
 * - `RESET_ERROR`: `stream.destroy(RESET_ERROR)` resets a node:http2 stream with INTERNAL_ERROR without ending it
 *   first (node's `close(code)` ends the writable side with END_STREAM before the RST_STREAM).
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { HeaderList } from '../../headers.js';

/** HeaderList → node:http2 headers object (lower-case names; repeated names become arrays). */
export function toH2Headers(out: OutgoingHttpHeaders, h: HeaderList, skipHost: boolean): OutgoingHttpHeaders {
  for (let i = 0; i < h.length; i += 2) {
    let n = h[i]!;
    n = n.toLowerCase();
    if (skipHost && n === 'host') continue;
    if (isConnectionSpecific(n)) continue;
    const v = h[i + 1]!;
    const prev = out[n];
    if (prev === undefined) out[n] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[n] = [prev as string, v];
  }
  return out;
}

/** Fields HTTP/2 forbids (RFC 9113 §8.2.2); node:http2 throws on them. `te` is checked by the caller's sanitizing. */
function isConnectionSpecific(lower: string): boolean {
  switch (lower.length) {
    case 7:
      return lower === 'upgrade';
    case 10:
      return lower === 'connection' || lower === 'keep-alive';
    case 16:
      return lower === 'proxy-connection';
    case 17:
      return lower === 'transfer-encoding';
    default:
      return false;
  }
}

/** node:http2 headers object → HeaderList (pseudo-headers left out). */
export function fromH2Headers(h: IncomingHttpHeaders): HeaderList {
  const out: HeaderList = [];
  for (const k in h) {
    if (k.charCodeAt(0) === 58 /* : */) continue;
    const v = h[k];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, v);
  }
  return out;
}


export function requestFieldsFromRaw(raw: string[]): HeaderList {
  const out: HeaderList = [];
  let cookie = -1;
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!;
    if (n.charCodeAt(0) === 58 /* : */) continue;
    const v = raw[i + 1]!;
    if (n === 'cookie') {
      if (cookie >= 0) {
        out[cookie] = out[cookie] + '; ' + v;
        continue;
      }
      cookie = out.length + 1;
    }
    out.push(n, v);
  }
  return out;
}

/** Destroying a node:http2 stream with an error resets it with INTERNAL_ERROR, without ending it first. */
export const RESET_ERROR = new Error('stream reset by the proxy');
