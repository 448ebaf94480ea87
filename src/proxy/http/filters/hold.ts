/**
 * HeldRequest: a request a filter stopped for a while (the fault filter's delay). It keeps the request body that
 * arrives meanwhile (and pauses reading the client, so at most a socket read is kept), and then either resumes the
 * filter chain with that body (`resume()`) or lets the filter answer locally. A client that goes away cancels the
 * hold (`onCancel`). Envoy's equivalent is a filter returning StopIteration from decodeHeaders and
 * StopIterationAndWatermark from decodeData, then calling continueDecoding().
 *
 *   const held = new HeldRequest(stream, decision, index + 1, chain, onCancel);
 *   ... later: held.resume()   or   stream.localReply(...)  (after held.release())
 */
import type { HeaderList } from '../headers.js';
import type { RouteDecision } from '../router/decision.js';
import type { DownstreamStream, RequestBodySink } from '../server/connection.js';
import type { FilterChainCallbacks, HeldBody } from './registry.js';

export class HeldRequest implements RequestBodySink, HeldBody {
  readonly headOnly: boolean;
  readonly chunks: Buffer[] = [];
  trailers: HeaderList | null = null;
  private released = false;

  constructor(
    readonly stream: DownstreamStream,
    readonly decision: RouteDecision | undefined,
    private readonly next: number,
    private readonly chain: FilterChainCallbacks,
    private readonly onCancel: () => void,
  ) {
    this.headOnly = stream.requestComplete;
    stream.setBodySink(this);
    stream.onReset = () => this.cancel();
    if (!this.headOnly) stream.pauseRequestBody();
  }

  onRequestBody(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.stream.pauseRequestBody();
  }

  onRequestEnd(trailers: HeaderList | null): void {
    this.trailers = trailers;
  }

  /** Stops holding: the stream's body sink and reset callback are cleared. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.stream.setBodySink(null);
    this.stream.onReset = null;
  }

  /** Continues the filter chain after the holding filter, with the body received so far. */
  resume(): void {
    if (this.released) return;
    this.release();
    // Reading resumes first; the router pauses it again if it cannot take the body yet.
    if (!this.headOnly && !this.stream.requestComplete) this.stream.resumeRequestBody();
    this.chain.resume(this.stream, this.decision, this.next, this);
  }

  private cancel(): void {
    if (this.released) return;
    this.release();
    this.stream.flags = this.stream.flags === '' ? 'DC' : `${this.stream.flags},DC`;
    this.onCancel();
  }
}
