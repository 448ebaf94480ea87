/**
 * One child process of the local runtime (an app or a sidecar): spawned detached in its own process group, its
 * stdout and stderr appended to a LogFile, and stopped by signalling the whole group (SIGTERM, then SIGKILL after a
 * grace period), so that whatever the process started goes too — as the kubelet stops every container of a pod.
 *
 * A ProcessTable keeps the running children in `<stateDir>/processes.json` (pid and start time), so that the
 * children of a runtime that was killed with SIGKILL, and could not stop them, are stopped by the next `weft up`
 * on that state dir (`reapLeftovers`); the start time tells a leftover from an unrelated process that reuses its pid.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { LogFile } from './logs.js';

export interface ExitInfo {
  /** Exit code, or null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The spawn error (ENOENT: command not found, EACCES, ...) when the process never ran. */
  error?: NodeJS.ErrnoException;
  /** How long it ran, in ms. */
  ranMs: number;
}

export interface SpawnSpec {
  command: string;
  args: string[];
  cwd: string;
  env: NodeJS.ProcessEnv;
  log: LogFile;
  /** Where the running process is recorded. */
  table?: ProcessTable;
}

/** A process's start time (field 22 of /proc/PID/stat, in clock ticks since boot); undefined without /proc. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface TableEntry {
  pid: number;
  start?: string;
  what: string;
}

/** The running children of one runtime, mirrored to a JSON file. */
export class ProcessTable {
  private readonly live = new Map<number, TableEntry>();
  constructor(readonly path: string) {}

  add(pid: number, what: string): void {
    const e: TableEntry = { pid, what };
    const st = startTime(pid);
    if (st !== undefined) e.start = st;
    this.live.set(pid, e);
    this.save();
  }

  remove(pid: number): void {
    if (this.live.delete(pid)) this.save();
  }

  private save(): void {
    try {
      if (this.live.size === 0) rmSync(this.path, { force: true });
      else writeFileSync(this.path, `${JSON.stringify([...this.live.values()], null, 2)}\n`);
    } catch {
      // the state dir went away: nothing to keep
    }
  }
}

/**
 * Stops (SIGKILL to their process groups) the processes a dead runtime left in `path`, those still running with the
 * recorded start time; removes the file. Returns what was stopped.
 */
export function reapLeftovers(path: string): string[] {
  let entries: TableEntry[];
  try {
    entries = JSON.parse(readFileSync(path, 'utf8')) as TableEntry[];
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const e of Array.isArray(entries) ? entries : []) {
    if (typeof e?.pid !== 'number' || e.start === undefined || startTime(e.pid) !== e.start) continue;
    killGroup(e.pid, 'SIGKILL');
    reaped.push(`pid ${e.pid} (${e.what})`);
  }
  rmSync(path, { force: true });
  return reaped;
}

/** Signals the process group `pid` (ignores a group that is gone). */
function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // ESRCH: the group is gone
  }
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly started = Date.now();
  /** Resolves once the process has exited (or failed to spawn), with what happened. */
  readonly exited: Promise<ExitInfo>;
  private done = false;

  constructor(spec: SpawnSpec) {
    const child = spawn(spec.command, spec.args, { cwd: spec.cwd, env: spec.env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    const what = [spec.command, ...spec.args].join(' ');
    child.once('spawn', () => {
      if (child.pid !== undefined && !this.done) spec.table?.add(child.pid, what);
    });
    child.stdout?.on('data', (d: Buffer) => spec.log.write(d));
    child.stderr?.on('data', (d: Buffer) => spec.log.write(d));
    this.exited = new Promise<ExitInfo>((resolve) => {
      child.once('error', (e: NodeJS.ErrnoException) => {
        // 'error' without a pid: the spawn failed and no 'exit' follows. With a pid, 'exit' (or 'close') comes.
        if (child.pid === undefined && !this.done) {
          this.done = true;
          resolve({ code: null, signal: null, error: e, ranMs: Date.now() - this.started });
        }
      });
      child.once('exit', (code, signal) => {
        if (this.done) return;
        this.done = true;
        // Whatever the process left in its group goes with it.
        if (child.pid !== undefined) {
          killGroup(child.pid, 'SIGKILL');
          spec.table?.remove(child.pid);
        }
        resolve({ code, signal, ranMs: Date.now() - this.started });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return !this.done;
  }

  /** SIGTERM to the group, SIGKILL to the group after `graceMs`; resolves once the process has exited. */
  async stop(graceMs: number): Promise<ExitInfo> {
    const pid = this.child.pid;
    if (this.done || pid === undefined) return this.exited;
    killGroup(pid, 'SIGTERM');
    const t = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
    const info = await this.exited;
    clearTimeout(t);
    return info;
  }
}

/** "exited with code 1 after 0.1 s" / "was killed by SIGKILL after 12.3 s". */
export function describeExit(e: ExitInfo): string {
  const after = `after ${(e.ranMs / 1000).toFixed(1)} s`;
  if (e.signal) return `was killed by ${e.signal} ${after}`;
  return `exited with code ${e.code} ${after}`;
}
