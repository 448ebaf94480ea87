// A stats store shaped like a sidecar's: `n` outbound clusters with their Envoy stats, a histogram on half of them,
// an Istio request counter and a text readout (tests of the large stats outputs).
import { HistogramUnit, StatsStore } from '../../src/proxy/stats/index.js';
import { ClusterStats } from '../../src/proxy/upstream/cluster/stats.js';
import { CircuitBreaker, DEFAULT_THRESHOLDS } from '../../src/proxy/upstream/circuit-breaker.js';

/** The stats of a proxy holding `n` clusters, as the proxy keeps them (plain-field cluster stats in a source). */
export function proxyStore(n: number): StatsStore {
  const store = new StatsStore();
  for (let c = 0; c < n; c++) {
    const scope = store.scope(`cluster.outbound|8080||svc-${c}.default.svc.cluster.local.`);
    const st = new ClusterStats();
    st.membership_total = 1;
    st.membership_healthy = 1;
    st.upstream_rq_total = c;
    new CircuitBreaker('default', DEFAULT_THRESHOLDS, st);
    new CircuitBreaker('high', DEFAULT_THRESHOLDS, st);
    scope.addSource(st);
    scope.counter('upstream_rq_2xx').add(c % 3);
    const h = scope.histogram('upstream_rq_time', HistogramUnit.Milliseconds);
    if (c % 2 === 0) h.record(c % 40);
  }
  const fam = store.counterFamily('istio_requests_total', ['reporter', 'response_code']);
  fam.get(['destination', '200']).add(5);
  store.textReadout('server.version').set('weft "test"');
  store.flushHistograms();
  return store;
}
