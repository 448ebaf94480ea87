/**
 * The trust bundle as an SDS resource: an Envoy `Secret` named `ROOTCA` (Istio's name) whose
 * `validation_context.trusted_ca` holds the root certificate(s) inline. Every proxy that subscribes to it over
 * ADS gets it; when the CA files change the control plane pushes the new one.
 */
import { create } from '@bufbuild/protobuf';
import { pack } from '../../xds/index.js';
import { SecretSchema } from '../../xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { versioned } from '../cache/snapshot.js';
import type { VersionedResource } from '../cache/snapshot.js';

/** The SDS name of the trust bundle (Istio's). */
export const ROOTCA_SECRET = 'ROOTCA';

/** The `ROOTCA` Secret for a PEM trust bundle, packed and versioned. */
export function rootCaSecret(rootPem: string): VersionedResource {
  const secret = create(SecretSchema, {
    name: ROOTCA_SECRET,
    type: { case: 'validationContext', value: { trustedCa: { specifier: { case: 'inlineBytes', value: new TextEncoder().encode(rootPem) } } } },
  });
  return versioned(ROOTCA_SECRET, pack(SecretSchema, secret));
}
