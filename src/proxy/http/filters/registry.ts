/**
 * The HTTP filter registry: Envoy's extension model for HTTP filters (each filter is a factory registered under its
 * canonical name and the type URL of its typed_config; Envoy's NamedHttpFilterConfigFactory), reduced to what the
 * request path needs.
 *
 *   registerHttpFilter(factory)                                   // filters/index.ts registers the built-ins
 *   const chain = compileHttpFilters(hcm.httpFilters, ctx)        // HCM compile (LDS): ConfigError → NACK
 *   compilePerRouteFilterConfig(ctx, field, name, any)            // RDS compile of typed_per_filter_config
 *
 * Lookup is by the typed_config's type URL first and by the filter name when there is no typed_config, as Envoy
 * does (`Config::Utility::getAndCheckFactory`). An unknown filter is a ConfigError naming the field, unless the
 * entry is `is_optional` (then it is skipped and reported once). The router filter is not a factory here: the
 * connection manager runs it itself, last. A filter with `disabled: true` runs only on routes that enable it
 * (the connection manager decides per request, with the route's FilterConfig).
 *
 * Per-route configuration (typed_per_filter_config) is compiled when the RouteConfiguration is compiled, by the
 * factory that owns the Any's type (Envoy resolves the factory by the per-route config's type URL too), so a bad
 * per-route config NACKs the RouteConfiguration with its field path; the compiled value reaches the filter through
 * `RouteDecision.compiledFilterConfig(filterName)`.
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { typeNameOf } from '../../../xds/index.js';
import type { HttpFilter as HttpFilterProto } from '../../../xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { ConfigError } from '../../config-error.js';
import { CompileContext } from '../router/util.js';
import type { RouteDecision } from '../router/decision.js';
import type { DownstreamStream } from '../server/connection.js';
import type { HeaderList } from '../headers.js';
import type { Scope } from '../../stats/store.js';
import type { ClusterRuntime } from '../../upstream/cluster/cluster.js';

/** decodeHeaders result: go on with the next filter. */
export const CONTINUE = 0;
/** decodeHeaders result: the filter answered the request or holds it (it resumes the chain itself). */
export const STOP = 1;
export type FilterStatus = typeof CONTINUE | typeof STOP;

/** What a filter can do with a request it stopped: resume the chain after it (the rest of the filters, then the router). */
export interface FilterChainCallbacks {
  /** Continues with filter `next` (index in the chain) and then the router; `held` carries the body received meanwhile. */
  resume(stream: DownstreamStream, decision: RouteDecision | undefined, next: number, held: HeldBody | null): void;
}

/** Request body bytes that arrived while a filter held the request, for the router to send on. */
export interface HeldBody {
  /** The request had no body at all (it was complete with its head). */
  readonly headOnly: boolean;
  readonly chunks: readonly Buffer[];
  /** Trailers, when the request ended while held. */
  readonly trailers: HeaderList | null;
}

/**
 * One filter of one connection manager (compiled once, shared by every request). `decodeHeaders` runs per request
 * after route selection (`decision` undefined: no route matched) and must not allocate when it does nothing.
 */
export interface HttpFilter {
  /** The http_filters entry's name (the key of its typed_per_filter_config). */
  readonly name: string;
  /** http_filters[i].disabled: the filter runs only on routes that enable it (set by compileHttpFilters). */
  disabledByDefault: boolean;
  decodeHeaders(stream: DownstreamStream, decision: RouteDecision | undefined, index: number, chain: FilterChainCallbacks): FilterStatus;
}

/** What a factory gets when its filter is compiled inside a connection manager. */
export interface FilterFactoryContext {
  /** The `http_filters[i]` entry's name. */
  readonly name: string;
  /** Field path of the entry's typed_config, for errors. */
  readonly field: string;
  /** Errors (ConfigError of the listener) and the header matcher helpers' context. */
  readonly compile: CompileContext;
  /** The connection manager's `http.<stat_prefix>.` scope (absent: no stats kept). */
  readonly stats: Scope | undefined;
  /** Uniform random numbers in [0, 1) for percentages (default Math.random). */
  readonly random?: () => number;
  /** The cluster of that name in force now (looked up when used: ext_authz's envoy_grpc service). */
  readonly cluster?: (name: string) => ClusterRuntime | undefined;
  /** The connection manager's use_remote_address (false: the client address is the last x-forwarded-for entry). */
  readonly useRemoteAddress?: boolean;
  warn(message: string): void;
}

export interface HttpFilterFactory {
  /** Canonical filter name (`envoy.filters.http.fault`). */
  readonly name: string;
  /** Full type name of the filter's typed_config (`envoy.extensions.filters.http.fault.v3.HTTPFault`). */
  readonly configType: string;
  /** Type names accepted in typed_per_filter_config (compiled by `compilePerRoute`). */
  readonly perRouteTypes: readonly string[];
  /** Builds the filter; `config` is the typed_config (undefined when the entry has none). Throws ConfigError. */
  create(config: Any | undefined, ctx: FilterFactoryContext): HttpFilter;
  /** Compiles a per-route config (one of perRouteTypes). Throws ConfigError through ctx. */
  compilePerRoute(config: Any, ctx: CompileContext, field: string): unknown;
  /**
   * Combines a level's compiled per-route config with the one of the level above it (absent: the most specific
   * level replaces the others, as most filters read `mostSpecificPerFilterConfig`).
   */
  merge?(moreSpecific: unknown, lessSpecific: unknown): unknown;
}

const byName = new Map<string, HttpFilterFactory>();
const byType = new Map<string, HttpFilterFactory>();
const byPerRouteType = new Map<string, HttpFilterFactory>();

export function registerHttpFilter(f: HttpFilterFactory): void {
  byName.set(f.name, f);
  byType.set(f.configType, f);
  for (const t of f.perRouteTypes) byPerRouteType.set(t, f);
}

export const ROUTER_FILTER = 'envoy.filters.http.router';
const ROUTER_TYPE = 'envoy.extensions.filters.http.router.v3.Router';

/** A CompileContext whose errors name a listener (filter configs live in LDS). */
export class ListenerCompileContext extends CompileContext {
  override fail(field: string, detail: string): never {
    throw new ConfigError(this.resource, field, detail, 'listener');
  }
}

export interface ChainContext {
  listener: string;
  /** Field path of the connection manager inside the listener. */
  field: string;
  stats: Scope | undefined;
  /** The proxy's clusters (for filters that call a service). */
  cluster?: (name: string) => ClusterRuntime | undefined;
  /** The connection manager's use_remote_address. */
  useRemoteAddress?: boolean;
  warn(message: string): void;
}

/**
 * Compiles an HCM's http_filters into the filters that run before the router (the router itself must be last and
 * is not returned). Throws ConfigError naming `<hcm>.http_filters[i]`.
 */
export function compileHttpFilters(filters: readonly HttpFilterProto[], ctx: ChainContext): HttpFilter[] {
  const fail = (field: string, detail: string): never => {
    throw new ConfigError(ctx.listener, `${ctx.field}.${field}`, detail, 'listener');
  };
  if (filters.length === 0) fail('http_filters', `must end with ${ROUTER_FILTER}`);
  const out: HttpFilter[] = [];
  const names = new Set<string>();
  filters.forEach((f, i) => {
    const field = `http_filters[${i}]`;
    const any = f.configType.case === 'typedConfig' ? f.configType.value : undefined;
    if (f.configType.case !== undefined && f.configType.case !== 'typedConfig') {
      fail(`${field}.config_discovery`, 'filter config discovery (ECDS) is not supported');
    }
    const type = any !== undefined ? typeNameOf(any.typeUrl) : undefined;
    const last = i === filters.length - 1;
    if (type === ROUTER_TYPE || (type === undefined && f.name === ROUTER_FILTER)) {
      if (!last) fail(field, 'the router filter must be the last HTTP filter');
      return;
    }
    if (last) fail(field, `the last HTTP filter must be ${ROUTER_FILTER}, got ${f.name || type}`);
    if (!f.name) fail(`${field}.name`, 'must not be empty');
    if (names.has(f.name)) fail(`${field}.name`, `duplicate HTTP filter name ${f.name}`);
    names.add(f.name);
    const factory = type !== undefined ? byType.get(type) : byName.get(f.name);
    if (factory === undefined) {
      if (f.isOptional) {
        ctx.warn(`${ctx.field}.${field}: optional filter ${f.name}${type ? ` (${type})` : ''} is not supported and is skipped`);
        return;
      }
      return fail(field, `HTTP filter ${f.name}${type ? ` (${type})` : ''} is not supported`);
    }
    const filter = factory.create(any, {
      name: f.name,
      field: `${ctx.field}.${field}.typed_config`,
      compile: new ListenerCompileContext(ctx.listener),
      stats: ctx.stats,
      ...(ctx.cluster ? { cluster: ctx.cluster } : {}),
      useRemoteAddress: ctx.useRemoteAddress === true,
      warn: ctx.warn,
    });
    filter.disabledByDefault = f.disabled;
    out.push(filter);
  });
  return out;
}

/**
 * The compiled per-route config of a level merged over the one above it (`less`, undefined at the top level):
 * by the factory's `merge` when it has one, else the most specific replaces.
 */
export function mergePerRouteFilterConfig(any: Any, more: unknown, less: unknown): unknown {
  if (less === undefined || more === undefined) return more;
  const factory = byPerRouteType.get(typeNameOf(any.typeUrl));
  return factory?.merge !== undefined ? factory.merge(more, less) : more;
}

/**
 * Compiles one typed_per_filter_config entry: the compiled value when a registered filter owns the Any's type,
 * undefined (with a warning) when none does (the entry is kept raw and has no effect).
 */
export function compilePerRouteFilterConfig(ctx: CompileContext, field: string, name: string, any: Any): unknown {
  const type = typeNameOf(any.typeUrl);
  const factory = byPerRouteType.get(type);
  if (factory === undefined) {
    ctx.warn(field, `per-route configuration ${type} for filter ${name} is not understood by any filter and has no effect`);
    return undefined;
  }
  return factory.compilePerRoute(any, ctx, field);
}

/** Decodes an Any with `unpack`, turning a decode error into a ConfigError at `field`. */
export function decodeOrFail<T>(ctx: CompileContext, field: string, decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    return ctx.fail(field, `cannot decode: ${e instanceof Error ? e.message : String(e)}`);
  }
}
