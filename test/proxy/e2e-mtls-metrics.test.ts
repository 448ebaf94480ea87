// Istio metrics over mTLS end to end: the real `weft control-plane` and two `weft proxy` sidecars (client and server,
// service accounts `client` and `server`) with workload certificates from `--cert-dir` (test CA). After one HTTP
// request and one TCP connection through the client sidecar's auto mTLS, both sidecars' /stats/prometheus carry
// Istio's principals and connection_security_policy:
// - destination reporter: source_principal the client's SPIFFE id (its verified certificate), destination_principal
//   the server's own (the certificate it presented), connection_security_policy="mutual_tls";
// - source reporter: source_principal the client's own, destination_principal the server's verified SAN,
//   connection_security_policy="unknown" (what Istio's istio_stats reports on the client side);
// and the control plane's telemetry functions (snapshot, reporter dedupe, aggregate) give the edge an mTLS share of 1.
// On TCP the two sidecars run the in-band metadata exchange (ALPN istio-peer-exchange), so each side's TCP metrics
// carry the other's workload, app and version, and the application's bytes arrive unchanged.
// No timing is asserted: waits are bounded polls.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, run, sleep, startControlPlane, waitProxyReady, WeftProcess, yamlDocuments } from '../helpers/mesh-processes.js';
import { createCa, spiffe, type TestCa } from '../helpers/certs.js';
import { parsePrometheusText, type PromSample } from '../../src/controlplane/telemetry/prometheus-text.js';
import { dedupeReporters, snapshotOf } from '../../src/controlplane/telemetry/istio.js';
import { aggregate, serviceNodeId, workloadNodeId } from '../../src/controlplane/telemetry/aggregate.js';

const CLIENT_ID = 'spiffe://cluster.local/ns/default/sa/client';
const SERVER_ID = 'spiffe://cluster.local/ns/default/sa/server';
const HOST = 'server.default.svc.cluster.local';

async function scrape(port: number): Promise<PromSample[]> {
  return parsePrometheusText(await (await fetch(`http://127.0.0.1:${port}/stats/prometheus`)).text());
}

/** The samples of `name` whose labels include `match`. */
function find(samples: PromSample[], name: string, match: Record<string, string>): PromSample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

async function until<T>(what: string, check: () => Promise<T | undefined>, tries = 200): Promise<T> {
  for (let i = 0; i < tries; i++) {
    const v = await check();
    if (v !== undefined) return v;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function statsPortOf(p: WeftProcess): number {
  const port = Number(/stats: http:\/\/[^:]+:(\d+)\/stats\/prometheus/.exec(p.stdout)?.[1]);
  assert.ok(port > 0, `no stats port in ${p.stdout}`);
  return port;
}

describe('weft proxy: Istio metrics principals and security policy over mTLS', () => {
  const mesh = new MeshWorkDir('weft-mtls-metrics-');
  const cp = new WeftProcess();
  const serverProxy = new WeftProcess();
  const clientProxy = new WeftProcess();
  let ca: TestCa;
  let app: Upstream;
  let echo: Server;
  let outbound = 0;
  let tcpLocal = 0;
  let serverStats = 0;
  let clientStats = 0;

  before(async () => {
    ca = await createCa();
    app = new Upstream('app');
    await app.start();
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const inbHttp = await freePort();
    const inbTcp = await freePort();
    for (const [name, sa] of [['server-certs', 'server'], ['client-certs', 'client']] as const) {
      const dir = join(mesh.work, name);
      mkdirSync(dir, { recursive: true });
      const id = await ca.issue({ uri: spiffe('default', sa) });
      writeFileSync(join(dir, 'key.pem'), id.keyPem, { mode: 0o600 });
      writeFileSync(join(dir, 'cert-chain.pem'), id.certPem);
      writeFileSync(join(dir, 'root-cert.pem'), ca.certPem);
    }
    const we = `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: server-1, namespace: default}\nspec: {address: 127.0.0.1, serviceAccount: server, labels: {app: server, version: v1, security.istio.io/tlsMode: istio}, ports: {http: ${inbHttp}, tcp-echo: ${inbTcp}}}\n`;
    const svc = `apiVersion: v1\nkind: Service\nmetadata: {name: server, namespace: default}\nspec:\n  selector: {app: server}\n  ports: [{name: http, port: 8080}, {name: tcp-echo, port: 9000}]\n`;
    mesh.writeConfig('mesh.yaml', yamlDocuments([svc, we]));
    const cpAddr = await startControlPlane(cp, mesh.config);
    const serverHealth = await freePort();
    await serverProxy.start(
      [
        'proxy', '--xds', cpAddr.xds, '--id', 'server-1', '--namespace', 'default', '--service-account', 'server', '--labels', 'app=server,version=v1', '--cert-dir', join(mesh.work, 'server-certs'),
        '--workload-port', `${inbHttp}:${app.port}/http`, '--workload-port', `${inbTcp}:${(echo.address() as AddressInfo).port}/tcp`,
        '--health-port', String(serverHealth), '--admin-port', String(await freePort()), '--stats-port', '0', '--outbound-port', String(await freePort()),
      ],
      /weft proxy .* started/,
      'server sidecar',
    );
    const clientHealth = await freePort();
    outbound = await freePort();
    tcpLocal = await freePort();
    await clientProxy.start(
      [
        'proxy', '--xds', cpAddr.xds, '--id', 'client-1', '--namespace', 'default', '--service-account', 'client', '--labels', 'app=client,version=v1', '--cert-dir', join(mesh.work, 'client-certs'),
        '--upstream', `server:9000=${tcpLocal}`, '--health-port', String(clientHealth), '--admin-port', String(await freePort()), '--stats-port', '0', '--outbound-port', String(outbound),
      ],
      /weft proxy .* started/,
      'client sidecar',
    );
    await waitProxyReady(serverHealth, serverProxy);
    await waitProxyReady(clientHealth, clientProxy);
    serverStats = statsPortOf(serverProxy);
    clientStats = statsPortOf(clientProxy);
  });

  after(async () => {
    await clientProxy.stop();
    await serverProxy.stop();
    await cp.stop();
    await app?.stop();
    await new Promise<void>((r) => (echo ? echo.close(() => r()) : r()));
    ca?.close();
    mesh.remove();
  });

  test('HTTP: principals on both reporters, mutual_tls on the destination, unknown on the source; mTLS share 1', async () => {
    const r = await run('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5', '-x', `http://127.0.0.1:${outbound}`, 'http://server:8080/hello']);
    assert.equal(r.stdout.toString(), '200', clientProxy.log());
    const inbound = await until('the destination report', async () => {
      const s = find(await scrape(serverStats), 'istio_requests_total', { reporter: 'destination', response_code: '200' });
      return s.length > 0 ? s : undefined;
    });
    assert.equal(inbound.length, 1, JSON.stringify(inbound));
    const d = inbound[0]!.labels;
    assert.equal(d.source_principal, CLIENT_ID);
    assert.equal(d.destination_principal, SERVER_ID);
    assert.equal(d.connection_security_policy, 'mutual_tls');
    assert.equal(d.source_workload, 'client-1');
    assert.equal(d.destination_service, HOST);
    const clientSamples = await until('the source report', async () => {
      const all = await scrape(clientStats);
      return find(all, 'istio_requests_total', { reporter: 'source', response_code: '200' }).length > 0 ? all : undefined;
    });
    const outboundSeries = find(clientSamples, 'istio_requests_total', { reporter: 'source', response_code: '200' });
    assert.equal(outboundSeries.length, 1, JSON.stringify(outboundSeries));
    const s = outboundSeries[0]!.labels;
    assert.equal(s.source_principal, CLIENT_ID);
    assert.equal(s.destination_principal, SERVER_ID);
    assert.equal(s.connection_security_policy, 'unknown');
    assert.equal(s.destination_workload, 'server-1');

    // The control plane's telemetry over both proxies' text: the client → service edge is all mTLS.
    const series = dedupeReporters(snapshotOf([...clientSamples, ...(await scrape(serverStats))]));
    const agg = aggregate(series, 1);
    const edge = agg.edges.find((e) => e.source === workloadNodeId('default', 'client-1') && e.target === serviceNodeId(HOST));
    assert.ok(edge, JSON.stringify(agg.edges));
    assert.equal(edge.mtls, 1);
    assert.equal(edge.requests, 1);
  });

  test('TCP: principals on both reporters, mutual_tls on the destination, unknown on the source; peer labels from the in-band exchange', async () => {
    const echoed = await new Promise<string>((resolve, reject) => {
      const c = connect(tcpLocal, '127.0.0.1', () => c.end('tcp over mtls'));
      let got = '';
      c.on('data', (b: Buffer) => (got += b));
      c.on('error', reject);
      c.on('close', () => resolve(got));
    });
    assert.equal(echoed, 'tcp over mtls');
    const d = await until('the destination TCP report', async () => find(await scrape(serverStats), 'istio_tcp_connections_closed_total', { reporter: 'destination' })[0]);
    assert.equal(d.labels.source_principal, CLIENT_ID);
    assert.equal(d.labels.destination_principal, SERVER_ID);
    assert.equal(d.labels.source_workload_namespace, 'default');
    assert.equal(d.labels.connection_security_policy, 'mutual_tls');
    assert.equal(d.labels.request_protocol, 'tcp');
    // The client's workload labels came in-band (istio-peer-exchange): the certificate alone names no workload or app.
    assert.equal(d.labels.source_workload, 'client-1');
    assert.equal(d.labels.source_app, 'client');
    assert.equal(d.labels.source_version, 'v1');
    assert.equal(d.labels.source_canonical_service, 'client');
    assert.equal(d.labels.source_canonical_revision, 'v1');
    assert.equal(d.labels.source_cluster, 'Kubernetes');
    const s = await until('the source TCP report', async () => find(await scrape(clientStats), 'istio_tcp_connections_closed_total', { reporter: 'source' })[0]);
    assert.equal(s.labels.source_principal, CLIENT_ID);
    assert.equal(s.labels.destination_principal, SERVER_ID);
    assert.equal(s.labels.connection_security_policy, 'unknown');
    assert.equal(s.labels.destination_service, HOST);
    // The endpoint metadata has no app or version: these are the server's own, from the exchange.
    assert.equal(s.labels.destination_workload, 'server-1');
    assert.equal(s.labels.destination_app, 'server');
    assert.equal(s.labels.destination_version, 'v1');
    assert.equal(s.labels.destination_canonical_service, 'server');
    // Byte counters carry the payload only (the exchange frames are not the application's bytes).
    const sent = find(await scrape(clientStats), 'istio_tcp_received_bytes_total', { reporter: 'source' })[0];
    assert.equal(sent?.value, Buffer.byteLength('tcp over mtls'));
  });
});
