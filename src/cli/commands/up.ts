/**
 * `weft up -f PATH... [--state-dir DIR] [--api-port N]`: runs a mesh on this machine in the foreground (the local
 * runtime, src/runtime): an embedded control plane and every LocalWorkload replica with its sidecar. Prints
 * progress lines, then the workload table once every replica is ready (or has failed once and is retried), then
 * what happens (restarts, config reloads). SIGINT / SIGTERM / `weft down` drain and stop everything; exit 0.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { RuntimeAlreadyRunningError, startRuntime, type Runtime, type RuntimeEvent } from '../../runtime/index.js';
import { formatStatus } from '../../runtime/format.js';

export const DEFAULT_STATE_DIR = '.weft';

export function portArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0 = any free port)');
  return n;
}

interface UpOptions {
  file: string[];
  stateDir: string;
  apiPort: number;
}

function line(e: RuntimeEvent): string {
  const time = new Date().toISOString().slice(11, 19);
  return `${time} ${e.message}\n`;
}

export async function runUp(opts: UpOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let rt: Runtime;
  try {
    rt = await startRuntime({ configPaths: opts.file, stateDir: opts.stateDir, apiPort: opts.apiPort, onEvent: (e) => out(line(e)) });
  } catch (e) {
    err(`weft up: ${e instanceof RuntimeAlreadyRunningError ? e.message : `cannot start: ${(e as Error).message}`}\n`);
    return 1;
  }
  let signalled = false;
  const onSignal = (s: NodeJS.Signals) => {
    if (signalled) {
      err(`weft up: ${s} again: still stopping (apps get SIGKILL after their grace period)\n`);
      return;
    }
    signalled = true;
    out(`${s}: draining and stopping everything\n`);
    void rt.stop();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  void rt.ready().then(() => {
    if (!signalled) out(`\n${formatStatus(rt.status())}\n`);
  });
  await rt.stopped;
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  return 0;
}

export function register(program: Command): void {
  program
    .command('up')
    .description('run a mesh locally: an embedded control plane and every LocalWorkload with its sidecar (foreground; Ctrl-C stops)')
    .requiredOption('-f, --file <paths...>', 'mesh config files or directories (YAML/JSON, watched: edits apply live)')
    .option('--state-dir <dir>', 'where runtime.json, logs/ and bootstrap/ go', DEFAULT_STATE_DIR)
    .option('--api-port <port>', 'port of the runtime API on 127.0.0.1 (0 = any free port)', portArg, 0)
    .action(async (opts: UpOptions) => {
      process.exitCode = await runUp(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
