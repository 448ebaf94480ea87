// The tracing pieces on their own: trace context extraction / injection (W3C, B3 multi, B3 single, malformed
// values), and the span exporter's bounded queue against a real collector socket that stops answering: spans are
// dropped and counted rather than queued without bound (push never waits), and once the collector
// answers again the queued spans are delivered in batches.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { extractContext, injectContext } from '../../src/proxy/tracing/context.js';
import { BATCH_SPANS, exporterStats, MAX_QUEUE } from '../../src/proxy/tracing/exporter.js';
import { Span } from '../../src/proxy/tracing/span.js';
import { ZipkinExporter } from '../../src/proxy/tracing/zipkin.js';
import { OtlpHttpExporter } from '../../src/proxy/tracing/otlp.js';
import { StatsStore } from '../../src/proxy/stats/store.js';
import type { Host } from '../../src/proxy/upstream/cluster/host.js';
import { eventually } from '../helpers/http-upstream.js';
import { TraceCollector } from './collector.js';

const T32 = '4bf92f3577b34da6a3ce929d0e0e4736';
const S16 = '00f067aa0ba902b7';

describe('trace context', () => {
  test('W3C traceparent: ids, sampled flag, tracestate; invalid values are ignored', () => {
    assert.deepEqual(extractContext(['traceparent', `00-${T32}-${S16}-01`, 'tracestate', 'a=1', 'TraceState', 'b=2'], 'w3c'), { traceId: T32, spanId: S16, sampled: true, traceState: 'a=1,b=2' });
    assert.equal(extractContext(['traceparent', `00-${T32}-${S16}-00`], 'w3c')?.sampled, false);
    for (const bad of [`00-${'0'.repeat(32)}-${S16}-01`, `00-${T32}-${'0'.repeat(16)}-01`, `ff-${T32}-${S16}-01`, `00-${T32}-${S16}-01-extra`, `00-${T32.slice(2)}-${S16}-01`, 'garbage']) {
      assert.equal(extractContext(['traceparent', bad], 'w3c'), null, bad);
    }
  });

  test('B3 multi and single headers, 64- and 128-bit trace ids, sampling-only headers', () => {
    assert.deepEqual(extractContext(['X-B3-TraceId', T32.slice(16), 'x-b3-spanid', S16, 'x-b3-sampled', '1'], 'b3'), { traceId: T32.slice(16), spanId: S16, sampled: true, traceState: '' });
    assert.equal(extractContext(['x-b3-traceid', T32, 'x-b3-spanid', S16, 'x-b3-flags', '1'], 'b3')?.sampled, true, 'debug implies sampled');
    assert.equal(extractContext(['x-b3-traceid', T32, 'x-b3-spanid', S16], 'b3')?.sampled, undefined, 'no decision');
    assert.deepEqual(extractContext(['x-b3-sampled', '0'], 'b3'), { traceId: '', spanId: '', sampled: false, traceState: '' });
    assert.deepEqual(extractContext(['b3', `${T32}-${S16}-1-${'1'.repeat(16)}`], 'b3'), { traceId: T32, spanId: S16, sampled: true, traceState: '' });
    assert.deepEqual(extractContext(['b3', '0'], 'b3'), { traceId: '', spanId: '', sampled: false, traceState: '' });
    assert.equal(extractContext(['b3', `${T32}-${S16}-x`], 'b3'), null);
  });

  test('the preferred format wins when several are present', () => {
    const h = ['traceparent', `00-${T32}-${S16}-01`, 'x-b3-traceid', 'a'.repeat(32), 'x-b3-spanid', 'b'.repeat(16), 'x-b3-sampled', '0'];
    assert.equal(extractContext(h, 'w3c')?.traceId, T32);
    assert.equal(extractContext(h, 'b3')?.traceId, 'a'.repeat(32));
  });

  test('injection replaces every trace header (tracestate and others kept) and writes W3C and B3', () => {
    const h = ['host', 'x', 'traceparent', 'old', 'X-B3-SpanId', 'old', 'x-b3-parentspanid', 'old', 'tracestate', 'k=v', 'b3', 'old'];
    injectContext(h, { traceId: T32.slice(16), spanId: S16, parentId: 'c'.repeat(16), sampled: false, traceState: '' }, true);
    assert.deepEqual(h, [
      'host', 'x', 'tracestate', 'k=v',
      'traceparent', `00-${'0'.repeat(16)}${T32.slice(16)}-${S16}-00`,
      'x-b3-traceid', T32.slice(16), 'x-b3-spanid', S16, 'x-b3-sampled', '0', 'x-b3-parentspanid', 'c'.repeat(16),
      'b3', `${T32.slice(16)}-${S16}-0-${'c'.repeat(16)}`,
    ]);
  });
});

function span(i: number): Span {
  const s = new Span(T32, (i + 1).toString(16).padStart(16, '0'), '', `op-${i}`, 'SERVER', Date.now(), true, '');
  s.endMs = s.startMs + 1;
  s.tag('n', String(i));
  return s;
}

describe('span exporter queue', () => {
  test('a collector that stops answering: spans beyond the bound are dropped and counted, the queue drains later', async () => {
    const collector = new TraceCollector();
    await collector.start();
    collector.hang = true;
    const host = { address: '127.0.0.1', port: collector.port } as Host;
    const store = new StatsStore();
    const stats = exporterStats(store.scope('tracing.zipkin.'));
    const ex = new ZipkinExporter(() => host, '/api/v2/spans', 'zipkin', 500, stats, 'test.default');
    try {
      // The first batch leaves at once (and hangs); the queue then fills to its bound; the rest is dropped.
      const extra = 300;
      const total = BATCH_SPANS + MAX_QUEUE + extra;
      for (let i = 0; i < total; i++) ex.push(span(i));
      assert.equal(stats.spans_dropped.value, extra);
      await eventually(() => collector.held === 1, 'the first report held by the collector');
      assert.equal(collector.requests.length, 0, 'one report at a time: the others wait in the queue');
      // The hung report times out (reports_failed); once the collector answers, the queued spans arrive.
      collector.hang = false;
      await eventually(() => collector.spans.length >= MAX_QUEUE, 'the queued spans delivered', 30_000);
      assert.equal(collector.spans.length, MAX_QUEUE);
      // The collector has the spans when the last report arrives; the exporter counts them once it has the answer.
      await eventually(() => stats.spans_sent.value === MAX_QUEUE, 'spans_sent counts every delivered span');
      assert.equal(stats.reports_failed.value, 1);
      assert.ok(stats.reports_sent.value >= MAX_QUEUE / BATCH_SPANS);
      assert.equal(collector.spans[0]!.name, `op-${BATCH_SPANS}`, 'the first batch (in flight when it hung) is the one lost');
    } finally {
      await ex.flush(100);
      await collector.stop();
    }
  });

  test('OTLP/HTTP: the protobuf body decodes (generic wire reader) into the spans sent, with service.name', async () => {
    const collector = new TraceCollector();
    await collector.start();
    const host = { address: '127.0.0.1', port: collector.port } as Host;
    const ex = new OtlpHttpExporter(() => host, '/v1/traces', 'otel:4318', 2000, exporterStats(new StatsStore().scope('t.')), 'svc.ns');
    try {
      const s = new Span(T32, S16, 'abcdefabcdef0123', 'egress', 'CLIENT', 1_700_000_000_123.5, true, 'k=v');
      s.endMs = s.startMs + 2.25;
      s.tag('http.status_code', '503');
      s.tag('error', 'true');
      ex.push(s);
      await ex.flush(5000);
      assert.equal(collector.spans.length, 1);
      const got = collector.spans[0]!;
      assert.deepEqual(
        { traceId: got.traceId, id: got.id, parentId: got.parentId, name: got.name, kind: got.kind, service: got.service, tags: got.tags, status: got.statusCode, start: got.startUs, duration: got.durationUs },
        { traceId: T32, id: S16, parentId: 'abcdefabcdef0123', name: 'egress', kind: 'CLIENT', service: 'svc.ns', tags: { 'http.status_code': '503', error: 'true' }, status: 2, start: 1_700_000_000_123_500, duration: 2250 },
      );
    } finally {
      await collector.stop();
    }
  });
});
