// A full stats output does not grow V8's young generation for good (src/proxy/heap.ts, admin/stream.ts): an idle
// sidecar holding 1,000 services that Prometheus scrapes would otherwise keep 2 × 16 MiB of young generation.
// Measured in a child process, so the young generation is the one `weft proxy` has (start-up held it small).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

test('three full /stats/prometheus scrapes of 1,000 clusters leave the young generation its size', { timeout: 120_000 }, () => {
  const child = fileURLToPath(new URL('../helpers/young-generation-child.js', import.meta.url));
  const r = spawnSync(process.execPath, [child], { encoding: 'utf8', timeout: 110_000 });
  assert.equal(r.status, 0, r.stderr);
  const { before, after, bytes } = JSON.parse(r.stdout) as { before: number; after: number; bytes: number };
  assert.ok(bytes > 3 * 5_000_000, `three full outputs (${bytes} bytes)`);
  assert.ok(after <= before, `new space ${before} → ${after} bytes`);
});
