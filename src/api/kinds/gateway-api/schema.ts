/**
 * Schemas of the Kubernetes Gateway API kinds Weft reads (gateway.networking.k8s.io): HTTPRoute, GRPCRoute,
 * Gateway and GatewayClass. Field names, enums, limits, patterns and defaults follow the upstream Go types
 * (apis/v1/*_types.go) and their CEL validation rules; experimental-channel fields that users run in the wild
 * (rule names, retry, sessionPersistence, CORS, ExternalAuth, useDefaultGateways, defaultScope, ...) are
 * accepted too. Defaults documented upstream (`+kubebuilder:default`) are applied here, so translators see the
 * same values the API server would store.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { gatewayDuration, gatewayDurationMs, re2Error } from '../../schema/common.js';

export const GATEWAY_GROUP = 'gateway.networking.k8s.io';

// ---------------------------------------------------------------------------------------------------------------
// Shared scalar types (shared_types.go)

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const WILDCARD_HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const IPV4 = /^\d{1,3}(\.\d{1,3}){3}$/;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;
const KIND = /^[a-zA-Z]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
const NAMESPACE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const GATEWAY_CONTROLLER = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/;
const PROTOCOL_TYPE = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$/;
const ADDRESS_TYPE = /^Hostname|IPAddress|NamedAddress|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9/\-._~%!$&'()*+,;=:]+$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9]$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const CORS_ORIGIN = /(^\*$)|(^([a-zA-Z][a-zA-Z0-9+\-.]+):\/\/([^:/?#]+)(:([0-9]{1,5}))?$)/;
const PATH_CHARS = /^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$/;
const GRPC_SERVICE = /^\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$/i;
const GRPC_METHOD = /^[A-Za-z_][A-Za-z_0-9]*$/;

/** A hostname, optionally with a leading wildcard label (`*.example.com`); IP addresses are not allowed. */
export const hostname = () =>
  z
    .string()
    .min(1, 'hostname must not be empty')
    .max(253, 'hostname must be at most 253 characters')
    .regex(WILDCARD_HOSTNAME, 'must be a lower-case RFC 1123 hostname, optionally starting with a "*." wildcard label')
    .refine((s) => !IPV4.test(s), 'IP addresses are not allowed as hostnames');

/** A hostname without wildcard. */
export const preciseHostname = () =>
  z
    .string()
    .min(1, 'hostname must not be empty')
    .max(253, 'hostname must be at most 253 characters')
    .regex(DNS_SUBDOMAIN, 'must be a lower-case RFC 1123 hostname (no wildcard)')
    .refine((s) => !IPV4.test(s), 'IP addresses are not allowed as hostnames');

export const group = () =>
  z.string().max(253, 'group must be at most 253 characters').refine((s) => s === '' || DNS_SUBDOMAIN.test(s), 'group must be "" (the core API group) or a DNS subdomain such as gateway.networking.k8s.io');
export const kind = () => z.string().min(1, 'kind must not be empty').max(63, 'kind must be at most 63 characters').regex(KIND, 'kind must be a Kubernetes kind such as Service or Gateway');
export const objectName = () => z.string().min(1, 'name must not be empty').max(253, 'name must be at most 253 characters');
export const namespaceName = () =>
  z.string().min(1, 'namespace must not be empty').max(63, 'namespace must be at most 63 characters').regex(NAMESPACE, 'namespace must be an RFC 1123 label (lower-case letters, digits and "-")');
export const sectionName = () =>
  z.string().min(1, 'section name must not be empty').max(253, 'section name must be at most 253 characters').regex(DNS_SUBDOMAIN, 'must be a lower-case RFC 1123 name (letters, digits, "-" and ".")');
export const portNumber = () => z.number().int('port must be an integer').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535');
export const headerName = () =>
  z
    .string()
    .min(1, 'header name must not be empty')
    .max(256, 'header name must be at most 256 characters')
    .regex(HEADER_NAME, 'must be an HTTP header name (token characters only; HTTP/2 pseudo-headers such as ":method" are not allowed)');
const annotationKey = () => z.string().min(1).max(253).regex(QUALIFIED_NAME, 'must be a qualified name such as "example.com/my-option"');

type Ctx = z.core.$RefinementCtx;

function issue(ctx: Ctx, path: Array<string | number>, message: string): void {
  ctx.addIssue({ code: 'custom', message, path });
}

/** Rejects repeated keys in a list that upstream declares as a map (`+listType=map`) or a set (`+listType=set`). */
function unique<T>(ctx: Ctx, list: readonly T[] | undefined, keyOf: (t: T) => string, path: Array<string | number>, what: string, sub?: string): void {
  if (!list) return;
  const seen = new Map<string, number>();
  list.forEach((item, i) => {
    const k = keyOf(item);
    const prev = seen.get(k);
    if (prev !== undefined) issue(ctx, sub ? [...path, i, sub] : [...path, i], `${what} ${JSON.stringify(k)} is repeated (also at index ${prev})`);
    else seen.set(k, i);
  });
}

function regexIssue(ctx: Ctx, pattern: string | undefined, path: Array<string | number>): void {
  if (pattern === undefined) return;
  const err = re2Error(pattern);
  if (err) issue(ctx, path, `invalid RE2 regular expression: ${err}`);
}

export const labelSelector = () =>
  z.strictObject({
    matchLabels: z.record(z.string(), z.string()).optional(),
    matchExpressions: z
      .array(
        z.strictObject({
          key: z.string().min(1),
          operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
          values: z.array(z.string()).optional(),
        }),
      )
      .optional(),
  });
export type LabelSelector = z.infer<ReturnType<typeof labelSelector>>;

// ---------------------------------------------------------------------------------------------------------------
// References (object_reference_types.go, shared_types.go)

export const parentReference = z.strictObject({
  group: group().default(GATEWAY_GROUP),
  kind: kind().default('Gateway'),
  namespace: namespaceName().optional(),
  name: objectName(),
  sectionName: sectionName().optional(),
  port: portNumber().optional(),
});
export type ParentReference = z.infer<typeof parentReference>;

const backendObjectReferenceShape = {
  group: group().default(''),
  kind: kind().default('Service'),
  name: objectName(),
  namespace: namespaceName().optional(),
  port: portNumber().optional(),
};

function servicePortRequired(v: { group: string; kind: string; port?: number | undefined }, ctx: Ctx): void {
  if (v.group === '' && v.kind === 'Service' && v.port === undefined) issue(ctx, ['port'], 'Must have port for Service reference (the Service port number, not the target port)');
}

export const backendObjectReference = z.strictObject(backendObjectReferenceShape).superRefine(servicePortRequired);
export type BackendObjectReference = z.infer<typeof backendObjectReference>;

export const localObjectReference = z.strictObject({ group: group().optional(), kind: kind(), name: objectName() });

const secretObjectReference = z.strictObject({
  group: group().default(''),
  kind: kind().default('Secret'),
  name: objectName(),
  namespace: namespaceName().optional(),
});
export type SecretObjectReference = z.infer<typeof secretObjectReference>;

const objectReference = z.strictObject({ group: group(), kind: kind(), name: objectName(), namespace: namespaceName().optional() });

/** ParentRefs must be distinct: references to the same parent must each set sectionName and/or port, uniquely. */
function distinctParentRefs(refs: readonly ParentReference[] | undefined, ctx: Ctx): void {
  if (!refs) return;
  const same = (a: ParentReference, b: ParentReference) => a.group === b.group && a.kind === b.kind && a.name === b.name && (a.namespace ?? '') === (b.namespace ?? '');
  refs.forEach((a, i) => {
    for (let j = 0; j < i; j++) {
      const b = refs[j]!;
      if (!same(a, b)) continue;
      if ((a.sectionName === undefined) !== (b.sectionName === undefined) || (a.port === undefined) !== (b.port === undefined)) {
        issue(ctx, [i], `sectionName or port must be specified when parentRefs includes 2 or more references to the same parent (see parentRefs[${j}])`);
      } else if (a.sectionName === b.sectionName && a.port === b.port) {
        issue(ctx, [i], `sectionName or port must be unique when parentRefs includes 2 or more references to the same parent (same as parentRefs[${j}])`);
      }
    }
  });
}

const parentRefs = z.array(parentReference).max(32, 'at most 32 parentRefs').superRefine(distinctParentRefs);

// ---------------------------------------------------------------------------------------------------------------
// Filters (httproute_types.go, grpcroute_types.go)

const httpHeader = z.strictObject({ name: headerName(), value: z.string().min(1, 'header value must not be empty').max(4096, 'header value must be at most 4096 characters') });

export const headerFilter = z
  .strictObject({
    set: z.array(httpHeader).max(16, 'at most 16 headers').optional(),
    add: z.array(httpHeader).max(16, 'at most 16 headers').optional(),
    remove: z.array(z.string()).max(16, 'at most 16 headers').optional(),
  })
  .superRefine((v, ctx) => {
    unique(ctx, v.set, (h) => h.name, ['set'], 'header name', 'name');
    unique(ctx, v.add, (h) => h.name, ['add'], 'header name', 'name');
    unique(ctx, v.remove, (h) => h, ['remove'], 'header name');
    // Only one action per header name (names compare case-insensitively).
    const owner = new Map<string, string>();
    const check = (name: string, where: Array<string | number>, action: string) => {
      const k = name.toLowerCase();
      const prev = owner.get(k);
      if (prev && prev !== action) issue(ctx, where, `header "${name}" is also modified by "${prev}": only one action per header name is allowed`);
      else owner.set(k, action);
    };
    v.set?.forEach((h, i) => check(h.name, ['set', i, 'name'], 'set'));
    v.add?.forEach((h, i) => check(h.name, ['add', i, 'name'], 'add'));
    v.remove?.forEach((h, i) => check(h, ['remove', i], 'remove'));
  });
export type HeaderFilter = z.infer<typeof headerFilter>;

export const pathModifier = z
  .strictObject({
    type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
    replaceFullPath: z.string().max(1024).optional(),
    replacePrefixMatch: z.string().max(1024).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.type === 'ReplaceFullPath' && v.replaceFullPath === undefined) issue(ctx, ['type'], "replaceFullPath must be specified when type is set to 'ReplaceFullPath'");
    if (v.replaceFullPath !== undefined && v.type !== 'ReplaceFullPath') issue(ctx, ['replaceFullPath'], "type must be 'ReplaceFullPath' when replaceFullPath is set");
    if (v.type === 'ReplacePrefixMatch' && v.replacePrefixMatch === undefined) issue(ctx, ['type'], "replacePrefixMatch must be specified when type is set to 'ReplacePrefixMatch'");
    if (v.replacePrefixMatch !== undefined && v.type !== 'ReplacePrefixMatch') issue(ctx, ['replacePrefixMatch'], "type must be 'ReplacePrefixMatch' when replacePrefixMatch is set");
  });
export type PathModifier = z.infer<typeof pathModifier>;

export const redirectFilter = z.strictObject({
  scheme: z.enum(['http', 'https']).optional(),
  hostname: preciseHostname().optional(),
  path: pathModifier.optional(),
  port: portNumber().optional(),
  statusCode: z.literal([301, 302, 303, 307, 308]).default(302),
});

export const rewriteFilter = z.strictObject({ hostname: preciseHostname().optional(), path: pathModifier.optional() });

const fraction = z
  .strictObject({
    numerator: z.number().int().min(0, 'numerator must be >= 0'),
    denominator: z.number().int().min(1, 'denominator must be >= 1').default(100),
  })
  .superRefine((v, ctx) => {
    if (v.numerator > v.denominator) issue(ctx, ['numerator'], 'numerator must be less than or equal to denominator');
  });

export const mirrorFilter = z
  .strictObject({
    backendRef: backendObjectReference,
    percent: z.number().int().min(0, 'percent must be 0-100').max(100, 'percent must be 0-100').optional(),
    fraction: fraction.optional(),
  })
  .superRefine((v, ctx) => {
    if (v.percent !== undefined && v.fraction !== undefined) issue(ctx, ['fraction'], 'Only one of percent or fraction may be specified in HTTPRequestMirrorFilter');
  });
export type MirrorFilter = z.infer<typeof mirrorFilter>;

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

function wildcardAlone(ctx: Ctx, list: readonly string[] | undefined, field: string, what: string): void {
  if (list && list.includes('*') && list.length > 1) issue(ctx, [field], `${what} cannot contain '*' alongside other values`);
}

export const corsFilter = z
  .strictObject({
    allowOrigins: z
      .array(z.string().min(1).max(253).regex(CORS_ORIGIN, 'must be "*" or an origin of the form <scheme>://<host>[:<port>]'))
      .max(64, 'at most 64 origins')
      .optional(),
    allowCredentials: z.boolean().optional(),
    allowMethods: z.array(z.enum([...HTTP_METHODS, '*'])).max(9, 'at most 9 methods').optional(),
    allowHeaders: z.array(headerName()).max(64, 'at most 64 headers').optional(),
    exposeHeaders: z.array(headerName()).max(64, 'at most 64 headers').optional(),
    maxAge: z.number().int().min(1, 'maxAge must be at least 1 (second)').default(5),
  })
  .superRefine((v, ctx) => {
    wildcardAlone(ctx, v.allowOrigins, 'allowOrigins', 'AllowOrigins');
    wildcardAlone(ctx, v.allowMethods, 'allowMethods', 'AllowMethods');
    wildcardAlone(ctx, v.allowHeaders, 'allowHeaders', 'AllowHeaders');
    unique(ctx, v.allowOrigins, (s) => s, ['allowOrigins'], 'origin');
    unique(ctx, v.allowMethods, (s) => s, ['allowMethods'], 'method');
    unique(ctx, v.allowHeaders, (s) => s, ['allowHeaders'], 'header');
    unique(ctx, v.exposeHeaders, (s) => s, ['exposeHeaders'], 'header');
  });
export type CorsFilter = z.infer<typeof corsFilter>;

export const externalAuthFilter = z
  .strictObject({
    protocol: z.enum(['HTTP', 'GRPC']),
    backendRef: backendObjectReference,
    grpc: z.strictObject({ allowedHeaders: z.array(z.string()).max(64).optional() }).optional(),
    http: z
      .strictObject({
        path: z.string().max(1024).regex(PATH_CHARS, 'must be a valid URL path').optional(),
        allowedHeaders: z.array(z.string()).max(64).optional(),
        allowedResponseHeaders: z.array(z.string()).max(64).optional(),
      })
      .optional(),
    forwardBody: z.strictObject({ maxSize: z.number().int().min(0).optional() }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.protocol === 'GRPC' && !v.grpc) issue(ctx, ['protocol'], "grpc must be specified when protocol is set to 'GRPC'");
    if (v.grpc && v.protocol !== 'GRPC') issue(ctx, ['grpc'], "protocol must be 'GRPC' when grpc is set");
    if (v.protocol === 'HTTP' && !v.http) issue(ctx, ['protocol'], "http must be specified when protocol is set to 'HTTP'");
    if (v.http && v.protocol !== 'HTTP') issue(ctx, ['http'], "protocol must be 'HTTP' when http is set");
  });

/** Checks that the configuration field matching `type` is set, and no other. */
function unionMembers(fields: Readonly<Record<string, string>>) {
  return (v: Record<string, unknown> & { type: string }, ctx: Ctx) => {
    for (const [type, field] of Object.entries(fields)) {
      if (v[field] !== undefined && v.type !== type) issue(ctx, [field], `filter.${field} must be nil if the filter.type is not ${type}`);
      if (v[field] === undefined && v.type === type) issue(ctx, ['type'], `filter.${field} must be specified for ${type} filter.type`);
    }
  };
}

const HTTP_FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  RequestRedirect: 'requestRedirect',
  URLRewrite: 'urlRewrite',
  CORS: 'cors',
  ExternalAuth: 'externalAuth',
  ExtensionRef: 'extensionRef',
} as const;

export const httpRouteFilter = z
  .strictObject({
    type: z.enum(['RequestHeaderModifier', 'ResponseHeaderModifier', 'RequestMirror', 'RequestRedirect', 'URLRewrite', 'ExtensionRef', 'CORS', 'ExternalAuth']),
    requestHeaderModifier: headerFilter.optional(),
    responseHeaderModifier: headerFilter.optional(),
    requestMirror: mirrorFilter.optional(),
    requestRedirect: redirectFilter.optional(),
    urlRewrite: rewriteFilter.optional(),
    cors: corsFilter.optional(),
    externalAuth: externalAuthFilter.optional(),
    extensionRef: localObjectReference.optional(),
  })
  .superRefine(unionMembers(HTTP_FILTER_FIELDS));
export type HttpRouteFilter = z.infer<typeof httpRouteFilter>;

function filterListRules(repeatable: readonly string[]) {
  return (list: ReadonlyArray<{ type: string }>, ctx: Ctx) => {
    if (list.some((f) => f.type === 'RequestRedirect') && list.some((f) => f.type === 'URLRewrite')) {
      issue(ctx, [], 'May specify either httpRouteFilterRequestRedirect or httpRouteFilterRequestRewrite, but not both');
    }
    const counts = new Map<string, number>();
    list.forEach((f, i) => {
      const n = (counts.get(f.type) ?? 0) + 1;
      counts.set(f.type, n);
      if (n === 2 && !repeatable.includes(f.type)) issue(ctx, [i, 'type'], `${f.type} filter cannot be repeated`);
    });
  };
}

const httpFilters = z.array(httpRouteFilter).max(16, 'at most 16 filters').superRefine(filterListRules(['RequestMirror', 'ExtensionRef', 'ExternalAuth']));

const GRPC_FILTER_FIELDS = {
  RequestHeaderModifier: 'requestHeaderModifier',
  ResponseHeaderModifier: 'responseHeaderModifier',
  RequestMirror: 'requestMirror',
  ExtensionRef: 'extensionRef',
} as const;

export const grpcRouteFilter = z
  .strictObject({
    type: z.enum(['ResponseHeaderModifier', 'RequestHeaderModifier', 'RequestMirror', 'ExtensionRef']),
    requestHeaderModifier: headerFilter.optional(),
    responseHeaderModifier: headerFilter.optional(),
    requestMirror: mirrorFilter.optional(),
    extensionRef: localObjectReference.optional(),
  })
  .superRefine(unionMembers(GRPC_FILTER_FIELDS));
export type GrpcRouteFilter = z.infer<typeof grpcRouteFilter>;

const grpcFilters = z.array(grpcRouteFilter).max(16, 'at most 16 filters').superRefine(filterListRules(['RequestMirror', 'ExtensionRef']));

// ---------------------------------------------------------------------------------------------------------------
// Backends

const weight = () => z.number().int('weight must be an integer').min(0, 'weight must be 0-1000000').max(1000000, 'weight must be 0-1000000').default(1);

export const httpBackendRef = z
  .strictObject({ ...backendObjectReferenceShape, weight: weight(), filters: httpFilters.optional() })
  .superRefine(servicePortRequired);
export type HttpBackendRef = z.infer<typeof httpBackendRef>;

export const grpcBackendRef = z
  .strictObject({ ...backendObjectReferenceShape, weight: weight(), filters: grpcFilters.optional() })
  .superRefine(servicePortRequired);
export type GrpcBackendRef = z.infer<typeof grpcBackendRef>;

// ---------------------------------------------------------------------------------------------------------------
// HTTPRoute

/** Problems of an Exact/PathPrefix path value, as the HTTPPathMatch CEL rules state them. */
export function pathValueProblem(v: string): string | undefined {
  if (!v.startsWith('/')) return "value must be an absolute path and start with '/' when type one of ['Exact', 'PathPrefix']";
  for (const bad of ['//', '/./', '/../', '%2f', '%2F', '#']) {
    if (v.includes(bad)) return `must not contain '${bad}' when type one of ['Exact', 'PathPrefix']`;
  }
  if (v.endsWith('/..')) return "must not end with '/..' when type one of ['Exact', 'PathPrefix']";
  if (v.endsWith('/.')) return "must not end with '/.' when type one of ['Exact', 'PathPrefix']";
  if (!PATH_CHARS.test(v)) return "must only contain valid characters (matching ^(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|[%][0-9a-fA-F]{2})+$) for types ['Exact', 'PathPrefix']";
  return undefined;
}

export const httpPathMatch = z
  .strictObject({
    type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
    value: z.string().max(1024, 'path must be at most 1024 characters').default('/'),
  })
  .superRefine((v, ctx) => {
    if (v.type === 'RegularExpression') regexIssue(ctx, v.value, ['value']);
    else {
      const p = pathValueProblem(v.value);
      if (p) issue(ctx, ['value'], p);
    }
  });

/** A header or query parameter match: the two differ only in the longest value upstream allows. */
const nameValueMatch = (maxValue: number) =>
  z
    .strictObject({
      type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
      name: headerName(),
      value: z.string().min(1, 'value must not be empty').max(maxValue, `value must be at most ${maxValue} characters`),
    })
    .superRefine((v, ctx) => {
      if (v.type === 'RegularExpression') regexIssue(ctx, v.value, ['value']);
    });

export const httpHeaderMatch = nameValueMatch(4096);
export const httpQueryParamMatch = nameValueMatch(1024);

export const httpRouteMatch = z
  .strictObject({
    path: httpPathMatch.default({ type: 'PathPrefix', value: '/' }),
    headers: z.array(httpHeaderMatch).max(16, 'at most 16 header matches').optional(),
    queryParams: z.array(httpQueryParamMatch).max(16, 'at most 16 query parameter matches').optional(),
    method: z.enum(HTTP_METHODS).optional(),
  })
  .superRefine((v, ctx) => {
    unique(ctx, v.headers, (h) => h.name, ['headers'], 'header', 'name');
    unique(ctx, v.queryParams, (q) => q.name, ['queryParams'], 'query parameter', 'name');
  });
export type HttpRouteMatch = z.infer<typeof httpRouteMatch>;

export const httpRouteTimeouts = z
  .strictObject({ request: gatewayDuration().optional(), backendRequest: gatewayDuration().optional() })
  .superRefine((v, ctx) => {
    if (v.request === undefined || v.backendRequest === undefined) return;
    const req = gatewayDurationMs(v.request);
    if (req !== 0 && gatewayDurationMs(v.backendRequest) > req) issue(ctx, ['backendRequest'], 'backendRequest timeout cannot be longer than request timeout');
  });

export const httpRouteRetry = z
  .strictObject({
    codes: z.array(z.number().int('status code must be an integer').min(400, 'retriable status codes must be 400-599').max(599, 'retriable status codes must be 400-599')).optional(),
    attempts: z.number().int('attempts must be an integer').optional(),
    backoff: gatewayDuration().optional(),
  })
  .superRefine((v, ctx) => unique(ctx, v.codes, (c) => String(c), ['codes'], 'status code'));
export type HttpRouteRetry = z.infer<typeof httpRouteRetry>;

export const sessionPersistence = z
  .strictObject({
    sessionName: z.string().max(128).optional(),
    absoluteTimeout: gatewayDuration().optional(),
    idleTimeout: gatewayDuration().optional(),
    type: z.enum(['Cookie', 'Header']).default('Cookie'),
    cookieConfig: z.strictObject({ lifetimeType: z.enum(['Permanent', 'Session']).default('Session') }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.cookieConfig?.lifetimeType === 'Permanent' && v.absoluteTimeout === undefined) issue(ctx, ['cookieConfig', 'lifetimeType'], 'AbsoluteTimeout must be specified when cookie lifetimeType is Permanent');
    if (v.cookieConfig && v.type !== 'Cookie') issue(ctx, ['cookieConfig'], 'cookieConfig can only be set with type Cookie');
  });

const DEFAULT_HTTP_MATCH: HttpRouteMatch = { path: { type: 'PathPrefix', value: '/' } };

/** The rule-level CEL rules: ReplacePrefixMatch needs exactly one PathPrefix match; redirects exclude backendRefs. */
function httpRuleRules(
  v: { matches: HttpRouteMatch[]; filters?: HttpRouteFilter[] | undefined; backendRefs?: HttpBackendRef[] | undefined },
  ctx: Ctx,
): void {
  const onePrefixMatch = v.matches.length === 1 && v.matches[0]!.path.type === 'PathPrefix';
  const usesPrefixReplace = (filters: HttpRouteFilter[] | undefined, kindOf: 'requestRedirect' | 'urlRewrite') =>
    (filters ?? []).some((f) => f[kindOf]?.path?.type === 'ReplacePrefixMatch' && f[kindOf]?.path?.replacePrefixMatch !== undefined);
  if (!onePrefixMatch) {
    if (usesPrefixReplace(v.filters, 'requestRedirect')) issue(ctx, ['matches'], 'When using RequestRedirect filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
    if (usesPrefixReplace(v.filters, 'urlRewrite')) issue(ctx, ['matches'], 'When using URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
    (v.backendRefs ?? []).forEach((b, i) => {
      if (usesPrefixReplace(b.filters, 'requestRedirect') || usesPrefixReplace(b.filters, 'urlRewrite')) {
        issue(ctx, ['backendRefs', i, 'filters'], 'Within backendRefs, when using RequestRedirect or URLRewrite filter with path.replacePrefixMatch, exactly one PathPrefix match must be specified');
      }
    });
  }
  if ((v.backendRefs?.length ?? 0) > 0) {
    (v.filters ?? []).forEach((f, i) => {
      if (f.requestRedirect) issue(ctx, ['filters', i], 'RequestRedirect filter must not be used together with backendRefs');
    });
  }
}

export const httpRouteRule = z
  .strictObject({
    name: sectionName().optional(),
    matches: z.array(httpRouteMatch).max(64, 'at most 64 matches per rule').default([DEFAULT_HTTP_MATCH]),
    filters: httpFilters.optional(),
    backendRefs: z.array(httpBackendRef).max(16, 'at most 16 backendRefs').optional(),
    timeouts: httpRouteTimeouts.optional(),
    retry: httpRouteRetry.optional(),
    sessionPersistence: sessionPersistence.optional(),
  })
  .superRefine(httpRuleRules);
export type HttpRouteRule = z.infer<typeof httpRouteRule>;

function ruleListRules(list: ReadonlyArray<{ name?: string | undefined; matches?: unknown[] | undefined }>, ctx: Ctx): void {
  const seen = new Map<string, number>();
  list.forEach((r, i) => {
    if (r.name === undefined) return;
    const prev = seen.get(r.name);
    if (prev !== undefined) issue(ctx, [i, 'name'], `Rule name must be unique within the route (also used by rules[${prev}])`);
    else seen.set(r.name, i);
  });
  const total = list.reduce((n, r) => n + (r.matches?.length ?? 0), 0);
  if (total > 128) issue(ctx, [], `While 16 rules and 64 matches per rule are allowed, the total number of matches across all rules in a route must be less than 128 (got ${total})`);
}

const useDefaultGateways = z.enum(['All', 'None']);

export const httpRouteSpec = z.strictObject({
  parentRefs: parentRefs.optional(),
  useDefaultGateways: useDefaultGateways.optional(),
  hostnames: z.array(hostname()).max(16, 'at most 16 hostnames').optional(),
  rules: z
    .array(httpRouteRule)
    .min(1, 'rules must have at least one rule (omit the field for the default catch-all rule)')
    .max(16, 'at most 16 rules')
    .superRefine((list, ctx) => ruleListRules(list, ctx))
    .default([{ matches: [DEFAULT_HTTP_MATCH] }]),
});
export type HttpRouteSpec = z.infer<typeof httpRouteSpec>;

// ---------------------------------------------------------------------------------------------------------------
// GRPCRoute

export const grpcMethodMatch = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    service: z.string().max(1024).optional(),
    method: z.string().max(1024).optional(),
  })
  .superRefine((v, ctx) => {
    if (!v.service && !v.method) issue(ctx, [], "One or both of 'service' or 'method' must be specified");
    if (v.type === 'Exact') {
      if (v.service !== undefined && !GRPC_SERVICE.test(v.service)) issue(ctx, ['service'], 'service must only contain valid characters (matching ^(?i)\\.?[a-z_][a-z_0-9]*(\\.[a-z_][a-z_0-9]*)*$)');
      if (v.method !== undefined && !GRPC_METHOD.test(v.method)) issue(ctx, ['method'], 'method must only contain valid characters (matching ^[A-Za-z_][A-Za-z_0-9]*$)');
    } else {
      regexIssue(ctx, v.service, ['service']);
      regexIssue(ctx, v.method, ['method']);
    }
  });

export const grpcHeaderMatch = z
  .strictObject({
    type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
    name: headerName(),
    value: z.string().min(1, 'value must not be empty').max(4096, 'value must be at most 4096 characters'),
  })
  .superRefine((v, ctx) => {
    if (v.type === 'RegularExpression') regexIssue(ctx, v.value, ['value']);
  });

export const grpcRouteMatch = z
  .strictObject({
    method: grpcMethodMatch.optional(),
    headers: z.array(grpcHeaderMatch).max(16, 'at most 16 header matches').optional(),
  })
  .superRefine((v, ctx) => unique(ctx, v.headers, (h) => h.name, ['headers'], 'header', 'name'));
export type GrpcRouteMatch = z.infer<typeof grpcRouteMatch>;

export const grpcRouteRule = z.strictObject({
  name: sectionName().optional(),
  matches: z.array(grpcRouteMatch).max(8, 'at most 8 matches per rule').optional(),
  filters: grpcFilters.optional(),
  backendRefs: z.array(grpcBackendRef).max(16, 'at most 16 backendRefs').optional(),
  sessionPersistence: sessionPersistence.optional(),
});
export type GrpcRouteRule = z.infer<typeof grpcRouteRule>;

export const grpcRouteSpec = z.strictObject({
  parentRefs: parentRefs.optional(),
  useDefaultGateways: useDefaultGateways.optional(),
  hostnames: z.array(hostname()).max(16, 'at most 16 hostnames').optional(),
  rules: z
    .array(grpcRouteRule)
    .max(16, 'at most 16 rules')
    .superRefine((list, ctx) => ruleListRules(list, ctx))
    .optional(),
});
export type GrpcRouteSpec = z.infer<typeof grpcRouteSpec>;

// ---------------------------------------------------------------------------------------------------------------
// Gateway (gateway_types.go)

const frontendTlsValidation = z.strictObject({
  caCertificateRefs: z.array(objectReference).min(1, 'at least one caCertificateRef').max(8, 'at most 8 caCertificateRefs'),
  mode: z.enum(['AllowValidOnly', 'AllowInsecureFallback']).default('AllowValidOnly'),
});

export const listenerTls = z
  .strictObject({
    mode: z.enum(['Terminate', 'Passthrough']).default('Terminate'),
    certificateRefs: z.array(secretObjectReference).max(64, 'at most 64 certificateRefs').optional(),
    options: z
      .record(annotationKey(), z.string().max(4096))
      .refine((o) => Object.keys(o).length <= 16, 'at most 16 options')
      .optional(),
    /** Experimental in v1.1-v1.2 (moved to spec.tls.frontend later). */
    frontendValidation: z.strictObject({ caCertificateRefs: z.array(objectReference).min(1).max(8) }).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.mode === 'Terminate' && !(v.certificateRefs?.length || Object.keys(v.options ?? {}).length)) {
      issue(ctx, ['certificateRefs'], 'certificateRefs or options must be specified when mode is Terminate');
    }
  });

export const allowedRoutes = z.strictObject({
  namespaces: z
    .strictObject({ from: z.enum(['All', 'Selector', 'Same']).default('Same'), selector: labelSelector().optional() })
    .default({ from: 'Same' }),
  kinds: z
    .array(z.strictObject({ group: group().default(GATEWAY_GROUP), kind: kind() }))
    .max(8, 'at most 8 kinds')
    .optional(),
});
export type AllowedRoutes = z.infer<typeof allowedRoutes>;

export const listener = z.strictObject({
  name: sectionName(),
  hostname: hostname().optional(),
  port: portNumber(),
  protocol: z.string().min(1).max(255).regex(PROTOCOL_TYPE, 'protocol must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed custom protocol such as example.com/my-protocol'),
  tls: listenerTls.optional(),
  allowedRoutes: allowedRoutes.default({ namespaces: { from: 'Same' } }),
});
export type Listener = z.infer<typeof listener>;

function listenerRules(list: readonly Listener[], ctx: Ctx): void {
  const seenName = new Map<string, number>();
  const seenCombo = new Map<string, number>();
  list.forEach((l, i) => {
    const proto = l.protocol.toUpperCase();
    if (['HTTP', 'TCP', 'UDP'].includes(proto) && l.tls) issue(ctx, [i, 'tls'], "tls must not be specified for protocols ['HTTP', 'TCP', 'UDP']");
    if (proto === 'HTTPS' && l.tls && l.tls.mode !== 'Terminate') issue(ctx, [i, 'tls', 'mode'], 'tls mode must be Terminate for protocol HTTPS');
    if ((proto === 'HTTPS' || proto === 'TLS') && !l.tls) issue(ctx, [i, 'protocol'], `tls must be set for protocol ${l.protocol} (${proto === 'HTTPS' ? 'certificateRefs to the server certificate' : 'mode Terminate with certificateRefs, or mode Passthrough'})`);
    if (['TCP', 'UDP'].includes(proto) && l.hostname) issue(ctx, [i, 'hostname'], "hostname must not be specified for protocols ['TCP', 'UDP']");
    const prevName = seenName.get(l.name);
    if (prevName !== undefined) issue(ctx, [i, 'name'], `Listener name must be unique within the Gateway (also used by listeners[${prevName}])`);
    else seenName.set(l.name, i);
    const combo = `${l.port}|${l.protocol}|${l.hostname ?? ''}`;
    const prevCombo = seenCombo.get(combo);
    if (prevCombo !== undefined) issue(ctx, [i], `Combination of port, protocol and hostname must be unique for each listener (same as listeners[${prevCombo}])`);
    else seenCombo.set(combo, i);
  });
}

const gatewayAddress = z
  .strictObject({
    type: z.string().min(1).max(253).regex(ADDRESS_TYPE, 'type must be IPAddress, Hostname or a domain-prefixed type').default('IPAddress'),
    value: z.string().max(253).optional(),
  })
  .superRefine((v, ctx) => {
    if (v.type === 'Hostname' && v.value && !WILDCARD_HOSTNAME.test(v.value)) issue(ctx, ['value'], 'Hostname value must be empty or a valid hostname');
    if (v.type === 'IPAddress' && v.value && !isIP(v.value)) issue(ctx, ['value'], `invalid ip address "${v.value}"`);
  });

const tlsConfig = z.strictObject({ validation: frontendTlsValidation.optional() });

export const gatewaySpec = z.strictObject({
  gatewayClassName: objectName(),
  listeners: z
    .array(listener)
    .min(1, 'at least one listener is required')
    .max(64, 'at most 64 listeners')
    .superRefine((list, ctx) => listenerRules(list, ctx)),
  addresses: z
    .array(gatewayAddress)
    .max(16, 'at most 16 addresses')
    .superRefine((list, ctx) => {
      unique(ctx, list.filter((a) => a.type === 'IPAddress' && a.value), (a) => a.value!, [], 'IPAddress value');
      unique(ctx, list.filter((a) => a.type === 'Hostname' && a.value), (a) => a.value!, [], 'Hostname value');
    })
    .optional(),
  infrastructure: z
    .strictObject({
      labels: z
        .record(annotationKey(), z.string().max(63).regex(LABEL_VALUE, 'must be a valid label value'))
        .refine((o) => Object.keys(o).length <= 8, 'at most 8 labels')
        .optional(),
      annotations: z
        .record(annotationKey(), z.string().max(4096))
        .refine((o) => Object.keys(o).length <= 16, 'at most 16 annotations')
        .optional(),
      parametersRef: z.strictObject({ group: group(), kind: kind(), name: z.string().min(1).max(253) }).optional(),
    })
    .optional(),
  allowedListeners: z
    .strictObject({
      namespaces: z
        .strictObject({ from: z.enum(['All', 'Selector', 'Same', 'None']).default('None'), selector: labelSelector().optional() })
        .default({ from: 'None' }),
    })
    .optional(),
  tls: z
    .strictObject({
      backend: z.strictObject({ clientCertificateRef: secretObjectReference.optional() }).optional(),
      frontend: z
        .strictObject({
          default: tlsConfig,
          perPort: z
            .array(z.strictObject({ port: portNumber(), tls: tlsConfig }))
            .max(64)
            .superRefine((list, ctx) => unique(ctx, list, (p) => String(p.port), [], 'port', 'port'))
            .optional(),
        })
        .optional(),
    })
    .optional(),
  /** Experimental in v1.2-v1.3 (moved to spec.tls.backend later). */
  backendTLS: z.strictObject({ clientCertificateRef: secretObjectReference.optional() }).optional(),
  defaultScope: z.enum(['All', 'None']).optional(),
});
export type GatewaySpec = z.infer<typeof gatewaySpec>;

// ---------------------------------------------------------------------------------------------------------------
// GatewayClass (gatewayclass_types.go)

export const gatewayClassSpec = z.strictObject({
  controllerName: z
    .string()
    .min(1)
    .max(253)
    .regex(GATEWAY_CONTROLLER, 'controllerName must be a domain-prefixed path such as example.net/gateway-controller'),
  parametersRef: z
    .strictObject({ group: group(), kind: kind(), name: z.string().min(1).max(253), namespace: namespaceName().optional() })
    .optional(),
  description: z.string().max(64, 'description must be at most 64 characters').optional(),
});
export type GatewayClassSpec = z.infer<typeof gatewayClassSpec>;
