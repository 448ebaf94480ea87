/**
 * Workload identities as Istio's standard metrics label them: the proxy's own (from its node metadata, once) and a
 * peer's (from the metadata exchange, peer-metadata.ts, or an endpoint's `istio.workload` metadata).
 *
 *   const local = localWorkload(node.id, node.metadata);   // NAMESPACE, WORKLOAD_NAME, LABELS, CLUSTER_ID, ...
 *   local.canonicalService                                  // service.istio.io/canonical-name, app.kubernetes.io/name, app, workload
 *
 * Field meanings are Istio's WorkloadMetadataObject: `workloadName` (WORKLOAD_NAME), `namespace` (NAMESPACE),
 * `clusterId` (CLUSTER_ID), `app` / `version` (LABELS app, version), `canonicalService` / `canonicalRevision`
 * (api/canonical.ts: LABELS service.istio.io/canonical-name / -revision; when absent, derived as Istio's injector
 * does: app.kubernetes.io/name, app, the workload name; app.kubernetes.io/version, version, `latest`). Empty strings are
 * "not known": the metrics print them as Istio does (`unknown`, or `latest` for a peer's canonical revision).
 */
import type { JsonObject, JsonValue } from '@bufbuild/protobuf';
import { canonicalService } from '../../../api/canonical.js';

/** A workload's identity as the metrics label it. Instances are shared (compare by reference). */
export interface Workload {
  readonly workloadName: string;
  readonly namespace: string;
  readonly clusterId: string;
  readonly app: string;
  readonly version: string;
  readonly canonicalService: string;
  readonly canonicalRevision: string;
  /** The service account (the local workload's; '' for peers, whose identity is their certificate). */
  readonly serviceAccount: string;
}

/** Istio's default CLUSTER_ID. */
export const DEFAULT_CLUSTER_ID = 'Kubernetes';

/** A peer nothing is known about (no exchange, no endpoint metadata). */
export const UNKNOWN_WORKLOAD: Workload = Object.freeze({
  workloadName: '',
  namespace: '',
  clusterId: '',
  app: '',
  version: '',
  canonicalService: '',
  canonicalRevision: '',
  serviceAccount: '',
});

function str(v: JsonValue | undefined): string {
  return typeof v === 'string' ? v : '';
}

function labelsOf(v: JsonValue | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return out;
  for (const [k, x] of Object.entries(v)) if (typeof x === 'string') out[k] = x;
  return out;
}

/**
 * The proxy's own workload from its node metadata. WORKLOAD_NAME defaults to the node id's first dot-separated part
 * of its `<pod>.<namespace>` field for Istio-style ids (`sidecar~ip~pod.ns~ns.svc.cluster.local`), else the id;
 * CLUSTER_ID defaults to `Kubernetes` as Istio's.
 */
export function localWorkload(nodeId: string, md: JsonObject | undefined): Workload {
  const m = md ?? {};
  const labels = labelsOf(m['LABELS']);
  const workloadName = str(m['WORKLOAD_NAME']) || defaultWorkloadName(nodeId);
  const c = canonicalService(labels, workloadName);
  return Object.freeze({
    workloadName,
    namespace: str(m['NAMESPACE']),
    clusterId: str(m['CLUSTER_ID']) || DEFAULT_CLUSTER_ID,
    app: labels['app'] ?? '',
    version: labels['version'] ?? '',
    canonicalService: c.name,
    canonicalRevision: c.revision,
    serviceAccount: str(m['SERVICE_ACCOUNT']),
  });
}

function defaultWorkloadName(id: string): string {
  const parts = id.split('~');
  if (parts.length === 4 && parts[2]) return parts[2].split('.')[0]!;
  return id;
}

/**
 * A peer from an endpoint's `filter_metadata.istio.workload` string, Istio's
 * `<workload>;<namespace>;<canonical name>;<canonical revision>;<cluster>` (app and version are not in it).
 * Undefined when the string does not have that shape.
 */
export function workloadFromEndpointMetadata(s: string): Workload | undefined {
  const p = s.split(';');
  if (p.length !== 5) return undefined;
  return Object.freeze({
    workloadName: p[0]!,
    namespace: p[1]!,
    canonicalService: p[2]!,
    canonicalRevision: p[3]!,
    clusterId: p[4]!,
    app: '',
    version: '',
    serviceAccount: '',
  });
}
