#!/usr/bin/env node
// Builds the dashboard (src/dashboard/web) into dist/dashboard/: type-checks the page's code (its own tsconfig:
// DOM types), bundles it with cytoscape and uPlot by esbuild into app.js and app.css, and copies index.html.
// Build output only (dist/ is not committed); the control plane serves it under /dashboard/ (src/dashboard/assets.ts).
// Usage: node scripts/build-dashboard.mjs [--no-check]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url).pathname;
const web = join(root, 'src/dashboard/web');
const out = join(root, 'dist/dashboard');

if (!process.argv.includes('--no-check')) {
  const tsc = spawnSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(web, 'tsconfig.json')], { stdio: 'inherit' });
  if (tsc.status !== 0) process.exit(tsc.status ?? 1);
}
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: join(web, 'main.ts') },
  bundle: true,
  format: 'iife',
  platform: 'browser',
  target: ['es2022'],
  minify: true,
  legalComments: 'eof',
  outdir: out,
  logLevel: 'warning',
});
copyFileSync(join(web, 'index.html'), join(out, 'index.html'));
console.log(`dashboard built into ${out}`);
