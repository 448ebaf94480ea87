/**
 * EDS: one ClusterLoadAssignment per EDS cluster, relative to the asking proxy (locality priorities and weights
 * depend on where the proxy is). Istio's semantics (istio/istio pilot/pkg/xds/endpoints endpoint_builder.go and
 * pilot/pkg/networking/core/loadbalancer loadbalancer.go):
 *
 * - Endpoints of the service port from the registry, filtered by the subset's labels; endpoints whose address is
 *   not an IP (hostnames, which only DNS clusters resolve) are left out.
 * - Grouped by locality (`region/zone/subzone`, sorted), each group weighted by the sum of its endpoints' weights
 *   (an endpoint weight of 0 counts as 1). Each endpoint carries its health (HEALTHY/UNHEALTHY from the registry),
 *   `filter_metadata.istio.workload` = `name;namespace;canonical-name;canonical-revision;cluster` and, for
 *   endpoints with a sidecar, `filter_metadata["envoy.transport_socket_match"].tlsMode = "istio"` (what auto mTLS
 *   matches on).
 * - Locality load balancing: the DestinationRule's `localityLbSetting` (per port and subset), else the mesh
 *   default (enabled, no rules); `enabled: false` turns it off. `distribute` rewrites the locality weights for the
 *   first rule whose `from` matches the proxy's locality and empties localities no `to` entry matches.
 *   Otherwise, only when outlier detection is configured (without it a proxy would never leave a failed
 *   priority): `failoverPriority` splits endpoints into priorities by how many of the listed labels they share
 *   with the proxy (in order), and the locality failover assigns priority 0 to the proxy's
 *   region/zone/subzone, 1 to its region/zone, 2 to its region, 3 to other regions — 4 to regions other than the
 *   `failover.to` of the proxy's region when a `failover` rule names it. Priorities are renumbered 0..N.
 *
 * The work per call is proportional to the clusters asked for: the scope memoizes DestinationRule lookups and
 * the registry caches endpoints per service port.
 */
import { canonicalService, DEFAULT_CANONICAL_REVISION } from '../../api/canonical.js';
import { isIP } from 'node:net';
import { create } from '@bufbuild/protobuf';
import type { JsonObject } from '@bufbuild/protobuf';
import type { LoadBalancerSettings, MeshModel, Service } from '../../api/model.js';
import { mtlsMode } from './security/mtls.js';
import {
  ClusterLoadAssignmentSchema,
  type ClusterLoadAssignment,
} from '../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import {
  LbEndpointSchema,
  LocalityLbEndpointsSchema,
  type LbEndpoint,
  type LocalityLbEndpoints,
} from '../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import { HealthStatus } from '../../xds/gen/envoy/config/core/v3/health_check_pb.js';
import { LocalitySchema, type Locality } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { TypeUrl } from '../../xds/index.js';
import type { ProxyInfo, ProxyLocality } from '../proxy.js';
import type { Endpoint } from '../registry/registry.js';
import { parseClusterName } from './names.js';
import type { TranslateError, TranslateInput } from './index.js';
import { clusterTrafficPolicy, labelsSubsetOf, type ClusterTrafficPolicy, type ProxyScope } from './scope.js';
import { labelsKey } from './cache.js';
import type { ProxyDependence, TranslationCache } from './cache.js';

/** How a cluster finds its endpoints. */
export type DiscoveryKind = 'EDS' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'ORIGINAL_DST';

/**
 * The cluster type of a service for a proxy (Istio `convertResolution`, then `PASSTHROUGH` load balancing turning
 * the cluster into ORIGINAL_DST):
 * - STATIC → EDS; DNS → STRICT_DNS; DNS_ROUND_ROBIN → LOGICAL_DNS.
 * - NONE → EDS when the service has an endpoint source (a selector or inline endpoints: in Weft's explicit mode
 *   there is no original destination to fall back to), else ORIGINAL_DST; gateways always use EDS (Istio).
 * - Proxyless gRPC only does EDS: services that are not EDS for it are left out (undefined).
 * - DYNAMIC_DNS (Envoy's dynamic forward proxy cluster) is not supported: undefined.
 */
export function discoveryKind(svc: Service, policy: ClusterTrafficPolicy | undefined, proxy: ProxyInfo): DiscoveryKind | undefined {
  let kind: DiscoveryKind | undefined;
  switch (svc.resolution) {
    case 'STATIC':
      kind = 'EDS';
      break;
    case 'DNS':
      kind = 'STRICT_DNS';
      break;
    case 'DNS_ROUND_ROBIN':
      kind = 'LOGICAL_DNS';
      break;
    case 'NONE':
      kind = proxy.type === 'router' || svc.selector !== undefined || svc.endpoints.length > 0 ? 'EDS' : 'ORIGINAL_DST';
      break;
    default:
      kind = undefined;
  }
  if (proxy.type === 'grpc') return kind === 'EDS' ? 'EDS' : undefined;
  if (kind && policy?.loadBalancer?.simple === 'PASSTHROUGH') return 'ORIGINAL_DST';
  return kind;
}

export type LocalitySetting = NonNullable<LoadBalancerSettings['locality']>;

/** Istio's mesh default `localityLbSetting`: enabled, no rules (istio/istio pkg/config/mesh DefaultMeshConfig). */
const MESH_LOCALITY_DEFAULT: LocalitySetting = { enabled: true, distribute: [], failover: [], failoverPriority: [] };

/** Istio `GetLocalityLbSetting`: the DestinationRule's setting unless disabled, else the mesh default. */
export function localitySetting(policy: ClusterTrafficPolicy | undefined): LocalitySetting | undefined {
  const dr = policy?.loadBalancer?.locality;
  if (dr) return dr.enabled === false ? undefined : dr;
  return MESH_LOCALITY_DEFAULT;
}

// ---------------------------------------------------------------------------------------------------------------
// Locality endpoints

/** Istio's default cluster ID (`Kubernetes`), the last field of `istio.workload` endpoint metadata. */
const CLUSTER_ID = 'Kubernetes';
export const LABEL_REGION = 'topology.kubernetes.io/region';
export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_SUBZONE = 'topology.istio.io/subzone';
export const LABEL_NETWORK = 'topology.istio.io/network';

/** `region/zone/subzone` → Locality (Istio `SplitLocality`: the subzone keeps any further `/`). */
export function parseLocality(s: string | undefined): Locality | undefined {
  if (!s) return undefined;
  const parts = s.split('/');
  return create(LocalitySchema, { region: parts[0] ?? '', zone: parts[1] ?? '', subZone: parts.slice(2).join('/') });
}

/** The PeerAuthentications that decide whether an endpoint takes mTLS (a DISABLE endpoint loses tlsMode: istio). */
type MtlsPolicies = Pick<MeshModel, 'mesh' | 'peerAuthentications'>;

/** Whether an endpoint carries `tlsMode: istio`: it has a sidecar and its port's mTLS is not DISABLE (Istio). */
function meshTls(ep: Endpoint, policies: MtlsPolicies | undefined): boolean {
  return ep.tlsMode === 'istio' && (policies === undefined || mtlsMode(policies, ep.namespace, ep.labels, ep.port) !== 'DISABLE');
}

function lbEndpoint(ep: Endpoint, tls: boolean): LbEndpoint {
  const c = canonicalService(ep.labels, ep.workload);
  // Istio leaves the default revision out of the endpoint's workload string.
  const crev = c.revision === DEFAULT_CANONICAL_REVISION ? '' : c.revision;
  const filterMetadata: { [k: string]: JsonObject } = {
    istio: { workload: `${ep.workload};${ep.namespace};${c.name};${crev};${CLUSTER_ID}` },
  };
  // Istio: an endpoint whose workload has mTLS DISABLE on that port gets no tlsMode, so auto mTLS sends plaintext.
  if (tls) filterMetadata['envoy.transport_socket_match'] = { tlsMode: 'istio' };
  return create(LbEndpointSchema, {
    hostIdentifier: {
      case: 'endpoint',
      value: { address: { address: { case: 'socketAddress', value: { address: ep.address, portSpecifier: { case: 'portValue', value: ep.port } } } } },
    },
    healthStatus: ep.healthy ? HealthStatus.HEALTHY : HealthStatus.UNHEALTHY,
    loadBalancingWeight: ep.weight > 0 ? ep.weight : 1,
    metadata: { filterMetadata },
  });
}

function sharedLbEndpoint(ep: Endpoint, cache: TranslationCache, policies?: MtlsPolicies): LbEndpoint {
  const tls = meshTls(ep, policies);
  // Registry endpoints outlive model changes: the mTLS decision (which follows PeerAuthentications) picks the map.
  const m = tls || ep.tlsMode !== 'istio' ? cache.lbEndpoints : cache.lbEndpointsNoMtls;
  let e = m.get(ep);
  if (!e) {
    e = lbEndpoint(ep, tls);
    m.set(ep, e);
  }
  return e;
}

/** A locality group and the registry endpoints behind its lb_endpoints (same order), for label-based priorities. */
export interface WrappedLocality {
  group: LocalityLbEndpoints;
  endpoints: Endpoint[];
}

/**
 * Groups endpoints by locality (sorted), each group weighted by the sum of its endpoint weights. With a cache,
 * the LbEndpoint of a registry endpoint is built once and shared.
 */
export function localityGroups(eps: readonly Endpoint[], cache?: TranslationCache, policies?: MtlsPolicies): WrappedLocality[] {
  const byLocality = new Map<string, Endpoint[]>();
  for (const ep of eps) {
    const k = ep.locality ?? '';
    const list = byLocality.get(k);
    if (list) list.push(ep);
    else byLocality.set(k, [ep]);
  }
  return [...byLocality.keys()].sort().map((k) => {
    const members = byLocality.get(k)!;
    const lbEndpoints = cache ? members.map((ep) => sharedLbEndpoint(ep, cache, policies)) : members.map((ep) => lbEndpoint(ep, meshTls(ep, policies)));
    let weight = 0;
    for (const e of lbEndpoints) weight = Math.min(weight + (e.loadBalancingWeight ?? 0), 0xffffffff);
    const group = create(LocalityLbEndpointsSchema, { lbEndpoints, loadBalancingWeight: weight });
    // Always set, empty when unknown (Istio `ConvertLocality("")`): gRPC clients reject a group without one.
    group.locality = parseLocality(k) ?? create(LocalitySchema, {});
    return { group, endpoints: members };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Locality load balancing (istio/istio pilot/pkg/networking/core/loadbalancer)

function splitRule(rule: string): [string, string, string] {
  const parts = rule.split('/');
  return [parts[0] ?? '', parts[1] ?? '', parts.slice(2).join('/')];
}

/** Istio `LocalityMatch`: `*` and missing trailing parts match anything. */
export function localityMatch(loc: { region: string; zone: string; subZone: string } | undefined, rule: string): boolean {
  const [r, z, s] = splitRule(rule);
  return (
    (r === '*' || (loc?.region ?? '') === r) &&
    (z === '*' || z === '' || (loc?.zone ?? '') === z) &&
    (s === '*' || s === '' || (loc?.subZone ?? '') === s)
  );
}

/** Istio `LbPriority`: 0 same region/zone/subzone, 1 same region/zone, 2 same region, 3 other. */
export function localityPriority(proxy: ProxyLocality | undefined, ep: Locality | undefined): number {
  if ((proxy?.region ?? '') !== (ep?.region ?? '')) return 3;
  if ((proxy?.zone ?? '') !== (ep?.zone ?? '')) return 2;
  if ((proxy?.subZone ?? '') !== (ep?.subZone ?? '')) return 1;
  return 0;
}

function applyLocalityWeights(proxy: ProxyLocality | undefined, groups: LocalityLbEndpoints[], distribute: LocalitySetting['distribute']): void {
  for (const rule of distribute) {
    if (!localityMatch(proxy, rule.from)) continue;
    const mismatched = new Set(groups.map((_, i) => i));
    for (const [to, weight] of Object.entries(rule.to)) {
      const original = new Map<number, number>();
      let total = 0;
      groups.forEach((g, i) => {
        if (mismatched.has(i) && localityMatch(g.locality, to)) {
          mismatched.delete(i);
          const w = g.loadBalancingWeight ?? 1;
          original.set(i, w);
          total += w;
        }
      });
      // A wildcard `to` covering several localities divides its weight in proportion to theirs.
      for (const [i, w] of original) {
        const dest = (w * weight) / total;
        if (dest > 0) groups[i]!.loadBalancingWeight = Math.ceil(dest);
      }
    }
    for (const i of mismatched) groups[i]!.lbEndpoints = [];
    return;
  }
}

/** Renumbers priorities to 0..N without gaps, keeping their order. */
function compactPriorities(groups: LocalityLbEndpoints[]): void {
  const distinct = [...new Set(groups.map((g) => g.priority))].sort((a, b) => a - b);
  const rank = new Map(distinct.map((p, i) => [p, i]));
  for (const g of groups) g.priority = rank.get(g.priority)!;
}

function applyLocalityFailover(proxy: ProxyLocality | undefined, groups: LocalityLbEndpoints[], failover: LocalitySetting['failover']): void {
  for (const g of groups) {
    let p = localityPriority(proxy, g.locality);
    if (p === 3) {
      const rule = failover.find((f) => f.from === (proxy?.region ?? ''));
      if (rule && (!g.locality || g.locality.region !== rule.to)) p = 4;
    }
    // Priorities already assigned by failoverPriority are kept as the major key (at most 5 locality levels).
    g.priority = g.priority * 5 + p;
  }
  compactPriorities(groups);
}

/** Istio `priorityLabelOverrides`: `key` compares with the proxy's label, `key=value` with the given value. */
function priorityLabels(list: string[]): { keys: string[]; overrides: Map<string, string> } {
  const keys: string[] = [];
  const overrides = new Map<string, string>();
  for (const item of list) {
    const parts = item.split('=');
    keys.push(parts[0]!);
    if (parts.length === 2) overrides.set(parts[0]!, parts[1]!);
  }
  return { keys, overrides };
}

/** Labels with the topology labels Istio adds from the locality and network (`AugmentLabels`). */
function augmented(labels: Record<string, string>, locality: { region: string; zone: string; subZone: string } | undefined, network: string | undefined): Record<string, string> {
  const out = { ...labels };
  if (locality?.region) out[LABEL_REGION] = locality.region;
  if (locality?.zone) out[LABEL_ZONE] = locality.zone;
  if (locality?.subZone) out[LABEL_SUBZONE] = locality.subZone;
  if (network && !out[LABEL_NETWORK]) out[LABEL_NETWORK] = network;
  return out;
}

/** The proxy's labels as Istio sees them for failoverPriority (with its locality and network labels). */
export function proxyMatchLabels(proxy: ProxyInfo): Record<string, string> {
  const net = proxy.metadata.NETWORK;
  return augmented(proxy.labels, proxy.locality, typeof net === 'string' && net ? net : undefined);
}

function applyFailoverPriorities(wrapped: WrappedLocality[], proxyLabels: Record<string, string>, failoverPriority: string[]): LocalityLbEndpoints[] | undefined {
  if (Object.keys(proxyLabels).length === 0 || wrapped.length === 0) return undefined;
  const { keys, overrides } = priorityLabels(failoverPriority);
  const lowest = keys.length;
  const out: LocalityLbEndpoints[] = [];
  for (const w of wrapped) {
    const byPriority = new Map<number, number[]>();
    w.endpoints.forEach((ep, i) => {
      const epLabels = augmented(ep.labels, parseLocality(ep.locality), ep.network);
      let priority = 0;
      for (let j = 0; j < keys.length; j++) {
        const key = keys[j]!;
        const want = overrides.has(key) ? overrides.get(key) : proxyLabels[key];
        if ((want ?? '') !== (epLabels[key] ?? '')) {
          priority = lowest - j;
          break;
        }
      }
      const list = byPriority.get(priority);
      if (list) list.push(i);
      else byPriority.set(priority, [i]);
    });
    for (const p of [...byPriority.keys()].sort((a, b) => a - b)) {
      const lbEndpoints = byPriority.get(p)!.map((i) => w.group.lbEndpoints[i]!);
      const group = create(LocalityLbEndpointsSchema, {
        lbEndpoints,
        priority: p,
        loadBalancingWeight: lbEndpoints.reduce((s, e) => s + (e.loadBalancingWeight ?? 0), 0),
      });
      if (w.group.locality) group.locality = w.group.locality;
      out.push(group);
    }
  }
  compactPriorities(out);
  return out;
}

/**
 * Istio `ApplyLocalityLoadBalancer` on a load assignment built from `wrapped` (pass `wrapped` for label-based
 * failover priorities; without it they are skipped, as Istio does for DNS clusters). Returns the groups to use.
 */
export function applyLocalityLb(
  wrapped: WrappedLocality[],
  proxy: ProxyInfo,
  setting: LocalitySetting | undefined,
  enableFailover: boolean,
): LocalityLbEndpoints[] {
  let groups = wrapped.map((w) => w.group);
  if (!setting) return groups;
  if (setting.distribute.length) {
    applyLocalityWeights(proxy.locality, groups, setting.distribute);
  } else if (enableFailover) {
    if (setting.failoverPriority.length) {
      groups = applyFailoverPriorities(wrapped, proxyMatchLabels(proxy), setting.failoverPriority) ?? groups;
      if (setting.failover.length) applyLocalityFailover(proxy.locality, groups, setting.failover);
    } else {
      applyLocalityFailover(proxy.locality, groups, setting.failover);
    }
  }
  return groups;
}

// ---------------------------------------------------------------------------------------------------------------

/** The registry endpoints of a service port filtered by a subset's labels. */
export function subsetEndpoints(input: TranslateInput, host: string, port: number, subsetLabels: Record<string, string> | undefined): Endpoint[] {
  const all = input.registry.endpoints(host, port);
  if (!subsetLabels || Object.keys(subsetLabels).length === 0) return [...all];
  return all.filter((ep) => labelsSubsetOf(subsetLabels, ep.labels));
}

/**
 * What of the proxy an assignment depends on: its locality when locality load balancing reads it (distribute, or
 * failover with outlier detection), and its labels too (with locality and network) when failover priorities
 * compare them; nothing otherwise.
 */
function proxyDependence(setting: LocalitySetting | undefined, enableFailover: boolean): ProxyDependence | undefined {
  if (!setting) return undefined;
  if (setting.distribute.length) return 'locality';
  if (!enableFailover) return undefined;
  return setting.failoverPriority.length ? 'labels' : 'locality';
}

/** That part of the proxy, as a cache key part ('' for nothing). */
export function proxyDependenceKey(proxy: ProxyInfo, d: ProxyDependence | undefined): string {
  if (!d) return '';
  const l = proxy.locality;
  const loc = `${l?.region ?? ''}/${l?.zone ?? ''}/${l?.subZone ?? ''}`;
  return d === 'labels' ? `${loc}|${labelsKey(proxyMatchLabels(proxy))}` : loc;
}

/**
 * A ClusterLoadAssignment for each of `clusterNames` that is an EDS cluster of this proxy (outbound, visible
 * service and port, known subset, EDS discovery); other names are skipped, as they have no EDS resource.
 * With a cache, an assignment is built once per endpoint list, subset, locality setting and (when it matters)
 * proxy locality, and shared by every proxy with the same key.
 */
export function buildEndpoints(
  input: TranslateInput,
  scope: ProxyScope,
  clusterNames: string[],
  cache?: TranslationCache,
): { endpoints: ClusterLoadAssignment[]; errors: TranslateError[]; dependence?: ProxyDependence } {
  const endpoints: ClusterLoadAssignment[] = [];
  const errors: TranslateError[] = [];
  let dependence: ProxyDependence | undefined;
  for (const name of clusterNames) {
    const parsed = parseClusterName(name);
    if (!parsed || parsed.direction !== 'outbound') continue;
    const svc = scope.serviceFor(parsed.host);
    if (!svc || !svc.ports.some((p) => p.port === parsed.port)) continue;
    const dp = scope.destinationPolicy(parsed.host);
    let subsetLabels: Record<string, string> | undefined;
    if (parsed.subset !== undefined) {
      const subset = dp?.subsets.find((s) => s.name === parsed.subset);
      if (!subset) continue;
      subsetLabels = subset.labels;
    }
    const policy = clusterTrafficPolicy(dp, parsed.port, parsed.subset);
    if (discoveryKind(svc, policy, input.proxy) !== 'EDS') continue;
    try {
      const setting = localitySetting(policy);
      const enableFailover = policy?.outlierDetection !== undefined;
      const d = proxyDependence(setting, enableFailover);
      if (d === 'labels' || (d === 'locality' && dependence === undefined)) dependence = d;
      let key: string | undefined;
      let from: readonly Endpoint[] | undefined;
      if (cache) {
        from = input.registry.endpoints(parsed.host, parsed.port);
        key = `${name}|${cache.id(subsetLabels)}|${cache.id(setting)}|${enableFailover ? 1 : 0}|${proxyDependenceKey(input.proxy, d)}`;
        const hit = cache.assignments.get(key);
        if (hit && hit.from === from) {
          cache.stats.hits++;
          endpoints.push(hit.cla);
          continue;
        }
        cache.stats.misses++;
      }
      const eps = subsetEndpoints(input, parsed.host, parsed.port, subsetLabels).filter((ep) => isIP(ep.address) !== 0);
      const wrapped = localityGroups(eps, cache, input.model);
      const groups = applyLocalityLb(wrapped, input.proxy, setting, enableFailover);
      const cla = create(ClusterLoadAssignmentSchema, { clusterName: name, endpoints: groups });
      if (cache && key !== undefined && from !== undefined) cache.assignments.set(key, { from, cla });
      endpoints.push(cla);
    } catch (e) {
      errors.push({ typeUrl: TypeUrl.ClusterLoadAssignment, resource: name, message: `cannot build endpoints: ${(e as Error).message}` });
    }
  }
  return dependence ? { endpoints, errors, dependence } : { endpoints, errors };
}
