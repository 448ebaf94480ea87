// The proxy's TLS core with real sockets on 127.0.0.1, in process: listeners compiled from hand-built LDS protos
// with the TLS inspector and DownstreamTlsContext filter chains (mutual TLS with SDS `default` / `ROOTCA` from a
// workload identity), clusters with UpstreamTlsContext (and transport_socket_matches), real node:tls / curl /
// openssl clients and node:https / node:http2 upstreams. Certificates come from test/helpers/certs.ts.
//
// Covers: mTLS accepted and the peer recorded (XFCC reaching the app: By, Hash, Subject, URI); plaintext and TLS on
// one port (TLS inspector chain choice); refusals — no client certificate, another CA, another trust domain (SAN),
// an expired certificate — each counted in listener ssl.* stats; upstream TLS with SNI and SAN checks (wrong SAN →
// 503 UF), HTTP/1.1 and HTTP/2 (ALPN) and TCP over mTLS between two in-process hops; transport_socket_matches
// (tlsMode: istio); rotation (new handshakes get the new certificate, an open connection keeps working) and
// session resumption.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { connect as netConnect, createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { ListenerSchema, type Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { HttpConnectionManager_ForwardClientCertDetails, HttpConnectionManagerSchema, HttpFilterSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { RouteConfigurationSchema, type RouteConfiguration } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { DownstreamTlsContextSchema, UpstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { SubjectAltNameMatcher_SanType } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { TlsInspectorSchema } from '../../src/xds/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
import { HttpProtocolOptionsSchema } from '../../src/xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import { compileListener, ListenerManager, type ListenerContext } from '../../src/proxy/listener/listener.js';
import { compileRouteConfiguration } from '../../src/proxy/http/router/index.js';
import { ClusterEntry } from '../../src/proxy/config/xds-config.js';
import { ClusterRequestStats } from '../../src/proxy/stats/request-stats.js';
import { StatsStore } from '../../src/proxy/stats/store.js';
import { compileCluster } from '../../src/proxy/upstream/cluster/index.js';
import { SecretManager } from '../../src/proxy/tls/secrets.js';
import type { IdentityMaterial, WorkloadIdentity } from '../../src/proxy/tls/identity/index.js';
import { TlsStats } from '../../src/proxy/tls/stats.js';
import { ConfigError } from '../../src/proxy/config-error.js';
import { Upstream } from '../helpers/http-upstream.js';
import { run } from '../helpers/mesh-processes.js';
import { createCa, spiffe, type IssuedCert, type TestCa } from '../helpers/certs.js';
import { cla, edsCluster, type ClusterInit } from './upstream-helpers.js';

/** A workload identity whose certificate the test swaps (rotation). */
class TestIdentity implements WorkloadIdentity {
  private cur: IdentityMaterial | null;
  private readonly cbs: Array<(m: IdentityMaterial) => void> = [];
  constructor(cert: IssuedCert, root: string) {
    this.cur = { certChainPem: cert.certPem, keyPem: cert.keyPem, rootPem: root, notAfter: new Date(Date.now() + 3_600_000) };
  }
  current() {
    return this.cur;
  }
  onChange(cb: (m: IdentityMaterial) => void): void {
    this.cbs.push(cb);
  }
  rotate(cert: IssuedCert, root: string): void {
    this.cur = { certChainPem: cert.certPem, keyPem: cert.keyPem, rootPem: root, notAfter: new Date(Date.now() + 3_600_000) };
    for (const cb of this.cbs) cb(this.cur);
  }
}

const sds = (name: string) => ({ name, sdsConfig: { configSourceSpecifier: { case: 'ads' as const, value: {} } } });

/** Istio's inbound mTLS context: workload cert `default`, trust `ROOTCA`, client certificate required. */
function istioDownstream(sanPrefix = 'spiffe://cluster.local/') {
  return pack(
    DownstreamTlsContextSchema,
    create(DownstreamTlsContextSchema, {
      requireClientCertificate: true,
      commonTlsContext: {
        tlsCertificateSdsSecretConfigs: [sds('default')],
        validationContextType: {
          case: 'combinedValidationContext',
          value: {
            defaultValidationContext: { matchTypedSubjectAltNames: [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { matchPattern: { case: 'prefix', value: sanPrefix } } }] },
            validationContextSdsSecretConfig: sds('ROOTCA'),
          },
        },
        alpnProtocols: ['h2', 'http/1.1'],
      },
    }),
  );
}

/** Istio's ISTIO_MUTUAL client context with the destination's SPIFFE id as the SAN to verify. */
function istioUpstream(san: string, alpn: string[] = []) {
  return pack(
    UpstreamTlsContextSchema,
    create(UpstreamTlsContextSchema, {
      sni: 'outbound_.8080_._.server.ns.svc.cluster.local',
      commonTlsContext: {
        tlsCertificateSdsSecretConfigs: [sds('default')],
        validationContextType: {
          case: 'combinedValidationContext',
          value: {
            defaultValidationContext: { matchTypedSubjectAltNames: [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { matchPattern: { case: 'exact', value: san } } }] },
            validationContextSdsSecretConfig: sds('ROOTCA'),
          },
        },
        alpnProtocols: alpn,
      },
    }),
  );
}

function hcmFilter(cluster: string) {
  const h = create(HttpConnectionManagerSchema, {
    statPrefix: 'inbound',
    httpFilters: [create(HttpFilterSchema, { name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: pack(RouterSchema, {}) } })],
    routeSpecifier: {
      case: 'routeConfig',
      value: create(RouteConfigurationSchema, { name: 'r', virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ match: { pathSpecifier: { case: 'prefix', value: '/' } }, action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: cluster } } } }] }] }),
    },
    forwardClientCertDetails: HttpConnectionManager_ForwardClientCertDetails.APPEND_FORWARD,
    setCurrentClientCertDetails: { subject: true, uri: true, dns: true },
  });
  return { name: 'envoy.filters.network.http_connection_manager', configType: { case: 'typedConfig' as const, value: pack(HttpConnectionManagerSchema, h) } };
}

function tcpFilter(cluster: string) {
  return { name: 'envoy.filters.network.tcp_proxy', configType: { case: 'typedConfig' as const, value: pack(TcpProxySchema, create(TcpProxySchema, { statPrefix: 'tcp', clusterSpecifier: { case: 'cluster', value: cluster } })) } };
}

const tlsInspector = { name: 'envoy.filters.listener.tls_inspector', configType: { case: 'typedConfig' as const, value: pack(TlsInspectorSchema, {}) } };

/** A listener on 127.0.0.1:0: a TLS chain (transport_protocol tls) and, when `permissive`, a plaintext chain. */
function listenerProto(name: string, filter: ReturnType<typeof hcmFilter>, permissive: boolean, sanPrefix?: string): Listener {
  const tlsChain = { name: 'mtls', filterChainMatch: { transportProtocol: 'tls' }, transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig' as const, value: istioDownstream(sanPrefix) } }, filters: [filter] };
  const plainChain = { name: 'plaintext', filterChainMatch: { transportProtocol: 'raw_buffer' }, filters: [filter] };
  return create(ListenerSchema, {
    name,
    address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: 0 } } } },
    listenerFilters: [tlsInspector],
    filterChains: permissive ? [tlsChain, plainChain] : [tlsChain],
  });
}

/** One in-process proxy: a SecretManager on an identity, clusters by name, a listener manager. */
class Hop {
  readonly secrets: SecretManager;
  readonly clusters = new Map<string, ClusterEntry>();
  readonly manager = new ListenerManager(500);
  readonly store = new StatsStore();
  readonly listenerTls: TlsStats[] = [];
  constructor(readonly identity: TestIdentity) {
    this.secrets = new SecretManager(identity);
  }
  get ctx(): ListenerContext {
    return {
      rds: () => ({ current: undefined }),
      inlineRoutes: (rc) => ({ current: compileRouteConfiguration(rc as RouteConfiguration) }),
      cluster: (n) => this.clusters.get(n),
      warn: () => undefined,
      secrets: this.secrets,
      tlsStats: (s) => this.listenerTls.push(s),
    };
  }
  addCluster(name: string, ports: number[], init: Partial<ClusterInit> = {}, metadata?: Record<string, unknown>): ClusterEntry {
    const rt = compileCluster(edsCluster(name, init), { secrets: this.secrets });
    const c = cla(name, [{ hosts: ports.map((p) => `127.0.0.1:${p}`) }]);
    if (metadata) for (const ep of c.endpoints[0]!.lbEndpoints) ep.metadata = { filterMetadata: { 'envoy.transport_socket_match': metadata as never }, typedFilterMetadata: {} } as never;
    rt.updateHosts(c);
    rt.start();
    const e = new ClusterEntry(rt, new ClusterRequestStats(this.store.scope(`cluster.${name}.`)));
    this.clusters.set(name, e);
    return e;
  }
  async listen(l: Listener): Promise<number> {
    await this.manager.apply(compileListener(l, this.ctx));
    return this.manager.port(l.name)!;
  }
  async close(): Promise<void> {
    await this.manager.close(200);
    for (const c of this.clusters.values()) c.close();
  }
}

/** A node:tls client; resolves with what the server sent before closing, or rejects with the error. */
function tlsExchange(port: number, opts: { cert?: IssuedCert; ca: string; send: string; alpn?: string[]; session?: Buffer }): Promise<{ data: string; socket: TLSSocket; session?: Buffer; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, cert: opts.cert?.certPem, key: opts.cert?.keyPem, ca: opts.ca, ALPNProtocols: opts.alpn, session: opts.session, checkServerIdentity: () => undefined });
    let data = '';
    let session: Buffer | undefined;
    let reused = false;
    s.on('session', (b: Buffer) => (session = b));
    s.on('secureConnect', () => {
      reused = s.isSessionReused();
      s.write(opts.send);
    });
    s.on('data', (d: Buffer) => (data += d.toString('latin1')));
    s.on('error', reject);
    s.on('close', () => (data !== '' ? resolve({ data, socket: s, session, reused }) : reject(new Error('closed without data'))));
  });
}

const GET = 'GET /x HTTP/1.1\r\nhost: app\r\nconnection: close\r\n\r\n';
const sum = (stats: TlsStats[], k: keyof TlsStats) => stats.reduce((a, s) => a + (s[k] as number), 0);

describe('TLS core: downstream mTLS, refusals, upstream TLS, rotation', () => {
  let mesh: TestCa;
  let other: TestCa;
  let app: Upstream;
  let server: Hop;
  let client: Hop;
  let serverId: IssuedCert;
  let clientId: IssuedCert;
  let strictPort = 0;
  let permissivePort = 0;
  let tcpPort = 0;
  let echo: NetServer;

  before(async () => {
    mesh = await createCa();
    other = await createCa();
    serverId = await mesh.issue({ uri: spiffe('ns', 'server') });
    clientId = await mesh.issue({ uri: spiffe('ns', 'client') });
    app = new Upstream('app');
    await app.start();
    echo = createNetServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    server = new Hop(new TestIdentity(serverId, mesh.certPem));
    server.addCluster('app', [app.port]);
    server.addCluster('echo', [(echo.address() as AddressInfo).port]);
    strictPort = await server.listen(listenerProto('strict', hcmFilter('app'), false));
    permissivePort = await server.listen(listenerProto('permissive', hcmFilter('app'), true));
    tcpPort = await server.listen(listenerProto('tcp', tcpFilter('echo'), false));
    client = new Hop(new TestIdentity(clientId, mesh.certPem));
  });

  after(async () => {
    await client?.close();
    await server?.close();
    await app?.stop();
    await new Promise<void>((r) => echo?.close(() => r()));
    mesh?.close();
    other?.close();
  });

  test('mTLS with a mesh certificate: served, the app sees XFCC with the peer identity', async () => {
    const before = app.seen.length;
    const r = await tlsExchange(strictPort, { cert: clientId, ca: mesh.certPem, send: GET + 'x'.repeat(0), alpn: ['http/1.1'] });
    assert.match(r.data, /^HTTP\/1\.1 200 /);
    const seen = app.seen[before]!;
    const xfcc = String(seen.headers['x-forwarded-client-cert']);
    const hash = new X509Certificate(clientId.certPem).fingerprint256.replace(/:/g, '').toLowerCase();
    assert.equal(xfcc, `By=${spiffe('ns', 'server')};Hash=${hash};Subject="";URI=${spiffe('ns', 'client')}`);
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.ok(sum(server.listenerTls, 'handshake') >= 1);
  });

  test('a forged XFCC from a plaintext client is removed; PERMISSIVE serves plaintext and mTLS on one port', async () => {
    const before = app.seen.length;
    const plain = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'x-forwarded-client-cert: By=spiffe://evil;URI=spiffe://cluster.local/ns/ns/sa/admin', `http://127.0.0.1:${permissivePort}/p`]);
    assert.equal(plain.stdout.toString(), '200');
    assert.equal(app.seen[before]!.headers['x-forwarded-client-cert'], undefined);
    const r = await tlsExchange(permissivePort, { cert: clientId, ca: mesh.certPem, send: GET });
    assert.match(r.data, /^HTTP\/1\.1 200 /);
    assert.match(String(app.seen[before + 1]!.headers['x-forwarded-client-cert']), /URI=spiffe:\/\/cluster\.local\/ns\/ns\/sa\/client$/);
  });

  test('STRICT: plaintext refused (no chain), curl with a client certificate served, openssl without one refused', async () => {
    const plain = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${strictPort}/p`]);
    assert.equal(plain.stdout.toString(), '000', 'plaintext gets no answer');
    const dir = mesh.dir;
    const { writeFileSync } = await import('node:fs');
    writeFileSync(`${dir}/client.crt`, clientId.certPem);
    writeFileSync(`${dir}/client.key`, clientId.keyPem);
    const ok = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--cacert', `${dir}/ca.crt`, '--cert', `${dir}/client.crt`, '--key', `${dir}/client.key`, '-k', `https://127.0.0.1:${strictPort}/p`]);
    assert.equal(ok.stdout.toString(), '200');
    const noCert = await run('openssl', ['s_client', '-connect', `127.0.0.1:${strictPort}`, '-CAfile', `${dir}/ca.crt`, '-tls1_3'], 'GET / HTTP/1.1\r\nhost: a\r\n\r\n');
    assert.doesNotMatch(noCert.stdout.toString(), /HTTP\/1\.1 200/);
  });

  test('refused: no certificate, another CA, another trust domain, an expired certificate (counted)', async () => {
    const errors = () => sum(server.listenerTls, 'fail_verify_no_cert') + sum(server.listenerTls, 'fail_verify_error') + sum(server.listenerTls, 'fail_verify_san') + sum(server.listenerTls, 'connection_error');
    const cases: Array<[string, IssuedCert | undefined]> = [
      ['no certificate', undefined],
      ['another CA', await other.issue({ uri: spiffe('ns', 'client') })],
      ['another trust domain', await mesh.issue({ uri: spiffe('ns', 'client', 'evil.example') })],
      ['expired', await mesh.issue({ uri: spiffe('ns', 'client'), notBefore: -7200, notAfter: -60 })],
    ];
    for (const [what, cert] of cases) {
      const n = errors();
      await assert.rejects(tlsExchange(strictPort, { cert, ca: mesh.certPem, send: GET }), Error, what);
      assert.equal(errors(), n + 1, `${what}: counted once`);
    }
    assert.ok(sum(server.listenerTls, 'fail_verify_san') >= 1);
    assert.ok(sum(server.listenerTls, 'fail_verify_error') >= 2);
  });

  test('two hops over mTLS: HTTP/1.1, HTTP/2 (ALPN h2) and TCP; transport_socket_matches tlsMode istio', async () => {
    const san = spiffe('ns', 'server');
    const ts = (alpn: string[] = []) => ({ name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig' as const, value: istioUpstream(san, alpn) } });
    const h2 = { typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(HttpProtocolOptionsSchema, { upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http2ProtocolOptions', value: {} } } } }) } };
    const c1 = client.addCluster('h1', [strictPort], { transportSocket: ts() });
    const c2 = client.addCluster('h2', [strictPort], { transportSocket: ts(['istio', 'h2']), ...h2 });
    const ctcp = client.addCluster('tcp', [tcpPort], { transportSocket: ts() });
    const cm = client.addCluster('auto', [strictPort], { transportSocketMatches: [{ name: 'tlsMode-istio', match: { tlsMode: 'istio' }, transportSocket: ts() }, { name: 'tlsMode-disabled', match: {}, transportSocket: { name: 'envoy.transport_sockets.raw_buffer' } }] }, { tlsMode: 'istio' });
    const before = app.seen.length;
    for (const cluster of ['h1', 'h2', 'auto']) {
      const l = await client.listen(
        create(ListenerSchema, {
          name: `out-${cluster}`,
          address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: 0 } } } },
          filterChains: [{ filters: [hcmFilter(cluster)] }],
        }),
      );
      const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${l}/via-${cluster}`]);
      assert.equal(r.stdout.toString(), '200', cluster);
    }
    const xfccs = app.seen.slice(before).map((s) => String(s.headers['x-forwarded-client-cert']));
    assert.equal(xfccs.length, 3);
    for (const x of xfccs) assert.match(x, new RegExp(`^By=${san.replace(/\//g, '\\/')};Hash=[0-9a-f]{64};Subject="";URI=spiffe://cluster\\.local/ns/ns/sa/client$`));
    assert.equal(c1.runtime.transport.stats.handshake >= 1, true);
    assert.equal(c2.runtime.transport.stats.handshake >= 1, true);
    assert.ok(c2.runtime.stats.upstream_cx_http2_total >= 1, 'HTTP/2 over TLS');
    assert.equal(cm.runtime.transport.stats.handshake >= 1, true);
    // TCP over mTLS through a tcp_proxy hop on each side.
    const tcpOut = await client.listen(
      create(ListenerSchema, {
        name: 'out-tcp',
        address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: 0 } } } },
        filterChains: [{ filters: [tcpFilter('tcp')] }],
      }),
    );
    const echoed = await new Promise<string>((resolve, reject) => {
      const s = netConnect(tcpOut, '127.0.0.1', () => s.end('ping over mtls'));
      let d = '';
      s.on('data', (b: Buffer) => (d += b));
      s.on('error', reject);
      s.on('close', () => resolve(d));
    });
    assert.equal(echoed, 'ping over mtls');
    assert.ok(ctcp.runtime.transport.stats.handshake >= 1);
  });

  test('upstream SIMPLE TLS: SNI and SAN checked; a wrong SAN fails the connection (503 UF)', async () => {
    const cert = await mesh.issue({ dns: ['api.example.com'] });
    let sni = '';
    const https: HttpsServer = createHttpsServer({ cert: cert.certPem, key: cert.keyPem }, (req, res) => res.end('tls-ok'));
    https.on('secureConnection', (s: TLSSocket) => (sni = (s as TLSSocket & { servername?: string }).servername ?? ''));
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const port = (https.address() as AddressInfo).port;
    const simple = (san: string) => ({
      name: 'envoy.transport_sockets.tls',
      configType: {
        case: 'typedConfig' as const,
        value: pack(UpstreamTlsContextSchema, create(UpstreamTlsContextSchema, { sni: 'api.example.com', commonTlsContext: { validationContextType: { case: 'validationContext', value: { trustedCa: { specifier: { case: 'inlineString', value: mesh.certPem } }, matchTypedSubjectAltNames: [{ sanType: SubjectAltNameMatcher_SanType.DNS, matcher: { matchPattern: { case: 'exact', value: san } } }] } } } })),
      },
    });
    client.addCluster('simple-ok', [port], { transportSocket: simple('api.example.com') });
    const bad = client.addCluster('simple-bad', [port], { transportSocket: simple('other.example.com') });
    try {
      for (const [cluster, want] of [['simple-ok', '200'], ['simple-bad', '503']] as const) {
        const l = await client.listen(create(ListenerSchema, { name: `l-${cluster}`, address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: 0 } } } }, filterChains: [{ filters: [hcmFilter(cluster)] }] }));
        const r = await run('curl', ['-s', '-D', '-', '-o', '/dev/null', `http://127.0.0.1:${l}/`]);
        assert.match(r.stdout.toString(), new RegExp(`^HTTP/1.1 ${want}`), cluster);
      }
      assert.equal(sni, 'api.example.com');
      assert.ok(bad.runtime.transport.stats.fail_verify_san >= 1);
    } finally {
      await new Promise<void>((r) => https.close(() => r()));
    }
  });

  test('rotation: new handshakes use the new certificate, an established connection keeps working; resumption', async () => {
    const oldHash = new X509Certificate(serverId.certPem).fingerprint256;
    const first = await tlsExchange(permissivePort, { cert: clientId, ca: mesh.certPem, send: GET });
    assert.match(first.data, /200/);
    // An open connection across the rotation.
    const held = tlsConnect({ host: '127.0.0.1', port: tcpPort, cert: clientId.certPem, key: clientId.keyPem, ca: mesh.certPem, checkServerIdentity: () => undefined });
    await new Promise<void>((r, j) => held.once('secureConnect', r).once('error', j));
    assert.equal(new X509Certificate(held.getPeerCertificate().raw).fingerprint256, oldHash);
    const next = await mesh.issue({ uri: spiffe('ns', 'server') });
    server.identity.rotate(next, mesh.certPem);
    const after = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: tcpPort, cert: clientId.certPem, key: clientId.keyPem, ca: mesh.certPem, checkServerIdentity: () => undefined }, () => {
        resolve(new X509Certificate(s.getPeerCertificate().raw).fingerprint256);
        s.destroy();
      });
      s.on('error', reject);
    });
    assert.equal(after, new X509Certificate(next.certPem).fingerprint256);
    const echoed = await new Promise<string>((resolve) => {
      held.once('data', (b: Buffer) => resolve(b.toString()));
      held.write('still here');
    });
    assert.equal(echoed, 'still here');
    held.destroy();
    // Session resumption with a ticket from the new context.
    const a = await tlsExchange(permissivePort, { cert: clientId, ca: mesh.certPem, send: GET });
    const reused = sum(server.listenerTls, 'session_reused');
    const b = await tlsExchange(permissivePort, { cert: clientId, ca: mesh.certPem, send: GET, session: a.session });
    assert.match(b.data, /200/);
    assert.equal(b.reused, true);
    assert.equal(sum(server.listenerTls, 'session_reused'), reused + 1);
  });

  test('config errors name the field', () => {
    const l = listenerProto('bad', hcmFilter('app'), false);
    l.filterChains[0]!.transportSocket!.name = 'envoy.transport_sockets.alts';
    l.filterChains[0]!.transportSocket!.configType = { case: undefined };
    assert.throws(() => compileListener(l, server.ctx), (e: unknown) => e instanceof ConfigError && /filter_chains\[0\]\.transport_socket: transport socket "envoy.transport_sockets.alts" is not supported/.test(e.message));
    const dtc = create(DownstreamTlsContextSchema, { requireClientCertificate: true, commonTlsContext: { tlsCertificateSdsSecretConfigs: [sds('default')] } });
    l.filterChains[0]!.transportSocket!.configType = { case: 'typedConfig', value: pack(DownstreamTlsContextSchema, dtc) };
    assert.throws(() => compileListener(l, server.ctx), /require_client_certificate: needs a validation context/);
    const up = create(UpstreamTlsContextSchema, { commonTlsContext: { tlsParams: { cipherSuites: ['NOT-A-CIPHER'] } } });
    assert.throws(
      () => compileCluster(edsCluster('c', { transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig', value: pack(UpstreamTlsContextSchema, up) } } }), { secrets: server.secrets }),
      /cluster "c": transport_socket\.typed_config\.common_tls_context\.tls_params: /,
    );
  });
});
