/**
 * `/logging` (POST): lists the loggers and changes their levels, as Envoy's LogsHandler:
 *
 *   POST /logging                          → "active loggers:\n  <name>: <level>\n..."
 *   POST /logging?level=debug              → every logger at debug
 *   POST /logging?<name>=warning           → one logger
 *   POST /logging?paths=a:debug,b:error    → several
 *
 * Levels are Envoy's (spdlog) names: trace, debug, info, warning, error, critical, off — mapped onto pino's
 * trace, debug, info, warn, error, fatal, silent. Any object with a settable `level` (a pino logger) works.
 * Errors answer 400 with Envoy's message and usage text.
 */

/** What the handler needs of a logger (pino loggers fit). */
export interface LevelledLogger {
  level: string;
}

/** spdlog level names in order, as Envoy lists them. */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warning', 'error', 'critical', 'off'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const TO_PINO: Record<LogLevel, string> = { trace: 'trace', debug: 'debug', info: 'info', warning: 'warn', error: 'error', critical: 'fatal', off: 'silent' };
const FROM_PINO: Record<string, LogLevel> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warning', error: 'error', fatal: 'critical', silent: 'off' };

export function pinoLevelOf(level: LogLevel): string {
  return TO_PINO[level];
}

function parseLevel(s: string): LogLevel | undefined {
  return (LOG_LEVELS as readonly string[]).includes(s) ? (s as LogLevel) : undefined;
}

export interface LoggingResult {
  status: number;
  body: string;
}

export function handleLogging(loggers: Readonly<Record<string, LevelledLogger>>, q: URLSearchParams): LoggingResult {
  const params = [...q.entries()];
  let error: string | undefined;
  if (params.length > 0) error = change(loggers, params);
  let body = '';
  if (error !== undefined) {
    body += `error: ${error}\n\n`;
    body += 'usage: /logging?<name>=<level> (change single level)\n';
    body += 'usage: /logging?paths=name1:level1,name2:level2,... (change multiple levels)\n';
    body += 'usage: /logging?level=<level> (change all levels)\n';
    body += `levels: ${LOG_LEVELS.map((l) => `${l} `).join('')}\n`;
  }
  body += 'active loggers:\n';
  for (const name of Object.keys(loggers).sort()) body += `  ${name}: ${FROM_PINO[loggers[name]!.level] ?? loggers[name]!.level}\n`;
  body += '\n';
  return { status: error === undefined ? 200 : 400, body };
}

/** Applies the change; returns an error message or undefined. Nothing changes on error. */
function change(loggers: Readonly<Record<string, LevelledLogger>>, params: Array<[string, string]>): string | undefined {
  if (params.length !== 1) return 'invalid number of parameters';
  const [key, value] = params[0]!;
  if (key === 'level') {
    const level = parseLevel(value);
    if (!level) return 'unknown logger level';
    for (const l of Object.values(loggers)) l.level = TO_PINO[level];
    return undefined;
  }
  const changes = new Map<string, LogLevel>();
  if (key === 'paths') {
    for (const pair of value.split(',')) {
      const item = pair.trim();
      if (item === '') continue;
      const colon = item.indexOf(':');
      const name = colon < 0 ? item : item.slice(0, colon).trim();
      const lv = colon < 0 ? '' : item.slice(colon + 1).trim();
      if (name === '' || lv === '') return 'empty logger name or empty logger level';
      const level = parseLevel(lv);
      if (!level) return 'unknown logger level';
      changes.set(name, level);
    }
  } else {
    const level = parseLevel(value);
    if (!level) return 'unknown logger level';
    changes.set(key, level);
  }
  for (const name of changes.keys()) if (!Object.hasOwn(loggers, name)) return 'unknown logger name';
  for (const [name, level] of changes) loggers[name]!.level = TO_PINO[level];
  return undefined;
}
