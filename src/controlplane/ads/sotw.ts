/**
 * State-of-the-world ADS stream (StreamAggregatedResources), per the xDS protocol:
 * - the first request carries node.id; every request names a type_url and the full subscription for it;
 * - an empty subscription on the first LDS/CDS request, or `*`, means wildcard (all resources of the type);
 * - a request whose response_nonce is not the last nonce sent for its type is stale and ignored;
 * - response_nonce = last nonce and no error_detail is an ACK of that version; with error_detail, a NACK (the
 *   error is recorded and nothing is re-sent until the resources change);
 * - version_info is a hash of the (name, version) set subscribed, so a client that reconnects with the version
 *   it already has gets no re-push, and an unchanged type is never re-sent when another type changes;
 * - LDS and CDS responses carry the full state (a missing resource is a deletion); for the other types (EDS,
 *   RDS, SDS) the protocol lets the server send only what changed, so only resources whose version differs from
 *   what this stream last sent go out (an endpoint change sends one ClusterLoadAssignment, not all of them).
 */
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { DiscoveryRequest, DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { SnapshotCache } from '../cache/cache.js';
import type { ResourceMap, Snapshot, VersionedResource } from '../cache/snapshot.js';
import { isFullStateType, setVersion } from '../cache/snapshot.js';
import { bytesPool, Coverage, Held, internNames, namePool, sameNames, subscribed } from './held.js';
import type { Subscription } from './held.js';
import type { AdsHooks } from './stream.js';
import { AdsStreamBase } from './stream.js';
import type { SendBudget } from './stream.js';
import type { ServerResponse } from './service.js';
import { encodeSotwResponse } from './encode.js';
import type { SotwRequest } from './encode.js';

interface SotwTypeState extends Subscription {
  wildcard: boolean;
  /** Shared with other streams (see namePool): replaced, never modified. */
  names: ReadonlySet<string>;
  /** Version (set hash) of the last response sent, or the version the client resumed with. */
  sentVersion?: string;
  sentNonce?: string;
  /** version_info of the client's first request on this stream (resumption after a reconnect). */
  resumeVersion?: string;
  /** For types that are not full-state: what this stream last sent of each name (what the client holds). */
  held: Held;
  coverage: Coverage;
  /** The serialized names of the request `names` was made from (see SotwRequest.resourceNamesBytes). */
  namesBytes?: Uint8Array;
}

/** The subscription read from (pooled) resource_names bytes (see onRequest). */
const subscriptions = new WeakMap<Uint8Array, { wildcard: boolean; names: ReadonlySet<string> }>();

export class SotwStream extends AdsStreamBase {
  private readonly types = new Map<string, SotwTypeState>();

  constructor(
    cache: SnapshotCache,
    hooks: AdsHooks,
    private readonly call: Pick<ServerDuplexStream<DiscoveryRequest, ServerResponse<DiscoveryResponse>>, 'write'>,
    budget?: SendBudget,
  ) {
    super(cache, hooks, 'sotw', budget);
  }

  onRequest(req: SotwRequest): void {
    this.identify(req.node);
    const typeUrl = req.typeUrl;
    if (!typeUrl) return; // nothing to answer (Envoy never sends this on ADS)
    let st = this.types.get(typeUrl);
    const first = !st;
    if (!st) {
      st = { wildcard: false, names: new Set(), held: new Held(), coverage: new Coverage() };
      this.types.set(typeUrl, st);
      this.requested.add(typeUrl);
    }
    if (req.responseNonce) {
      if (req.responseNonce !== st.sentNonce) return; // stale: a newer response is on its way
      if (req.errorDetail) {
        this.recordNack(typeUrl, st.sentVersion ?? '', req.responseNonce, req.errorDetail.message || `code ${req.errorDetail.code}`);
      } else {
        this.recordAck(typeUrl, req.versionInfo);
      }
    } else if (first && req.versionInfo) {
      st.resumeVersion = req.versionInfo;
    }
    // Every SotW request carries the complete subscription for its type. An ACK repeats it: when its bytes are
    // those of the request the set was made from, the set is kept without reading the names.
    const namesBytes = req.resourceNamesBytes;
    if (namesBytes && st.namesBytes && Buffer.compare(namesBytes, st.namesBytes) === 0) {
      this.schedule(typeUrl);
      return;
    }
    // Shared with the streams that sent the same bytes (a copy: the request's buffer may be a slice of a larger one).
    st.namesBytes = namesBytes ? bytesPool.intern(Buffer.from(namesBytes)) : undefined;
    // Names another stream read from the same bytes (a proxy of the same shape): its subscription, as is.
    const known = st.namesBytes && st.namesBytes.length > 0 ? subscriptions.get(st.namesBytes) : undefined;
    if (known) {
      st.wildcard = known.wildcard;
      st.names = known.names;
      this.schedule(typeUrl);
      return;
    }
    const names = req.resourceNames;
    const all = this.snapshot()?.resources(typeUrl);
    // Otherwise the set is kept when it is the same; a new one uses the snapshot's own name strings where they
    // exist, and is shared with the streams subscribing to the same names.
    const keepOrNew = (list: readonly string[]) => (sameNames(list, st.names) ? st.names : namePool.intern(internNames(list, all)));
    if (names.includes('*')) {
      st.wildcard = true;
      st.names = keepOrNew(names.filter((n) => n !== '*'));
    } else if (names.length === 0 && isFullStateType(typeUrl) && (first || st.wildcard)) {
      st.wildcard = true;
      st.names = keepOrNew([]);
    } else {
      st.wildcard = false;
      st.names = keepOrNew(names);
    }
    // A non-empty list means the same whatever the stream's state: the subscription it gives is shared.
    if (st.namesBytes && st.namesBytes.length > 0) subscriptions.set(st.namesBytes, { wildcard: st.wildcard, names: st.names });
    this.schedule(typeUrl);
  }

  protected push(typeUrl: string, snap: Snapshot): void {
    const st = this.types.get(typeUrl);
    if (!st) return;
    const all = snap.resources(typeUrl);
    const fullState = isFullStateType(typeUrl);
    // A subscription covering every resource of the type (wildcard, or Envoy's EDS after CDS naming every
    // cluster) shares the snapshot's version; otherwise the version is the subscribed set's.
    const covers = st.coverage.covers(st, all);
    const items = covers ? undefined : subscribed(st, all);
    const version = items ? setVersion(items) : snap.typeVersion(typeUrl);
    if (version === st.sentVersion) {
      // The same set as sent (possibly another map object with the same resources): the client holds this map.
      if (!fullState && covers && !st.held.is(all)) st.held.reset(all);
      return;
    }
    if (st.sentNonce === undefined && st.resumeVersion === version) {
      // The client reconnected holding exactly this set: nothing to send.
      st.sentVersion = version;
      st.sentNonce = '';
      if (!fullState) this.hold(st, all, items);
      this.recordSent(typeUrl, version, '');
      this.recordAck(typeUrl, version);
      return;
    }
    let out: VersionedResource[];
    if (fullState) out = items ?? [...all.values()];
    else {
      // Only what the client does not hold yet (an EDS-only push sends the changed assignments).
      const held = st.held;
      if (held.size === 0) out = items ?? [...all.values()]; // holds nothing yet (its first response): all of it
      else {
        const changes = items ? undefined : held.changesTo(all);
        const candidates = changes ? changes.changed.map((n) => all.get(n)!) : (items ?? all.values());
        out = [];
        for (const r of candidates) if (held.get(r.name)?.version !== r.version) out.push(r);
      }
      this.hold(st, all, items, out);
    }
    // The first response of the type with every resource of the map (the map's order): shared (encode.ts).
    const shareKey = st.sentNonce === undefined && covers && out.length === all.size ? `sotw\0${typeUrl}\0${version}` : undefined;
    st.sentVersion = version;
    if (out.length === 0 && !fullState) return; // the set shrank: nothing the client needs to hear
    // Serialized from the resources' packed bytes and handed to gRPC at once (encode.ts).
    const { response, nonce } = this.response((nonce, target) => encodeSotwResponse({ versionInfo: version, typeUrl, nonce, resources: out }, target), all, shareKey);
    st.sentNonce = nonce;
    this.recordSent(typeUrl, version, nonce);
    let bytes = 0;
    for (const r of out) bytes += r.resource.value.length;
    this.hooks.onPush?.({ nodeId: this.nodeId!, typeUrl, version, resources: out.length, removed: 0, bytes, snapshot: snap.version });
    this.send(response, (b, done) => this.call.write(b, done));
  }

  /**
   * Records that the client now holds the subscribed resources: the whole map when the subscription covers it
   * (`items` undefined), else `items` (of which `sent` went out now; all of them when not given).
   */
  private hold(st: SotwTypeState, all: ResourceMap, items: VersionedResource[] | undefined, sent?: VersionedResource[]): void {
    const held = st.held;
    if (!items) {
      held.reset(all);
      return;
    }
    for (const r of sent ?? items) held.set(r);
    if (held.size > items.length) {
      const keep = new Set(items.map((r) => r.name));
      for (const n of [...held.names()]) if (!keep.has(n)) held.delete(n);
    }
  }
}
