/**
 * Telemetry: the access logs and tracing of one proxy, in Istio's shape, from the MeshConfig settings and the
 * Telemetry resources that apply to it.
 *
 *   const t = proxyTelemetry(model, proxy, services);   // once per proxy translation
 *   applyHcmTelemetry(hcm, t.client);                   // outbound HCMs (CLIENT); inbound ones get t.server
 *   applyTcpTelemetry(tcpProxy, t.server);              // tcp_proxy filters: access logs only
 *   t.client.key                                         // what the listener cache keys on
 *
 * Which Telemetry applies (Istio): the one without a selector in the root namespace (mesh-wide), then the one
 * without a selector in the proxy's namespace, then one in that namespace whose selector matches the proxy's
 * labels; later levels override earlier ones field by field (providers, randomSamplingPercentage,
 * disableSpanReporting, disabled, filter; customTags are merged). An entry applies to the side its match.mode names
 * (CLIENT: outbound listeners, SERVER: inbound ones; CLIENT_AND_SERVER, the default: both).
 *
 * Tracing: the provider named (else MeshConfig defaultProviders.tracing; no provider: no tracing), sampling from
 * randomSamplingPercentage, else MeshConfig tracing.sampling (default 1 %). The HCM gets Istio's `tracing`:
 * client_sampling and overall_sampling 100 %, random_sampling, custom_tags (Istio's literals istio.canonical_service,
 * istio.canonical_revision, istio.mesh_id, istio.namespace, istio.cluster_id, then the Telemetry's), and the
 * provider: `envoy.tracers.zipkin` (ZipkinConfig: collector_cluster `outbound|<port>||<host>`, collector_endpoint
 * path (default /api/v2/spans), HTTP_JSON, collector_hostname, 128-bit trace ids) or `envoy.tracers.opentelemetry`
 * (OpenTelemetryConfig with an http_service to `http://<host>:<port><http.path>`, service_name
 * `<canonical service>.<namespace>`). An OpenTelemetry provider without `http` means OTLP/gRPC to Istio, which
 * Weft proxies do not export: reported, and that side gets no tracing.
 *
 * Access logs: MeshConfig accessLogFile (when set) logs to that file with accessLogEncoding / accessLogFormat
 * (Istio's default text format, or its default JSON labels); a Telemetry's accessLogging names providers instead:
 * `envoy` (Istio's built-in: /dev/stdout in the mesh's format) or an envoyFileAccessLog provider (path, text or
 * JSON labels). An entry without providers uses defaultProviders.accessLogging, else `envoy`; `disabled: true`
 * turns logging off for its side; a filter becomes Envoy's status_code_filter. Each logger is an
 * `envoy.access_loggers.file` FileAccessLog.
 */
import { create, type JsonObject } from '@bufbuild/protobuf';
import type { ExtensionProvider, MeshModel, Service, TelemetryAccessLogging, TelemetryCustomTag, TelemetryPolicy, TelemetryTracing } from '../../api/model.js';
import { labelsSubsetOf } from './scope.js';
import { canonicalService, type CanonicalService } from '../../api/canonical.js';
import { pack } from '../../xds/index.js';
import { AccessLogFilterSchema, AccessLogSchema, ComparisonFilter_Op, ComparisonFilterSchema, StatusCodeFilterSchema } from '../../xds/gen/envoy/config/accesslog/v3/accesslog_pb.js';
import type { AccessLog } from '../../xds/gen/envoy/config/accesslog/v3/accesslog_pb.js';
import { DataSourceSchema, RuntimeUInt32Schema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { HttpServiceSchema } from '../../xds/gen/envoy/config/core/v3/http_service_pb.js';
import { HttpUriSchema } from '../../xds/gen/envoy/config/core/v3/http_uri_pb.js';
import { SubstitutionFormatStringSchema } from '../../xds/gen/envoy/config/core/v3/substitution_format_string_pb.js';
import { Tracing_HttpSchema } from '../../xds/gen/envoy/config/trace/v3/http_tracer_pb.js';
import { OpenTelemetryConfigSchema } from '../../xds/gen/envoy/config/trace/v3/opentelemetry_pb.js';
import { ZipkinConfig_CollectorEndpointVersion, ZipkinConfigSchema } from '../../xds/gen/envoy/config/trace/v3/zipkin_pb.js';
import { FileAccessLogSchema } from '../../xds/gen/envoy/extensions/access_loggers/file/v3/file_pb.js';
import { HttpConnectionManager_TracingSchema } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { HttpConnectionManager } from '../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import type { TcpProxy } from '../../xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { CustomTagSchema, CustomTag_EnvironmentSchema, CustomTag_HeaderSchema, CustomTag_LiteralSchema } from '../../xds/gen/envoy/type/tracing/v3/custom_tag_pb.js';
import type { CustomTag } from '../../xds/gen/envoy/type/tracing/v3/custom_tag_pb.js';
import { PercentSchema } from '../../xds/gen/envoy/type/v3/percent_pb.js';
import type { ProxyInfo } from '../proxy.js';
import { outboundClusterName } from './names.js';
import { durationMs } from './route/util.js';

/** Istio's default text access log format (pilot/pkg/model/telemetry_logging.go EnvoyTextLogFormat). */
export const ISTIO_TEXT_FORMAT =
  '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS% ' +
  '%RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" %BYTES_RECEIVED% %BYTES_SENT% ' +
  '%DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" ' +
  '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% %UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% ' +
  '%DOWNSTREAM_REMOTE_ADDRESS% %REQUESTED_SERVER_NAME% %ROUTE_NAME%\n';

/** Istio's default JSON access log labels (EnvoyJSONLogFormatIstio). */
export const ISTIO_JSON_FORMAT: Readonly<Record<string, string>> = {
  start_time: '%START_TIME%',
  route_name: '%ROUTE_NAME%',
  method: '%REQ(:METHOD)%',
  path: '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%',
  protocol: '%PROTOCOL%',
  response_code: '%RESPONSE_CODE%',
  response_flags: '%RESPONSE_FLAGS%',
  response_code_details: '%RESPONSE_CODE_DETAILS%',
  connection_termination_details: '%CONNECTION_TERMINATION_DETAILS%',
  bytes_received: '%BYTES_RECEIVED%',
  bytes_sent: '%BYTES_SENT%',
  duration: '%DURATION%',
  upstream_service_time: '%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%',
  x_forwarded_for: '%REQ(X-FORWARDED-FOR)%',
  user_agent: '%REQ(USER-AGENT)%',
  request_id: '%REQ(X-REQUEST-ID)%',
  authority: '%REQ(:AUTHORITY)%',
  upstream_host: '%UPSTREAM_HOST%',
  upstream_cluster: '%UPSTREAM_CLUSTER_RAW%',
  upstream_local_address: '%UPSTREAM_LOCAL_ADDRESS%',
  downstream_local_address: '%DOWNSTREAM_LOCAL_ADDRESS%',
  downstream_remote_address: '%DOWNSTREAM_REMOTE_ADDRESS%',
  requested_server_name: '%REQUESTED_SERVER_NAME%',
  upstream_transport_failure_reason: '%UPSTREAM_TRANSPORT_FAILURE_REASON%',
};

const FILE_ACCESS_LOG = 'envoy.access_loggers.file';
const ZIPKIN_TRACER = 'envoy.tracers.zipkin';
const OTEL_TRACER = 'envoy.tracers.opentelemetry';
/** Istio's built-in access log provider name. */
const BUILTIN_ENVOY = 'envoy';

/** One side's (CLIENT or SERVER) telemetry for a proxy. */
export interface SideTelemetry {
  tracing: HttpConnectionManager['tracing'];
  accessLogs: AccessLog[];
  /** A stable summary of the above (listener cache keys). */
  key: string;
}

export interface ProxyTelemetry {
  client: SideTelemetry;
  server: SideTelemetry;
  /** Problems found (a provider that cannot be used): reported as translation errors. */
  errors: string[];
}

export const NO_TELEMETRY: SideTelemetry = Object.freeze({ tracing: undefined, accessLogs: [], key: '' }) as SideTelemetry;

type Side = 'CLIENT' | 'SERVER';

function applies(mode: TelemetryTracing['mode'], side: Side): boolean {
  return mode === 'CLIENT_AND_SERVER' || mode === side;
}

/** The Telemetry resources that apply to the proxy, widest first (mesh, namespace, workload). */
function levels(model: MeshModel, proxy: Pick<ProxyInfo, 'namespace' | 'labels'>): TelemetryPolicy[] {
  const root = model.mesh.rootNamespace;
  const all = model.telemetries;
  const out: TelemetryPolicy[] = [];
  const mesh = all.find((t) => t.namespace === root && t.selector === undefined);
  if (mesh) out.push(mesh);
  if (proxy.namespace !== root) {
    const ns = all.find((t) => t.namespace === proxy.namespace && t.selector === undefined);
    if (ns) out.push(ns);
  }
  const wl = all.find((t) => t.namespace === proxy.namespace && t.selector !== undefined && labelsSubsetOf(t.selector, proxy.labels));
  if (wl) out.push(wl);
  return out;
}

interface ResolvedTracing {
  provider: ExtensionProvider;
  sampling: number;
  customTags: Record<string, TelemetryCustomTag>;
}

interface ResolvedLogs {
  providers: string[];
  filter?: TelemetryAccessLogging['filter'];
}

function providerByName(model: MeshModel, name: string): ExtensionProvider | undefined {
  return model.mesh.extensionProviders?.find((p) => p.name === name);
}

function resolveTracing(model: MeshModel, lv: readonly TelemetryPolicy[], side: Side, errors: string[]): ResolvedTracing | undefined {
  let providers = model.mesh.defaultProviders?.tracing ?? [];
  let sampling = model.mesh.tracingSampling;
  let disabled = false;
  const customTags: Record<string, TelemetryCustomTag> = {};
  for (const t of lv) {
    for (const e of t.tracing) {
      if (!applies(e.mode, side)) continue;
      if (e.providers.length > 0) providers = e.providers;
      if (e.randomSamplingPercentage !== undefined) sampling = e.randomSamplingPercentage;
      if (e.disableSpanReporting !== undefined) disabled = e.disableSpanReporting;
      Object.assign(customTags, e.customTags);
    }
  }
  if (disabled || providers.length === 0) return undefined;
  const name = providers[0]!;
  const provider = providerByName(model, name);
  if (provider === undefined || (provider.kind !== 'zipkin' && provider.kind !== 'opentelemetry')) {
    errors.push(`tracing provider "${name}" is not a zipkin or opentelemetry extension provider of the MeshConfig: no tracing`);
    return undefined;
  }
  if (provider.kind === 'opentelemetry' && provider.httpPath === undefined) {
    errors.push(`tracing provider "${name}" exports OTLP over gRPC (no \`http\`), which weft proxies do not do: add \`http: {path: /v1/traces}\` (OTLP/HTTP); no tracing`);
    return undefined;
  }
  return { provider, sampling, customTags };
}

function resolveLogs(model: MeshModel, lv: readonly TelemetryPolicy[], side: Side): ResolvedLogs {
  const legacy = model.mesh.accessLogFile !== undefined ? ['\0mesh'] : [];
  let providers: string[] = legacy;
  let filter: TelemetryAccessLogging['filter'];
  const defaults = (): string[] => {
    const d = model.mesh.defaultProviders?.accessLogging ?? [];
    return d.length > 0 ? d : [BUILTIN_ENVOY];
  };
  for (const t of lv) {
    for (const e of t.accessLogging) {
      if (!applies(e.mode, side)) continue;
      if (e.disabled === true) {
        providers = [];
        continue;
      }
      if (e.providers.length > 0) providers = e.providers;
      else if (providers.length === 0 || providers === legacy) providers = defaults();
      if (e.filter !== undefined) filter = e.filter;
    }
  }
  return filter !== undefined ? { providers, filter } : { providers };
}

/** The telemetry of both sides of a proxy. */
export function proxyTelemetry(model: MeshModel, proxy: Pick<ProxyInfo, 'namespace' | 'labels' | 'workloadName'>, services: readonly Service[]): ProxyTelemetry {
  const errors: string[] = [];
  const lv = levels(model, proxy);
  const side = (s: Side): SideTelemetry => {
    const tr = resolveTracing(model, lv, s, errors);
    const logs = resolveLogs(model, lv, s);
    const accessLogs = logs.providers.flatMap((n) => accessLogFor(model, n, logs.filter, errors));
    const tracing = tr !== undefined ? tracingConfig(model, proxy, tr, services, errors) : undefined;
    if (accessLogs.length === 0 && tracing === undefined) return NO_TELEMETRY;
    const key = JSON.stringify({ t: tr ? [tr.provider, tr.sampling, tr.customTags, tracing !== undefined] : null, l: logs, m: [model.mesh.accessLogFile, model.mesh.accessLogEncoding, model.mesh.accessLogFormat] });
    return { tracing, accessLogs, key };
  };
  const client = side('CLIENT');
  const server = side('SERVER');
  return { client, server, errors: [...new Set(errors)] };
}

function fileLog(path: string, format: { text: string } | { json: Record<string, string> }, filter: TelemetryAccessLogging['filter']): AccessLog {
  const logFormat =
    'text' in format
      ? create(SubstitutionFormatStringSchema, { format: { case: 'textFormatSource', value: create(DataSourceSchema, { specifier: { case: 'inlineString', value: format.text } }) } })
      : create(SubstitutionFormatStringSchema, { format: { case: 'jsonFormat', value: format.json as JsonObject } });
  const file = create(FileAccessLogSchema, { path, accessLogFormat: { case: 'logFormat', value: logFormat } });
  const al = create(AccessLogSchema, { name: FILE_ACCESS_LOG, configType: { case: 'typedConfig', value: pack(FileAccessLogSchema, file) } });
  if (filter !== undefined) {
    const op = filter.op === 'EQ' ? ComparisonFilter_Op.EQ : filter.op === 'GE' ? ComparisonFilter_Op.GE : ComparisonFilter_Op.LE;
    al.filter = create(AccessLogFilterSchema, {
      filterSpecifier: {
        case: 'statusCodeFilter',
        value: create(StatusCodeFilterSchema, {
          comparison: create(ComparisonFilterSchema, { op, value: create(RuntimeUInt32Schema, { defaultValue: filter.code, runtimeKey: 'access_log.status_code' }) }),
        }),
      },
    });
  }
  return al;
}

/** Istio: a text format always ends with a newline. */
function withNewline(s: string): string {
  return s.endsWith('\n') ? s : s + '\n';
}

/** The mesh's own format (MeshConfig accessLogEncoding / accessLogFormat). */
function meshFormat(model: MeshModel): { text: string } | { json: Record<string, string> } {
  const m = model.mesh;
  if (m.accessLogEncoding === 'JSON') {
    if (m.accessLogFormat !== undefined) return { json: JSON.parse(m.accessLogFormat) as Record<string, string> };
    return { json: { ...ISTIO_JSON_FORMAT } };
  }
  return { text: m.accessLogFormat !== undefined ? withNewline(m.accessLogFormat) : ISTIO_TEXT_FORMAT };
}

function accessLogFor(model: MeshModel, name: string, filter: TelemetryAccessLogging['filter'], errors: string[]): AccessLog[] {
  if (name === '\0mesh') return [fileLog(model.mesh.accessLogFile!, meshFormat(model), filter)];
  const p = providerByName(model, name);
  if (p === undefined && name === BUILTIN_ENVOY) return [fileLog('/dev/stdout', meshFormat(model), filter)];
  if (p === undefined || p.kind !== 'envoyFileAccessLog') {
    errors.push(`access log provider "${name}" is not an envoyFileAccessLog extension provider of the MeshConfig (nor the built-in "envoy"): not logged`);
    return [];
  }
  const f = p.logFormat;
  const format = f?.labels !== undefined ? { json: f.labels } : f?.text !== undefined && f.text !== '' ? { text: withNewline(f.text) } : p.name === BUILTIN_ENVOY ? meshFormat(model) : { text: ISTIO_TEXT_FORMAT };
  return [fileLog(p.path ?? '/dev/stdout', format, filter)];
}

/** `namespace/host` or `host` → the service (Istio LookupCluster: a bare host must be unique across namespaces). */
function providerService(p: ExtensionProvider, services: readonly Service[]): Service | string {
  const i = p.service.indexOf('/');
  const ns = i >= 0 ? p.service.slice(0, i) : undefined;
  const host = (i >= 0 ? p.service.slice(i + 1) : p.service).toLowerCase();
  const found = services.filter((s) => s.hostname.toLowerCase() === host && (ns === undefined || s.namespace === ns));
  if (found.length === 1) return found[0]!;
  if (found.length > 1) return `found ${host} in several namespaces: write the provider's service as <namespace>/<host>`;
  return `could not find service ${p.service} in the registry (or it is not visible to this proxy)`;
}

function canonicalOfProxy(proxy: Pick<ProxyInfo, 'labels' | 'workloadName'>): CanonicalService {
  return canonicalService(proxy.labels, proxy.workloadName || 'unknown');
}

function literalTag(tag: string, value: string): CustomTag {
  return create(CustomTagSchema, { tag, type: { case: 'literal', value: create(CustomTag_LiteralSchema, { value }) } });
}

function tracingConfig(model: MeshModel, proxy: Pick<ProxyInfo, 'namespace' | 'labels' | 'workloadName'>, r: ResolvedTracing, services: readonly Service[], errors: string[]): HttpConnectionManager['tracing'] {
  const p = r.provider;
  const svc = providerService(p, services);
  if (typeof svc === 'string') {
    errors.push(`tracing provider "${p.name}": ${svc}: no tracing`);
    return undefined;
  }
  const cluster = outboundClusterName(p.port, undefined, svc.hostname);
  const canonical = canonicalOfProxy(proxy).name;
  let provider;
  if (p.kind === 'zipkin') {
    const z = create(ZipkinConfigSchema, {
      collectorCluster: cluster,
      collectorEndpoint: p.path ?? '/api/v2/spans',
      collectorEndpointVersion: ZipkinConfig_CollectorEndpointVersion.HTTP_JSON,
      collectorHostname: svc.hostname,
      traceId128bit: true,
      sharedSpanContext: false,
    });
    provider = create(Tracing_HttpSchema, { name: ZIPKIN_TRACER, configType: { case: 'typedConfig', value: pack(ZipkinConfigSchema, z) } });
  } else {
    const uri = create(HttpUriSchema, { uri: `http://${svc.hostname}:${p.port}${p.httpPath!}`, httpUpstreamType: { case: 'cluster', value: cluster }, timeout: durationMs(p.timeoutMs ?? 5000) });
    const o = create(OpenTelemetryConfigSchema, { httpService: create(HttpServiceSchema, { httpUri: uri }), serviceName: `${canonical}.${proxy.namespace}` });
    provider = create(Tracing_HttpSchema, { name: OTEL_TRACER, configType: { case: 'typedConfig', value: pack(OpenTelemetryConfigSchema, o) } });
  }
  const tags: CustomTag[] = [
    literalTag('istio.canonical_revision', canonicalOfProxy(proxy).revision),
    literalTag('istio.canonical_service', canonical),
    literalTag('istio.cluster_id', 'Kubernetes'),
    literalTag('istio.mesh_id', model.mesh.trustDomain),
    literalTag('istio.namespace', proxy.namespace),
  ];
  for (const [tag, v] of Object.entries(r.customTags).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if ('literal' in v) tags.push(literalTag(tag, v.literal));
    else if ('header' in v) tags.push(create(CustomTagSchema, { tag, type: { case: 'requestHeader', value: create(CustomTag_HeaderSchema, { name: v.header, defaultValue: v.defaultValue ?? '' }) } }));
    else tags.push(create(CustomTagSchema, { tag, type: { case: 'environment', value: create(CustomTag_EnvironmentSchema, { name: v.environment, defaultValue: v.defaultValue ?? '' }) } }));
  }
  const t = create(HttpConnectionManager_TracingSchema, {
    clientSampling: create(PercentSchema, { value: 100 }),
    randomSampling: create(PercentSchema, { value: r.sampling }),
    overallSampling: create(PercentSchema, { value: 100 }),
    customTags: tags,
    provider,
  });
  if (p.kind === 'zipkin' && p.maxTagLength !== undefined) t.maxPathTagLength = p.maxTagLength;
  return t;
}

/** Sets an HCM's access_log and tracing for one side. */
export function applyHcmTelemetry(hcm: HttpConnectionManager, t: SideTelemetry): void {
  if (t.accessLogs.length > 0) hcm.accessLog = t.accessLogs;
  if (t.tracing !== undefined) hcm.tracing = t.tracing;
}

/** Sets a tcp_proxy's access_log for one side. */
export function applyTcpTelemetry(tcp: TcpProxy, t: SideTelemetry): void {
  if (t.accessLogs.length > 0) tcp.accessLog = t.accessLogs;
}
