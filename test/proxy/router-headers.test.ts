// HTTP router: request/response header mutations (append actions, keep_empty_value, removal, level order) and
// Envoy's %VARIABLE% header value templates.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HeaderValueOption_HeaderAppendAction as Act } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import type { RequestHead, ResponseHead } from '../../src/proxy/http/headers.js';
import { applyRequestHeaders, applyResponseHeaders, compileRouteConfiguration } from '../../src/proxy/http/router/index.js';
import type { CompileOptions, CompiledRouteConfig, FormatVars, RouteDecision } from '../../src/proxy/http/router/index.js';

type RcInit = MessageInitShape<typeof RouteConfigurationSchema>;
type Hvo = { header: { key: string; value: string }; appendAction?: Act; append?: boolean; keepEmptyValue?: boolean };

function head(authority: string, path: string, headers: string[] = [], httpVersion: RequestHead['httpVersion'] = '1.1'): RequestHead {
  return { method: 'GET', path, authority, scheme: 'http', headers, httpVersion };
}

const add = (key: string, value: string, appendAction = Act.APPEND_IF_EXISTS_OR_ADD, keepEmptyValue = false): Hvo => ({ header: { key, value }, appendAction, keepEmptyValue });

interface Levels {
  route?: { add?: Hvo[]; remove?: string[]; respAdd?: Hvo[]; respRemove?: string[] };
  vhost?: { add?: Hvo[]; remove?: string[]; respAdd?: Hvo[]; respRemove?: string[] };
  rc?: { add?: Hvo[]; remove?: string[]; respAdd?: Hvo[]; respRemove?: string[] };
  mostSpecificWins?: boolean;
}

function build(l: Levels, opts?: CompileOptions): CompiledRouteConfig {
  const ops = (x: Levels['route']) => ({
    requestHeadersToAdd: x?.add ?? [],
    requestHeadersToRemove: x?.remove ?? [],
    responseHeadersToAdd: x?.respAdd ?? [],
    responseHeadersToRemove: x?.respRemove ?? [],
  });
  return compileRouteConfiguration(
    create(RouteConfigurationSchema, {
      name: 'hdr',
      mostSpecificHeaderMutationsWins: l.mostSpecificWins ?? false,
      ...ops(l.rc),
      virtualHosts: [
        {
          name: 'vh',
          domains: ['*'],
          ...ops(l.vhost),
          routes: [
            {
              name: 'the-route',
              match: { pathSpecifier: { case: 'prefix', value: '/' } },
              action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'backend' } } },
              ...ops(l.route),
            },
          ],
        },
      ],
    } as RcInit),
    opts,
  );
}

function decision(c: CompiledRouteConfig, h: RequestHead): RouteDecision {
  const d = c.route(h, { random: 0.5 });
  assert.ok(d);
  return d;
}

/** Applies a route's request mutations to a request with `headers`; returns the resulting list. */
function request(l: Levels, headers: string[], vars?: FormatVars, opts?: CompileOptions, h: RequestHead = head('svc:80', '/p?q=1', headers)): string[] {
  const c = build(l, opts);
  applyRequestHeaders(decision(c, h), h, vars);
  return h.headers;
}

function response(l: Levels, headers: string[], req: RequestHead = head('svc', '/'), status = 200, vars?: FormatVars): string[] {
  const c = build(l);
  const resp: ResponseHead = { status, headers };
  applyResponseHeaders(decision(c, req), resp, req, vars);
  return resp.headers;
}

describe('append actions', () => {
  test('APPEND_IF_EXISTS_OR_ADD appends; ADD_IF_ABSENT only when absent', () => {
    assert.deepEqual(request({ route: { add: [add('x-a', '2')] } }, ['x-a', '1']), ['x-a', '1', 'x-a', '2']);
    assert.deepEqual(request({ route: { add: [add('x-a', '2', Act.ADD_IF_ABSENT)] } }, ['X-A', '1']), ['X-A', '1']);
    assert.deepEqual(request({ route: { add: [add('x-a', '2', Act.ADD_IF_ABSENT)] } }, []), ['x-a', '2']);
  });

  test('OVERWRITE_IF_EXISTS_OR_ADD replaces every value; OVERWRITE_IF_EXISTS only when present', () => {
    assert.deepEqual(request({ route: { add: [add('x-a', 'new', Act.OVERWRITE_IF_EXISTS_OR_ADD)] } }, ['x-a', '1', 'y', 'y', 'x-a', '2']), ['y', 'y', 'x-a', 'new']);
    assert.deepEqual(request({ route: { add: [add('x-a', 'new', Act.OVERWRITE_IF_EXISTS_OR_ADD)] } }, ['y', 'y']), ['y', 'y', 'x-a', 'new']);
    assert.deepEqual(request({ route: { add: [add('x-a', 'new', Act.OVERWRITE_IF_EXISTS)] } }, ['y', 'y']), ['y', 'y']);
    assert.deepEqual(request({ route: { add: [add('x-a', 'new', Act.OVERWRITE_IF_EXISTS)] } }, ['x-a', 'old']), ['x-a', 'new']);
  });

  test('the deprecated append flag: true appends, false overwrites', () => {
    assert.deepEqual(request({ route: { add: [{ header: { key: 'x-a', value: '2' }, append: true }] } }, ['x-a', '1']), ['x-a', '1', 'x-a', '2']);
    assert.deepEqual(request({ route: { add: [{ header: { key: 'x-a', value: '2' }, append: false }] } }, ['x-a', '1']), ['x-a', '2']);
  });

  test('within one level: removals first, then all overwrites, then all appends (presence checked before any)', () => {
    const l: Levels = {
      route: {
        remove: ['x-gone', 'x-c'],
        add: [add('x-a', 'appended'), add('x-a', 'set', Act.OVERWRITE_IF_EXISTS_OR_ADD), add('x-c', 'c', Act.OVERWRITE_IF_EXISTS), add('x-d', 'd', Act.ADD_IF_ABSENT), add('x-d', 'd2', Act.ADD_IF_ABSENT)],
      },
    };
    // x-c was removed, so OVERWRITE_IF_EXISTS does nothing; both x-d are added (absent when checked).
    assert.deepEqual(request(l, ['x-gone', '1', 'x-a', 'orig', 'x-c', 'old']), ['x-a', 'set', 'x-a', 'appended', 'x-d', 'd', 'x-d', 'd2']);
  });

  test('empty values are dropped unless keep_empty_value', () => {
    assert.deepEqual(request({ route: { add: [add('x-e', '')] } }, []), []);
    assert.deepEqual(request({ route: { add: [add('x-e', '', Act.APPEND_IF_EXISTS_OR_ADD, true)] } }, []), ['x-e', '']);
    assert.deepEqual(request({ route: { add: [add('x-up', '%UPSTREAM_REMOTE_ADDRESS%')] } }, []), [], 'an unknown value formats as empty');
    assert.deepEqual(request({ route: { add: [add('x-e', '%REQ(x-missing)%', Act.OVERWRITE_IF_EXISTS_OR_ADD, true)] } }, ['x-e', 'old']), ['x-e', '']);
  });

  test('header names are written in lower case and matched case-insensitively', () => {
    assert.deepEqual(request({ route: { add: [add('X-Custom', 'v', Act.OVERWRITE_IF_EXISTS_OR_ADD)], remove: ['X-DROP'] } }, ['x-drop', '1', 'X-CUSTOM', 'o', 'y', '1']), ['y', '1', 'x-custom', 'v']);
    assert.deepEqual(request({ route: { add: [add('X-New', 'v')] } }, []), ['x-new', 'v']);
  });
});

describe('levels', () => {
  const three: Levels = {
    route: { add: [add('x-level', 'route', Act.OVERWRITE_IF_EXISTS_OR_ADD), add('x-list', 'route')], respAdd: [add('x-level', 'route', Act.OVERWRITE_IF_EXISTS_OR_ADD)] },
    vhost: { add: [add('x-level', 'vhost', Act.OVERWRITE_IF_EXISTS_OR_ADD), add('x-list', 'vhost')], respAdd: [add('x-level', 'vhost', Act.OVERWRITE_IF_EXISTS_OR_ADD)] },
    rc: { add: [add('x-level', 'rc', Act.OVERWRITE_IF_EXISTS_OR_ADD), add('x-list', 'rc')], respAdd: [add('x-level', 'rc', Act.OVERWRITE_IF_EXISTS_OR_ADD)] },
  };

  test('route, then virtual host, then route configuration: the route configuration wins by default', () => {
    assert.deepEqual(request(three, []), ['x-list', 'route', 'x-list', 'vhost', 'x-level', 'rc', 'x-list', 'rc']);
    assert.deepEqual(response(three, []), ['x-level', 'rc']);
  });

  test('most_specific_header_mutations_wins reverses the order', () => {
    const l = { ...three, mostSpecificWins: true };
    assert.deepEqual(request(l, []), ['x-list', 'rc', 'x-list', 'vhost', 'x-level', 'route', 'x-list', 'route']);
    assert.deepEqual(response(l, []), ['x-level', 'route']);
  });

  test('a later level sees what an earlier one did (a removal after an add)', () => {
    assert.deepEqual(request({ route: { add: [add('x-tmp', '1')] }, vhost: { remove: ['x-tmp'] } }, []), []);
  });

  test('response mutations: removal and %RESP% / %REQ% / %RESPONSE_CODE%', () => {
    const l: Levels = {
      route: {
        respRemove: ['server'],
        respAdd: [add('x-echo', '%REQ(x-request-id)%'), add('x-ct', '%RESP(content-type)%'), add('x-code', '%RESPONSE_CODE%'), add('x-status', '%RESP(:status)%')],
      },
    };
    const req = head('svc', '/', ['x-request-id', 'abc']);
    assert.deepEqual(response(l, ['Server', 'upstream', 'content-type', 'text/plain'], req, 404), ['content-type', 'text/plain', 'x-echo', 'abc', 'x-ct', 'text/plain', 'x-code', '404', 'x-status', '404']);
  });
});

describe('header value templates', () => {
  const vars: FormatVars = {
    downstreamRemoteAddress: '10.1.2.3',
    downstreamRemotePort: 5555,
    downstreamDirectRemoteAddress: '10.9.9.9',
    downstreamDirectRemotePort: 1111,
    downstreamLocalAddress: '::1',
    downstreamLocalPort: 15001,
    upstreamRemoteAddress: '10.0.0.7',
    upstreamRemotePort: 8080,
    upstreamLocalAddress: '10.0.0.1',
    upstreamLocalPort: 40000,
    requestedServerName: 'sni.example',
    startTimeMs: Date.UTC(2024, 1, 29, 13, 4, 5, 678),
    connectionId: 42,
    responseFlags: 'UH',
    downstreamPeerUriSan: 'spiffe://cluster.local/ns/a/sa/b',
    downstreamTlsVersion: 'TLSv1.3',
  };
  const one = (template: string, v: FormatVars | undefined = vars, h?: RequestHead, opts?: CompileOptions): string | undefined => {
    const out = request({ route: { add: [add('x-out', template, Act.APPEND_IF_EXISTS_OR_ADD, true)] } }, h?.headers ?? [], v, opts, h);
    const i = out.indexOf('x-out');
    return i < 0 ? undefined : out[i + 1];
  };

  test('addresses and ports', () => {
    assert.equal(one('%DOWNSTREAM_REMOTE_ADDRESS%'), '10.1.2.3:5555');
    assert.equal(one('%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'), '10.1.2.3');
    assert.equal(one('%DOWNSTREAM_REMOTE_PORT%'), '5555');
    assert.equal(one('%DOWNSTREAM_DIRECT_REMOTE_ADDRESS%'), '10.9.9.9:1111');
    assert.equal(one('%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%'), '10.9.9.9');
    assert.equal(one('%DOWNSTREAM_LOCAL_ADDRESS%'), '[::1]:15001', 'IPv6 with brackets');
    assert.equal(one('%DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%'), '::1');
    assert.equal(one('%DOWNSTREAM_LOCAL_PORT%'), '15001');
    assert.equal(one('%UPSTREAM_REMOTE_ADDRESS%'), '10.0.0.7:8080');
    assert.equal(one('%UPSTREAM_HOST%'), '10.0.0.7:8080');
    assert.equal(one('%UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%'), '10.0.0.7');
    assert.equal(one('%UPSTREAM_LOCAL_ADDRESS%'), '10.0.0.1:40000');
    assert.equal(one('%UPSTREAM_CLUSTER%'), 'backend', 'the route’s cluster when the caller does not say');
    assert.equal(one('%UPSTREAM_REMOTE_ADDRESS%', {}), '', 'unknown → empty');
  });

  test('protocol, names, flags, TLS', () => {
    assert.equal(one('%PROTOCOL%'), 'HTTP/1.1');
    assert.equal(one('%PROTOCOL%', vars, head('svc', '/', [], '2')), 'HTTP/2');
    assert.equal(one('%REQUESTED_SERVER_NAME%'), 'sni.example');
    assert.equal(one('%ROUTE_NAME%'), 'the-route');
    assert.equal(one('%RESPONSE_FLAGS%'), 'UH');
    assert.equal(one('%RESPONSE_CODE%'), '0', 'no response yet');
    assert.equal(one('%CONNECTION_ID%'), '42');
    assert.equal(one('%DOWNSTREAM_PEER_URI_SAN%'), 'spiffe://cluster.local/ns/a/sa/b');
    assert.equal(one('%DOWNSTREAM_TLS_VERSION%'), 'TLSv1.3');
    assert.equal(one('%HOSTNAME%', vars, undefined, { hostname: 'node-7' }), 'node-7');
    assert.equal(one('%ENVIRONMENT(POD_NAME)%', vars, undefined, { env: { POD_NAME: 'pod-abc' } }), 'pod-abc');
    assert.equal(one('%ENVIRONMENT(POD_NAME):3%', vars, undefined, { env: { POD_NAME: 'pod-abc' } }), 'pod');
  });

  test('%REQ()% reads the request (pseudo-headers too), with an alternative and a length limit', () => {
    const h = head('svc:80', '/p?q=1', ['x-a', 'value-a', 'x-multi', 'one', 'x-multi', 'two']);
    assert.equal(one('%REQ(X-A)%', vars, h), 'value-a');
    assert.equal(one('%REQ(x-missing?x-a)%', vars, head('svc', '/', ['x-a', 'alt'])), 'alt');
    assert.equal(one('%REQ(x-a):5%', vars, head('svc', '/', ['x-a', 'value-a'])), 'value');
    assert.equal(one('%REQ(x-multi)%', vars, head('svc', '/', ['x-multi', 'one', 'x-multi', 'two'])), 'one', 'the first value');
    assert.equal(one('%REQ(:authority)%|%REQ(:path)%|%REQ(:method)%|%REQ(:scheme)%', vars, head('svc:80', '/p?q=1')), 'svc:80|/p?q=1|GET|http');
    assert.equal(one('%RESP(x-anything)%'), '', 'no response on the request path');
  });

  test('literal text, %% escapes and several commands', () => {
    assert.equal(one('for=%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%;proto=%PROTOCOL%;100%%'), 'for=10.1.2.3;proto=HTTP/1.1;100%');
    assert.equal(one('plain'), 'plain');
    assert.equal(one('%%DOWNSTREAM_REMOTE_PORT%%'), '%DOWNSTREAM_REMOTE_PORT%');
  });

  test('%START_TIME% and formats', () => {
    assert.equal(one('%START_TIME%'), '2024-02-29T13:04:05.678Z');
    assert.equal(one('%START_TIME(%Y/%m/%dT%H:%M:%S%z %s)%'), '2024/02/29T13:04:05+0000 1709211845');
    assert.equal(one('%START_TIME(%s.%3f)%'), '1709211845.678');
    assert.equal(one('%START_TIME(%s.%6f|%f)%'), '1709211845.678000|678000000');
    assert.equal(one('%START_TIME(%a %b %e %j %I%p %E3S %F %T)%'), 'Thu Feb 29 060 01PM 05.678 2024-02-29 13:04:05');
  });
});
