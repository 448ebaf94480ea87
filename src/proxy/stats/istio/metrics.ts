/**
 * Istio's standard metrics (istio/proxy's istio_stats filter), kept in the proxy's StatsStore as labelled families
 * and rendered on /stats/prometheus under their own names:
 *
 *   istio_requests_total                   counter    HTTP/gRPC requests
 *   istio_request_duration_milliseconds    histogram  request start to response end, ms
 *   istio_request_bytes / istio_response_bytes   histogram  body bytes per request / response
 *   istio_request_messages_total / istio_response_messages_total   counter  gRPC messages (grpc-frames.ts)
 *   istio_tcp_connections_opened_total / _closed_total, istio_tcp_received_bytes_total / _sent_bytes_total   counter
 *   istio_build{component="proxy",tag=<version>}   gauge 1
 *
 * Histograms use Envoy's default buckets (0.5 ... 3600000): Istio's filter records them as ordinary Envoy histograms
 * and its bootstrap sets no bucket settings unless the `sidecar.istio.io/statsHistogramBuckets` annotation asks.
 *
 * Labels, in the order Istio emits them (HTTP_LABELS; TCP_LABELS lacks response_code and grpc_response_status):
 * reporter, source_{workload, canonical_service, canonical_revision, workload_namespace, principal, app, version,
 * cluster}, destination_{workload, workload_namespace, principal, app, version, service, canonical_service,
 * canonical_revision, service_name, service_namespace, cluster}, request_protocol, response_code,
 * grpc_response_status, response_flags, connection_security_policy. How each is filled: edgeLabels().
 *
 *   const m = new IstioMetrics(store, { nodeId, metadata, version });    // once per proxy
 *   m.http('destination')       // the recorder of inbound connection managers (http.ts)
 *   m.tcp('source')             // the recorder of outbound TCP proxies (tcp.ts)
 *
 * Cost: label values are computed when a label set is first seen, and the set's counters and histograms are kept in
 * small maps keyed by the objects the request already holds (the cluster's MeshService, the peer Workload from the
 * exchange cache, the principal string, the status code): recording is a few map reads and increments, no string
 * is built per request. `enabled: false` (`weft proxy --metrics=false`) keeps none of this: the recorders only
 * remove exchange headers a peer sends, so they never reach the application.
 */
import type { JsonObject } from '@bufbuild/protobuf';
import type { Counter } from '../metric.js';
import { DEFAULT_BUCKETS, HistogramUnit, type Histogram } from '../histogram.js';
import type { Family, StatsStore } from '../store.js';
import { PeerExchange } from './peer-metadata.js';
import { TcpExchange } from './tcp-exchange.js';
import type { MeshService } from './service.js';
import { localWorkload, UNKNOWN_WORKLOAD, workloadFromEndpointMetadata, type Workload } from './workload.js';
import type { Host } from '../../upstream/cluster/host.js';

export type Reporter = 'source' | 'destination';

export const HTTP_LABELS: readonly string[] = Object.freeze([
  'reporter',
  'source_workload',
  'source_canonical_service',
  'source_canonical_revision',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_service_name',
  'destination_service_namespace',
  'destination_cluster',
  'request_protocol',
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
]);

/** Index of request_protocol in HTTP_LABELS (the edge labels are the ones before it). */
const EDGE_LABEL_COUNT = 20;

export const TCP_LABELS: readonly string[] = Object.freeze([
  ...HTTP_LABELS.slice(0, EDGE_LABEL_COUNT),
  'request_protocol',
  'response_flags',
  'connection_security_policy',
]);

const UNKNOWN = 'unknown';

export interface IstioMetricsOptions {
  /** The proxy's node id (x-envoy-peer-metadata-id). */
  nodeId: string;
  /** The proxy's node metadata (NAMESPACE, LABELS, WORKLOAD_NAME, CLUSTER_ID, SERVICE_ACCOUNT). */
  metadata?: JsonObject;
  /** The proxy's version (istio_build's tag). */
  version?: string;
  /** Record the metrics (default true). Off: only stray exchange headers are removed. */
  enabled?: boolean;
}

/** The destination service labels of one cluster (or Host value); recorders key their label sets by it. */
export class Destination {
  constructor(
    /** destination_service ('' = not known). */
    readonly host: string,
    /** destination_service_name ('' = not known). */
    readonly name: string,
  ) {}
}

/** The families and the proxy-wide context every recorder shares. */
export class IstioMetrics {
  readonly enabled: boolean;
  readonly local: Workload;
  readonly exchange: PeerExchange;
  /** The in-band TCP exchange (tcp-exchange.ts); kept with metrics off too, since a peer's frame must be removed. */
  readonly tcpExchange: TcpExchange;
  readonly requests: Family<Counter>;
  readonly duration: Family<Histogram>;
  readonly requestBytes: Family<Histogram>;
  readonly responseBytes: Family<Histogram>;
  readonly requestMessages: Family<Counter>;
  readonly responseMessages: Family<Counter>;
  readonly tcpOpened: Family<Counter>;
  readonly tcpClosed: Family<Counter>;
  readonly tcpReceived: Family<Counter>;
  readonly tcpSent: Family<Counter>;
  /** Destinations of clusters, by MeshService (the cluster's, shared by its successors of the same metadata). */
  private readonly byService = new WeakMap<MeshService, Destination>();
  private readonly reporters = new Map<string, unknown>();
  private readonly endpointPeers = new WeakMap<Host, Workload>();

  constructor(
    readonly store: StatsStore,
    opts: IstioMetricsOptions,
  ) {
    this.enabled = opts.enabled ?? true;
    this.local = localWorkload(opts.nodeId, opts.metadata);
    this.exchange = new PeerExchange(this.local, opts.nodeId);
    this.tcpExchange = new TcpExchange(this.exchange);
    this.requests = store.counterFamily('istio_requests_total', HTTP_LABELS);
    this.duration = store.histogramFamily('istio_request_duration_milliseconds', HTTP_LABELS, HistogramUnit.Milliseconds, DEFAULT_BUCKETS);
    this.requestBytes = store.histogramFamily('istio_request_bytes', HTTP_LABELS, HistogramUnit.Bytes, DEFAULT_BUCKETS);
    this.responseBytes = store.histogramFamily('istio_response_bytes', HTTP_LABELS, HistogramUnit.Bytes, DEFAULT_BUCKETS);
    this.requestMessages = store.counterFamily('istio_request_messages_total', HTTP_LABELS);
    this.responseMessages = store.counterFamily('istio_response_messages_total', HTTP_LABELS);
    this.tcpOpened = store.counterFamily('istio_tcp_connections_opened_total', TCP_LABELS);
    this.tcpClosed = store.counterFamily('istio_tcp_connections_closed_total', TCP_LABELS);
    this.tcpReceived = store.counterFamily('istio_tcp_received_bytes_total', TCP_LABELS);
    this.tcpSent = store.counterFamily('istio_tcp_sent_bytes_total', TCP_LABELS);
    if (this.enabled) store.gaugeFamily('istio_build', ['component', 'tag']).get(['proxy', opts.version || UNKNOWN]).set(1);
  }

  /** A recorder shared by every user of one kind and reporter (created on first use). */
  reporter<T>(key: string, make: () => T): T {
    let r = this.reporters.get(key) as T | undefined;
    if (r === undefined) this.reporters.set(key, (r = make()));
    return r;
  }

  /**
   * The workload an upstream endpoint's `filter_metadata.istio.workload` names (Istio's client-side fallback when no
   * peer metadata came back); UNKNOWN_WORKLOAD when it has none. Parsed once per host.
   */
  endpointPeer(h: Host): Workload {
    let w = this.endpointPeers.get(h);
    if (w === undefined) {
      const v = h.metadata?.filterMetadata['istio']?.['workload'];
      w = (typeof v === 'string' ? workloadFromEndpointMetadata(v) : undefined) ?? UNKNOWN_WORKLOAD;
      this.endpointPeers.set(h, w);
    }
    return w;
  }

  /** The Destination of a cluster's service. */
  destinationOf(svc: MeshService): Destination {
    let d = this.byService.get(svc);
    if (d === undefined) this.byService.set(svc, (d = new Destination(svc.host, svc.name)));
    return d;
  }

  /**
   * The label values before request_protocol for one edge (HTTP_LABELS[0..19]), Istio's populatePeerInfo:
   * `peer` is the other side's workload (UNKNOWN_WORKLOAD when not known), `dest` the destination service, and the
   * principals those of the connection's TLS session (tls/peer.ts PeerInfo; '' = none): `principal` the peer's
   * verified URI SAN, `localPrincipal` the URI SAN of the certificate this proxy presented (its workload
   * certificate) — on the server side the downstream connection's, on the client side the upstream connection's,
   * as Istio reads uriSanPeerCertificate / uriSanLocalCertificate. Unknown values print `unknown`; a peer's missing
   * canonical revision prints `latest`.
   */
  edgeLabels(reporter: Reporter, dest: Destination, peer: Workload, principal: string, localPrincipal: string): string[] {
    const l = this.local;
    const peerNs = namespaceOfPrincipal(principal) || peer.namespace;
    const or = (v: string, d: string = UNKNOWN): string => (v !== '' ? v : d);
    if (reporter === 'destination') {
      return [
        'destination',
        or(peer.workloadName),
        or(peer.canonicalService),
        or(peer.canonicalRevision, 'latest'),
        or(peerNs),
        or(principal),
        or(peer.app),
        or(peer.version),
        or(peer.clusterId),
        l.workloadName,
        l.namespace,
        or(localPrincipal),
        l.app,
        l.version,
        or(dest.host, l.canonicalService),
        l.canonicalService,
        l.canonicalRevision,
        or(dest.name, l.canonicalService),
        l.namespace,
        l.clusterId,
      ];
    }
    return [
      'source',
      l.workloadName,
      l.canonicalService,
      l.canonicalRevision,
      l.namespace,
      or(localPrincipal),
      l.app,
      l.version,
      l.clusterId,
      or(peer.workloadName),
      or(peerNs),
      or(principal),
      or(peer.app),
      or(peer.version),
      or(dest.host),
      or(peer.canonicalService),
      or(peer.canonicalRevision, 'latest'),
      or(dest.name),
      or(peerNs),
      or(peer.clusterId),
    ];
  }
}

/** Istio's getNamespace: the `<ns>` of `.../ns/<ns>/sa/...`; '' when absent. */
export function namespaceOfPrincipal(principal: string): string {
  if (principal === '') return '';
  const i = principal.indexOf('/ns/');
  if (i < 0) return '';
  const start = i + 4;
  const end = principal.indexOf('/', start);
  return end < 0 ? principal.slice(start) : principal.slice(start, end);
}

/**
 * connection_security_policy, as Istio's istio_stats: the server side says `mutual_tls` when the downstream presented
 * a (verified) certificate, else `none`; the client side always says `unknown`.
 */
export function securityPolicy(reporter: Reporter, mtls: boolean): string {
  if (reporter === 'source') return UNKNOWN;
  return mtls ? 'mutual_tls' : 'none';
}

/** Envoy's short response flags string: `-` when none. */
export function flagsLabel(flags: string): string {
  return flags === '' ? '-' : flags;
}
