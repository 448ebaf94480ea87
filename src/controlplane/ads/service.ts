/**
 * The server side of the AggregatedDiscoveryService (its definition lives in src/xds/ads-service.ts, shared with
 * Weft's ADS client). The server uses `serverAdsService`: the same methods, whose response serializer also accepts a response that
 * is already serialized (see encode.ts) and passes it through, and whose SotW requests are read lazily.
 */
import { toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { aggregatedDiscoveryService } from '../../xds/ads-service.js';
import { LazyDiscoveryRequest, ScratchResponse } from './encode.js';


function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A response as the streams hand it over: a message, serialized bytes, or bytes in the scratch buffer. */
export type ServerResponse<T> = T | Uint8Array | ScratchResponse;

function serializer<D extends DescMessage>(schema: D) {
  return (m: ServerResponse<MessageShape<D>>): Buffer => {
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
    responseSerialize: serializer(DeltaDiscoveryResponseSchema),
  },
};
