// `weft up` failure behaviour through the real CLI: a missing command, an app that exits at once and a fixed port
// held by another process each get a clear error and are retried with backoff while the rest of the mesh serves;
// the port conflict names the holder's pid; SIGINT stops everything and leaves no process behind, and what a
// runtime killed with SIGKILL left is stopped by the next `weft up` on its state dir.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, getJson, isReady, pidAlive, replica, RuntimeDir, sleep, UpProcess, waitGone } from './runtime-helpers.js';

const dir = new RuntimeDir();
let up: UpProcess;
let holder: Server;
let heldPort = 0;

before(async () => {
  // Another "process" (this test process) holds the fixed port of workload "fixed".
  holder = createServer();
  await new Promise<void>((r) => holder.listen(0, '127.0.0.1', r));
  heldPort = (holder.address() as AddressInfo).port;
  writeFileSync(join(dir.config, 'failing.yaml'), readFileSync(join(FIXTURES, 'failing.yaml'), 'utf8').replaceAll('HELD_PORT', String(heldPort)));
  up = new UpProcess(dir);
  await up.started();
});

after(async () => {
  await up.kill();
  holder.close();
  dir.remove();
});

test('broken workloads get clear errors and restarts while the others serve', async () => {
  const s = await up.waitFor('every failure retried at least once, b ready', (st) =>
    ['missing', 'crasher', 'fixed'].every((n) => (replica(st, n)?.restarts ?? 0) > 0) && isReady(st, 'b'),
  );
  const missing = replica(s, 'missing')!;
  assert.equal(missing.lastError, 'workload missing: command "weft-no-such-command" not found in PATH');
  assert.equal(missing.ready, false);
  assert.match(replica(s, 'crasher')!.lastError ?? '', /^workload crasher: exited with code 3 after \d+\.\d s$/);
  const fixed = replica(s, 'fixed')!;
  // The holder is this test process: its pid and command line (from /proc).
  assert.match(fixed.lastError ?? '', new RegExp(`^workload fixed: port ${heldPort} \\(http\\) is already in use by pid ${process.pid} \\(\\S*node .*failures\\.test\\.js.*\\)$`));
  for (const n of ['missing', 'crasher', 'fixed']) assert.notEqual(replica(s, n)!.phase, 'running');
  // b serves through its sidecar's inbound port meanwhile.
  const info = await getJson<{ workload: string }>(replica(s, 'b')!.sidecar.inbound.http!, '/');
  assert.equal(info.workload, 'b');
  // The failure is in the workload's log and the progress lines.
  assert.match(readFileSync(join(dir.state, 'logs', 'missing-0.log'), 'utf8'), /\[weft\] \S+ workload missing: command "weft-no-such-command" not found in PATH/);
  assert.match(up.stdout, /workload crasher: exited with code 3 after \d+\.\d s; restarting in \d+\.\d s/);
});

test('a freed port lets the workload start', async () => {
  await new Promise<void>((r) => holder.close(() => r()));
  await up.waitFor('fixed ready', (st) => isReady(st, 'fixed'));
});

/** Pids whose process group is `pgid` (from /proc/PID/stat). */
function groupMembers(pgid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so split after the last ')'.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(f[2]) === pgid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

test('SIGINT drains and stops everything: exit 0, no process left behind (app process groups included)', async () => {
  const s = await up.status();
  const bPid = replica(s, 'b')!.pid!;
  const group = groupMembers(bPid);
  assert.ok(group.length >= 2, `b's process group holds the app and its sleep: ${group.join(' ')}`);
  for (const p of group) up.pids.add(p);
  up.proc.kill('SIGINT');
  assert.equal(await up.exit, 0);
  assert.match(up.stdout, /SIGINT: draining and stopping everything/);
  assert.ok(up.pids.size >= 4, `pids seen: ${[...up.pids].join(' ')}`);
  assert.deepEqual(await waitGone(up.pids), [], 'every pid the status showed is gone');
});

test('weft up killed with SIGKILL: the next weft up on its state dir stops the processes it left', async () => {
  const d = new RuntimeDir();
  const docs = readFileSync(join(FIXTURES, 'mesh.yaml'), 'utf8').split(/^---$/m).filter((x) => /name: b\n/.test(x));
  d.write('b.yaml', docs.join('---'));
  const first = new UpProcess(d);
  let second: UpProcess | undefined;
  try {
    await first.started();
    const s = await first.waitFor('b ready', (st) => isReady(st, 'b'));
    const left = [replica(s, 'b')!.pid!, replica(s, 'b')!.sidecarPid!];
    first.proc.kill('SIGKILL');
    await first.exit;
    await sleep(500);
    assert.ok(left.every(pidAlive), 'a killed runtime cannot stop its children itself');
    second = new UpProcess(d);
    await second.started();
    assert.match(second.stdout, new RegExp(`stopped 2 process\\(es\\) left by a runtime that did not stop cleanly: .*pid (${left[0]}|${left[1]})`));
    assert.deepEqual(await waitGone(left), []);
    await second.waitFor('b ready again', (st) => isReady(st, 'b'));
  } finally {
    await first.kill();
    await second?.kill();
    if (second) assert.deepEqual(await waitGone(second.pids), []);
    d.remove();
  }
});
