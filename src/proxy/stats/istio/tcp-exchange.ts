/**
 * In-band peer metadata exchange on TCP, Istio's `istio.metadata_exchange` network filter, so the TCP metrics of
 * both sidecars carry the other side's workload labels, as the HTTP headers of peer-metadata.ts do for requests.
 *
 * It runs only inside mutual TLS, and only when both ends agreed on it: the client sidecar offers the ALPN value
 * `istio-peer-exchange` (its TCP clusters' ALPN, `istio-peer-exchange, istio`), and a server sidecar lists it first
 * on its TCP ports' TLS contexts (`istio-peer-exchange, h2, http/1.1`, Istio's ALPNDownstreamWithMxc). A plain server
 * never negotiates it, so nothing is ever written to a peer that would not strip it. When the negotiated protocol is
 * `istio-peer-exchange`, each side writes, before any payload byte, one frame:
 *
 *   magic      uint32 big-endian 0x3D230467
 *   data_size  uint32 big-endian
 *   data       google.protobuf.Any{ type_url: type.googleapis.com/google.protobuf.Struct,
 *                                   value: Struct{ "x-envoy-peer-metadata": <the node metadata Struct>,
 *                                                  "x-envoy-peer-metadata-id": <the node id> } }
 *
 * and takes the peer's frame off the front of what it reads (the application never sees it). The wire format is
 * Istio's, so a Weft sidecar and an Istio sidecar understand each other. Bytes that do not start with the magic are
 * passed on untouched (a peer that agreed on the ALPN but writes no frame); a frame whose data does not decode names
 * no peer. A frame announcing more than MAX_EXCHANGE_DATA bytes is not taken for one (its bytes are passed on).
 *
 *   const tx = new TcpExchange(peerExchange);       // once per proxy (IstioMetrics.tcpExchange): tx.frame
 *   socket.write(tx.frame)                          // first, on a connection that negotiated EXCHANGE_ALPN
 *   const r = new ExchangeReader();                 // per connection and direction
 *   const rest = r.push(chunk);                     // null: more bytes needed; else the payload after the frame
 *   r.peer(tx.peers)                                // the peer's workload (undefined: none was read)
 */
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { AnySchema, StructSchema, type Value } from '@bufbuild/protobuf/wkt';
import { PEER_METADATA_HEADER, PEER_METADATA_ID_HEADER, peerMetadataStruct, workloadOfStruct, type PeerExchange } from './peer-metadata.js';
import type { Workload } from './workload.js';

/** The ALPN value both sides negotiate to run the exchange. */
export const EXCHANGE_ALPN = 'istio-peer-exchange';
/** The frame's magic number (Istio's MetadataExchangeInitialHeader). */
export const EXCHANGE_MAGIC = 0x3d230467;
/** The largest frame data accepted (a node's metadata is a few hundred bytes). */
export const MAX_EXCHANGE_DATA = 64 * 1024;
const HEADER_SIZE = 8;
const STRUCT_TYPE_URL = 'type.googleapis.com/google.protobuf.Struct';

/** The frame this proxy writes (built once). */
export function exchangeFrame(local: Workload, nodeId: string): Buffer {
  const fields: Record<string, Value> = {};
  fields[PEER_METADATA_HEADER] = { $typeName: 'google.protobuf.Value', kind: { case: 'structValue', value: peerMetadataStruct(local, nodeId) } } as Value;
  if (nodeId) fields[PEER_METADATA_ID_HEADER] = { $typeName: 'google.protobuf.Value', kind: { case: 'stringValue', value: nodeId } } as Value;
  const any = create(AnySchema, { typeUrl: STRUCT_TYPE_URL, value: toBinary(StructSchema, create(StructSchema, { fields })) });
  const data = toBinary(AnySchema, any);
  const frame = Buffer.allocUnsafe(HEADER_SIZE + data.length);
  frame.writeUInt32BE(EXCHANGE_MAGIC, 0);
  frame.writeUInt32BE(data.length, 4);
  frame.set(data, HEADER_SIZE);
  return frame;
}

/** The proxy's side of the TCP exchange: its frame (built once) and the peer cache it shares with HTTP. */
export class TcpExchange {
  readonly frame: Buffer;
  constructor(readonly peers: PeerExchange) {
    this.frame = exchangeFrame(peers.local, peers.id);
  }
}

/** The workload a frame's data describes; undefined when it is not an Any of a Struct carrying the metadata. */
export function decodeExchangeData(data: Buffer): Workload | undefined {
  try {
    const any = fromBinary(AnySchema, data);
    if (any.typeUrl !== STRUCT_TYPE_URL) return undefined;
    const md = fromBinary(StructSchema, any.value).fields[PEER_METADATA_HEADER];
    return md?.kind.case === 'structValue' ? workloadOfStruct(md.kind.value) : undefined;
  } catch {
    return undefined;
  }
}

function decodeKey(key: string): Workload | undefined {
  return decodeExchangeData(Buffer.from(key.slice(4), 'base64'));
}

/** Reads the peer's frame off the front of one direction of a connection. */
export class ExchangeReader {
  private pending: Buffer | null = null;
  private data: Buffer | null = null;

  /**
   * Takes `chunk`: null while the frame is incomplete (the bytes are kept), else what follows the frame (possibly
   * empty) — or everything read, when it does not start with the magic or the frame is too large.
   */
  push(chunk: Buffer): Buffer | null {
    const buf = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    if (buf.length < HEADER_SIZE) {
      // A shorter prefix that already differs from the magic is not a frame.
      if (!magicPrefix(buf)) return this.done(buf);
      this.pending = buf;
      return null;
    }
    if (buf.readUInt32BE(0) !== EXCHANGE_MAGIC) return this.done(buf);
    const size = buf.readUInt32BE(4);
    if (size > MAX_EXCHANGE_DATA) return this.done(buf);
    if (buf.length < HEADER_SIZE + size) {
      this.pending = buf;
      return null;
    }
    this.data = buf.subarray(HEADER_SIZE, HEADER_SIZE + size);
    return this.done(buf.subarray(HEADER_SIZE + size));
  }

  /** The connection ended before a whole frame: the bytes held (passed on as they are). */
  flush(): Buffer {
    const p = this.pending ?? Buffer.alloc(0);
    this.pending = null;
    return p;
  }

  /** The peer the frame named (decoded once per distinct frame, through the proxy's peer cache). */
  peer(exchange: PeerExchange): Workload | undefined {
    if (this.data === null) return undefined;
    return exchange.cached(`tcp:${this.data.toString('base64')}`, decodeKey);
  }

  private done(rest: Buffer): Buffer {
    this.pending = null;
    return rest;
  }
}

const MAGIC_BYTES = [0x3d, 0x23, 0x04, 0x67];

function magicPrefix(b: Buffer): boolean {
  for (let i = 0; i < b.length && i < 4; i++) if (b[i] !== MAGIC_BYTES[i]) return false;
  return true;
}
