/**
 * X.509 building blocks shared by the CA (src/controlplane/ca) and the proxy's identity agent
 * (src/proxy/tls/identity): key generation, certificate construction, PKCS#10 CSRs.
 *
 * Certificates and CSRs are built with pkijs + asn1js over Node's WebCrypto; everything read back (validity,
 * SANs, chain checks) goes through node:crypto's X509Certificate, the same parser Node's TLS uses. Keys are
 * node:crypto KeyObjects; they are turned into non-extractable WebCrypto keys only to sign.
 */
import { createHash, createPublicKey, generateKeyPair as generateKeyPairCb, randomBytes, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { promisify } from 'node:util';
import * as asn1js from 'asn1js';
import * as pkijs from 'pkijs';
import { pemToDer, toPem } from './pem.js';

const generateKeyPairAsync = promisify(generateKeyPairCb);

/** pkijs over Node's WebCrypto (passed explicitly: no global engine is installed). */
export const engine = new pkijs.CryptoEngine({ name: 'node', crypto: webcrypto as unknown as ConstructorParameters<typeof pkijs.CryptoEngine>[0]['crypto'] });

export const OID = {
  basicConstraints: '2.5.29.19',
  keyUsage: '2.5.29.15',
  extKeyUsage: '2.5.29.37',
  subjectAltName: '2.5.29.17',
  subjectKeyId: '2.5.29.14',
  authorityKeyId: '2.5.29.35',
  extensionRequest: '1.2.840.113549.1.9.14',
  serverAuth: '1.3.6.1.5.5.7.3.1',
  clientAuth: '1.3.6.1.5.5.7.3.2',
  organization: '2.5.4.10',
  commonName: '2.5.4.3',
} as const;

/** KeyUsage bits (RFC 5280 4.2.1.3), as the first byte of the BIT STRING. */
const KU_DIGITAL_SIGNATURE = 0x80;
const KU_KEY_ENCIPHERMENT = 0x20;
const KU_KEY_CERT_SIGN = 0x04;
const KU_CRL_SIGN = 0x02;

/** A freshly generated ECDSA P-256 key: the KeyObject and its PKCS#8 PEM (for Node TLS contexts). */
export interface GeneratedKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  keyPem: string;
}

/** Generates an ECDSA P-256 key pair (off the event loop). */
export async function generateEcKey(): Promise<GeneratedKey> {
  const { privateKey, publicKey } = await generateKeyPairAsync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, publicKey, keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/** The WebCrypto algorithm and hash to sign with a key (ECDSA P-256/P-384/P-521 or RSA PKCS#1 v1.5). */
function signingAlgorithm(key: KeyObject): { algorithm: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams; hash: string } {
  const type = key.asymmetricKeyType;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : curve === 'secp521r1' ? 'P-521' : undefined;
    if (!named) throw new Error(`unsupported EC curve ${curve ?? '?'} (P-256, P-384 and P-521 are supported)`);
    const hash = named === 'P-256' ? 'SHA-256' : named === 'P-384' ? 'SHA-384' : 'SHA-512';
    return { algorithm: { name: 'ECDSA', namedCurve: named }, hash };
  }
  if (type === 'rsa') return { algorithm: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, hash: 'SHA-256' };
  throw new Error(`unsupported key type ${type ?? '?'} (EC and RSA keys are supported)`);
}

async function toSigningKey(key: KeyObject): Promise<{ cryptoKey: webcrypto.CryptoKey; hash: string }> {
  const { algorithm, hash } = signingAlgorithm(key);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  const cryptoKey = await webcrypto.subtle.importKey('pkcs8', der, algorithm, false, ['sign']);
  return { cryptoKey, hash };
}

function ab(u: Uint8Array): ArrayBuffer {
  return u.buffer.slice(u.byteOffset, u.byteOffset + u.byteLength) as ArrayBuffer;
}

/** The DER SubjectPublicKeyInfo of a public key. */
export function spkiDer(key: KeyObject): Uint8Array {
  const pub = key.type === 'private' ? createPublicKey(key) : key;
  return new Uint8Array(pub.export({ type: 'spki', format: 'der' }));
}

/** RFC 5280 key identifier (method 1): SHA-1 of the subjectPublicKey BIT STRING. */
export function keyIdentifier(spki: Uint8Array): Uint8Array {
  const info = pkijs.PublicKeyInfo.fromBER(spki);
  return new Uint8Array(createHash('sha1').update(info.subjectPublicKey.valueBlock.valueHexView).digest());
}

/** A random positive 128-bit serial number (RFC 5280: positive, at most 20 octets). */
function randomSerial(): Uint8Array {
  const b = new Uint8Array(randomBytes(16));
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b;
}

function time(d: Date): pkijs.Time {
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  return new pkijs.Time({ type: d.getUTCFullYear() >= 2050 ? pkijs.TimeType.GeneralizedTime : pkijs.TimeType.UTCTime, value: d });
}

function ext(extnID: string, critical: boolean, value: asn1js.BaseBlock | { toSchema(): asn1js.BaseBlock }): pkijs.Extension {
  const schema = 'toSchema' in value ? value.toSchema() : value;
  return new pkijs.Extension({ extnID, critical, extnValue: schema.toBER(false) });
}

function keyUsageExt(bits: number): pkijs.Extension {
  let unused = 0;
  while (unused < 7 && ((bits >> unused) & 1) === 0) unused++;
  return ext(OID.keyUsage, true, new asn1js.BitString({ valueHex: new Uint8Array([bits]).buffer, unusedBits: unused }));
}

/** Subject alternative names of a certificate. */
export interface AltNames {
  uris?: readonly string[];
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
}

/** The 4 or 16 bytes of an IP address (an iPAddress general name). */
function ipBytes(ip: string): Uint8Array {
  const v = isIP(ip);
  if (v === 4) return new Uint8Array(ip.split('.').map(Number));
  if (v !== 6) throw new Error(`"${ip}" is not an IP address`);
  const groups = (s: string): number[] => {
    if (!s) return [];
    const parts = s.split(':');
    const last = parts[parts.length - 1]!;
    const out = parts.slice(0, last.includes('.') ? -1 : undefined).map((g) => parseInt(g, 16));
    if (last.includes('.')) {
      const b = ipBytes(last);
      out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
    }
    return out;
  };
  const [head, tail] = ip.split('::');
  const h = groups(head!);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

function generalNames(names: AltNames): pkijs.GeneralNames {
  const out: pkijs.GeneralName[] = [];
  for (const u of names.uris ?? []) out.push(new pkijs.GeneralName({ type: 6, value: u }));
  for (const d of names.dnsNames ?? []) out.push(new pkijs.GeneralName({ type: 2, value: d }));
  for (const ip of names.ipAddresses ?? []) out.push(new pkijs.GeneralName({ type: 7, value: new asn1js.OctetString({ valueHex: ab(ipBytes(ip)) }) }));
  return new pkijs.GeneralNames({ names: out });
}

/**
 * A distinguished name with one attribute per RDN (O, then CN), or the empty name. Built as DER and parsed
 * back, because pkijs would put all attributes into one multi-valued RDN and encode the empty name as
 * SEQUENCE { SET {} }.
 */
function distinguishedName(subject: { organization?: string; commonName?: string } | undefined): pkijs.RelativeDistinguishedNames {
  const rdns: asn1js.Set[] = [];
  if (subject?.organization) rdns.push(new asn1js.Set({ value: [new pkijs.AttributeTypeAndValue({ type: OID.organization, value: new asn1js.Utf8String({ value: subject.organization }) }).toSchema()] }));
  if (subject?.commonName) rdns.push(new asn1js.Set({ value: [new pkijs.AttributeTypeAndValue({ type: OID.commonName, value: new asn1js.Utf8String({ value: subject.commonName }) }).toSchema()] }));
  return pkijs.RelativeDistinguishedNames.fromBER(new asn1js.Sequence({ value: rdns }).toBER(false));
}

/** What to put in a certificate. */
export interface CertificateSpec {
  /** Subject attributes; empty for workload certificates (identity is in the SAN, marked critical). */
  subject?: { organization?: string; commonName?: string };
  /** The subject's public key. */
  publicKey: KeyObject;
  notBefore: Date;
  notAfter: Date;
  /** A CA certificate (basicConstraints cA, keyCertSign + cRLSign) or a leaf (digitalSignature + keyEncipherment, server + client auth). */
  isCa: boolean;
  /** pathLenConstraint of a CA certificate. */
  pathLen?: number;
  altNames?: AltNames;
  /** The issuing certificate (DER); omitted for a self-signed certificate. */
  issuerDer?: Uint8Array;
  /** The key that signs: the issuer's, or the subject's own for a self-signed certificate. */
  signingKey: KeyObject;
}

/** A built certificate: DER, PEM and serial number (hex, as node:crypto prints it). */
export interface BuiltCertificate {
  der: Uint8Array;
  pem: string;
  serial: string;
}

/** Builds and signs an X.509 v3 certificate. */
export async function buildCertificate(spec: CertificateSpec): Promise<BuiltCertificate> {
  const cert = new pkijs.Certificate();
  cert.version = 2;
  const serial = randomSerial();
  cert.serialNumber = new asn1js.Integer({ valueHex: ab(serial) });
  cert.subject = distinguishedName(spec.subject);
  const subjectSpki = spkiDer(spec.publicKey);
  cert.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(subjectSpki);
  let authorityKeyId: Uint8Array;
  if (spec.issuerDer) {
    const issuer = pkijs.Certificate.fromBER(spec.issuerDer);
    cert.issuer = issuer.subject;
    authorityKeyId = keyIdentifier(new Uint8Array(issuer.subjectPublicKeyInfo.toSchema().toBER(false)));
  } else {
    cert.issuer = cert.subject;
    authorityKeyId = keyIdentifier(subjectSpki);
  }
  cert.notBefore = time(spec.notBefore);
  cert.notAfter = time(spec.notAfter);
  const extensions: pkijs.Extension[] = [
    ext(OID.basicConstraints, true, new pkijs.BasicConstraints(spec.isCa ? (spec.pathLen !== undefined ? { cA: true, pathLenConstraint: spec.pathLen } : { cA: true }) : { cA: false })),
    keyUsageExt(spec.isCa ? KU_KEY_CERT_SIGN | KU_CRL_SIGN | KU_DIGITAL_SIGNATURE : KU_DIGITAL_SIGNATURE | KU_KEY_ENCIPHERMENT),
  ];
  if (!spec.isCa) extensions.push(ext(OID.extKeyUsage, false, new pkijs.ExtKeyUsage({ keyPurposes: [OID.serverAuth, OID.clientAuth] })));
  extensions.push(ext(OID.subjectKeyId, false, new asn1js.OctetString({ valueHex: ab(keyIdentifier(subjectSpki)) })));
  extensions.push(ext(OID.authorityKeyId, false, new pkijs.AuthorityKeyIdentifier({ keyIdentifier: new asn1js.OctetString({ valueHex: ab(authorityKeyId) }) })));
  const names = spec.altNames;
  if (names && ((names.uris?.length ?? 0) + (names.dnsNames?.length ?? 0) + (names.ipAddresses?.length ?? 0)) > 0) {
    // RFC 5280 4.2.1.6: critical when the subject is empty.
    extensions.push(ext(OID.subjectAltName, cert.subject.typesAndValues.length === 0, generalNames(names)));
  }
  cert.extensions = extensions;
  const { cryptoKey, hash } = await toSigningKey(spec.signingKey);
  await cert.sign(cryptoKey as unknown as Parameters<pkijs.Certificate['sign']>[0], hash, engine);
  const der = new Uint8Array(cert.toSchema(true).toBER(false));
  return { der, pem: toPem('CERTIFICATE', der), serial: Buffer.from(serial).toString('hex').toUpperCase() };
}

/** Builds a PKCS#10 CSR for a key, asking for these SANs (extensionRequest attribute). */
export async function buildCsr(key: KeyObject, altNames: AltNames, subject?: { organization?: string }): Promise<string> {
  const csr = new pkijs.CertificationRequest();
  csr.version = 0;
  csr.subject = distinguishedName(subject);
  csr.subjectPublicKeyInfo = pkijs.PublicKeyInfo.fromBER(spkiDer(key));
  csr.attributes = [
    new pkijs.Attribute({
      type: OID.extensionRequest,
      values: [new pkijs.Extensions({ extensions: [ext(OID.subjectAltName, !subject?.organization, generalNames(altNames))] }).toSchema()],
    }),
  ];
  const { cryptoKey, hash } = await toSigningKey(key);
  await csr.sign(cryptoKey as unknown as Parameters<pkijs.CertificationRequest['sign']>[0], hash, engine);
  return toPem('CERTIFICATE REQUEST', new Uint8Array(csr.toSchema().toBER(false)));
}

/** A parsed, signature-checked CSR. */
export interface ParsedCsr {
  publicKey: KeyObject;
  /** `ec` (with curve) or `rsa` (with modulus bits). */
  keyDescription: string;
  /** SAN URIs the CSR asks for (from its extensionRequest). */
  uris: string[];
  dnsNames: string[];
}

/**
 * Parses a PEM CSR and checks its self-signature (proof of possession of the key). Accepts ECDSA P-256/P-384
 * and RSA >= 2048-bit keys. Throws an Error saying what is wrong.
 */
export async function parseCsr(csrPem: string): Promise<ParsedCsr> {
  let der: Uint8Array;
  try {
    der = pemToDer(csrPem, 'CERTIFICATE REQUEST', 'CSR');
  } catch (e) {
    throw new Error(`${(e as Error).message}`);
  }
  let csr: pkijs.CertificationRequest;
  try {
    csr = pkijs.CertificationRequest.fromBER(der);
  } catch (e) {
    throw new Error(`CSR is not a valid PKCS#10 request: ${(e as Error).message}`);
  }
  let publicKey: KeyObject;
  try {
    publicKey = createPublicKey({ key: Buffer.from(csr.subjectPublicKeyInfo.toSchema().toBER(false)), format: 'der', type: 'spki' });
  } catch (e) {
    throw new Error(`CSR public key cannot be read: ${(e as Error).message}`);
  }
  let keyDescription: string;
  const d = publicKey.asymmetricKeyDetails;
  if (publicKey.asymmetricKeyType === 'ec') {
    if (d?.namedCurve !== 'prime256v1' && d?.namedCurve !== 'secp384r1') throw new Error(`CSR key is EC ${d?.namedCurve ?? '?'}; P-256 or P-384 is required`);
    keyDescription = `ec ${d.namedCurve === 'prime256v1' ? 'P-256' : 'P-384'}`;
  } else if (publicKey.asymmetricKeyType === 'rsa') {
    if ((d?.modulusLength ?? 0) < 2048) throw new Error(`CSR key is RSA ${d?.modulusLength ?? '?'}-bit; at least 2048 bits are required`);
    keyDescription = `rsa ${d?.modulusLength}`;
  } else {
    throw new Error(`CSR key type ${publicKey.asymmetricKeyType ?? '?'} is not supported (ECDSA P-256 is expected)`);
  }
  let ok = false;
  try {
    ok = await csr.verify(engine);
  } catch (e) {
    throw new Error(`CSR signature cannot be checked: ${(e as Error).message}`);
  }
  if (!ok) throw new Error('CSR signature does not verify with its own public key');
  const uris: string[] = [];
  const dnsNames: string[] = [];
  for (const attr of csr.attributes ?? []) {
    if (attr.type !== OID.extensionRequest) continue;
    for (const v of attr.values) {
      const exts = new pkijs.Extensions({ schema: v });
      for (const e of exts.extensions) {
        if (e.extnID !== OID.subjectAltName) continue;
        const alt = e.parsedValue as pkijs.AltName | undefined;
        for (const n of alt?.altNames ?? []) {
          if (n.type === 6) uris.push(String(n.value));
          else if (n.type === 2) dnsNames.push(String(n.value));
        }
      }
    }
  }
  return { publicKey, keyDescription, uris, dnsNames };
}
