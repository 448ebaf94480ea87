/**
 * Micro-benchmark of the HTTP/1 codec (not a test): parses typical wrk-style requests (GET, 6 headers) and nginx-style
 * responses with Weft's parsers, and the same bytes with Node's own llhttp binding (`HTTPParser` from the internal
 * `_http_common` module, when this Node exposes it), then serializes heads. Prints ops/s for each.
 *
 * Run: npx tsc -p tsconfig.json && node dist/bench/proxy/micro/h1-parse.js [--seconds 1]
 */
import { createRequire } from 'node:module';
import type { HeaderList, RequestHead, ResponseHead } from '../../../src/proxy/http/headers.js';
import {
  FRAMING_CONTENT_LENGTH_ZERO,
  H1RequestParser,
  H1ResponseParser,
  removeHopByHopHeaders,
  serializeRequestHead,
  serializeResponseHead,
} from '../../../src/proxy/http/codec/h1/index.js';

const secondsArg = process.argv.indexOf('--seconds');
const SECONDS = secondsArg > 0 ? Number(process.argv[secondsArg + 1]) : 1;

const REQUEST =
  'GET /api/v1/items?page=2 HTTP/1.1\r\n' +
  'Host: backend.default.svc.cluster.local:8080\r\n' +
  'User-Agent: wrk/4.2.0\r\n' +
  'Accept: */*\r\n' +
  'Accept-Encoding: gzip, deflate\r\n' +
  'Connection: keep-alive\r\n' +
  'X-Request-Id: 1b4e28ba-2fa1-11d2-883f-0016d3cca427\r\n' +
  '\r\n';
const RESPONSE =
  'HTTP/1.1 200 OK\r\n' +
  'Server: nginx/1.24.0\r\n' +
  'Date: Tue, 01 Jul 2025 10:00:00 GMT\r\n' +
  'Content-Type: text/plain\r\n' +
  'Content-Length: 2\r\n' +
  'Connection: keep-alive\r\n' +
  '\r\n' +
  'ok';
const PIPELINE = 16;

const reqBuf = Buffer.from(REQUEST, 'latin1');
const resBuf = Buffer.from(RESPONSE, 'latin1');
const pipeBuf = Buffer.from(REQUEST.repeat(PIPELINE), 'latin1');

let sink = 0;

function bench(name: string, perIter: number, fn: () => void): number {
  // Warm up, then run for SECONDS of wall time in batches.
  for (let i = 0; i < 20_000; i++) fn();
  const batch = 1000;
  let iters = 0;
  const start = process.hrtime.bigint();
  const limit = BigInt(Math.round(SECONDS * 1e9));
  let elapsed = 0n;
  do {
    for (let i = 0; i < batch; i++) fn();
    iters += batch;
    elapsed = process.hrtime.bigint() - start;
  } while (elapsed < limit);
  const ops = (iters * perIter) / (Number(elapsed) / 1e9);
  console.log(`${name.padEnd(58)} ${Math.round(ops).toLocaleString('en-US').padStart(14)} ops/s`);
  return ops;
}

// --- Weft parsers -------------------------------------------------------------------------------------------
let lastReq: RequestHead | null = null;
const reqHandler = {
  onRequestHead(head: RequestHead): void {
    lastReq = head;
    sink += head.headers.length;
  },
  onBody(chunk: Buffer): void {
    sink += chunk.length;
  },
  onMessageComplete(_t: HeaderList | null): void {
    sink++;
  },
};
const weftReq = new H1RequestParser(reqHandler);

let lastRes: ResponseHead | null = null;
const resHandler = {
  onResponseHead(head: ResponseHead): void {
    lastRes = head;
    sink += head.headers.length;
  },
  onInterimHead(_head: ResponseHead): void {},
  onBody(chunk: Buffer): void {
    sink += chunk.length;
  },
  onMessageComplete(_t: HeaderList | null): void {
    sink++;
  },
};
const weftRes = new H1ResponseParser(resHandler);

console.log(`HTTP/1 codec micro-benchmark (node ${process.version}, ${SECONDS}s per case)`);
console.log(`request: ${reqBuf.length} bytes, 6 headers; response: ${resBuf.length} bytes, 5 headers + 2-byte body\n`);

const results: Record<string, number> = {};
results.weftReq = bench('weft H1RequestParser: 1 request per execute()', 1, () => {
  if (weftReq.execute(reqBuf) < 0) throw new Error(String(weftReq.error));
});
results.weftPipe = bench(`weft H1RequestParser: ${PIPELINE} pipelined requests per execute()`, PIPELINE, () => {
  if (weftReq.execute(pipeBuf) < 0) throw new Error(String(weftReq.error));
});
results.weftRes = bench('weft H1ResponseParser: 1 response per execute()', 1, () => {
  weftRes.expectResponseTo('GET');
  if (weftRes.execute(resBuf) < 0) throw new Error(String(weftRes.error));
});

// --- Node's llhttp binding ----------------------------------------------------------------------------------
interface NodeParser {
  initialize(type: number, resource: object, maxHeaderSize?: number, lenient?: number): void;
  execute(b: Buffer): number | Error;
  [k: number]: unknown;
}
interface NodeParserCtor {
  new (): NodeParser;
  REQUEST: number;
  RESPONSE: number;
}
let NodeHTTPParser: NodeParserCtor | null = null;
let kOnHeadersComplete = 0;
let kOnBody = 0;
let kOnMessageComplete = 0;
try {
  const common = createRequire(import.meta.url)('_http_common') as Record<string, unknown>;
  if (typeof common.HTTPParser === 'function') {
    NodeHTTPParser = common.HTTPParser as NodeParserCtor;
    kOnHeadersComplete = Number(common.kOnHeadersComplete ?? 2);
    kOnBody = Number(common.kOnBody ?? 3);
    kOnMessageComplete = Number(common.kOnMessageComplete ?? 4);
  }
} catch {
  NodeHTTPParser = null;
}

if (NodeHTTPParser) {
  const makeNode = (type: number): NodeParser => {
    const p = new NodeHTTPParser!();
    p.initialize(type, {}, 0, 0);
    p[kOnHeadersComplete] = (
      _maj: number,
      _min: number,
      headers: string[],
      method: number,
      url: string,
      status: number,
    ): number => {
      sink += headers.length + (url ? url.length : 0) + (method | 0) + (status | 0);
      return 0;
    };
    p[kOnBody] = (b: Buffer): void => {
      sink += b.length;
    };
    p[kOnMessageComplete] = (): void => {
      sink++;
    };
    return p;
  };
  const nodeReq = makeNode(NodeHTTPParser.REQUEST);
  const nodeRes = makeNode(NodeHTTPParser.RESPONSE);
  results.nodeReq = bench('node llhttp (HTTPParser): 1 request per execute()', 1, () => {
    const r = nodeReq.execute(reqBuf);
    if (typeof r !== 'number') throw r;
  });
  results.nodePipe = bench(`node llhttp (HTTPParser): ${PIPELINE} pipelined requests per execute()`, PIPELINE, () => {
    const r = nodeReq.execute(pipeBuf);
    if (typeof r !== 'number') throw r;
  });
  results.nodeRes = bench('node llhttp (HTTPParser): 1 response per execute()', 1, () => {
    const r = nodeRes.execute(resBuf);
    if (typeof r !== 'number') throw r;
  });
} else {
  console.log('node HTTPParser not accessible from _http_common: comparison skipped');
}

// --- Serializers ---------------------------------------------------------------------------------------------
weftReq.execute(reqBuf);
weftRes.expectResponseTo('GET');
weftRes.execute(resBuf);
const reqHead = lastReq as RequestHead | null;
const resHead = lastRes as ResponseHead | null;
if (!reqHead || !resHead) throw new Error('parsers produced no head');
results.serReq = bench('weft serializeRequestHead (hop-by-hop removed first)', 1, () => {
  const h = reqHead.headers.slice();
  removeHopByHopHeaders(h);
  sink += serializeRequestHead({ ...reqHead, headers: h }, 0).length;
});
results.serRes = bench('weft serializeResponseHead', 1, () => {
  sink += serializeResponseHead(resHead, FRAMING_CONTENT_LENGTH_ZERO).length;
});

if (results.nodeReq) {
  console.log(
    `\nweft/node: request ${(results.weftReq! / results.nodeReq).toFixed(2)}x, pipelined ${(
      results.weftPipe! / results.nodePipe!
    ).toFixed(2)}x, response ${(results.weftRes! / results.nodeRes!).toFixed(2)}x`,
  );
}
if (sink === -1) console.log('unreachable');
