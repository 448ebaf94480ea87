// AuthorizationPolicy from YAML through the control plane to a real proxy, checked with real requests and TCP
// connections to the server workload's inbound ports (HTTP and TCP): ALLOW / DENY / AUDIT, paths with wildcards,
// methods, hosts (case, ports), ports, headers, ipBlocks / remoteIpBlocks, not* fields, conditions, Istio's TCP
// semantics for HTTP-only fields, SMI TrafficTarget deny-by-default, RBAC stats and response details.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { statValue } from '../helpers/raw-client.js';
import { policy, SecurityMesh, tcpExchange } from './security-helpers.js';

const DENIED = 'RBAC: access denied';

describe('AuthorizationPolicy on a sidecar (HTTP and TCP, live traffic)', () => {
  const mesh = new SecurityMesh();
  before(async () => {
    await mesh.start({ tcp: true });
  });
  after(async () => {
    await mesh.stop();
  });

  it('without policies everything passes', async () => {
    await mesh.applyPolicies([]);
    assert.equal((await mesh.get('/anything')).status, 200);
    assert.equal(await tcpExchange(mesh.tcpPort, 'hi'), 'echo:hi');
  });

  it('ALLOW: paths with prefix and suffix wildcards, exact paths, methods; everything else 403', async () => {
    await mesh.applyPolicies([policy('allow-paths', 'action: ALLOW\nrules:\n- to:\n  - operation:\n      paths: ["/public/*", "*.html", "/exact"]\n      methods: ["GET", "HEAD"]')]);
    for (const p of ['/public/a', '/public/', '/deep/page.html', '/exact', '/exact?q=1']) assert.equal((await mesh.get(p)).status, 200, p);
    for (const p of ['/exact/', '/private', '/publicx']) {
      const r = await mesh.get(p);
      assert.equal(r.status, 403, p);
      assert.equal(r.body, DENIED);
      assert.equal(r.headers['x-weft-response-code-details'], 'rbac_access_denied_matched_policy[none]');
    }
    assert.equal((await mesh.get('/public/a', {}, 'POST')).status, 403);
    // The TCP port: the only rule uses HTTP fields, so on TCP it is left out and the ALLOW policy allows nothing.
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
  });

  it('DENY wins over ALLOW; notPaths and notMethods', async () => {
    await mesh.applyPolicies([
      policy('allow-most', 'action: ALLOW\nrules:\n- to: [{operation: {notPaths: ["/admin/*"]}}]'),
      policy('deny-secret', 'action: DENY\nrules:\n- to: [{operation: {paths: ["/secret"]}}]\n- to: [{operation: {notMethods: ["GET", "HEAD"], paths: ["/ro/*"]}}]'),
    ]);
    assert.equal((await mesh.get('/open')).status, 200);
    assert.equal((await mesh.get('/admin/x')).status, 403);
    const secret = await mesh.get('/secret');
    assert.equal(secret.status, 403);
    assert.equal(secret.headers['x-weft-response-code-details'], 'rbac_access_denied_matched_policy[ns[default]-policy[deny-secret]-rule[0]]');
    // The path is normalized (Istio's default normalize_path) before it is authorized.
    for (const p of ['/ro/../secret', '/x/%2e%2e/secret', '/ro/.%2E/admin/x', '/x\\..\\secret']) assert.equal((await mesh.get(p)).status, 403, p);
    assert.equal((await mesh.get('/ro/doc')).status, 200);
    assert.equal((await mesh.get('/ro/doc', {}, 'DELETE')).status, 403);
  });

  it('hosts match case-insensitively, with and without a port, with wildcards', async () => {
    await mesh.applyPolicies([policy('deny-hosts', 'action: DENY\nrules:\n- to: [{operation: {hosts: ["evil.example.com", "*.bad.io"]}}]')]);
    for (const h of ['evil.example.com', 'EVIL.Example.COM:8080', 'x.bad.io', 'y.BAD.io:99']) assert.equal((await mesh.get('/', {}, 'GET', h)).status, 403, h);
    for (const h of ['good.io', 'evil.example.com.other', 'bad.io']) assert.equal((await mesh.get('/', {}, 'GET', h)).status, 200, h);
    // A DENY rule with only HTTP fields becomes a rule without them on TCP: it denies every connection (fails closed).
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
  });

  it('ports: the destination port of the connection', async () => {
    await mesh.applyPolicies([policy('allow-port', `action: ALLOW\nrules:\n- to: [{operation: {ports: ["${mesh.httpPort}"]}}]`)]);
    assert.equal((await mesh.get('/')).status, 200);
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
    await mesh.applyPolicies([policy('allow-port', `action: ALLOW\nrules:\n- to: [{operation: {ports: ["${mesh.tcpPort}"]}}]`)]);
    assert.equal((await mesh.get('/')).status, 403);
    assert.equal(await tcpExchange(mesh.tcpPort, 'y'), 'echo:y');
  });

  it('request headers (comma lists, prefix wildcards) and ipBlocks in one rule; notIpBlocks', async () => {
    await mesh.applyPolicies([policy('allow-team', 'action: ALLOW\nrules:\n- from: [{source: {ipBlocks: ["127.0.0.0/8"]}}]\n  when:\n  - key: request.headers[x-team]\n    values: ["blue", "green*"]')]);
    assert.equal((await mesh.get('/', { 'x-team': 'blue' })).status, 200);
    assert.equal((await mesh.get('/', { 'x-team': 'green-2' })).status, 200);
    assert.equal((await mesh.get('/', { 'x-team': 'red,blue' })).status, 200);
    assert.equal((await mesh.get('/', { 'x-team': 'red' })).status, 403);
    assert.equal((await mesh.get('/')).status, 403);
    await mesh.applyPolicies([policy('allow-not-local', 'action: ALLOW\nrules:\n- from: [{source: {notIpBlocks: ["127.0.0.1/32"]}}]')]);
    assert.equal((await mesh.get('/')).status, 403);
    // ipBlocks apply to TCP too.
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
  });

  it('remoteIpBlocks read the last x-forwarded-for address; source.ip the peer', async () => {
    await mesh.applyPolicies([policy('allow-remote', 'action: ALLOW\nrules:\n- from: [{source: {remoteIpBlocks: ["10.1.0.0/16"]}}]\n  when: [{key: source.ip, values: ["127.0.0.1"]}]')]);
    assert.equal((await mesh.get('/', { 'x-forwarded-for': '10.1.2.3' })).status, 200);
    assert.equal((await mesh.get('/', { 'x-forwarded-for': '1.1.1.1, 10.1.2.3' })).status, 200);
    assert.equal((await mesh.get('/', { 'x-forwarded-for': '10.1.2.3, 1.1.1.1' })).status, 403);
    assert.equal((await mesh.get('/')).status, 403);
  });

  it('conditions on the destination: destination.port, notValues', async () => {
    await mesh.applyPolicies([policy('deny-port', `action: DENY\nrules:\n- when: [{key: destination.port, notValues: ["${mesh.httpPort}"]}]`)]);
    assert.equal((await mesh.get('/')).status, 200);
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
  });

  it('AUDIT never denies; an ALLOW policy without rules denies everything', async () => {
    const prefix = `http.inbound_0.0.0.0_${mesh.httpPort}.`;
    await mesh.applyPolicies([policy('audit-all', 'action: AUDIT\nrules:\n- to: [{operation: {paths: ["/audited"]}}]')]);
    const before = await statValue(mesh.ports.admin, `${prefix}rbac.logged`);
    assert.equal((await mesh.get('/audited')).status, 200);
    assert.equal((await mesh.get('/other')).status, 200);
    assert.equal(await statValue(mesh.ports.admin, `${prefix}rbac.logged`), before + 1);
    assert.equal(await tcpExchange(mesh.tcpPort, 'a'), 'echo:a');
    const deniedBefore = await statValue(mesh.ports.admin, `${prefix}rbac.denied`);
    await mesh.applyPolicies([policy('allow-nothing', 'action: ALLOW')]);
    assert.equal((await mesh.get('/')).status, 403);
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
    assert.ok((await statValue(mesh.ports.admin, `${prefix}rbac.denied`)) > deniedBefore, 'rbac.denied counted');
    assert.ok((await statValue(mesh.ports.admin, 'tcp.rbac.denied')) > 0, 'tcp.rbac.denied counted');
  });

  it('a policy for other workloads, namespaces or service accounts does not apply', async () => {
    await mesh.applyPolicies([
      policy('other-labels', 'action: ALLOW').replace('app: server', 'app: other'),
      'apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: other-ns, namespace: prod}\nspec: {action: ALLOW}\n',
    ]);
    assert.equal((await mesh.get('/')).status, 200);
    // The root namespace (weft-system, MeshConfig rootNamespace) applies mesh-wide.
    await mesh.applyPolicies(['apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: mesh-deny, namespace: weft-system}\nspec:\n  action: DENY\n  rules: [{to: [{operation: {paths: ["/blocked"]}}]}]\n']);
    assert.equal((await mesh.get('/blocked')).status, 403);
    assert.equal((await mesh.get('/fine')).status, 200);
  });

  it('SMI TrafficTarget: the destination service account becomes deny-by-default (only the listed identities may call)', async () => {
    const smi = [
      'apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: api, namespace: default}\nspec:\n  matches:\n  - {name: read, methods: ["GET"], pathRegex: "/api"}\n',
      'apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: to-server, namespace: default}\nspec:\n  destination: {kind: ServiceAccount, name: server-sa, namespace: default}\n  sources: [{kind: ServiceAccount, name: client-sa, namespace: default}]\n  rules: [{kind: HTTPRouteGroup, name: api, matches: ["read"]}]\n',
    ];
    await mesh.applyPolicies(smi);
    // Plaintext callers carry no identity: nothing matches the allowed sources.
    assert.equal((await mesh.get('/api/x')).status, 403);
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
    // A TrafficTarget for another service account leaves this workload alone.
    await mesh.applyPolicies([smi[0]!, smi[1]!.replace('name: server-sa', 'name: other-sa')]);
    assert.equal((await mesh.get('/api/x')).status, 200);
  });
});
