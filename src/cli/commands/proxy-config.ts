/**
 * `weft proxy-config (listeners|routes|clusters|endpoints|all) PROXY_ID [--control-plane URL] [-o short|json|yaml]`:
 * the configuration the control plane holds for a connected proxy (its /debug/config_dump), like
 * `istioctl proxy-config`. With `--from-proxy ADMIN_URL` instead of PROXY_ID: the configuration the sidecar itself
 * holds, read from its admin interface as istioctl reads Envoy's — `/config_dump` (proto field names, as Envoy
 * writes them; printed as they are with -o json|yaml) and, for endpoints, `/clusters?format=json` (the hosts the
 * proxy load-balances over, with the health it observed). `short` (the default) prints istioctl's summary tables:
 *
 *   clusters   SERVICE FQDN, PORT, SUBSET, DIRECTION, TYPE, DESTINATION RULE
 *   listeners  NAME, ADDRESSES, PORT, MATCH, DESTINATION
 *   routes     NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE
 *   endpoints  ENDPOINT, STATUS, WEIGHT, LOCALITY, CLUSTER
 *
 * From the control plane, the STATUS of an endpoint is the health it was sent with; from the proxy, it is what the
 * proxy observed: its EDS health, or UNHEALTHY (with the reason) when active health checking or outlier detection
 * took the host out.
 */
import type { Command } from 'commander';
import { InvalidArgumentError, Option } from 'commander';
import { stringify } from 'yaml';
import { controlPlaneUrl, DEFAULT_CONTROL_PLANE, fetchJson, formatTable } from './proxy-status.js';

type Json = Record<string, any>; // proto3 JSON of Envoy messages, read loosely

export type ConfigKind = 'clusters' | 'listeners' | 'routes' | 'endpoints' | 'all';

const KIND_ALIASES: Record<string, ConfigKind> = {
  cluster: 'clusters', clusters: 'clusters', c: 'clusters',
  listener: 'listeners', listeners: 'listeners', l: 'listeners',
  route: 'routes', routes: 'routes', r: 'routes',
  endpoint: 'endpoints', endpoints: 'endpoints', ep: 'endpoints', e: 'endpoints',
  all: 'all',
};

const DUMP_TYPE: Record<Exclude<ConfigKind, 'all'>, string> = {
  clusters: 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
  endpoints: 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
  listeners: 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
  routes: 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
};

/** A field of a config-dump object by its JSON name or its proto field name (an admin dump uses the latter). */
function field(o: Json | undefined, camel: string): any {
  if (o === undefined || o === null) return undefined;
  return o[camel] ?? o[camel.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)];
}

/**
 * The resources of one kind in a config dump (proto3 JSON with their `@type`; either JSON names, as the control
 * plane writes them, or proto field names, as a proxy's admin /config_dump does — the resources are returned as
 * they are).
 */
export function resourcesOf(dump: Json, kind: Exclude<ConfigKind, 'all'>): Json[] {
  const section = ((dump.configs ?? []) as Json[]).find((c) => c['@type'] === DUMP_TYPE[kind]) ?? {};
  const list = (name: string): Json[] => (field(section, name) ?? []) as Json[];
  switch (kind) {
    case 'clusters':
      return [...list('staticClusters'), ...list('dynamicActiveClusters')].map((c) => c.cluster).filter(Boolean);
    case 'endpoints':
      return [...list('staticEndpointConfigs'), ...list('dynamicEndpointConfigs')].map((c) => field(c, 'endpointConfig')).filter(Boolean);
    case 'listeners':
      return [...list('staticListeners').map((l) => l.listener), ...list('dynamicListeners').map((l) => field(field(l, 'activeState'), 'listener'))].filter(Boolean);
    case 'routes':
      return [...list('staticRouteConfigs'), ...list('dynamicRouteConfigs')].map((c) => field(c, 'routeConfig')).filter(Boolean);
  }
}

/**
 * proto field names (snake_case, Envoy's admin output) → JSON names (lowerCamelCase), recursively, for the summary
 * tables. `@type` and keys without an underscore (map keys such as extension names) are kept.
 */
export function jsonNames(v: unknown): any {
  if (Array.isArray(v)) return v.map(jsonNames);
  if (v === null || typeof v !== 'object') return v;
  const out: Json = {};
  for (const [k, x] of Object.entries(v as Json)) out[k.includes('_') && !k.includes('.') ? k.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase()) : k] = jsonNames(x);
  return out;
}

/** Envoy admin `/clusters?format=json` cluster statuses (proto field names). */
interface ClusterStatusJson {
  name?: string;
  host_statuses?: Array<{
    address?: { socket_address?: { address?: string; port_value?: number }; pipe?: { path?: string } };
    health_status?: Record<string, unknown> & { eds_health_status?: string };
    weight?: number;
    locality?: { region?: string; zone?: string; sub_zone?: string };
  }>;
}

/** The health a proxy observed for a host: UNHEALTHY with the failing checks, else its EDS health status. */
function observedHealth(h: Record<string, unknown> & { eds_health_status?: string } = {}): string {
  const failed: string[] = [];
  if (h.failed_active_health_check) failed.push('active health check');
  if (h.failed_outlier_check) failed.push('outlier detection');
  if (h.failed_active_degraded_check) failed.push('degraded');
  if (h.pending_dynamic_removal) failed.push('pending removal');
  if (failed.length) return `UNHEALTHY (${failed.join(', ')})`;
  return h.eds_health_status ?? 'HEALTHY';
}

/** A proxy's cluster statuses as ClusterLoadAssignment-shaped JSON (JSON names) for the endpoint table. */
export function endpointsFromClusterStatuses(statuses: ClusterStatusJson[]): Json[] {
  return statuses
    .filter((c) => (c.host_statuses ?? []).length > 0)
    .map((c) => ({
      clusterName: c.name ?? '',
      endpoints: (c.host_statuses ?? []).map((h) => ({
        locality: h.locality ? { region: h.locality.region, zone: h.locality.zone, subZone: h.locality.sub_zone } : undefined,
        lbEndpoints: [
          {
            endpoint: { address: { socketAddress: h.address?.socket_address ? { address: h.address.socket_address.address, portValue: h.address.socket_address.port_value } : undefined, pipe: h.address?.pipe } },
            healthStatus: observedHealth(h.health_status),
            loadBalancingWeight: h.weight ?? 1,
          },
        ],
      })),
    }));
}

/** `name.namespace` of the Istio config a resource came from (its `istio` filter metadata), or ''. */
function istioConfig(metadata: Json | undefined): string {
  const path = metadata?.filterMetadata?.istio?.config;
  if (typeof path !== 'string') return '';
  const parts = path.split('/');
  const i = parts.indexOf('namespaces');
  return i >= 0 && parts.length >= i + 4 ? `${parts[i + 3]}.${parts[i + 1]}` : path;
}

export interface ClusterFilter {
  fqdn?: string;
  port?: number;
  subset?: string;
  direction?: string;
}

export function clusterTable(clusters: Json[], f: ClusterFilter = {}): string {
  const rows: Array<{ key: [string, number, string, string]; row: string[] }> = [];
  for (const c of clusters) {
    const name = String(c.name ?? '');
    const parts = name.split('|');
    const parsed = parts.length === 4 && (parts[0] === 'outbound' || parts[0] === 'inbound') ? { direction: parts[0], port: Number(parts[1]), subset: parts[2] ?? '', fqdn: parts[3] ?? '' } : undefined;
    if (f.fqdn && !name.includes(f.fqdn)) continue;
    if (f.direction && parsed?.direction !== f.direction) continue;
    if (f.subset && parsed?.subset !== f.subset) continue;
    if (f.port && parsed?.port !== f.port) continue;
    const type = c.clusterType?.name ?? c.type ?? 'STATIC';
    const dr = istioConfig(c.metadata);
    rows.push(
      parsed
        ? { key: [parsed.fqdn, parsed.port, parsed.subset, parsed.direction], row: [parsed.fqdn, String(parsed.port), parsed.subset || '-', parsed.direction, type, dr] }
        : { key: [name, 0, '', ''], row: [name, '-', '-', '-', type, dr] },
    );
  }
  rows.sort((a, b) => (a.key[0] !== b.key[0] ? (a.key[0] < b.key[0] ? -1 : 1) : a.key[2] !== b.key[2] ? (a.key[2] < b.key[2] ? -1 : 1) : a.key[1] !== b.key[1] ? a.key[1] - b.key[1] : a.key[3] < b.key[3] ? -1 : a.key[3] > b.key[3] ? 1 : 0));
  return formatTable([['SERVICE FQDN', 'PORT', 'SUBSET', 'DIRECTION', 'TYPE', 'DESTINATION RULE'], ...rows.map((r) => r.row)]);
}

function filterDestination(filter: Json): string | undefined {
  const tc = filter.typedConfig ?? {};
  const type = String(tc['@type'] ?? '');
  if (type.endsWith('.HttpConnectionManager')) {
    if (tc.rds?.routeConfigName) return `Route: ${tc.rds.routeConfigName}`;
    if (tc.routeConfig) {
      const vh = (tc.routeConfig.virtualHosts ?? []) as Json[];
      const clusters = new Set<string>();
      for (const v of vh) for (const r of (v.routes ?? []) as Json[]) if (r.route?.cluster) clusters.add(r.route.cluster);
      return clusters.size === 1 ? `Inline Route: ${[...clusters][0]}` : `Inline Route: ${tc.routeConfig.name ?? ''}`.trimEnd();
    }
    return 'HTTP';
  }
  if (type.endsWith('.TcpProxy')) {
    if (tc.cluster) return `Cluster: ${tc.cluster}`;
    const wc = (tc.weightedClusters?.clusters ?? []) as Json[];
    if (wc.length) return `WeightedClusters: ${wc.map((w) => `${w.name}(${w.weight ?? 0})`).join(', ')}`;
  }
  return undefined;
}

function chainMatch(m: Json | undefined): string {
  if (!m) return 'ALL';
  const out: string[] = [];
  if (m.destinationPort) out.push(`Port: ${m.destinationPort}`);
  if (m.prefixRanges?.length) out.push(`Addr: ${(m.prefixRanges as Json[]).map((r) => `${r.addressPrefix}/${r.prefixLen ?? 32}`).join(',')}`);
  if (m.serverNames?.length) out.push(`SNI: ${(m.serverNames as string[]).join(',')}`);
  if (m.transportProtocol) out.push(`Trans: ${m.transportProtocol}`);
  if (m.applicationProtocols?.length) out.push(`App: ${(m.applicationProtocols as string[]).join(',')}`);
  return out.length ? out.join('; ') : 'ALL';
}

export function listenerTable(listeners: Json[], name?: string): string {
  const rows: string[][] = [];
  for (const l of [...listeners].sort((a, b) => String(a.name).localeCompare(String(b.name)))) {
    if (name && l.name !== name) continue;
    const sa = l.address?.socketAddress;
    const addr = sa ? String(sa.address ?? '') : '-';
    const port = sa ? String(sa.portValue ?? 0) : '-';
    if (l.apiListener) {
      rows.push([l.name, addr, port, 'API listener', filterDestination({ typedConfig: l.apiListener.apiListener }) ?? '-']);
      continue;
    }
    const chains = (l.filterChains ?? []) as Json[];
    if (chains.length === 0) rows.push([l.name, addr, port, 'ALL', '-']);
    for (const fc of chains) {
      const dest = ((fc.filters ?? []) as Json[]).map(filterDestination).find((d) => d !== undefined) ?? '-';
      rows.push([l.name, addr, port, chainMatch(fc.filterChainMatch), dest]);
    }
    if (l.defaultFilterChain) {
      const dest = ((l.defaultFilterChain.filters ?? []) as Json[]).map(filterDestination).find((d) => d !== undefined) ?? '-';
      rows.push([l.name, addr, port, 'default', dest]);
    }
  }
  return formatTable([['NAME', 'ADDRESSES', 'PORT', 'MATCH', 'DESTINATION'], ...rows]);
}

function routeMatch(m: Json | undefined): string {
  if (!m) return '/*';
  let s: string;
  if (m.prefix !== undefined) s = `${m.prefix}*`;
  else if (m.path !== undefined) s = m.path;
  else if (m.safeRegex) s = m.safeRegex.regex;
  else if (m.pathSeparatedPrefix !== undefined) s = `${m.pathSeparatedPrefix}/*`;
  else if (m.connectMatcher) s = 'CONNECT';
  else s = '/*';
  const headers = ((m.headers ?? []) as Json[]).map((h) => h.name).filter((n: string) => n !== ':method');
  const method = ((m.headers ?? []) as Json[]).find((h) => h.name === ':method');
  const extra: string[] = [];
  if (method) extra.push(`method ${method.stringMatch?.exact ?? method.exactMatch ?? '?'}`);
  if (headers.length) extra.push(`headers ${headers.join(',')}`);
  if (m.queryParameters?.length) extra.push(`query ${(m.queryParameters as Json[]).map((q) => q.name).join(',')}`);
  return extra.length ? `${s} (${extra.join('; ')})` : s;
}

function domains(list: string[]): string {
  if (list.length <= 2) return list.join(', ');
  return `${list.slice(0, 2).join(', ')} + ${list.length - 2} more...`;
}

export function routeTable(routes: Json[], name?: string): string {
  const rows: string[][] = [];
  for (const rc of [...routes].sort((a, b) => String(a.name).localeCompare(String(b.name)))) {
    if (name && rc.name !== name) continue;
    for (const vh of (rc.virtualHosts ?? []) as Json[]) {
      const rs = (vh.routes ?? []) as Json[];
      if (rs.length === 0) rows.push([rc.name ?? '', vh.name ?? '', domains(vh.domains ?? []), '-', '']);
      for (const r of rs) rows.push([rc.name ?? '', vh.name ?? '', domains(vh.domains ?? []), routeMatch(r.match), istioConfig(r.metadata)]);
    }
  }
  return formatTable([['NAME', 'VHOST NAME', 'DOMAINS', 'MATCH', 'VIRTUAL SERVICE'], ...rows]);
}

export function endpointTable(clas: Json[], cluster?: string): string {
  const rows: string[][] = [];
  for (const cla of [...clas].sort((a, b) => String(a.clusterName).localeCompare(String(b.clusterName)))) {
    if (cluster && cla.clusterName !== cluster) continue;
    for (const le of (cla.endpoints ?? []) as Json[]) {
      const loc = le.locality ? [le.locality.region, le.locality.zone, le.locality.subZone].filter(Boolean).join('/') : '';
      for (const lb of (le.lbEndpoints ?? []) as Json[]) {
        const sa = lb.endpoint?.address?.socketAddress;
        const pipe = lb.endpoint?.address?.pipe;
        const ep = sa ? `${String(sa.address).includes(':') ? `[${sa.address}]` : sa.address}:${sa.portValue ?? 0}` : pipe ? `unix://${pipe.path}` : '-';
        rows.push([ep, lb.healthStatus ?? 'UNKNOWN', String(lb.loadBalancingWeight ?? 1), loc || '-', cla.clusterName ?? '']);
      }
    }
  }
  return formatTable([['ENDPOINT', 'STATUS', 'WEIGHT', 'LOCALITY', 'CLUSTER'], ...rows]);
}

export interface ProxyConfigCliOptions extends ClusterFilter {
  controlPlane?: string;
  /** The sidecar's admin URL: read its own configuration instead of the control plane's view. */
  fromProxy?: string;
  output: 'short' | 'json' | 'yaml';
  name?: string;
  cluster?: string;
}

export async function runProxyConfig(kindArg: string, proxy: string | undefined, opts: ProxyConfigCliOptions, out: (s: string) => void, err: (s: string) => void): Promise<number> {
  const kind = KIND_ALIASES[kindArg];
  if (!kind) {
    err(`weft proxy-config: unknown config type ${JSON.stringify(kindArg)}; use listeners, routes, clusters, endpoints or all\n`);
    return 2;
  }
  if ((proxy === undefined) === (opts.fromProxy === undefined)) {
    err(`weft proxy-config: give either a proxy id (the control plane's view) or --from-proxy ADMIN_URL (the sidecar's own), not ${proxy === undefined ? 'neither' : 'both'}\n`);
    return 2;
  }
  let dump: Json;
  /** From the proxy: its /clusters statuses (the endpoints it holds). */
  let statuses: ClusterStatusJson[] | undefined;
  try {
    if (opts.fromProxy !== undefined) {
      const admin = opts.fromProxy.replace(/\/+$/, '');
      if (!/^https?:\/\/[^/]+$/.test(admin)) {
        err(`weft proxy-config: --from-proxy expects the admin URL, e.g. http://127.0.0.1:15000 (got ${JSON.stringify(opts.fromProxy)})\n`);
        return 2;
      }
      const what = 'the proxy admin interface';
      dump = (await fetchJson(admin, '/config_dump', what)) as Json;
      if (kind === 'endpoints' || (kind === 'all' && opts.output === 'short')) {
        statuses = (((await fetchJson(admin, '/clusters?format=json', what)) as Json).cluster_statuses ?? []) as ClusterStatusJson[];
      }
    } else {
      dump = (await fetchJson(controlPlaneUrl(opts.controlPlane), `/debug/config_dump?proxy=${encodeURIComponent(proxy!)}`)) as Json;
    }
  } catch (e) {
    err(`weft proxy-config: ${(e as Error).message}\n`);
    return 1;
  }
  if (opts.output === 'json' || opts.output === 'yaml') {
    let value: unknown;
    if (kind === 'all') value = dump;
    else if (statuses !== undefined) value = opts.cluster ? statuses.filter((c) => c.name === opts.cluster) : statuses;
    else {
      let list = resourcesOf(dump, kind);
      if (opts.name && (kind === 'listeners' || kind === 'routes')) list = list.filter((x) => x.name === opts.name);
      if (opts.cluster && kind === 'endpoints') list = list.filter((x) => field(x, 'clusterName') === opts.cluster);
      if (kind === 'clusters' && (opts.fqdn || opts.port || opts.subset || opts.direction)) {
        list = list.filter((c) => {
          const p = String(c.name ?? '').split('|');
          return (!opts.fqdn || String(c.name).includes(opts.fqdn)) && (!opts.direction || p[0] === opts.direction) && (!opts.subset || p[2] === opts.subset) && (!opts.port || Number(p[1]) === opts.port);
        });
      }
      value = list;
    }
    out(opts.output === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value));
    return 0;
  }
  const sections: string[] = [];
  const want = (k: Exclude<ConfigKind, 'all'>) => kind === 'all' || kind === k;
  const resources = (k: Exclude<ConfigKind, 'all'>): Json[] => (opts.fromProxy !== undefined ? resourcesOf(dump, k).map(jsonNames) : resourcesOf(dump, k));
  if (want('clusters')) sections.push(clusterTable(resources('clusters'), opts));
  if (want('listeners')) sections.push(listenerTable(resources('listeners'), opts.name));
  if (want('routes')) sections.push(routeTable(resources('routes'), opts.name));
  if (want('endpoints')) sections.push(endpointTable(statuses !== undefined ? endpointsFromClusterStatuses(statuses) : resources('endpoints'), opts.cluster));
  out(sections.join('\n'));
  return 0;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 65535) throw new InvalidArgumentError('expected a port 1-65535');
  return n;
}

export function register(program: Command): void {
  program
    .command('proxy-config')
    .alias('pc')
    .description("show the configuration the control plane holds for a connected proxy, or with --from-proxy the sidecar's own (like istioctl proxy-config)")
    .argument('<type>', 'listeners, routes, clusters, endpoints or all (singular forms too)')
    .argument('[proxy]', 'proxy id (as weft proxy-status lists it); not with --from-proxy')
    .option('--control-plane <url>', `control plane HTTP address (default: $WEFT_CONTROL_PLANE or ${DEFAULT_CONTROL_PLANE})`)
    .option('--from-proxy <admin-url>', "read the sidecar's own configuration from its admin interface (e.g. http://127.0.0.1:15000)")
    .addOption(new Option('-o, --output <format>', 'output format').choices(['short', 'json', 'yaml']).default('short'))
    .option('--fqdn <host>', 'clusters: only those whose name contains this host')
    .option('--port <port>', 'clusters: only this service port', positiveInt)
    .option('--subset <name>', 'clusters: only this subset')
    .addOption(new Option('--direction <direction>', 'clusters: only this direction').choices(['inbound', 'outbound']))
    .option('--name <name>', 'listeners and routes: only the one with this name')
    .option('--cluster <name>', 'endpoints: only this cluster')
    .action(async (type: string, proxy: string | undefined, opts: ProxyConfigCliOptions) => {
      process.exitCode = await runProxyConfig(
        type,
        proxy,
        opts,
        (s) => process.stdout.write(s),
        (s) => process.stderr.write(s),
      );
    });
}
