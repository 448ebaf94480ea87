/** What SotW and Delta streams share: node identification, nonces, sync status and event hooks. */
import type { JsonObject } from '@bufbuild/protobuf';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { ProxyStatus, SnapshotCache, TypeStatus } from '../cache/cache.js';
import type { Snapshot } from '../cache/snapshot.js';
import { PUSH_ORDER } from '../cache/snapshot.js';

/** Events the ADS server reports (for logs, metrics and the control plane's lazy snapshot generation). */
export interface AdsHooks {
  /** A node opened a stream. The control plane makes sure a snapshot for it exists (or will). */
  onConnect?(node: Node, protocol: 'sotw' | 'delta'): void;
  onDisconnect?(nodeId: string, protocol: 'sotw' | 'delta'): void;
  onPush?(e: { nodeId: string; typeUrl: string; version: string; resources: number; removed: number; bytes: number; snapshot: string }): void;
  onAck?(e: { nodeId: string; typeUrl: string; version: string; latencyMs: number }): void;
  onNack?(e: { nodeId: string; typeUrl: string; version: string; message: string }): void;
}

export class StreamError extends Error {
  constructor(readonly grpcCode: number, message: string) {
    super(message);
  }
}

let nonceCounter = 0;

export abstract class AdsStreamBase {
  nodeId?: string;
  protected status?: ProxyStatus;
  private unwatch?: () => void;
  /** Types the client has asked for, in the order first asked. */
  protected readonly requested = new Set<string>();

  constructor(
    protected readonly cache: SnapshotCache,
    protected readonly hooks: AdsHooks,
    readonly protocol: 'sotw' | 'delta',
  ) {}

  /** Binds the stream to its node on the first request (which must carry node.id). */
  protected identify(node: Node | undefined): void {
    if (this.nodeId !== undefined) return;
    if (!node?.id) throw new StreamError(3 /* INVALID_ARGUMENT */, 'the first request on an ADS stream must carry node.id');
    this.nodeId = node.id;
    this.status = this.cache.openStream(node.id, nodeMetadata(node));
    this.hooks.onConnect?.(node, this.protocol);
    this.unwatch = this.cache.watch(node.id, (snap) => this.onSnapshot(snap));
  }

  protected typeStatus(typeUrl: string): TypeStatus {
    const types = this.status!.types;
    let t = types.get(typeUrl);
    if (!t) types.set(typeUrl, (t = {}));
    return t;
  }

  protected nextNonce(): string {
    return (++nonceCounter).toString(36);
  }

  protected snapshot(): Snapshot | undefined {
    return this.nodeId === undefined ? undefined : this.cache.getSnapshot(this.nodeId);
  }

  /** Pushes every requested type, in CDS → EDS → LDS → RDS → SDS order, then any other type. */
  private onSnapshot(snap: Snapshot): void {
    const ordered = [...PUSH_ORDER.filter((t) => this.requested.has(t)), ...[...this.requested].filter((t) => !PUSH_ORDER.includes(t))];
    for (const t of ordered) this.push(t, snap);
  }

  protected recordSent(typeUrl: string, version: string, nonce: string): void {
    const t = this.typeStatus(typeUrl);
    t.sentVersion = version;
    t.sentNonce = nonce;
    t.sentAt = Date.now();
  }

  protected recordAck(typeUrl: string, version: string): void {
    const t = this.typeStatus(typeUrl);
    t.ackedVersion = version;
    t.ackedAt = Date.now();
    this.hooks.onAck?.({ nodeId: this.nodeId!, typeUrl, version, latencyMs: t.sentAt ? Date.now() - t.sentAt : 0 });
  }

  protected recordNack(typeUrl: string, version: string, nonce: string, message: string): void {
    const t = this.typeStatus(typeUrl);
    t.nack = { version, nonce, message, at: Date.now() };
    this.hooks.onNack?.({ nodeId: this.nodeId!, typeUrl, version, message });
  }

  /** Sends what the client of this stream is missing of `typeUrl`, if anything. */
  protected abstract push(typeUrl: string, snap: Snapshot): void;

  close(): void {
    if (this.nodeId === undefined) return;
    this.unwatch?.();
    this.unwatch = undefined;
    this.cache.closeStream(this.nodeId);
    this.hooks.onDisconnect?.(this.nodeId, this.protocol);
    this.nodeId = undefined;
  }
}

function nodeMetadata(node: Node): Record<string, unknown> {
  const md: JsonObject = node.metadata ?? {};
  const out: Record<string, unknown> = { ...md };
  if (node.cluster) out.cluster = node.cluster;
  if (node.locality) out.locality = { region: node.locality.region, zone: node.locality.zone, subZone: node.locality.subZone };
  if (node.userAgentName) out.userAgent = `${node.userAgentName}${node.userAgentVersionType.case === 'userAgentVersion' ? `/${node.userAgentVersionType.value}` : ''}`;
  return out;
}
