/**
 * A snapshot: the complete set of xDS resources one proxy should have, by type, each resource already packed
 * in `Any` and versioned by a hash of its bytes. Snapshots are immutable; the cache swaps them whole.
 *
 * Resource versions are content hashes, so a resource that did not change keeps its version across snapshots:
 * that is what makes pushes incremental (an endpoint-only change changes only the affected
 * ClusterLoadAssignments, and only those are sent).
 *
 * Snapshots share what they can: a VersionedResource (name, version, packed bytes) built once is referenced by
 * every snapshot that holds it, and a whole type map may be shared by snapshots (`Snapshot.of`), so a thousand
 * proxies with the same clusters hold one copy of them.
 */
import { createHash } from 'node:crypto';
import type { Any } from '@bufbuild/protobuf/wkt';
import { TypeUrl } from '../../xds/index.js';

export interface VersionedResource {
  name: string;
  /** Content hash of the packed resource. */
  version: string;
  resource: Any;
}

/** The order in which types are pushed, so that no proxy routes to a cluster it does not have yet. */
export const PUSH_ORDER: readonly string[] = [
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
  TypeUrl.Secret,
];

/**
 * Types whose SotW responses carry the full state (a missing resource is a deletion), and for which an empty
 * initial subscription means wildcard. For the other types (RDS, EDS, SDS) clients ask by name.
 */
export function isFullStateType(typeUrl: string): boolean {
  return typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.Cluster;
}

export function hashBytes(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
}

/** A resource packed in `Any`, versioned by the hash of its bytes. */
export function versioned(name: string, resource: Any): VersionedResource {
  return { name, version: hashBytes(resource.value), resource };
}

// ---------------------------------------------------------------------------------------------------------------
// Set versions

/** 128 bits identifying one (name, version) pair, as four unsigned 32-bit lanes. */
export type ItemHash = readonly [number, number, number, number];

/** The hash of a (name, version) pair. */
export function itemHash(name: string, version: string): ItemHash {
  const d = createHash('sha256').update(name).update('\u0000').update(version).digest();
  return [d.readUInt32LE(0), d.readUInt32LE(4), d.readUInt32LE(8), d.readUInt32LE(12)];
}

/** Item hashes of VersionedResources, computed once per object (the objects are shared by snapshots). */
const itemHashes = new WeakMap<VersionedResource, ItemHash>();

/** The item hash of a resource's (name, version) (computed once per object). */
export function resourceHash(r: VersionedResource): ItemHash {
  let h = itemHashes.get(r);
  if (!h) {
    h = itemHash(r.name, r.version);
    itemHashes.set(r, h);
  }
  return h;
}

/**
 * An order-independent digest of a set of (name, version) pairs: the lane-wise sum (mod 2^32) of their item
 * hashes, with the item count. Items can be added and removed one by one, so a set that changes by a few items
 * gets its new version without looking at the others.
 */
export class VersionSum {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;
  private n = 0;

  add(h: ItemHash): void {
    this.a = (this.a + h[0]) >>> 0;
    this.b = (this.b + h[1]) >>> 0;
    this.c = (this.c + h[2]) >>> 0;
    this.d = (this.d + h[3]) >>> 0;
    this.n++;
  }

  remove(h: ItemHash): void {
    this.a = (this.a - h[0]) >>> 0;
    this.b = (this.b - h[1]) >>> 0;
    this.c = (this.c - h[2]) >>> 0;
    this.d = (this.d - h[3]) >>> 0;
    this.n--;
  }

  addResource(r: VersionedResource): void {
    this.add(resourceHash(r));
  }

  clone(): VersionSum {
    const c = new VersionSum();
    c.a = this.a;
    c.b = this.b;
    c.c = this.c;
    c.d = this.d;
    c.n = this.n;
    return c;
  }

  digest(): string {
    const buf = Buffer.allocUnsafe(20);
    buf.writeUInt32LE(this.a, 0);
    buf.writeUInt32LE(this.b, 4);
    buf.writeUInt32LE(this.c, 8);
    buf.writeUInt32LE(this.d, 12);
    buf.writeUInt32LE(this.n >>> 0, 16);
    return buf.toString('base64url');
  }
}

/**
 * The version string of a set of resources (order-independent), used as `version_info` of SotW responses:
 * equal sets give equal versions, so a reconnecting client that already has the set is not sent it again.
 */
export function setVersion(items: Iterable<VersionedResource>): string {
  const sum = new VersionSum();
  for (const r of items) sum.addResource(r);
  return sum.digest();
}

export type ResourceMap = ReadonlyMap<string, VersionedResource>;

/**
 * How a type map was made from another (Snapshot.withResources): the names whose resource changed (or that were
 * added) and the names removed. Streams use it to find what a client that holds `from` lacks without comparing
 * every resource.
 */
export interface MapDerivation {
  from: ResourceMap;
  changed: readonly string[];
  /** The names of `changed` that `from` did not have. */
  added: readonly string[];
  removed: readonly string[];
}

/**
 * Derivations refer to their parent map weakly: a parent nobody holds any more (no snapshot, no client) is
 * collected, instead of every map of a long series of EDS-only pushes staying alive through its child.
 */
interface StoredDerivation extends Omit<MapDerivation, 'from'> {
  from: WeakRef<ResourceMap>;
}

const derivations = new WeakMap<ResourceMap, StoredDerivation>();

/** How a type map was derived from another, while that other one is still around (see MapDerivation). */
export function derivationOf(m: ResourceMap): MapDerivation | undefined {
  const d = derivations.get(m);
  const from = d?.from.deref();
  return d && from ? { from, changed: d.changed, added: d.added, removed: d.removed } : undefined;
}

/** The VersionSum of a type map, computed once per map (from its parent's when it was derived from one). */
const mapSums = new WeakMap<ResourceMap, VersionSum>();

export function mapVersionSum(m: ResourceMap): VersionSum {
  let sum = mapSums.get(m);
  if (!sum) {
    const d = derivationOf(m);
    if (d && mapSums.has(d.from)) {
      sum = mapSums.get(d.from)!.clone();
      for (const n of [...d.changed, ...d.removed]) {
        const old = d.from.get(n);
        if (old) sum.remove(resourceHash(old));
      }
      for (const n of d.changed) sum.addResource(m.get(n)!);
    } else {
      sum = new VersionSum();
      for (const r of m.values()) sum.addResource(r);
    }
    mapSums.set(m, sum);
  }
  return sum;
}

/** `setVersion` of a type map (computed once per map; maps are shared by snapshots). */
const mapVersions = new WeakMap<ResourceMap, string>();

export function mapVersion(m: ResourceMap): string {
  let v = mapVersions.get(m);
  if (v === undefined) {
    v = mapVersionSum(m).digest();
    mapVersions.set(m, v);
  }
  return v;
}

// ---------------------------------------------------------------------------------------------------------------

export class Snapshot {
  private readonly types = new Map<string, ReadonlyMap<string, VersionedResource>>();

  /** @param version a label for logs and status (the push number). */
  constructor(readonly version: string, resources: Iterable<[typeUrl: string, items: Iterable<{ name: string; resource: Any }>]>) {
    for (const [typeUrl, items] of resources) {
      const m = new Map<string, VersionedResource>();
      for (const { name, resource } of items) {
        if (resource.typeUrl !== typeUrl) throw new Error(`resource ${name}: type ${resource.typeUrl} in the ${typeUrl} list`);
        if (m.has(name)) throw new Error(`resource ${name} appears twice in ${typeUrl}`);
        m.set(name, versioned(name, resource));
      }
      this.types.set(typeUrl, m);
    }
  }

  /**
   * A snapshot made of type maps as they are (not copied: they must not change afterwards, and may be shared with
   * other snapshots). Every resource must be of its map's type and keyed by its name.
   */
  static of(version: string, types: Iterable<[typeUrl: string, resources: ReadonlyMap<string, VersionedResource>]>): Snapshot {
    const s = new Snapshot(version, []);
    for (const [t, m] of types) s.types.set(t, m);
    return s;
  }

  resources(typeUrl: string): ResourceMap {
    return this.types.get(typeUrl) ?? EMPTY;
  }

  /** `setVersion` of every resource of a type (computed once per type map; maps are shared by snapshots). */
  typeVersion(typeUrl: string): string {
    return mapVersion(this.resources(typeUrl));
  }

  typeUrls(): string[] {
    return [...this.types.keys()];
  }

  /** A copy labelled `version` with the resources of one type replaced by `resources` (shared, not copied). */
  withTypeMap(version: string, typeUrl: string, resources: ResourceMap): Snapshot {
    const s = new Snapshot(version, []);
    for (const [t, m] of this.types) s.types.set(t, m);
    s.types.set(typeUrl, resources);
    return s;
  }

  /**
   * A copy labelled `version` in which the resources of one type are replaced or added (`upserts`) and removed
   * (`removed`); every other resource is shared with this snapshot, unhashed again. Used for EDS-only pushes.
   * An upsert that already carries its `version` (a VersionedResource) is taken as is.
   */
  withResources(version: string, typeUrl: string, upserts: Iterable<{ name: string; resource: Any; version?: string }>, removed: Iterable<string> = []): Snapshot {
    const s = new Snapshot(version, []);
    for (const [t, m] of this.types) s.types.set(t, m);
    const from = this.types.get(typeUrl) ?? EMPTY;
    const m = new Map(from);
    const gone: string[] = [];
    for (const n of removed) if (m.delete(n)) gone.push(n);
    const changed = new Set<string>();
    for (const u of upserts) {
      if (u.resource.typeUrl !== typeUrl) throw new Error(`resource ${u.name}: type ${u.resource.typeUrl} in the ${typeUrl} list`);
      m.set(u.name, u.version !== undefined ? (u as VersionedResource) : versioned(u.name, u.resource));
      changed.add(u.name);
    }
    // A name removed and then upserted again counts as changed, not removed.
    const removedNames = gone.filter((n) => !changed.has(n));
    derivations.set(m, { from: new WeakRef(from), changed: [...changed], added: [...changed].filter((n) => !from.has(n)), removed: removedNames });
    s.types.set(typeUrl, m);
    return s;
  }
}

const EMPTY: ReadonlyMap<string, VersionedResource> = new Map();
