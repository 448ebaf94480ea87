// `weft proxy` end to end over HTTP/2: the real `weft control-plane` and `weft proxy` in child processes, an
// HTTP/1.1 upstream (node:http) and h2c upstreams (node:http2, see helpers/h2-clients.ts), and real clients —
// curl --http2-prior-knowledge, h2load (many streams on one connection), node:http2 and raw sockets for resets
// and invalid frames. Services: `web` (port name http → HTTP/1.1 upstream) and `web2` / `narrow` (port name
// http2 → the cluster speaks HTTP/2 to them). No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect as netConnect, type AddressInfo } from 'node:net';
import { constants } from 'node:http2';
import { adminGet } from '../helpers/admin-http.js';
import { curl, H2Upstream, h2Request, sha256, within } from '../helpers/h2-clients.js';
import { freePort, MeshWorkDir, proxyArgs, run, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const NODE_ID = 'e2e-h2-client';
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** An HTTP/1.1 upstream answering with what it received (JSON), or echoing the body for /echo. */
class H1Upstream {
  server!: Server;
  port = 0;
  readonly seen: Array<{ method: string; url: string; httpVersion: string; headers: IncomingMessage['headers']; bodySha: string }> = [];
  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', httpVersion: req.httpVersion, headers: req.headers, bodySha: sha256(body) });
        if (req.url?.startsWith('/echo')) {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          for (let i = 0; i < body.length; i += 65536) res.write(body.subarray(i, i + 65536));
          res.end();
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': ['a=1', 'b=2'] });
        res.end(JSON.stringify({ url: req.url, httpVersion: req.httpVersion, headers: req.headers, bodyLength: body.length, bodySha: sha256(body) }));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** Frame header (9 bytes) + payload. */
function frame(type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

interface RawOutcome {
  /** The error code of the GOAWAY the proxy sent, if any. */
  goaway: number | undefined;
  /** The proxy closed the connection (rather than this client after reading a GOAWAY, or the 10 s guard). */
  closedByProxy: boolean;
}

/**
 * Sends `bytes` on a raw connection; reads frames until a GOAWAY arrives (then closes, as an HTTP/2 client does)
 * or the proxy closes the connection (10 s guard).
 */
function rawExchange(port: number, bytes: Buffer): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const sock = netConnect({ host: '127.0.0.1', port });
    let all = Buffer.alloc(0);
    let goaway: number | undefined;
    let closedByUs = false;
    const close = () => {
      closedByUs = true;
      sock.destroy();
    };
    const timer = setTimeout(close, 10_000);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d: Buffer) => {
      all = Buffer.concat([all, d]);
      for (let i = 0; i + 9 <= all.length; ) {
        const len = all.readUIntBE(i, 3);
        if (i + 9 + len > all.length) break;
        if (all[i + 3] === 0x7 && len >= 8) goaway = all.readUInt32BE(i + 9 + 4);
        i += 9 + len;
      }
      if (goaway !== undefined) close();
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      clearTimeout(timer);
      resolve({ goaway, closedByProxy: !closedByUs });
    });
  });
}

describe('weft proxy: HTTP/2 end to end', () => {
  const mesh = new MeshWorkDir('weft-proxy-h2-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  let outbound = 0;
  let adminPort = 0;

  const web = new H1Upstream();
  const held: Array<() => void> = [];
  const web2 = new H2Upstream('web2', {}, (req, res, body, u) => {
    if (req.url.startsWith('/hold')) {
      held.push(() => u.reply(req, res, body));
      return;
    }
    if (req.url.startsWith('/reset-before')) {
      req.stream.close(constants.NGHTTP2_INTERNAL_ERROR);
      return;
    }
    if (req.url.startsWith('/reset-after')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('partial');
      // destroy(error) resets with INTERNAL_ERROR without ending the stream first (close(code) would end it).
      setTimeout(() => req.stream.destroy(new Error('upstream gives up')), 50);
      return;
    }
    if (req.url.startsWith('/trailers')) {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end('with trailers');
      return;
    }
    if (req.url.startsWith('/slow')) {
      setTimeout(() => u.reply(req, res, body), 20);
      return;
    }
    u.reply(req, res, body);
  });
  // At most 5 streams per session: the proxy's pool must open more sessions under load.
  const narrow = new H2Upstream('narrow', { maxConcurrentStreams: 5 }, (req, res, body, u) => {
    setTimeout(() => u.reply(req, res, body), 20);
  });

  const base = () => `http://127.0.0.1:${outbound}`;
  const h2c = ['--http2-prior-knowledge'];

  before(async () => {
    await web.start();
    await web2.start();
    await narrow.start();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('web', { name: 'http', port: 9080 }),
        workloadEntryYaml('web-1', { app: 'web' }, 'http', web.port),
        serviceYaml('web2', { name: 'http2', port: 9081 }),
        workloadEntryYaml('web2-1', { app: 'web2' }, 'http2', web2.port),
        serviceYaml('narrow', { name: 'http2', port: 9082 }),
        workloadEntryYaml('narrow-1', { app: 'narrow' }, 'http2', narrow.port),
        serviceYaml('empty', { name: 'http2', port: 9083 }),
      ]),
    );
    const cpAddr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const healthPort = await freePort();
    adminPort = await freePort();
    const ports = ['--outbound-port', String(outbound), '--health-port', String(healthPort), '--admin-port', String(adminPort), '--stats-port', '0'];
    await proxy.start(proxyArgs(cpAddr.xds, NODE_ID, ports), /weft proxy .* started/, 'proxy');
    await waitProxyReady(healthPort, proxy);
  });

  after(async () => {
    for (const r of held.splice(0)) r();
    await proxy.stop();
    await cp.stop();
    await web.stop();
    await web2.stop();
    await narrow.stop();
    mesh.remove();
  });

  test('h2c client → HTTP/1.1 upstream: GET, HEAD, POST with a body; :authority becomes Host', async () => {
    const g = await curl(`${base()}/hello?x=1`, [...h2c, '-H', 'Host: web:9080', '-H', 'cookie: a=1', '-H', 'cookie: b=2']);
    assert.equal(g.status, 200);
    const b = JSON.parse(g.body.toString()) as { url: string; httpVersion: string; headers: Record<string, string> };
    assert.equal(b.url, '/hello?x=1');
    assert.equal(b.httpVersion, '1.1', 'the upstream speaks HTTP/1.1');
    assert.equal(b.headers.host, 'web:9080');
    assert.equal(b.headers.cookie, 'a=1; b=2', 'cookie crumbs joined for HTTP/1.1');
    assert.equal(b.headers['x-forwarded-proto'], 'http');
    assert.match(g.headers['x-envoy-upstream-service-time']!, /^\d+$/);

    const h = await curl(`${base()}/hello`, [...h2c, '-I', '-H', 'Host: web:9080']);
    assert.equal(h.status, 200);
    assert.equal(h.body.length, 0);

    const body = randomBytes(5000);
    const r = await h2Request(outbound, { authority: 'web:9080', method: 'POST', path: '/post', body });
    assert.equal(r.status, 200);
    const pb = JSON.parse(r.body.toString()) as { bodyLength: number; bodySha: string };
    assert.equal(pb.bodyLength, 5000);
    assert.equal(pb.bodySha, sha256(body));
  });

  test('large bodies both ways through flow control (h2 → h1 and h2 → h2)', async () => {
    const body = randomBytes(6 * 1024 * 1024 + 123);
    for (const authority of ['web:9080', 'web2:9081']) {
      const r = await h2Request(outbound, { authority, method: 'POST', path: '/echo', body });
      assert.equal(r.status, 200, authority);
      assert.equal(r.body.length, body.length, authority);
      assert.equal(sha256(r.body), sha256(body), authority);
    }
  });

  test('HTTP/1.1 client → HTTP/2 upstream and h2 client → h2 upstream', async () => {
    const before = web2.seen.length;
    const a = await curl(`${base()}/one`, ['-H', 'Host: web2:9081', '-H', 'Connection: keep-alive, x-drop', '-H', 'x-drop: 1']);
    assert.equal(a.status, 200);
    const ab = JSON.parse(a.body.toString()) as { authority: string; httpVersion: string; headers: Record<string, string> };
    assert.equal(ab.httpVersion, '2.0', 'the upstream speaks HTTP/2');
    assert.equal(ab.authority, 'web2:9081', 'Host became :authority');
    assert.equal(ab.headers.host, undefined);
    assert.equal(ab.headers['x-drop'], undefined, 'connection-nominated header removed');
    const c = await curl(`${base()}/two`, [...h2c, '-H', 'Host: web2:9081']);
    assert.equal(c.status, 200);
    assert.equal((JSON.parse(c.body.toString()) as { httpVersion: string }).httpVersion, '2.0');
    const big = randomBytes(300_000);
    const r = await h2Request(outbound, { authority: 'web2:9081', method: 'PUT', path: '/echo', body: big });
    assert.equal(sha256(r.body), sha256(big));
    assert.equal(web2.seen.length, before + 3);
  });

  test('h2load: 400 requests, 50 concurrent streams on one connection; the pool multiplexes and opens sessions when full', async () => {
    const r = await run('h2load', ['-n', '400', '-c', '1', '-m', '50', '-H', ':authority: narrow:9082', `${base()}/slow`]);
    const out = r.stdout.toString();
    assert.equal(r.status, 0, out + r.stderr.toString());
    assert.match(out, /requests: 400 total, 400 started, 400 done, 400 succeeded/);
    assert.match(out, /status codes: 400 2xx/);
    assert.equal(narrow.seen.length, 400);
    assert.ok(narrow.maxConcurrentPerSession <= 5, `the peer's max_concurrent_streams (5) was respected: ${narrow.maxConcurrentPerSession}`);
    assert.ok(narrow.sessions >= 2, `more than one session opened when one was full (${narrow.sessions})`);
    assert.ok(narrow.sessions <= 50, `sessions are reused (${narrow.sessions})`);
    const stats = (await adminGet(adminPort, '/stats')).body;
    assert.match(stats, /upstream_cx_http2_total: [1-9]/);
    assert.match(stats, /downstream_rq_http2_total: [1-9]/);
  });

  test('client RST_STREAM mid-request: the upstream stream is reset; the proxy keeps serving', async () => {
    const { connect } = await import('node:http2');
    const session = connect(`http://127.0.0.1:${outbound}`);
    const st = session.request({ ':method': 'GET', ':path': '/hold/1', ':authority': 'web2:9081' });
    st.on('error', () => undefined);
    for (let i = 0; i < 200 && !web2.seen.some((s) => s.path === '/hold/1'); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(web2.seen.some((s) => s.path === '/hold/1'), 'request reached the upstream');
    st.close(constants.NGHTTP2_CANCEL);
    for (let i = 0; i < 200 && !web2.resets.includes('/hold/1'); i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(web2.resets.includes('/hold/1'), 'the upstream stream was reset');
    // Same connection still serves.
    const st2 = session.request({ ':method': 'GET', ':path': '/after', ':authority': 'web2:9081' });
    const status = await within(new Promise<number>((resolve) => st2.on('response', (h) => resolve(Number(h[':status'])))), 'the response');
    st2.resume();
    assert.equal(status, 200);
    session.close();
  });

  test('upstream reset: before headers → 503 UR (reset reason: remote reset); after headers → the client stream is reset', async () => {
    const a = await h2Request(outbound, { authority: 'web2:9081', path: '/reset-before', headers: { 'x-weft-debug': '1' } });
    assert.equal(a.status, 503);
    assert.equal(a.body.toString(), 'upstream connect error or disconnect/reset before headers. reset reason: remote reset');
    assert.equal(a.headers['x-weft-response-flags'], 'UR');
    const b = await h2Request(outbound, { authority: 'web2:9081', path: '/reset-after' });
    assert.equal(b.status, 200);
    assert.equal(b.body.toString(), 'partial');
    assert.equal(b.rstCode, constants.NGHTTP2_INTERNAL_ERROR, 'the stream was reset, not ended');
    const cr = await run('curl', ['-sS', '--max-time', '10', ...h2c, '-H', 'Host: web2:9081', `${base()}/reset-after`]);
    assert.equal(cr.status, 92, `curl sees the stream reset: ${cr.stderr.toString()}`);
    const c = await h2Request(outbound, { authority: 'web:9080', path: '/still-up' });
    assert.equal(c.status, 200);
  });

  test('invalid HTTP/2 from raw sockets: GOAWAY with the error code, proxy stays up', async () => {
    const settings = frame(0x4, 0, 0, Buffer.alloc(0));
    // 1. the HTTP/2 prefix, then a broken rest of the preface.
    const bad = await rawExchange(outbound, Buffer.from('PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n', 'latin1'));
    assert.ok(bad.closedByProxy || bad.goaway !== undefined, 'the connection was refused');
    // 2. HEADERS with an invalid HPACK block (indexed field 0 is not allowed) → COMPRESSION_ERROR (0x9).
    const hpack = await rawExchange(outbound, Buffer.concat([PREFACE, settings, frame(0x1, 0x5, 1, Buffer.from([0x80]))]));
    assert.equal(hpack.goaway, 0x9);
    // 3. DATA on stream 0 → PROTOCOL_ERROR (0x1).
    const data0 = await rawExchange(outbound, Buffer.concat([PREFACE, settings, frame(0x0, 0x1, 0, Buffer.from('x'))]));
    assert.equal(data0.goaway, 0x1);
    const ok = await curl(`${base()}/alive`, [...h2c, '-H', 'Host: web:9080']);
    assert.equal(ok.status, 200);
    const ok1 = await curl(`${base()}/alive`, ['-H', 'Host: web:9080']);
    assert.equal(ok1.status, 200);
  });

  test('HTTP/2 local reply (no healthy upstream → 503 UH) and response trailers from an h2 upstream', async () => {
    const uh = await h2Request(outbound, { authority: 'empty:9083', path: '/', headers: { 'x-weft-debug': '1' } });
    assert.equal(uh.status, 503);
    assert.equal(uh.body.toString(), 'no healthy upstream');
    assert.equal(uh.headers['content-length'], '19');
    assert.equal(uh.headers['x-weft-response-flags'], 'UH');
    assert.equal(uh.headers.server, 'weft');
    const t = await h2Request(outbound, { authority: 'web2:9081', path: '/trailers', headers: { te: 'trailers' } });
    assert.equal(t.status, 200);
    assert.equal(t.body.toString(), 'with trailers');
    assert.equal(t.trailers?.['x-checksum'], 'abc123');
  });
});
