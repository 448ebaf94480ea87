/**
 * The proxy's workload identity: the certificate chain, private key and trust bundle the proxy presents and
 * verifies with (Istio's SDS secrets `default` and `ROOTCA`, as istio-agent serves them to Envoy). The rest of
 * the proxy reads them through this interface only:
 *
 *   const id: WorkloadIdentity = agent;
 *   id.current();                       // { certChainPem, keyPem, rootPem, notAfter } or null before the first cert
 *   id.onChange((m) => ...);            // every new certificate (renewal), and a changed trust bundle
 *
 * The implementation is `IdentityAgent` (agent.ts): it generates an ECDSA P-256 key in-process (the key never
 * leaves the process and is never logged), gets it signed by the control plane's CSR service, and renews at half
 * of the certificate's lifetime (with jitter).
 */
export interface IdentityMaterial {
  /** The workload certificate then its intermediates (PEM; the root is in `rootPem`). */
  certChainPem: string;
  /** The private key (PKCS#8 PEM). Never log it. */
  keyPem: string;
  /** The trust bundle: the root(s) peer certificates must chain to (PEM). */
  rootPem: string;
  /** When the certificate expires. */
  notAfter: Date;
}

export interface WorkloadIdentity {
  /** The identity in force, or null before the first certificate arrived. */
  current(): IdentityMaterial | null;
  /** Calls `cb` with each new material (a renewed certificate or a new trust bundle). */
  onChange(cb: (m: IdentityMaterial) => void): void;
}

export { IdentityAgent, IdentityRefusedError } from './agent.js';
export type { IdentityAgentOptions } from './agent.js';
