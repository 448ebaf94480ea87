/**
 * One LocalWorkload replica under the local runtime's supervision: its `weft proxy` sidecar and its app process.
 *
 * Start-up follows the order Istio gives a pod with `holdApplicationUntilProxyStarts`: free ports are allocated,
 * the replica is registered with the embedded control plane (address 127.0.0.1, each port = the sidecar's inbound
 * port, the LocalWorkload's labels, service account and locality; not healthy yet), the sidecar starts, and the app
 * starts only once the sidecar's `/healthz/ready` answers 200 (its first full config is applied). The replica is
 * ready, and its registration healthy, once every app port accepts connections (a TCP readiness probe); it is
 * marked unhealthy again as soon as the app or the sidecar dies.
 *
 * Supervision is the kubelet's CrashLoopBackOff: a process that exits, or cannot start (command not found, port in
 * use), is restarted after a delay that starts at 0.5 s and doubles up to 30 s, and resets once the replica has run
 * for a minute. Only the process that died restarts (a dead sidecar does not take the app down). Every restart and
 * its cause are in the status (`restarts`, `phase`, `lastError`) and in the replica's log.
 */
import { chmodSync, existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import type { LocalWorkload } from '../api/model.js';
import { envNameOf } from '../api/kinds/weft.js';
import type { ControlPlane } from '../controlplane/controlplane.js';
import { Backoff } from '../xds/client/backoff.js';
import { grpcBootstrap } from '../xds/grpc-bootstrap.js';
import { LogFile, logFile } from './logs.js';
import { portConflictMessage, portIsFree, type PortAllocator } from './ports.js';
import { describeExit, ManagedProcess, type ExitInfo, type ProcessTable } from './process.js';
import type { ReplicaPhase, SidecarPorts, WorkloadStatus } from './status.js';

/** What a replica needs from the runtime. */
export interface ReplicaContext {
  cp: ControlPlane;
  /** The control plane's xDS address (`127.0.0.1:PORT`). */
  xds: string;
  stateDir: string;
  ports: PortAllocator;
  /** Where running children are recorded (see reapLeftovers). */
  processes: ProcessTable;
  /** `node` and the `weft` entry point the sidecar runs with. */
  weftCommand: [string, string];
  /**
   * Workload identity for sidecars: the CSR service / mTLS xDS address, the root certificate that verifies it,
   * and a token minted for a namespace + service account (written by the replica to a 0600 file under the state
   * dir, `--token-file`).
   */
  identity?: { caAddr: string; caRootFile: string; mintToken(namespace: string, serviceAccount: string): Promise<string> };
  /** Directory a LocalWorkload without `cwd` runs in (where `weft up` runs). */
  baseDir: string;
  event(kind: string, workload: string, message: string): void;
}

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 30_000;
/** A replica that stays up this long has its backoff reset. */
export const STABLE_MS = 60_000;
/** Grace between SIGTERM and SIGKILL for apps. */
export const APP_STOP_GRACE_MS = 5_000;
/** The sidecar's drain timeout when it stops (after its app), and the grace after it. */
export const SIDECAR_DRAIN_SECONDS = 2;
/** Hosts apps reach directly, never through HTTP_PROXY (NO_PROXY / no_proxy). */
const LOOPBACK_NO_PROXY = ['127.0.0.1', 'localhost', '::1'];
const SIDECAR_STOP_GRACE_MS = SIDECAR_DRAIN_SECONDS * 1000 + 5_000;
/** A sidecar not ready, or an app not listening, after this long is reported (and counts as a failure for ready()). */
const SLOW_START_MS = 30_000;
/** A sidecar not ready after this long is restarted (as a failed Kubernetes startup probe restarts a container). */
const SIDECAR_STARTUP_MS = 60_000;
const POLL_MS = 100;

/** The spec fields whose change restarts a replica (everything but `replicas` and the origin). */
export function workloadFingerprint(w: LocalWorkload): string {
  const { replicas: _r, origin, ...rest } = w;
  return JSON.stringify({ ...rest, file: origin.pos?.file });
}

/** The directory a LocalWorkload runs in: `cwd` resolved against its YAML file's directory; else `baseDir`. */
export function workloadCwd(w: LocalWorkload, baseDir: string): string {
  if (w.cwd === undefined) return baseDir;
  if (isAbsolute(w.cwd)) return w.cwd;
  const file = w.origin.pos?.file;
  const dir = file ? resolvePath(file, '..') : baseDir;
  return resolvePath(dir, w.cwd);
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function tcpAccepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.setTimeout(1000);
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.once('timeout', () => done(false));
  });
}

async function httpOk(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await r.arrayBuffer();
    return r.status === 200;
  } catch {
    return false;
  }
}

export class Replica {
  readonly name: string;
  readonly namespace: string;
  readonly id: string;
  /** Registration name in the control plane (`<name>-<index>`). */
  readonly workloadName: string;
  phase: ReplicaPhase = 'starting';
  ready = false;
  restarts = 0;
  lastError?: string;
  appPorts: Record<string, number> = {};
  sidecarPorts: SidecarPorts = { admin: 0, stats: 0, health: 0, outbound: 0, inbound: {}, upstreams: {} };

  private app?: ManagedProcess;
  private sidecar?: ManagedProcess;
  private readonly appLog: LogFile;
  private readonly sidecarLog: LogFile;
  private readonly backoff = new Backoff(BACKOFF_BASE_MS, BACKOFF_MAX_MS, () => 1);
  private stableTimer?: NodeJS.Timeout;
  private stopRequested = false;
  private wake?: () => void;
  private loop?: Promise<void>;
  private allocated: number[] = [];
  private settle!: () => void;
  /** Resolves once the replica has been ready, or has failed, at least once. */
  readonly settled = new Promise<void>((r) => (this.settle = r));

  constructor(
    private readonly ctx: ReplicaContext,
    /** Replaced only by a spec with the same fingerprint (a new `replicas`). */
    public spec: LocalWorkload,
    readonly index: number,
  ) {
    this.name = spec.name;
    this.namespace = spec.namespace;
    this.id = `${spec.name}-${index}.${spec.namespace}`;
    this.workloadName = `${spec.name}-${index}`;
    this.appLog = new LogFile(logFile(ctx.stateDir, spec.name, index));
    this.sidecarLog = new LogFile(logFile(ctx.stateDir, spec.name, index, true));
  }

  private get label(): string {
    return `${this.name}-${this.index}`;
  }

  /** "workload NAME: ..." (with the replica index when there are several). */
  private msg(s: string): string {
    return `workload ${this.name}${this.spec.replicas > 1 ? ` replica ${this.index}` : ''}: ${s}`;
  }

  status(): WorkloadStatus {
    const s: WorkloadStatus = {
      name: this.name,
      namespace: this.namespace,
      replica: this.index,
      id: this.id,
      labels: { ...this.spec.labels },
      serviceAccount: this.spec.serviceAccount,
      phase: this.phase,
      ready: this.ready,
      restarts: this.restarts,
      appPorts: { ...this.appPorts },
      sidecar: { ...this.sidecarPorts, inbound: { ...this.sidecarPorts.inbound }, upstreams: { ...this.sidecarPorts.upstreams } },
    };
    if (this.app?.running && this.app.pid !== undefined) s.pid = this.app.pid;
    if (this.sidecar?.running && this.sidecar.pid !== undefined) s.sidecarPid = this.sidecar.pid;
    if (this.lastError !== undefined) s.lastError = this.lastError;
    return s;
  }

  start(): void {
    this.loop ??= this.run().catch((e: unknown) => {
      this.fail(`internal error: ${(e as Error)?.stack ?? String(e)}`);
      this.phase = 'failed';
    });
  }

  /** Stops the app (SIGTERM to its process group, SIGKILL after the grace period) and marks the replica unhealthy. */
  async stopApp(): Promise<void> {
    this.stopRequested = true;
    this.wake?.();
    if (this.phase !== 'stopped') this.phase = 'stopping';
    this.setHealthy(false);
    if (this.app?.running) {
      this.appLog.note('stopping (SIGTERM)');
      const e = await this.app.stop(APP_STOP_GRACE_MS);
      this.appLog.note(`stopped: ${describeExit(e)}`);
    }
  }

  /** Stops the sidecar (it drains), deregisters the replica and releases its ports. Call after stopApp. */
  async stopSidecar(): Promise<void> {
    await this.stopApp();
    // The supervision loop ends at its next step; an app it started meanwhile is stopped too.
    await this.loop;
    if (this.app?.running) await this.app.stop(APP_STOP_GRACE_MS);
    if (this.sidecar?.running) {
      this.sidecarLog.note('stopping (SIGTERM): draining');
      const e = await this.sidecar.stop(SIDECAR_STOP_GRACE_MS);
      this.sidecarLog.note(`stopped: ${describeExit(e)}`);
    }
    if (this.stableTimer) clearTimeout(this.stableTimer);
    this.ctx.cp.deregisterWorkload(this.namespace, this.workloadName);
    this.ctx.ports.release(this.allocated);
    this.allocated = [];
    this.phase = 'stopped';
    this.ready = false;
    this.appLog.close();
    this.sidecarLog.close();
  }

  /** Stops the app, then the sidecar. */
  async stop(): Promise<void> {
    await this.stopApp();
    await this.stopSidecar();
  }

  private async allocate(): Promise<number> {
    const p = await this.ctx.ports.allocate();
    this.allocated.push(p);
    return p;
  }

  private setHealthy(healthy: boolean): void {
    this.ready = healthy;
    this.ctx.cp.setWorkloadHealth(this.namespace, this.workloadName, healthy);
  }

  /** Records a failure: status, log, event. The caller waits `backoffDelay()` and tries again. */
  private fail(message: string, log: LogFile = this.appLog): void {
    this.lastError = message;
    this.phase = 'restarting';
    this.setHealthy(false);
    if (this.stableTimer) clearTimeout(this.stableTimer);
    log.note(message);
    this.settle();
  }

  /** Waits the next backoff delay (or until stop); false when stopping. Counts a restart. */
  private async backoffWait(): Promise<boolean> {
    const delay = this.backoff.next();
    if (this.stopRequested) return false;
    this.ctx.event('restarting', this.label, `${this.lastError ?? this.msg('failed')}; restarting in ${(delay / 1000).toFixed(1)} s`);
    await this.sleepOrStop(delay);
    if (this.stopRequested) return false;
    this.restarts++;
    this.phase = 'starting';
    return true;
  }

  private sleepOrStop(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.wake = done;
    });
  }

  /**
   * Allocates the replica's free ports (new ones on every call: a port found free can be taken by someone else
   * before the sidecar binds it) and registers the replica with them (replacing an earlier registration).
   */
  private async allocateAndRegister(): Promise<void> {
    const w = this.spec;
    this.ctx.ports.release(this.allocated);
    this.allocated = [];
    for (const p of w.ports) this.appPorts[p.name] = p.port !== 0 ? p.port : await this.allocate();
    for (const p of w.ports) this.sidecarPorts.inbound[p.name] = await this.allocate();
    for (const u of w.upstreams) this.sidecarPorts.upstreams[u.name] = await this.allocate();
    this.sidecarPorts.outbound = await this.allocate();
    this.sidecarPorts.admin = await this.allocate();
    this.sidecarPorts.health = await this.allocate();
    this.sidecarPorts.stats = await this.allocate();
    if (this.stopRequested) return;
    this.ctx.cp.registerWorkload({
      name: this.workloadName,
      namespace: this.namespace,
      address: '127.0.0.1',
      labels: { ...w.labels },
      ports: { ...this.sidecarPorts.inbound },
      ...(w.locality !== undefined ? { locality: w.locality } : {}),
      serviceAccount: w.serviceAccount,
      sidecar: true,
      ttlSeconds: 0,
      healthy: false,
      source: 'LocalWorkload',
    });
  }

  private async run(): Promise<void> {
    await this.allocateAndRegister();
    if (this.stopRequested) return;
    const bootstrapPath = join(this.ctx.stateDir, 'bootstrap', `${this.label}.${this.namespace}.json`);
    writeFileSync(bootstrapPath, `${JSON.stringify(this.bootstrap(), null, 2)}\n`);

    while (!this.stopRequested) {
      // 1. The sidecar, until ready.
      if (!this.sidecar?.running) {
        const ok = await this.startSidecar();
        if (!ok) {
          if (!(await this.backoffWait())) return;
          // No app depends on the sidecar's ports yet: take fresh ones (one of them may have been taken).
          if (!this.app?.running) await this.allocateAndRegister();
          continue;
        }
      }
      // 2. The app, until its ports accept connections.
      if (!this.app?.running) {
        const err = await this.startApp(bootstrapPath);
        if (err !== undefined) {
          this.fail(err);
          if (!(await this.backoffWait())) return;
          continue;
        }
      }
      const up = await this.waitAppListening();
      if (up === 'stopped') return;
      if (up !== 'ok') {
        if (!(await this.backoffWait())) return;
        continue;
      }
      this.phase = 'running';
      this.setHealthy(true);
      this.settle();
      this.ctx.event('ready', this.label, this.msg(`ready (app pid ${this.app?.pid}, sidecar pid ${this.sidecar?.pid})`));
      this.stableTimer = setTimeout(() => this.backoff.reset(), STABLE_MS);
      this.stableTimer.unref();

      // 3. Running: until the app or the sidecar exits.
      const which = await Promise.race([
        this.app!.exited.then((e) => ({ who: 'app' as const, e })),
        this.sidecar!.exited.then((e) => ({ who: 'sidecar' as const, e })),
        new Promise<undefined>((r) => (this.wake = () => r(undefined))),
      ]);
      if (!which || this.stopRequested) return;
      if (which.who === 'app') this.fail(this.msg(describeExit(which.e)));
      else this.fail(this.msg(`sidecar ${describeExit(which.e)}`), this.sidecarLog);
      if (!(await this.backoffWait())) return;
    }
  }

  private bootstrap(): unknown {
    const w = this.spec;
    const [region = '', zone = '', sub_zone = ''] = (w.locality ?? '').split('/');
    return grpcBootstrap({
      controlPlane: this.ctx.xds,
      namespace: this.namespace,
      labels: { ...w.labels },
      serviceAccount: w.serviceAccount,
      workloadName: w.name,
      ip: '127.0.0.1',
      nodeId: `sidecar~127.0.0.1~${this.workloadName}.${this.namespace}~${this.namespace}.svc.cluster.local`,
      ...(w.locality ? { locality: { region, zone, sub_zone } } : {}),
    });
  }

  private sidecarArgs(): string[] {
    const w = this.spec;
    const sp = this.sidecarPorts;
    const args = [this.ctx.weftCommand[1], 'proxy', '--xds', this.ctx.xds, '--id', this.id, '--namespace', this.namespace, '--service-account', w.serviceAccount];
    const labels = Object.entries(w.labels).map(([k, v]) => `${k}=${v}`).join(',');
    if (labels) args.push('--labels', labels);
    for (const p of w.ports) {
      const proto = p.protocol === 'UNKNOWN' ? '' : `/${p.protocol.toLowerCase()}`;
      args.push('--workload-port', `${sp.inbound[p.name]}:${this.appPorts[p.name]}${proto}`);
    }
    for (const u of w.upstreams) args.push('--upstream', `${u.host}:${u.port}=${sp.upstreams[u.name]}`);
    args.push('--outbound-port', String(sp.outbound), '--admin-port', String(sp.admin), '--health-port', String(sp.health), '--stats-port', String(sp.stats));
    if (w.locality) args.push('--locality', w.locality);
    args.push('--drain-timeout', String(SIDECAR_DRAIN_SECONDS));
    if (this.ctx.identity) args.push('--token-file', this.tokenFile(), '--ca-addr', this.ctx.identity.caAddr, '--ca-root-file', this.ctx.identity.caRootFile);
    return args;
  }

  /** `<state dir>/tokens/<namespace>.<service account>.token`: the sidecar's bootstrap token. */
  private tokenFile(): string {
    return join(this.ctx.stateDir, 'tokens', `${this.namespace}.${this.spec.serviceAccount}.token`);
  }

  /** Mints a fresh token for the replica's identity into its token file (mode 0600), before each sidecar start. */
  private async writeToken(): Promise<void> {
    const id = this.ctx.identity;
    if (!id) return;
    const token = await id.mintToken(this.namespace, this.spec.serviceAccount);
    const file = this.tokenFile();
    mkdirSync(join(this.ctx.stateDir, 'tokens'), { recursive: true, mode: 0o700 });
    writeFileSync(file, token, { mode: 0o600 });
    chmodSync(file, 0o600);
  }

  /** Starts the sidecar and waits for /healthz/ready; false (after recording the failure) when it exits first. */
  private async startSidecar(): Promise<boolean> {
    await this.writeToken();
    this.sidecarLog.note(`starting sidecar: weft ${this.sidecarArgs().slice(1).join(' ')}`);
    const sc = new ManagedProcess({ command: this.ctx.weftCommand[0], args: this.sidecarArgs(), cwd: this.ctx.baseDir, env: process.env, log: this.sidecarLog, table: this.ctx.processes });
    this.sidecar = sc;
    let exit: ExitInfo | undefined;
    void sc.exited.then((e) => (exit = e));
    const url = `http://127.0.0.1:${this.sidecarPorts.health}/healthz/ready`;
    const start = Date.now();
    let slowReported = false;
    while (!this.stopRequested) {
      if (exit) {
        const why = exit.error ? `cannot start: ${exit.error.message}` : describeExit(exit);
        this.fail(this.msg(`sidecar ${why} before it was ready (see ${this.sidecarLog.path})`), this.sidecarLog);
        return false;
      }
      if (await httpOk(url)) {
        this.sidecarLog.note(`sidecar ready (pid ${sc.pid})`);
        return true;
      }
      if (!slowReported && Date.now() - start > SLOW_START_MS) {
        slowReported = true;
        this.lastError = this.msg(`sidecar not ready after ${SLOW_START_MS / 1000} s (see ${this.sidecarLog.path})`);
        this.ctx.event('error', this.label, this.lastError);
        this.settle();
      }
      if (Date.now() - start > SIDECAR_STARTUP_MS) {
        // A failed startup probe: the kubelet restarts the container.
        this.fail(this.msg(`sidecar not ready after ${SIDECAR_STARTUP_MS / 1000} s: restarting it (see ${this.sidecarLog.path})`), this.sidecarLog);
        await sc.stop(SIDECAR_STOP_GRACE_MS);
        return false;
      }
      await sleep(POLL_MS);
    }
    return false;
  }

  private appEnv(bootstrapPath: string): NodeJS.ProcessEnv {
    const w = this.spec;
    const sp = this.sidecarPorts;
    const env: NodeJS.ProcessEnv = { ...process.env, ...w.env };
    w.ports.forEach((p, i) => {
      env[`PORT_${envNameOf(p.name)}`] = String(this.appPorts[p.name]);
      if (i === 0) env.PORT = String(this.appPorts[p.name]);
    });
    for (const u of w.upstreams) env[`${envNameOf(u.name)}_ADDR`] = `127.0.0.1:${sp.upstreams[u.name]}`;
    const proxy = `http://127.0.0.1:${sp.outbound}`;
    env.HTTP_PROXY = proxy;
    env.http_proxy = proxy;
    // Loopback stays direct: the sidecar's own ports, the control plane (proxyless gRPC's xDS stream) and
    // proxyless endpoints are on 127.0.0.1, and gRPC/curl would otherwise tunnel them through HTTP_PROXY.
    const noProxy = [env.NO_PROXY ?? env.no_proxy, ...LOOPBACK_NO_PROXY].filter((v) => v !== undefined && v !== '').join(',');
    env.NO_PROXY = noProxy;
    env.no_proxy = noProxy;
    env.WEFT_OUTBOUND = `127.0.0.1:${sp.outbound}`;
    env.GRPC_XDS_BOOTSTRAP = bootstrapPath;
    env.WEFT_WORKLOAD = w.name;
    env.WEFT_NAMESPACE = w.namespace;
    env.WEFT_REPLICA = String(this.index);
    return env;
  }

  /** Starts the app; an error message when it cannot be started at all. */
  private async startApp(bootstrapPath: string): Promise<string | undefined> {
    const w = this.spec;
    const cwd = workloadCwd(w, this.ctx.baseDir);
    if (!existsSync(cwd) || !statSync(cwd).isDirectory()) return this.msg(`cwd ${cwd} is not a directory`);
    for (const p of w.ports) {
      if (p.port !== 0 && !(await portIsFree(p.port))) return this.msg(portConflictMessage(p.port, p.name));
    }
    const [command, ...args] = w.command as [string, ...string[]];
    this.appLog.note(`starting: ${w.command.join(' ')} (cwd ${cwd})`);
    const app = new ManagedProcess({ command, args, cwd, env: this.appEnv(bootstrapPath), log: this.appLog, table: this.ctx.processes });
    this.app = app;
    const early = await Promise.race([app.exited, new Promise<undefined>((r) => app.child.once('spawn', () => r(undefined)))]);
    if (early?.error) {
      this.app = undefined;
      const code = early.error.code;
      if (code === 'ENOENT') return this.msg(`command "${command}" not found${command.includes('/') ? ` (cwd ${cwd})` : ' in PATH'}`);
      if (code === 'EACCES') return this.msg(`command "${command}" is not executable`);
      return this.msg(`cannot start "${command}": ${early.error.message}`);
    }
    this.appLog.note(`started pid ${app.pid}`);
    return undefined;
  }

  /** Waits until every app port accepts connections: 'ok', 'stopped', or 'failed' (the app exited, recorded). */
  private async waitAppListening(): Promise<'ok' | 'stopped' | 'failed'> {
    const app = this.app!;
    const start = Date.now();
    let slowReported = false;
    const ports = this.spec.ports.map((p) => this.appPorts[p.name]!);
    while (!this.stopRequested) {
      if (!app.running) {
        this.fail(this.msg(describeExit(await app.exited)));
        return 'failed';
      }
      if (!this.sidecar?.running) {
        this.fail(this.msg(`sidecar ${describeExit(await this.sidecar!.exited)}`), this.sidecarLog);
        return 'failed';
      }
      let all = true;
      for (const p of ports) {
        if (!(await tcpAccepts(p))) {
          all = false;
          break;
        }
      }
      if (all) return this.stopRequested ? 'stopped' : 'ok';
      if (!slowReported && Date.now() - start > SLOW_START_MS) {
        slowReported = true;
        this.lastError = this.msg(`app not listening on port(s) ${ports.join(', ')} after ${SLOW_START_MS / 1000} s`);
        this.ctx.event('error', this.label, this.lastError);
        this.settle();
      }
      await sleep(POLL_MS);
    }
    return 'stopped';
  }
}
