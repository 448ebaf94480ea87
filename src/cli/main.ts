/** The `weft` command line. */
import { Command } from 'commander';

const program = new Command();
program.name('weft').description('Weft service mesh').version('0.1.0');
await program.parseAsync(process.argv);
