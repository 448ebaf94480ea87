// `weft proxy` admin API and stats end to end: the real `weft control-plane` command and a `weft proxy` process
// (the Proxy class started by a tiny launcher, so the stats port can be set), real upstream HTTP servers and curl.
// Checks /config_dump (versions, error_state after a NACK), /clusters (hosts, health, rq_total), /stats,
// /stats?format=json and /stats/prometheus on the admin and the stats port against the traffic sent, loopback-only
// admin, POST-only endpoints, and /quitquitquit. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { startAdmin } from '../../src/proxy/admin/index.js';
import { freePort, MeshWorkDir, ROOT, run, serviceYaml, sleep, startControlPlane, syncStatus, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const NODE_ID = 'e2e-admin';
const OK_CLUSTER = 'outbound|9080||ok.default.svc.cluster.local';
const ERR_CLUSTER = 'outbound|9081||err.default.svc.cluster.local';

// The launcher: a `weft proxy` process built on the Proxy class with every port given (the CLI has no stats-port
// wiring of its own yet). Prints `STARTED <ports json>`; exits 0 once the proxy has shut down.
const LAUNCHER = `
const [proxyUrl, cliUrl, argsJson] = process.argv.slice(1);
const { Proxy } = await import(proxyUrl);
const { proxyMetadata } = await import(cliUrl);
const { pino } = await import('pino');
const a = JSON.parse(argsJson);
const logger = pino({ level: 'info' }, pino.destination({ dest: 2, sync: true }));
const proxy = new Proxy({
  xds: a.xds,
  node: { id: a.id, metadata: proxyMetadata({ namespace: 'default', serviceAccount: 'default', labels: { app: 'client' }, workloadPort: [], outboundPort: a.outbound, inboundPort: 15006, statsPort: a.stats }), userAgentName: 'weft' },
  healthPort: a.health, adminPort: a.admin, statsPort: a.stats, drainTimeoutMs: 1000, version: 'weft-e2e', logger,
});
await proxy.start();
process.stdout.write('STARTED ' + JSON.stringify({ admin: proxy.adminPort, health: proxy.healthPort, stats: proxy.statsPort }) + '\\n');
process.on('SIGTERM', () => void proxy.shutdown());
await proxy.closed;
process.exit(0);
`;

/** curl over one keep-alive connection for a URL range; returns the status codes. */
async function curlCodes(proxyUrl: string, url: string): Promise<string[]> {
  const r = await run('curl', ['-s', '-S', '-o', '/dev/null', '-w', '%{http_code}\\n', '--max-time', '20', '-x', proxyUrl, url]);
  assert.equal(r.status, 0, r.stderr.toString());
  return r.stdout.toString().trim().split('\n');
}

/** Prometheus text → `name{sorted labels}` → value. */
function parseProm(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    assert.ok(m, `not a Prometheus sample line: ${line}`);
    const labels = m[2] ? [...m[2].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((x) => `${x[1]}=${x[2]}`).sort() : [];
    out.set(`${m[1]}{${labels.join(',')}}`, Number(m[3]));
  }
  return out;
}

function key(name: string, labels: Record<string, string>): string {
  return `${name}{${Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join(',')}}`;
}

type Json = Record<string, unknown>;

describe('weft proxy: admin API and stats end to end', () => {
  const mesh = new MeshWorkDir('weft-admin-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  let cpHttp = '';
  let proxyUrl = '';
  let outboundPort = 0;
  let ports = { admin: 0, health: 0, stats: 0 };
  const upstreams: Server[] = [];
  let okPort = 0;
  let errPort = 0;
  const admin = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${ports.admin}${path}`, init);

  async function upstream(status: number): Promise<number> {
    const s = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(status, { 'content-type': 'text/plain' });
        res.end(`status ${status}`);
      });
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    upstreams.push(s);
    return (s.address() as AddressInfo).port;
  }

  function meshYaml(): string {
    const svc = (name: string, port: number) => serviceYaml(name, { name: 'http', port });
    const we = (name: string, port: number) => workloadEntryYaml(`${name}-1`, { app: name }, 'http', port);
    return yamlDocuments([svc('ok', 9080), we('ok', okPort), svc('err', 9081), we('err', errPort)]);
  }

  function okVs(headerValue: string): string {
    return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ok, namespace: default}\nspec:\n  hosts: [ok]\n  http:\n  - route: [{destination: {host: ok}}]\n    headers:\n      request:\n        set: {x-extra: "${headerValue}"}\n`;
  }

  const rdsStatus = async () => (await syncStatus(cpHttp, NODE_ID))?.RDS;

  async function promFrom(port: number): Promise<Map<string, number>> {
    const res = await fetch(`http://127.0.0.1:${port}/stats/prometheus`);
    assert.equal(res.status, 200);
    return parseProm(await res.text());
  }

  async function statsJson(): Promise<Map<string, number>> {
    const res = await admin('/stats?format=json');
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const body = (await res.json()) as { stats: Array<{ name?: string; value?: number }> };
    const m = new Map<string, number>();
    for (const s of body.stats) if (s.name !== undefined && typeof s.value === 'number') m.set(s.name, s.value);
    return m;
  }

  before(async () => {
    okPort = await upstream(200);
    errPort = await upstream(500);
    mesh.writeConfig('mesh.yaml', meshYaml());
    mesh.writeConfig('ok-vs.yaml', okVs('v1'));
    const cpAddr = await startControlPlane(cp, mesh.config);
    cpHttp = cpAddr.http;
    outboundPort = await freePort();
    proxyUrl = `http://127.0.0.1:${outboundPort}`;
    const args = { xds: cpAddr.xds, id: NODE_ID, outbound: outboundPort, admin: 0, health: 0, stats: 0 };
    const proxyJs = pathToFileURL(join(ROOT, 'dist', 'src', 'proxy', 'proxy.js')).href;
    const cliJs = pathToFileURL(join(ROOT, 'dist', 'src', 'cli', 'commands', 'proxy.js')).href;
    const started = await proxy.startNode(['--input-type=module', '-e', LAUNCHER, proxyJs, cliJs, JSON.stringify(args)], /STARTED (\{.*\})\n/, 'proxy');
    ports = JSON.parse(started[1]!) as typeof ports;
    await waitProxyReady(ports.health, proxy);
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    for (const s of upstreams) {
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
    mesh.remove();
  });

  test('/ready, /server_info and /healthz/ready agree: LIVE', async () => {
    const ready = await admin('/ready');
    assert.equal(ready.status, 200);
    assert.equal(await ready.text(), 'LIVE\n');
    const info = (await (await admin('/server_info')).json()) as Json;
    assert.equal(info.state, 'LIVE');
    assert.equal(info.version, 'weft-e2e');
    assert.equal((info.node as Json).id, NODE_ID);
    assert.equal((await fetch(`http://127.0.0.1:${ports.health}/healthz/ready`)).status, 200);
  });

  test('/config_dump shows the listeners, clusters and routes in force with their versions', async () => {
    const res = await admin('/config_dump');
    assert.equal(res.status, 200);
    const dump = (await res.json()) as { configs: Json[] };
    const byType = new Map(dump.configs.map((c) => [String(c['@type']).split('/').pop(), c]));
    assert.deepEqual([...byType.keys()], ['envoy.admin.v3.ClustersConfigDump', 'envoy.admin.v3.ListenersConfigDump', 'envoy.admin.v3.RoutesConfigDump']);

    const clusters = byType.get('envoy.admin.v3.ClustersConfigDump')!;
    // Type-level version_info: the version of the last response the proxy ACKed (its xDS client's state).
    const xds = (await (await admin('/xds')).json()) as { types: Record<string, { ackedVersion?: string }> };
    const ackedOf = (t: string) => xds.types[`type.googleapis.com/envoy.config.${t}`]?.ackedVersion;
    assert.ok(ackedOf('cluster.v3.Cluster') !== undefined);
    assert.equal(clusters.version_info, ackedOf('cluster.v3.Cluster'), 'CDS version_info: the last ACKed version');
    const active = clusters.dynamic_active_clusters as Array<{ version_info: string; cluster: Json; last_updated: string; client_status: string }>;
    const ok = active.find((c) => c.cluster.name === OK_CLUSTER);
    assert.ok(ok, `${OK_CLUSTER} in ${active.map((c) => c.cluster.name).join(', ')}`);
    assert.equal(ok.cluster['@type'], 'type.googleapis.com/envoy.config.cluster.v3.Cluster');
    assert.ok(ok.version_info.length > 0);
    assert.match(ok.last_updated, /^\d{4}-\d\d-\d\dT/);
    assert.equal(ok.client_status, 'ACKED');
    assert.ok(active.some((c) => c.cluster.name === ERR_CLUSTER));

    const listeners = byType.get('envoy.admin.v3.ListenersConfigDump')!;
    assert.equal(listeners.version_info, ackedOf('listener.v3.Listener'), 'LDS version_info: the last ACKed version');
    const dl = (listeners.dynamic_listeners as Array<{ name: string; active_state: { version_info: string; listener: Json } }>).find((l) => l.name === 'outbound');
    assert.ok(dl, 'the outbound listener');
    assert.ok(dl.active_state.version_info.length > 0);
    const addr = (dl.active_state.listener.address as { socket_address: { address: string; port_value: number } }).socket_address;
    assert.deepEqual(addr, { address: '127.0.0.1', port_value: outboundPort });

    const routes = byType.get('envoy.admin.v3.RoutesConfigDump')!;
    const rc = (routes.dynamic_route_configs as Array<{ version_info: string; route_config: Json; error_state?: Json }>).find((r) => r.route_config.name === 'outbound');
    assert.ok(rc, 'the outbound route configuration');
    assert.ok(rc.version_info.length > 0, 'the resource version');
    assert.equal(rc.error_state, undefined);

    // Envoy's query parameters work on the live dump.
    const only = (await (await admin('/config_dump?resource=dynamic_active_clusters&name_regex=.*ok.*')).json()) as { configs: Array<{ cluster: Json }> };
    assert.deepEqual(
      only.configs.map((c) => c.cluster.name),
      [OK_CLUSTER],
    );
    const eds = (await (await admin('/config_dump?include_eds')).json()) as { configs: Json[] };
    const ep = eds.configs.find((c) => String(c['@type']).endsWith('EndpointsConfigDump'))!;
    const cla = (ep.dynamic_endpoint_configs as Array<{ endpoint_config: { cluster_name: string; endpoints: Array<{ lb_endpoints: Json[] }> } }>).find(
      (e) => e.endpoint_config.cluster_name === OK_CLUSTER,
    );
    assert.ok(cla, 'the ok endpoints with include_eds');
    assert.match(JSON.stringify(cla.endpoint_config.endpoints), new RegExp(`"port_value":${okPort}`));
  });

  test('traffic is counted: /clusters, /stats, /stats?format=json and /stats/prometheus on both ports', async () => {
    const before = await statsJson();
    const listenerCx = `listener.127.0.0.1_${outboundPort}.downstream_cx_total`;
    const okCodes = await curlCodes(proxyUrl, 'http://ok:9080/item/[1-7]');
    assert.deepEqual(okCodes, Array(7).fill('200'));
    const errCodes = await curlCodes(proxyUrl, 'http://err:9081/fail/[1-3]');
    assert.deepEqual(errCodes, Array(3).fill('500'));

    // /clusters: the endpoint with its health and request count.
    const text = await (await admin('/clusters')).text();
    const host = `${OK_CLUSTER}::127.0.0.1:${okPort}`;
    assert.match(text, new RegExp(`^${escapeRe(host)}::rq_total::7$`, 'm'));
    assert.match(text, new RegExp(`^${escapeRe(host)}::rq_success::7$`, 'm'));
    assert.match(text, new RegExp(`^${escapeRe(host)}::health_flags::healthy$`, 'm'));
    assert.match(text, new RegExp(`^${escapeRe(`${ERR_CLUSTER}::127.0.0.1:${errPort}`)}::rq_error::3$`, 'm'));
    assert.match(text, new RegExp(`^${escapeRe(OK_CLUSTER)}::default_priority::max_connections::\\d+$`, 'm'));
    assert.match(text, new RegExp(`^${escapeRe(OK_CLUSTER)}::added_via_api::true$`, 'm'));
    const cj = (await (await admin('/clusters?format=json')).json()) as { cluster_statuses: Array<{ name: string; host_statuses: Array<{ stats: Array<{ name: string; value?: string }>; health_status: Json }> }> };
    const okStatus = cj.cluster_statuses.find((c) => c.name === OK_CLUSTER)!;
    assert.equal(okStatus.host_statuses.length, 1);
    assert.equal(okStatus.host_statuses[0]!.stats.find((s) => s.name === 'rq_total')?.value, '7');
    assert.equal(okStatus.host_statuses[0]!.health_status.eds_health_status, 'HEALTHY');

    // /stats text and JSON.
    const statsText = await (await admin('/stats')).text();
    assert.match(statsText, new RegExp(`^cluster\\.${escapeRe(OK_CLUSTER)}\\.upstream_rq_total: 7$`, 'm'));
    assert.match(statsText, new RegExp(`^cluster\\.${escapeRe(ERR_CLUSTER)}\\.upstream_rq_500: 3$`, 'm'));
    assert.match(statsText, new RegExp(`^cluster\\.${escapeRe(OK_CLUSTER)}\\.upstream_rq_time: P0\\(`, 'm'));
    const after = await statsJson();
    const delta = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    assert.equal(delta('http.outbound.downstream_rq_total'), 10);
    assert.equal(delta('http.outbound.downstream_rq_2xx'), 7);
    assert.equal(delta('http.outbound.downstream_rq_5xx'), 3);
    assert.equal(delta('http.outbound.downstream_cx_total'), 2, 'one connection per curl run');
    assert.equal(delta(listenerCx), 2);
    assert.equal(after.get(`cluster.${OK_CLUSTER}.upstream_rq_2xx`), 7);
    assert.equal(after.get(`cluster.${ERR_CLUSTER}.upstream_rq_5xx`), 3);
    assert.ok((after.get(`cluster.${OK_CLUSTER}.upstream_cx_total`) ?? 0) >= 1);
    assert.equal(after.get(`cluster.${OK_CLUSTER}.upstream_cx_active`), 1, 'the kept-alive upstream connection');

    // Prometheus, on the admin port and on the stats port: the same numbers.
    for (const port of [ports.admin, ports.stats]) {
      const p = await promFrom(port);
      const ok = { envoy_cluster_name: OK_CLUSTER };
      const err = { envoy_cluster_name: ERR_CLUSTER };
      assert.equal(p.get(key('envoy_cluster_upstream_rq_total', ok)), 7, `port ${port}`);
      assert.equal(p.get(key('envoy_cluster_upstream_rq_total', err)), 3);
      assert.equal(p.get(key('envoy_cluster_upstream_rq_xx', { ...ok, envoy_response_code_class: '2' })), 7);
      assert.equal(p.get(key('envoy_cluster_upstream_rq_xx', { ...err, envoy_response_code_class: '5' })), 3);
      assert.equal(p.get(key('envoy_cluster_upstream_rq', { ...ok, envoy_response_code: '200' })), 7);
      assert.equal(p.get(key('envoy_cluster_upstream_rq_time_count', ok)), 7);
      assert.equal(p.get(key('envoy_cluster_upstream_cx_active', ok)), 1);
      const hcm = { envoy_http_conn_manager_prefix: 'outbound' };
      assert.equal(p.get(key('envoy_http_downstream_rq_xx', { ...hcm, envoy_response_code_class: '2' })), after.get('http.outbound.downstream_rq_2xx'));
      assert.equal(p.get(key('envoy_http_downstream_rq_xx', { ...hcm, envoy_response_code_class: '5' })), after.get('http.outbound.downstream_rq_5xx'));
      assert.equal(p.get(key('envoy_http_downstream_rq_total', hcm)), after.get('http.outbound.downstream_rq_total'));
      assert.equal(p.get(key('envoy_http_downstream_rq_time_count', hcm)), after.get('http.outbound.downstream_rq_total'));
      assert.equal(p.get(key('envoy_listener_downstream_cx_total', { envoy_listener_address: `127.0.0.1_${outboundPort}` })), after.get(listenerCx));
    }
    // The stats port serves nothing else.
    assert.equal((await fetch(`http://127.0.0.1:${ports.stats}/stats`)).status, 404);
    assert.equal((await fetch(`http://127.0.0.1:${ports.stats}/quitquitquit`, { method: 'POST' })).status, 404);
  });

  test('a rejected RDS update shows as error_state in /config_dump; the good version stays in force', async () => {
    const good = await rdsStatus();
    type RouteDump = { configs: Array<{ version_info: string; route_config: Json }> };
    const goodDump = (await (await admin('/config_dump?resource=dynamic_route_configs')).json()) as RouteDump;
    const goodVersion = goodDump.configs.find((c) => c.route_config.name === 'outbound')!.version_info;
    mesh.writeConfig('ok-vs.yaml', okVs('%NOT_A_COMMAND%'));
    let st = good;
    for (let i = 0; i < 400 && !(st && st.state === 'NACKED' && st.sentVersion !== good?.sentVersion); i++) {
      await sleep(50);
      st = await rdsStatus();
    }
    assert.equal(st?.state, 'NACKED', JSON.stringify(st));
    const dump = (await (await admin('/config_dump?resource=dynamic_route_configs')).json()) as {
      configs: Array<{ version_info: string; route_config: Json; client_status: string; error_state?: { details: string; version_info: string; failed_configuration: Json; last_update_attempt: string } }>;
    };
    const rc = dump.configs.find((c) => c.route_config.name === 'outbound')!;
    assert.equal(rc.version_info, goodVersion, 'the accepted version is still the one in force');
    assert.ok(rc.error_state, 'error_state is set');
    assert.match(rc.error_state.details, /route_config "outbound": .*unknown command %NOT_A_COMMAND%/);
    assert.ok(rc.error_state.version_info !== '' && rc.error_state.version_info !== goodVersion, 'the rejected version');
    assert.equal(rc.error_state.failed_configuration['@type'], 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration');
    assert.match(JSON.stringify(rc.error_state.failed_configuration), /%NOT_A_COMMAND%/);
    assert.match(rc.error_state.last_update_attempt, /^\d{4}-/);
    assert.equal(rc.client_status, 'NACKED');
    assert.doesNotMatch(JSON.stringify(rc.route_config), /%NOT_A_COMMAND%/, 'the in-force config is the good one');
    assert.deepEqual(await curlCodes(proxyUrl, 'http://ok:9080/still'), ['200']);

    // Fixed: the error goes away.
    const nacked = st?.sentVersion;
    mesh.writeConfig('ok-vs.yaml', okVs('v2'));
    for (let i = 0; i < 400 && !(st && st.state === 'SYNCED' && st.sentVersion !== nacked && st.ackedVersion === st.sentVersion); i++) {
      await sleep(50);
      st = await rdsStatus();
    }
    const fixed = (await (await admin('/config_dump?resource=dynamic_route_configs')).json()) as typeof dump;
    const rc2 = fixed.configs.find((c) => c.route_config.name === 'outbound')!;
    assert.equal(rc2.error_state, undefined);
    assert.notEqual(rc2.version_info, goodVersion);
    assert.notEqual(rc2.version_info, rc.error_state.version_info);
    assert.equal(rc2.client_status, 'ACKED');
  });

  test('the admin API is loopback only; the stats port follows Istio (all addresses)', async () => {
    await assert.rejects(startAdmin({ host: '0.0.0.0', port: 0, handlers: {} }), /not a loopback address/);
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)?.address;
    if (external === undefined) return; // no non-loopback address on this host: nothing more to try
    const tryConnect = (port: number) =>
      new Promise<string>((resolve) => {
        const s = connect({ host: external, port });
        s.once('connect', () => {
          s.destroy();
          resolve('connected');
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      });
    assert.equal(await tryConnect(ports.admin), 'ECONNREFUSED', `admin on ${external}`);
    assert.equal(await tryConnect(ports.stats), 'connected', `stats port on ${external}`);
  });

  test('state-changing endpoints are POST only; /logging changes the level', async () => {
    for (const path of ['/quitquitquit', '/logging', '/healthcheck/fail', '/reset_counters']) {
      const res = await admin(path);
      assert.equal(res.status, 405, path);
      assert.equal(await res.text(), 'Method GET not allowed, POST required.');
    }
    const lg = await admin('/logging?level=debug', { method: 'POST' });
    assert.equal(lg.status, 200);
    assert.match(await lg.text(), /active loggers:\n {2}main: debug\n/);
    const back = await admin('/logging?main=info', { method: 'POST' });
    assert.match(await back.text(), / {2}main: info\n/);
    assert.equal((await admin('/nope')).status, 404);
    // The process is still serving after all that.
    assert.equal((await admin('/ready')).status, 200);
  });

  test('POST /healthcheck/fail turns /ready and /healthz/ready to 503; /healthcheck/ok back', async () => {
    assert.equal((await admin('/healthcheck/fail', { method: 'POST' })).status, 200);
    const r = await admin('/ready');
    assert.equal(r.status, 503);
    assert.equal(await r.text(), 'DRAINING\n');
    assert.equal((await fetch(`http://127.0.0.1:${ports.health}/healthz/ready`)).status, 503);
    assert.equal((await admin('/healthcheck/ok', { method: 'POST' })).status, 200);
    assert.equal((await fetch(`http://127.0.0.1:${ports.health}/healthz/ready`)).status, 200);
  });

  test('POST /quitquitquit drains and the process exits 0', async () => {
    const res = await admin('/quitquitquit', { method: 'POST' });
    assert.equal(res.status, 200);
    assert.equal(await res.text(), 'OK\n');
    assert.equal(await proxy.exited(), 0);
  });
});

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
