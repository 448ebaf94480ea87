/**
 * The xDS type registry and what needs it: `Any` of any registered type, proto3 canonical JSON (an `Any` inside a
 * message is expanded through the registry).
 *
 * Apart from index.ts because the registry holds every generated Envoy file (src/xds/gen/registry.ts) and
 * evaluating them builds all their descriptors: the control plane imports this module, a sidecar loads it only
 * when its admin API renders JSON with `Any` inside (/config_dump), so an idle sidecar does not hold the
 * descriptors of the ~100 files it never decodes (docs/performance.md).
 */
import { createRegistry, fromBinary, fromJson, toJson } from '@bufbuild/protobuf';
import {
  file_google_protobuf_any,
  file_google_protobuf_duration,
  file_google_protobuf_empty,
  file_google_protobuf_field_mask,
  file_google_protobuf_struct,
  file_google_protobuf_timestamp,
  file_google_protobuf_wrappers,
} from '@bufbuild/protobuf/wkt';
import type { DescMessage, JsonValue, JsonWriteOptions, MessageShape } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { registry as generatedRegistry } from './gen/registry.js';
import { typeNameOf } from './index.js';
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

/** Unpacks an `Any` of any registered type. Throws on an unknown type URL. */
export function unpackAny(any: Any): { typeName: string; message: MessageShape<DescMessage> } {
  const desc = registry.getMessage(typeNameOf(any.typeUrl));
  if (!desc) throw new Error(`unknown type ${any.typeUrl}`);
  return { typeName: desc.typeName, message: fromBinary(desc, any.value) };
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
