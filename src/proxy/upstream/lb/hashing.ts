/**
 * RING_HASH and MAGLEV: consistent hashing (Envoy's ThreadAwareLoadBalancerBase, ring_hash_lb.cc,
 * maglev_lb.cc).
 *
 * The request hash (route hash policies; random when absent) picks the priority (`hash % 100 + 1` against the
 * priority loads) and then the host from that priority's table. Tables are built at refresh from the priority's
 * healthy hosts — all hosts in panic — with normalized weights (host weight / sum; with locality weighted LB, also
 * × locality weight / sum of locality weights, localities of weight 0 left out).
 *
 * - Ring hash (ketama): each host gets ⌈scale × normalized weight⌉ points, where scale = min(⌈min weight ×
 *   minimum_ring_size⌉ / min weight, maximum_ring_size) (defaults 1024 and 8M); point i of a host is
 *   xxHash64("<key>_<i>") with key = the address (`10.0.0.1:80`), the hostname with use_hostname_for_hashing, or
 *   the endpoint's `envoy.lb` `hash_key` metadata. A hash maps to the first point ≥ it (wrapping). A retry with
 *   the previous-hosts predicate moves `attempt` points further.
 * - Maglev: a lookup table of table_size (default 65537, prime) entries filled from per-host permutations
 *   (offset = xxHash64(key) % M, skip = xxHash64(key, seed 1) % (M-1) + 1), hosts taking turns in proportion to
 *   their weight. A hash maps to table[hash % M]; retries flip the hash with (2^64 - attempt).
 * - hash_balance_factor (bounded load): a host whose active requests exceed its share of factor% × the cluster's
 *   active requests is skipped for another host drawn by a hash-seeded shuffle (mt19937, as Envoy).
 */
import type { Host, HostSet } from '../cluster/host.js';
import {
  LoadBalancerBase,
  maxSelectionAttempts,
  rejectHost,
  type CommonLbSettings,
  type LbContext,
  type LbEnv,
} from './load-balancer.js';
import { hashResult, mod64, xxhash64String } from './xxhash64.js';

export interface HashingSettings {
  useHostname: boolean;
  /** 0 = off. */
  hashBalanceFactor: number;
}

export interface RingHashSettings extends HashingSettings {
  minRingSize: number;
  maxRingSize: number;
}

export interface MaglevSettings extends HashingSettings {
  tableSize: number;
}

interface WeightedHost {
  host: Host;
  weight: number;
}

/** A consistent-hash table: a host for a 64-bit hash (hi, lo) and a selection attempt. */
export interface HashTable {
  chooseHost(hi: number, lo: number, attempt: number): Host | undefined;
}

function hashKeyOf(host: Host, useHostname: boolean): string {
  if (host.hashKey) return host.hashKey;
  return useHostname ? host.hostname : host.key;
}

// ---------------------------------------------------------------------------------------------------------------
// Ring hash

export class RingTable implements HashTable {
  readonly hi: Uint32Array;
  readonly lo: Uint32Array;
  readonly hosts: Host[];

  constructor(weights: readonly WeightedHost[], minWeight: number, minRing: number, maxRing: number, useHostname: boolean) {
    if (weights.length === 0) {
      this.hi = new Uint32Array(0);
      this.lo = new Uint32Array(0);
      this.hosts = [];
      return;
    }
    // Scale so the least-weighted host gets a whole number of points, within the maximum ring size.
    const scale = Math.min(Math.ceil(minWeight * minRing) / minWeight, maxRing);
    const his: number[] = [];
    const los: number[] = [];
    const owners: Host[] = [];
    let current = 0;
    let target = 0;
    for (const { host, weight } of weights) {
      const prefix = hashKeyOf(host, useHostname) + '_';
      target += scale * weight;
      let i = 0;
      while (current < target) {
        xxhash64String(prefix + i);
        his.push(hashResult.hi);
        los.push(hashResult.lo);
        owners.push(host);
        i++;
        current++;
      }
    }
    const order = his.map((_, i) => i);
    order.sort((a, b) => his[a]! - his[b]! || los[a]! - los[b]!);
    const n = order.length;
    this.hi = new Uint32Array(n);
    this.lo = new Uint32Array(n);
    this.hosts = new Array<Host>(n);
    for (let i = 0; i < n; i++) {
      const j = order[i]!;
      this.hi[i] = his[j]!;
      this.lo[i] = los[j]!;
      this.hosts[i] = owners[j]!;
    }
  }

  get size(): number {
    return this.hosts.length;
  }

  chooseHost(hH: number, hL: number, attempt: number): Host | undefined {
    const n = this.hosts.length;
    if (n === 0) return undefined;
    const hi = this.hi;
    const lo = this.lo;
    // ketama_get_server: the first point >= h, wrapping to 0.
    let lowp = 0;
    let highp = n;
    let midp = 0;
    for (;;) {
      midp = Math.floor((lowp + highp) / 2);
      if (midp === n) {
        midp = 0;
        break;
      }
      const mH = hi[midp]!;
      const mL = lo[midp]!;
      // h <= midval
      const leMid = hH < mH || (hH === mH && hL <= mL);
      // h > midval1 (midval1 = 0 at midp 0)
      let gtPrev: boolean;
      if (midp === 0) gtPrev = hH !== 0 || hL !== 0;
      else {
        const pH = hi[midp - 1]!;
        const pL = lo[midp - 1]!;
        gtPrev = hH > pH || (hH === pH && hL > pL);
      }
      if (leMid && gtPrev) break;
      if (!leMid) lowp = midp + 1;
      else highp = midp - 1;
      if (lowp > highp) {
        midp = 0;
        break;
      }
    }
    if (attempt > 0) midp = (midp + attempt) % n;
    return this.hosts[midp];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Maglev

export class MaglevTable implements HashTable {
  readonly table: Int32Array;
  readonly hosts: Host[] = [];
  /** Entries per host, in `hosts` order (for stats and tests). */
  readonly counts: number[] = [];

  constructor(weights: readonly WeightedHost[], maxWeight: number, readonly tableSize: number, useHostname: boolean) {
    const M = tableSize;
    this.table = new Int32Array(weights.length === 0 ? 0 : M).fill(-1);
    if (weights.length === 0) return;
    const entries = weights
      .map((w) => ({ key: hashKeyOf(w.host, useHostname), host: w.host, weight: w.weight }))
      .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const build = entries.map((e) => {
      xxhash64String(e.key, 0);
      const offset = mod64(hashResult.hi, hashResult.lo, M);
      xxhash64String(e.key, 1);
      const skip = mod64(hashResult.hi, hashResult.lo, M - 1) + 1;
      return { host: e.host, offset, skip, weight: e.weight, target: 0, next: 0, count: 0 };
    });
    for (const b of build) this.hosts.push(b.host);
    const table = this.table;
    let filled = 0;
    for (let iteration = 1; filled < M; iteration++) {
      for (let i = 0; i < build.length && filled < M; i++) {
        const e = build[i]!;
        if (iteration * e.weight < e.target) continue;
        e.target += maxWeight;
        let c = (e.offset + e.skip * (e.next % M)) % M;
        while (table[c] !== -1) {
          e.next++;
          c = (e.offset + e.skip * (e.next % M)) % M;
        }
        table[c] = i;
        e.next++;
        e.count++;
        filled++;
      }
    }
    for (const b of build) this.counts.push(b.count);
  }

  chooseHost(hH: number, hL: number, attempt: number): Host | undefined {
    if (this.table.length === 0) return undefined;
    if (attempt > 0) {
      hH = (hH ^ 0xffffffff) >>> 0;
      hL = (hL ^ ((-attempt) >>> 0)) >>> 0;
    }
    return this.hosts[this.table[mod64(hH, hL, this.tableSize)]!];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Bounded load

/** std::mt19937 (32-bit Mersenne Twister) as the C++ standard library defines it. */
export class Mt19937 {
  private readonly mt = new Uint32Array(624);
  private index = 624;

  constructor(seed: number) {
    const mt = this.mt;
    mt[0] = seed >>> 0;
    for (let i = 1; i < 624; i++) {
      const prev = mt[i - 1]! ^ (mt[i - 1]! >>> 30);
      mt[i] = (Math.imul(1812433253, prev) + i) >>> 0;
    }
  }

  next(): number {
    const mt = this.mt;
    if (this.index >= 624) {
      for (let i = 0; i < 624; i++) {
        const y = (mt[i]! & 0x80000000) | (mt[(i + 1) % 624]! & 0x7fffffff);
        let v = mt[(i + 397) % 624]! ^ (y >>> 1);
        if (y & 1) v ^= 0x9908b0df;
        mt[i] = v >>> 0;
      }
      this.index = 0;
    }
    let y = mt[this.index++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }
}

class BoundedLoadTable implements HashTable {
  private readonly weightOf = new Map<Host, number>();

  constructor(
    private readonly inner: HashTable,
    private readonly weights: readonly WeightedHost[],
    private readonly factor: number,
    private readonly env: LbEnv,
  ) {
    for (const w of weights) this.weightOf.set(w.host, w.weight);
  }

  private overload(host: Host, weight: number): number {
    const overall = this.env.stats.upstream_rq_active;
    const totalSlots = Math.floor(((overall + 1) * this.factor + 99) / 100);
    const slots = Math.max(Math.ceil(totalSlots * weight), 1);
    return host.stats.rq_active / slots;
  }

  chooseHost(hi: number, lo: number, attempt: number): Host | undefined {
    if (this.weights.length === 0) return undefined;
    const host = this.inner.chooseHost(hi, lo, attempt);
    if (!host) return undefined;
    let f = this.overload(host, this.weightOf.get(host) ?? 0);
    if (f <= 1) return host;
    const n = this.weights.length;
    const idx = new Array<number>(n);
    for (let i = 0; i < n; i++) idx[i] = i;
    // Seeded by the hash (mt19937 keeps the low 32 bits of its seed), so the same hash probes the same sequence.
    const rng = new Mt19937(lo);
    const uniform = (k: number): number => {
      let x = k;
      const div = Math.floor(4294967296 / k);
      while (x >= k) x = Math.floor(rng.next() / div);
      return x;
    };
    let least = host;
    let leastF = f;
    for (let i = 0; i < n; i++) {
      const j = uniform(n - i);
      const t = idx[i]!;
      idx[i] = idx[i + j]!;
      idx[i + j] = t;
      const k = idx[i]!;
      const alt = this.weights[k]!.host;
      if (alt === host) continue;
      f = this.overload(alt, this.weights[k]!.weight);
      if (f <= 1) return alt;
      if (leastF > f) {
        least = alt;
        leastF = f;
      }
    }
    return least;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** Envoy's normalizeWeights for one priority. */
export function normalizeWeights(hs: HostSet, inPanic: boolean, localityWeighted: boolean): { weights: WeightedHost[]; min: number; max: number } {
  const out: WeightedHost[] = [];
  let min = 1.0;
  let max = 0.0;
  const addHosts = (hosts: readonly Host[], localityWeight: number): void => {
    let sum = 0;
    for (const h of hosts) sum += h.weight;
    for (const h of hosts) {
      const w = (h.weight * localityWeight) / sum;
      out.push({ host: h, weight: w });
      min = Math.min(min, w);
      max = Math.max(max, w);
    }
  };
  if (!localityWeighted || hs.localityWeights.length === 0) {
    addHosts(inPanic ? hs.hosts : hs.healthy, 1.0);
  } else {
    const perLocality = inPanic ? hs.hostsPerLocality : hs.healthyPerLocality;
    let sum = 0;
    for (const w of hs.localityWeights) sum += w;
    if (sum > 0) {
      hs.localityWeights.forEach((w, i) => {
        if (w !== 0) addHosts(perLocality[i]!, w / sum);
      });
    }
  }
  return { weights: out, min, max };
}

/** Priority selection and per-priority tables; the table kind comes from the subclass. */
abstract class HashingLb extends LoadBalancerBase {
  private tables: HashTable[] = [];

  constructor(env: LbEnv, settings: CommonLbSettings, private readonly hashing: HashingSettings) {
    super(env, settings);
  }

  protected abstract table(weights: WeightedHost[], min: number, max: number): HashTable;

  override refresh(): void {
    super.refresh();
    this.tables = this.env.hostSets.map((hs, p) => {
      const { weights, min, max } = normalizeWeights(hs, this.panic[p]!, this.settings.localityWeighted);
      const t = this.table(weights, min, max);
      return this.hashing.hashBalanceFactor > 0 ? new BoundedLoadTable(t, weights, this.hashing.hashBalanceFactor, this.env) : t;
    });
  }

  /** The table of a priority (for tests and the admin output). */
  tableOf(priority: number): HashTable | undefined {
    return this.tables[priority];
  }

  choose(ctx?: LbContext): Host | undefined {
    let hi: number;
    let lo: number;
    const h = ctx?.hash;
    if (h === undefined) {
      hi = this.env.random();
      lo = this.env.random();
    } else if (typeof h === 'bigint') {
      hi = Number((h >> 32n) & 0xffffffffn);
      lo = Number(h & 0xffffffffn);
    } else {
      hi = Math.floor(h / 4294967296) >>> 0;
      lo = h >>> 0;
    }
    const p = this.choosePriority(mod64(hi, lo, 100) + 1) >> 1;
    const table = this.tables[p];
    if (!table) return undefined;
    if (this.panic[p]) this.env.stats.lb_healthy_panic++;
    const attempts = maxSelectionAttempts(ctx);
    let host: Host | undefined;
    for (let i = 0; i < attempts; i++) {
      host = table.chooseHost(hi, lo, i);
      if (!host || !rejectHost(host, ctx)) return host;
    }
    return host;
  }
}

export class RingHashLb extends HashingLb {
  constructor(env: LbEnv, settings: CommonLbSettings, private readonly ring: RingHashSettings) {
    super(env, settings, ring);
  }

  protected table(weights: WeightedHost[], min: number): HashTable {
    return new RingTable(weights, min, this.ring.minRingSize, this.ring.maxRingSize, this.ring.useHostname);
  }
}

export class MaglevLb extends HashingLb {
  constructor(env: LbEnv, settings: CommonLbSettings, private readonly maglev: MaglevSettings) {
    super(env, settings, maglev);
  }

  protected table(weights: WeightedHost[], _min: number, max: number): HashTable {
    return new MaglevTable(weights, max, this.maglev.tableSize, this.maglev.useHostname);
  }
}
