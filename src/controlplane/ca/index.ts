/**
 * The certificate authority's public API (see ca.ts for the design, docs/security.md for the model):
 *
 *   const { ca } = await loadOrCreateCa('.weft/ca', { trustDomain: 'cluster.local' });  // or loadCa(cacertsDir)
 *   const issued = await ca.signCsr(csrPem, { namespace: 'default', serviceAccount: 'bookinfo-ratings' });
 *   issued.chain;   // [leaf, ..., root] PEMs
 *   ca.rootPem;     // the trust bundle
 *
 * Tests of other parts make certificates with test/helpers/ca.ts (`issueForTest`).
 */
export {
  BACKDATE_MS,
  CA_FILES,
  CaLoadError,
  CaRequestError,
  CertificateAuthority,
  createIntermediateCa,
  createRootCa,
  DEFAULT_MAX_WORKLOAD_TTL_MS,
  DEFAULT_ROOT_TTL_MS,
  DEFAULT_WORKLOAD_TTL_MS,
  loadCa,
  loadOrCreateCa,
  writeCa,
} from './ca.js';
export type { CaOptions, IdentityRequest, IssuedCertificate, Subject } from './ca.js';
export { loadOrCreateTokenKey, TOKEN_AUDIENCE, TOKEN_ISSUER, TokenError, TokenIssuer, tokenKeyPath, WeftTokenVerifier } from './token.js';
export type { TokenIdentity, TokenVerifier } from './token.js';
export type { WorkloadId } from '../../pki/spiffe.js';
export { parseSpiffeUri, spiffeUri } from '../../pki/spiffe.js';
