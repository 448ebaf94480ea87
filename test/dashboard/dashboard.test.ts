// The dashboard (src/dashboard) against a real mesh: `weft control-plane` and two `weft proxy` sidecars as child
// processes — "web" calls the Service "echo" through its outbound listener, echo's sidecar forwards to an HTTP
// server in this process that answers /hello with 200 and /fail with 503 — driven by two traffic generators. The
// runtime status given to the dashboard describes those two sidecars, plus a ready one whose admin port answers
// nothing and one still starting (the same dead port: not an error to report). The JSON API must report the
// services, the web → echo edge and the workloads with non-zero rates, the 503s in the success rates, p50/p99 from
// the histograms, the proxies' sync state and the dead sidecar as a scrape error; the page, rendered by headless
// Chromium, must list the workloads with a non-zero request rate.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startDashboard } from '../../src/dashboard/index.js';
import type { Dashboard, MeshView } from '../../src/dashboard/index.js';
import { parsePrometheusText, quantile } from '../../src/dashboard/metrics.js';
import { startTraffic } from '../../src/runtime/traffic.js';
import type { TrafficGenerator } from '../../src/runtime/traffic.js';
import type { RuntimeStatus, WorkloadStatus } from '../../src/runtime/status.js';
import { freePort, MeshWorkDir, serviceYaml, sleep, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const CHROMIUM = '/usr/bin/chromium';

interface Sidecar {
  proc: WeftProcess;
  admin: number;
  outbound: number;
  health: number;
  inbound: number;
}

async function startSidecar(xds: string, id: string, app: string, workloadPort: string | undefined): Promise<Sidecar> {
  const [admin, outbound, health] = [await freePort(), await freePort(), await freePort()];
  const inbound = workloadPort ? Number(workloadPort.split(':')[0]) : 0;
  const proc = new WeftProcess();
  const args = ['proxy', '--xds', xds, '--id', id, '--namespace', 'default', '--labels', `app=${app},version=v1`, '--admin-port', String(admin), '--outbound-port', String(outbound), '--health-port', String(health), '--stats-port', '0'];
  if (workloadPort) args.push('--workload-port', workloadPort);
  await proc.start(args, /^ready/m, `sidecar ${id}`);
  await waitProxyReady(health, proc);
  return { proc, admin, outbound, health, inbound };
}

function workload(name: string, app: string, s: Sidecar | { admin: number }, extra: Partial<WorkloadStatus> = {}): WorkloadStatus {
  return {
    name,
    namespace: 'default',
    replica: 0,
    id: `${name}-0.default`,
    labels: { app, version: 'v1' },
    serviceAccount: 'default',
    phase: 'running',
    ready: true,
    restarts: 0,
    pid: process.pid,
    sidecarPid: 'proc' in s ? s.proc.proc?.pid : 1,
    appPorts: { http: 1 },
    sidecar: { admin: s.admin, stats: 0, health: 0, outbound: 0, inbound: { http: 'inbound' in s ? s.inbound : 0 }, upstreams: {} },
    ...extra,
  };
}

describe('dashboard', () => {
  const mesh = new MeshWorkDir('weft-dashboard-');
  const cp = new WeftProcess();
  let cpHttp = '';
  let web: Sidecar;
  let echo: Sidecar;
  let backend: http.Server;
  const traffic: TrafficGenerator[] = [];
  let dash: Dashboard;
  let status: RuntimeStatus;

  before(async () => {
    backend = http.createServer((req, res) => {
      const fail = req.url === '/fail';
      res.writeHead(fail ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(fail ? 'unavailable' : 'hello');
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const appPort = (backend.address() as AddressInfo).port;
    const echoInbound = await freePort();
    mesh.writeConfig('mesh.yaml', yamlDocuments([serviceYaml('echo', { name: 'http', port: 8080 }), workloadEntryYaml('echo-1', { app: 'echo', version: 'v1' }, 'http', echoInbound)]));
    const addrs = await startControlPlane(cp, mesh.config);
    cpHttp = addrs.http;
    echo = await startSidecar(addrs.xds, 'echo-0.default', 'echo', `${echoInbound}:${appPort}/http`);
    web = await startSidecar(addrs.xds, 'web-0.default', 'web', undefined);
    const deadAdmin = await freePort();
    status = {
      configPaths: [mesh.config],
      controlPlane: { xdsPort: Number(addrs.xds.split(':').at(-1)), httpPort: Number(new URL(cpHttp).port) },
      apiPort: 0,
      startedAt: new Date().toISOString(),
      workloads: [workload('echo', 'echo', echo), workload('web', 'web', web), workload('ghost', 'ghost', { admin: deadAdmin }), workload('late', 'late', { admin: deadAdmin }, { ready: false, phase: 'starting' })],
    };
    dash = await startDashboard({ status: async () => status, controlPlaneHttp: cpHttp, scrapeIntervalMs: 500, windowMs: 5000 });
    // Through web's sidecar: 20 rps that succeed, 5 rps that fail (503 after the sidecar's default retries).
    traffic.push(startTraffic({ target: `http://127.0.0.1:${web.outbound}/hello`, rps: 20, headers: { host: 'echo:8080' } }));
    traffic.push(startTraffic({ target: `http://127.0.0.1:${web.outbound}/fail`, rps: 5, headers: { host: 'echo:8080' } }));
  });

  after(async () => {
    for (const t of traffic) await t.stop();
    await dash?.close();
    for (const p of [web?.proc, echo?.proc, cp]) await p?.stop();
    await new Promise<void>((r) => (backend ? backend.close(() => r()) : r()));
    mesh.remove();
  });

  async function api(): Promise<MeshView> {
    const res = await fetch(`http://127.0.0.1:${dash.port}/api/mesh`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    return (await res.json()) as MeshView;
  }

  async function until(what: string, cond: (v: MeshView) => boolean): Promise<MeshView> {
    let v: MeshView | undefined;
    for (let i = 0; i < 120; i++) {
      v = await api();
      if (cond(v)) return v;
      await sleep(250);
    }
    assert.fail(`timed out waiting for ${what}; last view: ${JSON.stringify(v, null, 1).slice(0, 3000)}`);
  }

  test('the API reports services, the call edge and workloads with rates, success and latency from the sidecars', async () => {
    const v = await until('traffic on echo and on the web → echo edge (with some 503s)', (x) => {
      const s = x.services.find((s) => s.name === 'echo');
      const e = x.edges.find((e) => e.source === 'web' && e.destination === 'echo');
      return !!s && s.rps > 0 && s.successRate !== undefined && s.successRate < 1 && !!e && e.rps > 0 && e.successRate !== undefined && e.successRate < 1;
    });
    const echoSvc = v.services.find((s) => s.name === 'echo')!;
    assert.equal(echoSvc.namespace, 'default');
    assert.deepEqual(echoSvc.versions, ['v1']);
    assert.equal(echoSvc.ready, 1);
    // One request in five fails (each tried up to 3 times at echo: Istio's default retries on 503): the success
    // rate is well below 100% and well above 0%, at echo and on the edge.
    assert.ok(echoSvc.successRate! > 0.3 && echoSvc.successRate! < 0.95, `echo success rate ${echoSvc.successRate}`);
    assert.ok(echoSvc.p50 !== undefined && echoSvc.p99 !== undefined && echoSvc.p99 >= echoSvc.p50, JSON.stringify(echoSvc));
    const edge = v.edges.find((e) => e.source === 'web' && e.destination === 'echo')!;
    assert.equal(edge.destinationNamespace, 'default');
    assert.equal(edge.port, 8080);
    assert.equal(edge.subset, '');
    assert.ok(edge.successRate! > 0.5 && edge.successRate! < 0.95, `web → echo success rate ${edge.successRate}`);
    const echoW = v.workloads.find((w) => w.instance === 'echo-0')!;
    assert.ok(echoW.rps > 0 && echoW.phase === 'running' && echoW.ready);
    assert.equal(echoW.service, 'echo');
    // web receives nothing inbound (the traffic enters through its outbound listener).
    assert.equal(v.workloads.find((w) => w.instance === 'web-0')!.rps, 0);
    assert.equal(v.runtime?.controlPlane.httpPort, status.controlPlane.httpPort);
  });

  test('the control plane sync status lists both sidecars as SYNCED', async () => {
    const v = await until('two synced proxies', (x) => x.proxies.length === 2);
    for (const id of ['echo-0.default', 'web-0.default']) {
      const p = v.proxies.find((x) => x.id === id);
      assert.ok(p, `${id} listed`);
      assert.equal(p.type, 'sidecar');
      for (const t of ['CDS', 'LDS', 'EDS', 'RDS']) assert.equal(p.sync[t], 'SYNCED', `${id} ${t}`);
    }
  });

  test("a ready replica's sidecar that does not answer is a scrape error naming it (one still starting is not); the rest is still shown", async () => {
    const v = await until('the ghost scrape error', (x) => x.scrapeErrors.length > 0);
    assert.equal(v.scrapeErrors.length, 1, JSON.stringify(v.scrapeErrors));
    assert.match(v.scrapeErrors[0]!.target, /sidecar of ghost-0 \(admin port \d+\)/);
    assert.match(v.scrapeErrors[0]!.error, /ECONNREFUSED/);
    const ghost = v.workloads.find((w) => w.instance === 'ghost-0')!;
    assert.equal(v.workloads.find((w) => w.instance === 'late-0')?.phase, 'starting');
    assert.equal(ghost.rps, 0);
    assert.equal(ghost.successRate, undefined);
    assert.ok(v.services.some((s) => s.name === 'echo' && s.rps > 0));
  });

  test('the page rendered by headless Chromium lists the workloads with a non-zero request rate', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed` }, async () => {
    await until('a rate on echo-0', (x) => (x.workloads.find((w) => w.instance === 'echo-0')?.rps ?? 0) > 0);
    const profile = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
    try {
      const dom = await new Promise<string>((resolve, reject) => {
        const p = spawn(
          CHROMIUM,
          ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', `--user-data-dir=${profile}`, '--virtual-time-budget=5000', '--dump-dom', `http://127.0.0.1:${dash.port}/`],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        let out = '';
        let err = '';
        p.stdout.on('data', (d: Buffer) => (out += d.toString()));
        p.stderr.on('data', (d: Buffer) => (err += d.toString()));
        const timer = setTimeout(() => p.kill('SIGKILL'), 60_000);
        p.on('error', reject);
        p.on('close', (code) => {
          clearTimeout(timer);
          if (code === 0 && out.includes('</html>')) resolve(out);
          else reject(new Error(`chromium exited with ${code}: ${err.slice(-2000)}`));
        });
      });
      const row = (attr: string, value: string): string => {
        const m = new RegExp(`<tr ${attr}="${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}">(.*?)</tr>`).exec(dom);
        assert.ok(m, `row ${attr}=${value} in the rendered page:\n${dom.slice(0, 4000)}`);
        return m[1]!;
      };
      for (const w of ['echo-0', 'web-0', 'ghost-0', 'late-0']) row('data-workload', w);
      const rps = Number(/<td class="num rps">([\d.]+)<\/td>/.exec(row('data-workload', 'echo-0'))?.[1]);
      assert.ok(rps > 0, `echo-0 request rate on the page: ${rps}`);
      assert.match(row('data-service', 'default/echo'), /<td class="num rps">[\d.]+<\/td>/);
      row('data-edge', 'web|echo|');
      assert.match(row('data-proxy', 'echo-0.default'), /SYNCED/);
      assert.match(dom, /sidecar of ghost-0/);
    } finally {
      rmSync(profile, { recursive: true, force: true });
    }
  });

  test('other paths, methods and host names', async () => {
    const base = `http://127.0.0.1:${dash.port}`;
    assert.equal((await fetch(`${base}/nope`)).status, 404);
    assert.equal((await fetch(`${base}/api/mesh`, { method: 'POST' })).status, 405);
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    const page = await fetch(`${base}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<table id="workloads">/);
    // A page from elsewhere reaching the loopback port through DNS rebinding carries its own host name: refused.
    const withHost = (host: string) =>
      new Promise<number>((resolve, reject) =>
        http.get({ host: '127.0.0.1', port: dash.port, path: '/api/mesh', headers: { host } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        }).on('error', reject),
      );
    assert.equal(await withHost(`rebind.example:${dash.port}`), 403);
    assert.equal(await withHost(`localhost:${dash.port}`), 200);
  });
});

describe('dashboard metrics', () => {
  test('Prometheus text: labels with escapes, +Inf, comments and malformed lines skipped', () => {
    const s = parsePrometheusText('# TYPE x counter\nx{a="1",b="q\\"uote"} 3\nbad line here\ny_bucket{le="+Inf"} 7\nz 1.5e3\n');
    assert.deepEqual(s, [
      { name: 'x', labels: { a: '1', b: 'q"uote' }, value: 3 },
      { name: 'y_bucket', labels: { le: '+Inf' }, value: 7 },
      { name: 'z', labels: {}, value: 1500 },
    ]);
  });

  test('quantiles interpolate inside the bucket as histogram_quantile does', () => {
    const b = new Map<number, number>([
      [10, 50],
      [20, 90],
      [50, 100],
      [Infinity, 100],
    ]);
    assert.equal(quantile(0.5, b), 10);
    assert.equal(quantile(0.7, b), 15);
    assert.equal(quantile(0.99, b), 47);
    assert.equal(quantile(0.5, new Map()), undefined);
    assert.equal(quantile(0.99, new Map([[5, 1], [Infinity, 4]])), 5, 'in the +Inf bucket: the last finite bound');
  });
});
