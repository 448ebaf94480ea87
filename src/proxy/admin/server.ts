/**
 * The proxy's admin HTTP API (Envoy's admin interface, source/server/admin/admin.cc), on node:http:
 *
 *   const admin = await startAdmin({
 *     port: 15000,                                   // host defaults to 127.0.0.1; 0 picks a free port
 *     handlers: {
 *       stats: store,                                // /stats, /stats/prometheus, /reset_counters
 *       initState: () => (configApplied ? 'Initialized' : 'Initializing'),
 *       serverInfo: () => ({ version, commandLineOptions: { concurrency: 1, ... }, node }),
 *       configDump: () => snapshot,                  // config-dump.ts
 *       clusters: () => clusterViews,                // clusters.ts
 *       quit: () => drainAndExit(),                  // POST /quitquitquit
 *       loggers: { main: pinoLogger },               // POST /logging
 *       onHealthcheck: (failed) => ...,              // POST /healthcheck/fail, /healthcheck/ok
 *     },
 *   });
 *   admin.port; await admin.close();
 *
 * Binding: loopback only (127.0.0.0/8, ::1, localhost) unless `allowNonLoopback: true`; another host makes
 * startAdmin reject.
 *
 * Endpoints (exact paths; `/help` lists them): `/ready` (200 `LIVE` or 503 with the state: PRE_INITIALIZING,
 * INITIALIZING, DRAINING after /healthcheck/fail), `/server_info` (envoy.admin.v3.ServerInfo JSON), `/config_dump`,
 * `/clusters`, `/stats`, `/stats/prometheus`, `/reset_counters`, `/logging`, `/healthcheck/fail`,
 * `/healthcheck/ok`, `/quitquitquit`, `/help`. State-changing endpoints answer 405 `Method GET not allowed, POST
 * required.` to anything but POST; other endpoints take any method. An unknown path answers 404 with
 * `invalid path. ` and the help text. Responses carry `Cache-Control: no-cache, max-age=0` and
 * `X-Content-Type-Options: nosniff`, text/plain unless JSON. `addHandler` adds endpoints (Envoy's addHandler).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { create, toJson, type MessageInitShape } from '@bufbuild/protobuf';
import { durationFromMs } from '@bufbuild/protobuf/wkt';
import { ServerInfoSchema, ServerInfo_State, type CommandLineOptionsSchema } from '../../xds/gen/envoy/admin/v3/server_info_pb.js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { joinChunks, parseStatsParams, prometheusChunks, statsJsonChunks, statsTextChunks } from '../stats/render.js';
import type { StatsStore } from '../stats/store.js';
import { renderClustersJson, renderClustersText, type ClusterStatusView } from './clusters.js';
import type { ConfigSnapshot } from './config-dump.js';
import { handleLogging, LOG_LEVELS, type LevelledLogger } from './logging.js';
import { sendChunks } from './stream.js';

/** Envoy's Init::Manager states. */
export type InitState = 'Uninitialized' | 'Initializing' | 'Initialized';

export interface ServerInfoData {
  /** Envoy prints `<sha>/<version>/<status>/<build type>/<ssl>`; any build string works. */
  version?: string;
  commandLineOptions?: MessageInitShape<typeof CommandLineOptionsSchema>;
  node?: Node;
  hotRestartVersion?: string;
}

export interface AdminHandlers {
  stats?: StatsStore;
  /** The proxy's initialization state; default Initialized. */
  initState?: () => InitState;
  serverInfo?: () => ServerInfoData;
  configDump?: () => ConfigSnapshot;
  clusters?: () => readonly ClusterStatusView[];
  /** Called after `POST /quitquitquit` has been answered. */
  quit?: () => void;
  loggers?: Readonly<Record<string, LevelledLogger>>;
  /** Called when `/healthcheck/fail` or `/healthcheck/ok` changes the health check state. */
  onHealthcheck?: (failed: boolean) => void;
}

export interface AdminOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port: number;
  /** Needed to bind anything but a loopback address. */
  allowNonLoopback?: boolean;
  handlers: AdminHandlers;
  /** Process start (ms since the epoch) for the uptime in /server_info; default: when startAdmin is called. */
  startTime?: number;
}

export interface AdminRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
}

export interface AdminResponse {
  status: number;
  body: string;
  /**
   * A large body made piece by piece (the stats outputs): sent over HTTP as the connection takes it (stream.ts)
   * instead of `body`; `request()` joins it into `body`.
   */
  chunks?: Iterable<string>;
  /** Default text/plain; charset=UTF-8. */
  contentType?: string;
  headers?: Record<string, string>;
  /** Runs once the response has been sent (e.g. the shutdown after /quitquitquit). */
  after?: () => void;
}

export type AdminHandlerFn = (req: AdminRequest) => AdminResponse | Promise<AdminResponse>;

export interface ParamHelp {
  name: string;
  help: string;
  /** For enum parameters: the allowed values. */
  choices?: readonly string[];
}

export interface HandlerOptions {
  /** POST only (Envoy's mutates_server_state). */
  mutatesState?: boolean;
  params?: readonly ParamHelp[];
}

export interface AdminServer {
  readonly address: string;
  readonly port: number;
  /** Whether `/healthcheck/fail` is in force. */
  readonly healthCheckFailed: boolean;
  setHealthCheckFailed(failed: boolean): void;
  /** The state `/ready` reports. */
  state(): keyof typeof ServerInfo_State;
  /** Adds an endpoint; false when the path is taken or contains &"'<>?: characters. */
  addHandler(path: string, help: string, fn: AdminHandlerFn, opts?: HandlerOptions): boolean;
  removeHandler(path: string): boolean;
  /** Runs a request in-process (Envoy's AdminImpl::request); the caller runs `after`, if any. */
  request(method: string, pathAndQuery: string): Promise<AdminResponse>;
  close(): Promise<void>;
}

interface Handler {
  path: string;
  help: string;
  fn: AdminHandlerFn;
  mutatesState: boolean;
  params: readonly ParamHelp[];
  removable: boolean;
}

const TEXT = 'text/plain; charset=UTF-8';
const JSON_TYPE = 'application/json';

/** Whether `host` is a loopback address or name. */
export function isLoopback(host: string): boolean {
  const h = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (h === 'localhost') return true;
  const v = isIP(h);
  if (v === 4) return h.startsWith('127.');
  if (v === 6) {
    const lower = h.toLowerCase();
    if (lower === '::1' || lower === '0:0:0:0:0:0:0:1') return true;
    const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
    return m !== null && m[1]!.startsWith('127.');
  }
  return false;
}

class Admin implements AdminServer {
  private readonly handlers: Handler[] = [];
  private failed = false;
  private server: Server | undefined;
  address = '';
  port = 0;

  constructor(
    private readonly h: AdminHandlers,
    private readonly startTime: number,
  ) {
    const add = (path: string, help: string, fn: AdminHandlerFn, mutatesState = false, params: readonly ParamHelp[] = []): void => {
      this.handlers.push({ path, help, fn, mutatesState, params, removable: false });
    };
    add('/', 'print out list of admin commands', () => this.help());
    add('/help', 'print out list of admin commands', () => this.help());
    add('/ready', 'print server state, return 200 if LIVE, otherwise return 503', () => {
      const s = this.state();
      return { status: s === 'LIVE' ? 200 : 503, body: `${s}\n` };
    });
    add('/server_info', 'print server version/status information', () => this.serverInfo());
    add(
      '/config_dump',
      'dump current Envoy configs (experimental)',
      async (req) => {
        // Loaded on first use: config-dump.ts needs the whole xDS type registry (xds/json.ts).
        const { handleConfigDump } = await import('./config-dump.js');
        const r = handleConfigDump(this.h.configDump?.() ?? {}, req.query);
        return { status: r.status, body: r.body, contentType: r.contentType };
      },
      false,
      [
        { name: 'resource', help: 'The resource to dump' },
        {
          name: 'mask',
          help: 'The mask to apply. When both resource and mask are specified, the mask is applied to every element in the desired repeated field so that only a subset of fields are returned. The mask is parsed as a ProtobufWkt::FieldMask',
        },
        { name: 'name_regex', help: 'Dump only the currently loaded configurations whose names match the specified regex. Can be used with both resource and mask query parameters.' },
        { name: 'include_eds', help: 'Dump currently loaded configuration including EDS. See the response definition for more information' },
      ],
    );
    add(
      '/clusters',
      'upstream cluster status',
      (req) => {
        const views = this.h.clusters?.() ?? [];
        if (req.query.get('format') === 'json') return { status: 200, body: renderClustersJson(views), contentType: JSON_TYPE };
        return { status: 200, body: renderClustersText(views) };
      },
      false,
      [{ name: 'format', help: 'File format to use', choices: ['text', 'json'] }],
    );
    add('/stats', 'print server stats', (req) => this.stats(req.query, false), false, [
      { name: 'usedonly', help: 'Only include stats that have been written by system since restart' },
      { name: 'filter', help: 'Regular expression (Google re2) for filtering stats' },
      { name: 'format', help: 'Format to use', choices: ['text', 'json', 'prometheus'] },
      { name: 'type', help: 'Stat types to include.', choices: ['All', 'Counters', 'Histograms', 'Gauges', 'TextReadouts'] },
      { name: 'histogram_buckets', help: 'Histogram bucket display mode', choices: ['cumulative', 'disjoint', 'none'] },
    ]);
    add('/stats/prometheus', 'print server stats in prometheus format', (req) => this.stats(req.query, true), false, [
      { name: 'usedonly', help: 'Only include stats that have been written by system since restart' },
      { name: 'text_readouts', help: 'Render text_readouts as new gaugues with value 0 (increases Prometheus data size)' },
      { name: 'filter', help: 'Regular expression (Google re2) for filtering stats' },
      { name: 'histogram_buckets', help: 'Histogram bucket display mode', choices: ['cumulative', 'summary'] },
    ]);
    add(
      '/reset_counters',
      'reset all counters to zero',
      () => {
        this.h.stats?.resetCounters();
        return { status: 200, body: 'OK\n' };
      },
      true,
    );
    add(
      '/logging',
      'query/change logging levels',
      (req) => {
        const r = handleLogging(this.h.loggers ?? {}, req.query);
        return { status: r.status, body: r.body };
      },
      true,
      [
        { name: 'paths', help: 'Change multiple logging levels by setting to <logger_name1>:<desired_level1>,<logger_name2>:<desired_level2>.' },
        { name: 'level', help: "desired logging level, this will change all loggers's level", choices: ['', ...LOG_LEVELS] },
      ],
    );
    add(
      '/healthcheck/fail',
      'cause the server to fail health checks',
      () => {
        this.setHealthCheckFailed(true);
        return { status: 200, body: 'OK\n' };
      },
      true,
    );
    add(
      '/healthcheck/ok',
      'cause the server to pass health checks',
      () => {
        this.setHealthCheckFailed(false);
        return { status: 200, body: 'OK\n' };
      },
      true,
    );
    add(
      '/quitquitquit',
      'exit the server',
      () => {
        const quit = this.h.quit;
        return quit ? { status: 200, body: 'OK\n', after: quit } : { status: 200, body: 'OK\n' };
      },
      true,
    );
  }

  get healthCheckFailed(): boolean {
    return this.failed;
  }

  setHealthCheckFailed(failed: boolean): void {
    if (this.failed === failed) return;
    this.failed = failed;
    this.h.onHealthcheck?.(failed);
  }

  /** Envoy's Utility::serverState. */
  state(): keyof typeof ServerInfo_State {
    const init = this.h.initState?.() ?? 'Initialized';
    if (init === 'Uninitialized') return 'PRE_INITIALIZING';
    if (init === 'Initializing') return 'INITIALIZING';
    return this.failed ? 'DRAINING' : 'LIVE';
  }

  addHandler(path: string, help: string, fn: AdminHandlerFn, opts: HandlerOptions = {}): boolean {
    if (!path.startsWith('/') || path.length < 2 || /[&"'<>?:]/.test(path)) return false;
    if (this.handlers.some((x) => x.path === path)) return false;
    this.handlers.push({ path, help, fn, mutatesState: opts.mutatesState === true, params: opts.params ?? [], removable: true });
    return true;
  }

  removeHandler(path: string): boolean {
    const i = this.handlers.findIndex((x) => x.path === path && x.removable);
    if (i < 0) return false;
    this.handlers.splice(i, 1);
    return true;
  }

  helpText(): string {
    let out = 'admin commands are:\n';
    const sorted = [...this.handlers].filter((x) => x.path !== '/').sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    for (const x of sorted) {
      out += `  ${x.path}${x.mutatesState ? ' (POST)' : ''}: ${x.help}\n`;
      for (const p of x.params) out += `      ${p.name}: ${p.help}${p.choices ? `; One of (${p.choices.join(', ')})` : ''}\n`;
    }
    return out;
  }

  private help(): AdminResponse {
    return { status: 200, body: this.helpText() };
  }

  private serverInfo(): AdminResponse {
    const info = this.h.serverInfo?.() ?? {};
    const uptimeMs = Math.max(0, Math.floor((Date.now() - this.startTime) / 1000) * 1000);
    const msg = create(ServerInfoSchema, {
      version: info.version ?? 'unknown',
      state: ServerInfo_State[this.state()],
      hotRestartVersion: info.hotRestartVersion ?? 'disabled',
      uptimeCurrentEpoch: durationFromMs(uptimeMs),
      uptimeAllEpochs: durationFromMs(uptimeMs),
      commandLineOptions: info.commandLineOptions ?? {},
      node: info.node,
    });
    // ServerInfo (and the Node inside) holds no Any: proto3 JSON without the type registry (xds/json.ts).
    const json = toJson(ServerInfoSchema, msg, { useProtoFieldName: true, alwaysEmitImplicit: true });
    return { status: 200, body: JSON.stringify(json, null, 2) + '\n', contentType: JSON_TYPE };
  }

  private stats(q: URLSearchParams, prometheusEndpoint: boolean): AdminResponse {
    const store = this.h.stats;
    const parsed = parseStatsParams(q, prometheusEndpoint);
    if ('error' in parsed) return { status: 400, body: parsed.error };
    const p = parsed.params;
    if (!store) return { status: 200, body: p.format === 'json' ? '{"stats":[]}' : '', contentType: p.format === 'json' ? JSON_TYPE : TEXT };
    if (p.format === 'prometheus') return { status: 200, body: '', chunks: prometheusChunks(store, p) };
    if (p.format === 'json') return { status: 200, body: '', chunks: statsJsonChunks(store, p, q.has('pretty')), contentType: JSON_TYPE };
    return { status: 200, body: '', chunks: statsTextChunks(store, p) };
  }

  async request(method: string, pathAndQuery: string, headers: IncomingMessage['headers'] = {}): Promise<AdminResponse> {
    const r = await this.dispatch(method, pathAndQuery, headers);
    if (r.chunks === undefined) return r;
    const { chunks, ...rest } = r;
    try {
      return { ...rest, body: joinChunks(chunks) };
    } catch (e) {
      return { status: 500, body: `internal error: ${(e as Error).message}\n` };
    }
  }

  /** `request`, with a piece-by-piece body left as it is. */
  private async dispatch(method: string, pathAndQuery: string, headers: IncomingMessage['headers']): Promise<AdminResponse> {
    const q = pathAndQuery.indexOf('?');
    const path = q < 0 ? pathAndQuery : pathAndQuery.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : pathAndQuery.slice(q + 1));
    const handler = this.handlers.find((x) => x.path === path);
    if (!handler) return { status: 404, body: `invalid path. ${this.helpText()}` };
    if (handler.mutatesState && method !== 'POST') return { status: 405, body: `Method ${method} not allowed, POST required.` };
    try {
      return await handler.fn({ method, path, query, headers });
    } catch (e) {
      return { status: 500, body: `internal error: ${(e as Error).message}\n` };
    }
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    req.resume();
    void this.dispatch(req.method ?? 'GET', req.url ?? '/', req.headers).then((r) => {
      res.statusCode = r.status;
      res.setHeader('content-type', r.contentType ?? TEXT);
      res.setHeader('cache-control', 'no-cache, max-age=0');
      res.setHeader('x-content-type-options', 'nosniff');
      if (r.headers) for (const [k, v] of Object.entries(r.headers)) res.setHeader(k, v);
      const after = r.after;
      if (after) {
        let ran = false;
        const run = (): void => {
          if (ran) return;
          ran = true;
          after();
        };
        res.once('finish', run);
        res.once('close', run);
      }
      if (r.chunks !== undefined) void sendChunks(res, r.chunks);
      else res.end(r.body);
    });
  }

  listen(host: string, port: number): Promise<void> {
    const server = createServer((req, res) => this.onRequest(req, res));
    server.keepAliveTimeout = 5000;
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host, port }, () => {
        server.off('error', reject);
        const a = server.address() as AddressInfo;
        this.address = a.address;
        this.port = a.port;
        resolve();
      });
    });
  }

  close(): Promise<void> {
    const server = this.server;
    if (!server) return Promise.resolve();
    this.server = undefined;
    return new Promise((resolve) => {
      server.close(() => resolve());
      server.closeAllConnections();
    });
  }
}

/** Starts the admin server; rejects when the host is not loopback (without `allowNonLoopback`) or the port is taken. */
export async function startAdmin(opts: AdminOptions): Promise<AdminServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!opts.allowNonLoopback && !isLoopback(host)) {
    throw new Error(`admin: refusing to listen on ${host}: not a loopback address (the admin API changes server state; set allowNonLoopback to expose it)`);
  }
  const admin = new Admin(opts.handlers, opts.startTime ?? Date.now());
  await admin.listen(host.startsWith('[') ? host.slice(1, -1) : host, opts.port);
  return admin;
}
