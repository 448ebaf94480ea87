// A tiny State-of-the-World ADS server for tests that need exact Envoy configs (what the control plane's
// translation cannot produce, e.g. header-controlled faults): serves the resources a test sets, per type, to every
// connected `weft proxy`, and records ACKs and NACKs. DeltaAggregatedResources is left unimplemented, so proxies
// fall back to SotW. Every `set()` is a new version pushed to the streams that asked for that type.
import { Server, ServerCredentials, type ServerDuplexStream, type ServiceDefinition } from '@grpc/grpc-js';
import { create, type DescMessage, type MessageInitShape } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { aggregatedDiscoveryService } from '../../src/xds/ads-service.js';
import { pack } from '../../src/xds/index.js';
import { DiscoveryResponseSchema, type DiscoveryRequest, type DiscoveryResponse } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';

type Stream = ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

export interface AdsStatus {
  /** The last version the proxy ACKed, per type URL. */
  acked: Map<string, string>;
  /** NACK error messages, per type URL (in order). */
  nacks: Map<string, string[]>;
}

export class StaticAds {
  private readonly server = new Server();
  private readonly resources = new Map<string, Any[]>();
  private readonly versions = new Map<string, number>();
  private readonly streams = new Set<{ call: Stream; types: Set<string> }>();
  private nonce = 0;
  /** NACK count of a type when a version was set (`type@version`), so `settled` sees only later NACKs. */
  private readonly nackBase = new Map<string, number>();
  readonly status: AdsStatus = { acked: new Map(), nacks: new Map() };
  port = 0;

  constructor() {
    const def = { StreamAggregatedResources: aggregatedDiscoveryService.StreamAggregatedResources } as unknown as ServiceDefinition;
    this.server.addService(def, {
      StreamAggregatedResources: (call: Stream) => {
        const s = { call, types: new Set<string>() };
        this.streams.add(s);
        const drop = () => this.streams.delete(s);
        call.on('end', drop);
        call.on('cancelled', drop);
        call.on('error', drop);
        call.on('close', drop);
        call.on('data', (r: DiscoveryRequest) => {
          if (r.errorDetail) {
            const list = this.status.nacks.get(r.typeUrl) ?? [];
            list.push(r.errorDetail.message);
            this.status.nacks.set(r.typeUrl, list);
          } else if (r.responseNonce !== '') this.status.acked.set(r.typeUrl, r.versionInfo);
          if (!s.types.has(r.typeUrl)) {
            s.types.add(r.typeUrl);
            this.send(s.call, r.typeUrl);
          }
        });
      },
    });
  }

  listen(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (err, port) => {
        if (err) reject(err);
        else {
          this.port = port;
          resolve(`127.0.0.1:${port}`);
        }
      });
    });
  }

  /** Sets the resources of a type (a new version) and pushes them; returns the version string. */
  set<D extends DescMessage>(typeUrl: string, schema: D, list: Array<MessageInitShape<D>>): string {
    this.resources.set(typeUrl, list.map((m) => pack(schema, m)));
    const v = (this.versions.get(typeUrl) ?? 0) + 1;
    this.versions.set(typeUrl, v);
    this.nackBase.set(`${typeUrl}@${v}`, this.status.nacks.get(typeUrl)?.length ?? 0);
    for (const s of this.streams) if (s.types.has(typeUrl)) this.send(s.call, typeUrl);
    return String(v);
  }

  private send(call: Stream, typeUrl: string): void {
    const v = this.versions.get(typeUrl) ?? 0;
    call.write(create(DiscoveryResponseSchema, { versionInfo: String(v), typeUrl, resources: this.resources.get(typeUrl) ?? [], nonce: String(++this.nonce) }));
  }

  /** Waits (bounded) until the proxy ACKed `version` of a type, or NACKed it (then returns the NACK message). */
  async settled(typeUrl: string, version: string, timeoutMs = 15_000): Promise<{ acked: boolean; nack?: string }> {
    const nacksBefore = this.nackBase.get(`${typeUrl}@${version}`) ?? 0;
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (this.status.acked.get(typeUrl) === version) return { acked: true };
      const nacks = this.status.nacks.get(typeUrl) ?? [];
      if (nacks.length > nacksBefore) return { acked: false, nack: nacks[nacks.length - 1]! };
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`${typeUrl} version ${version} neither ACKed nor NACKed within ${timeoutMs} ms`);
  }

  close(): void {
    for (const s of this.streams) s.call.end();
    this.server.forceShutdown();
  }
}
