/**
 * Processes of the proxy benchmark: every process it starts (nginx, HAProxy, weft, load generators, the echo server)
 * goes through `startProcess`, optionally pinned to one CPU with `taskset -c` (taskset execs the command, so the pid
 * is the command's own), and is stopped by `stopAll` (or `killAll` on the way out), so nothing outlives a run.
 * Resource usage is read from /proc for a whole process tree (nginx master + worker, a weft primary + its workers):
 * CPU seconds and peak RSS (each process's VmHWM) summed.
 */
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { procUsage } from '../controlplane/proc.js';

const children = new Set<ChildProcess>();

/** A started process with its output collected (for error messages and for parsing a load generator's report). */
export interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

export interface StartOptions {
  /** CPU to pin to with `taskset -c` (undefined: not pinned). */
  cpu?: string | undefined;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

let tasksetAvailable: boolean | undefined;

/** Whether `taskset` runs here (util-linux); without it processes are not pinned and the report says so. */
export function canPin(): boolean {
  if (tasksetAvailable === undefined) {
    try {
      tasksetAvailable = readdirSync('/usr/bin').includes('taskset') || readdirSync('/bin').includes('taskset');
    } catch {
      tasksetAvailable = false;
    }
  }
  return tasksetAvailable;
}

export function startProcess(name: string, cmd: string, args: string[], opts: StartOptions = {}): Proc {
  const pinned = opts.cpu !== undefined && canPin();
  const child = spawn(pinned ? 'taskset' : cmd, pinned ? ['-c', opts.cpu!, cmd, ...args] : args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  const p: Proc = {
    name,
    child,
    pid: child.pid ?? -1,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => {
      child.once('exit', (code) => {
        children.delete(child);
        resolve(code);
      });
      child.once('error', (e) => {
        children.delete(child);
        p.stderr += `${name}: ${e.message}\n`;
        resolve(-1);
      });
    }),
  };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (p.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    // Keep the tail only: a chatty process must not grow the harness's memory.
    p.stderr = (p.stderr + d).slice(-20_000);
  });
  return p;
}

/** Runs a command to completion; resolves with its output (rejects on a non-zero exit with the output). */
export async function runToEnd(name: string, cmd: string, args: string[], opts: StartOptions = {}): Promise<Proc> {
  const p = startProcess(name, cmd, args, opts);
  const code = await p.exited;
  if (code !== 0) throw new Error(`${name} exited with ${code}:\n${`${p.stdout}\n${p.stderr}`.trim().split('\n').slice(-15).join('\n')}`);
  return p;
}

function running(c: ChildProcess): boolean {
  return c.exitCode === null && c.signalCode === null && c.pid !== undefined;
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stopProcess(p: Proc | undefined, graceMs = 5000): Promise<void> {
  if (!p || !running(p.child)) return;
  p.child.kill('SIGTERM');
  const t = setTimeout(() => running(p.child) && p.child.kill('SIGKILL'), graceMs);
  await p.exited;
  clearTimeout(t);
}

/** Kills every process started here that still runs (used on the way out). */
export function killAll(): void {
  for (const c of children) if (running(c)) c.kill('SIGKILL');
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** A TCP port free on 127.0.0.1 at the time of asking. */
export async function freePort(): Promise<number> {
  for (;;) {
    const s = createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const port = (s.address() as AddressInfo).port;
    await new Promise<void>((r) => s.close(() => r()));
    // The kernel may hand out a port again once it is closed: never give the same one twice in a run.
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

const handedOut = new Set<number>();

/** Waits until 127.0.0.1:port accepts connections (or the process exits, or `timeoutMs` passes). */
export async function waitPort(port: number, p: Proc, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!running(p.child)) throw new Error(`${p.name} exited before listening on ${port}:\n${p.stderr.trim()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${p.name} not listening on ${port} after ${timeoutMs} ms:\n${p.stderr.trim()}`);
}

/** The pid and its descendants (from /proc/<pid>/task/<tid>/children). */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue;
    }
    for (const t of tasks) {
      try {
        for (const c of readFileSync(`/proc/${out[i]}/task/${t}/children`, 'utf8').trim().split(/\s+/)) if (c) out.push(Number(c));
      } catch {
        // task gone
      }
    }
  }
  return out;
}

/**
 * Moves a running process tree — every thread of every process — to the CPU list `cpus` (`taskset -a -p -c`), for
 * the fixed-rate case's placements. Processes gone meanwhile are skipped.
 */
export function pinTree(pid: number, cpus: string): void {
  if (!canPin()) return;
  for (const p of processTree(pid)) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus, String(p)], { stdio: 'ignore' });
    } catch {
      // exited meanwhile
    }
  }
}

/** Usage of a process tree: CPU seconds, RSS now and peak RSS (VmHWM), each summed over its processes. */
export interface TreeUsage {
  cpuSeconds: number;
  rssBytes: number;
  peakRssBytes: number;
  processes: number;
}

export function treeUsage(pid: number): TreeUsage | undefined {
  const pids = processTree(pid);
  let cpu = 0;
  let rss = 0;
  let peak = 0;
  let n = 0;
  for (const p of pids) {
    const u = procUsage(p);
    if (!u) continue;
    n++;
    cpu += u.cpuSeconds;
    rss += u.rssBytes;
    peak += u.peakRssBytes;
  }
  return n ? { cpuSeconds: cpu, rssBytes: rss, peakRssBytes: peak, processes: n } : undefined;
}
