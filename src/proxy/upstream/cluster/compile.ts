/**
 * Cluster config → validated settings, with Envoy's defaults. Everything that can be checked without I/O is
 * checked here, so an invalid or unsupported Cluster is NACKed (ConfigError naming the cluster and the field)
 * before anything changes. Fields that do not change where traffic goes and that Weft does not implement are
 * returned as `warnings` (the proxy reports them once).
 */
import { isIP } from 'node:net';
import type { Duration } from '@bufbuild/protobuf/wkt';
import {
  Cluster_DiscoveryType,
  Cluster_DnsLookupFamily,
  Cluster_LbPolicy,
  Cluster_ClusterProtocolSelection,
  Cluster_RingHashLbConfig_HashFunction,
  type Cluster,
} from '../../../xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { CircuitBreakers_Thresholds } from '../../../xds/gen/envoy/config/cluster/v3/circuit_breaker_pb.js';
import { RequestMethod, RoutingPriority, type HeaderValueOption } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { Address } from '../../../xds/gen/envoy/config/core/v3/address_pb.js';
import type { HealthCheck, HealthCheck_Payload } from '../../../xds/gen/envoy/config/core/v3/health_check_pb.js';
import type { ClusterLoadAssignment } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import type { LbEndpoint } from '../../../xds/gen/envoy/config/endpoint/v3/endpoint_components_pb.js';
import { CodecClientType } from '../../../xds/gen/envoy/type/v3/http_pb.js';
import type { StringMatcher } from '../../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import {
  HttpProtocolOptionsSchema,
  type HttpProtocolOptions,
} from '../../../xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import { typeNameOf, unpack } from '../../../xds/index.js';
import { RE2JS } from 're2js';
import { DEFAULT_THRESHOLDS, type Thresholds } from '../circuit-breaker.js';
import type { HealthCheckSettings } from '../health/health-checker.js';
import type { GrpcCheckConfig, HttpCheckConfig, TcpCheckConfig } from '../health/probes.js';
import type { SlowStartSettings, LeastRequestSettings } from '../lb/edf-lb.js';
import type { MaglevSettings, RingHashSettings } from '../lb/hashing.js';
import type { CommonLbSettings } from '../lb/load-balancer.js';
import { outlierConfig, type OutlierConfig } from '../outlier/detector.js';
import { ConfigError } from '../../config-error.js';
import type { DnsFamily, DnsSettings, DnsTarget } from './dns.js';
import type { HostInit, Locality } from './host.js';

export type DiscoveryType = 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
export type LbPolicyName = 'ROUND_ROBIN' | 'LEAST_REQUEST' | 'RANDOM' | 'RING_HASH' | 'MAGLEV' | 'CLUSTER_PROVIDED';
/** Upstream HTTP protocol: explicit HTTP/1.1 or HTTP/2, the downstream's, or ALPN (`auto`, TLS only). */
export type UpstreamProtocol = 'http1' | 'http2' | 'downstream' | 'auto';

export interface ConfigWarning {
  field: string;
  detail: string;
}

export type HealthCheckKind =
  | { kind: 'http'; http: HttpCheckConfig }
  | { kind: 'tcp'; tcp: TcpCheckConfig }
  | { kind: 'grpc'; grpc: GrpcCheckConfig };

export interface HostsSpec {
  /** Hosts in config order. */
  hosts: HostInit[];
  /** Locality weight per priority, keyed by localityKey. */
  localityWeights: Array<Map<string, number>>;
  overprovisioningFactor: number;
  weightedPriorityHealth: boolean;
  dropOverload: number;
}

export interface ClusterSettings {
  name: string;
  /** alt_stat_name or the name: the `cluster.<statName>.` stats prefix. */
  statName: string;
  type: DiscoveryType;
  lbPolicy: LbPolicyName;
  edsServiceName: string;
  connectTimeoutMs: number;
  perConnectionBufferLimitBytes: number;
  thresholds: { default: Thresholds; high: Thresholds };
  outlier: OutlierConfig | undefined;
  healthCheck: ({ settings: HealthCheckSettings } & HealthCheckKind) | undefined;
  common: CommonLbSettings;
  slowStart: SlowStartSettings | undefined;
  leastRequest: LeastRequestSettings;
  ringHash: RingHashSettings;
  maglev: MaglevSettings;
  protocol: UpstreamProtocol;
  httpProtocolOptions: HttpProtocolOptions | undefined;
  dns: DnsSettings;
  dnsTargets: DnsTarget[];
  /** STATIC: the hosts from load_assignment. */
  staticHosts: HostsSpec | undefined;
  originalDst: { useHttpHeader: boolean; httpHeaderName: string; upstreamPortOverride: number | undefined; cleanupIntervalMs: number } | undefined;
  ignoreNewHostsUntilFirstHc: boolean;
  ignoreHealthOnHostRemoval: boolean;
  warnings: ConfigWarning[];
}

export function durationMs(d: Duration | undefined, def: number): number {
  if (!d) return def;
  return Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6);
}

const MAX_RING_SIZE = 8 * 1024 * 1024;
const MAX_MAGLEV_TABLE = 5000011;
const HTTP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.http.v3.HttpProtocolOptions';
const TCP_PROTOCOL_OPTIONS = 'envoy.extensions.upstreams.tcp.v3.TcpProtocolOptions';

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let i = 3; i * i <= n; i += 2) if (n % i === 0) return false;
  return true;
}

/** Compiles a StringMatcher (exact / prefix / suffix / contains / safe_regex, ignore_case). */
export function stringMatcher(m: StringMatcher, fail: (detail: string) => never): (v: string) => boolean {
  const ic = m.ignoreCase;
  const norm = (s: string) => (ic ? s.toLowerCase() : s);
  const p = m.matchPattern;
  switch (p.case) {
    case 'exact': {
      const x = norm(p.value);
      return (v) => norm(v) === x;
    }
    case 'prefix': {
      const x = norm(p.value);
      return (v) => norm(v).startsWith(x);
    }
    case 'suffix': {
      const x = norm(p.value);
      return (v) => norm(v).endsWith(x);
    }
    case 'contains': {
      const x = norm(p.value);
      return (v) => norm(v).includes(x);
    }
    case 'safeRegex': {
      try {
        const re = RE2JS.compile(p.value.regex);
        return (v) => re.matches(v);
      } catch (e) {
        return fail(`invalid regex: ${(e as Error).message}`);
      }
    }
    default:
      return fail('only exact, prefix, suffix, contains and safe_regex matchers are supported');
  }
}

function localityOf(l: { region: string; zone: string; subZone: string } | undefined): Locality {
  return { region: l?.region ?? '', zone: l?.zone ?? '', subZone: l?.subZone ?? '' };
}

/**
 * Parses a ClusterLoadAssignment into host inits (EDS and STATIC require IP addresses; DNS clusters get names to
 * resolve). Throws ConfigError for what cannot be applied.
 */
export function parseAssignment(
  cla: ClusterLoadAssignment,
  cluster: string,
  names: 'ip' | 'dns',
  fieldPrefix = '',
  kind = 'cluster',
): HostsSpec & { dnsTargets: DnsTarget[] } {
  const err = (field: string, detail: string): never => {
    throw new ConfigError(cluster, fieldPrefix + field, detail, kind);
  };
  const hosts: HostInit[] = [];
  const dnsTargets: DnsTarget[] = [];
  const localityWeights: Array<Map<string, number>> = [];
  const seenLocality: Array<Set<string>> = [];
  cla.endpoints.forEach((group, gi) => {
    const gf = `endpoints[${gi}]`;
    const priority = group.priority;
    if (priority > 127) err(`${gf}.priority`, 'priorities above 127 are not supported');
    const locality = localityOf(group.locality);
    const lk = `${locality.region}\0${locality.zone}\0${locality.subZone}`;
    localityWeights[priority] ??= new Map();
    seenLocality[priority] ??= new Set();
    if (seenLocality[priority]!.has(lk)) err(gf, `duplicate locality ${locality.region}/${locality.zone}/${locality.subZone} in priority ${priority}`);
    seenLocality[priority]!.add(lk);
    if (group.locality && group.loadBalancingWeight !== undefined) localityWeights[priority]!.set(lk, group.loadBalancingWeight);
    if (group.lbConfig.case === 'ledsClusterLocalityConfig') err(`${gf}.leds_cluster_locality_config`, 'LEDS is not supported');
    const lbEndpoints: LbEndpoint[] = group.lbConfig.case === 'loadBalancerEndpoints' ? group.lbConfig.value.lbEndpoints : group.lbEndpoints;
    lbEndpoints.forEach((lbe, ei) => {
      const ef = `${gf}.lb_endpoints[${ei}]`;
      if (lbe.hostIdentifier.case !== 'endpoint') err(`${ef}.endpoint_name`, 'named endpoints are not supported');
      const ep = lbe.hostIdentifier.value as Extract<LbEndpoint['hostIdentifier'], { case: 'endpoint' }>['value'];
      const { address, port } = socketAddress(ep.address, `${ef}.endpoint.address`, names, err);
      const hc = ep.healthCheckConfig;
      let hcAddress: string | undefined;
      if (hc?.address) hcAddress = socketAddress(hc.address, `${ef}.endpoint.health_check_config.address`, 'ip', err, true).address;
      const weight = lbe.loadBalancingWeight ?? 1;
      if (weight < 1) err(`${ef}.load_balancing_weight`, 'must be at least 1');
      const init: HostInit = {
        address,
        port,
        weight,
        priority,
        locality,
        edsHealth: lbe.healthStatus,
        healthCheck: { port: hc?.portValue || undefined, address: hcAddress, hostname: hc?.hostname ?? '', disabled: hc?.disableActiveHealthCheck ?? false },
      };
      if (ep.hostname) init.hostname = ep.hostname;
      if (lbe.metadata) init.metadata = lbe.metadata;
      if (group.metadata) init.localityMetadata = group.metadata;
      if (names === 'dns') {
        const { address: _a, port: _p, ...template } = init;
        dnsTargets.push({ hostname: address, port, template });
      } else {
        hosts.push(init);
      }
    });
  });
  let opf = 140;
  let dropOverload = 0;
  const policy = cla.policy;
  if (policy) {
    if (policy.overprovisioningFactor !== undefined) {
      if (policy.overprovisioningFactor < 1) err('policy.overprovisioning_factor', 'must be greater than 0');
      opf = policy.overprovisioningFactor;
    }
    if (policy.dropOverloads.length > 1) err('policy.drop_overloads', 'only one drop_overload category is supported');
    const d = policy.dropOverloads[0]?.dropPercentage;
    if (d) {
      const denom = [100, 10_000, 1_000_000][d.denominator];
      if (denom === undefined) err('policy.drop_overloads[0].drop_percentage.denominator', 'invalid denominator');
      const ratio = d.numerator / denom!;
      if (ratio > 1) err('policy.drop_overloads[0].drop_percentage', 'drop ratio above 100%');
      dropOverload = ratio;
    }
  }
  for (let p = 0; p < localityWeights.length; p++) localityWeights[p] ??= new Map();
  return { hosts, dnsTargets, localityWeights, overprovisioningFactor: opf, weightedPriorityHealth: policy?.weightedPriorityHealth ?? false, dropOverload };
}

function socketAddress(a: Address | undefined, field: string, names: 'ip' | 'dns', err: (f: string, d: string) => never, allowNoPort = false): { address: string; port: number } {
  if (!a || a.address.case === undefined) return err(field, 'an address is required');
  if (a.address.case === 'pipe') return err(`${field}.pipe`, 'unix domain socket upstreams are not supported');
  if (a.address.case === 'envoyInternalAddress') return err(`${field}.envoy_internal_address`, 'internal listener upstreams are not supported');
  const sa = a.address.value;
  if (sa.resolverName) err(`${field}.socket_address.resolver_name`, 'custom resolvers are not supported');
  if (sa.protocol !== 0) err(`${field}.socket_address.protocol`, 'only TCP upstreams are supported');
  if (sa.portSpecifier.case === 'namedPort') err(`${field}.socket_address.named_port`, 'named ports are not supported');
  const port = sa.portSpecifier.case === 'portValue' ? sa.portSpecifier.value : 0;
  if (!allowNoPort && (port < 1 || port > 65535)) err(`${field}.socket_address.port_value`, 'a port between 1 and 65535 is required');
  if (!sa.address) err(`${field}.socket_address.address`, 'an address is required');
  if (names === 'ip' && !isIP(sa.address)) {
    err(`${field}.socket_address.address`, `${JSON.stringify(sa.address)} is not an IP address (use cluster type STRICT_DNS or LOGICAL_DNS for names)`);
  }
  return { address: sa.address, port };
}

function thresholdsFor(c: Cluster, priority: RoutingPriority, err: (f: string, d: string) => never): Thresholds {
  const t: Thresholds = { ...DEFAULT_THRESHOLDS };
  const list = c.circuitBreakers?.thresholds ?? [];
  const idx = list.findIndex((x) => x.priority === priority);
  const th: CircuitBreakers_Thresholds | undefined = list[idx];
  if (th) {
    if (th.maxConnections !== undefined) t.maxConnections = th.maxConnections;
    if (th.maxPendingRequests !== undefined) t.maxPendingRequests = th.maxPendingRequests;
    if (th.maxRequests !== undefined) t.maxRequests = th.maxRequests;
    if (th.maxRetries !== undefined) t.maxRetries = th.maxRetries;
    if (th.maxConnectionPools !== undefined) t.maxConnectionPools = th.maxConnectionPools;
    t.trackRemaining = th.trackRemaining;
    if (th.retryBudget) {
      const bp = th.retryBudget.budgetPercent?.value ?? 20;
      if (bp < 0 || bp > 100) err(`circuit_breakers.thresholds[${idx}].retry_budget.budget_percent`, 'must be between 0 and 100');
      t.retryBudget = { budgetPercent: bp, minRetryConcurrency: th.retryBudget.minRetryConcurrency ?? 3 };
    }
  }
  const perHost = c.circuitBreakers?.perHostThresholds ?? [];
  const hi = perHost.findIndex((x) => x.priority === priority);
  const ph = perHost[hi];
  if (ph) {
    if (ph.maxPendingRequests !== undefined || ph.maxRequests !== undefined || ph.maxRetries !== undefined || ph.maxConnectionPools !== undefined || ph.retryBudget) {
      err(`circuit_breakers.per_host_thresholds[${hi}]`, 'only max_connections is supported in per_host_thresholds');
    }
    if (ph.maxConnections !== undefined) t.maxConnectionsPerHost = ph.maxConnections;
  }
  return sharedThresholds(t);
}

/** Thresholds objects by value: clusters with the same circuit breaker settings (usually all of them) share one. */
const THRESHOLDS = new Map<string, Thresholds>();
const MAX_SHARED_THRESHOLDS = 64;

function sharedThresholds(t: Thresholds): Thresholds {
  const key = JSON.stringify(t);
  const have = THRESHOLDS.get(key);
  if (have !== undefined) return have;
  const frozen = Object.freeze(t.retryBudget ? { ...t, retryBudget: Object.freeze(t.retryBudget) } : t);
  if (THRESHOLDS.size < MAX_SHARED_THRESHOLDS) THRESHOLDS.set(key, frozen);
  return frozen;
}

function payload(p: HealthCheck_Payload, err: (d: string) => never): Buffer {
  if (p.payload.case === 'text') {
    const hex = p.payload.value;
    if (hex.length === 0 || hex.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(hex)) err(`text must be a non-empty hex string, got ${JSON.stringify(hex)}`);
    return Buffer.from(hex, 'hex');
  }
  if (p.payload.case === 'binary') return Buffer.from(p.payload.value);
  return err('a text or binary payload is required');
}

type HeaderAction = 'append' | 'addIfAbsent' | 'overwrite' | 'overwriteIfExists';

function literalHeaders(list: HeaderValueOption[], err: (field: string, d: string) => never, field: string): Array<{ name: string; value: string; action: HeaderAction }> {
  return list.map((h, i) => {
    const name = h.header?.key ?? '';
    if (!name) err(`${field}[${i}].header.key`, 'a header name is required');
    let value = h.header?.value || Buffer.from(h.header?.rawValue ?? new Uint8Array()).toString('latin1');
    // Envoy's header formatter: `%%` is a literal percent; other %COMMANDS% are not supported in health checks.
    if (/%(?!%)/.test(value.replace(/%%/g, ''))) err(`${field}[${i}].header.value`, 'header value formatters (%...%) are not supported in health check headers');
    value = value.replace(/%%/g, '%');
    // The deprecated `append` (default true) unless append_action is set:
    // APPEND_IF_EXISTS_OR_ADD, ADD_IF_ABSENT, OVERWRITE_IF_EXISTS_OR_ADD, OVERWRITE_IF_EXISTS.
    let action: HeaderAction;
    if (h.append !== undefined) action = h.append ? 'append' : 'overwrite';
    else action = (['append', 'addIfAbsent', 'overwrite', 'overwriteIfExists'] as const)[h.appendAction] ?? 'append';
    return { name, value, action };
  });
}

function healthCheck(c: Cluster, hc: HealthCheck, warnings: ConfigWarning[], hasTls: boolean): { settings: HealthCheckSettings } & HealthCheckKind {
  const f = 'health_checks[0]';
  const err = (field: string, detail: string): never => {
    throw new ConfigError(c.name, `${f}.${field}`, detail, 'cluster');
  };
  if (!hc.timeout) err('timeout', 'is required');
  if (!hc.interval) err('interval', 'is required');
  if (hc.unhealthyThreshold === undefined) err('unhealthy_threshold', 'is required');
  if (hc.healthyThreshold === undefined) err('healthy_threshold', 'is required');
  const timeoutMs = durationMs(hc.timeout, 0);
  const intervalMs = durationMs(hc.interval, 0);
  if (timeoutMs <= 0) err('timeout', 'must be greater than 0');
  if (intervalMs <= 0) err('interval', 'must be greater than 0');
  if (hc.intervalJitterPercent > 100) err('interval_jitter_percent', 'must be at most 100');
  if (hc.altPort !== undefined) warnings.push({ field: `${f}.alt_port`, detail: 'not implemented by Envoy either; ignored' });
  if (hc.eventLogPath || hc.eventLogger.length || hc.eventService) warnings.push({ field: `${f}.event_logger`, detail: 'health check event logging is not supported; ignored' });
  if (hc.transportSocketMatchCriteria) warnings.push({ field: `${f}.transport_socket_match_criteria`, detail: 'not supported; health checks use the cluster transport socket' });
  const unhealthyMs = durationMs(hc.unhealthyInterval, intervalMs);
  const noTraffic = durationMs(hc.noTrafficInterval, 60_000);
  const settings: HealthCheckSettings = {
    timeoutMs,
    intervalMs,
    initialJitterMs: durationMs(hc.initialJitter, 0),
    intervalJitterMs: durationMs(hc.intervalJitter, 0),
    intervalJitterPercent: hc.intervalJitterPercent,
    unhealthyThreshold: hc.unhealthyThreshold!,
    healthyThreshold: hc.healthyThreshold!,
    reuseConnection: hc.reuseConnection ?? true,
    noTrafficIntervalMs: noTraffic,
    noTrafficHealthyIntervalMs: durationMs(hc.noTrafficHealthyInterval, noTraffic),
    unhealthyIntervalMs: unhealthyMs,
    unhealthyEdgeIntervalMs: durationMs(hc.unhealthyEdgeInterval, unhealthyMs),
    healthyEdgeIntervalMs: durationMs(hc.healthyEdgeInterval, intervalMs),
  };
  const checker = hc.healthChecker;
  switch (checker.case) {
    case 'httpHealthCheck': {
      const h = checker.value;
      const hf = 'http_health_check';
      if (!h.path) err(`${hf}.path`, 'is required');
      if (h.codecClientType === CodecClientType.HTTP3) err(`${hf}.codec_client_type`, 'HTTP/3 health checks are not supported');
      const method = h.method === RequestMethod.METHOD_UNSPECIFIED ? 'GET' : RequestMethod[h.method];
      if (!method || method === 'CONNECT') err(`${hf}.method`, 'CONNECT is not allowed');
      const ranges = (list: Array<{ start: bigint; end: bigint }>, name: string): Array<[number, number]> =>
        list.map((r, i) => {
          const s = Number(r.start);
          const e = Number(r.end);
          if (s >= e) err(`${hf}.${name}[${i}]`, `start must be below end, got start=${s} end=${e}`);
          if (s < 100) err(`${hf}.${name}[${i}]`, `start must be at least 100, got ${s}`);
          if (e > 600) err(`${hf}.${name}[${i}]`, `end must be at most 600, got ${e}`);
          return [s, e] as [number, number];
        });
      const expected = ranges(h.expectedStatuses, 'expected_statuses');
      let send: Buffer | undefined;
      if (h.send) {
        if (method === 'GET' || method === 'HEAD' || method === 'DELETE' || method === 'TRACE') err(`${hf}.send`, `a request payload cannot be sent with method ${method}`);
        send = payload(h.send, (d) => err(`${hf}.send`, d));
      }
      const receive = h.receive.map((p, i) => payload(p, (d) => err(`${hf}.receive[${i}]`, d)));
      const bufferSize = h.responseBufferSize !== undefined ? Number(h.responseBufferSize) : 1024;
      const total = receive.reduce((s, b) => s + b.length, 0);
      if (bufferSize !== 0 && total > bufferSize) err(`${hf}.receive`, `the expected response (${total} bytes) is longer than response_buffer_size (${bufferSize})`);
      return {
        settings,
        kind: 'http',
        http: {
          path: h.path,
          host: h.host,
          method: method!,
          headersToAdd: literalHeaders(h.requestHeadersToAdd, err, `${hf}.request_headers_to_add`),
          headersToRemove: h.requestHeadersToRemove.map((x) => x.toLowerCase()),
          expected: expected.length ? expected : [[200, 201]],
          retriable: ranges(h.retriableStatuses, 'retriable_statuses'),
          send,
          receive,
          responseBufferSize: bufferSize,
          http2: h.codecClientType === CodecClientType.HTTP2,
          serviceNameMatcher: h.serviceNameMatcher ? stringMatcher(h.serviceNameMatcher, (d) => err(`${hf}.service_name_matcher`, d)) : undefined,
        },
      };
    }
    case 'tcpHealthCheck': {
      const t = checker.value;
      const tf = 'tcp_health_check';
      if (t.proxyProtocolConfig) err(`${tf}.proxy_protocol_config`, 'PROXY protocol health checks are not supported');
      const send = t.send && t.send.payload.case !== undefined && !(t.send.payload.case === 'text' && t.send.payload.value === '') ? payload(t.send, (d) => err(`${tf}.send`, d)) : undefined;
      return { settings, kind: 'tcp', tcp: { send, receive: t.receive.map((p, i) => payload(p, (d) => err(`${tf}.receive[${i}]`, d))) } };
    }
    case 'grpcHealthCheck': {
      const g = checker.value;
      if (hasTls) err('grpc_health_check', 'gRPC health checks of clusters with a TLS transport socket are not supported yet');
      return {
        settings,
        kind: 'grpc',
        grpc: {
          serviceName: g.serviceName,
          authority: g.authority,
          initialMetadata: literalHeaders(g.initialMetadata, err, 'grpc_health_check.initial_metadata').map(({ name, value }) => ({ name: name.toLowerCase(), value })),
        },
      };
    }
    case 'customHealthCheck':
      return err('custom_health_check', `custom health checker ${JSON.stringify(checker.value.name)} is not supported`);
    default:
      return err('health_checker', 'one of http_health_check, tcp_health_check or grpc_health_check is required');
  }
}

/** Validates a Cluster and derives its settings (see the module comment). */
export function compileSettings(c: Cluster, anyTls = false): ClusterSettings {
  const name = c.name;
  const err = (field: string, detail: string): never => {
    throw new ConfigError(name || '(unnamed)', field, detail, 'cluster');
  };
  if (!name) err('name', 'is required');
  const warnings: ConfigWarning[] = [];

  // Discovery type.
  if (c.clusterDiscoveryType.case === 'clusterType') err('cluster_type', `custom cluster type ${JSON.stringify(c.clusterDiscoveryType.value.name)} is not supported`);
  const dt = c.clusterDiscoveryType.case === 'type' ? c.clusterDiscoveryType.value : Cluster_DiscoveryType.STATIC;
  const type: DiscoveryType | undefined = (
    {
      [Cluster_DiscoveryType.STATIC]: 'STATIC',
      [Cluster_DiscoveryType.STRICT_DNS]: 'STRICT_DNS',
      [Cluster_DiscoveryType.LOGICAL_DNS]: 'LOGICAL_DNS',
      [Cluster_DiscoveryType.EDS]: 'EDS',
      [Cluster_DiscoveryType.ORIGINAL_DST]: 'ORIGINAL_DST',
    } as Record<number, DiscoveryType>
  )[dt];
  if (!type) return err('type', `unknown discovery type ${dt}`);

  // Load balancer.
  if (c.loadBalancingPolicy && c.loadBalancingPolicy.policies.length > 0) err('load_balancing_policy', 'typed load balancing policies are not supported; use lb_policy');
  const lbPolicy: LbPolicyName | undefined = (
    {
      [Cluster_LbPolicy.ROUND_ROBIN]: 'ROUND_ROBIN',
      [Cluster_LbPolicy.LEAST_REQUEST]: 'LEAST_REQUEST',
      [Cluster_LbPolicy.RANDOM]: 'RANDOM',
      [Cluster_LbPolicy.RING_HASH]: 'RING_HASH',
      [Cluster_LbPolicy.MAGLEV]: 'MAGLEV',
      [Cluster_LbPolicy.CLUSTER_PROVIDED]: 'CLUSTER_PROVIDED',
    } as Record<number, LbPolicyName>
  )[c.lbPolicy];
  if (!lbPolicy) return err('lb_policy', c.lbPolicy === Cluster_LbPolicy.LOAD_BALANCING_POLICY_CONFIG ? 'LOAD_BALANCING_POLICY_CONFIG is not supported' : `unknown lb_policy ${c.lbPolicy}`);
  if (type === 'ORIGINAL_DST' && lbPolicy !== 'CLUSTER_PROVIDED') err('lb_policy', `${lbPolicy} is not valid for cluster type ORIGINAL_DST; only CLUSTER_PROVIDED is allowed`);
  if (lbPolicy === 'CLUSTER_PROVIDED' && type !== 'ORIGINAL_DST') err('lb_policy', `CLUSTER_PROVIDED is only valid for cluster type ORIGINAL_DST, not ${type}`);
  if (c.lbSubsetConfig && c.lbSubsetConfig.subsetSelectors.length > 0) err('lb_subset_config', 'subset load balancing is not supported');

  const cl = c.commonLbConfig;
  const panicValue = cl?.healthyPanicThreshold?.value;
  if (panicValue !== undefined && (panicValue < 0 || panicValue > 100 || Number.isNaN(panicValue))) err('common_lb_config.healthy_panic_threshold', 'must be between 0 and 100');
  const zone = cl?.localityConfigSpecifier.case === 'zoneAwareLbConfig' ? cl.localityConfigSpecifier.value : undefined;
  const common: CommonLbSettings = {
    panicThreshold: panicValue === undefined ? 50 : Math.round(panicValue),
    localityWeighted: cl?.localityConfigSpecifier.case === 'localityWeightedLbConfig',
    failTrafficOnPanic: zone?.failTrafficOnPanic ?? false,
  };
  if (cl?.consistentHashingLbConfig?.hashBalanceFactor !== undefined && cl.consistentHashingLbConfig.hashBalanceFactor < 100) {
    err('common_lb_config.consistent_hashing_lb_config.hash_balance_factor', 'must be at least 100');
  }
  if (cl?.overrideHostStatus) warnings.push({ field: 'common_lb_config.override_host_status', detail: 'host override is not supported; ignored' });
  const hashing = {
    useHostname: cl?.consistentHashingLbConfig?.useHostnameForHashing ?? false,
    hashBalanceFactor: cl?.consistentHashingLbConfig?.hashBalanceFactor ?? 0,
  };

  let slowStart: SlowStartSettings | undefined;
  const leastRequest: LeastRequestSettings = { choiceCount: 2, activeRequestBias: undefined };
  const ringHash: RingHashSettings = { ...hashing, minRingSize: 1024, maxRingSize: MAX_RING_SIZE };
  const maglev: MaglevSettings = { ...hashing, tableSize: 65537 };
  const lbc = c.lbConfig;
  const slow = (s: { slowStartWindow?: Duration; aggression?: { defaultValue: number }; minWeightPercent?: { value: number } } | undefined, f: string): SlowStartSettings | undefined => {
    if (!s) return undefined;
    const windowMs = durationMs(s.slowStartWindow, 0);
    if (windowMs <= 0) return undefined;
    const aggression = s.aggression?.defaultValue ?? 1.0;
    if (!(aggression > 0)) err(`${f}.slow_start_config.aggression`, 'must be greater than 0');
    const minPct = s.minWeightPercent?.value ?? 10;
    if (minPct < 0 || minPct > 100) err(`${f}.slow_start_config.min_weight_percent`, 'must be between 0 and 100');
    return { windowMs, aggression, minWeight: minPct / 100 };
  };
  switch (lbc.case) {
    case 'roundRobinLbConfig':
      if (lbPolicy !== 'ROUND_ROBIN') err('round_robin_lb_config', `does not apply to lb_policy ${lbPolicy}`);
      slowStart = slow(lbc.value.slowStartConfig, 'round_robin_lb_config');
      break;
    case 'leastRequestLbConfig': {
      if (lbPolicy !== 'LEAST_REQUEST') err('least_request_lb_config', `does not apply to lb_policy ${lbPolicy}`);
      const v = lbc.value;
      if (v.choiceCount !== undefined) {
        if (v.choiceCount < 2) err('least_request_lb_config.choice_count', 'must be at least 2');
        leastRequest.choiceCount = v.choiceCount;
      }
      if (v.activeRequestBias) leastRequest.activeRequestBias = v.activeRequestBias.defaultValue;
      slowStart = slow(v.slowStartConfig, 'least_request_lb_config');
      break;
    }
    case 'ringHashLbConfig': {
      if (lbPolicy !== 'RING_HASH') err('ring_hash_lb_config', `does not apply to lb_policy ${lbPolicy}`);
      const v = lbc.value;
      if (v.hashFunction !== Cluster_RingHashLbConfig_HashFunction.XX_HASH) err('ring_hash_lb_config.hash_function', 'only XX_HASH is supported');
      if (v.minimumRingSize !== undefined) ringHash.minRingSize = Number(v.minimumRingSize);
      if (v.maximumRingSize !== undefined) ringHash.maxRingSize = Number(v.maximumRingSize);
      if (ringHash.minRingSize > MAX_RING_SIZE) err('ring_hash_lb_config.minimum_ring_size', `must be at most ${MAX_RING_SIZE}`);
      if (ringHash.maxRingSize > MAX_RING_SIZE) err('ring_hash_lb_config.maximum_ring_size', `must be at most ${MAX_RING_SIZE}`);
      if (ringHash.minRingSize > ringHash.maxRingSize) err('ring_hash_lb_config.minimum_ring_size', `minimum_ring_size (${ringHash.minRingSize}) > maximum_ring_size (${ringHash.maxRingSize})`);
      break;
    }
    case 'maglevLbConfig': {
      if (lbPolicy !== 'MAGLEV') err('maglev_lb_config', `does not apply to lb_policy ${lbPolicy}`);
      if (lbc.value.tableSize !== undefined) maglev.tableSize = Number(lbc.value.tableSize);
      break;
    }
    case 'originalDstLbConfig':
      if (type !== 'ORIGINAL_DST') err('original_dst_lb_config', 'only applies to ORIGINAL_DST clusters');
      break;
    default:
      break;
  }
  if (lbPolicy === 'MAGLEV') {
    if (maglev.tableSize > MAX_MAGLEV_TABLE) err('maglev_lb_config.table_size', `must be at most ${MAX_MAGLEV_TABLE}`);
    if (!isPrime(maglev.tableSize)) err('maglev_lb_config.table_size', `the table size of maglev must be a prime number, got ${maglev.tableSize}`);
  }

  // Circuit breakers.
  const thresholds = { default: thresholdsFor(c, RoutingPriority.DEFAULT, err), high: thresholdsFor(c, RoutingPriority.HIGH, err) };

  // Outlier detection.
  let outlier: OutlierConfig | undefined;
  if (c.outlierDetection) {
    if (c.outlierDetection.monitors.length > 0) err('outlier_detection.monitors', 'outlier detection extensions are not supported');
    outlier = outlierConfig(c.outlierDetection);
    if (outlier.maxEjectionTimeMs < outlier.baseEjectionTimeMs) err('outlier_detection.max_ejection_time', "outlier detector's max_ejection_time cannot be smaller than base_ejection_time");
    if (outlier.intervalMs <= 0) err('outlier_detection.interval', 'must be greater than 0');
    if (outlier.maxEjectionPercent > 100) err('outlier_detection.max_ejection_percent', 'must be at most 100');
  }

  // Transport socket: compiled by tls/upstream.ts (the caller says whether any host may use TLS).

  // Health checks.
  if (c.healthChecks.length > 1) err('health_checks', 'multiple health checks are not supported');
  const hc = c.healthChecks[0] ? healthCheck(c, c.healthChecks[0], warnings, anyTls) : undefined;
  if (hc && type === 'ORIGINAL_DST') err('health_checks', 'ORIGINAL_DST clusters cannot be health checked');

  // Upstream HTTP protocol.
  let protocol: UpstreamProtocol = 'http1';
  let httpProtocolOptions: HttpProtocolOptions | undefined;
  for (const [key, any] of Object.entries(c.typedExtensionProtocolOptions)) {
    const f = `typed_extension_protocol_options[${JSON.stringify(key)}]`;
    const tn = typeNameOf(any.typeUrl);
    if (key === HTTP_PROTOCOL_OPTIONS || tn === HttpProtocolOptionsSchema.typeName) {
      try {
        httpProtocolOptions = unpack(HttpProtocolOptionsSchema, any);
      } catch (e) {
        err(f, `cannot decode HttpProtocolOptions: ${(e as Error).message}`);
      }
      const u = httpProtocolOptions!.upstreamProtocolOptions;
      if (u.case === 'explicitHttpConfig') {
        const pc = u.value.protocolConfig.case;
        if (pc === 'http3ProtocolOptions') err(`${f}.explicit_http_config.http3_protocol_options`, 'HTTP/3 upstreams are not supported');
        if (pc === undefined) err(`${f}.explicit_http_config`, 'a protocol config is required');
        protocol = pc === 'http2ProtocolOptions' ? 'http2' : 'http1';
      } else if (u.case === 'useDownstreamProtocolConfig') {
        if (u.value.http3ProtocolOptions) warnings.push({ field: `${f}.use_downstream_protocol_config.http3_protocol_options`, detail: 'HTTP/3 is not supported; HTTP/3 downstreams use HTTP/2 upstream' });
        protocol = 'downstream';
      } else if (u.case === 'autoConfig') {
        if (u.value.http3ProtocolOptions) err(`${f}.auto_config.http3_protocol_options`, 'HTTP/3 upstreams are not supported');
        protocol = 'auto';
      } else {
        err(f, 'upstream_protocol_options is required');
      }
      if (httpProtocolOptions!.httpFilters.length > 0) err(`${f}.http_filters`, 'upstream HTTP filters are not supported');
    } else if (key === TCP_PROTOCOL_OPTIONS) {
      // Read by the TCP proxy (idle_timeout); nothing to check here.
    } else {
      warnings.push({ field: f, detail: `protocol options ${JSON.stringify(key)} are not supported; ignored` });
    }
  }
  if (httpProtocolOptions && (c.http2ProtocolOptions || c.httpProtocolOptions || c.commonHttpProtocolOptions || c.upstreamHttpProtocolOptions || c.protocolSelection !== Cluster_ClusterProtocolSelection.USE_CONFIGURED_PROTOCOL)) {
    err('typed_extension_protocol_options', 'cannot be combined with the deprecated cluster-level HTTP protocol options');
  }
  if (!httpProtocolOptions) {
    if (c.http2ProtocolOptions) protocol = 'http2';
    if (c.protocolSelection === Cluster_ClusterProtocolSelection.USE_DOWNSTREAM_PROTOCOL) protocol = 'downstream';
  }
  if (protocol === 'auto' && !anyTls) err('typed_extension_protocol_options', 'auto_config needs a TLS transport socket (ALPN)');

  // Unsupported features that change traffic.
  if (c.filters.length > 0) err('filters', 'upstream network filters are not supported');
  if (c.upstreamConfig) err('upstream_config', 'custom upstream configs are not supported');
  // Harmless or handled elsewhere.
  if (c.dnsResolvers.length || c.typedDnsResolverConfig || c.dnsResolutionConfig || c.useTcpForDnsLookups) {
    warnings.push({ field: 'typed_dns_resolver_config', detail: 'custom DNS resolvers are not supported; the system resolver is used' });
  }
  if (c.lrsServer) warnings.push({ field: 'lrs_server', detail: 'load reporting is not supported; ignored' });
  if (c.loadAssignment && type === 'EDS') warnings.push({ field: 'load_assignment', detail: 'ignored for EDS clusters (endpoints come from EDS)' });

  // DNS.
  const family: DnsFamily = (
    {
      [Cluster_DnsLookupFamily.AUTO]: 'AUTO',
      [Cluster_DnsLookupFamily.V4_ONLY]: 'V4_ONLY',
      [Cluster_DnsLookupFamily.V6_ONLY]: 'V6_ONLY',
      [Cluster_DnsLookupFamily.V4_PREFERRED]: 'V4_PREFERRED',
      [Cluster_DnsLookupFamily.ALL]: 'ALL',
    } as Record<number, DnsFamily>
  )[c.dnsLookupFamily] ?? 'AUTO';
  const refreshRateMs = durationMs(c.dnsRefreshRate, 5000);
  if (refreshRateMs < 1) err('dns_refresh_rate', 'must be at least 1ms');
  const failureBaseMs = durationMs(c.dnsFailureRefreshRate?.baseInterval, refreshRateMs);
  const failureMaxMs = durationMs(c.dnsFailureRefreshRate?.maxInterval, failureBaseMs * 10);
  if (failureMaxMs < failureBaseMs) err('dns_failure_refresh_rate.max_interval', 'must be at least base_interval');
  const dns: DnsSettings = { family, refreshRateMs, failureBaseMs: Math.max(1, failureBaseMs), failureMaxMs: Math.max(1, failureMaxMs), respectTtl: c.respectDnsTtl };

  // Hosts.
  let staticHosts: HostsSpec | undefined;
  let dnsTargets: DnsTarget[] = [];
  if (type === 'ORIGINAL_DST') {
    if (c.loadAssignment && c.loadAssignment.endpoints.length > 0) err('load_assignment', 'ORIGINAL_DST clusters must have no load assignment configured');
  } else if (type === 'STATIC') {
    staticHosts = parseAssignment(c.loadAssignment ?? ({ endpoints: [] } as unknown as ClusterLoadAssignment), name, 'ip', 'load_assignment.');
  } else if (type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    const parsed = parseAssignment(c.loadAssignment ?? ({ endpoints: [] } as unknown as ClusterLoadAssignment), name, 'dns', 'load_assignment.');
    staticHosts = parsed;
    dnsTargets = parsed.dnsTargets;
    if (type === 'LOGICAL_DNS') {
      const groups = c.loadAssignment?.endpoints ?? [];
      if (groups.length !== 1 || dnsTargets.length !== 1) err('load_assignment', 'LOGICAL_DNS clusters must have a single locality_lb_endpoint and a single lb_endpoint');
    }
  }

  const od = c.lbConfig.case === 'originalDstLbConfig' ? c.lbConfig.value : undefined;
  if (od?.metadataKey) err('original_dst_lb_config.metadata_key', 'metadata destinations are not supported');
  const originalDst =
    type === 'ORIGINAL_DST'
      ? {
          useHttpHeader: od?.useHttpHeader ?? false,
          httpHeaderName: od?.httpHeaderName || 'x-envoy-original-dst-host',
          upstreamPortOverride: od?.upstreamPortOverride,
          cleanupIntervalMs: durationMs(c.cleanupInterval, 5000),
        }
      : undefined;

  const connectTimeoutMs = durationMs(c.connectTimeout, 5000);
  if (connectTimeoutMs <= 0) err('connect_timeout', 'must be greater than 0');
  return {
    name,
    statName: c.altStatName || name,
    type,
    lbPolicy,
    // Istio names the EDS service as the cluster: one string for both.
    edsServiceName: !c.edsClusterConfig?.serviceName || c.edsClusterConfig.serviceName === name ? name : c.edsClusterConfig.serviceName,
    connectTimeoutMs,
    perConnectionBufferLimitBytes: c.perConnectionBufferLimitBytes ?? 1024 * 1024,
    thresholds,
    outlier,
    healthCheck: hc,
    common,
    slowStart,
    leastRequest,
    ringHash,
    maglev,
    protocol,
    httpProtocolOptions,
    dns,
    dnsTargets,
    staticHosts,
    originalDst,
    ignoreNewHostsUntilFirstHc: cl?.ignoreNewHostsUntilFirstHc ?? false,
    ignoreHealthOnHostRemoval: c.ignoreHealthOnHostRemoval,
    warnings,
  };
}
