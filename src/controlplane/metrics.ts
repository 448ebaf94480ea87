/**
 * Control-plane metrics in the Prometheus text exposition format (version 0.0.4), with istiod's metric names
 * where istiod has one, so dashboards and alerts written for istiod read Weft's control plane unchanged:
 *
 *   pilot_xds{version,type}                 gauge      connected xDS clients (by proxy version and proxy type)
 *   pilot_services                          gauge      services known to the control plane
 *   pilot_xds_pushes{type}                  counter    xDS responses sent, by type (cds, eds, lds, rds, ...)
 *   pilot_xds_push_time{type}               histogram  seconds from the start of a push to the response write
 *   pilot_proxy_queue_time                  histogram  seconds a proxy waited in a push before its snapshot was set
 *   pilot_proxy_convergence_time            histogram  seconds from the first change of a push to the proxy's ACK
 *                                                      of everything that push sent it
 *   pilot_debounce_time                     histogram  seconds from the first change to the start of its push
 *   pilot_push_triggers{type}               counter    why pushes happened (config, service, endpoint,
 *                                                      registration, proxyrequest)
 *   pilot_inbound_updates{type}             counter    updates received (config, eds)
 *   pilot_total_xds_rejects{type}           counter    NACKs, by type
 *   pilot_xds_{cds,eds,lds,rds}_reject{node} gauge     NACKs per connected proxy (istiod's legacy per-type gauges)
 *   pilot_total_xds_internal_errors         counter    internal errors (a translation that threw, a failed stream)
 *   pilot_xds_config_size_bytes{type}       histogram  bytes of the resources in each response
 *   weft_config_errors{kind}                gauge      Error diagnostics of the configuration now in effect
 *   weft_config_errors_total{kind}          counter    Error diagnostics reported, each counted when it appears
 *   weft_xds_translation_errors_total{type} counter    resources dropped by translation (bad resource, rest pushed)
 *   process_* / nodejs_*                    the usual process metrics (CPU, RSS, heap, start time)
 */

export type LabelValues = Record<string, string>;

interface Metric {
  readonly name: string;
  readonly help: string;
  readonly type: 'counter' | 'gauge' | 'histogram';
  render(out: string[]): void;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function labelKey(labels: LabelValues | undefined): string {
  if (!labels) return '';
  const keys = Object.keys(labels).sort();
  return keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',');
}

function fmt(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function series(name: string, key: string, extra?: string): string {
  const all = [key, extra].filter(Boolean).join(',');
  return all ? `${name}{${all}}` : name;
}

abstract class Base implements Metric {
  abstract readonly type: 'counter' | 'gauge' | 'histogram';
  constructor(readonly name: string, readonly help: string) {}
  protected header(out: string[]): void {
    out.push(`# HELP ${this.name} ${escapeHelp(this.help)}`, `# TYPE ${this.name} ${this.type}`);
  }
  abstract render(out: string[]): void;
}

/** A counter or a gauge: one number per label set, optionally computed at scrape time. */
class Simple extends Base {
  private readonly values = new Map<string, number>();
  private collector?: () => Array<[LabelValues | undefined, number]>;

  constructor(readonly type: 'counter' | 'gauge', name: string, help: string) {
    super(name, help);
  }

  inc(labels?: LabelValues, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }

  get(labels?: LabelValues): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }

  /** Sum over every label set. */
  total(): number {
    let n = 0;
    for (const v of this.values.values()) n += v;
    return n;
  }

  /** Drops the series whose labels include all of `match`. */
  remove(match: LabelValues): void {
    const parts = Object.entries(match).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
    for (const k of [...this.values.keys()]) {
      const have = k.split(',');
      if (parts.every((p) => have.includes(p))) this.values.delete(k);
    }
  }

  /** Replaces every series with the collector's answer at each scrape. */
  collect(fn: () => Array<[LabelValues | undefined, number]>): this {
    this.collector = fn;
    return this;
  }

  protected setValue(labels: LabelValues | undefined, v: number): void {
    this.values.set(labelKey(labels), v);
  }

  protected clear(): void {
    this.values.clear();
  }

  render(out: string[]): void {
    this.header(out);
    if (this.collector) {
      this.values.clear();
      for (const [l, v] of this.collector()) this.values.set(labelKey(l), v);
    }
    for (const [k, v] of this.values) out.push(`${series(this.name, k)} ${fmt(v)}`);
  }
}

export class Counter extends Simple {
  constructor(name: string, help: string) {
    super('counter', name, help);
  }
}

export class Gauge extends Simple {
  constructor(name: string, help: string) {
    super('gauge', name, help);
  }

  set(labels: LabelValues | undefined, v: number): void {
    this.setValue(labels, v);
  }

  /** Replaces every series at once. */
  replace(entries: Iterable<[LabelValues | undefined, number]>): void {
    this.clear();
    for (const [l, v] of entries) this.setValue(l, v);
  }
}

export class Histogram extends Base {
  readonly type = 'histogram' as const;
  private readonly data = new Map<string, { counts: number[]; sum: number; count: number }>();

  constructor(name: string, help: string, readonly buckets: readonly number[]) {
    super(name, help);
  }

  observe(labels: LabelValues | undefined, v: number): void {
    const k = labelKey(labels);
    let d = this.data.get(k);
    if (!d) this.data.set(k, (d = { counts: this.buckets.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]!) d.counts[i]!++;
    d.sum += v;
    d.count++;
  }

  /** Number of observations (of one label set). */
  count(labels?: LabelValues): number {
    return this.data.get(labelKey(labels))?.count ?? 0;
  }

  render(out: string[]): void {
    this.header(out);
    for (const [k, d] of this.data) {
      this.buckets.forEach((b, i) => out.push(`${series(`${this.name}_bucket`, k, `le="${fmt(b)}"`)} ${d.counts[i]}`));
      out.push(`${series(`${this.name}_bucket`, k, 'le="+Inf"')} ${d.count}`);
      out.push(`${series(`${this.name}_sum`, k)} ${fmt(d.sum)}`);
      out.push(`${series(`${this.name}_count`, k)} ${d.count}`);
    }
  }
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(m: M): M {
    if (this.metrics.some((x) => x.name === m.name)) throw new Error(`metric ${m.name} registered twice`);
    this.metrics.push(m);
    return m;
  }

  /** The Prometheus text exposition of every metric. */
  render(): string {
    const out: string[] = [];
    for (const m of this.metrics) m.render(out);
    return `${out.join('\n')}\n`;
  }
}

/** Content type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** istiod's short type names for metrics labels (`GetMetricType`). */
export function metricType(typeUrl: string): string {
  switch (typeUrl) {
    case 'type.googleapis.com/envoy.config.cluster.v3.Cluster':
      return 'cds';
    case 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment':
      return 'eds';
    case 'type.googleapis.com/envoy.config.listener.v3.Listener':
      return 'lds';
    case 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration':
      return 'rds';
    case 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret':
      return 'sds';
    default:
      return typeUrl;
  }
}

// istiod's bucket boundaries.
const PUSH_BUCKETS = [0.01, 0.1, 1, 3, 5, 10, 20, 30];
const PROXY_BUCKETS = [0.1, 0.5, 1, 3, 5, 10, 20, 30];
const SIZE_BUCKETS = [1, 10_000, 1_000_000, 4_000_000, 10_000_000, 40_000_000];

/** The control plane's metrics. */
export class ControlPlaneMetrics {
  readonly registry = new MetricsRegistry();
  readonly xdsClients = this.registry.add(new Gauge('pilot_xds', 'Number of endpoints connected to this control plane using xDS.'));
  readonly services = this.registry.add(new Gauge('pilot_services', 'Total services known to the control plane.'));
  readonly pushes = this.registry.add(new Counter('pilot_xds_pushes', 'xDS responses sent, by type (cds, eds, lds, rds).'));
  readonly pushTime = this.registry.add(new Histogram('pilot_xds_push_time', 'Total time in seconds the control plane takes to push lds, rds, cds and eds.', PUSH_BUCKETS));
  readonly queueTime = this.registry.add(new Histogram('pilot_proxy_queue_time', 'Time in seconds a proxy is in the push queue before being dequeued.', PROXY_BUCKETS));
  readonly convergence = this.registry.add(new Histogram('pilot_proxy_convergence_time', 'Delay in seconds between config change and a proxy receiving (and acknowledging) all required configuration.', PROXY_BUCKETS));
  readonly debounceTime = this.registry.add(new Histogram('pilot_debounce_time', 'Delay in seconds between the first change entering debouncing and the merged push starting.', PUSH_BUCKETS));
  readonly pushTriggers = this.registry.add(new Counter('pilot_push_triggers', 'Total number of times a push was triggered, labeled by reason for the push.'));
  readonly inboundUpdates = this.registry.add(new Counter('pilot_inbound_updates', 'Total number of updates received by the control plane.'));
  readonly xdsRejects = this.registry.add(new Counter('pilot_total_xds_rejects', 'Total number of xDS responses from the control plane rejected by proxy.'));
  readonly cdsReject = this.registry.add(new Gauge('pilot_xds_cds_reject', 'Control plane rejected CDS configs (per connected proxy).'));
  readonly edsReject = this.registry.add(new Gauge('pilot_xds_eds_reject', 'Control plane rejected EDS (per connected proxy).'));
  readonly ldsReject = this.registry.add(new Gauge('pilot_xds_lds_reject', 'Control plane rejected LDS (per connected proxy).'));
  readonly rdsReject = this.registry.add(new Gauge('pilot_xds_rds_reject', 'Control plane rejected RDS (per connected proxy).'));
  readonly internalErrors = this.registry.add(new Counter('pilot_total_xds_internal_errors', 'Total number of internal xDS errors in the control plane.'));
  readonly configSize = this.registry.add(new Histogram('pilot_xds_config_size_bytes', 'Distribution of configuration sizes pushed to clients.', SIZE_BUCKETS));
  readonly configErrors = this.registry.add(new Gauge('weft_config_errors', 'Error diagnostics of the configuration currently in effect, by kind.'));
  readonly configErrorsTotal = this.registry.add(new Counter('weft_config_errors_total', 'Error diagnostics reported by config loading and validation, each counted when it first appears.'));
  readonly csrCount = this.registry.add(new Counter('citadel_server_csr_count', 'The number of certificate signing requests received by the CA.'));
  readonly certIssued = this.registry.add(new Counter('citadel_server_success_cert_issuance_count', 'The number of certificates issued by the CA.'));
  readonly csrAuthFailures = this.registry.add(new Counter('citadel_server_authentication_failure_count', 'The number of certificate signing requests refused because the caller could not be authenticated.'));
  readonly csrSignErrors = this.registry.add(new Counter('citadel_server_csr_sign_err_count', 'The number of errors while signing certificate requests.'));
  readonly rootCertExpiry = this.registry.add(new Gauge('citadel_server_root_cert_expiry_timestamp', 'The unix timestamp, in seconds, when the CA signing certificate expires.'));
  readonly translationErrors = this.registry.add(new Counter('weft_xds_translation_errors_total', 'xDS resources dropped because their translation failed, by type.'));
  readonly cpuSeconds = this.registry.add(new Counter('process_cpu_seconds_total', 'Total user and system CPU time spent in seconds.')).collect(() => {
    const u = process.cpuUsage();
    return [[undefined, (u.user + u.system) / 1e6]];
  });
  readonly rss = this.registry.add(new Gauge('process_resident_memory_bytes', 'Resident memory size in bytes.')).collect(() => [[undefined, process.memoryUsage().rss]]);
  readonly heap = this.registry.add(new Gauge('nodejs_heap_size_used_bytes', 'Process heap size used from Node.js in bytes.')).collect(() => [[undefined, process.memoryUsage().heapUsed]]);
  readonly startTime = this.registry.add(new Gauge('process_start_time_seconds', 'Start time of the process since unix epoch in seconds.'));

  constructor() {
    this.startTime.set(undefined, Math.round(Date.now() / 1000 - process.uptime()));
  }

  /** The legacy per-type reject gauge for a type URL, if istiod has one. */
  rejectGauge(typeUrl: string): Gauge | undefined {
    switch (metricType(typeUrl)) {
      case 'cds':
        return this.cdsReject;
      case 'eds':
        return this.edsReject;
      case 'lds':
        return this.ldsReject;
      case 'rds':
        return this.rdsReject;
      default:
        return undefined;
    }
  }

  render(): string {
    return this.registry.render();
  }
}
