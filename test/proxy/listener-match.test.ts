// The HTTP inspector's classification of first bytes, and Envoy's filter chain selection and its ConfigErrors, on
// compiled listeners (no sockets: the e2e behaviour is in e2e-sniffing.test.ts).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { ListenerSchema, type Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { FilterChainMatchSchema, FilterChainSchema, FilterSchema, ListenerFilterSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { HttpInspectorSchema } from '../../src/xds/gen/envoy/extensions/filters/listener/http_inspector/v3/http_inspector_pb.js';
import { CidrRangeSchema } from '../../src/xds/gen/envoy/config/core/v3/address_pb.js';
import { socketAddress } from '../../src/controlplane/translate/listener.js';
import { compileListener, type ListenerContext } from '../../src/proxy/listener/listener.js';
import { inspectHttp, MAX_INSPECT_BYTES } from '../../src/proxy/listener/http-inspector.js';
import { ConfigError } from '../../src/proxy/config-error.js';

describe('http_inspector classification', () => {
  const cases: Array<[string, string | Buffer, string | undefined]> = [
    ['HTTP/1.1 request line', 'GET /x HTTP/1.1\r\nHost: a\r\n', 'http/1.1'],
    ['HTTP/1.0 request line', 'POST / HTTP/1.0\r\n', 'http/1.0'],
    ['custom method token', 'PURGE /x HTTP/1.1\r\n', 'http/1.1'],
    ['partial request line', 'GET /x HTT', undefined],
    ['just a method', 'GET', undefined],
    ['HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'h2c'],
    ['start of the HTTP/2 preface', 'PRI * HTTP/2', undefined],
    ['redis inline command', 'PING\r\n', ''],
    ['redis RESP array', '*1\r\n$4\r\nPING\r\n', ''],
    ['TLS ClientHello', Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5]), ''],
    ['HTTP/2.0 version on a request line', 'GET / HTTP/2.0\r\n', ''],
    ['bare LF after the version', 'GET / HTTP/1.1\n', ''],
    ['control character in the target', 'GET /a\x01b HTTP/1.1\r\n', ''],
  ];
  for (const [what, bytes, want] of cases) {
    test(`${what} → ${want === undefined ? 'need more bytes' : want === '' ? 'not HTTP' : want}`, () => {
      assert.equal(inspectHttp(typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes), want);
    });
  }
  test('a first line longer than the inspector reads is not HTTP', () => {
    assert.equal(inspectHttp(Buffer.from('GET /' + 'a'.repeat(MAX_INSPECT_BYTES), 'latin1')), '');
  });
});

const ctx: ListenerContext = {
  rds: () => ({ current: undefined }),
  inlineRoutes: () => ({ current: undefined }),
  cluster: () => undefined,
  warn: () => undefined,
};

function tcpChain(name: string, cluster: string, match?: Parameters<typeof create<typeof FilterChainMatchSchema>>[1]) {
  return create(FilterChainSchema, {
    name,
    filterChainMatch: match ? create(FilterChainMatchSchema, match) : undefined,
    filters: [create(FilterSchema, { name: 'envoy.filters.network.tcp_proxy', configType: { case: 'typedConfig', value: pack(TcpProxySchema, { statPrefix: name, clusterSpecifier: { case: 'cluster', value: cluster } }) } })],
  });
}

function listener(chains: ReturnType<typeof tcpChain>[], extra: Partial<Pick<Listener, 'listenerFiltersTimeout' | 'continueOnListenerFiltersTimeout' | 'defaultFilterChain'>> = {}): Listener {
  const l = create(ListenerSchema, {
    name: 'l',
    address: socketAddress('127.0.0.1', 15006),
    filterChains: chains,
    listenerFilters: [create(ListenerFilterSchema, { name: 'envoy.filters.listener.http_inspector', configType: { case: 'typedConfig', value: pack(HttpInspectorSchema, {}) } })],
  });
  Object.assign(l, extra);
  return l;
}

describe('filter chain selection', () => {
  const l = compileListener(
    listener(
      [
        tcpChain('http', 'http', { applicationProtocols: ['http/1.1', 'h2c'] }),
        tcpChain('tcp', 'tcp'),
        tcpChain('port-9000', 'p9000', { destinationPort: 9000 }),
        tcpChain('port-9000-http', 'p9000h', { destinationPort: 9000, applicationProtocols: ['http/1.1'] }),
        tcpChain('sni', 'sni', { serverNames: ['a.example'] }),
        tcpChain('tls', 'tls', { transportProtocol: 'tls' }),
      ],
      { listenerFiltersTimeout: { $typeName: 'google.protobuf.Duration', seconds: 2n, nanos: 0 }, continueOnListenerFiltersTimeout: true },
    ),
    ctx,
  );
  const pick = (port: number, proto: string) => l.select(port, proto)?.name;

  test('the listener filter settings', () => {
    assert.equal(l.inspectHttp, true);
    assert.equal(l.filtersTimeoutMs, 2000);
    assert.equal(l.continueOnFiltersTimeout, true);
  });
  test('application_protocols: an explicit match beats an open chain; no protocol takes the open chain', () => {
    assert.equal(pick(15006, 'http/1.1'), 'http');
    assert.equal(pick(15006, 'h2c'), 'http');
    assert.equal(pick(15006, 'http/1.0'), 'tcp');
    assert.equal(pick(15006, ''), 'tcp');
  });
  test('destination_port is decided first, then application_protocols among those chains', () => {
    assert.equal(pick(9000, 'http/1.1'), 'port-9000-http');
    assert.equal(pick(9000, ''), 'port-9000');
  });
  test('no chain and no default → undefined; the default_filter_chain otherwise', () => {
    const only = compileListener(listener([tcpChain('http', 'http', { applicationProtocols: ['http/1.1'] })]), ctx);
    assert.equal(only.select(1, ''), undefined);
    const withDefault = compileListener(listener([tcpChain('http', 'http', { applicationProtocols: ['http/1.1'] })], { defaultFilterChain: tcpChain('fallback', 'f') }), ctx);
    assert.equal(withDefault.select(1, '')?.name, 'fallback');
  });
});

describe('listener ConfigErrors', () => {
  const rejects = (l: Listener, field: RegExp) =>
    assert.throws(
      () => compileListener(l, ctx),
      (e: unknown) => e instanceof ConfigError && field.test(e.message),
    );
  test('two chains with the same match', () => rejects(listener([tcpChain('a', 'a', { destinationPort: 1 }), tcpChain('b', 'b', { destinationPort: 1 })]), /filter_chains\[1\]\.filter_chain_match.*same matching rules/));
  test('criteria Weft cannot evaluate', () => {
    rejects(listener([tcpChain('a', 'a', { prefixRanges: [create(CidrRangeSchema, { addressPrefix: '10.0.0.0', prefixLen: 8 })] })]), /prefix_ranges: is not supported/);
    rejects(listener([tcpChain('a', 'a', { sourcePorts: [1234] })]), /source_ports: is not supported/);
  });
  test('listener filters other than the HTTP inspector', () => {
    const l = listener([tcpChain('a', 'a')]);
    l.listenerFilters = [create(ListenerFilterSchema, { name: 'envoy.filters.listener.proxy_protocol' })];
    rejects(l, /listener_filters\[0\].*proxy_protocol is not supported/);
  });
});
