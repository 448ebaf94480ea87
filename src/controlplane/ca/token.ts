/**
 * Workload tokens: how a workload proves who it is to the CSR service before it has a certificate.
 *
 * A Weft workload token is a JWT (ES256) signed by the control plane's token key, bound to one namespace and
 * service account and with an expiry:
 *
 *   header  { alg: ES256, kid: <JWK thumbprint of the key>, typ: JWT }
 *   claims  { iss: "weft", aud: ["weft-ca"], sub: "system:serviceaccount:<ns>:<sa>",
 *             "weft.io/namespace": <ns>, "weft.io/serviceaccount": <sa>, iat, exp, jti }
 *
 * `sub` has the Kubernetes ServiceAccount form, so the two token kinds name identities alike. The token key is
 * an ECDSA P-256 key persisted next to the CA (`token-key.pem`, mode 0600) on first use; `weft token create` and
 * the local runtime mint tokens with it, the CSR service verifies them with its public half.
 *
 * Verification is pluggable (`TokenVerifier`): the CSR service asks a verifier which identity a bearer token
 * grants. `WeftTokenVerifier` checks Weft tokens; a Kubernetes verifier would send the token to the API server's
 * TokenReview (audience `istio-ca`) and read `status.user.username` (`system:serviceaccount:<ns>:<sa>`); it is
 * not written yet (docs/security.md).
 */
import { createPrivateKey, createPublicKey, randomUUID } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmodSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { calculateJwkThumbprint, errors as joseErrors, exportJWK, jwtVerify, SignJWT } from 'jose';
import { identityProblem } from '../../pki/spiffe.js';
import { generateEcKey } from '../../pki/x509.js';

/** The audience of Weft workload tokens. */
export const TOKEN_AUDIENCE = 'weft-ca';
/** The issuer of Weft workload tokens. */
export const TOKEN_ISSUER = 'weft';
/** The token key's file name. */
export const TOKEN_KEY_FILE = 'token-key.pem';

/** Where the control plane keeps the token key: `<state dir>/ca/token-key.pem` (beside the self-signed CA). */
export function tokenKeyPath(stateDir: string): string {
  return join(stateDir, 'ca', TOKEN_KEY_FILE);
}
const NS_CLAIM = 'weft.io/namespace';
const SA_CLAIM = 'weft.io/serviceaccount';

/** The identity a verified token grants. */
export interface TokenIdentity {
  namespace: string;
  serviceAccount: string;
  /** When the token expires (ms since the epoch), if it says. */
  expiresAt?: number;
}

/** A token that does not authenticate anyone. The message says why and never contains the token. */
export class TokenError extends Error {
  override readonly name = 'TokenError';
}

/**
 * Verifies bearer tokens. Implementations: WeftTokenVerifier (below); Kubernetes TokenReview (planned).
 * `verify` resolves to the identity the token grants or rejects with a TokenError.
 */
export interface TokenVerifier {
  /** A short name for logs ("weft", "kubernetes"). */
  readonly kind: string;
  verify(token: string): Promise<TokenIdentity>;
}

/**
 * Loads the token key from `path`, or creates it (0600) when the file does not exist. Several processes may race
 * to create it: the file is claimed with an exclusive link, and the losers read the winner's key.
 */
export async function loadOrCreateTokenKey(path: string): Promise<KeyObject> {
  let text: string | undefined;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`${path}: cannot read the token key: ${(e as Error).message}`);
  }
  if (text !== undefined) {
    let key: KeyObject;
    try {
      key = createPrivateKey(text);
    } catch (e) {
      throw new Error(`${path}: not a readable private key: ${(e as Error).message}`);
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') throw new Error(`${path}: the token key must be an ECDSA P-256 key`);
    return key;
  }
  const { privateKey, keyPem } = await generateEcKey();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = join(dirname(path), `.${TOKEN_KEY_FILE}.${process.pid}.tmp`);
  writeFileSync(tmp, keyPem, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  try {
    linkSync(tmp, path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return loadOrCreateTokenKey(path);
  } finally {
    rmSync(tmp, { force: true });
  }
  return privateKey;
}

/** Mints Weft workload tokens with the token key. */
export class TokenIssuer {
  constructor(private readonly key: KeyObject) {}

  /** A token for namespace + service account, valid `ttlMs` from now. */
  async create(identity: { namespace: string; serviceAccount: string }, ttlMs: number): Promise<string> {
    const p = identityProblem({ trustDomain: 'cluster.local', ...identity });
    if (p) throw new Error(p);
    if (!(ttlMs > 0)) throw new Error(`token TTL must be positive, got ${ttlMs} ms`);
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT({ [NS_CLAIM]: identity.namespace, [SA_CLAIM]: identity.serviceAccount })
      .setProtectedHeader({ alg: 'ES256', typ: 'JWT', kid: await keyId(this.key) })
      .setIssuer(TOKEN_ISSUER)
      .setAudience([TOKEN_AUDIENCE])
      .setSubject(`system:serviceaccount:${identity.namespace}:${identity.serviceAccount}`)
      .setIssuedAt(now)
      .setExpirationTime(now + Math.max(1, Math.round(ttlMs / 1000)))
      .setJti(randomUUID())
      .sign(this.key);
  }
}

async function keyId(key: KeyObject): Promise<string> {
  return calculateJwkThumbprint(await exportJWK(key.type === 'private' ? createPublicKey(key) : key));
}

/** Verifies Weft workload tokens against the token key's public half. */
export class WeftTokenVerifier implements TokenVerifier {
  readonly kind = 'weft';
  private readonly publicKey: KeyObject;

  constructor(key: KeyObject) {
    this.publicKey = key.type === 'private' ? createPublicKey(key) : key;
  }

  async verify(token: string): Promise<TokenIdentity> {
    if (!token) throw new TokenError('no token');
    let payload;
    try {
      ({ payload } = await jwtVerify(token, this.publicKey, { algorithms: ['ES256'], issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, requiredClaims: ['exp', 'sub'] }));
    } catch (e) {
      throw new TokenError(explain(e));
    }
    const namespace = payload[NS_CLAIM];
    const serviceAccount = payload[SA_CLAIM];
    if (typeof namespace !== 'string' || typeof serviceAccount !== 'string') throw new TokenError(`token lacks the "${NS_CLAIM}" and "${SA_CLAIM}" claims`);
    if (payload.sub !== `system:serviceaccount:${namespace}:${serviceAccount}`) throw new TokenError(`token subject "${payload.sub}" does not match its namespace and service account claims`);
    return { namespace, serviceAccount, expiresAt: (payload.exp ?? 0) * 1000 };
  }
}

/** A clear reason from a jose error (never the token itself). */
function explain(e: unknown): string {
  if (e instanceof joseErrors.JWTExpired) {
    const exp = typeof e.payload.exp === 'number' ? new Date(e.payload.exp * 1000).toISOString() : '?';
    return `token expired at ${exp}`;
  }
  if (e instanceof joseErrors.JWSSignatureVerificationFailed) return 'token signature does not verify: it was not signed by this control plane\'s token key';
  if (e instanceof joseErrors.JWTClaimValidationFailed) return `token claim "${e.claim}" is invalid: ${e.reason === 'check_failed' ? e.message : e.reason}`;
  if (e instanceof joseErrors.JOSEAlgNotAllowed) return 'token is not signed with ES256';
  if (e instanceof joseErrors.JWSInvalid || e instanceof joseErrors.JWTInvalid || e instanceof joseErrors.JOSENotSupported) return `token is malformed: ${(e as Error).message}`;
  return `token cannot be verified: ${(e as Error)?.message ?? String(e)}`;
}
