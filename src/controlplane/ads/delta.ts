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
import { create } from '@bufbuild/protobuf';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { DeltaDiscoveryResponseSchema } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { SnapshotCache } from '../cache/cache.js';
import type { Snapshot, VersionedResource } from '../cache/snapshot.js';
import { isFullStateType, setVersion } from '../cache/snapshot.js';
import type { AdsHooks } from './stream.js';
import { AdsStreamBase } from './stream.js';

interface DeltaTypeState {
  wildcard: boolean;
  names: Set<string>;
  /** name → version the client has (or will have once it ACKs what is in flight). */
  client: Map<string, string>;
  /** Names already reported as not existing. */
  notFound: Set<string>;
  /** In-flight responses: nonce → the version label they carry. */
  pending: Map<string, string>;
  /** The first wildcard request is still unanswered: the next push goes out even when empty. */
  answerEmpty: boolean;
}

export class DeltaStream extends AdsStreamBase {
  private readonly types = new Map<string, DeltaTypeState>();

  constructor(
    cache: SnapshotCache,
    hooks: AdsHooks,
    private readonly call: Pick<ServerDuplexStream<DeltaDiscoveryRequest, DeltaDiscoveryResponse>, 'write'>,
  ) {
    super(cache, hooks, 'delta');
  }

  onRequest(req: DeltaDiscoveryRequest): void {
    this.identify(req.node);
    const typeUrl = req.typeUrl;
    if (!typeUrl) return;
    let st = this.types.get(typeUrl);
    if (!st) {
      st = { wildcard: false, names: new Set(), client: new Map(), notFound: new Set(), pending: new Map(), answerEmpty: false };
      this.types.set(typeUrl, st);
      this.requested.add(typeUrl);
      for (const [n, v] of Object.entries(req.initialResourceVersions)) st.client.set(n, v);
      if (req.resourceNamesSubscribe.length === 0 && isFullStateType(typeUrl)) st.wildcard = true;
      st.answerEmpty = st.wildcard || req.resourceNamesSubscribe.includes('*');
    }
    if (req.responseNonce) {
      const version = st.pending.get(req.responseNonce);
      if (version !== undefined) {
        st.pending.delete(req.responseNonce);
        if (req.errorDetail) this.recordNack(typeUrl, version, req.responseNonce, req.errorDetail.message || `code ${req.errorDetail.code}`);
        else this.recordAck(typeUrl, version);
      }
    }
    for (const n of req.resourceNamesSubscribe) {
      if (n === '*') st.wildcard = true;
      else st.names.add(n);
    }
    for (const n of req.resourceNamesUnsubscribe) {
      if (n === '*') st.wildcard = false;
      else {
        st.names.delete(n);
        st.notFound.delete(n);
        if (!st.wildcard) st.client.delete(n);
      }
    }
    if (!st.wildcard) for (const n of [...st.client.keys()]) if (!st.names.has(n)) st.client.delete(n);
    const snap = this.snapshot();
    if (snap) this.push(typeUrl, snap);
  }

  protected push(typeUrl: string, snap: Snapshot): void {
    const st = this.types.get(typeUrl);
    if (!st) return;
    const all = snap.resources(typeUrl);
    const send: VersionedResource[] = [];
    const removed: string[] = [];
    const consider = (r: VersionedResource) => { if (st.client.get(r.name) !== r.version) send.push(r); };
    if (st.wildcard) for (const r of all.values()) consider(r);
    for (const n of st.names) {
      const r = all.get(n);
      if (r) { if (!st.wildcard) consider(r); st.notFound.delete(n); }
      else if (!st.client.has(n) && !st.notFound.has(n)) { removed.push(n); st.notFound.add(n); }
    }
    for (const n of st.client.keys()) if (!all.has(n)) removed.push(n);
    if (send.length === 0 && removed.length === 0 && !st.answerEmpty) return;
    st.answerEmpty = false;
    for (const r of send) st.client.set(r.name, r.version);
    for (const n of removed) st.client.delete(n);
    const version = setVersion([...st.client].map(([name, version]) => ({ name, version }) as VersionedResource));
    const nonce = this.nextNonce();
    st.pending.set(nonce, version);
    const res = create(DeltaDiscoveryResponseSchema, {
      systemVersionInfo: snap.version,
      typeUrl,
      nonce,
      removedResources: removed,
      resources: send.map((r) => ({ name: r.name, version: r.version, resource: r.resource })),
    });
    this.recordSent(typeUrl, version, nonce);
    let bytes = 0;
    for (const r of send) bytes += r.resource.value.length;
    this.hooks.onPush?.({ nodeId: this.nodeId!, typeUrl, version, resources: send.length, removed: removed.length, bytes, snapshot: snap.version });
    this.call.write(res);
  }
}
