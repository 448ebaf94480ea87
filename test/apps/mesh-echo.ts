/**
 * A LocalWorkload app for the runtime tests (plain Node, run by `weft up` as `node dist/test/apps/mesh-echo.js`).
 * It uses only the runtime's environment contract (docs/runtime.md):
 *
 * - HTTP on $PORT_HTTP (else $PORT): `GET /` answers `{workload, replica, namespace, env, xfcc}` as JSON (xfcc:
 *   the x-forwarded-client-cert header, when the sidecar passes one);
 *   `GET /call?host=H&path=P` calls `http://H/P` through the sidecar ($HTTP_PROXY: an absolute-form request to
 *   the outbound listener) and answers `{status, body}`;
 *   `GET /tcp?upstream=NAME&msg=M` connects to $<NAME>_ADDR, sends M, and answers with what came back.
 * - A line echo on $PORT_TCP when set (answers `<workload>-<replica>: <line>`).
 * - Prints `mesh-echo <workload>-<replica> listening on ...` to stdout (the runtime's log).
 * - $ECHO_EXIT_AFTER_MS: exit with code 3 after that long (a crashing app).
 */
import { createServer, request, type IncomingMessage } from 'node:http';
import { connect, createServer as createTcpServer } from 'node:net';

const me = `${process.env.WEFT_WORKLOAD}-${process.env.WEFT_REPLICA}`;
const httpPort = Number(process.env.PORT_HTTP ?? process.env.PORT);

function viaProxy(host: string, path: string): Promise<{ status: number; body: string }> {
  const proxy = new URL(process.env.HTTP_PROXY!);
  return new Promise((resolve, reject) => {
    const req = request({ host: proxy.hostname, port: Number(proxy.port), method: 'GET', path: `http://${host}${path}`, headers: { host } }, (res: IncomingMessage) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function viaTcp(addr: string, msg: string): Promise<string> {
  const i = addr.lastIndexOf(':');
  return new Promise((resolve, reject) => {
    const s = connect({ host: addr.slice(0, i), port: Number(addr.slice(i + 1)) });
    let got = '';
    s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
    s.on('connect', () => s.write(`${msg}\n`));
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('\n')) {
        s.end();
        resolve(got.trim());
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(got.trim()));
  });
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const reply = (status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === '/call') {
    viaProxy(url.searchParams.get('host')!, url.searchParams.get('path') ?? '/').then(
      (r) => reply(200, r),
      (e: Error) => reply(502, { error: e.message }),
    );
    return;
  }
  if (url.pathname === '/tcp') {
    const name = url.searchParams.get('upstream')!.toUpperCase().replace(/[^A-Z0-9]/g, '_');
    const addr = process.env[`${name}_ADDR`];
    if (!addr) return reply(500, { error: `no ${name}_ADDR` });
    viaTcp(addr, url.searchParams.get('msg') ?? 'hi').then(
      (r) => reply(200, { reply: r }),
      (e: Error) => reply(502, { error: e.message }),
    );
    return;
  }
  const env: Record<string, string | undefined> = {};
  for (const k of Object.keys(process.env)) if (/^(PORT|WEFT_|HTTP_PROXY|NO_PROXY|GRPC_XDS|GREETING)|_ADDR$/.test(k)) env[k] = process.env[k];
  // xfcc: the x-forwarded-client-cert header the sidecar passed (absent for plaintext callers).
  reply(200, { workload: process.env.WEFT_WORKLOAD, replica: Number(process.env.WEFT_REPLICA), namespace: process.env.WEFT_NAMESPACE, env, cwd: process.cwd(), xfcc: req.headers['x-forwarded-client-cert'] });
});

if (Number.isInteger(httpPort) && httpPort > 0) {
  server.listen(httpPort, '127.0.0.1', () => console.log(`mesh-echo ${me} listening on http ${httpPort}`));
}

const tcpPort = Number(process.env.PORT_TCP);
if (Number.isInteger(tcpPort) && tcpPort > 0) {
  createTcpServer((s) => {
    let buf = '';
    s.on('data', (d: Buffer) => {
      buf += d.toString();
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        s.end(`${me}: ${buf.slice(0, nl)}\n`);
        buf = '';
      }
    });
    s.on('error', () => undefined);
  }).listen(tcpPort, '127.0.0.1', () => console.log(`mesh-echo ${me} listening on tcp ${tcpPort}`));
}

const exitAfter = Number(process.env.ECHO_EXIT_AFTER_MS);
if (exitAfter > 0) setTimeout(() => process.exit(3), exitAfter);

process.on('SIGTERM', () => {
  console.log(`mesh-echo ${me} got SIGTERM`);
  process.exit(0);
});
