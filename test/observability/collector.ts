// A trace collector for tests: one node:http server that accepts Zipkin v2 JSON (POST /api/v2/spans) and OTLP/HTTP
// protobuf (POST /v1/traces), and keeps every span it received in one shape. The OTLP body is read with a generic
// protobuf wire-format reader written here from the wire format rules (varint / 64-bit / length-delimited /
// 32-bit fields), independently of the proxy's encoder, and interpreted with the OTLP field numbers.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface SeenSpan {
  format: 'zipkin' | 'otlp';
  traceId: string;
  id: string;
  parentId: string;
  name: string;
  kind: string;
  service: string;
  tags: Record<string, string>;
  /** OTLP status code (2 = ERROR), 0 when unset or Zipkin. */
  statusCode: number;
  startUs: number;
  durationUs: number;
}

/** field number → raw values (Buffer for length-delimited, bigint for varint / fixed). */
type Fields = Map<number, Array<Buffer | bigint>>;

function readVarint(b: Buffer, at: { i: number }): bigint {
  let shift = 0n;
  let v = 0n;
  for (;;) {
    if (at.i >= b.length) throw new Error('truncated varint');
    const byte = b[at.i++]!;
    v |= BigInt(byte & 0x7f) << shift;
    if ((byte & 0x80) === 0) return v;
    shift += 7n;
  }
}

/** Splits one protobuf message into its fields. */
export function wireFields(b: Buffer): Fields {
  const out: Fields = new Map();
  const at = { i: 0 };
  while (at.i < b.length) {
    const key = Number(readVarint(b, at));
    const field = key >>> 3;
    const wt = key & 7;
    let v: Buffer | bigint;
    if (wt === 0) v = readVarint(b, at);
    else if (wt === 1) {
      v = b.readBigUInt64LE(at.i);
      at.i += 8;
    } else if (wt === 2) {
      const len = Number(readVarint(b, at));
      v = b.subarray(at.i, at.i + len);
      at.i += len;
    } else if (wt === 5) {
      v = BigInt(b.readUInt32LE(at.i));
      at.i += 4;
    } else throw new Error(`unexpected wire type ${wt}`);
    const list = out.get(field) ?? [];
    list.push(v);
    out.set(field, list);
  }
  return out;
}

const bytes = (f: Fields, n: number): Buffer[] => (f.get(n) ?? []) as Buffer[];
const str = (f: Fields, n: number): string => bytes(f, n)[0]?.toString('utf8') ?? '';
const num = (f: Fields, n: number): bigint => (f.get(n)?.[0] as bigint | undefined) ?? 0n;

function keyValues(list: Buffer[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of list) {
    const f = wireFields(kv);
    const any = bytes(f, 2)[0];
    out[str(f, 1)] = any !== undefined ? str(wireFields(any), 1) : '';
  }
  return out;
}

const OTLP_KINDS: Record<number, string> = { 1: 'INTERNAL', 2: 'SERVER', 3: 'CLIENT', 4: 'PRODUCER', 5: 'CONSUMER' };

/** ExportTraceServiceRequest → spans. */
export function decodeOtlp(body: Buffer): SeenSpan[] {
  const spans: SeenSpan[] = [];
  for (const rs of bytes(wireFields(body), 1)) {
    const rsf = wireFields(rs);
    const resource = bytes(rsf, 1)[0];
    const service = resource !== undefined ? (keyValues(bytes(wireFields(resource), 1))['service.name'] ?? '') : '';
    for (const ss of bytes(rsf, 2)) {
      for (const sp of bytes(wireFields(ss), 2)) {
        const f = wireFields(sp);
        const start = num(f, 7);
        const end = num(f, 8);
        const status = bytes(f, 15)[0];
        spans.push({
          format: 'otlp',
          traceId: bytes(f, 1)[0]!.toString('hex'),
          id: bytes(f, 2)[0]!.toString('hex'),
          parentId: bytes(f, 4)[0]?.toString('hex') ?? '',
          name: str(f, 5),
          kind: OTLP_KINDS[Number(num(f, 6))] ?? 'UNSPECIFIED',
          service,
          tags: keyValues(bytes(f, 9)),
          statusCode: status !== undefined ? Number(num(wireFields(status), 3)) : 0,
          startUs: Number(start / 1000n),
          durationUs: Number((end - start) / 1000n),
        });
      }
    }
  }
  return spans;
}

export class TraceCollector {
  readonly spans: SeenSpan[] = [];
  /** Content types of the requests received, per path. */
  readonly requests: Array<{ path: string; contentType: string }> = [];
  private server!: Server;
  port = 0;
  /** When set, requests are never answered (a stuck collector); `held` counts the requests left unanswered. */
  hang = false;
  held = 0;

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (this.hang) {
          this.held++;
          return;
        }
        const body = Buffer.concat(chunks);
        this.requests.push({ path: req.url ?? '', contentType: String(req.headers['content-type'] ?? '') });
        if (req.url === '/api/v2/spans') {
          for (const s of JSON.parse(body.toString('utf8')) as Array<Record<string, any>>) {
            this.spans.push({
              format: 'zipkin',
              traceId: s.traceId,
              id: s.id,
              parentId: s.parentId ?? '',
              name: s.name,
              kind: s.kind,
              service: s.localEndpoint?.serviceName ?? '',
              tags: s.tags ?? {},
              statusCode: 0,
              startUs: s.timestamp,
              durationUs: s.duration,
            });
          }
          res.writeHead(202).end();
        } else if (req.url === '/v1/traces') {
          this.spans.push(...decodeOtlp(body));
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } else res.writeHead(404).end();
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  trace(traceId: string): SeenSpan[] {
    return this.spans.filter((s) => s.traceId === traceId);
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
