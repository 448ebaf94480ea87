/**
 * Dynamic metadata of one request (Envoy's StreamInfo::dynamicMetadata): per filter namespace
 * (`envoy.filters.http.jwt_authn`, `istio_authn`, `envoy.filters.http.rbac`) a JSON-like struct that filters write
 * and later filters read (RBAC metadata matchers, ext_authz's filter_enabled_metadata). Kept on the stream object
 * under a symbol, created only when a filter writes, so a request no filter writes metadata for costs nothing.
 *
 *   setMetadata(stream, 'envoy.filters.http.jwt_authn', 'issuer', payload)
 *   metadataNamespace(stream, 'istio_authn')?.['request.auth.principal']
 */
import type { DownstreamStream } from '../server/connection.js';

/** A metadata struct: google.protobuf.Struct as plain JSON values. */
export type MetadataStruct = Record<string, unknown>;

const METADATA = Symbol('weft.dynamicMetadata');

type WithMetadata = DownstreamStream & { [METADATA]?: Map<string, MetadataStruct> };

/** Sets one key of a namespace (creating both as needed; Envoy merges a filter's struct into its namespace). */
export function setMetadata(stream: DownstreamStream, namespace: string, key: string, value: unknown): void {
  const s = stream as WithMetadata;
  let all = s[METADATA];
  if (all === undefined) s[METADATA] = all = new Map();
  let ns = all.get(namespace);
  if (ns === undefined) all.set(namespace, (ns = {}));
  ns[key] = value;
}

/** A namespace's struct, undefined when no filter wrote to it for this request. */
export function metadataNamespace(stream: DownstreamStream, namespace: string): MetadataStruct | undefined {
  return (stream as WithMetadata)[METADATA]?.get(namespace);
}
