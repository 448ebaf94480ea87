/** Defaults of the mesh model, as Istio documents them (MeshConfig and the networking API). */
import type { MeshModel, MeshSettings, RetryPolicy } from './model.js';

export const DEFAULT_DOMAIN = 'cluster.local';
export const DEFAULT_ROOT_NAMESPACE = 'weft-system';

/**
 * Istio's default HTTP retry policy (MeshConfig.defaultHttpRetryPolicy when unset): 2 retries on
 * `connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes` with 503 retriable.
 */
export function defaultRetryPolicy(): RetryPolicy {
  return {
    attempts: 2,
    retryOn: ['connect-failure', 'refused-stream', 'unavailable', 'cancelled', 'retriable-status-codes'],
    retriableStatusCodes: [503],
  };
}

export function defaultMeshSettings(): MeshSettings {
  return {
    trustDomain: DEFAULT_DOMAIN,
    rootNamespace: DEFAULT_ROOT_NAMESPACE,
    outboundTrafficPolicy: 'ALLOW_ANY',
    defaultMtlsMode: 'PERMISSIVE',
    defaultTimeoutMs: 0,
    defaultRetries: defaultRetryPolicy(),
    enableAutoMtls: true,
    accessLogEncoding: 'TEXT',
    tracingSampling: 1,
  };
}

export function emptyModel(): MeshModel {
  return {
    mesh: defaultMeshSettings(),
    namespaces: [],
    services: [],
    workloads: [],
    localWorkloads: [],
    routes: [],
    destinationPolicies: [],
    sidecars: [],
    peerAuthentications: [],
    authorizationPolicies: [],
    requestAuthentications: [],
    gateways: [],
    telemetries: [],
  };
}
