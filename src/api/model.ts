/**
 * The normalized mesh model: one representation that every API family (Kubernetes, Istio, SMI, Gateway API,
 * Weft's own kinds) translates into. The control plane translates this model (plus the service registry) into
 * xDS; the analyzer and the dashboard read it.
 *
 * Conventions:
 * - Hostnames are fully qualified (`reviews.default.svc.cluster.local`) once resolved; external hosts
 *   (ServiceEntry) are kept as written. Wildcards (`*.example.com`) stay as patterns.
 * - Durations are milliseconds; percentages are numbers in [0, 100] (fractions allowed).
 * - Weights of a weighted destination list are reduced by their greatest common divisor, so 80/20, 800/200 and
 *   4/1 are the same model.
 * - Every object carries an `origin`: the resource (and JSON path) it came from. `origin` never takes part in
 *   equality between models of different API families.
 */
import type { SourcePos } from './diagnostics.js';

export type ApiFamily = 'kubernetes' | 'istio' | 'smi' | 'gateway-api' | 'weft';

/** Where a model object came from. */
export interface Origin {
  family: ApiFamily;
  kind: string;
  apiVersion: string;
  namespace: string;
  name: string;
  /** JSON path inside the resource, e.g. `spec.http[1]`. */
  path?: string;
  pos?: SourcePos;
  /** metadata.creationTimestamp, when given: used for Gateway API's oldest-first precedence. */
  created?: string;
}

/** Application protocols, as Istio names them (port name prefix or appProtocol). */
export type Protocol =
  | 'HTTP'
  | 'HTTP2'
  | 'HTTPS'
  | 'GRPC'
  | 'GRPC-Web'
  | 'TCP'
  | 'TLS'
  | 'Mongo'
  | 'Redis'
  | 'MySQL'
  | 'Postgres'
  | 'UDP'
  /** No protocol declared: sniffed at runtime (HTTP or opaque TCP), as Istio does. */
  | 'UNKNOWN';

export type Labels = Record<string, string>;

/** `exportTo` values: `*` (all namespaces), `.` (own namespace), `~` (none) or namespace names. */
export type ExportTo = string[];

// ---------------------------------------------------------------------------------------------------------------
// Mesh-wide settings

export type OutboundTrafficPolicy = 'ALLOW_ANY' | 'REGISTRY_ONLY';

export interface MeshSettings {
  trustDomain: string;
  /** The namespace whose policies apply mesh-wide (Istio's root namespace). */
  rootNamespace: string;
  outboundTrafficPolicy: OutboundTrafficPolicy;
  /** Mesh-wide default mTLS mode when no PeerAuthentication says otherwise. */
  defaultMtlsMode: MtlsMode;
  /** Default route timeout (ms); 0 = none (Istio's default). */
  defaultTimeoutMs: number;
  /** Default retry policy applied to HTTP routes that set none (Istio: 2 attempts, see defaults.ts). */
  defaultRetries: RetryPolicy;
  /** Whether client sidecars use mTLS automatically toward endpoints that have a sidecar. */
  enableAutoMtls: boolean;
  /** Access logging switched on mesh-wide (off by default, as Istio). */
  accessLogFile?: string;
  accessLogEncoding: 'TEXT' | 'JSON';
  /** The access log format (TEXT: an Envoy format string; JSON: a JSON object of format strings); undefined = Istio's. */
  accessLogFormat?: string;
  /** Providers used when a Telemetry resource names none (Istio MeshConfig.defaultProviders). */
  defaultProviders?: { tracing: string[]; accessLogging: string[] };
  /** Tracing sampling percentage (0-100). */
  tracingSampling: number;
  /** Extension providers (ext_authz for CUSTOM AuthorizationPolicies, tracers), by name. Undefined = none. */
  extensionProviders?: ExtensionProvider[];
  origin?: Origin;
}

/** A mesh extension provider (Istio MeshConfig.extensionProviders, subset). */
export interface ExtensionProvider {
  name: string;
  kind: 'envoyExtAuthzGrpc' | 'zipkin' | 'opentelemetry' | 'envoyFileAccessLog';
  /** The provider's service as written: `host` (FQDN) or `namespace/host` ('' for envoyFileAccessLog). */
  service: string;
  /** 0 for envoyFileAccessLog. */
  port: number;
  /** envoyExtAuthzGrpc: timeout of the authorization check (ms); undefined = Envoy's default. opentelemetry http: report timeout. */
  timeoutMs?: number;
  /** zipkin: the collector endpoint (default `/api/v2/spans`); envoyFileAccessLog: the file (default `/dev/stdout`). */
  path?: string;
  /** zipkin: max_path_tag_length (default 256). */
  maxTagLength?: number;
  /** opentelemetry: OTLP/HTTP to this path (Istio's `http` block); undefined = OTLP/gRPC, which Weft proxies do not export. */
  httpPath?: string;
  /** envoyFileAccessLog: the format (text, or JSON labels); undefined = the mesh's format. */
  logFormat?: { text?: string; labels?: Record<string, string> };
}

// ---------------------------------------------------------------------------------------------------------------
// Telemetry (Istio telemetry.istio.io Telemetry: tracing and access logging per scope)

/** Which side's proxy config an entry applies to: CLIENT (outbound), SERVER (inbound), or both. */
export type TelemetryMode = 'CLIENT' | 'SERVER' | 'CLIENT_AND_SERVER';

export type TelemetryCustomTag = { literal: string } | { header: string; defaultValue?: string } | { environment: string; defaultValue?: string };

export interface TelemetryTracing {
  mode: TelemetryMode;
  /** Provider names; empty: the mesh's default providers (or those of a wider scope). */
  providers: string[];
  randomSamplingPercentage?: number;
  disableSpanReporting?: boolean;
  customTags: Record<string, TelemetryCustomTag>;
}

export interface TelemetryAccessLogging {
  mode: TelemetryMode;
  providers: string[];
  disabled?: boolean;
  /** A filter on the response code (the CEL forms `response.code >= N` and kin): log only when it holds. */
  filter?: { expression: string; op: 'EQ' | 'GE' | 'LE'; code: number };
}

/** One Telemetry resource: mesh-wide in the root namespace, namespace-wide, or for the workloads it selects. */
export interface TelemetryPolicy {
  namespace: string;
  name: string;
  selector?: Labels;
  tracing: TelemetryTracing[];
  accessLogging: TelemetryAccessLogging[];
  origin: Origin;
}

export interface Namespace {
  name: string;
  labels: Labels;
  origin?: Origin;
}

// ---------------------------------------------------------------------------------------------------------------
// Services and workloads

export interface ServicePort {
  name?: string;
  port: number;
  /** The workload port traffic goes to (number, or a named container port). */
  targetPort?: number | string;
  protocol: Protocol;
  /**
   * How the protocol was decided: `appProtocol`, the port name prefix, the L4 protocol (UDP), a well-known port
   * that Istio never sniffs (25, 53, 3306, 27017 → TCP), or nothing (UNKNOWN: sniffed). See src/api/protocol.ts.
   * `protocol`: an explicit protocol field (Istio ServiceEntry ports).
   */
  protocolSource: 'appProtocol' | 'name' | 'l4' | 'port' | 'none' | 'protocol';
  appProtocol?: string;
}

export type Resolution = 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS' | 'NONE';
export type Location = 'MESH_INTERNAL' | 'MESH_EXTERNAL';

/** A static endpoint declared inside a ServiceEntry. */
export interface StaticEndpoint {
  address: string;
  ports: Record<string, number>;
  labels: Labels;
  locality?: string;
  weight?: number;
  network?: string;
  serviceAccount?: string;
}

export interface Service {
  /** Fully qualified hostname (Kubernetes: name.namespace.svc.<domain>; ServiceEntry: the host as written). */
  hostname: string;
  namespace: string;
  /** The Kubernetes short name, for Services. */
  name?: string;
  ports: ServicePort[];
  /** Virtual IPs (Kubernetes clusterIP, ServiceEntry addresses). */
  addresses: string[];
  resolution: Resolution;
  location: Location;
  /** Label selector over workloads; undefined = endpoints come from elsewhere (ServiceEntry endpoints, none). */
  selector?: Labels;
  /** ServiceEntry workloadSelector (selects WorkloadEntries and workloads by labels). */
  exportTo: ExportTo;
  labels: Labels;
  endpoints: StaticEndpoint[];
  /** SubjectAltNames (ServiceEntry) for TLS verification. */
  subjectAltNames: string[];
  /**
   * Kubernetes ExternalName Services: the DNS name this Service is an alias of (Istio treats such a Service as an
   * alias of that host; resolution is DNS and location MESH_EXTERNAL).
   */
  externalName?: string;
  origin: Origin;
}

export type WorkloadKind = 'WorkloadEntry' | 'LocalWorkload' | 'Registered';

/** A workload instance (or, for LocalWorkload, a template for `replicas` instances). */
export interface Workload {
  kind: WorkloadKind;
  name: string;
  namespace: string;
  /** IP or hostname; undefined for LocalWorkloads until the runtime assigns one. */
  address?: string;
  labels: Labels;
  /** Port name → port number. */
  ports: Record<string, number>;
  /** `region/zone/subzone`. */
  locality?: string;
  weight?: number;
  network?: string;
  serviceAccount: string;
  origin?: Origin;
}

/** A process the local runtime runs (Weft's LocalWorkload kind). */
export interface LocalWorkload {
  name: string;
  namespace: string;
  command: string[];
  cwd?: string;
  env: Record<string, string>;
  ports: Array<{ name: string; port: number; protocol: Protocol }>;
  labels: Labels;
  serviceAccount: string;
  replicas: number;
  /** Services this workload calls over TCP and wants a local port for (env `<NAME>_ADDR`). */
  upstreams: Array<{ name: string; host: string; port: number }>;
  locality?: string;
  capture: 'explicit' | 'transparent';
  origin: Origin;
}

// ---------------------------------------------------------------------------------------------------------------
// Routing

export type StringMatch = { exact: string } | { prefix: string } | { regex: string };

export interface HeaderMatch {
  name: string;
  /** Undefined with `present` = header presence only. */
  match?: StringMatch;
  present?: boolean;
  /** Match when the condition does NOT hold (Istio withoutHeaders, Envoy invert_match). */
  invert?: boolean;
}

export interface QueryParamMatch {
  name: string;
  match?: StringMatch;
  present?: boolean;
}

/** One match condition: every given field must hold. A route with no matches matches everything. */
export interface RouteMatch {
  name?: string;
  path?: StringMatch;
  ignoreCase?: boolean;
  method?: StringMatch;
  authority?: StringMatch;
  scheme?: StringMatch;
  headers: HeaderMatch[];
  queryParams: QueryParamMatch[];
  /** Destination port the request was sent to. */
  port?: number;
  /** Restricts the match to callers with these labels / in this namespace (Istio sourceLabels/sourceNamespace). */
  sourceLabels?: Labels;
  sourceNamespace?: string;
  /** Gateways the match applies to (`mesh` = sidecars). Empty = inherit the route table's gateways. */
  gateways: string[];
}

export interface HeaderOps {
  set: Record<string, string>;
  add: Record<string, string>;
  remove: string[];
}

export interface Destination {
  /** Destination hostname, fully qualified when it names a mesh service. */
  host: string;
  subset?: string;
  port?: number;
  /** Relative weight (reduced by the list's GCD). */
  weight: number;
  headers?: { request: HeaderOps; response: HeaderOps };
}

export interface RetryPolicy {
  /** Number of retries (not counting the first attempt); 0 disables retries. */
  attempts: number;
  perTryTimeoutMs?: number;
  /** Envoy retry_on conditions (`5xx`, `gateway-error`, `connect-failure`, `refused-stream`, `retriable-4xx`, ...). */
  retryOn: string[];
  /** Retriable HTTP status codes (for `retriable-status-codes`). */
  retriableStatusCodes: number[];
  retryRemoteLocalities?: boolean;
  /** Prefer hosts not tried before when retrying (Istio retryIgnorePreviousHosts; Envoy previous_hosts predicate). */
  retryIgnorePreviousHosts?: boolean;
  backoff?: { baseIntervalMs: number; maxIntervalMs?: number };
}

export interface FaultPolicy {
  delay?: { fixedDelayMs: number; percent: number };
  abort?: { httpStatus?: number; grpcStatus?: string; percent: number };
}

export interface MirrorPolicy {
  host: string;
  subset?: string;
  port?: number;
  percent: number;
}

export interface CorsPolicy {
  allowOrigins: StringMatch[];
  allowMethods: string[];
  allowHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
  allowCredentials?: boolean;
}

export interface Redirect {
  scheme?: string;
  host?: string;
  port?: number;
  /** Full path replacement. */
  path?: string;
  /** Replace the matched prefix. */
  prefixRewrite?: string;
  /** Set the port from the request (`FROM_REQUEST_PORT`) or the scheme's default (`FROM_PROTOCOL_DEFAULT`). */
  derivePort?: 'FROM_PROTOCOL_DEFAULT' | 'FROM_REQUEST_PORT';
  statusCode: number;
}

export interface Rewrite {
  /** Replace the matched path prefix (or, for an exact match, the path). */
  prefix?: string;
  /** Replace the whole path. */
  fullPath?: string;
  regex?: { pattern: string; substitution: string };
  authority?: string;
}

export type RouteAction =
  | { kind: 'route'; destinations: Destination[] }
  | { kind: 'redirect'; redirect: Redirect }
  | { kind: 'direct'; status: number; body?: string };

export interface HttpRoute {
  name?: string;
  /** Any of these matches selects the route (OR); empty = match all. */
  matches: RouteMatch[];
  action: RouteAction;
  rewrite?: Rewrite;
  /** Route timeout in ms; undefined = the mesh default; 0 = none. */
  timeoutMs?: number;
  /** Per-try (backend) timeout from Gateway API timeouts.backendRequest. */
  retries?: RetryPolicy;
  fault?: FaultPolicy;
  mirrors: MirrorPolicy[];
  headers: { request: HeaderOps; response: HeaderOps };
  cors?: CorsPolicy;
  origin: Origin;
}

/** An L4 match for TCP/TLS routes. */
export interface L4Match {
  port?: number;
  destinationSubnets: string[];
  sniHosts: string[];
  sourceLabels?: Labels;
  sourceNamespace?: string;
  gateways: string[];
}

export interface TcpRoute {
  matches: L4Match[];
  destinations: Destination[];
  origin: Origin;
}

/** TLS passthrough routing by SNI. */
export interface TlsRoute {
  matches: L4Match[];
  destinations: Destination[];
  origin: Origin;
}

/**
 * The routing rules for a set of hosts: what a VirtualService, a TrafficSplit (root service) or a GAMMA
 * HTTPRoute/GRPCRoute (parent Service) says. Rules are in evaluation order (first match wins).
 */
export interface RouteTable {
  /** Hosts the table applies to, resolved to FQDNs where they name a Service (may include wildcards). */
  hosts: string[];
  namespace: string;
  /** `mesh` for sidecars, or `namespace/gateway` names. */
  gateways: string[];
  exportTo: ExportTo;
  /** Restricts to specific service ports (Gateway API parentRef.port); empty = all ports. */
  ports: number[];
  http: HttpRoute[];
  tcp: TcpRoute[];
  tls: TlsRoute[];
  origin: Origin;
}

// ---------------------------------------------------------------------------------------------------------------
// Destination policies (DestinationRule)

export interface LoadBalancerSettings {
  simple?: 'UNSPECIFIED' | 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'PASSTHROUGH';
  consistentHash?: {
    httpHeaderName?: string;
    httpCookie?: { name: string; path?: string; ttlMs?: number };
    useSourceIp?: boolean;
    httpQueryParameterName?: string;
    ringHash?: { minimumRingSize?: number };
    maglev?: { tableSize?: number };
  };
  locality?: {
    enabled?: boolean;
    distribute: Array<{ from: string; to: Record<string, number> }>;
    failover: Array<{ from: string; to: string }>;
    failoverPriority: string[];
  };
  warmupDurationMs?: number;
}

export interface ConnectionPoolSettings {
  tcp?: {
    maxConnections?: number;
    connectTimeoutMs?: number;
    idleTimeoutMs?: number;
    maxConnectionDurationMs?: number;
    tcpKeepalive?: { probes?: number; timeMs?: number; intervalMs?: number };
  };
  http?: {
    http1MaxPendingRequests?: number;
    http2MaxRequests?: number;
    maxRequestsPerConnection?: number;
    maxRetries?: number;
    idleTimeoutMs?: number;
    h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
    useClientProtocol?: boolean;
    maxConcurrentStreams?: number;
  };
}

export interface OutlierDetectionSettings {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  consecutiveLocalOriginFailures?: number;
  splitExternalLocalOriginErrors: boolean;
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionPercent: number;
  minHealthPercent: number;
}

export type ClientTlsMode = 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';

export interface ClientTlsSettings {
  mode: ClientTlsMode;
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
}

export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetectionSettings;
  tls?: ClientTlsSettings;
  /** Tunnel TCP to the destination over HTTP CONNECT or POST (Istio DestinationRule tunnel). */
  tunnel?: { protocol: 'CONNECT' | 'POST'; targetHost: string; targetPort: number };
  /** Send a PROXY protocol header upstream. */
  proxyProtocol?: { version: 'V1' | 'V2' };
  /** Limit on concurrent retries relative to active requests. */
  retryBudget?: { percent: number; minRetryConcurrency: number };
  portLevelSettings: Array<{ port: number } & Omit<TrafficPolicy, 'portLevelSettings'>>;
}

export interface Subset {
  name: string;
  labels: Labels;
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationPolicy {
  host: string;
  namespace: string;
  exportTo: ExportTo;
  workloadSelector?: Labels;
  trafficPolicy?: TrafficPolicy;
  subsets: Subset[];
  origin: Origin;
}

// ---------------------------------------------------------------------------------------------------------------
// Sidecar scoping

export interface SidecarScope {
  namespace: string;
  /** Undefined = applies to every workload in the namespace without a more specific Sidecar. */
  workloadSelector?: Labels;
  egress: Array<{
    port?: { number: number; protocol?: Protocol; name?: string };
    bind?: string;
    captureMode?: string;
    /** `namespace/dnsName`, with `./` replaced by the Sidecar's own namespace. */
    hosts: string[];
    /**
     * The hosts as written, set only when one uses `./`: Istio resolves `.` against the namespace the Sidecar
     * applies to, which for a root-namespace Sidecar (the mesh default) is the proxy's namespace, not its own.
     */
    writtenHosts?: string[];
  }>;
  ingress: Array<{ port: { number: number; protocol?: Protocol; name?: string }; bind?: string; defaultEndpoint?: string }>;
  outboundTrafficPolicy?: OutboundTrafficPolicy;
  origin: Origin;
}

// ---------------------------------------------------------------------------------------------------------------
// Security

export type MtlsMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationPolicy {
  namespace: string;
  selector?: Labels;
  mode: MtlsMode;
  portLevel: Record<number, MtlsMode>;
  origin: Origin;
}

export interface JwtRule {
  issuer: string;
  audiences: string[];
  jwksUri?: string;
  jwks?: string;
  fromHeaders: Array<{ name: string; prefix?: string }>;
  fromParams: string[];
  fromCookies: string[];
  outputPayloadToHeader?: string;
  forwardOriginalToken: boolean;
  outputClaimToHeaders: Array<{ header: string; claim: string }>;
}

/** A policy attachment by reference (Istio targetRef/targetRefs: a Service, ServiceEntry, Gateway or GatewayClass). */
export interface PolicyTargetRef {
  group: string;
  kind: string;
  name: string;
}

export interface RequestAuthenticationPolicy {
  namespace: string;
  selector?: Labels;
  /** When set, the policy applies to these targets instead of workloads picked by `selector`. */
  targetRefs?: PolicyTargetRef[];
  jwtRules: JwtRule[];
  origin: Origin;
}

/** Values with their negations, as AuthorizationPolicy writes them (`principals` / `notPrincipals`). */
export interface ValueSet {
  values?: string[];
  notValues?: string[];
}

export interface AuthzSource {
  principals?: ValueSet;
  requestPrincipals?: ValueSet;
  namespaces?: ValueSet;
  ipBlocks?: ValueSet;
  remoteIpBlocks?: ValueSet;
  /** Workload service accounts (SMI TrafficTarget sources; translated to principals with the trust domain). */
  serviceAccounts?: Array<{ namespace: string; name: string }>;
  /** Service accounts that must NOT match (Istio notServiceAccounts). */
  notServiceAccounts?: Array<{ namespace: string; name: string }>;
}

export interface AuthzOperation {
  hosts?: ValueSet;
  ports?: ValueSet;
  methods?: ValueSet;
  paths?: ValueSet;
  /**
   * RE2 patterns; the request path (query string excluded) must fully match one of them (SMI HTTPRouteGroup
   * pathRegex, which SMI anchors at the start only, is stored as `(?:<pathRegex>).*`).
   */
  pathRegexes?: string[];
  /** Request headers whose value must fully match the RE2 pattern; all must hold (SMI HTTPRouteGroup headers). */
  headerRegexes?: Array<{ name: string; regex: string }>;
  /**
   * Restricts the operation to one kind of traffic: `HTTP` = HTTP requests only (SMI HTTPRouteGroup rules);
   * `TCP` / `UDP` = connections the proxy does not handle as HTTP (SMI TCPRoute / UDPRoute rules). Undefined =
   * Istio semantics (an operation with HTTP-only fields never matches a TCP connection; one without matches both).
   */
  protocol?: 'HTTP' | 'TCP' | 'UDP';
}

export interface AuthzCondition {
  key: string;
  values?: string[];
  notValues?: string[];
}

export interface AuthzRule {
  from: AuthzSource[];
  to: AuthzOperation[];
  when: AuthzCondition[];
}

export type AuthzAction = 'ALLOW' | 'DENY' | 'AUDIT' | 'CUSTOM';

export interface AuthorizationPolicy {
  namespace: string;
  selector?: Labels;
  /** When set, the policy applies to these targets instead of workloads picked by `selector`. */
  targetRefs?: PolicyTargetRef[];
  /**
   * Restricts the policy to workloads running as this service account of `namespace` (SMI TrafficTarget
   * destinations select pods by service account); combined with `selector` when both are set.
   */
  serviceAccount?: string;
  action: AuthzAction;
  /** For CUSTOM: the extension provider's name. */
  provider?: string;
  /**
   * The rules. An empty list never matches (so an ALLOW policy with no rules denies everything it selects);
   * a rule with no from/to/when matches every request.
   */
  rules: AuthzRule[];
  origin: Origin;
}

// ---------------------------------------------------------------------------------------------------------------
// Edge (parsed now, served by the gateway issue)

export interface GatewayServer {
  port: { number: number; name?: string; protocol: string; targetPort?: number };
  hosts: string[];
  bind?: string;
  tls?: { mode: string; credentialName?: string; httpsRedirect?: boolean; serverCertificate?: string; privateKey?: string; caCertificates?: string; subjectAltNames?: string[]; minProtocolVersion?: string };
  name?: string;
}

export interface GatewayDef {
  family: 'istio' | 'gateway-api';
  name: string;
  namespace: string;
  selector: Labels;
  /** Gateway API: the GatewayClass name. */
  className?: string;
  servers: GatewayServer[];
  origin: Origin;
}

// ---------------------------------------------------------------------------------------------------------------

/** The whole normalized model. */
export interface MeshModel {
  mesh: MeshSettings;
  namespaces: Namespace[];
  services: Service[];
  workloads: Workload[];
  localWorkloads: LocalWorkload[];
  routes: RouteTable[];
  destinationPolicies: DestinationPolicy[];
  sidecars: SidecarScope[];
  peerAuthentications: PeerAuthenticationPolicy[];
  authorizationPolicies: AuthorizationPolicy[];
  requestAuthentications: RequestAuthenticationPolicy[];
  gateways: GatewayDef[];
  telemetries: TelemetryPolicy[];
}

export function emptyHeaderOps(): HeaderOps {
  return { set: {}, add: {}, remove: [] };
}
