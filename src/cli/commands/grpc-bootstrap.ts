/**
 * `weft grpc-bootstrap`: writes the xDS bootstrap file of a proxyless gRPC application (the file named by
 * GRPC_XDS_BOOTSTRAP), so that `xds:///host:port` targets are resolved by `weft control-plane`.
 *
 * The bootstrap itself is built by src/xds/grpc-bootstrap.ts (shared with the local runtime).
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { grpcBootstrap, type GrpcBootstrapOptions } from '../../xds/grpc-bootstrap.js';

export { grpcBootstrap, type GrpcBootstrap, type GrpcBootstrapOptions } from '../../xds/grpc-bootstrap.js';

export const DEFAULT_XDS_ADDRESS = '127.0.0.1:15010';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// Kubernetes label keys: optional DNS-subdomain prefix and a name of up to 63 characters.
const LABEL_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;

/** `--control-plane`: `host:port`, `[v6]:port` or a gRPC target URI (`dns:///host:port`); not an http URL. */
export function parseXdsAddress(v: string): string {
  const s = v.trim();
  if (/^https?:\/\//i.test(s)) throw new InvalidArgumentError('expected the xDS address host:port (e.g. 127.0.0.1:15010), not an HTTP URL; the xDS port is the one `weft control-plane --xds-port` prints');
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) && s.length > s.indexOf('://') + 3) return s;
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^\s:/[\]]+):(\d+)$/.exec(s);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError('expected host:port with a port 1-65535 (e.g. 127.0.0.1:15010)');
  return s;
}

export function parseNodeId(v: string): string {
  if (v === '' || /\s/.test(v)) throw new InvalidArgumentError('expected a non-empty node id without spaces');
  return v;
}

export function parseNamespace(v: string): string {
  if (!DNS_LABEL.test(v)) throw new InvalidArgumentError('expected a Kubernetes namespace (DNS label: lower-case letters, digits and -, at most 63 characters)');
  return v;
}

export function parseServiceAccount(v: string): string {
  if (!DNS_SUBDOMAIN.test(v) || v.length > 253) throw new InvalidArgumentError('expected a service account name (DNS subdomain: lower-case letters, digits, - and .)');
  return v;
}

/** `region`, `region/zone` or `region/zone/subzone`. */
export function parseLocality(v: string): { region: string; zone: string; sub_zone: string } {
  const parts = v.split('/');
  if (parts.length > 3 || parts.some((p) => p === '' || /\s/.test(p))) throw new InvalidArgumentError('expected region, region/zone or region/zone/subzone (non-empty parts, no spaces)');
  return { region: parts[0]!, zone: parts[1] ?? '', sub_zone: parts[2] ?? '' };
}

/** `k=v,k2=v2` with Kubernetes label syntax. */
export function parseLabels(v: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of v.split(',')) {
    if (item.trim() === '') continue;
    const eq = item.indexOf('=');
    if (eq < 0) throw new InvalidArgumentError(`label "${item}" is not key=value`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    const slash = key.lastIndexOf('/');
    const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
    const name = slash >= 0 ? key.slice(slash + 1) : key;
    if ((prefix !== undefined && (!DNS_SUBDOMAIN.test(prefix) || prefix.length > 253)) || !LABEL_NAME.test(name)) {
      throw new InvalidArgumentError(`label key "${key}" is not a Kubernetes label key ([prefix/]name, name: letters, digits, -, _ and ., at most 63 characters)`);
    }
    if (!LABEL_VALUE.test(value)) throw new InvalidArgumentError(`label value "${value}" of "${key}" is not a Kubernetes label value (letters, digits, -, _ and ., at most 63 characters)`);
    out[key] = value;
  }
  return out;
}

interface CliOptions {
  controlPlane: string;
  nodeId?: string;
  namespace: string;
  locality?: GrpcBootstrapOptions['locality'];
  labels?: Record<string, string>;
  serviceAccount: string;
  workloadName?: string;
  output?: string;
}

export function register(program: Command): void {
  program
    .command('grpc-bootstrap')
    .description('print (or write) the GRPC_XDS_BOOTSTRAP file of a proxyless gRPC client of the control plane')
    .option('--control-plane <address>', 'xDS address of the control plane (host:port)', parseXdsAddress, DEFAULT_XDS_ADDRESS)
    .option('--node-id <id>', 'node id (unique per client; default: sidecar~IP~WORKLOAD.NAMESPACE~NAMESPACE.svc.cluster.local)', parseNodeId)
    .option('--namespace <ns>', "the client's namespace (decides which services and routes it sees)", parseNamespace, 'default')
    .option('--locality <locality>', "the client's locality: region[/zone[/subzone]]", parseLocality)
    .option('--labels <labels>', "the client's labels: k=v,k2=v2 (route rules can match on them)", parseLabels)
    .option('--service-account <name>', "the client's service account", parseServiceAccount, 'default')
    .option('--workload-name <name>', 'workload name (default: the host name)')
    .option('-o, --output <file>', 'write the bootstrap to this file instead of standard output')
    .action((opts: CliOptions) => {
      const b = grpcBootstrap({
        controlPlane: opts.controlPlane,
        nodeId: opts.nodeId,
        namespace: opts.namespace,
        locality: opts.locality,
        labels: opts.labels ?? {},
        serviceAccount: opts.serviceAccount,
        workloadName: opts.workloadName,
      });
      const text = `${JSON.stringify(b, null, 2)}\n`;
      if (!opts.output) {
        process.stdout.write(text);
        return;
      }
      try {
        writeFileSync(opts.output, text);
      } catch (e) {
        process.stderr.write(`weft grpc-bootstrap: cannot write ${opts.output}: ${(e as Error).message}\n`);
        process.exitCode = 1;
      }
    });
}
