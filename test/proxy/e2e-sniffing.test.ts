// Inbound protocol sniffing in a real `weft proxy`: an inbound port declared without a protocol gets the control
// plane's sniffing listener (http_inspector + an HTTP filter chain matched on application_protocols and a TCP
// chain), served here by a static ADS server with listener_filters_timeout shortened to 1 s. On the same port:
// curl gets an HTTP answer through the connection manager (it carries x-envoy-upstream-service-time, which only
// the proxy adds), a redis-style client (`PING\r\n`) and a binary client go through the TCP proxy byte for byte,
// and a server-first client that sends nothing is handed to the TCP chain when the inspection times out and
// receives the server's greeting. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { TypeUrl } from '../../src/xds/index.js';
import { freePort, run } from '../helpers/mesh-processes.js';
import { durationOf, startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { rawSession } from '../helpers/raw-client.js';

const METHOD = /^(GET|HEAD|POST|PUT|DELETE|OPTIONS|PATCH) /;

/**
 * The workload: HTTP requests get `http-ok`; `PING` lines get `+PONG`; other bytes are echoed; a connection that
 * sends nothing for 1 s gets the greeting `+HELLO` (a server-first protocol).
 */
function startApp(): Promise<Server> {
  const server = createServer((s: Socket) => {
    let buf = Buffer.alloc(0);
    const greet = setTimeout(() => s.write('+HELLO\r\n'), 1000);
    s.on('error', () => undefined);
    s.on('close', () => clearTimeout(greet));
    s.on('data', (c: Buffer) => {
      clearTimeout(greet);
      buf = Buffer.concat([buf, c]);
      const text = buf.toString('latin1');
      if (METHOD.test(text)) {
        let end: number;
        while ((end = buf.indexOf('\r\n\r\n')) >= 0) {
          buf = buf.subarray(end + 4);
          s.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n\r\nhttp-ok');
        }
      } else if (text.startsWith('PING')) {
        let end: number;
        while ((end = buf.indexOf('\r\n')) >= 0) {
          buf = buf.subarray(end + 2);
          s.write('+PONG\r\n');
        }
      } else {
        s.write(buf);
        buf = Buffer.alloc(0);
      }
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

describe('weft proxy: inbound protocol sniffing (HTTP and opaque TCP on one port)', () => {
  let app: Server;
  let mesh: StaticProxy;
  let inbound = 0;

  before(async () => {
    app = await startApp();
    inbound = await freePort();
    const target = (app.address() as AddressInfo).port;
    mesh = await startStaticProxy('', {
      nodeId: 'sniffing',
      inbound: [{ port: inbound, targetPort: target }],
      mutate: (r) => {
        const l = r.listeners.find((x) => x.name === `inbound|${inbound}`);
        assert.ok(l, 'the inbound listener');
        assert.equal(l.listenerFilters[0]?.name, 'envoy.filters.listener.http_inspector');
        assert.equal(l.filterChains.length, 2);
        l.listenerFiltersTimeout = durationOf(1000);
      },
    });
    await mesh.ads.acked(TypeUrl.Listener, mesh.ads.version(TypeUrl.Listener));
  });

  after(async () => {
    await mesh?.stop();
    await new Promise<void>((r) => app?.close(() => r()));
  });

  test('curl: HTTP/1.1 goes through the HTTP connection manager', async () => {
    const r = await run('curl', ['-s', '-S', '-i', '--max-time', '20', `http://127.0.0.1:${inbound}/hello`]);
    assert.equal(r.status, 0, r.stderr.toString());
    const out = r.stdout.toString('latin1');
    assert.match(out, /^HTTP\/1\.1 200 /);
    assert.match(out, /\r\nx-envoy-upstream-service-time: \d+\r\n/i);
    assert.match(out, /http-ok$/);
  });

  test('a redis-style client (PING) goes through the TCP proxy', async () => {
    const r = await rawSession(inbound, async (s) => {
      s.write('PING\r\nPING\r\n');
      await new Promise<void>((resolve) => {
        let got = '';
        s.on('data', (c: Buffer) => {
          got += c.toString('latin1');
          if (got.length >= 14) resolve();
        });
      });
      s.end();
    });
    assert.equal(r.text, '+PONG\r\n+PONG\r\n');
  });

  test('a binary client gets its bytes back unchanged', async () => {
    const payload = Buffer.concat([Buffer.from([0x00, 0xff, 0x10]), randomBytes(200_000)]);
    const r = await rawSession(inbound, async (s) => {
      s.write(payload);
      await new Promise<void>((resolve) => {
        let n = 0;
        s.on('data', (c: Buffer) => {
          n += c.length;
          if (n >= payload.length) resolve();
        });
      });
      s.end();
    });
    assert.ok(Buffer.from(r.text, 'latin1').equals(payload), 'the echo matches');
  });

  test('a server-first client that sends nothing reaches the TCP chain after listener_filters_timeout', async () => {
    const r = await rawSession(inbound, async (s) => {
      await new Promise<void>((resolve) => s.once('data', () => resolve()));
      s.end();
    });
    assert.equal(r.text, '+HELLO\r\n');
  });
});
