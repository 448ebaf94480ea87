// The traffic generator (src/runtime/traffic.ts) against real HTTP servers on loopback: what it counts, that it
// reuses connections, that it never has more than maxInFlight requests outstanding against a slow server (it
// skips instead of queueing), that its rate stays bounded, and that stop() leaves nothing open.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTraffic } from '../../src/runtime/traffic.js';

interface TestServer {
  url: string;
  requests: number;
  sockets: Set<unknown>;
  allSockets: number;
  concurrent: number;
  maxConcurrent: number;
  lastHeaders: http.IncomingHttpHeaders | undefined;
  close(): Promise<void>;
}

/** An HTTP server whose answer `respond` decides (it may hold the response). */
async function server(respond: (req: http.IncomingMessage, res: http.ServerResponse, n: number) => void): Promise<TestServer> {
  const s: TestServer = {
    url: '',
    requests: 0,
    sockets: new Set(),
    allSockets: 0,
    concurrent: 0,
    maxConcurrent: 0,
    lastHeaders: undefined,
    close: async () => {},
  };
  const srv = http.createServer((req, res) => {
    s.requests++;
    s.concurrent++;
    s.maxConcurrent = Math.max(s.maxConcurrent, s.concurrent);
    s.lastHeaders = req.headers;
    res.on('close', () => s.concurrent--);
    respond(req, res, s.requests);
  });
  srv.on('connection', (sock) => {
    s.allSockets++;
    s.sockets.add(sock);
    sock.on('close', () => s.sockets.delete(sock));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  s.url = `http://127.0.0.1:${(srv.address() as AddressInfo).port}/productpage`;
  s.close = () =>
    new Promise<void>((r) => {
      srv.closeAllConnections();
      srv.close(() => r());
    });
  return s;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what: string, cond: () => boolean, ms = 20_000): Promise<void> {
  for (let i = 0; i < ms / 50; i++) {
    if (cond()) return;
    await sleep(50);
  }
  assert.fail(`timed out waiting for ${what}`);
}

describe('traffic generator', () => {
  const servers: TestServer[] = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  test('counts answers by status, sends the headers, reuses keep-alive connections', async () => {
    const s = await server((req, res, n) => {
      res.writeHead(n % 4 === 0 ? 503 : 200, { 'content-type': 'text/plain' });
      res.end(n % 4 === 0 ? 'no healthy upstream' : 'ok');
    });
    servers.push(s);
    const t = startTraffic({ target: s.url, rps: 50, headers: { 'end-user': 'jason' } });
    await waitFor('40 answers', () => t.stats().ok + t.stats().failed >= 40);
    const running = t.stats();
    assert.equal(running.ok + running.failed + running.inFlight, running.sent, 'every request sent is answered or in flight');
    await t.stop();
    const st = t.stats();
    assert.equal(st.inFlight, 0);
    assert.equal(st.ok + st.failed, running.ok + running.failed, 'requests aborted by stop() are not counted');
    assert.equal(st.ok, st.byStatus['200']);
    assert.equal(st.failed, st.byStatus['503']);
    assert.ok(st.byStatus['503']! > 0 && st.byStatus['200']! > st.byStatus['503']!, JSON.stringify(st));
    assert.equal(st.byStatus['error'], undefined);
    assert.ok(s.requests >= st.ok + st.failed && s.requests <= st.sent, `${s.requests} requests at the server, ${st.sent} sent`);
    assert.equal(s.lastHeaders?.['end-user'], 'jason');
    // Keep-alive: far fewer connections than requests (at most maxInFlight = 64 could ever be open at once).
    assert.ok(s.allSockets < st.sent / 2, `${s.allSockets} connections for ${st.sent} requests`);
    await waitFor('the connections to close after stop()', () => s.sockets.size === 0);
  });

  test('a slow target: never more than maxInFlight outstanding, the rest skipped, and stop() aborts them', async () => {
    const held: http.ServerResponse[] = [];
    const s = await server((req, res) => held.push(res)); // never answers on its own
    servers.push(s);
    const t = startTraffic({ target: s.url, rps: 100, maxInFlight: 3 });
    await waitFor('requests to be skipped', () => t.stats().skipped >= 20);
    assert.equal(s.maxConcurrent, 3);
    assert.equal(t.stats().inFlight, 3);
    assert.equal(t.stats().sent, 3);
    // Answer one: a slot frees and exactly one more request goes out.
    held.shift()!.end('late');
    await waitFor('the next request', () => s.requests === 4);
    assert.equal(t.stats().ok, 1);
    await t.stop();
    assert.equal(t.stats().inFlight, 0);
    assert.equal(t.stats().failed, 0, 'requests aborted by stop() are not failures');
    await waitFor('the connections to close', () => s.sockets.size === 0);
  });

  test('the rate stays bounded: never more than rps per second plus the one-second burst', async () => {
    const s = await server((req, res) => res.end('ok'));
    servers.push(s);
    const t0 = performance.now();
    const t = startTraffic({ target: s.url, rps: 20 });
    await waitFor('30 requests', () => t.stats().sent >= 30);
    await sleep(500);
    await t.stop();
    const elapsed = (performance.now() - t0) / 1000;
    assert.ok(t.stats().sent <= Math.ceil(20 * elapsed) + 20 + 1, `${t.stats().sent} requests in ${elapsed.toFixed(2)} s at 20 rps`);
  });

  test('connection failures and timeouts count as errors', async () => {
    const s = await server((req, res) => {
      if (s.requests % 2 === 0) req.socket.destroy();
      // odd requests are never answered: they time out
    });
    servers.push(s);
    const t = startTraffic({ target: s.url, rps: 20, timeoutMs: 200 });
    await waitFor('6 errors', () => (t.stats().byStatus['error'] ?? 0) >= 6);
    await t.stop();
    assert.equal(t.stats().ok, 0);
    assert.equal(t.stats().failed, t.stats().byStatus['error']);
  });

  test('bad options are refused with a message naming them', () => {
    assert.throws(() => startTraffic({ target: 'not a url', rps: 1 }), /traffic target "not a url" is not a URL/);
    assert.throws(() => startTraffic({ target: 'ftp://127.0.0.1/', rps: 1 }), /only http:\/\/ and https:\/\//);
    assert.throws(() => startTraffic({ target: 'http://127.0.0.1:1/', rps: 0 }), /rps must be a number in \(0, 10000\]/);
    assert.throws(() => startTraffic({ target: 'http://127.0.0.1:1/', rps: 1, maxInFlight: 0 }), /maxInFlight must be an integer >= 1/);
  });
});
