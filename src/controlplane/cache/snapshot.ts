/**
 * A snapshot: the complete set of xDS resources one proxy should have, by type, each resource already packed
 * in `Any` and versioned by a hash of its bytes. Snapshots are immutable; the cache swaps them whole.
 *
 * Resource versions are content hashes, so a resource that did not change keeps its version across snapshots:
 * that is what makes pushes incremental (an endpoint-only change changes only the affected
 * ClusterLoadAssignments, and only those are sent).
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

export class Snapshot {
  private readonly types = new Map<string, Map<string, VersionedResource>>();

  /** @param version a label for logs and status (the push number). */
  constructor(readonly version: string, resources: Iterable<[typeUrl: string, items: Iterable<{ name: string; resource: Any }>]>) {
    for (const [typeUrl, items] of resources) {
      const m = new Map<string, VersionedResource>();
      for (const { name, resource } of items) {
        if (resource.typeUrl !== typeUrl) throw new Error(`resource ${name}: type ${resource.typeUrl} in the ${typeUrl} list`);
        if (m.has(name)) throw new Error(`resource ${name} appears twice in ${typeUrl}`);
        m.set(name, { name, version: hashBytes(resource.value), resource });
      }
      this.types.set(typeUrl, m);
    }
  }

  resources(typeUrl: string): ReadonlyMap<string, VersionedResource> {
    return this.types.get(typeUrl) ?? EMPTY;
  }

  private readonly typeVersions = new Map<string, string>();

  /** `setVersion` of every resource of a type, computed once per snapshot (snapshots are shared by proxies). */
  typeVersion(typeUrl: string): string {
    let v = this.typeVersions.get(typeUrl);
    if (v === undefined) {
      v = setVersion(this.resources(typeUrl).values());
      this.typeVersions.set(typeUrl, v);
    }
    return v;
  }

  typeUrls(): string[] {
    return [...this.types.keys()];
  }

  /**
   * A copy labelled `version` in which the resources of one type are replaced or added (`upserts`) and removed
   * (`removed`); every other resource is shared with this snapshot, unhashed again. Used for EDS-only pushes.
   */
  withResources(version: string, typeUrl: string, upserts: Iterable<{ name: string; resource: Any }>, removed: Iterable<string> = []): Snapshot {
    const s = new Snapshot(version, []);
    for (const [t, m] of this.types) s.types.set(t, m);
    const m = new Map(this.types.get(typeUrl) ?? []);
    for (const n of removed) m.delete(n);
    for (const { name, resource } of upserts) {
      if (resource.typeUrl !== typeUrl) throw new Error(`resource ${name}: type ${resource.typeUrl} in the ${typeUrl} list`);
      m.set(name, { name, version: hashBytes(resource.value), resource });
    }
    s.types.set(typeUrl, m);
    return s;
  }
}

const EMPTY: ReadonlyMap<string, VersionedResource> = new Map();

/**
 * The version string of a set of resources (order-independent), used as `version_info` of SotW responses:
 * equal sets give equal versions, so a reconnecting client that already has the set is not sent it again.
 */
export function setVersion(items: Iterable<VersionedResource>): string {
  const parts = [...items].map((r) => `${r.name}\u0000${r.version}`).sort();
  return hashBytes(Buffer.from(parts.join('\u0001')));
}
