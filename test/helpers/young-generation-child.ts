// Child process of test/proxy/stats-young-generation.test.ts: serves the stats of a sidecar-sized store, built with
// the young generation's growth off (as `weft proxy` starts) and growth then on (as after the first configuration)
// with some traffic-like garbage collected.
// Prints `{port, before}` (V8's new-space size) as a JSON line; the test scrapes from its own process (as Prometheus
// does), then writes a line to stdin, and the child prints `{after}` and exits.
import { createInterface } from 'node:readline';
import { getHeapSpaceStatistics } from 'node:v8';
import { setYoungGenerationGrowth } from '../../src/proxy/heap.js';
import { startStatsServer } from '../../src/proxy/admin-wiring.js';
import { freePort } from './mesh-processes.js';
import { proxyStore } from './stats-store.js';

const newSpace = (): number => getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? NaN;

setYoungGenerationGrowth(false);
const store = proxyStore(1000);
setYoungGenerationGrowth(true);
// Scavenges of short-lived garbage, as traffic would make them: V8 settles what building the store counted toward
// growing (bytes that survived while growth was off) before the measured scrapes.
let sink = 0;
for (let i = 0; i < 400_000; i++) sink += new Array(16).fill(i).length;
if (sink < 0) process.exit(1);
const server = await startStatsServer({ store, port: await freePort(), host: '127.0.0.1' });
process.stdout.write(`${JSON.stringify({ port: server.port, before: newSpace() })}\n`);
const lines = createInterface({ input: process.stdin });
for await (const _ of lines) break;
process.stdout.write(`${JSON.stringify({ after: newSpace() })}\n`);
await server.close();
process.exit(0);
