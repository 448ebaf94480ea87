/**
 * `weft demo [--state-dir .weft] [--rps N]`: the whole mesh on this machine in one command —
 * the Bookinfo sample application (examples/bookinfo), the local runtime, live traffic and the dashboard.
 *
 * 1. Copies examples/bookinfo into `<state-dir>/bookinfo` (afresh each time, so applied tasks never touch the
 *    repository) and links `<state-dir>/bookinfo/node_modules` to Weft's own dependencies (the apps use
 *    @grpc/grpc-js and @grpc/grpc-js-xds).
 * 2. Runs the runtime (src/runtime, what `weft up` runs) on `<state-dir>/bookinfo/mesh`, printing its progress.
 * 3. Once every workload is ready, sends `--rps` requests per second to the product page through productpage's
 *    sidecar (src/runtime/traffic.ts).
 * 4. Prints a short guide: the product page URL, `Dashboard: http://127.0.0.1:PORT/dashboard/` (served by the
 *    runtime's control plane on its HTTP port, docs/dashboard.md), and commands to try (`weft top` among them).
 *    Ctrl-C (or SIGTERM, or `weft down --state-dir`) stops the traffic and the runtime; exit 0.
 *
 * `weft demo --apply FILE [--state-dir DIR]` applies a task file to the running demo, with `kubectl apply`'s
 * meaning: the file goes into `<config>/applied/` of the running demo (found through `<state-dir>/runtime.json`),
 * and any resource it defines (same kind, namespace and name) is first removed from the task files applied before,
 * so `reviews-50-v3.yaml` replaces the reviews VirtualService of `virtual-service-all-v1.yaml` and keeps the others.
 * The runtime's config watcher applies the change live.
 */
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseAllDocuments } from 'yaml';
import { validateResources } from '../../api/build.js';
import { parseConfigText } from '../../api/source.js';
import { RuntimeAlreadyRunningError, startRuntime, type Runtime, type RuntimeEvent } from '../../runtime/index.js';
import { liveRuntime } from '../../runtime/api.js';
import { startTraffic, type TrafficGenerator } from '../../runtime/traffic.js';
import { DEFAULT_STATE_DIR } from './up.js';

/** The sample application shipped with Weft (dist/src/cli/commands → the package root). */
const BOOKINFO = fileURLToPath(new URL('../../../../examples/bookinfo', import.meta.url));
const APPLIED_DIR = 'applied';

interface DemoOptions {
  stateDir: string;
  rps: number;
  apply?: string;
}

function rpsArg(v: string): number {
  const n = Number(v);
  if (!/^\d+(\.\d+)?$/.test(v) || n < 0 || n > 1000) throw new InvalidArgumentError('expected requests per second, 0-1000 (0 = no traffic)');
  return n;
}

const time = (): string => new Date().toISOString().slice(11, 19);

/** The node_modules directory that holds Weft's dependencies (where @grpc/grpc-js resolves from). */
function dependenciesDir(): string {
  const entry = createRequire(import.meta.url).resolve('@grpc/grpc-js');
  const marker = `${sep}node_modules${sep}`;
  return entry.slice(0, entry.lastIndexOf(marker) + marker.length - 1);
}

/** Copies the sample application into the state dir; returns its mesh config directory. */
export function prepareBookinfo(stateDir: string): string {
  const dest = join(stateDir, 'bookinfo');
  rmSync(dest, { recursive: true, force: true });
  mkdirSync(stateDir, { recursive: true });
  cpSync(BOOKINFO, dest, { recursive: true, filter: (src) => basename(src) !== 'node_modules' });
  symlinkSync(dependenciesDir(), join(dest, 'node_modules'), 'junction'); // 'junction': no privilege needed on Windows; a plain link elsewhere
  return join(dest, 'mesh');
}

function commandFor(args: string, stateDir: string): string {
  const sd = stateDir === DEFAULT_STATE_DIR ? '' : ` --state-dir ${stateDir}`;
  return `weft ${args}${sd}`;
}

/** `weft top` pointed at the demo's control plane. */
function topCommand(httpPort: number): string {
  return `weft top --control-plane http://127.0.0.1:${httpPort}`;
}

function guide(rt: Runtime, productPage: string | undefined, opts: DemoOptions): string {
  const st = rt.status();
  const ready = st.workloads.filter((w) => w.ready).length;
  // The task files of the installed sample: relative to the current directory when below it, else absolute.
  const rel = relative(process.cwd(), join(BOOKINFO, 'tasks'));
  const tasks = rel.startsWith('..') || isAbsolute(rel) ? join(BOOKINFO, 'tasks') : rel;
  const failed = st.workloads.filter((w) => !w.ready).map((w) => `  ${w.name}-${w.replica}: ${w.lastError ?? w.phase}`);
  return [
    '',
    `Bookinfo is running: ${ready}/${st.workloads.length} workloads ready, each with its sidecar; control plane on 127.0.0.1:${st.controlPlane.xdsPort}.`,
    ...(failed.length ? ['Not ready yet (retrying):', ...failed] : []),
    '',
    productPage ? `Product page: ${productPage}  (through productpage's sidecar; sign in as jason there)` : 'Product page: productpage is not running (see the logs in the state dir)',
    `Dashboard: http://127.0.0.1:${st.controlPlane.httpPort}/dashboard/`,
    opts.rps > 0 && productPage ? `Traffic: ${opts.rps} request(s)/s to the product page.` : 'Traffic: none.',
    `Logs: ${join(resolve(opts.stateDir), 'logs')} (${commandFor('logs reviews-v2 -f', opts.stateDir)})`,
    '',
    'Try:',
    `  ${commandFor(`demo --apply ${join(tasks, 'reviews-50-v3.yaml')}`, opts.stateDir)}`,
    '      half of the reviews from v1 (no stars), half from v3 (red stars): reload the page, watch the dashboard',
    `  ${topCommand(st.controlPlane.httpPort)}`,
    '      the services live: requests per second, success rate, p50/p90/p99 latency, mTLS share (q quits)',
    `  ${commandFor(`demo --apply ${join(tasks, 'ratings-fault-abort.yaml')}`, opts.stateDir)}`,
    "      inject a fault: jason's calls to ratings fail with HTTP 500 (the other tasks are in the same directory)",
    '',
    'Ctrl-C stops everything.',
    '',
  ].join('\n');
}

export async function runDemo(opts: DemoOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const stateDir = resolve(opts.stateDir);
  const live = await liveRuntime(stateDir);
  if (live) {
    err(`weft demo: a runtime (pid ${live.pid}) is already running in ${stateDir}; stop it with Ctrl-C or \`${commandFor('down', opts.stateDir)}\`, or use another --state-dir\n`);
    return 1;
  }
  let meshDir: string;
  try {
    meshDir = prepareBookinfo(stateDir);
  } catch (e) {
    err(`weft demo: cannot copy the sample application into ${stateDir}: ${(e as Error).message}\n`);
    return 1;
  }
  out(`${time()} sample application copied to ${join(stateDir, 'bookinfo')}\n`);

  let rt: Runtime;
  try {
    rt = await startRuntime({ configPaths: [meshDir], stateDir, onEvent: (e: RuntimeEvent) => out(`${time()} ${e.message}\n`) });
  } catch (e) {
    err(`weft demo: ${e instanceof RuntimeAlreadyRunningError ? e.message : `cannot start: ${(e as Error).message}`}\n`);
    return 1;
  }
  let traffic: TrafficGenerator | undefined;
  let signalled = false;
  const stopAll = async (): Promise<void> => {
    await traffic?.stop();
    await rt.stop();
  };
  const onSignal = (s: NodeJS.Signals): void => {
    if (signalled) {
      err(`weft demo: ${s} again: still stopping\n`);
      return;
    }
    signalled = true;
    out(`${s}: stopping the traffic and the mesh\n`);
    void stopAll();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    out(`${time()} dashboard on http://127.0.0.1:${rt.controlPlane.httpPort}/dashboard/\n`);
    await Promise.race([rt.ready(), rt.stopped]);
    if (!signalled) {
      const pp = rt.status().workloads.find((w) => w.name === 'productpage-v1' && w.ready);
      const inbound = pp?.sidecar.inbound['http'];
      const productPage = inbound ? `http://127.0.0.1:${inbound}/productpage` : undefined;
      if (productPage && opts.rps > 0) traffic = startTraffic({ target: productPage, rps: opts.rps });
      out(guide(rt, productPage, opts));
    }
    await rt.stopped;
    await stopAll();
    return 0;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** `group/kind/namespace/name` of each resource of a parsed file, by YAML document index. */
function resourceKeys(text: string, file: string): { keys: Map<string, number>; errors: string[] } {
  const parsed = parseConfigText(text, file);
  const keys = new Map<string, number>();
  for (const r of parsed.resources) {
    const group = r.apiVersion.includes('/') ? r.apiVersion.slice(0, r.apiVersion.indexOf('/')) : '';
    keys.set(`${group}/${r.kind}/${r.metadata.namespace ?? ''}/${r.metadata.name ?? ''}`, r.doc);
  }
  // Syntax and schema errors (unknown fields, bad values): the control plane would ignore such a resource.
  const diagnostics = [...parsed.diagnostics, ...validateResources(parsed.resources).diagnostics];
  const errors = diagnostics.filter((d) => d.severity === 'Error').map((d) => (d.pos ? `${d.pos.file}:${d.pos.line}:${d.pos.column}: ${d.message}` : d.message));
  return { keys, errors };
}

const describeKey = (k: string): string => {
  const [, kind, ns, name] = k.split('/');
  return `${kind} ${ns ? `${ns}/` : ''}${name}`;
};

export async function runApply(opts: DemoOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const file = opts.apply!;
  const stateDir = resolve(opts.stateDir);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    err(`weft demo --apply: cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}\n`);
    return 1;
  }
  const { keys, errors } = resourceKeys(text, file);
  if (errors.length) {
    err(`weft demo --apply: ${file} is not valid:\n${errors.map((e) => `  ${e}\n`).join('')}`);
    return 1;
  }
  if (keys.size === 0) {
    err(`weft demo --apply: ${file} defines no resources\n`);
    return 1;
  }
  const live = await liveRuntime(stateDir);
  const configDir = live?.configPaths[0];
  if (!live || !configDir) {
    err(`weft demo --apply: no demo is running in ${stateDir} (start one with \`${commandFor('demo', opts.stateDir)}\`)\n`);
    return 1;
  }
  const appliedDir = join(configDir, APPLIED_DIR);
  mkdirSync(appliedDir, { recursive: true });
  const target = join(appliedDir, basename(file).replace(/\.(ya?ml|json)$/i, '') + (/\.json$/i.test(file) ? '.json' : '.yaml'));
  const replaced: string[] = [];
  for (const name of existsSync(appliedDir) ? readdirSync(appliedDir).sort() : []) {
    const path = join(appliedDir, name);
    if (path === target) continue;
    const prevText = readFileSync(path, 'utf8');
    const prev = resourceKeys(prevText, path);
    const drop = new Set<number>();
    for (const [k, doc] of prev.keys) {
      if (keys.has(k)) {
        drop.add(doc);
        replaced.push(`${describeKey(k)} (from ${name})`);
      }
    }
    if (drop.size === 0) continue;
    const docs = parseAllDocuments(prevText);
    const kept = (Array.isArray(docs) ? docs : [docs]).filter((_, i) => !drop.has(i));
    if (kept.length === 0) rmSync(path);
    else writeFileSync(path, kept.map((d) => d.toString()).join('---\n'));
  }
  writeFileSync(target, text);
  out(`applied ${file} to the demo in ${stateDir}: ${[...keys.keys()].map(describeKey).join(', ')}\n`);
  if (replaced.length) out(`replaced: ${replaced.join(', ')}\n`);
  return 0;
}

export function register(program: Command): void {
  program
    .command('demo')
    .description('run the Bookinfo sample mesh with live traffic and the dashboard (foreground; Ctrl-C stops); --apply FILE applies a task to it')
    .option('--state-dir <dir>', 'where the copy of the sample, runtime.json and logs/ go (the default of weft status, logs and down too)', DEFAULT_STATE_DIR)
    .option('--rps <n>', 'requests per second the traffic generator sends to the product page (0 = none)', rpsArg, 3)
    .option('--apply <file>', 'apply a task file (e.g. examples/bookinfo/tasks/reviews-50-v3.yaml) to the running demo, then exit')
    .action(async (opts: DemoOptions) => {
      const out = (s: string) => process.stdout.write(s);
      const err = (s: string) => process.stderr.write(s);
      process.exitCode = opts.apply !== undefined ? await runApply(opts, out, err) : await runDemo(opts, out, err);
    });
}
