/**
 * Earliest-deadline-first scheduler, as Envoy's `EdfScheduler` (source/common/upstream/edf_scheduler.h): each pick
 * takes the entry with the earliest deadline and re-queues it at `now + 1 / weight`; equal deadlines go in FIFO
 * order. This gives weighted round robin with floating point weights and O(log n) picks. The weight is evaluated
 * when an entry is (re-)queued, so least-request can scale it by the host's active requests.
 *
 * `createWithPicks(entries, picks)` builds the state the scheduler would have after `picks` picks from an empty
 * start (Envoy seeds this with a random number so different load balancers start at different points of the
 * rotation), in O(n) plus at most n leftover picks.
 */
interface Entry<T> {
  deadline: number;
  order: number;
  item: T;
}

/** Envoy limits the emulated pre-picks to UINT32_MAX / 10. */
const MAX_PICKS = 429496729;

export class EdfScheduler<T> {
  private heap: Entry<T>[] = [];
  private currentTime = 0;
  private orderOffset = 0;

  constructor(private readonly weight: (item: T) => number) {}

  static createWithPicks<T>(items: readonly T[], weight: (item: T) => number, picks: number): EdfScheduler<T> {
    const s = new EdfScheduler<T>(weight);
    picks = (picks >>> 0) % MAX_PICKS;
    if (items.length === 0) return s;
    // A small epsilon keeps weights that are multiples of each other from landing on equal deadlines.
    const aug = items.map((it) => weight(it) + 1e-13);
    let sum = 0;
    for (const w of aug) sum += w;
    let picked = 0;
    let maxPickTime = 0;
    for (let i = 0; i < items.length; i++) {
      const w = aug[i]!;
      let floorPicks = Math.floor((w * picks) / sum) >>> 0;
      if (floorPicks > 0 && floorPicks / w >= picks / sum) floorPicks--;
      maxPickTime = Math.max(maxPickTime, floorPicks / w);
      s.heap.push({ deadline: (floorPicks + 1) / w, order: i, item: items[i]! });
      picked += floorPicks;
    }
    s.heapify();
    s.currentTime = maxPickTime;
    s.orderOffset = items.length;
    while (picked < picks) {
      s.pickAndAdd();
      picked++;
    }
    return s;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Queues `item` with deadline now + 1/weight. */
  add(weight: number, item: T): void {
    this.heap.push({ deadline: this.currentTime + 1 / weight, order: this.orderOffset++, item });
    this.siftUp(this.heap.length - 1);
  }

  /** Picks the entry with the earliest deadline and re-queues it with its current weight. */
  pickAndAdd(): T | undefined {
    const heap = this.heap;
    if (heap.length === 0) return undefined;
    const top = heap[0]!;
    this.currentTime = top.deadline;
    // Re-queue in place: new deadline and order, then restore the heap from the root.
    top.deadline = this.currentTime + 1 / this.weight(top.item);
    top.order = this.orderOffset++;
    this.siftDown(0);
    return top.item;
  }

  private less(a: Entry<T>, b: Entry<T>): boolean {
    return a.deadline < b.deadline || (a.deadline === b.deadline && a.order < b.order);
  }

  private heapify(): void {
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftUp(i: number): void {
    const heap = this.heap;
    const e = heap[i]!;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(e, heap[p]!)) break;
      heap[i] = heap[p]!;
      i = p;
    }
    heap[i] = e;
  }

  private siftDown(i: number): void {
    const heap = this.heap;
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && this.less(heap[r]!, heap[l]!) ? r : l;
      if (!this.less(heap[c]!, e)) break;
      heap[i] = heap[c]!;
      i = c;
    }
    heap[i] = e;
  }
}
