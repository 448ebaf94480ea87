/**
 * Weft's xDS client (ADS, Delta or SotW): `AdsClient` and its types. See ./ads-client.ts for the behaviour.
 */
export { AdsClient } from './ads-client.js';
export { Backoff } from './backoff.js';
export { decodeResource, isFullStateType, resourceName } from './resources.js';
export type {
  AdsClientEvents,
  AdsClientOptions,
  AdsClientState,
  AdsLogger,
  AdsProtocol,
  AdsTypeStatus,
  NackInfo,
  NodeInit,
  ResourceEntry,
  ResourceUpdate,
  WatchHandler,
} from './types.js';
