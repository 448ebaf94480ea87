/**
 * `weft control-plane --config DIR [--xds-port 15010] [--http-port 15014] [--bind 127.0.0.1] [--secrets-dir DIR]`: runs Weft's xDS
 * control plane (src/controlplane) until SIGINT or SIGTERM, then shuts down cleanly and exits 0.
 * Where it listens goes to stdout; the structured log (pino JSON lines) goes to stderr.
 */
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { ControlPlane } from '../../controlplane/controlplane.js';
import { createLogger, LOG_LEVELS } from '../../controlplane/log.js';

export interface ControlPlaneCliOptions {
  config: string[];
  xdsPort: number;
  httpPort: number;
  bind: string;
  domain: string;
  logLevel: string;
  /** Gateway credentials directory (credentialName → SDS Secrets). */
  secretsDir?: string;
}

function portArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0 = any free port)');
  return n;
}

/** How long shutdown may take before the process is forced out (only reached if something is still open). */
const SHUTDOWN_GRACE_MS = 10_000;

/** Runs the control plane until a signal; returns the exit status. */
export async function runControlPlane(opts: ControlPlaneCliOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  for (const p of opts.config) {
    try {
      await stat(p);
    } catch {
      err(`weft control-plane: config path ${p} does not exist\n`);
      return 1;
    }
  }
  if (opts.secretsDir !== undefined) {
    const st = await stat(opts.secretsDir).catch(() => undefined);
    if (!st?.isDirectory()) {
      err(`weft control-plane: --secrets-dir ${opts.secretsDir} is not a directory\n`);
      return 1;
    }
  }
  const logger = createLogger({ level: opts.logLevel as 'info' });
  const cp = new ControlPlane({
    configPaths: opts.config,
    xdsPort: opts.xdsPort,
    httpPort: opts.httpPort,
    bind: opts.bind,
    domain: opts.domain,
    logger,
    ...(opts.secretsDir !== undefined ? { secretsDir: opts.secretsDir } : {}),
  });
  try {
    await cp.start();
  } catch (e) {
    const er = e as NodeJS.ErrnoException;
    err(`weft control-plane: cannot start: ${er.code === 'EADDRINUSE' ? `address already in use (${er.message})` : er.message}\n`);
    await cp.close().catch(() => undefined);
    return 1;
  }
  const host = cp.bind.includes(':') ? `[${cp.bind}]` : cp.bind;
  out(
    [
      `weft control plane ${cp.version} ready`,
      `  xDS (ADS over plaintext gRPC): ${host}:${cp.xdsPort}`,
      `  HTTP: http://${host}:${cp.httpPort}  (/ready /metrics /debug/syncz /debug/config_dump?proxy=ID /debug/registryz /v1/workloads)`,
      `  config: ${opts.config.join(', ')} (watched)`,
      ...(opts.secretsDir !== undefined ? [`  gateway credentials: ${opts.secretsDir} (watched)`] : []),
      '',
    ].join('\n'),
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        err(`weft control-plane: ${signal} again: exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      logger.info({ signal }, 'shutting down');
      // Fires only if something still holds the event loop open after close(): then exit anyway, with an error.
      setTimeout(() => {
        err('weft control-plane: shutdown left open handles; exiting\n');
        process.exit(1);
      }, SHUTDOWN_GRACE_MS).unref();
      cp.close().then(
        () => {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
          resolve(0);
        },
        (e: unknown) => {
          err(`weft control-plane: shutdown failed: ${(e as Error)?.message ?? String(e)}\n`);
          resolve(1);
        },
      );
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

export function register(program: Command): void {
  program
    .command('control-plane')
    .description("run Weft's xDS control plane (like istiod): watches config, serves ADS (SotW and Delta) and an HTTP status port")
    .requiredOption('-c, --config <paths...>', 'config files or directories (YAML/JSON, read recursively and watched)')
    .option('--xds-port <port>', 'ADS (gRPC) port', portArg, 15010)
    .option('--http-port <port>', 'HTTP port: /ready, /metrics, /debug/*, registration API', portArg, 15014)
    .option('--bind <address>', 'address both ports bind to', '127.0.0.1')
    .option('--domain <domain>', 'DNS domain of Kubernetes service hostnames', 'cluster.local')
    .option('--secrets-dir <dir>', 'gateway credentials (credentialName): <name>.crt/.key/.ca.crt or <name>/tls.crt,tls.key,ca.crt; served over SDS, watched')
    .addOption(new Option('--log-level <level>', 'log level').choices([...LOG_LEVELS]).default('info'))
    .action(async (opts: ControlPlaneCliOptions) => {
      process.exitCode = await runControlPlane(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
