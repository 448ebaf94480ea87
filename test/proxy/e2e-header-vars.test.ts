// Header mutation variables end to end: an Istio VirtualService `headers` block whose values use Envoy's
// command operators (%DOWNSTREAM_REMOTE_ADDRESS%, %UPSTREAM_REMOTE_ADDRESS%, %REQ(...)%, ...), translated by the
// real `weft control-plane` and formatted per request by a real `weft proxy`; the upstream reports the request
// headers it received, and the response headers are read by the client. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { send, Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

describe('weft proxy: header variables end to end', () => {
  const mesh = new MeshWorkDir('weft-vars-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const app = new Upstream('app');
  let outbound = 0;

  before(async () => {
    await app.start();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('app', { name: 'http', port: 9080 }),
        workloadEntryYaml('app-1', { app: 'app' }, 'http', app.port),
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: app, namespace: default}
spec:
  hosts: [app]
  http:
  - route: [{destination: {host: app}}]
    headers:
      request:
        set:
          x-client: "%DOWNSTREAM_REMOTE_ADDRESS%"
          x-client-ip: "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"
          x-direct: "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%"
          x-local: "%DOWNSTREAM_LOCAL_ADDRESS%"
          x-proxy-host: "%HOSTNAME%"
          x-proto: "%PROTOCOL%"
          x-start: "%START_TIME(%s)%"
          x-copied: "in=%REQ(x-in)%"
          x-upstream-in-request: "[%UPSTREAM_REMOTE_ADDRESS%]"
      response:
        set:
          x-upstream-addr: "%UPSTREAM_REMOTE_ADDRESS%"
          x-echo: "%REQ(x-in)%"
          x-status: "%RESPONSE_CODE%"
`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    await proxy.start(
      proxyArgs(addr.xds, 'e2e-vars', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(await freePort()), '--stats-port', '0']),
      /weft proxy .* started/,
      'proxy',
    );
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    await app.stop();
    mesh.remove();
  });

  test('request headers: downstream addresses, hostname, protocol, start time, %REQ()%', async () => {
    const before = Math.floor(Date.now() / 1000);
    const r = await send(outbound, { path: '/v', headers: { host: 'app:9080', 'x-in': 'hello' } });
    assert.equal(r.status, 200);
    const seen = app.seen.find((s) => s.url === '/v')!;
    const h = seen.headers;
    assert.match(String(h['x-client']), /^127\.0\.0\.1:\d+$/);
    assert.equal(h['x-client-ip'], '127.0.0.1');
    assert.equal(h['x-direct'], h['x-client'], 'no x-forwarded-for: the remote address is the peer');
    assert.equal(h['x-local'], `127.0.0.1:${outbound}`);
    assert.equal(h['x-proxy-host'], hostname());
    assert.equal(h['x-proto'], 'HTTP/1.1');
    const start = Number(h['x-start']);
    assert.ok(start >= before - 1 && start <= Math.ceil(Date.now() / 1000) + 1, `start ${h['x-start']}`);
    assert.equal(h['x-copied'], 'in=hello');
    assert.equal(h['x-upstream-in-request'], '[]', 'no upstream is known when request headers are formatted');
  });

  test('without use_remote_address the downstream address comes from x-forwarded-for (port 0), the direct one from the socket', async () => {
    await send(outbound, { path: '/xff', headers: { host: 'app:9080', 'x-forwarded-for': '10.1.2.3, 10.9.8.7' } });
    const h = app.seen.find((s) => s.url === '/xff')!.headers;
    assert.equal(h['x-client'], '10.9.8.7:0');
    assert.equal(h['x-client-ip'], '10.9.8.7');
    assert.match(String(h['x-direct']), /^127\.0\.0\.1:\d+$/);
  });

  test('response headers: the upstream address, %REQ()% and the response code', async () => {
    const r = await send(outbound, { path: '/resp', headers: { host: 'app:9080', 'x-in': 'back' } });
    assert.equal(r.headers['x-upstream-addr'], `127.0.0.1:${app.port}`);
    assert.equal(r.headers['x-echo'], 'back');
    assert.equal(r.headers['x-status'], '200');
  });
});
