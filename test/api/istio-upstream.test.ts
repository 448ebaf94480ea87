// Config in the shapes of Istio's published task examples (Bookinfo routing, fault injection, traffic shifting,
// mirroring, egress, mTLS and authorization) loads without a diagnostic and means what the tasks say.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../../src/api/build.js';
import type { MeshModel, RouteAction } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';

const dir = fileURLToPath(new URL('../../../test/fixtures/istio/upstream/', import.meta.url));
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort();

/** Each file is applied on its own, as the tasks do (several of them redefine the same VirtualService). */
function load(file: string): MeshModel {
  const parsed = parseConfigText(readFileSync(dir + file, 'utf8'), file);
  assert.deepEqual(parsed.diagnostics, [], `${file} parses`);
  assert.ok(parsed.resources.length > 0, `${file} has resources`);
  const built = buildModel(parsed.resources);
  assert.deepEqual(built.diagnostics, [], `${file} builds without any diagnostic`);
  assert.equal(built.resources.length, parsed.resources.length, `${file}: every resource is valid`);
  return built.model;
}

const weights = (a: RouteAction) => (a.kind === 'route' ? a.destinations.map((d) => [d.subset, d.weight]) : []);

test('every upstream-shaped fixture loads with zero diagnostics', () => {
  assert.ok(files.length >= 15, `fixtures present (${files.length})`);
  for (const f of files) load(f);
});

test('traffic shifting: 80/20, 50/50 and 100% v3', () => {
  assert.deepEqual(weights(load('virtual-service-reviews-80-20.yaml').routes[0]!.http[0]!.action), [['v1', 4], ['v2', 1]]);
  assert.deepEqual(weights(load('virtual-service-reviews-50-v3.yaml').routes[0]!.http[0]!.action), [['v1', 1], ['v3', 1]]);
  assert.deepEqual(weights(load('virtual-service-reviews-v3.yaml').routes[0]!.http[0]!.action), [['v3', 1]]);
});

test('request routing: jason gets reviews v2, everyone else v1', () => {
  const [jason, rest] = load('virtual-service-reviews-test-v2.yaml').routes[0]!.http;
  assert.deepEqual(jason!.matches[0]!.headers, [{ name: 'end-user', match: { exact: 'jason' } }]);
  assert.deepEqual(weights(jason!.action), [['v2', 1]]);
  assert.deepEqual(rest!.matches, []);
  assert.deepEqual(weights(rest!.action), [['v1', 1]]);
});

test('fault injection: a 7s delay and an HTTP 500 abort for jason', () => {
  assert.deepEqual(load('virtual-service-ratings-test-delay.yaml').routes[0]!.http[0]!.fault, { delay: { fixedDelayMs: 7000, percent: 100 } });
  assert.deepEqual(load('virtual-service-ratings-test-abort.yaml').routes[0]!.http[0]!.fault, { abort: { httpStatus: 500, percent: 100 } });
});

test('timeouts and retries', () => {
  const m = load('virtual-service-reviews-timeout-retries.yaml');
  const ratings = m.routes.find((r) => r.hosts[0] === 'ratings.bookinfo.svc.cluster.local')!;
  assert.deepEqual(ratings.http[0]!.retries, { attempts: 3, perTryTimeoutMs: 2000, retryOn: ['gateway-error', 'connect-failure', 'refused-stream'], retriableStatusCodes: [] });
  const reviews = m.routes.find((r) => r.hosts[0] === 'reviews.bookinfo.svc.cluster.local')!;
  assert.equal(reviews.http[0]!.timeoutMs, 500);
});

test('Bookinfo subsets with ISTIO_MUTUAL and the ingress gateway', () => {
  const m = load('destination-rule-all-mtls.yaml');
  assert.deepEqual(m.destinationPolicies.map((p) => [p.host, p.subsets.map((s) => s.name), p.trafficPolicy?.tls?.mode]), [
    ['productpage.bookinfo.svc.cluster.local', ['v1'], 'ISTIO_MUTUAL'],
    ['reviews.bookinfo.svc.cluster.local', ['v1', 'v2', 'v3'], 'ISTIO_MUTUAL'],
    ['ratings.bookinfo.svc.cluster.local', ['v1', 'v2', 'v2-mysql', 'v2-mysql-vm'], 'ISTIO_MUTUAL'],
    ['details.bookinfo.svc.cluster.local', ['v1', 'v2'], 'ISTIO_MUTUAL'],
  ]);
  const gw = load('bookinfo-gateway.yaml');
  assert.equal(gw.gateways[0]!.name, 'bookinfo-gateway');
  assert.deepEqual(gw.routes[0]!.gateways, ['bookinfo/bookinfo-gateway']);
  assert.deepEqual(gw.routes[0]!.hosts, ['*']);
  assert.equal(gw.routes[0]!.http[0]!.matches.length, 5);
  assert.equal(load('virtual-service-all-v1.yaml').routes.length, 4);
});

test('mirroring and egress', () => {
  const mirror = load('httpbin-mirroring.yaml');
  assert.deepEqual(mirror.routes[0]!.http[0]!.mirrors, [{ host: 'httpbin.default.svc.cluster.local', subset: 'v2', percent: 100 }]);
  const egress = load('egress-service-entries.yaml');
  assert.deepEqual(egress.services.map((s) => [s.hostname, s.resolution, s.location, s.ports.map((p) => p.protocol)]), [
    ['httpbin.org', 'DNS', 'MESH_EXTERNAL', ['HTTP']],
    ['www.google.com', 'DNS', 'MESH_EXTERNAL', ['HTTPS']],
  ]);
  assert.equal(egress.routes[0]!.http[0]!.timeoutMs, 3000);
  assert.deepEqual(egress.routes[0]!.hosts, ['httpbin.org']);
});

test('mTLS and authorization', () => {
  assert.deepEqual(load('peer-authentication-strict.yaml').peerAuthentications.map((p) => [p.namespace, p.selector, p.mode]), [['istio-system', undefined, 'STRICT']]);
  const nothing = load('authorization-allow-nothing.yaml').authorizationPolicies[0]!;
  assert.equal(nothing.action, 'ALLOW');
  assert.deepEqual(nothing.rules, [], 'no rules: matches nothing, so everything is denied');
  const deny = load('authorization-deny-path.yaml').authorizationPolicies;
  assert.deepEqual(deny[0]!.rules[0]!.to, [{ methods: { values: ['GET'] }, paths: { values: ['/headers'] } }]);
  assert.equal(deny[0]!.action, 'DENY');
  assert.deepEqual(deny[1]!.rules[0]!.from, [{ principals: { values: ['cluster.local/ns/foo/sa/sleep'] } }]);
  const jwt = load('authorization-jwt.yaml');
  assert.equal(jwt.requestAuthentications[0]!.jwtRules[0]!.jwksUri, 'https://raw.githubusercontent.com/istio/istio/master/security/tools/jwt/samples/jwks.json');
  assert.deepEqual(jwt.authorizationPolicies[0]!.rules[0]!.from, [{ requestPrincipals: { values: ['testing@secure.istio.io/testing@secure.istio.io'] } }]);
  assert.deepEqual(jwt.authorizationPolicies[0]!.rules[0]!.when, [{ key: 'request.auth.claims[groups]', values: ['group1'] }]);
});
