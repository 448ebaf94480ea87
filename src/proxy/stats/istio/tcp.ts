/**
 * The TCP side of Istio's metrics for one reporter, called by the tcp_proxy session (tcp/session.ts):
 *
 *   session.istio = recorder.open(session)      // upstream connected: istio_tcp_connections_opened_total
 *   session.istio.received.add(n)               // bytes read from the downstream
 *   session.istio.sent.add(n)                   // bytes written to the downstream
 *   recorder.close(session)                     // session over: istio_tcp_connections_closed_total (a session that
 *                                               // never connected counts opened and closed then, with its flags)
 *
 * Labels as HTTP (metrics.ts edgeLabels) with request_protocol `tcp` and no response_code / grpc_response_status.
 * Peers: the in-band metadata exchange's (tcp-exchange.ts: between sidecars over mTLS); without it, on the client
 * side the upstream endpoint's `istio.workload` metadata (Istio's endpoint fallback: workload, namespace, canonical
 * service and revision, cluster; app and version unknown), on the server side only the certificate (principal and
 * namespace). The series is chosen when the session opens, after the exchange (tcp/session.ts). Principals and connection_security_policy as HTTP (http.ts): the downstream connection's
 * TLS session on the server side, the upstream connection's on the client side (`unknown` policy there, as Istio). Bytes count on the downstream connection as they flow, so long connections show traffic
 * before they close.
 */
import type { Counter } from '../metric.js';
import type { Host } from '../../upstream/cluster/host.js';
import type { ClusterRuntime } from '../../upstream/cluster/cluster.js';
import { peerOf, PLAINTEXT_PEER } from '../../tls/peer.js';
import type { Socket } from 'node:net';
import { Destination, flagsLabel, securityPolicy, type IstioMetrics, type Reporter } from './metrics.js';
import { UNKNOWN_WORKLOAD, type Workload } from './workload.js';

/** The counters of one complete TCP label set. */
export class TcpSeries {
  readonly opened: Counter;
  readonly closed: Counter;
  readonly received: Counter;
  readonly sent: Counter;
  constructor(m: IstioMetrics, values: string[]) {
    this.opened = m.tcpOpened.get(values);
    this.closed = m.tcpClosed.get(values);
    this.received = m.tcpReceived.get(values);
    this.sent = m.tcpSent.get(values);
  }
}

/** What the recorder reads of a session. */
export interface TcpSessionView {
  readonly downstream: Socket;
  /** The upstream connection (null: not connected, or closed). */
  readonly upstream: Socket | null;
  readonly cluster: ClusterRuntime | undefined;
  readonly host: Host | null;
  readonly flags: string;
  /** The peers' workloads from the in-band exchange (tcp-exchange.ts; null: none). */
  readonly downstreamPeer: Workload | null;
  readonly upstreamPeer: Workload | null;
  istio: TcpSeries | null;
}

const NO_CLUSTER = new Destination('', '');

export class IstioTcpStats {
  /** destination → peer → peer principal → local principal → flags + mTLS → series. */
  private readonly series = new Map<Destination, Map<Workload, Map<string, Map<string, Map<string, TcpSeries>[]>>>>();

  constructor(
    readonly metrics: IstioMetrics,
    readonly reporter: Reporter,
  ) {}

  /** The recorder of a reporter (shared by the TCP proxies of that direction); null when metrics are off. */
  static of(metrics: IstioMetrics, reporter: Reporter): IstioTcpStats | null {
    if (!metrics.enabled) return null;
    return metrics.reporter(`tcp|${reporter}`, () => new IstioTcpStats(metrics, reporter));
  }

  /** The upstream is connected: the session's series, with the connection counted as opened. */
  open(s: TcpSessionView): TcpSeries {
    const series = this.seriesOf(s);
    series.opened.inc();
    return series;
  }

  /** The session is over. */
  close(s: TcpSessionView): void {
    let series = s.istio;
    if (series === null) {
      // Never connected (no route, overflow, no host, connect failures): opened and closed now, with its flags.
      series = s.istio = this.seriesOf(s);
      series.opened.inc();
    }
    series.closed.inc();
  }

  private seriesOf(s: TcpSessionView): TcpSeries {
    const c = s.cluster;
    const svc = c?.meshService;
    const dest = svc !== undefined && (svc.host !== '' || svc.name !== '') ? this.metrics.destinationOf(svc) : NO_CLUSTER;
    const server = this.reporter === 'destination';
    // Principals from the TLS session: the downstream connection's on the server side, the upstream's on the client.
    const tls = server ? peerOf(s.downstream) : s.upstream !== null ? peerOf(s.upstream) : PLAINTEXT_PEER;
    // The exchange's peer; without one, the client side falls back to the endpoint's metadata (as Istio).
    const exchanged = server ? s.downstreamPeer : s.upstreamPeer;
    const peer = exchanged ?? (!server && s.host !== null ? this.metrics.endpointPeer(s.host) : UNKNOWN_WORKLOAD);
    let byPeer = this.series.get(dest);
    if (byPeer === undefined) this.series.set(dest, (byPeer = new Map()));
    let byPrincipal = byPeer.get(peer);
    if (byPrincipal === undefined) byPeer.set(peer, (byPrincipal = new Map()));
    let byLocal = byPrincipal.get(tls.principal);
    if (byLocal === undefined) byPrincipal.set(tls.principal, (byLocal = new Map()));
    let bySecurity = byLocal.get(tls.localPrincipal);
    if (bySecurity === undefined) byLocal.set(tls.localPrincipal, (bySecurity = [new Map(), new Map()]));
    const mtls = server && tls.certHash !== '';
    const byFlags = bySecurity[mtls ? 1 : 0]!;
    let series = byFlags.get(s.flags);
    if (series === undefined) {
      const values = this.metrics.edgeLabels(this.reporter, dest, peer, tls.principal, tls.localPrincipal);
      values.push('tcp', flagsLabel(s.flags), securityPolicy(this.reporter, mtls));
      byFlags.set(s.flags, (series = new TcpSeries(this.metrics, values)));
    }
    return series;
  }
}
