// `weft demo` end to end, as a user runs it: the real CLI in a child process with a temporary state dir. It must
// print the guide; the product page (through productpage's sidecar) must answer with the book details (and the
// stock, from the gRPC service reached over proxyless gRPC) and the reviews; the dashboard (on the control plane's
// HTTP port) must answer and its API list the Bookinfo services with their endpoints and the synced sidecars; `weft demo --apply` of the all-v1 task must leave only reviews v1, and of the
// jason task must send jason (and only him) to v2; SIGINT must stop everything: exit 0, every app and sidecar pid
// of the status gone, runtime.json removed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RuntimeStatus } from '../../src/runtime/status.js';
import type { MeshView } from '../../src/controlplane/meshapi/views.js';
import { ROOT, sleep, WEFT } from '../helpers/mesh-processes.js';
import { pidAlive, waitGone, weft } from './runtime-helpers.js';

const TASKS = join(ROOT, 'examples/bookinfo/tasks');

async function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(15_000) });
  return { status: res.status, body: await res.text() };
}

const reviewsVersion = (page: string): string | undefined => /<div id="reviews" data-version="(v\d)">/.exec(page)?.[1];

describe('weft demo', () => {
  const stateDir = mkdtempSync(join(tmpdir(), 'weft-demo-'));
  let demo: ChildProcessWithoutNullStreams;
  let stdout = '';
  let stderr = '';
  let productPage = '';
  let dashboard = '';
  let pids: number[] = [];

  const runtimeApi = (): string => (JSON.parse(readFileSync(join(stateDir, 'runtime.json'), 'utf8')) as { api: string }).api;
  const status = async (): Promise<RuntimeStatus> => (await (await fetch(`${runtimeApi()}/v1/status`)).json()) as RuntimeStatus;

  before(async () => {
    demo = spawn(process.execPath, [WEFT, 'demo', '--state-dir', stateDir, '--rps', '5'], { cwd: ROOT });
    demo.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    demo.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    for (let i = 0; i < 1200 && !/Ctrl-C stops everything/.test(stdout); i++) {
      if (demo.exitCode !== null) break;
      await sleep(100);
    }
    assert.match(stdout, /Ctrl-C stops everything/, `the guide, within 120 s:\n${stdout}\n${stderr}`);
    productPage = /^Product page: (http:\/\/127\.0\.0\.1:\d+\/productpage)/m.exec(stdout)?.[1] ?? '';
    dashboard = /^Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)dashboard\/$/m.exec(stdout)?.[1] ?? '';
    const s = await status();
    pids = s.workloads.flatMap((w) => [w.pid, w.sidecarPid]).filter((p): p is number => p !== undefined);
  });

  after(async () => {
    if (demo && demo.exitCode === null && demo.signalCode === null) {
      demo.kill('SIGTERM');
      await new Promise((r) => demo.once('exit', r));
    }
    for (const p of pids) if (pidAlive(p)) process.kill(p, 'SIGKILL');
    rmSync(stateDir, { recursive: true, force: true });
  });

  test('prints the guide: the product page, the dashboard line and three commands to try (weft top among them)', () => {
    assert.ok(productPage, stdout);
    assert.ok(dashboard, stdout);
    assert.match(stdout, /Bookinfo is running: 7\/7 workloads ready/);
    const tries = stdout.slice(stdout.indexOf('Try:')).split('\n').filter((l) => /^ {2}weft /.test(l));
    assert.equal(tries.length, 3, stdout);
    assert.match(tries[0]!, /weft demo --apply \S+\/reviews-50-v3\.yaml --state-dir /);
    assert.equal(tries[1]!.trim(), `weft top --control-plane ${dashboard.replace(/\/$/, '')}`);
    assert.match(tries[2]!, /weft demo --apply \S+\/ratings-fault-abort\.yaml --state-dir /);
    assert.equal(pids.length, 14, 'an app and a sidecar for each of the 7 workloads');
  });

  test('the product page answers through the mesh with details, stock (proxyless gRPC) and reviews', async () => {
    let page = '';
    for (let i = 0; i < 60; i++) {
      const r = await get(productPage);
      assert.equal(r.status, 200);
      page = r.body;
      if (/in stock at Lisbon/.test(page) && reviewsVersion(page)) break;
      await sleep(500);
    }
    assert.match(page, /<table id="details"/, page);
    assert.match(page, /12 in stock at Lisbon/, page);
    assert.match(page, /Reviewer1/);
    assert.ok(['v1', 'v2', 'v3'].includes(reviewsVersion(page)!), page);
  });

  test('the dashboard answers; its API lists the Bookinfo services with ready endpoints and the synced sidecars', async () => {
    const r = await get(`${dashboard}dashboard/`);
    assert.equal(r.status, 200);
    assert.match(r.body, /<title>Weft dashboard<\/title>/);
    const v = JSON.parse((await get(`${dashboard}api/mesh`)).body) as MeshView;
    for (const name of ['productpage', 'details', 'reviews', 'ratings']) {
      const svc = v.services.find((s) => s.name === name);
      assert.ok(svc && svc.healthyEndpoints > 0, `${name}: ${JSON.stringify(v.services)}`);
    }
    const sidecars = v.proxies.filter((p) => p.type === 'sidecar');
    assert.equal(sidecars.length, 7, JSON.stringify(v.proxies));
    for (const p of sidecars) assert.equal(p.sync['CDS'], 'SYNCED', JSON.stringify(p));
  });

  test('--apply virtual-service-all-v1 leaves only reviews v1; --apply reviews-jason-v2 sends only jason to v2', async () => {
    const a = await weft(['demo', '--apply', join(TASKS, 'virtual-service-all-v1.yaml'), '--state-dir', stateDir]);
    assert.equal(a.status, 0, a.stderr);
    assert.match(a.stdout, /applied .*virtual-service-all-v1\.yaml .*VirtualService bookinfo\/reviews/);
    // Until the change is in force, versions may differ; then 10 v1 in a row (1 chance in 59,049 by luck).
    let streak = 0;
    for (let i = 0; i < 300 && streak < 10; i++) {
      streak = reviewsVersion((await get(productPage)).body) === 'v1' ? streak + 1 : 0;
      if (streak === 0) await sleep(200);
    }
    assert.equal(streak, 10, 'the all-v1 routes came into force');
    for (let i = 0; i < 20; i++) assert.equal(reviewsVersion((await get(productPage)).body), 'v1', `request ${i} after all-v1`);

    const j = await weft(['demo', '--apply', join(TASKS, 'reviews-jason-v2.yaml'), '--state-dir', stateDir]);
    assert.equal(j.status, 0, j.stderr);
    assert.match(j.stdout, /replaced: VirtualService bookinfo\/reviews \(from virtual-service-all-v1\.yaml\)/);
    const jason = { cookie: 'user=jason' };
    let seen = '';
    for (let i = 0; i < 300 && seen !== 'v2'; i++) {
      seen = reviewsVersion((await get(productPage, jason)).body) ?? '';
      if (seen !== 'v2') await sleep(200);
    }
    assert.equal(seen, 'v2', "jason's reviews come from v2");
    for (let i = 0; i < 5; i++) {
      assert.equal(reviewsVersion((await get(productPage, jason)).body), 'v2');
      assert.equal(reviewsVersion((await get(productPage)).body), 'v1');
    }
    // The repository's copy is untouched: the tasks went into the state dir's copy.
    assert.ok(existsSync(join(stateDir, 'bookinfo/mesh/applied/reviews-jason-v2.yaml')));
    assert.ok(!existsSync(join(ROOT, 'examples/bookinfo/mesh/applied')));
  });

  test('--apply refuses a file that is not valid config, naming the problem and where', async () => {
    const r = await weft(['demo', '--apply', join(ROOT, 'package.json'), '--state-dir', stateDir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /package\.json defines no resources|is not valid/);
    const bad = join(stateDir, 'bad-task.yaml');
    writeFileSync(bad, 'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: bookinfo}\nspec:\n  hosts: [reviews]\n  htp: []\n');
    const b = await weft(['demo', '--apply', bad, '--state-dir', stateDir]);
    assert.equal(b.status, 1);
    assert.match(b.stderr, /bad-task\.yaml is not valid:\n {2}\S+bad-task\.yaml:6:3: unknown field "htp" in VirtualService/);
    assert.ok(!existsSync(join(stateDir, 'bookinfo/mesh/applied/bad-task.yaml')), 'not applied');
  });

  test('SIGINT stops everything: exit 0, every app and sidecar gone, runtime.json removed', async () => {
    const exited = new Promise<number | null>((r) => demo.once('exit', (code) => r(code)));
    demo.kill('SIGINT');
    assert.equal(await exited, 0, stderr);
    assert.deepEqual(await waitGone(pids), [], 'no process left behind');
    assert.ok(!existsSync(join(stateDir, 'runtime.json')));
    const r = await weft(['demo', '--apply', join(TASKS, 'reviews-50-v3.yaml'), '--state-dir', stateDir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /no demo is running in /);
  });
});
