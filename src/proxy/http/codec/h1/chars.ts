/**
 * Byte classification tables for the HTTP/1 codec (RFC 9110 §5.6.2 token, §5.5 field values, RFC 9112 §3.2 request
 * targets, RFC 3986 §3.2.2 hosts). Each table is a 256-entry Uint8Array indexed by the byte value, so the hot loops
 * test a byte with one load and never build a string to validate it.
 *
 * Exports: TOKEN, FIELD_VALUE, TARGET, HOST, HEX (value or -1), and the byte constants CR, LF, SP, HT, COLON.
 */

export const CR = 13;
export const LF = 10;
export const SP = 32;
export const HT = 9;
export const COLON = 58;

function table(pred: (c: number) => boolean): Uint8Array {
  const t = new Uint8Array(256);
  for (let c = 0; c < 256; c++) t[c] = pred(c) ? 1 : 0;
  return t;
}

const isAlpha = (c: number): boolean => (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
const inSet = (set: string) => {
  const codes = new Set<number>();
  for (let i = 0; i < set.length; i++) codes.add(set.charCodeAt(i));
  return (c: number): boolean => codes.has(c);
};

/** tchar (RFC 9110 §5.6.2): header field names and methods. */
const tcharSpecial = inSet("!#$%&'*+-.^_`|~");
export const TOKEN = table((c) => isAlpha(c) || isDigit(c) || tcharSpecial(c));

/**
 * Bytes allowed inside a field value (RFC 9110 §5.5): field-vchar (VCHAR / obs-text), SP and HTAB. Everything else —
 * NUL, CR, LF, the other controls and DEL — ends the scan (CR legitimately, the rest as an error).
 */
export const FIELD_VALUE = table((c) => c === HT || (c >= 0x20 && c <= 0x7e) || c >= 0x80);

/** Request-target bytes: visible US-ASCII only (no SP, no controls, no DEL, no obs-text). */
export const TARGET = table((c) => c >= 0x21 && c <= 0x7e);

/**
 * Host (reg-name / IPv4) bytes of an authority: unreserved / pct-encoded / sub-delims (RFC 3986 §3.2.2). `@`
 * (userinfo) is excluded: RFC 9110 §4.2.4 tells recipients to treat userinfo in an http(s) URI as an error. `:` and
 * `[`/`]` are handled by the authority parser, not by this table.
 */
const subDelimsEtc = inSet("-._~!$&'()*+,;=%");
export const HOST = table((c) => isAlpha(c) || isDigit(c) || subDelimsEtc(c));

/** Hex digit value, or -1. */
export const HEX = new Int8Array(256).fill(-1);
for (let c = 0x30; c <= 0x39; c++) HEX[c] = c - 0x30;
for (let c = 0x41; c <= 0x46; c++) HEX[c] = c - 0x41 + 10;
for (let c = 0x61; c <= 0x66; c++) HEX[c] = c - 0x61 + 10;

/** URI scheme bytes after the first letter (RFC 3986 §3.1). */
export const SCHEME = table((c) => isAlpha(c) || isDigit(c) || c === 0x2b || c === 0x2d || c === 0x2e);
