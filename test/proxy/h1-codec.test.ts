// HTTP/1 codec: parsing features (requests and responses), serializers, hop-by-hop handling.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { HeaderList, RequestHead, ResponseHead } from '../../src/proxy/http/headers.js';
import {
  CHUNK_END,
  FRAME_CONNECT_REQUEST,
  FRAME_END_STREAM,
  FRAME_HAS_CONTENT_LENGTH,
  FRAME_HEAD_REQUEST,
  FRAME_HTTP10,
  FRAME_UPGRADE,
  FRAMING_CHUNK_BODY,
  FRAMING_CONTENT_LENGTH_ZERO,
  FRAMING_TRANSFER_ENCODING,
  H1RequestParser,
  H1ResponseParser,
  H1_ERROR_CODES,
  LAST_CHUNK,
  chunkHeader,
  encodeChunk,
  h1ErrorDetails,
  h1ErrorStatus,
  isValidAuthority,
  isValidFieldName,
  isValidFieldValue,
  removeHopByHopHeaders,
  requestFraming,
  responseFraming,
  sanitizeConnectionHeader,
  serializeRequestHead,
  serializeResponseHead,
  serializeTrailers,
  type H1RequestParserOptions,
  type H1ResponseParserOptions,
} from '../../src/proxy/http/codec/h1/index.js';

// ---- recorders ------------------------------------------------------------------------------------------------

interface ReqHeadEv {
  t: 'head';
  head: RequestHead;
  keepAlive: boolean;
  upgrade: boolean;
  chunked: boolean;
  contentLength: number;
  hasBody: boolean;
  expectContinue: boolean;
}
type ReqEv = ReqHeadEv | { t: 'body'; data: string } | { t: 'end'; trailers: HeaderList | null };

class ReqRec {
  events: ReqEv[] = [];
  chunks: Buffer[] = [];
  parser!: H1RequestParser;
  pauseOnEnd = false;
  onRequestHead(head: RequestHead): void {
    const p = this.parser;
    this.events.push({
      t: 'head',
      head,
      keepAlive: p.keepAlive,
      upgrade: p.upgrade,
      chunked: p.chunked,
      contentLength: p.contentLength,
      hasBody: p.hasBody,
      expectContinue: p.expectContinue,
    });
  }
  onBody(chunk: Buffer): void {
    this.chunks.push(chunk);
    const last = this.events[this.events.length - 1];
    if (last && last.t === 'body') last.data += chunk.toString('latin1');
    else this.events.push({ t: 'body', data: chunk.toString('latin1') });
  }
  onMessageComplete(trailers: HeaderList | null): void {
    this.events.push({ t: 'end', trailers });
    if (this.pauseOnEnd) this.parser.pause();
  }
}

function reqParser(opts: H1RequestParserOptions = {}): { p: H1RequestParser; rec: ReqRec } {
  const rec = new ReqRec();
  const p = new H1RequestParser(rec, opts);
  rec.parser = p;
  return { p, rec };
}

function parseReq(input: string | Buffer, opts: H1RequestParserOptions = {}) {
  const { p, rec } = reqParser(opts);
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  const n = p.execute(buf);
  return { n, error: p.error, events: rec.events, p, rec };
}

function heads(events: ReqEv[]): ReqHeadEv[] {
  return events.filter((e): e is ReqHeadEv => e.t === 'head');
}

interface ResHeadEv {
  t: 'head' | 'interim';
  head: ResponseHead;
  keepAlive: boolean;
  upgrade: boolean;
  readUntilClose: boolean;
  hasBody: boolean;
}
type ResEv = ResHeadEv | { t: 'body'; data: string } | { t: 'end'; trailers: HeaderList | null };

class ResRec {
  events: ResEv[] = [];
  parser!: H1ResponseParser;
  private ev(t: 'head' | 'interim', head: ResponseHead): ResHeadEv {
    const p = this.parser;
    return { t, head, keepAlive: p.keepAlive, upgrade: p.upgrade, readUntilClose: p.readUntilClose, hasBody: p.hasBody };
  }
  onResponseHead(head: ResponseHead): void {
    this.events.push(this.ev('head', head));
  }
  onInterimHead(head: ResponseHead): void {
    this.events.push({ t: 'interim', head, keepAlive: false, upgrade: false, readUntilClose: false, hasBody: false });
  }
  onBody(chunk: Buffer): void {
    const last = this.events[this.events.length - 1];
    if (last && last.t === 'body') last.data += chunk.toString('latin1');
    else this.events.push({ t: 'body', data: chunk.toString('latin1') });
  }
  onMessageComplete(trailers: HeaderList | null): void {
    this.events.push({ t: 'end', trailers });
  }
}

function resParser(opts: H1ResponseParserOptions = {}): { p: H1ResponseParser; rec: ResRec } {
  const rec = new ResRec();
  const p = new H1ResponseParser(rec, opts);
  rec.parser = p;
  return { p, rec };
}

function parseRes(input: string, method = 'GET') {
  const { p, rec } = resParser();
  p.expectResponseTo(method);
  const n = p.execute(Buffer.from(input, 'latin1'));
  return { n, error: p.error, events: rec.events, p };
}

// ---- requests ---------------------------------------------------------------------------------------------------

describe('H1RequestParser', () => {
  test('simple GET: head, Host as authority (not in headers), names as received, no body', () => {
    const r = parseReq('GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8\r\nACCEPT: */*\r\n\r\n');
    assert.equal(r.error, null);
    assert.equal(r.n, Buffer.byteLength('GET /a/b?x=1 HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: curl/8\r\nACCEPT: */*\r\n\r\n'));
    assert.equal(r.events.length, 2);
    const h = r.events[0] as ReqHeadEv;
    assert.deepEqual(h.head, {
      method: 'GET',
      path: '/a/b?x=1',
      authority: 'example.com:8080',
      scheme: 'http',
      headers: ['User-Agent', 'curl/8', 'ACCEPT', '*/*'],
      httpVersion: '1.1',
    });
    assert.equal(h.keepAlive, true);
    assert.equal(h.hasBody, false);
    assert.equal(h.contentLength, -1);
    assert.deepEqual(r.events[1], { t: 'end', trailers: null });
    assert.equal(r.p.messages, 1);
    assert.equal(r.p.idle, true);
  });

  test('field values: leading/trailing OWS trimmed, inner whitespace kept, empty values, obs-text kept as latin1', () => {
    const r = parseReq('GET / HTTP/1.1\r\nHost: h\r\nA:   x  y \t\r\nB:\r\nC: \t \r\nD: caf\xe9\r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual((r.events[0] as ReqHeadEv).head.headers, ['A', 'x  y', 'B', '', 'C', '', 'D', 'caf\xe9']);
  });

  test('scheme option applies to origin-form requests', () => {
    const r = parseReq('GET / HTTP/1.1\r\nHost: h\r\n\r\n', { scheme: 'https' });
    assert.equal((r.events[0] as ReqHeadEv).head.scheme, 'https');
  });

  test('Content-Length body is delivered as views of the input buffer (no copy)', () => {
    const input = Buffer.from('POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\nhello world', 'latin1');
    const r = parseReq(input);
    assert.equal(r.error, null);
    const h = r.events[0] as ReqHeadEv;
    assert.equal(h.contentLength, 11);
    assert.equal(h.hasBody, true);
    assert.deepEqual(h.head.headers, ['Content-Length', '11']);
    assert.deepEqual(r.events.slice(1), [{ t: 'body', data: 'hello world' }, { t: 'end', trailers: null }]);
    assert.equal(r.rec.chunks.length, 1);
    assert.equal(r.rec.chunks[0]!.buffer, input.buffer, 'body chunk shares the input memory');
  });

  test('Content-Length: 0 completes at the head', () => {
    const r = parseReq('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n');
    assert.equal((r.events[0] as ReqHeadEv).hasBody, false);
    assert.deepEqual(r.events[1], { t: 'end', trailers: null });
  });

  test('chunked body is de-chunked; extensions ignored; trailers reported', () => {
    const body =
      '5;name=value;flag\r\nhello\r\n' +
      'A ; q="quoted; string"\r\n, world!!!\r\n' +
      '000\r\n' +
      'X-Checksum: abc\r\nX-Other:  v \r\n\r\n';
    const r = parseReq('POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' + body);
    assert.equal(r.error, null);
    const h = r.events[0] as ReqHeadEv;
    assert.equal(h.chunked, true);
    assert.equal(h.hasBody, true);
    assert.deepEqual(h.head.headers, ['Transfer-Encoding', 'chunked']);
    assert.deepEqual(r.events.slice(1), [
      { t: 'body', data: 'hello, world!!!' },
      { t: 'end', trailers: ['X-Checksum', 'abc', 'X-Other', 'v'] },
    ]);
  });

  test('chunk sizes: upper/lower hex and leading zeros; TE value is case-insensitive', () => {
    const data = 'x'.repeat(0x1f) + 'y'.repeat(0xab);
    const r = parseReq(
      'PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n001F\r\n' + 'x'.repeat(0x1f) + '\r\nab\r\n' + 'y'.repeat(0xab) + '\r\n0\r\n\r\n',
    );
    assert.equal(r.error, null);
    assert.deepEqual(r.events.slice(1), [{ t: 'body', data }, { t: 'end', trailers: null }]);
  });

  test('pipelining: several requests in one chunk are parsed in order', () => {
    const input =
      'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n' +
      'POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc' +
      'PUT /3 HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nxy\r\n0\r\n\r\n' +
      'DELETE /4 HTTP/1.1\r\nHost: d\r\nConnection: close\r\n\r\n';
    const r = parseReq(input);
    assert.equal(r.error, null);
    assert.equal(r.n, Buffer.byteLength(input));
    assert.deepEqual(
      r.events.map((e) => (e.t === 'head' ? `${e.head.method} ${e.head.path} ${e.head.authority}` : e.t === 'body' ? e.data : 'end')),
      ['GET /1 a', 'end', 'POST /2 b', 'abc', 'end', 'PUT /3 c', 'xy', 'end', 'DELETE /4 d', 'end'],
    );
    assert.equal(heads(r.events)[3]!.keepAlive, false);
    assert.equal(r.p.messages, 4);
  });

  test('pause() in a callback stops execute(); the rest is executed later', () => {
    const { p, rec } = reqParser();
    rec.pauseOnEnd = true;
    const first = 'GET /1 HTTP/1.1\r\nHost: a\r\n\r\n';
    const input = Buffer.from(first + 'POST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nok' + 'GET /3 HTTP/1.1\r\nHost: c\r\n\r\n');
    let rest = input;
    const consumed: number[] = [];
    while (rest.length > 0) {
      const n = p.execute(rest);
      assert.ok(n >= 0);
      consumed.push(n);
      rest = rest.subarray(n);
    }
    assert.equal(consumed[0], first.length);
    assert.equal(consumed.length, 3);
    assert.deepEqual(
      rec.events.map((e) => e.t),
      ['head', 'end', 'head', 'body', 'end', 'head', 'end'],
    );
  });

  test('keep-alive decision: version and Connection options', () => {
    const cases: Array<[string, string, boolean]> = [
      ['1.1', '', true],
      ['1.1', 'Connection: close\r\n', false],
      ['1.1', 'Connection: Keep-Alive, CLOSE\r\n', false],
      ['1.1', 'Connection: keep-alive\r\n', true],
      ['1.0', '', false],
      ['1.0', 'Connection: keep-alive\r\n', true],
      ['1.0', 'Connection: Keep-Alive\r\nConnection: close\r\n', false],
      ['1.0', 'Connection: foo, keep-alive\r\n', true],
    ];
    for (const [v, conn, want] of cases) {
      const r = parseReq(`GET / HTTP/${v}\r\nHost: h\r\n${conn}\r\n`, { acceptHttp10: true });
      assert.equal(r.error, null, `${v} ${conn}`);
      assert.equal((r.events[0] as ReqHeadEv).keepAlive, want, `HTTP/${v} ${JSON.stringify(conn)}`);
    }
  });

  test('Expect: 100-continue flag (HTTP/1.1 only, case-insensitive)', () => {
    const r1 = parseReq('POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n');
    assert.equal((r1.events[0] as ReqHeadEv).expectContinue, true);
    assert.deepEqual((r1.events[0] as ReqHeadEv).head.headers, ['Expect', '100-Continue', 'Content-Length', '1']);
    const r2 = parseReq('POST / HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n', { acceptHttp10: true });
    assert.equal((r2.events[0] as ReqHeadEv).expectContinue, false, 'RFC 9110 §10.1.1: ignored for HTTP/1.0');
    const r3 = parseReq('POST / HTTP/1.1\r\nHost: h\r\nExpect: 200-ok\r\n\r\n');
    assert.equal((r3.events[0] as ReqHeadEv).expectContinue, false);
  });

  test('WebSocket upgrade: raw bytes after the head go to onBody, finish() completes', () => {
    const { p, rec } = reqParser();
    const head =
      'GET /chat HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n';
    assert.equal(p.execute(Buffer.from(head + '\x81\x05hello', 'latin1')), head.length + 7);
    assert.equal(p.execute(Buffer.from('GET / HTTP/1.1\r\n\r\n')), 18, 'later bytes are tunnel data, not HTTP');
    assert.equal(p.finish(), 0);
    const h = rec.events[0] as ReqHeadEv;
    assert.equal(h.upgrade, true);
    assert.equal(h.keepAlive, false);
    assert.equal(h.hasBody, true);
    assert.deepEqual(h.head.headers, ['Connection', 'keep-alive, Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Version', '13']);
    assert.deepEqual(rec.events.slice(1), [
      { t: 'body', data: '\x81\x05helloGET / HTTP/1.1\r\n\r\n' },
      { t: 'end', trailers: null },
    ]);
  });

  test('Upgrade without the Connection option is not an upgrade', () => {
    const r = parseReq('GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n');
    assert.equal((r.events[0] as ReqHeadEv).upgrade, false);
    assert.deepEqual(r.events[1], { t: 'end', trailers: null });
  });

  test('Upgrade: h2c is ignored as Envoy does (Upgrade, HTTP2-Settings and their Connection options removed)', () => {
    const r = parseReq(
      'GET /x HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings, keep-alive\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\nAccept: */*\r\n\r\n',
    );
    assert.equal(r.error, null);
    const h = r.events[0] as ReqHeadEv;
    assert.equal(h.upgrade, false);
    assert.deepEqual(h.head.headers, ['Accept', '*/*', 'Connection', 'keep-alive']);
    assert.deepEqual(r.events[1], { t: 'end', trailers: null });
  });

  test('CONNECT: authority-form target, empty path, tunnel; Content-Length: 0 dropped', () => {
    const { p, rec } = reqParser();
    const head = 'CONNECT db.internal:5432 HTTP/1.1\r\nHost: db.internal:5432\r\nContent-Length: 0\r\n\r\n';
    assert.equal(p.execute(Buffer.from(head + 'raw')), head.length + 3);
    const h = rec.events[0] as ReqHeadEv;
    assert.equal(h.head.method, 'CONNECT');
    assert.equal(h.head.path, '');
    assert.equal(h.head.authority, 'db.internal:5432');
    assert.deepEqual(h.head.headers, []);
    assert.equal(h.upgrade, true);
    assert.deepEqual(rec.events[1], { t: 'body', data: 'raw' });
    const v6 = parseReq('CONNECT [2001:db8::1]:443 HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal((v6.events[0] as ReqHeadEv).head.authority, '[2001:db8::1]:443');
  });

  test('absolute-form targets (HTTP_PROXY clients): authority and scheme from the URI, Host ignored', () => {
    const cases: Array<[string, string, string, string]> = [
      ['http://svc.ns:8080/p/q?x=1', 'svc.ns:8080', '/p/q?x=1', 'http'],
      ['HTTPS://Example.COM/', 'Example.COM', '/', 'https'],
      ['http://svc', 'svc', '/', 'http'],
      ['http://svc?x=1', 'svc', '/?x=1', 'http'],
      ['http://[::1]:9000/a', '[::1]:9000', '/a', 'http'],
    ];
    for (const [target, authority, path, scheme] of cases) {
      const r = parseReq(`GET ${target} HTTP/1.1\r\nHost: other.example\r\n\r\n`);
      assert.equal(r.error, null, target);
      const h = (r.events[0] as ReqHeadEv).head;
      assert.equal(h.authority, authority, target);
      assert.equal(h.path, path, target);
      assert.equal(h.scheme, scheme, target);
    }
    const noHost = parseReq('GET http://svc:1/x HTTP/1.1\r\n\r\n');
    assert.equal(noHost.error, null, 'absolute-form needs no Host field');
    assert.equal((noHost.events[0] as ReqHeadEv).head.authority, 'svc:1');
  });

  test('OPTIONS * (asterisk form)', () => {
    const r = parseReq('OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.equal((r.events[0] as ReqHeadEv).head.path, '*');
  });

  test('HTTP/1.0 with acceptHttp10; default host for HTTP/1.0 without Host', () => {
    const r = parseReq('GET / HTTP/1.0\r\n\r\n', { acceptHttp10: true, defaultHostForHttp10: 'fallback.local' });
    assert.equal(r.error, null);
    const h = r.events[0] as ReqHeadEv;
    assert.equal(h.head.httpVersion, '1.0');
    assert.equal(h.head.authority, 'fallback.local');
    assert.equal(h.keepAlive, false);
  });

  test('HTTP/1.x with x > 1 is served as HTTP/1.1 (RFC 9110 §2.5)', () => {
    const r = parseReq('GET / HTTP/1.2\r\nHost: h\r\n\r\n');
    assert.equal(r.error, null);
    assert.equal((r.events[0] as ReqHeadEv).head.httpVersion, '1.1');
  });

  test('empty lines before a request line are skipped (RFC 9112 §2.2)', () => {
    const r = parseReq('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nx\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual(heads(r.events).map((h) => h.head.path), ['/', '/2']);
  });

  test('duplicate Content-Length is refused even with the same value (as Envoy)', () => {
    const r = parseReq('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc');
    assert.equal(r.error, 'CONFLICTING_CONTENT_LENGTH');
  });

  test('allowChunkedLength: Content-Length dropped when TE is chunked (Envoy allow_chunked_length)', () => {
    const r = parseReq('POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 50\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nz\r\n0\r\n\r\n', {
      allowChunkedLength: true,
    });
    assert.equal(r.error, null);
    const h = r.events[0] as ReqHeadEv;
    assert.equal(h.contentLength, -1);
    assert.equal(h.chunked, true);
    assert.deepEqual(h.head.headers, ['Transfer-Encoding', 'chunked']);
    assert.deepEqual(r.events[1], { t: 'body', data: 'z' });
  });

  test('custom methods only with allowCustomMethods; common methods are interned constants', () => {
    assert.equal(parseReq('QUERY / HTTP/1.1\r\nHost: h\r\n\r\n').error, 'INVALID_METHOD');
    const r = parseReq('QUERY / HTTP/1.1\r\nHost: h\r\n\r\n', { allowCustomMethods: true });
    assert.equal(r.error, null);
    assert.equal((r.events[0] as ReqHeadEv).head.method, 'QUERY');
    for (const m of ['PROPFIND', 'MKCALENDAR', 'MSEARCH', 'PURGE', 'PATCH', 'TRACE']) {
      assert.equal(parseReq(`${m} / HTTP/1.1\r\nHost: h\r\n\r\n`).error, null, m);
    }
  });

  test('Connection options are sanitized as Envoy (nominated fields removed, TE reduced to trailers)', () => {
    const r = parseReq('GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Hop, TE\r\nX-Hop: 1\r\nTE: trailers, deflate\r\nX-Keep: 2\r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual((r.events[0] as ReqHeadEv).head.headers, ['X-Keep', '2', 'te', 'trailers', 'Connection', 'keep-alive,TE']);
  });

  test('large Content-Length body in 64 KiB chunks arrives intact', () => {
    const body = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7 + 3) & 0xff;
    const head = Buffer.from(`POST /big HTTP/1.1\r\nHost: h\r\nContent-Length: ${body.length}\r\n\r\n`);
    const all = Buffer.concat([head, body, Buffer.from('GET /after HTTP/1.1\r\nHost: h\r\n\r\n')]);
    const { p, rec } = reqParser();
    for (let off = 0; off < all.length; off += 65536) assert.ok(p.execute(all.subarray(off, off + 65536)) >= 0);
    assert.equal(p.error, null);
    assert.ok(Buffer.concat(rec.chunks).equals(body));
    assert.deepEqual(heads(rec.events).map((h) => h.head.path), ['/big', '/after']);
  });

  test('large chunked body with varied chunk sizes arrives intact', () => {
    const parts: Buffer[] = [];
    const chunks: string[] = [];
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    let total = 0;
    while (total < 2 * 1024 * 1024) {
      const size = 1 + rnd(40000);
      const data = Buffer.alloc(size, 97 + rnd(26));
      parts.push(data);
      chunks.push(size.toString(16) + (rnd(3) === 0 ? ';e=' + rnd(99) : '') + '\r\n' + data.toString('latin1') + '\r\n');
      total += size;
    }
    const input = Buffer.from('POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n' + chunks.join('') + '0\r\n\r\n', 'latin1');
    const { p, rec } = reqParser();
    for (let off = 0; off < input.length; ) {
      const step = 1 + rnd(70000);
      assert.ok(p.execute(input.subarray(off, off + step)) >= 0, String(p.error));
      off += step;
    }
    assert.ok(Buffer.concat(rec.chunks).equals(Buffer.concat(parts)));
    assert.deepEqual(rec.events[rec.events.length - 1], { t: 'end', trailers: null });
  });

  test('HTTP/2 preface → H2C_PRIOR_KNOWLEDGE with every byte from the preface in parser.rest', () => {
    const preface = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';
    const frames = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    const r = parseReq(Buffer.concat([Buffer.from(preface), frames]));
    assert.equal(r.n, -1);
    assert.equal(r.error, 'H2C_PRIOR_KNOWLEDGE');
    assert.ok(r.p.rest!.equals(Buffer.concat([Buffer.from(preface), frames])));
    assert.equal(h1ErrorStatus('H2C_PRIOR_KNOWLEDGE'), 0);
    // Split inside the preface line.
    const { p } = reqParser();
    assert.equal(p.execute(Buffer.from('PRI * HT')), 8);
    assert.equal(p.execute(Buffer.from('TP/2.0\r\n\r\nSM\r\n\r\n')), -1);
    assert.equal(p.error, 'H2C_PRIOR_KNOWLEDGE');
    assert.equal(p.rest!.toString(), preface);
    // Not after an HTTP/1 request on the same connection.
    const later = parseReq('GET / HTTP/1.1\r\nHost: h\r\n\r\n' + preface);
    assert.equal(later.error, 'INVALID_METHOD');
  });

  test('finish(): clean between messages, INCOMPLETE_MESSAGE inside one', () => {
    const a = reqParser();
    a.p.execute(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n'));
    assert.equal(a.p.finish(), 0);
    for (const partial of ['GET / HT', 'GET / HTTP/1.1\r\nHost: h\r\n', 'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab', 'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab']) {
      const b = reqParser();
      assert.ok(b.p.execute(Buffer.from(partial)) >= 0);
      assert.equal(b.p.finish(), -1, partial);
      assert.equal(b.p.error, 'INCOMPLETE_MESSAGE');
    }
  });

  test('after an error execute() keeps failing; reset() makes the parser reusable', () => {
    const { p, rec } = reqParser();
    assert.equal(p.execute(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n')), -1);
    assert.equal(p.error, 'WHITESPACE_BEFORE_COLON');
    assert.equal(p.execute(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\n\r\n')), -1);
    assert.equal(rec.events.length, 0);
    p.reset();
    assert.equal(p.error, null);
    assert.ok(p.execute(Buffer.from('GET /ok HTTP/1.1\r\nHost: h\r\n\r\n')) > 0);
    assert.equal((rec.events[0] as ReqHeadEv).head.path, '/ok');
  });
});

// ---- responses --------------------------------------------------------------------------------------------------

describe('H1ResponseParser', () => {
  test('200 with Content-Length, reason as received', () => {
    const r = parseRes('HTTP/1.1 200 All Good\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok');
    assert.equal(r.error, null);
    const h = r.events[0] as ResHeadEv;
    assert.deepEqual(h.head, { status: 200, reason: 'All Good', headers: ['Content-Type', 'text/plain', 'Content-Length', '2'] });
    assert.equal(h.keepAlive, true);
    assert.deepEqual(r.events.slice(1), [{ t: 'body', data: 'ok' }, { t: 'end', trailers: null }]);
  });

  test('status line without a reason phrase is tolerated', () => {
    const r = parseRes('HTTP/1.1 404\r\nContent-Length: 0\r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual((r.events[0] as ResHeadEv).head, { status: 404, reason: '', headers: ['Content-Length', '0'] });
  });

  test('chunked response with trailers (gRPC-style)', () => {
    const r = parseRes('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\ngrpc-message: \r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual(r.events.slice(1), [{ t: 'body', data: 'abc' }, { t: 'end', trailers: ['grpc-status', '0', 'grpc-message', ''] }]);
  });

  test('HEAD response has no body even with Content-Length or chunked', () => {
    for (const framing of ['Content-Length: 1234\r\n', 'Transfer-Encoding: chunked\r\n']) {
      const { p, rec } = resParser();
      p.expectResponseTo('HEAD');
      const input = 'HTTP/1.1 200 OK\r\n' + framing + '\r\nHTTP/1.1 204 No Content\r\n\r\n';
      p.expectResponseTo('HEAD');
      assert.equal(p.execute(Buffer.from(input)), input.length);
      assert.deepEqual(rec.events.map((e) => (e.t === 'head' ? e.head.status : e.t)), [200, 'end', 204, 'end']);
    }
  });

  test('204 and 304 have no body; 304 keeps its Content-Length; 204 drops Content-Length: 0', () => {
    const r = parseRes('HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\nETag: "x"\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual(r.events.map((e) => e.t), ['head', 'end', 'head', 'end']);
    assert.deepEqual((r.events[0] as ResHeadEv).head.headers, ['Content-Length', '99', 'ETag', '"x"']);
    assert.deepEqual((r.events[2] as ResHeadEv).head.headers, []);
  });

  test('1xx interim responses before the final response', () => {
    const r = parseRes('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 1\r\n\r\nx');
    assert.equal(r.error, null);
    assert.deepEqual(
      r.events.map((e) => (e.t === 'head' || e.t === 'interim' ? `${e.t}:${e.head.status}` : e.t)),
      ['interim:100', 'interim:103', 'head:201', 'body', 'end'],
    );
    assert.deepEqual((r.events[1] as ResHeadEv).head.headers, ['Link', '</s.css>']);
  });

  test('101 Switching Protocols: tunnel; bytes pass raw until finish()', () => {
    const { p, rec } = resParser();
    p.expectResponseTo('GET');
    const head = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n';
    assert.equal(p.execute(Buffer.from(head + '\x82\x01z', 'latin1')), head.length + 3);
    const h = rec.events[0] as ResHeadEv;
    assert.equal(h.upgrade, true);
    assert.equal(h.keepAlive, false);
    assert.equal(p.finish(), 0);
    assert.deepEqual(rec.events.slice(1), [{ t: 'body', data: '\x82\x01z' }, { t: 'end', trailers: null }]);
  });

  test('2xx to CONNECT opens a tunnel; a refused CONNECT is an ordinary response', () => {
    const ok = parseRes('HTTP/1.1 200 Connection Established\r\n\r\nraw-bytes', 'CONNECT');
    assert.equal((ok.events[0] as ResHeadEv).upgrade, true);
    assert.deepEqual(ok.events[1], { t: 'body', data: 'raw-bytes' });
    const refused = parseRes('HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno', 'CONNECT');
    assert.equal((refused.events[0] as ResHeadEv).upgrade, false);
    assert.deepEqual(refused.events.slice(1), [{ t: 'body', data: 'no' }, { t: 'end', trailers: null }]);
  });

  test('response without framing is delimited by the connection close', () => {
    const { p, rec } = resParser();
    p.expectResponseTo('GET');
    assert.ok(p.execute(Buffer.from('HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>')) > 0);
    assert.ok(p.execute(Buffer.from('</html>')) > 0);
    const h = rec.events[0] as ResHeadEv;
    assert.equal(h.readUntilClose, true);
    assert.equal(h.keepAlive, false);
    assert.equal(rec.events[rec.events.length - 1]!.t, 'body');
    assert.equal(p.finish(), 0);
    assert.deepEqual(rec.events.slice(1), [{ t: 'body', data: '<html></html>' }, { t: 'end', trailers: null }]);
  });

  test('response keep-alive: HTTP/1.0 needs keep-alive; close ends it', () => {
    assert.equal((parseRes('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n').events[0] as ResHeadEv).keepAlive, false);
    assert.equal((parseRes('HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n').events[0] as ResHeadEv).keepAlive, true);
    assert.equal((parseRes('HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n').events[0] as ResHeadEv).keepAlive, false);
  });

  test('whitespace before a response field colon is removed (RFC 9112 §5.1)', () => {
    const r = parseRes('HTTP/1.1 200 OK\r\nX-Odd \t: v\r\nContent-Length: 0\r\n\r\n');
    assert.equal(r.error, null);
    assert.deepEqual((r.events[0] as ResHeadEv).head.headers, ['X-Odd', 'v', 'Content-Length', '0']);
  });

  test('the method expectation applies to one response only', () => {
    const { p, rec } = resParser();
    p.expectResponseTo('HEAD');
    const input = 'HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc';
    assert.equal(p.execute(Buffer.from(input)), input.length);
    assert.deepEqual(rec.events.map((e) => e.t), ['head', 'end', 'head', 'body', 'end']);
  });
});

// ---- serializers --------------------------------------------------------------------------------------------------

describe('serializers', () => {
  test('request head: one string, host from the authority, Host entries skipped, framing field', () => {
    const head: RequestHead = {
      method: 'POST',
      path: '/p?q=1',
      authority: 'svc.ns:80',
      scheme: 'http',
      headers: ['X-A', '1', 'Host', 'ignored', 'content-type', 'text/plain'],
      httpVersion: '1.0',
    };
    assert.equal(
      serializeRequestHead(head, FRAMING_TRANSFER_ENCODING | FRAMING_CHUNK_BODY),
      'POST /p?q=1 HTTP/1.1\r\nhost: svc.ns:80\r\nX-A: 1\r\ncontent-type: text/plain\r\ntransfer-encoding: chunked\r\n\r\n',
    );
    assert.equal(
      serializeRequestHead({ ...head, method: 'GET', headers: [] }, FRAMING_CONTENT_LENGTH_ZERO),
      'GET /p?q=1 HTTP/1.1\r\nhost: svc.ns:80\r\ncontent-length: 0\r\n\r\n',
    );
    assert.equal(
      serializeRequestHead({ ...head, method: 'CONNECT', path: '', headers: [] }, 0),
      'CONNECT svc.ns:80 HTTP/1.1\r\nhost: svc.ns:80\r\n\r\n',
    );
  });

  test('response head: standard reason phrase (Envoy), optional preserved reason, HTTP/1.0 prefix', () => {
    const head: ResponseHead = { status: 200, reason: 'Fine', headers: ['content-length', '2'] };
    assert.equal(serializeResponseHead(head, 0), 'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n');
    assert.equal(serializeResponseHead(head, 0, false, true), 'HTTP/1.1 200 Fine\r\ncontent-length: 2\r\n\r\n');
    assert.equal(serializeResponseHead({ status: 503, headers: [] }, FRAMING_CONTENT_LENGTH_ZERO, true), 'HTTP/1.0 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n');
    assert.equal(serializeResponseHead({ status: 599, headers: [] }, 0), 'HTTP/1.1 599 Unknown\r\n\r\n');
    assert.equal(serializeResponseHead({ status: 431, headers: [] }, 0), 'HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n');
  });

  test('request framing follows Envoy (RequestEncoderImpl)', () => {
    assert.equal(requestFraming('POST', FRAME_HAS_CONTENT_LENGTH), 0);
    assert.equal(requestFraming('POST', 0), FRAMING_TRANSFER_ENCODING | FRAMING_CHUNK_BODY);
    assert.equal(requestFraming('POST', FRAME_END_STREAM), FRAMING_CONTENT_LENGTH_ZERO);
    for (const m of ['GET', 'HEAD', 'DELETE', 'TRACE']) assert.equal(requestFraming(m, FRAME_END_STREAM), 0, m);
    assert.equal(requestFraming('CONNECT', 0), 0);
    assert.equal(requestFraming('GET', FRAME_UPGRADE), 0);
  });

  test('response framing follows Envoy (encodeHeadersBase)', () => {
    assert.equal(responseFraming(200, FRAME_HAS_CONTENT_LENGTH), 0);
    assert.equal(responseFraming(200, 0), FRAMING_TRANSFER_ENCODING | FRAMING_CHUNK_BODY);
    assert.equal(responseFraming(200, FRAME_END_STREAM), FRAMING_CONTENT_LENGTH_ZERO);
    assert.equal(responseFraming(204, FRAME_END_STREAM), 0);
    assert.equal(responseFraming(304, 0), 0);
    assert.equal(responseFraming(100, 0), 0);
    assert.equal(responseFraming(200, FRAME_HEAD_REQUEST | FRAME_END_STREAM), FRAMING_TRANSFER_ENCODING);
    assert.equal(responseFraming(200, FRAME_HTTP10), 0);
    assert.equal(responseFraming(200, FRAME_CONNECT_REQUEST), 0);
    assert.equal(responseFraming(403, FRAME_CONNECT_REQUEST), FRAMING_TRANSFER_ENCODING | FRAMING_CHUNK_BODY);
    assert.equal(responseFraming(200, FRAME_UPGRADE), FRAMING_TRANSFER_ENCODING);
  });

  test('chunk helpers round-trip through the parser', () => {
    assert.equal(chunkHeader(255), 'ff\r\n');
    assert.equal(encodeChunk(Buffer.from('hello')).toString(), '5\r\nhello\r\n');
    assert.equal(encodeChunk(Buffer.alloc(0)).length, 0);
    const wire = Buffer.concat([
      Buffer.from(serializeResponseHead({ status: 200, headers: ['trailer', 'x-sum'] }, FRAMING_TRANSFER_ENCODING), 'latin1'),
      encodeChunk(Buffer.from('abc')),
      Buffer.from(chunkHeader(2) + 'de' + CHUNK_END, 'latin1'),
      Buffer.from(serializeTrailers(['x-sum', '42']), 'latin1'),
      Buffer.from(serializeResponseHead({ status: 200, headers: [] }, FRAMING_TRANSFER_ENCODING) + LAST_CHUNK, 'latin1'),
    ]);
    const { p, rec } = resParser();
    assert.equal(p.execute(wire), wire.length);
    assert.deepEqual(rec.events.slice(1), [
      { t: 'body', data: 'abcde' },
      { t: 'end', trailers: ['x-sum', '42'] },
      rec.events[3],
      { t: 'end', trailers: null },
    ]);
  });

  test('parse → serialize → parse yields the same request', () => {
    const src = 'PATCH /items/7?x=%20y HTTP/1.1\r\nHost: api.local\r\nContent-Type: application/json\r\nX-Multi: a\r\nX-Multi: b\r\nContent-Length: 2\r\n\r\n{}';
    const a = parseReq(src);
    const head = (a.events[0] as ReqHeadEv).head;
    const wire = serializeRequestHead(head, requestFraming(head.method, FRAME_HAS_CONTENT_LENGTH)) + '{}';
    const b = parseReq(wire);
    assert.equal(b.error, null);
    assert.deepEqual((b.events[0] as ReqHeadEv).head, head);
    assert.deepEqual(b.events.slice(1), a.events.slice(1));
  });

  test('field validators', () => {
    assert.equal(isValidFieldName('x-request-id'), true);
    assert.equal(isValidFieldName(''), false);
    assert.equal(isValidFieldName('bad name'), false);
    assert.equal(isValidFieldName('a:b'), false);
    assert.equal(isValidFieldValue('v\tw x'), true);
    assert.equal(isValidFieldValue('a\r\nInjected: 1'), false);
    assert.equal(isValidFieldValue('nul\0'), false);
    assert.equal(isValidFieldValue('snow\u2603'), false);
    assert.equal(isValidAuthority('a.b:80', false), true);
    assert.equal(isValidAuthority('a.b', true), false);
    assert.equal(isValidAuthority('a b', false), false);
    assert.equal(isValidAuthority('u@h', false), false);
    assert.equal(isValidAuthority('[::1]', false), true);
    assert.equal(isValidAuthority('h:65536', false), false);
  });
});

// ---- hop-by-hop -------------------------------------------------------------------------------------------------

describe('hop-by-hop headers', () => {
  test('removes Connection, Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade and nominated fields', () => {
    const h = [
      'Connection', 'keep-alive, X-Private',
      'Keep-Alive', 'timeout=5',
      'Proxy-Connection', 'keep-alive',
      'Transfer-Encoding', 'chunked',
      'Upgrade', 'websocket',
      'TE', 'deflate',
      'X-Private', 'secret',
      'Content-Type', 'text/plain',
      'x-request-id', 'abc',
    ];
    removeHopByHopHeaders(h);
    assert.deepEqual(h, ['Content-Type', 'text/plain', 'x-request-id', 'abc']);
  });

  test('TE: trailers survives as exactly `te: trailers` (Envoy sanitizeTEHeader)', () => {
    const h = ['TE', 'deflate;q=0.5, Trailers', 'Connection', 'TE', 'content-type', 'application/grpc'];
    removeHopByHopHeaders(h);
    assert.deepEqual(h, ['content-type', 'application/grpc', 'te', 'trailers']);
  });

  test('upgrade pass-through keeps Connection and Upgrade verbatim', () => {
    const h = ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Keep-Alive', '1', 'Sec-WebSocket-Key', 'k'];
    removeHopByHopHeaders(h, true);
    assert.deepEqual(h, ['Connection', 'Upgrade', 'Upgrade', 'websocket', 'Sec-WebSocket-Key', 'k']);
  });

  test('sanitizeConnectionHeader rejects what Envoy rejects', () => {
    assert.equal(sanitizeConnectionHeader(['Connection', 'x-forwarded-for', 'x-forwarded-for', '1.2.3.4']), false);
    assert.equal(sanitizeConnectionHeader(['Connection', 'X-Forwarded-Proto']), false);
    assert.equal(sanitizeConnectionHeader(['Connection', 'x-forwarded-host']), false);
    assert.equal(sanitizeConnectionHeader(['Connection', ':path']), false);
    assert.equal(sanitizeConnectionHeader(['Connection', 'a,b,c,d,e,f,g,h,i,j']), false, '10 options');
    assert.equal(sanitizeConnectionHeader(['Connection', 'TE', 'TE', 'x'.repeat(256)]), false, 'TE value too long');
    const ok = ['Connection', 'a,b,c,d,e,f,g,h,i', 'a', '1', 'z', '2'];
    assert.equal(sanitizeConnectionHeader(ok), true, '9 options');
    assert.deepEqual(ok, ['z', '2']);
    const self = ['Connection', 'close, connection'];
    assert.equal(sanitizeConnectionHeader(self), true);
    assert.deepEqual(self, ['Connection', 'close']);
  });
});

describe('error codes', () => {
  test('every code has a status and Envoy-style details', () => {
    for (const code of H1_ERROR_CODES) {
      assert.ok([0, 400, 426, 431, 501, 505].includes(h1ErrorStatus(code)), code);
      assert.match(h1ErrorDetails(code), /^[a-z0-9_.]+$/);
    }
    assert.equal(h1ErrorStatus('HEADERS_TOO_LARGE'), 431);
    assert.equal(h1ErrorStatus('TOO_MANY_HEADERS'), 431);
    assert.equal(h1ErrorStatus('UNSUPPORTED_TRANSFER_ENCODING'), 501);
    assert.equal(h1ErrorStatus('UNSUPPORTED_VERSION'), 505);
    assert.equal(h1ErrorStatus('HTTP10_NOT_ACCEPTED'), 426);
    assert.equal(h1ErrorDetails('HEADERS_TOO_LARGE'), 'http1.headers_too_large');
    assert.equal(h1ErrorDetails('CONTENT_LENGTH_AND_TRANSFER_ENCODING'), 'http1.content_length_and_chunked_not_allowed');
    assert.equal(h1ErrorDetails('OBS_FOLD'), 'http1.codec_error');
  });
});
