// Shared pieces of the control-plane tests: a temp config dir, a control plane on free ports with its log in
// memory, and a fake Envoy that speaks SotW like Envoy does (wildcard CDS/LDS, EDS/RDS by name, ACK each response).
import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JsonObject } from '@bufbuild/protobuf';
import { ControlPlane } from '../../src/controlplane/controlplane.js';
import type { ControlPlaneOptions, PushSummary } from '../../src/controlplane/controlplane.js';
import { createLogger, MemoryLogStream } from '../../src/controlplane/log.js';
import { TypeUrl, unpack } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { DiscoveryResponse } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import type { SotwTestStream } from '../helpers/ads-client.js';

/** The FQDN of the `reviews` service most control-plane tests use. */
export const REVIEWS = 'reviews.default.svc.cluster.local';

/** A VirtualService sending all `reviews` traffic to one subset. */
export const reviewsVirtualService = (subset: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: ${subset}}
`;

export class ConfigDir {
  readonly dir = mkdtempSync(join(tmpdir(), 'weft-cp-'));
  write(name: string, text: string): void {
    writeFileSync(join(this.dir, name), text);
  }
  remove(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export interface TestControlPlane {
  cp: ControlPlane;
  logs: MemoryLogStream;
  http: string;
  xds: string;
}

export async function startControlPlane(dir: string, opts: Partial<ControlPlaneOptions> = {}): Promise<TestControlPlane> {
  const logs = new MemoryLogStream();
  const cp = new ControlPlane({
    configPaths: dir,
    xdsPort: 0,
    httpPort: 0,
    debounceMs: 20,
    debounceMaxMs: 1000,
    configDebounceMs: 20,
    configRescanMs: 0,
    expiryIntervalMs: 50,
    logger: createLogger({ level: 'debug', stream: logs }),
    ...opts,
  });
  await cp.start();
  return { cp, logs, http: `http://127.0.0.1:${cp.httpPort}`, xds: `127.0.0.1:${cp.xdsPort}` };
}

/** Resolves with the next push summary matching `pred`. */
export function nextPush(cp: ControlPlane, pred: (s: PushSummary) => boolean = () => true): Promise<PushSummary> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      cp.off('push', on);
      reject(new Error('no matching push within 10 s'));
    }, 10_000);
    const on = (s: PushSummary) => {
      if (!pred(s)) return;
      clearTimeout(timer);
      cp.off('push', on);
      resolve(s);
    };
    cp.on('push', on);
  });
}

/** Istio-style node metadata for a sidecar. */
export function sidecarNode(id: string, ns: string, labels: Record<string, string>, extra: JsonObject = {}) {
  return {
    id,
    cluster: labels.app ?? 'unknown',
    metadata: { NAMESPACE: ns, LABELS: labels, SERVICE_ACCOUNT: labels.app ?? 'default', WORKLOAD_NAME: labels.app ?? 'w', ISTIO_VERSION: '1.24.0', ...extra },
    locality: { region: 'region-a', zone: 'zone-1', subZone: '' },
  };
}

export const SHORT: Record<string, string> = {
  [TypeUrl.Cluster]: 'CDS',
  [TypeUrl.ClusterLoadAssignment]: 'EDS',
  [TypeUrl.Listener]: 'LDS',
  [TypeUrl.RouteConfiguration]: 'RDS',
};

/**
 * A SotW client that behaves like Envoy: subscribes to CDS and LDS (wildcard), then to the EDS names of the EDS
 * clusters and the RDS names of the listeners' HttpConnectionManagers; ACKs every response unless told to NACK.
 */
export class FakeEnvoy {
  readonly client: AdsTestClient;
  readonly stream: SotwTestStream;
  readonly names = new Map<string, string[]>();
  readonly last = new Map<string, DiscoveryResponse>();
  private readonly versions = new Map<string, string>();
  private nackNext = new Map<string, string>();

  constructor(address: string, readonly node: ReturnType<typeof sidecarNode>) {
    this.client = new AdsTestClient(address);
    this.stream = this.client.sotw();
  }

  /** Connects and syncs CDS, EDS, LDS and RDS. */
  async sync(): Promise<void> {
    this.stream.send({ node: this.node, typeUrl: TypeUrl.Cluster });
    await this.expect(TypeUrl.Cluster);
    const eds = this.edsNames();
    this.names.set(TypeUrl.ClusterLoadAssignment, eds);
    if (eds.length) {
      this.stream.send({ typeUrl: TypeUrl.ClusterLoadAssignment, resourceNames: eds });
      await this.expect(TypeUrl.ClusterLoadAssignment);
    }
    this.stream.send({ typeUrl: TypeUrl.Listener });
    await this.expect(TypeUrl.Listener);
    const rds = this.rdsNames();
    this.names.set(TypeUrl.RouteConfiguration, rds);
    if (rds.length) {
      this.stream.send({ typeUrl: TypeUrl.RouteConfiguration, resourceNames: rds });
      await this.expect(TypeUrl.RouteConfiguration);
    }
  }

  /** NACK the next response of this type with `message`. */
  nack(typeUrl: string, message: string): void {
    this.nackNext.set(typeUrl, message);
  }

  /** The next response (ACKed or NACKed as configured). */
  async next(timeoutMs = 10_000): Promise<DiscoveryResponse> {
    const r = await this.stream.next(timeoutMs);
    this.last.set(r.typeUrl, r);
    const nack = this.nackNext.get(r.typeUrl);
    if (nack !== undefined) {
      this.nackNext.delete(r.typeUrl);
      this.stream.send({ typeUrl: r.typeUrl, resourceNames: this.names.get(r.typeUrl) ?? [], versionInfo: this.versions.get(r.typeUrl) ?? '', responseNonce: r.nonce, errorDetail: { code: 3, message: nack } });
    } else {
      this.versions.set(r.typeUrl, r.versionInfo);
      this.stream.send({ typeUrl: r.typeUrl, resourceNames: this.names.get(r.typeUrl) ?? [], versionInfo: r.versionInfo, responseNonce: r.nonce });
    }
    return r;
  }

  async expect(typeUrl: string): Promise<DiscoveryResponse> {
    const r = await this.next();
    if (r.typeUrl !== typeUrl) throw new Error(`expected ${SHORT[typeUrl]}, got ${SHORT[r.typeUrl] ?? r.typeUrl}`);
    return r;
  }

  clusters() {
    return (this.last.get(TypeUrl.Cluster)?.resources ?? []).map((a) => unpack(ClusterSchema, a));
  }
  endpoints() {
    return (this.last.get(TypeUrl.ClusterLoadAssignment)?.resources ?? []).map((a) => unpack(ClusterLoadAssignmentSchema, a));
  }
  listeners() {
    return (this.last.get(TypeUrl.Listener)?.resources ?? []).map((a) => unpack(ListenerSchema, a));
  }
  routes() {
    return (this.last.get(TypeUrl.RouteConfiguration)?.resources ?? []).map((a) => unpack(RouteConfigurationSchema, a));
  }

  private edsNames(): string[] {
    return this.clusters()
      .filter((c) => c.clusterDiscoveryType.case === 'type' && c.clusterDiscoveryType.value === 3 /* EDS */)
      .map((c) => c.edsClusterConfig?.serviceName || c.name)
      .sort();
  }

  private rdsNames(): string[] {
    const out = new Set<string>();
    for (const l of this.listeners()) {
      const hcms = [...l.filterChains.flatMap((fc) => fc.filters), ...(l.defaultFilterChain?.filters ?? [])]
        .map((f) => (f.configType.case === 'typedConfig' ? f.configType.value : undefined))
        .filter((a) => a?.typeUrl.endsWith('.HttpConnectionManager'));
      if (l.apiListener?.apiListener) hcms.push(l.apiListener.apiListener);
      for (const a of hcms) {
        const hcm = unpack(HttpConnectionManagerSchema, a!);
        if (hcm.routeSpecifier.case === 'rds') out.add(hcm.routeSpecifier.value.routeConfigName);
      }
    }
    return [...out].sort();
  }

  close(): void {
    this.stream.end();
    this.client.close();
  }
}

/** Polls `fn` until it returns a truthy value (bounded). */
export async function until<T>(fn: () => T | Promise<T>, what: string, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ROOT = new URL('../../../', import.meta.url);

/**
 * How to run `weft` in a child process: bin/weft.js once src/cli/main.ts registers the control-plane commands,
 * else the command modules registered on a bare commander program (the same `register` functions).
 */
export function weftArgv(): string[] {
  const main = readFileSync(new URL('dist/src/cli/main.js', ROOT), 'utf8');
  if (main.includes('commands/control-plane.js') && main.includes('commands/proxy-status.js') && main.includes('commands/proxy-config.js')) return ['bin/weft.js'];
  const harness = `
    import { Command } from 'commander';
    import { register as controlPlane } from './dist/src/cli/commands/control-plane.js';
    import { register as proxyStatus } from './dist/src/cli/commands/proxy-status.js';
    import { register as proxyConfig } from './dist/src/cli/commands/proxy-config.js';
    const program = new Command();
    program.exitOverride((e) => process.exit(e.code === 'commander.helpDisplayed' ? 0 : 2));
    controlPlane(program);
    proxyStatus(program);
    proxyConfig(program);
    await program.parseAsync(process.argv.slice(1), { from: 'user' });
  `;
  return ['--input-type=module', '-e', harness];
}

/** Starts `weft ARGS...` in the repository root. */
export function spawnWeft(args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [...weftArgv(), ...args], { cwd: fileURLToPath(ROOT) });
}

/** Runs `weft ARGS...` to completion. */
export async function runWeft(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  const child = spawnWeft(args);
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  return { code, out, err };
}
