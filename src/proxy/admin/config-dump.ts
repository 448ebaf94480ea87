/**
 * `/config_dump`: the proxy's current xDS configuration as an envoy.admin.v3.ConfigDump, in proto3 JSON with the
 * proto field names (snake_case), as Envoy prints it (source/server/admin/config_dump_handler.cc).
 *
 * The proxy supplies a snapshot of generated messages:
 *
 *   configDump: () => ({
 *     listeners: { versionInfo: '7', resources: [{ resource: listener, versionInfo: '7', lastUpdated: Date.now() }] },
 *     clusters:  { versionInfo: '7', resources: [{ resource: cluster, versionInfo: '7', lastUpdated }] },
 *     routes:    { resources: [{ resource: routeConfiguration, versionInfo: '3', lastUpdated }] },
 *     endpoints: { resources: [{ resource: clusterLoadAssignment, versionInfo: '9', lastUpdated }] },
 *   })
 *
 * and the handler builds ListenersConfigDump, ClustersConfigDump, RoutesConfigDump and (only with `?include_eds`)
 * EndpointsConfigDump, in Envoy's order (bootstrap, clusters, endpoints, listeners, routes). A resource is dynamic
 * unless `static: true`; listeners may be `active` (default), `warming` or `draining` (several states of one name
 * are grouped into one DynamicListener), clusters `active` or `warming`. `error` records a rejected update
 * (error_state: the NACK details, the rejected resource, when it was tried).
 *
 * Query parameters, as Envoy:
 * - `resource=<repeated field>` (e.g. `dynamic_active_clusters`): dump the elements of that field of whichever
 *   dump message has it; 404 `<resource> not found in config dump`; 400 when the field is not repeated.
 * - `mask=<paths>` (a FieldMask, comma-separated snake_case paths): with `resource`, applied to each element, and a
 *   path through the element's Any (`cluster.name`) masks the embedded resource; without it, applied to each dump
 *   message, skipping those it does not fit (400 when it fits none).
 * - `name_regex=<RE2>`: only resources whose name matches (full match).
 * - `include_eds`: add the endpoints.
 * Sensitive-field redaction is not applied (the snapshot is expected to carry no private keys; TLS secrets are
 * delivered separately).
 */
import { create } from '@bufbuild/protobuf';
import type { DescField, DescMessage, JsonValue, Message, MessageShape } from '@bufbuild/protobuf';
import { anyPack, anyUnpack, timestampFromMs, type Any, type Timestamp } from '@bufbuild/protobuf/wkt';
import { RE2JS } from 're2js';
import { registry, toProtoJson } from '../../xds/json.js';
import { ConfigDumpSchema, BootstrapConfigDumpSchema } from '../../xds/gen/envoy/admin/v3/config_dump_pb.js';
import {
  ClientResourceStatus,
  ClustersConfigDumpSchema,
  ClustersConfigDump_DynamicClusterSchema,
  ClustersConfigDump_StaticClusterSchema,
  EndpointsConfigDumpSchema,
  EndpointsConfigDump_DynamicEndpointConfigSchema,
  EndpointsConfigDump_StaticEndpointConfigSchema,
  ListenersConfigDumpSchema,
  ListenersConfigDump_DynamicListenerSchema,
  ListenersConfigDump_DynamicListenerStateSchema,
  ListenersConfigDump_StaticListenerSchema,
  RoutesConfigDumpSchema,
  RoutesConfigDump_DynamicRouteConfigSchema,
  RoutesConfigDump_StaticRouteConfigSchema,
  UpdateFailureStateSchema,
  type UpdateFailureState,
  type ListenersConfigDump_DynamicListener,
} from '../../xds/gen/envoy/admin/v3/config_dump_shared_pb.js';
import type { Bootstrap } from '../../xds/gen/envoy/config/bootstrap/v3/bootstrap_pb.js';
import { ClusterSchema, type Cluster } from '../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema, type ClusterLoadAssignment } from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema, type Listener } from '../../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema, type RouteConfiguration } from '../../xds/gen/envoy/config/route/v3/route_pb.js';

export { ClientResourceStatus };

export type Time = Date | number;

/** A rejected update of a resource. */
export interface DumpError<T> {
  /** The NACK's error details. */
  details: string;
  /** The version that was rejected. */
  versionInfo?: string;
  /** The rejected resource. */
  failedConfiguration?: T;
  lastUpdateAttempt?: Time;
}

/** One resource in the snapshot. */
export interface DumpedResource<T> {
  /** The resource in force; may be absent for a dynamic resource that only ever failed (`error` set). */
  resource?: T;
  /** Its name, when `resource` is absent (otherwise taken from the resource). */
  name?: string;
  /** The xDS version it came with. */
  versionInfo?: string;
  lastUpdated?: Time;
  /** A static (bootstrap) resource instead of an xDS one. */
  static?: boolean;
  /** Listeners: active (default), warming or draining; clusters: active (default) or warming. */
  state?: 'active' | 'warming' | 'draining';
  error?: DumpError<T>;
  clientStatus?: ClientResourceStatus;
}

export interface ConfigSnapshot {
  bootstrap?: { bootstrap: Bootstrap; lastUpdated?: Time };
  listeners?: { versionInfo?: string; resources: ReadonlyArray<DumpedResource<Listener>> };
  clusters?: { versionInfo?: string; resources: ReadonlyArray<DumpedResource<Cluster>> };
  routes?: { resources: ReadonlyArray<DumpedResource<RouteConfiguration>> };
  endpoints?: { resources: ReadonlyArray<DumpedResource<ClusterLoadAssignment>> };
}

export interface DumpResponse {
  status: number;
  contentType: string;
  body: string;
}

interface DumpPart {
  schema: DescMessage;
  message: Message;
}

function ts(t: Time | undefined): Timestamp | undefined {
  if (t === undefined) return undefined;
  return timestampFromMs(typeof t === 'number' ? t : t.getTime());
}

function packOpt<D extends DescMessage>(schema: D, m: MessageShape<D> | undefined): Any | undefined {
  return m === undefined ? undefined : anyPack(schema, m);
}

function failure<D extends DescMessage>(schema: D, e: DumpError<MessageShape<D>> | undefined): UpdateFailureState | undefined {
  if (!e) return undefined;
  return create(UpdateFailureStateSchema, {
    details: e.details,
    versionInfo: e.versionInfo ?? '',
    failedConfiguration: packOpt(schema, e.failedConfiguration),
    lastUpdateAttempt: ts(e.lastUpdateAttempt),
  });
}

type NameOf<T> = (r: T) => string;
const listenerName: NameOf<Listener> = (l) => l.name;
const clusterName: NameOf<Cluster> = (c) => c.name;
const routeName: NameOf<RouteConfiguration> = (r) => r.name;
const claName: NameOf<ClusterLoadAssignment> = (c) => c.clusterName;

function nameOf<T>(d: DumpedResource<T>, f: NameOf<T>): string {
  if (d.resource !== undefined) return f(d.resource);
  if (d.name !== undefined) return d.name;
  if (d.error?.failedConfiguration !== undefined) return f(d.error.failedConfiguration);
  return '';
}

/** Builds the dump messages of a snapshot, in Envoy's order. */
export function buildConfigDumpParts(snap: ConfigSnapshot, includeEds: boolean, nameMatches: (name: string) => boolean): DumpPart[] {
  const parts: DumpPart[] = [];
  if (snap.bootstrap) {
    parts.push({ schema: BootstrapConfigDumpSchema, message: create(BootstrapConfigDumpSchema, { bootstrap: snap.bootstrap.bootstrap, lastUpdated: ts(snap.bootstrap.lastUpdated) }) });
  }
  if (snap.clusters) {
    const m = create(ClustersConfigDumpSchema, { versionInfo: snap.clusters.versionInfo ?? '' });
    for (const d of snap.clusters.resources) {
      if (!nameMatches(nameOf(d, clusterName))) continue;
      if (d.static) {
        m.staticClusters.push(create(ClustersConfigDump_StaticClusterSchema, { cluster: packOpt(ClusterSchema, d.resource), lastUpdated: ts(d.lastUpdated) }));
        continue;
      }
      const dc = create(ClustersConfigDump_DynamicClusterSchema, {
        versionInfo: d.versionInfo ?? '',
        cluster: packOpt(ClusterSchema, d.resource),
        lastUpdated: ts(d.lastUpdated),
        errorState: failure(ClusterSchema, d.error),
        clientStatus: d.clientStatus ?? ClientResourceStatus.UNKNOWN,
      });
      (d.state === 'warming' ? m.dynamicWarmingClusters : m.dynamicActiveClusters).push(dc);
    }
    parts.push({ schema: ClustersConfigDumpSchema, message: m });
  }
  if (includeEds && snap.endpoints) {
    const m = create(EndpointsConfigDumpSchema, {});
    for (const d of snap.endpoints.resources) {
      if (!nameMatches(nameOf(d, claName))) continue;
      if (d.static) {
        m.staticEndpointConfigs.push(create(EndpointsConfigDump_StaticEndpointConfigSchema, { endpointConfig: packOpt(ClusterLoadAssignmentSchema, d.resource), lastUpdated: ts(d.lastUpdated) }));
      } else {
        m.dynamicEndpointConfigs.push(
          create(EndpointsConfigDump_DynamicEndpointConfigSchema, {
            versionInfo: d.versionInfo ?? '',
            endpointConfig: packOpt(ClusterLoadAssignmentSchema, d.resource),
            lastUpdated: ts(d.lastUpdated),
            errorState: failure(ClusterLoadAssignmentSchema, d.error),
            clientStatus: d.clientStatus ?? ClientResourceStatus.UNKNOWN,
          }),
        );
      }
    }
    parts.push({ schema: EndpointsConfigDumpSchema, message: m });
  }
  if (snap.listeners) {
    const m = create(ListenersConfigDumpSchema, { versionInfo: snap.listeners.versionInfo ?? '' });
    const dynamic = new Map<string, ListenersConfigDump_DynamicListener>();
    for (const d of snap.listeners.resources) {
      const name = nameOf(d, listenerName);
      if (!nameMatches(name)) continue;
      if (d.static) {
        m.staticListeners.push(create(ListenersConfigDump_StaticListenerSchema, { listener: packOpt(ListenerSchema, d.resource), lastUpdated: ts(d.lastUpdated) }));
        continue;
      }
      let dl = dynamic.get(name);
      if (!dl) {
        dl = create(ListenersConfigDump_DynamicListenerSchema, { name, clientStatus: d.clientStatus ?? ClientResourceStatus.UNKNOWN });
        dynamic.set(name, dl);
        m.dynamicListeners.push(dl);
      } else if (d.clientStatus !== undefined) {
        dl.clientStatus = d.clientStatus;
      }
      if (d.resource !== undefined) {
        const state = create(ListenersConfigDump_DynamicListenerStateSchema, { versionInfo: d.versionInfo ?? '', listener: anyPack(ListenerSchema, d.resource), lastUpdated: ts(d.lastUpdated) });
        if (d.state === 'warming') dl.warmingState = state;
        else if (d.state === 'draining') dl.drainingState = state;
        else dl.activeState = state;
      }
      if (d.error) dl.errorState = failure(ListenerSchema, d.error);
    }
    parts.push({ schema: ListenersConfigDumpSchema, message: m });
  }
  if (snap.routes) {
    const m = create(RoutesConfigDumpSchema, {});
    for (const d of snap.routes.resources) {
      if (!nameMatches(nameOf(d, routeName))) continue;
      if (d.static) {
        m.staticRouteConfigs.push(create(RoutesConfigDump_StaticRouteConfigSchema, { routeConfig: packOpt(RouteConfigurationSchema, d.resource), lastUpdated: ts(d.lastUpdated) }));
      } else {
        m.dynamicRouteConfigs.push(
          create(RoutesConfigDump_DynamicRouteConfigSchema, {
            versionInfo: d.versionInfo ?? '',
            routeConfig: packOpt(RouteConfigurationSchema, d.resource),
            lastUpdated: ts(d.lastUpdated),
            errorState: failure(RouteConfigurationSchema, d.error),
            clientStatus: d.clientStatus ?? ClientResourceStatus.UNKNOWN,
          }),
        );
      }
    }
    parts.push({ schema: RoutesConfigDumpSchema, message: m });
  }
  return parts;
}

/** Proto3 JSON with proto field names, `Any` expanded (Envoy's admin JSON). */
export function adminJson(schema: DescMessage, message: Message): JsonValue {
  return toProtoJson(schema, message as never, { useProtoFieldName: true });
}

const TEXT = 'text/plain; charset=UTF-8';

/** Answers `/config_dump?...` from a snapshot. */
export function handleConfigDump(snap: ConfigSnapshot, q: URLSearchParams): DumpResponse {
  const resource = q.get('resource') || undefined;
  const maskText = q.get('mask') || undefined;
  const includeEds = q.has('include_eds');
  let nameMatches: (n: string) => boolean = () => true;
  const nameRegex = q.get('name_regex');
  if (nameRegex) {
    let re: RE2JS;
    try {
      re = RE2JS.compile(nameRegex);
    } catch (e) {
      return { status: 400, contentType: TEXT, body: `INVALID_ARGUMENT: Error while parsing name_regex from ${nameRegex}: ${(e as Error).message}` };
    }
    nameMatches = (n) => re.matches(n);
  }
  const parts = buildConfigDumpParts(snap, includeEds, nameMatches);
  const mask = maskText === undefined ? undefined : maskText.split(',').filter((p) => p !== '');
  const configs: Any[] = [];

  if (resource !== undefined) {
    for (const part of parts) {
      const field = part.schema.fields.find((f) => f.name === resource);
      if (!field) continue;
      if (field.fieldKind !== 'list' || field.listKind !== 'message') {
        return { status: 400, contentType: TEXT, body: `${field.name} is not a repeated field. Use ?mask=${field.name} to get only this field` };
      }
      const elemSchema = field.message;
      for (const el of (part.message as unknown as Record<string, Message[]>)[field.localName]!) {
        let out: Message = el;
        if (mask) {
          const trimmed = trimResourceMessage(elemSchema, el, mask);
          if (!trimmed) return { status: 400, contentType: TEXT, body: `FieldMask paths: ${JSON.stringify(mask.join(','))} could not be successfully used.` };
          out = trimmed;
        }
        configs.push(anyPack(elemSchema, out as never));
      }
      return ok(configs);
    }
    return { status: 404, contentType: TEXT, body: `${resource} not found in config dump` };
  }

  for (const part of parts) {
    let out: Message = part.message;
    if (mask) {
      const trimmed = trimMessage(part.schema, part.message, mask);
      if (!trimmed) continue;
      out = trimmed;
    }
    configs.push(anyPack(part.schema, out as never));
  }
  if (configs.length === 0 && mask) {
    return { status: 400, contentType: TEXT, body: `FieldMask ${maskText} could not be successfully applied to any configs.` };
  }
  return ok(configs);
}

function ok(configs: Any[]): DumpResponse {
  const dump = create(ConfigDumpSchema, { configs });
  return { status: 200, contentType: 'application/json', body: JSON.stringify(adminJson(ConfigDumpSchema, dump), null, 2) + '\n' };
}

// ---- FieldMask ---------------------------------------------------------------------------------------------------

/** Whether every fragment of `path` names a field, every one but the last a singular message field. */
function validPath(schema: DescMessage, path: string): boolean {
  let desc: DescMessage | undefined = schema;
  const frags = path.split('.');
  for (let i = 0; i < frags.length; i++) {
    if (!desc) return false;
    const f: DescField | undefined = desc.fields.find((x) => x.name === frags[i]);
    if (!f) return false;
    if (i < frags.length - 1) {
      if (f.fieldKind !== 'message') return false;
      desc = f.message;
    }
  }
  return true;
}

/**
 * FieldMaskUtil::TrimMessage: a copy of `msg` with only the masked fields (nested paths keep only their sub-fields).
 * Undefined when a path does not fit the message.
 */
export function trimMessage(schema: DescMessage, msg: Message, paths: readonly string[]): Message | undefined {
  for (const p of paths) if (!validPath(schema, p)) return undefined;
  return trim(schema, msg, paths);
}

function trim(schema: DescMessage, msg: Message, paths: readonly string[]): Message {
  // Group by first fragment: undefined = the whole field, otherwise the sub-paths.
  const groups = new Map<string, string[] | undefined>();
  for (const p of paths) {
    const dot = p.indexOf('.');
    const head = dot < 0 ? p : p.slice(0, dot);
    if (dot < 0) {
      groups.set(head, undefined);
    } else if (!groups.has(head) || groups.get(head) !== undefined) {
      const list = groups.get(head) ?? [];
      list.push(p.slice(dot + 1));
      groups.set(head, list);
    }
  }
  const out = create(schema) as unknown as Record<string, unknown>;
  const src = msg as unknown as Record<string, unknown>;
  for (const [head, sub] of groups) {
    const f = schema.fields.find((x) => x.name === head)!;
    if (f.oneof) {
      const adt = src[f.oneof.localName] as { case: string | undefined; value?: unknown };
      if (adt.case !== f.localName) continue;
      const value = sub && f.fieldKind === 'message' ? trim(f.message, adt.value as Message, sub) : adt.value;
      out[f.oneof.localName] = { case: f.localName, value };
      continue;
    }
    const v = src[f.localName];
    if (v === undefined) continue;
    out[f.localName] = sub && f.fieldKind === 'message' && isMessage(v) ? trim(f.message, v, sub) : v;
  }
  return out as unknown as Message;
}

function isMessage(v: unknown): v is Message {
  return typeof v === 'object' && v !== null && '$typeName' in v;
}

/**
 * Envoy's trimResourceMessage: paths through the element's (single) Any field are applied to the unpacked
 * resource; the others to the element.
 */
function trimResourceMessage(schema: DescMessage, msg: Message, paths: readonly string[]): Message | undefined {
  const outer: string[] = [];
  const inner: string[] = [];
  let anyField: DescField | undefined;
  for (const p of paths) {
    const frags = p.split('.');
    const f = schema.fields.find((x) => x.name === frags[0]);
    if (f && f.fieldKind === 'message' && f.message.typeName === 'google.protobuf.Any') {
      if (anyField && anyField !== f) return undefined;
      anyField = f;
      if (!outer.includes(frags[0]!)) outer.push(frags[0]!);
      if (frags.length > 1) inner.push(frags.slice(1).join('.'));
    } else {
      outer.push(p);
    }
  }
  let base = msg;
  if (anyField && inner.length > 0) {
    const any = (msg as unknown as Record<string, Any | undefined>)[anyField.localName];
    if (any) {
      const unpacked = anyUnpack(any, registry);
      if (!unpacked) return undefined;
      const desc = registry.getMessage(unpacked.$typeName);
      if (!desc) return undefined;
      const trimmedInner = trimMessage(desc, unpacked, inner);
      if (!trimmedInner) return undefined;
      base = { ...(msg as object), [anyField.localName]: anyPack(desc, trimmedInner as never) } as unknown as Message;
    }
  }
  return trimMessage(schema, base, outer);
}
