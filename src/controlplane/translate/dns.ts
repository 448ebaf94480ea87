/**
 * DNS for transparent-mode sidecars: automatic virtual IPs and the name table of the sidecar's DNS proxy.
 *
 * - `serviceVips(services)`: a service with no usable address (no clusterIP, a ServiceEntry without `addresses`)
 *   gets a virtual IP from 240.240.0.0/16, as Istio auto-allocates for ServiceEntries (`ISTIO_META_DNS_AUTO_ALLOCATE`,
 *   Class E range 240.240.0.0/16). The address is a hash of the host name (FNV-1a), so it is stable across pushes
 *   and control-plane restarts and the same for every proxy; a collision moves the later host (in host-name order)
 *   to the next free address. Wildcard hosts and DNS-resolved external hosts get none (Istio allocates only for
 *   non-wildcard hosts; wildcard names cannot be answered with one address).
 * - `nameTable(...)`: Istio's NDS NameTable (pkg/dns/server `BuildNameTable`) for one proxy: every name a client
 *   in the proxy's namespace can use for a visible service (see route/domains.ts `hostAliases`: the FQDN,
 *   `name.ns.svc`, `name.ns`, and `name` in the same namespace) → the service's addresses (or its automatic VIP).
 *   Served over ADS as `weft.dns.v1.NameTable` (src/xds/name-table.ts).
 */
import { create } from '@bufbuild/protobuf';
import type { Service } from '../../api/model.js';
import { NAME_TABLE_RESOURCE, NameInfoSchema, NameTableSchema } from '../../xds/name-table.js';
import type { NameInfo, NameTable } from '../../xds/name-table.js';
import { hostAliases } from './route/domains.js';

/** Istio's auto-allocation range, 240.240.0.0/16. */
export const AUTO_VIP_PREFIX = '240.240.';
const AUTO_VIP_SLOTS = 65534; // .0.1 … .255.254

/** The service's own virtual IPs (IPv4/IPv6 addresses; CIDRs and unspecified addresses are not VIPs). */
export function ownVips(svc: Pick<Service, 'addresses'>): string[] {
  return svc.addresses.filter((a) => a && !a.includes('/') && a !== '0.0.0.0' && a !== '::');
}

function needsAutoVip(svc: Service): boolean {
  if (svc.hostname.startsWith('*')) return false;
  if (ownVips(svc).length) return false;
  return true;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function slotAddress(slot: number): string {
  const n = slot + 1;
  return `${AUTO_VIP_PREFIX}${n >> 8}.${n & 0xff}`;
}

const allocated = new WeakMap<readonly Service[], Map<string, string>>();

/** host name → automatic VIP for every service of the registry that needs one (memoized per services list). */
export function autoVips(services: readonly Service[]): Map<string, string> {
  let out = allocated.get(services);
  if (out) return out;
  out = new Map();
  const hosts = [...new Set(services.filter(needsAutoVip).map((s) => s.hostname.toLowerCase()))].sort();
  const used = new Set<number>();
  for (const h of hosts) {
    let slot = fnv1a(h) % AUTO_VIP_SLOTS;
    for (let i = 0; used.has(slot) && i < AUTO_VIP_SLOTS; i++) slot = (slot + 1) % AUTO_VIP_SLOTS;
    used.add(slot);
    out.set(h, slotAddress(slot));
  }
  allocated.set(services, out);
  return out;
}

/** The VIPs a transparent proxy uses for a service: its own addresses, else its automatic VIP, else none. */
export function serviceVips(svc: Service, auto: ReadonlyMap<string, string>): string[] {
  const own = ownVips(svc);
  if (own.length) return own;
  const v = auto.get(svc.hostname.toLowerCase());
  return v ? [v] : [];
}

/** The name table of one proxy: every alias of every visible service → its VIPs. */
export function nameTable(visible: readonly Service[], auto: ReadonlyMap<string, string>, clientNamespace: string): NameTable {
  const table: { [host: string]: NameInfo } = {};
  // Real host names first, then aliases: an alias never takes another service's host name, and the first
  // service keeps a shared alias.
  for (const aliasesToo of [false, true]) {
    for (const svc of visible) {
      const ips = serviceVips(svc, auto);
      if (!ips.length) continue;
      const kubernetes = svc.name !== undefined && svc.hostname.startsWith(`${svc.name}.${svc.namespace}.svc.`);
      for (const alias of aliasesToo ? hostAliases(svc, clientNamespace) : [svc.hostname]) {
        const key = alias.toLowerCase();
        if (table[key] !== undefined) continue;
        table[key] = create(NameInfoSchema, {
          ips,
          registry: kubernetes ? 'Kubernetes' : 'External',
          shortname: kubernetes ? svc.name! : '',
          namespace: kubernetes ? svc.namespace : '',
        });
      }
    }
  }
  return create(NameTableSchema, { name: NAME_TABLE_RESOURCE, table });
}
