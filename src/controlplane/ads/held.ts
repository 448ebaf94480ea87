/**
 * What a client holds of one resource type, as its stream tracks it, and how to bring it up to date.
 *
 * A client usually holds exactly one of the snapshot's type maps (everything it subscribed to, as last sent).
 * `Held` keeps a reference to that map (shared with the snapshots and with other clients) plus the per-name
 * differences since, so a thousand clients holding the same two thousand endpoints cost a pointer each, not two
 * thousand map entries each. When the new snapshot's map was derived from the one a client holds (an EDS-only
 * push patches a few resources), what the client lacks is read from the derivation instead of comparing every
 * resource.
 */
import { createHash } from 'node:crypto';
import { derivationOf, mapVersionSum, resourceHash, VersionSum } from '../cache/snapshot.js';
import type { ResourceMap, VersionedResource } from '../cache/snapshot.js';

const EMPTY: ResourceMap = new Map();

export class Held {
  private base: ResourceMap = EMPTY;
  /** Differences from `base`: the resource held under a name, or null for a name of `base` not held. */
  private readonly diff = new Map<string, VersionedResource | null>();
  private sum = new VersionSum();
  private count = 0;

  get(name: string): VersionedResource | undefined {
    const d = this.diff.get(name);
    if (d !== undefined) return d ?? undefined;
    return this.base.get(name);
  }

  has(name: string): boolean {
    return this.get(name) !== undefined;
  }

  get size(): number {
    return this.count;
  }

  /** Names held. */
  *names(): IterableIterator<string> {
    for (const n of this.base.keys()) if (this.diff.get(n) !== null) yield n;
    for (const [n, r] of this.diff) if (r && !this.base.has(n)) yield n;
  }

  set(r: VersionedResource): void {
    const old = this.get(r.name);
    if (old === r) return;
    if (old) this.sum.remove(resourceHash(old));
    else this.count++;
    this.sum.addResource(r);
    if (this.base.get(r.name) === r) this.diff.delete(r.name);
    else this.diff.set(r.name, r);
  }

  delete(name: string): void {
    const old = this.get(name);
    if (!old) return;
    this.sum.remove(resourceHash(old));
    this.count--;
    if (this.base.has(name)) this.diff.set(name, null);
    else this.diff.delete(name);
  }

  /** Now holds exactly `m`. */
  reset(m: ResourceMap): void {
    this.base = m;
    this.diff.clear();
    this.sum = mapVersionSum(m).clone();
    this.count = m.size;
  }

  /** Whether it holds exactly `m`. */
  is(m: ResourceMap): boolean {
    return this.base === m && this.diff.size === 0;
  }

  /** The set version of what is held (see setVersion). */
  digest(): string {
    return this.sum.digest();
  }

  /**
   * When the client holds exactly the map `m` was derived from: the names that changed (or were added) and were
   * removed since. Undefined otherwise (the caller compares everything).
   */
  changesTo(m: ResourceMap): { changed: readonly string[]; removed: readonly string[]; added: readonly string[] } | undefined {
    if (this.diff.size > 0) return undefined;
    const d = derivationOf(m);
    return d && d.from === this.base ? d : undefined;
  }
}

/** What a stream subscribes to of a type: everything (wildcard), and/or resources by name. */
export interface Subscription {
  wildcard: boolean;
  names: ReadonlySet<string>;
}

/**
 * Memo of whether a subscription covers every resource of a map (`wildcard`, or names including all of the
 * map's names): then the client is to hold exactly that map. Kept per stream and type; recomputed when the
 * map or the names change (cheaply for a map derived from the last one checked).
 */
export class Coverage {
  private map?: ResourceMap;
  private names?: ReadonlySet<string>;
  private result = false;

  covers(sub: Subscription, m: ResourceMap): boolean {
    if (sub.wildcard) return true;
    if (this.map === m && this.names === sub.names) return this.result;
    // Name sets and maps are shared by streams (see namePool): so is the answer.
    let byMap = coverMemo.get(sub.names);
    if (!byMap) coverMemo.set(sub.names, (byMap = new WeakMap()));
    let result = byMap.get(m);
    if (result === undefined) {
      result = this.compute(sub, m);
      byMap.set(m, result);
    }
    this.map = m;
    this.names = sub.names;
    this.result = result;
    return result;
  }

  private compute(sub: Subscription, m: ResourceMap): boolean {
    let result: boolean;
    const d = derivationOf(m);
    if (this.names === sub.names && this.map !== undefined && d && d.from === this.map && d.removed.length === 0) {
      // The names are those checked against the parent map, which lost no name: only the added names matter.
      result = this.result && d.added.every((n) => sub.names.has(n));
    } else if (sub.names.size < m.size) {
      result = false;
    } else {
      result = true;
      for (const n of m.keys()) {
        if (!sub.names.has(n)) {
          result = false;
          break;
        }
      }
    }
    return result;
  }
}

const coverMemo = new WeakMap<ReadonlySet<string>, WeakMap<ResourceMap, boolean>>();

/**
 * The resources of `m` the client named (or all of them, for a wildcard subscription), in map order.
 */
export function subscribed(sub: Subscription, m: ResourceMap): VersionedResource[] {
  if (sub.wildcard) return [...m.values()];
  const out: VersionedResource[] = [];
  for (const n of sub.names) {
    const r = m.get(n);
    if (r) out.push(r);
  }
  return out;
}

/** Names from a request, using the snapshot's own name strings where they exist (so clients share them). */
export function internNames(names: readonly string[], m: ResourceMap | undefined): Set<string> {
  const out = new Set<string>();
  for (const n of names) out.add(m?.get(n)?.name ?? n);
  return out;
}

/** Whether a request's names are exactly the names of a set already held (so the set can be kept). */
export function sameNames(names: readonly string[], set: ReadonlySet<string>): boolean {
  if (names.length !== set.size) return false;
  for (const n of names) if (!set.has(n)) return false;
  return true;
}

/**
 * Values shared by streams, by content: a thousand proxies subscribing to the same two thousand assignments hold
 * one set of names (and one copy of the request bytes it was read from), not a thousand. Pooled values are
 * never modified: a stream whose subscription changes makes a new one and shares that. Entries go when no stream
 * holds them any more.
 */
class Pool<T extends object> {
  private readonly entries = new Map<string, WeakRef<T>>();
  private readonly finalizer = new FinalizationRegistry<string>((key) => {
    const ref = this.entries.get(key);
    if (ref && ref.deref() === undefined) this.entries.delete(key);
  });

  constructor(
    private readonly keyOf: (v: T) => string,
    private readonly equal: (a: T, b: T) => boolean,
  ) {}

  /** The pooled value equal to `v` (`v` itself when there is none yet). */
  intern(v: T): T {
    const key = this.keyOf(v);
    const found = this.entries.get(key)?.deref();
    if (found && (found === v || this.equal(found, v))) return found;
    this.entries.set(key, new WeakRef(v));
    this.finalizer.register(v, key);
    return v;
  }
}

const digest = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('base64');

function sameOrder(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false;
  const it = b.values();
  for (const x of a) if (x !== it.next().value) return false;
  return true;
}

/** Shared subscriptions (name sets, in subscription order). */
export const namePool = new Pool<ReadonlySet<string>>((s) => digest([...s].join('\u0000')), sameOrder);

/** Shared request bytes (see SotwRequest.resourceNamesBytes). */
export const bytesPool = new Pool<Uint8Array>(digest, (a, b) => Buffer.compare(a, b) === 0);
