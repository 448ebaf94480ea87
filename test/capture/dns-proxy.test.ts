// The sidecar's DNS proxy (src/proxy/dns/) with real DNS packets over UDP and TCP on loopback: mesh names from a
// name table (A answers, NODATA for other types, case and trailing dot ignored), forwarding of other names to an
// upstream resolver (a tiny one in the test), SERVFAIL when the upstream does not answer, FORMERR for malformed
// queries, and the node:dns resolver (the system's stub path) reading its answers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { create } from '@bufbuild/protobuf';
import { DnsProxy, resolvConfNameservers } from '../../src/proxy/dns/server.js';
import { answerA, buildQuery, parseQuery, parseResponse, QTYPE_A, QTYPE_AAAA, RCODE_FORMERR, RCODE_NOERROR, RCODE_SERVFAIL } from '../../src/proxy/dns/message.js';
import { NameInfoSchema, NameTableSchema } from '../../src/xds/name-table.js';

function table(entries: Record<string, string[]>) {
  const t: Record<string, ReturnType<typeof create<typeof NameInfoSchema>>> = {};
  for (const [k, ips] of Object.entries(entries)) t[k] = create(NameInfoSchema, { ips });
  return create(NameTableSchema, { name: 'name-table', table: t });
}

/** One UDP query; resolves with the response bytes (rejects after 5 s). */
function udpQuery(port: number, msg: Buffer): Promise<Buffer> {
  const s = createSocket('udp4');
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      s.close();
      reject(new Error('no UDP answer'));
    }, 5000);
    s.once('message', (m) => {
      clearTimeout(t);
      s.close();
      resolve(m);
    });
    s.send(msg, port, '127.0.0.1');
  });
}

/** One TCP query (2-byte length framing). */
function tcpQuery(port: number, msg: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    c.setTimeout(5000, () => {
      c.destroy();
      reject(new Error('no TCP answer'));
    });
    c.on('error', reject);
    c.on('connect', () => {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(msg.length);
      c.write(Buffer.concat([len, msg]));
    });
    c.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      if (buf.length >= 2 && buf.length >= 2 + buf.readUInt16BE(0)) {
        c.destroy();
        resolve(buf.subarray(2, 2 + buf.readUInt16BE(0)));
      }
    });
  });
}

describe('DNS proxy', () => {
  let upstream: UdpSocket;
  let upstreamTcp: Server;
  let upstreamPort = 0;
  let upstreamQueries: string[] = [];
  let dns: DnsProxy;

  before(async () => {
    // A tiny upstream resolver on one port number for UDP and TCP: answers `example.org` A with 192.0.2.10 and
    // every other name with no records.
    upstreamTcp = createServer((c) => {
      let buf = Buffer.alloc(0);
      c.on('error', () => undefined);
      c.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (buf.length < 2 || buf.length < 2 + buf.readUInt16BE(0)) return;
        const q = parseQuery(buf.subarray(2, 2 + buf.readUInt16BE(0)));
        upstreamQueries.push(`tcp:${q.name}`);
        const a = answerA(q, q.name === 'example.org' ? ['192.0.2.10'] : [], 60);
        const len = Buffer.alloc(2);
        len.writeUInt16BE(a.length);
        c.end(Buffer.concat([len, a]));
      });
    });
    // A free TCP port whose UDP twin is free too (bounded retries: other tests take ports concurrently).
    for (let attempt = 0; attempt < 20 && !upstreamPort; attempt++) {
      await new Promise<void>((resolve, reject) => {
        upstreamTcp.once('error', reject);
        upstreamTcp.listen(0, '127.0.0.1', () => resolve());
      });
      const port = (upstreamTcp.address() as AddressInfo).port;
      const udp = createSocket('udp4');
      const ok = await new Promise<boolean>((resolve) => {
        udp.once('error', () => resolve(false));
        udp.bind(port, '127.0.0.1', () => resolve(true));
      });
      if (ok) {
        upstream = udp;
        upstreamPort = port;
      } else {
        udp.close();
        await new Promise<void>((r) => upstreamTcp.close(() => r()));
      }
    }
    assert.ok(upstreamPort, 'a port free for both UDP and TCP');
    upstream.on('message', (m, r) => {
      const q = parseQuery(m);
      upstreamQueries.push(q.name);
      upstream.send(q.name === 'example.org' ? answerA(q, ['192.0.2.10'], 60) : answerA(q, [], 60), r.port, r.address);
    });
    dns = new DnsProxy({ port: 0, upstreams: [`127.0.0.1:${upstreamPort}`], timeoutMs: 1000 });
    await dns.start();
    dns.setTable(table({ reviews: ['240.240.4.159'], 'reviews.default.svc.cluster.local': ['240.240.4.159'], 'db.default': ['198.18.200.20', '198.18.200.21'] }));
  });

  after(async () => {
    await dns?.close();
    upstream?.close();
    await new Promise<void>((r) => upstreamTcp.close(() => r()));
  });

  test('UDP: A for a mesh name (authoritative), case-insensitive, trailing dot ignored', async () => {
    for (const name of ['reviews', 'REVIEWS.', 'Reviews.Default.Svc.Cluster.Local']) {
      const r = parseResponse(await udpQuery(dns.port, buildQuery(0x1234, name, QTYPE_A)));
      assert.equal(r.id, 0x1234);
      assert.equal(r.rcode, RCODE_NOERROR);
      assert.equal(r.authoritative, true);
      assert.deepEqual(r.a, ['240.240.4.159']);
    }
    const two = parseResponse(await udpQuery(dns.port, buildQuery(7, 'db.default', QTYPE_A)));
    assert.deepEqual(two.a, ['198.18.200.20', '198.18.200.21']);
  });

  test('AAAA for a mesh name: NOERROR with no answers (the name exists, no IPv6 data); not forwarded', async () => {
    upstreamQueries = [];
    const r = parseResponse(await udpQuery(dns.port, buildQuery(9, 'reviews', QTYPE_AAAA)));
    assert.equal(r.rcode, RCODE_NOERROR);
    assert.equal(r.ancount, 0);
    assert.deepEqual(upstreamQueries, []);
  });

  test('other names are forwarded to the upstream resolver and its answer relayed with the client id', async () => {
    upstreamQueries = [];
    const r = parseResponse(await udpQuery(dns.port, buildQuery(0xbeef, 'example.org', QTYPE_A)));
    assert.equal(r.id, 0xbeef);
    assert.deepEqual(r.a, ['192.0.2.10']);
    assert.deepEqual(upstreamQueries, ['example.org']);
    // A TCP query is forwarded over TCP.
    const t = parseResponse(await tcpQuery(dns.port, buildQuery(0x0102, 'example.org', QTYPE_A)));
    assert.equal(t.id, 0x0102);
    assert.deepEqual(t.a, ['192.0.2.10']);
    assert.deepEqual(upstreamQueries, ['example.org', 'tcp:example.org']);
  });

  test('TCP: mesh names answered with 2-byte framing', async () => {
    const r = parseResponse(await tcpQuery(dns.port, buildQuery(0x55, 'reviews', QTYPE_A)));
    assert.equal(r.id, 0x55);
    assert.deepEqual(r.a, ['240.240.4.159']);
  });

  test('no upstream answer → SERVFAIL after the timeout; malformed query → FORMERR; the proxy keeps serving', async () => {
    const dead = new DnsProxy({ port: 0, upstreams: ['127.0.0.1:9'], timeoutMs: 300 });
    await dead.start();
    try {
      const r = parseResponse(await udpQuery(dead.port, buildQuery(0x77, 'nowhere.example', QTYPE_A)));
      assert.equal(r.id, 0x77);
      assert.equal(r.rcode, RCODE_SERVFAIL);
    } finally {
      await dead.close();
    }
    // A header whose question runs past the end of the message.
    const bad = buildQuery(0x99, 'reviews', QTYPE_A).subarray(0, 16);
    const f = parseResponse(await udpQuery(dns.port, bad));
    assert.equal(f.id, 0x99);
    assert.equal(f.rcode, RCODE_FORMERR);
    const ok = parseResponse(await udpQuery(dns.port, buildQuery(1, 'reviews', QTYPE_A)));
    assert.deepEqual(ok.a, ['240.240.4.159']);
  });

  test('a real resolver client (node:dns) resolves mesh names through it; table updates apply at once', async () => {
    const res = new Resolver({ timeout: 2000, tries: 1 });
    res.setServers([`127.0.0.1:${dns.port}`]);
    assert.deepEqual(await res.resolve4('reviews.default.svc.cluster.local'), ['240.240.4.159']);
    dns.setTable(table({ ratings: ['240.240.9.9'] }));
    assert.deepEqual(await res.resolve4('ratings'), ['240.240.9.9']);
    assert.equal(dns.size, 1);
  });

  test('resolv.conf nameservers are read in order', () => {
    assert.deepEqual(resolvConfNameservers('# c\nsearch a b\nnameserver 10.0.0.1\n nameserver  ::1\noptions ndots:5\n'), ['10.0.0.1', '::1']);
  });
});
