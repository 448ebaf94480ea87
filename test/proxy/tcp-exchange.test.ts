// The in-band TCP metadata exchange's frame (stats/istio/tcp-exchange.ts): Istio's wire layout (magic, big-endian
// size, an Any of a Struct with the node metadata and id), read back from any chunking, and the cases where what
// arrives is not a frame (passed on untouched). The exchange between two real sidecars is in e2e-mtls-metrics.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fromBinary } from '@bufbuild/protobuf';
import { AnySchema, StructSchema } from '@bufbuild/protobuf/wkt';
import { EXCHANGE_MAGIC, ExchangeReader, MAX_EXCHANGE_DATA, TcpExchange, decodeExchangeData } from '../../src/proxy/stats/istio/tcp-exchange.js';
import { PeerExchange } from '../../src/proxy/stats/istio/peer-metadata.js';
import { localWorkload } from '../../src/proxy/stats/istio/workload.js';

const local = localWorkload('reviews-v2-1', { NAMESPACE: 'shop', LABELS: { app: 'reviews', version: 'v2' } });
const tx = new TcpExchange(new PeerExchange(local, 'reviews-v2-1'));

test('the frame has Istio\'s layout: magic, size, Any(Struct{x-envoy-peer-metadata, x-envoy-peer-metadata-id})', () => {
  const f = tx.frame;
  assert.equal(f.readUInt32BE(0), EXCHANGE_MAGIC);
  assert.equal(f.readUInt32BE(4), f.length - 8);
  const any = fromBinary(AnySchema, f.subarray(8));
  assert.equal(any.typeUrl, 'type.googleapis.com/google.protobuf.Struct');
  const s = fromBinary(StructSchema, any.value);
  const id = s.fields['x-envoy-peer-metadata-id']?.kind;
  assert.deepEqual(id, { case: 'stringValue', value: 'reviews-v2-1' });
  const md = s.fields['x-envoy-peer-metadata']?.kind;
  assert.equal(md?.case, 'structValue');
  const w = decodeExchangeData(f.subarray(8))!;
  assert.equal(w.workloadName, 'reviews-v2-1');
  assert.equal(w.namespace, 'shop');
  assert.equal(w.app, 'reviews');
  assert.equal(w.version, 'v2');
  assert.equal(w.canonicalService, 'reviews');
});

test('a frame split byte by byte, then payload: the peer is read and the payload passed on exactly', () => {
  const r = new ExchangeReader();
  const all = Buffer.concat([tx.frame, Buffer.from('payload')]);
  let out: Buffer | null = null;
  for (let i = 0; i < all.length && out === null; i++) out = r.push(all.subarray(i, i + 1));
  // The frame's last byte completes it: nothing of the payload has been fed yet.
  assert.notEqual(out, null);
  assert.equal(out!.length, 0);
  assert.equal(r.peer(tx.peers)?.workloadName, 'reviews-v2-1');
  const one = new ExchangeReader();
  assert.equal(one.push(all)!.toString(), 'payload');
  assert.equal(one.peer(tx.peers), r.peer(tx.peers), 'the decoded peer is cached and shared');
});

test('bytes that are not a frame are passed on untouched; a short prefix of the magic waits, then is flushed', () => {
  assert.equal(new ExchangeReader().push(Buffer.from('GET / HTTP/1.1\r\n'))!.toString(), 'GET / HTTP/1.1\r\n');
  const r = new ExchangeReader();
  assert.equal(r.push(Buffer.from([0x3d, 0x23])), null);
  assert.deepEqual([...r.flush()], [0x3d, 0x23]);
  assert.equal(r.peer(tx.peers), undefined);
  const wrong = new ExchangeReader();
  assert.equal(wrong.push(Buffer.from([0x3d, 0x23])), null);
  assert.deepEqual([...wrong.push(Buffer.from([0x00]))!], [0x3d, 0x23, 0x00]);
});

test('an oversized or undecodable frame names no peer', () => {
  const big = Buffer.alloc(8);
  big.writeUInt32BE(EXCHANGE_MAGIC, 0);
  big.writeUInt32BE(MAX_EXCHANGE_DATA + 1, 4);
  const r = new ExchangeReader();
  assert.equal(r.push(big)!.length, 8, 'not taken for a frame: passed on');
  assert.equal(r.peer(tx.peers), undefined);
  const junk = Buffer.concat([Buffer.from([0x3d, 0x23, 0x04, 0x67, 0, 0, 0, 3]), Buffer.from([0xff, 0xff, 0xff]), Buffer.from('x')]);
  const j = new ExchangeReader();
  assert.equal(j.push(junk)!.toString(), 'x');
  assert.equal(j.peer(tx.peers), undefined);
});
