// Which config changes are endpoint-only: a change that touches only WorkloadEntries (or only the inline
// endpoints of ServiceEntries) is pushed as EDS, without translating anything again, as istiod treats
// WorkloadEntry updates; anything else is a full push. The model rebuilt from the last one for WorkloadEntry
// changes is the model a full build gives.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../../src/api/build.js';
import type { Workload } from '../../src/api/model.js';
import type { ConfigChange } from '../../src/config/store.js';
import { TypeUrl } from '../../src/xds/index.js';
import { ConfigDir, FakeEnvoy, nextPush, sidecarNode, startControlPlane, until, REVIEWS, reviewsVirtualService } from './controlplane-helpers.js';
import type { TestControlPlane } from './controlplane-helpers.js';

const SERVICES = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: default}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
`;

const we = (name: string, address: string, labels = '{app: reviews, version: v1}', port = 9080) => `
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${name}, namespace: default}
spec: {address: ${address}, labels: ${labels}, ports: {http: ${port}}}
`;

const se = (endpoints: string[], port = 443) => `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: default}
spec:
  hosts: [payments.example.com]
  ports: [{number: ${port}, name: tls, protocol: TLS}]
  resolution: STATIC
  endpoints:
${endpoints.map((a) => `  - address: ${a}`).join('\n')}
`;


function addresses(env: FakeEnvoy, cluster: string): string[] {
  const cla = env.endpoints().find((c) => c.clusterName === cluster);
  return (cla?.endpoints ?? [])
    .flatMap((g) => g.lbEndpoints)
    .map((l) => (l.hostIdentifier.case === 'endpoint' && l.hostIdentifier.value.address?.address.case === 'socketAddress' ? l.hostIdentifier.value.address.address.value.address : ''))
    .sort();
}

describe('endpoint-only config changes', () => {
  const cfg = new ConfigDir();
  let t: TestControlPlane;
  let envoy: FakeEnvoy;

  before(async () => {
    cfg.write('services.yaml', SERVICES);
    cfg.write('payments.yaml', se(['192.0.2.10']));
    cfg.write('vs.yaml', reviewsVirtualService('v1'));
    cfg.write('we-1.yaml', we('reviews-1', '10.0.0.1'));
    cfg.write('we-2.yaml', we('reviews-2', '10.0.0.2'));
    t = await startControlPlane(cfg.dir);
    envoy = new FakeEnvoy(t.xds, sidecarNode('sidecar~10.0.0.9~productpage.default~default.svc.cluster.local', 'default', { app: 'productpage' }));
    await envoy.sync();
    assert.deepEqual(addresses(envoy, `outbound|9080||${REVIEWS}`), ['10.0.0.1', '10.0.0.2']);
  });

  after(async () => {
    envoy.close();
    await t.cp.close();
    cfg.remove();
  });

  /** The model a full build of the current configuration gives (what an incremental rebuild must equal). */
  function assertModelIsFullBuild(): void {
    const full = buildModel(t.cp.source.store.snapshot().resources).model;
    assert.deepEqual(t.cp.model.workloads, full.workloads, 'workloads as a full build lists them');
    assert.deepEqual(t.cp.model.services, full.services);
  }

  test('editing a WorkloadEntry file sends only EDS, without translating again', async () => {
    const pushed = nextPush(t.cp, (s) => s.reasons.endpoint !== undefined);
    cfg.write('we-1.yaml', we('reviews-1', '10.0.0.11'));
    await t.cp.reloadConfig();
    const summary = await pushed;
    assert.equal(summary.full, false);
    assert.deepEqual(summary.hosts, [REVIEWS]);
    assert.equal(summary.translations, 0, 'nothing translated again');
    assert.deepEqual(summary.types, { EDS: 1 }, 'only EDS was sent');
    assert.equal(summary.reasons.config, undefined, 'not a config push');
    const r = await envoy.next();
    assert.equal(r.typeUrl, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(addresses(envoy, `outbound|9080||${REVIEWS}`), ['10.0.0.11', '10.0.0.2']);
    assert.ok(r.resources.length <= 2, 'only the assignments of the changed host (its cluster and the v1 subset)');
    assert.equal(envoy.stream.responses.pending, 0, 'nothing else was sent');
    assertModelIsFullBuild();
  });

  test('adding and deleting WorkloadEntry files are endpoint-only too', async () => {
    let pushed = nextPush(t.cp, (s) => s.reasons.endpoint !== undefined);
    cfg.write('we-3.yaml', we('reviews-3', '10.0.0.3', '{app: reviews, version: v2}'));
    await t.cp.reloadConfig();
    let summary = await pushed;
    assert.equal(summary.full, false);
    assert.deepEqual(summary.types, { EDS: 1 });
    await envoy.next();
    assert.deepEqual(addresses(envoy, `outbound|9080||${REVIEWS}`), ['10.0.0.11', '10.0.0.2', '10.0.0.3']);
    assertModelIsFullBuild();

    pushed = nextPush(t.cp, (s) => s.reasons.endpoint !== undefined);
    rmSync(join(cfg.dir, 'we-2.yaml'));
    await t.cp.reloadConfig();
    summary = await pushed;
    assert.equal(summary.full, false);
    assert.equal(summary.translations, 0);
    await envoy.next();
    assert.deepEqual(addresses(envoy, `outbound|9080||${REVIEWS}`), ['10.0.0.11', '10.0.0.3']);
    assertModelIsFullBuild();
  });

  test('a broken WorkloadEntry edit keeps its last valid version, and is reported', async () => {
    const before = t.cp.configDiagnostics().diagnostics.length;
    cfg.write('we-1.yaml', we('reviews-1', '10.0.0.99', undefined, 70000));
    await t.cp.reloadConfig();
    const diags = t.cp.configDiagnostics().diagnostics.filter((d) => d.severity === 'Error' && d.resource?.name === 'reviews-1');
    assert.equal(diags.length, 1, 'the broken WorkloadEntry is reported');
    assert.match(diags[0]!.hint ?? '', /last valid version/);
    assert.ok(t.cp.model.workloads.some((w) => w.name === 'reviews-1' && w.address === '10.0.0.11'), 'the last valid version stays');
    assert.ok(t.cp.configDiagnostics().diagnostics.length > before);
    // Fixed again: the diagnostic goes, the endpoint changes.
    const pushed = nextPush(t.cp, (s) => s.reasons.endpoint !== undefined);
    cfg.write('we-1.yaml', we('reviews-1', '10.0.0.12'));
    await t.cp.reloadConfig();
    await pushed;
    await envoy.next();
    assert.deepEqual(addresses(envoy, `outbound|9080||${REVIEWS}`), ['10.0.0.12', '10.0.0.3']);
    assert.equal(t.cp.configDiagnostics().diagnostics.filter((d) => d.resource?.name === 'reviews-1').length, 0);
    assertModelIsFullBuild();
  });

  test('a ServiceEntry whose inline endpoints change sends only EDS; a port change is a full push', async () => {
    let pushed = nextPush(t.cp, (s) => s.reasons.endpoint !== undefined);
    cfg.write('payments.yaml', se(['192.0.2.10', '192.0.2.11']));
    await t.cp.reloadConfig();
    let summary = await pushed;
    assert.equal(summary.full, false);
    assert.deepEqual(summary.hosts, ['payments.example.com']);
    assert.deepEqual(summary.types, { EDS: 1 });
    await envoy.next();
    assert.deepEqual(addresses(envoy, 'outbound|443||payments.example.com'), ['192.0.2.10', '192.0.2.11']);

    pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('payments.yaml', se(['192.0.2.10', '192.0.2.11'], 8443));
    await t.cp.reloadConfig();
    summary = await pushed;
    assert.equal(summary.full, true, 'a service definition changed');
    const r = await envoy.next();
    assert.equal(r.typeUrl, TypeUrl.Cluster, 'clusters first');
    assert.ok(envoy.clusters().some((c) => c.name === 'outbound|8443||payments.example.com'));
    while (envoy.stream.responses.pending > 0) await envoy.next();
  });

  test('a change touching a WorkloadEntry and a VirtualService is a full push', async () => {
    const pushed = nextPush(t.cp, (s) => s.reasons.config !== undefined);
    cfg.write('we-1.yaml', we('reviews-1', '10.0.0.13') + '---\n' + reviewsVirtualService('v1').replace('subset: v1', 'subset: v1, port: {number: 9080}'));
    cfg.write('vs.yaml', '');
    await t.cp.reloadConfig();
    const summary = await pushed;
    assert.equal(summary.full, true);
    assert.ok(summary.translations > 0);
    assertModelIsFullBuild();
  });

  test('responses that wait for the ADS send budget still count towards proxy convergence', async () => {
    const cfg2 = new ConfigDir();
    cfg2.write('services.yaml', SERVICES);
    cfg2.write('we-1.yaml', we('reviews-1', '10.0.0.1'));
    // A budget of one byte: any response in flight makes the others wait.
    const t2 = await startControlPlane(cfg2.dir, { sendBudgetBytes: 1 });
    const a = new FakeEnvoy(t2.xds, sidecarNode('a.default', 'default', { app: 'a' }));
    const b = new FakeEnvoy(t2.xds, sidecarNode('b.default', 'default', { app: 'b' }));
    try {
      await a.sync();
      await b.sync();
      const before = t2.cp.metrics.convergence.count();
      const pushed = nextPush(t2.cp, (s) => s.reasons.endpoint !== undefined);
      cfg2.write('we-1.yaml', we('reviews-1', '10.0.0.2'));
      await t2.cp.reloadConfig();
      const summary = await pushed;
      assert.equal(summary.changed, 2);
      await a.expect(TypeUrl.ClusterLoadAssignment);
      await b.expect(TypeUrl.ClusterLoadAssignment);
      assert.deepEqual(addresses(b, `outbound|9080||${REVIEWS}`), ['10.0.0.2']);
      await until(() => t2.cp.metrics.convergence.count() === before + 2, 'both proxies converged');
    } finally {
      a.close();
      b.close();
      await t2.cp.close();
      cfg2.remove();
    }
  });

  test('entries edited in a file that keeps their order are replaced in place, without reading the rest of the configuration', async () => {
    const cfg2 = new ConfigDir();
    cfg2.write('services.yaml', SERVICES);
    cfg2.write('pair.yaml', [we('reviews-1', '10.0.0.1'), we('reviews-2', '10.0.0.2')].join('---\n'));
    const t2 = await startControlPlane(cfg2.dir);
    const e = new FakeEnvoy(t2.xds, sidecarNode('c.default', 'default', { app: 'c' }));
    const store = t2.cp.source.store;
    const changes: ConfigChange[] = [];
    store.onChange((c) => changes.push(c));
    const snapshot = store.snapshot.bind(store);
    let wholeReads = 0;
    store.snapshot = () => {
      wholeReads++;
      return snapshot();
    };
    const fullBuild = () => buildModel(snapshot().resources).model;
    // Without source positions: a resource that only moved in its file is not a change (see ConfigStore).
    const unplaced = (list: readonly Workload[]) => list.map(({ origin, ...w }) => ({ ...w, origin: { ...origin, pos: undefined } }));
    try {
      await e.sync();
      const second = t2.cp.model.workloads.find((w) => w.name === 'reviews-2');
      assert.ok(second);
      let pushed = nextPush(t2.cp, (s) => s.reasons.endpoint !== undefined);
      cfg2.write('pair.yaml', [we('reviews-1', '10.0.0.11'), we('reviews-2', '10.0.0.2')].join('---\n'));
      await t2.cp.reloadConfig();
      let summary = await pushed;
      assert.equal(summary.full, false);
      assert.deepEqual(summary.hosts, [REVIEWS]);
      await e.expect(TypeUrl.ClusterLoadAssignment);
      assert.deepEqual(addresses(e, `outbound|9080||${REVIEWS}`), ['10.0.0.11', '10.0.0.2']);
      assert.equal(changes.length, 1);
      assert.equal(changes[0]!.inPlace, true, 'the store applied the edit in place');
      assert.deepEqual(changes[0]!.updated.map((r) => r.metadata.name), ['reviews-1']);
      assert.equal(wholeReads, 0, 'the rest of the configuration was not read again');
      assert.equal(t2.cp.model.workloads.find((w) => w.name === 'reviews-2'), second, 'the unchanged workload is kept as it was');
      assert.deepEqual(t2.cp.model.workloads, fullBuild().workloads, 'workloads as a full build lists them');
      assert.deepEqual(t2.cp.registry.endpoints(REVIEWS, 9080).map((x) => x.address), ['10.0.0.11', '10.0.0.2']);

      // The entries swap places (one of them edited): not in place; the order is the configuration's.
      pushed = nextPush(t2.cp, (s) => s.reasons.endpoint !== undefined);
      cfg2.write('pair.yaml', [we('reviews-2', '10.0.0.22'), we('reviews-1', '10.0.0.11')].join('---\n'));
      await t2.cp.reloadConfig();
      summary = await pushed;
      assert.equal(summary.full, false);
      await e.expect(TypeUrl.ClusterLoadAssignment);
      assert.deepEqual(addresses(e, `outbound|9080||${REVIEWS}`), ['10.0.0.11', '10.0.0.22']);
      assert.equal(changes.at(-1)!.inPlace, false);
      assert.deepEqual(t2.cp.model.workloads.map((w) => w.name), ['reviews-2', 'reviews-1']);
      assert.deepEqual(unplaced(t2.cp.model.workloads), unplaced(fullBuild().workloads));
      assert.deepEqual(t2.cp.registry.endpoints(REVIEWS, 9080).map((x) => x.address), ['10.0.0.22', '10.0.0.11'], 'endpoints in configuration order');

      // An edit that changes an entry's labels (another subset selects it) is applied in place too.
      pushed = nextPush(t2.cp, (s) => s.reasons.endpoint !== undefined);
      cfg2.write('pair.yaml', [we('reviews-2', '10.0.0.22', '{app: reviews, version: v2}'), we('reviews-1', '10.0.0.11')].join('---\n'));
      await t2.cp.reloadConfig();
      await pushed;
      assert.equal(changes.at(-1)!.inPlace, true);
      assert.deepEqual(unplaced(t2.cp.model.workloads), unplaced(fullBuild().workloads));
      assert.deepEqual(t2.cp.registry.endpoints(REVIEWS, 9080).map((x) => x.labels.version), ['v2', 'v1']);
    } finally {
      store.snapshot = snapshot;
      e.close();
      await t2.cp.close();
      cfg2.remove();
    }
  });
});
