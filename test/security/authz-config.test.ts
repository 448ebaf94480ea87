// The configuration side of authorization: what the control plane generates for a workload's policies (Istio's
// filter order and shapes, trust-domain handling, TCP rules), and a live proxy NACKing bad RBAC, jwt_authn,
// ext_authz and network RBAC configs with the field named while the last good listener stays in force.
import assert from 'node:assert/strict';
import { clone } from '@bufbuild/protobuf';
import { after, before, describe, it } from 'node:test';
import { pack, TypeUrl, unpack } from '../../src/xds/index.js';
import { ListenerSchema, type Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { HttpConnectionManagerSchema, type HttpConnectionManager } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RBACSchema as HttpRbacSchema } from '../../src/xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { RBACSchema as NetworkRbacSchema } from '../../src/xds/gen/envoy/extensions/filters/network/rbac/v3/rbac_pb.js';
import { JwtAuthenticationSchema } from '../../src/xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { ExtAuthzSchema } from '../../src/xds/gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import { toProtoJson } from '../../src/xds/json.js';
import { translateYaml } from '../helpers/translate.js';
import { startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { httpRequest } from '../helpers/raw-client.js';
import { freePort } from '../helpers/mesh-processes.js';
import { Upstream } from '../helpers/http-upstream.js';
import { normalizeRequestPath } from '../../src/proxy/http/path-normalize.js';

const POLICIES = `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  trustDomain: example.org
  extensionProviders:
  - name: authz
    envoyExtAuthzGrpc: {service: authz.default.svc.cluster.local, port: 9000}
---
apiVersion: v1
kind: Service
metadata: {name: authz, namespace: default}
spec: {selector: {app: authz}, ports: [{name: grpc, port: 9000}]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  jwtRules: [{issuer: "https://issuer.test", jwks: '{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"k"}]}'}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: default}
spec:
  action: CUSTOM
  provider: {name: authz}
  rules: [{to: [{operation: {paths: ["/ext/*"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit, namespace: default}
spec: {action: AUDIT, rules: [{}]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: default}
spec:
  action: DENY
  rules: [{to: [{operation: {methods: ["DELETE"]}}]}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow, namespace: default}
spec:
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/foo/sa/bar", "other.org/ns/x/sa/*"], namespaces: ["prod"]}}]
  - to: [{operation: {paths: ["/public/*"]}}]
`;

function inbound(yaml: string, protocol: string): Listener {
  const r = translateYaml(yaml, 'authz.yaml', { id: 'client', metadata: { NAMESPACE: 'default', LABELS: { app: 'client' }, SERVICE_ACCOUNT: 'client', WEFT_INBOUND: [{ port: 8080, targetPort: 18080, protocol }] } as never });
  const l = r.listeners.find((x) => x.name === 'inbound|8080');
  assert.ok(l, `inbound listener: ${r.listeners.map((x) => x.name).join(', ')}; errors ${JSON.stringify(r.errors)}`);
  return l;
}

function hcmOf(l: Listener): HttpConnectionManager {
  const f = l.filterChains[0]!.filters.at(-1)!;
  assert.equal(f.configType.case, 'typedConfig');
  return unpack(HttpConnectionManagerSchema, f.configType.value!);
}

describe('authorization translation (Istio shapes)', () => {
  it('HTTP: jwt_authn, istio_authn, CUSTOM shadow rbac + ext_authz, AUDIT, DENY, ALLOW, router', () => {
    const hcm = hcmOf(inbound(POLICIES, 'http'));
    const names = hcm.httpFilters.map((f) => f.name);
    assert.deepEqual(names.map((n) => n.replace(/\.\d+$/, '')), [
      'envoy.filters.http.jwt_authn', 'istio_authn', 'envoy.filters.http.rbac', 'envoy.filters.http.ext_authz',
      'envoy.filters.http.rbac', 'envoy.filters.http.rbac', 'envoy.filters.http.rbac', 'envoy.filters.http.router',
    ]);
    const typed = (i: number) => hcm.httpFilters[i]!.configType.value as never;
    const jwt = unpack(JwtAuthenticationSchema, typed(0));
    assert.deepEqual(Object.keys(jwt.providers), ['origins-0']);
    assert.equal(jwt.providers['origins-0']!.payloadInMetadata, 'https://issuer.test');
    const req = jwt.rules[0]!.requirementType;
    assert.equal(req.case, 'requires');
    assert.deepEqual((req.value as { requiresType: { value: { requirements: Array<{ requiresType: { case: string } }> } } }).requiresType.value.requirements.map((r) => r.requiresType.case), ['providerName', 'allowMissing']);
    const shadow = unpack(HttpRbacSchema, typed(2));
    assert.equal(shadow.shadowRulesStatPrefix, 'istio_ext_authz_');
    assert.deepEqual(Object.keys(shadow.shadowRules!.policies), ['istio-ext-authz-ns[default]-policy[ext]-rule[0]']);
    const ext = unpack(ExtAuthzSchema, typed(3));
    assert.equal(ext.services.case, 'grpcService');
    assert.deepEqual(toProtoJson(ExtAuthzSchema, ext), {
      grpcService: { envoyGrpc: { clusterName: 'outbound|9000||authz.default.svc.cluster.local', authority: 'authz.default.svc.cluster.local' }, timeout: '600s' },
      transportApiVersion: 'V3',
      statusOnError: { code: 'Forbidden' },
      filterEnabledMetadata: { filter: 'envoy.filters.http.rbac', path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }], value: { stringMatch: { prefix: 'istio-ext-authz' } } },
    });
    assert.equal(unpack(HttpRbacSchema, typed(4)).rules!.action, 2 /* LOG */);
    assert.equal(unpack(HttpRbacSchema, typed(5)).rules!.action, 1 /* DENY */);
    const allow = unpack(HttpRbacSchema, typed(6)).rules!;
    assert.equal(allow.action, 0);
    const json = JSON.stringify(toProtoJson(HttpRbacSchema, unpack(HttpRbacSchema, typed(6))));
    // cluster.local stands for the mesh's trust domain; other trust domains are kept; namespaces match the SPIFFE path.
    assert.match(json, /"exact":"spiffe:\/\/example\.org\/ns\/foo\/sa\/bar"/);
    assert.match(json, /"prefix":"spiffe:\/\/other\.org\/ns\/x\/sa\/"/);
    assert.match(json, /"regex":"\.\*\/ns\/prod\/\.\*"/);
    assert.deepEqual(Object.keys(allow.policies).sort(), ['ns[default]-policy[allow]-rule[0]', 'ns[default]-policy[allow]-rule[1]']);
  });

  it('TCP: network ext_authz and rbac before tcp_proxy; an ALLOW rule with HTTP fields is left out, a DENY rule loses them', () => {
    const l = inbound(POLICIES, 'tcp');
    const filters = l.filterChains[0]!.filters;
    assert.deepEqual(filters.map((f) => f.name), ['envoy.filters.network.ext_authz', 'envoy.filters.network.rbac', 'envoy.filters.network.rbac', 'envoy.filters.network.rbac', 'envoy.filters.network.tcp_proxy']);
    const rbac = (i: number) => unpack(NetworkRbacSchema, filters[i]!.configType.value as never);
    assert.equal(rbac(1).statPrefix, 'tcp.');
    const deny = rbac(2).rules!;
    assert.equal(deny.action, 1);
    assert.deepEqual(JSON.stringify(toProtoJson(NetworkRbacSchema, rbac(2))).includes(':method'), false, 'methods removed on TCP');
    const allow = rbac(3).rules!;
    assert.deepEqual(Object.keys(allow.policies), ['ns[default]-policy[allow]-rule[0]'], 'the paths rule is left out');
  });
});

describe('bad security filter configs are NACKed with the field named', () => {
  let sp: StaticProxy;
  const upstream = new Upstream('app');
  let port = 0;
  let good: Listener;

  before(async () => {
    await upstream.start();
    port = await freePort();
    const yaml = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny-blocked, namespace: default}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: ["/blocked"]}}]}]\n`;
    sp = await startStaticProxy(yaml, { inbound: [{ port, targetPort: upstream.port, protocol: 'http' }] });
    good = sp.resources.listeners.find((l) => l.name === `inbound|${port}`)!;
    assert.ok(good);
  });
  after(async () => {
    await sp.stop();
    await new Promise<void>((r) => upstream.server.close(() => r()));
  });

  /** Serves the inbound listener with its HCM edited; returns the NACK detail. */
  async function nackOf(edit: (hcm: HttpConnectionManager, l: Listener) => void): Promise<string> {
    const l = clone(ListenerSchema, good);
    const f = l.filterChains[0]!.filters.at(-1)!;
    const hcm = unpack(HttpConnectionManagerSchema, f.configType.value as never);
    edit(hcm, l);
    f.configType = { case: 'typedConfig', value: pack(HttpConnectionManagerSchema, hcm) };
    const listeners = sp.resources.listeners.map((x) => (x.name === l.name ? l : x));
    const v = sp.ads.setAll({ ...sp.resources, listeners });
    const r = await sp.ads.settled(TypeUrl.Listener, v);
    assert.equal(r.acked, false, 'expected a NACK');
    // The last good listener is still in force.
    assert.equal((await httpRequest(port, 'x', '/blocked')).status, 403);
    assert.equal((await httpRequest(port, 'x', '/fine')).status, 200);
    return r.nack!;
  }

  it('rbac: a bad CIDR, a CEL condition', async () => {
    assert.equal((await httpRequest(port, 'x', '/blocked')).status, 403);
    const cidr = await nackOf((hcm) => {
      const rb = unpack(HttpRbacSchema, hcm.httpFilters[0]!.configType.value as never);
      const pol = Object.values(rb.rules!.policies)[0]!;
      pol.principals = [{ $typeName: 'envoy.config.rbac.v3.Principal', identifier: { case: 'directRemoteIp', value: { $typeName: 'envoy.config.core.v3.CidrRange', addressPrefix: '10.0.0.300', prefixLen: 8 } } }] as never;
      hcm.httpFilters[0]!.configType = { case: 'typedConfig', value: pack(HttpRbacSchema, rb) };
    });
    assert.match(cidr, /http_filters\[0\]\.typed_config\.rules\.policies\["ns\[default\]-policy\[deny-blocked\]-rule\[0\]"\]\.principals\[0\]\.direct_remote_ip: invalid CIDR range 10\.0\.0\.300\/8/);
  });

  it('jwt_authn: a JWKS that is not JSON; an unknown provider in a requirement', async () => {
    const jwks = await nackOf((hcm) => {
      const cfg = { providers: { p: { issuer: 'i', jwksSourceSpecifier: { case: 'localJwks' as const, value: { specifier: { case: 'inlineString' as const, value: '{nope' } } } } } };
      hcm.httpFilters.unshift({ ...hcm.httpFilters[0]!, name: 'envoy.filters.http.jwt_authn', configType: { case: 'typedConfig', value: pack(JwtAuthenticationSchema, cfg) } });
    });
    assert.match(jwks, /http_filters\[0\]\.typed_config\.providers\["p"\]\.local_jwks: JWKS is not valid JSON/);
    const unknown = await nackOf((hcm) => {
      const cfg = {
        providers: { p: { issuer: 'i', jwksSourceSpecifier: { case: 'remoteJwks' as const, value: { httpUri: { uri: 'http://127.0.0.1:1/jwks', timeout: { seconds: 1n } } } } } },
        rules: [{ match: { pathSpecifier: { case: 'prefix' as const, value: '/' } }, requirementType: { case: 'requires' as const, value: { requiresType: { case: 'providerName' as const, value: 'q' } } } }],
      };
      hcm.httpFilters.unshift({ ...hcm.httpFilters[0]!, name: 'envoy.filters.http.jwt_authn', configType: { case: 'typedConfig', value: pack(JwtAuthenticationSchema, cfg) } });
    });
    assert.match(unknown, /http_filters\[0\]\.typed_config\.rules\[0\]\.requires\.provider_name: unknown provider "q"/);
  });

  it('ext_authz: no service; an empty cluster name', async () => {
    const none = await nackOf((hcm) => {
      hcm.httpFilters.unshift({ ...hcm.httpFilters[0]!, name: 'envoy.filters.http.ext_authz', configType: { case: 'typedConfig', value: pack(ExtAuthzSchema, {}) } });
    });
    assert.match(none, /http_filters\[0\]\.typed_config\.grpc_service: is required/);
    const empty = await nackOf((hcm) => {
      const cfg = { services: { case: 'grpcService' as const, value: { targetSpecifier: { case: 'envoyGrpc' as const, value: { clusterName: '' } } } } };
      hcm.httpFilters.unshift({ ...hcm.httpFilters[0]!, name: 'envoy.filters.http.ext_authz', configType: { case: 'typedConfig', value: pack(ExtAuthzSchema, cfg) } });
    });
    assert.match(empty, /grpc_service\.envoy_grpc\.cluster_name: must not be empty/);
  });

  it('network rbac before the connection manager: an empty stat_prefix; an unsupported network filter', async () => {
    const prefix = await nackOf((_hcm, l) => {
      l.filterChains[0]!.filters.unshift({ ...l.filterChains[0]!.filters[0]!, name: 'envoy.filters.network.rbac', configType: { case: 'typedConfig', value: pack(NetworkRbacSchema, { rules: {} }) } });
    });
    assert.match(prefix, /filter_chains\[0\]\.filters\[0\]\.typed_config\.stat_prefix: must not be empty/);
    const other = await nackOf((_hcm, l) => {
      l.filterChains[0]!.filters.unshift({ ...l.filterChains[0]!.filters[0]!, name: 'envoy.filters.network.local_ratelimit' });
    });
    assert.match(other, /filter_chains\[0\]\.filters\[0\]: network filter envoy\.filters\.network\.local_ratelimit is not supported before the terminal filter/);
  });
});

describe('request path normalization (normalize_path, merge_slashes)', () => {
  it('resolves dot segments (also percent-encoded), decodes unreserved escapes only, keeps the query', () => {
    const n = (p: string, merge = false) => normalizeRequestPath(p, true, merge);
    assert.equal(n('/a/b'), '/a/b');
    assert.equal(n('/a/../admin'), '/admin');
    assert.equal(n('/a/./b/'), '/a/b/');
    assert.equal(n('/%2e%2E/admin'), '/admin');
    assert.equal(n('/..'), '/');
    assert.equal(n('/a/b/..'), '/a/');
    assert.equal(n('/a\\..\\b'), '/b');
    assert.equal(n('/a/%41%2f%7e'), '/a/A%2F~');
    assert.equal(n('/p/../q?x=/../y'), '/q?x=/../y');
    assert.equal(n('//a//b'), '//a//b');
    assert.equal(n('//a//b', true), '/a/b');
    assert.equal(n('*'), '*');
  });
});
