/**
 * Finding the most precise source position for a message: JSON paths as the model writes them
 * (`spec.http[1].route[0]`) are parsed back into segments, and values are searched for in the raw document.
 */
import type { JsonPath } from '../api/source.js';

/** Parses `spec.http[1].route[0]` / `metadata["a.b"]` into path segments. Unparseable text gives `[]`. */
export function parsePath(text: string | undefined): Array<string | number> {
  if (!text) return [];
  const out: Array<string | number> = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '.') {
      i++;
      continue;
    }
    if (c === '[') {
      const end = text.indexOf(']', i);
      if (end < 0) return out;
      const inner = text.slice(i + 1, end);
      if (/^\d+$/.test(inner)) out.push(Number(inner));
      else {
        // A quoted key may contain `]`: find the closing quote first.
        if (inner.startsWith('"')) {
          const close = findClosingQuote(text, i + 1);
          if (close < 0) return out;
          try {
            out.push(JSON.parse(text.slice(i + 1, close + 1)) as string);
          } catch {
            return out;
          }
          i = text.indexOf(']', close) + 1 || text.length;
          continue;
        }
        out.push(inner);
      }
      i = end + 1;
      continue;
    }
    let j = i;
    while (j < text.length && text[j] !== '.' && text[j] !== '[') j++;
    out.push(text.slice(i, j));
    i = j;
  }
  return out;
}

function findClosingQuote(text: string, start: number): number {
  for (let k = start + 1; k < text.length; k++) {
    if (text[k] === '\\') k++;
    else if (text[k] === '"') return k;
  }
  return -1;
}

/** The value at a path inside plain data, or undefined. */
export function getAt(root: unknown, path: JsonPath): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[seg];
  }
  return v;
}

/**
 * Depth-first search under `base` for a leaf accepted by `pred` (given the leaf value, its key and its path).
 * Returns the first path found in document order, or undefined.
 */
export function findLeaf(
  root: unknown,
  base: JsonPath,
  pred: (value: unknown, key: string | number, path: JsonPath) => boolean,
  maxDepth = 12,
): JsonPath | undefined {
  const start = getAt(root, base);
  const walk = (v: unknown, path: Array<string | number>, depth: number): JsonPath | undefined => {
    if (depth > maxDepth) return undefined;
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        const p = [...path, i];
        if (pred(v[i], i, p)) return p;
        const r = walk(v[i], p, depth + 1);
        if (r) return r;
      }
    } else if (v !== null && typeof v === 'object') {
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        const p = [...path, k];
        if (pred(x, k, p)) return p;
        const r = walk(x, p, depth + 1);
        if (r) return r;
      }
    }
    return undefined;
  };
  return walk(start, [...base], 0);
}

/** Whether a host as written (`reviews`, `reviews.ns`, or an FQDN) names the FQDN `fqdn`. */
export function writtenHostNames(written: string, fqdn: string): boolean {
  const w = written.toLowerCase();
  return w === fqdn || fqdn.startsWith(`${w}.`);
}
