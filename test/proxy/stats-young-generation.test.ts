// A full stats output does not grow V8's young generation for good (src/proxy/heap.ts, admin/stream.ts): an idle
// sidecar holding 1,000 services that Prometheus scrapes would otherwise keep 2 × 16 MiB of young generation.
// The stats are served by a child process, so its young generation is the one `weft proxy` has (start-up held it
// small) and only the serving side's allocations count; the scrapes are made from this process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

function scrape(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path: '/stats/prometheus', agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

test('three full /stats/prometheus scrapes of 1,000 clusters leave the young generation its size', { timeout: 120_000 }, async () => {
  const child = spawn(process.execPath, [fileURLToPath(new URL('../helpers/young-generation-child.js', import.meta.url))], { stdio: ['pipe', 'pipe', 'inherit'] });
  try {
    const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
    const first = await lines.next();
    assert.ok(!first.done, 'the child started');
    const { port, before } = JSON.parse(first.value) as { port: number; before: number };
    let bytes = 0;
    for (let i = 0; i < 3; i++) bytes += await scrape(port);
    assert.ok(bytes > 3 * 5_000_000, `three full outputs (${bytes} bytes)`);
    child.stdin!.write('done\n');
    const second = await lines.next();
    assert.ok(!second.done, 'the child answered');
    const { after } = JSON.parse(second.value) as { after: number };
    assert.ok(after <= before, `new space ${before} → ${after} bytes`);
  } finally {
    child.kill();
  }
});
