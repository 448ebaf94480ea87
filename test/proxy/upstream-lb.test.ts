// Load balancers (Envoy semantics): round robin (strict and EDF-weighted), least request (power of two choices and
// weighted), random, ring hash and Maglev (consistency when hosts change), priority levels with the 1.4
// overprovisioning factor, panic mode, locality weighted LB, retries with the previous-hosts predicate. Clusters
// come from hand-built protos and from the control plane's translator (DestinationRules in YAML).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  cla,
  edsCluster,
  edsRuntime,
  hostByKey,
  assertNear,
  pickCounts,
  testOpts,
  translateFixture,
  Cluster_LbPolicy,
  HealthStatus,
} from './upstream-helpers.js';
import { compileCluster, seededRandom, xxhash64, HealthFlag, type Host } from '../../src/proxy/upstream/cluster/index.js';
import { EdfScheduler } from '../../src/proxy/upstream/lb/edf.js';
import { MaglevTable, Mt19937, RingTable, normalizeWeights } from '../../src/proxy/upstream/lb/hashing.js';
import type { LoadBalancerBase } from '../../src/proxy/upstream/lb/load-balancer.js';

const RR = { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN };
const hosts = (n: number, base = '10.0.0.') => Array.from({ length: n }, (_, i) => `${base}${i + 1}:80`);

describe('round robin', () => {
  test('equal weights: strict rotation, every host exactly once per round', () => {
    const { cluster } = edsRuntime('rr', RR, [{ hosts: hosts(3) }]);
    const seq = Array.from({ length: 9 }, () => cluster.lb.choose()!.key);
    assert.deepEqual(new Set(seq.slice(0, 3)).size, 3, 'the first round visits all three hosts');
    assert.deepEqual(seq.slice(3, 6), seq.slice(0, 3), 'the same order every round');
    const counts = pickCounts(cluster, 300);
    assert.deepEqual([...counts.values()], [100, 100, 100]);
  });

  test('differing weights: EDF weighted round robin gives exact proportions', () => {
    const { cluster } = edsRuntime('wrr', RR, [{ hosts: [{ addr: '10.0.0.1:80', weight: 1 }, { addr: '10.0.0.2:80', weight: 2 }, { addr: '10.0.0.3:80', weight: 3 }] }]);
    const counts = pickCounts(cluster, 600);
    assertNear(counts.get('10.0.0.1:80')!, 100, 1, 'weight 1');
    assertNear(counts.get('10.0.0.2:80')!, 200, 1, 'weight 2');
    assertNear(counts.get('10.0.0.3:80')!, 300, 1, 'weight 3');
  });

  test('the rotation index of a host source survives a host set refresh', () => {
    const { cluster } = edsRuntime('rr-keep', RR, [{ hosts: hosts(4) }]);
    const first = cluster.lb.choose()!.key;
    const second = cluster.lb.choose()!.key;
    assert.notEqual(first, second);
    cluster.refresh();
    const third = cluster.lb.choose()!.key;
    assert.ok(third !== first && third !== second, 'refresh did not restart the rotation');
  });

  test('EDF scheduler: createWithPicks equals picking from an empty schedule', () => {
    const weight = (x: { w: number }) => x.w;
    for (const ws of [
      [Math.PI, Math.E, Math.SQRT2],
      [25, 75, 10],
    ]) {
      const items = ws.map((w) => ({ w }));
      for (const picks of [0, 1, 7, 23, 110]) {
        const a = EdfScheduler.createWithPicks(items, weight, 0);
        for (let i = 0; i < picks; i++) a.pickAndAdd();
        const b = EdfScheduler.createWithPicks(items, weight, picks);
        const seqA = Array.from({ length: 110 }, () => a.pickAndAdd()!.w);
        const seqB = Array.from({ length: 110 }, () => b.pickAndAdd()!.w);
        if (ws[0] === Math.PI) assert.deepEqual(seqB, seqA, `${picks} pre-picks`);
        else {
          // Weights that are multiples of each other tie on deadlines; as in Envoy, ties may break differently.
          const count = (seq: number[], w: number) => seq.filter((x) => x === w).length;
          for (const w of ws) assertNear(count(seqB, w), count(seqA, w), 1, `${picks} pre-picks, weight ${w}`);
        }
      }
    }
  });
});

describe('slow start', () => {
  test('a host added to a warm cluster ramps up from min_weight_percent over slow_start_window', () => {
    const init = { ...RR, lbConfig: { case: 'roundRobinLbConfig' as const, value: { slowStartConfig: { slowStartWindow: { seconds: 60n } } } } };
    const { cluster, clock } = edsRuntime('slow', init, [{ hosts: hosts(2) }]);
    clock.advance(61_000); // the initial hosts leave their window
    cluster.refresh();
    assert.deepEqual([...pickCounts(cluster, 200).values()], [100, 100], 'plain round robin again');
    cluster.updateHosts(cla('slow', [{ hosts: hosts(3) }]));
    const share = (n: number) => (pickCounts(cluster, n).get('10.0.0.3:80') ?? 0) / n;
    // Just added: weight 1 × max(~0, 10%) = 0.1 against 1 + 1.
    assertNear(share(2100), 0.1 / 2.1, 0.01, 'new host at 10%');
    clock.advance(30_000);
    share(50); // the schedule re-reads the weight when the host is picked
    assertNear(share(5000), 0.5 / 2.5, 0.02, 'halfway: weight 0.5');
    clock.advance(31_000);
    cluster.refresh();
    assertNear(share(3000), 1 / 3, 0.01, 'out of the window');
  });

  test('aggression bends the ramp: factor^(1/aggression)', () => {
    const init = { ...RR, lbConfig: { case: 'roundRobinLbConfig' as const, value: { slowStartConfig: { slowStartWindow: { seconds: 100n }, aggression: { defaultValue: 2, runtimeKey: 'k' }, minWeightPercent: { value: 1 } } } } };
    const { cluster, clock } = edsRuntime('aggr', init, [{ hosts: hosts(1) }]);
    clock.advance(101_000);
    cluster.refresh();
    cluster.updateHosts(cla('aggr', [{ hosts: hosts(2) }]));
    clock.advance(25_000);
    cluster.refresh();
    // 25% of the window with aggression 2: sqrt(0.25) = 0.5.
    assertNear((pickCounts(cluster, 3000).get('10.0.0.2:80') ?? 0) / 3000, 0.5 / 1.5, 0.01, 'weight 0.5');
  });
});

describe('least request', () => {
  test('power of two choices prefers the idle host (~75% with two hosts)', () => {
    const { cluster } = edsRuntime('lr', { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST }, [{ hosts: hosts(2) }]);
    hostByKey(cluster, '10.0.0.1:80').stats.rq_active = 10;
    const counts = pickCounts(cluster, 4000);
    const idle = counts.get('10.0.0.2:80') ?? 0;
    assertNear(idle / 4000, 0.75, 0.04, 'idle host share');
  });

  test('choice_count 5 over 5 hosts almost always finds the only idle one', () => {
    const { cluster } = edsRuntime('lr5', { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST, lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 5 } } }, [{ hosts: hosts(5) }]);
    for (const h of cluster.hosts()) h.stats.rq_active = 5;
    hostByKey(cluster, '10.0.0.3:80').stats.rq_active = 0;
    const idle = pickCounts(cluster, 2000).get('10.0.0.3:80') ?? 0;
    // P(idle sampled at least once in 5 draws) = 1 - 0.8^5 = 0.672; uniform would be 0.2.
    assertNear(idle / 2000, 0.672, 0.05, 'idle host share');
  });

  test('weighted: EDF with weight / (active + 1) — a busy heavy host loses its advantage', () => {
    const { cluster } = edsRuntime('lrw', { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST }, [{ hosts: [{ addr: '10.0.0.1:80', weight: 4 }, { addr: '10.0.0.2:80', weight: 1 }] }]);
    let counts = pickCounts(cluster, 500);
    assertNear(counts.get('10.0.0.1:80')!, 400, 2, 'idle: 4:1 by weight');
    cluster.refresh();
    hostByKey(cluster, '10.0.0.1:80').stats.rq_active = 7; // effective weight 4/8 = 0.5 vs 1/1
    counts = pickCounts(cluster, 600);
    assertNear(counts.get('10.0.0.2:80')! / 600, 2 / 3, 0.02, 'busy heavy host gets 1/3');
  });

  test('an explicit active_request_bias uses the weighted schedule even with equal weights', () => {
    const { cluster } = edsRuntime(
      'lrb',
      { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST, lbConfig: { case: 'leastRequestLbConfig', value: { activeRequestBias: { defaultValue: 0, runtimeKey: 'x' } } } },
      [{ hosts: hosts(2) }],
    );
    hostByKey(cluster, '10.0.0.1:80').stats.rq_active = 100;
    // Bias 0: weights ignore active requests, so the EDF schedule alternates strictly.
    const counts = pickCounts(cluster, 100);
    assert.deepEqual([...counts.values()], [50, 50]);
  });
});

describe('random', () => {
  test('uniform within tolerance, weights ignored', () => {
    const { cluster } = edsRuntime('rnd', { lbPolicy: Cluster_LbPolicy.RANDOM }, [{ hosts: [{ addr: '10.0.0.1:80', weight: 9 }, '10.0.0.2:80', '10.0.0.3:80', '10.0.0.4:80'] }]);
    const counts = pickCounts(cluster, 8000);
    for (const [k, v] of counts) assertNear(v / 8000, 0.25, 0.03, k);
  });
});

function keysMoved(before: Host[], after: Host[]): number {
  let moved = 0;
  for (let i = 0; i < before.length; i++) if (before[i]!.key !== after[i]!.key) moved++;
  return moved;
}

describe('consistent hashing', () => {
  const KEYS = Array.from({ length: 5000 }, (_, i) => xxhash64(`user-${i}`));

  for (const [name, policy, lbConfig, maxMoved, minToNew] of [
    // Envoy's ring keeps its size (~min ring): with an 11th host every host drops from 103 to 94 points, so the keys
    // of dropped points move too — still a small fraction, where `hash % N` would move 10/11 of them.
    ['ring hash', Cluster_LbPolicy.RING_HASH, { case: 'ringHashLbConfig' as const, value: {} }, 0.2, 0.55],
    // Maglev's table rebuild disturbs only a handful of entries besides those the new host takes.
    ['maglev', Cluster_LbPolicy.MAGLEV, { case: 'maglevLbConfig' as const, value: {} }, 1 / 11 + 0.03, 0.95],
  ] as const) {
    test(`${name}: same hash → same host; adding an 11th host moves few keys, ~1/11 of them to the new host`, () => {
      const ten = hosts(10);
      const { cluster } = edsRuntime(name, { lbPolicy: policy, lbConfig }, [{ hosts: ten }]);
      const before = KEYS.map((hash) => cluster.lb.choose({ hash })!);
      assert.deepEqual(
        KEYS.slice(0, 50).map((hash) => cluster.lb.choose({ hash })!.key),
        before.slice(0, 50).map((h) => h.key),
        'deterministic',
      );
      const spread = new Map<string, number>();
      for (const h of before) spread.set(h.key, (spread.get(h.key) ?? 0) + 1);
      for (const [k, v] of spread) assertNear(v / KEYS.length, 0.1, 0.05, `${name} share of ${k}`);
      cluster.updateHosts(cla(name, [{ hosts: [...ten, '10.0.0.99:80'] }]));
      const after = KEYS.map((hash) => cluster.lb.choose({ hash })!);
      const moved = keysMoved(before, after);
      const toNew = after.filter((h) => h.key === '10.0.0.99:80').length;
      assertNear(toNew / KEYS.length, 1 / 11, 0.03, `${name}: share of the new host`);
      assert.ok(moved / KEYS.length <= maxMoved, `${name}: ${moved / KEYS.length} of the keys moved (at most ${maxMoved})`);
      assert.ok(toNew / moved >= minToNew, `${name}: ${toNew} of ${moved} moved keys went to the new host`);
      // Removing a host: Maglev moves (almost) only that host's keys; the ring regains points for everyone.
      cluster.updateHosts(cla(name, [{ hosts: ten.slice(1) }]));
      const removed = KEYS.map((hash) => cluster.lb.choose({ hash })!);
      let kept = 0;
      let others = 0;
      for (let i = 0; i < KEYS.length; i++) {
        if (before[i]!.key === '10.0.0.1:80') continue;
        others++;
        if (removed[i]!.key === before[i]!.key) kept++;
      }
      assert.ok(kept / others >= 1 - maxMoved, `${name}: ${kept}/${others} keys of the remaining hosts stayed`);
    });
  }

  test("ring hash follows Envoy's ring: ⌈min weight × min ring⌉ points per host, point i = xxHash64(address_i)", () => {
    const { cluster } = edsRuntime('ring', { lbPolicy: Cluster_LbPolicy.RING_HASH }, [{ hosts: hosts(10) }]);
    const ring = (cluster.lb as unknown as { tableOf(p: number): RingTable }).tableOf(0);
    // scale = ceil(0.1 × 1024) / 0.1 = 1030 points, 103 per host.
    assert.equal(ring.size, 1030);
    const h1 = xxhash64('10.0.0.1:80_0');
    const i = ring.hosts.findIndex((_, j) => ((BigInt(ring.hi[j]!) << 32n) | BigInt(ring.lo[j]!)) === h1);
    assert.ok(i >= 0 && ring.hosts[i]!.key === '10.0.0.1:80', 'the first point of 10.0.0.1:80 is on the ring');
    // A hash exactly at a point maps to that point's host; one above it to the next point.
    assert.equal(cluster.lb.choose({ hash: h1 })!.key, '10.0.0.1:80');
    const next = ring.hosts[(i + 1) % ring.size]!.key;
    assert.equal(cluster.lb.choose({ hash: h1 + 1n })!.key, next);
    // Past the last point wraps to the first.
    assert.equal(cluster.lb.choose({ hash: (1n << 64n) - 1n })!.key, ring.hosts[0]!.key);
  });

  test('weights: a host of weight 3 gets 3× the ring share and 3× the Maglev entries', () => {
    const { cluster } = edsRuntime('mw', { lbPolicy: Cluster_LbPolicy.MAGLEV }, [{ hosts: [{ addr: '10.0.0.1:80', weight: 3 }, '10.0.0.2:80', '10.0.0.3:80'] }]);
    const table = (cluster.lb as unknown as { tableOf(p: number): MaglevTable }).tableOf(0);
    assert.equal(table.table.length, 65537);
    const c = new Map(table.hosts.map((h, i) => [h.key, table.counts[i]!]));
    assertNear(c.get('10.0.0.1:80')! / 65537, 0.6, 0.01, 'weight 3 of 5');
    assertNear(c.get('10.0.0.2:80')! / 65537, 0.2, 0.01, 'weight 1 of 5');
  });

  test('retries with previous hosts: ring hash moves along the ring, Maglev flips the hash', () => {
    for (const policy of [Cluster_LbPolicy.RING_HASH, Cluster_LbPolicy.MAGLEV]) {
      const { cluster } = edsRuntime(`prev-${policy}`, { lbPolicy: policy }, [{ hosts: hosts(5) }]);
      let avoided = 0;
      for (const hash of KEYS.slice(0, 200)) {
        const first = cluster.lb.choose({ hash })!;
        const retry = cluster.lb.choose({ hash, previousHosts: [first], attempt: 2, hostSelectionRetries: 3 })!;
        if (retry !== first) avoided++;
        // Without the predicate (first attempt) the same host comes back.
        assert.equal(cluster.lb.choose({ hash, previousHosts: [first], attempt: 1 }), first);
      }
      assert.ok(avoided >= 195, `policy ${policy}: retries avoided the previous host (${avoided}/200)`);
    }
  });

  test('hash_balance_factor: an overloaded host sheds keys to others; mt19937 matches the C++ standard', () => {
    assert.equal(new Mt19937(5489).next(), 3499211612, 'std::mt19937 default-seed first output');
    const { cluster } = edsRuntime(
      'bounded',
      { lbPolicy: Cluster_LbPolicy.RING_HASH, commonLbConfig: { consistentHashingLbConfig: { hashBalanceFactor: 150 } } },
      [{ hosts: hosts(4) }],
    );
    const hash = KEYS[0]!;
    const home = cluster.lb.choose({ hash })!;
    // 10 requests in flight, all on `home`: its slots are ceil(ceil(11 × 1.5) × 0.25) = 5 < 10 → overloaded.
    cluster.stats.upstream_rq_active = 10;
    home.stats.rq_active = 10;
    const other = cluster.lb.choose({ hash })!;
    assert.notEqual(other, home);
    assert.equal(cluster.lb.choose({ hash }), other, 'the same hash probes the same alternative');
    home.stats.rq_active = 0;
    assert.equal(cluster.lb.choose({ hash }), home);
  });

  test('normalized weights with locality weighted LB drop localities of weight 0', () => {
    const { cluster } = edsRuntime('norm', { lbPolicy: Cluster_LbPolicy.RING_HASH, commonLbConfig: { localityConfigSpecifier: { case: 'localityWeightedLbConfig', value: {} } } }, [
      { locality: 'r/a/', weight: 3, hosts: ['10.0.0.1:80', '10.0.0.2:80'] },
      { locality: 'r/b/', weight: 1, hosts: ['10.0.1.1:80'] },
      { locality: 'r/c/', weight: 0, hosts: ['10.0.2.1:80'] },
    ]);
    const { weights } = normalizeWeights(cluster.hostSets[0]!, false, true);
    assert.deepEqual(
      weights.map((w) => [w.host.key, w.weight]),
      [
        ['10.0.0.1:80', 0.375],
        ['10.0.0.2:80', 0.375],
        ['10.0.1.1:80', 0.25],
      ],
    );
    const counts = pickCounts(cluster, 4000);
    assert.equal(counts.get('10.0.2.1:80'), undefined, 'the weight-0 locality gets nothing');
  });
});

describe('priorities, panic, localities', () => {
  const p0 = hosts(4, '10.0.0.');
  const p1 = hosts(4, '10.0.1.');
  const groups = (unhealthyP0: number) => [
    { priority: 0, hosts: p0.map((addr, i) => ({ addr, health: i < unhealthyP0 ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY })) },
    { priority: 1, hosts: p1 },
  ];
  const loads = (c: { lb: unknown }) => [(c.lb as LoadBalancerBase).healthyLoad, (c.lb as LoadBalancerBase).degradedLoad];

  test('P0 keeps all traffic while ≥ 72% healthy, then spills to P1 by health × 1.4', () => {
    const { cluster } = edsRuntime('prio', RR, groups(1));
    assert.deepEqual(loads(cluster), [[100, 0], [0, 0]], '3/4 healthy × 1.4 = 105% → 100');
    assert.ok([...pickCounts(cluster, 100).keys()].every((k) => k.startsWith('10.0.0.')));
    cluster.updateHosts(cla('prio', groups(2)));
    assert.deepEqual(loads(cluster), [[70, 30], [0, 0]], '2/4 healthy × 1.4 = 70%');
    const counts = pickCounts(cluster, 10000);
    let toP1 = 0;
    for (const [k, v] of counts) if (k.startsWith('10.0.1.')) toP1 += v;
    assertNear(toP1 / 10000, 0.3, 0.02, 'P1 share');
    assert.equal(counts.get('10.0.0.1:80'), undefined, 'unhealthy P0 hosts get nothing');
    cluster.updateHosts(cla('prio', groups(4)));
    assert.deepEqual(loads(cluster), [[0, 100], [0, 0]], 'P0 down: all to P1');
    assert.ok([...pickCounts(cluster, 100).keys()].every((k) => k.startsWith('10.0.1.')));
  });

  test('degraded hosts take load only when healthy ones do not cover 100%', () => {
    const { cluster } = edsRuntime('degraded', RR, [
      { hosts: [{ addr: '10.0.0.1:80' }, { addr: '10.0.0.2:80', health: HealthStatus.DEGRADED }, { addr: '10.0.0.3:80', health: HealthStatus.DEGRADED }, { addr: '10.0.0.4:80', health: HealthStatus.DEGRADED }] },
    ]);
    // healthy 1/4 × 1.4 = 35, degraded 3/4 × 1.4 = 105 → 100; normalized 100: 35 healthy + 65 degraded.
    assert.deepEqual(loads(cluster), [[35], [65]]);
    const counts = pickCounts(cluster, 10000);
    assertNear(counts.get('10.0.0.1:80')! / 10000, 0.35, 0.02, 'healthy host share');
  });

  test('panic: below 50% healthy a priority routes to all its hosts; threshold 0 disables panic', () => {
    const tenHosts = hosts(10);
    const group = [{ hosts: tenHosts.map((addr, i) => ({ addr, health: i < 6 ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY })) }];
    const { cluster } = edsRuntime('panic', RR, group);
    assert.deepEqual((cluster.lb as LoadBalancerBase).panic, [true]);
    const counts = pickCounts(cluster, 1000);
    assert.equal(counts.size, 10, 'every host, healthy or not');
    assert.equal(cluster.stats.lb_healthy_panic, 1000);
    const noPanic = edsRuntime('nopanic', { ...RR, commonLbConfig: { healthyPanicThreshold: { value: 0 } } }, group).cluster;
    assert.deepEqual((noPanic.lb as LoadBalancerBase).panic, [false]);
    assert.deepEqual([...pickCounts(noPanic, 100).keys()].sort(), tenHosts.slice(6).sort());
    const allDown = edsRuntime('down', { ...RR, commonLbConfig: { healthyPanicThreshold: { value: 0 } } }, [{ hosts: [{ addr: '10.0.0.1:80', health: HealthStatus.UNHEALTHY }] }]).cluster;
    assert.equal(allDown.lb.choose(), undefined, 'no healthy host and no panic: no host');
  });

  test('no panic while the priorities together still cover 100%; total panic splits by host count', () => {
    const { cluster } = edsRuntime('nopanic2', RR, [
      { priority: 0, hosts: hosts(4, '10.0.0.').map((addr, i) => ({ addr, health: i < 3 ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY })) },
      { priority: 1, hosts: hosts(2, '10.0.1.') },
    ]);
    // P0 35%, P1 100% → normalized 100: P0 is not in panic even at 25% healthy.
    assert.deepEqual((cluster.lb as LoadBalancerBase).panic, [false, false]);
    assert.deepEqual((cluster.lb as LoadBalancerBase).healthyLoad, [35, 65]);
    const down = edsRuntime('totalpanic', RR, [
      { priority: 0, hosts: hosts(3, '10.0.0.').map((addr) => ({ addr, health: HealthStatus.UNHEALTHY })) },
      { priority: 1, hosts: [{ addr: '10.0.1.1:80', health: HealthStatus.UNHEALTHY }] },
    ]).cluster;
    assert.deepEqual((down.lb as LoadBalancerBase).panic, [true, true]);
    assert.deepEqual((down.lb as LoadBalancerBase).healthyLoad, [75, 25], 'by host count: 3 and 1');
  });

  test('locality weighted LB: locality weights × availability, then hosts within the locality', () => {
    const mk = (unhealthyInA: number) => [
      { locality: 'us/a/', weight: 80, hosts: hosts(4, '10.0.0.').map((addr, i) => ({ addr, health: i < unhealthyInA ? HealthStatus.UNHEALTHY : HealthStatus.HEALTHY })) },
      { locality: 'us/b/', weight: 20, hosts: hosts(2, '10.0.1.') },
    ];
    const { cluster } = edsRuntime('loc', { ...RR, commonLbConfig: { localityConfigSpecifier: { case: 'localityWeightedLbConfig', value: {} } } }, mk(0));
    const share = (counts: Map<string, number>, prefix: string) => [...counts].filter(([k]) => k.startsWith(prefix)).reduce((s, [, v]) => s + v, 0);
    let counts = pickCounts(cluster, 10000);
    assertNear(share(counts, '10.0.0.') / 10000, 0.8, 0.01, 'locality a, 80/20');
    // Two of four unhealthy in a: effective weight 80 × min(1, 1.4 × 0.5) = 56 vs 20.
    cluster.updateHosts(cla('loc', mk(2)));
    counts = pickCounts(cluster, 10000);
    assertNear(share(counts, '10.0.0.') / 10000, 56 / 76, 0.01, 'locality a after failures');
    // Without locality_weighted_lb_config the locality weights are ignored: 4 vs 2 hosts.
    const flat = edsRuntime('flat', RR, mk(0)).cluster;
    counts = pickCounts(flat, 6000);
    assertNear(share(counts, '10.0.0.') / 6000, 4 / 6, 0.01, 'host count decides');
  });

  test('previous hosts predicate: a retry avoids hosts already tried (round robin)', () => {
    const { cluster } = edsRuntime('retry', RR, [{ hosts: hosts(3) }]);
    const all = cluster.hosts();
    for (let i = 0; i < 30; i++) {
      const h = cluster.lb.choose({ previousHosts: [all[0]!], attempt: 2 })!;
      assert.notEqual(h, all[0], 'never the previous host');
    }
    // With every host tried, the last pick is used anyway.
    assert.ok(cluster.lb.choose({ previousHosts: all, attempt: 3 }));
  });
});

describe('hosts keep identity across updates', () => {
  test('same address:port = same Host object (stats and flags survive); removed hosts are flagged', () => {
    const { cluster } = edsRuntime('ident', RR, [{ hosts: ['10.0.0.1:80', '10.0.0.2:80'] }]);
    const h1 = hostByKey(cluster, '10.0.0.1:80');
    const h2 = hostByKey(cluster, '10.0.0.2:80');
    h1.stats.rq_total = 42;
    const changes: Array<[string[], string[]]> = [];
    cluster.onHostsChanged((a, r) => changes.push([a.map((h) => h.key), r.map((h) => h.key)]));
    cluster.updateHosts(cla('ident', [{ priority: 1, locality: 'r/z/s', hosts: [{ addr: '10.0.0.1:80', weight: 5 }, '10.0.0.3:80'] }]));
    assert.equal(hostByKey(cluster, '10.0.0.1:80'), h1);
    assert.equal(h1.stats.rq_total, 42);
    assert.equal(h1.weight, 5);
    assert.equal(h1.priority, 1);
    assert.deepEqual(h1.locality, { region: 'r', zone: 'z', subZone: 's' });
    assert.equal(h2.removed, true);
    assert.equal(cluster.host('10.0.0.2:80'), undefined);
    assert.deepEqual(changes, [[['10.0.0.3:80'], ['10.0.0.2:80']]]);
    assert.equal(cluster.stats.membership_total, 2);
    assert.equal(cluster.stats.max_host_weight, 5);
  });

  test('EDS health: UNHEALTHY / TIMEOUT fail, DRAINING fails and is excluded, DEGRADED degrades', () => {
    const { cluster } = edsRuntime('eds-health', RR, [
      {
        hosts: [
          { addr: '10.0.0.1:80', health: HealthStatus.UNHEALTHY },
          { addr: '10.0.0.2:80', health: HealthStatus.DRAINING },
          { addr: '10.0.0.3:80', health: HealthStatus.DEGRADED },
          { addr: '10.0.0.4:80', health: HealthStatus.UNKNOWN },
          { addr: '10.0.0.5:80', health: HealthStatus.TIMEOUT },
        ],
      },
    ]);
    const flags = cluster.hosts().map((h) => h.healthFlagsString());
    assert.deepEqual(flags, ['/failed_eds_health', '/eds_status_draining', '/degraded_eds_health', 'healthy', '/failed_eds_health']);
    assert.equal(cluster.stats.membership_excluded, 1);
    assert.equal(cluster.stats.membership_healthy, 1);
    assert.equal(cluster.stats.membership_degraded, 1);
    assert.ok(hostByKey(cluster, '10.0.0.1:80').has(HealthFlag.FAILED_EDS_HEALTH));
  });
});

describe('clusters from the translator (DestinationRules)', () => {
  const t = translateFixture('upstream.yaml');
  const POOL = 'pool.shop.svc.cluster.local';
  const build = (name: string, seed = 7) => {
    const c = compileCluster(t.cluster(name), { ...testOpts(seed) });
    c.updateHosts(t.cla(name));
    return c;
  };

  test('every load balancer of the DestinationRule subsets compiles and distributes', () => {
    assert.deepEqual(t.errors, []);
    const rr = build(`outbound|80|rr|${POOL}`);
    assert.equal(rr.lbPolicy, 'ROUND_ROBIN');
    assert.deepEqual([...pickCounts(rr, 300).values()], [100, 100, 100]);

    const weighted = build(`outbound|80|weighted|${POOL}`);
    const wc = pickCounts(weighted, 500);
    assertNear(wc.get('10.2.0.3:80')!, 300, 1, 'WorkloadEntry weight 3 of 5');

    const rnd = build(`outbound|80|random|${POOL}`);
    assert.equal(rnd.lbPolicy, 'RANDOM');
    for (const v of pickCounts(rnd, 6000).values()) assertNear(v / 6000, 1 / 3, 0.03, 'random share');

    const lr = build(`outbound|80|leastreq|${POOL}`);
    assert.equal(lr.lbPolicy, 'LEAST_REQUEST', "Istio's default");
    lr.hosts()[0]!.stats.rq_active = 3;
    const idleShare = 1 - (pickCounts(lr, 6000).get(lr.hosts()[0]!.key) ?? 0) / 6000;
    assertNear(idleShare, 1 - 1 / 9, 0.02, 'busy host chosen only when sampled twice');

    const ring = build(`outbound|80|ring|${POOL}`);
    assert.equal(ring.lbPolicy, 'RING_HASH');
    const ringTable = (ring.lb as unknown as { tableOf(p: number): RingTable }).tableOf(0);
    // minimumRingSize 2048 over weights 1,1,3,1,1,1 (min normalized 1/8): ⌈256⌉ / 0.125 = 2048.
    assert.equal(ringTable.size, 2048);
    const mag = build(`outbound|80|maglev|${POOL}`);
    assert.equal(mag.lbPolicy, 'MAGLEV');
    assert.equal((mag.lb as unknown as { tableOf(p: number): MaglevTable }).tableOf(0).table.length, 1009);
    const hash = xxhash64('alice');
    assert.equal(mag.lb.choose({ hash }), mag.lb.choose({ hash }));
  });

  test("Istio's circuit breakers and outlier detection come through; connect timeout, protocol, slow start", () => {
    const g = compileCluster(t.cluster(`outbound|80|guarded|${POOL}`), testOpts());
    const cb = g.circuitBreaker();
    assert.deepEqual([cb.max('connections'), cb.max('pending'), cb.max('requests'), cb.max('retries')], [2, 1, 3, 1]);
    assert.equal(cb.thresholds.trackRemaining, true);
    assert.equal(g.outlierDetection?.consecutive5xx, 2);
    assert.equal(g.outlierDetection?.consecutiveGatewayFailure, 1);
    assert.equal(g.outlierDetection?.enforcingConsecutiveGatewayFailure, 100);
    assert.equal(g.outlierDetection?.enforcingSuccessRate, 0);
    assert.equal(g.outlierDetection?.baseEjectionTimeMs, 10_000);
    assert.equal(g.connectTimeoutMs, 10_000);
    const def = compileCluster(t.cluster(`outbound|80||${POOL}`), testOpts());
    assert.equal(def.circuitBreaker().max('requests'), 2 ** 32 - 1, "Istio's unlimited thresholds");
    assert.equal(def.protocol, 'http1');
    assert.deepEqual(def.warnings, []);
    const warm = build(`outbound|80|warm|${POOL}`);
    // All hosts are new: in slow start the EDF schedule is used with min_weight 10% → still equal shares.
    assert.deepEqual([...pickCounts(warm, 300).values()], [100, 100, 100]);
  });

  test('locality failover: P0 = own sub-zone, P1 = own zone, P2 = other region; traffic fails over as P0 hosts are ejected', () => {
    const name = 'outbound|8080||web.shop.svc.cluster.local';
    const web = build(name);
    const byKey = (k: string) => hostByKey(web, k);
    assert.deepEqual(
      web.hostSets.map((hs) => hs.hosts.map((h) => h.key)),
      [['10.1.0.1:8080', '10.1.0.2:8080'], ['10.1.1.1:8080'], ['10.1.2.1:8080']],
    );
    assert.deepEqual([...pickCounts(web, 100).keys()].sort(), ['10.1.0.1:8080', '10.1.0.2:8080']);
    // Three 5xx eject a P0 host (consecutive5xxErrors: 3, maxEjectionPercent 50): P0 health 1/2 × 1.4 = 70%.
    for (let i = 0; i < 3; i++) byKey('10.1.0.1:8080').outlier.putResult('5xx', 503);
    assert.equal(byKey('10.1.0.1:8080').ejected, true);
    assert.deepEqual((web.lb as LoadBalancerBase).healthyLoad, [70, 30, 0]);
    const counts = pickCounts(web, 10000);
    assertNear((counts.get('10.1.1.1:8080') ?? 0) / 10000, 0.3, 0.02, 'failover to the same zone');
    assert.equal(counts.get('10.1.2.1:8080'), undefined, 'other region untouched');
  });
});

test('seeded randomness is reproducible', () => {
  const a = seededRandom(9);
  const b = seededRandom(9);
  assert.deepEqual([a(), a(), a()], [b(), b(), b()]);
  const c = compileCluster(edsCluster('x', RR), testOpts());
  assert.equal(c.lb.choose(), undefined, 'an EDS cluster without endpoints has no host');
});
