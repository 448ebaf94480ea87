// Active health checking end to end in a real `weft proxy`: the control plane's translation of three services,
// served by a static ADS server with `health_checks` added to their clusters (Istio has no API for active health
// checks): HTTP (GET /healthz, 200 expected), TCP (connect only) and gRPC (grpc.health.v1.Health/Check served by
// @grpc/grpc-js). Each host's state is read from admin /clusters (`/failed_active_hc` or `healthy`) as it changes,
// and HTTP traffic through the proxy avoids the unhealthy host. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import * as grpc from '@grpc/grpc-js';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Server as TcpServer } from 'node:net';
import {
  HealthCheck_GrpcHealthCheckSchema,
  HealthCheck_HttpHealthCheckSchema,
  HealthCheck_TcpHealthCheckSchema,
  HealthCheckSchema,
  type HealthCheck,
} from '../../src/xds/gen/envoy/config/core/v3/health_check_pb.js';
import { adminGet } from '../helpers/admin-http.js';
import { serviceYaml, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';
import { durationOf, startStaticProxy, type StaticProxy } from '../helpers/static-ads.js';
import { eventually, httpRequest } from '../helpers/raw-client.js';

const HTTP_CLUSTER = 'outbound|9080||web.default.svc.cluster.local';
const TCP_CLUSTER = 'outbound|6379||kv.default.svc.cluster.local';
const GRPC_CLUSTER = 'outbound|9090||rpc.default.svc.cluster.local';

/** HTTP upstream: `/healthz` answers `healthStatus`; anything else 200 with the name. */
class WebHost {
  server!: HttpServer;
  port = 0;
  healthStatus = 200;
  healthChecks = 0;
  constructor(readonly name: string) {}
  async start(): Promise<void> {
    this.server = createHttpServer((req, res) => {
      req.resume();
      if (req.url === '/healthz') {
        this.healthChecks++;
        res.writeHead(this.healthStatus);
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(this.name);
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }
}

function checks(kind: 'http' | 'tcp' | 'grpc'): HealthCheck {
  const hc = create(HealthCheckSchema, {
    timeout: durationOf(1000),
    interval: durationOf(200),
    noTrafficInterval: durationOf(200),
    noTrafficHealthyInterval: durationOf(200),
    unhealthyThreshold: 1,
    healthyThreshold: 1,
  });
  if (kind === 'http') hc.healthChecker = { case: 'httpHealthCheck', value: create(HealthCheck_HttpHealthCheckSchema, { path: '/healthz' }) };
  else if (kind === 'tcp') hc.healthChecker = { case: 'tcpHealthCheck', value: create(HealthCheck_TcpHealthCheckSchema, {}) };
  // The authority is set: Envoy's default is the cluster name, and Istio's cluster names (`outbound|9090||...`) are
  // not valid :authority values, which Node's HTTP/2 server (nghttp2) refuses with RST_STREAM.
  else hc.healthChecker = { case: 'grpcHealthCheck', value: create(HealthCheck_GrpcHealthCheckSchema, { serviceName: 'shop.Cart', authority: 'rpc.default.svc.cluster.local' }) };
  return hc;
}

describe('weft proxy: active health checks end to end', () => {
  const web = [new WebHost('web-a'), new WebHost('web-b')];
  let kv: TcpServer;
  let kvPort = 0;
  let rpc: grpc.Server;
  let rpcStatus = 1; // SERVING
  const rpcServices: string[] = [];
  let mesh: StaticProxy;

  const listenKv = async (port = 0) => {
    kv = createTcpServer((s) => s.end());
    await new Promise<void>((r) => kv.listen(port, '127.0.0.1', r));
    kvPort = (kv.address() as AddressInfo).port;
  };

  before(async () => {
    for (const w of web) await w.start();
    await listenKv();
    rpc = new grpc.Server();
    const ident = (b: Buffer) => b;
    rpc.addService(
      { Check: { path: '/grpc.health.v1.Health/Check', requestStream: false, responseStream: false, requestSerialize: ident, requestDeserialize: ident, responseSerialize: ident, responseDeserialize: ident } } as grpc.ServiceDefinition,
      {
        Check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
          // HealthCheckRequest { string service = 1 }; HealthCheckResponse { ServingStatus status = 1 }.
          rpcServices.push(call.request.length > 2 ? call.request.subarray(2).toString() : '');
          cb(null, Buffer.from([0x08, rpcStatus]));
        },
      },
    );
    const rpcPort = await new Promise<number>((res, rej) => rpc.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))));
    const yaml = yamlDocuments([
      serviceYaml('web', { name: 'http', port: 9080 }),
      ...web.map((w) => workloadEntryYaml(w.name, { app: 'web' }, 'http', w.port)),
      serviceYaml('kv', { name: 'tcp', port: 6379 }),
      workloadEntryYaml('kv-1', { app: 'kv' }, 'tcp', kvPort),
      serviceYaml('rpc', { name: 'grpc', port: 9090 }),
      workloadEntryYaml('rpc-1', { app: 'rpc' }, 'grpc', rpcPort),
    ]);
    mesh = await startStaticProxy(yaml, {
      nodeId: 'health',
      mutate: (r) => {
        for (const [name, kind] of [[HTTP_CLUSTER, 'http'], [TCP_CLUSTER, 'tcp'], [GRPC_CLUSTER, 'grpc']] as const) {
          const c = r.clusters.find((x) => x.name === name);
          assert.ok(c, `cluster ${name} (have ${r.clusters.map((x) => x.name).join(', ')})`);
          c.healthChecks = [checks(kind)];
        }
      },
    });
  });

  after(async () => {
    await mesh?.stop();
    for (const w of web) {
      w.server.closeAllConnections();
      await new Promise<void>((r) => w.server.close(() => r()));
    }
    await new Promise<void>((r) => kv.close(() => r()));
    await new Promise<void>((r) => rpc.tryShutdown(() => r()));
  });

  /** health_flags of a cluster's host on 127.0.0.1:port from admin /clusters. */
  async function flags(cluster: string, port: number): Promise<string> {
    const body = (await adminGet(mesh.adminPort, '/clusters')).body;
    const line = body.split('\n').find((l) => l.startsWith(`${cluster}::127.0.0.1:${port}::health_flags::`));
    return line?.split('::health_flags::')[1] ?? '(no host)';
  }

  test('HTTP: a host answering 503 on /healthz is marked unhealthy and gets no traffic; it returns once it answers 200', async () => {
    const [a, b] = web;
    await eventually(async () => (await flags(HTTP_CLUSTER, a!.port)) === 'healthy' && (await flags(HTTP_CLUSTER, b!.port)) === 'healthy', 'both web hosts healthy');
    b!.healthStatus = 503;
    await eventually(async () => (await flags(HTTP_CLUSTER, b!.port)).includes('/failed_active_hc'), 'web-b to fail its health check');
    for (let i = 0; i < 10; i++) {
      const r = await httpRequest(mesh.outboundPort, 'web:9080', '/');
      assert.equal(r.status, 200);
      assert.equal(r.body, 'web-a');
    }
    b!.healthStatus = 200;
    await eventually(async () => (await flags(HTTP_CLUSTER, b!.port)) === 'healthy', 'web-b to be healthy again');
    await eventually(async () => (await httpRequest(mesh.outboundPort, 'web:9080', '/')).body === 'web-b', 'traffic to reach web-b again');
    assert.ok(a!.healthChecks > 0 && b!.healthChecks > 0);
  });

  test('TCP: a host that stops accepting connections is unhealthy; it is healthy again when it listens again', async () => {
    await eventually(async () => (await flags(TCP_CLUSTER, kvPort)) === 'healthy', 'kv healthy');
    const port = kvPort;
    await new Promise<void>((r) => kv.close(() => r()));
    await eventually(async () => (await flags(TCP_CLUSTER, port)).includes('/failed_active_hc'), 'kv to fail its check');
    await listenKv(port);
    await eventually(async () => (await flags(TCP_CLUSTER, port)) === 'healthy', 'kv healthy again');
  });

  test('gRPC: NOT_SERVING from grpc.health.v1 marks the host unhealthy; SERVING brings it back; the service name is sent', async () => {
    const port = Number(/127\.0\.0\.1:(\d+)/.exec((await adminGet(mesh.adminPort, '/clusters')).body.split('\n').find((l) => l.startsWith(GRPC_CLUSTER + '::127.0.0.1:')) ?? '')?.[1]);
    assert.ok(port > 0);
    await eventually(async () => (await flags(GRPC_CLUSTER, port)) === 'healthy', 'rpc healthy');
    assert.ok(rpcServices.includes('shop.Cart'));
    rpcStatus = 2; // NOT_SERVING
    await eventually(async () => (await flags(GRPC_CLUSTER, port)).includes('/failed_active_hc'), 'rpc to fail its check');
    rpcStatus = 1;
    await eventually(async () => (await flags(GRPC_CLUSTER, port)) === 'healthy', 'rpc healthy again');
  });
});
