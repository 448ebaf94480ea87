/**
 * The proxy's stats, in one import:
 *
 *   import { StatsStore, HistogramUnit } from '../stats/index.js';
 *   const store = new StatsStore();
 *   const cluster = store.scope(`cluster.${name}.`);
 *   const rq = cluster.counter('upstream_rq_total');           // create at config time ...
 *   rq.inc();                                                   // ... update on the request path
 *   const requests = store.counterFamily('istio_requests_total', ['reporter', 'response_code']);
 *   requests.get(['destination', '200']).inc();
 *
 * store.ts (StatsStore, Scope, Family), metric.ts (Counter, Gauge, TextReadout), histogram.ts (Histogram),
 * tags.ts (Envoy's tag extraction), render.ts (the /stats, /stats?format=json and /stats/prometheus outputs).
 */
export { StatsStore, Scope, Family, sanitizeStatsName, type FamilyKind, type StatsSource, type SourceStatKind, type StatsStoreOptions, type StatNameMatcher } from './store.js';
export { Metric, Counter, Gauge, TextReadout } from './metric.js';
export { Histogram, HistogramUnit, DEFAULT_BUCKETS, SUPPORTED_QUANTILES, type HistogramStatistics } from './histogram.js';
export { TagProducer, TagNames, NAMED_SCOPE_KINDS, regexPrefix, type TagSpecifier, type TagProducerOptions, type ExtractedTags } from './tags.js';
export {
  parseStatsParams,
  compileStatFilter,
  statsTextChunks,
  statsJsonChunks,
  prometheusChunks,
  joinChunks,
  renderStatsText,
  renderStatsJson,
  renderPrometheus,
  CHUNK_CHARS,
  Under,
  quantileSummary,
  sanitizePrometheusName,
  escapeLabelValue,
  type StatsParams,
  type StatFilter,
  type StatsType,
  type StatsFormat,
  type HistogramBucketsMode,
} from './render.js';
export { formatG, formatShortest } from './format.js';
