/**
 * Text rendering of the runtime status, as `weft up` prints it once ready and `weft status` prints it: one row per
 * replica (workload, replica, phase, ready, restarts, ports, last error).
 */
import type { RuntimeStatus, WorkloadStatus } from './status.js';

function ports(w: WorkloadStatus): string {
  const parts = Object.entries(w.appPorts).map(([name, p]) => `${name}=${p}->${w.sidecar.inbound[name] ?? '?'}`);
  for (const [name, p] of Object.entries(w.sidecar.upstreams)) parts.push(`${name}_addr=${p}`);
  parts.push(`outbound=${w.sidecar.outbound}`);
  return parts.join(' ');
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** The workload table, then one line per replica with a last error. */
export function formatStatus(s: RuntimeStatus): string {
  const lines: string[] = [];
  if (s.workloads.length === 0) {
    lines.push('no LocalWorkloads (add one to the config: kind: LocalWorkload, apiVersion: weft.dev/v1alpha1)');
  } else {
    const rows = [['WORKLOAD', 'REPLICA', 'PHASE', 'READY', 'RESTARTS', 'PID', 'PORTS (app->inbound)']];
    for (const w of s.workloads) {
      const name = w.namespace === 'default' ? w.name : `${w.namespace}/${w.name}`;
      rows.push([name, String(w.replica), w.phase, w.ready ? 'yes' : 'no', String(w.restarts), w.pid !== undefined ? String(w.pid) : '-', ports(w)]);
    }
    lines.push(table(rows));
    for (const w of s.workloads) if (w.lastError && !w.ready) lines.push(`  ${w.name}-${w.replica}: ${w.lastError}`);
  }
  lines.push(`control plane: xDS 127.0.0.1:${s.controlPlane.xdsPort}, HTTP http://127.0.0.1:${s.controlPlane.httpPort}; runtime API http://127.0.0.1:${s.apiPort}`);
  return `${lines.join('\n')}\n`;
}
