import type { KindDef } from './kind.js';

export const smiKinds: ReadonlyArray<KindDef<any>> = [];
