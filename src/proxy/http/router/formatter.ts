/**
 * Header value templates: Envoy's substitution format (the access-log command operators) as used in
 * request/response `headers_to_add`. A template is literal text with `%%` for a percent sign and commands
 * `%COMMAND%`, `%COMMAND(arg)%`, `%COMMAND(arg):N%` (N = maximum length). Values that are not known when the
 * header is written (for example %UPSTREAM_REMOTE_ADDRESS% before an upstream host is chosen) are empty, as Envoy
 * formats header values ("unknown header values are replaced with the empty string"). Templates are parsed once at
 * config time; an unknown or malformed command is a ConfigError. Supported commands:
 *
 *   %REQ(name?alt):N%  %RESP(name?alt):N%  request / response header (first value; pseudo-headers allowed)
 *   %PROTOCOL%  %START_TIME%  %START_TIME(strftime + %s %f %1f..%9f)%  %HOSTNAME%  %ENVIRONMENT(VAR):N%
 *   %DOWNSTREAM_REMOTE_ADDRESS%  %DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%  %DOWNSTREAM_REMOTE_PORT%
 *   %DOWNSTREAM_DIRECT_REMOTE_ADDRESS%  %DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%  %DOWNSTREAM_DIRECT_REMOTE_PORT%
 *   %DOWNSTREAM_LOCAL_ADDRESS%  %DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%  %DOWNSTREAM_LOCAL_PORT%
 *   %UPSTREAM_REMOTE_ADDRESS%  %UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%  %UPSTREAM_REMOTE_PORT%  %UPSTREAM_HOST%
 *   %UPSTREAM_LOCAL_ADDRESS%  %UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT%  %UPSTREAM_LOCAL_PORT%  %UPSTREAM_CLUSTER%
 *   %REQUESTED_SERVER_NAME%  %ROUTE_NAME%  %RESPONSE_CODE%  %RESPONSE_FLAGS%  %CONNECTION_ID%
 *   %DOWNSTREAM_PEER_URI_SAN%  %DOWNSTREAM_LOCAL_URI_SAN%  %DOWNSTREAM_PEER_SUBJECT%  %DOWNSTREAM_LOCAL_SUBJECT%
 *   %DOWNSTREAM_TLS_VERSION%  %DOWNSTREAM_PEER_FINGERPRINT_256%
 *
 * The same formatter compiles access log formats (src/proxy/accesslog) with `{ accessLog: true }`: that mode adds
 * the commands only known once a stream has ended (%DURATION%, %REQUEST_DURATION%, %RESPONSE_DURATION%,
 * %BYTES_RECEIVED%, %BYTES_SENT%, %RESPONSE_CODE_DETAILS%, %CONNECTION_TERMINATION_DETAILS%,
 * %UPSTREAM_TRANSPORT_FAILURE_REASON%, %UPSTREAM_CLUSTER_RAW%, %UPSTREAM_REQUEST_ATTEMPT_COUNT%) and prints an
 * unknown value as `-` (Envoy's access log text format) instead of the empty string. `formatValue` gives the typed
 * value of a template that is one command (a number for codes, sizes and durations, null when unknown), which is
 * what Envoy's json_format writes.
 */
import { hostname as osHostname } from 'node:os';
import type { RequestHead, ResponseHead } from '../headers.js';
import { asciiLower } from './util.js';
import type { CompileContext } from './util.js';
import { listHeaderFirst, pseudoOf, PSEUDO_NONE, PSEUDO_STATUS, requestHeaderFirst } from './match.js';

/**
 * What the proxy knows about the stream when it writes headers. Every field is optional: an unknown value
 * formats as the empty string. Addresses are IPs (v4 or v6, no brackets) with separate ports.
 */
export interface FormatVars {
  downstreamRemoteAddress?: string;
  downstreamRemotePort?: number;
  downstreamDirectRemoteAddress?: string;
  downstreamDirectRemotePort?: number;
  downstreamLocalAddress?: string;
  downstreamLocalPort?: number;
  upstreamRemoteAddress?: string;
  upstreamRemotePort?: number;
  upstreamLocalAddress?: string;
  upstreamLocalPort?: number;
  /** Defaults to the decision's cluster. */
  upstreamCluster?: string;
  requestedServerName?: string;
  /** Request start, milliseconds since the epoch (fractions allowed); defaults to now. */
  startTimeMs?: number;
  /** Response code before a response head exists (Envoy prints 0 when none). */
  responseCode?: number;
  responseFlags?: string;
  connectionId?: number;
  downstreamPeerUriSan?: string;
  downstreamLocalUriSan?: string;
  downstreamPeerSubject?: string;
  downstreamLocalSubject?: string;
  downstreamTlsVersion?: string;
  downstreamPeerFingerprint256?: string;
  // Known once the stream has ended (access logs only).
  /** Milliseconds from the start to the end of the stream. */
  durationMs?: number;
  /** Milliseconds from the start until the request's last byte / the response's first byte. */
  requestDurationMs?: number;
  responseDurationMs?: number;
  /** Body bytes received from / sent to the downstream (TCP: all bytes). */
  bytesReceived?: number;
  bytesSent?: number;
  responseCodeDetails?: string;
  connectionTerminationDetails?: string;
  upstreamTransportFailureReason?: string;
  upstreamRequestAttemptCount?: number;
}

/** What a template may read of the route decision. */
export interface FormatRoute {
  readonly routeName: string;
  readonly cluster: string;
}

const EMPTY_VARS: FormatVars = Object.freeze({});

const enum Op {
  Req,
  Resp,
  Protocol,
  StartTime,
  Constant,
  RemoteAddr,
  RemoteAddrNoPort,
  RemotePort,
  DirectRemoteAddr,
  DirectRemoteAddrNoPort,
  DirectRemotePort,
  LocalAddr,
  LocalAddrNoPort,
  LocalPort,
  UpstreamAddr,
  UpstreamAddrNoPort,
  UpstreamPort,
  UpstreamLocalAddr,
  UpstreamLocalAddrNoPort,
  UpstreamLocalPort,
  UpstreamCluster,
  Sni,
  RouteName,
  ResponseCode,
  ResponseFlags,
  ConnectionId,
  PeerUriSan,
  LocalUriSan,
  PeerSubject,
  LocalSubject,
  TlsVersion,
  PeerFingerprint256,
  // Access logs only.
  Duration,
  RequestDuration,
  ResponseDuration,
  BytesReceived,
  BytesSent,
  ResponseCodeDetails,
  ConnectionTerminationDetails,
  UpstreamTransportFailureReason,
  UpstreamRequestAttemptCount,
}

/** Commands that take no argument and no length. */
const SIMPLE: Readonly<Record<string, Op>> = {
  PROTOCOL: Op.Protocol,
  DOWNSTREAM_REMOTE_ADDRESS: Op.RemoteAddr,
  DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: Op.RemoteAddrNoPort,
  DOWNSTREAM_REMOTE_PORT: Op.RemotePort,
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS: Op.DirectRemoteAddr,
  DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT: Op.DirectRemoteAddrNoPort,
  DOWNSTREAM_DIRECT_REMOTE_PORT: Op.DirectRemotePort,
  DOWNSTREAM_LOCAL_ADDRESS: Op.LocalAddr,
  DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: Op.LocalAddrNoPort,
  DOWNSTREAM_LOCAL_PORT: Op.LocalPort,
  UPSTREAM_REMOTE_ADDRESS: Op.UpstreamAddr,
  UPSTREAM_HOST: Op.UpstreamAddr,
  UPSTREAM_REMOTE_ADDRESS_WITHOUT_PORT: Op.UpstreamAddrNoPort,
  UPSTREAM_REMOTE_PORT: Op.UpstreamPort,
  UPSTREAM_LOCAL_ADDRESS: Op.UpstreamLocalAddr,
  UPSTREAM_LOCAL_ADDRESS_WITHOUT_PORT: Op.UpstreamLocalAddrNoPort,
  UPSTREAM_LOCAL_PORT: Op.UpstreamLocalPort,
  UPSTREAM_CLUSTER: Op.UpstreamCluster,
  REQUESTED_SERVER_NAME: Op.Sni,
  ROUTE_NAME: Op.RouteName,
  RESPONSE_CODE: Op.ResponseCode,
  RESPONSE_FLAGS: Op.ResponseFlags,
  CONNECTION_ID: Op.ConnectionId,
  DOWNSTREAM_PEER_URI_SAN: Op.PeerUriSan,
  DOWNSTREAM_LOCAL_URI_SAN: Op.LocalUriSan,
  DOWNSTREAM_PEER_SUBJECT: Op.PeerSubject,
  DOWNSTREAM_LOCAL_SUBJECT: Op.LocalSubject,
  DOWNSTREAM_TLS_VERSION: Op.TlsVersion,
  DOWNSTREAM_PEER_FINGERPRINT_256: Op.PeerFingerprint256,
};

/** Commands known only once a stream has ended: accepted in access log formats only. */
const ACCESS_LOG_ONLY: Readonly<Record<string, Op>> = {
  DURATION: Op.Duration,
  REQUEST_DURATION: Op.RequestDuration,
  RESPONSE_DURATION: Op.ResponseDuration,
  BYTES_RECEIVED: Op.BytesReceived,
  BYTES_SENT: Op.BytesSent,
  RESPONSE_CODE_DETAILS: Op.ResponseCodeDetails,
  CONNECTION_TERMINATION_DETAILS: Op.ConnectionTerminationDetails,
  UPSTREAM_TRANSPORT_FAILURE_REASON: Op.UpstreamTransportFailureReason,
  UPSTREAM_CLUSTER_RAW: Op.UpstreamCluster,
  UPSTREAM_REQUEST_ATTEMPT_COUNT: Op.UpstreamRequestAttemptCount,
};

/** Commands Envoy knows that this proxy cannot produce: named in the error so the message is precise. */
const KNOWN_UNSUPPORTED = new Set([
  'UPSTREAM_METADATA',
  'DYNAMIC_METADATA',
  'CLUSTER_METADATA',
  'FILTER_STATE',
  'PER_REQUEST_STATE',
  'UPSTREAM_FILTER_STATE',
  'CEL',
  'METADATA',
  'BYTES_RECEIVED',
  'BYTES_SENT',
  'DURATION',
  'REQUEST_DURATION',
  'RESPONSE_DURATION',
  'RESPONSE_TX_DURATION',
  'TRAILER',
  'VIRTUAL_CLUSTER_NAME',
  'RESPONSE_CODE_DETAILS',
  'CONNECTION_TERMINATION_DETAILS',
  'UPSTREAM_TRANSPORT_FAILURE_REASON',
  'STREAM_ID',
  'UNIQUE_ID',
]);

// ---------------------------------------------------------------------------------------------------------------
// START_TIME formats

const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];
const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];

function pad(n: number, width: number, fill = '0'): string {
  let s = String(n);
  while (s.length < width) s = fill + s;
  return s;
}

/** A strftime field or a literal, applied to a UTC date. */
type TimePart = string | ((d: Date, ns: number) => string);

function fractionDigits(ns: number, digits: number): string {
  return pad(ns, 9).slice(0, digits);
}

const TIME_SPECIFIERS: Readonly<Record<string, (d: Date, ns: number) => string>> = {
  a: (d) => DAYS[d.getUTCDay()]!.slice(0, 3),
  A: (d) => DAYS[d.getUTCDay()]!,
  b: (d) => MONTHS[d.getUTCMonth()]!.slice(0, 3),
  h: (d) => MONTHS[d.getUTCMonth()]!.slice(0, 3),
  B: (d) => MONTHS[d.getUTCMonth()]!,
  d: (d) => pad(d.getUTCDate(), 2),
  e: (d) => pad(d.getUTCDate(), 2, ' '),
  H: (d) => pad(d.getUTCHours(), 2),
  I: (d) => pad(d.getUTCHours() % 12 || 12, 2),
  j: (d) => pad(Math.floor((d.getTime() - Date.UTC(d.getUTCFullYear(), 0, 1)) / 86_400_000) + 1, 3),
  m: (d) => pad(d.getUTCMonth() + 1, 2),
  M: (d) => pad(d.getUTCMinutes(), 2),
  p: (d) => (d.getUTCHours() < 12 ? 'AM' : 'PM'),
  S: (d) => pad(d.getUTCSeconds(), 2),
  y: (d) => pad(d.getUTCFullYear() % 100, 2),
  Y: (d) => String(d.getUTCFullYear()),
  z: () => '+0000',
  Z: () => 'UTC',
  T: (d) => `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}:${pad(d.getUTCSeconds(), 2)}`,
  F: (d) => `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`,
  D: (d) => `${pad(d.getUTCMonth() + 1, 2)}/${pad(d.getUTCDate(), 2)}/${pad(d.getUTCFullYear() % 100, 2)}`,
  R: (d) => `${pad(d.getUTCHours(), 2)}:${pad(d.getUTCMinutes(), 2)}`,
  s: (d) => String(Math.floor(d.getTime() / 1000)),
  n: () => '\n',
  t: () => '\t',
  f: (_d, ns) => fractionDigits(ns, 9),
};

/** Parses a START_TIME format; returns an error message for an unsupported specifier. */
function parseTimeFormat(fmt: string): TimePart[] | string {
  const parts: TimePart[] = [];
  let lit = '';
  for (let i = 0; i < fmt.length; i++) {
    const c = fmt[i]!;
    if (c !== '%') {
      lit += c;
      continue;
    }
    const n = fmt[i + 1];
    if (n === undefined) return 'format ends with a lone %';
    if (n === '%') {
      lit += '%';
      i++;
      continue;
    }
    let f: ((d: Date, ns: number) => string) | undefined;
    let used = 1;
    if (n >= '1' && n <= '9' && fmt[i + 2] === 'f') {
      const digits = n.charCodeAt(0) - 48;
      f = (_d, ns) => fractionDigits(ns, digits);
      used = 2;
    } else if (n === 'E') {
      const spec = fmt.slice(i + 2, i + 4);
      if (fmt[i + 2] === 'z') {
        f = () => '+00:00';
        used = 2;
      } else if (/^[0-9]S$/.test(spec)) {
        const digits = spec.charCodeAt(0) - 48;
        f = (d, ns) => (digits === 0 ? pad(d.getUTCSeconds(), 2) : `${pad(d.getUTCSeconds(), 2)}.${fractionDigits(ns, digits)}`);
        used = 3;
      } else if (spec === '*S') {
        f = (d, ns) => {
          const frac = pad(ns, 9).replace(/0+$/, '');
          return frac ? `${pad(d.getUTCSeconds(), 2)}.${frac}` : pad(d.getUTCSeconds(), 2);
        };
        used = 3;
      }
    } else {
      f = TIME_SPECIFIERS[n];
    }
    if (!f) return `unsupported time format specifier %${fmt.slice(i + 1, i + 3)} at position ${i}`;
    if (lit) parts.push(lit);
    lit = '';
    parts.push(f);
    i += used;
  }
  if (lit) parts.push(lit);
  return parts;
}

function formatTime(parts: readonly TimePart[] | null, ms: number): string {
  const d = new Date(Math.floor(ms));
  if (parts === null) return d.toISOString();
  // Nanoseconds within the second, from the (possibly fractional) millisecond time.
  const ns = Math.round((ms - Math.floor(ms / 1000) * 1000) * 1e6);
  let out = '';
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    out += typeof p === 'string' ? p : p(d, ns);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Commands

class Command {
  constructor(
    readonly op: Op,
    /** REQ/RESP: lower-case header name; Constant: the value. */
    readonly a: string,
    readonly aPseudo: number,
    /** REQ/RESP: the alternative header ('' = none). */
    readonly b: string,
    readonly bPseudo: number,
    /** -1 = no limit. */
    readonly maxLen: number,
    readonly time: readonly TimePart[] | null,
  ) {}
}

function addr(ip: string | undefined, port: number | undefined): string | undefined {
  if (ip === undefined || ip === '') return undefined;
  if (port === undefined) return ip;
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

/** An empty string is an unknown value (Envoy's access logs print `-` for both). */
function known(v: string | undefined): string | undefined {
  return v === '' ? undefined : v;
}

const PROTOCOLS: Readonly<Record<string, string>> = { '1.0': 'HTTP/1.0', '1.1': 'HTTP/1.1', '2': 'HTTP/2' };

function requestValue(req: RequestHead, name: string, pseudo: number): string | undefined {
  return requestHeaderFirst(req, name, pseudo);
}

function responseValue(resp: ResponseHead | null, name: string, pseudo: number): string | undefined {
  if (resp === null) return undefined;
  if (pseudo === PSEUDO_NONE) return listHeaderFirst(resp.headers, name);
  return pseudo === PSEUDO_STATUS ? String(resp.status) : undefined;
}

/** The value of one command: a string, a number, or undefined when unknown. */
function run(c: Command, req: RequestHead, resp: ResponseHead | null, v: FormatVars, route: FormatRoute): string | number | undefined {
  switch (c.op) {
    case Op.Req: {
      let h = requestValue(req, c.a, c.aPseudo);
      if (h === undefined && c.b) h = requestValue(req, c.b, c.bPseudo);
      return known(h);
    }
    case Op.Resp: {
      let h = responseValue(resp, c.a, c.aPseudo);
      if (h === undefined && c.b) h = responseValue(resp, c.b, c.bPseudo);
      return h;
    }
    case Op.Protocol:
      return PROTOCOLS[req.httpVersion];
    case Op.StartTime:
      return formatTime(c.time, v.startTimeMs ?? Date.now());
    case Op.Constant:
      return c.a;
    case Op.RemoteAddr:
      return addr(v.downstreamRemoteAddress, v.downstreamRemotePort);
    case Op.RemoteAddrNoPort:
      return known(v.downstreamRemoteAddress);
    case Op.RemotePort:
      return v.downstreamRemotePort;
    case Op.DirectRemoteAddr:
      return addr(v.downstreamDirectRemoteAddress, v.downstreamDirectRemotePort);
    case Op.DirectRemoteAddrNoPort:
      return known(v.downstreamDirectRemoteAddress);
    case Op.DirectRemotePort:
      return v.downstreamDirectRemotePort;
    case Op.LocalAddr:
      return addr(v.downstreamLocalAddress, v.downstreamLocalPort);
    case Op.LocalAddrNoPort:
      return known(v.downstreamLocalAddress);
    case Op.LocalPort:
      return v.downstreamLocalPort;
    case Op.UpstreamAddr:
      return addr(v.upstreamRemoteAddress, v.upstreamRemotePort);
    case Op.UpstreamAddrNoPort:
      return known(v.upstreamRemoteAddress);
    case Op.UpstreamPort:
      return v.upstreamRemotePort;
    case Op.UpstreamLocalAddr:
      return addr(v.upstreamLocalAddress, v.upstreamLocalPort);
    case Op.UpstreamLocalAddrNoPort:
      return known(v.upstreamLocalAddress);
    case Op.UpstreamLocalPort:
      return v.upstreamLocalPort;
    case Op.UpstreamCluster:
      return known(v.upstreamCluster ?? route.cluster);
    case Op.Sni:
      return known(v.requestedServerName);
    case Op.RouteName:
      return known(route.routeName);
    case Op.ResponseCode:
      return resp !== null ? resp.status : (v.responseCode ?? 0);
    case Op.ResponseFlags:
      return known(v.responseFlags);
    case Op.ConnectionId:
      return v.connectionId;
    case Op.PeerUriSan:
      return known(v.downstreamPeerUriSan);
    case Op.LocalUriSan:
      return known(v.downstreamLocalUriSan);
    case Op.PeerSubject:
      return known(v.downstreamPeerSubject);
    case Op.LocalSubject:
      return known(v.downstreamLocalSubject);
    case Op.TlsVersion:
      return known(v.downstreamTlsVersion);
    case Op.PeerFingerprint256:
      return known(v.downstreamPeerFingerprint256);
    case Op.Duration:
      return v.durationMs;
    case Op.RequestDuration:
      return v.requestDurationMs;
    case Op.ResponseDuration:
      return v.responseDurationMs;
    case Op.BytesReceived:
      return v.bytesReceived;
    case Op.BytesSent:
      return v.bytesSent;
    case Op.ResponseCodeDetails:
      return known(v.responseCodeDetails);
    case Op.ConnectionTerminationDetails:
      return known(v.connectionTerminationDetails);
    case Op.UpstreamTransportFailureReason:
      return known(v.upstreamTransportFailureReason);
    case Op.UpstreamRequestAttemptCount:
      return v.upstreamRequestAttemptCount;
    default:
      return undefined;
  }
}

/** A compiled header value template (or access log format). */
export class Formatter {
  /** The value when the template has no commands (the common case: no work per request). */
  readonly constant: string | null;
  /** Whether any command reads request or response headers. */
  readonly readsHeaders: boolean;
  /** What an unknown value prints as: '' in header values, '-' in access logs. */
  private readonly unknown: string;

  constructor(
    readonly source: string,
    private readonly parts: ReadonlyArray<string | Command>,
    accessLog: boolean | 'omit-empty' = false,
  ) {
    this.constant = parts.length === 0 ? '' : parts.length === 1 && typeof parts[0] === 'string' ? parts[0] : null;
    this.readsHeaders = parts.some((p) => typeof p !== 'string' && (p.op === Op.Req || p.op === Op.Resp));
    this.unknown = accessLog === true ? '-' : '';
  }

  format(req: RequestHead, resp: ResponseHead | null, vars: FormatVars | undefined, route: FormatRoute): string {
    if (this.constant !== null) return this.constant;
    const v = vars ?? EMPTY_VARS;
    const parts = this.parts;
    let out = '';
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i]!;
      if (typeof p === 'string') {
        out += p;
        continue;
      }
      const x = run(p, req, resp, v, route);
      if (x === undefined) {
        out += this.unknown;
        continue;
      }
      const s = typeof x === 'number' ? String(x) : x;
      out += p.maxLen >= 0 && s.length > p.maxLen ? s.slice(0, p.maxLen) : s;
    }
    return out;
  }

  /**
   * Envoy's json_format value: a template that is exactly one command gives its typed value (a number stays a
   * number; unknown is null); any other template is formatted as text.
   */
  formatValue(req: RequestHead, resp: ResponseHead | null, vars: FormatVars | undefined, route: FormatRoute): string | number | null {
    const parts = this.parts;
    if (parts.length !== 1 || typeof parts[0] === 'string') return this.format(req, resp, vars, route);
    const p = parts[0]!;
    const x = run(p, req, resp, vars ?? EMPTY_VARS, route);
    if (x === undefined) return null;
    if (typeof x === 'number') return x;
    return p.maxLen >= 0 && x.length > p.maxLen ? x.slice(0, p.maxLen) : x;
  }
}

export interface FormatterOptions {
  /** %HOSTNAME% (default: os.hostname()). */
  hostname?: string;
  /** %ENVIRONMENT(X)% (default: process.env). */
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * An access log format: the end-of-stream commands are accepted and unknown values print `-` (`'omit-empty'`:
   * as nothing, Envoy's omit_empty_values).
   */
  accessLog?: boolean | 'omit-empty';
}

const COMMAND_RE = /^%((?:[A-Z]|[0-9]|_)+)(?:\((.*?)\))?(?::([0-9]+))?%/;

/** Parses a header value template (Envoy's SubstitutionFormatParser rules). */
export function parseFormatter(ctx: Pick<CompileContext, 'fail'>, field: string, text: string, opts: FormatterOptions): Formatter {
  const parts: Array<string | Command> = [];
  let lit = '';
  let pos = 0;
  while (pos < text.length) {
    const ch = text[pos]!;
    if (ch !== '%') {
      lit += ch;
      pos++;
      continue;
    }
    if (text[pos + 1] === '%') {
      lit += '%';
      pos += 2;
      continue;
    }
    if (lit) parts.push(lit);
    lit = '';
    const m = COMMAND_RE.exec(text.slice(pos));
    if (!m) ctx.fail(field, `invalid ${opts.accessLog ? 'format' : 'header value'} ${JSON.stringify(text)}: couldn't find a valid command at position ${pos} (a literal % is written %%)`);
    const name = m[1]!;
    const arg = m[2] ?? '';
    const maxLen = m[3] !== undefined ? Number(m[3]) : -1;
    parts.push(command(ctx, field, name, arg, maxLen, opts));
    pos += m[0].length;
  }
  if (lit) parts.push(lit);
  return new Formatter(text, parts, opts.accessLog ?? false);
}

function command(ctx: Pick<CompileContext, 'fail'>, field: string, name: string, arg: string, maxLen: number, opts: FormatterOptions): Command {
  const noArgs = (): void => {
    if (arg !== '' || maxLen >= 0) ctx.fail(field, `%${name}% does not take any parameters or length`);
  };
  switch (name) {
    case 'REQ':
    case 'RESP': {
      if (arg === '') ctx.fail(field, `%${name}(...)% requires a header name`);
      const names = arg.split('?');
      if (names.length > 2) ctx.fail(field, `more than 1 alternative header specified in %${name}(${arg})%`);
      const a = asciiLower(names[0]!);
      const b = names.length === 2 ? asciiLower(names[1]!) : '';
      if (a === '' || (names.length === 2 && b === '')) ctx.fail(field, `empty header name in %${name}(${arg})%`);
      return new Command(name === 'REQ' ? Op.Req : Op.Resp, a, pseudoOf(a), b, b ? pseudoOf(b) : PSEUDO_NONE, maxLen, null);
    }
    case 'START_TIME': {
      if (maxLen >= 0) ctx.fail(field, '%START_TIME% does not take a length');
      let time: TimePart[] | null = null;
      if (arg !== '') {
        const t = parseTimeFormat(arg);
        if (typeof t === 'string') ctx.fail(field, `%START_TIME(${arg})%: ${t}`);
        time = t;
      }
      return new Command(Op.StartTime, '', PSEUDO_NONE, '', PSEUDO_NONE, -1, time);
    }
    case 'HOSTNAME':
      noArgs();
      return new Command(Op.Constant, opts.hostname ?? osHostname(), PSEUDO_NONE, '', PSEUDO_NONE, -1, null);
    case 'ENVIRONMENT': {
      if (arg === '') ctx.fail(field, '%ENVIRONMENT(...)% requires a variable name');
      const env = opts.env ?? process.env;
      return new Command(Op.Constant, env[arg] ?? '', PSEUDO_NONE, '', PSEUDO_NONE, maxLen, null);
    }
    default: {
      const op = SIMPLE[name] ?? (opts.accessLog ? ACCESS_LOG_ONLY[name] : undefined);
      if (op === undefined) {
        // Commands known only to access logs (end of stream) are not available in header values.
        if (KNOWN_UNSUPPORTED.has(name) || ACCESS_LOG_ONLY[name] !== undefined) ctx.fail(field, `%${name}% is not supported by this proxy`);
        ctx.fail(field, `unknown command %${name}%`);
      }
      noArgs();
      return new Command(op, '', PSEUDO_NONE, '', PSEUDO_NONE, -1, null);
    }
  }
}
