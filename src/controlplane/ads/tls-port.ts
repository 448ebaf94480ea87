/**
 * The TLS xDS port (istiod's 15012): one gRPC server over TLS with the control plane's CA-signed certificate,
 * serving
 * - the CSR service (ca/csr-service.ts): callers without a certificate authenticate with a bearer token;
 * - ADS over mutual TLS: a stream is served only when the client presented a certificate that chains to the
 *   mesh's trust bundle (verified by the handshake) and whose SPIFFE identity matches the proxy's node: the
 *   trust domain is the mesh's, and the namespace and service account are those the control plane reads from the
 *   node (metadata NAMESPACE and SERVICE_ACCOUNT, see proxy.ts; an absent SERVICE_ACCOUNT means `default`). So a
 *   workload can only ever receive the configuration of its own identity. Refusals end the stream with
 *   UNAUTHENTICATED (no valid client certificate) or PERMISSION_DENIED (identity mismatch), and are logged.
 *
 * Client certificates are requested but not required by the handshake (a proxy's first call, the CSR, has none);
 * ADS streams without one are refused by the check above.
 *
 * The serving certificate has the DNS names istiod's has (`istiod.istio-system.svc` and friends), Weft's own
 * (`weft-control-plane`), `localhost`, the host name, and the bind address (every local address when binding a
 * wildcard address), a fresh ECDSA P-256 key, the workload TTL, and is renewed at half its lifetime and whenever
 * the CA changes; the trust bundle used to verify clients follows the CA too. Both apply to new connections.
 */
import { hostname, networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { experimental, Server, status as grpcStatus } from '@grpc/grpc-js';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import { caServiceDefinition } from '../../pki/ca-api.js';
import { MemoryCertificateProvider, spiffeUrisOf } from '../../pki/grpc-certs.js';
import { parseSpiffeUri } from '../../pki/spiffe.js';
import type { CertificateAuthority } from '../ca/ca.js';
import { csrServiceHandlers } from '../ca/csr-service.js';
import type { CsrServiceOptions } from '../ca/csr-service.js';
import type { Logger } from '../log.js';
import { proxyFromNode } from '../proxy.js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { AdsServer } from './server.js';
import { StreamError } from './stream.js';

export interface TlsPortOptions extends CsrServiceOptions {
  ads: AdsServer;
  /** The address the port binds to (goes into the serving certificate's SANs). */
  bind: string;
  /** Kubernetes DNS domain (istiod.istio-system.svc.<domain>). */
  domain: string;
  /** More DNS names or IP addresses for the serving certificate. */
  extraNames?: readonly string[];
}

/** The DNS names and IPs the serving certificate carries. */
export function servingNames(bind: string, domain: string, extra: readonly string[] = []): { dnsNames: string[]; ipAddresses: string[] } {
  const dns = new Set(['weft-control-plane', 'istiod', 'istiod.istio-system', 'istiod.istio-system.svc', `istiod.istio-system.svc.${domain}`, 'localhost', hostname().toLowerCase()]);
  const ips = new Set<string>();
  const wildcard = bind === '0.0.0.0' || bind === '::';
  if (wildcard) {
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.address.includes('%')) ips.add(a.address);
    ips.add('127.0.0.1');
  } else if (isIP(bind)) ips.add(bind);
  else dns.add(bind);
  for (const n of extra) (isIP(n) ? ips : dns).add(n);
  return { dnsNames: [...dns], ipAddresses: [...ips] };
}

export class TlsXdsPort {
  readonly server: Server;
  private readonly provider = new MemoryCertificateProvider();
  private renewTimer?: NodeJS.Timeout;
  private closed = false;
  private generation = 0;

  constructor(private readonly opts: TlsPortOptions) {
    this.server = new Server({
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 256 * 1024 * 1024,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.server.addService(caServiceDefinition, csrServiceHandlers(opts));
    opts.ads.addTo(this.server, (node, call) => this.authorize(node, call));
  }

  /** Issues the serving certificate, binds and starts; returns the bound port. */
  async listen(port: number): Promise<number> {
    await this.refresh(this.opts.ca());
    const creds = experimental.createCertificateProviderServerCredentials(this.provider, this.provider, false);
    const host = this.opts.bind.includes(':') ? `[${this.opts.bind}]` : this.opts.bind;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, creds, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
  }

  /** Re-issues the serving certificate and installs the CA's trust bundle (at start, on renewal, on a CA change). */
  async refresh(ca: CertificateAuthority): Promise<void> {
    const gen = ++this.generation;
    const names = servingNames(this.opts.bind, this.opts.domain, this.opts.extraNames);
    const issued = await ca.issueWithKey({ altNames: names });
    if (this.closed || gen !== this.generation) return;
    this.provider.setCa(ca.rootPem);
    this.provider.setIdentity(issued.certChainPem, issued.keyPem);
    if (this.renewTimer) clearTimeout(this.renewTimer);
    const half = Math.max(1000, (issued.notAfter.getTime() - Date.now()) / 2);
    this.renewTimer = setTimeout(() => {
      this.refresh(this.opts.ca()).catch((e: unknown) => this.opts.logger.error({ err: (e as Error)?.message ?? String(e) }, 'cannot renew the control plane serving certificate'));
    }, Math.min(half, 2 ** 31 - 1));
    this.renewTimer.unref();
    this.opts.logger.info({ serial: issued.serial, notAfter: issued.notAfter.toISOString(), dns: names.dnsNames, ips: names.ipAddresses }, 'control plane serving certificate issued');
  }

  private authorize(node: Node | undefined, call: ServerDuplexStream<unknown, unknown>): StreamError | undefined {
    const peer = call.getAuthContext().sslPeerCertificate;
    const from = call.getPeer();
    const refuse = (code: grpcStatus, message: string) => {
      this.opts.logger.warn({ peer: from, node: node?.id, code: grpcStatus[code], reason: message }, 'xDS stream refused');
      return new StreamError(code, message);
    };
    if (!peer) return refuse(grpcStatus.UNAUTHENTICATED, 'xDS on the TLS port needs mutual TLS: present a workload certificate from the mesh CA (get one from the CSR service with a token first)');
    const td = this.opts.trustDomain();
    const ids = spiffeUrisOf(peer.subjectaltname).map(parseSpiffeUri).filter((x) => x !== undefined);
    if (!node?.id) return undefined; // the stream itself refuses a first request without a node
    let info;
    try {
      info = proxyFromNode(node);
    } catch (e) {
      return refuse(grpcStatus.INVALID_ARGUMENT, `cannot read the proxy identity from its node: ${(e as Error).message}`);
    }
    const ok = ids.some((id) => id.trustDomain === td && id.namespace === info.namespace && id.serviceAccount === info.serviceAccount);
    if (!ok) {
      const have = ids.length ? ids.map((i) => `spiffe://${i.trustDomain}/ns/${i.namespace}/sa/${i.serviceAccount}`).join(', ') : 'no workload identity';
      return refuse(grpcStatus.PERMISSION_DENIED, `proxy ${node.id} announces namespace "${info.namespace}" and service account "${info.serviceAccount}" (trust domain ${td}), but its certificate is ${have}`);
    }
    return undefined;
  }

  /** Stops the port (ADS streams on it are ended by AdsServer.close). */
  close(): Promise<void> {
    this.closed = true;
    if (this.renewTimer) clearTimeout(this.renewTimer);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }
}
