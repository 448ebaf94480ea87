/** Messages between the benchmark driver and its client worker processes (over the child-process IPC channel). */
import type { ClientCounts, ClientSpec, EndpointWatch, Protocol } from './client.js';

export type ToWorker =
  /** Open the streams of these clients against `address` (all at once). */
  | { cmd: 'connect'; address: string; clients: ClientSpec[]; verify: boolean }
  /** Start watching for an endpoint change; answered by `watching`, later by `watchResult`. */
  | { cmd: 'watch'; watch: EndpointWatch }
  /** Report the watch's results now, complete or not, and stop watching. */
  | { cmd: 'collect'; seq: number }
  /** Report every client's statistics (`stats`). */
  | { cmd: 'stats' }
  /** Close every stream and exit. */
  | { cmd: 'close' };

export interface ClientStats {
  id: string;
  protocol: Protocol;
  completeAt?: number;
  bytes: number;
  initialBytes: number;
  responses: number;
  /** Bytes by type (cds, eds, lds, rds): until the first full configuration, and over the whole run. */
  initialBytesByType: Record<string, number>;
  bytesByType: Record<string, number>;
  counts: ClientCounts;
  error?: string;
  /** In verify mode: the resources fully decoded (see worker.ts `verifyClient`). */
  verified?: VerifiedConfig;
}

/** A client's configuration decoded with the generated Envoy types, for the smoke test's checks. */
export interface VerifiedConfig {
  clusters: Array<{ name: string; type: string; edsServiceName?: string }>;
  assignments: Array<{ name: string; addresses: string[] }>;
  listeners: Array<{ name: string; routeNames: string[] }>;
  routes: Array<{ name: string; virtualHosts: Array<{ name: string; domains: string[] }> }>;
}

export type FromWorker =
  | { type: 'loaded' }
  | { type: 'connected'; clients: number }
  | { type: 'complete'; id: string; at: number }
  | { type: 'error'; id: string; message: string }
  | { type: 'watching'; seq: number }
  | { type: 'watchResult'; seq: number; seen: Record<string, number>; partial: boolean }
  | { type: 'stats'; clients: ClientStats[] }
  | { type: 'fatal'; message: string };
