/**
 * networking.istio.io DestinationRule: schema (istio/api networking/v1alpha3/destination_rule.proto, CRD oneofs,
 * and the errors of istio/istio ValidateDestinationRule) and translation into a DestinationPolicy.
 */
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type {
  ClientTlsSettings,
  ConnectionPoolSettings,
  DestinationPolicy,
  LoadBalancerSettings,
  OutlierDetectionSettings,
  TrafficPolicy,
} from '../../model.js';
import { duration, port } from '../../schema/common.js';
import type { JsonPath } from '../../source.js';
import {
  NETWORKING_GROUP,
  NETWORKING_VERSIONS,
  checkExportTo,
  durationOrZero,
  exportToOf,
  fqdnError,
  isDns1123Label,
  isIpAddress,
  issuer,
  istioDuration,
  k8sLabels,
  ms,
  nonNegativeInt32,
  portError,
  typeWorkloadSelector,
  uint32,
  wildcardDomainError,
  wrapper,
} from './common.js';
import type { Issue } from './common.js';

// ---------------------------------------------------------------------------------------------------------------
// Schema

const intPercent = () => z.number().int('expected an integer percentage').min(0, 'percentage must be 0-100').max(100, 'percentage must be 0-100');

const consistentHash = z
  .strictObject({
    httpHeaderName: z.string().optional(),
    httpCookie: z
      .strictObject({
        name: z.string().min(1, 'name required for HttpCookie'),
        path: z.string().optional(),
        ttl: duration().optional(),
        attributes: z.array(z.strictObject({ name: z.string(), value: z.string().optional() })).optional(),
      })
      .optional(),
    useSourceIp: z.boolean().optional(),
    httpQueryParameterName: z.string().optional(),
    ringHash: z.strictObject({ minimumRingSize: z.number().int().min(0).optional() }).optional(),
    maglev: z.strictObject({ tableSize: z.number().int().min(0).optional() }).optional(),
    /** Deprecated: use ringHash.minimumRingSize. */
    minimumRingSize: z.number().int().min(0).optional(),
  })
  .superRefine((c, ctx) => {
    const issue = issuer(ctx);
    const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const).filter((k) => c[k] !== undefined);
    if (keys.length > 1) issue([keys[1]!], `only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set (found ${keys.join(' and ')})`);
    if (c.ringHash && c.maglev) issue(['maglev'], 'only one of ringHash or maglev may be set');
  });

const localityLbSetting = z.strictObject({
  distribute: z.array(z.strictObject({ from: z.string().optional(), to: z.record(z.string(), uint32()).optional() })).optional(),
  failover: z.array(z.strictObject({ from: z.string().optional(), to: z.string().optional() })).optional(),
  failoverPriority: z.array(z.string()).optional(),
  enabled: wrapper(z.boolean()),
});

const loadBalancer = z
  .strictObject({
    simple: z.enum(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST']).optional(),
    consistentHash: consistentHash.optional(),
    localityLbSetting: localityLbSetting.optional(),
    /** Deprecated: use warmup. */
    warmupDurationSecs: istioDuration().optional(),
    warmup: z
      .strictObject({
        duration: istioDuration(),
        minimumPercent: wrapper(z.number().min(0, 'minimumPercent must be 0-100').max(100, 'minimumPercent value should be less than or equal to 100')),
        aggression: wrapper(z.number().min(0)),
      })
      .optional(),
  })
  .superRefine((lb, ctx) => {
    if (lb.simple !== undefined && lb.consistentHash !== undefined) issuer(ctx)(['consistentHash'], 'only one of simple or consistentHash may be set');
  });

const connectionPool = z.strictObject({
  tcp: z
    .strictObject({
      maxConnections: nonNegativeInt32('max connections').optional(),
      connectTimeout: istioDuration().optional(),
      tcpKeepalive: z.strictObject({ probes: uint32().optional(), time: istioDuration().optional(), interval: istioDuration().optional() }).optional(),
      maxConnectionDuration: istioDuration().optional(),
      idleTimeout: durationOrZero().optional(),
    })
    .optional(),
  http: z
    .strictObject({
      http1MaxPendingRequests: nonNegativeInt32('http1 max pending requests').optional(),
      http2MaxRequests: nonNegativeInt32('http2 max requests').optional(),
      maxRequestsPerConnection: nonNegativeInt32('max requests per connection').optional(),
      maxRetries: nonNegativeInt32('max retries').optional(),
      idleTimeout: istioDuration().optional(),
      h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
      useClientProtocol: z.boolean().optional(),
      maxConcurrentStreams: nonNegativeInt32('max concurrent streams').optional(),
    })
    .optional(),
});
export const connectionPoolSchema = () => connectionPool;
export type ConnectionPoolSpec = z.output<typeof connectionPool>;

const outlierDetection = z.strictObject({
  splitExternalLocalOriginErrors: z.boolean().optional(),
  consecutiveLocalOriginFailures: wrapper(uint32()),
  consecutiveGatewayErrors: wrapper(uint32()),
  consecutive5xxErrors: wrapper(uint32()),
  interval: istioDuration().optional(),
  baseEjectionTime: istioDuration().optional(),
  maxEjectionPercent: intPercent().optional(),
  minHealthPercent: intPercent().optional(),
  /** Deprecated: use consecutiveGatewayErrors or consecutive5xxErrors. */
  consecutiveErrors: z.number().int().min(-2147483648).max(2147483647).optional(),
});

const clientTls = z.strictObject({
  mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).optional(),
  clientCertificate: z.string().optional(),
  privateKey: z.string().optional(),
  caCertificates: z.string().optional(),
  credentialName: z.string().optional(),
  subjectAltNames: z.array(z.string()).optional(),
  sni: z.string().optional(),
  insecureSkipVerify: wrapper(z.boolean()),
  caCrl: z.string().optional(),
});

const portTrafficPolicy = z.strictObject({
  port: z.strictObject({ number: port() }).optional(),
  loadBalancer: loadBalancer.optional(),
  connectionPool: connectionPool.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTls.optional(),
});

const trafficPolicy = z.strictObject({
  loadBalancer: loadBalancer.optional(),
  connectionPool: connectionPool.optional(),
  outlierDetection: outlierDetection.optional(),
  tls: clientTls.optional(),
  portLevelSettings: z.array(portTrafficPolicy).max(4096).optional(),
  tunnel: z.strictObject({ protocol: z.string().optional(), targetHost: z.string(), targetPort: uint32() }).optional(),
  proxyProtocol: z.strictObject({ version: z.enum(['V1', 'V2']).optional() }).optional(),
  retryBudget: z
    .strictObject({ percent: wrapper(z.number().min(0, 'percentage must be 0-100').max(100, 'percentage must be 0-100')), minRetryConcurrency: uint32().optional() })
    .optional(),
});
type TrafficPolicySpec = z.output<typeof trafficPolicy>;
type PortTrafficPolicySpec = z.output<typeof portTrafficPolicy>;

const destinationRuleBase = z.strictObject({
  host: z.string(),
  trafficPolicy: trafficPolicy.optional(),
  subsets: z.array(z.strictObject({ name: z.string(), labels: k8sLabels().optional(), trafficPolicy: trafficPolicy.optional() })).optional(),
  exportTo: z.array(z.string()).optional(),
  workloadSelector: typeWorkloadSelector().optional(),
});
export type DestinationRuleSpec = z.output<typeof destinationRuleBase>;
export const destinationRuleSpec = destinationRuleBase.superRefine((dr, ctx) => validateDestinationRule(dr, issuer(ctx)));

// ---------------------------------------------------------------------------------------------------------------
// Validation (istio/istio ValidateDestinationRule, validateTrafficPolicy and helpers)

function isPrime(x: number): boolean {
  if (x !== 0 && x < 4) return true;
  if (x % 2 === 0) return false;
  const limit = Math.floor(Math.sqrt(x));
  for (let f = 3; f <= limit; f += 2) if (x % f === 0) return false;
  return true;
}

const TOPOLOGY_LABELS = new Set(['topology.kubernetes.io/region', 'topology.kubernetes.io/zone', 'topology.istio.io/subzone']);

/** Go `strings.SplitN(s, sep, n)`. */
function splitN(s: string, sep: string, n: number): string[] {
  const out: string[] = [];
  let rest = s;
  while (out.length < n - 1) {
    const i = rest.indexOf(sep);
    if (i < 0) break;
    out.push(rest.slice(0, i));
    rest = rest.slice(i + sep.length);
  }
  out.push(rest);
  return out;
}

/** Istio `validateLocalities`: `region/zone/subzone`, at most one trailing `*`, no overlapping entries. */
function localitiesError(localities: readonly string[]): string | undefined {
  const regions = new Map<string, Map<string, Map<string, boolean>>>();
  for (const loc of localities) {
    const stars = loc.split('*').length - 1;
    if (stars > 1 || (stars === 1 && !loc.endsWith('*'))) return `locality ${loc} wildcard '*' number can not exceed 1 and must be in the end`;
    if (regions.has('*')) return `locality ${loc} overlap with previous specified ones`;
    const parts = splitN(loc, '/', 3);
    if (parts.some((p) => p === '')) return `locality ${loc} must not contain empty region/zone/subzone info`;
    const [region, zone = '', subzone = ''] = parts as [string, string?, string?];
    const overlap = `locality ${loc} overlap with previous specified ones`;
    const zones = regions.get(region);
    if (parts.length === 1) {
      if (zones) return overlap;
      regions.set(region, new Map([['*', new Map([['*', true]])]]));
    } else if (parts.length === 2) {
      if (zones) {
        if (zones.has('*') || zones.has(zone)) return overlap;
        zones.set(zone, new Map([['*', true]]));
      } else regions.set(region, new Map([[zone, new Map([['*', true]])]]));
    } else if (zones) {
      if (zones.has('*')) return overlap;
      const subzones = zones.get(zone);
      if (subzones) {
        if (subzones.get('*') || subzones.get(subzone)) return overlap;
        subzones.set(subzone, true);
      } else zones.set(zone, new Map([[subzone, true]]));
    } else regions.set(region, new Map([[zone, new Map([[subzone, true]])]]));
  }
  return undefined;
}

function checkLocality(lb: NonNullable<z.output<typeof localityLbSetting>>, at: JsonPath, issue: Issue): void {
  const distribute = lb.distribute ?? [];
  const failover = lb.failover ?? [];
  if (distribute.length && failover.length) {
    issue(at, "can not simultaneously specify 'distribute' and 'failover'");
    return;
  }
  if (failover.length) {
    for (const label of lb.failoverPriority ?? []) {
      if (TOPOLOGY_LABELS.has(label)) {
        issue([...at, 'failoverPriority'], `can not simultaneously set 'failover' and topology label '${label}' in 'failover_priority'`);
        return;
      }
    }
  }
  for (const [i, d] of distribute.entries()) {
    const weights = Object.values(d.to ?? {});
    if (weights.some((w) => w <= 0 || w > 100)) {
      issue([...at, 'distribute', i, 'to'], 'locality weight must be in range [1, 100]');
      return;
    }
    const total = weights.reduce((a, b) => a + b, 0);
    if (total !== 100) {
      issue([...at, 'distribute', i, 'to'], `total locality weight ${total} != 100`);
      return;
    }
    const err = localitiesError(Object.keys(d.to ?? {}));
    if (err) issue([...at, 'distribute', i, 'to'], err);
  }
  const srcErr = localitiesError(distribute.map((d) => d.from ?? ''));
  if (srcErr) issue([...at, 'distribute'], srcErr);
  failover.forEach((f, i) => {
    const from = f.from ?? '';
    const to = f.to ?? '';
    if (from === to) issue([...at, 'failover', i], 'locality lb failover settings must specify different regions');
    if (from.includes('/') || to.includes('/')) issue([...at, 'failover', i], 'locality lb failover only specify region');
    if (from.includes('*') || to.includes('*')) issue([...at, 'failover', i], "locality lb failover region should not contain '*' wildcard");
  });
}

function checkLoadBalancer(lb: z.output<typeof loadBalancer> | undefined, at: JsonPath, issue: Issue): void {
  if (!lb) return;
  const ch = lb.consistentHash;
  if (ch) {
    if (ch.minimumRingSize && (ch.ringHash || ch.maglev)) issue([...at, 'consistentHash', 'minimumRingSize'], 'only one of MinimumRingSize or Maglev/Ringhash can be specified');
    if (ch.maglev) {
      const size = ch.maglev.tableSize ?? 0;
      const p = [...at, 'consistentHash', 'maglev', 'tableSize'];
      if (size === 0) issue(p, 'tableSize must be set for maglev');
      if (size >= 5000011) issue(p, 'tableSize must be less than 5000011 for maglev');
      if (!isPrime(size)) issue(p, 'tableSize must be a prime number for maglev');
    }
  }
  if (lb.localityLbSetting) checkLocality(lb.localityLbSetting, [...at, 'localityLbSetting'], issue);
  if (lb.warmup?.aggression !== undefined && lb.warmup.aggression < 1) issue([...at, 'warmup', 'aggression'], 'aggression should be greater than or equal to 1');
}

function checkConnectionPool(cp: ConnectionPoolSpec | undefined, at: JsonPath, issue: Issue): void {
  if (!cp) return;
  if (!cp.http && !cp.tcp) issue(at, 'connection pool must have at least one field');
  if (cp.http?.h2UpgradePolicy === 'UPGRADE' && cp.http.useClientProtocol) issue([...at, 'http', 'useClientProtocol'], 'use client protocol must not be true when H2UpgradePolicy is UPGRADE');
}

/** Istio `agent.ValidateTLS` (client side). */
function checkClientTls(tls: z.output<typeof clientTls> | undefined, at: JsonPath, issue: Issue): void {
  if (!tls) return;
  const mode = tls.mode ?? 'DISABLE';
  if (tls.insecureSkipVerify) {
    if (mode === 'SIMPLE' && (tls.caCertificates || tls.credentialName || tls.subjectAltNames)) {
      issue([...at, 'insecureSkipVerify'], 'cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true');
    }
    if (mode === 'MUTUAL' && (tls.caCertificates || tls.subjectAltNames)) {
      issue([...at, 'insecureSkipVerify'], 'cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true');
    }
  }
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && tls.credentialName) {
    if (tls.clientCertificate || tls.caCertificates || tls.privateKey || tls.caCrl) {
      issue([...at, 'credentialName'], 'cannot specify client certificates or CA certificate or CA CRL If credentialName is set');
    }
    return;
  }
  if (mode === 'MUTUAL') {
    if (!tls.clientCertificate) issue(at, 'client certificate required for mutual tls');
    if (!tls.privateKey) issue(at, 'private key required for mutual tls');
  }
}

function checkOutlier(o: z.output<typeof outlierDetection> | undefined, at: JsonPath, issue: Issue): void {
  if (!o) return;
  if (!o.splitExternalLocalOriginErrors && (o.consecutiveLocalOriginFailures ?? 0) > 0) {
    issue([...at, 'consecutiveLocalOriginFailures'], 'outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false');
  }
}

function checkPortPolicy(p: PortTrafficPolicySpec, at: JsonPath, issue: Issue): void {
  if (!p.port) issue(at, 'portTrafficPolicy must have valid port');
  if (!p.outlierDetection && !p.connectionPool && !p.loadBalancer && !p.tls) {
    issue(at, 'port traffic policy must have at least one field');
    return;
  }
  checkOutlier(p.outlierDetection, [...at, 'outlierDetection'], issue);
  checkConnectionPool(p.connectionPool, [...at, 'connectionPool'], issue);
  checkLoadBalancer(p.loadBalancer, [...at, 'loadBalancer'], issue);
  checkClientTls(p.tls, [...at, 'tls'], issue);
}

function checkTrafficPolicy(tp: TrafficPolicySpec | undefined, at: JsonPath, issue: Issue): void {
  if (!tp) return;
  if (!tp.outlierDetection && !tp.connectionPool && !tp.loadBalancer && !tp.tls && !tp.portLevelSettings && !tp.tunnel && !tp.proxyProtocol && !tp.retryBudget) {
    issue(at, 'traffic policy must have at least one field');
    return;
  }
  if (tp.tunnel && tp.proxyProtocol) {
    issue(at, 'tunnel and proxyProtocol must not be set together');
    return;
  }
  checkOutlier(tp.outlierDetection, [...at, 'outlierDetection'], issue);
  checkConnectionPool(tp.connectionPool, [...at, 'connectionPool'], issue);
  checkLoadBalancer(tp.loadBalancer, [...at, 'loadBalancer'], issue);
  checkClientTls(tp.tls, [...at, 'tls'], issue);
  (tp.portLevelSettings ?? []).forEach((p, i) => checkPortPolicy(p, [...at, 'portLevelSettings', i], issue));
  if (tp.tunnel) {
    const t = tp.tunnel;
    if (t.protocol && t.protocol !== 'CONNECT' && t.protocol !== 'POST') issue([...at, 'tunnel', 'protocol'], 'tunnel protocol must be "CONNECT" or "POST"');
    const fq = fqdnError(t.targetHost);
    if (fq && !isIpAddress(t.targetHost)) issue([...at, 'tunnel', 'targetHost'], `tunnel target host must be valid FQDN or IP address: ${fq}`);
    const pe = portError(t.targetPort);
    if (pe) issue([...at, 'tunnel', 'targetPort'], `tunnel target port is invalid: ${pe}`);
  }
}

function validateDestinationRule(dr: DestinationRuleSpec, issue: Issue): void {
  const hostErr = wildcardDomainError(dr.host);
  if (hostErr) issue(['host'], hostErr);
  checkTrafficPolicy(dr.trafficPolicy, ['trafficPolicy'], issue);
  const names = new Set<string>();
  (dr.subsets ?? []).forEach((s, i) => {
    if (names.has(s.name)) issue(['subsets', i, 'name'], `duplicate subset names: ${s.name}`);
    names.add(s.name);
    if (s.name === '') issue(['subsets', i, 'name'], 'subset name cannot be empty');
    else if (!isDns1123Label(s.name)) issue(['subsets', i, 'name'], `subset name is invalid: ${s.name}`);
    checkTrafficPolicy(s.trafficPolicy, ['subsets', i, 'trafficPolicy'], issue);
  });
  checkExportTo(dr.exportTo, undefined, false, issue);
}

// ---------------------------------------------------------------------------------------------------------------
// Translation

/** Envoy/Istio outlier detection defaults documented in destination_rule.proto. */
export const OUTLIER_DEFAULTS = { consecutive5xxErrors: 5, consecutiveLocalOriginFailures: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, minHealthPercent: 0 } as const;
/** Retry budget defaults documented in destination_rule.proto (20% of active requests, at least 3). */
export const RETRY_BUDGET_DEFAULTS = { percent: 20, minRetryConcurrency: 3 } as const;

function toLoadBalancer(lb: z.output<typeof loadBalancer>): LoadBalancerSettings {
  const out: LoadBalancerSettings = {};
  // LEAST_CONN is Istio's deprecated name of LEAST_REQUEST (both become Envoy LEAST_REQUEST).
  if (lb.simple) out.simple = lb.simple === 'LEAST_CONN' ? 'LEAST_REQUEST' : lb.simple;
  if (lb.consistentHash) {
    const c = lb.consistentHash;
    const ch: NonNullable<LoadBalancerSettings['consistentHash']> = {};
    if (c.httpHeaderName !== undefined) ch.httpHeaderName = c.httpHeaderName;
    if (c.httpCookie) {
      const cookie: { name: string; path?: string; ttlMs?: number } = { name: c.httpCookie.name };
      if (c.httpCookie.path !== undefined) cookie.path = c.httpCookie.path;
      if (c.httpCookie.ttl !== undefined) cookie.ttlMs = ms(c.httpCookie.ttl);
      ch.httpCookie = cookie;
    }
    if (c.useSourceIp !== undefined) ch.useSourceIp = c.useSourceIp;
    if (c.httpQueryParameterName !== undefined) ch.httpQueryParameterName = c.httpQueryParameterName;
    if (c.maglev) ch.maglev = c.maglev.tableSize !== undefined ? { tableSize: c.maglev.tableSize } : {};
    else if (c.ringHash) ch.ringHash = c.ringHash.minimumRingSize !== undefined ? { minimumRingSize: c.ringHash.minimumRingSize } : {};
    else if (c.minimumRingSize !== undefined) ch.ringHash = { minimumRingSize: c.minimumRingSize };
    out.consistentHash = ch;
  }
  if (lb.localityLbSetting) {
    const l = lb.localityLbSetting;
    const locality: NonNullable<LoadBalancerSettings['locality']> = {
      distribute: (l.distribute ?? []).map((d) => ({ from: d.from ?? '', to: { ...(d.to ?? {}) } })),
      failover: (l.failover ?? []).map((f) => ({ from: f.from ?? '', to: f.to ?? '' })),
      failoverPriority: [...(l.failoverPriority ?? [])],
    };
    if (l.enabled !== undefined) locality.enabled = l.enabled;
    out.locality = locality;
  }
  const warmup = lb.warmup?.duration ?? lb.warmupDurationSecs;
  if (warmup !== undefined) out.warmupDurationMs = ms(warmup);
  return out;
}

function toConnectionPool(cp: ConnectionPoolSpec): ConnectionPoolSettings {
  const out: ConnectionPoolSettings = {};
  if (cp.tcp) {
    const t = cp.tcp;
    const tcp: NonNullable<ConnectionPoolSettings['tcp']> = {};
    if (t.maxConnections !== undefined) tcp.maxConnections = t.maxConnections;
    if (t.connectTimeout !== undefined) tcp.connectTimeoutMs = ms(t.connectTimeout);
    if (t.idleTimeout !== undefined) tcp.idleTimeoutMs = ms(t.idleTimeout);
    if (t.maxConnectionDuration !== undefined) tcp.maxConnectionDurationMs = ms(t.maxConnectionDuration);
    if (t.tcpKeepalive) {
      const ka: NonNullable<NonNullable<ConnectionPoolSettings['tcp']>['tcpKeepalive']> = {};
      if (t.tcpKeepalive.probes !== undefined) ka.probes = t.tcpKeepalive.probes;
      if (t.tcpKeepalive.time !== undefined) ka.timeMs = ms(t.tcpKeepalive.time);
      if (t.tcpKeepalive.interval !== undefined) ka.intervalMs = ms(t.tcpKeepalive.interval);
      tcp.tcpKeepalive = ka;
    }
    out.tcp = tcp;
  }
  if (cp.http) {
    const h = cp.http;
    const http: NonNullable<ConnectionPoolSettings['http']> = {};
    for (const k of ['http1MaxPendingRequests', 'http2MaxRequests', 'maxRequestsPerConnection', 'maxRetries', 'maxConcurrentStreams'] as const) {
      if (h[k] !== undefined) http[k] = h[k];
    }
    if (h.idleTimeout !== undefined) http.idleTimeoutMs = ms(h.idleTimeout);
    if (h.h2UpgradePolicy !== undefined) http.h2UpgradePolicy = h.h2UpgradePolicy;
    if (h.useClientProtocol !== undefined) http.useClientProtocol = h.useClientProtocol;
    out.http = http;
  }
  return out;
}

/**
 * Outlier detection with Istio's documented defaults (10s interval, 30s base ejection, 10% max ejection, 0% min
 * health, 5 consecutive 5xx). The deprecated `consecutiveErrors` counts gateway errors and turns the 5xx rule off
 * (Istio applyOutlierDetection); explicit consecutive5xxErrors / consecutiveGatewayErrors win over it.
 * maxEjectionPercent 0 is "unset" in proto3 and keeps the default 10.
 */
function toOutlier(o: z.output<typeof outlierDetection>): OutlierDetectionSettings {
  const legacy = (o.consecutiveErrors ?? 0) > 0 ? o.consecutiveErrors! : undefined;
  const split = o.splitExternalLocalOriginErrors ?? false;
  const out: OutlierDetectionSettings = {
    consecutive5xxErrors: o.consecutive5xxErrors ?? (legacy !== undefined ? 0 : OUTLIER_DEFAULTS.consecutive5xxErrors),
    consecutiveGatewayErrors: o.consecutiveGatewayErrors ?? legacy ?? 0,
    splitExternalLocalOriginErrors: split,
    intervalMs: o.interval !== undefined ? ms(o.interval) : OUTLIER_DEFAULTS.intervalMs,
    baseEjectionTimeMs: o.baseEjectionTime !== undefined ? ms(o.baseEjectionTime) : OUTLIER_DEFAULTS.baseEjectionTimeMs,
    maxEjectionPercent: o.maxEjectionPercent ? o.maxEjectionPercent : OUTLIER_DEFAULTS.maxEjectionPercent,
    minHealthPercent: o.minHealthPercent ?? OUTLIER_DEFAULTS.minHealthPercent,
  };
  if (split) out.consecutiveLocalOriginFailures = o.consecutiveLocalOriginFailures || OUTLIER_DEFAULTS.consecutiveLocalOriginFailures;
  return out;
}

function toClientTls(t: z.output<typeof clientTls>): ClientTlsSettings {
  const out: ClientTlsSettings = { mode: t.mode ?? 'DISABLE', subjectAltNames: [...(t.subjectAltNames ?? [])] };
  for (const k of ['clientCertificate', 'privateKey', 'caCertificates', 'credentialName', 'sni'] as const) if (t[k] !== undefined) out[k] = t[k];
  if (t.insecureSkipVerify !== undefined) out.insecureSkipVerify = t.insecureSkipVerify;
  return out;
}

function toPolicyParts(p: PortTrafficPolicySpec | TrafficPolicySpec): Omit<TrafficPolicy, 'portLevelSettings'> {
  const out: Omit<TrafficPolicy, 'portLevelSettings'> = {};
  if (p.loadBalancer) out.loadBalancer = toLoadBalancer(p.loadBalancer);
  if (p.connectionPool) out.connectionPool = toConnectionPool(p.connectionPool);
  if (p.outlierDetection) out.outlierDetection = toOutlier(p.outlierDetection);
  if (p.tls) out.tls = toClientTls(p.tls);
  return out;
}

export function toTrafficPolicy(tp: TrafficPolicySpec): TrafficPolicy {
  const out: TrafficPolicy = { ...toPolicyParts(tp), portLevelSettings: (tp.portLevelSettings ?? []).filter((p) => p.port).map((p) => ({ port: p.port!.number, ...toPolicyParts(p) })) };
  // Tunnel protocol defaults to CONNECT; PROXY protocol version V1 is the enum's zero value.
  if (tp.tunnel) out.tunnel = { protocol: tp.tunnel.protocol === 'POST' ? 'POST' : 'CONNECT', targetHost: tp.tunnel.targetHost, targetPort: tp.tunnel.targetPort };
  if (tp.proxyProtocol) out.proxyProtocol = { version: tp.proxyProtocol.version ?? 'V1' };
  if (tp.retryBudget) {
    out.retryBudget = {
      percent: tp.retryBudget.percent ?? RETRY_BUDGET_DEFAULTS.percent,
      minRetryConcurrency: tp.retryBudget.minRetryConcurrency ?? RETRY_BUDGET_DEFAULTS.minRetryConcurrency,
    };
  }
  return out;
}

function translateDestinationRule(res: Resource<DestinationRuleSpec>, ctx: TranslateContext): void {
  const spec = res.spec;
  const ns = res.namespace;
  const exportTo = spec.exportTo ?? [];
  if (exportTo.includes('.') && exportTo.includes(ns)) {
    ctx.report(res, { severity: 'Error', code: 'WFT0106', message: `duplicate entries in exportTo: . and current namespace ${ns}`, hint: 'keep one of them', at: ['spec', 'exportTo'] });
    return;
  }
  if (spec.workloadSelector && exportTo.length) {
    const local = new Set(exportTo.map((e) => (e === '.' ? ns : e)));
    if (!local.has(ns)) {
      ctx.report(res, { severity: 'Error', code: 'WFT0106', message: 'destination rule with workload selector cannot have exportTo beyond current namespace', hint: 'use exportTo: ["."] or remove workloadSelector', at: ['spec', 'exportTo'] });
      return;
    }
    if (local.size > 1) {
      ctx.report(res, { severity: 'Error', code: 'WFT0106', message: 'destination rule with workload selector cannot have multiple entries in exportTo', hint: 'use exportTo: ["."]', at: ['spec', 'exportTo'] });
      return;
    }
  }
  const policy: DestinationPolicy = {
    host: ctx.fqdn(spec.host, ns),
    namespace: ns,
    exportTo: exportToOf(spec.exportTo),
    subsets: (spec.subsets ?? []).map((s) => {
      const subset: DestinationPolicy['subsets'][number] = { name: s.name, labels: { ...(s.labels ?? {}) } };
      if (s.trafficPolicy) subset.trafficPolicy = toTrafficPolicy(s.trafficPolicy);
      return subset;
    }),
    origin: ctx.origin(res),
  };
  if (spec.workloadSelector) policy.workloadSelector = { ...(spec.workloadSelector.matchLabels ?? {}) };
  if (spec.trafficPolicy) policy.trafficPolicy = toTrafficPolicy(spec.trafficPolicy);
  ctx.model.destinationPolicies.push(policy);
}

export const destinationRuleKind = defineKind<DestinationRuleSpec>({
  group: NETWORKING_GROUP,
  kind: 'DestinationRule',
  family: 'istio',
  versions: NETWORKING_VERSIONS,
  namespaced: true,
  schema: destinationRuleSpec,
  translate: translateDestinationRule,
});
