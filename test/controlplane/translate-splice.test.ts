// Encoding with shared parts' bytes made once (src/controlplane/translate/splice.ts): the same bytes as toBinary,
// whatever fields surround the spliced list, and the same errors.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { WireType } from '@bufbuild/protobuf/wire';
import { SplicingEncoder } from '../../src/controlplane/translate/splice.js';
import { VirtualHostSchema } from '../../src/xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';

function same<D extends DescMessage>(enc: SplicingEncoder, schema: D, msg: MessageShape<D>, what: string): void {
  assert.deepEqual(Buffer.from(enc.encode(schema, msg)), Buffer.from(toBinary(schema, msg)), what);
}

describe('splicing encoder', () => {
  test('RouteConfigurations: the bytes toBinary makes, with virtual hosts shared between configurations and fields after the list', () => {
    const enc = new SplicingEncoder();
    const vh = (name: string, domains: string[]) =>
      create(VirtualHostSchema, { name, domains, routes: [{ match: { pathSpecifier: { case: 'prefix', value: '/' } }, action: { case: 'route', value: { clusterSpecifier: { case: 'cluster', value: `outbound|80||${name}` } } } }], includeRequestAttemptCount: true });
    const shared = [vh('a.ns.svc.cluster.local:80', ['a.ns.svc.cluster.local', 'a.ns']), vh('b.ns.svc.cluster.local:80', ['b.ns.svc.cluster.local'])];
    const one = create(RouteConfigurationSchema, { name: 'outbound', virtualHosts: [vh('local:80', ['local']), ...shared], validateClusters: false, requestHeadersToAdd: [{ header: { key: 'x', value: 'y' } }] });
    const two = create(RouteConfigurationSchema, { name: 'outbound', virtualHosts: [vh('other:80', ['other']), ...shared], ignorePortInHostMatching: true });
    for (const round of [1, 2]) {
      same(enc, RouteConfigurationSchema, one, `one, round ${round}`);
      same(enc, RouteConfigurationSchema, two, `two, round ${round}`);
    }
    same(enc, RouteConfigurationSchema, create(RouteConfigurationSchema, { name: 'empty' }), 'without virtual hosts');
  });

  test('unknown fields go last, as toBinary writes them; the message is left as it was', () => {
    const enc = new SplicingEncoder();
    const rc = create(RouteConfigurationSchema, { name: 'u', virtualHosts: [create(VirtualHostSchema, { name: 'a', domains: ['a'] })], validateClusters: true });
    rc.$unknown = [{ no: 999, wireType: WireType.Varint, data: new Uint8Array([7]) }];
    same(enc, RouteConfigurationSchema, rc, 'unknown fields');
    assert.equal(rc.$unknown.length, 1);
    assert.equal(rc.virtualHosts.length, 1);
    assert.equal(rc.validateClusters, true);
  });

  test('other types are toBinary as is', () => {
    const enc = new SplicingEncoder();
    same(enc, ClusterSchema, create(ClusterSchema, { name: 'c', connectTimeout: { seconds: 1n } }), 'a cluster');
  });

  test('a value toBinary refuses is refused too, in a shared part as in the rest', () => {
    const enc = new SplicingEncoder();
    const bad = create(VirtualHostSchema, { name: 'bad', domains: ['bad'], perRequestBufferLimitBytes: -1 });
    const inPart = create(RouteConfigurationSchema, { name: 'x', virtualHosts: [bad] });
    assert.throws(() => toBinary(RouteConfigurationSchema, inPart));
    assert.throws(() => enc.encode(RouteConfigurationSchema, inPart));
    const inRest = create(RouteConfigurationSchema, { name: 'x', virtualHosts: [create(VirtualHostSchema, { name: 'ok' })], maxDirectResponseBodySizeBytes: -1 });
    assert.throws(() => toBinary(RouteConfigurationSchema, inRest));
    assert.throws(() => enc.encode(RouteConfigurationSchema, inRest));
  });
});
