/**
 * The server side of the AggregatedDiscoveryService (its definition lives in src/xds/ads-service.ts, shared with
 * Weft's ADS client). The server uses `serverAdsService`: the same methods, whose response serializer also
 * accepts a response that is already serialized (see encode.ts) and passes it through, and whose requests are
 * read lazily.
 *
 * `installFramedWrites` removes gRPC's copy of every response: grpc-js frames each message it sends into a new
 * buffer (BaseServerInterceptingCall.serializeMessage: a 5-byte header, then a copy of the serialized message),
 * which for a control plane pushing megabytes to hundreds of proxies is gigabytes of copies and of short-lived
 * buffers (whose external memory makes V8 run full garbage collections). A FramedResponse is framed already:
 * with framed writes installed, gRPC sends its bytes as they are (shared by every stream that sends them).
 */
import { createRequire } from 'node:module';
import { toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { aggregatedDiscoveryService } from '../../xds/ads-service.js';
import { FramedResponse, GRPC_FRAME_HEADER, LazyDeltaDiscoveryRequest, LazyDiscoveryRequest, ScratchResponse } from './encode.js';

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A response as the streams hand it over: a message, serialized bytes, bytes in the scratch buffer, or framed. */
export type ServerResponse<T> = T | Uint8Array | ScratchResponse | FramedResponse;

function serializer<D extends DescMessage>(schema: D) {
  return (m: ServerResponse<MessageShape<D>>): Buffer => {
    if (m instanceof FramedResponse) return m.message;
    if (m instanceof ScratchResponse) return asBuffer(m.take());
    if (m instanceof Uint8Array) return asBuffer(m);
    return Buffer.from(toBinary(schema, m));
  };
}

const sotw = aggregatedDiscoveryService.StreamAggregatedResources;
const delta = aggregatedDiscoveryService.DeltaAggregatedResources;

export interface ServerAdsMethods {
  StreamAggregatedResources: MethodDefinition<DiscoveryRequest, ServerResponse<DiscoveryResponse>>;
  DeltaAggregatedResources: MethodDefinition<DeltaDiscoveryRequest, ServerResponse<DeltaDiscoveryResponse>>;
}

export const serverAdsService: ServiceDefinition & ServerAdsMethods = {
  StreamAggregatedResources: {
    ...sotw,
    // Read lazily (see LazyDiscoveryRequest); the stream reads it through the SotwRequest interface.
    requestDeserialize: (b: Buffer) => new LazyDiscoveryRequest(b) as unknown as DiscoveryRequest,
    responseSerialize: serializer(DiscoveryResponseSchema),
  },
  DeltaAggregatedResources: {
    ...delta,
    // Read lazily (see LazyDeltaDiscoveryRequest); the stream reads it through the DeltaRequest interface.
    requestDeserialize: (b: Buffer) => new LazyDeltaDiscoveryRequest(b) as unknown as DeltaDiscoveryRequest,
    responseSerialize: serializer(DeltaDiscoveryResponseSchema),
  },
};

type SerializeMessage = (this: { handler: { serialize(v: unknown): Buffer } }, value: unknown) => Buffer;

let framedWrites: boolean | undefined;

/**
 * Lets gRPC send a FramedResponse's bytes without framing them again (see the module comment); every other
 * message goes through gRPC's own framing, unchanged. Checks first that gRPC frames messages the way
 * FramedResponse does (its framing of a probe message); when it does not, or its internals are not where this
 * expects them (another grpc-js version), nothing is installed and responses are framed by gRPC with a copy, as
 * usual. Returns whether framed writes are in effect. Idempotent.
 */
export function installFramedWrites(): boolean {
  if (framedWrites !== undefined) return framedWrites;
  framedWrites = false;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: { serializeMessage?: SerializeMessage } } };
    const proto = mod.BaseServerInterceptingCall?.prototype;
    const original = proto?.serializeMessage;
    if (!proto || typeof original !== 'function') return false;
    const probe = Buffer.from('weft');
    const framed = original.call({ handler: { serialize: () => probe } }, undefined);
    const expected = Buffer.concat([Buffer.from([0, 0, 0, 0, probe.length]), probe]);
    if (!Buffer.isBuffer(framed) || framed.length !== GRPC_FRAME_HEADER + probe.length || !framed.equals(expected)) return false;
    proto.serializeMessage = function (this: ThisParameterType<SerializeMessage>, value: unknown): Buffer {
      return value instanceof FramedResponse ? value.framed : original.call(this, value);
    };
    framedWrites = true;
  } catch {
    framedWrites = false;
  }
  return framedWrites;
}

/** Whether framed writes are in effect (installFramedWrites succeeded). */
export function framedWritesInstalled(): boolean {
  return framedWrites === true;
}
