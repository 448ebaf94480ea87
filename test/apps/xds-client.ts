/**
 * A proxyless gRPC client for tests: unmodified @grpc/grpc-js + @grpc/grpc-js-xds, bootstrapped from
 * GRPC_XDS_BOOTSTRAP. It calls Greeter.SayHello on an `xds:///` target and prints JSON lines on stdout:
 *   {"i":N,"t":ms,"server":"v1"} or {"i":N,"t":ms,"code":14,"details":"..."} per RPC (with --each), and a summary
 *   {"summary":{"servers":{"v1":800,...},"codes":{"14":3},"total":N}} at the end.
 * Usage: node xds-client.js TARGET COUNT [--header k=v]... [--interval-ms N] [--each] [--deadline-ms N]
 */
import { credentials, Metadata, makeGenericClientConstructor } from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { greeterService } from './greeter.js';
import type { HelloReply } from './greeter.js';

xds.register();

const args = process.argv.slice(2);
const target = args[0]!;
const count = Number(args[1] ?? '1');
const headers: Array<[string, string]> = [];
let intervalMs = 0;
let each = false;
let deadlineMs = 5000;
for (let i = 2; i < args.length; i++) {
  const a = args[i];
  if (a === '--header') { const [k, ...v] = args[++i]!.split('='); headers.push([k!, v.join('=')]); }
  else if (a === '--interval-ms') intervalMs = Number(args[++i]);
  else if (a === '--each') each = true;
  else if (a === '--deadline-ms') deadlineMs = Number(args[++i]);
}

const Client = makeGenericClientConstructor(greeterService, 'Greeter');
const client = new Client(target, credentials.createInsecure()) as unknown as {
  SayHello(req: { name: string }, md: Metadata, opts: { deadline: number }, cb: (err: { code: number; details: string } | null, res?: HelloReply) => void): void;
  close(): void;
};

const servers: Record<string, number> = {};
const codes: Record<string, number> = {};
const t0 = Date.now();
for (let i = 0; i < count; i++) {
  const md = new Metadata();
  for (const [k, v] of headers) md.set(k, v);
  const r = await new Promise<{ server?: string; code?: number; details?: string }>((resolve) =>
    client.SayHello({ name: `rpc${i}` }, md, { deadline: Date.now() + deadlineMs }, (err, res) =>
      resolve(err ? { code: err.code, details: err.details } : { server: res!.server }),
    ),
  );
  if (r.server !== undefined) servers[r.server] = (servers[r.server] ?? 0) + 1;
  else codes[String(r.code)] = (codes[String(r.code)] ?? 0) + 1;
  if (each) process.stdout.write(JSON.stringify({ i, t: Date.now() - t0, ...r }) + '\n');
  if (intervalMs) await new Promise((res) => setTimeout(res, intervalMs));
}
process.stdout.write(JSON.stringify({ summary: { servers, codes, total: count } }) + '\n');
client.close();
process.exit(0);
