// The control-plane benchmark's pieces at tiny scale, so the benchmark cannot rot: the generated mesh is valid
// config, the wire reader agrees with the generated Envoy types, the results land in docs/performance.md without
// touching other sections, and a real run (control plane process, worker processes, SotW and Delta clients)
// gives every client a complete configuration and every endpoint change. No timing is asserted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { create, toBinary } from '@bufbuild/protobuf';
import { parseConfigText } from '../../src/api/source.js';
import { buildModel } from '../../src/api/build.js';
import { pack } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { DiscoveryResponseSchema, DeltaDiscoveryResponseSchema } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { DEFAULT_SHAPE, GRPC_PORT, HTTP_PORT, describeMesh, serviceYaml, writeMesh } from '../../bench/controlplane/config.js';
import { claAddresses, clusterInfo, decodeDeltaResponse, decodeSotwResponse, listenerInfo, nameOf, routeInfo } from '../../bench/controlplane/wire.js';
import { DOC_BEGIN, DOC_END, updatePerformanceDoc } from '../../bench/controlplane/report.js';
import { percentile, runScenario } from '../../bench/controlplane/run.js';

const SHAPE = { ...DEFAULT_SHAPE, services: 20, endpointsPerService: 3, namespaces: 3 };

describe('control-plane benchmark: generated mesh', () => {
  test('is valid config with the intended shares of routes and rules', () => {
    const mesh = describeMesh(SHAPE);
    const raws = mesh.services.flatMap((s) => {
      const r = parseConfigText(serviceYaml(s), s.file);
      assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'Error'), [], s.file);
      return r.resources;
    });
    const { model, diagnostics } = buildModel(raws);
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error').map((d) => d.message), []);
    assert.equal(model.services.length, 20);
    assert.equal(model.workloads.filter((w) => w.kind === 'WorkloadEntry').length, 60);
    assert.equal(mesh.virtualServices, 6);
    assert.equal(mesh.destinationRules, 10);
    assert.equal(mesh.services.filter((s) => s.ports.includes(GRPC_PORT)).length, 2);
    // Every VirtualService routes to subsets its service's DestinationRule defines.
    for (const s of mesh.services) if (s.virtualService) assert.ok(s.destinationRule, s.name);
    assert.equal(new Set(mesh.services.flatMap((s) => s.addresses)).size, 60, 'endpoint addresses are unique');
  });
});

describe('control-plane benchmark: wire reader', () => {
  test('reads what the generated Envoy types write', () => {
    const hcm = pack(HttpConnectionManagerSchema, { statPrefix: 'outbound', routeSpecifier: { case: 'rds', value: { routeConfigName: 'outbound' } } });
    const listener = pack(ListenerSchema, { name: 'outbound', filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { case: 'typedConfig', value: hcm } }] }] });
    const eds = pack(ClusterSchema, { name: 'outbound|8080||a.ns.svc.cluster.local', clusterDiscoveryType: { case: 'type', value: 3 }, edsClusterConfig: { serviceName: 'svc-name', edsConfig: { configSourceSpecifier: { case: 'ads', value: {} } } } });
    const staticCluster = pack(ClusterSchema, { name: 'inbound|8080||', clusterDiscoveryType: { case: 'type', value: 0 } });
    const cla = pack(ClusterLoadAssignmentSchema, {
      clusterName: 'svc-name',
      endpoints: [1, 2].map((n) => ({
        lbEndpoints: [{ hostIdentifier: { case: 'endpoint' as const, value: { address: { address: { case: 'socketAddress' as const, value: { address: `10.0.0.${n}`, portSpecifier: { case: 'portValue' as const, value: 8000 + n } } } } } } }],
      })),
    });
    const route = pack(RouteConfigurationSchema, { name: 'outbound', virtualHosts: [{ name: 'a', domains: ['a'] }, { name: 'b', domains: ['b'] }] });

    const sotw = decodeSotwResponse(toBinary(DiscoveryResponseSchema, create(DiscoveryResponseSchema, { versionInfo: 'v1', typeUrl: eds.typeUrl, nonce: 'n1', resources: [eds, staticCluster] })));
    assert.equal(sotw.versionInfo, 'v1');
    assert.equal(sotw.nonce, 'n1');
    assert.equal(sotw.typeUrl, eds.typeUrl);
    assert.deepEqual(sotw.resources.map((r) => clusterInfo(r.value)), [{ name: 'outbound|8080||a.ns.svc.cluster.local', edsName: 'svc-name' }, { name: 'inbound|8080||' }]);

    const delta = decodeDeltaResponse(
      toBinary(
        DeltaDiscoveryResponseSchema,
        create(DeltaDiscoveryResponseSchema, {
          systemVersionInfo: 's1',
          typeUrl: cla.typeUrl,
          nonce: 'n2',
          resources: [{ name: 'svc-name', version: 'h1', resource: cla }],
          removedResources: ['gone'],
        }),
      ),
    );
    assert.equal(delta.nonce, 'n2');
    assert.deepEqual(delta.removed, ['gone']);
    assert.equal(delta.resources[0]!.name, 'svc-name');
    assert.equal(delta.resources[0]!.version, 'h1');
    assert.equal(nameOf(delta.resources[0]!.resource!.value), 'svc-name');
    assert.deepEqual(claAddresses(cla.value), ['10.0.0.1:8001', '10.0.0.2:8002']);
    assert.deepEqual(listenerInfo(listener.value), { name: 'outbound', routeNames: ['outbound'] });
    assert.deepEqual(routeInfo(route.value), { name: 'outbound', virtualHosts: 2 });
  });

  test('percentile is nearest-rank', () => {
    const v = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(v, 50), 50);
    assert.equal(percentile(v, 99), 99);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([], 50), undefined);
  });
});

describe('control-plane benchmark: docs/performance.md', () => {
  test('creates the file, then replaces only its own results', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-perfdoc-'));
    try {
      const doc = join(dir, 'performance.md');
      updatePerformanceDoc(doc, 'first results');
      let text = await readFile(doc, 'utf8');
      assert.match(text, /^# Performance/);
      assert.match(text, /^## Control plane$/m);
      assert.ok(text.includes(`${DOC_BEGIN}\nfirst results\n${DOC_END}`));
      await writeFile(doc, `${text}\n## Sidecar\n\nsidecar figures\n`);
      updatePerformanceDoc(doc, 'second results');
      text = await readFile(doc, 'utf8');
      assert.ok(!text.includes('first results'));
      assert.ok(text.includes(`${DOC_BEGIN}\nsecond results\n${DOC_END}`));
      assert.ok(text.includes('## Sidecar\n\nsidecar figures'));
      assert.equal(text.split('## Control plane').length, 2);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('control-plane benchmark: tiny run', () => {
  test('every client gets a full config and every endpoint change', { timeout: 180_000 }, async () => {
    const root = await mkdtemp(join(tmpdir(), 'weft-bench-smoke-'));
    try {
      const mesh = describeMesh(SHAPE);
      const configDir = join(root, 'config');
      await writeMesh(configDir, mesh);
      const r = await runScenario({
        mesh,
        configDir,
        logFile: join(root, 'control-plane.log'),
        clients: 6,
        protocol: 'mixed',
        workers: 2,
        apps: 3,
        fileChanges: 1,
        apiChanges: 1,
        verify: true,
        readyTimeoutMs: 60_000,
        fullPushTimeoutMs: 60_000,
        changeTimeoutMs: 20_000,
      });
      assert.deepEqual(r.fullPush.errors, []);
      assert.equal(r.fullPush.completed, 6);
      assert.equal(r.fullPush.byProtocol.sotw?.completed, 3);
      assert.equal(r.fullPush.byProtocol.delta?.completed, 3);
      assert.equal(r.syncedByControlPlane, 6, 'the control plane reports every client SYNCED');
      assert.ok(r.cp.peakRssBytes > 0 && (r.cp.end?.cpuSeconds ?? 0) > 0, 'control-plane usage was read from /proc');

      // Both kinds of endpoint change reached every client.
      assert.deepEqual(r.changes.map((c) => c.mode), ['file', 'api']);
      for (const c of r.changes) {
        assert.equal(c.missed, 0, c.mode);
        for (const round of c.rounds) assert.equal(round.latencies.length, 6, `${c.mode} ${round.service}`);
      }
      const fileRound = r.changes[0]!.rounds[0]!;
      const apiRound = r.changes[1]!.rounds[0]!;

      assert.equal(r.clientStats.length, 6);
      for (const s of r.clientStats) {
        assert.equal(s.error, undefined, s.id);
        assert.ok(s.initialBytes > 0 && s.bytes >= s.initialBytes, s.id);
        const v = s.verified!;
        const clusters = new Map(v.clusters.map((c) => [c.name, c]));
        const assignments = new Map(v.assignments.map((a) => [a.name, a.addresses]));
        for (const svc of mesh.services) {
          for (const port of svc.ports) {
            const names = [`outbound|${port}||${svc.fqdn}`, ...(svc.destinationRule ? ['v1', 'v2'].map((ss) => `outbound|${port}|${ss}|${svc.fqdn}`) : [])];
            for (const name of names) {
              const c = clusters.get(name);
              assert.ok(c, `${s.id}: cluster ${name}`);
              assert.equal(c.type, 'EDS', name);
              assert.ok(assignments.has(c.edsServiceName ?? name), `${s.id}: assignment of ${name}`);
            }
          }
          const got = assignments.get(`outbound|${HTTP_PORT}||${svc.fqdn}`) ?? [];
          for (const a of svc.addresses) assert.ok(got.includes(`${a}:${HTTP_PORT}`), `${s.id}: ${svc.name} endpoint ${a}`);
          const v1 = assignments.get(`outbound|${HTTP_PORT}|v1|${svc.fqdn}`);
          if (svc.destinationRule) assert.ok(v1 && v1.length > 0 && v1.length < got.length, `${s.id}: subset v1 of ${svc.name} has a part of the endpoints`);
        }
        // The changed endpoint replaced the old one; the registered workload joined.
        assert.ok(assignments.get(fileRound.cluster)?.includes(fileRound.address), `${s.id}: file change`);
        assert.equal(assignments.get(fileRound.cluster)?.length, SHAPE.endpointsPerService, `${s.id}: file change replaced an endpoint`);
        assert.ok(assignments.get(apiRound.cluster)?.includes(apiRound.address), `${s.id}: registered workload`);
        // Outbound HTTP: the `outbound` listener loads route config `outbound` with a virtual host per service port.
        const outbound = v.listeners.find((l) => l.name === 'outbound');
        assert.ok(outbound, `${s.id}: listener outbound`);
        assert.deepEqual(outbound.routeNames, ['outbound']);
        const route = v.routes.find((x) => x.name === 'outbound');
        assert.ok(route, `${s.id}: route config outbound`);
        const domains = new Set(route.virtualHosts.flatMap((h) => h.domains));
        for (const svc of mesh.services) assert.ok(domains.has(`${svc.fqdn}:${HTTP_PORT}`), `${s.id}: virtual host for ${svc.fqdn}:${HTTP_PORT}`);
        assert.deepEqual(s.counts.assignments, v.assignments.length);
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
