/**
 * Request path normalization, the connection manager's `normalize_path` and `merge_slashes` (Envoy's
 * PathUtil::canonicalPath, which follows the URL standard's path canonicalization, and PathUtil::mergeSlashes),
 * applied before route selection and the HTTP filters so that routing and authorization see the same path the
 * application will (Istio's default BASE normalization: normalize_path on, slashes not merged, escaped slashes
 * kept):
 *
 * - `\` becomes `/`;
 * - percent-encoded unreserved characters (ALPHA, DIGIT, `-`, `.`, `_`, `~`) are decoded, so `%2e%2E` is a dot
 *   segment and `%41` is `A`; other escapes (including `%2F`) stay as they are, hex upper-cased;
 * - `.` and `..` segments are resolved (`..` never climbs above the root);
 * - merge_slashes: runs of `/` become one.
 * The query string is left alone. Paths without any of `.`, `%`, `\` (or `//` with merge_slashes) are returned as
 * they are, without allocating. A path that does not start with `/` (`*`, absolute-form leftovers) is not touched.
 */

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 65 && c <= 70) return c - 55;
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

function unreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

/** Whether the path part needs any work. */
function needsWork(path: string, end: number, mergeSlashes: boolean): boolean {
  for (let i = 0; i < end; i++) {
    const c = path.charCodeAt(i);
    if (c === 46 || c === 37 || c === 92) return true;
    if (mergeSlashes && c === 47 && i + 1 < end && path.charCodeAt(i + 1) === 47) return true;
  }
  return false;
}

/** The normalized request path (see the module comment). */
export function normalizeRequestPath(path: string, normalize: boolean, mergeSlashes: boolean): string {
  if (path.charCodeAt(0) !== 47) return path;
  const q = path.indexOf('?');
  const end = q < 0 ? path.length : q;
  if (!needsWork(path, end, mergeSlashes)) return path;
  let p = path.slice(0, end);
  if (normalize) {
    // Backslashes and unreserved escapes first, then dot segments on the result.
    let out = '';
    for (let i = 0; i < p.length; i++) {
      const c = p.charCodeAt(i);
      if (c === 92) out += '/';
      else if (c === 37 && i + 2 < p.length && hexVal(p.charCodeAt(i + 1)) >= 0 && hexVal(p.charCodeAt(i + 2)) >= 0) {
        const v = hexVal(p.charCodeAt(i + 1)) * 16 + hexVal(p.charCodeAt(i + 2));
        out += unreserved(v) ? String.fromCharCode(v) : `%${p[i + 1]!.toUpperCase()}${p[i + 2]!.toUpperCase()}`;
        i += 2;
      } else out += p[i];
    }
    const segs = out.split('/');
    const stack: string[] = [];
    for (let i = 1; i < segs.length; i++) {
      const s = segs[i]!;
      const last = i === segs.length - 1;
      if (s === '.') {
        if (last) stack.push('');
      } else if (s === '..') {
        stack.pop();
        if (last) stack.push('');
      } else stack.push(s);
    }
    p = '/' + stack.join('/');
  }
  if (mergeSlashes) p = p.replace(/\/{2,}/g, '/');
  return q < 0 ? p : p + path.slice(q);
}
