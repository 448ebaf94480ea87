/** The benchmark's report: a Markdown table (printed, and kept in docs/performance.md) and the machine it ran on. */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import type { MeshSummary } from './config.js';
import type { ScenarioResult } from './run.js';

export const TARGETS = {
  fullPushClients: 500,
  fullPushMs: 5000,
  changeP99Ms: 200,
  rssBytes: 1024 ** 3,
};

export interface Machine {
  date: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  node: string;
  os: string;
  commit?: string;
  /** 1-minute load average when the benchmark started (other work on the machine skews the figures). */
  loadAtStart: number;
}

/** The 1-minute load average now. */
export function loadNow(): number {
  return loadavg()[0] ?? 0;
}

export function machine(repoRoot: string, loadAtStart: number): Machine {
  let commit: string | undefined;
  try {
    commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    if (dirty) commit += ' + local changes';
  } catch {
    commit = undefined;
  }
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model.trim() ?? 'unknown CPU',
    memoryBytes: totalmem(),
    node: process.version,
    os: `${process.platform} ${release()} ${process.arch}`,
    commit,
    loadAtStart,
  };
}

const sec = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${(ms / 1000).toFixed(2)} s`);
const msf = (ms: number | undefined) => (ms === undefined ? 'n/a' : `${Math.round(ms)} ms`);
const mib = (b: number | undefined) => (b === undefined ? 'n/a' : `${Math.round(b / 1024 ** 2)} MiB`);
const size = (b: number | undefined) => {
  if (b === undefined || Number.isNaN(b)) return 'n/a';
  if (b >= 1024 ** 2) return `${(b / 1024 ** 2).toFixed(2)} MiB`;
  if (b >= 1024) return `${(b / 1024).toFixed(1)} KiB`;
  return `${Math.round(b)} B`;
};
const cpu = (s: number | undefined) => (s === undefined ? 'n/a' : `${s.toFixed(1)} s`);
const verdict = (ok: boolean | undefined) => (ok === undefined ? '' : ok ? ' (met)' : ' (MISSED)');

function avg(values: number[]): number | undefined {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : undefined;
}

function byProto(r: ScenarioResult, proto: 'sotw' | 'delta', f: (s: ScenarioResult['clientStats'][number]) => number): number | undefined {
  return avg(r.clientStats.filter((s) => s.protocol === proto && !s.error).map(f));
}

function pair(a: string, b: string): string {
  return `${a} / ${b}`;
}

/** The results table: one column per scenario. */
export function resultsTable(results: ScenarioResult[]): string {
  const head = ['', ...results.map((r) => `${r.clients} clients`), 'target'];
  const rows: string[][] = [];
  const row = (label: string, cell: (r: ScenarioResult) => string, target = '') => rows.push([label, ...results.map(cell), target]);

  row('Control plane start-up (config loaded, ADS serving)', (r) => sec(r.startupMs));
  row(
    'First full push to all clients (every client holds and ACKed CDS+EDS+LDS+RDS)',
    (r) => {
      const v = r.fullPush.allMs !== undefined ? sec(r.fullPush.allMs) : `incomplete: ${r.fullPush.completed}/${r.fullPush.clients}`;
      return r.clients === TARGETS.fullPushClients ? v + verdict(r.fullPush.allMs !== undefined && r.fullPush.allMs < TARGETS.fullPushMs) : v;
    },
    `< ${TARGETS.fullPushMs / 1000} s at ${TARGETS.fullPushClients} clients`,
  );
  row('  median client', (r) => sec(r.fullPush.p50Ms));
  row('  slowest SotW / Delta client', (r) => pair(sec(r.fullPush.byProtocol.sotw?.allMs), sec(r.fullPush.byProtocol.delta?.allMs)));
  row('Clients the control plane reports SYNCED (CDS, EDS, LDS, RDS)', (r) => (r.syncedByControlPlane === undefined ? 'n/a' : `${r.syncedByControlPlane}/${r.clients}`));
  for (const mode of ['file', 'api'] as const) {
    if (!results.some((r) => r.changes.some((c) => c.mode === mode))) continue;
    const label = mode === 'file' ? 'Endpoint change via config file: p50 / p99' : 'Endpoint change via registration API: p50 / p99';
    row(
      label,
      (r) => {
        const c = r.changes.find((x) => x.mode === mode);
        if (!c) return 'n/a';
        return (
          pair(msf(c.p50Ms), msf(c.p99Ms)) +
          verdict(c.p99Ms !== undefined && c.missed === 0 && c.p99Ms < TARGETS.changeP99Ms) +
          ` over ${c.rounds.length} change${c.rounds.length === 1 ? '' : 's'}` +
          (c.missed ? `, ${c.missed} not seen` : '')
        );
      },
      `p99 < ${TARGETS.changeP99Ms} ms`,
    );
    row('  p99 SotW / Delta; max', (r) => {
      const c = r.changes.find((x) => x.mode === mode);
      if (!c) return 'n/a';
      return `${pair(msf(c.byProtocol.sotw?.p99Ms), msf(c.byProtocol.delta?.p99Ms))}; ${msf(c.maxMs)}`;
    });
  }
  row('Control plane peak RSS (VmHWM)', (r) => mib(r.cp.peakRssBytes) + verdict(r.cp.peakRssBytes > 0 ? r.cp.peakRssBytes < TARGETS.rssBytes : undefined), '< 1 GiB');
  row('  RSS after start-up / after full push', (r) => pair(mib(r.cp.afterStartup?.rssBytes), mib(r.cp.afterFullPush?.rssBytes)));
  row('Control plane CPU, whole run (user+system)', (r) => cpu(r.cp.end?.cpuSeconds));
  row('  start-up / first full push / endpoint changes', (r) => {
    const a = r.cp.afterStartup?.cpuSeconds;
    const b = r.cp.afterFullPush?.cpuSeconds;
    const c = r.cp.end?.cpuSeconds;
    return [cpu(a), cpu(a !== undefined && b !== undefined ? b - a : undefined), cpu(b !== undefined && c !== undefined ? c - b : undefined)].join(' / ');
  });
  row('Client workers CPU, first full push (user+system, all workers)', (r) => cpu(r.workersFullPushCpuSeconds));
  row('Bytes pushed per client, first full push: SotW / Delta', (r) => pair(size(byProto(r, 'sotw', (s) => s.initialBytes)), size(byProto(r, 'delta', (s) => s.initialBytes))));
  row('Bytes pushed per client, whole run: SotW / Delta', (r) => pair(size(byProto(r, 'sotw', (s) => s.bytes)), size(byProto(r, 'delta', (s) => s.bytes))));
  const longest = (l: number[]) => msf(l.length ? Math.max(...l) : undefined);
  row('Pushes after start-up: full / EDS-only (longest of each, as logged)', (r) => `${r.pushes.full} / ${r.pushes.eds} (${longest(r.pushes.fullMs)} / ${longest(r.pushes.edsMs)})`);

  const widths = head.map((_, i) => Math.max(head[i]!.length, ...rows.map((x) => x[i]!.length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [line(head), `| ${widths.map((w, i) => (i === 0 ? '-'.repeat(w) : `${'-'.repeat(w - 1)}:`)).join(' | ')} |`, ...rows.map(line)].join('\n');
}

/** What each client received (the same for all clients; the first healthy one is shown). */
function clientView(results: ScenarioResult[]): string {
  const s = results.flatMap((r) => r.clientStats).find((x) => !x.error && x.completeAt !== undefined);
  if (!s) return 'no client received a full configuration';
  const c = s.counts;
  const t = s.initialBytesByType;
  return (
    `each client holds ${c.clusters} clusters (${c.edsClusters} EDS), ${c.assignments} ClusterLoadAssignments, ${c.listeners} listeners and ` +
    `${c.routeConfigs} RouteConfiguration${c.routeConfigs === 1 ? '' : 's'} with ${c.virtualHosts} virtual hosts; first full push by type ` +
    `(one ${s.protocol} client): CDS ${size(t.cds)}, EDS ${size(t.eds)}, LDS ${size(t.lds)}, RDS ${size(t.rds)}`
  );
}

function identities(results: ScenarioResult[]): string {
  const ids = new Set(results.map((r) => r.identities));
  if (ids.size === 1) return `${[...ids][0]} distinct proxy identities`;
  return results.map((r) => `${r.identities} distinct proxy identities at ${r.clients} clients`).join(', ');
}

export function describeRun(mesh: MeshSummary, results: ScenarioResult[], m: Machine): string {
  const first = results[0];
  const twoPort = mesh.services.filter((s) => s.ports.length > 1).length;
  const lines = [
    `Run ${m.date} on ${m.cpus} CPUs (${m.cpuModel}), ${(m.memoryBytes / 1024 ** 3).toFixed(1)} GiB RAM, Node ${m.node}, ${m.os}${m.commit ? `, weft ${m.commit}` : ''}; ` +
      `1-minute load average before the run ${m.loadAtStart.toFixed(2)} (other work on the machine skews the figures).`,
    '',
    `Mesh: ${mesh.services.length} Kubernetes Services (${twoPort} with a second, gRPC port) in ${mesh.namespaces.length} namespaces, ` +
      `${mesh.endpoints} WorkloadEntries (${mesh.shape.endpointsPerService} per service, 2 regions × 3 zones), ` +
      `${mesh.virtualServices} VirtualServices (header match, 90/10 subset split, retries, timeouts), ` +
      `${mesh.destinationRules} DestinationRules (2 subsets, outlier detection, connection pool, LEAST_REQUEST); ${clientView(results)}.`,
  ];
  if (first) {
    lines.push(
      '',
      `Clients: ${first.protocol === 'mixed' ? 'half SotW, half Delta' : first.protocol}, in ${first.workers} worker process(es); ` +
        `replicas of ${first.apps} apps in 2 zones (${identities(results)}).`,
    );
  }
  return lines.join('\n');
}

export const DOC_BEGIN = '<!-- bench:controlplane:begin -->';
export const DOC_END = '<!-- bench:controlplane:end -->';

const DOC_INTRO = `# Performance

How Weft performs, measured by the benchmarks under \`bench/\`. Each section is produced by its benchmark; the
figures are from one run on the machine named in it.
`;

export const SECTION_TEXT = `## Control plane

\`npm run bench:controlplane\` builds Weft, generates a mesh of 1,000 services × 10 endpoints with routes and
DestinationRules into a temporary directory (one YAML file per service), starts \`weft control-plane\` on it in
its own process, and connects simulated Envoys from worker processes: each one opens a real gRPC ADS stream (SotW
or Delta), subscribes to CDS (wildcard), then EDS for every EDS cluster it received, then — once every cluster has
its endpoints — LDS (wildcard), then RDS for the route names of its listeners, and ACKs every response, as Envoy
does. Like Envoy, a client's HTTP/2 flow-control windows are 256 MiB (Envoy's default
\`initial_stream_window_size\` and \`initial_connection_window_size\`), and every SotW request repeats the
whole subscription. To fit hundreds of clients in a few processes without changing what goes over the wire, a
client reads only the fields it needs from each response (resource names, a cluster's EDS service name, a
listener's route names, watched endpoint addresses), keeps the serialized names of its SotW subscriptions to
splice into each request, and shares the name strings it decodes with the other clients of its process. Each
client speaks gRPC over its own HTTP/2 connection with a small transport of the bench's (bench/controlplane/grpc.ts:
the same headers, framing and trailers as any gRPC client) that reads a response as it arrives, a top-level field
at a time straight from the received DATA frames, and applies and ACKs it once it is complete: assembling every
multi-megabyte response into a new buffer first, as @grpc/grpc-js's client does, cost the client processes
three times the CPU the reading itself does (500 clients: 36 → 12 CPU seconds under the same load), and the
client processes share the machine with the control plane. It runs with 100 and with 500 clients and measures:

- **first full push**: from the moment the clients start connecting until every client holds, and has ACKed,
  a complete CDS + EDS + LDS + RDS configuration;
- **endpoint-change convergence**: the address of one WorkloadEntry is changed in its config file (atomic
  rewrite), and separately a new workload is registered with \`POST /v1/workloads\`; measured from the change
  until each client has received a ClusterLoadAssignment with the new address; up to 10 changes of each kind
  (each kind has a 45 s budget per run, so a slow control plane makes fewer), percentiles across all clients
  and changes;
- **control-plane resources**: peak RSS (the kernel's VmHWM) and CPU seconds (utime + stime) of the control
  plane's process, from /proc, and the CPU seconds of the client processes during the first full push;
- **bytes pushed per client**: the sum of the serialized ADS responses a client received.

Targets (reported, not asserted): first full push to 500 clients < 5 s, endpoint-change p99 < 200 ms,
RSS < 1 GiB. Options: \`npm run bench:controlplane -- --help\`.
`;

/** Writes (or replaces) the control-plane results in docs/performance.md, keeping every other section. */
export function updatePerformanceDoc(path: string, body: string): void {
  const block = `${DOC_BEGIN}\n${body.trim()}\n${DOC_END}`;
  let text = existsSync(path) ? readFileSync(path, 'utf8') : DOC_INTRO;
  const b = text.indexOf(DOC_BEGIN);
  const e = text.indexOf(DOC_END);
  if (b >= 0 && e > b) {
    text = text.slice(0, b) + block + text.slice(e + DOC_END.length);
  } else if (/^## Control plane$/m.test(text)) {
    // The section exists without results: put them at its end (before the next section, if any).
    const start = text.search(/^## Control plane$/m);
    const next = text.slice(start + 1).search(/^## /m);
    const at = next < 0 ? text.length : start + 1 + next;
    text = `${text.slice(0, at).trimEnd()}\n\n${block}\n${next < 0 ? '' : `\n${text.slice(at)}`}`;
  } else {
    text = `${text.trimEnd()}\n\n${SECTION_TEXT}\n${block}\n`;
  }
  writeFileSync(path, text.endsWith('\n') ? text : `${text}\n`);
}
