/**
 * JSON Web Key Sets for the jwt_authn filter: inline ones (`local_jwks`, parsed when the filter is compiled, so a
 * bad JWKS NACKs the listener) and remote ones (`remote_jwks`, fetched over HTTP(S) with fetch, cached for
 * `cache_duration` (Envoy's default: 10 minutes) and shared by every listener that names the same URI, so a
 * listener update does not refetch). A token whose `kid` is not in a fresh remote set triggers one refetch,
 * rate-limited to one per REFETCH_MIN_INTERVAL_MS per URI (keys rotated at the issuer are picked up without
 * waiting for the cache to expire, and a flood of made-up kids cannot turn the proxy into a JWKS fetch amplifier).
 * Keys are imported once (jose `importJWK`) and kept with their set. jose itself is loaded on first use
 * (`loadJose`): a sidecar without a jwt_authn filter never loads it (docs/performance.md, idle memory).
 *
 * Envoy fetches remote JWKS through the cluster named in `http_uri.cluster`; Weft fetches the URI directly (the
 * cluster is not consulted) and bounds the fetch by `http_uri.timeout`.
 */
import type { JWK } from 'jose';

/** Minimum time between two kid-miss refetches of one URI. */
export const REFETCH_MIN_INTERVAL_MS = 1000;
/** Envoy's default remote_jwks cache_duration. */
export const DEFAULT_JWKS_CACHE_MS = 600_000;

/** The jose module, loaded once by the first caller (a JWKS parsed when a jwt_authn filter is compiled). */
export type Jose = typeof import('jose');
let jose: Promise<Jose> | undefined;
export function loadJose(): Promise<Jose> {
  return (jose ??= import('jose'));
}

type VerifyKey = Awaited<ReturnType<Jose['importJWK']>>;

export interface KeyEntry {
  readonly kid: string | undefined;
  readonly alg: string | undefined;
  readonly kty: string;
  readonly key: Promise<VerifyKey>;
}

export class KeySet {
  constructor(readonly entries: readonly KeyEntry[]) {}

  /** The keys that may have signed a token with this header (`kid` when given; `alg` when the key says one). */
  candidates(kid: string | undefined, alg: string): KeyEntry[] {
    return this.entries.filter((k) => (kid === undefined || k.kid === undefined || k.kid === kid) && (k.alg === undefined || k.alg === alg) && ktyFits(k.kty, alg));
  }

  hasKid(kid: string): boolean {
    return this.entries.some((k) => k.kid === kid);
  }
}

function ktyFits(kty: string, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return kty === 'RSA';
  if (alg.startsWith('ES')) return kty === 'EC';
  if (alg === 'EdDSA' || alg === 'Ed25519') return kty === 'OKP';
  if (alg.startsWith('HS')) return kty === 'oct';
  return false;
}

/** Parses a JWKS document (or a single JWK, as Envoy accepts); throws Error with the reason. */
export function parseJwks(text: string): KeySet {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(`JWKS is not valid JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const list = doc !== null && typeof doc === 'object' && Array.isArray((doc as { keys?: unknown }).keys) ? ((doc as { keys: unknown[] }).keys) : [doc];
  const entries: KeyEntry[] = [];
  for (const k of list) {
    if (k === null || typeof k !== 'object' || typeof (k as JWK).kty !== 'string') continue;
    const jwk = k as JWK;
    if (jwk.use !== undefined && jwk.use !== 'sig') continue;
    const alg = jwk.alg ?? defaultAlg(jwk);
    const key = loadJose().then((j) => j.importJWK(jwk, alg));
    key.catch(() => undefined);
    entries.push({ kid: jwk.kid, alg: jwk.alg, kty: jwk.kty!, key });
  }
  if (entries.length === 0) throw new Error('JWKS has no usable signing key');
  return new KeySet(entries);
}

function defaultAlg(jwk: JWK): string | undefined {
  if (jwk.kty === 'RSA') return 'RS256';
  if (jwk.kty === 'EC') return jwk.crv === 'P-384' ? 'ES384' : jwk.crv === 'P-521' ? 'ES512' : 'ES256';
  if (jwk.kty === 'OKP') return 'EdDSA';
  return undefined;
}

/** Where a provider's keys come from. */
export interface JwksSource {
  /** The current keys (fetching them first when needed); rejects when they cannot be had. */
  get(): Promise<KeySet>;
  /** The keys after a refetch for an unknown kid (rate-limited: may return the cached set). */
  refetchFor(kid: string): Promise<KeySet>;
  /** The fetch counters (remote sources only). */
  onFetch?: (ok: boolean) => void;
}

export class LocalJwks implements JwksSource {
  private readonly set: Promise<KeySet>;
  constructor(set: KeySet) {
    this.set = Promise.resolve(set);
  }
  get(): Promise<KeySet> {
    return this.set;
  }
  refetchFor(): Promise<KeySet> {
    return this.set;
  }
}

/** A remote JWKS, shared per URI (see the module comment). */
export class RemoteJwks implements JwksSource {
  private set: KeySet | undefined;
  private fetchedAt = 0;
  private lastRefetch = 0;
  private inflight: Promise<KeySet> | undefined;
  onFetch?: (ok: boolean) => void;

  constructor(
    readonly uri: string,
    public cacheMs: number,
    public timeoutMs: number,
  ) {}

  get(): Promise<KeySet> {
    if (this.set !== undefined && Date.now() - this.fetchedAt < this.cacheMs) return Promise.resolve(this.set);
    return this.fetch();
  }

  refetchFor(kid: string): Promise<KeySet> {
    const now = Date.now();
    if (this.set !== undefined && this.set.hasKid(kid)) return Promise.resolve(this.set);
    if (this.inflight !== undefined) return this.inflight;
    if (now - this.lastRefetch < REFETCH_MIN_INTERVAL_MS && this.set !== undefined) return Promise.resolve(this.set);
    this.lastRefetch = now;
    return this.fetch();
  }

  private fetch(): Promise<KeySet> {
    if (this.inflight !== undefined) return this.inflight;
    const p = (async () => {
      try {
        const res = await fetch(this.uri, { signal: AbortSignal.timeout(this.timeoutMs), headers: { accept: 'application/json' } });
        if (res.status !== 200) throw new Error(`JWKS fetch from ${this.uri}: HTTP ${res.status}`);
        const set = parseJwks(await res.text());
        this.set = set;
        this.fetchedAt = Date.now();
        this.onFetch?.(true);
        return set;
      } catch (e) {
        this.onFetch?.(false);
        throw e;
      } finally {
        this.inflight = undefined;
      }
    })();
    this.inflight = p;
    return p;
  }
}

const remotes = new Map<string, RemoteJwks>();

/** The shared remote source of a URI, with the latest cache duration and timeout configured for it. */
export function remoteJwks(uri: string, cacheMs: number, timeoutMs: number): RemoteJwks {
  let r = remotes.get(uri);
  if (r === undefined) remotes.set(uri, (r = new RemoteJwks(uri, cacheMs, timeoutMs)));
  r.cacheMs = cacheMs;
  r.timeoutMs = timeoutMs;
  return r;
}
