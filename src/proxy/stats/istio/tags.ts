/**
 * Istio's tag extraction for Envoy's own stats (`weft proxy --stats-tags istio`): the `stats_config` of Istio's
 * sidecar bootstrap — `use_all_default_tags: false` and its own specifiers — so Envoy stats print as an Istio sidecar
 * prints them:
 *
 *   cluster.outbound|9080||reviews.default.svc.cluster.local.upstream_rq_2xx
 *     Envoy's defaults:  envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="outbound|9080||reviews.default.svc.cluster.local"}
 *     Istio's:           envoy_cluster_upstream_rq{response_code_class="2xx",cluster_name="outbound|9080||reviews.default.svc.cluster.local"}
 *
 * The regexes are Istio's, with POSIX `[:digit:]` written as `\d` (the tag producer uses JavaScript regexes, where a
 * bracket class cannot hold a POSIX class). Istio's names only tag numeric / address-like connection manager and
 * listener prefixes (`http.10.0.0.1_8080.`), so `http.outbound.downstream_rq_total` stays untagged
 * (`envoy_http_outbound_downstream_rq_total`), as on an Istio sidecar. Istio's stats_matcher (which keeps only a few
 * Envoy stats by default) is not applied: every stat is exported.
 *
 * The default stays Envoy's tag set.
 */
import type { TagSpecifier } from '../tags.js';

const ADDRESS_LIKE = '(?:[_.\\d]*|[_\\[\\]aAbBcCdDeEfF\\d]*)';

export const ISTIO_STATS_TAGS: readonly TagSpecifier[] = Object.freeze([
  { tagName: 'cluster_name', regex: '^cluster\\.((.+?(\\..+?\\.svc\\.cluster\\.local)?)\\.)' },
  { tagName: 'tcp_prefix', regex: '^tcp\\.((.*?)\\.)\\w+?$' },
  { tagName: 'response_code', regex: '_rq(_(\\d{3}))$' },
  { tagName: 'response_code_class', regex: '_rq(_(\\dxx))$' },
  { tagName: 'http_conn_manager_listener_prefix', regex: `^listener(?=\\.).*?\\.http\\.((${ADDRESS_LIKE})\\.)` },
  { tagName: 'http_conn_manager_prefix', regex: `^http\\.((${ADDRESS_LIKE})\\.)` },
  { tagName: 'listener_address', regex: `^listener\\.((${ADDRESS_LIKE})\\.)` },
  { tagName: 'mongo_prefix', regex: '^mongo\\.(.+?)\\.(collection|cmd|cx_|op_|delays_|decoding_)(.*?)$' },
  { tagName: 'cache', regex: '(cache\\.(.+?)\\.)' },
  { tagName: 'component', regex: '(component\\.(.+?)\\.)' },
  { tagName: 'tag', regex: '(tag\\.(.+?);\\.)' },
  { tagName: 'wasm_filter', regex: '(wasm_filter\\.(.+?)\\.)' },
  { tagName: 'authz_enforce_result', regex: 'rbac(\\.(allowed|denied))' },
  { tagName: 'authz_dry_run_action', regex: '(\\.istio_dry_run_(allow|deny)_)' },
  { tagName: 'authz_dry_run_result', regex: '(\\.shadow_(allowed|denied))' },
]);
