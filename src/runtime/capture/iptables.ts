/**
 * The iptables rules of a captured workload's network namespace, shaped like Istio's `istio-iptables`
 * (tools/istio-iptables, REDIRECT mode), as one `iptables-restore` input for the nat table:
 *
 *   PREROUTING  → WEFT_INBOUND: TCP to any port except the sidecar's own (15008, 15020, 15021, 15090 and any
 *                 `excludeInboundPorts`) → WEFT_IN_REDIRECT → REDIRECT to 15006 (virtualInbound).
 *   OUTPUT      → DNS: UDP and TCP to port 53 from every uid but the sidecar's → REDIRECT to the DNS proxy (15053)
 *                 (Istio captures port 53 towards the resolv.conf nameservers; here every resolver is captured);
 *               → WEFT_OUTPUT (TCP): the sidecar's uid/gid (1337) RETURN (its own connections, xDS included, are
 *                 never captured), loopback destinations (127.0.0.0/8) and the workload's own address RETURN,
 *                 everything else → WEFT_REDIRECT → REDIRECT to 15001 (virtualOutbound).
 *
 * Difference from Istio: Istio RETURNs all non-sidecar traffic leaving on `lo`; the namespace here routes
 * mesh VIPs through `lo` (see netns.ts: it has no default route out), so Weft matches loopback by destination.
 * Istio's rule sending the sidecar's own traffic to the pod IP back to inbound (`-o lo ! -d 127.0.0.1 --uid-owner
 * 1337 → ISTIO_IN_REDIRECT`) is left out: InboundPassthroughCluster connects to the original destination
 * directly (Istio binds 127.0.0.6 for that instead).
 */

export interface CaptureRules {
  /** The sidecar's uid and gid (Istio: 1337). */
  proxyUid: number;
  proxyGid: number;
  /** virtualOutbound port (15001). */
  outboundPort: number;
  /** virtualInbound port (15006). */
  inboundPort: number;
  /** DNS proxy port (15053). */
  dnsPort: number;
  /** The workload's own address in the namespace. */
  workloadAddress: string;
  /** Inbound ports not captured (the sidecar's own are always excluded). */
  excludeInboundPorts?: number[];
}

/** The sidecar's ports that inbound capture leaves alone (Istio: 15008 HBONE, 15020 merged metrics, 15021 health, 15090 stats). */
export const SIDECAR_INBOUND_PORTS = [15008, 15020, 15021, 15090];

/** The `iptables-restore` text of the nat table (see the module comment). */
export function natRules(r: CaptureRules): string {
  const lines = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':INPUT ACCEPT [0:0]',
    ':OUTPUT ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    ':WEFT_INBOUND - [0:0]',
    ':WEFT_IN_REDIRECT - [0:0]',
    ':WEFT_OUTPUT - [0:0]',
    ':WEFT_REDIRECT - [0:0]',
    '-A PREROUTING -p tcp -j WEFT_INBOUND',
  ];
  for (const p of [...new Set([...SIDECAR_INBOUND_PORTS, ...(r.excludeInboundPorts ?? [])])]) lines.push(`-A WEFT_INBOUND -p tcp --dport ${p} -j RETURN`);
  lines.push(
    '-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT',
    `-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports ${r.inboundPort}`,
    `-A OUTPUT -p udp --dport 53 -m owner ! --uid-owner ${r.proxyUid} -j REDIRECT --to-ports ${r.dnsPort}`,
    '-A OUTPUT -p tcp -j WEFT_OUTPUT',
    `-A WEFT_OUTPUT -p tcp --dport 53 -m owner ! --uid-owner ${r.proxyUid} -j REDIRECT --to-ports ${r.dnsPort}`,
    `-A WEFT_OUTPUT -m owner --uid-owner ${r.proxyUid} -j RETURN`,
    `-A WEFT_OUTPUT -m owner --gid-owner ${r.proxyGid} -j RETURN`,
    '-A WEFT_OUTPUT -d 127.0.0.0/8 -j RETURN',
    `-A WEFT_OUTPUT -d ${r.workloadAddress}/32 -j RETURN`,
    '-A WEFT_OUTPUT -j WEFT_REDIRECT',
    `-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports ${r.outboundPort}`,
    'COMMIT',
    '',
  );
  return lines.join('\n');
}
