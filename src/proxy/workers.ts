/**
 * `weft proxy --concurrency N` (N > 1): N worker processes serving the same listeners, like Envoy's worker threads
 * (`--concurrency`). Node has no threads sharing sockets, so a primary process forks N workers with node:cluster;
 * each worker is a complete `Proxy` with its own xDS stream to the control plane (same node id and metadata, so the
 * same configuration: the control plane keeps a node's state while any of its streams is open) and binds the
 * listeners the configuration names. The listening sockets are shared through cluster's handle sharing with
 * SCHED_NONE: the primary creates each listening socket once and every worker accepts on it, so the kernel hands
 * each connection to one worker (no round-robin hop through the primary; Node 20 has no `reusePort`).
 *
 * The primary serves the node-level ports and answers for the workers over IPC (a worker's admin interface is
 * run in-process, `AdminServer.request`):
 *   - health port `/healthz/ready`: 200 only when every worker is ready (and none has /healthcheck/fail in force);
 *   - admin `/ready`: LIVE only when every worker is; `/stats` (text, `?format=json`) and `/stats/prometheus` (and
 *     the stats port): counters, gauges and histogram buckets/sums/counts summed over the workers — except the
 *     per-process server gauges (uptime, state, live, concurrency, version), which are the first worker's;
 *     JSON and text histogram summaries (quantiles) are the first worker's;
 *   - POST endpoints (`/quitquitquit`, `/healthcheck/fail|ok`, `/logging`, `/reset_counters`, …) go to every
 *     worker; the answer is the first worker's;
 *   - `/workers` (a Weft addition): each worker's pid, readiness and downstream requests served;
 *   - every other endpoint (`/config_dump`, `/clusters`, `/listeners`, `/server_info`, `/xds`, …) is the first
 *     worker's answer: the configuration is the same in every worker, while per-host state (active requests,
 *     outlier ejections, health-check results) is each worker's own, as with separate Envoy processes.
 * SIGINT / SIGTERM / POST /quitquitquit drain every worker; the primary exits once all have. A worker that dies
 * unexpectedly takes the others down (exit 1), so the supervisor restarts the sidecar as a whole.
 */
import cluster, { type Worker } from 'node:cluster';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { AdminResponse, AdminServer } from './admin/index.js';

/** Primary → worker. */
type ToWorker = { t: 'admin'; id: number; method: string; path: string } | { t: 'shutdown' };
/** Worker → primary. */
type FromWorker = { t: 'ready'; listeners: string[] } | { t: 'admin'; id: number; status: number; body: string; contentType?: string };

export const WORKER_ENV = 'WEFT_PROXY_WORKER';

export function isProxyWorker(): boolean {
  return cluster.isWorker && process.env[WORKER_ENV] !== undefined;
}

// ---------------------------------------------------------------------------------------------------------------
// Worker side

export interface WorkerHooks {
  /** The worker's in-process admin interface. */
  admin: () => AdminServer | undefined;
  /** Listener names, once ready. */
  listeners: () => string[];
  ready: Promise<void>;
  /** Resolves once the proxy has drained and closed. */
  closed: Promise<void>;
  shutdown: () => void;
}

/** Wires a worker's proxy to the primary: readiness, admin requests, shutdown. */
export function serveWorker(h: WorkerHooks): void {
  h.ready.then(
    () => process.send?.({ t: 'ready', listeners: h.listeners() } satisfies FromWorker),
    () => undefined,
  );
  process.on('message', (m: ToWorker) => {
    if (m.t === 'shutdown') {
      h.shutdown();
      return;
    }
    if (m.t !== 'admin') return;
    const admin = h.admin();
    const answer = (r: AdminResponse): void => {
      process.send?.({ t: 'admin', id: m.id, status: r.status, body: r.body, contentType: r.contentType } satisfies FromWorker, undefined, {}, () => r.after?.());
    };
    if (admin === undefined) answer({ status: 503, body: 'admin interface not started\n' });
    else admin.request(m.method, m.path).then(answer, (e: Error) => answer({ status: 500, body: `internal error: ${e.message}\n` }));
  });
  // The primary went away: nothing left to serve for.
  process.on('disconnect', () => h.shutdown());
  // Drained: leave the primary's IPC channel (it keeps this process alive otherwise).
  void h.closed.then(() => process.connected && process.disconnect());
}

// ---------------------------------------------------------------------------------------------------------------
// Primary side

export interface PrimaryOptions {
  concurrency: number;
  healthPort: number;
  adminPort: number;
  statsPort: number;
  drainTimeoutMs: number;
  out: (s: string) => void;
  err: (s: string) => void;
  log: { info: (o: object, msg: string) => void; error: (o: object, msg: string) => void };
  /** The startup lines, given the bound ports. */
  banner: (ports: { health: number; admin: number; stats: number }) => string;
}

interface WorkerState {
  worker: Worker;
  ready: boolean;
  listeners: string[];
  exited: boolean;
  /** Admin requests waiting for this worker's answer (answered 503 if it goes away). */
  waiting: Set<number>;
}

/** Runs the primary: forks the workers, serves the node-level ports, resolves with the exit code. */
export async function runPrimary(o: PrimaryOptions): Promise<number> {
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  cluster.setupPrimary({ silent: false });
  const workers: WorkerState[] = [];
  const pending = new Map<number, (r: FromWorker & { t: 'admin' }) => void>();
  let nextId = 1;
  let stopping = false;
  let failed = false;
  let announcedReady = false;

  const ask = (w: WorkerState, method: string, path: string): Promise<AdminResponse> => {
    if (w.exited || !w.worker.isConnected()) return Promise.resolve({ status: 503, body: 'worker stopped\n' });
    return new Promise((resolve) => {
      const id = nextId++;
      const timer = setTimeout(() => {
        pending.delete(id);
        w.waiting.delete(id);
        resolve({ status: 504, body: `worker ${w.worker.id} did not answer\n` });
      }, 10_000);
      w.waiting.add(id);
      pending.set(id, (r) => {
        clearTimeout(timer);
        w.waiting.delete(id);
        resolve({ status: r.status, body: r.body, contentType: r.contentType });
      });
      w.worker.send({ t: 'admin', id, method, path } satisfies ToWorker);
    });
  };
  const askAll = (method: string, path: string) => Promise.all(workers.map((w) => ask(w, method, path)));

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((r) => (resolveDone = r));
  const servers: Server[] = [];
  const stop = (why: string, code = 0): void => {
    if (code !== 0) failed = true;
    if (stopping) return;
    stopping = true;
    o.log.info({ why }, 'draining all workers');
    for (const w of workers) if (!w.exited) w.worker.send({ t: 'shutdown' } satisfies ToWorker);
    setTimeout(() => {
      o.err('weft proxy: workers did not finish draining in time; stopping them\n');
      for (const w of workers) if (!w.exited) w.worker.process.kill('SIGKILL');
    }, o.drainTimeoutMs + 5_000).unref();
  };

  for (let i = 0; i < o.concurrency; i++) {
    const worker = cluster.fork({ [WORKER_ENV]: String(i) });
    const st: WorkerState = { worker, ready: false, listeners: [], exited: false, waiting: new Set() };
    workers.push(st);
    worker.on('message', (m: FromWorker) => {
      if (m.t === 'ready') {
        st.ready = true;
        st.listeners = m.listeners;
        if (!announcedReady && workers.every((w) => w.ready)) {
          announcedReady = true;
          o.out(`ready (listeners: ${st.listeners.join(' ') || 'none'}; ${o.concurrency} workers)\n`);
          o.log.info({ workers: o.concurrency }, 'ready: every worker applied the first full config');
        }
      } else if (m.t === 'admin') {
        const cb = pending.get(m.id);
        pending.delete(m.id);
        cb?.(m);
      }
    });
    worker.on('disconnect', () => {
      for (const id of [...st.waiting]) pending.get(id)?.({ t: 'admin', id, status: 503, body: 'worker stopped\n' });
    });
    worker.on('exit', (code, signal) => {
      st.exited = true;
      if (!stopping) {
        o.log.error({ worker: worker.id, code, signal }, 'worker exited unexpectedly; stopping the others');
        stop(`worker ${worker.id} exited`, 1);
      }
      if (workers.every((w) => w.exited)) {
        void Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => resolveDone(failed ? 1 : 0));
        for (const s of servers) s.closeAllConnections();
      }
    });
  }

  const first = () => workers[0]!;
  const reply = (res: ServerResponse, r: AdminResponse): void => {
    res.writeHead(r.status, { 'content-type': r.contentType ?? 'text/plain; charset=UTF-8', 'cache-control': 'no-cache, max-age=0' });
    res.end(r.body);
  };

  const adminHandler = async (req: IncomingMessage): Promise<AdminResponse> => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const path = url.split('?')[0];
    if (method === 'POST') {
      const rs = await askAll(method, url);
      if (path === '/quitquitquit') stop('POST /quitquitquit');
      return rs[0]!;
    }
    if (path === '/ready') {
      const rs = await askAll(method, url);
      return rs.find((r) => r.status !== 200) ?? rs[0]!;
    }
    if (path === '/workers') {
      // Weft addition: each worker's pid, readiness and requests served (its http.*.downstream_rq_total).
      const rs = await askAll('GET', '/stats?format=json&filter=%5Ehttp%5C..*%5C.downstream_rq_total%24');
      const list = workers.map((w, i) => {
        let requests = 0;
        try {
          for (const s of (JSON.parse(rs[i]!.body) as { stats?: Array<{ value?: unknown }> }).stats ?? []) if (typeof s.value === 'number') requests += s.value;
        } catch {
          requests = NaN;
        }
        return { worker: i, pid: w.worker.process.pid, ready: w.ready, exited: w.exited, downstreamRequests: requests };
      });
      return { status: 200, contentType: 'application/json', body: JSON.stringify(list, null, 2) + '\n' };
    }
    if (path === '/stats' || path === '/stats/prometheus') {
      const rs = await askAll(method, url);
      const bad = rs.find((r) => r.status !== 200);
      if (bad) return bad;
      const json = new URLSearchParams(url.slice(path.length + 1)).get('format') === 'json';
      return { status: 200, contentType: rs[0]!.contentType, body: json ? mergeStatsJson(rs.map((r) => r.body)) : mergeStatsText(rs.map((r) => r.body)) };
    }
    return ask(first(), method, url);
  };

  const serve = async (port: number, host: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<number> => {
    const s = createServer(handler);
    servers.push(s);
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen({ port, host, exclusive: true }, () => resolve());
    });
    return (s.address() as AddressInfo).port;
  };
  let ports: { health: number; admin: number; stats: number };
  try {
    ports = {
      health: await serve(o.healthPort, '0.0.0.0', (req, res) => {
        req.resume();
        if ((req.url ?? '').split('?')[0] !== '/healthz/ready') return reply(res, { status: 404, body: '' });
        if (stopping) return reply(res, { status: 503, body: '' });
        void askAll('GET', '/ready').then((rs) => reply(res, { status: !stopping && rs.every((r) => r.status === 200) ? 200 : 503, body: '' }));
      }),
      admin: await serve(o.adminPort, '127.0.0.1', (req, res) => {
        req.resume();
        void adminHandler(req).then((r) => reply(res, r));
      }),
      stats: await serve(o.statsPort, '0.0.0.0', (req, res) => {
        req.resume();
        if ((req.url ?? '').split('?')[0] !== '/stats/prometheus') return reply(res, { status: 404, body: '' });
        void askAll('GET', req.url ?? '/stats/prometheus').then((rs) => reply(res, { status: 200, contentType: rs[0]?.contentType, body: mergeStatsText(rs.map((r) => r.body)) }));
      }),
    };
  } catch (e) {
    const er = e as NodeJS.ErrnoException;
    o.err(`weft proxy: cannot start: ${er.code === 'EADDRINUSE' ? `address already in use (${er.message})` : er.message}\n`);
    stop('start-up failed', 1);
    return done;
  }
  o.out(o.banner(ports));

  const onSignal = (s: NodeJS.Signals) => stop(s);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const code = await done;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  o.log.info({ code }, 'stopped');
  return code;
}

// ---------------------------------------------------------------------------------------------------------------
// Stats merging

/** Per-process gauges: not summed (the first worker's value is kept): server gauges and Istio's istio_build. */
const NOT_SUMMED = /(^|[._])server[._](uptime|state|live|concurrency|version|hot_restart_epoch)\b|^istio_build\b/;

function addNumbers(a: string, b: string): string | undefined {
  if (!/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(a) || !/^-?\d+(\.\d+)?(e[+-]?\d+)?$/i.test(b)) return undefined;
  const sum = Number(a) + Number(b);
  return Number.isInteger(sum) ? String(sum) : String(Number(sum.toPrecision(15)));
}

/**
 * Sums Envoy text stats (`name: value`) or Prometheus exposition (`series value`) from several workers: lines are
 * keyed by everything before the value; numeric values of the same key are added (except the per-process server
 * gauges); comments, non-numeric values (histogram summaries) and the order are the first worker's, with series
 * only some workers have appended.
 */
export function mergeStatsText(bodies: string[]): string {
  const order: string[] = [];
  const values = new Map<string, { key: string; sep: string; value: string }>();
  for (const body of bodies) {
    for (const line of body.split('\n')) {
      if (line === '') continue;
      const prom = !/^[^\s{]+: /.test(line);
      const i = line.startsWith('#') ? -1 : prom ? line.lastIndexOf(' ') : line.indexOf(': ');
      if (i < 0) {
        if (!values.has(line)) {
          values.set(line, { key: line, sep: '', value: '' });
          order.push(line);
        }
        continue;
      }
      const key = line.slice(0, i);
      const sep = prom ? ' ' : ': ';
      const value = line.slice(i + sep.length);
      const prev = values.get(key);
      if (prev === undefined) {
        values.set(key, { key, sep, value });
        order.push(key);
      } else if (!NOT_SUMMED.test(key)) {
        const sum = addNumbers(prev.value, value);
        if (sum !== undefined) prev.value = sum;
      }
    }
  }
  return order.map((k) => {
    const v = values.get(k)!;
    return v.sep === '' ? v.key : `${v.key}${v.sep}${v.value}`;
  }).join('\n') + (order.length ? '\n' : '');
}

/** Sums `/stats?format=json` (`{stats: [{name, value} | {histograms}]}`): numeric values by name; the rest is the first worker's. */
export function mergeStatsJson(bodies: string[]): string {
  const docs = bodies.map((b) => JSON.parse(b) as { stats?: Array<{ name?: string; value?: unknown }> });
  const base = docs[0] ?? { stats: [] };
  const byName = new Map<string, { name?: string; value?: unknown }>();
  for (const s of base.stats ?? []) if (typeof s.name === 'string') byName.set(s.name, s);
  for (const d of docs.slice(1)) {
    for (const s of d.stats ?? []) {
      if (typeof s.name !== 'string' || typeof s.value !== 'number') continue;
      const prev = byName.get(s.name);
      if (prev === undefined) {
        const copy = { ...s };
        (base.stats ??= []).push(copy);
        byName.set(s.name, copy);
      } else if (typeof prev.value === 'number' && !NOT_SUMMED.test(s.name)) prev.value += s.value;
    }
  }
  return JSON.stringify(base, null, 2) + '\n';
}
