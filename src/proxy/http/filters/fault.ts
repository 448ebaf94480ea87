/**
 * The fault injection filter, `envoy.filters.http.fault` (envoy.extensions.filters.http.fault.v3.HTTPFault), with
 * Envoy's semantics (source/extensions/filters/http/fault/fault_filter.cc, filters/common/fault/fault_config.cc):
 *
 * - Settings: the route's typed_per_filter_config for this filter's name replaces the filter-level config entirely
 *   (this is how Istio writes a VirtualService `fault`: an empty HTTPFault on the HCM, the fault per route).
 * - A request is a candidate when active faults < max_active_faults (else `faults_overflow`), the route's cluster
 *   is `upstream_cluster` (when set), `x-envoy-downstream-service-node` is one of `downstream_nodes` (when set) and
 *   every `headers` matcher holds.
 * - Delay: with probability `delay.percentage` (FractionalPercent over HUNDRED / TEN_THOUSAND / MILLION; unset = 0)
 *   the request waits `fixed_delay`, or with `header_delay` the milliseconds in `x-envoy-fault-delay-request` (no or
 *   bad header: no delay). `x-envoy-fault-delay-request-percentage` lowers the numerator (min(header, configured),
 *   same denominator). Flag DI, `delays_injected`. The upstream sees nothing until the delay ends; the request body
 *   is held meanwhile.
 * - Abort (after the delay, if any): with probability `abort.percentage` the request is answered locally with
 *   `http_status` (body `fault filter abort`, details `fault_filter_abort`), or with `grpc_status` (HTTP 200 and the
 *   gRPC status; header_abort: `x-envoy-fault-abort-request` (200..599) or `x-envoy-fault-abort-grpc-request`; an
 *   http status wins over a gRPC one). `x-envoy-fault-abort-request-percentage` lowers the numerator. Flag FI,
 *   `aborts_injected`.
 * - Stats `http.<stat_prefix>.fault.`: delays_injected, aborts_injected, faults_overflow (counters), active_faults
 *   (gauge). Envoy counts a request as an active fault until its stream ends; here a delayed request counts until
 *   its delay ends (an abort is over at once), which is what max_active_faults bounds.
 * Runtime keys (`*_runtime`) are accepted and not consulted (no runtime layer); response_rate_limit is a
 * ConfigError (not supported); per-downstream-cluster stats are not kept.
 */
import type { Any } from '@bufbuild/protobuf/wkt';
import { unpack } from '../../../xds/index.js';
import { HTTPFaultSchema, type HTTPFault } from '../../../xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import type { FractionalPercent } from '../../../xds/gen/envoy/type/v3/percent_pb.js';
import type { RouteDecision } from '../router/decision.js';
import { compileHeaderMatcher, listHeaderFirst, matchAllHeaders, type HeaderMatch } from '../router/match.js';
import { durationMs, fraction, sampled, type CompileContext } from '../router/util.js';
import type { Counter, Gauge } from '../../stats/metric.js';
import type { DownstreamStream } from '../server/connection.js';
import { HeldRequest } from './hold.js';
import { CONTINUE, decodeOrFail, STOP, type FilterChainCallbacks, type FilterFactoryContext, type FilterStatus, type HttpFilter, type HttpFilterFactory } from './registry.js';

export const FAULT_FILTER = 'envoy.filters.http.fault';
const FAULT_TYPE = 'envoy.extensions.filters.http.fault.v3.HTTPFault';

const H_DELAY = 'x-envoy-fault-delay-request';
const H_DELAY_PCT = 'x-envoy-fault-delay-request-percentage';
const H_ABORT = 'x-envoy-fault-abort-request';
const H_ABORT_GRPC = 'x-envoy-fault-abort-grpc-request';
const H_ABORT_PCT = 'x-envoy-fault-abort-request-percentage';
const H_DOWNSTREAM_NODE = 'x-envoy-downstream-service-node';
const ABORT_BODY = 'fault filter abort';
const ABORT_DETAILS = 'fault_filter_abort';

/** Compiled HTTPFault (filter level or per route). */
export class FaultSettings {
  constructor(
    /** Delay: ms (fixed), -1 = from the x-envoy-fault-delay-request header, undefined = no delay. */
    readonly delayMs: number | undefined,
    readonly delayNum: number,
    readonly delayDen: number,
    /** Abort: http status (> 0), or 0 with grpcStatus, or -1 = from the headers; undefined = no abort. */
    readonly abortHttp: number | undefined,
    readonly abortGrpc: number | undefined,
    readonly abortNum: number,
    readonly abortDen: number,
    readonly upstreamCluster: string,
    readonly headers: readonly HeaderMatch[],
    readonly downstreamNodes: ReadonlySet<string> | null,
    readonly maxActiveFaults: number,
  ) {}
}

function percent(ctx: CompileContext, field: string, p: FractionalPercent | undefined): [number, number] {
  // Unset: Envoy's default FractionalPercent, 0 over HUNDRED (never).
  return p === undefined ? [0, 100] : fraction(ctx, field, p);
}

export function compileFault(ctx: CompileContext, field: string, p: HTTPFault): FaultSettings {
  if (p.responseRateLimit) ctx.fail(`${field}.response_rate_limit`, 'response rate limiting faults are not supported');
  let delayMs: number | undefined;
  let delayNum = 0;
  let delayDen = 100;
  if (p.delay) {
    const d = p.delay.faultDelaySecifier;
    if (d.case === 'fixedDelay') delayMs = durationMs(ctx, `${field}.delay.fixed_delay`, d.value);
    else if (d.case === 'headerDelay') delayMs = -1;
    else ctx.fail(`${field}.delay`, 'one of fixed_delay or header_delay is required');
    [delayNum, delayDen] = percent(ctx, `${field}.delay.percentage`, p.delay.percentage);
  }
  let abortHttp: number | undefined;
  let abortGrpc: number | undefined;
  let abortNum = 0;
  let abortDen = 100;
  if (p.abort) {
    const e = p.abort.errorType;
    if (e.case === 'httpStatus') {
      if (e.value < 200 || e.value >= 600) ctx.fail(`${field}.abort.http_status`, `must be in [200, 600), got ${e.value}`);
      abortHttp = e.value;
    } else if (e.case === 'grpcStatus') {
      abortHttp = 0;
      abortGrpc = e.value;
    } else if (e.case === 'headerAbort') abortHttp = -1;
    else ctx.fail(`${field}.abort`, 'one of http_status, grpc_status or header_abort is required');
    [abortNum, abortDen] = percent(ctx, `${field}.abort.percentage`, p.abort.percentage);
  }
  const headers = p.headers.map((h, i) => compileHeaderMatcher(ctx, `${field}.headers[${i}]`, h));
  return new FaultSettings(
    delayMs,
    delayNum,
    delayDen,
    abortHttp,
    abortGrpc,
    abortNum,
    abortDen,
    p.upstreamCluster,
    headers,
    p.downstreamNodes.length > 0 ? new Set(p.downstreamNodes) : null,
    p.maxActiveFaults ?? Number.POSITIVE_INFINITY,
  );
}

/** A FractionalPercent numerator from a percentage header: min(header, configured), as HeaderPercentageProvider. */
function headerNumerator(stream: DownstreamStream, name: string, configured: number): number {
  const v = listHeaderFirst(stream.head.headers, name);
  if (v === undefined) return configured;
  const n = parseUnsigned(v);
  return n < 0 ? configured : Math.min(n, configured);
}

/** absl::SimpleAtoi for an unsigned header value: optional surrounding whitespace and +, digits; -1 when invalid. */
function parseUnsigned(v: string): number {
  const t = v.trim();
  if (t.length === 0 || t.length > 15 || !/^\+?\d+$/.test(t)) return -1;
  return Number(t);
}

class FaultStats {
  constructor(
    readonly delays_injected: Counter | null,
    readonly aborts_injected: Counter | null,
    readonly faults_overflow: Counter | null,
    readonly active_faults: Gauge | null,
  ) {}
}

class FaultFilter implements HttpFilter {
  disabledByDefault = false;
  /** Requests currently inside a fault (the gauge's value, kept even without stats). */
  private active = 0;

  constructor(
    readonly name: string,
    private readonly settings: FaultSettings,
    private readonly stats: FaultStats,
    private readonly random: () => number,
  ) {}

  decodeHeaders(stream: DownstreamStream, decision: RouteDecision | undefined, index: number, chain: FilterChainCallbacks): FilterStatus {
    let s = this.settings;
    if (decision !== undefined) {
      const own = decision.compiledFilterConfig(this.name);
      if (own instanceof FaultSettings) s = own;
    }
    if (s.delayMs === undefined && s.abortHttp === undefined) return CONTINUE;
    if (this.active >= s.maxActiveFaults) {
      this.stats.faults_overflow?.inc();
      return CONTINUE;
    }
    if (s.upstreamCluster !== '' && (decision === undefined || decision.cluster !== s.upstreamCluster)) return CONTINUE;
    const head = stream.head;
    if (s.downstreamNodes !== null) {
      const node = listHeaderFirst(head.headers, H_DOWNSTREAM_NODE);
      if (node === undefined || !s.downstreamNodes.has(node)) return CONTINUE;
    }
    if (s.headers.length > 0 && !matchAllHeaders(s.headers, head)) return CONTINUE;
    const delay = this.delayMs(s, stream);
    if (delay > 0) {
      this.startFault();
      this.stats.delays_injected?.inc();
      stream.flags = stream.flags === '' ? 'DI' : `${stream.flags},DI`;
      const held = new HeldRequest(stream, decision, index + 1, chain, () => {
        clearTimeout(timer);
        this.endFault();
      });
      const timer = setTimeout(() => {
        this.endFault();
        if (this.maybeAbort(s, stream, held)) return;
        held.resume();
      }, delay);
      return STOP;
    }
    return this.maybeAbort(s, stream, null) ? STOP : CONTINUE;
  }

  private delayMs(s: FaultSettings, stream: DownstreamStream): number {
    if (s.delayMs === undefined) return 0;
    const num = headerNumerator(stream, H_DELAY_PCT, s.delayNum);
    if (!sampled(num, s.delayDen, this.random())) return 0;
    if (s.delayMs >= 0) return s.delayMs;
    const v = listHeaderFirst(stream.head.headers, H_DELAY);
    if (v === undefined) return 0;
    const n = parseUnsigned(v);
    return n > 0 ? n : 0;
  }

  /** Answers the request when an abort applies (FI); false otherwise. */
  private maybeAbort(s: FaultSettings, stream: DownstreamStream, held: HeldRequest | null): boolean {
    if (s.abortHttp === undefined) return false;
    const num = headerNumerator(stream, H_ABORT_PCT, s.abortNum);
    if (!sampled(num, s.abortDen, this.random())) return false;
    let http = s.abortHttp;
    let grpc = s.abortGrpc;
    if (http < 0) {
      // header_abort: an http status in [200, 600) wins over a gRPC status.
      const h = listHeaderFirst(stream.head.headers, H_ABORT);
      const n = h === undefined ? -1 : parseUnsigned(h);
      if (n >= 200 && n < 600) {
        http = n;
        grpc = undefined;
      } else {
        const g = listHeaderFirst(stream.head.headers, H_ABORT_GRPC);
        const gn = g === undefined ? -1 : parseUnsigned(g);
        if (gn < 0) return false;
        http = 200;
        grpc = gn;
      }
    } else if (http === 0) http = 200;
    held?.release();
    this.stats.aborts_injected?.inc();
    // An abort is over once answered: counted while it is being written (Envoy: until the stream ends).
    this.startFault();
    this.endFault();
    // A gRPC request gets the gRPC-shaped local reply (server/local-reply.ts): trailers-only, HTTP 200, the gRPC
    // status (header_abort grpc_status, else the http status mapped), the body as grpc-message.
    stream.localReply(http, ABORT_BODY, 'FI', ABORT_DETAILS, undefined, grpc);
    return true;
  }

  private startFault(): void {
    this.active++;
    this.stats.active_faults?.inc();
  }

  private endFault(): void {
    this.active--;
    this.stats.active_faults?.dec();
  }
}

function decode(ctx: CompileContext, field: string, any: Any): HTTPFault {
  return decodeOrFail(ctx, field, () => unpack(HTTPFaultSchema, any));
}

export const faultFilterFactory: HttpFilterFactory = {
  name: FAULT_FILTER,
  configType: FAULT_TYPE,
  perRouteTypes: [FAULT_TYPE],
  create(config: Any | undefined, ctx: FilterFactoryContext): HttpFilter {
    const proto = config === undefined ? undefined : decode(ctx.compile, ctx.field, config);
    const settings = proto === undefined ? new FaultSettings(undefined, 0, 100, undefined, undefined, 0, 100, '', [], null, Number.POSITIVE_INFINITY) : compileFault(ctx.compile, ctx.field, proto);
    const sc = ctx.stats?.scope('fault.');
    const stats = new FaultStats(
      sc?.counter('delays_injected') ?? null,
      sc?.counter('aborts_injected') ?? null,
      sc?.counter('faults_overflow') ?? null,
      sc?.gauge('active_faults') ?? null,
    );
    return new FaultFilter(ctx.name, settings, stats, ctx.random ?? Math.random);
  },
  compilePerRoute(config: Any, ctx: CompileContext, field: string): unknown {
    return compileFault(ctx, field, decode(ctx, field, config));
  },
};
