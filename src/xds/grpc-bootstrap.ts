/**
 * The xDS bootstrap of a proxyless gRPC application (the file named by GRPC_XDS_BOOTSTRAP), so that
 * `xds:///host:port` targets are resolved by Weft's control plane. Used by `weft grpc-bootstrap` and by the local
 * runtime (`weft up` writes one per LocalWorkload replica).
 *
 * The JSON follows the gRPC xDS bootstrap format (gRFC A27): one `xds_servers` entry (`server_uri`, insecure
 * `channel_creds`, `server_features: ["xds_v3"]`) and the `node` the client announces. The node carries what the
 * control plane reads of a proxy (src/controlplane/proxy.ts): an Istio-style id
 * `sidecar~IP~NAME.NAMESPACE~NAMESPACE.svc.cluster.local`, a locality (gRPC clients require `node.locality`, even
 * an empty one), and the metadata `GENERATOR: grpc` (which makes the control plane answer with api_listeners),
 * `NAMESPACE`, `LABELS`, `SERVICE_ACCOUNT`, `WORKLOAD_NAME` and `INSTANCE_IPS`, as istio-agent writes them.
 */
import { hostname, networkInterfaces } from 'node:os';

export interface GrpcBootstrapOptions {
  controlPlane: string;
  nodeId?: string;
  namespace: string;
  locality?: { region: string; zone: string; sub_zone: string };
  labels: Record<string, string>;
  serviceAccount: string;
  workloadName?: string;
  ip?: string;
}

/** The bootstrap object (snake_case keys, as gRPC reads them). */
export interface GrpcBootstrap {
  xds_servers: Array<{ server_uri: string; channel_creds: Array<{ type: string }>; server_features: string[] }>;
  node: {
    id: string;
    cluster: string;
    locality: { region?: string; zone?: string; sub_zone?: string };
    metadata: Record<string, unknown>;
  };
}

/** The first non-internal IPv4 address of this host, else 127.0.0.1. */
function hostIp(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/** Builds the bootstrap (pure, apart from the defaults read from the host: its name and address). */
export function grpcBootstrap(opts: GrpcBootstrapOptions): GrpcBootstrap {
  const ns = opts.namespace;
  const ip = opts.ip ?? hostIp();
  const workload = opts.workloadName ?? (hostname().toLowerCase().replace(/[^a-z0-9.-]/g, '-') || 'grpc');
  const id = opts.nodeId ?? `sidecar~${ip}~${workload}.${ns}~${ns}.svc.cluster.local`;
  const locality: GrpcBootstrap['node']['locality'] = {};
  if (opts.locality) {
    locality.region = opts.locality.region;
    if (opts.locality.zone) locality.zone = opts.locality.zone;
    if (opts.locality.sub_zone) locality.sub_zone = opts.locality.sub_zone;
  }
  return {
    xds_servers: [{ server_uri: opts.controlPlane, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id,
      cluster: opts.labels.app ?? workload,
      locality,
      metadata: {
        GENERATOR: 'grpc',
        NAMESPACE: ns,
        LABELS: { ...opts.labels },
        SERVICE_ACCOUNT: opts.serviceAccount,
        WORKLOAD_NAME: workload,
        INSTANCE_IPS: ip,
      },
    },
  };
}
