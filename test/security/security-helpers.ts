// End-to-end scaffolding for the authorization and authentication tests: a real `weft control-plane` watching a
// config directory, one server workload (`weft proxy` with inbound ports in front of local upstreams, namespace
// default, labels app=server, service account server-sa), clients that talk to the inbound ports directly, and a
// way to know a config change is in force: every policy set carries a DENY policy `marker-v<N>` on path
// `/__marker` of the HTTP port, and `applyPolicies` waits until the proxy answers that path with
// `rbac_access_denied_matched_policy[…marker-v<N>…]` (the debug header shows the details).
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { freePort, MeshWorkDir, startControlPlane, startProxyOnFreePorts, WeftProcess, yamlDocuments, type ProxyPorts } from '../helpers/mesh-processes.js';
import { Upstream } from '../helpers/http-upstream.js';
import { httpRequest, type SimpleResponse } from '../helpers/raw-client.js';

export const SERVER_LABELS = 'app=server';
export const SERVER_SA = 'server-sa';

/** A TCP upstream that answers every line with `echo:<line>`. */
export class TcpEcho {
  server!: Server;
  port = 0;
  private readonly sockets = new Set<Socket>();
  async start(): Promise<void> {
    this.server = createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      s.on('data', (d) => s.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Sends `line` on a new TCP connection: the echoed answer, or `closed` when the proxy closed the connection first. */
export function tcpExchange(port: number, line: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    let got = '';
    const done = (v: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(got === '' ? 'timeout' : got), 5000);
    s.on('connect', () => s.write(line));
    s.on('data', (d) => {
      got += d.toString();
      if (got.includes(line)) done(got);
    });
    s.on('error', () => done('closed'));
    s.on('close', () => done(got === '' ? 'closed' : got));
  });
}

export interface MeshOptions {
  /** Extra YAML documents always present (MeshConfig, services). */
  base?: string[];
  tcp?: boolean;
}

/** The control plane, the server workload's proxy and its upstreams. */
export class SecurityMesh {
  readonly dir = new MeshWorkDir('weft-authz-');
  readonly cp = new WeftProcess();
  readonly proxy = new WeftProcess();
  readonly http = new Upstream('server');
  readonly tcp = new TcpEcho();
  httpPort = 0;
  tcpPort = 0;
  ports!: ProxyPorts;
  private version = 0;
  private base: string[] = [];

  async start(o: MeshOptions = {}): Promise<void> {
    await this.http.start();
    if (o.tcp) await this.tcp.start();
    this.base = o.base ?? [];
    this.httpPort = await freePort();
    this.tcpPort = o.tcp ? await freePort() : 0;
    this.dir.writeConfig('base.yaml', yamlDocuments(this.base.length ? this.base : ['apiVersion: v1\nkind: Namespace\nmetadata: {name: default}\n']));
    const addrs = await startControlPlane(this.cp, this.dir.config);
    const wp = [`${this.httpPort}:${this.http.port}/http`, ...(o.tcp ? [`${this.tcpPort}:${this.tcp.port}/tcp`] : [])];
    this.ports = await startProxyOnFreePorts(this.proxy, (p) => [
      'proxy', '--xds', addrs.xds, '--id', 'server', '--namespace', 'default', '--labels', SERVER_LABELS, '--service-account', SERVER_SA,
      ...wp.flatMap((w) => ['--workload-port', w]),
      '--outbound-port', String(p.outbound), '--admin-port', String(p.admin), '--health-port', String(p.health), '--stats-port', '0',
    ]);
  }

  /** Replaces the policies (YAML documents) and waits until the proxy enforces them. */
  async applyPolicies(docs: string[]): Promise<void> {
    const v = ++this.version;
    const marker = `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: marker-v${v}, namespace: default}\nspec:\n  selector: {matchLabels: {app: server}}\n  action: DENY\n  rules: [{to: [{operation: {ports: ["${this.httpPort}"], paths: ["/__marker"]}}]}]\n`;
    this.dir.writeConfig('policies.yaml', yamlDocuments([marker, ...docs]));
    const want = `marker-v${v}]`;
    let last: SimpleResponse | undefined;
    for (let i = 0; i < 300; i++) {
      last = await httpRequest(this.httpPort, 'server', '/__marker', { headers: { 'x-weft-debug': '1' } }).catch(() => undefined);
      if (last?.headers['x-weft-response-code-details']?.includes(want)) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`policies v${v} never in force (last: ${last?.status} ${last?.headers['x-weft-response-code-details'] ?? ''}):\n${this.proxy.log()}\n${this.cp.log()}`);
  }

  get(path: string, headers: Record<string, string> = {}, method = 'GET', host = 'server'): Promise<SimpleResponse> {
    return httpRequest(this.httpPort, host, path, { method, headers: { 'x-weft-debug': '1', ...headers } });
  }

  async stop(): Promise<void> {
    await this.proxy.stop();
    await this.cp.stop();
    await new Promise<void>((r) => this.http.server.close(() => r()));
    if (this.tcpPort) await this.tcp.stop();
    this.dir.remove();
  }
}

/** An AuthorizationPolicy on the server workload. */
export function policy(name: string, spec: string): string {
  return `apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: ${name}, namespace: default}\nspec:\n  selector: {matchLabels: {app: server}}\n${spec.replace(/^/gm, '  ')}\n`;
}
