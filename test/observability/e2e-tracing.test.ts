// Distributed tracing end to end: a real `weft control-plane` and three real `weft proxy` sidecars (A, B, C), each
// in front of an application in this process. A client calls A; app A calls B and app B calls C through their
// sidecars' outbound listeners, forwarding only the headers Istio's documentation asks applications to forward.
// A collector (collector.ts) receives the spans over Zipkin v2 JSON and OTLP/HTTP protobuf; the tests assert one
// trace with the right parent/child links and attributes, the sampling rules (0 %, 100 %, an incoming decision)
// and B3 single / B3 multi / W3C interop. No timing is asserted; every wait is bounded polling.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { eventually } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, serviceYaml, startControlPlane, startProxyOnFreePorts, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { TraceCollector, type SeenSpan } from './collector.js';

/** The headers Istio asks applications to propagate (istio.io "Distributed Tracing" FAQ / overview). */
const PROPAGATE = ['x-request-id', 'traceparent', 'tracestate', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags', 'b3', 'x-ot-span-context', 'x-cloud-trace-context', 'grpc-trace-bin'];

function get(port: number, host: string, path: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    // A new connection per request: a listener update drains (closes) idle keep-alive connections.
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { ...headers, host } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** An application: answers with what it saw; with `next`, first calls the next service through its sidecar. */
class App {
  server!: Server;
  port = 0;
  outbound = 0;
  readonly seen: IncomingHttpHeaders[] = [];
  constructor(
    readonly name: string,
    readonly next?: string,
  ) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.seen.push(req.headers);
      const forward: Record<string, string> = {};
      for (const h of PROPAGATE) {
        const v = req.headers[h];
        if (typeof v === 'string') forward[h] = v;
      }
      if (this.next === undefined) {
        res.writeHead(200, { 'content-type': 'text/plain' }).end(this.name);
        return;
      }
      get(this.outbound, `${this.next}:80`, req.url ?? '/', forward).then(
        (r) => res.writeHead(r.status, { 'content-type': 'text/plain' }).end(`${this.name}>${r.body}`),
        () => res.writeHead(502).end(),
      );
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const meshConfig = (tracing: string, extra = ''): string => `apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  tracing: {sampling: 100}
  extensionProviders:
  - name: zipkin
    zipkin: {service: zipkin.default.svc.cluster.local, port: 9411}
  - name: otel
    opentelemetry: {service: otel.default.svc.cluster.local, port: 4318, http: {path: /v1/traces}}
  defaultProviders: {tracing: [${tracing}]}
${extra}`;

describe('tracing across three sidecars', () => {
  const mesh = new MeshWorkDir('weft-tracing-e2e-');
  const cp = new WeftProcess();
  const collector = new TraceCollector();
  const apps = [new App('a', 'b'), new App('b', 'c'), new App('c')];
  const proxies = apps.map(() => new WeftProcess());
  const inbound: number[] = [];

  before(async () => {
    await collector.start();
    for (const a of apps) await a.start();
    for (let i = 0; i < apps.length; i++) inbound.push(await freePort());
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        ...apps.flatMap((a, i) => [serviceYaml(a.name, { name: 'http', port: 80 }), workloadEntryYaml(`${a.name}-1`, { app: a.name }, 'http', inbound[i]!)]),
        serviceYaml('zipkin', { name: 'http-zipkin', port: 9411 }),
        workloadEntryYaml('zipkin-1', { app: 'zipkin' }, 'http-zipkin', collector.port),
        serviceYaml('otel', { name: 'http-otlp', port: 4318 }),
        workloadEntryYaml('otel-1', { app: 'otel' }, 'http-otlp', collector.port),
      ]),
    );
    mesh.writeConfig('meshconfig.yaml', meshConfig('zipkin'));
    const addr = await startControlPlane(cp, mesh.config);
    await Promise.all(
      apps.map(async (a, i) => {
        const ports = await startProxyOnFreePorts(proxies[i]!, (p) => [
          'proxy', '--xds', addr.xds, '--id', `trace-${a.name}`, '--namespace', 'default', '--labels', `app=${a.name}`,
          '--outbound-port', String(p.outbound), '--admin-port', String(p.admin), '--health-port', String(p.health), '--stats-port', '0',
          '--workload-port', `${inbound[i]}:${a.port}/http`, '--drain-timeout', '1',
        ]);
        a.outbound = ports.outbound;
      }),
    );
  });

  after(async () => {
    await Promise.all(proxies.map((p) => p.stop()));
    await cp.stop();
    for (const a of apps) await a.stop();
    await collector.stop();
    mesh.remove();
  });

  /** Calls A's inbound port; returns the trace id A's span got (read from what app A saw). */
  async function call(headers: Record<string, string> = {}): Promise<{ traceId: string; seenByA: IncomingHttpHeaders }> {
    const before = apps[0]!.seen.length;
    const r = await get(inbound[0]!, 'a:80', '/hop?x=1', headers);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.body, 'a>b>c');
    const seenByA = apps[0]!.seen[before]!;
    return { traceId: String(seenByA['x-b3-traceid']), seenByA };
  }

  /**
   * After a config change: polls until `inForce` holds for a call (calls failing meanwhile are expected: a listener
   * update closes pooled connections between the sidecars), then makes a few calls so that every pool holds fresh
   * connections before the asserted requests.
   */
  async function converge(what: string, inForce: () => Promise<boolean>): Promise<void> {
    await eventually(() => inForce().catch(() => false), what, 30_000);
    for (let i = 0; i < 3; i++) await call().catch(() => undefined);
  }

  /** Waits for the five spans of a three-hop trace and checks their links; returns them by role. */
  async function fullTrace(traceId: string): Promise<Record<'aIn' | 'aOut' | 'bIn' | 'bOut' | 'cIn', SeenSpan>> {
    await eventually(() => collector.trace(traceId).length >= 5, `5 spans of trace ${traceId} (have ${collector.trace(traceId).length})`, 20_000);
    const spans = collector.trace(traceId);
    assert.equal(spans.length, 5, JSON.stringify(spans, null, 1));
    const pick = (service: string, kind: string): SeenSpan => {
      const s = spans.find((x) => x.service === service && x.kind === kind);
      assert.ok(s, `a ${kind} span of ${service} in ${JSON.stringify(spans.map((x) => [x.service, x.kind]))}`);
      return s;
    };
    const t = { aIn: pick('a.default', 'SERVER'), aOut: pick('a.default', 'CLIENT'), bIn: pick('b.default', 'SERVER'), bOut: pick('b.default', 'CLIENT'), cIn: pick('c.default', 'SERVER') };
    assert.equal(t.aOut.parentId, t.aIn.id, 'A outbound is a child of A inbound (app A forwarded the context)');
    assert.equal(t.bIn.parentId, t.aOut.id);
    assert.equal(t.bOut.parentId, t.bIn.id);
    assert.equal(t.cIn.parentId, t.bOut.id);
    assert.equal(new Set(spans.map((s) => s.id)).size, 5, 'five distinct span ids');
    return t;
  }

  test('one Zipkin trace with parent/child links and Envoy/Istio attributes', async () => {
    const { traceId } = await call();
    assert.match(traceId, /^[0-9a-f]{32}$/);
    const t = await fullTrace(traceId);
    assert.equal(t.aIn.parentId, '', 'the first span is the root');
    assert.equal(t.aIn.name, 'ingress');
    assert.equal(t.aOut.name, 'egress');
    for (const s of Object.values(t)) {
      assert.equal(s.tags['http.method'], 'GET');
      assert.equal(s.tags['http.status_code'], '200');
      assert.equal(s.tags['component'], 'proxy');
      assert.equal(s.tags['istio.namespace'], 'default');
      assert.equal(s.tags['response_flags'], '-');
      assert.equal(s.tags['error'], undefined);
      assert.match(s.tags['guid:x-request-id'] ?? '', /^[0-9a-f-]{36}$/);
      assert.ok(Number(s.durationUs) >= 1);
    }
    assert.equal(t.aIn.tags['node_id'], 'trace-a');
    assert.equal(t.bOut.tags['node_id'], 'trace-b');
    assert.equal(t.aIn.tags['istio.canonical_service'], 'a');
    assert.equal(t.aOut.tags['upstream_cluster'], 'outbound|80||b.default.svc.cluster.local');
    assert.equal(t.aOut.tags['http.url'], 'http://b:80/hop?x=1');
    assert.equal(t.aIn.tags['upstream_cluster'], `inbound|${apps[0]!.port}||`);
    assert.equal(t.aOut.tags['upstream_address'], `127.0.0.1:${inbound[1]}`);
    assert.equal(t.aIn.tags['peer.address'], '127.0.0.1');
    // One request id along the whole path, carrying Envoy's "sampled" trace reason.
    assert.equal(new Set(Object.values(t).map((s) => s.tags['guid:x-request-id'])).size, 1);
    assert.equal(t.aIn.tags['guid:x-request-id']![14], '9');
    assert.ok(collector.requests.some((r) => r.path === '/api/v2/spans' && r.contentType === 'application/json'));
  });

  test('an incoming B3 multi-header context is continued: same trace id, the caller span is the parent', async () => {
    const traceId = '463ac35c9f6413ad48485a3953bb6124';
    await call({ 'x-b3-traceid': traceId, 'x-b3-spanid': 'a2fb4a1d1a96d312', 'x-b3-sampled': '1' });
    const t = await fullTrace(traceId);
    assert.equal(t.aIn.parentId, 'a2fb4a1d1a96d312');
  });

  test('B3 single header interop: the `b3` header is read, and rewritten for the next hop', async () => {
    const traceId = '80f198ee56343ba864fe8b2a57d3eff7';
    const { seenByA } = await call({ b3: `${traceId}-e457b5a2e4d86bd1-1` });
    const t = await fullTrace(traceId);
    assert.equal(t.aIn.parentId, 'e457b5a2e4d86bd1');
    assert.equal(seenByA['b3'], `${traceId}-${t.aIn.id}-1-e457b5a2e4d86bd1`);
  });

  test('W3C traceparent interop: continued, and the app sees traceparent naming the sidecar span', async () => {
    const traceId = '0af7651916cd43dd8448eb211c80319c';
    const { seenByA } = await call({ traceparent: `00-${traceId}-b7ad6b7169203331-01`, tracestate: 'vendor=1' });
    const t = await fullTrace(traceId);
    assert.equal(t.aIn.parentId, 'b7ad6b7169203331');
    assert.equal(seenByA['traceparent'], `00-${traceId}-${t.aIn.id}-01`);
    assert.equal(seenByA['tracestate'], 'vendor=1', 'tracestate passes unchanged');
  });

  test('OpenTelemetry provider: the same trace over OTLP/HTTP protobuf', async () => {
    mesh.writeConfig('meshconfig.yaml', meshConfig('otel'));
    // In force on all three once a request's five spans all arrive over OTLP.
    await converge('the OpenTelemetry provider in force', async () => {
      const id = (await call()).traceId;
      await eventually(() => collector.trace(id).length >= 5, `spans of ${id}`, 5_000).catch(() => undefined);
      return collector.trace(id).length === 5 && collector.trace(id).every((s) => s.format === 'otlp');
    });
    const { traceId } = await call();
    const t = await fullTrace(traceId);
    assert.ok(collector.trace(traceId).every((s) => s.format === 'otlp'));
    assert.equal(t.aIn.service, 'a.default');
    assert.equal(t.aOut.tags['upstream_cluster'], 'outbound|80||b.default.svc.cluster.local');
    assert.equal(t.cIn.tags['http.status_code'], '200');
    assert.equal(t.cIn.statusCode, 0, 'no error status');
    assert.ok(collector.requests.some((r) => r.path === '/v1/traces' && r.contentType === 'application/x-protobuf'));
  });

  test('sampling: 0 % sends nothing, an incoming sampled flag is honoured; 100 % traces everything', async () => {
    mesh.writeConfig(
      'telemetry.yaml',
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: weft-system}
spec:
  tracing:
  - randomSamplingPercentage: 0
`,
    );
    // In force once a request without trace headers reaches app A with x-b3-sampled 0.
    // ...on all three proxies (each is updated on its own): C sees the not-sampled decision B made.
    await converge('the 0 % Telemetry in force', async () => {
      const before = apps[2]!.seen.length;
      const { seenByA } = await call();
      return seenByA['x-b3-sampled'] === '0' && apps[2]!.seen[before]?.['x-b3-sampled'] === '0';
    });
    const { traceId: unsampled } = await call();
    const { traceId: rejected, seenByA } = await call();
    assert.equal(seenByA['x-b3-sampled'], '0');
    assert.match(String(seenByA['traceparent']), /-00$/, 'the not-sampled decision is propagated');
    // A caller that decided to sample wins over 0 %.
    const forced = 'b4bdb4a3f5c1a1d2c3e4f5a6b7c8d9e0';
    await call({ 'x-b3-traceid': forced, 'x-b3-spanid': '1111111111111111', 'x-b3-sampled': '1' });
    await fullTrace(forced);
    // Each proxy exports in order, so the unsampled requests' spans would have arrived before these.
    assert.equal(collector.trace(rejected).length, 0);
    assert.equal(collector.trace(unsampled).length, 0);
    // A caller's "do not sample" wins over 100 %.
    mesh.writeConfig('telemetry.yaml', `apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: weft-system}\nspec:\n  tracing:\n  - randomSamplingPercentage: 100\n`);
    await converge('the 100 % Telemetry in force', async () => {
      const before = apps[2]!.seen.length;
      const { seenByA } = await call();
      return seenByA['x-b3-sampled'] === '1' && apps[2]!.seen[before]?.['x-b3-sampled'] === '1';
    });
    const denied = 'c4bdb4a3f5c1a1d2c3e4f5a6b7c8d9e1';
    await call({ 'x-b3-traceid': denied, 'x-b3-spanid': '2222222222222222', 'x-b3-sampled': '0' });
    const { traceId: sampled } = await call();
    await fullTrace(sampled);
    assert.equal(collector.trace(denied).length, 0);
  });
});
