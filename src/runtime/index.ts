/**
 * The local mesh runtime behind `weft up` (and `weft demo`): an embedded control plane plus every LocalWorkload
 * replica as an app process with its own `weft proxy` sidecar, supervised, with a local API and logs.
 *
 *   const rt = await startRuntime({ configPaths: ['mesh/'], stateDir: '.weft' });
 *   await rt.ready();            // every replica ready (or failed once and retrying)
 *   rt.status();                 // RuntimeStatus (src/runtime/status.ts)
 *   await rt.stop();             // apps, then sidecars (they drain), then the control plane
 *
 * The control plane (src/controlplane) runs in this process on free ports of 127.0.0.1 and watches the config
 * paths; each config change is reconciled against the running replicas as a Kubernetes Deployment would be: a new
 * LocalWorkload starts, a removed one stops, a changed one (command, env, ports, labels, ...) is restarted, and a
 * changed `replicas` scales up or down (the highest indexes stop and are deregistered). Other kinds only flow to the
 * control plane. Replicas are described in src/runtime/replica.ts, the API and state file in src/runtime/api.ts.
 * docs/runtime.md is the user's guide.
 */
import { existsSync, mkdirSync } from 'node:fs';
import type { Server } from 'node:http';
import { isAbsolute, relative, resolve as resolvePath, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import type { LocalWorkload } from '../api/model.js';
import { formatText } from '../analyze/format.js';
import { ControlPlane } from '../controlplane/controlplane.js';
import { loadOrCreateTokenKey, TokenIssuer, tokenKeyPath } from '../controlplane/ca/token.js';
import { liveRuntime, removeRuntimeFile, RuntimeAlreadyRunningError, serveApi, serverPort, writeRuntimeFile } from './api.js';
import { logsDir } from './logs.js';
import { PortAllocator } from './ports.js';
import { ProcessTable, reapLeftovers } from './process.js';
import { Replica, workloadFingerprint, type ReplicaContext } from './replica.js';
import type { RuntimeStatus } from './status.js';

export type { RuntimeStatus, WorkloadStatus, ReplicaPhase, SidecarPorts } from './status.js';
export { RuntimeAlreadyRunningError } from './api.js';

export interface RuntimeEvent {
  kind: string;
  workload?: string;
  message: string;
}

export interface RuntimeOptions {
  /** Files/directories of mesh YAML (watched: hot reload). */
  configPaths: string[];
  /** runtime.json, logs/, bootstrap/ ... */
  stateDir: string;
  /** Local API port on 127.0.0.1 (0/undefined = free port). */
  apiPort?: number;
  /** Progress lines for the CLI. */
  onEvent?: (e: RuntimeEvent) => void;
}

export interface Runtime {
  readonly apiPort: number;
  readonly controlPlane: { xdsPort: number; httpPort: number };
  status(): RuntimeStatus;
  /** Resolves when every replica is ready (or has failed at least once: it is then retried in the background). */
  ready(): Promise<void>;
  /** Drain and stop everything (apps first, then sidecars, then the control plane). Idempotent. */
  stop(): Promise<void>;
  /** Resolves once the runtime has stopped (after `stop()` or `POST /v1/shutdown`). */
  readonly stopped: Promise<void>;
}

function processesFile(stateDir: string): string {
  return resolvePath(stateDir, 'processes.json');
}

/**
 * How long a sidecar's bootstrap token is valid: it is minted before each sidecar start and only needed for the
 * first certificate (renewals authenticate with the certificate).
 */
const SIDECAR_TOKEN_TTL_MS = 3600_000;

/** `node` and `bin/weft.js` of this installation (dist/src/runtime → the package root). */
const WEFT_BIN = fileURLToPath(new URL('../../../bin/weft.js', import.meta.url));

interface Group {
  spec: LocalWorkload;
  fingerprint: string;
  replicas: Replica[];
}

class LocalRuntime implements Runtime {
  readonly startedAt = new Date().toISOString();
  private readonly groups = new Map<string, Group>();
  /** Replicas being stopped (still shown in the status, phase `stopping`). */
  private readonly leaving = new Set<Replica>();
  private reconciling: Promise<void> = Promise.resolve();
  private readonly reportedDiagnostics = new Set<string>();
  private readonly warnedTransparent = new Set<string>();
  private unsubscribe?: () => void;
  private stopping?: Promise<void>;
  private resolveStopped!: () => void;
  readonly stopped = new Promise<void>((r) => (this.resolveStopped = r));
  private api?: Server;
  readonly ctx: ReplicaContext;
  /** The ports stay known (and in the status) after stop. */
  apiPort = 0;
  readonly controlPlane: { xdsPort: number; httpPort: number };

  constructor(
    readonly opts: RuntimeOptions & { stateDir: string },
    readonly cp: ControlPlane,
    tokens: TokenIssuer,
  ) {
    this.controlPlane = { xdsPort: cp.xdsPort!, httpPort: cp.httpPort! };
    this.ctx = {
      cp,
      xds: `127.0.0.1:${cp.xdsPort}`,
      stateDir: opts.stateDir,
      ports: new PortAllocator(),
      processes: new ProcessTable(processesFile(opts.stateDir)),
      weftCommand: [process.execPath, WEFT_BIN],
      identity: {
        caAddr: `127.0.0.1:${cp.xdsTlsPort}`,
        caRootFile: resolvePath(opts.stateDir, 'ca', 'root-cert.pem'),
        mintToken: (namespace, serviceAccount) => tokens.create({ namespace, serviceAccount }, SIDECAR_TOKEN_TTL_MS),
      },
      baseDir: process.cwd(),
      event: (kind, workload, message) => this.event({ kind, workload, message }),
    };
  }

  event(e: RuntimeEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch {
      // a listener's error is not the runtime's
    }
  }

  async listen(port: number): Promise<void> {
    this.api = await serveApi(port, () => this.status(), () => void this.stop());
    this.apiPort = serverPort(this.api);
  }

  /** Starts following the config: reconciles now and on every change. */
  follow(): void {
    this.unsubscribe = this.cp.source.store.onChange(() => this.reconcile());
    this.reconcile();
  }

  private allReplicas(): Replica[] {
    return [...[...this.groups.values()].flatMap((g) => g.replicas), ...this.leaving];
  }

  status(): RuntimeStatus {
    const workloads = this.allReplicas()
      .map((r) => r.status())
      .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name) || a.replica - b.replica);
    return {
      configPaths: [...this.opts.configPaths],
      controlPlane: { ...this.controlPlane },
      apiPort: this.apiPort,
      startedAt: this.startedAt,
      workloads,
    };
  }

  async ready(): Promise<void> {
    await this.reconciling;
    await Promise.all([...this.groups.values()].flatMap((g) => g.replicas.map((r) => r.settled)));
  }

  private reconcile(): void {
    if (this.stopping) return;
    this.reconciling = this.reconciling.then(() => this.applyModel()).catch((e: unknown) => this.event({ kind: 'error', message: `reconciling the config failed: ${(e as Error)?.stack ?? String(e)}` }));
  }

  private reportDiagnostics(): void {
    const errors = this.cp.configDiagnostics().diagnostics.filter((d) => d.severity === 'Error');
    const now = new Set(errors.map((d) => formatText(d)));
    for (const text of now) if (!this.reportedDiagnostics.has(text)) this.event({ kind: 'config-error', message: text });
    this.reportedDiagnostics.clear();
    for (const t of now) this.reportedDiagnostics.add(t);
  }

  private startReplica(spec: LocalWorkload, index: number): Replica {
    const r = new Replica(this.ctx, spec, index);
    r.start();
    return r;
  }

  /** Stops replicas (apps first, then sidecars), showing them as stopping meanwhile. */
  private async stopReplicas(list: Replica[]): Promise<void> {
    for (const r of list) this.leaving.add(r);
    await Promise.all(list.map((r) => r.stopApp()));
    await Promise.all(list.map((r) => r.stopSidecar()));
    for (const r of list) this.leaving.delete(r);
  }

  private async applyModel(): Promise<void> {
    if (this.stopping) return;
    this.reportDiagnostics();
    const desired = new Map<string, LocalWorkload>();
    for (const w of this.cp.model.localWorkloads) {
      if (w.capture === 'transparent' && !this.warnedTransparent.has(`${w.namespace}/${w.name}`)) {
        this.warnedTransparent.add(`${w.namespace}/${w.name}`);
        this.event({ kind: 'config-error', workload: w.name, message: `workload ${w.name}: capture: transparent is not supported by weft up yet; running it with explicit capture` });
      }
      desired.set(`${w.namespace}/${w.name}`, w);
    }
    const removed: Replica[] = [];
    for (const [key, g] of [...this.groups]) {
      if (desired.has(key)) continue;
      this.groups.delete(key);
      this.event({ kind: 'removed', workload: g.spec.name, message: `workload ${key} removed: stopping ${g.replicas.length} replica(s)` });
      removed.push(...g.replicas);
    }
    await this.stopReplicas(removed);
    for (const [key, w] of desired) {
      if (this.stopping) return;
      const g = this.groups.get(key);
      const fingerprint = workloadFingerprint(w);
      if (!g) {
        this.event({ kind: 'starting', workload: w.name, message: `workload ${key}: starting ${w.replicas} replica(s)` });
        const replicas = Array.from({ length: w.replicas }, (_, i) => this.startReplica(w, i));
        this.groups.set(key, { spec: w, fingerprint, replicas });
        continue;
      }
      if (g.fingerprint !== fingerprint) {
        this.event({ kind: 'changed', workload: w.name, message: `workload ${key} changed: restarting ${w.replicas} replica(s)` });
        const old = g.replicas;
        g.replicas = [];
        g.spec = w;
        g.fingerprint = fingerprint;
        await this.stopReplicas(old);
        if (this.stopping) return;
        g.replicas = Array.from({ length: w.replicas }, (_, i) => this.startReplica(w, i));
        continue;
      }
      g.spec = w;
      for (const r of g.replicas) r.spec = w;
      const have = g.replicas.length;
      if (w.replicas > have) {
        this.event({ kind: 'scaled', workload: w.name, message: `workload ${key}: scaling up from ${have} to ${w.replicas}` });
        for (let i = have; i < w.replicas; i++) g.replicas.push(this.startReplica(w, i));
      } else if (w.replicas < have) {
        this.event({ kind: 'scaled', workload: w.name, message: `workload ${key}: scaling down from ${have} to ${w.replicas}` });
        const gone = g.replicas.splice(w.replicas);
        await this.stopReplicas(gone);
      }
    }
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.event({ kind: 'stopping', message: 'stopping: apps first, then sidecars, then the control plane' });
      this.unsubscribe?.();
      await this.reconciling;
      const all = [...this.groups.values()].flatMap((g) => g.replicas);
      this.groups.clear();
      await this.stopReplicas(all);
      await this.cp.close().catch(() => undefined);
      const api = this.api;
      if (api) {
        await new Promise<void>((resolve) => {
          api.close(() => resolve());
          api.closeAllConnections();
        });
      }
      removeRuntimeFile(this.opts.stateDir);
      this.event({ kind: 'stopped', message: 'stopped' });
      this.resolveStopped();
    })();
    return this.stopping;
  }
}

/** Starts the runtime; resolves once the control plane and the API serve and every replica has been started. */
export async function startRuntime(opts: RuntimeOptions): Promise<Runtime> {
  const stateDir = resolvePath(opts.stateDir);
  const configPaths = opts.configPaths.map((p) => resolvePath(p));
  if (configPaths.length === 0) throw new Error('no config paths given');
  for (const p of configPaths) if (!existsSync(p)) throw new Error(`config path ${p} does not exist`);
  for (const p of configPaths) {
    // The config watcher reads every .json file of a directory except under dot-directories (src/config/directory.ts).
    const rel = relative(p, stateDir);
    const inside = rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
    if (inside && !rel.split(sep).some((seg) => seg.startsWith('.'))) {
      throw new Error(`state dir ${stateDir} is inside config path ${p}: its JSON files would be read as mesh config; use a dot-directory (such as the default .weft) or a directory outside the config`);
    }
  }
  mkdirSync(logsDir(stateDir), { recursive: true });
  mkdirSync(resolvePath(stateDir, 'bootstrap'), { recursive: true });
  const owner = await liveRuntime(stateDir);
  if (owner) throw new RuntimeAlreadyRunningError(stateDir, owner);
  // A runtime that was killed (SIGKILL) could not stop its apps and sidecars: stop them now.
  const leftovers = reapLeftovers(processesFile(stateDir));
  if (leftovers.length) opts.onEvent?.({ kind: 'cleanup', message: `stopped ${leftovers.length} process(es) left by a runtime that did not stop cleanly: ${leftovers.join(', ')}` });

  const logger = pino(
    { level: 'info', base: { component: 'control-plane' }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: resolvePath(logsDir(stateDir), 'control-plane.log'), sync: true, mkdir: true }),
  );
  // The CA (self-signed root, created on first start) and the token key live in <state dir>/ca, as for
  // `weft control-plane --state-dir`; every sidecar gets a certificate and takes its xDS over mTLS.
  const keyPath = tokenKeyPath(stateDir);
  const cp = new ControlPlane({ configPaths, xdsPort: 0, httpPort: 0, bind: '127.0.0.1', logger, security: { caDir: resolvePath(stateDir, 'ca'), tokenKeyPath: keyPath, xdsTlsPort: 0 } });
  let tokens: TokenIssuer;
  try {
    await cp.start();
    tokens = new TokenIssuer(await loadOrCreateTokenKey(keyPath));
  } catch (e) {
    await cp.close().catch(() => undefined);
    throw new Error(`the control plane cannot start: ${(e as Error).message}`);
  }
  const rt = new LocalRuntime({ ...opts, configPaths, stateDir }, cp, tokens);
  rt.event({ kind: 'control-plane', message: `control plane ready: xDS 127.0.0.1:${cp.xdsPort}, xDS over mTLS 127.0.0.1:${cp.xdsTlsPort}, HTTP http://127.0.0.1:${cp.httpPort}` });
  try {
    await rt.listen(opts.apiPort ?? 0);
  } catch (e) {
    await cp.close().catch(() => undefined);
    const er = e as NodeJS.ErrnoException;
    throw new Error(`the runtime API cannot listen on 127.0.0.1:${opts.apiPort ?? 0}: ${er.code === 'EADDRINUSE' ? 'address already in use' : er.message}`);
  }
  writeRuntimeFile(stateDir, { pid: process.pid, apiPort: rt.apiPort, api: `http://127.0.0.1:${rt.apiPort}`, startedAt: rt.startedAt, configPaths });
  rt.event({ kind: 'api', message: `runtime API http://127.0.0.1:${rt.apiPort} (state dir ${stateDir})` });
  rt.follow();
  return rt;
}
