/**
 * The built-in HTTP filters, registered with the filter registry on import (see registry.ts):
 * `envoy.filters.http.fault` (fault.ts) and `envoy.filters.http.cors` (cors.ts). The router filter is the
 * connection manager's own last step (server/hcm.ts, route-path/upstream-request.ts).
 */
import { corsFilterFactory } from './cors.js';
import { faultFilterFactory } from './fault.js';
import { registerHttpFilter } from './registry.js';

registerHttpFilter(faultFilterFactory);
registerHttpFilter(corsFilterFactory);

export { compileHttpFilters, compilePerRouteFilterConfig, mergePerRouteFilterConfig, CONTINUE, STOP, ROUTER_FILTER } from './registry.js';
export type { FilterChainCallbacks, HeldBody, HttpFilter, HttpFilterFactory, FilterFactoryContext, FilterStatus } from './registry.js';
export { registerHttpFilter } from './registry.js';
