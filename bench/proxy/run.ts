/**
 * The proxy benchmark's run (see docs/performance.md, "Proxy"): starts the upstreams (nginx serving a 2-byte and a
 * 1 KB body over HTTP/1.1 and h2c; a Node TCP echo server), the proxies under test (nginx `proxy_pass` with
 * upstream keep-alive and `stream`, 1 worker; HAProxy, 1 thread; `weft proxy` started as in production with
 * `bin/weft.js proxy`, driven by a real `weft control-plane` holding a Service + VirtualService for the upstream),
 * and measures every workload against every target with the same load generator. Used by ./main.ts and, in a tiny
 * mode, by test/bench/proxy-smoke.test.ts.
 *
 * CPU placement: with 2+ CPUs the proxy under test runs on CPU 1 and everything else (load generators, upstreams,
 * the control plane) on CPU 0 (`taskset -c`), so "one core" means one core for the proxy.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LoadResult } from './loadgen.js';
import { runMtlsTwoHop, type MtlsResult } from './mtls.js';
import { freePort, pinTree, runToEnd, sleep, startProcess, stopProcess, treeUsage, waitPort } from './procs.js';
import type { Proc } from './procs.js';

const WEFT_BIN = fileURLToPath(new URL('../../../bin/weft.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./loadgen.js', import.meta.url));
const NGINX_STREAM_MODULE = '/usr/lib/nginx/modules/ngx_stream_module.so';

export type TargetName = 'direct' | 'nginx' | 'haproxy' | 'weft';
export const ALL_TARGETS: TargetName[] = ['direct', 'nginx', 'haproxy', 'weft'];
export type WorkloadName = 'h1-2b' | 'h1-1k' | 'h2' | 'tcp';
/** The target name of `weft proxy --metrics=false` (BenchOptions.weftMetricsOff). */
export const METRICS_OFF_TARGET = 'weft, metrics off';
export const ALL_WORKLOADS: WorkloadName[] = ['h1-2b', 'h1-1k', 'h2', 'tcp'];

export const WORKLOAD_TITLES: Record<WorkloadName, string> = {
  'h1-2b': 'HTTP/1.1 keep-alive, 50 connections, 2-byte body (wrk)',
  'h1-1k': 'HTTP/1.1 keep-alive, 50 connections, 1 KB body (wrk)',
  h2: 'HTTP/2 h2c, 5 connections × 10 streams, 2-byte body (h2load)',
  tcp: 'TCP echo, 50 connections, 64-byte ping-pong',
};

/** Weft is measured once per concurrency given (`weft` for 1, `weft ×N` for N workers). */
export interface BenchOptions {
  workDir: string;
  /** Seconds measured per case. */
  seconds: number;
  /** Seconds of unmeasured warm-up per case. */
  warmupSeconds: number;
  targets: TargetName[];
  workloads: WorkloadName[];
  /** `weft proxy --concurrency` values to measure (1 = the default single process). */
  weftConcurrency: number[];
  /**
   * Also measure a single `weft proxy --metrics=false` (target `weft, metrics off`), so the cost of Istio's standard
   * metrics and the metadata exchange shows against the `weft` row of the same run.
   */
  weftMetricsOff?: boolean;
  /** Rate of the added-latency measurement (0 skips it). */
  fixedRps: number;
  /**
   * Rounds of the added-latency measurement (default 1): every target is measured once per round, in turn, so a burst
   * of unrelated work on the machine lands in one round of one target rather than in a whole figure; the reported
   * figures are the medians over the rounds.
   */
  fixedRounds?: number;
  /** Seconds measured per target and round at the fixed rate (default: `seconds`). */
  fixedSeconds?: number;
  /**
   * Where the added-latency measurement runs (default: both when pinned, else `shared`): `pinned` as the throughput
   * cases (proxy on CPU 1, load generator and upstream on CPU 0), `shared` with every process of the case allowed on
   * every CPU (`taskset -a -p`), so the kernel may run the chain client → proxy → upstream on one CPU.
   */
  fixedPlacements?: Placement[];
  /** Rate of the two-hop mTLS case (./mtls.ts; needs the weft target; 0 or absent skips it). */
  mtlsRps?: number;
  /** Services for the idle-RSS measurement (0 skips it). */
  idleServices: number;
  progress: (line: string) => void;
  /** Pin the proxy under test and the load to separate CPUs with taskset (default: when there are 2 or more). */
  pin?: boolean;
}

/** CPU placement of the fixed-rate case (BenchOptions.fixedPlacements). */
export type Placement = 'pinned' | 'shared';
export const ALL_PLACEMENTS: Placement[] = ['pinned', 'shared'];

export interface CaseResult {
  workload: WorkloadName | 'fixed-rate';
  target: string;
  /** Fixed-rate case: the CPU placement it ran with. */
  placement?: Placement;
  /** Fixed-rate case: p99 of each round, and (not for direct) p99 minus direct's p99 of the same round. */
  roundP99Us?: number[];
  roundAddedP99Us?: number[];
  /** Fixed-rate case: the median of roundAddedP99Us (not for direct). */
  addedP99Us?: number;
  p90Us?: number;
  p999Us?: number;
  maxUs?: number;
  /** Why there is no measurement (e.g. not supported). */
  skipped?: string;
  requests?: number;
  errors?: number;
  rps?: number;
  p50Us?: number;
  p99Us?: number;
  /** Proxy CPU seconds per 1,000 requests (= vCPU per 1,000 rps); absent for direct. */
  cpuPer1k?: number;
  /** Proxy peak RSS (VmHWM, summed over its processes); absent for direct. */
  peakRssBytes?: number;
}

export interface IdleResult {
  services: number;
  clusters: number;
  rssBytes: number;
  peakRssBytes: number;
  /** Bytes of the one full `/stats/prometheus` scrape. */
  fullScrapeBytes: number;
  /** The proxy's CPU seconds for that scrape. */
  fullScrapeCpuSeconds: number;
  /** The control plane's telemetry scrapes of this proxy seen answered (its window open), and scrape errors. */
  telemetryOpen: boolean;
  telemetryErrors: string[];
  /** The proxy's CPU seconds per second during the settle time (the telemetry scraping it every 2 s). */
  settleCpuShare: number;
  settleSeconds: number;
}

export interface BenchResult {
  cases: CaseResult[];
  /** The two-hop mTLS case (client sidecar → server sidecar). */
  mtls?: MtlsResult;
  idle?: IdleResult;
  pinned: boolean;
}

/** One proxy (or the upstream itself) with the ports the workloads use. */
interface Target {
  name: string;
  /** The process whose tree is measured (undefined for direct). */
  proc?: Proc;
  h1Port: number;
  h2Port?: number;
  tcpPort?: number;
  /** The CPUs it is pinned to when not the proxy CPU (`weft ×N`). */
  cpus?: string | undefined;
  /** Why h2 / tcp cannot be measured on this target. */
  h2Skip?: string;
  tcpSkip?: string;
}

const HOST = 'bench:8080';

// ---------------------------------------------------------------------------------------------------------------
// Configs

function nginxUpstreamConf(dir: string, h1: number, h2: number): string {
  return `worker_processes 1;
pid ${dir}/upstream.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${h1};
    listen 127.0.0.1:${h2} http2;
    root ${dir}/www;
  }
}
`;
}

function nginxProxyConf(dir: string, up: number, h1: number, h2: number, tcp: number | undefined, echo: number): string {
  const stream = tcp === undefined ? '' : `stream {\n  server {\n    listen 127.0.0.1:${tcp};\n    proxy_pass 127.0.0.1:${echo};\n  }\n}\n`;
  return `${tcp === undefined ? '' : `load_module ${NGINX_STREAM_MODULE};\n`}worker_processes 1;
pid ${dir}/proxy.pid;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  upstream up {
    server 127.0.0.1:${up};
    keepalive 64;
    keepalive_requests 100000000;
  }
  server {
    listen 127.0.0.1:${h1};
    listen 127.0.0.1:${h2} http2;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
${stream}`;
}

function haproxyConf(up: number, h1: number, h2: number, tcp: number, echo: number): string {
  return `global
  nbthread 1
  maxconn 4096
defaults
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend http
  mode http
  bind 127.0.0.1:${h1}
  bind 127.0.0.1:${h2} proto h2
  default_backend up
backend up
  mode http
  http-reuse always
  server s1 127.0.0.1:${up}
frontend tcp
  mode tcp
  bind 127.0.0.1:${tcp}
  default_backend echo
backend echo
  mode tcp
  server e1 127.0.0.1:${echo}
`;
}

/** The bench mesh: the HTTP upstream as Service `bench` with a VirtualService route, the echo server as `echo`. */
function benchMesh(upPort: number, echoPort: number): string {
  return [
    'apiVersion: v1\nkind: Service\nmetadata: {name: bench, namespace: default}\nspec:\n  selector: {app: bench}\n  ports: [{name: http, port: 8080}]\n',
    `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: bench-1, namespace: default}\nspec: {address: 127.0.0.1, labels: {app: bench}, ports: {http: ${upPort}}}\n`,
    'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: bench, namespace: default}\nspec:\n  hosts: [bench]\n  http:\n  - match: [{uri: {prefix: /}}]\n    route: [{destination: {host: bench, port: {number: 8080}}}]\n',
    'apiVersion: v1\nkind: Service\nmetadata: {name: echo, namespace: default}\nspec:\n  selector: {app: echo}\n  ports: [{name: tcp-echo, port: 9000}]\n',
    `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: echo-1, namespace: default}\nspec: {address: 127.0.0.1, labels: {app: echo}, ports: {tcp-echo: ${echoPort}}}\n`,
  ].join('---\n');
}

/** `n` services, each with a workload entry and a VirtualService route (the idle-RSS mesh). */
export function idleMesh(n: number): string {
  const docs: string[] = [];
  for (let i = 0; i < n; i++) {
    const name = `svc-${i}`;
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec:\n  selector: {app: ${name}}\n  ports: [{name: http, port: 8080}]\n`,
      `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ${name}-1, namespace: default}\nspec: {address: 127.0.${(i >> 8) & 255}.${(i & 255) || 1}, labels: {app: ${name}}, ports: {http: 8080}}\n`,
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n  hosts: [${name}]\n  http:\n  - match: [{uri: {prefix: /api}}]\n    route: [{destination: {host: ${name}}}]\n    timeout: 5s\n  - route: [{destination: {host: ${name}}}]\n`,
    );
  }
  return docs.join('---\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Starting things

/** taskset CPU lists (undefined: not pinned). */
interface Cpus {
  load: string | undefined;
  proxy: string | undefined;
}

/**
 * Where `weft proxy --concurrency n` runs: CPU 1 for one process; CPUs 1..n for n workers when the machine has more
 * than n CPUs; every CPU otherwise (then the proxy shares CPU 0 with the load generator — the report says so).
 */
export function weftCpus(n: number, cpus: Cpus, available: number): string | undefined {
  if (cpus.proxy === undefined || n <= 1) return cpus.proxy;
  return n < available ? `1-${n}` : undefined;
}

async function startNginx(name: string, dir: string, conf: string, file: string, port: number, cpu: string | undefined): Promise<Proc> {
  const path = join(dir, file);
  writeFileSync(path, conf);
  const p = startProcess(name, 'nginx', ['-p', dir, '-c', path, '-e', join(dir, `${file}.error.log`), '-g', 'daemon off;'], { cpu });
  await waitPort(port, p);
  return p;
}

/** `weft control-plane` on `configDir`; resolves with its ADS address and its HTTP port. */
async function startControlPlane(configDir: string, cpu: string | undefined): Promise<{ proc: Proc; xds: string; httpPort: number }> {
  const p = startProcess('weft control-plane', process.execPath, [WEFT_BIN, 'control-plane', '--config', configDir, '--xds-port', '0', '--http-port', '0'], { cpu });
  for (let i = 0; i < 600; i++) {
    const m = /xDS \(ADS over plaintext gRPC\): (\S+)/.exec(p.stdout);
    const h = /HTTP: http:\/\/[^\s]*:(\d+)/.exec(p.stdout);
    if (m && h) return { proc: p, xds: m[1]!, httpPort: Number(h[1]) };
    if (p.child.exitCode !== null) break;
    await sleep(50);
  }
  await stopProcess(p);
  throw new Error(`weft control-plane did not start:\n${p.stdout}\n${p.stderr}`);
}

interface WeftProxy {
  proc: Proc;
  outbound: number;
  tcp: number;
  admin: number;
}

/**
 * `weft proxy` as in production (`bin/weft.js proxy`), explicit mode; waits for /healthz/ready. `statsPort` 0 (the
 * default) gives the proxy any free stats port and announces none, so the control plane does not scrape it.
 */
async function startWeftProxy(xds: string, id: string, cpu: string | undefined, concurrency: number, withEcho: boolean, extra: string[] = [], statsPort = 0): Promise<WeftProxy> {
  const [outbound, tcp, health, admin] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const args = [WEFT_BIN, 'proxy', '--xds', xds, '--id', id, '--namespace', 'default', '--labels', 'app=bench-client', ...extra];
  args.push('--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(admin), '--stats-port', String(statsPort), '--log-level', 'warn');
  if (withEcho) args.push('--upstream', `echo:9000=${tcp}`);
  if (concurrency > 1) args.push('--concurrency', String(concurrency));
  const metrics = !extra.includes('--metrics=false');
  const p = startProcess(concurrency > 1 ? `weft proxy ×${concurrency}` : metrics ? 'weft proxy' : 'weft proxy --metrics=false', process.execPath, args, { cpu });
  for (let i = 0; i < 600; i++) {
    if (p.child.exitCode !== null) break;
    const ok = await httpGet(health, '/healthz/ready', 'localhost').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return { proc: p, outbound, tcp, admin };
    await sleep(100);
  }
  await stopProcess(p);
  throw new Error(`weft proxy not ready:\n${p.stdout}\n${p.stderr.split('\n').slice(-20).join('\n')}`);
}

function httpGet(port: number, path: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: false, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Whether the server on `port` answers an HTTP/2 connection preface (h2c prior knowledge) with a SETTINGS frame. */
export function speaksH2c(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const done = (v: boolean) => {
      s.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(false), 3000);
    s.on('connect', () => {
      // Preface, then an empty SETTINGS frame (length 0, type 4, flags 0, stream 0).
      s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]));
    });
    s.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 9) {
        clearTimeout(t);
        done(buf[3] === 4 && buf.readUInt32BE(5) === 0);
      }
    });
    s.on('error', () => {
      clearTimeout(t);
      done(false);
    });
    s.on('close', () => {
      clearTimeout(t);
      done(false);
    });
  });
}

async function checkServes(t: Target): Promise<void> {
  for (const path of ['/2b', '/1k']) {
    const r = await httpGet(t.h1Port, path, HOST).catch((e: Error) => ({ status: 0, body: e.message }));
    const want = path === '/2b' ? 2 : 1024;
    if (r.status !== 200 || r.body.length !== want) throw new Error(`${t.name}: GET ${path} answered ${r.status} with ${r.body.length} bytes (${r.body.slice(0, 200)})`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Load generators

/** wrk's duration strings: 842.00us, 1.01ms, 2.00s, 1.2m. */
function wrkDurationUs(s: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(s.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v : m[2] === 'ms' ? v * 1e3 : m[2] === 's' ? v * 1e6 : v * 60e6;
}

/** Parses `wrk --latency` output. */
export function parseWrk(out: string): LoadResult {
  const requests = Number(/(\d+) requests in ([\d.]+)(m?s)/.exec(out)?.[1]);
  const secondsM = /\d+ requests in ([\d.]+)(ms|s|m)/.exec(out);
  const seconds = secondsM ? Number(secondsM[1]) * (secondsM[2] === 'ms' ? 1e-3 : secondsM[2] === 'm' ? 60 : 1) : NaN;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const sockErrors = sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0;
  return {
    requests,
    errors: non2xx + sockErrors,
    seconds,
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]),
    p50Us: wrkDurationUs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? ''),
    p99Us: wrkDurationUs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? ''),
  };
}

/** Parses h2load's summary and its --log-file (start µs, status, duration µs per request). */
export function parseH2load(out: string, log: string): LoadResult {
  const fin = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(out);
  const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  const durations: number[] = [];
  for (const line of log.split('\n')) {
    const f = line.split('\t');
    if (f.length >= 3 && f[1] !== '-1') durations.push(Number(f[2]));
  }
  durations.sort((a, b) => a - b);
  const pct = (p: number) => (durations.length ? durations[Math.min(durations.length - 1, Math.ceil((p / 100) * durations.length) - 1)]! : NaN);
  const seconds = fin ? Number(fin[1]) * (fin[2] === 'ms' ? 1e-3 : 1) : NaN;
  return {
    requests: req ? Number(req[4]) : NaN,
    errors: req ? Number(req[5]) + Number(req[6]) : NaN,
    seconds,
    rps: fin ? Number(fin[3]) : NaN,
    p50Us: pct(50),
    p99Us: pct(99),
  };
}

async function wrk(port: number, path: string, seconds: number, cpu: string | undefined): Promise<LoadResult> {
  const p = await runToEnd('wrk', 'wrk', ['-t1', '-c50', `-d${Math.max(1, Math.round(seconds))}s`, '--latency', '-H', `Host: ${HOST}`, `http://127.0.0.1:${port}${path}`], { cpu });
  return parseWrk(p.stdout);
}

async function h2load(port: number, seconds: number, cpu: string | undefined, logFile: string): Promise<LoadResult> {
  const p = await runToEnd('h2load', 'h2load', ['-c5', '-m10', '-t1', '-D', String(seconds), `--connect-to=127.0.0.1:${port}`, `--log-file=${logFile}`, `http://${HOST}/2b`], { cpu });
  return parseH2load(p.stdout, readFileSync(logFile, 'utf8'));
}

async function loadgen(args: string[], cpu: string | undefined): Promise<LoadResult> {
  const p = await runToEnd('loadgen', process.execPath, [LOADGEN, ...args], { cpu });
  return JSON.parse(p.stdout.trim().split('\n').pop()!) as LoadResult;
}

// ---------------------------------------------------------------------------------------------------------------
// The run

/** Everything started, for stopping in reverse order. */
class Started {
  readonly procs: Proc[] = [];
  add(p: Proc): Proc {
    this.procs.push(p);
    return p;
  }
  async stopAll(): Promise<void> {
    for (const p of this.procs.splice(0).reverse()) await stopProcess(p);
  }
}

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const pinned = (o.pin ?? true) && availableParallelism() >= 2;
  const cpus: Cpus = pinned ? { load: '0', proxy: '1' } : { load: undefined, proxy: undefined };
  const started = new Started();
  const cases: CaseResult[] = [];
  chmodSync(o.workDir, 0o755); // nginx workers run as an unprivileged user when started by root
  const www = join(o.workDir, 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, '2b'), 'ok');
  writeFileSync(join(www, '1k'), 'x'.repeat(1024));
  const needHttp = o.workloads.some((w) => w !== 'tcp') || o.fixedRps > 0 || (o.mtlsRps ?? 0) > 0;
  try {
    // Upstreams (load-generator CPU).
    const up = { h1: await freePort(), h2: await freePort(), echo: await freePort() };
    let upstreamProc: Proc | undefined;
    if (needHttp) {
      upstreamProc = started.add(await startNginx('upstream nginx', o.workDir, nginxUpstreamConf(o.workDir, up.h1, up.h2), 'upstream.conf', up.h1, cpus.load));
    }
    const echo = started.add(startProcess('echo server', process.execPath, [LOADGEN, 'echo-server', String(up.echo)], { cpu: cpus.load }));
    await waitPort(up.echo, echo);

    const targets: Target[] = [];
    if (o.targets.includes('direct')) targets.push({ name: 'direct', h1Port: up.h1, h2Port: up.h2, tcpPort: up.echo });
    if (o.targets.includes('nginx')) {
      const ports = { h1: await freePort(), h2: await freePort(), tcp: await freePort() };
      const stream = existsSync(NGINX_STREAM_MODULE);
      const proc = started.add(await startNginx('nginx', o.workDir, nginxProxyConf(o.workDir, up.h1, ports.h1, ports.h2, stream ? ports.tcp : undefined, up.echo), 'proxy.conf', ports.h1, cpus.proxy));
      targets.push({ name: 'nginx', proc, h1Port: ports.h1, h2Port: ports.h2, tcpPort: stream ? ports.tcp : undefined, tcpSkip: stream ? undefined : `nginx stream module not installed (${NGINX_STREAM_MODULE})` });
    }
    if (o.targets.includes('haproxy')) {
      const ports = { h1: await freePort(), h2: await freePort(), tcp: await freePort() };
      const cfg = join(o.workDir, 'haproxy.cfg');
      writeFileSync(cfg, haproxyConf(up.h1, ports.h1, ports.h2, ports.tcp, up.echo));
      const proc = started.add(startProcess('haproxy', 'haproxy', ['-db', '-f', cfg], { cpu: cpus.proxy }));
      await waitPort(ports.h1, proc);
      targets.push({ name: 'haproxy', proc, h1Port: ports.h1, h2Port: ports.h2, tcpPort: ports.tcp });
    }
    let xds: string | undefined;
    if (o.targets.includes('weft')) {
      const configDir = join(o.workDir, 'mesh');
      mkdirSync(configDir, { recursive: true });
      writeFileSync(join(configDir, 'bench.yaml'), benchMesh(up.h1, up.echo));
      const cp = await startControlPlane(configDir, cpus.load);
      started.add(cp.proc);
      xds = cp.xds;
      for (const n of o.weftConcurrency) {
        const w = await startWeftProxy(xds, `bench-${n}`, weftCpus(n, cpus, availableParallelism()), n, true);
        started.add(w.proc);
        const h2 = await speaksH2c(w.outbound);
        targets.push({ name: n > 1 ? `weft ×${n}` : 'weft', proc: w.proc, cpus: n > 1 ? (weftCpus(n, cpus, availableParallelism()) ?? `0-${availableParallelism() - 1}`) : undefined, h1Port: w.outbound, h2Port: h2 ? w.outbound : undefined, h2Skip: h2 ? undefined : 'weft: h2c not supported in this build', tcpPort: w.tcp });
        if (n === 1 && o.weftMetricsOff) {
          const off = await startWeftProxy(xds, 'bench-metrics-off', weftCpus(1, cpus, availableParallelism()), 1, true, ['--metrics=false']);
          started.add(off.proc);
          targets.push({ name: METRICS_OFF_TARGET, proc: off.proc, h1Port: off.outbound, h2Port: h2 ? off.outbound : undefined, h2Skip: h2 ? undefined : 'weft: h2c not supported in this build', tcpPort: off.tcp });
        }
      }
    }
    if (needHttp) for (const t of targets) await checkServes(t);

    // Throughput workloads: each target in turn, same load generator.
    for (const w of o.workloads) {
      for (const t of targets) {
        const port = w === 'h2' ? t.h2Port : w === 'tcp' ? t.tcpPort : t.h1Port;
        const skip = w === 'h2' ? t.h2Skip : w === 'tcp' ? t.tcpSkip : undefined;
        if (port === undefined) {
          cases.push({ workload: w, target: t.name, skipped: skip ?? 'not available' });
          continue;
        }
        o.progress(`${w} → ${t.name}`);
        const measure = (seconds: number): Promise<LoadResult> =>
          w === 'h1-2b'
            ? wrk(port, '/2b', seconds, cpus.load)
            : w === 'h1-1k'
              ? wrk(port, '/1k', seconds, cpus.load)
              : w === 'h2'
                ? h2load(port, seconds, cpus.load, join(o.workDir, 'h2load.log'))
                : loadgen(['tcp-echo', `127.0.0.1:${port}`, '50', '64', String(seconds)], cpus.load);
        if (o.warmupSeconds > 0) await measure(o.warmupSeconds);
        const before = t.proc ? treeUsage(t.proc.pid) : undefined;
        const r = await measure(o.seconds);
        const after = t.proc ? treeUsage(t.proc.pid) : undefined;
        const c: CaseResult = { workload: w, target: t.name, requests: r.requests, errors: r.errors, rps: r.rps, p50Us: r.p50Us, p99Us: r.p99Us };
        if (before && after && r.requests > 0) {
          c.cpuPer1k = ((after.cpuSeconds - before.cpuSeconds) / r.requests) * 1000;
          c.peakRssBytes = after.peakRssBytes;
        }
        cases.push(c);
      }
    }

    // Added latency at a fixed rate (10 keep-alive connections).
    if (o.fixedRps > 0) cases.push(...(await fixedRate(o, targets, pinned, cpus, upstreamProc)));
    // Two hops over mTLS (both sidecars on the proxy CPU).
    let mtls: MtlsResult | undefined;
    if ((o.mtlsRps ?? 0) > 0 && xds !== undefined) {
      const cp = xds;
      mtls = await runMtlsTwoHop({
        workDir: o.workDir,
        configDir: join(o.workDir, 'mesh'),
        upstreamPort: up.h1,
        seconds: o.seconds,
        warmupSeconds: o.warmupSeconds,
        rps: o.mtlsRps!,
        startProxy: async (id, extra) => {
          const w = await startWeftProxy(cp, id, cpus.proxy, 1, false, extra);
          started.add(w.proc);
          return w;
        },
        load: (args) => loadgen(args, cpus.load),
        httpGet,
        progress: o.progress,
      });
    }
    // Stop the throughput targets before the idle measurement, so it runs on a quiet proxy CPU.
    await started.stopAll();

    let idle: IdleResult | undefined;
    if (o.idleServices > 0) idle = await measureIdle(o, cpus, started);
    return { cases, idle, pinned, ...(mtls ? { mtls } : {}) };
  } finally {
    await started.stopAll();
  }
}

/** Median of a non-empty list (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const v = [...xs].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

/**
 * The added-latency measurement: `fixedRounds` rounds; in each, for each placement, every target in turn at
 * `fixedRps` over 10 connections (the first round starts each with a warm-up). A target's figures are the medians
 * over the rounds of its latency percentiles, and its p99 added is the median of (its p99 − direct's p99 of the same
 * round and placement). Every target is measured the same way, with the same load generator.
 */
async function fixedRate(o: BenchOptions, targets: Target[], pinned: boolean, cpus: Cpus, upstream: Proc | undefined): Promise<CaseResult[]> {
  const placements = pinned ? (o.fixedPlacements ?? ALL_PLACEMENTS) : (['shared'] as Placement[]);
  const rounds = Math.max(1, Math.floor(o.fixedRounds ?? 1));
  const seconds = o.fixedSeconds ?? o.seconds;
  const everyCpu = `0-${availableParallelism() - 1}`;
  /** Pins the upstream and every target's processes (all threads) as `placement` wants. */
  const place = (placement: Placement): void => {
    if (!pinned) return;
    if (upstream) pinTree(upstream.pid, placement === 'pinned' ? cpus.load! : everyCpu);
    for (const t of targets) if (t.proc) pinTree(t.proc.pid, placement === 'pinned' ? (t.cpus ?? cpus.proxy!) : everyCpu);
  };
  const runs = new Map<string, LoadResult[]>();
  const key = (t: Target, p: Placement) => `${p}\0${t.name}`;
  try {
    for (let round = 0; round < rounds; round++) {
      for (const placement of placements) {
        place(placement);
        const loadCpu = placement === 'pinned' ? cpus.load : undefined;
        for (const t of targets) {
          o.progress(`fixed ${o.fixedRps} rps → ${t.name} (${pinned ? `${placement}, ` : ''}round ${round + 1}/${rounds})`);
          const args = (s: number) => ['http-rate', `127.0.0.1:${t.h1Port}`, HOST, '/2b', String(o.fixedRps), '10', String(s)];
          if (round === 0 && o.warmupSeconds > 0) await loadgen(args(o.warmupSeconds), loadCpu);
          const r = await loadgen(args(seconds), loadCpu);
          const k = key(t, placement);
          runs.set(k, [...(runs.get(k) ?? []), r]);
        }
      }
    }
  } finally {
    place('pinned');
  }
  const out: CaseResult[] = [];
  for (const placement of placements) {
    const direct = targets.find((t) => t.name === 'direct');
    const directRuns = direct ? runs.get(key(direct, placement)) : undefined;
    for (const t of targets) {
      const rs = runs.get(key(t, placement)) ?? [];
      if (!rs.length) continue;
      const pct = (f: (r: LoadResult) => number | undefined) => median(rs.map((r) => f(r) ?? NaN));
      const requests = rs.reduce((a, r) => a + r.requests, 0);
      const c: CaseResult = {
        workload: 'fixed-rate',
        target: t.name,
        placement,
        requests,
        errors: rs.reduce((a, r) => a + r.errors, 0),
        rps: requests / rs.reduce((a, r) => a + r.seconds, 0),
        p50Us: pct((r) => r.p50Us),
        p90Us: pct((r) => r.p90Us),
        p99Us: pct((r) => r.p99Us),
        p999Us: pct((r) => r.p999Us),
        maxUs: Math.max(...rs.map((r) => r.maxUs ?? NaN)),
        roundP99Us: rs.map((r) => r.p99Us),
      };
      if (t !== direct && directRuns && directRuns.length === rs.length) {
        c.roundAddedP99Us = rs.map((r, i) => r.p99Us - directRuns[i]!.p99Us);
        c.addedP99Us = median(c.roundAddedP99Us);
      }
      out.push(c);
    }
  }
  return out;
}

/**
 * RSS of an idle `weft proxy` holding the config of `o.idleServices` services (clusters + routes), as a real sidecar
 * lives: its stats port announced to the control plane, whose mesh telemetry scrapes it every 2 s, and one full
 * `/stats/prometheus` scrape as Prometheus makes at every scrape interval; RSS after the settle time.
 */
async function measureIdle(o: BenchOptions, cpus: Cpus, started: Started): Promise<IdleResult> {
  o.progress(`idle RSS with ${o.idleServices} services`);
  const configDir = join(o.workDir, 'idle-mesh');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(join(configDir, 'services.yaml'), idleMesh(o.idleServices));
  const cp = await startControlPlane(configDir, cpus.load);
  started.add(cp.proc);
  const statsPort = await freePort();
  const w = await startWeftProxy(cp.xds, 'bench-idle', cpus.proxy, 1, false, [], statsPort);
  started.add(w.proc);
  // Ready means the first full config is in force; count the clusters it holds to be sure.
  let clusters = 0;
  for (let i = 0; i < 100; i++) {
    const r = await httpGet(w.admin, '/clusters?format=json', 'localhost').catch(() => ({ status: 0, body: '' }));
    if (r.status === 200) clusters = ((JSON.parse(r.body) as { cluster_statuses?: unknown[] }).cluster_statuses ?? []).length;
    if (clusters >= o.idleServices) break;
    await sleep(200);
  }
  // One full scrape, as Prometheus makes it.
  const beforeScrape = treeUsage(w.proc.pid);
  const full = await httpGet(statsPort, '/stats/prometheus', 'localhost');
  if (full.status !== 200) throw new Error(`idle proxy: /stats/prometheus answered ${full.status}`);
  const afterScrape = treeUsage(w.proc.pid);
  // The control plane's telemetry has read the proxy at least twice once its window is open.
  let telemetryOpen = false;
  let telemetryErrors: string[] = [];
  for (let i = 0; i < 30 && !telemetryOpen; i++) {
    await sleep(1000);
    const r = await httpGet(cp.httpPort, '/api/mesh', 'localhost').catch(() => ({ status: 0, body: '' }));
    if (r.status !== 200) continue;
    const t = (JSON.parse(r.body) as { telemetry?: { windowSeconds?: number; scrapeErrors?: Array<{ target: string; error: string }> } }).telemetry;
    telemetryErrors = (t?.scrapeErrors ?? []).map((e) => `${e.target}: ${e.error}`);
    telemetryOpen = (t?.windowSeconds ?? 0) > 0;
  }
  // Let start-up and scrape garbage be collected by the idle proxy's own GC cycles, while the telemetry goes on.
  const settleSeconds = Math.max(4, o.warmupSeconds);
  const beforeSettle = treeUsage(w.proc.pid);
  await sleep(settleSeconds * 1000);
  const u = treeUsage(w.proc.pid);
  await started.stopAll();
  return {
    services: o.idleServices,
    clusters,
    rssBytes: u?.rssBytes ?? NaN,
    peakRssBytes: u?.peakRssBytes ?? NaN,
    fullScrapeBytes: Buffer.byteLength(full.body),
    fullScrapeCpuSeconds: (afterScrape?.cpuSeconds ?? NaN) - (beforeScrape?.cpuSeconds ?? NaN),
    telemetryOpen,
    telemetryErrors,
    settleCpuShare: ((u?.cpuSeconds ?? NaN) - (beforeSettle?.cpuSeconds ?? NaN)) / settleSeconds,
    settleSeconds,
  };
}
