/**
 * Kubernetes core kinds: `v1` Service and Namespace.
 *
 * The Service schema accepts the ServiceSpec fields users write in manifests, including the ones Weft does not
 * act on (nodePort, loadBalancer*, sessionAffinity, ...), and rejects unknown ones. It checks what the Kubernetes
 * API server checks for the fields that matter to a mesh (port names, numbers, targetPort syntax, ExternalName
 * rules). Translation follows Istio's Kubernetes service registry (pilot/pkg/serviceregistry/kube/conversion.go):
 * hostname `name.namespace.svc.<domain>`, port protocols by Istio protocol selection (src/api/protocol.ts),
 * headless Services resolve NONE (passthrough), ExternalName Services are DNS + MESH_EXTERNAL aliases of their
 * external name, visibility from the `networking.istio.io/exportTo` annotation (default `*`).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { Service, ServicePort } from '../model.js';
import { protocolOf } from '../protocol.js';
import { labels } from '../schema/common.js';
import type { KindDef, Resource, TranslateContext } from './kind.js';
import { defineKind } from './kind.js';

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes name syntax (k8s.io/apimachinery/pkg/util/validation)

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const QUALIFIED_NAME_PART = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;

export function isDnsLabel(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

export function isDnsSubdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN.test(s);
}

/** IANA_SVC_NAME: what a named targetPort / container port must look like. */
export function isIanaSvcName(s: string): boolean {
  return s.length >= 1 && s.length <= 15 && /^[-a-z0-9]+$/.test(s) && /[a-z]/.test(s) && !s.includes('--') && !s.startsWith('-') && !s.endsWith('-');
}

/** A qualified name (`[prefix/]name`), as label keys and appProtocol values are written. */
export function isQualifiedName(s: string): boolean {
  const parts = s.split('/');
  if (parts.length > 2) return false;
  const name = parts[parts.length - 1]!;
  if (name.length > 63 || !QUALIFIED_NAME_PART.test(name)) return false;
  return parts.length === 1 || (parts[0]!.length > 0 && isDnsSubdomain(parts[0]!));
}

/** A DNS-1123 label (lower-case alphanumerics and `-`, at most 63 characters). */
export const dnsLabel = () =>
  z.string().refine(isDnsLabel, { message: 'must be a DNS-1123 label: lower-case letters, digits and "-", starting and ending with an alphanumeric, at most 63 characters' });

/** A DNS-1123 subdomain (dot-separated DNS labels, at most 253 characters). */
export const dnsSubdomain = () =>
  z.string().refine(isDnsSubdomain, { message: 'must be a DNS-1123 subdomain: lower-case letters, digits, "-" and ".", at most 253 characters' });

// ---------------------------------------------------------------------------------------------------------------
// Service

const SERVICE_TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'] as const;

const portNumber = (what: string) => z.number().int(`${what} must be an integer`).min(1, `${what} must be 1-65535`).max(65535, `${what} must be 1-65535`);

/** targetPort: an IntOrString, a port number or an IANA service name (a named container port). */
const targetPort = () =>
  z.unknown().superRefine((v, ctx) => {
    if (typeof v === 'number') {
      if (!Number.isInteger(v) || v < 1 || v > 65535) ctx.addIssue({ code: 'custom', message: `targetPort must be a port number 1-65535 or a port name (got ${v})` });
    } else if (typeof v === 'string') {
      if (!isIanaSvcName(v)) ctx.addIssue({ code: 'custom', message: `targetPort "${v}" is not a valid port name (IANA_SVC_NAME: at most 15 lower-case letters, digits and "-", with at least one letter)` });
    } else {
      ctx.addIssue({ code: 'custom', message: 'targetPort must be a port number or a port name' });
    }
  }) as unknown as z.ZodType<number | string>;

const servicePortSchema = z.strictObject({
  name: z.string().optional(),
  protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'),
  appProtocol: z
    .string()
    .refine(isQualifiedName, { message: 'appProtocol must be a qualified name such as "http", "grpc" or "kubernetes.io/h2c"' })
    .optional(),
  port: portNumber('port'),
  targetPort: targetPort().optional(),
  nodePort: z.number().int().min(0, 'nodePort must be 0-65535').max(65535, 'nodePort must be 0-65535').optional(),
});

const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'must be an IPv4 or IPv6 address' });

export const serviceSpecSchema = z
  .strictObject({
    type: z.enum(SERVICE_TYPES).default('ClusterIP'),
    ports: z.array(servicePortSchema).default([]),
    selector: labels().optional(),
    clusterIP: z.string().optional(),
    clusterIPs: z.array(z.string()).optional(),
    externalName: z.string().optional(),
    externalIPs: z.array(ipAddress).optional(),
    sessionAffinity: z.enum(['ClientIP', 'None']).optional(),
    sessionAffinityConfig: z
      .strictObject({
        clientIP: z.strictObject({ timeoutSeconds: z.number().int().min(1).max(86400).optional() }).optional(),
      })
      .optional(),
    loadBalancerIP: z.string().optional(),
    loadBalancerSourceRanges: z.array(z.string()).optional(),
    loadBalancerClass: z.string().optional(),
    allocateLoadBalancerNodePorts: z.boolean().optional(),
    externalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
    internalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
    healthCheckNodePort: z.number().int().min(0).max(65535).optional(),
    publishNotReadyAddresses: z.boolean().optional(),
    ipFamilies: z.array(z.enum(['IPv4', 'IPv6'])).max(2, 'at most two IP families').optional(),
    ipFamilyPolicy: z.enum(['SingleStack', 'PreferDualStack', 'RequireDualStack']).optional(),
    trafficDistribution: z.enum(['PreferClose', 'PreferSameZone', 'PreferSameNode']).optional(),
  })
  .superRefine((spec, ctx) => {
    const issue = (path: Array<string | number>, message: string) => ctx.addIssue({ code: 'custom', message, path });
    const headless = spec.clusterIP === 'None';
    if (spec.type === 'ExternalName') {
      if (!spec.externalName) issue(['externalName'], 'required for type ExternalName');
      else {
        const host = spec.externalName.endsWith('.') ? spec.externalName.slice(0, -1) : spec.externalName;
        if (!isDnsSubdomain(host)) issue(['externalName'], `"${spec.externalName}" is not a DNS name (lower-case DNS-1123 subdomain)`);
      }
      if (spec.clusterIP) issue(['clusterIP'], 'must be empty for type ExternalName');
      if (spec.clusterIPs?.length) issue(['clusterIPs'], 'must be empty for type ExternalName');
    } else {
      if (spec.ports.length === 0 && !headless) issue(['ports'], 'a Service needs at least one port (only headless and ExternalName Services may have none)');
      if (headless && (spec.type === 'NodePort' || spec.type === 'LoadBalancer')) issue(['clusterIP'], `may not be "None" for type ${spec.type}`);
    }
    if (spec.clusterIP && spec.clusterIP !== 'None' && isIP(spec.clusterIP) === 0) issue(['clusterIP'], `"${spec.clusterIP}" is not an IP address, "None" or ""`);
    spec.clusterIPs?.forEach((ip, i) => {
      if (ip === 'None') {
        if (i > 0 || spec.clusterIPs!.length > 1) issue(['clusterIPs', i], '"None" must be the only entry');
      } else if (isIP(ip) === 0) issue(['clusterIPs', i], `"${ip}" is not an IP address or "None"`);
    });
    if (spec.clusterIP !== undefined && spec.clusterIPs?.length && spec.clusterIPs[0] !== spec.clusterIP) {
      issue(['clusterIPs', 0], 'must equal clusterIP when both are set');
    }
    if (spec.ipFamilies && new Set(spec.ipFamilies).size !== spec.ipFamilies.length) issue(['ipFamilies'], 'IP families must be distinct');
    if (spec.sessionAffinityConfig && spec.sessionAffinity !== 'ClientIP') issue(['sessionAffinityConfig'], 'only allowed with sessionAffinity: ClientIP');
    const names = new Map<string, number>();
    const numbers = new Map<string, number>();
    spec.ports.forEach((p, i) => {
      if (p.name === undefined || p.name === '') {
        if (spec.ports.length > 1) issue(['ports', i, 'name'], 'required when a Service has more than one port');
      } else {
        if (!isDnsLabel(p.name)) issue(['ports', i, 'name'], `"${p.name}" is not a DNS-1123 label (lower-case letters, digits and "-", at most 63 characters)`);
        const prev = names.get(p.name);
        if (prev !== undefined) issue(['ports', i, 'name'], `duplicate port name "${p.name}" (also ports[${prev}])`);
        else names.set(p.name, i);
      }
      const key = `${p.port}/${p.protocol}`;
      const prev = numbers.get(key);
      if (prev !== undefined) issue(['ports', i, 'port'], `duplicate port ${key} (also ports[${prev}])`);
      else numbers.set(key, i);
      if (p.nodePort && (spec.type === 'ClusterIP' || spec.type === 'ExternalName')) issue(['ports', i, 'nodePort'], `may not be used when type is ${spec.type}`);
    });
  });

export type ServiceSpec = z.output<typeof serviceSpecSchema>;

/** The Istio annotation that sets a Service's visibility (comma-separated namespaces, `.`, `*` or `~`). */
export const EXPORT_TO_ANNOTATION = 'networking.istio.io/exportTo';

/** Parses an exportTo list as Istio does (entries trimmed); returns the entries and the problems found. */
export function parseExportTo(entries: readonly string[]): { exportTo: string[]; problems: string[] } {
  const exportTo: string[] = [];
  const problems: string[] = [];
  for (const raw of entries) {
    const e = raw.trim();
    if (e === '*' || e === '.' || e === '~' || isDnsLabel(e)) {
      if (!exportTo.includes(e)) exportTo.push(e);
    } else problems.push(e === '' ? 'empty entry' : `"${e}" is not "*", ".", "~" or a namespace name`);
  }
  if (exportTo.includes('~') && exportTo.length > 1) problems.push('"~" (export nowhere) cannot be combined with other entries');
  return { exportTo, problems };
}

function translateService(res: Resource<ServiceSpec>, ctx: TranslateContext): void {
  const spec = res.spec;
  const ns = res.namespace;
  if (!isDnsLabel(res.name) || !/^[a-z]/.test(res.name)) {
    ctx.report(res, {
      severity: 'Error',
      code: 'WFT0106',
      message: `Service name "${res.name}" is not a DNS-1035 label`,
      hint: 'Service names start with a lower-case letter, then lower-case letters, digits and "-", at most 63 characters',
      at: ['metadata', 'name'],
    });
    return;
  }
  const ports: ServicePort[] = spec.ports.map((p) => {
    const { protocol, source } = protocolOf({ name: p.name, port: p.port, protocol: p.protocol, appProtocol: p.appProtocol });
    const out: ServicePort = { port: p.port, targetPort: p.targetPort ?? p.port, protocol, protocolSource: source };
    if (p.name) out.name = p.name;
    if (p.appProtocol !== undefined) out.appProtocol = p.appProtocol;
    return out;
  });

  let exportTo = ['*'];
  const annotation = res.metadata.annotations?.[EXPORT_TO_ANNOTATION];
  if (annotation !== undefined && annotation !== '') {
    const parsed = parseExportTo(annotation.split(','));
    if (parsed.problems.length) {
      ctx.report(res, {
        severity: 'Error',
        code: 'WFT0106',
        message: `invalid ${EXPORT_TO_ANNOTATION} annotation: ${parsed.problems.join('; ')}`,
        hint: 'use a comma-separated list of namespace names, "." (this namespace), "*" (all namespaces) or "~" (none)',
        at: ['metadata', 'annotations', EXPORT_TO_ANNOTATION],
      });
    }
    if (parsed.exportTo.length) exportTo = parsed.exportTo;
  }

  const external = spec.type === 'ExternalName';
  const headless = spec.clusterIP === 'None';
  const addresses = external || headless ? [] : spec.clusterIPs?.length ? [...spec.clusterIPs] : spec.clusterIP ? [spec.clusterIP] : [];
  const svc: Service = {
    hostname: `${res.name}.${ns}.svc.${ctx.domain}`,
    namespace: ns,
    name: res.name,
    ports,
    addresses,
    resolution: external ? 'DNS' : headless ? 'NONE' : 'STATIC',
    location: external ? 'MESH_EXTERNAL' : 'MESH_INTERNAL',
    exportTo,
    labels: { ...(res.metadata.labels ?? {}) },
    endpoints: [],
    subjectAltNames: [],
    origin: ctx.origin(res),
  };
  if (external) {
    svc.externalName = spec.externalName!.replace(/\.$/, '');
  } else if (spec.selector && Object.keys(spec.selector).length > 0) {
    svc.selector = { ...spec.selector };
  }
  if (!external && spec.externalName) {
    ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: 'externalName is ignored unless type is ExternalName', hint: 'remove externalName or set type: ExternalName', at: ['spec', 'externalName'] });
  }
  ctx.model.services.push(svc);
}

export const serviceKind = defineKind<ServiceSpec>({
  group: '',
  kind: 'Service',
  family: 'kubernetes',
  versions: ['v1'],
  namespaced: true,
  schema: serviceSpecSchema,
  order: 10,
  translate: translateService,
});

// ---------------------------------------------------------------------------------------------------------------
// Namespace

export const namespaceSpecSchema = z.strictObject({ finalizers: z.array(z.string()).optional() });
export type NamespaceSpec = z.output<typeof namespaceSpecSchema>;

export const namespaceKind = defineKind<NamespaceSpec>({
  group: '',
  kind: 'Namespace',
  family: 'kubernetes',
  versions: ['v1'],
  namespaced: false,
  schema: namespaceSpecSchema,
  specOptional: true,
  order: 10,
  translate(res, ctx) {
    if (!isDnsLabel(res.name)) {
      ctx.report(res, { severity: 'Error', code: 'WFT0106', message: `namespace name "${res.name}" is not a DNS-1123 label`, hint: 'use lower-case letters, digits and "-", at most 63 characters', at: ['metadata', 'name'] });
      return;
    }
    ctx.model.namespaces.push({ name: res.name, labels: { ...(res.metadata.labels ?? {}) }, origin: ctx.origin(res) });
  },
});

export const kubernetesKinds: ReadonlyArray<KindDef<any>> = [serviceKind, namespaceKind];
