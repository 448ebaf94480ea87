// The proxy benchmark's harness at tiny scale, so it cannot rot: a real run (nginx upstream, echo server, a real
// `weft control-plane` and `weft proxy`, wrk, h2load and the benchmark's own load generators) measures weft and
// direct for 1 s per case and gets answers from both; the h2c probe tells an HTTP/1-only server from an h2c one;
// the wrk / h2load parsers read their tools' output; the results land in docs/performance.md between the markers
// without touching other sections. No figure is asserted.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DOC_BEGIN, DOC_END, resultsTables, targetsTable, updatePerformanceDoc } from '../../bench/proxy/report.js';
import { idleMesh, median, METRICS_OFF_TARGET, parseH2load, parseWrk, runBench, speaksH2c } from '../../bench/proxy/run.js';
import type { CaseResult } from '../../bench/proxy/run.js';
import { parseConfigText } from '../../src/api/source.js';
import { buildModel } from '../../src/api/build.js';

describe('proxy benchmark: parsers and report', () => {
  test('reads wrk --latency output', () => {
    const out = `Running 1s test @ http://127.0.0.1:1/2b
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.02ms  300.00us   9.00ms   90.00%
  Latency Distribution
     50%  842.00us
     75%    1.01ms
     90%    1.23ms
     99%    2.80ms
  23400 requests in 1.00s, 3.50MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  23400.12
Transfer/sec:      3.50MB
`;
    assert.deepEqual(parseWrk(out), { requests: 23400, errors: 7, seconds: 1, rps: 23400.12, p50Us: 842, p99Us: 2800 });
  });

  test('reads h2load output and its per-request log', () => {
    const out = `finished in 1.00s, 1500.00 req/s, 50.00KB/s
requests: 1500 total, 1500 started, 1500 done, 1498 succeeded, 2 failed, 0 errored, 0 timeout
`;
    // 99 answered requests taking 2..100 µs (the first one failed).
    const log = Array.from({ length: 100 }, (_, i) => `1700000000000000\t${i === 0 ? -1 : 200}\t${i + 1}`).join('\n');
    const r = parseH2load(out, log);
    assert.equal(r.rps, 1500);
    assert.equal(r.requests, 1498);
    assert.equal(r.errors, 2);
    assert.equal(r.p50Us, 51);
    assert.equal(r.p99Us, 100);
  });

  test('the idle mesh is valid config with a service, a workload and a route per service', () => {
    const r = parseConfigText(idleMesh(30), 'idle.yaml');
    assert.deepEqual(r.diagnostics.filter((d) => d.severity === 'Error'), []);
    const { model, diagnostics } = buildModel(r.resources);
    assert.deepEqual(diagnostics.filter((d) => d.severity === 'Error').map((d) => d.message), []);
    assert.equal(model.services.length, 30);
  });

  test('writes its section between the markers, leaving the rest of the document alone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-bench-doc-'));
    try {
      const doc = join(dir, 'performance.md');
      await writeFile(doc, '# Performance\n\n## Control plane\n\ncontrol-plane text\n');
      const body = resultsTables({ cases: [{ workload: 'h1-2b', target: 'weft', requests: 10, errors: 0, rps: 10, p50Us: 100, p99Us: 200 }], pinned: true });
      updatePerformanceDoc(doc, body);
      updatePerformanceDoc(doc, `${body}\nsecond run`);
      const text = await readFile(doc, 'utf8');
      assert.match(text, /## Control plane\n\ncontrol-plane text\n/);
      assert.match(text, /## Proxy\n/);
      assert.equal(text.split(DOC_BEGIN).length, 2, 'one block');
      assert.match(text.slice(text.indexOf(DOC_BEGIN), text.indexOf(DOC_END)), /\| weft .*\|[\s\S]*second run/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('fixed rate: a row per target and placement, p99 added as the median over rounds, judged per placement', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    const row = (target: string, placement: 'pinned' | 'shared', p99: number[], added?: number[]): CaseResult => ({
      workload: 'fixed-rate',
      target,
      placement,
      requests: 3000,
      errors: 0,
      rps: 1000,
      p50Us: 100,
      p90Us: 150,
      p99Us: median(p99),
      p999Us: 900,
      maxUs: 2000,
      roundP99Us: p99,
      ...(added ? { roundAddedP99Us: added, addedP99Us: median(added) } : {}),
    });
    const r = {
      pinned: true,
      cases: [
        row('direct', 'pinned', [150, 160, 170]),
        row('weft', 'pinned', [900, 1000, 5000], [750, 840, 4830]),
        row('direct', 'shared', [100, 110, 120]),
        row('weft', 'shared', [400, 500, 600], [300, 390, 480]),
        // Noise can put a proxy's p99 below direct's in a round: negative figures print in the same units.
        row('nginx', 'shared', [100, 200, 300], [-1500, 90, 180]),
      ],
    };
    const text = resultsTables(r);
    assert.match(text, /median of 3 rounds/);
    assert.match(text, /\| weft +\| +pinned \|.*\| +840 µs \| +750 µs … 4.83 ms \|/);
    assert.match(text, /\| weft +\| +shared \|.*\| +390 µs \| +300 µs … 480 µs \|/);
    assert.match(text, /\| nginx +\| +shared \|.*\| +90 µs \| +-1.50 ms … 180 µs \|/);
    const targets = targetsTable(r);
    assert.match(targets, /p99 added per hop at a fixed rate, pinned +\| +840 µs \| ≤ 0.5 ms \| MISSED \|/);
    assert.match(targets, /p99 added per hop at a fixed rate, shared +\| +390 µs \| ≤ 0.5 ms \| +met \|/);
  });

  test('h2c probe: an HTTP/1-only server is not taken for h2c', async () => {
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      assert.equal(await speaksH2c((server.address() as AddressInfo).port), false);
    } finally {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('proxy benchmark: tiny real run', () => {
  test('weft and direct: every workload answers (or is reported unsupported), fixed rate and idle RSS measured', { timeout: 180_000 }, async () => {
    const dir = await mkdtemp(join(tmpdir(), 'weft-bench-proxy-smoke-'));
    const lines: string[] = [];
    try {
      const r = await runBench({
        workDir: dir,
        seconds: 1,
        warmupSeconds: 0,
        targets: ['direct', 'weft'],
        workloads: ['h1-2b', 'h1-1k', 'h2', 'tcp'],
        weftConcurrency: [1],
        weftMetricsOff: true,
        fixedRps: 100,
        idleServices: 20,
        // Not pinned: the test suite's other files run beside it, and a CPU of its own is what a measurement needs.
        pin: false,
        progress: (l) => lines.push(l),
      });
      for (const c of r.cases) {
        if (c.skipped) {
          assert.ok(c.target === 'weft' || c.target === METRICS_OFF_TARGET, `only weft may skip: ${JSON.stringify(c)}`);
          assert.equal(c.workload, 'h2');
          assert.equal(c.skipped, 'weft: h2c not supported in this build');
          continue;
        }
        assert.ok((c.requests ?? 0) > 0, `no requests answered: ${JSON.stringify(c)}`);
        assert.equal(c.errors, 0, JSON.stringify(c));
        if (c.target === 'weft' && c.workload !== 'fixed-rate') {
          assert.ok(c.cpuPer1k !== undefined && c.peakRssBytes !== undefined && c.peakRssBytes > 0, JSON.stringify(c));
        }
      }
      const seen = r.cases.map((c) => `${c.workload}/${c.target}`).sort();
      const targets = ['direct', 'weft', METRICS_OFF_TARGET];
      assert.deepEqual(seen, ['fixed-rate', 'h1-1k', 'h1-2b', 'h2', 'tcp'].flatMap((w) => targets.map((t) => `${w}/${t}`)).sort());
      assert.ok(r.idle, 'idle measured');
      assert.ok(r.idle.clusters >= 20, `idle proxy holds the services' clusters (${r.idle.clusters})`);
      assert.ok(r.idle.rssBytes > 0);
      // The idle proxy is scraped as a sidecar is: by the control plane's telemetry and once in full.
      assert.ok(r.idle.telemetryOpen, `the control plane's telemetry read the idle proxy (${r.idle.telemetryErrors.join('; ')})`);
      assert.deepEqual(r.idle.telemetryErrors, []);
      assert.ok(r.idle.fullScrapeBytes > 0);
      assert.match(resultsTables(r), /\| weft /);
      // Metrics on against off, per workload, in the same run.
      assert.match(resultsTables(r), /Cost of Istio's standard metrics[\s\S]*\| h1-2b /);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
