/**
 * Envoy's TLS transport socket contexts (envoy.transport_sockets.tls) compiled for node:tls.
 *
 *   const server = compileDownstreamTls(downstreamTlsContext, secrets, fail);   // per listener filter chain
 *   server.secureContext()          // the current SecureContext (undefined while a secret is missing)
 *   server.verifyPeer(tlsSocket)    // after the handshake: '' or the Envoy stat naming why the peer is refused
 *   const client = compileUpstreamTls(upstreamTlsContext, secrets, fail);       // per cluster / socket match
 *   client.connectOptions(host)     // node:tls connect options: SecureContext, SNI, ALPN, SAN check, session
 *
 * Both sides resolve their certificate (`tls_certificates` inline or `tls_certificate_sds_secret_configs`) and
 * their trust (`validation_context` inline, `validation_context_sds_secret_config`, or a combined context: the
 * default part's SAN matchers with the SDS part's trusted CA) through the SecretManager (secrets.ts). The
 * SecureContext is built once and rebuilt only when a secret it uses changed (the manager's version moved and the
 * resolved secret objects differ): after a rotation, connections already established keep their session while new
 * ones handshake with the new certificate. Session resumption: the server context issues TLS session tickets
 * (keys per SecureContext, so a rotation also retires the tickets); the client keeps the last session per host
 * and offers it on the next connection.
 *
 * Peer verification, as Envoy's DefaultCertValidator: with a trusted CA the chain must verify (expiry included,
 * unless allow_expired_certificate); with SAN matchers (match_typed_subject_alt_names — URI, DNS, EMAIL, IP_ADDRESS
 * — or the older match_subject_alt_names against every SAN) one SAN must match. A downstream with
 * require_client_certificate refuses a client without a certificate in the handshake; without it a client may
 * present none (a certificate it presents is still verified). Refusals are counted as Envoy does:
 * ssl.fail_verify_no_cert, ssl.fail_verify_error, ssl.fail_verify_san.
 */
import type { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type ConnectionOptions, type PeerCertificate, type SecureContext, type SecureContextOptions, type Server as TlsServer, type TlsOptions as TlsServerOptions, type TLSSocket } from 'node:tls';
import type { DownstreamTlsContext, UpstreamTlsContext, CommonTlsContext } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { SubjectAltNameMatcher_SanType, TlsParameters_TlsProtocol, type CertificateValidationContext } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { stringMatcher } from '../upstream/cluster/compile.js';
import { readDataSource, type SecretManager, type TlsSecret } from './secrets.js';
import { setPeer, type PeerInfo } from './peer.js';
import type { TlsStats } from './stats.js';

/** Reports a configuration error at a field path relative to the TLS context. */
export type TlsFail = (field: string, detail: string) => never;

/** Where a certificate or a trust bundle comes from. */
type SecretRef = { readonly sds: string } | { readonly inline: TlsSecret };

type SanMatch = (sans: readonly San[]) => boolean;
export interface San {
  type: 'URI' | 'DNS' | 'EMAIL' | 'IP';
  value: string;
}

/** Why a peer is refused, as the Envoy stat that counts it; '' when accepted. */
export type VerifyResult = '' | 'fail_verify_no_cert' | 'fail_verify_error' | 'fail_verify_san' | 'fail_verify_cert_hash';

const VERSIONS: Record<number, SecureContextOptions['minVersion'] | undefined> = {
  [TlsParameters_TlsProtocol.TLSv1_0]: 'TLSv1',
  [TlsParameters_TlsProtocol.TLSv1_1]: 'TLSv1.1',
  [TlsParameters_TlsProtocol.TLSv1_2]: 'TLSv1.2',
  [TlsParameters_TlsProtocol.TLSv1_3]: 'TLSv1.3',
};

/** What both sides share: certificate, trust, SAN matchers, ALPN and protocol parameters. */
class TlsBase {
  private built: SecureContextOptions | undefined;
  private builtVersion = -1;
  private builtCert: TlsSecret | undefined;
  private builtTrust: TlsSecret | undefined;
  /** Checks SANs of a verified peer (undefined: any SAN). */
  protected sanMatch: SanMatch | undefined;
  /** SAN matchers coming with an SDS validation context, compiled per secret version. */
  private sdsSan: { secret: TlsSecret; match: SanMatch | undefined } | undefined;

  constructor(
    protected readonly secrets: SecretManager,
    protected readonly cert: SecretRef | undefined,
    protected readonly trust: SecretRef | undefined,
    /** Verify against the OS / Node root certificates (validation_context.system_root_certs). */
    protected readonly systemRoots: boolean,
    protected readonly base: SecureContextOptions,
    readonly alpn: readonly string[],
    readonly allowExpired: boolean,
    protected readonly certHashes: readonly string[],
    sanMatch: SanMatch | undefined,
  ) {
    this.sanMatch = sanMatch;
  }

  /** Verification is configured (a CA, or SAN / hash pins). */
  get verifies(): boolean {
    return this.trust !== undefined || this.systemRoots || this.sanMatch !== undefined || this.certHashes.length > 0;
  }

  /** The SDS names this context reads (to subscribe to them). */
  sdsNames(): string[] {
    const out: string[] = [];
    for (const r of [this.cert, this.trust]) if (r !== undefined && 'sds' in r) out.push(r.sds);
    return out;
  }

  /**
   * The current context options (certificate, key, CA and protocol parameters); undefined while a secret it needs
   * is not available. The same object is returned until a secret it uses changes (`changed` tells the caller).
   */
  protected contextOptions(): { opts: SecureContextOptions; changed: boolean } | undefined {
    const v = this.secrets.version;
    if (v === this.builtVersion && this.built !== undefined) return { opts: this.built, changed: false };
    const cert = this.resolve(this.cert);
    const trust = this.resolve(this.trust);
    if ((this.cert !== undefined && cert === undefined) || (this.trust !== undefined && trust === undefined)) return undefined;
    let changed = false;
    if (this.built === undefined || cert !== this.builtCert || trust !== this.builtTrust) {
      const opts: SecureContextOptions = { ...this.base };
      if (cert !== undefined) {
        opts.cert = cert.certChainPem;
        opts.key = cert.keyPem;
      }
      if (trust !== undefined) opts.ca = trust.trustedCaPem;
      this.built = opts;
      this.builtCert = cert;
      this.builtTrust = trust;
      changed = true;
    }
    this.builtVersion = v;
    return { opts: this.built, changed };
  }

  private resolve(r: SecretRef | undefined): TlsSecret | undefined {
    if (r === undefined) return undefined;
    return 'inline' in r ? r.inline : this.secrets.get(r.sds);
  }

  /** SAN matchers in force: the static ones, else those of an SDS validation context. */
  private currentSanMatch(): SanMatch | undefined {
    if (this.sanMatch !== undefined) return this.sanMatch;
    const t = this.trust !== undefined && 'sds' in this.trust ? this.secrets.get(this.trust.sds) : undefined;
    if (t?.validation === undefined) return undefined;
    if (this.sdsSan?.secret !== t) {
      const fail = (_f: string, detail: string): never => {
        throw new Error(detail);
      };
      let match: SanMatch | undefined;
      try {
        match = sanMatcher(t.validation, '', fail);
      } catch {
        match = () => false; // an unusable matcher from SDS refuses rather than accepts
      }
      this.sdsSan = { secret: t, match };
    }
    return this.sdsSan.match;
  }

  /** Verifies a peer certificate after the chain check (authorizationError: node's verdict, null when trusted). */
  protected check(cert: Pick<CertFacts, 'sans' | 'certHash'> | undefined, authorizationError: string | null, chainChecked: boolean): VerifyResult {
    if (cert === undefined) return this.verifies ? 'fail_verify_no_cert' : '';
    if (chainChecked && authorizationError !== null && !(this.allowExpired && authorizationError === 'CERT_HAS_EXPIRED')) return 'fail_verify_error';
    const match = this.currentSanMatch();
    if (match !== undefined && !match(cert.sans)) return 'fail_verify_san';
    if (this.certHashes.length > 0 && !this.certHashes.includes(cert.certHash)) return 'fail_verify_cert_hash';
    return '';
  }
}

/** What the listener hears about one downstream TLS connection. */
export interface TlsAcceptCallbacks {
  /** The handshake completed and the peer was accepted (peer.ts has it recorded). */
  onSecure(s: TLSSocket): void;
  /** The handshake failed or the peer was refused; the connection is closed. */
  onFailure(): void;
}

/** Handshake timeout for downstream TLS (Envoy: transport_socket_connect_timeout, unset = none; Weft: 10 s). */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

/**
 * A compiled DownstreamTlsContext: one per TLS filter chain. Connections are handed to a node:tls Server that never
 * listens (`server.emit('connection', raw)`), which runs the handshake, node's chain verification and session
 * tickets; two of them, with and without ALPN, because node refuses a handshake whose ALPN offer has nothing in
 * common with the server's list, where Envoy goes on without ALPN (the client's offer is known from the ClientHello).
 */
export class ServerTls extends TlsBase {
  /** require_client_certificate. */
  requireClientCert = false;
  handshakeTimeoutMs = DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  private withAlpn: TlsServer | undefined;
  private noAlpn: TlsServer | undefined;
  /** Connections in their handshake, by `remote address:port>local port`. */
  private readonly handshaking = new Map<string, { cb: TlsAcceptCallbacks; stats: TlsStats; sni: string }>();

  /**
   * Runs the TLS handshake on an accepted connection. `clientAlpn`: the ALPN list of its ClientHello (tls_inspector).
   * Returns false (and closes the connection) when the context cannot serve yet (a secret is missing).
   */
  accept(raw: Socket, clientAlpn: readonly string[], sni: string, stats: TlsStats, cb: TlsAcceptCallbacks): boolean {
    const built = this.contextOptions();
    if (built === undefined) {
      stats.connection_error++;
      raw.destroy();
      return false;
    }
    if (built.changed || this.noAlpn === undefined) this.rebuild(built.opts);
    const server = this.alpn.length > 0 && clientAlpn.some((p) => this.alpn.includes(p)) ? this.withAlpn! : this.noAlpn!;
    const key = `${raw.remoteAddress}:${raw.remotePort}>${raw.localPort}`;
    const h = { cb, stats, sni };
    this.handshaking.set(key, h);
    raw.once('close', () => {
      // Closed during the handshake without a TLS error (the peer went away).
      if (this.handshaking.get(key) !== h) return;
      this.handshaking.delete(key);
      stats.connection_error++;
      cb.onFailure();
    });
    server.emit('connection', raw);
    return true;
  }

  private rebuild(opts: SecureContextOptions): void {
    if (this.noAlpn !== undefined) {
      // Rotation: new handshakes use the new certificate; established connections keep theirs.
      this.noAlpn.setSecureContext(opts);
      this.withAlpn?.setSecureContext(opts);
      return;
    }
    const serverOpts: TlsServerOptions = {
      ...opts,
      requestCert: this.verifies || this.requireClientCert,
      // node's verdict (authorized / authorizationError) is read after the handshake by verifyPeer, which refuses
      // and counts: node's own rejection would close the connection without telling which check failed.
      rejectUnauthorized: false,
      handshakeTimeout: this.handshakeTimeoutMs,
    };
    this.noAlpn = this.server(serverOpts);
    if (this.alpn.length > 0) this.withAlpn = this.server({ ...serverOpts, ALPNProtocols: this.alpn as string[] });
  }

  private server(opts: TlsServerOptions): TlsServer {
    const server = createTlsServer(opts);
    server.on('secureConnection', (s: TLSSocket) => {
      const h = this.take(s);
      if (h === undefined) {
        s.destroy();
        return;
      }
      const cert = peerCertFacts(s);
      const verdict = this.verifyPeer(s, cert);
      if (verdict !== '') {
        h.stats[verdict]++;
        s.destroy();
        h.cb.onFailure();
        return;
      }
      h.stats.handshake++;
      if (s.isSessionReused()) h.stats.session_reused++;
      const peer = peerInfoOf(s, h.sni, cert);
      if (peer.certHash === '') h.stats.no_certificate++;
      setPeer(s, peer);
      h.cb.onSecure(s);
    });
    server.on('tlsClientError', (e: NodeJS.ErrnoException, s: TLSSocket) => {
      const h = this.take(s);
      if (h === undefined) return;
      if (e.code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') h.stats.fail_verify_no_cert++;
      else h.stats.connection_error++;
      s.destroy();
      h.cb.onFailure();
    });
    return server;
  }

  private take(s: TLSSocket): { cb: TlsAcceptCallbacks; stats: TlsStats; sni: string } | undefined {
    const key = `${s.remoteAddress}:${s.remotePort}>${s.localPort}`;
    const h = this.handshaking.get(key);
    this.handshaking.delete(key);
    return h;
  }

  /**
   * After the handshake: '' when the client may go on, else the stat naming why it is refused. `cert`: the peer's
   * certificate as peerCertFacts(s) read it (read here when not given).
   */
  verifyPeer(s: TLSSocket, cert: CertFacts | undefined = peerCertFacts(s)): VerifyResult {
    if (cert === undefined) return this.requireClientCert ? 'fail_verify_no_cert' : '';
    if (!this.verifies) return '';
    return this.check(cert, s.authorized ? null : String(s.authorizationError ?? 'UNABLE_TO_VERIFY'), this.trust !== undefined || this.systemRoots);
  }
}

/** A compiled UpstreamTlsContext: one per cluster (or transport socket match). */
export class ClientTls extends TlsBase {
  /** The SNI sent (`sni`); '' sends none. */
  sni = '';
  /** Last session per upstream host (`address:port`) for resumption (max_session_keys, Envoy's default 1). */
  private readonly sessions = new Map<string, Buffer>();
  private maxSessions = 1;
  private ctx: SecureContext | undefined;

  setMaxSessionKeys(n: number): void {
    this.maxSessions = n;
  }

  /** node:tls connect options for a host; undefined while secrets are missing. */
  connectOptions(hostKey: string): ConnectionOptions | undefined {
    const built = this.contextOptions();
    if (built === undefined) return undefined;
    if (built.changed || this.ctx === undefined) {
      this.ctx = createSecureContext(built.opts);
      this.sessions.clear(); // sessions of the old identity must not be resumed
    }
    const chain = this.trust !== undefined || this.systemRoots;
    const opts: ConnectionOptions = {
      secureContext: this.ctx,
      // Envoy verifies no host name by default: only the configured SAN matchers / hashes apply.
      rejectUnauthorized: chain && !this.allowExpired,
      checkServerIdentity: this.checkIdentity,
    };
    if (this.sni !== '' && !isIp(this.sni)) opts.servername = this.sni;
    if (this.alpn.length > 0) opts.ALPNProtocols = this.alpn as string[];
    if (this.maxSessions > 0) {
      const session = this.sessions.get(hostKey);
      if (session !== undefined) opts.session = session;
    }
    return opts;
  }

  private readonly checkIdentity = (_host: string, cert: PeerCertificate): Error | undefined => {
    // node calls this on full handshakes only (a resumed session was checked when it was made).
    const r = this.check(cert?.raw !== undefined ? { sans: parseSans(cert.subjectaltname), certHash: cert.fingerprint256.replace(/:/g, '').toLowerCase() } : undefined, null, false);
    return r === '' ? undefined : Object.assign(new Error(`upstream certificate refused: ${r}`), { code: r });
  };

  /** Keeps a session ticket / id for the next connection to the host. */
  saveSession(hostKey: string, session: Buffer): void {
    if (this.maxSessions <= 0) return;
    this.sessions.delete(hostKey);
    this.sessions.set(hostKey, session);
    if (this.sessions.size > 4096) this.sessions.delete(this.sessions.keys().next().value!);
  }
}

export function compileDownstreamTls(ctx: DownstreamTlsContext, secrets: SecretManager, fail: TlsFail): ServerTls {
  if (ctx.requireSni === true) fail('require_sni', 'is not supported');
  if (ctx.sessionTicketKeysType.case !== undefined) fail(ctx.sessionTicketKeysType.case === 'sessionTicketKeys' ? 'session_ticket_keys' : 'session_ticket_keys_sds_secret_config', 'is not supported (tickets use keys generated per context)');
  const parts = common(ctx.commonTlsContext, 'common_tls_context', fail, true);
  if (parts.cert === undefined) fail('common_tls_context.tls_certificates', 'a server certificate is required (tls_certificates or tls_certificate_sds_secret_configs)');
  if (ctx.requireClientCertificate === true && parts.trust === undefined && !parts.systemRoots) fail('require_client_certificate', 'needs a validation context with a trusted CA');
  const baseOpts: SecureContextOptions = { ...parts.base };
  if (ctx.sessionTimeout !== undefined) baseOpts.sessionTimeout = Number(ctx.sessionTimeout.seconds);
  const s = new ServerTls(secrets, parts.cert, parts.trust, parts.systemRoots, baseOpts, parts.alpn, parts.allowExpired, parts.hashes, parts.san);
  s.requireClientCert = ctx.requireClientCertificate === true;
  return s;
}

export function compileUpstreamTls(ctx: UpstreamTlsContext, secrets: SecretManager, fail: TlsFail): ClientTls {
  if (ctx.allowRenegotiation) fail('allow_renegotiation', 'is not supported');
  const parts = common(ctx.commonTlsContext, 'common_tls_context', fail, false);
  const c = new ClientTls(secrets, parts.cert, parts.trust, parts.systemRoots, parts.base, parts.alpn, parts.allowExpired, parts.hashes, parts.san);
  if (ctx.sni.length > 255) fail('sni', 'must be at most 255 characters');
  c.sni = ctx.sni;
  if (ctx.maxSessionKeys !== undefined) c.setMaxSessionKeys(ctx.maxSessionKeys);
  return c;
}

interface CommonParts {
  cert: SecretRef | undefined;
  trust: SecretRef | undefined;
  systemRoots: boolean;
  base: SecureContextOptions;
  alpn: string[];
  allowExpired: boolean;
  hashes: string[];
  san: SanMatch | undefined;
}

function common(c: CommonTlsContext | undefined, f: string, fail: TlsFail, server: boolean): CommonParts {
  const out: CommonParts = { cert: undefined, trust: undefined, systemRoots: false, base: {}, alpn: [], allowExpired: false, hashes: [], san: undefined };
  if (c === undefined) return out;
  // Protocol parameters. Envoy's defaults: TLS 1.2 minimum; maximum TLS 1.3 for servers, 1.2 for clients.
  const p = c.tlsParams;
  const min = p ? VERSIONS[p.tlsMinimumProtocolVersion] : undefined;
  const max = p ? VERSIONS[p.tlsMaximumProtocolVersion] : undefined;
  if (p && p.tlsMinimumProtocolVersion !== TlsParameters_TlsProtocol.TLS_AUTO && min === undefined) fail(`${f}.tls_params.tls_minimum_protocol_version`, `unknown version ${p.tlsMinimumProtocolVersion}`);
  if (p && p.tlsMaximumProtocolVersion !== TlsParameters_TlsProtocol.TLS_AUTO && max === undefined) fail(`${f}.tls_params.tls_maximum_protocol_version`, `unknown version ${p.tlsMaximumProtocolVersion}`);
  out.base.minVersion = min ?? 'TLSv1.2';
  out.base.maxVersion = max ?? (server ? 'TLSv1.3' : 'TLSv1.2');
  if (VERSION_ORDER.indexOf(out.base.minVersion) > VERSION_ORDER.indexOf(out.base.maxVersion)) fail(`${f}.tls_params`, `minimum version ${out.base.minVersion} is above maximum ${out.base.maxVersion}`);
  if (p && p.cipherSuites.length > 0) out.base.ciphers = p.cipherSuites.join(':');
  if (p && p.ecdhCurves.length > 0) out.base.ecdhCurve = p.ecdhCurves.join(':');
  if (p && p.signatureAlgorithms.length > 0) out.base.sigalgs = p.signatureAlgorithms.join(':');
  try {
    createSecureContext(out.base);
  } catch (e) {
    fail(`${f}.tls_params`, (e as Error).message);
  }
  // Certificates.
  if (c.tlsCertificates.length + c.tlsCertificateSdsSecretConfigs.length > 1) fail(`${f}.tls_certificates`, 'only one certificate is supported');
  if (c.tlsCertificateProviderInstance || c.tlsCertificateCertificateProvider || c.tlsCertificateCertificateProviderInstance) fail(`${f}.tls_certificate_provider_instance`, 'certificate providers are not supported (use SDS)');
  if (c.customHandshaker) fail(`${f}.custom_handshaker`, 'is not supported');
  if (c.keyLog) fail(`${f}.key_log`, 'is not supported');
  const tc = c.tlsCertificates[0];
  if (tc !== undefined) {
    const g = `${f}.tls_certificates[0]`;
    if (tc.privateKeyProvider) fail(`${g}.private_key_provider`, 'is not supported');
    if (tc.password) fail(`${g}.password`, 'encrypted private keys are not supported');
    const certChainPem = readDataSource(tc.certificateChain, (d) => fail(`${g}.certificate_chain`, d));
    const keyPem = readDataSource(tc.privateKey, (d) => fail(`${g}.private_key`, d));
    try {
      createSecureContext({ cert: certChainPem, key: keyPem });
    } catch (e) {
      fail(g, `invalid certificate or key: ${(e as Error).message}`);
    }
    out.cert = { inline: { certChainPem, keyPem, trustedCaPem: '' } };
  }
  const sc = c.tlsCertificateSdsSecretConfigs[0];
  if (sc !== undefined) {
    if (sc.name === '') fail(`${f}.tls_certificate_sds_secret_configs[0].name`, 'must not be empty');
    out.cert = { sds: sc.name };
  }
  // Validation.
  const vt = c.validationContextType;
  let vc: CertificateValidationContext | undefined;
  let vf = '';
  if (vt.case === 'validationContext') {
    vc = vt.value;
    vf = `${f}.validation_context`;
  } else if (vt.case === 'validationContextSdsSecretConfig') {
    if (vt.value.name === '') fail(`${f}.validation_context_sds_secret_config.name`, 'must not be empty');
    out.trust = { sds: vt.value.name };
  } else if (vt.case === 'combinedValidationContext') {
    const cv = vt.value;
    vc = cv.defaultValidationContext;
    vf = `${f}.combined_validation_context.default_validation_context`;
    const n = cv.validationContextSdsSecretConfig?.name ?? '';
    if (n === '') fail(`${f}.combined_validation_context.validation_context_sds_secret_config.name`, 'must not be empty');
    out.trust = { sds: n };
  } else if (vt.case !== undefined) {
    fail(`${f}.${vt.case}`, 'is not supported');
  }
  if (vc !== undefined) {
    if (vc.trustedCa !== undefined) {
      const pem = readDataSource(vc.trustedCa, (d) => fail(`${vf}.trusted_ca`, d));
      try {
        createSecureContext({ ca: pem });
      } catch (e) {
        fail(`${vf}.trusted_ca`, `invalid CA certificates: ${(e as Error).message}`);
      }
      if (out.trust !== undefined) fail(`${vf}.trusted_ca`, 'cannot be combined with an SDS validation context that provides the CA');
      out.trust = { inline: { certChainPem: '', keyPem: '', trustedCaPem: pem } };
    }
    if (vc.systemRootCerts !== undefined) out.systemRoots = out.trust === undefined;
    if (vc.caCertificateProviderInstance) fail(`${vf}.ca_certificate_provider_instance`, 'is not supported');
    if (vc.watchedDirectory) fail(`${vf}.watched_directory`, 'is not supported');
    if (vc.verifyCertificateSpki.length > 0) fail(`${vf}.verify_certificate_spki`, 'is not supported');
    if (vc.crl) fail(`${vf}.crl`, 'is not supported');
    if (vc.customValidatorConfig) fail(`${vf}.custom_validator_config`, 'is not supported');
    if (vc.requireSignedCertificateTimestamp) fail(`${vf}.require_signed_certificate_timestamp`, 'is not supported');
    if (vc.trustChainVerification !== 0) fail(`${vf}.trust_chain_verification`, 'only VERIFY_TRUST_CHAIN is supported');
    out.allowExpired = vc.allowExpiredCertificate;
    out.hashes = vc.verifyCertificateHash.map((h) => h.replace(/:/g, '').toLowerCase());
    out.san = sanMatcher(vc, vf, fail);
    if ((out.san !== undefined || out.hashes.length > 0) && out.trust === undefined && !out.systemRoots && !server) {
      fail(`${vf}.match_typed_subject_alt_names`, 'SAN verification needs a trusted CA (trusted_ca, system_root_certs or an SDS validation context)');
    }
  }
  // ALPN.
  out.alpn = [...c.alpnProtocols];
  for (const [i, a] of out.alpn.entries()) if (a === '' || a.length > 255) fail(`${f}.alpn_protocols[${i}]`, 'must be 1 to 255 characters');
  return out;
}

const VERSION_ORDER = ['TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'];

function sanMatcher(vc: CertificateValidationContext, vf: string, fail: TlsFail): SanMatch | undefined {
  const typed: Array<{ type: San['type']; match: (v: string) => boolean }> = [];
  vc.matchTypedSubjectAltNames.forEach((m, i) => {
    const g = `${vf}.match_typed_subject_alt_names[${i}]`;
    const type = SAN_TYPES[m.sanType];
    if (type === undefined) fail(`${g}.san_type`, m.sanType === SubjectAltNameMatcher_SanType.OTHER_NAME ? 'OTHER_NAME is not supported' : 'must be EMAIL, DNS, URI or IP_ADDRESS');
    if (m.matcher === undefined) fail(`${g}.matcher`, 'is required');
    typed.push({ type: type!, match: stringMatcher(m.matcher!, (d) => fail(`${g}.matcher`, d)) });
  });
  const any = vc.matchSubjectAltNames.map((m, i) => stringMatcher(m, (d) => fail(`${vf}.match_subject_alt_names[${i}]`, d)));
  if (typed.length === 0 && any.length === 0) return undefined;
  return (sans) => {
    for (const s of sans) {
      for (const t of typed) if (t.type === s.type && t.match(s.value)) return true;
      for (const m of any) if (m(s.value)) return true;
    }
    return false;
  };
}

const SAN_TYPES: Record<number, San['type'] | undefined> = {
  [SubjectAltNameMatcher_SanType.EMAIL]: 'EMAIL',
  [SubjectAltNameMatcher_SanType.DNS]: 'DNS',
  [SubjectAltNameMatcher_SanType.URI]: 'URI',
  [SubjectAltNameMatcher_SanType.IP_ADDRESS]: 'IP',
};

/** Parses node's `subjectaltname` (`DNS:a, URI:spiffe://x, IP Address:1.2.3.4, email:e`; values may be JSON-quoted). */
export function parseSans(s: string | undefined): San[] {
  const out: San[] = [];
  if (!s) return out;
  let i = 0;
  while (i < s.length) {
    const colon = s.indexOf(':', i);
    if (colon < 0) break;
    const kind = s.slice(i, colon);
    let j = colon + 1;
    let value: string;
    if (s[j] === '"') {
      let k = j + 1;
      while (k < s.length && s[k] !== '"') k += s[k] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(s.slice(j, k + 1)) as string;
      } catch {
        value = s.slice(j + 1, k);
      }
      j = k + 1;
    } else {
      const end = s.indexOf(', ', j);
      value = s.slice(j, end < 0 ? s.length : end);
      j = end < 0 ? s.length : end;
    }
    const type = kind === 'URI' ? 'URI' : kind === 'DNS' ? 'DNS' : kind === 'email' ? 'EMAIL' : kind === 'IP Address' ? 'IP' : undefined;
    if (type !== undefined) out.push({ type, value });
    i = s.startsWith(', ', j) ? j + 2 : j + 1;
  }
  return out;
}

function isIp(s: string): boolean {
  return /^[0-9.]+$/.test(s) || s.includes(':');
}

/** What the proxy reads from a certificate: its SANs, first URI SAN, SHA-256 and subject. */
export interface CertFacts {
  readonly sans: readonly San[];
  /** The first URI SAN ('' when none): Envoy's uriSanPeerCertificate()[0]. */
  readonly principal: string;
  /** SHA-256 of the DER, lower-case hex. */
  readonly certHash: string;
  /** The subject in RFC 2253 form (most specific RDN first, `,` separated), Envoy's format. */
  readonly subject: string;
}

/**
 * Facts of the certificates seen, by SHA-256 fingerprint: a mesh's connections present a handful of certificates
 * again and again (every connection of a peer until it rotates), and parsing one into node's legacy object
 * (getPeerCertificate(): every field, the public key decoded) costs more than the rest of a resumed handshake's
 * JavaScript. Only parsed facts are kept — verification (chain, expiry, SAN match) still runs per connection.
 */
const FACTS = new Map<string, CertFacts>();
const MAX_FACTS = 1024;

function certFacts(x: X509Certificate): CertFacts {
  const fp = x.fingerprint256;
  let f = FACTS.get(fp);
  if (f === undefined) {
    const sans = parseSans(x.subjectAltName);
    let principal = '';
    for (const san of sans) {
      if (san.type === 'URI') {
        principal = san.value;
        break;
      }
    }
    f = { sans, principal, certHash: fp.replace(/:/g, '').toLowerCase(), subject: rfc2253(x.subject ?? '') };
    if (FACTS.size >= MAX_FACTS) FACTS.clear();
    FACTS.set(fp, f);
  }
  return f;
}

/** The peer certificate of a TLS connection (undefined: none presented). */
export function peerCertFacts(s: TLSSocket): CertFacts | undefined {
  const x = s.getPeerX509Certificate();
  return x === undefined ? undefined : certFacts(x);
}

/** The first URI SAN of the certificate this side presented on the connection ('' when none). */
function localPrincipalOf(s: TLSSocket): string {
  const x = s.getX509Certificate();
  return x === undefined ? '' : certFacts(x).principal;
}

/**
 * The peer of a TLS connection, for peer.ts: the URI SAN as principal (the first one, as Envoy's
 * uriSanPeerCertificate()[0]), SHA-256 of the DER, the subject in RFC 2253 form. `cert`: the peer certificate's facts
 * when the caller has read them already.
 */
export function peerInfoOf(s: TLSSocket, sni: string, cert: CertFacts | undefined = peerCertFacts(s)): PeerInfo {
  const alpn = typeof s.alpnProtocol === 'string' ? s.alpnProtocol : '';
  const localPrincipal = localPrincipalOf(s);
  if (cert === undefined) return { tls: true, principal: '', localPrincipal, sni, alpn, certHash: '', subject: '' };
  return { tls: true, principal: cert.principal, localPrincipal, sni, alpn, certHash: cert.certHash, subject: cert.subject };
}

/** X509Certificate.subject (one `key=value` per line, most general first) as RFC 2253. */
function rfc2253(subject: string): string {
  const lines = subject.split('\n').filter((l) => l !== '');
  return lines.reverse().map(escapeRdn).join(',');
}

function escapeRdn(line: string): string {
  const eq = line.indexOf('=');
  if (eq < 0) return line;
  const v = line.slice(eq + 1).replace(/([,+"\\<>;])/g, '\\$1');
  return `${line.slice(0, eq)}=${v}`;
}
