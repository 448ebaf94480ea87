// What a proxy can see (Istio semantics): Sidecar selection (workloadSelector over namespace-wide over the
// root-namespace default), egress hosts, exportTo on services and route tables, destinations inferred from
// VirtualServices, port-bound egress listeners, outbound traffic policy, and the DestinationRule lookup order
// with merging and workloadSelector rules. Real model and registry from YAML.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { create } from '@bufbuild/protobuf';
import { buildModel } from '../../src/api/build.js';
import type { DestinationPolicy, MeshModel } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { proxyFromNode } from '../../src/controlplane/proxy.js';
import type { ProxyInfo } from '../../src/controlplane/proxy.js';
import { ServiceRegistry } from '../../src/controlplane/registry/registry.js';
import { clusterTrafficPolicy, computeScope, hostMatches, hostSubsetOf, selectSidecar } from '../../src/controlplane/translate/scope.js';
import type { ProxyScope } from '../../src/controlplane/translate/scope.js';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';

const FIXTURES = new URL('../../../test/fixtures/translate/', import.meta.url);

function load(file: string): { model: MeshModel; registry: ServiceRegistry } {
  const text = readFileSync(new URL(file, FIXTURES), 'utf8');
  const parsed = parseConfigText(text, file);
  assert.deepEqual(parsed.diagnostics, []);
  const built = buildModel(parsed.resources);
  assert.deepEqual(built.diagnostics.filter((d) => d.severity === 'Error'), []);
  const registry = new ServiceRegistry();
  registry.setModel(built.model);
  return { model: built.model, registry };
}

function proxy(namespace: string, labels: Record<string, string> = {}, type?: 'router' | 'grpc'): ProxyInfo {
  const metadata: Record<string, string | Record<string, string>> = { NAMESPACE: namespace, LABELS: labels };
  if (type === 'router') metadata['WEFT_PROXY_TYPE'] = 'router';
  if (type === 'grpc') metadata['GENERATOR'] = 'grpc';
  return proxyFromNode(create(NodeSchema, { id: `p.${namespace}`, metadata }));
}

/** `host:port,port` per visible service, sorted. */
function visible(s: ProxyScope): string[] {
  return s.services.map((x) => `${x.hostname}:${x.ports.map((p) => p.port).join(',')}`).sort();
}

const SIDECARS = 'scope-sidecars.yaml';
const RULES = 'scope-destination-rules.yaml';

describe('Sidecar scoping', () => {
  const { model, registry } = load(SIDECARS);
  const scope = (ns: string, labels?: Record<string, string>, type?: 'router' | 'grpc') => computeScope(model, registry, proxy(ns, labels, type));

  test('Sidecar selection: workloadSelector match beats the namespace-wide Sidecar, which beats the root default', () => {
    const name = (ns: string, labels?: Record<string, string>) => selectSidecar(model, proxy(ns, labels));
    assert.equal(name('frontend', { app: 'web', track: 'canary' })?.origin.name, 'canary');
    assert.equal(name('frontend', { app: 'web' })?.origin.name, 'default');
    assert.equal(name('frontend', { app: 'web' })?.namespace, 'frontend');
    assert.equal(name('backend')?.namespace, 'weft-system', 'no Sidecar in backend: the root namespace one');
    assert.equal(name('weft-system')?.namespace, 'weft-system');
    assert.equal(selectSidecar(model, proxy('frontend', {}, 'router')), undefined, 'gateways ignore Sidecars');
    assert.equal(scope('frontend', { app: 'web' }).sidecar?.origin.name, 'default');
  });

  test('egress hosts: own namespace, one named host, a wildcard host in any namespace, destinations of imported routes', () => {
    assert.deepEqual(visible(scope('frontend', { app: 'web' })), [
      'api.backend.svc.cluster.local:80,9090',
      'api.stripe.com:443,80',
      'misc.other.svc.cluster.local:80',
      'web.frontend.svc.cluster.local:80',
    ]);
    // misc is not imported by the egress hosts: it comes from the frontend VirtualService's destination.
    const s = scope('frontend', { app: 'web' });
    assert.equal(s.hostVisible('misc.other.svc.cluster.local'), true);
    assert.equal(s.hostVisible('internal.backend.svc.cluster.local'), false);
    assert.equal(s.hostVisible('charge.payments.svc.cluster.local'), false, 'payments is not imported');
    assert.equal(s.serviceFor('api.backend.svc.cluster.local')?.namespace, 'backend');
    assert.equal(s.serviceFor('nope.example.com'), undefined);
    assert.deepEqual(visible(scope('isolated')), [], '"~/*" imports nothing, not even the own namespace');
  });

  test('exportTo: "." hides a service from other namespaces, "~" from everyone, a namespace name exports only there', () => {
    const canary = visible(scope('frontend', { app: 'web', track: 'canary' }));
    assert.deepEqual(canary, [
      'api.backend.svc.cluster.local:80,9090',
      'api.stripe.com:443,80',
      'batch.isolated.svc.cluster.local:80',
      'charge.payments.svc.cluster.local:9090',
      'misc.other.svc.cluster.local:80',
      'shared.backend.svc.cluster.local:80',
      'telemetry.weft-system.svc.cluster.local:4317',
      'web.frontend.svc.cluster.local:80',
    ], 'canary Sidecar imports */*: everything exported to frontend');
    assert.ok(!canary.some((h) => h.startsWith('internal.backend')), 'exportTo "." in backend');
    assert.ok(!canary.some((h) => h.startsWith('vault.payments')), 'exportTo "~"');
    const backend = visible(scope('backend'));
    assert.ok(backend.includes('internal.backend.svc.cluster.local:80'), 'visible in its own namespace');
    assert.ok(!backend.some((h) => h.startsWith('shared.backend')), 'exported to frontend only, not to its own namespace');
    assert.ok(!visible(scope('payments')).some((h) => h.startsWith('vault.')), '"~": not even in its own namespace');
  });

  test('the root-namespace Sidecar is the mesh default, with "./" meaning the proxy namespace', () => {
    assert.deepEqual(visible(scope('backend')), [
      'api.backend.svc.cluster.local:80,9090',
      'internal.backend.svc.cluster.local:80',
      'telemetry.weft-system.svc.cluster.local:4317',
    ]);
    assert.deepEqual(visible(scope('other')), ['misc.other.svc.cluster.local:80', 'telemetry.weft-system.svc.cluster.local:4317']);
    assert.deepEqual(visible(scope('weft-system')), ['telemetry.weft-system.svc.cluster.local:4317']);
  });

  test('without any Sidecar a proxy sees everything exported to its namespace; so do gateways', () => {
    const noSidecars: MeshModel = { ...model, sidecars: [] };
    const s = computeScope(noSidecars, registry, proxy('backend'));
    assert.equal(s.sidecar, undefined);
    assert.deepEqual(visible(s), [
      'api.backend.svc.cluster.local:80,9090',
      'api.stripe.com:443,80',
      'batch.isolated.svc.cluster.local:80',
      'charge.payments.svc.cluster.local:9090',
      'internal.backend.svc.cluster.local:80',
      'misc.other.svc.cluster.local:80',
      'telemetry.weft-system.svc.cluster.local:4317',
      'web.frontend.svc.cluster.local:80',
    ]);
    const gw = scope('frontend', {}, 'router');
    assert.equal(gw.sidecar, undefined);
    assert.ok(visible(gw).includes('shared.backend.svc.cluster.local:80'));
  });

  test('an egress listener with a port keeps only that port of each service', () => {
    const s = scope('payments');
    assert.deepEqual(visible(s), [
      'api.backend.svc.cluster.local:80',
      'api.stripe.com:80',
      'batch.isolated.svc.cluster.local:80',
      'misc.other.svc.cluster.local:80',
      'web.frontend.svc.cluster.local:80',
    ]);
    assert.equal(s.hostVisible('charge.payments.svc.cluster.local'), false, 'no port 80');
    // The registry's services are not modified by the trimming.
    assert.deepEqual(registry.servicesByHost('api.backend.svc.cluster.local')[0]!.ports.map((p) => p.port), [80, 9090]);
  });

  test('outbound traffic policy: the Sidecar, else the mesh', () => {
    assert.equal(scope('payments').outboundTrafficPolicy, 'REGISTRY_ONLY');
    assert.equal(scope('frontend', { app: 'web' }).outboundTrafficPolicy, 'ALLOW_ANY');
    const locked: MeshModel = { ...model, sidecars: [], mesh: { ...model.mesh, outboundTrafficPolicy: 'REGISTRY_ONLY' } };
    assert.equal(computeScope(locked, registry, proxy('frontend')).outboundTrafficPolicy, 'REGISTRY_ONLY');
  });

  test('route tables: exported to the proxy namespace and imported by an egress listener', () => {
    const names = (s: ProxyScope) => model.routes.filter((t) => s.routeTableVisible(t)).map((t) => t.origin.name).sort();
    assert.deepEqual(names(scope('frontend', { app: 'web' })), ['web'], 'misc is in a namespace frontend does not import');
    assert.deepEqual(names(scope('frontend', { app: 'web', track: 'canary' })), ['misc', 'web'], 'api-private is exported to backend only');
    assert.deepEqual(names(scope('backend')), ['api-private']);
    assert.deepEqual(names(scope('payments')), ['misc', 'web']);
  });

  test('host matching (Istio host.Name SubsetOf / Matches)', () => {
    assert.ok(hostSubsetOf('a.example.com', '*.example.com'));
    assert.ok(hostSubsetOf('*.a.example.com', '*.example.com'));
    assert.ok(hostSubsetOf('anything', '*'));
    assert.ok(!hostSubsetOf('*.example.com', 'a.example.com'));
    assert.ok(!hostSubsetOf('example.com', '*.example.com'));
    assert.ok(hostMatches('*.example.com', 'a.example.com'), 'Matches is symmetric');
    assert.ok(hostMatches('a.example.com', '*.example.com'));
    assert.ok(hostMatches('*.example.com', '*.a.example.com'));
    assert.ok(!hostMatches('a.example.com', 'b.example.com'));
  });
});

describe('DestinationRule lookup', () => {
  const { model, registry } = load(RULES);
  const rule = (ns: string, host: string, labels?: Record<string, string>): DestinationPolicy | undefined =>
    computeScope(model, registry, proxy(ns, labels)).destinationPolicy(host);
  const API = 'api.backend.svc.cluster.local';
  const DB = 'db.backend.svc.cluster.local';
  const CACHE = 'cache.backend.svc.cluster.local';

  test('the proxy namespace first, then the service namespace, then the root namespace', () => {
    assert.equal(rule('frontend', API)?.origin.name, 'api-local', "a private rule in the client's namespace");
    assert.equal(rule('backend', API)?.origin.name, 'api-a', "the service's namespace");
    assert.equal(rule('other', API)?.origin.name, 'api-a', "other's rule is not exported to other itself");
    assert.equal(rule('payments', API)?.origin.name, 'api-a', "Istio never looks in a third namespace (other's rule)");
    assert.equal(rule('frontend', DB)?.origin.name, 'db', 'exported to frontend by name');
    assert.equal(rule('other', DB)?.origin.name, 'backend-default', 'not exported to other: the root namespace rule');
    assert.equal(rule('backend', DB)?.origin.name, 'backend-default', 'exportTo [frontend] does not include its own namespace');
    assert.equal(rule('frontend', CACHE)?.origin.name, 'backend-default', 'the most specific root-namespace wildcard');
    assert.equal(rule('weft-system', DB)?.origin.name, 'root-private', "the root namespace's private rules, for its own proxies");
    assert.equal(rule('weft-system', API)?.origin.name, 'api-a');
    assert.equal(rule('frontend', 'unknown.example.com'), undefined);
  });

  test('rules for one host in one namespace merge: oldest first, unique subsets appended, first traffic policy wins', () => {
    const merged = rule('backend', API)!;
    assert.deepEqual(merged.subsets.map((s) => [s.name, s.labels['version']]), [
      ['v1', 'v1'],
      ['v2', 'v2'],
    ], 'the duplicate v1 of api-b is dropped');
    assert.equal(merged.trafficPolicy?.loadBalancer?.simple, 'LEAST_REQUEST', "api-a's policy, not api-b's ROUND_ROBIN");
    // The model is not modified by merging.
    assert.equal(model.destinationPolicies.find((d) => d.origin.name === 'api-a')!.subsets.length, 1);
  });

  test('a workloadSelector rule applies only to the proxies it selects in its namespace, before the namespace-wide rule', () => {
    const canary = rule('frontend', API, { track: 'canary' })!;
    assert.equal(canary.origin.name, 'api-canary');
    assert.deepEqual(canary.trafficPolicy?.loadBalancer?.consistentHash, { httpHeaderName: 'x-user' });
    assert.deepEqual(canary.subsets.map((s) => s.name), ['local'], 'the namespace-wide rule merges into it');
    assert.equal(rule('frontend', API, { track: 'stable' })?.origin.name, 'api-local');
    assert.equal(rule('backend', API, { track: 'canary' })?.origin.name, 'api-a', 'never across namespaces');
  });

  test('cluster traffic policy: port-level settings replace, subset settings override field by field', () => {
    const base: DestinationPolicy = {
      host: 'x',
      namespace: 'n',
      exportTo: ['*'],
      origin: { family: 'istio', kind: 'DestinationRule', apiVersion: 'networking.istio.io/v1', namespace: 'n', name: 'x' },
      trafficPolicy: {
        loadBalancer: { simple: 'ROUND_ROBIN' },
        connectionPool: { tcp: { maxConnections: 5 } },
        tls: { mode: 'SIMPLE', subjectAltNames: [] },
        portLevelSettings: [{ port: 8080, loadBalancer: { simple: 'RANDOM' } }],
      },
      subsets: [
        { name: 'a', labels: {}, trafficPolicy: { loadBalancer: { simple: 'LEAST_REQUEST' }, portLevelSettings: [] } },
        { name: 'b', labels: {}, trafficPolicy: { portLevelSettings: [{ port: 80, outlierDetection: { splitExternalLocalOriginErrors: false, intervalMs: 1, baseEjectionTimeMs: 1, maxEjectionPercent: 1, minHealthPercent: 0 } }] } },
      ],
    };
    assert.deepEqual(clusterTrafficPolicy(base, 80), { loadBalancer: { simple: 'ROUND_ROBIN' }, connectionPool: { tcp: { maxConnections: 5 } }, tls: { mode: 'SIMPLE', subjectAltNames: [] } });
    assert.deepEqual(clusterTrafficPolicy(base, 8080), { loadBalancer: { simple: 'RANDOM' } }, 'port level: nothing inherited');
    assert.deepEqual(clusterTrafficPolicy(base, 80, 'a'), { loadBalancer: { simple: 'LEAST_REQUEST' }, connectionPool: { tcp: { maxConnections: 5 } }, tls: { mode: 'SIMPLE', subjectAltNames: [] } });
    assert.deepEqual(clusterTrafficPolicy(base, 8080, 'a'), { loadBalancer: { simple: 'LEAST_REQUEST' } });
    assert.deepEqual(
      clusterTrafficPolicy(base, 80, 'b'),
      { outlierDetection: { splitExternalLocalOriginErrors: false, intervalMs: 1, baseEjectionTimeMs: 1, maxEjectionPercent: 1, minHealthPercent: 0 } },
      "a subset's port-level settings replace every field",
    );
    assert.equal(clusterTrafficPolicy(undefined, 80), undefined);
  });
});
