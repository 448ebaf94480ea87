// The service registry: selection of WorkloadEntries and registered workloads by Service selectors, port
// resolution, ServiceEntry endpoints, heartbeats and change events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import type { RegistryChange } from '../../src/controlplane/registry/registry.js';

const CONFIG = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: bookinfo}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080, targetPort: 9081}
  - {name: grpc-admin, port: 7000, targetPort: admin}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-vm-1, namespace: bookinfo}
spec:
  address: 10.1.0.5
  labels: {app: reviews, version: v1}
  ports: {admin: 7700}
  locality: region-a/zone-1
  serviceAccount: reviews
  weight: 3
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: other-ns, namespace: default}
spec:
  address: 10.1.0.9
  labels: {app: reviews}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ext-db, namespace: bookinfo}
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{name: tcp-pg, number: 5432, protocol: TCP}]
  endpoints:
  - {address: 192.0.2.10, ports: {tcp-pg: 6432}}
  - {address: 192.0.2.11}
`;

function model(text = CONFIG) {
  const r = parseConfigText(text, 'reg.yaml');
  const b = buildModel(r.resources);
  assert.deepEqual(b.diagnostics.filter((d) => d.severity === 'Error'), []);
  return b.model;
}

test('WorkloadEntries are selected by labels in the service namespace, with port resolution', () => {
  const reg = new ServiceRegistry();
  reg.setModel(model());
  const host = 'reviews.bookinfo.svc.cluster.local';
  const http = reg.endpoints(host, 9080);
  assert.deepEqual(http.map((e) => `${e.address}:${e.port}`), ['10.1.0.5:9081'], 'numeric targetPort; other namespace not selected');
  assert.equal(http[0]!.locality, 'region-a/zone-1');
  assert.equal(http[0]!.weight, 3);
  assert.equal(http[0]!.serviceAccount, 'reviews');
  assert.equal(http[0]!.tlsMode, 'disabled');
  assert.deepEqual(reg.endpoints(host, 7000).map((e) => e.port), [7700], 'named targetPort resolves through the workload ports');
  assert.deepEqual(reg.endpoints(host, 1234), [], 'unknown port');
  assert.deepEqual(reg.endpoints('db.example.com', 5432).map((e) => `${e.address}:${e.port}`), ['192.0.2.10:6432', '192.0.2.11:5432']);
});

test('registered workloads join, heartbeat, change health, expire and leave, with change events', () => {
  const reg = new ServiceRegistry();
  const changes: RegistryChange[] = [];
  reg.onChange((c) => changes.push(c));
  reg.setModel(model());
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.services, true);
  const host = 'reviews.bookinfo.svc.cluster.local';
  reg.register({ name: 'reviews-local-0', namespace: 'bookinfo', address: '127.0.0.1', labels: { app: 'reviews', version: 'v2' }, ports: { http: 20001 }, serviceAccount: 'reviews', sidecar: true, source: 'LocalWorkload', ttlMs: 1000 });
  assert.deepEqual(changes.at(-1), { services: false, endpointHosts: new Set([host]), serviceAccounts: false }, 'the host already had an endpoint of service account reviews');
  const eps = reg.endpoints(host, 9080);
  assert.deepEqual(eps.map((e) => `${e.address}:${e.port}:${e.tlsMode}:${e.healthy}`), ['10.1.0.5:9081:disabled:true', '127.0.0.1:20001:istio:true'], 'the port named like the service port wins over targetPort');
  // a workload that no service selects changes nothing
  const n = changes.length;
  reg.register({ name: 'lonely', namespace: 'bookinfo', address: '127.0.0.2', labels: { app: 'nobody' }, ports: {}, serviceAccount: 'x', sidecar: false, source: 'Registered', ttlMs: 0 });
  assert.equal(changes.length, n);
  // heartbeat deadlines: unhealthy after ttl, removed after 3×ttl
  const t0 = Date.now();
  assert.deepEqual(reg.expire(t0 + 500), { unhealthy: [], removed: [] });
  assert.deepEqual(reg.expire(t0 + 1500), { unhealthy: ['bookinfo/reviews-local-0'], removed: [] });
  assert.equal(reg.endpoints(host, 9080)[1]!.healthy, false);
  assert.ok(reg.heartbeat('bookinfo', 'reviews-local-0'));
  assert.equal(reg.endpoints(host, 9080)[1]!.healthy, true, 'a heartbeat makes it healthy again');
  assert.deepEqual(reg.expire(Date.now() + 3500), { unhealthy: [], removed: ['bookinfo/reviews-local-0'] });
  assert.equal(reg.endpoints(host, 9080).length, 1);
  assert.equal(reg.deregister('bookinfo', 'reviews-local-0'), false);
  assert.equal(reg.heartbeat('bookinfo', 'nope'), false);
});

test('an endpoint change that changes the service accounts of a service port says so (a full push: clusters carry them as SANs)', () => {
  const reg = new ServiceRegistry();
  const changes: RegistryChange[] = [];
  reg.onChange((c) => changes.push(c));
  reg.setModel(model());
  const v0 = reg.serviceAccountsVersion();
  const vm = (name: string, sa: string, address: string) =>
    reg.register({ name, namespace: 'bookinfo', address, labels: { app: 'reviews' }, ports: {}, serviceAccount: sa, sidecar: true, source: 'Registered', ttlMs: 0 });
  vm('vm-1', 'reviews', '10.1.0.7');
  assert.equal(changes.at(-1)!.serviceAccounts, false, 'the same service account as the existing endpoint');
  assert.equal(reg.serviceAccountsVersion(), v0);
  vm('vm-2', 'reviews-vm', '10.1.0.8');
  assert.equal(changes.at(-1)!.serviceAccounts, true, 'a new service account');
  const v1 = reg.serviceAccountsVersion();
  assert.notEqual(v1, v0);
  reg.setHealth('bookinfo', 'vm-2', false);
  assert.equal(changes.at(-1)!.serviceAccounts, false, 'health does not change the service accounts');
  vm('vm-3', 'reviews-vm', '10.1.0.9');
  assert.equal(changes.at(-1)!.serviceAccounts, false);
  reg.deregister('bookinfo', 'vm-2');
  assert.equal(changes.at(-1)!.serviceAccounts, false, 'vm-3 still has reviews-vm');
  reg.deregister('bookinfo', 'vm-3');
  assert.equal(changes.at(-1)!.serviceAccounts, true, 'the last endpoint of reviews-vm left');
  assert.notEqual(reg.serviceAccountsVersion(), v1);
  // WorkloadEntry edits in place (replaceWorkloads) and config rebuilds (setModel) report it too.
  const c = reg.setModel(model(CONFIG.replace('serviceAccount: reviews', 'serviceAccount: reviews-2')));
  assert.equal(c.services, false);
  assert.equal(c.serviceAccounts, true);
  assert.equal(reg.setModel(model(CONFIG.replace('serviceAccount: reviews', 'serviceAccount: reviews-2').replace('address: 10.1.0.5', 'address: 10.1.0.6'))).serviceAccounts, false);
});

test('a config change that only moves endpoints reports the host, not a service change', () => {
  const reg = new ServiceRegistry();
  reg.setModel(model());
  const c = reg.setModel(model(CONFIG.replace('address: 10.1.0.5', 'address: 10.1.0.6')));
  assert.equal(c.services, false);
  assert.deepEqual(c.endpointHosts, new Set(['reviews.bookinfo.svc.cluster.local']));
  const same = reg.setModel(model(CONFIG.replace('address: 10.1.0.5', 'address: 10.1.0.6')));
  assert.equal(same.services, false);
  assert.equal(same.endpointHosts.size, 0);
  const svc = reg.setModel(model(CONFIG.replace('port: 9080', 'port: 9090')));
  assert.equal(svc.services, true);
});

test('what did not change keeps its identity: the service list and unchanged endpoint lists', () => {
  const reg = new ServiceRegistry();
  reg.setModel(model());
  const services = reg.services();
  const db = reg.endpoints('db.example.com', 5432);
  const reviews = reg.endpoints('reviews.bookinfo.svc.cluster.local', 9080);
  const c = reg.setModel(model(CONFIG.replace('address: 10.1.0.5', 'address: 10.1.0.6')));
  assert.deepEqual(c.endpointHosts, new Set(['reviews.bookinfo.svc.cluster.local']));
  assert.equal(reg.services(), services, 'services equal to the last ones (a new model of the same config): the same list');
  assert.equal(reg.endpoints('db.example.com', 5432), db, 'unchanged endpoints: the same list');
  assert.notEqual(reg.endpoints('reviews.bookinfo.svc.cluster.local', 9080), reviews, 'changed endpoints: a new list');
  assert.deepEqual(reg.endpoints('reviews.bookinfo.svc.cluster.local', 9080).map((e) => e.address), ['10.1.0.6']);
});

test('a ServiceEntry whose inline endpoints change is an endpoint change, unless it gains its first or loses its last', () => {
  const reg = new ServiceRegistry();
  reg.setModel(model());
  const moved = reg.setModel(model(CONFIG.replace('address: 192.0.2.11', 'address: 192.0.2.12')));
  assert.equal(moved.services, false, 'only endpoints changed');
  assert.deepEqual(moved.endpointHosts, new Set(['db.example.com']));
  assert.deepEqual(reg.endpoints('db.example.com', 5432).map((e) => e.address), ['192.0.2.10', '192.0.2.12']);
  const none = CONFIG.replace(/ {2}endpoints:\n.*\n.*\n/, '');
  assert.ok(!none.includes('192.0.2.10'));
  const gone = reg.setModel(model(none));
  assert.equal(gone.services, true, 'losing the last inline endpoint is a service change (with resolution NONE the clusters would change)');
});

test('a model whose workload entries alone changed: only the hosts selecting a changed entry are looked at', () => {
  const reg = new ServiceRegistry();
  const m1 = model();
  reg.setModel(m1);
  const db = reg.endpoints('db.example.com', 5432);
  const admin = reg.endpoints('reviews.bookinfo.svc.cluster.local', 7000);
  // The same services (as the control plane's rebuild for WorkloadEntry changes keeps them), one entry moved.
  const m2 = { ...m1, workloads: m1.workloads.map((w) => (w.name === 'reviews-vm-1' ? { ...w, address: '10.1.0.7' } : w)) };
  const c = reg.setModel(m2);
  assert.equal(c.services, false);
  assert.deepEqual(c.endpointHosts, new Set(['reviews.bookinfo.svc.cluster.local']));
  assert.equal(reg.endpoints('db.example.com', 5432), db, 'a host that selects no changed entry keeps its list');
  assert.notEqual(reg.endpoints('reviews.bookinfo.svc.cluster.local', 7000), admin);
  assert.deepEqual(reg.endpoints('reviews.bookinfo.svc.cluster.local', 9080).map((e) => e.address), ['10.1.0.7']);
  // An entry of another namespace changed: no host selects it.
  const m3 = { ...m2, workloads: m2.workloads.map((w) => (w.name === 'other-ns' ? { ...w, address: '10.1.0.99' } : w)) };
  assert.equal(reg.setModel(m3).endpointHosts.size, 0);
});

test('workloads replaced in place: the same result as setModel, computed from the hosts selecting them', () => {
  const m1 = model();
  const inPlace = new ServiceRegistry();
  const whole = new ServiceRegistry();
  inPlace.setModel(m1);
  whole.setModel(m1);
  const db = inPlace.endpoints('db.example.com', 5432);
  const replace = (m: typeof m1, name: string, edit: (w: (typeof m1.workloads)[number]) => (typeof m1.workloads)[number]) => {
    const i = m.workloads.findIndex((w) => w.name === name);
    assert.ok(i >= 0, name);
    const workloads = [...m.workloads];
    const pair = [m.workloads[i]!, edit(m.workloads[i]!)] as const;
    workloads[i] = pair[1];
    return { model: { ...m, workloads }, pair };
  };
  const check = (m: typeof m1, r: RegistryChange, w: RegistryChange) => {
    assert.deepEqual(r, w);
    for (const s of whole.services()) for (const p of s.ports) assert.deepEqual(inPlace.endpoints(s.hostname, p.port), whole.endpoints(s.hostname, p.port), `${s.hostname}:${p.port}`);
    assert.equal(m.services, inPlace.services());
  };
  // An address edit: only the hosts selecting the entry are recomputed.
  const a = replace(m1, 'reviews-vm-1', (w) => ({ ...w, address: '10.1.0.7' }));
  check(a.model, inPlace.replaceWorkloads(a.model, [a.pair]), whole.setModel(a.model));
  assert.deepEqual(inPlace.endpoints('reviews.bookinfo.svc.cluster.local', 9080).map((e) => e.address), ['10.1.0.7']);
  assert.equal(inPlace.endpoints('db.example.com', 5432), db, 'a host that selects no replaced entry keeps its list');
  // A label edit moves the entry to other selections: the same result too.
  const b = replace(a.model, 'reviews-vm-1', (w) => ({ ...w, labels: { ...w.labels, app: 'ratings' } }));
  check(b.model, inPlace.replaceWorkloads(b.model, [b.pair]), whole.setModel(b.model));
  // An edit that changes nothing the endpoints read: no host changed.
  const c = replace(b.model, 'reviews-vm-1', (w) => ({ ...w }));
  const rc = inPlace.replaceWorkloads(c.model, [c.pair]);
  check(c.model, rc, whole.setModel(c.model));
  assert.equal(rc.endpointHosts.size, 0);
});

test('endpointsVersion changes whenever an endpoint list may be replaced, and only then', () => {
  const reg = new ServiceRegistry();
  const m1 = model();
  reg.setModel(m1);
  // Every list handed out now, and the version they go with.
  const snapshot = () => {
    const lists = new Map<string, readonly unknown[]>();
    for (const s of reg.services()) for (const p of s.ports) lists.set(`${s.hostname}|${p.port}`, reg.endpoints(s.hostname, p.port));
    return { version: reg.endpointsVersion(), lists };
  };
  // A change must not replace a list without changing the version; the version must hold while nothing changes.
  const step = (what: string, change: () => void, replaces: boolean) => {
    const before = snapshot();
    assert.equal(snapshot().version, before.version, `${what}: reading changes nothing`);
    change();
    const after = snapshot();
    const replaced = [...after.lists].some(([k, l]) => before.lists.get(k) !== l);
    assert.equal(replaced, replaces, `${what}: a list was${replaces ? ' ' : ' not '}replaced`);
    if (replaced) assert.notEqual(after.version, before.version, `${what}: a replaced list changes the version`);
  };
  step('register', () => reg.register({ name: 'vm-2', namespace: 'bookinfo', address: '10.1.0.6', labels: { app: 'reviews' }, ports: {}, serviceAccount: 'r', sidecar: true, source: 'Registered', ttlMs: 0 }), true);
  step('health', () => reg.setHealth('bookinfo', 'vm-2', false), true);
  step('the same health', () => reg.setHealth('bookinfo', 'vm-2', false), false);
  step('deregister', () => reg.deregister('bookinfo', 'vm-2'), true);
  const m2 = { ...m1, workloads: m1.workloads.map((w) => (w.name === 'reviews-vm-1' ? { ...w, address: '10.1.0.7' } : w)) };
  step('an entry moved', () => reg.setModel(m2), true);
  const i = m2.workloads.findIndex((w) => w.name === 'reviews-vm-1');
  const workloads = [...m2.workloads];
  workloads[i] = { ...m2.workloads[i]!, address: '10.1.0.8' };
  step('an entry replaced in place', () => reg.replaceWorkloads({ ...m2, workloads }, [[m2.workloads[i]!, workloads[i]!]]), true);
  step('a new model with other services', () => reg.setModel(model(CONFIG.replace('port: 9080', 'port: 9090'))), true);
});
