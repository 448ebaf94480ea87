/**
 * Random numbers for load balancing: a function returning uniform unsigned 32-bit integers. The default is a fast
 * non-cryptographic generator (xorshift128) seeded from the OS; `seededRandom(seed)` gives a reproducible sequence
 * for tests and benchmarks.
 */
import { randomBytes } from 'node:crypto';

/** Returns a uniform integer in [0, 2^32). */
export type RandomFn = () => number;

export function seededRandom(seed: number): RandomFn {
  // splitmix32 spreads the seed over the four words of state (never all zero).
  let s = seed >>> 0;
  const next = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
    return (z ^ (z >>> 16)) >>> 0;
  };
  let x = next() | 1;
  let y = next();
  let z = next();
  let w = next();
  return () => {
    const t = x ^ (x << 11);
    x = y;
    y = z;
    z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    return w;
  };
}

export function defaultRandom(): RandomFn {
  return seededRandom(randomBytes(4).readUInt32LE(0));
}
