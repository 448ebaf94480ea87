/**
 * security.istio.io PeerAuthentication, AuthorizationPolicy and RequestAuthentication: schemas (istio/api
 * security/v1beta1/*.proto, type/v1beta1/selector.proto, the CRDs' CEL rules, istio/istio
 * ValidatePeerAuthentication / ValidateAuthorizationPolicy / ValidateRequestAuthentication and
 * pkg/config/security) and translation into the model's security entries.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { defineKind } from '../kind.js';
import type { Resource, TranslateContext } from '../kind.js';
import type {
  AuthorizationPolicy,
  AuthzOperation,
  AuthzRule,
  AuthzSource,
  JwtRule,
  Labels,
  MtlsMode,
  PeerAuthenticationPolicy,
  PolicyTargetRef,
  RequestAuthenticationPolicy,
  ValueSet,
} from '../../model.js';
import type { JsonPath } from '../../source.js';
import { SECURITY_GROUP, SECURITY_VERSIONS, issuer, istioDuration, policyTargetRef, strictHeaderNameError, typeWorkloadSelector } from './common.js';
import type { Issue } from './common.js';

const MTLS_MODES = ['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT'] as const;

type SelectorSpec = z.output<ReturnType<typeof typeWorkloadSelector>>;
type TargetRefSpec = z.output<ReturnType<typeof policyTargetRef>>;

/** A selector with labels, or undefined (no selector, or one without labels, applies namespace-wide). */
function selectorOf(s: SelectorSpec | undefined): Labels | undefined {
  const labels = s?.matchLabels ?? {};
  return Object.keys(labels).length ? { ...labels } : undefined;
}

function targetRefsOf(spec: { targetRef?: TargetRefSpec | undefined; targetRefs?: TargetRefSpec[] | undefined }): PolicyTargetRef[] | undefined {
  const refs = [...(spec.targetRef ? [spec.targetRef] : []), ...(spec.targetRefs ?? [])];
  return refs.length ? refs.map((r) => ({ group: r.group ?? '', kind: r.kind, name: r.name })) : undefined;
}

/** Istio `validateOneOfSelectorType`. */
function checkOneSelector(spec: { selector?: unknown; targetRef?: unknown; targetRefs?: unknown[] | undefined }, issue: Issue): void {
  const set = (spec.selector !== undefined ? 1 : 0) + (spec.targetRef !== undefined ? 1 : 0) + ((spec.targetRefs ?? []).length ? 1 : 0);
  if (set > 1) issue([], 'only one of targetRefs or workloadSelector can be set');
}

// ---------------------------------------------------------------------------------------------------------------
// PeerAuthentication

const peerAuthenticationBase = z.strictObject({
  selector: typeWorkloadSelector().optional(),
  mtls: z.strictObject({ mode: z.enum(MTLS_MODES).optional() }).optional(),
  portLevelMtls: z.record(z.string(), z.strictObject({ mode: z.enum(MTLS_MODES).optional() })).optional(),
});
export type PeerAuthenticationSpec = z.output<typeof peerAuthenticationBase>;

export const peerAuthenticationSpec = peerAuthenticationBase.superRefine((pa, ctx) => {
  const issue = issuer(ctx);
  const ports = Object.keys(pa.portLevelMtls ?? {});
  if (pa.portLevelMtls !== undefined && ports.length === 0) issue(['portLevelMtls'], 'port level mTLS, if defined, must have at least one element');
  if (ports.length && !selectorOf(pa.selector)) issue(['portLevelMtls'], 'mesh/namespace peer authentication cannot have port level mTLS (portLevelMtls requires a selector)');
  for (const p of ports) {
    if (!/^\d+$/.test(p) || Number(p) < 1 || Number(p) > 65535) issue(['portLevelMtls', p], 'port must be in range 1..65535');
  }
});

function translatePeerAuthentication(res: Resource<PeerAuthenticationSpec>, ctx: TranslateContext): void {
  const pa = res.spec;
  const portLevel: Record<number, MtlsMode> = {};
  for (const [p, v] of Object.entries(pa.portLevelMtls ?? {})) portLevel[Number(p)] = v.mode ?? 'UNSET';
  const out: PeerAuthenticationPolicy = {
    namespace: res.namespace,
    // No mtls block (or no mode) is UNSET: inherit from the namespace / mesh policy.
    mode: pa.mtls?.mode ?? 'UNSET',
    portLevel,
    origin: ctx.origin(res),
  };
  const selector = selectorOf(pa.selector);
  if (selector) out.selector = selector;
  ctx.model.peerAuthentications.push(out);
}

export const peerAuthenticationKind = defineKind<PeerAuthenticationSpec>({
  group: SECURITY_GROUP,
  kind: 'PeerAuthentication',
  family: 'istio',
  versions: SECURITY_VERSIONS,
  namespaced: true,
  schema: peerAuthenticationSpec,
  translate: translatePeerAuthentication,
});

// ---------------------------------------------------------------------------------------------------------------
// AuthorizationPolicy

const strings = () => z.array(z.string()).optional();
const serviceAccounts = () => z.array(z.string().max(320)).max(16, 'may not have more than 16 values').optional();

const source = z.strictObject({
  principals: strings(),
  notPrincipals: strings(),
  requestPrincipals: strings(),
  notRequestPrincipals: strings(),
  namespaces: strings(),
  notNamespaces: strings(),
  serviceAccounts: serviceAccounts(),
  notServiceAccounts: serviceAccounts(),
  ipBlocks: strings(),
  notIpBlocks: strings(),
  remoteIpBlocks: strings(),
  notRemoteIpBlocks: strings(),
});
type SourceSpec = z.output<typeof source>;

const operation = z.strictObject({
  hosts: strings(),
  notHosts: strings(),
  ports: strings(),
  notPorts: strings(),
  methods: strings(),
  notMethods: strings(),
  paths: strings(),
  notPaths: strings(),
});
type OperationSpec = z.output<typeof operation>;

const rule = z.strictObject({
  from: z.array(z.strictObject({ source: source.optional() })).max(512).optional(),
  to: z.array(z.strictObject({ operation: operation.optional() })).optional(),
  when: z.array(z.strictObject({ key: z.string(), values: strings(), notValues: strings() })).optional(),
});

const authorizationPolicyBase = z.strictObject({
  selector: typeWorkloadSelector().optional(),
  targetRef: policyTargetRef().optional(),
  targetRefs: z.array(policyTargetRef()).max(16).optional(),
  rules: z.array(rule).max(512).optional(),
  action: z.enum(['ALLOW', 'DENY', 'AUDIT', 'CUSTOM']).optional(),
  provider: z.strictObject({ name: z.string().optional() }).optional(),
});
export type AuthorizationPolicySpec = z.output<typeof authorizationPolicyBase>;

/** pkg/config/security `ValidateIPs`: addresses or CIDR ranges. */
function ipError(v: string): string | undefined {
  if (v.includes('/')) {
    const [addr, bits, extra] = v.split('/');
    const family = isIP(addr ?? '');
    const ok = extra === undefined && family !== 0 && /^\d+$/.test(bits ?? '') && Number(bits) <= (family === 4 ? 32 : 128);
    return ok ? undefined : `bad CIDR range (${v})`;
  }
  return isIP(v) ? undefined : `bad IP address (${v})`;
}

/** pkg/config/security `ValidatePorts`: decimal numbers up to 65535. */
function portsError(v: string): string | undefined {
  return /^\d+$/.test(v) && Number(v) <= 65535 ? undefined : `bad port (${v})`;
}

/** pkg/config/security `CheckServiceAccount`: `serviceAccount` or `namespace/serviceAccount`, no wildcards. */
function serviceAccountError(v: string, key: string): string | undefined {
  if (v === '') return `empty value not allowed, found in ${key}`;
  if (v.includes('*')) return `wildcard not allowed, found in ${key}`;
  const slashes = v.split('/').length - 1;
  if (slashes > 1) return `expected format 'serviceAccount' or 'namespace/serviceAccount', found "${v}" in ${key}`;
  const [ns, sa] = slashes ? (v.split('/') as [string, string]) : ['-', v];
  if (ns === '') return `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty namespace "${v}" in ${key}`;
  if (sa === '') return `expected format 'serviceAccount' or 'namespace/serviceAccount', found empty serviceAccount "${v}" in ${key}`;
  return undefined;
}

/** pkg/config/security `CheckValidPathTemplate`: `{*}` and `{**}` (last) only, literal segments around them. */
function pathTemplateError(path: string, key: string): string | undefined {
  const hasTemplate = path.includes('{*}') || path.includes('{**}');
  let seenAny = false;
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  for (const glob of trimmed.split('/')) {
    if (glob === '{*}' && !seenAny) continue;
    if (glob === '{**}' && !seenAny) {
      seenAny = true;
      continue;
    }
    if ((glob === '{**}' || glob === '{*}') && seenAny) return `invalid or unsupported path ${trimmed}, found in ${key}. {**} is not the last operator`;
    if (/[{}]/.test(glob)) return `invalid or unsupported path ${trimmed}, found in ${key}. Contains '{' or '}' beyond a supported path template`;
    if (hasTemplate && !/^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/.test(glob)) return `invalid or unsupported path ${trimmed}, found in ${key}. Contains segment ${glob} with invalid string literal`;
  }
  return undefined;
}

/** pkg/config/security `ValidateAttribute`: the condition keys Istio knows, with their value formats. */
function attributeError(key: string, values: readonly string[]): string | undefined {
  const empty = values.some((v) => v === '');
  if (empty) return `empty value not allowed, found in ${key}`;
  const mapKey = () => {
    const open = key.indexOf('[');
    return key.endsWith(']') && open > 0 && open < key.length - 2 ? undefined : `bad key (${key}): should have format a[b]`;
  };
  const first = (f: (v: string) => string | undefined) => values.map(f).find((e) => e !== undefined);
  if (key.startsWith('request.headers') || key.startsWith('request.experimental.inline.headers')) return mapKey();
  if (key === 'source.ip' || key === 'remote.ip' || key === 'destination.ip') return first(ipError);
  if (key === 'source.serviceAccount') return values.length > 16 ? 'may not have more than 16 values' : first((v) => serviceAccountError(v, key));
  if (['source.namespace', 'source.principal', 'request.auth.principal', 'request.auth.audiences', 'request.auth.presenter', 'connection.sni'].includes(key)) return undefined;
  if (key.startsWith('request.auth.claims')) return mapKey();
  if (key === 'destination.port') return first(portsError);
  if (key.startsWith('experimental.envoy.filters.')) return mapKey();
  if (key === 'destination.namespace') return `attribute ${key} is replaced by the metadata.namespace`;
  if (key.startsWith('destination.labels')) return `attribute ${key} is replaced by the workload selector`;
  if (key === 'destination.name' || key === 'destination.user') return `deprecated attribute ${key}: only supported in v1alpha1`;
  return `unknown attribute: ${key}`;
}

const SOURCE_FIELDS = ['principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals', 'namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const;
const OPERATION_FIELDS = ['hosts', 'notHosts', 'ports', 'notPorts', 'methods', 'notMethods', 'paths', 'notPaths'] as const;

function checkSource(src: SourceSpec, at: JsonPath, i: number, issue: Issue): void {
  const n = (k: (typeof SOURCE_FIELDS)[number]) => (src[k] ?? []).length;
  if (n('principals') + n('notPrincipals') + n('namespaces') + n('notNamespaces') > 0 && n('serviceAccounts') + n('notServiceAccounts') > 0) {
    issue(at, `cannot set serviceAccounts with namespaces or principals, found at rule ${i}`);
  }
  if (SOURCE_FIELDS.every((k) => n(k) === 0)) issue(at, `\`from.source\` must not be empty, found at rule ${i}`);
  for (const k of ['ipBlocks', 'notIpBlocks', 'remoteIpBlocks', 'notRemoteIpBlocks'] as const) {
    (src[k] ?? []).forEach((v, j) => {
      const err = ipError(v);
      if (err) issue([...at, k, j], err);
    });
  }
  for (const k of SOURCE_FIELDS) {
    (src[k] ?? []).forEach((v, j) => {
      if (k === 'serviceAccounts' || k === 'notServiceAccounts') {
        const err = serviceAccountError(v, k === 'serviceAccounts' ? 'ServiceAccounts' : 'NotServiceAccounts');
        if (err) issue([...at, k, j], err);
      } else if (v === '') issue([...at, k, j], `empty value not allowed, found in ${k}`);
    });
  }
}

function checkOperation(op: OperationSpec, at: JsonPath, i: number, issue: Issue): void {
  if (OPERATION_FIELDS.every((k) => (op[k] ?? []).length === 0)) issue(at, `\`to.operation\` must not be empty, found at rule ${i}`);
  for (const k of ['ports', 'notPorts'] as const) {
    (op[k] ?? []).forEach((v, j) => {
      const err = portsError(v);
      if (err) issue([...at, k, j], err);
    });
  }
  for (const k of OPERATION_FIELDS) {
    (op[k] ?? []).forEach((v, j) => {
      if (v === '') issue([...at, k, j], `empty value not allowed, found in ${k}`);
    });
  }
  for (const k of ['paths', 'notPaths'] as const) {
    (op[k] ?? []).forEach((v, j) => {
      const err = pathTemplateError(v, k === 'paths' ? 'Paths' : 'NotPaths');
      if (err) issue([...at, k, j], err);
    });
  }
}

function validateAuthorizationPolicy(ap: AuthorizationPolicySpec, issue: Issue): void {
  checkOneSelector(ap, issue);
  const action = ap.action ?? 'ALLOW';
  if (action === 'CUSTOM') {
    if (ap.rules === undefined) issue(['rules'], 'CUSTOM action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request');
    else if (!ap.provider?.name) issue(['provider'], '`provider.name` must not be empty');
    (ap.rules ?? []).forEach((r, i) => {
      (r.from ?? []).forEach((f, j) => {
        for (const k of ['namespaces', 'notNamespaces', 'serviceAccounts', 'notServiceAccounts', 'principals', 'notPrincipals', 'requestPrincipals', 'notRequestPrincipals'] as const) {
          if ((f.source?.[k] ?? []).length) issue(['rules', i, 'from', j, 'source', k], `From.${k[0]!.toUpperCase()}${k.slice(1)} is currently not supported with CUSTOM action`);
        }
      });
      (r.when ?? []).forEach((w, j) => {
        if (['source.namespace', 'source.serviceAccount', 'source.principal'].includes(w.key) || w.key.startsWith('request.auth.')) {
          issue(['rules', i, 'when', j, 'key'], `${w.key} is currently not supported with CUSTOM action`);
        }
      });
    });
  }
  if (ap.provider !== undefined && action !== 'CUSTOM') issue(['provider'], `\`provider\` must not be with non CUSTOM action, found ${action}`);
  if (action === 'DENY' && ap.rules === undefined) issue(['rules'], 'DENY action without `rules` is meaningless as it will never be triggered, add an empty rule `{}` if you want it be triggered for every request');
  (ap.rules ?? []).forEach((r, i) => {
    const at: JsonPath = ['rules', i];
    if (r.from !== undefined && r.from.length === 0) issue([...at, 'from'], `\`from\` must not be empty, found at rule ${i}`);
    (r.from ?? []).forEach((f, j) => {
      if (!f.source) issue([...at, 'from', j], `\`from.source\` must not be nil, found at rule ${i}`);
      else checkSource(f.source, [...at, 'from', j, 'source'], i, issue);
    });
    if (r.to !== undefined && r.to.length === 0) issue([...at, 'to'], `\`to\` must not be empty, found at rule ${i}`);
    (r.to ?? []).forEach((t, j) => {
      if (!t.operation) issue([...at, 'to', j], `\`to.operation\` must not be nil, found at rule ${i}`);
      else checkOperation(t.operation, [...at, 'to', j, 'operation'], i, issue);
    });
    (r.when ?? []).forEach((w, j) => {
      const p = [...at, 'when', j];
      if (w.key === '') {
        issue([...p, 'key'], '`key` must not be empty');
        return;
      }
      if (!(w.values ?? []).length && !(w.notValues ?? []).length) {
        issue(p, `at least one of \`values\` or \`notValues\` must be set for key ${w.key}`);
        return;
      }
      // Istio checks both lists; an empty one is skipped here so that a bad key is reported once.
      const ve = (w.values ?? []).length ? attributeError(w.key, w.values ?? []) : undefined;
      if (ve) issue([...p, 'values'], `invalid \`value\` for \`key\` ${w.key}: ${ve}`);
      const ne = (w.notValues ?? []).length ? attributeError(w.key, w.notValues ?? []) : undefined;
      if (ne) issue([...p, 'notValues'], `invalid \`notValue\` for \`key\` ${w.key}: ${ne}`);
    });
  });
}

export const authorizationPolicySpec = authorizationPolicyBase.superRefine((ap, ctx) => validateAuthorizationPolicy(ap, issuer(ctx)));

function valueSet(values: string[] | undefined, notValues: string[] | undefined): ValueSet | undefined {
  if (!values?.length && !notValues?.length) return undefined;
  const out: ValueSet = {};
  if (values?.length) out.values = [...values];
  if (notValues?.length) out.notValues = [...notValues];
  return out;
}

function serviceAccountRefs(list: string[] | undefined, namespace: string): Array<{ namespace: string; name: string }> | undefined {
  if (!list?.length) return undefined;
  // A value without a namespace names a service account of the policy's namespace.
  return list.map((v) => {
    const slash = v.indexOf('/');
    return slash < 0 ? { namespace, name: v } : { namespace: v.slice(0, slash), name: v.slice(slash + 1) };
  });
}

function toSource(s: SourceSpec, namespace: string): AuthzSource {
  const out: AuthzSource = {};
  const principals = valueSet(s.principals, s.notPrincipals);
  if (principals) out.principals = principals;
  const requestPrincipals = valueSet(s.requestPrincipals, s.notRequestPrincipals);
  if (requestPrincipals) out.requestPrincipals = requestPrincipals;
  const namespaces = valueSet(s.namespaces, s.notNamespaces);
  if (namespaces) out.namespaces = namespaces;
  const ipBlocks = valueSet(s.ipBlocks, s.notIpBlocks);
  if (ipBlocks) out.ipBlocks = ipBlocks;
  const remoteIpBlocks = valueSet(s.remoteIpBlocks, s.notRemoteIpBlocks);
  if (remoteIpBlocks) out.remoteIpBlocks = remoteIpBlocks;
  const sas = serviceAccountRefs(s.serviceAccounts, namespace);
  if (sas) out.serviceAccounts = sas;
  const notSas = serviceAccountRefs(s.notServiceAccounts, namespace);
  if (notSas) out.notServiceAccounts = notSas;
  return out;
}

function toOperation(o: OperationSpec): AuthzOperation {
  const out: AuthzOperation = {};
  for (const [k, not] of [['hosts', 'notHosts'], ['ports', 'notPorts'], ['methods', 'notMethods'], ['paths', 'notPaths']] as const) {
    const vs = valueSet(o[k], o[not]);
    if (vs) out[k] = vs;
  }
  return out;
}

/**
 * Rules as written: no `rules` is an empty list (an ALLOW policy then matches nothing, so it denies every request
 * to the workloads it selects); a rule `{}` matches every request. The action defaults to ALLOW.
 */
function translateAuthorizationPolicy(res: Resource<AuthorizationPolicySpec>, ctx: TranslateContext): void {
  const ap = res.spec;
  const rules: AuthzRule[] = (ap.rules ?? []).map((r) => ({
    from: (r.from ?? []).filter((f) => f.source).map((f) => toSource(f.source!, res.namespace)),
    to: (r.to ?? []).filter((t) => t.operation).map((t) => toOperation(t.operation!)),
    when: (r.when ?? []).map((w) => {
      const c: AuthorizationPolicy['rules'][number]['when'][number] = { key: w.key };
      if (w.values?.length) c.values = [...w.values];
      if (w.notValues?.length) c.notValues = [...w.notValues];
      return c;
    }),
  }));
  const out: AuthorizationPolicy = { namespace: res.namespace, action: ap.action ?? 'ALLOW', rules, origin: ctx.origin(res) };
  const selector = selectorOf(ap.selector);
  if (selector) out.selector = selector;
  const targetRefs = targetRefsOf(ap);
  if (targetRefs) out.targetRefs = targetRefs;
  if (ap.provider?.name) out.provider = ap.provider.name;
  ctx.model.authorizationPolicies.push(out);
}

export const authorizationPolicyKind = defineKind<AuthorizationPolicySpec>({
  group: SECURITY_GROUP,
  kind: 'AuthorizationPolicy',
  family: 'istio',
  versions: SECURITY_VERSIONS,
  namespaced: true,
  schema: authorizationPolicySpec,
  translate: translateAuthorizationPolicy,
});

// ---------------------------------------------------------------------------------------------------------------
// RequestAuthentication

const jwksUriSchema = () =>
  z
    .string()
    .min(1)
    .max(2048)
    .refine((u) => /^https?:\/\//i.test(u), { message: 'url must have scheme http:// or https://' });

const jwtRule = z
  .strictObject({
    issuer: z.string().optional(),
    audiences: z.array(z.string().min(1, 'audience must be non-empty string')).optional(),
    jwksUri: jwksUriSchema().optional(),
    /** The proto JSON name of jwks_uri is `jwks_uri`; the CRD accepts both spellings. */
    jwks_uri: jwksUriSchema().optional(),
    jwks: z.string().optional(),
    fromHeaders: z.array(z.strictObject({ name: z.string().min(1, 'location header name must be non-empty string'), prefix: z.string().optional() })).optional(),
    fromParams: z.array(z.string().min(1, 'location query must be non-empty string')).optional(),
    fromCookies: z.array(z.string().min(1, 'cookie name must be non-empty string')).optional(),
    outputPayloadToHeader: z.string().optional(),
    forwardOriginalToken: z.boolean().optional(),
    outputClaimToHeaders: z.array(z.strictObject({ header: z.string(), claim: z.string() })).optional(),
    spaceDelimitedClaims: z.array(z.string().min(1)).max(64).optional(),
    timeout: istioDuration().optional(),
  })
  .superRefine((r, ctx) => {
    const issue = issuer(ctx);
    const uri = r.jwksUri ?? r.jwks_uri;
    if ((r.jwksUri !== undefined ? 1 : 0) + (r.jwks_uri !== undefined ? 1 : 0) + (r.jwks !== undefined ? 1 : 0) > 1) issue(['jwks'], 'only one of jwks or jwksUri can be set');
    if (!r.issuer && !uri) issue(['issuer'], 'issuer or jwksUri must be non-empty string');
    if (r.jwks !== undefined) {
      try {
        const parsed: unknown = JSON.parse(r.jwks);
        if (parsed === null || typeof parsed !== 'object') throw new Error('not a JSON object');
      } catch (e) {
        issue(['jwks'], `jwks parse error: ${(e as Error).message}`);
      }
    }
    (r.outputClaimToHeaders ?? []).forEach((o, i) => {
      if (o.claim === '' || o.header === '') issue(['outputClaimToHeaders', i], 'outputClaimToHeaders header and claim value must be non-empty string');
      else {
        const err = strictHeaderNameError(o.header);
        if (err) issue(['outputClaimToHeaders', i, 'header'], err);
      }
    });
  });

const requestAuthenticationBase = z.strictObject({
  selector: typeWorkloadSelector().optional(),
  targetRef: policyTargetRef().optional(),
  targetRefs: z.array(policyTargetRef()).max(16).optional(),
  jwtRules: z.array(jwtRule).max(4096).optional(),
});
export type RequestAuthenticationSpec = z.output<typeof requestAuthenticationBase>;

export const requestAuthenticationSpec = requestAuthenticationBase.superRefine((ra, ctx) => checkOneSelector(ra, issuer(ctx)));

/**
 * A JWT rule. With no location given, the token is looked for where Istio (and Envoy) look by default: the
 * `Authorization: Bearer <token>` header, then the `access_token` query parameter.
 */
function toJwtRule(r: z.output<typeof jwtRule>): JwtRule {
  const noLocation = !r.fromHeaders?.length && !r.fromParams?.length && !r.fromCookies?.length;
  const out: JwtRule = {
    issuer: r.issuer ?? '',
    audiences: [...(r.audiences ?? [])],
    fromHeaders: noLocation ? [{ name: 'Authorization', prefix: 'Bearer ' }] : (r.fromHeaders ?? []).map((h) => (h.prefix !== undefined ? { name: h.name, prefix: h.prefix } : { name: h.name })),
    fromParams: noLocation ? ['access_token'] : [...(r.fromParams ?? [])],
    fromCookies: [...(r.fromCookies ?? [])],
    forwardOriginalToken: r.forwardOriginalToken ?? false,
    outputClaimToHeaders: (r.outputClaimToHeaders ?? []).map((o) => ({ header: o.header, claim: o.claim })),
  };
  const uri = r.jwksUri ?? r.jwks_uri;
  if (uri !== undefined) out.jwksUri = uri;
  if (r.jwks !== undefined) out.jwks = r.jwks;
  if (r.outputPayloadToHeader) out.outputPayloadToHeader = r.outputPayloadToHeader;
  return out;
}

function translateRequestAuthentication(res: Resource<RequestAuthenticationSpec>, ctx: TranslateContext): void {
  const ra = res.spec;
  const out: RequestAuthenticationPolicy = { namespace: res.namespace, jwtRules: (ra.jwtRules ?? []).map(toJwtRule), origin: ctx.origin(res) };
  const selector = selectorOf(ra.selector);
  if (selector) out.selector = selector;
  const targetRefs = targetRefsOf(ra);
  if (targetRefs) out.targetRefs = targetRefs;
  ctx.model.requestAuthentications.push(out);
}

export const requestAuthenticationKind = defineKind<RequestAuthenticationSpec>({
  group: SECURITY_GROUP,
  kind: 'RequestAuthentication',
  family: 'istio',
  versions: SECURITY_VERSIONS,
  namespaced: true,
  schema: requestAuthenticationSpec,
  translate: translateRequestAuthentication,
});
