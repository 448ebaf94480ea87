// The local runtime's parts with real sockets, files and processes: port allocation and the port-holder lookup,
// size-capped log files and `followLog`, the state dir's ownership rules, and the programmatic API
// (`startRuntime` → ready → status → stop) that `weft demo` builds on.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { liveRuntime, runtimeFilePath, writeRuntimeFile } from '../../src/runtime/api.js';
import { startRuntime, type RuntimeEvent } from '../../src/runtime/index.js';
import { followLog, LogFile } from '../../src/runtime/logs.js';
import { portConflictMessage, PortAllocator, portHolder, portIsFree } from '../../src/runtime/ports.js';
import { FIXTURES, RuntimeDir, waitGone } from './runtime-helpers.js';

function listen(port = 0): Promise<Server> {
  const s = createServer();
  return new Promise((r) => s.listen(port, '127.0.0.1', () => r(s)));
}

test('ports: a held port is not free and its holder (this process) is named; allocated ports are distinct and below the ephemeral range', async () => {
  const s = await listen();
  const port = (s.address() as AddressInfo).port;
  try {
    assert.equal(await portIsFree(port), false);
    assert.match(portHolder(port) ?? '', new RegExp(`^pid ${process.pid} \\(.*node`));
    assert.match(portConflictMessage(port, 'http'), new RegExp(`^port ${port} \\(http\\) is already in use by pid ${process.pid} `));
  } finally {
    await new Promise<void>((r) => s.close(() => r()));
  }
  assert.equal(await portIsFree(port), true);
  assert.equal(portHolder(port), undefined);
  const alloc = new PortAllocator();
  const got = await Promise.all(Array.from({ length: 20 }, () => alloc.allocate()));
  assert.equal(new Set(got).size, 20);
  for (const p of got) assert.ok(p > 0 && p < 65536);
  // Below the ephemeral range (outgoing connections cannot take them before they are bound).
  const lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
  if (lo - 10_000 >= 1000) for (const p of got) assert.ok(p >= 10_000 && p < lo, `${p} is below ${lo}`);
});

test('LogFile: appends, notes, and rotates to .1 past its cap', () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-log-'));
  try {
    const path = join(dir, 'x-0.log');
    const log = new LogFile(path, 100);
    log.write('a'.repeat(60));
    log.note('hello');
    assert.match(readFileSync(path, 'utf8'), /^a{60}\[weft\] \d{4}-\d\d-\d\dT\S+ hello\n$/);
    log.write('b'.repeat(50));
    assert.equal(readFileSync(path, 'utf8'), 'b'.repeat(50));
    assert.match(readFileSync(`${path}.1`, 'utf8'), /^a{60}\[weft\]/);
    log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('followLog: prints the file, then what is appended, across a rotation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-log-'));
  try {
    const path = join(dir, 'x-0.log');
    const log = new LogFile(path, 30);
    log.write('first\n');
    let got = '';
    const ac = new AbortController();
    const done = followLog(path, (b) => (got += b.toString()), { follow: true, signal: ac.signal });
    const until = async (s: string) => {
      for (let i = 0; i < 100 && !got.includes(s); i++) await new Promise((r) => setTimeout(r, 100));
      assert.ok(got.includes(s), `saw ${JSON.stringify(got)}`);
    };
    await until('first\n');
    log.write('second\n');
    await until('second\n');
    log.write('third line that rotates\n');
    await until('third line that rotates\n');
    ac.abort();
    await done;
    assert.equal(got, 'first\nsecond\nthird line that rotates\n');
    log.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('state dir: runtime.json of a dead process is stale; of a live runtime it is not', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  try {
    assert.equal(await liveRuntime(dir), undefined);
    const dead = spawnSync(process.execPath, ['-e', 'process.pid']).pid!;
    writeRuntimeFile(dir, { pid: dead, apiPort: 1, api: 'http://127.0.0.1:1', startedAt: '', configPaths: [] });
    assert.equal(await liveRuntime(dir), undefined, 'a dead pid does not own the state dir');
    // A live process whose API answers owns it.
    const api = createHttpServer((_req, res) => res.end('{"workloads":[]}'));
    await new Promise<void>((r) => api.listen(0, '127.0.0.1', r));
    const port = (api.address() as AddressInfo).port;
    const sleeper = spawnSync('sh', ['-c', 'sleep 30 >/dev/null 2>&1 & echo $!'], { encoding: 'utf8' });
    const pid = Number(sleeper.stdout.trim());
    try {
      writeRuntimeFile(dir, { pid, apiPort: port, api: `http://127.0.0.1:${port}`, startedAt: '', configPaths: [] });
      assert.equal((await liveRuntime(dir))?.pid, pid);
      // Alive, but neither a runtime API nor a weft process (pid reused): stale.
      writeRuntimeFile(dir, { pid, apiPort: 1, api: 'http://127.0.0.1:1', startedAt: '', configPaths: [] });
      assert.equal(await liveRuntime(dir), undefined);
    } finally {
      process.kill(pid, 'SIGKILL');
      api.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('startRuntime: a config path that does not exist, or a state dir inside a config dir, is a clear error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'weft-state-'));
  try {
    await assert.rejects(startRuntime({ configPaths: [join(dir, 'nope')], stateDir: join(dir, 's') }), new RegExp(`config path ${join(dir, 'nope')} does not exist`));
    // A state dir the config watcher would read.
    await assert.rejects(startRuntime({ configPaths: [dir], stateDir: join(dir, 'state') }), /state dir .*\/state is inside config path .*: its JSON files would be read as mesh config/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('startRuntime (programmatic): ready, status, events, the API, stop; stop is idempotent', async () => {
  const dir = new RuntimeDir();
  // Only workload b of the shared fixture, with its Service.
  const yaml = readFileSync(join(FIXTURES, 'mesh.yaml'), 'utf8');
  const docs = yaml.split(/^---$/m).filter((d) => /name: b\n/.test(d));
  writeFileSync(join(dir.config, 'b.yaml'), docs.join('---'));
  mkdirSync(dir.state, { recursive: true });
  const events: RuntimeEvent[] = [];
  const rt = await startRuntime({ configPaths: [dir.config], stateDir: dir.state, onEvent: (e) => events.push(e) });
  try {
    assert.ok(rt.apiPort > 0 && rt.controlPlane.xdsPort > 0 && rt.controlPlane.httpPort > 0);
    await rt.ready();
    const s = rt.status();
    assert.deepEqual(s.workloads.map((w) => [w.name, w.ready, w.phase]), [['b', true, 'running']]);
    assert.ok(events.some((e) => e.kind === 'ready' && e.workload === 'b-0'), JSON.stringify(events));
    const viaApi = (await (await fetch(`http://127.0.0.1:${rt.apiPort}/v1/status`)).json()) as typeof s;
    assert.equal(viaApi.workloads[0]!.pid, s.workloads[0]!.pid);
    assert.equal((await fetch(`http://127.0.0.1:${rt.apiPort}/v1/shutdown`)).status, 405);
    assert.ok(existsSync(runtimeFilePath(dir.state)));
    const pids = [s.workloads[0]!.pid!, s.workloads[0]!.sidecarPid!];
    await Promise.all([rt.stop(), rt.stop()]);
    await rt.stopped;
    assert.deepEqual(await waitGone(pids), []);
    assert.equal(existsSync(runtimeFilePath(dir.state)), false);
    assert.equal(rt.status().workloads.length, 0);
    assert.ok(events.some((e) => e.kind === 'stopped'));
  } finally {
    await rt.stop();
    dir.remove();
  }
});
