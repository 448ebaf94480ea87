/**
 * Peer metadata exchange over HTTP headers, after Istio's `istio.metadata_exchange` / peer_metadata filter, so both
 * reporters of a request know the other side's workload:
 *
 *   x-envoy-peer-metadata-id: <the sender's node id>
 *   x-envoy-peer-metadata:    base64(google.protobuf.Struct{ NAMESPACE, WORKLOAD_NAME, CLUSTER_ID, NAME, LABELS{app,
 *                                     version, service.istio.io/canonical-name, service.istio.io/canonical-revision} })
 *
 * The same encoding as Istio's, so Weft and Istio sidecars understand each other. Who does what (stats/istio/http.ts
 * calls these):
 * - client sidecar (outbound): adds both headers to the upstream request unless the cluster is external
 *   (`filter_metadata.istio.external`, or PassthroughCluster); reads and removes them from the response;
 * - server sidecar (inbound): reads and removes them from the request (the application never sees them); answers
 *   with its own only when the request carried them (so a caller outside the mesh never gets them).
 * Headers an application sets itself are removed on the way out of its sidecar as well (outbound request, inbound
 * response), so nothing spoofed or stale leaves.
 *
 * Cost: the proxy's own header values are encoded once (`PeerExchange`); a received value is decoded once and the
 * Workload is cached by the header value (bounded; the oldest quarter is dropped when full, as Istio's cache).
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { StructSchema, type Struct, type Value } from '@bufbuild/protobuf/wkt';
import type { HeaderList } from '../../http/headers.js';
import { CANONICAL_NAME_LABEL, CANONICAL_REVISION_LABEL, canonicalService } from '../../../api/canonical.js';
import type { Workload } from './workload.js';

export const PEER_METADATA_HEADER = 'x-envoy-peer-metadata';
export const PEER_METADATA_ID_HEADER = 'x-envoy-peer-metadata-id';

/** How many decoded peers are kept (a mesh has far fewer distinct workloads). */
export const PEER_CACHE_SIZE = 1024;

function stringValue(s: string): Value {
  return { $typeName: 'google.protobuf.Value', kind: { case: 'stringValue', value: s } } as Value;
}

function structValue(fields: Record<string, Value>): Value {
  return { $typeName: 'google.protobuf.Value', kind: { case: 'structValue', value: create(StructSchema, { fields }) } } as Value;
}

/** The Struct a workload sends (fields written in sorted order): the HTTP header's content and the TCP exchange's. */
export function peerMetadataStruct(w: Workload, nodeId: string): Struct {
  const labels: Record<string, Value> = {};
  if (w.app) labels['app'] = stringValue(w.app);
  if (w.version) labels['version'] = stringValue(w.version);
  if (w.canonicalService) labels[CANONICAL_NAME_LABEL] = stringValue(w.canonicalService);
  if (w.canonicalRevision) labels[CANONICAL_REVISION_LABEL] = stringValue(w.canonicalRevision);
  const fields: Record<string, Value> = {};
  if (w.clusterId) fields['CLUSTER_ID'] = stringValue(w.clusterId);
  fields['LABELS'] = structValue(sorted(labels));
  if (nodeId) fields['NAME'] = stringValue(nodeId);
  if (w.namespace) fields['NAMESPACE'] = stringValue(w.namespace);
  if (w.workloadName) fields['WORKLOAD_NAME'] = stringValue(w.workloadName);
  return create(StructSchema, { fields });
}

/** The header value a workload sends: base64 of the binary Struct. */
export function encodePeerMetadata(w: Workload, nodeId: string): string {
  return Buffer.from(toBinary(StructSchema, peerMetadataStruct(w, nodeId))).toString('base64');
}

function sorted<T>(o: Record<string, T>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const k of Object.keys(o).sort()) out[k] = o[k]!;
  return out;
}

function fieldString(s: Struct, key: string): string {
  const v = s.fields[key];
  return v?.kind.case === 'stringValue' ? v.kind.value : '';
}

/** Decodes a received `x-envoy-peer-metadata` value; undefined when it is not base64 of a Struct. */
export function decodePeerMetadata(value: string): Workload | undefined {
  let s: Struct;
  try {
    s = fromBinary(StructSchema, Buffer.from(value, 'base64'));
  } catch {
    return undefined;
  }
  return workloadOfStruct(s);
}

/**
 * The workload a peer's metadata Struct describes. Labels follow Istio's convertStructToWorkloadMetadata (canonical
 * name from the labels with the injector's defaults; the canonical revision only when the labels give one).
 */
export function workloadOfStruct(s: Struct): Workload {
  const labelsV = s.fields['LABELS'];
  const labels: Record<string, string> = {};
  if (labelsV?.kind.case === 'structValue') {
    for (const [k, v] of Object.entries(labelsV.kind.value.fields)) if (v.kind.case === 'stringValue') labels[k] = v.kind.value;
  }
  const workloadName = fieldString(s, 'WORKLOAD_NAME');
  const c = canonicalService(labels, workloadName);
  return Object.freeze({
    workloadName,
    namespace: fieldString(s, 'NAMESPACE'),
    clusterId: fieldString(s, 'CLUSTER_ID'),
    app: labels['app'] ?? '',
    version: labels['version'] ?? '',
    canonicalService: c.name,
    canonicalRevision: labels[CANONICAL_REVISION_LABEL] ?? labels['app.kubernetes.io/version'] ?? labels['version'] ?? '',
    serviceAccount: '',
  });
}

/** The proxy's side of the exchange: its own header values (encoded once) and the cache of decoded peers. */
export class PeerExchange {
  /** This proxy's `x-envoy-peer-metadata` value. */
  readonly value: string;
  private readonly cache = new Map<string, Workload | null>();

  constructor(
    readonly local: Workload,
    /** This proxy's node id (`x-envoy-peer-metadata-id`). */
    readonly id: string,
  ) {
    this.value = encodePeerMetadata(local, id);
  }

  /** The peer a header value names (decoded once per distinct value); undefined for an undecodable value. */
  peer(value: string): Workload | undefined {
    return this.cached(value, decodePeerMetadata);
  }

  /**
   * The peer a cache key names, decoded with `decode` the first time (also the TCP exchange's, tcp-exchange.ts).
   * The cache is bounded: when full, the oldest quarter is dropped.
   */
  cached(key: string, decode: (key: string) => Workload | undefined): Workload | undefined {
    let w = this.cache.get(key);
    if (w === undefined) {
      if (this.cache.size >= PEER_CACHE_SIZE) {
        let drop = PEER_CACHE_SIZE >> 2;
        for (const k of this.cache.keys()) {
          this.cache.delete(k);
          if (--drop === 0) break;
        }
      }
      w = decode(key) ?? null;
      this.cache.set(key, w);
    }
    return w ?? undefined;
  }

  /** Appends this proxy's two headers; the caller has taken any others off (takePeerHeaders) on the same list. */
  inject(h: HeaderList): void {
    h.push(PEER_METADATA_ID_HEADER, this.id, PEER_METADATA_HEADER, this.value);
  }
}

/**
 * Removes both exchange headers from `h`; returns the `x-envoy-peer-metadata` value ('' when absent). One pass; a
 * header list without them is only read.
 */
export function takePeerHeaders(h: HeaderList): string {
  let value = '';
  let w = -1;
  for (let r = 0; r < h.length; r += 2) {
    const n = h[r]!;
    const len = n.length;
    if ((len === 21 || len === 24) && (n.charCodeAt(0) | 0x20) === 120 /* x */ && isPeerHeader(n)) {
      if (len === 21 && value === '') value = h[r + 1]!;
      if (w < 0) w = r;
      continue;
    }
    if (w >= 0) {
      h[w] = n;
      h[w + 1] = h[r + 1]!;
      w += 2;
    }
  }
  if (w >= 0) h.length = w;
  return value;
}

function isPeerHeader(n: string): boolean {
  const l = n.length === 21 || n.length === 24 ? n.toLowerCase() : '';
  return l === PEER_METADATA_HEADER || l === PEER_METADATA_ID_HEADER;
}
