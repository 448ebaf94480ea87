/**
 * Shared helpers of the Bookinfo sample apps (plain Node ESM, no build step, no dependencies).
 *
 * - `serve(name, routes)`: an HTTP server on 127.0.0.1:$PORT_HTTP (or $PORT; what `weft up` assigns), with
 *   `/health`, JSON and HTML helpers, and a clean stop on SIGTERM/SIGINT.
 * - `callService(url, req, timeoutMs)`: GET another mesh service by name (`http://reviews:9080/reviews/0`)
 *   through the sidecar: `HTTP_PROXY` (set by the runtime) points at the sidecar's outbound listener, which routes
 *   absolute-form requests by host, as an HTTP forward proxy. Without HTTP_PROXY it connects to the host directly.
 *   Connections are kept alive; a request that finds its reused connection closed by the other side is sent once
 *   more on a new one (what Node documents for `request.reusedSocket`).
 * - `forwardHeaders(req)`: the headers an app must copy from its incoming request to its outgoing requests so
 *   that a mesh can join the hops into one trace and route on the user (Istio's "Distributed Tracing" task and
 *   Bookinfo's productpage): x-request-id, W3C trace context, B3, and the other tracers' headers, plus
 *   `end-user`, `user-agent`, `cookie` and `authorization`.
 */
import http from 'node:http';

export const FORWARD_HEADERS = [
  'x-request-id',
  'traceparent',
  'tracestate',
  'b3',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-ot-span-context',
  'x-cloud-trace-context',
  'grpc-trace-bin',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampling-priority',
  'sw8',
  'end-user',
  'user-agent',
  'cookie',
  'authorization',
];

/** The subset of `req`'s headers listed in FORWARD_HEADERS. */
export function forwardHeaders(req) {
  const out = {};
  for (const h of FORWARD_HEADERS) {
    const v = req.headers[h];
    if (v !== undefined) out[h] = v;
  }
  return out;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
const proxy = parseProxy(process.env.HTTP_PROXY ?? process.env.http_proxy);

function parseProxy(v) {
  if (!v) return undefined;
  try {
    const u = new URL(v);
    return { host: u.hostname, port: Number(u.port || 80) };
  } catch {
    process.stderr.write(`ignoring HTTP_PROXY=${JSON.stringify(v)}: not a URL\n`);
    return undefined;
  }
}

/**
 * GETs `url` (an http:// URL naming a mesh service) through the sidecar. Resolves with
 * `{ status, headers, body, json }` (json undefined when the body is not JSON) for any HTTP answer, rejects with
 * an Error whose message says what happened on a connection failure or after `timeoutMs`.
 */
export function callService(url, headers, timeoutMs, retryStale = true) {
  const u = new URL(url);
  const opts = proxy
    ? { host: proxy.host, port: proxy.port, path: u.href, headers: { ...headers, host: u.host } }
    : { host: u.hostname, port: Number(u.port || 80), path: u.pathname + u.search, headers };
  return new Promise((resolve, reject) => {
    const req = http.request({ ...opts, method: 'GET', agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const body = Buffer.concat(chunks).toString('utf8');
        let json;
        if (/json/.test(res.headers['content-type'] ?? '')) {
          try {
            json = JSON.parse(body);
          } catch {
            json = undefined;
          }
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
      res.on('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
    });
    const timer = setTimeout(() => req.destroy(new Error(`no answer from ${u.host} within ${timeoutMs} ms`)), timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      // A kept-alive connection the other side closed meanwhile: the GET never arrived, send it once more.
      if (retryStale && req.reusedSocket && e.code === 'ECONNRESET') return resolve(callService(url, headers, timeoutMs, false));
      reject(new Error(`${u.host}: ${e.message}`));
    });
    req.end();
  });
}

export function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function sendHtml(res, status, html, extraHeaders = {}) {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(html), ...extraHeaders });
  res.end(html);
}

export function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

/** Who this process is: the runtime's workload name and replica, else the service name. */
export function instanceName(service) {
  const w = process.env.WEFT_WORKLOAD;
  return w ? `${w}-${process.env.WEFT_REPLICA ?? '0'}` : service;
}

/** The port to listen on: $PORT_<NAME>, then $PORT, then `fallback`. */
export function listenPort(portName, fallback) {
  const v = process.env[`PORT_${portName.toUpperCase().replace(/-/g, '_')}`] ?? process.env.PORT;
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    process.stderr.write(`invalid port ${JSON.stringify(v)} for ${portName}\n`);
    process.exit(2);
  }
  return n;
}

/**
 * Serves `routes` (an array of [RegExp, handler(req, res, match, url)]) on 127.0.0.1. GET /health answers 200.
 * Unknown paths get 404, handler errors 500; SIGTERM/SIGINT stop the server and exit 0.
 */
export function serve(service, routes, { portName = 'http', fallbackPort = 9080, onStop } = {}) {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === '/health') return sendJson(res, 200, { status: `${service} is healthy` });
    for (const [re, handler] of routes) {
      const m = re.exec(url.pathname);
      if (!m) continue;
      try {
        await handler(req, res, m, url);
      } catch (e) {
        process.stderr.write(`${service}: ${req.method} ${req.url}: ${e?.stack ?? e}\n`);
        if (!res.headersSent) sendJson(res, 500, { error: String(e?.message ?? e) });
        else res.destroy();
      }
      return;
    }
    sendJson(res, 404, { error: `no such path: ${url.pathname}` });
  });
  server.keepAliveTimeout = 30_000;
  const port = listenPort(portName, fallbackPort);
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`${instanceName(service)} listening on 127.0.0.1:${server.address().port}\n`);
  });
  server.on('error', (e) => {
    process.stderr.write(`${service}: cannot listen on 127.0.0.1:${port}: ${e.message}\n`);
    process.exit(1);
  });
  const stop = () => {
    onStop?.();
    server.close(() => process.exit(0));
    server.closeIdleConnections?.();
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  return server;
}
