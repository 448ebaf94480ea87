/**
 * The sidecar's DNS proxy (Istio's agent DNS proxy, pkg/dns/client, on port 15053): UDP and TCP on one port,
 * answering queries for mesh names from the name table the control plane sends (`weft.dns.v1.NameTable`,
 * src/xds/name-table.ts) and forwarding everything else to the resolvers of /etc/resolv.conf.
 *
 *   const dns = new DnsProxy({ port: 15053 });
 *   await dns.start();
 *   dns.setTable(nameTable);      // from ADS
 *   await dns.close();
 *
 * In transparent mode iptables sends the workload's port-53 traffic here (src/runtime/capture/); the proxy's own
 * queries to the upstream resolvers run under the sidecar's uid and are not captured.
 *
 * Answers (as Istio's): a name of the table (case-insensitive, trailing dot ignored) → for A, its IPv4 addresses
 * (authoritative, TTL 30 s); for any other type, NOERROR with no answers (the name exists, with no data of that
 * type). Other names, and queries that are not standard (opcode ≠ 0), are forwarded: UDP queries over UDP, TCP
 * queries over TCP, with a fresh query id, trying each upstream in turn for `timeoutMs`; when none answers the
 * client gets SERVFAIL. A malformed query gets FORMERR when its header is readable and is dropped otherwise.
 */
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect, createServer, isIPv6, type Server, type Socket } from 'node:net';
import type { NameTable } from '../../xds/name-table.js';
import { answerA, DnsFormatError, emptyResponse, parseQuery, QTYPE_A, RCODE_FORMERR, RCODE_NOERROR, RCODE_SERVFAIL } from './message.js';
import type { DnsQuery } from './message.js';

/** Istio's DNS proxy answers with a 30 s TTL. */
export const DNS_TTL_SECONDS = 30;
/** Istio's DNS capture port. */
export const DEFAULT_DNS_PORT = 15053;
const DEFAULT_TIMEOUT_MS = 5000;
const MAX_TCP_MESSAGE = 65535;

export interface DnsProxyOptions {
  /** Port for UDP and TCP (0 = any free port, the same for both when possible). */
  port: number;
  /** Default 127.0.0.1 (Istio binds localhost). */
  bind?: string;
  /** Upstream resolvers (`ip` or `ip:port`); default: the nameservers of /etc/resolv.conf. */
  upstreams?: string[];
  /** How long one upstream may take to answer before the next is tried (default 5 s). */
  timeoutMs?: number;
  log?: { warn(obj: object, msg: string): void };
}

/** The nameservers of a resolv.conf text. */
export function resolvConfNameservers(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split('\n')) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

function upstreamAddr(s: string): { host: string; port: number } {
  if (isIPv6(s)) return { host: s, port: 53 };
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s);
  return { host: m?.[1] ?? s, port: m?.[2] ? Number(m[2]) : 53 };
}

interface Pending {
  query: DnsQuery;
  raw: Buffer;
  reply: (b: Buffer) => void;
  attempt: number;
  timer?: NodeJS.Timeout;
}

export class DnsProxy {
  private table = new Map<string, string[]>();
  private udp?: UdpSocket;
  private upstreamUdp?: UdpSocket;
  private tcp?: Server;
  private readonly tcpConns = new Set<Socket>();
  private readonly pending = new Map<number, Pending>();
  private readonly upstreams: Array<{ host: string; port: number }>;
  private readonly timeoutMs: number;
  port = 0;

  constructor(private readonly opts: DnsProxyOptions) {
    let ups = opts.upstreams;
    if (ups === undefined) {
      try {
        ups = resolvConfNameservers(readFileSync('/etc/resolv.conf', 'utf8'));
      } catch {
        ups = [];
      }
    }
    this.upstreams = ups.map(upstreamAddr);
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** Number of names in the table. */
  get size(): number {
    return this.table.size;
  }

  /** Replaces the name table. */
  setTable(t: NameTable | undefined): void {
    const m = new Map<string, string[]>();
    if (t) for (const [name, info] of Object.entries(t.table)) m.set(name.toLowerCase().replace(/\.$/, ''), [...info.ips]);
    this.table = m;
  }

  async start(): Promise<void> {
    const bind = this.opts.bind ?? '127.0.0.1';
    const type = isIPv6(bind) ? 'udp6' : 'udp4';
    // Port 0: the UDP port the kernel picks may be taken for TCP; try a few (bounded).
    for (let attempt = 0; ; attempt++) {
      const udp = createSocket(type);
      udp.on('message', (msg, rinfo) => this.onUdp(msg, rinfo));
      udp.on('error', (e) => this.opts.log?.warn({ err: e.message }, 'DNS proxy UDP socket error'));
      await new Promise<void>((resolve, reject) => {
        udp.once('error', reject);
        udp.bind(this.opts.port, bind, () => {
          udp.off('error', reject);
          resolve();
        });
      });
      const port = udp.address().port;
      const tcp = createServer((s) => this.onTcp(s));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen(port, bind, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        await new Promise<void>((r) => udp.close(() => r()));
        if (this.opts.port !== 0 || attempt >= 9) throw e;
        continue;
      }
      this.udp = udp;
      this.tcp = tcp;
      this.port = port;
      break;
    }
    const up = createSocket(type === 'udp6' && this.upstreams.every((u) => isIPv6(u.host)) ? 'udp6' : 'udp4');
    this.upstreamUdp = up;
    up.on('message', (msg) => this.onUpstreamUdp(msg));
    up.on('error', (e) => this.opts.log?.warn({ err: e.message }, 'DNS proxy upstream socket error'));
    await new Promise<void>((resolve) => up.bind(0, resolve));
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
    for (const s of this.tcpConns) s.destroy();
    await Promise.all([
      new Promise<void>((r) => (this.udp ? this.udp.close(() => r()) : r())),
      new Promise<void>((r) => (this.upstreamUdp ? this.upstreamUdp.close(() => r()) : r())),
      new Promise<void>((r) => (this.tcp ? this.tcp.close(() => r()) : r())),
    ]);
  }

  /** The local answer for a query, or undefined when it is to be forwarded. */
  answer(q: DnsQuery): Buffer | undefined {
    if (q.opcode !== 0 || q.qdcount !== 1) return undefined;
    const ips = this.table.get(q.name);
    if (ips === undefined) return undefined;
    if (q.qtype === QTYPE_A) return answerA(q, ips, DNS_TTL_SECONDS);
    return emptyResponse(q, RCODE_NOERROR, true);
  }

  /** Parses a query; a malformed one gets FORMERR (readable header) or nothing. */
  private handle(raw: Buffer, reply: (b: Buffer) => void, forward: (q: DnsQuery, raw: Buffer, reply: (b: Buffer) => void) => void): void {
    let q: DnsQuery;
    try {
      q = parseQuery(raw);
    } catch (e) {
      if (e instanceof DnsFormatError && raw.length >= 12 && (raw.readUInt16BE(2) & 0x8000) === 0) {
        reply(emptyResponse({ id: raw.readUInt16BE(0), flags: raw.readUInt16BE(2), question: Buffer.alloc(0) }, RCODE_FORMERR));
      }
      return;
    }
    const local = this.answer(q);
    if (local) reply(local);
    else forward(q, raw, reply);
  }

  // UDP ----------------------------------------------------------------------------------------------------------

  private onUdp(msg: Buffer, rinfo: RemoteInfo): void {
    const udp = this.udp!;
    this.handle(msg, (b) => udp.send(b, rinfo.port, rinfo.address), (q, raw, reply) => this.forwardUdp(q, raw, reply));
  }

  private forwardUdp(query: DnsQuery, raw: Buffer, reply: (b: Buffer) => void): void {
    if (!this.upstreams.length || this.pending.size >= 4096) {
      reply(emptyResponse(query, RCODE_SERVFAIL));
      return;
    }
    let id = randomInt(0x10000);
    for (let i = 0; this.pending.has(id) && i < 0x10000; i++) id = (id + 1) & 0xffff;
    const p: Pending = { query, raw: Buffer.from(raw), reply, attempt: 0 };
    p.raw.writeUInt16BE(id, 0);
    this.pending.set(id, p);
    this.sendUpstream(id, p);
  }

  private sendUpstream(id: number, p: Pending): void {
    const u = this.upstreams[p.attempt]!;
    p.timer = setTimeout(() => {
      p.attempt++;
      if (p.attempt < this.upstreams.length) this.sendUpstream(id, p);
      else {
        this.pending.delete(id);
        p.reply(emptyResponse(p.query, RCODE_SERVFAIL));
      }
    }, this.timeoutMs);
    this.upstreamUdp!.send(p.raw, u.port, u.host, (err) => {
      if (!err) return;
      // Unreachable upstream (no route): try the next one at once.
      clearTimeout(p.timer);
      p.attempt++;
      if (p.attempt < this.upstreams.length) this.sendUpstream(id, p);
      else if (this.pending.delete(id)) p.reply(emptyResponse(p.query, RCODE_SERVFAIL));
    });
  }

  private onUpstreamUdp(msg: Buffer): void {
    if (msg.length < 12) return;
    const id = msg.readUInt16BE(0);
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    msg.writeUInt16BE(p.query.id, 0);
    p.reply(msg);
  }

  // TCP ----------------------------------------------------------------------------------------------------------

  private onTcp(s: Socket): void {
    this.tcpConns.add(s);
    s.on('close', () => this.tcpConns.delete(s));
    s.on('error', () => undefined);
    s.setTimeout(30_000, () => s.destroy());
    let buf: Buffer = Buffer.alloc(0);
    const send = (b: Buffer) => {
      if (s.destroyed) return;
      const len = Buffer.alloc(2);
      len.writeUInt16BE(b.length, 0);
      s.write(Buffer.concat([len, b]));
    };
    s.on('data', (d: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, d]) : d;
      while (buf.length >= 2) {
        const n = buf.readUInt16BE(0);
        if (buf.length < 2 + n) break;
        const msg = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        this.handle(Buffer.from(msg), send, (q, raw, reply) => this.forwardTcp(q, raw, reply, 0));
      }
      if (buf.length > MAX_TCP_MESSAGE + 2) s.destroy();
    });
  }

  private forwardTcp(query: DnsQuery, raw: Buffer, reply: (b: Buffer) => void, attempt: number): void {
    const u = this.upstreams[attempt];
    if (!u) {
      reply(emptyResponse(query, RCODE_SERVFAIL));
      return;
    }
    const c = connect({ host: u.host, port: u.port });
    let done = false;
    let buf = Buffer.alloc(0);
    const fail = () => {
      if (done) return;
      done = true;
      c.destroy();
      this.forwardTcp(query, raw, reply, attempt + 1);
    };
    c.setTimeout(this.timeoutMs, fail);
    c.on('error', fail);
    c.on('close', fail);
    c.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(raw.length, 0);
      c.write(Buffer.concat([len, raw]));
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
      if (done) return;
      done = true;
      c.destroy();
      reply(buf.subarray(2, 2 + buf.readUInt16BE(0)));
    });
  }
}
