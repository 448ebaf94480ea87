/**
 * Ports for the local runtime (`weft up`): free ports for apps and sidecars, whether a fixed port is free, and who
 * holds a port that is not (Linux: the listening socket's inode from /proc/net/tcp{,6}, then the process whose
 * /proc/PID/fd links to `socket:[inode]`, as `ss -lptn` finds it; elsewhere, or without permission, just "in use").
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';

/** Binds `port` (0 = any) on every IPv4 address and closes again; resolves with the port or undefined when taken. */
function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(undefined));
    s.listen({ port, host: '0.0.0.0', exclusive: true }, () => {
      const bound = (s.address() as AddressInfo).port;
      s.close(() => resolve(bound));
    });
  });
}

/** The kernel's ephemeral port range (Linux: /proc/sys/net/ipv4/ip_local_port_range; else the IANA range). */
function ephemeralRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(lo) && Number.isInteger(hi)) return [lo!, hi!];
  } catch {
    // not Linux
  }
  return [49152, 65535];
}

/** Ports handed out come from here when the ephemeral range leaves room below it. */
const LOWEST_PORT = 10_000;

/**
 * Hands out free ports. A port is free on all IPv4 addresses when handed out (the sidecar's inbound and stats
 * listeners bind 0.0.0.0); ports handed out and not released are never handed out twice, even when nothing is
 * bound to them yet.
 *
 * A port is bound by its user seconds after it is handed out (a sidecar binds its inbound listeners once its
 * config arrives), so it is picked below the kernel's ephemeral range: outgoing connections of any process on the
 * machine take their local ports from that range and could take it meanwhile. Without room there, port 0.
 */
export class PortAllocator {
  private readonly taken = new Set<number>();
  private readonly below = ephemeralRange()[0];

  async allocate(): Promise<number> {
    const room = this.below - LOWEST_PORT;
    for (let i = 0; i < 200; i++) {
      const want = room >= 1000 && i < 150 ? LOWEST_PORT + Math.floor(Math.random() * room) : 0;
      if (this.taken.has(want)) continue;
      const p = await tryBind(want);
      if (p !== undefined && !this.taken.has(p)) {
        this.taken.add(p);
        return p;
      }
    }
    throw new Error('no free port found on 0.0.0.0');
  }

  release(ports: Iterable<number>): void {
    for (const p of ports) this.taken.delete(p);
  }
}

/** Whether nothing listens on `port` (on any IPv4 address) right now. */
export async function portIsFree(port: number): Promise<boolean> {
  return (await tryBind(port)) !== undefined;
}

/** Inodes of the sockets listening on `port` (TCP, IPv4 and IPv6), from /proc/net. */
function listeningInodes(port: number): Set<string> {
  const out = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      const local = f[1]!;
      if (f[3] !== '0A' || local.slice(local.lastIndexOf(':') + 1) !== hexPort) continue;
      if (f[9] !== '0') out.add(f[9]!);
    }
  }
  return out;
}

/** The process holding a listening socket on `port`: "pid 123 (python3 -m http.server 9080)", or undefined. */
export function portHolder(port: number): string | undefined {
  const inodes = listeningInodes(port);
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(m[1]!)) continue;
      let cmd = '';
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      } catch {
        // the process may have gone
      }
      return cmd ? `pid ${pid} (${cmd.length > 120 ? `${cmd.slice(0, 117)}...` : cmd})` : `pid ${pid}`;
    }
  }
  return undefined;
}

/** "port 9080 (http) is already in use by pid 123 (python3 ...)"; "... is already in use" when the holder is unknown. */
export function portConflictMessage(port: number, name: string): string {
  const holder = portHolder(port);
  return `port ${port} (${name}) is already in use${holder ? ` by ${holder}` : ''}`;
}
