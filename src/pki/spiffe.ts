/**
 * SPIFFE workload identities as Istio names them: `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
 * The URI is the only subject alternative name of a workload certificate (an X.509 SVID) and the principal that
 * authorization policies match (without the `spiffe://` prefix).
 */

/** A workload identity: who the workload is, in which trust domain. */
export interface WorkloadId {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
/** A path segment of a SPIFFE ID: letters, digits, ".", "-", "_" (the SPIFFE ID spec), not "." or "..". */
const SEGMENT = /^[A-Za-z0-9._-]+$/;

/** Why an identity is not a valid SPIFFE workload identity; undefined when it is. */
export function identityProblem(id: WorkloadId): string | undefined {
  if (!TRUST_DOMAIN.test(id.trustDomain) || id.trustDomain.length > 255) return `trust domain "${id.trustDomain}" is not a valid SPIFFE trust domain (lower-case letters, digits, ".", "-", "_")`;
  for (const [field, v] of [['namespace', id.namespace], ['service account', id.serviceAccount]] as const) {
    if (!SEGMENT.test(v) || v === '.' || v === '..') return `${field} "${v}" is not a valid SPIFFE path segment (letters, digits, ".", "-", "_")`;
  }
  return undefined;
}

/** `spiffe://td/ns/NS/sa/SA`; throws on an invalid identity. */
export function spiffeUri(id: WorkloadId): string {
  const p = identityProblem(id);
  if (p) throw new Error(p);
  return `spiffe://${id.trustDomain}/ns/${id.namespace}/sa/${id.serviceAccount}`;
}

/** Parses an Istio-style workload SPIFFE URI; undefined when the URI is not one. */
export function parseSpiffeUri(uri: string): WorkloadId | undefined {
  const m = /^spiffe:\/\/([^/]+)\/ns\/([^/]+)\/sa\/([^/]+)$/.exec(uri);
  if (!m) return undefined;
  const id: WorkloadId = { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! };
  return identityProblem(id) ? undefined : id;
}

/** Whether two identities are the same. */
export function sameIdentity(a: WorkloadId, b: WorkloadId): boolean {
  return a.trustDomain === b.trustDomain && a.namespace === b.namespace && a.serviceAccount === b.serviceAccount;
}
