/**
 * Incremental ADS stream (DeltaAggregatedResources), per the xDS protocol:
 * - subscriptions change by resource_names_subscribe / _unsubscribe; the first request for LDS/CDS with no
 *   names, or `*`, subscribes to the wildcard;
 * - initial_resource_versions (on reconnect) tell what the client already has: only what differs is sent;
 * - responses carry only changed resources and the names of removed ones; a subscribed name that does not
 *   exist is reported once in removed_resources so the client need not wait for a timeout;
 * - the first wildcard request of a type on a stream is always answered, with an empty response when there is
 *   nothing to send (as go-control-plane does): without it a client whose wildcard set is empty, or who resumed
 *   with everything up to date, could not tell "nothing" from "not answered yet" and would wait for its initial
 *   fetch timeout;
 * - a NACK (error_detail) is recorded; the refused versions are not re-sent (that would loop), only a newer
 *   version of a resource is.
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { SnapshotCache } from '../cache/cache.js';
import type { Snapshot, VersionedResource } from '../cache/snapshot.js';
import { isFullStateType } from '../cache/snapshot.js';
import { bytesPool, Coverage, Held, namePool } from './held.js';
import type { Subscription } from './held.js';
import type { AdsHooks } from './stream.js';
import { AdsStreamBase } from './stream.js';
import type { SendBudget } from './stream.js';
import type { ServerResponse } from './service.js';
import { encodeDeltaResponse } from './encode.js';
import type { DeltaRequest } from './encode.js';

interface DeltaTypeState extends Subscription {
  wildcard: boolean;
  /** Shared with other streams (see namePool): replaced, never modified. */
  names: ReadonlySet<string>;
  /** What the client has (or will have once it ACKs what is in flight). */
  held: Held;
  coverage: Coverage;
  /** The subscription changed since the last push (the not-found names must be looked at again). */
  namesChanged: boolean;
  /** Names already reported as not existing. */
  notFound: Set<string>;
  /** In-flight responses: nonce → the version label they carry. */
  pending: Map<string, string>;
  /** The first wildcard request is still unanswered: the next push goes out even when empty. */
  answerEmpty: boolean;
  /** A response of the type went out on this stream. */
  sentAny: boolean;
}

/** A resource the client says it has (initial_resource_versions): only its name and version are known. */
function claimed(name: string, version: string): VersionedResource {
  return { name, version, resource: { $typeName: 'google.protobuf.Any', typeUrl: '', value: new Uint8Array(0) } };
}

/** The subscription a resource_names_subscribe (pooled bytes) gives a stream that subscribed to nothing yet. */
const subscriptions = new WeakMap<Uint8Array, { names: ReadonlySet<string>; star: boolean }>();

export class DeltaStream extends AdsStreamBase {
  private readonly types = new Map<string, DeltaTypeState>();

  constructor(
    cache: SnapshotCache,
    hooks: AdsHooks,
    private readonly call: Pick<ServerDuplexStream<DeltaDiscoveryRequest, ServerResponse<DeltaDiscoveryResponse>>, 'write'>,
    budget?: SendBudget,
  ) {
    super(cache, hooks, 'delta', budget);
  }

  onRequest(req: DeltaRequest): void {
    this.identify(req.node);
    const typeUrl = req.typeUrl;
    if (!typeUrl) return;
    let st = this.types.get(typeUrl);
    const first = !st;
    // Subscribing from nothing with the bytes another stream subscribed with (a proxy of the same shape): the
    // subscription read from them, without reading the names again.
    const bytes = req.resourceNamesSubscribeBytes;
    let pooled: Uint8Array | undefined;
    let known: { names: ReadonlySet<string>; star: boolean } | undefined;
    if (bytes && bytes.length > 0 && (!st || st.names.size === 0) && req.resourceNamesUnsubscribe.length === 0) {
      pooled = bytesPool.intern(Buffer.from(bytes));
      known = subscriptions.get(pooled);
    }
    const subscribing = known !== undefined || req.resourceNamesSubscribe.length > 0;
    if (!st) {
      st = { wildcard: false, names: new Set(), held: new Held(), coverage: new Coverage(), namesChanged: true, notFound: new Set(), pending: new Map(), answerEmpty: false, sentAny: false };
      this.types.set(typeUrl, st);
      this.requested.add(typeUrl);
      for (const [n, v] of Object.entries(req.initialResourceVersions)) st.held.set(claimed(n, v));
      if (!subscribing && isFullStateType(typeUrl)) st.wildcard = true;
      st.answerEmpty = st.wildcard || (known ? known.star : req.resourceNamesSubscribe.includes('*'));
    }
    if (req.responseNonce) {
      const version = st.pending.get(req.responseNonce);
      if (version !== undefined) {
        st.pending.delete(req.responseNonce);
        if (req.errorDetail) this.recordNack(typeUrl, version, req.responseNonce, req.errorDetail.message || `code ${req.errorDetail.code}`);
        else this.recordAck(typeUrl, version);
      }
    }
    const all = this.snapshot()?.resources(typeUrl);
    const unsubscribe = req.resourceNamesUnsubscribe;
    if (known) {
      st.namesChanged = true;
      if (known.star) st.wildcard = true;
      st.names = known.names;
    } else if (subscribing || unsubscribe.length > 0) {
      const subscribe = req.resourceNamesSubscribe;
      st.namesChanged = true;
      // A new set (the current one may be shared with other streams, see namePool).
      const names = new Set(st.names);
      for (const n of subscribe) {
        if (n === '*') st.wildcard = true;
        // The snapshot's own name strings where they exist (clients share them).
        else names.add(all?.get(n)?.name ?? n);
      }
      for (const n of unsubscribe) {
        if (n === '*') st.wildcard = false;
        else {
          names.delete(n);
          st.notFound.delete(n);
          if (!st.wildcard) st.held.delete(n);
        }
      }
      st.names = namePool.intern(names);
      // From nothing, by these bytes alone: the same for any stream sending them.
      if (pooled) subscriptions.set(pooled, { names: st.names, star: subscribe.includes('*') });
    }
    // Without a wildcard the client holds only what it subscribes to (it may have claimed more on reconnect).
    if ((first || subscribing || unsubscribe.length > 0) && !st.wildcard) {
      for (const n of [...st.held.names()]) if (!st.names.has(n)) st.held.delete(n);
    }
    this.schedule(typeUrl);
  }

  protected push(typeUrl: string, snap: Snapshot): void {
    const st = this.types.get(typeUrl);
    if (!st) return;
    const all = snap.resources(typeUrl);
    const held = st.held;
    const send: VersionedResource[] = [];
    const removed: string[] = [];
    const covers = st.coverage.covers(st, all);
    const changes = covers && !st.namesChanged ? held.changesTo(all) : undefined;
    if (covers && !st.namesChanged && held.is(all)) {
      // Nothing changed for this client.
    } else if (covers && held.size === 0 && st.notFound.size === 0 && (st.names.size === 0 || (!st.wildcard && st.names.size === all.size))) {
      // Holds nothing yet and subscribes to exactly the map (no name that does not exist): all of it.
      for (const r of all.values()) send.push(r);
      st.namesChanged = false;
    } else if (changes) {
      // The client holds the map this one was derived from: only the derivation's names can differ.
      for (const n of changes.changed) {
        const r = all.get(n)!;
        if (held.get(n)?.version !== r.version) send.push(r);
      }
      for (const n of changes.added) st.notFound.delete(n);
      for (const n of changes.removed) {
        removed.push(n);
        if (st.names.has(n)) st.notFound.add(n);
      }
    } else {
      const consider = (r: VersionedResource) => {
        if (held.get(r.name)?.version !== r.version) send.push(r);
      };
      if (st.wildcard) for (const r of all.values()) consider(r);
      for (const n of st.names) {
        const r = all.get(n);
        if (r) {
          if (!st.wildcard) consider(r);
          st.notFound.delete(n);
        } else if (!st.notFound.has(n)) {
          // Reported once: as removed when the client had it, as not existing otherwise.
          if (!held.has(n)) removed.push(n);
          st.notFound.add(n);
        }
      }
      for (const n of held.names()) if (!all.has(n)) removed.push(n);
      st.namesChanged = false;
    }
    if (send.length === 0 && removed.length === 0 && !st.answerEmpty) {
      if (covers && !held.is(all) && held.size === all.size && held.digest() === snap.typeVersion(typeUrl)) held.reset(all);
      return;
    }
    st.answerEmpty = false;
    // The first response of the type with every resource of the map: shared, in the map's order (encode.ts).
    let shareKey: string | undefined;
    if (covers && held.size === 0 && st.pending.size === 0 && !st.sentAny && removed.length === 0 && send.length === all.size) {
      shareKey = `delta\0${typeUrl}\0${snap.version}`;
      send.length = 0;
      for (const r of all.values()) send.push(r);
    }
    st.sentAny = true;
    if (covers) {
      // With a covering subscription the client now holds exactly this map.
      held.reset(all);
    } else {
      for (const r of send) held.set(r);
      for (const n of removed) held.delete(n);
    }
    const version = held.digest();
    // Serialized from the resources' packed bytes and handed to gRPC at once (encode.ts).
    const { response, nonce } = this.response(
      (nonce, target) => encodeDeltaResponse({ systemVersionInfo: snap.version, typeUrl, nonce, resources: send, removedResources: removed }, target),
      all,
      shareKey,
    );
    st.pending.set(nonce, version);
    this.recordSent(typeUrl, version, nonce);
    let bytes = 0;
    for (const r of send) bytes += r.resource.value.length;
    this.hooks.onPush?.({ nodeId: this.nodeId!, typeUrl, version, resources: send.length, removed: removed.length, bytes, snapshot: snap.version });
    this.send(response, (b, done) => this.call.write(b, done));
  }
}
