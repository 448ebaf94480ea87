/**
 * HTTP header lists as the proxy's request path carries them: one flat array `[name0, value0, name1, value1, ...]`
 * with names as received (case kept, so HTTP/1 peers see what they sent). No per-request Map or object is built;
 * lookups compare case-insensitively against a lower-case name. HTTP/2 pseudo-headers (`:method`, ...) never
 * appear in a HeaderList: they are fields of RequestHead / ResponseHead.
 */
export type HeaderList = string[];

/** The request line / pseudo-headers, protocol-independent. */
export interface RequestHead {
  method: string;
  /** Path and query as received (`/a/b?x=1`), or `*` for OPTIONS *. */
  path: string;
  /** Host (HTTP/1 Host header or absolute-form URI) or :authority. */
  authority: string;
  scheme: 'http' | 'https';
  headers: HeaderList;
  /** `1.0`, `1.1` or `2`. */
  httpVersion: '1.0' | '1.1' | '2';
}

export interface ResponseHead {
  status: number;
  /** HTTP/1 reason phrase; empty = the standard one. */
  reason?: string;
  headers: HeaderList;
}

/** `a` equals the lower-case `lower` ignoring ASCII case (field names are ASCII tokens); allocates nothing. */
export function eqLower(a: string, lower: string): boolean {
  const n = a.length;
  if (n !== lower.length) return false;
  if (a === lower) return true;
  for (let i = 0; i < n; i++) {
    let c = a.charCodeAt(i);
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** The first value of a header, or undefined. `lowerName` must be lower-case. */
export function getHeader(h: HeaderList, lowerName: string): string | undefined {
  for (let i = 0; i < h.length; i += 2) if (eqLower(h[i]!, lowerName)) return h[i + 1];
  return undefined;
}

/** Every value of a header, in order. */
export function getHeaderValues(h: HeaderList, lowerName: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < h.length; i += 2) if (eqLower(h[i]!, lowerName)) out.push(h[i + 1]!);
  return out;
}

export function hasHeader(h: HeaderList, lowerName: string): boolean {
  for (let i = 0; i < h.length; i += 2) if (eqLower(h[i]!, lowerName)) return true;
  return false;
}

/** Removes every occurrence of a header; returns how many were removed. */
export function removeHeader(h: HeaderList, lowerName: string): number {
  let w = 0;
  let removed = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (eqLower(h[r]!, lowerName)) { removed++; continue; }
    if (w !== r) { h[w] = h[r]!; h[w + 1] = h[r + 1]!; }
    w += 2;
  }
  h.length = w;
  return removed;
}

/** Replaces every occurrence of a header with one value (appends when absent). */
export function setHeader(h: HeaderList, name: string, value: string): void {
  const lower = name.toLowerCase();
  let found = 0;
  for (let i = 0; i < h.length; i += 2) {
    if (eqLower(h[i]!, lower)) {
      if (found === 0) h[i + 1] = value;
      found++;
    }
  }
  if (found === 0) h.push(name, value);
  else if (found > 1) {
    removeHeader(h, lower);
    h.push(name, value);
  }
}

/** Appends a header value (keeps existing ones). */
export function addHeader(h: HeaderList, name: string, value: string): void {
  h.push(name, value);
}
