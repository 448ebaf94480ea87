// Child process of test/proxy/stats-young-generation.test.ts: a sidecar-sized stats store built with the young
// generation's growth off (as `weft proxy` starts), growth then on (as after the first configuration), and full
// /stats/prometheus scrapes over a real socket. Prints V8's new-space size before and after the scrapes as JSON.
import { request } from 'node:http';
import { getHeapSpaceStatistics } from 'node:v8';
import { setYoungGenerationGrowth } from '../../src/proxy/heap.js';
import { startStatsServer } from '../../src/proxy/admin-wiring.js';
import { freePort } from './mesh-processes.js';
import { proxyStore } from './stats-store.js';

const newSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? NaN;

setYoungGenerationGrowth(false);
const store = proxyStore(1000);
setYoungGenerationGrowth(true);
const server = await startStatsServer({ store, port: await freePort(), host: '127.0.0.1' });
const before = newSpace();
let bytes = 0;
for (let i = 0; i < 3; i++) {
  bytes += await new Promise<number>((resolve, reject) => {
    request({ host: '127.0.0.1', port: server.port, path: '/stats/prometheus', agent: false }, (res) => {
      let n = 0;
      res.on('data', (c: Buffer) => (n += c.length));
      res.on('end', () => resolve(n));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}
const after = newSpace();
await server.close();
process.stdout.write(JSON.stringify({ before, after, bytes }));
