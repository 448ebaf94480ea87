/**
 * The destination service of a cluster, from Istio's cluster metadata `filter_metadata.istio.services[0]`
 * (`{host, name, namespace}`) and `filter_metadata.istio.external` (MESH_EXTERNAL services): what Istio's stats
 * filter reads for destination_service / destination_service_name, and what its metadata exchange reads to keep
 * the exchange headers away from services outside the mesh.
 *
 *   const svc = meshServiceOf(clusterProto);    // once, when the cluster compiles (ClusterRuntime.meshService)
 */
import type { Cluster } from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';

export interface MeshService {
  /** `reviews.default.svc.cluster.local` ('' when the cluster names no service). */
  readonly host: string;
  /** `reviews` (Istio: the `name` field, else the host's first label). */
  readonly name: string;
  readonly namespace: string;
  /** No exchange headers to this cluster: MESH_EXTERNAL (`istio.external`), `istio.disable_mx`, or PassthroughCluster. */
  readonly external: boolean;
}

/** Clusters Istio's stats name by their own name rather than a service. */
export const SPECIAL_CLUSTERS: ReadonlySet<string> = new Set([
  'BlackHoleCluster',
  'PassthroughCluster',
  'InboundPassthroughCluster',
  'InboundPassthroughClusterIpv4',
  'InboundPassthroughClusterIpv6',
]);

export function meshServiceOf(c: Pick<Cluster, 'name' | 'metadata'>): MeshService {
  if (SPECIAL_CLUSTERS.has(c.name)) return { host: '', name: c.name, namespace: '', external: c.name === 'PassthroughCluster' };
  const md = c.metadata?.filterMetadata['istio'];
  const external = md?.['external'] === true || md?.['disable_mx'] === true;
  const services = md?.['services'];
  const first = Array.isArray(services) ? services[0] : undefined;
  if (first === null || typeof first !== 'object' || Array.isArray(first)) return { host: '', name: '', namespace: '', external };
  const host = typeof first['host'] === 'string' ? first['host'] : '';
  const name = typeof first['name'] === 'string' && first['name'] !== '' ? first['name'] : host.split('.')[0]!;
  const namespace = typeof first['namespace'] === 'string' ? first['namespace'] : '';
  return { host, name, namespace, external };
}
