// Config churn: 100 route changes pushed to a real `weft proxy` (a static ADS server serving 100 RDS versions of the
// `outbound` route configuration, each ACKed before the next) while a paced client load of up to ~500 requests per
// second runs through the proxy on keep-alive connections for the whole time. Version N routes host `echo` to
// upstream `a` when N is even and `b` when odd, and adds `x-route-version: N` to its responses. Every response
// must be a 200 from the upstream its version names, versions never go backwards on a connection, and the last
// version is what the proxy serves at the end. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HeaderValueOptionSchema, HeaderValueSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { RouteConfigurationSchema, type RouteConfiguration } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { clone } from '@bufbuild/protobuf';
import { TypeUrl } from '../../src/xds/index.js';
import { serviceYaml, sleep, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';

const VERSIONS = 100;
const WORKERS = 10;
/** Each worker sends at most one request per 20 ms: ≤ 500 requests per second in all. */
const PACE_MS = 20;

describe('weft proxy: 100 route changes under load', () => {
  const servers: Server[] = [];
  let mesh: StaticProxy;
  let base: RouteConfiguration;
  const clusterOf = (svc: string) => `outbound|9080||${svc}.default.svc.cluster.local`;

  before(async () => {
    const ports: number[] = [];
    for (const name of ['a', 'b', 'echo']) {
      const s = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(name);
        });
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      servers.push(s);
      ports.push((s.address() as AddressInfo).port);
    }
    const yaml = yamlDocuments(
      ['a', 'b', 'echo'].flatMap((name, i) => [serviceYaml(name, { name: 'http', port: 9080 }), workloadEntryYaml(`${name}-1`, { app: name }, 'http', ports[i]!)]),
    );
    mesh = await startStaticProxy(yaml, { nodeId: 'churn' });
    base = mesh.resources.routes.find((r) => r.name === 'outbound')!;
    assert.ok(base, 'the outbound route configuration');
  });

  after(async () => {
    await mesh?.stop();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  /** Version n of the outbound routes: echo → a (even) or b (odd), responses tagged with n. */
  function version(n: number): RouteConfiguration {
    const rc = clone(RouteConfigurationSchema, base);
    const vh = rc.virtualHosts.find((v) => v.domains.includes('echo:9080'));
    assert.ok(vh, `a virtual host for echo:9080 (have ${rc.virtualHosts.map((v) => v.domains.join(' ')).join(' | ')})`);
    for (const r of vh.routes) {
      if (r.action.case === 'route') r.action.value.clusterSpecifier = { case: 'cluster', value: clusterOf(n % 2 === 0 ? 'a' : 'b') };
    }
    rc.responseHeadersToAdd = [create(HeaderValueOptionSchema, { header: create(HeaderValueSchema, { key: 'x-route-version', value: String(n) }) })];
    return rc;
  }

  test('zero failed requests, each answered by the upstream of its route version', async () => {
    await mesh.ads.acked(TypeUrl.RouteConfiguration, mesh.ads.setMessages(TypeUrl.RouteConfiguration, RouteConfigurationSchema, [version(0)]));
    let pushing = true;
    const failures: string[] = [];
    let total = 0;
    const seenVersions = new Set<number>();

    const worker = async (): Promise<void> => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      let last = -1;
      try {
        // Bounded: at most 5,000 requests per worker.
        for (let i = 0; i < 5000 && pushing; i++) {
          const r = await new Promise<{ status: number; version: number; body: string }>((resolve) => {
            const req = request({ host: '127.0.0.1', port: mesh.outboundPort, path: '/', agent, headers: { host: 'echo:9080' }, timeout: 20_000 }, (res) => {
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => resolve({ status: res.statusCode ?? 0, version: Number(res.headers['x-route-version']), body }));
              res.on('error', (e) => resolve({ status: -1, version: NaN, body: String(e) }));
            });
            req.on('timeout', () => req.destroy(new Error('timeout')));
            req.on('error', (e) => resolve({ status: -1, version: NaN, body: String(e) }));
            req.end();
          });
          total++;
          const expected = r.version % 2 === 0 ? 'a' : 'b';
          if (r.status !== 200 || !Number.isInteger(r.version) || r.body !== expected || r.version < last) {
            failures.push(`status ${r.status} version ${r.version} (previous ${last}) body ${r.body}`);
          } else {
            seenVersions.add(r.version);
            last = r.version;
          }
          await sleep(PACE_MS);
        }
      } finally {
        agent.destroy();
      }
    };

    const load = Promise.all(Array.from({ length: WORKERS }, worker));
    for (let n = 1; n <= VERSIONS; n++) {
      const v = mesh.ads.setMessages(TypeUrl.RouteConfiguration, RouteConfigurationSchema, [version(n)]);
      await mesh.ads.acked(TypeUrl.RouteConfiguration, v);
      await sleep(30);
    }
    // Let the load see the last version, then stop it.
    await sleep(300);
    pushing = false;
    await load;

    assert.deepEqual(failures.slice(0, 10), [], `${failures.length} of ${total} requests failed`);
    assert.ok(total >= VERSIONS, `the load ran (${total} requests)`);
    assert.ok(seenVersions.has(VERSIONS), 'the last version was served');
    assert.ok(seenVersions.size > 10, `requests saw many versions (${seenVersions.size})`);
    assert.equal(mesh.ads.nacks.length, 0, JSON.stringify(mesh.ads.nacks));
  });
});
