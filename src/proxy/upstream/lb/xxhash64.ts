/**
 * xxHash64 (XXH64), the hash Envoy uses for ring-hash and Maglev tables (`HashUtil::xxHash64`, seed 0, and seed 1
 * for Maglev's skip) and for route hash policies. Implemented with 32-bit integer math on (hi, lo) word pairs: no
 * BigInt and no allocation per call.
 *
 *   xxhash64String('10.0.0.1:80_0')   // result in hashResult.hi / hashResult.lo
 *   xxhash64('abc')                    // → 0x44bc2cf5ad770999n (convenience, allocates a BigInt)
 *   mod64(hashResult.hi, hashResult.lo, 65537)
 */

/** The last hash computed by `xxhash64Bytes` / `xxhash64String` (unsigned 32-bit halves). */
export const hashResult = { hi: 0, lo: 0 };

// Scratch result of the 64-bit helpers below (a typed array keeps the words unboxed).
const R = new Uint32Array(2);

const P1H = 0x9e3779b1, P1L = 0x85ebca87;
const P2H = 0xc2b2ae3d, P2L = 0x27d4eb4f;
const P3H = 0x165667b1, P3L = 0x9e3779f9;
const P4H = 0x85ebca77, P4L = 0xc2b2ae63;
const P5H = 0x27d4eb2f, P5L = 0x165667c5;
/** 2^64 - P1. */
const NP1H = 0x61c8864e, NP1L = 0x7a143579;
const TWO32 = 4294967296;

function mul(aH: number, aL: number, bH: number, bL: number): void {
  // Low 64 bits of the product: aL·bL in full (high half from 16-bit parts), plus the cross terms' low 32 bits.
  const a0 = aL & 0xffff;
  const a1 = aL >>> 16;
  const b0 = bL & 0xffff;
  const b1 = bL >>> 16;
  const m1 = a1 * b0;
  const m2 = a0 * b1;
  const carry = (((a0 * b0) >>> 16) + (m1 & 0xffff) + (m2 & 0xffff)) >>> 16;
  R[1] = Math.imul(aL, bL) >>> 0;
  R[0] = (a1 * b1 + (m1 >>> 16) + (m2 >>> 16) + carry + Math.imul(aH, bL) + Math.imul(aL, bH)) >>> 0;
}

function add(aH: number, aL: number, bH: number, bL: number): void {
  const lo = aL + bL;
  R[1] = lo >>> 0;
  R[0] = (aH + bH + (lo >= TWO32 ? 1 : 0)) >>> 0;
}

/** Rotate left by n (0 < n < 32). */
function rotl(h: number, l: number, n: number): void {
  R[0] = ((h << n) | (l >>> (32 - n))) >>> 0;
  R[1] = ((l << n) | (h >>> (32 - n))) >>> 0;
}

/** XXH64 round: acc = rotl(acc + input * P2, 31) * P1. */
function round(accH: number, accL: number, inH: number, inL: number): void {
  mul(inH, inL, P2H, P2L);
  add(accH, accL, R[0]!, R[1]!);
  rotl(R[0]!, R[1]!, 31);
  mul(R[0]!, R[1]!, P1H, P1L);
}

/** acc = (acc ^ round(0, v)) * P1 + P4; returns the high word, the low word is in R[1]. */
function mergeRound(accH: number, accL: number, vH: number, vL: number): number {
  round(0, 0, vH, vL);
  mul((accH ^ R[0]!) >>> 0, (accL ^ R[1]!) >>> 0, P1H, P1L);
  add(R[0]!, R[1]!, P4H, P4L);
  return R[0]!;
}

function read32(b: Uint8Array, i: number): number {
  return (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
}

/** Hashes `buf[start, end)`; the result is in `hashResult`. */
export function xxhash64Bytes(buf: Uint8Array, start = 0, end = buf.length, seed = 0): void {
  const sL = seed >>> 0;
  const sH = Math.floor(seed / TWO32) >>> 0;
  const len = end - start;
  let p = start;
  let hH: number;
  let hL: number;
  if (len >= 32) {
    add(sH, sL, P1H, P1L);
    add(R[0]!, R[1]!, P2H, P2L);
    let v1H = R[0]!, v1L = R[1]!;
    add(sH, sL, P2H, P2L);
    let v2H = R[0]!, v2L = R[1]!;
    let v3H = sH, v3L = sL;
    add(sH, sL, NP1H, NP1L);
    let v4H = R[0]!, v4L = R[1]!;
    const limit = end - 32;
    do {
      round(v1H, v1L, read32(buf, p + 4), read32(buf, p));
      v1H = R[0]!; v1L = R[1]!;
      round(v2H, v2L, read32(buf, p + 12), read32(buf, p + 8));
      v2H = R[0]!; v2L = R[1]!;
      round(v3H, v3L, read32(buf, p + 20), read32(buf, p + 16));
      v3H = R[0]!; v3L = R[1]!;
      round(v4H, v4L, read32(buf, p + 28), read32(buf, p + 24));
      v4H = R[0]!; v4L = R[1]!;
      p += 32;
    } while (p <= limit);
    rotl(v1H, v1L, 1);
    let aH = R[0]!, aL = R[1]!;
    rotl(v2H, v2L, 7);
    add(aH, aL, R[0]!, R[1]!);
    aH = R[0]!; aL = R[1]!;
    rotl(v3H, v3L, 12);
    add(aH, aL, R[0]!, R[1]!);
    aH = R[0]!; aL = R[1]!;
    rotl(v4H, v4L, 18);
    add(aH, aL, R[0]!, R[1]!);
    hH = R[0]!; hL = R[1]!;
    // Merge rounds.
    hH = mergeRound(hH, hL, v1H, v1L);
    hL = R[1]!;
    hH = mergeRound(hH, hL, v2H, v2L);
    hL = R[1]!;
    hH = mergeRound(hH, hL, v3H, v3L);
    hL = R[1]!;
    hH = mergeRound(hH, hL, v4H, v4L);
    hL = R[1]!;
  } else {
    add(sH, sL, P5H, P5L);
    hH = R[0]!; hL = R[1]!;
  }
  add(hH, hL, Math.floor(len / TWO32) >>> 0, len >>> 0);
  hH = R[0]!; hL = R[1]!;
  while (p + 8 <= end) {
    round(0, 0, read32(buf, p + 4), read32(buf, p));
    hH = (hH ^ R[0]!) >>> 0;
    hL = (hL ^ R[1]!) >>> 0;
    rotl(hH, hL, 27);
    mul(R[0]!, R[1]!, P1H, P1L);
    add(R[0]!, R[1]!, P4H, P4L);
    hH = R[0]!; hL = R[1]!;
    p += 8;
  }
  if (p + 4 <= end) {
    mul(0, read32(buf, p), P1H, P1L);
    hH = (hH ^ R[0]!) >>> 0;
    hL = (hL ^ R[1]!) >>> 0;
    rotl(hH, hL, 23);
    mul(R[0]!, R[1]!, P2H, P2L);
    add(R[0]!, R[1]!, P3H, P3L);
    hH = R[0]!; hL = R[1]!;
    p += 4;
  }
  while (p < end) {
    mul(0, buf[p]!, P5H, P5L);
    hH = (hH ^ R[0]!) >>> 0;
    hL = (hL ^ R[1]!) >>> 0;
    rotl(hH, hL, 11);
    mul(R[0]!, R[1]!, P1H, P1L);
    hH = R[0]!; hL = R[1]!;
    p++;
  }
  // Avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32.
  hL = (hL ^ (hH >>> 1)) >>> 0;
  mul(hH, hL, P2H, P2L);
  hH = R[0]!; hL = R[1]!;
  hL = (hL ^ ((hL >>> 29) | (hH << 3))) >>> 0;
  hH = (hH ^ (hH >>> 29)) >>> 0;
  mul(hH, hL, P3H, P3L);
  hH = R[0]!; hL = R[1]!;
  hL = (hL ^ hH) >>> 0;
  hashResult.hi = hH;
  hashResult.lo = hL;
}

let scratch = Buffer.allocUnsafe(256);

/** Hashes the UTF-8 bytes of `s`; the result is in `hashResult`. */
export function xxhash64String(s: string, seed = 0): void {
  const n = s.length;
  if (n * 3 > scratch.length) scratch = Buffer.allocUnsafe(Math.max(n * 3, scratch.length * 2));
  const buf = scratch;
  // ASCII (the common case for header values and addresses) is copied directly; anything else is UTF-8 encoded.
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) {
      xxhash64Bytes(buf, 0, buf.write(s, 0, 'utf8'), seed);
      return;
    }
    buf[i] = c;
  }
  xxhash64Bytes(buf, 0, n, seed);
}

/** xxHash64 of a string (UTF-8) or bytes, as a BigInt. */
export function xxhash64(input: string | Uint8Array, seed = 0): bigint {
  if (typeof input === 'string') xxhash64String(input, seed);
  else xxhash64Bytes(input, 0, input.length, seed);
  return toBigInt(hashResult.hi, hashResult.lo);
}

export function toBigInt(hi: number, lo: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/** (hi·2^32 + lo) mod m, exact for m < 2^26. */
export function mod64(hi: number, lo: number, m: number): number {
  return (((hi % m) * (TWO32 % m)) + (lo % m)) % m;
}

/** Lower-case hex, 16 digits (Envoy's Hex::uint64ToHex). */
export function toHex64(hi: number, lo: number): string {
  return (hi >>> 0).toString(16).padStart(8, '0') + (lo >>> 0).toString(16).padStart(8, '0');
}
