/**
 * The TCP ports this process's listeners are bound to on a loopback or wildcard address, for loop prevention: an
 * explicit-mode PassthroughCluster takes its destination from the request's authority
 * (route-path/upstream-request.ts), and a destination that is one of the proxy's own listeners (for example
 * `http://127.0.0.1:15001/` sent to the outbound listener itself) would make the proxy forward the request to
 * itself again and again. Such destinations are refused like any invalid original destination. (Transparent-mode
 * Envoy relies on iptables owner rules for this; explicit mode has nothing else to stop the loop.)
 *
 *   ownPorts.add(port) / ownPorts.delete(port)   // ListenerManager, on bind / close
 *   isOwnAddress('127.0.0.1', 15001)              // true while a listener holds 15001
 */
import { networkInterfaces } from 'node:os';

const ports = new Map<number, number>();

export const ownPorts = {
  add(port: number): void {
    ports.set(port, (ports.get(port) ?? 0) + 1);
  },
  delete(port: number): void {
    const n = (ports.get(port) ?? 0) - 1;
    if (n > 0) ports.set(port, n);
    else ports.delete(port);
  },
};

/** Whether ip:port reaches one of this process's listeners (a loopback address, or any address of this host). */
export function isOwnAddress(ip: string, port: number): boolean {
  if (!ports.has(port)) return false;
  return ip.startsWith('127.') || ip === '::1' || ip === '0.0.0.0' || ip === '::' || ip.startsWith('::ffff:127.') || isLocalInterface(ip);
}

let localAddresses: Set<string> | undefined;
function isLocalInterface(ip: string): boolean {
  if (localAddresses === undefined) {
    localAddresses = new Set();
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) localAddresses.add(a.address);
  }
  return localAddresses.has(ip);
}
