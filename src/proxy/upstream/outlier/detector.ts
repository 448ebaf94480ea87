/**
 * Outlier detection (passive health checking), Envoy semantics (source/common/upstream/outlier_detection_impl.cc,
 * envoy.config.cluster.v3.OutlierDetection).
 *
 * The request path reports every result on the chosen host: `host.outlier.putResult(kind, status?)` (see
 * `OutlierResult` in cluster/host.ts). Detection types:
 * - consecutive_5xx (default 5, enforcing 100%): N 5xx responses in a row (without split_external_local_origin_errors
 *   local-origin failures count too: connect failure/reset as 503, timeout as 504);
 * - consecutive_gateway_failure (default 5, enforcing 0%): N 502/503/504 in a row;
 * - consecutive_local_origin_failure (default 5, enforcing 100%), with split_external_local_origin_errors only:
 *   N connection failures/timeouts/resets in a row;
 * - success rate (enforcing_success_rate default 100%; success_rate_minimum_hosts 5, success_rate_request_volume
 *   100, stdev factor 1.9) and failure percentage (threshold 85%, enforcing 0%; minimum hosts 5, request volume 50),
 *   evaluated every `interval` over the previous interval's results, external and local origin separately.
 * An ejection happens only if ejecting keeps the ejected share at or under max_ejection_percent (default 10%) of
 * the cluster's hosts (always_eject_one_host allows one anyway), and then only with the enforcing_* probability;
 * otherwise `outlier_detection.ejections_overflow` counts it. An ejected host (`host.ejected`, health flag
 * /failed_outlier_check) is unhealthy for load balancing. Every `interval` (default 10s) hosts ejected for at
 * least min(base_ejection_time (30s) × backoff, max_ejection_time (300s)) + jitter come back; the backoff grows by
 * one per ejection and shrinks by one for each interval a host stays in service. A successful active health check
 * unejects too (successful_active_health_check_uneject_host, default true).
 */
import type { OutlierDetection } from '../../../xds/gen/envoy/config/cluster/v3/outlier_detection_pb.js';
import type { Clock, Timer } from '../cluster/clock.js';
import { HealthFlag, type Host, type HostOutlier, type OutlierResult } from '../cluster/host.js';
import type { RandomFn } from '../cluster/random.js';
import type { OutlierStats } from '../cluster/stats.js';

export interface OutlierConfig {
  intervalMs: number;
  baseEjectionTimeMs: number;
  maxEjectionTimeMs: number;
  maxEjectionTimeJitterMs: number;
  maxEjectionPercent: number;
  alwaysEjectOneHost: boolean;
  consecutive5xx: number;
  consecutiveGatewayFailure: number;
  consecutiveLocalOriginFailure: number;
  enforcingConsecutive5xx: number;
  enforcingConsecutiveGatewayFailure: number;
  enforcingConsecutiveLocalOriginFailure: number;
  enforcingSuccessRate: number;
  enforcingLocalOriginSuccessRate: number;
  enforcingFailurePercentage: number;
  enforcingFailurePercentageLocalOrigin: number;
  successRateMinimumHosts: number;
  successRateRequestVolume: number;
  /** Divided by 1000 (1900 = 1.9). */
  successRateStdevFactor: number;
  failurePercentageThreshold: number;
  failurePercentageMinimumHosts: number;
  failurePercentageRequestVolume: number;
  splitExternalLocalOriginErrors: boolean;
  successfulActiveHealthCheckUnejectHost: boolean;
}

function ms(d: { seconds: bigint; nanos: number } | undefined, def: number): number {
  return d ? Number(d.seconds) * 1000 + Math.floor(d.nanos / 1e6) : def;
}

/** Envoy's DetectorConfig defaults applied to the proto. */
export function outlierConfig(o: OutlierDetection): OutlierConfig {
  const base = ms(o.baseEjectionTime, 30_000);
  return {
    intervalMs: ms(o.interval, 10_000),
    baseEjectionTimeMs: base,
    maxEjectionTimeMs: ms(o.maxEjectionTime, Math.max(300_000, base)),
    maxEjectionTimeJitterMs: ms(o.maxEjectionTimeJitter, 0),
    maxEjectionPercent: o.maxEjectionPercent ?? 10,
    alwaysEjectOneHost: o.alwaysEjectOneHost ?? false,
    consecutive5xx: o.consecutive5xx ?? 5,
    consecutiveGatewayFailure: o.consecutiveGatewayFailure ?? 5,
    consecutiveLocalOriginFailure: o.consecutiveLocalOriginFailure ?? 5,
    enforcingConsecutive5xx: o.enforcingConsecutive5xx ?? 100,
    enforcingConsecutiveGatewayFailure: o.enforcingConsecutiveGatewayFailure ?? 0,
    enforcingConsecutiveLocalOriginFailure: o.enforcingConsecutiveLocalOriginFailure ?? 100,
    enforcingSuccessRate: o.enforcingSuccessRate ?? 100,
    enforcingLocalOriginSuccessRate: o.enforcingLocalOriginSuccessRate ?? 100,
    enforcingFailurePercentage: o.enforcingFailurePercentage ?? 0,
    enforcingFailurePercentageLocalOrigin: o.enforcingFailurePercentageLocalOrigin ?? 0,
    successRateMinimumHosts: o.successRateMinimumHosts ?? 5,
    successRateRequestVolume: o.successRateRequestVolume ?? 100,
    successRateStdevFactor: o.successRateStdevFactor ?? 1900,
    failurePercentageThreshold: o.failurePercentageThreshold ?? 85,
    failurePercentageMinimumHosts: o.failurePercentageMinimumHosts ?? 5,
    failurePercentageRequestVolume: o.failurePercentageRequestVolume ?? 50,
    splitExternalLocalOriginErrors: o.splitExternalLocalOriginErrors,
    successfulActiveHealthCheckUnejectHost: o.successfulActiveHealthCheckUnejectHost ?? true,
  };
}

const enum EjectionType {
  Consecutive5xx,
  ConsecutiveGatewayFailure,
  ConsecutiveLocalOriginFailure,
  SuccessRate,
  SuccessRateLocalOrigin,
  FailurePercentage,
  FailurePercentageLocalOrigin,
}

/** Two-bucket success-rate accumulator: the current interval is written, the previous one is read. */
class SuccessRateMonitor {
  curSuccess = 0;
  curTotal = 0;
  prevSuccess = 0;
  prevTotal = 0;
  /** Last computed success rate, -1 when none. */
  rate = -1;

  swap(): void {
    this.prevSuccess = this.curSuccess;
    this.prevTotal = this.curTotal;
    this.curSuccess = 0;
    this.curTotal = 0;
  }
}

export class HostOutlierMonitor implements HostOutlier {
  consecutive5xx = 0;
  consecutiveGatewayFailure = 0;
  consecutiveLocalOriginFailure = 0;
  numEjections = 0;
  ejectTimeBackoff = 0;
  jitterMs = 0;
  lastEjectionTime: number | undefined;
  lastUnejectionTime: number | undefined;
  readonly external = new SuccessRateMonitor();
  readonly local = new SuccessRateMonitor();

  constructor(
    private readonly detector: OutlierDetector,
    readonly host: Host,
  ) {}

  get successRate(): number {
    return this.external.rate;
  }

  get localOriginSuccessRate(): number {
    return this.local.rate;
  }

  putResult(kind: OutlierResult, status?: number): void {
    const split = this.detector.config.splitExternalLocalOriginErrors;
    switch (kind) {
      case '5xx':
        this.putHttpResponseCode(status ?? 500);
        return;
      case 'gateway':
        this.putHttpResponseCode(status ?? 503);
        return;
      case 'success':
        if (split && status === undefined) {
          // A completed non-HTTP transaction: a success for both origins.
          this.putHttpResponseCode(200);
          this.localOriginNoFailure();
        } else this.putHttpResponseCode(status ?? 200);
        return;
      case 'local-origin-failure':
        if (split) this.localOriginFailure();
        else this.putHttpResponseCode(status ?? 503);
        return;
      case 'local-origin-success':
        if (split) this.localOriginNoFailure();
        else if (status !== undefined) this.putHttpResponseCode(status);
        return;
    }
  }

  private putHttpResponseCode(code: number): void {
    this.external.curTotal++;
    const d = this.detector;
    if (code >= 500 && code < 600) {
      if (code === 502 || code === 503 || code === 504) {
        if (++this.consecutiveGatewayFailure === d.config.consecutiveGatewayFailure) d.onConsecutiveError(this, EjectionType.ConsecutiveGatewayFailure);
      } else {
        this.consecutiveGatewayFailure = 0;
      }
      if (++this.consecutive5xx === d.config.consecutive5xx) d.onConsecutiveError(this, EjectionType.Consecutive5xx);
    } else {
      this.external.curSuccess++;
      this.consecutive5xx = 0;
      this.consecutiveGatewayFailure = 0;
    }
  }

  private localOriginFailure(): void {
    this.local.curTotal++;
    if (++this.consecutiveLocalOriginFailure === this.detector.config.consecutiveLocalOriginFailure) {
      this.detector.onConsecutiveError(this, EjectionType.ConsecutiveLocalOriginFailure);
    }
  }

  private localOriginNoFailure(): void {
    this.local.curTotal++;
    this.local.curSuccess++;
    this.consecutiveLocalOriginFailure = 0;
  }
}

export class OutlierDetector {
  private readonly monitors = new Map<Host, HostOutlierMonitor>();
  private timer: Timer | undefined;
  private stopped = true;
  /** Mean and threshold of the last success-rate sweep (external, local), -1 when not computed. */
  successRateAverage = -1;
  successRateEjectionThreshold = -1;
  localOriginSuccessRateAverage = -1;
  localOriginSuccessRateEjectionThreshold = -1;

  constructor(
    readonly config: OutlierConfig,
    private readonly clock: Clock,
    private readonly random: RandomFn,
    private readonly stats: OutlierStats,
    /** Called after a host is ejected or unejected, so the cluster recomputes its host sets. */
    private readonly onChange: (host: Host) => void,
  ) {}

  addHost(host: Host): void {
    if (this.monitors.has(host)) return;
    const m = new HostOutlierMonitor(this, host);
    this.monitors.set(host, m);
    host.outlier = m;
  }

  removeHost(host: Host): void {
    if (!this.monitors.delete(host)) return;
    if (host.has(HealthFlag.FAILED_OUTLIER_CHECK)) this.stats.ejections_active--;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    this.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => this.onInterval(), this.config.intervalMs);
  }

  /** A successful active health check on an ejected host unejects it (unless disabled). */
  onHealthCheckSuccess(host: Host): void {
    if (!this.config.successfulActiveHealthCheckUnejectHost) return;
    if (!host.has(HealthFlag.FAILED_ACTIVE_HC) && host.has(HealthFlag.FAILED_OUTLIER_CHECK)) this.uneject(host);
  }

  onConsecutiveError(m: HostOutlierMonitor, type: EjectionType): void {
    if (!this.monitors.has(m.host) || m.host.has(HealthFlag.FAILED_OUTLIER_CHECK)) return;
    this.detected(type);
    this.eject(m, type);
    if (type === EjectionType.Consecutive5xx) {
      this.stats.ejections_consecutive_5xx++;
      m.consecutive5xx = 0;
    } else if (type === EjectionType.ConsecutiveGatewayFailure) m.consecutiveGatewayFailure = 0;
    else if (type === EjectionType.ConsecutiveLocalOriginFailure) m.consecutiveLocalOriginFailure = 0;
  }

  private enforced(type: EjectionType): boolean {
    const c = this.config;
    let pct: number;
    switch (type) {
      case EjectionType.Consecutive5xx:
        pct = c.enforcingConsecutive5xx;
        break;
      case EjectionType.ConsecutiveGatewayFailure:
        pct = c.enforcingConsecutiveGatewayFailure;
        break;
      case EjectionType.ConsecutiveLocalOriginFailure:
        pct = c.enforcingConsecutiveLocalOriginFailure;
        break;
      case EjectionType.SuccessRate:
        pct = c.enforcingSuccessRate;
        break;
      case EjectionType.SuccessRateLocalOrigin:
        pct = c.enforcingLocalOriginSuccessRate;
        break;
      case EjectionType.FailurePercentage:
        pct = c.enforcingFailurePercentage;
        break;
      case EjectionType.FailurePercentageLocalOrigin:
        pct = c.enforcingFailurePercentageLocalOrigin;
        break;
    }
    // Runtime featureEnabled(key, percent): random % 100 < percent.
    return this.random() % 100 < pct;
  }

  private detected(type: EjectionType): void {
    const s = this.stats;
    switch (type) {
      case EjectionType.Consecutive5xx:
        s.ejections_detected_consecutive_5xx++;
        break;
      case EjectionType.ConsecutiveGatewayFailure:
        s.ejections_detected_consecutive_gateway_failure++;
        break;
      case EjectionType.ConsecutiveLocalOriginFailure:
        s.ejections_detected_consecutive_local_origin_failure++;
        break;
      case EjectionType.SuccessRate:
        s.ejections_detected_success_rate++;
        break;
      case EjectionType.SuccessRateLocalOrigin:
        s.ejections_detected_local_origin_success_rate++;
        break;
      case EjectionType.FailurePercentage:
        s.ejections_detected_failure_percentage++;
        break;
      case EjectionType.FailurePercentageLocalOrigin:
        s.ejections_detected_local_origin_failure_percentage++;
        break;
    }
  }

  private enforcedStat(type: EjectionType): void {
    const s = this.stats;
    s.ejections_enforced_total++;
    switch (type) {
      case EjectionType.Consecutive5xx:
        s.ejections_enforced_consecutive_5xx++;
        break;
      case EjectionType.ConsecutiveGatewayFailure:
        s.ejections_enforced_consecutive_gateway_failure++;
        break;
      case EjectionType.ConsecutiveLocalOriginFailure:
        s.ejections_enforced_consecutive_local_origin_failure++;
        break;
      case EjectionType.SuccessRate:
        s.ejections_enforced_success_rate++;
        break;
      case EjectionType.SuccessRateLocalOrigin:
        s.ejections_enforced_local_origin_success_rate++;
        break;
      case EjectionType.FailurePercentage:
        s.ejections_enforced_failure_percentage++;
        break;
      case EjectionType.FailurePercentageLocalOrigin:
        s.ejections_enforced_local_origin_failure_percentage++;
        break;
    }
  }

  private eject(m: HostOutlierMonitor, type: EjectionType): void {
    const c = this.config;
    const maxPercent = Math.min(100, c.maxEjectionPercent);
    const ejectedPercent = (100 * (this.stats.ejections_active + 1)) / this.monitors.size;
    let should = ejectedPercent <= maxPercent;
    if (c.alwaysEjectOneHost) should = this.stats.ejections_active === 0 || should;
    if (!should) {
      this.stats.ejections_overflow++;
      return;
    }
    if (type === EjectionType.Consecutive5xx || type === EjectionType.SuccessRate) this.stats.ejections_total++;
    if (!this.enforced(type)) return;
    this.stats.ejections_active++;
    this.enforcedStat(type);
    m.host.set(HealthFlag.FAILED_OUTLIER_CHECK);
    m.numEjections++;
    m.lastEjectionTime = this.clock.now();
    m.jitterMs = this.random() % (c.maxEjectionTimeJitterMs + 1);
    if (m.ejectTimeBackoff * c.baseEjectionTimeMs < c.maxEjectionTimeMs + c.baseEjectionTimeMs) m.ejectTimeBackoff++;
    this.onChange(m.host);
  }

  private uneject(host: Host): void {
    const m = this.monitors.get(host);
    if (!m) return;
    this.stats.ejections_active--;
    host.clear(HealthFlag.FAILED_OUTLIER_CHECK);
    m.consecutive5xx = 0;
    m.consecutiveGatewayFailure = 0;
    m.consecutiveLocalOriginFailure = 0;
    m.lastUnejectionTime = this.clock.now();
    this.onChange(host);
  }

  /** The interval sweep (exposed for tests; normally run by the timer). */
  onInterval(): void {
    const now = this.clock.now();
    const c = this.config;
    for (const [host, m] of this.monitors) {
      if (host.has(HealthFlag.FAILED_OUTLIER_CHECK) && m.lastEjectionTime !== undefined) {
        const ejectFor = Math.min(c.baseEjectionTimeMs * m.ejectTimeBackoff, c.maxEjectionTimeMs) + m.jitterMs;
        if (ejectFor <= now - m.lastEjectionTime) this.uneject(host);
      }
      m.external.swap();
      m.local.swap();
      m.external.rate = -1;
      m.local.rate = -1;
    }
    this.processSuccessRate(false);
    this.processSuccessRate(true);
    for (const [host, m] of this.monitors) {
      if (host.has(HealthFlag.FAILED_OUTLIER_CHECK)) continue;
      if (m.lastUnejectionTime !== undefined && now - m.lastUnejectionTime >= c.intervalMs && m.ejectTimeBackoff !== 0) m.ejectTimeBackoff--;
    }
    this.arm();
  }

  private processSuccessRate(local: boolean): void {
    const c = this.config;
    if (local) {
      this.localOriginSuccessRateAverage = -1;
      this.localOriginSuccessRateEjectionThreshold = -1;
    } else {
      this.successRateAverage = -1;
      this.successRateEjectionThreshold = -1;
    }
    if (this.monitors.size < c.successRateMinimumHosts && this.monitors.size < c.failurePercentageMinimumHosts) return;
    const srHosts: Array<[HostOutlierMonitor, number]> = [];
    const fpHosts: Array<[HostOutlierMonitor, number]> = [];
    let sum = 0;
    for (const [host, m] of this.monitors) {
      if (host.has(HealthFlag.FAILED_OUTLIER_CHECK)) continue;
      const mon = local ? m.local : m.external;
      if (mon.prevTotal === 0) continue;
      const rate = (mon.prevSuccess * 100) / mon.prevTotal;
      const volume = mon.prevTotal;
      if (volume >= Math.min(c.successRateRequestVolume, c.failurePercentageRequestVolume)) mon.rate = rate;
      if (volume >= c.successRateRequestVolume) {
        srHosts.push([m, rate]);
        sum += rate;
      }
      if (volume >= c.failurePercentageRequestVolume) fpHosts.push([m, rate]);
    }
    if (srHosts.length > 0 && srHosts.length >= c.successRateMinimumHosts) {
      const mean = sum / srHosts.length;
      let variance = 0;
      for (const [, r] of srHosts) variance += (r - mean) ** 2;
      variance /= srHosts.length;
      const threshold = mean - (c.successRateStdevFactor / 1000) * Math.sqrt(variance);
      if (local) {
        this.localOriginSuccessRateAverage = mean;
        this.localOriginSuccessRateEjectionThreshold = threshold;
      } else {
        this.successRateAverage = mean;
        this.successRateEjectionThreshold = threshold;
      }
      for (const [m, r] of srHosts) {
        if (r < threshold) {
          this.stats.ejections_success_rate++;
          const type = local ? EjectionType.SuccessRateLocalOrigin : EjectionType.SuccessRate;
          this.detected(type);
          if (!m.host.has(HealthFlag.FAILED_OUTLIER_CHECK)) this.eject(m, type);
        }
      }
    }
    if (fpHosts.length > 0 && fpHosts.length >= c.failurePercentageMinimumHosts) {
      for (const [m, r] of fpHosts) {
        if (100 - r >= c.failurePercentageThreshold) {
          const type = local ? EjectionType.FailurePercentageLocalOrigin : EjectionType.FailurePercentage;
          this.detected(type);
          if (!m.host.has(HealthFlag.FAILED_OUTLIER_CHECK)) this.eject(m, type);
        }
      }
    }
  }
}
