// Gateways with real TLS: the real `weft control-plane --secrets-dir`, `weft proxy --gateway` processes and a
// sidecar, certificates from Weft's CA library, checked with curl (--resolve/--cacert/--cert), openssl s_client and
// node:tls:
// - SIMPLE: the user certificate from the credentials directory is served for its SNI name;
// - MUTUAL: no client certificate → handshake refused; a client certificate from the credential's CA → 200;
// - PASSTHROUGH: SNI routing to a TLS backend, whose own certificate the client sees (and AUTO_PASSTHROUGH with
//   Istio's `outbound_.<port>_.<subset>_.<host>` SNI);
// - the credential's files replaced → the new certificate (its serial) is served by the same proxy process;
// - TLS origination at an egress gateway: a sidecar's plain HTTP request for a MESH_EXTERNAL host leaves the egress
//   gateway as TLS with the host's SNI, verified against the CA the DestinationRule names.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { renameSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { createRootCa, issueForTest, issueServerCertForTest } from '../helpers/ca.js';
import type { TestCert } from '../helpers/ca.js';
import { curl, Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, run, serviceYaml, sleep, startControlPlane, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

async function eventually(what: string, f: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await f().catch(() => false)) return;
    await sleep(100);
  }
  assert.fail(`${what} did not happen within 20 s`);
}

/** Connects with node:tls and returns the serial of the certificate served for `servername` (rejects on failure). */
function servedSerial(port: number, servername: string, ca: string, extra: { checkServerIdentity?: () => undefined } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = tlsConnect({ host: '127.0.0.1', port, servername, ca, ...extra }, () => {
      const serial = s.getPeerX509Certificate()?.serialNumber ?? '';
      s.destroy();
      resolve(serial);
    });
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('TLS handshake timed out')));
  });
}

/** `openssl s_client ARGS` with stdin closed (so it exits after the handshake); stdout and stderr together. */
function sClient(args: string[]): Promise<string> {
  return new Promise((resolve) => {
    const p = spawn('openssl', ['s_client', ...args]);
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('close', () => resolve(out));
    p.stdin.end();
  });
}

/** A TLS backend (node:https) that answers with its name and records the SNI of each request. */
class TlsBackend {
  server!: HttpsServer;
  port = 0;
  readonly sni: string[] = [];
  constructor(
    readonly name: string,
    readonly cert: TestCert,
  ) {}
  async start(): Promise<void> {
    this.server = createHttpsServer({ cert: this.cert.certChainPem, key: this.cert.keyPem }, (req, res) => {
      this.sni.push((req.socket as TLSSocket).servername || '');
      res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': this.name });
      res.end(`${this.name} ${req.url}`);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

describe('gateways end to end (TLS)', () => {
  const work = new MeshWorkDir('weft-gateway-tls-');
  const secrets = join(work.work, 'secrets');
  const cp = new WeftProcess();
  const ingress = new WeftProcess();
  const egress = new WeftProcess();
  const sidecar = new WeftProcess();
  const productpage = new Upstream('productpage');
  let ca: Awaited<ReturnType<typeof createRootCa>>;
  let bookinfoCert: TestCert;
  let db: TlsBackend;
  let partner: TlsBackend;
  /** An external host whose certificate comes from a CA the DestinationRule does not trust. */
  let rogue: TlsBackend;
  const ports = { simple: 0, mutual: 0, passthrough: 0, auto: 0, egress: 0, outbound: 0 };

  async function proxy(proc: WeftProcess, args: string[], id: string): Promise<void> {
    args.push('--id', id, '--namespace', 'default', '--health-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0');
    if (!args.includes('--outbound-port')) args.push('--outbound-port', String(await freePort()));
    await proc.start(['proxy', ...args], /ready \(listeners: [^)]*\)/, id);
  }

  before(async () => {
    ca = await createRootCa();
    bookinfoCert = await issueServerCertForTest(ca, { dnsNames: ['bookinfo.example.com'] });
    const mtlsCert = await issueServerCertForTest(ca, { dnsNames: ['mtls.example.com'] });
    db = new TlsBackend('db', await issueServerCertForTest(ca, { dnsNames: ['db.passthrough.example'] }));
    partner = new TlsBackend('partner', await issueServerCertForTest(ca, { dnsNames: ['api.partner.example'] }));
    rogue = new TlsBackend('rogue', await issueServerCertForTest(await createRootCa(), { dnsNames: ['api.rogue.example'] }));
    await Promise.all([productpage.start(), db.start(), partner.start(), rogue.start()]);
    mkdirSync(join(secrets, 'mtls-cred'), { recursive: true });
    writeFileSync(join(secrets, 'bookinfo-cred.crt'), bookinfoCert.certChainPem);
    writeFileSync(join(secrets, 'bookinfo-cred.key'), bookinfoCert.keyPem);
    writeFileSync(join(secrets, 'mtls-cred', 'tls.crt'), mtlsCert.certChainPem);
    writeFileSync(join(secrets, 'mtls-cred', 'tls.key'), mtlsCert.keyPem);
    writeFileSync(join(secrets, 'mtls-cred', 'ca.crt'), ca.rootPem);
    const rootFile = join(work.work, 'root.pem');
    writeFileSync(rootFile, ca.rootPem);
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    work.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('productpage', { name: 'http', port: 9080 }),
        workloadEntryYaml('productpage-1', { app: 'productpage' }, 'http', productpage.port),
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: db, namespace: default}
spec:
  hosts: [db.passthrough.example]
  ports: [{number: 443, name: tls, protocol: TLS}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {tls: ${db.port}}}]
`,
        `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${ports.simple}, name: https, protocol: HTTPS}
    hosts: [bookinfo.example.com]
    tls: {mode: SIMPLE, credentialName: bookinfo-cred}
  - port: {number: ${ports.mutual}, name: https-mtls, protocol: HTTPS}
    hosts: [mtls.example.com]
    tls: {mode: MUTUAL, credentialName: mtls-cred}
  - port: {number: ${ports.passthrough}, name: tls, protocol: TLS}
    hosts: ["*.passthrough.example"]
    tls: {mode: PASSTHROUGH}
  - port: {number: ${ports.auto}, name: tls-auto, protocol: TLS}
    hosts: ["*.passthrough.example"]
    tls: {mode: AUTO_PASSTHROUGH}
`,
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [bookinfo.example.com, mtls.example.com]
  gateways: [bookinfo-gateway]
  http:
  - route: [{destination: {host: productpage, port: {number: 9080}}}]
`,
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: db, namespace: default}
spec:
  hosts: [db.passthrough.example]
  gateways: [bookinfo-gateway]
  tls:
  - match: [{port: ${ports.passthrough}, sniHosts: [db.passthrough.example]}]
    route: [{destination: {host: db.passthrough.example, port: {number: 443}}}]
`,
        // Egress gateway with TLS origination (examples/gateway/egress.yaml).
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: partner, namespace: default}
spec:
  hosts: [api.partner.example]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {https: ${partner.port}, http: 1}}]
`,
        `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: rogue, namespace: default}
spec:
  hosts: [api.rogue.example]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {https: ${rogue.port}, http: 1}}]
`,
        serviceYaml('egressgateway', { name: 'http', port: ports.egress }),
        workloadEntryYaml('egressgateway-1', { app: 'egressgateway' }, 'http', ports.egress),
        `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: ${ports.egress}, name: http, protocol: HTTP}
    hosts: [api.partner.example, api.rogue.example]
`,
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: partner-via-egress, namespace: default}
spec:
  hosts: [api.partner.example]
  gateways: [mesh, egressgateway]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: egressgateway.default.svc.cluster.local, port: {number: ${ports.egress}}}}]
  - match: [{gateways: [egressgateway], port: ${ports.egress}}]
    route: [{destination: {host: api.partner.example, port: {number: 443}}}]
`,
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: rogue-via-egress, namespace: default}
spec:
  hosts: [api.rogue.example]
  gateways: [mesh, egressgateway]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: egressgateway.default.svc.cluster.local, port: {number: ${ports.egress}}}}]
  - match: [{gateways: [egressgateway], port: ${ports.egress}}]
    route: [{destination: {host: api.rogue.example, port: {number: 443}}}]
`,
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rogue-tls, namespace: default}
spec:
  host: api.rogue.example
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: api.rogue.example, caCertificates: ${rootFile}}
`,
        `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: partner-tls, namespace: default}
spec:
  host: api.partner.example
  trafficPolicy:
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, sni: api.partner.example, caCertificates: ${rootFile}}
`,
      ]),
    );
    const addr = await startControlPlane(cp, work.config, ['--secrets-dir', secrets]);
    await Promise.all([
      proxy(ingress, ['--gateway', '--xds', addr.xds, '--labels', 'istio=ingressgateway'], 'ingressgateway'),
      proxy(egress, ['--gateway', '--xds', addr.xds, '--labels', 'istio=egressgateway,app=egressgateway'], 'egressgateway'),
      proxy(sidecar, ['--xds', addr.xds, '--labels', 'app=client', '--outbound-port', String(ports.outbound)], 'client'),
    ]);
  });

  after(async () => {
    await Promise.all([ingress.stop(), egress.stop(), sidecar.stop()]);
    await cp.stop();
    await Promise.all([productpage.stop(), db.stop(), partner.stop(), rogue.stop()]);
    work.remove();
  });

  const resolve = (host: string, port: number) => ['--resolve', `${host}:${port}:127.0.0.1`];

  test('SIMPLE: the credential is served for its SNI name and the request is routed', async () => {
    const url = `https://bookinfo.example.com:${ports.simple}/productpage`;
    await eventually('HTTPS route', async () => (await curl(url, [...resolve('bookinfo.example.com', ports.simple), '--cacert', join(work.work, 'root.pem')])).status === 200);
    const r = await curl(url, [...resolve('bookinfo.example.com', ports.simple), '--cacert', join(work.work, 'root.pem')]);
    assert.equal(r.headers['x-upstream'], 'productpage');
    assert.equal(await servedSerial(ports.simple, 'bookinfo.example.com', ca.rootPem), bookinfoCert.serial);
    // An SNI name the server does not serve matches no filter chain: the connection is closed.
    await assert.rejects(servedSerial(ports.simple, 'other.example.com', ca.rootPem));
  });

  test('MUTUAL: no client certificate is refused; a certificate from the credential CA is accepted', async () => {
    const url = `https://mtls.example.com:${ports.mutual}/productpage`;
    const base = [...resolve('mtls.example.com', ports.mutual), '--cacert', join(work.work, 'root.pem')];
    const none = await run('curl', ['-s', '-S', '-o', '/dev/null', '--max-time', '10', ...base, url]);
    assert.notEqual(none.status, 0, 'curl without a client certificate fails');
    const client = await issueForTest(ca, { namespace: 'default', serviceAccount: 'client' });
    writeFileSync(join(work.work, 'client.crt'), client.certChainPem);
    writeFileSync(join(work.work, 'client.key'), client.keyPem);
    const r = await curl(url, [...base, '--cert', join(work.work, 'client.crt'), '--key', join(work.work, 'client.key')]);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'productpage');
  });

  test('PASSTHROUGH: SNI routing to the TLS backend, which terminates TLS itself', async () => {
    const text = await sClient(['-connect', `127.0.0.1:${ports.passthrough}`, '-servername', 'db.passthrough.example', '-CAfile', join(work.work, 'root.pem'), '-verify_return_error', '-brief']);
    assert.match(text, /Verification: OK/);
    assert.equal(await servedSerial(ports.passthrough, 'db.passthrough.example', ca.rootPem), db.cert.serial);
    const r = await curl(`https://db.passthrough.example:${ports.passthrough}/q`, [...resolve('db.passthrough.example', ports.passthrough), '--cacert', join(work.work, 'root.pem')]);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'db /q');
    assert.equal(db.sni.at(-1), 'db.passthrough.example');
  });

  test("AUTO_PASSTHROUGH: Istio's outbound_.<port>_.<subset>_.<host> SNI reaches the service", async () => {
    const sni = 'outbound_.443_._.db.passthrough.example';
    const before = db.sni.length;
    // The backend's certificate is for its own name, not for the SNI routing name: only the serial is checked.
    assert.equal(await servedSerial(ports.auto, sni, ca.rootPem, { checkServerIdentity: () => undefined }), db.cert.serial);
    assert.equal(db.sni.length, before, 'a handshake only: no request');
  });

  test('the credential files replaced: the new certificate is served by the same proxy process', async () => {
    const pid = ingress.proc!.pid;
    const next = await issueServerCertForTest(ca, { dnsNames: ['bookinfo.example.com'] });
    assert.notEqual(next.serial, bookinfoCert.serial);
    for (const [ext, pem] of [['key', next.keyPem], ['crt', next.certChainPem]] as const) {
      writeFileSync(join(secrets, `bookinfo-cred.${ext}.tmp`), pem);
      renameSync(join(secrets, `bookinfo-cred.${ext}.tmp`), join(secrets, `bookinfo-cred.${ext}`));
    }
    await eventually('new certificate served', async () => (await servedSerial(ports.simple, 'bookinfo.example.com', ca.rootPem)) === next.serial);
    assert.equal(ingress.proc!.pid, pid);
    assert.equal(ingress.proc!.exitCode, null, 'the proxy was not restarted');
    const r = await curl(`https://bookinfo.example.com:${ports.simple}/productpage`, [...resolve('bookinfo.example.com', ports.simple), '--cacert', join(work.work, 'root.pem')]);
    assert.equal(r.status, 200);
  });

  test('egress gateway with TLS origination: plain HTTP from the app, TLS with SNI and verification to the external host', async () => {
    const proxyArg = ['-x', `http://127.0.0.1:${ports.outbound}`];
    await eventually('egress TLS origination', async () => (await curl('http://api.partner.example/v1/ping', proxyArg)).status === 200);
    const r = await curl('http://api.partner.example/v1/ping', proxyArg);
    assert.equal(r.headers['x-backend'], 'partner');
    assert.equal(r.body.toString(), 'partner /v1/ping');
    assert.equal(partner.sni.at(-1), 'api.partner.example');
  });

  test('TLS origination verifies the external host: a certificate from an untrusted CA gets 503, no request sent', async () => {
    const r = await curl('http://api.rogue.example/v1/ping', ['-x', `http://127.0.0.1:${ports.outbound}`]);
    assert.equal(r.status, 503);
    assert.deepEqual(rogue.sni, [], 'no request reached the untrusted host');
  });
});
