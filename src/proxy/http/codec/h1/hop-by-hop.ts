/**
 * Hop-by-hop header handling for HTTP/1 (RFC 9110 §7.6.1), with Envoy's exact rules.
 *
 * - `removeHopByHopHeaders(headers, upgrade)`: what a proxy does before forwarding a message. Removes every field
 *   named by a Connection option, then Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding and Upgrade.
 *   Exceptions, as Envoy (ConnectionManagerUtility::mutateRequestHeaders / sanitizeTEHeader):
 *   - `upgrade` true (an Upgrade request or a 101 response that is passed through): Connection and Upgrade are kept
 *     verbatim and Connection options are not applied;
 *   - a TE field that lists `trailers` is kept as exactly `te: trailers` (gRPC needs it); any other TE is dropped.
 *   Body framing is the codec's business: after this call the list holds no Transfer-Encoding, and the serializer adds
 *   the framing the outgoing message needs (see serialize.ts).
 * - `sanitizeConnectionHeader(headers)`: Envoy's request-codec check (Utility::sanitizeConnectionHeader), run by the
 *   request parser on every non-upgrade request that has Connection options: 10 or more options, or an option naming
 *   x-forwarded-for / x-forwarded-host / x-forwarded-proto or a pseudo-header, or a nominated TE value of 256 bytes
 *   or more → false (the request is rejected with 400). Otherwise the nominated fields are removed (TE is reduced to
 *   `trailers` when it lists it) and their names are dropped from Connection.
 * - `stripH2cUpgrade(headers)`: Envoy ignores `Upgrade: h2c` (it does not support the h2c upgrade): removes Upgrade,
 *   HTTP2-Settings and the `upgrade` / `http2-settings` Connection options, so the request proceeds as HTTP/1.1.
 */
import { eqLower, type HeaderList } from '../../headers.js';

/** Lower-cased, trimmed, non-empty comma-separated tokens of every field named `lowerName`. */
function listTokens(h: HeaderList, lowerName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.length; i += 2) {
    if (!eqLower(h[i]!, lowerName)) continue;
    const v = h[i + 1]!;
    if (v.indexOf(',') < 0) {
      // One token (`keep-alive`, `close`: nearly every Connection field): no split.
      const t = v.trim().toLowerCase();
      if (t !== '') out.push(t);
      continue;
    }
    for (const p of v.split(',')) {
      const t = p.trim().toLowerCase();
      if (t !== '') out.push(t);
    }
  }
  return out;
}

/** `name` (any case) is one of the lower-case `tokens`; compares without lower-casing the name. */
function nominatedBy(name: string, tokens: readonly string[]): boolean {
  for (let i = 0; i < tokens.length; i++) if (eqLower(name, tokens[i]!)) return true;
  return false;
}

function removeAll(h: HeaderList, lowerName: string): void {
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (eqLower(h[r]!, lowerName)) continue;
    if (w !== r) {
      h[w] = h[r]!;
      h[w + 1] = h[r + 1]!;
    }
    w += 2;
  }
  h.length = w;
}

/** Replaces every Connection field with one carrying `tokens` (joined by ","), or removes it when empty. */
function rewriteConnection(h: HeaderList, tokens: string[]): void {
  let name = 'connection';
  for (let i = 0; i < h.length; i += 2) {
    if (eqLower(h[i]!, 'connection')) {
      name = h[i]!;
      break;
    }
  }
  removeAll(h, 'connection');
  if (tokens.length > 0) h.push(name, tokens.join(','));
}

function hasTrailersToken(value: string): boolean {
  const parts = value.split(',');
  for (const p of parts) if (eqLower(p.trim(), 'trailers')) return true;
  return false;
}

const MAX_ALLOWED_NOMINATED_HEADERS = 10;
const MAX_ALLOWED_TE_VALUE_SIZE = 256;

export function sanitizeConnectionHeader(h: HeaderList): boolean {
  const tokens: string[] = [];
  let found = false;
  for (let i = 0; i < h.length; i += 2) {
    if (!eqLower(h[i]!, 'connection')) continue;
    found = true;
    for (const p of h[i + 1]!.split(',')) if (p !== '') tokens.push(p.trim());
  }
  if (!found) return true;
  if (tokens.length >= MAX_ALLOWED_NOMINATED_HEADERS) return false;
  const dropped = new Set<string>();
  for (const token of tokens) {
    const lower = token.toLowerCase();
    if (lower === 'close' || lower === 'http2-settings' || lower === 'keep-alive' || lower === 'upgrade') continue;
    if (lower === 'connection') {
      // Self-nomination: the option is dropped, the Connection field itself stays.
      dropped.add(lower);
      continue;
    }
    if (lower === 'x-forwarded-for' || lower === 'x-forwarded-host' || lower === 'x-forwarded-proto') return false;
    if (lower.charCodeAt(0) === 0x3a) return false;
    if (lower === 'te') {
      let te: string | null = null;
      for (let i = 0; i < h.length; i += 2) {
        if (eqLower(h[i]!, 'te')) te = te === null ? h[i + 1]! : te + ',' + h[i + 1]!;
      }
      if (te !== null) {
        if (te.length >= MAX_ALLOWED_TE_VALUE_SIZE) return false;
        if (hasTrailersToken(te)) {
          removeAll(h, 'te');
          h.push('te', 'trailers');
          continue;
        }
      }
    }
    removeAll(h, lower);
    dropped.add(lower);
  }
  if (dropped.size > 0) {
    const kept: string[] = [];
    for (const t of tokens) if (!dropped.has(t.toLowerCase())) kept.push(t);
    rewriteConnection(h, kept);
  }
  return true;
}

export function stripH2cUpgrade(h: HeaderList): void {
  removeAll(h, 'upgrade');
  removeAll(h, 'http2-settings');
  let has = false;
  for (let i = 0; i < h.length; i += 2) if (eqLower(h[i]!, 'connection')) has = true;
  if (!has) return;
  const kept: string[] = [];
  for (let i = 0; i < h.length; i += 2) {
    if (!eqLower(h[i]!, 'connection')) continue;
    for (const p of h[i + 1]!.split(',')) {
      const t = p.trim();
      if (t === '') continue;
      const lower = t.toLowerCase();
      if (lower !== 'upgrade' && lower !== 'http2-settings') kept.push(t);
    }
  }
  rewriteConnection(h, kept);
}

/** True for the fixed hop-by-hop names; Connection and Upgrade only when not passing an upgrade through. */
function isHopByHop(name: string, upgrade: boolean): boolean {
  switch (name.length) {
    case 2:
      return eqLower(name, 'te');
    case 7:
      return !upgrade && eqLower(name, 'upgrade');
    case 10:
      return eqLower(name, 'keep-alive') || (!upgrade && eqLower(name, 'connection'));
    case 16:
      return eqLower(name, 'proxy-connection');
    case 17:
      return eqLower(name, 'transfer-encoding');
    default:
      return false;
  }
}

export function removeHopByHopHeaders(h: HeaderList, upgrade = false): void {
  let nominated: string[] | null = null;
  let teTrailers = false;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 10 && !upgrade && eqLower(n, 'connection')) {
      if (nominated === null) nominated = listTokens(h, 'connection');
    } else if (n.length === 2 && eqLower(n, 'te') && hasTrailersToken(h[i + 1]!)) {
      teTrailers = true;
    }
  }
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    const n = h[r]!;
    if (isHopByHop(n, upgrade)) continue;
    if (nominated !== null && nominated.length > 0 && nominatedBy(n, nominated)) continue;
    if (w !== r) {
      h[w] = n;
      h[w + 1] = h[r + 1]!;
    }
    w += 2;
  }
  h.length = w;
  if (teTrailers) h.push('te', 'trailers');
}
