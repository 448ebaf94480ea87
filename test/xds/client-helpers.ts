// Shared pieces of the ADS client tests: a waiting queue, `until`, an update recorder, and a scriptable fake
// ADS server (grpc-js) that records every request and lets a test answer, drop or fail each stream.
import { Server, ServerCredentials } from '@grpc/grpc-js';
import type { ServerDuplexStream, ServiceDefinition } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { Message, MessageInitShape } from '@bufbuild/protobuf';
import { aggregatedDiscoveryService } from '../../src/xds/ads-service.js';
import {
  DeltaDiscoveryResponseSchema,
  DiscoveryResponseSchema,
} from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type {
  DeltaDiscoveryRequest,
  DiscoveryRequest,
} from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type { ResourceUpdate } from '../../src/xds/client/index.js';

export class Queue<T> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (v: T) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) {
      clearTimeout(w.timer);
      w.resolve(v);
    } else this.items.push(v);
  }
  next(what = 'item', timeoutMs = 10_000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }
  get pending(): number {
    return this.items.length;
  }
}

/** Polls `fn` until it returns a truthy value. */
export async function until<T>(fn: () => T, what: string, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Records every update a handler receives. */
export class Recorder<T extends Message = Message> {
  readonly updates: Array<ResourceUpdate<T>> = [];
  get calls(): number {
    return this.updates.length;
  }
  get last(): ResourceUpdate<T> | undefined {
    return this.updates.at(-1);
  }
  names(): string[] {
    return [...(this.last?.full.keys() ?? [])].sort();
  }
}

type Req = DiscoveryRequest | DeltaDiscoveryRequest;

export class FakeStream<R extends Req> {
  readonly requests = new Queue<R>();
  readonly all: R[] = [];
  ended = false;
  constructor(readonly protocol: 'sotw' | 'delta', private readonly call: ServerDuplexStream<R, unknown>) {
    call.on('data', (r: R) => {
      this.all.push(r);
      this.requests.push(r);
    });
    const done = () => { this.ended = true; };
    call.on('end', done);
    call.on('cancelled', done);
    call.on('error', done);
    call.on('close', done);
  }
  next(timeoutMs?: number): Promise<R> {
    return this.requests.next(`${this.protocol} request`, timeoutMs);
  }
  /** Waits for the next request of a type, skipping (and returning) others seen before it. */
  async nextOf(typeUrl: string): Promise<R> {
    for (;;) {
      const r = await this.next();
      if (r.typeUrl === typeUrl) return r;
    }
  }
  sotw(res: MessageInitShape<typeof DiscoveryResponseSchema>): void {
    this.call.write(create(DiscoveryResponseSchema, res));
  }
  delta(res: MessageInitShape<typeof DeltaDiscoveryResponseSchema>): void {
    this.call.write(create(DeltaDiscoveryResponseSchema, res));
  }
  /** Ends the stream with status OK (a server going away cleanly). */
  end(): void {
    this.call.end();
  }
  /** Ends the stream with an error status. */
  fail(code: number, details: string): void {
    this.call.emit('error', Object.assign(new Error(details), { code, details }));
  }
}

/** A scriptable ADS server; `delta: false` leaves DeltaAggregatedResources unimplemented. */
export class FakeAds {
  readonly server = new Server();
  readonly sotwStreams = new Queue<FakeStream<DiscoveryRequest>>();
  readonly deltaStreams = new Queue<FakeStream<DeltaDiscoveryRequest>>();
  readonly streams: Array<FakeStream<Req>> = [];
  port = 0;

  constructor(opts: { delta: boolean; sotw?: boolean }) {
    const def: Record<string, ServiceDefinition[string]> = {};
    const impl: Record<string, (call: ServerDuplexStream<any, any>) => void> = {};
    if (opts.sotw !== false) {
      def.StreamAggregatedResources = aggregatedDiscoveryService.StreamAggregatedResources;
      impl.StreamAggregatedResources = (call) => {
        const s = new FakeStream<DiscoveryRequest>('sotw', call);
        this.streams.push(s as FakeStream<Req>);
        this.sotwStreams.push(s);
      };
    }
    if (opts.delta) {
      def.DeltaAggregatedResources = aggregatedDiscoveryService.DeltaAggregatedResources;
      impl.DeltaAggregatedResources = (call) => {
        const s = new FakeStream<DeltaDiscoveryRequest>('delta', call);
        this.streams.push(s as FakeStream<Req>);
        this.deltaStreams.push(s);
      };
    }
    this.server.addService(def as ServiceDefinition, impl);
  }

  listen(port = 0): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(err);
        else resolve((this.port = bound));
      });
    });
  }

  nextSotw(): Promise<FakeStream<DiscoveryRequest>> {
    return this.sotwStreams.next('SotW stream');
  }

  nextDelta(): Promise<FakeStream<DeltaDiscoveryRequest>> {
    return this.deltaStreams.next('Delta stream');
  }

  close(): void {
    this.server.forceShutdown();
  }
}
