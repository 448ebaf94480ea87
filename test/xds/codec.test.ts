/**
 * The generated Envoy xDS v3 types and the codec helpers of src/xds: every resource shape Weft will emit survives
 * Any packing, binary encoding and proto3 JSON; the JSON is the canonical form `config_dump` prints; and the code
 * generator produced every package the foundation issue lists.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create, equals, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, JsonValue, MessageShape } from '@bufbuild/protobuf';
import { AnySchema, EmptySchema, StringValueSchema } from '@bufbuild/protobuf/wkt';
import type { Any } from '@bufbuild/protobuf/wkt';

import { decode, encode, make, pack, TYPE_URL_PREFIX, typeNameOf, TypeUrl, unpack } from '../../src/xds/index.js';
import { fromProtoJson, registry, toProtoJson, unpackAny } from '../../src/xds/json.js';

import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import type { Cluster } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ConfigSourceSchema, ApiVersion } from '../../src/xds/gen/envoy/config/core/v3/config_source_pb.js';
import type { ConfigSource } from '../../src/xds/gen/envoy/config/core/v3/config_source_pb.js';
import { HeaderValueOption_HeaderAppendAction, RoutingPriority, TrafficDirection } from '../../src/xds/gen/envoy/config/core/v3/base_pb.js';
import { HealthStatus } from '../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ClusterStatsSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/load_report_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RBAC_Action } from '../../src/xds/gen/envoy/config/rbac/v3/rbac_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { OpenTelemetryConfigSchema } from '../../src/xds/gen/envoy/config/trace/v3/opentelemetry_pb.js';
import { ZipkinConfigSchema, ZipkinConfig_CollectorEndpointVersion } from '../../src/xds/gen/envoy/config/trace/v3/zipkin_pb.js';
import { FileAccessLogSchema } from '../../src/xds/gen/envoy/extensions/access_loggers/file/v3/file_pb.js';
import { StdoutAccessLogSchema } from '../../src/xds/gen/envoy/extensions/access_loggers/stream/v3/stream_pb.js';
import { ExtAuthzSchema as HttpExtAuthzSchema } from '../../src/xds/gen/envoy/extensions/filters/http/ext_authz/v3/ext_authz_pb.js';
import { HTTPFaultSchema } from '../../src/xds/gen/envoy/extensions/filters/http/fault/v3/fault_pb.js';
import { HealthCheckSchema as HealthCheckFilterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/health_check/v3/health_check_pb.js';
import { JwtAuthenticationSchema } from '../../src/xds/gen/envoy/extensions/filters/http/jwt_authn/v3/config_pb.js';
import { LocalRateLimitSchema as HttpLocalRateLimitSchema } from '../../src/xds/gen/envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit_pb.js';
import { RateLimitSchema, RateLimit_XRateLimitHeadersRFCVersion } from '../../src/xds/gen/envoy/extensions/filters/http/ratelimit/v3/rate_limit_pb.js';
import { RBACSchema as HttpRbacSchema } from '../../src/xds/gen/envoy/extensions/filters/http/rbac/v3/rbac_pb.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { WasmSchema } from '../../src/xds/gen/envoy/extensions/filters/http/wasm/v3/wasm_pb.js';
import { ExtAuthzSchema as NetworkExtAuthzSchema } from '../../src/xds/gen/envoy/extensions/filters/network/ext_authz/v3/ext_authz_pb.js';
import {
  HttpConnectionManagerSchema,
  HttpConnectionManager_CodecType,
} from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { LocalRateLimitSchema as NetworkLocalRateLimitSchema } from '../../src/xds/gen/envoy/extensions/filters/network/local_ratelimit/v3/local_rate_limit_pb.js';
import { RBACSchema as NetworkRbacSchema } from '../../src/xds/gen/envoy/extensions/filters/network/rbac/v3/rbac_pb.js';
import { RedisProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/redis_proxy/v3/redis_proxy_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { TlsInspectorSchema } from '../../src/xds/gen/envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector_pb.js';
import { SecretSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/secret_pb.js';
import { SubjectAltNameMatcher_SanType, TlsParameters_TlsProtocol } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/common_pb.js';
import { DownstreamTlsContextSchema, UpstreamTlsContextSchema } from '../../src/xds/gen/envoy/extensions/transport_sockets/tls/v3/tls_pb.js';
import { HttpProtocolOptionsSchema as UpstreamHttpProtocolOptionsSchema } from '../../src/xds/gen/envoy/extensions/upstreams/http/v3/http_protocol_options_pb.js';
import {
  DeltaDiscoveryRequestSchema,
  DeltaDiscoveryResponseSchema,
  DiscoveryRequestSchema,
  DiscoveryResponseSchema,
} from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { FractionalPercent_DenominatorType } from '../../src/xds/gen/envoy/type/v3/percent_pb.js';
import { StatusCode } from '../../src/xds/gen/envoy/type/v3/http_status_pb.js';

// ---------------------------------------------------------------------------------------------------------------
// Helpers

/** A google.protobuf.Duration init from milliseconds. */
function dur(ms: number): { seconds: bigint; nanos: number } {
  return { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1_000_000 };
}

/** Aggregated discovery (ADS) as the config source, v3 resources: what every Weft-emitted reference uses. */
function ads(): ConfigSource {
  return create(ConfigSourceSchema, {
    configSourceSpecifier: { case: 'ads', value: {} },
    resourceApiVersion: ApiVersion.V3,
  });
}

function socketAddress(address: string, port: number) {
  return { address: { case: 'socketAddress' as const, value: { address, portSpecifier: { case: 'portValue' as const, value: port } } } };
}

function percent(n: number, denominator = FractionalPercent_DenominatorType.HUNDRED) {
  return { numerator: n, denominator };
}

/**
 * The full round trip a resource makes between control plane and proxy: pack into Any (type URL checked), encode
 * the Any to bytes, decode, unpack with the schema and through the registry, and compare with the original.
 * Also checks the direct binary codec and the proto3 JSON codec. Returns the decoded message.
 */
function roundTrip<D extends DescMessage>(schema: D, msg: MessageShape<D>, expectedTypeUrl?: string): MessageShape<D> {
  const typeUrl = expectedTypeUrl ?? `${TYPE_URL_PREFIX}${schema.typeName}`;
  const any = pack(schema, msg);
  assert.equal(any.typeUrl, typeUrl, 'type URL of the packed Any');
  assert.ok(any.value.length > 0, 'the packed message is not empty');

  const wire = encode(AnySchema, any);
  const any2 = decode(AnySchema, wire);
  assert.equal(any2.typeUrl, typeUrl);
  assert.deepEqual(any2.value, any.value, 'Any.value bytes survive encoding');

  const back = unpack(schema, any2);
  assert.equal(back.$typeName, schema.typeName);
  assert.ok(equals(schema, msg, back), `${schema.typeName}: unpacked message differs from the original`);

  const viaRegistry = unpackAny(any2);
  assert.equal(viaRegistry.typeName, schema.typeName);
  assert.ok(equals(schema, msg, viaRegistry.message as MessageShape<D>), `${schema.typeName}: registry unpack differs`);

  const direct = decode(schema, encode(schema, msg));
  assert.ok(equals(schema, msg, direct), `${schema.typeName}: direct binary round trip differs`);
  assert.deepEqual(encode(schema, direct), encode(schema, msg), 're-encoding gives the same bytes');

  const json = toProtoJson(schema, msg);
  // The JSON must be plain data (what an HTTP endpoint would serve), so push it through text as well.
  const fromText = fromProtoJson(schema, JSON.parse(JSON.stringify(json)) as JsonValue);
  assert.ok(equals(schema, msg, fromText), `${schema.typeName}: JSON round trip differs`);
  return back;
}

/** Unpacks a typed_config Any that must hold `schema`. */
function typed<D extends DescMessage>(schema: D, any: Any | undefined): MessageShape<D> {
  assert.ok(any, `expected a typed_config of ${schema.typeName}`);
  assert.equal(any.typeUrl, `${TYPE_URL_PREFIX}${schema.typeName}`);
  return unpack(schema, any);
}

// ---------------------------------------------------------------------------------------------------------------
// Realistic resources, in the shapes Weft's control plane will emit

const REVIEWS = 'reviews.default.svc.cluster.local';

function httpFault() {
  return make(HTTPFaultSchema, {
    delay: { faultDelaySecifier: { case: 'fixedDelay', value: dur(5000) }, percentage: percent(10) },
    abort: { errorType: { case: 'httpStatus', value: 503 }, percentage: percent(125, FractionalPercent_DenominatorType.TEN_THOUSAND) },
  });
}

function httpRbac() {
  return make(HttpRbacSchema, {
    rules: {
      action: RBAC_Action.DENY,
      policies: {
        'ns[default]-policy[deny-admin]-rule[0]': {
          permissions: [
            {
              rule: {
                case: 'andRules',
                value: {
                  rules: [
                    { rule: { case: 'header', value: { name: ':method', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'POST' } } } } } },
                    { rule: { case: 'urlPath', value: { rule: { case: 'path', value: { matchPattern: { case: 'prefix', value: '/admin/' } } } } } },
                  ],
                },
              },
            },
          ],
          principals: [
            {
              identifier: {
                case: 'orIds',
                value: {
                  ids: [
                    { identifier: { case: 'remoteIp', value: { addressPrefix: '10.0.0.0', prefixLen: 8 } } },
                    {
                      identifier: {
                        case: 'notId',
                        value: { identifier: { case: 'authenticated', value: { principalName: { matchPattern: { case: 'prefix', value: 'spiffe://cluster.local/ns/admin/' } } } } },
                      },
                    },
                  ],
                },
              },
            },
          ],
        },
      },
    },
    shadowRulesStatPrefix: 'istio_dry_run_allow_',
  });
}

function hcm() {
  return make(HttpConnectionManagerSchema, {
    statPrefix: 'outbound_0.0.0.0_9080',
    codecType: HttpConnectionManager_CodecType.AUTO,
    routeSpecifier: { case: 'rds', value: { configSource: ads(), routeConfigName: '9080' } },
    httpFilters: [
      { name: 'envoy.filters.http.fault', configType: { case: 'typedConfig', value: pack(HTTPFaultSchema, httpFault()) } },
      { name: 'envoy.filters.http.rbac', configType: { case: 'typedConfig', value: pack(HttpRbacSchema, httpRbac()) } },
      { name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: pack(RouterSchema, { suppressEnvoyHeaders: false, startChildSpan: true }) } },
    ],
    useRemoteAddress: false,
    streamIdleTimeout: dur(0),
    normalizePath: true,
    upgradeConfigs: [{ upgradeType: 'websocket' }],
    tracing: {
      clientSampling: { value: 100 },
      randomSampling: { value: 1 },
      overallSampling: { value: 100 },
      provider: {
        name: 'envoy.tracers.zipkin',
        configType: {
          case: 'typedConfig',
          value: pack(ZipkinConfigSchema, {
            collectorCluster: 'zipkin',
            collectorEndpoint: '/api/v2/spans',
            collectorEndpointVersion: ZipkinConfig_CollectorEndpointVersion.HTTP_JSON,
            traceId128bit: true,
            sharedSpanContext: false,
          }),
        },
      },
    },
    accessLog: [
      {
        name: 'envoy.access_loggers.stdout',
        configType: {
          case: 'typedConfig',
          value: pack(StdoutAccessLogSchema, {
            accessLogFormat: {
              case: 'logFormat',
              value: { format: { case: 'textFormat', value: '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" %RESPONSE_CODE% %RESPONSE_FLAGS%\n' } },
            },
          }),
        },
      },
    ],
  });
}

function listener() {
  return make(ListenerSchema, {
    name: '0.0.0.0_9080',
    address: socketAddress('0.0.0.0', 9080),
    trafficDirection: TrafficDirection.OUTBOUND,
    bindToPort: false,
    listenerFilters: [{ name: 'envoy.filters.listener.tls_inspector', configType: { case: 'typedConfig', value: pack(TlsInspectorSchema, {}) } }],
    listenerFiltersTimeout: dur(0),
    continueOnListenerFiltersTimeout: true,
    filterChains: [
      {
        name: 'outbound_0.0.0.0_9080',
        filterChainMatch: { destinationPort: 9080, applicationProtocols: ['http/1.1', 'h2c'] },
        filters: [{ name: 'envoy.filters.network.http_connection_manager', configType: { case: 'typedConfig', value: pack(HttpConnectionManagerSchema, hcm()) } }],
      },
    ],
  });
}

function routeConfiguration() {
  const cluster = (subset: string) => `outbound|9080|${subset}|${REVIEWS}`;
  return make(RouteConfigurationSchema, {
    name: '9080',
    validateClusters: false,
    ignorePortInHostMatching: true,
    virtualHosts: [
      {
        name: `${REVIEWS}:9080`,
        domains: [REVIEWS, `${REVIEWS}:9080`, 'reviews', 'reviews:9080', 'reviews.default', 'reviews.default:9080', '10.96.0.12', '10.96.0.12:9080'],
        includeRequestAttemptCount: true,
        routes: [
          {
            name: 'jason',
            match: {
              pathSpecifier: { case: 'prefix', value: '/' },
              caseSensitive: true,
              headers: [{ name: 'end-user', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: 'jason' } } } }],
            },
            action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: cluster('v2') }, timeout: dur(0) } },
          },
          {
            name: 'api',
            match: {
              pathSpecifier: { case: 'safeRegex', value: { regex: '/api/v[0-9]+/reviews/.*' } },
              queryParameters: [{ name: 'debug', queryParameterMatchSpecifier: { case: 'presentMatch', value: true } }],
            },
            action: {
              case: 'route',
              value: {
                clusterSpecifier: { case: 'cluster', value: cluster('v3') },
                regexRewrite: { pattern: { regex: '^/api/v[0-9]+' }, substitution: '/api' },
                hostRewriteSpecifier: { case: 'hostRewriteLiteral', value: 'reviews-api.default.svc.cluster.local' },
              },
            },
          },
          {
            name: 'old',
            match: { pathSpecifier: { case: 'path', value: '/old-reviews' } },
            action: { case: 'redirect', value: { pathRewriteSpecifier: { case: 'pathRedirect', value: '/reviews' } } },
          },
          {
            name: 'health',
            match: { pathSpecifier: { case: 'path', value: '/teapot' } },
            action: { case: 'directResponse', value: { status: 418, body: { specifier: { case: 'inlineString', value: 'short and stout' } } } },
          },
          {
            name: 'default',
            match: { pathSpecifier: { case: 'prefix', value: '/' } },
            action: {
              case: 'route',
              value: {
                clusterSpecifier: {
                  case: 'weightedClusters',
                  value: {
                    clusters: [
                      { name: cluster('v1'), weight: 80 },
                      {
                        name: cluster('v3'),
                        weight: 20,
                        requestHeadersToAdd: [{ header: { key: 'x-canary', value: 'true' }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD }],
                      },
                    ],
                  },
                },
                timeout: dur(1500),
                retryPolicy: {
                  retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes',
                  numRetries: 2,
                  retriableStatusCodes: [503],
                  perTryTimeout: dur(500),
                  hostSelectionRetryMaxAttempts: 5n,
                  retryBackOff: { baseInterval: dur(25), maxInterval: dur(250) },
                },
                requestMirrorPolicies: [{ cluster: cluster('v4'), runtimeFraction: { defaultValue: percent(50) }, traceSampled: false }],
                hashPolicy: [{ policySpecifier: { case: 'header', value: { headerName: 'x-user' } } }],
                maxStreamDuration: { maxStreamDuration: dur(0), grpcTimeoutHeaderMax: dur(0) },
              },
            },
            typedPerFilterConfig: { 'envoy.filters.http.fault': pack(HTTPFaultSchema, httpFault()) },
            requestHeadersToRemove: ['x-internal'],
            responseHeadersToAdd: [{ header: { key: 'x-served-by', value: 'weft' }, appendAction: HeaderValueOption_HeaderAppendAction.APPEND_IF_EXISTS_OR_ADD }],
          },
        ],
        cors: {
          allowOriginStringMatch: [{ matchPattern: { case: 'safeRegex', value: { regex: 'https://.*\\.example\\.com' } } }],
          allowMethods: 'GET,POST',
          allowHeaders: 'authorization,content-type',
          maxAge: '86400',
          allowCredentials: true,
        },
      },
    ],
  });
}

function upstreamTls() {
  return make(UpstreamTlsContextSchema, {
    sni: `outbound_.9080_.v1_.${REVIEWS}`,
    commonTlsContext: {
      alpnProtocols: ['h2', 'http/1.1'],
      tlsParams: { tlsMinimumProtocolVersion: TlsParameters_TlsProtocol.TLSv1_2 },
      tlsCertificateSdsSecretConfigs: [{ name: 'default', sdsConfig: ads() }],
      validationContextType: {
        case: 'combinedValidationContext',
        value: {
          defaultValidationContext: {
            matchTypedSubjectAltNames: [
              {
                sanType: SubjectAltNameMatcher_SanType.URI,
                matcher: { matchPattern: { case: 'exact', value: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews' } },
              },
            ],
          },
          validationContextSdsSecretConfig: { name: 'ROOTCA', sdsConfig: ads() },
        },
      },
    },
  });
}

function edsCluster(): Cluster {
  const name = `outbound|9080|v1|${REVIEWS}`;
  return make(ClusterSchema, {
    name,
    altStatName: `outbound_9080_v1_${REVIEWS}`,
    clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.EDS },
    edsClusterConfig: { edsConfig: ads(), serviceName: name },
    connectTimeout: dur(10_000),
    lbPolicy: Cluster_LbPolicy.LEAST_REQUEST,
    circuitBreakers: {
      thresholds: [
        { priority: RoutingPriority.DEFAULT, maxConnections: 100, maxPendingRequests: 1024, maxRequests: 4294967295, maxRetries: 3, trackRemaining: true },
        { priority: RoutingPriority.HIGH, maxConnections: 200 },
      ],
    },
    outlierDetection: {
      consecutive5xx: 5,
      consecutiveGatewayFailure: 3,
      enforcingConsecutiveGatewayFailure: 100,
      interval: dur(10_000),
      baseEjectionTime: dur(30_000),
      maxEjectionPercent: 10,
      splitExternalLocalOriginErrors: true,
      consecutiveLocalOriginFailure: 5,
    },
    commonLbConfig: { healthyPanicThreshold: { value: 0 }, localityConfigSpecifier: { case: 'localityWeightedLbConfig', value: {} } },
    healthChecks: [
      {
        timeout: dur(1000),
        interval: dur(5000),
        unhealthyThreshold: 3,
        healthyThreshold: 2,
        healthChecker: { case: 'httpHealthCheck', value: { path: '/healthz', host: 'reviews' } },
      },
    ],
    typedExtensionProtocolOptions: {
      'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': pack(UpstreamHttpProtocolOptionsSchema, {
        commonHttpProtocolOptions: { idleTimeout: dur(3_600_000), maxRequestsPerConnection: 1000 },
        upstreamProtocolOptions: { case: 'explicitHttpConfig', value: { protocolConfig: { case: 'http2ProtocolOptions', value: { maxConcurrentStreams: 1024 } } } },
      }),
    },
    transportSocket: { name: 'envoy.transport_sockets.tls', configType: { case: 'typedConfig', value: pack(UpstreamTlsContextSchema, upstreamTls()) } },
    metadata: { filterMetadata: { istio: { services: [{ host: REVIEWS, name: 'reviews', namespace: 'default' }], subset: 'v1' } } },
  });
}

function clusterLoadAssignment() {
  const ep = (ip: string, health: HealthStatus, weight: number, workload: string) => ({
    hostIdentifier: { case: 'endpoint' as const, value: { address: socketAddress(ip, 9080), hostname: `${workload}.default` } },
    healthStatus: health,
    loadBalancingWeight: weight,
    metadata: {
      filterMetadata: {
        'envoy.transport_socket_match': { tlsMode: 'istio' },
        istio: { workload: `${workload};default;reviews;v1;Kubernetes` },
      },
    },
  });
  return make(ClusterLoadAssignmentSchema, {
    clusterName: `outbound|9080|v1|${REVIEWS}`,
    endpoints: [
      {
        locality: { region: 'us-east1', zone: 'us-east1-b', subZone: 'rack-7' },
        loadBalancingWeight: 3,
        priority: 0,
        lbEndpoints: [ep('10.0.0.5', HealthStatus.HEALTHY, 1, 'reviews-v1-a'), ep('10.0.0.6', HealthStatus.DRAINING, 1, 'reviews-v1-b')],
      },
      {
        locality: { region: 'us-east1', zone: 'us-east1-c' },
        loadBalancingWeight: 1,
        priority: 1,
        lbEndpoints: [ep('10.0.1.5', HealthStatus.HEALTHY, 2, 'reviews-v1-c'), ep('10.0.1.6', HealthStatus.UNHEALTHY, 1, 'reviews-v1-d')],
      },
    ],
    policy: { overprovisioningFactor: 140, weightedPriorityHealth: true },
  });
}

const CERT_PEM = '-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ2VydGlmaWNhdGUgZm9yIHRlc3Rz\n-----END CERTIFICATE-----\n';
const KEY_PEM = '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIGtleSBmb3IgdGVzdHMgb25seQ==\n-----END EC PRIVATE KEY-----\n';

function certSecret() {
  return make(SecretSchema, {
    name: 'default',
    type: {
      case: 'tlsCertificate',
      value: {
        certificateChain: { specifier: { case: 'inlineBytes', value: new TextEncoder().encode(CERT_PEM) } },
        privateKey: { specifier: { case: 'inlineBytes', value: new TextEncoder().encode(KEY_PEM) } },
      },
    },
  });
}

function rootSecret() {
  return make(SecretSchema, {
    name: 'ROOTCA',
    type: {
      case: 'validationContext',
      value: {
        trustedCa: { specifier: { case: 'inlineBytes', value: new TextEncoder().encode(CERT_PEM) } },
        matchTypedSubjectAltNames: [{ sanType: SubjectAltNameMatcher_SanType.URI, matcher: { matchPattern: { case: 'prefix', value: 'spiffe://cluster.local/' } } }],
      },
    },
  });
}

function node() {
  return {
    id: 'sidecar~10.0.0.5~reviews-v1-a.default~default.svc.cluster.local',
    cluster: 'reviews.default',
    metadata: { NAMESPACE: 'default', SERVICE_ACCOUNT: 'bookinfo-reviews', LABELS: { app: 'reviews', version: 'v1' }, WEFT_MODE: 'explicit' },
    locality: { region: 'us-east1', zone: 'us-east1-b' },
    userAgentName: 'weft',
    userAgentVersionType: { case: 'userAgentVersion' as const, value: '0.1.0' },
    clientFeatures: ['envoy.lb.does_not_support_overprovisioning'],
  };
}

// ---------------------------------------------------------------------------------------------------------------

describe('xDS resources: Any + binary round trip', () => {
  test('Listener with an HttpConnectionManager (rds; fault, rbac, router)', () => {
    const l = listener();
    const back = roundTrip(ListenerSchema, l, TypeUrl.Listener);
    // Walk down through the nested Any values of the decoded copy.
    const filter = back.filterChains[0]!.filters[0]!;
    assert.equal(filter.name, 'envoy.filters.network.http_connection_manager');
    assert.equal(filter.configType.case, 'typedConfig');
    const m = typed(HttpConnectionManagerSchema, filter.configType.value as Any);
    assert.equal(m.routeSpecifier.case, 'rds');
    assert.equal(m.routeSpecifier.value?.routeConfigName, '9080');
    assert.equal(m.routeSpecifier.value?.configSource?.configSourceSpecifier.case, 'ads');
    assert.deepEqual(
      m.httpFilters.map((f) => f.name),
      ['envoy.filters.http.fault', 'envoy.filters.http.rbac', 'envoy.filters.http.router'],
    );
    const [faultF, rbacF, routerF] = m.httpFilters;
    assert.ok(equals(HTTPFaultSchema, typed(HTTPFaultSchema, faultF!.configType.value as Any), httpFault()));
    const rbac = typed(HttpRbacSchema, rbacF!.configType.value as Any);
    assert.equal(rbac.rules?.action, RBAC_Action.DENY);
    assert.deepEqual(Object.keys(rbac.rules?.policies ?? {}), ['ns[default]-policy[deny-admin]-rule[0]']);
    assert.equal(typed(RouterSchema, routerF!.configType.value as Any).startChildSpan, true);
    const zipkin = typed(ZipkinConfigSchema, m.tracing?.provider?.configType.value);
    assert.equal(zipkin.collectorEndpointVersion, ZipkinConfig_CollectorEndpointVersion.HTTP_JSON);
    assert.equal(typed(StdoutAccessLogSchema, m.accessLog[0]?.configType.value).accessLogFormat.case, 'logFormat');
  });

  test('RouteConfiguration: virtual hosts, weighted clusters, retries, safe_regex, redirect, direct response', () => {
    const back = roundTrip(RouteConfigurationSchema, routeConfiguration(), TypeUrl.RouteConfiguration);
    const vh = back.virtualHosts[0]!;
    assert.equal(vh.domains.length, 8);
    assert.deepEqual(vh.routes.map((r) => r.action.case), ['route', 'route', 'redirect', 'directResponse', 'route']);
    const api = vh.routes[1]!;
    assert.equal(api.match?.pathSpecifier.case, 'safeRegex');
    const last = vh.routes[4]!;
    assert.equal(last.action.case, 'route');
    const action = last.action.value;
    assert.equal(action.clusterSpecifier.case, 'weightedClusters');
    assert.deepEqual(action.clusterSpecifier.value.clusters.map((c) => [c.name, c.weight]), [
      [`outbound|9080|v1|${REVIEWS}`, 80],
      [`outbound|9080|v3|${REVIEWS}`, 20],
    ]);
    assert.equal(action.retryPolicy?.numRetries, 2);
    assert.deepEqual(action.retryPolicy?.retriableStatusCodes, [503]);
    assert.equal(action.retryPolicy?.hostSelectionRetryMaxAttempts, 5n);
    assert.deepEqual([action.timeout?.seconds, action.timeout?.nanos], [1n, 500_000_000]);
    assert.ok(equals(HTTPFaultSchema, typed(HTTPFaultSchema, last.typedPerFilterConfig['envoy.filters.http.fault']), httpFault()));
  });

  test('Cluster (EDS) with circuit breakers, outlier detection, health checks and an UpstreamTlsContext', () => {
    const back = roundTrip(ClusterSchema, edsCluster(), TypeUrl.Cluster);
    assert.equal(back.clusterDiscoveryType.case, 'type');
    assert.equal(back.clusterDiscoveryType.value, Cluster_DiscoveryType.EDS);
    assert.equal(back.circuitBreakers?.thresholds[0]?.maxRequests, 4294967295);
    assert.equal(back.outlierDetection?.consecutive5xx, 5);
    assert.equal(back.transportSocket?.name, 'envoy.transport_sockets.tls');
    const tls = typed(UpstreamTlsContextSchema, back.transportSocket?.configType.value);
    assert.ok(equals(UpstreamTlsContextSchema, tls, upstreamTls()));
    assert.equal(tls.commonTlsContext?.validationContextType.case, 'combinedValidationContext');
    const opts = typed(UpstreamHttpProtocolOptionsSchema, back.typedExtensionProtocolOptions['envoy.extensions.upstreams.http.v3.HttpProtocolOptions']);
    assert.equal(opts.upstreamProtocolOptions.case, 'explicitHttpConfig');
  });

  test('ClusterLoadAssignment with localities, priorities, weights and health', () => {
    const back = roundTrip(ClusterLoadAssignmentSchema, clusterLoadAssignment(), TypeUrl.ClusterLoadAssignment);
    assert.deepEqual(back.endpoints.map((l) => [l.locality?.zone, l.priority, l.loadBalancingWeight]), [
      ['us-east1-b', 0, 3],
      ['us-east1-c', 1, 1],
    ]);
    assert.deepEqual(back.endpoints.flatMap((l) => l.lbEndpoints.map((e) => e.healthStatus)), [
      HealthStatus.HEALTHY,
      HealthStatus.DRAINING,
      HealthStatus.HEALTHY,
      HealthStatus.UNHEALTHY,
    ]);
    assert.deepEqual(back.endpoints[0]?.lbEndpoints[0]?.metadata?.filterMetadata['envoy.transport_socket_match'], { tlsMode: 'istio' });
  });

  test('Secrets: tls_certificate and validation_context', () => {
    const cert = roundTrip(SecretSchema, certSecret(), TypeUrl.Secret);
    assert.equal(cert.type.case, 'tlsCertificate');
    const chain = cert.type.case === 'tlsCertificate' ? cert.type.value.certificateChain?.specifier : undefined;
    assert.equal(chain?.case, 'inlineBytes');
    assert.equal(new TextDecoder().decode(chain?.value as Uint8Array), CERT_PEM);
    const root = roundTrip(SecretSchema, rootSecret(), TypeUrl.Secret);
    assert.equal(root.type.case, 'validationContext');
  });

  test('DiscoveryRequest / DiscoveryResponse (SotW) with resources in Any', () => {
    const req = make(DiscoveryRequestSchema, {
      versionInfo: '2024-06-01T10:00:00Z/3',
      node: node(),
      resourceNames: [`outbound|9080|v1|${REVIEWS}`],
      typeUrl: TypeUrl.ClusterLoadAssignment,
      responseNonce: 'n-17',
      errorDetail: { code: 3, message: 'envoy.config.cluster.v3.Cluster rejected: unknown field' },
    });
    const backReq = roundTrip(DiscoveryRequestSchema, req);
    assert.deepEqual(backReq.node?.metadata, node().metadata);

    const resources = [edsCluster(), make(ClusterSchema, { name: 'BlackHoleCluster', clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STATIC }, connectTimeout: dur(10_000) })];
    const res = make(DiscoveryResponseSchema, {
      versionInfo: '2024-06-01T10:00:00Z/4',
      typeUrl: TypeUrl.Cluster,
      nonce: 'n-18',
      resources: resources.map((c) => pack(ClusterSchema, c)),
      controlPlane: { identifier: 'weft-control-plane-0' },
    });
    const backRes = roundTrip(DiscoveryResponseSchema, res);
    assert.equal(backRes.resources.length, 2);
    backRes.resources.forEach((a, i) => {
      assert.equal(a.typeUrl, TypeUrl.Cluster);
      const u = unpackAny(a);
      assert.equal(u.typeName, 'envoy.config.cluster.v3.Cluster');
      assert.ok(equals(ClusterSchema, u.message as Cluster, resources[i]!));
    });
  });

  test('DeltaDiscoveryRequest / DeltaDiscoveryResponse with resources in Any', () => {
    const req = make(DeltaDiscoveryRequestSchema, {
      node: node(),
      typeUrl: TypeUrl.ClusterLoadAssignment,
      resourceNamesSubscribe: [`outbound|9080|v1|${REVIEWS}`, `outbound|9080|v2|${REVIEWS}`],
      resourceNamesUnsubscribe: [`outbound|9080|v4|${REVIEWS}`],
      initialResourceVersions: { [`outbound|9080|v1|${REVIEWS}`]: 'a1b2c3' },
      responseNonce: 'd-3',
    });
    const backReq = roundTrip(DeltaDiscoveryRequestSchema, req);
    assert.deepEqual(backReq.initialResourceVersions, { [`outbound|9080|v1|${REVIEWS}`]: 'a1b2c3' });

    const cla = clusterLoadAssignment();
    const res = make(DeltaDiscoveryResponseSchema, {
      systemVersionInfo: '7',
      typeUrl: TypeUrl.ClusterLoadAssignment,
      nonce: 'd-4',
      resources: [{ name: cla.clusterName, version: 'f00d', resource: pack(ClusterLoadAssignmentSchema, cla), ttl: dur(30_000), aliases: [] }],
      removedResources: [`outbound|9080|v4|${REVIEWS}`],
    });
    const backRes = roundTrip(DeltaDiscoveryResponseSchema, res);
    assert.deepEqual(backRes.removedResources, [`outbound|9080|v4|${REVIEWS}`]);
    const inner = backRes.resources[0]?.resource;
    assert.ok(equals(ClusterLoadAssignmentSchema, typed(ClusterLoadAssignmentSchema, inner), cla));
  });
});

describe('xDS extension configs: Any + binary round trip', () => {
  test('network rbac (ALLOW by SPIFFE principal and port)', () => {
    const m = make(NetworkRbacSchema, {
      statPrefix: 'tcp.',
      rules: {
        action: RBAC_Action.ALLOW,
        policies: {
          'ns[default]-policy[allow-productpage]-rule[0]': {
            permissions: [{ rule: { case: 'destinationPort', value: 6379 } }],
            principals: [
              {
                identifier: {
                  case: 'authenticated',
                  value: { principalName: { matchPattern: { case: 'exact', value: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage' } } },
                },
              },
            ],
          },
        },
      },
    });
    const back = roundTrip(NetworkRbacSchema, m);
    assert.equal(back.rules?.policies['ns[default]-policy[allow-productpage]-rule[0]']?.permissions[0]?.rule.case, 'destinationPort');
  });

  test('tcp_proxy with weighted clusters and a file access log', () => {
    const m = make(TcpProxySchema, {
      statPrefix: `outbound|3306||mysql.default.svc.cluster.local`,
      clusterSpecifier: {
        case: 'weightedClusters',
        value: {
          clusters: [
            { name: 'outbound|3306|v1|mysql.default.svc.cluster.local', weight: 9 },
            { name: 'outbound|3306|v2|mysql.default.svc.cluster.local', weight: 1 },
          ],
        },
      },
      idleTimeout: dur(3_600_000),
      maxConnectAttempts: 2,
      accessLog: [
        {
          name: 'envoy.access_loggers.file',
          configType: {
            case: 'typedConfig',
            value: pack(FileAccessLogSchema, {
              path: '/dev/stdout',
              accessLogFormat: { case: 'logFormat', value: { format: { case: 'jsonFormat', value: { start_time: '%START_TIME%', upstream_host: '%UPSTREAM_HOST%', bytes_sent: '%BYTES_SENT%' } } } },
            }),
          },
        },
      ],
    });
    const back = roundTrip(TcpProxySchema, m);
    assert.equal(back.clusterSpecifier.case, 'weightedClusters');
    assert.deepEqual(back.clusterSpecifier.value?.clusters.map((c) => c.weight), [9, 1]);
    const log = typed(FileAccessLogSchema, back.accessLog[0]?.configType.value);
    assert.equal(log.accessLogFormat.case, 'logFormat');
  });

  test('redis_proxy with prefix routes', () => {
    const m = make(RedisProxySchema, {
      statPrefix: 'outbound|6379||redis.default.svc.cluster.local',
      settings: { opTimeout: dur(5000), enableRedirection: true, enableHashtagging: true, bufferFlushTimeout: dur(3) },
      latencyInMicros: true,
      prefixRoutes: {
        caseInsensitive: true,
        routes: [{ prefix: 'session:', removePrefix: false, cluster: 'outbound|6379||redis-sessions.default.svc.cluster.local' }],
        catchAllRoute: { cluster: 'outbound|6379||redis.default.svc.cluster.local' },
      },
    });
    roundTrip(RedisProxySchema, m);
  });

  test('ext_authz: HTTP filter (HTTP service) and network filter (gRPC service)', () => {
    const http = make(HttpExtAuthzSchema, {
      transportApiVersion: ApiVersion.V3,
      services: {
        case: 'httpService',
        value: {
          serverUri: { uri: 'http://ext-authz.foo.svc.cluster.local:8000', httpUpstreamType: { case: 'cluster', value: 'outbound|8000||ext-authz.foo.svc.cluster.local' }, timeout: dur(600_000) },
          pathPrefix: '/check',
          authorizationRequest: { allowedHeaders: { patterns: [{ matchPattern: { case: 'exact', value: 'x-ext-authz' } }] } },
        },
      },
      failureModeAllow: false,
      statusOnError: { code: StatusCode.Forbidden },
      withRequestBody: { maxRequestBytes: 8192, allowPartialMessage: true },
    });
    const backHttp = roundTrip(HttpExtAuthzSchema, http);
    assert.equal(backHttp.services.case, 'httpService');
    const net = make(NetworkExtAuthzSchema, {
      statPrefix: 'tcp.ext_authz',
      transportApiVersion: ApiVersion.V3,
      grpcService: { targetSpecifier: { case: 'envoyGrpc', value: { clusterName: 'outbound|9000||ext-authz-grpc.foo.svc.cluster.local' } }, timeout: dur(200) },
      includePeerCertificate: true,
    });
    roundTrip(NetworkExtAuthzSchema, net);
  });

  test('ratelimit and local_ratelimit (HTTP and network)', () => {
    roundTrip(
      RateLimitSchema,
      make(RateLimitSchema, {
        domain: 'weft',
        requestType: 'both',
        timeout: dur(100),
        failureModeDeny: false,
        enableXRatelimitHeaders: RateLimit_XRateLimitHeadersRFCVersion.DRAFT_VERSION_03,
        rateLimitService: {
          transportApiVersion: ApiVersion.V3,
          grpcService: { targetSpecifier: { case: 'envoyGrpc', value: { clusterName: 'outbound|8081||ratelimit.default.svc.cluster.local' } } },
        },
      }),
    );
    roundTrip(
      HttpLocalRateLimitSchema,
      make(HttpLocalRateLimitSchema, {
        statPrefix: 'http_local_rate_limiter',
        tokenBucket: { maxTokens: 100, tokensPerFill: 100, fillInterval: dur(1000) },
        filterEnabled: { runtimeKey: 'local_rate_limit_enabled', defaultValue: percent(100) },
        filterEnforced: { runtimeKey: 'local_rate_limit_enforced', defaultValue: percent(100) },
        responseHeadersToAdd: [{ header: { key: 'x-local-rate-limit', value: 'true' }, appendAction: HeaderValueOption_HeaderAppendAction.OVERWRITE_IF_EXISTS_OR_ADD }],
      }),
    );
    roundTrip(
      NetworkLocalRateLimitSchema,
      make(NetworkLocalRateLimitSchema, { statPrefix: 'tcp_local_rate_limiter', tokenBucket: { maxTokens: 10, tokensPerFill: 5, fillInterval: dur(500) } }),
    );
  });

  test('jwt_authn with a remote JWKS provider and requirement rules', () => {
    const m = make(JwtAuthenticationSchema, {
      providers: {
        'origins-0': {
          issuer: 'testing@secure.istio.io',
          audiences: ['bookinfo'],
          jwksSourceSpecifier: {
            case: 'remoteJwks',
            value: {
              httpUri: { uri: 'https://auth.example.com/.well-known/jwks.json', httpUpstreamType: { case: 'cluster', value: 'outbound|443||auth.example.com' }, timeout: dur(5000) },
              cacheDuration: dur(300_000),
            },
          },
          forward: true,
          fromHeaders: [{ name: 'Authorization', valuePrefix: 'Bearer ' }],
          fromParams: ['access_token'],
          payloadInMetadata: 'testing@secure.istio.io',
          claimToHeaders: [{ headerName: 'x-jwt-sub', claimName: 'sub' }],
        },
      },
      rules: [
        {
          match: { pathSpecifier: { case: 'prefix', value: '/' } },
          requirementType: {
            case: 'requires',
            value: {
              requiresType: {
                case: 'requiresAny',
                value: { requirements: [{ requiresType: { case: 'providerName', value: 'origins-0' } }, { requiresType: { case: 'allowMissing', value: create(EmptySchema) } }] },
              },
            },
          },
        },
      ],
      bypassCorsPreflight: true,
    });
    const back = roundTrip(JwtAuthenticationSchema, m);
    assert.equal(back.providers['origins-0']?.jwksSourceSpecifier.case, 'remoteJwks');
  });

  test('wasm with a StringValue configuration in Any', () => {
    const m = make(WasmSchema, {
      config: {
        name: 'weft.stats',
        rootId: 'stats_outbound',
        vm: {
          case: 'vmConfig',
          value: {
            vmId: 'stats_outbound',
            runtime: 'envoy.wasm.runtime.v8',
            code: { specifier: { case: 'local', value: { specifier: { case: 'filename', value: '/etc/weft/extensions/stats.wasm' } } } },
            allowPrecompiled: true,
          },
        },
        configuration: pack(StringValueSchema, { value: '{"debug":"false","stat_prefix":"istio"}' }),
        failOpen: true,
      },
    });
    const back = roundTrip(WasmSchema, m);
    const conf = unpackAny(back.config!.configuration!);
    assert.equal(conf.typeName, 'google.protobuf.StringValue');
  });

  test('health_check HTTP filter', () => {
    roundTrip(
      HealthCheckFilterSchema,
      make(HealthCheckFilterSchema, {
        passThroughMode: false,
        cacheTime: dur(2500),
        headers: [{ name: ':path', headerMatchSpecifier: { case: 'stringMatch', value: { matchPattern: { case: 'exact', value: '/healthz/ready' } } } }],
        clusterMinHealthyPercentages: { [`outbound|9080|v1|${REVIEWS}`]: { value: 25 } },
      }),
    );
  });

  test('access loggers: file (text format) and stdout (JSON format)', () => {
    roundTrip(
      FileAccessLogSchema,
      make(FileAccessLogSchema, { path: '/var/log/weft/access.log', accessLogFormat: { case: 'logFormat', value: { format: { case: 'textFormat', value: '%START_TIME% %RESPONSE_CODE%\n' } } } }),
    );
    roundTrip(
      StdoutAccessLogSchema,
      make(StdoutAccessLogSchema, {
        accessLogFormat: { case: 'logFormat', value: { format: { case: 'jsonFormat', value: { code: '%RESPONSE_CODE%', flags: '%RESPONSE_FLAGS%', duration: '%DURATION%' } }, omitEmptyValues: true } },
      }),
    );
  });

  test('tracers: zipkin and opentelemetry', () => {
    roundTrip(
      ZipkinConfigSchema,
      make(ZipkinConfigSchema, { collectorCluster: 'outbound|9411||zipkin.istio-system.svc.cluster.local', collectorEndpoint: '/api/v2/spans', collectorEndpointVersion: ZipkinConfig_CollectorEndpointVersion.HTTP_JSON, traceId128bit: true }),
    );
    roundTrip(
      OpenTelemetryConfigSchema,
      make(OpenTelemetryConfigSchema, {
        serviceName: 'reviews.default',
        grpcService: { targetSpecifier: { case: 'envoyGrpc', value: { clusterName: 'outbound|4317||otel-collector.observability.svc.cluster.local', authority: 'otel-collector.observability.svc.cluster.local' } }, timeout: dur(250) },
      }),
    );
  });

  test('DownstreamTlsContext (inbound mTLS) and the tls_inspector listener filter', () => {
    roundTrip(
      DownstreamTlsContextSchema,
      make(DownstreamTlsContextSchema, {
        requireClientCertificate: true,
        commonTlsContext: {
          alpnProtocols: ['h2', 'http/1.1'],
          tlsCertificateSdsSecretConfigs: [{ name: 'default', sdsConfig: ads() }],
          validationContextType: { case: 'validationContextSdsSecretConfig', value: { name: 'ROOTCA', sdsConfig: ads() } },
        },
      }),
    );
    // An empty message still packs to a valid Any with its type URL (and an empty value).
    const any = pack(TlsInspectorSchema, {});
    assert.equal(any.typeUrl, 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector');
    assert.ok(equals(TlsInspectorSchema, unpack(TlsInspectorSchema, decode(AnySchema, encode(AnySchema, any))), make(TlsInspectorSchema)));
  });
});

describe('codec helpers', () => {
  test('TypeUrl constants name registered messages and typeNameOf strips the prefix', () => {
    for (const [kind, url] of Object.entries(TypeUrl)) {
      assert.ok(url.startsWith(TYPE_URL_PREFIX), `${kind}: ${url}`);
      const name = typeNameOf(url);
      assert.ok(name.endsWith(`.${kind}`), `${kind}: ${name}`);
      if (kind === 'Runtime') continue; // envoy.service.runtime.v3 (RTDS) is not generated: Weft serves no runtime layer
      assert.ok(registry.getMessage(name), `${name} is in the registry`);
    }
    assert.equal(typeNameOf('envoy.config.cluster.v3.Cluster'), 'envoy.config.cluster.v3.Cluster');
  });

  test('pack accepts an init object as well as a message, with identical bytes', () => {
    const init = { name: 'c', connectTimeout: dur(250) };
    const a = pack(ClusterSchema, init);
    const b = pack(ClusterSchema, make(ClusterSchema, init));
    assert.deepEqual(a.value, b.value);
    assert.equal(a.typeUrl, TypeUrl.Cluster);
  });

  test('unpack refuses an Any of another type; unpackAny refuses unknown types', () => {
    const any = pack(ClusterSchema, edsCluster());
    assert.throws(() => unpack(ListenerSchema, any), /expected type\.googleapis\.com\/envoy\.config\.listener\.v3\.Listener, got type\.googleapis\.com\/envoy\.config\.cluster\.v3\.Cluster/);
    assert.throws(() => unpack(ListenerSchema, create(AnySchema)), /empty type_url/);
    assert.throws(() => unpackAny(create(AnySchema, { typeUrl: 'type.googleapis.com/weft.NoSuchThing', value: new Uint8Array() })), /unknown type/);
  });

  test('equals sees a change deep inside a nested Any (so the round-trip assertions can fail)', () => {
    const a = listener();
    const changed = hcm();
    changed.httpFilters.reverse();
    const b = listener();
    b.filterChains[0]!.filters[0]!.configType = { case: 'typedConfig', value: pack(HttpConnectionManagerSchema, changed) };
    assert.equal(equals(ListenerSchema, a, b), false);
    assert.equal(equals(ListenerSchema, a, listener()), true);
  });

  test('decode rejects bytes that are not a valid message', () => {
    assert.throws(() => decode(ClusterSchema, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
  });

  test('fromProtoJson rejects unknown fields and accepts the snake_case proto names', () => {
    assert.throws(() => fromProtoJson(ClusterSchema, { name: 'x', connectTimeoutt: '1s' }), /connectTimeoutt/);
    const c = fromProtoJson(ClusterSchema, { name: 'x', connect_timeout: '1.5s', lb_policy: 'MAGLEV' });
    assert.equal(c.lbPolicy, Cluster_LbPolicy.MAGLEV);
    assert.deepEqual([c.connectTimeout?.seconds, c.connectTimeout?.nanos], [1n, 500_000_000]);
  });
});

describe('proto3 canonical JSON (config_dump form)', () => {
  test('Cluster: lowerCamelCase names, enums by name, durations, wrappers, uint64 as strings, defaults omitted', () => {
    const c = make(ClusterSchema, {
      name: 'outbound|6379||redis.default.svc.cluster.local',
      clusterDiscoveryType: { case: 'type', value: Cluster_DiscoveryType.STRICT_DNS },
      connectTimeout: dur(1500),
      lbPolicy: Cluster_LbPolicy.RING_HASH,
      lbConfig: { case: 'ringHashLbConfig', value: { minimumRingSize: 1024n, maximumRingSize: 8388608n } },
      perConnectionBufferLimitBytes: 32768,
      respectDnsTtl: false, // default: omitted
      circuitBreakers: { thresholds: [{ maxConnections: 1024, maxRetries: 3 }] },
      outlierDetection: { consecutive5xx: 7, interval: dur(10_000), baseEjectionTime: dur(250) },
    });
    const json = toProtoJson(ClusterSchema, c);
    assert.deepEqual(json, {
      name: 'outbound|6379||redis.default.svc.cluster.local',
      type: 'STRICT_DNS',
      connectTimeout: '1.500s',
      perConnectionBufferLimitBytes: 32768,
      lbPolicy: 'RING_HASH',
      circuitBreakers: { thresholds: [{ maxConnections: 1024, maxRetries: 3 }] },
      outlierDetection: { consecutive5xx: 7, interval: '10s', baseEjectionTime: '0.250s' },
      ringHashLbConfig: { minimumRingSize: '1024', maximumRingSize: '8388608' },
    });
    assert.ok(equals(ClusterSchema, fromProtoJson(ClusterSchema, json), c));
  });

  test('Listener: nested Any expanded with "@type", oneofs by member name, default enum omitted', () => {
    const l = make(ListenerSchema, {
      name: 'virtualInbound',
      address: socketAddress('0.0.0.0', 15006),
      trafficDirection: TrafficDirection.INBOUND,
      filterChains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.tcp_proxy',
              configType: { case: 'typedConfig', value: pack(TcpProxySchema, { statPrefix: 'InboundPassthroughCluster', clusterSpecifier: { case: 'cluster', value: 'InboundPassthroughCluster' } }) },
            },
          ],
        },
      ],
    });
    const json = toProtoJson(ListenerSchema, l);
    assert.deepEqual(json, {
      name: 'virtualInbound',
      address: { socketAddress: { address: '0.0.0.0', portValue: 15006 } },
      filterChains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.tcp_proxy',
              typedConfig: {
                '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
                statPrefix: 'InboundPassthroughCluster',
                cluster: 'InboundPassthroughCluster',
              },
            },
          ],
        },
      ],
      trafficDirection: 'INBOUND',
    });
    assert.ok(equals(ListenerSchema, fromProtoJson(ListenerSchema, json), l));
  });

  test('ClusterStats (LRS): plain uint64 fields as strings; RouteConfiguration: int64 as string, bools, lists', () => {
    const stats = make(ClusterStatsSchema, {
      clusterName: `outbound|9080|v1|${REVIEWS}`,
      totalDroppedRequests: 18446744073709551615n,
      upstreamLocalityStats: [{ locality: { zone: 'z1' }, totalSuccessfulRequests: 9007199254740993n, totalErrorRequests: 0n, priority: 1 }],
      loadReportInterval: dur(10_000),
    });
    const json = toProtoJson(ClusterStatsSchema, stats);
    assert.deepEqual(json, {
      clusterName: `outbound|9080|v1|${REVIEWS}`,
      upstreamLocalityStats: [{ locality: { zone: 'z1' }, totalSuccessfulRequests: '9007199254740993', priority: 1 }],
      totalDroppedRequests: '18446744073709551615',
      loadReportInterval: '10s',
    });
    assert.ok(equals(ClusterStatsSchema, fromProtoJson(ClusterStatsSchema, json), stats));

    const rc = make(RouteConfigurationSchema, {
      name: '80',
      virtualHosts: [
        {
          name: 'ratings',
          domains: ['ratings', 'ratings:80'],
          routes: [
            {
              match: { pathSpecifier: { case: 'safeRegex', value: { regex: '^/ratings/[0-9]+$' } }, caseSensitive: false },
              action: {
                case: 'route',
                value: {
                  clusterSpecifier: { case: 'cluster', value: 'outbound|80||ratings.default.svc.cluster.local' },
                  retryPolicy: { retryOn: '5xx', numRetries: 3, hostSelectionRetryMaxAttempts: 5n, retriableStatusCodes: [502, 503] },
                },
              },
            },
          ],
        },
      ],
      validateClusters: false,
    });
    assert.deepEqual(toProtoJson(RouteConfigurationSchema, rc), {
      name: '80',
      virtualHosts: [
        {
          name: 'ratings',
          domains: ['ratings', 'ratings:80'],
          routes: [
            {
              match: { safeRegex: { regex: '^/ratings/[0-9]+$' }, caseSensitive: false },
              route: {
                cluster: 'outbound|80||ratings.default.svc.cluster.local',
                retryPolicy: { retryOn: '5xx', numRetries: 3, hostSelectionRetryMaxAttempts: '5', retriableStatusCodes: [502, 503] },
              },
            },
          ],
        },
      ],
      validateClusters: false,
    });
  });

  test('Secret: bytes as base64; DiscoveryResponse: every resource an expanded Any', () => {
    const s = make(SecretSchema, { name: 'default', type: { case: 'tlsCertificate', value: { certificateChain: { specifier: { case: 'inlineBytes', value: new TextEncoder().encode('PEM') } } } } });
    assert.deepEqual(toProtoJson(SecretSchema, s), { name: 'default', tlsCertificate: { certificateChain: { inlineBytes: 'UEVN' } } });

    const r = make(DiscoveryResponseSchema, {
      versionInfo: '1',
      typeUrl: TypeUrl.Secret,
      nonce: 'a',
      resources: [pack(SecretSchema, s)],
    });
    const json = toProtoJson(DiscoveryResponseSchema, r);
    assert.deepEqual(json, {
      versionInfo: '1',
      resources: [{ '@type': TypeUrl.Secret, name: 'default', tlsCertificate: { certificateChain: { inlineBytes: 'UEVN' } } }],
      typeUrl: TypeUrl.Secret,
      nonce: 'a',
    });
    assert.ok(equals(DiscoveryResponseSchema, fromProtoJson(DiscoveryResponseSchema, json), r));
  });

  test('JSON round trip of every realistic resource', () => {
    const cases: Array<[DescMessage, MessageShape<DescMessage>]> = [
      [ListenerSchema, listener()],
      [RouteConfigurationSchema, routeConfiguration()],
      [ClusterSchema, edsCluster()],
      [ClusterLoadAssignmentSchema, clusterLoadAssignment()],
      [SecretSchema, certSecret()],
      [SecretSchema, rootSecret()],
    ];
    for (const [schema, msg] of cases) {
      const json = toProtoJson(schema, msg);
      const text = JSON.stringify(json);
      // Canonical JSON uses the lowerCamelCase JSON names, never the proto's snake_case field names.
      assert.doesNotMatch(text, /"[a-z0-9]+_[a-z0-9_]+"\s*:/, `${schema.typeName}: a snake_case key in ${text.slice(0, 200)}`);
      const back = fromProtoJson(schema, JSON.parse(text) as JsonValue);
      assert.ok(equals(schema, back, msg), schema.typeName);
      assert.deepEqual(toBinary(schema, back), toBinary(schema, msg));
    }
  });
});

describe('generated packages (scripts/gen-xds.mjs)', () => {
  // One message of each package the foundation issue lists, by full name.
  const expected: Record<string, string> = {
    'envoy.config.listener.v3': 'envoy.config.listener.v3.Listener',
    'envoy.config.route.v3': 'envoy.config.route.v3.RouteConfiguration',
    'envoy.config.cluster.v3': 'envoy.config.cluster.v3.Cluster',
    'envoy.config.endpoint.v3': 'envoy.config.endpoint.v3.ClusterLoadAssignment',
    'envoy.config.core.v3': 'envoy.config.core.v3.Node',
    'envoy.service.discovery.v3': 'envoy.service.discovery.v3.DeltaDiscoveryResponse',
    'envoy.service.secret.v3': 'envoy.service.secret.v3.SdsDummy',
    'envoy.extensions.transport_sockets.tls.v3': 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
    http_connection_manager: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    router: 'envoy.extensions.filters.http.router.v3.Router',
    fault: 'envoy.extensions.filters.http.fault.v3.HTTPFault',
    'rbac (http)': 'envoy.extensions.filters.http.rbac.v3.RBAC',
    'rbac (network)': 'envoy.extensions.filters.network.rbac.v3.RBAC',
    'rbac (config)': 'envoy.config.rbac.v3.RBAC',
    tcp_proxy: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
    redis_proxy: 'envoy.extensions.filters.network.redis_proxy.v3.RedisProxy',
    'ext_authz (http)': 'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
    'ext_authz (network)': 'envoy.extensions.filters.network.ext_authz.v3.ExtAuthz',
    'ext_authz (service)': 'envoy.service.auth.v3.CheckRequest',
    ratelimit: 'envoy.extensions.filters.http.ratelimit.v3.RateLimit',
    'ratelimit (service)': 'envoy.service.ratelimit.v3.RateLimitRequest',
    'local_ratelimit (http)': 'envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit',
    'local_ratelimit (network)': 'envoy.extensions.filters.network.local_ratelimit.v3.LocalRateLimit',
    jwt_authn: 'envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication',
    wasm: 'envoy.extensions.filters.http.wasm.v3.Wasm',
    'wasm (plugin)': 'envoy.extensions.wasm.v3.PluginConfig',
    'health_check (filter)': 'envoy.extensions.filters.http.health_check.v3.HealthCheck',
    'health_check (active)': 'envoy.config.core.v3.HealthCheck',
    'access log': 'envoy.config.accesslog.v3.AccessLog',
    'access logger (file)': 'envoy.extensions.access_loggers.file.v3.FileAccessLog',
    'access logger (stdout)': 'envoy.extensions.access_loggers.stream.v3.StdoutAccessLog',
    'access logger (stderr)': 'envoy.extensions.access_loggers.stream.v3.StderrAccessLog',
    'tracer (http)': 'envoy.config.trace.v3.Tracing',
    'tracer (zipkin)': 'envoy.config.trace.v3.ZipkinConfig',
    'tracer (opentelemetry)': 'envoy.config.trace.v3.OpenTelemetryConfig',
  };
  for (const [pkg, fullName] of Object.entries(expected)) {
    test(`${pkg}: ${fullName}`, () => {
      const desc = registry.getMessage(fullName);
      assert.ok(desc, `${fullName} is not in the generated registry; add its package to scripts/gen-xds.mjs paths`);
      assert.equal(desc.typeName, fullName);
      assert.ok(desc.fields.length > 0 || fullName.endsWith('SdsDummy'), `${fullName} has fields`);
    });
  }

  test('the ADS and SDS services are generated with their streaming methods', () => {
    const adsSvc = registry.getService('envoy.service.discovery.v3.AggregatedDiscoveryService');
    assert.ok(adsSvc, 'AggregatedDiscoveryService');
    const methods = Object.fromEntries(adsSvc.methods.map((m) => [m.name, m.methodKind]));
    assert.deepEqual(methods, { StreamAggregatedResources: 'bidi_streaming', DeltaAggregatedResources: 'bidi_streaming' });
    const sds = registry.getService('envoy.service.secret.v3.SecretDiscoveryService');
    assert.ok(sds, 'SecretDiscoveryService');
    assert.deepEqual(sds.methods.map((m) => m.name).sort(), ['DeltaSecrets', 'FetchSecrets', 'StreamSecrets']);
  });
});
