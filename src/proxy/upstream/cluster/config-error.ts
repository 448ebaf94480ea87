/**
 * ConfigError: an xDS resource the proxy cannot apply, because it is invalid or uses something the proxy does not
 * implement. It names the resource (the cluster) and the field, so the xDS client can NACK with an error_detail
 * that says exactly what to fix; the last good config stays in force.
 *
 *   throw new ConfigError('outbound|80||a.default', 'lb_config.maglev_lb_config.table_size', 'must be a prime number')
 *   // message: 'cluster "outbound|80||a.default": lb_config.maglev_lb_config.table_size: must be a prime number'
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The resource name (cluster name, or the cluster_name of a ClusterLoadAssignment). */
    readonly resource: string,
    /** The offending field, as a proto field path (snake_case, as Envoy's docs name it). */
    readonly field: string,
    /** What is wrong, in plain words. */
    readonly detail: string,
    /** The resource kind used in the message. */
    readonly kind = 'cluster',
  ) {
    super(`${kind} ${JSON.stringify(resource)}: ${field}: ${detail}`);
  }
}
