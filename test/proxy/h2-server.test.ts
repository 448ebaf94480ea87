// The downstream codec choice (http/server/serve.ts) with a compiled HTTP connection manager served in-process
// on a real node:net (or node:tls) server: codec_type AUTO / HTTP1 / HTTP2 with curl as HTTP/1.1 and h2c prior
// knowledge client, h2 chosen by ALPN on a TLS socket (self-signed certificate made with openssl), gRPC-shaped
// local replies, and GOAWAY on drain. The route configuration is inline: /ok answers 200 `ok` directly, nothing
// else matches (404 NR).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as h2connect } from 'node:http2';
import { connect as netConnect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { HttpConnectionManager_CodecType, HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import type { RouteConfiguration } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { compileHcm, type HttpConnectionManagerImpl } from '../../src/proxy/http/server/hcm.js';
import { serveHttp, type HttpServerConnection } from '../../src/proxy/http/server/serve.js';
import { compileRouteConfiguration } from '../../src/proxy/http/router/index.js';
import { ConfigError } from '../../src/proxy/config-error.js';
import { h2Request, within } from '../helpers/h2-clients.js';
import { run } from '../helpers/mesh-processes.js';

function hcm(codecType: HttpConnectionManager_CodecType, idleTimeoutMs?: number): HttpConnectionManagerImpl {
  const proto = create(HttpConnectionManagerSchema, {
    statPrefix: 't',
    codecType,
    commonHttpProtocolOptions: idleTimeoutMs === undefined ? undefined : { idleTimeout: { seconds: 0n, nanos: idleTimeoutMs * 1e6 } },
    httpFilters: [{ name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: pack(RouterSchema, {}) } }],
    routeSpecifier: {
      case: 'routeConfig',
      value: {
        name: 'local',
        virtualHosts: [
          {
            name: 'vh',
            domains: ['*'],
            routes: [{ match: { pathSpecifier: { case: 'path', value: '/ok' } }, action: { case: 'directResponse', value: { status: 200, body: { specifier: { case: 'inlineString', value: 'ok' } } } } }],
          },
        ],
      },
    },
  });
  return compileHcm(proto, {
    listener: 'test',
    field: 'filter_chains[0].filters[0].typed_config',
    rds: () => {
      throw new Error('no RDS here');
    },
    inlineRoutes: (rc) => ({ current: compileRouteConfiguration(rc as RouteConfiguration) }),
    cluster: () => undefined,
    warn: () => undefined,
  });
}

interface Served {
  server: Server;
  port: number;
  conns: HttpServerConnection[];
}

async function serve(codec: HttpConnectionManager_CodecType, idleTimeoutMs?: number): Promise<Served> {
  const h = hcm(codec, idleTimeoutMs);
  const conns: HttpServerConnection[] = [];
  const server = createServer((s: Socket) => conns.push(serveHttp(s, h, () => undefined)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, conns };
}

/** curl, printing the HTTP version and status; returns curl's exit status and that output. */
async function curlVersion(url: string, args: string[]): Promise<{ status: number | null; out: string }> {
  const r = await run('curl', ['-s', '--max-time', '10', '-o', '/dev/null', '-w', '%{http_version} %{http_code}', ...args, url]);
  return { status: r.status, out: r.stdout.toString() };
}

describe('downstream codec selection (codec_type, prior knowledge, ALPN)', () => {
  const servers: Served[] = [];
  let tlsDir = '';

  before(() => {
    tlsDir = mkdtempSync(join(tmpdir(), 'weft-h2-tls-'));
  });

  after(async () => {
    for (const s of servers) {
      for (const c of s.conns) c.socket.destroy();
      await new Promise<void>((r) => s.server.close(() => r()));
    }
    rmSync(tlsDir, { recursive: true, force: true });
  });

  test('AUTO: HTTP/1.1 and h2c prior knowledge on the same port', async () => {
    const s = await serve(HttpConnectionManager_CodecType.AUTO);
    servers.push(s);
    const url = `http://127.0.0.1:${s.port}/ok`;
    assert.deepEqual(await curlVersion(url, []), { status: 0, out: '1.1 200' });
    assert.deepEqual(await curlVersion(url, ['--http2-prior-knowledge']), { status: 0, out: '2 200' });
    const r = await h2Request(s.port, { authority: 'x', path: '/ok' });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), 'ok');
    assert.equal(r.headers.server, 'weft');
  });

  test('codec_type HTTP1 refuses the HTTP/2 preface; HTTP2 refuses HTTP/1.1', async () => {
    const h1 = await serve(HttpConnectionManager_CodecType.HTTP1);
    servers.push(h1);
    assert.deepEqual(await curlVersion(`http://127.0.0.1:${h1.port}/ok`, []), { status: 0, out: '1.1 200' });
    const refused = await curlVersion(`http://127.0.0.1:${h1.port}/ok`, ['--http2-prior-knowledge']);
    assert.notEqual(refused.status, 0, 'h2c on an HTTP/1-only listener fails');
    const h2 = await serve(HttpConnectionManager_CodecType.HTTP2);
    servers.push(h2);
    assert.deepEqual(await curlVersion(`http://127.0.0.1:${h2.port}/ok`, ['--http2-prior-knowledge']), { status: 0, out: '2 200' });
    const h1on2 = await curlVersion(`http://127.0.0.1:${h2.port}/ok`, ['--http1.1']);
    assert.notEqual(h1on2.status, 0, 'HTTP/1.1 on an HTTP/2-only listener fails');
    assert.throws(() => hcm(HttpConnectionManager_CodecType.HTTP3), (e: unknown) => e instanceof ConfigError && /codec_type/.test(e.message) && /HTTP3/.test(e.message));
  });

  test('TLS: ALPN h2 → HTTP/2, http/1.1 → HTTP/1.1 (serveHttp with the negotiated protocol)', async () => {
    const key = join(tlsDir, 'key.pem');
    const cert = join(tlsDir, 'cert.pem');
    const gen = await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost']);
    assert.equal(gen.status, 0, gen.stderr.toString());
    const h = hcm(HttpConnectionManager_CodecType.AUTO);
    const conns: HttpServerConnection[] = [];
    const server = createTlsServer({ key: readFileSync(key), cert: readFileSync(cert), ALPNProtocols: ['h2', 'http/1.1'] }, (s: TLSSocket) =>
      conns.push(serveHttp(s as unknown as Socket, h, () => undefined, s.alpnProtocol)),
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    servers.push({ server: server as unknown as Server, port, conns });
    const url = `https://localhost:${port}/ok`;
    const resolve = ['--resolve', `localhost:${port}:127.0.0.1`, '-k'];
    assert.deepEqual(await curlVersion(url, [...resolve, '--http2']), { status: 0, out: '2 200' });
    assert.deepEqual(await curlVersion(url, [...resolve, '--http1.1']), { status: 0, out: '1.1 200' });
  });

  test('expect: 100-continue on HTTP/2 is answered by the proxy', async () => {
    const s = await serve(HttpConnectionManager_CodecType.AUTO);
    servers.push(s);
    const session = h2connect(`http://127.0.0.1:${s.port}`);
    session.on('error', () => undefined);
    try {
      const st = session.request({ ':method': 'POST', ':path': '/ok', ':authority': 'x', expect: '100-continue' });
      await within(new Promise<void>((resolve) => st.once('continue', () => resolve())), '100 Continue');
      st.end(Buffer.from('body after 100'));
      const status = await within(new Promise<number>((resolve) => st.on('response', (h) => resolve(Number(h[':status'])))), 'the response');
      st.resume();
      assert.equal(status, 200);
    } finally {
      session.close();
    }
  });

  test('local replies to gRPC requests are trailers-only gRPC responses (404 → UNIMPLEMENTED)', async () => {
    const s = await serve(HttpConnectionManager_CodecType.AUTO);
    servers.push(s);
    const r = await h2Request(s.port, { authority: 'x', method: 'POST', path: '/pkg.Svc/Method', headers: { 'content-type': 'application/grpc', te: 'trailers' }, body: Buffer.alloc(5) });
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'application/grpc');
    assert.equal(r.headers['grpc-status'], '12');
    assert.equal(r.headers['grpc-message'], undefined, 'no body text, no grpc-message');
    assert.equal(r.body.length, 0);
    // The same request without the gRPC content type gets the plain 404.
    const plain = await h2Request(s.port, { authority: 'x', path: '/pkg.Svc/Method' });
    assert.equal(plain.status, 404);
  });

  test('drain sends GOAWAY (NO_ERROR) to HTTP/2 clients and closes the connection', async () => {
    const s = await serve(HttpConnectionManager_CodecType.AUTO);
    servers.push(s);
    const session = h2connect(`http://127.0.0.1:${s.port}`);
    const goaway = within(new Promise<number>((resolve) => session.on('goaway', (code: number) => resolve(code))), 'GOAWAY');
    const closed = within(new Promise<void>((resolve) => session.on('close', () => resolve())), 'close');
    session.on('error', () => undefined);
    const st = session.request({ ':path': '/ok', ':authority': 'x' });
    const status = await within(new Promise<number>((resolve) => st.on('response', (h) => resolve(Number(h[':status'])))), 'the response');
    st.resume();
    assert.equal(status, 200);
    assert.equal(s.conns.length, 1);
    s.conns[0]!.drain();
    assert.equal(await goaway, 0);
    await closed;
  });

  test('after a protocol error GOAWAY the idle timeout closes the connection even if the client keeps it open', async () => {
    const s = await serve(HttpConnectionManager_CodecType.AUTO, 300);
    servers.push(s);
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
    const frame = (type: number, flags: number, stream: number, payload: Buffer) => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(stream, 5);
      return Buffer.concat([h, payload]);
    };
    const sock = netConnect({ host: '127.0.0.1', port: s.port });
    sock.on('error', () => undefined);
    let bytes = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => (bytes = Buffer.concat([bytes, d])));
    // DATA on stream 0: nghttp2 answers GOAWAY PROTOCOL_ERROR; this client does not close.
    sock.write(Buffer.concat([preface, frame(0x4, 0, 0, Buffer.alloc(0)), frame(0x0, 0x1, 0, Buffer.from('x'))]));
    await within(new Promise<void>((resolve) => sock.once('close', () => resolve())), 'the proxy closing the connection');
    assert.ok(bytes.includes(Buffer.from([0x07, 0x00, 0x00, 0x00, 0x00, 0x00])), 'a GOAWAY frame was sent');
  });
});
