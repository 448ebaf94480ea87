/**
 * The translation cache: pieces of translation shared by every proxy translated against one model and one
 * registry service list, keyed by exactly what each piece depends on (Istio does the same with its XdsCache:
 * CDS, EDS and RDS entries keyed by the DestinationRules, services, endpoints and proxy attributes they read).
 *
 * - Clusters: by proxy type, cluster name, the (original) service and the DestinationRule that applies to the
 *   proxy for the host (by content: the same rule seen through another namespace's lookup is the same key).
 *   DNS clusters carry their endpoints and are not cached.
 * - ClusterLoadAssignments: by cluster name, the subset's labels, the locality load-balancing setting, whether
 *   outlier detection enables failover, and the proxy's locality (and labels) only when locality load balancing
 *   uses them; an entry also remembers the registry's endpoint list it was built from and is rebuilt when the
 *   registry hands out another one (the registry replaces a host's list when its endpoints change).
 * - Routes of a service port: by the route tables that apply, the client attributes their matches read
 *   (namespace, labels: only when a match names source namespaces or labels), and, for every host a route
 *   sends traffic to, the visible service's port and the DestinationRule (hash policies). Virtual hosts add
 *   their domains; RouteConfigurations are shared when made of the same virtual hosts.
 * - Encoding: every message is packed and hashed once (`encode`), so identical resources are one `Any`, one
 *   hash and one VersionedResource in every snapshot that holds them; and lists of the same resources are one
 *   map (`encodeList`), whatever stage output they came from.
 *
 * Entries are valid for one (model, service list, registry service-account version) triple: `bind` clears everything
 * when any of them changes. Cached messages are shared: nothing may modify a message after it was handed out.
 *
 * Translation stays pure: the cache is an explicit argument, and output with a cache is byte-for-byte the output
 * without one.
 */
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import type { DestinationPolicy, Labels, MeshModel, RouteTable, Service } from '../../api/model.js';
import { create } from '@bufbuild/protobuf';
import { AnySchema } from '@bufbuild/protobuf/wkt';
import { TYPE_URL_PREFIX } from '../../xds/index.js';
import type { Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { LbEndpoint } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import type { Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { Route, VirtualHost } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import type { RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';
import { versioned } from '../cache/snapshot.js';
import type { VersionedResource } from '../cache/snapshot.js';
import type { Endpoint } from '../registry/registry.js';
import type { TranslateError } from './index.js';
import { baseService } from './scope.js';
import { SplicingEncoder } from './splice.js';
import type { ProxyScope } from './scope.js';

/** An error of a cached piece, replayed for every proxy that gets the piece (the resource name is the proxy's). */
export interface CachedError {
  message: string;
  source?: string;
}

export interface CachedCluster {
  cluster?: Cluster;
  errors: TranslateError[];
  /** The credential SDS names the cluster reads (cluster.ts `credentialSecrets`). */
  credentialSecrets?: string[];
}

export interface CachedAssignment {
  /** The registry's endpoint list the assignment was built from. */
  from: readonly Endpoint[];
  cla: ClusterLoadAssignment;
}

export interface CachedRoutes {
  routes: Route[];
  errors: CachedError[];
}

/** An endpoint list a kept stage output was built from. */
export interface EndpointSource {
  host: string;
  port: number;
  list: readonly Endpoint[];
}

/** A translation stage's output for the proxies with one key (see translateProxy), with its errors. */
export interface CachedSection<T> {
  value: T;
  errors: TranslateError[];
  /** The endpoint lists it was built from (endpoints stage). */
  from?: EndpointSource[];
  /** The registry's endpointsVersion when `from` was last found to be the current lists (endpoints stage). */
  endpointsVersion?: number;
  /**
   * Set when the output depends on the proxy's locality (and, for `labels`, on its labels too: failover
   * priorities): this entry holds no output, which is kept under the key extended with that part of the proxy
   * (endpoints stage).
   */
  proxyKey?: ProxyDependence;
}

/** What of the proxy an assignment reads (endpoint.ts): nothing, its locality, or its locality and labels. */
export type ProxyDependence = 'locality' | 'labels';

/** What the section keys need to know about the model. */
export interface ModelFacts {
  /** Some HTTP route match names sourceLabels. */
  sourceLabels: boolean;
}

/** The outcome of encoding a message: the packed, versioned resource, or why it does not encode. */
export type Encoded = { ok: true; resource: VersionedResource } | { ok: false; message: string };

/** What translation reads of a route table, computed once per table. */
export interface TableFacts {
  /** Hosts its HTTP routes send or mirror traffic to. */
  hosts: string[];
  /** A match names sourceLabels (the client's labels matter). */
  sourceLabels: boolean;
  /** A match names a sourceNamespace (the client's namespace matters). */
  sourceNamespace: boolean;
}

export interface CacheStats {
  hits: number;
  misses: number;
  encodes: number;
}

/**
 * A Map that stays below a size: past it, the oldest quarter of its entries (in insertion order) is dropped.
 * Entries are only ever rebuilt from their key, so dropping one costs a rebuild, never correctness; the bound
 * keeps a long-lived control plane whose proxies come and go (each leaving entries of its own) from growing
 * without end between configuration changes (which clear everything).
 */
export class BoundedMap<K, V> extends Map<K, V> {
  constructor(readonly limit: number) {
    super();
  }

  override set(key: K, value: V): this {
    if (this.size >= this.limit && !this.has(key)) {
      let drop = Math.max(1, Math.floor(this.limit / 4));
      for (const k of this.keys()) {
        if (drop-- <= 0) break;
        this.delete(k);
      }
    }
    return super.set(key, value);
  }
}

/** Bounds of the caches (see BoundedMap): far above what one configuration needs for thousands of proxies. */
const PIECE_LIMIT = 1_000_000;
const SECTION_LIMIT = 20_000;

export class TranslationCache {
  private model?: MeshModel;
  private services?: readonly Service[];
  private serviceAccounts = 0;
  private readonly ids = new WeakMap<object, number>();
  private nextId = 1;
  private readonly policyKeys = new WeakMap<DestinationPolicy, string>();
  private readonly tableFactsMemo = new WeakMap<RouteTable, TableFacts>();
  private readonly encodedMessages = new WeakMap<object, Encoded>();
  private readonly encodedLists = new WeakMap<readonly object[], EncodedList>();
  /** View keys (see `viewKey`) by the scope's service list, and the numbers given to their contents. */
  private viewKeys = new WeakMap<readonly Service[], string>();
  private readonly viewIds = new Map<string, number>();

  readonly clusters = new BoundedMap<string, CachedCluster>(PIECE_LIMIT);
  readonly assignments = new BoundedMap<string, CachedAssignment>(PIECE_LIMIT);
  readonly routes = new BoundedMap<string, CachedRoutes>(PIECE_LIMIT);
  readonly virtualHosts = new BoundedMap<string, VirtualHost>(PIECE_LIMIT);
  readonly routeConfigs = new BoundedMap<string, RouteConfiguration>(SECTION_LIMIT);
  readonly listeners = new BoundedMap<string, Listener>(PIECE_LIMIT);
  /** Whole stage outputs (see translateProxy). */
  readonly sections = new BoundedMap<string, CachedSection<unknown>>(SECTION_LIMIT);
  /** Encoded maps by type and content (see sharedMap). */
  private readonly sharedMaps = new BoundedMap<string, ReadonlyMap<string, VersionedResource>>(SECTION_LIMIT);
  private boundModelFacts?: ModelFacts;
  /** LbEndpoint per registry endpoint (registry endpoints are immutable and replaced when they change). */
  readonly lbEndpoints = new WeakMap<Endpoint, LbEndpoint>();
  /** The same for endpoints whose workload port has mTLS DISABLE (no tlsMode metadata; endpoint.ts). */
  readonly lbEndpointsNoMtls = new WeakMap<Endpoint, LbEndpoint>();
  /** Clusters a virtual host routes to. */
  readonly vhostClusters = new WeakMap<VirtualHost, Set<string>>();
  /** Clusters a listener forwards to. */
  readonly listenerClusters = new WeakMap<Listener, Set<string>>();
  readonly stats: CacheStats = { hits: 0, misses: 0, encodes: 0 };
  /** Encodes resources with the bytes of their shared parts made once (splice.ts); kept across models, as messages are. */
  private readonly splicer = new SplicingEncoder();

  /**
   * Makes the cache serve translations against this model and service list; when either is not the one the
   * entries were made for, every entry is dropped first. Returns whether the entries were kept.
   */
  bind(model: MeshModel, services: readonly Service[], serviceAccounts = 0): boolean {
    if (this.model === model && this.services === services && this.serviceAccounts === serviceAccounts) return true;
    this.model = model;
    this.services = services;
    this.serviceAccounts = serviceAccounts;
    this.clear();
    return false;
  }

  /** Drops every entry. */
  clear(): void {
    this.clusters.clear();
    this.assignments.clear();
    this.routes.clear();
    this.virtualHosts.clear();
    this.routeConfigs.clear();
    this.listeners.clear();
    this.sections.clear();
    this.sharedMaps.clear();
    this.viewKeys = new WeakMap();
    this.viewIds.clear();
    this.boundModelFacts = undefined;
  }

  /** Facts about the bound model (computed once per model). */
  modelFacts(model: MeshModel): ModelFacts {
    if (this.boundModelFacts && this.model === model) return this.boundModelFacts;
    const sourceLabels = model.routes.some((t) => this.tableFacts(t).sourceLabels);
    const facts = { sourceLabels };
    if (this.model === model) this.boundModelFacts = facts;
    return facts;
  }

  /** A number identifying an object (never reused; 0 for none). */
  id(o: object | undefined): number {
    if (o === undefined) return 0;
    let n = this.ids.get(o);
    if (n === undefined) {
      n = this.nextId++;
      this.ids.set(o, n);
    }
    return n;
  }

  /**
   * The identity of a DestinationRule's content. Merged rules are copies made per lookup pool (the same rule is
   * one object for proxies of its namespace and another for the others) that share their parts; the key is made
   * of those parts, so both give the same key.
   */
  policyKey(dp: DestinationPolicy | undefined): string {
    if (!dp) return '-';
    let k = this.policyKeys.get(dp);
    if (k === undefined) {
      k = `${this.id(dp.origin)}.${this.id(dp.trafficPolicy)}.${this.id(dp.workloadSelector)}.${dp.subsets.map((s) => this.id(s)).join(':')}`;
      this.policyKeys.set(dp, k);
    }
    return k;
  }

  /**
   * What a scope shows of the mesh's destinations, as a short key: its services in order (the registry's service,
   * and the ports the scope keeps of it when its Sidecar trims them) with the DestinationRule that applies to each
   * (by content, `policyKey`). Clusters and their assignments read nothing else of a scope, so scopes of different
   * namespaces with the same key — Istio's default scope (no Sidecar) with no namespace-local rule, say — get the
   * same clusters; a rule of the proxy's namespace, an `exportTo` or a Sidecar that changes what the namespace
   * sees gives another key. Computed once per scope (scopes are computed once per key: copies for other proxies
   * share the service list, which is what the memo is keyed by).
   */
  viewKey(scope: Pick<ProxyScope, 'services' | 'destinationPolicy'>): string {
    let key = this.viewKeys.get(scope.services);
    if (key !== undefined) return key;
    const parts: string[] = [];
    for (const s of scope.services) {
      const base = baseService(s);
      const ports = s === base ? '' : `:${s.ports.map((p) => p.port).join('.')}`;
      parts.push(`${this.id(base)}${ports}~${this.policyKey(scope.destinationPolicy(s.hostname))}`);
    }
    const content = parts.join(',');
    let n = this.viewIds.get(content);
    if (n === undefined) {
      n = this.viewIds.size + 1;
      this.viewIds.set(content, n);
    }
    key = `v${n}`;
    this.viewKeys.set(scope.services, key);
    return key;
  }

  /** What translation reads of a route table (see TableFacts). */
  tableFacts(t: RouteTable): TableFacts {
    let f = this.tableFactsMemo.get(t);
    if (!f) {
      const hosts = new Set<string>();
      let sourceLabels = false;
      let sourceNamespace = false;
      for (const r of t.http) {
        if (r.action.kind === 'route') for (const d of r.action.destinations) hosts.add(d.host);
        for (const m of r.mirrors) hosts.add(m.host);
        for (const m of r.matches) {
          if (m.sourceLabels && Object.keys(m.sourceLabels).length) sourceLabels = true;
          if (m.sourceNamespace) sourceNamespace = true;
        }
      }
      f = { hosts: [...hosts], sourceLabels, sourceNamespace };
      this.tableFactsMemo.set(t, f);
    }
    return f;
  }

  /**
   * Encodes a list of resources of one type for a snapshot (see `encode`), dropping (and reporting) resources
   * without a name, second resources with a name, and resources that do not encode. Done once per list object:
   * proxies that get the same list (translation shares stage outputs) share the resulting map.
   */
  encodeList<D extends DescMessage>(typeUrl: string, schema: D, list: ReadonlyArray<MessageShape<D>>, nameOf: (m: MessageShape<D>) => string): EncodedList {
    const found = this.encodedLists.get(list);
    if (found) return found;
    const resources = new Map<string, VersionedResource>();
    const errors: TranslateError[] = [];
    for (const m of list) {
      const name = nameOf(m);
      if (!name) {
        errors.push({ typeUrl, resource: '', message: 'a resource without a name was dropped' });
        continue;
      }
      if (resources.has(name)) {
        errors.push({ typeUrl, resource: name, message: 'a second resource with this name was dropped' });
        continue;
      }
      const e = this.encode(schema, m, name);
      if (e.ok) resources.set(name, e.resource);
      else errors.push({ typeUrl, resource: name, message: `cannot encode: ${e.message}` });
    }
    const out = { resources: this.sharedMap(typeUrl, resources), errors };
    this.encodedLists.set(list, out);
    return out;
  }

  /**
   * The map already made with exactly these resources (the same objects, in the same order) for this type, else
   * `m`. Lists of other objects can hold the same resources (a stage rebuilt for another namespace, whose scope
   * gives the same clusters): proxies that hold the same resources then hold one map, and the ADS server shares
   * what it derives from a map (first responses, encoded once and written to every stream that holds the map;
   * subscription coverage; EDS patches).
   */
  private sharedMap(typeUrl: string, m: ReadonlyMap<string, VersionedResource>): ReadonlyMap<string, VersionedResource> {
    const ids: number[] = [];
    for (const r of m.values()) ids.push(this.id(r));
    const key = `${typeUrl}|${ids.join(',')}`;
    const found = this.sharedMaps.get(key);
    if (found) return found;
    this.sharedMaps.set(key, m);
    return m;
  }

  /**
   * Packs and hashes a message once: the same message object always gives the same VersionedResource (or the
   * same encoding error), so resources shared between proxies are shared in every snapshot too. The bytes are
   * `toBinary`'s; parts shared between resources (virtual hosts, endpoints) are encoded once (splice.ts).
   */
  encode<D extends DescMessage>(schema: D, msg: MessageShape<D>, name: string): Encoded {
    const found = this.encodedMessages.get(msg);
    if (found && (!found.ok ? true : found.resource.name === name)) return found;
    let e: Encoded;
    try {
      const value = this.splicer.encode(schema, msg);
      e = { ok: true, resource: versioned(name, create(AnySchema, { typeUrl: `${TYPE_URL_PREFIX}${msg.$typeName}`, value })) };
    } catch (err) {
      e = { ok: false, message: err instanceof Error ? err.message : String(err) };
    }
    this.stats.encodes++;
    this.encodedMessages.set(msg, e);
    return e;
  }
}

/** A list of messages encoded for a snapshot: the resources by name, and what was dropped. */
export interface EncodedList {
  resources: ReadonlyMap<string, VersionedResource>;
  errors: TranslateError[];
}

/** `k=v` pairs of labels, sorted: equal label sets give equal strings. */
export function labelsKey(labels: Labels | undefined): string {
  if (!labels) return '';
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join('\u0001');
}
