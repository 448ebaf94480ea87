/**
 * Golden metrics from the control plane's mesh API (GET /api/mesh, src/controlplane/meshapi), as tables:
 *
 *   weft top [--namespace NS] [--once] [--interval S]   services: RPS, success %, p50/p90/p99, mTLS %; refreshed
 *                                                      every interval until Ctrl-C or q (--once: print once)
 *   weft stat SERVICE|WORKLOAD [--namespace NS]         one service (its callers and the workloads serving it) or
 *                                                      one workload (what it served and what it called)
 *   weft edges [--namespace NS]                         every call edge of the mesh graph
 *
 * Every command takes `--control-plane URL` (default $WEFT_CONTROL_PLANE or http://127.0.0.1:15014) and
 * `-o json`. Numbers are over the control plane's telemetry window (docs/cli.md).
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { MeshView, ServiceDetail, WorkloadDetail } from '../../controlplane/meshapi/views.js';
import type { GraphEdge } from '../../controlplane/telemetry/aggregate.js';
import type { Golden } from '../../controlplane/telemetry/istio.js';
import { controlPlaneUrl, DEFAULT_CONTROL_PLANE, fetchJson, formatTable } from './proxy-status.js';

export interface MeshCliOptions {
  controlPlane?: string;
  namespace?: string;
  output: 'text' | 'json';
}

type Out = (s: string) => void;

export const num = {
  rps: (v: number | undefined): string => (v === undefined ? '-' : v.toFixed(2)),
  pct: (v: number | undefined): string => (v === undefined ? '-' : `${(v * 100).toFixed(v === 1 || v === 0 ? 0 : 1)}%`),
  ms: (v: number | undefined): string => (v === undefined ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)}ms`),
};

/** RPS, SUCCESS, P50, P90, P99, MTLS cells. */
export const metricCols = ['RPS', 'SUCCESS', 'P50', 'P90', 'P99', 'MTLS'];
export const metricCells = (g: Golden): string[] => [num.rps(g.rps), num.pct(g.successRate), num.ms(g.p50), num.ms(g.p90), num.ms(g.p99), num.pct(g.mtls)];

/** `svc:reviews.bookinfo.svc.cluster.local` → `reviews.bookinfo`; `wl:bookinfo/reviews-v1` → `bookinfo/reviews-v1`. */
export const nodeName = (id: string): string => id.replace(/^svc:/, '').replace(/\.svc\.cluster\.local$/, '').replace(/^wl:/, '');

function edgeRows(edges: readonly GraphEdge[]): string[][] {
  return [['FROM', 'TO', ...metricCols], ...edges.map((e) => [nodeName(e.source), nodeName(e.target), ...metricCells(e)])];
}

function windowLine(v: MeshView): string {
  const errs = v.telemetry.scrapeErrors.map((e) => `  not read: ${e.target}: ${e.error}\n`).join('');
  return `${v.telemetry.source === 'prometheus' ? 'from Prometheus' : 'from the proxies'}, ${v.telemetry.windowSeconds}s window${v.telemetry.updatedAt ? `, ${v.telemetry.updatedAt}` : ''}\n${errs}`;
}

export function topTable(v: MeshView, namespace?: string): string {
  const rows = [['NAMESPACE', 'SERVICE', 'ENDPOINTS', ...metricCols]];
  for (const s of v.services) if (!namespace || s.namespace === namespace) rows.push([s.namespace, s.name, `${s.healthyEndpoints}/${s.endpoints}`, ...metricCells(s)]);
  return formatTable(rows);
}

async function mesh(opts: MeshCliOptions): Promise<MeshView> {
  return (await fetchJson(controlPlaneUrl(opts.controlPlane), '/api/mesh')) as MeshView;
}

export async function runTop(opts: MeshCliOptions & { once?: boolean; interval: number }, out: Out, err: Out): Promise<number> {
  const once = opts.once || !process.stdout.isTTY;
  const show = async (): Promise<boolean> => {
    try {
      const v = await mesh(opts);
      if (opts.output === 'json') out(`${JSON.stringify(v.services.filter((s) => !opts.namespace || s.namespace === opts.namespace), null, 2)}\n`);
      else out(`${once ? '' : '\x1b[H\x1b[2J'}${windowLine(v)}${topTable(v, opts.namespace)}`);
      return true;
    } catch (e) {
      err(`weft top: ${(e as Error).message}\n`);
      return false;
    }
  };
  if (once) return (await show()) ? 0 : 1;
  // Refresh until Ctrl-C or q.
  await new Promise<void>((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const stop = () => {
      if (timer) clearTimeout(timer);
      process.stdin.setRawMode?.(false);
      process.stdin.pause();
      process.off('SIGINT', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    if (process.stdin.isTTY) {
      process.stdin.setRawMode(true);
      process.stdin.resume();
      process.stdin.on('data', (d: Buffer) => {
        const k = d.toString();
        if (k === 'q' || k === '\u0003') stop();
      });
    }
    const loop = async () => {
      await show();
      timer = setTimeout(() => void loop(), opts.interval * 1000);
    };
    void loop();
  });
  return 0;
}

/** Splits `ns/name` (or `name` with --namespace). */
export function splitName(arg: string, namespace: string | undefined): { namespace?: string; name: string } {
  const i = arg.indexOf('/');
  return i > 0 ? { namespace: arg.slice(0, i), name: arg.slice(i + 1) } : { ...(namespace ? { namespace } : {}), name: arg };
}

/** The namespace of a service named `name` when only one namespace has one. */
export function serviceNamespace(v: MeshView, name: string): string[] {
  return [...new Set(v.services.filter((s) => s.name === name).map((s) => s.namespace))];
}

export async function runStat(target: string, opts: MeshCliOptions, out: Out, err: Out): Promise<number> {
  const base = controlPlaneUrl(opts.controlPlane);
  try {
    const v = await mesh(opts);
    const t = splitName(target, opts.namespace);
    const nss = t.namespace ? [t.namespace] : serviceNamespace(v, t.name);
    if (nss.length > 1) {
      err(`weft stat: there is a service ${t.name} in several namespaces (${nss.join(', ')}): name one as NAMESPACE/${t.name}\n`);
      return 1;
    }
    if (nss.length === 1 && v.services.some((s) => s.name === t.name && s.namespace === nss[0])) {
      const d = (await fetchJson(base, `/api/services/${encodeURIComponent(nss[0]!)}/${encodeURIComponent(t.name)}`)) as ServiceDetail;
      if (opts.output === 'json') out(`${JSON.stringify({ service: d.host, metrics: d.metrics, edges: [...d.inbound, ...d.outbound] }, null, 2)}\n`);
      else out(`${windowLine(v)}${formatTable([['SERVICE', ...metricCols], [`${d.namespace}/${d.name}`, ...metricCells(d.metrics)]])}\n${formatTable(edgeRows([...d.inbound, ...d.outbound]))}`);
      return 0;
    }
    // A workload: its namespace given, or the one namespace the metrics know it in.
    const wls = v.nodes.filter((n) => n.kind === 'workload' && n.name === t.name && (!t.namespace || n.namespace === t.namespace));
    const ns = t.namespace ?? (wls.length === 1 ? wls[0]!.namespace : undefined);
    if (!ns) {
      err(`weft stat: no service or workload ${JSON.stringify(target)}${wls.length > 1 ? ` (a workload of that name is in ${wls.map((w) => w.namespace).join(', ')}: name one as NAMESPACE/NAME)` : ''}; services: ${v.services.map((s) => `${s.namespace}/${s.name}`).join(', ') || 'none'}\n`);
      return 1;
    }
    const d = (await fetchJson(base, `/api/workloads/${encodeURIComponent(ns)}/${encodeURIComponent(t.name)}`)) as WorkloadDetail;
    if (opts.output === 'json') out(`${JSON.stringify({ workload: `${d.namespace}/${d.name}`, inbound: d.inbound, outbound: d.outbound, edges: d.edges }, null, 2)}\n`);
    else out(`${windowLine(v)}${formatTable([['WORKLOAD', 'DIRECTION', ...metricCols], [`${d.namespace}/${d.name}`, 'inbound', ...metricCells(d.inbound)], [`${d.namespace}/${d.name}`, 'outbound', ...metricCells(d.outbound)]])}\n${formatTable(edgeRows(d.edges))}`);
    return 0;
  } catch (e) {
    err(`weft stat: ${(e as Error).message}\n`);
    return 1;
  }
}

export async function runEdges(opts: MeshCliOptions, out: Out, err: Out): Promise<number> {
  try {
    const v = await mesh(opts);
    const nsOf = (id: string) => v.nodes.find((n) => n.id === id)?.namespace;
    const edges = opts.namespace ? v.edges.filter((e) => nsOf(e.source) === opts.namespace || nsOf(e.target) === opts.namespace) : v.edges;
    if (opts.output === 'json') out(`${JSON.stringify(edges, null, 2)}\n`);
    else out(`${windowLine(v)}${formatTable(edgeRows(edges))}`);
    return 0;
  } catch (e) {
    err(`weft edges: ${(e as Error).message}\n`);
    return 1;
  }
}

function secondsArg(v: string): number {
  const n = Number(v);
  if (!(n >= 0.5 && n <= 3600)) throw new InvalidArgumentError('expected seconds, 0.5-3600');
  return n;
}

const common = (c: Command): Command =>
  c
    .option('--control-plane <url>', `control plane HTTP address (default: $WEFT_CONTROL_PLANE or ${DEFAULT_CONTROL_PLANE})`)
    .option('-n, --namespace <ns>', 'only this namespace')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'));

const stdout: Out = (s) => process.stdout.write(s);
const stderr: Out = (s) => process.stderr.write(s);

export function registerTop(program: Command): void {
  common(program.command('top').description('live table of the services: requests per second, success rate, p50/p90/p99 latency, mTLS share'))
    .option('--once', 'print the table once and exit (also when stdout is not a terminal)')
    .option('--interval <seconds>', 'refresh interval', secondsArg, 2)
    .action(async (opts: MeshCliOptions & { once?: boolean; interval: number }) => {
      process.exitCode = await runTop(opts, stdout, stderr);
    });
}

export function registerStat(program: Command): void {
  common(program.command('stat').description('golden metrics of a service (per caller and per serving workload) or of a workload (inbound, outbound, per edge)'))
    .argument('<target>', 'SERVICE or WORKLOAD, or NAMESPACE/NAME')
    .action(async (target: string, opts: MeshCliOptions) => {
      process.exitCode = await runStat(target, opts, stdout, stderr);
    });
}

export function registerEdges(program: Command): void {
  common(program.command('edges').description('golden metrics of every call in the mesh: caller workload → service → serving workload')).action(async (opts: MeshCliOptions) => {
    process.exitCode = await runEdges(opts, stdout, stderr);
  });
}
