/**
 * One finished span as the exporters see it: ids (lower-case hex), name, kind, start and end time, and tags as
 * string pairs (Envoy's tracers tag spans with strings only).
 */
import { randomFillSync } from 'node:crypto';

export type SpanKind = 'SERVER' | 'CLIENT';

export class Span {
  /** Tags: key, value, key, value... */
  readonly tags: string[] = [];
  endMs = 0;

  constructor(
    readonly traceId: string,
    readonly spanId: string,
    /** '' for a root span. */
    readonly parentId: string,
    public name: string,
    readonly kind: SpanKind,
    readonly startMs: number,
    readonly sampled: boolean,
    readonly traceState: string,
  ) {}

  tag(key: string, value: string): void {
    this.tags.push(key, value);
  }
}

// Random ids from a pooled buffer: one getrandom call per 512 ids rather than per id.
const POOL = Buffer.alloc(4096);
let poolAt = POOL.length;

/** A random non-zero id of `bytes` bytes (8: span id, 16: trace id) as lower-case hex. */
export function randomId(bytes: 8 | 16): string {
  for (;;) {
    if (poolAt + bytes > POOL.length) {
      randomFillSync(POOL);
      poolAt = 0;
    }
    const id = POOL.toString('hex', poolAt, poolAt + bytes);
    poolAt += bytes;
    if (!/^0+$/.test(id)) return id;
  }
}
