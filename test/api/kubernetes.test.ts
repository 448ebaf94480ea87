// Kubernetes v1 Service and Namespace: schema, translation into the model, and Istio's protocol selection.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { buildModel } from '../../src/api/build.js';
import type { BuildResult } from '../../src/api/build.js';
import type { Diagnostic } from '../../src/api/diagnostics.js';
import type { Service } from '../../src/api/model.js';
import { isHttpProtocol, parseProtocol, protocolOf } from '../../src/api/protocol.js';
import { parseConfigText } from '../../src/api/source.js';

const dir = fileURLToPath(new URL('../../../test/fixtures/kubernetes/', import.meta.url));

function build(text: string, file = 'test.yaml', domain?: string): BuildResult {
  const parsed = parseConfigText(text, file);
  assert.deepEqual(parsed.diagnostics, [], 'the YAML parses');
  return buildModel(parsed.resources, domain ? { domain } : {});
}

function fixture(name: string): BuildResult {
  return build(readFileSync(dir + name, 'utf8'), name);
}

function errors(r: BuildResult): Diagnostic[] {
  return r.diagnostics.filter((d) => d.severity === 'Error');
}

function service(r: BuildResult, hostname: string): Service {
  const s = r.model.services.find((x) => x.hostname === hostname);
  assert.ok(s, `service ${hostname} is in the model (have: ${r.model.services.map((x) => x.hostname).join(', ')})`);
  return s;
}

/** The one error of a build, checked for its path and 1-based line:column. */
function onlyError(r: BuildResult, path: string, line: number, column: number): Diagnostic {
  const errs = errors(r);
  assert.equal(errs.length, 1, `exactly one error, got: ${JSON.stringify(errs.map((e) => e.message))}`);
  const e = errs[0]!;
  assert.equal(e.path, path);
  assert.equal(e.pos?.line, line, `line of ${e.message}`);
  assert.equal(e.pos?.column, column, `column of ${e.message}`);
  return e;
}

describe('protocolOf (Istio protocol selection)', () => {
  const cases: Array<[string, Parameters<typeof protocolOf>[0], string, string]> = [
    ['name prefix http', { name: 'http', port: 80 }, 'HTTP', 'name'],
    ['name prefix with suffix', { name: 'http-web', port: 80 }, 'HTTP', 'name'],
    ['name prefix is case-insensitive', { name: 'GRPC-api', port: 80 }, 'GRPC', 'name'],
    ['grpc-web is recognised before cutting at "-"', { name: 'grpc-web', port: 80 }, 'GRPC-Web', 'name'],
    ['grpc-web with a suffix', { name: 'grpc-web-ui', port: 80 }, 'GRPC-Web', 'name'],
    ['http2', { name: 'http2-x', port: 80 }, 'HTTP2', 'name'],
    ['https', { name: 'https', port: 443 }, 'HTTPS', 'name'],
    ['tls', { name: 'tls-db', port: 5432 }, 'TLS', 'name'],
    ['tcp', { name: 'tcp', port: 7000 }, 'TCP', 'name'],
    ['mongo', { name: 'mongo', port: 27018 }, 'Mongo', 'name'],
    ['redis', { name: 'redis-cache', port: 6379 }, 'Redis', 'name'],
    ['mysql', { name: 'mysql', port: 3307 }, 'MySQL', 'name'],
    ['appProtocol wins over the name', { name: 'http', port: 80, appProtocol: 'grpc' }, 'GRPC', 'appProtocol'],
    ['an unrecognised appProtocol hides the name', { name: 'http', port: 8080, appProtocol: 'example.com/custom' }, 'UNKNOWN', 'none'],
    ['kubernetes.io/h2c is HTTP2', { name: 'web', port: 80, appProtocol: 'kubernetes.io/h2c' }, 'HTTP2', 'appProtocol'],
    ['kubernetes.io/ws is HTTP', { port: 80, appProtocol: 'kubernetes.io/ws' }, 'HTTP', 'appProtocol'],
    ['kubernetes.io/wss is HTTPS', { port: 443, appProtocol: 'kubernetes.io/wss' }, 'HTTPS', 'appProtocol'],
    ['UDP ports are UDP whatever the name', { name: 'http', port: 53, protocol: 'UDP' }, 'UDP', 'l4'],
    ['an unknown name is sniffed', { name: 'web', port: 8080 }, 'UNKNOWN', 'none'],
    ['no name is sniffed', { port: 8080 }, 'UNKNOWN', 'none'],
    ['a prefix must be followed by "-"', { name: 'httpx', port: 8080 }, 'UNKNOWN', 'none'],
    ['well-known port 3306 without protocol is TCP', { name: 'db', port: 3306 }, 'TCP', 'port'],
    ['well-known port 53 without protocol is TCP', { port: 53 }, 'TCP', 'port'],
    ['well-known port 25 with a declared protocol keeps it', { name: 'http', port: 25 }, 'HTTP', 'name'],
    ['SCTP is not special-cased (as in Istio)', { name: 'http', port: 80, protocol: 'SCTP' }, 'HTTP', 'name'],
  ];
  for (const [what, input, protocol, source] of cases) {
    test(what, () => assert.deepEqual(protocolOf(input), { protocol, source }));
  }
  test('parseProtocol is case-insensitive and rejects other names', () => {
    assert.equal(parseProtocol('HTTP'), 'HTTP');
    assert.equal(parseProtocol('Grpc-Web'), 'GRPC-Web');
    assert.equal(parseProtocol('postgres'), undefined);
    assert.equal(parseProtocol('http_proxy'), undefined);
    assert.equal(isHttpProtocol('GRPC'), true);
    assert.equal(isHttpProtocol('HTTPS'), false);
  });
});

describe('Service', () => {
  test('bookinfo services load clean and become model services', () => {
    const r = fixture('bookinfo.yaml');
    assert.deepEqual(r.diagnostics, []);
    assert.equal(r.model.services.length, 6);
    const reviews = service(r, 'reviews.bookinfo.svc.cluster.local');
    assert.equal(reviews.name, 'reviews');
    assert.equal(reviews.namespace, 'bookinfo');
    assert.deepEqual(reviews.ports, [{ name: 'http', port: 9080, targetPort: 9080, protocol: 'HTTP', protocolSource: 'name' }]);
    assert.deepEqual(reviews.selector, { app: 'reviews' });
    assert.deepEqual(reviews.labels, { app: 'reviews', service: 'reviews' });
    assert.equal(reviews.resolution, 'STATIC');
    assert.equal(reviews.location, 'MESH_INTERNAL');
    assert.deepEqual(reviews.exportTo, ['*']);
    assert.deepEqual(reviews.addresses, []);
    assert.equal(reviews.origin.kind, 'Service');
    assert.equal(reviews.origin.family, 'kubernetes');
    assert.equal(reviews.origin.pos?.file, 'bookinfo.yaml');
    assert.equal(service(r, 'mongodb.bookinfo.svc.cluster.local').ports[0]!.protocol, 'Mongo');
    assert.deepEqual(service(r, 'mysqldb.bookinfo.svc.cluster.local').ports[0]!.protocol, 'TCP');
  });

  test('the namespace defaults to "default" and the domain is configurable', () => {
    const r = build('apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n', 'x.yaml', 'corp.internal');
    assert.deepEqual(errors(r), []);
    assert.equal(r.model.services[0]!.hostname, 'web.default.svc.corp.internal');
  });

  test('headless services resolve NONE and may have no ports; named targetPorts are kept', () => {
    const r = fixture('headless.yaml');
    assert.deepEqual(r.diagnostics, []);
    const nginx = service(r, 'nginx.default.svc.cluster.local');
    assert.equal(nginx.resolution, 'NONE');
    assert.deepEqual(nginx.addresses, []);
    const kafka = service(r, 'kafka-headless.streaming.svc.cluster.local');
    assert.deepEqual(kafka.ports.map((p) => [p.port, p.targetPort, p.protocol]), [
      [9092, 'kafka-client', 'TCP'],
      [9094, 'kafka-internal', 'TCP'],
    ]);
    const dnsOnly = service(r, 'dns-only.streaming.svc.cluster.local');
    assert.deepEqual(dnsOnly.ports, []);
    assert.equal(dnsOnly.selector, undefined);
  });

  test('ExternalName services are DNS, MESH_EXTERNAL aliases of their external name', () => {
    const r = fixture('external-name.yaml');
    assert.deepEqual(r.diagnostics, []);
    const db = service(r, 'my-database.prod.svc.cluster.local');
    assert.equal(db.resolution, 'DNS');
    assert.equal(db.location, 'MESH_EXTERNAL');
    assert.equal(db.externalName, 'db.example.com');
    assert.deepEqual(db.ports, []);
    assert.equal(db.selector, undefined);
    const egress = service(r, 'httpbin-egress.prod.svc.cluster.local');
    assert.equal(egress.externalName, 'httpbin.org', 'the trailing dot of an absolute name is dropped');
    assert.deepEqual(egress.exportTo, ['prod', 'staging'], 'networking.istio.io/exportTo, entries trimmed');
    assert.equal(egress.ports[0]!.protocol, 'HTTPS');
  });

  test('real-world shapes (LoadBalancer, NodePort, dual-stack, UDP, appProtocol) load clean', () => {
    const r = fixture('various.yaml');
    assert.deepEqual(r.diagnostics, []);
    const lb = service(r, 'ingress-nginx-controller.ingress-nginx.svc.cluster.local');
    assert.deepEqual(lb.ports.map((p) => [p.name, p.protocol, p.protocolSource, p.appProtocol, p.targetPort]), [
      ['http', 'HTTP', 'appProtocol', 'http', 'http'],
      ['https', 'HTTPS', 'appProtocol', 'https', 'https'],
    ]);
    const dns = service(r, 'kube-dns.kube-system.svc.cluster.local');
    assert.deepEqual(dns.addresses, ['10.96.0.10']);
    assert.deepEqual(dns.ports.map((p) => [p.name, p.port, p.protocol, p.protocolSource]), [
      ['dns', 53, 'UDP', 'l4'],
      ['dns-tcp', 53, 'TCP', 'port'],
      ['metrics', 9153, 'UNKNOWN', 'none'],
    ]);
    const web = service(r, 'web.shop.svc.cluster.local');
    assert.deepEqual(web.exportTo, ['.']);
    assert.deepEqual(web.ports.map((p) => p.protocol), ['GRPC-Web', 'HTTP2', 'UNKNOWN']);
    const dual = service(r, 'dual.shop.svc.cluster.local');
    assert.deepEqual(dual.ports, [{ port: 8443, targetPort: 8443, protocol: 'UNKNOWN', protocolSource: 'none' }]);
  });

  test('unknown fields are errors with line:column and path', () => {
    const text = ['apiVersion: v1', 'kind: Service', 'metadata: {name: web}', 'spec:', '  selector: {app: web}', '  ports:', '  - port: 80', '    nmae: http', ''].join('\n');
    const e = onlyError(build(text), 'spec.ports[0].nmae', 8, 5);
    assert.match(e.message, /unknown field "nmae"/);
    assert.equal(e.code, 'WFT0106');
  });

  const bad: Array<[string, string[], string, number, number, RegExp]> = [
    ['port out of range', ['  ports:', '  - port: 70000'], 'spec.ports[0].port', 7, 5, /1-65535/],
    ['bad targetPort name', ['  ports:', '  - port: 80', '    targetPort: Http_Port'], 'spec.ports[0].targetPort', 8, 5, /not a valid port name/],
    ['targetPort of the wrong type', ['  ports:', '  - port: 80', '    targetPort: true'], 'spec.ports[0].targetPort', 8, 5, /port number or a port name/],
    ['L4 protocol enum', ['  ports:', '  - port: 80', '    protocol: tcp'], 'spec.ports[0].protocol', 8, 5, /"TCP", "UDP", "SCTP"/],
    ['names required with several ports', ['  ports:', '  - port: 80', '  - {name: b, port: 81}'], 'spec.ports[0].name', 7, 5, /more than one port/],
    ['duplicate port names', ['  ports:', '  - {name: a, port: 80}', '  - {name: a, port: 81}'], 'spec.ports[1].name', 8, 6, /duplicate port name "a"/],
    ['duplicate port and protocol', ['  ports:', '  - {name: a, port: 80}', '  - {name: b, port: 80}'], 'spec.ports[1].port', 8, 15, /duplicate port 80\/TCP/],
    ['port names are DNS labels', ['  ports:', '  - {name: Web_1, port: 80}'], 'spec.ports[0].name', 7, 6, /DNS-1123 label/],
    ['nodePort on ClusterIP', ['  ports:', '  - {port: 80, nodePort: 30000}'], 'spec.ports[0].nodePort', 7, 16, /ClusterIP/],
    ['no ports', ['  type: ClusterIP'], 'spec.ports', 5, 3, /at least one port/],
    ['bad clusterIP', ['  clusterIP: 10.0.0.300', '  ports: [{port: 80}]'], 'spec.clusterIP', 6, 3, /not an IP address/],
    ['ExternalName needs externalName', ['  type: ExternalName'], 'spec.externalName', 5, 3, /required for type ExternalName/],
    ['ExternalName must be a DNS name', ['  type: ExternalName', '  externalName: "not a host"'], 'spec.externalName', 7, 3, /not a DNS name/],
    ['bad appProtocol', ['  ports:', '  - {port: 80, appProtocol: "a b"}'], 'spec.ports[0].appProtocol', 7, 16, /qualified name/],
    ['unknown type', ['  type: Internal', '  ports: [{port: 80}]'], 'spec.type', 6, 3, /"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"/],
  ];
  for (const [what, specLines, path, line, column, message] of bad) {
    test(`rejects: ${what}`, () => {
      const text = ['apiVersion: v1', 'kind: Service', 'metadata: {name: web}', 'spec:', '  selector: {app: web}', ...specLines, ''].join('\n');
      const e = onlyError(build(text), path, line, column);
      assert.match(e.message, message);
      assert.ok(e.hint, 'errors carry a hint');
    });
  }

  test('a Service with errors is left out of the model', () => {
    const r = build('apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 0}]\n');
    assert.equal(errors(r).length, 1);
    assert.deepEqual(r.model.services, []);
  });

  test('invalid exportTo annotation entries are errors at the annotation', () => {
    const text = ['apiVersion: v1', 'kind: Service', 'metadata:', '  name: web', '  annotations:', '    networking.istio.io/exportTo: "ns-a, Bad_NS"', 'spec:', '  ports: [{port: 80}]', ''].join('\n');
    const r = build(text);
    const e = onlyError(r, 'metadata.annotations["networking.istio.io/exportTo"]', 6, 5);
    assert.match(e.message, /"Bad_NS"/);
    assert.deepEqual(r.model.services[0]!.exportTo, ['ns-a'], 'the valid entries still apply');
  });

  test('Service names must be DNS-1035 labels', () => {
    const r = build('apiVersion: v1\nkind: Service\nmetadata: {name: 1web}\nspec:\n  ports: [{port: 80}]\n');
    onlyError(r, 'metadata.name', 3, 12);
  });
});

describe('Namespace', () => {
  test('namespaces carry their labels; spec is optional', () => {
    const r = fixture('bookinfo.yaml');
    assert.deepEqual(
      r.model.namespaces.map((n) => ({ name: n.name, labels: n.labels })),
      [{ name: 'bookinfo', labels: { 'istio-injection': 'enabled' } }],
    );
    assert.equal(r.model.namespaces[0]!.origin?.kind, 'Namespace');
  });

  test('finalizers are accepted, other spec fields are not', () => {
    const ok = build('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nspec:\n  finalizers: [kubernetes]\n');
    assert.deepEqual(ok.diagnostics, []);
    const r = build('apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nspec:\n  labels: {x: y}\n');
    onlyError(r, 'spec.labels', 5, 3);
  });

  test('a namespace given to a Namespace is a warning (cluster-scoped)', () => {
    const r = build('apiVersion: v1\nkind: Namespace\nmetadata: {name: a, namespace: b}\n');
    assert.deepEqual(r.diagnostics.map((d) => [d.severity, d.path]), [['Warning', 'metadata.namespace']]);
    assert.equal(r.model.namespaces[0]!.name, 'a');
  });
});
