// Hostile HTTP/1.1 input against a real `weft proxy` (its outbound listener, config from a static ADS server with the
// control plane's translation; request_headers_timeout shortened to 1 s): request smuggling shapes, oversized and
// too many headers, bare LF, binary garbage, slowloris, abrupt resets mid-request and mid-response, and a client that
// never reads. Each one must be refused (Envoy's status) or closed cleanly, and while it happens — and after it — a
// well-behaved client on another connection must still get its 200. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serviceYaml, sleep, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { durationOf, editHcm, startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { eventually, httpRequest, rawExchange, rawSession, statValue } from '../helpers/raw-client.js';

const HOST = 'echo:9080';
const BIG_TOTAL = 256 * 1024 * 1024;

describe('weft proxy: hostile HTTP/1.1 input', () => {
  let server: Server;
  let mesh: StaticProxy;
  let port = 0;
  /** /big: bytes the upstream managed to hand to its socket (it waits for 'drain' like any well-behaved server). */
  let bigWritten = 0;
  let slowClosed = 0;

  before(async () => {
    server = createServer((req, res) => {
      if (req.url === '/big') {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG_TOTAL) });
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        const pump = () => {
          while (bigWritten < BIG_TOTAL && !res.destroyed) {
            bigWritten += chunk.length;
            if (!res.write(chunk)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      if (req.url === '/slow') {
        // A response that never ends by itself: a chunk every 50 ms until the connection goes away.
        res.writeHead(200, { 'content-type': 'text/plain' });
        const t = setInterval(() => res.write('tick\n'), 50);
        res.on('close', () => {
          clearInterval(t);
          slowClosed++;
        });
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
      nodeId: 'hostile',
      mutate: (r) => editHcm(r, 'outbound', (h) => (h.requestHeadersTimeout = durationOf(1000))),
    });
    port = mesh.outboundPort;
  });

  after(async () => {
    await mesh?.stop();
    server?.closeAllConnections();
    await new Promise<void>((r) => server?.close(() => r()));
  });

  /** A well-behaved request on its own connection: 200 `ok`. */
  async function wellBehaved(): Promise<void> {
    const r = await httpRequest(port, HOST, '/');
    assert.equal(r.status, 200);
    assert.equal(r.body, 'ok');
  }

  /** Runs a hostile exchange with a well-behaved client beside it, then once more after it. */
  async function whileServing<T>(hostile: () => Promise<T>): Promise<T> {
    const [out] = await Promise.all([hostile(), wellBehaved()]);
    await wellBehaved();
    return out;
  }

  function statusOf(text: string): number {
    return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
  }

  const refused: Array<[string, string, number]> = [
    ['Content-Length with Transfer-Encoding (CL.TE smuggling)', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`, 400],
    ['two Content-Length fields', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 3\r\nContent-Length: 30\r\n\r\nabc`, 400],
    ['an invalid chunk size', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`, 400],
    ['obs-fold (a header continued on the next line)', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Folded: a\r\n  b\r\n\r\n`, 400],
    ['a bare LF line ending', `GET / HTTP/1.1\nHost: ${HOST}\n\n`, 400],
    ['a Transfer-Encoding other than chunked', `POST / HTTP/1.1\r\nHost: ${HOST}\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`, 501],
    ['request headers over the 60 KiB limit', `GET / HTTP/1.1\r\nHost: ${HOST}\r\nX-Big: ${'a'.repeat(70 * 1024)}\r\n\r\n`, 431],
    ['more than 100 header fields', `GET / HTTP/1.1\r\nHost: ${HOST}\r\n${Array.from({ length: 120 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`, 431],
  ];

  for (const [what, bytes, status] of refused) {
    test(`${what} → ${status} and the connection closes; other clients are served`, async () => {
      const r = await whileServing(() => rawExchange(port, bytes));
      assert.equal(statusOf(r.text), status, r.text.slice(0, 200));
      assert.ok(r.closed, 'the proxy closed the connection');
      assert.match(r.text, /\r\nconnection: close\r\n/i);
      assert.doesNotMatch(r.text, /smuggled/);
    });
  }

  test('binary garbage instead of HTTP → 400 and close', async () => {
    const garbage = Buffer.concat([Buffer.from([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03]), Buffer.alloc(500, 0xa5)]);
    const r = await whileServing(() => rawExchange(port, garbage));
    assert.equal(statusOf(r.text), 400, r.text.slice(0, 200));
    assert.ok(r.closed);
  });

  test('slowloris: a head sent a field at a time is cut off by request_headers_timeout (408) and counted', async () => {
    const before = await statValue(mesh.adminPort, 'http.outbound.downstream_rq_header_timeout');
    const r = await whileServing(() =>
      rawSession(port, async (s) => {
        s.write(`GET / HTTP/1.1\r\nHost: ${HOST}\r\n`);
        // Bounded: at most 100 fields, one every 200 ms (the proxy gives the head 1 s).
        for (let i = 0; i < 100 && !s.destroyed && s.writable; i++) {
          s.write(`X-Slow-${i}: x\r\n`);
          await sleep(200);
        }
      }),
    );
    assert.ok(r.closed, 'the proxy closed the slow connection');
    assert.equal(statusOf(r.text), 408, r.text);
    assert.match(r.text, /request header timeout/);
    await eventually(async () => (await statValue(mesh.adminPort, 'http.outbound.downstream_rq_header_timeout')) > before, 'downstream_rq_header_timeout');
  });

  test('a client reset in the middle of its request body leaves the proxy serving', async () => {
    await whileServing(() =>
      rawSession(port, async (s) => {
        s.write(`POST / HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 100000\r\n\r\n${'x'.repeat(1000)}`);
        await sleep(100);
        s.resetAndDestroy();
      }),
    );
  });

  test('a client reset in the middle of the response closes the upstream request too', async () => {
    const before = slowClosed;
    await whileServing(() =>
      rawSession(port, (s) => {
        s.write(`GET /slow HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        s.once('data', () => s.resetAndDestroy());
      }),
    );
    await eventually(() => slowClosed > before, 'the upstream response to be abandoned');
  });

  test('a client that never reads: backpressure stops the upstream, the proxy memory stays bounded', async () => {
    bigWritten = 0;
    let stalled = 0;
    let last = -1;
    const r = await whileServing(() =>
      rawSession(port, async (s) => {
        s.pause(); // never read a byte
        s.write(`GET /big HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
        // Wait (bounded) until the upstream's writes have stopped advancing: the buffers along the path are full.
        for (let i = 0; i < 200 && stalled < 10; i++) {
          await sleep(100);
          if (bigWritten === last) stalled++;
          else stalled = 0;
          last = bigWritten;
        }
        s.destroy();
      }, 40_000),
    );
    void r;
    assert.ok(stalled >= 10, `the upstream kept writing (${bigWritten} bytes)`);
    assert.ok(bigWritten < 64 * 1024 * 1024, `the upstream wrote ${bigWritten} of ${BIG_TOTAL} bytes to a client that reads nothing`);
    const status = readFileSync(`/proc/${mesh.proxy.proc!.pid}/status`, 'utf8');
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    assert.ok(rssKb > 0 && rssKb < 400 * 1024, `proxy RSS ${rssKb} kB`);
  });

  test('the proxy is still alive and counts the protocol errors', async () => {
    await wellBehaved();
    assert.ok((await statValue(mesh.adminPort, 'http.outbound.downstream_rq_4xx')) >= refused.length);
  });
});
