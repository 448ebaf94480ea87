/**
 * Transparent capture on one machine (Istio's sidecar injection + istio-iptables, without Kubernetes):
 * network namespaces (netns.ts), the capture rules (iptables.ts) and a workload with its transparent sidecar
 * (workload.ts). `weft netns-run` (src/cli/commands/netns-run.ts) and the local runtime use `startCapturedWorkload`.
 */
export { natRules, SIDECAR_INBOUND_PORTS } from './iptables.js';
export type { CaptureRules } from './iptables.js';
export { CaptureError, captureSupport, cleanupLeftovers, createBridge, createBridgedNamespace, createVethNamespace, sh, spawnInNamespace } from './netns.js';
export type { Bridge, NetNamespace } from './netns.js';
export { PROXY_UID, startCapturedWorkload } from './workload.js';
export type { CapturedWorkload, CapturedWorkloadOptions } from './workload.js';
