/**
 * The checks themselves: HTTP (HTTP/1.1 or HTTP/2), TCP (connect, optional send / expected receive payloads) and
 * gRPC (grpc.health.v1.Health/Check over @grpc/grpc-js). Each probe belongs to one host's session and reports
 * `session.succeed(gen)` / `session.fail(gen, type, retriable)`; late results of a timed-out check are ignored by
 * the session.
 *
 * Connections go to the host's health check address (EDS health_check_config port/address, else the host's own)
 * through `SocketFactory` (plain TCP by default; a TLS cluster's transport for TLS clusters, see cluster.ts) and are reused between
 * checks unless reuse_connection is false.
 */
import * as http from 'node:http';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import type { Host } from '../cluster/host.js';
import { FailureType, type HealthCheckSession, type Probe } from './health-checker.js';

/** Opens the connection a check uses (plain TCP by default). */
export type SocketFactory = (address: string, port: number, host: Host) => net.Socket;

const plainSocket: SocketFactory = (address, port) => net.connect({ host: address, port });

/** Envoy's PayloadMatcher: every segment found in order, each after the previous match. */
export function payloadMatches(segments: readonly Buffer[], data: Buffer): boolean {
  let start = 0;
  for (const seg of segments) {
    const i = data.indexOf(seg, start);
    if (i < 0) return false;
    start = i + seg.length;
  }
  return true;
}

function urlHost(address: string): string {
  return address.includes(':') ? `[${address}]` : address;
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP

export interface HttpCheckConfig {
  path: string;
  /** The Host / :authority value; '' = the endpoint's health check hostname, else the cluster name. */
  host: string;
  method: string;
  /** Headers to add (with Envoy's append actions), after `headersToRemove` (lower-case names) are removed. */
  headersToAdd: Array<{ name: string; value: string; action: 'append' | 'addIfAbsent' | 'overwrite' | 'overwriteIfExists' }>;
  headersToRemove: string[];
  /** [start, end) ranges. */
  expected: Array<[number, number]>;
  retriable: Array<[number, number]>;
  send: Buffer | undefined;
  receive: Buffer[];
  /** Bytes of the body kept for `receive` matching; 0 = no limit. */
  responseBufferSize: number;
  http2: boolean;
  serviceNameMatcher: ((value: string) => boolean) | undefined;
}

function inRanges(status: number, ranges: ReadonlyArray<[number, number]>): boolean {
  for (const [s, e] of ranges) if (status >= s && status < e) return true;
  return false;
}

export class HttpProbe implements Probe {
  private agent: http.Agent | undefined;
  private h2: http2.ClientHttp2Session | undefined;
  private req: http.ClientRequest | undefined;
  private stream: http2.ClientHttp2Stream | undefined;

  constructor(
    private readonly session: HealthCheckSession,
    private readonly cfg: HttpCheckConfig,
    private readonly connect: SocketFactory = plainSocket,
  ) {}

  private hostHeader(): string {
    return this.cfg.host || this.session.host.healthCheckHostname || this.session.checker.env.clusterName;
  }

  private requestHeaders(): Array<[string, string]> {
    const removed = this.cfg.headersToRemove;
    const list: Array<[string, string]> = removed.includes('user-agent') ? [] : [['user-agent', 'Envoy/HC']];
    for (const h of this.cfg.headersToAdd) {
      const lower = h.name.toLowerCase();
      const exists = list.some(([k]) => k === lower);
      if (h.action === 'addIfAbsent' && exists) continue;
      if (h.action === 'overwriteIfExists' && !exists) continue;
      if (h.action === 'overwrite' || h.action === 'overwriteIfExists') {
        for (let i = list.length - 1; i >= 0; i--) if (list[i]![0] === lower) list.splice(i, 1);
      }
      list.push([lower, h.value]);
    }
    if (this.cfg.send) list.push(['content-length', String(this.cfg.send.length)]);
    return list;
  }

  check(gen: number): void {
    if (this.cfg.http2) this.checkH2(gen);
    else this.checkH1(gen);
  }

  private checkH1(gen: number): void {
    const host = this.session.host;
    const reuse = this.session.settings.reuseConnection;
    if (!this.agent) {
      const connect = this.connect;
      class HcAgent extends http.Agent {
        override createConnection(o: http.ClientRequestArgs): net.Socket {
          return connect(String(o.host), Number(o.port), host);
        }
      }
      this.agent = new HcAgent({ keepAlive: reuse, maxSockets: 1 });
    }
    const headers: Record<string, string | string[]> = { host: this.hostHeader() };
    for (const [k, v] of this.requestHeaders()) {
      const prev = headers[k];
      headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    const req = http.request({
      host: host.healthCheckAddress,
      port: host.healthCheckPort,
      method: this.cfg.method,
      path: this.cfg.path,
      headers,
      agent: this.agent,
      setHost: false,
    });
    this.req = req;
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const keep = this.cfg.receive.length > 0;
      const limit = this.cfg.responseBufferSize;
      res.on('data', (c: Buffer) => {
        if (!keep) return;
        if (limit === 0) chunks.push(c);
        else if (size < limit) chunks.push(c.subarray(0, limit - size));
        size += c.length;
      });
      res.on('end', () => {
        this.req = undefined;
        this.evaluate(gen, res.statusCode ?? 0, (n) => res.headers[n], keep ? Buffer.concat(chunks) : undefined);
        if (!reuse) res.socket?.destroy();
      });
      res.on('error', () => this.session.fail(gen, FailureType.Network));
    });
    req.on('error', () => {
      this.req = undefined;
      this.session.fail(gen, FailureType.Network);
    });
    req.end(this.cfg.send);
  }

  private checkH2(gen: number): void {
    const host = this.session.host;
    const reuse = this.session.settings.reuseConnection;
    if (!this.h2 || this.h2.closed || this.h2.destroyed) {
      const connect = this.connect;
      const s = http2.connect(`http://${urlHost(host.healthCheckAddress)}:${host.healthCheckPort}`, {
        createConnection: () => connect(host.healthCheckAddress, host.healthCheckPort, host),
      });
      s.on('error', () => {});
      s.on('close', () => {
        if (this.h2 === s) this.h2 = undefined;
      });
      this.h2 = s;
    }
    const session = this.h2;
    const headers: http2.OutgoingHttpHeaders = {
      ':method': this.cfg.method,
      ':path': this.cfg.path,
      ':scheme': 'http',
      ':authority': this.hostHeader(),
    };
    for (const [k, v] of this.requestHeaders()) {
      const prev = headers[k];
      headers[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, { endStream: !this.cfg.send });
    } catch {
      this.session.fail(gen, FailureType.Network);
      return;
    }
    this.stream = stream;
    let status = 0;
    let resHeaders: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let size = 0;
    const keep = this.cfg.receive.length > 0;
    const limit = this.cfg.responseBufferSize;
    stream.on('response', (h) => {
      resHeaders = h;
      status = Number(h[':status'] ?? 0);
    });
    stream.on('data', (c: Buffer) => {
      if (!keep) return;
      if (limit === 0) chunks.push(c);
      else if (size < limit) chunks.push(c.subarray(0, limit - size));
      size += c.length;
    });
    stream.on('end', () => {
      this.stream = undefined;
      this.evaluate(gen, status, (n) => resHeaders[n], keep ? Buffer.concat(chunks) : undefined);
      if (!reuse) session.close();
    });
    stream.on('error', () => {
      this.stream = undefined;
      this.session.fail(gen, FailureType.Network);
      if (!reuse) session.destroy();
    });
    if (this.cfg.send) stream.end(this.cfg.send);
  }

  /** Envoy's HttpActiveHealthCheckSession::healthCheckResult. */
  private evaluate(gen: number, status: number, header: (name: string) => string | string[] | undefined, body: Buffer | undefined): void {
    const s = this.session;
    const immediateFail = header('x-envoy-immediate-health-check-fail') !== undefined;
    if (this.cfg.receive.length > 0 && !payloadMatches(this.cfg.receive, body ?? Buffer.alloc(0))) {
      if (immediateFail) s.excludeImmediately();
      s.fail(gen, FailureType.Active, false);
      return;
    }
    if (!inRanges(status, this.cfg.expected)) {
      if (immediateFail) s.excludeImmediately();
      s.fail(gen, FailureType.Active, inRanges(status, this.cfg.retriable));
      return;
    }
    const degraded = header('x-envoy-degraded') !== undefined;
    const matcher = this.cfg.serviceNameMatcher;
    if (matcher) {
      s.checker.env.stats.verify_cluster++;
      const v = header('x-envoy-upstream-healthchecked-cluster');
      const value = v === undefined ? '' : Array.isArray(v) ? (v[0] ?? '') : v;
      if (!matcher(value)) {
        s.fail(gen, FailureType.Active, false);
        return;
      }
    }
    s.succeed(gen, degraded);
  }

  timeout(): void {
    this.req?.destroy();
    this.req = undefined;
    this.stream?.close(http2.constants.NGHTTP2_CANCEL);
    this.stream = undefined;
    // Envoy closes the connection of a timed-out check.
    this.h2?.destroy();
    this.h2 = undefined;
  }

  close(): void {
    this.timeout();
    this.agent?.destroy();
    this.agent = undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// TCP

export interface TcpCheckConfig {
  send: Buffer | undefined;
  receive: Buffer[];
}

export class TcpProbe implements Probe {
  private socket: net.Socket | undefined;
  /** Closes we initiated on the current socket are not failures. */
  private expected: { close: boolean } = { close: false };
  private buffered: Buffer = Buffer.alloc(0);
  private gen = 0;

  constructor(
    private readonly session: HealthCheckSession,
    private readonly cfg: TcpCheckConfig,
    private readonly connect: SocketFactory = plainSocket,
  ) {}

  check(gen: number): void {
    this.gen = gen;
    const host = this.session.host;
    if (!this.socket) {
      const sock = this.connect(host.healthCheckAddress, host.healthCheckPort, host);
      const expected = { close: false };
      this.socket = sock;
      this.expected = expected;
      this.buffered = Buffer.alloc(0);
      sock.setNoDelay(true);
      const onConnect = () => {
        if (this.socket !== sock || this.cfg.receive.length > 0) return;
        // Connect-only check: success, and close the connection.
        expected.close = true;
        sock.destroy();
        this.socket = undefined;
        this.session.succeed(this.gen);
      };
      const isTls = (sock as net.Socket & { encrypted?: boolean }).encrypted === true;
      if (!isTls && sock.readyState === 'open') queueMicrotask(onConnect);
      else sock.once(isTls ? 'secureConnect' : 'connect', onConnect);
      sock.on('data', (d: Buffer) => {
        if (this.socket !== sock) return;
        this.buffered = this.buffered.length ? Buffer.concat([this.buffered, d]) : d;
        if (payloadMatches(this.cfg.receive, this.buffered)) {
          this.buffered = Buffer.alloc(0);
          this.session.succeed(this.gen);
          if (!this.session.settings.reuseConnection) {
            expected.close = true;
            sock.destroy();
            this.socket = undefined;
          }
        }
      });
      sock.on('error', () => {});
      sock.on('close', () => {
        if (this.socket === sock) this.socket = undefined;
        if (!expected.close) this.session.fail(this.gen, FailureType.Network);
      });
    }
    if (this.cfg.send) this.socket.write(this.cfg.send);
  }

  timeout(): void {
    this.expected.close = true;
    this.socket?.destroy();
    this.socket = undefined;
  }

  close(): void {
    this.timeout();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// gRPC

export interface GrpcCheckConfig {
  serviceName: string;
  /** :authority; '' = the endpoint's health check hostname, else the cluster name. */
  authority: string;
  initialMetadata: Array<{ name: string; value: string }>;
}

const SERVING = 1;

function encodeRequest(service: string): Buffer {
  if (!service) return Buffer.alloc(0);
  const s = Buffer.from(service, 'utf8');
  const len: number[] = [];
  let n = s.length;
  while (n >= 0x80) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([0x0a, ...len]), s]);
}

/** The `status` (field 1) of a grpc.health.v1.HealthCheckResponse; other fields are skipped. */
export function decodeHealthStatus(b: Buffer): number {
  let i = 0;
  let status = 0;
  const varint = (): number => {
    let v = 0;
    let shift = 0;
    while (i < b.length) {
      const c = b[i++]!;
      v += (c & 0x7f) * 2 ** shift;
      if ((c & 0x80) === 0) return v;
      shift += 7;
    }
    throw new Error('truncated varint');
  };
  while (i < b.length) {
    const tag = varint();
    const wire = tag & 7;
    const field = Math.floor(tag / 8);
    if (wire === 0) {
      const v = varint();
      if (field === 1) status = v;
    } else if (wire === 2) i += varint();
    else if (wire === 5) i += 4;
    else if (wire === 1) i += 8;
    else throw new Error(`unsupported wire type ${wire}`);
  }
  return status;
}

export class GrpcProbe implements Probe {
  private client: grpc.Client | undefined;
  private call: grpc.ClientUnaryCall | undefined;

  constructor(
    private readonly session: HealthCheckSession,
    private readonly cfg: GrpcCheckConfig,
  ) {}

  check(gen: number): void {
    const s = this.session;
    const host = s.host;
    const reuse = s.settings.reuseConnection;
    if (!this.client) {
      const authority = this.cfg.authority || host.healthCheckHostname || s.checker.env.clusterName;
      this.client = new grpc.Client(`${urlHost(host.healthCheckAddress)}:${host.healthCheckPort}`, grpc.credentials.createInsecure(), {
        'grpc.default_authority': authority,
        'grpc.primary_user_agent': 'Envoy/HC',
        'grpc.enable_retries': 0,
      });
    }
    const client = this.client;
    const md = new grpc.Metadata();
    for (const m of this.cfg.initialMetadata) md.add(m.name, m.value);
    let gotHeaders = false;
    const call = client.makeUnaryRequest<Buffer, number>(
      '/grpc.health.v1.Health/Check',
      (x: Buffer) => x,
      (b: Buffer) => decodeHealthStatus(b),
      encodeRequest(this.cfg.serviceName),
      md,
      { deadline: Date.now() + s.settings.timeoutMs },
      (err, status) => {
        if (this.call === call) this.call = undefined;
        if (err) {
          // No response headers: the connection could not be used (refused, reset) — a network failure.
          const network = !gotHeaders && (err.code === grpc.status.UNAVAILABLE || err.code === grpc.status.DEADLINE_EXCEEDED || err.code === grpc.status.CANCELLED);
          s.fail(gen, network ? FailureType.Network : FailureType.Active);
        } else if (status === SERVING) s.succeed(gen);
        else s.fail(gen, FailureType.Active);
        if (!reuse) this.dropClient();
      },
    );
    call.on('metadata', () => {
      gotHeaders = true;
    });
    this.call = call;
  }

  private dropClient(): void {
    this.client?.close();
    this.client = undefined;
  }

  timeout(): void {
    this.call?.cancel();
    this.call = undefined;
    if (!this.session.settings.reuseConnection) this.dropClient();
  }

  close(): void {
    this.call?.cancel();
    this.call = undefined;
    this.dropClient();
  }
}
