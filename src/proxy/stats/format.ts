/**
 * Number formatting the way Envoy's admin output prints numbers (Envoy formats with the fmt library):
 * - `formatShortest(x)`: fmt's `{}` for a double — the shortest text that reads back as the same double
 *   (`1.025`, `3600000`), `nan` for NaN. Used for histogram quantiles in `/stats`.
 * - `formatG(x)`: C's `%g` (fmt's `{:g}`), six significant digits, trailing zeros removed, exponent form below
 *   1e-4 or from 1e6 on (`0.5`, `60000`, `3.6e+06`). Used for bucket bounds in `/stats?histogram_buckets=` and the
 *   outlier lines of `/clusters`.
 */

/** fmt `{}` for a double (shortest round-trip); `nan`/`inf` as fmt prints them. */
export function formatShortest(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (x === Infinity) return 'inf';
  if (x === -Infinity) return '-inf';
  if (Object.is(x, -0)) return '-0';
  const s = String(x);
  // JS writes 1e21 and 1e-7; fmt writes 1e+21 and 1e-07.
  const e = s.indexOf('e');
  if (e < 0) return s;
  const mant = s.slice(0, e);
  let exp = s.slice(e + 1);
  const sign = exp[0] === '-' ? '-' : '+';
  if (exp[0] === '-' || exp[0] === '+') exp = exp.slice(1);
  return `${mant}e${sign}${exp.length < 2 ? '0' + exp : exp}`;
}

/** C `%g` with the default precision of 6. */
export function formatG(x: number, precision = 6): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  if (x === 0) return Object.is(x, -0) ? '-0' : '0';
  const p = precision === 0 ? 1 : precision;
  // The decimal exponent after rounding to p significant digits decides the style.
  const [mant, expStr] = x.toExponential(p - 1).split('e') as [string, string];
  const exp = Number(expStr);
  if (exp < -4 || exp >= p) {
    const m = stripZeros(mant);
    const abs = Math.abs(exp);
    return `${m}e${exp < 0 ? '-' : '+'}${abs < 10 ? '0' + abs : abs}`;
  }
  return stripZeros(x.toFixed(Math.max(0, p - 1 - exp)));
}

function stripZeros(s: string): string {
  if (s.indexOf('.') < 0) return s;
  let end = s.length;
  while (s.charCodeAt(end - 1) === 48 /* 0 */) end--;
  if (s.charCodeAt(end - 1) === 46 /* . */) end--;
  return s.slice(0, end);
}
