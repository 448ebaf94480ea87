// The Bookinfo sample apps (examples/bookinfo/app) on their own, without a mesh: each runs as a real Node process
// on a free port, its upstreams replaced by HTTP servers in this test (or by nothing at all). They must forward
// the trace and user headers (and only those), survive failing upstreams with Bookinfo's "currently unavailable"
// messages, and serve their APIs; details must reach the gRPC stock service.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { freePort, ROOT, sleep } from '../helpers/mesh-processes.js';

const APP = join(ROOT, 'examples/bookinfo/app');

interface App {
  url: string;
  proc: ChildProcessWithoutNullStreams;
  stderr(): string;
}

const started: App[] = [];
const servers: http.Server[] = [];

/** Runs app `file` with `env` (no HTTP_PROXY: it calls its upstreams' URLs directly); waits for its port. */
async function startApp(file: string, env: Record<string, string>): Promise<App> {
  const clean = { ...process.env };
  for (const k of ['HTTP_PROXY', 'http_proxy', 'GRPC_XDS_BOOTSTRAP', 'WEFT_WORKLOAD']) delete clean[k];
  const proc = spawn(process.execPath, [join(APP, file)], { env: { ...clean, PORT: '0', ...env }, cwd: APP });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  for (let i = 0; i < 400 && !/127\.0\.0\.1:\d+/.test(out); i++) {
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  const port = /127\.0\.0\.1:(\d+)/.exec(out)?.[1];
  assert.ok(port, `${file} did not start: ${out}\n${err}`);
  const app = { url: `http://127.0.0.1:${port}`, proc, stderr: () => err };
  started.push(app);
  return app;
}

interface Upstream {
  url: string;
  seen: http.IncomingHttpHeaders[];
}

async function upstream(answer: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Upstream> {
  const u: Upstream = { url: '', seen: [] };
  const s = http.createServer((req, res) => {
    u.seen.push(req.headers);
    answer(req, res);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  servers.push(s);
  u.url = `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  return u;
}

const json = (res: http.ServerResponse, status: number, v: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(v));
};

describe('bookinfo sample apps', () => {
  after(async () => {
    for (const a of started) {
      if (a.proc.exitCode === null) {
        const exited = new Promise((r) => a.proc.once('exit', r));
        a.proc.kill('SIGTERM');
        await exited;
      }
    }
    for (const s of servers) {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  });

  test('productpage forwards the trace and user headers (only those) and survives a dead reviews service', async () => {
    const details = await upstream((req, res) =>
      json(res, 200, { id: 0, type: 'paperback', pages: 200, publisher: 'PublisherA', language: 'English', 'ISBN-10': '1234567890', 'ISBN-13': '123-1234567890', instance: 'd-0', stock: { available: 3, warehouse: 'Porto', instance: 's-0' } }),
    );
    const pp = await startApp('productpage.mjs', { DETAILS_URL: details.url, REVIEWS_URL: `http://127.0.0.1:${await freePort()}` });
    const res = await fetch(`${pp.url}/productpage`, {
      headers: { cookie: 'user=jason', 'x-request-id': 'req-1', traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01', 'x-b3-traceid': 'abc', 'x-secret': 'nope' },
    });
    assert.equal(res.status, 200);
    const page = await res.text();
    assert.match(page, /Sorry, product reviews are currently unavailable for this book\./);
    assert.match(page, /<table id="details" data-instance="d-0">/);
    assert.match(page, /3 in stock at Porto/);
    assert.match(page, /Signed in as <b id="user">jason<\/b>/);
    const h = details.seen.at(-1)!;
    assert.equal(h['end-user'], 'jason');
    assert.equal(h['x-request-id'], 'req-1');
    assert.equal(h['traceparent'], '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
    assert.equal(h['x-b3-traceid'], 'abc');
    assert.equal(h['cookie'], 'user=jason');
    assert.equal(h['x-secret'], undefined);
  });

  test('productpage shows which reviews version answered, and an upstream error with its status and flags', async () => {
    let fail = false;
    const reviews = await upstream((req, res) =>
      fail
        ? (res.writeHead(503, { 'x-weft-response-flags': 'UH' }), res.end('no healthy upstream'))
        : json(res, 200, { id: 0, version: 'v3', instance: 'reviews-v3-0', reviews: [{ reviewer: 'Reviewer1', text: 'Great', rating: { stars: 4, color: 'red' } }] }),
    );
    const pp = await startApp('productpage.mjs', { DETAILS_URL: `http://127.0.0.1:${await freePort()}`, REVIEWS_URL: reviews.url });
    let page = await (await fetch(`${pp.url}/`)).text();
    assert.match(page, /<div id="reviews" data-version="v3">/);
    assert.match(page, /data-stars="4" data-color="red">★★★★☆/);
    assert.match(page, /Sorry, product details are currently unavailable for this book\./);
    fail = true;
    page = await (await fetch(`${pp.url}/productpage`)).text();
    assert.match(page, /reviews are currently unavailable for this book\. \(answered 503 \(UH\): no healthy upstream\)/);
    const api = await fetch(`${pp.url}/api/v1/products/0/reviews`);
    assert.equal(api.status, 503);
    assert.match(((await api.json()) as { error: string }).error, /^reviews: answered 503/);
  });

  test('productpage: sign in and out, the JSON API, health, unknown paths', async () => {
    const pp = await startApp('productpage.mjs', { DETAILS_URL: `http://127.0.0.1:${await freePort()}`, REVIEWS_URL: `http://127.0.0.1:${await freePort()}` });
    const login = await fetch(`${pp.url}/login?user=jason`, { redirect: 'manual' });
    assert.equal(login.status, 302);
    assert.equal(login.headers.get('location'), '/productpage');
    assert.match(login.headers.get('set-cookie') ?? '', /^user=jason;/);
    assert.equal((await fetch(`${pp.url}/login?user=${encodeURIComponent('<script>')}`)).status, 400);
    assert.match((await fetch(`${pp.url}/logout`, { redirect: 'manual' })).headers.get('set-cookie') ?? '', /Max-Age=0/);
    assert.deepEqual(((await (await fetch(`${pp.url}/api/v1/products`)).json()) as Array<{ id: number }>).map((p) => p.id), [0]);
    assert.equal((await fetch(`${pp.url}/api/v1/products/7`)).status, 404);
    assert.equal((await fetch(`${pp.url}/health`)).status, 200);
    assert.equal((await fetch(`${pp.url}/nope`)).status, 404);
  });

  test('reviews: v1 has no ratings; v2 and v3 call ratings with the forwarded headers, and survive its failure', async () => {
    const ratings = await upstream((req, res) => json(res, 200, { id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } }));
    const v1 = await startApp('reviews.mjs', { SERVICE_VERSION: 'v1', RATINGS_URL: ratings.url });
    const v3 = await startApp('reviews.mjs', { SERVICE_VERSION: 'v3', ENABLE_RATINGS: 'true', STAR_COLOR: 'red', RATINGS_URL: ratings.url });
    const v2dead = await startApp('reviews.mjs', { SERVICE_VERSION: 'v2', ENABLE_RATINGS: 'true', RATINGS_URL: `http://127.0.0.1:${await freePort()}` });
    type Reviews = { version: string; reviews: Array<{ rating?: { stars?: number; color?: string; error?: string } }> };
    const r1 = (await (await fetch(`${v1.url}/reviews/0`)).json()) as Reviews;
    assert.equal(r1.version, 'v1');
    assert.equal(r1.reviews[0]!.rating, undefined);
    assert.equal(ratings.seen.length, 0);
    const r3 = (await (await fetch(`${v3.url}/reviews/0`, { headers: { 'end-user': 'jason', 'x-request-id': 'r-3' } })).json()) as Reviews;
    assert.deepEqual(r3.reviews.map((r) => r.rating), [{ stars: 5, color: 'red' }, { stars: 4, color: 'red' }]);
    assert.equal(ratings.seen.at(-1)!['end-user'], 'jason');
    assert.equal(ratings.seen.at(-1)!['x-request-id'], 'r-3');
    const r2 = (await (await fetch(`${v2dead.url}/reviews/0`)).json()) as Reviews;
    assert.equal(r2.version, 'v2');
    assert.match(r2.reviews[0]!.rating!.error!, /^ratings service is unavailable/);
  });

  test('details gets the stock from the gRPC stock service, and answers without it', async () => {
    const stock = await startApp('stock.mjs', {});
    const stockAddr = stock.url.replace('http://', '');
    const withStock = await startApp('details.mjs', { STOCK_TARGET: stockAddr });
    const d = (await (await fetch(`${withStock.url}/details/0`)).json()) as { stock: { available?: number; warehouse?: string; error?: string } };
    assert.deepEqual([d.stock.available, d.stock.warehouse], [12, 'Lisbon'], JSON.stringify(d));
    const noXds = await startApp('details.mjs', {});
    const n = (await (await fetch(`${noXds.url}/details/0`)).json()) as { author: string; stock: { error?: string } };
    assert.equal(n.author, 'William Shakespeare');
    assert.match(n.stock.error!, /GRPC_XDS_BOOTSTRAP is not set/);
  });
});
