/**
 * The Weft dashboard's page (bundled by scripts/build-dashboard.mjs into dist/dashboard/app.js; served by the
 * control plane under /dashboard/). It polls the mesh API of the control plane that serves it:
 *
 *   #/                         the mesh: graph (cytoscape), mesh RPS chart (uPlot), services, calls, proxies
 *   #/service/NS/NAME          a service: metrics, endpoints, routes with file:line, policies, proxies, errors, why
 *   #/workload/NS/NAME         a workload: the same for a workload
 *
 * Clicking a service or workload node (or a table row) opens its page. Rendered rows carry data attributes
 * (`data-service`, `data-edge`, `data-proxy`) and metric cells classes (`rps`, `success`, `p50`, `p99`, `mtls`).
 */
import cytoscape from 'cytoscape';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';
import type { GraphEdge, GraphNode } from '../../controlplane/telemetry/aggregate.js';
import type { EndpointView, MeshView, PolicyView, ProxyView, ServiceDetail, WorkloadDetail } from '../../controlplane/meshapi/views.js';

const REFRESH_MS = 2000;
const HISTORY = 150;

const $ = <T extends HTMLElement>(sel: string): T => document.querySelector(sel) as T;

function esc(s: unknown): string {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt = {
  rps: (v: number | undefined) => (v === undefined ? '' : v >= 10 ? v.toFixed(1) : v.toFixed(2)),
  pct: (v: number | undefined) => (v === undefined ? '–' : `${(v * 100).toFixed(v === 1 ? 0 : 1)}%`),
  ms: (v: number | undefined) => (v === undefined ? '–' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`),
};

const successClass = (v: number | undefined) => (v === undefined ? '' : v >= 0.99 ? 'ok' : v >= 0.95 ? 'warn' : 'bad');

function metricCells(m: { rps: number; successRate?: number; p50?: number; p90?: number; p99?: number; mtls?: number }, p90 = true): string {
  return `<td class="num rps">${fmt.rps(m.rps)}</td><td class="num success ${successClass(m.successRate)}">${fmt.pct(m.successRate)}</td><td class="num p50">${fmt.ms(m.p50)}</td>${p90 ? `<td class="num p90">${fmt.ms(m.p90)}</td>` : ''}<td class="num p99">${fmt.ms(m.p99)}</td><td class="num mtls">${fmt.pct(m.mtls)}</td>`;
}

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(path, { cache: 'no-store' });
  const body = (await res.json()) as T & { error?: string };
  if (!res.ok) throw new Error(body.error ?? `HTTP ${res.status}`);
  return body;
}

// ---------------------------------------------------------------------------------------------------------------
// Mesh page

let cy: cytoscape.Core | undefined;
let plot: uPlot | undefined;
const history: [number[], number[]] = [[], []];

/** Callers on the left, the services they call in the middle, the workloads serving them on the right. */
const LAYOUT = {
  name: 'breadthfirst',
  directed: true,
  spacingFactor: 1.1,
  padding: 20,
  transform: (_node: unknown, p: { x: number; y: number }) => ({ x: p.y * 3, y: p.x }),
} as cytoscape.LayoutOptions;

function nodeLabel(n: GraphNode): string {
  if (n.kind === 'service') return n.name;
  if (n.kind === 'unknown') return 'unknown (outside the mesh)';
  return n.version ? `${n.name} (${n.version})` : n.name;
}

function edgeLabel(e: GraphEdge): string {
  if (!e.requests) return '';
  const lock = e.mtls === undefined ? '' : e.mtls >= 1 ? ' 🔒' : e.mtls > 0 ? ' ◐' : ' ⚠';
  return `${fmt.rps(e.rps)} rps · ${fmt.pct(e.successRate)}\n${fmt.ms(e.p50)} / ${fmt.ms(e.p99)}${lock}`;
}

function nodeHref(n: GraphNode): string | undefined {
  if (n.kind === 'service') return `#/service/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`;
  if (n.kind === 'workload') return `#/workload/${encodeURIComponent(n.namespace)}/${encodeURIComponent(n.name)}`;
  return undefined;
}

function renderGraph(v: MeshView): void {
  const elements: cytoscape.ElementDefinition[] = [
    ...v.nodes.map((n) => ({ group: 'nodes' as const, data: { id: n.id, label: nodeLabel(n), kind: n.kind, href: nodeHref(n) ?? '' } })),
    ...v.edges.map((e) => ({ group: 'edges' as const, data: { id: e.id, source: e.source, target: e.target, label: edgeLabel(e), state: e.requests === 0 ? 'idle' : successClass(e.successRate) } })),
  ];
  if (!cy) {
    cy = cytoscape({
      container: $('#graph'),
      elements,
      wheelSensitivity: 0.3,
      maxZoom: 1.3,
      style: [
        { selector: 'node', style: { label: 'data(label)', 'font-size': 11, 'text-valign': 'bottom', 'text-margin-y': 4, 'background-color': '#3451b2', width: 22, height: 22 } },
        { selector: 'node[kind = "service"]', style: { shape: 'triangle', 'background-color': '#1f8a4c' } },
        { selector: 'node[kind = "unknown"]', style: { 'background-color': '#9aa1b1' } },
        { selector: 'edge', style: { label: 'data(label)', 'font-size': 9, width: 2, 'curve-style': 'bezier', 'target-arrow-shape': 'triangle', 'line-color': '#9aa1b1', 'target-arrow-color': '#9aa1b1', 'text-background-color': '#fff', 'text-background-opacity': 0.8, 'text-rotation': 'autorotate', 'text-wrap': 'wrap' } },
        { selector: 'edge[state = "ok"]', style: { 'line-color': '#1f8a4c', 'target-arrow-color': '#1f8a4c' } },
        { selector: 'edge[state = "warn"]', style: { 'line-color': '#b7791f', 'target-arrow-color': '#b7791f' } },
        { selector: 'edge[state = "bad"]', style: { 'line-color': '#c53030', 'target-arrow-color': '#c53030' } },
      ],
      layout: LAYOUT,
    });
    cy.on('tap', 'node', (ev) => {
      const href = ev.target.data('href') as string;
      if (href) location.hash = href;
    });
    (window as unknown as { weftGraph: cytoscape.Core }).weftGraph = cy;
    return;
  }
  // Update in place; lay out again only when the set of nodes or edges changed.
  const ids = new Set(elements.map((e) => e.data.id!));
  let changed = false;
  cy.elements().forEach((el) => {
    if (!ids.has(el.id())) {
      el.remove();
      changed = true;
    }
  });
  for (const el of elements) {
    const cur = cy.getElementById(el.data.id!);
    if (cur.nonempty()) cur.data(el.data);
    else {
      cy.add(el);
      changed = true;
    }
  }
  if (changed) cy.layout(LAYOUT).run();
}

function renderChart(v: MeshView): void {
  const total = v.edges.filter((e) => e.source.startsWith('svc:')).reduce((a, e) => a + e.rps, 0) || v.services.reduce((a, s) => a + s.rps, 0);
  history[0].push(Date.now() / 1000);
  history[1].push(Math.round(total * 100) / 100);
  if (history[0].length > HISTORY) {
    history[0].shift();
    history[1].shift();
  }
  const el = $('#chart');
  if (!plot) {
    plot = new uPlot({ width: Math.max(300, el.clientWidth - 2), height: 160, series: [{}, { label: 'mesh requests/s', stroke: '#3451b2', width: 2 }], axes: [{}, { size: 50 }] }, history, el);
  } else plot.setData(history);
}

function renderMesh(v: MeshView): void {
  $('#telemetry').textContent = `${v.telemetry.source === 'prometheus' ? 'from Prometheus' : 'from the proxies'}, ${v.telemetry.windowSeconds} s window`;
  $('#problems').innerHTML = v.telemetry.scrapeErrors.map((e) => `<div class="scrape-error">${esc(e.target)}: ${esc(e.error)}</div>`).join('');
  const byId = new Map(v.nodes.map((n) => [n.id, n]));
  const name = (id: string) => {
    const n = byId.get(id);
    return n ? `<a href="${esc(nodeHref(n) ?? '#/')}">${esc(nodeLabel(n))}</a>` : esc(id);
  };
  $('#services tbody').innerHTML = v.services
    .map((s) => `<tr data-service="${esc(`${s.namespace}/${s.name}`)}"><td><a href="#/service/${esc(encodeURIComponent(s.namespace))}/${esc(encodeURIComponent(s.name))}">${esc(s.name)}</a> <span class="muted">${esc(s.namespace)}</span></td><td class="num ${s.healthyEndpoints < s.endpoints || s.endpoints === 0 ? 'bad' : ''}">${s.healthyEndpoints}/${s.endpoints}</td>${metricCells(s)}</tr>`)
    .join('');
  $('#edges tbody').innerHTML = v.edges
    .map((e) => `<tr data-edge="${esc(e.id)}"><td>${name(e.source)}</td><td>${name(e.target)}</td>${metricCells(e, false)}</tr>`)
    .join('');
  $('#proxies tbody').innerHTML = v.proxies.map((p) => `<tr data-proxy="${esc(p.id)}"><td>${esc(p.id)}</td><td>${esc(p.type)}</td>${['CDS', 'LDS', 'EDS', 'RDS'].map((t) => syncCell(p, t)).join('')}</tr>`).join('');
  renderGraph(v);
  renderChart(v);
}

function syncCell(p: ProxyView, t: string): string {
  const s = p.sync[t] ?? 'NOT SENT';
  return `<td class="${s === 'SYNCED' ? 'ok' : s === 'NACKED' ? 'bad' : 'warn'}" title="${esc(p.nacks[t] ?? '')}">${esc(s)}</td>`;
}

// ---------------------------------------------------------------------------------------------------------------
// Detail pages

function table(head: string[], rows: string[][], cls = ''): string {
  if (!rows.length) return '<p class="muted">none</p>';
  return `<table class="${cls}"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${r.join('')}</tr>`).join('')}</tbody></table>`;
}

const td = (s: unknown, cls = '') => `<td class="${cls}">${esc(s)}</td>`;
const labels = (l: Record<string, string>) => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(', ');

function endpointsTable(eps: EndpointView[]): string {
  return table(['Workload', 'Address', 'Labels', 'Health', 'mTLS'], eps.map((e) => [td(e.workload), td(`${e.address}:${e.port}`, 'at'), td(labels(e.labels)), td(e.healthy ? 'HEALTHY' : 'UNHEALTHY', e.healthy ? 'ok' : 'bad'), td(e.tlsMode)]), 'endpoints');
}

function policiesTable(ps: PolicyView[], cls: string): string {
  return table(['Resource', 'Policy', 'Source'], ps.map((p) => [td(`${p.source.kind} ${p.source.namespace}/${p.source.name}`), `<td>${esc(p.summary)}${p.subsets?.length ? `<br>${p.subsets.map((s) => `subset <b>${esc(s.name)}</b> (${esc(labels(s.labels))}): ${s.endpoints} endpoint${s.endpoints === 1 ? '' : 's'}${s.policy ? `; ${esc(s.policy)}` : ''}`).join('<br>')}` : ''}</td>`, td(p.at, 'at')]), cls);
}

function commonSections(d: ServiceDetail | WorkloadDetail): string {
  return [
    d.explanations.length ? `<h3>Why requests fail</h3><div class="explanations">${d.explanations.map((e) => `<div class="explanation">${esc(e)}</div>`).join('')}</div>` : '',
    '<h3>Recent errors</h3>',
    table(['From', 'Served by', 'Code', 'Flags', 'Count', 'Last seen'], d.recentErrors.map((e) => [td(e.source), td(e.workload), td(e.code), td(e.flags, 'at'), td(e.count, 'num'), td(new Date(e.lastSeen).toLocaleTimeString())]), 'errors'),
    '<h3>Security policies</h3>',
    policiesTable(d.securityPolicies, 'security'),
    '<h3>Proxies</h3>',
    table(['Proxy', 'CDS', 'LDS', 'EDS', 'RDS'], d.proxies.map((p) => [td(p.id), ...['CDS', 'LDS', 'EDS', 'RDS'].map((t) => syncCell(p, t))]), 'proxies'),
    '<h3>Analyzer</h3>',
    table(['Severity', 'Code', 'Message', 'Source'], d.analyzer.map((m) => [td(m.severity, m.severity === 'Error' ? 'bad' : 'warn'), td(m.code), td(m.message), td(m.at, 'at')]), 'analyzer'),
  ].join('');
}

function edgesTable(edges: GraphEdge[]): string {
  return table(['From', 'To', 'RPS', 'Success', 'p50', 'p99', 'mTLS'], edges.map((e) => [td(e.source.replace(/^(svc|wl):/, '')), td(e.target.replace(/^(svc|wl):/, '')), metricCells(e, false)]), 'calls');
}

function renderService(d: ServiceDetail): string {
  return [
    `<h2 data-service="${esc(`${d.namespace}/${d.name}`)}">Service ${esc(d.name)} <span class="muted">${esc(d.namespace)} · ${esc(d.host)}</span></h2>`,
    `<p class="muted">${esc(d.source.kind)} at <span class="at">${esc(d.at)}</span>; ports ${esc(d.ports.map((p) => `${p.port}/${p.protocol}`).join(', '))}</p>`,
    table(['RPS', 'Success', 'p50', 'p90', 'p99', 'mTLS'], [[metricCells(d.metrics)]], 'metrics'),
    '<h3>Calls</h3>',
    edgesTable([...d.inbound, ...d.outbound]),
    '<h3>Endpoints</h3>',
    endpointsTable(d.endpoints),
    d.outlierEjections.length
      ? `<p class="outlier bad">${d.outlierEjections.map((o) => `outlier detection of ${esc(o.proxy)} has ejected ${o.ejected} endpoint${o.ejected === 1 ? '' : 's'}${o.subset ? ` of subset ${esc(o.subset)}` : ''}`).join('<br>')}</p>`
      : '<p class="outlier muted">no endpoint ejected by outlier detection</p>',
    '<h3>Routes in force</h3>',
    d.routes.length
      ? d.routes.map((r) => `<p><b>${esc(r.table.kind)} ${esc(r.table.namespace)}/${esc(r.table.name)}</b> <span class="muted">hosts ${esc(r.hosts.join(', '))}</span></p>${table(['Match', 'Action', 'Source'], r.rules.map((x) => [td(x.match), td(x.action), td(x.at, 'at')]), 'routes')}`).join('')
      : '<p class="muted">no route rules: requests go to every endpoint of the service</p>',
    '<h3>Destination policies</h3>',
    policiesTable(d.destinationPolicies, 'destination-policies'),
    commonSections(d),
  ].join('');
}

function renderWorkload(d: WorkloadDetail): string {
  return [
    `<h2 data-workload="${esc(`${d.namespace}/${d.name}`)}">Workload ${esc(d.name)} <span class="muted">${esc(d.namespace)} · ${esc(labels(d.labels))}</span></h2>`,
    `<p>Services: ${d.services.map((s) => `<a href="#/service/${esc(encodeURIComponent(s.namespace))}/${esc(encodeURIComponent(s.name))}">${esc(s.name)}</a>`).join(', ') || '<span class="muted">none</span>'}</p>`,
    table(['Direction', 'RPS', 'Success', 'p50', 'p90', 'p99', 'mTLS'], [[td('inbound'), metricCells(d.inbound)], [td('outbound'), metricCells(d.outbound)]], 'metrics'),
    '<h3>Calls</h3>',
    edgesTable(d.edges),
    '<h3>Instances</h3>',
    endpointsTable(d.endpoints),
    commonSections(d),
  ].join('');
}

// ---------------------------------------------------------------------------------------------------------------

async function refresh(): Promise<void> {
  const route = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const detail = route[0] === 'service' || route[0] === 'workload';
  $('#mesh-page').hidden = detail;
  $('#detail-page').hidden = !detail;
  try {
    if (detail) {
      const path = `api/${route[0]}s/${encodeURIComponent(route[1] ?? '')}/${encodeURIComponent(route[2] ?? '')}`;
      const d = await getJson<ServiceDetail | WorkloadDetail>(`../${path}`);
      $('#detail').innerHTML = route[0] === 'service' ? renderService(d as ServiceDetail) : renderWorkload(d as WorkloadDetail);
    } else {
      renderMesh(await getJson<MeshView>('../api/mesh'));
    }
    $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (e) {
    $('#updated').textContent = `cannot reach the control plane: ${(e as Error).message}`;
  }
}

let timer: number | undefined;
function schedule(): void {
  if (timer !== undefined) clearTimeout(timer);
  void refresh().finally(() => (timer = window.setTimeout(schedule, REFRESH_MS)));
}
window.addEventListener('hashchange', () => {
  schedule();
  if (!location.hash.startsWith('#/service') && !location.hash.startsWith('#/workload')) cy?.resize();
});
schedule();
