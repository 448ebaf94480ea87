// The ADS client against a scripted fake server (grpc-js), for the protocol's edge cases: Delta → SotW
// fallback on UNIMPLEMENTED, exact request fields (node, names, version_info, nonces, initial_resource_versions,
// error_detail), ordering and ACK-after-apply, stale nonces, dropped streams, malformed responses, the empty
// Delta wildcard, removed_resources for names that never existed, and the initial fetch timeout.
import { afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import type { Any } from '@bufbuild/protobuf/wkt';
import { AdsClient } from '../../src/xds/client/index.js';
import type { AdsClientEvents, AdsClientOptions } from '../../src/xds/client/index.js';
import { pack, TypeUrl } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { ClusterLoadAssignment } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { FakeAds, Recorder, until } from './client-helpers.js';

const CDS = TypeUrl.Cluster;
const EDS = TypeUrl.ClusterLoadAssignment;
const LDS = TypeUrl.Listener;

const cluster = (name: string, timeoutS = 1): Any => pack(ClusterSchema, { name, connectTimeout: { seconds: BigInt(timeoutS) } });
const cla = (name: string, port = 8080): Any => pack(ClusterLoadAssignmentSchema, {
  clusterName: name,
  endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: port } } } } } } }] }],
});

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

async function fake(opts: { delta: boolean; sotw?: boolean }): Promise<FakeAds> {
  const f = new FakeAds(opts);
  await f.listen();
  cleanup.push(() => f.close());
  return f;
}

function client(f: FakeAds, opts: Partial<AdsClientOptions> = {}) {
  const events: Array<{ type: keyof AdsClientEvents; e: any }> = [];
  const c = new AdsClient({ server: `127.0.0.1:${f.port}`, node: { id: 'node-1', cluster: 'reviews', metadata: { NAMESPACE: 'ns' }, locality: { zone: 'z1' } }, backoff: { baseMs: 10, maxMs: 80 }, ...opts });
  for (const type of ['connected', 'disconnected', 'reconnecting', 'fallback', 'ack', 'nack', 'initial-fetch-timeout'] as const) c.on(type, (e) => events.push({ type, e }));
  cleanup.push(() => c.close());
  return { c, events, of: (type: keyof AdsClientEvents) => events.filter((x) => x.type === type).map((x) => x.e) };
}

describe('ADS client protocol edge cases (fake server)', () => {
  test('auto: Delta answered UNIMPLEMENTED falls back to SotW; SotW requests carry node, names, version, nonce', async () => {
    const f = await fake({ delta: false });
    const { c, of } = client(f);
    const cds = new Recorder<Cluster>();
    c.watch<Cluster>(CDS, { wildcard: true, onUpdate: (u) => { cds.updates.push(u); } });
    const s = await f.nextSotw();
    const first = await s.next();
    assert.equal(first.node?.id, 'node-1');
    assert.equal(first.node?.cluster, 'reviews');
    assert.equal(first.node?.locality?.zone, 'z1');
    assert.deepEqual(first.node?.metadata, { NAMESPACE: 'ns' });
    assert.equal(first.node?.userAgentName, 'weft');
    assert.deepEqual([first.typeUrl, first.resourceNames, first.versionInfo, first.responseNonce], [CDS, [], '', '']);
    assert.equal(of('fallback').length, 1);
    assert.equal(of('fallback')[0].to, 'sotw');
    assert.equal(c.state().protocol, 'sotw');

    s.sotw({ versionInfo: 'v1', typeUrl: CDS, nonce: 'n1', resources: [cluster('a'), cluster('b')] });
    await c.synced([CDS]);
    assert.deepEqual(of('connected'), [{ protocol: 'sotw' }], 'the refused Delta stream never counted as connected');
    assert.equal(of('disconnected').length, 0);
    assert.equal(of('reconnecting').length, 0, 'the fallback is immediate, without backoff');
    const ack = await s.next();
    assert.equal(ack.node, undefined, 'the node goes in the first request of a stream only');
    assert.deepEqual([ack.typeUrl, ack.versionInfo, ack.responseNonce, ack.resourceNames, ack.errorDetail], [CDS, 'v1', 'n1', [], undefined]);
    assert.deepEqual(cds.names(), ['a', 'b']);
    assert.equal(cds.last!.full.get('a')!.version, 'v1');

    // SotW CDS is the full state: a cluster missing from the next response is deleted.
    s.sotw({ versionInfo: 'v2', typeUrl: CDS, nonce: 'n2', resources: [cluster('b')] });
    const ack2 = await s.next();
    assert.deepEqual([ack2.versionInfo, ack2.responseNonce], ['v2', 'n2']);
    assert.deepEqual(cds.last!.removed, ['a']);
    assert.deepEqual([...cds.last!.added.keys()], []);
    assert.deepEqual(cds.names(), ['b']);
    assert.equal(cds.last!.full.get('b')!.version, 'v1', 'an unchanged resource keeps the version it came with');
  });

  test('delta forced: no fallback, the client keeps retrying with backoff', async () => {
    const f = await fake({ delta: false });
    const { c, of } = client(f, { protocol: 'delta', random: () => 0.5 });
    c.watch(CDS, { wildcard: true, onUpdate() {} });
    await until(() => of('reconnecting').length >= 5, 'reconnect attempts');
    // Exponential (base 10 ms), capped at 80 ms, with the jitter at its midpoint.
    assert.deepEqual(of('reconnecting').slice(0, 5).map((r: { delayMs: number }) => r.delayMs), [5, 10, 20, 40, 40]);
    assert.equal(of('fallback').length, 0);
    assert.equal(f.sotwStreams.pending, 0, 'no SotW stream opened');
    assert.ok(of('reconnecting').every((r: { code: number }) => r.code === status.UNIMPLEMENTED));
    assert.deepEqual(of('reconnecting').slice(0, 3).map((r: { attempt: number }) => r.attempt), [1, 2, 3]);
    assert.equal(c.state().protocol, 'delta');
  });

  test('SotW: updates applied in arrival order, each ACKed only after its handler resolved', async () => {
    const f = await fake({ delta: false });
    const { c } = client(f, { protocol: 'sotw' });
    const log: string[] = [];
    const gates = new Map<string, () => void>();
    c.watch<Cluster>(CDS, {
      wildcard: true,
      onUpdate: async (u) => {
        log.push(`start ${u.systemVersion}`);
        await new Promise<void>((resolve) => gates.set(u.systemVersion, resolve));
        log.push(`end ${u.systemVersion}`);
      },
    });
    c.watch(EDS, { names: ['a'], onUpdate: (u) => { log.push(`eds ${u.systemVersion}`); } });
    const s = await f.nextSotw();
    await s.nextOf(CDS);
    await s.nextOf(EDS);
    s.sotw({ versionInfo: 'v1', typeUrl: CDS, nonce: 'n1', resources: [cluster('a')] });
    s.sotw({ versionInfo: 'e1', typeUrl: EDS, nonce: 'n2', resources: [cla('a')] });
    s.sotw({ versionInfo: 'v2', typeUrl: CDS, nonce: 'n3', resources: [cluster('a', 2)] });
    await until(() => gates.has('v1'), 'first handler running');
    // Give the client every chance to (wrongly) ACK or run the next handler before the first one resolved.
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(s.requests.pending, 0, 'no ACK before the handler resolved');
    assert.deepEqual(log, ['start v1']);
    log.push('release v1');
    gates.get('v1')!();
    const ack1 = await s.next();
    assert.deepEqual([ack1.typeUrl, ack1.versionInfo, ack1.responseNonce], [CDS, 'v1', 'n1']);
    const ack2 = await s.next();
    assert.deepEqual([ack2.typeUrl, ack2.versionInfo, ack2.responseNonce, ack2.resourceNames], [EDS, 'e1', 'n2', ['a']]);
    await until(() => gates.has('v2'), 'second CDS handler running');
    log.push('release v2');
    gates.get('v2')!();
    const ack3 = await s.next();
    assert.deepEqual([ack3.typeUrl, ack3.versionInfo, ack3.responseNonce], [CDS, 'v2', 'n3']);
    assert.deepEqual(log, ['start v1', 'release v1', 'end v1', 'eds e1', 'start v2', 'release v2', 'end v2']);
  });

  test('SotW: subscription changes carry the full list, the last accepted version and the latest nonce', async () => {
    const f = await fake({ delta: false });
    const { c } = client(f, { protocol: 'sotw' });
    const eds = new Recorder<ClusterLoadAssignment>();
    const gates = new Map<string, () => void>();
    c.watch<ClusterLoadAssignment>(EDS, {
      onUpdate: async (u) => {
        if (u.systemVersion === 'e2') await new Promise<void>((resolve) => gates.set('e2', resolve));
        eds.updates.push(u);
      },
    });
    c.subscribe(EDS, ['a']);
    const s = await f.nextSotw();
    const first = await s.next();
    assert.deepEqual([first.typeUrl, first.resourceNames, first.node?.id], [EDS, ['a'], 'node-1']);
    s.sotw({ versionInfo: 'e1', typeUrl: EDS, nonce: 'n1', resources: [cla('a')] });
    assert.deepEqual((await s.next()).responseNonce, 'n1');
    // Two responses back to back; while the first is being applied the caller subscribes to b. Every request
    // afterwards names a and b, and none carries a nonce older than the response it follows: the ACK of n2 (which
    // the server may see as stale once it sent n3) and the ACK of n3, which is the latest.
    s.sotw({ versionInfo: 'e2', typeUrl: EDS, nonce: 'n2', resources: [cla('a', 8081)] });
    s.sotw({ versionInfo: 'e3', typeUrl: EDS, nonce: 'n3', resources: [cla('a', 8082)] });
    await until(() => gates.has('e2'), 'e2 being applied');
    c.subscribe(EDS, ['b']);
    gates.get('e2')!();
    const ack2 = await s.next();
    assert.deepEqual([ack2.versionInfo, ack2.responseNonce, ack2.resourceNames], ['e2', 'n2', ['a', 'b']]);
    const ack3 = await s.next();
    assert.deepEqual([ack3.versionInfo, ack3.responseNonce, ack3.resourceNames], ['e3', 'n3', ['a', 'b']]);
    // A spontaneous change: the full list, the last accepted version, the latest nonce.
    c.subscribe(EDS, ['c']);
    const change = await s.next();
    assert.deepEqual([change.resourceNames, change.versionInfo, change.responseNonce, change.errorDetail], [['a', 'b', 'c'], 'e3', 'n3', undefined]);
    // EDS is not full-state: a response with only b adds b and keeps a (absence is not deletion).
    s.sotw({ versionInfo: 'e4', typeUrl: EDS, nonce: 'n4', resources: [cla('b')] });
    assert.equal((await s.next()).responseNonce, 'n4', 'nothing was sent between the change and this ACK');
    assert.deepEqual(eds.names(), ['a', 'b']);
    assert.deepEqual(eds.last!.removed, []);
    assert.deepEqual(eds.updates.map((u) => u.systemVersion), ['e1', 'e2', 'e3', 'e4']);
    // Unsubscribing forgets the resource and sends the shorter list; the handler is not called.
    c.unsubscribe(EDS, ['a']);
    const unsub = await s.next();
    assert.deepEqual([unsub.resourceNames, unsub.versionInfo, unsub.responseNonce], [['b', 'c'], 'e4', 'n4']);
    assert.equal(c.resources(EDS).has('a'), false);
    assert.equal(eds.calls, 4);
    // A response of a type the client never asked for is ignored: no handler, no ACK.
    s.sotw({ versionInfo: 'x', typeUrl: LDS, nonce: 'n5', resources: [pack(ListenerSchema, { name: 'l' })] });
    s.sotw({ versionInfo: 'e6', typeUrl: EDS, nonce: 'n6', resources: [cla('c')] });
    const next = await s.next();
    assert.deepEqual([next.typeUrl, next.responseNonce], [EDS, 'n6']);
    assert.deepEqual(eds.names(), ['b', 'c']);
  });

  test('SotW: malformed responses and refused updates are NACKed with the previous version', async () => {
    const f = await fake({ delta: false });
    const { c, of } = client(f, { protocol: 'sotw' });
    const cds = new Recorder<Cluster>();
    c.watch<Cluster>(CDS, {
      wildcard: true,
      onUpdate: (u) => {
        for (const r of u.added.values()) if (r.message.connectTimeout && r.message.connectTimeout.seconds > 100n) throw new Error(`cluster ${r.name}: connect_timeout too long`);
        cds.updates.push(u);
      },
    });
    const s = await f.nextSotw();
    await s.next();
    s.sotw({ versionInfo: 'v1', typeUrl: CDS, nonce: 'n1', resources: [cluster('a')] });
    await s.next();
    const cases: Array<[resources: Any[], error: RegExp]> = [
      [[cluster('a'), cluster('a', 2)], /resource a appears twice/],
      [[cla('a')], /type type\.googleapis\.com\/envoy\.config\.endpoint\.v3\.ClusterLoadAssignment in a .*Cluster response/],
      [[{ $typeName: 'google.protobuf.Any', typeUrl: CDS, value: new Uint8Array([0xff, 0xff, 0xff]) }], /cannot decode/],
      [[pack(ClusterSchema, { name: '' })], /has no name/],
      [[cluster('a'), cluster('slow', 500)], /cluster slow: connect_timeout too long/],
    ];
    let nonce = 1;
    for (const [resources, error] of cases) {
      const n = `n${++nonce}`;
      s.sotw({ versionInfo: `bad${nonce}`, typeUrl: CDS, nonce: n, resources });
      const nack = await s.next();
      assert.equal(nack.responseNonce, n);
      assert.equal(nack.versionInfo, 'v1', 'a NACK carries the last accepted version');
      assert.equal(nack.errorDetail?.code, status.INVALID_ARGUMENT);
      assert.match(nack.errorDetail?.message ?? '', error);
    }
    assert.equal(cds.calls, 1);
    assert.deepEqual([...c.resources(CDS).keys()], ['a']);
    assert.equal(of('nack').length, cases.length);
    assert.match(c.state().types[CDS]!.nack!.message, /connect_timeout too long/);
    assert.equal(c.state().types[CDS]!.ackedVersion, 'v1');
  });

  test('Delta: subscribe/unsubscribe, removed_resources, NACK, dropped stream resumes with initial_resource_versions', async () => {
    const f = await fake({ delta: true });
    const { c, of } = client(f);
    const cds = new Recorder<Cluster>();
    const eds = new Recorder<ClusterLoadAssignment>();
    c.watch<Cluster>(CDS, {
      wildcard: true,
      onUpdate: (u) => {
        if (u.added.has('bad')) throw new Error('cluster bad: refused');
        cds.updates.push(u);
        c.subscribe(EDS, [...u.added.keys()]);
        c.unsubscribe(EDS, u.removed);
      },
    });
    c.watch<ClusterLoadAssignment>(EDS, { onUpdate: (u) => { eds.updates.push(u); } });
    let s = await f.nextDelta();
    const first = await s.next();
    assert.deepEqual([first.node?.id, first.typeUrl, first.resourceNamesSubscribe, first.resourceNamesUnsubscribe, first.initialResourceVersions], ['node-1', CDS, [], [], {}]);
    assert.equal(s.requests.pending, 0, 'EDS has no names yet: not requested (an empty request would mean wildcard)');
    s.delta({ systemVersionInfo: 's1', typeUrl: CDS, nonce: 'd1', resources: [{ name: 'a', version: 'a1', resource: cluster('a') }, { name: 'b', version: 'b1', resource: cluster('b') }] });
    const ack = await s.next();
    assert.deepEqual([ack.typeUrl, ack.responseNonce, ack.errorDetail, ack.resourceNamesSubscribe], [CDS, 'd1', undefined, []]);
    const sub = await s.next();
    assert.equal(sub.typeUrl, EDS, 'the subscription the handler made goes out after the ACK of its response');
    assert.deepEqual([sub.responseNonce, sub.resourceNamesSubscribe.sort(), sub.node], ['', ['a', 'b'], undefined]);
    const pending = c.synced([CDS, EDS]);
    // b does not exist: the server says so in removed_resources, which satisfies synced() for b.
    s.delta({ systemVersionInfo: 's2', typeUrl: EDS, nonce: 'd2', resources: [{ name: 'a', version: 'ea1', resource: cla('a') }], removedResources: ['b'] });
    await pending;
    await s.nextOf(EDS);
    assert.deepEqual(eds.names(), ['a']);
    assert.deepEqual(eds.last!.removed, [], 'b was never held: nothing to remove');

    // A refused update: NACK with error_detail, nothing changes.
    s.delta({ systemVersionInfo: 's3', typeUrl: CDS, nonce: 'd3', resources: [{ name: 'bad', version: 'x1', resource: cluster('bad') }] });
    const nack = await s.nextOf(CDS);
    assert.deepEqual([nack.responseNonce, nack.errorDetail?.code, nack.errorDetail?.message], ['d3', status.INVALID_ARGUMENT, 'cluster bad: refused']);
    assert.deepEqual(cds.names(), ['a', 'b']);
    assert.equal(of('nack').length, 1);

    // Removal of b: the handler unsubscribes its EDS name.
    s.delta({ systemVersionInfo: 's4', typeUrl: CDS, nonce: 'd4', removedResources: ['b'] });
    await s.nextOf(CDS);
    const unsub = await s.nextOf(EDS);
    assert.deepEqual([unsub.resourceNamesSubscribe, unsub.resourceNamesUnsubscribe], [[], ['b']]);
    assert.deepEqual(cds.names(), ['a']);

    // The server drops the stream: the client reconnects (backoff restarts: the stream had answered) and
    // resumes: node, the wildcard, its EDS names and the versions it holds.
    s.end();
    await until(() => of('reconnecting').length === 1, 'reconnecting');
    assert.equal(of('reconnecting')[0].attempt, 1);
    assert.equal(of('disconnected').length, 1);
    s = await f.nextDelta();
    const r1 = await s.next();
    const r2 = await s.next();
    assert.deepEqual([r1.node?.id, r1.typeUrl, r1.resourceNamesSubscribe, r1.initialResourceVersions], ['node-1', CDS, [], { a: 'a1' }]);
    assert.deepEqual([r2.node, r2.typeUrl, r2.resourceNamesSubscribe, r2.initialResourceVersions], [undefined, EDS, ['a'], { a: 'ea1' }]);
    // A server that ignores initial_resource_versions re-sends what the client has: not re-applied, ACKed.
    const calls = [cds.calls, eds.calls];
    s.delta({ systemVersionInfo: 's5', typeUrl: CDS, nonce: 'd5', resources: [{ name: 'a', version: 'a1', resource: cluster('a') }] });
    s.delta({ systemVersionInfo: 's6', typeUrl: EDS, nonce: 'd6', resources: [{ name: 'a', version: 'ea1', resource: cla('a') }] });
    assert.equal((await s.next()).responseNonce, 'd5');
    assert.equal((await s.next()).responseNonce, 'd6');
    assert.deepEqual([cds.calls, eds.calls], calls);
    assert.equal(c.state().types[CDS]!.ackedVersion, 's5');
    assert.equal(c.state().connected, true);
  });

  test('Delta: an empty wildcard response is a first update; unchanged versions and heartbeats are not re-applied', async () => {
    const f = await fake({ delta: true });
    const { c } = client(f);
    const lds = new Recorder();
    c.watch(LDS, { wildcard: true, onUpdate: (u) => { lds.updates.push(u); } });
    const s = await f.nextDelta();
    await s.next();
    const synced = c.synced([LDS]);
    s.delta({ systemVersionInfo: 'empty', typeUrl: LDS, nonce: 'e' });
    await synced;
    assert.equal(lds.calls, 1);
    assert.equal(lds.last!.full.size, 0);
    assert.equal((await s.next()).responseNonce, 'e');
    s.delta({ typeUrl: LDS, nonce: 'f', resources: [{ name: 'l', version: '1', resource: pack(ListenerSchema, { name: 'l' }) }] });
    await s.next();
    // A TTL heartbeat (no body, same version) and an identical re-send: ACKed, no handler call.
    s.delta({ typeUrl: LDS, nonce: 'g', resources: [{ name: 'l', version: '1' }] });
    assert.equal((await s.next()).errorDetail, undefined);
    s.delta({ typeUrl: LDS, nonce: 'h', resources: [{ name: 'l', version: '1', resource: pack(ListenerSchema, { name: 'l' }) }] });
    assert.equal((await s.next()).errorDetail, undefined);
    assert.equal(lds.calls, 2);
    // A body-less resource the client does not have, and a name both updated and removed: NACKed.
    s.delta({ typeUrl: LDS, nonce: 'i', resources: [{ name: 'm', version: '1' }] });
    assert.match((await s.next()).errorDetail?.message ?? '', /resource m has no body/);
    s.delta({ typeUrl: LDS, nonce: 'j', resources: [{ name: 'm', version: '1', resource: pack(ListenerSchema, { name: 'm' }) }], removedResources: ['m'] });
    assert.match((await s.next()).errorDetail?.message ?? '', /both updated and removed/);
    assert.deepEqual([...c.resources(LDS).keys()], ['l']);
  });

  test('initial fetch timeout: a type the server never answers stops blocking synced()', async () => {
    const f = await fake({ delta: true });
    // Long enough that the CDS answer (sent as soon as the requests arrive) always beats it on a loaded machine;
    // LDS, never answered, times out.
    const { c, of } = client(f, { initialFetchTimeoutMs: 2000 });
    c.watch(LDS, { wildcard: true, onUpdate() {} });
    c.watch(CDS, { wildcard: true, onUpdate() {} });
    const s = await f.nextDelta();
    await s.next();
    await s.next();
    s.delta({ typeUrl: CDS, nonce: 'c', resources: [{ name: 'a', version: '1', resource: cluster('a') }] });
    await c.synced([LDS, CDS]);
    assert.deepEqual(of('initial-fetch-timeout').map((e: { typeUrl: string }) => e.typeUrl), [LDS]);
    const st = c.state().types;
    assert.deepEqual([st[LDS]!.initialFetchTimedOut, st[LDS]!.updates, st[CDS]!.initialFetchTimedOut, st[CDS]!.updates], [true, 0, false, 1]);
  });
});
