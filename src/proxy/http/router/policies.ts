/**
 * Route action policies compiled from their protos: retry policy (RetryPolicyImpl), request mirroring
 * (ShadowPolicyImpl) and consistent-hash policies. The router only parses them; retry state, mirroring and hashing
 * are done by the components that own the upstream request and the load balancer.
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { typeNameOf, unpack } from '../../../xds/index.js';
import type {
  RetryPolicy as RetryPolicyProto,
  RouteAction_HashPolicy,
  RouteAction_RequestMirrorPolicy,
} from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RetryPolicy_ResetHeaderFormat } from '../../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { PreviousPrioritiesConfigSchema } from '../../../xds/gen/envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config_pb.js';
import type { RequestHead, ResponseHead } from '../headers.js';
import { compileHeaderMatcher } from './match.js';
import type { HeaderMatch } from './match.js';
import { asciiLower, checkHeaderName, compileRegexRewrite, durationMs, optionalDurationMs, runtimeFraction, sampled } from './util.js';
import type { CompileContext, RegexRewrite } from './util.js';

// ---------------------------------------------------------------------------------------------------------------
// Retry

/** `retry_on` conditions (x-envoy-retry-on and x-envoy-retry-grpc-on values), as bit flags. */
export const RetryOn = {
  '5xx': 1 << 0,
  'gateway-error': 1 << 1,
  'connect-failure': 1 << 2,
  'envoy-ratelimited': 1 << 3,
  'retriable-4xx': 1 << 4,
  'refused-stream': 1 << 5,
  'retriable-status-codes': 1 << 6,
  'retriable-headers': 1 << 7,
  reset: 1 << 8,
  'reset-before-request': 1 << 9,
  'http3-post-connect-failure': 1 << 10,
  cancelled: 1 << 11,
  'deadline-exceeded': 1 << 12,
  'resource-exhausted': 1 << 13,
  unavailable: 1 << 14,
  internal: 1 << 15,
} as const;
export type RetryOnName = keyof typeof RetryOn;

export const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';
export const PREVIOUS_PRIORITIES = 'envoy.retry_priorities.previous_priorities';
const PREVIOUS_HOSTS_TYPE = 'envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate';
const PREVIOUS_PRIORITIES_TYPE = 'envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';

export interface ResetHeader {
  /** Lower-case header name. */
  name: string;
  format: 'SECONDS' | 'UNIX_TIMESTAMP';
}

export class RetryPolicy {
  constructor(
    /** The recognised `retry_on` conditions, in configuration order. */
    readonly retryOn: readonly RetryOnName[],
    /** The same as bit flags (see RetryOn). */
    readonly retryOnMask: number,
    /** Default 1 when unset, as Envoy. */
    readonly numRetries: number,
    /** 0 = none (the route timeout applies to every try). */
    readonly perTryTimeoutMs: number,
    /** 0 = none. */
    readonly perTryIdleTimeoutMs: number,
    readonly retriableStatusCodes: readonly number[],
    /** The previous_hosts predicate: reselect a host that was not tried before. */
    readonly previousHosts: boolean,
    /** Default 1. */
    readonly hostSelectionMaxAttempts: number,
    /** previous_priorities (update_frequency), when configured. */
    readonly previousPrioritiesUpdateFrequency: number | undefined,
    /** retry_back_off; undefined = the router's defaults (25 ms base, 10 × base max). */
    readonly baseIntervalMs: number | undefined,
    readonly maxIntervalMs: number | undefined,
    /** rate_limited_retry_back_off. */
    readonly resetHeaders: readonly ResetHeader[],
    readonly resetMaxIntervalMs: number,
    private readonly retriableHeaders: readonly HeaderMatch[],
    private readonly retriableRequestHeaders: readonly HeaderMatch[],
  ) {}

  has(name: RetryOnName): boolean {
    return (this.retryOnMask & RetryOn[name]) !== 0;
  }

  /** retriable_request_headers: a request is retried only when one matches (always, when there are none). */
  requestRetriable(head: RequestHead): boolean {
    const ms = this.retriableRequestHeaders;
    if (ms.length === 0) return true;
    for (let i = 0; i < ms.length; i++) if (ms[i]!.matchRequest(head)) return true;
    return false;
  }

  /** retriable_headers (for `retriable-headers`): whether a response header matcher matches. */
  responseHeadersRetriable(resp: ResponseHead): boolean {
    const ms = this.retriableHeaders;
    for (let i = 0; i < ms.length; i++) if (ms[i]!.matchResponse(resp)) return true;
    return false;
  }
}

/** The type name of an extension's typed config, else undefined. */
function configType(cfg: { configType: { case: 'typedConfig'; value: Any } | { case: undefined; value?: undefined } }): string | undefined {
  return cfg.configType.case === 'typedConfig' ? typeNameOf(cfg.configType.value.typeUrl) : undefined;
}

export function compileRetryPolicy(ctx: CompileContext, field: string, p: RetryPolicyProto): RetryPolicy {
  const retryOn: RetryOnName[] = [];
  let mask = 0;
  for (const raw of p.retryOn.split(',')) {
    const token = raw.trim();
    if (!token) continue;
    if (Object.prototype.hasOwnProperty.call(RetryOn, token)) {
      retryOn.push(token as RetryOnName);
      mask |= RetryOn[token as RetryOnName];
    } else {
      ctx.warn(`${field}.retry_on`, `unknown retry condition "${token}" is ignored (as Envoy ignores it)`);
    }
  }

  let previousHosts = false;
  p.retryHostPredicate.forEach((h, i) => {
    const f = `${field}.retry_host_predicate[${i}]`;
    const t = configType(h);
    if (t === PREVIOUS_HOSTS_TYPE || (t === undefined && h.name === PREVIOUS_HOSTS)) previousHosts = true;
    else ctx.fail(f, `retry host predicate ${h.name || t || '(unnamed)'} is not supported (only ${PREVIOUS_HOSTS})`);
  });

  let updateFrequency: number | undefined;
  const prio = p.retryPriority;
  if (prio && (prio.name || prio.configType.case)) {
    const f = `${field}.retry_priority`;
    const t = configType(prio);
    if (t === PREVIOUS_PRIORITIES_TYPE || (t === undefined && prio.name === PREVIOUS_PRIORITIES)) {
      if (prio.configType.case !== 'typedConfig') ctx.fail(`${f}.typed_config`, 'previous_priorities needs a PreviousPrioritiesConfig');
      let freq = 0;
      try {
        freq = unpack(PreviousPrioritiesConfigSchema, prio.configType.value).updateFrequency;
      } catch (e) {
        ctx.fail(`${f}.typed_config`, e instanceof Error ? e.message : String(e));
      }
      if (freq <= 0) ctx.fail(`${f}.typed_config.update_frequency`, 'must be greater than 0');
      updateFrequency = freq;
    } else {
      ctx.fail(f, `retry priority ${prio.name || t || '(unnamed)'} is not supported (only ${PREVIOUS_PRIORITIES})`);
    }
  }

  if (p.retryOptionsPredicates.length > 0) ctx.fail(`${field}.retry_options_predicates`, 'retry options predicates are not supported');

  let base: number | undefined;
  let max: number | undefined;
  if (p.retryBackOff) {
    const f = `${field}.retry_back_off`;
    if (!p.retryBackOff.baseInterval) ctx.fail(`${f}.base_interval`, 'is required');
    const b = p.retryBackOff.baseInterval;
    if (b.seconds === 0n && b.nanos === 0) ctx.fail(`${f}.base_interval`, 'must be greater than 0');
    // Sub-millisecond intervals round up to 1 ms, as Envoy does.
    base = Math.max(1, durationMs(ctx, `${f}.base_interval`, b));
    const mi = p.retryBackOff.maxInterval;
    if (mi && mi.seconds === 0n && mi.nanos === 0) ctx.fail(`${f}.max_interval`, 'must be greater than 0');
    const m = optionalDurationMs(ctx, `${f}.max_interval`, mi);
    if (m !== undefined) {
      max = Math.max(1, m);
      if (max < base) ctx.fail(`${f}.max_interval`, 'must be greater than or equal to the base_interval');
    }
  }

  const resetHeaders: ResetHeader[] = [];
  let resetMax = 300_000;
  if (p.rateLimitedRetryBackOff) {
    const f = `${field}.rate_limited_retry_back_off`;
    const r = p.rateLimitedRetryBackOff;
    if (r.resetHeaders.length === 0) ctx.fail(`${f}.reset_headers`, 'must have at least one header');
    r.resetHeaders.forEach((h, i) => {
      checkHeaderName(ctx, `${f}.reset_headers[${i}].name`, h.name);
      resetHeaders.push({ name: asciiLower(h.name), format: h.format === RetryPolicy_ResetHeaderFormat.UNIX_TIMESTAMP ? 'UNIX_TIMESTAMP' : 'SECONDS' });
    });
    if (r.maxInterval && r.maxInterval.seconds === 0n && r.maxInterval.nanos === 0) ctx.fail(`${f}.max_interval`, 'must be greater than 0');
    const m = optionalDurationMs(ctx, `${f}.max_interval`, r.maxInterval);
    if (m !== undefined) resetMax = Math.max(1, m);
  }

  for (const code of p.retriableStatusCodes) {
    if (code < 100 || code > 599) ctx.warn(`${field}.retriable_status_codes`, `status code ${code} is outside 100..599 and never matches`);
  }

  const policy = new RetryPolicy(
    retryOn,
    mask,
    p.numRetries ?? 1,
    optionalDurationMs(ctx, `${field}.per_try_timeout`, p.perTryTimeout) ?? 0,
    optionalDurationMs(ctx, `${field}.per_try_idle_timeout`, p.perTryIdleTimeout) ?? 0,
    p.retriableStatusCodes.length === 0 ? NONE : [...p.retriableStatusCodes],
    previousHosts,
    p.hostSelectionRetryMaxAttempts > 0n ? Number(p.hostSelectionRetryMaxAttempts) : 1,
    updateFrequency,
    base,
    max,
    resetHeaders.length === 0 ? NONE : resetHeaders,
    resetMax,
    p.retriableHeaders.length === 0 ? NONE : p.retriableHeaders.map((h, i) => compileHeaderMatcher(ctx, `${field}.retriable_headers[${i}]`, h)),
    p.retriableRequestHeaders.length === 0 ? NONE : p.retriableRequestHeaders.map((h, i) => compileHeaderMatcher(ctx, `${field}.retriable_request_headers[${i}]`, h)),
  );
  // A policy without header matchers is a plain value: routes with the same one share it.
  if (p.retriableHeaders.length > 0 || p.retriableRequestHeaders.length > 0) return policy;
  const key = JSON.stringify([
    policy.retryOn,
    policy.numRetries,
    policy.perTryTimeoutMs,
    policy.perTryIdleTimeoutMs,
    policy.retriableStatusCodes,
    policy.previousHosts,
    policy.hostSelectionMaxAttempts,
    policy.previousPrioritiesUpdateFrequency ?? null,
    policy.baseIntervalMs ?? null,
    policy.maxIntervalMs ?? null,
    policy.resetHeaders,
    policy.resetMaxIntervalMs,
  ]);
  return ctx.share(`retry:${key}`, policy);
}

const NONE: readonly never[] = Object.freeze([]);

// ---------------------------------------------------------------------------------------------------------------
// Request mirroring

export class MirrorPolicy {
  constructor(
    /** The mirror cluster ('' when it comes from clusterHeader). */
    readonly cluster: string,
    /** Lower-case request header naming the cluster ('' when `cluster` is set). */
    readonly clusterHeader: string,
    readonly numerator: number,
    readonly denominator: number,
    /** undefined = inherit the request's sampling decision. */
    readonly traceSampled: boolean | undefined,
    /** Envoy appends `-shadow` to the mirrored request's authority unless this is set. */
    readonly disableShadowHostSuffixAppend: boolean,
  ) {}

  /** Whether to mirror this request, given a uniform random number in [0, 1). */
  sampled(random: number): boolean {
    return sampled(this.numerator, this.denominator, random);
  }
}

export function compileMirrorPolicy(ctx: CompileContext, field: string, m: RouteAction_RequestMirrorPolicy): MirrorPolicy {
  if (m.cluster && m.clusterHeader) ctx.fail(field, `only one of cluster '${m.cluster}' or cluster_header '${m.clusterHeader}' in request mirror policy can be specified`);
  if (!m.cluster && !m.clusterHeader) ctx.fail(field, 'exactly one of cluster or cluster_header in request mirror policy needs to be specified');
  if (m.clusterHeader) checkHeaderName(ctx, `${field}.cluster_header`, m.clusterHeader);
  // Without runtime_fraction every request is mirrored.
  const [num, den] = m.runtimeFraction ? runtimeFraction(ctx, `${field}.runtime_fraction`, m.runtimeFraction) : [100, 100];
  return new MirrorPolicy(m.cluster, asciiLower(m.clusterHeader), num, den, m.traceSampled, m.disableShadowHostSuffixAppend);
}

// ---------------------------------------------------------------------------------------------------------------
// Hash policies

export type HashPolicy =
  | { kind: 'header'; headerName: string; regexRewrite?: RegexRewrite; terminal: boolean }
  | { kind: 'cookie'; name: string; ttlMs?: number; path: string; attributes: Array<{ name: string; value: string }>; terminal: boolean }
  | { kind: 'sourceIp'; terminal: boolean }
  | { kind: 'queryParameter'; name: string; terminal: boolean }
  | { kind: 'filterState'; key: string; terminal: boolean };

/** Compiles a hash policy; undefined for connection_properties without source_ip (Envoy adds no hash method). */
export function compileHashPolicy(ctx: CompileContext, field: string, h: RouteAction_HashPolicy): HashPolicy | undefined {
  const s = h.policySpecifier;
  switch (s.case) {
    case 'header': {
      checkHeaderName(ctx, `${field}.header.header_name`, s.value.headerName);
      const out: HashPolicy = { kind: 'header', headerName: asciiLower(s.value.headerName), terminal: h.terminal };
      if (s.value.regexRewrite) out.regexRewrite = compileRegexRewrite(ctx, `${field}.header.regex_rewrite`, s.value.regexRewrite);
      return out;
    }
    case 'cookie': {
      if (!s.value.name) ctx.fail(`${field}.cookie.name`, 'must not be empty');
      const out: HashPolicy = {
        kind: 'cookie',
        name: s.value.name,
        path: s.value.path,
        attributes: s.value.attributes.map((a, i) => {
          if (!a.name) ctx.fail(`${field}.cookie.attributes[${i}].name`, 'must not be empty');
          return { name: a.name, value: a.value };
        }),
        terminal: h.terminal,
      };
      const ttl = optionalDurationMs(ctx, `${field}.cookie.ttl`, s.value.ttl);
      if (ttl !== undefined) out.ttlMs = ttl;
      return out;
    }
    case 'connectionProperties':
      if (!s.value.sourceIp) return undefined;
      return { kind: 'sourceIp', terminal: h.terminal };
    case 'queryParameter':
      if (!s.value.name) ctx.fail(`${field}.query_parameter.name`, 'must not be empty');
      return { kind: 'queryParameter', name: s.value.name, terminal: h.terminal };
    case 'filterState':
      if (!s.value.key) ctx.fail(`${field}.filter_state.key`, 'must not be empty');
      return { kind: 'filterState', key: s.value.key, terminal: h.terminal };
    default:
      return ctx.fail(field, 'one of header, cookie, connection_properties, query_parameter or filter_state is required');
  }
}
