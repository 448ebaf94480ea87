// Retry budgets end to end: an Istio DestinationRule `retryBudget` becomes the cluster's circuit breaker
// retry_budget (control plane), which replaces max_retries on the request path (proxy): the retries a cluster may
// have in flight are max(budget_percent × (active + pending requests), min_retry_concurrency), Envoy's
// ResourceManagerImpl::RetryBudgetImpl. An upstream that always answers 503 and a VirtualService retrying on 5xx
// show the budget deciding: 0 % with no minimum allows no retry (flag UO, upstream_rq_retry_overflow), 100 % of
// the one active request allows it. No timing is asserted.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { statValue } from '../helpers/admin-http.js';
import { send, Upstream } from '../helpers/http-upstream.js';
import { freePort, MeshWorkDir, proxyArgs, serviceYaml, startControlPlane, waitProxyReady, WeftProcess, workloadEntryYaml, yamlDocuments } from '../helpers/mesh-processes.js';

describe('weft proxy: retry budgets end to end', () => {
  const mesh = new MeshWorkDir('weft-budget-e2e-');
  const cp = new WeftProcess();
  const proxy = new WeftProcess();
  const failing = new Upstream('failing', (_req, res) => {
    res.writeHead(503, { 'content-type': 'text/plain' });
    res.end('busy');
  });
  let outbound = 0;
  let adminPort = 0;

  before(async () => {
    await failing.start();
    const docs: string[] = [];
    for (const [name, port, percent] of [['nobudget', 9080, 0], ['fullbudget', 9081, 100]] as const) {
      docs.push(serviceYaml(name, { name: 'http', port }));
      docs.push(workloadEntryYaml(`${name}-1`, { app: name }, 'http', failing.port));
      docs.push(`apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ${name}, namespace: default}\nspec:\n  host: ${name}\n  trafficPolicy:\n    retryBudget: {percent: ${percent}, minRetryConcurrency: 0}\n`);
      docs.push(`apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ${name}, namespace: default}\nspec:\n  hosts: [${name}]\n  http:\n  - route: [{destination: {host: ${name}}}]\n    retries: {attempts: 1, retryOn: 5xx}\n`);
    }
    mesh.writeConfig('mesh.yaml', yamlDocuments(docs));
    const addr = await startControlPlane(cp, mesh.config);
    outbound = await freePort();
    const health = await freePort();
    adminPort = await freePort();
    await proxy.start(
      proxyArgs(addr.xds, 'e2e-budget', ['--outbound-port', String(outbound), '--health-port', String(health), '--admin-port', String(adminPort), '--stats-port', '0']),
      /weft proxy .* started/,
      'proxy',
    );
    await waitProxyReady(health, proxy);
  });

  after(async () => {
    await proxy.stop();
    await cp.stop();
    await failing.stop();
    mesh.remove();
  });

  const attempts = (id: string) => failing.count((s) => s.headers['x-request-id'] === id);

  test('budget 0 % and no minimum: the retry overflows (UO) and the first answer is passed on', async () => {
    const r = await send(outbound, { path: '/a', headers: { host: 'nobudget:9080', 'x-request-id': 'no-budget-1', 'x-weft-debug': '1' } });
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'busy');
    assert.equal(r.headers['x-weft-response-flags'], 'UO');
    assert.equal(attempts('no-budget-1'), 1);
    assert.equal(await statValue(adminPort, 'cluster.outbound|9080||nobudget.default.svc.cluster.local.upstream_rq_retry_overflow'), 1);
  });

  test('budget 100 % of the active request: the retry is allowed (URX after it)', async () => {
    const r = await send(outbound, { path: '/b', headers: { host: 'fullbudget:9081', 'x-request-id': 'full-budget-1', 'x-weft-debug': '1' } });
    assert.equal(r.status, 503);
    assert.equal(r.headers['x-weft-response-flags'], 'URX');
    assert.equal(attempts('full-budget-1'), 2);
    assert.equal(await statValue(adminPort, 'cluster.outbound|9081||fullbudget.default.svc.cluster.local.upstream_rq_retry'), 1);
  });
});
