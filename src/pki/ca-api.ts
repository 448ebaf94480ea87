/**
 * The wire format of Istio's certificate API, `istio.v1.auth.IstioCertificateService/CreateCertificate`, which
 * Weft's CSR service serves on the TLS xDS port (15012) and Weft's proxy calls, as istiod and istio-agent do:
 *
 *   request  IstioCertificateRequest  { 1: csr (string, PEM), 3: validity_duration (int64, seconds),
 *                                       4: metadata (google.protobuf.Struct) }
 *   response IstioCertificateResponse { 1: cert_chain (repeated string: leaf, ..., root; one PEM each) }
 *
 * The caller authenticates with `authorization: Bearer <token>` call metadata. The two messages are encoded by
 * hand here (field numbers as Istio defines them) with protobuf-es's binary reader and writer.
 */
import { fromBinary, fromJson, toBinary } from '@bufbuild/protobuf';
import type { JsonObject } from '@bufbuild/protobuf';
import { BinaryReader, BinaryWriter, WireType } from '@bufbuild/protobuf/wire';
import { StructSchema } from '@bufbuild/protobuf/wkt';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_PATH = `/${CA_SERVICE_NAME}/CreateCertificate`;

export interface CertificateRequest {
  csr: string;
  /** Requested validity in seconds; 0 = the CA's default. */
  validityDurationSeconds: number;
  metadata: JsonObject;
}

export interface CertificateResponse {
  certChain: string[];
}

export function encodeCertificateRequest(r: CertificateRequest): Uint8Array {
  const w = new BinaryWriter();
  if (r.csr) w.tag(1, WireType.LengthDelimited).string(r.csr);
  if (r.validityDurationSeconds) w.tag(3, WireType.Varint).int64(r.validityDurationSeconds);
  if (Object.keys(r.metadata).length) w.tag(4, WireType.LengthDelimited).bytes(toBinary(StructSchema, fromJson(StructSchema, r.metadata)));
  return w.finish();
}

/** Decodes a request; throws (with the field) on malformed bytes. Unknown fields are skipped. */
export function decodeCertificateRequest(b: Uint8Array): CertificateRequest {
  const r = new BinaryReader(b);
  const out: CertificateRequest = { csr: '', validityDurationSeconds: 0, metadata: {} };
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) out.csr = r.string();
    else if (no === 3 && wt === WireType.Varint) out.validityDurationSeconds = Number(r.int64());
    else if (no === 4 && wt === WireType.LengthDelimited) {
      const s = fromBinary(StructSchema, r.bytes());
      const md: JsonObject = {};
      for (const [k, v] of Object.entries(s.fields)) if (v.kind.case === 'stringValue') md[k] = v.kind.value;
      out.metadata = md;
    } else r.skip(wt, no);
  }
  return out;
}

export function encodeCertificateResponse(r: CertificateResponse): Uint8Array {
  const w = new BinaryWriter();
  for (const c of r.certChain) w.tag(1, WireType.LengthDelimited).string(c);
  return w.finish();
}

export function decodeCertificateResponse(b: Uint8Array): CertificateResponse {
  const r = new BinaryReader(b);
  const out: CertificateResponse = { certChain: [] };
  while (r.pos < r.len) {
    const [no, wt] = r.tag();
    if (no === 1 && wt === WireType.LengthDelimited) out.certChain.push(r.string());
    else r.skip(wt, no);
  }
  return out;
}

const toBuffer = (u: Uint8Array) => Buffer.from(u.buffer, u.byteOffset, u.byteLength);

export interface CaServiceMethods {
  CreateCertificate: MethodDefinition<CertificateRequest, CertificateResponse>;
}

/** The gRPC service definition (for both `Server.addService` and `makeGenericClientConstructor`). */
export const caServiceDefinition: ServiceDefinition & CaServiceMethods = {
  CreateCertificate: {
    path: CREATE_CERTIFICATE_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: (m: CertificateRequest) => toBuffer(encodeCertificateRequest(m)),
    requestDeserialize: (b: Buffer) => decodeCertificateRequest(b),
    responseSerialize: (m: CertificateResponse) => toBuffer(encodeCertificateResponse(m)),
    responseDeserialize: (b: Buffer) => decodeCertificateResponse(b),
  },
};
