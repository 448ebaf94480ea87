/**
 * WFT0118 (IST0118): a Kubernetes Service port that declares no protocol: no `appProtocol` and a name without a
 * protocol prefix (`http`, `http-web`, `grpc`, `tcp-db`, ...). The protocol is then detected from the first
 * bytes of each connection, which costs latency and cannot work for server-first protocols.
 */
import type { Analyzer } from '../types.js';

export const portNameAnalyzer: Analyzer = {
  name: 'service.port-names',
  description: 'Checks that every Service port declares its protocol (appProtocol or a protocol name prefix)',
  codes: ['WFT0118'],
  analyze(ctx) {
    for (const s of ctx.model.services) {
      if (s.origin.kind !== 'Service') continue;
      const res = ctx.resourceOf(s.origin);
      const raw = (res?.body.spec as { ports?: unknown } | undefined)?.ports;
      for (const p of s.ports) {
        if (p.protocol !== 'UNKNOWN') continue;
        const i = Array.isArray(raw) ? raw.findIndex((x) => x && typeof x === 'object' && (x as { port?: unknown }).port === p.port) : -1;
        const path = i < 0 ? ['spec', 'ports'] : (raw as Array<Record<string, unknown>>)[i]!.name !== undefined ? ['spec', 'ports', i, 'name'] : ['spec', 'ports', i];
        const target = p.targetPort !== undefined ? String(p.targetPort) : String(p.port);
        ctx.report(
          'WFT0118',
          ctx.whereAt(s.origin, path),
          `port name ${p.name ?? '(none)'} (port: ${p.port}, targetPort: ${target}) of Service ${s.namespace}/${s.name ?? s.origin.name} doesn't follow the naming convention of Istio ports; its protocol will be sniffed`,
          'name the port <protocol>[-<suffix>] (e.g. http, http-web, grpc, tcp-db) or set appProtocol',
        );
      }
    }
  },
};
