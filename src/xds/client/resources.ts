/**
 * How one ADS response changes the set of resources the client holds for a type, as pure functions:
 *
 * - `applyDelta`: Delta semantics. `resources` are added or changed, `removed_resources` are deleted; a removed
 *   name the client subscribed to explicitly is remembered as absent (the server said it does not exist).
 * - `applySotw`: SotW semantics. For LDS and CDS (`fullState`) the response is the complete set, so a held
 *   resource that is missing is deleted; for the other types (EDS, RDS, SDS) the response only adds or changes
 *   resources and absence means nothing.
 *
 * Both decode every resource with its generated schema, ignore resources that were not subscribed to (unless the
 * subscription is a wildcard), never report a resource whose bytes did not change, and throw `ResponseError` for
 * what the client must NACK: a resource of another type, the same name twice, undecodable bytes, a resource
 * without a name.
 */
import { fromBinary } from '@bufbuild/protobuf';
import type { DescMessage, Message } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { TypeUrl, typeNameOf } from '../index.js';
import { ResourceSchema } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import { ClusterSchema } from '../gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../gen/envoy/config/listener/v3/listener_pb.js';
import { VirtualHostSchema } from '../gen/envoy/config/route/v3/route_components_pb.js';
import { RouteConfigurationSchema } from '../gen/envoy/config/route/v3/route_pb.js';
import { ScopedRouteConfigurationSchema } from '../gen/envoy/config/route/v3/scoped_route_pb.js';
import { SecretSchema } from '../gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { NameTableSchema } from '../name-table.js';
import type { DeltaDiscoveryResponse, DiscoveryResponse } from '../gen/envoy/service/discovery/v3/discovery_pb.js';
import type { ResourceEntry } from './types.js';

/** A response the client refuses (NACK); the message becomes error_detail. */
export class ResponseError extends Error {}

/** Types whose SotW responses carry the complete set (a missing resource is a deletion): LDS and CDS. */
export function isFullStateType(typeUrl: string): boolean {
  return typeUrl === TypeUrl.Listener || typeUrl === TypeUrl.Cluster;
}

const RESOURCE_WRAPPER = `type.googleapis.com/${ResourceSchema.typeName}`;

/**
 * The schemas of the resource kinds an ADS client decodes, by full type name. A table of its own rather than the
 * whole type registry (xds/json.ts), so a sidecar loads only the generated files its resources reach.
 */
const RESOURCE_SCHEMAS: ReadonlyMap<string, DescMessage> = new Map<string, DescMessage>(
  [ListenerSchema, RouteConfigurationSchema, ClusterSchema, ClusterLoadAssignmentSchema, SecretSchema, ScopedRouteConfigurationSchema, VirtualHostSchema, NameTableSchema].map((s) => [s.typeName, s]),
);

/** Decodes a resource with the generated schema its type URL names. */
export function decodeResource(any: Any): Message {
  const desc = RESOURCE_SCHEMAS.get(typeNameOf(any.typeUrl));
  if (!desc) throw new ResponseError(`unknown resource type ${any.typeUrl}`);
  return fromBinary(desc, any.value);
}

/**
 * A held resource: its wire bytes, and its decoded message only while something else holds that message (a
 * WeakRef). The consumer compiles each update from `message` and keeps what it compiled; the client then holds
 * just the bytes (which it compares with the next response anyway), and a later read (`/config_dump`, a cluster
 * re-created from its last endpoints) decodes them again. Within one synchronous job `message` is the same object
 * every time (a WeakRef's target lives at least until the job ends).
 */
class HeldEntry implements ResourceEntry {
  private decoded: WeakRef<Message>;
  constructor(
    readonly name: string,
    readonly version: string,
    readonly resource: Any,
    message: Message,
  ) {
    this.decoded = new WeakRef(message);
  }

  get message(): Message {
    let m = this.decoded.deref();
    if (m === undefined) {
      m = decodeResource(this.resource);
      this.decoded = new WeakRef(m);
    }
    return m;
  }

  /** The same resource under another version (SotW: a response that did not change its bytes). */
  withVersion(version: string): HeldEntry {
    return new HeldEntry(this.name, version, this.resource, this.message);
  }
}

/** The name of a decoded resource: `cluster_name` for a ClusterLoadAssignment, `name` for the others. */
export function resourceName(msg: Message): string {
  const m = msg as unknown as { clusterName?: unknown; name?: unknown };
  const n = msg.$typeName === 'envoy.config.endpoint.v3.ClusterLoadAssignment' ? m.clusterName : m.name;
  return typeof n === 'string' ? n : '';
}

export function sameBytes(a: Any, b: Any): boolean {
  if (a.typeUrl !== b.typeUrl || a.value.length !== b.value.length) return false;
  return Buffer.from(a.value.buffer, a.value.byteOffset, a.value.byteLength).equals(b.value);
}

/** What the client holds for a type (read-only here). */
export interface Held {
  wildcard: boolean;
  /** Explicitly subscribed names. */
  names: ReadonlySet<string>;
  resources: ReadonlyMap<string, ResourceEntry>;
  /** Subscribed names the server said do not exist (Delta). */
  absent: ReadonlySet<string>;
}

export interface Applied {
  added: Map<string, ResourceEntry>;
  removed: string[];
  /** The complete set after the response. */
  full: Map<string, ResourceEntry>;
  absent: Set<string>;
  systemVersion: string;
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function decodeChecked(typeUrl: string, name: string, any: Any): Message {
  if (any.typeUrl !== typeUrl) throw new ResponseError(`resource ${name || '(unnamed)'}: type ${any.typeUrl || '(empty)'} in a ${typeUrl} response`);
  try {
    return decodeResource(any);
  } catch (e) {
    if (e instanceof ResponseError) throw e;
    throw new ResponseError(`resource ${name || '(unnamed)'}: cannot decode ${typeNameOf(typeUrl)}: ${describe(e)}`);
  }
}

export function applyDelta(typeUrl: string, held: Held, res: DeltaDiscoveryResponse): Applied {
  const added = new Map<string, ResourceEntry>();
  const full = new Map(held.resources);
  const absent = new Set(held.absent);
  const seen = new Set<string>();
  for (const r of res.resources) {
    const name = r.name;
    if (!name) throw new ResponseError(`a ${typeNameOf(typeUrl)} resource has no name`);
    if (seen.has(name)) throw new ResponseError(`resource ${name} appears twice in the response`);
    seen.add(name);
    if (!held.wildcard && !held.names.has(name)) continue; // not asked for: ignored, as the protocol says
    const prev = held.resources.get(name);
    if (!r.resource) {
      // A TTL heartbeat: the resource body is left out and the version is the one the client has.
      if (prev && prev.version === r.version) continue;
      throw new ResponseError(`resource ${name} has no body`);
    }
    absent.delete(name);
    if (prev && sameBytes(prev.resource, r.resource)) {
      if (prev.version !== r.version) full.set(name, prev instanceof HeldEntry ? prev.withVersion(r.version) : { ...prev, version: r.version });
      continue;
    }
    const entry: ResourceEntry = new HeldEntry(name, r.version, r.resource, decodeChecked(typeUrl, name, r.resource));
    added.set(name, entry);
    full.set(name, entry);
  }
  const removed: string[] = [];
  for (const name of res.removedResources) {
    if (seen.has(name)) throw new ResponseError(`resource ${name} is both updated and removed in the response`);
    if (full.delete(name)) removed.push(name);
    if (held.names.has(name)) absent.add(name);
  }
  return { added, removed, full, absent, systemVersion: res.systemVersionInfo };
}

export function applySotw(typeUrl: string, held: Held, res: DiscoveryResponse, fullState: boolean): Applied {
  const version = res.versionInfo;
  const inResponse = new Map<string, ResourceEntry>();
  for (const item of res.resources) {
    let any = item;
    let name: string | undefined;
    let resVersion = version;
    if (any.typeUrl === RESOURCE_WRAPPER) {
      // A response may wrap resources in envoy.service.discovery.v3.Resource (name and version outside).
      let wrapper;
      try {
        wrapper = fromBinary(ResourceSchema, any.value);
      } catch (e) {
        throw new ResponseError(`cannot decode a Resource wrapper: ${describe(e)}`);
      }
      if (!wrapper.resource) {
        // A TTL heartbeat: the resource stays as it is.
        const prev = held.resources.get(wrapper.name);
        if (prev && !inResponse.has(prev.name)) inResponse.set(prev.name, prev);
        continue;
      }
      any = wrapper.resource;
      name = wrapper.name || undefined;
      if (wrapper.version) resVersion = wrapper.version;
    }
    const message = decodeChecked(typeUrl, name ?? '', any);
    name ??= resourceName(message);
    if (!name) throw new ResponseError(`a ${typeNameOf(typeUrl)} resource has no name`);
    if (inResponse.has(name)) throw new ResponseError(`resource ${name} appears twice in the response`);
    inResponse.set(name, new HeldEntry(name, resVersion, any, message));
  }
  const added = new Map<string, ResourceEntry>();
  const removed: string[] = [];
  const full = fullState ? new Map<string, ResourceEntry>() : new Map(held.resources);
  for (const [name, entry] of inResponse) {
    if (!held.wildcard && !held.names.has(name)) continue;
    const prev = held.resources.get(name);
    if (prev && sameBytes(prev.resource, entry.resource)) {
      full.set(name, prev);
      continue;
    }
    added.set(name, entry);
    full.set(name, entry);
  }
  if (fullState) for (const name of held.resources.keys()) if (!full.has(name)) removed.push(name);
  return { added, removed, full, absent: new Set(held.absent), systemVersion: version };
}
