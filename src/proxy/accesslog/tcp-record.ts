/**
 * A TCP proxy session's access log line: the session's addresses, cluster, host, flags, byte counts and duration as
 * FormatVars, formatted with an empty request (every `%REQ(...)%` and `%PROTOCOL%` prints `-`, as for Envoy's
 * tcp_proxy). Built once, when the session has closed.
 *
 *   logTcpSession(cfg.accessLogs, session);     // tcp/session.ts, at the end of a session
 */
import { peerOf } from '../tls/peer.js';
import type { FormatVars } from '../http/router/formatter.js';
import type { TcpProxySession } from '../tcp/session.js';
import { NO_REQUEST, type AccessLogs } from './access-log.js';

function unmapped(ip: string | undefined): string | undefined {
  return ip !== undefined && ip.startsWith('::ffff:') && ip.includes('.') ? ip.slice(7) : ip;
}

class TcpRecord implements FormatVars {
  constructor(
    private readonly s: TcpProxySession,
    private readonly endMs: number,
  ) {}

  get downstreamRemoteAddress(): string | undefined {
    return unmapped(this.s.downstreamLocal?.remoteAddress);
  }
  get downstreamRemotePort(): number | undefined {
    return this.s.downstreamLocal?.remotePort;
  }
  get downstreamDirectRemoteAddress(): string | undefined {
    return this.downstreamRemoteAddress;
  }
  get downstreamDirectRemotePort(): number | undefined {
    return this.downstreamRemotePort;
  }
  get downstreamLocalAddress(): string | undefined {
    return unmapped(this.s.downstreamLocal?.address);
  }
  get downstreamLocalPort(): number | undefined {
    return this.s.downstreamLocal?.port;
  }
  get upstreamRemoteAddress(): string | undefined {
    return this.s.host?.address;
  }
  get upstreamRemotePort(): number | undefined {
    return this.s.host?.port;
  }
  get upstreamLocalAddress(): string | undefined {
    return unmapped(this.s.upstreamLocalAddress);
  }
  get upstreamLocalPort(): number | undefined {
    return this.s.upstreamLocalPort;
  }
  get upstreamCluster(): string | undefined {
    return this.s.clusterName || undefined;
  }
  get requestedServerName(): string | undefined {
    return peerOf(this.s.downstream).sni || undefined;
  }
  get downstreamPeerUriSan(): string | undefined {
    return peerOf(this.s.downstream).principal || undefined;
  }
  get startTimeMs(): number {
    return this.s.startMs;
  }
  get responseFlags(): string {
    return this.s.flags;
  }
  get durationMs(): number {
    return Math.round(this.endMs - this.s.startMs);
  }
  get bytesReceived(): number {
    return this.s.bytesReceived;
  }
  get bytesSent(): number {
    return this.s.bytesSent;
  }
  get upstreamRequestAttemptCount(): number {
    return this.s.attempts;
  }
}

const TCP_ROUTE = { routeName: '', cluster: '' };

/** Writes the session's access log lines. */
export function logTcpSession(logs: AccessLogs, s: TcpProxySession): void {
  logs.log(NO_REQUEST, null, new TcpRecord(s, Date.now()), TCP_ROUTE);
}
