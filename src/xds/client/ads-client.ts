/**
 * `AdsClient`: Weft's xDS client. One aggregated (ADS) gRPC stream to any xDS server, Delta or SotW.
 *
 *   const client = new AdsClient({ server: '127.0.0.1:15010', node: { id, metadata } });
 *   client.watch<Cluster>(TypeUrl.Cluster, { wildcard: true, onUpdate(u) { ...; client.subscribe(EDS, names) } });
 *   client.watch<ClusterLoadAssignment>(TypeUrl.ClusterLoadAssignment, { onUpdate(u) { ... } });
 *   await client.synced([TypeUrl.Cluster, TypeUrl.ClusterLoadAssignment]);   // first full config applied
 *   client.state(); client.on('nack', (e) => ...); await client.close();
 *
 * Protocol (envoyproxy.io, "xDS REST and gRPC protocol"):
 * - `protocol: 'auto'` (default) opens DeltaAggregatedResources and, when the server answers UNIMPLEMENTED before
 *   any response, switches to StreamAggregatedResources for good (event `fallback`).
 * - The first request of every stream carries the node. A wildcard type is requested with no names (the legacy
 *   wildcard form every server understands) or with `*` plus its explicit names; a named type is requested only
 *   once it has names (an empty first request would mean wildcard).
 * - Delta: subscriptions change with resource_names_subscribe / _unsubscribe (spontaneous requests carry no
 *   nonce); on a new stream the client re-subscribes everything and sends initial_resource_versions with every
 *   resource it holds, so the server sends only what changed. ACK = response_nonce; NACK adds error_detail.
 * - SotW: every request carries the full name list, the version_info of the last accepted response and the
 *   nonce of the last response received for the type; a NACK repeats the previous version_info with
 *   error_detail. On a new stream the first request carries the last accepted version_info, so a server that
 *   supports resumption sends nothing. For LDS and CDS a resource missing from a response is deleted; for EDS,
 *   RDS and the rest a response only adds or changes (see ./resources.ts).
 * - Responses are applied one at a time, in arrival order, across all types; a response is ACKed only after its
 *   handler resolved, NACKed (code INVALID_ARGUMENT) when it threw or the response is malformed. A handler is
 *   called only when something changed (a resource whose bytes are unchanged is never re-delivered, so a
 *   resumed stream that re-sends everything costs no re-apply), and always for the first response of a type.
 * - When the stream ends or fails, the client keeps everything it holds and opens a new stream after an
 *   exponential backoff with full jitter (./backoff.ts); the attempt count restarts once a stream receives a
 *   response. Each stream uses a fresh channel, so grpc-js's own reconnect backoff never adds to ours.
 * - `unsubscribe` forgets the resources of those names at once (the handler is not called: the caller knows);
 *   with a wildcard subscription the server decides and says so.
 *
 * `synced(typeUrls)` resolves once every listed type is satisfied at the same time: a wildcard type has had a
 * response accepted (an empty one counts: the server has nothing); a named type holds, or was told do not
 * exist (Delta removed_resources), every name subscribed to — a named type without names has nothing to wait
 * for. SotW cannot say that a named resource does not exist; `initialFetchTimeoutMs` bounds the wait.
 */
import { create } from '@bufbuild/protobuf';
import type { Message } from '@bufbuild/protobuf';
import { Client, connectivityState, credentials as grpcCredentials, status as grpcStatus } from '@grpc/grpc-js';
import type { ClientDuplexStream, StatusObject } from '@grpc/grpc-js';
import { aggregatedDiscoveryService } from '../ads-service.js';
import { NodeSchema } from '../gen/envoy/config/core/v3/base_pb.js';
import type { Node } from '../gen/envoy/config/core/v3/base_pb.js';
import { DeltaDiscoveryRequestSchema, DiscoveryRequestSchema } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import type {
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
} from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import { Backoff } from './backoff.js';
import { applyDelta, applySotw, isFullStateType, ResponseError } from './resources.js';
import type { Applied } from './resources.js';
import type {
  AdsClientEvents,
  AdsClientOptions,
  AdsClientState,
  AdsLogger,
  AdsProtocol,
  AdsTypeStatus,
  NackInfo,
  NodeInit,
  ResourceEntry,
  WatchHandler,
} from './types.js';

const INVALID_ARGUMENT = 3;

/** Everything the client knows about one watched type (independent of streams). */
interface TypeState {
  readonly typeUrl: string;
  readonly handler: WatchHandler<Message>;
  readonly wildcard: boolean;
  readonly fullState: boolean;
  /** Explicit subscriptions (what the caller wants now). */
  readonly names: Set<string>;
  /** The resources in force (replaced, never mutated: handlers may keep a `full` map). */
  resources: Map<string, ResourceEntry>;
  absent: Set<string>;
  ackedVersion?: string;
  ackedAt?: number;
  nack?: NackInfo;
  updates: number;
  initialFetchTimer?: NodeJS.Timeout;
  initialFetchTimedOut: boolean;
}

/** What the server of one stream was told about a type. */
interface StreamTypeState {
  requested: boolean;
  wildcard: boolean;
  names: Set<string>;
  /** SotW: the last resource_names sent, and whether any request named a resource explicitly. */
  sentList: string[];
  explicitSent: boolean;
  /** SotW: nonce of the last response received for the type on this stream. */
  lastNonce: string;
}

interface Stream {
  readonly id: number;
  readonly protocol: AdsProtocol;
  readonly client: Client;
  readonly call: ClientDuplexStream<DiscoveryRequest | DeltaDiscoveryRequest, DiscoveryResponse | DeltaDiscoveryResponse>;
  readonly types: Map<string, StreamTypeState>;
  nodeSent: boolean;
  /** A response arrived on this stream. */
  heard: boolean;
  ended: boolean;
}

interface AckInfo {
  nonce: string;
  version: string;
  error?: string;
}

interface SyncWaiter {
  typeUrls: readonly string[];
  resolve(): void;
  reject(e: Error): void;
}

type Listener<T> = (event: T) => void;

const noopLogger: AdsLogger = { debug() {}, info() {}, warn() {}, error() {} };

function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function buildNode(n: NodeInit): Node {
  return create(NodeSchema, {
    id: n.id,
    cluster: n.cluster ?? '',
    metadata: n.metadata,
    locality: n.locality ? { region: n.locality.region ?? '', zone: n.locality.zone ?? '', subZone: n.locality.subZone ?? '' } : undefined,
    userAgentName: n.userAgentName ?? 'weft',
    userAgentVersionType: n.userAgentVersion ? { case: 'userAgentVersion', value: n.userAgentVersion } : { case: undefined },
    clientFeatures: n.clientFeatures ?? [],
  });
}

export class AdsClient {
  private readonly node: Node;
  private readonly log: AdsLogger;
  private readonly backoff: Backoff;
  private readonly backoffMaxMs: number;
  private protocol: AdsProtocol;
  private readonly types = new Map<string, TypeState>();
  private readonly listeners = new Map<keyof AdsClientEvents, Set<Listener<never>>>();
  private readonly waiters: SyncWaiter[] = [];
  private stream?: Stream;
  private streamCount = 0;
  private connectedAt?: number;
  private deltaConfirmed = false;
  private connectTimer?: NodeJS.Timeout;
  private closed = false;
  /** Work applied strictly in order: responses, subscription changes, initial requests. */
  private readonly queue: Array<() => void | Promise<void>> = [];
  private running = false;
  /** The current (or last) drain loop; close() waits for it. */
  private draining?: Promise<void>;

  constructor(private readonly opts: AdsClientOptions) {
    if (!opts.node?.id) throw new Error('AdsClient: node.id is required');
    this.node = buildNode(opts.node);
    this.log = opts.logger ?? noopLogger;
    this.backoffMaxMs = opts.backoff?.maxMs ?? 30_000;
    this.backoff = new Backoff(opts.backoff?.baseMs ?? 500, this.backoffMaxMs, opts.random);
    this.protocol = opts.protocol === 'sotw' ? 'sotw' : 'delta';
  }

  // ---------------------------------------------------------------- public API

  /**
   * Watches a type: `handler.onUpdate` receives every change (see WatchHandler). One watch per type URL, for the
   * client's lifetime. The stream opens with the first watch (after the current tick, so watches registered
   * together go out in one batch, in registration order).
   */
  watch<T extends Message = Message>(typeUrl: string, handler: WatchHandler<T>): void {
    if (this.closed) throw new Error('AdsClient is closed');
    if (this.types.has(typeUrl)) throw new Error(`${typeUrl} is already watched`);
    const ts: TypeState = {
      typeUrl,
      handler: handler as unknown as WatchHandler<Message>,
      wildcard: handler.wildcard === true,
      fullState: isFullStateType(typeUrl),
      names: new Set(handler.names ?? []),
      resources: new Map(),
      absent: new Set(),
      updates: 0,
      initialFetchTimedOut: false,
    };
    this.types.set(typeUrl, ts);
    const timeout = this.opts.initialFetchTimeoutMs ?? 0;
    if (timeout > 0) ts.initialFetchTimer = setTimeout(() => this.onInitialFetchTimeout(ts), timeout);
    if (!this.stream && !this.connectTimer) this.connectTimer = setTimeout(() => this.connect(), 0);
    else this.enqueue(() => this.sync(ts));
  }

  /** Adds names to a watched type's subscription (e.g. EDS cluster names after CDS, RDS names after LDS). */
  subscribe(typeUrl: string, names: Iterable<string>): void {
    const ts = this.watched(typeUrl, 'subscribe');
    let changed = false;
    for (const n of names) {
      if (n === '*' || !n) throw new Error(`subscribe: invalid resource name ${JSON.stringify(n)} (use wildcard: true)`);
      if (!ts.names.has(n)) {
        ts.names.add(n);
        changed = true;
      }
    }
    if (changed) this.enqueue(() => this.sync(ts));
  }

  /** Removes names from a watched type's subscription; their resources are forgotten (no handler call). */
  unsubscribe(typeUrl: string, names: Iterable<string>): void {
    const ts = this.watched(typeUrl, 'unsubscribe');
    let changed = false;
    for (const n of names) {
      if (ts.names.delete(n)) {
        ts.absent.delete(n);
        changed = true;
      }
    }
    if (!changed) return;
    this.enqueue(() => this.sync(ts));
    this.checkSynced();
  }

  /** Resolves once every listed type is synced (see the module comment); rejects if the client is closed. */
  synced(typeUrls: readonly string[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('AdsClient is closed'));
    if (this.isSynced(typeUrls)) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ typeUrls: [...typeUrls], resolve, reject }));
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<E extends keyof AdsClientEvents>(event: E, listener: Listener<AdsClientEvents[E]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener as Listener<never>);
    return () => {
      set!.delete(listener as Listener<never>);
    };
  }

  state(): AdsClientState {
    const connected = this.isConnected();
    const types: Record<string, AdsTypeStatus> = {};
    for (const ts of this.types.values()) {
      types[ts.typeUrl] = {
        typeUrl: ts.typeUrl,
        wildcard: ts.wildcard,
        names: [...ts.names].sort(),
        resources: ts.resources.size,
        ackedVersion: ts.ackedVersion,
        ackedAt: ts.ackedAt,
        nack: ts.nack ? { ...ts.nack } : undefined,
        updates: ts.updates,
        synced: this.typeSynced(ts),
        initialFetchTimedOut: ts.initialFetchTimedOut,
        connected,
      };
    }
    return { server: this.opts.server, protocol: this.protocol, connected, connectedAt: connected ? this.connectedAt : undefined, streams: this.streamCount, types };
  }

  /** The resources currently held for a type (the `full` map of the last applied update). */
  resources(typeUrl: string): ReadonlyMap<string, ResourceEntry> {
    return this.types.get(typeUrl)?.resources ?? new Map();
  }

  /**
   * Ends the stream and the channel, stops timers, rejects pending `synced()` calls. Resolves once the update
   * being applied (if any) has finished; nothing else is applied after `close()`.
   */
  async close(): Promise<void> {
    if (this.closed) return this.draining;
    this.closed = true;
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    for (const ts of this.types.values()) clearTimeout(ts.initialFetchTimer);
    const s = this.stream;
    this.stream = undefined;
    if (s) this.endStream(s);
    this.queue.length = 0;
    const err = new Error('AdsClient is closed');
    for (const w of this.waiters.splice(0)) w.reject(err);
    await this.draining;
  }

  // ---------------------------------------------------------------- connection

  /** `auto` mode before any Delta stream has received a response (an UNIMPLEMENTED may still come). */
  private protocolUnconfirmed(): boolean {
    return (this.opts.protocol ?? 'auto') === 'auto' && !this.deltaConfirmed;
  }

  private isConnected(): boolean {
    return this.stream !== undefined && this.connectedAt !== undefined;
  }

  private connect(): void {
    this.connectTimer = undefined;
    if (this.closed) return;
    const protocol = this.protocol;
    const client = new Client(this.opts.server, this.opts.credentials ?? grpcCredentials.createInsecure(), {
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.max_send_message_length': 64 * 1024 * 1024,
      // A private subchannel: a new stream gets a new connection attempt now, not after grpc-js's own backoff.
      'grpc.use_local_subchannel_pool': 1,
      ...this.opts.channelOptions,
    });
    const method = protocol === 'delta' ? aggregatedDiscoveryService.DeltaAggregatedResources : aggregatedDiscoveryService.StreamAggregatedResources;
    const call = client.makeBidiStreamRequest(
      method.path,
      method.requestSerialize as (r: DiscoveryRequest | DeltaDiscoveryRequest) => Buffer,
      method.responseDeserialize as (b: Buffer) => DiscoveryResponse | DeltaDiscoveryResponse,
    );
    const stream: Stream = { id: ++this.streamCount, protocol, client, call, types: new Map(), nodeSent: false, heard: false, ended: false };
    this.stream = stream;
    this.connectedAt = undefined;
    this.log.debug({ server: this.opts.server, protocol, stream: stream.id }, 'xds: opening ADS stream');
    // Connected once the channel is READY (servers send response headers only with their first response, and
    // a resumed stream may get no response at all), or once the server answered.
    const channel = client.getChannel();
    const watchReady = (): void => {
      if (stream.ended) return;
      const now = channel.getConnectivityState(false);
      // Until a Delta stream has answered once, `auto` cannot know the server speaks Delta: wait for an answer.
      if (now === connectivityState.READY) {
        if (!(protocol === 'delta' && this.protocolUnconfirmed())) this.markConnected(stream);
      } else if (now !== connectivityState.SHUTDOWN) {
        channel.watchConnectivityState(now, Infinity, watchReady);
      }
    };
    watchReady();
    call.on('metadata', () => this.markConnected(stream));
    call.on('data', (res: DiscoveryResponse | DeltaDiscoveryResponse) => {
      if (stream.ended || this.closed) return;
      stream.heard = true;
      if (stream.protocol === 'delta') this.deltaConfirmed = true;
      this.markConnected(stream);
      this.enqueue(() => this.onResponse(stream, res));
    });
    call.on('error', () => {}); // the status event reports it
    call.on('status', (s: StatusObject) => this.onStreamEnd(stream, s));
    this.enqueue(() => {
      for (const ts of this.types.values()) this.sync(ts);
    });
  }

  private markConnected(stream: Stream): void {
    if (stream !== this.stream || stream.ended || this.connectedAt !== undefined) return;
    this.connectedAt = Date.now();
    this.log.info({ server: this.opts.server, protocol: stream.protocol }, 'xds: connected');
    this.emit('connected', { protocol: stream.protocol });
  }

  private endStream(s: Stream): void {
    if (s.ended) return;
    s.ended = true;
    s.call.cancel();
    s.client.close();
  }

  private onStreamEnd(stream: Stream, s: StatusObject): void {
    if (stream.ended) return;
    const connectedAt = stream === this.stream ? this.connectedAt : undefined;
    const wasConnected = connectedAt !== undefined;
    this.endStream(stream);
    if (this.closed || stream !== this.stream) return;
    this.stream = undefined;
    this.connectedAt = undefined;
    const details = s.details || grpcStatus[s.code] || `code ${s.code}`;
    if (wasConnected) {
      this.log.warn({ server: this.opts.server, protocol: stream.protocol, code: s.code, details }, 'xds: stream ended');
      this.emit('disconnected', { protocol: stream.protocol, code: s.code, details });
    }
    // Envoy restarts its backoff when a stream receives a response; a stream that stayed up longer than the
    // longest delay (a resumed stream may hear nothing) was healthy too.
    if (stream.heard || (connectedAt !== undefined && Date.now() - connectedAt >= this.backoffMaxMs)) this.backoff.reset();
    if (s.code === grpcStatus.UNIMPLEMENTED && !stream.heard && stream.protocol === 'delta' && (this.opts.protocol ?? 'auto') === 'auto') {
      this.protocol = 'sotw';
      this.log.info({ server: this.opts.server, details }, 'xds: Delta ADS not implemented by the server, using SotW');
      this.emit('fallback', { from: 'delta', to: 'sotw', details });
      this.connectTimer = setTimeout(() => this.connect(), 0);
      return;
    }
    const attempt = this.backoff.attempts + 1;
    const delayMs = this.backoff.next();
    this.log.info({ server: this.opts.server, code: s.code, details, attempt, delayMs }, 'xds: reconnecting');
    this.emit('reconnecting', { attempt, delayMs, code: s.code, details });
    this.connectTimer = setTimeout(() => this.connect(), delayMs);
  }

  // ---------------------------------------------------------------- ordered work

  private enqueue(task: () => void | Promise<void>): void {
    if (this.closed) return;
    this.queue.push(task);
    if (this.running) return;
    // Set before drain() starts: a task that enqueues synchronously (a handler calling subscribe) must not start
    // a second drain loop.
    this.running = true;
    this.draining = this.drain();
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.closed) {
        const task = this.queue.shift()!;
        try {
          await task();
        } catch (e) {
          this.log.error({ err: errorMessage(e) }, 'xds: internal error');
        }
      }
    } finally {
      this.running = false;
    }
  }

  // ---------------------------------------------------------------- requests

  private watched(typeUrl: string, what: string): TypeState {
    if (this.closed) throw new Error('AdsClient is closed');
    const ts = this.types.get(typeUrl);
    if (!ts) throw new Error(`${what}: ${typeUrl} is not watched (call watch() first)`);
    return ts;
  }

  /** Forgets the resources of names no longer subscribed to (not with a wildcard: the server decides then). */
  private reconcile(ts: TypeState): void {
    if (ts.wildcard) return;
    for (const n of ts.resources.keys()) {
      if (!ts.names.has(n)) {
        ts.resources = new Map([...ts.resources].filter(([k]) => ts.names.has(k)));
        return;
      }
    }
  }

  /** Reconciles, then tells the current stream's server what changed in the subscription, if anything. */
  private sync(ts: TypeState): void {
    this.reconcile(ts);
    const s = this.stream;
    if (s && !s.ended) this.send(s, ts);
    this.checkSynced();
  }

  private streamType(s: Stream, typeUrl: string): StreamTypeState {
    let st = s.types.get(typeUrl);
    if (!st) s.types.set(typeUrl, (st = { requested: false, wildcard: false, names: new Set(), sentList: [], explicitSent: false, lastNonce: '' }));
    return st;
  }

  /** Sends the request `ts` needs on `s`, if any: the first request, a subscription change, an ACK or a NACK. */
  private send(s: Stream, ts: TypeState, ack?: AckInfo): void {
    if (s !== this.stream || s.ended) return;
    const st = this.streamType(s, ts.typeUrl);
    if (s.protocol === 'delta') this.sendDelta(s, ts, st, ack);
    else this.sendSotw(s, ts, st, ack);
  }

  private nodeOnce(s: Stream): Node | undefined {
    if (s.nodeSent) return undefined;
    s.nodeSent = true;
    return this.node;
  }

  private sendDelta(s: Stream, ts: TypeState, st: StreamTypeState, ack?: AckInfo): void {
    const errorDetail = ack?.error !== undefined ? { code: INVALID_ARGUMENT, message: ack.error } : undefined;
    if (!st.requested) {
      if (!ts.wildcard && ts.names.size === 0) return; // nothing to ask for (an empty request would mean wildcard)
      const subscribe = ts.wildcard ? (ts.names.size > 0 ? ['*', ...ts.names] : []) : [...ts.names];
      const initialResourceVersions: Record<string, string> = {};
      for (const r of ts.resources.values()) initialResourceVersions[r.name] = r.version;
      st.requested = true;
      st.wildcard = ts.wildcard;
      st.names = new Set(ts.names);
      this.write(s, create(DeltaDiscoveryRequestSchema, { node: this.nodeOnce(s), typeUrl: ts.typeUrl, resourceNamesSubscribe: subscribe, initialResourceVersions }));
      return;
    }
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    if (ts.wildcard && !st.wildcard) subscribe.push('*');
    if (!ts.wildcard && st.wildcard) unsubscribe.push('*');
    for (const n of ts.names) if (!st.names.has(n)) subscribe.push(n);
    for (const n of st.names) if (!ts.names.has(n)) unsubscribe.push(n);
    if (!ack && subscribe.length === 0 && unsubscribe.length === 0) return;
    st.wildcard = ts.wildcard;
    st.names = new Set(ts.names);
    this.write(s, create(DeltaDiscoveryRequestSchema, {
      node: this.nodeOnce(s),
      typeUrl: ts.typeUrl,
      responseNonce: ack?.nonce ?? '',
      errorDetail,
      resourceNamesSubscribe: subscribe,
      resourceNamesUnsubscribe: unsubscribe,
    }));
  }

  private sendSotw(s: Stream, ts: TypeState, st: StreamTypeState, ack?: AckInfo): void {
    const names = [...ts.names].sort();
    // The legacy wildcard (no names) until a name was ever sent; after that, `*` says it explicitly.
    const list = ts.wildcard ? (names.length === 0 && !st.explicitSent ? [] : ['*', ...names]) : names;
    const first = !st.requested;
    if (first && !ts.wildcard && names.length === 0) return;
    if (!first && !ack && list.length === st.sentList.length && list.every((n, i) => n === st.sentList[i])) return;
    st.requested = true;
    st.sentList = list;
    if (list.length > 0) st.explicitSent = true;
    const versionInfo = ack && ack.error === undefined ? ack.version : (ts.ackedVersion ?? '');
    this.write(s, create(DiscoveryRequestSchema, {
      node: this.nodeOnce(s),
      typeUrl: ts.typeUrl,
      versionInfo,
      resourceNames: list,
      responseNonce: first ? '' : st.lastNonce,
      errorDetail: ack?.error !== undefined ? { code: INVALID_ARGUMENT, message: ack.error } : undefined,
    }));
  }

  private write(s: Stream, req: DiscoveryRequest | DeltaDiscoveryRequest): void {
    this.log.debug({ stream: s.id, typeUrl: req.typeUrl, nonce: req.responseNonce, nack: req.errorDetail !== undefined }, 'xds: request');
    s.call.write(req);
  }

  // ---------------------------------------------------------------- responses

  private async onResponse(s: Stream, res: DiscoveryResponse | DeltaDiscoveryResponse): Promise<void> {
    const ts = this.types.get(res.typeUrl);
    const st = s.types.get(res.typeUrl);
    if (!ts || !st?.requested) {
      this.log.warn({ typeUrl: res.typeUrl }, 'xds: response for a type that was not requested, ignored');
      return;
    }
    if (s.protocol === 'sotw') st.lastNonce = res.nonce;
    let applied: Applied | undefined;
    let error: string | undefined;
    try {
      applied = s.protocol === 'delta'
        ? applyDelta(ts.typeUrl, ts, res as DeltaDiscoveryResponse)
        : applySotw(ts.typeUrl, ts, res as DiscoveryResponse, ts.fullState);
      if (applied.added.size > 0 || applied.removed.length > 0 || ts.updates === 0) {
        await ts.handler.onUpdate({
          typeUrl: ts.typeUrl,
          added: applied.added,
          removed: applied.removed,
          full: applied.full,
          systemVersion: applied.systemVersion,
          first: ts.updates === 0,
        });
      }
    } catch (e) {
      error = errorMessage(e) || (e instanceof ResponseError ? 'invalid response' : 'update rejected');
    }
    if (this.closed) return;
    const version = applied?.systemVersion ?? (s.protocol === 'delta' ? (res as DeltaDiscoveryResponse).systemVersionInfo : (res as DiscoveryResponse).versionInfo);
    clearTimeout(ts.initialFetchTimer);
    ts.initialFetchTimer = undefined;
    if (error === undefined && applied) {
      ts.resources = applied.full;
      ts.absent = applied.absent;
      ts.ackedVersion = version;
      ts.ackedAt = Date.now();
      ts.nack = undefined;
      ts.updates++;
      this.log.debug({ typeUrl: ts.typeUrl, version, added: applied.added.size, removed: applied.removed.length }, 'xds: applied');
      this.emit('ack', { typeUrl: ts.typeUrl, version, nonce: res.nonce });
    } else {
      const message = error ?? 'invalid response';
      ts.nack = { version, nonce: res.nonce, message, at: Date.now() };
      this.log.warn({ typeUrl: ts.typeUrl, version, error: message }, 'xds: update rejected');
      this.emit('nack', { typeUrl: ts.typeUrl, version, nonce: res.nonce, message });
    }
    // Names unsubscribed while the handler ran are dropped; the ACK carries the current subscription.
    this.reconcile(ts);
    this.send(s, ts, { nonce: res.nonce, version, error });
    this.checkSynced();
  }

  // ---------------------------------------------------------------- synced

  private typeSynced(ts: TypeState): boolean {
    if (ts.initialFetchTimedOut) return true;
    if (ts.wildcard && ts.updates === 0) return false;
    for (const n of ts.names) if (!ts.resources.has(n) && !ts.absent.has(n)) return false;
    return true;
  }

  private isSynced(typeUrls: readonly string[]): boolean {
    for (const t of typeUrls) {
      const ts = this.types.get(t);
      if (!ts || !this.typeSynced(ts)) return false;
    }
    return true;
  }

  private checkSynced(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (this.isSynced(w.typeUrls)) {
        this.waiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private onInitialFetchTimeout(ts: TypeState): void {
    ts.initialFetchTimer = undefined;
    if (this.closed || ts.updates > 0) return;
    ts.initialFetchTimedOut = true;
    this.log.warn({ typeUrl: ts.typeUrl, timeoutMs: this.opts.initialFetchTimeoutMs }, 'xds: initial fetch timed out');
    this.emit('initial-fetch-timeout', { typeUrl: ts.typeUrl });
    this.checkSynced();
  }

  // ---------------------------------------------------------------- events

  private emit<E extends keyof AdsClientEvents>(event: E, payload: AdsClientEvents[E]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      try {
        (l as Listener<AdsClientEvents[E]>)(payload);
      } catch (e) {
        this.log.error({ event, err: errorMessage(e) }, 'xds: event listener threw');
      }
    }
  }
}
