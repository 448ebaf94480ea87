/**
 * One benchmark scenario: a control plane in its own process, N simulated Envoys in worker processes, and the
 * measurements (first full push, endpoint-change convergence, control-plane CPU and memory, bytes per client).
 * Used by the benchmark (./main.ts) at full scale and by the smoke test at tiny scale.
 *
 * Every process started here is registered in `children` and stopped by `stopAll` (called by the scenario's
 * `finally` and by the driver's signal handlers), so nothing outlives a run.
 */
import { fork, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { now } from './client.js';
import type { ClientSpec, EndpointWatch, Protocol } from './client.js';
import { HTTP_PORT, endpointLocality, rewriteService } from './config.js';
import type { MeshSummary, ServiceInfo } from './config.js';
import { ProcSampler, procUsage } from './proc.js';
import type { ProcUsage } from './proc.js';
import type { ClientStats, FromWorker, ToWorker } from './protocol.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WEFT_BIN = fileURLToPath(new URL('../../../bin/weft.js', import.meta.url));
const WORKER = fileURLToPath(new URL('./worker.js', import.meta.url));

// ---------------------------------------------------------------------------------------------------------------
// Child processes

const children = new Set<ChildProcess>();

function track(p: ChildProcess): ChildProcess {
  children.add(p);
  p.once('exit', () => children.delete(p));
  return p;
}

/** Kills every process this module started that is still running (SIGKILL: used on the way out). */
export function killAll(): void {
  for (const p of children) {
    if (p.exitCode === null && p.signalCode === null && p.pid !== undefined) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

/**
 * Stops a process: waits up to `waitMs` for it to exit by itself (after being told to), then asks it to stop
 * (SIGTERM), then kills it if it has not exited within `graceMs`.
 */
async function stopProcess(p: ChildProcess, graceMs = 5000, waitMs = 0): Promise<void> {
  const running = () => p.exitCode === null && p.signalCode === null && p.pid !== undefined;
  if (!running()) return;
  const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()));
  if (waitMs > 0) await Promise.race([exited, sleep(waitMs)]);
  if (!running()) return;
  p.kill('SIGTERM');
  const timer = setTimeout(() => p.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Free TCP ports on 127.0.0.1 (held open together while choosing, so they differ). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const s = createServer();
      s.once('error', reject);
      s.listen(0, '127.0.0.1', () => resolve(s));
    })),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  return ports;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

// ---------------------------------------------------------------------------------------------------------------
// The control plane process

export interface ControlPlaneProcess {
  proc: ChildProcess;
  pid: number;
  xdsAddress: string;
  httpBase: string;
  logFile: string;
  /** Milliseconds from spawn until /ready answered 200. */
  startupMs: number;
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

export async function startControlPlane(configDir: string, logFile: string, readyTimeoutMs: number, nodeArgs: string[] = []): Promise<ControlPlaneProcess> {
  const [xdsPort, httpPort] = await freePorts(2);
  const fd = openSync(logFile, 'w');
  const t0 = now();
  const proc = track(
    spawn(
      process.execPath,
      [...nodeArgs, WEFT_BIN, 'control-plane', '--config', configDir, '--xds-port', String(xdsPort), '--http-port', String(httpPort), '--bind', '127.0.0.1'],
      { cwd: REPO_ROOT, stdio: ['ignore', fd, fd] },
    ),
  );
  closeSync(fd);
  const httpBase = `http://127.0.0.1:${httpPort}`;
  let exit: string | undefined;
  proc.once('exit', (code, signal) => { exit = `exited with ${signal ?? `status ${code}`}`; });
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exit) throw new Error(`the control plane ${exit} before it was ready; its log ends with:\n${tail(logFile)}`);
    try {
      const r = await fetch(`${httpBase}/ready`);
      await r.text();
      if (r.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stopProcess(proc);
      throw new Error(`the control plane was not ready within ${readyTimeoutMs} ms; its log ends with:\n${tail(logFile)}`);
    }
    await sleep(100);
  }
  return { proc, pid: proc.pid!, xdsAddress: `127.0.0.1:${xdsPort}`, httpBase, logFile, startupMs: now() - t0 };
}

// ---------------------------------------------------------------------------------------------------------------
// Worker processes

class Worker {
  readonly proc: ChildProcess;
  private readonly waiters: Array<{ match: (m: FromWorker) => boolean; resolve: (m: FromWorker) => void }> = [];
  private readonly listeners = new Set<(m: FromWorker) => void>();
  exited?: string;

  constructor(readonly index: number, nodeArgs: string[] = []) {
    this.proc = track(fork(WORKER, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: nodeArgs }));
    this.proc.on('message', (m: FromWorker) => {
      for (const l of this.listeners) l(m);
      const i = this.waiters.findIndex((w) => w.match(m));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
    });
    this.proc.once('exit', (code, signal) => { this.exited = `worker ${index} exited with ${signal ?? `status ${code}`}`; });
  }

  send(m: ToWorker): void {
    if (this.proc.connected) this.proc.send(m);
  }

  on(l: (m: FromWorker) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  /** The next message matching `match` (registered before the message can arrive). */
  next<T extends FromWorker>(match: (m: FromWorker) => m is T, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        const i = this.waiters.indexOf(entry);
        if (i >= 0) this.waiters.splice(i, 1);
        reject(new Error(`worker ${this.index}: no ${what} within ${timeoutMs} ms${this.exited ? ` (${this.exited})` : ''}`));
      }, timeoutMs);
      const entry = { match, resolve: (m: FromWorker) => { clearTimeout(timer); resolve(m as T); } };
      this.waiters.push(entry);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The scenario

export type ProtocolMix = 'mixed' | Protocol;

export interface ScenarioOptions {
  mesh: MeshSummary;
  /** Where the mesh's YAML is (already written). */
  configDir: string;
  /** Where the control plane's log goes. */
  logFile: string;
  clients: number;
  protocol: ProtocolMix;
  /** Client worker processes. */
  workers: number;
  /**
   * Distinct workloads the clients belong to (clients are replicas of `apps` apps, spread over the namespaces
   * and two zones); clients of one app and zone present the same identity to the control plane.
   */
  apps: number;
  /** Endpoint changes made by rewriting a WorkloadEntry's address in its config file. */
  fileChanges: number;
  /** Endpoint changes made by registering a new workload over the registration API. */
  apiChanges: number;
  /**
   * Time budget of each kind of endpoint change (default 45 s): no new change starts once it is spent, so a slow
   * control plane still finishes in bounded time (at least one change of each kind is made).
   */
  changeBudgetMs?: number;
  /** Node.js options for the control plane's process (e.g. `--cpu-prof`). */
  controlPlaneNodeArgs?: string[];
  /** Node.js options for the client worker processes (e.g. `--cpu-prof`). */
  workerNodeArgs?: string[];
  /** Keep and fully decode every resource (smoke test). */
  verify?: boolean;
  readyTimeoutMs?: number;
  fullPushTimeoutMs?: number;
  changeTimeoutMs?: number;
  /** Progress lines. */
  progress?: (line: string) => void;
}

export interface FullPushResult {
  clients: number;
  completed: number;
  /** From the connect command until the last client held and ACKed CDS+EDS+LDS+RDS. */
  allMs?: number;
  p50Ms?: number;
  byProtocol: Partial<Record<Protocol, { clients: number; completed: number; allMs?: number; p50Ms?: number }>>;
  errors: string[];
}

export interface ChangeRound {
  service: string;
  cluster: string;
  address: string;
  /** Clients that saw the change, and per-client latencies (ms). */
  latencies: number[];
  sotw: number[];
  delta: number[];
  missed: number;
}

export interface ChangeResult {
  mode: 'file' | 'api';
  description: string;
  rounds: ChangeRound[];
  p50Ms?: number;
  p99Ms?: number;
  maxMs?: number;
  byProtocol: Partial<Record<Protocol, { p50Ms?: number; p99Ms?: number }>>;
  missed: number;
}

export interface PushLog {
  full: number;
  eds: number;
  proxyRequests: number;
  fullMs: number[];
  edsMs: number[];
}

export interface ScenarioResult {
  clients: number;
  protocol: ProtocolMix;
  workers: number;
  apps: number;
  /** Distinct client identities (app × zone). */
  identities: number;
  startupMs: number;
  fullPush: FullPushResult;
  /** Proxies the control plane itself reported SYNCED for CDS, EDS, LDS and RDS after the full push. */
  syncedByControlPlane?: number;
  changes: ChangeResult[];
  /** CPU seconds (user + system) of all client worker processes during the first full push. */
  workersFullPushCpuSeconds?: number;
  cp: {
    afterStartup?: ProcUsage;
    afterFullPush?: ProcUsage;
    end?: ProcUsage;
    peakRssBytes: number;
  };
  clientStats: ClientStats[];
  pushes: PushLog;
  metricsText?: string;
}

/** Nearest-rank percentile of a list of numbers (undefined for an empty list). */
export function percentile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

function clientSpecs(opts: ScenarioOptions): ClientSpec[] {
  const out: ClientSpec[] = [];
  for (let i = 0; i < opts.clients; i++) {
    const app = i % opts.apps;
    const replica = Math.floor(i / opts.apps);
    const protocol: Protocol = opts.protocol === 'mixed' ? (i % 2 === 0 ? 'sotw' : 'delta') : opts.protocol;
    out.push({
      id: `client-${i}`,
      protocol,
      namespace: opts.mesh.namespaces[app % opts.mesh.namespaces.length]!,
      app: `client-app-${app}`,
      ip: `10.200.${(i >> 8) & 255}.${i & 255}`,
      locality: { region: 'region-a', zone: `region-a-zone-${replica % 2}` },
    });
  }
  return out;
}

function parsePushLog(file: string): PushLog {
  const out: PushLog = { full: 0, eds: 0, proxyRequests: 0, fullMs: [], edsMs: [] };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.includes('"push"')) continue;
    let rec: { msg?: string; full?: boolean; durationMs?: number; cause?: string[] };
    try {
      rec = JSON.parse(line) as typeof rec;
    } catch {
      continue;
    }
    if (rec.msg !== 'push' || typeof rec.durationMs !== 'number') continue;
    if (rec.cause?.length === 1 && rec.cause[0] === 'proxyrequest') out.proxyRequests++;
    else if (rec.full) { out.full++; out.fullMs.push(rec.durationMs); }
    else { out.eds++; out.edsMs.push(rec.durationMs); }
  }
  return out;
}

async function countSynced(httpBase: string): Promise<number | undefined> {
  try {
    const r = await fetch(`${httpBase}/debug/syncz`);
    if (r.status !== 200) return undefined;
    const list = (await r.json()) as Array<{ xds?: Record<string, { state?: string }> }>;
    return list.filter((p) => ['CDS', 'EDS', 'LDS', 'RDS'].every((t) => p.xds?.[t]?.state === 'SYNCED')).length;
  } catch {
    return undefined;
  }
}

export async function runScenario(opts: ScenarioOptions): Promise<ScenarioResult> {
  const log = opts.progress ?? (() => {});
  const specs = clientSpecs(opts);
  const protocolOf = new Map(specs.map((s) => [s.id, s.protocol]));
  const workers: Worker[] = [];
  let cp: ControlPlaneProcess | undefined;
  let sampler: ProcSampler | undefined;
  try {
    log(`starting the control plane (${opts.mesh.services.length} services, ${opts.mesh.endpoints} endpoints)`);
    cp = await startControlPlane(opts.configDir, opts.logFile, opts.readyTimeoutMs ?? 180_000, opts.controlPlaneNodeArgs);
    sampler = new ProcSampler(cp.pid).start();
    const result: ScenarioResult = {
      clients: opts.clients,
      protocol: opts.protocol,
      workers: opts.workers,
      apps: opts.apps,
      identities: new Set(specs.map((s) => `${s.app}|${s.locality.zone}`)).size,
      startupMs: cp.startupMs,
      fullPush: { clients: opts.clients, completed: 0, byProtocol: {}, errors: [] },
      changes: [],
      cp: { afterStartup: sampler.sample(), peakRssBytes: 0 },
      clientStats: [],
      pushes: { full: 0, eds: 0, proxyRequests: 0, fullMs: [], edsMs: [] },
    };
    log(`control plane ready in ${(cp.startupMs / 1000).toFixed(1)} s (pid ${cp.pid}); starting ${opts.workers} client worker(s)`);

    const nWorkers = Math.max(1, Math.min(opts.workers, opts.clients));
    for (let i = 0; i < nWorkers; i++) workers.push(new Worker(i, opts.workerNodeArgs));
    await Promise.all(workers.map((w) => w.next((m): m is Extract<FromWorker, { type: 'loaded' }> => m.type === 'loaded', 30_000, 'start-up')));

    // ---- first full push ----
    const completeAt = new Map<string, number>();
    const errors = new Map<string, string>();
    let allDone: () => void = () => {};
    const done = new Promise<void>((resolve) => { allDone = resolve; });
    const check = () => { if (completeAt.size + errors.size >= specs.length) allDone(); };
    for (const w of workers) {
      w.on((m) => {
        if (m.type === 'complete') { completeAt.set(m.id, m.at); check(); }
        else if (m.type === 'error') { if (!completeAt.has(m.id)) errors.set(m.id, m.message); else errors.set(m.id, `after its first full push: ${m.message}`); check(); }
        else if (m.type === 'fatal') { errors.set(`worker ${w.index}`, m.message); allDone(); }
      });
    }
    const share: ClientSpec[][] = workers.map(() => []);
    specs.forEach((s, i) => share[i % workers.length]!.push(s));
    log(`connecting ${specs.length} clients (${opts.protocol})`);
    const workersCpu = () => {
      let sum = 0;
      for (const w of workers) {
        const u = w.proc.pid === undefined ? undefined : procUsage(w.proc.pid);
        if (!u) return undefined;
        sum += u.cpuSeconds;
      }
      return sum;
    };
    const workersCpuAtStart = workersCpu();
    const t0 = now();
    for (const [i, w] of workers.entries()) w.send({ cmd: 'connect', address: cp.xdsAddress, clients: share[i]!, verify: opts.verify ?? false });
    const fullTimeout = opts.fullPushTimeoutMs ?? 150_000;
    let fullTimer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => { fullTimer = setTimeout(resolve, fullTimeout); })]);
    clearTimeout(fullTimer);
    const workersCpuAtEnd = workersCpu();
    if (workersCpuAtStart !== undefined && workersCpuAtEnd !== undefined) result.workersFullPushCpuSeconds = workersCpuAtEnd - workersCpuAtStart;
    const fp = result.fullPush;
    fp.completed = completeAt.size;
    fp.errors = [...errors].map(([id, m]) => `${id}: ${m}`);
    if (completeAt.size < specs.length && errors.size === 0) fp.errors.push(`${specs.length - completeAt.size} client(s) had no full configuration within ${fullTimeout} ms`);
    const times = [...completeAt.values()].map((t) => t - t0);
    if (completeAt.size === specs.length) fp.allMs = Math.max(...times);
    fp.p50Ms = percentile(times, 50);
    for (const proto of ['sotw', 'delta'] as const) {
      const ids = specs.filter((s) => s.protocol === proto).map((s) => s.id);
      if (ids.length === 0) continue;
      const t = ids.filter((id) => completeAt.has(id)).map((id) => completeAt.get(id)! - t0);
      fp.byProtocol[proto] = { clients: ids.length, completed: t.length, allMs: t.length === ids.length ? Math.max(...t) : undefined, p50Ms: percentile(t, 50) };
    }
    log(fp.allMs !== undefined ? `full push to ${specs.length} clients: ${(fp.allMs / 1000).toFixed(2)} s` : `full push incomplete: ${fp.completed}/${specs.length} clients`);
    // Let the last ACKs land, then ask the control plane for its own view.
    await sleep(500);
    result.cp.afterFullPush = sampler.sample();
    result.syncedByControlPlane = await countSynced(cp.httpBase);

    // ---- endpoint changes ----
    let seq = 0;
    const changeTimeout = opts.changeTimeoutMs ?? 120_000;
    const budget = opts.changeBudgetMs ?? 45_000;
    const measure = async (svc: ServiceInfo, address: string, act: () => Promise<void>): Promise<ChangeRound> => {
      const watch: EndpointWatch = { seq: ++seq, cluster: `outbound|${HTTP_PORT}||${svc.fqdn}`, address: `${address}:${HTTP_PORT}`, present: true };
      const results = workers.map((w) => w.next((m): m is Extract<FromWorker, { type: 'watchResult' }> => m.type === 'watchResult' && m.seq === watch.seq, changeTimeout + 10_000, 'watch result'));
      const watching = workers.map((w) => w.next((m): m is Extract<FromWorker, { type: 'watching' }> => m.type === 'watching' && m.seq === watch.seq, 10_000, 'watch acknowledgement'));
      for (const w of workers) w.send({ cmd: 'watch', watch });
      await Promise.all(watching);
      const start = now();
      await act();
      const timer = setTimeout(() => { for (const w of workers) w.send({ cmd: 'collect', seq: watch.seq }); }, changeTimeout);
      const got = await Promise.all(results);
      clearTimeout(timer);
      const round: ChangeRound = { service: `${svc.namespace}/${svc.name}`, cluster: watch.cluster, address: watch.address, latencies: [], sotw: [], delta: [], missed: 0 };
      for (const r of got) {
        for (const [id, at] of Object.entries(r.seen)) {
          const ms = at - start;
          round.latencies.push(ms);
          (protocolOf.get(id) === 'sotw' ? round.sotw : round.delta).push(ms);
        }
      }
      round.missed = completeAt.size - round.latencies.length;
      return round;
    };
    const summarize = (mode: ChangeResult['mode'], description: string, rounds: ChangeRound[]): ChangeResult => {
      const all = rounds.flatMap((r) => r.latencies);
      const res: ChangeResult = {
        mode,
        description,
        rounds,
        p50Ms: percentile(all, 50),
        p99Ms: percentile(all, 99),
        maxMs: all.length ? Math.max(...all) : undefined,
        byProtocol: {},
        missed: rounds.reduce((n, r) => n + r.missed, 0),
      };
      for (const proto of ['sotw', 'delta'] as const) {
        const l = rounds.flatMap((r) => r[proto]);
        if (l.length) res.byProtocol[proto] = { p50Ms: percentile(l, 50), p99Ms: percentile(l, 99) };
      }
      return res;
    };
    const services = opts.mesh.services;
    if (opts.fileChanges > 0 && completeAt.size > 0) {
      const rounds: ChangeRound[] = [];
      const until = Date.now() + budget;
      for (let r = 0; r < opts.fileChanges && (r === 0 || Date.now() < until); r++) {
        const svc = services[(r * 131 + 7) % services.length]!;
        const j = r % svc.addresses.length;
        const address = `10.250.${r & 255}.${1 + j}`;
        const addresses = [...svc.addresses];
        addresses[j] = address;
        rounds.push(await measure(svc, address, () => rewriteService(opts.configDir, svc, addresses)));
        svc.addresses = addresses;
        const last = rounds[rounds.length - 1]!;
        log(`endpoint change ${r + 1}/${opts.fileChanges} (file): ${last.latencies.length} clients, max ${Math.max(0, ...last.latencies).toFixed(0)} ms${last.missed ? `, ${last.missed} missed` : ''}`);
        await sleep(300);
      }
      result.changes.push(summarize('file', 'one WorkloadEntry address rewritten in its config file', rounds));
    }
    if (opts.apiChanges > 0 && completeAt.size > 0) {
      const rounds: ChangeRound[] = [];
      const until = Date.now() + budget;
      for (let r = 0; r < opts.apiChanges && (r === 0 || Date.now() < until); r++) {
        const svc = services[(r * 173 + 61) % services.length]!;
        const address = `10.251.${r & 255}.1`;
        const body = {
          name: `bench-vm-${r}`,
          namespace: svc.namespace,
          address,
          labels: { app: svc.name, version: 'v1' },
          ports: Object.fromEntries(svc.ports.map((p) => [p === HTTP_PORT ? 'http' : 'grpc', p])),
          locality: endpointLocality(r),
          serviceAccount: svc.name,
        };
        rounds.push(
          await measure(svc, address, async () => {
            const res = await fetch(`${cp!.httpBase}/v1/workloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
            const text = await res.text();
            if (res.status !== 200 && res.status !== 201) throw new Error(`POST /v1/workloads answered ${res.status}: ${text}`);
          }),
        );
        const last = rounds[rounds.length - 1]!;
        log(`endpoint change ${r + 1}/${opts.apiChanges} (registration API): ${last.latencies.length} clients, max ${Math.max(0, ...last.latencies).toFixed(0)} ms${last.missed ? `, ${last.missed} missed` : ''}`);
        await sleep(300);
      }
      result.changes.push(summarize('api', 'a new workload registered with POST /v1/workloads', rounds));
    }

    // ---- totals ----
    const statsReplies = workers.map((w) => w.next((m): m is Extract<FromWorker, { type: 'stats' }> => m.type === 'stats', 60_000, 'statistics'));
    for (const w of workers) w.send({ cmd: 'stats' });
    result.clientStats = (await Promise.all(statsReplies)).flatMap((m) => m.clients);
    result.cp.end = sampler.sample();
    result.cp.peakRssBytes = sampler.peakRss;
    try {
      const r = await fetch(`${cp.httpBase}/metrics`);
      result.metricsText = await r.text();
    } catch {
      // metrics are optional
    }
    return finish(result);
  } finally {
    sampler?.stop();
    for (const w of workers) w.send({ cmd: 'close' });
    await Promise.all(workers.map((w) => stopProcess(w.proc, 3000, 2000)));
    if (cp) await stopProcess(cp.proc);
  }

  function finish(r: ScenarioResult): ScenarioResult {
    // The push log is complete enough once the changes are done; read it before the process is stopped.
    r.pushes = parsePushLog(opts.logFile);
    return r;
  }
}
