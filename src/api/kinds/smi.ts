/**
 * SMI (Service Mesh Interface) kinds, every released version, each with the exact shape of that version
 * (servicemeshinterface/smi-spec apis/*, smi-sdk-go pkg/apis and crds):
 *
 * - `split.smi-spec.io` TrafficSplit v1alpha1–v1alpha4. v1alpha1 weights are Kubernetes quantities (`500m`,
 *   `1`, `1k`); later versions take whole numbers. v1alpha3/v1alpha4 add `matches` (references to
 *   HTTPRouteGroups, the only kind the CRDs allow there).
 * - `specs.smi-spec.io` HTTPRouteGroup v1alpha1–v1alpha4 (`matches` at the top level up to v1alpha2, under `spec`
 *   from v1alpha3; `headers` from v1alpha2), TCPRoute v1alpha1–v1alpha4 (`spec.matches.ports` from v1alpha4),
 *   UDPRoute v1alpha4.
 * - `access.smi-spec.io` TrafficTarget v1alpha2–v1alpha3 (v1alpha2 has `destination.port`; v1alpha3 allows
 *   UDPRoute rules).
 *
 * Translation (documented in docs/config-reference.md, "SMI"):
 * - TrafficSplit → a RouteTable for the root service (`spec.service`, resolved in the split's namespace). Without
 *   matches: one HTTP route splitting across the backends (weights reduced by their GCD) and, for the root
 *   Service's ports that are not HTTP, one TCP route splitting the same way. With matches: requests matching any
 *   match of the referenced HTTPRouteGroups (all groups merged, as the spec says) are split across the backends;
 *   every other request goes to the root service itself.
 * - TrafficTarget → an ALLOW AuthorizationPolicy on the workloads running as the destination service account.
 *   SMI access control is additive and deny-by-default: a destination named by a TrafficTarget accepts only the
 *   listed sources on the listed routes (the union over all TrafficTargets naming it). HTTPRouteGroup rules allow
 *   matching HTTP requests only; TCPRoute / UDPRoute rules allow raw (non-HTTP) connections, on their ports.
 */
import { z } from 'zod';
import type { AuthorizationPolicy, AuthzOperation, Destination, HeaderMatch, HttpRoute, L4Match, Origin, RouteMatch, RouteTable } from '../model.js';
import { emptyHeaderOps } from '../model.js';
import { isHttpProtocol } from '../protocol.js';
import { re2 } from '../schema/common.js';
import type { JsonPath } from '../source.js';
import type { KindDef, Resource, TranslateContext } from './kind.js';
import { defineKind } from './kind.js';
import { isDnsLabel, isDnsSubdomain } from './kubernetes.js';
import { reduceWeightsOf } from './weights.js';

export const SPLIT_GROUP = 'split.smi-spec.io';
export const SPECS_GROUP = 'specs.smi-spec.io';
export const ACCESS_GROUP = 'access.smi-spec.io';

const serviceName = (what: string) =>
  z.string().refine(isDnsSubdomain, { message: `${what} must be a Service name (or its DNS name): lower-case letters, digits, "-" and "."` });
const objectName = (what: string) => z.string().min(1, `${what} must not be empty`);
const namespaceName = () => z.string().refine(isDnsLabel, { message: 'namespace must be a DNS-1123 label' });

// ---------------------------------------------------------------------------------------------------------------
// Kubernetes quantities (TrafficSplit v1alpha1 weights)

const QUANTITY = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?\d+)|(n|u|m|k|M|G|T|P|E))?$/;
const SI_EXPONENT: Record<string, number> = { n: -9, u: -6, m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY_POWER: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };

/**
 * Parses a Kubernetes quantity (`500m`, `1`, `1.5`, `2k`, `1Ki`, `1e3`; a JSON number is read as its decimal
 * text) into nano-units (value × 10⁹), rounding up below 1n as Kubernetes does. Returns undefined when the text
 * is not a quantity; a negative quantity gives a negative result.
 */
export function parseQuantityNanos(q: string | number): bigint | undefined {
  const text = typeof q === 'number' ? (Number.isFinite(q) ? String(q) : '') : q.trim();
  const m = QUANTITY.exec(text);
  if (!m) return undefined;
  const [, sign, num, binary, exp, si] = m;
  const [intPart, fracPart = ''] = num!.split('.');
  let mantissa = BigInt((intPart || '0') + fracPart);
  let power10 = 9 - fracPart.length + (si ? SI_EXPONENT[si]! : 0) + (exp ? Number(exp) : 0);
  if (binary) mantissa *= 1024n ** BigInt(BINARY_POWER[binary]!);
  if (power10 > 60) return undefined; // far beyond any meaningful weight
  let nanos: bigint;
  if (power10 >= 0) nanos = mantissa * 10n ** BigInt(power10);
  else {
    if (power10 < -60) power10 = -60;
    const div = 10n ** BigInt(-power10);
    nanos = (mantissa + div - 1n) / div;
  }
  return sign === '-' ? -nanos : nanos;
}

/**
 * Turns quantities (in nano-units) into the smallest whole numbers with the same ratios' decimal scale
 * (`500m`, `1` → 500, 1000), ready for GCD reduction. Undefined when a value exceeds 2^53.
 */
export function quantitiesToIntegers(nanos: readonly bigint[]): number[] | undefined {
  let values = [...nanos];
  if (values.some((v) => v !== 0n)) {
    while (values.every((v) => v % 10n === 0n)) values = values.map((v) => v / 10n);
  }
  if (values.some((v) => v > BigInt(Number.MAX_SAFE_INTEGER))) return undefined;
  return values.map((v) => Number(v));
}

const quantity = () =>
  z
    .union([z.string(), z.number()])
    .superRefine((v, ctx) => {
      const n = parseQuantityNanos(v);
      if (n === undefined) ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is not a Kubernetes quantity (such as "1", "500m", "1.5", "2k")` });
      else if (n < 0n) ctx.addIssue({ code: 'custom', message: 'weight must not be negative' });
    })
    .transform((v) => parseQuantityNanos(v)!);

// ---------------------------------------------------------------------------------------------------------------
// specs.smi-spec.io: HTTPRouteGroup, TCPRoute, UDPRoute

const HTTP_METHODS = ['*', 'GET', 'HEAD', 'PUT', 'POST', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;

/** One HTTPRouteGroup match, normalized. `headers` names are lower-cased. */
export interface SmiHttpMatch {
  name: string;
  methods: string[];
  pathRegex?: string;
  headers: Array<{ name: string; regex: string }>;
}

export interface HttpRouteGroupSpec {
  matches: SmiHttpMatch[];
}

const headerName = z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'header names are HTTP tokens (letters, digits and !#$%&\'*+-.^_`|~)');
const headerMap = z.record(headerName, re2());
/** Header filters: a map (the spec documents and the SDK types) or a list of maps (the CRDs and older docs). */
const headerFilters = z.union([headerMap, z.array(headerMap)]);

const httpMatchV1 = z.strictObject({
  name: objectName('name'),
  methods: z.array(z.enum(HTTP_METHODS)).optional(),
  pathRegex: re2().optional(),
});
const httpMatchV2 = httpMatchV1.extend({ headers: headerFilters.optional() });

type RawHttpMatch = z.output<typeof httpMatchV1> & { headers?: z.output<typeof headerFilters> };

function normalizeMatches(list: RawHttpMatch[]): HttpRouteGroupSpec {
  return {
    matches: list.map((m) => {
      const out: SmiHttpMatch = { name: m.name, methods: m.methods ?? [], headers: [] };
      if (m.pathRegex !== undefined && m.pathRegex !== '') out.pathRegex = m.pathRegex;
      const maps = m.headers === undefined ? [] : Array.isArray(m.headers) ? m.headers : [m.headers];
      for (const map of maps) for (const [name, regex] of Object.entries(map)) out.headers.push({ name: name.toLowerCase(), regex });
      return out;
    }),
  };
}

const uniqueMatchNames = (path: JsonPath) => (v: { matches: Array<{ name: string }> }, ctx: z.core.$RefinementCtx) => {
  const seen = new Map<string, number>();
  v.matches.forEach((m, i) => {
    const prev = seen.get(m.name);
    if (prev !== undefined) ctx.addIssue({ code: 'custom', message: `duplicate match name "${m.name}" (also matches[${prev}]); matches are referenced by name`, path: [...path, i, 'name'] });
    else seen.set(m.name, i);
  });
};

const httpRouteGroupV1 = z.strictObject({ matches: z.array(httpMatchV1) }).superRefine(uniqueMatchNames(['matches'])).transform((v) => normalizeMatches(v.matches));
const httpRouteGroupV2 = z.strictObject({ matches: z.array(httpMatchV2) }).superRefine(uniqueMatchNames(['matches'])).transform((v) => normalizeMatches(v.matches));

export const httpRouteGroupKind = defineKind<HttpRouteGroupSpec>({
  group: SPECS_GROUP,
  kind: 'HTTPRouteGroup',
  family: 'smi',
  versions: ['v1alpha4', 'v1alpha3', 'v1alpha2', 'v1alpha1'],
  deprecatedVersions: { v1alpha3: `${SPECS_GROUP}/v1alpha4`, v1alpha2: `${SPECS_GROUP}/v1alpha4`, v1alpha1: `${SPECS_GROUP}/v1alpha4` },
  namespaced: true,
  schema: httpRouteGroupV2,
  versionSchemas: {
    v1alpha1: { schema: httpRouteGroupV1, payload: 'body' },
    v1alpha2: { schema: httpRouteGroupV2, payload: 'body' },
    v1alpha3: { schema: httpRouteGroupV2 },
    v1alpha4: { schema: httpRouteGroupV2 },
  },
});

/** TCPRoute / UDPRoute, normalized: the ports they match (empty = every port of the destination). */
export interface L4RouteSpec {
  ports: number[];
}

const noFields = z.strictObject({}).transform((): L4RouteSpec => ({ ports: [] }));
const portsMatch = z
  .strictObject({
    matches: z.strictObject({ ports: z.array(z.number().int('port must be an integer').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535')) }),
  })
  .transform((v): L4RouteSpec => ({ ports: [...new Set(v.matches.ports)] }));

export const tcpRouteKind = defineKind<L4RouteSpec>({
  group: SPECS_GROUP,
  kind: 'TCPRoute',
  family: 'smi',
  versions: ['v1alpha4', 'v1alpha3', 'v1alpha2', 'v1alpha1'],
  deprecatedVersions: { v1alpha3: `${SPECS_GROUP}/v1alpha4`, v1alpha2: `${SPECS_GROUP}/v1alpha4`, v1alpha1: `${SPECS_GROUP}/v1alpha4` },
  namespaced: true,
  schema: portsMatch,
  versionSchemas: {
    v1alpha1: { schema: noFields, payload: 'body' },
    v1alpha2: { schema: noFields, payload: 'body' },
    v1alpha3: { schema: noFields, specOptional: true },
    v1alpha4: { schema: portsMatch },
  },
});

export const udpRouteKind = defineKind<L4RouteSpec>({
  group: SPECS_GROUP,
  kind: 'UDPRoute',
  family: 'smi',
  versions: ['v1alpha4'],
  namespaced: true,
  schema: portsMatch,
});

/** The start-anchored SMI pathRegex as a full-match RE2 pattern (Envoy semantics). */
export function fullMatchPathRegex(pathRegex: string): string {
  return `(?:${pathRegex}).*`;
}

/** The route matches one HTTPRouteGroup match stands for (one per listed method: methods are alternatives). */
export function routeMatchesOf(m: SmiHttpMatch): RouteMatch[] {
  const base = (): RouteMatch => {
    const r: RouteMatch = { name: m.name, headers: m.headers.map((h): HeaderMatch => ({ name: h.name, match: { regex: h.regex } })), queryParams: [], gateways: [] };
    if (m.pathRegex !== undefined) r.path = { regex: fullMatchPathRegex(m.pathRegex) };
    return r;
  };
  const methods = m.methods.includes('*') ? [] : m.methods;
  if (methods.length === 0) return [base()];
  return methods.map((method) => ({ ...base(), method: { exact: method } }));
}

/** The authorization operation one HTTPRouteGroup match allows. */
export function authzOperationOf(m: SmiHttpMatch): AuthzOperation {
  const op: AuthzOperation = { protocol: 'HTTP' };
  if (m.methods.length && !m.methods.includes('*')) op.methods = { values: [...m.methods] };
  if (m.pathRegex !== undefined) op.pathRegexes = [fullMatchPathRegex(m.pathRegex)];
  if (m.headers.length) op.headerRegexes = m.headers.map((h) => ({ ...h }));
  return op;
}

// ---------------------------------------------------------------------------------------------------------------
// split.smi-spec.io: TrafficSplit

export interface TrafficSplitSpec {
  service: string;
  /** Weights are whole numbers (v1alpha1 quantities are scaled to whole numbers with the same ratios). */
  backends: Array<{ service: string; weight: number }>;
  matches: Array<{ kind: 'HTTPRouteGroup'; name: string }>;
}

const weight = () => z.number().int('weights must be whole numbers').min(0, 'weight must not be negative');
const backendsOf = <T extends z.ZodType>(w: T) => z.array(z.strictObject({ service: serviceName('service'), weight: w })).min(1, 'a TrafficSplit needs at least one backend');
const splitMatches = z
  .array(
    z.strictObject({
      apiGroup: z.literal(SPECS_GROUP, { message: `apiGroup must be "${SPECS_GROUP}"` }).optional(),
      kind: z.enum(['HTTPRouteGroup']),
      name: objectName('name'),
    }),
  )
  .optional();

const trafficSplitV1 = z
  .strictObject({ service: serviceName('service'), backends: backendsOf(quantity()) })
  .superRefine((v, ctx) => {
    const nanos = v.backends.map((b) => b.weight);
    // Runs after field issues too: compare only when every weight parsed.
    if (nanos.every((w) => typeof w === 'bigint') && quantitiesToIntegers(nanos) === undefined) {
      ctx.addIssue({ code: 'custom', message: 'the weights are too far apart to represent exactly (their ratio exceeds 2^53)', path: ['backends'] });
    }
  })
  .transform((v): TrafficSplitSpec => {
    const ints = quantitiesToIntegers(v.backends.map((b) => b.weight))!;
    return { service: v.service, backends: v.backends.map((b, i) => ({ service: b.service, weight: ints[i]! })), matches: [] };
  });
const trafficSplitV2 = z
  .strictObject({ service: serviceName('service'), backends: backendsOf(weight()) })
  .transform((v): TrafficSplitSpec => ({ service: v.service, backends: v.backends, matches: [] }));
const trafficSplitV3 = z
  .strictObject({ service: serviceName('service'), backends: backendsOf(weight()), matches: splitMatches })
  .transform((v): TrafficSplitSpec => ({ service: v.service, backends: v.backends, matches: (v.matches ?? []).map((m) => ({ kind: m.kind, name: m.name })) }));

function httpRoute(matches: RouteMatch[], destinations: Destination[], origin: Origin): HttpRoute {
  return { matches, action: { kind: 'route', destinations }, mirrors: [], headers: { request: emptyHeaderOps(), response: emptyHeaderOps() }, origin };
}

function translateTrafficSplit(res: Resource<TrafficSplitSpec>, ctx: TranslateContext): void {
  const spec = res.spec;
  const ns = res.namespace;
  const root = ctx.fqdn(spec.service, ns);
  const backends = (): Destination[] => reduceWeightsOf(spec.backends.map((b) => ({ host: ctx.fqdn(b.service, ns), weight: b.weight })));
  spec.backends.forEach((b, i) => {
    if (ctx.fqdn(b.service, ns) === root) {
      ctx.report(res, {
        severity: 'Warning',
        code: 'WFT0106',
        message: `backend ${b.service} is the root service itself; SMI says TrafficSplits cannot be self-referential`,
        hint: 'the root service selects every version, so its share goes to all of them; split between version-specific Services instead',
        at: ['spec', 'backends', i, 'service'],
      });
    }
  });
  const table: RouteTable = { hosts: [root], namespace: ns, gateways: ['mesh'], exportTo: ['*'], ports: [], http: [], tcp: [], tls: [], origin: ctx.origin(res) };

  if (spec.matches.length) {
    const matches: RouteMatch[] = [];
    spec.matches.forEach((ref, i) => {
      const group = ctx.lookup<HttpRouteGroupSpec>(SPECS_GROUP, 'HTTPRouteGroup', ns, ref.name);
      if (!group) {
        ctx.report(res, { severity: 'Error', code: 'WFT0101', message: `HTTPRouteGroup ${ns}/${ref.name} not found`, hint: `define an HTTPRouteGroup (${SPECS_GROUP}) named ${ref.name} in namespace ${ns}`, at: ['spec', 'matches', i, 'name'] });
        return;
      }
      for (const m of group.spec.matches) matches.push(...routeMatchesOf(m));
    });
    // Only requests that match go to the backends; every other request keeps going to the root Service.
    if (matches.length) table.http.push(httpRoute(matches, backends(), ctx.origin(res, ['spec', 'matches'])));
    table.http.push(httpRoute([], [{ host: root, weight: 1 }], ctx.origin(res, ['spec', 'service'])));
  } else {
    table.http.push(httpRoute([], backends(), ctx.origin(res, ['spec', 'backends'])));
    // Connections on the root Service's non-HTTP ports are split the same way.
    const rootSvc = ctx.model.services.find((s) => s.hostname === root);
    const l4Ports = (rootSvc?.ports ?? []).filter((p) => !isHttpProtocol(p.protocol) && p.protocol !== 'UDP').map((p) => p.port);
    if (l4Ports.length) {
      const l4Matches = l4Ports.map((port): L4Match => ({ port, destinationSubnets: [], sniHosts: [], gateways: [] }));
      table.tcp.push({ matches: l4Matches, destinations: backends(), origin: ctx.origin(res, ['spec', 'backends']) });
    }
  }
  ctx.model.routes.push(table);
}

export const trafficSplitKind = defineKind<TrafficSplitSpec>({
  group: SPLIT_GROUP,
  kind: 'TrafficSplit',
  family: 'smi',
  versions: ['v1alpha4', 'v1alpha3', 'v1alpha2', 'v1alpha1'],
  deprecatedVersions: { v1alpha3: `${SPLIT_GROUP}/v1alpha4`, v1alpha2: `${SPLIT_GROUP}/v1alpha4`, v1alpha1: `${SPLIT_GROUP}/v1alpha4` },
  namespaced: true,
  schema: trafficSplitV3,
  versionSchemas: {
    v1alpha1: { schema: trafficSplitV1 },
    v1alpha2: { schema: trafficSplitV2 },
    v1alpha3: { schema: trafficSplitV3 },
    v1alpha4: { schema: trafficSplitV3 },
  },
  translate: translateTrafficSplit,
});

// ---------------------------------------------------------------------------------------------------------------
// access.smi-spec.io: TrafficTarget

export interface TrafficTargetSpec {
  destination: { kind: 'ServiceAccount'; name: string; namespace?: string; port?: number };
  sources: Array<{ kind: 'ServiceAccount'; name: string; namespace?: string; port?: number }>;
  rules: Array<{ kind: 'HTTPRouteGroup' | 'TCPRoute' | 'UDPRoute'; name: string; matches?: string[] }>;
}

const subjectV3 = z.strictObject({ kind: z.enum(['ServiceAccount']), name: objectName('name'), namespace: namespaceName().optional() });
const subjectV2 = subjectV3.extend({ port: z.number().int('port must be an integer').min(1, 'port must be 1-65535').max(65535, 'port must be 1-65535').optional() });
const ruleOf = (kinds: readonly [string, ...string[]]) => z.strictObject({ kind: z.enum(kinds), name: objectName('name'), matches: z.array(z.string()).optional() });

const trafficTargetV2 = z.strictObject({ destination: subjectV2, sources: z.array(subjectV2), rules: z.array(ruleOf(['HTTPRouteGroup', 'TCPRoute'])) }) as unknown as z.ZodType<TrafficTargetSpec>;
const trafficTargetV3 = z.strictObject({ destination: subjectV3, sources: z.array(subjectV3), rules: z.array(ruleOf(['HTTPRouteGroup', 'TCPRoute', 'UDPRoute'])) }) as unknown as z.ZodType<TrafficTargetSpec>;

function translateTrafficTarget(res: Resource<TrafficTargetSpec>, ctx: TranslateContext): void {
  const spec = res.spec;
  const dest = spec.destination;
  const destNs = dest.namespace ?? res.namespace;
  if (destNs !== res.namespace) {
    ctx.report(res, {
      severity: 'Warning',
      code: 'WFT0106',
      message: `the destination is in namespace ${destNs}, not in the TrafficTarget's namespace ${res.namespace}`,
      hint: `define access to ${destNs}/${dest.name} with a TrafficTarget in namespace ${destNs} (SMI leaves granting access to the destination's owner)`,
      at: ['spec', 'destination', 'namespace'],
    });
  }
  spec.sources.forEach((s, i) => {
    if (s.port !== undefined) ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: 'port on a source is ignored', hint: 'ports restrict the destination: set destination.port instead', at: ['spec', 'sources', i, 'port'] });
  });

  const ops: AuthzOperation[] = [];
  spec.rules.forEach((rule, i) => {
    const at: JsonPath = ['spec', 'rules', i];
    if (rule.kind === 'HTTPRouteGroup') {
      const group = ctx.lookup<HttpRouteGroupSpec>(SPECS_GROUP, 'HTTPRouteGroup', res.namespace, rule.name);
      if (!group) {
        ctx.report(res, { severity: 'Error', code: 'WFT0101', message: `HTTPRouteGroup ${res.namespace}/${rule.name} not found`, hint: `define it in namespace ${res.namespace} (rules refer to route specs in the TrafficTarget's namespace)`, at: [...at, 'name'] });
        return;
      }
      let selected = group.spec.matches;
      if (rule.matches?.length) {
        selected = [];
        rule.matches.forEach((name, j) => {
          const m = group.spec.matches.find((x) => x.name === name);
          if (m) selected.push(m);
          else ctx.report(res, { severity: 'Error', code: 'WFT0101', message: `HTTPRouteGroup ${res.namespace}/${rule.name} has no match named "${name}"`, hint: `its matches: ${group.spec.matches.map((x) => x.name).join(', ') || '(none)'}`, at: [...at, 'matches', j] });
        });
      }
      for (const m of selected) ops.push(authzOperationOf(m));
      return;
    }
    const route = ctx.lookup<L4RouteSpec>(SPECS_GROUP, rule.kind, res.namespace, rule.name);
    if (!route) {
      ctx.report(res, { severity: 'Error', code: 'WFT0101', message: `${rule.kind} ${res.namespace}/${rule.name} not found`, hint: `define it in namespace ${res.namespace}`, at: [...at, 'name'] });
      return;
    }
    if (rule.matches?.length) ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: `${rule.kind} has no named matches: matches is ignored`, hint: `remove matches (a ${rule.kind} selects ports with its own spec.matches.ports)`, at: [...at, 'matches'] });
    const op: AuthzOperation = { protocol: rule.kind === 'TCPRoute' ? 'TCP' : 'UDP' };
    if (route.spec.ports.length) op.ports = { values: route.spec.ports.map(String) };
    ops.push(op);
  });

  // v1alpha2 destination.port: traffic is allowed on that port only.
  let allowed = ops;
  if (dest.port !== undefined) {
    const port = String(dest.port);
    allowed = ops
      .filter((op) => !op.ports?.values || op.ports.values.includes(port))
      .map((op) => ({ ...op, ports: { values: [port] } }));
  }

  const policy: AuthorizationPolicy = { namespace: destNs, serviceAccount: dest.name, action: 'ALLOW', rules: [], origin: ctx.origin(res) };
  if (spec.sources.length === 0) {
    ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: 'no sources: this TrafficTarget allows no one (the destination still becomes deny-by-default)', hint: 'list the service accounts allowed to call the destination', at: ['spec', 'sources'] });
  } else if (spec.rules.length === 0) {
    ctx.report(res, { severity: 'Warning', code: 'WFT0106', message: 'no rules: this TrafficTarget allows no traffic (the destination still becomes deny-by-default)', hint: 'list the HTTPRouteGroup / TCPRoute rules to allow', at: ['spec', 'rules'] });
  } else if (allowed.length) {
    const serviceAccounts = spec.sources.map((s) => ({ namespace: s.namespace ?? res.namespace, name: s.name }));
    policy.rules.push({ from: [{ serviceAccounts }], to: allowed, when: [] });
  }
  ctx.model.authorizationPolicies.push(policy);
}

export const trafficTargetKind = defineKind<TrafficTargetSpec>({
  group: ACCESS_GROUP,
  kind: 'TrafficTarget',
  family: 'smi',
  versions: ['v1alpha3', 'v1alpha2'],
  deprecatedVersions: { v1alpha2: `${ACCESS_GROUP}/v1alpha3` },
  namespaced: true,
  schema: trafficTargetV3,
  versionSchemas: {
    v1alpha2: { schema: trafficTargetV2 },
    v1alpha3: { schema: trafficTargetV3 },
  },
  translate: translateTrafficTarget,
});

export const smiKinds: ReadonlyArray<KindDef<any>> = [trafficSplitKind, trafficTargetKind, httpRouteGroupKind, tcpRouteKind, udpRouteKind];
