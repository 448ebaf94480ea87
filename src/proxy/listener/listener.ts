/**
 * Listeners from LDS `Listener` resources, and the manager that binds, updates and drains them.
 *
 *   const compiled = compileListener(listenerProto, ctx);   // throws ConfigError (kind `listener`) → NACK
 *   await manager.apply(compiled);                          // bind, or swap in place; old connections drain
 *   manager.remove(name); await manager.close(drainMs);
 *
 * Supported now: a socket_address (TCP) with a port value, and one filter chain whose only network filter is
 * either the HTTP connection manager (http/server/hcm.ts), with RDS or an inline route_config, or the TCP proxy
 * (tcp/: each accepted connection runs a TcpProxySession). Filter chain matches, listener filters, TLS transport
 * sockets and api_listeners are ConfigErrors naming the field (the other listeners of the same update still apply,
 * as Envoy applies the valid listeners of an LDS response).
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
import { HttpConnectionManagerSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import { ConfigError } from '../config-error.js';
import { serveHttp } from '../http/server/serve.js';
import { compileHcm, type HcmContext, type HttpConnectionManagerImpl } from '../http/server/hcm.js';
import { TcpProxySchema } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { compileTcpProxy, TcpProxySession, type TcpProxyConfig, type TcpProxyStats } from '../tcp/index.js';

const HCM_NAME = 'envoy.filters.network.http_connection_manager';
const HCM_TYPE = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP_PROXY_NAME = 'envoy.filters.network.tcp_proxy';
const TCP_PROXY_TYPE = 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

export class CompiledListener {
  constructor(
    readonly name: string,
    readonly address: string,
    readonly port: number,
    /** The HTTP connection manager, for an HTTP listener. */
    readonly hcm: HttpConnectionManagerImpl | undefined,
    /** The TCP proxy, for a TCP listener. */
    readonly tcpProxy: TcpProxyConfig | undefined = undefined,
  ) {}

  get key(): string {
    return `${this.address}:${this.port}`;
  }

  /** The RDS route configuration name this listener reads ('' for none). */
  get rdsName(): string {
    return this.hcm?.rdsName ?? '';
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

/** A connection a listener holds: HTTP server connection (http/server/serve.ts) or TCP proxy session. */
interface ServerConnection {
  readonly socket: Socket;
  drain(): void;
}

export function compileListener(l: Listener, ctx: ListenerContext): CompiledListener {
  const name = l.name;
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
  if (l.listenerFilters.length > 0) fail('listener_filters', `listener filters are not supported yet (${l.listenerFilters.map((f) => f.name).join(', ')})`);
  if (l.filterChains.length !== 1) fail('filter_chains', `exactly one filter chain is supported (got ${l.filterChains.length})`);
  if (l.defaultFilterChain) fail('default_filter_chain', 'is not supported');
  const chain = l.filterChains[0]!;
  if (chain.filterChainMatch) fail('filter_chains[0].filter_chain_match', 'filter chain matching is not supported yet');
  if (chain.transportSocket) fail('filter_chains[0].transport_socket', 'TLS listeners are not supported yet');
  if (chain.filters.length !== 1) {
    fail('filter_chains[0].filters', `exactly one network filter (the HTTP connection manager or the TCP proxy) is supported (got ${chain.filters.length})`);
  }
  const f = chain.filters[0]!;
  const field = 'filter_chains[0].filters[0]';
  if (f.configType.case !== 'typedConfig') fail(`${field}.typed_config`, 'is required');
  const typed = f.configType.value as Any;
  const type = typeNameOf(typed.typeUrl);
  if (type === TCP_PROXY_TYPE) {
    let tp;
    try {
      tp = unpack(TcpProxySchema, typed);
    } catch (e) {
      return fail(`${field}.typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
    }
    const tcp = compileTcpProxy(tp, {
      listener: name,
      field: `${field}.typed_config`,
      cluster: (n) => ctx.cluster(n)?.runtime,
      warn: ctx.warn,
      random: ctx.random,
      stats: ctx.tcpStats,
      onSessionClose: ctx.tcpSessionClosed,
    });
    return new CompiledListener(name, sa.address || '0.0.0.0', port, undefined, tcp);
  }
  if (type !== HCM_TYPE) fail(`${field}.typed_config`, `network filter ${f.name || type} is not supported yet (only ${HCM_NAME} and ${TCP_PROXY_NAME})`);
  let proto;
  try {
    proto = unpack(HttpConnectionManagerSchema, typed);
  } catch (e) {
    return fail(`${field}.typed_config`, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
  }
  const hcm = compileHcm(proto, { ...ctx, listener: name, field: `${field}.typed_config` });
  return new CompiledListener(name, sa.address || '0.0.0.0', port, hcm);
}

interface ActiveListener {
  config: CompiledListener;
  server: Server;
  /** The port actually bound (differs from config.port when it is 0). */
  port: number;
  connections: Set<ServerConnection>;
}

export class ListenerManager {
  private readonly active = new Map<string, ActiveListener>();
  private readonly draining = new Set<ServerConnection>();
  private closed = false;

  constructor(private readonly drainTimeoutMs = 5000) {}

  names(): string[] {
    return [...this.active.keys()];
  }

  /** The port a listener is bound to. */
  port(name: string): number | undefined {
    return this.active.get(name)?.port;
  }

  /** Binds a new listener or updates one. Rejects with ConfigError when the address cannot be bound. */
  async apply(config: CompiledListener): Promise<void> {
    if (this.closed) return;
    const old = this.active.get(config.name);
    if (old !== undefined && old.config.key === config.key) {
      const previous = old.config;
      old.config = config;
      if (previous.hcm !== config.hcm || previous.tcpProxy !== config.tcpProxy) this.drainConnections(old.connections);
      return;
    }
    const entry: ActiveListener = { config, server: undefined as unknown as Server, port: 0, connections: new Set() };
    entry.server = createServer({ noDelay: true }, (socket) => this.accept(entry, socket));
    await new Promise<void>((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        reject(new ConfigError(config.name, 'address', `cannot listen on ${config.key}: ${e.code ?? e.message}`, 'listener'));
      };
      entry.server.once('error', onError);
      entry.server.listen({ host: config.address, port: config.port }, () => {
        entry.server.off('error', onError);
        resolve();
      });
    });
    const addr = entry.server.address();
    entry.port = typeof addr === 'object' && addr !== null ? addr.port : config.port;
    this.active.set(config.name, entry);
    if (old !== undefined) this.retire(old);
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
      l.server.close();
      for (const c of l.connections) all.push(c);
    }
    this.active.clear();
    await drainAll(all, drainTimeoutMs);
  }

  private accept(entry: ActiveListener, socket: Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    const onClose = (c: ServerConnection) => {
      entry.connections.delete(c);
      this.draining.delete(c);
    };
    const tcp = entry.config.tcpProxy;
    if (tcp !== undefined) {
      const session = new TcpProxySession(socket, tcp, onClose);
      entry.connections.add(session);
      session.start();
      return;
    }
    entry.connections.add(serveHttp(socket, entry.config.hcm!, onClose));
  }

  private retire(l: ActiveListener): void {
    l.server.close();
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
