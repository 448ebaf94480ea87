// The stats store (src/proxy/stats/store.ts, metric.ts, histogram.ts): stat identity, scopes and their removal,
// labelled families, external sources, histogram buckets/quantiles/intervals.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Counter,
  DEFAULT_BUCKETS,
  HistogramUnit,
  StatsStore,
  SUPPORTED_QUANTILES,
  parseStatsParams,
  renderStatsText,
  renderPrometheus,
  type StatsParams,
} from '../../src/proxy/stats/index.js';
import { ClusterRequestStats } from '../../src/proxy/stats/request-stats.js';

function params(query = ''): StatsParams {
  const r = parseStatsParams(new URLSearchParams(query));
  assert.ok('params' in r, 'valid params');
  return r.params;
}

/** `/stats` as a name → value map (histograms keep their summary text). */
function statsMap(store: StatsStore, query = ''): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of renderStatsText(store, params(query)).split('\n')) {
    if (line === '') continue;
    const i = line.indexOf(': ');
    m.set(line.slice(0, i), line.slice(i + 2));
  }
  return m;
}

describe('counters, gauges, text readouts', () => {
  test('creation through scopes names stats with the prefix; the same name is the same object', () => {
    const store = new StatsStore();
    const cs = store.scope('cluster.reviews.');
    const a = cs.counter('upstream_rq_total');
    const b = store.scope('cluster.reviews').counter('upstream_rq_total');
    assert.equal(a, b);
    assert.equal(a.name, 'cluster.reviews.upstream_rq_total');
    assert.equal(store.counter('cluster.reviews.upstream_rq_total'), a);
    const nested = cs.scope('outlier_detection.').gauge('ejections_active');
    assert.equal(nested.name, 'cluster.reviews.outlier_detection.ejections_active');

    a.inc();
    a.add(4);
    assert.equal(a.value, 5);
    const g = cs.gauge('upstream_cx_active');
    g.inc();
    g.inc();
    g.dec();
    g.add(10);
    g.sub(3);
    assert.equal(g.value, 8);
    g.set(2);
    const t = store.textReadout('server.version');
    t.set('weft/0.1.0');
    const m = statsMap(store);
    assert.equal(m.get('cluster.reviews.upstream_rq_total'), '5');
    assert.equal(m.get('cluster.reviews.upstream_cx_active'), '2');
    assert.equal(m.get('server.version'), '"weft/0.1.0"');
    assert.equal(m.get('cluster.reviews.outlier_detection.ejections_active'), '0');
  });

  test('used flags: a stat counts as used once written, even with 0', () => {
    const store = new StatsStore();
    const a = store.counter('a');
    const b = store.counter('b');
    const g = store.gauge('g');
    b.add(0);
    g.set(0);
    assert.equal(a.used, false);
    assert.equal(b.used, true);
    assert.deepEqual([...statsMap(store, 'usedonly').keys()], ['b', 'g']);
  });

  test('resetCounters zeroes counters (also family counters) and leaves gauges', () => {
    const store = new StatsStore();
    const c = store.counter('c');
    c.add(7);
    const g = store.gauge('g');
    g.set(3);
    const f = store.counterFamily('istio_requests_total', ['code']);
    f.get(['200']).add(2);
    store.resetCounters();
    assert.equal(c.value, 0);
    assert.equal(f.get(['200']).value, 0);
    assert.equal(g.value, 3);
  });
});

describe('scope removal', () => {
  test('removing a scope drops its stats (and its child scopes) from the output', () => {
    const store = new StatsStore();
    const a = store.scope('cluster.a.');
    const b = store.scope('cluster.b.');
    const rqA = a.counter('upstream_rq_total');
    a.scope('circuit_breakers.default.').gauge('cx_open').set(1);
    a.histogram('upstream_rq_time', HistogramUnit.Milliseconds).record(3);
    b.counter('upstream_rq_total').inc();
    assert.ok(statsMap(store).has('cluster.a.circuit_breakers.default.cx_open'));

    a.remove();
    const after = statsMap(store);
    assert.deepEqual([...after.keys()], ['cluster.b.upstream_rq_total']);
    assert.equal(a.isRemoved, true);
    // The request path may still hold the object: writing it is harmless and it stays unlisted.
    rqA.inc();
    assert.equal(rqA.value, 1);
    assert.equal(statsMap(store).has('cluster.a.upstream_rq_total'), false);
    // Creating through a removed scope gives a detached stat.
    const late = a.counter('late');
    late.inc();
    assert.equal(statsMap(store).has('cluster.a.late'), false);
    a.remove(); // idempotent
  });

  test('a stat shared by two scopes stays until both are removed; a re-created scope gets a fresh stat', () => {
    const store = new StatsStore();
    const s1 = store.scope('listener.127.0.0.1:15001.');
    const s2 = store.scope('listener.127.0.0.1:15001.');
    const c1 = s1.counter('downstream_cx_total');
    const c2 = s2.counter('downstream_cx_total');
    assert.equal(c1, c2);
    c1.add(3);
    s1.remove();
    assert.equal(statsMap(store).get('listener.127.0.0.1_15001.downstream_cx_total'), '3');
    s2.remove();
    assert.equal(statsMap(store).size, 0);
    const fresh = store.scope('listener.127.0.0.1:15001.').counter('downstream_cx_total');
    assert.notEqual(fresh, c1);
    assert.equal(fresh.value, 0);
  });
});

describe('labelled families (istio_* hook)', () => {
  test('get returns one cached child per label set', () => {
    const store = new StatsStore();
    const fam = store.counterFamily('istio_requests_total', ['reporter', 'source_workload', 'response_code']);
    const x = fam.get(['destination', 'productpage-v1', '200']);
    const again = fam.get(['destination', 'productpage-v1', '200']);
    const other = fam.get(['destination', 'productpage-v1', '503']);
    assert.equal(x, again);
    assert.notEqual(x, other);
    assert.ok(x instanceof Counter);
    x.inc();
    x.inc();
    other.inc();
    assert.equal(fam.children().length, 2);
    assert.equal(store.counterFamily('istio_requests_total', ['reporter', 'source_workload', 'response_code']), fam);
    // Listed under Envoy's name for explicitly tagged stats.
    const m = statsMap(store);
    assert.equal(m.get('istio_requests_total.reporter.destination.source_workload.productpage-v1.response_code.200'), '2');
    assert.equal(m.get('istio_requests_total.reporter.destination.source_workload.productpage-v1.response_code.503'), '1');
    // Label values with dots do not confuse the output: tags are explicit.
    fam.get(['source', 'reviews.default', '200']).inc();
    const prom = renderPrometheus(store, params());
    assert.match(prom, /^# TYPE istio_requests_total counter$/m);
    assert.match(prom, /^istio_requests_total\{reporter="destination",source_workload="productpage-v1",response_code="200"\} 2$/m);
    assert.match(prom, /^istio_requests_total\{reporter="source",source_workload="reviews.default",response_code="200"\} 1$/m);
  });

  test('delete and remove', () => {
    const store = new StatsStore();
    const fam = store.counterFamily('istio_tcp_connections_opened_total', ['reporter']);
    fam.get(['source']).inc();
    fam.get(['destination']).inc();
    assert.equal(fam.delete(['source']), true);
    assert.equal(fam.delete(['source']), false);
    assert.deepEqual([...statsMap(store).keys()], ['istio_tcp_connections_opened_total.reporter.destination']);
    fam.remove();
    assert.equal(statsMap(store).size, 0);
  });

  test('a family without labels has a single child', () => {
    const store = new StatsStore();
    const fam = store.gaugeFamily('istio_build', []);
    assert.equal(fam.get([]), fam.get([]));
    fam.get([]).set(1);
    assert.match(renderPrometheus(store, params()), /^istio_build\{\} 1$/m);
  });

  test('histogram families record per child with the family buckets', () => {
    const store = new StatsStore();
    const fam = store.histogramFamily('istio_request_duration_milliseconds', ['response_code'], HistogramUnit.Milliseconds);
    const h = fam.get(['200']);
    assert.deepEqual(h.bounds, DEFAULT_BUCKETS);
    h.record(7);
    const prom = renderPrometheus(store, params());
    assert.match(prom, /^# TYPE istio_request_duration_milliseconds histogram$/m);
    assert.match(prom, /^istio_request_duration_milliseconds_bucket\{response_code="200",le="10"\} 1$/m);
    assert.match(prom, /^istio_request_duration_milliseconds_count\{response_code="200"\} 1$/m);
    const custom = store.histogramFamily('istio_request_bytes', ['response_code'], HistogramUnit.Bytes, [1, 10, 100]);
    assert.deepEqual(custom.get(['200']).bounds, [1, 10, 100]);
  });

  test('misuse is refused at config time', () => {
    const store = new StatsStore();
    const fam = store.counterFamily('istio_requests_total', ['reporter']);
    assert.throws(() => fam.get(['a', 'b']), /takes 1 label values, got 2/);
    assert.throws(() => store.counterFamily('istio_requests_total', ['other']), /already exists as a counter family with labels \[reporter\]/);
    assert.throws(() => store.gaugeFamily('istio_requests_total', ['reporter']), /already exists/);
    assert.throws(() => store.counterFamily('bad-name', []), /must match/);
    assert.throws(() => store.counterFamily('ok_name', ['bad.label']), /label name/);
    assert.throws(() => store.counterFamily('dup', ['a', 'a']), /repeats a label name/);
  });
});

describe('stats sources', () => {
  test('a source lists stats under the scope prefix and goes away with its remover or the scope', () => {
    const store = new StatsStore();
    const fields = { upstream_rq_total: 4, upstream_cx_active: 2, lb_healthy_panic: 0 };
    const source = {
      forEach(cb: (name: string, value: number, kind: 'counter' | 'gauge') => void): void {
        cb('upstream_rq_total', fields.upstream_rq_total, 'counter');
        cb('upstream_cx_active', fields.upstream_cx_active, 'gauge');
        cb('lb_healthy_panic', fields.lb_healthy_panic, 'counter');
      },
    };
    const scope = store.scope('cluster.outbound|80||web.shop.svc.cluster.local.');
    const stop = scope.addSource(source);
    fields.upstream_rq_total = 9; // read at render time
    const m = statsMap(store);
    assert.equal(m.get('cluster.outbound|80||web.shop.svc.cluster.local.upstream_rq_total'), '9');
    assert.equal(m.get('cluster.outbound|80||web.shop.svc.cluster.local.upstream_cx_active'), '2');
    assert.equal(m.get('cluster.outbound|80||web.shop.svc.cluster.local.lb_healthy_panic'), '0');
    assert.equal(statsMap(store, 'usedonly').has('cluster.outbound|80||web.shop.svc.cluster.local.lb_healthy_panic'), false);
    const prom = renderPrometheus(store, params());
    assert.match(prom, /^envoy_cluster_upstream_rq_total\{envoy_cluster_name="outbound\|80\|\|web\.shop\.svc\.cluster\.local"\} 9$/m);
    assert.match(prom, /^# TYPE envoy_cluster_upstream_cx_active gauge$/m);
    stop();
    assert.equal(statsMap(store).size, 0);
    scope.addSource(source);
    assert.equal(statsMap(store).size, 3);
    scope.remove();
    assert.equal(statsMap(store).size, 0);
  });
});

describe('cluster request stats', () => {
  const CODES = ['upstream_rq_completed', 'upstream_rq_1xx', 'upstream_rq_2xx', 'upstream_rq_3xx', 'upstream_rq_4xx', 'upstream_rq_5xx'];

  test('listed as zero before the first response, counted after it (each name once); a replacement keeps the counts', () => {
    const store = new StatsStore();
    const scope = store.scope('cluster.c.');
    const cs = new ClusterRequestStats(scope);
    // No counter objects yet: the names are listed from the source.
    assert.equal(store.counterMap.size, 0);
    const idle = statsMap(store);
    for (const n of CODES) assert.equal(idle.get(`cluster.c.${n}`), '0', n);
    assert.equal(idle.get('cluster.c.upstream_rq_time'), 'No recorded values');
    assert.equal(statsMap(store, 'usedonly').size, 0);
    const before = renderPrometheus(store, params());

    cs.chargeCode(503);
    cs.chargeCode(200);
    const used = renderStatsText(store, params());
    for (const n of CODES) assert.equal(used.split('\n').filter((l) => l.startsWith(`cluster.c.${n}: `)).length, 1, n);
    const m = statsMap(store);
    assert.equal(m.get('cluster.c.upstream_rq_completed'), '2');
    assert.equal(m.get('cluster.c.upstream_rq_5xx'), '1');
    assert.equal(m.get('cluster.c.upstream_rq_2xx'), '1');
    assert.equal(m.get('cluster.c.upstream_rq_4xx'), '0');
    assert.equal(m.get('cluster.c.upstream_rq_503'), '1');

    // The cluster replaced (new scope of the same prefix, then the old one removed): the counters carry over.
    const next = new ClusterRequestStats(store.scope('cluster.c.'));
    scope.remove();
    assert.equal(statsMap(store).get('cluster.c.upstream_rq_completed'), '2');
    next.chargeCode(200);
    assert.equal(statsMap(store).get('cluster.c.upstream_rq_completed'), '3');

    // The Prometheus output of an unused cluster has the same series as that of counters created at zero.
    const eager = new StatsStore();
    const es = eager.scope('cluster.c.');
    for (const n of CODES) es.counter(n);
    es.histogram('upstream_rq_time', HistogramUnit.Milliseconds);
    assert.equal(before, renderPrometheus(eager, params()));
  });
});

describe('histograms', () => {
  test('a histogram allocates its buckets with the first value; until then it reads as zero', () => {
    const store = new StatsStore();
    const a = store.histogram('cluster.a.upstream_rq_time', HistogramUnit.Milliseconds);
    const b = store.histogram('cluster.b.upstream_rq_time', HistogramUnit.Milliseconds);
    // Nothing recorded: both read the one shared zero array.
    assert.equal(a.counts, b.counts);
    assert.deepEqual([...a.counts], new Array(DEFAULT_BUCKETS.length + 1).fill(0));
    assert.equal(a.cumulativeStatistics().count, 0);
    store.flushHistograms();
    a.record(3);
    assert.notEqual(a.counts, b.counts);
    assert.equal(a.counts[2], 1);
    assert.deepEqual([...b.counts], new Array(DEFAULT_BUCKETS.length + 1).fill(0));
    assert.equal(a.cumulativeStatistics().quantiles[SUPPORTED_QUANTILES.length - 1], 3.1);
  });

  test('Prometheus buckets are exact (a value equal to a bound is in that bucket), with sum and count', () => {
    const store = new StatsStore();
    const h = store.histogram('cluster.a.upstream_rq_time', HistogramUnit.Milliseconds);
    for (const v of [0, 0.5, 0.7, 1, 5, 5.0001, 3600000, 5000000]) h.record(v);
    const s = h.cumulativeStatistics();
    assert.equal(s.count, 8);
    assert.equal(s.sum, 0 + 0.5 + 0.7 + 1 + 5 + 5.0001 + 3600000 + 5000000);
    const at = (bound: number) => s.cumulativeBuckets[DEFAULT_BUCKETS.indexOf(bound)];
    assert.equal(at(0.5), 2);
    assert.equal(at(1), 4);
    assert.equal(at(5), 5);
    assert.equal(at(10), 6);
    assert.equal(at(3600000), 7);
    assert.equal(s.disjointBuckets[DEFAULT_BUCKETS.indexOf(10)], 1);
    assert.equal(h.counts[DEFAULT_BUCKETS.length], 1, 'overflow slot');
  });

  test('quantiles follow circllhist: one sample of 1 gives P25 1.025 ... P100 1.1', () => {
    const store = new StatsStore();
    const h = store.histogram('h');
    h.record(1);
    assert.deepEqual(h.cumulativeStatistics().quantiles, [1, 1.025, 1.05, 1.075, 1.09, 1.095, 1.099, 1.0995, 1.0999, 1.1]);
    assert.equal(SUPPORTED_QUANTILES.length, 10);
  });

  test('quantiles interpolate across two-digit log-linear bins', () => {
    const store = new StatsStore();
    const h = store.histogram('h');
    for (const v of [1, 1, 2, 3, 7, 12, 40]) h.record(v);
    const q = h.cumulativeStatistics().quantiles;
    assert.equal(q[0], 1);
    assert.equal(q[2], 3.05); // P50: rank 3.5 of 7 lies half-way through bin [3, 3.1)
    assert.equal(q[9], 41); // P100: top of bin [40, 41)
    const big = store.histogram('big');
    big.record(123456);
    assert.deepEqual([big.cumulativeStatistics().quantiles[0], big.cumulativeStatistics().quantiles[9]], [120000, 130000]);
    const small = store.histogram('small');
    small.record(0.0042);
    // Bin edges are computed as circllhist does ((val / 10) * 10^exp), float rounding included.
    assert.equal(small.cumulativeStatistics().quantiles[0], (42 / 10) * 1e-3);
    assert.ok(Math.abs(small.cumulativeStatistics().quantiles[0]! - 0.0042) < 1e-15);
  });

  test('zero, negative and NaN values count as 0; a lone zero bin gives quantiles of 0', () => {
    const store = new StatsStore();
    const h = store.histogram('h');
    h.record(0);
    h.record(-3);
    h.record(Number.NaN);
    const s = h.cumulativeStatistics();
    assert.equal(s.count, 3);
    assert.equal(s.sum, 0);
    assert.deepEqual(s.quantiles, new Array(10).fill(0));
    assert.equal(s.cumulativeBuckets[0], 3);
  });

  test('intervals: flush closes an interval; before the first flush the interval is empty (NaN quantiles)', () => {
    const store = new StatsStore();
    const h = store.histogram('h');
    h.record(10);
    assert.ok(Number.isNaN(h.intervalStatistics().quantiles[0]!));
    assert.equal(h.intervalStatistics().count, 0);
    store.flushHistograms();
    assert.equal(h.intervalStatistics().count, 1);
    assert.equal(h.intervalStatistics().quantiles[0], 10);
    h.record(20);
    h.record(20);
    store.flushHistograms();
    const iv = h.intervalStatistics();
    assert.equal(iv.count, 2);
    assert.equal(iv.sum, 40);
    assert.equal(iv.quantiles[0], 20);
    assert.equal(iv.cumulativeBuckets[DEFAULT_BUCKETS.indexOf(10)], 0);
    assert.equal(iv.cumulativeBuckets[DEFAULT_BUCKETS.indexOf(25)], 2);
    assert.equal(h.cumulativeStatistics().count, 3);
    store.flushHistograms();
    assert.equal(h.intervalStatistics().count, 0);
    assert.ok(Number.isNaN(h.intervalStatistics().quantiles[5]!));
  });

  test('the flush timer closes intervals by itself', async () => {
    const store = new StatsStore();
    const h = store.histogram('h');
    h.record(4);
    const stop = store.startFlushTimer(5);
    try {
      for (let i = 0; i < 400 && h.intervalStatistics().count === 0; i++) await new Promise((r) => setTimeout(r, 5));
      assert.equal(h.intervalStatistics().count, 1);
    } finally {
      stop();
    }
  });

  test('bucket settings pick bounds by name; bad bounds are refused', () => {
    const store = new StatsStore({
      histogramBucketSettings: [
        { match: { suffix: '_bytes' }, buckets: [100, 1000, 10000] },
        { match: { regex: 'cluster\\..*\\.upstream_cx_length_ms' }, buckets: [1, 60000] },
      ],
    });
    assert.deepEqual(store.histogram('http.x.downstream_rq_bytes').bounds, [100, 1000, 10000]);
    assert.deepEqual(store.scope('cluster.a.').histogram('upstream_cx_length_ms').bounds, [1, 60000]);
    assert.deepEqual(store.histogram('cluster.a.upstream_rq_time').bounds, DEFAULT_BUCKETS);
    assert.deepEqual(store.histogram('explicit', HistogramUnit.Unspecified, [2, 4]).bounds, [2, 4]);
    assert.throws(() => new StatsStore({ histogramBucketSettings: [{ match: { prefix: 'a' }, buckets: [5, 1] }] }), /strictly increasing/);
    assert.throws(() => new StatsStore({ histogramBucketSettings: [{ match: {}, buckets: [1] }] }), /needs a matcher/);
    assert.throws(() => store.histogram('empty', HistogramUnit.Unspecified, []), /must not be empty/);
  });
});
