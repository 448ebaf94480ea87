/**
 * The control plane's HTTP port (istiod's monitoring/debug port, 15014 by default):
 *
 *   GET    /ready                                  200 once the config is loaded and ADS listens, else 503
 *   GET    /metrics                                Prometheus text format
 *   GET    /debug/syncz                            per connected proxy: per-type sync state (JSON array)
 *   GET    /debug/config_dump?proxy=ID             the control plane's view of a proxy's config (Envoy ConfigDump)
 *   GET    /debug/registryz                        services with their endpoints, registered workloads
 *   GET    /debug/configz                          current config diagnostics
 *   POST   /v1/workloads                           register (or replace) a live workload
 *   GET    /v1/workloads                           list registered workloads
 *   GET    /v1/workloads/{ns}/{name}               one registered workload
 *   POST   /v1/workloads/{ns}/{name}/heartbeat     heartbeat ({healthy?}); renews the ttl
 *   PUT    /v1/workloads/{ns}/{name}/health        set health ({healthy})
 *   DELETE /v1/workloads/{ns}/{name}               deregister
 *   GET    /api/mesh                               mesh graph: nodes, edges and services with golden metrics, proxies
 *   GET    /api/services/{ns}/{name}               a service in detail (routes with file:line, policies, endpoints, ...)
 *   GET    /api/workloads/{ns}/{name}              a workload in detail
 *   GET    /dashboard/                             the dashboard (static bundle, see src/dashboard/assets.ts)
 *
 * The mesh API and the dashboard are meant for this machine: when the server listens on a loopback address they
 * answer only requests whose Host is a loopback name (403 otherwise), so a web page cannot read them through DNS
 * rebinding.
 *
 * Errors are JSON `{"error": "..."}` with 400 (bad input, with `issues`), 404, 405 (with `Allow`) or 413.
 */
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { isIP } from 'node:net';
import { z } from 'zod';
import { labels, port } from '../api/schema/common.js';
import { toProtoJson } from '../xds/json.js';
import { ConfigDumpSchema } from '../xds/gen/envoy/admin/v3/config_dump_pb.js';
import type { ControlPlane, WorkloadRegistration } from './controlplane.js';
import { PROMETHEUS_CONTENT_TYPE } from './metrics.js';
import { meshView, serviceDetail, workloadDetail } from './meshapi/views.js';
import { dashboardAsset, DashboardNotBuilt } from '../dashboard/assets.js';

const MAX_BODY = 1024 * 1024;
const LOOPBACK_BIND = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;
const LOOPBACK_HOST = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])(:\d+)?$/i;

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*$/;

const namespaceName = () =>
  z.string().max(63, 'a namespace has at most 63 characters').regex(DNS_LABEL, 'a namespace is a DNS label: lower-case letters, digits and "-", starting and ending with a letter or digit');
const objectName = () =>
  z.string().max(253, 'a name has at most 253 characters').regex(DNS_SUBDOMAIN, 'a name is a DNS subdomain: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit');

/** The body of POST /v1/workloads (the fields of an Istio WorkloadEntry, plus Weft's registration fields). */
export const workloadRegistrationSchema = z.strictObject({
  name: objectName(),
  namespace: namespaceName().default('default'),
  address: z.string().refine((a) => isIP(a) !== 0 || HOSTNAME.test(a), 'address must be an IPv4 or IPv6 address or a DNS name (without a port)'),
  labels: labels().default({}),
  ports: z.record(z.string().min(1, 'a port name cannot be empty'), port()).default({}),
  locality: z.string().regex(/^[^/\s]+(\/[^/\s]+){0,2}$/, 'locality is region, region/zone or region/zone/subzone').optional(),
  weight: z.number().int('weight must be an integer').min(1, 'weight must be at least 1').max(4294967295, 'weight must fit in 32 bits').optional(),
  network: z.string().min(1).optional(),
  serviceAccount: objectName().default('default'),
  sidecar: z.boolean().default(false),
  ttlSeconds: z.number().int('ttlSeconds must be a whole number of seconds').min(0, 'ttlSeconds cannot be negative (0 = never expires)').max(86400, 'ttlSeconds is at most 86400 (one day)').default(0),
  healthy: z.boolean().optional(),
});

const heartbeatSchema = z.strictObject({ healthy: z.boolean().optional() });
const healthSchema = z.strictObject({ healthy: z.boolean() });

class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly extra: Record<string, unknown> = {}, readonly headers: Record<string, string> = {}) {
    super(message);
  }
}

function send(res: ServerResponse, status: number, body: string, contentType: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': contentType, 'cache-control': 'no-store', ...headers });
  res.end(body);
}

function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  send(res, status, `${JSON.stringify(value, null, 2)}\n`, 'application/json; charset=utf-8', headers);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    const b = c as Buffer;
    size += b.length;
    if (size > MAX_BODY) throw new HttpError(413, `request body larger than ${MAX_BODY} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Parses and validates a JSON body; an empty body is `{}` when `emptyOk`. */
async function jsonBody<T extends z.ZodType>(req: IncomingMessage, schema: T, what: string, emptyOk = false): Promise<z.output<T>> {
  const text = await readBody(req);
  let value: unknown;
  if (text.trim() === '') {
    if (!emptyOk) throw new HttpError(400, `${what}: the request body is empty; send a JSON object`);
    value = {};
  } else {
    try {
      value = JSON.parse(text);
    } catch (e) {
      throw new HttpError(400, `${what}: the body is not valid JSON: ${(e as Error).message}`);
    }
  }
  const r = schema.safeParse(value);
  if (!r.success) {
    const issues = r.error.issues.map((i) => ({ path: i.path.map(String).join('.') || '(body)', message: i.message }));
    throw new HttpError(400, `${what}: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
  }
  return r.data;
}

function allow(method: string, ...methods: string[]): void {
  if (!methods.includes(method)) throw new HttpError(405, `method ${method} not allowed here; use ${methods.join(' or ')}`, {}, { allow: methods.join(', ') });
}

function segment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw new HttpError(400, `bad URL segment ${JSON.stringify(s)}`);
  }
}

/** The HTTP server of a control plane (not listening yet). */
export function createHttpServer(cp: ControlPlane): Server {
  const server = createServer((req, res) => {
    handle(cp, req, res).catch((e: unknown) => {
      if (e instanceof HttpError) {
        sendJson(res, e.status, { error: e.message, ...e.extra }, e.headers);
        return;
      }
      cp.metrics.internalErrors.inc();
      cp.logger.error({ err: (e as Error)?.stack ?? String(e), url: req.url }, 'HTTP handler failed');
      if (!res.headersSent) sendJson(res, 500, { error: `internal error: ${(e as Error)?.message ?? String(e)}` });
      else res.destroy();
    });
  });
  // Longer than clients' idle keep-alive (undici: 4 s, or the server's hint minus 2 s), so an idle connection is
  // closed by the client, never by the server at the moment a busy client reuses it ("other side closed").
  server.keepAliveTimeout = 65_000;
  return server;
}

async function handle(cp: ControlPlane, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://control-plane');
  const method = req.method ?? 'GET';
  const path = url.pathname.replace(/\/+$/, '') || '/';

  if (path === '/dashboard' || path.startsWith('/dashboard/') || path.startsWith('/api/')) return handleUi(cp, req, res, url, method);

  switch (path) {
    case '/':
      allow(method, 'GET');
      return sendJson(res, 200, {
        name: 'weft control plane',
        id: cp.id,
        version: cp.version,
        endpoints: ['/ready', '/metrics', '/debug/syncz', '/debug/config_dump?proxy=ID', '/debug/registryz', '/debug/configz', '/v1/workloads', '/api/mesh', '/api/services/{ns}/{name}', '/api/workloads/{ns}/{name}', '/dashboard/'],
      });
    case '/ready':
      allow(method, 'GET', 'HEAD');
      if (cp.ready) return send(res, 200, 'ready\n', 'text/plain; charset=utf-8');
      return send(res, 503, cp.configLoadedOnce ? 'not ready: ADS is not serving\n' : 'not ready: configuration not loaded yet\n', 'text/plain; charset=utf-8');
    case '/metrics':
      allow(method, 'GET');
      return send(res, 200, cp.metrics.render(), PROMETHEUS_CONTENT_TYPE);
    case '/debug/syncz':
      allow(method, 'GET');
      return sendJson(res, 200, cp.syncStatus());
    case '/debug/config_dump': {
      allow(method, 'GET');
      const id = url.searchParams.get('proxy') ?? url.searchParams.get('proxyID');
      if (!id) throw new HttpError(400, 'missing query parameter proxy (the proxy id, as weft proxy-status lists it)');
      const dump = cp.configDump(id);
      if (!dump) throw new HttpError(404, `no proxy ${JSON.stringify(id)} is connected`, { proxies: cp.connectedProxies() });
      return sendJson(res, 200, toProtoJson(ConfigDumpSchema, dump));
    }
    case '/debug/registryz':
      allow(method, 'GET');
      return sendJson(res, 200, cp.registryDump());
    case '/debug/configz':
      allow(method, 'GET');
      return sendJson(res, 200, cp.configDiagnostics());
    case '/v1/workloads':
      allow(method, 'GET', 'POST');
      if (method === 'GET') return sendJson(res, 200, { workloads: cp.workloads() });
      {
        const w: WorkloadRegistration = await jsonBody(req, workloadRegistrationSchema, 'invalid workload');
        const { workload, replaced } = cp.registerWorkload(w);
        return sendJson(res, replaced ? 200 : 201, { workload, replaced });
      }
    default:
      break;
  }

  const m = /^\/v1\/workloads\/([^/]+)\/([^/]+)(?:\/(heartbeat|health))?$/.exec(path);
  if (m) {
    const ns = segment(m[1]!);
    const name = segment(m[2]!);
    const notFound = () => new HttpError(404, `no registered workload ${ns}/${name}`);
    switch (m[3]) {
      case 'heartbeat': {
        allow(method, 'POST');
        const b = await jsonBody(req, heartbeatSchema, 'invalid heartbeat', true);
        if (!cp.heartbeat(ns, name, b.healthy)) throw notFound();
        return sendJson(res, 200, { workload: cp.workloads().find((w) => w.namespace === ns && w.name === name) });
      }
      case 'health': {
        allow(method, 'PUT');
        const b = await jsonBody(req, healthSchema, 'invalid health');
        if (!cp.setWorkloadHealth(ns, name, b.healthy)) throw notFound();
        return sendJson(res, 200, { workload: cp.workloads().find((w) => w.namespace === ns && w.name === name) });
      }
      default: {
        allow(method, 'GET', 'DELETE');
        if (method === 'DELETE') {
          if (!cp.deregisterWorkload(ns, name)) throw notFound();
          res.writeHead(204);
          res.end();
          return;
        }
        const w = cp.workloads().find((x) => x.namespace === ns && x.name === name);
        if (!w) throw notFound();
        return sendJson(res, 200, { workload: w });
      }
    }
  }
  throw new HttpError(404, `no such endpoint: ${path}`);
}

/** The dashboard and its JSON API. */
function handleUi(cp: ControlPlane, req: IncomingMessage, res: ServerResponse, url: URL, method: string): void {
  if (LOOPBACK_BIND.test(cp.bind) && !LOOPBACK_HOST.test(req.headers.host ?? '')) {
    throw new HttpError(403, `host ${JSON.stringify(req.headers.host ?? '')} not allowed: the dashboard and /api answer loopback names only (use http://127.0.0.1:${cp.httpPort ?? ''}/dashboard/)`);
  }
  allow(method, 'GET', 'HEAD');
  const path = url.pathname;
  if (path === '/dashboard') {
    res.writeHead(301, { location: '/dashboard/' });
    res.end();
    return;
  }
  if (path.startsWith('/dashboard/')) {
    let asset;
    try {
      asset = dashboardAsset(path.slice('/dashboard'.length));
    } catch (e) {
      if (e instanceof DashboardNotBuilt) throw new HttpError(503, e.message);
      throw e;
    }
    if (!asset) throw new HttpError(404, `no such dashboard file: ${path}`);
    res.writeHead(200, { 'content-type': asset.type, 'content-length': asset.body.length, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' });
    res.end(method === 'HEAD' ? undefined : asset.body);
    return;
  }
  const src = cp.meshSource();
  if (path === '/api/mesh') return sendJson(res, 200, meshView(src));
  const m = /^\/api\/(services|workloads)\/([^/]+)\/([^/]+)\/?$/.exec(path);
  if (m) {
    const ns = segment(m[2]!);
    const name = segment(m[3]!);
    const detail = m[1] === 'services' ? serviceDetail(src, ns, name) : workloadDetail(src, ns, name);
    if (!detail) {
      const known = m[1] === 'services' ? src.services().filter((s) => s.location === 'MESH_INTERNAL').map((s) => `${s.namespace}/${s.name ?? s.hostname}`) : undefined;
      throw new HttpError(404, `no ${m[1] === 'services' ? 'service' : 'workload'} ${ns}/${name}`, known ? { services: known } : {});
    }
    return sendJson(res, 200, detail);
  }
  throw new HttpError(404, `no such endpoint: ${path} (the API has /api/mesh, /api/services/{ns}/{name}, /api/workloads/{ns}/{name})`);
}
