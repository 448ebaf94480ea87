import type { KindDef } from './kind.js';

export const gatewayApiKinds: ReadonlyArray<KindDef<any>> = [];
