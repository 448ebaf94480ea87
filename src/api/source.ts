/**
 * Reading config: multi-document YAML and JSON, from text, files and directories, into raw resources that keep
 * their source positions, so every later message can point at file:line:column.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import type { Node as YamlNode } from 'yaml';
import type { Diagnostic, SourcePos } from './diagnostics.js';
import { formatPath } from './diagnostics.js';

export type JsonPath = ReadonlyArray<string | number>;

/** One resource as written: `apiVersion`, `kind`, `metadata` and the rest, plus where it came from. */
export interface RawResource {
  apiVersion: string;
  kind: string;
  metadata: RawMetadata;
  /** The whole document as plain data (apiVersion, kind, metadata, spec, ...). */
  body: Record<string, unknown>;
  file: string;
  /** Index of the YAML document in its file (0-based). */
  doc: number;
  /** Position of the document's start. */
  pos: SourcePos;
  /** The most precise known position of a JSON path inside this resource (falls back to the nearest parent). */
  locate(path: JsonPath): SourcePos;
}

export interface RawMetadata {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  creationTimestamp?: string;
  generation?: number;
  [k: string]: unknown;
}

export interface ParseResult {
  resources: RawResource[];
  diagnostics: Diagnostic[];
}

/** File name endings read as config. */
export const CONFIG_EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

export function isConfigFile(path: string): boolean {
  return CONFIG_EXTENSIONS.has(extname(path).toLowerCase());
}

/** Parses the text of one file (YAML, possibly multi-document, or JSON). Never throws. */
export function parseConfigText(text: string, file: string): ParseResult {
  const resources: RawResource[] = [];
  const diagnostics: Diagnostic[] = [];
  const lc = new LineCounter();
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, merge: true });
  } catch (e) {
    diagnostics.push(syntaxError(`cannot parse: ${(e as Error).message}`, { file, line: 1, column: 1 }));
    return { resources, diagnostics };
  }
  // The resources keep the line starts and compact node positions (NodePositions), not the text and documents.
  const lines = new LinePositions(file, lc.lineStarts, text.length);
  const at = (offset: number): SourcePos => lines.at(offset);
  const list = Array.isArray(docs) ? docs : [];
  const keys = new Map<string, string>();
  list.forEach((d, docIndex) => {
    if (d.errors.length) {
      for (const err of d.errors) {
        diagnostics.push(syntaxError(`YAML syntax error: ${firstLine(err.message)}`, at(err.pos[0])));
      }
      return; // a document with syntax errors yields no resources
    }
    const root = d.contents as YamlNode | null;
    if (root == null || (isScalar(root) && root.value == null)) return; // empty document
    const docPos = at(root.range?.[0] ?? 0);
    let value: unknown;
    try {
      value = d.toJS({ maxAliasCount: 100 });
    } catch (e) {
      diagnostics.push(syntaxError(`cannot read document: ${(e as Error).message}`, docPos));
      return;
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      diagnostics.push(syntaxError('document is not a mapping (expected a resource with apiVersion and kind)', docPos));
      return;
    }
    const tree = NodePositions.of(root, keys);
    const obj = value as Record<string, unknown>;
    // A kubectl-style List: each item is a resource.
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      obj.items.forEach((item, i) => {
        const prefix = ['items', i];
        const r = toResource(item, file, docIndex, at(tree.offsetOf(prefix)), (p) => at(tree.offsetOf([...prefix, ...p])), diagnostics);
        if (r) resources.push(r);
      });
      return;
    }
    const r = toResource(obj, file, docIndex, docPos, (p) => at(tree.offsetOf(p)), diagnostics);
    if (r) resources.push(r);
  });
  return { resources, diagnostics };
}

function toResource(
  value: unknown,
  file: string,
  doc: number,
  pos: SourcePos,
  locate: (p: JsonPath) => SourcePos,
  diagnostics: Diagnostic[],
): RawResource | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    diagnostics.push(syntaxError('list item is not a mapping', pos));
    return undefined;
  }
  const body = value as Record<string, unknown>;
  const problems: Array<[JsonPath, string]> = [];
  if (typeof body.apiVersion !== 'string' || !body.apiVersion) problems.push([['apiVersion'], 'missing or non-string apiVersion']);
  if (typeof body.kind !== 'string' || !body.kind) problems.push([['kind'], 'missing or non-string kind']);
  const md = body.metadata;
  if (md === null || typeof md !== 'object' || Array.isArray(md)) problems.push([['metadata'], 'missing metadata (a mapping with at least a name)']);
  else {
    const m = md as Record<string, unknown>;
    if (typeof m.name !== 'string' || !m.name) problems.push([['metadata', 'name'], 'missing or non-string metadata.name']);
    if (m.namespace !== undefined && (typeof m.namespace !== 'string' || !m.namespace)) problems.push([['metadata', 'namespace'], 'metadata.namespace must be a non-empty string']);
    for (const f of ['labels', 'annotations'] as const) {
      const v = m[f];
      if (v === undefined || v === null) continue;
      if (typeof v !== 'object' || Array.isArray(v)) problems.push([['metadata', f], `metadata.${f} must be a mapping of strings`]);
      else for (const [k, x] of Object.entries(v)) if (typeof x !== 'string') problems.push([['metadata', f, k], `metadata.${f}.${k} must be a string (quote it)`]);
    }
  }
  if (problems.length) {
    for (const [p, msg] of problems) {
      diagnostics.push({ severity: 'Error', code: 'WFT0106', message: msg, pos: locate(p), path: formatPath(p), hint: 'every resource needs apiVersion, kind and metadata.name' });
    }
    return undefined;
  }
  return {
    apiVersion: body.apiVersion as string,
    kind: body.kind as string,
    metadata: body.metadata as RawMetadata,
    body,
    file,
    doc,
    pos,
    locate,
  };
}

/**
 * Line and column of an offset in one file's text, from the offsets where its lines start (what the YAML
 * parser's LineCounter collected), with the LineCounter's own rules. Kept by the file's resources instead of the
 * text.
 */
class LinePositions {
  private readonly starts: Int32Array;

  constructor(
    private readonly file: string,
    lineStarts: readonly number[],
    private readonly length: number,
  ) {
    this.starts = Int32Array.from(lineStarts);
  }

  at(offset: number): SourcePos {
    const o = Math.max(0, Math.min(offset, this.length));
    const starts = this.starts;
    let low = 0;
    let high = starts.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (starts[mid]! < o) low = mid + 1;
      else high = mid;
    }
    if (low < starts.length && starts[low] === o) return { file: this.file, line: low + 1, column: 1 };
    if (low === 0) return { file: this.file, line: 0, column: o };
    return { file: this.file, line: low, column: o - starts[low - 1]! + 1 };
  }
}

const LEAF = 0;
const MAP = 1;
const SEQ = 2;

/**
 * The source offsets of a YAML document's nodes in compact form: what `locate` needs of the parsed document
 * (which, with its syntax tokens, is many times the size of the data), so resources can point at file:line:column
 * without keeping it alive. One Int32Array in pre-order; a node is [kind, start offset, n] followed, for a
 * mapping, by n (key index, key offset, child) triples and, for a sequence, by n children; a child is the index
 * of its node, -1 for none; an offset is -1 when unknown; a key index is into `keys` (-1: not a scalar key).
 */
class NodePositions {
  private constructor(
    private readonly data: Int32Array,
    private readonly keys: readonly string[],
  ) {}

  /** `keyPool` shares key strings between the documents of a file. */
  static of(root: YamlNode, keyPool: Map<string, string>): NodePositions {
    const data: number[] = [];
    const keys: string[] = [];
    const keyIndex = new Map<string, number>();
    const keyOf = (k: unknown): number => {
      let s = String(k);
      let i = keyIndex.get(s);
      if (i === undefined) {
        const pooled = keyPool.get(s);
        if (pooled === undefined) keyPool.set(s, s);
        else s = pooled;
        i = keys.push(s) - 1;
        keyIndex.set(s, i);
      }
      return i;
    };
    const write = (node: unknown): number => {
      const at = data.length;
      const start = (node as YamlNode).range?.[0] ?? -1;
      if (isMap(node)) {
        const items = node.items;
        data.push(MAP, start, items.length);
        const slots = data.length;
        for (const p of items) {
          const key = isPair(p) && isScalar(p.key) ? (p.key as YamlNode) : undefined;
          data.push(key ? keyOf((key as { value: unknown }).value) : -1, key?.range?.[0] ?? -1, -1);
        }
        items.forEach((p, i) => {
          if (isPair(p) && p.value != null) data[slots + 3 * i + 2] = write(p.value);
        });
      } else if (isSeq(node)) {
        const items = node.items;
        data.push(SEQ, start, items.length);
        const slots = data.length;
        for (let i = 0; i < items.length; i++) data.push(-1);
        items.forEach((item, i) => {
          if (item != null) data[slots + i] = write(item);
        });
      } else {
        data.push(LEAF, start, 0);
      }
      return at;
    };
    write(root);
    return new NodePositions(Int32Array.from(data), keys);
  }

  /**
   * Offset of the node at `path` (a key's position for the last segment of a mapping), or of its nearest parent
   * (the first mapping key that matches, like `find` on the document's pairs).
   */
  offsetOf(path: JsonPath): number {
    const d = this.data;
    let node = 0;
    let best = d[1]! >= 0 ? d[1]! : 0;
    for (let i = 0; i < path.length; i++) {
      if (node < 0) return best;
      const seg = path[i]!;
      const kind = d[node]!;
      const n = d[node + 2]!;
      if (kind === MAP) {
        const want = String(seg);
        let slot = -1;
        for (let j = 0; j < n; j++) {
          const k = d[node + 3 + 3 * j]!;
          if (k >= 0 && this.keys[k] === want) {
            slot = node + 3 + 3 * j;
            break;
          }
        }
        if (slot < 0) return best;
        const keyStart = d[slot + 1]!;
        if (i === path.length - 1) return keyStart >= 0 ? keyStart : best;
        const child = d[slot + 2]!;
        const childStart = child >= 0 ? d[child + 1]! : -1;
        best = childStart >= 0 ? childStart : keyStart >= 0 ? keyStart : best;
        node = child;
      } else if (kind === SEQ && typeof seg === 'number') {
        if (!Number.isInteger(seg) || seg < 0 || seg >= n) return best;
        const item = d[node + 3 + seg]!;
        if (item < 0) return best;
        if (d[item + 1]! >= 0) best = d[item + 1]!;
        node = item;
      } else {
        return best;
      }
    }
    return best;
  }
}

function syntaxError(message: string, pos: SourcePos): Diagnostic {
  return { severity: 'Error', code: 'WFT0100', message, pos, hint: 'fix the file so that it is valid YAML or JSON' };
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s;
}

/**
 * A directory holding a file of this name is skipped when one of its parents is read recursively (it is still read
 * when named directly). For directories of alternative configs that must not all apply at once, such as the
 * Bookinfo task files (examples/bookinfo/tasks).
 */
export const IGNORE_MARKER = '.weftignore';

/**
 * Lists config files under the given paths (files as given; directories recursively, sorted, dot-files and
 * `node_modules` skipped, and subdirectories holding an IGNORE_MARKER file).
 */
export async function listConfigFiles(paths: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  const walk = async (p: string, explicit: boolean): Promise<void> => {
    const st = await stat(p);
    if (st.isDirectory()) {
      const entries = (await readdir(p)).sort();
      if (!explicit && entries.includes(IGNORE_MARKER)) return;
      for (const e of entries) {
        if (e.startsWith('.') || e === 'node_modules') continue;
        await walk(join(p, e), false);
      }
    } else if (explicit || isConfigFile(p)) {
      out.push(p);
    }
  };
  for (const p of paths) await walk(p, true);
  return out;
}

/** Reads and parses every config file under `paths`. Unreadable paths become diagnostics. */
export async function loadConfigPaths(paths: readonly string[]): Promise<ParseResult & { files: string[] }> {
  const resources: RawResource[] = [];
  const diagnostics: Diagnostic[] = [];
  const files: string[] = [];
  for (const p of paths) {
    let listed: string[];
    try {
      listed = await listConfigFiles([p]);
    } catch (e) {
      diagnostics.push({ severity: 'Error', code: 'WFT0100', message: `cannot read ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, pos: { file: p, line: 1, column: 1 } });
      continue;
    }
    for (const f of listed) {
      files.push(f);
      let text: string;
      try {
        text = await readFile(f, 'utf8');
      } catch (e) {
        diagnostics.push({ severity: 'Error', code: 'WFT0100', message: `cannot read ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, pos: { file: f, line: 1, column: 1 } });
        continue;
      }
      const r = parseConfigText(text, f);
      resources.push(...r.resources);
      diagnostics.push(...r.diagnostics);
    }
  }
  return { resources, diagnostics, files };
}
