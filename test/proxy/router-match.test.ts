// HTTP router: virtual host selection and route matching (Envoy semantics), on hand-built RouteConfigurations.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import type { RequestHead } from '../../src/proxy/http/headers.js';
import { compileRouteConfiguration } from '../../src/proxy/http/router/index.js';
import type { CompiledRouteConfig, RouteContext } from '../../src/proxy/http/router/index.js';

type RcInit = MessageInitShape<typeof RouteConfigurationSchema>;
type VhInit = NonNullable<RcInit['virtualHosts']>[number];
type RouteInit = NonNullable<VhInit['routes']>[number];
type MatchInit = NonNullable<RouteInit['match']>;

function compile(init: RcInit): CompiledRouteConfig {
  return compileRouteConfiguration(create(RouteConfigurationSchema, { name: 'test', ...init } as RcInit));
}

function head(authority: string, path: string, headers: string[] = [], method = 'GET', scheme: 'http' | 'https' = 'http'): RequestHead {
  return { method, path, authority, scheme, headers, httpVersion: '1.1' };
}

/** A route to cluster `name` matching `match`. */
function to(name: string, match: MatchInit, routeName = name): RouteInit {
  return { name: routeName, match, action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: name } } } };
}

function vhost(name: string, domains: string[], routes: RouteInit[] = [to(name, { pathSpecifier: { case: 'prefix', value: '/' } })]): VhInit {
  return { name, domains, routes };
}

/** One virtual host for every authority with the given routes. */
function single(routes: RouteInit[], extra: Partial<RcInit> = {}): CompiledRouteConfig {
  return compile({ virtualHosts: [vhost('vh', ['*'], routes)], ...extra } as RcInit);
}

function clusterFor(c: CompiledRouteConfig, h: RequestHead, ctx?: RouteContext): string | undefined {
  return c.route(h, ctx)?.cluster;
}

const prefix = (value: string): MatchInit => ({ pathSpecifier: { case: 'prefix', value } });

describe('virtual host selection', () => {
  const c = compile({
    virtualHosts: [
      vhost('exact', ['api.example.com', 'api.example.com:8080', 'Mixed.Case.Com']),
      vhost('suffix', ['*.example.com']),
      vhost('suffix-longer', ['*-bar.example.com']),
      vhost('suffix-specific', ['*.foo.example.com']),
      vhost('prefix', ['api.*']),
      vhost('prefix-longer', ['api.internal.*']),
      vhost('v6', ['[::1]:80', '[::1]']),
      vhost('default', ['*']),
    ],
  });
  const at = (authority: string): string | undefined => c.virtualHostFor(authority);

  test('exact domains win over wildcards; matching ignores case', () => {
    assert.equal(at('api.example.com'), 'exact');
    assert.equal(at('API.Example.COM'), 'exact');
    assert.equal(at('mixed.case.com'), 'exact');
    assert.equal(c.route(head('API.EXAMPLE.COM', '/'))?.cluster, 'exact');
  });

  test('the port is part of the authority: a domain without a port matches only requests without one', () => {
    assert.equal(at('api.example.com:8080'), 'exact');
    // www.example.com:9090: *.example.com does not match (the suffix is "com:9090"), and no prefix wildcard does.
    assert.equal(at('www.example.com:9090'), 'default');
    // api.example.com:9090 is not listed as such, but the prefix wildcard api.* covers it.
    assert.equal(at('api.example.com:9090'), 'prefix');
    assert.equal(at('[::1]:80'), 'v6');
    assert.equal(at('[::1]'), 'v6');
    assert.equal(at('[::1]:81'), 'default');
  });

  test('suffix wildcards, longest first; the wildcard never matches an empty string', () => {
    assert.equal(at('www.example.com'), 'suffix');
    assert.equal(at('foo-bar.example.com'), 'suffix-longer');
    assert.equal(at('a.foo.example.com'), 'suffix-specific');
    assert.equal(at('.example.com'), 'default');
    assert.equal(at('-bar.example.com'), 'suffix', '*.example.com matches "-bar.example.com", *-bar.example.com does not');
  });

  test('prefix wildcards come after suffix wildcards, longest first', () => {
    assert.equal(at('api.other.org'), 'prefix');
    assert.equal(at('api.internal.svc'), 'prefix-longer');
    assert.equal(at('api.'), 'default', 'the wildcard must match at least one character');
    // Both *.example.com (suffix) and api.* (prefix) match: suffixes win.
    assert.equal(at('api.x.example.com'), 'suffix');
  });

  test('* takes the rest; no * and no match, or no authority, means no route', () => {
    assert.equal(at('unknown.org'), 'default');
    const strict = compile({ virtualHosts: [vhost('only', ['only.example'])] });
    assert.equal(strict.route(head('other.example', '/')), undefined);
    assert.equal(strict.route(head('', '/')), undefined);
    assert.equal(strict.route(head('only.example', '/'))?.cluster, 'only');
  });

  test('a configuration with only * serves requests without an authority', () => {
    const onlyDefault = compile({ virtualHosts: [vhost('all', ['*'])] });
    assert.equal(onlyDefault.route(head('', '/'))?.cluster, 'all');
  });

  test('ignore_port_in_host_matching strips the port (IPv6 literals too)', () => {
    const ign = compile({ ignorePortInHostMatching: true, virtualHosts: [vhost('a', ['a.example']), vhost('v6', ['[::1]'])] });
    assert.equal(ign.virtualHostFor('a.example:1234'), 'a');
    assert.equal(ign.virtualHostFor('A.EXAMPLE'), 'a');
    assert.equal(ign.virtualHostFor('[::1]:8080'), 'v6');
    assert.equal(ign.virtualHostFor('b.example:1234'), undefined);
  });

  test('1,000 virtual hosts: each authority finds its own', () => {
    const many = compile({ virtualHosts: Array.from({ length: 1000 }, (_, i) => vhost(`svc-${i}`, [`svc-${i}.ns.svc.cluster.local:8080`, `svc-${i}:8080`])) });
    for (const i of [0, 1, 499, 999]) {
      assert.equal(many.route(head(`svc-${i}:8080`, '/x'))?.cluster, `svc-${i}`);
      assert.equal(many.route(head(`svc-${i}.ns.svc.cluster.local:8080`, '/x'))?.cluster, `svc-${i}`);
    }
    assert.equal(many.route(head('svc-1000:8080', '/')), undefined);
  });
});

describe('path matching', () => {
  test('prefix: matched against the path without query or fragment', () => {
    const c = single([to('api', prefix('/api')), to('other', prefix(''))]);
    assert.equal(clusterFor(c, head('h', '/api')), 'api');
    assert.equal(clusterFor(c, head('h', '/api/v1?x=1')), 'api');
    assert.equal(clusterFor(c, head('h', '/apix')), 'api', 'a plain prefix is not segment-aware');
    assert.equal(clusterFor(c, head('h', '/ap?i')), 'other', 'the query is not part of the path');
    assert.equal(clusterFor(c, head('h', '/ap#i')), 'other', 'nor the fragment');
    assert.equal(clusterFor(c, head('h', '/API')), 'other', 'case-sensitive by default');
  });

  test('path: exact path, query ignored', () => {
    const c = single([to('exact', { pathSpecifier: { case: 'path', value: '/a/b' } }), to('rest', prefix('/'))]);
    assert.equal(clusterFor(c, head('h', '/a/b')), 'exact');
    assert.equal(clusterFor(c, head('h', '/a/b?q=1')), 'exact');
    assert.equal(clusterFor(c, head('h', '/a/b/')), 'rest');
    assert.equal(clusterFor(c, head('h', '/a/bc')), 'rest');
  });

  test('case_sensitive false applies to prefix and path', () => {
    const c = single([
      to('p', { pathSpecifier: { case: 'prefix', value: '/Api' }, caseSensitive: false }),
      to('x', { pathSpecifier: { case: 'path', value: '/Exact' }, caseSensitive: false }),
      to('rest', prefix('/')),
    ]);
    assert.equal(clusterFor(c, head('h', '/API/x')), 'p');
    assert.equal(clusterFor(c, head('h', '/api')), 'p');
    assert.equal(clusterFor(c, head('h', '/eXACT?y')), 'x');
  });

  test('safe_regex: RE2 full match on the path without the query', () => {
    const c = single([
      to('num', { pathSpecifier: { case: 'safeRegex', value: { regex: '/items/[0-9]+' } } }),
      to('rest', prefix('/')),
    ]);
    assert.equal(clusterFor(c, head('h', '/items/42')), 'num');
    assert.equal(clusterFor(c, head('h', '/items/42?page=2')), 'num');
    assert.equal(clusterFor(c, head('h', '/items/42/x')), 'rest', 'a full match, not a search');
    assert.equal(clusterFor(c, head('h', '/x/items/42')), 'rest');
  });

  test('path_separated_prefix: the prefix must end at a segment boundary', () => {
    const c = single([to('sep', { pathSpecifier: { case: 'pathSeparatedPrefix', value: '/api' } }), to('rest', prefix('/'))]);
    assert.equal(clusterFor(c, head('h', '/api')), 'sep');
    assert.equal(clusterFor(c, head('h', '/api/')), 'sep');
    assert.equal(clusterFor(c, head('h', '/api/v1')), 'sep');
    assert.equal(clusterFor(c, head('h', '/api?x')), 'sep');
    assert.equal(clusterFor(c, head('h', '/apiv1')), 'rest');
  });

  test('ignore_path_parameters_in_path_matching drops ;params before matching', () => {
    const routes = [to('exact', { pathSpecifier: { case: 'path', value: '/a' } }), to('rest', prefix('/'))];
    assert.equal(clusterFor(single(routes), head('h', '/a;jsessionid=1')), 'rest');
    assert.equal(clusterFor(single(routes, { ignorePathParametersInPathMatching: true }), head('h', '/a;jsessionid=1?x')), 'exact');
  });

  test('connect_matcher matches CONNECT requests, which have no path', () => {
    const c = single([to('tunnel', { pathSpecifier: { case: 'connectMatcher', value: {} } }), to('rest', prefix('/'))]);
    assert.equal(clusterFor(c, head('h:443', '', [], 'CONNECT')), 'tunnel');
    assert.equal(clusterFor(c, head('h', '/x')), 'rest');
    const noConnect = single([to('rest', prefix('/'))]);
    assert.equal(noConnect.route(head('h:443', '', [], 'CONNECT')), undefined, 'a pathless request only matches CONNECT routes');
  });

  test('routes are tried in order: the first match wins', () => {
    const c = single([to('first', prefix('/a')), to('second', prefix('/a/b')), to('third', { pathSpecifier: { case: 'path', value: '/a/b/c' } })]);
    assert.equal(clusterFor(c, head('h', '/a/b/c')), 'first');
    const reordered = single([to('third', { pathSpecifier: { case: 'path', value: '/a/b/c' } }), to('second', prefix('/a/b')), to('first', prefix('/a'))]);
    assert.equal(clusterFor(reordered, head('h', '/a/b/c')), 'third');
    assert.equal(clusterFor(reordered, head('h', '/a/b/x')), 'second');
    assert.equal(clusterFor(reordered, head('h', '/a/x')), 'first');
    assert.equal(reordered.route(head('h', '/b')), undefined, 'no route matches: 404');
  });
});

describe('header matching', () => {
  const hdr = (h: NonNullable<MatchInit['headers']>[number]): MatchInit => ({ pathSpecifier: { case: 'prefix', value: '/' }, headers: [h] });
  const matches = (h: NonNullable<MatchInit['headers']>[number], headers: string[], extra: Partial<RequestHead> = {}): boolean => {
    const c = single([to('yes', hdr(h))]);
    return c.route({ ...head('h', '/', headers), ...extra }) !== undefined;
  };

  test('string_match: exact, prefix, suffix, contains, safe_regex, ignore_case', () => {
    const sm = (matchPattern: object, ignoreCase = false) => ({ name: 'x-v', headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern, ignoreCase } as never } });
    assert.equal(matches(sm({ case: 'exact', value: 'abc' }), ['x-v', 'abc']), true);
    assert.equal(matches(sm({ case: 'exact', value: 'abc' }), ['x-v', 'ABC']), false);
    assert.equal(matches(sm({ case: 'exact', value: 'abc' }, true), ['x-v', 'ABC']), true);
    assert.equal(matches(sm({ case: 'prefix', value: 'ab' }), ['x-v', 'abc']), true);
    assert.equal(matches(sm({ case: 'prefix', value: 'AB' }, true), ['x-v', 'abc']), true);
    assert.equal(matches(sm({ case: 'suffix', value: 'bc' }), ['x-v', 'abc']), true);
    assert.equal(matches(sm({ case: 'suffix', value: 'bc' }), ['x-v', 'abd']), false);
    assert.equal(matches(sm({ case: 'contains', value: 'b' }), ['x-v', 'abc']), true);
    assert.equal(matches(sm({ case: 'contains', value: 'B' }, true), ['x-v', 'abc']), true);
    assert.equal(matches(sm({ case: 'safeRegex', value: { regex: '\\d{3}' } }), ['x-v', '123']), true);
    assert.equal(matches(sm({ case: 'safeRegex', value: { regex: '\\d{3}' } }), ['x-v', '1234']), false, 'regexes match the whole value');
  });

  test('names are case-insensitive; repeated headers are joined with ","', () => {
    const exact = { name: 'X-Multi', headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern: { case: 'exact' as const, value: 'a,b' } } } };
    assert.equal(matches(exact, ['x-multi', 'a', 'X-MULTI', 'b']), true);
    assert.equal(matches(exact, ['x-multi', 'a']), false);
  });

  test('present_match, invert_match, treat_missing_header_as_empty', () => {
    const present = (v: boolean, invert = false, treat = false) => ({ name: 'x-p', headerMatchSpecifier: { case: 'presentMatch' as const, value: v }, invertMatch: invert, treatMissingHeaderAsEmpty: treat });
    assert.equal(matches(present(true), ['x-p', '']), true, 'present with an empty value');
    assert.equal(matches(present(true), []), false);
    assert.equal(matches(present(false), []), true);
    assert.equal(matches(present(false), ['x-p', '1']), false);
    assert.equal(matches(present(true, true), []), true, 'inverted presence = absence');
    assert.equal(matches(present(true, true), ['x-p', '1']), false);
    assert.equal(matches({ name: 'x-p' }, ['x-p', 'v']), true, 'no specifier: must be present');
    assert.equal(matches({ name: 'x-p' }, []), false);

    const bad = (treat: boolean) => ({
      name: 'x-no',
      invertMatch: true,
      treatMissingHeaderAsEmpty: treat,
      headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern: { case: 'exact' as const, value: 'bad' } } },
    });
    assert.equal(matches(bad(false), ['x-no', 'good']), true);
    assert.equal(matches(bad(false), ['x-no', 'bad']), false);
    assert.equal(matches(bad(false), []), false, 'a missing header fails a value matcher even when inverted');
    assert.equal(matches(bad(true), []), true, 'treated as "": not "bad", inverted → match');
    const emptyRe = (treat: boolean) => ({ name: 'x-e', treatMissingHeaderAsEmpty: treat, headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern: { case: 'safeRegex' as const, value: { regex: '^$' } } } } });
    assert.equal(matches(emptyRe(true), []), true);
    assert.equal(matches(emptyRe(false), []), false);
  });

  test('range_match: base-10 integer in [start, end)', () => {
    const range = (invert = false) => ({ name: 'x-n', invertMatch: invert, headerMatchSpecifier: { case: 'rangeMatch' as const, value: { start: -10n, end: 0n } } });
    assert.equal(matches(range(), ['x-n', '-1']), true);
    assert.equal(matches(range(), ['x-n', '-10']), true);
    assert.equal(matches(range(), ['x-n', '0']), false);
    assert.equal(matches(range(), ['x-n', '10.9']), false);
    assert.equal(matches(range(), ['x-n', '-1somestring']), false);
    assert.equal(matches(range(true), ['x-n', '-1']), false);
    assert.equal(matches(range(true), ['x-n', 'abc']), true);
  });

  test('deprecated exact/prefix/suffix/contains/safe_regex specifiers', () => {
    assert.equal(matches({ name: 'x', headerMatchSpecifier: { case: 'exactMatch', value: 'v' } }, ['x', 'v']), true);
    assert.equal(matches({ name: 'x', headerMatchSpecifier: { case: 'exactMatch', value: '' } }, ['x', 'anything']), true, 'an empty exact_match matches any value');
    assert.equal(matches({ name: 'x', headerMatchSpecifier: { case: 'prefixMatch', value: 'ab' } }, ['x', 'abc']), true);
    assert.equal(matches({ name: 'x', headerMatchSpecifier: { case: 'suffixMatch', value: 'bc' } }, ['x', 'abc']), true);
    assert.equal(matches({ name: 'x', headerMatchSpecifier: { case: 'containsMatch', value: 'z' } }, ['x', 'abc']), false);
    assert.equal(matches({ name: 'x', headerMatchSpecifier: { case: 'safeRegexMatch', value: { regex: 'a.c' } } }, ['x', 'abc']), true);
  });

  test('pseudo-headers :method, :authority (and host), :path, :scheme', () => {
    const exact = (name: string, value: string) => ({ name, headerMatchSpecifier: { case: 'stringMatch' as const, value: { matchPattern: { case: 'exact' as const, value } } } });
    assert.equal(matches(exact(':method', 'POST'), [], { method: 'POST' }), true);
    assert.equal(matches(exact(':method', 'POST'), [], { method: 'GET' }), false);
    assert.equal(matches(exact(':authority', 'h'), []), true);
    assert.equal(matches(exact('host', 'h'), []), true, 'host is :authority');
    assert.equal(matches(exact(':path', '/?a=1'), [], { path: '/?a=1' }), true, ':path includes the query');
    assert.equal(matches(exact(':scheme', 'https'), [], { scheme: 'https' }), true);
    assert.equal(matches({ name: ':protocol' }, []), false, 'unknown pseudo-headers are absent');
  });
});

describe('query parameters, runtime fraction, gRPC, TLS', () => {
  test('query_parameters: first value, exact/regex/present, no decoding', () => {
    const c = single([
      to('q', {
        pathSpecifier: { case: 'prefix', value: '/' },
        queryParameters: [
          { name: 'a', queryParameterMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: '1' } } } },
          { name: 'b', queryParameterMatchSpecifier: { case: 'presentMatch', value: true } },
          { name: 'c', queryParameterMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'safeRegex', value: { regex: '[a-z]*' } } } } },
        ],
      }),
      to('rest', prefix('/')),
    ]);
    assert.equal(clusterFor(c, head('h', '/p?a=1&b&c=xyz')), 'q');
    assert.equal(clusterFor(c, head('h', '/p?c=&b=2&a=1')), 'q', 'order does not matter; empty value matches [a-z]*');
    assert.equal(clusterFor(c, head('h', '/p?a=1&b')), 'rest', 'c is missing');
    assert.equal(clusterFor(c, head('h', '/p?a=2&a=1&b&c=x')), 'rest', 'the first a is 2');
    assert.equal(clusterFor(c, head('h', '/p?a=%31&b&c=x')), 'rest', 'values are not percent-decoded');
    assert.equal(clusterFor(c, head('h', '/p')), 'rest');
    const presentFalse = single([
      to('q', { pathSpecifier: { case: 'prefix', value: '/' }, queryParameters: [{ name: 'x', queryParameterMatchSpecifier: { case: 'presentMatch', value: false } }] }),
      to('rest', prefix('/')),
    ]);
    assert.equal(clusterFor(presentFalse, head('h', '/?x=1')), 'q', 'present_match false still means "present" (as Envoy)');
    assert.equal(clusterFor(presentFalse, head('h', '/?y=1')), 'rest');
  });

  test('runtime_fraction uses the request random value (default_value)', () => {
    const c = single([
      to('canary', { pathSpecifier: { case: 'prefix', value: '/' }, runtimeFraction: { defaultValue: { numerator: 25, denominator: 0 }, runtimeKey: 'k' } }),
      to('stable', prefix('/')),
    ]);
    assert.equal(clusterFor(c, head('h', '/'), { random: 0.2 }), 'canary');
    assert.equal(clusterFor(c, head('h', '/'), { random: 0.25 }), 'stable');
    let canary = 0;
    let seed = 7;
    const rnd = () => ((seed = (seed * 16807) % 2147483647) - 1) / 2147483646;
    for (let i = 0; i < 10_000; i++) if (clusterFor(c, head('h', '/'), { random: rnd }) === 'canary') canary++;
    assert.ok(Math.abs(canary - 2500) < 300, `~25% canary, got ${canary}`);
  });

  test('grpc: content-type application/grpc or application/grpc+*', () => {
    const c = single([to('grpc', { pathSpecifier: { case: 'prefix', value: '/' }, grpc: {} }), to('http', prefix('/'))]);
    assert.equal(clusterFor(c, head('h', '/pkg.Svc/M', ['content-type', 'application/grpc'])), 'grpc');
    assert.equal(clusterFor(c, head('h', '/pkg.Svc/M', ['Content-Type', 'application/grpc+proto'])), 'grpc');
    assert.equal(clusterFor(c, head('h', '/pkg.Svc/M', ['content-type', 'application/grpc-web'])), 'http');
    assert.equal(clusterFor(c, head('h', '/pkg.Svc/M', ['content-type', 'application/json'])), 'http');
    assert.equal(clusterFor(c, head('h', '/pkg.Svc/M')), 'http');
  });

  test('tls_context: presented / validated client certificates', () => {
    const c = single([
      to('mtls', { pathSpecifier: { case: 'prefix', value: '/' }, tlsContext: { presented: true, validated: true } }),
      to('plain', { pathSpecifier: { case: 'prefix', value: '/' }, tlsContext: { presented: false } }),
    ]);
    assert.equal(clusterFor(c, head('h', '/'), { peerCertificatePresented: true, peerCertificateValidated: true }), 'mtls');
    assert.equal(clusterFor(c, head('h', '/'), { peerCertificatePresented: true, peerCertificateValidated: false }), undefined);
    assert.equal(clusterFor(c, head('h', '/')), 'plain');
  });

  test('every condition must hold', () => {
    const c = single([
      to('all', {
        pathSpecifier: { case: 'prefix', value: '/api' },
        headers: [{ name: ':method', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'POST' } } } }],
        queryParameters: [{ name: 'v', queryParameterMatchSpecifier: { case: 'presentMatch', value: true } }],
      }),
      to('rest', prefix('/')),
    ]);
    assert.equal(clusterFor(c, head('h', '/api?v', [], 'POST')), 'all');
    assert.equal(clusterFor(c, head('h', '/api?v', [], 'GET')), 'rest');
    assert.equal(clusterFor(c, head('h', '/api', [], 'POST')), 'rest');
    assert.equal(clusterFor(c, head('h', '/x?v', [], 'POST')), 'rest');
  });
});
