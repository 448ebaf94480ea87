// The /stats outputs (src/proxy/stats/render.ts): text, JSON and the Prometheus exposition format, checked with a
// small Prometheus text parser; query parameters; number formatting.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_BUCKETS,
  HistogramUnit,
  StatsStore,
  formatG,
  formatShortest,
  parseStatsParams,
  renderPrometheus,
  renderStatsJson,
  renderStatsText,
  type StatsParams,
} from '../../src/proxy/stats/index.js';
import { parsePrometheus, type PromFamily } from '../helpers/prometheus-parse.js';
import { RE2JS } from 're2js';
import { compileStatFilter, Under } from '../../src/proxy/stats/render.js';
import { SCRAPE_QUERY } from '../../src/controlplane/telemetry/telemetry.js';

function params(query = '', prometheus = false): StatsParams {
  const r = parseStatsParams(new URLSearchParams(query), prometheus);
  if ('error' in r) assert.fail(`params ${query}: ${r.error}`);
  return r.params;
}

function sample(f: PromFamily | undefined, name: string, labels: Record<string, string>): number {
  assert.ok(f, `family for ${name}`);
  const s = f.samples.find((x) => x.name === name && JSON.stringify(x.labels) === JSON.stringify(labels));
  assert.ok(s, `${name}${JSON.stringify(labels)} in ${JSON.stringify(f.samples.map((x) => [x.name, x.labels]))}`);
  return s.value;
}

const REVIEWS = 'outbound|9080||reviews.default.svc.cluster.local';

/** A store like a proxy's: a cluster, an HTTP connection manager, a listener, a family, a text readout. */
function sampleStore(): StatsStore {
  const store = new StatsStore();
  const cl = store.scope(`cluster.${REVIEWS}.`);
  cl.counter('upstream_rq_total').add(7);
  cl.counter('upstream_rq_200').add(6);
  cl.counter('upstream_rq_503').add(1);
  cl.counter('upstream_rq_2xx').add(6);
  cl.counter('upstream_rq_5xx').add(1);
  cl.counter('upstream_cx_destroy');
  cl.gauge('upstream_cx_active').set(2);
  const rt = cl.histogram('upstream_rq_time', HistogramUnit.Milliseconds);
  for (const v of [1, 1, 2, 3, 7, 12, 40]) rt.record(v);
  cl.histogram('upstream_cx_connect_ms', HistogramUnit.Milliseconds);
  const other = store.scope('cluster.outbound|80||web.shop.svc.cluster.local.');
  other.counter('upstream_rq_total').add(2);
  const http = store.scope('http.outbound_0.0.0.0_9080.');
  http.counter('downstream_rq_2xx').add(6);
  http.counter('downstream_rq_total').add(7);
  http.histogram('downstream_rq_time', HistogramUnit.Milliseconds).record(5);
  store.scope('listener.127.0.0.1:15001.').counter('downstream_cx_total').add(3);
  store.gauge('server.live').set(1);
  store.textReadout('server.version').set('weft/0.1.0 "dev"');
  store.counterFamily('istio_requests_total', ['reporter', 'destination_service', 'response_code']).get(['destination', 'reviews.default.svc.cluster.local', '200']).add(6);
  return store;
}

describe('text output', () => {
  test('text readouts, then counters and gauges sorted together, then histograms', () => {
    const store = new StatsStore();
    store.counter('b.counter').add(2);
    store.gauge('a.gauge').set(5);
    store.counter('c.zero');
    store.textReadout('z.version').set('1.2');
    const h = store.histogram('b.hist');
    store.histogram('a.unused');
    h.record(1);
    store.flushHistograms();
    assert.equal(
      renderStatsText(store, params()),
      [
        'z.version: "1.2"',
        'a.gauge: 5',
        'b.counter: 2',
        'c.zero: 0',
        'a.unused: No recorded values',
        'b.hist: P0(1,1) P25(1.025,1.025) P50(1.05,1.05) P75(1.075,1.075) P90(1.09,1.09) P95(1.095,1.095) P99(1.099,1.099) P99.5(1.0995,1.0995) P99.9(1.0999,1.0999) P100(1.1,1.1)',
        '',
      ].join('\n'),
    );
  });

  test('an interval without samples prints nan, as Envoy', () => {
    const store = new StatsStore();
    store.histogram('h').record(1);
    assert.match(renderStatsText(store, params()), /^h: P0\(nan,1\) P25\(nan,1\.025\) .* P100\(nan,1\.1\)$/m);
  });

  test('bucket modes print B<bound>(interval,cumulative)', () => {
    const store = new StatsStore();
    const h = store.histogram('h');
    h.record(0.2);
    store.flushHistograms();
    h.record(3);
    h.record(2000000);
    const cum = renderStatsText(store, params('histogram_buckets=cumulative')).trim();
    assert.equal(
      cum,
      'h: B0.5(1,1) B1(1,1) B5(1,2) B10(1,2) B25(1,2) B50(1,2) B100(1,2) B250(1,2) B500(1,2) B1000(1,2) B2500(1,2) B5000(1,2) B10000(1,2) B30000(1,2) B60000(1,2) B300000(1,2) B600000(1,2) B1.8e+06(1,2) B3.6e+06(1,3)',
    );
    const dis = renderStatsText(store, params('histogram_buckets=disjoint')).trim();
    assert.match(dis, /^h: B0\.5\(1,1\) B1\(0,0\) B5\(0,1\) B10\(0,0\) .* B3\.6e\+06\(0,1\)$/);
  });

  test('filter (RE2, partial match), usedonly and type', () => {
    const store = sampleStore();
    const names = (q: string) =>
      renderStatsText(store, params(q))
        .split('\n')
        .filter((l) => l)
        .map((l) => l.slice(0, l.indexOf(': ')));
    assert.deepEqual(names('filter=upstream_rq_[0-9]{3}$'), [`cluster.${REVIEWS}.upstream_rq_200`, `cluster.${REVIEWS}.upstream_rq_503`]);
    assert.deepEqual(names('filter=^listener\\.'), ['listener.127.0.0.1_15001.downstream_cx_total']);
    assert.ok(!names('usedonly').includes(`cluster.${REVIEWS}.upstream_cx_destroy`));
    assert.ok(names('').includes(`cluster.${REVIEWS}.upstream_cx_destroy`));
    assert.ok(!names('usedonly').includes(`cluster.${REVIEWS}.upstream_cx_connect_ms`), 'unused histogram hidden by usedonly');
    assert.deepEqual(names('type=Gauges'), [`cluster.${REVIEWS}.upstream_cx_active`, 'server.live']);
    assert.deepEqual(names('type=TextReadouts'), ['server.version']);
    assert.deepEqual(names('type=Histograms&usedonly'), ['http.outbound_0.0.0.0_9080.downstream_rq_time', `cluster.${REVIEWS}.upstream_rq_time`].sort());
    assert.ok(names('type=Counters').every((n) => !n.endsWith('upstream_cx_active')));
  });
});

describe('JSON output', () => {
  test('stats array with numeric values, text readouts as strings, and a histograms object', () => {
    const store = sampleStore();
    const doc = JSON.parse(renderStatsJson(store, params('format=json'))) as { stats: Array<Record<string, unknown>> };
    const byName = new Map(doc.stats.filter((s) => 'name' in s).map((s) => [s.name as string, s.value]));
    assert.equal(byName.get(`cluster.${REVIEWS}.upstream_rq_total`), 7);
    assert.equal(byName.get('server.version'), 'weft/0.1.0 "dev"');
    assert.equal(byName.get('istio_requests_total.reporter.destination.destination_service.reviews.default.svc.cluster.local.response_code.200'), 6);
    const last = doc.stats[doc.stats.length - 1] as { histograms: { supported_quantiles: number[]; computed_quantiles: Array<{ name: string; values: Array<{ cumulative: number | null; interval: number | null }> }> } };
    assert.deepEqual(last.histograms.supported_quantiles, [0, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 100]);
    const rt = last.histograms.computed_quantiles.find((q) => q.name === `cluster.${REVIEWS}.upstream_rq_time`);
    assert.ok(rt);
    assert.equal(rt.values.length, 10);
    assert.deepEqual(rt.values[2], { cumulative: 3.05, interval: null });
    const unused = last.histograms.computed_quantiles.find((q) => q.name === `cluster.${REVIEWS}.upstream_cx_connect_ms`);
    assert.deepEqual(unused?.values[0], { cumulative: null, interval: null });
  });

  test('with histogram_buckets the histograms entry lists buckets', () => {
    const store = new StatsStore();
    store.histogram('h').record(3);
    const doc = JSON.parse(renderStatsJson(store, params('format=json&histogram_buckets=cumulative'))) as { stats: Array<{ histograms: Array<{ name: string; buckets: Array<{ upper_bound: number; interval: number; cumulative: number }> }> }> };
    const h = doc.stats[0]!.histograms[0]!;
    assert.equal(h.name, 'h');
    assert.equal(h.buckets.length, DEFAULT_BUCKETS.length);
    assert.deepEqual(h.buckets[2], { upper_bound: 5, interval: 0, cumulative: 1 });
  });

  test('no histograms entry when none is shown', () => {
    const store = new StatsStore();
    store.counter('c').inc();
    assert.deepEqual(JSON.parse(renderStatsJson(store, params('format=json'))), { stats: [{ name: 'c', value: 1 }] });
  });
});

describe('Prometheus output', () => {
  test('names, labels, types and groups', () => {
    const store = sampleStore();
    const text = renderPrometheus(store, params('', true));
    const fams = parsePrometheus(text);

    const rq = fams.get('envoy_cluster_upstream_rq');
    assert.equal(rq?.type, 'counter');
    assert.equal(sample(rq, 'envoy_cluster_upstream_rq', { envoy_response_code: '200', envoy_cluster_name: REVIEWS }), 6);
    assert.equal(sample(rq, 'envoy_cluster_upstream_rq', { envoy_response_code: '503', envoy_cluster_name: REVIEWS }), 1);
    const xx = fams.get('envoy_cluster_upstream_rq_xx');
    assert.equal(sample(xx, 'envoy_cluster_upstream_rq_xx', { envoy_response_code_class: '2', envoy_cluster_name: REVIEWS }), 6);
    const total = fams.get('envoy_cluster_upstream_rq_total');
    assert.equal(total?.samples.length, 2, 'both clusters in one group');
    assert.equal(sample(total, 'envoy_cluster_upstream_rq_total', { envoy_cluster_name: 'outbound|80||web.shop.svc.cluster.local' }), 2);
    assert.equal(sample(fams.get('envoy_http_downstream_rq_xx'), 'envoy_http_downstream_rq_xx', { envoy_response_code_class: '2', envoy_http_conn_manager_prefix: 'outbound_0.0.0.0_9080' }), 6);
    assert.equal(sample(fams.get('envoy_listener_downstream_cx_total'), 'envoy_listener_downstream_cx_total', { envoy_listener_address: '127.0.0.1_15001' }), 3);
    assert.equal(fams.get('envoy_cluster_upstream_cx_active')?.type, 'gauge');
    assert.equal(sample(fams.get('envoy_server_live'), 'envoy_server_live', {}), 1);
    assert.match(text, /^envoy_server_live\{\} 1$/m, 'a metric without tags prints {} as Envoy');
    assert.equal(sample(fams.get('istio_requests_total'), 'istio_requests_total', { reporter: 'destination', destination_service: 'reviews.default.svc.cluster.local', response_code: '200' }), 6);
    assert.equal(fams.has('envoy_server_version'), false, 'text readouts only with text_readouts');

    // Counters first, then gauges, then histograms.
    const order = [...fams.values()].map((f) => f.type);
    const firstGauge = order.indexOf('gauge');
    const firstHist = order.indexOf('histogram');
    assert.ok(order.slice(0, firstGauge).every((t) => t === 'counter'));
    assert.ok(order.slice(firstGauge, firstHist).every((t) => t === 'gauge'));
    assert.ok(order.slice(firstHist).every((t) => t === 'histogram'));
  });

  test('histograms: cumulative buckets with Envoy default bounds, +Inf equals count, sum', () => {
    const fams = parsePrometheus(renderPrometheus(sampleStore(), params('', true)));
    const h = fams.get('envoy_cluster_upstream_rq_time');
    assert.equal(h?.type, 'histogram');
    const buckets = h.samples.filter((s) => s.name === 'envoy_cluster_upstream_rq_time_bucket' && s.labels.envoy_cluster_name === REVIEWS);
    assert.deepEqual(
      buckets.map((b) => b.labels.le),
      [...DEFAULT_BUCKETS.map((b) => String(b)), '+Inf'],
    );
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]!.value >= buckets[i - 1]!.value, 'cumulative');
    assert.deepEqual(
      buckets.slice(0, 6).map((b) => b.value),
      [0, 2, 4, 5, 6, 7],
    );
    assert.equal(buckets[buckets.length - 1]!.value, 7);
    assert.equal(sample(h, 'envoy_cluster_upstream_rq_time_count', { envoy_cluster_name: REVIEWS }), 7);
    assert.equal(sample(h, 'envoy_cluster_upstream_rq_time_sum', { envoy_cluster_name: REVIEWS }), 66);
    // The unused histogram is there too, all zero.
    assert.equal(sample(fams.get('envoy_cluster_upstream_cx_connect_ms'), 'envoy_cluster_upstream_cx_connect_ms_count', { envoy_cluster_name: REVIEWS }), 0);
  });

  test('usedonly, filter (on the full stat name) and text_readouts', () => {
    const store = sampleStore();
    const used = parsePrometheus(renderPrometheus(store, params('usedonly', true)));
    assert.equal(used.has('envoy_cluster_upstream_cx_destroy'), false);
    assert.equal(used.has('envoy_cluster_upstream_cx_connect_ms'), false);
    assert.equal(used.has('envoy_cluster_upstream_rq_time'), true);
    const filtered = parsePrometheus(renderPrometheus(store, params('filter=reviews', true)));
    assert.equal(filtered.get('envoy_cluster_upstream_rq_total')?.samples.length, 1);
    assert.equal(filtered.has('envoy_listener_downstream_cx_total'), false);
    const tr = parsePrometheus(renderPrometheus(store, params('text_readouts', true)));
    assert.equal(tr.get('envoy_server_version')?.type, 'gauge');
    assert.equal(sample(tr.get('envoy_server_version'), 'envoy_server_version', { text_value: 'weft/0.1.0 "dev"' }), 0);
  });

  test('label values are escaped', () => {
    const store = new StatsStore();
    store.counterFamily('istio_requests_total', ['path']).get(['a\\b"c\nd']).inc();
    const text = renderPrometheus(store, params('', true));
    assert.match(text, /^istio_requests_total\{path="a\\\\b\\"c\\nd"\} 1$/m);
    assert.equal(sample(parsePrometheus(text).get('istio_requests_total'), 'istio_requests_total', { path: 'a\\b"c\nd' }), 1);
  });

  test('histogram_buckets=summary prints quantiles of the last interval', () => {
    const store = new StatsStore();
    const h = store.scope('cluster.a.').histogram('upstream_rq_time');
    h.record(1);
    store.flushHistograms();
    const fams = parsePrometheus(renderPrometheus(store, params('histogram_buckets=summary', true)));
    const f = fams.get('envoy_cluster_upstream_rq_time');
    assert.equal(f?.type, 'summary');
    assert.equal(sample(f, 'envoy_cluster_upstream_rq_time', { envoy_cluster_name: 'a', quantile: '0.5' }), 1.05);
    assert.equal(sample(f, 'envoy_cluster_upstream_rq_time', { envoy_cluster_name: 'a', quantile: '1' }), 1.1);
    assert.equal(sample(f, 'envoy_cluster_upstream_rq_time_count', { envoy_cluster_name: 'a' }), 1);
  });
});

/** sampleStore plus what a proxy has besides: cluster stats kept in a source, an inbound cluster, more families. */
function proxyLikeStore(): StatsStore {
  const store = sampleStore();
  const ejected = { active: 2 };
  for (const [cluster, ejections] of [[REVIEWS, ejected], ['outbound|80||web.shop.svc.cluster.local', { active: 0 }], ['inbound|9080||', { active: 1 }]] as const) {
    store.scope(`cluster.${cluster}.`).addSource({
      forEach(cb) {
        cb('membership_total', 1, 'gauge');
        cb('upstream_rq_retry', 0, 'counter');
        cb('outlier_detection.ejections_active', ejections.active, 'gauge');
        cb('outlier_detection.ejections_total', ejections.active, 'counter');
        cb('circuit_breakers.default.cx_open', 0, 'gauge');
      },
    });
  }
  store.counterFamily('istio_requests_total_other', ['reporter']).get(['source']).inc();
  store.counterFamily('istio_tcp_connections_opened_total', ['reporter']).get(['destination']).inc();
  store.histogramFamily('istio_request_duration_milliseconds', ['reporter', 'response_code'], HistogramUnit.Milliseconds).get(['destination', '200']).record(12);
  store.histogramFamily('istio_request_duration_milliseconds', ['reporter', 'response_code'], HistogramUnit.Milliseconds).get(['destination', '503']);
  store.counterFamily('istio_requests_total', ['reporter', 'destination_service', 'response_code']).get(['source', 'a\nx', '200']);
  store.counterFamily('istio_requests_total', ['reporter', 'destination_service', 'response_code']).get(['source', 'line\nbreak', '200']).inc();
  return store;
}

describe('filter: literal alternatives matched without a regex engine', () => {
  // From the JSON output: names may hold a newline (a label value).
  const names = (store: StatsStore, q: string): string[] => {
    const doc = JSON.parse(renderStatsJson(store, params(`format=json&${q}`))) as { stats: Array<{ name?: string; histograms?: { computed_quantiles: Array<{ name: string }> } }> };
    return doc.stats.flatMap((x) => (x.name !== undefined ? [x.name] : (x.histograms?.computed_quantiles.map((h) => h.name) ?? [])));
  };

  test('every filter selects exactly what RE2 (partial match) selects, with and without usedonly', () => {
    const store = proxyLikeStore();
    const filters = [
      '^cluster\\.outbound\\|.*\\.outlier_detection\\.ejections_active$',
      '^istio_requests_total\\.|^istio_request_duration_milliseconds\\.',
      'upstream_rq_total',
      'rq_total$',
      '^listener\\.',
      '^server\\.live$',
      'cluster.*reviews.*_active',
      '^cluster\\..*_open$|^http\\.',
      '\\.outlier_detection\\.',
      '^istio_requests_total\\..*x.*200$',
      '^$',
      '.*',
      'upstream_rq_[0-9]{3}$',
      '(?i)SERVER',
    ];
    for (const re of filters) {
      const compiled = RE2JS.compile(re);
      for (const used of ['', 'usedonly&']) {
        const expected = names(store, used).filter((n) => compiled.test(n));
        assert.deepEqual(names(store, `${used}filter=${encodeURIComponent(re)}`), expected, `${used}filter=${re}`);
      }
    }
    // A name with a newline is matched by the regex (`.` does not match it).
    assert.deepEqual(names(store, `filter=${encodeURIComponent('^istio_requests_total\\..*break')}`), []);
  });

  test('stats of scopes whose names begin one another are still in name order (text) and token order (Prometheus)', () => {
    const store = new StatsStore();
    const names = ['a', 'a.b', 'a-b', 'a.b.c', 'ab', 'a_', 'b', 'a.a'];
    for (const n of [...names].reverse()) {
      store.scope(`cluster.${n}.`).addSource({
        forEach(cb) {
          cb('upstream_rq_total', 1, 'counter');
          cb('membership_total', 2, 'gauge');
        },
      });
    }
    store.scope('cluster.a.').counter('upstream_rq_total_extra').inc();
    const text = renderStatsText(store, params())
      .split('\n')
      .filter((l) => l)
      .map((l) => l.slice(0, l.lastIndexOf(': ')));
    assert.deepEqual(text, [...text].sort());
    assert.equal(text.length, 17);
    const token = (x: string) => x.replaceAll('.', '\u0000');
    const fams = parsePrometheus(renderPrometheus(store, params('', true)));
    for (const [family, short] of [['envoy_cluster_upstream_rq_total', 'upstream_rq_total'], ['envoy_cluster_membership_total', 'membership_total']] as const) {
      const full = fams.get(family)!.samples.map((x) => `cluster.${x.labels.envoy_cluster_name}.${short}`);
      assert.deepEqual(full, [...full].sort((a, b) => (token(a) < token(b) ? -1 : token(a) > token(b) ? 1 : 0)), family);
      assert.equal(full.length, names.length);
    }
  });

  test('a prefix decides for its whole scope or family where it can', () => {
    const f = compileStatFilter('^cluster\\.outbound\\|.*\\.outlier_detection\\.ejections_active$|^istio_requests_total\\.');
    assert.equal(f.under('cluster.inbound|9080||.'), Under.None);
    assert.equal(f.under('http.outbound.'), Under.None);
    assert.equal(f.under('cluster.outbound|80||web.'), Under.Some);
    assert.equal(f.under('istio_requests_total'), Under.Some);
    assert.equal(f.under('istio_requests_total.reporter.'), Under.All);
    assert.equal(f.under('istio_request_duration_milliseconds'), Under.None);
    assert.equal(compileStatFilter('rq_total').under('cluster.x.upstream_rq_total.'), Under.All);
    // Anything beyond literals and .* runs as a regex, which decides nothing by prefix.
    assert.equal(compileStatFilter('^cluster\\.[a-z]+\\.').under('http.'), Under.Some);
  });

  test("the control plane's scrape query (usedonly + filter) is exactly Istio's request series and the outbound ejections", () => {
    const store = proxyLikeStore();
    const fams = parsePrometheus(renderPrometheus(store, params(SCRAPE_QUERY, true)));
    assert.deepEqual([...fams.keys()], ['istio_requests_total', 'envoy_cluster_outlier_detection_ejections_active', 'istio_request_duration_milliseconds']);
    assert.deepEqual(
      fams.get('istio_requests_total')!.samples.map((x) => [x.labels, x.value]),
      [
        [{ reporter: 'destination', destination_service: 'reviews.default.svc.cluster.local', response_code: '200' }, 6],
        [{ reporter: 'source', destination_service: 'line\nbreak', response_code: '200' }, 1],
      ],
    );
    assert.deepEqual(
      fams.get('envoy_cluster_outlier_detection_ejections_active')!.samples.map((x) => [x.labels, x.value]),
      [[{ envoy_cluster_name: REVIEWS }, 2]],
      'non-zero, outbound clusters only',
    );
    const d = fams.get('istio_request_duration_milliseconds')!;
    assert.equal(d.type, 'histogram');
    assert.deepEqual([...new Set(d.samples.map((x) => x.labels.response_code))], ['200'], 'the histogram never recorded is left out');
    assert.equal(sample(d, 'istio_request_duration_milliseconds_count', { reporter: 'destination', response_code: '200' }), 1);
  });
});

describe('query parameters and formatting', () => {
  test('invalid parameters give Envoy messages', () => {
    const err = (q: string, prom = false) => {
      const r = parseStatsParams(new URLSearchParams(q), prom);
      assert.ok('error' in r, `${q} is refused`);
      return r.error;
    };
    assert.equal(err('filter=(unclosed'), 'Invalid re2 regex');
    assert.equal(err('type=Bogus'), 'invalid &type= param');
    assert.match(err('histogram_buckets=bogus'), /^usage: \/stats\?histogram_buckets=/);
    assert.match(err('format=xml'), /^usage: \/stats\?format=/);
    assert.match(err('format=html'), /HTML output is not supported/);
    assert.equal(err('histogram_buckets=disjoint', true), 'unsupported prometheus histogram bucket mode');
    assert.equal(params('format=prometheus').format, 'prometheus');
    assert.equal(params('format=prometheus', true).format, 'prometheus');
  });

  test('%g and shortest formatting', () => {
    assert.equal(formatG(0.5), '0.5');
    assert.equal(formatG(1), '1');
    assert.equal(formatG(600000), '600000');
    assert.equal(formatG(1800000), '1.8e+06');
    assert.equal(formatG(3600000), '3.6e+06');
    assert.equal(formatG(1234567), '1.23457e+06');
    assert.equal(formatG(0.0001), '0.0001');
    assert.equal(formatG(0.00001), '1e-05');
    assert.equal(formatG(99.5), '99.5');
    assert.equal(formatG(100 * 0.995), '99.5');
    assert.equal(formatG(-1), '-1');
    assert.equal(formatG(0), '0');
    assert.equal(formatShortest(Number.NaN), 'nan');
    assert.equal(formatShortest(1.025), '1.025');
    assert.equal(formatShortest(3600000), '3600000');
    assert.equal(formatShortest(1e21), '1e+21');
    assert.equal(formatShortest(1e-7), '1e-07');
  });
});
