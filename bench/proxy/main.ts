/**
 * `npm run bench:proxy`: the proxy benchmark (see docs/performance.md, "Proxy"). Installs the tools it needs when a
 * binary is missing (apt-get, as root), runs ./run.ts, prints the tables and writes them into docs/performance.md.
 * Progress goes to stderr; the report to stdout.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadNow, machine } from '../controlplane/report.js';
import { killAll } from './procs.js';
import { describeRun, resultsTables, targetsTable, updatePerformanceDoc } from './report.js';
import { ALL_PLACEMENTS, ALL_TARGETS, ALL_WORKLOADS, runBench } from './run.js';
import type { Placement, TargetName, WorkloadName } from './run.js';

const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
let tempRoot: string | undefined;

const HELP = `Usage: npm run bench:proxy -- [options]

  --seconds N          seconds measured per case (default 5)
  --warmup N           seconds of warm-up per case (default 1)
  --targets LIST       direct,nginx,haproxy,weft (default all)
  --workloads LIST     h1-2b,h1-1k,h2,tcp (default all; none: only the fixed-rate, mTLS and idle cases)
  --concurrency LIST   weft proxy --concurrency values to measure (default 1; e.g. 1,2)
  --rate N             fixed rate for the added-latency measurement, rps (default 1000; 0 skips)
  --rate-rounds N      rounds of the added-latency measurement, every target once per round (default 3)
  --rate-seconds N     seconds measured per target and round at the fixed rate (default: --seconds)
  --rate-placement L   pinned,shared (default both): proxy on CPU 1 and the rest on CPU 0, and/or every process
                       of the case free to run on every CPU
  --mtls-rate N        fixed rate of the two-hop mTLS case, rps (default 1000; 0 skips; needs the weft target)
  --idle-services N    services for the idle-RSS measurement (default 1000; 0 skips)
  --idle-only          only the idle-RSS measurement (no load cases; implies --no-docs)
  --no-metrics-off     do not measure weft --metrics=false (the cost of Istio's metrics) beside weft
  --no-install         do not apt-get install missing tools
  --no-docs            do not write docs/performance.md
  --keep               keep the temporary directory (configs, logs)
  -h, --help           this help
`;

/** Binary → Debian package providing it. */
const TOOLS: Record<string, string> = { nginx: 'nginx', haproxy: 'haproxy', wrk: 'wrk', h2load: 'nghttp2-client', taskset: 'util-linux' };
const NGINX_STREAM_PACKAGE = 'libnginx-mod-stream';

function has(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Installs the packages of missing binaries (and nginx's stream module) with apt-get; explains when it cannot. */
function ensureTools(wanted: string[], install: boolean, progress: (s: string) => void): string | undefined {
  const missing = wanted.filter((b) => !has(b));
  const packages = [...new Set(missing.map((b) => TOOLS[b]!))];
  if (wanted.includes('nginx') && !existsSync('/usr/lib/nginx/modules/ngx_stream_module.so')) packages.push(NGINX_STREAM_PACKAGE);
  if (!packages.length) return undefined;
  const isRoot = process.getuid?.() === 0;
  if (!install || !isRoot || !has('apt-get')) {
    const why = !install ? '--no-install was given' : !isRoot ? 'not running as root' : 'apt-get is not available';
    if (missing.length) return `missing ${missing.join(', ')} and cannot install them (${why}); install with: sudo apt-get install -y ${packages.join(' ')}`;
    progress(`${NGINX_STREAM_PACKAGE} not installed (${why}): nginx's TCP case is skipped`);
    return undefined;
  }
  progress(`installing ${packages.join(' ')} (apt-get)`);
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  } catch {
    try {
      execFileSync('apt-get', ['update'], { stdio: ['ignore', 'ignore', 'inherit'] });
      execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages], { stdio: ['ignore', 'ignore', 'inherit'], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    } catch (e) {
      if (missing.some((b) => !has(b))) return `apt-get install ${packages.join(' ')} failed: ${(e as Error).message}`;
    }
  }
  const still = wanted.filter((b) => !has(b));
  return still.length ? `still missing after apt-get: ${still.join(', ')}` : undefined;
}

function list<T extends string>(name: string, v: string | undefined, all: readonly T[]): T[] {
  if (v === undefined) return [...all];
  const items = v.split(',').map((s) => s.trim()) as T[];
  const bad = items.filter((i) => !all.includes(i));
  if (bad.length) throw new Error(`--${name}: unknown ${bad.join(', ')} (one of ${all.join(', ')})`);
  return items;
}

function num(name: string, v: string | undefined, dflt: number, min: number): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}`);
  return n;
}

async function main(): Promise<number> {
  const progress = (line: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  let v;
  try {
    v = parseArgs({
      options: {
        seconds: { type: 'string' },
        warmup: { type: 'string' },
        targets: { type: 'string' },
        workloads: { type: 'string' },
        concurrency: { type: 'string' },
        rate: { type: 'string' },
        'rate-rounds': { type: 'string' },
        'rate-seconds': { type: 'string' },
        'rate-placement': { type: 'string' },
        'mtls-rate': { type: 'string' },
        'idle-services': { type: 'string' },
        'idle-only': { type: 'boolean' },
        'no-install': { type: 'boolean' },
        'no-metrics-off': { type: 'boolean' },
        'no-docs': { type: 'boolean' },
        keep: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (v.help) {
    process.stdout.write(HELP);
    return 0;
  }
  let opts;
  try {
    const idleOnly = v['idle-only'] === true;
    const targets = idleOnly ? [] : list<TargetName>('targets', v.targets, ALL_TARGETS);
    const workloads = idleOnly || v.workloads === 'none' ? [] : list<WorkloadName>('workloads', v.workloads, ALL_WORKLOADS);
    const weftConcurrency = (v.concurrency ?? '1').split(',').map((s) => num('concurrency', s.trim(), 1, 1));
    opts = {
      seconds: num('seconds', v.seconds, 5, 0.5),
      warmupSeconds: num('warmup', v.warmup, 1, 0),
      targets,
      workloads,
      weftConcurrency,
      weftMetricsOff: !v['no-metrics-off'],
      fixedRps: idleOnly ? 0 : num('rate', v.rate, 1000, 0),
      fixedRounds: num('rate-rounds', v['rate-rounds'], 3, 1),
      fixedSeconds: num('rate-seconds', v['rate-seconds'], num('seconds', v.seconds, 5, 0.5), 0.5),
      fixedPlacements: list<Placement>('rate-placement', v['rate-placement'], ALL_PLACEMENTS),
      mtlsRps: idleOnly ? 0 : num('mtls-rate', v['mtls-rate'], 1000, 0),
      idleServices: num('idle-services', v['idle-services'], 1000, 0),
      progress,
    };
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  const wanted = ['wrk', 'taskset'];
  if (opts.targets.includes('nginx') || opts.targets.includes('direct') || opts.targets.includes('weft')) wanted.push('nginx');
  if (opts.targets.includes('haproxy')) wanted.push('haproxy');
  if (opts.workloads.includes('h2')) wanted.push('h2load');
  const problem = ensureTools(wanted, !v['no-install'], progress);
  if (problem) {
    process.stderr.write(`bench: ${problem}\n`);
    return 1;
  }

  const loadAtStart = loadNow();
  const root = mkdtempSync(join(tmpdir(), 'weft-bench-proxy-'));
  if (!v.keep) tempRoot = root;
  let result;
  try {
    result = await runBench({ ...opts, workDir: root });
  } catch (e) {
    progress(`failed: ${(e as Error)?.stack ?? String(e)}`);
    progress(`configs and logs kept in ${root}`);
    tempRoot = undefined;
    return 1;
  }
  if (!v.keep) rmSync(root, { recursive: true, force: true });
  const m = machine(REPO_ROOT, loadAtStart);
  const targets = targetsTable(result);
  const body = `### Results\n\n${describeRun(m, result, opts.seconds)}\n\n${resultsTables(result)}\n${targets ? `\n${targets}\n` : ''}`;
  process.stdout.write(`\nProxy benchmark\n\n${body}\n`);
  if (!v['no-docs'] && !v['idle-only']) {
    const doc = join(REPO_ROOT, 'docs', 'performance.md');
    updatePerformanceDoc(doc, body);
    process.stdout.write(`\nresults written to ${doc}\n`);
  }
  const failed = result.cases.some((c) => !c.skipped && (c.requests ?? 0) === 0);
  return failed ? 1 : 0;
}

for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}: stopping everything it started\n`);
    killAll();
    if (tempRoot) rmSync(tempRoot, { recursive: true, force: true });
    process.exit(130);
  });
}
process.on('exit', killAll);

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`bench: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  },
);
