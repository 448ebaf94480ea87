/**
 * networking.istio.io Sidecar: schema (istio/api sidecar.proto and istio/istio ValidateSidecar) and translation
 * into a SidecarScope.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type { Protocol, SidecarScope } from '../../model.js';
import type { JsonPath } from '../../source.js';
import { connectionPoolSchema } from './destination-rule.js';
import { destinationSchema } from './virtual-service.js';
import {
  NETWORKING_GROUP,
  NETWORKING_VERSIONS,
  checkServerTls,
  fqdnError,
  isIpAddress,
  issuer,
  istioProtocol,
  namespaceSlashHostError,
  networkingWorkloadSelector,
  portError,
  portNameError,
  protocolError,
  serverTlsSchema,
  uint32,
} from './common.js';
import type { Issue } from './common.js';

const sidecarPort = z.strictObject({
  number: uint32(),
  protocol: z.string().optional(),
  name: z.string().optional(),
  /** Deprecated; has no effect on Sidecars. */
  targetPort: uint32().optional(),
});
type SidecarPortSpec = z.output<typeof sidecarPort>;

const captureMode = z.enum(['DEFAULT', 'IPTABLES', 'NONE']);

const sidecarBase = z.strictObject({
  workloadSelector: networkingWorkloadSelector().optional(),
  ingress: z
    .array(
      z.strictObject({
        port: sidecarPort,
        bind: z.string().optional(),
        captureMode: captureMode.optional(),
        defaultEndpoint: z.string().optional(),
        tls: serverTlsSchema().optional(),
        connectionPool: connectionPoolSchema().optional(),
      }),
    )
    .optional(),
  egress: z
    .array(
      z.strictObject({
        port: sidecarPort.optional(),
        bind: z.string().optional(),
        captureMode: captureMode.optional(),
        hosts: z.array(z.string()),
      }),
    )
    .optional(),
  inboundConnectionPool: connectionPoolSchema().optional(),
  outboundTrafficPolicy: z
    .strictObject({
      mode: z.enum(['REGISTRY_ONLY', 'ALLOW_ANY']).optional(),
      egressProxy: destinationSchema().optional(),
    })
    .optional(),
});
export type SidecarSpec = z.output<typeof sidecarBase>;

const UNIX_PREFIX = 'unix://';

function unixError(addr: string): string | undefined {
  if (addr.length === 0) return 'unix address must not be empty';
  if (addr.startsWith('@')) return undefined;
  return addr.startsWith('/') && !addr.endsWith('/') ? undefined : `${addr} is not an absolute path to a file`;
}

function checkPortCommon(p: SidecarPortSpec, at: JsonPath, issue: Issue): void {
  if (p.name) {
    const err = portNameError(p.name);
    if (err) issue([...at, 'name'], err);
  }
  const perr = protocolError(p.protocol);
  if (perr) issue([...at, 'protocol'], perr);
  if (p.targetPort) issue([...at, 'targetPort'], 'targetPort has no impact on Sidecars');
}

function validateSidecar(sc: SidecarSpec, issue: Issue): void {
  const ingress = sc.ingress ?? [];
  const egress = sc.egress ?? [];
  if (!ingress.length && !egress.length && !sc.outboundTrafficPolicy && !sc.inboundConnectionPool) {
    issue([], 'sidecar: empty configuration provided');
    return;
  }
  const ports = new Set<number>();
  ingress.forEach((i, n) => {
    const at: JsonPath = ['ingress', n];
    checkPortCommon(i.port, [...at, 'port'], issue);
    const pe = portError(i.port.number);
    if (pe) issue([...at, 'port', 'number'], pe);
    if (i.bind && !isIpAddress(i.bind)) issue([...at, 'bind'], `${i.bind} is not a valid IP`);
    if (ports.has(i.port.number)) issue([...at, 'port', 'number'], 'sidecar: ports on IP bound listeners must be unique');
    ports.add(i.port.number);
    if (i.defaultEndpoint) {
      const de = i.defaultEndpoint;
      if (de.startsWith(UNIX_PREFIX)) {
        const err = unixError(de.slice(UNIX_PREFIX.length));
        if (err) issue([...at, 'defaultEndpoint'], err);
      } else {
        // 127.0.0.1:port, 0.0.0.0:port, [::1]:port, [::]:port or :port
        const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(de);
        if (!m) issue([...at, 'defaultEndpoint'], `address ${de}: missing port in address`);
        else {
          const host = m[1] ?? m[2] ?? '';
          if (host !== '' && !['127.0.0.1', '0.0.0.0', '::1', '::'].includes(host)) {
            issue([...at, 'defaultEndpoint'], 'sidecar: defaultEndpoint must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset');
          }
          if (!/^\d+$/.test(m[3]!)) issue([...at, 'defaultEndpoint'], `sidecar: defaultEndpoint port (${m[3]}) is not a number`);
          else {
            const err = portError(Number(m[3]));
            if (err) issue([...at, 'defaultEndpoint'], err);
          }
        }
      }
    }
    if (i.tls) {
      const t = i.tls;
      if ((t.subjectAltNames ?? []).length) issue([...at, 'tls', 'subjectAltNames'], 'sidecar: subjectAltNames is not supported in ingress tls');
      if (t.httpsRedirect) issue([...at, 'tls', 'httpsRedirect'], 'sidecar: httpsRedirect is not supported');
      if (t.credentialName) issue([...at, 'tls', 'credentialName'], 'sidecar: credentialName is not currently supported');
      if ((t.credentialNames ?? []).length) issue([...at, 'tls', 'credentialNames'], 'sidecar: credentialNames is not currently supported');
      if ((t.tlsCertificates ?? []).length) issue([...at, 'tls', 'tlsCertificates'], 'sidecar: tls_certificates is not currently supported');
      if (t.mode === 'ISTIO_MUTUAL' || t.mode === 'AUTO_PASSTHROUGH') issue([...at, 'tls', 'mode'], `configuration is invalid: cannot set mode to ${t.mode} in sidecar ingress tls`);
      const proto = i.port.protocol ? istioProtocol(i.port.protocol) : undefined;
      if (proto !== 'HTTPS' && proto !== 'TLS') issue([...at, 'tls'], 'server cannot have TLS settings for non HTTPS/TLS ports');
      checkServerTls(t, [...at, 'tls'], issue);
    }
  });

  const egressPorts = new Set<number>();
  const uds = new Set<string>();
  let catchAll = false;
  egress.forEach((e, n) => {
    const at: JsonPath = ['egress', n];
    if (!e.port) {
      if (catchAll) issue(at, 'sidecar: egress can have only one listener with empty port');
      else if (n === egress.length - 1) catchAll = true;
      else issue(at, 'sidecar: the egress listener with empty port should be the last listener in the list');
    } else {
      checkPortCommon(e.port, [...at, 'port'], issue);
      const bind = e.bind ?? '';
      if (e.port.number === 0) {
        if (!bind.startsWith(UNIX_PREFIX)) issue([...at, 'bind'], 'sidecar: ports with 0 value must have a unix domain socket bind address');
        else {
          const err = unixError(bind.slice(UNIX_PREFIX.length));
          if (err) issue([...at, 'bind'], err);
        }
        if (e.captureMode && e.captureMode !== 'DEFAULT' && e.captureMode !== 'NONE') issue([...at, 'captureMode'], 'sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners');
        if (uds.has(bind)) issue([...at, 'bind'], 'sidecar: unix domain socket values for listeners must be unique');
        uds.add(bind);
      } else {
        const pe = portError(e.port.number);
        if (pe) issue([...at, 'port', 'number'], pe);
        if (bind && isIP(bind) === 0) issue([...at, 'bind'], `${bind} is not a valid IP`);
        if (egressPorts.has(e.port.number)) issue([...at, 'port', 'number'], 'sidecar: ports on IP bound listeners must be unique');
        egressPorts.add(e.port.number);
      }
    }
    if (e.hosts.length === 0) issue([...at, 'hosts'], 'sidecar: egress listener must contain at least one host');
    e.hosts.forEach((h, k) => {
      const err = namespaceSlashHostError(h, false);
      if (err) issue([...at, 'hosts', k], err);
    });
  });

  const otp = sc.outboundTrafficPolicy;
  if (otp?.egressProxy) {
    const at: JsonPath = ['outboundTrafficPolicy', 'egressProxy'];
    if ((otp.mode ?? 'REGISTRY_ONLY') !== 'ALLOW_ANY') issue(at, 'sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode');
    else {
      const err = fqdnError(otp.egressProxy.host);
      if (err) issue([...at, 'host'], err);
      if (!otp.egressProxy.port) issue([...at, 'port'], 'sidecar: egress_proxy port must be non-nil');
    }
  }
}

export const sidecarSpec = sidecarBase.superRefine((sc, ctx) => validateSidecar(sc, issuer(ctx)));

function toPort(p: SidecarPortSpec): { number: number; protocol?: Protocol; name?: string } {
  const out: { number: number; protocol?: Protocol; name?: string } = { number: p.number };
  const proto = p.protocol ? istioProtocol(p.protocol) : undefined;
  if (proto) out.protocol = proto;
  if (p.name) out.name = p.name;
  return out;
}

/**
 * The Sidecar as a scope. Egress hosts keep Istio's `namespace/host` form, with `.` replaced by the Sidecar's
 * namespace. A given outboundTrafficPolicy without mode is REGISTRY_ONLY (the enum's zero value); none at all
 * leaves the mesh-wide policy in force.
 */
function translateSidecar(res: Resource<SidecarSpec>, ctx: TranslateContext): void {
  const sc = res.spec;
  const ns = res.namespace;
  const scope: SidecarScope = {
    namespace: ns,
    egress: (sc.egress ?? []).map((e) => {
      const out: SidecarScope['egress'][number] = { hosts: e.hosts.map((h) => (h.startsWith('./') ? `${ns}/${h.slice(2)}` : h)) };
      if (e.hosts.some((h) => h.startsWith('./'))) out.writtenHosts = [...e.hosts];
      if (e.port) out.port = toPort(e.port);
      if (e.bind) out.bind = e.bind;
      if (e.captureMode) out.captureMode = e.captureMode;
      return out;
    }),
    ingress: (sc.ingress ?? []).map((i) => {
      const out: SidecarScope['ingress'][number] = { port: toPort(i.port) };
      if (i.bind) out.bind = i.bind;
      if (i.defaultEndpoint) out.defaultEndpoint = i.defaultEndpoint;
      return out;
    }),
    origin: ctx.origin(res),
  };
  if (sc.workloadSelector) scope.workloadSelector = { ...(sc.workloadSelector.labels ?? {}) };
  if (sc.outboundTrafficPolicy) scope.outboundTrafficPolicy = sc.outboundTrafficPolicy.mode ?? 'REGISTRY_ONLY';
  ctx.model.sidecars.push(scope);
}

export const sidecarKind = defineKind<SidecarSpec>({
  group: NETWORKING_GROUP,
  kind: 'Sidecar',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: sidecarSpec,
  translate: translateSidecar,
});
