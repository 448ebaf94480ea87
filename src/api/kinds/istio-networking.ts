import type { KindDef } from './kind.js';

export const istioNetworkingKinds: ReadonlyArray<KindDef<any>> = [];
