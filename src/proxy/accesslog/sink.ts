/**
 * Where access log lines go: a file (appended), or the proxy's stdout / stderr. One sink per path, shared by every
 * access logger that names it (listener updates recompile loggers, the sink and its buffer stay).
 *
 *   const sink = logSink('/var/log/weft/access.log');   // or '/dev/stdout', '/dev/stderr'
 *   sink.write(line);          // never blocks: appended to the buffer, written on the next flush
 *   await flushLogSinks();     // shutdown: everything buffered is written
 *
 * As Envoy's access log manager: lines are buffered and written asynchronously, at the latest every second
 * (Envoy's file_flush_interval default) or as soon as 64 KiB are waiting. The request path never waits for the disk
 * or a slow pipe: when more than MAX_PENDING_BYTES are waiting to be written (a stalled reader of stdout, a full
 * disk) new lines are dropped and counted (`dropped`), rather than letting memory grow without bound. A file that
 * cannot be opened or written is reported once on stderr (the path only); lines for it are dropped and counted.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

/** Envoy's access log flush interval default (1 s) and the buffer size that triggers an early flush. */
export const FLUSH_INTERVAL_MS = 1000;
const FLUSH_BYTES = 64 * 1024;
/** Bytes handed to the stream but not yet written, above which new lines are dropped. */
export const MAX_PENDING_BYTES = 8 * 1024 * 1024;

export class LogSink {
  private buf: string[] = [];
  private bufBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private out: Writable | null = null;
  private failed = false;
  /** Lines dropped because the output could not keep up or failed. */
  dropped = 0;
  /** Lines handed to the output. */
  written = 0;

  constructor(readonly path: string) {}

  private output(): Writable | null {
    if (this.out !== null || this.failed) return this.out;
    if (this.path === '/dev/stdout') this.out = process.stdout;
    else if (this.path === '/dev/stderr') this.out = process.stderr;
    else {
      const ws: WriteStream = createWriteStream(this.path, { flags: 'a' });
      ws.on('error', (e) => {
        if (!this.failed) process.stderr.write(`weft: access log ${this.path} cannot be written: ${(e as NodeJS.ErrnoException).code ?? e.message}\n`);
        this.failed = true;
        this.out = null;
      });
      this.out = ws;
    }
    return this.out;
  }

  write(line: string): void {
    if (this.failed) {
      this.dropped++;
      return;
    }
    this.buf.push(line);
    this.bufBytes += line.length;
    if (this.bufBytes >= FLUSH_BYTES) this.flush();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
      this.timer.unref();
    }
  }

  /** Hands the buffered lines to the output (asynchronous write). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.buf.length === 0) return;
    const lines = this.buf;
    this.buf = [];
    this.bufBytes = 0;
    const out = this.output();
    if (out === null || out.writableLength > MAX_PENDING_BYTES) {
      this.dropped += lines.length;
      return;
    }
    this.written += lines.length;
    out.write(lines.join(''));
  }

  /** Flushes and waits until the output has taken the bytes (files: closed). */
  async close(): Promise<void> {
    this.flush();
    const out = this.out;
    if (out === null) return;
    if (out === process.stdout || out === process.stderr) {
      if (out.writableLength > 0) await new Promise<void>((r) => out.write('', () => r()));
      return;
    }
    this.out = null;
    await new Promise<void>((r) => (out as WriteStream).end(() => r()));
  }
}

const sinks = new Map<string, LogSink>();

/** The sink of a path (created on first use, then shared). */
export function logSink(path: string): LogSink {
  let s = sinks.get(path);
  if (s === undefined) sinks.set(path, (s = new LogSink(path)));
  return s;
}

/** Writes out every buffered line (proxy shutdown). */
export async function flushLogSinks(): Promise<void> {
  const all = [...sinks.values()];
  sinks.clear();
  await Promise.all(all.map((s) => s.close()));
}
