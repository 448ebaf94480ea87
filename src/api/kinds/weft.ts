import type { KindDef } from './kind.js';

export const weftKinds: ReadonlyArray<KindDef<any>> = [];
