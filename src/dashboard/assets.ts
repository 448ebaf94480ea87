/**
 * The dashboard's static files, as the control plane serves them under `/dashboard/`. They are build output:
 * scripts/build-dashboard.mjs bundles src/dashboard/web (cytoscape, uPlot and the page's code) with esbuild into
 * `dist/dashboard/` — nothing is loaded from elsewhere, the dashboard works offline.
 *
 *   const a = dashboardAsset('/app.js');   // { body, type } | undefined (unknown file) ; throws DashboardNotBuilt
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** Where the bundle is: `dist/dashboard/` (this module is `dist/src/dashboard/assets.js`). */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../dashboard/', import.meta.url));

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
};

/** The files of the bundle (a fixed list: nothing else under the directory is served). */
const FILES = ['index.html', 'app.js', 'app.css'];

export class DashboardNotBuilt extends Error {}

/** A file of the bundle by its path under `/dashboard` (`/` is index.html); undefined for any other path. */
export function dashboardAsset(path: string): { body: Buffer; type: string } | undefined {
  const name = path === '/' || path === '' ? 'index.html' : path.replace(/^\//, '');
  if (!FILES.includes(name)) return undefined;
  let body: Buffer;
  try {
    body = readFileSync(`${DASHBOARD_DIR}${name}`);
  } catch {
    throw new DashboardNotBuilt(`the dashboard is not built (${DASHBOARD_DIR}${name} is missing): run \`npm run build\` or \`node scripts/build-dashboard.mjs\``);
  }
  return { body, type: TYPES[name.slice(name.lastIndexOf('.'))] ?? 'application/octet-stream' };
}
