// The HTTP connection manager's compiled timeouts (Envoy's defaults, Weft's 10 s request_headers_timeout, 0 = off)
// and upgrade_configs (which Upgrade types pass, with route-level overrides as Envoy's createUpgradeFilterChain),
// and their ConfigErrors. The behaviour over sockets is in e2e-timeouts / e2e-upgrade.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { create } from '@bufbuild/protobuf';
import { pack } from '../../src/xds/index.js';
import { HttpProtocolOptionsSchema } from '../../src/xds/gen/envoy/config/core/v3/protocol_pb.js';
import {
  HttpConnectionManager_UpgradeConfigSchema,
  HttpConnectionManagerSchema,
  HttpFilterSchema,
  type HttpConnectionManager,
} from '../../src/xds/gen/envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager_pb.js';
import { RouterSchema } from '../../src/xds/gen/envoy/extensions/filters/http/router/v3/router_pb.js';
import { RouteConfigurationSchema } from '../../src/xds/gen/envoy/config/route/v3/route_pb.js';
import { compileHcm, DEFAULT_REQUEST_HEADERS_TIMEOUT_MS, type HcmContext } from '../../src/proxy/http/server/hcm.js';
import { ConfigError } from '../../src/proxy/config-error.js';
import { durationOf } from '../helpers/static-ads.js';

const ctx: HcmContext = {
  listener: 'l',
  field: 'filter_chains[0].filters[0].typed_config',
  rds: () => ({ current: undefined }),
  inlineRoutes: () => ({ current: undefined }),
  cluster: () => undefined,
  warn: () => undefined,
};

function hcm(edit: (h: HttpConnectionManager) => void = () => undefined): HttpConnectionManager {
  const h = create(HttpConnectionManagerSchema, {
    statPrefix: 's',
    httpFilters: [create(HttpFilterSchema, { name: 'envoy.filters.http.router', configType: { case: 'typedConfig', value: pack(RouterSchema, {}) } })],
    routeSpecifier: { case: 'routeConfig', value: create(RouteConfigurationSchema, { name: 'r' }) },
  });
  edit(h);
  return h;
}

describe('connection manager timeouts', () => {
  test("unset: Envoy's defaults, and Weft's 10 s request_headers_timeout", () => {
    const t = compileHcm(hcm(), ctx).timeouts;
    assert.deepEqual(t, { requestHeadersMs: DEFAULT_REQUEST_HEADERS_TIMEOUT_MS, streamIdleMs: 300_000, requestMs: 0, idleMs: 3_600_000, maxConnectionDurationMs: 0, drainMs: 5000 });
    assert.equal(DEFAULT_REQUEST_HEADERS_TIMEOUT_MS, 10_000);
  });
  test('set, and 0 turns each off', () => {
    const t = compileHcm(
      hcm((h) => {
        h.requestHeadersTimeout = durationOf(0);
        h.streamIdleTimeout = durationOf(0);
        h.requestTimeout = durationOf(2500);
        h.drainTimeout = durationOf(1500);
        h.commonHttpProtocolOptions = create(HttpProtocolOptionsSchema, { idleTimeout: durationOf(0), maxConnectionDuration: durationOf(60_000) });
      }),
      ctx,
    ).timeouts;
    assert.deepEqual(t, { requestHeadersMs: 0, streamIdleMs: 0, requestMs: 2500, idleMs: 0, maxConnectionDurationMs: 60_000, drainMs: 1500 });
  });
  test('max_stream_duration is a ConfigError naming the field', () => {
    assert.throws(
      () => compileHcm(hcm((h) => (h.commonHttpProtocolOptions = create(HttpProtocolOptionsSchema, { maxStreamDuration: durationOf(1000) }))), ctx),
      (e: unknown) => e instanceof ConfigError && /common_http_protocol_options\.max_stream_duration: is not supported/.test(e.message),
    );
  });
});

describe('upgrade_configs', () => {
  const up = (type: string, enabled?: boolean) => create(HttpConnectionManager_UpgradeConfigSchema, { upgradeType: type, ...(enabled === undefined ? {} : { enabled }) });
  const none = new Map<string, boolean>();

  test('a configured type passes (case-insensitively); others do not', () => {
    const c = compileHcm(hcm((h) => (h.upgradeConfigs = [up('WebSocket')])), ctx);
    assert.equal(c.upgradeAllowed('websocket', none), true);
    assert.equal(c.upgradeAllowed('foo', none), false);
    assert.equal(compileHcm(hcm(), ctx).upgradeAllowed('websocket', none), false, 'no upgrade_configs: nothing passes');
  });
  test('enabled: false on the connection manager, and route overrides either way', () => {
    const off = compileHcm(hcm((h) => (h.upgradeConfigs = [up('websocket', false)])), ctx);
    assert.equal(off.upgradeAllowed('websocket', none), false);
    assert.equal(off.upgradeAllowed('websocket', new Map([['websocket', true]])), true, 'a route enables it');
    const on = compileHcm(hcm((h) => (h.upgradeConfigs = [up('websocket')])), ctx);
    assert.equal(on.upgradeAllowed('websocket', new Map([['websocket', false]])), false, 'a route disables it');
    assert.equal(on.upgradeAllowed('foo', new Map([['foo', true]])), false, 'a route cannot add a type the connection manager lacks');
  });
  test('CONNECT, upgrade filter chains and duplicates are ConfigErrors', () => {
    const rejects = (edit: (h: HttpConnectionManager) => void, re: RegExp) =>
      assert.throws(
        () => compileHcm(hcm(edit), ctx),
        (e: unknown) => e instanceof ConfigError && re.test(e.message),
      );
    rejects((h) => (h.upgradeConfigs = [up('CONNECT')]), /upgrade_configs\[0\]\.upgrade_type: CONNECT tunnelling is not supported/);
    rejects((h) => (h.upgradeConfigs = [up('websocket'), up('WEBSOCKET')]), /upgrade_configs\[1\]\.upgrade_type: duplicate upgrade type/);
    rejects((h) => (h.upgradeConfigs = [create(HttpConnectionManager_UpgradeConfigSchema, { upgradeType: 'websocket', filters: [create(HttpFilterSchema, { name: 'x' })] })]), /upgrade_configs\[0\]\.filters: upgrade-specific filter chains are not supported/);
  });
});
