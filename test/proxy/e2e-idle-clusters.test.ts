// Clusters that wait for their first use (EDS and STATIC clusters without health checks keep only their settings
// and a few counts until a request needs them; upstream/cluster/idle.ts): a real `weft proxy` on a static ADS
// server, real upstream servers. Before first use, /clusters shows the cluster with its hosts and /stats lists
// exactly the stats its runtime lists; an endpoint update is applied to it (and counted) while it waits; the first
// request goes to the endpoint in force, and the stats then continue from the counts kept. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { TypeUrl } from '../../src/xds/index.js';
import { serviceYaml, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { translateYaml } from '../helpers/translate.js';

const NODE_ID = 'idle-clusters';
const B = 'outbound|9080||b.default.svc.cluster.local';

type Json = Record<string, unknown>;

describe('weft proxy: clusters built on first use', () => {
  const servers: Server[] = [];
  const ports: Record<string, number> = {};
  let mesh: StaticProxy;

  const meshYaml = (bPort: number) =>
    yamlDocuments([
      serviceYaml('a', { name: 'http', port: 9080 }),
      workloadEntryYaml('a-1', { app: 'a' }, 'http', ports['a']!),
      serviceYaml('b', { name: 'http', port: 9080 }),
      workloadEntryYaml('b-1', { app: 'b' }, 'http', bPort),
    ]);

  const admin = async (path: string): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${mesh.adminPort}${path}`);
    assert.equal(res.status, 200, path);
    return res.text();
  };

  /** cluster b's stats from /stats?format=json, by name relative to `cluster.<b>.`. */
  const statsOfB = async (): Promise<Map<string, number>> => {
    const body = JSON.parse(await admin('/stats?format=json')) as { stats: Array<{ name?: string; value?: number }> };
    const prefix = `cluster.${B}.`;
    const m = new Map<string, number>();
    for (const s of body.stats) if (s.name?.startsWith(prefix) && typeof s.value === 'number') m.set(s.name.slice(prefix.length), s.value);
    return m;
  };

  /** cluster b's hosts in /clusters?format=json as `address:port health`. */
  const hostsOfB = async (): Promise<string[]> => {
    const body = JSON.parse(await admin('/clusters?format=json')) as { cluster_statuses: Json[] };
    const b = body.cluster_statuses.find((c) => c['name'] === B);
    assert.ok(b, `/clusters lists ${B}`);
    return ((b['host_statuses'] ?? []) as Json[]).map((h) => {
      const sa = (h['address'] as { socket_address: { address: string; port_value: number } }).socket_address;
      const health = h['health_status'] as Json;
      return `${sa.address}:${sa.port_value} ${health['eds_health_status'] ?? ''}`;
    });
  };

  const get = (host: string): Promise<{ status: number; body: string }> =>
    new Promise((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: mesh.outboundPort, path: '/', agent: false, headers: { host }, timeout: 20_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', reject);
      req.end();
    });

  before(async () => {
    for (const name of ['a', 'b1', 'b2']) {
      const s = createServer((req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(name);
        });
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      servers.push(s);
      ports[name] = (s.address() as AddressInfo).port;
    }
    mesh = await startStaticProxy(meshYaml(ports['b1']!), { nodeId: NODE_ID });
  });

  after(async () => {
    await mesh?.stop();
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  });

  test('an unused cluster is listed with its hosts and stats; an endpoint update applies; first use routes to it', async () => {
    // A used cluster gives the full list of a runtime's stat names.
    assert.deepEqual(await get('a:9080'), { status: 200, body: 'a' });
    const aBody = JSON.parse(await admin('/stats?format=json')) as { stats: Array<{ name?: string }> };
    const aPrefix = 'cluster.outbound|9080||a.default.svc.cluster.local.';
    const runtimeNames = aBody.stats
      .map((s) => s.name ?? '')
      .filter((n) => n.startsWith(aPrefix))
      .map((n) => n.slice(aPrefix.length))
      // Status-code counters exist only once a response was counted.
      .filter((n) => !/^upstream_rq_\d{3}$/.test(n))
      .sort();

    // Unused b: listed with its host, and with exactly the runtime's stats, zero except updates and membership.
    assert.deepEqual(await hostsOfB(), [`127.0.0.1:${ports['b1']} HEALTHY`]);
    const idle = await statsOfB();
    assert.deepEqual([...idle.keys()].sort(), runtimeNames);
    assert.equal(idle.get('membership_total'), 1);
    assert.equal(idle.get('membership_healthy'), 1);
    assert.equal(idle.get('max_host_weight'), 1);
    assert.equal(idle.get('upstream_rq_total'), 0);
    assert.equal(idle.get('upstream_rq_completed'), 0);
    assert.equal(idle.get('circuit_breakers.default.rq_open'), 0);
    const updates = idle.get('update_success')!;
    const changes = idle.get('membership_change')!;
    assert.ok(updates >= 1, `update_success ${updates}`);

    // An endpoint update while b is unused: b1 → b2.
    const next = translateYaml(meshYaml(ports['b2']!), `${NODE_ID}.yaml`, { id: NODE_ID, metadata: { NAMESPACE: 'default', LABELS: { app: 'client' }, SERVICE_ACCOUNT: 'default' } as never });
    const cla = next.endpoints.find((e) => e.clusterName === B);
    assert.ok(cla, 'an assignment for b');
    const claA = next.endpoints.filter((e) => e.clusterName !== B);
    await mesh.ads.acked(TypeUrl.ClusterLoadAssignment, mesh.ads.setMessages(TypeUrl.ClusterLoadAssignment, ClusterLoadAssignmentSchema, [...claA, cla]));
    assert.deepEqual(await hostsOfB(), [`127.0.0.1:${ports['b2']} HEALTHY`]);
    const updated = await statsOfB();
    assert.equal(updated.get('update_success'), updates + 1);
    assert.equal(updated.get('membership_change'), changes + 1);
    assert.equal(updated.get('membership_total'), 1);
    assert.equal(updated.get('upstream_rq_total'), 0);

    // First use: the endpoint in force answers; the counts continue from what was kept while b waited.
    assert.deepEqual(await get('b:9080'), { status: 200, body: 'b2' });
    assert.deepEqual(await get('b:9080'), { status: 200, body: 'b2' });
    const used = await statsOfB();
    assert.equal(used.get('upstream_rq_total'), 2);
    assert.equal(used.get('upstream_rq_completed'), 2);
    assert.equal(used.get('upstream_rq_200'), 2);
    assert.equal(used.get('update_success'), updates + 1);
    assert.equal(used.get('membership_change'), changes + 1);
    assert.equal(used.get('membership_total'), 1);
    assert.deepEqual(await hostsOfB(), [`127.0.0.1:${ports['b2']} HEALTHY`]);

    // Later endpoint updates reach the runtime in use.
    await mesh.ads.acked(TypeUrl.ClusterLoadAssignment, mesh.ads.setMessages(TypeUrl.ClusterLoadAssignment, ClusterLoadAssignmentSchema, mesh.resources.endpoints));
    assert.deepEqual(await get('b:9080'), { status: 200, body: 'b1' });
    assert.equal((await statsOfB()).get('update_success'), updates + 2);
  });
});
