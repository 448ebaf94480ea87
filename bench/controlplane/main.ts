/**
 * `npm run bench:controlplane`: the control-plane benchmark (see docs/performance.md, "Control plane").
 * Progress goes to stderr; the report goes to stdout and into docs/performance.md.
 */
import { rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { DEFAULT_SHAPE, describeMesh, writeMesh } from './config.js';
import { describeRun, loadNow, machine, resultsTable, updatePerformanceDoc } from './report.js';
import { killAll, runScenario } from './run.js';
import type { ProtocolMix, ScenarioResult } from './run.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The temporary directory to remove if the run is interrupted. */
let tempRoot: string | undefined;

const HELP = `Usage: npm run bench:controlplane -- [options]

  --clients LIST      client counts, one run each (default 100,500)
  --protocol P        mixed (half SotW, half Delta; default), sotw or delta
  --services N        services (default ${DEFAULT_SHAPE.services})
  --endpoints N       endpoints per service (default ${DEFAULT_SHAPE.endpointsPerService})
  --namespaces N      namespaces (default ${DEFAULT_SHAPE.namespaces})
  --apps N            apps the clients are replicas of (default 50; clients of one app and zone share an identity)
  --workers N         client worker processes (default 2)
  --changes N         endpoint changes per kind (config file, registration API; default 10)
  --cpu-prof DIR      profile the control plane (node --cpu-prof), profiles written to DIR, and the client
                      workers, profiles written to DIR/workers-<clients>
  --no-docs           do not write docs/performance.md
  --keep              keep the temporary directory (config, control-plane logs)
  -h, --help          this help
`;

function positive(name: string, v: string | undefined, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`bench: --${name} must be an integer >= ${min}\n`);
    process.exit(2);
  }
  return n;
}

async function main(): Promise<number> {
  let args: ReturnType<typeof parse>;
  function parse() {
    return parseArgs({
      options: {
        clients: { type: 'string' },
        protocol: { type: 'string' },
        services: { type: 'string' },
        endpoints: { type: 'string' },
        namespaces: { type: 'string' },
        apps: { type: 'string' },
        workers: { type: 'string' },
        changes: { type: 'string' },
        'cpu-prof': { type: 'string' },
        'no-docs': { type: 'boolean' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    });
  }
  try {
    args = parse();
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const clientCounts = (v.clients ?? '100,500').split(',').map((s) => positive('clients', s.trim(), 0));
  const protocol = (v.protocol ?? 'mixed') as ProtocolMix;
  if (!['mixed', 'sotw', 'delta'].includes(protocol)) {
    process.stderr.write('bench: --protocol must be mixed, sotw or delta\n');
    return 2;
  }
  const shape = {
    ...DEFAULT_SHAPE,
    services: positive('services', v.services, DEFAULT_SHAPE.services),
    endpointsPerService: positive('endpoints', v.endpoints, DEFAULT_SHAPE.endpointsPerService),
    namespaces: positive('namespaces', v.namespaces, DEFAULT_SHAPE.namespaces),
  };
  const apps = positive('apps', v.apps, 50);
  const workers = positive('workers', v.workers, 2);
  const changes = positive('changes', v.changes, 10, 0);

  const progress = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  const loadAtStart = loadNow();
  const root = await mkdtemp(join(tmpdir(), 'weft-bench-cp-'));
  let keep = v.keep ?? false;
  if (!keep) tempRoot = root;
  const results: ScenarioResult[] = [];
  let mesh = describeMesh(shape);
  try {
    for (const n of clientCounts) {
      // A fresh copy of the mesh per run (the previous run changed some endpoints).
      mesh = describeMesh(shape);
      const dir = join(root, `run-${n}`);
      const configDir = join(dir, 'config');
      await mkdir(configDir, { recursive: true });
      progress(`run with ${n} clients: writing the mesh to ${configDir}`);
      await writeMesh(configDir, mesh);
      const r = await runScenario({
        mesh,
        configDir,
        logFile: join(dir, 'control-plane.log'),
        clients: n,
        protocol,
        workers,
        apps,
        fileChanges: changes,
        apiChanges: changes,
        controlPlaneNodeArgs: v['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', resolve(v['cpu-prof'])] : [],
        workerNodeArgs: v['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', join(resolve(v['cpu-prof']), `workers-${n}`)] : [],
        progress,
      });
      results.push(r);
      if (r.fullPush.errors.length) {
        keep = true;
        progress(`client errors (${r.fullPush.errors.length}), first ones:\n  ${r.fullPush.errors.slice(0, 5).join('\n  ')}`);
      }
    }
  } catch (e) {
    keep = true;
    progress(`failed: ${(e as Error)?.stack ?? String(e)}`);
    progress(`config and control-plane logs kept in ${root}`);
    return 1;
  } finally {
    if (!keep) await rm(root, { recursive: true, force: true });
  }

  const m = machine(REPO_ROOT, loadAtStart);
  const body = `### Results\n\n${describeRun(mesh, results, m)}\n\n${resultsTable(results)}\n`;
  process.stdout.write(`\nControl-plane benchmark\n\n${body}\n`);
  if (keep) process.stdout.write(`\nconfig and control-plane logs: ${root}\n`);
  if (!v['no-docs']) {
    const doc = join(REPO_ROOT, 'docs', 'performance.md');
    updatePerformanceDoc(doc, body);
    process.stdout.write(`\nresults written to ${doc}\n`);
  }
  const failed = results.some((r) => r.fullPush.completed < r.clients);
  return failed ? 1 : 0;
}

// Leave nothing behind, however the run ends.
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping the control plane and the clients\n`);
    killAll();
    if (tempRoot) rmSync(tempRoot, { recursive: true, force: true });
    process.exit(130);
  });
}
process.on('exit', killAll);
process.on('uncaughtException', (e) => {
  process.stderr.write(`bench: ${e?.stack ?? String(e)}\n`);
  killAll();
  process.exit(1);
});

main().then(
  (code) => {
    killAll();
    process.exit(code);
  },
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
    killAll();
    process.exit(1);
  },
);
