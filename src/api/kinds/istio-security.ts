/** Istio security.istio.io kinds (v1, v1beta1): PeerAuthentication, AuthorizationPolicy, RequestAuthentication. */
import type { KindDef } from './kind.js';
import { authorizationPolicyKind, peerAuthenticationKind, requestAuthenticationKind } from './istio/security.js';

export const istioSecurityKinds: ReadonlyArray<KindDef<any>> = [peerAuthenticationKind, authorizationPolicyKind, requestAuthenticationKind];
