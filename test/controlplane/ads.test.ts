// The ADS server over real gRPC streams: SotW and Delta semantics, ACK/NACK status, incremental pushes,
// push order and resumption.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SnapshotCache, syncState } from '../../src/controlplane/cache/cache.js';
import { Snapshot } from '../../src/controlplane/cache/snapshot.js';
import { AdsServer } from '../../src/controlplane/ads/server.js';
import { createRequire } from 'node:module';
import { framedWritesInstalled, installPooledReads, releaseRequest } from '../../src/controlplane/ads/service.js';
import { pack, unpack, TypeUrl } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { AdsTestClient } from '../helpers/ads-client.js';

const cluster = (name: string, timeoutS = 1) => ({ name, resource: pack(ClusterSchema, { name, connectTimeout: { seconds: BigInt(timeoutS) } }) });
const cla = (name: string, ...ports: number[]) => ({
  name,
  resource: pack(ClusterLoadAssignmentSchema, {
    clusterName: name,
    endpoints: [{ lbEndpoints: ports.map((p) => ({ hostIdentifier: { case: 'endpoint' as const, value: { address: { address: { case: 'socketAddress' as const, value: { address: '127.0.0.1', portSpecifier: { case: 'portValue' as const, value: p } } } } } } })) }],
  }),
});
const listener = (name: string) => ({ name, resource: pack(ListenerSchema, { name }) });
const route = (name: string) => ({ name, resource: pack(RouteConfigurationSchema, { name }) });

function snap(version: string, parts: { cds?: ReturnType<typeof cluster>[]; eds?: ReturnType<typeof cla>[]; lds?: ReturnType<typeof listener>[]; rds?: ReturnType<typeof route>[] }) {
  return new Snapshot(version, [
    [TypeUrl.Cluster, parts.cds ?? []],
    [TypeUrl.ClusterLoadAssignment, parts.eds ?? []],
    [TypeUrl.Listener, parts.lds ?? []],
    [TypeUrl.RouteConfiguration, parts.rds ?? []],
  ]);
}

const base = () => snap('1', {
  cds: [cluster('outbound|80||a.default.svc.cluster.local'), cluster('outbound|80||b.default.svc.cluster.local')],
  eds: [cla('outbound|80||a.default.svc.cluster.local', 8001), cla('outbound|80||b.default.svc.cluster.local', 8002)],
  lds: [listener('0.0.0.0_80')],
  rds: [route('80')],
});

describe('ADS server', () => {
  const cache = new SnapshotCache();
  const events: string[] = [];
  const server = new AdsServer({
    cache,
    hooks: {
      onNack: (e) => events.push(`nack ${e.nodeId} ${e.typeUrl} ${e.message}`),
    },
  });
  let client: AdsTestClient;
  before(async () => {
    const port = await server.listen('127.0.0.1', 0);
    client = new AdsTestClient(`127.0.0.1:${port}`);
  });
  after(async () => {
    client.close();
    await server.close();
  });

  test('SotW: wildcard CDS, named EDS, ACK, incremental push, NACK, stale nonce', async () => {
    cache.setSnapshot('n1', base());
    const s = client.sotw();
    s.send({ node: { id: 'n1', metadata: { NAMESPACE: 'default' } }, typeUrl: TypeUrl.Cluster });
    const cds = await s.next();
    assert.equal(cds.typeUrl, TypeUrl.Cluster);
    assert.deepEqual(cds.resources.map((r) => unpack(ClusterSchema, r).name).sort(), ['outbound|80||a.default.svc.cluster.local', 'outbound|80||b.default.svc.cluster.local']);
    assert.ok(cds.nonce && cds.versionInfo);
    s.send({ typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['outbound|80||a.default.svc.cluster.local'] });
    const eds = await s.next();
    assert.equal(eds.typeUrl, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(eds.resources.map((r) => unpack(ClusterLoadAssignmentSchema, r).clusterName), ['outbound|80||a.default.svc.cluster.local']);
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['outbound|80||a.default.svc.cluster.local'], versionInfo: eds.versionInfo, responseNonce: eds.nonce });

    // An endpoint-only change of a cluster the client does NOT watch sends nothing; of the watched one, only EDS.
    const s2 = base();
    cache.setSnapshot('n1', snap('2', {
      cds: [cluster('outbound|80||a.default.svc.cluster.local'), cluster('outbound|80||b.default.svc.cluster.local')],
      eds: [cla('outbound|80||a.default.svc.cluster.local', 8001), cla('outbound|80||b.default.svc.cluster.local', 9999)],
      lds: [listener('0.0.0.0_80')],
      rds: [route('80')],
    }));
    void s2;
    cache.setSnapshot('n1', snap('3', {
      cds: [cluster('outbound|80||a.default.svc.cluster.local'), cluster('outbound|80||b.default.svc.cluster.local')],
      eds: [cla('outbound|80||a.default.svc.cluster.local', 8001, 8003), cla('outbound|80||b.default.svc.cluster.local', 9999)],
      lds: [listener('0.0.0.0_80')],
      rds: [route('80')],
    }));
    const eds2 = await s.next();
    assert.equal(eds2.typeUrl, TypeUrl.ClusterLoadAssignment, 'the first push after the changes is EDS, not CDS');
    assert.equal(unpack(ClusterLoadAssignmentSchema, eds2.resources[0]!).endpoints[0]!.lbEndpoints.length, 2);
    const st = cache.status('n1')!;
    assert.equal(syncState(st.types.get(TypeUrl.Cluster)), 'SYNCED');
    assert.equal(syncState(st.types.get(TypeUrl.ClusterLoadAssignment)), 'STALE');

    // NACK: recorded with its message, nothing re-sent.
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['outbound|80||a.default.svc.cluster.local'], versionInfo: eds.versionInfo, responseNonce: eds2.nonce, errorDetail: { code: 3, message: 'bad endpoint: port 8003 refused' } });
    // A stale nonce is ignored (no ACK recorded for it).
    s.send({ typeUrl: TypeUrl.Cluster, versionInfo: 'bogus', responseNonce: 'stale-nonce' });
    // A new type request acts as a barrier: its response arrives after everything above was processed.
    s.send({ typeUrl: TypeUrl.Listener });
    const lds = await s.next();
    assert.equal(lds.typeUrl, TypeUrl.Listener);
    assert.equal(s.responses.pending, 0);
    assert.equal(syncState(st.types.get(TypeUrl.ClusterLoadAssignment)), 'NACKED');
    assert.equal(st.types.get(TypeUrl.ClusterLoadAssignment)!.nack!.message, 'bad endpoint: port 8003 refused');
    assert.equal(st.types.get(TypeUrl.Cluster)!.ackedVersion, cds.versionInfo, 'stale request did not change the ACKed version');
    assert.ok(events.some((e) => e.includes('nack n1') && e.includes('port 8003')));

    // Removing a cluster: full-state CDS is re-sent without it.
    cache.setSnapshot('n1', snap('4', {
      cds: [cluster('outbound|80||a.default.svc.cluster.local')],
      eds: [cla('outbound|80||a.default.svc.cluster.local', 8001, 8003)],
      lds: [listener('0.0.0.0_80')],
      rds: [route('80')],
    }));
    const cds2 = await s.next();
    assert.equal(cds2.typeUrl, TypeUrl.Cluster);
    assert.equal(cds2.resources.length, 1);
    s.end();
  });

  test('SotW: push order is CDS, EDS, LDS, RDS', async () => {
    cache.setSnapshot('n2', base());
    const s = client.sotw();
    // Subscribe in reverse order, ACK each, then change everything at once.
    s.send({ node: { id: 'n2' }, typeUrl: TypeUrl.RouteConfiguration, resourceNames: ['80'] });
    const r = await s.next();
    s.send({ typeUrl: TypeUrl.Listener });
    const l = await s.next();
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['outbound|80||a.default.svc.cluster.local'] });
    const e = await s.next();
    s.send({ typeUrl: TypeUrl.Cluster });
    const c = await s.next();
    assert.deepEqual([r, l, e, c].map((x) => x.typeUrl), [TypeUrl.RouteConfiguration, TypeUrl.Listener, TypeUrl.ClusterLoadAssignment, TypeUrl.Cluster]);
    cache.setSnapshot('n2', snap('9', {
      cds: [cluster('outbound|80||a.default.svc.cluster.local', 2)],
      eds: [cla('outbound|80||a.default.svc.cluster.local', 7000)],
      lds: [listener('0.0.0.0_80'), listener('0.0.0.0_81')],
      rds: [{ name: '80', resource: pack(RouteConfigurationSchema, { name: '80', validateClusters: true }) }],
    }));
    const order = [];
    for (let i = 0; i < 4; i++) order.push((await s.next()).typeUrl);
    assert.deepEqual(order, [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration]);
    s.end();
  });

  test('SotW: a reconnecting client that has the current version gets no re-push', async () => {
    cache.setSnapshot('n3', base());
    const s = client.sotw();
    s.send({ node: { id: 'n3' }, typeUrl: TypeUrl.Cluster });
    const cds = await s.next();
    s.end();
    const again = client.sotw();
    again.send({ node: { id: 'n3' }, typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo });
    again.send({ typeUrl: TypeUrl.Listener }); // barrier
    const first = await again.next();
    assert.equal(first.typeUrl, TypeUrl.Listener, 'CDS was not re-sent');
    // A client with an old version does get it.
    const old = client.sotw();
    old.send({ node: { id: 'n3' }, typeUrl: TypeUrl.Cluster, versionInfo: 'old' });
    assert.equal((await old.next()).typeUrl, TypeUrl.Cluster);
    again.end();
    old.end();
  });

  test('SotW: EDS and RDS responses carry only what changed; CDS and LDS the full state', async () => {
    const a = 'outbound|80||a.default.svc.cluster.local';
    const b = 'outbound|80||b.default.svc.cluster.local';
    cache.setSnapshot('n4', base());
    const s = client.sotw();
    s.send({ node: { id: 'n4' }, typeUrl: TypeUrl.Cluster });
    const cds = await s.next();
    s.send({ typeUrl: TypeUrl.Cluster, versionInfo: cds.versionInfo, responseNonce: cds.nonce });
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: [a, b] });
    const eds = await s.next();
    assert.equal(eds.resources.length, 2);
    s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: [a, b], versionInfo: eds.versionInfo, responseNonce: eds.nonce });
    cache.setSnapshot('n4', snap('5', {
      cds: [cluster(a), cluster(b, 3)],
      eds: [cla(a, 8001), cla(b, 8002, 8004)],
      lds: [listener('0.0.0.0_80')],
      rds: [route('80')],
    }));
    const cds2 = await s.next();
    assert.equal(cds2.typeUrl, TypeUrl.Cluster);
    assert.equal(cds2.resources.length, 2, 'CDS is full state');
    const eds2 = await s.next();
    assert.equal(eds2.typeUrl, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(eds2.resources.map((r) => unpack(ClusterLoadAssignmentSchema, r).clusterName), [b], 'only the changed assignment');
    assert.notEqual(eds2.versionInfo, eds.versionInfo);
    s.end();
  });

  test('proxies holding the same resources share their first responses; later pushes and ACKs are per stream', async () => {
    assert.equal(framedWritesInstalled(), true, 'gRPC sends framed responses as they are (see service.ts)');
    const shared = base();
    for (const id of ['sh-a', 'sh-b', 'sh-c', 'sh-d']) cache.setSnapshot(id, shared);
    const names = (r: { resources: Array<{ typeUrl: string; value: Uint8Array }> }) => r.resources.map((x) => unpack(ClusterSchema, x as never).name);
    // SotW
    const a = client.sotw();
    const b = client.sotw();
    a.send({ node: { id: 'sh-a' }, typeUrl: TypeUrl.Cluster });
    b.send({ node: { id: 'sh-b' }, typeUrl: TypeUrl.Cluster });
    const [ra, rb] = [await a.next(), await b.next()];
    assert.deepEqual(names(ra), names(rb));
    assert.equal(ra.versionInfo, rb.versionInfo);
    assert.equal(ra.nonce, rb.nonce, 'one response, shared');
    a.send({ typeUrl: TypeUrl.Cluster, versionInfo: ra.versionInfo, responseNonce: ra.nonce });
    b.send({ typeUrl: TypeUrl.Cluster, versionInfo: rb.versionInfo, responseNonce: rb.nonce });
    // Delta
    const c = client.delta();
    const d = client.delta();
    c.send({ node: { id: 'sh-c' }, typeUrl: TypeUrl.Cluster });
    d.send({ node: { id: 'sh-d' }, typeUrl: TypeUrl.Cluster });
    const [rc, rd] = [await c.next(), await d.next()];
    assert.deepEqual(rc.resources.map((r) => r.name), rd.resources.map((r) => r.name));
    assert.deepEqual(rc.resources.map((r) => r.name).sort(), names(ra).sort());
    assert.equal(rc.nonce, rd.nonce, 'one response, shared');
    assert.notEqual(rc.nonce, ra.nonce);
    c.send({ typeUrl: TypeUrl.Cluster, responseNonce: rc.nonce });
    d.send({ typeUrl: TypeUrl.Cluster, responseNonce: rd.nonce });
    // A change: every stream gets a response of its own.
    const next = snap('2', { ...{ cds: [cluster('outbound|80||a.default.svc.cluster.local', 5), cluster('outbound|80||b.default.svc.cluster.local')] } });
    for (const id of ['sh-a', 'sh-b', 'sh-c', 'sh-d']) cache.setSnapshot(id, next);
    const [ra2, rb2, rc2, rd2] = [await a.next(), await b.next(), await c.next(), await d.next()];
    assert.equal(new Set([ra2.nonce, rb2.nonce, rc2.nonce, rd2.nonce]).size, 4);
    assert.equal(rc2.resources.length, 1, 'Delta: only the changed cluster');
    a.send({ typeUrl: TypeUrl.Cluster, versionInfo: ra2.versionInfo, responseNonce: ra2.nonce });
    b.send({ typeUrl: TypeUrl.Cluster, versionInfo: rb2.versionInfo, responseNonce: rb2.nonce });
    c.send({ typeUrl: TypeUrl.Cluster, responseNonce: rc2.nonce });
    d.send({ typeUrl: TypeUrl.Cluster, responseNonce: rd2.nonce });
    // A new type request acts as a barrier (its response comes after the ACKs were processed).
    for (const s of [a, b]) s.send({ typeUrl: TypeUrl.Listener });
    for (const s of [c, d]) s.send({ typeUrl: TypeUrl.Listener });
    for (const s of [a, b, c, d]) await s.next();
    for (const id of ['sh-a', 'sh-b', 'sh-c', 'sh-d']) {
      const t = cache.status(id)!.types.get(TypeUrl.Cluster);
      assert.equal(syncState(t), 'SYNCED', id);
    }
    assert.equal(cache.status('sh-a')!.types.get(TypeUrl.Cluster)!.ackedVersion, ra2.versionInfo);
    for (const s of [a, b, c, d]) s.end();
  });

  test('a stream whose first request has no node id is refused', async () => {
    const s = client.sotw();
    s.send({ typeUrl: TypeUrl.Cluster });
    await assert.rejects(s.next(), /node\.id/);
    assert.equal(s.status?.code, 3);
  });

  test('Delta: subscribe, incremental updates, removals, not-found, NACK restore, resumption', async () => {
    cache.setSnapshot('d1', base());
    const d = client.delta();
    d.send({ node: { id: 'd1' }, typeUrl: TypeUrl.Cluster });
    const c1 = await d.next();
    assert.equal(c1.resources.length, 2);
    const versions = Object.fromEntries(c1.resources.map((r) => [r.name, r.version]));
    d.send({ typeUrl: TypeUrl.Cluster, responseNonce: c1.nonce });
    d.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['outbound|80||a.default.svc.cluster.local', 'outbound|80||nope'] });
    const e1 = await d.next();
    assert.deepEqual(e1.resources.map((r) => r.name), ['outbound|80||a.default.svc.cluster.local']);
    assert.deepEqual(e1.removedResources, ['outbound|80||nope'], 'a subscribed name that does not exist is reported');
    d.send({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: e1.nonce });

    // Change cluster b only and remove nothing: only b is sent.
    cache.setSnapshot('d1', snap('2', {
      cds: [cluster('outbound|80||a.default.svc.cluster.local'), cluster('outbound|80||b.default.svc.cluster.local', 5)],
      eds: [cla('outbound|80||a.default.svc.cluster.local', 8001), cla('outbound|80||b.default.svc.cluster.local', 8002)],
    }));
    const c2 = await d.next();
    assert.equal(c2.typeUrl, TypeUrl.Cluster);
    assert.deepEqual(c2.resources.map((r) => r.name), ['outbound|80||b.default.svc.cluster.local']);
    assert.deepEqual(c2.removedResources, []);
    // NACK it: recorded, and the refused version is not re-sent (no NACK loop); a newer version is.
    d.send({ typeUrl: TypeUrl.Cluster, responseNonce: c2.nonce, errorDetail: { code: 3, message: 'refused b' } });
    // Barrier: this answer comes after the NACK was processed.
    d.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['outbound|80||nope2'] });
    const barrier = await d.next();
    assert.deepEqual([barrier.typeUrl, barrier.resources.map((r) => r.name), barrier.removedResources], [TypeUrl.ClusterLoadAssignment, [], ['outbound|80||nope2']]);
    cache.setSnapshot('d1', snap('3', {
      cds: [cluster('outbound|80||b.default.svc.cluster.local', 6)],
      eds: [cla('outbound|80||b.default.svc.cluster.local', 8002)],
    }));
    const c3 = await d.next();
    assert.deepEqual(c3.resources.map((r) => r.name), ['outbound|80||b.default.svc.cluster.local']);
    assert.deepEqual(c3.removedResources, ['outbound|80||a.default.svc.cluster.local']);
    const e3 = await d.next();
    assert.equal(e3.typeUrl, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(e3.removedResources, ['outbound|80||a.default.svc.cluster.local']);
    assert.equal(cache.status('d1')!.types.get(TypeUrl.Cluster)!.nack!.message, 'refused b');
    d.end();

    // Resumption: a client that has cluster b at the current version gets nothing for CDS.
    const r = client.delta();
    r.send({ node: { id: 'd1' }, typeUrl: TypeUrl.Cluster, initialResourceVersions: { 'outbound|80||b.default.svc.cluster.local': c3.resources[0]!.version } });
    r.send({ typeUrl: TypeUrl.Listener, resourceNamesSubscribe: ['*'] });
    r.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['outbound|80||b.default.svc.cluster.local'] });
    // A first wildcard request is always answered, empty when there is nothing new.
    const resumed = await r.next();
    assert.deepEqual([resumed.typeUrl, resumed.resources.length, resumed.removedResources], [TypeUrl.Cluster, 0, []], 'no CDS re-push on resumption');
    const noListeners = await r.next();
    assert.deepEqual([noListeners.typeUrl, noListeners.resources.length, noListeners.removedResources], [TypeUrl.Listener, 0, []], 'an empty wildcard set is answered');
    const first = await r.next();
    assert.equal(first.typeUrl, TypeUrl.ClusterLoadAssignment);
    // ... and one that has an outdated version of b gets it.
    const r2 = client.delta();
    r2.send({ node: { id: 'd1' }, typeUrl: TypeUrl.Cluster, initialResourceVersions: { 'outbound|80||b.default.svc.cluster.local': versions['outbound|80||b.default.svc.cluster.local']! } });
    const got = await r2.next();
    assert.deepEqual(got.resources.map((x) => x.name), ['outbound|80||b.default.svc.cluster.local']);
    r.end();
    r2.end();
  });

  test('large requests: thousands of names per ACK on several streams, read from reused buffers, each read right', async () => {
    // Two proxies subscribe to different halves of 2,000 assignments (requests of about 45 KB, assembled from
    // several DATA frames), ACK every response, and get endpoint changes; a third subscribes with the first's
    // names. What a stream keeps of a request must be a copy: the request's buffer takes the next message.
    const name = (i: number) => `outbound|8080||service-${String(i).padStart(4, '0')}.namespace-${i % 10}.svc.cluster.local`;
    const all = Array.from({ length: 2000 }, (_, i) => cla(name(i), 9000 + (i % 7)));
    const half = (h: number) => all.slice(h * 1000, h * 1000 + 1000).map((r) => r.name);
    let version = 1;
    const set = (eds: ReturnType<typeof cla>[]) => {
      const sn = snap(String(++version), { cds: [cluster('c')], eds });
      for (const id of ['big-a', 'big-b', 'big-c']) cache.setSnapshot(id, sn);
    };
    const current = [...all];
    set(current);
    const [a, b] = [client.sotw(), client.sotw()];
    const subs = [half(0), half(1)];
    const clusterOf = (r: { typeUrl: string; value: Uint8Array }) => unpack(ClusterLoadAssignmentSchema, r as never).clusterName;
    const ports = (r: { typeUrl: string; value: Uint8Array }) => unpack(ClusterLoadAssignmentSchema, r as never).endpoints[0]!.lbEndpoints.map((e) => (e.hostIdentifier.value as { address: { address: { value: { portSpecifier: { value: number } } } } }).address.address.value.portSpecifier.value);
    [a, b].forEach((s, i) => s.send({ node: { id: i === 0 ? 'big-a' : 'big-b' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: subs[i] }));
    let last = await Promise.all([a.next(), b.next()]);
    assert.deepEqual(last.map((r) => r.resources.map(clusterOf)), subs);
    for (let round = 0; round < 6; round++) {
      [a, b].forEach((s, i) => s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: subs[i], versionInfo: last[i]!.versionInfo, responseNonce: last[i]!.nonce }));
      // An endpoint change of one assignment in each half: each stream gets its own, and only that.
      const changed = [round * 7, 1000 + round * 11];
      for (const i of changed) current[i] = cla(name(i), 7000 + round);
      set(current);
      last = await Promise.all([a.next(), b.next()]);
      assert.deepEqual(last.map((r) => r.resources.map(clusterOf)), changed.map((i) => [name(i)]), `round ${round}`);
      assert.deepEqual(last.map((r) => ports(r.resources[0]!)), [[7000 + round], [7000 + round]]);
    }
    [a, b].forEach((s, i) => s.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: subs[i], versionInfo: last[i]!.versionInfo, responseNonce: last[i]!.nonce }));
    // The third proxy sends the first's names (the same bytes): it gets exactly those assignments.
    const c = client.sotw();
    c.send({ node: { id: 'big-c' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: subs[0] });
    assert.deepEqual((await c.next()).resources.map(clusterOf), subs[0]);
    // A new type request acts as a barrier: the ACKs before it were handled.
    for (const s of [a, b]) s.send({ typeUrl: TypeUrl.Listener });
    for (const s of [a, b]) await s.next();
    for (const id of ['big-a', 'big-b']) {
      const t = cache.status(id)!.types.get(TypeUrl.ClusterLoadAssignment);
      assert.equal(syncState(t), 'SYNCED', id);
      assert.equal(t!.ackedVersion, last[id === 'big-a' ? 0 : 1]!.versionInfo);
    }
    for (const s of [a, b, c]) s.end();
  });
});

test('received gRPC messages: one within a chunk is read in place, one across chunks is assembled in a buffer reused once handled', () => {
  assert.equal(installPooledReads(), true, 'grpc-js decoder replaced (see service.ts)');
  const { StreamDecoder } = createRequire(import.meta.url)('@grpc/grpc-js/build/src/stream-decoder.js') as { StreamDecoder: new (max: number) => { write(b: Buffer): Buffer[] } };
  const frame = (m: Buffer) => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(m.length, 1);
    return Buffer.concat([header, m]);
  };
  const d = new StreamDecoder(-1);
  // Two small messages in one chunk: views of it.
  const chunk = Buffer.concat([frame(Buffer.from('one')), frame(Buffer.from('two'))]);
  const small = d.write(chunk);
  assert.deepEqual(small.map((m) => m.subarray(5).toString()), ['one', 'two']);
  assert.ok(small.every((m) => m.buffer === chunk.buffer), 'no copy');
  // A large message across chunks, with its header split too.
  const big = (fill: number) => frame(Buffer.alloc(40_000, fill));
  const receive = (bytes: Buffer, cuts: number[]) => {
    const out: Buffer[] = [];
    let at = 0;
    for (const c of [...cuts, bytes.length]) {
      out.push(...d.write(bytes.subarray(at, c)));
      at = c;
    }
    return out;
  };
  const [m1] = receive(big(1), [3, 1000, 30_000]);
  assert.ok(m1!.equals(big(1)));
  // Handled: its buffer takes the next large message.
  releaseRequest({ bytes: m1!.subarray(5) });
  const [m2] = receive(big(2), [5, 20_000]);
  assert.ok(m2!.equals(big(2)));
  assert.ok(m2!.buffer === m1!.buffer, 'the buffer is reused');
  // Not given back: the next one gets another buffer, and the unreleased message stays intact.
  const [m3] = receive(Buffer.concat([big(3), frame(Buffer.from('tail'))]), [100]);
  assert.ok(m3!.buffer !== m2!.buffer);
  assert.ok(m2!.equals(big(2)) && m3!.equals(big(3)));
  // Giving back what was given back already (and not lent again), or something never lent, changes nothing.
  releaseRequest({ bytes: m3!.subarray(5) });
  releaseRequest({ bytes: m3!.subarray(5) });
  releaseRequest({ bytes: chunk });
  releaseRequest({});
  const [m4] = receive(big(4), [10]);
  const [m5] = receive(big(5), [10]);
  assert.ok(m4!.buffer !== m5!.buffer, 'one buffer is lent to one message at a time');
  assert.ok(m4!.equals(big(4)) && m5!.equals(big(5)));
  assert.throws(() => new StreamDecoder(10).write(frame(Buffer.alloc(11))), /larger than max \(11 vs 10\)/);
});
