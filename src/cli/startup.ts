/**
 * Process-wide V8 settings, applied before any other module of the CLI is evaluated (the first import of
 * cli/main.ts, so it runs before the command modules load the xDS types and the control plane).
 *
 * `weft proxy`: V8's young generation does not grow while the proxy starts and applies its first configuration
 * (semi-space growth factor 1 until then). Start-up allocates mostly long-lived objects (the xDS type registry, the
 * configuration), which with the default factor (2) grow the young generation to 2 × 16 MiB that V8 never gives
 * back — ~30 MB of RSS in every idle sidecar. Once the first full configuration is applied the default growth is
 * restored (`restoreYoungGenerationGrowth`), so a proxy under load gets V8's usual young generation and scavenge
 * rate (docs/performance.md).
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default --semi-space-growth-factor. */
const DEFAULT_GROWTH_FACTOR = 2;

if (process.argv[2] === 'proxy') setFlagsFromString('--semi-space-growth-factor=1');

export function restoreYoungGenerationGrowth(): void {
  setFlagsFromString(`--semi-space-growth-factor=${DEFAULT_GROWTH_FACTOR}`);
}
