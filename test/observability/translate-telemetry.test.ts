// Telemetry translation: MeshConfig settings and Telemetry resources (mesh, namespace, workload levels; CLIENT /
// SERVER modes) into the HCM `tracing` and `access_log` fields and tcp_proxy access logs, in Istio's shape, from
// real YAML through the model and the control plane's translation; and the Telemetry schema's errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/api/build.js';
import { parseConfigText } from '../../src/api/source.js';
import { unpack } from '../../src/xds/index.js';
import { HttpConnectionManagerSchema, type HttpConnectionManager } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { ZipkinConfigSchema } from '../../src/xds/gen/envoy/config/trace/v3/zipkin_pb.js';
import { OpenTelemetryConfigSchema } from '../../src/xds/gen/envoy/config/trace/v3/opentelemetry_pb.js';
import { FileAccessLogSchema } from '../../src/xds/gen/envoy/extensions/access_loggers/file/v3/file_pb.js';
import type { ProxyResources } from '../../src/controlplane/translate/index.js';
import { ISTIO_TEXT_FORMAT } from '../../src/controlplane/translate/telemetry.js';
import { translateYaml } from '../helpers/translate.js';

const SERVICES = `apiVersion: v1
kind: Service
metadata: {name: zipkin, namespace: tracing}
spec: {ports: [{name: http, port: 9411}]}
---
apiVersion: v1
kind: Service
metadata: {name: otel, namespace: tracing}
spec: {ports: [{name: http, port: 4318}]}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec: {ports: [{name: tcp, port: 5432}]}
---
apiVersion: weft.dev/v1alpha1
kind: MeshConfig
metadata: {name: mesh}
spec:
  tracing: {sampling: 5}
  extensionProviders:
  - {name: zipkin, zipkin: {service: zipkin.tracing.svc.cluster.local, port: 9411}}
  - {name: otel, opentelemetry: {service: tracing/otel.tracing.svc.cluster.local, port: 4318, http: {path: /v1/traces, timeout: 2s}}}
  - {name: otel-grpc, opentelemetry: {service: otel.tracing.svc.cluster.local, port: 4318}}
  - {name: json-file, envoyFileAccessLog: {path: /tmp/x.log, logFormat: {labels: {code: "%RESPONSE_CODE%"}}}}
`;

function translate(extra: string, labels: Record<string, string> = { app: 'web', version: 'v2' }): ProxyResources {
  return translateYaml(SERVICES + '---\n' + extra, 't.yaml', {
    id: 'web-1',
    metadata: { NAMESPACE: 'default', LABELS: labels, WEFT_MODE: 'explicit', WEFT_OUTBOUND_PORT: 15001, WEFT_INBOUND: [{ port: 8080, targetPort: 18080, protocol: 'http' }], WEFT_UPSTREAMS: [{ host: 'db', port: 5432, localPort: 15432 }] } as never,
  });
}

function hcmOf(r: ProxyResources, listener: string): HttpConnectionManager {
  const l = r.listeners.find((x) => x.name === listener)!;
  const f = l.filterChains[0]!.filters[0]!;
  return unpack(HttpConnectionManagerSchema, f.configType.value as never);
}

describe('telemetry translation', () => {
  test('nothing configured: no tracing, no access logs (Istio defaults)', () => {
    const r = translate('');
    assert.equal(hcmOf(r, 'outbound').tracing, undefined);
    assert.equal(hcmOf(r, 'outbound').accessLog.length, 0);
  });

  test('MeshConfig defaultProviders and accessLogFile: Zipkin tracing in Istio\'s shape, a file log with Istio\'s format', () => {
    const y = SERVICES.replace('  tracing: {sampling: 5}', '  tracing: {sampling: 5}\n  accessLogFile: /dev/stdout\n  defaultProviders: {tracing: [zipkin]}');
    const res = translateYaml(y, 't.yaml', { id: 'web-1', metadata: { NAMESPACE: 'default', LABELS: { app: 'web' }, WEFT_MODE: 'explicit', WEFT_OUTBOUND_PORT: 15001, WEFT_INBOUND: [{ port: 8080, targetPort: 18080, protocol: 'http' }], WEFT_UPSTREAMS: [{ host: 'db', port: 5432, localPort: 15432 }] } as never });
    const out = hcmOf(res, 'outbound');
    const t = out.tracing!;
    assert.equal(t.randomSampling?.value, 5);
    assert.equal(t.clientSampling?.value, 100);
    assert.equal(t.overallSampling?.value, 100);
    assert.equal(t.provider?.name, 'envoy.tracers.zipkin');
    const z = unpack(ZipkinConfigSchema, t.provider!.configType.value as never);
    assert.equal(z.collectorCluster, 'outbound|9411||zipkin.tracing.svc.cluster.local');
    assert.equal(z.collectorEndpoint, '/api/v2/spans');
    assert.equal(z.collectorHostname, 'zipkin.tracing.svc.cluster.local');
    assert.equal(z.traceId128bit, true);
    assert.deepEqual(
      t.customTags.map((c) => [c.tag, c.type.case === 'literal' ? c.type.value.value : '']),
      [['istio.canonical_revision', 'latest'], ['istio.canonical_service', 'web'], ['istio.cluster_id', 'Kubernetes'], ['istio.mesh_id', 'cluster.local'], ['istio.namespace', 'default']],
    );
    const log = unpack(FileAccessLogSchema, out.accessLog[0]!.configType.value as never);
    assert.equal(out.accessLog[0]!.name, 'envoy.access_loggers.file');
    assert.equal(log.path, '/dev/stdout');
    const fmt = log.accessLogFormat.case === 'logFormat' ? log.accessLogFormat.value.format : undefined;
    assert.equal(fmt?.case === 'textFormatSource' && fmt.value.specifier.case === 'inlineString' ? fmt.value.specifier.value : '', ISTIO_TEXT_FORMAT);
    // The inbound HCM and the TCP upstream listener log too.
    assert.equal(hcmOf(res, 'inbound|8080').accessLog.length, 1);
    const tcp = unpack(TcpProxySchema, res.listeners.find((l) => l.name === '127.0.0.1_15432')!.filterChains[0]!.filters[0]!.configType.value as never);
    assert.equal(tcp.accessLog.length, 1);
  });

  test('Telemetry levels: mesh, then namespace, then the workload selector; modes pick the side', () => {
    const r = translate(`apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh, namespace: weft-system}
spec:
  tracing: [{providers: [{name: zipkin}], randomSamplingPercentage: 10}]
  accessLogging: [{providers: [{name: envoy}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: ns, namespace: default}
spec:
  tracing: [{randomSamplingPercentage: 50, customTags: {team: {literal: {value: blue}}}}]
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: web, namespace: default}
spec:
  selector: {matchLabels: {app: web}}
  tracing:
  - match: {mode: SERVER}
    providers: [{name: otel}]
    customTags: {user: {header: {name: x-user, defaultValue: anon}}}
  accessLogging:
  - match: {mode: CLIENT}
    disabled: true
`);
    const out = hcmOf(r, 'outbound');
    const inb = hcmOf(r, 'inbound|8080');
    assert.equal(out.tracing?.provider?.name, 'envoy.tracers.zipkin', 'CLIENT keeps the mesh provider');
    assert.equal(out.tracing?.randomSampling?.value, 50, 'the namespace overrides the mesh');
    assert.ok(out.tracing?.customTags.some((c) => c.tag === 'team'));
    assert.ok(!out.tracing?.customTags.some((c) => c.tag === 'user'));
    assert.equal(inb.tracing?.provider?.name, 'envoy.tracers.opentelemetry', 'SERVER gets the workload provider');
    const o = unpack(OpenTelemetryConfigSchema, inb.tracing!.provider!.configType.value as never);
    assert.equal(o.httpService?.httpUri?.uri, 'http://otel.tracing.svc.cluster.local:4318/v1/traces');
    assert.equal(o.httpService?.httpUri?.httpUpstreamType.value, 'outbound|4318||otel.tracing.svc.cluster.local');
    assert.equal(o.serviceName, 'web.default');
    const user = inb.tracing!.customTags.find((c) => c.tag === 'user')!;
    assert.equal(user.type.case, 'requestHeader');
    assert.equal(out.accessLog.length, 0, 'CLIENT logging disabled by the workload');
    assert.equal(inb.accessLog.length, 1, 'SERVER logging from the mesh');
    // Another workload in the namespace: no workload-level override.
    const other = translate('---\n' + 'apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh, namespace: weft-system}\nspec:\n  accessLogging: [{providers: [{name: json-file}]}]\n', { app: 'api' });
    const log = unpack(FileAccessLogSchema, hcmOf(other, 'outbound').accessLog[0]!.configType.value as never);
    assert.equal(log.path, '/tmp/x.log');
    assert.equal(log.accessLogFormat.case === 'logFormat' && log.accessLogFormat.value.format.case, 'jsonFormat');
  });

  test('an OpenTelemetry provider without http (OTLP/gRPC) is reported and leaves tracing off', () => {
    const r = translate('apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh, namespace: weft-system}\nspec:\n  tracing: [{providers: [{name: otel-grpc}]}]\n');
    assert.equal(hcmOf(r, 'outbound').tracing, undefined);
    assert.ok(r.errors.some((e) => /otel-grpc.*OTLP over gRPC/.test(e.message)), JSON.stringify(r.errors));
  });

  test('a filter becomes a status_code_filter; unsupported expressions and unknown fields are errors with positions', () => {
    const r = translate('apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh, namespace: weft-system}\nspec:\n  accessLogging: [{filter: {expression: "response.code > 499"}}]\n');
    const f = hcmOf(r, 'outbound').accessLog[0]!.filter!;
    assert.equal(f.filterSpecifier.case, 'statusCodeFilter');
    assert.equal(f.filterSpecifier.case === 'statusCodeFilter' ? f.filterSpecifier.value.comparison?.value?.defaultValue : 0, 500);
    const bad = buildModel(
      parseConfigText('apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: t, namespace: default}\nspec:\n  accessLogging: [{filter: {expression: "request.path == \'/x\'"}}]\n  tracing: [{randomSamplingPercentage: 101, bogus: 1}]\n', 'bad.yaml').resources,
    );
    const msgs = bad.diagnostics.filter((d) => d.severity === 'Error').map((d) => d.message);
    assert.ok(msgs.some((m) => /unsupported filter/.test(m)), msgs.join('\n'));
    assert.ok(msgs.some((m) => /randomSamplingPercentage must be in \[0, 100\]/.test(m)), msgs.join('\n'));
    assert.ok(msgs.some((m) => /bogus/.test(m)), msgs.join('\n'));
    assert.equal(bad.model.telemetries.length, 0);
  });
});
