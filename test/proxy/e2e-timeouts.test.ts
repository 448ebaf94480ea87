// Downstream timeouts of the HTTP connection manager in a real `weft proxy` (config from a static ADS server: the
// control plane's translation with the outbound HCM's timeouts shortened): stream_idle_timeout (504 / 408
// `stream timeout`, flag SI), request_timeout (408 `request timeout`), common_http_protocol_options.idle_timeout
// (idle keep-alive connections closed) and max_connection_duration (connection closed, drained when busy), each
// with its Envoy counter; the stream timeouts also on HTTP/2 (h2c) streams. Assertions are on statuses, bodies, flags, closes and counters, never on durations.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpProtocolOptionsSchema } from '../../src/xds/gen/envoy/config/core/v3/protocol_pb.js';
import { serviceYaml, sleep, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { durationOf, editHcm, startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { eventually, rawSession, statValue } from '../helpers/raw-client.js';
import { TypeUrl } from '../../src/xds/index.js';
import { connect as h2connect, type IncomingHttpHeaders } from 'node:http2';
import { h2Request, within } from '../helpers/h2-clients.js';

const HOST = 'echo:9080';

describe('weft proxy: downstream timeouts', () => {
  let server: Server;
  let mesh: StaticProxy;
  let port = 0;
  let holdClosed = 0;

  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/hold') {
        // Never answers; counts when the proxy gives up on it.
        res.on('close', () => holdClosed++);
        return;
      }
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok');
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const upstreamPort = (server.address() as AddressInfo).port;
    const yaml = yamlDocuments([serviceYaml('echo', { name: 'http', port: 9080 }), workloadEntryYaml('echo-1', { app: 'echo' }, 'http', upstreamPort)]);
    mesh = await startStaticProxy(yaml, {
      nodeId: 'timeouts',
      mutate: (r) =>
        editHcm(r, 'outbound', (h) => {
          h.streamIdleTimeout = durationOf(1000);
        }),
    });
    port = mesh.outboundPort;
  });

  after(async () => {
    await mesh?.stop();
    server?.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
  });

  const stat = (name: string) => statValue(mesh.adminPort, `http.outbound.${name}`);

  /** Pushes a new version of the outbound listener with the connection manager edited, and waits for its ACK. */
  async function reconfigure(edit: Parameters<typeof editHcm>[2]): Promise<void> {
    editHcm(mesh.resources, 'outbound', edit);
    await mesh.ads.acked(TypeUrl.Listener, mesh.ads.setAll(mesh.resources));
  }

  test('stream_idle_timeout: no upstream answer → 504 `stream timeout`, flag SI, the upstream request is abandoned', async () => {
    const before = await stat('downstream_rq_idle_timeout');
    const held = holdClosed;
    const r = await rawSession(port, (s) => void s.write(`GET /hold HTTP/1.1\r\nHost: ${HOST}\r\nx-weft-debug: 1\r\n\r\n`));
    assert.match(r.text, /^HTTP\/1\.1 504 /);
    assert.match(r.text, /\r\nx-weft-response-flags: SI\r\n/i);
    assert.match(r.text, /\r\nx-weft-response-code-details: stream_idle_timeout\r\n/i);
    assert.match(r.text, /stream timeout$/);
    assert.ok(r.closed);
    assert.equal(await stat('downstream_rq_idle_timeout'), before + 1);
    await eventually(() => holdClosed > held, 'the upstream request to be closed');
  });

  test('stream_idle_timeout with the request body incomplete → 408', async () => {
    const r = await rawSession(port, (s) => void s.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 10\r\n\r\nab`));
    assert.match(r.text, /^HTTP\/1\.1 408 /);
    assert.match(r.text, /stream timeout$/);
    assert.ok(r.closed);
  });

  test('stream_idle_timeout on an HTTP/2 stream: 504 `stream timeout`, flag SI, the upstream request is abandoned', async () => {
    const before = await stat('downstream_rq_idle_timeout');
    const held = holdClosed;
    const r = await h2Request(port, { authority: HOST, path: '/hold', headers: { 'x-weft-debug': '1' } });
    assert.equal(r.status, 504);
    assert.equal(r.headers['x-weft-response-flags'], 'SI');
    assert.equal(r.headers['x-weft-response-code-details'], 'stream_idle_timeout');
    assert.equal(r.body.toString(), 'stream timeout');
    assert.equal(r.rstCode, undefined);
    assert.equal(await stat('downstream_rq_idle_timeout'), before + 1);
    await eventually(() => holdClosed > held, 'the upstream request to be closed');
  });

  test('request_timeout: a body trickling in is cut off → 408 `request timeout`', async () => {
    await reconfigure((h) => {
      h.streamIdleTimeout = durationOf(0);
      h.requestTimeout = durationOf(1500);
      h.commonHttpProtocolOptions = create(HttpProtocolOptionsSchema, { idleTimeout: durationOf(1500) });
    });
    const before = await stat('downstream_rq_timeout');
    const r = await rawSession(port, async (s) => {
      s.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 1000\r\n\r\n`);
      // One byte every 250 ms, bounded to 100 bytes.
      for (let i = 0; i < 100 && s.writable && !s.destroyed; i++) {
        s.write('x');
        await sleep(250);
      }
    });
    assert.match(r.text, /^HTTP\/1\.1 408 /, r.text);
    assert.match(r.text, /request timeout$/);
    assert.ok(r.closed);
    assert.equal(await stat('downstream_rq_timeout'), before + 1);
  });

  test('request_timeout on an HTTP/2 stream: a body trickling in is cut off → 408 `request timeout`', async () => {
    // The listener version of the previous test is in force (request_timeout 1.5 s, no stream idle timeout).
    const before = await stat('downstream_rq_timeout');
    const session = h2connect(`http://127.0.0.1:${port}`);
    session.on('error', () => undefined);
    try {
      const st = session.request({ ':method': 'POST', ':path': '/', ':authority': HOST }, { endStream: false });
      st.on('error', () => undefined);
      let headers: IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      st.on('response', (h) => (headers = h));
      st.on('data', (c: Buffer) => chunks.push(c));
      const closed = new Promise<void>((r) => st.once('close', () => r()));
      // One byte every 250 ms, bounded to 100 bytes, until the proxy answers.
      for (let i = 0; i < 100 && headers[':status'] === undefined && !st.closed; i++) {
        st.write('x');
        await sleep(250);
      }
      await within(closed, 'the end of the HTTP/2 stream');
      assert.equal(Number(headers[':status']), 408);
      assert.equal(Buffer.concat(chunks).toString(), 'request timeout');
      assert.equal(await stat('downstream_rq_timeout'), before + 1);
    } finally {
      session.destroy();
    }
  });

  test('idle_timeout: a keep-alive connection left idle is closed by the proxy', async () => {
    const before = await stat('downstream_cx_idle_timeout');
    const r = await rawSession(port, (s) => void s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
    assert.match(r.text, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(r.text, /connection: close/i);
    assert.ok(r.closed, 'the idle connection was closed');
    assert.equal(await stat('downstream_cx_idle_timeout'), before + 1);
  });

  test('max_connection_duration: an idle connection closes; a busy one finishes its request with connection: close', async () => {
    // A new listener version: no idle timeouts, connections live at most 1 s.
    await reconfigure((h) => {
      h.streamIdleTimeout = durationOf(0);
      h.requestTimeout = undefined;
      h.drainTimeout = durationOf(3000);
      h.commonHttpProtocolOptions = create(HttpProtocolOptionsSchema, { idleTimeout: durationOf(0), maxConnectionDuration: durationOf(1000) });
    });
    const before = await stat('downstream_cx_max_duration_reached');
    const idle = await rawSession(port, (s) => void s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`));
    assert.match(idle.text, /^HTTP\/1\.1 200 /);
    assert.ok(idle.closed);
    // Busy: a request whose body is still arriving when the duration is reached gets its answer, then the close.
    const busy = await rawSession(port, async (s) => {
      s.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 2\r\n\r\na`);
      await eventually(async () => (await stat('downstream_cx_max_duration_reached')) >= before + 2, 'the second connection to reach its duration');
      s.write('b');
    });
    assert.match(busy.text, /^HTTP\/1\.1 200 /);
    assert.match(busy.text, /\r\nconnection: close\r\n/i);
    assert.ok(busy.closed);
  });
});
