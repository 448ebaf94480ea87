/** The `weft` command line. Usage errors (unknown option or value, missing argument) exit with status 2. */
import './startup.js'; // first: V8 settings that must precede loading the commands
import { Command, CommanderError } from 'commander';

/**
 * The commands (name and aliases → module), in help order. Only the command being run is loaded (all of them for
 * the help listing or an unknown command): a sidecar (`weft proxy`) does not carry the control plane and the
 * config model in its memory.
 */
const COMMANDS: Array<[names: string[], load: () => Promise<(program: Command) => void>]> = [
  [['analyze'], async () => (await import('./commands/analyze.js')).registerAnalyzeCommand],
  [['control-plane'], async () => (await import('./commands/control-plane.js')).register],
  [['token'], async () => (await import('./commands/token.js')).register],
  [['proxy-status', 'ps'], async () => (await import('./commands/proxy-status.js')).register],
  [['proxy-config', 'pc'], async () => (await import('./commands/proxy-config.js')).register],
  [['grpc-bootstrap'], async () => (await import('./commands/grpc-bootstrap.js')).register],
  [['proxy'], async () => (await import('./commands/proxy.js')).register],
  [['netns-run'], async () => (await import('./commands/netns-run.js')).register],
  [['up'], async () => (await import('./commands/up.js')).register],
  [['status'], async () => (await import('./commands/status.js')).register],
  [['logs'], async () => (await import('./commands/logs.js')).register],
  [['down'], async () => (await import('./commands/down.js')).register],
  [['demo'], async () => (await import('./commands/demo.js')).register],
];

// Output piped into a command that stops reading (`weft analyze . | head`) is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw e;
  });
}

const program = new Command();
program
  .name('weft')
  .description('Weft service mesh')
  .version('0.1.0')
  .exitOverride((err: CommanderError) => {
    const ok = err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
    process.exit(ok ? 0 : 2);
  });
const named = COMMANDS.find(([names]) => names.includes(process.argv[2] ?? ''));
for (const [, load] of named ? [named] : COMMANDS) (await load())(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`weft: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
}
