// The dashboard and the mesh CLI against a running local mesh (`weft up` as a child process): "web" calls the
// Service "backend" (workloads backend-v1 and backend-v3) through its sidecar, driven by a traffic generator
// through web's sidecar; a VirtualService sends `end-user: jason` to subset v2 — which selects no workload, so
// those requests (sent straight to web's outbound listener) fail with 503 UH — and everything else to v1.
// - Headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core) opens /dashboard/ on the control
//   plane's HTTP port: the graph holds the service and workload nodes and the calls with live rates; after the
//   VirtualService is edited to send everything to v3, the backend → backend-v3 edge carries the traffic and the
//   backend-v1 edge none, within 30 s; clicking the backend node opens its page, which lists the routes with
//   their file:line, the endpoints and why jason's requests fail. A screenshot goes to test-artifacts/.
// - `weft top --once`, `weft edges`, `weft stat`, `weft describe service|workload` and `weft dashboard` read the
//   same control plane and print the expected rows.
// Skipped (with the reason) when Chromium is not installed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { DASHBOARD_DIR } from '../../src/dashboard/assets.js';
import { startTraffic, type TrafficGenerator } from '../../src/runtime/traffic.js';
import type { RuntimeStatus } from '../../src/runtime/status.js';
import { ROOT, sleep } from '../helpers/mesh-processes.js';
import { isReady, replica, RuntimeDir, UpProcess, weft } from '../runtime/runtime-helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const HOST = 'backend.default.svc.cluster.local';
const EDGE_V1 = `svc:${HOST}>wl:default/backend-v1`;
const EDGE_V3 = `svc:${HOST}>wl:default/backend-v3`;
const EDGE_WEB = `wl:default/web>svc:${HOST}`;

const workload = (name: string, service: string, version: string) => `apiVersion: weft.dev/v1alpha1
kind: LocalWorkload
metadata:
  name: ${name}
spec:
  command: [node, mesh-echo.js]
  cwd: ../app
  service: ${service}
  labels: {version: ${version}}
  ports:
  - name: http
    port: 0
`;

const service = (name: string) => `apiVersion: v1
kind: Service
metadata:
  name: ${name}
spec:
  selector: {app: ${name}}
  ports:
  - name: http
    port: 8080
    targetPort: http
`;

const MESH = [
  service('web'),
  service('backend'),
  workload('web', 'web', 'v1'),
  workload('backend-v1', 'backend', 'v1'),
  workload('backend-v3', 'backend', 'v3'),
  `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: backend
spec:
  host: backend
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
`,
].join('---\n');

/** The VirtualService, its default route to `subset`; the jason rule is at line 8 of routes.yaml, the default at 13. */
const routes = (subset: string) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: backend
spec:
  hosts: [backend]
  http:
  - match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: backend, subset: v2}
  - route:
    - destination: {host: backend, subset: ${subset}}
`;

/** GET http://backend:8080/ with `end-user: jason` through web's sidecar outbound listener (absolute form). */
function jasonCall(outboundPort: number): Promise<number> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: outboundPort, path: 'http://backend:8080/', headers: { host: 'backend:8080', 'end-user': 'jason' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(5000, () => req.destroy());
    req.on('error', () => resolve(0));
    req.end();
  });
}

interface EdgeRow {
  id: string;
  rps: number;
}

async function edgeRows(page: Page): Promise<EdgeRow[]> {
  return page.$$eval('#edges tbody tr', (rows) => rows.map((r) => ({ id: r.getAttribute('data-edge') ?? '', rps: Number.parseFloat(r.querySelector('td.rps')?.textContent ?? '') || 0 })));
}

/** Polls `fn` every 500 ms until it returns a truthy value or `seconds` pass; returns the last value. */
async function poll<T>(seconds: number, fn: () => Promise<T>): Promise<T> {
  const end = Date.now() + seconds * 1000;
  let v = await fn();
  while (!v && Date.now() < end) {
    await sleep(500);
    v = await fn();
  }
  return v;
}

describe('dashboard and mesh CLI on a running mesh', { skip: existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium)` }, () => {
  const dir = new RuntimeDir();
  let up: UpProcess;
  let cp = '';
  let traffic: TrafficGenerator | undefined;
  let jasonTimer: NodeJS.Timeout | undefined;
  let browser: Browser | undefined;
  let page: Page;

  before(async () => {
    if (!existsSync(join(DASHBOARD_DIR, 'app.js'))) {
      const b = spawnSync(process.execPath, [join(ROOT, 'scripts/build-dashboard.mjs'), '--no-check'], { encoding: 'utf8' });
      assert.equal(b.status, 0, `building the dashboard: ${b.stderr}`);
    }
    dir.write('mesh.yaml', MESH);
    dir.write('routes.yaml', routes('v1'));
    up = new UpProcess(dir);
    await up.started();
    const s: RuntimeStatus = await up.waitFor('web and backend ready', (st) => ['web', 'backend-v1', 'backend-v3'].every((n) => isReady(st, n)));
    cp = `http://127.0.0.1:${s.controlPlane.httpPort}`;
    const web = replica(s, 'web')!;
    traffic = startTraffic({ target: `http://127.0.0.1:${web.sidecar.inbound['http']}/call?host=backend:8080&path=/`, rps: 8 });
    jasonTimer = setInterval(() => void jasonCall(web.sidecar.outbound), 500);
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  });

  after(async () => {
    if (jasonTimer) clearInterval(jasonTimer);
    await traffic?.stop();
    await browser?.close();
    await up?.kill();
    dir.remove();
  });

  test('the graph shows the nodes and the calls with live rates', async () => {
    await page.goto(`${cp}/dashboard/`);
    assert.equal(await page.title(), 'Weft dashboard');
    const readGraph = () =>
      page.evaluate(() => {
        const cy = (globalThis as unknown as { weftGraph: { nodes(): Array<{ id(): string }>; edges(): Array<{ id(): string; data(k: string): string }> } }).weftGraph;
        return { nodes: cy.nodes().map((n) => n.id()), edges: cy.edges().map((e) => [e.id(), e.data('label')]) };
      });
    const NODES = [`svc:${HOST}`, 'svc:web.default.svc.cluster.local', 'wl:default/web', 'wl:default/backend-v1', 'unknown'];
    // Live data: wait until the calls of every kind (the traffic's own into web, web → backend → v1) are in one
    // window; on a loaded machine one of them can be missing from a window for a while.
    let graph = await readGraph();
    const rows = await poll(60, async () => {
      const r = await edgeRows(page);
      graph = await readGraph();
      return [EDGE_WEB, EDGE_V1].every((id) => (r.find((e) => e.id === id)?.rps ?? 0) > 0) && NODES.every((n) => graph.nodes.includes(n)) ? r : undefined;
    });
    assert.ok(rows, `edges with traffic: ${JSON.stringify(await edgeRows(page))}; nodes: ${graph.nodes}`);
    for (const n of NODES) assert.ok(graph.nodes.includes(n), `node ${n}: ${graph.nodes}`);
    const v1 = graph.edges.find(([id]) => id === EDGE_V1);
    assert.match(v1?.[1] ?? '', /rps · 100(\.0)?%\n[\d.]+ ms \/ [\d.]+ ms/, JSON.stringify(graph.edges));
    assert.ok(!rows!.some((e) => e.id === EDGE_V3), 'no traffic to v3 yet');
  });

  test('a traffic shift to v3 in the config shows in the edge rates within 30 s', async () => {
    dir.write('routes.yaml', routes('v3'));
    const rows = await poll(30, async () => {
      const r = await edgeRows(page);
      return (r.find((e) => e.id === EDGE_V3)?.rps ?? 0) > 0 && !r.some((e) => e.id === EDGE_V1 && e.rps > 0) ? r : undefined;
    });
    assert.ok(rows, `after the shift: ${JSON.stringify(await edgeRows(page))}`);
  });

  test('clicking the backend node opens its page: routes with file:line, endpoints, why requests fail', async () => {
    const pos = await page.evaluate((id) => {
      const cy = (globalThis as unknown as { weftGraph: { getElementById(id: string): { renderedPosition(): { x: number; y: number } } } }).weftGraph;
      return cy.getElementById(id).renderedPosition();
    }, `svc:${HOST}`);
    const box = (await page.locator('#graph').boundingBox())!;
    await page.mouse.click(box.x + pos.x, box.y + pos.y);
    await page.waitForSelector('h2[data-service="default/backend"]', { timeout: 10_000 });
    const routesTable = await page.locator('table.routes').first().innerText();
    assert.match(routesTable, /header end-user=jason/);
    assert.match(routesTable, /routes\.yaml:8/);
    assert.match(routesTable, /→ backend v3/);
    assert.match(routesTable, /routes\.yaml:13/);
    assert.match(await page.locator('table.endpoints').innerText(), /backend-v1-0[\s\S]*HEALTHY[\s\S]*backend-v3-0/);
    assert.equal(await page.locator('p.outlier').innerText(), 'no endpoint ejected by outlier detection');
    const why = await poll(30, async () => {
      const t = (await page.locator('.explanations').count()) ? await page.locator('.explanations').innerText() : '';
      return /503 UH: subset v2 of backend selects no endpoints/.test(t) && /UH/.test(await page.locator('table.errors').innerText()) ? t : '';
    });
    assert.ok(why, await page.locator('#detail').innerText());
    mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true });
    await page.screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard-service.png'), fullPage: true });
    await page.goto(`${cp}/dashboard/#/`);
    await page.waitForSelector('#edges tbody tr');
    await page.screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard-graph.png'), fullPage: true });
  });

  test('weft top --once, edges and stat print the golden metrics', async () => {
    const top = await weft(['top', '--once', '--control-plane', cp]);
    assert.equal(top.status, 0, top.stderr);
    const row = top.stdout.split('\n').find((l) => /^default\s+backend\s/.test(l));
    assert.ok(row, top.stdout);
    const [, , eps, rps, success] = row.split(/\s+/);
    assert.equal(eps, '2/2');
    assert.ok(Number(rps) > 0, row);
    assert.match(success!, /^\d+(\.\d)?%$/);
    assert.match(top.stdout, /NAMESPACE\s+SERVICE\s+ENDPOINTS\s+RPS\s+SUCCESS\s+P50\s+P90\s+P99\s+MTLS/);

    const edges = await weft(['edges', '--control-plane', cp]);
    assert.equal(edges.status, 0, edges.stderr);
    assert.match(edges.stdout, /default\/web\s+backend\.default\s+\d+\.\d\d/);
    assert.match(edges.stdout, /backend\.default\s+default\/backend-v3\s+\d+\.\d\d/);

    const stat = await weft(['stat', 'backend', '--control-plane', cp]);
    assert.equal(stat.status, 0, stat.stderr);
    assert.match(stat.stdout, /default\/backend\s+\d+\.\d\d/);
    const wl = await weft(['stat', 'backend-v3', '--control-plane', cp, '-o', 'json']);
    assert.equal(wl.status, 0, wl.stderr);
    assert.ok((JSON.parse(wl.stdout) as { inbound: { rps: number } }).inbound.rps > 0, wl.stdout);
    const missing = await weft(['stat', 'nosuch', '--control-plane', cp]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /no service or workload "nosuch"; services: .*default\/backend/);
  });

  test('weft describe service and workload: routes with file:line, endpoints, proxies, errors and why', async () => {
    const d = await weft(['describe', 'service', 'backend', '--control-plane', cp]);
    assert.equal(d.status, 0, d.stderr);
    assert.match(d.stdout, /^Service: backend$/m);
    assert.match(d.stdout, /Routes:\n\s+VirtualService default\/backend/);
    assert.match(d.stdout, /header end-user=jason → backend v2 +\[.*routes\.yaml:8\]/);
    assert.match(d.stdout, /any request → backend v3 +\[.*routes\.yaml:13\]/);
    assert.match(d.stdout, /DestinationRule default\/backend \(.*mesh\.yaml:\d+\)[\s\S]*subset v2 \(version=v2\): 0 endpoints/);
    assert.match(d.stdout, /backend-v1-0\s+127\.0\.0\.1:\d+\s+HEALTHY/);
    assert.match(d.stdout, /Proxies:\n\s+PROXY[^\n]*\n\s+backend-v1-0\.default\s+SYNCED/);
    assert.match(d.stdout, /Recent errors:[\s\S]*default\/web\s+-\s+503\s+UH/);
    assert.match(d.stdout, /Why requests fail:\n\s+503 UH: subset v2 of backend selects no endpoints/);

    const w = await weft(['describe', 'workload', 'web', '--control-plane', cp]);
    assert.equal(w.status, 0, w.stderr);
    assert.match(w.stdout, /^Workload: web$/m);
    assert.match(w.stdout, /Services: default\/web/);
    assert.match(w.stdout, /outbound\s+\d+\.\d\d/);
    assert.match(w.stdout, /503 UH: subset v2 of backend selects no endpoints/);

    const none = await weft(['describe', 'service', 'default/nosuch', '--control-plane', cp]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /no service default\/nosuch/);

    const dash = await weft(['dashboard', '--control-plane', cp]);
    assert.equal(dash.status, 0, dash.stderr);
    assert.equal(dash.stdout, `${cp}/dashboard/\n`);
  });
});
