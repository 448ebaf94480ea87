/**
 * Network filters that decide whether a downstream connection may proceed, run by the listener before the
 * chain's terminal filter (tcp_proxy or the HTTP connection manager) takes the connection:
 *
 * - `envoy.filters.network.rbac` (envoy.extensions.filters.network.rbac.v3.RBAC): the RBAC engine (rbac.ts) over
 *   the connection — peer and destination addresses, destination port, the peer certificate's principal, the SNI;
 *   header, path and metadata matchers never match. Denied → the connection is closed (`<stat_prefix>rbac.denied`),
 *   allowed → `allowed`; shadow_rules are counted as `shadow_allowed` / `shadow_denied`. Envoy evaluates on the
 *   connection's first bytes (enforcement_type ONE_TIME_ON_FIRST_BYTE) or continuously; Weft decides once, when the
 *   connection is accepted, before any upstream connection exists — everything a network rule can read is known
 *   then, so the decision is the same, and a denied client never reaches the upstream (nor a server-first
 *   upstream's greeting the client).
 * - `envoy.filters.network.ext_authz` (envoy.extensions.filters.network.ext_authz.v3.ExtAuthz): a Check with the
 *   connection's source and destination (check-request.ts) before the connection proceeds; OK → on
 *   (`ext_authz.<stat_prefix>.ok`), denied → closed (`denied`), error/timeout → closed (`error`) unless
 *   failure_mode_allow (`failure_mode_allowed`). filter_enabled_metadata (no metadata exists on a new
 *   connection) and include_peer_certificate are ConfigErrors / not sent.
 *
 *   const guard = compileNetworkGuard(filterProto, field, ctx);   // ConfigError → NACK; undefined: not a guard
 *   guard.check(socket, destinationPort) → true | false | Promise<boolean>
 */
import type { Socket } from 'node:net';
import type { Any } from '@bufbuild/protobuf/wkt';
import { typeNameOf, unpack } from '../../xds/index.js';
import type { Filter } from '../../xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { RBACSchema as NetworkRbacSchema, RBAC_EnforcementType } from '../../xds/gen/envoy/extensions/filters/network/rbac/v3/rbac_pb.js';
import { ExtAuthzSchema as NetworkExtAuthzSchema } from '../../xds/gen/envoy/extensions/filters/network/ext_authz/v3/ext_authz_pb.js';
import type { ClusterRuntime } from '../upstream/cluster/cluster.js';
import type { Counter } from '../stats/metric.js';
import type { Scope } from '../stats/store.js';
import { ListenerCompileContext } from '../http/filters/registry.js';
import { checkRequest } from './check-request.js';
import { compileAuthzService, type AuthzServiceClient } from './ext-authz-client.js';
import { compileRbac, RbacInput, type RbacEngine } from './rbac.js';

export const NETWORK_RBAC_FILTER = 'envoy.filters.network.rbac';
export const NETWORK_EXT_AUTHZ_FILTER = 'envoy.filters.network.ext_authz';
const NETWORK_RBAC_TYPE = 'envoy.extensions.filters.network.rbac.v3.RBAC';
const NETWORK_EXT_AUTHZ_TYPE = 'envoy.extensions.filters.network.ext_authz.v3.ExtAuthz';

/** A network filter that admits or refuses a connection. */
export interface NetworkGuard {
  readonly name: string;
  /** Whether the connection may proceed (a Promise when the answer needs a remote call). */
  check(socket: Socket, destinationPort: number): boolean | Promise<boolean>;
}

export interface NetworkGuardContext {
  listener: string;
  cluster(name: string): ClusterRuntime | undefined;
  /** A stats scope for a prefix (absent: no stats). */
  stats?(prefix: string): Scope;
  warn(message: string): void;
}

class RbacGuard implements NetworkGuard {
  private readonly input = new RbacInput();
  constructor(
    readonly name: string,
    private readonly engine: RbacEngine | null,
    private readonly shadow: RbacEngine | null,
    private readonly counters: { allowed?: Counter; denied?: Counter; shadowAllowed?: Counter; shadowDenied?: Counter },
  ) {}

  check(socket: Socket, destinationPort: number): boolean {
    const input = this.input.set(null, socket, destinationPort, false, null);
    try {
      if (this.shadow !== null) (this.shadow.allowed(input) ? this.counters.shadowAllowed : this.counters.shadowDenied)?.inc();
      if (this.engine === null) return true;
      const ok = this.engine.allowed(input);
      (ok ? this.counters.allowed : this.counters.denied)?.inc();
      return ok;
    } finally {
      input.clear();
    }
  }
}

class ExtAuthzGuard implements NetworkGuard {
  constructor(
    readonly name: string,
    private readonly client: AuthzServiceClient,
    private readonly failureModeAllow: boolean,
    private readonly counters: { ok?: Counter; denied?: Counter; error?: Counter; failureModeAllowed?: Counter },
  ) {}

  check(socket: Socket): Promise<boolean> {
    return this.client.check(checkRequest(socket, null)).then(
      (res) => {
        const ok = (res.status?.code ?? 0) === 0;
        (ok ? this.counters.ok : this.counters.denied)?.inc();
        return ok;
      },
      () => {
        (this.failureModeAllow ? this.counters.failureModeAllowed : this.counters.error)?.inc();
        return this.failureModeAllow;
      },
    );
  }
}

/** Compiles a non-terminal network filter; undefined when the filter is not one of these two. */
export function compileNetworkGuard(f: Filter, field: string, ctx: NetworkGuardContext): NetworkGuard | undefined {
  if (f.configType.case !== 'typedConfig') return undefined;
  const any = f.configType.value as Any;
  const type = typeNameOf(any.typeUrl);
  const c = new ListenerCompileContext(ctx.listener);
  const tf = `${field}.typed_config`;
  const decode = <T>(fn: () => T): T => {
    try {
      return fn();
    } catch (e) {
      return c.fail(tf, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  if (type === NETWORK_RBAC_TYPE) {
    const p = decode(() => unpack(NetworkRbacSchema, any));
    if (p.statPrefix === '') c.fail(`${tf}.stat_prefix`, 'must not be empty');
    if (p.matcher || p.shadowMatcher) c.fail(`${tf}.matcher`, 'the matcher API is not supported (use rules)');
    if (p.enforcementType !== RBAC_EnforcementType.ONE_TIME_ON_FIRST_BYTE && p.enforcementType !== RBAC_EnforcementType.CONTINUOUS) c.fail(`${tf}.enforcement_type`, 'unknown enforcement type');
    const engine = p.rules ? compileRbac(c, `${tf}.rules`, p.rules) : null;
    const shadow = p.shadowRules ? compileRbac(c, `${tf}.shadow_rules`, p.shadowRules) : null;
    const sc = ctx.stats?.(`${p.statPrefix}rbac.`);
    const sp = p.shadowRulesStatPrefix;
    return new RbacGuard(f.name, engine, shadow, {
      allowed: sc?.counter('allowed'),
      denied: sc?.counter('denied'),
      shadowAllowed: sc?.counter(`${sp}shadow_allowed`),
      shadowDenied: sc?.counter(`${sp}shadow_denied`),
    });
  }
  if (type === NETWORK_EXT_AUTHZ_TYPE) {
    const p = decode(() => unpack(NetworkExtAuthzSchema, any));
    if (p.statPrefix === '') c.fail(`${tf}.stat_prefix`, 'must not be empty');
    if (p.filterEnabledMetadata) c.fail(`${tf}.filter_enabled_metadata`, 'is not supported on connections (no metadata exists before the check)');
    const client = compileAuthzService(c, `${tf}.grpc_service`, p.grpcService, ctx.cluster);
    if (p.includePeerCertificate) ctx.warn(`${tf}.include_peer_certificate: the peer certificate is not sent`);
    const sc = ctx.stats?.(`ext_authz.${p.statPrefix.endsWith('.') ? p.statPrefix : `${p.statPrefix}.`}`);
    return new ExtAuthzGuard(f.name, client, p.failureModeAllow, {
      ok: sc?.counter('ok'),
      denied: sc?.counter('denied'),
      error: sc?.counter('error'),
      failureModeAllowed: sc?.counter('failure_mode_allowed'),
    });
  }
  return undefined;
}
