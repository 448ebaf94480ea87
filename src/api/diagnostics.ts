/** Diagnostics: what validation, translation and the analyzer report about configuration. */

export type Severity = 'Error' | 'Warning' | 'Info';

/** A place in a config file (1-based line and column). */
export interface SourcePos {
  file: string;
  line: number;
  column: number;
}

/** Identifies the resource a message is about. */
export interface ResourceRef {
  kind: string;
  namespace: string;
  name: string;
}

export interface Diagnostic {
  severity: Severity;
  /** A stable code, `WFT` + four digits (numbered after istioctl analyze's IST codes where one has the same meaning). */
  code: string;
  message: string;
  /** What to do about it. */
  hint?: string;
  resource?: ResourceRef;
  /** Where in the source the problem is: the most precise position known. */
  pos?: SourcePos;
  /** JSON path inside the resource, e.g. `spec.http[0].route[1].weight`. */
  path?: string;
}

/** Formats a JSON path from its segments: `['spec','http',0,'route']` → `spec.http[0].route`. */
export function formatPath(path: ReadonlyArray<string | number>): string {
  let s = '';
  for (const p of path) {
    if (typeof p === 'number') s += `[${p}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(p)) s += s ? `.${p}` : p;
    else s += `[${JSON.stringify(p)}]`;
  }
  return s;
}

export function isError(d: Diagnostic): boolean {
  return d.severity === 'Error';
}
