/**
 * ROUND_ROBIN, LEAST_REQUEST and RANDOM (Envoy's EdfLoadBalancerBase family: round_robin_lb.h,
 * least_request_lb.cc, random_lb.cc).
 *
 * Each pick chooses a priority (random), then a host source: all hosts of the priority in panic, a locality's
 * healthy/degraded hosts with locality weighted LB, else the priority's healthy (or degraded) hosts.
 * - ROUND_ROBIN: equal weights → strict rotation (each source keeps its index, starting at a random seed);
 *   differing weights → EDF schedule (weighted round robin).
 * - LEAST_REQUEST: equal weights → power of N choices: `choice_count` (default 2) random hosts, the one with the
 *   fewest active requests wins (ties keep the first); differing weights, or an explicit `active_request_bias` →
 *   EDF with weight / (active_requests + 1)^bias (bias default 1.0).
 * - RANDOM: a uniformly random host (weights are ignored, as in Envoy); the same random number picks the priority.
 * Slow start (slow_start_config, ROUND_ROBIN and LEAST_REQUEST): a host that became healthy less than
 * slow_start_window ago gets weight × max((time in window / window)^(1/aggression), min_weight_percent), and the
 * EDF schedule is used while any host is in its window.
 */
import type { Host } from '../cluster/host.js';
import { Health } from '../cluster/host.js';
import { EdfScheduler } from './edf.js';
import {
  HostSource,
  LoadBalancerBase,
  SourceType,
  maxSelectionAttempts,
  rejectHost,
  type CommonLbSettings,
  type LbContext,
  type LbEnv,
} from './load-balancer.js';

export interface SlowStartSettings {
  windowMs: number;
  /** Default 1.0. */
  aggression: number;
  /** Fraction, default 0.1. */
  minWeight: number;
}

function weightsEqual(hosts: readonly Host[]): boolean {
  if (hosts.length <= 1) return true;
  const w = hosts[0]!.weight;
  for (let i = 1; i < hosts.length; i++) if (hosts[i]!.weight !== w) return false;
  return true;
}

export abstract class EdfLoadBalancerBase extends LoadBalancerBase {
  /** Fixed per load balancer: the rotation start and the EDF pre-picks. */
  protected readonly seed: number;
  private readonly sources = new Map<string, HostSource>();
  /** Per priority: [all, healthy, degraded, ...localityHealthy, ...localityDegraded]. */
  private perPriority: Array<{ all: HostSource; healthy: HostSource; degraded: HostSource; locHealthy: HostSource[]; locDegraded: HostSource[] }> = [];
  /** The only source when one priority takes all traffic without panic or locality weighting. */
  protected fixed: HostSource | undefined;
  private latestHostAddedTime: number;
  private readonly weightFn = (h: Host): number => this.hostWeight(h);

  constructor(env: LbEnv, settings: CommonLbSettings, protected readonly slowStart: SlowStartSettings | undefined) {
    super(env, settings);
    this.seed = env.random();
    this.latestHostAddedTime = env.clock.now();
  }

  override refresh(): void {
    super.refresh();
    const sets = this.env.hostSets;
    if (this.slowStart) for (const hs of sets) this.recalculateHostsInSlowStart(hs.hosts);
    this.perPriority = sets.map((hs, p) => ({
      all: this.source(p, SourceType.All, 0, hs.hosts),
      healthy: this.source(p, SourceType.Healthy, 0, hs.healthy),
      degraded: this.source(p, SourceType.Degraded, 0, hs.degraded),
      locHealthy: hs.healthyPerLocality.map((l, i) => this.source(p, SourceType.LocalityHealthy, i, l)),
      locDegraded: hs.degradedPerLocality.map((l, i) => this.source(p, SourceType.LocalityDegraded, i, l)),
    }));
    this.fixed = undefined;
    if (!this.settings.localityWeighted) {
      for (let p = 0; p < sets.length; p++) {
        if (this.healthyLoad[p] === 100 && !this.panic[p]) this.fixed = this.perPriority[p]!.healthy;
        else if (this.degradedLoad[p] === 100 && !this.panic[p]) this.fixed = this.perPriority[p]!.degraded;
      }
    }
  }

  private source(priority: number, type: SourceType, locality: number, hosts: Host[]): HostSource {
    const key = `${priority}/${type}/${locality}`;
    let s = this.sources.get(key);
    if (!s) {
      s = new HostSource(priority, type, locality, this.seed);
      this.sources.set(key, s);
    }
    s.hosts = hosts;
    s.edf = undefined;
    s.weighted = hosts.length > 1 && (this.alwaysWeighted() || !weightsEqual(hosts) || !this.noHostsInSlowStart());
    return s;
  }

  protected alwaysWeighted(): boolean {
    return false;
  }

  /** The weight used by the EDF schedule. */
  protected hostWeight(host: Host): number {
    return this.slowStartWeight(host, host.weight);
  }

  protected slowStartWeight(host: Host, weight: number): number {
    const ss = this.slowStart;
    if (!ss || this.noHostsInSlowStart()) return weight;
    if (host.lastHcPassTime === undefined || host.coarseHealth() !== Health.Healthy) return weight;
    const inState = this.env.clock.now() - host.lastHcPassTime;
    if (inState >= ss.windowMs) return weight;
    const timeFactor = Math.max(1, inState) / ss.windowMs;
    const factor = ss.aggression === 1 || timeFactor === 1 ? timeFactor : Math.pow(timeFactor, 1 / ss.aggression);
    return weight * Math.max(factor, ss.minWeight);
  }

  private recalculateHostsInSlowStart(hosts: readonly Host[]): void {
    const now = this.env.clock.now();
    for (const h of hosts) {
      if (h.coarseHealth() !== Health.Healthy) continue;
      const passTime = h.lastHcPassTime ?? now;
      if (h.lastHcPassTime === undefined) h.lastHcPassTime = now;
      if (passTime > this.latestHostAddedTime && now - passTime <= this.slowStart!.windowMs) this.latestHostAddedTime = passTime;
    }
  }

  protected noHostsInSlowStart(): boolean {
    if (!this.slowStart) return true;
    return this.env.clock.now() - this.latestHostAddedTime > this.slowStart.windowMs;
  }

  /** Envoy's hostSourceToUse for a pick whose priority is drawn with `hash`. */
  protected hostSource(hash: number): HostSource | undefined {
    const pd = this.choosePriority((hash % 100) + 1);
    const p = pd >> 1;
    const degraded = (pd & 1) === 1;
    const srcs = this.perPriority[p];
    if (!srcs) return undefined;
    if (this.panic[p]) {
      this.env.stats.lb_healthy_panic++;
      if (this.settings.failTrafficOnPanic) return undefined;
      return srcs.all;
    }
    if (this.settings.localityWeighted) {
      const loc = this.chooseLocality(p, degraded);
      if (loc >= 0) return degraded ? srcs.locDegraded[loc] : srcs.locHealthy[loc];
    }
    return degraded ? srcs.degraded : srcs.healthy;
  }

  choose(ctx?: LbContext): Host | undefined {
    const attempts = maxSelectionAttempts(ctx);
    let host: Host | undefined;
    for (let i = 0; i < attempts; i++) {
      host = this.chooseOnce();
      if (!host || !rejectHost(host, ctx)) return host;
    }
    return host;
  }

  protected chooseOnce(): Host | undefined {
    const src = this.fixed ?? this.hostSource(this.env.random());
    if (!src) return undefined;
    if (src.weighted) {
      if (!src.edf) src.edf = EdfScheduler.createWithPicks(src.hosts, this.weightFn, this.seed);
      return src.edf.pickAndAdd();
    }
    if (src.hosts.length === 0) return undefined;
    return this.unweightedPick(src);
  }

  protected abstract unweightedPick(src: HostSource): Host;
}

export class RoundRobinLb extends EdfLoadBalancerBase {
  protected unweightedPick(src: HostSource): Host {
    const hosts = src.hosts;
    return hosts[src.rrIndex++ % hosts.length]!;
  }
}

export interface LeastRequestSettings {
  /** choice_count, default 2. */
  choiceCount: number;
  /** active_request_bias when set explicitly (forces the weighted schedule); default behaviour uses 1.0. */
  activeRequestBias: number | undefined;
}

export class LeastRequestLb extends EdfLoadBalancerBase {
  private readonly bias: number;

  constructor(env: LbEnv, settings: CommonLbSettings, slowStart: SlowStartSettings | undefined, private readonly lr: LeastRequestSettings) {
    super(env, settings, slowStart);
    const b = lr.activeRequestBias;
    this.bias = b === undefined || b < 0 || Number.isNaN(b) ? 1.0 : b;
  }

  protected override alwaysWeighted(): boolean {
    return this.lr.activeRequestBias !== undefined;
  }

  protected override hostWeight(host: Host): number {
    let w = host.weight;
    const active = host.stats.rq_active + 1;
    if (this.bias === 1) w = w / active;
    else if (this.bias !== 0) w = w / Math.pow(active, this.bias);
    return this.slowStartWeight(host, w);
  }

  protected unweightedPick(src: HostSource): Host {
    const hosts = src.hosts;
    const n = hosts.length;
    const random = this.env.random;
    let candidate = hosts[random() % n]!;
    for (let i = 1; i < this.lr.choiceCount; i++) {
      const sampled = hosts[random() % n]!;
      if (sampled.stats.rq_active < candidate.stats.rq_active) candidate = sampled;
    }
    return candidate;
  }
}

export class RandomLb extends EdfLoadBalancerBase {
  protected override chooseOnce(): Host | undefined {
    const r = this.env.random();
    const src = this.fixed ?? this.hostSource(r);
    if (!src || src.hosts.length === 0) return undefined;
    return src.hosts[r % src.hosts.length];
  }

  protected unweightedPick(src: HostSource): Host {
    return src.hosts[this.env.random() % src.hosts.length]!;
  }
}
