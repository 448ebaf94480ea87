// The Bookinfo sample's config (examples/bookinfo): each task file is clean for `weft analyze` together with the
// mesh it applies to; the tasks directory (several tasks define the same VirtualService, they are applied one at
// a time) holds a `.weftignore` file, so reading a parent directory skips it — in `weft analyze` (listConfigFiles)
// and in the runtime's directory source alike — while naming it directly still reads it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyzePaths } from '../../src/analyze/index.js';
import { formatText } from '../../src/analyze/format.js';
import { listConfigFiles } from '../../src/api/source.js';
import { DirectorySource, loadOnce } from '../../src/config/directory.js';
import { ROOT, sleep } from '../helpers/mesh-processes.js';

const BOOKINFO = join(ROOT, 'examples/bookinfo');
const MESH = join(BOOKINFO, 'mesh');
const TASKS = join(BOOKINFO, 'tasks');
const taskFiles = readdirSync(TASKS).filter((f) => f.endsWith('.yaml')).sort();

describe('bookinfo sample config', () => {
  test('the classic tasks and the SMI / Gateway API variants are all there', () => {
    assert.deepEqual(taskFiles, [
      'mtls-strict.yaml',
      'ratings-fault-abort.yaml',
      'ratings-fault-delay.yaml',
      'reviews-50-v3-gateway-api.yaml',
      'reviews-50-v3-smi.yaml',
      'reviews-50-v3.yaml',
      'reviews-jason-v2.yaml',
      'virtual-service-all-v1.yaml',
    ]);
  });

  for (const f of taskFiles) {
    test(`mesh + ${f}: no errors, no warnings`, async () => {
      const { messages, files } = await analyzePaths([MESH, join(TASKS, f)]);
      assert.equal(files.length, 5);
      assert.deepEqual(messages.filter((m) => m.severity !== 'Info').map((m) => formatText(m)), []);
    });
  }

  test('the mesh alone: LocalWorkloads for every service and version, no messages', async () => {
    const { messages } = await analyzePaths([MESH]);
    assert.deepEqual(messages.map((m) => formatText(m)), []);
    const snap = await loadOnce(MESH);
    const workloads = snap.resources.filter((r) => r.kind === 'LocalWorkload').map((r) => r.metadata.name).sort();
    assert.deepEqual(workloads, ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3', 'stock-v1']);
  });

  test('a directory holding .weftignore is skipped when its parent is read, and read when named', async () => {
    const viaParent = await listConfigFiles([BOOKINFO]);
    assert.ok(viaParent.length > 0);
    assert.deepEqual(viaParent.filter((f) => f.startsWith(TASKS)), []);
    assert.equal((await listConfigFiles([TASKS])).length, taskFiles.length);
    // The runtime's directory source follows the same rule.
    const parent = await loadOnce(BOOKINFO);
    assert.deepEqual(parent.resources.filter((r) => r.file.startsWith(TASKS)).map((r) => r.file), []);
    assert.ok(parent.resources.some((r) => r.kind === 'LocalWorkload'));
    const named = await loadOnce(TASKS);
    assert.ok(named.resources.some((r) => r.kind === 'TrafficSplit'));
  });

  test('a watching directory source ignores files written into a .weftignore directory later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'weft-weftignore-'));
    const svc = (name: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec:\n  ports: [{name: http, port: 80}]\n`;
    const source = new DirectorySource([dir], { debounceMs: 20, maxWaitMs: 200, rescanIntervalMs: 100 });
    try {
      mkdirSync(join(dir, 'tasks'));
      writeFileSync(join(dir, 'tasks', '.weftignore'), '');
      writeFileSync(join(dir, 'a.yaml'), svc('a'));
      await source.start();
      writeFileSync(join(dir, 'tasks', 't.yaml'), svc('t'));
      writeFileSync(join(dir, 'b.yaml'), svc('b'));
      const names = () => source.store.snapshot().resources.map((r) => r.metadata.name).sort();
      for (let i = 0; i < 200 && !names().includes('b'); i++) await sleep(25);
      await sleep(300); // a few rescans more
      assert.deepEqual(names(), ['a', 'b']);
    } finally {
      await source.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
