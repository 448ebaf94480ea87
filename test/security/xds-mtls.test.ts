// Workload identity end to end, over real TLS and gRPC: the proxy's identity agent gets a certificate with its
// token and renews it at half life (new serial, authenticated by its certificate); a real `weft proxy` with a
// token file takes its configuration over mTLS on the TLS port; ADS there refuses clients without a certificate
// and proxies whose node claims another identity; the ROOTCA Secret is served over ADS and pushed again when the
// CA files are replaced.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { createRootCa, loadOrCreateTokenKey, TokenIssuer, tokenKeyPath, writeCa } from '../../src/controlplane/ca/index.js';
import { IdentityAgent } from '../../src/proxy/tls/identity/index.js';
import { TypeUrl, unpack } from '../../src/xds/index.js';
import { SecretSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import { ConfigDir, sidecarNode, startControlPlane, until } from '../controlplane/controlplane-helpers.js';
import type { TestControlPlane } from '../controlplane/controlplane-helpers.js';
import { freePort, proxyArgs, WeftProcess } from '../helpers/mesh-processes.js';

const state = mkdtempSync(join(tmpdir(), 'weft-mtls-'));
const caDir = join(state, 'ca');
const cfg = new ConfigDir();
let t: TestControlPlane;
let issuer: TokenIssuer;
let tls: string;
const agents: IdentityAgent[] = [];
const clients: AdsTestClient[] = [];

const quiet = { info() {}, warn() {}, error() {} };

before(async () => {
  t = await startControlPlane(cfg.dir, { security: { caDir, tokenKeyPath: tokenKeyPath(state), xdsTlsPort: 0, caPollMs: 100 } });
  tls = `127.0.0.1:${t.cp.xdsTlsPort}`;
  issuer = new TokenIssuer(await loadOrCreateTokenKey(tokenKeyPath(state)));
});
after(async () => {
  for (const a of agents) a.close();
  for (const c of clients) c.close();
  await t.cp.close();
  cfg.remove();
  rmSync(state, { recursive: true, force: true });
});

async function agentFor(namespace: string, serviceAccount: string, ttlMs?: number): Promise<IdentityAgent> {
  const token = await issuer.create({ namespace, serviceAccount }, 3600_000);
  const a = new IdentityAgent({ caAddr: tls, token: () => token, rootPem: t.cp.ca!.rootPem, identity: { namespace, serviceAccount }, ttlMs, logger: quiet });
  agents.push(a);
  return a;
}

test('the identity agent gets a certificate and renews it at half its lifetime, with a new key', async () => {
  const agent = await agentFor('shop', 'billing', 4000);
  const changes: string[] = [];
  agent.onChange((m) => changes.push(m.certChainPem));
  const first = await agent.start();
  const serial1 = agent.serial;
  const leaf1 = new X509Certificate(first.certChainPem);
  assert.equal(leaf1.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/billing');
  assert.equal(first.rootPem, t.cp.ca!.rootPem);
  assert.ok(first.keyPem.includes('BEGIN PRIVATE KEY'));
  assert.ok(leaf1.checkPrivateKey((await import('node:crypto')).createPrivateKey(first.keyPem)));
  assert.ok(first.notAfter.getTime() - Date.now() <= 4000);
  await until(() => agent.serial !== serial1, 'a renewed certificate', 20_000);
  const second = agent.current()!;
  const leaf2 = new X509Certificate(second.certChainPem);
  assert.notEqual(leaf2.serialNumber, leaf1.serialNumber);
  assert.ok(!leaf2.publicKey.equals(leaf1.publicKey), 'a new key');
  assert.ok(second.notAfter.getTime() > first.notAfter.getTime());
  assert.ok(changes.length >= 2);
  // The renewal authenticated with the certificate, not the token.
  assert.ok(t.logs.find('certificate issued').some((l) => l.identity === 'spiffe://cluster.local/ns/shop/sa/billing' && l.via === 'client certificate'));
});

test('a real weft proxy with a token file takes its configuration over mTLS on the TLS port', async () => {
  const token = await issuer.create({ namespace: 'default', serviceAccount: 'client' }, 3600_000);
  const tokenFile = join(state, 'client.token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  const proxy = new WeftProcess();
  try {
    const [outbound, health, admin] = [await freePort(), await freePort(), await freePort()];
    await proxy.start(
      proxyArgs(t.xds, 'mtls-proxy', ['--service-account', 'client', '--token-file', tokenFile, '--ca-addr', tls, '--ca-root-file', join(caDir, 'root-cert.pem'), '--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(admin), '--stats-port', '0']),
      /^ready \(/m,
      'proxy',
    );
    assert.match(proxy.stdout, new RegExp(`xDS: ${tls.replace(/\./g, '\\.')} \\(mTLS\\)`));
    assert.ok(t.cp.connectedProxies().includes('mtls-proxy'));
    assert.ok(t.logs.find('certificate issued').some((l) => l.identity === 'spiffe://cluster.local/ns/default/sa/client' && l.via === 'weft token'));
    assert.ok(!proxy.stderr.includes(token) && !proxy.stderr.includes('PRIVATE KEY'), 'neither the token nor the key is logged');
  } finally {
    await proxy.stop();
  }
  // A proxy whose token is for someone else stops with the reason.
  const wrong = new WeftProcess();
  writeFileSync(tokenFile, await issuer.create({ namespace: 'default', serviceAccount: 'other' }, 3600_000));
  await assert.rejects(
    wrong.start(proxyArgs(t.xds, 'mtls-wrong', ['--service-account', 'client', '--token-file', tokenFile, '--ca-addr', tls, '--ca-root-file', join(caDir, 'root-cert.pem'), '--admin-port', '0', '--health-port', '0', '--stats-port', '0', '--outbound-port', String(await freePort())]), /^ready/m, 'proxy'),
    /exited with 1/,
  );
  assert.match(wrong.stderr, /cannot get the workload certificate from .*: the CA issued URI:spiffe:\/\/cluster.local\/ns\/default\/sa\/other, not namespace default service account client/);
});

test('ADS on the TLS port: no client certificate → UNAUTHENTICATED; node claiming another identity → PERMISSION_DENIED', async () => {
  const rootOnly = new AdsTestClient(tls, credentials.createSsl(Buffer.from(t.cp.ca!.rootPem)));
  clients.push(rootOnly);
  const s1 = rootOnly.sotw();
  s1.send({ node: sidecarNode('anon', 'shop', { app: 'billing' }), typeUrl: TypeUrl.Cluster });
  await assert.rejects(s1.next(), (e: Error & { code?: number }) => e.code === status.UNAUTHENTICATED && /needs mutual TLS/.test(e.message));

  const agent = await agentFor('shop', 'billing');
  await agent.start();
  const mtls = new AdsTestClient(tls, agent.channelCredentials());
  clients.push(mtls);
  const s2 = mtls.sotw();
  s2.send({ node: sidecarNode('impostor', 'payments', { app: 'billing' }), typeUrl: TypeUrl.Cluster });
  await assert.rejects(s2.next(), (e: Error & { code?: number; details?: string }) =>
    e.code === status.PERMISSION_DENIED && e.details === 'proxy impostor announces namespace "payments" and service account "billing" (trust domain cluster.local), but its certificate is spiffe://cluster.local/ns/shop/sa/billing');
  // The right node is served.
  const s3 = mtls.sotw();
  s3.send({ node: sidecarNode('billing-1', 'shop', { app: 'billing' }), typeUrl: TypeUrl.Cluster });
  const r = await s3.next();
  assert.equal(r.typeUrl, TypeUrl.Cluster);
  s3.end();
  assert.ok(t.logs.find('xDS stream refused').length >= 2);
});

test('ROOTCA is served over ADS and pushed again when the CA files are replaced', async () => {
  const client = new AdsTestClient(t.xds);
  clients.push(client);
  const s = client.sotw();
  s.send({ node: sidecarNode('rootca-1', 'shop', { app: 'billing' }), typeUrl: TypeUrl.Secret, resourceNames: ['ROOTCA'] });
  const r1 = await s.next();
  assert.equal(r1.resources.length, 1);
  const sec1 = unpack(SecretSchema, r1.resources[0]!);
  assert.equal(sec1.name, 'ROOTCA');
  assert.equal(sec1.type.case, 'validationContext');
  const ca1 = sec1.type.case === 'validationContext' ? sec1.type.value.trustedCa?.specifier : undefined;
  assert.equal(ca1?.case, 'inlineBytes');
  assert.equal(Buffer.from(ca1!.value as Uint8Array).toString(), t.cp.ca!.rootPem);
  s.send({ node: sidecarNode('rootca-1', 'shop', { app: 'billing' }), typeUrl: TypeUrl.Secret, resourceNames: ['ROOTCA'], versionInfo: r1.versionInfo, responseNonce: r1.nonce });

  // An operator replaces the CA (a new root).
  const next = await createRootCa();
  writeCa(caDir, next);
  const r2 = await s.next(15_000);
  const sec2 = unpack(SecretSchema, r2.resources[0]!);
  const ca2 = sec2.type.case === 'validationContext' ? sec2.type.value.trustedCa?.specifier : undefined;
  assert.equal(Buffer.from(ca2!.value as Uint8Array).toString(), next.rootPem);
  assert.equal(t.cp.ca!.rootPem, next.rootPem);
  s.end();
  // The TLS port now presents a certificate from the new CA: a workload trusting the new root gets a certificate.
  const token = await issuer.create({ namespace: 'shop', serviceAccount: 'billing' }, 3600_000);
  const a = new IdentityAgent({ caAddr: tls, token: () => token, rootPem: next.rootPem, logger: quiet });
  agents.push(a);
  const m = await until(async () => a.start().catch(() => undefined), 'a certificate from the new CA', 10_000);
  assert.equal(m!.rootPem, next.rootPem);
  assert.ok(t.logs.find('CA reloaded').length >= 1);
});
