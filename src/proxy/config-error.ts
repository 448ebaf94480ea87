/**
 * ConfigError: an xDS resource the proxy cannot apply, because it is invalid or asks for something the proxy does
 * not implement. It names the resource kind, the resource and the field (a proto field path in snake_case, as
 * Envoy's docs spell it), so the xDS client NACKs with an error_detail that says exactly what to fix; the last good
 * config stays in force. Every proxy component throws this one class.
 *
 *   throw new ConfigError('outbound|80||a.default', 'lb_config.maglev_lb_config.table_size', 'must be a prime number', 'cluster')
 *   // message: 'cluster "outbound|80||a.default": lb_config.maglev_lb_config.table_size: must be a prime number'
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The resource name (listener, route configuration, cluster, or a ClusterLoadAssignment's cluster_name). */
    readonly resource: string,
    /** The offending field, e.g. `virtual_hosts[2].routes[0].match.safe_regex`. */
    readonly field: string,
    /** What is wrong, in plain words. */
    readonly detail: string,
    /** The resource kind used in the message: `listener`, `route_config`, `cluster`, `cluster_load_assignment`. */
    readonly kind: string,
  ) {
    super(`${kind} ${JSON.stringify(resource)}: ${field}: ${detail}`);
  }
}
