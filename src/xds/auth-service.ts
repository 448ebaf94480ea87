/**
 * The gRPC service definition of Envoy's external authorization API, `envoy.service.auth.v3.Authorization`
 * (one unary `Check`), with protobuf-es codecs: used by the proxy's ext_authz filters (the client) and by the
 * example authorizer in examples/ext-authz/ (the server).
 */
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { CheckRequestSchema, CheckResponseSchema, type CheckRequest, type CheckResponse } from './gen/envoy/service/auth/v3/external_auth_pb.js';

export interface AuthorizationMethods {
  Check: MethodDefinition<CheckRequest, CheckResponse>;
}

export const authorizationService: ServiceDefinition & AuthorizationMethods = {
  Check: {
    path: '/envoy.service.auth.v3.Authorization/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: CheckRequest) => Buffer.from(toBinary(CheckRequestSchema, m)),
    requestDeserialize: (b: Buffer) => fromBinary(CheckRequestSchema, b),
    responseSerialize: (m: CheckResponse) => Buffer.from(toBinary(CheckResponseSchema, m)),
    responseDeserialize: (b: Buffer) => fromBinary(CheckResponseSchema, b),
  },
};
