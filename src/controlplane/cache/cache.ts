/**
 * The snapshot cache: the current snapshot of every proxy (by node id), the streams watching each node, and
 * the per-proxy, per-type sync status (what was sent, what was ACKed, the last NACK).
 * Streams (src/controlplane/ads) ask the cache for the snapshot and are told when it changes.
 */
import type { Snapshot } from './snapshot.js';

export type SyncState = 'SYNCED' | 'NOT SENT' | 'STALE' | 'NACKED';

export interface TypeStatus {
  /** Version and nonce of the last response sent. */
  sentVersion?: string;
  sentNonce?: string;
  sentAt?: number;
  /** Last version the proxy ACKed. */
  ackedVersion?: string;
  ackedAt?: number;
  /** The last NACK: the version refused and the proxy's error_detail message. */
  nack?: { version: string; nonce: string; message: string; at: number };
  /** The last NACK has not been followed by an ACK yet (kept apart from the timestamps: both can fall in one ms). */
  nackInForce?: boolean;
}

export interface ProxyStatus {
  nodeId: string;
  /** Node metadata as sent by the proxy (namespace, labels, ...), for status pages. */
  metadata: Record<string, unknown>;
  connectedAt: number;
  streams: number;
  /** The snapshot version currently set for the node. */
  snapshotVersion?: string;
  types: Map<string, TypeStatus>;
  /** Streams of the node with responses waiting for the ADS send budget (see SendBudget). */
  waiting: number;
}

export function syncState(t: TypeStatus | undefined): SyncState {
  if (!t || t.sentNonce === undefined) return 'NOT SENT';
  if (t.nack && t.nackInForce) return 'NACKED';
  if (t.ackedVersion !== undefined && t.ackedVersion === t.sentVersion) return 'SYNCED';
  return 'STALE';
}

type Listener = (snapshot: Snapshot) => void;

export class SnapshotCache {
  private readonly snapshots = new Map<string, Snapshot>();
  private readonly watchers = new Map<string, Set<Listener>>();
  private readonly statuses = new Map<string, ProxyStatus>();

  setSnapshot(nodeId: string, snapshot: Snapshot): void {
    this.snapshots.set(nodeId, snapshot);
    const st = this.statuses.get(nodeId);
    if (st) st.snapshotVersion = snapshot.version;
    for (const l of this.watchers.get(nodeId) ?? []) l(snapshot);
  }

  getSnapshot(nodeId: string): Snapshot | undefined {
    return this.snapshots.get(nodeId);
  }

  clearSnapshot(nodeId: string): void {
    this.snapshots.delete(nodeId);
  }

  /** Calls `listener` on every new snapshot for the node; returns the unsubscribe function. */
  watch(nodeId: string, listener: Listener): () => void {
    let set = this.watchers.get(nodeId);
    if (!set) this.watchers.set(nodeId, (set = new Set()));
    set.add(listener);
    return () => {
      set!.delete(listener);
      if (set!.size === 0) this.watchers.delete(nodeId);
    };
  }

  /** Node ids with at least one open stream. */
  connectedNodes(): string[] {
    return [...this.statuses.values()].filter((s) => s.streams > 0).map((s) => s.nodeId);
  }

  /** Registers a stream of a node; returns its status record (shared by the node's streams). */
  openStream(nodeId: string, metadata: Record<string, unknown>): ProxyStatus {
    let st = this.statuses.get(nodeId);
    if (!st) {
      st = { nodeId, metadata, connectedAt: Date.now(), streams: 0, types: new Map(), waiting: 0 };
      this.statuses.set(nodeId, st);
    }
    st.metadata = metadata;
    st.streams++;
    const snap = this.snapshots.get(nodeId);
    if (snap) st.snapshotVersion = snap.version;
    return st;
  }

  closeStream(nodeId: string): void {
    const st = this.statuses.get(nodeId);
    if (!st) return;
    st.streams--;
    if (st.streams <= 0) this.statuses.delete(nodeId);
  }

  status(nodeId: string): ProxyStatus | undefined {
    return this.statuses.get(nodeId);
  }

  allStatus(): ProxyStatus[] {
    return [...this.statuses.values()];
  }
}
