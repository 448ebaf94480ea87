// CORS end to end: an Istio VirtualService `corsPolicy` translated by the real `weft control-plane` into the CORS
// filter's per-route CorsPolicy; a real `weft proxy` answers preflights itself and decorates the responses of
// CORS requests (upstream answers and local replies alike). curl is the browser. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statValue } from '../helpers/admin-http.js';
import { curl, Upstream } from '../helpers/http-upstream.js';
import { h2Request } from '../helpers/h2-clients.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

describe('weft proxy: CORS end to end', () => {
  const mesh = new MeshWorkDir('weft-cors-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const api = new Upstream('api');
  let proxyUrl = '';
  let adminPort = 0;

  const cors = `    corsPolicy:
      allowOrigins: [{exact: "https://app.example"}, {prefix: "https://dev."}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom, content-type]
      exposeHeaders: [x-exposed]
      maxAge: 24h
      allowCredentials: true
`;

  before(async () => {
    await api.start();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('api', { name: 'http', port: 9080 }),
        workloadEntryYaml('api-1', { app: 'api' }, 'http', api.port),
        serviceYaml('empty', { name: 'http', port: 9081 }),
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: api, namespace: default}\nspec:\n  hosts: [api]\n  http:\n  - match: [{uri: {prefix: /open}}]\n    route: [{destination: {host: api}}]\n  - route: [{destination: {host: api}}]\n${cors}`,
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: empty, namespace: default}\nspec:\n  hosts: [empty]\n  http:\n  - route: [{destination: {host: empty}}]\n${cors}`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    const outbound = await freePort();
    const health = await freePort();
    adminPort = await freePort();
    proxyUrl = `http://127.0.0.1:${outbound}`;
    await proxy.start(
      proxyArgs(addr.xds, 'e2e-cors', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(adminPort), '--stats-port', '0']),
      /weft proxy .* started/,
      'proxy',
    );
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    await api.stop();
    mesh.remove();
  });

  const acHeaders = (h: Record<string, string>) => Object.keys(h).filter((k) => k.startsWith('access-control-')).sort();

  test('preflight from an allowed origin is answered by the proxy', async () => {
    const r = await curl('http://api:9080/items', ['-x', proxyUrl, '-X', 'OPTIONS', '-H', 'Origin: https://app.example', '-H', 'Access-Control-Request-Method: POST', '-H', 'Access-Control-Request-Headers: x-custom']);
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(r.headers['access-control-allow-headers'], 'x-custom,content-type');
    assert.equal(r.headers['access-control-max-age'], '86400');
    assert.equal(r.headers['access-control-expose-headers'], undefined, 'expose headers belong to actual responses');
    assert.equal(r.body.length, 0);
    assert.equal(api.count((s) => s.method === 'OPTIONS'), 0, 'the upstream never sees the preflight');
    // A prefix match allows the origin too.
    const p = await curl('http://api:9080/items', ['-x', proxyUrl, '-X', 'OPTIONS', '-H', 'Origin: https://dev.example', '-H', 'Access-Control-Request-Method: GET']);
    assert.equal(p.headers['access-control-allow-origin'], 'https://dev.example');
  });

  test('actual request from an allowed origin: the response gets allow-origin, credentials and expose headers', async () => {
    const r = await curl('http://api:9080/items', ['-x', proxyUrl, '-H', 'Origin: https://app.example']);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'api');
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(r.headers['access-control-allow-credentials'], 'true');
    assert.equal(r.headers['access-control-expose-headers'], 'x-exposed');
  });

  test('origin not allowed: no CORS headers, and its preflight is forwarded upstream (Istio’s default)', async () => {
    const r = await curl('http://api:9080/items', ['-x', proxyUrl, '-H', 'Origin: https://evil.example']);
    assert.equal(r.status, 200);
    assert.deepEqual(acHeaders(r.headers), []);
    const before = api.count((s) => s.method === 'OPTIONS');
    const p = await curl('http://api:9080/items', ['-x', proxyUrl, '-X', 'OPTIONS', '-H', 'Origin: https://evil.example', '-H', 'Access-Control-Request-Method: POST']);
    assert.equal(p.headers['x-upstream'], 'api');
    assert.deepEqual(acHeaders(p.headers), []);
    assert.equal(api.count((s) => s.method === 'OPTIONS'), before + 1);
  });

  test('no Origin, or a route without a CORS policy: untouched', async () => {
    const a = await curl('http://api:9080/items', ['-x', proxyUrl]);
    assert.deepEqual(acHeaders(a.headers), []);
    const before = api.count((s) => s.method === 'OPTIONS');
    const b = await curl('http://api:9080/open', ['-x', proxyUrl, '-X', 'OPTIONS', '-H', 'Origin: https://app.example', '-H', 'Access-Control-Request-Method: POST']);
    assert.equal(b.headers['x-upstream'], 'api', 'no policy on /open: the preflight goes upstream');
    assert.deepEqual(acHeaders(b.headers), []);
    assert.equal(api.count((s) => s.method === 'OPTIONS'), before + 1);
  });

  test('a local reply to a CORS request carries the CORS headers too (503 no healthy upstream)', async () => {
    const r = await curl('http://empty:9081/x', ['-x', proxyUrl, '-H', 'Origin: https://app.example']);
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'no healthy upstream');
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
  });

  test('HTTP/2 downstream (h2c): the preflight is answered by the proxy, the actual response gets the CORS headers', async () => {
    const port = Number(new URL(proxyUrl).port);
    const before = api.count((s) => s.method === 'OPTIONS');
    const p = await h2Request(port, { authority: 'api:9080', method: 'OPTIONS', path: '/items', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST' } });
    assert.equal(p.status, 200);
    assert.equal(p.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(p.headers['access-control-allow-methods'], 'GET,POST');
    assert.equal(api.count((s) => s.method === 'OPTIONS'), before, 'the upstream never sees the preflight');
    const r = await h2Request(port, { authority: 'api:9080', path: '/items', headers: { origin: 'https://app.example' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'api');
    assert.equal(r.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(r.headers['access-control-expose-headers'], 'x-exposed');
  });

  test('origin stats count the requests with an Origin under a policy', async () => {
    // Valid: three preflights, two actual requests, one local reply. Invalid: the evil origin's request and preflight.
    assert.equal(await statValue(adminPort, 'http.outbound.cors.origin_valid'), 6);
    assert.equal(await statValue(adminPort, 'http.outbound.cors.origin_invalid'), 2);
  });
});
