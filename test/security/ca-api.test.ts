// The hand-written codec of Istio's certificate API messages: field numbers (csr 1, validity_duration 3,
// metadata 4 as a google.protobuf.Struct; cert_chain 1 repeated), unknown fields skipped, checked against bytes
// written field by field with protobuf-es's generic writer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import { BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { StructSchema } from '@bufbuild/protobuf/wkt';
import { decodeCertificateRequest, decodeCertificateResponse, encodeCertificateRequest, encodeCertificateResponse } from '../../src/pki/ca-api.js';

test('IstioCertificateRequest: field numbers, Struct metadata, unknown fields skipped', () => {
  const md = create(StructSchema, { fields: { ClusterID: { kind: { case: 'stringValue', value: 'Kubernetes' } } } });
  const w = new BinaryWriter();
  w.tag(1, WireType.LengthDelimited).string('-----BEGIN CERTIFICATE REQUEST-----\n...');
  w.tag(2, WireType.Varint).int32(7); // not a field of the message: skipped
  w.tag(3, WireType.Varint).int64(86400);
  w.tag(4, WireType.LengthDelimited).bytes(toBinary(StructSchema, md));
  const decoded = decodeCertificateRequest(w.finish());
  assert.deepEqual(decoded, { csr: '-----BEGIN CERTIFICATE REQUEST-----\n...', validityDurationSeconds: 86400, metadata: { ClusterID: 'Kubernetes' } });
  assert.deepEqual(decodeCertificateRequest(encodeCertificateRequest(decoded)), decoded);
  assert.deepEqual(decodeCertificateRequest(new Uint8Array()), { csr: '', validityDurationSeconds: 0, metadata: {} });
  assert.throws(() => decodeCertificateRequest(new Uint8Array([0x0a, 0x05, 0x41])), /premature EOF|range|invalid/i);
});

test('IstioCertificateResponse: repeated cert_chain in order', () => {
  const w = new BinaryWriter();
  for (const c of ['leaf', 'intermediate', 'root']) w.tag(1, WireType.LengthDelimited).string(c);
  const bytes = w.finish();
  assert.deepEqual(decodeCertificateResponse(bytes), { certChain: ['leaf', 'intermediate', 'root'] });
  assert.deepEqual(encodeCertificateResponse({ certChain: ['leaf', 'intermediate', 'root'] }), bytes);
});
