/**
 * The Weft dashboard, first version: an HTTP server on 127.0.0.1 serving one HTML page (page.ts: vanilla JS, no
 * build step, no framework, nothing from a CDN) that polls a JSON API and shows the mesh the local runtime runs.
 *
 *   const d = await startDashboard({ status: () => runtime.status() });   // port 0 (default): any free port
 *   console.log(`Dashboard: http://127.0.0.1:${d.port}/`);
 *   await d.close();
 *
 * - `GET /` the page; `GET /api/mesh` the view (MeshView below); `GET /healthz` 200. On a loopback address only
 *   requests for a loopback host name are served (403 otherwise: no DNS rebinding).
 * - Every `scrapeIntervalMs` (2 s) it reads the runtime status (workloads: phase, ready, restarts, ports), scrapes
 *   each running sidecar's admin `/stats/prometheus` (only the request stats, see metrics.ts), and reads the control
 *   plane's `/debug/syncz` (each proxy's xDS sync state per type, as `istioctl proxy-status` shows it).
 * - From the sidecars' Envoy stats it computes, over the last `windowMs` (10 s), request rate, success rate
 *   (non-5xx) and p50/p99 latency per workload and per service (inbound stats of the serving sidecars) and per call
 *   edge (outbound cluster stats of the calling sidecars: source service → destination service and subset).
 * - A ready replica's sidecar or the control plane that does not answer is listed under `scrapeErrors`; the rest is
 *   still shown.
 *
 * A workload's service is its `app` label (Istio's canonical service name), else its name.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RuntimeStatus, WorkloadStatus } from '../runtime/status.js';
import { golden, parseOutboundCluster, parsePrometheusText, SnapshotWindow, snapshotOf, STATS_FILTER, sumCounters } from './metrics.js';
import type { Golden, RequestCounters } from './metrics.js';
import { dashboardPage } from './page.js';

export interface DashboardOptions {
  /** Port on `bind` (0 or unset: any free port). */
  port?: number;
  /** Address to listen on (default 127.0.0.1). */
  bind?: string;
  /** The runtime's status (workloads and their sidecar ports). */
  status: () => RuntimeStatus | Promise<RuntimeStatus>;
  /** The control plane's HTTP address (`http://127.0.0.1:15014` or `127.0.0.1:15014`); default: from the status. */
  controlPlaneHttp?: string;
  /** How often sidecars are scraped (default 2000 ms). */
  scrapeIntervalMs?: number;
  /** The window rates and percentiles are computed over (default 10000 ms). */
  windowMs?: number;
}

export interface Dashboard {
  readonly port: number;
  /** The current view (what /api/mesh answers). */
  view(): MeshView;
  close(): Promise<void>;
}

export interface WorkloadView extends Golden {
  /** `<name>-<replica>`. */
  instance: string;
  name: string;
  replica: number;
  namespace: string;
  service: string;
  version: string;
  phase: string;
  ready: boolean;
  restarts: number;
  pid?: number;
  sidecarPid?: number;
  appPorts: Record<string, number>;
  inboundPorts: Record<string, number>;
  adminPort: number;
  lastError?: string;
}

export interface ServiceView extends Golden {
  name: string;
  namespace: string;
  instances: number;
  ready: number;
  versions: string[];
}

export interface EdgeView extends Golden {
  source: string;
  destination: string;
  destinationNamespace: string;
  subset: string;
  port: number;
}

export interface ProxyView {
  id: string;
  type: string;
  namespace: string;
  connectedAt?: string;
  /** Per xDS type (CDS, LDS, EDS, RDS, ...): SYNCED, NOT SENT, STALE, NACKED. */
  sync: Record<string, string>;
}

export interface MeshView {
  generatedAt: string;
  windowSeconds: number;
  runtime?: { startedAt: string; configPaths: string[]; controlPlane: { xdsPort: number; httpPort: number }; apiPort: number };
  services: ServiceView[];
  workloads: WorkloadView[];
  edges: EdgeView[];
  proxies: ProxyView[];
  scrapeErrors: Array<{ target: string; error: string }>;
}

const SCRAPE_TIMEOUT_MS = 2000;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/i;

const serviceOf = (w: WorkloadStatus): string => w.labels['app'] ?? w.name;
const instanceOf = (w: WorkloadStatus): string => `${w.name}-${w.replica}`;

async function getText(url: string): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(SCRAPE_TIMEOUT_MS) });
  const body = await res.text();
  if (res.status !== 200) throw new Error(`${url} answered ${res.status}${body ? `: ${body.slice(0, 200)}` : ''}`);
  return body;
}

function errorText(e: unknown): string {
  const err = e as Error & { cause?: { code?: string; message?: string } };
  if (err?.name === 'TimeoutError') return `no answer within ${SCRAPE_TIMEOUT_MS} ms`;
  return err?.cause?.code ?? err?.cause?.message ?? err?.message ?? String(e);
}

function controlPlaneBase(opts: DashboardOptions, status: RuntimeStatus | undefined): string | undefined {
  const v = opts.controlPlaneHttp ?? (status?.controlPlane.httpPort ? `127.0.0.1:${status.controlPlane.httpPort}` : undefined);
  if (!v) return undefined;
  return (/^https?:\/\//.test(v) ? v : `http://${v}`).replace(/\/+$/, '');
}

interface SyncEntry {
  id?: string;
  type?: string;
  namespace?: string;
  connectedAt?: string;
  xds?: Record<string, { state?: string }>;
}

/** Starts the dashboard; rejects when the port cannot be bound. */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const interval = opts.scrapeIntervalMs ?? 2000;
  const window = new SnapshotWindow(opts.windowMs ?? 10_000);
  let status: RuntimeStatus | undefined;
  let proxies: ProxyView[] = [];
  let scrapeErrors: Array<{ target: string; error: string }> = [];
  let scraping: Promise<void> | undefined;
  let closed = false;

  const scrape = async (): Promise<void> => {
    const errors: Array<{ target: string; error: string }> = [];
    try {
      status = await opts.status();
    } catch (e) {
      errors.push({ target: 'runtime status', error: errorText(e) });
    }
    const jobs: Array<Promise<void>> = [];
    for (const w of status?.workloads ?? []) {
      if (!w.sidecar?.admin || w.phase === 'stopped' || w.phase === 'failed') continue;
      const key = `${w.namespace}/${instanceOf(w)}`;
      jobs.push(
        getText(`http://127.0.0.1:${w.sidecar.admin}/stats/prometheus?filter=${encodeURIComponent(STATS_FILTER)}`).then(
          (text) => window.add(key, snapshotOf(parsePrometheusText(text), Date.now())),
          // A replica still starting (or restarting) may not have its sidecar up yet: not an error to show.
          (e) => void (w.ready && errors.push({ target: `sidecar of ${instanceOf(w)} (admin port ${w.sidecar.admin})`, error: errorText(e) })),
        ),
      );
    }
    const cp = controlPlaneBase(opts, status);
    if (cp) {
      jobs.push(
        getText(`${cp}/debug/syncz`).then(
          (text) => {
            const list = JSON.parse(text) as SyncEntry[];
            proxies = (Array.isArray(list) ? list : []).map((p) => ({
              id: String(p.id ?? ''),
              type: String(p.type ?? ''),
              namespace: String(p.namespace ?? ''),
              connectedAt: p.connectedAt,
              sync: Object.fromEntries(Object.entries(p.xds ?? {}).map(([t, s]) => [t, String(s?.state ?? '')])),
            }));
          },
          (e) => void errors.push({ target: `control plane ${cp}/debug/syncz`, error: errorText(e) }),
        ),
      );
    }
    await Promise.all(jobs);
    window.prune(Date.now());
    scrapeErrors = errors;
  };

  const tick = (): void => {
    if (closed || scraping) return;
    scraping = scrape().finally(() => (scraping = undefined));
  };

  const view = (): MeshView => buildView(status, window, proxies, scrapeErrors);

  const page = dashboardPage(interval);
  const loopback = LOOPBACK.has(opts.bind ?? '127.0.0.1');
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    // On a loopback address, only loopback host names: a web page cannot read the API through DNS rebinding.
    if (loopback && !LOOPBACK_HOST.test(req.headers.host ?? '')) {
      res.writeHead(403, { 'content-type': 'text/plain' }).end(`host ${JSON.stringify(req.headers.host ?? '')} not allowed: use http://127.0.0.1:${(server.address() as AddressInfo).port}/\n`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    const send = (code: number, type: string, body: string): void => {
      res.writeHead(code, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (path === '/' || path === '/index.html') return send(200, 'text/html; charset=utf-8', page);
    if (path === '/api/mesh') return send(200, 'application/json', JSON.stringify(view()));
    if (path === '/healthz') return send(200, 'text/plain', 'ok\n');
    send(404, 'text/plain', `not found: ${path}\n`);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(e.code === 'EADDRINUSE' ? `dashboard: port ${opts.port} on ${opts.bind ?? '127.0.0.1'} is already in use` : `dashboard: cannot listen: ${e.message}`)),
    );
    server.listen(opts.port ?? 0, opts.bind ?? '127.0.0.1', () => resolve());
  });
  const timer = setInterval(tick, interval);
  timer.unref();
  tick();

  return {
    port: (server.address() as AddressInfo).port,
    view,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(timer);
      await scraping;
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}

const round = (g: Golden): Golden => ({
  rps: Math.round(g.rps * 100) / 100,
  successRate: g.successRate === undefined ? undefined : Math.round(g.successRate * 10_000) / 10_000,
  p50: g.p50 === undefined ? undefined : Math.round(g.p50 * 10) / 10,
  p99: g.p99 === undefined ? undefined : Math.round(g.p99 * 10) / 10,
});

const NO_TRAFFIC: Golden = { rps: 0, successRate: undefined, p50: undefined, p99: undefined };

function buildView(status: RuntimeStatus | undefined, window: SnapshotWindow, proxies: ProxyView[], scrapeErrors: MeshView['scrapeErrors']): MeshView {
  const workloads: WorkloadView[] = [];
  const byService = new Map<string, { ns: string; name: string; counters: RequestCounters[]; seconds: number; ws: WorkloadStatus[] }>();
  const edges = new Map<string, { source: string; cluster: string; counters: RequestCounters[]; seconds: number }>();
  let seconds = 0;

  for (const w of status?.workloads ?? []) {
    const service = serviceOf(w);
    const skey = `${w.namespace}/${service}`;
    let s = byService.get(skey);
    if (!s) byService.set(skey, (s = { ns: w.namespace, name: service, counters: [], seconds: 0, ws: [] }));
    s.ws.push(w);
    const d = window.delta(`${w.namespace}/${instanceOf(w)}`);
    if (d) {
      seconds = Math.max(seconds, d.seconds);
      s.counters.push(d.inbound);
      s.seconds = Math.max(s.seconds, d.seconds);
      for (const [cluster, c] of d.outbound) {
        const ekey = `${skey}|${cluster}`;
        let e = edges.get(ekey);
        if (!e) edges.set(ekey, (e = { source: service, cluster, counters: [], seconds: 0 }));
        e.counters.push(c);
        e.seconds = Math.max(e.seconds, d.seconds);
      }
    }
    workloads.push({
      instance: instanceOf(w),
      name: w.name,
      replica: w.replica,
      namespace: w.namespace,
      service,
      version: w.labels['version'] ?? '',
      phase: w.phase,
      ready: w.ready,
      restarts: w.restarts,
      pid: w.pid,
      sidecarPid: w.sidecarPid,
      appPorts: w.appPorts,
      inboundPorts: w.sidecar?.inbound ?? {},
      adminPort: w.sidecar?.admin ?? 0,
      lastError: w.lastError,
      ...(d ? round(golden(d.inbound, d.seconds)) : NO_TRAFFIC),
    });
  }

  const services: ServiceView[] = [...byService.values()].map((s) => ({
    name: s.name,
    namespace: s.ns,
    instances: s.ws.length,
    ready: s.ws.filter((w) => w.ready).length,
    versions: [...new Set(s.ws.map((w) => w.labels['version']).filter((v): v is string => !!v))].sort(),
    ...(s.counters.length ? round(golden(sumCounters(s.counters), s.seconds)) : NO_TRAFFIC),
  }));

  const edgeViews: EdgeView[] = [];
  for (const e of edges.values()) {
    const c = parseOutboundCluster(e.cluster);
    const sum = sumCounters(e.counters);
    if (!c || sum.total === 0) continue; // a cluster never called in the window is not an edge
    edgeViews.push({ source: e.source, destination: c.service, destinationNamespace: c.namespace, subset: c.subset, port: c.port, ...round(golden(sum, e.seconds)) });
  }

  const byName = <T extends { name?: string; namespace?: string }>(a: T, b: T) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`);
  return {
    generatedAt: new Date().toISOString(),
    windowSeconds: Math.round(seconds * 10) / 10,
    runtime: status ? { startedAt: status.startedAt, configPaths: status.configPaths, controlPlane: status.controlPlane, apiPort: status.apiPort } : undefined,
    services: services.sort(byName),
    workloads: workloads.sort((a, b) => `${a.namespace}/${a.instance}`.localeCompare(`${b.namespace}/${b.instance}`)),
    edges: edgeViews.sort((a, b) => `${a.source}>${a.destination}|${a.subset}`.localeCompare(`${b.source}>${b.destination}|${b.subset}`)),
    proxies: [...proxies].sort((a, b) => a.id.localeCompare(b.id)),
    scrapeErrors,
  };
}
