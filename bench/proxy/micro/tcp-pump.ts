/**
 * Micro-benchmark of the TCP proxy (not a test): a TcpProxySession between a client and an echo server, all on
 * 127.0.0.1 in this process, against the same traffic sent directly. Prints
 * - bulk throughput (MB/s) of a 256 MiB transfer each way, and
 * - connections per second for short conversations (connect, 64 bytes echoed, half-close, close), 50 at a time,
 * plus `tcp_proxy.pickCluster` ops/s for a 3-way weighted split.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/proxy/micro/tcp-pump.js [--seconds 2]
 */
import { create } from '@bufbuild/protobuf';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { TcpProxySchema } from '../../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { ClusterLoadAssignmentSchema } from '../../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ClusterSchema, Cluster_DiscoveryType } from '../../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { compileCluster } from '../../../src/proxy/upstream/cluster/index.js';
import { compileTcpProxy, TcpProxySession } from '../../../src/proxy/tcp/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 2;

async function listen(s: Server): Promise<number> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return (s.address() as AddressInfo).port;
}

async function bulk(port: number, bytes: number): Promise<number> {
  const chunk = Buffer.alloc(64 * 1024, 7);
  const start = process.hrtime.bigint();
  await new Promise<void>((resolve) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let sent = 0;
    let got = 0;
    const pump = () => {
      while (sent < bytes) {
        sent += chunk.length;
        if (!c.write(chunk)) return;
      }
      c.end();
    };
    c.on('drain', pump);
    c.on('data', (d: Buffer) => (got += d.length));
    c.on('end', () => {
      if (got < bytes) throw new Error(`short echo: ${got}`);
      c.end();
      resolve();
    });
    pump();
  });
  const secs = Number(process.hrtime.bigint() - start) / 1e9;
  return bytes / 1024 / 1024 / secs;
}

async function conversations(port: number, seconds: number): Promise<number> {
  const msg = Buffer.alloc(64, 1);
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const one = (): Promise<void> =>
    new Promise((resolve) => {
      const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
      c.on('data', () => undefined);
      c.on('end', () => c.end());
      c.on('close', () => {
        done++;
        resolve();
      });
      c.end(msg);
    });
  const worker = async () => {
    while (Date.now() < deadline) await one();
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  return done / seconds;
}

async function main(): Promise<void> {
  const echo = createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  const echoPort = await listen(echo);
  const rt = compileCluster(create(ClusterSchema, { name: 'echo', clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS }, connectTimeout: { seconds: 1n } }));
  rt.updateHosts(
    create(ClusterLoadAssignmentSchema, {
      clusterName: 'echo',
      endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: echoPort } } } } } } }] }],
    }),
  );
  const cfg = compileTcpProxy(create(TcpProxySchema, { statPrefix: 'bench', clusterSpecifier: { case: 'cluster', value: 'echo' } }), {
    listener: 'bench',
    field: 'tcp_proxy',
    cluster: () => rt,
    warn: () => undefined,
  });
  const proxy = createServer({ noDelay: true }, (s) => new TcpProxySession(s, cfg).start());
  const proxyPort = await listen(proxy);

  const size = 256 * 1024 * 1024;
  console.log(`bulk 256 MiB echo, direct:      ${(await bulk(echoPort, size)).toFixed(0)} MB/s`);
  console.log(`bulk 256 MiB echo, via session: ${(await bulk(proxyPort, size)).toFixed(0)} MB/s`);
  console.log(`short conversations, direct:      ${(await conversations(echoPort, SECONDS)).toFixed(0)} conn/s`);
  console.log(`short conversations, via session: ${(await conversations(proxyPort, SECONDS)).toFixed(0)} conn/s`);

  const weighted = compileTcpProxy(
    create(TcpProxySchema, { statPrefix: 'w', clusterSpecifier: { case: 'weightedClusters', value: { clusters: [{ name: 'a', weight: 10 }, { name: 'b', weight: 30 }, { name: 'c', weight: 60 }] } } }),
    { listener: 'w', field: 'tcp_proxy', cluster: () => undefined, warn: () => undefined },
  );
  let n = 0;
  let sink = 0;
  const t0 = process.hrtime.bigint();
  const end = t0 + BigInt(SECONDS * 1e9);
  while (process.hrtime.bigint() < end) {
    for (let i = 0; i < 10_000; i++) sink += weighted.pickCluster().length;
    n += 10_000;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(`pickCluster (3 weighted clusters): ${(n / secs / 1e6).toFixed(1)} M ops/s (${sink > 0 ? 'ok' : ''})`);

  proxy.close();
  echo.close();
  rt.close();
}

void main();
