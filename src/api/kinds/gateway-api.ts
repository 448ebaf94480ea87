/**
 * The Kubernetes Gateway API family (gateway.networking.k8s.io): HTTPRoute, GRPCRoute, Gateway, GatewayClass.
 * Routes attached to Services are GAMMA mesh routes; routes attached to Gateways are edge routes. See
 * gateway-api/attach.ts for how routes merge into route tables and gateway-api/rules.ts for the rule semantics.
 */
import type { KindDef } from './kind.js';
import { defineKind } from './kind.js';
import { finalizeRoutes } from './gateway-api/attach.js';
import { translateGateway } from './gateway-api/gateway.js';
import { GATEWAY_GROUP, gatewayClassSpec, gatewaySpec, grpcRouteSpec, httpRouteSpec } from './gateway-api/schema.js';

export const gatewayApiKinds: ReadonlyArray<KindDef<any>> = [
  defineKind({
    group: GATEWAY_GROUP,
    kind: 'HTTPRoute',
    family: 'gateway-api',
    versions: ['v1', 'v1beta1'],
    namespaced: true,
    schema: httpRouteSpec,
    finalize: finalizeRoutes,
  }),
  defineKind({
    group: GATEWAY_GROUP,
    kind: 'GRPCRoute',
    family: 'gateway-api',
    versions: ['v1', 'v1alpha2'],
    deprecatedVersions: { v1alpha2: `${GATEWAY_GROUP}/v1` },
    namespaced: true,
    schema: grpcRouteSpec,
    specOptional: true,
    finalize: finalizeRoutes,
  }),
  defineKind({
    group: GATEWAY_GROUP,
    kind: 'Gateway',
    family: 'gateway-api',
    versions: ['v1', 'v1beta1'],
    namespaced: true,
    schema: gatewaySpec,
    translate: translateGateway,
  }),
  defineKind({
    group: GATEWAY_GROUP,
    kind: 'GatewayClass',
    family: 'gateway-api',
    versions: ['v1', 'v1beta1'],
    namespaced: false,
    schema: gatewayClassSpec,
  }),
];
