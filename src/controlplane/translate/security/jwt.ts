/**
 * RequestAuthentication → the `envoy.filters.http.jwt_authn` filter (plus `istio_authn`) of a sidecar's inbound
 * HTTP chains, in Istio's shape (pilot/pkg/security/authn/policy_applier.go):
 *
 * - every jwtRule of every RequestAuthentication that applies to the workload is a provider `origins-<i>` (in
 *   policy order) with its issuer, audiences, keys (`jwks` inline → local_jwks; `jwksUri` → remote_jwks with a
 *   5 s fetch timeout and a 5 min cache, the proxy fetching it; Istio's default is to have istiod fetch and inline
 *   it), token locations (fromHeaders with prefix, fromParams, fromCookies; Envoy's defaults when none),
 *   `forward` = forwardOriginalToken, forward_payload_header = outputPayloadToHeader, claim_to_headers =
 *   outputClaimToHeaders, and payload_in_metadata = the issuer (istio_authn reads it);
 * - one rule for every path: requires_any of every provider and `allow_missing` — a request without a token passes
 *   authentication (authorization decides, through requestPrincipals), a request with a token that no provider
 *   accepts is refused with 401;
 * - CORS preflights bypass authentication (bypass_cors_preflight), as Istio sets.
 */
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import type { JwtRule, RequestAuthenticationPolicy } from '../../../api/model.js';
import { pack } from '../../../xds/index.js';
import {
  JwtAuthenticationSchema,
  JwtProviderSchema,
  JwtRequirementSchema,
  type JwtProvider,
  type JwtRequirement,
} from '../../../xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { HttpFilterSchema, type HttpFilter } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';

export const JWT_AUTHN_FILTER = 'envoy.filters.http.jwt_authn';
export const ISTIO_AUTHN_FILTER = 'istio_authn';

function jwksSource(r: JwtRule): MessageInitShape<typeof JwtProviderSchema>['jwksSourceSpecifier'] {
  if (r.jwks !== undefined) return { case: 'localJwks', value: { specifier: { case: 'inlineString', value: r.jwks } } };
  if (r.jwksUri === undefined) return undefined;
  let cluster = '';
  try {
    const u = new URL(r.jwksUri);
    cluster = `outbound|${u.port || (u.protocol === 'https:' ? 443 : 80)}||${u.hostname}`;
  } catch {
    // the proxy reports the bad URI (NACK)
  }
  return { case: 'remoteJwks', value: { httpUri: { uri: r.jwksUri, httpUpstreamType: { case: 'cluster', value: cluster }, timeout: { seconds: 5n } }, cacheDuration: { seconds: 300n } } };
}

function provider(r: JwtRule): JwtProvider {
  return create(JwtProviderSchema, {
    issuer: r.issuer,
    audiences: r.audiences,
    forward: r.forwardOriginalToken,
    fromHeaders: r.fromHeaders.map((h) => ({ name: h.name, valuePrefix: h.prefix ?? '' })),
    fromParams: r.fromParams,
    fromCookies: r.fromCookies,
    forwardPayloadHeader: r.outputPayloadToHeader ?? '',
    payloadInMetadata: r.issuer,
    claimToHeaders: r.outputClaimToHeaders.map((c) => ({ headerName: c.header, claimName: c.claim })),
    jwksSourceSpecifier: jwksSource(r),
  });
}

/** The jwt_authn + istio_authn filters for the policies that apply to a workload (none: no filters). */
export function jwtFilters(policies: readonly RequestAuthenticationPolicy[]): HttpFilter[] {
  const rules = policies.flatMap((p) => p.jwtRules);
  if (rules.length === 0) return [];
  const providers: Record<string, JwtProvider> = {};
  const reqs: JwtRequirement[] = [];
  rules.forEach((r, i) => {
    const name = `origins-${i}`;
    providers[name] = provider(r);
    reqs.push(create(JwtRequirementSchema, { requiresType: { case: 'providerName', value: name } }));
  });
  reqs.push(create(JwtRequirementSchema, { requiresType: { case: 'allowMissing', value: {} } }));
  const cfg = create(JwtAuthenticationSchema, {
    providers,
    rules: [{ match: { pathSpecifier: { case: 'prefix', value: '/' } }, requirementType: { case: 'requires', value: { requiresType: { case: 'requiresAny', value: { requirements: reqs } } } } }],
    bypassCorsPreflight: true,
  });
  return [
    create(HttpFilterSchema, { name: JWT_AUTHN_FILTER, configType: { case: 'typedConfig', value: pack(JwtAuthenticationSchema, cfg) } }),
    create(HttpFilterSchema, { name: ISTIO_AUTHN_FILTER }),
  ];
}
