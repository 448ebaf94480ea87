/**
 * Listeners from LDS `Listener` resources, and the manager that binds, updates and drains them.
 *
 *   const compiled = compileListener(listenerProto, ctx);   // throws ConfigError (kind `listener`) → NACK
 *   await manager.apply(compiled);                          // bind, or swap in place; old connections drain
 *   manager.remove(name); await manager.close(drainMs);
 *
 * Supported now: a socket_address (TCP) with a port value, and filter chains (plus an optional
 * default_filter_chain) whose only network filter is either the HTTP connection manager (http/server/hcm.ts), with
 * RDS or an inline route_config, or the TCP proxy (tcp/: each accepted connection runs a TcpProxySession). A chain's
 * transport_socket may be TLS (a DownstreamTlsContext, tls/context.ts: the handshake runs before the network filter,
 * the peer is recorded with tls/peer.ts setPeer) or raw_buffer. Listener filters:
 * envoy.filters.listener.tls_inspector (tls-inspector.ts) and envoy.filters.listener.http_inspector
 * (http-inspector.ts; skipped on TLS connections, as Envoy's), both reading the first bytes without consuming
 * them, bounded by listener_filters_timeout (Envoy's default 15 s) and continue_on_listener_filters_timeout.
 * Before the terminal filter a chain may have network RBAC and ext_authz filters (authz/network.ts): they run in
 * order on each accepted connection (after the TLS handshake, so they see the peer's identity), and a refused
 * connection is closed before the terminal filter sees it.
 *
 * Filter chain matching (Envoy's FilterChainManagerImpl): each connection gets the chain whose filter_chain_match
 * is the most specific at each criterion in Envoy's order — destination_port (the port the connection reached),
 * server_names (the ClientHello's SNI: an exact name beats the longest `*.suffix` wildcard), transport_protocol
 * (`tls` when the TLS inspector saw a ClientHello, else `raw_buffer`), application_protocols (the ClientHello's
 * ALPN list, or what the HTTP inspector found: `http/1.0`, `http/1.1`, `h2c`, or nothing) — where a chain naming
 * the connection's value beats a chain that leaves the criterion empty, and a chain naming other values is out. No
 * chain left → the default_filter_chain, else the connection is closed (no_filter_chain_match). Two chains with the
 * same match are a ConfigError, as are the criteria that need what Weft does not have (prefix_ranges, source_*
 * criteria, address_suffix). Other transport sockets and api_listeners are ConfigErrors naming the field (the
 * other listeners of the same update still apply, as Envoy applies the valid listeners of an LDS response).
 *
 * Transparent capture (Envoy semantics): `bind_to_port: false` listeners are not bound and take connections only
 * by hand-off; `use_original_dst: true` (which implies the original_dst listener filter) reads the original
 * destination of each connection (SO_ORIGINAL_DST, original-dst.ts), runs its own listener filters, then hands the
 * connection to the listener on that exact address, else on 0.0.0.0 with that port, else serves it with its own
 * chains; the listener that takes the connection runs its listener filters (the HTTP inspector) in turn. The
 * original_dst listener filter alone restores the destination without hand-off. The restored destination is the
 * one destination_port matches and ORIGINAL_DST clusters connect to.
 *
 * Updates (Envoy's listener manager, simplified for one process): a listener whose address is unchanged keeps its
 * socket and takes the new filter chain for new connections, while its existing connections drain — each closes
 * after the exchange in progress (`connection: close`), idle ones at once, and any left after the drain timeout
 * are closed. A listener whose address changed binds the new address first, then stops accepting on the old one
 * and drains its connections. A removed listener stops accepting and drains. TCP proxy connections cannot be
 * asked to finish: draining ones run until they end or the drain timeout closes them.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { TrafficDirection } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import { ConfigError } from '../config-error.js';
import { serveHttp } from '../http/server/serve.js';
import { compileHcm, type HcmContext, type HttpConnectionManagerImpl } from '../http/server/hcm.js';
import { TcpProxySchema } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { compileTcpProxy, TcpProxySession, type TcpProxyConfig, type TcpProxyStats } from '../tcp/index.js';
import type { ListenerStats } from '../stats/request-stats.js';
import type { FilterChain, FilterChainMatch } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { HttpInspectorSchema } from '../../xds/gen/envoy/extensions/filters/listener/http_inspector/v3/http_inspector_pb.js';
import { durationMs } from '../upstream/cluster/compile.js';
import { inspectHttp, peekSocket } from './http-inspector.js';
import { inspectTls, type ClientHelloInfo } from './tls-inspector.js';
import { TlsInspectorSchema } from '../../xds/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
import { DownstreamTlsContextSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { compileDownstreamTls, type ServerTls } from '../tls/context.js';
import { NO_SECRETS, type SecretManager } from '../tls/secrets.js';
import { TlsStats } from '../tls/stats.js';
import type { TLSSocket } from 'node:tls';
import { originalDstSupport, readOriginalDst, tagOriginalDst, type OriginalDst } from './original-dst.js';
import { ownPorts } from './own-ports.js';
import { compileNetworkGuard, NETWORK_EXT_AUTHZ_FILTER, NETWORK_RBAC_FILTER, type NetworkGuard } from '../authz/network.js';
import type { Scope } from '../stats/store.js';

const HCM_NAME = 'envoy.filters.network.http_connection_manager';
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_NAME = 'envoy.filters.network.tcp_proxy';
const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const HTTP_INSPECTOR_NAME = 'envoy.filters.listener.http_inspector';
const HTTP_INSPECTOR_TYPE = 'envoy.extensions.filters.listener.http_inspector.v3.HttpInspector';
const ORIGINAL_DST_NAME = 'envoy.filters.listener.original_dst';
const ORIGINAL_DST_TYPE = 'envoy.extensions.filters.listener.original_dst.v3.OriginalDst';
const TLS_INSPECTOR_NAME = 'envoy.filters.listener.tls_inspector';
const TLS_INSPECTOR_TYPE = 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';
const TLS_SOCKET_NAME = 'envoy.transport_sockets.tls';
const RAW_BUFFER_TYPE = 'envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';
/** Envoy's listener_filters_timeout default. */
export const DEFAULT_LISTENER_FILTERS_TIMEOUT_MS = 15_000;

/** What a filter chain matches on (empty / 0: any). */
export interface ChainMatch {
  destinationPort: number;
  serverNames: readonly string[];
  transportProtocol: string;
  applicationProtocols: readonly string[];
}

/**
 * One filter chain: its match, its transport socket (TLS termination, or undefined for plaintext) and its network
 * filter (the HTTP connection manager or the TCP proxy).
 */
export class CompiledChain {
  constructor(
    readonly name: string,
    readonly match: ChainMatch,
    readonly hcm: HttpConnectionManagerImpl | undefined,
    readonly tcpProxy: TcpProxyConfig | undefined,
    readonly tls: ServerTls | undefined = undefined,
    /** Network filters before the terminal one that admit or refuse the connection (RBAC, ext_authz). */
    readonly guards: readonly NetworkGuard[] = [],
  ) {}
}

/** What the listener filters found about a connection (Envoy keeps it on the connection socket). */
export interface ConnectionFacts {
  /** `tls` (TLS inspector saw a ClientHello) or `raw_buffer`. */
  transport: string;
  /** SNI ('' without TLS or without the extension). */
  sni: string;
  /** Requested application protocols: the ClientHello's ALPN list, or what the HTTP inspector found. */
  protocols: readonly string[];
}

/** A ClientHello that could not be read: the handshake goes on and decides (no SNI, no ALPN). */
const PLAIN_HELLO = Object.freeze({ sni: '', alpn: [] as string[] });
const PLAIN: ConnectionFacts = Object.freeze({ transport: 'raw_buffer', sni: '', protocols: Object.freeze([]) as readonly string[] });
const HTTP_FACTS = new Map<string, ConnectionFacts>();
/** The facts of a plaintext connection whose HTTP inspector found `protocol` (shared objects: no allocation). */
function plainFacts(protocol: string): ConnectionFacts {
  if (protocol === '') return PLAIN;
  let f = HTTP_FACTS.get(protocol);
  if (f === undefined) HTTP_FACTS.set(protocol, (f = Object.freeze({ transport: 'raw_buffer', sni: '', protocols: Object.freeze([protocol]) })));
  return f;
}

const ANY_MATCH: ChainMatch = { destinationPort: 0, serverNames: [], transportProtocol: '', applicationProtocols: [] };

export interface ListenerOptions {
  /** bind_to_port (default true): false listeners take connections only by hand-off (use_original_dst). */
  bindToPort: boolean;
  /** use_original_dst: hand redirected connections to the listener of their original destination. */
  useOriginalDst: boolean;
  /** Whether the original destination is restored on accept (use_original_dst or the original_dst listener filter). */
  restoresDestination: boolean;
  /** The TLS inspector runs on each connection (before the HTTP inspector, which it skips for TLS). */
  inspectTls?: boolean;
}

const DEFAULT_OPTIONS: ListenerOptions = { bindToPort: true, useOriginalDst: false, restoresDestination: false };

export class CompiledListener {
  constructor(
    readonly name: string,
    readonly address: string,
    readonly port: number,
    readonly chains: readonly CompiledChain[],
    readonly defaultChain: CompiledChain | undefined = undefined,
    /** The HTTP inspector runs on each connection before the chain is chosen. */
    readonly inspectHttp = false,
    readonly filtersTimeoutMs = DEFAULT_LISTENER_FILTERS_TIMEOUT_MS,
    readonly continueOnFiltersTimeout = false,
    readonly options: ListenerOptions = DEFAULT_OPTIONS,
    /** `listener.<..>.ssl.*` (shared by the listener's TLS chains). */
    readonly tlsStats: TlsStats = new TlsStats(),
  ) {}

  get key(): string {
    return `${this.address}:${this.port}`;
  }

  /** The HTTP connection manager of a listener with one chain (undefined otherwise). */
  get hcm(): HttpConnectionManagerImpl | undefined {
    return this.chains.length === 1 && this.defaultChain === undefined ? this.chains[0]!.hcm : undefined;
  }

  /** The TCP proxy of a listener with one chain (undefined otherwise). */
  get tcpProxy(): TcpProxyConfig | undefined {
    return this.chains.length === 1 && this.defaultChain === undefined ? this.chains[0]!.tcpProxy : undefined;
  }

  /** The RDS route configuration names this listener's connection managers read. */
  get rdsNames(): string[] {
    const out: string[] = [];
    for (const c of this.defaultChain ? [...this.chains, this.defaultChain] : this.chains) if (c.hcm && c.hcm.rdsName !== '' && !out.includes(c.hcm.rdsName)) out.push(c.hcm.rdsName);
    return out;
  }

  /** The RDS route configuration name of the first connection manager ('' for none). */
  get rdsName(): string {
    return this.rdsNames[0] ?? '';
  }

  /**
   * Envoy's filter chain selection for a connection (see the module comment); undefined: no chain.
   * `protocols`: the requested application protocols (one from the HTTP inspector, the ALPN list from the TLS
   * inspector); `transport`: `tls` or `raw_buffer`; `sni`: the ClientHello's server name.
   */
  select(destinationPort: number, protocols: string | readonly string[], transport = 'raw_buffer', sni = ''): CompiledChain | undefined {
    let cands: readonly CompiledChain[] = this.chains;
    if (cands.length > 1 || cands[0]?.match !== ANY_MATCH) {
      const protos = typeof protocols === 'string' ? (protocols === '' ? [] : [protocols]) : protocols;
      cands = narrow(cands, (m) => (m.destinationPort === 0 ? 0 : m.destinationPort === destinationPort ? 1 : -1));
      cands = narrow(cands, (m) => serverNameScore(m.serverNames, sni));
      cands = narrow(cands, (m) => (m.transportProtocol === '' ? 0 : m.transportProtocol === transport ? 1 : -1));
      cands = narrow(cands, (m) => (m.applicationProtocols.length === 0 ? 0 : protos.some((p) => m.applicationProtocols.includes(p)) ? 1 : -1));
    }
    return cands[0] ?? this.defaultChain;
  }
}

/**
 * server_names: an exact name beats the longest matching wildcard (`*.example.com`, also matching deeper names), which
 * beats a chain without server_names; a chain naming others is out.
 */
function serverNameScore(names: readonly string[], sni: string): number {
  if (names.length === 0) return 0;
  if (sni === '') return -1;
  let best = -1;
  for (const n of names) {
    if (n === sni) return 100_000;
    if (n.startsWith('*.') && sni.endsWith(n.slice(1)) && sni.length > n.length - 1 && n.length > best) best = n.length;
  }
  return best;
}

/** Keeps the chains with the best score at a criterion (> 0: named explicitly), else those that leave it open (0). */
function narrow(chains: readonly CompiledChain[], score: (m: ChainMatch) => number): readonly CompiledChain[] {
  let best: CompiledChain[] | undefined;
  let bestScore = 0;
  let open: CompiledChain[] | undefined;
  for (const c of chains) {
    const s = score(c.match);
    if (s > bestScore) {
      best = [c];
      bestScore = s;
    } else if (s > 0 && s === bestScore) best!.push(c);
    else if (s === 0) (open ??= []).push(c);
  }
  return best ?? open ?? [];
}

export type ListenerContext = Omit<HcmContext, 'listener' | 'field'> & {
  /** Uniform [0, 1) numbers for tcp_proxy weighted cluster choice (default Math.random). */
  random?: () => number;
  /** The TCP proxy stats of a stat_prefix, shared across listener updates (default: new ones per listener). */
  tcpStats?(statPrefix: string): TcpProxyStats;
  /** Called when a TCP proxy session has closed (flags, cluster, host, attempts: the access log's input). */
  tcpSessionClosed?(session: TcpProxySession): void;
  /** The listener's `listener.<address>.` stats for its TCP proxies' connections (HTTP ones count them through httpStats). */
  listenerStats?(): ListenerStats;
  /** A stats scope for a network filter's prefix (`tcp.rbac.`), kept while the listener is (absent: no stats). */
  networkStats?(prefix: string): Scope;
  /** TLS secrets for the chains' transport sockets (without it only inline certificates resolve). */
  secrets?: SecretManager;
  /** Registers the listener's `ssl.*` stats (under `listener.<..>.`), once per compiled listener that has TLS chains. */
  tlsStats?(stats: TlsStats): void;
};

/** A connection a listener holds: HTTP server connection (http/server/serve.ts) or TCP proxy session. */
interface ServerConnection {
  readonly socket: Socket;
  drain(): void;
}

export function compileListener(l: Listener, lctx: ListenerContext): CompiledListener {
  const name = l.name;
  // Spans are CLIENT or SERVER spans by the listener's traffic direction (tracing/tracer.ts).
  const direction = l.trafficDirection === TrafficDirection.OUTBOUND ? 'OUTBOUND' : l.trafficDirection === TrafficDirection.INBOUND ? 'INBOUND' : 'UNSPECIFIED';
  const ctx: ListenerContext = lctx.telemetry !== undefined ? { ...lctx, telemetry: { ...lctx.telemetry, direction } } : lctx;
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(name, field, detail, 'listener');
  };
  if (!name) fail('name', 'must not be empty');
  if (l.apiListener) fail('api_listener', 'api listeners are for proxyless clients; weft proxy does not serve them');
  const a = l.address?.address;
  if (a?.case !== 'socketAddress') fail('address', a?.case ? `${a.case} addresses are not supported` : 'a socket_address is required');
  const sa = a!.value as { address: string; portSpecifier: { case: string | undefined; value?: unknown }; protocol: number };
  if (sa.protocol !== 0) fail('address.socket_address.protocol', 'only TCP listeners are supported');
  if (sa.portSpecifier.case !== 'portValue') fail('address.socket_address.port_specifier', 'a port_value is required');
  const port = sa.portSpecifier.value as number;
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail('address.socket_address.port_value', `invalid port ${port}`);
  const useOriginalDst = l.useOriginalDst === true;
  // Envoy adds the original_dst listener filter itself when use_original_dst is set (ListenerImpl).
  let restoresDestination = useOriginalDst;
  let inspectHttp = false;
  let inspectTlsFilter = false;
  l.listenerFilters.forEach((f, i) => {
    const type = f.configType.case === 'typedConfig' ? typeNameOf(f.configType.value.typeUrl) : undefined;
    if (f.name === ORIGINAL_DST_NAME || type === ORIGINAL_DST_TYPE) {
      if (type !== undefined && type !== ORIGINAL_DST_TYPE) fail(`listener_filters[${i}].typed_config`, `expected ${ORIGINAL_DST_TYPE}, got ${type}`);
      if (f.filterDisabled) fail(`listener_filters[${i}].filter_disabled`, 'is not supported');
      restoresDestination = true;
      return;
    }
    if (f.name === HTTP_INSPECTOR_NAME || type === HTTP_INSPECTOR_TYPE) {
      if (type !== undefined && type !== HTTP_INSPECTOR_TYPE) fail(`listener_filters[${i}].typed_config`, `expected ${HTTP_INSPECTOR_TYPE}, got ${type}`);
      if (f.configType.case === 'typedConfig') {
        try {
          unpack(HttpInspectorSchema, f.configType.value);
        } catch (e) {
          fail(`listener_filters[${i}].typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
        }
      }
      if (f.filterDisabled) fail(`listener_filters[${i}].filter_disabled`, 'is not supported');
      inspectHttp = true;
      return;
    }
    if (f.name === TLS_INSPECTOR_NAME || type === TLS_INSPECTOR_TYPE) {
      if (type !== undefined && type !== TLS_INSPECTOR_TYPE) fail(`listener_filters[${i}].typed_config`, `expected ${TLS_INSPECTOR_TYPE}, got ${type}`);
      if (f.configType.case === 'typedConfig') {
        let ti;
        try {
          ti = unpack(TlsInspectorSchema, f.configType.value);
        } catch (e) {
          fail(`listener_filters[${i}].typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
        }
        if (ti?.enableJa3Fingerprinting) fail(`listener_filters[${i}].typed_config.enable_ja3_fingerprinting`, 'is not supported');
      }
      if (f.filterDisabled) fail(`listener_filters[${i}].filter_disabled`, 'is not supported');
      inspectTlsFilter = true;
      return;
    }
    fail(`listener_filters[${i}]`, `listener filter ${f.name || type} is not supported (only ${ORIGINAL_DST_NAME}, ${TLS_INSPECTOR_NAME} and ${HTTP_INSPECTOR_NAME})`);
  });
  if (restoresDestination) {
    const why = originalDstSupport();
    if (why !== undefined) fail(useOriginalDst ? 'use_original_dst' : 'listener_filters', `the original destination cannot be read: ${why}`);
  }
  if (l.filterChains.length === 0 && !l.defaultFilterChain) fail('filter_chains', 'at least one filter chain (or a default_filter_chain) is required');
  if (l.filterChainMatcher) fail('filter_chain_matcher', 'is not supported (use filter_chain_match)');
  const chains = l.filterChains.map((c, i) => compileChain(c, `filter_chains[${i}]`, name, ctx, fail));
  for (let i = 0; i < chains.length; i++) {
    for (let j = 0; j < i; j++) {
      if (sameMatch(chains[i]!.match, chains[j]!.match)) fail(`filter_chains[${i}].filter_chain_match`, `multiple filter chains with the same matching rules (filter_chains[${j}] and filter_chains[${i}])`);
    }
  }
  const def = l.defaultFilterChain ? compileChain(l.defaultFilterChain, 'default_filter_chain', name, ctx, fail) : undefined;
  if (def && def.match !== ANY_MATCH) fail('default_filter_chain.filter_chain_match', 'must be empty');
  const tlsStats = new TlsStats();
  if (chains.some((c) => c.tls !== undefined) || def?.tls !== undefined) ctx.tlsStats?.(tlsStats);
  return new CompiledListener(
    name,
    sa.address || '0.0.0.0',
    port,
    chains,
    def,
    inspectHttp,
    durationMs(l.listenerFiltersTimeout, DEFAULT_LISTENER_FILTERS_TIMEOUT_MS),
    l.continueOnListenerFiltersTimeout,
    { bindToPort: l.bindToPort ?? true, useOriginalDst, restoresDestination, inspectTls: inspectTlsFilter },
    tlsStats,
  );
}

function sameMatch(a: ChainMatch, b: ChainMatch): boolean {
  const set = (x: readonly string[]) => [...x].sort().join('\n');
  return a.destinationPort === b.destinationPort && a.transportProtocol === b.transportProtocol && set(a.serverNames) === set(b.serverNames) && set(a.applicationProtocols) === set(b.applicationProtocols);
}

function compileMatch(m: FilterChainMatch | undefined, field: string, fail: (field: string, detail: string) => never): ChainMatch {
  if (m === undefined) return ANY_MATCH;
  const f = `${field}.filter_chain_match`;
  if (m.prefixRanges.length > 0) fail(`${f}.prefix_ranges`, 'is not supported');
  if (m.addressSuffix !== '' || m.suffixLen !== undefined) fail(`${f}.address_suffix`, 'is not supported');
  if (m.directSourcePrefixRanges.length > 0) fail(`${f}.direct_source_prefix_ranges`, 'is not supported');
  if (m.sourceType !== 0) fail(`${f}.source_type`, 'is not supported');
  if (m.sourcePrefixRanges.length > 0) fail(`${f}.source_prefix_ranges`, 'is not supported');
  if (m.sourcePorts.length > 0) fail(`${f}.source_ports`, 'is not supported');
  const port = m.destinationPort ?? 0;
  if (port < 0 || port > 65535) fail(`${f}.destination_port`, `invalid port ${port}`);
  if (m.destinationPort === undefined && m.serverNames.length === 0 && m.transportProtocol === '' && m.applicationProtocols.length === 0) return ANY_MATCH;
  m.serverNames.forEach((n, i) => {
    if (n === '' || (n.includes('*') && !(n.startsWith('*.') && n.indexOf('*', 1) < 0))) fail(`${f}.server_names[${i}]`, `invalid server name ${JSON.stringify(n)} (an exact name or *.suffix)`);
  });
  return { destinationPort: port, serverNames: m.serverNames.map((n) => n.toLowerCase()), transportProtocol: m.transportProtocol, applicationProtocols: m.applicationProtocols };
}

function compileChain(chain: FilterChain, field: string, name: string, ctx: ListenerContext, fail: (field: string, detail: string) => never): CompiledChain {
  const match = compileMatch(chain.filterChainMatch, field, fail);
  const tls = chain.transportSocket ? compileTransportSocket(chain, field, ctx, fail) : undefined;
  if (chain.filters.length === 0) fail(`${field}.filters`, 'a terminal network filter (the HTTP connection manager or the TCP proxy) is required');
  // Network filters before the terminal one: only those that admit or refuse connections (authz/network.ts).
  const guards: NetworkGuard[] = [];
  const last = chain.filters.length - 1;
  for (let i = 0; i < last; i++) {
    const g = compileNetworkGuard(chain.filters[i]!, `${field}.filters[${i}]`, { listener: name, cluster: (n) => ctx.cluster(n)?.runtime, warn: ctx.warn, ...(ctx.networkStats ? { stats: ctx.networkStats } : {}) });
    if (g === undefined) {
      const gf = chain.filters[i]!;
      const t = gf.configType.case === 'typedConfig' ? typeNameOf((gf.configType.value as Any).typeUrl) : '';
      fail(`${field}.filters[${i}]`, `network filter ${gf.name || t} is not supported before the terminal filter (only ${NETWORK_RBAC_FILTER} and ${NETWORK_EXT_AUTHZ_FILTER})`);
    }
    guards.push(g!);
  }
  const f = chain.filters[last]!;
  const ff = `${field}.filters[${last}]`;
  if (f.configType.case !== 'typedConfig') fail(`${ff}.typed_config`, 'is required');
  const typed = f.configType.value as Any;
  const type = typeNameOf(typed.typeUrl);
  if (type === TCP_PROXY_TYPE) {
    let tp;
    try {
      tp = unpack(TcpProxySchema, typed);
    } catch (e) {
      return fail(`${ff}.typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
    }
    const tcp = compileTcpProxy(tp, {
      listener: name,
      field: `${ff}.typed_config`,
      cluster: (n) => ctx.cluster(n)?.runtime,
      warn: ctx.warn,
      random: ctx.random,
      stats: ctx.tcpStats,
      onSessionClose: ctx.tcpSessionClosed,
      listenerStats: ctx.listenerStats,
    });
    return new CompiledChain(chain.name, match, undefined, tcp, tls, guards);
  }
  if (type !== HCM_TYPE) fail(`${ff}.typed_config`, `network filter ${f.name || type} is not supported yet (only ${HCM_NAME} and ${TCP_PROXY_NAME})`);
  let proto;
  try {
    proto = unpack(HttpConnectionManagerSchema, typed);
  } catch (e) {
    return fail(`${ff}.typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
  }
  const hcm = compileHcm(proto, { ...ctx, listener: name, field: `${ff}.typed_config` });
  return new CompiledChain(chain.name, match, hcm, undefined, tls, guards);
}

/** A filter chain's transport_socket: a DownstreamTlsContext (TLS termination) or raw_buffer (undefined). */
function compileTransportSocket(chain: FilterChain, field: string, ctx: ListenerContext, fail: (field: string, detail: string) => never): ServerTls | undefined {
  const ts = chain.transportSocket!;
  const f = `${field}.transport_socket`;
  const any = ts.configType.case === 'typedConfig' ? ts.configType.value : undefined;
  const type = any ? typeNameOf(any.typeUrl) : undefined;
  if (type === RAW_BUFFER_TYPE || (any === undefined && ts.name === 'envoy.transport_sockets.raw_buffer')) return undefined;
  if (type !== DownstreamTlsContextSchema.typeName) {
    return fail(f, any === undefined && ts.name === TLS_SOCKET_NAME ? 'the TLS transport socket needs a DownstreamTlsContext' : `transport socket ${JSON.stringify(ts.name || type)} is not supported (only TLS and raw_buffer)`);
  }
  let dtc;
  try {
    dtc = unpack(DownstreamTlsContextSchema, any!);
  } catch (e) {
    return fail(`${f}.typed_config`, `cannot decode DownstreamTlsContext: ${e instanceof Error ? e.message : String(e)}`);
  }
  const tls = compileDownstreamTls(dtc, ctx.secrets ?? NO_SECRETS, (g, d) => fail(`${f}.typed_config.${g}`, d));
  if (chain.transportSocketConnectTimeout !== undefined) tls.handshakeTimeoutMs = durationMs(chain.transportSocketConnectTimeout, tls.handshakeTimeoutMs);
  return tls;
}

interface ActiveListener {
  config: CompiledListener;
  /** undefined for a bind_to_port false listener. */
  server: Server | undefined;
  /** The port actually bound (differs from config.port when it is 0; the configured port when not bound). */
  port: number;
  connections: Set<ServerConnection>;
}

export class ListenerManager {
  private readonly active = new Map<string, ActiveListener>();
  /** Listeners by `address:port` (bound or not), for the hand-off of use_original_dst listeners. */
  private readonly byAddress = new Map<string, ActiveListener>();
  private readonly draining = new Set<ServerConnection>();
  private closed = false;

  constructor(private readonly drainTimeoutMs = 5000) {}

  names(): string[] {
    return [...this.active.keys()];
  }

  /** The SDS names the TLS chains of the listeners in force read. */
  sdsNames(): string[] {
    const out: string[] = [];
    for (const l of this.active.values()) {
      for (const c of l.config.defaultChain ? [...l.config.chains, l.config.defaultChain] : l.config.chains) if (c.tls !== undefined) out.push(...c.tls.sdsNames());
    }
    return out;
  }

  /** The port a listener is bound to (its configured port when it is not bound). */
  port(name: string): number | undefined {
    return this.active.get(name)?.port;
  }

  /** Binds a new listener or updates one. Rejects with ConfigError when the address cannot be bound. */
  async apply(config: CompiledListener): Promise<void> {
    if (this.closed) return;
    const old = this.active.get(config.name);
    if (old !== undefined && old.config.key === config.key && old.config.options.bindToPort === config.options.bindToPort) {
      const previous = old.config;
      old.config = config;
      if (previous !== config) this.drainConnections(old.connections);
      return;
    }
    const entry: ActiveListener = { config, server: undefined, port: config.port, connections: new Set() };
    if (config.options.bindToPort) {
      const server = createServer({ noDelay: true }, (socket) => this.accept(entry, socket));
      entry.server = server;
      await new Promise<void>((resolve, reject) => {
        const onError = (e: NodeJS.ErrnoException) => {
          reject(new ConfigError(config.name, 'address', `cannot listen on ${config.key}: ${e.code ?? e.message}`, 'listener'));
        };
        server.once('error', onError);
        server.listen({ host: config.address, port: config.port }, () => {
          server.off('error', onError);
          resolve();
        });
      });
      const addr = server.address();
      const port = typeof addr === 'object' && addr !== null ? addr.port : config.port;
      entry.port = port;
      ownPorts.add(port);
      server.once('close', () => ownPorts.delete(port));
    }
    this.active.set(config.name, entry);
    if (old !== undefined) this.retire(old);
    this.byAddress.set(config.key, entry);
  }

  remove(name: string): void {
    const old = this.active.get(name);
    if (old === undefined) return;
    this.active.delete(name);
    this.retire(old);
  }

  /** Stops accepting everywhere and drains every connection; resolves when all are closed (or forced). */
  async close(drainTimeoutMs = this.drainTimeoutMs): Promise<void> {
    this.closed = true;
    const all: ServerConnection[] = [...this.draining];
    for (const l of this.active.values()) {
      l.server?.close();
      for (const c of l.connections) all.push(c);
    }
    this.active.clear();
    this.byAddress.clear();
    await drainAll(all, drainTimeoutMs);
  }

  /**
   * A new connection. A listener that restores the original destination (use_original_dst or the original_dst
   * listener filter) reads it first: from then on it is the connection's destination, for destination_port
   * matching and ORIGINAL_DST clusters (Envoy's OriginalDstFilter restores the local address). Then the
   * listener's own listener filters run (listenerFilters).
   */
  private accept(entry: ActiveListener, socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    let dst: OriginalDst | undefined;
    if (entry.config.options.restoresDestination) {
      dst = readOriginalDst(socket);
      if (dst !== undefined) tagOriginalDst(socket, dst);
    }
    this.listenerFilters(entry, socket, dst, PLAIN, false);
  }

  /**
   * Runs a listener's listener filters — the TLS inspector (ClientHello: transport protocol `tls`, SNI, ALPN) and
   * the HTTP inspector (skipped for TLS, as Envoy's), which read the first bytes without consuming them; the
   * connection counts as held by the listener meanwhile — then hands the connection off or serves it.
   * `facts` is what an earlier listener's filters found (it stays with the connection, as Envoy keeps the requested
   * application protocols on the socket); this listener's inspectors, if any, decide anew.
   */
  private listenerFilters(entry: ActiveListener, socket: Socket, dst: OriginalDst | undefined, facts: ConnectionFacts, handedOff: boolean): void {
    const config = entry.config;
    const tls = config.options.inspectTls === true;
    if (!config.inspectHttp && !tls) {
      this.handOffOrServe(entry, config, socket, dst, facts, handedOff);
      return;
    }
    const pending: ServerConnection = { socket, drain: () => socket.destroy() };
    entry.connections.add(pending);
    socket.on('error', () => undefined);
    const http = config.inspectHttp;
    const classify = (b: Buffer, final: boolean): ConnectionFacts | undefined => {
      if (tls) {
        const hello = inspectTls(b);
        if (hello === undefined && !final) return undefined;
        if (hello) return { transport: 'tls', sni: hello.sni, protocols: hello.alpn };
      }
      if (!http) return PLAIN;
      const p = inspectHttp(b);
      return p === undefined ? undefined : plainFacts(p);
    };
    peekSocket(socket, config.filtersTimeoutMs, config.continueOnFiltersTimeout, classify, PLAIN, (found) => {
      entry.connections.delete(pending);
      this.draining.delete(pending);
      if (found === undefined || socket.destroyed || this.closed) {
        socket.destroy();
        return;
      }
      this.handOffOrServe(entry, config, socket, dst, found, handedOff);
    });
  }

  /**
   * After the listener filters: a use_original_dst listener hands the connection to the listener whose address is
   * the original destination exactly, else to the one on 0.0.0.0 with its port, else keeps it (Envoy
   * ActiveTcpSocket::newConnection and ConnectionHandlerImpl::getBalancedHandlerByAddress; the listener taking
   * it runs its own listener filters, and a handed-off connection is not handed off again).
   */
  private handOffOrServe(entry: ActiveListener, config: CompiledListener, socket: Socket, dst: OriginalDst | undefined, facts: ConnectionFacts, handedOff: boolean): void {
    if (dst !== undefined && !handedOff && config.options.useOriginalDst) {
      const target = this.byAddress.get(`${dst.address}:${dst.port}`) ?? this.byAddress.get(`0.0.0.0:${dst.port}`);
      if (target !== undefined && target !== entry) {
        this.listenerFilters(target, socket, dst, facts, true);
        return;
      }
    }
    this.serve(entry, config, socket, dst?.port ?? socket.localPort ?? 0, facts);
  }

  /**
   * Hands a connection to the filter chain that matches its (restored) destination port, SNI, transport and
   * application protocols; no chain: the connection is closed (Envoy's no_filter_chain_match). A TLS chain runs
   * the handshake first (tls/context.ts); its network filter then gets the decrypted connection.
   */
  private serve(entry: ActiveListener, config: CompiledListener, socket: Socket, destinationPort: number, facts: ConnectionFacts): void {
    const chain = config.select(destinationPort, facts.protocols, facts.transport, facts.sni);
    if (chain === undefined) {
      socket.destroy();
      return;
    }
    const tls = chain.tls;
    if (tls === undefined) {
      this.start(entry, chain, socket, undefined, destinationPort);
      return;
    }
    // Without the TLS inspector the ClientHello is read here when the chain has ALPN (see ServerTls).
    if (facts.transport !== 'tls' && tls.alpn.length > 0) {
      const pending: ServerConnection = { socket, drain: () => socket.destroy() };
      entry.connections.add(pending);
      socket.on('error', () => undefined);
      peekSocket(socket, tls.handshakeTimeoutMs, false, (b) => {
        const h = inspectTls(b);
        return h === null ? PLAIN_HELLO : h;
      }, PLAIN_HELLO as ClientHelloInfo, (hello) => {
        entry.connections.delete(pending);
        this.draining.delete(pending);
        if (hello === undefined || socket.destroyed || this.closed) {
          config.tlsStats.connection_error++;
          socket.destroy();
          return;
        }
        this.handshake(entry, config, chain, tls, socket, { transport: 'tls', sni: hello.sni, protocols: hello.alpn }, destinationPort);
      });
      return;
    }
    this.handshake(entry, config, chain, tls, socket, facts, destinationPort);
  }

  private handshake(entry: ActiveListener, config: CompiledListener, chain: CompiledChain, tls: ServerTls, socket: Socket, facts: ConnectionFacts, destinationPort: number): void {
    const pending: ServerConnection = { socket, drain: () => socket.destroy() };
    entry.connections.add(pending);
    socket.on('error', () => undefined);
    const done = () => {
      entry.connections.delete(pending);
      this.draining.delete(pending);
    };
    tls.accept(socket, facts.protocols, facts.sni, config.tlsStats, {
      onSecure: (s) => {
        done();
        if (this.closed) {
          s.destroy();
          return;
        }
        this.start(entry, chain, s, s, destinationPort);
      },
      onFailure: done,
    });
  }

  /** The (decrypted) connection: the chain's guards, then its terminal network filter. */
  private start(entry: ActiveListener, chain: CompiledChain, socket: Socket, tlsSocket: TLSSocket | undefined, destinationPort: number): void {
    if (chain.guards.length > 0) this.guarded(entry, chain, socket, tlsSocket, destinationPort, 0);
    else this.run(entry, chain, socket, tlsSocket);
  }

  /**
   * Runs the chain's guards (network RBAC / ext_authz) from `from`: a refused connection is closed; an admitted one
   * goes to the terminal filter. While a guard's answer is pending the connection counts as the listener's.
   */
  private guarded(entry: ActiveListener, chain: CompiledChain, socket: Socket, tlsSocket: TLSSocket | undefined, destinationPort: number, from: number): void {
    for (let i = from; i < chain.guards.length; i++) {
      const r = chain.guards[i]!.check(socket, destinationPort);
      if (r === false) {
        socket.destroy();
        return;
      }
      if (r !== true) {
        const pending: ServerConnection = { socket, drain: () => socket.destroy() };
        entry.connections.add(pending);
        socket.on('error', () => undefined);
        void r.then((ok) => {
          entry.connections.delete(pending);
          this.draining.delete(pending);
          if (!ok || socket.destroyed || this.closed) socket.destroy();
          else this.guarded(entry, chain, socket, tlsSocket, destinationPort, i + 1);
        });
        return;
      }
    }
    this.run(entry, chain, socket, tlsSocket);
  }

  /** Runs the chain's terminal network filter on the connection. */
  private run(entry: ActiveListener, chain: CompiledChain, socket: Socket, tlsSocket: TLSSocket | undefined): void {
    const onClose = (c: ServerConnection) => {
      entry.connections.delete(c);
      this.draining.delete(c);
    };
    const tcp = chain.tcpProxy;
    if (tcp !== undefined) {
      const session = new TcpProxySession(socket, tcp, onClose);
      entry.connections.add(session);
      session.start();
      return;
    }
    entry.connections.add(serveHttp(socket, chain.hcm!, onClose, tlsSocket?.alpnProtocol));
  }

  private retire(l: ActiveListener): void {
    l.server?.close();
    if (this.byAddress.get(l.config.key) === l) this.byAddress.delete(l.config.key);
    this.drainConnections(l.connections);
  }

  private drainConnections(conns: Set<ServerConnection>): void {
    const list = [...conns];
    conns.clear();
    for (const c of list) this.draining.add(c);
    void drainAll(list, this.drainTimeoutMs);
  }
}

/** Asks every connection to finish its exchange and close; closes the rest after the timeout. */
async function drainAll(conns: ServerConnection[], timeoutMs: number): Promise<void> {
  if (conns.length === 0) return;
  const closed = conns.map((c) => new Promise<void>((resolve) => (c.socket.destroyed ? resolve() : c.socket.once('close', () => resolve()))));
  for (const c of conns) c.drain();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(closed),
    new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        for (const c of conns) c.socket.destroy();
        resolve();
      }, timeoutMs);
      timer.unref();
    }),
  ]);
  clearTimeout(timer);
}
