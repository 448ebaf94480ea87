// ADS streams without a network: the send budget (responses wait their turn and keep their order), responses
// serialized in the shared scratch buffer, lazy SotW request reading, and pushes of snapshots derived from the
// one a client holds (only what changed goes out, for SotW and Delta alike).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { pack, TypeUrl, unpack } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
} from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DeltaDiscoveryResponse, DiscoveryResponse } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { SnapshotCache } from '../../src/controlplane/cache/cache.js';
import { Snapshot } from '../../src/controlplane/cache/snapshot.js';
import { DeltaStream } from '../../src/controlplane/ads/delta.js';
import { encodeSotwResponse, LazyDeltaDiscoveryRequest, LazyDiscoveryRequest, ScratchResponse } from '../../src/controlplane/ads/encode.js';
import { serverAdsService } from '../../src/controlplane/ads/service.js';
import { SotwStream } from '../../src/controlplane/ads/sotw.js';
import { SendBudget } from '../../src/controlplane/ads/stream.js';
import { versioned } from '../../src/controlplane/cache/snapshot.js';

const cluster = (name: string) => ({ name, resource: pack(ClusterSchema, { name }) });
const cla = (name: string, port: number) => ({
  name,
  resource: pack(ClusterLoadAssignmentSchema, {
    clusterName: name,
    endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '10.0.0.1', portSpecifier: { case: 'portValue', value: port } } } } } } }] }],
  }),
});

/** A gRPC call that serializes what is written as the server does, and completes writes when told to. */
class FakeCall {
  readonly written: Uint8Array[] = [];
  readonly pending: Array<() => void> = [];
  /** Serialize at once (as gRPC does when the call is free) or later (when an earlier write is in progress). */
  constructor(private readonly serializeLater = false, private readonly delta = false) {}
  private readonly later: Array<() => void> = [];

  write(chunk: unknown, cb?: (err?: Error | null) => void): boolean {
    const method = this.delta ? serverAdsService.DeltaAggregatedResources : serverAdsService.StreamAggregatedResources;
    const serialize = () => this.written.push(new Uint8Array(method.responseSerialize(chunk as never)));
    if (this.serializeLater) this.later.push(serialize);
    else serialize();
    this.pending.push(() => cb?.());
    return true;
  }
  serializeNow(): void {
    for (const f of this.later.splice(0)) f();
  }
  complete(): void {
    this.pending.shift()?.();
  }
  sotw(i: number): DiscoveryResponse {
    return fromBinary(DiscoveryResponseSchema, this.written[i]!);
  }
  deltaResponse(i: number): DeltaDiscoveryResponse {
    return fromBinary(DeltaDiscoveryResponseSchema, this.written[i]!);
  }
}

const sotwRequest = (init: MessageInitShape<typeof DiscoveryRequestSchema>) => new LazyDiscoveryRequest(Buffer.from(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, init))));

const NAMES = ['outbound|80||a', 'outbound|80||b', 'outbound|80||c'];

function base(): Snapshot {
  return new Snapshot('1', [
    [TypeUrl.Cluster, NAMES.map(cluster)],
    [TypeUrl.ClusterLoadAssignment, NAMES.map((n, i) => cla(n, 8000 + i))],
  ]);
}

describe('ADS streams', () => {
  test('the send budget: a response waits while the budget is used up, then goes out, in push order', () => {
    const cache = new SnapshotCache();
    cache.setSnapshot('n1', base());
    cache.setSnapshot('n2', base());
    const budget = new SendBudget(1);
    const a = new FakeCall();
    const b = new FakeCall();
    const sa = new SotwStream(cache, {}, a, budget);
    const sb = new SotwStream(cache, {}, b, budget);
    sa.onRequest(sotwRequest({ node: { id: 'n1' }, typeUrl: TypeUrl.Cluster }));
    assert.equal(a.written.length, 1, 'the first response goes out');
    assert.ok(budget.bytesInFlight > 0);
    sb.onRequest(sotwRequest({ node: { id: 'n2' }, typeUrl: TypeUrl.Cluster }));
    sb.onRequest(sotwRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: NAMES }));
    assert.equal(b.written.length, 0, 'the budget is used up: n2 waits');
    assert.equal(budget.streamsWaiting, 1);
    a.complete();
    assert.equal(b.written.length, 2, 'n2 went once n1 was sent');
    assert.equal(b.sotw(0).typeUrl, TypeUrl.Cluster, 'CDS first');
    assert.equal(b.sotw(1).typeUrl, TypeUrl.ClusterLoadAssignment, 'then EDS');
    // A closed stream gives back what it holds of the budget.
    sb.close();
    sa.close();
    assert.equal(budget.bytesInFlight, 0);
  });

  test('a response serialized later than written does not see the scratch buffer change', () => {
    const cache = new SnapshotCache();
    cache.setSnapshot('n1', base());
    const call = new FakeCall(true);
    const s = new SotwStream(cache, {}, call);
    s.onRequest(sotwRequest({ node: { id: 'n1' }, typeUrl: TypeUrl.Cluster }));
    // Something else is encoded into the scratch buffer before the first response is serialized.
    encodeSotwResponse({ versionInfo: 'x', typeUrl: TypeUrl.Listener, nonce: 'y', resources: [versioned('zzz', pack(ClusterSchema, { name: 'zzz'.repeat(100) }))] }, true);
    call.serializeNow();
    const r = call.sotw(0);
    assert.equal(r.typeUrl, TypeUrl.Cluster);
    assert.deepEqual(r.resources.map((x) => unpack(ClusterSchema, x).name), NAMES);
    // detach copies only what was not taken yet.
    const bytes = new Uint8Array([1, 2, 3]);
    const early = new ScratchResponse(bytes);
    early.detach();
    bytes[0] = 9;
    assert.deepEqual([...early.take()], [1, 2, 3], 'a copy');
    const taken = new ScratchResponse(bytes);
    assert.equal(taken.take(), bytes);
    taken.detach();
    assert.equal(taken.bytes, bytes, 'taken: no copy');
  });

  test('SotW requests are read lazily, and equal subscriptions have equal bytes', () => {
    const init: MessageInitShape<typeof DiscoveryRequestSchema> = {
      versionInfo: 'v1',
      node: { id: 'n1', cluster: 'c', metadata: { NAMESPACE: 'ns' } },
      resourceNames: ['a', 'bé', ''],
      typeUrl: TypeUrl.ClusterLoadAssignment,
      responseNonce: 'n9',
      errorDetail: { code: 3, message: 'bad' },
      resourceLocators: [{ name: 'xdstp://x' }],
    };
    const full = create(DiscoveryRequestSchema, init);
    const lazy = new LazyDiscoveryRequest(Buffer.from(toBinary(DiscoveryRequestSchema, full)));
    assert.equal(lazy.versionInfo, full.versionInfo);
    assert.equal(lazy.typeUrl, full.typeUrl);
    assert.equal(lazy.responseNonce, full.responseNonce);
    assert.deepEqual(lazy.resourceNames, full.resourceNames);
    assert.equal(lazy.node?.id, 'n1');
    assert.deepEqual(lazy.node?.metadata, { NAMESPACE: 'ns' });
    assert.equal(lazy.errorDetail?.message, 'bad');
    assert.equal(lazy.errorDetail?.code, 3);
    const ack = sotwRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: ['a', 'bé', ''], versionInfo: 'v2', responseNonce: 'n10' });
    assert.deepEqual(Buffer.from(ack.resourceNamesBytes!), Buffer.from(lazy.resourceNamesBytes!), 'same names, same bytes');
    assert.equal(sotwRequest({ typeUrl: TypeUrl.Cluster }).resourceNamesBytes?.length, 0);
    // Names split by another field (a valid encoding) are read, and not compared as bytes.
    const split = Buffer.concat([
      toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { resourceNames: ['a'] })),
      toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl: 't' })),
      toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { resourceNames: ['b'] })),
    ]);
    const l2 = new LazyDiscoveryRequest(split);
    assert.deepEqual(l2.resourceNames, ['a', 'b']);
    assert.equal(l2.typeUrl, 't');
    assert.equal(l2.resourceNamesBytes, undefined);
    assert.throws(() => new LazyDiscoveryRequest(Buffer.from([0x0a, 0x05, 0x61])), /truncated/);
    // A run of names is stepped over as a whole, names of 128 bytes and more (two-byte lengths) included; the
    // fields after it are read.
    const long = ['x'.repeat(127), 'y'.repeat(128), 'z'.repeat(300), 'é'.repeat(70)];
    const l3 = new LazyDiscoveryRequest(Buffer.from(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { resourceNames: long, typeUrl: 'after', responseNonce: 'n' }))));
    assert.equal(l3.typeUrl, 'after');
    assert.equal(l3.responseNonce, 'n');
    assert.deepEqual(l3.resourceNames, long);
    assert.deepEqual(Buffer.from(l3.resourceNamesBytes!), Buffer.from(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { resourceNames: long }))));
    // A name whose length runs past the end of the request.
    const cut = Buffer.from(toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { resourceNames: ['a', 'z'.repeat(300)] })));
    assert.throws(() => new LazyDiscoveryRequest(cut.subarray(0, cut.length - 1)), /truncated/);
    assert.throws(() => new LazyDiscoveryRequest(cut.subarray(0, 4)), /truncated/);
  });

  test('SotW: a snapshot derived from the one the client holds sends only the changed assignments', () => {
    const cache = new SnapshotCache();
    const s1 = base();
    cache.setSnapshot('n1', s1);
    const call = new FakeCall();
    const s = new SotwStream(cache, {}, call);
    s.onRequest(sotwRequest({ node: { id: 'n1' }, typeUrl: TypeUrl.Cluster }));
    const eds = NAMES;
    s.onRequest(sotwRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: eds }));
    assert.equal(call.sotw(1).resources.length, 3);
    s.onRequest(sotwRequest({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: eds, versionInfo: call.sotw(1).versionInfo, responseNonce: call.sotw(1).nonce }));
    const s2 = s1.withResources('2', TypeUrl.ClusterLoadAssignment, [cla('outbound|80||b', 9001)]);
    cache.setSnapshot('n1', s2);
    assert.equal(call.written.length, 3, 'one response: EDS (CDS did not change)');
    const r = call.sotw(2);
    assert.equal(r.typeUrl, TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(r.resources.map((x) => unpack(ClusterLoadAssignmentSchema, x).clusterName), ['outbound|80||b']);
    assert.equal(r.versionInfo, s2.typeVersion(TypeUrl.ClusterLoadAssignment), 'the version of the whole set');
    // A client that holds something else (here: a reconnect on a new stream) gets everything it lacks.
    const call2 = new FakeCall();
    const t = new SotwStream(cache, {}, call2);
    t.onRequest(sotwRequest({ node: { id: 'n1' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: eds }));
    assert.equal(call2.sotw(0).resources.length, 3);
    assert.equal(call2.sotw(0).versionInfo, r.versionInfo);
  });

  test('Delta: a derived snapshot sends the changed resources and the removed names, once', () => {
    const cache = new SnapshotCache();
    const s1 = base();
    cache.setSnapshot('n1', s1);
    const call = new FakeCall(false, true);
    const s = new DeltaStream(cache, {}, call);
    const req = (init: MessageInitShape<typeof DeltaDiscoveryRequestSchema>) => s.onRequest(create(DeltaDiscoveryRequestSchema, init));
    req({ node: { id: 'n1' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: NAMES });
    assert.equal(call.deltaResponse(0).resources.length, 3);
    req({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: call.deltaResponse(0).nonce });
    const s2 = s1.withResources('2', TypeUrl.ClusterLoadAssignment, [cla('outbound|80||a', 9000)], ['outbound|80||c']);
    cache.setSnapshot('n1', s2);
    const r = call.deltaResponse(1);
    assert.deepEqual(r.resources.map((x) => x.name), ['outbound|80||a']);
    assert.deepEqual(r.removedResources, ['outbound|80||c']);
    // Another change: the removed name is not reported again.
    const s3 = s2.withResources('3', TypeUrl.ClusterLoadAssignment, [cla('outbound|80||b', 9001)]);
    cache.setSnapshot('n1', s3);
    const r2 = call.deltaResponse(2);
    assert.deepEqual(r2.resources.map((x) => x.name), ['outbound|80||b']);
    assert.deepEqual(r2.removedResources, []);
    // It comes back: sent again.
    cache.setSnapshot('n1', s3.withResources('4', TypeUrl.ClusterLoadAssignment, [cla('outbound|80||c', 7)]));
    assert.deepEqual(call.deltaResponse(3).resources.map((x) => x.name), ['outbound|80||c']);
    assert.equal(call.written.length, 4);
  });

  test('Delta requests are read lazily; streams subscribing with the same bytes share what they read, not what they change', () => {
    const init: MessageInitShape<typeof DeltaDiscoveryRequestSchema> = {
      node: { id: 'n1', metadata: { NAMESPACE: 'ns' } },
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNamesSubscribe: ['a', 'bé', ''],
      resourceNamesUnsubscribe: ['x', 'y'],
      initialResourceVersions: { a: 'v1', 'bé': 'v2' },
      responseNonce: 'n9',
      errorDetail: { code: 3, message: 'bad' },
      resourceLocatorsSubscribe: [{ name: 'xdstp://x' }],
    };
    const full = create(DeltaDiscoveryRequestSchema, init);
    const lazy = new LazyDeltaDiscoveryRequest(Buffer.from(toBinary(DeltaDiscoveryRequestSchema, full)));
    assert.equal(lazy.typeUrl, full.typeUrl);
    assert.equal(lazy.responseNonce, full.responseNonce);
    assert.deepEqual(lazy.resourceNamesSubscribe, full.resourceNamesSubscribe);
    assert.deepEqual(lazy.resourceNamesUnsubscribe, full.resourceNamesUnsubscribe);
    assert.deepEqual(lazy.initialResourceVersions, full.initialResourceVersions);
    assert.equal(lazy.node?.id, 'n1');
    assert.deepEqual([lazy.errorDetail?.code, lazy.errorDetail?.message], [3, 'bad']);
    assert.throws(() => new LazyDeltaDiscoveryRequest(Buffer.from([0x12, 0x05, 0x61])), /truncated/);
    const long = ['a'.repeat(200), 'b'];
    const l2 = new LazyDeltaDiscoveryRequest(Buffer.from(toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, { resourceNamesSubscribe: long, resourceNamesUnsubscribe: ['c'], responseNonce: 'r' }))));
    assert.deepEqual([l2.resourceNamesSubscribe, l2.resourceNamesUnsubscribe, l2.responseNonce], [long, ['c'], 'r']);

    // Two streams subscribe to the same assignments with the same bytes; one then drops one of them.
    const cache = new SnapshotCache();
    cache.setSnapshot('n1', base());
    cache.setSnapshot('n2', base());
    const lazyReq = (i: MessageInitShape<typeof DeltaDiscoveryRequestSchema>) => new LazyDeltaDiscoveryRequest(Buffer.from(toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, i))));
    const c1 = new FakeCall(false, true);
    const c2 = new FakeCall(false, true);
    const s1 = new DeltaStream(cache, {}, c1);
    const s2 = new DeltaStream(cache, {}, c2);
    s1.onRequest(lazyReq({ node: { id: 'n1' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: NAMES }));
    s2.onRequest(lazyReq({ node: { id: 'n2' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: NAMES }));
    assert.deepEqual(c1.deltaResponse(0).resources.map((x) => x.name), NAMES);
    assert.deepEqual(c2.deltaResponse(0).resources.map((x) => x.name), NAMES);
    s2.onRequest(lazyReq({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: c2.deltaResponse(0).nonce, resourceNamesUnsubscribe: ['outbound|80||a'] }));
    s1.onRequest(lazyReq({ typeUrl: TypeUrl.ClusterLoadAssignment, responseNonce: c1.deltaResponse(0).nonce }));
    // A change of every assignment: n2 no longer hears of the one it dropped; n1 still does.
    const changed = new Snapshot('2', [
      [TypeUrl.Cluster, NAMES.map(cluster)],
      [TypeUrl.ClusterLoadAssignment, NAMES.map((n, i) => cla(n, 9000 + i))],
    ]);
    cache.setSnapshot('n1', changed);
    cache.setSnapshot('n2', changed);
    assert.deepEqual(c1.deltaResponse(1).resources.map((x) => x.name), NAMES);
    assert.deepEqual(c2.deltaResponse(1).resources.map((x) => x.name), ['outbound|80||b', 'outbound|80||c']);
    // A wildcard subscription read from shared bytes is a wildcard too.
    const c3 = new FakeCall(false, true);
    const c4 = new FakeCall(false, true);
    cache.setSnapshot('n3', base());
    cache.setSnapshot('n4', base());
    new DeltaStream(cache, {}, c3).onRequest(lazyReq({ node: { id: 'n3' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['*', 'outbound|80||a'] }));
    new DeltaStream(cache, {}, c4).onRequest(lazyReq({ node: { id: 'n4' }, typeUrl: TypeUrl.ClusterLoadAssignment, resourceNamesSubscribe: ['*', 'outbound|80||a'] }));
    assert.deepEqual(c4.deltaResponse(0).resources.map((x) => x.name).sort(), NAMES);
    assert.deepEqual(c3.deltaResponse(0).resources.map((x) => x.name).sort(), NAMES);
  });
});
