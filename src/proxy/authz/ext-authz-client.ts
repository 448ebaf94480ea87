/**
 * The client side of Envoy's external authorization gRPC API (`envoy.service.auth.v3.Authorization/Check`), shared
 * by the HTTP and network ext_authz filters.
 *
 *   const client = compileAuthzService(ctx, field, grpcService, cluster);   // ConfigError on a bad GrpcService
 *   const res = await client.check(request);                                // rejects on error or timeout
 *
 * Where the check goes (envoy.config.core.v3.GrpcService): `envoy_grpc.cluster_name` — a host of that cluster is
 * chosen per check by the cluster's load balancer (the cluster is looked up per check, so CDS updates apply), with
 * `envoy_grpc.authority` as :authority; or `google_grpc.target_uri` (`host:port`). Channels are plaintext and
 * shared per address. The deadline is GrpcService.timeout, else `defaultTimeoutMs` (the ext_authz filters' 200 ms).
 * `initial_metadata` is sent with every check.
 */
import { credentials, Client, Metadata, type ServiceError } from '@grpc/grpc-js';
import type { GrpcService } from '../../xds/gen/envoy/config/core/v3/grpc_service_pb.js';
import type { CheckRequest, CheckResponse } from '../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';
import { authorizationService } from '../../xds/auth-service.js';
import type { ClusterRuntime } from '../upstream/cluster/cluster.js';
import type { CompileContext } from '../http/router/util.js';

/** The ext_authz filters' default check timeout (Envoy: 200 ms). */
export const DEFAULT_EXT_AUTHZ_TIMEOUT_MS = 200;

const channels = new Map<string, Client>();

function channelTo(target: string, authority: string): Client {
  const key = `${target}|${authority}`;
  let c = channels.get(key);
  if (c === undefined) {
    const opts: Record<string, string | number> = { 'grpc.max_reconnect_backoff_ms': 1000, 'grpc.initial_reconnect_backoff_ms': 100 };
    if (authority !== '') opts['grpc.default_authority'] = authority;
    c = new Client(target, credentials.createInsecure(), opts);
    channels.set(key, c);
  }
  return c;
}

export class AuthzServiceClient {
  constructor(
    private readonly target: () => string | undefined,
    private readonly authority: string,
    readonly timeoutMs: number,
    private readonly metadata: ReadonlyArray<[string, string]>,
    /** What the check goes to, for errors. */
    readonly describe: string,
  ) {}

  check(req: CheckRequest): Promise<CheckResponse> {
    const target = this.target();
    if (target === undefined) return Promise.reject(new Error(`no healthy host for ${this.describe}`));
    const client = channelTo(target, this.authority);
    const md = new Metadata();
    for (const [k, v] of this.metadata) md.add(k, v);
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        authorizationService.Check.path,
        authorizationService.Check.requestSerialize,
        authorizationService.Check.responseDeserialize,
        req,
        md,
        { deadline: Date.now() + this.timeoutMs },
        (err: ServiceError | null, res?: CheckResponse) => (err || res === undefined ? reject(err ?? new Error('empty response')) : resolve(res)),
      );
    });
  }
}

/** Compiles the filter's grpc_service; `cluster` looks a cluster up when a check is made. */
export function compileAuthzService(ctx: CompileContext, field: string, g: GrpcService | undefined, cluster: ((name: string) => ClusterRuntime | undefined) | undefined): AuthzServiceClient {
  if (g === undefined) return ctx.fail(field, 'is required (only the gRPC authorization service is supported)');
  const timeoutMs = g.timeout ? Number(g.timeout.seconds) * 1000 + Math.floor(g.timeout.nanos / 1e6) : DEFAULT_EXT_AUTHZ_TIMEOUT_MS;
  const md = g.initialMetadata.map((h) => [h.key.toLowerCase(), h.value] as [string, string]);
  const t = g.targetSpecifier;
  if (t.case === 'envoyGrpc') {
    const name = t.value.clusterName;
    if (name === '') return ctx.fail(`${field}.envoy_grpc.cluster_name`, 'must not be empty');
    const pick = (): string | undefined => {
      const host = cluster?.(name)?.lb.choose();
      return host === undefined ? undefined : host.address.includes(':') ? `[${host.address}]:${host.port}` : `${host.address}:${host.port}`;
    };
    return new AuthzServiceClient(pick, t.value.authority, timeoutMs, md, `cluster ${name}`);
  }
  if (t.case === 'googleGrpc') {
    const uri = t.value.targetUri;
    if (uri === '') return ctx.fail(`${field}.google_grpc.target_uri`, 'must not be empty');
    if (t.value.channelCredentials !== undefined || t.value.callCredentials.length > 0) ctx.fail(`${field}.google_grpc.channel_credentials`, 'credentials are not supported (plaintext only)');
    return new AuthzServiceClient(() => uri, '', timeoutMs, md, uri);
  }
  return ctx.fail(field, 'one of envoy_grpc or google_grpc is required');
}
