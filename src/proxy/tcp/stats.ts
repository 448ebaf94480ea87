/**
 * TCP proxy statistics, named as Envoy names them under `tcp.<stat_prefix>.` (the tcp_proxy filter's downstream
 * stats; the upstream side is counted in the cluster's stats: upstream_cx_*, upstream_flow_control_*).
 *
 *   const stats = new TcpProxyStats();
 *   stats.downstream_cx_total++;                       // plain fields: no lookups on the data path
 *   scope.addSource(stats);                            // listed by the stats store under `tcp.<stat_prefix>.`
 *
 * `upstream_flush_active` is a gauge; everything else is a counter. The `*_bytes_buffered` gauges of Envoy are not
 * kept (Node's socket buffers are read on demand with `writableLength`, never summed).
 */
import type { StatKind, StatVisitor } from '../upstream/cluster/stats.js';
import type { IstioTcpStats } from '../stats/istio/tcp.js';
import type { TcpExchange } from '../stats/istio/tcp-exchange.js';

export class TcpProxyStats {
  downstream_cx_total = 0;
  downstream_cx_no_route = 0;
  downstream_cx_rx_bytes_total = 0;
  downstream_cx_tx_bytes_total = 0;
  downstream_flow_control_paused_reading_total = 0;
  downstream_flow_control_resumed_reading_total = 0;
  idle_timeout = 0;
  max_downstream_connection_duration = 0;
  upstream_flush_total = 0;
  upstream_flush_active = 0;
  /** Istio's TCP metrics of the proxy's direction (stats/istio/tcp.ts); null: not kept. */
  istio: IstioTcpStats | null = null;
  /** The in-band TCP metadata exchange (stats/istio/tcp-exchange.ts), kept with metrics off too; null: none. */
  exchange: TcpExchange | null = null;

  forEach(cb: StatVisitor): void {
    for (const [k, v] of Object.entries(this)) {
      if (typeof v === 'number') cb(k, v, (k === 'upstream_flush_active' ? 'gauge' : 'counter') satisfies StatKind);
    }
  }
}
