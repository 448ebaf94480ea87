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
 * full config is applied, 503 before (and while shutting down).
 * Admin port (`--admin-port`, 127.0.0.1 only): `GET /ready` (Envoy's: `LIVE` 200, else `PRE_INITIALIZING` /
 * `DRAINING` 503), `POST /quitquitquit` (answers `OK`, then drains and exits), `GET /listeners` (name::address),
 * `GET /xds` (the xDS client's state as JSON). The full admin API (config_dump, clusters, stats) is served by
 * src/proxy/admin once wired.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { AdsClient, type AdsLogger, type NodeInit } from '../xds/client/index.js';
import { TypeUrl } from '../xds/index.js';
import { XdsConfig, type ConfigLogger } from './config/xds-config.js';
import { ListenerManager } from './listener/listener.js';

export interface ProxyOptions {
  /** `host:port` of the xDS (ADS) server. */
  xds: string;
  node: NodeInit;
  /** Health port (0 = any free port; undefined = not served). */
  healthPort?: number;
  healthBind?: string;
  /** Admin port on 127.0.0.1 (0 = any free port; undefined = not served). */
  adminPort?: number;
  /** How long draining connections may take on shutdown and on listener changes (default 5 s). */
  drainTimeoutMs?: number;
  /** xDS protocol: `auto` (Delta, falling back to SotW), `delta` or `sotw`. */
  protocol?: 'auto' | 'delta' | 'sotw';
  logger?: AdsLogger & ConfigLogger;
}

type State = 'PRE_INITIALIZING' | 'LIVE' | 'DRAINING';

const FULL_CONFIG = [TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment, TypeUrl.Listener, TypeUrl.RouteConfiguration];

export class Proxy {
  readonly client: AdsClient;
  readonly listeners: ListenerManager;
  readonly config: XdsConfig;
  /** Resolves once the first full config is applied. */
  readonly ready: Promise<void>;
  /** Resolves when the proxy has shut down (after `shutdown()` or `POST /quitquitquit`). */
  readonly closed: Promise<void>;
  private state: State = 'PRE_INITIALIZING';
  private health?: Server;
  private admin?: Server;
  private resolveClosed!: () => void;
  private shuttingDown?: Promise<void>;

  constructor(private readonly opts: ProxyOptions) {
    this.client = new AdsClient({ server: opts.xds, node: opts.node, protocol: opts.protocol ?? 'auto', logger: opts.logger });
    this.listeners = new ListenerManager(opts.drainTimeoutMs ?? 5000);
    this.config = new XdsConfig(this.client, this.listeners, { log: opts.logger });
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.ready = this.client.synced(FULL_CONFIG).then(() => {
      if (this.state === 'PRE_INITIALIZING') this.state = 'LIVE';
    });
    // A closed client rejects `synced`; the proxy is not ready then, which is all it means.
    this.ready.catch(() => undefined);
  }

  get isReady(): boolean {
    return this.state === 'LIVE';
  }

  /** Ports actually bound (useful with port 0). */
  healthPort?: number;
  adminPort?: number;

  async start(): Promise<void> {
    if (this.opts.healthPort !== undefined) {
      this.health = createServer((req, res) => this.onHealth(req, res));
      this.healthPort = await listen(this.health, this.opts.healthPort, this.opts.healthBind ?? '0.0.0.0');
    }
    if (this.opts.adminPort !== undefined) {
      this.admin = createServer((req, res) => this.onAdmin(req, res));
      this.adminPort = await listen(this.admin, this.opts.adminPort, '127.0.0.1');
    }
    this.config.watch();
  }

  /** Stops accepting, drains in-flight requests (up to the drain timeout), closes everything. Idempotent. */
  shutdown(): Promise<void> {
    this.shuttingDown ??= (async () => {
      this.state = 'DRAINING';
      await this.listeners.close();
      this.config.close();
      await this.client.close();
      await Promise.all([closeServer(this.health), closeServer(this.admin)]);
      this.resolveClosed();
    })();
    return this.shuttingDown;
  }

  private onHealth(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    if (path === '/healthz/ready') {
      res.writeHead(this.isReady ? 200 : 503, { 'content-length': '0' });
      res.end();
      return;
    }
    res.writeHead(404, { 'content-length': '0' });
    res.end();
  }

  private onAdmin(req: IncomingMessage, res: ServerResponse): void {
    const path = (req.url ?? '').split('?')[0];
    const send = (status: number, body: string, type = 'text/plain; charset=UTF-8') => {
      res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    switch (path) {
      case '/ready':
        send(this.isReady ? 200 : 503, `${this.state}\n`);
        return;
      case '/quitquitquit':
        if (req.method !== 'POST') {
          send(405, 'This endpoint requires POST.\n');
          return;
        }
        send(200, 'OK\n');
        void this.shutdown();
        return;
      case '/listeners':
        send(200, this.listeners.names().map((n) => `${n}::127.0.0.1:${this.listeners.port(n)}`).join('\n') + '\n');
        return;
      case '/xds':
        send(200, JSON.stringify(this.client.state(), null, 2) + '\n', 'application/json');
        return;
      default:
        send(404, 'invalid path. see /help for valid paths\n');
    }
  }
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
