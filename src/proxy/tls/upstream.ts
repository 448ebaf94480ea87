/**
 * How a cluster opens its upstream connections: plaintext TCP, or TLS per its transport socket — chosen per host
 * with `transport_socket_matches` (Envoy's MatchingTransportSocketFactory: the first match whose `match` fields all
 * equal the host's `envoy.transport_socket_match` metadata, else the cluster's transport_socket). Istio's auto mTLS
 * is such a match: endpoints with a sidecar carry `tlsMode: istio` and get ISTIO_MUTUAL, the others plaintext.
 *
 *   const transport = compileUpstreamTransport(cluster, secrets, fail);   // from upstream/cluster/compile.ts
 *   const { socket, event } = transport.connect(host, { alpnFallback: 'h2' });   // event: 'connect' | 'secureConnect'
 *
 * Active health checks connect through the same transport (as Envoy's, which use the cluster's transport socket):
 * the host's health check address, the same TLS context (SNI, client certificate, verification) and session cache.
 *
 * ALPN: the context's alpn_protocols without the other HTTP version's values for HTTP pools (an HTTP/1.1 pool never
 * offers `h2`), else the pool's protocol (`h2` / `http/1.1`), as Envoy's ALPN fallback; TCP offers them all.
 * Handshake failures fail the connection (the pools report 'connection failure' → 503 UF), counted under the
 * cluster's ssl.* stats; a context whose secrets are not there yet fails it the same way (ssl.connection_error).
 * A completed handshake records the upstream peer on the socket (tls/peer.ts setPeer), as the listener does for
 * downstream connections.
 */
import { connect as netConnect, Socket, type OnReadOpts } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { TransportSocket } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { UpstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import { ConfigError } from '../config-error.js';
import type { Host } from '../upstream/cluster/host.js';
import { compileUpstreamTls, peerInfoOf, type ClientTls } from './context.js';
import { setPeer } from './peer.js';
import { NO_SECRETS, type SecretManager } from './secrets.js';
import { TlsStats } from './stats.js';

const TLS_SOCKET = 'envoy.transport_sockets.tls';
const RAW_BUFFER_SOCKET = 'envoy.transport_sockets.raw_buffer';
const RAW_BUFFER_TYPE = 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';
/** The endpoint metadata namespace transport_socket_matches read. */
export const TRANSPORT_SOCKET_MATCH = 'envoy.transport_socket_match';

export interface ConnectOptions {
  /** ALPN when the TLS context configures none: `h2` for HTTP/2 pools, `http/1.1` for HTTP/1.1. */
  alpnFallback?: string;
  /** Another address / port of the host (its health check address); default the host's own. */
  address?: string;
  port?: number;
  allowHalfOpen?: boolean;
  onread?: OnReadOpts;
}

interface SocketMatch {
  readonly name: string;
  readonly match: Readonly<Record<string, unknown>>;
  readonly tls: ClientTls | undefined;
}

export class UpstreamTransport {
  /** The cluster's `ssl.*` stats (listed under `cluster.<name>.`). */
  readonly stats = new TlsStats();

  constructor(
    readonly tls: ClientTls | undefined,
    private readonly matches: readonly SocketMatch[],
  ) {}

  /** No TLS anywhere: every connection is plaintext. */
  get plaintext(): boolean {
    return this.tls === undefined && this.matches.every((m) => m.tls === undefined);
  }

  /** The SDS names the contexts read. */
  sdsNames(): string[] {
    const out = this.tls?.sdsNames() ?? [];
    for (const m of this.matches) if (m.tls !== undefined) out.push(...m.tls.sdsNames());
    return out;
  }

  /** The TLS context for a host (undefined: plaintext). */
  forHost(host: Host): ClientTls | undefined {
    if (this.matches.length === 0) return this.tls;
    const md = host.metadata?.filterMetadata[TRANSPORT_SOCKET_MATCH] as Record<string, unknown> | undefined;
    for (const m of this.matches) {
      let ok = true;
      for (const k in m.match) {
        if (md === undefined || !sameJson(md[k], m.match[k])) {
          ok = false;
          break;
        }
      }
      if (ok) return m.tls;
    }
    return this.tls;
  }

  /** Opens a connection to a host; `event` is the event that says it is ready. */
  connect(host: Host, opts: ConnectOptions): { socket: Socket; event: 'connect' | 'secureConnect'; tls: boolean } {
    const tls = this.forHost(host);
    const address = opts.address ?? host.address;
    const port = opts.port ?? host.port;
    if (tls === undefined) {
      const socket = netConnect({ host: address, port, noDelay: true, allowHalfOpen: opts.allowHalfOpen, onread: opts.onread });
      return { socket, event: 'connect', tls: false };
    }
    const stats = this.stats;
    const copts = tls.connectOptions(host.key);
    if (copts === undefined) {
      // The certificate or trust bundle has not arrived yet (SDS): the connection fails.
      stats.connection_error++;
      const socket = new Socket();
      process.nextTick(() => socket.destroy(new Error('upstream TLS secrets are not available yet')));
      return { socket, event: 'secureConnect', tls: true };
    }
    if (opts.alpnFallback !== undefined) copts.ALPNProtocols = poolAlpn(tls.alpn, opts.alpnFallback);
    // tls.connect takes onread and allowHalfOpen as net.connect does (not in @types/node's ConnectionOptions).
    const extra = { onread: opts.onread, allowHalfOpen: opts.allowHalfOpen } as object;
    const s: TLSSocket = tlsConnect({ ...copts, host: address, port, ...extra });
    s.setNoDelay(true);
    let secure = false;
    s.once('secureConnect', () => {
      secure = true;
      // Who the upstream is (its verified SAN) and what this proxy showed, once per connection: the client side's
      // metrics labels read it with peerOf(socket) (stats/istio).
      setPeer(s, peerInfoOf(s, tls.sni));
      stats.handshake++;
      if (s.isSessionReused()) stats.session_reused++;
    });
    s.on('session', (session: Buffer) => tls.saveSession(host.key, session));
    s.once('error', (e: NodeJS.ErrnoException) => {
      if (secure) return;
      const c = e.code ?? '';
      if (c === 'fail_verify_san' || c === 'fail_verify_cert_hash') stats[c]++;
      else if (c.startsWith('CERT_') || c.startsWith('UNABLE_TO_') || c.endsWith('_SIGNATURE_FAILURE') || c === 'DEPTH_ZERO_SELF_SIGNED_CERT' || c === 'SELF_SIGNED_CERT_IN_CHAIN') stats.fail_verify_error++;
      else stats.connection_error++;
    });
    return { socket: s, event: 'secureConnect', tls: true };
  }
}

const OTHER_VERSION: Record<string, readonly string[]> = {
  'http/1.1': ['h2', 'istio-h2'],
  h2: ['http/1.1', 'http/1.0', 'istio-http/1.1', 'istio-http/1.0'],
};
const POOL_ALPN = new WeakMap<readonly string[], Map<string, string[]>>();

/**
 * The ALPN an HTTP pool offers: the context's values without those of the other HTTP version (a pool speaks one;
 * what Istio's ALPN override filter does per upstream protocol), else the pool's protocol (Envoy's ALPN fallback).
 */
function poolAlpn(configured: readonly string[], pool: string): string[] {
  let m = POOL_ALPN.get(configured);
  if (m === undefined) POOL_ALPN.set(configured, (m = new Map()));
  let out = m.get(pool);
  if (out === undefined) {
    const drop = OTHER_VERSION[pool] ?? [];
    out = configured.filter((p) => !drop.includes(p));
    if (out.length === 0) out = [pool];
    m.set(pool, out);
  }
  return out;
}

/** Plaintext for every host (clusters without a transport socket). */
export const PLAINTEXT_TRANSPORT = new UpstreamTransport(undefined, []);

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  return JSON.stringify(a) === JSON.stringify(b);
}

/**
 * The transport of a cluster: its transport_socket and transport_socket_matches (TLS or raw_buffer). Without a
 * SecretManager, SDS names never resolve (their connections fail) while inline certificates work.
 */
export function compileUpstreamTransport(c: Cluster, secrets: SecretManager | undefined): UpstreamTransport {
  const name = c.name;
  const tls = c.transportSocket ? transportSocket(c.transportSocket, 'transport_socket', name, secrets) : undefined;
  const matches = c.transportSocketMatches.map((m, i): SocketMatch => {
    const f = `transport_socket_matches[${i}]`;
    const match = (m.match ?? {}) as Record<string, unknown>;
    return { name: m.name, match, tls: m.transportSocket ? transportSocket(m.transportSocket, `${f}.transport_socket`, name, secrets) : undefined };
  });
  if (tls === undefined && matches.every((m) => m.tls === undefined)) return PLAINTEXT_TRANSPORT;
  return new UpstreamTransport(tls, matches);
}

function transportSocket(ts: TransportSocket, field: string, name: string, secrets: SecretManager | undefined): ClientTls | undefined {
  const any = ts.configType.case === 'typedConfig' ? ts.configType.value : undefined;
  const type = any ? typeNameOf(any.typeUrl) : undefined;
  if (type === UpstreamTlsContextSchema.typeName || (!any && ts.name === TLS_SOCKET)) {
    if (!any) throw new ConfigError(name, `${field}.typed_config`, 'the TLS transport socket needs an UpstreamTlsContext', 'cluster');
    let ctx;
    try {
      ctx = unpack(UpstreamTlsContextSchema, any);
    } catch (e) {
      throw new ConfigError(name, `${field}.typed_config`, `cannot decode UpstreamTlsContext: ${(e as Error).message}`, 'cluster');
    }
    return compileUpstreamTls(ctx, secrets ?? NO_SECRETS, (f, d) => {
      throw new ConfigError(name, `${field}.typed_config.${f}`, d, 'cluster');
    });
  }
  if (type === RAW_BUFFER_TYPE || (!any && ts.name === RAW_BUFFER_SOCKET)) return undefined;
  throw new ConfigError(name, field, `transport socket ${JSON.stringify(ts.name || type)} is not supported (only TLS and raw_buffer)`, 'cluster');
}
