/**
 * A simulated Envoy: one ADS stream (SotW or Delta) over its own gRPC connection, behaving as Envoy does on
 * startup with ADS:
 *
 *   1. CDS wildcard;
 *   2. for the EDS clusters received, EDS for their ClusterLoadAssignment names (subscription follows CDS);
 *   3. once every EDS cluster has its assignment (cluster manager initialized), LDS wildcard;
 *   4. RDS for the route names the listeners' HttpConnectionManagers reference (subscription follows LDS);
 *
 * and it ACKs every response. Requests are encoded with the generated Envoy types; responses are read with a
 * minimal wire reader (./wire.ts) instead of full decoding, so hundreds of clients fit in a few processes.
 * `verify` keeps the raw resources for full checks.
 *
 * What keeps the simulation cheap without changing what goes over the wire:
 * - HTTP/2 flow-control windows as large as Envoy's defaults (256 MiB per stream and per connection,
 *   Http2ProtocolOptions initial_stream_window_size / initial_connection_window_size), not HTTP/2's 64 KiB:
 *   with 64 KiB a multi-megabyte response crawls through dozens of WINDOW_UPDATE round trips;
 * - a SotW request repeats the whole subscription (two thousand EDS names in every EDS ACK, as Envoy sends):
 *   its serialized resource_names are kept per subscription and spliced into each request, so the bytes are
 *   those a full encoding gives (fields in field-number order) without re-encoding the names every time;
 * - the clients of a worker process share the name strings they decode (one process simulating hundreds of
 *   proxies would otherwise keep hundreds of copies of every name, and spend its time collecting them).
 */
import { Client, credentials } from '@grpc/grpc-js';
import type { ClientDuplexStream } from '@grpc/grpc-js';
import { create, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { aggregatedDiscoveryService } from '../../src/xds/ads-service.js';
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { TypeUrl } from '../../src/xds/index.js';
import { claAddresses, clusterInfo, decodeDeltaResponse, decodeSotwResponse, listenerInfo, nameOf, routeInfo } from './wire.js';
import type { RawAny } from './wire.js';

export type Protocol = 'sotw' | 'delta';

export interface ClientSpec {
  id: string;
  protocol: Protocol;
  namespace: string;
  /** Labels of the proxy's workload. */
  app: string;
  /** An address for INSTANCE_IPS. */
  ip: string;
  locality: { region: string; zone: string };
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes on one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

const CDS = TypeUrl.Cluster;
const EDS = TypeUrl.ClusterLoadAssignment;
const LDS = TypeUrl.Listener;
const RDS = TypeUrl.RouteConfiguration;

export const TYPE_SHORT: Record<string, string> = { [CDS]: 'cds', [EDS]: 'eds', [LDS]: 'lds', [RDS]: 'rds' };

/** Watches for an endpoint change: the time a ClusterLoadAssignment of `cluster` first (no longer) lists `address`. */
export interface EndpointWatch {
  seq: number;
  cluster: string;
  /** `ip:port`. */
  address: string;
  /** true: wait until the address is listed; false: until it is gone. */
  present: boolean;
}

export interface ClientCounts {
  clusters: number;
  edsClusters: number;
  assignments: number;
  listeners: number;
  routeConfigs: number;
  virtualHosts: number;
}

export interface ClientEvents {
  /** The first time the client holds (and has ACKed) a complete CDS+EDS+LDS+RDS configuration. */
  onComplete(c: SimClient, at: number): void;
  onWatchSeen(c: SimClient, seq: number, at: number): void;
  onError(c: SimClient, message: string): void;
}

/** The resources a client holds, by type and name (raw bytes kept only in verify mode). */
export interface Held {
  clusters: Map<string, { edsName?: string; raw?: Uint8Array }>;
  assignments: Map<string, { raw?: Uint8Array }>;
  listeners: Map<string, { routeNames: string[]; raw?: Uint8Array }>;
  routes: Map<string, { virtualHosts: number; raw?: Uint8Array }>;
}

/** Envoy's default HTTP/2 flow-control windows (stream and connection), 256 MiB. */
const ENVOY_HTTP2_WINDOW = 256 * 1024 * 1024;

/** Strings decoded by the clients of this process, shared (see the module comment). */
const strings = new Map<string, string>();

function shared(s: string): string {
  const found = strings.get(s);
  if (found !== undefined) return found;
  strings.set(s, s);
  return s;
}

/**
 * Responses received and not yet applied, in arrival order, for every client of the process. Envoy's HTTP/2
 * codec reads frames, and answers the control plane's keepalive PINGs, as they arrive, whatever its xDS
 * processing is doing; hundreds of simulated clients sharing one process would otherwise read (and answer
 * PINGs) only once the responses before them are processed, which with large flow-control windows can be
 * megabytes per connection, and the control plane drops connections whose PINGs go unanswered (20 s). So
 * responses are applied in slices of `SLICE_MS` between reads.
 */
const inbox: Array<{ client: SimClient; bytes: Buffer }> = [];
let inboxHead = 0;
let draining = false;
const SLICE_MS = 20;

function received(client: SimClient, bytes: Buffer): void {
  inbox.push({ client, bytes });
  if (!draining) {
    draining = true;
    setImmediate(drain);
  }
}

function drain(): void {
  const until = performance.now() + SLICE_MS;
  while (inboxHead < inbox.length && performance.now() < until) {
    const m = inbox[inboxHead]!;
    inbox[inboxHead++] = undefined as never;
    m.client.process(m.bytes);
  }
  if (inboxHead >= inbox.length) {
    inbox.length = 0;
    inboxHead = 0;
    draining = false;
  } else {
    setImmediate(drain);
  }
}

/** What a client keeps of an assignment it does not watch. */
const NO_RAW: { raw?: Uint8Array } = Object.freeze({});

interface TypeState {
  version: string;
  nonce: string;
  /** Names subscribed (EDS, RDS); unused for the wildcard types. */
  names: Set<string>;
  /** The serialized resource_names of `names` (SotW), made when first needed after a change. */
  namesBytes?: Uint8Array;
  requested: boolean;
  responses: number;
  bytes: number;
}

export class SimClient {
  readonly held: Held = { clusters: new Map(), assignments: new Map(), listeners: new Map(), routes: new Map() };
  /** Bytes of every response received (serialized DiscoveryResponse / DeltaDiscoveryResponse). */
  bytes = 0;
  /** Bytes received until the first complete configuration, in total and by type. */
  initialBytes = 0;
  initialBytesByType: Record<string, number> = {};
  responses = 0;
  completeAt?: number;
  error?: string;
  private readonly types = new Map<string, TypeState>();
  private readonly client: Client;
  private call?: ClientDuplexStream<Uint8Array, Buffer>;
  private sentNode = false;
  private readonly watches = new Map<number, EndpointWatch>();
  private closed = false;

  constructor(
    readonly spec: ClientSpec,
    address: string,
    private readonly events: ClientEvents,
    private readonly verify = false,
  ) {
    this.client = new Client(address, credentials.createInsecure(), {
      // One connection per simulated proxy, as real Envoys have (grpc-js otherwise shares subchannels).
      'grpc.use_local_subchannel_pool': 1,
      'grpc.max_receive_message_length': -1,
      'grpc.max_send_message_length': -1,
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc-node.flow_control_window': ENVOY_HTTP2_WINDOW,
    });
    for (const t of [CDS, EDS, LDS, RDS]) this.types.set(t, { version: '', nonce: '', names: new Set(), requested: false, responses: 0, bytes: 0 });
  }

  private node(): MessageInitShape<typeof NodeSchema> | undefined {
    if (this.sentNode) return undefined;
    this.sentNode = true;
    const s = this.spec;
    return {
      id: `sidecar~${s.ip}~${s.id}.${s.namespace}~${s.namespace}.svc.cluster.local`,
      cluster: s.app,
      locality: { region: s.locality.region, zone: s.locality.zone },
      userAgentName: 'weft-bench',
      metadata: {
        NAMESPACE: s.namespace,
        LABELS: { app: s.app, version: 'v1' },
        SERVICE_ACCOUNT: s.app,
        WORKLOAD_NAME: s.id,
        INSTANCE_IPS: s.ip,
        WEFT_MODE: 'explicit',
        WEFT_INBOUND: [{ port: 15006, targetPort: 8080, protocol: 'HTTP', name: 'http' }],
      },
    };
  }

  /** Opens the stream and sends the first request (CDS wildcard). */
  start(): void {
    const method = this.spec.protocol === 'sotw' ? aggregatedDiscoveryService.StreamAggregatedResources : aggregatedDiscoveryService.DeltaAggregatedResources;
    // Requests are serialized by `write`.
    const call: ClientDuplexStream<Uint8Array, Buffer> = this.client.makeBidiStreamRequest(method.path, (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength), (b: Buffer) => b);
    this.call = call;
    call.on('data', (b: Buffer) => received(this, b));
    call.on('error', (e: Error & { code?: number; details?: string }) => {
      if (!this.closed) this.fail(`stream error: ${e.details ?? e.message}`);
    });
    call.on('end', () => {
      if (!this.closed) this.fail('stream ended by the control plane');
    });
    this.subscribe(CDS);
  }

  close(): void {
    this.closed = true;
    try {
      this.call?.cancel();
    } catch {
      // already gone
    }
    this.client.close();
  }

  addWatch(w: EndpointWatch): void {
    this.watches.set(w.seq, w);
    // Already satisfied (nothing to wait for): report at once.
    const held = this.held.assignments.get(w.cluster);
    if (held?.raw && claAddresses(held.raw).includes(w.address) === w.present) this.watchSeen(w, now());
  }

  removeWatch(seq: number): void {
    this.watches.delete(seq);
  }

  counts(): ClientCounts {
    let vh = 0;
    for (const r of this.held.routes.values()) vh += r.virtualHosts;
    return {
      clusters: this.held.clusters.size,
      edsClusters: [...this.held.clusters.values()].filter((c) => c.edsName).length,
      assignments: this.held.assignments.size,
      listeners: this.held.listeners.size,
      routeConfigs: this.held.routes.size,
      virtualHosts: vh,
    };
  }

  typeBytes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [t, st] of this.types) out[TYPE_SHORT[t]!] = st.bytes;
    return out;
  }

  private fail(message: string): void {
    if (this.error) return;
    this.error = message;
    this.events.onError(this, message);
  }

  private writeDelta(req: MessageInitShape<typeof DeltaDiscoveryRequestSchema>): void {
    if (!this.call || this.closed) return;
    this.call.write(toBinary(DeltaDiscoveryRequestSchema, create(DeltaDiscoveryRequestSchema, req)));
  }

  /**
   * A SotW DiscoveryRequest: version_info = 1, node = 2, resource_names = 3, type_url = 4, response_nonce = 5,
   * serialized in field order from three parts, the names' part kept per subscription (see the module comment).
   */
  private writeSotw(st: TypeState, typeUrl: string, node: MessageInitShape<typeof NodeSchema> | undefined): void {
    if (!this.call || this.closed) return;
    st.namesBytes ??= toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { resourceNames: [...st.names] }));
    const head = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { versionInfo: st.version, node }));
    const tail = toBinary(DiscoveryRequestSchema, create(DiscoveryRequestSchema, { typeUrl, responseNonce: st.nonce }));
    this.call.write(Buffer.concat([head, st.namesBytes, tail]));
  }

  /** First request of a type: wildcard for CDS/LDS, the current names for EDS/RDS. */
  private subscribe(typeUrl: string, add: string[] = [], remove: string[] = []): void {
    const st = this.types.get(typeUrl)!;
    const first = !st.requested;
    st.requested = true;
    for (const n of add) st.names.add(n);
    for (const n of remove) st.names.delete(n);
    if (add.length || remove.length) st.namesBytes = undefined;
    if (this.spec.protocol === 'sotw') {
      // SotW: every request carries the whole subscription, the last version and nonce of the type.
      this.writeSotw(st, typeUrl, this.node());
    } else {
      // Delta: only the changes; an empty first subscription to CDS/LDS is the wildcard.
      if (!first && add.length === 0 && remove.length === 0) return;
      this.writeDelta({ node: this.node(), typeUrl, resourceNamesSubscribe: add, resourceNamesUnsubscribe: remove });
    }
  }

  private ack(typeUrl: string): void {
    const st = this.types.get(typeUrl)!;
    if (this.spec.protocol === 'sotw') this.writeSotw(st, typeUrl, undefined);
    else this.writeDelta({ typeUrl, responseNonce: st.nonce });
  }

  /** Applies a response (see `received`). */
  process(b: Buffer): void {
    if (this.closed) return;
    try {
      this.onResponse(b);
    } catch (e) {
      this.fail(`bad response: ${(e as Error).message}`);
    }
  }

  private onResponse(b: Buffer): void {
    this.responses++;
    this.bytes += b.length;
    const at = now();
    let typeUrl: string;
    if (this.spec.protocol === 'sotw') {
      const r = decodeSotwResponse(b);
      typeUrl = r.typeUrl;
      const st = this.types.get(typeUrl);
      if (!st) throw new Error(`response of unrequested type ${typeUrl}`);
      st.version = r.versionInfo;
      st.nonce = r.nonce;
      st.responses++;
      st.bytes += b.length;
      this.applySotw(typeUrl, r.resources, at);
    } else {
      const r = decodeDeltaResponse(b);
      typeUrl = r.typeUrl;
      const st = this.types.get(typeUrl);
      if (!st) throw new Error(`response of unrequested type ${typeUrl}`);
      st.version = r.systemVersionInfo;
      st.nonce = r.nonce;
      st.responses++;
      st.bytes += b.length;
      this.applyDelta(typeUrl, r.resources.map((x) => x.resource).filter((x): x is RawAny => x !== undefined), r.removed, at);
    }
    if (this.completeAt === undefined && this.isComplete()) {
      this.completeAt = now();
      this.initialBytes = this.bytes;
      this.initialBytesByType = this.typeBytes();
      this.events.onComplete(this, this.completeAt);
    }
  }

  /** SotW: CDS and LDS responses are the full state; EDS and RDS responses carry (some of) the named resources. */
  private applySotw(typeUrl: string, resources: RawAny[], at: number): void {
    if (typeUrl === CDS || typeUrl === LDS) {
      const map = typeUrl === CDS ? this.held.clusters : this.held.listeners;
      const seen = new Set<string>();
      for (const r of resources) seen.add(this.store(typeUrl, r, at));
      for (const n of [...map.keys()]) if (!seen.has(n)) map.delete(n);
    } else {
      for (const r of resources) this.store(typeUrl, r, at);
    }
    this.afterUpdate(typeUrl);
  }

  private applyDelta(typeUrl: string, resources: RawAny[], removed: string[], at: number): void {
    for (const r of resources) this.store(typeUrl, r, at);
    const map = this.mapOf(typeUrl);
    for (const n of removed) map.delete(n);
    this.afterUpdate(typeUrl);
  }

  private mapOf(typeUrl: string): Map<string, unknown> {
    if (typeUrl === CDS) return this.held.clusters;
    if (typeUrl === EDS) return this.held.assignments;
    if (typeUrl === LDS) return this.held.listeners;
    return this.held.routes;
  }

  private store(typeUrl: string, any: RawAny, at: number): string {
    if (any.typeUrl !== typeUrl) throw new Error(`a ${any.typeUrl} in a ${typeUrl} response`);
    // A copy: the value is a view of the whole response (a Buffer's slice() would be one too).
    const raw = this.verify ? new Uint8Array(any.value) : undefined;
    if (typeUrl === CDS) {
      const c = clusterInfo(any.value);
      const name = shared(c.name);
      this.held.clusters.set(name, { edsName: c.edsName === undefined ? undefined : shared(c.edsName), raw });
      return name;
    }
    if (typeUrl === EDS) {
      const name = shared(nameOf(any.value));
      const keep = raw ?? (this.watchedCluster(name) ? new Uint8Array(any.value) : undefined);
      this.held.assignments.set(name, keep ? { raw: keep } : NO_RAW);
      if (this.watches.size) this.checkWatches(name, any.value, at);
      return name;
    }
    if (typeUrl === LDS) {
      const l = listenerInfo(any.value);
      this.held.listeners.set(l.name, { routeNames: l.routeNames, raw });
      return l.name;
    }
    const r = routeInfo(any.value);
    this.held.routes.set(r.name, { virtualHosts: r.virtualHosts, raw });
    return r.name;
  }

  private watchedCluster(name: string): boolean {
    for (const w of this.watches.values()) if (w.cluster === name) return true;
    return false;
  }

  private checkWatches(cluster: string, bytes: Uint8Array, at: number): void {
    let addrs: string[] | undefined;
    for (const w of [...this.watches.values()]) {
      if (w.cluster !== cluster) continue;
      addrs ??= claAddresses(bytes);
      if (addrs.includes(w.address) === w.present) this.watchSeen(w, at);
    }
  }

  private watchSeen(w: EndpointWatch, at: number): void {
    this.watches.delete(w.seq);
    this.events.onWatchSeen(this, w.seq, at);
  }

  /** ACKs the response just applied and moves the dependent subscriptions along (CDS → EDS → LDS → RDS). */
  private afterUpdate(typeUrl: string): void {
    if (typeUrl === CDS) {
      // Like Envoy: update the EDS subscription for the new clusters first, then ACK CDS.
      const want = new Set<string>();
      for (const c of this.held.clusters.values()) if (c.edsName) want.add(c.edsName);
      const eds = this.types.get(EDS)!;
      const add = [...want].filter((n) => !eds.names.has(n));
      const remove = [...eds.names].filter((n) => !want.has(n));
      for (const n of remove) this.held.assignments.delete(n);
      if ((!eds.requested && want.size) || add.length || remove.length) this.subscribe(EDS, add, remove);
      this.ack(CDS);
    } else if (typeUrl === EDS) {
      this.ack(EDS);
    } else if (typeUrl === LDS) {
      const want = new Set<string>();
      for (const l of this.held.listeners.values()) for (const r of l.routeNames) want.add(r);
      const rds = this.types.get(RDS)!;
      const add = [...want].filter((n) => !rds.names.has(n));
      const remove = [...rds.names].filter((n) => !want.has(n));
      for (const n of remove) this.held.routes.delete(n);
      this.ack(LDS);
      if ((!rds.requested && want.size) || add.length || remove.length) this.subscribe(RDS, add, remove);
    } else if (typeUrl === RDS) {
      this.ack(RDS);
    }
    // Cluster manager initialized (every EDS cluster has its assignment): ask for listeners.
    const lds = this.types.get(LDS)!;
    if (!lds.requested && this.types.get(CDS)!.responses > 0 && this.edsComplete()) this.subscribe(LDS);
  }

  private edsComplete(): boolean {
    for (const n of this.types.get(EDS)!.names) if (!this.held.assignments.has(n)) return false;
    return true;
  }

  private isComplete(): boolean {
    const lds = this.types.get(LDS)!;
    if (this.types.get(CDS)!.responses === 0 || lds.responses === 0) return false;
    if (!this.edsComplete()) return false;
    const rds = this.types.get(RDS)!;
    for (const n of rds.names) if (!this.held.routes.has(n)) return false;
    return rds.names.size === 0 || rds.responses > 0;
  }
}
