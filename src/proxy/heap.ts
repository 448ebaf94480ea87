/**
 * V8's young-generation growth, shared by the CLI's start-up settings (cli/startup.ts) and the stats outputs.
 *
 * V8 grows the young generation (up to 2 × 16 MiB) when much of what it allocates survives a scavenge, and does not
 * shrink it again while the process is idle. Two bursts in a sidecar's life would grow it for good though neither
 * is traffic: start-up (decoding and compiling the first configuration; growth is off until it is applied) and a
 * full stats output (a `/stats/prometheus` scrape of a sidecar holding 1,000 services renders 12.7 MiB in about half
 * a second; growth is held off while one is written, `holdYoungGeneration`). Traffic grows it as usual.
 */
import { setFlagsFromString } from 'node:v8';

/** V8's default --semi-space-growth-factor. */
const DEFAULT_GROWTH_FACTOR = 2;

let allowed = true;
let holds = 0;

function apply(): void {
  setFlagsFromString(`--semi-space-growth-factor=${allowed && holds === 0 ? DEFAULT_GROWTH_FACTOR : 1}`);
}

/** Lets the young generation grow (V8's default) or not. */
export function setYoungGenerationGrowth(on: boolean): void {
  allowed = on;
  apply();
}

/**
 * How long a hold outlasts its release. V8 decides to grow at a scavenge from the bytes that survived scavenges since
 * it last grew, and those counted while growth was held still count: the scavenges right after a burst (its last
 * pieces flushed, its survivors dying) stay under the hold.
 */
const RELEASE_DELAY_MS = 1000;

/** Keeps the young generation from growing until RELEASE_DELAY_MS after the returned function is called (calls nest). */
export function holdYoungGeneration(): () => void {
  holds++;
  apply();
  let released = false;
  return () => {
    if (released) return;
    released = true;
    setTimeout(() => {
      holds--;
      apply();
    }, RELEASE_DELAY_MS).unref();
  };
}
