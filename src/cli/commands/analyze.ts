/**
 * `weft analyze [-o text|json] PATH...`: validates config files and directories and runs the analyzers
 * (src/analyze), like `istioctl analyze`. Exit status: 0 without Error messages, 1 with at least one (an
 * unreadable path is an Error message), 2 for usage errors (set by the program's exit override).
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import type { Severity } from '../../api/diagnostics.js';
import { analyzePaths, hasErrors } from '../../analyze/index.js';
import type { AnalysisMessage } from '../../analyze/index.js';
import { formatText, summary, toJson } from '../../analyze/format.js';

const LEVEL: Record<Severity, number> = { Info: 0, Warning: 1, Error: 2 };

export interface AnalyzeCliOptions {
  output: 'text' | 'json';
  outputThreshold: Severity;
}

/** Runs the command and returns the exit status (never throws). */
export async function runAnalyze(paths: string[], opts: AnalyzeCliOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let messages: AnalysisMessage[];
  let files: string[] = [];
  try {
    ({ messages, files } = await analyzePaths(paths));
  } catch (e) {
    messages = [{ severity: 'Error', code: 'WFT0001', message: `internal error: ${(e as Error)?.message ?? String(e)}`, hint: 'this is a bug in Weft; please report it with the config that triggers it' }];
  }
  const shown = messages.filter((m) => LEVEL[m.severity] >= LEVEL[opts.outputThreshold]);
  if (opts.output === 'json') {
    out(`${JSON.stringify(shown.map(toJson), null, 2)}\n`);
  } else {
    for (const m of shown) out(`${formatText(m)}\n`);
    err(`analyzed ${files.length} file${files.length === 1 ? '' : 's'}: ${summary(messages)}\n`);
  }
  return hasErrors(messages) ? 1 : 0;
}

export function registerAnalyzeCommand(program: Command): Command {
  return program
    .command('analyze')
    .description('validate mesh configuration files and report problems (like istioctl analyze)')
    .argument('<paths...>', 'config files or directories (YAML/JSON, read recursively)')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
    .addOption(new Option('--output-threshold <level>', 'lowest severity to print').choices(['Info', 'Warning', 'Error']).default('Info'))
    .action(async (paths: string[], opts: AnalyzeCliOptions) => {
      process.exitCode = await runAnalyze(
        paths,
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
