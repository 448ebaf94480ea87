// WebSocket (HTTP/1.1 Upgrade) through two real sidecars: client → outbound listener of proxy A → inbound listener
// of proxy B → a WebSocket server on 127.0.0.1, all configured by the real `weft control-plane` (whose connection
// managers allow the `websocket` upgrade, as Istio's). The client and the server are raw sockets with a minimal
// RFC 6455 frame codec written here (masked client frames, unmasked server frames). Checks: the handshake passes
// with Connection/Upgrade kept and the 101 comes back; messages both ways; an 8 MiB message echoed intact (flow
// control in both directions); a client half-close reaches the server, which can still answer; a non-101 answer
// is an ordinary response; an upgrade type that is not configured is refused with 403. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, startProxyOnFreePorts, WeftProcess, workloadEntryYaml, yamlDocuments, type ProxyPorts } from '../helpers/mesh-processes.js';
import { rawExchange, statValue } from '../helpers/raw-client.js';

const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const OP_TEXT = 1;
const OP_BINARY = 2;

// ---------------------------------------------------------------------------------------------------------------
// RFC 6455 frames (FIN set, no fragmentation)

function encodeFrame(opcode: number, payload: Buffer, masked: boolean): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const head = Buffer.alloc(2 + ext + (masked ? 4 : 0));
  head[0] = 0x80 | opcode;
  head[1] = (masked ? 0x80 : 0) | (ext === 0 ? len : ext === 2 ? 126 : 127);
  if (ext === 2) head.writeUInt16BE(len, 2);
  if (ext === 8) head.writeBigUInt64BE(BigInt(len), 2);
  if (!masked) return Buffer.concat([head, payload]);
  const key = randomBytes(4);
  key.copy(head, 2 + ext);
  const body = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) body[i] = payload[i]! ^ key[i & 3]!;
  return Buffer.concat([head, body]);
}

/** Incremental frame decoder: feed bytes, get whole frames (unmasked). */
class FrameReader {
  private buf: Buffer = Buffer.alloc(0);
  readonly frames: Array<{ opcode: number; payload: Buffer }> = [];
  feed(chunk: Buffer): void {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return;
      const masked = (b[1]! & 0x80) !== 0;
      let len = b[1]! & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskOff = off;
      if (masked) off += 4;
      if (b.length < off + len) return;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] = payload[i]! ^ b[maskOff + (i & 3)]!;
      this.frames.push({ opcode: b[0]! & 0x0f, payload });
      this.buf = b.subarray(off + len);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The WebSocket server: echoes every message; when the client half-closes it sends `bye <n messages>` and ends.

interface ServerSeen {
  requestHead: string;
  messages: number;
  sawClientEnd: boolean;
}

function startWsServer(seen: ServerSeen[]): Promise<Server> {
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    let head = Buffer.alloc(0);
    let upgraded = false;
    const reader = new FrameReader();
    const me: ServerSeen = { requestHead: '', messages: 0, sawClientEnd: false };
    sock.on('error', () => undefined);
    sock.on('data', (c: Buffer) => {
      if (upgraded) {
        reader.feed(c);
        for (const f of reader.frames.splice(0)) {
          me.messages++;
          const reply = f.opcode === OP_TEXT ? Buffer.from('echo:' + f.payload.toString('utf8')) : f.payload;
          sock.write(encodeFrame(f.opcode, reply, false));
        }
        return;
      }
      head = Buffer.concat([head, c]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      me.requestHead = head.subarray(0, end).toString('latin1');
      seen.push(me);
      const rest = head.subarray(end + 4);
      if (/^GET \/nows /.test(me.requestHead)) {
        sock.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nnot websocket');
        return;
      }
      const key = /\r\nsec-websocket-key: *([^\r\n]+)/i.exec(me.requestHead)?.[1] ?? '';
      const accept = createHash('sha1').update(key + WS_GUID).digest('base64');
      sock.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
      upgraded = true;
      if (rest.length > 0) sock.emit('data', rest);
    });
    sock.on('end', () => {
      me.sawClientEnd = true;
      sock.end(encodeFrame(OP_TEXT, Buffer.from(`bye ${me.messages}`), false));
    });
  });
  return new Promise((r) => server.listen(0, '127.0.0.1', () => r(server)));
}

// ---------------------------------------------------------------------------------------------------------------
// The WebSocket client

class WsClient {
  readonly sock: Socket;
  readonly reader = new FrameReader();
  response = '';
  ended = false;
  closed = false;
  private head = Buffer.alloc(0);
  private upgraded = false;
  private waiters: Array<() => void> = [];

  constructor(port: number, path: string, upgrade = 'websocket') {
    this.sock = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    const key = randomBytes(16).toString('base64');
    this.sock.on('error', () => undefined);
    this.sock.on('connect', () =>
      this.sock.write(`GET ${path} HTTP/1.1\r\nHost: ws:8080\r\nConnection: Upgrade\r\nUpgrade: ${upgrade}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n\r\n`),
    );
    this.sock.on('data', (c: Buffer) => {
      if (this.upgraded) this.reader.feed(c);
      else {
        this.head = Buffer.concat([this.head, c]);
        const end = this.head.indexOf('\r\n\r\n');
        if (end >= 0) {
          this.response = this.head.toString('latin1');
          if (/^HTTP\/1\.1 101 /.test(this.response)) {
            this.upgraded = true;
            this.response = this.head.subarray(0, end + 4).toString('latin1');
            const rest = this.head.subarray(end + 4);
            if (rest.length) this.reader.feed(rest);
          }
        }
      }
      this.wake();
    });
    this.sock.on('end', () => {
      this.ended = true;
      this.wake();
    });
    this.sock.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits (bounded) until `cond` holds. */
  async until(cond: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!cond()) {
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}; got: ${this.response.slice(0, 300)}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 100);
      });
    }
  }

  send(opcode: number, payload: Buffer): void {
    this.sock.write(encodeFrame(opcode, payload, true));
  }
}

// ---------------------------------------------------------------------------------------------------------------

describe('weft proxy: WebSocket upgrade through outbound and inbound sidecars', () => {
  const mesh = new MeshWorkDir('weft-upgrade-e2e-');
  const cp = new WeftProcess();
  const client = new WeftProcess();
  const serverSide = new WeftProcess();
  const seen: ServerSeen[] = [];
  let wsServer: Server;
  let outbound = 0;
  let clientAdmin = 0;

  before(async () => {
    wsServer = await startWsServer(seen);
    const wsPort = (wsServer.address() as AddressInfo).port;
    const inbound = await freePort();
    mesh.writeConfig(
      'mesh.yaml',
      yamlDocuments([
        serviceYaml('ws', { name: 'http-ws', port: 8080 }),
        workloadEntryYaml('ws-1', { app: 'ws' }, 'http-ws', inbound),
        // An HTTP/2 service: an upgrade to it would need extended CONNECT, which is not supported.
        serviceYaml('ws2', { name: 'http2', port: 8081 }),
        workloadEntryYaml('ws2-1', { app: 'ws2' }, 'http2', wsPort),
      ]),
    );
    const addr = await startControlPlane(cp, mesh.config);
    const common = (p: ProxyPorts) => ['--outbound-port', String(p.outbound), '--admin-port', String(p.admin), '--health-port', String(p.health), '--stats-port', '0'];
    await startProxyOnFreePorts(serverSide, (p) => ['proxy', '--xds', addr.xds, '--id', 'ws-server', '--namespace', 'default', '--labels', 'app=ws', '--workload-port', `${inbound}:${wsPort}/http`, ...common(p)]);
    const a = await startProxyOnFreePorts(client, (p) => proxyArgs(addr.xds, 'ws-client', common(p)));
    outbound = a.outbound;
    clientAdmin = a.admin;
  });

  after(async () => {
    await client.stop();
    await serverSide.stop();
    await cp.stop();
    await new Promise<void>((r) => wsServer?.close(() => r()));
    mesh.remove();
  });

  test('handshake, messages both ways, an 8 MiB message intact, and a half-close answered by the server', async () => {
    const ws = new WsClient(outbound, '/chat');
    await ws.until(() => ws.response !== '', '101');
    assert.match(ws.response, /^HTTP\/1\.1 101 /);
    assert.match(ws.response, /\r\nupgrade: websocket\r\n/i);
    assert.match(ws.response, /\r\nconnection: upgrade\r\n/i);
    assert.doesNotMatch(ws.response, /connection: close/i);
    const head = seen.at(-1)!.requestHead;
    assert.match(head, /^GET \/chat HTTP\/1\.1/);
    assert.match(head, /\r\nupgrade: websocket/i);
    assert.match(head, /\r\nconnection: upgrade/i);
    assert.match(head, /\r\nsec-websocket-key: /i);

    for (let i = 0; i < 5; i++) ws.send(OP_TEXT, Buffer.from(`hello ${i}`));
    await ws.until(() => ws.reader.frames.length >= 5, '5 echoes');
    assert.deepEqual(
      ws.reader.frames.splice(0).map((f) => f.payload.toString()),
      [0, 1, 2, 3, 4].map((i) => `echo:hello ${i}`),
    );

    const big = randomBytes(8 * 1024 * 1024);
    ws.send(OP_BINARY, big);
    await ws.until(() => ws.reader.frames.length >= 1, 'the big echo', 60_000);
    const echoed = ws.reader.frames.shift()!;
    assert.equal(echoed.opcode, OP_BINARY);
    assert.equal(createHash('sha256').update(echoed.payload).digest('hex'), createHash('sha256').update(big).digest('hex'));

    // Half-close: the server sees the end and can still send its goodbye, which arrives before the proxy's end.
    ws.sock.end();
    await ws.until(() => ws.ended, 'the end from the server side');
    assert.equal(ws.reader.frames.at(-1)?.payload.toString(), 'bye 6');
    assert.ok(seen.at(-1)!.sawClientEnd);
    await ws.until(() => ws.closed, 'the connection to close');
    assert.ok((await statValue(clientAdmin, 'http.outbound.downstream_cx_upgrades_total')) >= 1);
  });

  test('a non-101 answer to an upgrade request is an ordinary response', async () => {
    const ws = new WsClient(outbound, '/nows');
    await ws.until(() => ws.ended, 'the answer and the end of the connection');
    assert.match(ws.response, /^HTTP\/1\.1 400 /);
    assert.match(ws.response, /not websocket$/);
  });

  test('an upgrade type the connection manager does not allow → 403 upgrade_failed, and the connection closes', async () => {
    const before = await statValue(clientAdmin, 'http.outbound.downstream_rq_ws_on_non_ws_route');
    const n = seen.length;
    const r = await rawExchange(outbound, `GET /x HTTP/1.1\r\nHost: ws:8080\r\nConnection: Upgrade\r\nUpgrade: foo/1\r\nx-weft-debug: 1\r\n\r\n`);
    assert.match(r.text, /^HTTP\/1\.1 403 /);
    assert.match(r.text, /\r\nx-weft-response-code-details: upgrade_failed\r\n/i);
    assert.ok(r.closed);
    assert.equal(seen.length, n, 'nothing reached the server');
    assert.equal(await statValue(clientAdmin, 'http.outbound.downstream_rq_ws_on_non_ws_route'), before + 1);
  });

  test('a WebSocket upgrade to an HTTP/2 cluster → 403 upgrade_failed (no extended CONNECT), the connection closes', async () => {
    const n = seen.length;
    const r = await rawExchange(
      outbound,
      `GET /h2 HTTP/1.1\r\nHost: ws2:8081\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nx-weft-debug: 1\r\n\r\n`,
    );
    assert.match(r.text, /^HTTP\/1\.1 403 /);
    assert.match(r.text, /\r\nx-weft-response-code-details: upgrade_failed\r\n/i);
    assert.ok(r.closed);
    assert.equal(seen.length, n, 'nothing reached the server');
  });
});
