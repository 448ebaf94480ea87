/**
 * The TCP proxy (envoy.filters.network.tcp_proxy), in one import:
 *
 *   import { compileTcpProxy, TcpProxySession } from '../tcp/index.js';
 *   const cfg = compileTcpProxy(proto, ctx);                  // config time (throws ConfigError → NACK)
 *   new TcpProxySession(socket, cfg, onClose).start();        // per accepted connection
 *
 * config.ts (TcpProxyConfig: clusters and weights, timeouts, attempts), session.ts (the per-connection proxy:
 * connect attempts, byte pump with backpressure, half-close, flush, timers), stats.ts (`tcp.<stat_prefix>.*`).
 */
export { compileTcpProxy, TcpProxyConfig, DEFAULT_TCP_IDLE_TIMEOUT_MS, type TcpProxyContext } from './config.js';
export { TcpProxySession } from './session.js';
export { TcpProxyStats } from './stats.js';
