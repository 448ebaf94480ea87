/**
 * What the proxy's admin API and stats port serve, built from the proxy's live state:
 *
 *   clusterViews(config)                          // /clusters: every cluster in force with its hosts
 *   proxyNode(nodeInit)                           // the Node of /server_info
 *   const stats = await startStatsServer({ store, port: 15090, host: '0.0.0.0' });   // GET /stats/prometheus
 *   stats.port; await stats.close();
 *
 * The stats port is Istio's Prometheus port: the sidecar's Envoy serves `/stats/prometheus` (only that path) on
 * 0.0.0.0:15090 so Prometheus can scrape the pod; it is read-only. Query parameters are the admin endpoint's
 * (`usedonly`, `filter`, `histogram_buckets=cumulative|summary`, `text_readouts`); the body is written piece by piece
 * as the scraper reads it (admin/stream.ts).
 */
import { create } from '@bufbuild/protobuf';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { NodeSchema, type Node } from '../xds/gen/envoy/config/core/v3/base_pb.js';
import type { NodeInit } from '../xds/client/index.js';
import type { ClusterStatusView, HostStatusView, CircuitBreakerView, HostStatView } from './admin/clusters.js';
import type { XdsConfig } from './config/xds-config.js';
import { sendChunks } from './admin/stream.js';
import { parseStatsParams, prometheusChunks } from './stats/render.js';
import type { StatsStore } from './stats/store.js';
import type { Thresholds } from './upstream/circuit-breaker.js';
import { GAUGES } from './upstream/cluster/stats.js';
import { HealthFlag, type Host } from './upstream/cluster/host.js';

function breaker(t: Thresholds): CircuitBreakerView {
  return { maxConnections: t.maxConnections, maxPendingRequests: t.maxPendingRequests, maxRequests: t.maxRequests, maxRetries: t.maxRetries };
}

function hostView(h: Host): HostStatusView {
  const stats: HostStatView[] = [];
  h.stats.forEach((name, value) => stats.push({ name, value, kind: GAUGES.has(name) ? 'gauge' : 'counter' }));
  return {
    address: h.address,
    port: h.port,
    hostname: h.hostname,
    stats,
    health: {
      failedActiveHc: h.has(HealthFlag.FAILED_ACTIVE_HC),
      failedOutlierCheck: h.has(HealthFlag.FAILED_OUTLIER_CHECK),
      failedEdsHealth: h.has(HealthFlag.FAILED_EDS_HEALTH),
      degradedActiveHc: h.has(HealthFlag.DEGRADED_ACTIVE_HC),
      degradedEdsHealth: h.has(HealthFlag.DEGRADED_EDS_HEALTH),
      pendingDynamicRemoval: h.has(HealthFlag.PENDING_DYNAMIC_REMOVAL),
      pendingActiveHc: h.has(HealthFlag.PENDING_ACTIVE_HC),
      excludedViaImmediateHcFail: h.has(HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL),
      activeHcTimeout: h.has(HealthFlag.ACTIVE_HC_TIMEOUT),
      edsStatusDraining: h.has(HealthFlag.EDS_STATUS_DRAINING),
    },
    weight: h.weight,
    priority: h.priority,
    locality: { region: h.locality.region, zone: h.locality.zone, subZone: h.locality.subZone },
    canary: h.canary,
    successRate: h.outlier.successRate,
    localOriginSuccessRate: h.outlier.localOriginSuccessRate,
  };
}

/** The `/clusters` view of every cluster in force (dynamic: they all came over CDS), used or not. */
export function clusterViews(config: XdsConfig): ClusterStatusView[] {
  const out: ClusterStatusView[] = [];
  for (const entry of config.clusters.values()) {
    // An idle cluster is shown from a runtime in its state, built for this view (the cluster stays idle).
    const rt = entry.inspect();
    const od = rt.outlierDetector;
    out.push({
      name: rt.name,
      observabilityName: rt.statName,
      edsServiceName: rt.type === 'EDS' ? rt.edsServiceName : undefined,
      addedViaApi: true,
      circuitBreakers: { default: breaker(rt.circuitBreaker('default').thresholds), high: breaker(rt.circuitBreaker('high').thresholds) },
      outlier: od
        ? {
            successRateAverage: od.successRateAverage,
            successRateEjectionThreshold: od.successRateEjectionThreshold,
            localOriginSuccessRateAverage: od.localOriginSuccessRateAverage,
            localOriginSuccessRateEjectionThreshold: od.localOriginSuccessRateEjectionThreshold,
          }
        : undefined,
      hosts: rt.hosts().map(hostView),
    });
  }
  return out;
}

/** The Node message the proxy announces (for /server_info). */
export function proxyNode(n: NodeInit): Node {
  return create(NodeSchema, {
    id: n.id,
    cluster: n.cluster ?? '',
    metadata: n.metadata,
    locality: n.locality ? { region: n.locality.region ?? '', zone: n.locality.zone ?? '', subZone: n.locality.subZone ?? '' } : undefined,
    userAgentName: n.userAgentName ?? 'weft',
    userAgentVersionType: n.userAgentVersion ? { case: 'userAgentVersion', value: n.userAgentVersion } : { case: undefined },
    clientFeatures: n.clientFeatures ?? [],
  });
}

export interface StatsServer {
  readonly port: number;
  close(): Promise<void>;
}

/** Serves `GET /stats/prometheus` of a store (Istio's 15090); every other path answers 404. */
export async function startStatsServer(opts: { store: StatsStore; port: number; host: string }): Promise<StatsServer> {
  const server: Server = createServer((req, res) => {
    req.resume();
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const send = (status: number, body: string): void => {
      res.writeHead(status, { 'content-type': 'text/plain; charset=UTF-8', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache, max-age=0' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path !== '/stats/prometheus') return send(404, 'not found: only /stats/prometheus is served on this port\n');
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'Method not allowed, GET required.\n');
    const parsed = parseStatsParams(new URLSearchParams(q < 0 ? '' : url.slice(q + 1)), true);
    if ('error' in parsed) return send(400, parsed.error);
    // The body is written piece by piece as the scraper reads it (admin/stream.ts): chunked, no content-length.
    res.writeHead(200, { 'content-type': 'text/plain; charset=UTF-8', 'cache-control': 'no-cache, max-age=0' });
    if (req.method === 'HEAD') return res.end();
    void sendChunks(res, prometheusChunks(opts.store, parsed.params));
  });
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: opts.host, port: opts.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
