/**
 * `weft analyze`: runs every registered analyzer over the validated resources and the model, and returns their
 * messages together with the loading/validation diagnostics, sorted by file and line. Never throws: an
 * analyzer that fails becomes a WFT0001 message and the others still run.
 */
import type { Diagnostic } from '../api/diagnostics.js';
import { buildModel } from '../api/build.js';
import type { BuildOptions } from '../api/build.js';
import type { RawResource } from '../api/source.js';
import { loadConfigPaths } from '../api/source.js';
import { AnalysisContext, internalError } from './context.js';
import { allAnalyzers, getAnalyzer } from './registry.js';
import type { AnalysisInput, AnalysisMessage, Analyzer, Where } from './types.js';

export type { AnalysisInput, AnalysisMessage, Analyzer } from './types.js';
export { allAnalyzers, getAnalyzer, registerAnalyzer, unregisterAnalyzer } from './registry.js';
export { allCodes, codeInfo } from './codes.js';

export interface AnalyzeOptions {
  /** Run only these analyzers (by name); default all. */
  analyzers?: readonly string[];
}

/** Runs the analyzers over already built input. */
export function analyze(input: AnalysisInput, opts: AnalyzeOptions = {}): AnalysisMessage[] {
  const out: AnalysisMessage[] = [...input.diagnostics];
  let selected: Analyzer[];
  if (opts.analyzers) {
    selected = [];
    for (const n of opts.analyzers) {
      const a = getAnalyzer(n);
      if (a) selected.push(a);
      else out.push({ severity: 'Error', code: 'WFT0001', message: `unknown analyzer "${n}"`, hint: `known analyzers: ${allAnalyzers().map((x) => x.name).join(', ')}` });
    }
  } else selected = allAnalyzers();
  let ctx: AnalysisContext;
  try {
    ctx = new AnalysisContext(input);
  } catch (e) {
    out.push(internalError('analysis setup', e));
    return sortMessages(dedupe(out));
  }
  for (const a of selected) {
    ctx.analyzer = a.name;
    const before = ctx.messages.length;
    try {
      a.analyze(ctx);
    } catch (e) {
      // Keep what the analyzer reported before failing, and say it failed.
      ctx.messages.splice(before);
      out.push({ ...internalError(`analyzer ${a.name}`, e), analyzer: a.name });
    }
  }
  const kept = out.filter((d) => !ctx.replaced.some((r) => isReplaced(d, r.codes, r.where)));
  kept.push(...ctx.messages);
  return sortMessages(dedupe(kept));
}

function isReplaced(d: Diagnostic, codes: readonly string[], where: Where): boolean {
  if (!codes.includes(d.code) || 'analyzer' in d) return false;
  const a = d.resource;
  const b = where.resource;
  if (!a || !b || a.kind !== b.kind || a.namespace !== b.namespace || a.name !== b.name) return false;
  return !!d.pos && !!where.pos && d.pos.file === where.pos.file && d.pos.line === where.pos.line;
}

/** Builds the model from raw resources and analyzes it. */
export function analyzeResources(raws: readonly RawResource[], extra: readonly Diagnostic[] = [], opts: AnalyzeOptions & BuildOptions = {}): AnalysisMessage[] {
  let built: ReturnType<typeof buildModel>;
  try {
    built = buildModel(raws, opts);
  } catch (e) {
    return sortMessages([...extra, internalError('building the model', e)]);
  }
  return analyze({ resources: built.resources, model: built.model, diagnostics: [...extra, ...built.diagnostics], ...(opts.domain ? { domain: opts.domain } : {}) }, opts);
}

/** Loads config files and directories, builds the model and analyzes it. */
export async function analyzePaths(paths: readonly string[], opts: AnalyzeOptions & BuildOptions = {}): Promise<{ messages: AnalysisMessage[]; files: string[] }> {
  let loaded: Awaited<ReturnType<typeof loadConfigPaths>>;
  try {
    loaded = await loadConfigPaths(paths);
  } catch (e) {
    return { messages: [internalError('loading config', e)], files: [] };
  }
  return { messages: analyzeResources(loaded.resources, loaded.diagnostics, opts), files: loaded.files };
}

const SEVERITY_ORDER = { Error: 0, Warning: 1, Info: 2 } as const;

/** Sorts by file, line, column, then severity and code; messages without a position go last. */
export function sortMessages<T extends Diagnostic>(list: T[]): T[] {
  return list
    .map((d, i) => ({ d, i }))
    .sort((a, b) => {
      const pa = a.d.pos;
      const pb = b.d.pos;
      if (pa && !pb) return -1;
      if (!pa && pb) return 1;
      if (pa && pb) {
        if (pa.file !== pb.file) return pa.file < pb.file ? -1 : 1;
        if (pa.line !== pb.line) return pa.line - pb.line;
        if (pa.column !== pb.column) return pa.column - pb.column;
      }
      const s = SEVERITY_ORDER[a.d.severity] - SEVERITY_ORDER[b.d.severity];
      if (s) return s;
      if (a.d.code !== b.d.code) return a.d.code < b.d.code ? -1 : 1;
      return a.i - b.i;
    })
    .map((x) => x.d);
}

function dedupe<T extends Diagnostic>(list: T[]): T[] {
  const seen = new Set<string>();
  return list.filter((d) => {
    const k = JSON.stringify([d.code, d.message, d.resource, d.pos]);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Whether any message is an Error. */
export function hasErrors(list: readonly Diagnostic[]): boolean {
  return list.some((d) => d.severity === 'Error');
}
