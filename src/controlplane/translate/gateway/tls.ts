/**
 * TLS on gateway servers (Istio `buildGatewayListenerTLSContext`) and the SDS secrets it names.
 *
 * - SIMPLE: the server certificate from SDS `kubernetes://<credentialName>` (or the `serverCertificate` /
 *   `privateKey` files), no client certificate asked for.
 * - MUTUAL: as SIMPLE, plus client certificates required and verified against SDS
 *   `kubernetes://<credentialName>-cacert` (or the `caCertificates` file), with `subjectAltNames` checked.
 *   OPTIONAL_MUTUAL verifies a certificate when one is sent but does not require it.
 * - ISTIO_MUTUAL: the proxy's own workload certificate (SDS `default`) and the mesh trust bundle (SDS `ROOTCA`),
 *   client certificates required.
 *
 * HTTPS servers offer ALPN `h2`, `http/1.1`; TLS is 1.2 at least unless `minProtocolVersion` says otherwise
 * (Istio's gateway default).
 */
import { create } from '@bufbuild/protobuf';
import type { GatewayServer } from '../../../api/model.js';
import { pack } from '../../../xds/index.js';
import { TransportSocketSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { TransportSocket } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { AggregatedConfigSourceSchema, ApiVersion, ConfigSourceSchema } from '../../../xds/gen/envoy/config/core/v3/config_source_pb.js';
import {
  CertificateValidationContextSchema,
  TlsCertificateSchema,
  TlsParameters_TlsProtocol,
  TlsParametersSchema,
} from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { SdsSecretConfigSchema, SecretSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import type { SdsSecretConfig, Secret } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { CommonTlsContext_CombinedCertificateValidationContextSchema, DownstreamTlsContextSchema } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import type { DownstreamTlsContext } from '../../../xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { StringMatcherSchema } from '../../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import { TLS_TRANSPORT_SOCKET } from '../cluster.js';

/** Prefix of the SDS names of gateway credentials (Istio's `kubernetes://` resource names). */
export const CREDENTIAL_PREFIX = 'kubernetes://';
/** Suffix of the SDS name of a credential's CA certificate (Istio SdsCaSuffix). */
export const CA_SUFFIX = '-cacert';
/** The proxy's workload certificate and the mesh trust bundle (Istio's SDS names). */
export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';

/** ALPN offered by HTTPS gateway servers. */
export const GATEWAY_ALPN = ['h2', 'http/1.1'];

const TLS_VERSIONS: Record<string, TlsParameters_TlsProtocol> = {
  TLS_AUTO: TlsParameters_TlsProtocol.TLS_AUTO,
  TLSV1_0: TlsParameters_TlsProtocol.TLSv1_0,
  TLSV1_1: TlsParameters_TlsProtocol.TLSv1_1,
  TLSV1_2: TlsParameters_TlsProtocol.TLSv1_2,
  TLSV1_3: TlsParameters_TlsProtocol.TLSv1_3,
};

/** Server TLS modes that terminate TLS at the gateway. */
export function terminatesTls(mode: string): boolean {
  return mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL' || mode === 'ISTIO_MUTUAL';
}

/** The SDS name of a credential (`kubernetes://<name>`), and of its CA (`kubernetes://<name>-cacert`). */
export function credentialSecretName(credentialName: string, ca = false): string {
  return `${CREDENTIAL_PREFIX}${credentialName}${ca ? CA_SUFFIX : ''}`;
}

function sds(name: string): SdsSecretConfig {
  return create(SdsSecretConfigSchema, {
    name,
    sdsConfig: create(ConfigSourceSchema, { configSourceSpecifier: { case: 'ads', value: create(AggregatedConfigSourceSchema) }, resourceApiVersion: ApiVersion.V3 }),
  });
}

/** What a terminating server's TLS needs: the context, and the SDS secrets it reads over ADS. */
export interface ServerTls {
  context: DownstreamTlsContext;
  /** SDS names served by the control plane (credentials); `default` / `ROOTCA` are the proxy's own. */
  credentialSecrets: string[];
}

/** The DownstreamTlsContext of a terminating server (see the module comment). `http`: offer h2 + http/1.1. */
export function serverTlsContext(tls: NonNullable<GatewayServer['tls']>, http: boolean): ServerTls {
  const ctx = create(DownstreamTlsContextSchema, { commonTlsContext: {} });
  const common = ctx.commonTlsContext!;
  const secrets: string[] = [];
  const mode = tls.mode;
  const verify = mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL' || mode === 'ISTIO_MUTUAL';
  const sans = (tls.subjectAltNames ?? []).map((s) => create(StringMatcherSchema, { matchPattern: { case: 'exact', value: s } }));
  if (mode === 'ISTIO_MUTUAL') {
    common.tlsCertificateSdsSecretConfigs = [sds(WORKLOAD_SECRET)];
    common.validationContextType = {
      case: 'combinedValidationContext',
      value: create(CommonTlsContext_CombinedCertificateValidationContextSchema, {
        defaultValidationContext: { matchSubjectAltNames: sans },
        validationContextSdsSecretConfig: sds(ROOT_SECRET),
      }),
    };
  } else if (tls.credentialName) {
    const cert = credentialSecretName(tls.credentialName);
    common.tlsCertificateSdsSecretConfigs = [sds(cert)];
    secrets.push(cert);
    if (verify) {
      const ca = credentialSecretName(tls.credentialName, true);
      secrets.push(ca);
      common.validationContextType = {
        case: 'combinedValidationContext',
        value: create(CommonTlsContext_CombinedCertificateValidationContextSchema, {
          defaultValidationContext: { matchSubjectAltNames: sans },
          validationContextSdsSecretConfig: sds(ca),
        }),
      };
    }
  } else {
    common.tlsCertificates = [
      create(TlsCertificateSchema, {
        certificateChain: { specifier: { case: 'filename', value: tls.serverCertificate ?? '' } },
        privateKey: { specifier: { case: 'filename', value: tls.privateKey ?? '' } },
      }),
    ];
    if (verify) {
      common.validationContextType = {
        case: 'validationContext',
        value: create(CertificateValidationContextSchema, {
          trustedCa: { specifier: { case: 'filename', value: tls.caCertificates ?? '' } },
          matchSubjectAltNames: sans,
        }),
      };
    }
  }
  if (mode === 'MUTUAL' || mode === 'ISTIO_MUTUAL') ctx.requireClientCertificate = true;
  if (http) common.alpnProtocols = [...GATEWAY_ALPN];
  common.tlsParams = create(TlsParametersSchema, {
    tlsMinimumProtocolVersion: TLS_VERSIONS[tls.minProtocolVersion ?? 'TLSV1_2'] ?? TlsParameters_TlsProtocol.TLSv1_2,
  });
  return { context: ctx, credentialSecrets: secrets };
}

/** The `envoy.transport_sockets.tls` transport socket around a DownstreamTlsContext. */
export function downstreamTransportSocket(ctx: DownstreamTlsContext): TransportSocket {
  return create(TransportSocketSchema, { name: TLS_TRANSPORT_SOCKET, configType: { case: 'typedConfig', value: pack(DownstreamTlsContextSchema, ctx) } });
}

/** The PEM contents of one credential (a `credentialName`), as read from the credentials directory. */
export interface Credential {
  /** Certificate chain and private key (both or neither). */
  certChainPem?: string;
  keyPem?: string;
  /** CA certificates for verifying clients (MUTUAL), when the credential has them. */
  caPem?: string;
}

/** What translation reads of the credentials (see src/controlplane/credentials.ts). */
export interface CredentialView {
  /** The credential of this name; undefined when there is none. */
  get(name: string): Credential | undefined;
  /** Where credentials come from, for messages (e.g. the directory). */
  readonly where: string;
}

/**
 * For a `<x>-cacert` name: the CA of credential `<x>-cacert` if it has one, else that of `<x>` (Istio); undefined
 * for other names or when there is no such CA.
 */
export function credentialCa(name: string, view: CredentialView): string | undefined {
  if (!name.endsWith(CA_SUFFIX)) return undefined;
  return view.get(name)?.caPem ?? view.get(name.slice(0, -CA_SUFFIX.length))?.caPem;
}

/**
 * The SDS Secret of a credential name (`kubernetes://<name>` → certificate and key; `kubernetes://<name>-cacert`
 * → the CA as a validation context); undefined when the credential (or its CA) does not exist.
 */
export function credentialSecret(sdsName: string, view: CredentialView): Secret | undefined {
  if (!sdsName.startsWith(CREDENTIAL_PREFIX)) return undefined;
  const name = sdsName.slice(CREDENTIAL_PREFIX.length);
  const caPem = credentialCa(name, view);
  if (caPem !== undefined) {
    return create(SecretSchema, {
      name: sdsName,
      type: { case: 'validationContext', value: create(CertificateValidationContextSchema, { trustedCa: { specifier: { case: 'inlineString', value: caPem } } }) },
    });
  }
  const cred = view.get(name);
  if (!cred?.certChainPem || !cred.keyPem) return undefined;
  return create(SecretSchema, {
    name: sdsName,
    type: {
      case: 'tlsCertificate',
      value: create(TlsCertificateSchema, {
        certificateChain: { specifier: { case: 'inlineString', value: cred.certChainPem } },
        privateKey: { specifier: { case: 'inlineString', value: cred.keyPem } },
      }),
    },
  });
}
