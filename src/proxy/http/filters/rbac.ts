/**
 * The RBAC HTTP filter, `envoy.filters.http.rbac` (envoy.extensions.filters.http.rbac.v3.RBAC), with Envoy's
 * semantics (source/extensions/filters/http/rbac/rbac_filter.cc); the policy engine is src/proxy/authz/rbac.ts.
 *
 * Per request, after route selection:
 * - shadow_rules (when set) are evaluated first and only observed: `shadow_allowed` / `shadow_denied` counted, and
 *   the dynamic metadata namespace `envoy.filters.http.rbac` gets `<shadow_rules_stat_prefix>shadow_engine_result`
 *   (`allowed` / `denied`) and, when a policy matched, `<shadow_rules_stat_prefix>shadow_effective_policy_id`
 *   (what Istio's CUSTOM action keys ext_authz on);
 * - rules (when set) decide: allowed → `allowed` counted, the chain goes on; denied → `denied` counted and the
 *   request answered 403 `RBAC: access denied` with response code details
 *   `rbac_access_denied_matched_policy[<policy>]` (`none` when no policy matched, as for ALLOW rules). Envoy sets
 *   no response flag for an RBAC denial; the details tell it from an upstream 403.
 * - rules with action LOG (Istio's AUDIT) never deny: `logged` / `not_logged` are counted and the dynamic metadata
 *   `envoy.common` `access_log_hint` says whether a policy matched.
 * Stats (under the connection manager's `http.<stat_prefix>.`): `rbac.<rules_stat_prefix>allowed|denied`,
 * `rbac.<shadow_rules_stat_prefix>shadow_allowed|shadow_denied`. Per route, an RBACPerRoute replaces the filter's
 * config (an RBACPerRoute without `rbac` turns the filter off on that route). The `matcher` / `shadow_matcher`
 * forms and track_per_rule_stats are ConfigErrors (not supported).
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { unpack } from '../../../xds/index.js';
import { RBACSchema, RBACPerRouteSchema, type RBAC as HttpRbac } from '../../../xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { compileRbac, destinationPortOf, RbacInput, type RbacEngine } from '../../authz/rbac.js';
import type { Counter } from '../../stats/metric.js';
import type { Scope } from '../../stats/store.js';
import type { RouteDecision } from '../router/decision.js';
import type { CompileContext } from '../router/util.js';
import type { DownstreamStream } from '../server/connection.js';
import { metadataNamespace, setMetadata } from './metadata.js';
import { CONTINUE, decodeOrFail, STOP, type FilterFactoryContext, type FilterStatus, type HttpFilter, type HttpFilterFactory } from './registry.js';

export const RBAC_FILTER = 'envoy.filters.http.rbac';
const RBAC_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBAC';
const RBAC_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.rbac.v3.RBACPerRoute';
export const RBAC_DENIED_BODY = 'RBAC: access denied';
/** Envoy's common RBAC metadata namespace (the LOG action's `access_log_hint`). */
const LOG_NAMESPACE = 'envoy.common';

class RbacStats {
  constructor(
    readonly allowed: Counter | null,
    readonly denied: Counter | null,
    readonly shadowAllowed: Counter | null,
    readonly shadowDenied: Counter | null,
    readonly logged: Counter | null,
    readonly notLogged: Counter | null,
  ) {}
}

/** One compiled RBAC config (filter level or per route). */
export class RbacSettings {
  constructor(
    readonly engine: RbacEngine | null,
    readonly shadow: RbacEngine | null,
    readonly shadowPrefix: string,
    readonly stats: RbacStats,
  ) {
    this.shadowResultKey = `${shadowPrefix}shadow_engine_result`;
    this.shadowPolicyKey = `${shadowPrefix}shadow_effective_policy_id`;
  }
  readonly shadowResultKey: string;
  readonly shadowPolicyKey: string;
}

function compileSettings(ctx: CompileContext, field: string, p: HttpRbac, stats: Scope | undefined): RbacSettings {
  if (p.matcher) ctx.fail(`${field}.matcher`, 'the matcher API is not supported (use rules)');
  if (p.shadowMatcher) ctx.fail(`${field}.shadow_matcher`, 'the matcher API is not supported (use shadow_rules)');
  if (p.trackPerRuleStats) ctx.fail(`${field}.track_per_rule_stats`, 'per-rule stats are not supported');
  const engine = p.rules ? compileRbac(ctx, `${field}.rules`, p.rules) : null;
  const shadow = p.shadowRules ? compileRbac(ctx, `${field}.shadow_rules`, p.shadowRules) : null;
  const sc = stats?.scope('rbac.');
  const rp = p.rulesStatPrefix;
  const sp = p.shadowRulesStatPrefix;
  return new RbacSettings(
    engine,
    shadow,
    sp,
    new RbacStats(
      sc?.counter(`${rp}allowed`) ?? null,
      sc?.counter(`${rp}denied`) ?? null,
      sc?.counter(`${sp}shadow_allowed`) ?? null,
      sc?.counter(`${sp}shadow_denied`) ?? null,
      engine?.action === 'LOG' ? (sc?.counter(`${rp}logged`) ?? null) : null,
      engine?.action === 'LOG' ? (sc?.counter(`${rp}not_logged`) ?? null) : null,
    ),
  );
}

/** Per-route: an RBACPerRoute without rbac turns the filter off for the route. */
const DISABLED = Symbol('rbac.disabled');

class RbacFilter implements HttpFilter {
  disabledByDefault = false;
  private readonly input = new RbacInput();
  private readonly metadataOf: (ns: string) => ReturnType<typeof metadataNamespace>;
  private current: DownstreamStream | null = null;

  constructor(
    readonly name: string,
    private readonly settings: RbacSettings,
    private readonly perRouteStats: Scope | undefined,
    /** remote_ip reads x-forwarded-for (the connection manager does not use the remote address). */
    private readonly remoteFromXff: boolean,
  ) {
    this.metadataOf = (ns) => (this.current === null ? undefined : metadataNamespace(this.current, ns));
  }

  decodeHeaders(stream: DownstreamStream, decision: RouteDecision | undefined): FilterStatus {
    let s = this.settings;
    if (decision !== undefined) {
      const own = decision.compiledFilterConfig(this.name);
      if (own === DISABLED) return CONTINUE;
      if (own instanceof PerRouteRbac) s = own.settings(this.perRouteStats);
    }
    if (s.engine === null && s.shadow === null) return CONTINUE;
    const input = this.input.set(stream.head, stream.socket, destinationPortOf(stream.socket), this.remoteFromXff, this.metadataOf);
    this.current = stream;
    try {
      if (s.shadow !== null) {
        const ok = s.shadow.allowed(input);
        (ok ? s.stats.shadowAllowed : s.stats.shadowDenied)?.inc();
        if (s.shadow.effectivePolicy !== '') setMetadata(stream, RBAC_FILTER, s.shadowPolicyKey, s.shadow.effectivePolicy);
        setMetadata(stream, RBAC_FILTER, s.shadowResultKey, ok ? 'allowed' : 'denied');
      }
      if (s.engine === null) return CONTINUE;
      if (s.engine.action === 'LOG') {
        // LOG (Istio's AUDIT): never denies; marks the request for access logs when a policy matched.
        s.engine.allowed(input);
        const hit = s.engine.effectivePolicy !== '';
        (hit ? s.stats.logged : s.stats.notLogged)?.inc();
        setMetadata(stream, LOG_NAMESPACE, 'access_log_hint', hit);
        return CONTINUE;
      }
      if (s.engine.allowed(input)) {
        s.stats.allowed?.inc();
        return CONTINUE;
      }
      s.stats.denied?.inc();
      const policy = s.engine.effectivePolicy;
      stream.localReply(403, RBAC_DENIED_BODY, '', `rbac_access_denied_matched_policy[${policy === '' ? 'none' : policy}]`);
      return STOP;
    } finally {
      this.current = null;
      input.clear();
    }
  }
}

/** A compiled RBACPerRoute; its stats bind to the connection manager that uses it (compiled at RDS time). */
class PerRouteRbac {
  private bound: RbacSettings | undefined;
  private boundTo: Scope | undefined;
  constructor(
    private readonly ctx: CompileContext,
    private readonly field: string,
    private readonly proto: HttpRbac,
  ) {}
  settings(stats: Scope | undefined): RbacSettings {
    if (this.bound === undefined || this.boundTo !== stats) {
      this.bound = compileSettings(this.ctx, this.field, this.proto, stats);
      this.boundTo = stats;
    }
    return this.bound;
  }
}

export const rbacFilterFactory: HttpFilterFactory = {
  name: RBAC_FILTER,
  configType: RBAC_TYPE,
  perRouteTypes: [RBAC_PER_ROUTE_TYPE],
  create(config: Any | undefined, ctx: FilterFactoryContext): HttpFilter {
    const proto = config === undefined ? undefined : decodeOrFail(ctx.compile, ctx.field, () => unpack(RBACSchema, config));
    const settings = proto === undefined ? new RbacSettings(null, null, '', new RbacStats(null, null, null, null, null, null)) : compileSettings(ctx.compile, ctx.field, proto, ctx.stats);
    return new RbacFilter(ctx.name, settings, ctx.stats, ctx.useRemoteAddress !== true);
  },
  compilePerRoute(config: Any, ctx: CompileContext, field: string): unknown {
    const pr = decodeOrFail(ctx, field, () => unpack(RBACPerRouteSchema, config));
    if (pr.rbac === undefined) return DISABLED;
    // Compiled once now so that a bad config NACKs the RouteConfiguration; stats bind per connection manager.
    compileSettings(ctx, `${field}.rbac`, pr.rbac, undefined);
    return new PerRouteRbac(ctx, `${field}.rbac`, pr.rbac);
  },
};
