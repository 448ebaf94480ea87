/**
 * Active health checking, Envoy semantics (source/extensions/health_checkers/common/health_checker_base_impl.cc):
 * one session per host, each running checks on its own timer.
 *
 * - The first check runs at start (after initial_jitter); the next one `interval` after the previous result, or
 *   `no_traffic_interval` (default 60s; `no_traffic_healthy_interval` once healthy) while the cluster has never had
 *   a connection; unhealthy_interval / unhealthy_edge_interval / healthy_edge_interval when configured; plus
 *   interval_jitter and interval_jitter_percent.
 * - A check that does not finish within `timeout` fails as a network timeout (flag /active_hc_timeout).
 * - A host becomes unhealthy (flag /failed_active_hc) after unhealthy_threshold consecutive network failures
 *   (connection refused/reset, timeout), or immediately on an active failure (an HTTP status outside
 *   expected_statuses and retriable_statuses, a gRPC status other than SERVING, a payload mismatch); statuses in
 *   retriable_statuses count towards the threshold like network failures.
 * - An unhealthy host becomes healthy after healthy_threshold consecutive successes — except for its very first
 *   check, which marks it healthy at once. New hosts start unhealthy (and, with
 *   ignore_new_hosts_until_first_hc, excluded until checked).
 * - HTTP responses with `x-envoy-degraded` mark the host degraded; `x-envoy-immediate-health-check-fail` on a
 *   failed check excludes it from load balancing calculations.
 * Stats: health_check.attempt / success / failure / network_failure / passive_failure / verify_cluster, gauges
 * healthy / degraded.
 */
import type { Clock, Timer } from '../cluster/clock.js';
import { HealthFlag, type Host } from '../cluster/host.js';
import type { RandomFn } from '../cluster/random.js';
import type { HealthCheckStats } from '../cluster/stats.js';

export const enum FailureType {
  Active = 0,
  Passive = 1,
  Network = 2,
  NetworkTimeout = 3,
}

export const enum Transition {
  Unchanged = 0,
  Changed = 1,
  ChangePending = 2,
}

export interface HealthCheckSettings {
  timeoutMs: number;
  intervalMs: number;
  initialJitterMs: number;
  intervalJitterMs: number;
  intervalJitterPercent: number;
  unhealthyThreshold: number;
  healthyThreshold: number;
  reuseConnection: boolean;
  noTrafficIntervalMs: number;
  noTrafficHealthyIntervalMs: number;
  unhealthyIntervalMs: number;
  unhealthyEdgeIntervalMs: number;
  healthyEdgeIntervalMs: number;
}

export interface HealthCheckEnv {
  readonly clusterName: string;
  readonly clock: Clock;
  readonly random: RandomFn;
  readonly stats: HealthCheckStats;
  /** The cluster has carried traffic (upstream_cx_total > 0): use the regular intervals. */
  hasTraffic(): boolean;
  /** Every check result; `transition` says whether the host's health changed. */
  onResult(host: Host, transition: Transition, healthy: boolean): void;
}

/** One check implementation (HTTP, TCP, gRPC) bound to a session. */
export interface Probe {
  /** Starts check number `gen`; report with `session.succeed(gen, ...)` / `session.fail(gen, ...)`. */
  check(gen: number): void;
  /** The running check timed out: abort it (its late result is ignored anyway). */
  timeout(): void;
  /** The session ends: close connections. */
  close(): void;
}

export type ProbeFactory = (session: HealthCheckSession) => Probe;

export class HealthCheckSession {
  private firstCheck = true;
  private numHealthy = 0;
  private numUnhealthy = 0;
  private intervalTimer: Timer | undefined;
  private timeoutTimer: Timer | undefined;
  private gen = 0;
  private inFlight = false;
  private closed = false;
  private readonly probe: Probe;

  constructor(
    readonly checker: HealthChecker,
    readonly host: Host,
    probeFactory: ProbeFactory,
  ) {
    if (!host.has(HealthFlag.FAILED_ACTIVE_HC)) checker.env.stats.healthy++;
    if (host.has(HealthFlag.DEGRADED_ACTIVE_HC)) checker.env.stats.degraded++;
    this.probe = probeFactory(this);
  }

  get settings(): HealthCheckSettings {
    return this.checker.settings;
  }

  start(): void {
    const s = this.checker.settings;
    if (s.initialJitterMs === 0) this.onInterval();
    else this.intervalTimer = this.checker.env.clock.setTimeout(() => this.onInterval(), this.checker.intervalWithJitter(0, s.initialJitterMs));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const { clock, stats } = this.checker.env;
    clock.clearTimeout(this.intervalTimer);
    clock.clearTimeout(this.timeoutTimer);
    if (!this.host.has(HealthFlag.FAILED_ACTIVE_HC)) stats.healthy--;
    if (this.host.has(HealthFlag.DEGRADED_ACTIVE_HC)) stats.degraded--;
    this.probe.close();
  }

  private onInterval(): void {
    if (this.closed) return;
    const { clock, stats } = this.checker.env;
    const gen = ++this.gen;
    this.inFlight = true;
    this.timeoutTimer = clock.setTimeout(() => this.onTimeout(gen), this.checker.settings.timeoutMs);
    stats.attempt++;
    this.probe.check(gen);
  }

  private onTimeout(gen: number): void {
    if (this.closed || gen !== this.gen || !this.inFlight) return;
    this.inFlight = false;
    this.probe.timeout();
    this.handleFailure(FailureType.NetworkTimeout, false);
  }

  /** A check passed (`degraded`: the host answered with x-envoy-degraded). */
  succeed(gen: number, degraded = false): void {
    if (this.closed || gen !== this.gen || !this.inFlight) return;
    this.inFlight = false;
    this.handleSuccess(degraded);
  }

  /** A check failed. `retriable`: an HTTP status in retriable_statuses (counts towards the threshold). */
  fail(gen: number, type: FailureType, retriable = false): void {
    if (this.closed || gen !== this.gen || !this.inFlight) return;
    this.inFlight = false;
    this.handleFailure(type, retriable);
  }

  /** The host answered with x-envoy-immediate-health-check-fail. */
  excludeImmediately(): void {
    this.host.set(HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL);
  }

  private handleSuccess(degraded: boolean): void {
    const host = this.host;
    const { stats, clock } = this.checker.env;
    this.numUnhealthy = 0;
    let changed = Transition.Unchanged;
    if (host.has(HealthFlag.FAILED_ACTIVE_HC)) {
      if (this.firstCheck || ++this.numHealthy === this.checker.settings.healthyThreshold) {
        host.clear(HealthFlag.ACTIVE_HC_TIMEOUT | HealthFlag.EXCLUDED_VIA_IMMEDIATE_HC_FAIL | HealthFlag.FAILED_ACTIVE_HC);
        stats.healthy++;
        changed = Transition.Changed;
      } else {
        changed = Transition.ChangePending;
      }
      host.lastHcPassTime = clock.now();
    }
    changed = this.clearPending(changed);
    if (degraded !== host.has(HealthFlag.DEGRADED_ACTIVE_HC)) {
      if (degraded) {
        host.set(HealthFlag.DEGRADED_ACTIVE_HC);
        stats.degraded++;
      } else {
        host.clear(HealthFlag.DEGRADED_ACTIVE_HC);
        stats.degraded--;
      }
      if (changed === Transition.Unchanged) changed = Transition.Changed;
    }
    stats.success++;
    this.firstCheck = false;
    this.checker.env.onResult(host, changed, true);
    this.rearm(true, changed);
  }

  private handleFailure(type: FailureType, retriable: boolean): void {
    const host = this.host;
    const { stats } = this.checker.env;
    this.numHealthy = 0;
    let changed = Transition.Unchanged;
    const network = type === FailureType.Network || type === FailureType.NetworkTimeout;
    if (!host.has(HealthFlag.FAILED_ACTIVE_HC)) {
      if ((!network && !retriable) || ++this.numUnhealthy === this.checker.settings.unhealthyThreshold) {
        host.set(HealthFlag.FAILED_ACTIVE_HC);
        stats.healthy--;
        changed = Transition.Changed;
      } else {
        changed = Transition.ChangePending;
      }
    }
    if (type === FailureType.NetworkTimeout && host.has(HealthFlag.FAILED_ACTIVE_HC)) host.set(HealthFlag.ACTIVE_HC_TIMEOUT);
    else host.clear(HealthFlag.ACTIVE_HC_TIMEOUT);
    changed = this.clearPending(changed);
    stats.failure++;
    if (network) stats.network_failure++;
    else if (type === FailureType.Passive) stats.passive_failure++;
    this.firstCheck = false;
    this.checker.env.onResult(host, changed, false);
    this.rearm(false, changed);
  }

  private clearPending(changed: Transition): Transition {
    if (this.host.has(HealthFlag.PENDING_ACTIVE_HC)) {
      this.host.clear(HealthFlag.PENDING_ACTIVE_HC);
      return Transition.Changed;
    }
    return changed;
  }

  private rearm(healthy: boolean, changed: Transition): void {
    if (this.closed) return;
    const { clock } = this.checker.env;
    clock.clearTimeout(this.timeoutTimer);
    this.timeoutTimer = undefined;
    clock.clearTimeout(this.intervalTimer);
    this.intervalTimer = clock.setTimeout(() => this.onInterval(), this.checker.interval(healthy, changed));
  }
}

export class HealthChecker {
  private readonly sessions = new Map<Host, HealthCheckSession>();
  private started = false;

  constructor(
    readonly settings: HealthCheckSettings,
    private readonly probeFactory: ProbeFactory,
    readonly env: HealthCheckEnv,
  ) {}

  /** Starts checking every host added so far and those added later. */
  start(hosts: Iterable<Host>): void {
    this.started = true;
    for (const h of hosts) this.addHost(h);
  }

  stop(): void {
    this.started = false;
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }

  addHost(host: Host): void {
    if (!this.started || host.disableActiveHealthCheck || this.sessions.has(host)) return;
    const s = new HealthCheckSession(this, host, this.probeFactory);
    this.sessions.set(host, s);
    s.start();
  }

  removeHost(host: Host): void {
    const s = this.sessions.get(host);
    if (!s) return;
    this.sessions.delete(host);
    s.close();
  }

  has(host: Host): boolean {
    return this.sessions.has(host);
  }

  /** The delay before the next check, Envoy's HealthCheckerImplBase::interval. */
  interval(healthy: boolean, changed: Transition): number {
    const s = this.settings;
    let base: number;
    if (this.env.hasTraffic()) {
      if (!healthy) base = changed === Transition.ChangePending ? s.unhealthyEdgeIntervalMs : s.unhealthyIntervalMs;
      else base = changed === Transition.ChangePending ? s.healthyEdgeIntervalMs : s.intervalMs;
    } else {
      base = healthy && changed !== Transition.ChangePending ? s.noTrafficHealthyIntervalMs : s.noTrafficIntervalMs;
    }
    return this.intervalWithJitter(base, s.intervalJitterMs);
  }

  intervalWithJitter(base: number, jitterMs: number): number {
    const percentMod = Math.floor((this.settings.intervalJitterPercent * base) / 100);
    if (percentMod > 0) base += this.env.random() % percentMod;
    if (jitterMs > 0) base += this.env.random() % jitterMs;
    return Math.max(1, base);
  }
}
