/**
 * The AggregatedDiscoveryService gRPC definition now lives in src/xds/ads-service.ts (shared by the control
 * plane's server and Weft's ADS client); re-exported here so existing imports keep working.
 */
export { aggregatedDiscoveryService } from '../../xds/ads-service.js';
export type { AdsMethods } from '../../xds/ads-service.js';
