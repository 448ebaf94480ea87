// The local runtime gives every sidecar an identity: it mints a token per workload (namespace + service account)
// into a 0600 file under the state dir, the sidecar gets its certificate from the embedded control plane's CSR
// service with it, and takes its configuration over mTLS (the control plane logs the issuance; the sidecar is
// ready, so its xDS stream on the TLS port was served).
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRuntime } from '../../src/runtime/index.js';
import type { Runtime } from '../../src/runtime/index.js';

const APPS = fileURLToPath(new URL('../apps/', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'weft-rt-id-'));
const config = join(root, 'config');
const state = join(root, '.state');
mkdirSync(config);
symlinkSync(APPS, join(root, 'app'));
writeFileSync(
  join(config, 'mesh.yaml'),
  `apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 8080, targetPort: http}]
---
apiVersion: weft.dev/v1alpha1
kind: LocalWorkload
metadata: {name: reviews}
spec:
  command: [node, mesh-echo.js]
  cwd: ../app
  service: reviews
  serviceAccount: bookinfo-reviews
  ports: [{name: http, port: 0}]
`,
);

let rt: Runtime | undefined;
after(async () => {
  await rt?.stop();
  rmSync(root, { recursive: true, force: true });
});

test('weft up sidecars get a workload certificate with a minted token and use mTLS xDS', async () => {
  rt = await startRuntime({ configPaths: [config], stateDir: state });
  await rt.ready();
  const st = rt.status();
  assert.deepEqual(st.workloads.map((w) => [w.name, w.ready]), [['reviews', true]]);
  const tokenFile = join(state, 'tokens', 'default.bookinfo-reviews.token');
  assert.equal(statSync(tokenFile).mode & 0o777, 0o600);
  const claims = JSON.parse(Buffer.from(readFileSync(tokenFile, 'utf8').split('.')[1]!, 'base64url').toString()) as { sub: string };
  assert.equal(claims.sub, 'system:serviceaccount:default:bookinfo-reviews');
  assert.equal(statSync(join(state, 'ca', 'ca-key.pem')).mode & 0o777, 0o600);
  const cpLog = readFileSync(join(state, 'logs', 'control-plane.log'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { msg: string; identity?: string; via?: string });
  assert.ok(cpLog.some((l) => l.msg === 'certificate issued' && l.identity === 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews' && l.via === 'weft token'));
  assert.ok(!cpLog.some((l) => l.msg === 'xDS stream refused'));
  const sync = (await (await fetch(`http://127.0.0.1:${st.controlPlane.httpPort}/debug/syncz`)).json()) as Array<{ id: string }>;
  assert.deepEqual(sync.map((s) => s.id), [st.workloads[0]!.id]);
});
