/**
 * `weft.dns.v1.NameTable`: the DNS name table the control plane sends to transparent-mode sidecars over ADS,
 * for their DNS proxy (src/proxy/dns/). Istio sends the same table over NDS (`istio.networking.nds.v1.NameTable`,
 * a map from host name to `NameInfo{ips, registry, shortname, namespace}`); Envoy has no such proto, so Weft
 * declares its own with Istio's field layout:
 *
 *   message NameTable { string name = 1; map<string, NameInfo> table = 2; }
 *   message NameInfo  { repeated string ips = 1; string registry = 2; string shortname = 3; string namespace = 4; }
 *
 * Type URL `type.googleapis.com/weft.dns.v1.NameTable`; one resource per proxy, named `name-table` (`name` is
 * Weft's addition: every ADS resource needs a name). The keys of `table` are every name a client in the proxy's
 * namespace can use for a mesh host (see translate/dns.ts), lower case, without a trailing dot.
 *
 * The descriptor is built at run time from a FileDescriptorProto (no protoc step) and added to the xDS registry
 * (xds/index.ts), so the xDS client decodes it like any Envoy resource.
 */
import { create, createFileRegistry } from '@bufbuild/protobuf';
import type { DescFile, Message } from '@bufbuild/protobuf';
import type { GenMessage } from '@bufbuild/protobuf/codegenv2';
import {
  FieldDescriptorProto_Label,
  FieldDescriptorProto_Type,
  file_google_protobuf_descriptor,
  FileDescriptorProtoSchema,
} from '@bufbuild/protobuf/wkt';

export const NAME_TABLE_TYPE_NAME = 'weft.dns.v1.NameTable';
export const NAME_TABLE_TYPE_URL = `type.googleapis.com/${NAME_TABLE_TYPE_NAME}`;
/** The name of the one NameTable resource a proxy gets. */
export const NAME_TABLE_RESOURCE = 'name-table';

const { OPTIONAL, REPEATED } = FieldDescriptorProto_Label;
const { STRING, MESSAGE } = FieldDescriptorProto_Type;

const fileProto = create(FileDescriptorProtoSchema, {
  name: 'weft/dns/v1/name_table.proto',
  package: 'weft.dns.v1',
  syntax: 'proto3',
  messageType: [
    {
      name: 'NameTable',
      field: [
        { name: 'name', number: 1, label: OPTIONAL, type: STRING, jsonName: 'name' },
        { name: 'table', number: 2, label: REPEATED, type: MESSAGE, typeName: '.weft.dns.v1.NameTable.TableEntry', jsonName: 'table' },
      ],
      nestedType: [
        {
          name: 'TableEntry',
          field: [
            { name: 'key', number: 1, label: OPTIONAL, type: STRING, jsonName: 'key' },
            { name: 'value', number: 2, label: OPTIONAL, type: MESSAGE, typeName: '.weft.dns.v1.NameInfo', jsonName: 'value' },
          ],
          options: { mapEntry: true },
        },
      ],
    },
    {
      name: 'NameInfo',
      field: [
        { name: 'ips', number: 1, label: REPEATED, type: STRING, jsonName: 'ips' },
        { name: 'registry', number: 2, label: OPTIONAL, type: STRING, jsonName: 'registry' },
        { name: 'shortname', number: 3, label: OPTIONAL, type: STRING, jsonName: 'shortname' },
        { name: 'namespace', number: 4, label: OPTIONAL, type: STRING, jsonName: 'namespace' },
      ],
    },
  ],
});

/** The file descriptor of weft/dns/v1/name_table.proto. */
export const file_weft_dns_v1_name_table: DescFile = createFileRegistry(fileProto, (n) =>
  n === file_google_protobuf_descriptor.proto.name ? file_google_protobuf_descriptor : undefined,
).getFile(fileProto.name)!;

export type NameInfo = Message<'weft.dns.v1.NameInfo'> & {
  ips: string[];
  registry: string;
  shortname: string;
  namespace: string;
};

export type NameTable = Message<'weft.dns.v1.NameTable'> & {
  name: string;
  table: { [host: string]: NameInfo };
};

export const NameTableSchema = file_weft_dns_v1_name_table.messages[0] as GenMessage<NameTable>;
export const NameInfoSchema = file_weft_dns_v1_name_table.messages[1] as GenMessage<NameInfo>;
