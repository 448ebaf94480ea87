/**
 * The external authorization HTTP filter, `envoy.filters.http.ext_authz` (envoy.extensions.filters.http.ext_authz.v3.
 * ExtAuthz), gRPC service only, with Envoy's semantics (source/extensions/filters/http/ext_authz/):
 *
 * - The filter runs when `filter_enabled_metadata` (if set) matches the request's dynamic metadata — Istio's CUSTOM
 *   action runs it only for requests its shadow RBAC rules matched (`istio_ext_authz_shadow_effective_policy_id`
 *   prefixed `istio-ext-authz`) — and the route does not disable it (ExtAuthzPerRoute `disabled`; `check_settings`
 *   context_extensions are sent with the check).
 * - The request is held (its body buffered) while `Check` runs (src/proxy/authz/ext-authz-client.ts; the CheckRequest
 *   is built by check-request.ts).
 * - OK: `ok_response.headers` are set on the request (appended when `append` is true), `headers_to_remove` removed,
 *   then the chain goes on (`ext_authz.ok`).
 * - Denied: the authorizer's `denied_response` status (403 when unset), headers and body go to the client, flag
 *   UAEX, details `ext_authz_denied` (`ext_authz.denied`).
 * - Error or timeout: with failure_mode_allow the request goes on (`ext_authz.failure_mode_allowed`, and header
 *   `x-envoy-auth-failure-mode-allowed: true` when failure_mode_allow_header_add); else `status_on_error` (403 when
 *   unset), flag UAEX, details `ext_authz_error` (`ext_authz.error`).
 * Stats under `http.<hcm stat_prefix>.ext_authz.` (plus `<stat_prefix>.` when the filter sets one). The HTTP
 * authorization service, with_request_body (the body is not sent), response header additions and dynamic
 * metadata from the authorizer are not supported: with_request_body is accepted and reported, http_service is a
 * ConfigError.
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { unpack } from '../../../xds/index.js';
import { ExtAuthzPerRouteSchema, ExtAuthzSchema, type ExtAuthz } from '../../../xds/gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import type { CheckResponse } from '../../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';
import { checkRequest } from '../../authz/check-request.js';
import { compileAuthzService, type AuthzServiceClient } from '../../authz/ext-authz-client.js';
import { compileMetadataPredicate } from '../../authz/rbac.js';
import type { Counter } from '../../stats/metric.js';
import { removeHeader, setHeader, type HeaderList } from '../headers.js';
import type { RouteDecision } from '../router/decision.js';
import type { CompileContext } from '../router/util.js';
import type { DownstreamStream } from '../server/connection.js';
import { HeldRequest } from './hold.js';
import { metadataNamespace } from './metadata.js';
import { CONTINUE, decodeOrFail, STOP, type FilterChainCallbacks, type FilterFactoryContext, type FilterStatus, type HttpFilter, type HttpFilterFactory } from './registry.js';

export const EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
const EXT_AUTHZ_TYPE = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz';
const EXT_AUTHZ_PER_ROUTE_TYPE = 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthzPerRoute';
const GRPC_OK = 0;

class ExtAuthzStats {
  constructor(
    readonly ok: Counter | null,
    readonly denied: Counter | null,
    readonly error: Counter | null,
    readonly failureModeAllowed: Counter | null,
  ) {}
}

class PerRoute {
  constructor(
    readonly disabled: boolean,
    readonly contextExtensions: Record<string, string>,
  ) {}
}

class ExtAuthzFilter implements HttpFilter {
  disabledByDefault = false;
  private current: DownstreamStream | null = null;
  private readonly lookup = (ns: string) => (this.current === null ? undefined : metadataNamespace(this.current, ns));

  constructor(
    readonly name: string,
    private readonly client: AuthzServiceClient,
    private readonly enabledBy: ((lookup: (ns: string) => ReturnType<typeof metadataNamespace>) => boolean) | null,
    private readonly failureModeAllow: boolean,
    private readonly failureHeader: boolean,
    private readonly statusOnError: number,
    private readonly stats: ExtAuthzStats,
  ) {}

  decodeHeaders(stream: DownstreamStream, decision: RouteDecision | undefined, index: number, chain: FilterChainCallbacks): FilterStatus {
    let ext: Record<string, string> = {};
    if (decision !== undefined) {
      const own = decision.compiledFilterConfig(this.name);
      if (own instanceof PerRoute) {
        if (own.disabled) return CONTINUE;
        ext = own.contextExtensions;
      }
    }
    if (this.enabledBy !== null) {
      this.current = stream;
      const on = this.enabledBy(this.lookup);
      this.current = null;
      if (!on) return CONTINUE;
    }
    let cancelled = false;
    const held = new HeldRequest(stream, decision, index + 1, chain, () => (cancelled = true));
    this.client.check(checkRequest(stream.socket, stream.head, ext)).then(
      (res) => {
        if (!cancelled) this.onResponse(stream, held, res);
      },
      () => {
        if (!cancelled) this.onError(stream, held);
      },
    );
    return STOP;
  }

  private onResponse(stream: DownstreamStream, held: HeldRequest, res: CheckResponse): void {
    const code = res.status?.code ?? GRPC_OK;
    if (code === GRPC_OK) {
      this.stats.ok?.inc();
      const ok = res.httpResponse.case === 'okResponse' ? res.httpResponse.value : undefined;
      if (ok !== undefined) {
        const h = stream.head.headers;
        for (const o of ok.headers) {
          if (!o.header || o.header.key === '') continue;
          if (o.append === true) h.push(o.header.key, o.header.value);
          else setHeader(h, o.header.key, o.header.value);
        }
        for (const name of ok.headersToRemove) {
          const lower = name.toLowerCase();
          // Envoy never lets the authorizer remove pseudo-headers or Host.
          if (!lower.startsWith(':') && lower !== 'host') removeHeader(h, lower);
        }
      }
      held.resume();
      return;
    }
    this.stats.denied?.inc();
    held.release();
    const denied = res.httpResponse.case === 'deniedResponse' ? res.httpResponse.value : undefined;
    const status = denied?.status?.code ? denied.status.code : 403;
    const extra: HeaderList = [];
    for (const o of denied?.headers ?? []) if (o.header && o.header.key !== '') extra.push(o.header.key, o.header.value);
    stream.localReply(status, denied?.body ?? '', 'UAEX', 'ext_authz_denied', extra);
  }

  private onError(stream: DownstreamStream, held: HeldRequest): void {
    if (this.failureModeAllow) {
      this.stats.failureModeAllowed?.inc();
      if (this.failureHeader) setHeader(stream.head.headers, 'x-envoy-auth-failure-mode-allowed', 'true');
      held.resume();
      return;
    }
    this.stats.error?.inc();
    held.release();
    stream.localReply(this.statusOnError, '', 'UAEX', 'ext_authz_error');
  }
}

function create(cfg: ExtAuthz, ctx: FilterFactoryContext): HttpFilter {
  const c = ctx.compile;
  const field = ctx.field;
  if (cfg.services.case === 'httpService') c.fail(`${field}.http_service`, 'the HTTP authorization service is not supported (use grpc_service)');
  const client = compileAuthzService(c, `${field}.grpc_service`, cfg.services.case === 'grpcService' ? cfg.services.value : undefined, ctx.cluster);
  if (cfg.withRequestBody) ctx.warn(`${field}.with_request_body: the request body is not sent to the authorization service`);
  const enabledBy = cfg.filterEnabledMetadata ? compileMetadataPredicate(c, `${field}.filter_enabled_metadata`, cfg.filterEnabledMetadata) : null;
  if (cfg.filterEnabled) c.fail(`${field}.filter_enabled`, 'runtime fractions are not supported');
  const status = cfg.statusOnError?.code ? cfg.statusOnError.code : 403;
  if (status < 200 || status > 599) c.fail(`${field}.status_on_error.code`, `invalid HTTP status ${status}`);
  const sc = ctx.stats?.scope(cfg.statPrefix === '' ? 'ext_authz.' : `ext_authz.${cfg.statPrefix}.`);
  const stats = new ExtAuthzStats(sc?.counter('ok') ?? null, sc?.counter('denied') ?? null, sc?.counter('error') ?? null, sc?.counter('failure_mode_allowed') ?? null);
  return new ExtAuthzFilter(ctx.name, client, enabledBy, cfg.failureModeAllow, cfg.failureModeAllowHeaderAdd, status, stats);
}

export const extAuthzFilterFactory: HttpFilterFactory = {
  name: EXT_AUTHZ_FILTER,
  configType: EXT_AUTHZ_TYPE,
  perRouteTypes: [EXT_AUTHZ_PER_ROUTE_TYPE],
  create(config: Any | undefined, ctx: FilterFactoryContext): HttpFilter {
    if (config === undefined) return ctx.compile.fail(ctx.field, 'an ExtAuthz typed_config is required');
    return create(decodeOrFail(ctx.compile, ctx.field, () => unpack(ExtAuthzSchema, config)), ctx);
  },
  compilePerRoute(config: Any, ctx: CompileContext, field: string): unknown {
    const pr = decodeOrFail(ctx, field, () => unpack(ExtAuthzPerRouteSchema, config));
    const o = pr.override;
    if (o.case === 'disabled') return new PerRoute(o.value, {});
    if (o.case === 'checkSettings') return new PerRoute(false, { ...o.value.contextExtensions });
    return ctx.fail(field, 'one of disabled or check_settings is required');
  },
};
