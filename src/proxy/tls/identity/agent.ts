/**
 * `IdentityAgent`: the proxy side of workload identity (what istio-agent does for Envoy).
 *
 * - start(): generates an ECDSA P-256 key (in process; never written, sent or logged), builds a CSR, and calls
 *   the control plane's CSR service (`IstioCertificateService/CreateCertificate` on the TLS xDS port, 15012) over
 *   TLS, verifying the control plane's certificate against the configured root, with `authorization: Bearer
 *   <token>`. Transient failures (the control plane not up yet) are retried with backoff; a refusal
 *   (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT) rejects start() with the control plane's reason.
 * - The response chain is checked: the leaf's key must be ours, its URI SAN the identity we are (when known).
 * - Renewal: at `renewRatio` (0.5) of the lifetime measured from when the certificate arrived, ± `jitterRatio`
 *   (Istio's SECRET_GRACE_PERIOD_RATIO and its jitter), with a new key each time. A renewal authenticates with
 *   the current certificate over mTLS while it is valid (so an expired bootstrap token does not matter), else
 *   with the token. A failed renewal is retried with backoff (1 s doubling to 30 s) while the current
 *   certificate stays in force.
 * - channelCredentials(): gRPC credentials for mTLS to the control plane that always use the newest certificate
 *   and trust bundle (each new connection; the proxy's xDS channel uses them).
 */
import { X509Certificate, createPublicKey } from 'node:crypto';
import { Client, credentials as grpcCredentials, experimental, Metadata, status as grpcStatus } from '@grpc/grpc-js';
import type { ChannelCredentials, ServiceError } from '@grpc/grpc-js';
import { caServiceDefinition, CREATE_CERTIFICATE_PATH } from '../../../pki/ca-api.js';
import type { CertificateRequest, CertificateResponse } from '../../../pki/ca-api.js';
import { MemoryCertificateProvider, spiffeUrisOf } from '../../../pki/grpc-certs.js';
import { splitCertificates } from '../../../pki/pem.js';
import { parseSpiffeUri } from '../../../pki/spiffe.js';
import type { IdentityMaterial, WorkloadIdentity } from './index.js';

export interface IdentityAgentOptions {
  /** `host:port` of the control plane's TLS xDS port (CSR service). */
  caAddr: string;
  /** The bootstrap token (re-read on every use, so a refreshed token file is picked up); undefined = none. */
  token: () => string | undefined;
  /** Root certificate(s) to verify the control plane with before the first certificate (PEM). */
  rootPem: string;
  /** Who this proxy is; the issued certificate must say so. */
  identity?: { namespace: string; serviceAccount: string };
  /** Requested certificate TTL (default: the CA's). */
  ttlMs?: number;
  /** Renew at this fraction of the lifetime (default 0.5). */
  renewRatio?: number;
  /** ± jitter of the renewal point, as a fraction of the lifetime (default 0.01, Istio's). */
  jitterRatio?: number;
  /** TLS server name to verify instead of the host of caAddr (grpc.ssl_target_name_override). */
  serverName?: string;
  /** How long one CSR call may take (default 10 s). */
  callTimeoutMs?: number;
  logger: { info(o: object, m: string): void; warn(o: object, m: string): void; error(o: object, m: string): void };
  random?: () => number;
}

/** The control plane refused to issue a certificate; the message is its reason. */
export class IdentityRefusedError extends Error {
  override readonly name = 'IdentityRefusedError';
  constructor(
    message: string,
    readonly code: grpcStatus,
  ) {
    super(message);
  }
}

const REFUSALS = new Set([grpcStatus.UNAUTHENTICATED, grpcStatus.PERMISSION_DENIED, grpcStatus.INVALID_ARGUMENT]);

export class IdentityAgent implements WorkloadIdentity {
  private material: IdentityMaterial | null = null;
  private readonly listeners = new Set<(m: IdentityMaterial) => void>();
  private readonly provider = new MemoryCertificateProvider();
  private timer?: NodeJS.Timeout;
  /** Ends start()'s wait between attempts (on close). */
  private wake?: () => void;
  private closed = false;
  private failures = 0;
  private readonly random: () => number;
  /** Serial number of the certificate in force (hex). */
  serial = '';

  constructor(private readonly opts: IdentityAgentOptions) {
    this.random = opts.random ?? Math.random;
    this.provider.setCa(opts.rootPem);
  }

  current(): IdentityMaterial | null {
    return this.material;
  }

  onChange(cb: (m: IdentityMaterial) => void): void {
    this.listeners.add(cb);
  }

  /** gRPC credentials for mTLS to the control plane, following renewals (for new connections). */
  channelCredentials(): ChannelCredentials {
    return experimental.createCertificateProviderChannelCredentials(this.provider, this.provider);
  }

  /** Gets the first certificate (retrying transient failures); rejects with IdentityRefusedError on a refusal. */
  async start(): Promise<IdentityMaterial> {
    for (;;) {
      try {
        const m = await this.fetch();
        this.install(m.material, m.receivedAt, m.serial);
        return m.material;
      } catch (e) {
        if (e instanceof IdentityRefusedError || this.closed) throw e;
        const delay = this.backoff();
        this.opts.logger.warn({ ca: this.opts.caAddr, err: (e as Error).message, retryInMs: delay }, 'cannot get the workload certificate yet; retrying');
        await new Promise<void>((r) => {
          this.wake = r;
          this.timer = setTimeout(r, delay);
        });
        if (this.closed) throw new Error('identity agent closed');
      }
    }
  }

  /** Renews now (also what the timer does). */
  async renew(): Promise<void> {
    try {
      const m = await this.fetch();
      this.install(m.material, m.receivedAt, m.serial);
    } catch (e) {
      if (this.closed) return;
      const delay = this.backoff();
      this.opts.logger.error({ ca: this.opts.caAddr, err: (e as Error).message, retryInMs: delay, notAfter: this.material?.notAfter.toISOString() }, 'workload certificate renewal failed; the current certificate stays in force');
      this.schedule(delay);
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.wake?.();
  }

  private backoff(): number {
    const cap = Math.min(30_000, 1000 * 2 ** this.failures++);
    return Math.round(cap / 2 + (this.random() * cap) / 2);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.renew(), Math.min(Math.max(0, ms), 2 ** 31 - 1));
    this.timer.unref();
  }

  private install(m: IdentityMaterial, receivedAt: number, serial: string): void {
    this.failures = 0;
    this.material = m;
    this.serial = serial;
    this.provider.setCa(m.rootPem);
    this.provider.setIdentity(m.certChainPem, m.keyPem);
    const lifetime = m.notAfter.getTime() - receivedAt;
    const ratio = (this.opts.renewRatio ?? 0.5) + (this.opts.jitterRatio ?? 0.01) * (2 * this.random() - 1);
    const renewIn = receivedAt + lifetime * ratio - Date.now();
    this.opts.logger.info({ serial, notAfter: m.notAfter.toISOString(), renewInMs: Math.round(renewIn) }, 'workload certificate installed');
    // At least a second apart, so a certificate capped by an expiring CA cannot make renewals spin.
    this.schedule(Math.max(1000, renewIn));
    for (const l of this.listeners) l(m);
  }

  /** One CSR round trip: new key, CSR, call, checks. */
  private async fetch(): Promise<{ material: IdentityMaterial; receivedAt: number; serial: string }> {
    // pkijs (x509.ts) is loaded with the first certificate request: a sidecar without mesh mTLS never loads it.
    const { buildCsr, generateEcKey } = await import('../../../pki/x509.js');
    const key = await generateEcKey();
    const csr = await buildCsr(key.privateKey, {});
    const cur = this.material;
    const certValid = cur !== null && cur.notAfter.getTime() > Date.now() + 1000;
    const token = this.opts.token();
    // Renewals go with the current certificate while it is valid; then (or if that is refused) the token.
    const attempts: Array<'cert' | 'token'> = certValid ? (token ? ['cert', 'token'] : ['cert']) : token ? ['token'] : [];
    if (attempts.length === 0) throw new IdentityRefusedError('no token to authenticate to the CA with (--token-file or WEFT_TOKEN) and no valid certificate', grpcStatus.UNAUTHENTICATED);
    let res: CertificateResponse | undefined;
    let lastErr: unknown;
    for (const how of attempts) {
      try {
        res = await this.call({ csr, validityDurationSeconds: Math.round((this.opts.ttlMs ?? 0) / 1000), metadata: {} }, how === 'cert' ? cur : null, how === 'token' ? token : undefined);
        break;
      } catch (e) {
        lastErr = e;
      }
    }
    if (!res) throw lastErr;
    const receivedAt = Date.now();
    const chain = res.certChain.flatMap((c) => splitCertificates(c));
    if (chain.length === 0) throw new Error('the CA answered with an empty certificate chain');
    const leaf = new X509Certificate(chain[0]!);
    if (!leaf.publicKey.equals(createPublicKey(key.privateKey))) throw new Error('the CA returned a certificate for another key');
    const ids = spiffeUrisOf(leaf.subjectAltName).map(parseSpiffeUri);
    const want = this.opts.identity;
    if (want && !ids.some((id) => id && id.namespace === want.namespace && id.serviceAccount === want.serviceAccount)) {
      throw new IdentityRefusedError(`the CA issued ${leaf.subjectAltName ?? 'a certificate without SAN'}, not namespace ${want.namespace} service account ${want.serviceAccount}: the token is for another identity`, grpcStatus.PERMISSION_DENIED);
    }
    const root = chain.length > 1 ? chain[chain.length - 1]! : this.opts.rootPem;
    const certChain = chain.length > 1 ? chain.slice(0, -1) : chain;
    return {
      material: { certChainPem: certChain.join(''), keyPem: key.keyPem, rootPem: root, notAfter: new Date(leaf.validTo) },
      receivedAt,
      serial: leaf.serialNumber,
    };
  }

  private call(req: CertificateRequest, withCert: IdentityMaterial | null, token: string | undefined): Promise<CertificateResponse> {
    const root = Buffer.from(this.material?.rootPem ?? this.opts.rootPem);
    const creds = withCert ? grpcCredentials.createSsl(root, Buffer.from(withCert.keyPem), Buffer.from(withCert.certChainPem)) : grpcCredentials.createSsl(root);
    const client = new Client(this.opts.caAddr, creds, this.opts.serverName ? { 'grpc.ssl_target_name_override': this.opts.serverName, 'grpc.default_authority': this.opts.serverName } : {});
    const md = new Metadata();
    if (token) md.set('authorization', `Bearer ${token}`);
    const def = caServiceDefinition.CreateCertificate;
    return new Promise<CertificateResponse>((resolve, reject) => {
      client.makeUnaryRequest(
        CREATE_CERTIFICATE_PATH,
        def.requestSerialize,
        def.responseDeserialize,
        req,
        md,
        { deadline: Date.now() + (this.opts.callTimeoutMs ?? 10_000) },
        (err: ServiceError | null, res?: CertificateResponse) => {
          client.close();
          if (err) reject(REFUSALS.has(err.code) ? new IdentityRefusedError(`the CA refused the certificate request: ${err.details}`, err.code) : new Error(`CSR call to ${this.opts.caAddr} failed: ${err.details || err.message}`));
          else resolve(res!);
        },
      );
    });
  }
}
