// An ISTIO_MUTUAL gateway server end to end: a real `weft proxy --gateway` with a workload token gets its own SPIFFE
// certificate from the control plane's CA (identity agent), serves it on the ISTIO_MUTUAL server (SDS `default`),
// and requires client certificates from the mesh CA (SDS `ROOTCA`): a client without one is refused, a client with
// a mesh certificate is routed by the VirtualService bound to the Gateway.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { TLSSocket } from 'node:tls';
import { loadOrCreateTokenKey, TokenIssuer, tokenKeyPath } from '../../src/controlplane/ca/index.js';
import { issueForTest } from '../helpers/ca.js';
import type { TestCert } from '../helpers/ca.js';
import { Upstream } from '../helpers/http-upstream.js';
import { freePort, serviceYaml, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { ConfigDir, startControlPlane } from '../controlplane/controlplane-helpers.js';
import type { TestControlPlane } from '../controlplane/controlplane-helpers.js';

interface Tls {
  ca: string;
  cert?: string;
  key?: string;
}

/** The served certificate's URI SAN, after a handshake with `servername` (rejects when refused). */
function servedSan(port: number, tls: Tls): Promise<string> {
  return new Promise((resolve, reject) => {
    const s: TLSSocket = tlsConnect({ host: '127.0.0.1', port, servername: 'internal.example.com', ...tls, checkServerIdentity: () => undefined }, () => {
      const san = s.getPeerX509Certificate()?.subjectAltName ?? '';
      // TLS 1.3: a refused client certificate is reported after the handshake, on the first read.
      s.once('data', () => undefined);
      s.write('GET / HTTP/1.1\r\nhost: internal.example.com\r\nconnection: close\r\n\r\n');
      s.once('error', reject);
      s.once('end', () => resolve(san));
    });
    s.on('error', reject);
    s.setTimeout(10_000, () => s.destroy(new Error('timed out')));
  });
}

/** One HTTPS GET through the gateway with a client certificate; resolves with the status and x-upstream. */
function get(port: number, tls: Tls): Promise<{ status: number; upstream: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/internal', servername: 'internal.example.com', headers: { host: 'internal.example.com' }, agent: false, ...tls, checkServerIdentity: () => undefined }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, upstream: res.headers['x-upstream'] as string | undefined }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timed out')));
    req.end();
  });
}

describe('ISTIO_MUTUAL gateway server', () => {
  const state = mkdtempSync(join(tmpdir(), 'weft-gw-istio-mutual-'));
  const cfg = new ConfigDir();
  const gateway = new WeftProcess();
  const upstream = new Upstream('internal');
  let t: TestControlPlane;
  let port = 0;
  let client: TestCert;

  before(async () => {
    await upstream.start();
    port = await freePort();
    cfg.write(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('internal', { name: 'http', port: 9080 }),
        workloadEntryYaml('internal-1', { app: 'internal' }, 'http', upstream.port),
        `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mesh-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${port}, name: https-mesh, protocol: HTTPS}
    hosts: [internal.example.com]
    tls: {mode: ISTIO_MUTUAL}
`,
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: internal, namespace: default}
spec:
  hosts: [internal.example.com]
  gateways: [mesh-gateway]
  http:
  - route: [{destination: {host: internal, port: {number: 9080}}}]
`,
      ]),
    );
    t = await startControlPlane(cfg.dir, { security: { caDir: join(state, 'ca'), tokenKeyPath: tokenKeyPath(state), xdsTlsPort: 0 } });
    const issuer = new TokenIssuer(await loadOrCreateTokenKey(tokenKeyPath(state)));
    const tokenFile = join(state, 'gateway.token');
    writeFileSync(tokenFile, await issuer.create({ namespace: 'default', serviceAccount: 'ingressgateway' }, 3600_000), { mode: 0o600 });
    const tlsAddr = `127.0.0.1:${t.cp.xdsTlsPort}`;
    await gateway.start(
      [
        'proxy', '--gateway', '--xds', t.xds, '--id', 'ingressgateway', '--namespace', 'default', '--service-account', 'ingressgateway',
        '--labels', 'istio=ingressgateway', '--token-file', tokenFile, '--ca-addr', tlsAddr, '--ca-root-file', join(state, 'ca', 'root-cert.pem'),
        '--outbound-port', String(await freePort()), '--health-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0',
      ],
      /^ready \(listeners: [^)]*\)/m,
      'gateway',
    );
    client = await issueForTest(t.cp.ca!, { namespace: 'default', serviceAccount: 'client' });
  });

  after(async () => {
    await gateway.stop();
    await t.cp.close();
    await upstream.stop();
    cfg.remove();
    rmSync(state, { recursive: true, force: true });
  });

  test("the gateway serves its own workload certificate (SDS default), verified by the mesh root", async () => {
    const san = await servedSan(port, { ca: client.rootPem, cert: client.certChainPem, key: client.keyPem });
    assert.equal(san, 'URI:spiffe://cluster.local/ns/default/sa/ingressgateway');
  });

  test('a client with a mesh certificate is routed; a client without one is refused', async () => {
    const ok = await get(port, { ca: client.rootPem, cert: client.certChainPem, key: client.keyPem });
    assert.deepEqual(ok, { status: 200, upstream: 'internal' });
    const before = upstream.count();
    await assert.rejects(get(port, { ca: client.rootPem }));
    assert.equal(upstream.count(), before, 'nothing reached the upstream');
  });
});
