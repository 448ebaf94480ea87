/**
 * Weft's certificate authority: signs SPIFFE X.509 SVIDs for workloads and the control plane's own serving
 * certificate. Pure library: no sockets, no watching (the control plane does that, see watch.ts).
 *
 * Key material lives in a directory in Istio's `cacerts` layout, whichever way the CA came to be:
 *
 *   ca-cert.pem     the signing certificate (the root itself for a self-signed CA, else an intermediate)
 *   ca-key.pem      its private key (mode 0600)
 *   root-cert.pem   the trust bundle: the root(s) the chain ends at
 *   cert-chain.pem  ca-cert's chain up to the root (ca-cert first; may include the root; empty when self-signed)
 *
 * `loadOrCreateCa(dir)` loads such a directory, or creates a self-signed root (ECDSA P-256, 10 years,
 * O=<trust domain>) and writes it there on first start. A directory prepared by hand from a company root (as
 * Istio's "plug in CA certificates" task does) makes Weft an intermediate CA under that root. Loading checks
 * that the key matches ca-cert, that ca-cert is a CA, is within its validity, and chains (signature by
 * signature) to a certificate of root-cert.pem; every error names the file.
 *
 * Issued chains are leaf → ca-cert → intermediates → root, without duplicates, as the CSR API returns them.
 * A leaf never outlives the certificate that signs it (its notAfter is capped), and is backdated by one minute
 * so a peer whose clock is slightly behind accepts it.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { splitCertificates } from '../../pki/pem.js';
import { identityProblem, parseSpiffeUri, spiffeUri } from '../../pki/spiffe.js';
import type { WorkloadId } from '../../pki/spiffe.js';
import { buildCertificate, generateEcKey, parseCsr } from '../../pki/x509.js';
import type { AltNames } from '../../pki/x509.js';

/** Istio's defaults: workload certificates live 24 h, at most 90 days; the self-signed root 10 years. */
export const DEFAULT_WORKLOAD_TTL_MS = 24 * 3600_000;
export const DEFAULT_MAX_WORKLOAD_TTL_MS = 90 * 24 * 3600_000;
export const DEFAULT_ROOT_TTL_MS = 10 * 365 * 24 * 3600_000;
/** How far issued certificates are backdated (clock skew between peers). */
export const BACKDATE_MS = 60_000;

/** The file names of Istio's cacerts layout. */
export const CA_FILES = { caCert: 'ca-cert.pem', caKey: 'ca-key.pem', rootCert: 'root-cert.pem', certChain: 'cert-chain.pem' } as const;

/** A request the CA refuses. The message says why; `reason` classifies it (the CSR service maps it to a gRPC code). */
export class CaRequestError extends Error {
  override readonly name = 'CaRequestError';
  constructor(
    message: string,
    /** `identity`: the CSR asks for another identity; `request`: bad CSR or TTL; `ca`: the CA cannot sign. */
    readonly reason: 'identity' | 'request' | 'ca' = 'request',
  ) {
    super(message);
  }
}

/** A CA directory that cannot be loaded. The message names the file. */
export class CaLoadError extends Error {
  override readonly name = 'CaLoadError';
}

export interface CaOptions {
  /** SPIFFE trust domain of issued identities (default cluster.local; MeshConfig trustDomain). */
  trustDomain?: string;
  /** Default TTL of workload certificates (default 24 h). */
  workloadTtlMs?: number;
  /** Longest TTL a caller may ask for (default 90 days). */
  maxWorkloadTtlMs?: number;
}

/** An issued certificate. */
export interface IssuedCertificate {
  /** The leaf alone. */
  certPem: string;
  /** leaf → intermediates → root, one PEM per element (what the CSR API returns as `cert_chain`). */
  chain: string[];
  /** The chain as one PEM bundle. */
  certChainPem: string;
  /** Serial number, upper-case hex (as node:crypto's X509Certificate prints it). */
  serial: string;
  notBefore: Date;
  notAfter: Date;
}

/** What a certificate is for: a workload identity (URI SAN only) or DNS names / IPs (the control plane). */
export type Subject = { identity: IdentityRequest } | { altNames: AltNames };

/** A workload identity to sign; the trust domain defaults to the CA's (the control plane passes MeshConfig's). */
export type IdentityRequest = Omit<WorkloadId, 'trustDomain'> & { trustDomain?: string };

interface Material {
  caCert: X509Certificate;
  caCertPem: string;
  caKey: KeyObject;
  /** ca-cert → ... → root (ca-cert first, root last). */
  chainPems: string[];
  roots: X509Certificate[];
  rootPem: string;
}

export class CertificateAuthority {
  readonly trustDomain: string;
  readonly workloadTtlMs: number;
  readonly maxWorkloadTtlMs: number;
  /** Whether ca-cert is itself a root of the bundle (a self-signed CA) rather than an intermediate. */
  readonly selfSigned: boolean;
  /** Where the material came from (a directory), when loaded from one. */
  readonly dir: string | undefined;

  private readonly m: Material;

  /** Use createRootCa / loadCa / loadOrCreateCa. */
  constructor(m: Material, opts: CaOptions, dir?: string) {
    this.m = m;
    this.trustDomain = opts.trustDomain ?? 'cluster.local';
    const p = identityProblem({ trustDomain: this.trustDomain, namespace: 'x', serviceAccount: 'x' });
    if (p) throw new Error(p);
    this.workloadTtlMs = opts.workloadTtlMs ?? DEFAULT_WORKLOAD_TTL_MS;
    this.maxWorkloadTtlMs = opts.maxWorkloadTtlMs ?? DEFAULT_MAX_WORKLOAD_TTL_MS;
    this.selfSigned = m.roots.some((r) => r.raw.equals(m.caCert.raw));
    this.dir = dir;
  }

  /** The trust bundle (root-cert.pem): what peers verify workload certificates against. */
  get rootPem(): string {
    return this.m.rootPem;
  }

  /** The signing certificate (the root itself for a self-signed CA). */
  get caCertPem(): string {
    return this.m.caCertPem;
  }

  /** The signing certificate's chain: ca-cert → ... → root. */
  get caChain(): readonly string[] {
    return this.m.chainPems;
  }

  /** The signing certificate's expiry. */
  get caNotAfter(): Date {
    return new Date(this.m.caCert.validTo);
  }

  /** The signing key, to persist the CA or sign an intermediate. Never log it. */
  signingKey(): KeyObject {
    return this.m.caKey;
  }

  /** The SPIFFE URI of a workload identity in this CA's trust domain. */
  spiffeId(identity: IdentityRequest): string {
    return spiffeUri({ namespace: identity.namespace, serviceAccount: identity.serviceAccount, trustDomain: identity.trustDomain ?? this.trustDomain });
  }

  /**
   * Signs a PKCS#10 CSR for a workload identity (the one the caller's token grants). The certificate carries
   * exactly that identity's URI SAN, whatever else the CSR holds; a CSR that asks for a different identity is
   * refused. `ttlMs` 0 or undefined means the default TTL.
   */
  async signCsr(csrPem: string, identity: IdentityRequest, ttlMs?: number): Promise<IssuedCertificate> {
    let csr;
    try {
      csr = await parseCsr(csrPem);
    } catch (e) {
      throw new CaRequestError((e as Error).message);
    }
    const want = this.spiffeId(identity);
    for (const uri of csr.uris) {
      if (uri !== want) {
        const asked = parseSpiffeUri(uri);
        throw new CaRequestError(`CSR asks for identity ${uri}${asked ? '' : ' (not a workload SPIFFE ID)'}, but the caller is authenticated as ${want}`, 'identity');
      }
    }
    if (csr.dnsNames.length) throw new CaRequestError(`CSR asks for DNS names (${csr.dnsNames.join(', ')}); workload certificates carry only the SPIFFE URI ${want}`, 'identity');
    return this.issue({ identity }, csr.publicKey, ttlMs);
  }

  /**
   * Issues a leaf certificate for a public key (no proof of possession: for the CA's own callers). With
   * `opts.notBefore` the validity is exactly [notBefore, notBefore + ttl] (tests make expired or not yet valid
   * certificates that way); otherwise [now - 1 min, now + ttl].
   */
  async issue(subject: Subject, publicKey: KeyObject, ttlMs?: number, opts: { notBefore?: Date } = {}): Promise<IssuedCertificate> {
    const ttl = ttlMs && ttlMs > 0 ? ttlMs : this.workloadTtlMs;
    if (!Number.isFinite(ttl)) throw new CaRequestError(`requested TTL ${ttlMs} is not a number of milliseconds`);
    if (ttl > this.maxWorkloadTtlMs) throw new CaRequestError(`requested TTL ${fmtMs(ttl)} is greater than the max allowed TTL ${fmtMs(this.maxWorkloadTtlMs)}`);
    const altNames: AltNames = 'identity' in subject ? { uris: [this.spiffeId(subject.identity)] } : subject.altNames;
    const now = Date.now();
    const caNotAfter = Date.parse(this.m.caCert.validTo);
    if (caNotAfter <= now) throw new CaRequestError(`the CA certificate expired at ${this.m.caCert.validTo}; it cannot sign`, 'ca');
    const start = opts.notBefore?.getTime() ?? now;
    const notBefore = new Date(Math.floor((opts.notBefore ? start : start - BACKDATE_MS) / 1000) * 1000);
    const notAfter = new Date(Math.min(Math.floor((start + ttl) / 1000) * 1000, caNotAfter));
    const built = await buildCertificate({
      publicKey,
      notBefore,
      notAfter,
      isCa: false,
      altNames,
      issuerDer: new Uint8Array(this.m.caCert.raw),
      signingKey: this.m.caKey,
    });
    const chain = [built.pem, ...this.m.chainPems];
    return { certPem: built.pem, chain, certChainPem: chain.join(''), serial: built.serial, notBefore, notAfter };
  }

  /** Issues a certificate with a fresh ECDSA P-256 key (the control plane's serving certificate, tests). */
  async issueWithKey(subject: Subject, ttlMs?: number, opts: { notBefore?: Date } = {}): Promise<IssuedCertificate & { keyPem: string }> {
    const key = await generateEcKey();
    return { ...(await this.issue(subject, key.publicKey, ttlMs, opts)), keyPem: key.keyPem };
  }
}

function fmtMs(ms: number): string {
  const h = ms / 3600_000;
  return Number.isInteger(h) ? `${h}h` : `${ms / 1000}s`;
}

/** Creates a self-signed root CA in memory (ECDSA P-256, 10 years by default, O=<trust domain>). */
export async function createRootCa(opts: CaOptions & { rootTtlMs?: number } = {}): Promise<CertificateAuthority> {
  const trustDomain = opts.trustDomain ?? 'cluster.local';
  const key = await generateEcKey();
  const now = Date.now();
  const built = await buildCertificate({
    subject: { organization: trustDomain, commonName: 'Weft root CA' },
    publicKey: key.publicKey,
    notBefore: new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000),
    notAfter: new Date(Math.floor((now + (opts.rootTtlMs ?? DEFAULT_ROOT_TTL_MS)) / 1000) * 1000),
    isCa: true,
    signingKey: key.privateKey,
  });
  const cert = new X509Certificate(built.pem);
  return new CertificateAuthority({ caCert: cert, caCertPem: built.pem, caKey: key.privateKey, chainPems: [built.pem], roots: [cert], rootPem: built.pem }, { ...opts, trustDomain });
}

/**
 * Creates an intermediate CA signed by `parent` (ECDSA P-256), e.g. to make a cacerts directory in tests.
 * Its chain is intermediate → parent's chain.
 */
export async function createIntermediateCa(parent: CertificateAuthority, opts: CaOptions & { ttlMs?: number; commonName?: string } = {}): Promise<CertificateAuthority> {
  const key = await generateEcKey();
  const now = Date.now();
  const built = await buildCertificate({
    subject: { organization: opts.trustDomain ?? parent.trustDomain, commonName: opts.commonName ?? 'Weft intermediate CA' },
    publicKey: key.publicKey,
    notBefore: new Date(Math.floor((now - BACKDATE_MS) / 1000) * 1000),
    notAfter: new Date(Math.min(Math.floor((now + (opts.ttlMs ?? DEFAULT_ROOT_TTL_MS / 2)) / 1000) * 1000, parent.caNotAfter.getTime())),
    isCa: true,
    issuerDer: new Uint8Array(new X509Certificate(parent.caCertPem).raw),
    signingKey: parent.signingKey(),
  });
  const cert = new X509Certificate(built.pem);
  const rootPem = parent.rootPem;
  return new CertificateAuthority(
    { caCert: cert, caCertPem: built.pem, caKey: key.privateKey, chainPems: [built.pem, ...parent.caChain], roots: splitCertificates(rootPem).map((p) => new X509Certificate(p)), rootPem },
    { trustDomain: parent.trustDomain, ...opts },
  );
}

/** Writes a CA in the cacerts layout (directory 0700, key 0600, each file replaced atomically). */
export function writeCa(dir: string, ca: CertificateAuthority): void {
  writeCaFiles(dir, ca, false);
}

/**
 * Writes the four files, each through a temporary file then a rename. `exclusive`: only when the directory has
 * no key yet (the key is linked into place first, which fails when it exists: then nothing is written and the
 * result is false).
 */
function writeCaFiles(dir: string, ca: CertificateAuthority, exclusive: boolean): boolean {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const tmp = (name: string) => join(dir, `.${name}.${process.pid}.new`);
  const files: Array<[string, string, number]> = [
    [CA_FILES.caKey, ca.signingKey().export({ type: 'pkcs8', format: 'pem' }) as string, 0o600],
    [CA_FILES.caCert, ca.caCertPem, 0o644],
    [CA_FILES.certChain, ca.selfSigned ? '' : ca.caChain.join(''), 0o644],
    [CA_FILES.rootCert, ca.rootPem, 0o644],
  ];
  for (const [name, data, mode] of files) {
    writeFileSync(tmp(name), data, { mode });
    chmodSync(tmp(name), mode);
  }
  if (exclusive) {
    try {
      linkSync(tmp(CA_FILES.caKey), join(dir, CA_FILES.caKey));
    } catch (e) {
      for (const [name] of files) rmSync(tmp(name), { force: true });
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw e;
    }
    rmSync(tmp(CA_FILES.caKey));
  }
  for (const [name] of exclusive ? files.slice(1) : files) renameSync(tmp(name), join(dir, name));
  return true;
}

function readPemFile(dir: string, name: string, required: boolean): string | undefined {
  const path = join(dir, name);
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT' && !required) return undefined;
    throw new CaLoadError(`${path}: cannot read: ${(e as Error).message}`);
  }
}

function certsOf(dir: string, name: string, text: string): X509Certificate[] {
  const pems = splitCertificates(text);
  return pems.map((p, i) => {
    try {
      return new X509Certificate(p);
    } catch (e) {
      throw new CaLoadError(`${join(dir, name)}: certificate #${i + 1} cannot be parsed: ${(e as Error).message}`);
    }
  });
}

/** Whether `child` is signed by `parent` (issuer name and signature). */
function signedBy(child: X509Certificate, parent: X509Certificate): boolean {
  return child.checkIssued(parent) && child.verify(parent.publicKey);
}

/** Loads a CA from a directory in the cacerts layout (see the header); throws CaLoadError naming the file. */
export function loadCa(dir: string, opts: CaOptions = {}): CertificateAuthority {
  const caCertText = readPemFile(dir, CA_FILES.caCert, true)!;
  const caKeyText = readPemFile(dir, CA_FILES.caKey, true)!;
  const rootText = readPemFile(dir, CA_FILES.rootCert, true)!;
  const chainText = readPemFile(dir, CA_FILES.certChain, false) ?? '';
  const caCerts = certsOf(dir, CA_FILES.caCert, caCertText);
  if (caCerts.length !== 1) throw new CaLoadError(`${join(dir, CA_FILES.caCert)}: expected exactly one certificate, found ${caCerts.length}`);
  const caCert = caCerts[0]!;
  const roots = certsOf(dir, CA_FILES.rootCert, rootText);
  if (roots.length === 0) throw new CaLoadError(`${join(dir, CA_FILES.rootCert)}: no certificate found`);
  let caKey: KeyObject;
  try {
    caKey = createPrivateKey(caKeyText);
  } catch (e) {
    throw new CaLoadError(`${join(dir, CA_FILES.caKey)}: not a readable private key: ${(e as Error).message}`);
  }
  if (!caCert.checkPrivateKey(caKey)) throw new CaLoadError(`${join(dir, CA_FILES.caKey)}: the key does not match ${CA_FILES.caCert}`);
  if (!caCert.ca) throw new CaLoadError(`${join(dir, CA_FILES.caCert)}: not a CA certificate (basicConstraints cA is not set)`);
  const now = Date.now();
  if (Date.parse(caCert.validTo) <= now) throw new CaLoadError(`${join(dir, CA_FILES.caCert)}: expired at ${caCert.validTo}`);
  if (Date.parse(caCert.validFrom) > now + BACKDATE_MS) throw new CaLoadError(`${join(dir, CA_FILES.caCert)}: not valid before ${caCert.validFrom}`);
  // The chain from ca-cert to a root: cert-chain.pem's certificates (ca-cert and roots dropped), then a root.
  const isRoot = (c: X509Certificate) => roots.some((r) => r.raw.equals(c.raw));
  const middle = certsOf(dir, CA_FILES.certChain, chainText).filter((c) => !c.raw.equals(caCert.raw) && !isRoot(c));
  const chain = [caCert, ...middle];
  if (!isRoot(caCert)) {
    for (let i = 0; i + 1 < chain.length; i++) {
      if (!signedBy(chain[i]!, chain[i + 1]!)) throw new CaLoadError(`${join(dir, CA_FILES.certChain)}: "${chain[i]!.subject.replace(/\n/g, ', ')}" is not signed by the next certificate of the chain ("${chain[i + 1]!.subject.replace(/\n/g, ', ')}")`);
    }
    const last = chain[chain.length - 1]!;
    const root = roots.find((r) => signedBy(last, r));
    if (!root) throw new CaLoadError(`${join(dir, CA_FILES.rootCert)}: no root signs "${last.subject.replace(/\n/g, ', ')}" (the end of ${middle.length ? CA_FILES.certChain : CA_FILES.caCert}); the chain does not verify`);
    chain.push(root);
  } else if (!signedBy(caCert, caCert)) {
    throw new CaLoadError(`${join(dir, CA_FILES.caCert)}: is in ${CA_FILES.rootCert} but is not self-signed`);
  }
  return new CertificateAuthority(
    { caCert, caCertPem: caCert.toString(), caKey, chainPems: chain.map((c) => c.toString()), roots, rootPem: roots.map((r) => r.toString()).join('') },
    opts,
    dir,
  );
}

/**
 * Loads the CA in `dir`, or when the directory holds no ca-cert.pem and ca-key.pem yet, creates a self-signed
 * root there (first start). Returns the CA and whether it was created. Safe against several processes starting
 * at once on the same directory: the key file is claimed with an exclusive link, the losers load the winner's CA
 * (waiting up to 5 s for its files to be complete).
 */
export async function loadOrCreateCa(dir: string, opts: CaOptions & { rootTtlMs?: number } = {}): Promise<{ ca: CertificateAuthority; created: boolean }> {
  const hasCert = existsSync(join(dir, CA_FILES.caCert));
  const hasKey = existsSync(join(dir, CA_FILES.caKey));
  if (hasCert || hasKey) return { ca: await loadSettled(dir, opts), created: false };
  const ca = await createRootCa(opts);
  const created = writeCaFiles(dir, ca, true);
  return { ca: await loadSettled(dir, opts), created };
}

/** loadCa, retried for a while when the files are being written by another process. */
async function loadSettled(dir: string, opts: CaOptions): Promise<CertificateAuthority> {
  const deadline = Date.now() + 5000;
  for (;;) {
    try {
      return loadCa(dir, opts);
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(100);
    }
  }
}
