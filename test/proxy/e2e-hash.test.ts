// Consistent hashing end to end: Istio DestinationRule `loadBalancer.consistentHash` (header, cookie with ttl,
// source IP, query parameter) translated by the real `weft control-plane` into RING_HASH / MAGLEV clusters and
// route hash policies; a real `weft proxy` hashes each request. Three upstreams serve every service; the same key
// must always reach the same upstream, different keys spread, and a generated cookie comes back in Set-Cookie and
// then pins its holder. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { send, Upstream } from '../helpers/http-upstream.js';
import { h2Request } from '../helpers/h2-clients.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

describe('weft proxy: consistent hashing end to end', () => {
  const mesh = new MeshWorkDir('weft-hash-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const ups = [new Upstream('u0'), new Upstream('u1'), new Upstream('u2')];
  let outbound = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });

  // One service per hash kind, each served by the three upstreams.
  const services: Array<[string, number, string]> = [
    ['byheader', 9080, 'consistentHash: {httpHeaderName: x-user}'],
    ['bycookie', 9081, 'consistentHash: {httpCookie: {name: session, ttl: 60s, path: /}}'],
    ['bysource', 9082, 'consistentHash: {useSourceIp: true}'],
    ['byquery', 9083, 'consistentHash: {httpQueryParameterName: user, maglev: {tableSize: 65537}}'],
  ];

  before(async () => {
    for (const u of ups) await u.start();
    const docs: string[] = [];
    for (const [name, port, hash] of services) {
      docs.push(serviceYaml(name, { name: 'http', port }));
      ups.forEach((u, i) => docs.push(workloadEntryYaml(`${name}-${i}`, { app: name }, 'http', u.port)));
      docs.push(`apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ${name}, namespace: default}\nspec:\n  host: ${name}\n  trafficPolicy:\n    loadBalancer:\n      ${hash}\n`);
    }
    mesh.writeConfig('mesh.yaml', yamlDocuments(docs));
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    await proxy.start(
      proxyArgs(addr.xds, 'e2e-hash', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(await freePort()), '--stats-port', '0']),
      /weft proxy .* started/,
      'proxy',
    );
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    agent.destroy();
    await proxy.stop();
    await cp.stop();
    for (const u of ups) await u.stop();
    mesh.remove();
  });

  const who = async (host: string, path: string, headers: Record<string, string> = {}) => {
    const r = await send(outbound, { path, headers: { host, ...headers }, agent });
    assert.equal(r.status, 200);
    return { upstream: String(r.headers['x-upstream']), setCookie: r.headers['set-cookie'] };
  };

  test('header: the same x-user always reaches the same upstream; different users spread', async () => {
    for (const user of ['alice', 'bob', 'carol']) {
      const seen = new Set<string>();
      for (let i = 0; i < 50; i++) seen.add((await who('byheader:9080', `/h/${i}`, { 'x-user': user })).upstream);
      assert.equal(seen.size, 1, `${user} went to ${[...seen].join(', ')}`);
    }
    const spread = new Set<string>();
    for (let i = 0; i < 40; i++) spread.add((await who('byheader:9080', '/h', { 'x-user': `user-${i}` })).upstream);
    assert.ok(spread.size >= 2, `40 users all went to ${[...spread].join(', ')}`);
  });

  test('cookie with ttl: generated when absent (Set-Cookie), then the cookie pins the upstream', async () => {
    const first = await who('bycookie:9081', '/c/first');
    const sc = first.setCookie;
    assert.ok(Array.isArray(sc) && sc.length === 1, `one Set-Cookie, got ${JSON.stringify(sc)}`);
    const m = /^session="([0-9a-f]{16})"; Max-Age=60; Path=\/; HttpOnly$/.exec(sc[0]!);
    assert.ok(m, `Set-Cookie: ${sc[0]}`);
    const seen = new Set<string>([first.upstream]);
    for (let i = 0; i < 30; i++) {
      const r = await who('bycookie:9081', `/c/${i}`, { cookie: `other=1; session="${m[1]}"` });
      assert.equal(r.setCookie, undefined, 'no new cookie when the request has one');
      seen.add(r.upstream);
    }
    assert.equal(seen.size, 1, `cookie holder went to ${[...seen].join(', ')}`);
    const spread = new Set<string>();
    for (let i = 0; i < 40; i++) spread.add((await who('bycookie:9081', '/c', { cookie: `session=s${i}` })).upstream);
    assert.ok(spread.size >= 2);
  });

  test('source IP: every request from 127.0.0.1 reaches the same upstream', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) seen.add((await send(outbound, { path: `/s/${i}`, headers: { host: 'bysource:9082' } })).headers['x-upstream'] as string);
    assert.equal(seen.size, 1);
  });

  test('HTTP/2 downstream (h2c): header and source IP hashing pin the upstream; the generated cookie is set', async () => {
    for (const user of ['alice', 'erin']) {
      const seen = new Set<string>();
      for (let i = 0; i < 20; i++) {
        const r = await h2Request(outbound, { authority: 'byheader:9080', path: `/h2/${i}`, headers: { 'x-user': user } });
        assert.equal(r.status, 200);
        seen.add(String(r.headers['x-upstream']));
      }
      assert.equal(seen.size, 1, `${user} over HTTP/2 went to ${[...seen].join(', ')}`);
    }
    const bySource = new Set<string>();
    for (let i = 0; i < 20; i++) bySource.add(String((await h2Request(outbound, { authority: 'bysource:9082', path: `/h2s/${i}` })).headers['x-upstream']));
    assert.equal(bySource.size, 1);
    const c = await h2Request(outbound, { authority: 'bycookie:9081', path: '/h2c' });
    assert.equal(c.status, 200);
    assert.match(String(c.headers['set-cookie']), /^session="[0-9a-f]{16}"; Max-Age=60; Path=\/; HttpOnly$/);
  });

  test('query parameter (MAGLEV): the same ?user= value pins the upstream; values spread', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 50; i++) seen.add((await who('byquery:9083', `/q?x=${i}&user=dave`)).upstream);
    assert.equal(seen.size, 1);
    const spread = new Set<string>();
    for (let i = 0; i < 40; i++) spread.add((await who('byquery:9083', `/q?user=u${i}`)).upstream);
    assert.ok(spread.size >= 2);
  });
});
