/**
 * `istio_authn`: the filter Istio puts after jwt_authn on inbound listeners, which turns the verified JWT payloads
 * (dynamic metadata `envoy.filters.http.jwt_authn`, one entry per issuer via payload_in_metadata) into the request
 * attributes AuthorizationPolicy matches on, in the dynamic metadata namespace `istio_authn`:
 *
 *   request.auth.principal   `<iss>/<sub>`                 (requestPrincipals)
 *   request.auth.audiences   the `aud` claim (the first one when it is a list)
 *   request.auth.presenter   the `azp` claim
 *   request.auth.claims      every claim, strings as one-element lists and lists of strings kept, nested objects
 *                            kept as objects (so `request.auth.claims[a][b]` and list claims such as `groups` match
 *                            with one list matcher, as Istio's RBAC generator writes them)
 *   request.auth.raw_claims  the payload as JSON
 *
 * The first payload in issuer order is used when several tokens were verified. A request without a verified token
 * gets no `istio_authn` metadata (requestPrincipals then never match; notRequestPrincipals always do). The filter is
 * configured by name only (Istio's typed config carries nothing Weft needs).
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import type { DownstreamStream } from '../server/connection.js';
import { metadataNamespace, setMetadata } from './metadata.js';
import { JWT_AUTHN_FILTER } from './jwt-authn.js';
import { CONTINUE, type FilterFactoryContext, type FilterStatus, type HttpFilter, type HttpFilterFactory } from './registry.js';

export const ISTIO_AUTHN_FILTER = 'istio_authn';
const ISTIO_AUTHN_TYPE = 'io.istio.network.authn.Config';

/** Claims as istio_authn stores them (see the module comment). */
export function claimsStruct(payload: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(payload)) {
    if (typeof v === 'string') out[k] = [v];
    else if (Array.isArray(v)) out[k] = v.filter((x) => typeof x === 'string');
    else if (v !== null && typeof v === 'object') out[k] = claimsStruct(v as Record<string, unknown>);
    else if (typeof v === 'number' || typeof v === 'boolean') out[k] = [String(v)];
  }
  return out;
}

class IstioAuthnFilter implements HttpFilter {
  disabledByDefault = false;
  constructor(readonly name: string) {}

  decodeHeaders(stream: DownstreamStream): FilterStatus {
    const jwt = metadataNamespace(stream, JWT_AUTHN_FILTER);
    if (jwt === undefined) return CONTINUE;
    const issuers = Object.keys(jwt).sort();
    for (const iss of issuers) {
      const p = jwt[iss];
      if (p === null || typeof p !== 'object' || Array.isArray(p)) continue;
      const payload = p as Record<string, unknown>;
      if (typeof payload.iss === 'string' && typeof payload.sub === 'string') setMetadata(stream, ISTIO_AUTHN_FILTER, 'request.auth.principal', `${payload.iss}/${payload.sub}`);
      const aud = Array.isArray(payload.aud) ? payload.aud[0] : payload.aud;
      if (typeof aud === 'string') setMetadata(stream, ISTIO_AUTHN_FILTER, 'request.auth.audiences', aud);
      if (typeof payload.azp === 'string') setMetadata(stream, ISTIO_AUTHN_FILTER, 'request.auth.presenter', payload.azp);
      setMetadata(stream, ISTIO_AUTHN_FILTER, 'request.auth.claims', claimsStruct(payload));
      setMetadata(stream, ISTIO_AUTHN_FILTER, 'request.auth.raw_claims', JSON.stringify(payload));
      break;
    }
    return CONTINUE;
  }
}

export const istioAuthnFilterFactory: HttpFilterFactory = {
  name: ISTIO_AUTHN_FILTER,
  configType: ISTIO_AUTHN_TYPE,
  perRouteTypes: [],
  create(_config: Any | undefined, ctx: FilterFactoryContext): HttpFilter {
    return new IstioAuthnFilter(ctx.name);
  },
  compilePerRoute(_config: Any, ctx, field): unknown {
    return ctx.fail(field, 'istio_authn has no per-route configuration');
  },
};
