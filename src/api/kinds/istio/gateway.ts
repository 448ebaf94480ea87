/**
 * networking.istio.io Gateway: schema (istio/api gateway.proto, the CRD's CEL rules, istio/istio ValidateGateway)
 * and translation into a GatewayDef (served by the gateway work; parsed and checked now).
 */
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type { GatewayDef, GatewayServer } from '../../model.js';
import type { JsonPath } from '../../source.js';
import {
  NETWORKING_GROUP,
  NETWORKING_VERSIONS,
  checkServerTls,
  isDns1123Label,
  isIpAddress,
  issuer,
  istioProtocol,
  namespaceSlashHostError,
  portError,
  serverTlsSchema,
  uint32,
} from './common.js';
import type { Issue, ServerTlsSpec } from './common.js';

const UNIX_PREFIX = 'unix://';

const gatewayBase = z.strictObject({
  servers: z
    .array(
      z.strictObject({
        port: z.strictObject({
          number: uint32(),
          protocol: z.string(),
          name: z.string(),
          /** Deprecated; has no effect on Gateways. */
          targetPort: uint32().optional(),
        }),
        bind: z.string().optional(),
        hosts: z.array(z.string()),
        tls: serverTlsSchema()
          .superRefine((t, ctx) => {
            const issue = issuer(ctx);
            if (t.tlsCertificates && t.credentialNames) issue(['credentialNames'], 'only one of credentialNames or tlsCertificates can be set');
            if (t.credentialName && t.credentialNames) issue(['credentialNames'], 'only one of credentialName or credentialNames can be set');
          })
          .optional(),
        defaultEndpoint: z.string().optional(),
        name: z.string().optional(),
      }),
    )
    .optional(),
  selector: z.record(z.string(), z.string()).optional(),
});
export type GatewaySpec = z.output<typeof gatewayBase>;

function isTlsProtocol(p: string): boolean {
  const proto = istioProtocol(p);
  return proto === 'HTTPS' || proto === 'TLS';
}

function isHttpProtocol(p: string): boolean {
  const proto = istioProtocol(p);
  return proto === 'HTTP' || proto === 'HTTP2' || proto === 'GRPC' || proto === 'GRPC-Web';
}

function isPassthrough(tls: ServerTlsSpec): boolean {
  const mode = tls.mode ?? 'PASSTHROUGH';
  return mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH';
}

function validateGateway(gw: GatewaySpec, issue: Issue): void {
  const servers = gw.servers ?? [];
  if (servers.length === 0) issue(['servers'], 'gateway must have at least one server');
  const names = new Set<string>();
  servers.forEach((s, i) => {
    const at: JsonPath = ['servers', i];
    if (s.hosts.length === 0) issue([...at, 'hosts'], 'server config must contain at least one host');
    s.hosts.forEach((h, k) => {
      const err = namespaceSlashHostError(h, true);
      if (err) issue([...at, 'hosts', k], err);
    });
    const bind = s.bind ?? '';
    let portOk = true;
    if (!istioProtocol(s.port.protocol)) {
      issue([...at, 'port', 'protocol'], `invalid protocol "${s.port.protocol}", supported protocols are HTTP, HTTP2, GRPC, GRPC-WEB, MONGO, REDIS, MYSQL, TCP`);
      portOk = false;
    }
    if (s.port.number > 0 || !bind.startsWith(UNIX_PREFIX)) {
      const err = portError(s.port.number);
      if (err) {
        issue([...at, 'port', 'number'], err);
        portOk = false;
      }
    }
    if (s.port.targetPort) issue([...at, 'port', 'targetPort'], 'targetPort has no impact on Gateways');
    if (s.port.name === '') {
      issue([...at, 'port', 'name'], 'port name must be set');
      portOk = false;
    }
    if (bind.startsWith(UNIX_PREFIX)) {
      const addr = bind.slice(UNIX_PREFIX.length);
      if (!addr.startsWith('@') && (!addr.startsWith('/') || addr.endsWith('/'))) issue([...at, 'bind'], `${addr} is not an absolute path to a file`);
      if (s.port.number !== 0) issue([...at, 'port', 'number'], 'port number must be 0 for unix domain socket');
    } else if (bind && !isIpAddress(bind)) issue([...at, 'bind'], `${bind} is not a valid IP`);
    checkServerTls(s.tls, [...at, 'tls'], issue);
    if (portOk) {
      if (isTlsProtocol(s.port.protocol) && !s.tls) issue([...at, 'tls'], 'server must have TLS settings for HTTPS/TLS protocols');
      else if (!isTlsProtocol(s.port.protocol) && s.tls) {
        if (isHttpProtocol(s.port.protocol)) {
          if (!isPassthrough(s.tls) || s.tls.caCertificates || s.tls.privateKey || s.tls.serverCertificate) issue([...at, 'tls'], 'server cannot have TLS settings for plain text HTTP ports');
        } else issue([...at, 'tls'], 'server cannot have TLS settings for non HTTPS/TLS ports');
      }
    }
    if (names.has(s.port.name)) issue([...at, 'port', 'name'], `port names in servers must be unique: duplicate name ${s.port.name}`);
    names.add(s.port.name);
  });
}

export const gatewaySpec = gatewayBase.superRefine((gw, ctx) => validateGateway(gw, issuer(ctx)));

function toServer(s: NonNullable<GatewaySpec['servers']>[number]): GatewayServer {
  const out: GatewayServer = {
    port: { number: s.port.number, name: s.port.name, protocol: s.port.protocol },
    hosts: [...s.hosts],
  };
  if (s.bind) out.bind = s.bind;
  if (s.name) out.name = s.name;
  if (s.tls) {
    const t = s.tls;
    // Istio: the server TLS mode defaults to PASSTHROUGH (the enum's zero value).
    const tls: NonNullable<GatewayServer['tls']> = { mode: t.mode ?? 'PASSTHROUGH' };
    for (const k of ['credentialName', 'serverCertificate', 'privateKey', 'caCertificates', 'minProtocolVersion'] as const) if (t[k] !== undefined) tls[k] = t[k];
    if (t.httpsRedirect !== undefined) tls.httpsRedirect = t.httpsRedirect;
    if (t.subjectAltNames) tls.subjectAltNames = [...t.subjectAltNames];
    out.tls = tls;
  }
  return out;
}

function translateGateway(res: Resource<GatewaySpec>, ctx: TranslateContext): void {
  // Istio: a Gateway's name must be a DNS label (no dots), since VirtualServices refer to it as `namespace/name`.
  if (!isDns1123Label(res.name)) {
    ctx.report(res, { severity: 'Error', code: 'WFT0106', message: `invalid gateway name: "${res.name}"`, hint: 'use a DNS label: lower-case letters, digits and "-", no dots', at: ['metadata', 'name'] });
    return;
  }
  const def: GatewayDef = {
    family: 'istio',
    name: res.name,
    namespace: res.namespace,
    selector: { ...(res.spec.selector ?? {}) },
    servers: (res.spec.servers ?? []).map(toServer),
    origin: ctx.origin(res),
  };
  ctx.model.gateways.push(def);
}

export const gatewayKind = defineKind<GatewaySpec>({
  group: NETWORKING_GROUP,
  kind: 'Gateway',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: gatewaySpec,
  translate: translateGateway,
});
