/**
 * The proxy's TLS secrets by SDS name: what transport sockets refer to with `tls_certificate_sds_secret_configs`
 * and `validation_context_sds_secret_config` (Envoy's SecretManager, with Istio's naming).
 *
 *   const secrets = new SecretManager(identity);   // identity: the workload's own certificate (optional)
 *   secrets.get('default')                         // the workload certificate chain + key (from the identity)
 *   secrets.get('ROOTCA')                          // the trust bundle: the identity's root and the ADS Secret ROOTCA
 *   secrets.get('my-credential')                   // any other name: an ADS Secret (gateways' credentialName)
 *   secrets.applyAds(name, compileSecret(proto))   // from the SDS watch (config/xds-config.ts); undefined removes it
 *   secrets.version                                // bumped on every change: contexts rebuild lazily (context.ts)
 *   const off = secrets.onChange(cb)               // called after every change (rotation)
 *
 * Secrets are immutable values: a TlsSecret object stays the same until its content changes, so a TLS context can
 * tell by identity whether it must rebuild its node:tls SecureContext. Private keys are held in memory only and
 * never logged or dumped.
 */
import { readFileSync } from 'node:fs';
import type { Secret } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { DataSource } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { CertificateValidationContext } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { ConfigError } from '../config-error.js';
import type { WorkloadIdentity } from './identity/index.js';

/** Istio's SDS name of the workload certificate. */
export const WORKLOAD_CERT_SECRET = 'default';
/** Istio's SDS name of the mesh trust bundle. */
export const ROOT_CA_SECRET = 'ROOTCA';

/** One secret: a certificate with its key, and/or a validation context. Fields absent from the secret are ''. */
export interface TlsSecret {
  /** PEM certificate chain, leaf first ('' when the secret carries no certificate). */
  readonly certChainPem: string;
  /** PEM private key of the leaf ('' when none). */
  readonly keyPem: string;
  /** PEM trust anchors (`validation_context.trusted_ca`; the identity's root for ROOTCA); '' when none. */
  readonly trustedCaPem: string;
  /** A validation context from SDS beyond its trusted_ca (SAN matchers), merged as Envoy merges combined contexts. */
  readonly validation?: CertificateValidationContext;
}

export class SecretManager {
  private readonly ads = new Map<string, TlsSecret>();
  private readonly listeners = new Set<() => void>();
  private identity: WorkloadIdentity | undefined;
  private identitySnapshot: ReturnType<WorkloadIdentity['current']> = null;
  private identityCert: TlsSecret | undefined;
  private identityRoot: TlsSecret | undefined;
  private bundle: { ads: TlsSecret; own: TlsSecret; merged: TlsSecret } | undefined;
  /** Incremented on every change of any secret. */
  version = 0;

  constructor(identity?: WorkloadIdentity) {
    if (identity !== undefined) this.setIdentity(identity);
  }

  /** Uses a workload identity for `default` (and `ROOTCA` unless ADS sends one). */
  setIdentity(identity: WorkloadIdentity): void {
    this.identity = identity;
    identity.onChange(() => this.changed());
    this.changed();
  }

  /** The secret of an SDS name; undefined while it is not known (yet). */
  get(name: string): TlsSecret | undefined {
    if (name === WORKLOAD_CERT_SECRET) return this.fromIdentity()?.cert ?? this.ads.get(name);
    if (name === ROOT_CA_SECRET) return this.trustBundle();
    return this.ads.get(name);
  }

  /**
   * ROOTCA: the identity's root (what its certificate chains to) together with the control plane's ROOTCA when it
   * sends one (the mesh bundle, which carries both roots during a root rotation); either alone when only one is there.
   */
  private trustBundle(): TlsSecret | undefined {
    const ads = this.ads.get(ROOT_CA_SECRET);
    const own = this.fromIdentity()?.root;
    if (ads === undefined || own === undefined) return ads ?? own;
    if (this.bundle?.ads !== ads || this.bundle.own !== own) {
      const pems = new Set([...splitPem(own.trustedCaPem), ...splitPem(ads.trustedCaPem)]);
      this.bundle = { ads, own, merged: { ...ads, trustedCaPem: [...pems].join('') } };
    }
    return this.bundle.merged;
  }

  /** Whether a name is served by the local identity rather than by ADS. */
  isLocal(name: string): boolean {
    return name === WORKLOAD_CERT_SECRET;
  }

  /** Sets (or with undefined removes) a secret received over ADS. */
  applyAds(name: string, secret: TlsSecret | undefined): void {
    if (secret === undefined) {
      if (!this.ads.delete(name)) return;
    } else this.ads.set(name, secret);
    this.changed();
  }

  /** Calls `cb` after every change; returns the unsubscribe function. */
  onChange(cb: () => void): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  private changed(): void {
    this.version++;
    for (const cb of this.listeners) cb();
  }

  private fromIdentity(): { cert: TlsSecret; root: TlsSecret } | undefined {
    const cur = this.identity?.current() ?? null;
    if (cur === null) return undefined;
    if (cur !== this.identitySnapshot || this.identityCert === undefined) {
      this.identitySnapshot = cur;
      this.identityCert = { certChainPem: cur.certChainPem, keyPem: cur.keyPem, trustedCaPem: '' };
      if (this.identityRoot?.trustedCaPem !== cur.rootPem) this.identityRoot = { certChainPem: '', keyPem: '', trustedCaPem: cur.rootPem };
    }
    return { cert: this.identityCert, root: this.identityRoot! };
  }
}

/** A manager with no identity and no SDS: for TLS contexts compiled without one (only inline secrets resolve). */
export const NO_SECRETS = new SecretManager();

/** Reads an Envoy DataSource (inline_string, inline_bytes, filename, environment_variable) as text. */
export function readDataSource(ds: DataSource | undefined, fail: (detail: string) => never): string {
  const s = ds?.specifier;
  switch (s?.case) {
    case 'inlineString':
      return s.value;
    case 'inlineBytes':
      return Buffer.from(s.value).toString('latin1');
    case 'filename':
      try {
        return readFileSync(s.value, 'latin1');
      } catch (e) {
        return fail(`cannot read ${s.value}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      }
    case 'environmentVariable': {
      const v = process.env[s.value];
      return v === undefined ? fail(`environment variable ${s.value} is not set`) : v;
    }
    default:
      return fail('a data source (inline_string, inline_bytes, filename or environment_variable) is required');
  }
}

/** Compiles an SDS Secret resource; throws ConfigError (kind `secret`) naming the field. */
export function compileSecret(s: Secret): TlsSecret {
  const name = s.name;
  const fail = (field: string) => (detail: string): never => {
    throw new ConfigError(name, field, detail, 'secret');
  };
  const t = s.type;
  if (t.case === 'tlsCertificate') {
    const c = t.value;
    if (c.privateKeyProvider) fail('tls_certificate.private_key_provider')('private key providers are not supported');
    if (c.password) fail('tls_certificate.password')('encrypted private keys are not supported');
    const certChainPem = readDataSource(c.certificateChain, fail('tls_certificate.certificate_chain'));
    const keyPem = readDataSource(c.privateKey, fail('tls_certificate.private_key'));
    checkPem(certChainPem, 'CERTIFICATE', fail('tls_certificate.certificate_chain'));
    checkPem(keyPem, 'PRIVATE KEY', fail('tls_certificate.private_key'));
    return { certChainPem, keyPem, trustedCaPem: '' };
  }
  if (t.case === 'validationContext') {
    const v = t.value;
    const trustedCaPem = v.trustedCa ? readDataSource(v.trustedCa, fail('validation_context.trusted_ca')) : '';
    if (trustedCaPem !== '') checkPem(trustedCaPem, 'CERTIFICATE', fail('validation_context.trusted_ca'));
    return { certChainPem: '', keyPem: '', trustedCaPem, validation: v };
  }
  return fail('type')(t.case === undefined ? 'a tls_certificate or validation_context is required' : `${t.case} secrets are not supported`);
}

/** The PEM certificates of a bundle, each with its trailing newline. */
function splitPem(pem: string): string[] {
  return pem.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----\n?/g)?.map((c) => (c.endsWith('\n') ? c : c + '\n')) ?? [];
}

function checkPem(pem: string, label: string, fail: (detail: string) => never): void {
  if (!pem.includes('-----BEGIN ') || !pem.includes(`${label}-----`)) fail(`not a PEM ${label}`);
}
