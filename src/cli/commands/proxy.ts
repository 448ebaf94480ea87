/**
 * `weft proxy --xds HOST:PORT --id ID [--namespace NS] [--service-account SA] [--labels k=v,...]
 * [--workload-port PORT[:TARGET][/PROTOCOL]...] [--upstream HOST:PORT=LOCALPORT...] [--admin-port 15000] [--outbound-port 15001] [--inbound-port 15006]
 * [--health-port 15021] [--stats-port 15090] [--locality r/z/s] [--drain-timeout 5] [--xds-protocol auto]`:
 * runs the xDS-driven sidecar (src/proxy/proxy.ts) until SIGINT / SIGTERM / POST /quitquitquit, then drains and
 * exits 0. Where it listens goes to stdout (one line per port, then `ready` once the first full config is in
 * force); the structured log (pino JSON) goes to stderr.
 *
 * Node metadata sent to the control plane (Istio keys, see src/controlplane/proxy.ts): NAMESPACE, LABELS,
 * SERVICE_ACCOUNT, WEFT_MODE `explicit`, WEFT_OUTBOUND_PORT, and WEFT_INBOUND from `--workload-port` (the sidecar
 * listens on PORT and forwards to the application on 127.0.0.1:TARGET, TARGET defaulting to PORT; PROTOCOL is an
 * Istio protocol name such as http or tcp), and WEFT_UPSTREAMS from `--upstream` (explicit-mode TCP upstreams: the
 * control plane gives the sidecar a listener `127.0.0.1_<LOCALPORT>` that proxies to service HOST port PORT, so an
 * application reaches a TCP service at 127.0.0.1:LOCALPORT). `--inbound-port` is the transparent-mode capture port and
 * `--stats-port` the Prometheus port (served on 0.0.0.0, as Istio's sidecar does, so Prometheus can scrape it); both
 * are announced in the metadata (`WEFT_INBOUND_CAPTURE_PORT`, `WEFT_STATS_PORT`).
 *
 * `--mode transparent` (WEFT_MODE transparent): the control plane sends Istio's capture listeners (virtualOutbound
 * on 15001, virtualInbound on 15006; see src/controlplane/translate/transparent.ts) and the proxy serves the DNS
 * proxy on 127.0.0.1:`--dns-port` (15053). iptables rules send the workload's traffic there (`weft netns-run`).
 *
 * `--gateway` (node metadata WEFT_PROXY_TYPE `router`, Istio's gateway proxy type): the proxy runs as an ingress or
 * egress gateway. It gets no sidecar listeners; its listeners come from the servers of the Gateways whose selector
 * matches `--labels` (Gateway API Gateways: the label `gateway.networking.k8s.io/gateway-name` in its namespace);
 * see docs/gateways.md.
 *
 * Workload identity (docs/security.md): with a token (`--token-file PATH` or env WEFT_TOKEN, from `weft token create`)
 * the proxy gets its certificate from the CSR service at `--ca-addr` (default: the xDS host, port 15012),
 * verifying the control plane with `--ca-root-file`, renews it at half its lifetime
 * (src/proxy/tls/identity), and takes its xDS over mTLS from that same TLS port instead of `--xds`.
 * Metrics (docs/metrics.md): `--metrics=false` turns off Istio's standard metrics and the peer metadata exchange;
 * `--workload-name` and `--cluster-id` (WORKLOAD_NAME, CLUSTER_ID) name the workload in their labels;
 * `--stats-tags istio` labels Envoy's stats with Istio's tag names (`cluster_name`) instead of Envoy's.
 *
 * `--concurrency N` (Envoy's worker count; default 1 = one process, as before): N worker processes share the
 * listeners and the primary serves the health, admin and stats ports for all of them (src/proxy/workers.ts).
 */
import { CERT_CHAIN_FILE, FileIdentity, KEY_FILE, ROOT_CERT_FILE } from '../../proxy/tls/file-identity.js';
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import type { JsonObject } from '@bufbuild/protobuf';
import { pino } from 'pino';
import { LOG_LEVELS } from '../../controlplane/log.js';
import { readFileSync } from 'node:fs';
import { Proxy } from '../../proxy/proxy.js';
import { IdentityAgent, IdentityRefusedError } from '../../proxy/tls/identity/index.js';
import { isProxyWorker, runPrimary, serveWorker } from '../../proxy/workers.js';
import { afterFirstConfig } from '../startup.js';
import { DEFAULT_DNS_PORT } from '../../proxy/dns/server.js';
import { parseLabels, parseLocality, parseNamespace, parseServiceAccount, parseXdsAddress } from './grpc-bootstrap.js';

export interface ProxyCliOptions {
  xds: string;
  id: string;
  namespace: string;
  serviceAccount: string;
  labels: Record<string, string>;
  workloadPort: WorkloadPort[];
  upstream: UpstreamPort[];
  adminPort: number;
  outboundPort: number;
  inboundPort: number;
  healthPort: number;
  statsPort: number;
  locality?: { region: string; zone: string; sub_zone: string };
  drainTimeout: number;
  xdsProtocol: 'auto' | 'delta' | 'sotw';
  logLevel: string;
  /** Worker processes (default 1: the proxy runs in this process). */
  concurrency?: number;
  /** `explicit` (applications address the sidecar) or `transparent` (iptables capture; WEFT_MODE). */
  mode?: 'explicit' | 'transparent';
  /** Transparent mode: the DNS proxy's port on 127.0.0.1 (Istio's 15053). */
  dnsPort?: number;
  /** Run as a gateway (Istio's `router` proxy type): listeners come from the Gateways that select it. */
  gateway?: boolean;
  /** A directory with cert-chain.pem, key.pem and root-cert.pem: the workload certificate (Istio's file-mounted certs). */
  certDir?: string;
  /** CSR service + mTLS xDS address (default: the xDS host, port 15012). */
  caAddr?: string;
  /** File holding the workload token (else env WEFT_TOKEN). */
  tokenFile?: string;
  /** Root certificate(s) that verify the control plane's TLS port. */
  caRootFile?: string;
  /** Istio's standard metrics and the peer metadata exchange (default true; `--metrics=false`). */
  metrics?: boolean;
  /** WORKLOAD_NAME (Istio: the Deployment's name); default: the node id's pod name, else the id. */
  workloadName?: string;
  /** CLUSTER_ID (Istio's default `Kubernetes`). */
  clusterId?: string;
  /** Tag extraction of Envoy's stats: `envoy` (default) or `istio`. */
  statsTags?: 'envoy' | 'istio';
}

/** The default CA address: the xDS address's host with port 15012. */
export function defaultCaAddr(xds: string): string {
  const m = /^(.*):(\d+)$/.exec(xds.replace(/^[a-z][a-z0-9+.-]*:\/\/\/?/i, ''));
  return `${m ? m[1] : xds}:15012`;
}

/** The bootstrap token source: the token file (re-read each time) or WEFT_TOKEN; undefined when neither is set. */
function tokenSource(opts: Pick<ProxyCliOptions, 'tokenFile'>): (() => string | undefined) | undefined {
  if (opts.tokenFile) {
    const file = opts.tokenFile;
    return () => {
      try {
        return readFileSync(file, 'utf8').trim() || undefined;
      } catch {
        return undefined;
      }
    };
  }
  const env = process.env.WEFT_TOKEN?.trim();
  return env ? () => env : undefined;
}

export interface WorkloadPort {
  port: number;
  targetPort: number;
  protocol?: string;
}

/** An explicit TCP upstream: service `host` port `port`, reached at 127.0.0.1:`localPort`. */
export interface UpstreamPort {
  host: string;
  port: number;
  localPort: number;
}

/** `HOST:PORT=LOCALPORT`. */
export function parseUpstream(v: string, prev: UpstreamPort[] = []): UpstreamPort[] {
  const m = /^([A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(\d+)=(\d+)$/.exec(v.trim());
  const port = m ? Number(m[2]) : NaN;
  const localPort = m ? Number(m[3]) : NaN;
  if (!m || port < 1 || port > 65535 || localPort < 1 || localPort > 65535) {
    throw new InvalidArgumentError('expected HOST:PORT=LOCALPORT, e.g. redis:6379=16379');
  }
  if (prev.some((u) => u.localPort === localPort)) throw new InvalidArgumentError(`local port ${localPort} is used twice`);
  return [...prev, { host: m[1]!, port, localPort }];
}

function portArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number 0-65535');
  return n;
}

/** `PORT[:TARGET][/PROTOCOL]`. */
export function parseWorkloadPort(v: string, prev: WorkloadPort[] = []): WorkloadPort[] {
  const m = /^(\d+)(?::(\d+))?(?:\/([A-Za-z0-9-]+))?$/.exec(v.trim());
  const port = m ? Number(m[1]) : NaN;
  const target = m?.[2] !== undefined ? Number(m[2]) : port;
  if (!m || port < 1 || port > 65535 || target < 1 || target > 65535) {
    throw new InvalidArgumentError('expected PORT[:TARGET][/PROTOCOL], e.g. 9080, 19080:9080/http');
  }
  const out: WorkloadPort = { port, targetPort: target };
  if (m[3]) out.protocol = m[3];
  return [...prev, out];
}

function concurrencyArg(v: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n < 1 || n > 256) throw new InvalidArgumentError('expected a number of workers 1-256');
  return n;
}

function booleanArg(v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InvalidArgumentError('expected true or false');
}

function secondsArg(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number of seconds');
  return n;
}

/** The node metadata `weft proxy` announces. */
export function proxyMetadata(
  o: Pick<ProxyCliOptions, 'namespace' | 'serviceAccount' | 'labels' | 'workloadPort' | 'outboundPort' | 'inboundPort' | 'statsPort' | 'mode' | 'workloadName' | 'clusterId' | 'gateway' | 'certDir'> & { upstream?: UpstreamPort[]; identity?: boolean },
): JsonObject {
  const md: JsonObject = {
    NAMESPACE: o.namespace,
    LABELS: o.labels,
    SERVICE_ACCOUNT: o.serviceAccount,
    WEFT_MODE: o.mode ?? 'explicit',
    WEFT_OUTBOUND_PORT: o.outboundPort,
    WEFT_INBOUND_CAPTURE_PORT: o.inboundPort,
    WEFT_STATS_PORT: o.statsPort,
  };
  if (o.gateway) md.WEFT_PROXY_TYPE = 'router';
  if (o.workloadPort.length) md.WEFT_INBOUND = o.workloadPort.map((w) => ({ ...w }) as JsonObject);
  if (o.workloadName) md.WORKLOAD_NAME = o.workloadName;
  if (o.clusterId) md.CLUSTER_ID = o.clusterId;
  if (o.upstream?.length) md.WEFT_UPSTREAMS = o.upstream.map((u) => ({ host: u.host, port: u.port, localPort: u.localPort }));
  // The proxy has a workload certificate: the control plane may send it mTLS configuration.
  if (o.identity || o.certDir) md.WEFT_WORKLOAD_IDENTITY = 'true';
  return md;
}

const SHUTDOWN_GRACE_MS = 5_000;

function banner(opts: ProxyCliOptions, ports: { health?: number; admin?: number; stats?: number; dns?: number }): string {
  const workers = (opts.concurrency ?? 1) > 1 ? ` (${opts.concurrency} workers)` : '';
  const traffic = opts.gateway
    ? '  mode: gateway (listeners from the Gateway servers that select this proxy)\n'
    : opts.mode === 'transparent'
      ? `  mode: transparent (virtualOutbound 0.0.0.0:15001, virtualInbound 0.0.0.0:15006 from the control plane)\n  dns: 127.0.0.1:${ports.dns ?? opts.dnsPort ?? DEFAULT_DNS_PORT}\n`
      : `  outbound: 127.0.0.1:${opts.outboundPort} (from the control plane's listener)\n`;
  return `weft proxy ${opts.id} started${workers}\n  xDS: ${opts.xds}${opts.tokenFile || process.env.WEFT_TOKEN ? ' (mTLS)' : ''}\n  health: http://0.0.0.0:${ports.health}/healthz/ready\n  admin: http://127.0.0.1:${ports.admin}\n  stats: http://0.0.0.0:${ports.stats}/stats/prometheus\n${traffic}`;
}

export async function runProxy(opts: ProxyCliOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const worker = isProxyWorker();
  const logger = pino(
    { level: opts.logLevel, base: { component: 'proxy', node: opts.id, ...(worker ? { worker: Number(process.env.WEFT_PROXY_WORKER) } : {}) }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: 2, sync: true }),
  );
  const drainMs = Math.round(opts.drainTimeout * 1000);
  if ((opts.concurrency ?? 1) > 1 && !worker) {
    return runPrimary({
      concurrency: opts.concurrency!,
      healthPort: opts.healthPort,
      adminPort: opts.adminPort,
      statsPort: opts.statsPort,
      drainTimeoutMs: drainMs,
      out,
      err,
      log: logger,
      banner: (ports) => banner(opts, ports),
    });
  }
  // A worker: the primary serves health, admin and stats; this process answers its admin requests over IPC
  // (its own admin interface listens on a port shared by the workers that nobody is told about).
  if (worker) out = () => undefined;
  let identity: IdentityAgent | FileIdentity | undefined;
  const token = tokenSource(opts);
  if (opts.certDir) {
    try {
      identity = await FileIdentity.open(opts.certDir);
    } catch (e) {
      err(`weft proxy: --cert-dir ${opts.certDir}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? `missing ${CERT_CHAIN_FILE}, ${KEY_FILE} or ${ROOT_CERT_FILE}` : (e as Error).message}\n`);
      return 1;
    }
  } else if (token) {
    if (opts.tokenFile && token() === undefined) {
      err(`weft proxy: the token file ${opts.tokenFile} cannot be read or is empty\n`);
      return 1;
    }
    if (!opts.caRootFile) {
      err('weft proxy: --ca-root-file is required with a token: the root certificate that verifies the control plane (root-cert.pem of its CA directory)\n');
      return 1;
    }
    let rootPem: string;
    try {
      rootPem = readFileSync(opts.caRootFile, 'utf8');
    } catch (e) {
      err(`weft proxy: cannot read --ca-root-file: ${(e as Error).message}\n`);
      return 1;
    }
    const caAddr = opts.caAddr ?? defaultCaAddr(opts.xds);
    identity = new IdentityAgent({ caAddr, token, rootPem, identity: { namespace: opts.namespace, serviceAccount: opts.serviceAccount }, logger });
    try {
      await identity.start();
    } catch (e) {
      identity.close();
      err(`weft proxy: cannot get the workload certificate from ${caAddr}: ${e instanceof IdentityRefusedError ? e.message : (e as Error).message}\n`);
      return 1;
    }
    opts = { ...opts, xds: caAddr };
  }
  const proxy = new Proxy({
    xds: opts.xds,
    ...(identity ? { identity } : {}),
    // The token identity also secures the xDS channel (mTLS to the control plane's TLS port).
    ...(identity instanceof IdentityAgent ? { xdsCredentials: identity.channelCredentials() } : {}),
    node: {
      id: opts.id,
      metadata: proxyMetadata({ ...opts, identity: identity !== undefined }),
      locality: opts.locality ? { region: opts.locality.region, zone: opts.locality.zone, subZone: opts.locality.sub_zone } : undefined,
      userAgentName: 'weft',
    },
    healthPort: worker ? undefined : opts.healthPort,
    adminPort: worker ? 0 : opts.adminPort,
    statsPort: worker ? undefined : opts.statsPort,
    version: '0.1.0',
    drainTimeoutMs: drainMs,
    protocol: opts.xdsProtocol,
    dns: opts.mode === 'transparent' ? { port: opts.dnsPort ?? DEFAULT_DNS_PORT } : undefined,
    metrics: opts.metrics ?? true,
    statsTags: opts.statsTags ?? 'envoy',
    logger,
  });
  try {
    await proxy.start();
  } catch (e) {
    const er = e as NodeJS.ErrnoException;
    err(`weft proxy: cannot start: ${er.code === 'EADDRINUSE' ? `address already in use (${er.message})` : er.message}\n`);
    await proxy.shutdown().catch(() => undefined);
    return 1;
  }
  out(banner(opts, { health: proxy.healthPort, admin: proxy.adminPort, stats: proxy.statsPort, dns: proxy.dns?.port }));
  proxy.client.on('nack', (e) => logger.warn({ typeUrl: e.typeUrl, version: e.version, error: e.message }, 'config rejected (NACK)'));
  proxy.client.on('ack', (e) => logger.debug({ typeUrl: e.typeUrl, version: e.version }, 'config applied'));
  proxy.ready.then(
    () => {
      afterFirstConfig();
      const ports = proxy.listeners.names().map((n) => `${n}=${proxy.listeners.port(n)}`).join(' ');
      out(`ready (listeners: ${ports || 'none'})\n`);
      logger.info({ listeners: proxy.listeners.names() }, 'ready: first full config applied');
    },
    () => undefined,
  );
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) return;
      stopping = true;
      logger.info({ why }, 'draining');
      setTimeout(() => {
        err('weft proxy: shutdown did not finish in time; exiting\n');
        process.exit(1);
      }, drainMs + SHUTDOWN_GRACE_MS).unref();
      void proxy.shutdown();
    };
    const onSignal = (s: NodeJS.Signals) => stop(s);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    if (worker) serveWorker({ admin: () => proxy.adminServer, listeners: () => proxy.listeners.names(), ready: proxy.ready, closed: proxy.closed, shutdown: () => stop('primary') });
    void proxy.closed.then(() => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      logger.info({}, 'stopped');
      resolve(0);
    });
  });
}

export function register(program: Command): void {
  program
    .command('proxy')
    .description('run the xDS-driven sidecar proxy (like Envoy with istio-agent)')
    .requiredOption('--xds <host:port>', 'xDS (ADS) address of the control plane', parseXdsAddress)
    .requiredOption('--id <id>', 'node id announced to the control plane')
    .option('--namespace <ns>', 'namespace of the workload', parseNamespace, 'default')
    .option('--service-account <sa>', 'service account of the workload', parseServiceAccount, 'default')
    .option('--labels <k=v,...>', 'labels of the workload', parseLabels, {})
    .option('--workload-port <PORT[:TARGET][/PROTOCOL]...>', 'inbound ports: listen on PORT, forward to 127.0.0.1:TARGET', parseWorkloadPort, [])
    .option('--upstream <HOST:PORT=LOCALPORT...>', 'explicit TCP upstreams: 127.0.0.1:LOCALPORT proxies to service HOST port PORT', parseUpstream, [])
    .option('--admin-port <port>', 'admin port (127.0.0.1)', portArg, 15000)
    .option('--outbound-port <port>', 'outbound HTTP listener port on 127.0.0.1 (WEFT_OUTBOUND_PORT)', portArg, 15001)
    .option('--inbound-port <port>', 'transparent-mode inbound capture port (announced only)', portArg, 15006)
    .addOption(new Option('--mode <mode>', 'explicit: applications address the sidecar; transparent: traffic is captured by iptables (see weft netns-run)').choices(['explicit', 'transparent']).default('explicit'))
    .option('--dns-port <port>', 'transparent mode: DNS proxy port on 127.0.0.1', portArg, DEFAULT_DNS_PORT)
    .option('--health-port <port>', 'health port: /healthz/ready', portArg, 15021)
    .option('--stats-port <port>', 'Prometheus stats port: /stats/prometheus on 0.0.0.0, as Istio (0 = any free port)', portArg, 15090)
    .option('--locality <region/zone/subzone>', 'locality of the workload', parseLocality)
    .option('--drain-timeout <seconds>', 'how long connections may take to drain on shutdown and listener changes', secondsArg, 5)
    .addOption(new Option('--xds-protocol <protocol>', 'xDS variant').choices(['auto', 'delta', 'sotw']).default('auto'))
    .addOption(new Option('--log-level <level>', 'log level').choices([...LOG_LEVELS]).default('info'))
    .option('--gateway', "run as an ingress/egress gateway (Istio's router proxy type): listeners come from the Gateways whose selector matches --labels")
    .option('--concurrency <n>', 'worker processes sharing the listeners (Envoy --concurrency)', concurrencyArg, 1)
    .option('--cert-dir <dir>', `workload certificate files (${CERT_CHAIN_FILE}, ${KEY_FILE}, ${ROOT_CERT_FILE}; reloaded when they change): enables mesh mTLS`)
    .option('--token-file <path>', 'workload token (weft token create) to get a certificate with; also env WEFT_TOKEN. Turns on mTLS xDS')
    .option('--ca-addr <host:port>', 'CSR service and mTLS xDS address (default: the --xds host, port 15012)', parseXdsAddress)
    .option('--ca-root-file <path>', 'root certificate that verifies the control plane (its CA directory root-cert.pem)')
    .option('--metrics <on>', "Istio's standard metrics (istio_requests_total, ...) and the peer metadata exchange: true or false", booleanArg, true)
    .option('--workload-name <name>', "the workload's name in metrics labels (WORKLOAD_NAME; default: the pod name of an Istio-style node id, else the id)")
    .option('--cluster-id <id>', 'the cluster in metrics labels (CLUSTER_ID)', 'Kubernetes')
    .addOption(new Option('--stats-tags <set>', "labels of Envoy's stats on /stats/prometheus: Envoy's default tags (envoy_cluster_name) or Istio's (cluster_name)").choices(['envoy', 'istio']).default('envoy'))
    .action(async (opts: ProxyCliOptions) => {
      process.exitCode = await runProxy(
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
