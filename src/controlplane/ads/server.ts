/** The ADS gRPC server: serves SotW and Delta streams from a SnapshotCache. */
import { Server, ServerCredentials, status as grpcStatus } from '@grpc/grpc-js';
import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { SnapshotCache } from '../cache/cache.js';
import { DeltaStream } from './delta.js';
import { installFramedWrites, installPooledReads, releaseRequest, serverAdsService } from './service.js';
import { SotwStream } from './sotw.js';
import type { AdsHooks } from './stream.js';
import { SendBudget, StreamError } from './stream.js';
import type { AdsStreamBase } from './stream.js';

/**
 * Decides whether a stream may be served (the TLS xDS port checks the proxy's node against its client
 * certificate): called with the node of the stream's first request; returns undefined to serve it, or the
 * refusal (a StreamError: gRPC code and message) to end it before anything is sent.
 */
export type AdsAuthorizer = (node: Node | undefined, call: ServerDuplexStream<unknown, unknown>) => StreamError | undefined;

/** Default bound of the bytes of responses handed to gRPC and not yet sent (see SendBudget). */
export const DEFAULT_SEND_BUDGET_BYTES = 128 * 1024 * 1024;

export interface AdsServerOptions {
  cache: SnapshotCache;
  hooks?: AdsHooks;
  /** Bound of the bytes of responses written and not yet sent, over all streams (default 128 MiB). */
  sendBudgetBytes?: number;
  /** Called with every stream-level error (bad first request, internal errors). */
  onError?(err: Error, nodeId: string | undefined): void;
}

export class AdsServer {
  readonly server: Server;
  readonly budget: SendBudget;
  private readonly streams = new Set<ServerDuplexStream<unknown, unknown>>();

  constructor(private readonly opts: AdsServerOptions) {
    installFramedWrites();
    installPooledReads();
    this.server = new Server({
      'grpc.max_receive_message_length': 64 * 1024 * 1024,
      'grpc.max_send_message_length': 256 * 1024 * 1024,
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_permit_without_calls': 1,
    });
    this.budget = new SendBudget(opts.sendBudgetBytes ?? DEFAULT_SEND_BUDGET_BYTES);
    this.addTo(this.server);
  }

  /**
   * Serves the ADS methods on `server` too (the TLS xDS port's server), with the same cache, hooks and send
   * budget; `authorize` checks each stream's node before its first request is handled.
   */
  addTo(server: Server, authorize?: AdsAuthorizer): void {
    const hooks = this.opts.hooks ?? {};
    const budget = this.budget;
    server.addService(serverAdsService, {
      StreamAggregatedResources: (call: ServerDuplexStream<any, any>) =>
        this.serve(call, new SotwStream(this.opts.cache, hooks, call, budget), authorize),
      DeltaAggregatedResources: (call: ServerDuplexStream<any, any>) =>
        this.serve(call, new DeltaStream(this.opts.cache, hooks, call, budget), authorize),
    });
  }

  private serve(call: ServerDuplexStream<any, any>, stream: AdsStreamBase & { onRequest(r: unknown): void }, authorize?: AdsAuthorizer): void {
    this.streams.add(call);
    let pending = authorize;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      this.streams.delete(call);
      stream.close();
    };
    const onRequest = (req: unknown): void => {
      if (done) return;
      if (pending) {
        const refusal = pending((req as { node?: Node }).node, call);
        pending = undefined;
        if (refusal) {
          finish();
          call.emit('error', Object.assign(new Error(refusal.message), { code: refusal.grpcCode, details: refusal.message }));
          call.end();
          return;
        }
      }
      try {
        stream.onRequest(req);
      } catch (e) {
        const err = e as Error;
        this.opts.onError?.(err, stream.nodeId);
        const code = e instanceof StreamError ? e.grpcCode : grpcStatus.INTERNAL;
        finish();
        call.emit('error', Object.assign(new Error(err.message), { code, details: err.message }));
        call.end();
      }
    };
    call.on('data', (req: unknown) => {
      try {
        onRequest(req);
      } finally {
        // The streams keep copies of what they need of a request: its bytes can take another message.
        releaseRequest(req);
      }
    });
    call.on('end', () => { finish(); call.end(); });
    call.on('error', finish);
    call.on('close', finish);
    call.on('cancelled', finish);
  }

  /** Binds and starts; returns the bound port (pass port 0 for any free port). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host.includes(':') ? `[${host}]` : host}:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(err);
        else resolve(bound);
      });
    });
  }

  /** Stops accepting streams, ends open ones, and shuts down. */
  close(): Promise<void> {
    for (const s of this.streams) s.end();
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.server.forceShutdown(); resolve(); }, 2000);
      this.server.tryShutdown(() => { clearTimeout(t); resolve(); });
    });
  }
}
