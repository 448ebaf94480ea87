/**
 * `weft down [--state-dir DIR] [--timeout SECONDS]`: asks the runtime of the state dir to stop (POST /v1/shutdown)
 * and waits until its process has exited. Nothing running there is not an error.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { liveRuntime, pidAlive } from '../../runtime/api.js';
import { DEFAULT_STATE_DIR } from './up.js';

function secondsArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number of seconds');
  return n;
}

export function register(program: Command): void {
  program
    .command('down')
    .description('stop the running `weft up` (apps, sidecars, control plane) and wait until it has exited')
    .option('--state-dir <dir>', 'state dir of the runtime', DEFAULT_STATE_DIR)
    .option('--timeout <seconds>', 'how long to wait for it to exit', secondsArg, 60)
    .action(async (opts: { stateDir: string; timeout: number }) => {
      const owner = await liveRuntime(opts.stateDir);
      if (!owner) {
        process.stdout.write(`no weft runtime runs from state dir ${opts.stateDir}\n`);
        return;
      }
      try {
        const r = await fetch(`${owner.api}/v1/shutdown`, { method: 'POST', signal: AbortSignal.timeout(5000) });
        await r.arrayBuffer();
        if (r.status !== 202) throw new Error(`HTTP ${r.status}`);
      } catch (e) {
        process.stderr.write(`weft down: the runtime (pid ${owner.pid}) did not accept the shutdown request at ${owner.api}: ${(e as Error).message}\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(`stopping the runtime (pid ${owner.pid})...\n`);
      const deadline = Date.now() + opts.timeout * 1000;
      while (pidAlive(owner.pid)) {
        if (Date.now() > deadline) {
          process.stderr.write(`weft down: pid ${owner.pid} still runs after ${opts.timeout} s\n`);
          process.exitCode = 1;
          return;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      process.stdout.write('stopped\n');
    });
}
