/** Text and JSON renderings of analysis messages, as `weft analyze` prints them. */
import type { Diagnostic } from '../api/diagnostics.js';
import type { AnalysisMessage } from './types.js';

/** `(Kind namespace/name file:line)`; parts that are unknown are left out. */
function subject(d: Diagnostic): string {
  const parts: string[] = [];
  if (d.resource) parts.push(`${d.resource.kind} ${d.resource.namespace ? `${d.resource.namespace}/` : ''}${d.resource.name}`);
  if (d.pos) parts.push(`${d.pos.file}:${d.pos.line}`);
  return parts.length ? ` (${parts.join(' ')})` : '';
}

/** One message: `Severity [CODE] (Kind ns/name file:line) message`, then the hint indented on the next line. */
export function formatText(d: Diagnostic): string {
  const head = `${d.severity} [${d.code}]${subject(d)} ${oneLine(d.message)}`;
  return d.hint ? `${head}\n    ${oneLine(d.hint)}` : head;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ');
}

/** A message as plain JSON data: every field, the position flattened next to the nested one for easy use. */
export function toJson(d: AnalysisMessage): Record<string, unknown> {
  const o: Record<string, unknown> = { severity: d.severity, code: d.code, message: d.message };
  if (d.hint !== undefined) o.hint = d.hint;
  if (d.resource) o.resource = { ...d.resource };
  if (d.pos) {
    o.file = d.pos.file;
    o.line = d.pos.line;
    o.column = d.pos.column;
  }
  if (d.path !== undefined) o.path = d.path;
  if (d.analyzer !== undefined) o.analyzer = d.analyzer;
  return o;
}

export function summary(list: readonly Diagnostic[]): string {
  const n = (s: Diagnostic['severity']) => list.filter((d) => d.severity === s).length;
  const e = n('Error');
  const w = n('Warning');
  const i = n('Info');
  if (!list.length) return 'no issues found';
  return `${e} error${e === 1 ? '' : 's'}, ${w} warning${w === 1 ? '' : 's'}, ${i} info`;
}
