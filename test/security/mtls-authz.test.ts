// Principal-based authorization over real mutual TLS: the control plane's translation of AuthorizationPolicies for
// a workload, served by a static ADS server with a DownstreamTlsContext (client certificates required, a test CA)
// on the inbound listeners, and clients presenting SPIFFE workload certificates. principals, namespaces,
// source.principal, notPrincipals and connection.sni are matched against the verified peer certificate, on HTTP
// and on TCP (network RBAC after the handshake).
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { ListenerFilterSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { TlsInspectorSchema } from '../../src/xds/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
import { DownstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { createCa, spiffe, type IssuedCert, type TestCa } from '../helpers/certs.js';
import { freePort } from '../helpers/mesh-processes.js';
import { Upstream } from '../helpers/http-upstream.js';
import { startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { TcpEcho } from './security-helpers.js';

const POLICIES = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-web, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  action: ALLOW
  rules:
  - from: [{source: {principals: ["cluster.local/ns/frontend/sa/web", "cluster.local/ns/frontend/sa/blocked"]}}]
  - from: [{source: {namespaces: ["ops"]}}]
    to: [{operation: {paths: ["/ops/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: deny, namespace: default}
spec:
  selector: {matchLabels: {app: client}}
  action: DENY
  rules:
  - when: [{key: source.principal, values: ["cluster.local/ns/frontend/sa/blocked"]}]
  - when: [{key: connection.sni, values: ["forbidden.example"]}]
---
apiVersion: specs.smi-spec.io/v1alpha4
kind: HTTPRouteGroup
metadata: {name: smi-routes, namespace: default}
spec:
  matches: [{name: read, methods: ["GET"], pathRegex: "/smi"}]
---
apiVersion: access.smi-spec.io/v1alpha3
kind: TrafficTarget
metadata: {name: batch-reads, namespace: default}
spec:
  destination: {kind: ServiceAccount, name: default, namespace: default}
  sources: [{kind: ServiceAccount, name: batch, namespace: other}]
  rules: [{kind: HTTPRouteGroup, name: smi-routes, matches: ["read"]}]
`;

interface Reply {
  status: number;
  body: string;
}

function mtlsGet(port: number, path: string, cert: IssuedCert | undefined, ca: TestCa, servername = 'server.default'): Promise<Reply | 'refused'> {
  return new Promise((resolve) => {
    const req = request(
      { host: '127.0.0.1', port, path, servername, ca: ca.certPem, rejectUnauthorized: false, agent: false, ...(cert ? { cert: cert.certPem, key: cert.keyPem } : {}) },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', () => resolve('refused'));
    req.end();
  });
}

function mtlsTcp(port: number, cert: IssuedCert, line: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port, cert: cert.certPem, key: cert.keyPem, rejectUnauthorized: false, servername: 'server.default' });
    let got = '';
    const done = (v: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(got || 'timeout'), 5000);
    s.on('secureConnect', () => s.write(line));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes(line)) done(got);
    });
    s.on('error', () => done('closed'));
    s.on('close', () => done(got || 'closed'));
  });
}

describe('authorization on verified peer identities (mTLS)', () => {
  let ca: TestCa;
  let sp: StaticProxy;
  const http = new Upstream('app');
  const tcp = new TcpEcho();
  let httpPort = 0;
  let tcpPort = 0;
  const certs: Record<string, IssuedCert> = {};

  before(async () => {
    ca = await createCa();
    const server = await ca.issue({ uri: spiffe('default', 'client') });
    for (const [name, ns, sa] of [['web', 'frontend', 'web'], ['batch', 'other', 'batch'], ['ops', 'ops', 'admin'], ['blocked', 'frontend', 'blocked']] as const) certs[name] = await ca.issue({ uri: spiffe(ns, sa) });
    await http.start();
    await tcp.start();
    httpPort = await freePort();
    tcpPort = await freePort();
    const tls = pack(
      DownstreamTlsContextSchema,
      create(DownstreamTlsContextSchema, {
        requireClientCertificate: true,
        commonTlsContext: {
          tlsCertificates: [{ certificateChain: { specifier: { case: 'inlineString', value: server.certPem } }, privateKey: { specifier: { case: 'inlineString', value: server.keyPem } } }],
          validationContextType: { case: 'validationContext', value: { trustedCa: { specifier: { case: 'inlineString', value: ca.certPem } } } },
        },
      }),
    );
    sp = await startStaticProxy(POLICIES, {
      inbound: [
        { port: httpPort, targetPort: http.port, protocol: 'http' },
        { port: tcpPort, targetPort: tcp.port, protocol: 'tcp' },
      ],
      mutate: (r) => {
        for (const l of r.listeners) {
          if (!l.name.startsWith('inbound|')) continue;
          // Istio's inbound listeners read the ClientHello with the TLS inspector (SNI, ALPN).
          l.listenerFilters.push(create(ListenerFilterSchema, { name: 'envoy.filters.listener.tls_inspector', configType: { case: 'typedConfig', value: pack(TlsInspectorSchema, {}) } }));
          for (const c of l.filterChains) c.transportSocket = { $typeName: 'envoy.config.core.v3.TransportSocket', name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig', value: tls } } as never;
        }
      },
    });
  });
  after(async () => {
    await sp.stop();
    await new Promise<void>((r) => http.server.close(() => r()));
    await tcp.stop();
    ca.close();
  });

  it('principals: the listed workload identity passes, another is denied; no client certificate: no connection', async () => {
    assert.equal((await mtlsGet(httpPort, '/x', certs.web, ca) as Reply).status, 200);
    const batch = await mtlsGet(httpPort, '/x', certs.batch, ca);
    assert.equal(typeof batch === 'object' && batch.status, 403);
    assert.equal(typeof batch === 'object' && batch.body, 'RBAC: access denied');
    assert.equal(await mtlsGet(httpPort, '/x', undefined, ca), 'refused');
  });

  it('namespaces: a workload of the namespace passes on the paths of its rule only', async () => {
    assert.equal((await mtlsGet(httpPort, '/ops/run', certs.ops, ca) as Reply).status, 200);
    assert.equal((await mtlsGet(httpPort, '/x', certs.ops, ca) as Reply).status, 403);
  });

  it('DENY on source.principal and connection.sni wins over ALLOW', async () => {
    assert.equal((await mtlsGet(httpPort, '/x', certs.blocked, ca) as Reply).status, 403, 'source.principal');
    assert.equal((await mtlsGet(httpPort, '/x', certs.web, ca, 'forbidden.example') as Reply).status, 403, 'connection.sni');
  });

  it('SMI TrafficTarget: the listed source service account may make the listed requests, nothing else', async () => {
    assert.equal((await mtlsGet(httpPort, '/smi/items', certs.batch, ca) as Reply).status, 200);
    assert.equal((await mtlsGet(httpPort, '/smi/items', certs.ops, ca) as Reply).status, 403);
    assert.equal((await mtlsGet(httpPort, '/other', certs.batch, ca) as Reply).status, 403);
  });

  it('TCP: the network RBAC filter sees the peer identity after the handshake', async () => {
    assert.equal(await mtlsTcp(tcpPort, certs.web, 'hello'), 'echo:hello');
    assert.equal(await mtlsTcp(tcpPort, certs.batch, 'hello'), 'closed');
    assert.equal(await mtlsTcp(tcpPort, certs.blocked, 'hello'), 'closed');
  });
});
