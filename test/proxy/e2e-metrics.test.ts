// Istio's standard metrics end to end, read by a real Prometheus: the real control plane, three `weft proxy`
// sidecars — productpage-v1 (client: outbound HTTP listener and a TCP upstream), reviews-v1 (server: an HTTP app that
// answers after 120 ms, 200 on /ok and 503 on /fail, and a TCP echo) and greeter-v2 (a gRPC server, test/apps/
// greeter.ts) — and Prometheus (Debian's package) scraping the three stats ports every second.
// Checked: `sum(rate(istio_requests_total[1m])) by (destination_service, response_code)` gives the 200:503 ratio of
// the traffic sent; `histogram_quantile(0.5, ...)` of the duration lies in the range the app's delay and the
// client's own observations imply; the exact label sets of both reporters (peer labels from the metadata
// exchange, which the applications never see); gRPC message counts of streaming calls; TCP byte and connection
// counters; and every panel query of the Grafana dashboards in deploy/grafana is valid PromQL that Prometheus runs.
// No timing is asserted: every wait is a bounded poll for a condition.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { credentials, makeGenericClientConstructor, Metadata, type Client, type ServiceError } from '@grpc/grpc-js';
import { startGreeter, streamingGreeterService, type Greeter, type HelloReply, type StreamRequest } from '../apps/greeter.js';
import { eventually, send, Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, ROOT, startControlPlane, startProxyOnFreePorts, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { Prometheus } from '../helpers/prometheus.js';
import { parsePrometheusText, type PromSample } from '../../src/controlplane/telemetry/prometheus-text.js';
import { PEER_METADATA_HEADER, PEER_METADATA_ID_HEADER } from '../../src/proxy/stats/istio/peer-metadata.js';
import { DEFAULT_BUCKETS } from '../../src/proxy/stats/histogram.js';

const GreeterClient = makeGenericClientConstructor(streamingGreeterService, 'Greeter');
type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

const REVIEWS = 'reviews.default.svc.cluster.local';
const GREETER = 'greeter.default.svc.cluster.local';
/** Every reviews answer waits this long, so every duration the proxies measure is at least this. */
const APP_DELAY_MS = 120;

/** A sidecar process with its stats port (parsed from its banner). */
interface Sidecar {
  proc: WeftProcess;
  stats: number;
  outbound: number;
}

async function sidecar(name: string, args: string[]): Promise<Sidecar> {
  const proc = new WeftProcess();
  const ports = await startProxyOnFreePorts(proc, (p) => [
    'proxy',
    ...args,
    '--id',
    name,
    '--workload-name',
    name,
    '--namespace',
    'default',
    '--outbound-port',
    String(p.outbound),
    '--admin-port',
    String(p.admin),
    '--health-port',
    String(p.health),
    '--stats-port',
    '0',
  ]);
  const stats = Number(/stats: http:\/\/0\.0\.0\.0:(\d+)\/stats\/prometheus/.exec(proc.stdout)?.[1]);
  return { proc, stats, outbound: ports.outbound };
}

async function scrape(port: number): Promise<PromSample[]> {
  return parsePrometheusText(await (await fetch(`http://127.0.0.1:${port}/stats/prometheus`)).text());
}

/** Sum of the samples of `name` whose labels include `match`. */
function total(samples: PromSample[], name: string, match: Record<string, string>): number {
  let sum = 0;
  for (const s of samples) if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  return sum;
}

function unary<T>(c: AnyClient, method: string, req: unknown): Promise<{ err: ServiceError | null; res: T | undefined }> {
  return new Promise((resolve) => c[method]!(req, new Metadata(), { deadline: Date.now() + 20_000 }, (err: ServiceError | null, res: T) => resolve({ err, res })));
}

describe('Istio standard metrics through Prometheus', () => {
  const mesh = new MeshWorkDir('weft-metrics-');
  const cp = new WeftProcess();
  const prom = new Prometheus();
  let client!: Sidecar;
  let reviews!: Sidecar;
  let greeterSidecar!: Sidecar;
  /** A sidecar with --metrics=false in front of `ratingsApp`. */
  let ratings!: Sidecar;
  let ratingsApp!: Upstream;
  let app!: Upstream;
  let echo!: Server;
  let greeter!: Greeter;
  let grpcClient!: AnyClient;
  let tcpLocal = 0;
  /** The slowest reviews answer the test itself saw (ms): an upper bound of every duration the proxies measured. */
  let slowestSeen = 0;

  const get = async (path: string): Promise<number> => {
    const t0 = performance.now();
    const r = await send(client.outbound, { path, headers: { host: 'reviews:9080' } });
    slowestSeen = Math.max(slowestSeen, performance.now() - t0);
    for (const h of [PEER_METADATA_HEADER, PEER_METADATA_ID_HEADER]) assert.equal(r.headers[h], undefined, `${h} reached the client application`);
    return r.status;
  };

  /** Sends `n` requests to `path` (5 at a time); returns the statuses seen. */
  const load = async (path: string, n: number): Promise<number[]> => {
    const out: number[] = [];
    for (let i = 0; i < n; i += 5) out.push(...(await Promise.all(Array.from({ length: Math.min(5, n - i) }, () => get(path)))));
    return out;
  };

  before(async () => {
    app = new Upstream('reviews-v1', (req, res) => {
      setTimeout(() => {
        const code = req.url === '/fail' ? 503 : 200;
        res.writeHead(code, { 'content-type': 'text/plain', [PEER_METADATA_HEADER]: 'spoofed-by-the-app' });
        res.end(code === 200 ? 'ok' : 'failing');
      }, APP_DELAY_MS);
    });
    await app.start();
    ratingsApp = new Upstream('ratings-v1');
    await ratingsApp.start();
    echo = createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as { port: number }).port;
    greeter = await startGreeter('greeter-v2', 0, { streaming: true });
    const [rHttp, rTcp, gGrpc, ratingsHttp] = [await freePort(), await freePort(), await freePort(), await freePort()];
    tcpLocal = await freePort();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        'apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: default}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}, {name: tcp, port: 9000}]\n',
        `apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: reviews-v1, namespace: default}\nspec: {address: 127.0.0.1, labels: {app: reviews, version: v1}, ports: {http: ${rHttp}, tcp: ${rTcp}}}\n`,
        // No retries: each request the client sends is one request on both reporters (Istio retries 503s by default).
        'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews}}]\n    retries: {attempts: 0}\n',
        'apiVersion: v1\nkind: Service\nmetadata: {name: greeter, namespace: default}\nspec:\n  selector: {app: greeter}\n  ports: [{name: grpc, port: 50051}]\n',
        workloadEntryYaml('greeter-v2', { app: 'greeter', version: 'v2' }, 'grpc', gGrpc),
        'apiVersion: v1\nkind: Service\nmetadata: {name: ratings, namespace: default}\nspec:\n  selector: {app: ratings}\n  ports: [{name: http, port: 9081}]\n',
        workloadEntryYaml('ratings-v1', { app: 'ratings', version: 'v1' }, 'http', ratingsHttp),
      ]),
    );
    const cpAddr = await startControlPlane(cp, mesh.config);
    const xds = ['--xds', cpAddr.xds];
    reviews = await sidecar('reviews-v1', [...xds, '--labels', 'app=reviews,version=v1', '--workload-port', `${rHttp}:${app.port}/http`, '--workload-port', `${rTcp}:${echoPort}/tcp`]);
    ratings = await sidecar('ratings-v1', [...xds, '--metrics=false', '--labels', 'app=ratings,version=v1', '--workload-port', `${ratingsHttp}:${ratingsApp.port}/http`]);
    greeterSidecar = await sidecar('greeter-v2', [...xds, '--labels', 'app=greeter,version=v2', '--workload-port', `${gGrpc}:${greeter.port}/grpc`]);
    client = await sidecar('productpage-v1', [...xds, '--labels', 'app=productpage,version=v1', '--upstream', `reviews:9000=${tcpLocal}`]);
    grpcClient = new GreeterClient(`127.0.0.1:${client.outbound}`, credentials.createInsecure(), { 'grpc.enable_retries': 0, 'grpc.default_authority': 'greeter:50051' }) as unknown as AnyClient;
    // Warm-up (the baseline the rates are measured from): both kinds of answers, until they come through.
    await eventually(async () => (await get('/ok')) === 200, 'a request through both sidecars');
    await eventually(async () => (await unary<HelloReply>(grpcClient, 'SayHello', { name: 'warm' })).err === null, 'a gRPC call through both sidecars');
    await load('/ok', 10);
    await load('/fail', 10);
    await prom.start([client, reviews, greeterSidecar].map((s) => `127.0.0.1:${s.stats}`));
  });

  after(async () => {
    grpcClient?.close();
    await prom.stop();
    for (const s of [client, reviews, greeterSidecar, ratings]) await s?.proc.stop();
    await cp.stop();
    await app?.stop();
    await ratingsApp?.stop();
    echo?.close();
    await greeter?.close();
    mesh.remove();
  });

  test('rate by destination_service and response_code, and the median duration, match the traffic sent', async () => {
    const reviewsCount = (code: string) => `sum(istio_requests_total{destination_service="${REVIEWS}",response_code="${code}"})`;
    // The baseline: both reporters' series scraped a few times before the traffic (the rate window's start).
    const series = (code: string) => `istio_requests_total{destination_service="${REVIEWS}",response_code="${code}",response_flags="-"}`;
    for (const code of ['200', '503']) {
      await prom.until(`count_over_time(${series(code)}[1m]) >= 3`, (r) => r.length === 2, `samples of the ${code} baseline on both reporters`);
    }
    const b200 = (await prom.query(reviewsCount('200')))[0]!.value;
    const b503 = (await prom.query(reviewsCount('503')))[0]!.value;

    const statuses = [...(await load('/ok', 30)), ...(await load('/fail', 10))];
    assert.deepEqual(statuses.filter((s) => s === 200).length, 30);
    assert.deepEqual(statuses.filter((s) => s === 503).length, 10);
    // Both reporters count every request once.
    await prom.until(reviewsCount('200'), (r) => r[0]?.value === b200 + 60, 'the 200s scraped');
    await prom.until(reviewsCount('503'), (r) => r[0]?.value === b503 + 20, 'the 503s scraped');

    const rates = await prom.query('sum(rate(istio_requests_total[1m])) by (destination_service, response_code)');
    const rate = (code: string) => rates.find((r) => r.metric.destination_service === REVIEWS && r.metric.response_code === code)?.value ?? NaN;
    assert.ok(rate('200') > 0 && rate('503') > 0, JSON.stringify(rates));
    // 30 against 10 in the same window on the same targets.
    assert.ok(Math.abs(rate('200') / rate('503') - 3) < 0.03, `rate ratio ${rate('200') / rate('503')}: ${JSON.stringify(rates)}`);

    const p50 = await prom.query('histogram_quantile(0.5, sum(rate(istio_request_duration_milliseconds_bucket[1m])) by (le, destination_service))');
    const median = p50.find((r) => r.metric.destination_service === REVIEWS)?.value ?? NaN;
    // Every duration is at least the app's delay (so the median's bucket starts at 100 or above) and at most what the
    // test saw from outside (so the estimate is at most the first bucket bound above that).
    const upper = DEFAULT_BUCKETS.find((b) => b >= Math.ceil(slowestSeen))!;
    assert.ok(median >= 100 && median <= upper, `p50 ${median} outside [100, ${upper}] (slowest seen ${slowestSeen} ms)`);
  });

  test('exact label sets on both reporters, with peer labels from the metadata exchange', async () => {
    const pick = (samples: PromSample[], reporter: string) =>
      samples.filter((s) => s.name === 'istio_requests_total' && s.labels.reporter === reporter && s.labels.destination_service === REVIEWS && s.labels.response_code === '200');
    const src = pick(await scrape(client.stats), 'source');
    const dst = pick(await scrape(reviews.stats), 'destination');
    assert.equal(src.length, 1, JSON.stringify(src));
    assert.equal(dst.length, 1, JSON.stringify(dst));
    const common = {
      source_workload: 'productpage-v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      source_workload_namespace: 'default',
      source_app: 'productpage',
      source_version: 'v1',
      source_cluster: 'Kubernetes',
      destination_workload: 'reviews-v1',
      destination_workload_namespace: 'default',
      destination_principal: 'unknown',
      destination_app: 'reviews',
      destination_version: 'v1',
      destination_service: REVIEWS,
      destination_canonical_service: 'reviews',
      destination_canonical_revision: 'v1',
      destination_service_name: 'reviews',
      destination_service_namespace: 'default',
      destination_cluster: 'Kubernetes',
      request_protocol: 'http',
      response_code: '200',
      grpc_response_status: '',
      response_flags: '-',
    };
    assert.deepEqual(src[0]!.labels, { reporter: 'source', ...common, source_principal: 'unknown', connection_security_policy: 'unknown' });
    assert.deepEqual(dst[0]!.labels, { reporter: 'destination', ...common, source_principal: 'unknown', connection_security_policy: 'none' });
    // The exchange headers never reached the application.
    assert.ok(app.seen.length > 0);
    for (const s of app.seen) {
      assert.equal(s.headers[PEER_METADATA_HEADER], undefined);
      assert.equal(s.headers[PEER_METADATA_ID_HEADER], undefined);
    }
  });

  test('gRPC message counts of streaming calls on both reporters', async () => {
    const match = { destination_service: GREETER, request_protocol: 'grpc', grpc_response_status: '0', response_code: '200' };
    const counts = async () => {
      const [c, s] = [await scrape(client.stats), await scrape(greeterSidecar.stats)];
      return ['istio_request_messages_total', 'istio_response_messages_total', 'istio_requests_total'].flatMap((n) => [total(c, n, { ...match, reporter: 'source' }), total(s, n, { ...match, reporter: 'destination' })]);
    };
    const before = await counts();
    // Server streaming: 1 request message, 5 responses; client streaming: 3 requests, 1 response.
    const replies: HelloReply[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = grpcClient.SayHellos!({ name: 'cy', count: 5 } satisfies StreamRequest, new Metadata(), { deadline: Date.now() + 20_000 }) as NodeJS.EventEmitter;
      call.on('data', (m: HelloReply) => replies.push(m));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.equal(replies.length, 5);
    await new Promise<HelloReply>((resolve, reject) => {
      const call = grpcClient.Collect!(new Metadata(), { deadline: Date.now() + 20_000 }, (err: ServiceError | null, res: HelloReply) => (err ? reject(err) : resolve(res))) as NodeJS.WritableStream;
      for (const name of ['a', 'b', 'c']) call.write({ name } as never);
      call.end();
    });
    const want = [4, 4, 6, 6, 2, 2].map((d, i) => before[i]! + d);
    let now: number[] = [];
    await eventually(async () => (now = await counts()).every((v, i) => v === want[i]), 'the streaming calls counted').catch(() => assert.deepEqual(now, want));
  });

  test('TCP bytes and connections on both reporters', async () => {
    const names = ['istio_tcp_connections_opened_total', 'istio_tcp_connections_closed_total', 'istio_tcp_received_bytes_total', 'istio_tcp_sent_bytes_total'];
    const match = { destination_service: REVIEWS, request_protocol: 'tcp' };
    // And Envoy's listener stats of the client's TCP listener.
    const listener = { envoy_listener_address: `127.0.0.1_${tcpLocal}` };
    const counts = async () => {
      const [c, s] = [await scrape(client.stats), await scrape(reviews.stats)];
      return [
        ...names.flatMap((n) => [total(c, n, { ...match, reporter: 'source' }), total(s, n, { ...match, reporter: 'destination' })]),
        total(c, 'envoy_listener_downstream_cx_total', listener),
        total(c, 'envoy_listener_downstream_cx_destroy', listener),
        total(c, 'envoy_listener_downstream_cx_active', listener),
      ];
    };
    const before = await counts();
    const payload = Buffer.alloc(3000, 'x');
    const back = await new Promise<number>((resolve, reject) => {
      const s: Socket = connect(tcpLocal, '127.0.0.1', () => s.write(payload));
      let got = 0;
      s.on('data', (d: Buffer) => {
        got += d.length;
        if (got === payload.length) s.end();
      });
      s.on('error', reject);
      s.on('close', () => resolve(got));
    });
    assert.equal(back, payload.length);
    const want = [1, 1, 1, 1, 3000, 3000, 3000, 3000, 1, 1, 0].map((d, i) => before[i]! + d);
    let now: number[] = [];
    await eventually(async () => (now = await counts()).every((v, i) => v === want[i]), 'the TCP connection counted').catch(() => assert.deepEqual(now, want));
    // The client side knows the destination workload from the endpoint's metadata (no exchange on plain TCP).
    const src = (await scrape(client.stats)).find((s) => s.name === 'istio_tcp_sent_bytes_total' && s.labels.reporter === 'source');
    assert.equal(src?.labels.destination_workload, 'reviews-v1');
    assert.equal(src?.labels.destination_canonical_service, 'reviews');
    assert.equal(src?.labels.source_workload, 'productpage-v1');
    assert.equal(src?.labels.connection_security_policy, 'unknown');
    const dst = (await scrape(reviews.stats)).find((s) => s.name === 'istio_tcp_sent_bytes_total' && s.labels.reporter === 'destination');
    assert.equal(dst?.labels.source_workload, 'unknown');
    assert.equal(dst?.labels.destination_workload, 'reviews-v1');
    assert.equal(dst?.labels.connection_security_policy, 'none');
  });

  test('--metrics=false: no Istio metrics, exchange headers still removed; the client falls back to endpoint metadata', async () => {
    const r = await send(client.outbound, { path: '/x', headers: { host: 'ratings:9081' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers[PEER_METADATA_HEADER], undefined);
    const seen = ratingsApp.seen[ratingsApp.seen.length - 1]!;
    assert.equal(seen.headers[PEER_METADATA_HEADER], undefined, 'the client sidecar sent metadata; the metrics-off sidecar removed it');
    assert.equal(seen.headers[PEER_METADATA_ID_HEADER], undefined);
    const own = await (await fetch(`http://127.0.0.1:${ratings.stats}/stats/prometheus`)).text();
    assert.doesNotMatch(own, /^istio_/m);
    assert.match(own, /^envoy_cluster_upstream_rq_total/m, "Envoy's stats are still there");
    let src: PromSample | undefined;
    await eventually(async () => {
      src = (await scrape(client.stats)).find((s) => s.name === 'istio_requests_total' && s.labels.destination_service === 'ratings.default.svc.cluster.local');
      return src !== undefined;
    }, "the client's series for ratings");
    // No metadata came back: workload, namespace, canonical service and revision from the endpoint; app and version unknown.
    assert.equal(src!.labels.destination_workload, 'ratings-v1');
    assert.equal(src!.labels.destination_workload_namespace, 'default');
    assert.equal(src!.labels.destination_canonical_service, 'ratings');
    assert.equal(src!.labels.destination_canonical_revision, 'v1');
    assert.equal(src!.labels.destination_app, 'unknown');
  });

  test('every Grafana dashboard panel query is valid PromQL over these metrics', async () => {
    const dir = join(ROOT, 'deploy', 'grafana');
    const files = readdirSync(dir).filter((f) => f.endsWith('.json'));
    assert.ok(files.length >= 3, `dashboards: ${files.join(', ')}`);
    let queries = 0;
    let withData = 0;
    for (const f of files) {
      const d = JSON.parse(readFileSync(join(dir, f), 'utf8')) as { panels?: Array<{ title?: string; targets?: Array<{ expr?: string }> }>; templating?: { list?: Array<{ name: string; query?: unknown }> } };
      for (const v of d.templating?.list ?? []) {
        const q = typeof v.query === 'string' ? v.query : (v.query as { query?: string } | undefined)?.query;
        const m = q ? /^label_values\((.*),\s*\w+\)$/.exec(q) : null;
        if (m) await prom.query(`count(${m[1]})`);
      }
      for (const p of d.panels ?? []) {
        for (const t of p.targets ?? []) {
          assert.ok(t.expr, `${f}: panel ${p.title} has a target without expr`);
          const expr = t.expr.replaceAll('$__rate_interval', '1m').replaceAll('$__interval', '1m').replace(/\$\{?(\w+)\}?/g, '.*');
          const r = await prom.query(expr).catch((e: Error) => assert.fail(`${f}: panel ${p.title}: ${e.message}`));
          queries++;
          if (r.length > 0) withData++;
        }
      }
    }
    assert.ok(queries >= 10, `${queries} queries`);
    // Most panels show something for the traffic of this test (TCP, gRPC and HTTP all flowed).
    assert.ok(withData >= queries / 2, `${withData} of ${queries} panel queries returned data`);
  });
});
