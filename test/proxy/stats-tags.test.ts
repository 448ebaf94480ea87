// Tag extraction (src/proxy/stats/tags.ts) against the default-extractor cases of Envoy's own tests
// (test/common/stats/tag_extractor_impl_test.cc), named scopes, and stats_tags configuration.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { StatsStore, TagNames as N, TagProducer, regexPrefix } from '../../src/proxy/stats/index.js';

/** Tags as a sorted list of `name=value` (Envoy's tests compare tag sets as permutations). */
function tagSet(flat: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push(`${flat[i]}=${flat[i + 1]}`);
  return out.sort();
}

function check(p: TagProducer, name: string, extracted: string, tags: Record<string, string> | Array<[string, string]>): void {
  const r = p.produce(name);
  assert.equal(r.extractedName, extracted, `tag-extracted name of ${name}`);
  const want = (Array.isArray(tags) ? tags : Object.entries(tags)).map(([k, v]) => `${k}=${v}`).sort();
  assert.deepEqual(tagSet(r.tags), want, `tags of ${name}`);
}

describe('default tag extractors (Envoy cases)', () => {
  const p = new TagProducer();

  test('cluster name, response codes and classes', () => {
    check(p, 'cluster.ratelimit.upstream_rq_timeout', 'cluster.upstream_rq_timeout', { [N.CLUSTER_NAME]: 'ratelimit' });
    check(p, 'cluster.reviews.upstream_rq_200', 'cluster.upstream_rq', { [N.CLUSTER_NAME]: 'reviews', [N.RESPONSE_CODE]: '200' });
    check(p, 'cluster.reviews.upstream_rq_5xx', 'cluster.upstream_rq_xx', { [N.CLUSTER_NAME]: 'reviews', [N.RESPONSE_CODE_CLASS]: '5' });
    check(p, 'vhost.vhost_1.vcluster.vcluster_1.upstream_rq_2xx', 'vhost.vcluster.upstream_rq_xx', {
      [N.VIRTUAL_HOST]: 'vhost_1',
      [N.VIRTUAL_CLUSTER]: 'vcluster_1',
      [N.RESPONSE_CODE_CLASS]: '2',
    });
    check(p, 'vhost.vhost_1.vcluster.vcluster_1.upstream_rq_200', 'vhost.vcluster.upstream_rq', {
      [N.VIRTUAL_HOST]: 'vhost_1',
      [N.VIRTUAL_CLUSTER]: 'vcluster_1',
      [N.RESPONSE_CODE]: '200',
    });
  });

  test('listeners: IPv4, IPv6 and named addresses, ciphers, http prefix; admin is not an address', () => {
    check(p, 'listener.[__1]_0.ssl.ciphers.AES256-SHA', 'listener.ssl.ciphers', { [N.LISTENER_ADDRESS]: '[__1]_0', [N.SSL_CIPHER]: 'AES256-SHA' });
    check(p, 'listener.[2001_0db8_85a3_0000_0000_8a2e_0370_7334]_3543.ssl.ciphers.AES256-SHA', 'listener.ssl.ciphers', {
      [N.LISTENER_ADDRESS]: '[2001_0db8_85a3_0000_0000_8a2e_0370_7334]_3543',
      [N.SSL_CIPHER]: 'AES256-SHA',
    });
    check(p, 'listener.127.0.0.1_0.ssl.ciphers.AES256-SHA', 'listener.ssl.ciphers', { [N.LISTENER_ADDRESS]: '127.0.0.1_0', [N.SSL_CIPHER]: 'AES256-SHA' });
    check(p, 'listener.127.0.0.1_3012.http.http_prefix.downstream_rq_5xx', 'listener.http.downstream_rq_xx', {
      [N.HTTP_CONN_MANAGER_PREFIX]: 'http_prefix',
      [N.LISTENER_ADDRESS]: '127.0.0.1_3012',
      [N.RESPONSE_CODE_CLASS]: '5',
    });
    check(p, 'listener.127.0.0.1_15001.downstream_cx_total', 'listener.downstream_cx_total', { [N.LISTENER_ADDRESS]: '127.0.0.1_15001' });
    check(p, 'listener.virtualOutbound.downstream_cx_total', 'listener.downstream_cx_total', { [N.LISTENER_ADDRESS]: 'virtualOutbound' });
    check(p, 'listener.admin.downstream_cx_total', 'listener.admin.downstream_cx_total', {});
    check(p, 'cluster.ratelimit.ssl.ciphers.ECDHE-RSA-AES128-GCM-SHA256', 'cluster.ssl.ciphers', {
      [N.CLUSTER_NAME]: 'ratelimit',
      [N.SSL_CIPHER_SUITE]: 'ECDHE-RSA-AES128-GCM-SHA256',
    });
    check(p, 'listener.127.0.0.1_443.ssl.versions.TLSv1.2', 'listener.ssl.versions', { [N.LISTENER_ADDRESS]: '127.0.0.1_443', [N.SSL_VERSION]: 'TLSv1.2' });
    check(p, 'cluster.cluster_0.ssl.curves.P-256', 'cluster.ssl.curves', { [N.CLUSTER_NAME]: 'cluster_0', [N.SSL_CURVE]: 'P-256' });
  });

  test('mongo, ratelimit, dynamo, grpc bridge, user agent, client ssl, tcp, udp, fault, rds, worker', () => {
    check(p, 'mongo.mongo_filter.op_reply', 'mongo.op_reply', { [N.MONGO_PREFIX]: 'mongo_filter' });
    check(p, 'mongo.mongo_filter.cmd.foo_cmd.reply_size', 'mongo.cmd.reply_size', { [N.MONGO_PREFIX]: 'mongo_filter', [N.MONGO_CMD]: 'foo_cmd' });
    check(p, 'mongo.mongo_filter.collection.bar_collection.query.multi_get', 'mongo.collection.query.multi_get', {
      [N.MONGO_PREFIX]: 'mongo_filter',
      [N.MONGO_COLLECTION]: 'bar_collection',
    });
    check(p, 'mongo.mongo_filter.collection.bar_collection.callsite.baz_callsite.query.scatter_get', 'mongo.collection.callsite.query.scatter_get', {
      [N.MONGO_PREFIX]: 'mongo_filter',
      [N.MONGO_COLLECTION]: 'bar_collection',
      [N.MONGO_CALLSITE]: 'baz_callsite',
    });
    check(p, 'ratelimit.foo_ratelimiter.over_limit', 'ratelimit.over_limit', { [N.RATELIMIT_PREFIX]: 'foo_ratelimiter' });
    check(p, 'http.egress_dynamodb_iad.downstream_cx_total', 'http.downstream_cx_total', { [N.HTTP_CONN_MANAGER_PREFIX]: 'egress_dynamodb_iad' });
    check(p, 'http.egress_dynamodb_iad.dynamodb.operation.Query.upstream_rq_time', 'http.dynamodb.operation.upstream_rq_time', {
      [N.HTTP_CONN_MANAGER_PREFIX]: 'egress_dynamodb_iad',
      [N.DYNAMO_OPERATION]: 'Query',
    });
    check(p, 'http.egress_dynamodb_iad.dynamodb.table.bar_table.upstream_rq_time', 'http.dynamodb.table.upstream_rq_time', {
      [N.HTTP_CONN_MANAGER_PREFIX]: 'egress_dynamodb_iad',
      [N.DYNAMO_TABLE]: 'bar_table',
    });
    check(p, 'http.egress_dynamodb_iad.dynamodb.table.bar_table.capacity.Query.__partition_id=ABC1234', 'http.dynamodb.table.capacity', {
      [N.HTTP_CONN_MANAGER_PREFIX]: 'egress_dynamodb_iad',
      [N.DYNAMO_TABLE]: 'bar_table',
      [N.DYNAMO_OPERATION]: 'Query',
      [N.DYNAMO_PARTITION_ID]: 'ABC1234',
    });
    check(p, 'cluster.grpc_cluster.grpc.grpc_service_1.grpc_method_1.success', 'cluster.grpc.success', {
      [N.CLUSTER_NAME]: 'grpc_cluster',
      [N.GRPC_BRIDGE_SERVICE]: 'grpc_service_1',
      [N.GRPC_BRIDGE_METHOD]: 'grpc_method_1',
    });
    check(p, 'http.egress_dynamodb_iad.user_agent.ios.downstream_cx_total', 'http.user_agent.downstream_cx_total', {
      [N.HTTP_USER_AGENT]: 'ios',
      [N.HTTP_CONN_MANAGER_PREFIX]: 'egress_dynamodb_iad',
    });
    check(p, 'auth.clientssl.clientssl_prefix.auth_ip_allowlist', 'auth.clientssl.auth_ip_allowlist', { [N.CLIENTSSL_PREFIX]: 'clientssl_prefix' });
    check(p, 'tcp.tcp_prefix.downstream_flow_control_resumed_reading_total', 'tcp.downstream_flow_control_resumed_reading_total', { [N.TCP_PREFIX]: 'tcp_prefix' });
    check(p, 'udp.udp_prefix.downstream_flow_control_resumed_reading_total', 'udp.downstream_flow_control_resumed_reading_total', { [N.UDP_PREFIX]: 'udp_prefix' });
    check(p, 'http.fault_connection_manager.fault.fault_cluster.aborts_injected', 'http.fault.aborts_injected', {
      [N.HTTP_CONN_MANAGER_PREFIX]: 'fault_connection_manager',
      [N.FAULT_DOWNSTREAM_CLUSTER]: 'fault_cluster',
    });
    check(p, 'http.rds_connection_manager.rds.route_config.123.update_success', 'http.rds.update_success', {
      [N.HTTP_CONN_MANAGER_PREFIX]: 'rds_connection_manager',
      [N.RDS_ROUTE_CONFIG]: 'route_config.123',
    });
    check(p, 'listener_manager.worker_123.dispatcher.loop_duration_us', 'listener_manager.worker_dispatcher.loop_duration_us', { [N.WORKER_ID]: '123' });
    check(p, 'server.worker_0.watchdog_miss', 'server.worker_watchdog_miss', { [N.WORKER_ID]: '0' });
    check(p, 'my_prefix.http_local_rate_limit.rate_limited', 'http_local_rate_limit.rate_limited', { [N.LOCAL_HTTP_RATELIMIT_PREFIX]: 'my_prefix' });
    check(p, 'server.uptime', 'server.uptime', {});
  });

  test('tag order follows Envoy: extractors without a prefix first, then those of the first token', () => {
    const r = p.produce('cluster.reviews.upstream_rq_200');
    assert.deepEqual(r.tags, [N.RESPONSE_CODE, '200', N.CLUSTER_NAME, 'reviews']);
    assert.deepEqual(p.produce('http.outbound.downstream_rq_2xx').tags, [N.RESPONSE_CODE_CLASS, '2', N.HTTP_CONN_MANAGER_PREFIX, 'outbound']);
  });

  test('a dotted cluster name without a named scope splits at the first dot, as in Envoy', () => {
    check(p, 'cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_total', 'cluster.default.svc.cluster.local.upstream_rq_total', {
      [N.CLUSTER_NAME]: 'outbound|9080||reviews',
    });
  });

  test('regex prefixes (Envoy ExtractRegexPrefix cases)', () => {
    assert.equal(regexPrefix('^prefix(foo).'), '');
    assert.equal(regexPrefix('^prefix\\.foo'), 'prefix');
    assert.equal(regexPrefix('^prefix_optional(?=\\.)'), 'prefix_optional');
    assert.equal(regexPrefix('^notACompleteToken'), '');
    assert.equal(regexPrefix('^onlyToken$'), 'onlyToken');
    assert.equal(regexPrefix('(prefix)'), '');
    assert.equal(regexPrefix('^(prefix)'), '');
    assert.equal(regexPrefix('prefix(foo)'), '');
  });
});

describe('named scopes keep dotted names whole', () => {
  test('cluster, http and vhost scopes created on the store', () => {
    const store = new StatsStore();
    const name = 'outbound|9080||reviews.default.svc.cluster.local';
    const c = store.scope(`cluster.${name}.`).counter('upstream_rq_503');
    assert.equal(c.name, `cluster.${name}.upstream_rq_503`);
    assert.deepEqual(store.tagsOf(c), { extractedName: 'cluster.upstream_rq', tags: [N.RESPONSE_CODE, '503', N.CLUSTER_NAME, name] });

    const outlier = store.scope(`cluster.${name}.`).scope('outlier_detection').gauge('ejections_active');
    assert.deepEqual(store.tagsOf(outlier), { extractedName: 'cluster.outlier_detection.ejections_active', tags: [N.CLUSTER_NAME, name] });

    const grpc = store.scope(`cluster.${name}.`).scope('grpc.Greeter.SayHello').counter('success');
    // `*` and `$` in the grpc patterns see the cluster name as one token.
    assert.equal(store.tagsOf(grpc).extractedName, 'cluster.grpc.success');
    assert.deepEqual(tagSet(store.tagsOf(grpc).tags), [`${N.CLUSTER_NAME}=${name}`, `${N.GRPC_BRIDGE_METHOD}=SayHello`, `${N.GRPC_BRIDGE_SERVICE}=Greeter`].sort());

    const h = store.scope('http.inbound_0.0.0.0_9080.').counter('downstream_rq_2xx');
    assert.deepEqual(tagSet(store.tagsOf(h).tags), [`${N.HTTP_CONN_MANAGER_PREFIX}=inbound_0.0.0.0_9080`, `${N.RESPONSE_CODE_CLASS}=2`]);
    assert.equal(store.tagsOf(h).extractedName, 'http.downstream_rq_xx');

    const vh = store.scope('vhost.reviews.default.svc.cluster.local:9080.').counter('upstream_rq_200');
    assert.equal(vh.name, 'vhost.reviews.default.svc.cluster.local_9080.upstream_rq_200');
    assert.deepEqual(tagSet(store.tagsOf(vh).tags), [`${N.RESPONSE_CODE}=200`, `${N.VIRTUAL_HOST}=reviews.default.svc.cluster.local_9080`]);
  });

  test('listener scopes are sanitized (":" → "_") and tagged by the address regex', () => {
    const store = new StatsStore();
    const c = store.scope('listener.127.0.0.1:15001.').counter('downstream_cx_total');
    assert.equal(c.name, 'listener.127.0.0.1_15001.downstream_cx_total');
    assert.deepEqual(store.tagsOf(c), { extractedName: 'listener.downstream_cx_total', tags: [N.LISTENER_ADDRESS, '127.0.0.1_15001'] });
    const v6 = store.scope('listener.[::1]:15001.').counter('downstream_cx_total');
    assert.equal(v6.name, 'listener.[__1]_15001.downstream_cx_total');
    assert.deepEqual(store.tagsOf(v6).tags, [N.LISTENER_ADDRESS, '[__1]_15001']);
  });

  test('a scope that is not of a named kind is not pinned', () => {
    const store = new StatsStore();
    const c = store.scope('server.').counter('worker_0.watchdog_miss');
    assert.deepEqual(store.tagsOf(c), { extractedName: 'server.worker_watchdog_miss', tags: [N.WORKER_ID, '0'] });
  });
});

describe('stats_tags configuration', () => {
  test('a custom regex tag (std::regex semantics: group 1 removed, group 2 the value)', () => {
    const p = new TagProducer({ statsTags: [{ tagName: 'reporter', regex: '(reporter=\\.=(.+?);\\.;)' }] });
    check(p, 'reporter=.=destination;.;istio_requests_total', 'istio_requests_total', { reporter: 'destination' });
  });

  test('a fixed value is added to every stat', () => {
    const p = new TagProducer({ statsTags: [{ tagName: 'mesh', fixedValue: 'weft' }] });
    check(p, 'server.uptime', 'server.uptime', { mesh: 'weft' });
    check(p, 'cluster.a.upstream_rq_total', 'cluster.upstream_rq_total', { mesh: 'weft', [N.CLUSTER_NAME]: 'a' });
  });

  test('only the first matching extractor of a tag name adds a tag', () => {
    // The default cluster extractor comes first; the custom one with the same name is skipped once it matched.
    const p = new TagProducer({ statsTags: [{ tagName: N.CLUSTER_NAME, regex: '^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)' }] });
    check(p, 'cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_total', 'cluster.ns.svc.cluster.local.upstream_rq_total', { [N.CLUSTER_NAME]: 'outbound|80||a' });
  });

  test('use_all_default_tags: false keeps only the listed tags; a name without regex picks its defaults', () => {
    const istioLike = new TagProducer({
      useAllDefaultTags: false,
      statsTags: [{ tagName: 'cluster_name', regex: '^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)' }, { tagName: N.RESPONSE_CODE }],
    });
    check(istioLike, 'cluster.outbound|80||a.ns.svc.cluster.local.upstream_rq_200', 'cluster.upstream_rq', {
      cluster_name: 'outbound|80||a.ns.svc.cluster.local',
      [N.RESPONSE_CODE]: '200',
    });
    check(istioLike, 'http.outbound.downstream_rq_2xx', 'http.outbound.downstream_rq_2xx', {});
  });

  test('invalid specifiers are refused', () => {
    assert.throws(() => new TagProducer({ statsTags: [{ tagName: '' }] }), /tag_name cannot be empty/);
    assert.throws(() => new TagProducer({ statsTags: [{ tagName: 'x', regex: '(unclosed' }] }), /Invalid regex '\(unclosed'/);
    assert.throws(() => new TagProducer({ statsTags: [{ tagName: 'no such default tag' }] }), /^Error: No regex specified for tag specifier and no default regex for name: 'no such default tag'/);
    assert.throws(() => new StatsStore({ statsTags: [{ tagName: '' }] }), /tag_name cannot be empty/);
  });
});
