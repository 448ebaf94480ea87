// Fault injection end to end. Part 1: the real `weft control-plane` translates an Istio VirtualService `fault`
// (abort 50 %, delay 100 %) into the fault filter's per-route config and a real `weft proxy` applies it; checked
// with a keep-alive node:http client over 400 requests (abort share within a wide binomial tolerance), the FI/DI
// flags (x-weft-debug), the fault stats and what the upstream saw. Part 2: exact Envoy configs served by a static
// ADS server (header-controlled faults, gRPC aborts, per-route overrides, max_active_faults, header matching, a
// request body held through a delay, NACKs naming the field). No timing is asserted: a delay is observed as the
// DI flag, the active_faults gauge and the upstream not having seen the request while the fault is active.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Agent } from 'node:http';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { statValue } from '../helpers/admin-http.js';
import { eventually, send, Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { StaticAds } from '../helpers/static-ads.js';
import { pack, TypeUrl } from '../../src/xds/index.js';
import { ClusterSchema, Cluster_DiscoveryType } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { FilterConfigSchema, RouteSchema } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { HTTPFaultSchema } from '../../src/xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { CorsSchema } from '../../src/xds/gen/envoy/extensions/filters/http/cors/v3/cors_pb.js';
import { FractionalPercent_DenominatorType } from '../../src/xds/gen/envoy/type/v3/percent_pb.js';

const DEBUG = { 'x-weft-debug': '1' };

describe('weft proxy: Istio VirtualService fault end to end', () => {
  const mesh = new MeshWorkDir('weft-fault-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const ratings = new Upstream('ratings');
  let outbound = 0;
  let adminPort = 0;
  const agent = new Agent({ keepAlive: true, maxSockets: 4 });

  before(async () => {
    await ratings.start();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('ratings', { name: 'http', port: 9080 }),
        workloadEntryYaml('ratings-1', { app: 'ratings' }, 'http', ratings.port),
        `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{uri: {prefix: /abort}}]
    fault: {abort: {percentage: {value: 50}, httpStatus: 503}}
    route: [{destination: {host: ratings}}]
  - match: [{uri: {prefix: /delay}}]
    fault: {delay: {percentage: {value: 100}, fixedDelay: 2s}}
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: ratings}}]
`,
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    adminPort = await freePort();
    await proxy.start(
      proxyArgs(addr.xds, 'e2e-fault', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(adminPort), '--stats-port', '0']),
      /weft proxy .* started/,
      'proxy',
    );
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    agent.destroy();
    await proxy.stop();
    await cp.stop();
    await ratings.stop();
    mesh.remove();
  });

  test('abort 50 %: about half of 400 requests answered 503 FI locally, the rest reach the upstream', async () => {
    const N = 400;
    let aborted = 0;
    for (let i = 0; i < N; i++) {
      const r = await send(outbound, { path: `/abort/${i}`, headers: { host: 'ratings:9080', ...DEBUG }, agent });
      if (r.status === 503) {
        assert.equal(r.body.toString(), 'fault filter abort');
        assert.equal(r.headers['x-weft-response-flags'], 'FI');
        assert.equal(r.headers['x-weft-response-code-details'], 'fault_filter_abort');
        aborted++;
      } else {
        assert.equal(r.status, 200);
        assert.equal(r.headers['x-weft-response-flags'], undefined);
      }
    }
    // Binomial(400, 0.5): mean 200, sd 10; ±70 is 7 standard deviations.
    assert.ok(aborted > 130 && aborted < 270, `aborted ${aborted} of ${N}`);
    assert.equal(ratings.count((s) => s.url.startsWith('/abort/')), N - aborted, 'aborted requests never reach the upstream');
    assert.equal(await statValue(adminPort, 'http.outbound.fault.aborts_injected'), aborted);
  });

  test('delay 100 %: the upstream sees the request only after the delay; DI flag and stats', async () => {
    const pending = send(outbound, { path: '/delay/1', headers: { host: 'ratings:9080', ...DEBUG } });
    // While the fault is active the request is inside the proxy and not at the upstream.
    await eventually(async () => (await statValue(adminPort, 'http.outbound.fault.active_faults')) === 1, 'the delay to start');
    assert.equal(ratings.count((s) => s.url === '/delay/1'), 0, 'the upstream has not seen the delayed request yet');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-weft-response-flags'], 'DI');
    assert.equal(ratings.count((s) => s.url === '/delay/1'), 1);
    assert.equal(await statValue(adminPort, 'http.outbound.fault.delays_injected'), 1);
    assert.equal(await statValue(adminPort, 'http.outbound.fault.active_faults'), 0);
  });

  test('routes without a fault pass untouched', async () => {
    const r = await send(outbound, { path: '/plain', headers: { host: 'ratings:9080', ...DEBUG } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-weft-response-flags'], undefined);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Exact Envoy configs

type FaultInit = MessageInitShape<typeof HTTPFaultSchema>;
type RouteInit = MessageInitShape<typeof RouteSchema>;

const pct = (n: number) => ({ numerator: n, denominator: FractionalPercent_DenominatorType.HUNDRED });

function listener(port: number, filters: Array<{ name: string; any?: ReturnType<typeof pack>; optional?: boolean; disabled?: boolean }>) {
  const hcm = pack(HttpConnectionManagerSchema, {
    statPrefix: 'faults',
    routeSpecifier: { case: 'rds', value: { routeConfigName: 'local', configSource: { configSourceSpecifier: { case: 'ads', value: {} } } } },
    httpFilters: [
      ...filters.map((f) => ({ name: f.name, isOptional: f.optional ?? false, disabled: f.disabled ?? false, ...(f.any ? { configType: { case: 'typedConfig' as const, value: f.any } } : {}) })),
      { name: 'envoy.filters.http.router', configType: { case: 'typedConfig' as const, value: pack(RouterSchema, {}) } },
    ],
  });
  return {
    name: 'faults',
    address: { address: { case: 'socketAddress' as const, value: { address: '127.0.0.1', portSpecifier: { case: 'portValue' as const, value: port } } } },
    filterChains: [{ filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { case: 'typedConfig' as const, value: hcm } }] }],
  };
}

function routes(list: RouteInit[]) {
  return { name: 'local', virtualHosts: [{ name: 'local', domains: ['*'], routes: list }] };
}

const toBackend = (prefix: string, fault?: FaultInit): RouteInit => ({
  match: { pathSpecifier: { case: 'prefix', value: prefix } },
  action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: 'backend' }, timeout: { seconds: 0n } } },
  ...(fault ? { typedPerFilterConfig: { 'envoy.filters.http.fault': pack(HTTPFaultSchema, fault) } } : {}),
});

describe('weft proxy: fault filter with exact Envoy configs', () => {
  const ads = new StaticAds();
  const proxy = new WeftProcess();
  const backend = new Upstream('backend');
  let port = 0;
  let adminPort = 0;

  /** Filter-level config: header-controlled abort and delay (100 % unless a percentage header lowers it). */
  const filterFault: FaultInit = {
    abort: { errorType: { case: 'headerAbort', value: {} }, percentage: pct(100) },
    delay: { faultDelaySecifier: { case: 'headerDelay', value: {} }, percentage: pct(100) },
  };

  before(async () => {
    await backend.start();
    await ads.listen();
    const xds = ads.address;
    port = await freePort();
    adminPort = await freePort();
    const health = await freePort();
    ads.setMessages(TypeUrl.Cluster, ClusterSchema, [
      {
        name: 'backend',
        clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC },
        connectTimeout: { seconds: 5n },
        loadAssignment: {
          clusterName: 'backend',
          endpoints: [{ lbEndpoints: [{ hostIdentifier: { case: 'endpoint', value: { address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: backend.port } } } } } } }] }],
        },
      },
    ]);
    ads.setMessages(TypeUrl.Listener, ListenerSchema, [listener(port, [{ name: 'envoy.filters.http.fault', any: pack(HTTPFaultSchema, filterFault) }, { name: 'envoy.filters.http.cors', any: pack(CorsSchema, {}) }])]);
    ads.setMessages(
      TypeUrl.RouteConfiguration,
      RouteConfigurationSchema,
      [
        routes([
          toBackend('/override', { abort: { errorType: { case: 'httpStatus', value: 500 }, percentage: pct(100) } }),
          toBackend('/grpc-abort', { abort: { errorType: { case: 'grpcStatus', value: 8 }, percentage: pct(100) } }),
          toBackend('/matched', { abort: { errorType: { case: 'httpStatus', value: 451 }, percentage: pct(100) }, headers: [{ name: 'x-fault', headerMatchSpecifier: { case: 'exactMatch', value: 'yes' } }] }),
          toBackend('/node', { abort: { errorType: { case: 'httpStatus', value: 452 }, percentage: pct(100) }, downstreamNodes: ['canary'] }),
          toBackend('/held', { delay: { faultDelaySecifier: { case: 'fixedDelay', value: { seconds: 2n } }, percentage: pct(100) }, maxActiveFaults: 1 }),
          { ...toBackend('/nofault'), typedPerFilterConfig: { 'envoy.filters.http.fault': pack(FilterConfigSchema, { disabled: true }) } },
          toBackend('/'),
        ]),
      ],
    );
    await proxy.start(['proxy', '--xds', xds, '--id', 'fault-exact', '--xds-protocol', 'sotw', '--outbound-port', String(await freePort()), '--health-port', String(health), '--admin-port', String(adminPort), '--stats-port', '0'], /weft proxy .* started/, 'proxy');
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    await proxy.stop();
    ads.close();
    await backend.stop();
  });

  const get = (path: string, headers: Record<string, string> = {}) => send(port, { path, headers: { host: 'backend', ...DEBUG, ...headers } });

  test('header_abort: x-envoy-fault-abort-request sets the status; without it or at 0 % the request passes', async () => {
    const a = await get('/h/1', { 'x-envoy-fault-abort-request': '418' });
    assert.equal(a.status, 418);
    assert.equal(a.body.toString(), 'fault filter abort');
    assert.equal(a.headers['x-weft-response-flags'], 'FI');
    assert.equal(backend.count((s) => s.url === '/h/1'), 0);

    const b = await get('/h/2');
    assert.equal(b.status, 200);
    const c = await get('/h/3', { 'x-envoy-fault-abort-request': '418', 'x-envoy-fault-abort-request-percentage': '0' });
    assert.equal(c.status, 200, 'the percentage header lowers the configured 100 % to 0 %');
    const d = await get('/h/4', { 'x-envoy-fault-abort-request': '99' });
    assert.equal(d.status, 200, 'a status outside 200..599 is no abort');
    assert.equal(backend.count((s) => s.url === '/h/2' || s.url === '/h/3' || s.url === '/h/4'), 3);
  });

  test('header_abort with a gRPC status: a gRPC request gets HTTP 200 with grpc-status', async () => {
    const r = await get('/h/grpc', { 'x-envoy-fault-abort-grpc-request': '14', 'content-type': 'application/grpc' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['grpc-status'], '14');
    assert.equal(r.headers['grpc-message'], 'fault filter abort');
    assert.equal(r.headers['x-weft-response-flags'], 'FI');
  });

  test('header_delay: x-envoy-fault-delay-request delays the request (DI) and it then reaches the upstream', async () => {
    const r = await get('/h/delayed', { 'x-envoy-fault-delay-request': '300' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-weft-response-flags'], 'DI');
    assert.equal(backend.count((s) => s.url === '/h/delayed'), 1);
    const z = await get('/h/no-delay', { 'x-envoy-fault-delay-request': '300', 'x-envoy-fault-delay-request-percentage': '0' });
    assert.equal(z.headers['x-weft-response-flags'], undefined);
  });

  test('a route’s typed_per_filter_config replaces the filter config (http and gRPC status aborts)', async () => {
    const r = await get('/override/1', { 'x-envoy-fault-abort-request': '418' });
    assert.equal(r.status, 500, 'the per-route abort, not the header');
    const g = await get('/grpc-abort/1', { 'content-type': 'application/grpc+proto' });
    assert.equal(g.status, 200);
    assert.equal(g.headers['grpc-status'], '8');
    const h = await get('/grpc-abort/2');
    assert.equal(h.status, 200, 'a gRPC status abort answers 200 to a plain HTTP request');
    assert.equal(h.body.toString(), 'fault filter abort');
  });

  test('a route’s FilterConfig disabled: true turns the filter off for that route', async () => {
    const r = await get('/nofault/1', { 'x-envoy-fault-abort-request': '418', 'x-envoy-fault-delay-request': '5000' });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-weft-response-flags'], undefined);
  });

  test('headers and downstream_nodes restrict which requests get the fault', async () => {
    assert.equal((await get('/matched/1')).status, 200);
    assert.equal((await get('/matched/2', { 'x-fault': 'yes' })).status, 451);
    assert.equal((await get('/node/1')).status, 200);
    assert.equal((await get('/node/2', { 'x-envoy-downstream-service-node': 'other' })).status, 200);
    assert.equal((await get('/node/3', { 'x-envoy-downstream-service-node': 'canary' })).status, 452);
  });

  test('max_active_faults: a second request while one is delayed passes without a fault (faults_overflow)', async () => {
    const overflowBefore = (await statValue(adminPort, 'http.faults.fault.faults_overflow')) ?? 0;
    const first = get('/held/1');
    await eventually(async () => (await statValue(adminPort, 'http.faults.fault.active_faults')) === 1, 'the first delay to start');
    const second = await get('/held/2');
    assert.equal(second.status, 200);
    assert.equal(second.headers['x-weft-response-flags'], undefined, 'no delay: the fault limit is reached');
    assert.equal(backend.count((s) => s.url === '/held/1'), 0, 'the first request is still delayed');
    assert.equal(await statValue(adminPort, 'http.faults.fault.faults_overflow'), overflowBefore + 1);
    const r1 = await first;
    assert.equal(r1.headers['x-weft-response-flags'], 'DI');
  });

  test('a request body that arrives during a delay is held and forwarded whole', async () => {
    const body = Buffer.alloc(300_000, 'b');
    const r = await send(port, { method: 'POST', path: '/held/body', headers: { host: 'backend', ...DEBUG, 'content-type': 'application/octet-stream' }, body });
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-weft-response-flags'], 'DI');
    const seen = backend.seen.find((s) => s.url === '/held/body');
    assert.ok(seen);
    assert.equal(seen.bodyLength, body.length);
    assert.equal(seen.bodySha, createHash('sha256').update(body).digest('hex'));
  });

  test('bad fault configs are NACKed naming the field; the last good config stays', async () => {
    const v = ads.setMessages(TypeUrl.RouteConfiguration, RouteConfigurationSchema, [routes([toBackend('/', { abort: { errorType: { case: 'httpStatus', value: 100 }, percentage: pct(100) } })])]);
    const res = await ads.settled(TypeUrl.RouteConfiguration, v);
    assert.equal(res.acked, false);
    assert.match(res.nack!, /route_config "local": virtual_hosts\[0\]\.routes\[0\]\.typed_per_filter_config\["envoy\.filters\.http\.fault"\]\.abort\.http_status: must be in \[200, 600\), got 100/);
    assert.equal((await get('/override/2')).status, 500, 'the previous routes still apply');

    const l1 = ads.setMessages(TypeUrl.Listener, ListenerSchema, [listener(port, [{ name: 'envoy.filters.http.unknown' }])]);
    const lres = await ads.settled(TypeUrl.Listener, l1);
    assert.equal(lres.acked, false);
    assert.match(lres.nack!, /http_filters\[0\]: HTTP filter envoy\.filters\.http\.unknown is not supported/);

    // An optional unknown filter is skipped; a filter disabled by default runs only where a route configures it.
    const l2 = ads.setMessages(TypeUrl.Listener, ListenerSchema, [
      listener(port, [{ name: 'envoy.filters.http.unknown', optional: true }, { name: 'envoy.filters.http.fault', any: pack(HTTPFaultSchema, filterFault), disabled: true }]),
    ]);
    assert.deepEqual(await ads.settled(TypeUrl.Listener, l2), { acked: true });
    await eventually(async () => (await get('/h/after', { 'x-envoy-fault-abort-request': '409' })).status === 200, 'the new listener to serve');
    assert.equal((await get('/override/3')).status, 500, 'the route with its own fault config enables the filter');
  });
});
