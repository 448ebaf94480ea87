/**
 * A client worker process: runs a share of the simulated Envoys (./client.ts) and reports to the driver over IPC
 * (./protocol.ts). Exits when the driver says so or when the IPC channel closes (the driver died).
 */
import { fromBinary } from '@bufbuild/protobuf';
import { ClusterSchema, Cluster_DiscoveryType } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { ListenerSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { HttpConnectionManagerSchema } from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { unpack } from '../../src/xds/index.js';
import { SimClient } from './client.js';
import type { ClientEvents, EndpointWatch } from './client.js';
import type { ClientStats, FromWorker, ToWorker, VerifiedConfig } from './protocol.js';

function send(m: FromWorker): void {
  process.send?.(m);
}

const clients: SimClient[] = [];
/** Open watches: seq → the times seen so far, by client id, and how many. */
const watches = new Map<number, { watch: EndpointWatch; seen: Record<string, number>; count: number }>();
/** Clients whose stream failed. */
let failed = 0;

const events: ClientEvents = {
  onComplete: (c, at) => send({ type: 'complete', id: c.spec.id, at }),
  onError: (c, message) => {
    failed++;
    send({ type: 'error', id: c.spec.id, message });
  },
  onWatchSeen: (c, seq, at) => {
    const w = watches.get(seq);
    if (!w || w.seen[c.spec.id] !== undefined) return;
    w.seen[c.spec.id] = at;
    w.count++;
    // Done once every client still connected has seen it (a client whose stream failed never will).
    if (w.count >= clients.length - failed) finishWatch(seq, false);
  },
};

function finishWatch(seq: number, partial: boolean): void {
  const w = watches.get(seq);
  if (!w) return;
  watches.delete(seq);
  for (const c of clients) c.removeWatch(seq);
  send({ type: 'watchResult', seq, seen: w.seen, partial });
}

/** Decodes everything a client holds with the generated types (verify mode): proves the bytes are valid. */
function verifyClient(c: SimClient): VerifiedConfig {
  const out: VerifiedConfig = { clusters: [], assignments: [], listeners: [], routes: [] };
  for (const [, v] of c.held.clusters) {
    if (!v.raw) continue;
    const cl = fromBinary(ClusterSchema, v.raw);
    const type = cl.clusterDiscoveryType.case === 'type' ? Cluster_DiscoveryType[cl.clusterDiscoveryType.value] ?? String(cl.clusterDiscoveryType.value) : 'custom';
    out.clusters.push({ name: cl.name, type, edsServiceName: cl.edsClusterConfig?.serviceName || undefined });
  }
  for (const [, v] of c.held.assignments) {
    if (!v.raw) continue;
    const cla = fromBinary(ClusterLoadAssignmentSchema, v.raw);
    const addresses: string[] = [];
    for (const lle of cla.endpoints) {
      for (const lb of lle.lbEndpoints) {
        if (lb.hostIdentifier.case !== 'endpoint') continue;
        const a = lb.hostIdentifier.value.address?.address;
        if (a?.case === 'socketAddress') addresses.push(`${a.value.address}:${a.value.portSpecifier.case === 'portValue' ? a.value.portSpecifier.value : 0}`);
      }
    }
    out.assignments.push({ name: cla.clusterName, addresses });
  }
  for (const [, v] of c.held.listeners) {
    if (!v.raw) continue;
    const l = fromBinary(ListenerSchema, v.raw);
    const routeNames: string[] = [];
    for (const fc of [...l.filterChains, ...(l.defaultFilterChain ? [l.defaultFilterChain] : [])]) {
      for (const f of fc.filters) {
        if (f.configType.case !== 'typedConfig' || !f.configType.value.typeUrl.endsWith('.HttpConnectionManager')) continue;
        const hcm = unpack(HttpConnectionManagerSchema, f.configType.value);
        if (hcm.routeSpecifier.case === 'rds') routeNames.push(hcm.routeSpecifier.value.routeConfigName);
      }
    }
    out.listeners.push({ name: l.name, routeNames });
  }
  for (const [, v] of c.held.routes) {
    if (!v.raw) continue;
    const r = fromBinary(RouteConfigurationSchema, v.raw);
    out.routes.push({ name: r.name, virtualHosts: r.virtualHosts.map((vh) => ({ name: vh.name, domains: [...vh.domains] })) });
  }
  return out;
}

function stats(verify: boolean): ClientStats[] {
  return clients.map((c) => {
    const s: ClientStats = {
      id: c.spec.id,
      protocol: c.spec.protocol,
      completeAt: c.completeAt,
      bytes: c.bytes,
      initialBytes: c.initialBytes,
      responses: c.responses,
      initialBytesByType: c.initialBytesByType,
      bytesByType: c.typeBytes(),
      counts: c.counts(),
    };
    if (c.error) s.error = c.error;
    if (verify) s.verified = verifyClient(c);
    return s;
  });
}

let verifyMode = false;

function close(): void {
  for (const c of clients) c.close();
  // Give the cancellations a moment to go out, then leave.
  setTimeout(() => process.exit(0), 50).unref();
}

process.on('message', (m: ToWorker) => {
  try {
    switch (m.cmd) {
      case 'connect':
        verifyMode = m.verify;
        for (const spec of m.clients) {
          const c = new SimClient(spec, m.address, events, m.verify);
          clients.push(c);
        }
        for (const c of clients) c.start();
        send({ type: 'connected', clients: clients.length });
        break;
      case 'watch':
        watches.set(m.watch.seq, { watch: m.watch, seen: {}, count: 0 });
        send({ type: 'watching', seq: m.watch.seq });
        for (const c of clients) c.addWatch(m.watch);
        break;
      case 'collect':
        finishWatch(m.seq, true);
        break;
      case 'stats':
        send({ type: 'stats', clients: stats(verifyMode) });
        break;
      case 'close':
        close();
        break;
    }
  } catch (e) {
    send({ type: 'fatal', message: (e as Error)?.stack ?? String(e) });
  }
});

// The driver went away (finished, crashed or was killed): do not linger.
process.on('disconnect', close);
send({ type: 'loaded' });
