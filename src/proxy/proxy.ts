/**
 * `Proxy`: one `weft proxy` process — the xDS client, the config it applies, the listeners it serves, and the
 * health and admin endpoints.
 *
 *   const proxy = new Proxy({ xds: '127.0.0.1:15010', node: { id, metadata }, healthPort: 15021, adminPort: 15000 });
 *   await proxy.start();          // endpoints up, xDS stream opening
 *   await proxy.ready;            // the first full config (CDS, EDS, LDS, RDS) is applied
 *   await proxy.shutdown();       // stop accepting, drain in-flight requests, close the xDS stream
 *
 * Health port (`--health-port`, Istio's 15021, bound on `healthBind`): `GET /healthz/ready` → 200 once the first
 * full config is applied, 503 before, while shutting down and after `POST /healthcheck/fail` (it answers what the
 * admin `/ready` says, as Istio's agent does).
 * Admin port (`--admin-port`, 127.0.0.1 only; src/proxy/admin): `/ready` (`LIVE` 200, else `INITIALIZING` /
 * `DRAINING` 503), `/server_info`, `/config_dump` (the applied xDS resources with their versions, error_state for
 * rejected updates), `/clusters`, `/stats` (`?format=json`), `/stats/prometheus`, `/reset_counters`, POST
 * `/logging`, POST `/healthcheck/fail|ok`, POST `/quitquitquit` (answers `OK`, then drains and exits), and two
 * Weft additions: `/listeners` (name::address) and `/xds` (the xDS client's state as JSON).
 * Stats port (`--stats-port`, Istio's 15090, bound on `statsBind`, default 0.0.0.0 as Istio's sidecar does so
 * Prometheus can scrape it): `GET /stats/prometheus` only.
 * DNS port (`dns`, transparent mode, Istio's 15053 on 127.0.0.1): the DNS proxy (dns/server.ts).
 * Stats (`proxy.stats`): Envoy's names — `cluster.<name>.*`, `http.<stat_prefix>.*`, `listener.<address>.*`,
 * `tcp.<stat_prefix>.*` (see config/xds-config.ts and stats/request-stats.ts); histogram intervals flush every 5 s.
 * Istio's standard metrics (`istio_requests_total`, ...; `proxy.istio`, stats/istio, docs/metrics.md) are kept in
 * the same store unless `metrics: false`.
 */
import { SecretManager } from './tls/secrets.js';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { ChannelCredentials } from '@grpc/grpc-js';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { AdsClient, type AdsLogger, type NodeInit } from '../xds/client/index.js';
import { TypeUrl } from '../xds/index.js';
import { startAdmin, type AdminServer, type LevelledLogger } from './admin/index.js';
import { clusterViews, proxyNode, startStatsServer, type StatsServer } from './admin-wiring.js';
import { XdsConfig, type ConfigLogger } from './config/xds-config.js';
import { ListenerManager } from './listener/listener.js';
import { StatsStore } from './stats/store.js';
import { IstioMetrics } from './stats/istio/metrics.js';
import { ISTIO_STATS_TAGS } from './stats/istio/tags.js';
import { DnsProxy } from './dns/server.js';
import { NAME_TABLE_RESOURCE, NAME_TABLE_TYPE_URL } from '../xds/name-table.js';
import type { NameTable } from '../xds/name-table.js';
import type { WorkloadIdentity } from './tls/identity/index.js';
import { flushExporters } from './tracing/exporter.js';
import { flushLogSinks } from './accesslog/sink.js';
import type { LocalInfo } from './tracing/tracer.js';

export interface ProxyOptions {
  /** `host:port` of the xDS (ADS) server. */
  xds: string;
  node: NodeInit;
  /** Health port (0 = any free port; undefined = not served). */
  healthPort?: number;
  healthBind?: string;
  /** Admin port on 127.0.0.1 (0 = any free port; undefined = not served). */
  adminPort?: number;
  /** Prometheus stats port (0 = any free port; undefined = not served). */
  statsPort?: number;
  /** Default 0.0.0.0 (Istio's sidecar serves 15090 on every address for Prometheus). */
  statsBind?: string;
  /** The build string `/server_info` reports. */
  version?: string;
  /** How long draining connections may take on shutdown and on listener changes (default 5 s). */
  drainTimeoutMs?: number;
  /** xDS protocol: `auto` (Delta, falling back to SotW), `delta` or `sotw`. */
  protocol?: 'auto' | 'delta' | 'sotw';
  /**
   * The DNS proxy (transparent mode; dns/server.ts): UDP+TCP on `bind` (default 127.0.0.1):`port`, answering from
   * the name table the control plane sends (`weft.dns.v1.NameTable`); undefined = not served. The proxy is ready
   * only once the name table has arrived too.
   */
  dns?: { port: number; bind?: string; upstreams?: string[] };
  /**
   * Istio's standard metrics (istio_requests_total and the rest, stats/istio) on /stats/prometheus, with the peer
   * metadata exchange; default true. false (`weft proxy --metrics=false`): none are kept and no metadata is sent;
   * exchange headers a peer sends are still removed before they reach the application.
   */
  metrics?: boolean;
  /**
   * Tag extraction of Envoy's stats on /stats/prometheus: `envoy` (Envoy's default tags, `envoy_cluster_name`; the
   * default) or `istio` (Istio's sidecar bootstrap tags, `cluster_name`; stats/istio/tags.ts).
   */
  statsTags?: 'envoy' | 'istio';
  logger?: AdsLogger & ConfigLogger & Partial<LevelledLogger>;
  /**
   * The workload identity (tls/identity): certificate, key and trust bundle. Closed with the proxy when it has
   * a `close` method.
   */
  identity?: WorkloadIdentity & { close?(): void };
  /** gRPC credentials of the xDS channel (mTLS with the identity); default plaintext. */
  xdsCredentials?: ChannelCredentials;
}

type State = 'PRE_INITIALIZING' | 'LIVE' | 'DRAINING';

const FULL_CONFIG = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration];

export class Proxy {
  readonly client: AdsClient;
  readonly listeners: ListenerManager;
  readonly config: XdsConfig;
  /** The workload identity, when the proxy has one (mTLS). */
  readonly identity: WorkloadIdentity | undefined;
  readonly stats: StatsStore;
  /** Istio's standard metrics and the metadata exchange (stats/istio). */
  readonly istio: IstioMetrics;
  /** Resolves once the first full config is applied. */
  readonly ready: Promise<void>;
  /** Resolves when the proxy has shut down (after `shutdown()` or `POST /quitquitquit`). */
  readonly closed: Promise<void>;
  private state: State = 'PRE_INITIALIZING';
  private health?: Server;
  private admin?: AdminServer;
  private statsServer?: StatsServer;
  /** The DNS proxy, when `dns` is set. */
  dns?: DnsProxy;
  private stopFlush?: () => void;
  private resolveClosed!: () => void;
  private shuttingDown?: Promise<void>;

  constructor(private readonly opts: ProxyOptions) {
    this.client = new AdsClient({ server: opts.xds, node: opts.node, protocol: opts.protocol ?? 'auto', logger: opts.logger, ...(opts.xdsCredentials ? { credentials: opts.xdsCredentials } : {}) });
    this.identity = opts.identity;
    this.listeners = new ListenerManager(opts.drainTimeoutMs ?? 5000);
    this.stats = new StatsStore(opts.statsTags === 'istio' ? { useAllDefaultTags: false, statsTags: ISTIO_STATS_TAGS } : {});
    this.istio = new IstioMetrics(this.stats, { nodeId: opts.node.id, metadata: opts.node.metadata, version: opts.version, enabled: opts.metrics ?? true });
    // The workload identity is the source of the SDS names `default` and `ROOTCA` (tls/secrets.ts).
    this.config = new XdsConfig(this.client, this.listeners, { log: opts.logger, stats: this.stats, istio: this.istio, local: localInfo(opts.node), secrets: new SecretManager(opts.identity) });
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.ready = this.client.synced(opts.dns ? [...FULL_CONFIG, NAME_TABLE_TYPE_URL] : FULL_CONFIG).then(() => {
      if (this.state === 'PRE_INITIALIZING') this.state = 'LIVE';
    });
    // A closed client rejects `synced`; the proxy is not ready then, which is all it means.
    this.ready.catch(() => undefined);
  }

  get isReady(): boolean {
    return this.state === 'LIVE';
  }

  /** The admin interface (also for in-process requests: `--concurrency` workers answer their primary with it). */
  get adminServer(): AdminServer | undefined {
    return this.admin;
  }

  /** Ports actually bound (useful with port 0). */
  healthPort?: number;
  adminPort?: number;
  statsPort?: number;

  async start(): Promise<void> {
    this.stopFlush = this.stats.startFlushTimer();
    if (this.opts.healthPort !== undefined) {
      this.health = createServer((req, res) => this.onHealth(req, res));
      this.healthPort = await listen(this.health, this.opts.healthPort, this.opts.healthBind ?? '0.0.0.0');
    }
    if (this.opts.adminPort !== undefined) {
      this.admin = await this.startAdmin(this.opts.adminPort);
      this.adminPort = this.admin.port;
    }
    if (this.opts.statsPort !== undefined) {
      this.statsServer = await startStatsServer({ store: this.stats, port: this.opts.statsPort, host: this.opts.statsBind ?? '0.0.0.0' });
      this.statsPort = this.statsServer.port;
    }
    if (this.opts.dns !== undefined) {
      const dns = new DnsProxy({ ...this.opts.dns, log: this.opts.logger });
      await dns.start();
      this.dns = dns;
      this.client.watch<NameTable>(NAME_TABLE_TYPE_URL, {
        names: [NAME_TABLE_RESOURCE],
        onUpdate: (u) => dns.setTable(u.full.get(NAME_TABLE_RESOURCE)?.message),
      });
    }
    this.config.watch();
  }

  private async startAdmin(port: number): Promise<AdminServer> {
    const log = this.opts.logger;
    const loggers: Record<string, LevelledLogger> = log !== undefined && typeof log.level === 'string' ? { main: log as LevelledLogger } : {};
    const node = proxyNode(this.opts.node);
    const admin = await startAdmin({
      port,
      handlers: {
        stats: this.stats,
        initState: () => (this.state === 'PRE_INITIALIZING' ? 'Initializing' : 'Initialized'),
        serverInfo: () => ({
          version: this.opts.version ?? 'weft',
          node,
          commandLineOptions: { concurrency: 1, drainTime: durationFromMs(this.opts.drainTimeoutMs ?? 5000), serviceNode: this.opts.node.id, serviceCluster: this.opts.node.cluster ?? '' },
        }),
        configDump: () => this.config.configSnapshot(),
        clusters: () => clusterViews(this.config),
        quit: () => void this.shutdown(),
        loggers,
      },
    });
    admin.addHandler('/listeners', 'print listener info (name::address)', () => ({
      status: 200,
      body: this.listeners.names().map((n) => `${n}::127.0.0.1:${this.listeners.port(n)}\n`).join(''),
    }));
    admin.addHandler('/xds', "print the xDS client's state (JSON)", () => ({
      status: 200,
      body: JSON.stringify(this.client.state(), null, 2) + '\n',
      contentType: 'application/json',
    }));
    return admin;
  }

  /** Stops accepting, drains in-flight requests (up to the drain timeout), closes everything. Idempotent. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.state = 'DRAINING';
      this.admin?.setHealthCheckFailed(true);
      await this.listeners.close();
      // What the last requests logged and traced leaves before the clusters (collectors) go.
      await Promise.all([flushExporters(), flushLogSinks()]);
      this.config.close();
      await this.client.close();
      this.opts.identity?.close?.();
      this.stopFlush?.();
      await Promise.all([closeServer(this.health), this.admin?.close(), this.statsServer?.close(), this.dns?.close()]);
      this.resolveClosed();
    })();
    return this.shuttingDown;
  }

  private onHealth(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz/ready') {
      const live = this.isReady && this.admin?.healthCheckFailed !== true;
      res.writeHead(live ? 200 : 503, { 'content-length': '0' });
      res.end();
      return;
    }
    res.writeHead(404, { 'content-length': '0' });
    res.end();
  }
}

/**
 * The proxy as its spans name it: node id, zone, and the service cluster (Node.cluster, else Istio's
 * `<canonical service>.<namespace>` from the LABELS and NAMESPACE metadata, the name Istio's sidecars report).
 */
function localInfo(node: NodeInit): LocalInfo {
  const md = (node.metadata ?? {}) as { LABELS?: Record<string, unknown>; NAMESPACE?: unknown };
  const labels = md.LABELS ?? {};
  const svc = labels['service.istio.io/canonical-name'] ?? labels['app.kubernetes.io/name'] ?? labels.app;
  const ns = typeof md.NAMESPACE === 'string' ? md.NAMESPACE : 'default';
  const cluster = node.cluster || (typeof svc === 'string' && svc !== '' ? `${svc}.${ns}` : '');
  return { nodeId: node.id, cluster, zone: node.locality?.zone ?? '' };
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a !== null ? a.port : port);
    });
  });
}

function closeServer(s: Server | undefined): Promise<void> {
  if (s === undefined) return Promise.resolve();
  return new Promise((resolve) => {
    s.close(() => resolve());
    s.closeAllConnections();
  });
}
