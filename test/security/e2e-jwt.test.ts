// RequestAuthentication end to end: tokens signed with real keys, a JWKS served by a local HTTP server (jwksUri),
// the control plane translating the policies, the sidecar's jwt_authn + istio_authn + rbac filters checking real
// requests. Valid, expired, wrong issuer, wrong audience, bad signature, unknown kid (the JWKS is refetched after
// the issuer rotates its keys), a token in a query parameter, forwardOriginalToken, outputClaimToHeaders, a missing
// token (passes authentication, judged by requestPrincipals), claims (nested and list) in AuthorizationPolicy.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { statValue } from '../helpers/raw-client.js';
import { policy, SecurityMesh } from './security-helpers.js';

const ISS = 'https://issuer.test';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

interface SigningKey {
  kid: string;
  priv: Key;
  jwk: JWK;
}

async function signingKey(kid: string): Promise<SigningKey> {
  const { publicKey, privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  return { kid, priv: privateKey, jwk };
}

async function token(k: SigningKey, claims: Record<string, unknown>, o: { iss?: string; aud?: string; exp?: number; sub?: string } = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: k.kid })
    .setIssuer(o.iss ?? ISS)
    .setSubject(o.sub ?? 'alice')
    .setAudience(o.aud ?? 'server')
    .setIssuedAt(now - 10)
    .setExpirationTime(o.exp ?? now + 600)
    .sign(k.priv);
}

/** A JWKS endpoint serving `keys` (replaceable), counting fetches. */
class JwksServer {
  keys: JWK[] = [];
  fetches = 0;
  server!: Server;
  port = 0;
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.fetches++;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ keys: this.keys }));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
}

describe('RequestAuthentication (JWT) on a sidecar, live traffic', () => {
  const mesh = new SecurityMesh();
  const jwks = new JwksServer();
  let k1: SigningKey;
  let k2: SigningKey;
  let other: SigningKey;
  const requestAuthn = (extra = '') =>
    `apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: default}\nspec:\n  selector: {matchLabels: {app: server}}\n  jwtRules:\n  - issuer: ${ISS}\n    audiences: [server]\n    jwksUri: http://127.0.0.1:${jwks.port}/jwks.json\n    outputClaimToHeaders: [{header: x-jwt-sub, claim: sub}, {header: x-jwt-tier, claim: plan.tier}]\n${extra}`;

  before(async () => {
    [k1, k2, other] = await Promise.all([signingKey('k1'), signingKey('k2'), signingKey('k1')]);
    await jwks.start();
    jwks.keys = [k1.jwk];
    await mesh.start();
  });
  after(async () => {
    await mesh.stop();
    await new Promise<void>((r) => jwks.server.close(() => r()));
  });

  it('valid token passes, claims reach the app as headers, the token is stripped; a missing token passes authentication', async () => {
    await mesh.applyPolicies([requestAuthn()]);
    const t = await token(k1, { plan: { tier: 'gold' } });
    const r = await mesh.get('/ok', { authorization: `Bearer ${t}` });
    assert.equal(r.status, 200, r.body);
    const seen = mesh.http.seen[mesh.http.seen.length - 1]!;
    assert.equal(seen.headers['x-jwt-sub'], 'alice');
    assert.equal(seen.headers['x-jwt-tier'], 'gold');
    assert.equal(seen.headers.authorization, undefined, 'forwardOriginalToken false: the token is removed');
    assert.ok(jwks.fetches >= 1);
    // Without a token the request is not authenticated, and passes (no AuthorizationPolicy asks for a principal).
    assert.equal((await mesh.get('/anon')).status, 200);
  });

  it('invalid tokens are refused with Envoy\'s status and body', async () => {
    const now = Math.floor(Date.now() / 1000);
    const cases: Array<[string, string, number, string]> = [
      ['expired', await token(k1, {}, { exp: now - 3600 }), 401, 'Jwt is expired'],
      ['wrong issuer', await token(k1, {}, { iss: 'https://other.test' }), 401, 'Jwt issuer is not configured'],
      ['wrong audience', await token(k1, {}, { aud: 'someone-else' }), 403, 'Audiences in Jwt are not allowed'],
      ['bad signature', await token(other, {}), 401, 'Jwt verification fails'],
      ['garbage', 'not.a-token', 401, 'Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections'],
    ];
    for (const [what, t, status, body] of cases) {
      const r = await mesh.get('/x', { authorization: `Bearer ${t}` });
      assert.equal(r.status, status, what);
      assert.equal(r.body, body, what);
      assert.match(String(r.headers['www-authenticate']), /^Bearer realm="http:\/\/server\/x", error="invalid_token"$/, what);
      assert.equal(r.headers['x-weft-response-code-details'], `jwt_authn_access_denied{${body.replace(/ /g, '_')}}`, what);
    }
    assert.ok((await statValue(mesh.ports.admin, `http.inbound_0.0.0.0_${mesh.httpPort}.jwt_authn.denied`)) >= cases.length);
  });

  it('an unknown kid makes the proxy refetch the JWKS (keys rotated at the issuer)', async () => {
    const t = await token(k2, {});
    assert.equal((await mesh.get('/rot', { authorization: `Bearer ${t}` })).body, "Jwks doesn't have key to match kid or alg from Jwt");
    jwks.keys = [k1.jwk, k2.jwk];
    // The refetch is rate-limited (one per second per URI): wait for it with bounded polling.
    let r;
    for (let i = 0; i < 60; i++) {
      r = await mesh.get('/rot', { authorization: `Bearer ${t}` });
      if (r.status === 200) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(r?.status, 200, r?.body);
  });

  it('token in a query parameter; forwardOriginalToken keeps it', async () => {
    await mesh.applyPolicies([requestAuthn('    fromParams: [token]\n    forwardOriginalToken: true\n')]);
    const t = await token(k1, {});
    assert.equal((await mesh.get(`/q?token=${t}`)).status, 200);
    assert.equal((await mesh.get('/q?token=bad.bad.bad')).status, 401);
    // With fromParams only, the Authorization header is not a token location: it passes through untouched.
    const r = await mesh.get('/h', { authorization: `Bearer ${t}` });
    assert.equal(r.status, 200);
    assert.equal(mesh.http.seen[mesh.http.seen.length - 1]!.headers.authorization, `Bearer ${t}`);
  });

  it('requestPrincipals, request.auth.claims (nested, lists) and notRequestPrincipals in AuthorizationPolicy', async () => {
    await mesh.applyPolicies([
      requestAuthn(),
      policy('allow-admins', `action: ALLOW\nrules:\n- from: [{source: {requestPrincipals: ["${ISS}/*"]}}]\n  when:\n  - {key: "request.auth.claims[groups]", values: ["admins"]}\n  - {key: "request.auth.claims[plan][tier]", values: ["gold", "plat*"]}`),
      policy('deny-bob', `action: DENY\nrules:\n- from: [{source: {requestPrincipals: ["${ISS}/bob"]}}]`),
    ]);
    const ok = await token(k1, { groups: ['dev', 'admins'], plan: { tier: 'platinum' } });
    assert.equal((await mesh.get('/a', { authorization: `Bearer ${ok}` })).status, 200);
    const notAdmin = await token(k1, { groups: ['dev'], plan: { tier: 'gold' } });
    assert.equal((await mesh.get('/a', { authorization: `Bearer ${notAdmin}` })).status, 403);
    const silver = await token(k1, { groups: 'admins', plan: { tier: 'silver' } });
    assert.equal((await mesh.get('/a', { authorization: `Bearer ${silver}` })).status, 403);
    const stringGroup = await token(k1, { groups: 'admins', plan: { tier: 'gold' } });
    assert.equal((await mesh.get('/a', { authorization: `Bearer ${stringGroup}` })).status, 200, 'a string claim matches like a one-element list');
    const bob = await token(k1, { groups: ['admins'], plan: { tier: 'gold' } }, { sub: 'bob' });
    const denied = await mesh.get('/a', { authorization: `Bearer ${bob}` });
    assert.equal(denied.status, 403);
    assert.match(String(denied.headers['x-weft-response-code-details']), /policy\[deny-bob\]/);
    // No token: authentication passes, authorization finds no request principal.
    assert.equal((await mesh.get('/a')).status, 403);
  });
});
