/**
 * Resource kinds: each accepted kind is a `KindDef` (group, kind, versions, schema, translation into the model),
 * registered by name in `registry.ts`. Adding a kind is adding one definition.
 */
import type { z } from 'zod';
import type { Diagnostic, ResourceRef } from '../diagnostics.js';
import type { ApiFamily, MeshModel, Origin } from '../model.js';
import type { JsonPath, RawResource } from '../source.js';

/** A validated resource: the raw resource plus its parsed spec (schema defaults applied). */
export interface Resource<S = unknown> extends RawResource {
  group: string;
  version: string;
  /** Namespace (defaulted to `default` for namespaced kinds; `` for cluster-scoped ones). */
  namespace: string;
  name: string;
  /** The validated payload (the `spec` field, or for kinds without spec the fields the schema covers). */
  spec: S;
  def: KindDef<S>;
  /** `group/Kind/namespace/name`: the identity of the resource. */
  key: string;
  ref: ResourceRef;
}

/** What a translator sees while the model is built. */
export interface TranslateContext {
  /** The model being built (translators push into its lists). */
  readonly model: MeshModel;
  /** DNS domain of the mesh (`cluster.local`): Kubernetes hostnames are `name.namespace.svc.<domain>`. */
  readonly domain: string;
  /** Reports a problem found while translating `res` (the resource and position are filled in). */
  report(res: Resource<unknown>, d: Omit<Diagnostic, 'resource' | 'pos'> & { at?: JsonPath }): void;
  /** Origin of a model object derived from `res` at `path`. */
  origin(res: Resource<unknown>, path?: JsonPath): Origin;
  /** Resolves a host as written in `namespace` to its FQDN, as Istio does (short names get `.ns.svc.<domain>`). */
  fqdn(host: string, namespace: string): string;
  /** Finds another validated resource. */
  lookup<T = unknown>(group: string, kind: string, namespace: string, name: string): Resource<T> | undefined;
  /** All validated resources of a kind. */
  all<T = unknown>(group: string, kind: string): Array<Resource<T>>;
}

export interface KindDef<S = unknown> {
  /** API group; `` for the Kubernetes core group. */
  group: string;
  kind: string;
  family: ApiFamily;
  /** Accepted versions, newest first. */
  versions: readonly string[];
  /** Accepted versions that are deprecated upstream (a Warning names the replacement). */
  deprecatedVersions?: Readonly<Record<string, string>>;
  namespaced: boolean;
  /**
   * The schema of the payload. By default it validates `spec`; with `payload: 'body'` it validates the document
   * minus apiVersion/kind/metadata/status (for kinds such as TrafficSplit v1alpha1 that also keep data outside
   * spec, or Namespace whose spec is optional).
   */
  schema: z.ZodType<S>;
  payload?: 'spec' | 'body';
  /** Whether a missing spec is allowed (validated as `{}`). */
  specOptional?: boolean;
  /**
   * Per-version schema, payload and specOptional, for kinds whose shape changed between versions (SMI: weights,
   * `matches` moving into `spec`). A version listed here overrides `schema`/`payload`/`specOptional`; the schemas
   * should all produce the same `S` so that `translate` sees one shape.
   */
  versionSchemas?: Readonly<Record<string, { schema: z.ZodType<S>; payload?: 'spec' | 'body'; specOptional?: boolean }>>;
  /** Translates one validated resource into the model. Kinds parsed only for later have none. */
  translate?(res: Resource<S>, ctx: TranslateContext): void;
  /** Runs once after every resource was translated (family-level merging and ordering). */
  finalize?(ctx: TranslateContext): void;
  /** Translation order: lower first (MeshConfig 0, services 10, default 50). */
  order?: number;
}

export function defineKind<S>(def: KindDef<S>): KindDef<S> {
  return def;
}

/** `group/version` as written in apiVersion. */
export function splitApiVersion(apiVersion: string): { group: string; version: string } {
  const i = apiVersion.lastIndexOf('/');
  return i < 0 ? { group: '', version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}
