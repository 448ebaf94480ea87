/**
 * The TLS inspector listener filter (envoy.filters.listener.tls_inspector): looks at the first bytes of a
 * connection, without consuming them, and when they are a TLS ClientHello reports the transport protocol `tls`,
 * the SNI (server_name extension) and the ALPN protocols the client offers, for filter chain matching
 * (FilterChainMatch transport_protocol, server_names, application_protocols). The bytes are put back for the TLS
 * handshake (or for a plaintext filter chain when they are not TLS).
 *
 *   inspectTls(bytes)   // { sni, alpn } | null (not TLS) | undefined (need more bytes)
 *
 * Envoy's rules (source/extensions/filters/listener/tls_inspector/tls_inspector.cc): a first byte other than the
 * TLS handshake record type (22) with a 3.x record version is not TLS; a ClientHello may span several records and
 * is read up to 64 KiB (Envoy's max_client_hello_size default); a ClientHello that cannot be parsed is not TLS.
 */

/** Envoy's default maximum ClientHello size. */
export const MAX_CLIENT_HELLO = 64 * 1024;

export interface ClientHelloInfo {
  /** The server_name extension's host name ('' without one). */
  sni: string;
  /** The ALPN protocols the client offers, in its order (empty without the extension). */
  alpn: string[];
}

/** Classifies the first bytes of a connection (see the module comment). */
export function inspectTls(b: Buffer): ClientHelloInfo | null | undefined {
  // Reassemble the handshake message from the handshake records seen so far.
  const hs: Buffer[] = [];
  let hsLen = 0;
  let off = 0;
  let need = -1; // total handshake bytes (header + body) once known
  while (true) {
    if (off === b.length) return b.length >= MAX_CLIENT_HELLO ? null : undefined;
    if (b[off] !== 22) return null;
    if (off + 1 < b.length && b[off + 1] !== 3) return null;
    if (off + 5 > b.length) return undefined;
    const len = b.readUInt16BE(off + 3);
    if (len === 0 || len > 16384 + 2048) return null;
    const end = off + 5 + Math.min(len, b.length - off - 5);
    hs.push(b.subarray(off + 5, end));
    hsLen += end - off - 5;
    if (need < 0 && hsLen >= 4) {
      const first = hs.length === 1 ? hs[0]! : Buffer.concat(hs, hsLen);
      if (first[0] !== 1) return null; // not a ClientHello
      need = 4 + first.readUIntBE(1, 3);
      if (need > MAX_CLIENT_HELLO) return null;
    }
    if (need >= 0 && hsLen >= need) break;
    if (end - off - 5 < len) return undefined; // the record is not complete yet
    off = end;
  }
  const m = Buffer.concat(hs, hsLen).subarray(4, need);
  return parseClientHello(m);
}

function parseClientHello(m: Buffer): ClientHelloInfo | null {
  try {
    let p = 2 + 32; // legacy_version, random
    p += 1 + m[p]!; // session id
    p += 2 + m.readUInt16BE(p); // cipher suites
    p += 1 + m[p]!; // compression methods
    const info: ClientHelloInfo = { sni: '', alpn: [] };
    if (p === m.length) return info; // no extensions
    const extEnd = p + 2 + m.readUInt16BE(p);
    if (extEnd > m.length) return null;
    p += 2;
    while (p + 4 <= extEnd) {
      const type = m.readUInt16BE(p);
      const len = m.readUInt16BE(p + 2);
      const d = p + 4;
      if (d + len > extEnd) return null;
      if (type === 0) {
        // server_name: list length, then (type 0 = host_name, length, name)...
        let q = d + 2;
        while (q + 3 <= d + len) {
          const nameType = m[q]!;
          const nameLen = m.readUInt16BE(q + 1);
          if (nameType === 0 && info.sni === '') info.sni = m.toString('latin1', q + 3, q + 3 + nameLen).toLowerCase();
          q += 3 + nameLen;
        }
      } else if (type === 16) {
        // application_layer_protocol_negotiation: list length, then (length, protocol)...
        let q = d + 2;
        while (q < d + len) {
          const n = m[q]!;
          if (n === 0 || q + 1 + n > d + len) return null;
          info.alpn.push(m.toString('latin1', q + 1, q + 1 + n));
          q += 1 + n;
        }
      }
      p = d + len;
    }
    return info;
  } catch {
    return null; // read past the end: malformed
  }
}
