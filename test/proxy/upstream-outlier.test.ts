// Outlier detection (Envoy semantics) with an injected clock: consecutive 5xx / gateway / local-origin ejections,
// enforcing percentages, max_ejection_percent, un-ejection after base_ejection_time × ejections (capped by
// max_ejection_time), success-rate and failure-percentage sweeps; ejected hosts leave load balancing.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { edsRuntime, hostByKey, pickCounts, type ClusterInit } from './upstream-helpers.js';
import { Cluster_LbPolicy } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';

const hosts = (n: number) => Array.from({ length: n }, (_, i) => `10.0.0.${i + 1}:80`);
const s = (n: number) => ({ seconds: BigInt(n) });

function outlierCluster(n: number, outlier: NonNullable<ClusterInit['outlierDetection']>) {
  const t = edsRuntime('od', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN, outlierDetection: outlier }, [{ hosts: hosts(n) }]);
  t.cluster.start();
  return t;
}

describe('consecutive errors', () => {
  test('N consecutive 5xx eject the host; it leaves load balancing and comes back after base_ejection_time', () => {
    const { cluster, clock } = outlierCluster(5, { consecutive5xx: 3, maxEjectionPercent: 100, interval: s(10), baseEjectionTime: s(30) });
    const bad = hostByKey(cluster, '10.0.0.1:80');
    bad.outlier.putResult('5xx', 500);
    bad.outlier.putResult('5xx', 502);
    assert.equal(bad.ejected, false);
    bad.outlier.putResult('5xx', 503);
    assert.equal(bad.ejected, true);
    assert.equal(bad.healthFlagsString(), '/failed_outlier_check');
    assert.equal(bad.outlier.numEjections, 1);
    const st = cluster.stats.outlier;
    assert.deepEqual([st.ejections_active, st.ejections_enforced_total, st.ejections_enforced_consecutive_5xx, st.ejections_detected_consecutive_5xx], [1, 1, 1, 1]);
    assert.equal(pickCounts(cluster, 100).get(bad.key), undefined, 'no traffic while ejected');
    clock.advance(10_000);
    clock.advance(10_000);
    assert.equal(bad.ejected, true, 'still ejected at 20s');
    clock.advance(10_000);
    assert.equal(bad.ejected, false, 'back at the 30s sweep');
    assert.equal(st.ejections_active, 0);
    assert.equal(pickCounts(cluster, 100).get(bad.key), 20);
  });

  test('a success resets the count; a second ejection lasts base × 2, capped by max_ejection_time', () => {
    const { cluster, clock } = outlierCluster(4, { consecutive5xx: 2, maxEjectionPercent: 100, interval: s(10), baseEjectionTime: s(30), maxEjectionTime: s(50) });
    const h = hostByKey(cluster, '10.0.0.2:80');
    h.outlier.putResult('5xx', 500);
    h.outlier.putResult('success', 200);
    h.outlier.putResult('5xx', 500);
    assert.equal(h.ejected, false, 'not consecutive');
    h.outlier.putResult('5xx', 500);
    assert.equal(h.ejected, true);
    clock.advance(30_000);
    assert.equal(h.ejected, false);
    h.outlier.putResult('5xx', 500);
    h.outlier.putResult('5xx', 500);
    assert.equal(h.outlier.numEjections, 2);
    clock.advance(40_000);
    assert.equal(h.ejected, true, 'second ejection: min(30s × 2, 50s) = 50s');
    clock.advance(10_000);
    assert.equal(h.ejected, false);
  });

  test('the ejection backoff shrinks while the host stays in service', () => {
    const { cluster, clock } = outlierCluster(4, { consecutive5xx: 1, maxEjectionPercent: 100, interval: s(10), baseEjectionTime: s(10) });
    const h = hostByKey(cluster, '10.0.0.1:80');
    h.outlier.putResult('5xx');
    clock.advance(10_000); // back after 10s
    assert.equal(h.ejected, false);
    clock.advance(30_000); // three clean sweeps: backoff 1 → 0
    h.outlier.putResult('5xx');
    clock.advance(10_000);
    assert.equal(h.ejected, false, 'ejected for the base time again, not twice it');
  });

  test('gateway failures: detected but not enforced by default (enforcing 0%); enforced at 100%', () => {
    const off = outlierCluster(4, { consecutiveGatewayFailure: 2, consecutive5xx: 100, maxEjectionPercent: 100 }).cluster;
    const h = hostByKey(off, '10.0.0.1:80');
    h.outlier.putResult('gateway', 502);
    h.outlier.putResult('gateway', 504);
    assert.equal(off.stats.outlier.ejections_detected_consecutive_gateway_failure, 1);
    assert.equal(h.ejected, false);
    const on = outlierCluster(4, { consecutiveGatewayFailure: 2, enforcingConsecutiveGatewayFailure: 100, consecutive5xx: 100, maxEjectionPercent: 100 }).cluster;
    const g = hostByKey(on, '10.0.0.1:80');
    g.outlier.putResult('gateway', 503);
    g.outlier.putResult('5xx', 500); // a non-gateway 5xx breaks the gateway run
    g.outlier.putResult('gateway', 503);
    assert.equal(g.ejected, false);
    g.outlier.putResult('gateway', 503);
    assert.equal(g.ejected, true);
    assert.equal(on.stats.outlier.ejections_enforced_consecutive_gateway_failure, 1);
  });

  test('local-origin failures count as 5xx unless split_external_local_origin_errors, then on their own', () => {
    const merged = outlierCluster(4, { consecutive5xx: 2, maxEjectionPercent: 100 }).cluster;
    const m = hostByKey(merged, '10.0.0.1:80');
    m.outlier.putResult('local-origin-failure'); // connect failure → 503
    m.outlier.putResult('local-origin-failure', 504); // timeout
    assert.equal(m.ejected, true);
    const split = outlierCluster(4, { consecutive5xx: 2, splitExternalLocalOriginErrors: true, consecutiveLocalOriginFailure: 3, maxEjectionPercent: 100 }).cluster;
    const h = hostByKey(split, '10.0.0.1:80');
    h.outlier.putResult('local-origin-failure');
    h.outlier.putResult('local-origin-failure');
    assert.equal(h.ejected, false, 'local failures do not count as 5xx');
    h.outlier.putResult('local-origin-success'); // a connection succeeded: reset
    h.outlier.putResult('local-origin-failure');
    h.outlier.putResult('local-origin-failure');
    assert.equal(h.ejected, false);
    h.outlier.putResult('local-origin-failure');
    assert.equal(h.ejected, true);
    assert.equal(split.stats.outlier.ejections_enforced_consecutive_local_origin_failure, 1);
  });
});

describe('limits', () => {
  test('max_ejection_percent: default 10% ejects nobody in a 5-host cluster; 50% of 4 ejects two, then overflows', () => {
    const def = outlierCluster(5, { consecutive5xx: 1 }).cluster;
    hostByKey(def, '10.0.0.1:80').outlier.putResult('5xx');
    assert.equal(hostByKey(def, '10.0.0.1:80').ejected, false);
    assert.equal(def.stats.outlier.ejections_overflow, 1);
    const half = outlierCluster(4, { consecutive5xx: 1, maxEjectionPercent: 50 }).cluster;
    for (const k of ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80']) hostByKey(half, k).outlier.putResult('5xx');
    assert.deepEqual(
      half.hosts().map((h) => h.ejected),
      [true, true, false, false],
    );
    assert.equal(half.stats.outlier.ejections_overflow, 1);
    assert.equal(half.stats.outlier.ejections_active, 2);
  });

  test('always_eject_one_host ejects one even above max_ejection_percent', () => {
    const c = outlierCluster(5, { consecutive5xx: 1, alwaysEjectOneHost: true }).cluster;
    hostByKey(c, '10.0.0.1:80').outlier.putResult('5xx');
    hostByKey(c, '10.0.0.2:80').outlier.putResult('5xx');
    assert.deepEqual(
      c.hosts().map((h) => h.ejected),
      [true, false, false, false, false],
    );
  });

  test('enforcing_consecutive_5xx 0%: detection only', () => {
    const c = outlierCluster(4, { consecutive5xx: 1, enforcingConsecutive5xx: 0, maxEjectionPercent: 100 }).cluster;
    hostByKey(c, '10.0.0.1:80').outlier.putResult('5xx');
    assert.equal(c.stats.outlier.ejections_detected_consecutive_5xx, 1);
    assert.equal(c.stats.outlier.ejections_active, 0);
  });
});

describe('statistical ejection (interval sweeps)', () => {
  test('success rate: a host below mean − 1.9 × stdev of the last interval is ejected', () => {
    const { cluster, clock } = outlierCluster(5, { consecutive5xx: 1000, maxEjectionPercent: 20, interval: s(10) });
    const all = cluster.hosts();
    for (let i = 0; i < 100; i++) {
      for (const h of all.slice(1)) h.outlier.putResult('success', 200);
      all[0]!.outlier.putResult(i % 2 ? 'success' : '5xx', i % 2 ? 200 : 500);
    }
    clock.advance(10_000); // the interval's results become the sample
    // rates 50,100,100,100,100: mean 90, stdev 20, threshold 52 → the 50% host goes.
    assert.equal(all[0]!.ejected, true);
    assert.equal(cluster.outlierDetector!.successRateAverage, 90);
    assert.equal(cluster.outlierDetector!.successRateEjectionThreshold, 52);
    assert.equal(all[0]!.outlier.successRate, 50);
    assert.equal(cluster.stats.outlier.ejections_enforced_success_rate, 1);
  });

  test('success rate needs success_rate_request_volume per host; failure percentage needs enforcing', () => {
    const { cluster, clock } = outlierCluster(5, { consecutive5xx: 1000, maxEjectionPercent: 100, enforcingFailurePercentage: 100 });
    const all = cluster.hosts();
    for (let i = 0; i < 60; i++) {
      for (const h of all.slice(1)) h.outlier.putResult('success', 200);
      all[0]!.outlier.putResult(i < 54 ? '5xx' : 'success', i < 54 ? 503 : 200);
    }
    clock.advance(10_000);
    // 60 requests < 100: no success-rate verdict; failure percentage 90% ≥ 85% with ≥ 50 requests → ejected.
    assert.equal(cluster.stats.outlier.ejections_detected_success_rate, 0);
    assert.equal(cluster.stats.outlier.ejections_enforced_failure_percentage, 1);
    assert.equal(all[0]!.ejected, true);
  });
});
