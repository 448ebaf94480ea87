// `weft proxy` end to end over HTTP/1.1: the real `weft control-plane` and `weft proxy` commands in child
// processes, real upstream HTTP servers (node:http on 127.0.0.1, each saying who answered and what it received),
// and curl as the client (`-x` = HTTP_PROXY style absolute-form requests, or a Host header). The mesh config is
// YAML in the control plane's watched directory; every config step waits until the control plane's /debug/syncz
// shows the proxy ACKed (or NACKed) the new version. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { curl, parseCurl, Upstream, type CurlResult } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, proxyArgs, run, serviceYaml, sleep, startControlPlane, syncStatus, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments, type TypeStatus } from '../helpers/mesh-processes.js';

const NODE_ID = 'e2e-client';

// ---------------------------------------------------------------------------------------------------------------

describe('weft proxy: HTTP/1.1 end to end', () => {
  const mesh = new MeshWorkDir('weft-proxy-e2e-');
  const work = mesh.work;
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  let cpHttp = '';
  let proxyUrl = '';
  let healthPort = 0;
  let adminPort = 0;

  const v1 = new Upstream('reviews-v1');
  const v2 = new Upstream('reviews-v2');
  // flaky: 503 for the first two attempts of every request id, then 200.
  const flaky = new Upstream('flaky', (req, res, body, u) => {
    const id = req.headers['x-request-id'];
    if (u.count((s) => s.headers['x-request-id'] === id) <= 2) {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('try again');
    } else u.reply(res, body);
  });
  // slow: answers after 3 s (longer than its route timeout), or at once for /fast.
  const slow = new Upstream('slow', (req, res, body, u) => {
    const t = setTimeout(() => u.reply(res, body), req.url?.startsWith('/fast') ? 0 : 3000);
    res.on('close', () => clearTimeout(t));
  });
  // held: answers /hold/* only when released (to keep a request in flight across a config change).
  const releases: Array<() => void> = [];
  const held = new Upstream('held', (req, res, body, u) => {
    if (req.url?.startsWith('/hold')) releases.push(() => u.reply(res, body));
    else u.reply(res, body);
  });
  const upstreams = [v1, v2, flaky, slow, held];

  const writeConfig = (name: string, text: string) => mesh.writeConfig(name, text);

  function meshYaml(): string {
    const svc = (name: string, port: number) => serviceYaml(name, { name: 'http', port });
    const we = (name: string, app: string, version: string, port: number) => workloadEntryYaml(name, { app, version }, 'http', port);
    return yamlDocuments([
      svc('reviews', 9080),
      we('reviews-v1', 'reviews', 'v1', v1.port),
      we('reviews-v2', 'reviews', 'v2', v2.port),
      svc('flaky', 9081),
      we('flaky-1', 'flaky', 'v1', flaky.port),
      svc('slow', 9082),
      we('slow-1', 'slow', 'v1', slow.port),
      svc('held', 9083),
      we('held-1', 'held', 'v1', held.port),
      svc('empty', 9084),
      `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n`,
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: flaky, namespace: default}\nspec:\n  hosts: [flaky]\n  http:\n  - match: [{uri: {prefix: /urx}}]\n    route: [{destination: {host: flaky}}]\n    retries: {attempts: 1, retryOn: 5xx}\n  - route: [{destination: {host: flaky}}]\n    retries: {attempts: 3, retryOn: 5xx}\n`,
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: slow, namespace: default}\nspec:\n  hosts: [slow]\n  http:\n  - route: [{destination: {host: slow}}]\n    timeout: 0.5s\n`,
    ]);
  }

  function reviewsVs(extraHeaderSet = ''): string {
    const set = extraHeaderSet ? `    headers:\n      request:\n        set: {x-extra: "${extraHeaderSet}"}\n` : '';
    return `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - match: [{uri: {prefix: /split}}]
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
  - route: [{destination: {host: reviews, subset: v1}}]
${set}`;
  }

  function heldVs(subsetless: 'held' | 'reviews'): string {
    return `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: held, namespace: default}\nspec:\n  hosts: [held]\n  http:\n  - route: [{destination: {host: ${subsetless}, port: {number: ${subsetless === 'held' ? 9083 : 9080}}}}]\n`;
  }

  const status = () => syncStatus(cpHttp, NODE_ID);

  /** Waits until the proxy answered (ACK or NACK) an RDS version other than `previous`. */
  async function nextRds(previous: string | undefined, want: 'ack' | 'nack'): Promise<TypeStatus> {
    for (let i = 0; i < 400; i++) {
      const rds = (await status())?.RDS;
      if (rds && rds.sentVersion !== previous) {
        if (want === 'ack' && rds.state === 'SYNCED' && rds.ackedVersion === rds.sentVersion) return rds;
        if (want === 'nack' && rds.state === 'NACKED') return rds;
      }
      await sleep(50);
    }
    throw new Error(`RDS never ${want}ed a new version: ${JSON.stringify(await status())}\n${proxy.log()}`);
  }

  before(async () => {
    for (const u of upstreams) await u.start();
    writeConfig('mesh.yaml', meshYaml());
    writeConfig('reviews-vs.yaml', reviewsVs());
    writeConfig('held-vs.yaml', heldVs('held'));
    const cpAddr = await startControlPlane(cp, mesh.config);
    cpHttp = cpAddr.http;
    const outbound = await freePort();
    healthPort = await freePort();
    adminPort = await freePort();
    proxyUrl = `http://127.0.0.1:${outbound}`;
    const ports = ['--outbound-port', String(outbound), '--health-port', String(healthPort), '--admin-port', String(adminPort), '--stats-port', '0'];
    await proxy.start(proxyArgs(cpAddr.xds, NODE_ID, ports), /weft proxy .* started/, 'proxy');
    await waitProxyReady(healthPort, proxy);
  });

  after(async () => {
    for (const r of releases.splice(0)) r();
    await proxy.stop();
    await cp.stop();
    for (const u of upstreams) await u.stop();
    mesh.remove();
  });

  test('routes by host: absolute-form (HTTP_PROXY) and Host header; Envoy headers both ways', async () => {
    const before = v1.seen.length + v2.seen.length;
    const a = await curl('http://reviews:9080/hello?x=1', ['-x', proxyUrl]);
    assert.equal(a.status, 200);
    const body = JSON.parse(a.body.toString()) as { name: string; url: string; headers: Record<string, string> };
    assert.equal(body.name, 'reviews-v1');
    assert.equal(body.url, '/hello?x=1');
    assert.equal(body.headers.host, 'reviews:9080');
    assert.match(body.headers['x-request-id']!, /^[0-9a-f-]{36}$/);
    assert.equal(body.headers['x-forwarded-proto'], 'http');
    assert.equal(body.headers['x-envoy-attempt-count'], '1');
    assert.equal(body.headers['proxy-connection'], undefined, 'hop-by-hop header removed');
    assert.match(a.headers['x-envoy-upstream-service-time']!, /^\d+$/);
    assert.equal(a.headers['x-upstream'], 'reviews-v1');

    // Host header, short and long names, and a client-supplied x-request-id is kept (use_remote_address false).
    for (const host of ['reviews:9080', 'reviews.default.svc.cluster.local:9080']) {
      const r = await curl(`${proxyUrl}/by-host`, ['-H', `Host: ${host}`, '-H', 'x-request-id: my-id-1', '-H', 'x-forwarded-for: 10.9.9.9']);
      assert.equal(r.status, 200);
      const b = JSON.parse(r.body.toString()) as { headers: Record<string, string> };
      assert.equal(b.headers['x-request-id'], 'my-id-1');
      assert.equal(b.headers['x-forwarded-for'], '10.9.9.9', 'XFF not appended with use_remote_address false');
    }
    assert.equal(v1.seen.length + v2.seen.length, before + 3);
  });

  test('header match routes end-user: jason to v2', async () => {
    const r = await curl('http://reviews:9080/profile', ['-x', proxyUrl, '-H', 'end-user: jason']);
    assert.equal(r.headers['x-upstream'], 'reviews-v2');
    const other = await curl('http://reviews:9080/profile', ['-x', proxyUrl, '-H', 'end-user: bob']);
    assert.equal(other.headers['x-upstream'], 'reviews-v1');
  });

  test('weighted 80/20 split over 1,000 requests (keep-alive, one curl connection)', async () => {
    const v1Before = v1.count((s) => s.url.startsWith('/split'));
    const v2Before = v2.count((s) => s.url.startsWith('/split'));
    const r = await run('curl', ['-s', '-S', '-o', '/dev/null', '-w', '%{http_code}\\n', '-x', proxyUrl, 'http://reviews:9080/split/[1-1000]']);
    assert.equal(r.status, 0, r.stderr.toString());
    const codes = r.stdout.toString().trim().split('\n');
    assert.equal(codes.length, 1000);
    assert.ok(codes.every((c) => c === '200'), 'every request succeeded');
    const n1 = v1.count((s) => s.url.startsWith('/split')) - v1Before;
    const n2 = v2.count((s) => s.url.startsWith('/split')) - v2Before;
    assert.equal(n1 + n2, 1000);
    // Binomial(1000, 0.8): sd ≈ 12.6; ±60 is more than 4.7 sd.
    assert.ok(n1 >= 740 && n1 <= 860, `v1 got ${n1} of 1000`);
  });

  test('keep-alive: upstream connections are reused across client connections', async () => {
    const before = v1.seen.length;
    for (let i = 0; i < 5; i++) assert.equal((await curl('http://reviews:9080/reuse', ['-x', proxyUrl])).status, 200);
    const ports = new Set(v1.seen.slice(before).map((s) => s.remotePort));
    assert.equal(v1.seen.length - before, 5);
    assert.equal(ports.size, 1, `5 sequential requests from 5 client connections used ${ports.size} upstream connections`);
  });

  test('retries on 503: the upstream sees 3 attempts, the client one 200', async () => {
    const r = await curl('http://flaky:9081/order', ['-x', proxyUrl, '-H', 'x-request-id: retry-1']);
    assert.equal(r.status, 200);
    const attempts = flaky.seen.filter((s) => s.headers['x-request-id'] === 'retry-1');
    assert.equal(attempts.length, 3);
    assert.deepEqual(
      attempts.map((s) => s.headers['x-envoy-attempt-count']),
      ['1', '2', '3'],
    );
  });

  test('retries exhausted: the last 503 is passed on with flag URX', async () => {
    // /urx allows 1 retry; flaky fails the first two attempts of every request id.
    const r = await curl('http://flaky:9081/urx', ['-x', proxyUrl, '-H', 'x-request-id: retry-2', '-H', 'x-weft-debug: 1']);
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'try again', "the upstream's own answer");
    assert.equal(r.headers['x-weft-response-flags'], 'URX');
    assert.equal(flaky.count((s) => s.headers['x-request-id'] === 'retry-2'), 2);
  });

  test('route timeout → 504 UT with the debug flag header', async () => {
    const r = await curl('http://slow:9082/wait', ['-x', proxyUrl, '-H', 'x-weft-debug: 1']);
    assert.equal(r.status, 504);
    assert.equal(r.body.toString(), 'upstream request timeout');
    assert.equal(r.headers['x-weft-response-flags'], 'UT');
    const fast = await curl('http://slow:9082/fast', ['-x', proxyUrl]);
    assert.equal(fast.status, 200);
  });

  test('no endpoints → 503 UH "no healthy upstream"; flags only with the debug header', async () => {
    const r = await curl('http://empty:9084/', ['-x', proxyUrl, '-H', 'x-weft-debug: 1']);
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'no healthy upstream');
    assert.equal(r.headers['x-weft-response-flags'], 'UH');
    assert.equal(r.headers['content-type'], 'text/plain');
    const quiet = await curl('http://empty:9084/', ['-x', proxyUrl]);
    assert.equal(quiet.status, 503);
    assert.equal(quiet.headers['x-weft-response-flags'], undefined);
  });

  test('unknown host under ALLOW_ANY: the passthrough catch-all has no destination in explicit mode → 503 UH', async () => {
    // Under ALLOW_ANY the catch-all routes to PassthroughCluster (ORIGINAL_DST), which in explicit mode has no
    // original destination to use.
    const r = await curl(`${proxyUrl}/`, ['-H', 'Host: nowhere.example:80', '-H', 'x-weft-debug: 1']);
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-weft-response-flags'], 'UH');
  });

  test('chunked request and response bodies, and a 5 MiB body end to end', async () => {
    const small = randomBytes(100_000);
    const smallFile = join(work, 'small.bin');
    writeFileSync(smallFile, small);
    const r = await curl('http://reviews:9080/echo', ['-x', proxyUrl, '-H', 'Transfer-Encoding: chunked', '--data-binary', `@${smallFile}`]);
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    assert.ok(r.body.equals(small), 'echoed body matches');
    const seen = v1.seen[v1.seen.length - 1]!;
    assert.equal(seen.headers['transfer-encoding'], 'chunked', 'the request went upstream chunked');

    const big = randomBytes(5 * 1024 * 1024);
    const bigFile = join(work, 'big.bin');
    writeFileSync(bigFile, big);
    const sha = createHash('sha256').update(big).digest('hex');
    for (const extra of [[], ['-H', 'Transfer-Encoding: chunked']]) {
      const b = await curl('http://reviews:9080/echo', ['-x', proxyUrl, ...extra, '--data-binary', `@${bigFile}`]);
      assert.equal(b.status, 200);
      assert.equal(createHash('sha256').update(b.body).digest('hex'), sha);
      assert.equal(v1.seen[v1.seen.length - 1]!.bodySha, sha);
    }
  });

  test('Expect: 100-continue is answered by the proxy', async () => {
    const file = join(work, 'cont.bin');
    writeFileSync(file, randomBytes(2048));
    const r = await run('curl', ['-s', '-S', '-i', '-x', proxyUrl, '-H', 'Expect: 100-continue', '--data-binary', `@${file}`, 'http://reviews:9080/cont']);
    assert.equal(r.status, 0);
    const out = r.stdout.toString('latin1');
    assert.match(out, /^HTTP\/1\.1 100 Continue\r\n/);
    const res = parseCurl(r.stdout);
    assert.equal(res.status, 200);
    const b = JSON.parse(res.body.toString()) as { bodyLength: number; headers: Record<string, string> };
    assert.equal(b.bodyLength, 2048);
    assert.equal(b.headers.expect, undefined, 'Expect is not forwarded');
  });

  test('a route change applies to new requests without dropping the one in flight', async () => {
    const prev = (await status())?.RDS?.sentVersion;
    // Start a request that the held upstream keeps open.
    const inflight = new Promise<CurlResult>((resolve, reject) => {
      const p = spawn('curl', ['-s', '-S', '-i', '--max-time', '20', '-x', proxyUrl, 'http://held:9083/hold/1']);
      const chunks: Buffer[] = [];
      p.stdout.on('data', (d: Buffer) => chunks.push(d));
      p.on('exit', (code) => (code === 0 ? resolve(parseCurl(Buffer.concat(chunks))) : reject(new Error(`curl exited ${code}`))));
    });
    for (let i = 0; i < 200 && releases.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.equal(releases.length, 1, 'the request reached the held upstream');
    // Route held → reviews, wait for the proxy's ACK.
    writeConfig('held-vs.yaml', heldVs('reviews'));
    await nextRds(prev, 'ack');
    const after = await curl('http://held:9083/after', ['-x', proxyUrl]);
    assert.match(after.headers['x-upstream']!, /^reviews-v[12]$/, 'new requests follow the new route');
    releases.shift()!();
    const r = await inflight;
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'held', 'the in-flight request completed on the old route');
  });

  test('invalid config is NACKed naming the field; traffic keeps flowing on the last good config', async () => {
    const prev = (await status())?.RDS?.sentVersion;
    writeConfig('reviews-vs.yaml', reviewsVs('%NOT_A_COMMAND%'));
    const rds = await nextRds(prev, 'nack');
    assert.match(rds.nack!.message, /route_config "outbound": virtual_hosts\[\d+\]\.routes\[\d+\]\.request_headers_to_add\[0\]\.header\.value: unknown command %NOT_A_COMMAND%/);
    const r = await curl('http://reviews:9080/still', ['-x', proxyUrl, '-H', 'end-user: jason']);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'reviews-v2', 'the old routes are still in force');
    // Fix it: the next version is accepted.
    const nackedVersion = (await status())?.RDS?.sentVersion;
    writeConfig('reviews-vs.yaml', reviewsVs('fixed'));
    await nextRds(nackedVersion, 'ack');
    const fixed = await curl('http://reviews:9080/fixed', ['-x', proxyUrl]);
    const b = JSON.parse(fixed.body.toString()) as { headers: Record<string, string> };
    assert.equal(b.headers['x-extra'], 'fixed');
  });

  test('pipelined requests on one connection are answered in order', async () => {
    const { connect } = await import('node:net');
    const port = Number(new URL(proxyUrl).port);
    const sock = connect(port, '127.0.0.1');
    const reqs = ['/p/1', '/p/2', '/p/3'].map((p) => `GET ${p} HTTP/1.1\r\nHost: reviews:9080\r\n\r\n`).join('');
    sock.write(reqs);
    let data = '';
    await new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => {
        data += d.toString();
        if ((data.match(/"url":"\/p\/\d"/g) ?? []).length === 3) resolve();
      });
    });
    sock.destroy();
    assert.deepEqual(data.match(/"url":"\/p\/\d"/g), ['"url":"/p/1"', '"url":"/p/2"', '"url":"/p/3"']);
  });

  test('malformed requests are refused and the proxy keeps serving', async () => {
    const { connect } = await import('node:net');
    const port = Number(new URL(proxyUrl).port);
    const sock = connect(port, '127.0.0.1');
    sock.write('POST / HTTP/1.1\r\nHost: reviews:9080\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n');
    let data = '';
    await new Promise<void>((resolve) => {
      sock.on('data', (d: Buffer) => (data += d.toString()));
      sock.on('close', () => resolve());
    });
    assert.match(data, /^HTTP\/1\.1 400 Bad Request\r\n/);
    assert.match(data, /connection: close/i);
    assert.equal((await curl('http://reviews:9080/ok', ['-x', proxyUrl])).status, 200);
  });

  test('POST /quitquitquit drains and the process exits 0', async () => {
    const res = await fetch(`http://127.0.0.1:${adminPort}/quitquitquit`, { method: 'POST' });
    assert.equal(res.status, 200);
    assert.equal(await proxy.exited(), 0);
  });
});
