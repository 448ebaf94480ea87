/**
 * The original destination of a connection redirected by iptables (`REDIRECT` in the nat table), read with
 * `getsockopt(SO_ORIGINAL_DST)` — the one Linux-only call of transparent capture, made through koffi (FFI).
 *
 *   const dst = readOriginalDst(socket);   // { address: '240.240.3.7', port: 9080 } | undefined
 *   tagOriginalDst(socket, dst);           // the listener keeps it on the socket ...
 *   originalDstOf(socket);                 // ... for ORIGINAL_DST clusters: '240.240.3.7:9080'
 *
 * Envoy's `envoy.filters.listener.original_dst` listener filter (and `use_original_dst`, which implies it) does
 * the same: on Linux it asks the kernel for SO_ORIGINAL_DST (IPv4: SOL_IP/80, IPv6: SOL_IPV6/
 * IP6T_SO_ORIGINAL_DST=80) and "restores" the connection's local address to it; when the call fails (no
 * conntrack entry) the local address stays as it is. The restored address drives the filter chain match on
 * destination_port, the hand-off of `use_original_dst` listeners, and the host of ORIGINAL_DST clusters.
 *
 * On another platform, or when koffi cannot be loaded, `originalDstSupport()` says why, and listeners that need
 * the original destination are refused with a ConfigError naming that reason (listener.ts).
 */
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';

const SOL_IP = 0;
const SOL_IPV6 = 41;
/** SO_ORIGINAL_DST (linux/netfilter_ipv4.h) and IP6T_SO_ORIGINAL_DST (linux/netfilter_ipv6/ip6_tables.h). */
const SO_ORIGINAL_DST = 80;
const AF_INET = 2;
const AF_INET6 = 10;

type GetSockOpt = (fd: number, level: number, name: number, buf: Buffer, len: number[]) => number;

let getsockopt: GetSockOpt | undefined;
let unsupported: string | undefined;
let loaded = false;

function load(): void {
  if (loaded) return;
  loaded = true;
  if (process.platform !== 'linux') {
    unsupported = `SO_ORIGINAL_DST is Linux-only (this is ${process.platform})`;
    return;
  }
  try {
    const koffi = createRequire(import.meta.url)('koffi') as {
      load(path: string): { func(decl: string): GetSockOpt };
    };
    const libc = koffi.load('libc.so.6');
    getsockopt = libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *buf, _Inout_ uint32_t *len)');
  } catch (e) {
    unsupported = `cannot call getsockopt through koffi: ${e instanceof Error ? e.message : String(e)}`;
  }
}

/** undefined when the original destination can be read here; else why not. */
export function originalDstSupport(): string | undefined {
  load();
  return unsupported;
}

export interface OriginalDst {
  address: string;
  port: number;
}

/** The socket's file descriptor (libuv TCP handle), or -1. */
function fdOf(socket: Socket): number {
  const h = (socket as unknown as { _handle?: { fd?: number } })._handle;
  return typeof h?.fd === 'number' ? h.fd : -1;
}

const scratch = Buffer.alloc(28);
const scratchLen = [28];

/**
 * The destination the client connected to before iptables redirected it; undefined when the kernel has none
 * (not redirected and no conntrack entry) or the call is not available (see originalDstSupport).
 */
export function readOriginalDst(socket: Socket): OriginalDst | undefined {
  load();
  if (getsockopt === undefined) return undefined;
  const fd = fdOf(socket);
  if (fd < 0) return undefined;
  const v6 = socket.localAddress !== undefined && socket.localAddress.includes(':') && !socket.localAddress.startsWith('::ffff:');
  scratchLen[0] = v6 ? 28 : 16;
  if (getsockopt(fd, v6 ? SOL_IPV6 : SOL_IP, SO_ORIGINAL_DST, scratch, scratchLen) !== 0) return undefined;
  const family = scratch.readUInt16LE(0);
  const port = scratch.readUInt16BE(2);
  if (family === AF_INET) return { address: `${scratch[4]}.${scratch[5]}.${scratch[6]}.${scratch[7]}`, port };
  if (family === AF_INET6) {
    const parts: string[] = [];
    for (let i = 0; i < 8; i++) parts.push(scratch.readUInt16BE(8 + i * 2).toString(16));
    return { address: compressV6(parts), port };
  }
  return undefined;
}

/** `a:0:0:0:0:0:0:1` → `a::1` (RFC 5952: the longest run of two or more zero groups). */
function compressV6(parts: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (parts[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && parts[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return parts.join(':');
  return `${parts.slice(0, best).join(':')}::${parts.slice(best + bestLen).join(':')}`;
}

const ORIGINAL_DST = Symbol('weft.originalDst');
type Tagged = Socket & { [ORIGINAL_DST]?: string };

/** Keeps a connection's restored destination on its socket (`ip:port`, `[ipv6]:port`). */
export function tagOriginalDst(socket: Socket, dst: OriginalDst): void {
  (socket as Tagged)[ORIGINAL_DST] = dst.address.includes(':') ? `[${dst.address}]:${dst.port}` : `${dst.address}:${dst.port}`;
}

/**
 * The restored original destination of a downstream connection (`ip:port`), for ORIGINAL_DST clusters; undefined
 * when its listener did not restore one. (Envoy would use the listener's own local address then; Weft does not,
 * as that address is the proxy itself and the connection would loop.)
 */
export function originalDstOf(socket: Socket): string | undefined {
  return (socket as Tagged)[ORIGINAL_DST];
}
