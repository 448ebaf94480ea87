/**
 * The dashboard's one HTML page: inline CSS and vanilla JS (no build step, no framework, nothing fetched from
 * elsewhere, so it works offline). The script polls `/api/mesh` (index.ts, MeshView) and renders four tables:
 * services, calls (edges), workloads and the control plane's proxy sync status. Rows carry `data-*` attributes
 * (`data-service` "ns/name", `data-workload` "name-replica", `data-edge` "source|destination|subset", `data-proxy` id) and metric cells a class (`rps`, `success`, `p50`,
 * `p99`), so that tests and scripts can read the rendered page.
 */
export function dashboardPage(pollMs: number): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Weft dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
:root{--fg:#1f2328;--muted:#656d76;--line:#d0d7de;--ok:#1a7f37;--warn:#9a6700;--bad:#cf222e;--head:#24292f}
body{font-family:system-ui,-apple-system,sans-serif;margin:0;color:var(--fg);background:#f6f8fa}
header{background:var(--head);color:#fff;padding:.7em 1.4em;display:flex;gap:2em;align-items:baseline;flex-wrap:wrap}
header h1{font-size:1.2em;margin:0} header span{color:#d0d7de;font-size:.9em}
main{padding:1em 1.4em;display:grid;gap:1.2em}
section{background:#fff;border:1px solid var(--line);border-radius:6px;padding:.4em 1em 1em}
h2{font-size:1em;margin:.6em 0} table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid var(--line);white-space:nowrap}
th{color:var(--muted);font-weight:600} td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.ok{color:var(--ok)} .warn{color:var(--warn)} .bad{color:var(--bad)} .muted{color:var(--muted)}
.pill{display:inline-block;padding:0 .5em;border-radius:1em;font-size:.85em;border:1px solid currentColor}
#errors{color:var(--bad);font-size:.85em} #errors:empty{display:none}
</style></head>
<body>
<header><h1>Weft dashboard</h1><span id="summary">loading…</span><span id="updated"></span></header>
<main>
<div id="errors"></div>
<section><h2>Services</h2><table id="services"><thead><tr><th>Service</th><th>Namespace</th><th>Versions</th><th class="num">Ready</th><th class="num">Requests/s</th><th class="num">Success</th><th class="num">p50 ms</th><th class="num">p99 ms</th></tr></thead><tbody></tbody></table></section>
<section><h2>Calls between services</h2><table id="edges"><thead><tr><th>From</th><th>To</th><th>Subset</th><th class="num">Requests/s</th><th class="num">Success</th><th class="num">p50 ms</th><th class="num">p99 ms</th></tr></thead><tbody></tbody></table></section>
<section><h2>Workloads</h2><table id="workloads"><thead><tr><th>Workload</th><th>Service</th><th>Version</th><th>Phase</th><th>Ready</th><th class="num">Restarts</th><th class="num">PID</th><th>Ports (app → inbound)</th><th class="num">Requests/s</th><th class="num">Success</th><th class="num">p99 ms</th><th>Last error</th></tr></thead><tbody></tbody></table></section>
<section><h2>Proxies (control plane sync)</h2><table id="proxies"><thead><tr><th>Proxy</th><th>Type</th><th>Namespace</th><th>CDS</th><th>LDS</th><th>EDS</th><th>RDS</th><th>Connected</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
const POLL_MS = ${Math.max(250, Math.floor(pollMs))};
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;',"'":'&#39;'})[c]);
const num = (v, d) => (v === undefined || v === null ? '<span class="muted">–</span>' : Number(v).toFixed(d));
const pct = (v) => {
  if (v === undefined || v === null) return '<span class="muted">–</span>';
  const cls = v >= 0.99 ? 'ok' : v >= 0.9 ? 'warn' : 'bad';
  return '<span class="' + cls + '">' + (v * 100).toFixed(v === 1 ? 0 : 1) + '%</span>';
};
const state = (s) => '<span class="pill ' + (s === 'SYNCED' ? 'ok' : s === 'NACKED' ? 'bad' : 'warn') + '">' + esc(s || '–') + '</span>';
const phase = (p) => '<span class="' + (p === 'running' ? 'ok' : p === 'failed' ? 'bad' : 'warn') + '">' + esc(p) + '</span>';
const metrics = (x) => '<td class="num rps">' + num(x.rps, 2) + '</td><td class="num success">' + pct(x.successRate) + '</td><td class="num p50">' + num(x.p50, 1) + '</td><td class="num p99">' + num(x.p99, 1) + '</td>';
function fill(id, rows, empty) {
  const body = document.querySelector('#' + id + ' tbody');
  const cols = document.querySelectorAll('#' + id + ' thead th').length;
  body.innerHTML = rows.length ? rows.join('') : '<tr><td colspan="' + cols + '" class="muted">' + empty + '</td></tr>';
}
function render(v) {
  const rt = v.runtime;
  document.getElementById('summary').textContent = v.services.length + ' services · ' + v.workloads.length + ' workloads · ' + v.proxies.length + ' proxies' + (rt ? ' · control plane xDS 127.0.0.1:' + rt.controlPlane.xdsPort : '');
  document.getElementById('updated').textContent = 'rates over the last ' + v.windowSeconds + ' s · updated ' + new Date(v.generatedAt).toLocaleTimeString();
  document.getElementById('errors').innerHTML = v.scrapeErrors.map((e) => '<div>' + esc(e.target) + ': ' + esc(e.error) + '</div>').join('');
  fill('services', v.services.map((s) => '<tr data-service="' + esc(s.namespace + '/' + s.name) + '"><td>' + esc(s.name) + '</td><td>' + esc(s.namespace) + '</td><td>' + esc(s.versions.join(', ')) + '</td><td class="num">' + s.ready + '/' + s.instances + '</td>' + metrics(s) + '</tr>'), 'no services');
  fill('edges', v.edges.map((e) => '<tr data-edge="' + esc(e.source + '|' + e.destination + '|' + e.subset) + '"><td>' + esc(e.source) + '</td><td>' + esc(e.destination) + (e.destinationNamespace ? '.' + esc(e.destinationNamespace) : '') + ':' + e.port + '</td><td>' + esc(e.subset || '(all)') + '</td>' + metrics(e) + '</tr>'), 'no calls in the window');
  fill('workloads', v.workloads.map((w) => {
    const ports = Object.keys(w.appPorts).map((n) => esc(n) + ' ' + w.appPorts[n] + ' → ' + (w.inboundPorts[n] ?? '–')).join(', ');
    return '<tr data-workload="' + esc(w.instance) + '"><td>' + esc(w.instance) + '</td><td>' + esc(w.service) + '</td><td>' + esc(w.version) + '</td><td>' + phase(w.phase) + '</td><td>' + (w.ready ? '<span class="ok">yes</span>' : '<span class="warn">no</span>') + '</td><td class="num">' + w.restarts + '</td><td class="num">' + esc(w.pid ?? '–') + '</td><td>' + ports + '</td><td class="num rps">' + num(w.rps, 2) + '</td><td class="num success">' + pct(w.successRate) + '</td><td class="num p99">' + num(w.p99, 1) + '</td><td class="bad">' + esc(w.lastError ?? '') + '</td></tr>';
  }), 'no workloads');
  fill('proxies', v.proxies.map((p) => '<tr data-proxy="' + esc(p.id) + '"><td>' + esc(p.id) + '</td><td>' + esc(p.type) + '</td><td>' + esc(p.namespace) + '</td><td>' + state(p.sync.CDS) + '</td><td>' + state(p.sync.LDS) + '</td><td>' + state(p.sync.EDS) + '</td><td>' + state(p.sync.RDS) + '</td><td>' + esc(p.connectedAt ? new Date(p.connectedAt).toLocaleTimeString() : '') + '</td></tr>'), 'no proxies connected');
}
async function poll() {
  try {
    const res = await fetch('/api/mesh', { cache: 'no-store' });
    if (!res.ok) throw new Error('/api/mesh answered ' + res.status);
    render(await res.json());
  } catch (e) {
    document.getElementById('errors').textContent = 'dashboard API unreachable: ' + e.message;
  }
  setTimeout(poll, POLL_MS);
}
poll();
</script>
</body></html>
`;
}
