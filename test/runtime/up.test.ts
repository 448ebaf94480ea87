// `weft up` end to end through the real CLI: two LocalWorkloads where A calls B by name through its sidecar
// (HTTP_PROXY) and over a TCP upstream ($B_TCP_ADDR); status, logs, the env contract, kill -9 of an app, hot reload
// (scale B to 2 and back, add a workload, change a VirtualService), and `weft down` leaving no process behind.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { after, before, test } from 'node:test';
import { WEFT } from '../helpers/mesh-processes.js';
import type { RuntimeStatus } from '../../src/runtime/status.js';
import { getJson, isReady, replica, RuntimeDir, sleep, UpProcess, waitGone, weft } from './runtime-helpers.js';

interface EchoInfo {
  workload: string;
  replica: number;
  namespace: string;
  env: Record<string, string>;
  cwd: string;
}

const dir = new RuntimeDir();
dir.fixture('mesh.yaml');
let up: UpProcess;

before(async () => {
  up = new UpProcess(dir);
  await up.started();
});

after(async () => {
  await up.kill();
  dir.remove();
});

/** A's app port (from the status). */
function aPort(s: RuntimeStatus): number {
  return replica(s, 'a')!.appPorts.http!;
}

/** A calls http://b:8080/ through its sidecar; the JSON B answered. Retries (up to 30 s) while routes converge. */
async function aCalls(s: RuntimeStatus, host = 'b:8080'): Promise<EchoInfo> {
  let last = '';
  for (let i = 0; i < 60; i++) {
    type Reply = { status?: number; body?: string; error?: string };
    const r = await getJson<Reply>(aPort(s), `/call?host=${host}&path=/hello`).catch((e: Error): Reply => ({ error: e.message }));
    if (r.status === 200) return JSON.parse(r.body!) as EchoInfo;
    last = JSON.stringify(r);
    await sleep(500);
  }
  throw new Error(`A could not call ${host}: ${last}`);
}

test('weft up: both workloads get ready, and weft status -o json shows them', async () => {
  await up.waitFor('a and b ready', (s) => isReady(s, 'a') && isReady(s, 'b'));
  const r = await weft(['status', '--state-dir', dir.state, '-o', 'json']);
  assert.equal(r.status, 0, r.stderr);
  const s = JSON.parse(r.stdout) as RuntimeStatus;
  assert.deepEqual(s.workloads.map((w) => [w.name, w.replica, w.phase, w.ready]), [['a', 0, 'running', true], ['b', 0, 'running', true]]);
  const b = replica(s, 'b')!;
  assert.equal(b.id, 'b-0.default');
  assert.equal(b.labels.app, 'b');
  assert.ok(b.pid && b.sidecarPid);
  assert.ok(b.appPorts.http && b.appPorts.tcp && b.sidecar.inbound.http && b.sidecar.inbound.tcp);
  assert.ok(replica(s, 'a')!.sidecar.upstreams['b-tcp']);
  const text = await weft(['status', '--state-dir', dir.state]);
  assert.equal(text.status, 0);
  assert.match(text.stdout, /^a\s+0\s+running\s+yes\s+0/m);
  assert.match(text.stdout, /^b\s+0\s+running\s+yes\s+0/m);
  // runtime.json names the API and this runtime's pid.
  const rf = JSON.parse(readFileSync(join(dir.state, 'runtime.json'), 'utf8')) as { pid: number; api: string };
  assert.equal(rf.pid, up.proc.pid);
  assert.equal(rf.api, up.api);
});

test('A calls B by name through its sidecar (HTTP_PROXY) and over its TCP upstream; the env contract holds', async () => {
  const s = await up.status();
  const info = await aCalls(s);
  assert.equal(info.workload, 'b');
  const b = replica(s, 'b')!;
  // The env contract (docs/runtime.md).
  assert.equal(info.env.PORT_HTTP, String(b.appPorts.http));
  assert.equal(info.env.PORT, String(b.appPorts.http));
  assert.equal(info.env.PORT_TCP, String(b.appPorts.tcp));
  assert.equal(info.env.HTTP_PROXY, `http://127.0.0.1:${b.sidecar.outbound}`);
  assert.equal(info.env.WEFT_OUTBOUND, `127.0.0.1:${b.sidecar.outbound}`);
  assert.match(info.env.NO_PROXY ?? '', /(^|,)127\.0\.0\.1(,|$)/, 'loopback bypasses the sidecar proxy');
  assert.equal(info.env.WEFT_WORKLOAD, 'b');
  assert.equal(info.env.WEFT_NAMESPACE, 'default');
  assert.equal(info.env.WEFT_REPLICA, '0');
  assert.equal(info.env.GREETING, 'hello');
  // cwd "../app" is relative to the YAML file's directory.
  assert.equal(info.cwd, realpathSync(join(dir.root, 'app')));
  const boot = JSON.parse(readFileSync(info.env.GRPC_XDS_BOOTSTRAP!, 'utf8')) as { xds_servers: Array<{ server_uri: string }>; node: { metadata: { NAMESPACE: string; LABELS: Record<string, string> } } };
  assert.equal(boot.xds_servers[0]!.server_uri, `127.0.0.1:${s.controlPlane.xdsPort}`);
  assert.equal(boot.node.metadata.LABELS.app, 'b');
  const a = await getJson<{ env: Record<string, string> }>(aPort(s), '/');
  assert.equal(a.env.B_TCP_ADDR, `127.0.0.1:${replica(s, 'a')!.sidecar.upstreams['b-tcp']}`);
  // TCP through A's sidecar's upstream listener to B's tcp port (B's echo names itself).
  const tcp = await getJson<{ reply?: string; error?: string }>(aPort(s), '/tcp?upstream=b-tcp&msg=ping');
  assert.equal(tcp.reply, 'b-0: ping', JSON.stringify(tcp));
});

test('weft logs shows the app output and the sidecar log', async () => {
  const app = await weft(['logs', 'b', '--state-dir', dir.state]);
  assert.equal(app.status, 0, app.stderr);
  assert.match(app.stdout, /mesh-echo b-0 listening on http \d+/);
  const sc = await weft(['logs', 'b', '--sidecar', '--state-dir', dir.state]);
  assert.equal(sc.status, 0, sc.stderr);
  assert.match(sc.stdout, /ready: first full config applied/);
  // -f prints what is there, then keeps following until SIGINT.
  const follow = spawn(process.execPath, [WEFT, 'logs', 'a', '-f', '--state-dir', dir.state]);
  let followed = '';
  follow.stdout.on('data', (d: Buffer) => (followed += d.toString()));
  for (let i = 0; i < 300 && !/mesh-echo a-0 listening/.test(followed); i++) await sleep(100);
  assert.match(followed, /mesh-echo a-0 listening on http/);
  assert.equal(follow.exitCode, null, 'still following');
  const exited = new Promise<number | null>((r) => follow.once('exit', (code) => r(code)));
  follow.kill('SIGINT');
  assert.equal(await exited, 0);
  const none = await weft(['logs', 'nope', '--state-dir', dir.state]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /no log for nope replica 0.*logs exist for: .*b \(replica 0\)/);
});

test('kill -9 of an app: it is restarted (restarts counted) and serves again', async () => {
  const before = replica(await up.status(), 'b')!;
  process.kill(before.pid!, 'SIGKILL');
  const s = await up.waitFor('b restarted and ready', (st) => {
    const b = replica(st, 'b');
    return b !== undefined && b.restarts >= 1 && b.ready && b.pid !== before.pid;
  });
  assert.match(replica(s, 'b')!.lastError ?? '', /workload b: was killed by SIGKILL after/);
  assert.equal(replica(s, 'b')!.sidecarPid, before.sidecarPid, 'the sidecar keeps running');
  assert.equal((await aCalls(s)).workload, 'b');
});

test('kill -9 of a sidecar: only the sidecar is restarted, on the same ports, and A calls B again', async () => {
  const before = replica(await up.status(), 'a')!;
  process.kill(before.sidecarPid!, 'SIGKILL');
  const s = await up.waitFor('a sidecar restarted and ready', (st) => {
    const a = replica(st, 'a');
    return a !== undefined && a.restarts >= 1 && a.ready && a.sidecarPid !== undefined && a.sidecarPid !== before.sidecarPid;
  });
  const a = replica(s, 'a')!;
  assert.match(a.lastError ?? '', /workload a: sidecar was killed by SIGKILL after/);
  assert.equal(a.pid, before.pid, 'the app keeps running');
  assert.deepEqual(a.sidecar, before.sidecar);
  assert.equal((await aCalls(s)).workload, 'b');
});

test('hot reload: scale B to 2 replicas (both serve) and back to 1', async () => {
  const yaml = readFileSync(join(dir.config, 'mesh.yaml'), 'utf8');
  dir.write('mesh.yaml', yaml.replace('  service: b\n', '  service: b\n  replicas: 2\n'));
  let s = await up.waitFor('b-1 ready', (st) => isReady(st, 'b', 0) && isReady(st, 'b', 1));
  const seen = new Set<number>();
  for (let i = 0; i < 60 && seen.size < 2; i++) seen.add((await aCalls(s)).replica);
  assert.deepEqual([...seen].sort(), [0, 1], 'requests reach both replicas');
  const gone = replica(s, 'b', 1)!;
  dir.write('mesh.yaml', yaml);
  s = await up.waitFor('b-1 gone', (st) => replica(st, 'b', 1) === undefined);
  assert.ok(isReady(s, 'b', 0));
  assert.deepEqual(await waitGone([gone.pid!, gone.sidecarPid!]), [], 'the scaled-down replica processes are gone');
  // Requests keep working and only reach b-0 (b-1 is deregistered).
  for (let i = 0; i < 4; i++) assert.equal((await aCalls(s)).replica, 0);
});

test('hot reload: a new workload starts, and a VirtualService change routes b to it', async () => {
  dir.write(
    'c.yaml',
    ['apiVersion: v1', 'kind: Service', 'metadata: {name: c}', 'spec:', '  selector: {app: c}', '  ports: [{name: http, port: 8080, targetPort: http}]', '---',
      'apiVersion: weft.dev/v1alpha1', 'kind: LocalWorkload', 'metadata: {name: c}', 'spec:', '  command: [node, mesh-echo.js]', '  cwd: ../app', '  service: c', '  ports: [{name: http, port: 0}]', ''].join('\n'),
  );
  const s = await up.waitFor('c ready', (st) => isReady(st, 'c'));
  assert.equal((await aCalls(s, 'c:8080')).workload, 'c');
  dir.write('vs.yaml', ['apiVersion: networking.istio.io/v1', 'kind: VirtualService', 'metadata: {name: b}', 'spec:', '  hosts: [b]', '  http:', '  - route:', '    - destination: {host: c, port: {number: 8080}}', ''].join('\n'));
  let served = '';
  for (let i = 0; i < 60 && served !== 'c'; i++) {
    served = (await aCalls(s)).workload;
    if (served !== 'c') await sleep(500);
  }
  assert.equal(served, 'c', 'b:8080 is routed to c after the VirtualService change');
});

test('hot reload: a changed env restarts the workload with it; a removed workload stops and is deregistered', async () => {
  rmSync(join(dir.config, 'vs.yaml'));
  rmSync(join(dir.config, 'c.yaml'));
  const before = await up.status();
  const c = replica(before, 'c')!;
  const b = replica(before, 'b')!;
  let s = await up.waitFor('c removed', (st) => replica(st, 'c') === undefined);
  assert.deepEqual(await waitGone([c.pid!, c.sidecarPid!]), [], "the removed workload's processes are gone");
  const yaml = readFileSync(join(dir.config, 'mesh.yaml'), 'utf8');
  dir.write('mesh.yaml', yaml.replace('GREETING: hello', 'GREETING: bonjour'));
  s = await up.waitFor('b restarted with the new env', (st) => {
    const nb = replica(st, 'b');
    return nb !== undefined && nb.ready && nb.pid !== b.pid && nb.sidecarPid !== b.sidecarPid;
  });
  let greeting = '';
  for (let i = 0; i < 60 && greeting !== 'bonjour'; i++) {
    greeting = (await aCalls(s)).env.GREETING ?? '';
    if (greeting !== 'bonjour') await sleep(500);
  }
  assert.equal(greeting, 'bonjour');
  assert.deepEqual(await waitGone([b.pid!, b.sidecarPid!]), [], "the old replica's processes are gone");
});

test('a second weft up on the same state dir refuses to start', async () => {
  const r = await weft(['up', '-f', dir.config, '--state-dir', dir.state]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, new RegExp(`a weft runtime \\(pid ${up.proc.pid}, API http://127\\.0\\.0\\.1:\\d+\\) already runs from state dir`));
});

test('weft down stops everything: no app or sidecar process is left, runtime.json is removed', async () => {
  await up.status();
  assert.ok(up.pids.size >= 6, `pids seen: ${[...up.pids].join(' ')}`);
  const r = await weft(['down', '--state-dir', dir.state]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /stopped/);
  assert.equal(await up.exit, 0);
  assert.deepEqual(await waitGone(up.pids), [], 'every pid the status showed is gone');
  assert.equal(existsSync(join(dir.state, 'runtime.json')), false);
  const st = await weft(['status', '--state-dir', dir.state]);
  assert.equal(st.status, 1);
  assert.match(st.stderr, /no weft runtime runs from state dir/);
});
