/**
 * Weft's own kinds (`weft.dev/v1alpha1`):
 *
 * - `MeshConfig`: mesh-wide settings (trust domain, root namespace, outbound traffic policy, default mTLS mode,
 *   timeout and retries, auto mTLS, access logging, tracing sampling, extension providers). Cluster-scoped, at
 *   most one; it is translated first and fills `model.mesh` (unset fields keep the defaults of defaults.ts,
 *   which are Istio's).
 * - `LocalWorkload`: a process the local runtime runs, with its ports, identity, upstreams and locality; it
 *   becomes a `model.localWorkloads` entry and a `model.workloads` template.
 *
 * The full field reference is docs/config-reference.md ("Weft kinds").
 */
import { z } from 'zod';
import { defaultRetryPolicy } from '../defaults.js';
import type { ExtensionProvider, LocalWorkload, Protocol, RetryPolicy, Workload } from '../model.js';
import { parseProtocol, PROTOCOL_NAMES, protocolOf } from '../protocol.js';
import { duration, labels, parseDurationMs, percent, positiveDuration } from '../schema/common.js';
import type { KindDef, Resource, TranslateContext } from './kind.js';
import { defineKind } from './kind.js';
import { dnsLabel, dnsSubdomain, isDnsLabel, isDnsSubdomain, isIanaSvcName } from './kubernetes.js';
import type { ServiceSpec } from './kubernetes.js';

export const WEFT_GROUP = 'weft.dev';

// ---------------------------------------------------------------------------------------------------------------
// MeshConfig

/** HTTP status codes Go's net/http names (Istio treats a retryOn entry as a status code only if it is one). */
const HTTP_STATUS_CODES = new Set([
  100, 101, 102, 103, 200, 201, 202, 203, 204, 205, 206, 207, 208, 226, 300, 301, 302, 303, 304, 305, 307, 308, 400, 401, 402,
  403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421, 422, 423, 424, 425, 426, 428, 429, 431,
  451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
]);

/**
 * Converts Istio's HTTPRetry fields into the model's retry policy the way Istio does (pilot retry.ConvertPolicy):
 * attempts 0 disables retries; a `retryOn` list replaces the default conditions, its entries that are HTTP
 * status codes become retriable status codes (adding `retriable-status-codes` when missing).
 */
export function retryPolicyFromIstio(r: { attempts: number; perTryTimeout?: string; retryOn?: string; retryRemoteLocalities?: boolean }): RetryPolicy {
  if (r.attempts <= 0) return { attempts: 0, retryOn: [], retriableStatusCodes: [] };
  const out = defaultRetryPolicy();
  out.attempts = r.attempts;
  if (r.retryOn !== undefined && r.retryOn !== '') {
    const on: string[] = [];
    const codes: number[] = [];
    for (const part of r.retryOn.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
      const n = /^[+-]?\d+$/.test(part) ? Number(part) : NaN;
      if (HTTP_STATUS_CODES.has(n)) codes.push(n);
      else on.push(part);
    }
    if (codes.length && !on.includes('retriable-status-codes')) on.push('retriable-status-codes');
    out.retryOn = on;
    out.retriableStatusCodes = codes;
  }
  if (r.perTryTimeout !== undefined) out.perTryTimeoutMs = parseDurationMs(r.perTryTimeout);
  if (r.retryRemoteLocalities) out.retryRemoteLocalities = true;
  return out;
}

/** `host` (a DNS name) or `namespace/host`, as Istio writes an extension provider's service. */
const providerService = () =>
  z.string().refine(
    (s) => {
      const i = s.indexOf('/');
      if (i < 0) return isDnsSubdomain(s);
      return isDnsLabel(s.slice(0, i)) && isDnsSubdomain(s.slice(i + 1));
    },
    { message: 'service must be a host name ("ext-authz.foo.svc.cluster.local") or "namespace/host"' },
  );

const providerPort = () => z.number().int('port must be an integer').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535');

const extensionProviderSchema = z
  .strictObject({
    name: z.string().min(1, 'name must not be empty'),
    envoyExtAuthzGrpc: z.strictObject({ service: providerService(), port: providerPort(), timeout: positiveDuration().optional() }).optional(),
    zipkin: z
      .strictObject({
        service: providerService(),
        port: providerPort(),
        path: z.string().startsWith('/', 'path must start with /').optional(),
        maxTagLength: z.number().int().min(1, 'maxTagLength must be at least 1').optional(),
        enable64bitTraceId: z.boolean().optional(),
      })
      .optional(),
    opentelemetry: z
      .strictObject({
        service: providerService(),
        port: providerPort(),
        // Istio: with `http` spans go over OTLP/HTTP, without it over OTLP/gRPC (which Weft proxies do not export).
        http: z.strictObject({ path: z.string().startsWith('/', 'path must start with /').optional(), timeout: positiveDuration().optional() }).optional(),
        resourceDetectors: z.unknown().optional(),
      })
      .optional(),
    envoyFileAccessLog: z
      .strictObject({
        path: z.string().optional(),
        logFormat: z
          .strictObject({ text: z.string().optional(), labels: z.record(z.string(), z.string()).optional() })
          .refine((f) => f.text === undefined || f.labels === undefined, { message: 'logFormat takes one of text or labels' })
          .optional(),
      })
      .optional(),
  })
  .superRefine((p, ctx) => {
    const set = (['envoyExtAuthzGrpc', 'zipkin', 'opentelemetry', 'envoyFileAccessLog'] as const).filter((k) => p[k] !== undefined);
    if (set.length !== 1) {
      ctx.addIssue({
        code: 'custom',
        message: set.length === 0 ? `extension provider "${p.name}" needs exactly one of envoyExtAuthzGrpc, zipkin, opentelemetry, envoyFileAccessLog` : `extension provider "${p.name}" sets ${set.join(' and ')}: exactly one provider type is allowed`,
      });
    }
  });

export const meshConfigSpecSchema = z
  .strictObject({
    trustDomain: z
      .string()
      .refine((s) => /^[a-z0-9._-]+$/.test(s) && s.length <= 255, { message: 'trustDomain must be lower-case letters, digits, ".", "-" and "_" (a SPIFFE trust domain such as "cluster.local")' })
      .optional(),
    rootNamespace: dnsLabel().optional(),
    outboundTrafficPolicy: z.strictObject({ mode: z.enum(['ALLOW_ANY', 'REGISTRY_ONLY']) }).optional(),
    defaultPolicies: z
      .strictObject({
        mtls: z.strictObject({ mode: z.enum(['DISABLE', 'PERMISSIVE', 'STRICT']) }).optional(),
        timeout: duration().optional(),
        retries: z
          .strictObject({
            attempts: z.number().int('attempts must be an integer').min(0, 'attempts must be >= 0'),
            perTryTimeout: positiveDuration().optional(),
            retryOn: z.string().optional(),
            retryRemoteLocalities: z.boolean().optional(),
          })
          .optional(),
      })
      .optional(),
    enableAutoMtls: z.boolean().optional(),
    accessLogFile: z.string().optional(),
    accessLogEncoding: z.enum(['TEXT', 'JSON']).optional(),
    accessLogFormat: z.string().optional(),
    tracing: z.strictObject({ sampling: percent() }).optional(),
    extensionProviders: z.array(extensionProviderSchema).optional(),
    defaultProviders: z.strictObject({ tracing: z.array(z.string()).optional(), accessLogging: z.array(z.string()).optional(), metrics: z.array(z.string()).optional() }).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.accessLogEncoding === 'JSON' && spec.accessLogFormat !== undefined && spec.accessLogFormat.trim() !== '') {
      let ok = false;
      try {
        const v = JSON.parse(spec.accessLogFormat) as unknown;
        ok = typeof v === 'object' && v !== null && !Array.isArray(v) && Object.values(v).every((x) => typeof x === 'string');
      } catch {
        ok = false;
      }
      if (!ok) ctx.addIssue({ code: 'custom', message: 'with accessLogEncoding JSON, accessLogFormat must be a JSON object of format strings', path: ['accessLogFormat'] });
    }
    const names = new Set((spec.extensionProviders ?? []).map((p) => p.name));
    names.add('envoy'); // Istio's built-in access log provider (stdout, the mesh's format)
    for (const key of ['tracing', 'accessLogging'] as const) {
      (spec.defaultProviders?.[key] ?? []).forEach((n, i) => {
        if (!names.has(n)) ctx.addIssue({ code: 'custom', message: `defaultProviders.${key}: no extension provider named "${n}"`, path: ['defaultProviders', key, i] });
      });
    }
    const seen = new Map<string, number>();
    spec.extensionProviders?.forEach((p, i) => {
      const prev = seen.get(p.name);
      if (prev !== undefined) ctx.addIssue({ code: 'custom', message: `duplicate extension provider name "${p.name}" (also extensionProviders[${prev}])`, path: ['extensionProviders', i, 'name'] });
      else seen.set(p.name, i);
    });
  });

export type MeshConfigSpec = z.output<typeof meshConfigSpecSchema>;

function translateMeshConfig(res: Resource<MeshConfigSpec>, ctx: TranslateContext): void {
  const all = ctx.all<MeshConfigSpec>(WEFT_GROUP, 'MeshConfig');
  const first = all[0]!;
  if (first !== res) {
    ctx.report(res, {
      severity: 'Error',
      code: 'WFT1009',
      message: `more than one MeshConfig: "${res.name}" is ignored, "${first.name}" (${first.file}:${first.pos.line}) applies`,
      hint: 'a mesh has at most one MeshConfig; merge them into one',
      at: ['metadata', 'name'],
    });
    return;
  }
  const s = res.spec;
  const mesh = ctx.model.mesh;
  if (s.trustDomain !== undefined) mesh.trustDomain = s.trustDomain;
  if (s.rootNamespace !== undefined) mesh.rootNamespace = s.rootNamespace;
  if (s.outboundTrafficPolicy) mesh.outboundTrafficPolicy = s.outboundTrafficPolicy.mode;
  const d = s.defaultPolicies;
  if (d?.mtls) mesh.defaultMtlsMode = d.mtls.mode;
  if (d?.timeout !== undefined) mesh.defaultTimeoutMs = parseDurationMs(d.timeout) ?? 0;
  if (d?.retries) mesh.defaultRetries = retryPolicyFromIstio(d.retries);
  if (s.enableAutoMtls !== undefined) mesh.enableAutoMtls = s.enableAutoMtls;
  if (s.accessLogFile !== undefined) {
    if (s.accessLogFile === '') delete mesh.accessLogFile;
    else mesh.accessLogFile = s.accessLogFile;
  }
  if (s.accessLogEncoding !== undefined) mesh.accessLogEncoding = s.accessLogEncoding;
  if (s.accessLogFormat !== undefined && s.accessLogFormat !== '') mesh.accessLogFormat = s.accessLogFormat;
  if (s.defaultProviders) mesh.defaultProviders = { tracing: s.defaultProviders.tracing ?? [], accessLogging: s.defaultProviders.accessLogging ?? [] };
  if (s.tracing) mesh.tracingSampling = s.tracing.sampling;
  if (s.extensionProviders) {
    mesh.extensionProviders = s.extensionProviders.map((p): ExtensionProvider => {
      if (p.envoyExtAuthzGrpc) {
        const out: ExtensionProvider = { name: p.name, kind: 'envoyExtAuthzGrpc', service: p.envoyExtAuthzGrpc.service, port: p.envoyExtAuthzGrpc.port };
        if (p.envoyExtAuthzGrpc.timeout !== undefined) out.timeoutMs = parseDurationMs(p.envoyExtAuthzGrpc.timeout);
        return out;
      }
      if (p.zipkin) {
        const out: ExtensionProvider = { name: p.name, kind: 'zipkin', service: p.zipkin.service, port: p.zipkin.port };
        if (p.zipkin.path !== undefined) out.path = p.zipkin.path;
        if (p.zipkin.maxTagLength !== undefined) out.maxTagLength = p.zipkin.maxTagLength;
        return out;
      }
      if (p.opentelemetry) {
        const out: ExtensionProvider = { name: p.name, kind: 'opentelemetry', service: p.opentelemetry.service, port: p.opentelemetry.port };
        const http = p.opentelemetry.http;
        if (http !== undefined) {
          out.httpPath = http.path ?? '/v1/traces';
          if (http.timeout !== undefined) out.timeoutMs = parseDurationMs(http.timeout);
        }
        return out;
      }
      const f = p.envoyFileAccessLog!;
      const out: ExtensionProvider = { name: p.name, kind: 'envoyFileAccessLog', service: '', port: 0, path: f.path || '/dev/stdout' };
      if (f.logFormat !== undefined) out.logFormat = { ...f.logFormat };
      return out;
    });
  }
  mesh.origin = ctx.origin(res);
}

export const meshConfigKind = defineKind<MeshConfigSpec>({
  group: WEFT_GROUP,
  kind: 'MeshConfig',
  family: 'weft',
  versions: ['v1alpha1'],
  namespaced: false,
  schema: meshConfigSpecSchema,
  specOptional: true,
  order: 0,
  translate: translateMeshConfig,
});

// ---------------------------------------------------------------------------------------------------------------
// LocalWorkload

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The environment variable name part for a port or upstream name: upper-case, `-` → `_`. */
export function envNameOf(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9]/g, '_');
}

const localityPart = (what: string) =>
  z.string().min(1, `${what} must not be empty`).refine((s) => !s.includes('/'), { message: `${what} must not contain "/"` });

export const localWorkloadSpecSchema = z
  .strictObject({
    command: z
      .array(z.string())
      .min(1, 'command must name the program to run (a non-empty list such as ["node", "server.js"])')
      .refine((c) => c[0] !== '', { message: 'command[0] (the program) must not be empty' }),
    cwd: z.string().min(1).optional(),
    env: z.record(z.string(), z.string()).default({}),
    ports: z
      .array(
        z.strictObject({
          name: z.string().refine(isIanaSvcName, { message: 'port name must be at most 15 lower-case letters, digits and "-", with at least one letter (IANA_SVC_NAME)' }),
          port: z.number().int('port must be an integer').min(0, 'port must be 0 (assigned at start) or 1-65535').max(65535, 'port must be 0 (assigned at start) or 1-65535'),
          protocol: z
            .string()
            .refine((s) => parseProtocol(s) !== undefined, { message: `protocol must be one of ${PROTOCOL_NAMES.join(', ')} (case-insensitive)` })
            .optional(),
        }),
      )
      .default([]),
    labels: labels().default({}),
    serviceAccount: dnsSubdomain().default('default'),
    replicas: z.number().int('replicas must be an integer').min(0, 'replicas must be >= 0').default(1),
    upstreams: z
      .array(
        z.strictObject({
          name: dnsLabel(),
          host: z.string().min(1, 'host must not be empty'),
          port: z.number().int('port must be an integer').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535'),
        }),
      )
      .default([]),
    locality: z
      .strictObject({ region: localityPart('region'), zone: localityPart('zone').optional(), subzone: localityPart('subzone').optional() })
      .refine((l) => l.subzone === undefined || l.zone !== undefined, { message: 'subzone needs a zone', path: ['subzone'] })
      .optional(),
    capture: z.enum(['explicit', 'transparent']).default('explicit'),
    service: dnsLabel().optional(),
  })
  .superRefine((spec, ctx) => {
    const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', message, path });
    const names = new Map<string, number>();
    const numbers = new Map<number, number>();
    spec.ports.forEach((p, i) => {
      const prev = names.get(p.name);
      if (prev !== undefined) issue(['ports', i, 'name'], `duplicate port name "${p.name}" (also ports[${prev}])`);
      else names.set(p.name, i);
      if (p.port !== 0) {
        const prevN = numbers.get(p.port);
        if (prevN !== undefined) issue(['ports', i, 'port'], `duplicate port ${p.port} (also ports[${prevN}])`);
        else numbers.set(p.port, i);
        if (spec.replicas > 1) issue(['ports', i, 'port'], `with replicas: ${spec.replicas} every replica needs its own port: use port: 0 (assigned at start, passed in $PORT_${envNameOf(p.name)})`);
      }
    });
    const upstreams = new Map<string, number>();
    spec.upstreams.forEach((u, i) => {
      const prev = upstreams.get(u.name);
      if (prev !== undefined) issue(['upstreams', i, 'name'], `duplicate upstream name "${u.name}" (also upstreams[${prev}])`);
      else upstreams.set(u.name, i);
    });
    for (const k of Object.keys(spec.env)) {
      if (!ENV_NAME.test(k)) issue(['env', k], `"${k}" is not an environment variable name (letters, digits and "_", not starting with a digit)`);
    }
    // Variables the runtime sets must not be set by hand.
    const generated = new Map<string, string>();
    if (spec.ports.length) generated.set('PORT', `ports[0] (${spec.ports[0]!.name})`);
    for (const p of spec.ports) generated.set(`PORT_${envNameOf(p.name)}`, `port "${p.name}"`);
    for (const u of spec.upstreams) generated.set(`${envNameOf(u.name)}_ADDR`, `upstream "${u.name}"`);
    for (const k of Object.keys(spec.env)) {
      const by = generated.get(k);
      if (by) issue(['env', k], `${k} is set by the runtime for ${by}; choose another variable name`);
    }
  });

export type LocalWorkloadSpec = z.output<typeof localWorkloadSpecSchema>;

function translateLocalWorkload(res: Resource<LocalWorkloadSpec>, ctx: TranslateContext): void {
  const s = res.spec;
  const ns = res.namespace;
  const workloadLabels: Record<string, string> = { ...s.labels };
  if (s.service !== undefined) {
    const svc = ctx.lookup<ServiceSpec>('', 'Service', ns, s.service);
    if (!svc) {
      ctx.report(res, { severity: 'Error', code: 'WFT0101', message: `Service ${ns}/${s.service} not found`, hint: 'define the Service (kind: Service, apiVersion: v1) in the same namespace, or remove "service"', at: ['spec', 'service'] });
      return;
    }
    const selector = svc.spec.type === 'ExternalName' ? undefined : svc.spec.selector;
    if (!selector || Object.keys(selector).length === 0) {
      ctx.report(res, { severity: 'Error', code: 'WFT0106', message: `Service ${ns}/${s.service} has no selector, so no workload can back it`, hint: 'give the Service a selector, or remove "service" and register endpoints another way', at: ['spec', 'service'] });
      return;
    }
    for (const [k, v] of Object.entries(selector)) {
      if (workloadLabels[k] !== undefined && workloadLabels[k] !== v) {
        ctx.report(res, { severity: 'Error', code: 'WFT0106', message: `label ${k}=${workloadLabels[k]} conflicts with the selector of Service ${ns}/${s.service} (${k}=${v})`, hint: `remove the label or set it to "${v}"`, at: ['spec', 'labels', k] });
        return;
      }
      workloadLabels[k] = v;
    }
    const hasDynamic = s.ports.some((p) => p.port === 0);
    svc.spec.ports.forEach((sp, i) => {
      const target = sp.targetPort ?? sp.port;
      const served = typeof target === 'string' ? s.ports.some((p) => p.name === target) : hasDynamic || s.ports.some((p) => p.port === target);
      if (!served) {
        ctx.report(res, {
          severity: 'Warning',
          code: 'WFT1008',
          message: `Service ${ns}/${s.service} port ${sp.port} targets ${typeof target === 'string' ? `port name "${target}"` : `port ${target}`}, which this workload does not declare`,
          hint: `add it to ports (Service port ${i + 1} of ${svc.spec.ports.length})`,
          at: ['spec', 'ports'],
        });
      }
    });
  }

  const ports = s.ports.map((p) => {
    const protocol: Protocol = p.protocol !== undefined ? parseProtocol(p.protocol)! : protocolOf({ name: p.name, port: p.port }).protocol;
    return { name: p.name, port: p.port, protocol };
  });
  const locality = s.locality ? [s.locality.region, s.locality.zone, s.locality.subzone].filter((x) => x !== undefined).join('/') : undefined;
  const origin = ctx.origin(res);
  const lw: LocalWorkload = {
    name: res.name,
    namespace: ns,
    command: [...s.command],
    env: { ...s.env },
    ports,
    labels: workloadLabels,
    serviceAccount: s.serviceAccount,
    replicas: s.replicas,
    upstreams: s.upstreams.map((u) => ({ name: u.name, host: ctx.fqdn(u.host, ns), port: u.port })),
    capture: s.capture,
    origin,
  };
  if (s.cwd !== undefined) lw.cwd = s.cwd;
  if (locality !== undefined) lw.locality = locality;
  ctx.model.localWorkloads.push(lw);

  const template: Workload = {
    kind: 'LocalWorkload',
    name: res.name,
    namespace: ns,
    labels: { ...workloadLabels },
    ports: Object.fromEntries(ports.map((p) => [p.name, p.port])),
    serviceAccount: s.serviceAccount,
    origin,
  };
  if (locality !== undefined) template.locality = locality;
  ctx.model.workloads.push(template);
}

export const localWorkloadKind = defineKind<LocalWorkloadSpec>({
  group: WEFT_GROUP,
  kind: 'LocalWorkload',
  family: 'weft',
  versions: ['v1alpha1'],
  namespaced: true,
  schema: localWorkloadSpecSchema,
  order: 20,
  translate: translateLocalWorkload,
});

export const weftKinds: ReadonlyArray<KindDef<any>> = [meshConfigKind, localWorkloadKind];
