// A small State-of-the-World ADS server for end-to-end proxy tests that need xDS the control plane does not emit
// (active health checks, short HCM timeouts) or many quick versions (config churn). It serves whole resource sets
// per type: `set(typeUrl, resources)` replaces the set under a new version and pushes it to every connected stream;
// each type's ACKs and NACKs are recorded so a test can wait until the proxy has applied (or refused) a version.
// Resources usually start from the control plane's own translation (test/helpers/translate.ts) and are edited.
//
//   const ads = new StaticAds();
//   await ads.listen();                                 // ads.address for `weft proxy --xds ... --xds-protocol sotw`
//   ads.set(TypeUrl.Cluster, clusters.map((c) => pack(ClusterSchema, c)));
//   await ads.acked(TypeUrl.Cluster, ads.version(TypeUrl.Cluster));
//   ads.close();
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ServerDuplexStream, ServiceDefinition } from '@grpc/grpc-js';
import { create, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import { DurationSchema, type Any, type Duration } from '@bufbuild/protobuf/wkt';
import { aggregatedDiscoveryService } from '../../src/xds/ads-service.js';
import { pack, TypeUrl, unpack } from '../../src/xds/index.js';
import { HttpConnectionManagerSchema, type HttpConnectionManager } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { DiscoveryResponseSchema } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DiscoveryRequest, DiscoveryResponse } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { proxyArgs, startProxyOnFreePorts, WeftProcess, type ProxyPorts } from './mesh-processes.js';
import { translateYaml } from './translate.js';

interface TypeState {
  version: number;
  resources: Array<{ name: string; any: Any }>;
}

interface StreamState {
  call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  /** Per type: the nonce of the last response sent and the names subscribed. */
  sent: Map<string, { nonce: string; names: string[]; version: string }>;
}

/** The name of an xDS resource (clusters, listeners, routes: name; endpoints: cluster_name). */
function nameOf(m: { name?: string; clusterName?: string }): string {
  return m.name ?? m.clusterName ?? '';
}

export class StaticAds {
  private readonly server = new Server();
  private readonly types = new Map<string, TypeState>();
  private readonly streams = new Set<StreamState>();
  private nonce = 0;
  private versionCounter = 0;
  /** Per type, the versions ACKed (in order) and the NACK messages received. */
  readonly acks = new Map<string, string[]>();
  readonly nacks: Array<{ typeUrl: string; version: string; message: string }> = [];
  port = 0;

  constructor() {
    const def = { StreamAggregatedResources: aggregatedDiscoveryService.StreamAggregatedResources } as unknown as ServiceDefinition;
    this.server.addService(def, { StreamAggregatedResources: (call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) => this.onStream(call) });
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(err);
        else resolve((this.port = port));
      });
    });
  }

  /** The current version string of a type ('' before the first set). */
  version(typeUrl: string): string {
    const t = this.types.get(typeUrl);
    return t === undefined ? '' : String(t.version);
  }

  /** Replaces the resources of a type under a new version and pushes them to every stream. */
  set(typeUrl: string, resources: Any[], names?: string[]): string {
    const list = resources.map((any, i) => ({ name: names?.[i] ?? '', any }));
    const st: TypeState = { version: ++this.versionCounter, resources: list };
    this.types.set(typeUrl, st);
    for (const s of this.streams) if (s.sent.has(typeUrl)) this.send(s, typeUrl, s.sent.get(typeUrl)!.names);
    return String(st.version);
  }

  /** Typed shorthand: packs messages (or init shapes) of `schema` and names them by `name` / `cluster_name`. */
  setMessages<D extends DescMessage>(typeUrl: string, schema: D, msgs: Array<MessageInitShape<D>>): string {
    const full = msgs.map((m) => create(schema, m));
    return this.set(
      typeUrl,
      full.map((m) => pack(schema, m)),
      full.map((m) => nameOf(m as { name?: string; clusterName?: string })),
    );
  }

  /** Serves a whole translation: clusters, endpoints, listeners and routes; returns the listener version. */
  setAll(r: Pick<ProxyResources, 'clusters' | 'endpoints' | 'listeners' | 'routes'>): string {
    this.setMessages(TypeUrl.Cluster, ClusterSchema, r.clusters);
    this.setMessages(TypeUrl.ClusterLoadAssignment, ClusterLoadAssignmentSchema, r.endpoints);
    this.setMessages(TypeUrl.RouteConfiguration, RouteConfigurationSchema, r.routes);
    return this.setMessages(TypeUrl.Listener, ListenerSchema, r.listeners);
  }

  /** Resolves once `version` of the type has been ACKed; rejects on its NACK (with the detail) or after 15 s. */
  async acked(typeUrl: string, version: string, timeoutMs = 15_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      if (this.acks.get(typeUrl)?.includes(version)) return;
      const nack = this.nacks.find((n) => n.typeUrl === typeUrl && n.version === version);
      if (nack) throw new Error(`${typeUrl} version ${version} NACKed: ${nack.message}`);
      if (Date.now() > end) throw new Error(`${typeUrl} version ${version} not ACKed within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  /** Waits (bounded) until `version` of the type was ACKed or NACKed; a NACK's message is returned, not thrown. */
  async settled(typeUrl: string, version: string, timeoutMs = 15_000): Promise<{ acked: boolean; nack?: string }> {
    try {
      await this.acked(typeUrl, version, timeoutMs);
      return { acked: true };
    } catch (e) {
      const nack = this.nacks.find((n) => n.typeUrl === typeUrl && n.version === version);
      if (nack) return { acked: false, nack: nack.message };
      throw e;
    }
  }

  close(): void {
    for (const s of this.streams) s.call.end();
    this.server.forceShutdown();
  }

  private onStream(call: ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const s: StreamState = { call, sent: new Map() };
    this.streams.add(s);
    const done = () => this.streams.delete(s);
    call.on('data', (req: DiscoveryRequest) => this.onRequest(s, req));
    call.on('end', () => {
      done();
      call.end();
    });
    call.on('error', done);
    call.on('cancelled', done);
  }

  private onRequest(s: StreamState, req: DiscoveryRequest): void {
    const type = req.typeUrl;
    const last = s.sent.get(type);
    if (req.responseNonce !== '') {
      if (last === undefined || req.responseNonce !== last.nonce) return; // stale
      if (req.errorDetail) this.nacks.push({ typeUrl: type, version: last.version, message: req.errorDetail.message });
      else {
        let list = this.acks.get(type);
        if (list === undefined) this.acks.set(type, (list = []));
        list.push(req.versionInfo);
      }
      const same = last.names.length === req.resourceNames.length && last.names.every((n, i) => n === req.resourceNames[i]);
      if (same) return;
    }
    this.send(s, type, [...req.resourceNames]);
  }

  private send(s: StreamState, type: string, names: string[]): void {
    const st = this.types.get(type);
    const nonce = String(++this.nonce);
    const version = st === undefined ? '' : String(st.version);
    s.sent.set(type, { nonce, names, version });
    if (st === undefined) return; // nothing to serve yet: answered on the first set()
    const wanted = names.length === 0 || names.includes('*') ? st.resources : st.resources.filter((r) => names.includes(r.name));
    s.call.write(create(DiscoveryResponseSchema, { versionInfo: version, typeUrl: type, nonce, resources: wanted.map((r) => r.any) }));
  }
}

// ---------------------------------------------------------------------------------------------------------------
// A `weft proxy` process fed by a StaticAds with the control plane's translation of mesh YAML (edited by the test).

export interface StaticProxy {
  ads: StaticAds;
  proxy: WeftProcess;
  /** The translation served (edit it and call `ads.setAll(resources)` to push a new version). */
  resources: ProxyResources;
  outboundPort: number;
  adminPort: number;
  healthPort: number;
  stop(): Promise<void>;
}

export interface StaticProxyOptions {
  /** Edits the translation before it is served. */
  mutate?: (r: ProxyResources) => void;
  /** Inbound ports (WEFT_INBOUND / --workload-port), e.g. `{ port, targetPort, protocol: 'tcp' }`. */
  inbound?: Array<{ port: number; targetPort: number; protocol?: string }>;
  nodeId?: string;
}

/** Translates `yaml` for an explicit-mode sidecar (namespace default, app=client), serves it and starts the proxy. */
export async function startStaticProxy(yaml: string, opts: StaticProxyOptions = {}): Promise<StaticProxy> {
  const nodeId = opts.nodeId ?? 'static-e2e';
  const inbound = opts.inbound ?? [];
  const ads = new StaticAds();
  await ads.listen();
  const proxy = new WeftProcess();
  const workload = inbound.map((i) => `${i.port}:${i.targetPort}${i.protocol ? '/' + i.protocol : ''}`);
  let resources!: ProxyResources;
  let ports: ProxyPorts;
  try {
    ports = await startProxyOnFreePorts(proxy, (p) => {
      // The translation names the outbound port: it is made (and served) for the ports of this attempt.
      const metadata: Record<string, unknown> = { NAMESPACE: 'default', LABELS: { app: 'client' }, SERVICE_ACCOUNT: 'default', WEFT_MODE: 'explicit', WEFT_OUTBOUND_PORT: p.outbound };
      if (inbound.length > 0) metadata.WEFT_INBOUND = inbound.map((i) => ({ ...i }));
      resources = translateYaml(yaml, `${nodeId}.yaml`, { id: nodeId, metadata: metadata as never });
      opts.mutate?.(resources);
      ads.setAll(resources);
      return proxyArgs(ads.address, nodeId, [
        '--xds-protocol', 'sotw',
        '--outbound-port', String(p.outbound),
        '--admin-port', String(p.admin),
        '--health-port', String(p.health),
        '--stats-port', '0',
        '--drain-timeout', '2',
        ...workload.flatMap((w) => ['--workload-port', w]),
      ]);
    });
  } catch (e) {
    ads.close();
    throw e;
  }
  const { outbound: outboundPort, admin: adminPort, health: healthPort } = ports;
  return {
    ads,
    proxy,
    resources,
    outboundPort,
    adminPort,
    healthPort,
    async stop() {
      await proxy.stop();
      ads.close();
    },
  };
}

/** Edits the HTTP connection manager of a listener's first filter chain in place (unpack, edit, pack). */
export function editHcm(resources: ProxyResources, listenerName: string, edit: (hcm: HttpConnectionManager) => void): void {
  const l = resources.listeners.find((x) => x.name === listenerName);
  if (l === undefined) throw new Error(`no listener ${listenerName} (have ${resources.listeners.map((x) => x.name).join(', ')})`);
  for (const chain of l.filterChains) {
    for (const f of chain.filters) {
      if (f.configType.case !== 'typedConfig' || !f.configType.value.typeUrl.endsWith('.HttpConnectionManager')) continue;
      const hcm = unpack(HttpConnectionManagerSchema, f.configType.value);
      edit(hcm);
      f.configType = { case: 'typedConfig', value: pack(HttpConnectionManagerSchema, hcm) };
    }
  }
}

/** A protobuf Duration of `ms` milliseconds. */
export function durationOf(ms: number): Duration {
  return create(DurationSchema, { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 });
}
