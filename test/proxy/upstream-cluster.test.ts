// Cluster compilation and host sets: ConfigErrors naming the cluster and field for invalid / unsupported config,
// Envoy defaults, protocol and TLS settings, STATIC / EDS / STRICT_DNS (resolving `localhost`) / LOGICAL_DNS /
// ORIGINAL_DST host management, readiness, stats names, xxHash64.
import { SecretManager } from '../../src/proxy/tls/secrets.js';
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { clone, create } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { DataSourceSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { cla, edsCluster, edsRuntime, testOpts, translateFixture, HealthStatus, type ClusterInit } from './upstream-helpers.js';
import { compileCluster, ConfigError, xxhash64, toHex64, mod64, hashResult, xxhash64String, type DnsResolver } from '../../src/proxy/upstream/cluster/index.js';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy, type Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { HttpProtocolOptionsSchema } from '../../src/xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import { UpstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { CodecClientType } from '../../src/xds/gen/envoy/type/v3/http_pb.js';
import { pack, unpack } from '../../src/xds/index.js';
import { createCa } from '../helpers/certs.js';
import type { LoadBalancerBase } from '../../src/proxy/upstream/lb/load-balancer.js';

const s = (n: number) => ({ seconds: BigInt(n) });
const cluster = (init: Partial<ClusterInit>): Cluster => create(ClusterSchema, { name: 'c1', connectTimeout: s(1), ...init } as ClusterInit);
const staticType = { clusterDiscoveryType: { case: 'type' as const, value: Cluster_DiscoveryType.STATIC } };
const httpHc = { timeout: s(1), interval: s(5), unhealthyThreshold: 1, healthyThreshold: 1, healthChecker: { case: 'httpHealthCheck' as const, value: { path: '/' } } };
const h3 = pack(HttpProtocolOptionsSchema, { upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http3ProtocolOptions', value: {} } } } });
const tlsSocket = { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig' as const, value: pack(UpstreamTlsContextSchema, { sni: 'a.example' }) } };

describe('config errors name the cluster and the field', () => {
  const cases: Array<[string, Partial<ClusterInit>, string]> = [
    ['maglev table size not prime', { lbPolicy: Cluster_LbPolicy.MAGLEV, lbConfig: { case: 'maglevLbConfig', value: { tableSize: 1000n } } }, 'maglev_lb_config.table_size'],
    ['ring min > max', { lbPolicy: Cluster_LbPolicy.RING_HASH, lbConfig: { case: 'ringHashLbConfig', value: { minimumRingSize: 4096n, maximumRingSize: 1024n } } }, 'ring_hash_lb_config.minimum_ring_size'],
    ['ring above 8M', { lbPolicy: Cluster_LbPolicy.RING_HASH, lbConfig: { case: 'ringHashLbConfig', value: { maximumRingSize: 9_000_000n } } }, 'ring_hash_lb_config.maximum_ring_size'],
    ['ORIGINAL_DST needs CLUSTER_PROVIDED', { clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST }, lbPolicy: Cluster_LbPolicy.ROUND_ROBIN }, 'lb_policy'],
    ['CLUSTER_PROVIDED needs ORIGINAL_DST', { clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS }, lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED }, 'lb_policy'],
    ['LOGICAL_DNS with two endpoints', { clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.LOGICAL_DNS }, loadAssignment: cla('c1', [{ hosts: ['a.example:80', 'b.example:80'] }]) }, 'load_assignment'],
    ['STATIC with a name', { ...staticType, loadAssignment: cla('c1', [{ hosts: ['db.example:5432'] }]) }, 'load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address'],
    ['two health checks', { healthChecks: [httpHc, httpHc] }, 'health_checks'],
    ['HTTP health check without a path', { healthChecks: [{ ...httpHc, healthChecker: { case: 'httpHealthCheck', value: { path: '' } } }] }, 'health_checks[0].http_health_check.path'],
    ['HTTP/3 health check', { healthChecks: [{ ...httpHc, healthChecker: { case: 'httpHealthCheck', value: { path: '/', codecClientType: CodecClientType.HTTP3 } } }] }, 'health_checks[0].http_health_check.codec_client_type'],
    ['health check without timeout', { healthChecks: [{ ...httpHc, timeout: undefined }] }, 'health_checks[0].timeout'],
    ['bad expected status range', { healthChecks: [{ ...httpHc, healthChecker: { case: 'httpHealthCheck', value: { path: '/', expectedStatuses: [{ start: 300n, end: 200n }] } } }] }, 'health_checks[0].http_health_check.expected_statuses[0]'],
    ['subset load balancing', { lbSubsetConfig: { subsetSelectors: [{ keys: ['version'] }] } }, 'lb_subset_config'],
    ['max ejection time below base', { outlierDetection: { baseEjectionTime: s(60), maxEjectionTime: s(30) } }, 'outlier_detection.max_ejection_time'],
    ['HTTP/3 upstream', { typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': h3 } }, 'explicit_http_config.http3_protocol_options'],
    ['per-host max_requests', { circuitBreakers: { perHostThresholds: [{ maxRequests: 3 }] } }, 'circuit_breakers.per_host_thresholds[0]'],
    ['panic threshold above 100', { commonLbConfig: { healthyPanicThreshold: { value: 150 } } }, 'common_lb_config.healthy_panic_threshold'],
    ['custom cluster type', { clusterDiscoveryType: { case: 'clusterType', value: { name: 'envoy.clusters.dynamic_forward_proxy' } } }, 'cluster_type'],
    ['unknown transport socket', { transportSocket: { name: 'envoy.transport_sockets.alts' } }, 'transport_socket'],
    ['TLS cluster with a gRPC health check', { transportSocket: tlsSocket, healthChecks: [{ ...httpHc, healthChecker: { case: 'grpcHealthCheck', value: {} } }] }, 'health_checks[0].grpc_health_check'],
    ['choice_count 1', { lbPolicy: Cluster_LbPolicy.LEAST_REQUEST, lbConfig: { case: 'leastRequestLbConfig', value: { choiceCount: 1 } } }, 'least_request_lb_config.choice_count'],
    ['upstream filters', { filters: [{ name: 'envoy.filters.upstream_network.x' }] }, 'filters'],
  ];
  for (const [what, init, field] of cases) {
    test(what, () => {
      assert.throws(
        () => compileCluster(cluster(init), testOpts()),
        (e: unknown) => {
          assert.ok(e instanceof ConfigError, String(e));
          assert.equal(e.resource, 'c1');
          assert.ok(e.field.endsWith(field), `field ${e.field} ends with ${field}`);
          assert.ok(e.message.startsWith(`cluster "c1": ${e.field}: `), e.message);
          return true;
        },
      );
    });
  }

  test('an EDS update that cannot be applied throws and changes nothing', () => {
    const { cluster: c } = edsRuntime('eds', {}, [{ hosts: ['10.0.0.1:80'] }]);
    assert.throws(
      () => c.updateHosts(cla('eds', [{ hosts: ['10.0.0.2:80', 'db.example:80'] }])),
      (e: unknown) => e instanceof ConfigError && e.kind === 'cluster_load_assignment' && e.field === 'endpoints[0].lb_endpoints[1].endpoint.address.socket_address.address',
    );
    assert.deepEqual(
      c.hosts().map((h) => h.key),
      ['10.0.0.1:80'],
    );
    assert.equal(c.stats.update_failure, 1);
    assert.throws(() => c.updateHosts(cla('eds', [{ locality: 'r/z/', hosts: ['10.0.0.1:80'] }, { locality: 'r/z/', hosts: ['10.0.0.2:80'] }])), /duplicate locality/);
  });
});

/** The cluster with its TLS context's trusted_ca file replaced by a real CA certificate (the fixture names /etc/certs/ca.pem). */
async function withCaFile(c: Cluster): Promise<Cluster> {
  const out = clone(ClusterSchema, c);
  const ts = out.transportSocket!;
  assert.equal(ts.configType.case, 'typedConfig');
  const ctx = unpack(UpstreamTlsContextSchema, ts.configType.value as Any);
  const vc = ctx.commonTlsContext!.validationContextType;
  assert.equal(vc.case, 'validationContext');
  const ca = await createCa();
  if (vc.case === 'validationContext') vc.value.trustedCa = create(DataSourceSchema, { specifier: { case: 'inlineString', value: ca.certPem } });
  ca.close();
  ts.configType = { case: 'typedConfig', value: pack(UpstreamTlsContextSchema, ctx) };
  return out;
}

describe('settings', () => {
  test("Envoy's defaults and what the request path reads", () => {
    const c = compileCluster(edsCluster('d', { connectTimeout: undefined }), testOpts());
    assert.equal(c.type, 'EDS');
    assert.equal(c.lbPolicy, 'ROUND_ROBIN');
    assert.equal(c.connectTimeoutMs, 5000);
    assert.equal(c.protocol, 'http1');
    assert.equal(c.perConnectionBufferLimitBytes, 1024 * 1024);
    assert.equal(c.transport.plaintext, true);
    assert.equal(c.edsServiceName, 'd');
    assert.equal(c.outlierDetection, undefined);
    const h = edsRuntime('o', { outlierDetection: {} }, [{ hosts: ['10.0.0.1:80'] }]).cluster;
    assert.deepEqual(
      [h.outlierDetection?.consecutive5xx, h.outlierDetection?.intervalMs, h.outlierDetection?.baseEjectionTimeMs, h.outlierDetection?.maxEjectionPercent, h.outlierDetection?.enforcingConsecutiveGatewayFailure, h.outlierDetection?.maxEjectionTimeMs],
      [5, 10_000, 30_000, 10, 0, 300_000],
    );
    // Clusters with the same circuit breaker settings share one (frozen) thresholds object per priority.
    const e = compileCluster(edsCluster('e', { connectTimeout: undefined }), testOpts());
    assert.equal(e.circuitBreaker('default').thresholds, c.circuitBreaker('default').thresholds);
    assert.equal(e.circuitBreaker('high').thresholds, c.circuitBreaker('high').thresholds);
    assert.ok(Object.isFrozen(c.circuitBreaker('default').thresholds));
    assert.equal(c.circuitBreaker('default').thresholds.maxRequests, 1024);
  });

  test('upstream protocol from HttpProtocolOptions (explicit HTTP/2, downstream) and the deprecated fields; warnings', () => {
    const opts = (v: Parameters<typeof pack<typeof HttpProtocolOptionsSchema>>[1]) => ({ typedExtensionProtocolOptions: { 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(HttpProtocolOptionsSchema, v) } });
    const h2 = compileCluster(edsCluster('h2', opts({ upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http2ProtocolOptions', value: {} } } } })), testOpts());
    assert.equal(h2.protocol, 'http2');
    assert.ok(h2.httpProtocolOptions);
    const down = compileCluster(edsCluster('dn', opts({ upstreamProtocolOptions: { case: 'useDownstreamProtocolConfig', value: {} } })), testOpts());
    assert.equal(down.protocol, 'downstream');
    assert.equal(compileCluster(edsCluster('legacy', { http2ProtocolOptions: {} }), testOpts()).protocol, 'http2');
    const w = compileCluster(edsCluster('w', { lrsServer: { configSourceSpecifier: { case: 'self', value: {} } }, dnsResolvers: [{}] }), testOpts());
    assert.deepEqual(
      w.warnings.map((x) => x.field).sort(),
      ['lrs_server', 'typed_dns_resolver_config'],
    );
  });

  test('translator output: TLS context for the TLS layer, DNS settings, metadata', async () => {
    const t = translateFixture('upstream.yaml');
    // The rule's caCertificates file is read when the cluster compiles (Envoy NACKs a missing file too).
    const cluster = t.cluster('outbound|8080||local.test');
    assert.throws(() => compileCluster(cluster, testOpts()), /transport_socket\.typed_config\.common_tls_context\.validation_context\.trusted_ca: cannot read \/etc\/certs\/ca\.pem: ENOENT/);
    const c = compileCluster(await withCaFile(cluster), { ...testOpts(), secrets: new SecretManager() });
    assert.equal(c.type, 'STRICT_DNS');
    assert.equal(c.transport.tls?.sni, 'local.test');
    assert.equal(c.protocol, 'http1');
    assert.deepEqual(c.warnings, []);
  });
});

describe('discovery', () => {
  test('STATIC: hosts from load_assignment; ready once started', async () => {
    const c = compileCluster(cluster({ ...staticType, loadAssignment: cla('c1', [{ locality: 'r/z/s', hosts: ['127.0.0.1:9000', { addr: '[::1]:9000', weight: 2 }] }]) }), testOpts());
    assert.deepEqual(
      c.hosts().map((h) => [h.key, h.weight, h.locality.region]),
      [
        ['127.0.0.1:9000', 1, 'r'],
        ['[::1]:9000', 2, 'r'],
      ],
    );
    c.start();
    await c.ready;
  });

  test('EDS: ready after the first assignment; policy overprovisioning factor and drop_overloads', async () => {
    const c = compileCluster(edsCluster('e'), testOpts());
    c.start();
    let ready = false;
    void c.ready.then(() => (ready = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(ready, false);
    c.updateHosts(
      cla('e', [{ hosts: ['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', { addr: '10.0.0.4:80', health: HealthStatus.UNHEALTHY }] }, { priority: 1, hosts: ['10.0.1.1:80'] }], {
        overprovisioningFactor: 100,
        dropOverloads: [{ category: 'lb', dropPercentage: { numerator: 5, denominator: 0 } }],
      }),
    );
    await c.ready;
    assert.deepEqual((c.lb as LoadBalancerBase).healthyLoad, [75, 25], 'factor 1.0: 3/4 healthy → 75%');
    assert.equal(c.dropOverload, 0.05);
  });

  test("STRICT_DNS from a ServiceEntry resolves 'localhost' (system resolver)", async () => {
    const t = translateFixture('upstream.yaml');
    const opts = testOpts();
    const c = compileCluster(await withCaFile(t.cluster('outbound|8080||local.test')), opts);
    c.start();
    await c.ready;
    c.close();
    const hosts = c.hosts();
    assert.deepEqual(
      hosts.map((h) => [h.key, h.hostname, `${h.locality.region}/${h.locality.zone}/${h.locality.subZone}`]),
      [['127.0.0.1:18080', 'localhost', 'us-east/zone-1/a']],
    );
    assert.equal(c.lb.choose(), hosts[0]);
  });

  test('STRICT_DNS refresh: dns_refresh_rate or the TTL, identity kept, failures keep hosts and back off', async () => {
    let answers: Array<{ address: string; ttl: number }> = [{ address: '10.0.0.1', ttl: 30 }];
    let fail = false;
    const calls: number[] = [];
    const opts = testOpts();
    const resolver: DnsResolver = async (name, family) => {
      assert.equal(name, 'svc.example');
      assert.equal(family, 'V4_ONLY');
      calls.push(opts.clock.now());
      if (fail) throw new Error('SERVFAIL');
      return answers;
    };
    const c = compileCluster(
      cluster({ clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STRICT_DNS }, dnsLookupFamily: 1, respectDnsTtl: true, dnsRefreshRate: s(10), loadAssignment: cla('c1', [{ hosts: ['svc.example:8080'] }]) }),
      { ...opts, resolver },
    );
    c.start();
    await c.ready;
    const first = c.host('10.0.0.1:8080')!;
    assert.ok(first);
    first.stats.rq_total = 7;
    answers = [
      { address: '10.0.0.1', ttl: 60 },
      { address: '10.0.0.2', ttl: 60 },
    ];
    opts.clock.advance(10_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(c.hosts().length, 1, 'the TTL (30s), not dns_refresh_rate (10s), decides');
    opts.clock.advance(20_000);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(
      c.hosts().map((h) => h.key),
      ['10.0.0.1:8080', '10.0.0.2:8080'],
    );
    assert.equal(c.host('10.0.0.1:8080'), first, 'same Host object');
    assert.equal(first.stats.rq_total, 7);
    fail = true;
    opts.clock.advance(60_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(c.hosts().length, 2, 'a failed resolution keeps the hosts');
    const failedAt = calls.length;
    opts.clock.advance(10_000); // backoff < dns_failure_refresh_rate base (10s)
    await new Promise((r) => setImmediate(r));
    assert.equal(calls.length, failedAt + 1, 'retried within the backoff');
    fail = false;
    answers = [];
    opts.clock.advance(20_000);
    await new Promise((r) => setImmediate(r));
    assert.equal(c.hosts().length, 0, 'an empty answer removes the hosts');
    c.close();
  });

  test('LOGICAL_DNS: one host whose address follows DNS', async () => {
    let address = '10.0.0.1';
    const opts = testOpts();
    const c = compileCluster(
      cluster({ clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.LOGICAL_DNS }, loadAssignment: cla('c1', [{ hosts: ['api.example:443'] }]) }),
      { ...opts, resolver: async () => [{ address, ttl: 0 }, { address: '10.9.9.9', ttl: 0 }] },
    );
    c.start();
    await c.ready;
    const h = c.hosts()[0]!;
    assert.deepEqual([c.hosts().length, h.address, h.hostname], [1, '10.0.0.1', 'api.example']);
    address = '10.0.0.2';
    opts.clock.advance(5000); // default dns_refresh_rate
    await new Promise((r) => setImmediate(r));
    assert.equal(c.hosts()[0], h, 'the same logical host');
    assert.equal(h.address, '10.0.0.2');
    assert.equal(h.key, '10.0.0.2:443');
    c.close();
  });

  test('ORIGINAL_DST: hosts are the original destinations, port override, unused hosts cleaned up', () => {
    const opts = testOpts();
    const c = compileCluster(cluster({ clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST }, lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED, cleanupInterval: s(5) }), opts);
    c.start();
    const a = c.lb.choose({ originalDst: '10.1.2.3:8080' })!;
    assert.equal(a.key, '10.1.2.3:8080');
    assert.equal(c.lb.choose({ originalDst: '10.1.2.3:8080' }), a);
    const v6 = c.lb.choose({ originalDst: '[fd00::1]:443' })!;
    assert.equal(v6.address, 'fd00::1');
    assert.equal(c.lb.choose({ originalDst: 'garbage' }), undefined);
    assert.equal(c.lb.choose(), undefined);
    opts.clock.advance(5000); // marks unused
    c.lb.choose({ originalDst: '10.1.2.3:8080' });
    opts.clock.advance(5000); // removes the unused one
    assert.deepEqual(
      c.hosts().map((h) => h.key),
      ['10.1.2.3:8080'],
    );
    assert.equal(v6.removed, true);
    c.close();
    const po = compileCluster(
      cluster({ clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.ORIGINAL_DST }, lbPolicy: Cluster_LbPolicy.CLUSTER_PROVIDED, lbConfig: { case: 'originalDstLbConfig', value: { useHttpHeader: true, upstreamPortOverride: 9090 } } }),
      testOpts(),
    );
    assert.equal(po.lb.choose({ originalDst: '10.1.2.3:8080' })!.key, '10.1.2.3:9090');
    assert.deepEqual(po.originalDst, { useHttpHeader: true, httpHeaderName: 'x-envoy-original-dst-host', upstreamPortOverride: 9090, cleanupIntervalMs: 5000 });
  });
});

describe('stats and hashing', () => {
  test('stats enumerate with Envoy names and kinds', () => {
    const { cluster: c } = edsRuntime('st', { outlierDetection: {}, circuitBreakers: { thresholds: [{ maxRequests: 5 }] } }, [{ hosts: ['10.0.0.1:80'] }]);
    c.stats.upstream_rq_total += 3;
    c.stats.inc('upstream_rq_503');
    const all = new Map<string, [number, string]>();
    c.stats.forEach((n, v, k) => all.set(n, [v, k]));
    assert.deepEqual(all.get('upstream_rq_total'), [3, 'counter']);
    assert.deepEqual(all.get('upstream_rq_503'), [1, 'counter']);
    assert.deepEqual(all.get('membership_total'), [1, 'gauge']);
    assert.deepEqual(all.get('outlier_detection.ejections_active'), [0, 'gauge']);
    assert.deepEqual(all.get('health_check.attempt'), [0, 'counter']);
    assert.deepEqual(all.get('circuit_breakers.default.rq_open'), [0, 'gauge']);
    assert.deepEqual(all.get('circuit_breakers.high.cx_open'), [0, 'gauge']);
    const host = c.hosts()[0]!;
    const hs = new Map<string, string>();
    host.stats.forEach((n, _v, k) => hs.set(n, k));
    assert.deepEqual([...hs.keys()].sort(), ['cx_active', 'cx_connect_fail', 'cx_total', 'rq_active', 'rq_error', 'rq_success', 'rq_timeout', 'rq_total']);
    assert.equal(hs.get('rq_active'), 'gauge');
  });

  test('xxHash64 (reference vectors), hex and 64-bit modulo', () => {
    assert.equal(xxhash64(''), 0xef46db3751d8e999n);
    assert.equal(xxhash64('a'), 0xd24ec4f1a98c6e5bn);
    assert.equal(xxhash64('abc'), 0x44bc2cf5ad770999n);
    assert.equal(xxhash64('Nobody inspects the spammish repetition'), 0xfbcea83c8a378bf1n);
    assert.equal(xxhash64('héllo ✓'), xxhash64(new TextEncoder().encode('héllo ✓')), 'strings hash their UTF-8 bytes');
    xxhash64String('abc');
    assert.equal(toHex64(hashResult.hi, hashResult.lo), '44bc2cf5ad770999');
    const big = 0xfedcba9876543210n;
    assert.equal(mod64(Number(big >> 32n), Number(big & 0xffffffffn), 65537), Number(big % 65537n));
    assert.equal(mod64(Number(big >> 32n), Number(big & 0xffffffffn), 100), Number(big % 100n));
  });
});
