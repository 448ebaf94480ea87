/**
 * `weft control-plane --config DIR [--xds-port 15010] [--xds-tls-port 15012] [--http-port 15014] [--bind 127.0.0.1]
 * [--state-dir .weft | --cacerts DIR] [--xds-plaintext=false] [--xds-plaintext-bind 127.0.0.1]`: runs Weft's xDS
 * control plane (src/controlplane) until SIGINT or SIGTERM, then shuts down cleanly and exits 0.
 * Where it listens goes to stdout; the structured log (pino JSON lines) goes to stderr.
 *
 * Security (docs/security.md): the CA lives in `<state-dir>/ca` (a self-signed root created on first start) or
 * is plugged in from `--cacerts DIR` (Istio's cacerts layout); the token key is `<state-dir>/ca/token-key.pem`.
 * The TLS port (`--xds-tls-port`, 15012) serves the CSR service and ADS over mTLS on `--bind`; the plaintext ADS
 * port binds `--xds-plaintext-bind` (loopback by default) and is off with `--xds-plaintext=false`. With
 * `--xds-port 0` and no `--xds-tls-port`, the TLS port is any free port too (test setups).
 */
import { stat } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import { parseDurationMs } from '../../api/schema/common.js';
import { DEFAULT_MAX_WORKLOAD_TTL_MS, DEFAULT_WORKLOAD_TTL_MS } from '../../controlplane/ca/ca.js';
import { tokenKeyPath } from '../../controlplane/ca/token.js';
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
  /** Undefined: 15012, or 0 when xdsPort is 0. */
  xdsTlsPort?: number;
  xdsPlaintext: boolean;
  xdsPlaintextBind: string;
  stateDir: string;
  cacerts?: string;
  workloadCertTtl: number;
  maxWorkloadCertTtl: number;
}

function boolArg(v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InvalidArgumentError('expected true or false');
}

function durationArg(v: string): number {
  const ms = parseDurationMs(v);
  if (ms === undefined || ms < 1000) throw new InvalidArgumentError('expected a duration of at least 1s, such as 24h or 90m');
  return ms;
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
  if (opts.cacerts) {
    try {
      await stat(opts.cacerts);
    } catch {
      err(`weft control-plane: --cacerts ${opts.cacerts} does not exist\n`);
      return 1;
    }
  }
  if (opts.workloadCertTtl > opts.maxWorkloadCertTtl) {
    err('weft control-plane: --workload-cert-ttl is longer than --max-workload-cert-ttl\n');
    return 1;
  }
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
    bind: opts.bind,
    domain: opts.domain,
    logger,
    xdsPlaintext: opts.xdsPlaintext,
    xdsPlaintextBind: opts.xdsPlaintextBind,
    security: {
      caDir: opts.cacerts ? resolvePath(opts.cacerts) : resolvePath(opts.stateDir, 'ca'),
      createCa: !opts.cacerts,
      tokenKeyPath: resolvePath(tokenKeyPath(opts.stateDir)),
      xdsTlsPort: opts.xdsTlsPort ?? (opts.xdsPort === 0 ? 0 : 15012),
      workloadTtlMs: opts.workloadCertTtl,
      maxWorkloadTtlMs: opts.maxWorkloadCertTtl,
    },
  });
  try {
    await cp.start();
  } catch (e) {
    const er = e as NodeJS.ErrnoException;
    err(`weft control-plane: cannot start: ${er.code === 'EADDRINUSE' ? `address already in use (${er.message})` : er.message}\n`);
    await cp.close().catch(() => undefined);
    return 1;
  }
  const br = (a: string) => (a.includes(':') ? `[${a}]` : a);
  const host = br(cp.bind);
  const ca = cp.ca!;
  out(
    [
      `weft control plane ${cp.version} ready`,
      cp.xdsPort !== undefined ? `  xDS (ADS over plaintext gRPC): ${br(cp.xdsPlaintextBind)}:${cp.xdsPort}` : '  xDS plaintext: off',
      `  xDS over TLS (ADS over mTLS + CSR service): ${host}:${cp.xdsTlsPort}`,
      `  CA: ${ca.dir} (${ca.selfSigned ? 'self-signed root' : 'intermediate under a plugged-in root'}, trust domain ${ca.trustDomain}); root certificate ${join(ca.dir ?? '', 'root-cert.pem')}`,
      `  HTTP: http://${host}:${cp.httpPort}  (/ready /metrics /debug/syncz /debug/config_dump?proxy=ID /debug/registryz /v1/workloads)`,
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
    .option('--xds-tls-port <port>', 'TLS xDS port: CSR service and ADS over mTLS (default 15012; any free port when --xds-port is 0)', portArg)
    .option('--xds-plaintext <bool>', 'serve plaintext ADS on --xds-port (true|false)', boolArg, true)
    .option('--xds-plaintext-bind <address>', 'address the plaintext ADS port binds to', '127.0.0.1')
    .option('--bind <address>', 'address the TLS xDS and HTTP ports bind to', '127.0.0.1')
    .option('--state-dir <dir>', 'state directory: the self-signed CA in <dir>/ca, the token key <dir>/ca/token-key.pem', '.weft')
    .option('--cacerts <dir>', "plug in a CA from Istio's cacerts layout (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem) instead of the self-signed root")
    .option('--workload-cert-ttl <duration>', 'default TTL of workload certificates', durationArg, DEFAULT_WORKLOAD_TTL_MS)
    .option('--max-workload-cert-ttl <duration>', 'longest workload certificate TTL a proxy may ask for', durationArg, DEFAULT_MAX_WORKLOAD_TTL_MS)
    .option('--domain <domain>', 'DNS domain of Kubernetes service hostnames', 'cluster.local')
    .addOption(new Option('--log-level <level>', 'log level').choices([...LOG_LEVELS]).default('info'))
    .action(async (opts: ControlPlaneCliOptions) => {
      process.exitCode = await runControlPlane(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
