/**
 * The request's consistent hash from the route's hash policies, for RING_HASH / MAGLEV clusters (the LbContext
 * `hash`); Envoy's HashPolicyImpl::generateHash (source/common/http/hash_policy.cc):
 *
 *   const hash = requestHash(decision.hashPolicies, stream, cookies);   // undefined: no policy produced one
 *
 * Each policy yields xxHash64 (seed 0) of its input or nothing; results combine as
 * `hash = rotl64(hash, 1) ^ new` (so two equal policies do not cancel out), and a `terminal` policy that produced
 * a hash (so far) ends the evaluation.
 * - header: the header's value (pseudo-headers allowed; after regex_rewrite when set). With several values Envoy
 *   hashes them sorted and chained; here the first value is hashed.
 * - cookie: the cookie's value (quotes stripped). Absent and the policy has a `ttl`: a cookie is generated, as
 *   Envoy's router does: its value is the hex xxHash64 of the connection's remote address followed by its local
 *   address (so one connection keeps one cookie), and the response gets
 *   `Set-Cookie: <name>="<value>"; Max-Age=<ttl s>; Path=<path>; <attributes>; HttpOnly` (Max-Age only for a
 *   non-zero ttl, Path only when set).
 * - connection_properties source_ip: the client IP without port (IPv4-mapped IPv6 as IPv4).
 * - query_parameter: the first value of the parameter, as written in the query (not decoded).
 * - filter_state: this proxy keeps no filter state, so it never yields a hash (Envoy's result for a missing key).
 * Without a hash the load balancer picks at random.
 */
import type { HeaderList, RequestHead } from '../headers.js';
import type { HashPolicy } from '../router/policies.js';
import { pseudoOf, requestHeaderFirst } from '../router/match.js';
import { hashResult, toBigInt, toHex64, xxhash64String } from '../../upstream/lb/xxhash64.js';

/** What a hash policy reads of the downstream connection. */
export interface HashConnection {
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
}

/**
 * The request hash (unsigned 64-bit), or undefined when no policy produced one. Generated cookies are appended to
 * `setCookies` (Set-Cookie values for the response).
 */
export function requestHash(policies: readonly HashPolicy[], head: RequestHead, conn: HashConnection, setCookies: string[]): bigint | undefined {
  let have = false;
  let hi = 0;
  let lo = 0;
  for (let i = 0; i < policies.length; i++) {
    const p = policies[i]!;
    if (evaluate(p, head, conn, setCookies)) {
      if (have) {
        // rotl64(hash, 1) ^ new
        const nh = ((hi << 1) | (lo >>> 31)) >>> 0;
        const nl = ((lo << 1) | (hi >>> 31)) >>> 0;
        hi = (nh ^ hashResult.hi) >>> 0;
        lo = (nl ^ hashResult.lo) >>> 0;
      } else {
        hi = hashResult.hi >>> 0;
        lo = hashResult.lo >>> 0;
        have = true;
      }
    }
    if (p.terminal && have) break;
  }
  return have ? toBigInt(hi, lo) : undefined;
}

/** Hashes one policy's input into `hashResult`; false when it yields nothing. */
function evaluate(p: HashPolicy, head: RequestHead, conn: HashConnection, setCookies: string[]): boolean {
  switch (p.kind) {
    case 'header': {
      const v = requestHeaderFirst(head, p.headerName, pseudoOf(p.headerName));
      if (v === undefined) return false;
      xxhash64String(p.regexRewrite !== undefined ? p.regexRewrite.re.replaceAll(v, p.regexRewrite.sub) : v);
      return true;
    }
    case 'cookie': {
      let v = cookieValue(head.headers, p.name);
      if (v === '') {
        if (p.ttlMs === undefined) return false;
        v = generatedCookieValue(conn);
        setCookies.push(setCookieValue(p.name, v, p.path, Math.floor(p.ttlMs / 1000), p.attributes));
      }
      xxhash64String(v);
      return true;
    }
    case 'sourceIp': {
      const a = conn.remoteAddress;
      if (a === '') return false;
      xxhash64String(a.startsWith('::ffff:') ? a.slice(7) : a);
      return true;
    }
    case 'queryParameter': {
      const v = queryParameter(head.path, p.name);
      if (v === undefined) return false;
      xxhash64String(v);
      return true;
    }
    default:
      return false;
  }
}

/** Envoy's Http::Utility::parseCookieValue: the value of the first `name=value` pair of the Cookie headers. */
export function cookieValue(h: HeaderList, name: string): string {
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length !== 6 || n.toLowerCase() !== 'cookie') continue;
    const parts = h[i + 1]!.split(';');
    for (const part of parts) {
      const t = part.trim();
      const eq = t.indexOf('=');
      if (eq < 0 || t.slice(0, eq) !== name) continue;
      let v = t.slice(eq + 1);
      if (v.length >= 2 && v.charCodeAt(0) === 34 && v.charCodeAt(v.length - 1) === 34) v = v.slice(1, -1);
      return v;
    }
  }
  return '';
}

function addressString(ip: string, port: number): string {
  const a = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
  return a.includes(':') ? `[${a}]:${port}` : `${a}:${port}`;
}

/** The value Envoy's router gives a generated hash cookie: hex xxHash64(remote address + local address). */
function generatedCookieValue(conn: HashConnection): string {
  xxhash64String(addressString(conn.remoteAddress, conn.remotePort) + addressString(conn.localAddress, conn.localPort));
  return toHex64(hashResult.hi, hashResult.lo);
}

/** Envoy's Http::Utility::makeSetCookieValue (httponly). */
export function setCookieValue(name: string, value: string, path: string, maxAgeSeconds: number, attributes: ReadonlyArray<{ name: string; value: string }>): string {
  let out = `${name}="${value}"`;
  if (maxAgeSeconds !== 0) out += `; Max-Age=${maxAgeSeconds}`;
  if (path !== '') out += `; Path=${path}`;
  for (const a of attributes) out += a.value === '' ? `; ${a.name}` : `; ${a.name}=${a.value}`;
  return out + '; HttpOnly';
}

/** The first value of a query parameter, undefined when absent (a parameter without `=` has the value ''). */
function queryParameter(path: string, name: string): string | undefined {
  const q = path.indexOf('?');
  if (q < 0) return undefined;
  let end = path.indexOf('#', q);
  if (end < 0) end = path.length;
  let i = q + 1;
  while (i <= end) {
    let amp = path.indexOf('&', i);
    if (amp < 0 || amp > end) amp = end;
    const eq = path.indexOf('=', i);
    const keyEnd = eq >= 0 && eq < amp ? eq : amp;
    if (keyEnd - i === name.length && path.startsWith(name, i)) return keyEnd === amp ? '' : path.slice(keyEnd + 1, amp);
    i = amp + 1;
  }
  return undefined;
}
