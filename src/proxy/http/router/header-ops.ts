/**
 * Header mutations of a route, virtual host, weighted cluster or route configuration (`*_headers_to_add`,
 * `*_headers_to_remove`), with Envoy's HeaderParser semantics (source/common/router/header_parser.cc):
 *
 * 1. every header in headers_to_remove is removed;
 * 2. every value in headers_to_add is formatted against the headers as they are now; an empty value is dropped
 *    unless keep_empty_value; APPEND_IF_EXISTS_OR_ADD appends, ADD_IF_ABSENT adds only when absent,
 *    OVERWRITE_IF_EXISTS_OR_ADD replaces (or adds), OVERWRITE_IF_EXISTS replaces only when present (the presence
 *    checks see the headers after step 1); the deprecated `append` maps true → append, false → overwrite;
 * 3. all overwrites are applied (every old value removed, the new one appended), then all appends, each in
 *    configuration order.
 *
 * `:`-prefixed names and `host` may not be added or removed (ConfigError), as in Envoy. Names are written in
 * lower case. Applying a parser allocates nothing beyond the formatted values of templates that have commands.
 */
import { HeaderValueOption_HeaderAppendAction } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { HeaderValueOption } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { HeaderList, RequestHead, ResponseHead } from '../headers.js';
import { parseFormatter } from './formatter.js';
import type { Formatter, FormatRoute, FormatterOptions, FormatVars } from './formatter.js';
import { asciiLower, checkHeaderName, checkHeaderValue, nameIs } from './util.js';
import type { CompileContext } from './util.js';

const ACT_APPEND = 0;
const ACT_ADD_IF_ABSENT = 1;
const ACT_OVERWRITE_OR_ADD = 2;
const ACT_OVERWRITE_IF_EXISTS = 3;

const SKIP = 0;
const SET = 1;
const ADD = 2;

class AddEntry {
  constructor(
    readonly name: string,
    readonly action: number,
    readonly keepEmpty: boolean,
    readonly value: Formatter,
  ) {}
}

/** Whether the list has a header (lower-case name). */
export function hasHeader(h: HeaderList, lower: string): boolean {
  for (let i = 0; i < h.length; i += 2) if (nameIs(h[i]!, lower)) return true;
  return false;
}

/** Removes every occurrence of a header (lower-case name). */
export function removeAll(h: HeaderList, lower: string): void {
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (nameIs(h[r]!, lower)) continue;
    if (w !== r) {
      h[w] = h[r]!;
      h[w + 1] = h[r + 1]!;
    }
    w += 2;
  }
  h.length = w;
}

/** The header ends up with exactly one value: the first occurrence is replaced in place, the others removed. */
export function setOne(h: HeaderList, lower: string, value: string): void {
  let found = -1;
  let w = 0;
  for (let r = 0; r < h.length; r += 2) {
    if (nameIs(h[r]!, lower)) {
      if (found >= 0) continue;
      found = w;
      h[r + 1] = value;
    }
    if (w !== r) {
      h[w] = h[r]!;
      h[w + 1] = h[r + 1]!;
    }
    w += 2;
  }
  h.length = w;
  if (found < 0) h.push(lower, value);
}

export class HeaderParser {
  /** Whether a value has commands (formatted per request; the caller may pass FormatVars). */
  readonly dynamic: boolean;
  private readonly mode: Uint8Array;
  private readonly values: string[];

  constructor(
    /** Lower-case names to remove. */
    readonly remove: readonly string[],
    private readonly add: readonly AddEntry[],
  ) {
    this.mode = new Uint8Array(add.length);
    this.values = new Array<string>(add.length).fill('');
    this.dynamic = add.some((e) => e.value.constant === null);
  }

  get empty(): boolean {
    return this.remove.length === 0 && this.add.length === 0;
  }

  /** Applies the mutations to `h` (the request's or the response's list). */
  apply(h: HeaderList, req: RequestHead, resp: ResponseHead | null, vars: FormatVars | undefined, route: FormatRoute): void {
    const remove = this.remove;
    for (let i = 0; i < remove.length; i++) removeAll(h, remove[i]!);
    const add = this.add;
    const n = add.length;
    if (n === 0) return;
    const mode = this.mode;
    const values = this.values;
    let sets = 0;
    let adds = 0;
    for (let i = 0; i < n; i++) {
      const e = add[i]!;
      const c = e.value.constant;
      const v = c !== null ? c : e.value.format(req, resp, vars, route);
      let m = SKIP;
      if (v.length > 0 || e.keepEmpty) {
        switch (e.action) {
          case ACT_APPEND:
            m = ADD;
            break;
          case ACT_ADD_IF_ABSENT:
            m = hasHeader(h, e.name) ? SKIP : ADD;
            break;
          case ACT_OVERWRITE_IF_EXISTS:
            m = hasHeader(h, e.name) ? SET : SKIP;
            break;
          default:
            m = SET;
        }
      }
      mode[i] = m;
      values[i] = v;
      if (m === SET) sets++;
      else if (m === ADD) adds++;
    }
    // Envoy's setReferenceKey: remove every value, then append (the header moves to the end).
    if (sets > 0) {
      for (let i = 0; i < n; i++) {
        if (mode[i] !== SET) continue;
        removeAll(h, add[i]!.name);
        h.push(add[i]!.name, values[i]!);
      }
    }
    if (adds > 0) for (let i = 0; i < n; i++) if (mode[i] === ADD) h.push(add[i]!.name, values[i]!);
    // Drop references to per-request strings.
    for (let i = 0; i < n; i++) if (add[i]!.value.constant === null) values[i] = '';
  }
}

export const EMPTY_PARSER = new HeaderParser([], []);

/** Envoy's isModifiableHeader / isRemovableHeader. */
function modifiable(name: string): boolean {
  return !name.startsWith(':') && asciiLower(name) !== 'host';
}

/** Compiles `<prefix>_headers_to_add` / `_to_remove` of one level. */
export function compileHeaderParser(
  ctx: CompileContext,
  field: string,
  toAdd: readonly HeaderValueOption[],
  toRemove: readonly string[],
  opts: FormatterOptions,
): HeaderParser {
  if (toAdd.length === 0 && toRemove.length === 0) return EMPTY_PARSER;
  const addField = `${field}_headers_to_add`;
  const removeField = `${field}_headers_to_remove`;
  const add: AddEntry[] = [];
  toAdd.forEach((o, i) => {
    const f = `${addField}[${i}]`;
    if (!o.header) ctx.fail(`${f}.header`, 'is required');
    const key = o.header.key;
    checkHeaderName(ctx, `${f}.header.key`, key);
    if (Buffer.byteLength(key) > 16384) ctx.fail(`${f}.header.key`, 'must be at most 16384 bytes');
    if (!modifiable(key)) ctx.fail(`${f}.header.key`, `:-prefixed or host headers may not be modified (${key})`);
    let text = o.header.value;
    if (o.header.rawValue.length > 0) {
      if (text.length > 0) ctx.fail(`${f}.header`, 'only one of value or raw_value can be set');
      text = Buffer.from(o.header.rawValue).toString('utf8');
    }
    checkHeaderValue(ctx, `${f}.header.value`, text);
    if (Buffer.byteLength(text) > 16384) ctx.fail(`${f}.header.value`, 'must be at most 16384 bytes');
    let action: number;
    if (o.append !== undefined) {
      if (o.appendAction !== HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD) {
        ctx.fail(f, 'both append and append_action are set and it is not allowed');
      }
      action = o.append ? ACT_APPEND : ACT_OVERWRITE_OR_ADD;
    } else {
      switch (o.appendAction) {
        case HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD:
          action = ACT_APPEND;
          break;
        case HeaderValueOption_HeaderAppendAction.ADD_IF_ABSENT:
          action = ACT_ADD_IF_ABSENT;
          break;
        case HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD:
          action = ACT_OVERWRITE_OR_ADD;
          break;
        case HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS:
          action = ACT_OVERWRITE_IF_EXISTS;
          break;
        default:
          return ctx.fail(`${f}.append_action`, `unknown append action ${String(o.appendAction)}`);
      }
    }
    add.push(new AddEntry(asciiLower(key), action, o.keepEmptyValue, parseFormatter(ctx, `${f}.header.value`, text, opts)));
  });
  const remove = toRemove.map((name, i) => {
    const f = `${removeField}[${i}]`;
    checkHeaderName(ctx, f, name);
    if (!modifiable(name)) ctx.fail(f, `:-prefixed or host headers may not be removed (${name})`);
    return asciiLower(name);
  });
  return new HeaderParser(remove, add);
}
