/**
 * The FormatVars of one request (router/formatter.ts): what `%DOWNSTREAM_REMOTE_ADDRESS%`, `%UPSTREAM_REMOTE_ADDRESS%`,
 * `%START_TIME%`, `%RESPONSE_FLAGS%`... print in header mutations, read lazily from the stream (getters, so only
 * the values a template uses are computed). Built only for decisions that have header mutations.
 *
 *   const vars = new StreamVars(stream, useRemoteAddress);
 *   applyRequestHeaders(d, head, vars);
 *   vars.host = host; vars.upstreamSocket = conn.socket;    // once the upstream answers
 *   applyResponseHeaders(d, resp, req, vars);
 *
 * Envoy semantics (ConnectionManagerUtility::mutateRequestHeaders and the XFF original-IP detection): the
 * downstream remote address is the connection's peer with use_remote_address; without it, the last address of
 * x-forwarded-for when there is a valid one (printed with port 0, as Envoy parses it), else the peer. The
 * "direct" remote address is always the peer. IPv4-mapped IPv6 addresses print as IPv4. The upstream addresses
 * are known only once a host is chosen (response headers); before that they are empty, as in Envoy's request
 * header formatting.
 */
import { isIP, type Socket } from 'node:net';
import type { FormatVars } from '../router/formatter.js';
import type { Host } from '../../upstream/cluster/host.js';
import type { DownstreamStream } from '../server/connection.js';
import { getHeader } from '../headers.js';

function unmapped(ip: string | undefined): string | undefined {
  return ip !== undefined && ip.startsWith('::ffff:') && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

export class StreamVars implements FormatVars {
  private xffResolved = false;
  private xffIp: string | undefined;

  /** The upstream host and connection, once known (set by the router). */
  host: Host | null = null;
  upstreamSocket: Socket | null = null;

  constructor(
    protected readonly stream: DownstreamStream,
    private readonly useRemoteAddress: boolean,
  ) {}

  /** The last valid IP of x-forwarded-for (only consulted without use_remote_address). */
  private xff(): string | undefined {
    if (!this.xffResolved) {
      this.xffResolved = true;
      const v = getHeader(this.stream.head.headers, 'x-forwarded-for');
      if (v !== undefined) {
        const last = v.slice(v.lastIndexOf(',') + 1).trim();
        if (isIP(last) !== 0) this.xffIp = unmapped(last);
      }
    }
    return this.xffIp;
  }

  get downstreamRemoteAddress(): string | undefined {
    if (!this.useRemoteAddress) {
      const x = this.xff();
      if (x !== undefined) return x;
    }
    return unmapped(this.stream.socket.remoteAddress);
  }

  get downstreamRemotePort(): number | undefined {
    if (!this.useRemoteAddress && this.xff() !== undefined) return 0;
    return this.stream.socket.remotePort;
  }

  get downstreamDirectRemoteAddress(): string | undefined {
    return unmapped(this.stream.socket.remoteAddress);
  }

  get downstreamDirectRemotePort(): number | undefined {
    return this.stream.socket.remotePort;
  }

  get downstreamLocalAddress(): string | undefined {
    return unmapped(this.stream.socket.localAddress);
  }

  get downstreamLocalPort(): number | undefined {
    return this.stream.socket.localPort;
  }

  get upstreamRemoteAddress(): string | undefined {
    return this.host?.address;
  }

  get upstreamRemotePort(): number | undefined {
    return this.host?.port;
  }

  get upstreamLocalAddress(): string | undefined {
    return unmapped(this.upstreamSocket?.localAddress);
  }

  get upstreamLocalPort(): number | undefined {
    return this.upstreamSocket?.localPort;
  }

  get startTimeMs(): number {
    return this.stream.startMs;
  }

  get responseFlags(): string {
    return this.stream.flags;
  }
}
