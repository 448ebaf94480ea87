#!/usr/bin/env node
// Entry point of the `weft` command: runs the compiled CLI (built by `npm run build`, which `npm ci` runs).
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
const main = fileURLToPath(new URL('../dist/src/cli/main.js', import.meta.url));
if (!existsSync(main)) {
  process.stderr.write('weft: the CLI is not built yet; run `npm run build` in the weft package first.\n');
  process.exit(2);
}
await import(pathToFileURL(main).href);
