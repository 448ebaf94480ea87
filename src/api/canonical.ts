/**
 * Istio's canonical service of a workload: the name and revision its telemetry (metrics labels
 * `*_canonical_service` / `*_canonical_revision`, span tags) and endpoint metadata (`istio.workload`) carry. One
 * definition for the control plane (translate/endpoint.ts, translate/telemetry.ts) and the proxy
 * (stats/istio/workload.ts), so both sides of a metric name a workload the same way.
 *
 * As Istio's sidecar injector derives them from the pod labels: the name is `service.istio.io/canonical-name`, else
 * `app.kubernetes.io/name`, else `app`, else the workload name; the revision `service.istio.io/canonical-revision`,
 * else `app.kubernetes.io/version`, else `version`, else `latest`. An empty label value counts as absent.
 */

export const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
export const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';
/** The revision of a workload whose labels name none. */
export const DEFAULT_CANONICAL_REVISION = 'latest';

export interface CanonicalService {
  readonly name: string;
  readonly revision: string;
}

/** The canonical service and revision of a workload with these labels. */
export function canonicalService(labels: Readonly<Record<string, string>>, workloadName: string): CanonicalService {
  const name = labels[CANONICAL_NAME_LABEL] || labels['app.kubernetes.io/name'] || labels['app'] || workloadName;
  const revision = labels[CANONICAL_REVISION_LABEL] || labels['app.kubernetes.io/version'] || labels['version'] || DEFAULT_CANONICAL_REVISION;
  return { name, revision };
}
