/**
 * `weft describe service NAME` / `weft describe workload NAME` (NAME or NAMESPACE/NAME, or `-n NS`): everything
 * that applies to it, from the control plane's mesh API (GET /api/services/NS/NAME, /api/workloads/NS/NAME):
 * golden metrics and calls, endpoints and their health, the routes in force with the source file and line they
 * come from, destination and security policies, its proxies' sync state, analyzer messages, recent errors with
 * their response flags, and why requests fail ("503 UH: subset v3 of reviews selects no endpoints"). `-o json`
 * prints the API's document.
 */
import type { Command } from 'commander';
import { Option } from 'commander';
import type { EndpointView, MeshView, PolicyView, ProxyView, ServiceDetail, WorkloadDetail } from '../../controlplane/meshapi/views.js';
import { controlPlaneUrl, DEFAULT_CONTROL_PLANE, fetchJson, formatTable } from './proxy-status.js';
import { metricCells, metricCols, nodeName, serviceNamespace, splitName } from './top.js';
import type { MeshCliOptions } from './top.js';

type Out = (s: string) => void;

const indent = (s: string, by = '  '): string => s.replace(/^(?=.)/gm, by);
const labelText = (l: Record<string, string>): string => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(',') || '-';

function section(title: string, body: string): string {
  return `\n${title}:\n${body ? indent(body) : '  <none>\n'}`;
}

const endpointsText = (eps: EndpointView[]): string =>
  eps.length ? formatTable([['WORKLOAD', 'ADDRESS', 'HEALTH', 'TLS', 'LABELS'], ...eps.map((e) => [e.workload, `${e.address}:${e.port}`, e.healthy ? 'HEALTHY' : 'UNHEALTHY', e.tlsMode, labelText(e.labels)])]) : '';

const policiesText = (ps: PolicyView[]): string =>
  ps
    .map(
      (p) =>
        `${p.source.kind} ${p.source.namespace}/${p.source.name} (${p.at || 'no source position'}): ${p.summary || 'no traffic policy'}\n${(p.subsets ?? []).map((s) => `  subset ${s.name} (${labelText(s.labels)}): ${s.endpoints} endpoint${s.endpoints === 1 ? '' : 's'}${s.policy ? `; ${s.policy}` : ''}\n`).join('')}`,
    )
    .join('');

const proxiesText = (ps: ProxyView[]): string =>
  ps.length ? formatTable([['PROXY', 'CDS', 'LDS', 'EDS', 'RDS'], ...ps.map((p) => [p.id, ...['CDS', 'LDS', 'EDS', 'RDS'].map((t) => (p.nacks[t] ? `NACKED (${p.nacks[t]!.slice(0, 40)})` : (p.sync[t] ?? 'NOT SENT')))])]) : '';

function commonText(d: ServiceDetail | WorkloadDetail): string {
  return [
    section('Security policies', policiesText(d.securityPolicies)),
    section('Proxies', proxiesText(d.proxies)),
    section('Analyzer', d.analyzer.map((m) => `${m.severity} [${m.code}] ${m.message}${m.at ? ` (${m.at})` : ''}\n`).join('')),
    section('Recent errors', d.recentErrors.length ? formatTable([['FROM', 'SERVED BY', 'CODE', 'FLAGS', 'COUNT', 'LAST SEEN'], ...d.recentErrors.map((e) => [e.source, e.workload || '-', e.code, e.flags, String(e.count), e.lastSeen])]) : ''),
    d.explanations.length ? section('Why requests fail', d.explanations.map((e) => `${e}\n`).join('')) : '',
  ].join('');
}

const edgesText = (edges: ServiceDetail['inbound']): string => (edges.length ? formatTable([['FROM', 'TO', ...metricCols], ...edges.map((e) => [nodeName(e.source), nodeName(e.target), ...metricCells(e)])]) : '');

export function serviceText(d: ServiceDetail): string {
  return [
    `Service: ${d.name}\nNamespace: ${d.namespace}\nHost: ${d.host}\nSource: ${d.source.kind} ${d.source.namespace}/${d.source.name}${d.at ? ` (${d.at})` : ''}\nPorts: ${d.ports.map((p) => `${p.port}/${p.protocol}${p.name ? ` (${p.name})` : ''}`).join(', ')}\n`,
    section('Traffic', formatTable([metricCols, metricCells(d.metrics)])),
    section('Calls', edgesText([...d.inbound, ...d.outbound])),
    section('Endpoints', endpointsText(d.endpoints) + d.outlierEjections.map((o) => `outlier detection of ${o.proxy} has ejected ${o.ejected} endpoint${o.ejected === 1 ? '' : 's'}${o.subset ? ` of subset ${o.subset}` : ''}\n`).join('')),
    section(
      'Routes',
      d.routes.map((r) => `${r.table.kind} ${r.table.namespace}/${r.table.name} (hosts ${r.hosts.join(', ')})\n${indent(r.rules.map((x) => `${x.match} ${x.action}${x.at ? `  [${x.at}]` : ''}\n`).join(''))}`).join(''),
    ),
    section('Destination policies', policiesText(d.destinationPolicies)),
    commonText(d),
  ].join('');
}

export function workloadText(d: WorkloadDetail): string {
  return [
    `Workload: ${d.name}\nNamespace: ${d.namespace}\nLabels: ${labelText(d.labels)}\nServices: ${d.services.map((s) => `${s.namespace}/${s.name}`).join(', ') || '-'}\n`,
    section('Traffic', formatTable([['DIRECTION', ...metricCols], ['inbound', ...metricCells(d.inbound)], ['outbound', ...metricCells(d.outbound)]])),
    section('Calls', edgesText(d.edges)),
    section('Instances', endpointsText(d.endpoints)),
    commonText(d),
  ].join('');
}

export async function runDescribe(kind: string, target: string, opts: MeshCliOptions, out: Out, err: Out): Promise<number> {
  const base = controlPlaneUrl(opts.controlPlane);
  try {
    const t = splitName(target, opts.namespace);
    let ns = t.namespace;
    if (!ns) {
      const v = (await fetchJson(base, '/api/mesh')) as MeshView;
      const nss = kind === 'service' ? serviceNamespace(v, t.name) : [...new Set([...v.nodes.filter((n) => n.kind === 'workload' && n.name === t.name).map((n) => n.namespace)])];
      if (nss.length > 1) {
        err(`weft describe: ${kind} ${t.name} exists in several namespaces (${nss.join(', ')}): name one as NAMESPACE/${t.name}\n`);
        return 1;
      }
      ns = nss[0] ?? 'default';
    }
    const d = await fetchJson(base, `/api/${kind}s/${encodeURIComponent(ns)}/${encodeURIComponent(t.name)}`);
    if (opts.output === 'json') out(`${JSON.stringify(d, null, 2)}\n`);
    else out(kind === 'service' ? serviceText(d as ServiceDetail) : workloadText(d as WorkloadDetail));
    return 0;
  } catch (e) {
    err(`weft describe: ${(e as Error).message}\n`);
    return 1;
  }
}

export function register(program: Command): void {
  const describe = program.command('describe').description('everything that applies to a service or a workload, and why its requests fail');
  for (const kind of ['service', 'workload'] as const) {
    describe
      .command(kind)
      .aliases(kind === 'service' ? ['svc'] : ['wl'])
      .description(`describe a ${kind}: traffic, ${kind === 'service' ? 'endpoints, routes (file:line), destination policies' : 'instances'}, security policies, proxies, analyzer messages, recent errors`)
      .argument('<name>', 'NAME or NAMESPACE/NAME')
      .option('--control-plane <url>', `control plane HTTP address (default: $WEFT_CONTROL_PLANE or ${DEFAULT_CONTROL_PLANE})`)
      .option('-n, --namespace <ns>', 'the namespace (default: the one namespace that has it)')
      .addOption(new Option('-o, --output <format>', 'output format').choices(['text', 'json']).default('text'))
      .action(async (name: string, opts: MeshCliOptions) => {
        process.exitCode = await runDescribe(kind, name, opts, (s) => process.stdout.write(s), (s) => process.stderr.write(s));
      });
  }
}
