// HTTP/1 codec properties: the outcome never depends on how the bytes are split (every 2-way split, byte by byte,
// random splits), and seeded fuzzing (random bytes, mutated valid messages) never throws and always ends in either a
// parse or a reported error code.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { HeaderList, RequestHead, ResponseHead } from '../../src/proxy/http/headers.js';
import {
  FRAME_END_STREAM,
  FRAME_HAS_CONTENT_LENGTH,
  H1RequestParser,
  H1ResponseParser,
  H1_ERROR_CODES,
  requestFraming,
  serializeRequestHead,
} from '../../src/proxy/http/codec/h1/index.js';

/** mulberry32: small seeded PRNG, so failures reproduce. */
function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number): number => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n | 0;
  };
}

type Ev = unknown[];

interface Outcome {
  events: Ev[];
  error: string | null;
  threw: unknown;
}

/** Runs a request or response parser over `parts`, then finish(); records a normalized event list. */
function run(kind: 'req' | 'res', parts: Buffer[], method = 'GET'): Outcome {
  const events: Ev[] = [];
  const body = (b: Buffer): void => {
    const last = events[events.length - 1];
    if (last && last[0] === 'body') last[1] = (last[1] as string) + b.toString('latin1');
    else events.push(['body', b.toString('latin1')]);
  };
  const end = (t: HeaderList | null): void => {
    events.push(['end', t]);
  };
  try {
    if (kind === 'req') {
      const p: H1RequestParser = new H1RequestParser(
        {
          onRequestHead: (h: RequestHead) =>
            events.push(['head', h, p.keepAlive, p.upgrade, p.chunked, p.contentLength, p.hasBody, p.expectContinue]),
          onBody: body,
          onMessageComplete: end,
        },
        { acceptHttp10: true },
      );
      for (const part of parts) {
        const n = p.execute(part);
        if (n < 0) break;
        assert.equal(n, part.length);
      }
      if (p.error === null) p.finish();
      if (p.error !== null) assert.ok(H1_ERROR_CODES.includes(p.error), p.error);
      return { events, error: p.error, threw: null };
    }
    const p: H1ResponseParser = new H1ResponseParser({
      onResponseHead: (h: ResponseHead) => {
        events.push(['head', h, p.keepAlive, p.upgrade, p.chunked, p.contentLength, p.hasBody, p.readUntilClose]);
      },
      onInterimHead: (h: ResponseHead) => events.push(['interim', h]),
      onBody: body,
      onMessageComplete: (t) => {
        end(t);
        p.expectResponseTo(method);
      },
    });
    p.expectResponseTo(method);
    for (const part of parts) {
      const n = p.execute(part);
      if (n < 0) break;
      assert.equal(n, part.length);
    }
    if (p.error === null) p.finish();
    if (p.error !== null) assert.ok(H1_ERROR_CODES.includes(p.error), p.error);
    return { events, error: p.error, threw: null };
  } catch (e) {
    return { events, error: null, threw: e };
  }
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of cuts) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

function randomCuts(buf: Buffer, rnd: (n: number) => number): number[] {
  const cuts: number[] = [];
  const n = 1 + rnd(8);
  for (let i = 0; i < n; i++) cuts.push(rnd(buf.length + 1));
  return cuts.sort((a, b) => a - b);
}

const REQUESTS: string[] = [
  'GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n',
  'POST /form HTTP/1.1\r\nHost: h:81\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello, world',
  'PUT /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;a=b\r\nwiki\r\n5 ; x="y z"\r\npedia\r\n0\r\nX-Sum: 1\r\nX-B:  two \r\n\r\n',
  'GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nxyzDELETE /3 HTTP/1.1\r\nHost: c\r\nConnection: close\r\n\r\n',
  'GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x02hi\x88\x00',
  'GET http://svc.ns:8080/p?x HTTP/1.1\r\nHost: ignored\r\n\r\n',
  '\r\n\r\nOPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: h\r\nX-Latin: caf\xe9 \xff\r\nX-Empty:\r\n\r\n',
  'CONNECT db:5432 HTTP/1.1\r\nHost: db:5432\r\n\r\n\x00\x01binary',
  'GET / HTTP/1.0\r\nHost: h\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nZ',
  'GET / HTTP/1.1\r\nHost: h\r\n' + Array.from({ length: 60 }, (_, i) => `X-H${i}: value ${i}\r\n`).join('') + '\r\n',
  'POST / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-Drop\r\nX-Drop: 1\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\r\n1\r\n\xff\r\n0\r\n\r\n',
  // Invalid ones: the verdict must not depend on the split either.
  'POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: h\nX: 1\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nshort',
];

const RESPONSES: string[] = [
  'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\ngrpc-status: 0\r\n\r\n',
  'HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 304 Not Modified\r\nETag: "1"\r\n\r\n',
  'HTTP/1.1 204 No Content\r\nDate: x\r\n\r\nHTTP/1.1 200 Fine\r\nContent-Length: 0\r\n\r\n',
  'HTTP/1.0 200 OK\r\nServer: old\r\n\r\nthe body runs until close',
  'HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00raw',
  'HTTP/1.1 404\r\nX-Odd : v\r\nContent-Length: 1\r\n\r\n!',
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n',
];

describe('split independence', () => {
  for (const [kind, corpus] of [
    ['req', REQUESTS],
    ['res', RESPONSES],
  ] as const) {
    test(`${kind}: every 2-way split and byte-by-byte give the whole-buffer outcome`, () => {
      for (const text of corpus) {
        const buf = Buffer.from(text, 'latin1');
        const whole = run(kind, [buf]);
        assert.equal(whole.threw, null);
        for (let k = 0; k <= buf.length; k++) {
          const split = run(kind, splitAt(buf, [k]));
          assert.equal(split.threw, null);
          assert.deepEqual(split, whole, `split at ${k} of ${JSON.stringify(text.slice(0, 60))}`);
        }
        const bytes: Buffer[] = [];
        for (let i = 0; i < buf.length; i++) bytes.push(buf.subarray(i, i + 1));
        assert.deepEqual(run(kind, bytes), whole, `byte by byte: ${JSON.stringify(text.slice(0, 60))}`);
      }
    });
  }

  test('random multi-way splits of a long pipelined stream', () => {
    const rnd = prng(7);
    const stream = Buffer.from(REQUESTS.slice(0, 4).join('').repeat(20), 'latin1');
    const whole = run('req', [stream]);
    assert.equal(whole.error, null);
    assert.equal(whole.events.filter((e) => e[0] === 'head').length, 20 * 6);
    for (let i = 0; i < 200; i++) assert.deepEqual(run('req', splitAt(stream, randomCuts(stream, rnd))), whole);
  });
});

const INTERESTING = [0, 9, 10, 13, 32, 34, 44, 58, 59, 0x7f, 0x80, 0xff, 48, 49, 97, 65, 0x2f, 0x3f, 0x25, 0x40];

function mutate(src: Buffer, rnd: (n: number) => number): Buffer {
  let b = Buffer.from(src);
  const ops = 1 + rnd(4);
  for (let o = 0; o < ops; o++) {
    const at = rnd(b.length + 1);
    switch (rnd(8)) {
      case 0: // replace a byte
        if (b.length > 0) b[Math.min(at, b.length - 1)] = INTERESTING[rnd(INTERESTING.length)]!;
        break;
      case 1: // insert a byte
        b = Buffer.concat([b.subarray(0, at), Buffer.from([INTERESTING[rnd(INTERESTING.length)]!]), b.subarray(at)]);
        break;
      case 2: // delete a run
        b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1 + rnd(6))]);
        break;
      case 3: // duplicate a slice
        b = Buffer.concat([b.subarray(0, at), b.subarray(rnd(b.length), rnd(b.length + 1)), b.subarray(at)]);
        break;
      case 4: // flip case of a letter
        if (b.length > 0) b[Math.min(at, b.length - 1)]! ^= 0x20;
        break;
      case 5: // insert a line break, or a bare one
        b = Buffer.concat([b.subarray(0, at), Buffer.from(rnd(2) ? '\r\n' : '\n'), b.subarray(at)]);
        break;
      case 6: // insert a header-ish line
        b = Buffer.concat([
          b.subarray(0, at),
          Buffer.from(['Content-Length: 3\r\n', 'Transfer-Encoding: chunked\r\n', 'Host: x\r\n', ' folded\r\n', 'A:b\r\n'][rnd(5)]!),
          b.subarray(at),
        ]);
        break;
      default: // truncate
        b = b.subarray(0, at);
    }
  }
  return b;
}

function randomBytes(rnd: (n: number) => number): Buffer {
  const len = rnd(300);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = rnd(3) === 0 ? INTERESTING[rnd(INTERESTING.length)]! : 32 + rnd(95);
  if (rnd(2) === 0) return Buffer.concat([Buffer.from(rnd(2) ? 'GET / HTTP/1.1\r\n' : 'HTTP/1.1 200 OK\r\n'), out]);
  return out;
}

function checkConsistent(kind: 'req' | 'res', input: Buffer, rnd: (n: number) => number): Outcome {
  const whole = run(kind, [input]);
  assert.equal(whole.threw, null, `threw on ${JSON.stringify(input.toString('latin1'))}: ${String(whole.threw)}`);
  const split = run(kind, splitAt(input, randomCuts(input, rnd)));
  assert.equal(split.threw, null, `threw (split) on ${JSON.stringify(input.toString('latin1'))}`);
  // Either both parse (identically) or both report an error; the events up to it match as well.
  assert.equal(split.error === null, whole.error === null, JSON.stringify(input.toString('latin1')));
  assert.deepEqual(split.events, whole.events, JSON.stringify(input.toString('latin1')));
  return whole;
}

describe('fuzzing (seeded)', () => {
  test('random bytes: never throws, always parses or reports a known error', () => {
    const rnd = prng(0xc0ffee);
    let errors = 0;
    for (let i = 0; i < 3000; i++) {
      const input = randomBytes(rnd);
      if (checkConsistent('req', input, rnd).error) errors++;
      checkConsistent('res', input, rnd);
    }
    assert.ok(errors > 1000, 'random input is mostly refused');
  });

  test('mutated valid messages: never throws; split and whole agree', () => {
    const rnd = prng(20240601);
    let parsed = 0;
    let refused = 0;
    for (let i = 0; i < 6000; i++) {
      const src = Buffer.from(REQUESTS[rnd(12)]!, 'latin1');
      const o = checkConsistent('req', mutate(src, rnd), rnd);
      if (o.error === null) parsed++;
      else refused++;
    }
    for (let i = 0; i < 3000; i++) {
      const src = Buffer.from(RESPONSES[rnd(7)]!, 'latin1');
      checkConsistent('res', mutate(src, rnd), rnd);
    }
    assert.ok(parsed > 100 && refused > 100, `parsed ${parsed}, refused ${refused}`);
  });

  test('a parsed mutation re-serializes to the same request (no ambiguity survives parsing)', () => {
    const rnd = prng(99);
    let checked = 0;
    for (let i = 0; i < 3000; i++) {
      const input = mutate(Buffer.from(REQUESTS[rnd(3)]!, 'latin1'), rnd);
      const o = run('req', [input]);
      if (o.error !== null) continue;
      const head = o.events.find((e) => e[0] === 'head');
      if (!head) continue;
      const h = head[1] as RequestHead;
      const chunked = head[4] as boolean;
      const cl = head[5] as number;
      const hasBody = head[6] as boolean;
      if ((head[3] as boolean) || h.httpVersion !== '1.1') continue;
      const bodyEv = o.events.find((e) => e[0] === 'body');
      const body = bodyEv ? (bodyEv[1] as string) : '';
      const headers = h.headers.filter((_, j) => !/^transfer-encoding$/i.test(h.headers[j - (j % 2)]!));
      const flags = (cl >= 0 ? FRAME_HAS_CONTENT_LENGTH : 0) | (hasBody ? 0 : FRAME_END_STREAM);
      const framing = requestFraming(h.method, flags);
      const wire =
        serializeRequestHead({ ...h, headers }, framing) +
        (chunked && body.length > 0 ? body.length.toString(16) + '\r\n' + body + '\r\n0\r\n\r\n' : chunked ? '0\r\n\r\n' : body);
      const again = run('req', [Buffer.from(wire, 'latin1')]);
      assert.equal(again.error, null, wire);
      const h2 = again.events[0]![1] as RequestHead;
      assert.equal(h2.method, h.method);
      assert.equal(h2.path, h.path);
      assert.equal(h2.authority, h.authority);
      const b2 = again.events.find((e) => e[0] === 'body');
      assert.equal(b2 ? b2[1] : '', body);
      checked++;
    }
    assert.ok(checked > 50, `checked ${checked}`);
  });
});
