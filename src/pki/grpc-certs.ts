/**
 * Certificates for gRPC TLS that change while channels and servers run: a grpc-js CertificateProvider fed from
 * memory. The control plane's TLS xDS port takes its serving certificate and trust bundle from one (renewed
 * serving certificate, replaced CA files); the proxy's xDS channel takes its client certificate and roots from
 * another (certificate rotation). grpc-js builds each new TLS context from the provider's latest values, so a
 * change applies to every connection opened after it; connections already open keep theirs.
 */
import { experimental } from '@grpc/grpc-js';

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

export class MemoryCertificateProvider implements experimental.CertificateProvider {
  private ca: experimental.CaCertificateUpdate | null = null;
  private identity: experimental.IdentityCertificateUpdate | null = null;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();

  /** Sets the trusted roots (PEM bundle). */
  setCa(rootPem: string): void {
    this.ca = { caCertificate: Buffer.from(rootPem) };
    for (const l of this.caListeners) l(this.ca);
  }

  /** Sets the own certificate chain and key (PEM). */
  setIdentity(certChainPem: string, keyPem: string): void {
    this.identity = { certificate: Buffer.from(certChainPem), privateKey: Buffer.from(keyPem) };
    for (const l of this.identityListeners) l(this.identity);
  }

  get hasIdentity(): boolean {
    return this.identity !== null;
  }

  // A new listener hears the current value on the next microtask, not during the call: grpc-js registers its
  // own watcher only after adding the listener, and would lose a synchronous first update.
  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    queueMicrotask(() => {
      if (this.ca && this.caListeners.has(listener)) listener(this.ca);
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.identity && this.identityListeners.has(listener)) listener(this.identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }
}

/** The SPIFFE URIs among a peer certificate's subjectaltname (`URI:spiffe://..., DNS:...`). */
export function spiffeUrisOf(subjectaltname: string | undefined): string[] {
  if (!subjectaltname) return [];
  return subjectaltname
    .split(', ')
    .filter((s) => s.startsWith('URI:spiffe://'))
    .map((s) => s.slice(4));
}
