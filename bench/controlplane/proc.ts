/**
 * Resource usage of another process from Linux /proc: CPU time (utime + stime of /proc/<pid>/stat, all threads)
 * and memory (VmRSS, and the kernel's own peak VmHWM, of /proc/<pid>/status). Elsewhere the figures are absent.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** The kernel's clock ticks per second (USER_HZ, `getconf CLK_TCK`; 100 on practically every Linux). */
function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

export interface ProcUsage {
  /** User + system CPU seconds so far. */
  cpuSeconds: number;
  userSeconds: number;
  systemSeconds: number;
  /** Resident set size now, bytes. */
  rssBytes: number;
  /** Peak resident set size (VmHWM), bytes. */
  peakRssBytes: number;
}

/** Reads a process's usage; undefined when /proc has no such process (or no /proc). */
export function procUsage(pid: number): ProcUsage | undefined {
  let stat: string;
  let status: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  // Fields after the command name (which is in parentheses and may contain spaces): state is field 3,
  // utime field 14, stime field 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const hz = clockTicks();
  const user = Number(rest[11]) / hz;
  const system = Number(rest[12]) / hz;
  const kb = (key: string): number => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { cpuSeconds: user + system, userSeconds: user, systemSeconds: system, rssBytes: kb('VmRSS'), peakRssBytes: kb('VmHWM') };
}

/** Samples a process periodically, keeping the peak RSS seen (VmHWM covers it too) and the last reading. */
export class ProcSampler {
  last?: ProcUsage;
  peakRss = 0;
  private timer?: NodeJS.Timeout;

  constructor(readonly pid: number, private readonly intervalMs = 100) {}

  start(): this {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
    return this;
  }

  sample(): ProcUsage | undefined {
    const u = procUsage(this.pid);
    if (u) {
      this.last = u;
      this.peakRss = Math.max(this.peakRss, u.rssBytes, u.peakRssBytes);
    }
    return u;
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }
}
