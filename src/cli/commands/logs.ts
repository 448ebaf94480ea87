/**
 * `weft logs NAME [-f] [--replica N] [--sidecar] [--state-dir DIR]`: prints the log of a LocalWorkload replica's
 * app (or, with --sidecar, of its sidecar) from `<stateDir>/logs/`, and with -f follows it until Ctrl-C. Works
 * after the runtime has stopped too (the files stay).
 */
import { existsSync, readdirSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { followLog, logFile, logsDir } from '../../runtime/logs.js';
import { DEFAULT_STATE_DIR } from './up.js';

function replicaArg(v: string): number {
  if (!/^\d+$/.test(v)) throw new InvalidArgumentError('expected a replica index (0, 1, ...)');
  return Number(v);
}

interface LogsOptions {
  follow?: boolean;
  replica: number;
  sidecar?: boolean;
  stateDir: string;
}

export function register(program: Command): void {
  program
    .command('logs')
    .description('print (and with -f follow) the log of a LocalWorkload replica run by `weft up`')
    .argument('<name>', 'LocalWorkload name')
    .option('-f, --follow', 'keep printing what is appended (Ctrl-C to stop)')
    .option('--replica <n>', 'replica index', replicaArg, 0)
    .option('--sidecar', "the sidecar's log instead of the app's")
    .option('--state-dir <dir>', 'state dir of the runtime', DEFAULT_STATE_DIR)
    .action(async (name: string, opts: LogsOptions) => {
      const path = logFile(opts.stateDir, name, opts.replica, opts.sidecar === true);
      if (!existsSync(path)) {
        const dir = logsDir(opts.stateDir);
        const known = existsSync(dir)
          ? [...new Set(readdirSync(dir).map((f) => /^(.+)-(\d+)\.log$/.exec(f)).filter((m) => m !== null).map((m) => `${m[1]} (replica ${m[2]})`))]
          : [];
        process.stderr.write(`weft logs: no log for ${name} replica ${opts.replica}${opts.sidecar ? ' (sidecar)' : ''} in ${dir}${known.length ? `; logs exist for: ${known.join(', ')}` : ''}\n`);
        process.exitCode = 1;
        return;
      }
      const ac = new AbortController();
      const stop = () => ac.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      await followLog(path, (b) => process.stdout.write(b), { follow: opts.follow === true, signal: ac.signal });
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    });
}
