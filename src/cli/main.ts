/** The `weft` command line. Usage errors (unknown option or value, missing argument) exit with status 2. */
import { Command, CommanderError } from 'commander';
import { registerAnalyzeCommand } from './commands/analyze.js';
import { register as registerControlPlane } from './commands/control-plane.js';
import { register as registerGrpcBootstrap } from './commands/grpc-bootstrap.js';
import { register as registerProxyConfig } from './commands/proxy-config.js';
import { register as registerProxyStatus } from './commands/proxy-status.js';
import { register as registerProxy } from './commands/proxy.js';
import { register as registerNetnsRun } from './commands/netns-run.js';

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
registerAnalyzeCommand(program);
registerControlPlane(program);
registerProxyStatus(program);
registerProxyConfig(program);
registerGrpcBootstrap(program);
registerProxy(program);
registerNetnsRun(program);

try {
  await program.parseAsync(process.argv);
} catch (e) {
  process.stderr.write(`weft: internal error: ${(e as Error)?.stack ?? String(e)}\n`);
  process.exit(1);
}
