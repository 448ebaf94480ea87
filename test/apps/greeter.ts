/**
 * A tiny gRPC "Greeter" for tests: real @grpc/grpc-js server and client over HTTP/2, with messages encoded as
 * JSON (grpc-js takes any serializer), so no .proto is needed. Each server says who it is, so tests can count
 * which endpoint served each RPC.
 *
 * `startGreeter(name, port, { streaming: true })` also serves the streaming kinds and test behaviours of
 * `streamingGreeterService`: SayHellos (server streaming: `count` replies), Collect (client streaming: one reply
 * naming every request), Chat (bidi: one reply per request), Slow (unary answering after `delayMs`; a
 * cancellation is recorded in `cancelled`), Flaky (unary failing with UNAVAILABLE until the `name` has been seen
 * `failures` + 1 times; `attempts` counts calls per name).
 */
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import type { ServiceDefinition, ServerUnaryCall, sendUnaryData, ServerWritableStream, ServerReadableStream, ServerDuplexStream } from '@grpc/grpc-js';

export interface HelloRequest { name: string }
export interface HelloReply { message: string; server: string }

const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString('utf8')),
};

export const greeterService: ServiceDefinition = {
  SayHello: {
    path: '/helloworld.Greeter/SayHello',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

export interface Greeter {
  name: string;
  port: number;
  calls: number;
  /** Calls per request name (Flaky). */
  attempts: Map<string, number>;
  /** Names of Slow calls the client (or the proxy) cancelled. */
  cancelled: string[];
  close(): Promise<void>;
}

export interface StreamRequest {
  name: string;
  count?: number;
  delayMs?: number;
  failures?: number;
}

const method = (path: string, requestStream: boolean, responseStream: boolean) => ({
  path,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});

/** The Greeter with the streaming kinds and test behaviours (see the module comment). */
export const streamingGreeterService: ServiceDefinition = {
  SayHello: greeterService.SayHello!,
  SayHellos: method('/helloworld.Greeter/SayHellos', false, true),
  Collect: method('/helloworld.Greeter/Collect', true, false),
  Chat: method('/helloworld.Greeter/Chat', true, true),
  Slow: method('/helloworld.Greeter/Slow', false, false),
  Flaky: method('/helloworld.Greeter/Flaky', false, false),
};

/** Starts a Greeter on 127.0.0.1 (port 0 = any free port). */
export async function startGreeter(name: string, port = 0, opts: { streaming?: boolean } = {}): Promise<Greeter> {
  const server = new Server();
  const g: Greeter = { name, port: 0, calls: 0, attempts: new Map(), cancelled: [], close: async () => {} };
  const sayHello = (call: ServerUnaryCall<HelloRequest, HelloReply>, cb: sendUnaryData<HelloReply>) => {
    g.calls++;
    if (call.request?.name === 'fail') return cb({ code: status.INTERNAL, details: 'asked to fail' });
    cb(null, { message: `hello ${call.request?.name ?? ''}`, server: name });
  };
  if (!opts.streaming) server.addService(greeterService, { SayHello: sayHello });
  else {
    server.addService(streamingGreeterService, {
      SayHello: sayHello,
      SayHellos(call: ServerWritableStream<StreamRequest, HelloReply>) {
        g.calls++;
        for (let i = 0; i < (call.request.count ?? 1); i++) call.write({ message: `hello ${call.request.name} #${i}`, server: name });
        call.end();
      },
      Collect(call: ServerReadableStream<StreamRequest, HelloReply>, cb: sendUnaryData<HelloReply>) {
        g.calls++;
        const names: string[] = [];
        call.on('data', (r: StreamRequest) => names.push(r.name));
        call.on('end', () => cb(null, { message: `hello ${names.join(',')}`, server: name }));
      },
      Chat(call: ServerDuplexStream<StreamRequest, HelloReply>) {
        g.calls++;
        call.on('data', (r: StreamRequest) => call.write({ message: `hello ${r.name}`, server: name }));
        call.on('end', () => call.end());
      },
      Slow(call: ServerUnaryCall<StreamRequest, HelloReply>, cb: sendUnaryData<HelloReply>) {
        g.calls++;
        const t = setTimeout(() => cb(null, { message: `slow ${call.request.name}`, server: name }), call.request.delayMs ?? 0);
        call.on('cancelled', () => {
          clearTimeout(t);
          g.cancelled.push(call.request.name);
        });
      },
      Flaky(call: ServerUnaryCall<StreamRequest, HelloReply>, cb: sendUnaryData<HelloReply>) {
        g.calls++;
        const n = (g.attempts.get(call.request.name) ?? 0) + 1;
        g.attempts.set(call.request.name, n);
        if (n <= (call.request.failures ?? 0)) return cb({ code: status.UNAVAILABLE, details: `attempt ${n} fails` });
        cb(null, { message: `flaky ${call.request.name} after ${n}`, server: name });
      },
    });
  }
  g.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  g.close = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  return g;
}
