// `weft proxy` end to end over TCP: the real `weft control-plane` and `weft proxy` commands in child processes, the
// proxy started with `--upstream HOST:PORT=LOCALPORT` (node metadata WEFT_UPSTREAMS) so the control plane gives it
// `127.0.0.1_<LOCALPORT>` listeners with tcp_proxy; upstreams are TCP echo servers on 127.0.0.1 (registered with
// WorkloadEntries). Each echo server echoes bytes as they arrive and, when the client ends its side, writes a
// trailer naming itself and the byte count, then ends: that trailer can only arrive if the proxy passed the
// client's FIN on and kept the other direction open (half-close). No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

const NODE_ID = 'e2e-tcp-client';

/** A TCP echo server that names itself in a trailer after the client's FIN. */
class EchoServer {
  server!: Server;
  port = 0;
  connections = 0;
  private readonly sockets = new Set<Socket>();
  constructor(readonly name: string) {}

  async start(): Promise<void> {
    this.server = createServer({ allowHalfOpen: true }, (s) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
      let n = 0;
      s.on('data', (d: Buffer) => {
        n += d.length;
        s.write(d);
      });
      s.on('end', () => s.end(`\n--${this.name} saw ${n} bytes`));
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

interface Conversation {
  /** Everything received, in order. */
  received: string;
  /** The client saw the other side's FIN. */
  ended: boolean;
}

/**
 * One connection: sends `message`, waits for the echo, then ends its write side and reads until the other side
 * ends. With `expectEcho` false the client just waits for the connection to close.
 */
function converse(port: number, message: string, expectEcho = true): Promise<Conversation> {
  return new Promise((resolve, reject) => {
    const c = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let received = '';
    let ended = false;
    const timer = setTimeout(() => {
      c.destroy();
      reject(new Error(`no end of conversation on ${port} after 10 s; got ${JSON.stringify(received)}`));
    }, 10_000);
    c.on('error', () => undefined);
    c.on('data', (d: Buffer) => {
      received += d.toString();
      if (expectEcho && received === message) c.end();
    });
    c.on('end', () => {
      ended = true;
      if (!expectEcho) c.end();
    });
    c.on('close', () => {
      clearTimeout(timer);
      resolve({ received, ended });
    });
    c.write(message);
  });
}

describe('weft proxy: TCP end to end', () => {
  const mesh = new MeshWorkDir('weft-proxy-tcp-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const v1 = new EchoServer('echo-v1');
  const v2 = new EchoServer('echo-v2');
  const local = { echo: 0, split: 0, empty: 0 };

  function meshYaml(): string {
    const we = (name: string, version: string, port: number) => workloadEntryYaml(name, { app: 'echo', version }, 'tcp-echo', port);
    return yamlDocuments([
      serviceYaml('echo', { name: 'tcp-echo', port: 9000 }),
      we('echo-v1', 'v1', v1.port),
      we('echo-v2', 'v2', v2.port),
      serviceYaml('tcp-split', { name: 'data', port: 9001, appProtocol: 'tcp' }),
      serviceYaml('empty', { name: 'tcp', port: 9002 }, 'nothing'),
      `apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: echo, namespace: default}\nspec:\n  host: echo\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n`,
      `apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: tcp-split, namespace: default}\nspec:\n  hosts: [tcp-split]\n  tcp:\n  - route:\n    - {destination: {host: echo, subset: v1, port: {number: 9000}}, weight: 75}\n    - {destination: {host: echo, subset: v2, port: {number: 9000}}, weight: 25}\n`,
    ]);
  }

  before(async () => {
    await v1.start();
    await v2.start();
    mesh.writeConfig('mesh.yaml', meshYaml());
    const cpAddr = await startControlPlane(cp, mesh.config);
    local.echo = await freePort();
    local.split = await freePort();
    local.empty = await freePort();
    const ports = ['--outbound-port', String(await freePort()), '--health-port', String(await freePort()), '--admin-port', String(await freePort()), '--stats-port', '0'];
    const upstreams = ['--upstream', `echo:9000=${local.echo}`, '--upstream', `tcp-split.default:9001=${local.split}`, '--upstream', `empty:9002=${local.empty}`];
    await proxy.start(proxyArgs(cpAddr.xds, NODE_ID, [...ports, ...upstreams]), /ready \(listeners: [^)]*\)/, 'proxy');
    for (const [name, port] of Object.entries(local)) {
      assert.match(proxy.stdout, new RegExp(`127\\.0\\.0\\.1_${port}=${port}\\b`), `listener for ${name} on ${port}:\n${proxy.stdout}\n${proxy.log()}`);
    }
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    await v1.stop();
    await v2.stop();
    mesh.remove();
  });

  test('echo through 127.0.0.1_<localPort>; the FIN is passed on and the reply after it still arrives', async () => {
    const before = v1.connections + v2.connections;
    const r = await converse(local.echo, 'hello through the mesh');
    assert.match(r.received, /^hello through the mesh\n--echo-v[12] saw 22 bytes$/);
    assert.ok(r.ended, "the server's FIN reached the client after its reply");
    assert.equal(v1.connections + v2.connections, before + 1);
  });

  test('half-close with a large payload: everything is echoed, then the trailer, then the FIN', async () => {
    const payload = 'x'.repeat(1_000_000);
    const r = await converse(local.echo, payload);
    assert.equal(r.received.length, payload.length + '\n--echo-v1 saw 1000000 bytes'.length);
    assert.ok(r.received.startsWith(payload));
    assert.match(r.received.slice(payload.length), /^\n--echo-v[12] saw 1000000 bytes$/);
    assert.ok(r.ended);
  });

  test('TCP route split 75/25 over 200 connections (VirtualService tcp route, weighted clusters)', async () => {
    const counts = new Map<string, number>();
    for (let batch = 0; batch < 10; batch++) {
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => converse(local.split, `c${batch}-${i}`)));
      for (const r of results) {
        const m = /--(echo-v[12]) saw \d+ bytes$/.exec(r.received);
        assert.ok(m, `unexpected reply ${JSON.stringify(r.received)}`);
        counts.set(m[1]!, (counts.get(m[1]!) ?? 0) + 1);
      }
    }
    const n1 = counts.get('echo-v1') ?? 0;
    const n2 = counts.get('echo-v2') ?? 0;
    assert.equal(n1 + n2, 200);
    // Binomial(200, 0.75): sd ≈ 6.1; ±30 is almost 5 sd.
    assert.ok(n1 >= 120 && n1 <= 180, `v1 got ${n1} of 200 connections`);
  });

  test('a service without endpoints: the connection is closed without a byte', async () => {
    // `converse` resolves when the connection closes: with a FIN, or with a reset when the proxy closed the socket
    // with the client's bytes unread (as Envoy's no-flush close does). Either way nothing came back.
    const r = await converse(local.empty, 'anyone there?', false);
    assert.equal(r.received, '');
  });

  test('the proxy is still serving after all that', async () => {
    const r = await converse(local.echo, 'still here');
    assert.match(r.received, /^still here\n--echo-v[12] saw 10 bytes$/);
  });
});
