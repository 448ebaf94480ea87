// Gateway API (gateway.networking.k8s.io) kinds: schemas, GAMMA mesh routes, Gateway-attached routes, precedence.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../../src/api/build.js';
import type { Diagnostic } from '../../src/api/diagnostics.js';
import type { HttpRoute, MeshModel, RouteTable } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';

const upstreamDir = fileURLToPath(new URL('../../../test/fixtures/gateway-api/upstream/', import.meta.url));

const SERVICES = `
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}, {name: admin, port: 9090}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v1, namespace: shop}
spec:
  selector: {app: reviews, version: v1}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: reviews-v2, namespace: shop}
spec:
  selector: {app: reviews, version: v2}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: grpc, namespace: shop}
spec:
  selector: {app: grpc}
  ports: [{name: grpc, port: 50051}]
`;

function build(...texts: string[]): { model: MeshModel; diagnostics: Diagnostic[] } {
  const raws = texts.flatMap((t, i) => {
    const r = parseConfigText(t, `t${i}.yaml`);
    assert.deepEqual(r.diagnostics, [], 'YAML parses');
    return r.resources;
  });
  return buildModel(raws);
}

const errors = (ds: Diagnostic[]) => ds.filter((d) => d.severity === 'Error');
const warnings = (ds: Diagnostic[]) => ds.filter((d) => d.severity === 'Warning');

function table(model: MeshModel, host: string, pred: (t: RouteTable) => boolean = () => true): RouteTable {
  const found = model.routes.filter((t) => t.hosts.includes(host) && pred(t));
  assert.equal(found.length, 1, `one route table for ${host}; got ${JSON.stringify(model.routes.map((t) => [t.hosts, t.ports, t.exportTo]))}`);
  return found[0]!;
}

/** The shape of a route without provenance, for compact assertions. */
function brief(r: HttpRoute): Record<string, unknown> {
  const { origin: _o, ...rest } = r;
  return rest;
}

const noHeaders = () => ({ request: { set: {}, add: {}, remove: [] }, response: { set: {}, add: {}, remove: [] } });
const m = (extra: Record<string, unknown>) => ({ headers: [], queryParams: [], gateways: [], ...extra });

describe('GAMMA HTTPRoute (Service parent)', () => {
  const ROUTE = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews, namespace: shop}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews, port: 9080}
  rules:
  - name: canary
    matches:
    - headers: [{name: x-canary, value: "yes"}]
    backendRefs:
    - {name: reviews-v2, port: 9080}
  - matches:
    - path: {type: PathPrefix, value: /old/}
    filters:
    - type: RequestRedirect
      requestRedirect: {scheme: https, hostname: shop.example.com, statusCode: 301}
  - matches:
    - path: {type: PathPrefix, value: /api}
    filters:
    - type: URLRewrite
      urlRewrite:
        hostname: internal.shop
        path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}
    - type: RequestMirror
      requestMirror:
        backendRef: {name: reviews-v2, port: 9080}
        fraction: {numerator: 1, denominator: 4}
    - type: RequestHeaderModifier
      requestHeaderModifier:
        set: [{name: x-env, value: prod}]
        add: [{name: x-trace, value: "1"}]
        remove: [x-debug]
    backendRefs:
    - {name: reviews-v1, port: 9080}
    timeouts: {request: 10s, backendRequest: 1500ms}
  - backendRefs:
    - {name: reviews-v1, port: 9080, weight: 80}
    - {name: reviews-v2, port: 9080, weight: 20}
    retry: {codes: [502, 503], attempts: 3, backoff: 250ms}
`;

  test('becomes one route table for the Service FQDN, gateway mesh, the parentRef port', () => {
    const { model, diagnostics } = build(SERVICES, ROUTE);
    assert.deepEqual(errors(diagnostics), []);
    assert.deepEqual(warnings(diagnostics), []);
    const t = table(model, 'reviews.shop.svc.cluster.local');
    assert.deepEqual(
      { hosts: t.hosts, namespace: t.namespace, gateways: t.gateways, exportTo: t.exportTo, ports: t.ports, tcp: t.tcp, tls: t.tls },
      { hosts: ['reviews.shop.svc.cluster.local'], namespace: 'shop', gateways: ['mesh'], exportTo: ['*'], ports: [9080], tcp: [], tls: [] },
    );
    assert.equal(t.origin.kind, 'HTTPRoute');
    assert.equal(t.origin.path, 'spec.parentRefs[0]');
  });

  test('rules are ordered by precedence: longest prefix, then headers, then the catch-all', () => {
    const t = table(build(SERVICES, ROUTE).model, 'reviews.shop.svc.cluster.local');
    // /old/ counts as /old: as long as /api, so rule order decides (rule 1 before rule 2).
    assert.deepEqual(
      t.http.map((r) => r.matches.map((x) => x.path ?? (x.headers.length ? 'headers' : 'all'))),
      [[{ exact: '/old' }], [{ prefix: '/old/' }], [{ exact: '/api' }], [{ prefix: '/api/' }], ['headers'], []],
    );
  });

  test('a weighted split is reduced by the GCD (80/20 → 4/1) and carries the retry policy', () => {
    const t = table(build(SERVICES, ROUTE).model, 'reviews.shop.svc.cluster.local');
    assert.deepEqual(brief(t.http[5]!), {
      matches: [],
      action: {
        kind: 'route',
        destinations: [
          { host: 'reviews-v1.shop.svc.cluster.local', port: 9080, weight: 4 },
          { host: 'reviews-v2.shop.svc.cluster.local', port: 9080, weight: 1 },
        ],
      },
      retries: { attempts: 3, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'retriable-status-codes'], retriableStatusCodes: [502, 503], backoff: { baseIntervalMs: 250 } },
      mirrors: [],
      headers: noHeaders(),
    });
  });

  test('a header match keeps the rule name and routes to its backend', () => {
    const t = table(build(SERVICES, ROUTE).model, 'reviews.shop.svc.cluster.local');
    assert.deepEqual(brief(t.http[4]!), {
      name: 'canary',
      matches: [m({ headers: [{ name: 'x-canary', match: { exact: 'yes' } }] })],
      action: { kind: 'route', destinations: [{ host: 'reviews-v2.shop.svc.cluster.local', port: 9080, weight: 1 }] },
      mirrors: [],
      headers: noHeaders(),
    });
    assert.equal(t.http[4]!.origin.path, 'spec.rules[0].matches[0]');
  });

  test('a redirect with a scheme and no port uses the scheme default port; status code as written', () => {
    const t = table(build(SERVICES, ROUTE).model, 'reviews.shop.svc.cluster.local');
    for (const r of [t.http[0]!, t.http[1]!]) {
      assert.deepEqual(r.action, { kind: 'redirect', redirect: { scheme: 'https', host: 'shop.example.com', derivePort: 'FROM_PROTOCOL_DEFAULT', statusCode: 301 } });
    }
  });

  test('URLRewrite ReplacePrefixMatch, mirror fraction, header modifier and timeouts', () => {
    const t = table(build(SERVICES, ROUTE).model, 'reviews.shop.svc.cluster.local');
    const common = {
      action: { kind: 'route', destinations: [{ host: 'reviews-v1.shop.svc.cluster.local', port: 9080, weight: 1 }] },
      mirrors: [{ host: 'reviews-v2.shop.svc.cluster.local', port: 9080, percent: 25 }],
      headers: { request: { set: { 'x-env': 'prod' }, add: { 'x-trace': '1' }, remove: ['x-debug'] }, response: { set: {}, add: {}, remove: [] } },
      timeoutMs: 10000,
      retries: { attempts: 2, retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'], retriableStatusCodes: [503], perTryTimeoutMs: 1500 },
    };
    // /api exactly is rewritten to /v2; /api/... has its /api/ prefix replaced by /v2/.
    assert.deepEqual(brief(t.http[2]!), { ...common, matches: [m({ path: { exact: '/api' } })], rewrite: { authority: 'internal.shop', fullPath: '/v2' } });
    assert.deepEqual(brief(t.http[3]!), { ...common, matches: [m({ path: { prefix: '/api/' } })], rewrite: { authority: 'internal.shop', prefix: '/v2/' } });
  });

  test('a producer route is public; a consumer route (other namespace) is private to its namespace', () => {
    const consumer = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: reviews-for-web, namespace: web}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, namespace: shop}]
  rules:
  - backendRefs: [{name: reviews-v2, namespace: shop, port: 9080}]
`;
    const { model } = build(SERVICES, ROUTE, consumer);
    const c = table(model, 'reviews.shop.svc.cluster.local', (t) => t.namespace === 'web');
    assert.deepEqual([c.exportTo, c.ports, c.gateways], [['.'], [], ['mesh']]);
    const p = table(model, 'reviews.shop.svc.cluster.local', (t) => t.namespace === 'shop');
    assert.deepEqual(p.exportTo, ['*']);
    assert.equal(c.http[0]!.action.kind === 'route' && c.http[0]!.action.destinations[0]!.host, 'reviews-v2.shop.svc.cluster.local');
  });

  test('hostnames of a mesh route are not used (Info)', () => {
    const { model, diagnostics } = build(SERVICES, ROUTE.replace('  parentRefs:', '  hostnames: [reviews.example.com]\n  parentRefs:'));
    assert.ok(table(model, 'reviews.shop.svc.cluster.local'));
    assert.ok(diagnostics.some((d) => d.severity === 'Info' && d.path === 'spec.hostnames'));
  });

  test('a Service parentRef without group: "" names the default Gateway API group and is not attached', () => {
    const { model, diagnostics } = build(SERVICES, ROUTE.replace('{group: "", kind: Service, name: reviews, port: 9080}', '{kind: Service, name: reviews}'));
    assert.equal(model.routes.length, 0);
    const w = warnings(diagnostics);
    assert.equal(w.length, 1);
    assert.match(w[0]!.message, /kind Service in group gateway\.networking\.k8s\.io/);
    assert.match(w[0]!.hint!, /group: ""/);
  });
});

describe('merging several routes for one parent', () => {
  const route = (name: string, created: string, rules: string) => `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ${name}, namespace: shop, creationTimestamp: "${created}"}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
${rules}`;
  const newer = route(
    'a-newer',
    '2024-05-01T00:00:00Z',
    `  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - matches: [{path: {type: Exact, value: /api/health}}]
    backendRefs: [{name: reviews-v2, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /api}, method: GET}]
    backendRefs: [{name: reviews-v2, port: 9080}]
`,
  );
  const older = route(
    'b-older',
    '2023-01-01T00:00:00Z',
    `  - matches: [{path: {type: PathPrefix, value: /api}}]
    backendRefs: [{name: reviews-v1, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /api/v1}}]
    backendRefs: [{name: reviews-v1, port: 9080}]
  - matches: [{path: {type: PathPrefix, value: /api}, headers: [{name: a, value: "1"}, {name: b, value: "2"}]}, {path: {type: PathPrefix, value: /api}, queryParams: [{name: q, value: x}]}]
    backendRefs: [{name: reviews-v1, port: 9080}]
`,
  );

  test('two HTTPRoutes become one table ordered by Gateway API precedence', () => {
    const { model, diagnostics } = build(SERVICES, newer, older);
    assert.deepEqual(errors(diagnostics), []);
    const t = table(model, 'reviews.shop.svc.cluster.local');
    const summary = t.http.map((r) => {
      const x = r.matches[0]!;
      const dest = r.action.kind === 'route' ? r.action.destinations[0]!.host.split('.')[0] : r.action.kind;
      return `${JSON.stringify(x.path)} ${x.method && 'exact' in x.method ? x.method.exact : ''}${x.headers.length ? `h${x.headers.length}` : ''}${x.queryParams.length ? `q${x.queryParams.length}` : ''} ${r.origin.name} ${dest}`;
    });
    assert.deepEqual(summary, [
      // Exact path first, whatever the route's age.
      '{"exact":"/api/health"}  a-newer reviews-v2',
      // Then the longest prefix.
      '{"exact":"/api/v1"}  b-older reviews-v1',
      '{"prefix":"/api/v1/"}  b-older reviews-v1',
      // Same prefix /api: the method match, then most headers, then most query params...
      '{"exact":"/api"} GET a-newer reviews-v2',
      '{"prefix":"/api/"} GET a-newer reviews-v2',
      '{"exact":"/api"} h2 b-older reviews-v1',
      '{"prefix":"/api/"} h2 b-older reviews-v1',
      '{"exact":"/api"} q1 b-older reviews-v1',
      '{"prefix":"/api/"} q1 b-older reviews-v1',
      // ...and on a full tie the oldest route wins.
      '{"exact":"/api"}  b-older reviews-v1',
      '{"prefix":"/api/"}  b-older reviews-v1',
      '{"exact":"/api"}  a-newer reviews-v2',
      '{"prefix":"/api/"}  a-newer reviews-v2',
    ]);
    assert.equal(t.origin.name, 'b-older', 'the table comes from the oldest route');
  });

  test('without timestamps the tie goes to namespace/name order', () => {
    const strip = (s: string) => s.replace(/, creationTimestamp: "[^"]*"/, '');
    const t = table(build(SERVICES, strip(older), strip(newer)).model, 'reviews.shop.svc.cluster.local');
    const tie = t.http.filter((r) => r.matches[0]!.path && 'exact' in r.matches[0]!.path && r.matches[0]!.path.exact === '/api' && !r.matches[0]!.method && !r.matches[0]!.headers.length && !r.matches[0]!.queryParams.length);
    assert.deepEqual(tie.map((r) => r.origin.name), ['a-newer', 'b-older']);
  });

  test('a port-specific table also holds the routes attached to the whole Service', () => {
    const portRoute = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: admin-only, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews, sectionName: admin}]
  rules:
  - matches: [{path: {type: Exact, value: /admin}}]
    backendRefs: [{name: reviews-v1, port: 9080}]
`;
    const { model, diagnostics } = build(SERVICES, older, portRoute);
    assert.deepEqual(warnings(diagnostics), []);
    const admin = table(model, 'reviews.shop.svc.cluster.local', (t) => t.ports.length > 0);
    assert.deepEqual(admin.ports, [9090], 'sectionName names the Service port "admin"');
    assert.deepEqual(admin.http[0]!.matches[0]!.path, { exact: '/admin' });
    assert.equal(admin.http.length, 1 + 8, 'plus the 8 model routes of the whole-Service route');
    const whole = table(model, 'reviews.shop.svc.cluster.local', (t) => t.ports.length === 0);
    assert.ok(whole.http.every((r) => r.origin.name === 'b-older'));
  });

  test('an unknown sectionName leaves the route unattached with a warning', () => {
    const bad = older.replace('name: reviews}]', 'name: reviews, sectionName: nope}]');
    const { model, diagnostics } = build(SERVICES, bad);
    assert.equal(model.routes.length, 0);
    const w = warnings(diagnostics);
    assert.equal(w.length, 1);
    assert.equal(w[0]!.path, 'spec.parentRefs[0].sectionName');
    assert.match(w[0]!.message, /no port named "nope"/);
  });
});

describe('rule actions', () => {
  const rule = (body: string, kind = 'HTTPRoute') => `apiVersion: gateway.networking.k8s.io/v1
kind: ${kind}
metadata: {name: r, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: reviews}]
  rules:
${body}`;
  const only = (text: string) => {
    const { model, diagnostics } = build(SERVICES, text);
    assert.deepEqual(errors(diagnostics), []);
    return { route: table(model, 'reviews.shop.svc.cluster.local').http[0]!, diagnostics };
  };

  test('no backendRefs and no redirect: 404', () => {
    assert.deepEqual(only(rule('  - matches: [{path: {type: Exact, value: /x}}]\n')).route.action, { kind: 'direct', status: 404 });
  });

  test('an HTTPRoute without rules gets the default catch-all rule, which has no backends: 404', () => {
    const { route } = only(rule('').replace('  rules:\n', ''));
    assert.deepEqual([route.matches, route.action], [[], { kind: 'direct', status: 404 }]);
  });

  test('weight 0 keeps the backend with no traffic; all weights 0: 500', () => {
    const some = only(rule('  - backendRefs: [{name: reviews-v1, port: 9080, weight: 0}, {name: reviews-v2, port: 9080, weight: 30}]\n')).route;
    assert.deepEqual(some.action, {
      kind: 'route',
      destinations: [
        { host: 'reviews-v1.shop.svc.cluster.local', port: 9080, weight: 0 },
        { host: 'reviews-v2.shop.svc.cluster.local', port: 9080, weight: 1 },
      ],
    });
    const none = only(rule('  - backendRefs: [{name: reviews-v1, port: 9080, weight: 0}, {name: reviews-v2, port: 9080, weight: 0}]\n'));
    assert.deepEqual(none.route.action, { kind: 'direct', status: 500 });
    assert.ok(none.diagnostics.some((d) => d.severity === 'Info' && d.path === 'spec.rules[0].backendRefs'));
  });

  test('backends of a kind Weft cannot route to are invalid: dropped, and all invalid gives 500', () => {
    const { route, diagnostics } = only(rule('  - backendRefs: [{group: example.com, kind: Bucket, name: b}]\n'));
    assert.deepEqual(route.action, { kind: 'direct', status: 500 });
    assert.equal(warnings(diagnostics)[0]!.path, 'spec.rules[0].backendRefs[0]');
  });

  test('an ExtensionRef filter cannot be skipped: 500 and a warning', () => {
    const { route, diagnostics } = only(rule('  - filters: [{type: ExtensionRef, extensionRef: {group: example.com, kind: Auth, name: a}}]\n    backendRefs: [{name: reviews-v1, port: 9080}]\n'));
    assert.deepEqual(route.action, { kind: 'direct', status: 500 });
    assert.equal(warnings(diagnostics)[0]!.path, 'spec.rules[0].filters[0]');
  });

  test('backendRef-level header filters go to Destination.headers', () => {
    const { route } = only(
      rule(`  - backendRefs:
    - name: reviews-v1
      port: 9080
      filters: [{type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-v, value: "1"}]}}]
`),
    );
    assert.deepEqual(route.action.kind === 'route' && route.action.destinations[0]!.headers, {
      request: { set: {}, add: {}, remove: [] },
      response: { set: { 'x-v': '1' }, add: {}, remove: [] },
    });
  });

  test('a regular-expression path and query parameter, and a repeated header name (case-insensitive) ignored', () => {
    const { route, diagnostics } = only(
      rule(`  - matches:
    - path: {type: RegularExpression, value: "/items/[0-9]+"}
      queryParams: [{type: RegularExpression, name: page, value: "\\\\d+"}]
      headers: [{name: X-A, value: "1"}, {name: x-a, value: "2"}]
    backendRefs: [{name: reviews-v1, port: 9080}]
`),
    );
    assert.deepEqual(route.matches, [m({ path: { regex: '/items/[0-9]+' }, queryParams: [{ name: 'page', match: { regex: '\\d+' } }], headers: [{ name: 'X-A', match: { exact: '1' } }] })]);
    assert.ok(diagnostics.some((d) => d.severity === 'Info' && d.path === 'spec.rules[0].matches[0].headers[1].name'));
  });

  test('a CORS filter becomes the route CORS policy (maxAge defaults to 5)', () => {
    const { route } = only(
      rule(`  - filters:
    - type: CORS
      cors: {allowOrigins: ["https://*.example.com", "https://app.example.org:8443"], allowMethods: [GET, POST], allowCredentials: true}
    backendRefs: [{name: reviews-v1, port: 9080}]
`),
    );
    assert.deepEqual(route.cors, {
      allowOrigins: [{ regex: 'https://.*\\.example\\.com' }, { exact: 'https://app.example.org:8443' }],
      allowMethods: ['GET', 'POST'],
      allowHeaders: [],
      exposeHeaders: [],
      maxAgeSeconds: 5,
      allowCredentials: true,
    });
  });

  test('a request timeout of 0s disables the timeout', () => {
    assert.equal(only(rule('  - backendRefs: [{name: reviews-v1, port: 9080}]\n    timeouts: {request: 0s}\n')).route.timeoutMs, 0);
  });
});

describe('GRPCRoute', () => {
  const GRPC = `apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: grpc, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: grpc, port: 50051}]
  rules:
  - matches:
    - method: {service: shop.v1.Cart, method: AddItem}
    - method: {service: shop.v1.Cart}
      headers: [{name: x-tenant, value: gold}]
    - method: {method: Ping}
    - method: {type: RegularExpression, service: "shop\\\\.v[0-9]+\\\\.Cart", method: "Get.*"}
    backendRefs: [{name: reviews-v1, port: 9080}]
  - backendRefs: [{name: reviews-v2, port: 9080, weight: 0}]
`;

  test('method matches become request paths (GEP-1016) ordered by service and method length', () => {
    const { model, diagnostics } = build(SERVICES, GRPC);
    assert.deepEqual(errors(diagnostics), []);
    const t = table(model, 'grpc.shop.svc.cluster.local');
    assert.deepEqual(t.ports, [50051]);
    assert.deepEqual(
      t.http.map((r) => r.matches[0] && { path: r.matches[0].path, headers: r.matches[0].headers.length }),
      [
        // The regex service is the longest, then shop.v1.Cart with a method, then without, then no service.
        { path: { regex: '/shop\\.v[0-9]+\\.Cart/Get.*' }, headers: 0 },
        { path: { exact: '/shop.v1.Cart/AddItem' }, headers: 0 },
        { path: { prefix: '/shop.v1.Cart/' }, headers: 1 },
        { path: { regex: '/.+/Ping' }, headers: 0 },
        undefined,
      ],
    );
  });

  test('a GRPCRoute whose backends all have weight 0 answers 503 (gRPC UNAVAILABLE)', () => {
    const t = table(build(SERVICES, GRPC).model, 'grpc.shop.svc.cluster.local');
    assert.deepEqual(t.http[4]!.action, { kind: 'direct', status: 503 });
  });

  test('for the same Service and port a GRPCRoute wins over an HTTPRoute (GEP-1426)', () => {
    const http = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: aaa-http, namespace: shop, creationTimestamp: "2020-01-01T00:00:00Z"}
spec:
  parentRefs: [{group: "", kind: Service, name: grpc, port: 50051}]
  rules:
  - backendRefs: [{name: reviews-v1, port: 9080}]
`;
    const { model, diagnostics } = build(SERVICES, GRPC, http);
    const t = table(model, 'grpc.shop.svc.cluster.local');
    assert.ok(t.http.every((r) => r.origin.kind === 'GRPCRoute'));
    const w = warnings(diagnostics).filter((d) => d.code === 'WFT0109');
    assert.equal(w.length, 1);
    assert.equal(w[0]!.resource?.name, 'aaa-http');
  });

  test('GRPCRoute v1alpha2 is still read, with a deprecation note', () => {
    const { model, diagnostics } = build(SERVICES, GRPC.replace('gateway.networking.k8s.io/v1', 'gateway.networking.k8s.io/v1alpha2'));
    assert.equal(table(model, 'grpc.shop.svc.cluster.local').http.length, 5);
    assert.ok(diagnostics.some((d) => d.code === 'WFT1007' && d.hint === 'use gateway.networking.k8s.io/v1'));
  });
});

describe('Gateway-attached routes', () => {
  const GATEWAY = `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weft}
spec: {controllerName: weft.dev/gateway-controller}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge, namespace: infra}
spec:
  gatewayClassName: weft
  listeners:
  - name: web
    port: 80
    protocol: HTTP
    hostname: "*.example.com"
    allowedRoutes:
      namespaces: {from: All}
  - name: secure
    port: 443
    protocol: HTTPS
    hostname: shop.example.com
    tls:
      certificateRefs: [{name: shop-cert}]
  - name: raw
    port: 9000
    protocol: TCP
`;
  const ROUTE = `apiVersion: gateway.networking.k8s.io/v1beta1
kind: HTTPRoute
metadata: {name: shop, namespace: shop}
spec:
  parentRefs: [{name: edge, namespace: infra}]
  hostnames: [shop.example.com, shop.example.org]
  rules:
  - backendRefs: [{name: reviews-v1, port: 9080}]
`;

  test('the Gateway becomes a GatewayDef with one server per listener', () => {
    const { model, diagnostics } = build(GATEWAY);
    assert.deepEqual(errors(diagnostics), []);
    assert.equal(model.gateways.length, 1);
    const { origin: _o, ...g } = model.gateways[0]!;
    assert.deepEqual(g, {
      family: 'gateway-api',
      name: 'edge',
      namespace: 'infra',
      selector: { 'gateway.networking.k8s.io/gateway-name': 'edge' },
      className: 'weft',
      servers: [
        { port: { number: 80, name: 'web', protocol: 'HTTP' }, hosts: ['*.example.com'], name: 'web' },
        { port: { number: 443, name: 'secure', protocol: 'HTTPS' }, hosts: ['shop.example.com'], name: 'secure', tls: { mode: 'SIMPLE', credentialName: 'shop-cert' } },
        { port: { number: 9000, name: 'raw', protocol: 'TCP' }, hosts: ['*'], name: 'raw' },
      ],
    });
  });

  test('a route attaches to the listeners that accept it, with the intersected hostnames', () => {
    const { model, diagnostics } = build(SERVICES, GATEWAY, ROUTE);
    assert.deepEqual(errors(diagnostics), []);
    assert.deepEqual(warnings(diagnostics), []);
    // web (from: All) accepts shop.example.com (matches *.example.com; shop.example.org does not);
    // secure (from: Same) does not accept a route from namespace shop; raw is TCP.
    assert.deepEqual(
      model.routes.map((t) => ({ hosts: t.hosts, gateways: t.gateways, ports: t.ports, namespace: t.namespace, exportTo: t.exportTo })),
      [{ hosts: ['shop.example.com'], gateways: ['infra/edge'], ports: [80], namespace: 'infra', exportTo: ['*'] }],
    );
    assert.deepEqual(model.routes[0]!.http[0]!.action, { kind: 'route', destinations: [{ host: 'reviews-v1.shop.svc.cluster.local', port: 9080, weight: 1 }] });
  });

  test('a route without hostnames takes the listener hostname; sectionName selects the listener', () => {
    const r = ROUTE.replace('  hostnames: [shop.example.com, shop.example.org]\n', '').replace('namespace: shop}', 'namespace: infra}').replace('{name: edge, namespace: infra}', '{name: edge, sectionName: secure}');
    const { model, diagnostics } = build(SERVICES, GATEWAY, r);
    assert.deepEqual(warnings(diagnostics), []);
    assert.deepEqual(model.routes.map((t) => [t.hosts, t.ports]), [[['shop.example.com'], [443]]]);
  });

  test('a route no listener accepts is not attached and says why', () => {
    const r = ROUTE.replace('{name: edge, namespace: infra}', '{name: edge, namespace: infra, sectionName: secure}');
    const { model, diagnostics } = build(SERVICES, GATEWAY, r);
    assert.equal(model.routes.length, 0);
    const w = warnings(diagnostics);
    assert.equal(w.length, 1);
    assert.match(w[0]!.message, /NotAllowedByListeners/);
    assert.equal(w[0]!.path, 'spec.parentRefs[0]');
  });

  test('an unknown listener name is NoMatchingParent', () => {
    const r = ROUTE.replace('{name: edge, namespace: infra}', '{name: edge, namespace: infra, sectionName: nope}');
    const w = warnings(build(SERVICES, GATEWAY, r).diagnostics);
    assert.equal(w.length, 1);
    assert.match(w[0]!.message, /NoMatchingParent/);
  });
});

describe('schema errors point at the line, column and JSON path', () => {
  const BAD = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: bad, namespace: shop}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews}
  rules:
  - matches:
    - path:
        type: RegularExpression
        value: "/items/(["
      method: FETCH
    backendRefs:
    - name: reviews-v1
      port: 9080
      weight: 1000001
    timeouts:
      request: 1.5s
    colour: red
`;

  test('bad duration, bad regex, out-of-range weight, unknown field and bad enum', () => {
    const { model, diagnostics } = build(BAD);
    assert.equal(model.routes.length, 0, 'a resource with errors is left out');
    const e = errors(diagnostics).map((d) => ({ path: d.path, at: `${d.pos!.line}:${d.pos!.column}`, message: d.message }));
    const byPath = new Map(e.map((x) => [x.path, x]));
    assert.equal(e.length, 5, JSON.stringify(e, null, 1));
    assert.equal(byPath.get('spec.rules[0].matches[0].path.value')!.at, '11:9');
    assert.match(byPath.get('spec.rules[0].matches[0].path.value')!.message, /invalid RE2 regular expression/);
    assert.equal(byPath.get('spec.rules[0].matches[0].method')!.at, '12:7');
    assert.match(byPath.get('spec.rules[0].matches[0].method')!.message, /invalid value "FETCH"; expected one of "GET"/);
    assert.equal(byPath.get('spec.rules[0].backendRefs[0].weight')!.at, '16:7');
    assert.match(byPath.get('spec.rules[0].backendRefs[0].weight')!.message, /weight must be 0-1000000/);
    assert.equal(byPath.get('spec.rules[0].timeouts.request')!.at, '18:7');
    assert.match(byPath.get('spec.rules[0].timeouts.request')!.message, /GEP-2257/);
    assert.equal(byPath.get('spec.rules[0].colour')!.at, '19:5');
    assert.match(byPath.get('spec.rules[0].colour')!.message, /unknown field "colour"/);
  });

  test('the CEL rules of the upstream CRDs are checked', () => {
    const GOOD = `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good, namespace: shop}
spec:
  parentRefs:
  - {group: "", kind: Service, name: reviews}
  rules:
  - matches:
    - path: {type: PathPrefix, value: /items}
    backendRefs:
    - {name: reviews-v1, port: 9080}
    timeouts: {request: 1s}
`;
    assert.deepEqual(errors(build(SERVICES, GOOD).diagnostics), [], 'the base route is valid');
    const cases: Array<[string, string, RegExp]> = [
      ['{name: reviews-v1, port: 9080}', '{name: reviews-v1}', /Must have port for Service reference/],
      ['value: /items}', 'value: /items//x}', /must not contain '\/\/'/],
      ['value: /items}', 'value: items}', /must be an absolute path/],
      ['    timeouts:', '    filters: [{type: RequestRedirect, requestRedirect: {port: 8443}}]\n    timeouts:', /RequestRedirect filter must not be used together with backendRefs/],
      ['{request: 1s}', '{request: 1s, backendRequest: 2s}', /backendRequest timeout cannot be longer than request timeout/],
      ['  - {group: "", kind: Service, name: reviews}\n', '  - {group: "", kind: Service, name: reviews}\n  - {group: "", kind: Service, name: reviews}\n', /sectionName or port must be unique/],
      [
        '{type: PathPrefix, value: /items}',
        '{type: Exact, value: /items}\n    filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /x}}}]',
        /exactly one PathPrefix match must be specified/,
      ],
      ['    timeouts:', '    filters: [{type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: "1"}], remove: [x-a]}}]\n    timeouts:', /only one action per header name/],
      ['    timeouts:', '    filters: [{type: RequestHeaderModifier, responseHeaderModifier: {remove: [x-a]}}]\n    timeouts:', /filter.responseHeaderModifier must be nil if the filter.type is not ResponseHeaderModifier/],
      ['port: 9080}', 'port: 9080, weight: -1}', /weight must be 0-1000000/],
    ];
    for (const [from, to, re] of cases) {
      assert.ok(GOOD.includes(from), from);
      const e = errors(build(SERVICES, GOOD.replace(from, to)).diagnostics);
      assert.ok(e.some((d) => re.test(d.message)), `${re}: got ${JSON.stringify(e.map((d) => d.message))}`);
    }
  });

  test('Gateway schema: listener rules and ports', () => {
    const gw = `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: g}
spec:
  gatewayClassName: weft
  listeners:
  - {name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}
  - {name: a, port: 70000, protocol: HTTP}
`;
    const e = errors(build(gw).diagnostics).map((d) => `${d.path} ${d.message}`);
    assert.ok(e.some((x) => x.startsWith('spec.listeners[0].tls') && /tls must not be specified/.test(x)), e.join('\n'));
    assert.ok(e.some((x) => x.startsWith('spec.listeners[1].port') && /1-65535/.test(x)), e.join('\n'));
  });
});

describe('upstream-shaped examples', () => {
  const files = readdirSync(upstreamDir).filter((f) => f.endsWith('.yaml')).sort();

  test('there are examples for each area', () => {
    for (const f of ['gamma.yaml', 'grpc-routing.yaml', 'http-routing.yaml', 'http-redirect-rewrite.yaml', 'traffic-splitting.yaml', 'http-header-modifier.yaml']) assert.ok(files.includes(f), f);
  });

  test('all load with zero errors and zero warnings, and every route is attached', () => {
    const raws = files.flatMap((f) => {
      const r = parseConfigText(readFileSync(upstreamDir + f, 'utf8'), f);
      assert.deepEqual(r.diagnostics, [], `${f} parses`);
      return r.resources;
    });
    const { model, diagnostics, resources } = buildModel(raws);
    assert.deepEqual(errors(diagnostics), []);
    assert.deepEqual(warnings(diagnostics), []);
    const routeNames = new Set(resources.filter((r) => r.kind === 'HTTPRoute' || r.kind === 'GRPCRoute').map((r) => `${r.kind}/${r.namespace}/${r.name}`));
    const attached = new Set(model.routes.flatMap((t) => t.http.map((h) => `${h.origin.kind}/${h.origin.namespace}/${h.origin.name}`)));
    assert.deepEqual([...routeNames].filter((n) => !attached.has(n)), []);
    assert.equal(model.gateways.length, 4);
  });

  test('the traffic-splitting example splits 90/10 after the header rule', () => {
    const raws = ['services.yaml', 'http-routing.yaml', 'traffic-splitting.yaml'].flatMap((f) => parseConfigText(readFileSync(upstreamDir + f, 'utf8'), f).resources);
    const t = table(buildModel(raws).model, 'split.example.com');
    assert.deepEqual(t.ports, [80]);
    assert.deepEqual(t.http.map((r) => (r.action.kind === 'route' ? r.action.destinations.map((d) => `${d.host.split('.')[0]}:${d.weight}`).join(',') : r.action.kind)), ['foo-v2:1', 'foo-v1:9,foo-v2:1']);
  });
});

describe('robustness', () => {
  test('mutated examples never make translation throw (no WFT0001 internal errors)', () => {
    const files = readdirSync(upstreamDir).filter((f) => f.endsWith('.yaml')).sort();
    const texts = files.map((f) => readFileSync(upstreamDir + f, 'utf8'));
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    const odd = ['0', '-1', '""', '"*"', '[]', '{}', 'null', '/', '"(["', '99999999', 'Service', '"1h2m3s4ms5h"'];
    let built = 0;
    for (let run = 0; run < 300; run++) {
      const lines = texts.join('\n---\n').split('\n');
      for (let k = 0; k < 3; k++) {
        const i = rand(lines.length);
        const line = lines[i]!;
        const op = rand(3);
        if (op === 0) lines.splice(i, 1);
        else if (op === 1) lines.splice(i, 0, line);
        else if (line.includes(': ')) lines[i] = line.slice(0, line.indexOf(': ') + 2) + odd[rand(odd.length)];
      }
      const parsed = parseConfigText(lines.join('\n'), `run${run}.yaml`);
      const { diagnostics } = buildModel(parsed.resources);
      const internal = diagnostics.filter((d) => d.code === 'WFT0001');
      assert.deepEqual(internal, [], `run ${run}`);
      built++;
    }
    assert.equal(built, 300);
  });
});
