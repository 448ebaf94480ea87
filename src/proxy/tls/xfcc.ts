/**
 * x-forwarded-client-cert (XFCC), as Envoy's connection manager writes it (forward_client_cert_details and
 * set_current_client_cert_details; ConnectionManagerUtility::mutateXfccRequestHeader):
 *
 *   const x = compileXfcc(hcmProto);           // null: SANITIZE (the default) → the header is always removed
 *   applyXfcc(x, headers, socket);             // per request, before routing
 *
 * - ALWAYS_FORWARD_ONLY: the header passes unchanged;
 * - SANITIZE, or a connection that is not mutual TLS (no peer certificate): the header is removed;
 * - FORWARD_ONLY: passes unchanged (mTLS only);
 * - APPEND_FORWARD / SANITIZE_SET: this hop's element is appended (`,`) / replaces the header:
 *   `By=<our certificate's first URI SAN>;Hash=<SHA-256 of the peer certificate, hex>` then, in this order, the
 *   details asked for: `Cert="<url-encoded PEM>"`, `Chain="<url-encoded PEM chain>"`, `Subject="<RFC 2253>"`
 *   (present even when empty), `URI=<peer's first URI SAN>` (present even when empty), `DNS=<each DNS SAN>`.
 * Istio's inbound sidecar listeners use APPEND_FORWARD with subject, uri and dns, so the application sees
 * `By=spiffe://…/sa/server;Hash=…;Subject="";URI=spiffe://…/sa/client`.
 */
import type { Socket } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { HttpConnectionManager_ForwardClientCertDetails as Fcc, type HttpConnectionManager } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { peerCertFacts } from './context.js';
import { peerOf } from './peer.js';

export const XFCC = 'x-forwarded-client-cert';

export interface XfccPolicy {
  readonly mode: 'always_forward' | 'forward' | 'append' | 'set';
  readonly cert: boolean;
  readonly chain: boolean;
  readonly subject: boolean;
  readonly uri: boolean;
  readonly dns: boolean;
}

/** The connection manager's XFCC policy; null for SANITIZE (remove the header, nothing else). */
export function compileXfcc(p: HttpConnectionManager): XfccPolicy | null {
  const d = p.setCurrentClientCertDetails;
  const base = { cert: d?.cert ?? false, chain: d?.chain ?? false, subject: d?.subject ?? false, uri: d?.uri ?? false, dns: d?.dns ?? false };
  switch (p.forwardClientCertDetails) {
    case Fcc.FORWARD_ONLY:
      return { mode: 'forward', ...base };
    case Fcc.APPEND_FORWARD:
      return { mode: 'append', ...base };
    case Fcc.SANITIZE_SET:
      return { mode: 'set', ...base };
    case Fcc.ALWAYS_FORWARD_ONLY:
      return { mode: 'always_forward', ...base };
    default:
      return null;
  }
}

/** Removes every x-forwarded-client-cert field; returns the index of the first one (-1 if none). */
function removeAll(h: string[]): number {
  let first = -1;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 23 && n.toLowerCase() === XFCC) {
      if (first < 0) first = i;
      else {
        h[first + 1] += ',' + h[i + 1]!;
        h.splice(i, 2);
        i -= 2;
      }
    }
  }
  if (first >= 0) h.splice(first, 2);
  return first;
}

/** Applies the policy to a request's headers (flat name/value list) for a request on `socket`. */
export function applyXfcc(x: XfccPolicy | null, h: string[], socket: Socket): void {
  if (x !== null && x.mode === 'always_forward') return;
  const peer = peerOf(socket);
  if (x === null || !peer.tls || peer.certHash === '') {
    if (h.length > 0) removeAll(h);
    return;
  }
  if (x.mode === 'forward') return;
  const el = element(x, socket as TLSSocket);
  if (x.mode === 'set') {
    removeAll(h);
    h.push(XFCC, el);
    return;
  }
  // APPEND_FORWARD: one field, previous elements first.
  let prev: string | undefined;
  for (let i = 0; i < h.length; i += 2) {
    const n = h[i]!;
    if (n.length === 23 && n.toLowerCase() === XFCC) {
      prev = prev === undefined ? h[i + 1]! : prev + ',' + h[i + 1]!;
    }
  }
  if (prev !== undefined) removeAll(h);
  h.push(XFCC, prev === undefined || prev === '' ? el : prev + ',' + el);
}

const ELEMENTS = new WeakMap<Socket, Map<XfccPolicy, string>>();

/** This hop's element; computed once per connection and policy (it depends only on the two certificates). */
function element(x: XfccPolicy, s: TLSSocket): string {
  let m = ELEMENTS.get(s);
  const cached = m?.get(x);
  if (cached !== undefined) return cached;
  const peer = peerOf(s);
  const parts: string[] = [];
  if (peer.localPrincipal !== '') parts.push(`By=${peer.localPrincipal}`);
  parts.push(`Hash=${peer.certHash}`);
  const cert = x.cert || x.chain ? s.getPeerCertificate(x.chain) : undefined;
  if (x.cert && cert?.raw) parts.push(`Cert="${encodeURIComponent(pem(cert.raw))}"`);
  if (x.chain && cert?.raw) {
    let chain = '';
    const seen = new Set<unknown>();
    for (let c: DetailedPeerCertificate | undefined = cert as DetailedPeerCertificate; c?.raw !== undefined && !seen.has(c); c = c.issuerCertificate) {
      seen.add(c);
      chain += pem(c.raw);
      if (c.issuerCertificate === c) break;
    }
    parts.push(`Chain="${encodeURIComponent(chain)}"`);
  }
  if (x.subject) parts.push(`Subject="${peer.subject}"`);
  if (x.uri) parts.push(`URI=${peer.principal}`);
  if (x.dns) for (const san of peerCertFacts(s)?.sans ?? []) if (san.type === 'DNS') parts.push(`DNS=${san.value}`);
  const el = parts.join(';');
  if (m === undefined) ELEMENTS.set(s, (m = new Map()));
  m.set(x, el);
  return el;
}

function pem(der: Buffer): string {
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n');
  return `-----BEGIN CERTIFICATE-----\n${b64}${b64.endsWith('\n') ? '' : '\n'}-----END CERTIFICATE-----\n`;
}
