// `weft netns-run` as a user runs it: a real control plane on loopback (relayed into the namespace), the command's
// traffic captured (curl by name reaches the sidecar: reviews has no endpoints, so the sidecar answers 503 with
// Envoy's `no healthy upstream`), its exit status passed on, and everything removed on exit and on SIGTERM.
// Needs root and iptables: skipped with the reason otherwise.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { captureSupport, sh } from '../../src/runtime/capture/index.js';
import { MeshWorkDir, ROOT, startControlPlane, WEFT, WeftProcess } from '../helpers/mesh-processes.js';

const FIXTURE = new URL('../../../test/fixtures/capture/mesh.yaml', import.meta.url);
const skip = captureSupport();

interface Run {
  code: number | null;
  out: string;
  err: string;
}

function netnsRun(xds: string, cmd: string[], onErr?: (err: string, kill: (s: NodeJS.Signals) => void) => void): Promise<Run> {
  const p = spawn(process.execPath, [WEFT, 'netns-run', '--workload', 'tester', '--xds', xds, '--', ...cmd], { cwd: ROOT });
  let out = '';
  let err = '';
  p.stdout.on('data', (d: Buffer) => (out += d.toString()));
  p.stderr.on('data', (d: Buffer) => {
    err += d.toString();
    onErr?.(err, (s) => p.kill(s));
  });
  const t = setTimeout(() => p.kill('SIGKILL'), 60_000);
  return new Promise((resolve) =>
    p.once('close', (code) => {
      clearTimeout(t);
      resolve({ code, out, err });
    }),
  );
}

/** The namespace netns-run reported, and whether it still exists. */
async function namespaceOf(err: string): Promise<{ name: string; exists: boolean }> {
  const m = /in (wft-\d+) at/.exec(err);
  assert.ok(m, `netns-run names its namespace: ${err}`);
  const list = await sh('ip', ['netns', 'list']);
  return { name: m[1]!, exists: list.split('\n').some((l) => l.split(' ')[0] === m[1]) };
}

describe('weft netns-run', { skip }, () => {
  const dir = new MeshWorkDir('weft-netns-run-');
  const cp = new WeftProcess();
  let xds = '';

  before(async () => {
    dir.writeConfig('mesh.yaml', readFileSync(FIXTURE, 'utf8'));
    xds = (await startControlPlane(cp, dir.config)).xds;
  });

  after(async () => {
    await cp.stop();
    dir.remove();
  });

  test('curl by name is captured by the sidecar; the exit status is the command’s; everything is removed', async () => {
    const r = await netnsRun(xds, ['curl', '-sS', '-w', '\\n%{http_code}', 'http://reviews:9080/']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /no healthy upstream\n503$/);
    const ns = await namespaceOf(r.err);
    assert.equal(ns.exists, false, `${ns.name} was removed`);
    assert.equal(existsSync(`/etc/netns/${ns.name}`), false);
    const failing = await netnsRun(xds, ['sh', '-c', 'exit 7']);
    assert.equal(failing.code, 7);
  });

  test('SIGTERM stops the command and removes the namespace', async () => {
    let sent = false;
    const r = await netnsRun(xds, ['sleep', '60'], (err, kill) => {
      if (!sent && err.includes('sidecar ready')) {
        sent = true;
        kill('SIGTERM');
      }
    });
    assert.notEqual(r.code, 0);
    assert.match(r.err, /SIGTERM, cleaning up/);
    const ns = await namespaceOf(r.err);
    assert.equal(ns.exists, false, `${ns.name} was removed`);
  });
});
