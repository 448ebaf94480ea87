// TLS origination with client certificates (DestinationRule `tls.mode: MUTUAL`), end to end: the real
// `weft control-plane --secrets-dir`, an egress gateway and a sidecar (`weft proxy`), and an "external" HTTPS server
// (node:https) that requires a client certificate from its own CA (TLS 1.2, so a missing certificate fails the
// handshake itself, as with most external servers):
// - `credentialName` at the egress gateway: the control plane serves `kubernetes://<name>` (certificate and key) and
//   `kubernetes://<name>-cacert` (the CA that verifies the external host) to the gateway → 200, the external host
//   saw the credential's certificate;
// - `credentialName` at a sidecar, in a rule with a workloadSelector (Istio honours it only there) → 200;
// - MUTUAL with file paths (clientCertificate / privateKey / caCertificates) → 200;
// - SIMPLE (no client certificate) to the same host → the handshake is refused: 503 with the `UF` response flag in
//   the access log (%RESPONSE_FLAGS%; with URX, Istio's default retries exhausted), and the external host never
//   sees a request.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createRootCa, issueForTest, issueServerCertForTest } from '../helpers/ca.js';
import { curl, eventually } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, serviceYaml, startControlPlane, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const HOSTS = ['api.partner.example', 'direct.partner.example', 'files.partner.example', 'nocert.partner.example'];

describe('TLS origination with client certificates (DestinationRule MUTUAL)', () => {
  const work = new MeshWorkDir('weft-tls-origination-');
  const secrets = join(work.work, 'secrets');
  const logFile = join(work.work, 'access.log');
  const cp = new WeftProcess();
  const egress = new WeftProcess();
  const sidecar = new WeftProcess();
  let external: HttpsServer;
  /** The spiffe URI (client certificate) of each request the external host served. */
  const seen: string[] = [];
  let clientSpiffe = '';
  const ports = { egress: 0, outbound: 0 };

  async function proxy(proc: WeftProcess, args: string[], id: string): Promise<void> {
    args.push('--id', id, '--namespace', 'default', '--health-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0');
    if (!args.includes('--outbound-port')) args.push('--outbound-port', String(await freePort()));
    await proc.start(['proxy', ...args], /ready \(listeners: [^)]*\)/, id);
  }

  /** Access log lines (format below: `<authority> <code> <flags>`). */
  const logLines = (): string[] => (existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n') : []);

  before(async () => {
    const serverCa = await createRootCa();
    const clientCa = await createRootCa();
    const serverCert = await issueServerCertForTest(serverCa, { dnsNames: HOSTS });
    const clientCert = await issueForTest(clientCa, { namespace: 'partner', serviceAccount: 'weft-client' });
    clientSpiffe = clientCert.spiffeId!;
    external = createHttpsServer(
      { cert: serverCert.certChainPem, key: serverCert.keyPem, ca: clientCa.rootPem, requestCert: true, rejectUnauthorized: true, maxVersion: 'TLSv1.2' },
      (req, res) => {
        const peer = (req.socket as TLSSocket).getPeerX509Certificate();
        seen.push(peer?.subjectAltName ?? '');
        res.writeHead(200, { 'content-type': 'text/plain', 'x-client-san': peer?.subjectAltName ?? '' });
        res.end(`external ${req.headers.host}${req.url}`);
      },
    );
    await new Promise<void>((r) => external.listen(0, '127.0.0.1', r));
    const port = (external.address() as AddressInfo).port;
    mkdirSync(join(secrets, 'partner-client'), { recursive: true });
    writeFileSync(join(secrets, 'partner-client', 'tls.crt'), clientCert.certChainPem);
    writeFileSync(join(secrets, 'partner-client', 'tls.key'), clientCert.keyPem);
    writeFileSync(join(secrets, 'partner-client', 'ca.crt'), serverCa.rootPem);
    const files = { cert: join(work.work, 'client.pem'), key: join(work.work, 'client-key.pem'), ca: join(work.work, 'server-ca.pem') };
    writeFileSync(files.cert, clientCert.certChainPem);
    writeFileSync(files.key, clientCert.keyPem);
    writeFileSync(files.ca, serverCa.rootPem);
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    // Every host: a MESH_EXTERNAL ServiceEntry on the external server; port 80 for the app, 443 for the gateway hop.
    const entry = (host: string) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ${host.split('.')[0]}, namespace: default}
spec:
  hosts: [${host}]
  ports: [{number: 80, name: http, protocol: HTTP}, {number: 443, name: https, protocol: HTTPS}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${port}, https: ${port}}}]
`;
    const rule = (name: string, host: string, port: number, tls: string, selector = '') => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ${name}, namespace: default}
spec:
  host: ${host}
${selector}  trafficPolicy:
    portLevelSettings:
    - port: {number: ${port}}
      tls: ${tls}
`;
    work.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  accessLogFile: ${logFile}
  accessLogFormat: "%REQ(:AUTHORITY)% %RESPONSE_CODE% %RESPONSE_FLAGS%\\n"
`,
        ...HOSTS.map(entry),
        serviceYaml('egressgateway', { name: 'http', port: ports.egress }),
        workloadEntryYaml('egressgateway-1', { app: 'egressgateway' }, 'http', ports.egress),
        `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: ${ports.egress}, name: http, protocol: HTTP}
    hosts: [api.partner.example]
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
        // The egress gateway originates TLS with the credential (no workloadSelector: gateways honour it).
        rule('partner-egress', 'api.partner.example', 443, '{mode: MUTUAL, credentialName: partner-client, sni: api.partner.example}'),
        // The sidecar itself originates, with the credential: Istio needs a workloadSelector for that.
        rule('direct', 'direct.partner.example', 80, '{mode: MUTUAL, credentialName: partner-client, sni: direct.partner.example}', '  workloadSelector: {matchLabels: {app: client}}\n'),
        rule('files', 'files.partner.example', 80, `{mode: MUTUAL, clientCertificate: ${files.cert}, privateKey: ${files.key}, caCertificates: ${files.ca}, sni: files.partner.example}`),
        rule('nocert', 'nocert.partner.example', 80, `{mode: SIMPLE, caCertificates: ${files.ca}, sni: nocert.partner.example}`),
      ]),
    );
    const addr = await startControlPlane(cp, work.config, ['--secrets-dir', secrets]);
    await Promise.all([
      proxy(egress, ['--gateway', '--xds', addr.xds, '--labels', 'istio=egressgateway,app=egressgateway'], 'egressgateway'),
      proxy(sidecar, ['--xds', addr.xds, '--labels', 'app=client', '--outbound-port', String(ports.outbound)], 'client'),
    ]);
  });

  after(async () => {
    await Promise.all([egress.stop(), sidecar.stop()]);
    await cp.stop();
    external.closeAllConnections();
    await new Promise<void>((r) => external.close(() => r()));
    work.remove();
  });

  const viaSidecar = (host: string) => curl(`http://${host}/v1/ping`, ['-x', `http://127.0.0.1:${ports.outbound}`]);

  /** Waits for a 200 through the sidecar, then checks the external host saw the client certificate. */
  async function originates(host: string): Promise<void> {
    await eventually(async () => (await viaSidecar(host).catch(() => undefined))?.status === 200, `200 for ${host}`, 20_000);
    const r = await viaSidecar(host);
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), `external ${host}/v1/ping`);
    assert.equal(r.headers['x-client-san'], `URI:${clientSpiffe}`, 'the external host verified the client certificate');
  }

  test('egress gateway: credentialName served over SDS as kubernetes://<name> → the client certificate is presented', async () => {
    await originates('api.partner.example');
  });

  test('sidecar: credentialName in a rule with a workloadSelector → the client certificate is presented', async () => {
    await originates('direct.partner.example');
  });

  test('MUTUAL with certificate files', async () => {
    await originates('files.partner.example');
  });

  test('no client certificate (SIMPLE): handshake refused by the external host → 503 UF, no request served', async () => {
    const before = seen.length;
    await eventually(() => logLines().some((l) => l.startsWith('files.partner.example ')), 'earlier requests logged', 20_000);
    const r = await viaSidecar('nocert.partner.example');
    assert.equal(r.status, 503);
    assert.equal(seen.length, before, 'the external host served no request');
    await eventually(() => logLines().some((l) => l.startsWith('nocert.partner.example ')), 'the refused request logged', 20_000);
    const lines = logLines().filter((l) => l.startsWith('nocert.partner.example '));
    assert.equal(lines.length, 1, lines.join('\n'));
    const [, code, flags] = lines[0]!.split(' ');
    assert.equal(code, '503');
    // UF (upstream connection failure: the TLS handshake); Istio's default retry policy adds URX (retries exhausted).
    assert.ok(flags!.split(',').includes('UF'), `flags ${flags}`);
  });
});
