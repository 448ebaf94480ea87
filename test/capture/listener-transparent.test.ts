// The proxy listener features transparent mode needs (src/proxy/listener/), over real sockets where no root is
// needed: destination_port filter chain matching (exact port first, then the chain without a port, then
// default_filter_chain), bind_to_port false (not bound), use_original_dst / original_dst options, and the
// ConfigErrors for what is not supported. The hand-off of redirected connections needs iptables: see
// e2e-capture.test.ts.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { create, type MessageInitShape } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { ListenerSchema, type Listener } from '../../src/xds/gen/envoy/config/listener/v3/listener_pb.js';
import { FilterChainSchema, ListenerFilterSchema } from '../../src/xds/gen/envoy/config/listener/v3/listener_components_pb.js';
import { TcpProxySchema } from '../../src/xds/gen/envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy_pb.js';
import { OriginalDstSchema } from '../../src/xds/gen/envoy/extensions/filters/listener/original_dst/v3/original_dst_pb.js';
import { compileListener, ListenerManager, type ListenerContext } from '../../src/proxy/listener/listener.js';
import { ConfigError } from '../../src/proxy/config-error.js';
import { originalDstSupport } from '../../src/proxy/listener/original-dst.js';
import { compileCluster, type ClusterRuntime } from '../../src/proxy/upstream/cluster/index.js';
import { freePort } from '../helpers/mesh-processes.js';
import { cla, edsCluster } from '../proxy/upstream-helpers.js';

type ChainInit = MessageInitShape<typeof FilterChainSchema>;

function tcpChain(cluster: string, destinationPort?: number, match?: ChainInit['filterChainMatch']): ChainInit {
  return {
    filterChainMatch: match ?? (destinationPort !== undefined ? { destinationPort } : undefined),
    filters: [{ name: 'envoy.filters.network.tcp_proxy', configType: { case: 'typedConfig', value: pack(TcpProxySchema, { statPrefix: cluster, clusterSpecifier: { case: 'cluster', value: cluster } }) } }],
  };
}

function listenerProto(port: number, chains: ChainInit[], more: (l: Listener) => void = () => undefined): Listener {
  const l = create(ListenerSchema, {
    name: 'l',
    address: { address: { case: 'socketAddress', value: { address: '127.0.0.1', portSpecifier: { case: 'portValue', value: port } } } },
    filterChains: chains,
  });
  more(l);
  return l;
}

function ctx(clusters: Record<string, ClusterRuntime> = {}): ListenerContext {
  return { rds: () => ({ current: undefined }), inlineRoutes: () => ({ current: undefined }), cluster: (n) => (clusters[n] ? ({ runtime: clusters[n] } as never) : undefined), warn: () => undefined };
}

function configError(f: () => unknown, re: RegExp): void {
  assert.throws(f, (e: unknown) => e instanceof ConfigError && re.test(e.message));
}

/** An upstream answering every connection with its name. */
async function upstream(name: string): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => s.end(name));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port };
}

function readAll(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1');
    let out = '';
    c.on('data', (d: Buffer) => (out += d.toString()));
    c.on('end', () => resolve(out));
    c.on('error', reject);
  });
}

describe('listeners for transparent mode', () => {
  const servers: Server[] = [];
  after(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  });

  test('chain choice: the exact destination_port chain, else the chain without one, else default_filter_chain', () => {
    const l = compileListener(listenerProto(0, [tcpChain('any'), tcpChain('p9080', 9080)]), ctx());
    assert.deepEqual(l.select(9080, '')?.tcpProxy?.clusterNames, ['p9080']);
    assert.deepEqual(l.select(1234, '')?.tcpProxy?.clusterNames, ['any']);
    const d = compileListener(listenerProto(0, [tcpChain('p9080', 9080)], (l) => (l.defaultFilterChain = create(FilterChainSchema, tcpChain('dflt')))), ctx());
    assert.deepEqual(d.select(1, '')?.tcpProxy?.clusterNames, ['dflt']);
    const none = compileListener(listenerProto(0, [tcpChain('p9080', 9080)]), ctx());
    assert.equal(none.select(1, ''), undefined, 'no match: the connection is closed');
  });

  test('bind_to_port, use_original_dst and the original_dst listener filter are read', { skip: originalDstSupport() }, () => {
    const plain = compileListener(listenerProto(0, [tcpChain('a')]), ctx());
    assert.deepEqual(plain.options, { bindToPort: true, useOriginalDst: false, restoresDestination: false, inspectTls: false });
    const virt = compileListener(listenerProto(15001, [tcpChain('a')], (l) => (l.useOriginalDst = true)), ctx());
    assert.deepEqual(virt.options, { bindToPort: true, useOriginalDst: true, restoresDestination: true, inspectTls: false });
    const inbound = compileListener(
      listenerProto(15006, [tcpChain('a')], (l) => l.listenerFilters.push(create(ListenerFilterSchema, { name: 'envoy.filters.listener.original_dst', configType: { case: 'typedConfig', value: pack(OriginalDstSchema, {}) } }))),
      ctx(),
    );
    assert.deepEqual(inbound.options, { bindToPort: true, useOriginalDst: false, restoresDestination: true, inspectTls: false });
    const unbound = compileListener(listenerProto(9080, [tcpChain('a')], (l) => (l.bindToPort = false)), ctx());
    assert.equal(unbound.options.bindToPort, false);
  });

  test('unsupported matching and listener filters are ConfigErrors naming the field', () => {
    configError(() => compileListener(listenerProto(0, [tcpChain('a', undefined, { sourcePorts: [1234] })]), ctx()), /filter_chains\[0\]\.filter_chain_match\.source_ports: is not supported/);
    configError(() => compileListener(listenerProto(0, [tcpChain('a', 80), tcpChain('b', 80)]), ctx()), /filter_chains\[1\]\.filter_chain_match: multiple filter chains with the same matching rules/);
    configError(
      () =>
        compileListener(
          listenerProto(0, [tcpChain('a')], (l) => l.listenerFilters.push(create(ListenerFilterSchema, { name: 'envoy.filters.listener.proxy_protocol' }))),
          ctx(),
        ),
      /listener_filters\[0\]: listener filter envoy.filters.listener.proxy_protocol is not supported/,
    );
    configError(() => compileListener(listenerProto(0, []), ctx()), /filter_chains: at least one filter chain/);
  });

  test('over real sockets: the listener port picks its chain; a bind_to_port false listener is not bound', async () => {
    const a = await upstream('exact');
    const b = await upstream('other');
    servers.push(a.server, b.server);
    const clusters: Record<string, ClusterRuntime> = {};
    for (const [name, port] of [['exact', a.port], ['other', b.port]] as const) {
      const rt = compileCluster(edsCluster(name));
      rt.updateHosts(cla(name, [{ hosts: [`127.0.0.1:${port}`] }]));
      rt.start();
      clusters[name] = rt;
    }
    const port = await freePort();
    const unboundPort = await freePort();
    const m = new ListenerManager(1000);
    try {
      await m.apply(compileListener(listenerProto(port, [tcpChain('other'), tcpChain('exact', port)]), ctx(clusters)));
      assert.equal(await readAll(port), 'exact');
      await m.apply(compileListener(listenerProto(unboundPort, [tcpChain('other')], (l) => ((l.bindToPort = false), (l.name = 'unbound'))), ctx(clusters)));
      assert.ok(m.names().includes('unbound'));
      await assert.rejects(readAll(unboundPort), /ECONNREFUSED/);
    } finally {
      await m.close(500);
      for (const c of Object.values(clusters)) c.close();
    }
  });
});
