/**
 * `weft token create --namespace NS --service-account SA [--ttl 24h] [--state-dir .weft]`: mints a Weft workload
 * token (a JWT bound to the namespace and service account, see src/controlplane/ca/token.ts) with the control
 * plane's token key in `<state-dir>/ca/token-key.pem`, creating the key if it does not exist yet, and prints it
 * on stdout. A proxy presents it to the CSR service (`weft proxy --token-file`, or `WEFT_TOKEN`) to get its
 * workload certificate. Anyone who can read the token key can mint tokens for every identity: keep the state
 * directory private.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { parseDurationMs } from '../../api/schema/common.js';
import { loadOrCreateTokenKey, TokenIssuer, tokenKeyPath } from '../../controlplane/ca/token.js';
import { parseNamespace, parseServiceAccount } from './grpc-bootstrap.js';

export interface TokenCreateOptions {
  namespace: string;
  serviceAccount: string;
  ttl: number;
  stateDir: string;
}

function ttlArg(v: string): number {
  const ms = parseDurationMs(v);
  if (ms === undefined || ms < 1000) throw new InvalidArgumentError('expected a duration of at least 1s, such as 1h, 30m or 24h');
  return ms;
}

/** Mints a token; returns the exit status. */
export async function runTokenCreate(opts: TokenCreateOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  let key;
  try {
    key = await loadOrCreateTokenKey(tokenKeyPath(opts.stateDir));
  } catch (e) {
    err(`weft token create: ${(e as Error).message}\n`);
    return 1;
  }
  const token = await new TokenIssuer(key).create({ namespace: opts.namespace, serviceAccount: opts.serviceAccount }, opts.ttl);
  out(`${token}\n`);
  return 0;
}

export function register(program: Command): void {
  const token = program.command('token').description('workload tokens: what a proxy presents to the CA to get its certificate');
  token
    .command('create')
    .description('mint a workload token bound to a namespace and service account (printed on stdout)')
    .requiredOption('--namespace <ns>', 'namespace of the identity', parseNamespace)
    .requiredOption('--service-account <sa>', 'service account of the identity', parseServiceAccount)
    .option('--ttl <duration>', 'how long the token is valid (Go duration: 1h, 30m, 24h)', ttlArg, 24 * 3600_000)
    .option('--state-dir <dir>', "the control plane's state directory (the token key is <dir>/ca/token-key.pem)", '.weft')
    .action(async (opts: TokenCreateOptions) => {
      process.exitCode = await runTokenCreate(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
