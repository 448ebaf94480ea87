/**
 * The proxy's admin API in one import:
 *
 *   import { startAdmin } from '../admin/index.js';
 *   const admin = await startAdmin({ port: 15000, handlers: { stats: store, configDump, clusters, quit, loggers } });
 *
 * server.ts (startAdmin, endpoints, method checks, loopback-only binding), config-dump.ts (ConfigSnapshot →
 * envoy.admin.v3.ConfigDump), clusters.ts (ClusterStatusView → /clusters text and JSON), logging.ts (/logging),
 * stream.ts (large bodies written piece by piece with backpressure: the stats outputs).
 */
export {
  startAdmin,
  isLoopback,
  type AdminServer,
  type AdminOptions,
  type AdminHandlers,
  type AdminRequest,
  type AdminResponse,
  type AdminHandlerFn,
  type HandlerOptions,
  type ParamHelp,
  type InitState,
  type ServerInfoData,
} from './server.js';
// config-dump.ts is imported on its own (its values load the whole xDS type registry: server.ts loads it on demand).
export type { ConfigSnapshot, DumpedResource, DumpError, DumpResponse, Time } from './config-dump.js';
export {
  renderClustersText,
  renderClustersJson,
  clustersMessage,
  healthFlagsToString,
  hostAddressString,
  type ClusterStatusView,
  type HostStatusView,
  type HostHealthView,
  type HostStatView,
  type CircuitBreakerView,
} from './clusters.js';
export { sendChunks, STALL_MS } from './stream.js';
export { handleLogging, LOG_LEVELS, pinoLevelOf, type LevelledLogger, type LogLevel } from './logging.js';
