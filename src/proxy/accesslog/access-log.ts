/**
 * Access loggers (the `access_log` list of an HTTP connection manager or a tcp_proxy), compiled once per listener
 * update; a stream or TCP session calls `log` once when it has ended.
 *
 *   const logs = compileAccessLogs(hcm.accessLog, { listener, field: `${field}.access_log` });   // ConfigError → NACK
 *   logs?.log(req, resp, vars, route);     // at stream end (accesslog/record.ts), or with an empty request for TCP
 *
 * Supported loggers (by the type of typed_config; `name` is free text, as in Envoy):
 * - envoy.extensions.access_loggers.file.v3.FileAccessLog: `path` (`/dev/stdout` and `/dev/stderr` are the proxy's
 *   own streams), `log_format` (SubstitutionFormatString: text_format, text_format_source.inline_string,
 *   json_format; omit_empty_values) or the deprecated `format` / `json_format` / `typed_json_format` fields;
 * - envoy.extensions.access_loggers.stream.v3.StdoutAccessLog / StderrAccessLog: `log_format`.
 * Without a format Envoy's default applies (DEFAULT_FORMAT). Text formats print an unknown value as `-` (empty with
 * omit_empty_values); JSON formats write one object per line, a value that is one command keeping its type (numbers,
 * null when unknown; omitted with omit_empty_values), as Envoy's json_format. Formats are compiled by the one Envoy
 * `%COMMAND%` formatter (http/router/formatter.ts). Lines go to buffered, non-blocking sinks (sink.ts).
 * Filters: `status_code_filter` (EQ / GE / LE against the response code; 0 when there was no response, and for TCP)
 * decides whether a line is written. Not supported, each a ConfigError naming the field: other filters, other
 * logger types (gRPC access log services, OpenTelemetry logs), formatter extensions (`formatters`),
 * text_format_source from a file or variable.
 */
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import type { AccessLog, AccessLogFilter } from '../../xds/gen/envoy/config/accesslog/v3/accesslog_pb.js';
import { ComparisonFilter_Op } from '../../xds/gen/envoy/config/accesslog/v3/accesslog_pb.js';
import type { SubstitutionFormatString } from '../../xds/gen/envoy/config/core/v3/substitution_format_string_pb.js';
import { FileAccessLogSchema } from '../../xds/gen/envoy/extensions/access_loggers/file/v3/file_pb.js';
import { StderrAccessLogSchema, StdoutAccessLogSchema } from '../../xds/gen/envoy/extensions/access_loggers/stream/v3/stream_pb.js';
import { typeNameOf, unpack } from '../../xds/index.js';
import { ConfigError } from '../config-error.js';
import type { RequestHead, ResponseHead } from '../http/headers.js';
import { parseFormatter, type FormatRoute, type Formatter, type FormatVars } from '../http/router/formatter.js';
import { logSink, type LogSink } from './sink.js';

/** Envoy's default access log format (used when a logger sets none). */
export const DEFAULT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" ' +
  '"%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" "%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%"\n';

const FILE_TYPE = 'envoy.extensions.access_loggers.file.v3.FileAccessLog';
const STDOUT_TYPE = 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog';
const STDERR_TYPE = 'envoy.extensions.access_loggers.stream.v3.StderrAccessLog';

export interface AccessLogContext {
  /** The listener's name and the field path of the access_log list (for error messages). */
  listener: string;
  field: string;
}

/** A request head with nothing in it: what a TCP session formats `%REQ(...)%` / `%PROTOCOL%` against (all `-`). */
export const NO_REQUEST: RequestHead = Object.freeze({ method: '', path: '', authority: '', scheme: '', httpVersion: '', headers: [] }) as unknown as RequestHead;

/** A status_code_filter: the comparison and its value. */
interface CodeFilter {
  op: ComparisonFilter_Op;
  value: number;
}

/** One compiled access logger. */
class Logger {
  /** Set after construction by compileOne when the access log has a filter. */
  filter: CodeFilter | null = null;

  constructor(
    private readonly sink: LogSink,
    private readonly text: Formatter | null,
    private readonly json: ReadonlyArray<readonly [string, Formatter]> | null,
    private readonly omitEmpty: boolean,
  ) {}

  log(req: RequestHead, resp: ResponseHead | null, vars: FormatVars, route: FormatRoute): void {
    const f = this.filter;
    if (f !== null) {
      const code = resp !== null ? resp.status : 0;
      if (f.op === ComparisonFilter_Op.EQ ? code !== f.value : f.op === ComparisonFilter_Op.GE ? code < f.value : code > f.value) return;
    }
    if (this.text !== null) {
      this.sink.write(this.text.format(req, resp, vars, route));
      return;
    }
    const obj: Record<string, string | number | null> = {};
    for (const [k, f] of this.json!) {
      const v = f.formatValue(req, resp, vars, route);
      if (this.omitEmpty && (v === null || v === '')) continue;
      obj[k] = v;
    }
    this.sink.write(JSON.stringify(obj) + '\n');
  }
}

/** The access loggers of one connection manager or TCP proxy. */
export class AccessLogs {
  constructor(private readonly loggers: readonly Logger[]) {}

  log(req: RequestHead, resp: ResponseHead | null, vars: FormatVars, route: FormatRoute): void {
    for (let i = 0; i < this.loggers.length; i++) this.loggers[i]!.log(req, resp, vars, route);
  }
}

/** Compiles an `access_log` list; null when it is empty (nothing to do per stream). Throws ConfigError. */
export function compileAccessLogs(logs: readonly AccessLog[], ctx: AccessLogContext): AccessLogs | null {
  if (logs.length === 0) return null;
  return new AccessLogs(logs.map((l, i) => compileOne(l, `${ctx.field}[${i}]`, ctx.listener)));
}

function compileOne(l: AccessLog, field: string, listener: string): Logger {
  const fc = {
    fail(f: string, detail: string): never {
      throw new ConfigError(listener, f, detail, 'listener');
    },
  };
  const filter = l.filter !== undefined ? compileFilter(l.filter, `${field}.filter`, fc) : null;
  const logger = compileLogger(l, field, fc);
  logger.filter = filter;
  return logger;
}

function compileFilter(f: AccessLogFilter, field: string, fc: Fail): CodeFilter {
  const s = f.filterSpecifier;
  if (s.case !== 'statusCodeFilter') return fc.fail(field, `${s.case ?? 'an empty'} filter is not supported (only status_code_filter)`);
  const c = s.value.comparison;
  if (c === undefined || c.value === undefined) return fc.fail(`${field}.status_code_filter.comparison`, 'a comparison with a value is required');
  return { op: c.op, value: c.value.defaultValue };
}

function compileLogger(l: AccessLog, field: string, fc: Fail): Logger {
  if (l.configType.case !== 'typedConfig') return fc.fail(`${field}.typed_config`, 'is required');
  const any = l.configType.value;
  const type = typeNameOf(any.typeUrl);
  const tf = `${field}.typed_config`;
  const decode = <T>(f: () => T): T => {
    try {
      return f();
    } catch (e) {
      return fc.fail(tf, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  if (type === FILE_TYPE) {
    const p = decode(() => unpack(FileAccessLogSchema, any));
    if (p.path === '') fc.fail(`${tf}.path`, 'must not be empty');
    const f = p.accessLogFormat;
    if (f.case === 'logFormat') return formatted(logSink(p.path), f.value, `${tf}.log_format`, fc);
    if (f.case === 'format') return textLogger(logSink(p.path), f.value || DEFAULT_FORMAT, `${tf}.format`, false, fc);
    if (f.case === 'jsonFormat' || f.case === 'typedJsonFormat') return jsonLogger(logSink(p.path), f.value as JsonObject, `${tf}.${f.case === 'jsonFormat' ? 'json_format' : 'typed_json_format'}`, false, fc);
    return textLogger(logSink(p.path), DEFAULT_FORMAT, tf, false, fc);
  }
  if (type === STDOUT_TYPE || type === STDERR_TYPE) {
    const p = decode(() => unpack(type === STDOUT_TYPE ? StdoutAccessLogSchema : StderrAccessLogSchema, any));
    const sink = logSink(type === STDOUT_TYPE ? '/dev/stdout' : '/dev/stderr');
    if (p.accessLogFormat.case === 'logFormat') return formatted(sink, p.accessLogFormat.value, `${tf}.log_format`, fc);
    return textLogger(sink, DEFAULT_FORMAT, tf, false, fc);
  }
  return fc.fail(tf, `access logger ${l.name || type} is not supported (only ${FILE_TYPE}, ${STDOUT_TYPE} and ${STDERR_TYPE})`);
}

type Fail = { fail(field: string, detail: string): never };

function formatted(sink: LogSink, s: SubstitutionFormatString, field: string, fc: Fail): Logger {
  if (s.formatters.length > 0) fc.fail(`${field}.formatters`, 'formatter extensions are not supported');
  if (s.contentType !== '') fc.fail(`${field}.content_type`, 'is only used by local replies');
  const f = s.format;
  switch (f.case) {
    case 'textFormat':
      return textLogger(sink, f.value, `${field}.text_format`, s.omitEmptyValues, fc);
    case 'textFormatSource': {
      const src = f.value.specifier;
      if (src.case !== 'inlineString') return fc.fail(`${field}.text_format_source`, `only inline_string is supported (got ${src.case ?? 'none'})`);
      return textLogger(sink, src.value, `${field}.text_format_source.inline_string`, s.omitEmptyValues, fc);
    }
    case 'jsonFormat':
      return jsonLogger(sink, f.value, `${field}.json_format`, s.omitEmptyValues, fc);
    default:
      return fc.fail(field, 'one of text_format, text_format_source or json_format is required');
  }
}

function textLogger(sink: LogSink, text: string, field: string, omitEmpty: boolean, fc: Fail): Logger {
  // omit_empty_values: an unknown value prints as nothing rather than `-`.
  return new Logger(sink, parseFormatter(fc, field, text, { accessLog: omitEmpty ? 'omit-empty' : true }), null, omitEmpty);
}

function jsonLogger(sink: LogSink, obj: JsonObject, field: string, omitEmpty: boolean, fc: Fail): Logger {
  const entries: Array<readonly [string, Formatter]> = [];
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v !== 'string') fc.fail(`${field}.${k}`, `only string values (format strings) are supported, got ${describe(v)}`);
    entries.push([k, parseFormatter(fc, `${field}.${k}`, v as string, { accessLog: true })]);
  }
  if (entries.length === 0) fc.fail(field, 'must have at least one field');
  return new Logger(sink, null, entries, omitEmpty);
}

function describe(v: JsonValue | undefined): string {
  return v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v;
}
