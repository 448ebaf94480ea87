/**
 * The HTTP side of Istio's metrics and metadata exchange, for one reporter (`source` on outbound connection managers,
 * `destination` on inbound ones). The connection manager and the downstream streams call it at four points, one line
 * each:
 *
 *   onRequest(stream)                 request head, before routing (hcm.ts): exchange headers read and removed
 *   onUpstream(stream, cluster)       the cluster is chosen (hcm.ts): outbound requests get this proxy's headers
 *   onResponseHead(stream, resp)      response head (request-stats.ts HttpConnStats.responseHead): exchange both ways
 *   record(stream)                    stream end (HttpConnStats.requestEnd): the request's metrics
 *
 * Recording (Istio's istio_stats `log`): the label set is found through maps keyed by objects the stream already
 * holds — the Destination (the cluster's MeshService, or the Host value when the cluster names no service, as
 * Istio's Host-header fallback), the peer Workload (the exchange cache's object), the principal string, the
 * protocol / mTLS pair, then the response flags and a number combining status and grpc-status — so a label set seen
 * before costs map reads; a new one builds its values once and creates its counters and histograms.
 *
 * Values: response_code is the status sent (0 when the client went away first); grpc_response_status, for gRPC
 * requests, is the trailers' grpc-status, else the response head's, else Envoy's mapping of the HTTP status
 * ('' without a response); response_flags the stream's flags (`-` for none); request duration from the request head
 * to the end of the stream in whole milliseconds; request/response bytes the body bytes; message counts from the
 * gRPC frame prefixes (grpc-frames.ts). Peers: the exchange's; on the client side without one (the server has no
 * Weft/Istio sidecar, or runs with --metrics=false), the upstream endpoint's `istio.workload` metadata, as Istio.
 * Principals: the verified URI SANs of the connection's TLS session (tls/peer.ts) — on the server side the downstream
 * connection's (source_principal the client's certificate, destination_principal this proxy's), on the client side
 * the upstream connection's (source_principal this proxy's certificate, destination_principal the server's), as
 * Istio's uriSanPeerCertificate / uriSanLocalCertificate; `unknown` without TLS.
 * connection_security_policy (securityPolicy): `mutual_tls` when the downstream connection presented a verified
 * certificate (destination reporter), else `none`; always `unknown` on the source side, as Istio's istio_stats.
 */
import type { Counter } from '../metric.js';
import type { Histogram } from '../histogram.js';
import type { ResponseHead } from '../../http/headers.js';
import { grpcStatusOf, httpToGrpcStatus, isGrpcRequest } from '../../http/grpc/common.js';
import { peerOf, type PeerInfo } from '../../tls/peer.js';
import type { DownstreamStream } from '../../http/server/connection.js';
import type { UpstreamCluster } from '../../http/route-path/upstream-request.js';
import { GrpcFrameCounter } from './grpc-frames.js';
import { Destination, flagsLabel, securityPolicy, type IstioMetrics, type Reporter } from './metrics.js';
import { takePeerHeaders } from './peer-metadata.js';
import { UNKNOWN_WORKLOAD, type Workload } from './workload.js';

/** The counters and histograms of one complete label set. */
class HttpSeries {
  readonly requests: Counter;
  readonly duration: Histogram;
  readonly requestBytes: Histogram;
  readonly responseBytes: Histogram;
  readonly requestMessages: Counter | null;
  readonly responseMessages: Counter | null;
  constructor(m: IstioMetrics, values: string[], grpc: boolean) {
    this.requests = m.requests.get(values);
    this.duration = m.duration.get(values);
    this.requestBytes = m.requestBytes.get(values);
    this.responseBytes = m.responseBytes.get(values);
    this.requestMessages = grpc ? m.requestMessages.get(values) : null;
    this.responseMessages = grpc ? m.responseMessages.get(values) : null;
  }
}

/** One edge (reporter, peers, destination, protocol, security): its series by flags and status. */
class HttpEdge {
  /** Series without response flags, by statusKey. */
  readonly plain = new Map<number, HttpSeries>();
  /** Series with response flags: flags → statusKey → series. */
  flagged: Map<string, Map<number, HttpSeries>> | null = null;
  constructor(
    /** The edge's label values (HTTP_LABELS up to destination_cluster) plus request_protocol. */
    readonly base: readonly string[],
    readonly grpc: boolean,
    readonly security: string,
  ) {}
}

/** status × 32 + (grpc-status + 1): one number per (response_code, grpc_response_status) pair. */
function statusKey(status: number, grpcStatus: number): number {
  return status * 32 + (grpcStatus >= 0 && grpcStatus < 31 ? grpcStatus + 1 : 0);
}

/** Host values a recorder keeps Destinations for (Istio's Host-header fallback); beyond it: `unknown`. */
const MAX_HOST_DESTINATIONS = 1000;

/**
 * Peers a recorder keeps edges for. Peer metadata is whatever a client sends, so a hostile client could otherwise
 * create series without end; beyond this many, new peers are counted as `unknown`.
 */
export const MAX_PEERS = 10_000;

export class IstioHttpStats {
  /** destination → peer → peer principal → local principal → edges by (gRPC, mTLS) (edgeIndex). */
  private readonly edges = new Map<Destination, Map<Workload, Map<string, Map<string, Array<HttpEdge | undefined>>>>>();
  /** (destination, peer) pairs kept (bounded by MAX_PEERS). */
  private peerCount = 0;
  private readonly hosts = new Map<string, Destination>();
  private readonly unknownHost = new Destination('', '');

  constructor(
    readonly metrics: IstioMetrics,
    readonly reporter: Reporter,
  ) {}

  /** The recorder of a reporter (shared by the connection managers of that direction). */
  static of(metrics: IstioMetrics, reporter: Reporter): IstioHttpStats {
    return metrics.reporter(`http|${reporter}`, () => new IstioHttpStats(metrics, reporter));
  }

  /** Request head: the exchange headers are taken off (read on the server side; on the client side the app's are dropped). */
  onRequest(s: DownstreamStream): void {
    const value = takePeerHeaders(s.head.headers);
    if (!this.metrics.enabled) return;
    if (this.reporter === 'destination' && value !== '') s.peer = this.metrics.exchange.peer(value) ?? null;
    if (isGrpcRequest(s.head)) s.grpcFrames = new GrpcFrameCounter();
  }

  /** The router chose `cluster`: an outbound request to a mesh service carries this proxy's metadata. */
  onUpstream(s: DownstreamStream, cluster: UpstreamCluster): void {
    if (this.reporter === 'source' && this.metrics.enabled && !cluster.runtime.meshService.external) this.metrics.exchange.inject(s.head.headers);
  }

  /** Response head: the client side reads and removes the server's metadata; the server side answers with its own. */
  onResponseHead(s: DownstreamStream, resp: ResponseHead): void {
    const value = takePeerHeaders(resp.headers);
    if (!this.metrics.enabled) return;
    if (this.reporter === 'source') {
      if (value !== '') s.peer = this.metrics.exchange.peer(value) ?? null;
    } else if (s.peer !== null) {
      // Istio answers only a request that carried metadata: a client outside the mesh gets none.
      this.metrics.exchange.inject(resp.headers);
    }
    if (s.grpcFrames !== null) s.grpcStatus = grpcStatusOf(resp.headers) ?? -1;
  }

  /** Stream end: counts the request. */
  record(s: DownstreamStream): void {
    if (!this.metrics.enabled) return;
    const grpcFrames = s.grpcFrames;
    const grpc = grpcFrames !== null;
    // The TLS session the labels' principals come from: the downstream connection's on the server side, the
    // upstream connection's (recorded by the router when the attempt got its connection) on the client side.
    const tls = this.reporter === 'destination' ? peerOf(s.socket) : s.upstreamPeer;
    // The client side falls back to the upstream endpoint's metadata when no peer metadata came back (Istio's too).
    const peer = s.peer ?? (this.reporter === 'source' && s.upstreamHost !== null ? this.metrics.endpointPeer(s.upstreamHost) : UNKNOWN_WORKLOAD);
    const edge = this.edge(this.destination(s), peer, tls, grpc);
    const status = s.status;
    let grpcStatus = -1;
    if (grpc && status !== 0) {
      const t = s.responseTrailers;
      const fromTrailers = t !== null ? grpcStatusOf(t) : undefined;
      grpcStatus = fromTrailers ?? (s.grpcStatus >= 0 ? s.grpcStatus : httpToGrpcStatus(status));
    }
    const key = statusKey(status, grpcStatus);
    const flags = s.flags;
    let map = edge.plain;
    if (flags !== '') {
      const f = (edge.flagged ??= new Map());
      let m = f.get(flags);
      if (m === undefined) f.set(flags, (m = new Map()));
      map = m;
    }
    let series = map.get(key);
    if (series === undefined) {
      const values = [...edge.base, String(status), grpcStatus >= 0 ? String(grpcStatus) : '', flagsLabel(flags), edge.security];
      map.set(key, (series = new HttpSeries(this.metrics, values, grpc)));
    }
    series.requests.inc();
    series.duration.record(Math.floor(Date.now() - s.startMs));
    series.requestBytes.record(s.bytesReceived);
    series.responseBytes.record(s.bytesSent);
    if (grpcFrames !== null) {
      series.requestMessages!.add(grpcFrames.requestMessages);
      series.responseMessages!.add(grpcFrames.responseMessages);
    }
  }

  /** The stream's destination service: the cluster's, else the Host value (Istio's fallback). */
  private destination(s: DownstreamStream): Destination {
    const c = s.cluster;
    if (c !== null) {
      const svc = c.runtime.meshService;
      if (svc.host !== '' || svc.name !== '') return this.metrics.destinationOf(svc);
    }
    const host = s.head.authority;
    if (host === '') return this.unknownHost;
    let d = this.hosts.get(host);
    if (d === undefined) {
      if (this.hosts.size >= MAX_HOST_DESTINATIONS) return this.unknownHost;
      this.hosts.set(host, (d = new Destination(host, host)));
    }
    return d;
  }

  private edge(dest: Destination, peer: Workload, tls: PeerInfo, grpc: boolean): HttpEdge {
    let byPeer = this.edges.get(dest);
    if (byPeer === undefined) this.edges.set(dest, (byPeer = new Map()));
    let byPrincipal = byPeer.get(peer);
    if (byPrincipal === undefined) {
      if (this.peerCount >= MAX_PEERS && peer !== UNKNOWN_WORKLOAD) return this.edge(dest, UNKNOWN_WORKLOAD, tls, grpc);
      this.peerCount++;
      byPeer.set(peer, (byPrincipal = new Map()));
    }
    const principal = tls.principal;
    let byLocal = byPrincipal.get(principal);
    if (byLocal === undefined) byPrincipal.set(principal, (byLocal = new Map()));
    let edges = byLocal.get(tls.localPrincipal);
    if (edges === undefined) byLocal.set(tls.localPrincipal, (edges = [undefined, undefined, undefined, undefined]));
    const mtls = this.reporter === 'destination' && tls.certHash !== '';
    const i = edgeIndex(grpc, mtls);
    let e = edges[i];
    if (e === undefined) {
      const base = this.metrics.edgeLabels(this.reporter, dest, peer, principal, tls.localPrincipal);
      base.push(grpc ? 'grpc' : 'http');
      edges[i] = e = new HttpEdge(base, grpc, securityPolicy(this.reporter, mtls));
    }
    return e;
  }
}

/** The slot of an edge in its (gRPC, mTLS) quadruple. */
function edgeIndex(grpc: boolean, mtls: boolean): number {
  return (grpc ? 1 : 0) + (mtls ? 2 : 0);
}
