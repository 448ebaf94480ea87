/**
 * The message codes `weft analyze` emits. A code has the same number as the istioctl analyze message
 * (IST<number>, istio/istio pkg/config/analysis/msg/messages.yaml) with the same meaning and level; codes
 * from WFT1000 up are Weft's own. Validation and parsing (src/api) emit WFT0100, WFT1010, WFT0106, WFT1009 and
 * WFT1007 and WFT1008 themselves; they are listed here so that every code has one place that names it.
 */
import type { Severity } from '../api/diagnostics.js';

export interface CodeInfo {
  code: string;
  /** The upstream message name (for IST-numbered codes) or Weft's name. */
  name: string;
  severity: Severity;
  /** One line: what the message means. */
  summary: string;
  /** Who emits it: an analyzer, or the loader/validator. */
  source: 'analyzer' | 'validation';
}

const list: CodeInfo[] = [
  { code: 'WFT0001', name: 'InternalError', severity: 'Error', summary: 'An internal error in Weft (a bug): an analyzer or translator failed on this input.', source: 'analyzer' },
  { code: 'WFT0002', name: 'Deprecated', severity: 'Warning', summary: 'The configuration uses a field that is deprecated upstream.', source: 'analyzer' },
  { code: 'WFT0100', name: 'SyntaxError', severity: 'Error', summary: 'A file cannot be read or is not valid YAML/JSON.', source: 'validation' },
  { code: 'WFT0101', name: 'ReferencedResourceNotFound', severity: 'Error', summary: 'A referenced host, subset, port, gateway or Service does not exist.', source: 'analyzer' },
  { code: 'WFT1010', name: 'Unsupported', severity: 'Warning', summary: 'A kind, or a feature of a kind, that Weft does not support; it is ignored.', source: 'validation' },
  { code: 'WFT0106', name: 'SchemaValidationError', severity: 'Error', summary: 'A resource does not match its schema (unknown field, wrong type, bad value).', source: 'validation' },
  { code: 'WFT0109', name: 'ConflictingMeshGatewayVirtualServiceHosts', severity: 'Error', summary: 'Several VirtualServices bound to the mesh define the same host; they are not merged and only the oldest applies.', source: 'analyzer' },
  { code: 'WFT0112', name: 'VirtualServiceDestinationPortSelectorRequired', severity: 'Error', summary: 'A VirtualService routes to a service with several ports without saying which port.', source: 'analyzer' },
  { code: 'WFT0118', name: 'PortNameIsNotUnderNamingConvention', severity: 'Info', summary: 'A Service port declares no protocol (neither appProtocol nor a protocol name prefix); the protocol is sniffed.', source: 'analyzer' },
  { code: 'WFT0130', name: 'VirtualServiceUnreachableRule', severity: 'Warning', summary: 'A routing rule can never be used: earlier rules catch every request it matches.', source: 'analyzer' },
  { code: 'WFT0131', name: 'VirtualServiceIneffectiveMatch', severity: 'Info', summary: 'One match of a rule is never used: an earlier rule has the same or a broader match.', source: 'analyzer' },
  { code: 'WFT0145', name: 'ConflictingGateways', severity: 'Error', summary: 'Gateway servers on the same port of the same gateway workloads cannot all be served (different protocols, or the same TLS/TCP hosts).', source: 'analyzer' },
  { code: 'WFT0149', name: 'JwtClaimBasedRoutingWithoutRequestAuthN', severity: 'Error', summary: 'A route matches JWT claims on a gateway whose workloads no RequestAuthentication selects.', source: 'analyzer' },
  { code: 'WFT1009', name: 'DuplicateResource', severity: 'Error', summary: 'The same kind, namespace and name is defined twice.', source: 'validation' },
  { code: 'WFT0173', name: 'DestinationRuleSubsetNotSelectPods', severity: 'Error', summary: 'A DestinationRule subset selects none of the workloads of its host.', source: 'analyzer' },
  { code: 'WFT0174', name: 'UnknownDestinationRuleHost', severity: 'Warning', summary: 'A DestinationRule host matches no service in the mesh.', source: 'analyzer' },
  { code: 'WFT1001', name: 'RouteFamilyConflict', severity: 'Warning', summary: 'Several API families route the same host; one family wins (src/api/precedence.ts) and the others are ignored.', source: 'analyzer' },
  { code: 'WFT1002', name: 'DuplicateRouteOwner', severity: 'Warning', summary: 'Several resources of a family that does not merge (SMI TrafficSplit) route the same host; only the oldest applies.', source: 'analyzer' },
  { code: 'WFT1003', name: 'ConflictingDestinationRules', severity: 'Warning', summary: 'DestinationRules for the same host and workload selector are merged, and part of one is dropped.', source: 'analyzer' },
  { code: 'WFT1004', name: 'MergedDestinationRules', severity: 'Info', summary: 'DestinationRules for the same host and workload selector are merged into one.', source: 'analyzer' },
  { code: 'WFT1005', name: 'SidecarEgressHostNotFound', severity: 'Warning', summary: 'A Sidecar egress host matches no service.', source: 'analyzer' },
  { code: 'WFT1006', name: 'AllWeightsZero', severity: 'Warning', summary: 'Every destination of a weighted route has weight 0: no backend receives traffic.', source: 'analyzer' },
  { code: 'WFT1007', name: 'DeprecatedApiVersion', severity: 'Info', summary: 'The resource uses an apiVersion that is deprecated upstream.', source: 'validation' },
  { code: 'WFT1008', name: 'ServicePortNotOnWorkload', severity: 'Warning', summary: 'A Service port targets a port that the LocalWorkload backing it does not declare.', source: 'validation' },
];

export const CODES: ReadonlyMap<string, CodeInfo> = new Map(list.map((c) => [c.code, c]));

export function codeInfo(code: string): CodeInfo | undefined {
  return CODES.get(code);
}

export function allCodes(): CodeInfo[] {
  return [...list];
}
