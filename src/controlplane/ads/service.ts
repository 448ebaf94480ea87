/**
 * The server side of the AggregatedDiscoveryService (its definition lives in src/xds/ads-service.ts, shared with
 * Weft's ADS client). The server uses `serverAdsService`: the same methods, whose response serializer also
 * accepts a response that is already serialized (see encode.ts) and passes it through, and whose requests are
 * read lazily.
 *
 * `installFramedWrites` removes gRPC's copy of every response: grpc-js frames each message it sends into a new
 * buffer (BaseServerInterceptingCall.serializeMessage: a 5-byte header, then a copy of the serialized message),
 * which for a control plane pushing megabytes to hundreds of proxies is gigabytes of copies and of short-lived
 * buffers (whose external memory makes V8 run full garbage collections). A FramedResponse is framed already:
 * with framed writes installed, gRPC sends its bytes as they are (shared by every stream that sends them).
 *
 * `installPooledReads` does the same for the other direction: grpc-js assembles every message it receives into a
 * new buffer (StreamDecoder.write: the DATA chunks of a message, concatenated). Every SotW ACK repeats the whole
 * subscription, so at 500 proxies one endpoint change brings 250 ACKs of 100 KB each: 25 MB of fresh buffers
 * whose external memory made V8 run a full (incremental) mark-compact of the whole heap after nearly every
 * change. With pooled reads a message that arrives in one chunk is a view of that chunk, and a larger one is
 * assembled into a buffer of a small pool, given back once the stream has handled the request
 * (`releaseRequest`).
 */
import { createRequire } from 'node:module';
import { toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse } from '../../xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { aggregatedDiscoveryService } from '../../xds/ads-service.js';
import { FramedResponse, GRPC_FRAME_HEADER, LazyDeltaDiscoveryRequest, LazyDiscoveryRequest, ScratchResponse } from './encode.js';

function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** A response as the streams hand it over: a message, serialized bytes, bytes in the scratch buffer, or framed. */
export type ServerResponse<T> = T | Uint8Array | ScratchResponse | FramedResponse;

function serializer<D extends DescMessage>(schema: D) {
  return (m: ServerResponse<MessageShape<D>>): Buffer => {
    if (m instanceof FramedResponse) return m.message;
    if (m instanceof ScratchResponse) return asBuffer(m.take());
    if (m instanceof Uint8Array) return asBuffer(m);
    return Buffer.from(toBinary(schema, m));
  };
}

const sotw = aggregatedDiscoveryService.StreamAggregatedResources;
const delta = aggregatedDiscoveryService.DeltaAggregatedResources;

export interface ServerAdsMethods {
  StreamAggregatedResources: MethodDefinition<DiscoveryRequest, ServerResponse<DiscoveryResponse>>;
  DeltaAggregatedResources: MethodDefinition<DeltaDiscoveryRequest, ServerResponse<DeltaDiscoveryResponse>>;
}

export const serverAdsService: ServiceDefinition & ServerAdsMethods = {
  StreamAggregatedResources: {
    ...sotw,
    // Read lazily (see LazyDiscoveryRequest); the stream reads it through the SotwRequest interface.
    requestDeserialize: (b: Buffer) => new LazyDiscoveryRequest(b) as unknown as DiscoveryRequest,
    responseSerialize: serializer(DiscoveryResponseSchema),
  },
  DeltaAggregatedResources: {
    ...delta,
    // Read lazily (see LazyDeltaDiscoveryRequest); the stream reads it through the DeltaRequest interface.
    requestDeserialize: (b: Buffer) => new LazyDeltaDiscoveryRequest(b) as unknown as DeltaDiscoveryRequest,
    responseSerialize: serializer(DeltaDiscoveryResponseSchema),
  },
};

type SerializeMessage = (this: { handler: { serialize(v: unknown): Buffer } }, value: unknown) => Buffer;

let framedWrites: boolean | undefined;

/**
 * Lets gRPC send a FramedResponse's bytes without framing them again (see the module comment); every other
 * message goes through gRPC's own framing, unchanged. Checks first that gRPC frames messages the way
 * FramedResponse does (its framing of a probe message); when it does not, or its internals are not where this
 * expects them (another grpc-js version), nothing is installed and responses are framed by gRPC with a copy, as
 * usual. Returns whether framed writes are in effect. Idempotent.
 */
export function installFramedWrites(): boolean {
  if (framedWrites !== undefined) return framedWrites;
  framedWrites = false;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/server-interceptors.js') as { BaseServerInterceptingCall?: { prototype: { serializeMessage?: SerializeMessage } } };
    const proto = mod.BaseServerInterceptingCall?.prototype;
    const original = proto?.serializeMessage;
    if (!proto || typeof original !== 'function') return false;
    const probe = Buffer.from('weft');
    const framed = original.call({ handler: { serialize: () => probe } }, undefined);
    const expected = Buffer.concat([Buffer.from([0, 0, 0, 0, probe.length]), probe]);
    if (!Buffer.isBuffer(framed) || framed.length !== GRPC_FRAME_HEADER + probe.length || !framed.equals(expected)) return false;
    proto.serializeMessage = function (this: ThisParameterType<SerializeMessage>, value: unknown): Buffer {
      return value instanceof FramedResponse ? value.framed : original.call(this, value);
    };
    framedWrites = true;
  } catch {
    framedWrites = false;
  }
  return framedWrites;
}

/** Whether framed writes are in effect (installFramedWrites succeeded). */
export function framedWritesInstalled(): boolean {
  return framedWrites === true;
}

/**
 * Buffers in which received messages that span DATA chunks are assembled, reused (see the module comment). A
 * buffer is lent to one message at a time: it comes back (`releaseRequest`) only once the request read from it
 * has been handled, and one never given back (a gRPC client's message) is simply collected. Capacities are
 * multiples of MIN_POOLED_BYTES; at most POOL_BYTES are kept idle.
 */
const MIN_POOLED_BYTES = 16 * 1024;
const POOL_BYTES = 8 * 1024 * 1024;
const idle: Buffer[] = [];
let idleBytes = 0;
/** Buffers lent out, by their memory. */
const lent = new WeakMap<ArrayBufferLike, Buffer>();

function lend(size: number): Buffer {
  // The smallest idle buffer that fits; of equal ones, the one given back last.
  let best = -1;
  for (let i = 0; i < idle.length; i++) {
    const len = idle[i]!.length;
    if (len >= size && (best < 0 || len <= idle[best]!.length)) best = i;
  }
  if (best >= 0) {
    const b = idle[best]!;
    idle.splice(best, 1);
    idleBytes -= b.length;
    lent.set(b.buffer, b);
    return b;
  }
  // Rounded up a little, so that the next message of about the same size (the same stream's next ACK) fits.
  const b = Buffer.allocUnsafeSlow(Math.ceil(size / MIN_POOLED_BYTES) * MIN_POOLED_BYTES);
  lent.set(b.buffer, b);
  return b;
}

/**
 * The request has been handled, and nothing refers to its bytes any more (the streams copy what they keep): the
 * buffer it was assembled in, if pooled, can take the next message. Called once per request (AdsServer does,
 * after the stream's onRequest): a second call after the buffer was lent again would give back the new loan.
 */
export function releaseRequest(req: unknown): void {
  const bytes = (req as { bytes?: unknown }).bytes;
  if (!(bytes instanceof Uint8Array)) return;
  const b = lent.get(bytes.buffer);
  if (!b) return;
  lent.delete(bytes.buffer);
  if (idleBytes + b.length > POOL_BYTES) return;
  idle.push(b);
  idleBytes += b.length;
}

/** Bytes of gRPC's message header (compressed flag, length). */
const HEADER = GRPC_FRAME_HEADER;

interface DecoderState {
  maxReadMessageLength: number;
  header: Buffer;
  headerHave: number;
  /** The message being assembled (header included), and how much of it is there. */
  message?: Buffer;
  have: number;
}

const decoderStates = new WeakMap<object, DecoderState>();

/**
 * grpc-js's StreamDecoder.write, with messages as views of the chunk they arrive in or assembled into a pooled
 * buffer (see the module comment): returns the complete messages of `data`, each framed (header included).
 */
function pooledWrite(this: { maxReadMessageLength: number }, data: Buffer): Buffer[] {
  let st = decoderStates.get(this);
  if (!st) decoderStates.set(this, (st = { maxReadMessageLength: this.maxReadMessageLength, header: Buffer.alloc(HEADER), headerHave: 0, have: 0 }));
  const out: Buffer[] = [];
  let pos = 0;
  const n = data.length;
  while (pos < n) {
    if (!st.message) {
      if (st.headerHave === 0 && n - pos >= HEADER) {
        const size = data.readUInt32BE(pos + 1);
        checkSize(st, size);
        if (n - pos >= HEADER + size) {
          // The whole message in this chunk: a view of it.
          out.push(data.subarray(pos, pos + HEADER + size));
          pos += HEADER + size;
          continue;
        }
        startMessage(st, size);
        data.copy(st.message!, 0, pos, pos + HEADER);
        st.have = HEADER;
        pos += HEADER;
      } else {
        const k = Math.min(HEADER - st.headerHave, n - pos);
        data.copy(st.header, st.headerHave, pos, pos + k);
        st.headerHave += k;
        pos += k;
        if (st.headerHave < HEADER) break;
        st.headerHave = 0;
        const size = st.header.readUInt32BE(1);
        checkSize(st, size);
        startMessage(st, size);
        st.header.copy(st.message!, 0);
        st.have = HEADER;
      }
    }
    const m = st.message!;
    const k = Math.min(m.length - st.have, n - pos);
    data.copy(m, st.have, pos, pos + k);
    st.have += k;
    pos += k;
    if (st.have === m.length) {
      out.push(m);
      st.message = undefined;
      st.have = 0;
    }
  }
  return out;
}

function checkSize(st: DecoderState, size: number): void {
  if (st.maxReadMessageLength !== -1 && size > st.maxReadMessageLength) {
    throw new Error(`Received message larger than max (${size} vs ${st.maxReadMessageLength})`);
  }
}

function startMessage(st: DecoderState, size: number): void {
  const total = HEADER + size;
  st.message = total >= MIN_POOLED_BYTES ? lend(total).subarray(0, total) : Buffer.allocUnsafe(total);
}

type DecoderWrite = (this: { maxReadMessageLength: number }, data: Buffer) => Buffer[];

let pooledReads: boolean | undefined;

/**
 * Replaces grpc-js's StreamDecoder.write with `pooledWrite` (see the module comment), for every gRPC call of the
 * process: a message nobody gives back (`releaseRequest`) is a buffer like any other. Checks first that grpc-js's
 * decoder is where this expects it and that both give the same messages for a probe (split in two at positions
 * inside and between its messages' headers and bodies); otherwise nothing is installed. Returns whether pooled reads are in effect. Idempotent.
 */
export function installPooledReads(): boolean {
  if (pooledReads !== undefined) return pooledReads;
  pooledReads = false;
  try {
    const require = createRequire(import.meta.url);
    const mod = require('@grpc/grpc-js/build/src/stream-decoder.js') as { StreamDecoder?: new (max: number) => { maxReadMessageLength: number; write: DecoderWrite } };
    const Decoder = mod.StreamDecoder;
    const original = Decoder?.prototype.write;
    if (!Decoder || typeof original !== 'function') return false;
    const probe = Buffer.concat([frame(Buffer.alloc(0)), frame(Buffer.from('weft')), frame(Buffer.alloc(MIN_POOLED_BYTES + 3, 7))]);
    const messages = (write: DecoderWrite, cut: number): Buffer[] => {
      const d = new Decoder(-1);
      return [...write.call(d, probe.subarray(0, cut)), ...write.call(d, probe.subarray(cut))].map((b) => Buffer.from(b));
    };
    for (const cut of [0, 1, 3, 5, 7, 9, 12, 20, probe.length - 1, probe.length]) {
      const a = messages(original, cut);
      const b = messages(pooledWrite, cut);
      if (a.length !== 3 || a.length !== b.length || a.some((m, i) => !m.equals(b[i]!))) return false;
    }
    Decoder.prototype.write = pooledWrite;
    pooledReads = true;
  } catch {
    pooledReads = false;
  }
  return pooledReads;
}

function frame(message: Buffer): Buffer {
  const h = Buffer.alloc(HEADER);
  h.writeUInt32BE(message.length, 1);
  return Buffer.concat([h, message]);
}
