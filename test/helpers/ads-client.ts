/** A raw ADS client for tests: opens SotW or Delta streams with grpc-js and queues the responses. */
import { Client, credentials } from '@grpc/grpc-js';
import type { ChannelCredentials, ChannelOptions, ClientDuplexStream } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import type { MessageInitShape } from '@bufbuild/protobuf';
import { aggregatedDiscoveryService } from '../../src/xds/ads-service.js';
import {
  DeltaDiscoveryRequestSchema,
  DiscoveryRequestSchema,
} from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import type {
  DeltaDiscoveryResponse,
  DiscoveryResponse,
} from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';

class Queue<T> {
  private items: T[] = [];
  private waiters: Array<{ resolve: (v: T) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }> = [];
  error?: Error;
  push(v: T): void {
    const w = this.waiters.shift();
    if (w) { clearTimeout(w.timer); w.resolve(v); } else this.items.push(v);
  }
  fail(e: Error): void {
    this.error = e;
    for (const w of this.waiters.splice(0)) { clearTimeout(w.timer); w.reject(e); }
  }
  next(timeoutMs = 10_000): Promise<T> {
    const v = this.items.shift();
    if (v !== undefined) return Promise.resolve(v);
    if (this.error) return Promise.reject(this.error);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no message within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({ resolve, reject, timer });
    });
  }
  get pending(): number {
    return this.items.length;
  }
}

export class AdsTestClient {
  private readonly client: Client;
  /** Plaintext by default; pass credentials (and options) for TLS / mTLS. */
  constructor(address: string, creds: ChannelCredentials = credentials.createInsecure(), options: ChannelOptions = {}) {
    this.client = new Client(address, creds, options);
  }

  sotw(): SotwTestStream {
    const m = aggregatedDiscoveryService.StreamAggregatedResources;
    const call = this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
    return new SotwTestStream(call);
  }

  delta(): DeltaTestStream {
    const m = aggregatedDiscoveryService.DeltaAggregatedResources;
    const call = this.client.makeBidiStreamRequest(m.path, m.requestSerialize, m.responseDeserialize);
    return new DeltaTestStream(call);
  }

  close(): void {
    this.client.close();
  }
}

abstract class TestStream<Res> {
  readonly responses = new Queue<Res>();
  status?: { code: number; details: string };
  constructor(protected readonly call: ClientDuplexStream<any, Res>) {
    call.on('data', (r: Res) => this.responses.push(r));
    call.on('error', (e: Error & { code?: number; details?: string }) => {
      this.status = { code: e.code ?? -1, details: e.details ?? e.message };
      this.responses.fail(e);
    });
    call.on('status', (s: { code: number; details: string }) => { this.status ??= { code: s.code, details: s.details }; });
  }
  next(timeoutMs?: number): Promise<Res> {
    return this.responses.next(timeoutMs);
  }
  end(): void {
    this.call.end();
  }
  cancel(): void {
    this.call.cancel();
  }
}

export class SotwTestStream extends TestStream<DiscoveryResponse> {
  send(req: MessageInitShape<typeof DiscoveryRequestSchema>): void {
    this.call.write(create(DiscoveryRequestSchema, req));
  }
}

export class DeltaTestStream extends TestStream<DeltaDiscoveryResponse> {
  send(req: MessageInitShape<typeof DeltaDiscoveryRequestSchema>): void {
    this.call.write(create(DeltaDiscoveryRequestSchema, req));
  }
}
