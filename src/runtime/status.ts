/**
 * The local runtime's status as `weft up` reports it: served as JSON by the runtime's local API
 * (`GET /v1/status`) and printed by `weft status`.
 *
 * One `WorkloadStatus` per LocalWorkload replica. Ports are the ones in use on 127.0.0.1.
 */

/** Lifecycle of one replica (its app process and its sidecar together). */
export type ReplicaPhase = 'starting' | 'running' | 'restarting' | 'failed' | 'stopping' | 'stopped';

export interface SidecarPorts {
  /** Admin API (127.0.0.1): /config_dump, /clusters, /stats, ... */
  admin: number;
  /** Prometheus stats (`/stats/prometheus`). */
  stats: number;
  /** Health (`/healthz/ready`). */
  health: number;
  /** Outbound HTTP listener the app's HTTP_PROXY / WEFT_OUTBOUND points at. */
  outbound: number;
  /** Inbound listener port per workload port name (what the mesh sends this replica's traffic to). */
  inbound: Record<string, number>;
  /** Local port per declared TCP upstream name (the app's `<NAME>_ADDR`). */
  upstreams: Record<string, number>;
}

export interface WorkloadStatus {
  /** LocalWorkload name. */
  name: string;
  namespace: string;
  /** Replica index, 0-based. */
  replica: number;
  /** The sidecar's xDS node id. */
  id: string;
  labels: Record<string, string>;
  serviceAccount: string;
  phase: ReplicaPhase;
  /** The sidecar has applied its first full config and the app is running. */
  ready: boolean;
  /** Restarts of the app or the sidecar since `weft up` started it. */
  restarts: number;
  /** The app's pid while running. */
  pid?: number;
  /** The sidecar's pid while running. */
  sidecarPid?: number;
  /** Port per workload port name that the app listens on (`PORT_<NAME>`). */
  appPorts: Record<string, number>;
  sidecar: SidecarPorts;
  /** The last failure (command not found, exited with code N, port in use by PID ...). */
  lastError?: string;
}

export interface RuntimeStatus {
  /** Directories / files `weft up` reads. */
  configPaths: string[];
  /** The embedded control plane's ports on 127.0.0.1. */
  controlPlane: { xdsPort: number; httpPort: number };
  /** The runtime's local API (this status at `/v1/status`). */
  apiPort: number;
  startedAt: string;
  workloads: WorkloadStatus[];
}
