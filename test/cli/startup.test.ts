import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { getHeapStatistics } from 'node:v8';
import { compactHeap } from '../../src/cli/startup.js';

test('compactHeap collects garbage and leaves no gc function in later contexts', () => {
  // Garbage that only a full collection frees: old-generation objects nobody refers to any more.
  let junk: unknown[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }));
  const before = getHeapStatistics().used_heap_size;
  assert.ok(junk.length > 0);
  junk = undefined;
  compactHeap();
  const after = getHeapStatistics().used_heap_size;
  assert.ok(after < before - 5 * 1024 * 1024, `heap used ${before} → ${after}`);
  assert.equal(runInNewContext('typeof gc'), 'undefined');
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
});
