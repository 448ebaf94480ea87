/**
 * CheckRequests for the external authorization service, as Envoy's ext_authz filters fill them
 * (filters/common/ext_authz/check_request_utils.cc): the source peer (address, and the principal of its verified
 * certificate), the destination (the connection's local — or restored original — address) and, for HTTP, the
 * request: id (x-request-id), method, path, host, scheme, protocol (`HTTP/1.1`, `HTTP/2`), size (-1: not
 * buffered) and the headers as a map of lower-case name → values joined with `,`, with the pseudo-headers
 * `:authority`, `:method`, `:path` (and `:scheme`) as Envoy's HTTP/2-style header map has them.
 */
import { create } from '@bufbuild/protobuf';
import { timestampNow } from '@bufbuild/protobuf/wkt';
import type { Socket } from 'node:net';
import { AddressSchema, SocketAddressSchema, type Address } from '../../xds/gen/envoy/config/core/v3/address_pb.js';
import {
  AttributeContext_HttpRequestSchema,
  AttributeContext_PeerSchema,
  AttributeContext_RequestSchema,
  AttributeContext_TLSSessionSchema,
  AttributeContextSchema,
} from '../../xds/gen/envoy/service/auth/v3/attribute_context_pb.js';
import { CheckRequestSchema, type CheckRequest } from '../../xds/gen/envoy/service/auth/v3/external_auth_pb.js';
import type { RequestHead } from '../http/headers.js';
import { originalDstOf } from '../listener/original-dst.js';
import { peerOf } from '../tls/peer.js';
import { plainIp } from './cidr.js';

function address(ip: string, port: number): Address {
  return create(AddressSchema, { address: { case: 'socketAddress', value: create(SocketAddressSchema, { address: plainIp(ip), portSpecifier: { case: 'portValue', value: port } }) } });
}

function destinationOf(socket: Socket): Address {
  const od = originalDstOf(socket);
  if (od !== undefined) {
    const i = od.lastIndexOf(':');
    const ip = od.slice(0, i);
    return address(ip.startsWith('[') ? ip.slice(1, -1) : ip, Number(od.slice(i + 1)));
  }
  return address(socket.localAddress ?? '', socket.localPort ?? 0);
}

/** The CheckRequest of an HTTP request (head) or of a TCP connection (head null). */
export function checkRequest(socket: Socket, head: RequestHead | null, contextExtensions: Record<string, string> = {}): CheckRequest {
  const peer = peerOf(socket);
  const attrs = create(AttributeContextSchema, {
    source: create(AttributeContext_PeerSchema, { address: address(socket.remoteAddress ?? '', socket.remotePort ?? 0), principal: peer.principal }),
    destination: create(AttributeContext_PeerSchema, { address: destinationOf(socket) }),
    contextExtensions,
  });
  if (peer.sni !== '') attrs.tlsSession = create(AttributeContext_TLSSessionSchema, { sni: peer.sni });
  if (head !== null) {
    const headers: Record<string, string> = { ':authority': head.authority, ':method': head.method, ':path': head.path, ':scheme': head.scheme };
    const h = head.headers;
    for (let i = 0; i < h.length; i += 2) {
      const k = h[i]!.toLowerCase();
      headers[k] = headers[k] === undefined ? h[i + 1]! : `${headers[k]},${h[i + 1]!}`;
    }
    const q = head.path.indexOf('?');
    attrs.request = create(AttributeContext_RequestSchema, {
      time: timestampNow(),
      http: create(AttributeContext_HttpRequestSchema, {
        id: headers['x-request-id'] ?? '',
        method: head.method,
        path: head.path,
        host: head.authority,
        scheme: head.scheme,
        query: q < 0 ? '' : head.path.slice(q + 1),
        protocol: head.httpVersion === '2' ? 'HTTP/2' : `HTTP/${head.httpVersion}`,
        size: -1n,
        headers,
      }),
    });
  }
  return create(CheckRequestSchema, { attributes: attrs });
}
