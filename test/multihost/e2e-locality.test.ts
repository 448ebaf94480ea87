// Multi-host on one machine: three "hosts" are network namespaces on one bridge (src/runtime/capture/netns.ts),
// each with its own address. Host 1 runs the control plane; hosts 2 and 3 (localities region-a/zone-1 and
// region-a/zone-2) each run a `ratings` endpoint (an app on 127.0.0.1 behind an explicit-mode sidecar that serves
// the mesh port on the host's address) registered through the control plane's /v1/workloads API. A client sidecar
// on host 2 calls `ratings`:
// - without a DestinationRule, requests cross hosts (both zones answer: no locality LB without outlier detection,
//   as Istio);
// - with a DestinationRule that sets outlierDetection, locality LB keeps traffic in the client's zone;
// - when the local endpoint's app is killed under a fixed, bounded load, traffic fails over to the other zone with
//   zero failed requests (Istio's default retries on 503 plus outlier ejection move the retry to zone 2).
// Needs root and iptables: skipped with the reason otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { captureSupport, createBridge, createBridgedNamespace, spawnInNamespace } from '../../src/runtime/capture/index.js';
import type { Bridge, NetNamespace } from '../../src/runtime/capture/index.js';
import { MeshWorkDir, sleep, WEFT } from '../helpers/mesh-processes.js';

const skip = captureSupport();

const SERVICE = `apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: default}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
`;

const OUTLIER_DR = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 60s, maxEjectionPercent: 100}
`;

/** An HTTP server on 127.0.0.1:8080 in its namespace answering with its name. */
const APP = `require('http').createServer((q, s) => { const b = process.env.APP_NAME; s.writeHead(200, {'content-length': b.length}); s.end(b); })
  .listen(8080, '127.0.0.1', () => console.log('listening'));`;

/**
 * A bounded load generator run inside a namespace: N requests, C at a time, to the client sidecar's outbound
 * listener with Host ratings:9080; prints `progress <n>` every 20 responses and a JSON summary at the end.
 */
const LOAD = `const http = require('http');
const [port, total, conc] = process.argv.slice(1).map(Number);
const agent = new http.Agent({ keepAlive: true, maxSockets: conc });
const by = {}; const statuses = {}; let done = 0, started = 0, failed = 0;
function one() {
  if (started >= total) return;
  started++;
  const req = http.request({ host: '127.0.0.1', port, path: '/', headers: { host: 'ratings:9080' }, agent }, (res) => {
    let b = ''; res.on('data', (d) => (b += d)); res.on('end', () => {
      statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
      if (res.statusCode === 200) by[b] = (by[b] || 0) + 1; else failed++;
      next();
    });
  });
  req.setTimeout(10000, () => req.destroy(new Error('timeout')));
  req.on('error', (e) => { failed++; statuses[e.message] = (statuses[e.message] || 0) + 1; next(); });
  req.end();
}
function next() {
  done++;
  if (done % 20 === 0) console.log('progress ' + done);
  if (done === total) { console.log(JSON.stringify({ by, statuses, failed })); agent.destroy(); return; }
  one();
}
for (let i = 0; i < conc; i++) one();`;

interface LoadResult {
  by: Record<string, number>;
  statuses: Record<string, number>;
  failed: number;
}

/** A process in a namespace, its output kept; resolves `ready` when `line` appears on stdout. */
class NsProcess {
  out = '';
  err = '';
  readonly p: ChildProcess;
  constructor(ns: NetNamespace, cmd: string[], env: NodeJS.ProcessEnv = process.env) {
    this.p = spawnInNamespace(ns.name, cmd, { env });
    this.p.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    this.p.stderr?.on('data', (d: Buffer) => (this.err += d.toString()));
  }

  waitFor(re: RegExp, what: string, timeoutMs = 30_000): Promise<RegExpExecArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = re.exec(this.out);
        if (m) {
          clearInterval(t);
          resolve(m);
        } else if (Date.now() > deadline || this.p.exitCode !== null) {
          clearInterval(t);
          reject(new Error(`${what}: no ${re} (exit ${this.p.exitCode}):\n${this.out.slice(-2000)}\n${this.err.slice(-3000)}`));
        }
      };
      const deadline = Date.now() + timeoutMs;
      const t = setInterval(check, 50);
    });
  }

  exited(): Promise<void> {
    if (this.p.exitCode !== null || this.p.signalCode !== null) return Promise.resolve();
    return new Promise((r) => this.p.once('exit', () => r()));
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (this.p.exitCode !== null || this.p.signalCode !== null) return;
    const done = this.exited();
    this.p.kill(signal);
    const t = setTimeout(() => this.p.kill('SIGKILL'), 8000);
    await done;
    clearTimeout(t);
  }
}

describe('multi-host: locality load balancing and failover across three namespaces', { skip }, () => {
  const dir = new MeshWorkDir('weft-multihost-');
  let br: Bridge;
  const hosts: NetNamespace[] = [];
  const procs: NsProcess[] = [];
  let cpHttp = '';
  let app2: NsProcess;
  let client: NsProcess;

  function start(ns: NetNamespace, cmd: string[], env?: NodeJS.ProcessEnv): NsProcess {
    const p = new NsProcess(ns, cmd, env);
    procs.push(p);
    return p;
  }

  async function register(name: string, host: NetNamespace, locality: string): Promise<void> {
    const body = { name, address: host.address, labels: { app: 'ratings' }, ports: { http: 9080 }, locality, sidecar: true };
    const r = await fetch(`${cpHttp}/v1/workloads`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    assert.ok(r.status === 200 || r.status === 201, await r.text());
  }

  async function load(total: number, conc: number, onProgress?: (n: number) => void): Promise<LoadResult> {
    const l = start(hosts[1]!, [process.execPath, '-e', LOAD, '15101', String(total), String(conc)]);
    if (onProgress) {
      let seen = 0;
      l.p.stdout?.on('data', () => {
        const all = [...l.out.matchAll(/progress (\d+)/g)];
        const n = all.length ? Number(all[all.length - 1]![1]) : 0;
        if (n > seen) {
          seen = n;
          onProgress(n);
        }
      });
    }
    const m = await l.waitFor(/^(\{.*\})$/m, 'load', 60_000);
    await l.exited();
    return JSON.parse(m[1]!) as LoadResult;
  }

  before(async () => {
    br = await createBridge();
    for (let i = 1; i <= 3; i++) hosts.push(await createBridgedNamespace(br, i));
    const [h1, h2, h3] = hosts as [NetNamespace, NetNamespace, NetNamespace];
    dir.writeConfig('ratings.yaml', SERVICE);
    const cp = start(h1, [process.execPath, WEFT, 'control-plane', '--config', dir.config, '--bind', h1.address, '--xds-plaintext-bind', h1.address, '--xds-port', '15010', '--http-port', '15014']);
    const m = await cp.waitFor(/HTTP: (http:\/\/\S+)/, 'control plane');
    cpHttp = m[1]!;
    const xds = `${h1.address}:15010`;
    for (const [h, zone] of [
      [h2, 'zone-1'],
      [h3, 'zone-2'],
    ] as const) {
      const app = start(h, [process.execPath, '-e', APP], { ...process.env, APP_NAME: zone });
      await app.waitFor(/listening/, `app on ${h.name}`);
      if (zone === 'zone-1') app2 = app;
      const sc = start(h, [process.execPath, WEFT, 'proxy', '--xds', xds, '--id', `ratings-${zone}.default`, '--labels', 'app=ratings', '--workload-port', '9080:8080/http', '--locality', `region-a/${zone}`]);
      await sc.waitFor(/^ready \(/m, `ratings sidecar on ${h.name}`);
      await register(`ratings-${zone}`, h, `region-a/${zone}`);
    }
    client = start(h2, [
      process.execPath, WEFT, 'proxy', '--xds', xds, '--id', 'client.default', '--labels', 'app=client', '--locality', 'region-a/zone-1',
      '--admin-port', '15100', '--outbound-port', '15101', '--health-port', '15121', '--stats-port', '15190',
    ]);
    await client.waitFor(/^ready \(/m, 'client sidecar');
  });

  after(async () => {
    for (const p of procs.reverse()) await p.stop();
    for (const h of hosts) await h.close();
    await br?.close();
    dir.remove();
  });

  test('without outlier detection, requests cross hosts (both zones answer)', async () => {
    let r: LoadResult = { by: {}, statuses: {}, failed: 0 };
    for (let i = 0; i < 40; i++) {
      r = await load(40, 2);
      if (r.by['zone-1'] && r.by['zone-2']) break;
      await sleep(250);
    }
    assert.equal(r.failed, 0, JSON.stringify(r));
    assert.ok(r.by['zone-1']! > 0 && r.by['zone-2']! > 0, `both zones answer: ${JSON.stringify(r)}`);
  });

  test('with outlierDetection, locality LB keeps traffic in the client zone; killing it fails over with zero failures', async () => {
    dir.writeConfig('ratings-dr.yaml', OUTLIER_DR);
    // Wait for the push: a batch served by zone 1 only.
    let r: LoadResult = { by: {}, statuses: {}, failed: 0 };
    for (let i = 0; i < 60 && !(r.by['zone-1'] === 40 && r.failed === 0); i++) {
      await sleep(250);
      r = await load(40, 2);
    }
    assert.deepEqual(r.by, { 'zone-1': 40 }, `traffic stays in zone-1: ${JSON.stringify(r)}`);
    const steady = await load(100, 4);
    assert.deepEqual(steady.by, { 'zone-1': 100 }, JSON.stringify(steady));

    // Fixed bounded load; the local endpoint's app dies a third of the way in.
    let killed = false;
    const during = await load(300, 4, (n) => {
      if (!killed && n >= 100) {
        killed = true;
        app2.p.kill('SIGKILL');
      }
    });
    assert.ok(killed, 'the app was killed during the load');
    assert.equal(during.failed, 0, `zero failed requests: ${JSON.stringify(during)}`);
    assert.ok(during.by['zone-2']! > 0, `traffic failed over to zone-2: ${JSON.stringify(during)}`);
    assert.equal(during.by['zone-1']! + during.by['zone-2']!, 300);
    const afterwards = await load(60, 4);
    assert.deepEqual(afterwards.by, { 'zone-2': 60 }, JSON.stringify(afterwards));
  });
});
