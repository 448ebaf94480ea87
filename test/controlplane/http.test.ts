// The control plane's HTTP port: /ready, the registration API (validation, heartbeats, health, expiry),
// /debug/config_dump and `weft proxy-config`, /debug/registryz, errors; and `weft control-plane` as a process.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { parse as parseYaml } from 'yaml';
import { ControlPlane } from '../../src/controlplane/controlplane.js';
import { createLogger, MemoryLogStream } from '../../src/controlplane/log.js';
import { runProxyConfig } from '../../src/cli/commands/proxy-config.js';
import { TypeUrl } from '../../src/xds/index.js';
import { HealthStatus } from '../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import { ConfigDir, FakeEnvoy, nextPush, runWeft, sidecarNode, spawnWeft, startControlPlane, until } from './controlplane-helpers.js';
import type { TestControlPlane } from './controlplane-helpers.js';
import { freePort } from '../helpers/mesh-processes.js';

const CONFIG = `
apiVersion: v1
kind: Service
metadata: {name: billing, namespace: shop}
spec:
  selector: {app: billing}
  ports: [{name: http, port: 8080, targetPort: 18080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: billing, namespace: shop}
spec:
  host: billing
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: billing, namespace: shop}
spec:
  hosts: [billing]
  http:
  - match: [{uri: {prefix: /api}}]
    route: [{destination: {host: billing, subset: v1}}]
  - route: [{destination: {host: billing}}]
`;

const BILLING = 'billing.shop.svc.cluster.local';

async function post(url: string, body: unknown, method = 'POST'): Promise<{ status: number; json: any }> {
  const r = await fetch(url, { method, headers: { 'content-type': 'application/json' }, body: typeof body === 'string' ? body : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, json: text ? JSON.parse(text) : undefined };
}

async function run(fn: (out: (s: string) => void, err: (s: string) => void) => Promise<number>): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await fn((s) => (out += s), (s) => (err += s));
  return { code, out, err };
}

describe('control plane HTTP port', () => {
  const cfg = new ConfigDir();
  let t: TestControlPlane;
  let envoy: FakeEnvoy;
  const node = sidecarNode('web-1.shop', 'shop', { app: 'web' });

  before(async () => {
    cfg.write('shop.yaml', CONFIG);
    t = await startControlPlane(cfg.dir);
    envoy = new FakeEnvoy(t.xds, node);
    await envoy.sync();
  });

  after(async () => {
    envoy.close();
    await t.cp.close();
    cfg.remove();
  });

  test('registration: validation errors are 400 with a clear message', async () => {
    const bad = await post(`${t.http}/v1/workloads`, { name: 'Billing_VM', address: '10.0.0.1:80', ports: { http: 70000 }, color: 'red' });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error, /^invalid workload: /);
    const paths = bad.json.issues.map((i: any) => i.path).sort();
    assert.deepEqual(paths, ['(body)', 'address', 'name', 'ports.http']);
    assert.match(bad.json.error, /name: a name is a DNS subdomain/);
    assert.match(bad.json.error, /address: address must be an IPv4 or IPv6 address or a DNS name \(without a port\)/);
    assert.match(bad.json.error, /ports\.http: port must be 1-65535/);
    assert.match(bad.json.error, /color/);
    const notJson = await post(`${t.http}/v1/workloads`, '{"name":');
    assert.equal(notJson.status, 400);
    assert.match(notJson.json.error, /not valid JSON/);
    const empty = await post(`${t.http}/v1/workloads`, '');
    assert.equal(empty.status, 400);
    assert.match(empty.json.error, /body is empty/);
    const missing = await post(`${t.http}/v1/workloads`, { namespace: 'shop' });
    assert.deepEqual(missing.json.issues.map((i: any) => i.path).sort(), ['address', 'name']);
  });

  test('registration: register, list, heartbeat, health, deregister; EDS follows', async () => {
    const cluster = `outbound|8080||${BILLING}`;
    const pushed = nextPush(t.cp, (s) => s.reasons.registration !== undefined);
    const reg = await post(`${t.http}/v1/workloads`, { name: 'billing-vm-1', namespace: 'shop', address: '10.2.0.1', labels: { app: 'billing', version: 'v1' }, ports: { http: 18081 }, serviceAccount: 'billing', sidecar: true });
    assert.equal(reg.status, 201);
    assert.equal(reg.json.workload.healthy, true);
    assert.equal(reg.json.workload.ttlMs, 0);
    const s = await pushed;
    assert.deepEqual(s.types, { EDS: 1 }, 'the default and the v1 subset assignment change: one EDS response');
    await envoy.expect(TypeUrl.ClusterLoadAssignment);
    const addrs = (name: string) => envoy.endpoints().find((c) => c.clusterName === name)!.endpoints.flatMap((e) => e.lbEndpoints).map((l) => l.hostIdentifier.case === 'endpoint' && l.hostIdentifier.value.address?.address.case === 'socketAddress' ? `${l.hostIdentifier.value.address.address.value.address}:${l.hostIdentifier.value.address.address.value.portSpecifier.value}` : '');
    assert.deepEqual(addrs(cluster), ['10.2.0.1:18081'], 'the workload port named like the service port');
    assert.deepEqual(addrs(`outbound|8080|v1|${BILLING}`), ['10.2.0.1:18081']);

    // Registering the same name again replaces it (200).
    const again = await post(`${t.http}/v1/workloads`, { name: 'billing-vm-1', namespace: 'shop', address: '10.2.0.1', labels: { app: 'billing', version: 'v2' }, ports: { http: 18081 } });
    assert.equal(again.status, 200);
    assert.equal(again.json.replaced, true);
    await envoy.expect(TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(addrs(`outbound|8080|v1|${BILLING}`), [], 'no longer in subset v1');

    const list = (await (await fetch(`${t.http}/v1/workloads`)).json()) as any;
    assert.deepEqual(list.workloads.map((w: any) => `${w.namespace}/${w.name}`), ['shop/billing-vm-1']);

    const hb = await post(`${t.http}/v1/workloads/shop/billing-vm-1/heartbeat`, '');
    assert.equal(hb.status, 200);
    const down = await post(`${t.http}/v1/workloads/shop/billing-vm-1/health`, { healthy: false }, 'PUT');
    assert.equal(down.status, 200);
    assert.equal(down.json.workload.healthy, false);
    await envoy.expect(TypeUrl.ClusterLoadAssignment);
    const lb = envoy.endpoints().find((c) => c.clusterName === cluster)!.endpoints.flatMap((e) => e.lbEndpoints);
    assert.equal(lb[0]!.healthStatus, HealthStatus.UNHEALTHY);
    const badHealth = await post(`${t.http}/v1/workloads/shop/billing-vm-1/health`, { healthy: 'no' }, 'PUT');
    assert.equal(badHealth.status, 400);
    assert.match(badHealth.json.error, /^invalid health: healthy: /);

    const del = await fetch(`${t.http}/v1/workloads/shop/billing-vm-1`, { method: 'DELETE' });
    assert.equal(del.status, 204);
    await envoy.expect(TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(addrs(cluster), []);
    const gone = await fetch(`${t.http}/v1/workloads/shop/billing-vm-1`, { method: 'DELETE' });
    assert.equal(gone.status, 404);
    assert.match(((await gone.json()) as any).error, /no registered workload shop\/billing-vm-1/);
    const hb404 = await post(`${t.http}/v1/workloads/shop/nope/heartbeat`, {});
    assert.equal(hb404.status, 404);
  });

  test('registration: a workload that stops heartbeating turns unhealthy, then is removed', async () => {
    const reg = await post(`${t.http}/v1/workloads`, { name: 'billing-vm-2', namespace: 'shop', address: '10.2.0.2', labels: { app: 'billing' }, ports: { http: 18080 }, ttlSeconds: 1 });
    assert.equal(reg.status, 201);
    await until(async () => {
      const r = await fetch(`${t.http}/v1/workloads/shop/billing-vm-2`);
      return r.status === 200 && ((await r.json()) as any).workload.healthy === false;
    }, 'unhealthy after the ttl');
    assert.ok(t.logs.find('workload missed its heartbeat deadline: marked unhealthy').some((l) => l.workload === 'shop/billing-vm-2'));
    await until(async () => (await fetch(`${t.http}/v1/workloads/shop/billing-vm-2`)).status === 404, 'removed after 3 ttls');
  });

  test('/debug/config_dump has Envoy ConfigDump shape and feeds weft proxy-config', async () => {
    const missing = await fetch(`${t.http}/debug/config_dump`);
    assert.equal(missing.status, 400);
    const unknown = await fetch(`${t.http}/debug/config_dump?proxy=nope`);
    assert.equal(unknown.status, 404);
    assert.deepEqual(((await unknown.json()) as any).proxies, ['web-1.shop']);
    const dump = (await (await fetch(`${t.http}/debug/config_dump?proxy=web-1.shop`)).json()) as any;
    assert.deepEqual(dump.configs.map((c: any) => c['@type']), [
      'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
      'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
      'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
      'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
    ]);
    const clusters = dump.configs[0];
    assert.ok(clusters.versionInfo);
    const c = clusters.dynamicActiveClusters.find((x: any) => x.cluster.name === `outbound|8080|v1|${BILLING}`);
    assert.equal(c.cluster['@type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
    assert.equal(c.clientStatus, 'ACKED');
    assert.ok(c.lastUpdated);
    assert.ok(dump.configs[2].dynamicListeners.some((l: any) => l.name === 'outbound' && l.activeState.listener['@type'].endsWith('.Listener')));
    assert.ok(dump.configs[3].dynamicRouteConfigs.some((r: any) => r.routeConfig.name === 'outbound'));

    const cl = await run((o, e) => runProxyConfig('clusters', 'web-1.shop', { controlPlane: t.http, output: 'short' }, o, e));
    assert.equal(cl.code, 0);
    const lines = cl.out.trim().split('\n');
    assert.match(lines[0]!, /^SERVICE FQDN\s+PORT\s+SUBSET\s+DIRECTION\s+TYPE\s+DESTINATION RULE$/);
    assert.ok(lines.some((l) => /^billing\.shop\.svc\.cluster\.local\s+8080\s+v1\s+outbound\s+EDS\b/.test(l)), cl.out);
    assert.ok(lines.some((l) => /^billing\.shop\.svc\.cluster\.local\s+8080\s+-\s+outbound\s+EDS\b/.test(l)), cl.out);

    const rt = await run((o, e) => runProxyConfig('routes', 'web-1.shop', { controlPlane: t.http, output: 'short' }, o, e));
    assert.match(rt.out.split('\n')[0]!, /^NAME\s+VHOST NAME\s+DOMAINS\s+MATCH\s+VIRTUAL SERVICE$/);
    assert.ok(rt.out.split('\n').some((l) => /^outbound\s+billing\.shop\.svc\.cluster\.local:8080\s+\S+, \S+ \+ \d+ more\.\.\.\s+\/api\*$/.test(l)), rt.out);
    assert.ok(rt.out.split('\n').some((l) => /^outbound\s+billing\.shop\.svc\.cluster\.local:8080\s+.*\s+\/\*$/.test(l)), rt.out);

    const ls = await run((o, e) => runProxyConfig('listener', 'web-1.shop', { controlPlane: t.http, output: 'short' }, o, e));
    assert.ok(ls.out.split('\n').some((l) => /^outbound\s+127\.0\.0\.1\s+15001\s+\S.*Route: outbound$/.test(l)), ls.out);

    const json = await run((o, e) => runProxyConfig('clusters', 'web-1.shop', { controlPlane: t.http, output: 'json', subset: 'v1' }, o, e));
    const arr = JSON.parse(json.out);
    assert.deepEqual(arr.map((x: any) => x.name), [`outbound|8080|v1|${BILLING}`]);
    const yaml = await run((o, e) => runProxyConfig('routes', 'web-1.shop', { controlPlane: t.http, output: 'yaml', name: 'outbound' }, o, e));
    assert.equal((parseYaml(yaml.out) as any[])[0].name, 'outbound');
    const all = await run((o, e) => runProxyConfig('all', 'web-1.shop', { controlPlane: t.http, output: 'json' }, o, e));
    assert.equal(JSON.parse(all.out).configs.length, 4);

    const nope = await run((o, e) => runProxyConfig('clusters', 'nope', { controlPlane: t.http, output: 'short' }, o, e));
    assert.equal(nope.code, 1);
    assert.match(nope.err, /no proxy "nope" is connected/);
    const badType = await run((o, e) => runProxyConfig('secrets', 'web-1.shop', { controlPlane: t.http, output: 'short' }, o, e));
    assert.equal(badType.code, 2);
    const closed = await freePort();
    const down = await run((o, e) => runProxyConfig('clusters', 'web-1.shop', { controlPlane: `http://127.0.0.1:${closed}`, output: 'short' }, o, e));
    assert.equal(down.code, 1);
    assert.match(down.err, new RegExp(`cannot reach the control plane at http://127\\.0\\.0\\.1:${closed}: ECONNREFUSED`));
  });

  test('/debug/registryz lists services with endpoints; unknown paths and methods are JSON errors', async () => {
    const reg = (await (await fetch(`${t.http}/debug/registryz`)).json()) as any;
    const billing = reg.services.find((s: any) => s.hostname === BILLING);
    assert.equal(billing.source, 'Service shop/billing');
    assert.equal(billing.ports[0].port, 8080);
    assert.ok(Array.isArray(billing.ports[0].endpoints));
    const nf = await fetch(`${t.http}/debug/nothing`);
    assert.equal(nf.status, 404);
    assert.match(((await nf.json()) as any).error, /no such endpoint/);
    const m = await fetch(`${t.http}/metrics`, { method: 'POST' });
    assert.equal(m.status, 405);
    assert.equal(m.headers.get('allow'), 'GET');
  });
});

describe('/ready', () => {
  test('503 until the config is loaded and ADS listens, 200 after, gone after close', async () => {
    const cfg = new ConfigDir();
    cfg.write('a.yaml', CONFIG);
    const logs = new MemoryLogStream();
    const cp = new ControlPlane({ configPaths: cfg.dir, xdsPort: 0, httpPort: 0, configRescanMs: 0, logger: createLogger({ stream: logs }) });
    try {
      const port = await cp.listenHttp();
      const early = await fetch(`http://127.0.0.1:${port}/ready`);
      assert.equal(early.status, 503);
      assert.match(await early.text(), /configuration not loaded yet/);
      await cp.start();
      assert.equal((await fetch(`http://127.0.0.1:${port}/ready`)).status, 200);
      await cp.close();
      await assert.rejects(fetch(`http://127.0.0.1:${port}/ready`));
      assert.ok(logs.find('control plane ready').length === 1);
    } finally {
      await cp.close();
      cfg.remove();
    }
  });
});

describe('weft control-plane (process)', () => {
  test('prints where it listens, serves, and exits 0 on SIGTERM with nothing left open', async () => {
    const cfg = new ConfigDir();
    cfg.write('a.yaml', CONFIG);
    const child = spawnWeft(['control-plane', '--config', cfg.dir, '--xds-port', '0', '--http-port', '0', '--log-level', 'warn']);
    let out = '';
    let err = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      let gone = false;
      void exited.then(() => (gone = true));
      const http = await until(() => {
        if (gone) throw new Error(`the command exited early: ${err}`);
        return /HTTP: (http:\/\/127\.0\.0\.1:\d+)/.exec(out)?.[1];
      }, 'the listening line', 20_000) as string;
      assert.match(out, /xDS \(ADS over plaintext gRPC\): 127\.0\.0\.1:\d+/);
      assert.equal((await fetch(`${http}/ready`)).status, 200);
      const xds = /gRPC\): (127\.0\.0\.1:\d+)/.exec(out)![1]!;
      // A connected proxy must not keep the process alive after SIGTERM; weft proxy-status shows it meanwhile.
      const env = new FakeEnvoy(xds, sidecarNode('p-1.shop', 'shop', { app: 'p' }));
      await env.sync();
      const synced = (x: any) => ['CDS', 'LDS', 'EDS', 'RDS'].every((k) => x?.xds[k].state === 'SYNCED');
      await until(async () => synced(((await (await fetch(`${http}/debug/syncz`)).json()) as any[]).find((p) => p.id === 'p-1.shop')), 'the ACKs');
      const ps = await runWeft(['proxy-status', '--control-plane', http, '-o', 'json']);
      assert.equal(ps.code, 0, ps.err);
      const row = JSON.parse(ps.out).find((p: any) => p.id === 'p-1.shop');
      assert.ok(synced(row), ps.out);
      const pc = await runWeft(['proxy-config', 'clusters', 'p-1.shop', '--control-plane', http]);
      assert.equal(pc.code, 0, pc.err);
      assert.match(pc.out, /^billing\.shop\.svc\.cluster\.local\s+8080\s+v1\s+outbound\s+EDS\s+billing\.shop$/m);
      child.kill('SIGTERM');
      const code = await exited;
      assert.equal(code, 0, `exit code ${code} (stdout: ${out}; stderr: ${err})`);
      env.close();
    } finally {
      child.kill('SIGKILL');
      cfg.remove();
    }
  });

  test('a missing config path is an error; a bad port is a usage error', async () => {
    const r = await runWeft(['control-plane', '--config', '/nonexistent/weft-config']);
    assert.equal(r.code, 1);
    assert.match(r.err, /config path \/nonexistent\/weft-config does not exist/);
    const u = await runWeft(['control-plane', '--config', '.', '--xds-port', '99999']);
    assert.equal(u.code, 2);
    assert.match(u.err, /expected a port number 0-65535/);
  });
});
