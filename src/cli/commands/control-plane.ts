/**
 * `weft control-plane --config DIR [--xds-port 15010] [--http-port 15014] [--bind 127.0.0.1] [--prometheus URL]`:
 * runs Weft's xDS control plane (src/controlplane) until SIGINT or SIGTERM, then shuts down cleanly and exits 0.
 * The dashboard is on the HTTP port under /dashboard/; its numbers come from the proxies' Istio metrics, scraped
 * every 2 s, or from Prometheus' query API with `--prometheus` (src/controlplane/telemetry).
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
  /** Prometheus' URL: the telemetry queries it instead of scraping the proxies. */
  prometheus?: string;
}

function portArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535 (0 = any free port)');
  return n;
}

function prometheusArg(v: string): string {
  if (!/^https?:\/\/[^/\s]+/.test(v)) throw new InvalidArgumentError('expected an http(s) URL, e.g. http://127.0.0.1:9090');
  return v.replace(/\/+$/, '');
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
  const logger = createLogger({ level: opts.logLevel as 'info' });
  const cp = new ControlPlane({
    configPaths: opts.config,
    xdsPort: opts.xdsPort,
    httpPort: opts.httpPort,
    ...(opts.prometheus ? { telemetry: { prometheus: opts.prometheus } } : {}),
    bind: opts.bind,
    domain: opts.domain,
    logger,
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
      `  HTTP: http://${host}:${cp.httpPort}  (/ready /metrics /debug/syncz /debug/config_dump?proxy=ID /debug/registryz /v1/workloads /api/mesh)`,
      `  dashboard: http://${host}:${cp.httpPort}/dashboard/`,
      `  config: ${opts.config.join(', ')} (watched)`,
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
    .option('--prometheus <url>', "read the mesh's golden metrics from this Prometheus (query API) instead of scraping the proxies", prometheusArg)
    .addOption(new Option('--log-level <level>', 'log level').choices([...LOG_LEVELS]).default('info'))
    .action(async (opts: ControlPlaneCliOptions) => {
      process.exitCode = await runControlPlane(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
