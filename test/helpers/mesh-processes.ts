// End-to-end scaffolding for tests that run the real `weft control-plane` and `weft proxy` commands as child
// processes: spawning and readiness, free ports, a watched config directory, the control plane's /debug/syncz
// status, running a command (curl) without blocking the event loop, and YAML for upstreams registered as
// Service + WorkloadEntry on 127.0.0.1.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/helpers/). */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/** The `weft` command's entry point. */
export const WEFT = join(ROOT, 'bin', 'weft.js');

/** A Node child process (by default a `weft` command) whose stdout is watched for a readiness line. */
export class WeftProcess {
  proc?: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';

  /** Runs `weft ARGS…`; resolves with the match of `ready` on stdout, rejects if it exits first or after 20 s. */
  start(weftArgs: string[], ready: RegExp, what: string): Promise<RegExpExecArray> {
    return this.startNode([WEFT, ...weftArgs], ready, what);
  }

  /** As `start`, with the arguments given to `node` as they are (for a launcher script). */
  startNode(nodeArgs: string[], ready: RegExp, what: string): Promise<RegExpExecArray> {
    const p = spawn(process.execPath, nodeArgs, { cwd: ROOT });
    this.proc = p;
    p.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what} not ready after 20 s:\n${this.stdout}\n${this.log()}`)), 20_000);
      p.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited with ${code}:\n${this.stdout}\n${this.log()}`));
      });
      p.stdout.on('data', (d: Buffer) => {
        this.stdout += d.toString();
        const m = ready.exec(this.stdout);
        if (m) {
          clearTimeout(timer);
          p.removeAllListeners('exit');
          resolve(m);
        }
      });
    });
  }

  /** The last lines of stderr (the process log), for failure messages. */
  log(lines = 30): string {
    return this.stderr.trim().split('\n').slice(-lines).join('\n');
  }

  exited(): Promise<number | null> {
    const p = this.proc!;
    if (p.exitCode !== null || p.signalCode !== null) return Promise.resolve(p.exitCode);
    return new Promise((r) => p.once('exit', (code) => r(code)));
  }

  /** SIGTERM, then waits for the exit (nothing to do if it has exited already). */
  async stop(): Promise<void> {
    const p = this.proc;
    if (p && p.exitCode === null && p.signalCode === null) {
      const done = this.exited();
      p.kill('SIGTERM');
      await done;
    }
  }
}

/** Addresses printed by `weft control-plane` once it serves. */
export interface ControlPlaneAddresses {
  /** The ADS (gRPC) address, for `weft proxy --xds`. */
  xds: string;
  /** The HTTP base URL (debug endpoints). */
  http: string;
}

/** Starts `weft control-plane` watching `configDir` on ephemeral ports (plus `extra` arguments) and waits for its addresses. */
export async function startControlPlane(proc: WeftProcess, configDir: string, extra: string[] = []): Promise<ControlPlaneAddresses> {
  const m = await proc.start(['control-plane', '--config', configDir, '--xds-port', '0', '--http-port', '0', ...extra], /xDS \(ADS over plaintext gRPC\): (\S+)[\s\S]*HTTP: (http:\/\/\S+)/, 'control plane');
  return { xds: m[1]!, http: m[2]! };
}

/** The `weft proxy` arguments every e2e proxy shares: control plane, node id, namespace default, labels app=client. */
export function proxyArgs(xds: string, nodeId: string, more: string[]): string[] {
  return ['proxy', '--xds', xds, '--id', nodeId, '--namespace', 'default', '--labels', 'app=client', ...more];
}

/** Polls the proxy's /healthz/ready until it answers 200 (up to 10 s); throws with the proxy's log otherwise. */
export async function waitProxyReady(healthPort: number, proxy: WeftProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const r = await fetch(`http://127.0.0.1:${healthPort}/healthz/ready`).catch(() => undefined);
    if (r?.status === 200) return;
    await sleep(50);
  }
  throw new Error(`proxy never ready:\n${proxy.log()}`);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Ports this process has handed out (never handed out twice). */
const handedOut = new Set<number>();

/** Whether `port` can be bound on 127.0.0.1 right now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A port free on 127.0.0.1 at the time of asking, for a listener a test configures before it starts. It is taken
 * below Linux's ephemeral range (32768-60999): a port from `listen(0)` comes from that range, which is also where
 * every outgoing connection on the machine takes its source port, so one could be taken between the asking and the
 * binding. Picked at random in 20000-32767 (other test files pick at the same time) and checked by binding it.
 */
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20000 + Math.floor(Math.random() * 12768);
    if (handedOut.has(port)) continue;
    if (await bindable(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: no free port found in 20000-32767 after 200 tries');
}

/** A temporary work directory with a `config` directory inside for the control plane to watch. */
export class MeshWorkDir {
  readonly work: string;
  readonly config: string;
  constructor(prefix: string) {
    this.work = mkdtempSync(join(tmpdir(), prefix));
    this.config = join(this.work, 'config');
    mkdirSync(this.config);
  }

  /** Writes (or replaces) a file in the watched config directory. */
  writeConfig(name: string, text: string): void {
    writeFileSync(join(this.config, name), text);
  }

  remove(): void {
    rmSync(this.work, { recursive: true, force: true });
  }
}

/** One xDS type's status for a proxy in the control plane's /debug/syncz. */
export interface TypeStatus {
  state: string;
  ackedVersion?: string;
  sentVersion?: string;
  nack?: { message: string };
}

/** The per-type xDS status of proxy `nodeId` from the control plane's /debug/syncz (undefined if not connected). */
export async function syncStatus(cpHttp: string, nodeId: string): Promise<Record<string, TypeStatus | undefined> | undefined> {
  const res = await fetch(`${cpHttp}/debug/syncz`);
  const list = (await res.json()) as Array<{ id: string; xds: Record<string, TypeStatus | undefined> }>;
  return list.find((p) => p.id === nodeId)?.xds;
}

export interface RunResult {
  status: number | null;
  stdout: Buffer;
  stderr: Buffer;
}

/** Runs a command without blocking the event loop (upstream servers may live in the test process). */
export function run(cmd: string, args: string[], input?: string): Promise<RunResult> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args);
    if (input !== undefined) p.stdin.end(input);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d: Buffer) => err.push(d));
    p.on('close', (status) => resolve({ status, stdout: Buffer.concat(out), stderr: Buffer.concat(err) }));
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Mesh YAML for upstreams on 127.0.0.1 (namespace default)

export interface ServicePort {
  name: string;
  port: number;
  appProtocol?: string;
}

/** A Kubernetes Service in namespace default selecting `app: <selectorApp>` (default: its own name). */
export function serviceYaml(name: string, port: ServicePort, selectorApp = name): string {
  const app = port.appProtocol ? `, appProtocol: ${port.appProtocol}` : '';
  return `apiVersion: v1\nkind: Service\nmetadata: {name: ${name}, namespace: default}\nspec:\n  selector: {app: ${selectorApp}}\n  ports: [{name: ${port.name}, port: ${port.port}${app}}]\n`;
}

/** An Istio WorkloadEntry in namespace default at 127.0.0.1 with `labels`, serving port `portName` on `port`. */
export function workloadEntryYaml(name: string, labels: Record<string, string>, portName: string, port: number): string {
  const ls = Object.entries(labels)
    .map(([k, v]) => `${k}: ${v}`)
    .join(', ');
  return `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: ${name}, namespace: default}\nspec: {address: 127.0.0.1, labels: {${ls}}, ports: {${portName}: ${port}}}\n`;
}

/** Joins YAML documents into one multi-document file. */
export function yamlDocuments(docs: string[]): string {
  return docs.join('---\n');
}

/** The ports a proxy started by `startProxyOnFreePorts` listens on. */
export interface ProxyPorts {
  outbound: number;
  admin: number;
  health: number;
}

/**
 * Starts `weft proxy` (arguments from `args`, given fresh free ports) and waits until it is ready. A free port can be
 * taken by another process between the asking and the binding (the machine is shared): when the proxy fails with
 * EADDRINUSE it is stopped and started again on new ports, up to 3 times.
 */
export async function startProxyOnFreePorts(proc: WeftProcess, args: (p: ProxyPorts) => string[]): Promise<ProxyPorts> {
  for (let attempt = 1; ; attempt++) {
    const p: ProxyPorts = { outbound: await freePort(), admin: await freePort(), health: await freePort() };
    try {
      await proc.start(args(p), /weft proxy .* started/, 'weft proxy');
      await waitProxyReady(p.health, proc);
      return p;
    } catch (e) {
      await proc.stop();
      if (attempt >= 3 || !/EADDRINUSE|address already in use/.test(String(e))) throw e;
      proc.stdout = '';
      proc.stderr = '';
    }
  }
}
