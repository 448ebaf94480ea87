// Large stats outputs sent piece by piece (src/proxy/admin/stream.ts, the *Chunks renderers of stats/render.ts) over
// real sockets: a proxy-sized store's /stats/prometheus on the stats port and /stats, /stats?format=json on the admin
// port arrive complete and equal to the one-string rendering; a reader that stops reading holds the sender back.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request, type IncomingMessage } from 'node:http';
import { startAdmin, type AdminServer } from '../../src/proxy/admin/index.js';
import { startStatsServer, type StatsServer } from '../../src/proxy/admin-wiring.js';
import { CHUNK_CHARS, parseStatsParams, renderPrometheus, renderStatsJson, renderStatsText, type StatsParams } from '../../src/proxy/stats/index.js';
import { proxyStore } from '../helpers/stats-store.js';
import { parsePrometheus } from '../helpers/prometheus-parse.js';
import { freePort } from '../helpers/mesh-processes.js';

function params(query: string, prometheus: boolean): StatsParams {
  const r = parseStatsParams(new URLSearchParams(query), prometheus);
  if ('error' in r) assert.fail(r.error);
  return r.params;
}

interface Read {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** GET, reading the whole body. */
function get(port: number, path: string): Promise<Read> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

describe('large stats outputs, piece by piece', () => {
  const store = proxyStore(1000);
  let stats: StatsServer;
  let admin: AdminServer;
  before(async () => {
    stats = await startStatsServer({ store, port: await freePort(), host: '127.0.0.1' });
    admin = await startAdmin({ port: await freePort(), handlers: { stats: store } });
  });
  after(async () => {
    await stats.close();
    await admin.close();
  });

  test('/stats/prometheus of 1,000 clusters on the stats port: complete, chunked, equal to the one-string rendering', async () => {
    const r = await get(stats.port, '/stats/prometheus');
    assert.equal(r.status, 200);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    const expected = renderPrometheus(store, params('', true));
    assert.ok(expected.length > 40 * CHUNK_CHARS, `a large output (${expected.length} characters)`);
    assert.equal(r.body.length, expected.length);
    assert.ok(r.body === expected, 'same text');
    const fams = parsePrometheus(r.body);
    assert.equal(fams.get('envoy_cluster_upstream_rq_total')?.samples.length, 1000);
    assert.equal(fams.get('envoy_cluster_upstream_rq_time')?.samples.filter((x) => x.name.endsWith('_count')).length, 1000);
    // Query parameters go through too.
    const used = await get(stats.port, '/stats/prometheus?usedonly&filter=svc-7%5C.');
    assert.equal(used.body, renderPrometheus(store, params('usedonly&filter=svc-7%5C.', true)));
    assert.ok(used.body.includes('envoy_cluster_name="outbound|8080||svc-7.default.svc.cluster.local"'));
  });

  test('/stats, /stats?format=json (and pretty) on the admin port: equal to the one-string rendering', async () => {
    const text = await get(admin.port, '/stats');
    assert.equal(text.headers['transfer-encoding'], 'chunked');
    assert.ok(text.body === renderStatsText(store, params('', false)), 'text');
    const json = await get(admin.port, '/stats?format=json');
    assert.equal(json.headers['content-type'], 'application/json');
    assert.ok(json.body === renderStatsJson(store, params('format=json', false)), 'json');
    const doc = JSON.parse(json.body) as { stats: Array<{ name?: string }> };
    assert.equal(doc.stats.filter((x) => x.name?.endsWith('.upstream_rq_total')).length, 1000);
    const pretty = await get(admin.port, '/stats?format=json&pretty&histogram_buckets=cumulative');
    assert.equal(pretty.body, JSON.stringify(JSON.parse(renderStatsJson(store, params('format=json&histogram_buckets=cumulative', false))), null, 2));
    // In-process requests get the whole body as a string.
    const inproc = await admin.request('GET', '/stats/prometheus?filter=svc-1%5C.');
    assert.equal(inproc.chunks, undefined);
    assert.equal(inproc.body, renderPrometheus(store, params('filter=svc-1%5C.', true)));
  });

  test('a client that stops reading holds the sender back; it gets everything once it reads again', async () => {
    const pieces = 600;
    const piece = 'x'.repeat(CHUNK_CHARS - 1) + '\n';
    let pulled = 0;
    admin.addHandler('/big', 'a large body', () => ({
      status: 200,
      body: '',
      chunks: (function* () {
        for (let i = 0; i < pieces; i++) {
          pulled++;
          yield piece;
        }
      })(),
    }));
    const total = await new Promise<number>((resolve, reject) => {
      request({ host: '127.0.0.1', port: admin.port, path: '/big', agent: false }, (res) => {
        res.pause();
        setTimeout(() => {
          // The kernel's socket buffers (a few MB) hold some pieces; the rest waits for the reader.
          assert.ok(pulled < pieces / 2, `pulled ${pulled} of ${pieces} pieces while the client was not reading`);
          let n = 0;
          res.on('data', (c: Buffer) => (n += c.length));
          res.on('end', () => resolve(n));
          res.resume();
        }, 500);
      })
        .on('error', reject)
        .end();
    });
    assert.equal(total, pieces * piece.length);
    assert.equal(pulled, pieces);
  });

  test('a piece that throws before anything is sent answers 500', async () => {
    admin.addHandler('/broken', 'a body that fails', () => ({
      status: 200,
      body: '',
      chunks: (function* (): Generator<string> {
        throw new Error('render failed');
      })(),
    }));
    const r = await get(admin.port, '/broken');
    assert.equal(r.status, 500);
    assert.match(r.body, /render failed/);
  });
});
