/**
 * The proxy's HTTP router: Envoy RouteConfigurations compiled into a matcher that picks a RouteDecision per
 * request with Envoy's semantics, plus the functions that apply a decision on the request path.
 *
 *   const compiled = compileRouteConfiguration(rc, opts)       // throws ConfigError → NACK
 *   const d = compiled.route(head, { random })                  // undefined → 404 (NR)
 *   switch (d.kind) {
 *     case 'cluster':  applyRequestHeaders(d, head, vars); rewritePath(d, head, true);
 *                      ... forward to d.cluster (timeoutMs, retryPolicy, hashPolicies, mirrorPolicies) ...
 *                      applyResponseHeaders(d, resp, head, vars)
 *     case 'redirect':
 *     case 'direct':   status d.status, body d.body, Location localReplyLocation(d, head),
 *                      then applyResponseHeaders(d, resp, head, vars)
 *   }
 *
 * Files: compile.ts (virtual hosts, route matching, compilation), match.ts (string/header/query matchers),
 * decision.ts (RouteDecision), header-ops.ts + formatter.ts (header mutations and %VAR% templates),
 * policies.ts (retry, mirror, hash policies), apply.ts (request-path application), regex.ts (RE2),
 * util.ts (compile helpers), config-error.ts.
 */
export { compileRouteConfiguration, CompiledRouteConfig, DEFAULT_ROUTE_TIMEOUT_MS, forwardedProto } from './compile.js';
export type { CompileOptions, RouteContext } from './compile.js';
export { RouteDecision, VirtualHostInfo } from './decision.js';
export type { DecisionKind } from './decision.js';
export { applyRequestHeaders, applyResponseHeaders, autoRewriteHost, localReplyLocation, rewritePath } from './apply.js';
export type { FormatVars } from './formatter.js';
export { MirrorPolicy, RetryOn, RetryPolicy } from './policies.js';
export type { HashPolicy, ResetHeader, RetryOnName } from './policies.js';
export { ConfigError } from '../../config-error.js';
export type { RegexRewrite } from './util.js';
