/**
 * The built-in HTTP filters, registered with the filter registry on import (see registry.ts):
 * `envoy.filters.http.fault` (fault.ts), `envoy.filters.http.cors` (cors.ts), and the security filters
 * `envoy.filters.http.jwt_authn` (jwt-authn.ts), `istio_authn` (istio-authn.ts), `envoy.filters.http.ext_authz`
 * (ext-authz.ts) and `envoy.filters.http.rbac` (rbac.ts). The router filter is the
 * connection manager's own last step (server/hcm.ts, route-path/upstream-request.ts).
 */
import { corsFilterFactory } from './cors.js';
import { faultFilterFactory } from './fault.js';
import { extAuthzFilterFactory } from './ext-authz.js';
import { istioAuthnFilterFactory } from './istio-authn.js';
import { jwtAuthnFilterFactory } from './jwt-authn.js';
import { rbacFilterFactory } from './rbac.js';
import { registerHttpFilter } from './registry.js';

registerHttpFilter(faultFilterFactory);
registerHttpFilter(corsFilterFactory);
registerHttpFilter(jwtAuthnFilterFactory);
registerHttpFilter(istioAuthnFilterFactory);
registerHttpFilter(extAuthzFilterFactory);
registerHttpFilter(rbacFilterFactory);

export { compileHttpFilters, compilePerRouteFilterConfig, mergePerRouteFilterConfig, CONTINUE, STOP, ROUTER_FILTER } from './registry.js';
export type { FilterChainCallbacks, HeldBody, HttpFilter, HttpFilterFactory, FilterFactoryContext, FilterStatus } from './registry.js';
export { registerHttpFilter } from './registry.js';
