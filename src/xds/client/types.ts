/**
 * Public types of the ADS client (see ./ads-client.ts for the behaviour):
 *
 * - `AdsClientOptions`: server address, node identity, protocol (`delta` | `sotw` | `auto`), backoff, logger;
 * - `WatchHandler`: what a component registers per type URL (`onUpdate` applies an update or throws to NACK it);
 * - `ResourceUpdate` / `ResourceEntry`: what `onUpdate` receives;
 * - `AdsClientState` / `AdsTypeStatus`: what `client.state()` reports for status pages and `/config_dump`;
 * - `AdsClientEvents`: the events `client.on(...)` delivers.
 */
import type { JsonObject, Message } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';

/** The identity sent in the first request of every stream (envoy.config.core.v3.Node). */
export interface NodeInit {
  id: string;
  /** Node.cluster: the service cluster the proxy runs for. */
  cluster?: string;
  locality?: { region?: string; zone?: string; subZone?: string };
  /** Node.metadata (a google.protobuf.Struct), e.g. Istio's NAMESPACE, LABELS, SERVICE_ACCOUNT. */
  metadata?: JsonObject;
  /** Node.user_agent_name (default `weft`). */
  userAgentName?: string;
  /** Node.user_agent_version. */
  userAgentVersion?: string;
  /** Node.client_features (e.g. `envoy.lb.does_not_support_overprovisioning`). */
  clientFeatures?: string[];
}

export type AdsProtocol = 'delta' | 'sotw';

/** The subset of a pino logger the client uses. */
export interface AdsLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface AdsClientOptions {
  /** `host:port` of the ADS server. */
  server: string;
  node: NodeInit;
  /**
   * `delta` (DeltaAggregatedResources), `sotw` (StreamAggregatedResources), or `auto` (default): Delta first, and
   * SotW for the rest of the client's life once a server answers the Delta method with UNIMPLEMENTED.
   */
  protocol?: AdsProtocol | 'auto';
  /**
   * Reconnect delays: exponential with full jitter, `random(0, min(maxMs, baseMs * 2^attempt))`; the attempt
   * count restarts after a stream that received a response or stayed connected for maxMs. Defaults: baseMs 500,
   * maxMs 30000.
   */
  backoff?: { baseMs?: number; maxMs?: number };
  /**
   * Envoy's ConfigSource.initial_fetch_timeout, per watched type: armed when the watch starts, disarmed by the
   * first accepted or rejected response; when it fires the type counts as synced (`synced()` stops waiting for
   * it) and an `initial-fetch-timeout` event is emitted. 0 (default) waits indefinitely.
   */
  initialFetchTimeoutMs?: number;
  logger?: AdsLogger;
  /** Default: insecure (plaintext h2c). */
  credentials?: ChannelCredentials;
  /** Extra grpc-js channel options (merged over the client's defaults). */
  channelOptions?: ChannelOptions;
  /** Random source for the backoff jitter, in [0, 1) (default Math.random). */
  random?: () => number;
}

/** One resource as the client holds it. */
export interface ResourceEntry<T extends Message = Message> {
  name: string;
  /**
   * Delta: the resource's version from the server. SotW: version_info of the response that last changed the
   * resource (SotW has no per-resource versions).
   */
  version: string;
  /** The resource as received (type URL and bytes). */
  resource: Any;
  /** The resource decoded with the generated schema of its type. */
  message: T;
}

export interface ResourceUpdate<T extends Message = Message> {
  typeUrl: string;
  /** New and changed resources (a resource whose bytes did not change is never listed). */
  added: Map<string, ResourceEntry<T>>;
  /** Names of held resources that are gone (Delta removed_resources; SotW LDS/CDS absence). */
  removed: string[];
  /** The complete set after this update. A new map per update: the previous one stays valid. */
  full: ReadonlyMap<string, ResourceEntry<T>>;
  /** SotW version_info / Delta system_version_info of the response. */
  systemVersion: string;
  /** True for the first update applied for this type (it may be empty: the server has nothing). */
  first: boolean;
}

export interface WatchHandler<T extends Message = Message> {
  /** Subscribe to every resource of the type the server has for this node (LDS, CDS). */
  wildcard?: boolean;
  /** Names to subscribe to from the start (more with `client.subscribe`). */
  names?: Iterable<string>;
  /**
   * Applies an update. Throwing (or rejecting) NACKs the response with the error's message as error_detail
   * (code INVALID_ARGUMENT); the previous set stays in force. The response is ACKed only after this resolved.
   * Updates are delivered one at a time, in the order the server sent them (across all types of the stream).
   * Subscribe to dependent names (EDS after CDS, RDS after LDS) before this returns, so `synced()` waits for them.
   */
  onUpdate(update: ResourceUpdate<T>): void | Promise<void>;
}

export interface NackInfo {
  /** The refused response's version (SotW version_info / Delta system_version_info). */
  version: string;
  nonce: string;
  message: string;
  at: number;
}

export interface AdsTypeStatus {
  typeUrl: string;
  wildcard: boolean;
  /** Explicitly subscribed names, sorted. */
  names: string[];
  /** Number of resources held. */
  resources: number;
  /** The version of the last accepted (ACKed) response. */
  ackedVersion?: string;
  ackedAt?: number;
  /** The last NACK, until a later response of the type is accepted. */
  nack?: NackInfo;
  /** Responses accepted so far. */
  updates: number;
  /** What `synced([typeUrl])` would say now. */
  synced: boolean;
  initialFetchTimedOut: boolean;
  /** Whether the client's stream is connected (same for every type: ADS is one stream). */
  connected: boolean;
}

export interface AdsClientState {
  server: string;
  /** The protocol of the current (or next) stream. */
  protocol: AdsProtocol;
  connected: boolean;
  /** When the current stream first heard from the server. */
  connectedAt?: number;
  /** Streams opened so far. */
  streams: number;
  types: Record<string, AdsTypeStatus>;
}

export interface AdsClientEvents {
  /**
   * The stream is up: its channel is READY, or the server answered. (In `auto` mode, until a Delta stream has
   * answered once, only an answer counts: the server may still say UNIMPLEMENTED.)
   */
  connected: { protocol: AdsProtocol };
  /** A connected stream ended. */
  disconnected: { protocol: AdsProtocol; code: number; details: string };
  /** A new stream will be opened after `delayMs` (`attempt` counts failures since the last response). */
  reconnecting: { attempt: number; delayMs: number; code: number; details: string };
  /** The server does not implement Delta ADS: the client uses SotW from now on. */
  fallback: { from: 'delta'; to: 'sotw'; details: string };
  ack: { typeUrl: string; version: string; nonce: string };
  nack: { typeUrl: string; version: string; nonce: string; message: string };
  'initial-fetch-timeout': { typeUrl: string };
}
