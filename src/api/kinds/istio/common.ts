/**
 * Schema pieces shared by the Istio kinds (networking.istio.io, security.istio.io): the proto JSON field names,
 * the oneof rules the CRDs carry, and the checks that Istio's validation webhook (istio/istio
 * pkg/config/validation) reports as errors. Each check is written here from the upstream rule it mirrors.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import type { Labels, Protocol } from '../../model.js';
import { parseDurationMs, positiveDuration, re2Error } from '../../schema/common.js';
import { parseProtocol } from '../../protocol.js';

export const NETWORKING_GROUP = 'networking.istio.io';
export const SECURITY_GROUP = 'security.istio.io';
/** networking.istio.io versions, newest first. None is deprecated: Istio 1.22 added v1 and keeps v1beta1/v1alpha3. */
export const NETWORKING_VERSIONS = ['v1', 'v1beta1', 'v1alpha3'] as const;
/** security.istio.io versions, newest first (v1beta1 stays supported next to v1). */
export const SECURITY_VERSIONS = ['v1', 'v1beta1'] as const;

/** Adds a custom issue at `path` (relative to the object being refined). */
export type Issue = (path: ReadonlyArray<string | number>, message: string) => void;

export function issuer(ctx: z.core.$RefinementCtx<unknown>): Issue {
  return (path, message) => ctx.addIssue({ code: 'custom', message, path: [...path] });
}

// ---------------------------------------------------------------------------------------------------------------
// Scalars

/** A proto wrapper (BoolValue, UInt32Value, DoubleValue): the CRDs mark them nullable; `null` means unset. */
export function wrapper<T extends z.ZodType>(schema: T) {
  return schema.nullish().transform((v) => (v === null ? undefined : v) as z.output<T> | undefined);
}

export const int32 = () => z.number().int('expected an integer').min(-2147483648).max(2147483647);
export const uint32 = () => z.number().int('expected an integer').min(0, 'must not be negative').max(4294967295);
/** An int32 field Istio's validation requires to be non-negative. */
export const nonNegativeInt32 = (what: string) => z.number().int('expected an integer').min(0, `${what} must be non-negative`).max(2147483647);

function msPrecise(ms: number): boolean {
  return Math.abs(ms - Math.round(ms)) < 1e-6;
}

/**
 * A duration as Istio validates it (`agent.ValidateDuration`): at least 1ms, to millisecond precision. The CRDs
 * use the same `duration(self) >= duration('1ms')` rule.
 */
export const istioDuration = () =>
  positiveDuration().refine((s) => msPrecise(parseDurationMs(s) ?? 0), { message: 'only durations to ms precision are supported' });

/** A duration that may also be `0s` (TCP idle timeout: 0 disables it), otherwise as `istioDuration`. */
export const durationOrZero = () =>
  z.string().refine(
    (s) => {
      const v = parseDurationMs(s);
      return v !== undefined && (v === 0 || (v >= 1 && msPrecise(v)));
    },
    { message: 'expected 0s or a duration of at least 1ms (ms precision) such as "10s", "100ms" or "1h30m"' },
  );

/** Milliseconds of a duration the schema has already validated. */
export function ms(text: string): number;
export function ms(text: string | undefined): number | undefined;
export function ms(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  return Math.round(parseDurationMs(text) ?? 0);
}

/** The `Percent` message (`{value: <double>}`); a missing value is 0 (proto3). */
export const percentMessage = () => z.strictObject({ value: z.number().optional() });

/** Istio `validatePercentage`: 0, or a value in [0.0001, 100]. */
export function checkPercentage(value: number | undefined, at: ReadonlyArray<string | number>, issue: Issue): void {
  const v = value ?? 0;
  if (v < 0 || v > 100 || (v > 0 && v < 0.0001)) issue(at, `percentage ${v} is neither 0.0, nor in range [0.0001, 100.0]`);
}

// ---------------------------------------------------------------------------------------------------------------
// Names, hosts and addresses

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const WILDCARD_DNS1123_LABEL = /^(\*|(\*|\*-)?[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/;
const QUALIFIED_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const DNS1123_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

function dnsPreconditions(name: string): string | undefined {
  if (name.length > 255) return `domain name "${name}" too long (max 255)`;
  if (name.length === 0) return 'empty domain name not allowed';
  return undefined;
}

function dnsLabels(domain: string): string | undefined {
  const parts = domain.split('.');
  const tld = parts[parts.length - 1]!;
  if (/^[+-]?\d+$/.test(tld)) return `domain name "${domain}" invalid (top level domain "${tld}" cannot be all-numeric)`;
  for (let i = 0; i < parts.length; i++) {
    const label = parts[i]!;
    if (i === parts.length - 1 && label === '') return undefined; // `istio.io.` is allowed
    if (!isDns1123Label(label)) return `domain name "${domain}" invalid (label "${label}" invalid)`;
  }
  return undefined;
}

/** Istio `ValidateFQDN`: DNS-1123 labels, lower case, top-level domain not all-numeric. */
export function fqdnError(fqdn: string): string | undefined {
  return dnsPreconditions(fqdn) ?? dnsLabels(fqdn);
}

/** Istio `ValidateWildcardDomain`: like an FQDN, with an optional wildcard in the first label only. */
export function wildcardDomainError(domain: string): string | undefined {
  const pre = dnsPreconditions(domain);
  if (pre) return pre;
  const dot = domain.indexOf('.');
  const first = dot < 0 ? domain : domain.slice(0, dot);
  if (!(first.length <= 63 && WILDCARD_DNS1123_LABEL.test(first))) return `domain name "${domain}" invalid (label "${first}" invalid)`;
  return dot < 0 ? undefined : dnsLabels(domain.slice(dot + 1));
}

export function isIpAddress(s: string): boolean {
  return isIP(s) !== 0;
}

/** Istio `ValidateIPSubnet`: an IP address or a CIDR block. */
export function ipSubnetError(subnet: string): string | undefined {
  const parts = subnet.split('/');
  if (parts.length === 2) {
    const [addr, bits] = parts as [string, string];
    const family = isIP(addr);
    const max = family === 4 ? 32 : 128;
    if (family === 0 || !/^\d+$/.test(bits) || Number(bits) > max) return `${subnet} is not a valid CIDR block`;
    return undefined;
  }
  return isIP(subnet) ? undefined : `${subnet} is not a valid IP`;
}

/** Istio `host.Name.Matches`: whether two host names (wildcards allowed) overlap. */
export function hostsOverlap(a: string, b: string): boolean {
  const aw = a.startsWith('*');
  const bw = b.startsWith('*');
  if (aw && bw) return a.length < b.length ? b.slice(1).endsWith(a.slice(1)) : a.slice(1).endsWith(b.slice(1));
  if (aw) return b.endsWith(a.slice(1));
  if (bw) return a.endsWith(b.slice(1));
  return a === b;
}

/** Istio `host.Name.SubsetOf`: whether every name `a` matches is matched by `b`. */
export function hostSubsetOf(a: string, b: string): boolean {
  const aw = a.startsWith('*');
  const bw = b.startsWith('*');
  if (aw) return bw ? a.slice(1).endsWith(b.slice(1)) : false;
  if (bw) return a.endsWith(b.slice(1));
  return a === b;
}

/** Istio `ValidateNamespaceSlashWildcardHostname`: `namespace/dnsName` hosts of Sidecars and Gateways. */
export function namespaceSlashHostError(hostname: string, isGateway: boolean): string | undefined {
  const slash = hostname.indexOf('/');
  if (slash < 0) return isGateway ? wildcardDomainError(hostname) : 'host must be of form namespace/dnsName';
  const ns = hostname.slice(0, slash);
  const host = hostname.slice(slash + 1);
  if (!ns || !host) return 'config namespace and dnsName in host entry cannot be empty';
  const allowed = isGateway ? ['*', '.'] : ['*', '.', '~'];
  if (!allowed.includes(ns) && !isDns1123Label(ns)) return `invalid namespace value "${ns}" in ${isGateway ? 'gateway' : 'sidecar'}`;
  return wildcardDomainError(host);
}

/** Istio label key check (`labels.Instance.Validate`): an optional DNS subdomain prefix and a qualified name. */
export function labelKeyError(key: string): string | undefined {
  const slash = key.lastIndexOf('/');
  const prefix = slash >= 0 ? key.slice(0, slash) : undefined;
  const name = slash >= 0 ? key.slice(slash + 1) : key;
  if (prefix !== undefined && (prefix.length === 0 || prefix.length > 253 || !DNS1123_SUBDOMAIN.test(prefix))) return `invalid tag key: "${key}"`;
  if (name.length === 0 || name.length > 63 || !QUALIFIED_NAME.test(name)) return `invalid tag key: "${key}"`;
  return undefined;
}

/** A label map whose keys and values Istio accepts (`labels.Instance.Validate`). */
export const k8sLabels = () =>
  z.record(z.string(), z.string()).superRefine((m, ctx) => {
    const issue = issuer(ctx);
    for (const [k, v] of Object.entries(m)) {
      const kerr = labelKeyError(k);
      if (kerr) issue([k], kerr);
      if (v.length > 63 || !LABEL_VALUE.test(v)) issue([k], `invalid tag value: "${v}"`);
    }
  });

/** A selector's label map: no empty key, no `*` in keys or values, values at most 63 characters (Istio CRD rules). */
export const selectorLabels = () =>
  z.record(z.string(), z.string()).superRefine((m, ctx) => {
    const issue = issuer(ctx);
    for (const [k, v] of Object.entries(m)) {
      if (k === '') issue([k], `empty key is not supported in selector: "${k}=${v}"`);
      if (k.includes('*') || v.includes('*')) issue([k], `wildcard is not supported in selector: "${k}=${v}"`);
      if (v.length > 63) issue([k], `label value "${v}" is longer than 63 characters`);
    }
  });

/** `istio.type.v1beta1.WorkloadSelector` (security kinds, DestinationRule): `{matchLabels}`. */
export const typeWorkloadSelector = () => z.strictObject({ matchLabels: selectorLabels().optional() });

/** `istio.networking.v1alpha3.WorkloadSelector` (Sidecar, ServiceEntry): `{labels}`. */
export const networkingWorkloadSelector = () => z.strictObject({ labels: selectorLabels().optional() });

/** Kinds a policy `targetRef` may name (Istio `allowedTargetRefs`), as `group/Kind` (core group = ``). */
const ALLOWED_TARGET_REFS = new Set(['/Service', 'networking.istio.io/ServiceEntry', 'gateway.networking.k8s.io/Gateway', 'gateway.networking.k8s.io/GatewayClass']);

/** `istio.type.v1beta1.PolicyTargetReference`. */
export const policyTargetRef = () =>
  z
    .strictObject({
      group: z
        .string()
        .max(253)
        .regex(/^$|^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'group must be a DNS subdomain')
        .optional(),
      kind: z
        .string()
        .min(1)
        .max(63)
        .regex(/^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/, 'kind must start with a letter and contain letters, digits and dashes'),
      name: z.string().min(1, 'targetRef name must be set').max(253),
      namespace: z.string().optional(),
    })
    .superRefine((r, ctx) => {
      const issue = issuer(ctx);
      if (r.namespace) issue(['namespace'], 'targetRef namespace must not be set; cross namespace referencing is not supported');
      const group = r.group ?? '';
      if (!ALLOWED_TARGET_REFS.has(`${group}/${r.kind}`)) {
        issue(['kind'], `targetRef must be to one of core/Service, networking.istio.io/ServiceEntry, gateway.networking.k8s.io/Gateway, gateway.networking.k8s.io/GatewayClass but was ${group}/${r.kind}`);
      }
    });

/** `exportTo` entries (Istio `validateExportTo`); `~` only for ServiceEntries. */
export function checkExportTo(exportTo: readonly string[] | undefined, namespace: string | undefined, isServiceEntry: boolean, issue: Issue, at: ReadonlyArray<string | number> = ['exportTo']): void {
  if (!exportTo || exportTo.length === 0) return;
  const seen = new Set<string>();
  exportTo.forEach((e, i) => {
    const key = e === '.' && namespace ? namespace : e;
    if (seen.has(key)) {
      issue([...at, i], key !== e ? `duplicate entries in exportTo: . and current namespace ${namespace}` : `duplicate entries in exportTo for entry ${e}`);
      return;
    }
    if (e === '~' && !isServiceEntry) issue([...at, i], 'exportTo ~ (none) is not allowed for Istio configuration objects');
    else if (e !== '.' && e !== '*' && e !== '~' && !isDns1123Label(e)) issue([...at, i], 'only ., *, or a valid DNS 1123 label is allowed as exportTo entry');
    seen.add(key);
  });
  if (seen.has('*') && exportTo.length > 1) issue(at, 'cannot have both public (*) and non-public exportTo values for a resource');
  if (seen.has('~') && exportTo.length > 1) issue(at, 'cannot export service entry to no one (~) and someone');
}

/** The exportTo of the model: as written, or `*` (all namespaces) when empty, Istio's default. */
export function exportToOf(exportTo: readonly string[] | undefined): string[] {
  return exportTo && exportTo.length ? [...exportTo] : ['*'];
}

// ---------------------------------------------------------------------------------------------------------------
// Protocols and ports

/**
 * Istio `protocol.Parse` (case-insensitive), or undefined for an unsupported name. Istio also accepts
 * `HTTP_PROXY` (an explicit HTTP proxy listener); the model has no such protocol, so it is HTTP.
 */
export function istioProtocol(name: string): Protocol | undefined {
  return name.toLowerCase() === 'http_proxy' ? 'HTTP' : parseProtocol(name);
}

/** Istio `ValidateProtocol`: empty (sniffed) or a known protocol name. */
export function protocolError(name: string | undefined): string | undefined {
  if (!name) return undefined;
  return istioProtocol(name) ? undefined : `unsupported protocol: ${name} (use one of HTTP, HTTPS, GRPC, GRPC-WEB, HTTP2, MONGO, REDIS, MYSQL, TCP, TLS, UDP)`;
}

/** Istio `ValidatePort`. */
export function portError(n: number): string | undefined {
  return n >= 1 && n <= 65535 ? undefined : `port number ${n} must be in the range 1..65535`;
}

/** Istio `ValidatePortName` (a DNS-1123 label). */
export function portNameError(name: string): string | undefined {
  return isDns1123Label(name) ? undefined : `invalid port name: ${name}`;
}

export function labelsOf(m: Record<string, string> | undefined): Labels {
  return { ...(m ?? {}) };
}

// ---------------------------------------------------------------------------------------------------------------
// String matches and regexes

/** Istio `validateStringRegexp`: at most 1024 characters, RE2 syntax. */
export function regexError(re: string, where: string): string | undefined {
  if (re.length > 1024) return `"${where}": regex is too large, max length allowed is 1024`;
  const err = re2Error(re);
  return err ? `"${where}": invalid RE2 regular expression: ${err}` : undefined;
}

/** `StringMatch`: a oneof of `exact`, `prefix` and `regex` (none set is allowed by the CRD). */
export const stringMatchSchema = () =>
  z
    .strictObject({ exact: z.string().optional(), prefix: z.string().optional(), regex: z.string().optional() })
    .superRefine((m, ctx) => {
      const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
      if (set.length > 1) issuer(ctx)([set[1]!], `only one of exact, prefix or regex may be set (found ${set.join(' and ')})`);
    });
export type StringMatchSpec = z.output<ReturnType<typeof stringMatchSchema>>;

export interface StringMatchRules {
  /** The URI match allows an empty prefix (Envoy path prefix ""). */
  allowEmptyPrefix?: boolean;
  /** withoutHeaders: `regex: "*"` is Istio's "header present" and not a regex. */
  allowStar?: boolean;
}

/** Istio `validateStringMatch` / `validateStringMatchRegexp` for a match at `at`. */
export function checkStringMatch(m: StringMatchSpec | undefined, where: string, at: ReadonlyArray<string | number>, issue: Issue, rules: StringMatchRules = {}): void {
  if (!m) return;
  if (m.prefix !== undefined && m.prefix === '' && !rules.allowEmptyPrefix) issue([...at, 'prefix'], `"${where}": prefix string match should not be empty`);
  if (m.regex !== undefined) {
    if (rules.allowStar && m.regex === '*') return;
    if (m.regex === '') issue([...at, 'regex'], `"${where}": regex string match should not be empty`);
    else {
      const err = regexError(m.regex, where);
      if (err) issue([...at, 'regex'], err);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP header names and values

const TCHAR_HEADER = /^[!#$%&'*+\-.^_`|~A-Za-z0-9]+$/;
const PSEUDO_HEADERS = new Set([':method', ':scheme', ':authority', ':path', ':status']);
// eslint-disable-next-line no-control-regex
const HEADER_VALUE = /^[^\u0000-\u0008\u000A-\u001F\u007F]*$/;

/** A header key in a route match that names a JWT claim (`@request.auth.claims.<name>` or `[..]` form). */
export function isJwtClaimHeader(name: string): boolean {
  return name.startsWith('@request.auth.claims.') || name.startsWith('@request.auth.claims[');
}

/** Istio `ValidateHTTPHeaderNameOrJwtClaimRoute`. */
export function matchHeaderNameError(name: string): string | undefined {
  if (name === '') return 'header name cannot be empty';
  if (isJwtClaimHeader(name) || PSEUDO_HEADERS.has(name)) return undefined;
  return TCHAR_HEADER.test(name) ? undefined : `header name ${name} is not a valid header name`;
}

/** Istio `ValidateCORSHTTPHeaderName`. */
export function corsHeaderNameError(name: string): string | undefined {
  if (name === '') return 'header name cannot be empty';
  if (name === '*') return undefined;
  return TCHAR_HEADER.test(name) ? undefined : `header name ${name} is not a valid header name`;
}

/** Istio `ValidateStrictHTTPHeaderName`. */
export function strictHeaderNameError(name: string): string | undefined {
  if (name === '') return 'header name cannot be empty';
  return /^[-A-Za-z0-9]+$/.test(name) ? undefined : `header name ${name} is not a valid header name`;
}

function isInternalHeader(name: string): boolean {
  return name.startsWith(':') || name.toLowerCase() === 'host';
}

export function isAuthorityHeader(name: string): boolean {
  const n = name.toLowerCase();
  return n === ':authority' || n === 'host';
}

export const headerOperationsSchema = () =>
  z.strictObject({
    set: z.record(z.string(), z.string()).optional(),
    add: z.record(z.string(), z.string()).optional(),
    remove: z.array(z.string()).optional(),
  });
export const headersSchema = () => z.strictObject({ request: headerOperationsSchema().optional(), response: headerOperationsSchema().optional() });
export type HeadersSpec = z.output<ReturnType<typeof headersSchema>>;

/** Istio's header manipulation rules (`ValidateHTTPHeaderWithAuthorityOperationName`, `...OperationName`, values). */
export function checkHeaderOperations(h: HeadersSpec | undefined, at: ReadonlyArray<string | number>, issue: Issue): void {
  if (!h) return;
  const checkValue = (v: string, p: ReadonlyArray<string | number>) => {
    if (!HEADER_VALUE.test(v)) issue(p, `header value configuration ${JSON.stringify(v)} is invalid (control characters are not allowed)`);
  };
  for (const side of ['request', 'response'] as const) {
    const ops = h[side];
    if (!ops) continue;
    for (const op of ['set', 'add'] as const) {
      for (const [name, value] of Object.entries(ops[op] ?? {})) {
        const p = [...at, side, op, name];
        if (name === '') issue(p, 'header name cannot be empty');
        else if (side === 'request') {
          if (isInternalHeader(name) && !isAuthorityHeader(name)) issue(p, `invalid header "${name}": header cannot have ":" prefix`);
        } else if (name.toLowerCase() === 'host') issue(p, `invalid header "${name}": cannot set Host header`);
        else if (isInternalHeader(name)) issue(p, `invalid header "${name}": header cannot have ":" prefix`);
        checkValue(value, p);
      }
    }
    (ops.remove ?? []).forEach((name, i) => {
      const p = [...at, side, 'remove', i];
      if (name === '') issue(p, 'header name cannot be empty');
      else if (name.toLowerCase() === 'host') issue(p, `invalid header "${name}": cannot set Host header`);
      else if (isInternalHeader(name)) issue(p, `invalid header "${name}": header cannot have ":" prefix`);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Gateway names

/**
 * Istio's gateway name resolution (`resolveGatewayName`): `mesh` stays; `ns/name` stays (`./name` is this
 * namespace); a short `name` is `<namespace>/name`; the legacy `name.ns[.svc...]` form is `ns/name`.
 */
export function resolveGatewayName(gw: string, namespace: string): string {
  if (gw === 'mesh') return gw;
  const slash = gw.indexOf('/');
  if (slash >= 0) return gw.slice(0, slash) === '.' ? `${namespace}/${gw.slice(slash + 1)}` : gw;
  const dot = gw.indexOf('.');
  if (dot < 0) return `${namespace}/${gw}`;
  const rest = gw.slice(dot + 1);
  const next = rest.indexOf('.');
  return `${next < 0 ? rest : rest.slice(0, next)}/${gw.slice(0, dot)}`;
}

/** Istio `validateGatewayNames`. */
export function checkGatewayNames(names: readonly string[] | undefined, at: ReadonlyArray<string | number>, issue: Issue): void {
  (names ?? []).forEach((name, i) => {
    const slash = name.indexOf('/');
    if (slash < 0) {
      const err = fqdnError(name);
      if (err) issue([...at, i], err);
      return;
    }
    const ns = name.slice(0, slash);
    const gw = name.slice(slash + 1);
    if (!ns || !gw) issue([...at, i], 'config namespace and gateway name cannot be empty');
    else {
      if (!isDns1123Label(ns)) issue([...at, i], `invalid value for namespace: "${ns}"`);
      if (!isDns1123Label(gw)) issue([...at, i], `invalid value for gateway name: "${gw}"`);
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// TLS (server side: Gateway servers and Sidecar ingress)

export const SERVER_TLS_MODES = ['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'] as const;
export const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

/** `ServerTLSSettings`. */
export const serverTlsSchema = () =>
  z.strictObject({
    httpsRedirect: z.boolean().optional(),
    mode: z.enum(SERVER_TLS_MODES).optional(),
    serverCertificate: z.string().optional(),
    privateKey: z.string().optional(),
    caCertificates: z.string().optional(),
    caCrl: z.string().optional(),
    credentialName: z.string().optional(),
    credentialNames: z.array(z.string()).min(1).max(2).optional(),
    caCertCredentialName: z.string().optional(),
    tlsCertificates: z
      .array(z.strictObject({ serverCertificate: z.string().optional(), privateKey: z.string().optional(), caCertificates: z.string().optional() }))
      .min(1)
      .max(2)
      .optional(),
    subjectAltNames: z.array(z.string()).optional(),
    verifyCertificateSpki: z.array(z.string()).optional(),
    verifyCertificateHash: z.array(z.string()).optional(),
    minProtocolVersion: z.enum(TLS_VERSIONS).optional(),
    maxProtocolVersion: z.enum(TLS_VERSIONS).optional(),
    cipherSuites: z.array(z.string()).optional(),
  });
export type ServerTlsSpec = z.output<ReturnType<typeof serverTlsSchema>>;

/** Istio `validateTLSOptions` (errors only; cipher warnings are left to the analyzer). */
export function checkServerTls(tls: ServerTlsSpec | undefined, at: ReadonlyArray<string | number>, issue: Issue): void {
  if (!tls) return;
  const mode = tls.mode ?? 'PASSTHROUGH';
  const credentialNames = tls.credentialNames ?? [];
  const tlsCertificates = tls.tlsCertificates ?? [];
  if (mode === 'ISTIO_MUTUAL') {
    const forbidden: Array<[keyof ServerTlsSpec, string]> = [
      ['serverCertificate', 'server certificate'],
      ['privateKey', 'private key'],
      ['caCertificates', 'CA bundle'],
      ['tlsCertificates', 'tlsCertificates'],
      ['credentialName', 'credentialName'],
      ['credentialNames', 'credentialNames'],
    ];
    for (const [k, what] of forbidden) {
      const v = tls[k];
      if (v !== undefined && v !== '' && !(Array.isArray(v) && v.length === 0)) issue([...at, k], `ISTIO_MUTUAL TLS cannot have associated ${what}`);
    }
    return;
  }
  let sources = 0;
  if (tls.serverCertificate && tls.privateKey) sources++;
  if (tls.credentialName) sources++;
  if (credentialNames.length) sources++;
  if (tlsCertificates.length) sources++;
  if (sources > 1) issue(at, 'only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified');
  const terminating = mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL';
  if (terminating && (tls.credentialName || credentialNames.length)) return;
  if (terminating) {
    const prefix = mode === 'SIMPLE' ? 'SIMPLE TLS' : 'MUTUAL TLS';
    if (mode !== 'SIMPLE' && !tls.caCertificates) issue([...at, 'caCertificates'], `${prefix} requires a client CA bundle`);
    const certs = tlsCertificates.length ? tlsCertificates : [{ serverCertificate: tls.serverCertificate, privateKey: tls.privateKey }];
    certs.forEach((c) => {
      if (!c.serverCertificate) issue(at, `${prefix} requires a server certificate`);
      if (!c.privateKey) issue(at, `${prefix} requires a private key`);
    });
  }
  if (tls.caCrl) {
    if (tls.credentialName) issue([...at, 'caCrl'], 'CRL is not supported with credentialName. CRL has to be specified in the credential');
    if (mode === 'SIMPLE') issue([...at, 'caCrl'], 'CRL is not supported with SIMPLE TLS');
  }
}
