/** Every resource kind Weft reads, by API group and kind. */
import type { KindDef } from './kind.js';
import { kubernetesKinds } from './kubernetes.js';
import { istioNetworkingKinds } from './istio-networking.js';
import { istioSecurityKinds } from './istio-security.js';
import { istioTelemetryKinds } from './istio-telemetry.js';
import { smiKinds } from './smi.js';
import { gatewayApiKinds } from './gateway-api.js';
import { weftKinds } from './weft.js';

export const allKinds: ReadonlyArray<KindDef<any>> = [
  ...weftKinds,
  ...kubernetesKinds,
  ...istioNetworkingKinds,
  ...istioSecurityKinds,
  ...istioTelemetryKinds,
  ...smiKinds,
  ...gatewayApiKinds,
];

const byName = new Map<string, KindDef<any>>();
for (const k of allKinds) {
  const id = `${k.group}/${k.kind}`;
  if (byName.has(id)) throw new Error(`kind ${id} registered twice`);
  byName.set(id, k);
}

export function findKind(group: string, kind: string): KindDef<unknown> | undefined {
  return byName.get(`${group}/${kind}`);
}

export function kindsOfGroup(group: string): Array<KindDef<unknown>> {
  return allKinds.filter((k) => k.group === group);
}
