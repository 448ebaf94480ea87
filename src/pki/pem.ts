/**
 * PEM (RFC 7468) encoding and decoding: the textual form every certificate, key and CSR takes on disk and on
 * the wire (Istio's CSR API, Envoy's SDS `inline_bytes`, Node's TLS contexts all speak PEM).
 */

/** One PEM block: its label (`CERTIFICATE`, `PRIVATE KEY`, ...) and its DER bytes. */
export interface PemBlock {
  label: string;
  der: Uint8Array;
}

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g;

/** Encodes DER bytes as one PEM block (64-character lines, trailing newline). */
export function toPem(label: string, der: Uint8Array): string {
  const b64 = Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64');
  const lines: string[] = [];
  for (let i = 0; i < b64.length; i += 64) lines.push(b64.slice(i, i + 64));
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Every PEM block of a text, in order (text outside blocks is ignored, as OpenSSL does). */
export function parsePem(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  for (const m of text.matchAll(BLOCK)) {
    const body = m[2]!.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(body)) throw new Error(`PEM block "${m[1]}" is not valid base64`);
    out.push({ label: m[1]!, der: new Uint8Array(Buffer.from(body, 'base64')) });
  }
  return out;
}

/** The DER bytes of the single block with this label; `what` names the input in the error. */
export function pemToDer(text: string, label: string, what: string): Uint8Array {
  const blocks = parsePem(text).filter((b) => b.label === label);
  if (blocks.length !== 1) throw new Error(`${what}: expected one PEM "${label}" block, found ${blocks.length}`);
  return blocks[0]!.der;
}

/** Splits a PEM bundle into one PEM string per CERTIFICATE block, in order. */
export function splitCertificates(text: string): string[] {
  return parsePem(text).filter((b) => b.label === 'CERTIFICATE').map((b) => toPem('CERTIFICATE', b.der));
}
