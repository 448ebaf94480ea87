// Shared helpers for the upstream tests: hand-built Cluster / ClusterLoadAssignment protos, clusters from the
// control plane's translator (YAML → translateProxy), deterministic clocks and randomness, pick counting.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import type { JsonObject, MessageInitShape } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { translateProxy } from '../../src/controlplane/translate/translate.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { HealthStatus } from '../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { compileCluster, ManualClock, seededRandom, type ClusterRuntime, type CompileOptions, type Host, type LbContext } from '../../src/proxy/upstream/cluster/index.js';

export { HealthStatus, Cluster_LbPolicy, Cluster_DiscoveryType };

export type ClusterInit = MessageInitShape<typeof ClusterSchema>;

export interface EndpointSpec {
  /** `ip:port` */
  addr: string;
  weight?: number;
  health?: HealthStatus;
  hostname?: string;
  metadata?: JsonObject;
  hcPort?: number;
}

export interface GroupSpec {
  priority?: number;
  /** `region/zone/subzone` */
  locality?: string;
  weight?: number;
  hosts: Array<string | EndpointSpec>;
}

export function endpoint(e: string | EndpointSpec) {
  const spec = typeof e === 'string' ? { addr: e } : e;
  const i = spec.addr.lastIndexOf(':');
  const address = spec.addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(spec.addr.slice(i + 1));
  return {
    hostIdentifier: {
      case: 'endpoint' as const,
      value: {
        address: { address: { case: 'socketAddress' as const, value: { address, portSpecifier: { case: 'portValue' as const, value: port } } } },
        hostname: spec.hostname ?? '',
        ...(spec.hcPort ? { healthCheckConfig: { portValue: spec.hcPort } } : {}),
      },
    },
    healthStatus: spec.health ?? HealthStatus.HEALTHY,
    ...(spec.weight !== undefined ? { loadBalancingWeight: spec.weight } : {}),
    ...(spec.metadata ? { metadata: { filterMetadata: { 'envoy.lb': spec.metadata } } } : {}),
  };
}

export function cla(name: string, groups: GroupSpec[], policy?: MessageInitShape<typeof ClusterLoadAssignmentSchema>['policy']): ClusterLoadAssignment {
  return create(ClusterLoadAssignmentSchema, {
    clusterName: name,
    endpoints: groups.map((g) => {
      const [region = '', zone = '', subZone = ''] = (g.locality ?? '').split('/');
      return {
        priority: g.priority ?? 0,
        ...(g.locality !== undefined ? { locality: { region, zone, subZone } } : {}),
        ...(g.weight !== undefined ? { loadBalancingWeight: g.weight } : {}),
        lbEndpoints: g.hosts.map(endpoint),
      };
    }),
    ...(policy ? { policy } : {}),
  });
}

export function edsCluster(name: string, init: Partial<ClusterInit> = {}): Cluster {
  return create(ClusterSchema, {
    name,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { serviceName: name },
    connectTimeout: { seconds: 1n },
    ...init,
  } as ClusterInit);
}

export interface TestCluster {
  cluster: ClusterRuntime;
  clock: ManualClock;
}

export function testOpts(seed = 1): CompileOptions & { clock: ManualClock } {
  return { clock: new ManualClock(1_000_000), random: seededRandom(seed) };
}

/** An EDS cluster with endpoints, deterministic clock and randomness. */
export function edsRuntime(name: string, init: Partial<ClusterInit>, groups: GroupSpec[], seed = 1): TestCluster {
  const opts = testOpts(seed);
  const cluster = compileCluster(edsCluster(name, init), opts);
  cluster.updateHosts(cla(name, groups));
  return { cluster, clock: opts.clock };
}

/** How many times each host (by address:port) was chosen in `n` picks. */
export function pickCounts(cluster: ClusterRuntime, n: number, ctx?: (i: number) => LbContext | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const h = cluster.lb.choose(ctx?.(i));
    const k = h ? h.key : '(none)';
    out.set(k, (out.get(k) ?? 0) + 1);
  }
  return out;
}

export function hostByKey(cluster: ClusterRuntime, key: string): Host {
  const h = cluster.host(key);
  assert.ok(h, `host ${key} exists`);
  return h;
}

export function assertNear(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} not within ${tolerance} of ${expected}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Translator output

const FIXTURES = new URL('../../../test/fixtures/proxy/', import.meta.url);

/** Everything translateProxy gives a sidecar in us-east/zone-1/a, namespace shop, for a fixture file. */
export function translateFixture(file: string): ProxyResources & { cluster(name: string): Cluster; cla(name: string): ClusterLoadAssignment } {
  const text = readFileSync(new URL(file, FIXTURES), 'utf8');
  const parsed = parseConfigText(text, file);
  assert.deepEqual(parsed.diagnostics, [], 'the YAML parses');
  const built = buildModel(parsed.resources);
  assert.deepEqual(
    built.diagnostics.filter((d) => d.severity === 'Error'),
    [],
    'the config is valid',
  );
  const registry = new ServiceRegistry();
  registry.setModel(built.model);
  const node = create(NodeSchema, { id: 'sidecar~shop', metadata: { NAMESPACE: 'shop', LABELS: { app: 'client' } }, locality: { region: 'us-east', zone: 'zone-1', subZone: 'a' } });
  const out = translateProxy({ model: built.model, registry, proxy: proxyFromNode(node) });
  return {
    ...out,
    cluster(name) {
      const c = out.clusters.find((x) => x.name === name);
      assert.ok(c, `cluster ${name} (have ${out.clusters.map((x) => x.name).join(', ')})`);
      return c;
    },
    cla(name) {
      const e = out.endpoints.find((x) => x.clusterName === name);
      assert.ok(e, `endpoints of ${name}`);
      return e;
    },
  };
}
