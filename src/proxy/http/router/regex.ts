/**
 * RE2 regular expressions (the re2js engine, as Envoy's default Google RE2) with Envoy's semantics:
 * - `fullMatch`: Envoy's `safe_regex` matchers match the whole input (RE2::FullMatch), never a substring;
 * - `replaceAll`: RE2::GlobalReplace, used by `regex_rewrite` and `host_rewrite_path_regex`: every non-overlapping
 *   match is replaced, an empty match right after the previous match is skipped, and the substitution refers to
 *   capture groups as `\0`..`\9` (`\\` is a backslash; any other escape is invalid).
 * Patterns are compiled once, at config time.
 */
import { RE2JS } from 're2js';

/** A substitution string split into literal text and group references. */
export class Substitution {
  private constructor(
    readonly source: string,
    /** Literal strings and group numbers, in order. */
    private readonly parts: ReadonlyArray<string | number>,
  ) {}

  /** Parses an RE2 rewrite string; returns an error message when it is invalid for a regex with `groups` groups. */
  static parse(text: string, groups: number): Substitution | string {
    const parts: Array<string | number> = [];
    let lit = '';
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c !== '\\') {
        lit += c;
        continue;
      }
      const n = text[++i];
      if (n === '\\') {
        lit += '\\';
      } else if (n !== undefined && n >= '0' && n <= '9') {
        const g = n.charCodeAt(0) - 48;
        if (g > groups) return `substitution refers to group \\${g} but the regex has ${groups} capture group${groups === 1 ? '' : 's'}`;
        if (lit) parts.push(lit);
        lit = '';
        parts.push(g);
      } else {
        return `invalid escape in substitution at position ${i - 1}: only \\0..\\9 and \\\\ are allowed`;
      }
    }
    if (lit) parts.push(lit);
    return new Substitution(text, parts);
  }

  /** The substitution text for the current match of `m`. */
  expand(m: { group(g: number): string | null }): string {
    const parts = this.parts;
    if (parts.length === 1 && typeof parts[0] === 'string') return parts[0];
    let out = '';
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      out += typeof p === 'string' ? p : (m.group(p) ?? '');
    }
    return out;
  }
}

export class Re2 {
  private constructor(
    readonly source: string,
    private readonly re: RE2JS,
    readonly groupCount: number,
  ) {}

  /** Compiles a pattern; returns the engine's error message when it is not valid RE2. */
  static compile(pattern: string): Re2 | string {
    try {
      const re = RE2JS.compile(pattern);
      return new Re2(pattern, re, re.groupCount());
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
  }

  /** Whether the whole of `s` matches. */
  fullMatch(s: string): boolean {
    return this.re.testExact(s);
  }

  /** RE2::GlobalReplace: `s` with every match replaced (unchanged when nothing matches). */
  replaceAll(s: string, sub: Substitution): string {
    const m = this.re.matcher(s);
    const n = s.length;
    let out = '';
    let p = 0;
    let lastEnd = -1;
    let count = 0;
    while (p <= n) {
      if (!m.find(p)) break;
      const ms = m.start();
      const me = m.end();
      if (p < ms) out += s.slice(p, ms);
      if (ms === lastEnd && ms === me) {
        // An empty match right where the previous match ended: copy one character and move on.
        if (p < n) {
          const c = s.charCodeAt(p);
          const step = c >= 0xd800 && c <= 0xdbff && p + 1 < n ? 2 : 1;
          out += s.slice(p, p + step);
          p += step;
        } else {
          p++;
        }
        continue;
      }
      out += sub.expand(m);
      p = me;
      lastEnd = me;
      count++;
    }
    if (count === 0) return s;
    if (p < n) out += s.slice(p);
    return out;
  }
}
