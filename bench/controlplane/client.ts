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
 * - responses are read as they arrive, a top-level field at a time, straight from the received DATA chunks
 *   (./grpc.ts), instead of being assembled into a new multi-megabyte buffer each and then decoded; a resource
 *   is stored as soon as its field is complete, and the response is applied and ACKed once it is complete;
 * - a SotW request repeats the whole subscription (two thousand EDS names in every EDS ACK, as Envoy sends):
 *   its serialized resource_names are kept per subscription and written as they are between the request's other
 *   fields (one batched write, see GrpcStreamCall.writeParts), so the bytes are those a full encoding gives
 *   (fields in field-number order) without re-encoding or copying the names every time;
 * - the clients of a worker process share the name strings they decode (one process simulating hundreds of
 *   proxies would otherwise keep hundreds of copies of every name, and spend its time collecting them).
 */
import { create, toBinary } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { aggregatedDiscoveryService } from '../../src/xds/ads-service.js';
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { TypeUrl } from '../../src/xds/index.js';
import { GrpcStreamCall } from './grpc.js';
import type { MessageSink } from './grpc.js';
import { anyAt, claAddresses, clusterInfoAt, deltaResourceAt, listenerInfo, nameAt, routeInfo, stringAt } from './wire.js';

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
  private call?: GrpcStreamCall;
  private sentNode = false;
  private readonly watches = new Map<number, EndpointWatch>();
  private closed = false;

  constructor(
    readonly spec: ClientSpec,
    private readonly address: string,
    private readonly events: ClientEvents,
    private readonly verify = false,
  ) {
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

  /** Opens the stream (on a connection of its own, as every Envoy has) and sends the first request (CDS wildcard). */
  start(): void {
    const method = this.spec.protocol === 'sotw' ? aggregatedDiscoveryService.StreamAggregatedResources : aggregatedDiscoveryService.DeltaAggregatedResources;
    this.call = new GrpcStreamCall(
      this.address,
      method.path,
      {
        sink: this.reader(),
        onEnd: (error) => {
          if (!this.closed) this.fail(error);
        },
      },
      { windowBytes: ENVOY_HTTP2_WINDOW },
    );
    this.subscribe(CDS);
  }

  close(): void {
    this.closed = true;
    try {
      this.call?.cancel();
    } catch {
      // already gone
    }
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
    this.call.writeParts([head, st.namesBytes, tail]);
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

  /**
   * Reads responses as they arrive (see grpc.ts): each resource is stored as soon as its field is complete, from
   * its span in the received bytes (nothing of a response is kept), and the response is applied and ACKed once it
   * is complete. The resources of a response all precede its type_url (fields in field-number order): each is
   * checked against the response's type at its end.
   */
  private reader(): MessageSink {
    const delta = this.spec.protocol === 'delta';
    let versionInfo = '';
    let typeUrl = '';
    let nonce = '';
    let stored: string[] = [];
    let removed: string[] = [];
    let firstType: string | undefined;
    let otherType: string | undefined;
    let bad: string | undefined;
    const visit = (anyType: string, s: number, e: number, buf: Buffer) => {
      if (firstType === undefined) firstType = anyType;
      else if (anyType !== firstType) otherType ??= anyType;
      stored.push(this.store(anyType, buf, s, e));
    };
    let current: Buffer = Buffer.alloc(0);
    const visitCurrent = (anyType: string, s: number, e: number) => visit(anyType, s, e, current);
    return {
      field: (num, buf, s, e) => {
        if (this.closed || bad !== undefined) return;
        try {
          if (num === 1) versionInfo = stringAt(buf, s, e);
          else if (num === 2) {
            current = buf;
            if (delta) deltaResourceAt(buf, s, e, visitCurrent);
            else anyAt(buf, s, e, visitCurrent);
          } else if (num === 4) typeUrl = stringAt(buf, s, e);
          else if (num === 5) nonce = stringAt(buf, s, e);
          else if (num === 6 && delta) removed.push(stringAt(buf, s, e));
        } catch (err) {
          bad = (err as Error).message;
        }
      },
      end: (bytes) => {
        const r = { versionInfo, typeUrl, nonce, stored, removed, firstType, otherType, bad };
        versionInfo = typeUrl = nonce = '';
        stored = [];
        removed = [];
        firstType = otherType = bad = undefined;
        current = Buffer.alloc(0);
        if (this.closed) return;
        try {
          if (r.bad !== undefined) throw new Error(r.bad);
          this.onResponse(r, bytes);
        } catch (err) {
          this.fail(`bad response: ${(err as Error).message}`);
        }
      },
    };
  }

  private onResponse(
    r: { versionInfo: string; typeUrl: string; nonce: string; stored: string[]; removed: string[]; firstType?: string; otherType?: string },
    bytes: number,
  ): void {
    this.responses++;
    this.bytes += bytes;
    const typeUrl = r.typeUrl;
    const st = this.types.get(typeUrl);
    if (!st) throw new Error(`response of unrequested type ${typeUrl}`);
    const wrong = r.firstType !== undefined && r.firstType !== typeUrl ? r.firstType : r.otherType;
    if (wrong !== undefined) throw new Error(`a ${wrong} in a ${typeUrl} response`);
    st.version = r.versionInfo;
    st.nonce = r.nonce;
    st.responses++;
    st.bytes += bytes;
    if (this.spec.protocol === 'sotw') this.applySotw(typeUrl, r.stored);
    else this.applyDelta(typeUrl, r.removed);
    if (this.completeAt === undefined && this.isComplete()) {
      this.completeAt = now();
      this.initialBytes = this.bytes;
      this.initialBytesByType = this.typeBytes();
      this.events.onComplete(this, this.completeAt);
    }
  }

  /**
   * SotW: CDS and LDS responses are the full state (what they do not name is gone); EDS and RDS responses carry
   * (some of) the named resources. The resources are stored already (`store`).
   */
  private applySotw(typeUrl: string, stored: readonly string[]): void {
    if (typeUrl === CDS || typeUrl === LDS) {
      const map = typeUrl === CDS ? this.held.clusters : this.held.listeners;
      const seen = new Set<string>();
      for (const n of stored) seen.add(n);
      if (map.size > seen.size) for (const n of [...map.keys()]) if (!seen.has(n)) map.delete(n);
    }
    this.afterUpdate(typeUrl);
  }

  /** Delta: the resources are stored already (`store`); `removed` names are gone. */
  private applyDelta(typeUrl: string, removed: string[]): void {
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

  /**
   * Stores the resource of type `typeUrl` whose serialized value is buf[s, e) (a copy of the bytes is kept only in
   * verify mode, and of a watched assignment: the received bytes are not kept).
   */
  private store(typeUrl: string, buf: Buffer, s: number, e: number): string {
    const raw = this.verify ? new Uint8Array(buf.subarray(s, e)) : undefined;
    if (typeUrl === CDS) {
      const c = clusterInfoAt(buf, s, e);
      const name = shared(c.name);
      this.held.clusters.set(name, { edsName: c.edsName === undefined ? undefined : shared(c.edsName), raw });
      return name;
    }
    if (typeUrl === EDS) {
      const name = shared(nameAt(buf, s, e));
      const keep = raw ?? (this.watches.size && this.watchedCluster(name) ? new Uint8Array(buf.subarray(s, e)) : undefined);
      this.held.assignments.set(name, keep ? { raw: keep } : NO_RAW);
      // Seen when its assignment arrives.
      if (this.watches.size) this.checkWatches(name, buf.subarray(s, e), now());
      return name;
    }
    if (typeUrl === LDS) {
      const l = listenerInfo(buf.subarray(s, e));
      this.held.listeners.set(l.name, { routeNames: l.routeNames, raw });
      return l.name;
    }
    if (typeUrl === RDS) {
      const r = routeInfo(buf.subarray(s, e));
      this.held.routes.set(r.name, { virtualHosts: r.virtualHosts, raw });
      return r.name;
    }
    throw new Error(`a resource of unexpected type ${typeUrl}`);
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
