// Route precedence (src/api/precedence.ts) over hand-built models: the rule must not depend on how a family
// translates, only on the model.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { emptyModel } from '../../src/api/defaults.js';
import type { ApiFamily, MeshModel, RouteTable } from '../../src/api/model.js';
import { allRouteConflicts, compareCreation, effectiveRoutes, isVisibleTo } from '../../src/api/precedence.js';

const KIND: Record<ApiFamily, string> = { istio: 'VirtualService', 'gateway-api': 'HTTPRoute', smi: 'TrafficSplit', weft: 'Route', kubernetes: 'Service' };

function table(family: ApiFamily, namespace: string, name: string, host: string, extra: Partial<RouteTable> & { created?: string } = {}): RouteTable {
  const { created, ...rest } = extra;
  return {
    hosts: [host],
    namespace,
    gateways: ['mesh'],
    exportTo: ['*'],
    ports: [],
    http: [],
    tcp: [],
    tls: [],
    origin: { family, kind: KIND[family], apiVersion: 'x/v1', namespace, name, ...(created ? { created } : {}) },
    ...rest,
  };
}

function model(...routes: RouteTable[]): MeshModel {
  const m = emptyModel();
  m.routes.push(...routes);
  m.services.push({
    hostname: 'reviews.shop.svc.cluster.local',
    namespace: 'shop',
    name: 'reviews',
    ports: [{ name: 'http', port: 9080, protocol: 'HTTP', protocolSource: 'name' }],
    addresses: [],
    resolution: 'STATIC',
    location: 'MESH_INTERNAL',
    selector: { app: 'reviews' },
    exportTo: [],
    labels: {},
    endpoints: [],
    subjectAltNames: [],
    origin: { family: 'kubernetes', kind: 'Service', apiVersion: 'v1', namespace: 'shop', name: 'reviews' },
  });
  return m;
}

const H = 'reviews.shop.svc.cluster.local';
const names = (ts: RouteTable[] | undefined) => (ts ?? []).map((t) => `${t.origin.kind}/${t.origin.namespace}/${t.origin.name}`);

describe('across families', () => {
  test('Gateway API beats Istio beats SMI, whatever the creation times', () => {
    const vs = table('istio', 'shop', 'vs', H, { created: '2020-01-01T00:00:00Z' });
    const ts = table('smi', 'shop', 'ts', H, { created: '2019-01-01T00:00:00Z' });
    const hr = table('gateway-api', 'shop', 'hr', H, { created: '2024-01-01T00:00:00Z' });
    const r = effectiveRoutes(model(vs, ts, hr));
    assert.deepEqual(names(r.byHost.get(H)), ['HTTPRoute/shop/hr']);
    const fam = r.conflicts.filter((c) => c.kind === 'family');
    assert.equal(fam.length, 1);
    assert.deepEqual(names(fam[0]!.losers), ['VirtualService/shop/vs', 'TrafficSplit/shop/ts']);
    assert.match(fam[0]!.reason, /Gateway API wins over Istio and SMI/);
    const r2 = effectiveRoutes(model(vs, ts));
    assert.deepEqual(names(r2.byHost.get(H)), ['VirtualService/shop/vs']);
  });

  test('a port-restricted winner still takes the whole host, and the reason says so', () => {
    const hr = table('gateway-api', 'shop', 'hr', H, { ports: [9080] });
    const vs = table('istio', 'shop', 'vs', H);
    const r = effectiveRoutes(model(vs, hr));
    assert.deepEqual(names(r.byHost.get(H)), ['HTTPRoute/shop/hr']);
    assert.match(r.conflicts[0]!.reason, /bind only port 9080/);
  });

  test('different hosts and different gateways do not conflict', () => {
    const vs = table('istio', 'shop', 'vs', 'ratings.shop.svc.cluster.local');
    const hr = table('gateway-api', 'shop', 'hr', H);
    const gwVs = table('istio', 'shop', 'edge', H, { gateways: ['shop/ingress'] });
    const r = effectiveRoutes(model(vs, hr, gwVs));
    assert.deepEqual(r.conflicts, []);
    assert.deepEqual(names(effectiveRoutes(model(vs, hr, gwVs), { gateway: 'shop/ingress' }).byHost.get(H)), ['VirtualService/shop/edge']);
  });
});

describe('Istio VirtualServices', () => {
  test('mesh: the oldest wins alone; ties go by name then namespace; a missing timestamp is newest', () => {
    const a = table('istio', 'shop', 'b-older', H, { created: '2021-01-01T00:00:00Z' });
    const b = table('istio', 'shop', 'a-newer', H, { created: '2022-01-01T00:00:00Z' });
    const c = table('istio', 'shop', 'a-none', H);
    const r = effectiveRoutes(model(c, b, a));
    assert.deepEqual(names(r.byHost.get(H)), ['VirtualService/shop/b-older']);
    const dup = r.conflicts.find((x) => x.kind === 'duplicate')!;
    assert.deepEqual(names(dup.losers), ['VirtualService/shop/a-newer', 'VirtualService/shop/a-none']);
    const r2 = effectiveRoutes(model(table('istio', 'x', 'zeta', H), table('istio', 'shop', 'alpha', H)));
    assert.deepEqual(names(r2.byHost.get(H)), ['VirtualService/shop/alpha']);
  });

  test('gateways: every visible VirtualService applies, merged oldest first, without conflict', () => {
    const a = table('istio', 'shop', 'a', 'shop.example.com', { gateways: ['shop/gw'], created: '2022-01-01T00:00:00Z' });
    const b = table('istio', 'shop', 'b', 'shop.example.com', { gateways: ['shop/gw'], created: '2021-01-01T00:00:00Z' });
    const r = effectiveRoutes(model(a, b), { gateway: 'shop/gw' });
    assert.deepEqual(names(r.byHost.get('shop.example.com')), ['VirtualService/shop/b', 'VirtualService/shop/a']);
    assert.deepEqual(r.conflicts, []);
  });

  test('a VirtualService private to the client namespace overrides a public one there, not elsewhere', () => {
    const pub = table('istio', 'shop', 'public', H);
    const mine = table('istio', 'web', 'mine', H, { exportTo: ['.'] });
    const inWeb = effectiveRoutes(model(pub, mine), { namespace: 'web' });
    assert.deepEqual(names(inWeb.byHost.get(H)), ['VirtualService/web/mine']);
    assert.deepEqual(inWeb.conflicts.map((c) => c.kind), ['override']);
    assert.deepEqual(names(effectiveRoutes(model(pub, mine), { namespace: 'shop' }).byHost.get(H)), ['VirtualService/shop/public']);
    assert.deepEqual(names(effectiveRoutes(model(pub, mine)).byHost.get(H)), ['VirtualService/shop/public']);
  });

  test('exportTo "~" hides a table everywhere', () => {
    const hidden = table('istio', 'shop', 'hidden', H, { exportTo: ['~'] });
    assert.equal(effectiveRoutes(model(hidden), { namespace: 'shop' }).byHost.has(H), false);
  });
});

describe('Gateway API (GAMMA)', () => {
  test('producer routes merge, oldest first by creation then namespace/name', () => {
    const a = table('gateway-api', 'shop', 'b', H, { created: '2021-01-01T00:00:00Z' });
    const b = table('gateway-api', 'shop', 'a', H, { created: '2021-01-01T00:00:00Z' });
    const c = table('gateway-api', 'shop', 'old', H, { created: '2020-01-01T00:00:00Z' });
    const r = effectiveRoutes(model(a, b, c));
    assert.deepEqual(names(r.byHost.get(H)), ['HTTPRoute/shop/old', 'HTTPRoute/shop/a', 'HTTPRoute/shop/b']);
    assert.deepEqual(r.conflicts, []);
  });

  test('consumer routes apply only in their namespace, where they replace the producer routes', () => {
    const producer = table('gateway-api', 'shop', 'producer', H);
    const consumer = table('gateway-api', 'web', 'consumer', H);
    assert.deepEqual(names(effectiveRoutes(model(producer, consumer), { namespace: 'web' }).byHost.get(H)), ['HTTPRoute/web/consumer']);
    assert.deepEqual(names(effectiveRoutes(model(producer, consumer), { namespace: 'other' }).byHost.get(H)), ['HTTPRoute/shop/producer']);
    assert.deepEqual(names(effectiveRoutes(model(producer, consumer)).byHost.get(H)), ['HTTPRoute/shop/producer']);
    // A consumer route alone does not route clients of other namespaces.
    assert.equal(effectiveRoutes(model(consumer), { namespace: 'other' }).byHost.has(H), false);
  });
});

describe('SMI', () => {
  test('two TrafficSplits for one root: the oldest wins, the other is a duplicate', () => {
    const a = table('smi', 'shop', 'a', H, { created: '2023-05-01T00:00:00Z' });
    const b = table('smi', 'shop', 'b', H, { created: '2023-01-01T00:00:00Z' });
    const r = effectiveRoutes(model(a, b));
    assert.deepEqual(names(r.byHost.get(H)), ['TrafficSplit/shop/b']);
    assert.deepEqual(names(r.conflicts[0]!.losers), ['TrafficSplit/shop/a']);
    assert.equal(r.conflicts[0]!.kind, 'duplicate');
  });
});

test('allRouteConflicts reports each conflict once, in the widest view it shows in', () => {
  const vs1 = table('istio', 'shop', 'one', H);
  const vs2 = table('istio', 'shop', 'two', H);
  const consumer = table('gateway-api', 'web', 'consumer', H);
  const vsWeb = table('istio', 'web', 'web-vs', H);
  const cs = allRouteConflicts(model(vs1, vs2, consumer, vsWeb));
  const dup = cs.filter((c) => c.kind === 'duplicate');
  assert.equal(dup.length, 1, JSON.stringify(cs.map((c) => [c.kind, c.namespace, names(c.winners), names(c.losers)])));
  assert.equal(dup[0]!.namespace, undefined);
  assert.deepEqual(names(dup[0]!.losers), ['VirtualService/shop/two', 'VirtualService/web/web-vs']);
  const fam = cs.filter((c) => c.kind === 'family');
  assert.equal(fam.length, 1);
  assert.equal(fam[0]!.namespace, 'web');
  assert.deepEqual(names(fam[0]!.winners), ['HTTPRoute/web/consumer']);
});

test('effectiveRoutes is pure: same input, same output, model untouched', () => {
  const m = model(table('istio', 'shop', 'b', H), table('istio', 'shop', 'a', H), table('gateway-api', 'shop', 'hr', H));
  const before = JSON.stringify(m);
  const r1 = effectiveRoutes(m);
  const r2 = effectiveRoutes(m);
  assert.equal(JSON.stringify(m), before);
  assert.deepEqual(names(r1.byHost.get(H)), names(r2.byHost.get(H)));
  assert.deepEqual(r1.conflicts.map((c) => c.reason), r2.conflicts.map((c) => c.reason));
});

test('helpers: visibility and creation order', () => {
  assert.equal(isVisibleTo([], 'a', 'b'), true);
  assert.equal(isVisibleTo(['.'], 'a', 'b'), false);
  assert.equal(isVisibleTo(['.'], 'a', 'a'), true);
  assert.equal(isVisibleTo(['b'], 'a', 'b'), true);
  assert.equal(isVisibleTo(['~'], 'a', 'a'), false);
  const o = (name: string, namespace: string, created?: string) => ({ family: 'istio' as const, kind: 'K', apiVersion: 'v', name, namespace, ...(created ? { created } : {}) });
  assert.ok(compareCreation(o('z', 'z', '2020-01-01T00:00:00Z'), o('a', 'a')) < 0, 'a timestamp is older than none');
  assert.ok(compareCreation(o('a', 'z'), o('b', 'a'), 'name-namespace') < 0);
  assert.ok(compareCreation(o('a', 'z'), o('b', 'a'), 'namespace-name') > 0);
});
