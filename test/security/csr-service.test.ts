// The CSR service on the TLS xDS port, over real TLS with grpc-js: a valid token gets a certificate for exactly
// its identity (chain verified by openssl); a token for A asking for B, an expired token, a forged token and no
// token are refused with clear gRPC errors that are logged without the token; `weft token create` (the real
// command) prints a token the service accepts; the plaintext port does not offer the service.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { SignJWT } from 'jose';
import { loadOrCreateTokenKey, TOKEN_AUDIENCE, TOKEN_ISSUER, TokenIssuer, tokenKeyPath } from '../../src/controlplane/ca/index.js';
import { caServiceDefinition, CREATE_CERTIFICATE_PATH } from '../../src/pki/ca-api.js';
import type { CertificateResponse } from '../../src/pki/ca-api.js';
import { buildCsr, generateEcKey } from '../../src/pki/x509.js';
import { ConfigDir, runWeft, startControlPlane } from '../controlplane/controlplane-helpers.js';
import type { TestControlPlane } from '../controlplane/controlplane-helpers.js';

const state = mkdtempSync(join(tmpdir(), 'weft-csr-'));
const cfg = new ConfigDir();
let t: TestControlPlane;
let issuer: TokenIssuer;
let tls: string;

before(async () => {
  t = await startControlPlane(cfg.dir, { security: { caDir: join(state, 'ca'), tokenKeyPath: tokenKeyPath(state), xdsTlsPort: 0, caPollMs: 0 } });
  tls = `127.0.0.1:${t.cp.xdsTlsPort}`;
  issuer = new TokenIssuer(await loadOrCreateTokenKey(tokenKeyPath(state)));
});
after(async () => {
  await t.cp.close();
  cfg.remove();
  rmSync(state, { recursive: true, force: true });
});

/** One CreateCertificate call over TLS (verifying the control plane with the CA root) or plaintext. */
function createCertificate(addr: string, csr: string, token: string | undefined, opts: { plaintext?: boolean; ttlSeconds?: number } = {}): Promise<CertificateResponse> {
  const creds = opts.plaintext ? credentials.createInsecure() : credentials.createSsl(Buffer.from(t.cp.ca!.rootPem));
  const client = new Client(addr, creds);
  const md = new Metadata();
  if (token !== undefined) md.set('authorization', `Bearer ${token}`);
  const def = caServiceDefinition.CreateCertificate;
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(CREATE_CERTIFICATE_PATH, def.requestSerialize, def.responseDeserialize, { csr, validityDurationSeconds: opts.ttlSeconds ?? 0, metadata: { ClusterID: 'Kubernetes' } }, md, { deadline: Date.now() + 10_000 }, (err: ServiceError | null, res?: CertificateResponse) => {
      client.close();
      if (err) reject(err);
      else resolve(res!);
    });
  });
}

async function csrFor(uri?: string): Promise<string> {
  const key = await generateEcKey();
  return buildCsr(key.privateKey, uri ? { uris: [uri] } : {});
}

function refused(code: status, text: RegExp) {
  return (e: ServiceError) => {
    assert.equal(e.code, code, `${e.code} ${e.details}`);
    assert.match(e.details, text);
    return true;
  };
}

function opensslVerify(rootPem: string, chain: string[]): string {
  const d = mkdtempSync(join(state, 'v-'));
  writeFileSync(join(d, 'root.pem'), rootPem);
  writeFileSync(join(d, 'leaf.pem'), chain[0]!);
  writeFileSync(join(d, 'int.pem'), chain.slice(1, -1).join('') || chain[0]!);
  return execFileSync('openssl', ['verify', '-CAfile', join(d, 'root.pem'), '-untrusted', join(d, 'int.pem'), join(d, 'leaf.pem')], { encoding: 'utf8' }).trim();
}

test('a valid token gets a certificate for exactly its identity, chained to the root', async () => {
  const token = await issuer.create({ namespace: 'shop', serviceAccount: 'billing' }, 3600_000);
  const res = await createCertificate(tls, await csrFor('spiffe://cluster.local/ns/shop/sa/billing'), token, { ttlSeconds: 7200 });
  assert.equal(res.certChain.length, 2, 'leaf and root');
  const leaf = new X509Certificate(res.certChain[0]!);
  assert.equal(leaf.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/billing');
  assert.ok(Math.abs(Date.parse(leaf.validTo) - Date.now() - 7200_000) < 120_000, 'the requested TTL');
  assert.equal(res.certChain[1], t.cp.ca!.rootPem);
  assert.match(opensslVerify(t.cp.ca!.rootPem, res.certChain), /: OK$/);
  // A CSR without SANs gets the token's identity too.
  const bare = await createCertificate(tls, await csrFor(), token);
  assert.equal(new X509Certificate(bare.certChain[0]!).subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/billing');
  assert.ok(t.logs.find('certificate issued').some((l) => l.identity === 'spiffe://cluster.local/ns/shop/sa/billing'));
});

test('refusals: another identity, expired, forged, missing token; logged without the token', async () => {
  const tokenA = await issuer.create({ namespace: 'shop', serviceAccount: 'billing' }, 3600_000);
  await assert.rejects(
    createCertificate(tls, await csrFor('spiffe://cluster.local/ns/shop/sa/admin'), tokenA),
    refused(status.PERMISSION_DENIED, /^CSR asks for identity spiffe:\/\/cluster.local\/ns\/shop\/sa\/admin, but the caller is authenticated as spiffe:\/\/cluster.local\/ns\/shop\/sa\/billing$/),
  );
  const key = await loadOrCreateTokenKey(tokenKeyPath(state));
  const expired = await new SignJWT({ 'weft.io/namespace': 'shop', 'weft.io/serviceaccount': 'billing' })
    .setProtectedHeader({ alg: 'ES256' })
    .setIssuer(TOKEN_ISSUER)
    .setAudience(TOKEN_AUDIENCE)
    .setSubject('system:serviceaccount:shop:billing')
    .setIssuedAt(Math.floor(Date.now() / 1000) - 7200)
    .setExpirationTime(Math.floor(Date.now() / 1000) - 3600)
    .sign(key);
  await assert.rejects(createCertificate(tls, await csrFor(), expired), refused(status.UNAUTHENTICATED, /^token refused: token expired at \d{4}-/));
  const forged = await new TokenIssuer((await generateEcKey()).privateKey).create({ namespace: 'shop', serviceAccount: 'billing' }, 3600_000);
  await assert.rejects(createCertificate(tls, await csrFor(), forged), refused(status.UNAUTHENTICATED, /token signature does not verify: it was not signed by this control plane's token key/));
  await assert.rejects(createCertificate(tls, await csrFor(), 'not-a-jwt'), refused(status.UNAUTHENTICATED, /token is malformed/));
  await assert.rejects(createCertificate(tls, await csrFor(), undefined), refused(status.UNAUTHENTICATED, /^no credentials: send "authorization: Bearer <token>"/));
  await assert.rejects(createCertificate(tls, 'garbage', tokenA), refused(status.INVALID_ARGUMENT, /expected one PEM "CERTIFICATE REQUEST" block/));
  const logged = t.logs.find('certificate request refused');
  assert.ok(logged.length >= 6);
  assert.ok(logged.some((l) => l.code === 'PERMISSION_DENIED' && l.identity === 'spiffe://cluster.local/ns/shop/sa/billing'));
  const all = JSON.stringify(t.logs.lines);
  for (const tok of [tokenA, expired, forged]) assert.ok(!all.includes(tok.split('.')[2]!), 'no token in the log');
  // The metrics count them as istiod's do.
  const metrics = await (await fetch(`${t.http}/metrics`)).text();
  assert.match(metrics, /citadel_server_authentication_failure_count(?:\{\})? [4-9]/);
});

test('the plaintext xDS port does not offer the CSR service', async () => {
  const token = await issuer.create({ namespace: 'shop', serviceAccount: 'billing' }, 3600_000);
  await assert.rejects(createCertificate(t.xds, await csrFor(), token, { plaintext: true }), refused(status.UNIMPLEMENTED, /./));
});

test('`weft token create` prints a token the CSR service accepts; bad arguments are refused', async () => {
  const r = await runWeft(['token', 'create', '--namespace', 'prod', '--service-account', 'web', '--ttl', '10m', '--state-dir', state]);
  assert.equal(r.code, 0, r.err);
  const token = r.out.trim();
  assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
  const res = await createCertificate(tls, await csrFor(), token);
  assert.equal(new X509Certificate(res.certChain[0]!).subjectAltName, 'URI:spiffe://cluster.local/ns/prod/sa/web');
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number; sub: string };
  assert.equal(claims.exp - claims.iat, 600);
  assert.equal(claims.sub, 'system:serviceaccount:prod:web');
  const bad = await runWeft(['token', 'create', '--namespace', 'Prod!', '--service-account', 'web', '--state-dir', state]);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /expected a Kubernetes namespace/);
  // The token key is private.
  assert.equal(readFileSync(tokenKeyPath(state)).length > 0, true);
});
