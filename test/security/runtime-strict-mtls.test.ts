// The local mesh under STRICT mutual TLS, end to end (`startRuntime`, as `weft up`): two mesh-echo workloads, A
// (service account caller) calling B through its sidecar. Before any PeerAuthentication (PERMISSIVE) a plaintext
// client that bypasses the sidecars reaches B's inbound port; after a mesh-wide STRICT PeerAuthentication (root
// namespace weft-system) the same plaintext request is refused, while A → B still succeeds over mTLS and B's app
// sees x-forwarded-client-cert naming A's SPIFFE identity (Istio's APPEND_FORWARD with URI).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRuntime } from '../../src/runtime/index.js';
import type { Runtime } from '../../src/runtime/index.js';
import type { RuntimeStatus } from '../../src/runtime/status.js';
import { run } from '../helpers/mesh-processes.js';
import { eventually } from '../helpers/http-upstream.js';

const APPS = fileURLToPath(new URL('../apps/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'weft-rt-strict-'));
const config = join(root, 'config');
const state = join(root, '.state');
mkdirSync(config);
symlinkSync(APPS, join(root, 'app'));

const workload = (name: string, sa: string) => `apiVersion: v1
kind: Service
metadata: {name: ${name}}
spec:
  selector: {app: ${name}}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: weft.dev/v1alpha1
kind: LocalWorkload
metadata: {name: ${name}}
spec:
  command: [node, mesh-echo.js]
  cwd: ../app
  service: ${name}
  serviceAccount: ${sa}
  ports: [{name: http, port: 0}]
`;
writeFileSync(join(config, 'mesh.yaml'), `${workload('a', 'caller')}---\n${workload('b', 'echo')}`);

let rt: Runtime | undefined;
let st: RuntimeStatus;
before(async () => {
  rt = await startRuntime({ configPaths: [config], stateDir: state });
  await rt.ready();
  st = rt.status();
});
after(async () => {
  await rt?.stop();
  rmSync(root, { recursive: true, force: true });
});

const replica = (name: string) => st.workloads.find((w) => w.name === name)!;

interface Echo {
  workload: string;
  xfcc?: string;
}

/** A calls http://b:8080/ through its sidecar: the HTTP status and B's JSON (undefined unless 200). */
async function aCallsB(): Promise<{ status: number; echo?: Echo }> {
  const r = await fetch(`http://127.0.0.1:${replica('a').appPorts.http}/call?host=b:8080&path=/`, { signal: AbortSignal.timeout(20_000) });
  const outer = (await r.json()) as { status?: number; body?: string };
  return outer.status === 200 ? { status: 200, echo: JSON.parse(outer.body!) as Echo } : { status: outer.status ?? 0 };
}

/** A plaintext HTTP request straight to B's sidecar inbound port (no sidecar on the client side): curl's result. */
async function plaintextToB(): Promise<{ ok: boolean; detail: string }> {
  const r = await run('curl', ['-s', '-S', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '10', `http://127.0.0.1:${replica('b').sidecar.inbound.http}/`]);
  return { ok: r.status === 0 && r.stdout.toString() === '200', detail: `curl exit ${r.status}, ${r.stdout.toString()} ${r.stderr.toString().trim()}` };
}

test('PERMISSIVE (no PeerAuthentication): A → B works over mTLS, and plaintext also reaches B', async () => {
  await eventually(async () => (await aCallsB()).status === 200, 'A → B', 30_000);
  const r = await aCallsB();
  assert.equal(r.echo?.workload, 'b');
  assert.match(r.echo?.xfcc ?? '', /URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/caller/, 'the call went over mTLS');
  const p = await plaintextToB();
  assert.ok(p.ok, p.detail);
});

test('mesh-wide STRICT: plaintext to the inbound port is refused; A → B still succeeds, B sees the caller identity in XFCC', async () => {
  writeFileSync(
    join(config, 'strict.yaml'),
    `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: weft-system}
spec:
  mtls: {mode: STRICT}
`,
  );
  await eventually(async () => !(await plaintextToB()).ok, 'STRICT to apply at B', 30_000);
  const p = await plaintextToB();
  assert.ok(!p.ok, p.detail);
  assert.notEqual(p.detail.split(',')[0], 'curl exit 0', `no HTTP response at all to a plaintext client (${p.detail})`);
  const r = await aCallsB();
  assert.equal(r.status, 200);
  assert.equal(r.echo?.workload, 'b');
  const xfcc = r.echo?.xfcc ?? '';
  assert.match(xfcc, /^By=spiffe:\/\/cluster\.local\/ns\/default\/sa\/echo;Hash=[0-9a-f]{64};Subject="";URI=spiffe:\/\/cluster\.local\/ns\/default\/sa\/caller$/, xfcc);
});
