/**
 * A tiny gRPC "Greeter" for tests: real @grpc/grpc-js server and client over HTTP/2, with messages encoded as
 * JSON (grpc-js takes any serializer), so no .proto is needed. Each server says who it is, so tests can count
 * which endpoint served each RPC.
 */
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import type { ServiceDefinition, ServerUnaryCall, sendUnaryData } from '@grpc/grpc-js';

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
  close(): Promise<void>;
}

/** Starts a Greeter on 127.0.0.1 (port 0 = any free port). */
export async function startGreeter(name: string, port = 0): Promise<Greeter> {
  const server = new Server();
  const g: Greeter = { name, port: 0, calls: 0, close: async () => {} };
  server.addService(greeterService, {
    SayHello(call: ServerUnaryCall<HelloRequest, HelloReply>, cb: sendUnaryData<HelloReply>) {
      g.calls++;
      if (call.request?.name === 'fail') return cb({ code: status.INTERNAL, details: 'asked to fail' });
      cb(null, { message: `hello ${call.request?.name ?? ''}`, server: name });
    },
  });
  g.port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  g.close = () => new Promise((resolve) => server.tryShutdown(() => resolve()));
  return g;
}
