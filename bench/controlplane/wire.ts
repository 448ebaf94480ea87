/**
 * A minimal protobuf wire-format reader for the simulated ADS clients. Hundreds of clients in a few processes
 * each receive the whole mesh; decoding every Cluster and ClusterLoadAssignment into full messages would make
 * the clients, not the control plane, the bottleneck. Like Envoy, a client only needs a few fields to drive the
 * protocol (resource names, a cluster's discovery type, a listener's RDS route names), so those are read
 * straight from the bytes. Field numbers are those of the Envoy v3 protos.
 */

/** Calls `fn` for every field in buf[start, end): field number, wire type, and value bounds or varint value. */
export function forEachField(
  buf: Uint8Array,
  start: number,
  end: number,
  fn: (field: number, wireType: number, valueStart: number, valueEnd: number, varint: number) => void,
): void {
  let pos = start;
  const varint = (): number => {
    let result = 0;
    let mul = 1;
    for (;;) {
      if (pos >= end) throw new Error('truncated varint');
      const b = buf[pos++]!;
      result += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return result;
      mul *= 128;
    }
  };
  while (pos < end) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    switch (wt) {
      case 0: {
        const v = varint();
        fn(field, wt, pos, pos, v);
        break;
      }
      case 1:
        fn(field, wt, pos, pos + 8, 0);
        pos += 8;
        break;
      case 2: {
        const len = varint();
        if (pos + len > end) throw new Error('truncated length-delimited field');
        fn(field, wt, pos, pos + len, 0);
        pos += len;
        break;
      }
      case 5:
        fn(field, wt, pos, pos + 4, 0);
        pos += 4;
        break;
      default:
        throw new Error(`unsupported wire type ${wt}`);
    }
  }
}

/** A Buffer over the same bytes (Buffer's UTF-8 decoding of short strings is much cheaper than TextDecoder's). */
function asBuffer(buf: Uint8Array): Buffer {
  return Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
}

function str(buf: Uint8Array, s: number, e: number): string {
  return (buf as Buffer).toString('utf8', s, e);
}

export interface RawAny {
  typeUrl: string;
  value: Uint8Array;
}

/** The type URL read last, as bytes and as a string: every resource of a response has the same one. */
let lastTypeUrl = '';
let lastTypeUrlBytes = new Uint8Array(0);

/** The type URL in buf[s, e): the last one read when the bytes are the same (compared, not decoded again). */
function typeUrlAt(buf: Uint8Array, s: number, e: number): string {
  const last = lastTypeUrlBytes;
  if (e - s === last.length) {
    let i = 0;
    while (i < last.length && buf[s + i] === last[i]) i++;
    if (i === last.length) return lastTypeUrl;
  }
  lastTypeUrl = str(buf, s, e);
  lastTypeUrlBytes = new Uint8Array(buf.subarray(s, e)); // a copy (a Buffer slice is a view of the response)
  return lastTypeUrl;
}

function readAny(buf: Uint8Array, s: number, e: number): RawAny {
  let typeUrl = '';
  let value: Uint8Array = new Uint8Array(0);
  forEachField(buf, s, e, (f, wt, vs, ve) => {
    if (wt !== 2) return;
    if (f === 1) typeUrl = typeUrlAt(buf, vs, ve);
    else if (f === 2) value = buf.subarray(vs, ve);
  });
  return { typeUrl, value };
}

/** envoy.service.discovery.v3.DiscoveryResponse: version_info=1, resources=2, type_url=4, nonce=5. */
export interface SotwResponse {
  versionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: RawAny[];
}

export function decodeSotwResponse(bytes: Uint8Array): SotwResponse {
  const buf = asBuffer(bytes);
  const r: SotwResponse = { versionInfo: '', typeUrl: '', nonce: '', resources: [] };
  forEachField(buf, 0, buf.length, (f, wt, s, e) => {
    if (wt !== 2) return;
    if (f === 1) r.versionInfo = str(buf, s, e);
    else if (f === 2) r.resources.push(readAny(buf, s, e));
    else if (f === 4) r.typeUrl = str(buf, s, e);
    else if (f === 5) r.nonce = str(buf, s, e);
  });
  return r;
}

/**
 * What a resource visitor is told of each resource: its `Any`'s type URL and the span of its value in the buffer
 * read (no view or object is made per resource; a response carries thousands).
 */
export type ResourceVisitor = (typeUrl: string, valueStart: number, valueEnd: number) => void;

/** The span of an `Any`'s value in buf[s, e), and its type URL (`readAny` without making a view). */
export function anyAt(buf: Buffer, s: number, e: number, visit: ResourceVisitor): void {
  let typeUrl = '';
  let vs = 0;
  let ve = 0;
  forEachField(buf, s, e, (f, wt, a, b) => {
    if (wt !== 2) return;
    if (f === 1) typeUrl = typeUrlAt(buf, a, b);
    else if (f === 2) {
      vs = a;
      ve = b;
    }
  });
  visit(typeUrl, vs, ve);
}

/** The value of the Delta Resource in buf[s, e) (its `Any`), given to `visit`; a name-only Resource is not visited. */
export function deltaResourceAt(buf: Buffer, s: number, e: number, visit: ResourceVisitor): void {
  forEachField(buf, s, e, (g, wt, s2, e2) => {
    if (g === 2 && wt === 2) anyAt(buf, s2, e2, visit);
  });
}

/** The UTF-8 string in buf[s, e). */
export function stringAt(buf: Buffer, s: number, e: number): string {
  return str(buf, s, e);
}

/** A Delta resource: envoy.service.discovery.v3.Resource (version=1, resource=2, name=3). */
export interface DeltaResource {
  name: string;
  version: string;
  resource?: RawAny;
}

/** DeltaDiscoveryResponse: system_version_info=1, resources=2, type_url=4, nonce=5, removed_resources=6. */
export interface DeltaResponse {
  systemVersionInfo: string;
  typeUrl: string;
  nonce: string;
  resources: DeltaResource[];
  removed: string[];
}

export function decodeDeltaResponse(bytes: Uint8Array): DeltaResponse {
  const buf = asBuffer(bytes);
  const r: DeltaResponse = { systemVersionInfo: '', typeUrl: '', nonce: '', resources: [], removed: [] };
  forEachField(buf, 0, buf.length, (f, wt, s, e) => {
    if (wt !== 2) return;
    if (f === 1) r.systemVersionInfo = str(buf, s, e);
    else if (f === 2) {
      const res: DeltaResource = { name: '', version: '' };
      forEachField(buf, s, e, (g, wt2, s2, e2) => {
        if (wt2 !== 2) return;
        if (g === 1) res.version = str(buf, s2, e2);
        else if (g === 2) res.resource = readAny(buf, s2, e2);
        else if (g === 3) res.name = str(buf, s2, e2);
      });
      r.resources.push(res);
    } else if (f === 4) r.typeUrl = str(buf, s, e);
    else if (f === 5) r.nonce = str(buf, s, e);
    else if (f === 6) r.removed.push(str(buf, s, e));
  });
  return r;
}

/** Cluster: name=1, type=2 (EDS = 3), eds_cluster_config=3 { service_name=2 }. */
export interface ClusterInfo {
  name: string;
  /** The ClusterLoadAssignment name to ask for, when the cluster is of type EDS. */
  edsName?: string;
}

export function clusterInfo(bytes: Uint8Array): ClusterInfo {
  const buf = asBuffer(bytes);
  return clusterInfoAt(buf, 0, buf.length);
}

/** `clusterInfo` of the Cluster in buf[start, end). */
export function clusterInfoAt(buf: Buffer, start: number, end: number): ClusterInfo {
  let name = '';
  let type = 0;
  let serviceName = '';
  forEachField(buf, start, end, (f, wt, s, e, v) => {
    if (f === 1 && wt === 2) name = str(buf, s, e);
    else if (f === 2 && wt === 0) type = v;
    else if (f === 3 && wt === 2) {
      forEachField(buf, s, e, (g, wt2, s2, e2) => {
        if (g === 2 && wt2 === 2) serviceName = str(buf, s2, e2);
      });
    }
  });
  return type === 3 ? { name, edsName: serviceName || name } : { name };
}

/** The name of a resource whose `name` is field 1 (ClusterLoadAssignment.cluster_name, Listener, RouteConfiguration). */
export function nameOf(bytes: Uint8Array): string {
  const buf = asBuffer(bytes);
  return nameAt(buf, 0, buf.length);
}

/** `nameOf` the resource in buf[start, end). */
export function nameAt(buf: Buffer, start: number, end: number): string {
  // Serializers write fields in field-number order, so the name usually comes first: read it without walking
  // the rest (a ClusterLoadAssignment's endpoints).
  if (end - start > 1 && buf[start] === 0x0a && buf[start + 1]! < 0x80 && start + 2 + buf[start + 1]! <= end) return str(buf, start + 2, start + 2 + buf[start + 1]!);
  let name = '';
  forEachField(buf, start, end, (f, wt, s, e) => {
    if (f === 1 && wt === 2 && name === '') name = str(buf, s, e);
  });
  return name;
}

/**
 * The socket addresses (`ip:port`) of a ClusterLoadAssignment: endpoints=2 → LocalityLbEndpoints.lb_endpoints=2 →
 * LbEndpoint.endpoint=1 → Endpoint.address=1 → Address.socket_address=1 → SocketAddress address=2, port_value=3.
 */
export function claAddresses(bytes: Uint8Array): string[] {
  const buf = asBuffer(bytes);
  const out: string[] = [];
  const sub = (s: number, e: number, field: number, fn: (s: number, e: number) => void) =>
    forEachField(buf, s, e, (f, wt, vs, ve) => { if (f === field && wt === 2) fn(vs, ve); });
  sub(0, buf.length, 2, (s1, e1) =>
    sub(s1, e1, 2, (s2, e2) =>
      sub(s2, e2, 1, (s3, e3) =>
        sub(s3, e3, 1, (s4, e4) =>
          sub(s4, e4, 1, (s5, e5) => {
            let ip = '';
            let port = 0;
            forEachField(buf, s5, e5, (f, wt, vs, ve, v) => {
              if (f === 2 && wt === 2) ip = str(buf, vs, ve);
              else if (f === 3 && wt === 0) port = v;
            });
            out.push(`${ip}:${port}`);
          }),
        ),
      ),
    ),
  );
  return out;
}

const HCM_TYPE = 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

/** Route names a listener's HttpConnectionManagers load over RDS (HCM rds=3 { route_config_name=2 }). */
function hcmRouteName(any: RawAny): string | undefined {
  if (any.typeUrl !== HCM_TYPE) return undefined;
  let name: string | undefined;
  forEachField(any.value, 0, any.value.length, (f, wt, s, e) => {
    if (f === 3 && wt === 2) {
      forEachField(any.value, s, e, (g, wt2, s2, e2) => {
        if (g === 2 && wt2 === 2) name = str(any.value, s2, e2);
      });
    }
  });
  return name;
}

/**
 * Listener: name=1, filter_chains=3, default_filter_chain=25 (FilterChain.filters=3, Filter typed_config=4),
 * api_listener=19 (ApiListener.api_listener=1, an Any).
 */
export function listenerInfo(bytes: Uint8Array): { name: string; routeNames: string[] } {
  const buf = asBuffer(bytes);
  let name = '';
  const routes = new Set<string>();
  const chain = (s: number, e: number) =>
    forEachField(buf, s, e, (f, wt, vs, ve) => {
      if (f !== 3 || wt !== 2) return;
      forEachField(buf, vs, ve, (g, wt2, s2, e2) => {
        if (g === 4 && wt2 === 2) {
          const r = hcmRouteName(readAny(buf, s2, e2));
          if (r) routes.add(r);
        }
      });
    });
  forEachField(buf, 0, buf.length, (f, wt, s, e) => {
    if (wt !== 2) return;
    if (f === 1) name = str(buf, s, e);
    else if (f === 3 || f === 25) chain(s, e);
    else if (f === 19) {
      forEachField(buf, s, e, (g, wt2, s2, e2) => {
        if (g === 1 && wt2 === 2) {
          const r = hcmRouteName(readAny(buf, s2, e2));
          if (r) routes.add(r);
        }
      });
    }
  });
  return { name, routeNames: [...routes] };
}

/** RouteConfiguration: name=1, virtual_hosts=2. */
export function routeInfo(bytes: Uint8Array): { name: string; virtualHosts: number } {
  const buf = asBuffer(bytes);
  let name = '';
  let virtualHosts = 0;
  forEachField(buf, 0, buf.length, (f, wt, s, e) => {
    if (wt !== 2) return;
    if (f === 1) name = str(buf, s, e);
    else if (f === 2) virtualHosts++;
  });
  return { name, virtualHosts };
}
