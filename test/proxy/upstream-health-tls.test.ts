// Active health checks of clusters with a TLS transport socket go over that transport socket, as Envoy's do: real
// TLS servers on 127.0.0.1 that require a client certificate from their own CA; the cluster's UpstreamTlsContext
// (client certificate, trusted CA, SNI) is what the check uses. HTTP/1.1 (ALPN http/1.1), HTTP/2 (ALPN h2) and TCP
// send/receive checks pass; a server the context does not trust (wrong CA) or that speaks plaintext fails them.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as https from 'node:https';
import * as http2 from 'node:http2';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { UpstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { CodecClientType } from '../../src/xds/gen/envoy/type/v3/http_pb.js';
import { compileCluster, type ClusterRuntime } from '../../src/proxy/upstream/cluster/index.js';
import { cla, testOpts, type ClusterInit } from './upstream-helpers.js';
import { createRootCa, issueForTest, issueServerCertForTest, type TestCert } from '../helpers/ca.js';

const closers: Array<() => Promise<void> | void> = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function listen(server: net.Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return (server.address() as AddressInfo).port;
}

const s = (n: number) => ({ seconds: BigInt(n) });
const inline = (value: string) => ({ specifier: { case: 'inlineString' as const, value } });

/** What each TLS server saw: the SNI, the ALPN protocol and the client certificate's SAN. */
interface Seen {
  sni: string;
  alpn: string | false | null;
  client: string;
}

describe('health checks of TLS clusters (over the cluster transport socket)', () => {
  let serverCert: TestCert;
  let clientCert: TestCert;
  let clientCaPem = '';
  let otherCaPem = '';

  before(async () => {
    const serverCa = await createRootCa();
    const clientCa = await createRootCa();
    serverCert = await issueServerCertForTest(serverCa, { dnsNames: ['backend.example'] });
    clientCert = await issueForTest(clientCa, { namespace: 'default', serviceAccount: 'prober' });
    clientCaPem = clientCa.rootPem;
    otherCaPem = (await createRootCa()).rootPem;
  });

  /** node:tls server options that require a client certificate from the client CA. */
  const serverOpts = () => ({ cert: serverCert.certChainPem, key: serverCert.keyPem, ca: clientCaPem, requestCert: true, rejectUnauthorized: true });

  function record(seen: Seen[], sock: tls.TLSSocket): void {
    seen.push({ sni: (sock as tls.TLSSocket & { servername?: string }).servername ?? '', alpn: sock.alpnProtocol, client: sock.getPeerX509Certificate()?.subjectAltName ?? '' });
  }

  /** A STATIC cluster with one host, the given health check and a TLS transport socket trusting `caPem`. */
  function tlsCluster(name: string, port: number, hc: NonNullable<ClusterInit['healthChecks']>[number], caPem = serverCert.rootPem): ClusterRuntime {
    const ctx = create(UpstreamTlsContextSchema, {
      sni: 'backend.example',
      commonTlsContext: {
        tlsCertificates: [{ certificateChain: inline(clientCert.certChainPem), privateKey: inline(clientCert.keyPem) }],
        validationContextType: { case: 'validationContext', value: { trustedCa: inline(caPem) } },
      },
    });
    const c = compileCluster(
      create(ClusterSchema, {
        name,
        clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
        lbPolicy: Cluster_LbPolicy.ROUND_ROBIN,
        loadAssignment: cla(name, [{ hosts: [`127.0.0.1:${port}`] }]),
        healthChecks: [hc],
        transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig', value: pack(UpstreamTlsContextSchema, ctx) } },
      } as ClusterInit),
      testOpts(),
    );
    closers.push(() => c.close());
    return c;
  }

  const httpCheck = (codec = CodecClientType.HTTP1) => ({
    timeout: s(5),
    interval: s(5),
    unhealthyThreshold: 1,
    healthyThreshold: 1,
    healthChecker: { case: 'httpHealthCheck' as const, value: { path: '/healthz', codecClientType: codec } },
  });

  test('HTTP/1.1: the check is made over TLS with the client certificate, SNI and ALPN http/1.1', async () => {
    const seen: Seen[] = [];
    const paths: string[] = [];
    const port = await listen(
      https.createServer(serverOpts(), (req, res) => {
        record(seen, req.socket as tls.TLSSocket);
        paths.push(req.url ?? '');
        res.writeHead(200).end('ok');
      }),
    );
    const c = tlsCluster('tls-http', port, httpCheck());
    c.start();
    await c.ready;
    assert.equal(c.host(`127.0.0.1:${port}`)!.healthFlagsString(), 'healthy');
    assert.deepEqual(paths, ['/healthz']);
    assert.deepEqual(seen[0], { sni: 'backend.example', alpn: 'http/1.1', client: `URI:${clientCert.spiffeId}` });
    assert.equal(c.transport.stats.handshake, 1, "the cluster's ssl.handshake counts the check's handshake");
  });

  test('HTTP/2: ALPN h2 over TLS', async () => {
    const seen: Seen[] = [];
    const server = http2.createSecureServer(serverOpts(), (req, res) => {
      record(seen, req.socket as unknown as tls.TLSSocket);
      res.writeHead(200).end();
    });
    const port = await listen(server);
    const c = tlsCluster('tls-h2', port, httpCheck(CodecClientType.HTTP2));
    c.start();
    await c.ready;
    assert.equal(c.host(`127.0.0.1:${port}`)!.healthFlagsString(), 'healthy');
    assert.equal(seen[0]?.alpn, 'h2');
    assert.equal(seen[0]?.client, `URI:${clientCert.spiffeId}`);
  });

  test('TCP send/receive over TLS', async () => {
    const seen: Seen[] = [];
    const port = await listen(
      tls.createServer(serverOpts(), (sock) => {
        record(seen, sock);
        sock.on('data', (d) => {
          if (d.toString() === 'ping') sock.write('pong');
        });
      }),
    );
    const c = tlsCluster('tls-tcp', port, {
      timeout: s(5),
      interval: s(5),
      unhealthyThreshold: 1,
      healthyThreshold: 1,
      healthChecker: { case: 'tcpHealthCheck', value: { send: { payload: { case: 'text', value: Buffer.from('ping').toString('hex') } }, receive: [{ payload: { case: 'text', value: Buffer.from('pong').toString('hex') } }] } },
    });
    c.start();
    await c.ready;
    assert.equal(c.host(`127.0.0.1:${port}`)!.healthFlagsString(), 'healthy');
    assert.equal(seen[0]?.sni, 'backend.example');
  });

  test('a server the context does not trust fails the check (verification applies), counted as ssl.fail_verify_error', async () => {
    let requests = 0;
    const port = await listen(
      https.createServer(serverOpts(), (_req, res) => {
        requests++;
        res.writeHead(200).end('ok');
      }),
    );
    const c = tlsCluster('tls-untrusted', port, httpCheck(), otherCaPem);
    c.start();
    await c.ready;
    assert.equal(c.host(`127.0.0.1:${port}`)!.healthFlagsString(), '/failed_active_hc');
    assert.equal(c.stats.healthCheck.network_failure, 1);
    assert.equal(c.transport.stats.fail_verify_error, 1);
    assert.equal(requests, 0);
  });

  test('a plaintext server behind a TLS cluster fails the check', async () => {
    let requests = 0;
    const port = await listen(
      net.createServer((sock) => {
        requests++;
        sock.on('data', () => sock.end('HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n'));
      }),
    );
    const c = tlsCluster('tls-plain-server', port, httpCheck());
    c.start();
    await c.ready;
    assert.equal(c.host(`127.0.0.1:${port}`)!.healthFlagsString(), '/failed_active_hc');
    assert.equal(requests, 1, 'a connection was made: the TLS handshake failed on it');
  });
});
