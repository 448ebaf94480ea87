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
  const at = (offset: number): SourcePos => {
    const p = lc.linePos(Math.max(0, Math.min(offset, text.length)));
    return { file, line: p.line, column: p.col };
  };
  let docs: ReturnType<typeof parseAllDocuments>;
  try {
    docs = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true, merge: true });
  } catch (e) {
    diagnostics.push(syntaxError(`cannot parse: ${(e as Error).message}`, { file, line: 1, column: 1 }));
    return { resources, diagnostics };
  }
  const list = Array.isArray(docs) ? docs : [];
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
    const locate = (path: JsonPath) => at(offsetOf(root, path));
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      diagnostics.push(syntaxError('document is not a mapping (expected a resource with apiVersion and kind)', docPos));
      return;
    }
    const obj = value as Record<string, unknown>;
    // A kubectl-style List: each item is a resource.
    if (obj.kind === 'List' && Array.isArray(obj.items)) {
      obj.items.forEach((item, i) => {
        const prefix = ['items', i];
        const r = toResource(item, file, docIndex, at(offsetOf(root, prefix)), (p) => locate([...prefix, ...p]), diagnostics);
        if (r) resources.push(r);
      });
      return;
    }
    const r = toResource(obj, file, docIndex, docPos, locate, diagnostics);
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

/** Offset of the node at `path` (a key's position for the last segment of a mapping), or of its nearest parent. */
function offsetOf(root: YamlNode, path: JsonPath): number {
  let node: unknown = root;
  let best = root.range?.[0] ?? 0;
  for (let i = 0; i < path.length; i++) {
    const seg = path[i];
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
      if (!pair) return best;
      const key = pair.key as YamlNode;
      const val = pair.value as YamlNode | null;
      if (i === path.length - 1) return key.range?.[0] ?? best;
      best = val?.range?.[0] ?? key.range?.[0] ?? best;
      node = val;
    } else if (isSeq(node) && typeof seg === 'number') {
      const item = node.items[seg] as YamlNode | undefined;
      if (!item) return best;
      best = item.range?.[0] ?? best;
      node = item;
    } else {
      return best;
    }
  }
  return best;
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
