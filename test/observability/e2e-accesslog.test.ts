// Access logs end to end: a real `weft control-plane` and `weft proxy`; logging is off until the mesh switches it on
// (MeshConfig accessLogFile / accessLogEncoding / accessLogFormat, then a Telemetry resource naming Istio's built-in
// `envoy` provider, with a filter), and each line is parsed: Istio's default text format and its default JSON
// labels, for HTTP through the outbound listener and TCP through an upstream (tcp_proxy) listener, to a file and to
// the proxy's stdout. Waits are bounded polling; no timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { eventually, send, Upstream } from '../helpers/http-upstream.js';
import { MeshWorkDir, serviceYaml, startControlPlane, startProxyOnFreePorts, WeftProcess, workloadEntryYaml, yamlDocuments, freePort } from '../helpers/mesh-processes.js';

/** Istio's default text format as a regular expression (one group per command). */
const ISTIO_LINE = new RegExp(
  '^\\[(?<start>[^\\]]+)\\] "(?<method>\\S+) (?<path>\\S+) (?<protocol>\\S+)" (?<code>\\d+) (?<flags>\\S+) (?<details>\\S+) (?<term>\\S+) ' +
    '"(?<failure>[^"]*)" (?<rx>\\S+) (?<tx>\\S+) (?<duration>\\S+) (?<svctime>\\S+) "(?<xff>[^"]*)" "(?<ua>[^"]*)" "(?<rid>[^"]*)" ' +
    '"(?<authority>[^"]*)" "(?<uhost>[^"]*)" (?<cluster>\\S+) (?<ulocal>\\S+) (?<dlocal>\\S+) (?<dremote>\\S+) (?<sni>\\S+) (?<route>\\S+)$',
);

function lines(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

/** A TCP echo server. */
class Echo {
  server!: Server;
  port = 0;
  async start(): Promise<void> {
    this.server = createServer((s) => {
      s.on('data', (d) => s.write(d));
      s.on('end', () => s.end());
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** One TCP exchange through the proxy: sends `msg`, waits for the echo, ends. */
function tcpExchange(port: number, msg: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port });
    let got = '';
    s.on('data', (d) => {
      got += d.toString();
      if (got.length >= msg.length) s.end();
    });
    s.on('close', () => resolve(got));
    s.on('error', reject);
    s.write(msg);
  });
}

describe('access logs', () => {
  const mesh = new MeshWorkDir('weft-accesslog-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const app = new Upstream('app');
  const gone = new Upstream('gone', (_req, res) => res.writeHead(404, { 'content-type': 'text/plain' }).end('gone'));
  const echo = new Echo();
  const logFile = join(mesh.work, 'access.log');
  let outbound = 0;
  let tcpPort = 0;
  let n = 0;

  const base = (): string[] => [
    serviceYaml('app', { name: 'http', port: 9080 }),
    workloadEntryYaml('app-1', { app: 'app' }, 'http', app.port),
    serviceYaml('tcpsvc', { name: 'tcp', port: 7000 }),
    workloadEntryYaml('tcpsvc-1', { app: 'tcpsvc' }, 'tcp', echo.port),
    serviceYaml('gone', { name: 'http', port: 9080 }),
    workloadEntryYaml('gone-1', { app: 'gone' }, 'http', gone.port),
  ];
  const meshConfig = (spec: string): void => mesh.writeConfig('meshconfig.yaml', `apiVersion: weft.dev/v1alpha1\nkind: MeshConfig\nmetadata: {name: mesh}\nspec:\n${spec}`);

  /** Sends HTTP requests (a new path each time) until one shows up in `read()`; returns that line. */
  async function loggedRequest(read: () => string, prefix: string, headers: Record<string, string> = {}): Promise<string> {
    let line = '';
    await eventually(
      async () => {
        const path = `/${prefix}-${++n}`;
        const r = await send(outbound, { path, headers: { host: 'app:9080', 'user-agent': 'weft-test', ...headers } }).catch(() => undefined);
        if (r?.status !== 200) return false;
        await eventually(() => read().includes(path), `${path} logged`, 3000).catch(() => undefined);
        line = lines(read()).find((l) => l.includes(`${path}`)) ?? '';
        return line !== '';
      },
      `a logged request (${prefix})`,
      30_000,
    );
    return line;
  }

  before(async () => {
    await app.start();
    await gone.start();
    await echo.start();
    tcpPort = await freePort();
    mesh.writeConfig('mesh.yaml', yamlDocuments(base()));
    const addr = await startControlPlane(cp, mesh.config);
    const ports = await startProxyOnFreePorts(proxy, (p) => [
      'proxy', '--xds', addr.xds, '--id', 'log-client', '--namespace', 'default', '--labels', 'app=client',
      '--outbound-port', String(p.outbound), '--admin-port', String(p.admin), '--health-port', String(p.health), '--stats-port', '0',
      '--upstream', `tcpsvc:7000=${tcpPort}`,
    ]);
    outbound = ports.outbound;
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    await app.stop();
    await gone.stop();
    await echo.stop();
    mesh.remove();
  });

  test('off by default: requests and connections are not logged', async () => {
    const r = await send(outbound, { path: '/before-logging', headers: { host: 'app:9080' } });
    assert.equal(r.status, 200);
    assert.equal(await tcpExchange(tcpPort, 'quiet'), 'quiet');
    assert.ok(!existsSync(logFile));
    assert.ok(!proxy.stdout.includes('/before-logging'));
  });

  test('MeshConfig accessLogFile: Istio default text format, HTTP', async () => {
    meshConfig(`  accessLogFile: ${logFile}\n`);
    const read = (): string => (existsSync(logFile) ? readFileSync(logFile, 'utf8') : '');
    const line = await loggedRequest(read, 'text', { 'x-forwarded-for': '10.0.0.9' });
    const m = ISTIO_LINE.exec(line);
    assert.ok(m?.groups, `an Istio-format line: ${line}`);
    const g = m.groups;
    assert.ok(!Number.isNaN(Date.parse(g.start!)), g.start);
    assert.equal(g.method, 'GET');
    assert.match(g.path!, /^\/text-\d+$/);
    assert.equal(g.protocol, 'HTTP/1.1');
    assert.equal(g.code, '200');
    assert.equal(g.flags, '-');
    assert.equal(g.details, 'via_upstream');
    assert.equal(g.term, '-');
    assert.equal(g.failure, '-');
    assert.equal(g.rx, '0');
    assert.ok(Number(g.tx) > 0, `bytes sent ${g.tx}`);
    assert.match(g.duration!, /^\d+$/);
    assert.match(g.svctime!, /^\d+$/);
    assert.equal(g.xff, '10.0.0.9');
    assert.equal(g.ua, 'weft-test');
    assert.match(g.rid!, /^[0-9a-f-]{36}$/);
    assert.equal(g.authority, 'app:9080');
    assert.equal(g.uhost, `127.0.0.1:${app.port}`);
    assert.equal(g.cluster, 'outbound|9080||app.default.svc.cluster.local');
    assert.match(g.ulocal!, /^127\.0\.0\.1:\d+$/);
    assert.equal(g.dlocal, `127.0.0.1:${outbound}`);
    assert.equal(g.dremote, '10.0.0.9:0', 'without use_remote_address: the x-forwarded-for address');
    assert.equal(g.sni, '-');
    assert.notEqual(g.route, '-');
    assert.ok(!read().includes('/before-logging'));
  });

  test('MeshConfig accessLogFile: TCP connections are logged with their byte counts', async () => {
    const read = (): string => readFileSync(logFile, 'utf8');
    const tcpLine = (): string | undefined => lines(read()).find((l) => l.includes('outbound|7000||tcpsvc.default.svc.cluster.local'));
    assert.equal(await tcpExchange(tcpPort, 'hello tcp'), 'hello tcp');
    await eventually(() => tcpLine() !== undefined, 'a TCP access log line');
    const m = ISTIO_LINE.exec(tcpLine()!);
    assert.ok(m?.groups, tcpLine());
    const g = m.groups;
    assert.equal(g.method, '-');
    assert.equal(g.protocol, '-');
    assert.equal(g.code, '0');
    assert.equal(g.rx, '9');
    assert.equal(g.tx, '9');
    assert.equal(g.uhost, `127.0.0.1:${echo.port}`);
    assert.equal(g.dlocal, `127.0.0.1:${tcpPort}`);
    assert.match(g.dremote!, /^127\.0\.0\.1:\d+$/);
  });

  test('MeshConfig accessLogEncoding JSON: Istio default labels with typed values', async () => {
    meshConfig(`  accessLogFile: ${logFile}\n  accessLogEncoding: JSON\n`);
    const read = (): string => readFileSync(logFile, 'utf8');
    const line = await loggedRequest(() => lines(read()).filter((l) => l.startsWith('{')).join('\n'), 'json');
    const j = JSON.parse(line) as Record<string, unknown>;
    assert.equal(j.method, 'GET');
    assert.equal(j.response_code, 200, 'a number, as Envoy json_format writes it');
    assert.equal(typeof j.duration, 'number');
    assert.equal(j.bytes_received, 0);
    assert.equal(j.upstream_cluster, 'outbound|9080||app.default.svc.cluster.local');
    assert.equal(j.upstream_host, `127.0.0.1:${app.port}`);
    assert.equal(j.response_flags, null, 'no flags: null');
    assert.equal(j.authority, 'app:9080');
    assert.equal(Object.keys(j).length, 24);
  });

  test('Telemetry resource: the built-in `envoy` provider logs to stdout, with a response code filter', async () => {
    meshConfig('  accessLogEncoding: TEXT\n');
    mesh.writeConfig(
      'telemetry.yaml',
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: weft-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
`,
    );
    const line = await loggedRequest(() => proxy.stdout, 'stdout');
    assert.ok(ISTIO_LINE.test(line), line);
    // Only errors from now on: a 200 is not logged, a 404 is.
    mesh.writeConfig(
      'telemetry.yaml',
      `apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: weft-system}
spec:
  accessLogging:
  - providers: [{name: envoy}]
    filter: {expression: "response.code >= 400"}
`,
    );
    let last = '';
    await eventually(
      async () => {
        const ok = `/filtered-ok-${++n}`;
        await send(outbound, { path: ok, headers: { host: 'app:9080' } }).catch(() => undefined);
        last = `/filtered-404-${++n}`;
        const r = await send(outbound, { path: last, headers: { host: 'gone:9080' } }).catch(() => undefined);
        if (r?.status !== 404) return false;
        await eventually(() => proxy.stdout.includes(last), `${last} logged`, 3000).catch(() => undefined);
        // Lines are written in order: the 200 sent just before the logged 404 must be missing.
        return proxy.stdout.includes(last) && !proxy.stdout.includes(ok);
      },
      'the filter in force',
      30_000,
    );
    const m = ISTIO_LINE.exec(lines(proxy.stdout).find((l) => l.includes(last))!);
    assert.equal(m?.groups?.code, '404');
    assert.equal(m?.groups?.cluster, 'outbound|9080||gone.default.svc.cluster.local');
    assert.equal(m?.groups?.details, 'via_upstream');
  });
});
