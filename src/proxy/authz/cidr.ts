/**
 * CIDR ranges (envoy.config.core.v3.CidrRange) compiled for matching addresses on the request path: IPv4 as two
 * 32-bit numbers compared without allocation, IPv6 through node:net's BlockList. An IPv4-mapped IPv6 address
 * (`::ffff:10.0.0.1`, what a dual-stack socket reports) matches as its IPv4 address, as Envoy's
 * Network::Address normalisation does for RBAC.
 */
import { BlockList, isIPv4, isIPv6 } from 'node:net';

export class Cidr {
  private constructor(
    private readonly v4Net: number,
    private readonly v4Mask: number,
    private readonly v6: BlockList | null,
  ) {}

  /** Parses `address` / `prefixLen` (undefined: the full length); undefined when the address is not an IP. */
  static parse(address: string, prefixLen: number | undefined): Cidr | undefined {
    if (isIPv4(address)) {
      const len = prefixLen ?? 32;
      if (len < 0 || len > 32) return undefined;
      const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
      return new Cidr((ipv4ToNumber(address) & mask) >>> 0, mask, null);
    }
    if (isIPv6(address)) {
      const len = prefixLen ?? 128;
      if (len < 0 || len > 128) return undefined;
      const bl = new BlockList();
      bl.addSubnet(address, len, 'ipv6');
      return new Cidr(0, 0, bl);
    }
    return undefined;
  }

  /** Whether `ip` (as a socket reports it) is inside the range; false for '' and non-IP strings. */
  contains(ip: string): boolean {
    if (this.v6 === null) {
      const n = ipv4Number(ip);
      return n >= 0 && ((n & this.v4Mask) >>> 0) === this.v4Net;
    }
    return ip.includes(':') && isIPv6(ip) && this.v6.check(ip, 'ipv6');
  }
}

function ipv4ToNumber(a: string): number {
  const p = a.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

/** An IPv4 address (or IPv4-mapped IPv6 `::ffff:a.b.c.d`) as an unsigned number, -1 when it is neither. */
export function ipv4Number(ip: string): number {
  let i = 0;
  if (ip.length > 7 && ip.charCodeAt(0) === 58 /* : */) {
    if (!ip.startsWith('::ffff:') || ip.indexOf('.') < 0) return -1;
    i = 7;
  }
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0) return -1;
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + part;
}

/** The address with an IPv4-mapped IPv6 prefix removed (what RBAC principals and CheckRequests carry). */
export function plainIp(ip: string): string {
  return ip.startsWith('::ffff:') && ip.indexOf('.') > 0 ? ip.slice(7) : ip;
}
