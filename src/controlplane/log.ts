/**
 * Structured logging for the control plane (pino, one JSON object per line). `weft control-plane` writes its log
 * to stderr, so stdout carries only what the command prints for people (where it listens).
 */
import { pino } from 'pino';
import type { DestinationStream, Level, Logger } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS: readonly Level[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export interface LoggerOptions {
  level?: Level | 'silent';
  /** Where lines go (default: stderr, written synchronously so nothing is lost at exit). */
  stream?: DestinationStream;
}

export function createLogger(opts: LoggerOptions = {}): Logger {
  const stream = opts.stream ?? pino.destination({ dest: 2, sync: true });
  return pino({ level: opts.level ?? 'info', base: { component: 'control-plane' }, timestamp: pino.stdTimeFunctions.isoTime }, stream);
}

/** A destination that keeps every line in memory, parsed (for tests and for embedding). */
export class MemoryLogStream implements DestinationStream {
  readonly lines: Array<Record<string, unknown>> = [];
  write(line: string): void {
    for (const l of line.split('\n')) if (l.trim()) this.lines.push(JSON.parse(l) as Record<string, unknown>);
  }
  /** Lines whose `msg` equals `msg`. */
  find(msg: string): Array<Record<string, unknown>> {
    return this.lines.filter((l) => l.msg === msg);
  }
}

/** A logger that writes nothing. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
