/**
 * Span exporters: a bounded queue of finished spans, sent in batches to a collector cluster by HTTP POST, off the
 * request path. Subclasses give the endpoint's encoding (zipkin.ts: Zipkin v2 JSON; otlp.ts: OTLP/HTTP protobuf).
 *
 *   const ex = exporterFor(key, () => new ZipkinExporter(...));   // shared by every HCM with the same provider
 *   ex.push(span);             // O(1); a full queue drops the span and counts it (spans_dropped)
 *   await flushExporters();    // shutdown: whatever is queued is sent (bounded wait)
 *
 * Batching (Envoy's Zipkin tracer: flush every 5 s or once min_flush_spans are queued; here 1 s or 100 spans, so
 * traces show up quickly): at most one request in flight per exporter; spans finished meanwhile wait in the
 * queue, whose bound (MAX_QUEUE) is what keeps a slow or dead collector from growing memory or ever holding a
 * request up. The collector is a cluster of the proxy: each report goes to a host its load balancer picks
 * (no host → the batch is dropped, reports_dropped). Stats (`tracing.<provider>.`): spans_sent, spans_dropped,
 * reports_sent, reports_dropped, reports_failed (non-2xx answer, connection error or timeout).
 */
import { Agent, request } from 'node:http';
import type { Counter } from '../stats/metric.js';
import type { Scope } from '../stats/store.js';
import type { Host } from '../upstream/cluster/host.js';
import type { Span } from './span.js';

/** Spans waiting to be sent, at most. */
export const MAX_QUEUE = 2048;
/** A report is sent once this many spans wait, or FLUSH_MS after the first one. */
export const BATCH_SPANS = 100;
export const FLUSH_MS = 1000;
/** Default report timeout (OpenTelemetry http_service timeout when unset; Zipkin has none: this one). */
export const DEFAULT_TIMEOUT_MS = 5000;

/** Where an exporter finds a collector host (the proxy's cluster of that name, resolved per report). */
export type HostPicker = () => Host | undefined;

export interface ExporterStats {
  spans_sent: Counter;
  spans_dropped: Counter;
  reports_sent: Counter;
  reports_dropped: Counter;
  reports_failed: Counter;
}

export function exporterStats(scope: Scope): ExporterStats {
  return {
    spans_sent: scope.counter('spans_sent'),
    spans_dropped: scope.counter('spans_dropped'),
    reports_sent: scope.counter('reports_sent'),
    reports_dropped: scope.counter('reports_dropped'),
    reports_failed: scope.counter('reports_failed'),
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 4 });

export abstract class SpanExporter {
  private queue: Span[] = [];
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> | null = null;
  private closed = false;
  /** Where reports go now (updated when an HCM with this provider is compiled again). */
  pick: HostPicker;

  constructor(
    pick: HostPicker,
    readonly path: string,
    readonly contentType: string,
    readonly authority: string,
    readonly timeoutMs: number,
    readonly stats: ExporterStats,
  ) {
    this.pick = pick;
  }

  /** The request body for a batch. */
  protected abstract encode(spans: readonly Span[]): Uint8Array | string;

  push(span: Span): void {
    if (this.closed || this.queue.length >= MAX_QUEUE) {
      this.stats.spans_dropped.inc();
      return;
    }
    this.queue.push(span);
    if (this.inFlight !== null) return;
    if (this.queue.length >= BATCH_SPANS) this.send();
    else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.send(), FLUSH_MS);
      this.timer.unref();
    }
  }

  /** Sends one batch (if none is in flight); the next batch follows when it is done. */
  private send(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.inFlight !== null || this.queue.length === 0) return;
    const batch = this.queue.splice(0, BATCH_SPANS);
    this.inFlight = this.report(batch).finally(() => {
      this.inFlight = null;
      if (this.queue.length >= BATCH_SPANS || (this.closed && this.queue.length > 0)) this.send();
      else if (this.queue.length > 0 && this.timer === undefined) {
        this.timer = setTimeout(() => this.send(), FLUSH_MS);
        this.timer.unref();
      }
    });
  }

  private report(batch: Span[]): Promise<void> {
    const host = this.pick();
    if (host === undefined) {
      this.stats.reports_dropped.inc();
      this.stats.spans_dropped.add(batch.length);
      return Promise.resolve();
    }
    const body = this.encode(batch);
    return new Promise<void>((resolve) => {
      let done = false;
      const finish = (ok: boolean): void => {
        if (done) return;
        done = true;
        if (ok) {
          this.stats.reports_sent.inc();
          this.stats.spans_sent.add(batch.length);
        } else this.stats.reports_failed.inc();
        resolve();
      };
      const req = request(
        {
          host: host.address,
          port: host.port,
          method: 'POST',
          path: this.path,
          agent,
          timeout: this.timeoutMs,
          headers: { 'content-type': this.contentType, 'content-length': typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength, host: this.authority || `${host.address}:${host.port}` },
        },
        (res) => {
          res.resume();
          res.on('end', () => finish((res.statusCode ?? 0) >= 200 && (res.statusCode ?? 0) < 300));
          res.on('error', () => finish(false));
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => finish(false));
      req.end(body);
    });
  }

  /** Sends everything queued (stops accepting spans); waits at most `limitMs`. */
  async flush(limitMs: number): Promise<void> {
    this.closed = true;
    const deadline = Date.now() + limitMs;
    this.send();
    while (this.inFlight !== null && Date.now() < deadline) {
      await Promise.race([this.inFlight, new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())).unref())]);
    }
    clearTimeout(this.timer);
  }
}

const exporters = new Map<string, SpanExporter>();

/** The exporter for a provider configuration (created once, shared by the HCMs that name the same one). */
export function exporterFor(key: string, pick: HostPicker, make: () => SpanExporter): SpanExporter {
  let e = exporters.get(key);
  if (e === undefined) exporters.set(key, (e = make()));
  else e.pick = pick;
  return e;
}

/** Proxy shutdown: sends what every exporter has queued, waiting at most `limitMs` (default 2 s). */
export async function flushExporters(limitMs = 2000): Promise<void> {
  const all = [...exporters.values()];
  exporters.clear();
  await Promise.all(all.map((e) => e.flush(limitMs)));
}
