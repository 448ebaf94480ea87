// `weft proxy-config … --from-proxy ADMIN_URL` against a running sidecar: the real `weft control-plane` and
// `weft proxy` in child processes, two node:http upstreams (one answering 503, with a DestinationRule whose outlier
// detection ejects it), and the `weft` command itself. The sidecar's own view matches the control plane's view for
// clusters, listeners and routes; endpoints show the health the proxy observed (the ejected host UNHEALTHY);
// -o json|yaml print the admin interface's own format (proto field names); usage errors exit 2, an unreachable
// admin exits 1 naming it. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse } from 'yaml';
import { freePort, MeshWorkDir, proxyArgs, run, serviceYaml, sleep, startControlPlane, waitProxyReady, WEFT, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const NODE_ID = 'pc-from-proxy';

async function weft(args: string[]): Promise<{ status: number | null; out: string; err: string }> {
  const r = await run(process.execPath, [WEFT, ...args]);
  return { status: r.status, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** One GET through the proxy's outbound listener with a Host header (fetch cannot set Host); resolves with the status. */
function get(port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers: { host }, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });
}

async function httpServer(status: number): Promise<Server> {
  const s = createServer((_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(status === 200 ? 'ok' : 'failing');
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

describe('weft proxy-config --from-proxy', () => {
  const mesh = new MeshWorkDir('weft-pc-from-proxy-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  let good: Server;
  let bad: Server;
  let cpHttp = '';
  let admin = '';
  let outbound = 0;

  before(async () => {
    good = await httpServer(200);
    bad = await httpServer(503);
    const port = (s: Server) => (s.address() as AddressInfo).port;
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('good', { name: 'http', port: 9080 }),
        workloadEntryYaml('good-1', { app: 'good' }, 'http', port(good)),
        serviceYaml('bad', { name: 'http', port: 9081 }),
        workloadEntryYaml('bad-1', { app: 'bad' }, 'http', port(bad)),
        `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: bad, namespace: default}\nspec:\n  host: bad\n  trafficPolicy:\n    outlierDetection: {consecutive5xxErrors: 2, interval: 1s, baseEjectionTime: 300s, maxEjectionPercent: 100}\n`,
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: good, namespace: default}\nspec:\n  hosts: [good]\n  http:\n  - match: [{uri: {prefix: /api}}]\n    route: [{destination: {host: good}}]\n  - route: [{destination: {host: good}}]\n`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    cpHttp = addr.http;
    outbound = await freePort();
    const health = await freePort();
    const adminPort = await freePort();
    admin = `http://127.0.0.1:${adminPort}`;
    await proxy.start(proxyArgs(addr.xds, NODE_ID, ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(adminPort), '--stats-port', '0']), /weft proxy .* started/, 'proxy');
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    for (const s of [good, bad]) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    mesh.remove();
  });

  test('clusters, listeners and routes tables: the sidecar holds what the control plane sent', async () => {
    for (const kind of ['clusters', 'listeners', 'routes']) {
      const fromProxy = await weft(['proxy-config', kind, '--from-proxy', admin]);
      assert.equal(fromProxy.status, 0, fromProxy.err);
      const fromCp = await weft(['proxy-config', kind, NODE_ID, '--control-plane', cpHttp]);
      assert.equal(fromCp.status, 0, fromCp.err);
      assert.equal(fromProxy.out, fromCp.out, kind);
    }
    const clusters = await weft(['pc', 'clusters', '--from-proxy', admin, '--fqdn', 'good']);
    assert.match(clusters.out, /^good\.default\.svc\.cluster\.local\s+9080\s+-\s+outbound\s+EDS/m);
    assert.doesNotMatch(clusters.out, /^bad\./m);
    const routes = await weft(['pc', 'routes', '--from-proxy', admin]);
    assert.match(routes.out, /^outbound\s+good\.default\.svc\.cluster\.local:9080\s.*\s\/api\*/m);
  });

  test('endpoints: the health the proxy observed (an ejected host is UNHEALTHY)', async () => {
    let table = (await weft(['pc', 'endpoints', '--from-proxy', admin])).out;
    const goodPort = (good.address() as AddressInfo).port;
    const badPort = (bad.address() as AddressInfo).port;
    assert.match(table, new RegExp(`^127\\.0\\.0\\.1:${goodPort}\\s+HEALTHY\\s+1\\s+-\\s+outbound\\|9080\\|\\|good\\.default\\.svc\\.cluster\\.local$`, 'm'));
    assert.match(table, new RegExp(`^127\\.0\\.0\\.1:${badPort}\\s+HEALTHY\\s`, 'm'));
    // Consecutive 5xx from `bad` eject it (outlier detection); the control plane's view does not change.
    for (let i = 0; i < 50 && !/UNHEALTHY/.test(table); i++) {
      assert.equal(await get(outbound, 'bad:9081'), 503);
      table = (await weft(['pc', 'endpoints', '--from-proxy', admin, '--cluster', 'outbound|9081||bad.default.svc.cluster.local'])).out;
      await sleep(20);
    }
    assert.match(table, new RegExp(`^127\\.0\\.0\\.1:${badPort}\\s+UNHEALTHY \\(outlier detection\\)\\s+1\\s`, 'm'));
    assert.doesNotMatch(table, new RegExp(`:${goodPort}`), '--cluster filters');
    const cpView = await weft(['pc', 'endpoints', NODE_ID, '--control-plane', cpHttp]);
    assert.match(cpView.out, new RegExp(`^127\\.0\\.0\\.1:${badPort}\\s+HEALTHY\\s`, 'm'));
  });

  test('-o json and -o yaml print the admin interface output (proto field names)', async () => {
    const clusters = await weft(['pc', 'clusters', '--from-proxy', admin, '-o', 'json']);
    assert.equal(clusters.status, 0, clusters.err);
    const list = JSON.parse(clusters.out) as Array<Record<string, unknown>>;
    const c = list.find((x) => x.name === 'outbound|9081||bad.default.svc.cluster.local');
    assert.ok(c, clusters.out.slice(0, 500));
    assert.ok('outlier_detection' in c && 'eds_cluster_config' in c, Object.keys(c).join(','));

    const eps = parse((await weft(['pc', 'endpoints', '--from-proxy', admin, '-o', 'yaml', '--cluster', 'outbound|9080||good.default.svc.cluster.local'])).out) as Array<{ name: string; host_statuses: unknown[] }>;
    assert.deepEqual(eps.map((e) => e.name), ['outbound|9080||good.default.svc.cluster.local']);
    assert.equal(eps[0]!.host_statuses.length, 1);

    const all = JSON.parse((await weft(['pc', 'all', '--from-proxy', admin, '-o', 'json'])).out) as { configs: Array<Record<string, unknown>> };
    assert.ok(all.configs.some((x) => x['@type'] === 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump'));
    const listeners = JSON.parse((await weft(['pc', 'listeners', '--from-proxy', admin, '-o', 'json', '--name', 'outbound'])).out) as Array<{ name: string }>;
    assert.deepEqual(listeners.map((l) => l.name), ['outbound']);
  });

  test('usage errors exit 2; an unreachable admin interface exits 1 and says so', async () => {
    const neither = await weft(['pc', 'clusters']);
    assert.equal(neither.status, 2);
    assert.match(neither.err, /either a proxy id .* or --from-proxy/);
    const both = await weft(['pc', 'clusters', NODE_ID, '--from-proxy', admin]);
    assert.equal(both.status, 2);
    const badUrl = await weft(['pc', 'clusters', '--from-proxy', '127.0.0.1:15000']);
    assert.equal(badUrl.status, 2);
    assert.match(badUrl.err, /--from-proxy expects the admin URL/);
    const closed = await freePort();
    const down = await weft(['pc', 'all', '--from-proxy', `http://127.0.0.1:${closed}`]);
    assert.equal(down.status, 1);
    assert.match(down.err, new RegExp(`cannot reach the proxy admin interface at http://127\\.0\\.0\\.1:${closed}`));
  });
});
