/**
 * Log files of the local runtime: every LocalWorkload replica's app output goes to `<stateDir>/logs/<name>-<i>.log`
 * and its sidecar's to `<name>-<i>.sidecar.log`. A file is capped: past `maxBytes` it is renamed to `<file>.1`
 * (replacing the previous one) and a new file starts, so a replica keeps at most twice the cap on disk.
 * The runtime's own notes about a process (started, exited with code N, ...) are written into the same file as
 * lines starting with `[weft] `. `weft logs` reads and follows these files (`followLog`).
 */
import { closeSync, existsSync, openSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;

export function logsDir(stateDir: string): string {
  return join(stateDir, 'logs');
}

/** The app's (or, with `sidecar`, the sidecar's) log file of replica `replica` of workload `name`. */
export function logFile(stateDir: string, name: string, replica: number, sidecar = false): string {
  return join(logsDir(stateDir), `${name}-${replica}${sidecar ? '.sidecar' : ''}.log`);
}

/** An append-only, size-capped log file. Writes are synchronous (ordered, and nothing is lost on exit). */
export class LogFile {
  private fd: number | undefined;
  private size = 0;

  constructor(
    readonly path: string,
    private readonly maxBytes = DEFAULT_LOG_MAX_BYTES,
  ) {}

  private open(): number {
    if (this.fd === undefined) {
      this.fd = openSync(this.path, 'a');
      this.size = statSync(this.path).size;
    }
    return this.fd;
  }

  write(chunk: Buffer | string): void {
    try {
      let fd = this.open();
      if (this.size > 0 && this.size + chunk.length > this.maxBytes) {
        closeSync(fd);
        this.fd = undefined;
        renameSync(this.path, `${this.path}.1`);
        fd = this.open();
      }
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      writeSync(fd, buf);
      this.size += buf.length;
    } catch {
      // A log that cannot be written (disk full, state dir removed) must not take the runtime down.
    }
  }

  /** A `[weft] <ISO time> message` line. */
  note(message: string): void {
    this.write(`[weft] ${new Date().toISOString()} ${message}\n`);
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}

/**
 * Writes the log at `path` to `out`, then, with `follow`, what is appended to it until `signal` aborts (polling
 * every 200 ms; a file that shrank or was replaced by rotation is read again from its start).
 */
export async function followLog(path: string, out: (b: Buffer) => void, opts: { follow: boolean; signal?: AbortSignal }): Promise<void> {
  let pos = 0;
  let ino = -1;
  const buf = Buffer.allocUnsafe(64 * 1024);
  const drain = () => {
    if (!existsSync(path)) return;
    const st = statSync(path);
    if (st.ino !== ino || st.size < pos) {
      ino = st.ino;
      pos = 0;
    }
    if (st.size === pos) return;
    const fd = openSync(path, 'r');
    try {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, pos);
        if (n <= 0) break;
        pos += n;
        out(Buffer.from(buf.subarray(0, n)));
      }
    } finally {
      closeSync(fd);
    }
  };
  drain();
  while (opts.follow && !opts.signal?.aborted) {
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 200);
      opts.signal?.addEventListener('abort', () => {
        clearTimeout(t);
        resolve();
      }, { once: true });
    });
    drain();
  }
}
