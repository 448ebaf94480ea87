/**
 * Listeners from LDS `Listener` resources, and the manager that binds, updates and drains them.
 *
 *   const compiled = compileListener(listenerProto, ctx);   // throws ConfigError (kind `listener`) → NACK
 *   await manager.apply(compiled);                          // bind, or swap in place; old connections drain
 *   manager.remove(name); await manager.close(drainMs);
 *
 * Supported now: a socket_address (TCP) with a port value, and filter chains whose only network filter is either
 * the HTTP connection manager (http/server/hcm.ts), with RDS or an inline route_config, or the TCP proxy (tcp/:
 * each accepted connection runs a TcpProxySession). Filter chains are matched on destination_port (a chain for
 * the exact port wins over a chain without one; then default_filter_chain; no match closes the connection);
 * other match fields, listener filters other than `envoy.filters.listener.original_dst`, TLS transport sockets
 * and api_listeners are ConfigErrors naming the field (the other listeners of the same update still apply, as
 * Envoy applies the valid listeners of an LDS response).
 *
 * Transparent capture (Envoy semantics): `bind_to_port: false` listeners are not bound and take connections only
 * by hand-off; `use_original_dst: true` (which implies the original_dst listener filter) reads the original
 * destination of each connection (SO_ORIGINAL_DST, original-dst.ts) and hands the connection to the listener on
 * that exact address, else on 0.0.0.0 with that port, else serves it with its own chains. The original_dst
 * listener filter alone restores the destination for chain matching and ORIGINAL_DST clusters, without hand-off.
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
import type { FilterChain } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import { ConfigError } from '../config-error.js';
import { H1ServerConnection } from '../http/server/connection.js';
import { compileHcm, type HcmContext, type HttpConnectionManagerImpl } from '../http/server/hcm.js';
import { TcpProxySchema } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { compileTcpProxy, TcpProxySession, type TcpProxyConfig, type TcpProxyStats } from '../tcp/index.js';
import { originalDstSupport, readOriginalDst, tagOriginalDst } from './original-dst.js';

const HCM_NAME = 'envoy.filters.network.http_connection_manager';
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_NAME = 'envoy.filters.network.tcp_proxy';
const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ORIGINAL_DST_FILTER = 'envoy.filters.listener.original_dst';
const ORIGINAL_DST_TYPE = 'envoy.extensions.filters.listener.original_dst.v3.OriginalDst';

/** One filter chain: its match (destination_port only, for now) and its network filter. */
export interface CompiledChain {
  readonly name: string;
  /** filter_chain_match.destination_port; undefined matches every port. */
  readonly destinationPort: number | undefined;
  /** The HTTP connection manager, for an HTTP chain. */
  readonly hcm: HttpConnectionManagerImpl | undefined;
  /** The TCP proxy, for a TCP chain. */
  readonly tcpProxy: TcpProxyConfig | undefined;
}

export interface ListenerOptions {
  /** bind_to_port (default true): false listeners take connections only by hand-off (use_original_dst). */
  bindToPort: boolean;
  /** use_original_dst: hand redirected connections to the listener of their original destination. */
  useOriginalDst: boolean;
  /** Whether the original destination is restored on accept (use_original_dst or the original_dst listener filter). */
  restoresDestination: boolean;
}

const DEFAULT_OPTIONS: ListenerOptions = { bindToPort: true, useOriginalDst: false, restoresDestination: false };

export class CompiledListener {
  /** Chains with a destination_port match, by port (Envoy matches destination_port first). */
  private readonly byPort: Map<number, CompiledChain> | undefined;
  /** The chain for every other port: the chain without a destination_port match, else default_filter_chain. */
  private readonly anyPort: CompiledChain | undefined;

  constructor(
    readonly name: string,
    readonly address: string,
    readonly port: number,
    readonly chains: readonly CompiledChain[],
    readonly options: ListenerOptions = DEFAULT_OPTIONS,
    readonly defaultChain: CompiledChain | undefined = undefined,
  ) {
    for (const c of chains) {
      if (c.destinationPort === undefined) this.anyPort ??= c;
      else (this.byPort ??= new Map()).set(c.destinationPort, c);
    }
    this.anyPort ??= defaultChain;
  }

  get key(): string {
    return `${this.address}:${this.port}`;
  }

  /** The HTTP connection manager of a listener with one chain. */
  get hcm(): HttpConnectionManagerImpl | undefined {
    return this.chains.length === 1 ? this.chains[0]!.hcm : undefined;
  }

  /** The TCP proxy of a listener with one chain. */
  get tcpProxy(): TcpProxyConfig | undefined {
    return this.chains.length === 1 ? this.chains[0]!.tcpProxy : undefined;
  }

  /** The RDS route configuration names this listener's chains read. */
  get rdsNames(): string[] {
    const out: string[] = [];
    for (const c of [...this.chains, ...(this.defaultChain ? [this.defaultChain] : [])]) if (c.hcm?.rdsName) out.push(c.hcm.rdsName);
    return out;
  }

  /**
   * The chain for a connection to `destinationPort` (Envoy FilterChainManagerImpl: a chain matching the
   * destination port exactly wins over chains without destination_port; no match → default_filter_chain, else
   * none and the connection is closed).
   */
  chainFor(destinationPort: number): CompiledChain | undefined {
    return this.byPort?.get(destinationPort) ?? this.anyPort;
  }
}

export type ListenerContext = Omit<HcmContext, 'listener' | 'field'> & {
  /** Uniform [0, 1) numbers for tcp_proxy weighted cluster choice (default Math.random). */
  random?: () => number;
  /** The TCP proxy stats of a stat_prefix, shared across listener updates (default: new ones per listener). */
  tcpStats?(statPrefix: string): TcpProxyStats;
  /** Called when a TCP proxy session has closed (flags, cluster, host, attempts: the access log's input). */
  tcpSessionClosed?(session: TcpProxySession): void;
};

/** A connection a listener holds: HTTP/1.1 server connection or TCP proxy session. */
interface ServerConnection {
  readonly socket: Socket;
  drain(): void;
}

type Fail = (field: string, detail: string) => never;

function compileChain(chain: FilterChain, field: string, name: string, ctx: ListenerContext, fail: Fail): CompiledChain {
  let destinationPort: number | undefined;
  const m = chain.filterChainMatch;
  if (m) {
    const unsupported: string[] = [];
    if (m.prefixRanges.length) unsupported.push('prefix_ranges');
    if (m.addressSuffix) unsupported.push('address_suffix');
    if (m.suffixLen !== undefined) unsupported.push('suffix_len');
    if (m.directSourcePrefixRanges.length) unsupported.push('direct_source_prefix_ranges');
    if (m.sourceType !== 0) unsupported.push('source_type');
    if (m.sourcePrefixRanges.length) unsupported.push('source_prefix_ranges');
    if (m.sourcePorts.length) unsupported.push('source_ports');
    if (m.serverNames.length) unsupported.push('server_names');
    if (m.transportProtocol) unsupported.push('transport_protocol');
    if (m.applicationProtocols.length) unsupported.push('application_protocols');
    if (unsupported.length) fail(`${field}.filter_chain_match`, `only destination_port matching is supported yet (got ${unsupported.join(', ')})`);
    destinationPort = m.destinationPort;
    if (destinationPort !== undefined && (destinationPort < 1 || destinationPort > 65535)) fail(`${field}.filter_chain_match.destination_port`, `invalid port ${destinationPort}`);
  }
  if (chain.transportSocket) fail(`${field}.transport_socket`, 'TLS listeners are not supported yet');
  if (chain.filters.length !== 1) {
    fail(`${field}.filters`, `exactly one network filter (the HTTP connection manager or the TCP proxy) is supported (got ${chain.filters.length})`);
  }
  const f = chain.filters[0]!;
  const ff = `${field}.filters[0]`;
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
    });
    return { name: chain.name, destinationPort, hcm: undefined, tcpProxy: tcp };
  }
  if (type !== HCM_TYPE) fail(`${ff}.typed_config`, `network filter ${f.name || type} is not supported yet (only ${HCM_NAME} and ${TCP_PROXY_NAME})`);
  let proto;
  try {
    proto = unpack(HttpConnectionManagerSchema, typed);
  } catch (e) {
    return fail(`${ff}.typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
  }
  const hcm = compileHcm(proto, { ...ctx, listener: name, field: `${ff}.typed_config` });
  return { name: chain.name, destinationPort, hcm, tcpProxy: undefined };
}

export function compileListener(l: Listener, ctx: ListenerContext): CompiledListener {
  const name = l.name;
  const fail: Fail = (field, detail) => {
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
  l.listenerFilters.forEach((lf, i) => {
    if (lf.name === ORIGINAL_DST_FILTER || (lf.configType.case === 'typedConfig' && typeNameOf(lf.configType.value.typeUrl) === ORIGINAL_DST_TYPE)) {
      if (lf.filterDisabled) fail(`listener_filters[${i}].filter_disabled`, 'is not supported');
      restoresDestination = true;
      return;
    }
    fail(`listener_filters[${i}]`, `listener filter ${lf.name} is not supported yet (only ${ORIGINAL_DST_FILTER})`);
  });
  if (restoresDestination) {
    const why = originalDstSupport();
    if (why !== undefined) fail(useOriginalDst ? 'use_original_dst' : 'listener_filters', `the original destination cannot be read: ${why}`);
  }
  if (l.filterChains.length === 0 && !l.defaultFilterChain) fail('filter_chains', 'at least one filter chain (or a default_filter_chain) is required');
  const chains = l.filterChains.map((c, i) => compileChain(c, `filter_chains[${i}]`, name, ctx, fail));
  const seen = new Map<string, number>();
  chains.forEach((c, i) => {
    const k = String(c.destinationPort ?? '*');
    const prev = seen.get(k);
    if (prev !== undefined) fail(`filter_chains[${i}].filter_chain_match`, `multiple filter chains with the same matching rules are defined (filter_chains[${prev}] has the same)`);
    seen.set(k, i);
  });
  const defaultChain = l.defaultFilterChain ? compileChain(l.defaultFilterChain, 'default_filter_chain', name, ctx, fail) : undefined;
  if (defaultChain?.destinationPort !== undefined) fail('default_filter_chain.filter_chain_match', 'must be empty');
  const bindToPort = l.bindToPort ?? true;
  return new CompiledListener(name, sa.address || '0.0.0.0', port, chains, { bindToPort, useOriginalDst, restoresDestination }, defaultChain);
}

interface ActiveListener {
  config: CompiledListener;
  /** undefined for a bind_to_port false listener. */
  server: Server | undefined;
  /** The port actually bound (differs from config.port when it is 0). */
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
      if (previous.chains !== config.chains) this.drainConnections(old.connections);
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
      entry.port = typeof addr === 'object' && addr !== null ? addr.port : config.port;
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
   * A new connection. Listeners that restore the original destination read it first; a use_original_dst listener
   * then hands the connection to the listener whose address is the original destination exactly, else to the
   * one on 0.0.0.0 with its port, else keeps it (Envoy ActiveTcpSocket::newConnection and
   * ConnectionHandlerImpl::getBalancedHandlerByAddress; a handed-off connection is not handed off again). The
   * filter chain is chosen by the (restored) destination port.
   */
  private accept(entry: ActiveListener, socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    let target = entry;
    let destinationPort = socket.localPort ?? entry.port;
    if (entry.config.options.restoresDestination) {
      const dst = readOriginalDst(socket);
      if (dst !== undefined) {
        tagOriginalDst(socket, dst);
        destinationPort = dst.port;
        if (entry.config.options.useOriginalDst) {
          target = this.byAddress.get(`${dst.address}:${dst.port}`) ?? this.byAddress.get(`0.0.0.0:${dst.port}`) ?? entry;
        }
      }
    }
    const chain = target.config.chainFor(destinationPort);
    if (chain === undefined) {
      // Envoy: no filter chain matched → the connection is closed (listener no_filter_chain_match).
      socket.destroy();
      return;
    }
    const onClose = (c: ServerConnection) => {
      target.connections.delete(c);
      this.draining.delete(c);
    };
    const tcp = chain.tcpProxy;
    if (tcp !== undefined) {
      const session = new TcpProxySession(socket, tcp, onClose);
      target.connections.add(session);
      session.start();
      return;
    }
    const hcm = chain.hcm!;
    target.connections.add(new H1ServerConnection(socket, hcm, hcm.parserOptions, hcm.serverPolicy, onClose));
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
