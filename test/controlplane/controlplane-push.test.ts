// Push debouncing and merging (istiod's rules), Snapshot.withResources, the Prometheus text writer, and proxy shapes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergePush, PushDebouncer, pushRequest } from '../../src/controlplane/push.js';
import type { PushRequest } from '../../src/controlplane/push.js';
import { Counter, Gauge, Histogram, MetricsRegistry } from '../../src/controlplane/metrics.js';
import { derivationOf, setVersion, Snapshot } from '../../src/controlplane/cache/snapshot.js';
import { Coverage, Held, namePool } from '../../src/controlplane/ads/held.js';
import { proxyShape } from '../../src/controlplane/controlplane.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { pack, TypeUrl } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('merging keeps every reason with counts, unions hosts, is full when either is, keeps the first start', () => {
  const a = pushRequest('endpoint', { full: false, hosts: ['a'], start: 100 });
  const b = pushRequest('registration', { full: false, hosts: ['b'], start: 50 });
  const c = pushRequest('endpoint', { full: true, start: 200 });
  const m = mergePush(mergePush(a, b), c);
  assert.equal(m.full, true);
  assert.deepEqual([...m.endpointHosts].sort(), ['a', 'b']);
  assert.deepEqual(Object.fromEntries(m.reasons), { endpoint: 2, registration: 1 });
  assert.equal(m.start, 50);
  assert.equal(mergePush(a, b).full, false);
});

test('the quiet period runs from when a change happened (its `last`), not from when it was enqueued', { timeout: 20_000 }, async () => {
  const pushes: PushRequest[] = [];
  let pushed!: () => void;
  const done = new Promise<void>((r) => (pushed = r));
  const d = new PushDebouncer({ debounceMs: 60_000, maxMs: 120_000, push: (r) => (pushes.push(r), pushed()) });
  // Seen a minute ago (a config file whose events arrived then): its quiet period is over, it pushes at once.
  const at = Date.now() - 60_000;
  d.enqueue(pushRequest('config', { full: true, start: at, last: at }));
  await done;
  assert.equal(pushes[0]!.start, at);
  // Seen now: waits its whole quiet period.
  d.enqueue(pushRequest('config', { full: true }));
  await sleep(50);
  assert.equal(pushes.length, 1);
  assert.equal(d.waiting, true);
  d.close();
});

test('a burst of changes becomes one push after the quiet period', async () => {
  const pushes: PushRequest[] = [];
  const d = new PushDebouncer({ debounceMs: 40, maxMs: 10_000, push: (r) => pushes.push(r) });
  d.enqueue(pushRequest('config', { full: true }));
  await sleep(5);
  d.enqueue(pushRequest('endpoint', { full: false, hosts: ['x'] }));
  d.enqueue(pushRequest('config', { full: true }));
  assert.equal(pushes.length, 0, 'nothing before the quiet period');
  await sleep(150);
  assert.equal(pushes.length, 1);
  assert.deepEqual(Object.fromEntries(pushes[0]!.reasons), { config: 2, endpoint: 1 });
  assert.equal(d.waiting, false);
  d.close();
});

test('a steady stream of changes still pushes once the first change is maxMs old', async () => {
  const pushes: PushRequest[] = [];
  const d = new PushDebouncer({ debounceMs: 50, maxMs: 100, push: (r) => pushes.push(r) });
  for (let i = 0; i < 40; i++) {
    d.enqueue(pushRequest('endpoint', { full: false, hosts: [`h${i}`] }));
    await sleep(10);
  }
  assert.ok(pushes.length >= 2, `pushed ${pushes.length} times during a continuous stream`);
  d.close();
});

test('flush pushes now; close drops what waits; a throwing push is reported and the debouncer goes on', async () => {
  const pushes: PushRequest[] = [];
  const errors: unknown[] = [];
  let fail = true;
  const d = new PushDebouncer({
    debounceMs: 10_000,
    maxMs: 10_000,
    push: (r) => {
      if (fail) {
        fail = false;
        throw new Error('boom');
      }
      pushes.push(r);
    },
    onError: (e) => errors.push(e),
  });
  d.enqueue(pushRequest('config', { full: true }));
  d.flush();
  assert.equal((errors[0] as Error).message, 'boom');
  d.enqueue(pushRequest('registration', { full: false, hosts: ['a'] }));
  d.flush();
  assert.equal(pushes.length, 1);
  d.enqueue(pushRequest('config', { full: true }));
  d.close();
  d.flush();
  assert.equal(pushes.length, 1);
  d.enqueue(pushRequest('config', { full: true }));
  assert.equal(d.waiting, false, 'a closed debouncer takes nothing');
});

test('Snapshot.withResources replaces, adds and removes one type and shares the rest', () => {
  const cla = (n: string, port: number) => ({ name: n, resource: pack(ClusterLoadAssignmentSchema, { clusterName: n, endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '10.0.0.1', portSpecifier: { case: 'portValue', value: port } } } } } } }] }] }) });
  const s1 = new Snapshot('1', [
    [TypeUrl.Cluster, [{ name: 'a', resource: pack(ClusterSchema, { name: 'a' }) }]],
    [TypeUrl.ClusterLoadAssignment, [cla('a', 1), cla('b', 2)]],
  ]);
  const s2 = s1.withResources('2', TypeUrl.ClusterLoadAssignment, [cla('a', 9), cla('c', 3)], ['b']);
  assert.equal(s2.version, '2');
  assert.equal(s2.resources(TypeUrl.Cluster), s1.resources(TypeUrl.Cluster), 'other types are shared');
  assert.deepEqual([...s2.resources(TypeUrl.ClusterLoadAssignment).keys()].sort(), ['a', 'c']);
  assert.notEqual(s2.resources(TypeUrl.ClusterLoadAssignment).get('a')!.version, s1.resources(TypeUrl.ClusterLoadAssignment).get('a')!.version);
  assert.deepEqual([...s1.resources(TypeUrl.ClusterLoadAssignment).keys()].sort(), ['a', 'b'], 'the original is unchanged');
  const same = s1.withResources('3', TypeUrl.ClusterLoadAssignment, [cla('a', 1)]);
  assert.equal(same.resources(TypeUrl.ClusterLoadAssignment).get('a')!.version, s1.resources(TypeUrl.ClusterLoadAssignment).get('a')!.version, 'equal content, equal version');
  assert.throws(() => s1.withResources('4', TypeUrl.ClusterLoadAssignment, [{ name: 'x', resource: pack(ClusterSchema, { name: 'x' }) }]), /type .*Cluster in the .*ClusterLoadAssignment list/);
});

test('a patched type map records how it was derived; set versions are order-independent and incremental', () => {
  const cla = (n: string, port: number) => ({ name: n, resource: pack(ClusterLoadAssignmentSchema, { clusterName: n, endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '10.0.0.1', portSpecifier: { case: 'portValue', value: port } } } } } } }] }] }) });
  const s1 = new Snapshot('1', [[TypeUrl.ClusterLoadAssignment, [cla('a', 1), cla('b', 2), cla('c', 3)]]]);
  const m1 = s1.resources(TypeUrl.ClusterLoadAssignment);
  const v1 = s1.typeVersion(TypeUrl.ClusterLoadAssignment);
  const s2 = s1.withResources('2', TypeUrl.ClusterLoadAssignment, [cla('a', 9), cla('d', 4)], ['b']);
  const m2 = s2.resources(TypeUrl.ClusterLoadAssignment);
  const d = derivationOf(m2)!;
  assert.equal(d.from, m1);
  assert.deepEqual([...d.changed].sort(), ['a', 'd']);
  assert.deepEqual(d.added, ['d']);
  assert.deepEqual(d.removed, ['b']);
  // The derived version (from the parent's sum) equals the version of the same set computed from scratch, in any order.
  const v2 = s2.typeVersion(TypeUrl.ClusterLoadAssignment);
  assert.equal(v2, setVersion([...m2.values()].reverse()));
  assert.notEqual(v2, v1);
  assert.equal(setVersion([...m1.values()].reverse()), v1);
  // Back to the first set: the first version.
  const s3 = s2.withResources('3', TypeUrl.ClusterLoadAssignment, [m1.get('a')!, m1.get('b')!], ['d']);
  assert.equal(s3.typeVersion(TypeUrl.ClusterLoadAssignment), v1);
  // withTypeMap shares the map it is given.
  assert.equal(s1.withTypeMap('4', TypeUrl.ClusterLoadAssignment, m2).resources(TypeUrl.ClusterLoadAssignment), m2);
});

test('what a stream holds: a shared type map, and the changes from its derivation', () => {
  const cla = (n: string, port: number) => ({ name: n, resource: pack(ClusterLoadAssignmentSchema, { clusterName: n, endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '10.0.0.2', portSpecifier: { case: 'portValue', value: port } } } } } } }] }] }) });
  const s1 = new Snapshot('1', [[TypeUrl.ClusterLoadAssignment, [cla('a', 1), cla('b', 2)]]]);
  const m1 = s1.resources(TypeUrl.ClusterLoadAssignment);
  const held = new Held();
  held.reset(m1);
  assert.ok(held.is(m1));
  assert.equal(held.size, 2);
  assert.equal(held.digest(), s1.typeVersion(TypeUrl.ClusterLoadAssignment));
  const m2 = s1.withResources('2', TypeUrl.ClusterLoadAssignment, [cla('b', 7)]).resources(TypeUrl.ClusterLoadAssignment);
  assert.deepEqual(held.changesTo(m2)?.changed, ['b'], 'holding the parent map: only the derivation matters');
  held.set(m2.get('b')!);
  assert.equal(held.changesTo(m2), undefined, 'no longer exactly the parent');
  assert.equal(held.digest(), setVersion(m2.values()), 'the running version follows each change');
  held.delete('a');
  assert.deepEqual([...held.names()], ['b']);
  assert.equal(held.digest(), setVersion([m2.get('b')!]));
  // Subscriptions cover a map when they name all of it.
  const cov = new Coverage();
  assert.equal(cov.covers({ wildcard: false, names: new Set(['a']) }, m2), false);
  const all = new Set(['a', 'b', 'zzz']);
  assert.equal(cov.covers({ wildcard: false, names: all }, m2), true);
  assert.equal(cov.covers({ wildcard: false, names: all }, m1), true);
  assert.equal(cov.covers({ wildcard: true, names: new Set() }, m2), true);
  // Equal subscriptions are one shared set.
  assert.equal(namePool.intern(new Set(['x', 'y'])), namePool.intern(new Set(['x', 'y'])));
  assert.notEqual(namePool.intern(new Set(['x', 'y'])), namePool.intern(new Set(['y', 'x'])));
});

test('the Prometheus text writer: labels escaped, histograms cumulative, collected gauges', () => {
  const reg = new MetricsRegistry();
  const c = reg.add(new Counter('x_total', 'A counter.\nSecond line'));
  const g = reg.add(new Gauge('y', 'A gauge.'));
  const h = reg.add(new Histogram('z_seconds', 'A histogram.', [0.1, 1]));
  const live = reg.add(new Gauge('live', 'Computed.')).collect(() => [[{ k: 'v' }, 7]]);
  void live;
  c.inc({ type: 'a"b\\c\nd' }, 2);
  c.inc({ type: 'a"b\\c\nd' });
  g.set({ b: '2', a: '1' }, 5);
  g.remove({ a: '1' });
  g.set(undefined, 3);
  h.observe({ t: 'x' }, 0.05);
  h.observe({ t: 'x' }, 0.5);
  h.observe({ t: 'x' }, 5);
  assert.throws(() => reg.add(new Counter('y', 'dup')), /registered twice/);
  const text = reg.render();
  assert.equal(
    text,
    [
      '# HELP x_total A counter.\\nSecond line',
      '# TYPE x_total counter',
      'x_total{type="a\\"b\\\\c\\nd"} 3',
      '# HELP y A gauge.',
      '# TYPE y gauge',
      'y 3',
      '# HELP z_seconds A histogram.',
      '# TYPE z_seconds histogram',
      'z_seconds_bucket{t="x",le="0.1"} 1',
      'z_seconds_bucket{t="x",le="1"} 2',
      'z_seconds_bucket{t="x",le="+Inf"} 3',
      'z_seconds_sum{t="x"} 5.55',
      'z_seconds_count{t="x"} 3',
      '# HELP live Computed.',
      '# TYPE live gauge',
      'live{k="v"} 7',
      '',
    ].join('\n'),
  );
});

test('proxy shape: what translation reads, not the id or the addresses', () => {
  const node = (id: string, ip: string, labels: Record<string, string>) =>
    proxyFromNode(create(NodeSchema, { id, metadata: { NAMESPACE: 'shop', LABELS: labels, INSTANCE_IPS: ip, WORKLOAD_NAME: id }, locality: { region: 'r', zone: 'z' } }));
  const a = node('a-1.shop', '10.0.0.1', { app: 'a', version: 'v1' });
  const b = node('a-2.shop', '10.0.0.2', { version: 'v1', app: 'a' });
  const c = node('a-3.shop', '10.0.0.3', { app: 'a', version: 'v2' });
  assert.equal(proxyShape(a), proxyShape(b), 'same labels in another order, other id and address');
  assert.notEqual(proxyShape(a), proxyShape(c));
  // What translation reads of the metadata and addresses: the network (failover priorities) and whether every
  // address is IPv6 (the lookup family of DNS clusters).
  const withNetwork = proxyFromNode(create(NodeSchema, { id: 'a-4.shop', metadata: { NAMESPACE: 'shop', LABELS: { app: 'a', version: 'v1' }, INSTANCE_IPS: '10.0.0.4', NETWORK: 'net-2' }, locality: { region: 'r', zone: 'z' } }));
  assert.notEqual(proxyShape(withNetwork), proxyShape(a));
  const v6 = proxyFromNode(create(NodeSchema, { id: 'a-5.shop', metadata: { NAMESPACE: 'shop', LABELS: { app: 'a', version: 'v1' }, INSTANCE_IPS: 'fd00::5', WORKLOAD_NAME: 'x' }, locality: { region: 'r', zone: 'z' } }));
  assert.notEqual(proxyShape(v6), proxyShape(a));
});
