import type { KindDef } from './kind.js';

export const kubernetesKinds: ReadonlyArray<KindDef<any>> = [];
