/**
 * Certificates for tests, made by Weft's own CA library (src/controlplane/ca):
 *
 *   const ca = await createRootCa({ trustDomain: 'cluster.local' });
 *   const { certChainPem, keyPem, rootPem } = await issueForTest(ca, { namespace: 'default', serviceAccount: 'a' });
 *
 * `notBefore` + `ttlMs` make expired (or not yet valid) certificates; `caDir` writes a CA in Istio's cacerts layout.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createIntermediateCa, createRootCa, writeCa } from '../../src/controlplane/ca/index.js';
import type { CertificateAuthority } from '../../src/controlplane/ca/index.js';

export { createIntermediateCa, createRootCa };

export interface TestCert {
  /** leaf → intermediates → root, one PEM bundle (what a TLS context's `cert` takes). */
  certChainPem: string;
  /** The leaf alone. */
  certPem: string;
  /** PKCS#8 PEM of a fresh ECDSA P-256 key. */
  keyPem: string;
  /** The CA's trust bundle (a TLS context's `ca`). */
  rootPem: string;
  /** spiffe://<td>/ns/<ns>/sa/<sa>, or undefined for a DNS/IP certificate. */
  spiffeId?: string;
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** A workload certificate (URI SAN only) for an identity; default TTL 24 h. */
export async function issueForTest(
  ca: CertificateAuthority,
  opts: { namespace: string; serviceAccount: string; ttlMs?: number; notBefore?: Date },
): Promise<TestCert> {
  const identity = { namespace: opts.namespace, serviceAccount: opts.serviceAccount };
  const r = await ca.issueWithKey({ identity }, opts.ttlMs, opts.notBefore ? { notBefore: opts.notBefore } : {});
  return { certChainPem: r.certChainPem, certPem: r.certPem, keyPem: r.keyPem, rootPem: ca.rootPem, spiffeId: ca.spiffeId(identity), serial: r.serial, notBefore: r.notBefore, notAfter: r.notAfter };
}

/** A server certificate for DNS names and/or IP addresses (e.g. a gateway's user certificate). */
export async function issueServerCertForTest(
  ca: CertificateAuthority,
  opts: { dnsNames?: string[]; ipAddresses?: string[]; ttlMs?: number; notBefore?: Date },
): Promise<TestCert> {
  const r = await ca.issueWithKey({ altNames: { dnsNames: opts.dnsNames ?? [], ipAddresses: opts.ipAddresses ?? [] } }, opts.ttlMs, opts.notBefore ? { notBefore: opts.notBefore } : {});
  return { certChainPem: r.certChainPem, certPem: r.certPem, keyPem: r.keyPem, rootPem: ca.rootPem, serial: r.serial, notBefore: r.notBefore, notAfter: r.notAfter };
}

/** Writes a CA in Istio's cacerts layout into a fresh temporary directory (or `dir`); returns the directory. */
export function caDir(ca: CertificateAuthority, dir?: string): string {
  const d = dir ?? mkdtempSync(join(tmpdir(), 'weft-ca-'));
  writeCa(d, ca);
  return d;
}
