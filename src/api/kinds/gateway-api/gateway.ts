/**
 * Gateway → model GatewayDef: one server per listener. The Gateway selects the workloads a Gateway API
 * implementation deploys for it, labelled `gateway.networking.k8s.io/gateway-name: <name>` (GEP-1762).
 */
import type { GatewayServer } from '../../model.js';
import type { Resource, TranslateContext } from '../kind.js';
import { GATEWAY_GROUP } from './schema.js';
import type { GatewaySpec, Listener } from './schema.js';

const CORE_PROTOCOLS = new Set(['HTTP', 'HTTPS', 'TLS', 'TCP', 'UDP']);

/** The client-certificate validation mode that applies to a listener port, if any. */
function clientValidation(spec: GatewaySpec, l: Listener): 'AllowValidOnly' | 'AllowInsecureFallback' | undefined {
  const perPort = spec.tls?.frontend?.perPort?.find((p) => p.port === l.port);
  const v = perPort ? perPort.tls.validation : spec.tls?.frontend?.default.validation;
  if (v) return v.mode;
  if (l.tls?.frontendValidation) return 'AllowValidOnly';
  return undefined;
}

function server(res: Resource<GatewaySpec>, l: Listener, i: number, ctx: TranslateContext): GatewayServer {
  const upper = l.protocol.toUpperCase();
  const protocol = CORE_PROTOCOLS.has(upper) ? upper : l.protocol;
  const s: GatewayServer = { port: { number: l.port, name: l.name, protocol }, hosts: [l.hostname ?? '*'], name: l.name };
  if (l.tls) {
    let mode = l.tls.mode === 'Passthrough' ? 'PASSTHROUGH' : 'SIMPLE';
    const validation = l.tls.mode === 'Terminate' && upper === 'HTTPS' ? clientValidation(res.spec, l) : undefined;
    if (validation === 'AllowValidOnly') mode = 'MUTUAL';
    else if (validation === 'AllowInsecureFallback') mode = 'OPTIONAL_MUTUAL';
    s.tls = { mode };
    const refs = l.tls.certificateRefs ?? [];
    const cert = refs[0];
    if (cert) {
      const ns = cert.namespace ?? res.namespace;
      s.tls.credentialName = ns === res.namespace ? cert.name : `${ns}/${cert.name}`;
      if (cert.group !== '' || cert.kind !== 'Secret') {
        ctx.report(res as Resource<unknown>, { severity: 'Info', code: 'WFT1010', message: `certificateRef kind ${cert.group || 'core'}/${cert.kind} is implementation-specific; Weft reads it as the name of a TLS Secret`, hint: 'reference a Secret of type kubernetes.io/tls', at: ['spec', 'listeners', i, 'tls', 'certificateRefs', 0] });
      }
    }
    if (refs.length > 1) {
      ctx.report(res as Resource<unknown>, { severity: 'Info', code: 'WFT1010', message: `listener ${l.name} has ${refs.length} certificateRefs; Weft uses the first`, hint: 'several certificates per listener are implementation-specific', at: ['spec', 'listeners', i, 'tls', 'certificateRefs'] });
    }
  }
  return s;
}

export function translateGateway(res: Resource<GatewaySpec>, ctx: TranslateContext): void {
  const spec = res.spec;
  if (!ctx.lookup(GATEWAY_GROUP, 'GatewayClass', '', spec.gatewayClassName)) {
    ctx.report(res as Resource<unknown>, {
      severity: 'Info',
      code: 'WFT0101',
      message: `GatewayClass ${spec.gatewayClassName} is not among the loaded resources`,
      hint: 'define the GatewayClass, or make sure the cluster provides it',
      at: ['spec', 'gatewayClassName'],
    });
  }
  ctx.model.gateways.push({
    family: 'gateway-api',
    name: res.name,
    namespace: res.namespace,
    selector: { [`${GATEWAY_GROUP}/gateway-name`]: res.name },
    className: spec.gatewayClassName,
    servers: spec.listeners.map((l, i) => server(res, l, i, ctx)),
    origin: ctx.origin(res as Resource<unknown>),
  });
}
