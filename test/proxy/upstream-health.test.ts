// Active health checking against real servers on 127.0.0.1 (HTTP/1.1, HTTP/2, TCP with payloads, gRPC
// grpc.health.v1), driven by an injected clock: thresholds, immediate failures, retriable statuses, timeouts,
// degraded hosts, no-traffic intervals, readiness, hosts kept while passing checks after removal from EDS, and
// un-ejection of outlier-ejected hosts by a passing check.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { cla, edsCluster, testOpts, type ClusterInit } from './upstream-helpers.js';
import { compileCluster, type ClusterRuntime, type Host } from '../../src/proxy/upstream/cluster/index.js';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { CodecClientType } from '../../src/xds/gen/envoy/type/v3/http_pb.js';

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

/** Waits (real time) until `cond` holds; fails after 5s. Used to let socket I/O complete, not to measure time. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

const s = (n: number) => ({ seconds: BigInt(n) });

function staticCluster(name: string, ports: number[], hc: NonNullable<ClusterInit['healthChecks']>[number], extra: Partial<ClusterInit> = {}) {
  const opts = testOpts();
  const c = compileCluster(
    create(ClusterSchema, {
      name,
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
      lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
      loadAssignment: cla(name, [{ hosts: ports.map((p) => `127.0.0.1:${p}`) }]),
      healthChecks: [hc],
      ...extra,
    } as ClusterInit),
    opts,
  );
  closers.push(() => c.close());
  return { cluster: c, clock: opts.clock };
}

/** Runs the next scheduled check of every host and waits for `n` more results. */
async function nextCheck(cluster: ClusterRuntime, clock: { advance(ms: number): void }, ms: number, n = 1): Promise<void> {
  const st = cluster.stats.healthCheck;
  const before = st.success + st.failure;
  clock.advance(ms);
  await until(() => st.success + st.failure >= before + n, 'health check results');
}

const host = (c: ClusterRuntime, port: number): Host => c.host(`127.0.0.1:${port}`)!;

describe('HTTP health checks', () => {
  test('first success marks a new host healthy; 503 fails it at once; Envoy/HC request to the path with the cluster name as Host', async () => {
    let status = 200;
    const seen: Array<{ path: string; host: string; ua: string; extra: string }> = [];
    const server = http.createServer((req, res) => {
      seen.push({ path: req.url!, host: req.headers.host!, ua: req.headers['user-agent']!, extra: String(req.headers['x-probe']) });
      res.writeHead(status).end('ok');
    });
    const port = await listen(server);
    const other = await listen(http.createServer((_q, r) => r.end('ok')));
    const { cluster, clock } = staticCluster('web', [port, other], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 3,
      healthyThreshold: 2,
      healthChecker: { case: 'httpHealthCheck', value: { path: '/healthz', requestHeadersToAdd: [{ header: { key: 'x-probe', value: '1' } }] } },
    });
    const h = host(cluster, port);
    assert.equal(h.healthFlagsString(), '/failed_active_hc', 'new hosts start unhealthy');
    cluster.stats.upstream_cx_total = 1; // the cluster has traffic: regular intervals
    cluster.start();
    await cluster.ready;
    assert.equal(h.healthFlagsString(), 'healthy');
    assert.deepEqual(seen[0], { path: '/healthz', host: 'web', ua: 'Envoy/HC', extra: '1' });
    assert.equal(cluster.stats.healthCheck.healthy, 2);
    status = 503;
    await nextCheck(cluster, clock, 5000, 2);
    assert.equal(h.healthFlagsString(), '/failed_active_hc', 'a status outside expected_statuses fails at once');
    assert.equal(cluster.stats.healthCheck.healthy, 1);
    for (let i = 0; i < 20; i++) assert.equal(cluster.lb.choose()!.key, `127.0.0.1:${other}`, 'the failed host gets no traffic');
    status = 200;
    await nextCheck(cluster, clock, 5000, 2);
    assert.equal(h.healthFlagsString(), '/failed_active_hc', 'one success of healthy_threshold 2');
    await nextCheck(cluster, clock, 5000, 2);
    assert.equal(h.healthFlagsString(), 'healthy');
  });

  test('retriable_statuses: 503 fails the host only after unhealthy_threshold checks', async () => {
    let status = 200;
    const port = await listen(http.createServer((_q, r) => r.writeHead(status).end()));
    const { cluster, clock } = staticCluster('retriable', [port], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 2,
      healthyThreshold: 1,
      healthChecker: { case: 'httpHealthCheck', value: { path: '/', retriableStatuses: [{ start: 503n, end: 504n }] } },
    });
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    const h = host(cluster, port);
    assert.equal(h.healthy, true);
    status = 503;
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), 'healthy', 'first 503: pending');
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), '/failed_active_hc', 'second 503: unhealthy');
    status = 500; // not retriable, host already unhealthy
    await nextCheck(cluster, clock, 5000);
    status = 200;
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthy, true);
  });

  test('expected_statuses, x-envoy-degraded, receive payload, service_name_matcher', async () => {
    let headers: Record<string, string> = {};
    let body = 'all good';
    const port = await listen(http.createServer((_q, r) => r.writeHead(200, headers).end(body)));
    const { cluster, clock } = staticCluster('checks', [port], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: {
        case: 'httpHealthCheck',
        value: {
          path: '/',
          expectedStatuses: [{ start: 200n, end: 300n }],
          receive: [{ payload: { case: 'text', value: Buffer.from('good').toString('hex') } }],
          serviceNameMatcher: { matchPattern: { case: 'prefix', value: 'checks' } },
        },
      },
    });
    cluster.stats.upstream_cx_total = 1;
    headers = { 'x-envoy-upstream-healthchecked-cluster': 'checks-v1', 'x-envoy-degraded': '1' };
    cluster.start();
    await cluster.ready;
    const h = host(cluster, port);
    assert.equal(h.healthFlagsString(), '/degraded_active_hc');
    assert.equal(cluster.stats.membership_degraded, 1);
    assert.equal(cluster.stats.healthCheck.degraded, 1);
    headers = { 'x-envoy-upstream-healthchecked-cluster': 'other' };
    await nextCheck(cluster, clock, 5000);
    // A failure does not clear the degraded flag (Envoy clears it on the next success only).
    assert.equal(h.healthFlagsString(), '/failed_active_hc/degraded_active_hc', 'service name mismatch');
    assert.equal(cluster.stats.healthCheck.verify_cluster, 2);
    headers = { 'x-envoy-upstream-healthchecked-cluster': 'checks' };
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), 'healthy', 'success clears degraded');
    body = 'all bad';
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), '/failed_active_hc', 'the body does not contain the receive payload');
  });

  test('a check that does not answer within timeout is a network timeout (/active_hc_timeout)', async () => {
    let hang = false;
    const port = await listen(
      http.createServer((_q, r) => {
        if (!hang) r.end('ok');
      }),
    );
    const { cluster, clock } = staticCluster('slow', [port], {
      timeout: s(2),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: { case: 'httpHealthCheck', value: { path: '/' } },
    });
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    hang = true;
    const st = cluster.stats.healthCheck;
    clock.advance(5000); // starts the check
    await until(() => st.attempt === 2, 'the second attempt');
    await new Promise((r) => setTimeout(r, 50)); // the request reaches the server and hangs
    clock.advance(2000); // timeout
    assert.equal(host(cluster, port).healthFlagsString(), '/failed_active_hc/active_hc_timeout');
    assert.equal(st.network_failure, 1);
  });

  test('HTTP/2 (h2c) checks', async () => {
    const server = http2.createServer((req, res) => {
      res.writeHead(req.headers[':authority'] === 'h2' ? 200 : 500).end();
    });
    const port = await listen(server);
    const { cluster } = staticCluster('h2', [port], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: { case: 'httpHealthCheck', value: { path: '/', codecClientType: CodecClientType.HTTP2 } },
    });
    cluster.start();
    await cluster.ready;
    assert.equal(host(cluster, port).healthFlagsString(), 'healthy');
  });

  test('without traffic the next check waits no_traffic_interval (60s), not interval', async () => {
    const port = await listen(http.createServer((_q, r) => r.end()));
    const { cluster, clock } = staticCluster('idle', [port], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: { case: 'httpHealthCheck', value: { path: '/' } },
    });
    cluster.start();
    await cluster.ready;
    const st = cluster.stats.healthCheck;
    clock.advance(5000);
    assert.equal(st.attempt, 1, 'no check after 5s');
    await nextCheck(cluster, clock, 55_000);
    assert.equal(st.attempt, 2);
  });
});

describe('TCP health checks', () => {
  test('connect-only: a closed port fails the host after unhealthy_threshold network failures', async () => {
    const server = net.createServer((sock) => sock.end());
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const { cluster, clock } = staticCluster('tcp', [port], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 2,
      healthyThreshold: 1,
      healthChecker: { case: 'tcpHealthCheck', value: {} },
    });
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    const h = host(cluster, port);
    assert.equal(h.healthy, true);
    await new Promise<void>((r) => server.close(() => r()));
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), 'healthy', 'one refused connection: pending');
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), '/failed_active_hc');
    assert.equal(cluster.stats.healthCheck.network_failure, 2);
  });

  test('send / receive payloads (hex), connection reused between checks', async () => {
    let connections = 0;
    let reply = 'pong';
    const port = await listen(
      net.createServer((sock) => {
        connections++;
        sock.on('data', (d) => {
          if (d.toString() === 'ping') sock.write(reply);
        });
      }),
    );
    const { cluster, clock } = staticCluster('tcp-payload', [port], {
      timeout: s(1),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: { case: 'tcpHealthCheck', value: { send: { payload: { case: 'text', value: Buffer.from('ping').toString('hex') } }, receive: [{ payload: { case: 'text', value: Buffer.from('po').toString('hex') } }, { payload: { case: 'binary', value: Buffer.from('ng') } }] } },
    });
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    assert.equal(host(cluster, port).healthy, true);
    await nextCheck(cluster, clock, 5000);
    assert.equal(cluster.stats.healthCheck.success, 2);
    assert.equal(connections, 1, 'reuse_connection (default true)');
    reply = 'nope';
    clock.advance(5000);
    await new Promise((r) => setTimeout(r, 50));
    clock.advance(1000); // no matching answer within the timeout
    assert.equal(host(cluster, port).healthFlagsString(), '/failed_active_hc/active_hc_timeout');
  });
});

describe('gRPC health checks', () => {
  test('grpc.health.v1: SERVING is healthy, NOT_SERVING fails at once; the service name is sent', async () => {
    let status = 1;
    const services: string[] = [];
    const server = new grpc.Server();
    const ident = (b: Buffer) => b;
    server.addService(
      { Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident } } as grpc.ServiceDefinition,
      {
        Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
          const req = call.request;
          services.push(req.length > 2 ? req.subarray(2).toString() : '');
          cb(null, Buffer.from([0x08, status]));
        },
      },
    );
    const port = await new Promise<number>((res, rej) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    closers.push(() => new Promise<void>((r) => server.tryShutdown(() => r())));
    const { cluster, clock } = staticCluster('grpc', [port], {
      timeout: s(2),
      interval: s(5),
      unhealthyThreshold: 3,
      healthyThreshold: 1,
      healthChecker: { case: 'grpcHealthCheck', value: { serviceName: 'shop.Cart' } },
    });
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    const h = host(cluster, port);
    assert.equal(h.healthFlagsString(), 'healthy');
    assert.deepEqual(services, ['shop.Cart']);
    status = 2; // NOT_SERVING
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthFlagsString(), '/failed_active_hc', 'an active failure ignores unhealthy_threshold');
    status = 1;
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.healthy, true);
  });

  test('no server: network failures', async () => {
    const probe = net.createServer();
    const port = await new Promise<number>((r) => probe.listen(0, '127.0.0.1', () => r((probe.address() as AddressInfo).port)));
    await new Promise<void>((r) => probe.close(() => r()));
    const { cluster } = staticCluster('grpc-down', [port], {
      timeout: s(2),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: { case: 'grpcHealthCheck', value: {} },
    });
    cluster.start();
    await cluster.ready;
    assert.equal(host(cluster, port).healthFlagsString(), '/failed_active_hc');
    assert.equal(cluster.stats.healthCheck.network_failure, 1);
  });
});

describe('health checks and membership', () => {
  test('a host dropped by EDS stays while it passes checks (/pending_dynamic_removal) and goes when it fails', async () => {
    const statuses = new Map<number, number>();
    const mk = async () => {
      let port = 0;
      port = await listen(http.createServer((_q, r) => r.writeHead(statuses.get(port) ?? 200).end()));
      return port;
    };
    const a = await mk();
    const b = await mk();
    const opts = testOpts();
    const cluster = compileCluster(
      edsCluster('dyn', { lbPolicy: Cluster_LbPolicy.ROUND_ROBIN, healthChecks: [{ timeout: s(1), interval: s(5), unhealthyThreshold: 1, healthyThreshold: 1, healthChecker: { case: 'httpHealthCheck', value: { path: '/' } } }] }),
      opts,
    );
    closers.push(() => cluster.close());
    const removed: string[] = [];
    cluster.onHostsChanged((_a, r) => removed.push(...r.map((h) => h.key)));
    cluster.updateHosts(cla('dyn', [{ hosts: [`127.0.0.1:${a}`, `127.0.0.1:${b}`] }]));
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    cluster.updateHosts(cla('dyn', [{ hosts: [`127.0.0.1:${a}`] }]));
    const hb = host(cluster, b);
    assert.equal(hb.healthFlagsString(), '/pending_dynamic_removal');
    assert.equal(cluster.hosts().length, 2, 'still a member');
    statuses.set(b, 503);
    await nextCheck(cluster, opts.clock, 5000, 2);
    assert.equal(cluster.host(`127.0.0.1:${b}`), undefined);
    assert.deepEqual(removed, [`127.0.0.1:${b}`]);
    assert.equal(hb.removed, true);
    // An update can also bring a pending host back.
    cluster.updateHosts(cla('dyn', [{ hosts: [`127.0.0.1:${a}`] }]));
    assert.equal(cluster.hosts().length, 1);
  });

  test('a passing active check un-ejects a host ejected by outlier detection', async () => {
    const port = await listen(http.createServer((_q, r) => r.end()));
    const { cluster, clock } = staticCluster(
      'uneject',
      [port],
      { timeout: s(1), interval: s(5), unhealthyThreshold: 1, healthyThreshold: 1, healthChecker: { case: 'httpHealthCheck', value: { path: '/' } } },
      { outlierDetection: { consecutive5xx: 1, maxEjectionPercent: 100, interval: s(3600) } },
    );
    cluster.stats.upstream_cx_total = 1;
    cluster.start();
    await cluster.ready;
    const h = host(cluster, port);
    h.outlier.putResult('5xx', 500);
    assert.equal(h.ejected, true);
    await nextCheck(cluster, clock, 5000);
    assert.equal(h.ejected, false);
    assert.equal(cluster.stats.outlier.ejections_active, 0);
  });

  test('ignore_new_hosts_until_first_hc: new hosts are excluded until checked', async () => {
    const port = await listen(http.createServer((_q, r) => r.end()));
    const { cluster } = staticCluster(
      'warm',
      [port],
      { timeout: s(1), interval: s(5), unhealthyThreshold: 1, healthyThreshold: 1, healthChecker: { case: 'httpHealthCheck', value: { path: '/' } } },
      { commonLbConfig: { ignoreNewHostsUntilFirstHc: true } },
    );
    assert.equal(host(cluster, port).healthFlagsString(), '/failed_active_hc/pending_active_hc');
    assert.equal(cluster.stats.membership_excluded, 1);
    cluster.start();
    await cluster.ready;
    assert.equal(host(cluster, port).healthFlagsString(), 'healthy');
    assert.equal(cluster.stats.membership_excluded, 0);
  });
});
