/** Small builders shared by the route and listener translation: durations, percentages, string matchers. */
import { create } from '@bufbuild/protobuf';
import type { Duration } from '@bufbuild/protobuf/wkt';
import { DurationSchema } from '@bufbuild/protobuf/wkt';
import type { StringMatch } from '../../../api/model.js';
import { RuntimeFractionalPercentSchema } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { RuntimeFractionalPercent } from '../../../xds/gen/envoy/config/core/v3/base_pb.js';
import { RegexMatcherSchema } from '../../../xds/gen/envoy/type/matcher/v3/regex_pb.js';
import { StringMatcherSchema } from '../../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import type { StringMatcher } from '../../../xds/gen/envoy/type/matcher/v3/string_pb.js';
import { FractionalPercent_DenominatorType, FractionalPercentSchema } from '../../../xds/gen/envoy/type/v3/percent_pb.js';
import type { FractionalPercent } from '../../../xds/gen/envoy/type/v3/percent_pb.js';

/** HTTP filter names, as Envoy (and Istio's `wellknown`) spell them; typed_per_filter_config keys use the same. */
export const FAULT_FILTER = 'envoy.filters.http.fault';
export const CORS_FILTER = 'envoy.filters.http.cors';
export const ROUTER_FILTER = 'envoy.filters.http.router';
export const HCM_FILTER = 'envoy.filters.network.http_connection_manager';
export const TCP_PROXY_FILTER = 'envoy.filters.network.tcp_proxy';
export const HTTP_INSPECTOR_FILTER = 'envoy.filters.listener.http_inspector';

/** A protobuf Duration from milliseconds (fractions of a millisecond kept to the nanosecond). */
export function durationMs(ms: number): Duration {
  const whole = Math.floor(ms / 1000);
  const nanos = Math.round((ms - whole * 1000) * 1e6);
  return create(DurationSchema, { seconds: BigInt(whole), nanos });
}

/**
 * A percentage in [0, 100] as an Envoy FractionalPercent over a MILLION, as Istio writes `Percent` values
 * (`numerator = value * 10000`, truncated; the tiny epsilon absorbs binary floating-point error such as
 * 0.1 * 10000 = 1000.0000000000001 or 29.9999...).
 */
export function fractionalPercent(percent: number): FractionalPercent {
  const clamped = Math.min(100, Math.max(0, percent));
  return create(FractionalPercentSchema, {
    numerator: Math.min(1_000_000, Math.floor(clamped * 10_000 + 1e-6)),
    denominator: FractionalPercent_DenominatorType.MILLION,
  });
}

export function runtimeFraction(percent: number): RuntimeFractionalPercent {
  return create(RuntimeFractionalPercentSchema, { defaultValue: fractionalPercent(percent) });
}

/** 100 % over HUNDRED, the way Istio enables the CORS filter per route. */
export function fullRuntimeFraction(): RuntimeFractionalPercent {
  return create(RuntimeFractionalPercentSchema, {
    defaultValue: create(FractionalPercentSchema, { numerator: 100, denominator: FractionalPercent_DenominatorType.HUNDRED }),
  });
}

/**
 * A model string match as an Envoy StringMatcher (Istio `ConvertToEnvoyMatch`). Regexes are RE2 (`safe_regex`);
 * the engine is left to Envoy's default, which is Google RE2 (the `google_re2` field is deprecated).
 */
export function stringMatcher(m: StringMatch, ignoreCase = false): StringMatcher {
  if ('exact' in m) return create(StringMatcherSchema, { matchPattern: { case: 'exact', value: m.exact }, ignoreCase });
  if ('prefix' in m) return create(StringMatcherSchema, { matchPattern: { case: 'prefix', value: m.prefix }, ignoreCase });
  return create(StringMatcherSchema, { matchPattern: { case: 'safeRegex', value: create(RegexMatcherSchema, { regex: m.regex }) } });
}

/** `host:port`, with IPv6 literals bracketed. */
export function hostPort(host: string, port: number): string {
  return `${host.includes(':') && !host.startsWith('[') ? `[${host}]` : host}:${port}`;
}
