// Proxyless gRPC against `weft control-plane`, with the real, unmodified client: @grpc/grpc-js + @grpc/grpc-js-xds
// in a child process (test/apps/xds-client.ts), bootstrapped with a file written by `weft grpc-bootstrap`, calling
// `xds:///greeter:50051`. The control plane runs as the real command in a child process; the endpoints are real
// gRPC Greeter servers (test/apps/greeter.ts) that say who answered, registered as WorkloadEntries in the watched
// config directory or over the registration API. Config changes are file writes in the watched directory; each
// step waits until /debug/syncz shows that the client ACKed the new configuration (no sleeps).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidArgumentError } from 'commander';
import { parseLabels, parseLocality, parseNamespace, parseXdsAddress } from '../../src/cli/commands/grpc-bootstrap.js';
import { startGreeter } from '../apps/greeter.js';
import type { Greeter } from '../apps/greeter.js';
import type { Batch, BatchSummary, RpcResult } from '../apps/xds-client.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const WEFT = join(ROOT, 'bin', 'weft.js');
const CLIENT = join(ROOT, 'dist', 'test', 'apps', 'xds-client.js');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'proxyless');
const TARGET = 'xds:///greeter:50051';
const XDS_TYPES = ['CDS', 'EDS', 'LDS', 'RDS'] as const;
type XdsType = (typeof XDS_TYPES)[number];

// ---------------------------------------------------------------------------------------------------------------
// The control plane (the `weft control-plane` command in a child process)

class ControlPlaneProcess {
  /** Scratch directory: the watched config directory `config/` and the clients' bootstrap files. */
  readonly work = mkdtempSync(join(tmpdir(), 'weft-proxyless-'));
  readonly dir = join(this.work, 'config');
  xds = '';
  http = '';
  private proc?: ChildProcessWithoutNullStreams;
  private stderr = '';

  constructor() {
    mkdirSync(this.dir);
  }

  async start(): Promise<void> {
    const p = spawn(process.execPath, [WEFT, 'control-plane', '--config', this.dir, '--xds-port', '0', '--http-port', '0'], { cwd: ROOT });
    this.proc = p;
    p.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    let stdout = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`control plane not ready after 15 s:\n${stdout}\n${this.log()}`)), 15_000);
      p.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`control plane exited with ${code}:\n${this.log()}`));
      });
      p.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        const xds = /xDS \(ADS over plaintext gRPC\): (\S+)/.exec(stdout);
        const http = /HTTP: (http:\/\/\S+)/.exec(stdout);
        if (xds && http) {
          clearTimeout(timer);
          this.xds = xds[1]!;
          this.http = http[1]!;
          resolve();
        }
      });
    });
  }

  /** The last lines of the control plane's log (for failure messages). */
  log(lines = 40): string {
    return this.stderr.trim().split('\n').slice(-lines).join('\n');
  }

  copyFixture(name: string, as = name): void {
    copyFileSync(join(FIXTURES, name), join(this.dir, as));
  }

  write(name: string, text: string): void {
    writeFileSync(join(this.dir, name), text);
  }

  remove(name: string): void {
    unlinkSync(join(this.dir, name));
  }

  async fetchJson(path: string, init?: RequestInit): Promise<{ status: number; body: unknown }> {
    const res = await fetch(`${this.http}${path}`, init);
    const text = await res.text();
    return { status: res.status, body: text ? (JSON.parse(text) as unknown) : undefined };
  }

  async register(name: string, version: string, port: number): Promise<void> {
    const r = await this.fetchJson('/v1/workloads', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name, namespace: 'default', address: '127.0.0.1', labels: { app: 'greeter', version }, ports: { grpc: port } }),
    });
    assert.equal(r.status, 201, JSON.stringify(r.body));
  }

  async deregister(name: string): Promise<void> {
    const r = await this.fetchJson(`/v1/workloads/default/${name}`, { method: 'DELETE' });
    assert.equal(r.status, 204, JSON.stringify(r.body));
  }

  /** The /debug/syncz entry of a proxy (undefined while it is not connected). */
  async status(nodeId: string): Promise<ProxyStatus | undefined> {
    const r = await this.fetchJson('/debug/syncz');
    return (r.body as ProxyStatus[]).find((p) => p.id === nodeId);
  }

  async configDump(nodeId: string): Promise<string> {
    const res = await fetch(`${this.http}/debug/config_dump?proxy=${encodeURIComponent(nodeId)}`);
    return res.text();
  }

  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGTERM');
      await exited;
    }
    rmSync(this.work, { recursive: true, force: true });
  }
}

interface TypeStatus {
  state: string;
  sentVersion?: string;
  ackedVersion?: string;
  nack?: { message: string };
}
interface ProxyStatus {
  id: string;
  type: string;
  xds: Record<string, TypeStatus | undefined>;
  translationErrors: unknown[];
}

type Versions = Partial<Record<XdsType, string | undefined>>;

function versionsOf(s: ProxyStatus | undefined): Versions {
  const out: Versions = {};
  for (const t of XDS_TYPES) out[t] = s?.xds[t]?.ackedVersion;
  return out;
}

function synced(s: ProxyStatus): boolean {
  return XDS_TYPES.every((t) => s.xds[t]?.state === 'SYNCED' || s.xds[t]?.state === 'NOT SENT');
}

// ---------------------------------------------------------------------------------------------------------------
// The client (test/apps/xds-client.ts --serve in a child process)

interface BatchResult {
  summary: BatchSummary;
  rpcs: Array<RpcResult & { i: number; at: number }>;
}

class XdsClient {
  private readonly proc: ChildProcessWithoutNullStreams;
  private stderr = '';
  private buffer = '';
  private seq = 0;
  private readonly pending = new Map<
    string,
    { rpcs: BatchResult['rpcs']; onRpc?: (r: BatchResult['rpcs'][number]) => void; resolve: (r: BatchResult) => void; reject: (e: Error) => void }
  >();
  private exited = false;

  constructor(readonly nodeId: string, bootstrapFile: string) {
    this.proc = spawn(process.execPath, [CLIENT, TARGET, '--serve'], { cwd: ROOT, env: { ...process.env, GRPC_XDS_BOOTSTRAP: bootstrapFile } });
    this.proc.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.proc.stdout.on('data', (d: Buffer) => {
      this.buffer += d.toString();
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        let msg: { id: string; summary?: BatchSummary } & BatchResult['rpcs'][number];
        try {
          msg = JSON.parse(line) as typeof msg;
        } catch {
          continue; // not one of the client's lines
        }
        this.onLine(msg);
      }
    });
    this.proc.once('exit', (code) => {
      this.exited = true;
      for (const [id, p] of this.pending) p.reject(new Error(`client exited (${code}) during batch ${id}:\n${this.stderr}`));
      this.pending.clear();
    });
  }

  private onLine(msg: { id: string; summary?: BatchSummary } & BatchResult['rpcs'][number]): void {
    const p = this.pending.get(msg.id);
    if (!p) return;
    if (msg.summary) {
      this.pending.delete(msg.id);
      p.resolve({ summary: msg.summary, rpcs: p.rpcs });
      return;
    }
    p.rpcs.push(msg);
    p.onRpc?.(msg);
  }

  /** Runs a batch of RPCs; `onRpc` sees each result as it comes (batches with `each`). */
  run(batch: Omit<Batch, 'id'>, onRpc?: (r: BatchResult['rpcs'][number]) => void): Promise<BatchResult> {
    assert.ok(!this.exited, `the client exited:\n${this.stderr}`);
    const id = String(++this.seq);
    const done = new Promise<BatchResult>((resolve, reject) => this.pending.set(id, { rpcs: [], onRpc, resolve, reject }));
    this.proc.stdin.write(JSON.stringify({ ...batch, id }) + '\n');
    return done;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise((resolve) => this.proc.once('exit', resolve));
    this.proc.stdin.end();
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/** Writes a bootstrap with `weft grpc-bootstrap` and starts a client with it. */
function startClient(cp: ControlPlaneProcess, nodeId: string): XdsClient {
  const file = join(cp.work, `${nodeId}-bootstrap.json`);
  const r = spawnSync(
    process.execPath,
    [WEFT, 'grpc-bootstrap', '--control-plane', cp.xds, '--node-id', nodeId, '--namespace', 'default', '--locality', 'region-a/zone-1', '--labels', 'app=greeter-client', '-o', file],
    { cwd: ROOT, encoding: 'utf8' },
  );
  assert.equal(r.status, 0, r.stderr);
  const b = JSON.parse(readFileSync(file, 'utf8')) as { node: { metadata: Record<string, unknown> } };
  assert.equal(b.node.metadata.GENERATOR, 'grpc');
  return new XdsClient(nodeId, file);
}

/**
 * Applies a config change and waits until the client has ACKed it: the acked version of each type in `expect`
 * changed and every type is SYNCED (or NOT SENT), at two polls in a row (the client subscribes to new clusters
 * right after it ACKs the routes that name them).
 */
async function applyAndSync(cp: ControlPlaneProcess, client: XdsClient, expect: XdsType[], change: () => void | Promise<void>): Promise<void> {
  const before = versionsOf(await cp.status(client.nodeId));
  await change();
  const end = Date.now() + 15_000;
  let streak = 0;
  let last: ProxyStatus | undefined;
  while (Date.now() < end) {
    last = await cp.status(client.nodeId);
    const now = versionsOf(last);
    const ok = last !== undefined && expect.every((t) => now[t] !== undefined && now[t] !== before[t]) && synced(last);
    streak = ok ? streak + 1 : 0;
    if (streak >= 2) return;
    for (const t of XDS_TYPES) if (last?.xds[t]?.state === 'NACKED') assert.fail(`the client NACKed ${t}: ${last.xds[t]!.nack?.message}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`the client did not ACK a new ${expect.join('+')} within 15 s: ${JSON.stringify(last)}\n${cp.log()}\n${await cp.configDump(client.nodeId)}`);
}

/** Waits until the client is connected and every type it asked for is ACKed. */
async function initialSync(cp: ControlPlaneProcess, client: XdsClient): Promise<ProxyStatus> {
  const end = Date.now() + 15_000;
  for (;;) {
    const s = await cp.status(client.nodeId);
    if (s && XDS_TYPES.every((t) => s.xds[t]?.state === 'SYNCED')) return s;
    if (Date.now() > end) assert.fail(`the client did not sync within 15 s: ${JSON.stringify(s)}\n${cp.log()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function workloadEntry(name: string, version: string, port: number): string {
  return [
    'apiVersion: networking.istio.io/v1',
    'kind: WorkloadEntry',
    `metadata: {name: ${name}, namespace: default}`,
    'spec:',
    '  address: 127.0.0.1',
    `  labels: {app: greeter, version: ${version}}`,
    `  ports: {grpc: ${port}}`,
    '',
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------
// Shared assertions

const NAMES = ['v1-a', 'v1-b', 'v2-a'] as const;
const V1 = ['v1-a', 'v1-b'];
const V2 = ['v2-a'];

async function startGreeters(): Promise<Map<string, Greeter>> {
  const out = new Map<string, Greeter>();
  for (const n of NAMES) out.set(n, await startGreeter(n));
  return out;
}

function versionOf(server: string): string {
  return server.split('-')[0]!;
}

function count(summary: BatchSummary, servers: readonly string[]): number {
  return servers.reduce((n, s) => n + (summary.servers[s] ?? 0), 0);
}

/** Round robin: 300 RPCs over the 3 endpoints, each gets about a third. */
async function assertRoundRobin(client: XdsClient): Promise<void> {
  const { summary } = await client.run({ count: 300 });
  assert.deepEqual(summary.codes, {}, 'every RPC succeeds');
  assert.deepEqual(Object.keys(summary.servers).sort(), [...NAMES], 'every endpoint answers');
  for (const n of NAMES) {
    const got = summary.servers[n]!;
    assert.ok(got >= 60 && got <= 140, `${n} served ${got} of 300 RPCs (expected about 100): ${JSON.stringify(summary.servers)}`);
  }
  console.log(`round robin over 3 endpoints, 300 RPCs: ${JSON.stringify(summary.servers)}`);
}

/** 1,000 RPCs split 80/20 between v1 and v2, within 5 percentage points. */
async function assertSplit(client: XdsClient, what: string): Promise<void> {
  const { summary } = await client.run({ count: 1000 });
  assert.deepEqual(summary.codes, {}, 'every RPC succeeds');
  const v1 = count(summary, V1);
  const v2 = count(summary, V2);
  assert.equal(v1 + v2, 1000);
  const pct = v1 / 10;
  console.log(`${what}: 1,000 RPCs split v1 ${pct.toFixed(1)} % / v2 ${(v2 / 10).toFixed(1)} % (${JSON.stringify(summary.servers)})`);
  assert.ok(Math.abs(pct - 80) <= 5, `${what}: v1 got ${pct} % of the RPCs, expected 80 ± 5 %`);
  // Within the v1 subset (backend), the two endpoints are balanced round robin.
  for (const n of V1) assert.ok((summary.servers[n] ?? 0) > v1 / 4, `${n} gets its share of v1: ${JSON.stringify(summary.servers)}`);
}

/** `x-user: test` RPCs all go to v2; returns the summary of the RPCs without the header. */
async function assertHeaderRoute(client: XdsClient): Promise<BatchSummary> {
  const tester = await client.run({ count: 100, headers: { 'x-user': 'test' } });
  assert.deepEqual(tester.summary.codes, {}, 'every RPC succeeds');
  assert.deepEqual(tester.summary.servers, { 'v2-a': 100 }, 'every x-user: test RPC is served by v2');
  const other = await client.run({ count: 200, headers: { 'x-user': 'someone-else' } });
  assert.deepEqual(other.summary.codes, {}, 'every RPC succeeds');
  return other.summary;
}

/** RPCs without x-user: test follow the 80/20 rule: of 200, v1 serves 160 ± 30 (over 5 standard deviations). */
function assertDefaultSplit(other: BatchSummary): void {
  const v1 = count(other, V1);
  assert.equal(v1 + count(other, V2), 200);
  assert.ok(v1 >= 130 && v1 <= 190, `RPCs without x-user: test are split 80/20: ${JSON.stringify(other.servers)}`);
}

/**
 * Removes the endpoint `victim` while RPCs run every 10 ms; returns the milliseconds from the removal to the
 * answer of the last RPC that endpoint served. Asserts that no RPC fails meanwhile, that once the client ACKed
 * the new endpoints no RPC reaches the victim any more (its server-side call counter stops, and it is still
 * up), and that later RPCs are shared by the remaining endpoints.
 */
async function measureRemoval(cp: ControlPlaneProcess, client: XdsClient, greeters: Map<string, Greeter>, victim: string, remove: () => void | Promise<void>): Promise<number> {
  let removedAt = 0;
  let startRemoval!: () => void;
  const started = new Promise<void>((r) => (startRemoval = r));
  const running = client.run({ count: 400, intervalMs: 10, each: true }, (r) => {
    // Remove once RPCs flow and the victim has served some of them.
    if (r.i === 100) startRemoval();
  });
  await started;
  await applyAndSync(cp, client, ['EDS'], async () => {
    removedAt = Date.now();
    await remove();
  });
  const syncedAt = Date.now();
  const victimCallsAtSync = greeters.get(victim)!.calls;
  const { summary, rpcs } = await running;
  assert.ok(rpcs[rpcs.length - 1]!.at > syncedAt, 'RPCs kept running until the client had ACKed the new endpoints (else the figure is not measured)');
  assert.deepEqual(summary.codes, {}, `no RPC fails while an endpoint is removed: ${JSON.stringify(summary)}`);
  const servedByVictim = rpcs.filter((r) => r.server === victim);
  assert.ok(servedByVictim.length > 0 && servedByVictim[0]!.at < removedAt, `${victim} served RPCs before its removal`);
  const last = servedByVictim[servedByVictim.length - 1]!;
  const latency = last.at - removedAt;
  assert.equal(greeters.get(victim)!.calls, victimCallsAtSync, `${victim} got no RPC after the client ACKed its removal`);
  const later = await client.run({ count: 150 });
  assert.deepEqual(later.summary.codes, {}, 'every later RPC succeeds');
  assert.deepEqual(Object.keys(later.summary.servers).sort(), NAMES.filter((n) => n !== victim), `later RPCs are served by the remaining endpoints only: ${JSON.stringify(later.summary.servers)}`);
  assert.equal(greeters.get(victim)!.calls, victimCallsAtSync, `${victim} got no RPC after its removal`);
  return Math.max(0, latency);
}

// ---------------------------------------------------------------------------------------------------------------

describe('weft grpc-bootstrap', () => {
  const run = (...args: string[]) => spawnSync(process.execPath, [WEFT, 'grpc-bootstrap', ...args], { cwd: ROOT, encoding: 'utf8' });

  test('defaults: the local control plane, insecure, xds_v3, an empty locality and GENERATOR=grpc in namespace default', () => {
    const r = run();
    assert.equal(r.status, 0, r.stderr);
    const b = JSON.parse(r.stdout) as { xds_servers: unknown[]; node: { id: string; locality: unknown; metadata: Record<string, unknown> } };
    assert.deepEqual(b.xds_servers, [{ server_uri: '127.0.0.1:15010', channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }]);
    assert.deepEqual(b.node.locality, {}, 'gRPC requires node.locality, even empty');
    assert.match(b.node.id, /^sidecar~[^~]+~[^~]+\.default~default\.svc\.cluster\.local$/);
    assert.equal(b.node.metadata.GENERATOR, 'grpc');
    assert.equal(b.node.metadata.NAMESPACE, 'default');
    assert.deepEqual(b.node.metadata.LABELS, {});
    assert.equal(b.node.metadata.SERVICE_ACCOUNT, 'default');
  });

  test('node id, namespace, locality, labels and service account from the options', () => {
    const r = run('--control-plane', 'istiod.example:15010', '--node-id', 'web-1', '--namespace', 'shop', '--locality', 'us-east/us-east-1a/rack-1', '--labels', 'app=web,version=v2', '--service-account', 'web');
    assert.equal(r.status, 0, r.stderr);
    const b = JSON.parse(r.stdout) as { xds_servers: Array<{ server_uri: string }>; node: { id: string; cluster: string; locality: unknown; metadata: Record<string, unknown> } };
    assert.equal(b.xds_servers[0]!.server_uri, 'istiod.example:15010');
    assert.equal(b.node.id, 'web-1');
    assert.equal(b.node.cluster, 'web');
    assert.deepEqual(b.node.locality, { region: 'us-east', zone: 'us-east-1a', sub_zone: 'rack-1' });
    assert.equal(b.node.metadata.NAMESPACE, 'shop');
    assert.deepEqual(b.node.metadata.LABELS, { app: 'web', version: 'v2' });
    assert.equal(b.node.metadata.SERVICE_ACCOUNT, 'web');
  });

  test('invalid options are usage errors (exit 2) that say what is wrong', () => {
    const r = run('--labels', 'app');
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /label "app" is not key=value/);
    assert.equal(r.stdout, '');
    const cases: Array<[() => unknown, RegExp]> = [
      [() => parseLabels('app=a b'), /label value/],
      [() => parseLabels('-app=a'), /label key/],
      [() => parseLocality('a//b'), /region\/zone\/subzone/],
      [() => parseLocality('a/b/c/d'), /region\/zone\/subzone/],
      [() => parseXdsAddress('http://127.0.0.1:15014'), /not an HTTP URL/],
      [() => parseXdsAddress('127.0.0.1'), /host:port/],
      [() => parseXdsAddress('127.0.0.1:70000'), /host:port/],
      [() => parseNamespace('Shop_1'), /namespace/],
    ];
    for (const [f, msg] of cases) assert.throws(f, (e: Error) => e instanceof InvalidArgumentError && msg.test(e.message));
    assert.deepEqual(parseLabels('app=web, version=v2'), { app: 'web', version: 'v2' });
    assert.equal(parseXdsAddress('[::1]:15010'), '[::1]:15010');
    assert.equal(parseXdsAddress('dns:///istiod.istio-system.svc:15010'), 'dns:///istiod.istio-system.svc:15010');
  });
});

describe('proxyless gRPC: Istio VirtualService and DestinationRule, endpoints from WorkloadEntry files', () => {
  const cp = new ControlPlaneProcess();
  let greeters: Map<string, Greeter>;
  let client: XdsClient;

  before(async () => {
    greeters = await startGreeters();
    cp.copyFixture('services.yaml');
    cp.copyFixture('destination-rule.yaml');
    for (const [n, g] of greeters) cp.write(`we-${n}.yaml`, workloadEntry(n, versionOf(n), g.port));
    await cp.start();
    client = startClient(cp, 'greeter-client-istio');
  });
  after(async () => {
    await client?.close();
    await cp.stop();
    for (const g of greeters?.values() ?? []) await g.close();
  });

  test('the client gets api_listeners and EDS clusters, and xds:///greeter:50051 round-robins across the 3 endpoints', async () => {
    const first = client.run({ count: 1 });
    const s = await initialSync(cp, client);
    assert.equal(s.type, 'grpc', 'GENERATOR=grpc makes the node a proxyless gRPC client');
    assert.deepEqual((await first).summary.codes, {});
    const dump = JSON.parse(await cp.configDump(client.nodeId)) as { configs: Array<Record<string, unknown>> };
    const text = JSON.stringify(dump);
    assert.ok(text.includes('"greeter:50051"'), 'an api_listener named greeter:50051');
    assert.ok(text.includes('outbound|50051||greeter.default.svc.cluster.local'), 'the service cluster');
    await assertRoundRobin(client);
  });

  test('a weighted VirtualService splits 1,000 RPCs 80/20 between the v1 and v2 subsets', async () => {
    await applyAndSync(cp, client, ['RDS'], () => cp.copyFixture('vs-split.yaml', 'vs.yaml'));
    await assertSplit(client, 'VirtualService 80/20');
  });

  test('a header match routes x-user: test to v2, other RPCs take the default route (v1)', async () => {
    await applyAndSync(cp, client, ['RDS'], () => cp.copyFixture('vs-header.yaml', 'vs.yaml'));
    const other = await assertHeaderRoute(client);
    assert.deepEqual(Object.keys(other.servers).sort(), V1, `RPCs without x-user: test go to v1 only: ${JSON.stringify(other.servers)}`);
  });

  test('an abort fault returns the configured gRPC status (grpcStatus UNAVAILABLE → 14; httpStatus 404 → UNIMPLEMENTED 12)', async () => {
    await applyAndSync(cp, client, ['RDS', 'LDS'], () => cp.copyFixture('vs-fault.yaml', 'vs.yaml'));
    const calls = () => NAMES.reduce((n, s) => n + greeters.get(s)!.calls, 0);
    const before = calls();
    const grpc = await client.run({ count: 20, headers: { 'x-fault': 'grpc' }, each: true });
    assert.deepEqual(grpc.summary.codes, { '14': 20 }, 'every x-fault: grpc RPC fails with UNAVAILABLE');
    const http = await client.run({ count: 20, headers: { 'x-fault': 'http' }, each: true });
    assert.deepEqual(http.summary.codes, { '12': 20 }, 'every x-fault: http RPC fails with UNIMPLEMENTED (HTTP 404)');
    assert.equal(calls(), before, 'aborted RPCs never reach a server');
    assert.match(grpc.rpcs[0]!.details ?? '', /fault/i, `the status comes from fault injection: ${grpc.rpcs[0]!.details}`);
    const ok = await client.run({ count: 20 });
    assert.deepEqual(ok.summary.codes, {}, 'RPCs without x-fault are not aborted');
    assert.deepEqual(Object.keys(ok.summary.servers).sort(), V1);
  });

  test('an endpoint whose WorkloadEntry file is deleted stops receiving RPCs', async () => {
    // Back to plain round robin over the three endpoints.
    await applyAndSync(cp, client, ['RDS'], () => cp.remove('vs.yaml'));
    const ms = await measureRemoval(cp, client, greeters, 'v1-b', () => cp.remove('we-v1-b.yaml'));
    console.log(`WorkloadEntry file deleted: the last RPC served by the removed endpoint answered ${ms} ms after the file was deleted`);
    assert.ok(ms < 5000, `the removed endpoint served RPCs for ${ms} ms after its removal`);
  });
});

describe('proxyless gRPC: SMI TrafficSplit, endpoints from the registration API', () => {
  const cp = new ControlPlaneProcess();
  let greeters: Map<string, Greeter>;
  let client: XdsClient;

  before(async () => {
    greeters = await startGreeters();
    cp.copyFixture('services.yaml');
    await cp.start();
    for (const [n, g] of greeters) await cp.register(n, versionOf(n), g.port);
    client = startClient(cp, 'greeter-client-smi');
  });
  after(async () => {
    await client?.close();
    await cp.stop();
    for (const g of greeters?.values() ?? []) await g.close();
  });

  test('registered workloads are endpoints: xds:///greeter:50051 round-robins across the 3', async () => {
    const first = client.run({ count: 1 });
    await initialSync(cp, client);
    assert.deepEqual((await first).summary.codes, {});
    await assertRoundRobin(client);
  });

  test('a TrafficSplit splits 1,000 RPCs 80/20 between the backend Services greeter-v1 and greeter-v2', async () => {
    await applyAndSync(cp, client, ['RDS'], () => cp.copyFixture('trafficsplit.yaml', 'split.yaml'));
    await assertSplit(client, 'SMI TrafficSplit 80/20');
  });

  test('a TrafficSplit with an HTTPRouteGroup header match sends x-user: test to greeter-v2, the rest to the root service', async () => {
    await applyAndSync(cp, client, ['RDS'], () => cp.copyFixture('trafficsplit-header.yaml', 'split.yaml'));
    const other = await assertHeaderRoute(client);
    assert.deepEqual(Object.keys(other.servers).sort(), [...NAMES], `other RPCs go to the root service greeter, all its endpoints: ${JSON.stringify(other.servers)}`);
  });

  test('a deregistered workload stops receiving RPCs', async () => {
    await applyAndSync(cp, client, ['RDS'], () => cp.remove('split.yaml'));
    const ms = await measureRemoval(cp, client, greeters, 'v1-a', () => cp.deregister('v1-a'));
    console.log(`workload deregistered: the last RPC served by the removed endpoint answered ${ms} ms after the DELETE was sent`);
    assert.ok(ms < 5000, `the removed endpoint served RPCs for ${ms} ms after its removal`);
  });
});

describe('proxyless gRPC: GAMMA HTTPRoute and GRPCRoute attached to the Service', () => {
  const cp = new ControlPlaneProcess();
  let greeters: Map<string, Greeter>;
  let client: XdsClient;

  before(async () => {
    greeters = await startGreeters();
    cp.copyFixture('services.yaml');
    for (const [n, g] of greeters) cp.write(`we-${n}.yaml`, workloadEntry(n, versionOf(n), g.port));
    await cp.start();
    client = startClient(cp, 'greeter-client-gamma');
    const first = client.run({ count: 1 });
    await initialSync(cp, client);
    assert.deepEqual((await first).summary.codes, {});
  });
  after(async () => {
    await client?.close();
    await cp.stop();
    for (const g of greeters?.values() ?? []) await g.close();
  });

  test('HTTPRoute: 1,000 RPCs split 80/20 between greeter-v1 and greeter-v2; x-user: test goes to greeter-v2', async () => {
    await applyAndSync(cp, client, ['RDS'], () => cp.copyFixture('httproute.yaml', 'route.yaml'));
    await assertSplit(client, 'GAMMA HTTPRoute 80/20');
    const other = await assertHeaderRoute(client);
    assertDefaultSplit(other);
  });

  test('GRPCRoute: 1,000 RPCs split 80/20 between greeter-v1 and greeter-v2; x-user: test goes to greeter-v2', async () => {
    // Without the HTTPRoute first (both kinds on one Service port: the GRPCRoute alone would win anyway).
    await applyAndSync(cp, client, ['RDS'], () => cp.remove('route.yaml'));
    await applyAndSync(cp, client, ['RDS'], () => cp.copyFixture('grpcroute.yaml', 'route.yaml'));
    await assertSplit(client, 'GAMMA GRPCRoute 80/20');
    const other = await assertHeaderRoute(client);
    assertDefaultSplit(other);
  });
});
