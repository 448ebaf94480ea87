// The admin server (src/proxy/admin/server.ts) over real sockets: endpoints, Envoy's method checks, the loopback
// default, /ready states, /server_info, /logging on pino loggers, /stats through curl and node:http.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { request } from 'node:http';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { create } from '@bufbuild/protobuf';
import { NodeSchema } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { isLoopback, startAdmin, type AdminServer, type InitState } from '../../src/proxy/admin/index.js';
import { HistogramUnit, StatsStore } from '../../src/proxy/stats/index.js';

const execFileP = promisify(execFile);

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function http(port: number, method: string, path: string, host = '127.0.0.1'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** curl, returning the status code and body. */
async function curl(url: string, ...args: string[]): Promise<{ status: number; body: string }> {
  const { stdout } = await execFileP('curl', ['-sS', '-w', '\n%{http_code}', ...args, url]);
  const i = stdout.lastIndexOf('\n');
  return { status: Number(stdout.slice(i + 1)), body: stdout.slice(0, i) };
}

describe('admin endpoints', () => {
  let admin: AdminServer;
  let base: string;
  let init: InitState = 'Initialized';
  let quits = 0;
  const hc: boolean[] = [];
  const store = new StatsStore();
  const devnull = { write() {} };
  const loggers = { main: pino({ level: 'info' }, devnull), xds: pino({ level: 'warn' }, devnull) };

  before(async () => {
    const cs = store.scope('cluster.outbound|9080||reviews.default.svc.cluster.local.');
    cs.counter('upstream_rq_total').add(3);
    cs.counter('upstream_rq_200').add(3);
    cs.counter('upstream_cx_none_healthy');
    cs.histogram('upstream_rq_time', HistogramUnit.Milliseconds).record(4);
    store.scope('listener.127.0.0.1:15001.').counter('downstream_cx_total').inc();
    admin = await startAdmin({
      port: 0,
      startTime: Date.now() - 42_000,
      handlers: {
        stats: store,
        initState: () => init,
        serverInfo: () => ({
          version: 'abc123/0.1.0/Clean/RELEASE/node',
          commandLineOptions: { concurrency: 2, serviceNode: 'sidecar~10.0.0.1~web.shop~shop.svc.cluster.local', logLevel: 'info' },
          node: create(NodeSchema, { id: 'sidecar~10.0.0.1~web.shop~shop.svc.cluster.local', cluster: 'web.shop' }),
        }),
        quit: () => quits++,
        loggers,
        onHealthcheck: (failed) => hc.push(failed),
      },
    });
    base = `http://127.0.0.1:${admin.port}`;
  });
  after(() => admin.close());

  test('binds 127.0.0.1 by default', () => {
    assert.equal(admin.address, '127.0.0.1');
    assert.ok(admin.port > 0);
  });

  test('/ready follows the init state and /healthcheck/fail', async () => {
    let r = await http(admin.port, 'GET', '/ready');
    assert.deepEqual([r.status, r.body], [200, 'LIVE\n']);
    assert.equal(r.headers['content-type'], 'text/plain; charset=UTF-8');
    assert.equal(r.headers['cache-control'], 'no-cache, max-age=0');
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    init = 'Uninitialized';
    r = await http(admin.port, 'GET', '/ready');
    assert.deepEqual([r.status, r.body], [503, 'PRE_INITIALIZING\n']);
    init = 'Initializing';
    r = await http(admin.port, 'GET', '/ready');
    assert.deepEqual([r.status, r.body], [503, 'INITIALIZING\n']);
    init = 'Initialized';

    r = await http(admin.port, 'POST', '/healthcheck/fail');
    assert.deepEqual([r.status, r.body], [200, 'OK\n']);
    assert.equal(admin.healthCheckFailed, true);
    r = await http(admin.port, 'GET', '/ready');
    assert.deepEqual([r.status, r.body], [503, 'DRAINING\n']);
    r = await http(admin.port, 'POST', '/healthcheck/ok');
    assert.deepEqual([r.status, r.body], [200, 'OK\n']);
    r = await http(admin.port, 'GET', '/ready');
    assert.deepEqual([r.status, r.body], [200, 'LIVE\n']);
    assert.deepEqual(hc, [true, false]);
  });

  test('state-changing endpoints require POST (405 with Envoy message), others take any method', async () => {
    for (const path of ['/quitquitquit', '/healthcheck/fail', '/healthcheck/ok', '/logging', '/reset_counters']) {
      const r = await http(admin.port, 'GET', path);
      assert.equal(r.status, 405, path);
      assert.equal(r.body, 'Method GET not allowed, POST required.');
    }
    const put = await http(admin.port, 'PUT', '/healthcheck/fail');
    assert.deepEqual([put.status, put.body], [405, 'Method PUT not allowed, POST required.']);
    assert.equal(admin.healthCheckFailed, false, 'a refused request changes nothing');
    assert.equal(quits, 0);
    const post = await http(admin.port, 'POST', '/ready');
    assert.equal(post.status, 200);
    const c = await curl(`${base}/quitquitquit`);
    assert.equal(c.status, 405);
  });

  test('POST /quitquitquit answers OK and then calls the quit handler', async () => {
    const r = await curl(`${base}/quitquitquit`, '-X', 'POST');
    assert.deepEqual(r, { status: 200, body: 'OK\n' });
    for (let i = 0; i < 100 && quits === 0; i++) await new Promise((res) => setImmediate(res));
    assert.equal(quits, 1);
  });

  test('/help lists endpoints sorted, POST ones marked, with parameters', async () => {
    const r = await http(admin.port, 'GET', '/help');
    assert.equal(r.status, 200);
    const lines = r.body.split('\n');
    assert.equal(lines[0], 'admin commands are:');
    const endpoints = lines.filter((l) => /^  \//.test(l)).map((l) => l.trim().split(':')[0]);
    assert.deepEqual(endpoints, [
      '/clusters',
      '/config_dump',
      '/healthcheck/fail (POST)',
      '/healthcheck/ok (POST)',
      '/help',
      '/logging (POST)',
      '/quitquitquit (POST)',
      '/ready',
      '/reset_counters (POST)',
      '/server_info',
      '/stats',
      '/stats/prometheus',
    ]);
    assert.ok(lines.includes('      include_eds: Dump currently loaded configuration including EDS. See the response definition for more information'));
    assert.ok(lines.some((l) => l.startsWith('      histogram_buckets: Histogram bucket display mode; One of (cumulative, disjoint, none)')));
  });

  test('an unknown path answers 404 with the help text', async () => {
    const r = await http(admin.port, 'GET', '/nope?x=1');
    assert.equal(r.status, 404);
    assert.ok(r.body.startsWith('invalid path. admin commands are:\n'));
    assert.equal((await http(admin.port, 'GET', '/stats/')).status, 404, 'paths match exactly');
  });

  test('/server_info: ServerInfo JSON with proto field names and defaults', async () => {
    const r = await http(admin.port, 'GET', '/server_info');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/json');
    const info = JSON.parse(r.body) as Record<string, unknown> & { command_line_options: Record<string, unknown>; node: Record<string, unknown> };
    assert.equal(info.version, 'abc123/0.1.0/Clean/RELEASE/node');
    assert.equal(info.state, 'LIVE');
    assert.match(info.uptime_current_epoch as string, /^4[2-9]s$/);
    assert.equal(info.uptime_all_epochs, info.uptime_current_epoch);
    assert.equal(info.hot_restart_version, 'disabled');
    assert.equal(info.command_line_options.concurrency, 2);
    assert.equal(info.command_line_options.service_node, 'sidecar~10.0.0.1~web.shop~shop.svc.cluster.local');
    assert.equal(info.command_line_options.log_level, 'info');
    assert.equal(info.command_line_options.config_path, '', 'defaults are printed');
    assert.equal(info.node.id, 'sidecar~10.0.0.1~web.shop~shop.svc.cluster.local');
  });

  test('/logging lists loggers and changes pino levels', async () => {
    let r = await http(admin.port, 'POST', '/logging');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'active loggers:\n  main: info\n  xds: warning\n\n');
    r = await http(admin.port, 'POST', '/logging?level=debug');
    assert.equal(r.status, 200);
    assert.equal(loggers.main.level, 'debug');
    assert.equal(loggers.xds.level, 'debug');
    assert.equal(r.body, 'active loggers:\n  main: debug\n  xds: debug\n\n');
    r = await http(admin.port, 'POST', '/logging?xds=critical');
    assert.equal(loggers.xds.level, 'fatal');
    assert.equal(loggers.main.level, 'debug');
    r = await http(admin.port, 'POST', '/logging?paths=main:off,xds:warning');
    assert.deepEqual([loggers.main.level, loggers.xds.level], ['silent', 'warn']);
    assert.match(r.body, /main: off\n  xds: warning/);
    loggers.main.level = 'info';
  });

  test('/logging errors: 400 with the reason and usage, nothing changed', async () => {
    const cases: Array<[string, string]> = [
      ['/logging?level=verbose', 'unknown logger level'],
      ['/logging?nosuch=debug', 'unknown logger name'],
      ['/logging?level=debug&main=info', 'invalid number of parameters'],
      ['/logging?paths=main:', 'empty logger name or empty logger level'],
      ['/logging?paths=main:debug,nosuch:info', 'unknown logger name'],
    ];
    for (const [path, msg] of cases) {
      const r = await http(admin.port, 'POST', path);
      assert.equal(r.status, 400, path);
      assert.ok(r.body.startsWith(`error: ${msg}\n\nusage: /logging?<name>=<level> (change single level)\n`), `${path}: ${r.body}`);
      assert.match(r.body, /^levels: trace debug info warning error critical off $/m);
    }
    assert.deepEqual([loggers.main.level, loggers.xds.level], ['info', 'warn']);
  });

  test('/stats via curl: text, filter, json, prometheus; errors are 400', async () => {
    const text = await curl(`${base}/stats`);
    assert.equal(text.status, 200);
    assert.match(text.body, /^cluster\.outbound\|9080\|\|reviews\.default\.svc\.cluster\.local\.upstream_rq_total: 3$/m);
    assert.match(text.body, /^listener\.127\.0\.0\.1_15001\.downstream_cx_total: 1$/m);
    const filtered = await curl(`${base}/stats?filter=downstream&usedonly`);
    assert.equal(filtered.body, 'listener.127.0.0.1_15001.downstream_cx_total: 1\n');
    const json = await curl(`${base}/stats?format=json&filter=rq_total`);
    assert.deepEqual(JSON.parse(json.body), { stats: [{ name: 'cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_total', value: 3 }] });
    const prom = await curl(`${base}/stats/prometheus`);
    assert.match(prom.body, /^envoy_cluster_upstream_rq\{envoy_response_code="200",envoy_cluster_name="outbound\|9080\|\|reviews\.default\.svc\.cluster\.local"\} 3$/m);
    assert.match(prom.body, /^envoy_cluster_upstream_rq_time_bucket\{envoy_cluster_name="outbound\|9080\|\|reviews\.default\.svc\.cluster\.local",le="5"\} 1$/m);
    const promViaStats = await curl(`${base}/stats?format=prometheus`);
    assert.equal(promViaStats.body, prom.body);
    const bad = await curl(`${base}/stats?filter=(`);
    assert.deepEqual(bad, { status: 400, body: 'Invalid re2 regex' });
    const badType = await curl(`${base}/stats/prometheus?histogram_buckets=disjoint`);
    assert.equal(badType.status, 400);
  });

  test('POST /reset_counters zeroes counters', async () => {
    const s = new StatsStore();
    const c = s.counter('c');
    c.add(5);
    const a = await startAdmin({ port: 0, handlers: { stats: s } });
    try {
      assert.equal((await http(a.port, 'POST', '/reset_counters')).body, 'OK\n');
      assert.equal(c.value, 0);
    } finally {
      await a.close();
    }
  });

  test('addHandler adds an endpoint (with method check); request() runs in-process', async () => {
    assert.equal(
      admin.addHandler('/drain_listeners', 'drain listeners', () => ({ status: 200, body: 'OK\n' }), { mutatesState: true }),
      true,
    );
    assert.equal(admin.addHandler('/drain_listeners', 'again', () => ({ status: 200, body: '' })), false);
    assert.equal(admin.addHandler('/bad?path', 'x', () => ({ status: 200, body: '' })), false);
    assert.equal((await http(admin.port, 'GET', '/drain_listeners')).status, 405);
    assert.equal((await http(admin.port, 'POST', '/drain_listeners')).body, 'OK\n');
    assert.match((await http(admin.port, 'GET', '/help')).body, /^  \/drain_listeners \(POST\): drain listeners$/m);
    assert.deepEqual(await admin.request('GET', '/ready'), { status: 200, body: 'LIVE\n' });
    assert.equal(admin.removeHandler('/drain_listeners'), true);
    assert.equal(admin.removeHandler('/ready'), false, 'built-in endpoints stay');
    assert.equal((await http(admin.port, 'POST', '/drain_listeners')).status, 404);
  });
});

describe('admin binding', () => {
  test('refuses a non-loopback host unless allowed', async () => {
    await assert.rejects(startAdmin({ host: '0.0.0.0', port: 0, handlers: {} }), /refusing to listen on 0\.0\.0\.0: not a loopback address/);
    await assert.rejects(startAdmin({ host: '10.1.2.3', port: 0, handlers: {} }), /not a loopback address/);
    const open = await startAdmin({ host: '0.0.0.0', port: 0, allowNonLoopback: true, handlers: {} });
    try {
      assert.equal(open.address, '0.0.0.0');
      assert.equal((await http(open.port, 'GET', '/ready')).body, 'LIVE\n');
    } finally {
      await open.close();
    }
  });

  test('loopback addresses and names', () => {
    for (const h of ['127.0.0.1', '127.8.9.10', '::1', '[::1]', 'localhost', '::ffff:127.0.0.1']) assert.equal(isLoopback(h), true, h);
    for (const h of ['0.0.0.0', '::', '10.0.0.1', '192.168.1.1', 'example.com', '::ffff:10.0.0.1', '128.0.0.1']) assert.equal(isLoopback(h), false, h);
  });

  test('a taken port makes startAdmin reject', async () => {
    const a = await startAdmin({ port: 0, handlers: {} });
    try {
      await assert.rejects(startAdmin({ port: a.port, handlers: {} }), /EADDRINUSE/);
    } finally {
      await a.close();
    }
  });

  test('without a stats store /stats is empty', async () => {
    const a = await startAdmin({ port: 0, handlers: {} });
    try {
      assert.deepEqual([(await http(a.port, 'GET', '/stats')).body, (await http(a.port, 'GET', '/stats?format=json')).body], ['', '{"stats":[]}']);
    } finally {
      await a.close();
    }
  });
});
