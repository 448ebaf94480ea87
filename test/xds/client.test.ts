// The ADS client against Weft's own ADS server (SnapshotCache filled with the translator's real resources):
// Delta and SotW updates, removal, NACK, named subscriptions EDS after CDS and RDS after LDS, reconnect with
// backoff after a server restart and resumption without re-applying, the empty Delta wildcard, close().
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { create } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { AdsServer } from '../../src/controlplane/ads/server.js';
import { SnapshotCache, syncState } from '../../src/controlplane/cache/cache.js';
import { Snapshot } from '../../src/controlplane/cache/snapshot.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import { AdsClient } from '../../src/xds/client/index.js';
import type { AdsClientEvents, AdsProtocol } from '../../src/xds/client/index.js';
import { pack, TypeUrl, unpack } from '../../src/xds/index.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterSchema, Cluster_DiscoveryType } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { ClusterLoadAssignment } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import type { RouteConfiguration } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { Recorder, until } from './client-helpers.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/', import.meta.url));
const ALL = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration];
const REVIEWS = 'outbound|9080||reviews.bookinfo.svc.cluster.local';
const DB = 'outbound|5432||db.bookinfo.svc.cluster.local';

/** The mesh of test/fixtures/translate/route-services.yaml and the resources the translator makes for a proxy. */
class Mesh {
  readonly registry = new ServiceRegistry();
  private version = 0;
  constructor() {
    const f = 'translate/route-services.yaml';
    const parsed = parseConfigText(readFileSync(fixtures + f, 'utf8'), f);
    assert.deepEqual(parsed.diagnostics, []);
    const { model, diagnostics } = buildModel(parsed.resources);
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error'), []);
    this.registry.setModel(model);
    this.model = model;
  }
  readonly model;

  snapshot(nodeId: string): Snapshot {
    const proxy = proxyFromNode(create(NodeSchema, { id: nodeId, metadata: { NAMESPACE: 'bookinfo' } }));
    const out = translateProxy({ model: this.model, registry: this.registry, proxy });
    assert.deepEqual(out.errors, []);
    return new Snapshot(String(++this.version), [
      [TypeUrl.Cluster, out.clusters.map((m) => ({ name: m.name, resource: pack(ClusterSchema, m) }))],
      [TypeUrl.ClusterLoadAssignment, out.endpoints.map((m) => ({ name: m.clusterName, resource: pack(ClusterLoadAssignmentSchema, m) }))],
      [TypeUrl.Listener, out.listeners.map((m) => ({ name: m.name, resource: pack(ListenerSchema, m) }))],
      [TypeUrl.RouteConfiguration, out.routes.map((m) => ({ name: m.name, resource: pack(RouteConfigurationSchema, m) }))],
    ]);
  }

  /** Adds a reviews pod: only the reviews ClusterLoadAssignment changes. */
  addReviewsPod(name: string, address: string): void {
    this.registry.register({ name, namespace: 'bookinfo', address, labels: { app: 'reviews' }, ports: { http: 9080 }, serviceAccount: 'reviews', sidecar: true, source: 'Registered', ttlMs: 0 });
  }
}

/** A proxy-like consumer: wildcard CDS and LDS, EDS names from the EDS clusters, RDS names from the listeners. */
class Consumer {
  readonly cds = new Recorder<Cluster>();
  readonly eds = new Recorder<ClusterLoadAssignment>();
  readonly lds = new Recorder<Listener>();
  readonly rds = new Recorder<RouteConfiguration>();
  readonly events: Array<{ type: keyof AdsClientEvents; e: unknown }> = [];
  /** Throw from the CDS handler when a cluster has this name. */
  refuseCluster?: string;
  readonly client: AdsClient;

  constructor(server: string, nodeId: string, protocol: AdsProtocol | 'auto', backoff = { baseMs: 20, maxMs: 160 }) {
    const client = (this.client = new AdsClient({ server, node: { id: nodeId, metadata: { NAMESPACE: 'bookinfo' } }, protocol, backoff }));
    for (const type of ['connected', 'disconnected', 'reconnecting', 'fallback', 'ack', 'nack'] as const) {
      client.on(type, (e) => this.events.push({ type, e }));
    }
    client.watch<Cluster>(TypeUrl.Cluster, {
      wildcard: true,
      onUpdate: (u) => {
        for (const c of u.added.values()) {
          if (c.name === this.refuseCluster) throw new Error(`cluster ${c.name}: refused by the test`);
        }
        this.cds.updates.push(u);
        const eds = [...u.added.values()].filter((c) => c.message.clusterDiscoveryType.case === 'type' && c.message.clusterDiscoveryType.value === Cluster_DiscoveryType.EDS);
        client.subscribe(TypeUrl.ClusterLoadAssignment, eds.map((c) => c.name));
        if (u.removed.length) client.unsubscribe(TypeUrl.ClusterLoadAssignment, u.removed);
      },
    });
    client.watch<ClusterLoadAssignment>(TypeUrl.ClusterLoadAssignment, { onUpdate: (u) => { this.eds.updates.push(u); } });
    client.watch<Listener>(TypeUrl.Listener, {
      wildcard: true,
      onUpdate: (u) => {
        this.lds.updates.push(u);
        const names: string[] = [];
        for (const l of u.added.values()) {
          for (const fc of l.message.filterChains) {
            for (const f of fc.filters) {
              if (f.configType.case !== 'typedConfig' || f.configType.value.typeUrl !== `type.googleapis.com/${HttpConnectionManagerSchema.typeName}`) continue;
              const hcm = unpack(HttpConnectionManagerSchema, f.configType.value);
              if (hcm.routeSpecifier.case === 'rds') names.push(hcm.routeSpecifier.value.routeConfigName);
            }
          }
        }
        client.subscribe(TypeUrl.RouteConfiguration, names);
      },
    });
    client.watch<RouteConfiguration>(TypeUrl.RouteConfiguration, { onUpdate: (u) => { this.rds.updates.push(u); } });
  }

  count(type: keyof AdsClientEvents): number {
    return this.events.filter((x) => x.type === type).length;
  }
}

function eventsOf<E extends keyof AdsClientEvents>(c: Consumer, type: E): Array<AdsClientEvents[E]> {
  return c.events.filter((x) => x.type === type).map((x) => x.e as AdsClientEvents[E]);
}

describe('ADS client against the Weft ADS server', () => {
  const cache = new SnapshotCache();
  let server: AdsServer;
  let address: string;
  let port: number;
  before(async () => {
    server = new AdsServer({ cache });
    port = await server.listen('127.0.0.1', 0);
    address = `127.0.0.1:${port}`;
  });
  after(async () => {
    await server.close();
  });

  for (const protocol of ['delta', 'sotw'] as const) {
    test(`${protocol}: first full config (EDS after CDS, RDS after LDS), endpoint update, removal`, async () => {
      const mesh = new Mesh();
      const nodeId = `sidecar~10.0.0.1~a-${protocol}.bookinfo~bookinfo.svc.cluster.local`;
      cache.setSnapshot(nodeId, mesh.snapshot(nodeId));
      const c = new Consumer(address, nodeId, protocol === 'delta' ? 'auto' : 'sotw');
      try {
        await c.client.synced(ALL);
        assert.equal(c.client.state().protocol, protocol);
        assert.equal(c.client.state().connected, true);
        // Everything arrived, decoded.
        assert.equal(c.cds.names().length, 12);
        assert.ok(c.cds.names().includes('PassthroughCluster'));
        assert.equal(c.eds.names().length, 10, 'one ClusterLoadAssignment per EDS cluster');
        assert.deepEqual(c.lds.names(), ['outbound']);
        assert.deepEqual(c.rds.names(), ['outbound']);
        assert.equal(c.cds.last!.full.get(REVIEWS)!.message.$typeName, 'envoy.config.cluster.v3.Cluster');
        assert.equal(c.eds.last!.full.get(REVIEWS)!.message.clusterName, REVIEWS);
        assert.ok(c.cds.updates[0]!.first);
        assert.deepEqual(c.client.state().types[TypeUrl.ClusterLoadAssignment]!.names, c.eds.names());
        // The server's view: every type ACKed.
        await until(() => ALL.every((t) => syncState(cache.status(nodeId)?.types.get(t)) === 'SYNCED'), 'server sees all types SYNCED');
        const st = c.client.state();
        for (const t of ALL) {
          assert.ok(st.types[t]!.ackedVersion !== undefined, `${t} has an ACKed version`);
          assert.equal(st.types[t]!.synced, true);
          assert.equal(st.types[t]!.nack, undefined);
        }
        if (protocol === 'sotw') assert.equal(st.types[TypeUrl.Cluster]!.ackedVersion, cache.status(nodeId)!.types.get(TypeUrl.Cluster)!.ackedVersion);

        // An endpoint change: only the reviews ClusterLoadAssignment, nothing else re-applied.
        const calls = [c.cds.calls, c.eds.calls, c.lds.calls, c.rds.calls];
        mesh.addReviewsPod('reviews-1', '10.1.0.7');
        cache.setSnapshot(nodeId, mesh.snapshot(nodeId));
        await until(() => c.eds.calls > calls[1]!, 'EDS update');
        const u = c.eds.last!;
        assert.deepEqual([...u.added.keys()], [REVIEWS]);
        assert.deepEqual(u.removed, []);
        assert.equal(u.full.size, 10, 'the other ClusterLoadAssignments stay (absence is not deletion)');
        const lbs = u.added.get(REVIEWS)!.message.endpoints.flatMap((l) => l.lbEndpoints);
        assert.equal(lbs.length, 1);
        assert.equal(u.first, false);
        assert.deepEqual([c.cds.calls, c.lds.calls, c.rds.calls], [calls[0], calls[2], calls[3]]);

        // Removing a cluster (and its endpoints): CDS reports the removal, the consumer drops its EDS name.
        const snap = cache.getSnapshot(nodeId)!
          .withResources('r1', TypeUrl.Cluster, [], [DB])
          .withResources('r1', TypeUrl.ClusterLoadAssignment, [], [DB]);
        cache.setSnapshot(nodeId, snap);
        await until(() => c.cds.last!.removed.includes(DB), 'CDS removal');
        assert.equal(c.cds.last!.full.has(DB), false);
        assert.equal(c.cds.last!.full.size, 11);
        assert.deepEqual([...c.cds.last!.added.keys()], [], 'nothing else changed');
        await until(() => !c.client.resources(TypeUrl.ClusterLoadAssignment).has(DB), 'EDS forgets the removed cluster');
        assert.equal(c.client.state().types[TypeUrl.ClusterLoadAssignment]!.names.includes(DB), false);
        await until(() => syncState(cache.status(nodeId)?.types.get(TypeUrl.Cluster)) === 'SYNCED', 'CDS removal ACKed');
        assert.equal(c.count('nack'), 0);
      } finally {
        await c.client.close();
      }
    });

    test(`${protocol}: a refused update is NACKed, the previous set stays, the server shows NACKED`, async () => {
      const mesh = new Mesh();
      const nodeId = `sidecar~10.0.0.2~n-${protocol}.bookinfo~bookinfo.svc.cluster.local`;
      cache.setSnapshot(nodeId, mesh.snapshot(nodeId));
      const c = new Consumer(address, nodeId, protocol);
      try {
        await c.client.synced(ALL);
        const before = c.client.resources(TypeUrl.Cluster);
        const ackedBefore = c.client.state().types[TypeUrl.Cluster]!.ackedVersion;
        const bad = 'outbound|1||bad.bookinfo.svc.cluster.local';
        c.refuseCluster = bad;
        cache.setSnapshot(nodeId, cache.getSnapshot(nodeId)!.withResources('bad', TypeUrl.Cluster, [{ name: bad, resource: pack(ClusterSchema, { name: bad }) }]));
        await until(() => c.count('nack') > 0, 'NACK');
        const nack = eventsOf(c, 'nack')[0]!;
        assert.equal(nack.typeUrl, TypeUrl.Cluster);
        assert.equal(nack.message, `cluster ${bad}: refused by the test`);
        const st = c.client.state().types[TypeUrl.Cluster]!;
        assert.equal(st.nack?.message, nack.message);
        assert.equal(st.ackedVersion, ackedBefore, 'the ACKed version did not move');
        assert.equal(c.client.resources(TypeUrl.Cluster), before, 'the previous set is still in force');
        assert.equal(c.client.resources(TypeUrl.Cluster).has(bad), false);
        await until(() => syncState(cache.status(nodeId)?.types.get(TypeUrl.Cluster)) === 'NACKED', 'server status NACKED');
        assert.equal(cache.status(nodeId)!.types.get(TypeUrl.Cluster)!.nack!.message, nack.message);

        // The control plane fixes it: the next version is accepted and the NACK clears.
        c.refuseCluster = undefined;
        const fixed = `outbound|2||fixed.bookinfo.svc.cluster.local`;
        cache.setSnapshot(nodeId, cache.getSnapshot(nodeId)!.withResources('fixed', TypeUrl.Cluster, [{ name: fixed, resource: pack(ClusterSchema, { name: fixed }) }], [bad]));
        await until(() => c.client.resources(TypeUrl.Cluster).has(fixed), 'fixed update applied');
        assert.equal(c.client.state().types[TypeUrl.Cluster]!.nack, undefined);
        assert.equal(c.client.resources(TypeUrl.Cluster).has(bad), false);
        await until(() => syncState(cache.status(nodeId)?.types.get(TypeUrl.Cluster)) === 'SYNCED', 'server status SYNCED again');
      } finally {
        await c.client.close();
      }
    });
  }

  test('delta: an empty wildcard set (no listeners) counts as synced', async () => {
    const nodeId = 'empty~delta';
    cache.setSnapshot(nodeId, new Snapshot('1', [[TypeUrl.Listener, []], [TypeUrl.Cluster, []]]));
    const client = new AdsClient({ server: address, node: { id: nodeId }, protocol: 'delta' });
    const lds = new Recorder();
    client.watch(TypeUrl.Listener, { wildcard: true, onUpdate: (u) => { lds.updates.push(u); } });
    try {
      await client.synced([TypeUrl.Listener]);
      assert.equal(lds.calls, 1, 'the handler learns that the set is empty');
      assert.equal(lds.last!.first, true);
      assert.equal(lds.last!.full.size, 0);
      assert.equal(client.state().types[TypeUrl.Listener]!.updates, 1);
    } finally {
      await client.close();
    }
  });
});

describe('ADS client: reconnect and resumption', () => {
  for (const protocol of ['delta', 'sotw'] as const) {
    test(`${protocol}: server restart, reconnect with backoff, nothing re-applied, later changes delivered`, async () => {
      const cache = new SnapshotCache();
      const pushes: Array<{ typeUrl: string; resources: number; removed: number }> = [];
      const hooks = { onPush: (e: { typeUrl: string; resources: number; removed: number }) => { pushes.push(e); } };
      let server = new AdsServer({ cache, hooks });
      const port = await server.listen('127.0.0.1', 0);
      const mesh = new Mesh();
      const nodeId = `sidecar~10.0.0.3~r-${protocol}.bookinfo~bookinfo.svc.cluster.local`;
      cache.setSnapshot(nodeId, mesh.snapshot(nodeId));
      const c = new Consumer(`127.0.0.1:${port}`, nodeId, protocol);
      try {
        await c.client.synced(ALL);
        const calls = [c.cds.calls, c.eds.calls, c.lds.calls, c.rds.calls];
        const held = ALL.map((t) => c.client.resources(t));

        await server.close();
        await until(() => c.count('disconnected') === 1, 'disconnected');
        assert.equal(c.client.state().connected, false);
        // The server is down: attempts fail and the delay ceiling doubles, capped, each delay within it.
        await until(() => c.count('reconnecting') >= 4, 'several reconnect attempts');
        const attempts = eventsOf(c, 'reconnecting');
        assert.deepEqual(attempts.slice(0, 4).map((a) => a.attempt), [1, 2, 3, 4]);
        for (const a of attempts) assert.ok(a.delayMs >= 0 && a.delayMs < Math.min(160, 20 * 2 ** (a.attempt - 1)), `delay ${a.delayMs} of attempt ${a.attempt} within its ceiling`);
        // The last config stays in force meanwhile.
        assert.deepEqual(ALL.map((t) => c.client.resources(t)), held);

        pushes.length = 0;
        server = new AdsServer({ cache, hooks });
        await server.listen('127.0.0.1', port);
        await until(() => c.count('connected') === 2, 'reconnected');
        // Once the new server has taken the resumed subscriptions (SotW: it recorded every type as in sync from
        // the version_info; Delta: it answered the wildcards, whose requests come after CDS and EDS), a change:
        // it also serves as a barrier, arriving after anything re-sent on resumption.
        const resumed = protocol === 'delta' ? [TypeUrl.Cluster, TypeUrl.Listener] : ALL;
        await until(() => resumed.every((t) => syncState(cache.status(nodeId)?.types.get(t)) === 'SYNCED'), 'the server took the resumed subscriptions');
        mesh.addReviewsPod('reviews-2', '10.1.0.8');
        cache.setSnapshot(nodeId, mesh.snapshot(nodeId));
        await until(() => c.eds.calls > calls[1]!, 'EDS update after reconnecting');
        assert.deepEqual([...c.eds.last!.added.keys()], [REVIEWS], 'only the changed resource is applied');
        assert.deepEqual([c.cds.calls, c.eds.calls, c.lds.calls, c.rds.calls], [calls[0], calls[1]! + 1, calls[2], calls[3]], 'unchanged resources were not re-applied');
        // And the server re-sent nothing: the client resumed with what it had (Delta: initial_resource_versions,
        // answered with empty CDS/LDS responses; SotW: version_info), so the only resource sent is the change.
        assert.deepEqual(pushes.filter((p) => p.resources > 0 || p.removed > 0).map((p) => [p.typeUrl, p.resources]), [[TypeUrl.ClusterLoadAssignment, 1]]);
        // (Delta: the server had nothing to send for RDS on the new stream, so it shows RDS as NOT SENT.)
        const answered = protocol === 'delta' ? [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener] : ALL;
        await until(() => answered.every((t) => syncState(cache.status(nodeId)?.types.get(t)) === 'SYNCED'), 'server sees the resumed client SYNCED');
        assert.equal(c.client.state().streams, c.count('reconnecting') + 1);
      } finally {
        await c.client.close();
        await server.close();
      }
    });
  }
});

describe('ADS client: close', () => {
  test('close() ends the stream, the channel and the timers; synced() rejects afterwards', async () => {
    const handles = () => process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'FSReqCallback');
    const cache = new SnapshotCache();
    const server = new AdsServer({ cache });
    const port = await server.listen('127.0.0.1', 0);
    const before = handles();
    cache.setSnapshot('close-me', new Snapshot('1', [[TypeUrl.Cluster, [{ name: 'c', resource: pack(ClusterSchema, { name: 'c' }) }]]]));
    const client = new AdsClient({ server: `127.0.0.1:${port}`, node: { id: 'close-me' }, initialFetchTimeoutMs: 60_000 });
    client.watch(TypeUrl.Cluster, { wildcard: true, onUpdate() {} });
    client.watch(TypeUrl.ClusterLoadAssignment, { names: ['never'], onUpdate() {} });
    await client.synced([TypeUrl.Cluster]);
    const pending = client.synced([TypeUrl.ClusterLoadAssignment]);
    await until(() => cache.status('close-me') !== undefined, 'server sees the stream');
    await client.close();
    await assert.rejects(pending, /closed/);
    await assert.rejects(client.synced([TypeUrl.Cluster]), /closed/);
    assert.throws(() => client.watch(TypeUrl.Listener, { onUpdate() {} }), /closed/);
    await until(() => cache.status('close-me') === undefined, 'the server saw the stream end');
    // With the server still up: the client's connection (and the server's side of it) and its timers are gone.
    await until(() => handles().length <= before.length, 'no handles left', 5000).catch(() => {
      assert.fail(`handles left after close(): before ${before.join(',')}; now ${handles().join(',')}`);
    });
    await server.close();
  });
});
