// HTTP/1 codec strictness: every rejection (request smuggling defences, limits, malformed syntax) with its error code
// and the status the proxy answers with. Each input is also parsed one byte at a time: the verdict must not depend on
// how the bytes were split.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { HeaderList, RequestHead, ResponseHead } from '../../src/proxy/http/headers.js';
import {
  H1RequestParser,
  H1ResponseParser,
  h1ErrorStatus,
  type H1ErrorCode,
  type H1RequestParserOptions,
} from '../../src/proxy/http/codec/h1/index.js';

class Counter {
  heads: RequestHead[] = [];
  responses: ResponseHead[] = [];
  bodies = '';
  ends = 0;
  onRequestHead(h: RequestHead): void {
    this.heads.push(h);
  }
  onResponseHead(h: ResponseHead): void {
    this.responses.push(h);
  }
  onInterimHead(_h: ResponseHead): void {}
  onBody(b: Buffer): void {
    this.bodies += b.toString('latin1');
  }
  onMessageComplete(_t: HeaderList | null): void {
    this.ends++;
  }
}

/** Error code of a request input, parsed whole and byte by byte (both must agree). */
function reqError(input: string, opts: H1RequestParserOptions = {}): H1ErrorCode | null {
  const buf = Buffer.from(input, 'latin1');
  const whole = new H1RequestParser(new Counter(), opts);
  const rw = whole.execute(buf);
  const bytewise = new H1RequestParser(new Counter(), opts);
  let rb = 0;
  for (let i = 0; i < buf.length && rb >= 0; i++) rb = bytewise.execute(buf.subarray(i, i + 1));
  assert.equal(rw < 0, whole.error !== null);
  assert.equal(bytewise.error, whole.error, `split verdict differs for ${JSON.stringify(input.slice(0, 80))}`);
  return whole.error;
}

function resError(input: string, method = 'GET'): H1ErrorCode | null {
  const buf = Buffer.from(input, 'latin1');
  const whole = new H1ResponseParser(new Counter());
  whole.expectResponseTo(method);
  whole.execute(buf);
  const bytewise = new H1ResponseParser(new Counter());
  bytewise.expectResponseTo(method);
  let rb = 0;
  for (let i = 0; i < buf.length && rb >= 0; i++) rb = bytewise.execute(buf.subarray(i, i + 1));
  assert.equal(bytewise.error, whole.error, `split verdict differs for ${JSON.stringify(input.slice(0, 80))}`);
  return whole.error;
}

const R = (fields: string, body = ''): string => `POST /x HTTP/1.1\r\nHost: h\r\n${fields}\r\n${body}`;

function expectRejected(cases: Array<[string, string, H1ErrorCode, number]>, opts: H1RequestParserOptions = {}): void {
  for (const [name, input, code, status] of cases) {
    assert.equal(reqError(input, opts), code, name);
    assert.equal(h1ErrorStatus(code), status, name);
  }
}

describe('request smuggling defences', () => {
  test('Content-Length together with Transfer-Encoding is rejected (Envoy default, 400)', () => {
    expectRejected([
      ['CL then TE', R('Content-Length: 4\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), 'CONTENT_LENGTH_AND_TRANSFER_ENCODING', 400],
      ['TE then CL', R('Transfer-Encoding: chunked\r\nContent-Length: 4\r\n', '0\r\n\r\n'), 'CONTENT_LENGTH_AND_TRANSFER_ENCODING', 400],
      ['CL 0 with TE', R('Content-Length: 0\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), 'CONTENT_LENGTH_AND_TRANSFER_ENCODING', 400],
      ['CL with unsupported TE', R('Content-Length: 4\r\nTransfer-Encoding: gzip\r\n'), 'CONTENT_LENGTH_AND_TRANSFER_ENCODING', 400],
    ]);
  });

  test('allowChunkedLength does not cover a non-chunked Transfer-Encoding', () => {
    assert.equal(
      reqError(R('Content-Length: 4\r\nTransfer-Encoding: gzip\r\n'), { allowChunkedLength: true }),
      'CONTENT_LENGTH_AND_TRANSFER_ENCODING',
    );
  });

  test('duplicate Content-Length with different values → 400; invalid values → 400', () => {
    expectRejected([
      ['different values', R('Content-Length: 5\r\nContent-Length: 6\r\n', 'hello'), 'CONFLICTING_CONTENT_LENGTH', 400],
      ['different values, other case', R('content-length: 1\r\nCONTENT-LENGTH: 10\r\n', 'x'), 'CONFLICTING_CONTENT_LENGTH', 400],
      ['comma list', R('Content-Length: 5, 5\r\n', 'hello'), 'INVALID_CONTENT_LENGTH', 400],
      ['letters', R('Content-Length: abc\r\n'), 'INVALID_CONTENT_LENGTH', 400],
      ['negative', R('Content-Length: -1\r\n'), 'INVALID_CONTENT_LENGTH', 400],
      ['plus sign', R('Content-Length: +5\r\n', 'hello'), 'INVALID_CONTENT_LENGTH', 400],
      ['decimal', R('Content-Length: 1.5\r\n'), 'INVALID_CONTENT_LENGTH', 400],
      ['hex', R('Content-Length: 0x10\r\n'), 'INVALID_CONTENT_LENGTH', 400],
      ['inner space', R('Content-Length: 1 0\r\n'), 'INVALID_CONTENT_LENGTH', 400],
      ['empty', R('Content-Length: \r\n'), 'INVALID_CONTENT_LENGTH', 400],
      ['overflow', R('Content-Length: 99999999999999999999\r\n'), 'INVALID_CONTENT_LENGTH', 400],
    ]);
  });

  test('Transfer-Encoding other than exactly chunked → 501 (Envoy)', () => {
    expectRejected([
      ['gzip', R('Transfer-Encoding: gzip\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['identity', R('Transfer-Encoding: identity\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['gzip, chunked', R('Transfer-Encoding: gzip, chunked\r\n', '0\r\n\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['chunked, gzip', R('Transfer-Encoding: chunked, gzip\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['xchunked', R('Transfer-Encoding: xchunked\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['two TE lines', R('Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n', '0\r\n\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['chunked then x', R('Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['empty TE', R('Transfer-Encoding: \r\n'), 'UNSUPPORTED_TRANSFER_ENCODING', 501],
      ['TE on CONNECT', 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nTransfer-Encoding: chunked\r\n\r\n', 'UNSUPPORTED_TRANSFER_ENCODING', 501],
    ]);
  });

  test('obfuscated Transfer-Encoding names are refused, never half-understood', () => {
    expectRejected([
      ['space before colon', R('Transfer-Encoding : chunked\r\n'), 'WHITESPACE_BEFORE_COLON', 400],
      ['tab before colon', R('Transfer-Encoding\t: chunked\r\n'), 'WHITESPACE_BEFORE_COLON', 400],
      ['leading space (fold)', R('X: 1\r\n Transfer-Encoding: chunked\r\n'), 'OBS_FOLD', 400],
      ['folded value', R('Transfer-Encoding:\r\n chunked\r\n'), 'OBS_FOLD', 400],
      ['vertical tab', R('Transfer-Encoding:\x0bchunked\r\n'), 'INVALID_HEADER_VALUE', 400],
      ['NUL in name', R('Transfer\0Encoding: chunked\r\n'), 'INVALID_HEADER_NAME', 400],
    ]);
    // HTAB is legal optional whitespace: this one IS chunked (and parses as such).
    const ok = new Counter();
    const p = new H1RequestParser(ok);
    let chunked = false;
    ok.onRequestHead = (h) => {
      ok.heads.push(h);
      chunked = p.chunked;
    };
    assert.ok(p.execute(Buffer.from(R('Transfer-Encoding:\tchunked\t\r\n', '1\r\nz\r\n0\r\n\r\n'))) > 0);
    assert.equal(chunked, true);
    assert.equal(ok.bodies, 'z');
  });

  test('HTTP/1.0 with Transfer-Encoding is processed but the connection closes after it (RFC 9112 §6.1)', () => {
    const c = new Counter();
    const p = new H1RequestParser(c, { acceptHttp10: true });
    let keepAlive: boolean | null = null;
    c.onRequestHead = (h) => {
      c.heads.push(h);
      keepAlive = p.keepAlive;
    };
    p.execute(Buffer.from('POST / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n\r\n'));
    assert.equal(p.error, null);
    assert.equal(keepAlive, false);
    assert.equal(c.bodies, 'a');
  });

  test('invalid chunk framing → 400', () => {
    const C = (chunks: string): string => R('Transfer-Encoding: chunked\r\n', chunks);
    expectRejected([
      ['non-hex size', C('zz\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['empty size', C('\r\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['0x prefix', C('0x5\r\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['negative', C('-5\r\nhello\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['overflow', C('fffffffffffffffff\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['just past 2^53', C('20000000000000\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['whitespace then CRLF', C('5 \r\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['bare LF after size', C('5\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['bare CR after size', C('5\rhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['data longer than size', C('5\r\nhelloX\r\n0\r\n\r\n'), 'INVALID_CHUNK_DATA', 400],
      ['data not followed by CRLF', C('5\r\nhello\n0\r\n\r\n'), 'INVALID_CHUNK_DATA', 400],
      ['data followed by CR only', C('5\r\nhello\rX'), 'INVALID_CHUNK_DATA', 400],
      ['control byte in extension', C('5;a=\x01\r\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_EXTENSION', 400],
      ['bare LF in extension', C('5;a\nb\r\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_EXTENSION', 400],
      ['lone CR in extension', C('5;a\rb\r\nhello\r\n0\r\n\r\n'), 'INVALID_CHUNK_SIZE', 400],
      ['trailer obs-fold', C('0\r\nA: 1\r\n  folded\r\n\r\n'), 'OBS_FOLD', 400],
      ['trailer without colon', C('0\r\nnocolon\r\n\r\n'), 'INVALID_HEADER_LINE', 400],
    ]);
    // Extensions with BWS before ';' and quoted strings are fine.
    assert.equal(reqError(C('5 ;a="x; y"\r\nhello\r\n0 \t; last\r\n\r\n')), null);
  });

  test('chunk extensions are bounded by maxHeaderBytes', () => {
    const input = R('Transfer-Encoding: chunked\r\n', '5;' + 'e'.repeat(3000) + '\r\nhello\r\n0\r\n\r\n');
    assert.equal(reqError(input, { maxHeaderBytes: 2048 }), 'INVALID_CHUNK_EXTENSION');
    assert.equal(reqError(input, { maxHeaderBytes: 4096 }), null);
  });

  test('classic CL.TE / TE.CL payloads are refused before any body byte is forwarded', () => {
    const payloads = [
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: cow\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcdGET /admin HTTP/1.1\r\n\r\n',
    ];
    for (const input of payloads) {
      const c = new Counter();
      const p = new H1RequestParser(c);
      assert.equal(p.execute(Buffer.from(input)), -1);
      assert.equal(c.heads.length, 0, 'no head reaches the proxy');
      assert.equal(c.bodies, '');
    }
  });
});

describe('syntax strictness', () => {
  test('field names: token characters only, no empty name, colon required', () => {
    expectRejected([
      ['paren', R('Fo(o: x\r\n'), 'INVALID_HEADER_NAME', 400],
      ['at sign', R('Foo@bar: x\r\n'), 'INVALID_HEADER_NAME', 400],
      ['quote', R('Fo"o: x\r\n'), 'INVALID_HEADER_NAME', 400],
      ['slash', R('a/b: x\r\n'), 'INVALID_HEADER_NAME', 400],
      ['obs-text', R('caf\xe9: x\r\n'), 'INVALID_HEADER_NAME', 400],
      ['empty name', R(': x\r\n'), 'INVALID_HEADER_NAME', 400],
      ['no colon', R('JustAName\r\n'), 'INVALID_HEADER_LINE', 400],
      ['space inside name', R('Bad Name: x\r\n'), 'WHITESPACE_BEFORE_COLON', 400],
    ]);
    assert.equal(reqError(R("x!#$%&'*+-.^_`|~09AZaz: ok\r\n")), null, 'every tchar');
  });

  test('field values: controls rejected, obs-text accepted', () => {
    expectRejected([
      ['NUL', R('X: a\0b\r\n'), 'INVALID_HEADER_VALUE', 400],
      ['SOH', R('X: a\x01\r\n'), 'INVALID_HEADER_VALUE', 400],
      ['ESC', R('X: \x1b[31m\r\n'), 'INVALID_HEADER_VALUE', 400],
      ['DEL', R('X: a\x7f\r\n'), 'INVALID_HEADER_VALUE', 400],
      ['bare CR inside', R('X: a\rb\r\n'), 'INVALID_LINE_ENDING', 400],
    ]);
    assert.equal(reqError(R('X: \x80\xff\xa0 latin1\r\n')), null);
  });

  test('obs-fold and whitespace after the start line are rejected', () => {
    expectRejected([
      ['fold with SP', R('X: a\r\n b\r\n'), 'OBS_FOLD', 400],
      ['fold with HTAB', R('X: a\r\n\tb\r\n'), 'OBS_FOLD', 400],
      ['whitespace line after request line', 'GET / HTTP/1.1\r\n Host: h\r\n\r\n', 'OBS_FOLD', 400],
    ]);
  });

  test('bare LF is rejected everywhere (llhttp strict mode)', () => {
    expectRejected([
      ['request line', 'GET / HTTP/1.1\nHost: h\r\n\r\n', 'INVALID_LINE_ENDING', 400],
      ['field line', 'GET / HTTP/1.1\r\nHost: h\n\r\n', 'INVALID_LINE_ENDING', 400],
      ['end of head', 'GET / HTTP/1.1\r\nHost: h\r\n\n', 'INVALID_LINE_ENDING', 400],
      ['all LF', 'GET / HTTP/1.1\nHost: h\n\n', 'INVALID_LINE_ENDING', 400],
      ['before request line', '\nGET / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_LINE_ENDING', 400],
      ['bare CR at end of head', 'GET / HTTP/1.1\r\nHost: h\r\n\rX', 'INVALID_LINE_ENDING', 400],
      ['method then LF', 'GET\n', 'INVALID_REQUEST_LINE', 400],
    ]);
  });

  test('request line: method, target, version', () => {
    expectRejected([
      ['lower-case method', 'get / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD', 400],
      ['unknown method', 'FOO / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD', 400],
      ['non-token in method', 'G(T / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD', 400],
      ['leading space', ' GET / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD', 400],
      ['two spaces', 'GET  / HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['HTAB separator', 'GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_METHOD', 400],
      ['no version (HTTP/0.9)', 'GET /\r\n\r\n', 'INVALID_REQUEST_LINE', 400],
      ['control byte in target', 'GET /a\x01b HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['DEL in target', 'GET /a\x7f HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['obs-text in target', 'GET /caf\xe9 HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['extra token', 'GET / x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_VERSION', 400],
      ['version typo', 'GET / HTPP/1.1\r\nHost: h\r\n\r\n', 'INVALID_VERSION', 400],
      ['version two digits', 'GET / HTTP/11\r\nHost: h\r\n\r\n', 'INVALID_VERSION', 400],
      ['version trailing junk', 'GET / HTTP/1.1x\r\nHost: h\r\n\r\n', 'INVALID_VERSION', 400],
      ['version trailing space', 'GET / HTTP/1.1 \r\nHost: h\r\n\r\n', 'INVALID_VERSION', 400],
      ['lower-case version', 'GET / http/1.1\r\nHost: h\r\n\r\n', 'INVALID_VERSION', 400],
      ['HTTP/2.0 request line', 'GET / HTTP/2.0\r\nHost: h\r\n\r\n', 'UNSUPPORTED_VERSION', 505],
      ['HTTP/3.0', 'GET / HTTP/3.0\r\nHost: h\r\n\r\n', 'UNSUPPORTED_VERSION', 505],
      ['HTTP/0.9 with version', 'GET / HTTP/0.9\r\nHost: h\r\n\r\n', 'UNSUPPORTED_VERSION', 505],
      ['HTTP/1.0 not accepted', 'GET / HTTP/1.0\r\nHost: h\r\n\r\n', 'HTTP10_NOT_ACCEPTED', 426],
    ]);
  });

  test('request targets must fit their form', () => {
    expectRejected([
      ['asterisk without OPTIONS', 'GET * HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['relative path', 'GET a/b HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['other scheme', 'GET ftp://h/x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_SCHEME', 400],
      ['no authority', 'GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['userinfo', 'GET http://user:pw@h/x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['bad port', 'GET http://h:99999/ HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['port letters', 'GET http://h:8o/ HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['missing slashes', 'GET http:h/x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['CONNECT without port', 'CONNECT h HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['CONNECT empty port', 'CONNECT h: HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['CONNECT origin-form', 'CONNECT /x HTTP/1.1\r\nHost: h\r\n\r\n', 'INVALID_URL', 400],
      ['CONNECT with body', 'CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\nContent-Length: 5\r\n\r\nhello', 'CONNECT_WITH_BODY', 400],
    ]);
  });

  test('Host: exactly one, valid authority (RFC 9112 §3.2)', () => {
    expectRejected([
      ['missing', 'GET / HTTP/1.1\r\nX: 1\r\n\r\n', 'MISSING_HOST', 400],
      ['two Host lines', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'MULTIPLE_HOST', 400],
      ['two Host lines, same value', 'GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n', 'MULTIPLE_HOST', 400],
      ['two Host lines with absolute form', 'GET http://x/ HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 'MULTIPLE_HOST', 400],
      ['space in host', 'GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 'INVALID_HOST', 400],
      ['userinfo', 'GET / HTTP/1.1\r\nHost: u@a\r\n\r\n', 'INVALID_HOST', 400],
      ['port too large', 'GET / HTTP/1.1\r\nHost: a:70000\r\n\r\n', 'INVALID_HOST', 400],
      ['unclosed IPv6', 'GET / HTTP/1.1\r\nHost: [::1\r\n\r\n', 'INVALID_HOST', 400],
      ['slash', 'GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 'INVALID_HOST', 400],
      ['HTTP/1.0 without Host and default', 'GET / HTTP/1.0\r\n\r\n', 'MISSING_HOST', 400],
    ], { acceptHttp10: true });
    for (const ok of ['a.b-c_d~e', '10.0.0.1:8080', '[2001:db8::1]:1', '[::ffff:1.2.3.4]', 'xn--bcher-kva.example', 'a%2Eb', '']) {
      assert.equal(reqError(`GET / HTTP/1.1\r\nHost: ${ok}\r\n\r\n`), null, ok);
    }
  });

  test('Connection options that Envoy refuses → 400', () => {
    expectRejected([
      ['nominates x-forwarded-for', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close, X-Forwarded-For\r\nX-Forwarded-For: 1.1.1.1\r\n\r\n', 'CONNECTION_HEADER_REJECTED', 400],
      ['nominates a pseudo-header', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: :authority\r\n\r\n', 'CONNECTION_HEADER_REJECTED', 400],
      ['ten options', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close,close,close,close,close,close,close,close,close,close\r\n\r\n', 'CONNECTION_HEADER_REJECTED', 400],
      ['ten options over two lines', 'GET / HTTP/1.1\r\nHost: h\r\nConnection: a,b,c,d,e\r\nConnection: f,g,h,i,j\r\n\r\n', 'CONNECTION_HEADER_REJECTED', 400],
    ]);
  });
});

describe('headers with underscores (Envoy headers_with_underscores_action)', () => {
  test('allow (default) keeps them; reject → 400; drop removes them, also from trailers', () => {
    const input = 'POST / HTTP/1.1\r\nHost: h\r\nX_Under: 1\r\nX-Fine: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT_x: 3\r\nT-y: 4\r\n\r\n';
    assert.equal(reqError(input), null);
    assert.equal(reqError(input, { headersWithUnderscores: 'reject' }), 'UNDERSCORE_IN_HEADER_NAME');
    assert.equal(h1ErrorStatus('UNDERSCORE_IN_HEADER_NAME'), 400);
    const c = new Counter();
    let trailers: HeaderList | null = null;
    c.onMessageComplete = (t) => {
      trailers = t;
    };
    const p = new H1RequestParser(c, { headersWithUnderscores: 'drop' });
    assert.ok(p.execute(Buffer.from(input)) > 0);
    assert.deepEqual(c.heads[0]!.headers, ['X-Fine', '2', 'Transfer-Encoding', 'chunked']);
    assert.deepEqual(trailers, ['T-y', '4']);
    assert.equal(p.droppedUnderscoreHeaders, 2);
  });

  test('responses are not affected', () => {
    assert.equal(resError('HTTP/1.1 200 OK\r\nX_U: 1\r\nContent-Length: 0\r\n\r\n'), null);
  });
});

describe('limits', () => {
  test('head larger than maxHeaderBytes → 431 (default 60 KiB, as Envoy max_request_headers_kb)', () => {
    const big = 'X-Big: ' + 'a'.repeat(61 * 1024) + '\r\n';
    expectRejected([['one huge field', R(big), 'HEADERS_TOO_LARGE', 431]]);
    const many = Array.from({ length: 80 }, (_, i) => `X-F${i}: ${'b'.repeat(800)}\r\n`).join('');
    expectRejected([['many fields', R(many), 'HEADERS_TOO_LARGE', 431]]);
    expectRejected([['long URL', `GET /${'u'.repeat(70 * 1024)} HTTP/1.1\r\nHost: h\r\n\r\n`, 'HEADERS_TOO_LARGE', 431]]);
    assert.equal(reqError(R('X-Ok: ' + 'a'.repeat(50 * 1024) + '\r\n')), null);
  });

  test('the limit is exact and configurable', () => {
    const head = (n: number): string => `GET / HTTP/1.1\r\nHost: h\r\nX: ${'v'.repeat(n)}\r\n\r\n`;
    // head bytes = request line + field lines (CRLFs included), the final empty line excluded.
    const size = (n: number): number => head(n).length - 2;
    assert.equal(reqError(head(100), { maxHeaderBytes: size(100) }), null);
    assert.equal(reqError(head(101), { maxHeaderBytes: size(100) }), 'HEADERS_TOO_LARGE');
  });

  test('a head that never ends is refused as soon as it passes the limit, without buffering more', () => {
    const p = new H1RequestParser(new Counter(), { maxHeaderBytes: 4096 });
    let r = p.execute(Buffer.from('GET / HTTP/1.1\r\nHost: h\r\nX: '));
    const chunk = Buffer.alloc(1000, 'a');
    let sent = 0;
    while (r >= 0 && sent < 100) {
      r = p.execute(chunk);
      sent++;
    }
    assert.equal(r, -1);
    assert.equal(p.error, 'HEADERS_TOO_LARGE');
    assert.ok(sent <= 5, `refused after ${sent} KB`);
  });

  test('more than maxHeaderCount fields → 431 (default 100, as Envoy max_headers_count)', () => {
    const fields = (n: number): string => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
    // Host is a field line too: 99 + Host = 100 fields pass, 100 + Host fail.
    assert.equal(reqError(R(fields(99))), null);
    expectRejected([['101 fields', R(fields(100)), 'TOO_MANY_HEADERS', 431]]);
    assert.equal(reqError(R(fields(10)), { maxHeaderCount: 10 }), 'TOO_MANY_HEADERS');
  });

  test('trailer sections have the same limits', () => {
    const C = (t: string): string => R('Transfer-Encoding: chunked\r\n', '0\r\n' + t + '\r\n');
    assert.equal(reqError(C(Array.from({ length: 101 }, (_, i) => `T${i}: v\r\n`).join(''))), 'TOO_MANY_HEADERS');
    assert.equal(reqError(C('T: ' + 'x'.repeat(2000) + '\r\n'), { maxHeaderBytes: 1024 }), 'HEADERS_TOO_LARGE');
  });
});

describe('response strictness', () => {
  test('malformed status lines', () => {
    const cases: Array<[string, H1ErrorCode]> = [
      ['HTTP/1.1 20 OK\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTTP/1.1 abc OK\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTTP/1.1 2000 OK\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTTP/1.1 099 Low\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTTP/1.1  200 OK\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTP/1.1 200 OK\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['ICY 200 OK\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTTP/2.0 200 OK\r\n\r\n', 'UNSUPPORTED_VERSION'],
      ['HTTP/1.1 200 O\x01K\r\n\r\n', 'INVALID_STATUS_LINE'],
      ['HTTP/1.1 200 OK\n\r\n', 'INVALID_LINE_ENDING'],
    ];
    for (const [input, code] of cases) assert.equal(resError(input), code, JSON.stringify(input));
  });

  test('framing rules on responses (Envoy client codec)', () => {
    const cases: Array<[string, H1ErrorCode]> = [
      ['HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n', 'TRANSFER_ENCODING_NOT_ALLOWED'],
      ['HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n', 'CONTENT_LENGTH_NOT_ALLOWED'],
      ['HTTP/1.1 100 Continue\r\nContent-Length: 1\r\n\r\n', 'CONTENT_LENGTH_NOT_ALLOWED'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 'CONTENT_LENGTH_AND_TRANSFER_ENCODING'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', 'UNSUPPORTED_TRANSFER_ENCODING'],
      ['HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n', 'CONFLICTING_CONTENT_LENGTH'],
      ['HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n', 'OBS_FOLD'],
      ['HTTP/1.1 200 OK\r\nX: a\0\r\n\r\n', 'INVALID_HEADER_VALUE'],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n', 'INVALID_CHUNK_SIZE'],
    ];
    for (const [input, code] of cases) assert.equal(resError(input), code, JSON.stringify(input));
  });

  test('response heads default to an 80 KiB limit (Envoy MAX_RESPONSE_HEADERS_KB)', () => {
    assert.equal(resError('HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(70 * 1024) + '\r\nContent-Length: 0\r\n\r\n'), null);
    assert.equal(resError('HTTP/1.1 200 OK\r\nX: ' + 'a'.repeat(81 * 1024) + '\r\n\r\n'), 'HEADERS_TOO_LARGE');
  });
});
