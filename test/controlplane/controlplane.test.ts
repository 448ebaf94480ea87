// `weft control-plane` end to end over real sockets: config dir → model → registry → translation → snapshots →
// ADS, with a fake Envoy (SotW) and a Delta client; hot reload, EDS-only pushes, NACKs, broken config, status.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TypeUrl } from '../../src/xds/index.js';
import { runProxyStatus } from '../../src/cli/commands/proxy-status.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { ConfigDir, FakeEnvoy, nextPush, runWeft, sidecarNode, startControlPlane, until, REVIEWS, reviewsVirtualService } from './controlplane-helpers.js';
import type { TestControlPlane } from './controlplane-helpers.js';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: default}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: default}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
# Proxies in namespace "other" only see their own namespace.
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: other}
spec:
  egress:
  - hosts: ["./*"]
`;

const RATINGS = 'ratings.default.svc.cluster.local';

/** The clusters a route configuration sends traffic to (single and weighted). */
function routeClusters(env: FakeEnvoy): string[] {
  const out = new Set<string>();
  for (const rc of env.routes()) {
    for (const vh of rc.virtualHosts) {
      for (const r of vh.routes) {
        if (r.action.case !== 'route') continue;
        const cs = r.action.value.clusterSpecifier;
        if (cs.case === 'cluster') out.add(cs.value);
        if (cs.case === 'weightedClusters') for (const w of cs.value.clusters) out.add(w.name);
      }
    }
  }
  return [...out].sort();
}

async function getJson(url: string): Promise<any> {
  const r = await fetch(url);
  assert.equal(r.status, 200, `${url}: ${r.status}`);
  return r.json();
}

describe('control plane', () => {
  const cfg = new ConfigDir();
  let t: TestControlPlane;
  let envoy: FakeEnvoy;
  const productpage = sidecarNode('sidecar~10.0.0.9~productpage-v1.default~default.svc.cluster.local', 'default', { app: 'productpage', version: 'v1' }, {
    INSTANCE_IPS: '10.0.0.9',
    WEFT_INBOUND: [{ port: 9080, targetPort: 19080, protocol: 'HTTP', name: 'http' }],
  });

  before(async () => {
    cfg.write('services.yaml', SERVICES);
    cfg.write('vs.yaml', reviewsVirtualService('v1'));
    t = await startControlPlane(cfg.dir);
    envoy = new FakeEnvoy(t.xds, productpage);
  });

  after(async () => {
    envoy.close();
    await t.cp.close();
    cfg.remove();
  });

  test('a connecting sidecar gets its clusters, endpoints, listeners and routes at once', async () => {
    await envoy.sync();
    const clusters = envoy.clusters().map((c) => c.name);
    for (const n of [`outbound|9080||${REVIEWS}`, `outbound|9080|v1|${REVIEWS}`, `outbound|9080|v2|${REVIEWS}`, `outbound|9080||${RATINGS}`]) assert.ok(clusters.includes(n), `cluster ${n} in ${clusters.join(', ')}`);
    const listeners = envoy.listeners().map((l) => l.name);
    assert.ok(listeners.includes('outbound'), `listeners: ${listeners.join(', ')}`);
    assert.ok(listeners.includes('inbound|9080'), `listeners: ${listeners.join(', ')}`);
    const v1 = envoy.endpoints().find((c) => c.clusterName === `outbound|9080|v1|${REVIEWS}`);
    assert.deepEqual(v1?.endpoints.flatMap((e) => e.lbEndpoints.map((l) => (l.hostIdentifier.case === 'endpoint' && l.hostIdentifier.value.address?.address.case === 'socketAddress' ? l.hostIdentifier.value.address.address.value.address : ''))), ['10.0.0.1']);
    assert.ok(routeClusters(envoy).includes(`outbound|9080|v1|${REVIEWS}`), 'the VirtualService routes reviews to v1');
    // Status: every type SYNCED once ACKed.
    const syncz = await until(async () => {
      const s = await getJson(`${t.http}/debug/syncz`);
      return s.length === 1 && ['CDS', 'EDS', 'LDS', 'RDS'].every((k) => s[0].xds[k].state === 'SYNCED') ? s : undefined;
    }, 'SYNCED status');
    assert.equal(syncz[0].id, productpage.id);
    assert.equal(syncz[0].namespace, 'default');
    assert.equal(syncz[0].type, 'sidecar');
    assert.equal(syncz[0].proxyVersion, '1.24.0');
    assert.equal(syncz[0].controlPlaneVersion, t.cp.version);
    assert.ok(t.logs.find('proxy connected').some((l) => l.proxy === productpage.id));
  });

  test('changing a VirtualService file pushes a new RDS and nothing else', async () => {
    const pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('vs.yaml', reviewsVirtualService('v2'));
    await t.cp.reloadConfig();
    const summary = await pushed;
    assert.equal(summary.full, true);
    assert.deepEqual(summary.types, { RDS: 1 }, 'only RDS was sent');
    const r = await envoy.next();
    assert.equal(r.typeUrl, TypeUrl.RouteConfiguration, 'the first response after the change is RDS (CDS/EDS/LDS would come first)');
    assert.ok(routeClusters(envoy).includes(`outbound|9080|v2|${REVIEWS}`));
    assert.ok(!routeClusters(envoy).includes(`outbound|9080|v1|${REVIEWS}`));
    const line = t.logs.find('push').find((l) => (l.cause as string[]).includes('config'));
    assert.ok(line && typeof line.durationMs === 'number' && line.proxies === 1, 'one log line per push with cause, proxies and duration');
  });

  test('a workload registered over the HTTP API pushes only EDS, only to proxies whose assignments changed', async () => {
    // A second proxy in namespace "other" does not see default's services (Sidecar): it must get nothing.
    const other = new FakeEnvoy(t.xds, sidecarNode('other-1.other', 'other', { app: 'other' }));
    await other.sync();
    assert.ok(!other.clusters().some((c) => c.name.endsWith(RATINGS)), 'namespace other does not see ratings');
    const register = (name: string, address: string, weight: number) =>
      fetch(`${t.http}/v1/workloads`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name, namespace: 'default', address, labels: { app: 'ratings' }, ports: { http: 9080 }, locality: 'region-a/zone-1', weight, serviceAccount: 'ratings' }),
      });
    // ratings' first endpoint brings its first service account, which its clusters carry as SANs: a full push, as
    // istiod does when an endpoint update changes a service's service accounts.
    const first = nextPush(t.cp, (s) => s.reasons.registration !== undefined);
    assert.equal((await register('ratings-vm-0', '10.0.1.6', 1)).status, 201);
    const full = await first;
    assert.equal(full.full, true, 'a new service account for ratings: a full push');
    // These proxies have no workload certificate (no auto mTLS, no SANs in their clusters): only EDS differs.
    assert.deepEqual(full.types, { EDS: 1 });
    assert.equal((await envoy.next()).typeUrl, TypeUrl.ClusterLoadAssignment);
    assert.equal(other.stream.responses.pending, 0, 'namespace other does not see ratings: nothing for it');
    // Another workload of the same service account: EDS only.
    const pushed = nextPush(t.cp, (s) => s.reasons.registration !== undefined);
    assert.equal((await register('ratings-vm-1', '10.0.1.7', 2)).status, 201);
    const summary = await pushed;
    assert.equal(summary.full, false);
    assert.deepEqual(summary.hosts, [RATINGS]);
    assert.equal(summary.proxies, 2);
    assert.equal(summary.changed, 1, 'only the proxy that has the ratings cluster changed');
    assert.deepEqual(summary.types, { EDS: 1 });
    assert.equal(summary.translations, 0, 'no full translation for an endpoint change');
    const r = await envoy.next();
    assert.equal(r.typeUrl, TypeUrl.ClusterLoadAssignment);
    const cla = envoy.endpoints().find((c) => c.clusterName === `outbound|9080||${RATINGS}`)!;
    const lb = cla.endpoints.flatMap((e) => e.lbEndpoints);
    assert.deepEqual(lb.map((e) => e.loadBalancingWeight), [1, 2]);
    assert.equal(other.stream.responses.pending, 0);
    other.close();
  });

  test('a NACK is visible in /debug/syncz and weft proxy-status with its error', async () => {
    envoy.nack(TypeUrl.RouteConfiguration, 'route config rejected: invalid regex in route reviews: missing )');
    const pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('vs.yaml', reviewsVirtualService('v1'));
    await t.cp.reloadConfig();
    await pushed;
    const r = await envoy.next();
    assert.equal(r.typeUrl, TypeUrl.RouteConfiguration);
    const st = await until(async () => {
      const s = await getJson(`${t.http}/debug/syncz`);
      const p = s.find((x: any) => x.id === productpage.id);
      return p?.xds.RDS.state === 'NACKED' ? p : undefined;
    }, 'NACKED in syncz');
    assert.equal(st.xds.RDS.nack.message, 'route config rejected: invalid regex in route reviews: missing )');
    assert.equal(st.xds.CDS.state, 'SYNCED');
    const ps = await runWeft(['proxy-status', '--control-plane', t.http, '-o', 'json']);
    assert.equal(ps.code, 0, ps.err);
    const json = JSON.parse(ps.out).find((p: any) => p.id === productpage.id);
    assert.equal(json.xds.RDS.state, 'NACKED');
    assert.equal(json.xds.RDS.nack.message, 'route config rejected: invalid regex in route reviews: missing )');
    let text = '';
    await runProxyStatus(undefined, { controlPlane: t.http, output: 'text' }, (s) => (text += s), () => undefined);
    const [header, ...rows] = text.trim().split('\n');
    assert.match(header!, /^NAME\s+CDS\s+LDS\s+EDS\s+RDS\s+CONTROL PLANE\s+VERSION$/);
    const row = rows.find((r) => r.startsWith(productpage.id));
    assert.match(row!, /NACKED \(route config rejected: invalid regex in…\)/);
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    assert.match(metrics, /^pilot_total_xds_rejects\{type="rds"\} 1$/m);
    assert.match(metrics, new RegExp(`^pilot_xds_rds_reject\\{node="${productpage.id.replace(/[.|~]/g, '\\$&')}"\\} 1$`, 'm'));
    assert.ok(t.logs.find('proxy rejected configuration (NACK)').some((l) => l.error === 'route config rejected: invalid regex in route reviews: missing )'));
  });

  test('an invalid config file is logged and counted, and proxies keep the last good config', async () => {
    // A schema error in the VirtualService: the last valid version stays in effect.
    const pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('vs.yaml', reviewsVirtualService('v2').replace('subset: v2', 'subset: v2, weight: "heavy"'));
    await t.cp.reloadConfig();
    const summary = await pushed;
    assert.deepEqual(summary.types, {}, 'nothing was pushed');
    assert.ok(routeClusters(envoy).includes(`outbound|9080|v1|${REVIEWS}`), 'still routed by the last valid version');
    const err = t.logs.find('config error').find((l) => String(l.file).endsWith('vs.yaml'));
    assert.ok(err, 'the error is logged with its file');
    assert.match(String(err!.hint), /last valid version .* stays in effect/);
    const configz = await getJson(`${t.http}/debug/configz`);
    assert.ok(configz.diagnostics.some((d: any) => d.severity === 'Error' && d.resource?.kind === 'VirtualService'));
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    assert.match(metrics, /^weft_config_errors\{kind="VirtualService"\} 1$/m);
    assert.match(metrics, /^weft_config_errors_total\{kind="VirtualService"\} 1$/m);

    // A YAML syntax error: the store keeps the file's last valid content; nothing changes for proxies.
    const before = t.cp.configDiagnostics().revision;
    cfg.write('vs.yaml', 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews\n');
    await t.cp.reloadConfig();
    assert.ok(t.cp.configDiagnostics().revision > before);
    t.cp.flush();
    assert.equal(envoy.stream.responses.pending, 0);
    assert.ok(routeClusters(envoy).includes(`outbound|9080|v1|${REVIEWS}`));

    // Fixing the file applies it.
    const fixed = nextPush(t.cp, (s) => s.reasons.config !== undefined && s.types.RDS === 1);
    cfg.write('vs.yaml', reviewsVirtualService('v2'));
    await t.cp.reloadConfig();
    await fixed;
    await envoy.expect(TypeUrl.RouteConfiguration);
    assert.ok(routeClusters(envoy).includes(`outbound|9080|v2|${REVIEWS}`));
    const m2 = await (await fetch(`${t.http}/metrics`)).text();
    assert.doesNotMatch(m2, /^weft_config_errors\{kind="VirtualService"\}/m);
  });

  test('a Delta client gets the same resources, and identical proxies share one translation', async () => {
    const client = new AdsTestClient(t.xds);
    const d = client.delta();
    d.send({ node: sidecarNode('delta-1.default', 'default', { app: 'productpage', version: 'v1' }, { WEFT_INBOUND: [{ port: 9080, targetPort: 19080, protocol: 'HTTP', name: 'http' }] }), typeUrl: TypeUrl.Cluster });
    const c = await d.next();
    assert.ok(c.resources.map((r) => r.name).includes(`outbound|9080|v2|${REVIEWS}`));
    d.send({ typeUrl: TypeUrl.Cluster, responseNonce: c.nonce });
    // Same shape as the SotW productpage proxy (only id and addresses differ): no new translation on connect.
    const connect = t.logs.find('push').filter((l) => (l.cause as string[]).includes('proxyrequest')).at(-1)!;
    assert.equal(connect.translations, 0, 'the delta proxy reused the productpage translation');
    const pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('vs.yaml', reviewsVirtualService('v1'));
    await t.cp.reloadConfig();
    const s = await pushed;
    assert.equal(s.proxies, 2);
    assert.equal(s.translations, 1, 'two proxies of one shape: one translation');
    assert.equal(s.changed, 2);
    await envoy.expect(TypeUrl.RouteConfiguration);
    const status = await until(async () => {
      const x = await getJson(`${t.http}/debug/syncz`);
      return x.find((p: any) => p.id === 'delta-1.default');
    }, 'delta proxy in syncz');
    assert.equal(status.xds.CDS.state, 'SYNCED');
    assert.equal(status.xds.RDS.state, 'NOT SENT');
    d.end();
    client.close();
  });

  test('a translation error is logged, counted and shown in status; the rest is pushed', async () => {
    // Proxyless gRPC clients do not implement RANDOM: the translator reports it and falls back to ROUND_ROBIN.
    const pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('lb.yaml', `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
`);
    await t.cp.reloadConfig();
    await pushed;
    await until(() => envoy.stream.responses.pending > 0, 'the sidecar gets the new ratings cluster');
    await envoy.expect(TypeUrl.Cluster);
    const client = new AdsTestClient(t.xds);
    const g = client.sotw();
    g.send({ node: { id: 'grpc-client-1', metadata: { NAMESPACE: 'default', GENERATOR: 'grpc' }, locality: { region: 'r', zone: 'z' } }, typeUrl: TypeUrl.Cluster });
    const cds = await g.next();
    assert.ok(cds.resources.length > 0, 'the clusters are pushed anyway');
    const st = await until(async () => (await getJson(`${t.http}/debug/syncz`)).find((p: any) => p.id === 'grpc-client-1'), 'gRPC client in syncz');
    assert.equal(st.type, 'grpc');
    const err = st.translationErrors.find((e: any) => e.resource === `outbound|9080||${RATINGS}`);
    assert.ok(err, JSON.stringify(st.translationErrors));
    assert.match(err.message, /RANDOM is not implemented by proxyless gRPC clients/);
    assert.equal(err.source, 'DestinationRule default/ratings');
    assert.ok(t.logs.find('translation error').some((l) => l.proxy === 'grpc-client-1' && String(l.error).includes('RANDOM')));
    const metrics = await (await fetch(`${t.http}/metrics`)).text();
    assert.match(metrics, /^weft_xds_translation_errors_total\{type="cds"\} [1-9]\d*$/m);
    assert.match(metrics, /^pilot_xds\{type="grpc",version="unknown"\} 1$/m);
    g.end();
    client.close();
  });

  test('/metrics exposes the istiod metric names with plausible values', async () => {
    const text = await (await fetch(`${t.http}/metrics`)).text();
    const value = (re: RegExp) => {
      const m = re.exec(text);
      assert.ok(m, `${re} in /metrics`);
      return Number(m[1]);
    };
    assert.ok(value(/^pilot_xds\{type="sidecar",version="1\.24\.0"\} (\d+)$/m) >= 1);
    assert.ok(value(/^pilot_xds_pushes\{type="cds"\} (\d+)$/m) >= 2);
    assert.ok(value(/^pilot_xds_pushes\{type="rds"\} (\d+)$/m) >= 4);
    assert.ok(value(/^pilot_xds_pushes\{type="eds"\} (\d+)$/m) >= 2);
    assert.ok(value(/^pilot_push_triggers\{type="config"\} (\d+)$/m) >= 4);
    assert.ok(value(/^pilot_push_triggers\{type="registration"\} (\d+)$/m) >= 1);
    assert.ok(value(/^pilot_push_triggers\{type="proxyrequest"\} (\d+)$/m) >= 3);
    assert.ok(value(/^pilot_proxy_convergence_time_count (\d+)$/m) >= 1);
    assert.ok(value(/^pilot_xds_push_time_count\{type="rds"\} (\d+)$/m) >= 1);
    assert.ok(value(/^pilot_xds_config_size_bytes_sum\{type="cds"\} (\d+)$/m) > 100);
    assert.ok(value(/^pilot_proxy_queue_time_count (\d+)$/m) >= 1);
    assert.equal(value(/^pilot_services (\d+)$/m), 2);
    assert.ok(value(/^process_resident_memory_bytes (\d+)$/m) > 1e6);
    assert.match(text, /^# TYPE pilot_proxy_convergence_time histogram$/m);
    assert.match(text, /^pilot_proxy_convergence_time_bucket\{le="\+Inf"\} \d+$/m);
    assert.match(text, /^# TYPE pilot_total_xds_internal_errors counter$/m);
  });
});
