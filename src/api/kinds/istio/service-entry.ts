/**
 * networking.istio.io ServiceEntry, WorkloadEntry and WorkloadGroup: schemas (istio/api service_entry.proto,
 * workload_entry.proto, workload_group.proto; the CRDs' CEL rules; istio/istio ValidateServiceEntry,
 * ValidateWorkloadEntry, ValidateWorkloadGroup) and translation into Services and Workloads.
 */
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type { Service, ServicePort, StaticEndpoint, Workload } from '../../model.js';
import { port } from '../../schema/common.js';
import type { JsonPath } from '../../source.js';
import {
  NETWORKING_GROUP,
  NETWORKING_VERSIONS,
  checkExportTo,
  exportToOf,
  fqdnError,
  ipSubnetError,
  isIpAddress,
  issuer,
  istioProtocol,
  k8sLabels,
  networkingWorkloadSelector,
  portNameError,
  protocolError,
  uint32,
  wildcardDomainError,
} from './common.js';
import type { Issue } from './common.js';

// ---------------------------------------------------------------------------------------------------------------
// WorkloadEntry (also the shape of ServiceEntry endpoints and of a WorkloadGroup template)

const workloadEntryBase = z.strictObject({
  address: z.string().max(256).optional(),
  ports: z.record(z.string(), port()).optional(),
  labels: k8sLabels().optional(),
  network: z.string().max(2048).optional(),
  locality: z.string().max(2048).optional(),
  weight: uint32().optional(),
  serviceAccount: z.string().max(253).optional(),
});
export type WorkloadEntrySpec = z.output<typeof workloadEntryBase>;

const UNIX_PREFIX = 'unix://';

/** Istio `ValidateUnixAddress`. */
function unixAddressError(addr: string): string | undefined {
  if (addr.length === 0) return 'unix address must not be empty';
  if (addr.startsWith('@')) return undefined;
  if (!addr.startsWith('/') || addr.endsWith('/')) return `${addr} is not an absolute path to a file`;
  return undefined;
}

/**
 * Istio `validateWorkloadEntry`: an address (or a network), a unix socket without ports, an IP or (where allowed)
 * an FQDN, valid port names and, inside a ServiceEntry, ports named after the service's ports.
 */
function checkWorkloadEntry(we: WorkloadEntrySpec, at: JsonPath, issue: Issue, servicePorts: ReadonlySet<string> | undefined, allowFqdn: boolean): void {
  const addr = we.address ?? '';
  if (addr === '' && !we.network) {
    issue([...at, 'address'], 'address is required');
    return;
  }
  if (addr.startsWith(UNIX_PREFIX)) {
    const err = unixAddressError(addr.slice(UNIX_PREFIX.length));
    if (err) issue([...at, 'address'], err);
    if (Object.keys(we.ports ?? {}).length) issue([...at, 'ports'], `unix endpoint ${addr} must not include ports`);
    if (servicePorts && servicePorts.size !== 1) issue([...at, 'address'], 'exactly 1 service port required for unix endpoints');
  } else if (addr !== '' && !isIpAddress(addr)) {
    if (!allowFqdn) issue([...at, 'address'], `endpoint address "${addr}" is not a valid IP address`);
    else if (fqdnError(addr)) issue([...at, 'address'], `endpoint address "${addr}" is not a valid FQDN or an IP address`);
  }
  for (const [name, p] of Object.entries(we.ports ?? {})) {
    if (servicePorts && !servicePorts.has(name)) issue([...at, 'ports', name], `endpoint port ${p} is not defined by the service entry`);
    const err = portNameError(name);
    if (err) issue([...at, 'ports', name], err);
  }
}

export const workloadEntrySpec = workloadEntryBase.superRefine((we, ctx) => checkWorkloadEntry(we, [], issuer(ctx), undefined, true));

function toWorkload(res: Resource<WorkloadEntrySpec>, ctx: TranslateContext): void {
  const we = res.spec;
  const w: Workload = {
    kind: 'WorkloadEntry',
    name: res.name,
    namespace: res.namespace,
    labels: { ...(we.labels ?? {}) },
    ports: { ...(we.ports ?? {}) },
    // No service account means no workload identity (Istio derives the SPIFFE identity only when one is set).
    serviceAccount: we.serviceAccount ?? '',
    origin: ctx.origin(res),
  };
  if (we.address) w.address = we.address;
  if (we.locality) w.locality = we.locality;
  if (we.weight !== undefined) w.weight = we.weight;
  if (we.network) w.network = we.network;
  ctx.model.workloads.push(w);
}

export const workloadEntryKind = defineKind<WorkloadEntrySpec>({
  group: NETWORKING_GROUP,
  kind: 'WorkloadEntry',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: workloadEntrySpec,
  translate: toWorkload,
  order: 20,
});

// ---------------------------------------------------------------------------------------------------------------
// WorkloadGroup: parsed and validated; its template stays on the resource (the runtime that registers VMs reads
// it). It adds nothing to the model until a workload joins, when that workload becomes a WorkloadEntry.

const probeHeaderName = z.string().regex(/^[-A-Za-z0-9]+$/, 'header name is not a valid header name (letters, digits and "-")');

const readinessProbe = z
  .strictObject({
    initialDelaySeconds: z.number().int().min(0, 'initialDelaySeconds must be non-negative').optional(),
    timeoutSeconds: z.number().int().min(0, 'timeoutSeconds must be non-negative').optional(),
    periodSeconds: z.number().int().min(0, 'periodSeconds must be non-negative').optional(),
    successThreshold: z.number().int().min(0, 'successThreshold must be non-negative').optional(),
    failureThreshold: z.number().int().min(0, 'failureThreshold must be non-negative').optional(),
    httpGet: z
      .strictObject({
        path: z.string().optional(),
        port: port(),
        host: z.string().optional(),
        scheme: z.enum(['', 'HTTP', 'HTTPS'], { message: 'httpGet.scheme must be one of "HTTPS", "HTTP"' }).optional(),
        httpHeaders: z.array(z.strictObject({ name: probeHeaderName.optional(), value: z.string().optional() })).optional(),
      })
      .optional(),
    tcpSocket: z.strictObject({ host: z.string().optional(), port: port() }).optional(),
    exec: z.strictObject({ command: z.array(z.string().min(1)).min(1, 'exec.command is required') }).optional(),
    grpc: z.strictObject({ port: port().optional(), service: z.string().optional() }).optional(),
  })
  .superRefine((p, ctx) => {
    const set = (['httpGet', 'tcpSocket', 'exec', 'grpc'] as const).filter((k) => p[k] !== undefined);
    if (set.length === 0) issuer(ctx)([], 'a probe needs one health check method: httpGet, tcpSocket, exec or grpc');
    if (set.length > 1) issuer(ctx)([set[1]!], `only one of httpGet, tcpSocket, exec or grpc may be set (found ${set.join(' and ')})`);
  });

const workloadGroupBase = z.strictObject({
  metadata: z.strictObject({ labels: k8sLabels().optional(), annotations: z.record(z.string(), z.string()).optional() }).optional(),
  template: workloadEntryBase,
  probe: readinessProbe.optional(),
});
export type WorkloadGroupSpec = z.output<typeof workloadGroupBase>;

export const workloadGroupKind = defineKind<WorkloadGroupSpec>({
  group: NETWORKING_GROUP,
  kind: 'WorkloadGroup',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: workloadGroupBase.superRefine((wg, ctx) => {
    const a = wg.template.address;
    if (a?.startsWith(UNIX_PREFIX) && Object.keys(wg.template.ports ?? {}).length) issuer(ctx)(['template', 'ports'], 'UDS may not include ports');
  }),
});

// ---------------------------------------------------------------------------------------------------------------
// ServiceEntry

const RESOLUTIONS = ['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS'] as const;

const serviceEntryBase = z.strictObject({
  hosts: z.array(z.string()).min(1, 'service entry must have at least one host').max(256),
  addresses: z.array(z.string().max(64)).max(256).optional(),
  ports: z
    .array(
      z.strictObject({
        number: port(),
        protocol: z.string().max(256).optional(),
        name: z.string().max(256),
        targetPort: port().optional(),
      }),
    )
    .max(256)
    .optional(),
  location: z.enum(['MESH_EXTERNAL', 'MESH_INTERNAL']).optional(),
  resolution: z.enum(RESOLUTIONS).optional(),
  endpoints: z.array(workloadEntryBase).max(4096).optional(),
  workloadSelector: networkingWorkloadSelector().optional(),
  exportTo: z.array(z.string()).optional(),
  subjectAltNames: z.array(z.string()).optional(),
});
export type ServiceEntrySpec = z.output<typeof serviceEntryBase>;

function validateServiceEntry(se: ServiceEntrySpec, issue: Issue): void {
  const resolution = se.resolution ?? 'NONE';
  if (se.workloadSelector && se.endpoints) issue(['workloadSelector'], 'only one of WorkloadSelector or Endpoints is allowed in Service Entry');
  se.hosts.forEach((h, i) => {
    if (h === '*') issue(['hosts', i], `invalid host ${h}`);
    else {
      const err = wildcardDomainError(h);
      if (err) issue(['hosts', i], err);
    }
  });
  let cidr = false;
  (se.addresses ?? []).forEach((a, i) => {
    cidr ||= a.includes('/');
    const err = ipSubnetError(a);
    if (err) issue(['addresses', i], err);
  });
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC') issue(['addresses'], 'CIDR addresses are allowed only for NONE/STATIC resolution types');
  const names = new Set<string>();
  const numbers = new Set<number>();
  (se.ports ?? []).forEach((p, i) => {
    if (names.has(p.name)) issue(['ports', i, 'name'], `service entry port name "${p.name}" already defined`);
    if (numbers.has(p.number)) issue(['ports', i, 'number'], `service entry port ${p.number} already defined`);
    names.add(p.name);
    numbers.add(p.number);
    const nameErr = portNameError(p.name);
    if (nameErr) issue(['ports', i, 'name'], nameErr);
    const protoErr = protocolError(p.protocol);
    if (protoErr) issue(['ports', i, 'protocol'], protoErr);
  });
  const endpoints = se.endpoints ?? [];
  if (resolution === 'NONE' && se.endpoints) issue(['endpoints'], 'no endpoints should be provided for resolution type none');
  if (resolution === 'STATIC') endpoints.forEach((e, i) => checkWorkloadEntry(e, ['endpoints', i], issue, names, false));
  if (resolution === 'DNS' || resolution === 'DNS_ROUND_ROBIN') {
    if (endpoints.length === 0) {
      se.hosts.forEach((h, i) => {
        if (h !== '*' && fqdnError(h)) issue(['hosts', i], `hosts must be FQDN if no endpoints are provided for resolution mode ${resolution}`);
      });
    }
    if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) issue(['endpoints'], `there must only be 0 or 1 endpoint for resolution mode ${resolution}`);
    endpoints.forEach((e, i) => {
      const addr = e.address ?? '';
      if (!e.address && e.network) return;
      if (!isIpAddress(addr) && fqdnError(addr)) issue(['endpoints', i, 'address'], `endpoint address "${addr}" is not a valid FQDN or an IP address`);
      for (const [name, p] of Object.entries(e.ports ?? {})) {
        if (!names.has(name)) issue(['endpoints', i, 'ports', name], `endpoint port ${p} is not defined by the service entry`);
        const err = portNameError(name);
        if (err) issue(['endpoints', i, 'ports', name], err);
      }
    });
  }
  if (resolution === 'DYNAMIC_DNS') endpoints.forEach((e, i) => checkWorkloadEntry(e, ['endpoints', i], issue, names, true));
  if (resolution !== 'NONE' && se.hosts.length > 1) {
    const p = (se.ports ?? []).find((x) => {
      const proto = x.protocol ? istioProtocol(x.protocol) : undefined;
      const http = proto === 'HTTP' || proto === 'HTTP2' || proto === 'GRPC' || proto === 'GRPC-Web';
      const tls = proto === 'HTTPS' || proto === 'TLS';
      return !http && !tls;
    });
    if (p) issue(['hosts'], 'multiple hosts provided with non-HTTP, non-TLS ports');
  }
  checkExportTo(se.exportTo, undefined, true, issue);
}

export const serviceEntrySpec = serviceEntryBase.superRefine((se, ctx) => validateServiceEntry(se, issuer(ctx)));

function toPort(p: NonNullable<ServiceEntrySpec['ports']>[number]): ServicePort {
  const protocol = p.protocol ? istioProtocol(p.protocol) : undefined;
  return {
    name: p.name,
    port: p.number,
    // Istio: the endpoint port defaults to the service port.
    targetPort: p.targetPort ?? p.number,
    protocol: protocol ?? 'UNKNOWN',
    protocolSource: protocol ? 'protocol' : 'none',
  };
}

function toEndpoint(e: WorkloadEntrySpec): StaticEndpoint {
  const out: StaticEndpoint = { address: e.address ?? '', ports: { ...(e.ports ?? {}) }, labels: { ...(e.labels ?? {}) } };
  if (e.locality) out.locality = e.locality;
  if (e.weight !== undefined) out.weight = e.weight;
  if (e.network) out.network = e.network;
  if (e.serviceAccount) out.serviceAccount = e.serviceAccount;
  return out;
}

/** One Service per host. Defaults: location MESH_EXTERNAL, resolution NONE, exportTo `*` (the enums' zero values). */
function translateServiceEntry(res: Resource<ServiceEntrySpec>, ctx: TranslateContext): void {
  const se = res.spec;
  se.hosts.forEach((host, i) => {
    const svc: Service = {
      hostname: host,
      namespace: res.namespace,
      ports: (se.ports ?? []).map(toPort),
      addresses: [...(se.addresses ?? [])],
      resolution: se.resolution ?? 'NONE',
      location: se.location ?? 'MESH_EXTERNAL',
      exportTo: exportToOf(se.exportTo),
      labels: { ...(res.metadata.labels ?? {}) },
      endpoints: (se.endpoints ?? []).map(toEndpoint),
      subjectAltNames: [...(se.subjectAltNames ?? [])],
      origin: ctx.origin(res, ['spec', 'hosts', i]),
    };
    if (se.workloadSelector) svc.selector = { ...(se.workloadSelector.labels ?? {}) };
    ctx.model.services.push(svc);
  });
}

export const serviceEntryKind = defineKind<ServiceEntrySpec>({
  group: NETWORKING_GROUP,
  kind: 'ServiceEntry',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: serviceEntrySpec,
  translate: translateServiceEntry,
  order: 10,
});
