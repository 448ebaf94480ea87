// gRPC through `weft proxy` end to end: the real control plane, a client sidecar (outbound listener, h2c) and a
// server sidecar (inbound listener → the workload), and @grpc/grpc-js clients and servers (test/apps/greeter.ts).
// Services: `greeter` (port name grpc) reached through both sidecars, `direct` (grpc) whose endpoint is a gRPC
// server without a sidecar, `nohost` (grpc) without endpoints. gRPC over HTTP/2 all the way:
// client → outbound (h2c) → cluster (h2) → inbound (h2c) → server. Deadline checks that must not race a client's
// own timer use a raw node:http2 client sending grpc-timeout. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { credentials, makeGenericClientConstructor, Metadata, status, type Client, type ServiceError } from '@grpc/grpc-js';
import { startGreeter, streamingGreeterService, type Greeter, type HelloReply, type StreamRequest } from '../apps/greeter.js';
import { h2Request } from '../helpers/h2-clients.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, sleep, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const GreeterClient = makeGenericClientConstructor(streamingGreeterService, 'Greeter');
type AnyClient = Client & Record<string, (...args: unknown[]) => unknown>;

/** A gRPC message frame (uncompressed) carrying `v` as JSON, as the greeter's serializer writes it. */
function grpcFrame(v: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(v));
  const h = Buffer.alloc(5);
  h.writeUInt32BE(body.length, 1);
  return Buffer.concat([h, body]);
}

function unary<T>(c: AnyClient, method: string, req: unknown, deadlineMs = 20_000): Promise<{ err: ServiceError | null; res: T | undefined }> {
  return new Promise((resolve) => {
    c[method]!(req, new Metadata(), { deadline: Date.now() + deadlineMs }, (err: ServiceError | null, res: T) => resolve({ err, res }));
  });
}

describe('weft proxy: gRPC end to end (outbound → inbound sidecars)', () => {
  const mesh = new MeshWorkDir('weft-proxy-grpc-');
  const cp = new WeftProcess();
  const clientProxy = new WeftProcess();
  const serverProxy = new WeftProcess();
  let outbound = 0;
  let inbound = 0;
  let greeter!: Greeter;
  let direct!: Greeter;
  let client!: AnyClient;
  let directClient!: AnyClient;

  const sidecarPorts = async () => ['--outbound-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0'];

  before(async () => {
    greeter = await startGreeter('greeter-1', 0, { streaming: true });
    direct = await startGreeter('direct-1', 0, { streaming: true });
    inbound = await freePort();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('greeter', { name: 'grpc', port: 50051 }),
        workloadEntryYaml('greeter-1', { app: 'greeter' }, 'grpc', inbound),
        serviceYaml('direct', { name: 'grpc', port: 50052 }),
        workloadEntryYaml('direct-1', { app: 'direct' }, 'grpc', direct.port),
        serviceYaml('nohost', { name: 'grpc', port: 50053 }),
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: greeter, namespace: default}\nspec:\n  hosts: [greeter]\n  http:\n  - route: [{destination: {host: greeter}}]\n    retries: {attempts: 3, retryOn: unavailable}\n`,
        `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: direct, namespace: default}\nspec:\n  hosts: [direct]\n  http:\n  - match: [{uri: {prefix: /helloworld.Greeter/}}]\n    route: [{destination: {host: direct}}]\n`,
      ]),
    );
    const cpAddr = await startControlPlane(cp, mesh.config);
    const serverHealth = await freePort();
    await serverProxy.start(
      ['proxy', '--xds', cpAddr.xds, '--id', 'greeter-1', '--namespace', 'default', '--labels', 'app=greeter', '--workload-port', `${inbound}:${greeter.port}/grpc`, '--health-port', String(serverHealth), ...(await sidecarPorts())],
      /weft proxy .* started/,
      'server sidecar',
    );
    const clientHealth = await freePort();
    const ports = await sidecarPorts();
    outbound = Number(ports[1]);
    await clientProxy.start(proxyArgs(cpAddr.xds, 'grpc-client', ['--health-port', String(clientHealth), ...ports]), /weft proxy .* started/, 'client sidecar');
    await waitProxyReady(serverHealth, serverProxy);
    await waitProxyReady(clientHealth, clientProxy);
    const opts = { 'grpc.enable_retries': 0 };
    client = new GreeterClient(`127.0.0.1:${outbound}`, credentials.createInsecure(), { ...opts, 'grpc.default_authority': 'greeter:50051' }) as unknown as AnyClient;
    directClient = new GreeterClient(`127.0.0.1:${outbound}`, credentials.createInsecure(), { ...opts, 'grpc.default_authority': 'direct:50052' }) as unknown as AnyClient;
    // The inbound listener comes with the server sidecar's config: wait until a call goes through.
    let warm: ServiceError | null = null;
    for (let i = 0; i < 100; i++) {
      warm = (await unary<HelloReply>(client, 'SayHello', { name: 'warmup' }, 5000)).err;
      if (warm === null) break;
      await sleep(100);
    }
    if (warm !== null) throw new Error(`no call went through: ${warm.message}\n${clientProxy.log()}\n${serverProxy.log()}`);
  });

  after(async () => {
    client?.close();
    directClient?.close();
    await clientProxy.stop();
    await serverProxy.stop();
    await cp.stop();
    await greeter.close();
    await direct.close();
    mesh.remove();
  });

  test('unary through both sidecars, and to a server without a sidecar', async () => {
    const r = await unary<HelloReply>(client, 'SayHello', { name: 'ada' });
    assert.equal(r.err, null);
    assert.deepEqual(r.res, { message: 'hello ada', server: 'greeter-1' });
    const d = await unary<HelloReply>(directClient, 'SayHello', { name: 'bob' });
    assert.equal(d.err, null);
    assert.deepEqual(d.res, { message: 'hello bob', server: 'direct-1' });
  });

  test('server streaming, client streaming and bidi streaming', async () => {
    const replies: HelloReply[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.SayHellos!({ name: 'cy', count: 5 } satisfies StreamRequest, new Metadata(), { deadline: Date.now() + 20_000 }) as NodeJS.EventEmitter;
      call.on('data', (m: HelloReply) => replies.push(m));
      call.on('error', reject);
      call.on('end', resolve);
    });
    assert.deepEqual(replies.map((m) => m.message), [0, 1, 2, 3, 4].map((i) => `hello cy #${i}`));

    const collected = await new Promise<HelloReply>((resolve, reject) => {
      const call = client.Collect!(new Metadata(), { deadline: Date.now() + 20_000 }, (err: ServiceError | null, res: HelloReply) => (err ? reject(err) : resolve(res))) as NodeJS.WritableStream;
      for (const name of ['a', 'b', 'c']) call.write({ name } as never);
      call.end();
    });
    assert.equal(collected.message, 'hello a,b,c');

    const chat: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.Chat!(new Metadata(), { deadline: Date.now() + 20_000 }) as NodeJS.ReadWriteStream;
      let sent = 0;
      const next = () => {
        if (sent === 4) {
          call.end();
          return;
        }
        call.write({ name: `m${sent++}` } as never);
      };
      // Ping-pong: the next message goes once the previous one came back through both proxies.
      call.on('data', (m: HelloReply) => {
        chat.push(m.message);
        next();
      });
      call.on('error', reject);
      call.on('end', resolve);
      next();
    });
    assert.deepEqual(chat, ['hello m0', 'hello m1', 'hello m2', 'hello m3']);
  });

  test('grpc-status and grpc-message of an error pass through', async () => {
    const r = await unary<HelloReply>(client, 'SayHello', { name: 'fail' });
    assert.equal(r.err?.code, status.INTERNAL);
    assert.equal(r.err?.details, 'asked to fail');
  });

  test('retry_on unavailable: a trailers-only UNAVAILABLE is retried (attempts counted at the server)', async () => {
    const ok = await unary<HelloReply>(client, 'Flaky', { name: 'r1', failures: 2 } satisfies StreamRequest);
    assert.equal(ok.err, null);
    assert.equal(ok.res?.message, 'flaky r1 after 3');
    assert.equal(greeter.attempts.get('r1'), 3);
    const exhausted = await unary<HelloReply>(client, 'Flaky', { name: 'r2', failures: 10 } satisfies StreamRequest);
    assert.equal(exhausted.err?.code, status.UNAVAILABLE);
    assert.equal(exhausted.err?.details, 'attempt 4 fails');
    assert.equal(greeter.attempts.get('r2'), 4, 'one try and 3 retries');
  });

  test('deadline: the client sees DEADLINE_EXCEEDED and the server call is cancelled', async () => {
    const r = await unary<HelloReply>(client, 'Slow', { name: 'dl1', delayMs: 10_000 } satisfies StreamRequest, 300);
    // grpc-js's own deadline timer starts first and normally wins. The outbound proxy's timer (grpc-timeout as the
    // route timeout) ends only after it; were the client's event loop late, the proxy's gRPC-shaped 504 UT would
    // arrive first — the next test checks that reply exactly.
    if (r.err?.code === status.UNAVAILABLE) assert.equal(r.err.details, 'upstream request timeout');
    else assert.equal(r.err?.code, status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 200 && !greeter.cancelled.includes('dl1'); i++) await sleep(25);
    assert.ok(greeter.cancelled.includes('dl1'), 'the upstream call was cancelled');
  });

  test('grpc-timeout is honoured by the proxies: outbound route timeout → UNAVAILABLE, inbound stream duration → DEADLINE_EXCEEDED', async () => {
    const grpcHeaders = { 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '200m' };
    // Outbound → a server without a sidecar: max_grpc_timeout (Istio's sidecar routes) makes grpc-timeout the
    // route timeout; its expiry is a 504 UT local reply, gRPC-shaped.
    const out = await h2Request(outbound, {
      authority: 'direct:50052',
      method: 'POST',
      path: '/helloworld.Greeter/Slow',
      headers: grpcHeaders,
      body: grpcFrame({ name: 'to1', delayMs: 10_000 }),
    });
    assert.equal(out.status, 200);
    // The proxy forwards the time left as grpc-timeout, so the server (grpc-js) arms the same deadline a little
    // later: the proxy's reply normally comes first, but under load the server's DEADLINE_EXCEEDED can win the race.
    if (out.headers['grpc-status'] !== String(status.DEADLINE_EXCEEDED)) {
      assert.equal(out.headers['content-type'], 'application/grpc');
      assert.equal(out.headers['grpc-status'], String(status.UNAVAILABLE));
      assert.equal(out.headers['grpc-message'], 'upstream request timeout');
    }
    // Straight to the server sidecar's inbound listener: max_stream_duration with grpc_timeout_header_max.
    const inb = await h2Request(inbound, {
      authority: 'greeter:50051',
      method: 'POST',
      path: '/helloworld.Greeter/Slow',
      headers: grpcHeaders,
      body: grpcFrame({ name: 'to2', delayMs: 10_000 }),
    });
    assert.equal(inb.status, 200);
    assert.equal(inb.headers['grpc-status'], String(status.DEADLINE_EXCEEDED));
    // The server (grpc-js) reads the same grpc-timeout and arms its own deadline a little after the proxy armed the
    // stream duration; the proxy's reply normally comes first, but under load the server's timer can win the race
    // (its own DEADLINE_EXCEEDED, `Deadline exceeded`). Either way the status is DEADLINE_EXCEEDED.
    if (inb.headers['grpc-message'] !== 'Deadline%20exceeded') assert.equal(inb.headers['grpc-message'], 'downstream duration timeout');
    for (let i = 0; i < 200 && !(direct.cancelled.includes('to1') && greeter.cancelled.includes('to2')); i++) await sleep(25);
    assert.ok(direct.cancelled.includes('to1') && greeter.cancelled.includes('to2'), 'both upstream calls were cancelled');
  });

  test('local replies are gRPC-shaped: no healthy upstream → UNAVAILABLE, no route → UNIMPLEMENTED', async () => {
    const nohost = new GreeterClient(`127.0.0.1:${outbound}`, credentials.createInsecure(), { 'grpc.default_authority': 'nohost:50053' }) as unknown as AnyClient;
    try {
      const r = await unary<HelloReply>(nohost, 'SayHello', { name: 'x' });
      assert.equal(r.err?.code, status.UNAVAILABLE);
      assert.equal(r.err?.details, 'no healthy upstream');
    } finally {
      nohost.close();
    }
    const nr = await new Promise<ServiceError | null>((resolve) => {
      directClient.makeUnaryRequest('/other.Service/Nope', (v: unknown) => Buffer.from(JSON.stringify(v)), (b: Buffer) => JSON.parse(b.toString()), {}, new Metadata(), { deadline: Date.now() + 20_000 }, (err) => resolve(err));
    });
    assert.equal(nr?.code, status.UNIMPLEMENTED);
  });
});
