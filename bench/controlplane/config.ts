/**
 * The benchmark's mesh: Kubernetes Services spread over namespaces, WorkloadEntries as their endpoints (with
 * localities and version labels), VirtualServices with weighted routes and retries for a share of the services,
 * and DestinationRules with subsets and outlier detection for a larger share.
 *
 * One YAML file per service (`<namespace>/<service>.yaml`), so an endpoint change rewrites one small file, as a
 * GitOps or config-management tool would.
 */
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface MeshShape {
  services: number;
  endpointsPerService: number;
  namespaces: number;
  /** Share of services with a VirtualService, in percent (0..100). */
  virtualServicePercent: number;
  /** Share of services with a DestinationRule, in percent (0..100); always covers the VirtualService ones. */
  destinationRulePercent: number;
  /** Share of services with a second (gRPC) port, in percent. */
  grpcPortPercent: number;
}

export const DEFAULT_SHAPE: MeshShape = {
  services: 1000,
  endpointsPerService: 10,
  namespaces: 10,
  virtualServicePercent: 30,
  destinationRulePercent: 50,
  grpcPortPercent: 10,
};

export const HTTP_PORT = 8080;
export const GRPC_PORT = 9090;
export const CLUSTER_DOMAIN = 'cluster.local';

export interface ServiceInfo {
  index: number;
  name: string;
  namespace: string;
  fqdn: string;
  ports: number[];
  virtualService: boolean;
  destinationRule: boolean;
  /** Relative path of the file that defines the service, its endpoints and its rules. */
  file: string;
  /** Addresses of its WorkloadEntries, in order. */
  addresses: string[];
}

export interface MeshSummary {
  shape: MeshShape;
  services: ServiceInfo[];
  namespaces: string[];
  endpoints: number;
  virtualServices: number;
  destinationRules: number;
  /** Outbound EDS clusters every sidecar sees (service ports, plus one per subset). */
  edsClusters: number;
}

/**
 * Whether service `i` is in the first `percent` % of a scrambled order (61 is coprime with 100, so every block of
 * 100 consecutive services holds exactly `percent` of them, and small meshes get a fair mix). Shares with the same
 * salt nest: a smaller share is a subset of a larger one.
 */
function inShare(i: number, percent: number, salt = 0): boolean {
  return (i * 61 + salt) % 100 < percent;
}

export function namespaceName(n: number): string {
  return `bench-${n}`;
}

/** The address of endpoint `k` (a global endpoint index): 10.x.y.z, unique for up to ~4 M endpoints. */
export function endpointAddress(k: number): string {
  return `10.${1 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}`;
}

/** Locality of endpoint `j` of a service: two regions, three zones each. */
export function endpointLocality(j: number): string {
  const region = j % 2 === 0 ? 'region-a' : 'region-b';
  return `${region}/${region}-zone-${j % 3}`;
}

export function describeMesh(shape: MeshShape): MeshSummary {
  const services: ServiceInfo[] = [];
  let vs = 0;
  let dr = 0;
  let eds = 0;
  for (let i = 0; i < shape.services; i++) {
    const namespace = namespaceName(i % shape.namespaces);
    const name = `svc-${String(i).padStart(4, '0')}`;
    const virtualService = inShare(i, shape.virtualServicePercent);
    const destinationRule = inShare(i, Math.max(shape.destinationRulePercent, shape.virtualServicePercent));
    const ports = inShare(i, shape.grpcPortPercent, 37) ? [HTTP_PORT, GRPC_PORT] : [HTTP_PORT];
    const addresses: string[] = [];
    for (let j = 0; j < shape.endpointsPerService; j++) addresses.push(endpointAddress(i * shape.endpointsPerService + j));
    if (virtualService) vs++;
    if (destinationRule) dr++;
    eds += ports.length * (destinationRule ? 3 : 1);
    services.push({
      index: i,
      name,
      namespace,
      fqdn: `${name}.${namespace}.svc.${CLUSTER_DOMAIN}`,
      ports,
      virtualService,
      destinationRule,
      file: join(namespace, `${name}.yaml`),
      addresses,
    });
  }
  return {
    shape,
    services,
    namespaces: Array.from({ length: shape.namespaces }, (_, n) => namespaceName(n)),
    endpoints: shape.services * shape.endpointsPerService,
    virtualServices: vs,
    destinationRules: dr,
    edsClusters: eds,
  };
}

/** The YAML of one service's file; `addresses` overrides the endpoint addresses (for endpoint changes). */
export function serviceYaml(s: ServiceInfo, addresses: readonly string[] = s.addresses): string {
  const out: string[] = [];
  const ports = s.ports
    .map((p) => (p === HTTP_PORT ? `  - {name: http, port: ${HTTP_PORT}, targetPort: ${HTTP_PORT}}` : `  - {name: grpc, port: ${GRPC_PORT}, targetPort: ${GRPC_PORT}}`))
    .join('\n');
  out.push(`apiVersion: v1
kind: Service
metadata: {name: ${s.name}, namespace: ${s.namespace}}
spec:
  selector: {app: ${s.name}}
  ports:
${ports}`);
  addresses.forEach((address, j) => {
    const version = j % 2 === 0 ? 'v1' : 'v2';
    const portMap = s.ports.includes(GRPC_PORT) ? `{http: ${HTTP_PORT}, grpc: ${GRPC_PORT}}` : `{http: ${HTTP_PORT}}`;
    out.push(`apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ${s.name}-${j}, namespace: ${s.namespace}}
spec:
  address: ${address}
  labels: {app: ${s.name}, version: ${version}}
  ports: ${portMap}
  locality: ${endpointLocality(j)}
  serviceAccount: ${s.name}`);
  });
  if (s.virtualService) {
    out.push(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ${s.name}, namespace: ${s.namespace}}
spec:
  hosts: [${s.name}]
  http:
  - name: canary
    match:
    - headers:
        x-canary: {exact: "true"}
    route:
    - destination: {host: ${s.name}, subset: v2, port: {number: ${HTTP_PORT}}}
    timeout: 5s
  - name: default
    route:
    - destination: {host: ${s.name}, subset: v1, port: {number: ${HTTP_PORT}}}
      weight: 90
    - destination: {host: ${s.name}, subset: v2, port: {number: ${HTTP_PORT}}}
      weight: 10
    retries: {attempts: 3, perTryTimeout: 2s, retryOn: "5xx,reset,connect-failure"}
    timeout: 10s`);
  }
  if (s.destinationRule) {
    out.push(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${s.name}, namespace: ${s.namespace}}
spec:
  host: ${s.name}
  trafficPolicy:
    loadBalancer: {simple: LEAST_REQUEST}
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 64, maxRequestsPerConnection: 100}
    outlierDetection: {consecutive5xxErrors: 5, interval: 10s, baseEjectionTime: 30s, maxEjectionPercent: 50}
  subsets:
  - name: v1
    labels: {version: v1}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}`);
  }
  return out.join('\n---\n') + '\n';
}

/** Writes the whole mesh under `dir` (which must exist or be creatable). */
export async function writeMesh(dir: string, mesh: MeshSummary): Promise<void> {
  for (const ns of mesh.namespaces) await mkdir(join(dir, ns), { recursive: true });
  const batch = 64;
  for (let i = 0; i < mesh.services.length; i += batch) {
    await Promise.all(mesh.services.slice(i, i + batch).map((s) => writeFile(join(dir, s.file), serviceYaml(s))));
  }
}

/**
 * Rewrites one service's file with new endpoint addresses, atomically (write a dot-file, rename over the
 * original), as editors and config tools that avoid half-written files do.
 */
export async function rewriteService(dir: string, s: ServiceInfo, addresses: readonly string[]): Promise<void> {
  const target = join(dir, s.file);
  const tmp = join(dir, s.namespace, `.${s.name}.yaml.tmp`);
  await writeFile(tmp, serviceYaml(s, addresses));
  await rename(tmp, target);
}
