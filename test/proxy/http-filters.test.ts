// HTTP filter registry and request-path helpers on hand-built configs: http_filters validation (router last,
// duplicates, unknown / optional filters, ECDS), per-route filter configs compiled and merged across levels at RDS
// compile time (fault replaces, CORS merges field by field), errors naming the field, and the pure helpers of the
// request path (hash policy evaluation and combination, Set-Cookie values, the -shadow authority).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { StringValueSchema } from '@bufbuild/protobuf/wkt';
import { pack } from '../../src/xds/index.js';
import { ConfigError } from '../../src/proxy/config-error.js';
import { compileHttpFilters } from '../../src/proxy/http/filters/index.js';
import { CorsSettings } from '../../src/proxy/http/filters/cors.js';
import { FaultSettings } from '../../src/proxy/http/filters/fault.js';
import { compileRouteConfiguration } from '../../src/proxy/http/router/index.js';
import { requestHash, setCookieValue, cookieValue } from '../../src/proxy/http/route-path/hash.js';
import { shadowAuthority } from '../../src/proxy/http/route-path/mirror.js';
import { xxhash64 } from '../../src/proxy/upstream/lb/xxhash64.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpFilterSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { HTTPFaultSchema } from '../../src/xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { CorsPolicySchema, CorsSchema } from '../../src/xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { FractionalPercent_DenominatorType } from '../../src/xds/gen/envoy/type/v3/percent_pb.js';
import type { RequestHead } from '../../src/proxy/http/headers.js';

type FilterInit = MessageInitShape<typeof HttpFilterSchema>;

const router: FilterInit = { name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: pack(RouterSchema, {}) } };
const fault: FilterInit = { name: 'envoy.filters.http.fault', configType: { case: 'typedConfig', value: pack(HTTPFaultSchema, {}) } };
const cors: FilterInit = { name: 'envoy.filters.http.cors', configType: { case: 'typedConfig', value: pack(CorsSchema, {}) } };

function chain(list: FilterInit[]) {
  const warnings: string[] = [];
  const filters = compileHttpFilters(
    list.map((f) => create(HttpFilterSchema, f)),
    { listener: 'l', field: 'filter_chains[0].filters[0].typed_config', stats: undefined, warn: (m) => warnings.push(m) },
  );
  return { filters, warnings };
}

function chainError(list: FilterInit[]): string {
  try {
    chain(list);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.message;
  }
  assert.fail('expected a ConfigError');
}

describe('http_filters: the registry', () => {
  test('fault and cors compile into the chain in order; the router is not part of it', () => {
    const { filters, warnings } = chain([fault, cors, router]);
    assert.deepEqual(
      filters.map((f) => f.name),
      ['envoy.filters.http.fault', 'envoy.filters.http.cors'],
    );
    assert.deepEqual(warnings, []);
    assert.equal(chain([router]).filters.length, 0);
  });

  test('the router must be present and last; names unique; unknown filters name their index', () => {
    assert.match(chainError([]), /http_filters: must end with envoy\.filters\.http\.router/);
    assert.match(chainError([router, fault]), /http_filters\[0\]: the router filter must be the last HTTP filter/);
    assert.match(chainError([fault]), /http_filters\[0\]: the last HTTP filter must be envoy\.filters\.http\.router/);
    assert.match(chainError([fault, fault, router]), /http_filters\[1\]\.name: duplicate HTTP filter name envoy\.filters\.http\.fault/);
    assert.match(
      chainError([{ name: 'x.lua', configType: { case: 'typedConfig', value: pack(StringValueSchema, { value: 'x' }) } }, router]),
      /listener "l": filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[0\]: HTTP filter x\.lua \(google\.protobuf\.StringValue\) is not supported/,
    );
    assert.match(chainError([{ name: 'ecds', configType: { case: 'configDiscovery', value: {} } }, router]), /http_filters\[0\]\.config_discovery: filter config discovery \(ECDS\) is not supported/);
  });

  test('an optional unknown filter is skipped with a warning; lookup is by type URL first, then by name', () => {
    const { filters, warnings } = chain([{ name: 'x.unknown', isOptional: true }, { name: 'my-fault', configType: fault.configType }, { name: 'envoy.filters.http.cors' }, router]);
    assert.deepEqual(
      filters.map((f) => f.name),
      ['my-fault', 'envoy.filters.http.cors'],
    );
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /http_filters\[0\]: optional filter x\.unknown is not supported and is skipped/);
  });

  test('bad filter-level fault config is a listener ConfigError with the field path', () => {
    const bad: FilterInit = {
      name: 'envoy.filters.http.fault',
      configType: { case: 'typedConfig', value: pack(HTTPFaultSchema, { abort: { errorType: { case: 'httpStatus', value: 700 }, percentage: { numerator: 1 } } }) },
    };
    assert.match(chainError([bad, router]), /^listener "l": filter_chains\[0\]\.filters\[0\]\.typed_config\.http_filters\[0\]\.typed_config\.abort\.http_status: must be in \[200, 600\), got 700$/);
    const rl: FilterInit = { name: 'envoy.filters.http.fault', configType: { case: 'typedConfig', value: pack(HTTPFaultSchema, { responseRateLimit: { limitType: { case: 'fixedLimit', value: { limitKbps: 1n } } } }) } };
    assert.match(chainError([rl, router]), /response_rate_limit: response rate limiting faults are not supported/);
  });
});

describe('typed_per_filter_config: compiled at RDS time', () => {
  const pct = (n: number) => ({ numerator: n, denominator: FractionalPercent_DenominatorType.TEN_THOUSAND });
  const corsAny = (p: MessageInitShape<typeof CorsPolicySchema>) => pack(CorsPolicySchema, p);
  const rc = (vh: Record<string, ReturnType<typeof pack>>, route: Record<string, ReturnType<typeof pack>>) =>
    compileRouteConfiguration(
      create(RouteConfigurationSchema, {
        name: 'rc',
        virtualHosts: [
          {
            name: 'vh',
            domains: ['*'],
            typedPerFilterConfig: vh,
            routes: [{ match: { pathSpecifier: { case: 'prefix', value: '/' } }, action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'c' } } }, typedPerFilterConfig: route }],
          },
        ],
      }),
    );
  const h: RequestHead = { method: 'GET', path: '/', authority: 'x', scheme: 'http', headers: [], httpVersion: '1.1' };

  test('fault: the most specific level replaces; FractionalPercent denominators are kept', () => {
    const c = rc(
      { 'envoy.filters.http.fault': pack(HTTPFaultSchema, { abort: { errorType: { case: 'httpStatus', value: 503 }, percentage: pct(1) } }) },
      { 'envoy.filters.http.fault': pack(HTTPFaultSchema, { delay: { faultDelaySecifier: { case: 'fixedDelay', value: { seconds: 1n } }, percentage: pct(2500) } }) },
    );
    const s = c.route(h)!.compiledFilterConfig('envoy.filters.http.fault');
    assert.ok(s instanceof FaultSettings);
    assert.equal(s.abortHttp, undefined, 'the route config replaces the virtual host one');
    assert.equal(s.delayMs, 1000);
    assert.deepEqual([s.delayNum, s.delayDen], [2500, 10_000]);
  });

  test('CORS: each field from the most specific level that sets it; enabled from the most specific policy', () => {
    const c = rc(
      { 'envoy.filters.http.cors': corsAny({ allowOriginStringMatch: [{ matchPattern: { case: 'exact', value: 'https://a' } }], allowMethods: 'GET', maxAge: '10', allowCredentials: true }) },
      { 'envoy.filters.http.cors': corsAny({ allowMethods: 'PUT', filterEnabled: { defaultValue: { numerator: 0 } } }) },
    );
    const s = c.route(h)!.compiledFilterConfig('envoy.filters.http.cors');
    assert.ok(s instanceof CorsSettings);
    assert.equal(s.allowMethods, 'PUT');
    assert.equal(s.maxAge, '10');
    assert.equal(s.allowCredentials, true);
    assert.ok(s.originAllowed('https://a'));
    assert.ok(!s.originAllowed('https://b'));
    assert.deepEqual(s.enabled, [0, 100]);
  });

  test('bad per-route configs NACK the route configuration naming the field; unknown types only warn', () => {
    assert.throws(
      () => rc({}, { 'envoy.filters.http.fault': pack(HTTPFaultSchema, { delay: { percentage: pct(1) } }) }),
      /route_config "rc": virtual_hosts\[0\]\.routes\[0\]\.typed_per_filter_config\["envoy\.filters\.http\.fault"\]\.delay: one of fixed_delay or header_delay is required/,
    );
    assert.throws(
      () => rc({ 'envoy.filters.http.cors': corsAny({ allowOriginStringMatch: [{ matchPattern: { case: 'safeRegex', value: { regex: '(' } } }] }) }, {}),
      /virtual_hosts\[0\]\.typed_per_filter_config\["envoy\.filters\.http\.cors"\]\.allow_origin_string_match\[0\]\.safe_regex\.regex: invalid regex/,
    );
    const c = rc({}, { 'x.other': pack(StringValueSchema, { value: 'v' }) });
    assert.equal(c.route(h)!.compiledFilterConfig('x.other'), undefined);
    assert.ok(c.warnings.some((w) => /google\.protobuf\.StringValue for filter x\.other is not understood by any filter/.test(w)));
  });
});

describe('request path helpers', () => {
  const conn = { remoteAddress: '127.0.0.1', remotePort: 40000, localAddress: '127.0.0.1', localPort: 15001 };
  const head = (headers: string[], path = '/'): RequestHead => ({ method: 'GET', path, authority: 'a', scheme: 'http', headers, httpVersion: '1.1' });

  test('hash policies: xxHash64 of the input; several combine as rotl(hash, 1) ^ next; terminal stops', () => {
    const hdr = { kind: 'header' as const, headerName: 'x-user', terminal: false };
    const q = { kind: 'queryParameter' as const, name: 'u', terminal: false };
    const cookies: string[] = [];
    assert.equal(requestHash([hdr], head(['X-User', 'alice']), conn, cookies), xxhash64('alice'));
    assert.equal(requestHash([hdr], head([]), conn, cookies), undefined);
    const a = xxhash64('alice');
    const b = xxhash64('bob');
    const rotl = ((a << 1n) | (a >> 63n)) & 0xffffffffffffffffn;
    assert.equal(requestHash([hdr, q], head(['x-user', 'alice'], '/p?x=1&u=bob'), conn, cookies), rotl ^ b);
    assert.equal(requestHash([{ ...hdr, terminal: true }, q], head(['x-user', 'alice'], '/p?u=bob'), conn, cookies), a);
    assert.equal(requestHash([q], head([], '/p?uu=1&u=&u=2'), conn, cookies), xxhash64(''), 'the first value, empty included');
    assert.equal(requestHash([{ kind: 'sourceIp', terminal: false }], head([]), { ...conn, remoteAddress: '::ffff:10.0.0.1' }, cookies), xxhash64('10.0.0.1'));
    assert.deepEqual(cookies, []);
  });

  test('cookies: parsed from any Cookie header (quotes stripped); generated with Set-Cookie when absent and a ttl is set', () => {
    assert.equal(cookieValue(['cookie', 'a=1; sid="xyz"', 'Cookie', 'sid=other'], 'sid'), 'xyz');
    assert.equal(cookieValue(['cookie', 'a=1'], 'sid'), '');
    const pol = { kind: 'cookie' as const, name: 'sid', path: '/app', ttlMs: 90_500, attributes: [{ name: 'SameSite', value: 'Lax' }, { name: 'Secure', value: '' }], terminal: false };
    const out: string[] = [];
    const hash = requestHash([pol], head([]), conn, out);
    assert.equal(out.length, 1);
    const m = /^sid="([0-9a-f]{16})"; Max-Age=90; Path=\/app; SameSite=Lax; Secure; HttpOnly$/.exec(out[0]!);
    assert.ok(m, out[0]);
    assert.equal(m[1], xxhash64('127.0.0.1:40000127.0.0.1:15001').toString(16).padStart(16, '0'));
    assert.equal(hash, xxhash64(m[1]!));
    assert.equal(requestHash([{ ...pol, ttlMs: undefined }], head([]), conn, out), undefined, 'no ttl: no cookie, no hash');
    assert.equal(setCookieValue('k', 'v', '', 0, []), 'k="v"; HttpOnly');
  });

  test('-shadow goes before the port (IPv6 literals too)', () => {
    assert.equal(shadowAuthority('reviews'), 'reviews-shadow');
    assert.equal(shadowAuthority('reviews:9080'), 'reviews-shadow:9080');
    assert.equal(shadowAuthority('[::1]:80'), '[::1]-shadow:80');
    assert.equal(shadowAuthority('[::1]'), '[::1]-shadow');
  });
});
