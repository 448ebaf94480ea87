/**
 * Process-wide V8 settings, applied before any other module of the CLI is evaluated (the first import of
 * cli/main.ts, so it runs before the command modules load the xDS types and the control plane).
 *
 * `weft proxy`: V8's young generation does not grow while the proxy starts and applies its first configuration
 * (semi-space growth factor 1 until then). Start-up allocates mostly long-lived objects (the xDS type registry, the
 * configuration), which with the default factor (2) grow the young generation to 2 × 16 MiB that V8 never gives
 * back — ~30 MB of RSS in every idle sidecar. Once the first full configuration is applied
 * (`afterFirstConfig`) the default growth is restored, so a proxy under load gets V8's usual young generation and
 * scavenge rate, and one full garbage collection with compaction returns start-up garbage to the OS
 * (docs/performance.md).
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { setYoungGenerationGrowth } from '../proxy/heap.js';

/** How long after the first configuration the compacting collection runs (lets that turn's I/O settle). */
const COMPACT_DELAY_MS = 100;

if (process.argv[2] === 'proxy') setYoungGenerationGrowth(false);

export function restoreYoungGenerationGrowth(): void {
  setYoungGenerationGrowth(true);
}

/**
 * One full, compacting garbage collection. Decoding and compiling the first configuration leaves the old generation
 * with pages that are mostly garbage (the decoded xDS messages, intermediate objects of compilation); V8's own next
 * full collection only comes when the heap grows again or its memory reducer decides the process is idle, often
 * tens of seconds later or not at all, and a non-compacting collection frees few whole pages. Compaction moves the
 * live objects together so the emptied pages are unmapped (~10 MB of RSS with 1,000 services). V8's `gc` function
 * is taken from a new context (`--expose-gc` only for that context's creation); the flags are restored afterwards.
 */
export function compactHeap(): void {
  setFlagsFromString('--expose-gc');
  let gc: unknown;
  try {
    gc = runInNewContext('gc');
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
  if (typeof gc !== 'function') return;
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    (gc as () => void)();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/**
 * The first full configuration is applied: restore the young generation's growth and, once this turn's work is
 * done (the decoded messages only the xDS client's WeakRefs still point to become collectable after it), compact
 * the heap.
 */
export function afterFirstConfig(): void {
  restoreYoungGenerationGrowth();
  setTimeout(compactHeap, COMPACT_DELAY_MS).unref();
}
