/**
 * What the proxy does with a RouteDecision on the request path, in Envoy's order (RouteEntryImplBase::
 * finalizeRequestHeaders / finalizeResponseHeaders, Http::Utility::newUri):
 *
 *   applyRequestHeaders   weighted-cluster mutations and host_rewrite_literal, then the route, virtual host and
 *                         route configuration mutations (the route configuration's win, unless
 *                         most_specific_header_mutations_wins), then the route's host rewrite (literal, header
 *                         or path regex; x-forwarded-host when append_x_forwarded_host)
 *   rewritePath           prefix_rewrite (the matched prefix/path is replaced) or regex_rewrite (on the path
 *                         without query; the query is kept); call after applyRequestHeaders
 *   autoRewriteHost       auto_host_rewrite, once the upstream host is chosen
 *   applyResponseHeaders  weighted-cluster, then route / virtual host / route configuration mutations
 *   localReplyLocation    the Location of a redirect (and of a direct response with status 201 or 3xx)
 */
import type { RequestHead, ResponseHead } from '../headers.js';
import { forwardedProto } from './compile.js';
import type { RouteDecision } from './decision.js';
import type { FormatVars } from './formatter.js';
import { setOne } from './header-ops.js';
import { listHeaderFirst } from './match.js';
import type { Re2, Substitution } from './regex.js';
import { nameIs } from './util.js';

/** Applies the decision's request header mutations and host rewrite to `head`. */
export function applyRequestHeaders(d: RouteDecision, head: RequestHead, vars?: FormatVars): void {
  if (!d.hasRequestMutations) return;
  if (d.clusterRequestParser !== null) d.clusterRequestParser.apply(head.headers, head, null, vars, d);
  if (d.clusterHostRewrite !== '') head.authority = d.clusterHostRewrite;
  const ps = d.requestParsers;
  for (let i = 0; i < ps.length; i++) ps[i]!.apply(head.headers, head, null, vars, d);
  let host = '';
  if (d.hostRewriteLiteral !== '') host = d.hostRewriteLiteral;
  else if (d.hostRewriteHeader !== '') host = listHeaderFirst(head.headers, d.hostRewriteHeader) ?? '';
  else if (d.hostRewriteRegex !== null) host = d.hostRewriteRegex.re.replaceAll(pathOnly(head.path), d.hostRewriteRegex.sub);
  if (host !== '') updateAuthority(head, host, d.appendXForwardedHost);
}

/** auto_host_rewrite: the authority becomes the upstream host's hostname (no-op when the route does not ask). */
export function autoRewriteHost(d: RouteDecision, head: RequestHead, hostname: string): void {
  if (d.autoHostRewrite && hostname !== '') updateAuthority(head, hostname, d.appendXForwardedHost);
}

/** Applies the decision's response header mutations to `resp` (`req` is the request, for %REQ()%). */
export function applyResponseHeaders(d: RouteDecision, resp: ResponseHead, req: RequestHead, vars?: FormatVars): void {
  if (!d.hasResponseMutations) return;
  if (d.clusterResponseParser !== null) d.clusterResponseParser.apply(resp.headers, req, resp, vars, d);
  const ps = d.responseParsers;
  for (let i = 0; i < ps.length; i++) ps[i]!.apply(resp.headers, req, resp, vars, d);
}

/**
 * Rewrites `head.path` (prefix_rewrite or regex_rewrite). Returns whether the path changed; with
 * `insertOriginalPath` the previous path is kept in x-envoy-original-path, as Envoy does unless its headers are
 * suppressed.
 */
export function rewritePath(d: RouteDecision, head: RequestHead, insertOriginalPath = false): boolean {
  let next: string;
  if (d.prefixRewrite !== '') next = replacePrefix(head.path, d.matchedLength, d.prefixRewrite);
  else if (d.regexRewrite !== null) next = regexRewritePath(head.path, d.regexRewrite.re, d.regexRewrite.sub);
  else return false;
  if (insertOriginalPath) setOne(head.headers, 'x-envoy-original-path', head.path);
  head.path = next;
  return true;
}

/**
 * The Location header of a local reply: the redirect target for 'redirect' decisions, the request's own URL for
 * 'direct' decisions with status 201 or 3xx (Envoy adds it there too), undefined otherwise.
 */
export function localReplyLocation(d: RouteDecision, head: RequestHead): string | undefined {
  if (d.kind === 'cluster' || !head.path) return undefined;
  const r = d.redirect;
  if (r === null) {
    if (d.status !== 201 && (d.status < 300 || d.status > 399)) return undefined;
    return newUri(head, head.scheme, '', '', head.path, '', false, false);
  }
  if (r.ssl) return `https://${head.authority}${head.path}`;
  // The redirect's own path rewrite first (Envoy rewrites the request path, then builds the URI from it).
  let path = head.path;
  if (r.regexRewrite !== null) path = regexRewritePath(path, r.regexRewrite.re, r.regexRewrite.sub);
  else if (r.prefixRewrite !== '') path = replacePrefix(path, d.matchedLength, r.prefixRewrite);
  return newUri(head, r.scheme || head.scheme, r.port, r.host, path, r.pathRedirect, r.pathRedirectHasQuery, r.stripQuery);
}

// ---------------------------------------------------------------------------------------------------------------

function queryStart(path: string): number {
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c === 63 || c === 35) return i;
  }
  return path.length;
}

function pathOnly(path: string): string {
  const q = queryStart(path);
  return q === path.length ? path : path.slice(0, q);
}

/** prefix_rewrite: the first `matched` characters (the matched prefix or path; -1 = path without query) replaced. */
function replacePrefix(path: string, matched: number, rewrite: string): string {
  const n = matched < 0 ? queryStart(path) : Math.min(matched, path.length);
  return rewrite + path.slice(n);
}

/** regex_rewrite: the path without query and fragment rewritten, the rest kept. */
function regexRewritePath(path: string, re: Re2, sub: Substitution): string {
  const q = queryStart(path);
  const just = q === path.length ? path : path.slice(0, q);
  return re.replaceAll(just, sub) + path.slice(q);
}

/** Http::Utility::updateAuthority: sets the authority, appending the old one to x-forwarded-host if asked. */
function updateAuthority(head: RequestHead, hostname: string, appendXfh: boolean): void {
  const host = head.authority;
  if (appendXfh && host !== '') {
    const h = head.headers;
    let at = -1;
    for (let i = 0; i < h.length; i += 2) {
      if (nameIs(h[i]!, 'x-forwarded-host')) {
        at = i;
        break;
      }
    }
    if (at < 0) {
      h.push('x-forwarded-host', host);
    } else {
      // Only when the last value is not already this host (append_xfh_idempotent).
      const v = h[at + 1]!;
      const tokens = v.split(',');
      let last = '';
      for (let i = tokens.length - 1; i >= 0; i--) {
        const t = tokens[i]!.trim();
        if (t) {
          last = t;
          break;
        }
      }
      if (last !== host) h[at + 1] = v ? `${v},${host}` : host;
    }
  }
  head.authority = hostname;
}

/** Envoy's processRequestHost: the request authority, its port dropped when a port is given or the scheme changes. */
function requestHost(head: RequestHead, newScheme: string, newPort: string): string {
  const host = head.authority;
  if (!host) return host;
  let end: number;
  if (host.charCodeAt(0) === 91 /* [ */) {
    end = host.lastIndexOf(']:');
    if (end >= 0) end += 1;
  } else {
    end = host.lastIndexOf(':');
  }
  if (end < 0) return host;
  const port = host.slice(end);
  const proto = forwardedProto(head);
  let remove = newPort !== '';
  if (newScheme !== proto) {
    remove ||= proto.toLowerCase() === 'https' && port === ':443';
    remove ||= proto.toLowerCase() === 'http' && port === ':80';
  }
  return remove ? host.slice(0, end) : host;
}

/** Http::Utility::newUri. */
function newUri(
  head: RequestHead,
  scheme: string,
  port: string,
  hostRedirect: string,
  currentPath: string,
  pathRedirect: string,
  pathRedirectHasQuery: boolean,
  stripQuery: boolean,
): string {
  const host = hostRedirect !== '' ? hostRedirect : requestHost(head, scheme, port);
  let path: string;
  if (pathRedirect !== '') {
    if (pathRedirectHasQuery) path = pathRedirect;
    else {
      const q = currentPath.indexOf('?');
      path = q >= 0 ? pathRedirect + currentPath.slice(q) : pathRedirect;
    }
  } else {
    path = currentPath;
  }
  if (!path.startsWith('/')) path = `/${path}`;
  if (!pathRedirectHasQuery && stripQuery) {
    const q = path.indexOf('?');
    if (q >= 0) path = path.slice(0, q);
  }
  return `${scheme}://${host}${port}${path}`;
}
