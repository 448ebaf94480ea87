// CUSTOM AuthorizationPolicy end to end with the example authorizer (examples/ext-authz/authorizer.mjs, a real
// gRPC server): the control plane turns the MeshConfig extension provider and the policy into Istio's shadow-RBAC +
// ext_authz filters, the sidecar calls Authorization/Check for the requests the CUSTOM rules match — allowed (the
// authorizer's headers reach the app), denied (its status, body and headers reach the client, flag UAEX), not
// sent (a path the rules do not match), authorizer down (403, ext_authz_error) — and checks TCP connections with
// the network ext_authz filter.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, ROOT, serviceYaml, WeftProcess, workloadEntryYaml } from '../helpers/mesh-processes.js';
import { policy, SecurityMesh, tcpExchange } from './security-helpers.js';

describe('CUSTOM authorization with the example external authorizer', () => {
  const mesh = new SecurityMesh();
  const authorizer = new WeftProcess();
  let authzPort = 0;

  before(async () => {
    authzPort = await freePort();
    await authorizer.startNode([join(ROOT, 'examples', 'ext-authz', 'authorizer.mjs'), '--port', String(authzPort)], /ext-authz listening on/, 'example authorizer');
    await mesh.start({
      tcp: true,
      base: [
        `apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n  extensionProviders:\n  - name: sample-ext-authz\n    envoyExtAuthzGrpc: {service: ext-authz.default.svc.cluster.local, port: ${authzPort}, timeout: 2s}\n`,
        serviceYaml('ext-authz', { name: 'grpc', port: authzPort }),
        workloadEntryYaml('ext-authz-1', { app: 'ext-authz' }, 'grpc', authzPort),
      ],
    });
    await mesh.applyPolicies([policy('ext', 'action: CUSTOM\nprovider: {name: sample-ext-authz}\nrules:\n- to: [{operation: {paths: ["/api/*"]}}]')]);
  });
  after(async () => {
    await authorizer.stop();
    await mesh.stop();
  });

  it('allowed by the authorizer: the request goes on with the headers it set', async () => {
    const r = await mesh.get('/api/items', { 'x-ext-authz': 'allow' });
    assert.equal(r.status, 200, r.body);
    assert.equal(mesh.http.seen[mesh.http.seen.length - 1]!.headers['x-ext-authz-check-result'], 'allowed');
  });

  it('denied by the authorizer: its status, body and headers, flag UAEX', async () => {
    const r = await mesh.get('/api/items', { 'x-ext-authz': 'nope', 'x-ext-authz-status': '418' });
    assert.equal(r.status, 418);
    assert.equal(r.body, 'denied by ext_authz for x-ext-authz=nope');
    assert.equal(r.headers['x-ext-authz-check-result'], 'denied');
    assert.equal(r.headers['x-weft-response-flags'], 'UAEX');
    assert.equal(r.headers['x-weft-response-code-details'], 'ext_authz_denied');
    const plain = await mesh.get('/api/items');
    assert.equal(plain.status, 403);
  });

  it('requests the CUSTOM rules do not match never reach the authorizer', async () => {
    const before = authorizer.stderr.split('\n').length;
    assert.equal((await mesh.get('/public')).status, 200);
    assert.equal(authorizer.stderr.split('\n').length, before, 'no check was made');
  });

  it('TCP connections are checked too (the rule has only HTTP fields, which TCP drops: every connection is checked)', async () => {
    assert.equal(await tcpExchange(mesh.tcpPort, 'tcp-ok'), 'echo:tcp-ok');
    assert.match(authorizer.stderr, /tcp check from 127\.0\.0\.1:\d+ \(no principal\): allowed/);
  });

  it('authorizer down: denied with 403 (ext_authz_error), TCP closed', async () => {
    await authorizer.stop();
    const r = await mesh.get('/api/items', { 'x-ext-authz': 'allow' });
    assert.equal(r.status, 403);
    assert.equal(r.headers['x-weft-response-flags'], 'UAEX');
    assert.equal(r.headers['x-weft-response-code-details'], 'ext_authz_error');
    assert.equal((await mesh.get('/public')).status, 200);
    assert.equal(await tcpExchange(mesh.tcpPort, 'x'), 'closed');
  });
});
