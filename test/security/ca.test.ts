// The CA library (src/controlplane/ca): a self-signed root created, persisted and reloaded; an intermediate
// plugged in from Istio's cacerts layout (made by the openssl CLI, as Istio's docs do) whose chain openssl
// verifies to the company root; SVIDs with exactly the SPIFFE URI SAN, P-256, 24 h; CSR checks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CaLoadError,
  CaRequestError,
  createIntermediateCa,
  createRootCa,
  DEFAULT_WORKLOAD_TTL_MS,
  loadCa,
  loadOrCreateCa,
  loadOrCreateTokenKey,
} from '../../src/controlplane/ca/index.js';
import { buildCsr, generateEcKey } from '../../src/pki/x509.js';
import { caDir, issueForTest } from '../helpers/ca.js';

const tmp = mkdtempSync(join(tmpdir(), 'weft-ca-test-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

function openssl(args: string[], input?: string): string {
  return execFileSync('openssl', args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** `openssl verify` of a leaf against a root file, with untrusted intermediates; returns its output. */
function verify(rootPem: string, leafPem: string, intermediates: string[] = []): string {
  const d = mkdtempSync(join(tmp, 'v-'));
  writeFileSync(join(d, 'root.pem'), rootPem);
  writeFileSync(join(d, 'leaf.pem'), leafPem);
  const args = ['verify', '-CAfile', join(d, 'root.pem')];
  if (intermediates.length) {
    writeFileSync(join(d, 'int.pem'), intermediates.join(''));
    args.push('-untrusted', join(d, 'int.pem'));
  }
  return openssl([...args, join(d, 'leaf.pem')]).trim();
}

test('a self-signed root is created on first start, persisted (key 0600) and reloaded after', async () => {
  const dir = join(tmp, 'selfsigned');
  const first = await loadOrCreateCa(dir, { trustDomain: 'example.org' });
  assert.equal(first.created, true);
  assert.equal(first.ca.selfSigned, true);
  assert.equal(statSync(join(dir, 'ca-key.pem')).mode & 0o777, 0o600);
  assert.equal(statSync(dir).mode & 0o777, 0o700);
  const text = openssl(['x509', '-noout', '-text', '-in', join(dir, 'ca-cert.pem')]);
  assert.match(text, /ASN1 OID: prime256v1/);
  assert.match(text, /CA:TRUE/);
  assert.match(text, /Certificate Sign, CRL Sign/);
  assert.match(text, /Subject: O = example.org, CN = Weft root CA/);
  const root = new X509Certificate(first.ca.rootPem);
  const years = (Date.parse(root.validTo) - Date.parse(root.validFrom)) / (365 * 24 * 3600_000);
  assert.ok(years > 9.99 && years < 10.01, `root lifetime ${years} years`);
  assert.match(verify(first.ca.rootPem, first.ca.rootPem), /: OK$/);

  const second = await loadOrCreateCa(dir, { trustDomain: 'example.org' });
  assert.equal(second.created, false);
  assert.equal(second.ca.rootPem, first.ca.rootPem);
  // A certificate issued before the restart verifies against the reloaded root.
  const before = await issueForTest(first.ca, { namespace: 'ns1', serviceAccount: 'sa1' });
  assert.match(verify(second.ca.rootPem, before.certPem), /: OK$/);
});

test('an SVID carries exactly the SPIFFE URI SAN, a P-256 key, 24 h by default, and chains to the root', async () => {
  const ca = await createRootCa();
  const t0 = Date.now();
  const cert = await issueForTest(ca, { namespace: 'shop', serviceAccount: 'billing' });
  const x = new X509Certificate(cert.certPem);
  assert.equal(x.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/billing');
  assert.equal(x.subject ?? '', '');
  assert.match(openssl(['x509', '-noout', '-subject'], cert.certPem), /^subject=\s*$/);
  assert.equal(x.ca, false);
  assert.equal(x.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
  const ttl = Date.parse(x.validTo) - t0;
  assert.ok(Math.abs(ttl - DEFAULT_WORKLOAD_TTL_MS) < 10 * 60_000, `ttl ${ttl} ms`);
  assert.ok(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(cert.keyPem)));
  const text = openssl(['x509', '-noout', '-text'], cert.certPem);
  assert.match(text, /X509v3 Subject Alternative Name: critical\s+URI:spiffe:\/\/cluster.local\/ns\/shop\/sa\/billing\s/);
  assert.match(text, /TLS Web Server Authentication, TLS Web Client Authentication/);
  assert.match(text, /Digital Signature, Key Encipherment/);
  assert.match(verify(ca.rootPem, cert.certPem), /: OK$/);
  // The chain is leaf → root.
  assert.equal(cert.certChainPem, cert.certPem + ca.rootPem);
  // The serials of two certificates differ.
  const other = await issueForTest(ca, { namespace: 'shop', serviceAccount: 'billing' });
  assert.notEqual(other.serial, cert.serial);
  assert.equal(new X509Certificate(other.certPem).serialNumber, other.serial);
});

test('a cacerts directory made with openssl (RSA company root) makes Weft an intermediate CA; chains verify with openssl', async () => {
  const d = join(tmp, 'cacerts');
  execFileSync('mkdir', ['-p', d]);
  const o = (args: string[]) => openssl(args);
  // As Istio's "Plug in CA certificates" task: a company root, an intermediate for the cluster, cert-chain = ca + root.
  o(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(d, 'root-key.pem'), '-out', join(d, 'root-cert.pem'), '-days', '3650', '-subj', '/O=Example Corp/CN=Example Root CA',
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign']);
  o(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(d, 'ca-key.pem'), '-out', join(d, 'ca.csr'), '-subj', '/O=Example Corp/CN=Intermediate CA cluster1']);
  writeFileSync(join(d, 'ext.cnf'), 'basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,digitalSignature,keyCertSign,cRLSign\n');
  o(['x509', '-req', '-in', join(d, 'ca.csr'), '-CA', join(d, 'root-cert.pem'), '-CAkey', join(d, 'root-key.pem'), '-CAcreateserial', '-days', '730', '-extfile', join(d, 'ext.cnf'), '-out', join(d, 'ca-cert.pem')]);
  writeFileSync(join(d, 'cert-chain.pem'), readFileSync(join(d, 'ca-cert.pem'), 'utf8') + readFileSync(join(d, 'root-cert.pem'), 'utf8'));
  rmSync(join(d, 'root-key.pem'));

  const ca = loadCa(d, { trustDomain: 'corp.example' });
  assert.equal(ca.selfSigned, false);
  assert.equal(ca.caChain.length, 2);
  assert.match(verify(readFileSync(join(d, 'root-cert.pem'), 'utf8'), readFileSync(join(d, 'ca-cert.pem'), 'utf8')), /: OK$/);
  const cert = await issueForTest(ca, { namespace: 'prod', serviceAccount: 'web' });
  assert.equal(new X509Certificate(cert.certPem).subjectAltName, 'URI:spiffe://corp.example/ns/prod/sa/web');
  assert.equal(cert.rootPem, readFileSync(join(d, 'root-cert.pem'), 'utf8'));
  const chain = cert.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!;
  assert.equal(chain.length, 3, 'leaf, intermediate, root');
  assert.equal(chain[2], ca.rootPem);
  assert.match(verify(ca.rootPem, cert.certPem, [chain[1]!]), /: OK$/);
  // Without the intermediate the leaf does not verify against the company root.
  assert.throws(() => verify(ca.rootPem, cert.certPem), /unable to get local issuer certificate/);
});

test('an intermediate made by the library, written in the cacerts layout, reloads and verifies', async () => {
  const company = await createRootCa({ trustDomain: 'corp.example' });
  const inter = await createIntermediateCa(company);
  const d = caDir(inter, join(tmp, 'lib-cacerts'));
  assert.equal(statSync(join(d, 'ca-key.pem')).mode & 0o777, 0o600);
  const ca = loadCa(d, { trustDomain: 'corp.example' });
  assert.equal(ca.selfSigned, false);
  const cert = await issueForTest(ca, { namespace: 'a', serviceAccount: 'b' });
  const [, mid] = cert.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!;
  assert.match(verify(company.rootPem, cert.certPem, [mid!]), /: OK$/);
});

test('broken CA directories are refused with an error naming the file', async () => {
  const a = caDir(await createRootCa());
  const b = caDir(await createRootCa());
  // Key of another CA.
  writeFileSync(join(a, 'ca-key.pem'), readFileSync(join(b, 'ca-key.pem')));
  assert.throws(() => loadCa(a), (e: Error) => e instanceof CaLoadError && e.message.includes('ca-key.pem') && /does not match/.test(e.message));
  // An intermediate whose root-cert.pem is someone else's root.
  const company = await createRootCa();
  const inter = caDir(await createIntermediateCa(company));
  writeFileSync(join(inter, 'root-cert.pem'), readFileSync(join(b, 'root-cert.pem')));
  writeFileSync(join(inter, 'cert-chain.pem'), readFileSync(join(inter, 'ca-cert.pem')));
  assert.throws(() => loadCa(inter), (e: Error) => e instanceof CaLoadError && e.message.includes('root-cert.pem') && /does not verify/.test(e.message));
  // A leaf as ca-cert.
  const c = caDir(await createRootCa());
  const leaf = await issueForTest(loadCa(c), { namespace: 'x', serviceAccount: 'y' });
  writeFileSync(join(c, 'ca-cert.pem'), leaf.certPem);
  writeFileSync(join(c, 'ca-key.pem'), leaf.keyPem);
  assert.throws(() => loadCa(c), (e: Error) => e instanceof CaLoadError && e.message.includes('ca-cert.pem') && /not a CA/.test(e.message));
  // Garbage.
  writeFileSync(join(c, 'ca-key.pem'), 'not a key');
  assert.throws(() => loadCa(c), /ca-key\.pem: not a readable private key/);
});

test('signCsr: the identity is the caller\'s; a CSR asking for another is refused; CSRs from openssl work; bad CSRs are refused', async () => {
  const ca = await createRootCa();
  const key = await generateEcKey();
  const mine = await buildCsr(key.privateKey, { uris: ['spiffe://cluster.local/ns/shop/sa/billing'] });
  const ok = await ca.signCsr(mine, { namespace: 'shop', serviceAccount: 'billing' });
  const x = new X509Certificate(ok.certPem);
  assert.equal(x.subjectAltName, 'URI:spiffe://cluster.local/ns/shop/sa/billing');
  assert.ok(x.publicKey.equals(key.publicKey));

  await assert.rejects(ca.signCsr(mine, { namespace: 'shop', serviceAccount: 'admin' }), (e: Error) =>
    e instanceof CaRequestError && e.message === 'CSR asks for identity spiffe://cluster.local/ns/shop/sa/billing, but the caller is authenticated as spiffe://cluster.local/ns/shop/sa/admin');

  // A CSR from openssl with no SAN gets the caller's identity; a custom TTL is honoured.
  const d = mkdtempSync(join(tmp, 'csr-'));
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', join(d, 'k.pem')]);
  const csr = openssl(['req', '-new', '-key', join(d, 'k.pem'), '-subj', '/O=whatever']);
  const t0 = Date.now();
  const fromOpenssl = await ca.signCsr(csr, { namespace: 'ns', serviceAccount: 'sa' }, 3600_000);
  assert.equal(new X509Certificate(fromOpenssl.certPem).subjectAltName, 'URI:spiffe://cluster.local/ns/ns/sa/sa');
  assert.ok(Math.abs(fromOpenssl.notAfter.getTime() - t0 - 3600_000) < 60_000);

  await assert.rejects(ca.signCsr(csr, { namespace: 'ns', serviceAccount: 'sa' }, 91 * 24 * 3600_000), /requested TTL 2184h is greater than the max allowed TTL 2160h/);
  await assert.rejects(ca.signCsr('hello', { namespace: 'ns', serviceAccount: 'sa' }), /expected one PEM "CERTIFICATE REQUEST" block, found 0/);
  // A CSR whose signature does not match its key (one byte of the signature flipped).
  const der = Buffer.from(mine.replace(/-----[^-]+-----|\s/g, ''), 'base64');
  der[der.length - 5] ^= 0x01;
  const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
  await assert.rejects(ca.signCsr(tampered, { namespace: 'shop', serviceAccount: 'billing' }), (e: Error) => e instanceof CaRequestError && /signature/.test(e.message));
  // RSA-1024 is too weak.
  openssl(['genrsa', '-out', join(d, 'rsa.pem'), '1024']);
  const weak = openssl(['req', '-new', '-key', join(d, 'rsa.pem'), '-subj', '/O=x']);
  await assert.rejects(ca.signCsr(weak, { namespace: 'ns', serviceAccount: 'sa' }), /RSA 1024-bit; at least 2048 bits are required/);
});

test('an expired test certificate can be made with notBefore', async () => {
  const ca = await createRootCa();
  const c = await issueForTest(ca, { namespace: 'a', serviceAccount: 'b', notBefore: new Date(Date.now() - 2 * 3600_000), ttlMs: 3600_000 });
  assert.ok(c.notAfter.getTime() < Date.now());
  assert.throws(() => verify(ca.rootPem, c.certPem), /certificate has expired/);
});

test('processes starting together on an empty directory agree on one root and one token key', async () => {
  const dir = join(tmp, 'race');
  const results = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateCa(dir)));
  assert.equal(results.filter((r) => r.created).length, 1);
  assert.equal(new Set(results.map((r) => r.ca.rootPem)).size, 1);
  assert.equal(loadCa(dir).rootPem, results[0]!.ca.rootPem);
  const keys = await Promise.all([1, 2, 3, 4].map(() => loadOrCreateTokenKey(join(dir, 'token-key.pem'))));
  const pems = new Set(keys.map((k) => k.export({ type: 'pkcs8', format: 'pem' }) as string));
  assert.equal(pems.size, 1);
  assert.equal(statSync(join(dir, 'token-key.pem')).mode & 0o777, 0o600);
});
