/**
 * The few DNS message operations the sidecar's DNS proxy needs (RFC 1035 §4): read a query's header and
 * question, and write answers (A records, empty NOERROR, NXDOMAIN, SERVFAIL, FORMERR) for it. Responses from the
 * upstream resolver are relayed as bytes, so nothing else is parsed. Malformed input throws DnsFormatError, which
 * the server answers with FORMERR when the header is readable and drops otherwise.
 *
 *   const q = parseQuery(buf);                 // { id, flags, name: 'reviews.default', qtype: 1, qclass: 1, ... }
 *   const out = answerA(q, ['240.240.3.7'], 30);
 */

export const QTYPE_A = 1;
export const QTYPE_AAAA = 28;
export const QCLASS_IN = 1;

export const RCODE_NOERROR = 0;
export const RCODE_FORMERR = 1;
export const RCODE_SERVFAIL = 2;
export const RCODE_NXDOMAIN = 3;
export const RCODE_NOTIMP = 4;

const FLAG_QR = 0x8000;
const FLAG_AA = 0x0400;
const FLAG_RD = 0x0100;
const FLAG_RA = 0x0080;
const OPCODE_MASK = 0x7800;
const HEADER_LEN = 12;
const MAX_LABEL = 63;
const MAX_NAME = 255;

export class DnsFormatError extends Error {}

export interface DnsQuery {
  id: number;
  flags: number;
  /** 0 = standard query. */
  opcode: number;
  qdcount: number;
  /** The first question's name, lower case, without the trailing dot ('' for the root). */
  name: string;
  qtype: number;
  qclass: number;
  /** The first question's bytes (name, type, class) as received, for echoing in the answer. */
  question: Buffer;
}

/** Reads a (possibly compressed) name at `off`; returns it and the offset after it in the message. */
function readName(buf: Buffer, off: number): { name: string; end: number } {
  const labels: string[] = [];
  let end = -1;
  let jumps = 0;
  let len = 0;
  for (;;) {
    if (off >= buf.length) throw new DnsFormatError('name runs past the end of the message');
    const b = buf[off]!;
    if ((b & 0xc0) === 0xc0) {
      if (off + 1 >= buf.length) throw new DnsFormatError('truncated compression pointer');
      if (++jumps > 32) throw new DnsFormatError('compression pointer loop');
      if (end < 0) end = off + 2;
      off = ((b & 0x3f) << 8) | buf[off + 1]!;
      continue;
    }
    if (b & 0xc0) throw new DnsFormatError(`invalid label type 0x${b.toString(16)}`);
    off++;
    if (b === 0) break;
    if (off + b > buf.length) throw new DnsFormatError('label runs past the end of the message');
    len += b + 1;
    if (len > MAX_NAME) throw new DnsFormatError('name longer than 255 bytes');
    labels.push(buf.toString('latin1', off, off + b).toLowerCase());
    off += b;
  }
  return { name: labels.join('.'), end: end < 0 ? off : end };
}

/** The header and first question of a query. */
export function parseQuery(buf: Buffer): DnsQuery {
  if (buf.length < HEADER_LEN) throw new DnsFormatError(`message of ${buf.length} bytes is shorter than a DNS header`);
  const id = buf.readUInt16BE(0);
  const flags = buf.readUInt16BE(2);
  const qdcount = buf.readUInt16BE(4);
  const q: DnsQuery = { id, flags, opcode: (flags & OPCODE_MASK) >> 11, qdcount, name: '', qtype: 0, qclass: 0, question: Buffer.alloc(0) };
  if (flags & FLAG_QR) throw new DnsFormatError('not a query (QR is set)');
  if (qdcount === 0) return q;
  const { name, end } = readName(buf, HEADER_LEN);
  if (end + 4 > buf.length) throw new DnsFormatError('question runs past the end of the message');
  q.name = name;
  q.qtype = buf.readUInt16BE(end);
  q.qclass = buf.readUInt16BE(end + 2);
  q.question = buf.subarray(HEADER_LEN, end + 4);
  return q;
}

/** Encodes a name as labels (no compression). */
export function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  const out: Buffer[] = [];
  for (const p of parts) {
    const b = Buffer.from(p, 'latin1');
    if (b.length > MAX_LABEL) throw new DnsFormatError(`label "${p}" is longer than 63 bytes`);
    out.push(Buffer.from([b.length]), b);
  }
  out.push(Buffer.from([0]));
  return Buffer.concat(out);
}

/** A query message (for tests and for clients): one question, RD set. */
export function buildQuery(id: number, name: string, qtype: number): Buffer {
  const h = Buffer.alloc(HEADER_LEN);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(FLAG_RD, 2);
  h.writeUInt16BE(1, 4);
  const tail = Buffer.alloc(4);
  tail.writeUInt16BE(qtype, 0);
  tail.writeUInt16BE(QCLASS_IN, 2);
  return Buffer.concat([h, encodeName(name), tail]);
}

function header(q: Pick<DnsQuery, 'id' | 'flags'>, rcode: number, qd: number, an: number, authoritative: boolean): Buffer {
  const h = Buffer.alloc(HEADER_LEN);
  h.writeUInt16BE(q.id, 0);
  // QR, the query's opcode and RD, RA (we recurse by forwarding), AA for names of the mesh.
  h.writeUInt16BE(FLAG_QR | (q.flags & (OPCODE_MASK | FLAG_RD)) | FLAG_RA | (authoritative ? FLAG_AA : 0) | (rcode & 0xf), 2);
  h.writeUInt16BE(qd, 4);
  h.writeUInt16BE(an, 6);
  return h;
}

/** A response with no answers: NOERROR (no data of that type), NXDOMAIN, SERVFAIL, FORMERR, NOTIMP. */
export function emptyResponse(q: Pick<DnsQuery, 'id' | 'flags' | 'question'>, rcode: number, authoritative = false): Buffer {
  return Buffer.concat([header(q, rcode, q.question.length ? 1 : 0, 0, authoritative), q.question]);
}

/** An authoritative answer with one A record per IPv4 address (the question's name, by pointer to offset 12). */
export function answerA(q: DnsQuery, ips: readonly string[], ttl: number): Buffer {
  const v4 = ips.filter((ip) => /^\d+\.\d+\.\d+\.\d+$/.test(ip));
  const rrs = Buffer.alloc(16 * v4.length);
  v4.forEach((ip, i) => {
    const o = i * 16;
    rrs.writeUInt16BE(0xc000 | HEADER_LEN, o);
    rrs.writeUInt16BE(QTYPE_A, o + 2);
    rrs.writeUInt16BE(QCLASS_IN, o + 4);
    rrs.writeUInt32BE(ttl, o + 6);
    rrs.writeUInt16BE(4, o + 10);
    const p = ip.split('.');
    for (let j = 0; j < 4; j++) rrs[o + 12 + j] = Number(p[j]) & 0xff;
  });
  return Buffer.concat([header(q, RCODE_NOERROR, 1, v4.length, true), q.question, rrs]);
}

export interface DnsResponse {
  id: number;
  rcode: number;
  authoritative: boolean;
  /** A records of the answer section (any name). */
  a: string[];
  ancount: number;
}

/** Reads a response's header and its A answers (for tests and diagnostics). */
export function parseResponse(buf: Buffer): DnsResponse {
  if (buf.length < HEADER_LEN) throw new DnsFormatError('short response');
  const flags = buf.readUInt16BE(2);
  const qd = buf.readUInt16BE(4);
  const an = buf.readUInt16BE(6);
  let off = HEADER_LEN;
  for (let i = 0; i < qd; i++) off = readName(buf, off).end + 4;
  const a: string[] = [];
  for (let i = 0; i < an; i++) {
    off = readName(buf, off).end;
    if (off + 10 > buf.length) throw new DnsFormatError('answer runs past the end of the message');
    const type = buf.readUInt16BE(off);
    const rdlen = buf.readUInt16BE(off + 8);
    off += 10;
    if (off + rdlen > buf.length) throw new DnsFormatError('rdata runs past the end of the message');
    if (type === QTYPE_A && rdlen === 4) a.push(`${buf[off]}.${buf[off + 1]}.${buf[off + 2]}.${buf[off + 3]}`);
    off += rdlen;
  }
  return { id: buf.readUInt16BE(0), rcode: flags & 0xf, authoritative: (flags & FLAG_AA) !== 0, a, ancount: an };
}
