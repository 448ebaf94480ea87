/** What SotW and Delta streams share: node identification, nonces, sync status and event hooks. */
import type { JsonObject } from '@bufbuild/protobuf';
import type { Node } from '../../xds/gen/envoy/config/core/v3/base_pb.js';
import type { ProxyStatus, SnapshotCache, TypeStatus } from '../cache/cache.js';
import type { Snapshot } from '../cache/snapshot.js';
import { PUSH_ORDER } from '../cache/snapshot.js';
import { FramedResponse, ScratchResponse, SharedResponses } from './encode.js';
import { framedWritesInstalled } from './service.js';

/** Events the ADS server reports (for logs, metrics and the control plane's lazy snapshot generation). */
export interface AdsHooks {
  /** A node opened a stream. The control plane makes sure a snapshot for it exists (or will). */
  onConnect?(node: Node, protocol: 'sotw' | 'delta'): void;
  onDisconnect?(nodeId: string, protocol: 'sotw' | 'delta'): void;
  onPush?(e: { nodeId: string; typeUrl: string; version: string; resources: number; removed: number; bytes: number; snapshot: string }): void;
  onAck?(e: { nodeId: string; typeUrl: string; version: string; latencyMs: number }): void;
  onNack?(e: { nodeId: string; typeUrl: string; version: string; message: string }): void;
  /** A stream sent what waited for the send budget (its node's status counts streams still waiting). */
  onResumed?(nodeId: string): void;
}

export class StreamError extends Error {
  constructor(readonly grpcCode: number, message: string) {
    super(message);
  }
}

let nonceCounter = 0;

/** The first responses streams share (see encode.ts). */
const sharedResponses = new SharedResponses();

/**
 * Bounds the bytes of responses handed to gRPC but not yet sent (istiod bounds concurrent pushes the same way,
 * PILOT_PUSH_THROTTLE): while the bound is reached, streams that have something to send wait their turn (first
 * come, first served) and send once earlier responses went out, with the snapshot current at that time. Without
 * it, a thousand proxies connecting at once would each have megabytes of responses queued in memory, waiting
 * for their slow readers. A response is counted until gRPC reports it written (or its stream closes).
 */
export class SendBudget {
  private inFlight = 0;
  private readonly waiting = new Set<AdsStreamBase>();

  /** @param limitBytes the bound (a response is sent whenever less than this is in flight). */
  constructor(readonly limitBytes: number) {}

  /** Whether a response may be sent now. */
  get open(): boolean {
    return this.inFlight < this.limitBytes;
  }

  /** Bytes handed to gRPC and not yet written. */
  get bytesInFlight(): number {
    return this.inFlight;
  }

  /** Streams waiting to send. */
  get streamsWaiting(): number {
    return this.waiting.size;
  }

  take(bytes: number): void {
    this.inFlight += bytes;
  }

  give(bytes: number): void {
    this.inFlight -= bytes;
    while (this.open && this.waiting.size > 0) {
      const next = this.waiting.values().next().value!;
      this.waiting.delete(next);
      next.resume();
    }
  }

  wait(stream: AdsStreamBase): void {
    this.waiting.add(stream);
  }

  cancel(stream: AdsStreamBase): void {
    this.waiting.delete(stream);
  }
}

/** No bound (streams made outside an AdsServer, and tests). */
const UNBOUNDED = new SendBudget(Number.POSITIVE_INFINITY);

export abstract class AdsStreamBase {
  nodeId?: string;
  protected status?: ProxyStatus;
  private unwatch?: () => void;
  /** Types the client has asked for, in the order first asked. */
  protected readonly requested = new Set<string>();
  /** Types with something to send, waiting for the send budget. */
  private readonly deferred = new Set<string>();
  /** Responses written and not yet reported sent, with their sizes. */
  private readonly unsent = new Set<{ bytes: number }>();
  private closed = false;

  constructor(
    protected readonly cache: SnapshotCache,
    protected readonly hooks: AdsHooks,
    readonly protocol: 'sotw' | 'delta',
    private readonly budget: SendBudget = UNBOUNDED,
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
  private onSnapshot(_snap: Snapshot): void {
    for (const t of ordered(this.requested)) this.schedule(t);
  }

  /**
   * Sends what the client is missing of a type now, or, while the send budget is used up (or earlier pushes of
   * this stream wait), once it is its turn: pushes keep their CDS → EDS → LDS → RDS order either way.
   */
  protected schedule(typeUrl: string): void {
    if (this.closed) return;
    if (this.deferred.size > 0 || !this.budget.open) {
      if (this.deferred.size === 0 && this.status) this.status.waiting++;
      this.deferred.add(typeUrl);
      this.budget.wait(this);
      return;
    }
    const snap = this.snapshot();
    if (snap) this.push(typeUrl, snap);
  }

  /** The send budget's turn: pushes the waiting types with the current snapshot. */
  resume(): void {
    if (this.closed || this.deferred.size === 0) return;
    const types = ordered(this.deferred);
    this.deferred.clear();
    if (this.status) this.status.waiting--;
    const snap = this.snapshot();
    if (snap) for (const t of types) this.push(t, snap);
    if (this.nodeId !== undefined) this.hooks.onResumed?.(this.nodeId);
  }

  /**
   * A response to send: serialized by `encode` (into the scratch buffer, or framed when framed writes are
   * installed, see service.ts) with a new nonce; or, when `shareKey` is given (the stream's first response of
   * the type, carrying every resource of `map`), the response shared by every stream that sends the same (see
   * encode.ts), made here if no stream has it.
   */
  protected response(encode: (nonce: string, target: 'framed' | 'scratch') => Buffer, map: object, shareKey?: string): { response: Buffer | FramedResponse; nonce: string } {
    if (shareKey !== undefined) {
      const shared = sharedResponses.get(map, shareKey, () => {
        const nonce = this.nextNonce();
        return new FramedResponse(encode(nonce, 'framed'), nonce);
      });
      return { response: shared, nonce: shared.nonce };
    }
    const nonce = this.nextNonce();
    if (framedWritesInstalled()) return { response: new FramedResponse(encode(nonce, 'framed'), nonce), nonce };
    return { response: encode(nonce, 'scratch'), nonce };
  }

  /**
   * Writes a response (a FramedResponse, or bytes serialized in the scratch buffer, see ScratchResponse), counted
   * against the send budget until gRPC reports it written.
   */
  protected send(response: Buffer | FramedResponse, write: (response: ScratchResponse | FramedResponse, done: () => void) => void): void {
    const rec = { bytes: response.length };
    this.unsent.add(rec);
    this.budget.take(rec.bytes);
    if (response instanceof FramedResponse) {
      write(response, () => this.sent(rec));
      return;
    }
    const r = new ScratchResponse(response);
    write(r, () => this.sent(rec));
    r.detach();
  }

  private sent(rec: { bytes: number }): void {
    if (!this.unsent.delete(rec)) return;
    this.budget.give(rec.bytes);
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
    t.nackInForce = false;
    this.hooks.onAck?.({ nodeId: this.nodeId!, typeUrl, version, latencyMs: t.sentAt ? Date.now() - t.sentAt : 0 });
  }

  protected recordNack(typeUrl: string, version: string, nonce: string, message: string): void {
    const t = this.typeStatus(typeUrl);
    t.nack = { version, nonce, message, at: Date.now() };
    t.nackInForce = true;
    this.hooks.onNack?.({ nodeId: this.nodeId!, typeUrl, version, message });
  }

  /** Sends what the client of this stream is missing of `typeUrl`, if anything. */
  protected abstract push(typeUrl: string, snap: Snapshot): void;

  close(): void {
    this.closed = true;
    this.budget.cancel(this);
    if (this.deferred.size > 0 && this.status) this.status.waiting--;
    this.deferred.clear();
    // gRPC does not report writes of a cancelled call: whatever is still counted is released here.
    for (const rec of [...this.unsent]) this.sent(rec);
    if (this.nodeId === undefined) return;
    this.unwatch?.();
    this.unwatch = undefined;
    this.cache.closeStream(this.nodeId);
    this.hooks.onDisconnect?.(this.nodeId, this.protocol);
    this.nodeId = undefined;
  }
}

/** Types in push order: CDS → EDS → LDS → RDS → SDS, then any other type in the order given. */
function ordered(types: ReadonlySet<string>): string[] {
  return [...PUSH_ORDER.filter((t) => types.has(t)), ...[...types].filter((t) => !PUSH_ORDER.includes(t))];
}

function nodeMetadata(node: Node): Record<string, unknown> {
  const md: JsonObject = node.metadata ?? {};
  const out: Record<string, unknown> = { ...md };
  if (node.cluster) out.cluster = node.cluster;
  if (node.locality) out.locality = { region: node.locality.region, zone: node.locality.zone, subZone: node.locality.subZone };
  if (node.userAgentName) out.userAgent = `${node.userAgentName}${node.userAgentVersionType.case === 'userAgentVersion' ? `/${node.userAgentVersionType.value}` : ''}`;
  return out;
}
