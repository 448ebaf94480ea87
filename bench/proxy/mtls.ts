/**
 * The proxy benchmark's two-hop mTLS case (issue #5): a client `weft proxy` → a server `weft proxy` over automatic
 * mutual TLS (workload certificates from Weft's CA library in `--cert-dir` files, auto mTLS from the endpoint's
 * `tlsMode: istio`), at a fixed rate (default 1,000 rps) of HTTP/1.1 GETs with a 1 KB response body over 10
 * keep-alive connections, against the same GETs sent to the upstream directly. Reported: p50/p99 and what the two
 * hops add, CPU per 1,000 rps of each proxy, and the TLS handshakes per second the server sidecar completed — full
 * and resumed (session tickets) — while the client sidecar recycles its upstream connection every 100 requests
 * (DestinationRule maxRequestsPerConnection), so handshakes happen all along. Each measured run follows a warm-up at
 * the same rate (WARMUP_REQUESTS).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRootCa } from '../../src/controlplane/ca/index.js';
import type { LoadResult } from './loadgen.js';
import { freePort, treeUsage } from './procs.js';
import type { Proc } from './procs.js';

export interface MtlsResult {
  rps: number;
  /** Seconds of load at `rps` before each measured run (direct, then the two hops). */
  warmupSeconds: number;
  direct: LoadResult;
  twoHop: LoadResult;
  /** vCPU seconds per 1,000 requests (= vCPU per 1,000 rps) of each sidecar. */
  clientCpuPer1k: number;
  serverCpuPer1k: number;
  /** Server sidecar handshakes per second during the run: all, and those that resumed a session. */
  handshakesPerSecond: number;
  resumedPerSecond: number;
}

/** What the harness (run.ts) lends this case. */
export interface MtlsHarness {
  workDir: string;
  configDir: string;
  upstreamPort: number;
  seconds: number;
  /** --warmup: seconds of load before each measured run (the case warms up for at least WARMUP_REQUESTS). */
  warmupSeconds: number;
  rps: number;
  startProxy(id: string, extra: string[]): Promise<{ proc: Proc; outbound: number; admin: number }>;
  load(args: string[]): Promise<LoadResult>;
  httpGet(port: number, path: string, host: string): Promise<{ status: number; body: string }>;
  progress(line: string): void;
}

const HOST = 'bench-mtls:8080';

/**
 * Requests sent before each measured run, at the case's rate: V8 compiles a fresh proxy's request path over its first
 * few thousand requests, and at 1,000 rps that takes seconds (CPU per 1,000 rps of each sidecar, measured in 2 s
 * slices from start: 0.39, 0.23, 0.16, 0.15, ...), where the throughput cases warm up with tens of thousands of
 * requests in their one warm-up second.
 */
const WARMUP_REQUESTS = 5000;

async function sslCounters(h: MtlsHarness, admin: number): Promise<{ handshake: number; reused: number }> {
  const text = (await h.httpGet(admin, '/stats', 'localhost')).body;
  const sum = (name: string) => [...text.matchAll(new RegExp(`^listener\\.[^\\n]*\\.ssl\\.${name}: (\\d+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
  return { handshake: sum('handshake'), reused: sum('session_reused') };
}

export async function runMtlsTwoHop(h: MtlsHarness): Promise<MtlsResult> {
  const ca = await createRootCa({ trustDomain: 'cluster.local' });
  const identity = async (sa: string) => {
    const dir = join(h.workDir, `certs-${sa}`);
    mkdirSync(dir, { recursive: true });
    const c = await ca.issueWithKey({ identity: { namespace: 'default', serviceAccount: sa } });
    writeFileSync(join(dir, 'cert-chain.pem'), c.certChainPem);
    writeFileSync(join(dir, 'key.pem'), c.keyPem, { mode: 0o600 });
    writeFileSync(join(dir, 'root-cert.pem'), ca.rootPem);
    return dir;
  };
  const inbound = await freePort();
  writeFileSync(
    join(h.configDir, 'mtls.yaml'),
    [
      'apiVersion: v1\nkind: Service\nmetadata: {name: bench-mtls, namespace: default}\nspec:\n  selector: {app: bench-server}\n  ports: [{name: http, port: 8080}]\n',
      `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: bench-server-1, namespace: default}\nspec: {address: 127.0.0.1, serviceAccount: bench-server, labels: {app: bench-server, security.istio.io/tlsMode: istio}, ports: {http: ${inbound}}}\n`,
      'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: bench-mtls, namespace: default}\nspec:\n  host: bench-mtls\n  trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 100}}}\n',
    ].join('---\n'),
  );
  const server = await h.startProxy('bench-mtls-server', ['--service-account', 'bench-server', '--labels', 'app=bench-server', '--workload-port', `${inbound}:${h.upstreamPort}/http`, '--cert-dir', await identity('bench-server')]);
  const client = await h.startProxy('bench-mtls-client', ['--service-account', 'bench-client', '--cert-dir', await identity('bench-client')]);
  for (let i = 0; ; i++) {
    const r = await h.httpGet(client.outbound, '/1k', HOST).catch(() => ({ status: 0, body: '' }));
    if (r.status === 200 && r.body.length === 1024) break;
    if (i > 100) throw new Error(`two-hop mTLS: GET /1k through the sidecars answered ${r.status}`);
    await new Promise((res) => setTimeout(res, 100));
  }
  if ((await sslCounters(h, server.admin)).handshake === 0) throw new Error('two-hop mTLS: the server sidecar completed no TLS handshake');
  const args = (port: number, host: string, seconds: number) => ['http-rate', `127.0.0.1:${port}`, host, '/1k', String(h.rps), '10', String(seconds)];
  const warmup = Math.ceil(Math.max(h.warmupSeconds, WARMUP_REQUESTS / h.rps));
  h.progress(`fixed ${h.rps} rps, 1 KB → direct`);
  await h.load(args(h.upstreamPort, HOST, warmup));
  const direct = await h.load(args(h.upstreamPort, HOST, h.seconds));
  h.progress(`fixed ${h.rps} rps, 1 KB → weft → weft (mTLS), ${warmup} s warm-up`);
  await h.load(args(client.outbound, HOST, warmup));
  const c0 = treeUsage(client.proc.pid);
  const s0 = treeUsage(server.proc.pid);
  const t0 = await sslCounters(h, server.admin);
  const started = Date.now();
  const twoHop = await h.load(args(client.outbound, HOST, h.seconds));
  const elapsed = (Date.now() - started) / 1000;
  const c1 = treeUsage(client.proc.pid);
  const s1 = treeUsage(server.proc.pid);
  const t1 = await sslCounters(h, server.admin);
  const per1k = (a: typeof c0, b: typeof c0) => (a && b && twoHop.requests > 0 ? ((b.cpuSeconds - a.cpuSeconds) / twoHop.requests) * 1000 : NaN);
  return {
    rps: h.rps,
    warmupSeconds: warmup,
    direct,
    twoHop,
    clientCpuPer1k: per1k(c0, c1),
    serverCpuPer1k: per1k(s0, s1),
    handshakesPerSecond: (t1.handshake - t0.handshake) / elapsed,
    resumedPerSecond: (t1.reused - t0.reused) / elapsed,
  };
}
