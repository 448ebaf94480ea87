/**
 * AuthorizationPolicy rules → Envoy RBAC policies, in the shape Istio's authz builder generates
 * (pilot/pkg/security/authz/model): one RBAC policy per rule, named `ns[<ns>]-policy[<name>]-rule[<i>]`, whose
 * permissions are one `and_rules` per `to` entry (any when there is none) and whose principals are one `and_ids`
 * per `from` entry (any when there is none); the rule's `when` conditions are added to every permission (keys on
 * the destination) or principal (keys on the source and the request).
 *
 *   values → or_rules / or_ids of the value matchers; notValues → not_rule / not_id of the same
 *   principals        authenticated.principal_name `spiffe://<value>` (exact; `x*` prefix; `*x` regex; `*` any)
 *   namespaces        authenticated.principal_name regex `.*` + `/ns/<ns>/` + `.*`
 *   requestPrincipals metadata istio_authn [request.auth.principal]
 *   ipBlocks          direct_remote_ip           remoteIpBlocks  remote_ip
 *   hosts             header :authority, case-insensitive, also with any `:port`
 *   methods           header :method             paths  url_path (exact, `x*` prefix, `*x` suffix, `*` any)
 *   ports             destination_port
 *   when: request.headers[h] (Istio's comma-list regex), source.ip, remote.ip, source.namespace,
 *         source.principal, request.auth.principal | audiences | presenter, request.auth.claims[a][b]… (list match
 *         on istio_authn's claims), destination.ip, destination.port, connection.sni
 * The trust domain `cluster.local` written in a principal stands for the mesh's own trust domain (Istio's
 * trust-domain aliasing), so it is replaced by it.
 *
 * TCP (network RBAC): fields only HTTP has (hosts, methods, paths, requestPrincipals, request.* conditions, SMI
 * HTTP-only operations) cannot be evaluated; as Istio does, an ALLOW rule using one is left out (it never matches
 * a connection), while in DENY, AUDIT and CUSTOM rules those fields are removed (the rule matches more: it fails
 * closed). An operation meant for TCP only (SMI TCPRoute) never matches an HTTP request.
 */
import { create } from '@bufbuild/protobuf';
import type { AuthorizationPolicy, AuthzCondition, AuthzOperation, AuthzRule, AuthzSource, ValueSet } from '../../../api/model.js';
import { PermissionSchema, PolicySchema, PrincipalSchema, type Permission, type Policy, type Principal } from '../../../xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import { StringMatcherSchema, type StringMatcher } from '../../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import type { MessageInitShape } from '@bufbuild/protobuf';

/** The istio_authn metadata namespace (see src/proxy/http/filters/istio-authn.ts). */
export const AUTHN_FILTER = 'istio_authn';

export type Target = 'http' | 'tcp';

/** A rule that cannot be translated (bad key or value). */
export class RuleError extends Error {}

type PermissionInit = MessageInitShape<typeof PermissionSchema>;
type PrincipalInit = MessageInitShape<typeof PrincipalSchema>;

function regex(r: string): StringMatcher {
  return create(StringMatcherSchema, { matchPattern: { case: 'safeRegex', value: { regex: r } } });
}

function escapeRe(s: string): string {
  return s.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&');
}

/** Istio's string match for a value with an optional leading or trailing `*`. */
export function wildcard(v: string, prefixWith = '', ignoreCase = false): StringMatcher {
  if (v === '*') return regex('.+');
  if (v.endsWith('*')) return create(StringMatcherSchema, { matchPattern: { case: 'prefix', value: prefixWith + v.slice(0, -1) }, ignoreCase });
  if (v.startsWith('*')) {
    if (prefixWith !== '') return regex(`${escapeRe(prefixWith)}.*${escapeRe(v.slice(1))}`);
    return create(StringMatcherSchema, { matchPattern: { case: 'suffix', value: v.slice(1) }, ignoreCase });
  }
  return create(StringMatcherSchema, { matchPattern: { case: 'exact', value: prefixWith + v }, ignoreCase });
}

const orP = (rules: PermissionInit[]): PermissionInit => ({ rule: { case: 'orRules', value: { rules } } });
const notP = (r: PermissionInit): PermissionInit => ({ rule: { case: 'notRule', value: r } });
const orI = (ids: PrincipalInit[]): PrincipalInit => ({ identifier: { case: 'orIds', value: { ids } } });
const notI = (r: PrincipalInit): PrincipalInit => ({ identifier: { case: 'notId', value: r } });

/** values → or(match), notValues → not(or(match)), appended to `out`. */
function addP(out: PermissionInit[], set: ValueSet | undefined, one: (v: string) => PermissionInit | PermissionInit[]): void {
  if (set?.values?.length) out.push(orP(set.values.flatMap(one)));
  if (set?.notValues?.length) out.push(notP(orP(set.notValues.flatMap(one))));
}

function addI(out: PrincipalInit[], set: ValueSet | undefined, one: (v: string) => PrincipalInit | PrincipalInit[]): void {
  if (set?.values?.length) out.push(orI(set.values.flatMap(one)));
  if (set?.notValues?.length) out.push(notI(orI(set.notValues.flatMap(one))));
}

function cidr(v: string): { addressPrefix: string; prefixLen: number } {
  const [addr, len] = v.split('/');
  if (!addr) throw new RuleError(`invalid IP block ${JSON.stringify(v)}`);
  const full = addr.includes(':') ? 128 : 32;
  const n = len === undefined ? full : Number(len);
  if (!Number.isInteger(n) || n < 0 || n > full) throw new RuleError(`invalid IP block ${JSON.stringify(v)}`);
  return { addressPrefix: addr, prefixLen: n };
}

function port(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new RuleError(`invalid port ${JSON.stringify(v)}`);
  return n;
}

export interface BuildContext {
  trustDomain: string;
}

/** `cluster.local/ns/a/sa/b` with the mesh trust domain in place of `cluster.local`. */
function principalValue(ctx: BuildContext, v: string): string {
  if (v.startsWith('cluster.local/')) return `${ctx.trustDomain}/${v.slice('cluster.local/'.length)}`;
  return v;
}

const authenticated = (m: StringMatcher): PrincipalInit => ({ identifier: { case: 'authenticated', value: { principalName: m } } });

function principalId(ctx: BuildContext, v: string): PrincipalInit {
  return authenticated(wildcard(principalValue(ctx, v), 'spiffe://'));
}

function namespaceId(v: string): PrincipalInit {
  const ns = v === '*' ? '.*' : v.endsWith('*') ? `${escapeRe(v.slice(0, -1))}.*` : v.startsWith('*') ? `.*${escapeRe(v.slice(1))}` : escapeRe(v);
  return authenticated(regex(`.*/ns/${ns}/.*`));
}

function metadataId(path: string[], m: StringMatcher, list: boolean): PrincipalInit {
  return {
    identifier: {
      case: 'metadata',
      value: {
        filter: AUTHN_FILTER,
        path: path.map((key) => ({ segment: { case: 'key', value: key } })),
        value: list ? { matchPattern: { case: 'listMatch', value: { matchPattern: { case: 'oneOf', value: { matchPattern: { case: 'stringMatch', value: m } } } } } } : { matchPattern: { case: 'stringMatch', value: m } },
      },
    },
  };
}

/** Istio's header value match: the value anywhere in the header's comma-separated list. */
function headerId(name: string, v: string): PrincipalInit {
  if (v === '*') return { identifier: { case: 'header', value: { name, headerMatchSpecifier: { case: 'presentMatch', value: true } } } };
  const item = v.endsWith('*') ? `${escapeRe(v.slice(0, -1))}.*` : v.startsWith('*') ? `.*${escapeRe(v.slice(1))}` : escapeRe(v);
  const re = `^${item}$|^${item},.*|.*,${item},.*|.*,${item}$`;
  return { identifier: { case: 'header', value: { name, headerMatchSpecifier: { case: 'safeRegexMatch', value: { regex: re } } } } };
}

function hostPermission(v: string): PermissionInit[] {
  const h = (m: StringMatcher): PermissionInit => ({ rule: { case: 'header', value: { name: ':authority', headerMatchSpecifier: { case: 'stringMatch', value: m } } } });
  if (v === '*') return [{ rule: { case: 'header', value: { name: ':authority', headerMatchSpecifier: { case: 'presentMatch', value: true } } } }];
  const lower = v.toLowerCase();
  if (lower.startsWith('*')) return [h(wildcard(lower, '', true)), h(regex(`(?i).*${escapeRe(lower.slice(1))}:[0-9]+`))];
  if (lower.endsWith('*')) return [h(wildcard(lower, '', true))];
  // The host as written, and with any port (Host: example.com:8080).
  return [h(wildcard(lower, '', true)), h(create(StringMatcherSchema, { matchPattern: { case: 'prefix', value: `${lower}:` }, ignoreCase: true }))];
}

function methodPermission(v: string): PermissionInit {
  if (v === '*') return { rule: { case: 'header', value: { name: ':method', headerMatchSpecifier: { case: 'presentMatch', value: true } } } };
  return { rule: { case: 'header', value: { name: ':method', headerMatchSpecifier: { case: 'stringMatch', value: wildcard(v) } } } };
}

function pathPermission(v: string): PermissionInit {
  return { rule: { case: 'urlPath', value: { rule: { case: 'path', value: wildcard(v) } } } };
}

const HTTP_CONDITION = /^request\./;

/** The claim path of `request.auth.claims[a][b]`; undefined when the key is not a claims key. */
function claimPath(key: string): string[] | undefined {
  const m = /^request\.auth\.claims((?:\[[^\][]+\])+)$/.exec(key);
  if (!m) return undefined;
  return [...m[1]!.matchAll(/\[([^\][]+)\]/g)].map((x) => x[1]!);
}

/** The permission (destination keys) or principal (source and request keys) of one `when` condition. */
function condition(ctx: BuildContext, c: AuthzCondition): { p?: PermissionInit[]; i?: PrincipalInit[] } {
  const p: PermissionInit[] = [];
  const i: PrincipalInit[] = [];
  const set: ValueSet = { ...(c.values ? { values: c.values } : {}), ...(c.notValues ? { notValues: c.notValues } : {}) };
  const key = c.key;
  const header = /^request\.headers\[(.+)\]$/.exec(key);
  const claims = claimPath(key);
  if (header) addI(i, set, (v) => headerId(header[1]!, v));
  else if (claims) addI(i, set, (v) => metadataId(['request.auth.claims', ...claims], wildcard(v), true));
  else {
    switch (key) {
      case 'source.ip':
        addI(i, set, (v) => ({ identifier: { case: 'directRemoteIp', value: cidr(v) } }));
        break;
      case 'remote.ip':
        addI(i, set, (v) => ({ identifier: { case: 'remoteIp', value: cidr(v) } }));
        break;
      case 'source.namespace':
        addI(i, set, namespaceId);
        break;
      case 'source.principal':
        addI(i, set, (v) => principalId(ctx, v));
        break;
      case 'request.auth.principal':
      case 'request.auth.audiences':
      case 'request.auth.presenter':
        addI(i, set, (v) => metadataId([key], wildcard(v), false));
        break;
      case 'destination.ip':
        addP(p, set, (v) => ({ rule: { case: 'destinationIp', value: cidr(v) } }));
        break;
      case 'destination.port':
        addP(p, set, (v) => ({ rule: { case: 'destinationPort', value: port(v) } }));
        break;
      case 'connection.sni':
        addP(p, set, (v) => ({ rule: { case: 'requestedServerName', value: wildcard(v) } }));
        break;
      default:
        throw new RuleError(`unknown condition key ${JSON.stringify(key)}`);
    }
  }
  return { p, i };
}

/** Whether an operation uses fields only HTTP has. */
function httpOnlyOperation(op: AuthzOperation): boolean {
  return op.protocol === 'HTTP' || !!(op.hosts || op.methods || op.paths || op.pathRegexes?.length || op.headerRegexes?.length);
}

function httpOnlySource(s: AuthzSource): boolean {
  return !!s.requestPrincipals;
}

function operationPermission(op: AuthzOperation, target: Target): PermissionInit {
  const rules: PermissionInit[] = [];
  if (target === 'http') {
    addP(rules, op.hosts, hostPermission);
    addP(rules, op.methods, methodPermission);
    addP(rules, op.paths, pathPermission);
    if (op.pathRegexes?.length) rules.push(orP(op.pathRegexes.map((r) => ({ rule: { case: 'urlPath', value: { rule: { case: 'path', value: regex(r) } } } }))));
    for (const h of op.headerRegexes ?? []) rules.push({ rule: { case: 'header', value: { name: h.name, headerMatchSpecifier: { case: 'safeRegexMatch', value: { regex: h.regex } } } } });
  }
  addP(rules, op.ports, (v) => ({ rule: { case: 'destinationPort', value: port(v) } }));
  if (rules.length === 0) rules.push({ rule: { case: 'any', value: true } });
  return { rule: { case: 'andRules', value: { rules } } };
}

function sourcePrincipal(ctx: BuildContext, s: AuthzSource, target: Target): PrincipalInit {
  const ids: PrincipalInit[] = [];
  addI(ids, s.principals, (v) => principalId(ctx, v));
  if (target === 'http') addI(ids, s.requestPrincipals, (v) => metadataId(['request.auth.principal'], wildcard(v), false));
  addI(ids, s.namespaces, namespaceId);
  addI(ids, s.ipBlocks, (v) => ({ identifier: { case: 'directRemoteIp', value: cidr(v) } }));
  addI(ids, s.remoteIpBlocks, (v) => ({ identifier: { case: 'remoteIp', value: cidr(v) } }));
  const sa = (list: Array<{ namespace: string; name: string }>) => list.map((a) => authenticated(wildcard(`${ctx.trustDomain}/ns/${a.namespace}/sa/${a.name}`, 'spiffe://')));
  if (s.serviceAccounts?.length) ids.push(orI(sa(s.serviceAccounts)));
  if (s.notServiceAccounts?.length) ids.push(notI(orI(sa(s.notServiceAccounts))));
  if (ids.length === 0) ids.push({ identifier: { case: 'any', value: true } });
  return { identifier: { case: 'andIds', value: { ids } } };
}

/**
 * One rule as an RBAC policy for `target`; undefined when the rule can never match there (an ALLOW rule with
 * HTTP-only fields on TCP; an operation for the other protocol). `failClosed`: DENY-like actions, where HTTP-only
 * fields are removed on TCP instead.
 */
export function rulePolicy(ctx: BuildContext, rule: AuthzRule, target: Target, failClosed: boolean): Policy | undefined {
  let to = rule.to;
  let from = rule.from;
  let when = rule.when;
  // An operation for the other kind of traffic never matches (SMI TCPRoute on HTTP; SMI HTTP rules on TCP).
  if (to.length > 0) {
    to = to.filter((op) => (target === 'http' ? op.protocol !== 'TCP' && op.protocol !== 'UDP' : op.protocol !== 'HTTP' || failClosed));
    if (to.length === 0) return undefined;
  }
  if (target === 'tcp') {
    const httpOnly = to.some(httpOnlyOperation) || from.some(httpOnlySource) || when.some((c) => HTTP_CONDITION.test(c.key));
    if (httpOnly && !failClosed) return undefined;
    when = when.filter((c) => !HTTP_CONDITION.test(c.key));
    from = from.map((s) => ({ ...s, requestPrincipals: undefined }));
  }
  const extraP: PermissionInit[] = [];
  const extraI: PrincipalInit[] = [];
  for (const c of when) {
    const r = condition(ctx, c);
    extraP.push(...(r.p ?? []));
    extraI.push(...(r.i ?? []));
  }
  const permissions: Permission[] = (to.length ? to.map((op) => operationPermission(op, target)) : [{ rule: { case: 'andRules', value: { rules: [{ rule: { case: 'any', value: true } }] } } } as PermissionInit]).map((p) => {
    if (extraP.length) (p.rule!.value as { rules: PermissionInit[] }).rules.push(...extraP);
    return create(PermissionSchema, p);
  });
  const principals: Principal[] = (from.length ? from.map((s) => sourcePrincipal(ctx, s, target)) : [{ identifier: { case: 'andIds', value: { ids: [{ identifier: { case: 'any', value: true } }] } } } as PrincipalInit]).map((i) => {
    if (extraI.length) (i.identifier!.value as { ids: PrincipalInit[] }).ids.push(...extraI);
    return create(PrincipalSchema, i);
  });
  return create(PolicySchema, { permissions, principals });
}

/** Istio's policy name for rule `i` of a policy. */
export function policyName(p: AuthorizationPolicy, i: number): string {
  return `ns[${p.namespace}]-policy[${p.origin.name}]-rule[${i}]`;
}

/** A policy that matches everything (used to fail closed). */
export function matchAllPolicy(): Policy {
  return create(PolicySchema, {
    permissions: [{ rule: { case: 'any', value: true } }],
    principals: [{ identifier: { case: 'any', value: true } }],
  });
}
