/**
 * The simulated Envoys' gRPC transport: one bidirectional-streaming call over its own HTTP/2 connection
 * (node:http2), with gRPC's message framing (a 5-byte header: compressed flag, then the length, big-endian) done
 * here. It sends and receives exactly what a gRPC client library does (the same headers, DATA frames and
 * framing; the call ends on the server's trailers or a reset), with much less work per response than
 * @grpc/grpc-js's client, which, for hundreds of simulated proxies receiving megabytes each, was where the client
 * processes spent most of their time: it assembles every message into a new buffer (for a multi-megabyte
 * response, megabytes of fresh memory to page in and then collect, which cost far more than reading them).
 *
 * Here a response is read as it arrives instead: its top-level fields are handed to the reader one by one
 * (`MessageSink`), each as a span of the DATA chunk it is in; only a field that straddles chunks is copied, into
 * a buffer the calls of the process share and reuse (takeBuffer). Reading a chunk at a time also keeps the event loop turning between chunks, so, like Envoy's
 * HTTP/2 codec, the connections keep reading (and answering the control plane's keepalive PINGs) while
 * responses are processed.
 */
import { connect, constants } from 'node:http2';
import type { ClientHttp2Session, ClientHttp2Stream, IncomingHttpHeaders } from 'node:http2';

/** Bytes of gRPC's message header. */
const HEADER = 5;

/**
 * Buffers in which fields that straddle DATA chunks are assembled, shared by the calls of the process: a call
 * takes one when such a field starts and gives it back once the field has been read (other calls' chunks may
 * arrive in between). Sizes are powers of two, so a few buffers serve every field.
 */
const spare: Buffer[] = [];

function takeBuffer(size: number): Buffer {
  for (let i = spare.length - 1; i >= 0; i--) {
    const b = spare[i]!;
    if (b.length >= size) {
      spare[i] = spare[spare.length - 1]!;
      spare.pop();
      return b;
    }
  }
  let cap = 4096;
  while (cap < size) cap *= 2;
  return Buffer.allocUnsafeSlow(cap);
}

function giveBuffer(b: Buffer): void {
  spare.push(b);
}

/** Receives a message's top-level fields as they arrive (see the module comment). */
export interface MessageSink {
  /** A length-delimited field of the message, complete: its value is buf[start, end), valid during the call only. */
  field(num: number, buf: Buffer, start: number, end: number): void;
  /** The message is complete (all its fields were given); `bytes`: its serialized length. */
  end(bytes: number): void;
}

export interface CallEvents {
  /** Reads the messages received. */
  sink: MessageSink;
  /** The call failed or was ended by the server (not called after `cancel`). */
  onEnd(error: string): void;
}

export interface CallOptions {
  /** HTTP/2 stream and connection flow-control windows. */
  windowBytes: number;
  userAgent?: string;
}

/** One bidirectional-streaming gRPC call on a connection of its own. */
export class GrpcStreamCall {
  private readonly session: ClientHttp2Session;
  private readonly stream: ClientHttp2Stream;
  private cancelled = false;
  private ended = false;
  private status?: { code: number; message: string };
  // Reading state. gRPC framing: the message header read so far, then the bytes of the message still to come.
  private readonly header = Buffer.alloc(HEADER);
  private headerHave = 0;
  private inMessage = false;
  private messageLength = 0;
  private messageLeft = 0;
  // Protobuf fields of the message: 0 = tag, 1 = length, 2 = length-delimited value, 3 = varint value, 4 = fixed
  // bytes to skip.
  private phase = 0;
  private varint = 0;
  private varintMul = 1;
  private fieldNum = 0;
  private valueLeft = 0;
  /** A value that straddles chunks is assembled here (see takeBuffer); bytes copied so far. */
  private assembly?: Buffer;
  private valueHave = 0;
  private valueLength = 0;

  constructor(address: string, path: string, private readonly events: CallEvents, opts: CallOptions) {
    const session = connect(`http://${address}`, {
      settings: { initialWindowSize: opts.windowBytes },
      // As grpc-js does: Node's session memory check misbehaves under load, and the windows bound what is buffered.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
    });
    this.session = session;
    session.once('remoteSettings', () => {
      if (!session.destroyed) session.setLocalWindowSize(opts.windowBytes);
    });
    session.on('error', (e: Error) => this.end(`connection error: ${e.message}`));
    session.on('goaway', () => this.end('the control plane closed the connection (GOAWAY)'));
    const stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST',
      [constants.HTTP2_HEADER_PATH]: path,
      [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
      [constants.HTTP2_HEADER_TE]: 'trailers',
      [constants.HTTP2_HEADER_USER_AGENT]: opts.userAgent ?? 'weft-bench',
    });
    this.stream = stream;
    stream.on('response', (h: IncomingHttpHeaders) => {
      const s = h[constants.HTTP2_HEADER_STATUS];
      if (Number(s) !== 200) this.end(`HTTP status ${String(s)}`);
      else this.trailers(h); // a trailers-only response carries grpc-status in its headers
    });
    stream.on('trailers', (h: IncomingHttpHeaders) => this.trailers(h));
    stream.on('data', (chunk: Buffer) => {
      try {
        this.read(chunk);
      } catch (e) {
        this.end(`bad gRPC framing: ${(e as Error).message}`);
        this.cancel();
      }
    });
    stream.on('error', (e: Error) => this.end(`stream error: ${e.message}`));
    stream.on('close', () => {
      const st = this.status;
      if (st && st.code !== 0) this.end(`stream error: ${st.code} ${st.message}`);
      else this.end('stream ended by the control plane');
    });
  }

  /** Sends a message (framed here). */
  write(message: Uint8Array): void {
    this.writeParts([message]);
  }

  /**
   * Sends a message given as consecutive parts (its serialized bytes are their concatenation): the gRPC header
   * and the parts go to the stream in one batched write, without copying them into one buffer (a SotW ACK's
   * hundred-kilobyte resource_names part is written as it is kept, see client.ts). The parts must not change
   * afterwards.
   */
  writeParts(parts: readonly Uint8Array[]): void {
    if (this.cancelled || this.ended) return;
    let length = 0;
    for (const p of parts) length += p.length;
    const header = Buffer.allocUnsafe(HEADER);
    header[0] = 0;
    header.writeUInt32BE(length, 1);
    const stream = this.stream;
    stream.cork();
    stream.write(header);
    for (const p of parts) if (p.length > 0) stream.write(p);
    stream.uncork();
  }

  /** Ends the call from this side (RST_STREAM CANCEL) and closes the connection. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
    if (!this.session.destroyed) this.session.close();
  }

  private trailers(h: IncomingHttpHeaders): void {
    const code = h['grpc-status'];
    if (code === undefined) return;
    const msg = h['grpc-message'];
    this.status = { code: Number(code), message: typeof msg === 'string' ? decodeURIComponent(msg) : '' };
  }

  private end(error: string): void {
    if (this.ended || this.cancelled) return;
    this.ended = true;
    this.events.onEnd(error);
  }

  /** Reads received bytes: gRPC message headers, and each message's fields (see `fields`). */
  private read(chunk: Buffer): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (!this.inMessage) {
        const k = Math.min(HEADER - this.headerHave, n - pos);
        chunk.copy(this.header, this.headerHave, pos, pos + k);
        this.headerHave += k;
        pos += k;
        if (this.headerHave < HEADER) return;
        this.headerHave = 0;
        if (this.header[0] !== 0) throw new Error(`compressed message (flag ${this.header[0]}): no compression was negotiated`);
        this.messageLength = this.messageLeft = this.header.readUInt32BE(1);
        this.inMessage = true;
        this.phase = 0;
        this.varint = 0;
        this.varintMul = 1;
      }
      const k = Math.min(this.messageLeft, n - pos);
      if (k > 0) this.fields(chunk, pos, pos + k);
      pos += k;
      this.messageLeft -= k;
      if (this.messageLeft === 0) {
        if (this.phase !== 0 || this.varintMul !== 1) throw new Error('a message ends inside a field');
        this.inMessage = false;
        if (!this.cancelled && !this.ended) this.events.sink.end(this.messageLength);
      }
    }
  }

  /** Reads buf[start, end) of the current message's fields, each handed to the sink once complete. */
  private fields(buf: Buffer, start: number, end: number): void {
    let pos = start;
    while (pos < end) {
      switch (this.phase) {
        case 0:
        case 1:
        case 3: {
          // A varint: the tag, a length, or a varint value (skipped).
          const b = buf[pos++]!;
          this.varint += (b & 0x7f) * this.varintMul;
          if (b & 0x80) {
            this.varintMul *= 128;
            if (this.varintMul > 2 ** 63) throw new Error('varint too long');
            continue;
          }
          const v = this.varint;
          this.varint = 0;
          this.varintMul = 1;
          if (this.phase === 0) {
            this.fieldNum = Math.floor(v / 8);
            const wt = v & 7;
            if (wt === 2) this.phase = 1;
            else if (wt === 0) this.phase = 3;
            else if (wt === 1 || wt === 5) {
              this.phase = 4;
              this.valueLeft = wt === 1 ? 8 : 4;
            } else throw new Error(`unsupported wire type ${wt}`);
          } else if (this.phase === 1) {
            this.valueLength = this.valueLeft = v;
            this.valueHave = 0;
            this.phase = 2;
            if (v === 0) {
              this.phase = 0;
              this.deliver(buf, pos, pos);
            }
          } else {
            this.phase = 0;
          }
          break;
        }
        case 2: {
          if (this.valueHave === 0 && end - pos >= this.valueLeft) {
            // The whole value in this chunk (the usual case): read in place.
            const e = pos + this.valueLeft;
            this.phase = 0;
            this.deliver(buf, pos, e);
            pos = e;
            break;
          }
          const k = Math.min(this.valueLeft, end - pos);
          const into = (this.assembly ??= takeBuffer(this.valueLength));
          buf.copy(into, this.valueHave, pos, pos + k);
          this.valueHave += k;
          this.valueLeft -= k;
          pos += k;
          if (this.valueLeft === 0) {
            this.phase = 0;
            this.assembly = undefined;
            this.valueHave = 0;
            try {
              this.deliver(into, 0, this.valueLength);
            } finally {
              giveBuffer(into);
            }
          }
          break;
        }
        default: {
          // Fixed-width bytes of a field nobody reads.
          const k = Math.min(this.valueLeft, end - pos);
          this.valueLeft -= k;
          pos += k;
          if (this.valueLeft === 0) this.phase = 0;
        }
      }
    }
  }

  private deliver(buf: Buffer, start: number, end: number): void {
    if (this.cancelled || this.ended) return;
    this.events.sink.field(this.fieldNum, buf, start, end);
  }
}
