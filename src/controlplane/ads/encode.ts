/**
 * Wire encoding of ADS responses from resources that are already packed (a snapshot's VersionedResources), so a
 * response costs one buffer and a copy of each resource's serialized bytes (made once per resource and shared by
 * every response that carries it) instead of a full protobuf encoding of every resource for every proxy. The
 * output is byte-for-byte what `toBinary` gives for the same message (fields in field-number order, proto3
 * defaults left out); a test holds that. Also a lazy reader of SotW requests (LazyDiscoveryRequest).
 *
 * Where a response goes (see AdsStreamBase.send):
 * - gRPC frames every message it sends into a buffer of its own (a 5-byte header, then the message, copied);
 *   `installFramedWrites` (service.ts) lets a FramedResponse, already framed, through without that copy. Then a
 *   response costs one buffer and one copy of each resource (`encodeFramed`);
 * - otherwise responses are serialized into one scratch buffer that gRPC copies from (ScratchResponse);
 * - the first response of a type on a stream, when it carries every resource of a snapshot's map (what a
 *   connecting proxy gets), is the same for every proxy holding that map but for its nonce: it is encoded once,
 *   nonce included, and its bytes are shared (SharedResponses). A nonce only has to be unique within a stream,
 *   and a stream's first response of a type cannot repeat an earlier nonce of that stream and type.
 *
 *   DiscoveryResponse:      version_info = 1, resources = 2 (Any), type_url = 4, nonce = 5
 *   DeltaDiscoveryResponse: system_version_info = 1, resources = 2 (Resource), type_url = 4, nonce = 5,
 *                           removed_resources = 6
 *   Resource:               version = 1, resource = 2 (Any), name = 3
 *   Any:                    type_url = 1, value = 2
 */
import { fromBinary } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { NodeSchema } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import { StatusSchema } from '../../xds/gen/google/rpc/status_pb.js';
import type { Status } from '../../xds/gen/google/rpc/status_pb.js';
import type { VersionedResource } from '../cache/snapshot.js';

/** Wire type 2 (length-delimited) tags. */
const TAG1 = (1 << 3) | 2;
const TAG2 = (2 << 3) | 2;
const TAG3 = (3 << 3) | 2;
const TAG4 = (4 << 3) | 2;
const TAG5 = (5 << 3) | 2;
const TAG6 = (6 << 3) | 2;

function varintSize(n: number): number {
  let size = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    size++;
  }
  return size;
}

/** Size of a length-delimited field (tag, length, body) of `len` bytes; 0 for an empty one (not written). */
function fieldSize(len: number): number {
  return len === 0 ? 0 : 1 + varintSize(len) + len;
}

/** Size of an embedded message field: written even when empty (a repeated element always is). */
function messageFieldSize(len: number): number {
  return 1 + varintSize(len) + len;
}

function anySize(a: Any, typeUrlLen: number): number {
  return fieldSize(typeUrlLen) + fieldSize(a.value.length);
}

/**
 * The buffer responses are serialized into when the caller hands them to gRPC at once (see ScratchResponse):
 * gRPC copies a response into its own frame buffer, so one buffer serves every response, instead of a new
 * multi-megabyte buffer per response, each of which counts towards the external memory that makes V8 run full
 * garbage collections.
 */
let scratch = Buffer.allocUnsafe(0);

function scratchBuffer(size: number): Buffer {
  if (scratch.length < size) scratch = Buffer.allocUnsafe(Math.max(size, Math.min(2 * scratch.length, 64 * 1024 * 1024)));
  return scratch.subarray(0, size);
}

/** Bytes of the gRPC message header: compressed flag (0), then the message length (uint32, big-endian). */
export const GRPC_FRAME_HEADER = 5;

/** Where an encoding goes: a new buffer, the scratch buffer, or a new buffer framed as a gRPC message. */
export type EncodeTarget = 'alloc' | 'scratch' | 'framed';

class Writer {
  readonly buf: Buffer;
  pos = 0;

  constructor(size: number, target: EncodeTarget | boolean = 'alloc') {
    if (target === true || target === 'scratch') this.buf = scratchBuffer(size);
    else if (target === 'framed') {
      this.buf = Buffer.allocUnsafe(GRPC_FRAME_HEADER + size);
      this.buf[0] = 0;
      this.buf.writeUInt32BE(size, 1);
      this.pos = GRPC_FRAME_HEADER;
    } else this.buf = Buffer.allocUnsafe(size);
  }

  byte(b: number): void {
    this.buf[this.pos++] = b;
  }

  varint(n: number): void {
    while (n >= 0x80) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n = Math.floor(n / 128);
    }
    this.buf[this.pos++] = n;
  }

  /** A string field (left out when empty). */
  string(tag: number, s: string, len: number): void {
    if (len === 0) return;
    this.byte(tag);
    this.varint(len);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  /** A bytes field (left out when empty). */
  bytes(tag: number, b: Uint8Array): void {
    if (b.length === 0) return;
    this.byte(tag);
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** An embedded message field from the message's bytes (written even when empty). */
  message(tag: number, b: Uint8Array): void {
    this.byte(tag);
    this.varint(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  done(): Buffer {
    if (this.pos !== this.buf.length) throw new Error(`ADS response encoding: wrote ${this.pos} of ${this.buf.length} bytes`);
    return this.buf;
  }
}

const utf8 = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * The serialized `Any` of a resource, and (for Delta) its serialized `Resource`, made once per VersionedResource
 * (snapshots share them): a response then copies one buffer per resource.
 */
const anyBytes = new WeakMap<VersionedResource, Buffer>();
const deltaBytes = new WeakMap<VersionedResource, Buffer>();

function serializedAny(vr: VersionedResource): Buffer {
  let b = anyBytes.get(vr);
  if (!b) {
    const a = vr.resource;
    const tl = utf8(a.typeUrl);
    const w = new Writer(anySize(a, tl));
    w.string(TAG1, a.typeUrl, tl);
    w.bytes(TAG2, a.value);
    b = w.done();
    anyBytes.set(vr, b);
  }
  return b;
}

function serializedDeltaResource(vr: VersionedResource): Buffer {
  let b = deltaBytes.get(vr);
  if (!b) {
    const any = serializedAny(vr);
    const vl = utf8(vr.version);
    const nl = utf8(vr.name);
    const w = new Writer(fieldSize(vl) + messageFieldSize(any.length) + fieldSize(nl));
    w.string(TAG1, vr.version, vl);
    w.message(TAG2, any);
    w.string(TAG3, vr.name, nl);
    b = w.done();
    deltaBytes.set(vr, b);
  }
  return b;
}

export interface SotwResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: readonly VersionedResource[];
}

/**
 * A serialized envoy.service.discovery.v3.DiscoveryResponse. In the scratch buffer (`true` or 'scratch'), the
 * bytes are valid until the next encoding (hand them to gRPC as a ScratchResponse right away); 'framed' puts the
 * gRPC message header in front (see FramedResponse).
 */
export function encodeSotwResponse(r: SotwResponse, target: EncodeTarget | boolean = 'alloc'): Buffer {
  const versionLen = utf8(r.versionInfo);
  const typeUrlLen = utf8(r.typeUrl);
  const nonceLen = utf8(r.nonce);
  const parts = r.resources.map(serializedAny);
  let size = fieldSize(versionLen) + fieldSize(typeUrlLen) + fieldSize(nonceLen);
  for (const b of parts) size += messageFieldSize(b.length);
  const w = new Writer(size, target);
  w.string(TAG1, r.versionInfo, versionLen);
  for (const b of parts) w.message(TAG2, b);
  w.string(TAG4, r.typeUrl, typeUrlLen);
  w.string(TAG5, r.nonce, nonceLen);
  return w.done();
}

export interface DeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: readonly VersionedResource[];
  removedResources: readonly string[];
}

/** A serialized envoy.service.discovery.v3.DeltaDiscoveryResponse (`target`: see encodeSotwResponse). */
export function encodeDeltaResponse(r: DeltaResponse, target: EncodeTarget | boolean = 'alloc'): Buffer {
  const versionLen = utf8(r.systemVersionInfo);
  const typeUrlLen = utf8(r.typeUrl);
  const nonceLen = utf8(r.nonce);
  const parts = r.resources.map(serializedDeltaResource);
  let size = fieldSize(versionLen) + fieldSize(typeUrlLen) + fieldSize(nonceLen);
  for (const b of parts) size += messageFieldSize(b.length);
  const removedLens = r.removedResources.map(utf8);
  // Repeated strings are written even when empty.
  for (const l of removedLens) size += 1 + varintSize(l) + l;
  const w = new Writer(size, target);
  w.string(TAG1, r.systemVersionInfo, versionLen);
  for (const b of parts) w.message(TAG2, b);
  w.string(TAG4, r.typeUrl, typeUrlLen);
  w.string(TAG5, r.nonce, nonceLen);
  for (let i = 0; i < r.removedResources.length; i++) {
    const len = removedLens[i]!;
    w.byte(TAG6);
    w.varint(len);
    w.pos += w.buf.write(r.removedResources[i]!, w.pos, len, 'utf8');
  }
  return w.done();
}

/**
 * A response serialized in the scratch buffer, as handed to gRPC: the server's serializer (service.ts) marks it
 * consumed when gRPC takes its bytes (gRPC copies them into its frame). gRPC serializes as soon as the call is
 * free, which is at once unless an earlier message of the call is still being written; `detach` then copies the
 * bytes out of the scratch buffer before anything else is encoded into it.
 */
export class ScratchResponse {
  consumed = false;

  constructor(public bytes: Uint8Array) {}

  /** Takes the bytes (the serializer). */
  take(): Uint8Array {
    this.consumed = true;
    return this.bytes;
  }

  /** After handing the response to gRPC: makes sure it no longer refers to the scratch buffer. */
  detach(): void {
    if (!this.consumed) this.bytes = Buffer.from(this.bytes);
  }
}

/**
 * A response already framed as a gRPC message (GRPC_FRAME_HEADER bytes, then the serialized message), as gRPC
 * would frame it. The server's serializer (service.ts) hands gRPC the message, which gRPC frames with a copy;
 * with framed writes installed (service.ts, installFramedWrites) gRPC sends `framed` itself. The bytes are never
 * modified, so one FramedResponse can be written to any number of streams.
 */
export class FramedResponse {
  constructor(
    readonly framed: Buffer,
    /** The response's nonce (what a stream that sends it records as sent). */
    readonly nonce: string,
  ) {}

  /** The serialized message. */
  get message(): Buffer {
    return this.framed.subarray(GRPC_FRAME_HEADER);
  }

  /** Bytes of the serialized message. */
  get length(): number {
    return this.framed.length - GRPC_FRAME_HEADER;
  }
}

/**
 * First responses shared by the streams whose proxies hold the same map (see the module comment), by map and by
 * what else the response depends on (protocol, type, version). Entries are weak, so a response lives as long as a
 * stream is still writing it; the ones made last are also held for a while (up to `keepBytes`, until `keepMs`
 * after the last one was made), so the replicas of a workload connecting in a burst find them.
 */
export class SharedResponses {
  private readonly byMap = new WeakMap<object, Map<string, WeakRef<FramedResponse>>>();
  private readonly recent = new Set<FramedResponse>();
  private recentBytes = 0;
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly keepBytes = 64 * 1024 * 1024,
    private readonly keepMs = 10_000,
  ) {}

  /** The response for `map` and `key`, made by `make` when there is none alive. */
  get(map: object, key: string, make: () => FramedResponse): FramedResponse {
    let byKey = this.byMap.get(map);
    if (!byKey) this.byMap.set(map, (byKey = new Map()));
    const found = byKey.get(key)?.deref();
    if (found) return found;
    const r = make();
    for (const [k, ref] of byKey) if (ref.deref() === undefined) byKey.delete(k);
    byKey.set(key, new WeakRef(r));
    this.keep(r);
    return r;
  }

  /** Drops the responses held strongly (they stay shared while streams still write them). */
  release(): void {
    this.recent.clear();
    this.recentBytes = 0;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private keep(r: FramedResponse): void {
    if (r.framed.length > this.keepBytes) return;
    this.recent.add(r);
    this.recentBytes += r.framed.length;
    for (const old of this.recent) {
      if (this.recentBytes <= this.keepBytes) break;
      this.recent.delete(old);
      this.recentBytes -= old.framed.length;
    }
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => this.release(), this.keepMs);
    this.timer.unref();
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Requests

/** What a SotW stream reads of a DiscoveryRequest. */
export interface SotwRequest {
  node?: Node;
  versionInfo: string;
  resourceNames: readonly string[];
  typeUrl: string;
  responseNonce: string;
  errorDetail?: Pick<Status, 'code' | 'message'>;
  /**
   * The serialized resource_names fields, when they are contiguous in the request: a request naming the same
   * resources as the previous one (every SotW ACK repeats the subscription) is recognised by comparing bytes.
   */
  readonly resourceNamesBytes?: Uint8Array;
}

function readVarint(b: Uint8Array, pos: { p: number }): number {
  let result = 0;
  let shift = 1;
  for (;;) {
    if (pos.p >= b.length) throw new Error('truncated varint');
    const byte = b[pos.p++]!;
    result += (byte & 0x7f) * shift;
    if (byte < 0x80) return result;
    shift *= 128;
    if (shift > 2 ** 63) throw new Error('varint too long');
  }
}

/**
 * A DiscoveryRequest read field by field: scalar fields decoded at once, the node and error_detail with the
 * generated decoders, and resource_names only when asked for (a SotW ACK of two thousand assignments repeats
 * two thousand names the stream usually already has).
 */
export class LazyDiscoveryRequest implements SotwRequest {
  versionInfo = '';
  typeUrl = '';
  responseNonce = '';
  node?: Node;
  errorDetail?: Status;
  private readonly names: RepeatedNames;

  /** @param bytes the serialized request (see releaseRequest in service.ts: not read once the request is handled). */
  constructor(readonly bytes: Buffer) {
    const buf = bytes;
    const names = (this.names = new RepeatedNames(buf));
    forEachLengthDelimited(buf, 3, (field, start, end) => {
      switch (field) {
        case 1:
          this.versionInfo = buf.toString('utf8', start, end);
          break;
        case 2:
          this.node = fromBinary(NodeSchema, buf.subarray(start, end));
          break;
        case 3:
          names.add(start, end);
          break;
        case 4:
          this.typeUrl = buf.toString('utf8', start, end);
          break;
        case 5:
          this.responseNonce = buf.toString('utf8', start, end);
          break;
        case 6:
          this.errorDetail = fromBinary(StatusSchema, buf.subarray(start, end));
          break;
        default:
          break;
      }
    });
  }

  get resourceNames(): string[] {
    return this.names.list();
  }

  get resourceNamesBytes(): Uint8Array | undefined {
    return this.names.bytes();
  }
}

/**
 * Calls `visit` for each length-delimited field of a serialized message (field number, value start and end);
 * varint and fixed-width fields are skipped. Except for field `repeated` (a repeated string field, number 1 to
 * 15): a run of consecutive entries of it is visited once, with the span of the whole run, tags included (see
 * RepeatedNames). A SotW ACK repeats two thousand names: they are stepped over here, not visited one by one.
 */
function forEachLengthDelimited(buf: Buffer, repeated: number, visit: (field: number, start: number, end: number) => void): void {
  const pos = { p: 0 };
  const runTag = (repeated << 3) | 2;
  const n = buf.length;
  while (pos.p < n) {
    const tagStart = pos.p;
    if (buf[tagStart] === runTag) {
      pos.p = skipRun(buf, tagStart, runTag);
      visit(repeated, tagStart, pos.p);
      continue;
    }
    const tag = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wire = tag & 7;
    if (wire !== 2) {
      if (wire === 0) readVarint(buf, pos);
      else if (wire === 1) pos.p += 8;
      else if (wire === 5) pos.p += 4;
      else throw new Error(`unsupported wire type ${wire} (field ${field})`);
      continue;
    }
    const len = readVarint(buf, pos);
    const start = pos.p;
    const end = start + len;
    if (end > n) throw new Error('truncated field');
    visit(field, start, end);
    pos.p = end;
  }
}

/** The end of the run of consecutive `tag` (a one-byte tag, length-delimited) entries starting at `p`. */
function skipRun(buf: Buffer, p: number, tag: number): number {
  const n = buf.length;
  while (p < n && buf[p] === tag) {
    p++;
    // The length: one byte for names shorter than 128 bytes, the usual case.
    let len = buf[p++];
    if (len === undefined) throw new Error('truncated varint');
    if (len >= 0x80) {
      const pos = { p: p - 1 };
      len = readVarint(buf, pos);
      p = pos.p;
    }
    p += len;
    if (p > n) throw new Error('truncated field');
  }
  return p;
}

/**
 * A repeated string field of a serialized request, kept as the spans of its runs of entries in its buffer (see
 * forEachLengthDelimited; one run, unless another field comes between entries): the strings are decoded only when
 * `list()` is asked for, and `bytes()` gives the fields' serialized bytes when they are one run (streams that send
 * the same bytes share the subscription read from them).
 */
class RepeatedNames {
  /** Start and end of each run, tags included. */
  private readonly runs: number[] = [];
  private decoded?: string[];

  constructor(private readonly buf: Buffer) {}

  add(start: number, end: number): void {
    this.runs.push(start, end);
  }

  list(): string[] {
    if (!this.decoded) {
      const out: string[] = [];
      const buf = this.buf;
      const pos = { p: 0 };
      for (let i = 0; i < this.runs.length; i += 2) {
        pos.p = this.runs[i]!;
        const end = this.runs[i + 1]!;
        while (pos.p < end) {
          pos.p++; // the tag
          const len = readVarint(buf, pos);
          out.push(buf.toString('utf8', pos.p, pos.p + len));
          pos.p += len;
        }
      }
      this.decoded = out;
    }
    return this.decoded;
  }

  bytes(): Uint8Array | undefined {
    if (this.runs.length === 0) return EMPTY_BYTES;
    if (this.runs.length > 2) return undefined;
    return this.buf.subarray(this.runs[0]!, this.runs[1]!);
  }
}

const EMPTY_BYTES = new Uint8Array(0);

/** What a Delta stream reads of a DeltaDiscoveryRequest (the generated message has all of it). */
export interface DeltaRequest {
  node?: Node;
  typeUrl: string;
  resourceNamesSubscribe: readonly string[];
  resourceNamesUnsubscribe: readonly string[];
  initialResourceVersions: Readonly<Record<string, string>>;
  responseNonce: string;
  errorDetail?: Pick<Status, 'code' | 'message'>;
  /** The serialized resource_names_subscribe fields, when they are contiguous (see SotwRequest.resourceNamesBytes). */
  readonly resourceNamesSubscribeBytes?: Uint8Array;
}

/**
 * A DeltaDiscoveryRequest read field by field, like LazyDiscoveryRequest: resource_names_subscribe is decoded
 * only when asked for (a proxy's first EDS request names two thousand assignments, the same ones as the other
 * proxies of its shape, see DeltaStream.onRequest). Fields: node = 1, type_url = 2, resource_names_subscribe = 3,
 * resource_names_unsubscribe = 4, initial_resource_versions = 5 (map entries: key = 1, value = 2),
 * response_nonce = 6, error_detail = 7; the resource locators (8, 9) are not read.
 */
export class LazyDeltaDiscoveryRequest implements DeltaRequest {
  typeUrl = '';
  responseNonce = '';
  node?: Node;
  errorDetail?: Status;
  readonly resourceNamesUnsubscribe: string[] = [];
  readonly initialResourceVersions: Record<string, string> = {};
  private readonly names: RepeatedNames;

  /** @param bytes the serialized request (see LazyDiscoveryRequest). */
  constructor(readonly bytes: Buffer) {
    const buf = bytes;
    const names = (this.names = new RepeatedNames(buf));
    forEachLengthDelimited(buf, 3, (field, start, end) => {
      switch (field) {
        case 1:
          this.node = fromBinary(NodeSchema, buf.subarray(start, end));
          break;
        case 2:
          this.typeUrl = buf.toString('utf8', start, end);
          break;
        case 3:
          names.add(start, end);
          break;
        case 4:
          this.resourceNamesUnsubscribe.push(buf.toString('utf8', start, end));
          break;
        case 5:
          this.readVersion(start, end);
          break;
        case 6:
          this.responseNonce = buf.toString('utf8', start, end);
          break;
        case 7:
          this.errorDetail = fromBinary(StatusSchema, buf.subarray(start, end));
          break;
        default:
          break;
      }
    });
  }

  /** One initial_resource_versions entry (a map entry message: key = 1, value = 2; the last one wins). */
  private readVersion(start: number, end: number): void {
    const buf = this.bytes;
    const pos = { p: start };
    let key = '';
    let value = '';
    while (pos.p < end) {
      const tag = readVarint(buf, pos);
      const wire = tag & 7;
      if (wire !== 2) throw new Error(`unsupported wire type ${wire} in initial_resource_versions`);
      const len = readVarint(buf, pos);
      if (pos.p + len > end) throw new Error('truncated field');
      const field = Math.floor(tag / 8);
      if (field === 1) key = buf.toString('utf8', pos.p, pos.p + len);
      else if (field === 2) value = buf.toString('utf8', pos.p, pos.p + len);
      pos.p += len;
    }
    this.initialResourceVersions[key] = value;
  }

  get resourceNamesSubscribe(): string[] {
    return this.names.list();
  }

  get resourceNamesSubscribeBytes(): Uint8Array | undefined {
    return this.names.bytes();
  }
}
