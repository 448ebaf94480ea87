// The hand-written ADS response encoding (src/controlplane/ads/encode.ts) gives exactly toBinary's bytes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { create, toBinary } from '@bufbuild/protobuf';
import { pack, TypeUrl } from '../../src/xds/index.js';
import { ClusterSchema } from '../../src/xds/gen/envoy/config/cluster/v3/cluster_pb.js';
import { ClusterLoadAssignmentSchema } from '../../src/xds/gen/envoy/config/endpoint/v3/endpoint_pb.js';
import { DeltaDiscoveryResponseSchema, DiscoveryResponseSchema } from '../../src/xds/gen/envoy/service/discovery/v3/discovery_pb.js';
import { versioned } from '../../src/controlplane/cache/snapshot.js';
import { encodeDeltaResponse, encodeSotwResponse } from '../../src/controlplane/ads/encode.js';

const resources = [
  versioned('a', pack(ClusterSchema, { name: 'a', connectTimeout: { seconds: 10n } })),
  // An empty message packs to an Any without value bytes.
  versioned('', pack(ClusterSchema, {})),
  versioned('ünïcode|ø', pack(ClusterSchema, { name: 'ünïcode|ø' })),
  // A resource big enough for multi-byte length prefixes.
  versioned('big', pack(ClusterLoadAssignmentSchema, { clusterName: 'x'.repeat(70_000) })),
];

test('SotW responses encode exactly as toBinary does', () => {
  for (const [items, versionInfo, nonce] of [
    [resources, 'v1', '1a'],
    [[], '', ''],
    [resources.slice(0, 1), 'ü', 'z'],
  ] as const) {
    const want = toBinary(DiscoveryResponseSchema, create(DiscoveryResponseSchema, { versionInfo, typeUrl: TypeUrl.Cluster, nonce, resources: items.map((r) => r.resource) }));
    const got = encodeSotwResponse({ versionInfo, typeUrl: TypeUrl.Cluster, nonce, resources: items });
    assert.deepEqual(new Uint8Array(got), want);
  }
});

test('Delta responses encode exactly as toBinary does', () => {
  for (const [items, removed, version, nonce] of [
    [resources, ['gone', '', 'ø'], '7', 'n1'],
    [[], [], '', ''],
    [resources.slice(2), [], 'v', 'n2'],
  ] as const) {
    const want = toBinary(
      DeltaDiscoveryResponseSchema,
      create(DeltaDiscoveryResponseSchema, {
        systemVersionInfo: version,
        typeUrl: TypeUrl.Cluster,
        nonce,
        removedResources: [...removed],
        resources: items.map((r) => ({ name: r.name, version: r.version, resource: r.resource })),
      }),
    );
    const got = encodeDeltaResponse({ systemVersionInfo: version, typeUrl: TypeUrl.Cluster, nonce, resources: items, removedResources: removed });
    assert.deepEqual(new Uint8Array(got), want);
  }
});
