// Weft's own kinds: MeshConfig and LocalWorkload (schema, translation, and the reference documentation).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../../src/api/build.js';
import type { BuildResult } from '../../src/api/build.js';
import { defaultMeshSettings } from '../../src/api/defaults.js';
import type { Diagnostic } from '../../src/api/diagnostics.js';
import { allKinds } from '../../src/api/kinds/registry.js';
import { localWorkloadSpecSchema, meshConfigSpecSchema, retryPolicyFromIstio } from '../../src/api/kinds/weft.js';
import { parseConfigText } from '../../src/api/source.js';

const fixtures = fileURLToPath(new URL('../../../test/fixtures/weft/', import.meta.url));
const docsFile = fileURLToPath(new URL('../../../docs/config-reference.md', import.meta.url));

function build(text: string, file = 'test.yaml'): BuildResult {
  const parsed = parseConfigText(text, file);
  assert.deepEqual(parsed.diagnostics, [], 'the YAML parses');
  return buildModel(parsed.resources);
}

function errors(r: BuildResult): Diagnostic[] {
  return r.diagnostics.filter((d) => d.severity === 'Error');
}

function onlyError(r: BuildResult, path: string, line: number, column: number): Diagnostic {
  const errs = errors(r);
  assert.equal(errs.length, 1, `exactly one error, got: ${JSON.stringify(errs.map((e) => `${e.path}: ${e.message}`))}`);
  const e = errs[0]!;
  assert.equal(e.path, path);
  assert.equal(e.pos?.line, line, `line of ${e.message}`);
  assert.equal(e.pos?.column, column, `column of ${e.message}`);
  return e;
}

const meshConfig = (...spec: string[]) => ['apiVersion: weft.dev/v1alpha1', 'kind: MeshConfig', 'metadata: {name: mesh}', 'spec:', ...spec, ''].join('\n');
const localWorkload = (...spec: string[]) => ['apiVersion: weft.dev/v1alpha1', 'kind: LocalWorkload', 'metadata: {name: app}', 'spec:', ...spec, ''].join('\n');

describe('MeshConfig', () => {
  test('every field lands in model.mesh', () => {
    const r = build(readFileSync(fixtures + 'meshconfig.yaml', 'utf8'), 'meshconfig.yaml');
    assert.deepEqual(r.diagnostics, []);
    const { origin, ...mesh } = r.model.mesh;
    assert.deepEqual(mesh, {
      trustDomain: 'example.org',
      rootNamespace: 'mesh-system',
      outboundTrafficPolicy: 'REGISTRY_ONLY',
      defaultMtlsMode: 'STRICT',
      defaultTimeoutMs: 15000,
      defaultRetries: {
        attempts: 3,
        perTryTimeoutMs: 2000,
        retryOn: ['gateway-error', 'connect-failure', 'retriable-status-codes'],
        retriableStatusCodes: [503],
        retryRemoteLocalities: true,
      },
      enableAutoMtls: false,
      accessLogFile: '/dev/stdout',
      accessLogEncoding: 'JSON',
      tracingSampling: 10.5,
      extensionProviders: [
        { name: 'ext-authz', kind: 'envoyExtAuthzGrpc', service: 'ext-authz.auth.svc.cluster.local', port: 9000, timeoutMs: 500 },
        { name: 'zipkin', kind: 'zipkin', service: 'zipkin.observability.svc.cluster.local', port: 9411 },
        { name: 'otel', kind: 'opentelemetry', service: 'observability/otel-collector.observability.svc.cluster.local', port: 4317 },
      ],
    });
    assert.equal(origin?.kind, 'MeshConfig');
    assert.equal(origin?.family, 'weft');
  });

  test('an empty MeshConfig (no spec) keeps every default', () => {
    const r = build('apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\n');
    assert.deepEqual(r.diagnostics, []);
    const { origin, ...mesh } = r.model.mesh;
    assert.deepEqual(mesh, defaultMeshSettings());
    assert.equal(origin?.name, 'mesh');
  });

  test('fields left out keep their defaults', () => {
    const r = build(meshConfig('  outboundTrafficPolicy: {mode: ALLOW_ANY}', '  defaultPolicies:', '    timeout: 0s'));
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.model.mesh.outboundTrafficPolicy, 'ALLOW_ANY');
    assert.equal(r.model.mesh.defaultTimeoutMs, 0);
    assert.deepEqual(r.model.mesh.defaultRetries, defaultMeshSettings().defaultRetries);
    assert.equal(r.model.mesh.trustDomain, 'cluster.local');
    assert.equal(r.model.mesh.extensionProviders, undefined);
  });

  test('MeshConfig is cluster-scoped and translated before anything else', () => {
    const def = allKinds.find((k) => k.group === 'weft.dev' && k.kind === 'MeshConfig')!;
    assert.equal(def.namespaced, false);
    assert.equal(def.order, 0);
    assert.ok(allKinds.every((k) => k === def || (k.order ?? 50) > 0), 'no other kind translates at order 0 or before');
    const r = build('apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh, namespace: weft-system}\n');
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'metadata.namespace']]);
  });

  test('a second MeshConfig is an error and the first applies', () => {
    const text = `${meshConfig('  trustDomain: first.org')}---\napiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: other}\nspec:\n  trustDomain: second.org\n`;
    const r = build(text, 'two.yaml');
    const e = onlyError(r, 'metadata.name', 9, 12);
    assert.equal(e.code, 'WFT1009');
    assert.match(e.message, /more than one MeshConfig: "other" is ignored, "mesh" \(two.yaml:1\) applies/);
    assert.equal(r.model.mesh.trustDomain, 'first.org');
  });

  test('retryOn is read as Istio reads it', () => {
    assert.deepEqual(retryPolicyFromIstio({ attempts: 0, retryOn: '5xx' }), { attempts: 0, retryOn: [], retriableStatusCodes: [] }, 'attempts 0 disables retries');
    assert.deepEqual(retryPolicyFromIstio({ attempts: 4, retryOn: ' 5xx , 502,599,retriable-status-codes' }), {
      attempts: 4,
      retryOn: ['5xx', '599', 'retriable-status-codes'],
      retriableStatusCodes: [502],
    }, '599 is not an HTTP status Go knows, so it stays a condition');
    const d = retryPolicyFromIstio({ attempts: 1 });
    assert.deepEqual(d.retryOn, ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes']);
    assert.deepEqual(d.retriableStatusCodes, [503]);
  });

  const bad: Array<[string, string[], string, number, number, RegExp]> = [
    ['unknown field', ['  trustdomain: a.org'], 'spec.trustdomain', 5, 3, /unknown field "trustdomain"/],
    ['outbound mode enum', ['  outboundTrafficPolicy: {mode: DENY}'], 'spec.outboundTrafficPolicy.mode', 5, 27, /"ALLOW_ANY", "REGISTRY_ONLY"/],
    ['outbound mode required', ['  outboundTrafficPolicy: {}'], 'spec.outboundTrafficPolicy.mode', 5, 26, /required field missing \(expected one of "ALLOW_ANY", "REGISTRY_ONLY"\)/],
    ['mtls mode enum', ['  defaultPolicies:', '    mtls: {mode: UNSET}'], 'spec.defaultPolicies.mtls.mode', 6, 12, /"DISABLE", "PERMISSIVE", "STRICT"/],
    ['bad timeout', ['  defaultPolicies:', '    timeout: 10'], 'spec.defaultPolicies.timeout', 6, 5, /expected string/],
    ['negative attempts', ['  defaultPolicies:', '    retries: {attempts: -1}'], 'spec.defaultPolicies.retries.attempts', 6, 15, />= 0/],
    ['sampling range', ['  tracing: {sampling: 101}'], 'spec.tracing.sampling', 5, 13, /0-100/],
    ['bad root namespace', ['  rootNamespace: Weft_System'], 'spec.rootNamespace', 5, 3, /DNS-1123 label/],
    ['bad trust domain', ['  trustDomain: "spiffe://x"'], 'spec.trustDomain', 5, 3, /SPIFFE trust domain/],
    ['access log encoding', ['  accessLogEncoding: text'], 'spec.accessLogEncoding', 5, 3, /"TEXT", "JSON"/],
    ['provider without a type', ['  extensionProviders:', '  - name: x'], 'spec.extensionProviders[0]', 6, 5, /exactly one of envoyExtAuthzGrpc, zipkin, opentelemetry/],
    ['provider with two types', ['  extensionProviders:', '  - name: x', '    zipkin: {service: z.svc, port: 9411}', '    opentelemetry: {service: o.svc, port: 4317}'], 'spec.extensionProviders[0]', 6, 5, /zipkin and opentelemetry/],
    ['provider service syntax', ['  extensionProviders:', '  - name: x', '    zipkin: {service: "a/b/c", port: 9411}'], 'spec.extensionProviders[0].zipkin.service', 7, 14, /namespace\/host/],
    ['duplicate provider names', ['  extensionProviders:', '  - {name: x, zipkin: {service: z, port: 1}}', '  - {name: x, zipkin: {service: z, port: 1}}'], 'spec.extensionProviders[1].name', 7, 6, /duplicate extension provider name "x"/],
  ];
  for (const [what, spec, path, line, column, message] of bad) {
    test(`rejects: ${what}`, () => {
      const r = build(meshConfig(...spec));
      const e = onlyError(r, path, line, column);
      assert.match(e.message, message);
      assert.deepEqual(r.model.mesh, defaultMeshSettings(), 'an invalid MeshConfig changes nothing');
    });
  }
});

describe('LocalWorkload', () => {
  test('becomes a local workload and a workload template; `service` adds the Service selector to the labels', () => {
    const r = build(readFileSync(fixtures + 'localworkloads.yaml', 'utf8'), 'localworkloads.yaml');
    assert.deepEqual(r.diagnostics, []);
    const [reviews, ratings] = r.model.localWorkloads;
    assert.ok(reviews && ratings);
    const { origin, ...rest } = reviews;
    assert.deepEqual(rest, {
      name: 'reviews-v1',
      namespace: 'shop',
      command: ['node', 'reviews.js', '--color=blue'],
      cwd: './services/reviews',
      env: { LOG_LEVEL: 'debug' },
      ports: [
        { name: 'http', port: 0, protocol: 'HTTP' },
        { name: 'admin', port: 0, protocol: 'TCP' },
      ],
      labels: { version: 'v1', app: 'reviews' },
      serviceAccount: 'reviews',
      replicas: 2,
      upstreams: [
        { name: 'ratings', host: 'ratings.shop.svc.cluster.local', port: 9080 },
        { name: 'payments', host: 'payments.example.com', port: 443 },
      ],
      locality: 'eu-west/eu-west-1a',
      capture: 'transparent',
    });
    assert.equal(origin.kind, 'LocalWorkload');
    // Defaults: namespace default, serviceAccount default, replicas 1, capture explicit, protocol from the port name.
    assert.equal(ratings.namespace, 'default');
    assert.equal(ratings.serviceAccount, 'default');
    assert.equal(ratings.replicas, 1);
    assert.equal(ratings.capture, 'explicit');
    assert.deepEqual(ratings.env, {});
    assert.deepEqual(ratings.upstreams, []);
    assert.equal(ratings.cwd, undefined);
    assert.equal(ratings.locality, undefined);
    assert.deepEqual(ratings.ports, [{ name: 'http-api', port: 9080, protocol: 'HTTP' }]);

    const templates = r.model.workloads.map(({ origin: _o, ...w }) => w);
    assert.deepEqual(templates, [
      { kind: 'LocalWorkload', name: 'reviews-v1', namespace: 'shop', labels: { version: 'v1', app: 'reviews' }, ports: { http: 0, admin: 0 }, serviceAccount: 'reviews', locality: 'eu-west/eu-west-1a' },
      { kind: 'LocalWorkload', name: 'ratings', namespace: 'default', labels: { app: 'ratings' }, ports: { 'http-api': 9080 }, serviceAccount: 'default' },
    ]);
  });

  test('a port protocol is case-insensitive; without one the name decides (Istio naming)', () => {
    const r = build(localWorkload('  command: [app]', '  ports:', '  - {name: api, port: 8080, protocol: grpc}', '  - {name: redis, port: 6379}', '  - {name: web, port: 8081}'));
    assert.deepEqual(r.diagnostics, []);
    assert.deepEqual(r.model.localWorkloads[0]!.ports.map((p) => p.protocol), ['GRPC', 'Redis', 'UNKNOWN']);
  });

  test('replicas may be 0', () => {
    const r = build(localWorkload('  command: [app]', '  replicas: 0', '  ports: [{name: http, port: 8080}]'));
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.model.localWorkloads[0]!.replicas, 0);
  });

  const bad: Array<[string, string[], string, number, number, RegExp]> = [
    ['command missing', ['  replicas: 1'], 'spec.command', 5, 3, /required field missing/],
    ['empty command', ['  command: []'], 'spec.command', 5, 3, /non-empty list/],
    ['empty program', ['  command: [""]'], 'spec.command', 5, 3, /must not be empty/],
    ['unknown field', ['  command: [app]', '  image: nginx'], 'spec.image', 6, 3, /unknown field "image"/],
    ['negative replicas', ['  command: [app]', '  replicas: -1'], 'spec.replicas', 6, 3, />= 0/],
    ['fractional replicas', ['  command: [app]', '  replicas: 1.5'], 'spec.replicas', 6, 3, /expected int, got number 1.5/],
    ['fixed port with several replicas', ['  command: [app]', '  replicas: 3', '  ports: [{name: http, port: 8080}]'], 'spec.ports[0].port', 7, 24, /use port: 0.*\$PORT_HTTP/],
    ['duplicate port name', ['  command: [app]', '  ports: [{name: http, port: 1}, {name: http, port: 2}]'], 'spec.ports[1].name', 6, 35, /duplicate port name/],
    ['duplicate port number', ['  command: [app]', '  ports: [{name: a, port: 1}, {name: b, port: 1}]'], 'spec.ports[1].port', 6, 41, /duplicate port 1/],
    ['port range', ['  command: [app]', '  ports: [{name: a, port: 65536}]'], 'spec.ports[0].port', 6, 21, /0 \(assigned at start\) or 1-65535/],
    ['unknown protocol', ['  command: [app]', '  ports: [{name: a, port: 1, protocol: quic}]'], 'spec.ports[0].protocol', 6, 30, /protocol must be one of tcp, udp, grpc/],
    ['bad port name', ['  command: [app]', '  ports: [{name: HTTP, port: 1}]'], 'spec.ports[0].name', 6, 12, /IANA_SVC_NAME/],
    ['capture enum', ['  command: [app]', '  capture: iptables'], 'spec.capture', 6, 3, /"explicit", "transparent"/],
    ['env name', ['  command: [app]', '  env: {"1X": y}'], 'spec.env["1X"]', 6, 9, /"1X" is not an environment variable name/],
    ['env set by the runtime', ['  command: [app]', '  ports: [{name: http, port: 8080}]', '  env: {PORT_HTTP: "1"}'], 'spec.env.PORT_HTTP', 7, 9, /set by the runtime for port "http"/],
    ['upstream env set by the runtime', ['  command: [app]', '  upstreams: [{name: db, host: db, port: 5432}]', '  env: {DB_ADDR: x}'], 'spec.env.DB_ADDR', 7, 9, /upstream "db"/],
    ['upstream port required', ['  command: [app]', '  upstreams: [{name: db, host: db}]'], 'spec.upstreams[0].port', 6, 15, /required field missing/],
    ['duplicate upstream', ['  command: [app]', '  upstreams: [{name: db, host: a, port: 1}, {name: db, host: b, port: 2}]'], 'spec.upstreams[1].name', 6, 46, /duplicate upstream name/],
    ['subzone without zone', ['  command: [app]', '  locality: {region: r, subzone: s}'], 'spec.locality.subzone', 6, 25, /subzone needs a zone/],
    ['locality with "/"', ['  command: [app]', '  locality: {region: a/b}'], 'spec.locality.region', 6, 14, /must not contain "\/"/],
  ];
  for (const [what, spec, path, line, column, message] of bad) {
    test(`rejects: ${what}`, () => {
      const r = build(localWorkload(...spec));
      const e = onlyError(r, path, line, column);
      assert.match(e.message, message);
      assert.deepEqual(r.model.localWorkloads, []);
    });
  }

  const svc = (selector: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: ${selector}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n---\n`;

  test('`service` must name an existing Service with a selector', () => {
    const missing = build(localWorkload('  command: [app]', '  service: web'));
    const e = onlyError(missing, 'spec.service', 6, 3);
    assert.equal(e.code, 'WFT0101');
    assert.deepEqual(missing.model.localWorkloads, []);

    const noSelector = build('apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n---\n' + localWorkload('  command: [app]', '  service: web'));
    assert.match(onlyError(noSelector, 'spec.service', 12, 3).message, /has no selector/);
  });

  test('labels that contradict the Service selector are an error', () => {
    const r = build(svc('{app: web}') + localWorkload('  command: [app]', '  service: web', '  labels: {app: other}', '  ports: [{name: http, port: 8080}]'));
    assert.match(onlyError(r, 'spec.labels.app', 14, 12).message, /conflicts with the selector/);
  });

  test('a Service port the workload does not serve is a warning', () => {
    const r = build(svc('{app: web}') + localWorkload('  command: [app]', '  service: web', '  ports: [{name: http, port: 9090}]'));
    assert.deepEqual(errors(r), []);
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'spec.ports']]);
    assert.match(r.diagnostics[0]!.message, /targets port 8080/);
    const ok = build(svc('{app: web}') + localWorkload('  command: [app]', '  service: web', '  ports: [{name: http, port: 8080}]'));
    assert.deepEqual(ok.diagnostics, []);
    assert.deepEqual(ok.model.localWorkloads[0]!.labels, { app: 'web' });
  });
});

describe('docs/config-reference.md', () => {
  const doc = readFileSync(docsFile, 'utf8');

  test('documents every MeshConfig and LocalWorkload field', () => {
    for (const schema of [meshConfigSpecSchema, localWorkloadSpecSchema]) {
      for (const key of Object.keys(schema.shape)) assert.match(doc, new RegExp(`\`${key}(\`|\\.|\\[\\])`), `the reference documents ${key}`);
    }
  });

  const section = (title: string): string => {
    const start = doc.indexOf(`\n## ${title}\n`);
    assert.ok(start >= 0, `the reference has a "${title}" section`);
    const end = doc.indexOf('\n## ', start + 1);
    return doc.slice(start, end < 0 ? undefined : end);
  };

  for (const [title, min] of [['Weft kinds', 3], ['Kubernetes', 1]] as const) {
    test(`every YAML example of the ${title} section loads without errors`, () => {
      const blocks = [...section(title).matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!);
      assert.ok(blocks.length >= min, `found ${blocks.length} YAML examples`);
      blocks.forEach((yaml, i) => {
        const r = build(yaml, `example-${i}.yaml`);
        assert.deepEqual(errors(r), [], `example ${i} builds without errors:\n${yaml}`);
        assert.ok(r.resources.length > 0, `example ${i} holds resources`);
      });
    });
  }

  test('the kinds table lists the Kubernetes, SMI and Weft kinds with the versions and scope accepted', () => {
    const rows = section('Kinds at a glance')
      .split('\n')
      .filter((l) => l.startsWith('| ') && !l.startsWith('| Family') && !l.startsWith('| ---'))
      .map((l) => l.split('|').slice(1, -1).map((c) => c.trim()));
    for (const k of allKinds.filter((x) => x.family === 'kubernetes' || x.family === 'smi' || x.family === 'weft')) {
      const group = k.group === '' ? 'core (`v1`)' : `\`${k.group}\``;
      const row = rows.find((r) => r[1] === group && r[2]!.split(', ').includes(k.kind));
      assert.ok(row, `a row for ${k.group || 'core'} ${k.kind}`);
      assert.equal(row[3]!.replace(/¹/g, ''), k.versions.join(', '), `versions of ${k.kind}`);
      assert.equal(row[4], k.namespaced ? 'namespaced' : 'cluster', `scope of ${k.kind}`);
      for (const v of k.versions) {
        const marked: string = row[3]!.split(', ').find((x) => x.replace(/¹/g, '') === v)!;
        assert.equal(marked.endsWith('¹'), k.deprecatedVersions?.[v] !== undefined, `${k.kind} ${v} is marked deprecated iff it is`);
      }
    }
  });
});
