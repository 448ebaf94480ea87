/**
 * `weft proxy-status [PROXY] [--control-plane URL] [-o text|json]`: the xDS sync state of every proxy connected
 * to the control plane, like `istioctl proxy-status`: one row per proxy with NAME (the node id), the state of CDS,
 * LDS, EDS and RDS (SYNCED, NOT SENT, STALE, STALE (Never Acknowledged), NACKED), the control plane's id and
 * version. `-o json` prints /debug/syncz as is (with NACK error messages in full).
 */
import type { Command } from 'commander';
import { Option } from 'commander';

export const DEFAULT_CONTROL_PLANE = 'http://127.0.0.1:15014';

/** The control plane URL: the option, else $WEFT_CONTROL_PLANE, else the default. */
export function controlPlaneUrl(opt: string | undefined): string {
  return (opt ?? process.env.WEFT_CONTROL_PLANE ?? DEFAULT_CONTROL_PLANE).replace(/\/+$/, '');
}

export class ControlPlaneError extends Error {}

/** GETs a JSON document from the control plane (or `what`); throws ControlPlaneError with a readable message. */
export async function fetchJson(base: string, path: string, what = 'the control plane'): Promise<unknown> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(15_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    throw new ControlPlaneError(`cannot reach ${what} at ${base}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new ControlPlaneError(`${what} at ${base} answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const msg = body && typeof body === 'object' && 'error' in body ? String((body as { error: unknown }).error) : `HTTP ${res.status}`;
    throw new ControlPlaneError(msg);
  }
  return body;
}

/** Left-aligned columns separated by at least three spaces (like Go's tabwriter as istioctl uses it). */
export function formatTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join('').trimEnd()).join('\n') + (rows.length ? '\n' : '');
}

interface TypeStatus {
  state: string;
  ackedVersion?: string;
  nack?: { message: string };
}

interface ProxyStatusJson {
  id: string;
  controlPlaneId: string;
  controlPlaneVersion: string;
  xds: Record<string, TypeStatus | undefined>;
}

const SHORT_ERROR = 40;

/** A type's state as the table shows it. */
export function stateText(t: TypeStatus | undefined): string {
  if (!t) return 'NOT SENT';
  if (t.state === 'STALE' && t.ackedVersion === undefined) return 'STALE (Never Acknowledged)';
  if (t.state === 'NACKED' && t.nack) {
    const m = t.nack.message.replace(/\s+/g, ' ').trim();
    return `NACKED (${m.length > SHORT_ERROR ? `${m.slice(0, SHORT_ERROR - 1)}…` : m})`;
  }
  return t.state;
}

export interface ProxyStatusCliOptions {
  controlPlane?: string;
  output: 'text' | 'json';
}

export async function runProxyStatus(filter: string | undefined, opts: ProxyStatusCliOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const base = controlPlaneUrl(opts.controlPlane);
  let list: ProxyStatusJson[];
  try {
    list = (await fetchJson(base, '/debug/syncz')) as ProxyStatusJson[];
  } catch (e) {
    err(`weft proxy-status: ${(e as Error).message}\n`);
    return 1;
  }
  if (!Array.isArray(list)) {
    err(`weft proxy-status: unexpected answer from ${base}/debug/syncz\n`);
    return 1;
  }
  const shown = filter ? list.filter((p) => p.id.includes(filter)) : list;
  if (opts.output === 'json') {
    out(`${JSON.stringify(shown, null, 2)}\n`);
    return 0;
  }
  const rows = [['NAME', 'CDS', 'LDS', 'EDS', 'RDS', 'CONTROL PLANE', 'VERSION']];
  for (const p of shown) rows.push([p.id, stateText(p.xds.CDS), stateText(p.xds.LDS), stateText(p.xds.EDS), stateText(p.xds.RDS), p.controlPlaneId, p.controlPlaneVersion]);
  out(formatTable(rows));
  if (filter && shown.length === 0) err(`weft proxy-status: no connected proxy matches ${JSON.stringify(filter)}\n`);
  return 0;
}

export function register(program: Command): void {
  program
    .command('proxy-status')
    .alias('ps')
    .description('show the xDS sync state of the proxies connected to the control plane (like istioctl proxy-status)')
    .argument('[proxy]', 'show only proxies whose id contains this')
    .option('--control-plane <url>', `control plane HTTP address (default: $WEFT_CONTROL_PLANE or ${DEFAULT_CONTROL_PLANE})`)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (proxy: string | undefined, opts: ProxyStatusCliOptions) => {
      process.exitCode = await runProxyStatus(
        proxy,
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
