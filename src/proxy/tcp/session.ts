/**
 * One downstream connection proxied by tcp_proxy to one upstream connection (Envoy's TcpProxy::Filter).
 *
 *   const s = new TcpProxySession(socket, config, (s) => connections.delete(s));
 *   s.start();            // picks the cluster, connects, then pumps bytes both ways until both sides are done
 *   s.flags               // Envoy response flags earned, comma-separated ('' when none): NC, UO, UH, UF, URX
 *
 * Connecting: the cluster is chosen once (config.pickCluster); then per attempt, in Envoy's order: the cluster's
 * `connections` circuit breaker must have room (else flag UO, upstream_cx_overflow), fewer than
 * max_connect_attempts attempts may have been made (else flag URX, upstream_cx_connect_attempts_exceeded), the load
 * balancer must give a host (else flag UH, upstream_cx_none_healthy); a failed attempt — refused, reset, or not
 * connected within the cluster's connect_timeout — earns flag UF, reports a local-origin failure to outlier
 * detection (503, or 504 for a timeout, as Envoy maps LocalOriginConnectFailed / LocalOriginTimeout without
 * split_external_local_origin_errors) and tries again. A success reports LocalOriginConnectSuccessFinal (200).
 * Any failure closes the downstream connection. Downstream bytes wait in the socket until the upstream is
 * connected (Envoy disables reading until then).
 *
 * Open: bytes are written straight through; when a write is refused (the socket's buffer is above its high water
 * mark) the other side is paused until 'drain' (downstream/upstream_flow_control_paused/resumed_reading_total).
 * Half-close: both sockets allow half-open connections; an end (FIN) from one side is passed to the other as an end
 * after the bytes before it, and the other direction keeps flowing until it ends too; the connection closes when
 * both directions are done. When the upstream closes, the downstream is closed after its buffered bytes are
 * written. When the downstream closes while bytes for the upstream are still buffered, the upstream connection is
 * kept until they are written (upstream_flush_total / upstream_flush_active; bytes the upstream sends meanwhile
 * close it at once, as Envoy's drainer does).
 *
 * Timers: idle_timeout (idle_timeout stat) is the downstream socket's inactivity timeout — every byte proxied is
 * read from or written to the downstream socket — re-armed when the upstream's write buffer drains, so it also sees
 * bytes sent upstream while the downstream is paused; it closes both sides at once. During an upstream flush the
 * upstream's own inactivity timeout applies. max_downstream_connection_duration closes both sides.
 *
 * Metadata exchange: when either connection negotiated the ALPN `istio-peer-exchange` (mTLS between sidecars), this
 * proxy's frame is written on it first and the peer's frame is taken off what it sends (stats/istio/tcp-exchange.ts);
 * the Istio series is chosen once the frames are read (or the side ended without one), so the TCP metrics carry the
 * peer's workload.
 *
 * Event handlers are shared functions that find their session on the socket: no closure per connection.
 */
import type { Socket } from 'node:net';
import type { ClusterRuntime } from '../upstream/cluster/cluster.js';
import type { Host } from '../upstream/cluster/host.js';
import { originalDstOf } from '../listener/original-dst.js';
import { xxhash64 } from '../upstream/lb/xxhash64.js';
import type { TcpProxyConfig } from './config.js';
import type { TcpSeries } from '../stats/istio/tcp.js';
import { EXCHANGE_ALPN, ExchangeReader } from '../stats/istio/tcp-exchange.js';
import type { Workload } from '../stats/istio/workload.js';
import { peerOf } from '../tls/peer.js';
import { logTcpSession } from '../accesslog/tcp-record.js';

const SESSION = Symbol('weft.tcpProxySession');
type Tagged = Socket & { [SESSION]?: TcpProxySession };

function ignore(): void {}

export class TcpProxySession {
  readonly downstream: Tagged;
  upstream: Tagged | null = null;
  /** The chosen cluster's name ('' before start). */
  clusterName = '';
  cluster: ClusterRuntime | undefined;
  /** The host of the current (or last) attempt. */
  host: Host | null = null;
  /** Response flags, comma-separated. */
  flags = '';
  /** Connection attempts made. */
  attempts = 0;
  /** Istio's TCP metrics of this connection (null: not kept, or not connected / exchanging metadata yet). */
  istio: TcpSeries | null = null;
  /** The peers' workloads read by the in-band metadata exchange (null: none), on each side of the proxy. */
  downstreamPeer: Workload | null = null;
  upstreamPeer: Workload | null = null;
  readonly startMs = Date.now();
  /** Bytes received from / sent to the downstream (access logs). */
  bytesReceived = 0;
  bytesSent = 0;
  /**
   * Addresses kept for the access log (a closed socket no longer reports them): the upstream connection's local
   * address once connected, the downstream's at the start. Only read when the TCP proxy has access logs.
   */
  upstreamLocalAddress: string | undefined;
  upstreamLocalPort: number | undefined;
  downstreamLocal: { address?: string; port?: number; remoteAddress?: string; remotePort?: number } | undefined;
  private connected = false;
  private downClosed = false;
  private localClose = false;
  private connectTimedOut = false;
  private flushing = false;
  private downPaused = false;
  private upPaused = false;
  private finished = false;
  /** The current upstream connection is being closed by this side. */
  private upLocal = false;
  private hash: bigint | undefined;
  /** The peer's exchange frame still to be read on that side (null: none expected, or read). */
  private mxDown: ExchangeReader | null = null;
  private mxUp: ExchangeReader | null = null;
  /** Payload bytes received / sent before the Istio series was chosen (the exchange decides its labels). */
  private pendingRx = 0;
  private pendingTx = 0;
  private connectTimer: NodeJS.Timeout | undefined;
  private durationTimer: NodeJS.Timeout | undefined;

  constructor(
    downstream: Socket,
    readonly config: TcpProxyConfig,
    private readonly onClose?: (s: TcpProxySession) => void,
  ) {
    this.downstream = downstream as Tagged;
  }

  /** The socket the listener drains (see ListenerManager). */
  get socket(): Socket {
    return this.downstream;
  }

  /** Listener drain: a raw TCP stream has no way to ask the peer to finish, so it runs until the drain timeout. */
  drain(): void {}

  start(): void {
    const cfg = this.config;
    const d = this.downstream;
    cfg.stats.downstream_cx_total++;
    const ls = cfg.listenerStats;
    if (ls !== null) {
      ls.downstream_cx_total.inc();
      ls.downstream_cx_active.inc();
    }
    if (cfg.accessLogs !== null) this.downstreamLocal = { address: d.localAddress, port: d.localPort, remoteAddress: d.remoteAddress, remotePort: d.remotePort };
    d[SESSION] = this;
    d.allowHalfOpen = true;
    d.on('error', ignore);
    d.on('close', onDownClose);
    if (cfg.maxDownstreamConnectionDurationMs > 0) this.durationTimer = setTimeout(onMaxDuration, cfg.maxDownstreamConnectionDurationMs, this);
    const name = cfg.pickCluster();
    this.clusterName = name;
    this.cluster = cfg.cluster(name);
    if (this.cluster === undefined) {
      cfg.stats.downstream_cx_no_route++;
      this.fail('NC');
      return;
    }
    if (cfg.hashSourceIp && d.remoteAddress !== undefined) this.hash = xxhash64(d.remoteAddress);
    this.connectUpstream();
  }

  private addFlag(flag: string): void {
    if (this.flags === '') this.flags = flag;
    else if (!this.flags.split(',').includes(flag)) this.flags += ',' + flag;
  }

  /** Gives up: the downstream is closed without flushing. */
  private fail(flag: string): void {
    this.addFlag(flag);
    this.localClose = true;
    this.downstream.destroy();
  }

  private connectUpstream(): void {
    if (this.downClosed) return;
    const rt = this.cluster!;
    const cb = rt.circuitBreaker();
    if (!cb.canCreate('connections')) {
      rt.stats.upstream_cx_overflow++;
      this.fail('UO');
      return;
    }
    if (this.attempts >= this.config.maxConnectAttempts) {
      rt.stats.inc('upstream_cx_connect_attempts_exceeded');
      this.fail('URX');
      return;
    }
    // ORIGINAL_DST clusters (PassthroughCluster): the connection's restored original destination.
    const host = rt.lb.choose(
      rt.originalDst !== undefined ? { hash: this.hash, originalDst: originalDstOf(this.downstream) } : this.hash === undefined ? undefined : { hash: this.hash },
    );
    if (host === undefined) {
      rt.stats.upstream_cx_none_healthy++;
      this.fail('UH');
      return;
    }
    this.attempts++;
    this.host = host;
    cb.connections++;
    rt.stats.upstream_cx_total++;
    rt.stats.upstream_cx_active++;
    host.stats.cx_total++;
    host.stats.cx_active++;
    this.connected = false;
    this.connectTimedOut = false;
    this.upLocal = false;
    const opened = rt.transport.connect(host, { allowHalfOpen: true });
    const u = opened.socket as Tagged;
    u[SESSION] = this;
    this.upstream = u;
    u.on(opened.event, onUpConnect);
    u.on('error', ignore);
    u.on('close', onUpClose);
    if (rt.connectTimeoutMs > 0) this.connectTimer = setTimeout(onConnectTimeout, rt.connectTimeoutMs, this);
  }

  /** @internal */ onConnectTimeout(): void {
    this.connectTimer = undefined;
    const u = this.upstream;
    if (u === null || this.connected) return;
    this.connectTimedOut = true;
    this.cluster!.stats.upstream_cx_connect_timeout++;
    this.destroyUpstream();
  }

  /** @internal */ onUpConnect(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.connected = true;
    this.host!.outlier.putResult('local-origin-success', 200);
    const d = this.downstream;
    const u = this.upstream!;
    const ex = this.config.stats.exchange;
    if (ex !== null) {
      // Either side negotiated the in-band exchange (mTLS with a sidecar): our frame goes first, theirs is read.
      if (peerOf(d).alpn === EXCHANGE_ALPN) {
        d.write(ex.frame);
        this.mxDown = new ExchangeReader();
      }
      if (peerOf(u).alpn === EXCHANGE_ALPN) {
        u.write(ex.frame);
        this.mxUp = new ExchangeReader();
      }
    }
    this.openIstio();
    if (this.config.accessLogs !== null) {
      this.upstreamLocalAddress = u.localAddress;
      this.upstreamLocalPort = u.localPort;
    }
    u.on('data', onUpData);
    u.on('end', onUpEnd);
    u.on('drain', onUpDrain);
    d.on('data', onDownData);
    d.on('end', onDownEnd);
    d.on('drain', onDownDrain);
    const idle = this.config.idleTimeoutMs;
    if (idle > 0) {
      d.setTimeout(idle);
      d.on('timeout', onIdle);
    }
  }

  /**
   * The Istio series, once the upstream is connected and no exchange frame is awaited: opened, with the bytes that
   * flowed meanwhile.
   */
  private openIstio(): void {
    const ist = this.config.stats.istio;
    if (ist === null || this.istio !== null || !this.connected || this.mxDown !== null || this.mxUp !== null) return;
    const series = (this.istio = ist.open(this));
    if (this.pendingRx > 0) series.received.add(this.pendingRx);
    if (this.pendingTx > 0) series.sent.add(this.pendingTx);
  }

  /** Bytes from one side while its peer's exchange frame is awaited: the payload after the frame (null: none yet). */
  private readFrame(r: ExchangeReader, chunk: Buffer, down: boolean): Buffer | null {
    const rest = r.push(chunk);
    if (rest === null) return null;
    this.frameDone(r, down);
    return rest.length === 0 ? null : rest;
  }

  private frameDone(r: ExchangeReader, down: boolean): void {
    const peer = r.peer(this.config.stats.exchange!.peers) ?? null;
    if (down) {
      this.mxDown = null;
      this.downstreamPeer = peer;
    } else {
      this.mxUp = null;
      this.upstreamPeer = peer;
    }
    this.openIstio();
  }

  /** @internal */ onDownData(chunk: Buffer): void {
    this.config.stats.downstream_cx_rx_bytes_total += chunk.length;
    if (this.mxDown !== null) {
      const rest = this.readFrame(this.mxDown, chunk, true);
      if (rest === null) return;
      chunk = rest;
    }
    this.forwardDown(chunk);
  }

  /** Payload from the downstream to the upstream. */
  private forwardDown(chunk: Buffer): void {
    const n = chunk.length;
    if (this.istio !== null) this.istio.received.add(n);
    else this.pendingRx += n;
    this.bytesReceived += n;
    const u = this.upstream;
    if (u === null) return;
    this.cluster!.stats.upstream_cx_tx_bytes_total += n;
    if (!u.write(chunk) && !this.downPaused) {
      this.downPaused = true;
      this.downstream.pause();
      this.config.stats.downstream_flow_control_paused_reading_total++;
    }
  }

  /** @internal */ onUpDrain(): void {
    if (this.downPaused) {
      this.downPaused = false;
      this.config.stats.downstream_flow_control_resumed_reading_total++;
      if (!this.downClosed) this.downstream.resume();
    }
    if (!this.downClosed && this.config.idleTimeoutMs > 0) this.downstream.setTimeout(this.config.idleTimeoutMs);
  }

  /** @internal */ onUpData(chunk: Buffer): void {
    const rt = this.cluster!;
    rt.stats.upstream_cx_rx_bytes_total += chunk.length;
    if (this.flushing) {
      // No downstream to give these bytes to: close, as the kernel would on a socket whose reader is gone.
      this.destroyUpstream();
      return;
    }
    if (this.mxUp !== null) {
      const rest = this.readFrame(this.mxUp, chunk, false);
      if (rest === null) return;
      chunk = rest;
    }
    this.forwardUp(chunk);
  }

  /** Payload from the upstream to the downstream. */
  private forwardUp(chunk: Buffer): void {
    const rt = this.cluster!;
    const n = chunk.length;
    this.config.stats.downstream_cx_tx_bytes_total += n;
    if (this.istio !== null) this.istio.sent.add(n);
    else this.pendingTx += n;
    this.bytesSent += n;
    if (!this.downstream.write(chunk) && !this.upPaused) {
      this.upPaused = true;
      this.upstream!.pause();
      rt.stats.inc('upstream_flow_control_paused_reading_total');
    }
  }

  /** @internal */ onDownDrain(): void {
    if (this.upPaused) {
      this.upPaused = false;
      this.cluster!.stats.inc('upstream_flow_control_resumed_reading_total');
      this.upstream?.resume();
    }
  }

  /** @internal */ onDownEnd(): void {
    // An incomplete exchange frame was not one: its bytes are passed on.
    const mx = this.mxDown;
    if (mx !== null) {
      const held = mx.flush();
      this.frameDone(mx, true);
      if (held.length > 0) this.forwardDown(held);
    }
    // Half-close: the client is done sending; pass the FIN on after the bytes before it.
    this.upstream?.end();
  }

  /** @internal */ onUpEnd(): void {
    const mx = this.mxUp;
    if (mx !== null) {
      const held = mx.flush();
      this.frameDone(mx, false);
      if (held.length > 0 && !this.flushing && !this.downClosed) this.forwardUp(held);
    }
    if (!this.downClosed) this.downstream.end();
  }

  /** @internal */ onTimeout(kind: 'idle' | 'duration'): void {
    const st = this.config.stats;
    if (kind === 'idle') st.idle_timeout++;
    else st.max_downstream_connection_duration++;
    this.localClose = true;
    this.destroyUpstream();
    this.downstream.destroy();
  }

  /** @internal */ onFlushIdle(): void {
    this.config.stats.idle_timeout++;
    this.destroyUpstream();
  }

  /** @internal */ onUpClose(): void {
    clearTimeout(this.connectTimer);
    this.connectTimer = undefined;
    this.upstream = null;
    this.upPaused = false;
    const rt = this.cluster!;
    const host = this.host!;
    rt.circuitBreaker().release('connections');
    rt.stats.upstream_cx_active--;
    rt.stats.upstream_cx_destroy++;
    if (this.upLocal) rt.stats.upstream_cx_destroy_local++;
    else rt.stats.upstream_cx_destroy_remote++;
    host.stats.cx_active--;
    if (!this.connected) {
      if (this.downClosed) {
        this.finish();
        return;
      }
      rt.stats.upstream_cx_connect_fail++;
      host.stats.cx_connect_fail++;
      host.outlier.putResult('local-origin-failure', this.connectTimedOut ? 504 : 503);
      this.addFlag('UF');
      this.connectUpstream();
      return;
    }
    if (this.flushing) {
      this.flushing = false;
      this.config.stats.upstream_flush_active--;
    }
    if (this.downClosed) {
      this.finish();
      return;
    }
    // The upstream is gone: write what is buffered for the client, then close.
    if (this.downPaused) this.downstream.resume();
    this.downstream.destroySoon();
  }

  /** @internal */ onDownClose(): void {
    this.downClosed = true;
    clearTimeout(this.durationTimer);
    const u = this.upstream;
    if (u === null) {
      this.finish();
      return;
    }
    if (!this.connected || this.localClose) {
      this.destroyUpstream();
      return;
    }
    if (u.writableLength > 0 && !u.destroyed) {
      // The client is gone with bytes still buffered for the upstream: finish writing them, then close.
      this.flushing = true;
      const st = this.config.stats;
      st.upstream_flush_total++;
      st.upstream_flush_active++;
      if (this.upPaused) {
        this.upPaused = false;
        u.resume();
      }
      const idle = this.config.idleTimeoutMs;
      if (idle > 0) {
        u.setTimeout(idle);
        u.on('timeout', onFlushIdle);
      }
      this.upLocal = true;
      u.destroySoon();
      return;
    }
    this.destroyUpstream();
  }

  private destroyUpstream(): void {
    const u = this.upstream;
    if (u === null) return;
    this.upLocal = true;
    u.destroy();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.durationTimer);
    // Closed before the peer's exchange frame came: counted without its labels.
    this.mxDown = this.mxUp = null;
    this.openIstio();
    this.config.stats.istio?.close(this);
    const ls = this.config.listenerStats;
    if (ls !== null) {
      ls.downstream_cx_active.dec();
      ls.downstream_cx_destroy.inc();
    }
    clearTimeout(this.connectTimer);
    this.onClose?.(this);
    this.config.onSessionClose?.(this);
    if (this.config.accessLogs !== null) logTcpSession(this.config.accessLogs, this);
  }
}

function sessionOf(s: Tagged): TcpProxySession {
  return s[SESSION]!;
}

function onDownClose(this: Tagged): void {
  sessionOf(this).onDownClose();
}
function onDownData(this: Tagged, chunk: Buffer): void {
  sessionOf(this).onDownData(chunk);
}
function onDownEnd(this: Tagged): void {
  sessionOf(this).onDownEnd();
}
function onDownDrain(this: Tagged): void {
  sessionOf(this).onDownDrain();
}
function onIdle(this: Tagged): void {
  sessionOf(this).onTimeout('idle');
}
function onUpConnect(this: Tagged): void {
  sessionOf(this).onUpConnect();
}
function onUpClose(this: Tagged): void {
  sessionOf(this).onUpClose();
}
function onUpData(this: Tagged, chunk: Buffer): void {
  sessionOf(this).onUpData(chunk);
}
function onUpEnd(this: Tagged): void {
  sessionOf(this).onUpEnd();
}
function onUpDrain(this: Tagged): void {
  sessionOf(this).onUpDrain();
}
function onFlushIdle(this: Tagged): void {
  sessionOf(this).onFlushIdle();
}
function onConnectTimeout(s: TcpProxySession): void {
  s.onConnectTimeout();
}
function onMaxDuration(s: TcpProxySession): void {
  s.onTimeout('duration');
}
