/**
 * Builds the normalized model from raw resources: recognise each kind and version, validate it against its
 * schema, reject duplicates, then translate every valid resource into the model. Never throws on bad input:
 * every problem becomes a diagnostic, and a resource with errors is left out of the model.
 */
import type { Diagnostic } from './diagnostics.js';
import { formatPath } from './diagnostics.js';
import { DEFAULT_DOMAIN, emptyModel } from './defaults.js';
import type { KindDef, Resource, TranslateContext } from './kinds/kind.js';
import { splitApiVersion } from './kinds/kind.js';
import { findKind, kindsOfGroup } from './kinds/registry.js';
import type { MeshModel, Origin } from './model.js';
import { normalizeModel } from './normalize.js';
import { issuesToDiagnostics } from './schema/common.js';
import type { JsonPath, RawResource } from './source.js';

/**
 * Real upstream kinds of groups Weft reads that Weft does not (yet) support: ignored with a Warning (WFT1010), like
 * kinds of unknown groups, instead of the Error a misspelt kind of a known group gets.
 */
const UNSUPPORTED_KINDS = new Set([
  'gateway.networking.k8s.io/ReferenceGrant',
  'gateway.networking.k8s.io/TCPRoute',
  'gateway.networking.k8s.io/TLSRoute',
  'gateway.networking.k8s.io/UDPRoute',
  'gateway.networking.k8s.io/BackendTLSPolicy',
  'gateway.networking.k8s.io/BackendLBPolicy',
  'networking.istio.io/EnvoyFilter',
  'networking.istio.io/ProxyConfig',
]);

export interface BuildResult {
  model: MeshModel;
  /** Every resource that passed validation (and so was translated). */
  resources: Array<Resource<unknown>>;
  diagnostics: Diagnostic[];
}

export interface BuildOptions {
  /** DNS domain for Kubernetes hostnames; default `cluster.local`. */
  domain?: string;
}

/** Validates raw resources; returns the valid ones and the diagnostics of the rest. */
export function validateResources(raws: readonly RawResource[]): { resources: Array<Resource<unknown>>; diagnostics: Diagnostic[] } {
  const diagnostics: Diagnostic[] = [];
  const resources: Array<Resource<unknown>> = [];
  const seen = new Map<string, RawResource>();
  for (const raw of raws) {
    const { group, version } = splitApiVersion(raw.apiVersion);
    const def = findKind(group, raw.kind);
    const ns0 = raw.metadata.namespace;
    const refNs = ns0 ?? (def && !def.namespaced ? '' : 'default');
    const ref = { kind: raw.kind, namespace: refNs, name: raw.metadata.name };
    if (!def) {
      const known = UNSUPPORTED_KINDS.has(`${group}/${raw.kind}`) ? [] : kindsOfGroup(group);
      diagnostics.push({
        severity: known.length ? 'Error' : 'Warning',
        code: known.length ? 'WFT0106' : 'WFT1010',
        message: known.length
          ? `unknown kind "${raw.kind}" in API group ${group || 'core'}`
          : `unsupported apiVersion/kind ${raw.apiVersion} ${raw.kind}: ignored`,
        hint: known.length
          ? `kinds of ${group || 'core'}: ${known.map((k) => k.kind).join(', ')}`
          : 'Weft reads Kubernetes Service/Namespace, Istio networking/security, SMI, Gateway API and weft.dev kinds',
        resource: ref,
        pos: raw.locate(['kind']),
        path: 'kind',
      });
      continue;
    }
    if (!def.versions.includes(version)) {
      diagnostics.push({
        severity: 'Error',
        code: 'WFT0106',
        message: `${raw.kind} does not exist in ${raw.apiVersion}`,
        hint: `use one of: ${def.versions.map((v) => (group ? `${group}/${v}` : v)).join(', ')}`,
        resource: ref,
        pos: raw.locate(['apiVersion']),
        path: 'apiVersion',
      });
      continue;
    }
    const replacement = def.deprecatedVersions?.[version];
    if (replacement) {
      diagnostics.push({
        severity: 'Info',
        code: 'WFT1007',
        message: `${raw.apiVersion} ${raw.kind} is deprecated upstream`,
        hint: `use ${replacement}`,
        resource: ref,
        pos: raw.locate(['apiVersion']),
        path: 'apiVersion',
      });
    }
    if (!def.namespaced && ns0 !== undefined) {
      diagnostics.push({ severity: 'Warning', code: 'WFT0106', message: `${raw.kind} is cluster-scoped; metadata.namespace is ignored`, hint: 'remove metadata.namespace', resource: ref, pos: raw.locate(['metadata', 'namespace']), path: 'metadata.namespace' });
    }
    const namespace = def.namespaced ? refNs : '';
    const key = `${group}/${raw.kind}/${namespace}/${raw.metadata.name}`;
    const prev = seen.get(key);
    if (prev) {
      diagnostics.push({
        severity: 'Error',
        code: 'WFT1009',
        message: `duplicate ${raw.kind} ${namespace ? `${namespace}/` : ''}${raw.metadata.name}: also defined at ${prev.file}:${prev.pos.line}`,
        hint: 'each resource must be defined once per kind, namespace and name; rename or remove one',
        resource: ref,
        pos: raw.locate(['metadata', 'name']),
        path: 'metadata.name',
      });
      continue;
    }
    seen.set(key, raw);
    let payload: unknown;
    let prefix: JsonPath;
    const perVersion = def.versionSchemas?.[version];
    if ((perVersion ? perVersion.payload : def.payload) === 'body') {
      const { apiVersion: _a, kind: _k, metadata: _m, status: _s, ...rest } = raw.body;
      payload = rest;
      prefix = [];
    } else {
      payload = raw.body.spec;
      prefix = ['spec'];
      if (payload === undefined || payload === null) {
        if (perVersion ? perVersion.specOptional : def.specOptional) payload = {};
        else {
          diagnostics.push({ severity: 'Error', code: 'WFT0106', message: `${raw.kind} has no spec`, hint: 'add a spec section', resource: ref, pos: raw.pos, path: 'spec' });
          continue;
        }
      }
    }
    const parsed = (perVersion?.schema ?? def.schema).safeParse(payload);
    if (!parsed.success) {
      diagnostics.push(...issuesToDiagnostics(raw, ref, parsed.error.issues, prefix));
      continue;
    }
    resources.push({ ...raw, group, version, namespace, name: raw.metadata.name, spec: parsed.data, def: def as KindDef<unknown>, key, ref });
  }
  return { resources, diagnostics };
}

/** Validates and translates raw resources into the normalized model. */
export function buildModel(raws: readonly RawResource[], opts: BuildOptions = {}): BuildResult {
  const { resources, diagnostics } = validateResources(raws);
  const model = emptyModel();
  const domain = opts.domain ?? DEFAULT_DOMAIN;
  const byKey = new Map(resources.map((r) => [r.key, r]));
  const ctx: TranslateContext = {
    model,
    domain,
    report(res, d) {
      const { at, ...rest } = d;
      diagnostics.push({ ...rest, resource: res.ref, pos: res.locate(at ?? []), ...(at ? { path: formatPath(at) } : {}) });
    },
    origin(res, path) {
      return originOf(res, path);
    },
    fqdn(host, namespace) {
      return resolveHost(host, namespace, domain);
    },
    lookup<T>(group: string, kind: string, namespace: string, name: string) {
      return byKey.get(`${group}/${kind}/${namespace}/${name}`) as Resource<T> | undefined;
    },
    all<T>(group: string, kind: string) {
      return resources.filter((r) => r.group === group && r.kind === kind) as Array<Resource<T>>;
    },
  };
  const ordered = [...resources].sort((a, b) => (a.def.order ?? 50) - (b.def.order ?? 50));
  const defs = new Set<KindDef<unknown>>();
  for (const res of ordered) {
    defs.add(res.def);
    if (!res.def.translate) continue;
    try {
      res.def.translate(res, ctx);
    } catch (e) {
      diagnostics.push({ severity: 'Error', code: 'WFT0001', message: `internal error translating ${res.kind} ${res.namespace}/${res.name}: ${(e as Error).message}`, resource: res.ref, pos: res.pos });
    }
  }
  for (const def of [...defs].sort((a, b) => (a.order ?? 50) - (b.order ?? 50))) {
    try {
      def.finalize?.(ctx);
    } catch (e) {
      diagnostics.push({ severity: 'Error', code: 'WFT0001', message: `internal error finalizing ${def.kind}: ${(e as Error).message}` });
    }
  }
  normalizeModel(model);
  return { model, resources, diagnostics };
}

export function originOf(res: Resource<unknown>, path?: JsonPath): Origin {
  const o: Origin = { family: res.def.family, kind: res.kind, apiVersion: res.apiVersion, namespace: res.namespace, name: res.name, pos: res.locate(path ?? []) };
  if (path && path.length) o.path = formatPath(path);
  if (typeof res.metadata.creationTimestamp === 'string') o.created = res.metadata.creationTimestamp;
  return o;
}

/**
 * Istio's short-name rule: a host without a dot is `host.<namespace>.svc.<domain>`; anything with a dot, `*`
 * and IP addresses are taken as written. Hosts are lower-cased.
 */
export function resolveHost(host: string, namespace: string, domain: string): string {
  const h = host.toLowerCase();
  if (h === '*' || h.includes('.') || h.includes(':') || !namespace) return h;
  return `${h}.${namespace}.svc.${domain}`;
}
