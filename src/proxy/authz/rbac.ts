/**
 * The RBAC engine shared by the HTTP and network RBAC filters: an `envoy.config.rbac.v3.RBAC` (action + named
 * policies of permission and principal trees) compiled once per configuration into a tree of matchers, then
 * evaluated per request or connection with Envoy's semantics (source/extensions/filters/common/rbac/):
 *
 * - a policy matches when one of its permissions and one of its principals match;
 * - ALLOW: allowed iff some policy matches; DENY: allowed iff none does; LOG: always allowed (the decision is
 *   whether to log); policies are tried in name order (Envoy keeps them in a sorted map) and the first match is
 *   the effective policy id;
 * - permissions: and_rules, or_rules, not_rule, any, header (request headers joined with `,`; HTTP only),
 *   url_path (the path without query; HTTP only), destination_ip, destination_port, destination_port_range,
 *   metadata (dynamic metadata, HTTP only), requested_server_name (the TLS SNI, '' without TLS);
 * - principals: and_ids, or_ids, not_id, any, authenticated (the peer certificate's URI SAN; without
 *   principal_name any TLS peer with a certificate), source_ip and direct_remote_ip (the connection's peer
 *   address), remote_ip (the last x-forwarded-for address for HTTP when the connection manager does not use the
 *   remote address, as Envoy derives the downstream remote address; the peer address otherwise), header,
 *   url_path, metadata.
 * A header / url_path / metadata matcher never matches on a TCP connection (nothing to read), as in Envoy's
 * network filter. `condition` (CEL), the `matcher` API, uri_template, filter_state and `sourced_metadata` are not
 * supported: ConfigErrors naming the field. Evaluation allocates nothing.
 */
import type { Socket } from 'node:net';
import type { RBAC, Permission, Principal, Policy } from '../../xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import { RBAC_Action } from '../../xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import type { MetadataMatcher } from '../../xds/gen/envoy/type/matcher/v3/metadata_pb.js';
import type { ValueMatcher } from '../../xds/gen/envoy/type/matcher/v3/value_pb.js';
import type { CidrRange } from '../../xds/gen/envoy/config/core/v3/address_pb.js';
import type { RequestHead } from '../http/headers.js';
import { compileHeaderMatcher, compileStringMatcher, listHeaderJoined, type HeaderMatch, type StringMatch } from '../http/router/match.js';
import type { CompileContext } from '../http/router/util.js';
import { peerOf } from '../tls/peer.js';
import { originalDstOf } from '../listener/original-dst.js';
import type { MetadataStruct } from '../http/filters/metadata.js';
import { Cidr } from './cidr.js';

/** What a matcher reads of one request or connection; one instance per filter, refilled per evaluation. */
export class RbacInput {
  /** The request head (null for a TCP connection). */
  head: RequestHead | null = null;
  socket: Socket | null = null;
  /** The connection's destination port (the restored original destination's when there is one). */
  destinationPort = 0;
  /** HTTP: the connection manager derives the remote address from x-forwarded-for (use_remote_address false). */
  remoteFromXff = false;
  /** The dynamic metadata of the request (HTTP), by namespace. */
  metadata: ((namespace: string) => MetadataStruct | undefined) | null = null;

  set(head: RequestHead | null, socket: Socket, destinationPort: number, remoteFromXff: boolean, metadata: RbacInput['metadata']): this {
    this.head = head;
    this.socket = socket;
    this.destinationPort = destinationPort;
    this.remoteFromXff = remoteFromXff;
    this.metadata = metadata;
    return this;
  }

  /** Clears references to the request once evaluated. */
  clear(): void {
    this.head = null;
    this.socket = null;
    this.metadata = null;
  }
}

/** The destination port of a downstream connection: the restored original destination's, else the local port. */
export function destinationPortOf(socket: Socket): number {
  const od = originalDstOf(socket);
  if (od !== undefined) {
    const i = od.lastIndexOf(':');
    return Number(od.slice(i + 1));
  }
  return socket.localPort ?? 0;
}

function destinationIpOf(socket: Socket): string {
  const od = originalDstOf(socket);
  if (od !== undefined) {
    const ip = od.slice(0, od.lastIndexOf(':'));
    return ip.startsWith('[') ? ip.slice(1, -1) : ip;
  }
  return socket.localAddress ?? '';
}

function remoteIpOf(input: RbacInput): string {
  if (input.remoteFromXff && input.head !== null) {
    const xff = listHeaderJoined(input.head.headers, 'x-forwarded-for');
    if (xff !== undefined) {
      const last = xff.slice(xff.lastIndexOf(',') + 1).trim();
      if (last !== '') return last;
    }
  }
  return input.socket?.remoteAddress ?? '';
}

/** One node of a permission or principal tree. */
interface Node {
  match(input: RbacInput): boolean;
}

const ANY: Node = { match: () => true };

class AndNode implements Node {
  constructor(private readonly nodes: readonly Node[]) {}
  match(input: RbacInput): boolean {
    for (let i = 0; i < this.nodes.length; i++) if (!this.nodes[i]!.match(input)) return false;
    return true;
  }
}

class OrNode implements Node {
  constructor(private readonly nodes: readonly Node[]) {}
  match(input: RbacInput): boolean {
    for (let i = 0; i < this.nodes.length; i++) if (this.nodes[i]!.match(input)) return true;
    return false;
  }
}

class NotNode implements Node {
  constructor(private readonly node: Node) {}
  match(input: RbacInput): boolean {
    return !this.node.match(input);
  }
}

class HeaderNode implements Node {
  constructor(private readonly m: HeaderMatch) {}
  match(input: RbacInput): boolean {
    return input.head !== null && this.m.matchRequest(input.head);
  }
}

class PathNode implements Node {
  constructor(private readonly m: StringMatch) {}
  match(input: RbacInput): boolean {
    const head = input.head;
    if (head === null) return false;
    const p = head.path;
    const q = p.indexOf('?');
    const h = p.indexOf('#');
    const end = q < 0 ? (h < 0 ? p.length : h) : h < 0 ? q : Math.min(q, h);
    return this.m.match(end === p.length ? p : p.slice(0, end));
  }
}

class DestinationIpNode implements Node {
  constructor(private readonly cidr: Cidr) {}
  match(input: RbacInput): boolean {
    return input.socket !== null && this.cidr.contains(destinationIpOf(input.socket));
  }
}

class DestinationPortNode implements Node {
  constructor(
    private readonly start: number,
    private readonly end: number,
  ) {}
  match(input: RbacInput): boolean {
    return input.destinationPort >= this.start && input.destinationPort < this.end;
  }
}

class SniNode implements Node {
  constructor(private readonly m: StringMatch) {}
  match(input: RbacInput): boolean {
    return input.socket !== null && this.m.match(peerOf(input.socket).sni);
  }
}

class AuthenticatedNode implements Node {
  constructor(private readonly m: StringMatch | null) {}
  match(input: RbacInput): boolean {
    if (input.socket === null) return false;
    const peer = peerOf(input.socket);
    if (!peer.tls) return false;
    if (this.m === null) return peer.principal !== '' || peer.subject !== '';
    // Envoy: the URI SAN, else the subject (no DNS SANs are recorded for peers here).
    return this.m.match(peer.principal !== '' ? peer.principal : peer.subject);
  }
}

class DirectIpNode implements Node {
  constructor(private readonly cidr: Cidr) {}
  match(input: RbacInput): boolean {
    return input.socket !== null && this.cidr.contains(input.socket.remoteAddress ?? '');
  }
}

class RemoteIpNode implements Node {
  constructor(private readonly cidr: Cidr) {}
  match(input: RbacInput): boolean {
    return this.cidr.contains(remoteIpOf(input));
  }
}

/** A compiled envoy.type.matcher.v3.ValueMatcher. */
type ValueTest = (v: unknown) => boolean;

class MetadataNode implements Node {
  constructor(
    private readonly filter: string,
    private readonly path: readonly string[],
    private readonly test: ValueTest,
    private readonly invert: boolean,
  ) {}
  match(input: RbacInput): boolean {
    let v: unknown = input.metadata?.(this.filter);
    for (let i = 0; i < this.path.length && v !== undefined; i++) {
      v = v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as MetadataStruct)[this.path[i]!] : undefined;
    }
    return this.test(v) !== this.invert;
  }
}

function compileValue(ctx: CompileContext, field: string, m: ValueMatcher | undefined): ValueTest {
  const p = m?.matchPattern;
  switch (p?.case) {
    case 'nullMatch':
      return (v) => v === null;
    case 'doubleMatch': {
      const d = p.value.matchPattern;
      if (d.case === 'exact') {
        const x = d.value;
        return (v) => typeof v === 'number' && v === x;
      }
      if (d.case === 'range') {
        const { start, end } = d.value;
        return (v) => typeof v === 'number' && v >= start && v < end;
      }
      return ctx.fail(`${field}.double_match`, 'one of range or exact is required');
    }
    case 'stringMatch': {
      const s = compileStringMatcher(ctx, `${field}.string_match`, p.value);
      return (v) => typeof v === 'string' && s.match(v);
    }
    case 'boolMatch': {
      const b = p.value;
      return (v) => v === b;
    }
    case 'presentMatch': {
      const want = p.value;
      // Envoy: a present_match holds when the value exists (a null value counts as absent).
      return (v) => (v !== undefined && v !== null) === want;
    }
    case 'listMatch': {
      const l = p.value.matchPattern;
      if (l.case !== 'oneOf') return ctx.fail(`${field}.list_match`, 'one_of is required');
      const inner = compileValue(ctx, `${field}.list_match.one_of`, l.value);
      return (v) => {
        if (!Array.isArray(v)) return false;
        for (let i = 0; i < v.length; i++) if (inner(v[i])) return true;
        return false;
      };
    }
    case 'orMatch': {
      const list = p.value.valueMatchers.map((x, i) => compileValue(ctx, `${field}.or_match.value_matchers[${i}]`, x));
      if (list.length < 2) ctx.fail(`${field}.or_match.value_matchers`, 'at least 2 matchers are required');
      return (v) => list.some((t) => t(v));
    }
    default:
      return ctx.fail(field, 'a match pattern is required');
  }
}

function compileMetadata(ctx: CompileContext, field: string, m: MetadataMatcher): Node {
  if (m.filter === '') ctx.fail(`${field}.filter`, 'must not be empty');
  if (m.path.length === 0) ctx.fail(`${field}.path`, 'at least one path segment is required');
  const path = m.path.map((s, i) => (s.segment.case === 'key' && s.segment.value !== '' ? s.segment.value : ctx.fail(`${field}.path[${i}].key`, 'must not be empty')));
  if (!m.value) ctx.fail(`${field}.value`, 'is required');
  return new MetadataNode(m.filter, path, compileValue(ctx, `${field}.value`, m.value), m.invert);
}

function compileCidr(ctx: CompileContext, field: string, c: CidrRange): Cidr {
  const cidr = Cidr.parse(c.addressPrefix, c.prefixLen);
  return cidr ?? ctx.fail(field, `invalid CIDR range ${c.addressPrefix}/${c.prefixLen ?? ''}`);
}

function compilePermission(ctx: CompileContext, field: string, p: Permission): Node {
  const r = p.rule;
  switch (r.case) {
    case 'andRules':
      return new AndNode(r.value.rules.map((x, i) => compilePermission(ctx, `${field}.and_rules.rules[${i}]`, x)));
    case 'orRules':
      return new OrNode(r.value.rules.map((x, i) => compilePermission(ctx, `${field}.or_rules.rules[${i}]`, x)));
    case 'notRule':
      return new NotNode(compilePermission(ctx, `${field}.not_rule`, r.value));
    case 'any':
      if (!r.value) ctx.fail(`${field}.any`, 'must be true');
      return ANY;
    case 'header':
      return new HeaderNode(compileHeaderMatcher(ctx, `${field}.header`, r.value));
    case 'urlPath':
      if (r.value.rule.case !== 'path') return ctx.fail(`${field}.url_path`, 'path is required');
      return new PathNode(compileStringMatcher(ctx, `${field}.url_path.path`, r.value.rule.value));
    case 'destinationIp':
      return new DestinationIpNode(compileCidr(ctx, `${field}.destination_ip`, r.value));
    case 'destinationPort':
      if (r.value > 65535) ctx.fail(`${field}.destination_port`, `must be at most 65535, got ${r.value}`);
      return new DestinationPortNode(r.value, r.value + 1);
    case 'destinationPortRange':
      return new DestinationPortNode(Number(r.value.start), Number(r.value.end));
    case 'metadata':
      return compileMetadata(ctx, `${field}.metadata`, r.value);
    case 'requestedServerName':
      return new SniNode(compileStringMatcher(ctx, `${field}.requested_server_name`, r.value));
    case 'matcher':
      return ctx.fail(`${field}.matcher`, 'extension permission matchers are not supported');
    case 'uriTemplate':
      return ctx.fail(`${field}.uri_template`, 'URI template permissions are not supported');
    default:
      return ctx.fail(field, 'a rule is required');
  }
}

function compilePrincipal(ctx: CompileContext, field: string, p: Principal): Node {
  const id = p.identifier;
  switch (id.case) {
    case 'andIds':
      return new AndNode(id.value.ids.map((x, i) => compilePrincipal(ctx, `${field}.and_ids.ids[${i}]`, x)));
    case 'orIds':
      return new OrNode(id.value.ids.map((x, i) => compilePrincipal(ctx, `${field}.or_ids.ids[${i}]`, x)));
    case 'notId':
      return new NotNode(compilePrincipal(ctx, `${field}.not_id`, id.value));
    case 'any':
      if (!id.value) ctx.fail(`${field}.any`, 'must be true');
      return ANY;
    case 'authenticated': {
      const pn = id.value.principalName;
      return new AuthenticatedNode(pn === undefined ? null : compileStringMatcher(ctx, `${field}.authenticated.principal_name`, pn));
    }
    case 'sourceIp':
      return new DirectIpNode(compileCidr(ctx, `${field}.source_ip`, id.value));
    case 'directRemoteIp':
      return new DirectIpNode(compileCidr(ctx, `${field}.direct_remote_ip`, id.value));
    case 'remoteIp':
      return new RemoteIpNode(compileCidr(ctx, `${field}.remote_ip`, id.value));
    case 'header':
      return new HeaderNode(compileHeaderMatcher(ctx, `${field}.header`, id.value));
    case 'urlPath':
      if (id.value.rule.case !== 'path') return ctx.fail(`${field}.url_path`, 'path is required');
      return new PathNode(compileStringMatcher(ctx, `${field}.url_path.path`, id.value.rule.value));
    case 'metadata':
      return compileMetadata(ctx, `${field}.metadata`, id.value);
    case 'filterState':
      return ctx.fail(`${field}.filter_state`, 'filter state principals are not supported');
    default:
      return ctx.fail(field, `principal ${id.case ?? '(none)'} is not supported`);
  }
}

class CompiledPolicy {
  constructor(
    readonly name: string,
    private readonly permissions: Node,
    private readonly principals: Node,
  ) {}
  match(input: RbacInput): boolean {
    return this.permissions.match(input) && this.principals.match(input);
  }
}

function compilePolicy(ctx: CompileContext, field: string, name: string, p: Policy): CompiledPolicy {
  if (p.condition !== undefined || p.checkedCondition !== undefined) ctx.fail(`${field}.condition`, 'CEL conditions are not supported');
  if (p.permissions.length === 0) ctx.fail(`${field}.permissions`, 'at least one permission is required');
  if (p.principals.length === 0) ctx.fail(`${field}.principals`, 'at least one principal is required');
  const perms = p.permissions.map((x, i) => compilePermission(ctx, `${field}.permissions[${i}]`, x));
  const ids = p.principals.map((x, i) => compilePrincipal(ctx, `${field}.principals[${i}]`, x));
  return new CompiledPolicy(name, perms.length === 1 ? perms[0]! : new OrNode(perms), ids.length === 1 ? ids[0]! : new OrNode(ids));
}

export type RbacAction = 'ALLOW' | 'DENY' | 'LOG';

/** A compiled RBAC: `evaluate` gives the decision and the effective policy. */
export class RbacEngine {
  /** The name of the policy that decided the last evaluation ('' when none matched). */
  effectivePolicy = '';

  constructor(
    readonly action: RbacAction,
    private readonly policies: readonly CompiledPolicy[],
  ) {}

  /** Whether the request or connection is allowed (LOG: always); sets `effectivePolicy`. */
  allowed(input: RbacInput): boolean {
    const ps = this.policies;
    this.effectivePolicy = '';
    for (let i = 0; i < ps.length; i++) {
      if (ps[i]!.match(input)) {
        this.effectivePolicy = ps[i]!.name;
        return this.action !== 'DENY';
      }
    }
    return this.action !== 'ALLOW';
  }
}

/** Compiles `envoy.config.rbac.v3.RBAC` at `field` (ConfigError through ctx). */
export function compileRbac(ctx: CompileContext, field: string, r: RBAC): RbacEngine {
  if (r.auditLoggingOptions !== undefined && r.auditLoggingOptions.loggerConfigs.length > 0) {
    ctx.fail(`${field}.audit_logging_options`, 'RBAC audit loggers are not supported');
  }
  const action: RbacAction = r.action === RBAC_Action.ALLOW ? 'ALLOW' : r.action === RBAC_Action.DENY ? 'DENY' : r.action === RBAC_Action.LOG ? 'LOG' : ctx.fail(`${field}.action`, `unknown action ${r.action}`);
  const names = Object.keys(r.policies).sort();
  return new RbacEngine(action, names.map((n) => compilePolicy(ctx, `${field}.policies[${JSON.stringify(n)}]`, n, r.policies[n]!)));
}


/**
 * A MetadataMatcher as a predicate over a request's dynamic metadata (ext_authz's filter_enabled_metadata);
 * ConfigError through ctx.
 */
export function compileMetadataPredicate(ctx: CompileContext, field: string, m: MetadataMatcher): (lookup: (namespace: string) => MetadataStruct | undefined) => boolean {
  const node = compileMetadata(ctx, field, m);
  const input = new RbacInput();
  return (lookup) => {
    input.metadata = lookup;
    const r = node.match(input);
    input.metadata = null;
    return r;
  };
}
