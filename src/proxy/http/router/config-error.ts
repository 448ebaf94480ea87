/**
 * ConfigError: a RouteConfiguration the proxy cannot apply, because it is invalid or asks for something the router
 * does not implement. It names the resource and the field (a proto field path in snake_case, as Envoy's docs spell
 * it), so the xDS client can NACK with an error_detail that says exactly what to fix; the last good config stays.
 *
 *   throw new ConfigError('outbound', 'virtual_hosts[2].routes[0].match.safe_regex', 'invalid regex ...')
 *   // message: 'route_config "outbound": virtual_hosts[2].routes[0].match.safe_regex: invalid regex ...'
 *
 * Same fields as the cluster component's ConfigError (resource, field, detail, kind), so the two can be merged.
 */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    /** The resource name (the RouteConfiguration's name). */
    readonly resource: string,
    /** The offending field, e.g. `virtual_hosts[2].routes[0].match.safe_regex`. */
    readonly field: string,
    /** What is wrong, in plain words. */
    readonly detail: string,
    /** The resource kind used in the message. */
    readonly kind = 'route_config',
  ) {
    super(`${kind} ${JSON.stringify(resource)}: ${field}: ${detail}`);
  }
}
