/**
 * The CORS filter, `envoy.filters.http.cors` (envoy.extensions.filters.http.cors.v3.Cors, empty), driven by the
 * per-route envoy.extensions.filters.http.cors.v3.CorsPolicy in typed_per_filter_config (what Istio writes for a
 * VirtualService `corsPolicy`). Envoy v3 semantics (source/extensions/filters/http/cors/cors_filter.cc):
 *
 * - Policies of every level apply, most specific first (weighted cluster, route, virtual host, route
 *   configuration): each field comes from the most specific policy that sets it; filter_enabled / shadow_enabled
 *   from the most specific policy (unset: enabled, not shadow). No route or no policy: nothing happens.
 * - Requests with a non-empty `Origin`: the origin is allowed when an allow_origin_string_match matches it (or
 *   matches `*`); counted in `http.<stat_prefix>.cors.origin_valid` / `origin_invalid`. Shadow mode (shadow
 *   enabled, filter not): stats only.
 * - Preflight (OPTIONS with Origin and Access-Control-Request-Method): answered locally with 200 (details
 *   `cors_response`): access-control-allow-origin (allowed origins only), -allow-credentials `true`,
 *   -allow-methods (`*` echoes the requested method), -allow-headers (`*` echoes the requested headers),
 *   -max-age, -allow-private-network when asked and allowed. A preflight from an origin that is not allowed is
 *   forwarded upstream unless forward_not_matching_preflights is false.
 * - Other CORS requests: the response (upstream or a later local reply) gets access-control-allow-origin (when the
 *   origin is allowed), -allow-credentials and -expose-headers.
 * The deprecated route/virtual host `cors` fields are not read (the router reports them).
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { unpack } from '../../../xds/index.js';
import { CorsPolicySchema, CorsSchema, type CorsPolicy } from '../../../xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import type { HeaderList, ResponseHead } from '../headers.js';
import type { RouteDecision } from '../router/decision.js';
import { compileStringMatcher, listHeaderFirst, type StringMatch } from '../router/match.js';
import { runtimeFraction, sampled, type CompileContext } from '../router/util.js';
import type { Counter } from '../../stats/metric.js';
import type { DownstreamStream, ResponseHeadersHook } from '../server/connection.js';
import { CONTINUE, decodeOrFail, STOP, type FilterFactoryContext, type FilterStatus, type HttpFilter, type HttpFilterFactory } from './registry.js';

export const CORS_FILTER = 'envoy.filters.http.cors';
const CORS_TYPE = 'envoy.extensions.filters.http.cors.v3.Cors';
const CORS_POLICY_TYPE = 'envoy.extensions.filters.http.cors.v3.CorsPolicy';

/** A compiled CorsPolicy, already merged over the less specific levels. */
export class CorsSettings {
  constructor(
    /** null: unset at every level so far. */
    readonly allowOrigins: readonly StringMatch[] | null,
    readonly allowMethods: string,
    readonly allowHeaders: string,
    readonly exposeHeaders: string,
    readonly maxAge: string,
    readonly allowCredentials: boolean | undefined,
    readonly allowPrivateNetworkAccess: boolean | undefined,
    readonly forwardNotMatchingPreflights: boolean | undefined,
    /** filter_enabled [num, den] (undefined: enabled). */
    readonly enabled: readonly [number, number] | undefined,
    /** shadow_enabled [num, den] (undefined: off). */
    readonly shadow: readonly [number, number] | undefined,
  ) {}

  /** This (more specific) policy over `less`: each field from the first that sets it; enabled/shadow from this one. */
  over(less: CorsSettings): CorsSettings {
    return new CorsSettings(
      this.allowOrigins ?? less.allowOrigins,
      this.allowMethods || less.allowMethods,
      this.allowHeaders || less.allowHeaders,
      this.exposeHeaders || less.exposeHeaders,
      this.maxAge || less.maxAge,
      this.allowCredentials ?? less.allowCredentials,
      this.allowPrivateNetworkAccess ?? less.allowPrivateNetworkAccess,
      this.forwardNotMatchingPreflights ?? less.forwardNotMatchingPreflights,
      this.enabled,
      this.shadow,
    );
  }

  originAllowed(origin: string): boolean {
    const list = this.allowOrigins;
    if (list === null) return false;
    for (let i = 0; i < list.length; i++) {
      const m = list[i]!;
      if (m.match('*') || m.match(origin)) return true;
    }
    return false;
  }
}

export function compileCorsPolicy(ctx: CompileContext, field: string, p: CorsPolicy): CorsSettings {
  const origins = p.allowOriginStringMatch.map((m, i) => compileStringMatcher(ctx, `${field}.allow_origin_string_match[${i}]`, m));
  return new CorsSettings(
    origins.length > 0 ? origins : null,
    p.allowMethods,
    p.allowHeaders,
    p.exposeHeaders,
    p.maxAge,
    p.allowCredentials,
    p.allowPrivateNetworkAccess,
    p.forwardNotMatchingPreflights,
    p.filterEnabled ? runtimeFraction(ctx, `${field}.filter_enabled`, p.filterEnabled) : undefined,
    p.shadowEnabled ? runtimeFraction(ctx, `${field}.shadow_enabled`, p.shadowEnabled) : undefined,
  );
}

/** The response side of one CORS request (allocated only for requests with an Origin under a CORS policy). */
class CorsResponse implements ResponseHeadersHook {
  constructor(
    private readonly policy: CorsSettings,
    /** The request's (allowed) origin. */
    private readonly origin: string,
  ) {}

  onResponseHeaders(resp: ResponseHead): void {
    const h = resp.headers;
    setHeaderValue(h, 'access-control-allow-origin', this.origin);
    if (this.policy.allowCredentials === true) setHeaderValue(h, 'access-control-allow-credentials', 'true');
    if (this.policy.exposeHeaders !== '') setHeaderValue(h, 'access-control-expose-headers', this.policy.exposeHeaders);
  }
}

/** Sets a (lower-case) header: replaces every value with one. */
function setHeaderValue(h: HeaderList, lower: string, value: string): void {
  let w = 0;
  for (let i = 0; i < h.length; i += 2) {
    if (h[i]!.length === lower.length && h[i]!.toLowerCase() === lower) continue;
    h[w] = h[i]!;
    h[w + 1] = h[i + 1]!;
    w += 2;
  }
  h.length = w;
  h.push(lower, value);
}

class CorsFilter implements HttpFilter {
  disabledByDefault = false;
  constructor(
    readonly name: string,
    private readonly originValid: Counter | null,
    private readonly originInvalid: Counter | null,
    private readonly random: () => number,
  ) {}

  decodeHeaders(stream: DownstreamStream, decision: RouteDecision | undefined): FilterStatus {
    if (decision === undefined) return CONTINUE;
    const p = decision.compiledFilterConfig(this.name);
    if (!(p instanceof CorsSettings)) return CONTINUE;
    const enabled = p.enabled === undefined || sampled(p.enabled[0], p.enabled[1], this.random());
    const shadow = p.shadow !== undefined && sampled(p.shadow[0], p.shadow[1], this.random());
    if (!enabled && !shadow) return CONTINUE;
    const head = stream.head;
    const origin = listHeaderFirst(head.headers, 'origin');
    if (origin === undefined || origin === '') return CONTINUE;
    const allowed = p.originAllowed(origin);
    if (allowed) this.originValid?.inc();
    else this.originInvalid?.inc();
    if (!enabled) return CONTINUE;
    const requestMethod = head.method === 'OPTIONS' ? listHeaderFirst(head.headers, 'access-control-request-method') : undefined;
    if (requestMethod === undefined || requestMethod === '') {
      if (allowed) stream.responseHeadersHook = new CorsResponse(p, origin);
      return CONTINUE;
    }
    // Preflight. One from an origin that is not allowed is forwarded unless forward_not_matching_preflights is false.
    if (!allowed && p.forwardNotMatchingPreflights !== false) return CONTINUE;
    const out: HeaderList = [];
    if (allowed) out.push('access-control-allow-origin', origin);
    if (p.allowCredentials === true) out.push('access-control-allow-credentials', 'true');
    if (p.allowMethods !== '') out.push('access-control-allow-methods', p.allowMethods === '*' ? requestMethod : p.allowMethods);
    if (p.allowHeaders !== '') {
      out.push('access-control-allow-headers', p.allowHeaders === '*' ? (listHeaderFirst(head.headers, 'access-control-request-headers') ?? '') : p.allowHeaders);
    }
    if (p.maxAge !== '') out.push('access-control-max-age', p.maxAge);
    if (p.allowPrivateNetworkAccess === true && listHeaderFirst(head.headers, 'access-control-request-private-network') === 'true') {
      out.push('access-control-allow-private-network', 'true');
    }
    stream.localReply(200, '', '', 'cors_response', out);
    return STOP;
  }
}

export const corsFilterFactory: HttpFilterFactory = {
  name: CORS_FILTER,
  configType: CORS_TYPE,
  perRouteTypes: [CORS_POLICY_TYPE],
  create(config: Any | undefined, ctx: FilterFactoryContext): HttpFilter {
    if (config !== undefined) decodeOrFail(ctx.compile, ctx.field, () => unpack(CorsSchema, config));
    const sc = ctx.stats?.scope('cors.');
    return new CorsFilter(ctx.name, sc?.counter('origin_valid') ?? null, sc?.counter('origin_invalid') ?? null, ctx.random ?? Math.random);
  },
  compilePerRoute(config: Any, ctx: CompileContext, field: string): unknown {
    return compileCorsPolicy(ctx, field, decodeOrFail(ctx, field, () => unpack(CorsPolicySchema, config)));
  },
  merge(moreSpecific: unknown, lessSpecific: unknown): unknown {
    return moreSpecific instanceof CorsSettings && lessSpecific instanceof CorsSettings ? moreSpecific.over(lessSpecific) : moreSpecific;
  },
};
