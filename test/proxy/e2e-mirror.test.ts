// Request mirroring end to end: the real `weft control-plane` translates Istio VirtualService `mirror` /
// `mirrorPercentage` into route request_mirror_policies and a real `weft proxy` sends fire-and-forget copies. The
// mirror upstream records what it receives (the `-shadow` host, the body); the main responses must be unaffected
// when the mirror is down (connection refused) or hangs (never answers). Percentages are checked with a wide
// binomial tolerance. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent } from 'node:http';
import { eventually, send, Upstream } from '../helpers/http-upstream.js';
import { h2Request, H2Upstream } from '../helpers/h2-clients.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

describe('weft proxy: request mirroring end to end', () => {
  const mesh = new MeshWorkDir('weft-mirror-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const main = new Upstream('main');
  const mirror = new Upstream('mirror');
  // An HTTP/2 (h2c) mirror cluster: mirrors go through the common pool interface, whatever the protocol.
  const mirror2 = new H2Upstream('mirror2');
  const hung: Array<() => void> = [];
  // Never answers (until the test ends).
  const hang = new Upstream('hang', (_req, res) => {
    hung.push(() => res.destroy());
  });
  let outbound = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });

  before(async () => {
    await main.start();
    await mirror.start();
    await mirror2.start();
    await hang.start();
    const deadPort = await freePort();
    const vs = (prefix: string, host: string, percent?: number) =>
      `  - match: [{uri: {prefix: ${prefix}}}]\n    route: [{destination: {host: reviews}}]\n    mirror: {host: ${host}}\n${percent !== undefined ? `    mirrorPercentage: {value: ${percent}}\n` : ''}`;
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('reviews', { name: 'http', port: 9080 }),
        workloadEntryYaml('reviews-1', { app: 'reviews' }, 'http', main.port),
        serviceYaml('mirror', { name: 'http', port: 9090 }),
        workloadEntryYaml('mirror-1', { app: 'mirror' }, 'http', mirror.port),
        serviceYaml('mirror2', { name: 'http2', port: 9093 }),
        workloadEntryYaml('mirror2-1', { app: 'mirror2' }, 'http2', mirror2.port),
        serviceYaml('hang', { name: 'http', port: 9091 }),
        workloadEntryYaml('hang-1', { app: 'hang' }, 'http', hang.port),
        serviceYaml('dead', { name: 'http', port: 9092 }),
        workloadEntryYaml('dead-1', { app: 'dead' }, 'http', deadPort),
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n` +
          vs('/m/', 'mirror') +
          vs('/m2/', 'mirror2') +
          vs('/hang/', 'hang') +
          vs('/dead/', 'dead') +
          vs('/half/', 'mirror', 50) +
          `  - route: [{destination: {host: reviews}}]\n`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    await proxy.start(
      proxyArgs(addr.xds, 'e2e-mirror', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(await freePort()), '--stats-port', '0']),
      /weft proxy .* started/,
      'proxy',
    );
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    agent.destroy();
    await proxy.stop();
    await cp.stop();
    for (const h of hung.splice(0)) h();
    await main.stop();
    await mirror.stop();
    await mirror2.stop();
    await hang.stop();
    mesh.remove();
  });

  const req = (path: string, init: { method?: string; body?: Buffer } = {}) =>
    send(outbound, { path, method: init.method, body: init.body, headers: { host: 'reviews:9080', 'x-tag': 'copied' }, agent });

  test('the mirror gets a copy with the -shadow host and the same body; the main response is the main upstream’s', async () => {
    const r = await req('/m/get');
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'main');
    await eventually(() => mirror.count((s) => s.url === '/m/get') === 1, 'the mirrored GET');
    const copy = mirror.seen.find((s) => s.url === '/m/get')!;
    assert.equal(copy.headers.host, 'reviews-shadow:9080');
    assert.equal(copy.headers['x-tag'], 'copied');
    assert.equal(main.seen.find((s) => s.url === '/m/get')!.headers.host, 'reviews:9080', 'the main request keeps its host');

    const body = Buffer.alloc(200_000, 'm');
    const p = await req('/m/post', { method: 'POST', body });
    assert.equal(p.status, 200);
    await eventually(() => mirror.count((s) => s.url === '/m/post') === 1, 'the mirrored POST');
    const sha = createHash('sha256').update(body).digest('hex');
    assert.equal(mirror.seen.find((s) => s.url === '/m/post')!.bodySha, sha);
    assert.equal(main.seen.find((s) => s.url === '/m/post')!.bodySha, sha);
  });

  test('an HTTP/2 mirror cluster gets the copy over h2c, from HTTP/1.1 and HTTP/2 downstream requests', async () => {
    const body = Buffer.alloc(100_000, 'h');
    const sha = createHash('sha256').update(body).digest('hex');
    const p = await req('/m2/post', { method: 'POST', body });
    assert.equal(p.status, 200);
    assert.equal(p.headers['x-upstream'], 'main');
    await eventually(() => mirror2.seen.some((s) => s.path === '/m2/post'), 'the mirrored POST on the HTTP/2 mirror');
    const copy = mirror2.seen.find((s) => s.path === '/m2/post')!;
    assert.equal(copy.authority, 'reviews-shadow:9080');
    assert.equal(copy.bodySha, sha);
    assert.equal(copy.headers['x-tag'], 'copied');
    // An HTTP/2 downstream request is mirrored the same way (and answered by the HTTP/1.1 main cluster).
    const r2 = await h2Request(outbound, { authority: 'reviews:9080', path: '/m2/from-h2', method: 'POST', headers: { 'x-tag': 'copied' }, body });
    assert.equal(r2.status, 200);
    assert.equal(r2.headers['x-upstream'], 'main');
    await eventually(() => mirror2.seen.some((s) => s.path === '/m2/from-h2'), 'the mirrored POST of the HTTP/2 request');
    assert.equal(mirror2.seen.find((s) => s.path === '/m2/from-h2')!.bodySha, sha);
  });

  test('a mirror that is down or never answers does not affect the main requests', async () => {
    for (let i = 0; i < 20; i++) {
      const d = await req(`/dead/${i}`);
      assert.equal(d.status, 200);
      assert.equal(d.headers['x-upstream'], 'main');
      const h = await req(`/hang/${i}`, { method: 'POST', body: Buffer.from(`hang ${i}`) });
      assert.equal(h.status, 200);
      assert.equal(h.headers['x-upstream'], 'main');
    }
    await eventually(() => hang.count((s) => s.url.startsWith('/hang/')) >= 1, 'the hung mirror to receive copies');
    assert.equal(main.count((s) => s.url.startsWith('/dead/') || s.url.startsWith('/hang/')), 40);
  });

  test('mirrorPercentage 50: about half of 300 requests are mirrored', async () => {
    const N = 300;
    for (let i = 0; i < N; i++) assert.equal((await req(`/half/${i}`)).status, 200);
    // Copies are fire and forget: wait until the count stops growing (bounded), then check the share.
    let last = -1;
    for (let i = 0; i < 50; i++) {
      const n = mirror.count((s) => s.url.startsWith('/half/'));
      if (n === last) break;
      last = n;
      await new Promise((r) => setTimeout(r, 100));
    }
    const mirrored = mirror.count((s) => s.url.startsWith('/half/'));
    // Binomial(300, 0.5): mean 150, sd ≈ 8.7; ±60 is about 7 standard deviations.
    assert.ok(mirrored > 90 && mirrored < 210, `mirrored ${mirrored} of ${N}`);
    assert.equal(main.count((s) => s.url.startsWith('/half/')), N);
  });
});
