/**
 * Who is asking: the proxy (xDS client) identity the control plane generates config for, read from the xDS
 * `Node` the way Istio reads it. Node metadata keys are Istio's (`NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`,
 * `INTERCEPTION_MODE`, `GENERATOR`, `WORKLOAD_NAME`, `INSTANCE_IPS`), so Envoy bootstraps written for Istio
 * work unchanged; Weft adds `WEFT_MODE` (`explicit` | `transparent`), `WEFT_UPSTREAMS`, `WEFT_OUTBOUND_PORT`,
 * `WEFT_INBOUND`, `WEFT_INBOUND_BIND` and `WEFT_WORKLOAD_IDENTITY`.
 */
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import type { Node } from '../xds/gen/envoy/config/core/v3/base_pb.js';
import type { Labels, Protocol } from '../api/model.js';
import { parseProtocol } from '../api/protocol.js';

export type ProxyType = 'sidecar' | 'router' | 'grpc';

export interface ProxyLocality {
  region: string;
  zone: string;
  subZone: string;
}

/** Default port of the explicit-mode outbound HTTP listener (WEFT_OUTBOUND_PORT), Istio's outbound capture port. */
export const DEFAULT_OUTBOUND_PORT = 15001;
/** Default address the inbound listeners bind to (WEFT_INBOUND_BIND). */
export const DEFAULT_INBOUND_BIND = '0.0.0.0';

/** One inbound port of the proxy's workload (WEFT_INBOUND entry). */
export interface InboundPort {
  /** The port the sidecar listens on (on `ProxyInfo.inboundBind`). */
  port: number;
  /** The application's port: the sidecar forwards to 127.0.0.1:targetPort. */
  targetPort: number;
  /** From the entry's `protocol` (Istio protocol names, case-insensitive); `UNKNOWN` when absent or unrecognised. */
  protocol: Protocol;
  name?: string;
}

export interface ProxyInfo {
  id: string;
  /** `sidecar` (weft proxy / Envoy sidecar), `router` (a gateway), `grpc` (proxyless gRPC client). */
  type: ProxyType;
  namespace: string;
  labels: Labels;
  serviceAccount: string;
  workloadName?: string;
  /** `explicit`: apps send to the sidecar's outbound port; `transparent`: traffic is captured by iptables. */
  mode: 'explicit' | 'transparent';
  locality?: ProxyLocality;
  ipAddresses: string[];
  /** Explicit-mode TCP upstreams that need a local port each: `host:port` → local port. */
  upstreams: Array<{ host: string; port: number; localPort: number }>;
  /** Port of the explicit-mode outbound HTTP listener on 127.0.0.1 (WEFT_OUTBOUND_PORT, default 15001). */
  outboundPort: number;
  /** Inbound ports the sidecar serves for its workload (WEFT_INBOUND); invalid entries are left out. */
  inbound: InboundPort[];
  /** Address the inbound listeners bind to (WEFT_INBOUND_BIND, default 0.0.0.0). */
  inboundBind: string;
  /**
   * The proxy has a workload certificate (node metadata WEFT_WORKLOAD_IDENTITY "true"): it can terminate and
   * originate mesh mTLS (PERMISSIVE inbound ports get TLS chains, auto mTLS applies to its clusters).
   */
  workloadIdentity: boolean;
  /** Node metadata as sent. */
  metadata: JsonObject;
}

export class NodeError extends Error {}

function str(v: JsonValue | undefined): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** A TCP port from metadata: a number or a decimal string in 1..65535. */
function portOf(v: JsonValue | undefined): number | undefined {
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v.trim()) ? Number(v.trim()) : NaN;
  return Number.isInteger(n) && n >= 1 && n <= 65535 ? n : undefined;
}

/** A list from metadata: a JSON array, or a string holding one (Istio-style bootstraps pass JSON as strings). */
function listOf(v: JsonValue | undefined): JsonValue[] {
  if (Array.isArray(v)) return v;
  if (typeof v === 'string' && v.trim().startsWith('[')) {
    try {
      const parsed = JSON.parse(v) as unknown;
      return Array.isArray(parsed) ? (parsed as JsonValue[]) : [];
    } catch {
      return [];
    }
  }
  return [];
}

function inboundOf(v: JsonValue | undefined): InboundPort[] {
  const out: InboundPort[] = [];
  const seen = new Set<number>();
  for (const e of listOf(v)) {
    if (!e || typeof e !== 'object' || Array.isArray(e)) continue;
    const port = portOf(e.port);
    const targetPort = portOf(e.targetPort);
    if (port === undefined || targetPort === undefined || seen.has(port)) continue;
    seen.add(port);
    const entry: InboundPort = { port, targetPort, protocol: (typeof e.protocol === 'string' && parseProtocol(e.protocol)) || 'UNKNOWN' };
    if (typeof e.name === 'string' && e.name !== '') entry.name = e.name;
    out.push(entry);
  }
  return out;
}

function labelsOf(v: JsonValue | undefined): Labels {
  const out: Labels = {};
  if (v && typeof v === 'object' && !Array.isArray(v)) for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/**
 * Reads a proxy's identity from its Node. The namespace comes from metadata `NAMESPACE`, else from an Istio-style
 * node id (`sidecar~10.0.0.1~pod.namespace~namespace.svc.cluster.local`), else `default`.
 */
export function proxyFromNode(node: Node): ProxyInfo {
  if (!node.id) throw new NodeError('node.id is required');
  const md = node.metadata ?? {};
  const parts = node.id.split('~');
  const istioId = parts.length === 4 ? { type: parts[0]!, ip: parts[1]!, podDotNs: parts[2]!, domain: parts[3]! } : undefined;
  const namespace = str(md.NAMESPACE) ?? (istioId ? istioId.podDotNs.split('.')[1] : undefined) ?? 'default';
  const generator = str(md.GENERATOR);
  let type: ProxyType = 'sidecar';
  if (generator === 'grpc') type = 'grpc';
  else if (istioId?.type === 'router' || str(md.WEFT_PROXY_TYPE) === 'router') type = 'router';
  const ips = str(md.INSTANCE_IPS)?.split(',').map((s) => s.trim()).filter(Boolean) ?? (istioId?.ip ? [istioId.ip] : []);
  const loc = node.locality;
  const upstreams: ProxyInfo['upstreams'] = [];
  const up = md.WEFT_UPSTREAMS;
  if (Array.isArray(up)) {
    for (const u of up) {
      if (u && typeof u === 'object' && !Array.isArray(u) && typeof u.host === 'string' && typeof u.port === 'number' && typeof u.localPort === 'number') {
        upstreams.push({ host: u.host, port: u.port, localPort: u.localPort });
      }
    }
  }
  return {
    id: node.id,
    type,
    namespace,
    labels: labelsOf(md.LABELS),
    serviceAccount: str(md.SERVICE_ACCOUNT) ?? 'default',
    workloadName: str(md.WORKLOAD_NAME),
    mode: str(md.WEFT_MODE) === 'transparent' || str(md.INTERCEPTION_MODE) === 'REDIRECT' || str(md.INTERCEPTION_MODE) === 'TPROXY' ? 'transparent' : 'explicit',
    locality: loc && (loc.region || loc.zone || loc.subZone) ? { region: loc.region, zone: loc.zone, subZone: loc.subZone } : undefined,
    ipAddresses: ips,
    upstreams,
    outboundPort: portOf(md.WEFT_OUTBOUND_PORT) ?? DEFAULT_OUTBOUND_PORT,
    inbound: inboundOf(md.WEFT_INBOUND),
    inboundBind: str(md.WEFT_INBOUND_BIND) ?? DEFAULT_INBOUND_BIND,
    workloadIdentity: str(md.WEFT_WORKLOAD_IDENTITY) === 'true',
    metadata: md,
  };
}

/** `region/zone/subzone` of a locality, trailing empty parts dropped. */
export function localityString(l: ProxyLocality | undefined): string | undefined {
  if (!l) return undefined;
  const parts = [l.region, l.zone, l.subZone];
  while (parts.length && !parts[parts.length - 1]) parts.pop();
  return parts.length ? parts.join('/') : undefined;
}
