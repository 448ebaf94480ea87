/**
 * `weft control-plane`: Weft's istiod. It ties the pieces together:
 *
 *   config files ─ DirectorySource ─ ConfigStore ─ buildModel ─ MeshModel ─┐
 *                                                                         ├─ translate (per proxy shape)
 *   registration API / heartbeats ─ ServiceRegistry (services, endpoints) ┘        │
 *                                                                                  ▼
 *                                         debounced pushes ─ SnapshotCache ─ AdsServer (SotW + Delta)
 *
 * - Config: every change of the store rebuilds the model. A resource with errors is dropped by buildModel and
 *   reported (logged, counted, listed at /debug/configz); when an earlier version of that resource was valid,
 *   that version stays in effect (as a Kubernetes API server keeps the last object its validating webhook
 *   accepted), so a broken edit never reaches a proxy. A build that throws keeps the last good model.
 * - Pushes are debounced and merged (see push.ts). A config or service change regenerates the snapshot of every
 *   connected proxy; an endpoint-only change regenerates only the ClusterLoadAssignments of the clusters of the
 *   affected hosts (the other types are shared with the proxy's current snapshot), and since resource versions
 *   are content hashes only proxies whose assignments changed are sent anything.
 * - Config changes are classified as istiod classifies its updates (see onConfigChange): a change that touches
 *   only WorkloadEntries (or only the inline endpoints of ServiceEntries) is an endpoint change, pushed as EDS
 *   only; for WorkloadEntry-only changes the model is rebuilt from the last one (only the changed entries are
 *   validated and translated) and translation keeps its model, so nothing cached is lost; entries edited in
 *   place (ConfigChange.inPlace) replace their old workloads in the model and the registry where they were, so
 *   such an edit costs the same in a mesh of ten or ten thousand entries.
 * - Translation is memoized per proxy *shape* (everything translation reads of a proxy: type, namespace,
 *   labels, service account, locality, mode, ports and upstreams, network, IPv6-only; not its id or
 *   addresses), so proxies with the same shape share one translation and one immutable Snapshot object. Across
 *   shapes, the translation cache (translate/cache.ts) shares every piece two shapes have in common (clusters,
 *   assignments, routes, whole stage outputs) and encodes each once, so identical resources are one packed
 *   object in every snapshot; it is valid for one translation model and registry service list.
 * - A proxy that connects gets its snapshot immediately (no debounce).
 * - Security (`security` option; docs/security.md): a CA (ca/), the TLS xDS port (ads/tls-port.ts: the CSR
 *   service and ADS over mTLS) and the trust bundle as the SDS Secret `ROOTCA` in every snapshot; a change of the
 *   CA files is a `secret` push. The plaintext port binds loopback by default and can be switched off.
 * - A translation error drops the resource concerned; it is logged, counted and shown in /debug/syncz, and
 *   everything else is pushed.
 */
import { NAME_TABLE_TYPE_URL, NameTableSchema } from '../xds/name-table.js';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import type { Server as HttpServer } from 'node:http';
import { create } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { timestampFromMs } from '@bufbuild/protobuf/wkt';
import { buildModel } from '../api/build.js';
import type { BuildResult } from '../api/build.js';
import type { Diagnostic } from '../api/diagnostics.js';
import type { MeshModel, Service, Workload } from '../api/model.js';
import { emptyModel } from '../api/defaults.js';
import type { RawResource } from '../api/source.js';
import { DirectorySource } from '../config/directory.js';
import { resourceKey } from '../config/store.js';
import { splitApiVersion } from '../api/kinds/kind.js';
import type { ConfigChange } from '../config/store.js';
import { pack, TypeUrl } from '../xds/index.js';
import type { Node } from '../xds/gen/envoy/config/core/v3/base_pb.js';
import { ClusterSchema } from '../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { ClusterLoadAssignment } from '../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../xds/gen/envoy/config/route/v3/route_pb.js';
import { SecretSchema } from '../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { ConfigDumpSchema } from '../xds/gen/envoy/admin/v3/config_dump_pb.js';
import type { ConfigDump } from '../xds/gen/envoy/admin/v3/config_dump_pb.js';
import {
  ClientResourceStatus,
  ClustersConfigDumpSchema,
  EndpointsConfigDumpSchema,
  ListenersConfigDumpSchema,
  RoutesConfigDumpSchema,
  UpdateFailureStateSchema,
} from '../xds/gen/envoy/admin/v3/config_dump_shared_pb.js';
import { AdsServer } from './ads/server.js';
import { TlsXdsPort } from './ads/tls-port.js';
import { CaSource } from './ca/watch.js';
import type { CertificateAuthority } from './ca/ca.js';
import { loadOrCreateTokenKey, WeftTokenVerifier } from './ca/token.js';
import type { TokenVerifier } from './ca/token.js';
import { rootCaSecret, ROOTCA_SECRET } from './ca/secret.js';
import { SnapshotCache, syncState } from './cache/cache.js';
import type { SyncState, TypeStatus } from './cache/cache.js';
import { derivationOf, Snapshot } from './cache/snapshot.js';
import type { ResourceMap, VersionedResource } from './cache/snapshot.js';
import { createHttpServer } from './http.js';
import { createLogger } from './log.js';
import type { Logger } from './log.js';
import { CredentialDirectory } from './credentials.js';
import { ControlPlaneMetrics, metricType } from './metrics.js';
import { proxyFromNode } from './proxy.js';
import type { ProxyInfo } from './proxy.js';
import { PushDebouncer, pushRequest } from './push.js';
import type { PushReason, PushRequest } from './push.js';
import { ServiceRegistry } from './registry/registry.js';
import type { Endpoint, RegisteredWorkload, RegistryChange } from './registry/registry.js';
import type { ProxyResources, TranslateError, TranslateInput } from './translate/index.js';
import { TranslationCache } from './translate/cache.js';
import { buildEndpoints } from './translate/endpoint.js';
import { parseClusterName } from './translate/names.js';
import { computeScope } from './translate/scope.js';
import { translateProxy } from './translate/translate.js';
import { MeshTelemetry } from './telemetry/telemetry.js';
import type { ScrapeTarget, TelemetryOptions, TelemetryWindow } from './telemetry/telemetry.js';
import type { SeriesLabels } from './telemetry/istio.js';
import type { MeshSource } from './meshapi/views.js';
import { analyze } from '../analyze/index.js';
import type { AnalysisMessage } from '../analyze/types.js';

/** Weft's version (from package.json). */
export const WEFT_VERSION: string = (() => {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
})();

/** Translates for one proxy; `cache` is the control plane's translation cache (see translate/cache.ts). */
export type TranslateFn = (input: TranslateInput, cache?: TranslationCache) => ProxyResources;
/** Builds the ClusterLoadAssignments of the named clusters for a proxy (an EDS-only push). */
export type EndpointsFn = (input: TranslateInput, clusterNames: readonly string[], cache?: TranslationCache) => { endpoints: ClusterLoadAssignment[]; errors: TranslateError[] };

export interface ControlPlaneOptions {
  /** Config files and directories (watched). */
  configPaths: string | readonly string[];
  /** ADS port (default 15010, istiod's plaintext xDS port); 0 picks a free port. */
  xdsPort?: number;
  /** HTTP port for /ready, /metrics, /debug/* and the registration API (default 15014, istiod's monitoring port). */
  httpPort?: number;
  /** Address both servers bind to (default 127.0.0.1). */
  bind?: string;
  /** DNS domain of Kubernetes hostnames (default cluster.local). */
  domain?: string;
  logger?: Logger;
  /** Push debounce quiet period (default 100 ms). */
  debounceMs?: number;
  /** Longest push debounce (default 10 s). */
  debounceMaxMs?: number;
  /** The translator (default: translateProxy, src/controlplane/translate). */
  translate?: TranslateFn;
  /**
   * The EDS-only builder (default: buildEndpoints over the proxy's scope; with a custom `translate` and no
   * `endpoints`, the translator's assignments).
   */
  endpoints?: EndpointsFn;
  /** Quiet period of the config file watcher (default 100 ms). */
  configDebounceMs?: number;
  /** Period of the config safety-net rescan (default 2000 ms; 0 disables). */
  configRescanMs?: number;
  /** How often heartbeat deadlines of registered workloads are checked (default 1000 ms). */
  expiryIntervalMs?: number;
  /** Bound of the bytes of ADS responses written and not yet sent (default 128 MiB; see SendBudget). */
  sendBudgetBytes?: number;
  /**
   * Directory of gateway credentials (`credentialName`; layout in credentials.ts and docs/gateways.md), served to
   * gateway proxies as SDS Secrets and re-pushed when the files change. Undefined = no credentials.
   */
  secretsDir?: string;
  /** Serve plaintext ADS on `xdsPort` (default true; `--xds-plaintext=false` switches it off). */
  xdsPlaintext?: boolean;
  /** Address the plaintext ADS port binds to (default 127.0.0.1: it authenticates nobody, so loopback only). */
  xdsPlaintextBind?: string;
  /** The CA, workload tokens and the TLS xDS port; undefined = none of them (plaintext ADS only). */
  security?: SecurityOptions;
  /**
   * Mesh telemetry (src/controlplane/telemetry): scrape the proxies' Istio metrics (default) or query Prometheus
   * (`prometheus`); `false` switches it off (the mesh API then reports no traffic).
   */
  telemetry?: false | Pick<TelemetryOptions, 'prometheus' | 'intervalMs' | 'windowMs' | 'errorsWindowMs'>;
}

/** The control plane's security setup (docs/security.md). */
export interface SecurityOptions {
  /** The CA directory in Istio's cacerts layout (ca/ca.ts). */
  caDir: string;
  /** Create a self-signed root in caDir on first start (default true); false for a plugged-in cacerts directory. */
  createCa?: boolean;
  /** The Weft token key (created on first use); ignored when `tokenVerifier` is given. */
  tokenKeyPath?: string;
  /** Verifies bearer tokens on the CSR service (default: Weft tokens signed with the key at tokenKeyPath). */
  tokenVerifier?: TokenVerifier;
  /** TLS xDS port: CSR service + ADS over mTLS (default 15012, istiod's); 0 picks a free port. */
  xdsTlsPort?: number;
  /** Default workload certificate TTL (default 24 h) and the longest a caller may ask for (default 90 days). */
  workloadTtlMs?: number;
  maxWorkloadTtlMs?: number;
  /** How often the CA files are checked for changes (default 1000 ms; 0 = never). */
  caPollMs?: number;
  /** More DNS names / IPs for the control plane's serving certificate. */
  serverNames?: readonly string[];
}

/** The state of one xDS type of one proxy, as /debug/syncz reports it. */
export interface TypeSyncStatus {
  typeUrl: string;
  state: SyncState;
  sentVersion?: string;
  sentAt?: string;
  ackedVersion?: string;
  ackedAt?: string;
  nack?: { version: string; message: string; at: string };
}

export interface ProxySyncStatus {
  id: string;
  namespace: string;
  /** Proxy type: sidecar, router or grpc. */
  type: string;
  labels: Record<string, string>;
  /** The proxy's own version (ISTIO_VERSION / WEFT_VERSION metadata, else its user agent), when known. */
  proxyVersion?: string;
  connectedAt: string;
  streams: number;
  /** Version label of the snapshot the control plane holds for the proxy. */
  snapshotVersion?: string;
  controlPlaneId: string;
  controlPlaneVersion: string;
  /** CDS, LDS, EDS, RDS (always) and any other type the proxy asked for. */
  xds: Record<string, TypeSyncStatus>;
  /** Resources dropped by translation for this proxy (the rest was pushed). */
  translationErrors: TranslateError[];
}

/** One push, as logged and emitted (`'push'` event). */
export interface PushSummary {
  version: string;
  reasons: Partial<Record<PushReason, number>>;
  full: boolean;
  /** Connected proxies considered. */
  proxies: number;
  /** Proxies whose snapshot changed. */
  changed: number;
  /** Translations run (one per distinct proxy shape). */
  translations: number;
  /** Responses sent during the push, by type (CDS, EDS, LDS, RDS). */
  types: Record<string, number>;
  /** Hosts whose endpoints changed (EDS-only pushes). */
  hosts?: string[];
  durationMs: number;
}

/** What /v1/workloads accepts (validated by http.ts). */
export interface WorkloadRegistration {
  name: string;
  namespace: string;
  address: string;
  labels: Record<string, string>;
  ports: Record<string, number>;
  locality?: string;
  weight?: number;
  network?: string;
  serviceAccount: string;
  sidecar: boolean;
  /** Heartbeat deadline in seconds; 0 = the workload never expires. */
  ttlSeconds: number;
  healthy?: boolean;
  /** `LocalWorkload` for replicas the local runtime (`weft up`) started in-process; default `Registered`. */
  source?: 'Registered' | 'LocalWorkload';
}

interface ProxyEntry {
  info: ProxyInfo;
  shape: string;
  version: string;
  connectedAt: number;
  errors: TranslateError[];
  /** Types not yet answered since the proxy connected (their first response's push time is since connect). */
  firstResponse: Set<string>;
}

interface Generated {
  snapshot: Snapshot;
  errors: TranslateError[];
}

/** An EDS-only push's change of one assignment map (see patchEndpoints). */
interface EdsPatch {
  /** The patched map; undefined when no assignment changed. */
  map?: ResourceMap;
  /** The assignments rebuilt (their previous errors are replaced by `errors`). */
  rebuilt: Set<string>;
  errors: TranslateError[];
  /** Translation failed: the proxies keep their current assignments. */
  failed: boolean;
}

/** Short names of the xDS types, as status pages and metrics show them. */
export const SHORT_TYPE: Record<string, string> = {
  [TypeUrl.Cluster]: 'CDS',
  [TypeUrl.ClusterLoadAssignment]: 'EDS',
  [TypeUrl.Listener]: 'LDS',
  [TypeUrl.RouteConfiguration]: 'RDS',
  [TypeUrl.Secret]: 'SDS',
};
const STATUS_TYPES: string[] = [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.ClusterLoadAssignment, TypeUrl.RouteConfiguration];

function shortType(typeUrl: string): string {
  return SHORT_TYPE[typeUrl] ?? typeUrl.slice(typeUrl.lastIndexOf('.') + 1);
}

/** JSON with object keys sorted: equal values give equal strings. */
function canonicalJson(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => {
    if (x && typeof x === 'object' && !Array.isArray(x)) {
      const o = x as Record<string, unknown>;
      return Object.fromEntries(Object.keys(o).sort().map((k) => [k, o[k]]));
    }
    return x;
  });
}

/**
 * The part of a proxy's identity that translation reads: proxies with equal shapes get equal resources. Of the
 * addresses, only whether they are all IPv6 (DNS clusters' lookup family); of the metadata, only NETWORK
 * (failover priorities compare the proxy's network label).
 */
export function proxyShape(info: ProxyInfo): string {
  const { id: _id, ipAddresses, workloadName: _w, metadata, ...rest } = info;
  const network = typeof metadata.NETWORK === 'string' ? metadata.NETWORK : '';
  const ipv6Only = ipAddresses.length > 0 && ipAddresses.every((ip) => ip.includes(':'));
  return canonicalJson({ ...rest, network, ipv6Only });
}

function proxyVersionOf(node: Node): string {
  const md = node.metadata ?? {};
  for (const k of ['ISTIO_VERSION', 'WEFT_VERSION']) {
    const v = md[k];
    if (typeof v === 'string' && v) return v;
  }
  if (node.userAgentName) {
    const v = node.userAgentVersionType.case === 'userAgentVersion' ? node.userAgentVersionType.value : '';
    return v ? `${node.userAgentName}/${v}` : node.userAgentName;
  }
  return 'unknown';
}

function iso(ms: number | undefined): string | undefined {
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function diagKey(d: Diagnostic): string {
  return [d.code, d.pos?.file ?? '', d.pos?.line ?? '', d.resource ? `${d.resource.kind}/${d.resource.namespace}/${d.resource.name}` : '', d.message].join('|');
}

/** Whether a raw resource is an Istio networking resource of this kind. */
function isKind(raw: RawResource, kind: 'WorkloadEntry' | 'ServiceEntry'): boolean {
  return raw.kind === kind && splitApiVersion(raw.apiVersion).group === 'networking.istio.io';
}

const refKeys = new WeakMap<RawResource, string>();

/** `Kind/namespace/name` of a raw resource, matching a diagnostic's ResourceRef (computed once per resource). */
function refKeyOfRaw(raw: RawResource): string {
  let k = refKeys.get(raw);
  if (k === undefined) {
    k = resourceKey(raw).split('/').slice(1).join('/');
    refKeys.set(raw, k);
  }
  return k;
}

export class ControlPlane extends EventEmitter {
  readonly logger: Logger;
  readonly metrics = new ControlPlaneMetrics();
  readonly registry = new ServiceRegistry();
  readonly cache = new SnapshotCache();
  readonly source: DirectorySource;
  readonly ads: AdsServer;
  /** Gateway credentials (`--secrets-dir`); undefined when none is configured. */
  readonly credentials?: CredentialDirectory;
  readonly id = `weft-${hostname()}`;
  readonly version = WEFT_VERSION;
  /** Golden metrics of the mesh's calls (undefined when switched off). */
  readonly telemetry?: MeshTelemetry;

  private readonly opts: Required<Pick<ControlPlaneOptions, 'xdsPort' | 'httpPort' | 'bind' | 'domain' | 'debounceMs' | 'debounceMaxMs' | 'expiryIntervalMs'>>;
  private readonly translateFn: TranslateFn;
  private readonly endpointsFn: EndpointsFn;
  /**
   * Built-in translation: proxies holding the same assignment map got it from the same inputs (the translation
   * cache shares a map only then), so an EDS-only push patches each map once.
   */
  private readonly defaultTranslator: boolean;
  private readonly debouncer: PushDebouncer;
  private readonly plaintext: { enabled: boolean; bind: string };
  private readonly securityOpts: SecurityOptions | undefined;

  private currentModel: MeshModel = emptyModel();
  /**
   * The model translation reads. It is `currentModel`, except after changes that touched only WorkloadEntries:
   * those change nothing translation reads of the model (WorkloadEntries reach it through the registry), so the
   * previous model object stays, and with it everything the translation cache holds.
   */
  private translationModel: MeshModel = this.currentModel;
  /** Translation pieces shared by every proxy (valid for one translation model and registry service list). */
  private readonly translationCache = new TranslationCache();
  private diagnostics: Diagnostic[] = [];
  private configRevision = 0;
  private analysisCache?: { revision: number; messages: AnalysisMessage[] };
  private configLoaded = false;
  private lastGood = new Map<string, RawResource>();
  /** The last model built and its diagnostics (what a WorkloadEntry-only change starts from). */
  private lastBuild?: { model: MeshModel; diagnostics: Diagnostic[] };
  private knownDiagnostics = new Set<string>();

  private readonly proxies = new Map<string, ProxyEntry>();
  /** The current snapshot per proxy shape (what a connecting proxy of that shape gets). */
  private byShape = new Map<string, Generated>();
  private pushCounter = 0;
  private versionLabel = '0';
  private pushCtx?: { start: number; types: Record<string, number> };
  /** Proxies with pushed changes not yet ACKed: start of the change, and type → version sent. */
  /**
   * Proxies with pushed changes not yet ACKed: start of the change, type → version sent, whether the push is
   * over (`sealed`), and whether some of its responses wait for the ADS send budget (`awaiting`: they are sent
   * after the push, and still count).
   */
  private readonly converging = new Map<string, { start: number; sent: Map<string, string>; sealed: boolean; awaiting: boolean }>();
  private loggedTranslationErrors = new Set<string>();
  /** Set while the registry is changed for a known cause (so its change event is attributed to it). */
  private registryCause?: PushReason | 'suppress';

  private httpServer?: HttpServer;
  private xdsBound?: number;
  private xdsTlsBound?: number;
  private serving = false;
  private caSource?: CaSource;
  private tlsPort?: TlsXdsPort;
  /** The SDS map every snapshot carries: the trust bundle `ROOTCA` (empty without a CA). */
  private secrets: ResourceMap = new Map();
  private httpBound?: number;
  private expiryTimer?: NodeJS.Timeout;
  private started = false;
  private closed = false;
  private isReady = false;

  constructor(opts: ControlPlaneOptions) {
    super();
    this.logger = opts.logger ?? createLogger();
    this.opts = {
      xdsPort: opts.xdsPort ?? 15010,
      httpPort: opts.httpPort ?? 15014,
      bind: opts.bind ?? '127.0.0.1',
      domain: opts.domain ?? 'cluster.local',
      debounceMs: opts.debounceMs ?? 100,
      debounceMaxMs: opts.debounceMaxMs ?? 10_000,
      expiryIntervalMs: opts.expiryIntervalMs ?? 1000,
    };
    this.plaintext = { enabled: opts.xdsPlaintext !== false, bind: opts.xdsPlaintextBind ?? '127.0.0.1' };
    this.securityOpts = opts.security;
    if (!this.plaintext.enabled && !opts.security) throw new Error('the plaintext xDS port is off and no TLS xDS port is configured (security): proxies could not connect');
    this.translateFn = opts.translate ?? translateProxy;
    this.defaultTranslator = !opts.translate && !opts.endpoints;
    const translate = this.translateFn;
    this.endpointsFn =
      opts.endpoints ??
      (opts.translate
        ? // A custom translator without its own endpoint builder: translate and keep the assignments asked for.
          (input, names, cache) => {
            const want = new Set(names);
            const r = translate(input, cache);
            return { endpoints: r.endpoints.filter((c) => want.has(c.clusterName)), errors: r.errors.filter((e) => e.typeUrl === TypeUrl.ClusterLoadAssignment && want.has(e.resource)) };
          }
        : (input, names, cache) => {
            cache?.bind(input.model, input.registry.services(), input.registry.serviceAccountsVersion?.() ?? 0);
            return buildEndpoints(input, computeScope(input.model, input.registry, input.proxy), [...names], cache);
          });
    this.source = new DirectorySource(opts.configPaths, {
      debounceMs: opts.configDebounceMs ?? 100,
      rescanIntervalMs: opts.configRescanMs ?? 2000,
      onError: (e) => this.logger.error({ err: e.message }, 'config source error'),
    });
    this.source.store.onChange((c) => this.onConfigChange(c));
    if (opts.secretsDir !== undefined) {
      this.credentials = new CredentialDirectory(opts.secretsDir, {
        onChange: () => {
          if (!this.configLoaded) return;
          this.metrics.inboundUpdates.inc({ type: 'secret' });
          this.debouncer.enqueue(pushRequest('secret', { full: true }));
        },
        onProblem: (p) => this.logger.warn({ credential: p.credential, file: p.file, error: p.message }, 'gateway credential not usable; its last good version (if any) stays in force'),
      });
    }
    this.registry.onChange((c) => {
      if (this.registryCause === 'suppress') return;
      this.metrics.inboundUpdates.inc({ type: c.services ? 'svc' : 'eds' });
      const reason: PushReason = this.registryCause ?? (c.services ? 'service' : 'endpoint');
      this.debouncer.enqueue(pushRequest(reason, { full: c.services || !!c.serviceAccounts, hosts: c.endpointHosts }));
    });
    this.debouncer = new PushDebouncer({
      debounceMs: this.opts.debounceMs,
      maxMs: this.opts.debounceMaxMs,
      push: (req, waited) => this.push(req, waited),
      onError: (e) => {
        this.metrics.internalErrors.inc();
        this.logger.error({ err: (e as Error)?.stack ?? String(e) }, 'push failed');
      },
    });
    this.ads = new AdsServer({
      cache: this.cache,
      ...(opts.sendBudgetBytes !== undefined ? { sendBudgetBytes: opts.sendBudgetBytes } : {}),
      hooks: {
        onConnect: (node, protocol) => this.onConnect(node, protocol),
        onDisconnect: (nodeId, protocol) => this.onDisconnect(nodeId, protocol),
        onPush: (e) => this.onPushSent(e),
        onAck: (e) => this.onAck(e),
        onNack: (e) => this.onNack(e),
        onResumed: (nodeId) => this.onResumed(nodeId),
      },
      onError: (err, nodeId) => {
        this.metrics.internalErrors.inc();
        this.logger.warn({ proxy: nodeId, err: err.message }, 'ADS stream error');
      },
    });
    this.metrics.xdsClients.collect(() => {
      const counts = new Map<string, { version: string; type: string; n: number }>();
      for (const id of this.cache.connectedNodes()) {
        const e = this.proxies.get(id);
        if (!e) continue;
        const k = `${e.version}\0${e.info.type}`;
        const c = counts.get(k);
        if (c) c.n++;
        else counts.set(k, { version: e.version, type: e.info.type, n: 1 });
      }
      return [...counts.values()].map((c) => [{ version: c.version, type: c.type }, c.n]);
    });
    this.metrics.services.collect(() => [[undefined, this.registry.services().length]]);
    if (opts.telemetry !== false) this.telemetry = new MeshTelemetry({ ...opts.telemetry, targets: () => this.statsTargets(), resolveService: (l) => this.resolveMetricService(l), logger: this.logger });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Lifecycle

  /** Starts the HTTP server only (/ready answers 503 until `start` has finished). Returns the bound port. */
  async listenHttp(): Promise<number> {
    if (this.httpBound !== undefined) return this.httpBound;
    const server = createHttpServer(this);
    this.httpServer = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.httpPort, this.opts.bind, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.httpBound = (server.address() as AddressInfo).port;
    return this.httpBound;
  }

  /** Starts HTTP, loads the config, starts watching it, then serves ADS. Resolves once ready. */
  async start(): Promise<void> {
    if (this.started) throw new Error('ControlPlane.start() called twice');
    this.started = true;
    await this.listenHttp();
    await this.source.start();
    await this.credentials?.start();
    this.configLoaded = true;
    const sec = this.securityOpts;
    if (sec) await this.startSecurity(sec);
    if (this.plaintext.enabled) this.xdsBound = await this.ads.listen(this.plaintext.bind, this.opts.xdsPort);
    this.serving = true;
    this.expiryTimer = setInterval(() => this.expire(), this.opts.expiryIntervalMs);
    this.isReady = !this.closed;
    if (!this.closed) this.telemetry?.start();
    this.logger.info(
      {
        xds: this.xdsBound !== undefined ? `${this.plaintext.bind}:${this.xdsBound}` : 'off',
        xdsTls: this.xdsTlsBound !== undefined ? `${this.opts.bind}:${this.xdsTlsBound}` : 'off',
        http: `${this.opts.bind}:${this.httpBound}`,
        services: this.registry.services().length,
        configRevision: this.configRevision,
        version: this.version,
      },
      'control plane ready',
    );
  }

  /** The CA, the ROOTCA secret and the TLS xDS port. */
  private async startSecurity(sec: SecurityOptions): Promise<void> {
    const trustDomain = () => this.currentModel.mesh.trustDomain;
    const caSource = new CaSource({
      dir: sec.caDir,
      create: sec.createCa !== false,
      pollMs: sec.caPollMs ?? 1000,
      trustDomain: trustDomain(),
      workloadTtlMs: sec.workloadTtlMs,
      maxWorkloadTtlMs: sec.maxWorkloadTtlMs,
      logger: this.logger,
    });
    this.caSource = caSource;
    const ca = await caSource.start();
    this.setTrustBundle(ca);
    let verifier = sec.tokenVerifier;
    if (!verifier) {
      if (!sec.tokenKeyPath) throw new Error('security: tokenKeyPath or tokenVerifier is required');
      verifier = new WeftTokenVerifier(await loadOrCreateTokenKey(sec.tokenKeyPath));
    }
    const m = this.metrics;
    const port = new TlsXdsPort({
      ads: this.ads,
      bind: this.opts.bind,
      domain: this.opts.domain,
      extraNames: sec.serverNames,
      ca: () => caSource.ca,
      trustDomain,
      verifier,
      logger: this.logger,
      onResult: (r) => {
        m.csrCount.inc();
        if (r === 'issued') m.certIssued.inc();
        else if (r === 'authentication_failure') m.csrAuthFailures.inc();
        else if (r === 'sign_error') m.csrSignErrors.inc();
      },
    });
    this.tlsPort = port;
    this.xdsTlsBound = await port.listen(sec.xdsTlsPort ?? 15012);
    caSource.onChange((next) => {
      this.setTrustBundle(next);
      port.refresh(next).catch((e: unknown) => this.logger.error({ err: (e as Error)?.message ?? String(e) }, 'cannot issue the control plane serving certificate with the new CA'));
      this.debouncer.enqueue(pushRequest('secret', { full: true }));
    });
  }

  /** The SDS map of a snapshot: the trust bundle, plus the gateway credentials translation named (if any). */
  private withCredentials(credentials: ResourceMap): ResourceMap {
    return credentials.size ? new Map([...this.secrets, ...credentials]) : this.secrets;
  }

  /** The ROOTCA secret every snapshot carries from now on (a push sends it). */
  private setTrustBundle(ca: CertificateAuthority): void {
    const r = rootCaSecret(ca.rootPem);
    this.secrets = new Map([[ROOTCA_SECRET, r]]);
    this.metrics.rootCertExpiry.set(undefined, Math.round(ca.caNotAfter.getTime() / 1000));
  }

  /** The CA in force (undefined without `security`). */
  get ca(): CertificateAuthority | undefined {
    return this.caSource?.ca;
  }

  /** Stops everything: no timers, watchers, sockets or streams are left. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.isReady = false;
    this.debouncer.close();
    await this.telemetry?.close();
    this.credentials?.close();
    if (this.expiryTimer) clearInterval(this.expiryTimer);
    this.expiryTimer = undefined;
    this.caSource?.close();
    await this.source.close();
    await this.ads.close();
    await this.tlsPort?.close();
    const server = this.httpServer;
    if (server) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    }
    this.logger.info('control plane stopped');
  }

  /** True once the first config load is done and ADS is listening (until close). */
  get ready(): boolean {
    return this.isReady;
  }

  get configLoadedOnce(): boolean {
    return this.configLoaded;
  }

  /** Bound plaintext ADS port (after start; undefined when the plaintext port is off). */
  get xdsPort(): number | undefined {
    return this.xdsBound;
  }

  /** Bound TLS xDS port (CSR service + ADS over mTLS; after start, with `security`). */
  get xdsTlsPort(): number | undefined {
    return this.xdsTlsBound;
  }

  /** Address the plaintext ADS port binds to. */
  get xdsPlaintextBind(): string {
    return this.plaintext.bind;
  }

  /** Bound HTTP port (after listenHttp/start). */
  get httpPort(): number | undefined {
    return this.httpBound;
  }

  get bind(): string {
    return this.opts.bind;
  }

  get model(): MeshModel {
    return this.currentModel;
  }

  /** Every current diagnostic of the config (file problems, validation and translation into the model). */
  configDiagnostics(): { revision: number; diagnostics: Diagnostic[] } {
    return { revision: this.configRevision, diagnostics: [...this.diagnostics] };
  }

  /** Runs a waiting debounced push now (tests, and `weft` commands that want the result at once). */
  flush(): void {
    this.debouncer.flush();
  }

  /** Re-reads the config now (without waiting for the file watcher). */
  async reloadConfig(): Promise<void> {
    await this.source.rescan();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Config

  /**
   * A config change pushes according to what it touched, as istiod classifies its updates:
   * - only WorkloadEntries: the registry's endpoints changed, nothing else translation reads; the hosts whose
   *   endpoints changed get an EDS-only push (none when no endpoint changed);
   * - only WorkloadEntries and ServiceEntries, and the registry finds no service definition changed (only
   *   ServiceEntry inline endpoints did): an EDS-only push too;
   * - no resource at all (only diagnostics changed: the model is the same): no push;
   * - anything else: a full push.
   * Endpoint changes of DNS services still make the push full (their endpoints are in their clusters).
   */
  private onConfigChange(change: ConfigChange): void {
    this.metrics.inboundUpdates.inc({ type: 'config' });
    this.configRevision = change.revision;
    const changed = [...change.added, ...change.updated, ...change.removed];
    const workloadsOnly = changed.every((r) => isKind(r, 'WorkloadEntry'));
    const endpointsOnly = changed.every((r) => isKind(r, 'WorkloadEntry') || isKind(r, 'ServiceEntry'));
    const reg = this.rebuild(change, workloadsOnly);
    if (!reg || !this.serving || changed.length === 0) return;
    const seen = change.seen ? { start: change.seen.first, last: change.seen.last } : {};
    if (endpointsOnly && !reg.services && !reg.serviceAccounts) {
      if (reg.endpointHosts.size > 0) this.debouncer.enqueue(pushRequest('endpoint', { full: false, hosts: reg.endpointHosts, ...seen }));
      return;
    }
    this.debouncer.enqueue(pushRequest('config', { full: true, ...seen }));
  }

  /**
   * Rebuilds the model from the store and hands it to the registry; returns what the registry found changed, or
   * undefined when the build failed and the last good model stays. `keepTranslationModel`: the change touched
   * nothing translation reads of the model (see `translationModel`).
   */
  private rebuild(change: ConfigChange, keepTranslationModel: boolean): RegistryChange | undefined {
    const storeDiagnostics = change.diagnostics;
    let result: { model: MeshModel; diagnostics: Diagnostic[] };
    /** Workloads replaced in place (old → new), when the model was made that way (see buildWorkloadChange). */
    let replaced: Array<[Workload, Workload]> | undefined;
    try {
      const changed = change.added.length + change.updated.length + change.removed.length;
      const partial = keepTranslationModel && changed > 0 ? this.buildWorkloadChange(change) : undefined;
      if (partial) {
        result = partial;
        replaced = partial.replaced;
      } else {
        result = this.build(this.source.store.snapshot().resources);
      }
      this.lastBuild = { model: result.model, diagnostics: result.diagnostics };
    } catch (e) {
      this.metrics.internalErrors.inc();
      this.logger.error({ err: (e as Error)?.stack ?? String(e) }, 'building the mesh model failed; the last good model stays in effect');
      this.setDiagnostics([...storeDiagnostics, { severity: 'Error', code: 'WFT0001', message: `internal error building the mesh model: ${(e as Error)?.message ?? String(e)}`, hint: 'the last good configuration stays in effect; this is a bug in Weft, please report it' }]);
      return undefined;
    }
    this.currentModel = result.model;
    if (!keepTranslationModel) this.translationModel = result.model;
    this.setDiagnostics([...storeDiagnostics, ...result.diagnostics]);
    this.registryCause = 'suppress';
    let registryChange: RegistryChange;
    try {
      registryChange = replaced ? this.registry.replaceWorkloads(result.model, replaced) : this.registry.setModel(result.model);
    } finally {
      this.registryCause = undefined;
    }
    this.logger.info({ revision: this.configRevision, resources: this.source.store.size, services: result.model.services.length, errors: this.diagnostics.filter((d) => d.severity === 'Error').length }, 'config loaded');
    return registryChange;
  }

  /**
   * buildModel, keeping the last valid version of a resource whose new version has errors (when there is one):
   * the broken version is reported, the valid one stays in the model.
   */
  private build(raws: readonly RawResource[], all = true): { model: MeshModel; diagnostics: Diagnostic[] } {
    const first: BuildResult = buildModel(raws, { domain: this.opts.domain });
    const failedRefs = new Set<string>();
    for (const d of first.diagnostics) if (d.severity === 'Error' && d.resource) failedRefs.add(`${d.resource.kind}/${d.resource.namespace}/${d.resource.name}`);
    if (all) {
      // `raws` is the whole configuration: forget the last valid versions of resources that are gone.
      const present = new Set(raws.map((r) => resourceKey(r)));
      for (const k of [...this.lastGood.keys()]) if (!present.has(k)) this.lastGood.delete(k);
    }
    const kept = new Map<string, RawResource>();
    const effective = raws.map((raw) => {
      if (!failedRefs.has(refKeyOfRaw(raw))) return raw;
      const good = this.lastGood.get(resourceKey(raw));
      if (!good || good === raw) return raw;
      kept.set(refKeyOfRaw(raw), good);
      return good;
    });
    let final: BuildResult = first;
    let diagnostics = first.diagnostics;
    if (kept.size > 0) {
      final = buildModel(effective, { domain: this.opts.domain });
      const stillFailing = new Set<string>();
      for (const d of final.diagnostics) if (d.severity === 'Error' && d.resource) stillFailing.add(`${d.resource.kind}/${d.resource.namespace}/${d.resource.name}`);
      diagnostics = first.diagnostics.map((d) => {
        if (d.severity !== 'Error' || !d.resource) return d;
        const ref = `${d.resource.kind}/${d.resource.namespace}/${d.resource.name}`;
        const good = kept.get(ref);
        if (!good || stillFailing.has(ref)) return d;
        const note = `the last valid version (${good.file}:${good.pos.line}) stays in effect until this is fixed`;
        return { ...d, hint: d.hint ? `${d.hint}; ${note}` : note };
      });
    }
    const failedNow = new Set<string>();
    for (const d of final.diagnostics) if (d.severity === 'Error' && d.resource) failedNow.add(`${d.resource.kind}/${d.resource.namespace}/${d.resource.name}`);
    for (const raw of effective) if (!failedNow.has(refKeyOfRaw(raw))) this.lastGood.set(resourceKey(raw), raw);
    return { model: final.model, diagnostics };
  }

  /**
   * The model after a change that touched only WorkloadEntries, made from the last build instead of building
   * every resource again: only the changed WorkloadEntries are validated and translated (keeping a last valid
   * version as `build` does); everything else, their diagnostics included, is the last build's. The result is the
   * full build's: WorkloadEntries only add workloads, which the model lists in configuration order among the
   * other workload kinds of their translation rank (LocalWorkload templates), and nothing else reads them while
   * building.
   *
   * When the store applied the change in place (ConfigChange.inPlace: every changed entry kept its place in the
   * configuration order) and each changed entry still gives one workload, the new workloads replace the old
   * ones where they were (`replaced` lists them) and nothing else is looked at, so the cost does not grow with
   * the size of the mesh. Otherwise the workload list is made again in configuration order. Undefined (build
   * everything) when the last build's workloads cannot be matched to the configuration.
   */
  private buildWorkloadChange(change: ConfigChange): { model: MeshModel; diagnostics: Diagnostic[]; replaced?: Array<[Workload, Workload]> } | undefined {
    const prev = this.lastBuild;
    if (!prev) return undefined;
    const positions = this.workloadPositions(prev.model.workloads);
    if (!positions) return undefined;
    const keyOf = (o: { kind: string; namespace: string; name: string }) => `${o.kind}/${o.namespace}/${o.name}`;
    const changedRaws = [...change.added, ...change.updated];
    const changedKeys = new Set([...changedRaws, ...change.removed].map(refKeyOfRaw));
    const part = this.build(changedRaws, false);
    for (const r of change.removed) this.lastGood.delete(resourceKey(r));
    const diagnostics = [
      ...prev.diagnostics.filter((d) => !(d.resource && changedKeys.has(keyOf(d.resource)))),
      ...part.diagnostics,
    ];
    const fresh = new Map<string, Workload>();
    for (const w of part.model.workloads) if (w.origin) fresh.set(keyOf(w.origin), w);

    if (change.inPlace && change.added.length === 0 && change.removed.length === 0 && fresh.size === changedKeys.size) {
      const workloads = [...prev.model.workloads];
      const replaced: Array<[Workload, Workload]> = [];
      for (const [k, w] of fresh) {
        const i = positions.get(k);
        if (i === undefined || !changedKeys.has(k)) break;
        replaced.push([workloads[i]!, w]);
        workloads[i] = w;
      }
      if (replaced.length === fresh.size) {
        this.positions.set(workloads, positions); // the same places
        return { model: { ...prev.model, workloads }, diagnostics, replaced };
      }
    }

    const old = new Map<string, Workload>();
    for (const w of prev.model.workloads) old.set(keyOf(w.origin!), w);
    const workloads: Workload[] = [];
    let kept = 0;
    for (const raw of this.source.store.snapshot().resources) {
      if (raw.kind !== 'WorkloadEntry' && raw.kind !== 'LocalWorkload') continue;
      const k = refKeyOfRaw(raw);
      if (changedKeys.has(k)) {
        const w = fresh.get(k);
        if (w) workloads.push(w);
        continue;
      }
      const w = old.get(k);
      if (w) {
        workloads.push(w);
        kept++;
      }
    }
    // Every workload of the last build that did not change must still be there (else: build everything).
    let unchanged = 0;
    for (const k of old.keys()) if (!changedKeys.has(k)) unchanged++;
    if (kept !== unchanged) return undefined;
    return { model: { ...prev.model, workloads }, diagnostics };
  }

  /** Places of workloads in a model's list by `Kind/namespace/name` (see workloadPositions). */
  private readonly positions = new WeakMap<readonly Workload[], Map<string, number>>();

  /**
   * The place of every workload of a built model's list by its origin's `Kind/namespace/name` (made once per list,
   * and carried over to a list made by replacing workloads in place); undefined when a workload is not a
   * WorkloadEntry or LocalWorkload with its own origin (such a model is not patched, but built again).
   */
  private workloadPositions(list: readonly Workload[]): Map<string, number> | undefined {
    let m = this.positions.get(list);
    if (m) return m;
    m = new Map();
    for (let i = 0; i < list.length; i++) {
      const w = list[i]!;
      if (!w.origin || (w.kind !== 'WorkloadEntry' && w.kind !== 'LocalWorkload') || w.origin.kind !== w.kind) return undefined;
      m.set(`${w.origin.kind}/${w.origin.namespace}/${w.origin.name}`, i);
    }
    this.positions.set(list, m);
    return m;
  }

  private setDiagnostics(diags: Diagnostic[]): void {
    this.diagnostics = diags;
    const byKind = new Map<string, number>();
    const now = new Set<string>();
    for (const d of diags) {
      if (d.severity !== 'Error') continue;
      const kind = d.resource?.kind ?? 'file';
      byKind.set(kind, (byKind.get(kind) ?? 0) + 1);
      const k = diagKey(d);
      now.add(k);
      if (!this.knownDiagnostics.has(k)) {
        this.metrics.configErrorsTotal.inc({ kind });
        this.logger.warn(
          {
            code: d.code,
            file: d.pos?.file,
            line: d.pos?.line,
            resource: d.resource ? `${d.resource.kind} ${d.resource.namespace ? `${d.resource.namespace}/` : ''}${d.resource.name}` : undefined,
            path: d.path,
            hint: d.hint,
            error: d.message,
          },
          'config error',
        );
      }
    }
    this.knownDiagnostics = now;
    this.metrics.configErrors.replace([...byKind].map(([kind, n]) => [{ kind }, n]));
  }

  // ---------------------------------------------------------------------------------------------------------
  // Registration API

  private withCause<T>(cause: PushReason, fn: () => T): T {
    this.registryCause = cause;
    try {
      return fn();
    } finally {
      this.registryCause = undefined;
    }
  }

  /** Registers (or replaces) a live workload. Returns the record and whether it replaced an existing one. */
  registerWorkload(w: WorkloadRegistration): { workload: RegisteredWorkload; replaced: boolean } {
    const replaced = this.registry.registeredWorkloads().some((x) => x.namespace === w.namespace && x.name === w.name);
    const workload = this.withCause('registration', () =>
      this.registry.register({
        name: w.name,
        namespace: w.namespace,
        address: w.address,
        labels: w.labels,
        ports: w.ports,
        locality: w.locality,
        weight: w.weight,
        network: w.network,
        serviceAccount: w.serviceAccount,
        sidecar: w.sidecar,
        source: w.source ?? 'Registered',
        ttlMs: w.ttlSeconds * 1000,
        healthy: w.healthy,
      }),
    );
    this.logger.info({ workload: `${w.namespace}/${w.name}`, address: w.address, replaced }, 'workload registered');
    return { workload, replaced };
  }

  heartbeat(namespace: string, name: string, healthy?: boolean): boolean {
    return this.withCause('registration', () => this.registry.heartbeat(namespace, name, healthy));
  }

  setWorkloadHealth(namespace: string, name: string, healthy: boolean): boolean {
    const ok = this.withCause('registration', () => this.registry.setHealth(namespace, name, healthy));
    if (ok) this.logger.info({ workload: `${namespace}/${name}`, healthy }, 'workload health set');
    return ok;
  }

  deregisterWorkload(namespace: string, name: string): boolean {
    const ok = this.withCause('registration', () => this.registry.deregister(namespace, name));
    if (ok) this.logger.info({ workload: `${namespace}/${name}` }, 'workload deregistered');
    return ok;
  }

  workloads(): RegisteredWorkload[] {
    return this.registry.registeredWorkloads();
  }

  private expire(): void {
    const r = this.withCause('endpoint', () => this.registry.expire());
    for (const w of r.unhealthy) this.logger.warn({ workload: w }, 'workload missed its heartbeat deadline: marked unhealthy');
    for (const w of r.removed) this.logger.warn({ workload: w }, 'workload missed 3 heartbeat deadlines: removed');
  }

  // ---------------------------------------------------------------------------------------------------------
  // Translation and pushes

  private input(info: ProxyInfo): TranslateInput {
    return { model: this.translationModel, registry: this.registry, proxy: info, ...(this.credentials ? { credentials: this.credentials } : {}) };
  }

  /** Translates for one proxy and encodes the result; undefined when translation threw. */
  private generate(entry: ProxyEntry, version: string): Generated | undefined {
    let res: ProxyResources;
    try {
      res = this.translateFn(this.input(entry.info), this.translationCache);
    } catch (e) {
      this.metrics.internalErrors.inc();
      this.logger.error({ proxy: entry.info.id, err: (e as Error)?.stack ?? String(e) }, 'translation failed; the proxy keeps its current configuration');
      entry.errors = [{ typeUrl: '', resource: '*', message: `translation failed: ${(e as Error)?.message ?? String(e)}` }];
      return undefined;
    }
    const errors = [...res.errors];
    // Encoded through the translation cache: a message (or a whole list) shared with other proxies is packed and
    // hashed once, and proxies with the same list share its map.
    const encode = <D extends DescMessage>(typeUrl: string, schema: D, list: ReadonlyArray<MessageShape<D>>, nameOf: (m: MessageShape<D>) => string) => {
      const enc = this.translationCache.encodeList(typeUrl, schema, list, nameOf);
      errors.push(...enc.errors);
      return enc.resources;
    };
    const snapshot = Snapshot.of(version, [
      [TypeUrl.Cluster, encode(TypeUrl.Cluster, ClusterSchema, res.clusters, (c) => c.name)],
      [TypeUrl.ClusterLoadAssignment, encode(TypeUrl.ClusterLoadAssignment, ClusterLoadAssignmentSchema, res.endpoints, (c) => c.clusterName)],
      [TypeUrl.Listener, encode(TypeUrl.Listener, ListenerSchema, res.listeners, (l) => l.name)],
      [TypeUrl.RouteConfiguration, encode(TypeUrl.RouteConfiguration, RouteConfigurationSchema, res.routes, (r) => r.name)],
      [NAME_TABLE_TYPE_URL, encode(NAME_TABLE_TYPE_URL, NameTableSchema, res.nameTables ?? [], (t) => t.name)],
      [TypeUrl.Secret, this.withCredentials(encode(TypeUrl.Secret, SecretSchema, res.secrets ?? [], (t) => t.name))],
    ]);
    for (const e of errors) this.metrics.translationErrors.inc({ type: metricType(e.typeUrl) });
    return { snapshot, errors };
  }

  /** Logs translation errors not logged before (an error is logged again once it went away and came back). */
  private logTranslationErrors(current: Map<string, { error: TranslateError; proxy: string }>): void {
    for (const [k, { error, proxy }] of current) {
      if (this.loggedTranslationErrors.has(k)) continue;
      this.logger.warn({ proxy, type: shortType(error.typeUrl), resource: error.resource, source: error.source, error: error.message }, 'translation error');
    }
    this.loggedTranslationErrors = new Set(current.keys());
  }

  /** Hosts whose endpoints are part of their clusters (DNS resolution): an endpoint change needs a full push. */
  private needsFullPush(hosts: Iterable<string>): boolean {
    for (const h of hosts) for (const s of this.registry.servicesByHost(h)) if (s.resolution === 'DNS' || s.resolution === 'DNS_ROUND_ROBIN' || s.resolution === 'DYNAMIC_DNS') return true;
    return false;
  }

  /**
   * The proxy's current snapshot with the assignments of the affected hosts' clusters rebuilt. Proxies whose
   * snapshots share an assignment map (the same translation) share the patch: it is computed for the first one
   * (`memo`, per push) and the patched map is shared too.
   */
  private patchEndpoints(entry: ProxyEntry, cur: Snapshot, hosts: ReadonlySet<string>, version: string, memo: Map<ResourceMap, EdsPatch>): Snapshot {
    const eds = cur.resources(TypeUrl.ClusterLoadAssignment);
    let p = this.defaultTranslator ? memo.get(eds) : undefined;
    if (!p) {
      p = this.edsPatch(entry, cur, hosts, version);
      memo.set(eds, p);
    }
    if (p.failed) return cur;
    if (p.rebuilt.size > 0) {
      const rebuilt = p.rebuilt;
      entry.errors = [...entry.errors.filter((e) => e.typeUrl !== TypeUrl.ClusterLoadAssignment || !rebuilt.has(e.resource)), ...p.errors];
    }
    return p.map ? cur.withTypeMap(version, TypeUrl.ClusterLoadAssignment, p.map) : cur;
  }

  /**
   * The names of an assignment map by host (the last field of a cluster name), with their places in the map:
   * made once per map, and shared by the maps derived from it with the same names (an endpoint-only push
   * replaces assignments, not names).
   */
  private namesByHost(eds: ResourceMap): Map<string, Array<[name: string, place: number]>> {
    let index = this.edsHostIndex.get(eds);
    if (index) return index;
    const d = derivationOf(eds);
    index = d && d.added.length === 0 && d.removed.length === 0 ? this.edsHostIndex.get(d.from) : undefined;
    if (!index) {
      index = new Map();
      let place = 0;
      for (const n of eds.keys()) {
        const host = n.slice(n.lastIndexOf('|') + 1);
        let list = index.get(host);
        if (!list) index.set(host, (list = []));
        list.push([n, place++]);
      }
    }
    this.edsHostIndex.set(eds, index);
    return index;
  }

  private readonly edsHostIndex = new WeakMap<ResourceMap, Map<string, Array<[name: string, place: number]>>>();

  private edsPatch(entry: ProxyEntry, cur: Snapshot, hosts: ReadonlySet<string>, version: string): EdsPatch {
    const eds = cur.resources(TypeUrl.ClusterLoadAssignment);
    // The clusters of the affected hosts (parsed, so only names of real clusters count), in map order.
    const index = this.namesByHost(eds);
    const found: Array<[name: string, place: number]> = [];
    for (const h of hosts) for (const e of index.get(h) ?? []) if (parseClusterName(e[0])) found.push(e);
    if (hosts.size > 1) found.sort((a, b) => a[1] - b[1]);
    const names = found.map((e) => e[0]);
    const out: EdsPatch = { rebuilt: new Set(names), errors: [], failed: false };
    if (names.length === 0) return out;
    let clas: ClusterLoadAssignment[];
    try {
      // Through the translation cache: an assignment shared by proxies is rebuilt (and encoded) once.
      const r = this.endpointsFn(this.input(entry.info), names, this.translationCache);
      clas = r.endpoints;
      out.errors.push(...r.errors);
    } catch (e) {
      this.metrics.internalErrors.inc();
      this.logger.error({ proxy: entry.info.id, err: (e as Error)?.stack ?? String(e) }, 'endpoint translation failed; the proxy keeps its current endpoints');
      out.failed = true;
      return out;
    }
    const got = new Map(clas.map((c) => [c.clusterName, c]));
    const upserts: VersionedResource[] = [];
    for (const n of names) {
      // A cluster that no longer has an assignment for this proxy gets an empty one (it has no endpoints).
      const e = this.translationCache.encode(ClusterLoadAssignmentSchema, got.get(n) ?? create(ClusterLoadAssignmentSchema, { clusterName: n }), n);
      if (e.ok) {
        if (e.resource.version !== eds.get(n)!.version) upserts.push(e.resource);
      } else {
        out.errors.push({ typeUrl: TypeUrl.ClusterLoadAssignment, resource: n, message: `cannot encode: ${e.message}; the proxy keeps its previous endpoints` });
      }
    }
    for (const e of out.errors) this.metrics.translationErrors.inc({ type: metricType(e.typeUrl) });
    if (upserts.length) out.map = cur.withResources(version, TypeUrl.ClusterLoadAssignment, upserts).resources(TypeUrl.ClusterLoadAssignment);
    return out;
  }

  private push(req: PushRequest, debouncedMs: number): void {
    if (this.closed) return;
    const t0 = Date.now();
    this.metrics.debounceTime.observe(undefined, debouncedMs / 1000);
    for (const [r, n] of req.reasons) this.metrics.pushTriggers.inc({ type: r }, n);
    const full = req.full || this.needsFullPush(req.endpointHosts);
    const version = String(++this.pushCounter);
    this.versionLabel = version;
    const memo = new Map<string, { base?: Snapshot; gen?: Generated }>();
    const edsMemo = new Map<ResourceMap, EdsPatch>();
    const errs = new Map<string, { error: TranslateError; proxy: string }>();
    let translations = 0;
    let changed = 0;
    let considered = 0;
    this.pushCtx = { start: t0, types: {} };
    try {
      for (const id of this.cache.connectedNodes()) {
        const entry = this.proxies.get(id);
        if (!entry) continue;
        considered++;
        const cur = this.cache.getSnapshot(id);
        let next: Snapshot | undefined;
        const m = memo.get(entry.shape);
        if (full || !cur) {
          if (m?.gen && !m.base) next = m.gen.snapshot;
          else {
            const gen = this.generate(entry, version);
            translations++;
            if (gen) memo.set(entry.shape, { gen });
            next = gen?.snapshot;
          }
          const gen = memo.get(entry.shape)?.gen;
          if (gen) entry.errors = gen.errors;
        } else if (m?.base === cur && m.gen) {
          next = m.gen.snapshot;
          entry.errors = m.gen.errors;
        } else {
          next = this.patchEndpoints(entry, cur, req.endpointHosts, version, edsMemo);
          if (!m) memo.set(entry.shape, { base: cur, gen: { snapshot: next, errors: entry.errors } });
        }
        for (const e of entry.errors) errs.set(`${e.typeUrl}|${e.resource}|${e.message}`, { error: e, proxy: id });
        this.metrics.queueTime.observe(undefined, (Date.now() - t0) / 1000);
        if (next && next !== cur) {
          changed++;
          const conv = this.converging.get(id);
          this.converging.set(id, { start: conv ? Math.min(conv.start, req.start) : req.start, sent: conv?.sent ?? new Map(), sealed: false, awaiting: conv?.awaiting ?? false });
          this.cache.setSnapshot(id, next);
          this.seal(id);
        }
      }
    } finally {
      const types = this.pushCtx.types;
      this.pushCtx = undefined;
      const byShape = new Map<string, Generated>();
      for (const [shape, m] of memo) if (m.gen) byShape.set(shape, m.gen);
      // Shapes without a connected proxy are dropped: their snapshots would be stale after this push.
      this.byShape = byShape;
      this.logTranslationErrors(errs);
      const summary: PushSummary = {
        version,
        reasons: Object.fromEntries(req.reasons),
        full,
        proxies: considered,
        changed,
        translations,
        types,
        durationMs: Date.now() - t0,
      };
      if (!full) summary.hosts = [...req.endpointHosts].sort();
      this.logger.info({ ...summary, cause: [...req.reasons.keys()] }, 'push');
      this.emit('push', summary);
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // ADS events

  private onConnect(node: Node, protocol: 'sotw' | 'delta'): void {
    const t0 = Date.now();
    let info: ProxyInfo;
    try {
      info = proxyFromNode(node);
    } catch (e) {
      this.metrics.internalErrors.inc();
      this.logger.error({ proxy: node.id, err: (e as Error)?.message ?? String(e) }, 'cannot read the proxy identity from its node; it gets no configuration');
      return;
    }
    const shape = proxyShape(info);
    const entry: ProxyEntry = { info, shape, version: proxyVersionOf(node), connectedAt: t0, errors: [], firstResponse: new Set(STATUS_TYPES) };
    this.proxies.set(info.id, entry);
    this.metrics.pushTriggers.inc({ type: 'proxyrequest' });
    let gen = this.byShape.get(shape);
    const translated = !gen;
    if (!gen) {
      gen = this.generate(entry, this.versionLabel);
      if (gen) this.byShape.set(shape, gen);
    }
    if (gen) entry.errors = gen.errors;
    const prev = this.cache.getSnapshot(info.id);
    if (gen && gen.snapshot !== prev) this.cache.setSnapshot(info.id, gen.snapshot);
    const errs = new Map<string, { error: TranslateError; proxy: string }>();
    for (const e of entry.errors) {
      const k = `${e.typeUrl}|${e.resource}|${e.message}`;
      if (!this.loggedTranslationErrors.has(k)) {
        this.logger.warn({ proxy: info.id, type: shortType(e.typeUrl), resource: e.resource, source: e.source, error: e.message }, 'translation error');
        this.loggedTranslationErrors.add(k);
      }
      errs.set(k, { error: e, proxy: info.id });
    }
    const summary: PushSummary = {
      version: gen?.snapshot.version ?? this.versionLabel,
      reasons: { proxyrequest: 1 },
      full: true,
      proxies: 1,
      changed: gen ? 1 : 0,
      translations: translated ? 1 : 0,
      types: {},
      durationMs: Date.now() - t0,
    };
    this.logger.info({ proxy: info.id, namespace: info.namespace, type: info.type, protocol, proxyVersion: entry.version }, 'proxy connected');
    this.logger.info({ ...summary, cause: ['proxyrequest'], proxy: info.id }, 'push');
    this.emit('push', summary);
  }

  private onDisconnect(nodeId: string, protocol: 'sotw' | 'delta'): void {
    this.logger.info({ proxy: nodeId, protocol }, 'proxy stream closed');
    if (this.cache.status(nodeId)) return; // another stream of the node is still open
    this.proxies.delete(nodeId);
    this.converging.delete(nodeId);
    this.cache.clearSnapshot(nodeId);
    for (const g of [this.metrics.cdsReject, this.metrics.edsReject, this.metrics.ldsReject, this.metrics.rdsReject]) g.remove({ node: nodeId });
  }

  private onPushSent(e: { nodeId: string; typeUrl: string; version: string; resources: number; removed: number; bytes: number }): void {
    const type = metricType(e.typeUrl);
    this.metrics.pushes.inc({ type });
    this.metrics.configSize.observe({ type }, e.bytes);
    const now = Date.now();
    if (this.pushCtx) {
      const short = shortType(e.typeUrl);
      this.pushCtx.types[short] = (this.pushCtx.types[short] ?? 0) + 1;
      this.metrics.pushTime.observe({ type }, (now - this.pushCtx.start) / 1000);
    } else {
      const entry = this.proxies.get(e.nodeId);
      if (entry?.firstResponse.delete(e.typeUrl)) this.metrics.pushTime.observe({ type }, (now - entry.connectedAt) / 1000);
    }
    const conv = this.converging.get(e.nodeId);
    if (conv && (!conv.sealed || conv.awaiting)) conv.sent.set(e.typeUrl, e.version);
  }

  /** After a snapshot's responses went out: nothing sent means nothing to converge. */
  private seal(nodeId: string): void {
    const conv = this.converging.get(nodeId);
    if (!conv) return;
    conv.sealed = true;
    conv.awaiting = (this.cache.status(nodeId)?.waiting ?? 0) > 0;
    if (conv.sent.size === 0 && !conv.awaiting) this.converging.delete(nodeId);
  }

  /** A stream of the proxy sent what waited for the send budget. */
  private onResumed(nodeId: string): void {
    const conv = this.converging.get(nodeId);
    if (!conv?.awaiting || (this.cache.status(nodeId)?.waiting ?? 0) > 0) return;
    conv.awaiting = false;
    if (conv.sealed && conv.sent.size === 0) this.converging.delete(nodeId);
  }

  private onAck(e: { nodeId: string; typeUrl: string; version: string; latencyMs: number }): void {
    const conv = this.converging.get(e.nodeId);
    if (!conv || !conv.sealed) return;
    if (conv.sent.get(e.typeUrl) === e.version) conv.sent.delete(e.typeUrl);
    if (conv.sent.size === 0 && !conv.awaiting) {
      this.converging.delete(e.nodeId);
      this.metrics.convergence.observe(undefined, (Date.now() - conv.start) / 1000);
    }
  }

  private onNack(e: { nodeId: string; typeUrl: string; version: string; message: string }): void {
    const type = metricType(e.typeUrl);
    this.metrics.xdsRejects.inc({ type });
    this.metrics.rejectGauge(e.typeUrl)?.inc({ node: e.nodeId });
    this.converging.delete(e.nodeId);
    this.logger.warn({ proxy: e.nodeId, type: shortType(e.typeUrl), version: e.version, error: e.message }, 'proxy rejected configuration (NACK)');
  }

  // ---------------------------------------------------------------------------------------------------------
  // Status

  /** Per connected proxy: identity and per-type sync state (what /debug/syncz serves). */
  syncStatus(): ProxySyncStatus[] {
    const out: ProxySyncStatus[] = [];
    for (const st of this.cache.allStatus()) {
      if (st.streams <= 0) continue;
      const entry = this.proxies.get(st.nodeId);
      const xds: Record<string, TypeSyncStatus> = {};
      const typeUrls = [...STATUS_TYPES, ...[...st.types.keys()].filter((t) => !STATUS_TYPES.includes(t))];
      for (const t of typeUrls) xds[shortType(t)] = typeStatusJson(t, st.types.get(t));
      out.push({
        id: st.nodeId,
        namespace: entry?.info.namespace ?? String(st.metadata.NAMESPACE ?? 'default'),
        type: entry?.info.type ?? 'sidecar',
        labels: entry?.info.labels ?? {},
        proxyVersion: entry?.version,
        connectedAt: new Date(st.connectedAt).toISOString(),
        streams: st.streams,
        snapshotVersion: st.snapshotVersion,
        controlPlaneId: this.id,
        controlPlaneVersion: this.version,
        xds,
        translationErrors: entry?.errors ?? [],
      });
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** The control plane's view of a proxy's config as an Envoy admin ConfigDump; undefined for an unknown proxy. */
  configDump(proxyId: string): ConfigDump | undefined {
    const snap = this.cache.getSnapshot(proxyId);
    const st = this.cache.status(proxyId);
    if (!snap && !st) return undefined;
    const statusOf = (typeUrl: string) => {
      const t = st?.types.get(typeUrl);
      const state = syncState(t);
      const clientStatus = state === 'SYNCED' ? ClientResourceStatus.ACKED : state === 'NACKED' ? ClientResourceStatus.NACKED : ClientResourceStatus.UNKNOWN;
      const errorState = state === 'NACKED' && t?.nack
        ? create(UpdateFailureStateSchema, { details: t.nack.message, versionInfo: t.nack.version, lastUpdateAttempt: timestampFromMs(t.nack.at) })
        : undefined;
      return { t, clientStatus, errorState, lastUpdated: t?.sentAt !== undefined ? timestampFromMs(t.sentAt) : undefined };
    };
    const sorted = (typeUrl: string): VersionedResource[] => [...(snap?.resources(typeUrl).values() ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const c = statusOf(TypeUrl.Cluster);
    const clusters = create(ClustersConfigDumpSchema, {
      versionInfo: c.t?.sentVersion ?? '',
      dynamicActiveClusters: sorted(TypeUrl.Cluster).map((r) => ({ versionInfo: r.version, cluster: r.resource, lastUpdated: c.lastUpdated, clientStatus: c.clientStatus, errorState: c.errorState })),
    });
    const e = statusOf(TypeUrl.ClusterLoadAssignment);
    const endpoints = create(EndpointsConfigDumpSchema, {
      dynamicEndpointConfigs: sorted(TypeUrl.ClusterLoadAssignment).map((r) => ({ versionInfo: r.version, endpointConfig: r.resource, lastUpdated: e.lastUpdated, clientStatus: e.clientStatus, errorState: e.errorState })),
    });
    const l = statusOf(TypeUrl.Listener);
    const listeners = create(ListenersConfigDumpSchema, {
      versionInfo: l.t?.sentVersion ?? '',
      dynamicListeners: sorted(TypeUrl.Listener).map((r) => ({ name: r.name, activeState: { versionInfo: r.version, listener: r.resource, lastUpdated: l.lastUpdated }, clientStatus: l.clientStatus, errorState: l.errorState })),
    });
    const rt = statusOf(TypeUrl.RouteConfiguration);
    const routes = create(RoutesConfigDumpSchema, {
      dynamicRouteConfigs: sorted(TypeUrl.RouteConfiguration).map((r) => ({ versionInfo: r.version, routeConfig: r.resource, lastUpdated: rt.lastUpdated, clientStatus: rt.clientStatus, errorState: rt.errorState })),
    });
    return create(ConfigDumpSchema, {
      configs: [pack(ClustersConfigDumpSchema, clusters), pack(EndpointsConfigDumpSchema, endpoints), pack(ListenersConfigDumpSchema, listeners), pack(RoutesConfigDumpSchema, routes)],
    });
  }

  /** Services with their endpoints per port, and the registered workloads (what /debug/registryz serves). */
  registryDump(): { services: unknown[]; workloads: RegisteredWorkload[] } {
    const services = this.registry.services().map((s) => ({
      hostname: s.hostname,
      namespace: s.namespace,
      name: s.name,
      source: `${s.origin.kind} ${s.origin.namespace}/${s.origin.name}`,
      resolution: s.resolution,
      location: s.location,
      addresses: s.addresses,
      exportTo: s.exportTo,
      selector: s.selector,
      ports: s.ports.map((p) => ({
        name: p.name,
        port: p.port,
        targetPort: p.targetPort,
        protocol: p.protocol,
        endpoints: this.registry.endpoints(s.hostname, p.port).map((ep: Endpoint) => ({ ...ep })),
      })),
    }));
    return { services, workloads: this.registry.registeredWorkloads() };
  }

  /** Connected proxy ids. */
  connectedProxies(): string[] {
    return this.cache.connectedNodes().filter((id) => this.proxies.has(id)).sort();
  }

  /**
   * The Prometheus endpoints of the connected proxies: those that announced WEFT_STATS_PORT (`weft proxy` does),
   * at their first INSTANCE_IPS address, else 127.0.0.1 (the local runtime's sidecars).
   */
  statsTargets(): ScrapeTarget[] {
    const out: ScrapeTarget[] = [];
    for (const id of this.cache.connectedNodes()) {
      const info = this.proxies.get(id)?.info;
      const v = info?.metadata.WEFT_STATS_PORT;
      const port = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : 0;
      if (!info || !(port >= 1 && port <= 65535)) continue;
      const ip = info.ipAddresses[0] ?? '127.0.0.1';
      out.push({ proxy: id, url: `http://${ip.includes(':') ? `[${ip}]` : ip}:${port}/stats/prometheus` });
    }
    return out;
  }

  /**
   * The registry service a metric's destination_service names when it is an authority rather than a service host:
   * `name[:port]` (a short name, in the destination workload's namespace), `host:port`, or `address:port` of an
   * endpoint (a sidecar's inbound listener reached directly).
   */
  private resolveMetricService(l: SeriesLabels): { host: string; name: string; namespace: string } | undefined {
    const d = l.destination_service;
    if (d === 'unknown' || this.registry.servicesByHost(d).length) return undefined;
    const of = (s: Service | undefined) => (s ? { host: s.hostname, name: s.name ?? s.hostname, namespace: s.namespace } : undefined);
    const m = /^(.*?)(?::(\d+))?$/.exec(d)!;
    const host = m[1]!;
    const port = m[2] ? Number(m[2]) : undefined;
    const direct = this.registry.servicesByHost(host)[0];
    if (direct) return of(direct);
    const ns = l.destination_workload_namespace !== 'unknown' ? l.destination_workload_namespace : l.source_workload_namespace;
    if (!host.includes('.') && !/^\d/.test(host)) return of(this.registry.services().find((s) => s.name === host && s.namespace === ns));
    if (port === undefined) return undefined;
    // An endpoint's address and port: the service it belongs to (the destination workload's, when several).
    const hits = this.registry.services().filter((s) => s.ports.some((p) => this.registry.endpoints(s.hostname, p.port).some((e) => e.address === host && e.port === port)));
    return of(hits.find((s) => s.namespace === ns) ?? hits[0]);
  }

  /** The analyzer's messages for the current configuration (computed once per config revision). */
  analysis(): readonly AnalysisMessage[] {
    if (this.analysisCache?.revision !== this.configRevision) {
      const built = buildModel(this.source.store.snapshot().resources, { domain: this.opts.domain });
      this.analysisCache = { revision: this.configRevision, messages: analyze({ resources: built.resources, model: built.model, diagnostics: built.diagnostics, domain: this.opts.domain }) };
    }
    return this.analysisCache.messages;
  }

  /** What the mesh API (src/controlplane/meshapi) reads. */
  meshSource(): MeshSource {
    const empty: TelemetryWindow = { source: 'scrape', seconds: 0, series: [], recentErrors: [], ejections: [], scrapeErrors: [] };
    return {
      model: this.currentModel,
      services: () => this.registry.services(),
      endpoints: (host, port) => this.registry.endpoints(host, port),
      syncStatus: () => this.syncStatus(),
      analysis: () => this.analysis(),
      telemetry: () => this.telemetry?.window() ?? empty,
    };
  }

  /** What the control plane knows of a connected proxy. */
  proxy(id: string): ProxyInfo | undefined {
    return this.proxies.get(id)?.info;
  }
}

function typeStatusJson(typeUrl: string, t: TypeStatus | undefined): TypeSyncStatus {
  const out: TypeSyncStatus = { typeUrl, state: syncState(t) };
  if (t?.sentVersion !== undefined) out.sentVersion = t.sentVersion;
  if (t?.sentAt !== undefined) out.sentAt = iso(t.sentAt);
  if (t?.ackedVersion !== undefined) out.ackedVersion = t.ackedVersion;
  if (t?.ackedAt !== undefined) out.ackedAt = iso(t.ackedAt);
  if (t?.nack) out.nack = { version: t.nack.version, message: t.nack.message, at: new Date(t.nack.at).toISOString() };
  return out;
}
