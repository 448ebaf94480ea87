/**
 * Picks the HTTP codec for an accepted downstream connection, as Envoy's HCM codec_type does
 * (ConnectionManagerImpl::onData → ServerCodec; Http::Utility / Http2::CLIENT_MAGIC_PREFIX):
 *
 *   const conn = serveHttp(socket, hcm, onClose);            // plaintext listener
 *   const conn = serveHttp(tlsSocket, hcm, onClose, alpn);   // TLS: alpn = tlsSocket.alpnProtocol
 *
 * - codec_type HTTP1: HTTP/1.1 only (an HTTP/2 preface is a codec error and closes the connection);
 * - codec_type HTTP2: HTTP/2 only (nghttp2 rejects anything but the preface with a GOAWAY);
 * - AUTO (the default): ALPN `h2` → HTTP/2, `http/1.1` → HTTP/1.1; without ALPN the first bytes decide — data
 *   starting with `PRI * HTTP/2` (Envoy's CLIENT_MAGIC_PREFIX, 12 bytes) is HTTP/2 prior knowledge, anything else
 *   HTTP/1.1. The sniffed bytes are put back with `socket.unshift` for the chosen codec; the rest of the preface
 *   is checked by nghttp2 (a bad preface after the prefix → the connection is closed).
 * The returned object is what the listener tracks (socket + drain); it calls `onClose` with itself.
 */
import type { Socket } from 'node:net';
import type { H1RequestParserOptions } from '../codec/h1/index.js';
import { H1ServerConnection, type ServerHeaderPolicy, type StreamHandler } from './connection.js';
import { H2ServerConnection, type H2ServerOptions } from './h2-connection.js';

/** HCM codec_type. */
export type CodecType = 'auto' | 'http1' | 'http2';

/** What serveHttp needs from the compiled connection manager. */
export interface HttpServerConfig extends StreamHandler {
  readonly codec: CodecType;
  readonly parserOptions: H1RequestParserOptions;
  readonly serverPolicy: ServerHeaderPolicy;
  readonly h2Options: H2ServerOptions;
}

export interface HttpServerConnection {
  readonly socket: Socket;
  drain(): void;
}

const H2_PREFIX = Buffer.from('PRI * HTTP/2', 'latin1');

export function serveHttp(socket: Socket, cfg: HttpServerConfig, onClose: (c: HttpServerConnection) => void, alpn?: string | false | null): HttpServerConnection {
  if (cfg.codec === 'http2' || alpn === 'h2') return new H2ServerConnection(socket, cfg, cfg.serverPolicy, cfg.h2Options, onClose);
  if (cfg.codec === 'http1' || alpn === 'http/1.1') return new H1ServerConnection(socket, cfg, cfg.parserOptions, cfg.serverPolicy, onClose);
  return new SniffingConnection(socket, cfg, onClose);
}

/** AUTO without ALPN: waits for enough first bytes to tell HTTP/2 prior knowledge from HTTP/1.1. */
class SniffingConnection implements HttpServerConnection {
  private inner: HttpServerConnection | null = null;
  private buf: Buffer | null = null;
  private draining = false;
  private readonly onData = (chunk: Buffer) => this.sniff(chunk);
  private readonly onEarlyClose = () => this.onClose(this);

  constructor(
    readonly socket: Socket,
    private readonly cfg: HttpServerConfig,
    private readonly onClose: (c: HttpServerConnection) => void,
  ) {
    socket.on('data', this.onData);
    socket.on('error', noop);
    socket.once('close', this.onEarlyClose);
  }

  drain(): void {
    if (this.inner !== null) this.inner.drain();
    else {
      // Nothing received yet: nothing in flight.
      this.draining = true;
      this.socket.end();
    }
  }

  private sniff(chunk: Buffer): void {
    const data = this.buf === null ? chunk : Buffer.concat([this.buf, chunk]);
    const n = Math.min(data.length, H2_PREFIX.length);
    const h2 = data.compare(H2_PREFIX, 0, n, 0, n) === 0;
    if (h2 && n < H2_PREFIX.length) {
      this.buf = data; // a prefix of the preface so far: wait for more
      return;
    }
    this.buf = null;
    const s = this.socket;
    s.removeListener('data', this.onData);
    s.removeListener('close', this.onEarlyClose);
    s.pause();
    const done = () => this.onClose(this);
    if (h2) {
      s.unshift(data);
      this.inner = new H2ServerConnection(s, this.cfg, this.cfg.serverPolicy, this.cfg.h2Options, done);
    } else {
      this.inner = new H1ServerConnection(s, this.cfg, this.cfg.parserOptions, this.cfg.serverPolicy, done, data);
      s.resume();
    }
    if (this.draining) this.inner.drain();
  }
}

function noop(): void {}
