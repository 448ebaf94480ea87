#!/usr/bin/env node
// An example external authorizer for Weft's (and Envoy's) ext_authz filters: a small gRPC server implementing
// envoy.service.auth.v3.Authorization/Check with @grpc/grpc-js and the codecs Weft generates (run `npm run build`
// first). See README.md.
//
//   node examples/ext-authz/authorizer.mjs [--port 9000] [--host 127.0.0.1] [--deny-tcp]
//
// HTTP checks: header `x-ext-authz: allow` → OK, and the request gets `x-ext-authz-check-result: allowed`; any
// other value (or none) → denied with status `x-ext-authz-status` (a number, default 403), body
// `denied by ext_authz for x-ext-authz=<value>` and header `x-ext-authz-check-result: denied`.
// TCP checks (no HTTP request in the CheckRequest): OK, or denied with --deny-tcp.
// Prints `ext-authz listening on HOST:PORT` once serving; every decision is logged on stderr.
import { Server, ServerCredentials, status as GrpcStatus } from '@grpc/grpc-js';
import { create } from '@bufbuild/protobuf';
import { authorizationService } from '../../dist/src/xds/auth-service.js';
import { CheckResponseSchema } from '../../dist/src/xds/gen/envoy/service/auth/v3/external_auth_pb.js';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : dflt;
};
const port = Number(opt('--port', '9000'));
const host = opt('--host', '127.0.0.1');
const denyTcp = args.includes('--deny-tcp');

const OK = 0;
const PERMISSION_DENIED = 7;

function header(name, value) {
  return { header: { key: name, value } };
}

function check(req) {
  const attrs = req.attributes;
  const http = attrs?.request?.http;
  const source = attrs?.source?.address?.address;
  const from = source?.case === 'socketAddress' ? `${source.value.address}:${source.value.portSpecifier.value}` : '?';
  if (http === undefined) {
    process.stderr.write(`tcp check from ${from} (${attrs?.source?.principal || 'no principal'}): ${denyTcp ? 'denied' : 'allowed'}\n`);
    return create(CheckResponseSchema, { status: { code: denyTcp ? PERMISSION_DENIED : OK } });
  }
  const v = http.headers['x-ext-authz'];
  if (v === 'allow') {
    process.stderr.write(`http check ${http.method} ${http.path} from ${from}: allowed\n`);
    return create(CheckResponseSchema, {
      status: { code: OK },
      httpResponse: { case: 'okResponse', value: { headers: [header('x-ext-authz-check-result', 'allowed')] } },
    });
  }
  const code = Number(http.headers['x-ext-authz-status'] ?? 403) || 403;
  process.stderr.write(`http check ${http.method} ${http.path} from ${from}: denied (${code})\n`);
  return create(CheckResponseSchema, {
    status: { code: PERMISSION_DENIED },
    httpResponse: {
      case: 'deniedResponse',
      value: { status: { code }, body: `denied by ext_authz for x-ext-authz=${v ?? ''}`, headers: [header('x-ext-authz-check-result', 'denied')] },
    },
  });
}

const server = new Server();
server.addService(authorizationService, {
  Check(call, callback) {
    try {
      callback(null, check(call.request));
    } catch (e) {
      callback({ code: GrpcStatus.INTERNAL, details: String(e) });
    }
  },
});
server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`cannot listen on ${host}:${port}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`ext-authz listening on ${host}:${bound}\n`);
});
const stop = () => server.tryShutdown(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
