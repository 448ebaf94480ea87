/**
 * Istio networking.istio.io kinds (v1, v1beta1, v1alpha3): VirtualService, DestinationRule, ServiceEntry,
 * Sidecar, Gateway, WorkloadEntry and WorkloadGroup. Each lives in ./istio/.
 */
import type { KindDef } from './kind.js';
import { destinationRuleKind } from './istio/destination-rule.js';
import { gatewayKind } from './istio/gateway.js';
import { serviceEntryKind, workloadEntryKind, workloadGroupKind } from './istio/service-entry.js';
import { sidecarKind } from './istio/sidecar.js';
import { virtualServiceKind } from './istio/virtual-service.js';

export const istioNetworkingKinds: ReadonlyArray<KindDef<any>> = [
  virtualServiceKind,
  destinationRuleKind,
  serviceEntryKind,
  sidecarKind,
  gatewayKind,
  workloadEntryKind,
  workloadGroupKind,
];
