/** The analyzer framework's types: what an analyzer sees and what it reports. */
import type { Diagnostic, ResourceRef, SourcePos } from '../api/diagnostics.js';
import type { Resource } from '../api/kinds/kind.js';
import type { MeshModel } from '../api/model.js';
import type { AnalysisContext } from './context.js';

/** What analysis runs over: the validated resources, the model built from them, and the earlier diagnostics. */
export interface AnalysisInput {
  resources: ReadonlyArray<Resource<unknown>>;
  model: MeshModel;
  /** Diagnostics of loading, validation and translation; passed through into the result unchanged. */
  diagnostics: readonly Diagnostic[];
  /** DNS domain of Kubernetes hostnames (default `cluster.local`), as the model was built with. */
  domain?: string;
}

/** One message: a diagnostic, plus the analyzer that produced it (absent for loading/validation messages). */
export interface AnalysisMessage extends Diagnostic {
  analyzer?: string;
}

/** Where a message points. */
export interface Where {
  resource?: ResourceRef;
  pos?: SourcePos;
  path?: string;
}

/** One check: a small named analyzer with the codes it may report. */
export interface Analyzer {
  /** Registry name, `area.check` (e.g. `route.destination-hosts`). */
  name: string;
  description: string;
  /** The codes this analyzer reports (each must be in codes.ts). */
  codes: readonly string[];
  analyze(ctx: AnalysisContext): void;
}
