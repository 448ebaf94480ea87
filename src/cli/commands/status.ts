/**
 * `weft status [--state-dir DIR] [-o text|json]`: the status of the runtime `weft up` runs from the state dir
 * (GET /v1/status of its API, found in `<stateDir>/runtime.json`): a table of workload replicas, or the
 * RuntimeStatus JSON. Exit 1 when no runtime runs there.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import { fetchStatus, liveRuntime } from '../../runtime/api.js';
import { formatStatus } from '../../runtime/format.js';
import { DEFAULT_STATE_DIR } from './up.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('show the workloads of the running `weft up`: replicas, phase, ready, restarts, ports')
    .option('--state-dir <dir>', 'state dir of the runtime', DEFAULT_STATE_DIR)
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .action(async (opts: { stateDir: string; output: 'text' | 'json' }) => {
      const owner = await liveRuntime(opts.stateDir);
      const status = owner ? await fetchStatus(owner.api) : undefined;
      if (!status) {
        process.stderr.write(`weft status: no weft runtime runs from state dir ${opts.stateDir} (start one with \`weft up -f DIR\`)\n`);
        process.exitCode = 1;
        return;
      }
      process.stdout.write(opts.output === 'json' ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
    });
}
