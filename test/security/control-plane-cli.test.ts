// `weft control-plane` security flags as a real process: --xds-plaintext=false leaves no plaintext port
// (connection refused) while the TLS port serves; --cacerts plugs in an intermediate under a company root
// (certificates chain leaf → intermediate → company root); a broken cacerts directory stops it with the reason.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { createIntermediateCa, createRootCa, loadOrCreateTokenKey, TokenIssuer, tokenKeyPath } from '../../src/controlplane/ca/index.js';
import { IdentityAgent } from '../../src/proxy/tls/identity/index.js';
import { caDir } from '../helpers/ca.js';
import { freePort, MeshWorkDir, WeftProcess } from '../helpers/mesh-processes.js';

const work = new MeshWorkDir('weft-cp-sec-');
const procs: WeftProcess[] = [];
after(async () => {
  for (const p of procs) await p.stop();
  work.remove();
});

const quiet = { info() {}, warn() {}, error() {} };

function connectResult(port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

test('--xds-plaintext=false: the plaintext port refuses connections; --cacerts: an intermediate under a company root', async () => {
  const company = await createRootCa({ trustDomain: 'corp.example' });
  const plugged = caDir(await createIntermediateCa(company), join(work.work, 'cacerts'));
  writeFileSync(join(work.config, 'mesh.yaml'), 'apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec: {trustDomain: corp.example}\n');
  const state = join(work.work, 'state');
  const plaintextPort = await freePort();
  const cp = new WeftProcess();
  procs.push(cp);
  const m = await cp.start(
    ['control-plane', '--config', work.config, '--xds-port', String(plaintextPort), '--xds-tls-port', '0', '--http-port', '0', '--xds-plaintext=false', '--cacerts', plugged, '--state-dir', state],
    /xDS over TLS \(ADS over mTLS \+ CSR service\): (\S+)/,
    'control plane',
  );
  const tls = m[1]!;
  assert.match(cp.stdout, /xDS plaintext: off/);
  assert.match(cp.stdout, /intermediate under a plugged-in root, trust domain/);
  assert.equal(await connectResult(plaintextPort), 'ECONNREFUSED');
  // The TLS port serves the CSR service; certificates chain to the company root through the intermediate.
  const issuer = new TokenIssuer(await loadOrCreateTokenKey(tokenKeyPath(state)));
  const token = await issuer.create({ namespace: 'prod', serviceAccount: 'web' }, 600_000);
  const agent = new IdentityAgent({ caAddr: tls, token: () => token, rootPem: company.rootPem, logger: quiet });
  try {
    const id = await agent.start();
    const [leaf, inter] = id.certChainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g)!;
    assert.equal(id.rootPem, company.rootPem);
    const leafX = new X509Certificate(leaf!);
    assert.equal(leafX.subjectAltName, 'URI:spiffe://corp.example/ns/prod/sa/web');
    const interX = new X509Certificate(inter!);
    assert.ok(leafX.verify(interX.publicKey) && interX.verify(new X509Certificate(company.rootPem).publicKey));
    // Renewal authenticates with that certificate over mTLS: the control plane verifies leaf → intermediate → root.
    const serial = agent.serial;
    await agent.renew();
    assert.notEqual(agent.serial, serial);
    assert.match(cp.stderr, /"identity":"spiffe:\/\/corp\.example\/ns\/prod\/sa\/web","via":"client certificate"/);
  } finally {
    agent.close();
  }
});

test('a broken cacerts directory stops the control plane with the file and the reason', async () => {
  const bad = caDir(await createRootCa(), join(work.work, 'bad-cacerts'));
  writeFileSync(join(bad, 'ca-key.pem'), (await createRootCa()).signingKey().export({ type: 'pkcs8', format: 'pem' }) as string);
  const cp = new WeftProcess();
  procs.push(cp);
  await assert.rejects(cp.start(['control-plane', '--config', work.config, '--xds-port', '0', '--http-port', '0', '--cacerts', bad, '--state-dir', join(work.work, 's2')], /ready/, 'control plane'), /exited with 1/);
  assert.match(cp.stderr, /weft control-plane: cannot start: .*bad-cacerts\/ca-key\.pem: the key does not match ca-cert\.pem/);
});
