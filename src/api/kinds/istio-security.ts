import type { KindDef } from './kind.js';

export const istioSecurityKinds: ReadonlyArray<KindDef<any>> = [];
