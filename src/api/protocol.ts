/**
 * Application protocol of a service port, decided the way Istio decides it for a Kubernetes Service port
 * (Istio "Protocol Selection"; istio/istio pkg/config/kube/conversion.go `ConvertProtocol`):
 *
 * 1. A UDP port is `UDP`, whatever its name says.
 * 2. `appProtocol`, when set, is used instead of the port name (the name is then not consulted at all).
 *    The Kubernetes-defined values `kubernetes.io/h2c`, `kubernetes.io/ws` and `kubernetes.io/wss` mean HTTP2,
 *    HTTP and HTTPS.
 * 3. Otherwise the port name: `<protocol>[-<suffix>]`, case-insensitive (`http`, `http-web`, `GRPC-api`, ...).
 *    `grpc-web` is recognised as a whole before the name is cut at its first `-`.
 * 4. Nothing recognised: ports 25 (SMTP), 53 (DNS), 3306 (MySQL) and 27017 (MongoDB) are `TCP` (Istio does not
 *    sniff them, applications on them break under sniffing); any other port is `UNKNOWN`, and its protocol is
 *    sniffed at runtime (HTTP/1.1, HTTP/2, else opaque TCP).
 *
 * Recognised names (Istio `protocol.Parse`): tcp, udp, grpc, grpc-web, http, http2, https, tls, mongo, redis,
 * mysql. Istio's `http_proxy` names a Sidecar egress listener mode, not a service protocol, and is treated like
 * any unrecognised name here.
 */
import type { Protocol, ServicePort } from './model.js';

export type ProtocolSource = ServicePort['protocolSource'];

/** What protocol selection looks at: a Service port (or any port written the same way). */
export interface PortProtocolInput {
  name?: string;
  port: number;
  /** The L4 protocol: `TCP` (default), `UDP` or `SCTP`. */
  protocol?: string;
  appProtocol?: string;
}

export interface ProtocolDecision {
  protocol: Protocol;
  source: ProtocolSource;
}

const BY_NAME: Readonly<Record<string, Protocol>> = {
  tcp: 'TCP',
  udp: 'UDP',
  grpc: 'GRPC',
  'grpc-web': 'GRPC-Web',
  http: 'HTTP',
  http2: 'HTTP2',
  https: 'HTTPS',
  tls: 'TLS',
  mongo: 'Mongo',
  redis: 'Redis',
  mysql: 'MySQL',
};

/** Kubernetes-defined appProtocol values (ServicePort.appProtocol documentation). */
const KUBERNETES_APP_PROTOCOLS: Readonly<Record<string, Protocol>> = {
  'kubernetes.io/h2c': 'HTTP2',
  'kubernetes.io/ws': 'HTTP',
  'kubernetes.io/wss': 'HTTPS',
};

/** Ports Istio never sniffs: without a declared protocol they are plain TCP. */
export const WELL_KNOWN_TCP_PORTS: ReadonlySet<number> = new Set([25, 53, 3306, 27017]);

/** The protocol a name stands for (Istio `protocol.Parse`, case-insensitive), or undefined. */
export function parseProtocol(name: string): Protocol | undefined {
  return BY_NAME[name.toLowerCase()];
}

/** Every protocol name `parseProtocol` accepts, lower-case. */
export const PROTOCOL_NAMES: readonly string[] = Object.keys(BY_NAME);

/** The prefix-based protocol of a port name or appProtocol value, or undefined. */
function fromName(name: string): Protocol | undefined {
  const lower = name.toLowerCase();
  if (lower.startsWith('grpc-web')) return 'GRPC-Web';
  const dash = lower.indexOf('-');
  return parseProtocol(dash >= 0 ? lower.slice(0, dash) : lower);
}

/** Decides a port's application protocol and says what decided it. */
export function protocolOf(port: PortProtocolInput): ProtocolDecision {
  if ((port.protocol ?? 'TCP').toUpperCase() === 'UDP') return { protocol: 'UDP', source: 'l4' };
  if (port.appProtocol !== undefined) {
    const k8s = KUBERNETES_APP_PROTOCOLS[port.appProtocol];
    if (k8s) return { protocol: k8s, source: 'appProtocol' };
    const p = fromName(port.appProtocol);
    if (p) return { protocol: p, source: 'appProtocol' };
  } else if (port.name) {
    const p = fromName(port.name);
    if (p) return { protocol: p, source: 'name' };
  }
  if (WELL_KNOWN_TCP_PORTS.has(port.port)) return { protocol: 'TCP', source: 'port' };
  return { protocol: 'UNKNOWN', source: 'none' };
}

/** Protocols carried over HTTP (Istio `IsHTTP`): they get HTTP routing, retries, authorization on requests. */
export function isHttpProtocol(p: Protocol): boolean {
  return p === 'HTTP' || p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-Web';
}

/** Protocols that use HTTP/2 toward the upstream (Istio `IsHTTP2`). */
export function isHttp2Protocol(p: Protocol): boolean {
  return p === 'HTTP2' || p === 'GRPC' || p === 'GRPC-Web';
}

/** Protocols proxied as opaque TCP by a sidecar (Istio `IsTCP`, plus the model's Postgres): TLS and HTTPS are not decrypted there. */
export function isTcpProtocol(p: Protocol): boolean {
  return p === 'TCP' || p === 'HTTPS' || p === 'TLS' || p === 'Mongo' || p === 'Redis' || p === 'MySQL' || p === 'Postgres';
}

/** Protocols whose bytes are TLS (Istio `IsTLS`). */
export function isTlsProtocol(p: Protocol): boolean {
  return p === 'HTTPS' || p === 'TLS';
}
