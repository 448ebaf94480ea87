/**
 * Host aliases and virtual host domains.
 *
 * A Kubernetes Service `name.ns.svc.<domain>` is reachable from a pod in namespace C under the names Kubernetes
 * DNS resolves through C's search list (`C.svc.<domain>`, `svc.<domain>`, `<domain>`): `name` only when C is
 * `ns`, and `name.ns`, `name.ns.svc` and the FQDN from everywhere. Any other host (ServiceEntry hosts, external
 * names) is reachable only as written. This matches what Istio's `generateVirtualHostDomains` produces for a
 * sidecar in a Kubernetes namespace.
 */
import type { Service } from '../../../api/model.js';
import { hostPort } from './util.js';

/** The names a client in `clientNs` can use for the service, the FQDN first. */
export function hostAliases(svc: Pick<Service, 'hostname' | 'namespace' | 'name'>, clientNs: string): string[] {
  const fqdn = svc.hostname;
  const name = svc.name;
  if (name === undefined || !fqdn.startsWith(`${name}.${svc.namespace}.svc.`)) return [fqdn];
  const out = [fqdn, `${name}.${svc.namespace}.svc`, `${name}.${svc.namespace}`];
  if (svc.namespace === clientNs) out.push(name);
  return out;
}

/** The `Host`/`:authority` values that address the service port: every alias with `:port`, bare too on port 80. */
export function aliasAuthorities(svc: Pick<Service, 'hostname' | 'namespace' | 'name'>, port: number, clientNs: string): string[] {
  const out: string[] = [];
  for (const a of hostAliases(svc, clientNs)) {
    if (port === 80) out.push(a);
    out.push(hostPort(a, port));
  }
  return out;
}

/**
 * The domains of a service port's virtual host: the alias authorities, then the service's addresses (virtual
 * IPs) with the port (bare too on port 80), as Istio adds them.
 */
export function virtualHostDomains(svc: Pick<Service, 'hostname' | 'namespace' | 'name' | 'addresses'>, port: number, clientNs: string): string[] {
  const out = aliasAuthorities(svc, port, clientNs);
  for (const addr of svc.addresses) {
    if (!addr || addr === '0.0.0.0' || addr === '::' || addr.includes('/')) continue;
    if (port === 80) out.push(addr.includes(':') ? `[${addr}]` : addr);
    out.push(hostPort(addr, port));
  }
  return out;
}
