/**
 * What the transport knows about the peer of one connection: set once, when its TLS handshake completes, and read by
 * whatever needs the peer's identity (authorization, metrics labels, access logs, x-forwarded-client-cert). Both
 * directions record it: downstream connections (the listener's TLS layer, context.ts) and upstream ones
 * (upstream.ts, so the client side's metrics know the server's verified SAN and the certificate this proxy showed).
 *
 *   setPeer(socket, info)     // the TLS layer, once per connection
 *   peerOf(socket)            // anyone holding the connection's socket (DownstreamStream.socket, upstream streams,
 *                             // tcp sessions)
 *
 * A socket with nothing recorded is a plaintext connection with no identity (PLAINTEXT_PEER).
 */
import type { Socket } from 'node:net';

export interface PeerInfo {
  /** TLS was terminated on this connection (mutual or simple). */
  readonly tls: boolean;
  /** The verified peer certificate's URI SAN (`spiffe://<td>/ns/<ns>/sa/<sa>`); '' when none was presented. */
  readonly principal: string;
  /** The URI SAN of the certificate this side presented on the connection ('' when none): Istio's uriSanLocalCertificate. */
  readonly localPrincipal: string;
  /** The SNI the client sent; '' when none. */
  readonly sni: string;
  /** The negotiated ALPN protocol; '' when none. */
  readonly alpn: string;
  /** SHA-256 of the peer certificate's DER, lower-case hex (x-forwarded-client-cert `Hash`); '' when none. */
  readonly certHash: string;
  /** The peer certificate's subject, RFC 2253 style (x-forwarded-client-cert `Subject`); '' when none. */
  readonly subject: string;
}

export const PLAINTEXT_PEER: PeerInfo = Object.freeze({ tls: false, principal: '', localPrincipal: '', sni: '', alpn: '', certHash: '', subject: '' });

const PEER = Symbol('weft.peer');

type WithPeer = Socket & { [PEER]?: PeerInfo };

export function setPeer(socket: Socket, info: PeerInfo): void {
  (socket as WithPeer)[PEER] = info;
}

export function peerOf(socket: Socket): PeerInfo {
  return (socket as WithPeer)[PEER] ?? PLAINTEXT_PEER;
}
