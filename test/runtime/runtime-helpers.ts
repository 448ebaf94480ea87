// Scaffolding for the local runtime tests: a temp directory with a config dir and an `app` link to the compiled
// test apps, `weft up` as a real child process, its status over the local API, and the CLI commands around it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RuntimeStatus, WorkloadStatus } from '../../src/runtime/status.js';
import { ROOT, run, sleep, WEFT } from '../helpers/mesh-processes.js';

export const FIXTURES = fileURLToPath(new URL('../../../test/fixtures/runtime/', import.meta.url));
/** The compiled test apps (dist/test/apps). */
export const APPS = fileURLToPath(new URL('../apps/', import.meta.url));

/** `<tmp>/config` (watched), `<tmp>/app` → dist/test/apps, `<tmp>/state`. */
export class RuntimeDir {
  readonly root = mkdtempSync(join(tmpdir(), 'weft-rt-'));
  readonly config = join(this.root, 'config');
  readonly state = join(this.root, 'state');
  constructor() {
    mkdirSync(this.config);
    symlinkSync(APPS, join(this.root, 'app'));
  }
  /** Copies fixture `name` into the config dir (as `as`). */
  fixture(name: string, as = name): void {
    writeFileSync(join(this.config, as), readFileSync(join(FIXTURES, name)));
  }
  write(name: string, text: string): void {
    writeFileSync(join(this.config, name), text);
  }
  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** `weft up -f <config> --state-dir <state>` in `dir.root`. */
export class UpProcess {
  proc: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  api = '';
  readonly exit: Promise<number | null>;
  /** Every app and sidecar pid seen in a status (to check that none is left behind). */
  readonly pids = new Set<number>();

  constructor(readonly dir: RuntimeDir) {
    this.proc = spawn(process.execPath, [WEFT, 'up', '-f', dir.config, '--state-dir', dir.state], { cwd: dir.root });
    this.proc.stdout.on('data', (d: Buffer) => (this.stdout += d.toString()));
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.exit = new Promise((r) => this.proc.once('exit', (code) => r(code)));
  }

  /** Waits for the API line. */
  async started(): Promise<void> {
    for (let i = 0; i < 600; i++) {
      const m = /runtime API (http:\/\/127\.0\.0\.1:\d+)/.exec(this.stdout);
      if (m) {
        this.api = m[1]!;
        return;
      }
      if (this.proc.exitCode !== null) throw new Error(`weft up exited with ${this.proc.exitCode}:\n${this.stdout}\n${this.stderr}`);
      await sleep(100);
    }
    throw new Error(`weft up did not start in 60 s:\n${this.stdout}\n${this.stderr}`);
  }

  async status(): Promise<RuntimeStatus> {
    const r = await fetch(`${this.api}/v1/status`);
    const s = (await r.json()) as RuntimeStatus;
    for (const w of s.workloads) {
      if (w.pid !== undefined) this.pids.add(w.pid);
      if (w.sidecarPid !== undefined) this.pids.add(w.sidecarPid);
    }
    return s;
  }

  /** Polls the status until `pred` holds (up to `seconds`); returns the status; throws with context otherwise. */
  async waitFor(what: string, pred: (s: RuntimeStatus) => boolean, seconds = 90): Promise<RuntimeStatus> {
    let last: RuntimeStatus | undefined;
    for (let i = 0; i < seconds * 5; i++) {
      last = await this.status();
      if (pred(last)) return last;
      await sleep(200);
    }
    const logs = (last?.workloads ?? [])
      .filter((w) => !w.ready)
      .map((w) => `--- ${w.name}-${w.replica} sidecar log (tail):\n${tail(join(this.dir.state, 'logs', `${w.name}-${w.replica}.sidecar.log`))}\n--- app log (tail):\n${tail(join(this.dir.state, 'logs', `${w.name}-${w.replica}.log`))}`)
      .join('\n');
    throw new Error(`timed out waiting for ${what}; status:\n${JSON.stringify(last?.workloads.map(brief), null, 2)}\nstdout:\n${this.stdout}\n${logs}`);
  }

  /** SIGTERM if still running, and wait (for cleanup in `after`). */
  async kill(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGTERM');
      await this.exit;
    }
  }
}

function tail(path: string, lines = 15): string {
  try {
    return readFileSync(path, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch (e) {
    return (e as Error).message;
  }
}

export function brief(w: WorkloadStatus): unknown {
  return { name: w.name, replica: w.replica, phase: w.phase, ready: w.ready, restarts: w.restarts, pid: w.pid, lastError: w.lastError };
}

export function replica(s: RuntimeStatus, name: string, index = 0): WorkloadStatus | undefined {
  return s.workloads.find((w) => w.name === name && w.replica === index);
}

export function isReady(s: RuntimeStatus, name: string, index = 0): boolean {
  return replica(s, name, index)?.ready === true;
}

/** GET on 127.0.0.1:port, JSON body (or throws with the text). */
export async function getJson<T>(port: number, path: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(20_000) });
  const text = await r.text();
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new Error(`GET ${path}: ${r.status} ${text}`);
  }
}

/** Runs `weft ARGS` (in `cwd`) and returns its exit status and output. */
export async function weft(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const r = await run(process.execPath, [WEFT, ...args]);
  return { status: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (up to 30 s) until none of `pids` is alive; returns those still alive. */
export async function waitGone(pids: Iterable<number>): Promise<number[]> {
  const list = [...pids];
  for (let i = 0; i < 150; i++) {
    const alive = list.filter(pidAlive);
    if (alive.length === 0) return [];
    await sleep(200);
  }
  return list.filter(pidAlive);
}

export { ROOT, sleep };
