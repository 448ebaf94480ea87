// SMI: TrafficSplit v1alpha1–v1alpha4, HTTPRouteGroup/TCPRoute v1alpha1–v1alpha4, UDPRoute v1alpha4,
// TrafficTarget v1alpha2–v1alpha3. Per-version shapes, quantities, translation into routes and authorization.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RE2JS } from 're2js';
import { buildModel } from '../../src/api/build.js';
import type { BuildResult } from '../../src/api/build.js';
import type { Diagnostic } from '../../src/api/diagnostics.js';
import { fullMatchPathRegex, parseQuantityNanos, quantitiesToIntegers } from '../../src/api/kinds/smi.js';
import type { AuthorizationPolicy, HttpRoute, RouteTable } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';

const upstream = fileURLToPath(new URL('../../../test/fixtures/smi/upstream/', import.meta.url));

function build(text: string, file = 'test.yaml'): BuildResult {
  const parsed = parseConfigText(text, file);
  assert.deepEqual(parsed.diagnostics, [], 'the YAML parses');
  return buildModel(parsed.resources);
}

function fixture(name: string): BuildResult {
  return build(readFileSync(upstream + name, 'utf8'), name);
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

/** A route table without provenance, to compare by meaning. */
function plain<T>(v: T): T {
  return JSON.parse(JSON.stringify(v, (k, x) => (k === 'origin' ? undefined : x))) as T;
}

function table(r: BuildResult, name: string): RouteTable {
  const t = r.model.routes.find((x) => x.origin.name === name);
  assert.ok(t, `a route table from ${name}`);
  return t;
}

const split = (version: string, ...spec: string[]) =>
  [`apiVersion: split.smi-spec.io/${version}`, 'kind: TrafficSplit', 'metadata: {name: s, namespace: shop}', 'spec:', ...spec, ''].join('\n');

const weightsOf = (route: HttpRoute) => (route.action.kind === 'route' ? route.action.destinations.map((d) => [d.host, d.weight]) : []);
const emptyOps = { request: { set: {}, add: {}, remove: [] }, response: { set: {}, add: {}, remove: [] } };

describe('upstream examples', () => {
  const files = readdirSync(upstream).filter((f) => f.endsWith('.yaml')).sort();
  test('there is an example file per API and version', () => {
    assert.deepEqual(files, [
      'traffic-access-v1alpha2.yaml',
      'traffic-access-v1alpha3.yaml',
      'traffic-specs-v1alpha1.yaml',
      'traffic-specs-v1alpha2.yaml',
      'traffic-specs-v1alpha3.yaml',
      'traffic-specs-v1alpha4.yaml',
      'traffic-split-v1alpha1.yaml',
      'traffic-split-v1alpha2.yaml',
      'traffic-split-v1alpha3.yaml',
      'traffic-split-v1alpha4.yaml',
    ]);
  });
  for (const f of files) {
    test(`${f} loads without errors or warnings`, () => {
      const r = fixture(f);
      assert.ok(r.resources.length > 0);
      assert.deepEqual(r.diagnostics.filter((d) => d.severity !== 'Info'), []);
      // Only deprecation notes, and only for versions the latest SMI CRDs no longer serve.
      for (const d of r.diagnostics) assert.equal(d.code, 'WFT1007');
      const latest = /split-v1alpha4|specs-v1alpha4|access-v1alpha3/.test(f);
      assert.equal(r.diagnostics.length === 0, latest, `${f}: deprecation notes only for old versions`);
    });
  }
});

describe('Kubernetes quantities', () => {
  test('parse into nano-units', () => {
    assert.equal(parseQuantityNanos('1'), 1_000_000_000n);
    assert.equal(parseQuantityNanos('500m'), 500_000_000n);
    assert.equal(parseQuantityNanos('1.5'), 1_500_000_000n);
    assert.equal(parseQuantityNanos('.5'), 500_000_000n);
    assert.equal(parseQuantityNanos('2k'), 2_000_000_000_000n);
    assert.equal(parseQuantityNanos('1Ki'), 1024_000_000_000n);
    assert.equal(parseQuantityNanos('1e3'), 1_000_000_000_000n);
    assert.equal(parseQuantityNanos('1E'), 10n ** 27n, 'E alone is the exa suffix, not an exponent');
    assert.equal(parseQuantityNanos('100u'), 100_000n);
    assert.equal(parseQuantityNanos('1n'), 1n);
    assert.equal(parseQuantityNanos('0.1n'), 1n, 'precision below 1n rounds up, as Kubernetes does');
    assert.equal(parseQuantityNanos(0.25), 250_000_000n, 'a JSON number is read as its decimal text');
    assert.equal(parseQuantityNanos('-1'), -1_000_000_000n);
    for (const bad of ['', 'abc', '1x', '1.2.3', '5 m', 'm', '1Kb', '0x10']) assert.equal(parseQuantityNanos(bad), undefined, bad);
  });
  test('become the smallest whole numbers of the same decimal scale', () => {
    assert.deepEqual(quantitiesToIntegers([500_000_000n, 1_000_000_000n]), [5, 10]);
    assert.deepEqual(quantitiesToIntegers([0n, 0n]), [0, 0]);
    assert.equal(quantitiesToIntegers([10n ** 30n, 1n]), undefined);
  });
});

describe('TrafficSplit', () => {
  const services = [
    'apiVersion: v1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}, {name: tcp-db, port: 5432}, {name: dns, port: 53, protocol: UDP}]\n---\n',
  ].join('');

  test('v1alpha1 quantity weights keep their ratio ("500m" and "1" are 1:2)', () => {
    const r = build(split('v1alpha1', '  service: web', '  backends:', '  - {service: web-v1, weight: 500m}', '  - {service: web-v2, weight: "1"}'));
    assert.deepEqual(r.diagnostics.filter((d) => d.severity !== 'Info'), []);
    assert.deepEqual(weightsOf(table(r, 's').http[0]!), [
      ['web-v1.shop.svc.cluster.local', 1],
      ['web-v2.shop.svc.cluster.local', 2],
    ]);
  });

  test('v1alpha1 accepts numbers, suffixes and exponents', () => {
    const r = build(split('v1alpha1', '  service: web', '  backends:', '  - {service: a, weight: 1k}', '  - {service: b, weight: 500}', '  - {service: c, weight: 0.25}', '  - {service: d, weight: 25e1}'));
    assert.deepEqual(errors(r), []);
    assert.deepEqual(weightsOf(table(r, 's').http[0]!).map(([, w]) => w), [4000, 2000, 1, 1000]);
  });

  test('v1alpha2 whole-number weights are reduced by their GCD', () => {
    const r = build(split('v1alpha2', '  service: web', '  backends:', '  - {service: web-v1, weight: 900}', '  - {service: web-v2, weight: 100}'));
    assert.deepEqual(weightsOf(table(r, 's').http[0]!).map(([, w]) => w), [9, 1]);
  });

  test('a split without matches: one HTTP route, and a TCP route for the root service\'s non-HTTP ports', () => {
    const r = build(services + split('v1alpha4', '  service: web', '  backends:', '  - {service: web-v1, weight: 80}', '  - {service: web-v2, weight: 20}'));
    assert.deepEqual(r.diagnostics, []);
    const t = plain(table(r, 's'));
    const dests = [
      { host: 'web-v1.shop.svc.cluster.local', weight: 4 },
      { host: 'web-v2.shop.svc.cluster.local', weight: 1 },
    ];
    assert.deepEqual(t, {
      hosts: ['web.shop.svc.cluster.local'],
      namespace: 'shop',
      gateways: ['mesh'],
      exportTo: ['*'],
      ports: [],
      http: [{ matches: [], action: { kind: 'route', destinations: dests }, mirrors: [], headers: emptyOps }],
      tcp: [{ matches: [{ port: 5432, destinationSubnets: [], sniHosts: [], gateways: [] }], destinations: dests }],
      tls: [],
    });
    assert.equal(table(r, 's').origin.kind, 'TrafficSplit');
    assert.equal(table(r, 's').origin.family, 'smi');
  });

  test('with matches: matching requests are split, all others go to the root service', () => {
    const text = [
      services,
      split('v1alpha4', '  service: web', '  matches:', '  - {kind: HTTPRouteGroup, name: ab}', '  - {kind: HTTPRouteGroup, name: mobile, apiGroup: specs.smi-spec.io}', '  backends:', '  - {service: web-v1, weight: 0}', '  - {service: web-v2, weight: 100}'),
      '---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: ab, namespace: shop}\nspec:\n  matches:\n  - name: firefox\n    headers: {User-Agent: ".*Firefox.*"}\n',
      '---\napiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: mobile, namespace: shop}\nspec:\n  matches:\n  - name: api\n    pathRegex: /api\n    methods: [GET, HEAD]\n',
    ].join('');
    const r = build(text);
    assert.deepEqual(r.diagnostics, []);
    const t = plain(table(r, 's'));
    assert.deepEqual(t.tcp, [], 'non-HTTP traffic keeps going to the root service');
    assert.equal(t.http.length, 2);
    assert.deepEqual(t.http[0]!.matches, [
      { name: 'firefox', headers: [{ name: 'user-agent', match: { regex: '.*Firefox.*' } }], queryParams: [], gateways: [] },
      { name: 'api', headers: [], queryParams: [], gateways: [], path: { regex: '(?:/api).*' }, method: { exact: 'GET' } },
      { name: 'api', headers: [], queryParams: [], gateways: [], path: { regex: '(?:/api).*' }, method: { exact: 'HEAD' } },
    ]);
    assert.deepEqual(weightsOf(t.http[0]!), [
      ['web-v1.shop.svc.cluster.local', 0],
      ['web-v2.shop.svc.cluster.local', 1],
    ]);
    assert.deepEqual(t.http[1]!.matches, []);
    assert.deepEqual(weightsOf(t.http[1]!), [['web.shop.svc.cluster.local', 1]]);
  });

  test('the upstream v1alpha3 A/B example routes Firefox users to website-v2', () => {
    const r = fixture('traffic-split-v1alpha3.yaml');
    const t = plain(table(r, 'ab-test'));
    assert.deepEqual(t.http.map((h) => h.matches.map((m) => m.headers)), [[[{ name: 'user-agent', match: { regex: '.*Firefox.*' } }]], []]);
    assert.deepEqual(weightsOf(t.http[0]!), [
      ['website-v1.default.svc.cluster.local', 0],
      ['website-v2.default.svc.cluster.local', 1],
    ]);
    // The birds Services of the Ports section: grpc and rest ports are HTTP-family or sniffed.
    const canary = plain(table(r, 'canary'));
    assert.deepEqual(weightsOf(canary.http[0]!).map(([, w]) => w), [9, 1]);
  });

  test('a missing HTTPRouteGroup is an error; only the catch-all route remains', () => {
    const r = build(split('v1alpha3', '  service: web', '  matches:', '  - kind: HTTPRouteGroup', '    name: nope', '  backends:', '  - {service: web-v2, weight: 1}'));
    const e = onlyError(r, 'spec.matches[0].name', 8, 5);
    assert.equal(e.code, 'WFT0101');
    const t = plain(table(r, 's'));
    assert.equal(t.http.length, 1);
    assert.deepEqual(weightsOf(t.http[0]!), [['web.shop.svc.cluster.local', 1]]);
  });

  test('a backend that is the root service is a warning', () => {
    const r = build(split('v1alpha4', '  service: web', '  backends:', '  - {service: web-next, weight: 100}', '  - {service: web, weight: 900}'));
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'spec.backends[1].service']]);
  });

  const bad: Array<[string, string, string[], string, number, number, RegExp]> = [
    ['v1alpha1 invalid quantity', 'v1alpha1', ['  service: web', '  backends:', '  - service: a', '    weight: 5 apples'], 'spec.backends[0].weight', 8, 5, /not a Kubernetes quantity/],
    ['v1alpha1 negative quantity', 'v1alpha1', ['  service: web', '  backends:', '  - service: a', '    weight: -1'], 'spec.backends[0].weight', 8, 5, /must not be negative/],
    ['v1alpha1 weights too far apart', 'v1alpha1', ['  service: web', '  backends:', '  - {service: a, weight: 1E}', '  - {service: b, weight: 1n}'], 'spec.backends', 6, 3, /too far apart/],
    ['v1alpha1 has no matches', 'v1alpha1', ['  service: web', '  matches: []', '  backends: [{service: a, weight: "1"}]'], 'spec.matches', 6, 3, /unknown field "matches"/],
    ['v1alpha2 quantity strings', 'v1alpha2', ['  service: web', '  backends:', '  - {service: a, weight: 500m}'], 'spec.backends[0].weight', 7, 18, /expected number, got string "500m"/],
    ['v1alpha2 fractional weight', 'v1alpha2', ['  service: web', '  backends:', '  - {service: a, weight: 0.5}'], 'spec.backends[0].weight', 7, 18, /expected int/],
    ['v1alpha2 has no matches', 'v1alpha2', ['  service: web', '  matches: []', '  backends: [{service: a, weight: 1}]'], 'spec.matches', 6, 3, /unknown field "matches"/],
    ['v1alpha4 negative weight', 'v1alpha4', ['  service: web', '  backends:', '  - {service: a, weight: -5}'], 'spec.backends[0].weight', 7, 18, /must not be negative/],
    ['no backends', 'v1alpha4', ['  service: web', '  backends: []'], 'spec.backends', 6, 3, /at least one backend/],
    ['service required', 'v1alpha4', ['  backends: [{service: a, weight: 1}]'], 'spec.service', 5, 3, /required field missing/],
    ['match kind', 'v1alpha4', ['  service: web', '  matches: [{kind: TCPRoute, name: x}]', '  backends: [{service: a, weight: 1}]'], 'spec.matches[0].kind', 6, 14, /"HTTPRouteGroup"/],
    ['match apiGroup', 'v1alpha3', ['  service: web', '  matches: [{kind: HTTPRouteGroup, name: x, apiGroup: other.io}]', '  backends: [{service: a, weight: 1}]'], 'spec.matches[0].apiGroup', 6, 45, /specs.smi-spec.io/],
    ['service name syntax', 'v1alpha4', ['  service: Web_Site', '  backends: [{service: a, weight: 1}]'], 'spec.service', 5, 3, /Service name/],
    ['unknown backend field', 'v1alpha4', ['  service: web', '  backends: [{service: a, weight: 1, port: 80}]'], 'spec.backends[0].port', 6, 38, /unknown field "port"/],
  ];
  for (const [what, version, spec, path, line, column, message] of bad) {
    test(`rejects: ${what}`, () => {
      const r = build(split(version, ...spec));
      const e = onlyError(r, path, line, column);
      assert.match(e.message, message);
      assert.deepEqual(r.model.routes, []);
    });
  }
});

describe('HTTPRouteGroup, TCPRoute, UDPRoute', () => {
  const group = (version: string, ...body: string[]) => [`apiVersion: specs.smi-spec.io/${version}`, 'kind: HTTPRouteGroup', 'metadata: {name: g}', ...body, ''].join('\n');

  test('v1alpha1 and v1alpha2 keep matches at the top level; v1alpha3+ under spec', () => {
    assert.deepEqual(errors(build(group('v1alpha1', 'matches:', '- {name: a, pathRegex: /x}'))), []);
    assert.deepEqual(errors(build(group('v1alpha2', 'matches:', '- {name: a, pathRegex: /x}'))), []);
    assert.deepEqual(errors(build(group('v1alpha3', 'spec:', '  matches:', '  - {name: a, pathRegex: /x}'))), []);
    onlyError(build(group('v1alpha4', 'matches:', '- {name: a}')), 'spec', 1, 1);
    const v2 = build(group('v1alpha2', 'spec:', '  matches: []'));
    assert.deepEqual(errors(v2).map((e) => [e.path, e.pos?.line, e.pos?.column]), [
      ['matches', 1, 1],
      ['spec', 4, 1],
    ], 'v1alpha2 has no spec: its matches are missing and spec is unknown');
  });

  test('headers need v1alpha2; both the map and the list-of-maps forms are accepted', () => {
    const e = onlyError(build(group('v1alpha1', 'matches:', '- name: a', '  headers: {x: y}')), 'matches[0].headers', 6, 3);
    assert.match(e.message, /unknown field "headers"/);
    assert.deepEqual(errors(build(group('v1alpha2', 'matches:', '- name: a', '  headers:', '  - {x-a: "1"}', '  - {x-b: "2"}'))), []);
    assert.deepEqual(errors(build(group('v1alpha4', 'spec:', '  matches:', '  - name: a', '    headers: {x-a: "1", x-b: "2"}'))), []);
  });

  const bad: Array<[string, string[], string, number, number, RegExp]> = [
    ['bad regex', ['spec:', '  matches:', '  - {name: a, pathRegex: "(unclosed"}'], 'spec.matches[0].pathRegex', 6, 15, /invalid RE2/],
    ['bad header regex', ['spec:', '  matches:', '  - name: a', '    headers: {x: "a(?<name>b"}'], 'spec.matches[0].headers.x', 7, 15, /invalid RE2/],
    ['method enum', ['spec:', '  matches:', '  - {name: a, methods: [get]}'], 'spec.matches[0].methods[0]', 6, 25, /"GET"/],
    ['name required', ['spec:', '  matches:', '  - {pathRegex: /x}'], 'spec.matches[0].name', 6, 5, /required field missing/],
    ['duplicate names', ['spec:', '  matches:', '  - {name: a}', '  - {name: a}'], 'spec.matches[1].name', 7, 6, /duplicate match name "a"/],
    ['matches required', ['spec: {}'], 'spec.matches', 4, 7, /required field missing/],
  ];
  for (const [what, body, path, line, column, message] of bad) {
    test(`rejects: ${what}`, () => {
      const e = onlyError(build(group('v1alpha4', ...body)), path, line, column);
      assert.match(e.message, message);
    });
  }

  test('TCPRoute: no fields up to v1alpha3, spec.matches.ports in v1alpha4', () => {
    const tcp = (version: string, ...body: string[]) => [`apiVersion: specs.smi-spec.io/${version}`, 'kind: TCPRoute', 'metadata: {name: t}', ...body, ''].join('\n');
    assert.deepEqual(errors(build(tcp('v1alpha1'))), []);
    assert.deepEqual(errors(build(tcp('v1alpha3'))), []);
    assert.deepEqual(errors(build(tcp('v1alpha3', 'spec: {}'))), []);
    onlyError(build(tcp('v1alpha3', 'spec: {matches: {ports: [1]}}')), 'spec.matches', 4, 8);
    onlyError(build(tcp('v1alpha4', 'spec: {}')), 'spec.matches', 4, 7);
    onlyError(build(tcp('v1alpha4', 'spec: {matches: {ports: [0]}}')), 'spec.matches.ports[0]', 4, 26);
    assert.deepEqual(errors(build(tcp('v1alpha4', 'spec: {matches: {ports: []}}'))), []);
    onlyError(build(tcp('v1alpha2', 'spec: {}')), 'spec', 4, 1);
  });

  test('the full-match form of a pathRegex anchors at the start only', () => {
    const re = RE2JS.compile(fullMatchPathRegex('/api'));
    assert.equal(re.matches('/api'), true);
    assert.equal(re.matches('/api/v1/users'), true);
    assert.equal(re.matches('/v1/api'), false);
    const alt = RE2JS.compile(fullMatchPathRegex('/a|/b'));
    assert.equal(alt.matches('/b/x'), true, 'alternatives stay grouped');
    const exact = RE2JS.compile(fullMatchPathRegex('/ping$'));
    assert.equal(exact.matches('/ping'), true);
    assert.equal(exact.matches('/ping/x'), false, 'an explicit $ still anchors the end');
  });
});

describe('TrafficTarget', () => {
  function policies(r: BuildResult): AuthorizationPolicy[] {
    return plain(r.model.authorizationPolicies);
  }

  test('v1alpha3 L7 example: ALLOW for the destination service account, HTTP operations from the matches', () => {
    const r = fixture('traffic-access-v1alpha3.yaml');
    assert.deepEqual(r.diagnostics, []);
    const [metrics, api, l4] = policies(r);
    assert.deepEqual(metrics, {
      namespace: 'default',
      serviceAccount: 'api-service',
      action: 'ALLOW',
      rules: [
        {
          from: [{ serviceAccounts: [{ namespace: 'default', name: 'prometheus' }] }],
          to: [
            { protocol: 'TCP', ports: { values: ['8080'] } },
            { protocol: 'HTTP', methods: { values: ['GET'] }, pathRegexes: ['(?:/metrics).*'] },
          ],
          when: [],
        },
      ],
    });
    assert.deepEqual(api!.rules[0]!.from, [{ serviceAccounts: [{ namespace: 'default', name: 'website-service' }, { namespace: 'default', name: 'payments-service' }] }]);
    assert.deepEqual(api!.rules[0]!.to[1], { protocol: 'HTTP', pathRegexes: ['(?:/api).*'] }, 'methods ["*"] means any method');
    assert.deepEqual(l4!.rules[0]!.to, [
      { protocol: 'TCP', ports: { values: ['8301', '8302', '8300'] } },
      { protocol: 'UDP', ports: { values: ['8301', '8302'] } },
    ]);
    assert.equal(r.model.authorizationPolicies[0]!.origin.kind, 'TrafficTarget');
  });

  test('v1alpha2: destination.port restricts every operation; rules without matches allow every match', () => {
    const r = fixture('traffic-access-v1alpha2.yaml');
    const [pathSpecific, apiMetrics, apiApi] = policies(r);
    assert.deepEqual(pathSpecific!.rules[0]!.to, [{ protocol: 'HTTP', methods: { values: ['GET'] }, pathRegexes: ['(?:/metrics).*'], ports: { values: ['8080'] } }]);
    assert.deepEqual(apiMetrics!.rules[0]!.to, [{ protocol: 'HTTP', methods: { values: ['GET'] }, pathRegexes: ['(?:/metrics).*'] }]);
    assert.deepEqual(apiApi!.rules[0]!.to, [{ protocol: 'HTTP', pathRegexes: ['(?:/api).*'], ports: { values: ['8080'] } }]);

    const all = build(
      'apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec:\n  matches:\n  - {name: a, pathRegex: /a}\n  - name: b\n    headers: {X-User: "admin|root"}\n---\n' +
        'apiVersion: access.smi-spec.io/v1alpha3\nkind: TrafficTarget\nmetadata: {name: t}\nspec:\n  destination: {kind: ServiceAccount, name: svc}\n  rules: [{kind: HTTPRouteGroup, name: g}]\n  sources: [{kind: ServiceAccount, name: c, namespace: other}]\n',
    );
    assert.deepEqual(all.diagnostics, []);
    assert.deepEqual(policies(all)[0]!.rules[0], {
      from: [{ serviceAccounts: [{ namespace: 'other', name: 'c' }] }],
      to: [
        { protocol: 'HTTP', pathRegexes: ['(?:/a).*'] },
        { protocol: 'HTTP', headerRegexes: [{ name: 'x-user', regex: 'admin|root' }] },
      ],
      when: [],
    });
  });

  const target = (version: string, ...spec: string[]) =>
    [
      'apiVersion: specs.smi-spec.io/v1alpha4\nkind: HTTPRouteGroup\nmetadata: {name: g}\nspec:\n  matches: [{name: a, pathRegex: /a}]\n---',
      `apiVersion: access.smi-spec.io/${version}`,
      'kind: TrafficTarget',
      'metadata: {name: t}',
      'spec:',
      ...spec,
      '',
    ].join('\n');
  const dest = '  destination: {kind: ServiceAccount, name: svc}';
  const src = '  sources: [{kind: ServiceAccount, name: c}]';

  test('a missing route spec or match name is an error and allows nothing', () => {
    const noGroup = build(target('v1alpha3', dest, '  rules: [{kind: HTTPRouteGroup, name: missing}]', src));
    assert.equal(onlyError(noGroup, 'spec.rules[0].name', 12, 34).code, 'WFT0101');
    assert.deepEqual(policies(noGroup)[0]!.rules, [], 'the destination is still deny-by-default');

    const noMatch = build(target('v1alpha3', dest, '  rules:', '  - kind: HTTPRouteGroup', '    name: g', '    matches: [a, b]', src));
    const e = onlyError(noMatch, 'spec.rules[0].matches[1]', 15, 18);
    assert.match(e.message, /no match named "b"/);
    assert.deepEqual(policies(noMatch)[0]!.rules[0]!.to, [{ protocol: 'HTTP', pathRegexes: ['(?:/a).*'] }], 'the names that exist still apply');

    const noTcp = build(target('v1alpha3', dest, '  rules: [{kind: TCPRoute, name: t}]', src));
    onlyError(noTcp, 'spec.rules[0].name', 12, 28);
  });

  test('no sources or no rules: allows nothing, with a warning', () => {
    const noSources = build(target('v1alpha3', dest, '  rules: [{kind: HTTPRouteGroup, name: g}]', '  sources: []'));
    assert.deepEqual(noSources.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'spec.sources']]);
    assert.deepEqual(policies(noSources)[0]!.rules, []);
    const noRules = build(target('v1alpha3', dest, '  rules: []', src));
    assert.deepEqual(noRules.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'spec.rules']]);
    assert.deepEqual(policies(noRules)[0]!.rules, []);
  });

  test('the destination namespace defaults to the TrafficTarget\'s; another one is a warning', () => {
    const r = build(target('v1alpha3', '  destination: {kind: ServiceAccount, name: svc, namespace: prod}', '  rules: [{kind: HTTPRouteGroup, name: g}]', src));
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'spec.destination.namespace']]);
    const p = policies(r)[0]!;
    assert.equal(p.namespace, 'prod');
    assert.deepEqual(p.rules[0]!.from, [{ serviceAccounts: [{ namespace: 'default', name: 'c' }] }]);
  });

  const bad: Array<[string, string, string[], string, number, number, RegExp]> = [
    ['v1alpha3 has no destination.port', 'v1alpha3', ['  destination: {kind: ServiceAccount, name: svc, port: 80}', '  rules: []', src], 'spec.destination.port', 11, 50, /unknown field "port"/],
    ['v1alpha2 has no UDPRoute rules', 'v1alpha2', [dest, '  rules: [{kind: UDPRoute, name: u}]', src], 'spec.rules[0].kind', 12, 12, /"HTTPRouteGroup", "TCPRoute"/],
    ['subject kind', 'v1alpha3', [dest, '  rules: []', '  sources: [{kind: Group, name: c}]'], 'spec.sources[0].kind', 13, 14, /"ServiceAccount"/],
    ['destination required', 'v1alpha3', ['  rules: []', src], 'spec.destination', 11, 3, /required field missing/],
    ['rules required', 'v1alpha3', [dest, src], 'spec.rules', 11, 3, /required field missing/],
  ];
  for (const [what, version, spec, path, line, column, message] of bad) {
    test(`rejects: ${what}`, () => {
      const r = build(target(version, ...spec));
      const e = onlyError(r, path, line, column);
      assert.match(e.message, message);
      assert.deepEqual(r.model.authorizationPolicies, []);
    });
  }

  test('deprecated versions are accepted with an Info naming the replacement', () => {
    const r = build(target('v1alpha2', dest, '  rules: [{kind: HTTPRouteGroup, name: g}]', src));
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.code, d.hint]), [['Info', 'WFT1007', 'use access.smi-spec.io/v1alpha3']]);
    assert.equal(r.model.authorizationPolicies.length, 1);
  });
});
