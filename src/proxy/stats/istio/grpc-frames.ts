/**
 * Counting gRPC messages in a byte stream, as Envoy's grpc_stats filter does for Istio's
 * istio_request_messages_total / istio_response_messages_total: each message is a 5-byte prefix (1 byte compressed
 * flag, 4 bytes big-endian length) followed by that many bytes; prefixes and messages may be split across chunks
 * anywhere.
 *
 *   const f = new GrpcFrameCounter();
 *   f.request(chunk); f.response(chunk);     // per body chunk, both directions
 *   f.requestMessages, f.responseMessages    // complete prefixes seen so far
 *
 * A message counts when its prefix has been read (Envoy's FrameInspector counts frames as their header completes).
 * One object per gRPC stream, allocated only when metrics are kept; no allocation per chunk.
 */

/** Where one direction's parser is. */
class Direction {
  messages = 0;
  /** Bytes of the current message still to skip. */
  remaining = 0;
  /** Prefix bytes read so far (0 = expecting a new prefix). */
  prefixRead = 0;
  /** The length being assembled from the prefix. */
  length = 0;

  feed(b: Buffer): void {
    let i = 0;
    const n = b.length;
    while (i < n) {
      if (this.remaining > 0) {
        const skip = Math.min(this.remaining, n - i);
        this.remaining -= skip;
        i += skip;
        continue;
      }
      // Prefix byte 0 is the compressed flag, bytes 1..4 the length.
      if (this.prefixRead > 0) this.length = this.length * 256 + b[i]!;
      this.prefixRead++;
      i++;
      if (this.prefixRead === 5) {
        this.messages++;
        this.remaining = this.length;
        this.prefixRead = 0;
        this.length = 0;
      }
    }
  }
}

export class GrpcFrameCounter {
  private readonly rq = new Direction();
  private readonly rs = new Direction();

  request(chunk: Buffer): void {
    this.rq.feed(chunk);
  }

  response(chunk: Buffer): void {
    this.rs.feed(chunk);
  }

  get requestMessages(): number {
    return this.rq.messages;
  }

  get responseMessages(): number {
    return this.rs.messages;
  }
}
