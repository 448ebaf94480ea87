// Ingress and egress gateways end to end over plaintext HTTP: the real `weft control-plane`, two `weft proxy
// --gateway` processes (an Istio ingress gateway and a Gateway API Gateway's deployment), an egress gateway and a
// sidecar, with node:http upstreams on 127.0.0.1. Checked with curl:
// - a VirtualService bound with `gateways` routes through the ingress gateway; a host no server serves gets 404;
// - httpsRedirect answers 301 to https://;
// - a Gateway API HTTPRoute bound with parentRefs routes through the Gateway's proxy (hostnames intersected);
// - the Istio egress-gateway pattern: a VirtualService bound to `mesh` and to the egress gateway sends a
//   sidecar's request for a MESH_EXTERNAL ServiceEntry host through the egress gateway;
// - REGISTRY_ONLY (Sidecar outboundTrafficPolicy): a host outside the registry gets 502 from the sidecar.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { curl, Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, serviceYaml, sleep, startControlPlane, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

/** Polls `f` until it returns true (up to 20 s). */
async function eventually(what: string, f: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await f().catch(() => false)) return;
    await sleep(100);
  }
  assert.fail(`${what} did not happen within 20 s`);
}

function meshYaml(p: { productpage: number; reviews: number; external: number; ingress: number; redirect: number; api: number; egress: number }): string {
  return yamlDocuments([
    serviceYaml('productpage', { name: 'http', port: 9080 }),
    workloadEntryYaml('productpage-1', { app: 'productpage' }, 'http', p.productpage),
    serviceYaml('reviews', { name: 'http', port: 9080 }),
    workloadEntryYaml('reviews-1', { app: 'reviews' }, 'http', p.reviews),
    `apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: default}
spec:
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
`,
    `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: bookinfo-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: ${p.ingress}, name: http, protocol: HTTP}
    hosts: [bookinfo.example.com]
  - port: {number: ${p.redirect}, name: http-redirect, protocol: HTTP}
    hosts: [secure.example.com]
    tls: {httpsRedirect: true}
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bookinfo, namespace: default}
spec:
  hosts: [bookinfo.example.com]
  gateways: [bookinfo-gateway]
  http:
  - match: [{uri: {prefix: /productpage}}]
    route: [{destination: {host: productpage, port: {number: 9080}}}]
`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: GatewayClass
metadata: {name: weft}
spec: {controllerName: weft.dev/gateway-controller}
`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: api-gw, namespace: default}
spec:
  gatewayClassName: weft
  listeners:
  - {name: http, protocol: HTTP, port: ${p.api}, hostname: "*.api.example.com"}
`,
    `apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: api, namespace: default}
spec:
  parentRefs: [{name: api-gw}]
  hostnames: [a.api.example.com]
  rules:
  - backendRefs: [{name: reviews, port: 9080}]
`,
    // The egress gateway: a Service for its workload, the Gateway, and the documented Istio pattern.
    `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [httpbin.external]
  ports: [{number: 80, name: http, protocol: HTTP}]
  location: MESH_EXTERNAL
  resolution: STATIC
  endpoints: [{address: 127.0.0.1, ports: {http: ${p.external}}}]
`,
    serviceYaml('istio-egressgateway', { name: 'http', port: p.egress }, 'egressgateway'),
    workloadEntryYaml('egressgateway-1', { app: 'egressgateway' }, 'http', p.egress),
    `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: istio-egressgateway, namespace: default}
spec:
  selector: {istio: egressgateway}
  servers:
  - port: {number: ${p.egress}, name: http, protocol: HTTP}
    hosts: [httpbin.external]
`,
    `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: external-via-egress, namespace: default}
spec:
  hosts: [httpbin.external]
  gateways: [mesh, istio-egressgateway]
  http:
  - match: [{gateways: [mesh], port: 80}]
    route: [{destination: {host: istio-egressgateway.default.svc.cluster.local, port: {number: ${p.egress}}}}]
  - match: [{gateways: [istio-egressgateway], port: ${p.egress}}]
    headers: {request: {set: {x-weft-egress: "true"}}}
    route: [{destination: {host: httpbin.external, port: {number: 80}}}]
`,
  ]);
}

describe('gateways end to end (HTTP)', () => {
  const work = new MeshWorkDir('weft-gateway-');
  const cp = new WeftProcess();
  const ingress = new WeftProcess();
  const apiGw = new WeftProcess();
  const egress = new WeftProcess();
  const sidecar = new WeftProcess();
  const productpage = new Upstream('productpage');
  const reviews = new Upstream('reviews');
  const external = new Upstream('external');
  const ports = { ingress: 0, redirect: 0, api: 0, egress: 0, outbound: 0 };

  async function gatewayProxy(proc: WeftProcess, xds: string, id: string, labels: string): Promise<void> {
    const args = ['proxy', '--gateway', '--xds', xds, '--id', id, '--namespace', 'default', '--labels', labels];
    args.push('--outbound-port', String(await freePort()), '--health-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0');
    await proc.start(args, /ready \(listeners: [^)]*\)/, id);
  }

  before(async () => {
    await Promise.all([productpage.start(), reviews.start(), external.start()]);
    for (const k of Object.keys(ports) as Array<keyof typeof ports>) ports[k] = await freePort();
    work.writeConfig('mesh.yaml', meshYaml({ productpage: productpage.port, reviews: reviews.port, external: external.port, ...ports }));
    const addr = await startControlPlane(cp, work.config);
    await Promise.all([
      gatewayProxy(ingress, addr.xds, 'ingressgateway', 'istio=ingressgateway'),
      gatewayProxy(apiGw, addr.xds, 'api-gw', 'gateway.networking.k8s.io/gateway-name=api-gw'),
      gatewayProxy(egress, addr.xds, 'egressgateway', 'istio=egressgateway,app=egressgateway'),
    ]);
    const sidecarArgs = ['proxy', '--xds', addr.xds, '--id', 'client', '--namespace', 'default', '--labels', 'app=client'];
    sidecarArgs.push('--outbound-port', String(ports.outbound), '--health-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0');
    await sidecar.start(sidecarArgs, /ready \(listeners: [^)]*\)/, 'sidecar');
  });

  after(async () => {
    await Promise.all([ingress.stop(), apiGw.stop(), egress.stop(), sidecar.stop()]);
    await cp.stop();
    await Promise.all([productpage.stop(), reviews.stop(), external.stop()]);
    work.remove();
  });

  test('the gateway proxies announce their Gateway listeners, not sidecar ones', () => {
    const listeners = (p: WeftProcess) => /ready \(listeners: ([^)]*)\)/.exec(p.stdout)![1]!.split(' ').sort();
    assert.deepEqual(listeners(ingress), [`0.0.0.0_${ports.ingress}=${ports.ingress}`, `0.0.0.0_${ports.redirect}=${ports.redirect}`].sort());
    assert.deepEqual(listeners(apiGw), [`0.0.0.0_${ports.api}=${ports.api}`]);
    assert.match(ingress.stdout, /mode: gateway/);
  });

  test('a VirtualService bound to the Gateway routes through the ingress gateway', async () => {
    const url = `http://127.0.0.1:${ports.ingress}/productpage?x=1`;
    await eventually('ingress route', async () => (await curl(url, ['-H', 'Host: bookinfo.example.com'])).status === 200);
    const r = await curl(url, ['-H', 'Host: bookinfo.example.com']);
    assert.equal(r.headers['x-upstream'], 'productpage');
    assert.equal(JSON.parse(r.body.toString()).url, '/productpage?x=1');
    // The gateway is the edge: the client address goes into x-forwarded-for.
    assert.equal(productpage.seen.at(-1)?.headers['x-forwarded-for'], '127.0.0.1');
    // Host and port both accepted (domains host and host:*).
    assert.equal((await curl(url, ['-H', `Host: bookinfo.example.com:${ports.ingress}`])).status, 200);
    // A path no route matches, and a host no virtual host serves: 404 (no route).
    assert.equal((await curl(`http://127.0.0.1:${ports.ingress}/other`, ['-H', 'Host: bookinfo.example.com'])).status, 404);
    assert.equal((await curl(url, ['-H', 'Host: unknown.example.com'])).status, 404);
  });

  test('httpsRedirect answers 301 to https://', async () => {
    const r = await curl(`http://127.0.0.1:${ports.redirect}/login?next=1`, ['-H', 'Host: secure.example.com']);
    assert.equal(r.status, 301);
    assert.equal(r.headers.location, 'https://secure.example.com/login?next=1');
  });

  test('a Gateway API HTTPRoute bound with parentRefs routes through the Gateway', async () => {
    const url = `http://127.0.0.1:${ports.api}/v1/items`;
    await eventually('HTTPRoute', async () => (await curl(url, ['-H', 'Host: a.api.example.com'])).status === 200);
    const r = await curl(url, ['-H', 'Host: a.api.example.com']);
    assert.equal(r.headers['x-upstream'], 'reviews');
    // Inside the listener hostname but not among the route's hostnames: 404.
    assert.equal((await curl(url, ['-H', 'Host: b.api.example.com'])).status, 404);
  });

  test('egress: a MESH_EXTERNAL host is reached through the egress gateway (VirtualService bound to mesh and the gateway)', async () => {
    const proxy = ['-x', `http://127.0.0.1:${ports.outbound}`];
    await eventually('egress route', async () => (await curl('http://httpbin.external/get', proxy)).status === 200);
    const before = external.count();
    const r = await curl('http://httpbin.external/get?q=1', proxy);
    assert.equal(r.status, 200);
    assert.equal(r.headers['x-upstream'], 'external');
    assert.equal(external.count(), before + 1);
    const seen = external.seen.at(-1)!;
    assert.equal(seen.url, '/get?q=1');
    // Only the egress gateway's route sets this header: the request went through it.
    assert.equal(seen.headers['x-weft-egress'], 'true');
  });

  test('REGISTRY_ONLY: a host outside the registry gets 502 from the sidecar', async () => {
    const before = external.count();
    const r = await curl('http://unknown.example/', ['-x', `http://127.0.0.1:${ports.outbound}`]);
    assert.equal(r.status, 502);
    assert.equal(external.count(), before);
  });
});
