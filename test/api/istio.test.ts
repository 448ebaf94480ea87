// The Istio API family: schemas (unknown fields, types, enums, durations, RE2, ranges, Istio's cross-field
// rules) and the translation of every networking and security kind into the normalized model.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/api/build.js';
import type { Diagnostic } from '../../src/api/diagnostics.js';
import type { HttpRoute, MeshModel, RouteTable } from '../../src/api/model.js';
import { parseConfigText } from '../../src/api/source.js';
import { reduceWeights, reduceWeightsOf } from '../../src/api/kinds/weights.js';
import { parseRetryOn } from '../../src/api/kinds/istio/virtual-service.js';

const FILE = 'istio.yaml';

function load(text: string): { model: MeshModel; diagnostics: Diagnostic[] } {
  const parsed = parseConfigText(text, FILE);
  assert.deepEqual(parsed.diagnostics, [], 'the YAML parses');
  const built = buildModel(parsed.resources);
  return { model: built.model, diagnostics: built.diagnostics };
}

function errorsOf(d: Diagnostic[]): Diagnostic[] {
  return d.filter((x) => x.severity === 'Error');
}

/** Loads config that must be valid and returns its model. */
function model(text: string): MeshModel {
  const r = load(text);
  assert.deepEqual(errorsOf(r.diagnostics), [], 'no errors');
  return r.model;
}

/** The single Error of a config that must be invalid. */
function onlyError(text: string): Diagnostic {
  const errs = errorsOf(load(text).diagnostics);
  assert.equal(errs.length, 1, `exactly one error, got: ${errs.map((e) => e.message).join(' | ')}`);
  return errs[0]!;
}

/** 1-based line and column of the first occurrence of `needle` (after `after`, if given). */
function posOf(text: string, needle: string, after = ''): { file: string; line: number; column: number } {
  const start = after ? text.indexOf(after) : 0;
  assert.ok(start >= 0, `marker ${after} present`);
  const i = text.indexOf(needle, start);
  assert.ok(i >= 0, `${needle} present`);
  const before = text.slice(0, i).split('\n');
  return { file: FILE, line: before.length, column: before[before.length - 1]!.length + 1 };
}

function vs(spec: string, meta = 'metadata: {name: reviews, namespace: bookinfo}', version = 'v1'): string {
  return `apiVersion: networking.istio.io/${version}\nkind: VirtualService\n${meta}\nspec:\n${spec}`;
}

function table(m: MeshModel, i = 0): RouteTable {
  assert.ok(m.routes[i], `route table ${i}`);
  return m.routes[i]!;
}

function httpRoute(m: MeshModel, i = 0): HttpRoute {
  assert.ok(table(m).http[i], `http route ${i}`);
  return table(m).http[i]!;
}

// ---------------------------------------------------------------------------------------------------------------

describe('reduceWeights', () => {
  test('divides by the GCD of the non-zero weights', () => {
    assert.deepEqual(reduceWeights([80, 20]), [4, 1]);
    assert.deepEqual(reduceWeights([800, 200]), [4, 1]);
    assert.deepEqual(reduceWeights([50, 50]), [1, 1]);
    assert.deepEqual(reduceWeights([30, 0, 45]), [2, 0, 3]);
    assert.deepEqual(reduceWeights([7, 3]), [7, 3]);
    assert.deepEqual(reduceWeights([100]), [1]);
  });
  test('leaves all-zero and invalid lists alone', () => {
    assert.deepEqual(reduceWeights([0, 0]), [0, 0]);
    assert.deepEqual(reduceWeights([]), []);
    assert.deepEqual(reduceWeights([2.5, 5]), [2.5, 5]);
    assert.deepEqual(reduceWeights([-2, 4]), [-2, 4]);
  });
  test('reduceWeightsOf rewrites the items', () => {
    const items = [{ host: 'a', weight: 60 }, { host: 'b', weight: 40 }];
    assert.equal(reduceWeightsOf(items), items);
    assert.deepEqual(items.map((i) => i.weight), [3, 2]);
  });
});

describe('VirtualService', () => {
  test('a weighted route: FQDN hosts, mesh gateway, exported everywhere, weights reduced', () => {
    const m = model(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 80
    - destination: {host: reviews.bookinfo.svc.cluster.local, subset: v2}
      weight: 20
`));
    const t = table(m);
    assert.deepEqual(t.hosts, ['reviews.bookinfo.svc.cluster.local']);
    assert.deepEqual(t.gateways, ['mesh']);
    assert.deepEqual(t.exportTo, ['*']);
    assert.deepEqual(t.ports, []);
    assert.equal(t.namespace, 'bookinfo');
    assert.equal(t.origin.kind, 'VirtualService');
    assert.equal(t.origin.family, 'istio');
    const r = httpRoute(m);
    assert.deepEqual(r.matches, []);
    assert.deepEqual(r.action, {
      kind: 'route',
      destinations: [
        { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v1', weight: 4 },
        { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v2', weight: 1 },
      ],
    });
    assert.equal(r.retries, undefined, 'no retries field: the mesh default applies');
    assert.equal(r.timeoutMs, undefined);
    assert.equal(r.origin.path, 'spec.http[0]');
  });

  test('a single destination takes all traffic; with several, a missing weight is 0', () => {
    const m = model(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v3}
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 100
    - destination: {host: reviews, subset: v2}
`));
    assert.deepEqual(httpRoute(m, 0).action, { kind: 'route', destinations: [{ host: 'reviews.bookinfo.svc.cluster.local', subset: 'v3', weight: 1 }] });
    assert.deepEqual(httpRoute(m, 1).action, {
      kind: 'route',
      destinations: [
        { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v1', weight: 1 },
        { host: 'reviews.bookinfo.svc.cluster.local', subset: 'v2', weight: 0 },
      ],
    });
  });

  test('matches: headers, withoutHeaders, query parameters, uri, method, port, source, gateways', () => {
    const m = model(vs(`  hosts: [reviews]
  gateways: [mesh, bookinfo-gateway, edge/gw, legacy.istio-system.svc.cluster.local]
  http:
  - name: jason
    match:
    - name: by-user
      headers:
        end-user: {exact: jason}
        x-present: {}
      withoutHeaders:
        x-canary: {regex: "*"}
        x-debug: {prefix: "on"}
      queryParams:
        v: {regex: "^[0-9]+$"}
        flag: {}
      uri: {prefix: /api}
      ignoreUriCase: true
      method: {exact: GET}
      authority: {prefix: reviews}
      scheme: {exact: https}
      port: 9080
      sourceLabels: {app: productpage}
      sourceNamespace: frontend
      gateways: [bookinfo-gateway]
    - uri: {exact: /health}
    route:
    - destination: {host: reviews, subset: v2, port: {number: 9080}}
`));
    assert.deepEqual(table(m).gateways, ['mesh', 'bookinfo/bookinfo-gateway', 'edge/gw', 'istio-system/legacy']);
    const r = httpRoute(m);
    assert.equal(r.name, 'jason');
    assert.deepEqual(r.matches[0], {
      name: 'by-user',
      path: { prefix: '/api' },
      ignoreCase: true,
      method: { exact: 'GET' },
      authority: { prefix: 'reviews' },
      scheme: { exact: 'https' },
      headers: [
        { name: 'end-user', match: { exact: 'jason' } },
        { name: 'x-present', present: true },
        { name: 'x-canary', present: true, invert: true },
        { name: 'x-debug', match: { prefix: 'on' }, invert: true },
      ],
      queryParams: [
        { name: 'v', match: { regex: '^[0-9]+$' } },
        { name: 'flag', present: true },
      ],
      port: 9080,
      sourceLabels: { app: 'productpage' },
      sourceNamespace: 'frontend',
      gateways: ['bookinfo/bookinfo-gateway'],
    });
    assert.deepEqual(r.matches[1], { path: { exact: '/health' }, headers: [], queryParams: [], gateways: [] });
    assert.deepEqual(r.action, { kind: 'route', destinations: [{ host: 'reviews.bookinfo.svc.cluster.local', subset: 'v2', port: 9080, weight: 1 }] });
  });

  test('fault injection: percentages, the deprecated integer percent, and no percentage = no request', () => {
    const m = model(vs(`  hosts: [ratings]
  http:
  - fault:
      delay: {fixedDelay: 7s, percentage: {value: 10.5}}
      abort: {httpStatus: 500, percentage: {value: 100}}
    route:
    - destination: {host: ratings, subset: v1}
  - fault:
      delay: {fixedDelay: 1.5s, percent: 30}
      abort: {grpcStatus: UNAVAILABLE}
    route:
    - destination: {host: ratings, subset: v1}
`));
    assert.deepEqual(httpRoute(m, 0).fault, { delay: { fixedDelayMs: 7000, percent: 10.5 }, abort: { httpStatus: 500, percent: 100 } });
    assert.deepEqual(httpRoute(m, 1).fault, { delay: { fixedDelayMs: 1500, percent: 30 }, abort: { grpcStatus: 'UNAVAILABLE', percent: 0 } });
  });

  test('mirroring: mirror + mirrorPercentage is one policy, 100% by default, 0% mirrors nothing, mirrors list', () => {
    const m = model(vs(`  hosts: [httpbin]
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
    mirror: {host: httpbin, subset: v2}
    mirrorPercentage: {value: 50}
  - route:
    - destination: {host: httpbin, subset: v1}
    mirror: {host: httpbin, subset: v2}
  - route:
    - destination: {host: httpbin, subset: v1}
    mirror: {host: httpbin, subset: v2}
    mirror_percent: 0
  - route:
    - destination: {host: httpbin, subset: v1}
    mirror: {host: httpbin, subset: v2, port: {number: 8000}}
    mirrorPercent: 25
  - route:
    - destination: {host: httpbin, subset: v1}
    mirrors:
    - destination: {host: httpbin, subset: v2}
      percentage: {value: 5}
    - destination: {host: shadow.example.com}
`));
    const h = 'httpbin.bookinfo.svc.cluster.local';
    assert.deepEqual(httpRoute(m, 0).mirrors, [{ host: h, subset: 'v2', percent: 50 }]);
    assert.deepEqual(httpRoute(m, 1).mirrors, [{ host: h, subset: 'v2', percent: 100 }]);
    assert.deepEqual(httpRoute(m, 2).mirrors, []);
    assert.deepEqual(httpRoute(m, 3).mirrors, [{ host: h, subset: 'v2', port: 8000, percent: 25 }]);
    assert.deepEqual(httpRoute(m, 4).mirrors, [
      { host: h, subset: 'v2', percent: 5 },
      { host: 'shadow.example.com', percent: 100 },
    ]);
  });

  test('retries: attempts, per-try timeout, retryOn split into conditions and status codes, defaults, disabling', () => {
    const m = model(vs(`  hosts: [ratings]
  http:
  - retries: {attempts: 3, perTryTimeout: 2s, retryOn: "gateway-error,connect-failure,refused-stream,cancelled,503", retryRemoteLocalities: true, backoff: 25ms}
    timeout: 10s
    route:
    - destination: {host: ratings}
  - retries: {attempts: 4}
    route:
    - destination: {host: ratings}
  - retries: {attempts: 0}
    route:
    - destination: {host: ratings}
`));
    assert.deepEqual(httpRoute(m, 0).retries, {
      attempts: 3,
      perTryTimeoutMs: 2000,
      retryOn: ['gateway-error', 'connect-failure', 'refused-stream', 'cancelled', 'retriable-status-codes'],
      retriableStatusCodes: [503],
      retryRemoteLocalities: true,
      backoff: { baseIntervalMs: 25 },
    });
    assert.equal(httpRoute(m, 0).timeoutMs, 10_000);
    assert.deepEqual(httpRoute(m, 1).retries, {
      attempts: 4,
      retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
      retriableStatusCodes: [503],
    });
    assert.deepEqual(httpRoute(m, 2).retries, { attempts: 0, retryOn: [], retriableStatusCodes: [] });
  });

  test('parseRetryOn keeps gRPC conditions and only adds retriable-status-codes when codes are given', () => {
    assert.deepEqual(parseRetryOn('5xx, unavailable ,deadline-exceeded'), { retryOn: ['5xx', 'unavailable', 'deadline-exceeded'], codes: [] });
    assert.deepEqual(parseRetryOn('502,504'), { retryOn: ['retriable-status-codes'], codes: [502, 504] });
    assert.deepEqual(parseRetryOn('retriable-status-codes,503'), { retryOn: ['retriable-status-codes'], codes: [503] });
  });

  test('rewrite, redirect (301 by default), direct responses, header operations and CORS', () => {
    const m = model(vs(`  hosts: [web.example.com]
  gateways: [edge/gw]
  http:
  - match: [{uri: {prefix: /old}}]
    rewrite: {uri: /new, authority: web.internal}
    headers:
      request:
        set: {x-env: prod}
        add: {x-trace: "1"}
        remove: [x-secret]
      response:
        remove: [server]
    corsPolicy:
      allowOrigins: [{exact: "https://a.example.com"}, {regex: "https://.*\\\\.b\\\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-resp]
      maxAge: 24h
      allowCredentials: true
    route:
    - destination: {host: web.default.svc.cluster.local}
      headers:
        response:
          set: {x-from: web}
  - match: [{uri: {regex: "^/re/(.*)$"}}]
    rewrite: {uriRegexRewrite: {match: "^/re/(.*)$", rewrite: "/\\\\1"}}
    route:
    - destination: {host: web.default.svc.cluster.local}
  - match: [{uri: {exact: /moved}}]
    redirect: {uri: /here, authority: other.example.com}
  - match: [{uri: {exact: /https}}]
    redirect: {scheme: https, derivePort: FROM_PROTOCOL_DEFAULT, redirectCode: 308}
  - match: [{uri: {exact: /teapot}}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - match: [{uri: {exact: /bytes}}]
    directResponse: {status: 200, body: {bytes: "aGVsbG8="}}
  - corsPolicy: {allowOrigin: ["https://legacy.example.com"]}
    route:
    - destination: {host: web.default.svc.cluster.local}
`, 'metadata: {name: web, namespace: edge}'));
    const r0 = httpRoute(m, 0);
    assert.deepEqual(r0.rewrite, { prefix: '/new', authority: 'web.internal' });
    assert.deepEqual(r0.headers, {
      request: { set: { 'x-env': 'prod' }, add: { 'x-trace': '1' }, remove: ['x-secret'] },
      response: { set: {}, add: {}, remove: ['server'] },
    });
    assert.deepEqual(r0.cors, {
      allowOrigins: [{ exact: 'https://a.example.com' }, { regex: 'https://.*\\.b\\.com' }],
      allowMethods: ['GET', 'POST'],
      allowHeaders: ['x-custom'],
      exposeHeaders: ['x-resp'],
      maxAgeSeconds: 86400,
      allowCredentials: true,
    });
    assert.deepEqual(r0.action, {
      kind: 'route',
      destinations: [{
        host: 'web.default.svc.cluster.local',
        weight: 1,
        headers: { request: { set: {}, add: {}, remove: [] }, response: { set: { 'x-from': 'web' }, add: {}, remove: [] } },
      }],
    });
    assert.deepEqual(httpRoute(m, 1).rewrite, { regex: { pattern: '^/re/(.*)$', substitution: '/\\1' } });
    assert.deepEqual(httpRoute(m, 2).action, { kind: 'redirect', redirect: { statusCode: 301, host: 'other.example.com', path: '/here' } });
    assert.deepEqual(httpRoute(m, 3).action, { kind: 'redirect', redirect: { statusCode: 308, scheme: 'https', derivePort: 'FROM_PROTOCOL_DEFAULT' } });
    assert.deepEqual(httpRoute(m, 4).action, { kind: 'direct', status: 418, body: 'short and stout' });
    assert.deepEqual(httpRoute(m, 5).action, { kind: 'direct', status: 200, body: 'hello' });
    assert.deepEqual(httpRoute(m, 6).cors?.allowOrigins, [{ exact: 'https://legacy.example.com' }]);
    assert.deepEqual(table(m).hosts, ['web.example.com']);
    assert.deepEqual(table(m).gateways, ['edge/gw']);
  });

  test('TCP and TLS routes', () => {
    const m = model(vs(`  hosts: [mongo, "*.example.com"]
  tcp:
  - match: [{port: 27017, destinationSubnets: [10.0.0.0/8], sourceLabels: {app: api}}]
    route:
    - destination: {host: mongo, port: {number: 27017}, subset: primary}
      weight: 90
    - destination: {host: mongo, port: {number: 27017}, subset: backup}
      weight: 10
  tls:
  - match: [{port: 443, sniHosts: [login.example.com]}]
    route:
    - destination: {host: login.example.com, port: {number: 443}}
`, 'metadata: {name: mixed}'));
    const t = table(m);
    assert.deepEqual(t.hosts, ['mongo.default.svc.cluster.local', '*.example.com']);
    assert.equal(t.namespace, 'default');
    assert.deepEqual(t.tcp.map((r) => ({ matches: r.matches, destinations: r.destinations })), [{
      matches: [{ port: 27017, destinationSubnets: ['10.0.0.0/8'], sniHosts: [], sourceLabels: { app: 'api' }, gateways: [] }],
      destinations: [
        { host: 'mongo.default.svc.cluster.local', subset: 'primary', port: 27017, weight: 9 },
        { host: 'mongo.default.svc.cluster.local', subset: 'backup', port: 27017, weight: 1 },
      ],
    }]);
    assert.deepEqual(t.tls.map((r) => ({ matches: r.matches, destinations: r.destinations })), [{
      matches: [{ port: 443, destinationSubnets: [], sniHosts: ['login.example.com'], gateways: [] }],
      destinations: [{ host: 'login.example.com', port: 443, weight: 1 }],
    }]);
    assert.deepEqual(t.http, []);
  });

  test('delegation: the delegate routes are merged under the root route, which they inherit from', () => {
    const r = load(`${vs(`  hosts: [bookinfo.example.com]
  gateways: [edge/gw]
  http:
  - name: reviews
    match: [{uri: {prefix: /reviews}}]
    timeout: 3s
    delegate: {name: reviews-delegate, namespace: bookinfo}
  - route:
    - destination: {host: productpage.bookinfo.svc.cluster.local}
`, 'metadata: {name: root, namespace: edge}')}
---
${vs(`  http:
  - name: v2
    match: [{uri: {prefix: /reviews/v2}}]
    route:
    - destination: {host: reviews, subset: v2}
  - name: other
    match: [{uri: {prefix: /ratings}}]
    route:
    - destination: {host: ratings}
  - route:
    - destination: {host: reviews, subset: v1}
    timeout: 1s
`, 'metadata: {name: reviews-delegate, namespace: bookinfo}')}`);
    const m = r.model;
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.resource?.name, d.path]), [['Warning', 'reviews-delegate', 'spec.http[1].match']], 'the conflicting delegate route is reported');
    assert.match(r.diagnostics[0]!.message, /conflicts with the matches of root VirtualService edge\/root/);
    assert.equal(m.routes.length, 1, 'the delegate makes no route table of its own');
    const t = table(m);
    assert.equal(t.http.length, 3, 'the conflicting delegate route is dropped');
    assert.equal(t.http[0]!.name, 'reviews-v2');
    assert.deepEqual(t.http[0]!.matches.map((x) => x.path), [{ prefix: '/reviews/v2' }]);
    assert.equal(t.http[0]!.timeoutMs, 3000, 'inherited from the root route');
    assert.deepEqual(t.http[0]!.action, { kind: 'route', destinations: [{ host: 'reviews.bookinfo.svc.cluster.local', subset: 'v2', weight: 1 }] });
    assert.equal(t.http[0]!.origin.name, 'reviews-delegate');
    assert.deepEqual(t.http[1]!.matches.map((x) => x.path), [{ prefix: '/reviews' }], 'a delegate route without matches takes the root matches');
    assert.equal(t.http[1]!.timeoutMs, 1000, 'the delegate wins where it sets a field');
    assert.deepEqual(t.http[2]!.action, { kind: 'route', destinations: [{ host: 'productpage.bookinfo.svc.cluster.local', weight: 1 }] });
  });

  test('exportTo and all three versions are accepted without deprecation notices', () => {
    for (const version of ['v1', 'v1beta1', 'v1alpha3']) {
      const r = load(vs(`  hosts: [reviews]
  exportTo: [".", other]
  http:
  - route:
    - destination: {host: reviews}
`, 'metadata: {name: reviews, namespace: bookinfo}', version));
      assert.deepEqual(r.diagnostics, [], version);
      assert.deepEqual(table(r.model).exportTo, ['.', 'other']);
    }
    const e = onlyError(vs(`  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n`, 'metadata: {name: x}', 'v2'));
    assert.equal(e.path, 'apiVersion');
  });
});

describe('VirtualService schema errors (WFT0106 with position and path)', () => {
  const check = (text: string, path: string, needle: string, message: RegExp, after = '') => {
    const e = onlyError(text);
    assert.equal(e.code, 'WFT0106');
    assert.equal(e.path, path);
    assert.deepEqual(e.pos, posOf(text, needle, after));
    assert.match(e.message, message);
    assert.deepEqual(e.resource, { kind: 'VirtualService', namespace: 'bookinfo', name: 'reviews' });
    assert.ok(e.hint, 'a hint');
  };

  test('unknown field', () => {
    const text = vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    retry: {attempts: 3}
`);
    check(text, 'spec.http[0].retry', 'retry:', /unknown field "retry"/);
  });

  test('wrong type', () => {
    const text = vs(`  hosts: reviews
  http:
  - route:
    - destination: {host: reviews}
`);
    check(text, 'spec.hosts', 'hosts:', /expected array, got string "reviews"/);
  });

  test('bad enum value (case-sensitive)', () => {
    const text = vs(`  hosts: [reviews]
  http:
  - redirect: {uri: /x, derivePort: from_request_port}
`);
    check(text, 'spec.http[0].redirect.derivePort', 'derivePort', /invalid value "from_request_port"; expected one of "FROM_PROTOCOL_DEFAULT", "FROM_REQUEST_PORT"/);
  });

  test('invalid duration, too small a duration, sub-millisecond precision', () => {
    const base = (t: string) => vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    timeout: ${t}
`);
    check(base('10 seconds'), 'spec.http[0].timeout', 'timeout', /expected a duration/);
    check(base('0s'), 'spec.http[0].timeout', 'timeout', /at least 1ms/);
    check(base('1.5ms'), 'spec.http[0].timeout', 'timeout', /ms precision/);
  });

  test('invalid RE2 regex', () => {
    const text = vs(`  hosts: [reviews]
  http:
  - match:
    - uri: {regex: "/(unclosed"}
    route:
    - destination: {host: reviews}
`);
    check(text, 'spec.http[0].match[0].uri.regex', 'regex', /invalid RE2 regular expression/);
    const lookahead = vs(`  hosts: [reviews]
  http:
  - match:
    - headers: {x-id: {regex: "(?=abc)"}}
    route:
    - destination: {host: reviews}
`);
    check(lookahead, 'spec.http[0].match[0].headers.x-id.regex', 'regex', /RE2/);
  });

  test('out-of-range port, negative weight, percentage above 100', () => {
    check(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, port: {number: 65536}}
`), 'spec.http[0].route[0].destination.port.number', 'number', /port must be 1-65535/);
    check(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 120
    - destination: {host: reviews, subset: v2}
      weight: -20
`), 'spec.http[0].route[1].weight', 'weight: -20', /weight must not be negative/);
    check(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    fault:
      abort: {httpStatus: 503, percentage: {value: 150}}
`), 'spec.http[0].fault.abort.percentage.value', 'value', /percentage 150 is neither 0.0, nor in range \[0.0001, 100.0\]/);
    check(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    mirror: {host: reviews, subset: v2}
    mirrorPercentage: {value: 101}
`), 'spec.http[0].mirrorPercentage.value', 'value', /max value of 100/);
  });

  test('a StringMatch oneof with two types', () => {
    check(vs(`  hosts: [reviews]
  http:
  - match:
    - uri: {exact: /a, prefix: /b}
    route:
    - destination: {host: reviews}
`), 'spec.http[0].match[0].uri.prefix', 'prefix', /only one of exact, prefix or regex/);
  });
});

describe("VirtualService cross-field rules (Istio's validation)", () => {
  const err = (spec: string) => onlyError(vs(spec));

  test('several destinations need a non-zero total weight; weights need not sum to 100', () => {
    const e = err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    - destination: {host: reviews, subset: v2}
`);
    assert.equal(e.path, 'spec.http[0].route');
    assert.match(e.message, /total destination weight = 0/);
    const ok = model(vs(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 3
    - destination: {host: reviews, subset: v2}
      weight: 1
`));
    assert.deepEqual((httpRoute(ok).action as { destinations: Array<{ weight: number }> }).destinations.map((d) => d.weight), [3, 1]);
  });

  test('route and redirect, a route without action, mirror with mirrors', () => {
    assert.match(err(`  hosts: [reviews]
  http:
  - redirect: {uri: /x}
    route:
    - destination: {host: reviews}
`).message, /cannot contain both route and redirect/);
    assert.match(err(`  hosts: [reviews]
  http:
  - timeout: 1s
`).message, /HTTP route, redirect or direct_response is required/);
    assert.match(err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    mirror: {host: a}
    mirrors: [{destination: {host: b}}]
`).message, /both mirror and mirrors/);
  });

  test('retries: unknown retryOn policy, a policy with attempts 0', () => {
    const e = err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    retries: {attempts: 2, retryOn: "5xx,bogus"}
`);
    assert.equal(e.path, 'spec.http[0].retries.retryOn');
    assert.match(e.message, /"bogus" is not a valid retryOn policy/);
    assert.match(err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    retries: {perTryTimeout: 2s}
`).message, /attempts are set to 0/);
  });

  test('hosts: duplicates, * on the mesh, invalid names; SNI hosts must be covered', () => {
    assert.match(err(`  hosts: ["*.example.com", api.example.com]
  http:
  - route:
    - destination: {host: a.example.com}
`).message, /duplicate hosts in virtual service/);
    assert.match(err(`  hosts: ["*"]
  http:
  - route:
    - destination: {host: a.example.com}
`).message, /wildcard host \* is not allowed/);
    assert.match(err(`  hosts: [Reviews_Bad]
  http:
  - route:
    - destination: {host: a.example.com}
`).message, /domain name "Reviews_Bad" invalid/);
    assert.match(err(`  hosts: [a.example.com]
  tls:
  - match: [{sniHosts: [b.example.com]}]
    route:
    - destination: {host: b.example.com}
`).message, /SNI host "b.example.com" is not a compatible subset/);
  });

  test('JWT claim routing only on gateways; delegates without hosts may not have gateways', () => {
    assert.match(err(`  hosts: [reviews]
  http:
  - match: [{headers: {"@request.auth.claims.group": {exact: admin}}}]
    route:
    - destination: {host: reviews}
`).message, /only supported for gateway/);
    assert.match(err(`  gateways: [edge/gw]
  http:
  - route:
    - destination: {host: reviews}
`).message, /delegate virtual service must have no gateways/);
  });

  test('fault, CORS, header and redirect rules', () => {
    assert.match(err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    fault: {abort: {grpcStatus: NOPE}}
`).message, /gRPC status "NOPE" is not supported/);
    assert.match(err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    corsPolicy: {allowMethods: [get]}
`).message, /"get" is not a supported HTTP method/);
    assert.match(err(`  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
    headers: {response: {set: {host: x}}}
`).message, /cannot set Host header/);
    assert.match(err(`  hosts: [reviews]
  http:
  - redirect: {uri: /x, redirectCode: 200}
`).message, /200 is not a valid redirect code/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('DestinationRule', () => {
  test('subsets, load balancing, connection pool, outlier detection, TLS, port-level settings', () => {
    const m = model(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: bookinfo}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, ttl: 0s, path: /}
        ringHash: {minimumRingSize: 1024}
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}]
      warmup: {duration: 45s}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms, idleTimeout: 0s, tcpKeepalive: {probes: 3, time: 7200s, interval: 75s}, maxConnectionDuration: 1h}
      http: {http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 30s, h2UpgradePolicy: UPGRADE, maxConcurrentStreams: 50}
    outlierDetection:
      consecutive5xxErrors: 7
      interval: 5m
      baseEjectionTime: 15m
    tls:
      mode: ISTIO_MUTUAL
      sni: reviews.bookinfo
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: LEAST_CONN}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
  exportTo: ["*"]
`);
    assert.equal(m.destinationPolicies.length, 1);
    const p = m.destinationPolicies[0]!;
    assert.equal(p.host, 'reviews.bookinfo.svc.cluster.local');
    assert.deepEqual(p.exportTo, ['*']);
    assert.equal(p.workloadSelector, undefined);
    assert.deepEqual(p.subsets, [
      { name: 'v1', labels: { version: 'v1' } },
      { name: 'v2', labels: { version: 'v2' }, trafficPolicy: { loadBalancer: { simple: 'ROUND_ROBIN' }, portLevelSettings: [] } },
    ]);
    assert.deepEqual(p.trafficPolicy, {
      loadBalancer: {
        consistentHash: { httpCookie: { name: 'user', path: '/', ttlMs: 0 }, ringHash: { minimumRingSize: 1024 } },
        locality: { enabled: true, distribute: [], failover: [{ from: 'us-east', to: 'us-west' }], failoverPriority: [] },
        warmupDurationMs: 45_000,
      },
      connectionPool: {
        tcp: { maxConnections: 100, connectTimeoutMs: 30, idleTimeoutMs: 0, maxConnectionDurationMs: 3_600_000, tcpKeepalive: { probes: 3, timeMs: 7_200_000, intervalMs: 75_000 } },
        http: { http1MaxPendingRequests: 10, http2MaxRequests: 1000, maxRequestsPerConnection: 10, maxRetries: 3, maxConcurrentStreams: 50, idleTimeoutMs: 30_000, h2UpgradePolicy: 'UPGRADE' },
      },
      outlierDetection: { consecutive5xxErrors: 7, consecutiveGatewayErrors: 0, splitExternalLocalOriginErrors: false, intervalMs: 300_000, baseEjectionTimeMs: 900_000, maxEjectionPercent: 10, minHealthPercent: 0 },
      tls: { mode: 'ISTIO_MUTUAL', subjectAltNames: [], sni: 'reviews.bookinfo' },
      portLevelSettings: [{ port: 9080, loadBalancer: { simple: 'LEAST_REQUEST' } }],
    });
  });

  test("Istio's defaults: outlier detection, deprecated consecutiveErrors, TLS mode, tunnel, retry budget", () => {
    const m = model(`apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: ext}
spec:
  host: ext.example.com
  trafficPolicy:
    outlierDetection: {consecutiveErrors: 3, splitExternalLocalOriginErrors: true, maxEjectionPercent: 0}
    tls: {sni: ext.example.com}
    tunnel: {targetHost: 10.0.0.1, targetPort: 8443}
    retryBudget: {}
    loadBalancer:
      consistentHash: {httpHeaderName: x-user, minimumRingSize: 2048}
      warmupDurationSecs: 10s
`);
    const tp = m.destinationPolicies[0]!.trafficPolicy!;
    assert.deepEqual(tp.outlierDetection, {
      consecutive5xxErrors: 0,
      consecutiveGatewayErrors: 3,
      consecutiveLocalOriginFailures: 5,
      splitExternalLocalOriginErrors: true,
      intervalMs: 10_000,
      baseEjectionTimeMs: 30_000,
      maxEjectionPercent: 10,
      minHealthPercent: 0,
    });
    assert.deepEqual(tp.tls, { mode: 'DISABLE', subjectAltNames: [], sni: 'ext.example.com' });
    assert.deepEqual(tp.tunnel, { protocol: 'CONNECT', targetHost: '10.0.0.1', targetPort: 8443 });
    assert.deepEqual(tp.retryBudget, { percent: 20, minRetryConcurrency: 3 });
    assert.deepEqual(tp.loadBalancer, { consistentHash: { httpHeaderName: 'x-user', ringHash: { minimumRingSize: 2048 } }, warmupDurationMs: 10_000 });
  });

  test('workloadSelector and exportTo', () => {
    const m = model(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: local, namespace: shop}
spec:
  host: cart
  workloadSelector: {matchLabels: {app: checkout}}
  exportTo: ["."]
  trafficPolicy: {tls: {mode: SIMPLE}}
`);
    assert.deepEqual(m.destinationPolicies[0]!.workloadSelector, { app: 'checkout' });
    assert.deepEqual(m.destinationPolicies[0]!.exportTo, ['.']);
    const e = onlyError(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: local, namespace: shop}
spec:
  host: cart
  workloadSelector: {matchLabels: {app: checkout}}
  exportTo: ["*"]
`);
    assert.match(e.message, /workload selector cannot have exportTo beyond current namespace/);
  });

  test("errors: bad enum, duplicate subsets, Istio's traffic policy rules", () => {
    const dr = (body: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: reviews
${body}`;
    const enumText = dr(`  trafficPolicy:
    loadBalancer: {simple: LEAST_CONNECTIONS}
`);
    const e = onlyError(enumText);
    assert.equal(e.path, 'spec.trafficPolicy.loadBalancer.simple');
    assert.deepEqual(e.pos, posOf(enumText, 'simple'));
    assert.match(e.message, /invalid value "LEAST_CONNECTIONS"/);
    assert.match(onlyError(dr(`  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v1, labels: {version: v2}}
`)).message, /duplicate subset names: v1/);
    assert.match(onlyError(dr(`  trafficPolicy: {}
`)).message, /traffic policy must have at least one field/);
    assert.match(onlyError(dr(`  trafficPolicy:
    outlierDetection: {consecutiveLocalOriginFailures: 3}
`)).message, /split external local origin errors is set to false/);
    assert.match(onlyError(dr(`  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: true, maglev: {tableSize: 1000}}}
`)).message, /tableSize must be a prime number/);
    assert.deepEqual(errorsOf(load(dr(`  trafficPolicy:
    tls: {mode: MUTUAL}
    outlierDetection: {interval: 10s}
`)).diagnostics).map((d) => d.message), ['spec.trafficPolicy.tls: client certificate required for mutual tls', 'spec.trafficPolicy.tls: private key required for mutual tls']);
    const localityErrs = errorsOf(load(dr(`  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute:
        - from: us-west/zone1/*
          to: {us-west/zone1/*: 80, us-west/zone2/*: 10}
`)).diagnostics);
    assert.equal(localityErrs.length, 1);
    assert.match(localityErrs[0]!.message, /total locality weight 90 != 100/);
    assert.match(onlyError(dr(`  trafficPolicy:
    outlierDetection: {maxEjectionPercent: 101}
`)).message, /percentage must be 0-100/);
    assert.match(onlyError(dr(`  trafficPolicy:
    connectionPool: {http: {maxRetries: -1}}
`)).message, /max retries must be non-negative/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('ServiceEntry, WorkloadEntry, WorkloadGroup', () => {
  test('a ServiceEntry is one Service per host, with Istio defaults', () => {
    const m = model(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: egress, labels: {team: net}}
spec:
  hosts: [api.example.com, "*.cdn.example.com"]
  ports:
  - {number: 443, name: https, protocol: TLS}
  - {number: 80, name: http, protocol: http, targetPort: 8080}
  - {number: 9000, name: raw}
  subjectAltNames: [spiffe://example.com/api]
`);
    assert.equal(m.services.length, 2);
    const [a, b] = m.services;
    assert.equal(a!.hostname, 'api.example.com');
    assert.equal(b!.hostname, '*.cdn.example.com');
    assert.equal(a!.origin.path, 'spec.hosts[0]');
    assert.deepEqual({ ...a!, origin: undefined }, {
      hostname: 'api.example.com',
      namespace: 'egress',
      ports: [
        { name: 'https', port: 443, targetPort: 443, protocol: 'TLS', protocolSource: 'protocol' },
        { name: 'http', port: 80, targetPort: 8080, protocol: 'HTTP', protocolSource: 'protocol' },
        { name: 'raw', port: 9000, targetPort: 9000, protocol: 'UNKNOWN', protocolSource: 'none' },
      ],
      addresses: [],
      resolution: 'NONE',
      location: 'MESH_EXTERNAL',
      exportTo: ['*'],
      labels: { team: 'net' },
      endpoints: [],
      subjectAltNames: ['spiffe://example.com/api'],
      origin: undefined,
    });
  });

  test('static endpoints, mesh-internal location, workload selector', () => {
    const m = model(`apiVersion: networking.istio.io/v1alpha3
kind: ServiceEntry
metadata: {name: vms, namespace: legacy}
spec:
  hosts: [vm.legacy.svc.cluster.local]
  addresses: [240.0.0.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP}]
  endpoints:
  - address: 10.1.0.5
    ports: {http: 9090}
    labels: {version: v1}
    locality: us-east/zone1
    weight: 3
    network: vpc1
    serviceAccount: vm-sa
  - address: 10.1.0.6
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: selected, namespace: legacy}
spec:
  hosts: [sel.legacy.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  workloadSelector: {labels: {app: vm}}
`);
    const vmSvc = m.services.find((s) => s.hostname === 'vm.legacy.svc.cluster.local')!;
    assert.equal(vmSvc.location, 'MESH_INTERNAL');
    assert.equal(vmSvc.resolution, 'STATIC');
    assert.deepEqual(vmSvc.addresses, ['240.0.0.10']);
    assert.deepEqual(vmSvc.endpoints, [
      { address: '10.1.0.5', ports: { http: 9090 }, labels: { version: 'v1' }, locality: 'us-east/zone1', weight: 3, network: 'vpc1', serviceAccount: 'vm-sa' },
      { address: '10.1.0.6', ports: {}, labels: {} },
    ]);
    assert.equal(vmSvc.selector, undefined);
    const sel = m.services.find((s) => s.hostname === 'sel.legacy.svc.cluster.local')!;
    assert.deepEqual(sel.selector, { app: 'vm' });
  });

  test("ServiceEntry errors: NONE with endpoints, endpoint ports, unknown protocol, DNS without FQDN, wildcard '*'", () => {
    const se = (spec: string) => `apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: s}\nspec:\n${spec}`;
    assert.match(onlyError(se(`  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 1.2.3.4}]
`)).message, /no endpoints should be provided for resolution type none/);
    assert.match(onlyError(se(`  hosts: [a.example.com]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 1.2.3.4, ports: {grpc: 90}}]
`)).message, /endpoint port 90 is not defined by the service entry/);
    const protoText = se(`  hosts: [a.example.com]
  ports: [{number: 80, name: http, protocol: SPDY}]
`);
    const pe = onlyError(protoText);
    assert.equal(pe.path, 'spec.ports[0].protocol');
    assert.match(pe.message, /unsupported protocol: SPDY/);
    assert.match(onlyError(se(`  hosts: ["*.example.com"]
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
`)).message, /hosts must be FQDN if no endpoints are provided for resolution mode DNS/);
    assert.match(onlyError(se(`  hosts: ["*"]
  ports: [{number: 80, name: http, protocol: HTTP}]
`)).message, /invalid host \*/);
    assert.match(onlyError(se(`  hosts: [a.example.com, b.example.com]
  resolution: DNS
  ports: [{number: 5432, name: tcp-db, protocol: TCP}]
`)).message, /multiple hosts provided with non-HTTP, non-TLS ports/);
    const portText = se(`  hosts: [a.example.com]
  ports: [{number: 0, name: http, protocol: HTTP}]
`);
    const e = onlyError(portText);
    assert.equal(e.path, 'spec.ports[0].number');
    assert.deepEqual(e.pos, posOf(portText, 'number: 0'));
  });

  test('a WorkloadEntry is a Workload of kind WorkloadEntry', () => {
    const m = model(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: legacy}
spec:
  address: 10.1.0.5
  ports: {http: 9090}
  labels: {app: vm, version: v1}
  locality: us-east/zone1
  weight: 2
  network: vpc1
  serviceAccount: vm-sa
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-2, namespace: legacy}
spec:
  address: vm2.corp.example.com
`);
    assert.deepEqual(m.workloads.map((w) => ({ ...w, origin: undefined })), [
      { kind: 'WorkloadEntry', name: 'vm-1', namespace: 'legacy', address: '10.1.0.5', labels: { app: 'vm', version: 'v1' }, ports: { http: 9090 }, locality: 'us-east/zone1', weight: 2, network: 'vpc1', serviceAccount: 'vm-sa', origin: undefined },
      { kind: 'WorkloadEntry', name: 'vm-2', namespace: 'legacy', address: 'vm2.corp.example.com', labels: {}, ports: {}, serviceAccount: '', origin: undefined },
    ]);
    assert.match(onlyError(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: nowhere}
spec:
  labels: {app: vm}
`).message, /address is required/);
  });

  test('a WorkloadGroup is validated and kept, and adds nothing to the model', () => {
    const text = `apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: reviews, namespace: bookinfo}
spec:
  metadata:
    labels: {app: reviews}
  template:
    ports: {http: 9080}
    serviceAccount: bookinfo-reviews
  probe:
    periodSeconds: 5
    httpGet: {path: /ready, port: 9080}
`;
    const parsed = parseConfigText(text, FILE);
    const built = buildModel(parsed.resources);
    assert.deepEqual(built.diagnostics, []);
    assert.equal(built.resources.length, 1);
    assert.deepEqual((built.resources[0]!.spec as { template: unknown }).template, { ports: { http: 9080 }, serviceAccount: 'bookinfo-reviews' });
    assert.deepEqual(built.model.workloads, []);
    assert.deepEqual(built.model.services, []);
    assert.match(onlyError(text.replace('httpGet: {path: /ready, port: 9080}', 'timeoutSeconds: 1')).message, /a probe needs one health check method/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('Sidecar and Gateway', () => {
  test('a Sidecar becomes a SidecarScope', () => {
    const m = model(`apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bookinfo}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: http}
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - port: {number: 3306, protocol: MYSQL, name: mysql}
    bind: 127.0.0.1
    hosts: ["*/mysql.db.svc.cluster.local"]
  - hosts: ["./*", "istio-system/*"]
  outboundTrafficPolicy: {mode: ALLOW_ANY}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: locked}
spec:
  outboundTrafficPolicy: {}
`);
    assert.equal(m.sidecars.length, 2);
    const [a, b] = m.sidecars;
    assert.deepEqual({ ...a!, origin: undefined }, {
      namespace: 'bookinfo',
      workloadSelector: { app: 'ratings' },
      egress: [
        { port: { number: 3306, protocol: 'MySQL', name: 'mysql' }, bind: '127.0.0.1', hosts: ['*/mysql.db.svc.cluster.local'] },
        { hosts: ['bookinfo/*', 'istio-system/*'], writtenHosts: ['./*', 'istio-system/*'] },
      ],
      ingress: [{ port: { number: 9080, protocol: 'HTTP', name: 'http' }, defaultEndpoint: '127.0.0.1:8080' }],
      outboundTrafficPolicy: 'ALLOW_ANY',
      origin: undefined,
    });
    assert.equal(b!.outboundTrafficPolicy, 'REGISTRY_ONLY', 'a policy without mode is REGISTRY_ONLY');
    assert.equal(b!.workloadSelector, undefined);
  });

  test('Sidecar errors', () => {
    const sc = (spec: string) => `apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: s}\nspec:\n${spec}`;
    assert.match(onlyError(sc('  workloadSelector: {labels: {app: a}}\n')).message, /empty configuration/);
    assert.match(onlyError(sc(`  egress:
  - hosts: [mysql.db.svc.cluster.local]
`)).message, /host must be of form namespace\/dnsName/);
    assert.match(onlyError(sc(`  egress:
  - hosts: ["*/*"]
  - port: {number: 80, protocol: HTTP, name: http}
    hosts: ["*/*"]
`)).message, /empty port should be the last listener/);
    assert.match(onlyError(sc(`  outboundTrafficPolicy:
    mode: REGISTRY_ONLY
    egressProxy: {host: proxy.example.com, port: {number: 3128}}
`)).message, /egress_proxy must be set only with ALLOW_ANY/);
  });

  test('a Gateway becomes a GatewayDef (TLS mode PASSTHROUGH by default)', () => {
    const m = model(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: edge}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["bookinfo/bookinfo.example.com"]
    tls: {mode: SIMPLE, credentialName: bookinfo-cert, minProtocolVersion: TLSV1_2}
  - port: {number: 15443, name: tls, protocol: TLS}
    hosts: ["*.local"]
    tls: {}
    name: passthrough
`);
    assert.equal(m.gateways.length, 1);
    const g = m.gateways[0]!;
    assert.deepEqual({ ...g, origin: undefined }, {
      family: 'istio',
      name: 'bookinfo-gateway',
      namespace: 'edge',
      selector: { istio: 'ingressgateway' },
      servers: [
        { port: { number: 80, name: 'http', protocol: 'HTTP' }, hosts: ['*'], tls: { mode: 'PASSTHROUGH', httpsRedirect: true } },
        { port: { number: 443, name: 'https', protocol: 'HTTPS' }, hosts: ['bookinfo/bookinfo.example.com'], tls: { mode: 'SIMPLE', credentialName: 'bookinfo-cert', minProtocolVersion: 'TLSV1_2' } },
        { port: { number: 15443, name: 'tls', protocol: 'TLS' }, hosts: ['*.local'], name: 'passthrough', tls: { mode: 'PASSTHROUGH' } },
      ],
      origin: undefined,
    });
  });

  test('Gateway errors', () => {
    const gw = (spec: string, name = 'gw') => `apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: ${name}}\nspec:\n${spec}`;
    assert.match(onlyError(gw(`  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
`)).message, /server must have TLS settings for HTTPS\/TLS protocols/);
    assert.deepEqual(errorsOf(load(gw(`  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["*"]
    tls: {mode: SIMPLE}
`)).diagnostics).map((d) => d.message), ['spec.servers[0].tls: SIMPLE TLS requires a server certificate', 'spec.servers[0].tls: SIMPLE TLS requires a private key']);
    assert.match(onlyError(gw(`  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`)).message, /port names in servers must be unique/);
    assert.match(onlyError(gw(`  servers:
  - port: {number: 80, name: http, protocol: HTTPX}
    hosts: ["*"]
`)).message, /invalid protocol "HTTPX"/);
    const dotted = onlyError(gw(`  servers:
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
`, 'my.gateway'));
    assert.equal(dotted.path, 'metadata.name');
    assert.match(dotted.message, /invalid gateway name/);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('security.istio.io', () => {
  test('PeerAuthentication: mode, inheritance (UNSET), port-level modes', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: ns, namespace: bookinfo}
spec: {}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: ratings, namespace: bookinfo}
spec:
  selector: {matchLabels: {app: ratings}}
  mtls: {mode: PERMISSIVE}
  portLevelMtls:
    8080: {mode: DISABLE}
    9090: {}
`);
    assert.deepEqual(m.peerAuthentications.map((p) => ({ ...p, origin: undefined })), [
      { namespace: 'istio-system', mode: 'STRICT', portLevel: {}, origin: undefined },
      { namespace: 'bookinfo', mode: 'UNSET', portLevel: {}, origin: undefined },
      { namespace: 'bookinfo', selector: { app: 'ratings' }, mode: 'PERMISSIVE', portLevel: { 8080: 'DISABLE', 9090: 'UNSET' }, origin: undefined },
    ]);
    const pa = (spec: string) => `apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p}\nspec:\n${spec}`;
    assert.match(onlyError(pa(`  portLevelMtls:
    8080: {mode: DISABLE}
`)).message, /cannot have port level mTLS/);
    const enumText = pa(`  mtls: {mode: strict}
`);
    const e = onlyError(enumText);
    assert.equal(e.path, 'spec.mtls.mode');
    assert.deepEqual(e.pos, posOf(enumText, 'mode'));
    assert.match(onlyError(pa(`  selector: {matchLabels: {app: a}}
  portLevelMtls:
    70000: {mode: DISABLE}
`)).message, /port must be in range 1..65535/);
  });

  test('AuthorizationPolicy: allow-nothing, allow-all, rules, ALLOW by default', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: bookinfo}
spec: {}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-all, namespace: bookinfo}
spec:
  rules: [{}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: DENY
  rules:
  - from:
    - source: {notNamespaces: [foo], ipBlocks: [10.0.0.0/8]}
    - source: {serviceAccounts: [sleep, bar/client]}
    to:
    - operation: {methods: [POST], paths: ["/admin*"], notPorts: ["8080"]}
    when:
    - key: request.auth.claims[iss]
      values: ["https://accounts.google.com"]
      notValues: ["https://evil.example.com"]
`);
    const [nothing, all, deny] = m.authorizationPolicies;
    assert.deepEqual({ ...nothing!, origin: undefined }, { namespace: 'bookinfo', action: 'ALLOW', rules: [], origin: undefined });
    assert.deepEqual(all!.rules, [{ from: [], to: [], when: [] }]);
    assert.equal(all!.action, 'ALLOW');
    assert.deepEqual({ ...deny!, origin: undefined }, {
      namespace: 'foo',
      selector: { app: 'httpbin' },
      action: 'DENY',
      rules: [{
        from: [
          { namespaces: { notValues: ['foo'] }, ipBlocks: { values: ['10.0.0.0/8'] } },
          { serviceAccounts: [{ namespace: 'foo', name: 'sleep' }, { namespace: 'bar', name: 'client' }] },
        ],
        to: [{ methods: { values: ['POST'] }, paths: { values: ['/admin*'] }, ports: { notValues: ['8080'] } }],
        when: [{ key: 'request.auth.claims[iss]', values: ['https://accounts.google.com'], notValues: ['https://evil.example.com'] }],
      }],
      origin: undefined,
    });
  });

  test('AuthorizationPolicy: CUSTOM provider and targetRefs', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ext, namespace: edge}
spec:
  targetRefs:
  - {kind: Gateway, group: gateway.networking.k8s.io, name: public}
  action: CUSTOM
  provider: {name: my-ext-authz}
  rules:
  - to: [{operation: {paths: ["/api/*"]}}]
`);
    const p = m.authorizationPolicies[0]!;
    assert.equal(p.action, 'CUSTOM');
    assert.equal(p.provider, 'my-ext-authz');
    assert.deepEqual(p.targetRefs, [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'public' }]);
    assert.equal(p.selector, undefined);
  });

  test("AuthorizationPolicy errors (Istio's validation)", () => {
    const ap = (spec: string) => `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p}\nspec:\n${spec}`;
    assert.match(onlyError(ap('  action: DENY\n')).message, /DENY action without `rules` is meaningless/);
    assert.match(onlyError(ap('  action: CUSTOM\n  rules: [{}]\n')).message, /`provider.name` must not be empty/);
    assert.match(onlyError(ap('  provider: {name: x}\n  rules: [{}]\n')).message, /`provider` must not be with non CUSTOM action/);
    assert.match(onlyError(ap('  rules:\n  - from: [{source: {}}]\n')).message, /`from.source` must not be empty/);
    assert.match(onlyError(ap('  rules:\n  - from: [{source: {principals: [a], serviceAccounts: [b]}}]\n')).message, /cannot set serviceAccounts with namespaces or principals/);
    assert.match(onlyError(ap('  rules:\n  - to: [{operation: {ports: ["http"]}}]\n')).message, /bad port \(http\)/);
    assert.match(onlyError(ap('  rules:\n  - when: [{key: "request.auth.claims[iss]"}]\n')).message, /at least one of `values` or `notValues`/);
    assert.match(onlyError(ap('  rules:\n  - when: [{key: "destination.labels[app]", values: [x]}]\n')).message, /replaced by the workload selector/);
    assert.match(onlyError(ap('  rules:\n  - when: [{key: source.ip, values: [300.1.1.1]}]\n')).message, /bad IP address/);
    assert.match(onlyError(ap('  rules:\n  - to: [{operation: {paths: ["/a/{**}/b/{*}"]}}]\n')).message, /\{\*\*\} is not the last operator/);
    assert.match(onlyError(ap('  selector: {matchLabels: {app: a}}\n  targetRef: {kind: Service, name: a}\n')).message, /only one of targetRefs or workloadSelector/);
    const wrong = ap(`  action: REJECT
`);
    const e = onlyError(wrong);
    assert.equal(e.path, 'spec.action');
    assert.deepEqual(e.pos, posOf(wrong, 'action'));
  });

  test('RequestAuthentication: JWT rules with the default token locations', () => {
    const m = model(`apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt-example, namespace: istio-system}
spec:
  selector: {matchLabels: {istio: ingressgateway}}
  jwtRules:
  - issuer: testing@secure.istio.io
    jwksUri: https://example.com/jwks.json
  - issuer: other@example.com
    jwks_uri: https://other.example.com/keys
    audiences: [api]
    fromHeaders: [{name: x-jwt-assertion, prefix: "Bearer "}]
    fromCookies: [session]
    outputPayloadToHeader: x-jwt-payload
    forwardOriginalToken: true
    outputClaimToHeaders: [{header: x-user, claim: sub}]
`);
    const ra = m.requestAuthentications[0]!;
    assert.deepEqual(ra.selector, { istio: 'ingressgateway' });
    assert.deepEqual(ra.jwtRules, [
      { issuer: 'testing@secure.istio.io', audiences: [], jwksUri: 'https://example.com/jwks.json', fromHeaders: [{ name: 'Authorization', prefix: 'Bearer ' }], fromParams: ['access_token'], fromCookies: [], forwardOriginalToken: false, outputClaimToHeaders: [] },
      { issuer: 'other@example.com', audiences: ['api'], jwksUri: 'https://other.example.com/keys', fromHeaders: [{ name: 'x-jwt-assertion', prefix: 'Bearer ' }], fromParams: [], fromCookies: ['session'], outputPayloadToHeader: 'x-jwt-payload', forwardOriginalToken: true, outputClaimToHeaders: [{ header: 'x-user', claim: 'sub' }] },
    ]);
    const ra2 = (rule: string) => `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: r}\nspec:\n  jwtRules:\n  - ${rule}\n`;
    assert.match(onlyError(ra2('{audiences: [a]}')).message, /issuer or jwksUri must be non-empty string/);
    assert.match(onlyError(ra2('{issuer: a, jwksUri: "ftp://x/keys"}')).message, /url must have scheme http/);
    assert.match(onlyError(ra2('{issuer: a, jwksUri: "https://x/keys", jwks: "{}"}')).message, /only one of jwks or jwksUri/);
    assert.match(onlyError(ra2('{issuer: a, jwks: "not json"}')).message, /jwks parse error/);
    assert.match(onlyError(ra2('{issuer: a, outputClaimToHeaders: [{header: "x user", claim: sub}]}')).message, /not a valid header name/);
  });
});
