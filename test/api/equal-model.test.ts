// The same traffic split written as an Istio VirtualService, an SMI TrafficSplit and a Gateway API (GAMMA)
// HTTPRoute must produce the same normalized model (origins aside).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../../src/api/build.js';
import type { RouteTable } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';

const dir = fileURLToPath(new URL('../../../test/fixtures/equal-model/', import.meta.url));

function routesFor(file: string): RouteTable[] {
  const raws = ['services.yaml', file].flatMap((f) => {
    const r = parseConfigText(readFileSync(dir + f, 'utf8'), f);
    assert.deepEqual(r.diagnostics, [], `${f} parses`);
    return r.resources;
  });
  const { model, diagnostics } = buildModel(raws);
  assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error'), [], `${file} builds without errors`);
  return model.routes;
}

/** Drops provenance (origin objects) so models from different API families compare by meaning. */
function withoutOrigins(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutOrigins);
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k, x]) => k !== 'origin' && x !== undefined).map(([k, x]) => [k, withoutOrigins(x)]));
  }
  return v;
}

test('weighted VirtualService, TrafficSplit and HTTPRoute produce equal models', () => {
  const istio = routesFor('istio.yaml');
  const smi = routesFor('smi.yaml');
  const gamma = routesFor('gateway-api.yaml');
  assert.equal(istio.length, 1);
  const expected = {
    hosts: ['reviews.bookinfo.svc.cluster.local'],
    namespace: 'bookinfo',
    gateways: ['mesh'],
    exportTo: ['*'],
    ports: [],
    tcp: [],
    tls: [],
  };
  const table = withoutOrigins(istio[0]) as Record<string, unknown>;
  for (const [k, v] of Object.entries(expected)) assert.deepEqual(table[k], v, `VirtualService table.${k}`);
  const http = table.http as Array<Record<string, unknown>>;
  assert.equal(http.length, 1);
  assert.deepEqual(http[0]!.matches, []);
  assert.deepEqual(http[0]!.action, {
    kind: 'route',
    destinations: [
      { host: 'reviews-v1.bookinfo.svc.cluster.local', port: 9080, weight: 4 },
      { host: 'reviews-v2.bookinfo.svc.cluster.local', port: 9080, weight: 1 },
    ],
  });
  assert.deepEqual(withoutOrigins(smi), withoutOrigins(istio), 'SMI TrafficSplit model equals the VirtualService model');
  assert.deepEqual(withoutOrigins(gamma), withoutOrigins(istio), 'GAMMA HTTPRoute model equals the VirtualService model');
});

test('the equality is not vacuous: a different split gives a different model', () => {
  const raws = ['services.yaml', 'istio.yaml'].flatMap((f) => parseConfigText(readFileSync(dir + f, 'utf8').replace('weight: 20', 'weight: 30').replace('weight: 80', 'weight: 70'), f).resources);
  const other = buildModel(raws).model.routes;
  assert.notDeepEqual(withoutOrigins(other), withoutOrigins(routesFor('istio.yaml')));
});
