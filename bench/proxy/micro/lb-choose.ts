/**
 * Micro-benchmark of upstream host selection (not a test): `cluster.lb.choose()` for every load balancer kind on a
 * 20-host EDS cluster, plus the harder shapes (priorities with failover, locality weighted LB, panic, retries with
 * previous hosts) and the xxHash64 of a header value. Prints ops/s for each.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/proxy/micro/lb-choose.js [--seconds 1]
 */
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { compileCluster, seededRandom, xxhash64, xxhash64String, hashResult, type ClusterRuntime, type LbContext } from '../../../src/proxy/upstream/cluster/index.js';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { HealthStatus } from '../../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import { ClusterLoadAssignmentSchema } from '../../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

interface Group {
  priority?: number;
  locality?: string;
  weight?: number;
  hosts: Array<{ ip: string; weight?: number; unhealthy?: boolean }>;
}

function build(name: string, init: Partial<MessageInitShape<typeof ClusterSchema>>, groups: Group[]): ClusterRuntime {
  const c = compileCluster(
    create(ClusterSchema, { name, clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS }, ...init } as MessageInitShape<typeof ClusterSchema>),
    { random: seededRandom(42) },
  );
  c.updateHosts(
    create(ClusterLoadAssignmentSchema, {
      clusterName: name,
      endpoints: groups.map((g) => {
        const [region = '', zone = ''] = (g.locality ?? '').split('/');
        return {
          priority: g.priority ?? 0,
          ...(g.locality ? { locality: { region, zone } } : {}),
          ...(g.weight !== undefined ? { loadBalancingWeight: g.weight } : {}),
          lbEndpoints: g.hosts.map((h) => ({
            hostIdentifier: { case: 'endpoint' as const, value: { address: { address: { case: 'socketAddress' as const, value: { address: h.ip, portSpecifier: { case: 'portValue' as const, value: 8080 } } } } } },
            healthStatus: h.unhealthy ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY,
            ...(h.weight ? { loadBalancingWeight: h.weight } : {}),
          })),
        };
      }),
    }),
  );
  return c;
}

const ips = (n: number, base: string) => Array.from({ length: n }, (_, i) => ({ ip: `${base}${i + 1}` }));
const twenty = [{ hosts: ips(20, '10.0.0.') }];
const weighted = [{ hosts: ips(20, '10.0.0.').map((h, i) => ({ ...h, weight: 1 + (i % 4) })) }];

function bench(label: string, fn: () => unknown): void {
  // Warm up, then run for SECONDS in batches.
  for (let i = 0; i < 20_000; i++) fn();
  const end = performance.now() + SECONDS * 1000;
  let ops = 0;
  let sink = 0;
  while (performance.now() < end) {
    for (let i = 0; i < 10_000; i++) if (fn()) sink++;
    ops += 10_000;
  }
  const rate = ops / SECONDS;
  console.log(`${label.padEnd(52)} ${Math.round(rate).toLocaleString('en-US').padStart(14)} ops/s${sink < 0 ? '' : ''}`);
}

const rr = build('rr', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN }, twenty);
const wrr = build('wrr', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN }, weighted);
const lr = build('lr', { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST }, twenty);
const wlr = build('wlr', { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST }, weighted);
const rnd = build('rnd', { lbPolicy: Cluster_LbPolicy.RANDOM }, twenty);
const ring = build('ring', { lbPolicy: Cluster_LbPolicy.RING_HASH }, twenty);
const maglev = build('maglev', { lbPolicy: Cluster_LbPolicy.MAGLEV }, twenty);
const prio = build('prio', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN }, [
  { priority: 0, hosts: ips(10, '10.0.0.').map((h, i) => ({ ...h, unhealthy: i < 6 })) },
  { priority: 1, hosts: ips(10, '10.0.1.') },
]);
const loc = build('loc', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN, commonLbConfig: { localityConfigSpecifier: { case: 'localityWeightedLbConfig', value: {} } } }, [
  { locality: 'us/a', weight: 70, hosts: ips(10, '10.0.0.') },
  { locality: 'us/b', weight: 30, hosts: ips(10, '10.0.1.') },
]);
const panic = build('panic', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN }, [{ hosts: ips(20, '10.0.0.').map((h, i) => ({ ...h, unhealthy: i < 15 })) }]);

const hashes = Array.from({ length: 1024 }, (_, i) => xxhash64(`user-${i}`));
let hi = 0;
const hashCtx: LbContext = { hash: 0n };
const nextHash = (): LbContext => {
  hashCtx.hash = hashes[hi++ & 1023]!;
  return hashCtx;
};
const numHashes = hashes.map((h) => Number(h >> 11n));
const numCtx: LbContext = { hash: 0 };
const nextNumHash = (): LbContext => {
  numCtx.hash = numHashes[hi++ & 1023]!;
  return numCtx;
};
const retryCtx: LbContext = { previousHosts: [rr.hosts()[0]!], attempt: 2 };

console.log(`upstream host selection, 20 hosts, ${SECONDS}s per case (Node ${process.version})`);
bench('ROUND_ROBIN, equal weights', () => rr.lb.choose());
bench('ROUND_ROBIN, weighted (EDF)', () => wrr.lb.choose());
bench('LEAST_REQUEST, power of two choices', () => lr.lb.choose());
bench('LEAST_REQUEST, weighted (EDF)', () => wlr.lb.choose());
bench('RANDOM', () => rnd.lb.choose());
bench('RING_HASH, bigint hash', () => ring.lb.choose(nextHash()));
bench('RING_HASH, number hash', () => ring.lb.choose(nextNumHash()));
bench('MAGLEV, bigint hash', () => maglev.lb.choose(nextHash()));
bench('MAGLEV, number hash', () => maglev.lb.choose(nextNumHash()));
bench('ROUND_ROBIN, two priorities (P0 at 56%)', () => prio.lb.choose());
bench('ROUND_ROBIN, locality weighted (70/30)', () => loc.lb.choose());
bench('ROUND_ROBIN, panic', () => panic.lb.choose());
bench('ROUND_ROBIN, retry avoiding a previous host', () => rr.lb.choose(retryCtx));
bench('xxHash64 of a 36-byte header value', () => {
  xxhash64String('1b4e28ba-2fa1-11d2-883f-0016d3cca427');
  return hashResult.lo;
});
