/**
 * A workload with a transparent sidecar, Istio-style, on one machine: `startCapturedWorkload` creates a network
 * namespace (netns.ts), installs the capture rules (iptables.ts; the sidecar's uid is exempt, so its own xDS
 * connection is never captured), starts `weft proxy --mode transparent` inside it under the sidecar uid (Istio's
 * 1337, via `setpriv`), waits for its first full config and returns a handle to run the application in the
 * namespace.
 *
 *   const w = await startCapturedWorkload({ workload: 'productpage', xds: '127.0.0.1:15010' });
 *   const app = w.spawn(['curl', 'http://reviews:9080/']);   // its TCP and DNS go through the sidecar
 *   await w.close();                                          // sidecar, rules, namespace, veth: gone
 *
 * The control plane is reached from the namespace on the host side of the veth pair: when `xds` is a loopback
 * address, a relay on `<host veth address>:<port>` forwards to it (the relay runs in this process). The
 * namespace's resolv.conf keeps the host's nameservers (queries to them are captured to the DNS proxy) and adds
 * Kubernetes' search list for the workload's namespace (`<ns>.svc.cluster.local svc.cluster.local cluster.local`),
 * so short names such as `reviews` resolve as in a pod.
 *
 * This is the one call the local runtime makes for a LocalWorkload with `capture: transparent`.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { natRules } from './iptables.js';
import { CaptureError, cleanupLeftovers, createVethNamespace, spawnInNamespace, writeNetnsResolvConf, type NetNamespace } from './netns.js';
import { resolvConfNameservers } from '../../proxy/dns/server.js';

/** Istio's sidecar uid/gid. */
export const PROXY_UID = 1337;
const OUTBOUND_CAPTURE_PORT = 15001;
const INBOUND_CAPTURE_PORT = 15006;
const DNS_PORT = 15053;
const WEFT_BIN = fileURLToPath(new URL('../../../../bin/weft.js', import.meta.url));

export interface CapturedWorkloadOptions {
  /** Workload name (node id `<workload>.<namespace>`, WORKLOAD_NAME). */
  workload: string;
  /** Mesh namespace of the workload (default `default`). */
  namespace?: string;
  labels?: Record<string, string>;
  serviceAccount?: string;
  /** `host:port` of the control plane's ADS port. */
  xds: string;
  /** Inbound ports of the workload: `PORT[:TARGET][/PROTOCOL]` (weft proxy --workload-port). */
  workloadPorts?: string[];
  /** `region/zone/subzone`. */
  locality?: string;
  /** Mesh DNS domain (default cluster.local). */
  domain?: string;
  /** The sidecar's uid and gid (default 1337). */
  proxyUid?: number;
  /** Inbound ports left uncaptured. */
  excludeInboundPorts?: number[];
  /** Sidecar log lines (stderr) and stdout; default: dropped. */
  onSidecarOutput?: (chunk: string) => void;
  logLevel?: string;
  /** How long to wait for the sidecar's first full config (default 30 s). */
  readyTimeoutMs?: number;
}

export interface CapturedWorkload {
  readonly ns: NetNamespace;
  /** The workload's address (in the namespace). */
  readonly address: string;
  /** The host-side address of the veth pair (the namespace's way to the host). */
  readonly hostAddress: string;
  readonly sidecar: ChildProcess;
  /** Starts a command in the namespace (as root, or `uid`); its traffic is captured. */
  spawn(cmd: string[], opts?: { uid?: number; gid?: number; env?: NodeJS.ProcessEnv; cwd?: string }): ChildProcess;
  /** Stops the sidecar and removes the rules, namespace, veth and relay. Idempotent. */
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1' || host === '[::1]';
}

function splitHostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  const port = Number(s.slice(i + 1));
  if (i < 0 || !Number.isInteger(port) || port < 1 || port > 65535) throw new CaptureError(`--xds ${s}: expected HOST:PORT`);
  return { host: s.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

/** A TCP relay `listenHost:port` → `target`. */
async function relay(listenHost: string, port: number, target: { host: string; port: number }): Promise<Server> {
  const conns = new Set<Socket>();
  const server = createServer((down) => {
    const up = connect(target);
    conns.add(down).add(up);
    const end = () => {
      down.destroy();
      up.destroy();
      conns.delete(down);
      conns.delete(up);
    };
    down.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
    down.pipe(up).pipe(down);
  });
  server.on('close', () => {
    for (const c of conns) c.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, listenHost, () => resolve());
  });
  return server;
}

function waitReady(p: ChildProcess, timeoutMs: number, log: () => string): Promise<void> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => done(new CaptureError(`sidecar not ready after ${timeoutMs} ms:\n${log()}`)), timeoutMs);
    const onData = (d: Buffer) => {
      out += d.toString();
      if (/^ready \(/m.test(out)) done();
    };
    const onExit = (code: number | null) => done(new CaptureError(`sidecar exited (${code}) before it was ready:\n${log()}`));
    const done = (e?: Error) => {
      clearTimeout(timer);
      p.stdout?.off('data', onData);
      p.off('exit', onExit);
      if (e) reject(e);
      else resolve();
    };
    p.stdout?.on('data', onData);
    p.once('exit', onExit);
  });
}

function stopProcess(p: ChildProcess, graceMs: number): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => p.kill('SIGKILL'), graceMs);
    p.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    p.kill('SIGTERM');
  });
}

/** See the module comment. */
export async function startCapturedWorkload(o: CapturedWorkloadOptions): Promise<CapturedWorkload> {
  const namespace = o.namespace ?? 'default';
  const uid = o.proxyUid ?? PROXY_UID;
  const xds = splitHostPort(o.xds);
  await cleanupLeftovers();
  const ns = await createVethNamespace();
  let relayServer: Server | undefined;
  let sidecar: ChildProcess | undefined;
  let closed = false;
  const logTail: string[] = [];
  const close = async () => {
    if (closed) return;
    closed = true;
    if (sidecar) await stopProcess(sidecar, 8000);
    if (relayServer) await new Promise<void>((r) => relayServer!.close(() => r()));
    await ns.close();
  };
  try {
    let sidecarXds = `${xds.host}:${xds.port}`;
    if (isLoopback(xds.host)) {
      relayServer = await relay(ns.hostAddress, xds.port, xds);
      sidecarXds = `${ns.hostAddress}:${xds.port}`;
    }
    let nameservers: string[] = [];
    try {
      nameservers = resolvConfNameservers(readFileSync('/etc/resolv.conf', 'utf8'));
    } catch {
      // no host resolver: queries for non-mesh names get SERVFAIL from the DNS proxy
    }
    const domain = o.domain ?? 'cluster.local';
    writeNetnsResolvConf(
      ns.name,
      `# weft netns-run: port 53 is captured by the sidecar's DNS proxy (127.0.0.1:${DNS_PORT})\n` +
        (nameservers.length ? nameservers : ['127.0.0.1']).map((n) => `nameserver ${n}\n`).join('') +
        `search ${namespace}.svc.${domain} svc.${domain} ${domain}\noptions ndots:1 timeout:2 attempts:1\n`,
    );
    const args = [
      process.execPath,
      WEFT_BIN,
      'proxy',
      '--mode',
      'transparent',
      '--xds',
      sidecarXds,
      '--id',
      `${o.workload}.${namespace}`,
      '--workload-name',
      o.workload,
      '--namespace',
      namespace,
      '--service-account',
      o.serviceAccount ?? 'default',
      '--log-level',
      o.logLevel ?? 'info',
      '--dns-port',
      String(DNS_PORT),
    ];
    if (o.labels && Object.keys(o.labels).length) args.push('--labels', Object.entries(o.labels).map(([k, v]) => `${k}=${v}`).join(','));
    for (const p of o.workloadPorts ?? []) args.push('--workload-port', p);
    if (o.locality) args.push('--locality', o.locality);
    // The rules go in before the sidecar starts, as Istio's init container does: connections that predate the nat
    // table would be picked up mid-stream by conntrack, and their inbound packets redirected to virtualInbound.
    await ns.exec(['iptables-restore'], natRules({ proxyUid: uid, proxyGid: uid, outboundPort: OUTBOUND_CAPTURE_PORT, inboundPort: INBOUND_CAPTURE_PORT, dnsPort: DNS_PORT, workloadAddress: ns.address, excludeInboundPorts: o.excludeInboundPorts }));
    sidecar = spawnInNamespace(ns.name, args, { uid, gid: uid });
    const keep = (d: Buffer) => {
      const s = d.toString();
      logTail.push(s);
      if (logTail.length > 50) logTail.shift();
      o.onSidecarOutput?.(s);
    };
    sidecar.stdout?.on('data', keep);
    sidecar.stderr?.on('data', keep);
    await waitReady(sidecar, o.readyTimeoutMs ?? 30_000, () => logTail.join(''));
  } catch (e) {
    await close();
    throw e;
  }
  const sc = sidecar!;
  return {
    ns,
    address: ns.address,
    hostAddress: ns.hostAddress,
    sidecar: sc,
    spawn: (cmd, opts = {}) => spawnInNamespace(ns.name, cmd, opts),
    close,
  };
}
