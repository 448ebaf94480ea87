// Circuit breakers: Envoy's default thresholds, overflow counting per resource (503 UO on the request path),
// release, retry budgets, per-host connection limits, routing priorities, and the circuit_breakers.* gauges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { edsCluster, edsRuntime, hostByKey, testOpts } from './upstream-helpers.js';
import { compileCluster } from '../../src/proxy/upstream/cluster/index.js';
import { RoutingPriority } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';

test("Envoy's defaults: 1024 connections, pending, requests; 3 retries", () => {
  const c = compileCluster(edsCluster('cb-default'), testOpts());
  const cb = c.circuitBreaker();
  assert.deepEqual([cb.max('connections'), cb.max('pending'), cb.max('requests'), cb.max('retries')], [1024, 1024, 1024, 3]);
  for (let i = 0; i < 3; i++) assert.equal(cb.tryAcquire('retries'), true);
  assert.equal(cb.tryAcquire('retries'), false);
  assert.equal(c.stats.upstream_rq_retry_overflow, 1);
});

test('each resource overflows into its Envoy stat; release frees a slot; gauges show open breakers', () => {
  const c = compileCluster(
    edsCluster('cb', {
      circuitBreakers: {
        thresholds: [{ priority: RoutingPriority.DEFAULT, maxConnections: 1, maxPendingRequests: 2, maxRequests: 1, maxRetries: 0, trackRemaining: true }],
      },
    }),
    testOpts(),
  );
  const cb = c.circuitBreaker('default');
  assert.equal(cb.tryAcquire('connections'), true);
  assert.equal(cb.tryAcquire('connections'), false);
  assert.equal(c.stats.upstream_cx_overflow, 1);
  assert.equal(cb.tryAcquire('pending'), true);
  assert.equal(cb.tryAcquire('pending'), true);
  assert.equal(cb.tryAcquire('pending'), false);
  assert.equal(cb.tryAcquire('requests'), true);
  assert.equal(cb.tryAcquire('requests'), false);
  assert.equal(c.stats.upstream_rq_pending_overflow, 2, 'pending and request overflows both count here (Envoy)');
  assert.equal(cb.tryAcquire('retries'), false);
  const gauges = new Map<string, number>();
  c.stats.forEach((name, value, kind) => {
    if (name.startsWith('circuit_breakers.default.')) {
      assert.equal(kind, 'gauge');
      gauges.set(name.slice('circuit_breakers.default.'.length), value);
    }
  });
  assert.deepEqual(Object.fromEntries(gauges), {
    cx_open: 1,
    cx_pool_open: 0,
    rq_open: 1,
    rq_pending_open: 1,
    rq_retry_open: 1,
    remaining_cx: 0,
    remaining_cx_pools: Number.MAX_SAFE_INTEGER,
    remaining_pending: 0,
    remaining_retries: 0,
    remaining_rq: 0,
  });
  cb.release('pending');
  assert.equal(cb.canCreate('pending'), true);
  assert.equal(cb.tryAcquire('pending'), true);
  assert.equal(c.stats.get('upstream_rq_pending_overflow'), 2);
});

test('high priority has its own thresholds', () => {
  const c = compileCluster(edsCluster('cb-high', { circuitBreakers: { thresholds: [{ priority: RoutingPriority.HIGH, maxRequests: 1 }] } }), testOpts());
  assert.equal(c.circuitBreaker('high').max('requests'), 1);
  assert.equal(c.circuitBreaker('default').max('requests'), 1024);
  assert.equal(c.circuitBreaker('high').tryAcquire('requests'), true);
  assert.equal(c.circuitBreaker('default').tryAcquire('requests'), true);
});

test('retry budget: budget_percent (20%) of active + pending requests, at least min_retry_concurrency (3)', () => {
  const c = compileCluster(edsCluster('budget', { circuitBreakers: { thresholds: [{ maxRetries: 1, retryBudget: {} }] } }), testOpts());
  const cb = c.circuitBreaker();
  assert.equal(cb.max('retries'), 3, 'max_retries is replaced by the budget');
  for (let i = 0; i < 40; i++) cb.tryAcquire('requests');
  for (let i = 0; i < 10; i++) cb.tryAcquire('pending');
  assert.equal(cb.max('retries'), 10, '20% of 50');
  const custom = compileCluster(edsCluster('budget2', { circuitBreakers: { thresholds: [{ retryBudget: { budgetPercent: { value: 50 }, minRetryConcurrency: 1 } }] } }), testOpts());
  assert.equal(custom.circuitBreaker().max('retries'), 1);
  custom.circuitBreaker().tryAcquire('requests');
  custom.circuitBreaker().tryAcquire('requests');
  custom.circuitBreaker().tryAcquire('requests');
  custom.circuitBreaker().tryAcquire('requests');
  assert.equal(custom.circuitBreaker().max('retries'), 2);
});

test('per-host max_connections: canCreateConnection checks the host, then the cluster', () => {
  const { cluster } = edsRuntime('perhost', { circuitBreakers: { thresholds: [{ maxConnections: 5 }], perHostThresholds: [{ maxConnections: 2 }] } }, [{ hosts: ['10.0.0.1:80'] }]);
  const h = hostByKey(cluster, '10.0.0.1:80');
  const cb = cluster.circuitBreaker();
  assert.equal(cb.canCreateConnection(h), true);
  h.stats.cx_active = 2;
  assert.equal(cb.canCreateConnection(h), false);
  h.stats.cx_active = 0;
  for (let i = 0; i < 5; i++) cb.tryAcquire('connections');
  assert.equal(cb.canCreateConnection(h), false, 'the cluster limit');
});
