/**
 * The config store: the one place that holds the current configuration, fed by config sources (the directory
 * watcher today, a Kubernetes source later), and that tells listeners exactly what changed.
 *
 * A source hands the store *units*: a file for the directory source (an object for a Kubernetes source), each
 * with the resources and diagnostics of its latest read. The store applies three rules:
 *
 * - A unit read with an Error diagnostic (a half-written or broken file) does not replace the unit's last valid
 *   resources: they stay in effect, and the errors are reported until the unit is valid again. A unit that has
 *   never been valid contributes no resources (a unit is accepted whole or not at all).
 * - Resources are identified as build.ts does: `group/Kind/namespace/name` (the version is not part of the
 *   identity). When several units define the same identity the first one wins (sources in the order they first
 *   fed the store, then units in path order, then document order); every other definition gets a WFT1009 Error.
 * - A change event lists only what changed: a resource whose body (compared as canonical JSON) and file are the
 *   same as before is not reported, so re-reading an untouched file or touching it produces no event at all.
 */
import type { Diagnostic } from '../api/diagnostics.js';
import { splitApiVersion } from '../api/kinds/kind.js';
import { findKind } from '../api/kinds/registry.js';
import type { ParseResult, RawResource } from '../api/source.js';

/** What a source reports about one unit (one file): its latest read, or that it is gone. */
export type UnitChange = { unit: string; result: ParseResult } | { unit: string; removed: true };

/** One change of the store's content, as emitted to listeners. */
export interface ConfigChange {
  /** Resources whose identity was not present before. */
  added: RawResource[];
  /** Resources whose body or defining file changed (the new version). */
  updated: RawResource[];
  /** Resources no longer defined anywhere (their last version). */
  removed: RawResource[];
  /** Every current diagnostic of every source (replaces the previous list; empty once all is well). */
  diagnostics: Diagnostic[];
  /** The store revision this change produced (1 for the first change, then +1 per change). */
  revision: number;
  /**
   * Every resource in effect kept its place in the precedence order (see `snapshot`): no unit was added or
   * removed, every changed unit defines the same identities in the same order as before, and nothing is defined
   * twice. So `added` and `removed` are empty, and each resource of `updated` replaces its previous version where
   * that version was (what lets a consumer apply the change in place instead of re-reading every resource).
   */
  inPlace: boolean;
  /**
   * When the source saw the change happen, if it knows (ms since epoch): the first and the last event of the burst
   * of file events the change was read after (a directory source). A consumer that waits for a quiet period after
   * changes (the control plane's push debouncing) counts it from `last`, not from when the files were read.
   */
  seen?: { first: number; last: number };
}

export interface ConfigSnapshot {
  /** Every resource in effect, in precedence order (sources, then units in path order, then documents). */
  resources: RawResource[];
  diagnostics: Diagnostic[];
  revision: number;
}

export type ConfigListener = (change: ConfigChange) => void;

/**
 * The identity of a resource, the same as build.ts's `Resource.key`: `group/Kind/namespace/name`. A missing
 * namespace is `default` for namespaced (and unknown) kinds; cluster-scoped kinds have an empty namespace.
 */
export function resourceKey(raw: RawResource): string {
  let key = resourceKeys.get(raw);
  if (key === undefined) {
    const { group } = splitApiVersion(raw.apiVersion);
    key = `${group}/${raw.kind}/${effectiveNamespace(raw)}/${raw.metadata.name}`;
    resourceKeys.set(raw, key);
  }
  return key;
}

/** Keys of the resources seen (a store recomputes what is in effect from every resource on each change). */
const resourceKeys = new WeakMap<RawResource, string>();

function effectiveNamespace(raw: RawResource): string {
  const def = findKind(splitApiVersion(raw.apiVersion).group, raw.kind);
  return def && !def.namespaced ? '' : (raw.metadata.namespace ?? 'default');
}

interface Unit {
  source: string;
  sourceOrder: number;
  unit: string;
  /** The unit name split into path segments, for path-order comparison. */
  segments: string[];
  /** Resources of the last valid read. */
  accepted: RawResource[];
  /** Diagnostics of the latest read (which may be newer than `accepted`). */
  diagnostics: Diagnostic[];
}

interface Entry {
  raw: RawResource;
  unit: Unit;
}

export interface ConfigStoreOptions {
  /** Called when a listener throws (default: rethrown asynchronously, as an uncaught exception). */
  onListenerError?: (err: unknown) => void;
}

export class ConfigStore {
  readonly #sourceOrder = new Map<string, number>();
  readonly #units = new Map<string, Unit>();
  /** `#units` in precedence order (see compareUnits); undefined when units were added or removed since. */
  #sorted: Unit[] | undefined;
  #effective = new Map<string, Entry>();
  #diagnostics: Diagnostic[] = [];
  #diagnosticsJson = '[]';
  #revision = 0;
  /** The `seen` times of the change being applied (see ConfigChange.seen). */
  #seen: { first: number; last: number } | undefined;
  readonly #listeners = new Set<ConfigListener>();
  readonly #onListenerError: (err: unknown) => void;

  constructor(opts: ConfigStoreOptions = {}) {
    this.#onListenerError =
      opts.onListenerError ??
      ((e) =>
        queueMicrotask(() => {
          throw e;
        }));
  }

  /** The current revision: 0 until the first change. */
  get revision(): number {
    return this.#revision;
  }

  /** Calls `listener` after every change (synchronously, in registration order). Returns an unsubscribe function. */
  onChange(listener: ConfigListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Resources in effect in precedence order (units in order, each unit's resources as read), and diagnostics. */
  snapshot(): ConfigSnapshot {
    const resources: RawResource[] = [];
    for (const unit of this.#unitsInOrder()) for (const raw of unit.accepted) if (this.#effective.get(resourceKey(raw))?.raw === raw) resources.push(raw);
    return { resources, diagnostics: [...this.#diagnostics], revision: this.#revision };
  }

  #unitsInOrder(): Unit[] {
    return (this.#sorted ??= [...this.#units.values()].sort(compareUnits));
  }

  /** How many resources are in effect (the length of `snapshot().resources`). */
  get size(): number {
    return this.#effective.size;
  }

  /** The resource in effect for an identity (see `resourceKey`). */
  get(key: string): RawResource | undefined {
    return this.#effective.get(key)?.raw;
  }

  /**
   * Applies a batch of unit changes from one source as a single change. Returns the change (also emitted to the
   * listeners), or undefined when neither the resources in effect nor the diagnostics changed.
   */
  apply(source: string, changes: readonly UnitChange[], seen?: { first: number; last: number }): ConfigChange | undefined {
    this.#seen = seen;
    try {
      return this.#apply(source, changes);
    } finally {
      this.#seen = undefined;
    }
  }

  #apply(source: string, changes: readonly UnitChange[]): ConfigChange | undefined {
    let sourceOrder = this.#sourceOrder.get(source);
    if (sourceOrder === undefined) {
      sourceOrder = this.#sourceOrder.size;
      this.#sourceOrder.set(source, sourceOrder);
    }
    // Whether any unit changed at all: a periodic rescan that found nothing new re-applies only the source's
    // own (unchanged) diagnostics, which must not cost a recomputation over every resource.
    let changed = false;
    /** Units updated in place, with what they had before (for `#update`). */
    const updatedUnits = new Map<Unit, { accepted: RawResource[]; diagnostics: Diagnostic[] }>();
    for (const c of changes) {
      const id = `${source}\0${c.unit}`;
      if ('removed' in c) {
        if (this.#units.delete(id)) {
          changed = true;
          this.#sorted = undefined;
        }
        continue;
      }
      const prev = this.#units.get(id);
      const broken = c.result.diagnostics.some((d) => d.severity === 'Error');
      const accepted = broken ? (prev?.accepted ?? []) : c.result.resources;
      const kept = broken && accepted.length > 0;
      const diagnostics = kept ? c.result.diagnostics.map((d) => (d.severity === 'Error' ? keptHint(d, c.unit, accepted.length) : d)) : c.result.diagnostics;
      if (prev && sameList(prev.accepted, accepted) && sameDiagnostics(prev.diagnostics, diagnostics)) continue;
      changed = true;
      if (prev) {
        // Same place in the order: updated where it is.
        if (!updatedUnits.has(prev)) updatedUnits.set(prev, { accepted: prev.accepted, diagnostics: prev.diagnostics });
        prev.accepted = accepted;
        prev.diagnostics = diagnostics;
      } else {
        this.#units.set(id, { source, sourceOrder, unit: c.unit, segments: c.unit.split(/[\\/]+/), accepted, diagnostics });
        this.#sorted = undefined;
      }
    }
    if (!changed) return undefined;
    return this.#sorted && !this.#duplicates ? this.#update(updatedUnits) : this.#recompute();
  }

  /** Whether the last full recomputation found resources defined twice. */
  #duplicates = true;

  /**
   * What `#recompute` gives, computed from the updated units only, when no unit was added or removed and no
   * resource is defined twice before or after (the common case: a file edited); else `#recompute` itself.
   */
  #update(updatedUnits: Map<Unit, { accepted: RawResource[]; diagnostics: Diagnostic[] }>): ConfigChange | undefined {
    const effective = this.#effective;
    // The full recomputation when a key is taken by another unit, or defined twice by the updated units.
    const seen = new Set<string>();
    for (const unit of updatedUnits.keys()) {
      for (const raw of unit.accepted) {
        const key = resourceKey(raw);
        const e = effective.get(key);
        if (seen.has(key) || (e && e.unit !== unit)) return this.#recompute();
        seen.add(key);
      }
    }
    const added: RawResource[] = [];
    const updated: RawResource[] = [];
    const removed: RawResource[] = [];
    let diagnosticsChanged = false;
    let inPlace = true;
    for (const unit of this.#unitsInOrder()) {
      const before = updatedUnits.get(unit);
      if (!before) continue;
      if (!sameDiagnostics(before.diagnostics, unit.diagnostics)) diagnosticsChanged = true;
      if (inPlace && !sameKeys(before.accepted, unit.accepted)) inPlace = false;
      const keys = new Set<string>();
      for (const raw of unit.accepted) {
        const key = resourceKey(raw);
        keys.add(key);
        const old = effective.get(key);
        if (!old) added.push(raw);
        else if (old.raw !== raw && (old.raw.file !== raw.file || canonical(old.raw) !== canonical(raw))) updated.push(raw);
        effective.set(key, { raw, unit });
      }
      for (const raw of before.accepted) {
        const key = resourceKey(raw);
        if (keys.has(key)) continue;
        effective.delete(key);
        removed.push(raw);
      }
    }
    if (diagnosticsChanged) {
      const diagnostics: Diagnostic[] = [];
      for (const unit of this.#unitsInOrder()) diagnostics.push(...unit.diagnostics);
      const json = JSON.stringify(diagnostics);
      diagnosticsChanged = json !== this.#diagnosticsJson;
      this.#diagnostics = diagnostics;
      this.#diagnosticsJson = json;
    }
    if (!added.length && !updated.length && !removed.length && !diagnosticsChanged) return undefined;
    return this.#emit({ added, updated, removed, diagnostics: [...this.#diagnostics], revision: ++this.#revision, inPlace });
  }

  #recompute(): ConfigChange | undefined {
    const units = this.#unitsInOrder();
    const effective = new Map<string, Entry>();
    const diagnostics: Diagnostic[] = [];
    let duplicates = false;
    for (const unit of units) {
      diagnostics.push(...unit.diagnostics);
      for (const raw of unit.accepted) {
        const key = resourceKey(raw);
        const first = effective.get(key);
        if (first) {
          diagnostics.push(duplicate(raw, first.raw));
          duplicates = true;
        } else effective.set(key, { raw, unit });
      }
    }
    this.#duplicates = duplicates;
    const added: RawResource[] = [];
    const updated: RawResource[] = [];
    const removed: RawResource[] = [];
    for (const [key, e] of effective) {
      const old = this.#effective.get(key);
      if (!old) added.push(e.raw);
      else if (old.raw !== e.raw && (old.raw.file !== e.raw.file || canonical(old.raw) !== canonical(e.raw))) updated.push(e.raw);
    }
    for (const [key, old] of this.#effective) if (!effective.has(key)) removed.push(old.raw);
    this.#effective = effective;
    const diagnosticsJson = JSON.stringify(diagnostics);
    const diagnosticsChanged = diagnosticsJson !== this.#diagnosticsJson;
    this.#diagnostics = diagnostics;
    this.#diagnosticsJson = diagnosticsJson;
    if (!added.length && !updated.length && !removed.length && !diagnosticsChanged) return undefined;
    return this.#emit({ added, updated, removed, diagnostics: [...diagnostics], revision: ++this.#revision, inPlace: false });
  }

  #emit(change: ConfigChange): ConfigChange {
    if (this.#seen) change.seen = this.#seen;
    for (const listener of [...this.#listeners]) {
      try {
        listener(change);
      } catch (e) {
        // A failing listener must not leave the others unnotified: they all run, then the error is surfaced.
        this.#onListenerError(e);
      }
    }
    return change;
  }
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Whether two lists define the same identities in the same order. */
function sameKeys(a: readonly RawResource[], b: readonly RawResource[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i] && resourceKey(a[i]!) !== resourceKey(b[i]!)) return false;
  return true;
}

function sameDiagnostics(a: readonly Diagnostic[], b: readonly Diagnostic[]): boolean {
  return a === b || (a.length === b.length && (a.length === 0 || JSON.stringify(a) === JSON.stringify(b)));
}

function compareUnits(a: Unit, b: Unit): number {
  if (a.sourceOrder !== b.sourceOrder) return a.sourceOrder - b.sourceOrder;
  const n = Math.min(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const x = a.segments[i] as string;
    const y = b.segments[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.segments.length - b.segments.length;
}

function keptHint(d: Diagnostic, unit: string, count: number): Diagnostic {
  const kept = `the last valid version of ${unit} (${count} resource${count === 1 ? '' : 's'}) stays in effect until the errors are fixed`;
  return { ...d, hint: d.hint ? `${d.hint}; ${kept}` : kept };
}

function duplicate(raw: RawResource, winner: RawResource): Diagnostic {
  const ns = effectiveNamespace(raw);
  return {
    severity: 'Error',
    code: 'WFT1009',
    message: `duplicate ${raw.kind} ${ns ? `${ns}/` : ''}${raw.metadata.name}: already defined at ${winner.file}:${winner.pos.line}; this definition is ignored`,
    hint: 'each resource must be defined once per kind, namespace and name; rename or remove one',
    resource: { kind: raw.kind, namespace: ns, name: raw.metadata.name },
    pos: raw.locate(['metadata', 'name']),
    path: 'metadata.name',
  };
}

const canonicalCache = new WeakMap<RawResource, string>();

/** The body as JSON with object keys sorted, so equal documents compare equal whatever their key order. */
function canonical(raw: RawResource): string {
  let s = canonicalCache.get(raw);
  if (s === undefined) {
    s = JSON.stringify(sortKeys(raw.body));
    canonicalCache.set(raw, s);
  }
  return s;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v !== null && typeof v === 'object' && [Object.prototype, null].includes(Object.getPrototypeOf(v))) {
    const o = v as Record<string, unknown>;
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(o).sort()) out[k] = sortKeys(o[k]);
    return out;
  }
  return v;
}
