/**
 * Typed Envoy xDS v3: type URLs of the resource kinds, `Any` packing, binary and proto3-JSON codecs.
 *
 * The message types and schemas are generated at build time from the Envoy API protos (see
 * scripts/gen-xds.mjs) into `src/xds/gen`; import a message's schema from there, e.g.
 * `import { ClusterSchema } from '../xds/gen/envoy/config/cluster/v3/cluster_pb.js'`.
 *
 * What needs every type at hand (the registry, `Any` of any type, proto3 JSON) is in json.ts: importing it
 * builds the descriptors of every generated file, which a sidecar does only when its admin API dumps config.
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { anyPack, anyUnpack } from '@bufbuild/protobuf/wkt';
import type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';

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

export function encode<D extends DescMessage>(schema: D, msg: MessageShape<D>): Uint8Array {
  return toBinary(schema, msg);
}

export function decode<D extends DescMessage>(schema: D, bytes: Uint8Array): MessageShape<D> {
  return fromBinary(schema, bytes);
}
