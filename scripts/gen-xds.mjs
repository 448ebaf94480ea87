#!/usr/bin/env node
// Generates TypeScript types and codecs for the Envoy v3 API (and its imports) with protobuf-es.
// The .proto sources come from the @grpc/grpc-js-xds package (its deps/ folder); nothing is committed:
// the merged proto tree goes to .build/proto and the generated code to src/xds/gen (both git-ignored).
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(join(root, 'package.json'));
const depsDir = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
const protoDir = join(root, '.build', 'proto');
const outDir = join(root, 'src', 'xds', 'gen');

// The Envoy API packages Weft uses. Everything they import is generated too (include_imports).
const paths = [
  'envoy/config/core/v3', 'envoy/config/listener/v3', 'envoy/config/route/v3', 'envoy/config/cluster/v3',
  'envoy/config/endpoint/v3', 'envoy/config/accesslog/v3', 'envoy/config/rbac/v3', 'envoy/config/bootstrap/v3',
  'envoy/config/trace/v3/http_tracer.proto', 'envoy/config/trace/v3/zipkin.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/admin/v3',
  'envoy/service/discovery/v3', 'envoy/service/secret/v3', 'envoy/service/auth/v3', 'envoy/service/ratelimit/v3',
  'envoy/service/health/v3', 'envoy/service/status/v3',
  'envoy/extensions/transport_sockets/tls/v3', 'envoy/extensions/transport_sockets/raw_buffer/v3',
  'envoy/extensions/filters/network/http_connection_manager/v3', 'envoy/extensions/filters/network/tcp_proxy/v3',
  'envoy/extensions/filters/network/rbac/v3', 'envoy/extensions/filters/network/redis_proxy/v3',
  'envoy/extensions/filters/network/ext_authz/v3', 'envoy/extensions/filters/network/local_ratelimit/v3',
  'envoy/extensions/filters/http/router/v3', 'envoy/extensions/filters/http/fault/v3',
  'envoy/extensions/filters/http/rbac/v3', 'envoy/extensions/filters/http/ext_authz/v3',
  'envoy/extensions/filters/http/ratelimit/v3', 'envoy/extensions/filters/http/local_ratelimit/v3',
  'envoy/extensions/filters/http/jwt_authn/v3', 'envoy/extensions/filters/http/wasm/v3',
  'envoy/extensions/filters/http/health_check/v3', 'envoy/extensions/filters/http/cors/v3',
  'envoy/extensions/filters/listener/tls_inspector/v3', 'envoy/extensions/filters/listener/http_inspector/v3',
  'envoy/extensions/filters/listener/original_dst/v3',
  'envoy/extensions/access_loggers/file/v3', 'envoy/extensions/access_loggers/stream/v3',
  'envoy/extensions/clusters/aggregate/v3', 'envoy/extensions/upstreams/http/v3',
  'envoy/extensions/load_balancing_policies/round_robin/v3',
  'envoy/extensions/load_balancing_policies/least_request/v3',
  'envoy/extensions/load_balancing_policies/ring_hash/v3',
  'envoy/extensions/load_balancing_policies/maglev/v3', 'envoy/extensions/load_balancing_policies/random/v3',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3',
  'envoy/extensions/load_balancing_policies/client_side_weighted_round_robin/v3',
  'envoy/extensions/load_balancing_policies/pick_first/v3',
  'envoy/extensions/retry/host/previous_hosts/v3', 'envoy/extensions/retry/priority/previous_priorities/v3',
  'envoy/extensions/request_id/uuid/v3',
  'envoy/type/v3', 'envoy/type/matcher/v3',
];

// Skip the work when inputs did not change (the stamp hashes the proto tree's package version and this script).
const stamp = createHash('sha256')
  .update(readFileSync(join(dirname(depsDir), 'package.json')))
  .update(readFileSync(fileURLToPath(import.meta.url)))
  .digest('hex');
const stampFile = join(outDir, '.stamp');
if (existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) process.exit(0);

rmSync(protoDir, { recursive: true, force: true });
mkdirSync(protoDir, { recursive: true });
for (const [from, dirs] of [
  ['envoy-api', ['envoy']],
  ['googleapis', ['google']],
  ['xds', ['xds', 'udpa']],
  ['protoc-gen-validate', ['validate']],
]) {
  for (const d of dirs) cpSync(join(depsDir, from, d), join(protoDir, d), { recursive: true });
}
// protoc-gen-validate's validate.proto in the package predates StringRules.ignore_empty (field 26), which
// current Envoy protos use in their (validate.rules) options. Add the field so option values resolve.
const validateProto = join(protoDir, 'validate', 'validate.proto');
const v = readFileSync(validateProto, 'utf8');
if (!/ignore_empty/.test(v.split('message StringRules {')[1]?.split('\nmessage ')[0] ?? '')) {
  writeFileSync(validateProto, v.replace('message StringRules {', 'message StringRules {\n    optional bool ignore_empty = 26;'));
}
writeFileSync(join(protoDir, 'buf.yaml'), 'version: v2\n');
writeFileSync(
  join(root, '.build', 'buf.gen.yaml'),
  [
    'version: v2',
    'clean: true',
    'plugins:',
    `  - local: ["node", ${JSON.stringify(require.resolve('@bufbuild/protoc-gen-es/bin/protoc-gen-es'))}]`,
    `    out: ${JSON.stringify(outDir)}`,
    '    opt: [target=ts, import_extension=js]',
    '    include_imports: true',
    '',
  ].join('\n'),
);
const bufBin = require.resolve('@bufbuild/buf/bin/buf');
const args = ['generate', protoDir, '--template', join(root, '.build', 'buf.gen.yaml')];
for (const p of paths) {
  if (!existsSync(join(protoDir, p))) throw new Error(`gen-xds: ${p} is not in ${depsDir}`);
  args.push('--path', join(protoDir, p));
}
const t0 = Date.now();
execFileSync(process.execPath, [bufBin, ...args], { stdio: 'inherit', cwd: root });
// One registry of every generated file, so Any values and JSON (config_dump) resolve any type by its URL.
const files = [];
const walk = (d) => {
  for (const e of readdirSync(d).sort()) {
    const f = join(d, e);
    if (statSync(f).isDirectory()) walk(f);
    else if (f.endsWith('_pb.ts')) files.push(f.slice(outDir.length + 1));
  }
};
walk(outDir);
const lines = ['// Generated by scripts/gen-xds.mjs. Do not edit.', "import { createRegistry } from '@bufbuild/protobuf';"];
const names = [];
for (const f of files) {
  const src = readFileSync(join(outDir, f), 'utf8');
  const m = /export const (file_[A-Za-z0-9_]+): GenFile/.exec(src);
  if (!m) continue;
  names.push(m[1]);
  lines.push(`import { ${m[1]} } from './${f.replace(/\.ts$/, '.js')}';`);
}
lines.push('', `export const generatedFiles = [${names.join(', ')}];`, 'export const registry = createRegistry(...generatedFiles);', '');
writeFileSync(join(outDir, 'registry.ts'), lines.join('\n'));
const n = files.length;
writeFileSync(stampFile, stamp);
console.log(`gen-xds: ${n} files in src/xds/gen (${Date.now() - t0} ms)`);
