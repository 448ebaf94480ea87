/**
 * Binary encoding of the resources whose parts are shared between resources: a RouteConfiguration's virtual
 * hosts (the route configurations of the namespaces differ in the few virtual hosts that carry their short host
 * names, and share the VirtualHost objects of every other service). `toBinary` encodes a shared part again inside
 * every resource that holds it; here its bytes are made once per object and copied into each resource, into a
 * buffer of the exact size.
 *
 * The output is byte-for-byte `toBinary`'s: protobuf-es writes the fields of a message in field-number order
 * (unknown fields last), so a message is its fields before the spliced one, then each element as a
 * length-delimited field, then the fields after it. Encoding errors (values out of range) are thrown as
 * `toBinary` throws them.
 *
 * Only worth it for large shared parts: the split costs two `toBinary` calls on copies of the message, more than
 * encoding a small message whole (a ClusterLoadAssignment's endpoints are shared too, but encode faster in place).
 * Element bytes are kept per object, so a shared part must not change once encoded (translation's cached messages
 * never do: cache.ts).
 */
import { clearField, toBinary } from '@bufbuild/protobuf';
import type { DescField, DescMessage, MessageShape } from '@bufbuild/protobuf';
import { WireType } from '@bufbuild/protobuf/wire';
import { VirtualHostSchema } from '../../xds/gen/envoy/config/route/v3/route_components_pb.js';
import { RouteConfigurationSchema } from '../../xds/gen/envoy/config/route/v3/route_pb.js';

/** A repeated message field written element by element, and how its elements are encoded. */
interface Splice {
  field: DescField;
  element: DescMessage;
  /** Elements are shared objects: their bytes are kept per object. */
  shared: boolean;
}

function listField(schema: DescMessage, localName: string): DescField {
  const f = schema.fields.find((x) => x.localName === localName);
  if (!f || f.fieldKind !== 'list' || f.listKind !== 'message') throw new Error(`${schema.typeName}.${localName} is not a repeated message field`);
  return f;
}

const SPLICES = new Map<DescMessage, Splice>([
  [RouteConfigurationSchema, { field: listField(RouteConfigurationSchema, 'virtualHosts'), element: VirtualHostSchema, shared: true }],
]);

/** Encodes messages as `toBinary` does, with the shared parts' bytes made once (see the module comment). */
export class SplicingEncoder {
  private readonly parts = new WeakMap<object, Uint8Array>();

  encode<D extends DescMessage>(schema: D, msg: MessageShape<D>): Uint8Array {
    const splice = SPLICES.get(schema);
    if (!splice) return toBinary(schema, msg);
    const list = (msg as Record<string, unknown>)[splice.field.localName] as object[];
    if (list.length === 0) return toBinary(schema, msg);
    // The fields before and after the spliced one, each in a copy of the message without the others.
    const before = { ...msg } as MessageShape<D> & { $unknown?: unknown };
    const after = { ...msg };
    delete before.$unknown;
    const n = splice.field.number;
    for (const f of schema.fields) {
      if (f.number >= n) clearField(before, f);
      if (f.number <= n) clearField(after, f);
    }
    const head = toBinary(schema, before);
    const tail = toBinary(schema, after);
    const parts: Uint8Array[] = [];
    let size = head.length + tail.length;
    const tag = (n << 3) | WireType.LengthDelimited;
    const tagSize = varintSize(tag);
    for (const el of list) {
      const b = this.element(splice, el as MessageShape<DescMessage>);
      parts.push(b);
      size += tagSize + varintSize(b.length) + b.length;
    }
    // Written into one buffer of the exact size (a writer that grows by doubling copies a large message many times).
    const out = new Uint8Array(size);
    out.set(head, 0);
    let pos = head.length;
    for (const b of parts) {
      pos = writeVarint(out, pos, tag);
      pos = writeVarint(out, pos, b.length);
      out.set(b, pos);
      pos += b.length;
    }
    out.set(tail, pos);
    return out;
  }

  private element(splice: Splice, el: MessageShape<DescMessage>): Uint8Array {
    if (!splice.shared) return this.encode(splice.element, el);
    let b = this.parts.get(el);
    if (!b) {
      b = this.encode(splice.element, el);
      this.parts.set(el, b);
    }
    return b;
  }
}

/** Bytes of an unsigned 32-bit varint. */
function varintSize(v: number): number {
  let n = 1;
  while (v >= 0x80) {
    v >>>= 7;
    n++;
  }
  return n;
}

/** Writes an unsigned 32-bit varint at `pos`; returns the position after it. */
function writeVarint(out: Uint8Array, pos: number, v: number): number {
  while (v >= 0x80) {
    out[pos++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  out[pos++] = v;
  return pos;
}
