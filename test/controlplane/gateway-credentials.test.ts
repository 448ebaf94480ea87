// Gateway credentials over SDS: the control plane reads `--secrets-dir` (both layouts: `<name>.crt/.key` files and
// a `<name>/` folder with Kubernetes TLS Secret keys), serves the credentials a gateway's listeners name as ADS
// Secret resources (`kubernetes://<name>`, `kubernetes://<name>-cacert`) to a real ADS client, re-pushes a
// credential when its files are replaced (checked by the served certificate's serial), keeps the last good version
// when a file is broken (and says which file, never the key), and leaves out a server whose credential is unknown.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TypeUrl, unpack } from '../../src/xds/index.js';
import { SecretSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { Secret } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import type { DiscoveryResponse } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { AdsTestClient } from '../helpers/ads-client.js';
import type { SotwTestStream } from '../helpers/ads-client.js';
import { createRootCa, issueServerCertForTest } from '../helpers/ca.js';
import type { TestCert } from '../helpers/ca.js';
import { ConfigDir, startControlPlane } from './controlplane-helpers.js';
import type { TestControlPlane } from './controlplane-helpers.js';

const CONFIG = `
apiVersion: v1
kind: Service
metadata: {name: productpage, namespace: default}
spec:
  selector: {app: productpage}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cred}
  - port: {number: 9443, name: https-mtls, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: mtls-cred}
  - port: {number: 9444, name: https-unknown, protocol: HTTPS}
    hosts: [unknown.example.com]
    tls: {mode: SIMPLE, credentialName: not-there}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [bookinfo.example.com, mtls.example.com, unknown.example.com]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
`;

const NODE = { id: 'ingressgateway', metadata: { NAMESPACE: 'default', LABELS: { istio: 'ingressgateway' }, WEFT_PROXY_TYPE: 'router' } };

function serialOf(s: Secret): string {
  assert.equal(s.type.case, 'tlsCertificate');
  const spec = s.type.value.certificateChain?.specifier;
  assert.equal(spec?.case, 'inlineString');
  return new X509Certificate(spec.value).serialNumber;
}

/** Writes a file whole (rename into place), as a secret-mounting tool does. */
function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

describe('gateway credentials over SDS', () => {
  const config = new ConfigDir();
  const secrets = mkdtempSync(join(tmpdir(), 'weft-secrets-'));
  let t: TestControlPlane;
  let client: AdsTestClient;
  let stream: SotwTestStream;
  let first: TestCert;
  let mtls: TestCert;
  let ca: Awaited<ReturnType<typeof createRootCa>>;

  /** The next SDS response, ACKed. */
  async function nextSecrets(): Promise<Map<string, Secret>> {
    for (;;) {
      const r: DiscoveryResponse = await stream.next();
      if (r.typeUrl !== TypeUrl.Secret) continue;
      stream.send({ node: NODE as never, typeUrl: TypeUrl.Secret, versionInfo: r.versionInfo, responseNonce: r.nonce, resourceNames: ['kubernetes://bookinfo-cred', 'kubernetes://mtls-cred', 'kubernetes://mtls-cred-cacert'] });
      return new Map(r.resources.map((a) => [unpack(SecretSchema, a).name, unpack(SecretSchema, a)]));
    }
  }

  before(async () => {
    ca = await createRootCa();
    first = await issueServerCertForTest(ca, { dnsNames: ['bookinfo.example.com'] });
    mtls = await issueServerCertForTest(ca, { dnsNames: ['mtls.example.com'] });
    writeFileSync(join(secrets, 'bookinfo-cred.crt'), first.certChainPem);
    writeFileSync(join(secrets, 'bookinfo-cred.key'), first.keyPem);
    mkdirSync(join(secrets, 'mtls-cred'));
    writeFileSync(join(secrets, 'mtls-cred', 'tls.crt'), mtls.certChainPem);
    writeFileSync(join(secrets, 'mtls-cred', 'tls.key'), mtls.keyPem);
    writeFileSync(join(secrets, 'mtls-cred', 'ca.crt'), ca.rootPem);
    config.write('mesh.yaml', CONFIG);
    t = await startControlPlane(config.dir, { secretsDir: secrets });
    client = new AdsTestClient(t.xds);
    stream = client.sotw();
  });

  after(async () => {
    stream.cancel();
    client.close();
    await t.cp.close();
    config.remove();
    rmSync(secrets, { recursive: true, force: true });
  });

  test('the gateway gets its listeners, and the unknown credential is reported naming the Gateway', async () => {
    stream.send({ node: NODE as never, typeUrl: TypeUrl.Listener });
    let r: DiscoveryResponse;
    do r = await stream.next();
    while (r.typeUrl !== TypeUrl.Listener);
    stream.send({ node: NODE as never, typeUrl: TypeUrl.Listener, versionInfo: r.versionInfo, responseNonce: r.nonce });
    assert.deepEqual(r.resources.map((a) => unpack(ListenerSchema, a).name).sort(), ['0.0.0.0_8443', '0.0.0.0_9443']);
    const syncz = (await (await fetch(`${t.http}/debug/syncz`)).json()) as Array<{ id: string; translationErrors: Array<{ message: string; source?: string }> }>;
    const errs = syncz.find((p) => p.id === NODE.id)?.translationErrors ?? [];
    const e = errs.find((x) => x.message.includes('not-there'));
    assert.ok(e, JSON.stringify(errs));
    assert.equal(e.source, 'Gateway default/bookinfo-gateway');
    assert.match(e.message, /servers\[2\] \(port 9444 HTTPS "https-unknown"\): credential "not-there" was not found in the secrets directory .*: server left out/);
  });

  test('credentials are served as SDS Secrets (both directory layouts)', async () => {
    stream.send({ node: NODE as never, typeUrl: TypeUrl.Secret, resourceNames: ['kubernetes://bookinfo-cred', 'kubernetes://mtls-cred', 'kubernetes://mtls-cred-cacert'] });
    const got = await nextSecrets();
    assert.deepEqual([...got.keys()].sort(), ['kubernetes://bookinfo-cred', 'kubernetes://mtls-cred', 'kubernetes://mtls-cred-cacert']);
    assert.equal(serialOf(got.get('kubernetes://bookinfo-cred')!), first.serial);
    assert.equal(serialOf(got.get('kubernetes://mtls-cred')!), mtls.serial);
    const key = got.get('kubernetes://bookinfo-cred')!.type.value;
    assert.ok(key && 'privateKey' in key);
    assert.deepEqual(key.privateKey?.specifier, { case: 'inlineString', value: first.keyPem });
    const caSecret = got.get('kubernetes://mtls-cred-cacert')!;
    assert.equal(caSecret.type.case, 'validationContext');
    assert.deepEqual(caSecret.type.value.trustedCa?.specifier, { case: 'inlineString', value: ca.rootPem });
  });

  test('replacing the files pushes the new certificate', async () => {
    const next = await issueServerCertForTest(ca, { dnsNames: ['bookinfo.example.com'] });
    assert.notEqual(next.serial, first.serial);
    writeAtomic(join(secrets, 'bookinfo-cred.key'), next.keyPem);
    writeAtomic(join(secrets, 'bookinfo-cred.crt'), next.certChainPem);
    for (;;) {
      const got = await nextSecrets();
      const serial = serialOf(got.get('kubernetes://bookinfo-cred')!);
      if (serial === next.serial) break;
      // Between the two renames the key does not match the certificate: the last good pair is kept.
      assert.equal(serial, first.serial);
    }
  });

  test('a broken file keeps the last good credential and is reported by file, without key material', async () => {
    writeAtomic(join(secrets, 'mtls-cred', 'tls.crt'), 'not a certificate\n');
    const file = join(secrets, 'mtls-cred', 'tls.crt');
    const warning = () => t.logs.find('gateway credential not usable; its last good version (if any) stays in force').find((l) => l.file === file);
    for (let i = 0; i < 100 && !warning(); i++) await new Promise((r) => setTimeout(r, 50));
    const line = warning();
    assert.ok(line, 'a warning names the broken file');
    assert.equal(line.credential, 'mtls-cred');
    assert.match(String(line.error), /holds no PEM certificate/);
    assert.ok(!JSON.stringify(t.logs.lines).includes('PRIVATE KEY'), 'no key material in the log');
    assert.equal(t.cp.credentials?.get('mtls-cred')?.certChainPem, mtls.certChainPem);
  });
});
