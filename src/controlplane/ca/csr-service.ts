/**
 * The CSR service: `istio.v1.auth.IstioCertificateService/CreateCertificate` (wire format in src/pki/ca-api.ts),
 * served on the control plane's TLS xDS port only (a bearer token must never cross a plaintext connection).
 *
 * Who the caller is:
 * - `authorization: Bearer <token>` metadata → the TokenVerifier decides (a Weft workload token, see token.ts).
 *   A token that does not verify is refused even when a client certificate is presented too.
 * - no token, but a client certificate from the mesh CA (verified by the TLS handshake, within its validity)
 *   whose SPIFFE URI is a workload identity of the mesh's trust domain → that identity. This is how a proxy
 *   renews its certificate after its bootstrap token has expired (istiod accepts client certificates the same way).
 * - neither → UNAUTHENTICATED.
 * The CA then signs only that identity (ca.ts: a CSR asking for another is refused). Refusals carry a gRPC status
 * that says why (UNAUTHENTICATED: no or bad credentials; PERMISSION_DENIED: the CSR asks for another identity;
 * INVALID_ARGUMENT: bad CSR or TTL; UNAVAILABLE: the CA cannot sign) and are logged with the caller's address and
 * identity when known; the token itself is never logged.
 */
import { Metadata, status as grpcStatus } from '@grpc/grpc-js';
import type { sendUnaryData, ServerUnaryCall, UntypedServiceImplementation } from '@grpc/grpc-js';
import { spiffeUrisOf } from '../../pki/grpc-certs.js';
import type { CertificateRequest, CertificateResponse } from '../../pki/ca-api.js';
import { parseSpiffeUri } from '../../pki/spiffe.js';
import type { Logger } from '../log.js';
import { CaRequestError } from './ca.js';
import type { CertificateAuthority } from './ca.js';
import { TokenError } from './token.js';
import type { TokenVerifier } from './token.js';

export interface CsrServiceOptions {
  /** The CA in force. */
  ca(): CertificateAuthority;
  /** The mesh's trust domain now (MeshConfig trustDomain). */
  trustDomain(): string;
  verifier: TokenVerifier;
  logger: Logger;
  /** Counts outcomes (istiod's citadel_server_* metrics). */
  onResult?(result: 'issued' | 'authentication_failure' | 'refused' | 'sign_error'): void;
}

/** A refusal: gRPC status code and message. */
class Refusal extends Error {
  constructor(
    readonly code: grpcStatus,
    message: string,
  ) {
    super(message);
  }
}

/** The bearer token of a call's metadata, or undefined (never logged). */
function bearerToken(md: Metadata): string | undefined {
  for (const v of md.get('authorization')) {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(String(v));
    if (m) return m[1];
  }
  return undefined;
}

/** The handlers of the CA service, for `server.addService(caServiceDefinition, ...)`. */
export function csrServiceHandlers(opts: CsrServiceOptions): UntypedServiceImplementation {
  const { logger } = opts;
  const authenticate = async (call: ServerUnaryCall<CertificateRequest, CertificateResponse>): Promise<{ namespace: string; serviceAccount: string; via: string }> => {
    const token = bearerToken(call.metadata);
    if (token !== undefined) {
      try {
        const id = await opts.verifier.verify(token);
        return { namespace: id.namespace, serviceAccount: id.serviceAccount, via: `${opts.verifier.kind} token` };
      } catch (e) {
        if (e instanceof TokenError) throw new Refusal(grpcStatus.UNAUTHENTICATED, `token refused: ${e.message}`);
        throw e;
      }
    }
    const peer = call.getAuthContext().sslPeerCertificate;
    if (peer) {
      const td = opts.trustDomain();
      for (const uri of spiffeUrisOf(peer.subjectaltname)) {
        const id = parseSpiffeUri(uri);
        if (id && id.trustDomain === td) return { namespace: id.namespace, serviceAccount: id.serviceAccount, via: 'client certificate' };
      }
      throw new Refusal(grpcStatus.UNAUTHENTICATED, `the client certificate carries no workload identity of trust domain ${td}, and no bearer token was sent`);
    }
    throw new Refusal(grpcStatus.UNAUTHENTICATED, 'no credentials: send "authorization: Bearer <token>" metadata (a workload token from `weft token create`) or a client certificate from the mesh CA');
  };

  return {
    CreateCertificate: (call: ServerUnaryCall<CertificateRequest, CertificateResponse>, callback: sendUnaryData<CertificateResponse>) => {
      const peerAddr = call.getPeer();
      let who: string | undefined;
      void (async () => {
        const caller = await authenticate(call);
        const ca = opts.ca();
        const identity = { namespace: caller.namespace, serviceAccount: caller.serviceAccount, trustDomain: opts.trustDomain() };
        who = ca.spiffeId(identity);
        const ttlS = call.request.validityDurationSeconds;
        if (ttlS < 0) throw new Refusal(grpcStatus.INVALID_ARGUMENT, `validity_duration ${ttlS} is negative`);
        let issued;
        try {
          issued = await ca.signCsr(call.request.csr, identity, ttlS * 1000);
        } catch (e) {
          if (e instanceof CaRequestError) {
            throw new Refusal(e.reason === 'identity' ? grpcStatus.PERMISSION_DENIED : e.reason === 'ca' ? grpcStatus.UNAVAILABLE : grpcStatus.INVALID_ARGUMENT, e.message);
          }
          throw e;
        }
        logger.info({ peer: peerAddr, identity: who, via: caller.via, serial: issued.serial, notAfter: issued.notAfter.toISOString() }, 'certificate issued');
        opts.onResult?.('issued');
        return { certChain: issued.chain };
      })().then(
        (res) => callback(null, res),
        (e: unknown) => {
          if (e instanceof Refusal) {
            opts.onResult?.(e.code === grpcStatus.UNAUTHENTICATED ? 'authentication_failure' : 'refused');
            logger.warn({ peer: peerAddr, identity: who, code: grpcStatus[e.code], reason: e.message }, 'certificate request refused');
            callback({ code: e.code, details: e.message });
            return;
          }
          opts.onResult?.('sign_error');
          logger.error({ peer: peerAddr, identity: who, err: (e as Error)?.stack ?? String(e) }, 'certificate request failed');
          callback({ code: grpcStatus.INTERNAL, details: `certificate request failed: ${(e as Error)?.message ?? String(e)}` });
        },
      );
    },
  };
}
