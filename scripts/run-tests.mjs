#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's built-in test runner.
// Usage: node scripts/run-tests.mjs [filter...]   (a filter keeps the files whose path contains it)
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d).sort()) {
    const f = join(d, e);
    if (statSync(f).isDirectory()) walk(f);
    else if (f.endsWith('.test.js')) files.push(relative(root, f));
  }
};
walk(join(root, 'dist', 'test'));
const filters = process.argv.slice(2);
const selected = filters.length ? files.filter((f) => filters.some((x) => f.includes(x))) : files;
if (selected.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', `--test-concurrency=${process.env.WEFT_TEST_CONCURRENCY ?? 2}`, ...selected], {
  stdio: 'inherit',
  cwd: root,
});
process.exit(r.status ?? 1);
