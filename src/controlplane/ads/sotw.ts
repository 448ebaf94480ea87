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
import { create } from '@bufbuild/protobuf';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { DiscoveryResponseSchema } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DiscoveryRequest, DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { SnapshotCache } from '../cache/cache.js';
import type { Snapshot, VersionedResource } from '../cache/snapshot.js';
import { isFullStateType, setVersion } from '../cache/snapshot.js';
import type { AdsHooks } from './stream.js';
import { AdsStreamBase } from './stream.js';

interface SotwTypeState {
  wildcard: boolean;
  names: Set<string>;
  /** Version (set hash) of the last response sent, or the version the client resumed with. */
  sentVersion?: string;
  sentNonce?: string;
  /** version_info of the client's first request on this stream (resumption after a reconnect). */
  resumeVersion?: string;
  /** For types that are not full-state: name → version last sent on this stream. */
  sent: Map<string, string>;
}

export class SotwStream extends AdsStreamBase {
  private readonly types = new Map<string, SotwTypeState>();

  constructor(
    cache: SnapshotCache,
    hooks: AdsHooks,
    private readonly call: Pick<ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>, 'write'>,
  ) {
    super(cache, hooks, 'sotw');
  }

  onRequest(req: DiscoveryRequest): void {
    this.identify(req.node);
    const typeUrl = req.typeUrl;
    if (!typeUrl) return; // nothing to answer (Envoy never sends this on ADS)
    let st = this.types.get(typeUrl);
    const first = !st;
    if (!st) {
      st = { wildcard: false, names: new Set(), sent: new Map() };
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
    // Every SotW request carries the complete subscription for its type.
    const names = req.resourceNames;
    if (names.includes('*')) {
      st.wildcard = true;
      st.names = new Set(names.filter((n) => n !== '*'));
    } else if (names.length === 0 && isFullStateType(typeUrl) && (first || st.wildcard)) {
      st.wildcard = true;
      st.names = new Set();
    } else {
      st.wildcard = false;
      st.names = new Set(names);
    }
    const snap = this.snapshot();
    if (snap) this.push(typeUrl, snap);
  }

  protected push(typeUrl: string, snap: Snapshot): void {
    const st = this.types.get(typeUrl);
    if (!st) return;
    const all = snap.resources(typeUrl);
    let items: VersionedResource[];
    let version: string;
    if (st.wildcard && st.names.size === 0) {
      items = [...all.values()];
      version = snap.typeVersion(typeUrl);
    } else {
      items = [];
      if (st.wildcard) items.push(...all.values());
      else for (const n of st.names) { const r = all.get(n); if (r) items.push(r); }
      // A subscription naming every resource of the type (Envoy's EDS after CDS) shares the snapshot's version.
      version = items.length === all.size ? snap.typeVersion(typeUrl) : setVersion(items);
    }
    if (version === st.sentVersion) return;
    const fullState = isFullStateType(typeUrl);
    if (st.sentNonce === undefined && st.resumeVersion === version) {
      // The client reconnected holding exactly this set: nothing to send.
      st.sentVersion = version;
      st.sentNonce = '';
      if (!fullState) for (const r of items) st.sent.set(r.name, r.version);
      this.recordSent(typeUrl, version, '');
      this.recordAck(typeUrl, version);
      return;
    }
    let out = items;
    if (!fullState) {
      out = items.filter((r) => st.sent.get(r.name) !== r.version);
      for (const r of out) st.sent.set(r.name, r.version);
      if (st.sent.size > items.length) {
        const keep = new Set(items.map((r) => r.name));
        for (const n of st.sent.keys()) if (!keep.has(n)) st.sent.delete(n);
      }
    }
    st.sentVersion = version;
    if (out.length === 0 && !fullState) return; // the set shrank: nothing the client needs to hear
    const nonce = this.nextNonce();
    const res = create(DiscoveryResponseSchema, {
      versionInfo: version,
      typeUrl,
      nonce,
      resources: out.map((r) => r.resource),
    });
    st.sentNonce = nonce;
    this.recordSent(typeUrl, version, nonce);
    let bytes = 0;
    for (const r of out) bytes += r.resource.value.length;
    this.hooks.onPush?.({ nodeId: this.nodeId!, typeUrl, version, resources: out.length, removed: 0, bytes, snapshot: snap.version });
    this.call.write(res);
  }
}
