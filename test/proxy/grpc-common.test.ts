// gRPC helpers of the request path (http/grpc/common.ts) against Envoy's Grpc::Common / Grpc::Utility behaviour.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeGrpcMessage, grpcStatusOf, httpToGrpcStatus, isGrpcContentType, parseGrpcTimeout } from '../../src/proxy/http/grpc/common.js';

describe('gRPC helpers', () => {
  test('httpToGrpcStatus follows http-grpc-status-mapping', () => {
    const want: Array<[number, number]> = [[400, 13], [401, 16], [403, 7], [404, 12], [429, 14], [502, 14], [503, 14], [504, 14], [500, 2], [408, 2], [200, 2]];
    for (const [http, grpc] of want) assert.equal(httpToGrpcStatus(http), grpc, `HTTP ${http}`);
  });

  test('grpc-timeout: 1-8 digits and a unit; anything else is no timeout', () => {
    assert.equal(parseGrpcTimeout('1H'), 3_600_000);
    assert.equal(parseGrpcTimeout('2M'), 120_000);
    assert.equal(parseGrpcTimeout('3S'), 3000);
    assert.equal(parseGrpcTimeout('250m'), 250);
    assert.equal(parseGrpcTimeout('1500u'), 2, 'rounded up to whole ms');
    assert.equal(parseGrpcTimeout('10n'), 1);
    assert.equal(parseGrpcTimeout('0m'), 0);
    assert.equal(parseGrpcTimeout('99999S'), 99_999_000);
    assert.equal(parseGrpcTimeout('99999999H'), 2147483647, 'capped at the longest node timer');
    for (const bad of [undefined, '', 'm', '100', '123456789S', '1.5S', '-1S', '10x', ' 1S']) assert.equal(parseGrpcTimeout(bad), undefined, String(bad));
  });

  test('content types, grpc-status of a head, grpc-message percent-encoding', () => {
    assert.ok(isGrpcContentType('application/grpc'));
    assert.ok(isGrpcContentType('application/grpc+proto'));
    assert.ok(!isGrpcContentType('application/grpc-web'));
    assert.ok(!isGrpcContentType('application/grpcx'));
    assert.ok(!isGrpcContentType(undefined));
    assert.equal(grpcStatusOf(['content-type', 'application/grpc', 'Grpc-Status', '14']), 14);
    assert.equal(grpcStatusOf(['grpc-status', 'x']), undefined);
    assert.equal(grpcStatusOf([]), undefined);
    assert.equal(encodeGrpcMessage('no healthy upstream'), 'no healthy upstream');
    assert.equal(encodeGrpcMessage('100% sure\n'), '100%25 sure%0A');
    assert.equal(encodeGrpcMessage('café'), 'caf%C3%A9');
  });
});
