/**
 * `weft dashboard [--control-plane URL] [--open]`: prints the URL of the dashboard the control plane serves
 * (`<control plane>/dashboard/`, docs/dashboard.md) after checking that it answers, and with `--open` opens it in
 * the desktop's browser (xdg-open, open or start).
 */
import { spawn } from 'node:child_process';
import type { Command } from 'commander';
import { controlPlaneUrl, DEFAULT_CONTROL_PLANE } from './proxy-status.js';

export async function runDashboard(opts: { controlPlane?: string; open?: boolean }, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const url = `${controlPlaneUrl(opts.controlPlane)}/dashboard/`;
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (e) {
    const cause = (e as { cause?: { code?: string } }).cause;
    err(`weft dashboard: cannot reach the control plane at ${url}: ${cause?.code ?? (e as Error).message}\n`);
    return 1;
  }
  const body = await res.text();
  if (res.status !== 200) {
    let msg = `HTTP ${res.status}`;
    try {
      msg = (JSON.parse(body) as { error?: string }).error ?? msg;
    } catch {
      // not JSON: keep the status
    }
    err(`weft dashboard: ${url}: ${msg}\n`);
    return 1;
  }
  out(`${url}\n`);
  if (opts.open) {
    const cmd = process.platform === 'darwin' ? ['open', url] : process.platform === 'win32' ? ['cmd', '/c', 'start', '', url] : ['xdg-open', url];
    const child = spawn(cmd[0]!, cmd.slice(1), { detached: true, stdio: 'ignore' });
    child.on('error', (e) => err(`weft dashboard: cannot open a browser (${e.message}); open the URL above\n`));
    child.unref();
  }
  return 0;
}

export function register(program: Command): void {
  program
    .command('dashboard')
    .description("print (and with --open, open) the URL of the dashboard served by the control plane")
    .option('--control-plane <url>', `control plane HTTP address (default: $WEFT_CONTROL_PLANE or ${DEFAULT_CONTROL_PLANE})`)
    .option('--open', "open it in the desktop's browser")
    .action(async (opts: { controlPlane?: string; open?: boolean }) => {
      process.exitCode = await runDashboard(opts, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
    });
}
