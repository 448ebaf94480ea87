/**
 * `weft netns-run --workload NAME [--namespace NS] [--labels k=v,...] [--xds HOST:PORT] [--workload-port P[:T][/PROTO]...]
 * [--locality r/z/s] [--uid UID] [--sidecar-log] -- CMD [ARGS...]`: runs CMD as a mesh workload with a transparent
 * sidecar, as an Istio pod would run: in its own network namespace, its TCP traffic and DNS captured by iptables
 * into `weft proxy --mode transparent` (src/runtime/capture/). Needs root, iproute2, iptables and setpriv.
 *
 * CMD runs as root in the namespace (or as `--uid`); its exit status is the command's. On exit, SIGINT or SIGTERM
 * everything is removed: the command, the sidecar, the rules, the namespace and its veth pair. The sidecar's log
 * goes to stderr with `--sidecar-log`.
 */
import type { ChildProcess } from 'node:child_process';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { captureSupport, startCapturedWorkload } from '../../runtime/capture/index.js';
import type { CapturedWorkload } from '../../runtime/capture/index.js';
import { parseLabels, parseNamespace } from './grpc-bootstrap.js';

interface NetnsRunOptions {
  workload: string;
  namespace: string;
  labels: Record<string, string>;
  xds: string;
  workloadPort: string[];
  locality?: string;
  uid?: number;
  sidecarLog?: boolean;
}

function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

function uidArg(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError('expected a numeric uid');
  return n;
}

export async function runNetns(opts: NetnsRunOptions, cmd: string[], err: (s: string) => void): Promise<number> {
  const why = captureSupport();
  if (why) {
    err(`weft netns-run: ${why}\n`);
    return 1;
  }
  if (!cmd.length) {
    err('weft netns-run: a command is required after --\n');
    return 2;
  }
  let w: CapturedWorkload | undefined;
  let app: ChildProcess | undefined;
  let stopping = false;
  let cleaning: Promise<void> | undefined;
  // One cleanup, however many times it is asked for (the command's exit and a signal may both ask).
  const cleanup = () => (cleaning ??= doCleanup());
  const doCleanup = async () => {
    stopping = true;
    if (app && app.exitCode === null && app.signalCode === null) {
      const gone = new Promise((r) => app!.once('exit', r));
      app.kill('SIGTERM');
      const t = setTimeout(() => app!.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(t);
    }
    await w?.close();
  };
  const onSignal = (s: NodeJS.Signals) => {
    if (stopping) return;
    err(`weft netns-run: ${s}, cleaning up\n`);
    void cleanup().then(() => process.exit(130));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    w = await startCapturedWorkload({
      workload: opts.workload,
      namespace: opts.namespace,
      labels: opts.labels,
      xds: opts.xds,
      workloadPorts: opts.workloadPort,
      locality: opts.locality,
      onSidecarOutput: opts.sidecarLog ? (s) => err(s) : undefined,
    });
    err(`weft netns-run: ${opts.workload} in ${w.ns.name} at ${w.address} (host side ${w.hostAddress}), sidecar ready\n`);
    const a = w.spawn(cmd, { uid: opts.uid, gid: opts.uid });
    app = a;
    a.stdout?.pipe(process.stdout);
    a.stderr?.pipe(process.stderr);
    const code = await new Promise<number>((resolve) => {
      a.once('error', (e) => {
        err(`weft netns-run: cannot run ${cmd[0]}: ${e.message}\n`);
        resolve(127);
      });
      a.once('exit', (c, sig) => resolve(c ?? (sig ? 128 : 1)));
    });
    return code;
  } catch (e) {
    err(`weft netns-run: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  } finally {
    await cleanup();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export function register(program: Command): void {
  program
    .command('netns-run')
    .description('run a command as a mesh workload with a transparent sidecar (network namespace + iptables capture; needs root)')
    .requiredOption('--workload <name>', 'workload name (node id <name>.<namespace>)')
    .option('--namespace <ns>', 'mesh namespace of the workload', parseNamespace, 'default')
    .option('--labels <k=v,...>', 'labels of the workload', parseLabels, {})
    .option('--xds <host:port>', 'control plane ADS address (a loopback address is relayed into the namespace)', '127.0.0.1:15010')
    .option('--workload-port <PORT[:TARGET][/PROTOCOL]...>', 'inbound ports of the workload', collect, [])
    .option('--locality <region/zone/subzone>', 'locality of the workload')
    .option('--uid <uid>', 'run the command as this uid (default root)', uidArg)
    .option('--sidecar-log', "copy the sidecar's output to stderr")
    .argument('<command...>', 'the command to run (after --)')
    .action(async (cmd: string[], opts: NetnsRunOptions) => {
      process.exitCode = await runNetns(opts, cmd, (s) => process.stderr.write(s));
    });
}
