/**
 * Micro-benchmark: the HTTP router's route() on a RouteConfiguration with 1,000 virtual hosts (each with the four
 * Kubernetes aliases of a service port and three routes, as the translator makes them), for typical requests.
 * Also header mutation and path rewrite on the request path. Prints ops/s. Run: node dist/bench/proxy/micro/router-route.js
 */
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { RouteConfigurationSchema } from '../../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import type { RequestHead } from '../../../src/proxy/http/headers.js';
import { applyRequestHeaders, compileRouteConfiguration, rewritePath } from '../../../src/proxy/http/router/index.js';
import type { CompiledRouteConfig } from '../../../src/proxy/http/router/index.js';

type RcInit = MessageInitShape<typeof RouteConfigurationSchema>;

const SERVICES = 1000;

function config(): RcInit {
  const virtualHosts = [];
  for (let i = 0; i < SERVICES; i++) {
    const fqdn = `svc-${i}.ns-${i % 20}.svc.cluster.local`;
    const cluster = `outbound|8080||${fqdn}`;
    virtualHosts.push({
      name: `${fqdn}:8080`,
      domains: [`${fqdn}:8080`, `svc-${i}.ns-${i % 20}.svc:8080`, `svc-${i}.ns-${i % 20}:8080`, `svc-${i}:8080`],
      routes: [
        {
          name: 'api-v2',
          match: { pathSpecifier: { case: 'prefix' as const, value: '/api/v2' }, headers: [{ name: 'x-canary', headerMatchSpecifier: { case: 'presentMatch' as const, value: true } }] },
          action: {
            case: 'route' as const,
            value: {
              clusterSpecifier: {
                case: 'weightedClusters' as const,
                value: { clusters: [{ name: `outbound|8080|v1|${fqdn}`, weight: 90 }, { name: `outbound|8080|v2|${fqdn}`, weight: 10 }] },
              },
              timeout: { seconds: 5n },
            },
          },
        },
        {
          name: 'legacy',
          match: { pathSpecifier: { case: 'prefix' as const, value: '/legacy/' } },
          action: { case: 'route' as const, value: { clusterSpecifier: { case: 'cluster' as const, value: cluster }, prefixRewrite: '/v1/' } },
          requestHeadersToAdd: [{ header: { key: 'x-route', value: 'legacy' } }, { header: { key: 'x-client', value: '%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%' } }],
        },
        {
          name: 'default',
          match: { pathSpecifier: { case: 'prefix' as const, value: '/' } },
          action: {
            case: 'route' as const,
            value: {
              clusterSpecifier: { case: 'cluster' as const, value: cluster },
              timeout: { seconds: 0n },
              retryPolicy: { retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes', numRetries: 2, retriableStatusCodes: [503] },
            },
          },
        },
      ],
      includeRequestAttemptCount: true,
    });
  }
  virtualHosts.push({ name: 'allow_any', domains: ['*'], routes: [{ name: 'allow_any', match: { pathSpecifier: { case: 'prefix' as const, value: '/' } }, action: { case: 'route' as const, value: { clusterSpecifier: { case: 'cluster' as const, value: 'PassthroughCluster' } } } }] });
  return { name: 'outbound', virtualHosts };
}

function head(authority: string, path: string, headers: string[]): RequestHead {
  return { method: 'GET', path, authority, scheme: 'http', headers, httpVersion: '1.1' };
}

function bench(name: string, iterations: number, f: (i: number) => void): void {
  for (let i = 0; i < Math.min(iterations, 200_000); i++) f(i); // warm-up
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) f(i);
  const ns = Number(process.hrtime.bigint() - t0);
  const ops = (iterations / ns) * 1e9;
  console.log(`${name.padEnd(58)} ${Math.round(ops).toLocaleString('en-US').padStart(14)} ops/s  (${(ns / iterations).toFixed(1)} ns/op)`);
}

const message = create(RouteConfigurationSchema, config());
const t0 = process.hrtime.bigint();
const compiled: CompiledRouteConfig = compileRouteConfiguration(message);
console.log(`compileRouteConfiguration: ${SERVICES} virtual hosts, ${SERVICES * 4} domains, ${SERVICES * 3} routes in ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1)} ms`);

const headers = ['user-agent', 'curl/8.5.0', 'accept', '*/*', 'x-request-id', '3f1c2b7e-8a5d-4c1e-9b0f-6d2e7a1c4b9f'];
const typical = head('svc-517:8080', '/orders/42?expand=items', headers);
const fqdn = head('svc-517.ns-17.svc.cluster.local:8080', '/orders/42', headers);
const canary = head('svc-517:8080', '/api/v2/users', [...headers, 'x-canary', '1']);
const unknown = head('example.org', '/', headers);
let sink = 0;
const ctx = { random: 0.37 };

bench('route(): short name, catch-all route (2 prefix misses first)', 5_000_000, () => {
  sink += compiled.route(typical, ctx)!.timeoutMs;
});
bench('route(): FQDN authority', 5_000_000, () => {
  sink += compiled.route(fqdn, ctx)!.timeoutMs;
});
bench('route(): header match + weighted clusters', 5_000_000, () => {
  sink += compiled.route(canary, ctx)!.timeoutMs;
});
bench('route(): unknown host → * (passthrough)', 5_000_000, () => {
  sink += compiled.route(unknown, ctx)!.timeoutMs;
});
const rotating = Array.from({ length: SERVICES }, (_, i) => head(`svc-${(i * 7919) % SERVICES}:8080`, `/orders/${i}?expand=items`, headers));
bench('route(): rotating over the 1,000 services', 5_000_000, (i) => {
  sink += compiled.route(rotating[i % SERVICES]!, ctx)!.timeoutMs;
});
const legacyDecision = compiled.route(head('svc-517:8080', '/legacy/x', []), ctx)!;
const vars = { downstreamRemoteAddress: '10.1.2.3', downstreamRemotePort: 40000 };
bench('route() + applyRequestHeaders + rewritePath (prefix rewrite)', 2_000_000, () => {
  const h = head('svc-517:8080', '/legacy/items?x=1', ['user-agent', 'curl/8.5.0']);
  const d = compiled.route(h, ctx)!;
  applyRequestHeaders(d, h, vars);
  rewritePath(d, h);
  sink += h.headers.length + (d === legacyDecision ? 1 : 0);
});
if (sink === 0) console.log('(unreachable)');
