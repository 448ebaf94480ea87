/**
 * A proxyless gRPC client for tests: unmodified @grpc/grpc-js + @grpc/grpc-js-xds, bootstrapped from
 * GRPC_XDS_BOOTSTRAP. It calls Greeter.SayHello on an `xds:///` target and prints JSON lines on stdout:
 *   {"i":N,"t":ms,"at":epochMs,"server":"v1"} or {"i":N,"t":ms,"at":epochMs,"code":14,"details":"..."} per RPC
 *   (with --each; `t` is since the batch started, `at` is the wall clock when the answer came), and a summary
 *   {"summary":{"servers":{"v1":800,...},"codes":{"14":3},"total":N}} at the end.
 *
 * Usage: node xds-client.js TARGET COUNT [--header k=v]... [--interval-ms N] [--each] [--deadline-ms N]
 *        node xds-client.js TARGET --serve
 *
 * With --serve the client keeps its channel (and so its xDS stream) open and runs batches read from stdin, one
 * JSON object per line: {"id":"x","count":N,"headers":{"k":"v"},"intervalMs":N,"each":true,"deadlineMs":N}.
 * Output lines of a batch carry its "id"; the batch ends with its summary line. Batches run one at a time, in
 * order. The client exits when stdin closes.
 */
import { createInterface } from 'node:readline';
import { credentials, Metadata, makeGenericClientConstructor } from '@grpc/grpc-js';
import * as xds from '@grpc/grpc-js-xds';
import { greeterService } from './greeter.js';
import type { HelloReply } from './greeter.js';

xds.register();

export interface Batch {
  id?: string;
  count: number;
  headers?: Record<string, string>;
  intervalMs?: number;
  each?: boolean;
  deadlineMs?: number;
}

export interface RpcResult {
  server?: string;
  code?: number;
  details?: string;
}

export interface BatchSummary {
  servers: Record<string, number>;
  codes: Record<string, number>;
  total: number;
}

const args = process.argv.slice(2);
const target = args[0]!;

const Client = makeGenericClientConstructor(greeterService, 'Greeter');
const client = new Client(target, credentials.createInsecure()) as unknown as {
  SayHello(req: { name: string }, md: Metadata, opts: { deadline: number }, cb: (err: { code: number; details: string } | null, res?: HelloReply) => void): void;
  close(): void;
};

function out(v: unknown): void {
  process.stdout.write(JSON.stringify(v) + '\n');
}

async function runBatch(b: Batch): Promise<void> {
  const idPart = b.id !== undefined ? { id: b.id } : {};
  const servers: Record<string, number> = {};
  const codes: Record<string, number> = {};
  const t0 = Date.now();
  for (let i = 0; i < b.count; i++) {
    const md = new Metadata();
    for (const [k, v] of Object.entries(b.headers ?? {})) md.set(k, v);
    const deadlineMs = b.deadlineMs ?? 5000;
    const r = await new Promise<RpcResult>((resolve) =>
      client.SayHello({ name: `rpc${i}` }, md, { deadline: Date.now() + deadlineMs }, (err, res) =>
        resolve(err ? { code: err.code, details: err.details } : { server: res!.server }),
      ),
    );
    if (r.server !== undefined) servers[r.server] = (servers[r.server] ?? 0) + 1;
    else codes[String(r.code)] = (codes[String(r.code)] ?? 0) + 1;
    if (b.each) out({ ...idPart, i, t: Date.now() - t0, at: Date.now(), ...r });
    if (b.intervalMs) await new Promise((res) => setTimeout(res, b.intervalMs));
  }
  out({ ...idPart, summary: { servers, codes, total: b.count } satisfies BatchSummary });
}

if (args[1] === '--serve') {
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let b: Batch;
    try {
      b = JSON.parse(line) as Batch;
    } catch {
      out({ error: `not JSON: ${line}` });
      continue;
    }
    await runBatch(b);
  }
} else {
  const b: Batch = { count: Number(args[1] ?? '1'), headers: {} };
  for (let i = 2; i < args.length; i++) {
    const a = args[i];
    if (a === '--header') {
      const [k, ...v] = args[++i]!.split('=');
      b.headers![k!] = v.join('=');
    } else if (a === '--interval-ms') b.intervalMs = Number(args[++i]);
    else if (a === '--each') b.each = true;
    else if (a === '--deadline-ms') b.deadlineMs = Number(args[++i]);
  }
  await runBatch(b);
}
client.close();
process.exit(0);
