/**
 * Load balancer interface and the priority / panic / locality logic every Envoy load balancer shares
 * (source/extensions/load_balancing_policies/common/load_balancer_impl.cc, locality_wrr.cc).
 *
 *   const host = cluster.lb.choose({ hash, previousHosts, attempt });   // undefined → no healthy upstream (503 UH)
 *
 * Priority levels: each priority's health is (healthy hosts / non-excluded hosts) × overprovisioning factor (1.4 by
 * default, from the ClusterLoadAssignment policy) as an integer percent capped at 100 (by host weight with
 * weighted_priority_health); degraded hosts form a second availability. The 100% of traffic is handed out from
 * P0 down in proportion to availability normalized to 100 ("priority load"); leftover rounding goes to the first
 * available priority. A pick chooses its priority with `hash % 100 + 1` (a random number for ROUND_ROBIN,
 * LEAST_REQUEST and RANDOM; the request hash for RING_HASH and MAGLEV).
 *
 * Panic: unless the normalized total availability is 100%, a priority whose healthy + degraded percentage is below
 * healthy_panic_threshold (default 50%) is in panic and routes to all its hosts, whatever their health. When every
 * priority is in panic, load is split by host count. A threshold of 0 disables panic (no healthy host → no host).
 *
 * Locality weighted load balancing (common_lb_config.locality_weighted_lb_config): within the chosen priority, a
 * locality is picked by an EDF schedule over effective locality weights (EDS locality weight × min(1, 1.4 ×
 * locality availability)), then a host within it by the policy.
 *
 * Retries with the previous_hosts predicate: when `previousHosts` is given on a retry (`attempt` > 1), a host in it
 * is re-picked up to `hostSelectionRetries` (default 1) more times; the last pick is used if all were rejected.
 */
import type { Clock } from '../cluster/clock.js';
import type { Host, HostSet } from '../cluster/host.js';
import type { RandomFn } from '../cluster/random.js';
import type { ClusterStats } from '../cluster/stats.js';
import { EdfScheduler } from './edf.js';

/** What the request path knows when it asks for a host. */
export interface LbContext {
  /**
   * The request's consistent hash (route hash policies) for RING_HASH / MAGLEV: an unsigned 64-bit value. A bigint
   * is exact; a number must be a non-negative integer (precision ends at 2^53). Without it a random value is used.
   */
  hash?: bigint | number;
  /** Hosts already tried by earlier attempts (retry_host_predicate previous_hosts). */
  previousHosts?: readonly Host[];
  /**
   * The request's attempt number (1 = first try). The previous-hosts predicate applies to retries only (Envoy's
   * is_retry); when omitted, `previousHosts` alone marks a retry.
   */
  attempt?: number;
  /** Route retry policy host_selection_retry_max_attempts (default 1). */
  hostSelectionRetries?: number;
  /** ORIGINAL_DST clusters: the destination, `ip:port` or `[ipv6]:port`. */
  originalDst?: string;
}

export interface LoadBalancer {
  /** A host for one request, or undefined when there is none to use. */
  choose(ctx?: LbContext): Host | undefined;
  /** Recomputes after a change in hosts or their health (called by the cluster). */
  refresh(): void;
}

/** The cluster state a load balancer reads. */
export interface LbEnv {
  readonly name: string;
  /** One host set per priority, at least one. */
  readonly hostSets: readonly HostSet[];
  readonly stats: ClusterStats;
  readonly random: RandomFn;
  readonly clock: Clock;
}

export interface CommonLbSettings {
  /** healthy_panic_threshold, 0-100 (default 50). */
  panicThreshold: number;
  /** locality_weighted_lb_config is set. */
  localityWeighted: boolean;
  /** zone_aware_lb_config.fail_traffic_on_panic: in panic, fail instead of using all hosts. */
  failTrafficOnPanic: boolean;
}

export const enum SourceType {
  All = 0,
  Healthy = 1,
  Degraded = 2,
  LocalityHealthy = 3,
  LocalityDegraded = 4,
}

/** A list of hosts a pick draws from, with the policy's per-source state (round robin index, EDF schedule). */
export class HostSource {
  hosts: Host[] = [];
  rrIndex: number;
  edf: EdfScheduler<Host> | undefined = undefined;
  /** Use the weighted (EDF) pick; decided at refresh. */
  weighted = false;
  constructor(
    readonly priority: number,
    readonly type: SourceType,
    readonly locality: number,
    seed: number,
  ) {
    this.rrIndex = seed;
  }
}

/** Per-priority locality schedules (Envoy's LocalityWrr). */
class LocalityWrr {
  healthy: EdfScheduler<{ index: number; weight: number }> | undefined;
  degraded: EdfScheduler<{ index: number; weight: number }> | undefined;

  constructor(hs: HostSet, seed: number) {
    this.healthy = LocalityWrr.build(hs, hs.healthyPerLocality, hs.healthy.length, seed);
    this.degraded = LocalityWrr.build(hs, hs.degradedPerLocality, hs.degraded.length, seed);
  }

  private static build(hs: HostSet, eligible: Host[][], eligibleCount: number, seed: number) {
    if (hs.localityWeights.length === 0 || eligibleCount === 0) return undefined;
    const entries: Array<{ index: number; weight: number }> = [];
    for (let i = 0; i < hs.hostsPerLocality.length; i++) {
      const hostCount = hs.hostsPerLocality[i]!.length - (hs.excludedPerLocality[i]?.length ?? 0);
      if (hostCount === 0) continue;
      const ratio = eligible[i]!.length / hostCount;
      const w = hs.localityWeights[i]! * Math.min(1, (hs.overprovisioningFactor / 100) * ratio);
      if (w > 0) entries.push({ index: i, weight: w });
    }
    if (entries.length === 0) return undefined;
    return EdfScheduler.createWithPicks(entries, (e) => e.weight, seed);
  }
}

/** Priority loads, panic state and locality schedules, recomputed on every refresh. */
export abstract class LoadBalancerBase implements LoadBalancer {
  protected health: number[] = [];
  protected degradedAvail: number[] = [];
  /** Percent of traffic per priority, to healthy hosts and to degraded hosts; together they sum to 100. */
  healthyLoad: number[] = [];
  degradedLoad: number[] = [];
  /** Per-priority panic flags. */
  panic: boolean[] = [];
  protected localityWrr: Array<LocalityWrr | undefined> = [];

  constructor(
    protected readonly env: LbEnv,
    protected readonly settings: CommonLbSettings,
  ) {}

  abstract choose(ctx?: LbContext): Host | undefined;

  refresh(): void {
    this.recalculateLoads();
    this.localityWrr = this.env.hostSets.map((hs) => (this.settings.localityWeighted ? new LocalityWrr(hs, this.env.random()) : undefined));
  }

  private recalculateLoads(): void {
    const sets = this.env.hostSets;
    const n = sets.length;
    const health = new Array<number>(n).fill(0);
    const degraded = new Array<number>(n).fill(0);
    for (let p = 0; p < n; p++) {
      const hs = sets[p]!;
      const hostCount = hs.hosts.length - hs.excluded.length;
      if (hostCount <= 0) continue;
      let healthyW: number;
      let degradedW: number;
      let totalW: number;
      if (hs.weightedPriorityHealth) {
        healthyW = sumWeights(hs.healthy);
        degradedW = sumWeights(hs.degraded);
        totalW = sumWeights(hs.hosts) - sumWeights(hs.excluded);
      } else {
        healthyW = hs.healthy.length;
        degradedW = hs.degraded.length;
        totalW = hostCount;
      }
      if (totalW <= 0) continue;
      health[p] = Math.min(100, Math.floor((hs.overprovisioningFactor * healthyW) / totalW));
      degraded[p] = Math.min(100, Math.floor((hs.overprovisioningFactor * degradedW) / totalW));
    }
    this.health = health;
    this.degradedAvail = degraded;
    const healthyLoad = new Array<number>(n).fill(0);
    const degradedLoad = new Array<number>(n).fill(0);
    this.healthyLoad = healthyLoad;
    this.degradedLoad = degradedLoad;
    const total = Math.min(100, sum(health) + sum(degraded));
    if (total > 0) {
      const [firstHealthy, left] = distributeLoad(healthyLoad, health, 100, total);
      const [firstDegraded, rest] = distributeLoad(degradedLoad, degraded, left, total);
      if (rest !== 0) {
        if (firstHealthy !== -1) healthyLoad[firstHealthy]! += rest;
        else degradedLoad[firstDegraded]! += rest;
      }
    }
    // Panic.
    const threshold = Math.min(100, this.settings.panicThreshold);
    this.panic = new Array<boolean>(n).fill(false);
    if (threshold === 0 && total === 0) {
      healthyLoad[0] = 100;
      return;
    }
    let totalPanic = true;
    for (let p = 0; p < n; p++) {
      this.panic[p] = total === 100 ? false : inPanic(sets[p]!, threshold);
      totalPanic = totalPanic && this.panic[p]!;
    }
    if (totalPanic) {
      // Every priority in panic: split by host count regardless of health.
      let hostsTotal = 0;
      for (const hs of sets) hostsTotal += hs.hosts.length;
      healthyLoad.fill(0);
      degradedLoad.fill(0);
      if (hostsTotal === 0) {
        healthyLoad[0] = 100;
        return;
      }
      let left = 100;
      let firstNonEmpty = -1;
      for (let p = 0; p < n; p++) {
        const count = sets[p]!.hosts.length;
        if (firstNonEmpty === -1 && count !== 0) firstNonEmpty = p;
        const load = Math.floor((100 * count) / hostsTotal);
        healthyLoad[p] = load;
        left -= load;
      }
      healthyLoad[firstNonEmpty]! += left;
    }
  }

  /**
   * Priority and availability for `h` in [1, 100]: the priority index times 2, plus 1 when the pick targets
   * degraded hosts (no allocation on the request path).
   */
  protected choosePriority(h: number): number {
    let acc = 0;
    const hl = this.healthyLoad;
    for (let p = 0; p < hl.length; p++) {
      acc += hl[p]!;
      if (h <= acc) return p * 2;
    }
    const dl = this.degradedLoad;
    for (let p = 0; p < dl.length; p++) {
      acc += dl[p]!;
      if (h <= acc) return p * 2 + 1;
    }
    return 0;
  }

  /** A locality index of `priority` from the locality schedule, or -1. */
  protected chooseLocality(priority: number, degraded: boolean): number {
    const wrr = this.localityWrr[priority];
    if (!wrr) return -1;
    const sched = degraded ? wrr.degraded : wrr.healthy;
    if (!sched) return -1;
    return sched.pickAndAdd()!.index;
  }
}

/** Envoy's distributeLoad: as much load as possible to the highest priorities, by availability. */
function distributeLoad(load: number[], avail: number[], totalLoad: number, normalizedTotal: number): [number, number] {
  let first = -1;
  for (let i = 0; i < avail.length; i++) {
    if (first < 0 && avail[i]! > 0) first = i;
    load[i] = Math.min(totalLoad, Math.floor((avail[i]! * 100) / normalizedTotal));
    totalLoad -= load[i]!;
  }
  return [first, totalLoad];
}

function inPanic(hs: HostSet, threshold: number): boolean {
  const hostCount = hs.hosts.length - hs.excluded.length;
  const healthy = hostCount <= 0 ? 0 : (100 * hs.healthy.length) / hostCount;
  const degraded = hostCount <= 0 ? 0 : (100 * hs.degraded.length) / hostCount;
  return healthy + degraded < threshold;
}

function sum(a: number[]): number {
  let s = 0;
  for (const x of a) s += x;
  return s;
}

export function sumWeights(hosts: readonly Host[]): number {
  let s = 0;
  for (const h of hosts) s += h.weight;
  return s;
}

/** True when a retry should pick again instead of `host` (previous_hosts predicate). */
export function rejectHost(host: Host, ctx: LbContext | undefined): boolean {
  const prev = ctx?.previousHosts;
  if (!prev || prev.length === 0 || (ctx!.attempt ?? 2) <= 1) return false;
  for (let i = 0; i < prev.length; i++) if (prev[i] === host) return true;
  return false;
}

/** How many picks a request may make (1 + host selection retries when the predicate is active). */
export function maxSelectionAttempts(ctx: LbContext | undefined): number {
  const prev = ctx?.previousHosts;
  if (!prev || prev.length === 0 || (ctx!.attempt ?? 2) <= 1) return 1;
  return (ctx!.hostSelectionRetries ?? 1) + 1;
}
