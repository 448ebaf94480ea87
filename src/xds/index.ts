/**
 * Typed Envoy xDS v3: type URLs of the resource kinds, `Any` packing, binary and proto3-JSON codecs.
 *
 * The message types and schemas are generated at build time from the Envoy API protos (see
 * scripts/gen-xds.mjs) into `src/xds/gen`; import a message's schema from there, e.g.
 * `import { ClusterSchema } from '../xds/gen/envoy/config/cluster/v3/cluster_pb.js'`.
 */
import { create, createRegistry, fromBinary, toBinary, toJson, fromJson } from '@bufbuild/protobuf';
import {
  anyPack,
  anyUnpack,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt';
import type { DescMessage, JsonValue, JsonWriteOptions, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { registry as generatedRegistry } from './gen/registry.js';
import { file_weft_dns_v1_name_table } from './name-table.js';

/**
 * Every generated Envoy type plus the protobuf well-known types, which protoc-gen-es does not generate: an `Any`
 * may hold one (Istio packs a `google.protobuf.StringValue` as a Wasm plugin's configuration).
 */
export const registry = createRegistry(
  generatedRegistry,
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
  // Weft's own ADS resource: the DNS name table (name-table.ts).
  file_weft_dns_v1_name_table,
);

/** Type URL prefix used by every xDS resource packed in `google.protobuf.Any`. */
export const TYPE_URL_PREFIX = 'type.googleapis.com/';

/** The type URLs of the xDS resource kinds served over ADS. */
export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
  ScopedRouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.ScopedRouteConfiguration',
  VirtualHost: 'type.googleapis.com/envoy.config.route.v3.VirtualHost',
  Runtime: 'type.googleapis.com/envoy.service.runtime.v3.Runtime',
} as const;
export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

/** The full name of a type from its type URL (`type.googleapis.com/a.b.C` → `a.b.C`). */
export function typeNameOf(typeUrl: string): string {
  const i = typeUrl.lastIndexOf('/');
  return i < 0 ? typeUrl : typeUrl.slice(i + 1);
}

/** Builds a message of `schema` from a partial init object. */
export function make<D extends DescMessage>(schema: D, init?: MessageInitShape<D>): MessageShape<D> {
  return create(schema, init);
}

/** Packs a message into `google.protobuf.Any` with the standard type URL. */
export function pack<D extends DescMessage>(schema: D, msg: MessageShape<D> | MessageInitShape<D>): Any {
  const m = (msg as { $typeName?: string }).$typeName ? (msg as MessageShape<D>) : create(schema, msg as MessageInitShape<D>);
  return anyPack(schema, m);
}

/** Unpacks an `Any` into a message of `schema`; throws when the type URL names another type. */
export function unpack<D extends DescMessage>(schema: D, any: Any): MessageShape<D> {
  const want = schema.typeName;
  if (typeNameOf(any.typeUrl) !== want) {
    throw new Error(`expected ${TYPE_URL_PREFIX}${want}, got ${any.typeUrl || '(empty type_url)'}`);
  }
  const m = anyUnpack(any, schema);
  if (!m) throw new Error(`cannot unpack ${any.typeUrl}`);
  return m;
}

/** Unpacks an `Any` of any registered type. Throws on an unknown type URL. */
export function unpackAny(any: Any): { typeName: string; message: MessageShape<DescMessage> } {
  const desc = registry.getMessage(typeNameOf(any.typeUrl));
  if (!desc) throw new Error(`unknown type ${any.typeUrl}`);
  return { typeName: desc.typeName, message: fromBinary(desc, any.value) };
}

export function encode<D extends DescMessage>(schema: D, msg: MessageShape<D>): Uint8Array {
  return toBinary(schema, msg);
}

export function decode<D extends DescMessage>(schema: D, bytes: Uint8Array): MessageShape<D> {
  return fromBinary(schema, bytes);
}

/**
 * Proto3 canonical JSON; `Any` values are expanded through the registry. `opts` passes writer options through, e.g.
 * `{ useProtoFieldName: true }` for the snake_case field names Envoy's admin output (`/config_dump`) uses.
 */
export function toProtoJson<D extends DescMessage>(schema: D, msg: MessageShape<D>, opts?: Partial<Omit<JsonWriteOptions, 'registry'>>): JsonValue {
  return toJson(schema, msg, opts ? { ...opts, registry } : { registry });
}

/** Parses proto3 canonical JSON; unknown fields are an error. */
export function fromProtoJson<D extends DescMessage>(schema: D, json: JsonValue): MessageShape<D> {
  return fromJson(schema, json, { registry });
}
