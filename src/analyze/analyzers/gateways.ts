/**
 * WFT0145 (Istio IST0145 ConflictingGateways): two Gateway servers that can run on the same gateway workload (the
 * Gateways' selectors overlap: one is a subset of the other) on the same port, where the gateway cannot serve both:
 * - the servers carry different kinds of traffic on the port (plain HTTP, TLS/HTTPS, TCP), or
 * - both are TLS or TCP servers with overlapping hosts (Istio merges plain HTTP servers of one port, so HTTP
 *   servers sharing hosts are not a conflict).
 * The gateway translation (src/controlplane/translate/gateway) leaves the newer server out; this reports it
 * before a proxy gets the config. Gateway API Gateways select by their own name, so only servers of the same
 * Gateway can conflict there (listener validation catches those).
 */
import type { GatewayDef, GatewayServer } from '../../api/model.js';
import { isHttpProtocol, parseProtocol } from '../../api/protocol.js';
import type { Analyzer } from '../types.js';
import { hostsOverlap } from '../context.js';

type Kind = 'HTTP' | 'TLS' | 'TCP';

function kindOf(s: GatewayServer): Kind | undefined {
  const p = parseProtocol(s.port.protocol === 'HTTP_PROXY' ? 'HTTP' : s.port.protocol);
  if (!p || p === 'UNKNOWN' || p === 'UDP') return undefined;
  if (p === 'HTTPS' || p === 'TLS') return 'TLS';
  return isHttpProtocol(p) ? 'HTTP' : 'TCP';
}

function subset(a: Record<string, string>, b: Record<string, string>): boolean {
  return Object.entries(a).every(([k, v]) => b[k] === v);
}

/** Whether some workload can be selected by both Gateways. */
function selectorsOverlap(a: GatewayDef, b: GatewayDef): boolean {
  if (a.family === 'gateway-api' || b.family === 'gateway-api') return a === b;
  return subset(a.selector, b.selector) || subset(b.selector, a.selector);
}

function hostOf(h: string): string {
  const i = h.indexOf('/');
  return (i < 0 ? h : h.slice(i + 1)).toLowerCase();
}

function sharedHosts(a: GatewayServer, b: GatewayServer): string[] {
  const out: string[] = [];
  for (const x of a.hosts) for (const y of b.hosts) if (hostsOverlap(hostOf(x), hostOf(y)) && !out.includes(hostOf(x))) out.push(hostOf(x));
  return out;
}

function selectorText(gw: GatewayDef): string {
  return Object.entries(gw.selector).map(([k, v]) => `${k}=${v}`).join(',') || '(all gateway workloads)';
}

export const gatewayConflictAnalyzer: Analyzer = {
  name: 'gateway.conflicts',
  description: 'Checks that Gateway servers sharing a port on the same gateway workloads can all be served',
  codes: ['WFT0145'],
  analyze(ctx) {
    const servers = ctx.model.gateways.flatMap((gw) => gw.servers.map((s, i) => ({ gw, s, i })));
    for (let j = 0; j < servers.length; j++) {
      const b = servers[j]!;
      for (let i = 0; i < j; i++) {
        const a = servers[i]!;
        if (a.s.port.number !== b.s.port.number || (a.s.bind ?? '') !== (b.s.bind ?? '') || !selectorsOverlap(a.gw, b.gw)) continue;
        const ka = kindOf(a.s);
        const kb = kindOf(b.s);
        if (!ka || !kb) continue;
        const hosts = sharedHosts(a.s, b.s);
        let why: string | undefined;
        if (ka !== kb) why = `port ${b.s.port.number} would carry both ${ka} and ${kb}`;
        else if (ka !== 'HTTP' && hosts.length) why = `both serve ${ka} for hosts ${hosts.join(', ')} on port ${b.s.port.number}`;
        if (!why) continue;
        const at = b.gw.family === 'istio' ? ['spec', 'servers', b.i, 'port'] : ['spec', 'listeners', b.i];
        const other = `${a.gw.origin.kind} ${a.gw.namespace}/${a.gw.name}${a.gw === b.gw ? ` servers[${a.i}]` : ''}`;
        ctx.report(
          'WFT0145',
          ctx.whereOf(b.gw.origin, at),
          `${b.gw.origin.kind} ${b.gw.namespace}/${b.gw.name} conflicts with ${other} (workload selector ${selectorText(b.gw)}, port ${b.s.port.number}): ${why}`,
          'use another port, or serve the hosts from one server; the gateway keeps the oldest Gateway\'s server and leaves this one out',
        );
      }
    }
  },
};
