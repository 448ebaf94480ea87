/**
 * The gRPC service definition of Envoy's AggregatedDiscoveryService, with protobuf-es codecs: used by the
 * control plane's server and by Weft's ADS client alike.
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
} from './gen/envoy/service/discovery/v3/discovery_pb.js';
import type {
  DeltaDiscoveryRequest,
  DeltaDiscoveryResponse,
  DiscoveryRequest,
  DiscoveryResponse,
} from './gen/envoy/service/discovery/v3/discovery_pb.js';

const SERVICE = '/envoy.service.discovery.v3.AggregatedDiscoveryService';

function codec<D extends DescMessage>(schema: D) {
  return {
    serialize: (m: MessageShape<D>) => Buffer.from(toBinary(schema, m)),
    deserialize: (b: Buffer) => fromBinary(schema, b),
  };
}

function bidi<Req extends DescMessage, Res extends DescMessage>(
  name: string,
  req: Req,
  res: Res,
): MethodDefinition<MessageShape<Req>, MessageShape<Res>> {
  const q = codec(req);
  const r = codec(res);
  return {
    path: `${SERVICE}/${name}`,
    requestStream: true,
    responseStream: true,
    requestSerialize: q.serialize,
    requestDeserialize: q.deserialize,
    responseSerialize: r.serialize,
    responseDeserialize: r.deserialize,
  };
}

export interface AdsMethods {
  StreamAggregatedResources: MethodDefinition<DiscoveryRequest, DiscoveryResponse>;
  DeltaAggregatedResources: MethodDefinition<DeltaDiscoveryRequest, DeltaDiscoveryResponse>;
}

export const aggregatedDiscoveryService: ServiceDefinition & AdsMethods = {
  StreamAggregatedResources: bidi('StreamAggregatedResources', DiscoveryRequestSchema, DiscoveryResponseSchema),
  DeltaAggregatedResources: bidi('DeltaAggregatedResources', DeltaDiscoveryRequestSchema, DeltaDiscoveryResponseSchema),
};
