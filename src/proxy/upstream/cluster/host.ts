/**
 * Upstream hosts and per-priority host sets, with Envoy's health model
 * (envoy/upstream/upstream.h, source/common/upstream/upstream_impl.cc).
 *
 * A `Host` is one upstream address of a cluster. It keeps its identity across endpoint updates: the same
 * `address:port` is the same Host object, so its stats, outlier state and health check state survive. Health is a
 * set of flags (`HealthFlag`); the coarse health is
 *   unhealthy  — failed active health checking, ejected by outlier detection, EDS says UNHEALTHY/TIMEOUT/DRAINING;
 *   degraded   — otherwise, when active HC (x-envoy-degraded) or EDS (DEGRADED) says degraded;
 *   healthy    — otherwise.
 * Excluded hosts (pending their first health check with `ignore_new_hosts_until_first_hc`, told to fail by
 * `x-envoy-immediate-health-check-fail`, or DRAINING in EDS) do not count in priority load computations.
 *
 * The request path reads `host.address`, `host.port`, `host.stats` (cx_/rq_ counters; least-request reads
 * `rq_active`), and reports results through `host.outlier.putResult(...)`. The admin `/clusters` endpoint reads
 * `host.healthFlagsString()` (`healthy` or `/failed_active_hc/failed_outlier_check/...`), `host.ejected`,
 * `host.weight`, `host.priority`, `host.locality` and `host.outlier` success rates.
 */
import type { Metadata } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { HealthStatus } from '../../../xds/gen/envoy/config/core/v3/health_check_pb.js';
import { HostStats } from './stats.js';

export const HealthFlag = {
  FAILED_ACTIVE_HC: 0x1,
  FAILED_OUTLIER_CHECK: 0x2,
  FAILED_EDS_HEALTH: 0x4,
  DEGRADED_ACTIVE_HC: 0x8,
  DEGRADED_EDS_HEALTH: 0x10,
  PENDING_DYNAMIC_REMOVAL: 0x20,
  PENDING_ACTIVE_HC: 0x40,
  EXCLUDED_VIA_IMMEDIATE_HC_FAIL: 0x80,
  ACTIVE_HC_TIMEOUT: 0x100,
  EDS_STATUS_DRAINING: 0x200,
} as const;
export type HealthFlag = (typeof HealthFlag)[keyof typeof HealthFlag];

const UNHEALTHY_FLAGS = HealthFlag.FAILED_ACTIVE_HC | HealthFlag.FAILED_OUTLIER_CHECK | HealthFlag.FAILED_EDS_HEALTH | HealthFlag.EDS_STATUS_DRAINING;
const DEGRADED_FLAGS = HealthFlag.DEGRADED_ACTIVE_HC | HealthFlag.DEGRADED_EDS_HEALTH;
const EXCLUDED_FLAGS = HealthFlag.PENDING_ACTIVE_HC | HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL | HealthFlag.EDS_STATUS_DRAINING;
const EDS_FLAGS = HealthFlag.FAILED_EDS_HEALTH | HealthFlag.DEGRADED_EDS_HEALTH | HealthFlag.EDS_STATUS_DRAINING;

/** In Envoy's order, for `healthFlagsString`. */
const FLAG_NAMES: Array<[number, string]> = [
  [HealthFlag.FAILED_ACTIVE_HC, '/failed_active_hc'],
  [HealthFlag.FAILED_OUTLIER_CHECK, '/failed_outlier_check'],
  [HealthFlag.FAILED_EDS_HEALTH, '/failed_eds_health'],
  [HealthFlag.DEGRADED_ACTIVE_HC, '/degraded_active_hc'],
  [HealthFlag.DEGRADED_EDS_HEALTH, '/degraded_eds_health'],
  [HealthFlag.PENDING_DYNAMIC_REMOVAL, '/pending_dynamic_removal'],
  [HealthFlag.PENDING_ACTIVE_HC, '/pending_active_hc'],
  [HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL, '/excluded_via_immediate_hc_fail'],
  [HealthFlag.ACTIVE_HC_TIMEOUT, '/active_hc_timeout'],
  [HealthFlag.EDS_STATUS_DRAINING, '/eds_status_draining'],
];

export const enum Health {
  Unhealthy = 0,
  Degraded = 1,
  Healthy = 2,
}

export interface Locality {
  region: string;
  zone: string;
  subZone: string;
}

/** The key hosts are grouped by: region, zone and sub_zone joined by NUL (a sub_zone may contain `/`). */
export function localityKey(l: Locality | undefined): string {
  return l ? `${l.region}\0${l.zone}\0${l.subZone}` : '\0\0';
}

/** Envoy's address string: `1.2.3.4:80`, `[::1]:80`. */
export function addressKey(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * What the outlier detector exposes per host. The request path reports every upstream result:
 * - `'5xx'` / `'gateway'` / `'success'` with the HTTP status (defaults 500 / 503 / 200): an upstream response;
 * - `'local-origin-failure'` (status 503 = connect failure/reset, 504 = timeout): no response from the host;
 * - `'local-origin-success'`: the connection was established (status 200 marks a final success, as a TCP proxy
 *   reports a completed connection).
 */
export type OutlierResult = '5xx' | 'gateway' | 'success' | 'local-origin-failure' | 'local-origin-success';

export interface HostOutlier {
  putResult(kind: OutlierResult, status?: number): void;
  /** Times this host was ejected. */
  readonly numEjections: number;
  /** Success rate (0-100) over the last interval for external-origin results, -1 when not computed. */
  readonly successRate: number;
  /** Same for local-origin results (only with split_external_local_origin_errors). */
  readonly localOriginSuccessRate: number;
}

/** For clusters without outlier detection: results are ignored. */
export const NO_OUTLIER: HostOutlier = {
  putResult() {},
  numEjections: 0,
  successRate: -1,
  localOriginSuccessRate: -1,
};

export interface HostInit {
  address: string;
  port: number;
  /** EDS `endpoint.hostname`, or the DNS name a STRICT_DNS / LOGICAL_DNS host came from. */
  hostname?: string;
  weight?: number;
  priority?: number;
  locality?: Locality;
  metadata?: Metadata;
  localityMetadata?: Metadata;
  edsHealth?: HealthStatus;
  healthCheck?: { port?: number; address?: string; hostname?: string; disabled?: boolean };
}

export class Host {
  /** Current address (a LOGICAL_DNS host's address changes with DNS). */
  address: string;
  readonly port: number;
  /** `address:port` as Envoy prints it; the identity of the host within its cluster. */
  readonly key: string;
  hostname: string;
  weight: number;
  priority: number;
  locality: Locality;
  localityKey: string;
  metadata: Metadata | undefined;
  localityMetadata: Metadata | undefined;
  /** `envoy.lb` metadata `canary: true`. */
  canary: boolean;
  /** `envoy.lb` metadata `hash_key`, used instead of the address for ring hash / Maglev. */
  hashKey: string;
  /** The EDS health status as received. */
  edsHealth: HealthStatus;
  healthCheckAddress: string;
  healthCheckPort: number;
  healthCheckHostname: string;
  disableActiveHealthCheck: boolean;

  /** HealthFlag bits. */
  flags = 0;
  readonly stats = new HostStats();
  outlier: HostOutlier = NO_OUTLIER;
  /** When the host last passed active health checking (or was first seen healthy), for slow start. */
  lastHcPassTime: number | undefined;
  /** Removed from its cluster: pools should drain it. */
  removed = false;
  /** ORIGINAL_DST: chosen since the last cleanup sweep. */
  used = true;

  constructor(init: HostInit) {
    this.address = init.address;
    this.port = init.port;
    this.key = addressKey(init.address, init.port);
    this.hostname = init.hostname ?? '';
    this.weight = 1;
    this.priority = 0;
    this.locality = { region: '', zone: '', subZone: '' };
    this.localityKey = localityKey(this.locality);
    this.metadata = undefined;
    this.localityMetadata = undefined;
    this.canary = false;
    this.hashKey = '';
    this.edsHealth = HealthStatus.UNKNOWN;
    this.healthCheckAddress = init.address;
    this.healthCheckPort = init.port;
    this.healthCheckHostname = '';
    this.disableActiveHealthCheck = false;
    this.update(init);
  }

  /**
   * Applies endpoint attributes (weight, priority, locality, metadata, EDS health, health check config). Returns
   * whether anything that affects load balancing changed.
   */
  update(init: HostInit): boolean {
    let changed = false;
    const weight = init.weight ?? 1;
    if (weight !== this.weight) {
      this.weight = weight;
      changed = true;
    }
    const priority = init.priority ?? 0;
    if (priority !== this.priority) {
      this.priority = priority;
      changed = true;
    }
    const loc = init.locality ?? { region: '', zone: '', subZone: '' };
    const lk = localityKey(loc);
    if (lk !== this.localityKey) {
      this.locality = { region: loc.region, zone: loc.zone, subZone: loc.subZone };
      this.localityKey = lk;
      changed = true;
    }
    if (init.hostname !== undefined) this.hostname = init.hostname;
    this.metadata = init.metadata;
    this.localityMetadata = init.localityMetadata;
    const lb = init.metadata?.filterMetadata['envoy.lb'];
    const canary = lb?.['canary'] === true;
    const hashKey = typeof lb?.['hash_key'] === 'string' ? (lb['hash_key'] as string) : '';
    if (canary !== this.canary || hashKey !== this.hashKey) changed = true;
    this.canary = canary;
    this.hashKey = hashKey;
    const hc = init.healthCheck;
    this.healthCheckAddress = hc?.address || this.address;
    this.healthCheckPort = hc?.port || this.port;
    this.healthCheckHostname = hc?.hostname ?? '';
    this.disableActiveHealthCheck = hc?.disabled ?? false;
    if (this.setEdsHealth(init.edsHealth ?? HealthStatus.UNKNOWN)) changed = true;
    return changed;
  }

  /** Sets the EDS health flags from an EDS health status; returns whether the coarse health changed. */
  setEdsHealth(status: HealthStatus): boolean {
    const before = this.flags & EDS_FLAGS;
    this.edsHealth = status;
    this.flags &= ~EDS_FLAGS;
    switch (status) {
      case HealthStatus.UNHEALTHY:
      case HealthStatus.TIMEOUT:
        this.flags |= HealthFlag.FAILED_EDS_HEALTH;
        break;
      case HealthStatus.DRAINING:
        this.flags |= HealthFlag.EDS_STATUS_DRAINING;
        break;
      case HealthStatus.DEGRADED:
        this.flags |= HealthFlag.DEGRADED_EDS_HEALTH;
        break;
      default:
        break;
    }
    return before !== (this.flags & EDS_FLAGS);
  }

  has(flag: number): boolean {
    return (this.flags & flag) !== 0;
  }

  set(flag: number): void {
    this.flags |= flag;
  }

  clear(flag: number): void {
    this.flags &= ~flag;
  }

  coarseHealth(): Health {
    if ((this.flags & UNHEALTHY_FLAGS) !== 0) return Health.Unhealthy;
    if ((this.flags & DEGRADED_FLAGS) !== 0) return Health.Degraded;
    return Health.Healthy;
  }

  get healthy(): boolean {
    return (this.flags & (UNHEALTHY_FLAGS | DEGRADED_FLAGS)) === 0;
  }

  /** Ejected by outlier detection. */
  get ejected(): boolean {
    return (this.flags & HealthFlag.FAILED_OUTLIER_CHECK) !== 0;
  }

  get excluded(): boolean {
    return (this.flags & EXCLUDED_FLAGS) !== 0;
  }

  /** Envoy's `HostUtility::healthFlagsToString`: `healthy`, or the set flags as `/failed_active_hc/...`. */
  healthFlagsString(): string {
    let s = '';
    for (const [f, name] of FLAG_NAMES) if (this.flags & f) s += name;
    return s || 'healthy';
  }
}

/** The hosts of one priority level, partitioned by health and locality. */
export class HostSet {
  hosts: Host[] = [];
  healthy: Host[] = [];
  degraded: Host[] = [];
  excluded: Host[] = [];
  /** Localities of this priority in Envoy's order (lexicographic region/zone/sub_zone). */
  localities: Locality[] = [];
  hostsPerLocality: Host[][] = [];
  healthyPerLocality: Host[][] = [];
  degradedPerLocality: Host[][] = [];
  excludedPerLocality: Host[][] = [];
  /** The weight EDS gave each locality (0 when not given), aligned with `localities`. */
  localityWeights: number[] = [];
  /** Percent (Envoy's default 140 = factor 1.4). */
  overprovisioningFactor = 140;
  weightedPriorityHealth = false;

  constructor(readonly priority: number) {}

  /** Recomputes the partitions from `hosts` and the locality weights map. */
  partition(localityWeight: ReadonlyMap<string, number>): void {
    const healthy: Host[] = [];
    const degraded: Host[] = [];
    const excluded: Host[] = [];
    const byLocality = new Map<string, Host[]>();
    for (const h of this.hosts) {
      const ch = h.coarseHealth();
      if (ch === Health.Healthy) healthy.push(h);
      else if (ch === Health.Degraded) degraded.push(h);
      if (h.excluded) excluded.push(h);
      const list = byLocality.get(h.localityKey);
      if (list) list.push(h);
      else byLocality.set(h.localityKey, [h]);
    }
    this.healthy = healthy;
    this.degraded = degraded;
    this.excluded = excluded;
    const keys = [...byLocality.keys()].sort(compareLocalityKeys);
    this.localities = keys.map((k) => byLocality.get(k)![0]!.locality);
    this.hostsPerLocality = keys.map((k) => byLocality.get(k)!);
    this.healthyPerLocality = this.hostsPerLocality.map((l) => l.filter((h) => h.coarseHealth() === Health.Healthy));
    this.degradedPerLocality = this.hostsPerLocality.map((l) => l.filter((h) => h.coarseHealth() === Health.Degraded));
    this.excludedPerLocality = this.hostsPerLocality.map((l) => l.filter((h) => h.excluded));
    this.localityWeights = keys.map((k) => localityWeight.get(k) ?? 0);
  }
}

/** Envoy's LocalityLess: region, then zone, then sub_zone. */
function compareLocalityKeys(a: string, b: string): number {
  const pa = a.split('\0');
  const pb = b.split('\0');
  for (let i = 0; i < 3; i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
