// The TCP proxy (src/proxy/tcp) with real sockets on 127.0.0.1: listeners compiled from hand-built LDS Listener
// protos with a tcp_proxy filter, clusters compiled from hand-built CDS/EDS protos, real upstream servers.
// Covers config validation and defaults, weighted cluster choice, echo, half-close both ways, backpressure both
// ways, flush after the client left, idle timeout, max connection duration, no healthy upstream (UH), no cluster
// (NC), circuit breaker overflow (UO), connect failure retries (UF / URX) and outlier results.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { ListenerSchema, type Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { compileListener, ListenerManager, type ListenerContext } from '../../src/proxy/listener/listener.js';
import { compileTcpProxy, DEFAULT_TCP_IDLE_TIMEOUT_MS, TcpProxyStats, type TcpProxyContext, type TcpProxySession } from '../../src/proxy/tcp/index.js';
import { ConfigError } from '../../src/proxy/config-error.js';
import { compileCluster, type ClusterRuntime, type HostOutlier, type OutlierResult } from '../../src/proxy/upstream/cluster/index.js';
import { cla, edsCluster, type ClusterInit } from './upstream-helpers.js';

type TcpInit = MessageInitShape<typeof TcpProxySchema>;

function ctx(clusters: Record<string, ClusterRuntime> = {}, random?: () => number): TcpProxyContext {
  return { listener: 'l', field: 'f', cluster: (n) => clusters[n], warn: () => undefined, random };
}

function tcpListenerProto(name: string, tp: TcpInit): Listener {
  return create(ListenerSchema, {
    name,
    address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: 0 } } } },
    filterChains: [{ filters: [{ name: 'envoy.filters.network.tcp_proxy', configType: { case: 'typedConfig', value: pack(TcpProxySchema, create(TcpProxySchema, tp)) } }] }],
  });
}

/** An EDS cluster with the given `127.0.0.1:port` endpoints. */
function cluster(name: string, ports: number[], init: Partial<ClusterInit> = {}): ClusterRuntime {
  const rt = compileCluster(edsCluster(name, init));
  rt.updateHosts(cla(name, ports.length ? [{ hosts: ports.map((p) => `127.0.0.1:${p}`) }] : []));
  rt.start();
  return rt;
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

/** Tracks a server's connections; the returned function destroys them and closes the server. */
function closer(server: Server): () => Promise<void> {
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return () => {
    for (const s of sockets) s.destroy();
    return new Promise<void>((r) => server.close(() => r()));
  };
}

async function deadPort(): Promise<number> {
  const s = createServer();
  const p = await listen(s);
  await new Promise<void>((r) => s.close(() => r()));
  return p;
}

/** A TCP echo server (half-open: it echoes until the client ends, then ends). */
async function echoServer(): Promise<{ server: Server; port: number; sockets: Set<Socket> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  return { server, sockets, port: await listen(server) };
}

/** A proxy: a ListenerManager serving one tcp_proxy listener over the given clusters. */
class TestProxy {
  readonly manager = new ListenerManager(200);
  /** Every session that closed. */
  readonly sessions: TcpProxySession[] = [];
  stats = new TcpProxyStats();
  port = 0;
  constructor(
    private readonly clusters: Record<string, ClusterRuntime>,
    private readonly random?: () => number,
  ) {}

  async start(tp: TcpInit): Promise<this> {
    const lctx: ListenerContext = {
      rds: () => ({ current: undefined }),
      inlineRoutes: () => ({ current: undefined }),
      cluster: (n) => (this.clusters[n] ? { runtime: this.clusters[n]!, pool: () => assert.fail('no HTTP pools here') } : undefined),
      warn: () => undefined,
      random: this.random,
      tcpStats: () => this.stats,
      tcpSessionClosed: (s) => this.sessions.push(s),
    };
    await this.manager.apply(compileListener(tcpListenerProto('tcp', tp), lctx));
    this.port = this.manager.port('tcp')!;
    return this;
  }

  async close(): Promise<void> {
    await this.manager.close(100);
    for (const c of Object.values(this.clusters)) c.close();
  }
}

interface Exchange {
  data: Buffer;
  ended: boolean;
  closed: boolean;
}

/**
 * Connects, sends `send`, ends the write side (unless `end` is false: then the client waits for the other side to
 * close, answering its FIN with its own), and collects everything until the connection closes.
 */
function exchange(port: number, send: Buffer | string, end = true): Promise<Exchange> {
  return new Promise((resolve) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: end });
    const chunks: Buffer[] = [];
    let ended = false;
    c.on('data', (d: Buffer) => chunks.push(d));
    c.on('end', () => (ended = true));
    c.on('error', () => undefined);
    c.on('close', () => resolve({ data: Buffer.concat(chunks), ended, closed: true }));
    c.write(send);
    if (end) c.end();
  });
}

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`timed out waiting for ${what}`);
}

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

// ---------------------------------------------------------------------------------------------------------------

describe('tcp_proxy config', () => {
  test('defaults: idle timeout 1 h, one connect attempt, no duration limit', () => {
    const c = compileTcpProxy(create(TcpProxySchema, { statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' } }), ctx());
    assert.equal(c.idleTimeoutMs, DEFAULT_TCP_IDLE_TIMEOUT_MS);
    assert.equal(c.idleTimeoutMs, 3_600_000);
    assert.equal(c.maxConnectAttempts, 1);
    assert.equal(c.maxDownstreamConnectionDurationMs, 0);
    assert.deepEqual(c.clusterNames, ['a']);
    assert.equal(c.pickCluster(), 'a');
  });

  test('idle_timeout 0 disables; explicit values are taken', () => {
    const c = compileTcpProxy(
      create(TcpProxySchema, { statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' }, idleTimeout: { seconds: 0n }, maxConnectAttempts: 3 }),
      ctx(),
    );
    assert.equal(c.idleTimeoutMs, 0);
    assert.equal(c.maxConnectAttempts, 3);
    const d = compileTcpProxy(create(TcpProxySchema, { statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' }, idleTimeout: { seconds: 2n, nanos: 500_000_000 } }), ctx());
    assert.equal(d.idleTimeoutMs, 2500);
  });

  test('invalid or unsupported fields are ConfigErrors naming the field', () => {
    const bad: Array<[TcpInit, RegExp]> = [
      [{ statPrefix: '', clusterSpecifier: { case: 'cluster', value: 'a' } }, /f\.stat_prefix: must not be empty/],
      [{ statPrefix: 's' }, /f\.cluster_specifier: one of cluster or weighted_clusters is required/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'cluster', value: '' } }, /f\.cluster: must not be empty/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'weightedClusters', value: { clusters: [] } } }, /weighted_clusters\.clusters: needs at least one/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 1 }, { name: 'b', weight: 0 }] } } }, /clusters\[1\]\.weight: must be at least 1/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' }, maxConnectAttempts: 0 }, /max_connect_attempts: must be at least 1/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' }, tunnelingConfig: { hostname: 'x:443' } }, /tunneling_config/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' }, metadataMatch: {} }, /metadata_match/],
      [{ statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' }, hashPolicy: [{ policySpecifier: { case: 'filterState', value: { key: 'k' } } }] }, /filterState hashing is not supported/],
    ];
    for (const [init, re] of bad) {
      assert.throws(
        () => compileTcpProxy(create(TcpProxySchema, init), ctx()),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
        re.source,
      );
    }
  });

  test('weighted clusters: each cluster gets exactly its share of a uniform sweep', () => {
    const weights = [{ name: 'a', weight: 1 }, { name: 'b', weight: 3 }, { name: 'c', weight: 6 }];
    const n = 1000;
    let i = 0;
    const sweep = () => (i++ % n) / n;
    const c = compileTcpProxy(create(TcpProxySchema, { statPrefix: 's', clusterSpecifier: { case: 'weightedClusters', value: { clusters: weights } } }), ctx({}, sweep));
    assert.equal(c.totalWeight, 10);
    const counts = new Map<string, number>();
    for (let k = 0; k < n; k++) {
      const name = c.pickCluster();
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
    assert.deepEqual(Object.fromEntries(counts), { a: 100, b: 300, c: 600 });
  });

  test('weighted clusters with Math.random: 20,000 picks within tolerance', () => {
    const c = compileTcpProxy(
      create(TcpProxySchema, { statPrefix: 's', clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 80 }, { name: 'b', weight: 20 }] } } }),
      ctx(),
    );
    let a = 0;
    for (let k = 0; k < 20_000; k++) if (c.pickCluster() === 'a') a++;
    // Binomial(20000, 0.8): sd ≈ 57; ±400 is 7 sd.
    assert.ok(a > 15_600 && a < 16_400, `a got ${a} of 20000`);
  });

  test('the listener accepts a tcp_proxy filter chain', () => {
    const l = compileListener(tcpListenerProto('tcp', { statPrefix: 's', clusterSpecifier: { case: 'cluster', value: 'a' } }), {
      rds: () => ({ current: undefined }),
      inlineRoutes: () => ({ current: undefined }),
      cluster: () => undefined,
      warn: () => undefined,
    });
    assert.equal(l.hcm, undefined);
    assert.deepEqual(l.rdsNames, []);
    assert.deepEqual(l.tcpProxy?.clusterNames, ['a']);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('tcp_proxy sessions over real sockets', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  after(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function proxyTo(tp: TcpInit, clusters: Record<string, ClusterRuntime>, random?: () => number): Promise<TestProxy> {
    const p = await new TestProxy(clusters, random).start({ ...tp, statPrefix: 'test' } as TcpInit);
    cleanups.push(() => p.close());
    return p;
  }

  async function echo(): Promise<number> {
    const e = await echoServer();
    cleanups.push(() => {
      for (const s of e.sockets) s.destroy();
      return new Promise<void>((r) => e.server.close(() => r()));
    });
    return e.port;
  }

  test('echo through the proxy; stats count bytes both ways', async () => {
    const port = await echo();
    const rt = cluster('echo', [port]);
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'echo' } }, { echo: rt });
    const payload = randomBytes(200_000);
    const r = await exchange(p.port, payload);
    assert.equal(sha(r.data), sha(payload));
    assert.ok(r.ended, 'the echo server ended after the client did');
    await until('session closed', () => p.stats.downstream_cx_tx_bytes_total === payload.length && rt.stats.upstream_cx_active === 0);
    assert.equal(p.stats.downstream_cx_total, 1);
    assert.equal(p.stats.downstream_cx_rx_bytes_total, payload.length);
    assert.equal(rt.stats.upstream_cx_total, 1);
    assert.equal(rt.stats.upstream_cx_tx_bytes_total, payload.length);
    assert.equal(rt.stats.upstream_cx_rx_bytes_total, payload.length);
    assert.equal(rt.circuitBreaker().connections, 0, 'the connection resource is released');
  });

  test('weighted clusters: connections are split by weight', async () => {
    const pa = await echo();
    const pb = await echo();
    const a = cluster('a', [pa]);
    const b = cluster('b', [pb]);
    let i = 0;
    const sweep = () => (i++ % 20) / 20;
    const p = await proxyTo({ clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 3 }, { name: 'b', weight: 1 }] } } }, { a, b }, sweep);
    for (let k = 0; k < 20; k++) assert.equal((await exchange(p.port, 'x')).data.toString(), 'x');
    assert.equal(a.stats.upstream_cx_total, 15);
    assert.equal(b.stats.upstream_cx_total, 5);
  });

  test('half-close: the client ends, the server still replies after reading everything, then closes', async () => {
    let serverSawEnd = false;
    const server = createServer({ allowHalfOpen: true }, (s) => {
      let n = 0;
      s.on('data', (d: Buffer) => (n += d.length));
      s.on('end', () => {
        serverSawEnd = true;
        // Reply well after the client's FIN arrived: the proxy must keep this direction open.
        setTimeout(() => s.end(`got ${n} bytes`), 50);
      });
    });
    const port = await listen(server);
    cleanups.push(closer(server));
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'hc' } }, { hc: cluster('hc', [port]) });
    const r = await exchange(p.port, Buffer.alloc(70_000, 1));
    assert.ok(serverSawEnd);
    assert.equal(r.data.toString(), 'got 70000 bytes');
    assert.ok(r.ended, 'the server FIN reached the client');
  });

  test('half-close the other way: the server ends first, the client keeps sending and is heard', async () => {
    let received = '';
    const gotAll = new Promise<void>((resolve) => {
      const server = createServer({ allowHalfOpen: true }, (s) => {
        s.end('banner\n');
        s.on('data', (d: Buffer) => (received += d.toString()));
        s.on('end', () => resolve());
      });
      void listen(server).then((port) => {
        cleanups.push(closer(server));
        serverPort = port;
        portReady();
      });
    });
    let serverPort = 0;
    let portReady!: () => void;
    await new Promise<void>((r) => (portReady = r));
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'srv' } }, { srv: cluster('srv', [serverPort]) });
    const c = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', () => undefined);
    let banner = '';
    const clientEnded = new Promise<void>((r) => c.on('end', r));
    c.on('data', (d: Buffer) => (banner += d.toString()));
    await clientEnded;
    assert.equal(banner, 'banner\n');
    assert.ok(c.writable, 'the client can still write after the server ended');
    c.write('after the server FIN');
    c.end();
    await gotAll;
    assert.equal(received, 'after the server FIN');
    await new Promise<void>((r) => (c.closed ? r() : c.on('close', () => r())));
  });

  test('backpressure: a slow upstream pauses the client, a slow client pauses the upstream; no byte lost', async () => {
    const size = 48 * 1024 * 1024;
    const payload = randomBytes(size);
    let serverSocket: Socket | undefined;
    const server = createServer({ allowHalfOpen: true }, (s) => {
      serverSocket = s;
      s.pause(); // reads nothing until the proxy had to pause the client
    });
    const port = await listen(server);
    cleanups.push(closer(server));
    const rt = cluster('slow', [port]);
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'slow' } }, { slow: rt });

    // Client → upstream.
    const c = connect({ port: p.port, host: '127.0.0.1', allowHalfOpen: true });
    c.on('error', () => undefined);
    c.end(payload);
    await until('downstream paused', () => p.stats.downstream_flow_control_paused_reading_total > 0);
    assert.ok(p.stats.downstream_cx_rx_bytes_total < size, 'the proxy stopped reading before the whole payload');
    const up = serverSocket!;
    const got: Buffer[] = [];
    up.on('data', (d: Buffer) => got.push(d));
    const upEnded = new Promise<void>((r) => up.on('end', r));
    up.resume();
    await upEnded;
    assert.equal(sha(Buffer.concat(got)), sha(payload));
    assert.ok(p.stats.downstream_flow_control_resumed_reading_total > 0);

    // Upstream → client, the client not reading.
    c.pause();
    up.end(payload);
    await until('upstream paused', () => rt.stats.get('upstream_flow_control_paused_reading_total') > 0);
    const back: Buffer[] = [];
    c.on('data', (d: Buffer) => back.push(d));
    const cEnded = new Promise<void>((r) => c.on('end', r));
    c.resume();
    await cEnded;
    assert.equal(sha(Buffer.concat(back)), sha(payload));
    assert.ok(rt.stats.get('upstream_flow_control_resumed_reading_total') > 0);
  });

  test('flush: the client is gone with bytes still buffered for the upstream; they are delivered, then FIN', async () => {
    // The proxy notices a reset client when it writes to it (reading is paused by backpressure, and a half-close
    // aware proxy does not watch for early close then, as Envoy's): the upstream sends one byte after the reset.
    let serverSocket: Socket | undefined;
    const server = createServer({ allowHalfOpen: true }, (s) => {
      serverSocket = s;
      s.on('error', () => undefined);
      s.pause();
    });
    const port = await listen(server);
    cleanups.push(closer(server));
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'fl' } }, { fl: cluster('fl', [port]) });
    const c = connect({ port: p.port, host: '127.0.0.1' });
    c.on('error', () => undefined);
    c.write(randomBytes(16 * 1024 * 1024));
    await until('downstream paused', () => p.stats.downstream_flow_control_paused_reading_total > 0);
    c.resetAndDestroy();
    await new Promise((r) => setTimeout(r, 20));
    const up = serverSocket!;
    up.write('x');
    await until('flush started', () => p.stats.upstream_flush_total === 1);
    assert.equal(p.stats.upstream_flush_active, 1);
    let n = 0;
    up.on('data', (d: Buffer) => (n += d.length));
    const ended = new Promise<void>((r) => up.on('end', r));
    up.resume();
    await ended;
    assert.equal(n, p.stats.downstream_cx_rx_bytes_total, 'every byte the proxy read from the client reached the upstream');
    await until('flush done', () => p.stats.upstream_flush_active === 0);
  });

  test('idle_timeout closes an idle connection (both sides)', async () => {
    let upstreamClosed = false;
    const server = createServer((s) => {
      s.on('data', (d: Buffer) => s.write(d));
      s.on('close', () => (upstreamClosed = true));
    });
    const port = await listen(server);
    cleanups.push(closer(server));
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'idle' }, idleTimeout: { nanos: 200_000_000 } }, { idle: cluster('idle', [port]) });
    const r = await exchange(p.port, 'ping', false);
    assert.equal(r.data.toString(), 'ping', 'traffic flowed before the idle timeout');
    assert.equal(p.stats.idle_timeout, 1);
    await until('upstream closed', () => upstreamClosed);
  });

  test('max_downstream_connection_duration closes a busy connection', async () => {
    const port = await echo();
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'md' }, maxDownstreamConnectionDuration: { nanos: 300_000_000 } }, { md: cluster('md', [port]) });
    const c = connect({ port: p.port, host: '127.0.0.1' });
    c.on('error', () => undefined);
    const timer = setInterval(() => c.write('tick'), 20);
    await new Promise<void>((r) => c.on('close', () => r()));
    clearInterval(timer);
    assert.equal(p.stats.max_downstream_connection_duration, 1);
    assert.equal(p.stats.idle_timeout, 0);
  });

  test('no endpoints: the connection is closed (UH, upstream_cx_none_healthy)', async () => {
    const rt = cluster('empty', []);
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'empty' } }, { empty: rt });
    const sessions = p.sessions;
    const r = await exchange(p.port, 'hello', false);
    assert.equal(r.data.length, 0);
    assert.equal(rt.stats.upstream_cx_none_healthy, 1);
    await until('session recorded', () => sessions.length === 1);
    assert.equal(sessions[0]!.flags, 'UH');
  });

  test('unknown cluster: the connection is closed (NC, downstream_cx_no_route)', async () => {
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'missing' } }, {});
    const r = await exchange(p.port, 'hello', false);
    assert.equal(r.data.length, 0);
    assert.equal(p.stats.downstream_cx_no_route, 1);
  });

  test('circuit breaker max_connections: the overflowing connection is closed (UO)', async () => {
    const port = await echo();
    const rt = cluster('cb', [port], { circuitBreakers: { thresholds: [{ maxConnections: 1 }] } });
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'cb' } }, { cb: rt });
    const sessions = p.sessions;
    const first = connect({ port: p.port, host: '127.0.0.1' });
    first.on('error', () => undefined);
    first.write('one');
    await new Promise<void>((r) => first.once('data', () => r()));
    const second = await exchange(p.port, 'two', false);
    assert.equal(second.data.length, 0);
    assert.equal(rt.stats.upstream_cx_overflow, 1);
    await until('overflow session recorded', () => sessions.some((s) => s.flags === 'UO'));
    first.destroy();
    await until('released', () => rt.circuitBreaker().connections === 0);
    assert.equal((await exchange(p.port, 'three')).data.toString(), 'three', 'a connection is possible again');
  });

  test('connect failure: another host is tried up to max_connect_attempts; outlier detection hears of it', async () => {
    const live = await echo();
    const dead = await deadPort();
    const rt = cluster('mixed', [dead, live]);
    const results: Array<[string, OutlierResult, number | undefined]> = [];
    for (const h of rt.hosts()) {
      const spy: HostOutlier = { putResult: (k, s) => results.push([h.key, k, s]), numEjections: 0, successRate: -1, localOriginSuccessRate: -1 };
      h.outlier = spy;
    }
    const p = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'mixed' }, maxConnectAttempts: 2 }, { mixed: rt });
    const sessions = p.sessions;
    for (let k = 0; k < 4; k++) assert.equal((await exchange(p.port, `m${k}`)).data.toString(), `m${k}`);
    await until('sessions recorded', () => sessions.length === 4);
    const deadKey = `127.0.0.1:${dead}`;
    const liveKey = `127.0.0.1:${live}`;
    const failed = results.filter(([key]) => key === deadKey);
    assert.ok(failed.length >= 1, 'round robin started some connections on the dead host');
    assert.ok(failed.every(([, k, s]) => k === 'local-origin-failure' && s === 503));
    assert.equal(results.filter(([key, k, s]) => key === liveKey && k === 'local-origin-success' && s === 200).length, 4);
    assert.equal(rt.stats.upstream_cx_connect_fail, failed.length);
    assert.equal(sessions.filter((s) => s.flags === 'UF').length, failed.length, 'a retried connection still carries UF');
    assert.ok(sessions.every((s) => s.attempts === (s.flags === 'UF' ? 2 : 1)));

    // Every host dead and one attempt: UF then URX, the connection is closed.
    const rtDead = cluster('dead', [dead]);
    const p2 = await proxyTo({ clusterSpecifier: { case: 'cluster', value: 'dead' } }, { dead: rtDead });
    const s2 = p2.sessions;
    const r = await exchange(p2.port, 'x', false);
    assert.equal(r.data.length, 0);
    await until('session recorded', () => s2.length === 1);
    assert.equal(s2[0]!.flags, 'UF,URX');
    assert.equal(rtDead.stats.get('upstream_cx_connect_attempts_exceeded'), 1);
  });
});
