/**
 * TLS statistics as Envoy names them under a listener (`listener.<..>.ssl.*`) or a cluster (`cluster.<..>.ssl.*`),
 * the SslSocket / context stats that matter for mTLS:
 *
 *   handshake             handshakes completed (and accepted)
 *   session_reused        of which resumed a session (ticket / id)
 *   connection_error      handshakes that failed (bad bytes, alerts, no certificate when one is required, timeouts)
 *   no_certificate        connections whose peer presented no certificate (downstream)
 *   fail_verify_no_cert   refused: a certificate was required and none came
 *   fail_verify_error     refused: the chain does not verify (unknown CA, expired, ...)
 *   fail_verify_san       refused: no SAN matched
 *   fail_verify_cert_hash refused: the certificate hash is not pinned
 *
 *   const s = new TlsStats(); s.handshake++; scope.addSource(s);   // plain fields, no lookups on the data path
 */
import type { StatVisitor } from '../upstream/cluster/stats.js';

export class TlsStats {
  handshake = 0;
  session_reused = 0;
  connection_error = 0;
  no_certificate = 0;
  fail_verify_no_cert = 0;
  fail_verify_error = 0;
  fail_verify_san = 0;
  fail_verify_cert_hash = 0;

  forEach(cb: StatVisitor): void {
    for (const [k, v] of Object.entries(this)) if (typeof v === 'number') cb(`ssl.${k}`, v, 'counter');
  }
}
