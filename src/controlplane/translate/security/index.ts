/**
 * Security on a sidecar's inbound listeners: which AuthorizationPolicies and RequestAuthentications apply to the
 * proxy's workload, and the filters they become (listener.ts and transparent.ts put them in every inbound chain).
 *
 *   const sec = inboundSecurity(model, proxy, services, errors);
 *   sec.http  → HTTP filters before the router:  jwt_authn, istio_authn | rbac (CUSTOM shadow) + ext_authz |
 *               rbac (AUDIT, action LOG) | rbac (DENY) | rbac (ALLOW)
 *   sec.tcp   → network filters before tcp_proxy: rbac (CUSTOM shadow) + ext_authz | rbac (AUDIT) | rbac (DENY) |
 *               rbac (ALLOW)
 *   sec.key   → identifies the output (listener caching)
 *
 * Istio's evaluation order follows from the chain order: CUSTOM, then DENY, then ALLOW (when ALLOW policies apply,
 * a request must match one; when none applies it is allowed). AUDIT never changes the decision.
 *
 * Which policies apply (Istio, sidecars): one in the root namespace (MeshConfig rootNamespace, default
 * weft-system, Istio's istio-system) without a selector applies to every workload; one in the root namespace with a selector to the
 * workloads of any namespace it selects; one in another namespace to the workloads of that namespace (all of
 * them, or those its selector selects). Policies with targetRefs attach to gateways and waypoints and never apply
 * to sidecars (Istio). SMI TrafficTarget policies apply to the workloads of their namespace running as their
 * destination service account.
 *
 * CUSTOM (Istio's shape): a `rbac` filter whose shadow_rules (stat prefix `istio_ext_authz_`, policies named
 * `istio-ext-authz-…`) mark the requests the CUSTOM rules match, then `ext_authz` enabled only for them through
 * filter_enabled_metadata, calling the extension provider (MeshConfig extensionProviders, envoyExtAuthzGrpc)
 * through its outbound cluster. A workload may use one provider only; CUSTOM policies naming an unknown or a
 * second provider fail closed (every request and connection is denied) and are reported, as Istio does.
 */
import { create } from '@bufbuild/protobuf';
import type { AuthorizationPolicy, AuthzAction, ExtensionProvider, MeshModel, RequestAuthenticationPolicy, Service } from '../../../api/model.js';
import { pack, TypeUrl } from '../../../xds/index.js';
import { RBAC_Action, RBACSchema as RbacRulesSchema, type Policy, type RBAC as RbacRules } from '../../../xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import { ExtAuthzSchema as HttpExtAuthzSchema } from '../../../xds/gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import { RBACSchema as HttpRbacSchema } from '../../../xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { ExtAuthzSchema as NetworkExtAuthzSchema } from '../../../xds/gen/envoy/extensions/filters/network/ext_authz/v3/ext_authz_pb.js';
import { RBACSchema as NetworkRbacSchema } from '../../../xds/gen/envoy/extensions/filters/network/rbac/v3/rbac_pb.js';
import { HttpFilterSchema, type HttpFilter } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { FilterSchema, type Filter } from '../../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { ApiVersion } from '../../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import type { ProxyInfo } from '../../proxy.js';
import type { TranslateError } from '../index.js';
import { outboundClusterName } from '../names.js';
import { labelsSubsetOf } from '../scope.js';
import { jwtFilters } from './jwt.js';
import { matchAllPolicy, policyName, RuleError, rulePolicy, type BuildContext, type Target } from './rbac-builder.js';

export const HTTP_RBAC_FILTER = 'envoy.filters.http.rbac';
export const HTTP_EXT_AUTHZ_FILTER = 'envoy.filters.http.ext_authz';
export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';
export const NETWORK_EXT_AUTHZ_FILTER = 'envoy.filters.network.ext_authz';
const EXT_AUTHZ_SHADOW_PREFIX = 'istio_ext_authz_';
const EXT_AUTHZ_POLICY_PREFIX = 'istio-ext-authz';
/** Istio's default envoyExtAuthzGrpc timeout. */
const DEFAULT_PROVIDER_TIMEOUT_S = 600n;

export interface InboundSecurity {
  http: HttpFilter[];
  tcp: Filter[];
  /** Identifies what applies (for caching listeners): '' when nothing does. */
  key: string;
}

export const NO_SECURITY: InboundSecurity = { http: [], tcp: [], key: '' };

type Selectable = Pick<AuthorizationPolicy, 'namespace' | 'selector' | 'targetRefs'>;

function applies(p: Selectable, proxy: Pick<ProxyInfo, 'namespace' | 'labels'>, rootNamespace: string): boolean {
  if (p.targetRefs !== undefined && p.targetRefs.length > 0) return false;
  if (p.namespace !== rootNamespace && p.namespace !== proxy.namespace) return false;
  return p.selector === undefined || labelsSubsetOf(p.selector, proxy.labels);
}

/** The AuthorizationPolicies that apply to the proxy's workload (see the module comment). */
export function authorizationPoliciesFor(model: MeshModel, proxy: Pick<ProxyInfo, 'namespace' | 'labels' | 'serviceAccount'>): AuthorizationPolicy[] {
  const root = model.mesh.rootNamespace;
  return model.authorizationPolicies.filter((p) => applies(p, proxy, root) && (p.serviceAccount === undefined || (p.namespace === proxy.namespace && p.serviceAccount === proxy.serviceAccount)));
}

export function requestAuthenticationsFor(model: MeshModel, proxy: Pick<ProxyInfo, 'namespace' | 'labels'>): RequestAuthenticationPolicy[] {
  const root = model.mesh.rootNamespace;
  return model.requestAuthentications.filter((p) => applies(p, proxy, root));
}

function source(p: AuthorizationPolicy): string {
  return `AuthorizationPolicy ${p.namespace}/${p.origin.name}`;
}

class Builder {
  constructor(
    private readonly ctx: BuildContext,
    private readonly errors: TranslateError[],
    private readonly resource: string,
  ) {}

  private error(message: string, src: string): void {
    this.errors.push({ typeUrl: TypeUrl.Listener, resource: this.resource, message, source: src });
  }

  /** The RBAC policies of `policies` for a target (names prefixed for CUSTOM shadow rules). */
  policies(policies: readonly AuthorizationPolicy[], target: Target, action: AuthzAction, namePrefix = ''): Record<string, Policy> {
    const out: Record<string, Policy> = {};
    const failClosed = action !== 'ALLOW';
    for (const p of policies) {
      p.rules.forEach((rule, i) => {
        const name = namePrefix + policyName(p, i);
        try {
          const pol = rulePolicy(this.ctx, rule, target, failClosed);
          if (pol !== undefined) out[name] = pol;
        } catch (e) {
          if (!(e instanceof RuleError)) throw e;
          // ALLOW: the rule is left out (allows less); DENY, AUDIT, CUSTOM: it matches everything (fails closed).
          this.error(`rule ${i}: ${e.message}: ${failClosed ? 'the rule matches every request' : 'the rule is left out'}`, source(p));
          if (failClosed) out[name] = matchAllPolicy();
        }
      });
    }
    return out;
  }

  rules(action: RBAC_Action, policies: Record<string, Policy>): RbacRules {
    return create(RbacRulesSchema, { action, policies });
  }
}

function httpRbac(name: string, init: { rules?: RbacRules; shadowRules?: RbacRules; shadowRulesStatPrefix?: string }): HttpFilter {
  return create(HttpFilterSchema, { name, configType: { case: 'typedConfig', value: pack(HttpRbacSchema, init) } });
}

function networkRbac(init: { rules?: RbacRules; shadowRules?: RbacRules; shadowRulesStatPrefix?: string }): Filter {
  return create(FilterSchema, { name: NETWORK_RBAC_FILTER, configType: { case: 'typedConfig', value: pack(NetworkRbacSchema, { statPrefix: 'tcp.', ...init }) } });
}

/** The provider's outbound cluster and authority, when the provider and its service exist. */
function providerTarget(provider: ExtensionProvider, services: readonly Service[]): { cluster: string; authority: string } | undefined {
  const host = provider.service.includes('/') ? provider.service.slice(provider.service.indexOf('/') + 1) : provider.service;
  const svc = services.find((s) => s.hostname === host);
  if (!svc || !svc.ports.some((p) => p.port === provider.port)) return undefined;
  return { cluster: outboundClusterName(provider.port, undefined, host), authority: host };
}

/** Every security filter of the proxy's inbound listeners (see the module comment). */
export function inboundSecurity(model: MeshModel, proxy: ProxyInfo, services: readonly Service[], errors: TranslateError[]): InboundSecurity {
  const authz = authorizationPoliciesFor(model, proxy);
  const authn = requestAuthenticationsFor(model, proxy);
  if (authz.length === 0 && authn.length === 0) return NO_SECURITY;
  const resource = `inbound|${proxy.namespace}/${proxy.id}`;
  const b = new Builder({ trustDomain: model.mesh.trustDomain }, errors, resource);
  const by = (a: AuthzAction) => authz.filter((p) => p.action === a);
  const http: HttpFilter[] = jwtFilters(authn);
  const tcp: Filter[] = [];

  // CUSTOM: one provider per workload.
  const custom = by('CUSTOM');
  if (custom.length > 0) {
    const names = [...new Set(custom.map((p) => p.provider ?? ''))];
    const provider = names.length === 1 ? model.mesh.extensionProviders?.find((e) => e.name === names[0] && e.kind === 'envoyExtAuthzGrpc') : undefined;
    const target = provider ? providerTarget(provider, services) : undefined;
    if (provider === undefined || target === undefined) {
      const why =
        names.length > 1
          ? `CUSTOM policies name ${names.length} providers (${names.join(', ')}); a workload may use one`
          : provider === undefined
            ? `extension provider ${JSON.stringify(names[0])} is not an envoyExtAuthzGrpc provider of the mesh config`
            : `the service ${provider.service}:${provider.port} of extension provider ${provider.name} does not exist`;
      errors.push({ typeUrl: TypeUrl.Listener, resource, message: `${why}: every request to this workload is denied`, source: source(custom[0]!) });
      const denyAll = b.rules(RBAC_Action.DENY, { 'istio-ext-authz-bad-provider': matchAllPolicy() });
      http.push(httpRbac(HTTP_RBAC_FILTER, { rules: denyAll }));
      tcp.push(networkRbac({ rules: denyAll }));
    } else {
      const timeout = provider.timeoutMs !== undefined ? { seconds: BigInt(Math.floor(provider.timeoutMs / 1000)), nanos: (provider.timeoutMs % 1000) * 1e6 } : { seconds: DEFAULT_PROVIDER_TIMEOUT_S };
      const grpcService = { targetSpecifier: { case: 'envoyGrpc' as const, value: { clusterName: target.cluster, authority: target.authority } }, timeout };
      const enabled = {
        filter: HTTP_RBAC_FILTER,
        path: [{ segment: { case: 'key' as const, value: `${EXT_AUTHZ_SHADOW_PREFIX}shadow_effective_policy_id` } }],
        value: { matchPattern: { case: 'stringMatch' as const, value: { matchPattern: { case: 'prefix' as const, value: EXT_AUTHZ_POLICY_PREFIX } } } },
      };
      const shadowHttp = b.rules(RBAC_Action.ALLOW, b.policies(custom, 'http', 'CUSTOM', `${EXT_AUTHZ_POLICY_PREFIX}-`));
      http.push(httpRbac(HTTP_RBAC_FILTER, { shadowRules: shadowHttp, shadowRulesStatPrefix: EXT_AUTHZ_SHADOW_PREFIX }));
      http.push(
        create(HttpFilterSchema, {
          name: HTTP_EXT_AUTHZ_FILTER,
          configType: {
            case: 'typedConfig',
            value: pack(HttpExtAuthzSchema, {
              services: { case: 'grpcService', value: grpcService },
              transportApiVersion: ApiVersion.V3,
              statusOnError: { code: 403 },
              filterEnabledMetadata: enabled,
            }),
          },
        }),
      );
      // TCP: Istio sends every connection the CUSTOM rules could match to the authorizer.
      const shadowTcp = b.policies(custom, 'tcp', 'CUSTOM', `${EXT_AUTHZ_POLICY_PREFIX}-`);
      if (Object.keys(shadowTcp).length > 0) {
        tcp.push(create(FilterSchema, { name: NETWORK_EXT_AUTHZ_FILTER, configType: { case: 'typedConfig', value: pack(NetworkExtAuthzSchema, { statPrefix: 'tcp.', grpcService, transportApiVersion: ApiVersion.V3 }) } }));
      }
    }
  }

  for (const [action, rbacAction] of [
    ['AUDIT', RBAC_Action.LOG],
    ['DENY', RBAC_Action.DENY],
    ['ALLOW', RBAC_Action.ALLOW],
  ] as const) {
    const list = by(action);
    if (list.length === 0) continue;
    http.push(httpRbac(HTTP_RBAC_FILTER, { rules: b.rules(rbacAction, b.policies(list, 'http', action)) }));
    const tcpPolicies = b.policies(list, 'tcp', action);
    // An ALLOW with no TCP-applicable rule still denies every connection (nothing is allowed); AUDIT/DENY with none do nothing.
    if (action === 'ALLOW' || Object.keys(tcpPolicies).length > 0) tcp.push(networkRbac({ rules: b.rules(rbacAction, tcpPolicies) }));
  }
  const names = new Set<string>();
  for (const f of http) {
    // Several rbac filters share one chain: Envoy needs distinct names, as Istio's builder gives them.
    if (names.has(f.name)) f.name = `${f.name}.${names.size}`;
    names.add(f.name);
  }
  return { http, tcp, key: securityKey(model, proxy) };
}

/** What identifies the security filters of a proxy: the policies that apply (the same objects give the same filters). */
function keyOf(authz: readonly AuthorizationPolicy[], authn: readonly RequestAuthenticationPolicy[]): string {
  if (authz.length === 0 && authn.length === 0) return '';
  return [...authz.map((p) => `${p.origin.kind}#${p.namespace}/${p.origin.name}/${p.action}/${JSON.stringify(p.rules)}/${p.provider ?? ''}`), ...authn.map((p) => `ra#${p.namespace}/${p.origin.name}/${JSON.stringify(p.jwtRules)}`)].join(',');
}

/** The key of `inboundSecurity`'s output for this proxy, without building it (translation cache keys). */
export function securityKey(model: MeshModel, proxy: ProxyInfo): string {
  const k = keyOf(authorizationPoliciesFor(model, proxy), requestAuthenticationsFor(model, proxy));
  return k === '' ? '' : `${k}|${model.mesh.trustDomain}|${JSON.stringify(model.mesh.extensionProviders ?? [])}`;
}
