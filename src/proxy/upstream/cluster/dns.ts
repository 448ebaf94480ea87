/**
 * DNS for STRICT_DNS and LOGICAL_DNS clusters (Envoy's strict_dns_cluster.cc, logical_dns_cluster.cc).
 *
 * Each endpoint of the cluster's load_assignment whose address is a name is a resolve target with its own timer:
 * - STRICT_DNS: every address returned becomes a host (same port, the endpoint's locality, priority, weight and
 *   metadata); hosts keep their identity across refreshes (same address = same Host).
 * - LOGICAL_DNS: one logical host using the first address returned; its address follows DNS.
 * The next resolution happens after dns_refresh_rate (default 5s), or after the smallest TTL of the answers with
 * respect_dns_ttl. A failed resolution keeps the previous hosts and retries with jittered exponential backoff from
 * dns_failure_refresh_rate (base default dns_refresh_rate, max default 10 × base). A name that does not exist is
 * an empty (successful) answer.
 *
 * The default resolver asks DNS (node:dns resolve4/resolve6, with TTLs) and falls back to the system resolver
 * (getaddrinfo: /etc/hosts, so `localhost` works) when DNS has no answer. dns_lookup_family: V4_ONLY, V6_ONLY,
 * AUTO (IPv6, else IPv4), V4_PREFERRED (IPv4, else IPv6), ALL (both).
 */
import { promises as dnsp } from 'node:dns';
import { isIP } from 'node:net';
import type { Clock, Timer } from './clock.js';
import type { HostInit } from './host.js';
import type { RandomFn } from './random.js';

export type DnsFamily = 'V4_ONLY' | 'V6_ONLY' | 'AUTO' | 'V4_PREFERRED' | 'ALL';

export interface DnsAnswer {
  address: string;
  /** Seconds; 0 when unknown. */
  ttl: number;
}

/** Resolves a name; rejects on failure (a name that does not exist resolves to []). */
export type DnsResolver = (hostname: string, family: DnsFamily) => Promise<DnsAnswer[]>;

const NO_ANSWER = new Set(['ENOTFOUND', 'ENODATA', 'ESERVFAIL', 'ECONNREFUSED', 'ETIMEOUT', 'EREFUSED', 'ENONAME', 'EBADRESP']);

async function resolveFamily(name: string, v: 4 | 6): Promise<DnsAnswer[]> {
  try {
    const r = v === 4 ? await dnsp.resolve4(name, { ttl: true }) : await dnsp.resolve6(name, { ttl: true });
    if (r.length > 0) return r.map((a) => ({ address: a.address, ttl: a.ttl }));
  } catch (e) {
    if (!NO_ANSWER.has((e as NodeJS.ErrnoException).code ?? '')) throw e;
  }
  try {
    const r = await dnsp.lookup(name, { family: v, all: true });
    return r.map((a) => ({ address: a.address, ttl: 0 }));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? '';
    if (code === 'ENOTFOUND' || code === 'ENODATA' || code === 'EAI_NONAME') return [];
    throw e;
  }
}

export const systemResolver: DnsResolver = async (name, family) => {
  if (isIP(name)) return [{ address: name, ttl: 0 }];
  switch (family) {
    case 'V4_ONLY':
      return resolveFamily(name, 4);
    case 'V6_ONLY':
      return resolveFamily(name, 6);
    case 'AUTO': {
      const r = await resolveFamily(name, 6);
      return r.length ? r : resolveFamily(name, 4);
    }
    case 'V4_PREFERRED': {
      const r = await resolveFamily(name, 4);
      return r.length ? r : resolveFamily(name, 6);
    }
    case 'ALL':
      return [...(await resolveFamily(name, 4)), ...(await resolveFamily(name, 6))];
  }
};

export interface DnsSettings {
  family: DnsFamily;
  refreshRateMs: number;
  failureBaseMs: number;
  failureMaxMs: number;
  respectTtl: boolean;
}

/** One endpoint to resolve: its name and port plus the attributes its hosts get. */
export interface DnsTarget {
  hostname: string;
  port: number;
  template: Omit<HostInit, 'address' | 'port'>;
}

class TargetState {
  results: HostInit[] = [];
  resolved = false;
  timer: Timer | undefined;
  nextBackoff: number;
  constructor(
    readonly target: DnsTarget,
    base: number,
  ) {
    this.nextBackoff = base;
  }
}

export class DnsDiscovery {
  private readonly states: TargetState[];
  private stopped = true;
  /** Resolutions completed (success or failure), for tests and stats. */
  resolutions = 0;

  constructor(
    targets: DnsTarget[],
    private readonly settings: DnsSettings,
    private readonly resolver: DnsResolver,
    private readonly clock: Clock,
    private readonly random: RandomFn,
    private readonly logical: boolean,
    /** The hosts of all targets after a successful resolution. */
    private readonly onHosts: (hosts: HostInit[]) => void,
    /** Every target has been resolved (or failed) once. */
    private readonly onFirstRound: () => void,
  ) {
    this.states = targets.map((t) => new TargetState(t, settings.failureBaseMs));
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    if (this.states.length === 0) this.onFirstRound();
    for (const s of this.states) void this.resolve(s);
  }

  stop(): void {
    this.stopped = true;
    for (const s of this.states) {
      this.clock.clearTimeout(s.timer);
      s.timer = undefined;
    }
  }

  private async resolve(s: TargetState): Promise<void> {
    if (this.stopped) return;
    const t = s.target;
    let next: number;
    try {
      const answers = await this.resolver(t.hostname, this.settings.family);
      if (this.stopped) return;
      const list = this.logical ? answers.slice(0, 1) : answers;
      if (!this.logical || list.length > 0) {
        s.results = list.map((a) => ({ ...t.template, address: a.address, port: t.port, hostname: t.hostname }));
      }
      s.nextBackoff = this.settings.failureBaseMs;
      next = this.settings.refreshRateMs;
      if (this.settings.respectTtl && answers.length > 0) {
        let ttl = Infinity;
        for (const a of answers) ttl = Math.min(ttl, a.ttl);
        if (ttl > 0 && Number.isFinite(ttl)) next = ttl * 1000;
      }
      this.resolutions++;
      this.onHosts(this.states.flatMap((x) => x.results));
    } catch {
      if (this.stopped) return;
      this.resolutions++;
      // Jittered exponential backoff (Envoy's JitteredExponentialBackOffStrategy).
      const backoff = s.nextBackoff;
      s.nextBackoff = backoff * 2 <= this.settings.failureMaxMs ? backoff * 2 : this.settings.failureMaxMs;
      next = this.random() % backoff;
    }
    const first = !s.resolved;
    s.resolved = true;
    if (first && this.states.every((x) => x.resolved)) this.onFirstRound();
    s.timer = this.clock.setTimeout(() => void this.resolve(s), Math.max(1, next));
  }
}
