/**
 * Which Gateways a gateway proxy (`router`) serves, and how a server's `hosts` read.
 *
 * - Istio `Gateway`: its `selector` must be a subset of the proxy's labels (Istio selects gateway workloads in
 *   every namespace, PILOT_SCOPE_GATEWAY_TO_NAMESPACE off). An empty selector selects every gateway proxy.
 * - Gateway API `Gateway`: Weft runs it on the gateway proxies of the Gateway's namespace that carry the label
 *   `gateway.networking.k8s.io/gateway-name: <name>` (the label a Gateway API implementation puts on the
 *   deployment it creates for a Gateway, GEP-1762; the model sets it as the Gateway's selector).
 *
 * Gateways are taken oldest first (creation time, then namespace/name): on a port they disagree about, the
 * oldest wins (see servers.ts).
 */
import type { GatewayDef, GatewayServer } from '../../../api/model.js';
import type { ProxyInfo } from '../../proxy.js';
import { hostSubsetOf, labelsSubsetOf } from '../scope.js';

/** `namespace/name` of a Gateway, the form VirtualService `gateways` resolve to. */
export function gatewayName(gw: Pick<GatewayDef, 'namespace' | 'name'>): string {
  return `${gw.namespace}/${gw.name}`;
}

/** `Gateway namespace/name`, for messages. */
export function gatewaySource(gw: GatewayDef): string {
  return `${gw.origin.kind} ${gw.namespace}/${gw.name}`;
}

function createdMs(created: string | undefined): number {
  if (!created) return Number.POSITIVE_INFINITY;
  const t = Date.parse(created);
  return Number.isNaN(t) ? Number.POSITIVE_INFINITY : t;
}

/** The Gateways this proxy runs, oldest first. */
export function gatewaysForProxy(gateways: readonly GatewayDef[], proxy: Pick<ProxyInfo, 'namespace' | 'labels'>): GatewayDef[] {
  const out = gateways.filter((gw) => {
    if (gw.family === 'gateway-api' && gw.namespace !== proxy.namespace) return false;
    return labelsSubsetOf(gw.selector, proxy.labels);
  });
  return out.sort((a, b) => {
    const ta = createdMs(a.origin.created);
    const tb = createdMs(b.origin.created);
    if (ta !== tb) return ta < tb ? -1 : 1;
    const ka = gatewayName(a);
    const kb = gatewayName(b);
    return ka < kb ? -1 : ka > kb ? 1 : 0;
  });
}

/** A server host: `namespace/host` with `.` resolved to the Gateway's namespace; `*` = any namespace. */
export interface ServerHost {
  namespace: string;
  host: string;
}

/** Istio `sanitizeServerHostNamespace`: `./h` → `<gateway ns>/h`, `*\/h` and `h` → any namespace. */
export function serverHosts(server: GatewayServer, gatewayNamespace: string): ServerHost[] {
  return server.hosts.map((h) => {
    const slash = h.indexOf('/');
    if (slash < 0) return { namespace: '*', host: h };
    const ns = h.slice(0, slash);
    return { namespace: ns === '.' ? gatewayNamespace : ns, host: h.slice(slash + 1) };
  });
}

/** The more specific of two overlapping hosts, or undefined when they do not overlap. */
export function intersectHost(a: string, b: string): string | undefined {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  if (hostSubsetOf(y, x)) return y;
  if (hostSubsetOf(x, y)) return x;
  return undefined;
}

/** The hosts a route table serves on a server: its hosts intersected with the server's, per its namespace. */
export function hostsOnServer(tableHosts: readonly string[], tableNamespace: string, hosts: readonly ServerHost[]): string[] {
  const out: string[] = [];
  for (const h of tableHosts) {
    for (const sh of hosts) {
      if (sh.namespace !== '*' && sh.namespace !== tableNamespace) continue;
      const e = intersectHost(sh.host, h);
      if (e !== undefined && !out.includes(e)) out.push(e);
    }
  }
  return out;
}
