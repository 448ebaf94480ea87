/**
 * Tag extraction: turns a flat Envoy stat name into a tag-extracted name plus tags, for `/stats/prometheus`
 * (`cluster.reviews.upstream_rq_200` → `cluster.upstream_rq` with `envoy.response_code=200`,
 * `envoy.cluster_name=reviews`, printed as `envoy_cluster_upstream_rq{envoy_response_code="200",envoy_cluster_name="reviews"}`).
 *
 * Semantics follow Envoy's TagProducerImpl / TagExtractor*Impl and the default descriptors of
 * source/common/config/well_known_names.cc:
 * - Every extractor sees the whole original name; each match records a tag and a character range to remove. The
 *   tag-extracted name is the original with all removed ranges cut out.
 * - Regex extractors: the first capture group is the part removed, the second (if it matched something) the value;
 *   a match whose first group is empty does not count. A `substr` that must occur in the name is a cheap pre-check.
 * - Token extractors (`cluster.$.**`): the name is split on dots; `*` matches one token, `**` any number, `$` one
 *   token that becomes the value; the token and one adjacent dot are removed.
 * - Extractors whose regex starts with `^word\.` (or whose token pattern starts with a literal) only run for names
 *   whose first token is that word; the others run for every name, first.
 * - When several extractors share a tag name, only the first that matches adds a tag.
 * - Fixed-value specifiers add their tag to every stat.
 *
 * One deliberate extension: Envoy splits tokens on every dot, so a cluster named
 * `outbound|9080||reviews.default.svc.cluster.local` would be tagged `outbound|9080||reviews` (Istio patches this
 * with its own cluster_name regex). Weft knows where such a name ends — the stat was created in a scope made for
 * it (`store.scope('cluster.<name>.')`) — and passes that range as `pinEnd`: the characters between the first dot
 * and `pinEnd` form one token for the token extractors, so `envoy.cluster_name` gets the whole name.
 *
 *   const producer = new TagProducer();                       // Envoy's defaults
 *   const { extractedName, tags } = producer.produce('cluster.a.upstream_rq_total');
 *   // extractedName 'cluster.upstream_rq_total', tags ['envoy.cluster_name', 'a'] (flat name/value pairs)
 */

/** Envoy's well-known tag names. */
export const TagNames = {
  CLUSTER_NAME: 'envoy.cluster_name',
  LISTENER_ADDRESS: 'envoy.listener_address',
  HTTP_CONN_MANAGER_PREFIX: 'envoy.http_conn_manager_prefix',
  HTTP_USER_AGENT: 'envoy.http_user_agent',
  SSL_CIPHER: 'envoy.ssl_cipher',
  SSL_CIPHER_SUITE: 'cipher_suite',
  SSL_CURVE: 'envoy.ssl_curve',
  SSL_SIGALG: 'envoy.ssl_sigalg',
  SSL_VERSION: 'envoy.ssl_version',
  CLIENTSSL_PREFIX: 'envoy.clientssl_prefix',
  MONGO_PREFIX: 'envoy.mongo_prefix',
  MONGO_CMD: 'envoy.mongo_cmd',
  MONGO_COLLECTION: 'envoy.mongo_collection',
  MONGO_CALLSITE: 'envoy.mongo_callsite',
  RATELIMIT_PREFIX: 'envoy.ratelimit_prefix',
  LOCAL_HTTP_RATELIMIT_PREFIX: 'envoy.local_http_ratelimit_prefix',
  LOCAL_NETWORK_RATELIMIT_PREFIX: 'envoy.local_network_ratelimit_prefix',
  LOCAL_LISTENER_RATELIMIT_PREFIX: 'envoy.local_listener_ratelimit_prefix',
  DNS_FILTER_PREFIX: 'envoy.dns_filter_prefix',
  EXT_AUTHZ_PREFIX: 'envoy.ext_authz_prefix',
  TCP_PREFIX: 'envoy.tcp_prefix',
  UDP_PREFIX: 'envoy.udp_prefix',
  FAULT_DOWNSTREAM_CLUSTER: 'envoy.fault_downstream_cluster',
  DYNAMO_OPERATION: 'envoy.dynamo_operation',
  DYNAMO_TABLE: 'envoy.dynamo_table',
  DYNAMO_PARTITION_ID: 'envoy.dynamo_partition_id',
  GRPC_BRIDGE_SERVICE: 'envoy.grpc_bridge_service',
  GRPC_BRIDGE_METHOD: 'envoy.grpc_bridge_method',
  VIRTUAL_HOST: 'envoy.virtual_host',
  VIRTUAL_CLUSTER: 'envoy.virtual_cluster',
  RESPONSE_CODE: 'envoy.response_code',
  RESPONSE_CODE_CLASS: 'envoy.response_code_class',
  RDS_ROUTE_CONFIG: 'envoy.rds_route_config',
  ROUTE: 'envoy.route',
  WORKER_ID: 'envoy.worker_id',
  THRIFT_PREFIX: 'envoy.thrift_prefix',
  REDIS_PREFIX: 'envoy.redis_prefix',
} as const;

/** A `stats_tags` entry (envoy.config.metrics.v3.TagSpecifier): a regex, a fixed value, or neither (= the defaults of that name). */
export interface TagSpecifier {
  tagName: string;
  regex?: string;
  fixedValue?: string;
}

export interface TagProducerOptions {
  /** `stats_config.use_all_default_tags`; default true. */
  useAllDefaultTags?: boolean;
  /** `stats_config.stats_tags`, processed after the defaults. */
  statsTags?: readonly TagSpecifier[];
}

/** The result of tag extraction; `tags` is flat: name, value, name, value... */
export interface ExtractedTags {
  extractedName: string;
  tags: string[];
}

// Regex building blocks of well_known_names.cc.
const TAG_VALUE = '[^\\.]+';
const ADDRESS = '(?:(?:\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}\\.\\d{1,3}|\\[[a-fA-F_\\d]+\\])_\\d+)';
const CIPHER = '[\\w-]+';
const TLS_VERSION = 'TLSv\\d\\.\\d';
const ROUTE_CONFIG_NAME = '[\\w.-]+';
const LISTENER_OR_CLUSTER_WITH_NAME = '(?:listener|cluster)\\..*?';

function expand(re: string): string {
  return re
    .replaceAll('<ADDRESS>', ADDRESS)
    .replaceAll('<CIPHER>', CIPHER)
    .replaceAll('<TLS_VERSION>', TLS_VERSION)
    .replaceAll('<TAG_VALUE>', TAG_VALUE)
    .replaceAll('<ROUTE_CONFIG_NAME>', ROUTE_CONFIG_NAME)
    .replaceAll('<LISTENER_OR_CLUSTER_WITH_NAME>', LISTENER_OR_CLUSTER_WITH_NAME);
}

interface RegexDescriptor {
  name: string;
  regex: string;
  substr: string;
  negativeMatch: string;
}
interface TokenDescriptor {
  name: string;
  pattern: string;
}

const N = TagNames;

/** The default regex descriptors, in Envoy's order. */
const DEFAULT_REGEXES: readonly RegexDescriptor[] = [
  [N.RESPONSE_CODE, '_rq(_(\\d{3}))$', '_rq_'],
  [N.RESPONSE_CODE_CLASS, '_rq_((\\d))xx$', '_rq_'],
  [N.DYNAMO_PARTITION_ID, '^http\\.<TAG_VALUE>\\.dynamodb\\.table\\.<TAG_VALUE>\\.capacity\\.<TAG_VALUE>(\\.__partition_id=(\\w{7}))$', '.dynamodb.table.'],
  [N.DYNAMO_OPERATION, '^http\\.<TAG_VALUE>\\.dynamodb.(?:operation|table\\.<TAG_VALUE>\\.capacity)(\\.(<TAG_VALUE>))(?:\\.|$)', '.dynamodb.'],
  [N.DYNAMO_TABLE, '^http\\.<TAG_VALUE>\\.dynamodb.(?:table|error)\\.((<TAG_VALUE>)\\.)', '.dynamodb.'],
  [N.SSL_CIPHER, '^listener\\..*?\\.ssl\\.ciphers(\\.(<CIPHER>))$', '.ssl.ciphers.'],
  [N.SSL_CURVE, '^<LISTENER_OR_CLUSTER_WITH_NAME>\\.ssl\\.curves(\\.(<CIPHER>))$', '.ssl.curves.'],
  [N.SSL_SIGALG, '^<LISTENER_OR_CLUSTER_WITH_NAME>\\.ssl\\.sigalgs(\\.(<CIPHER>))$', '.ssl.sigalgs.'],
  [N.SSL_VERSION, '^<LISTENER_OR_CLUSTER_WITH_NAME>\\.ssl\\.versions(\\.(<TLS_VERSION>))$', '.ssl.versions.'],
  [N.SSL_CIPHER_SUITE, '^cluster\\.<TAG_VALUE>\\.ssl\\.ciphers(\\.(<CIPHER>))$', '.ssl.ciphers.'],
  [N.HTTP_CONN_MANAGER_PREFIX, '^listener\\..*?\\.http\\.((<TAG_VALUE>)\\.)', '.http.'],
  [N.WORKER_ID, '^(?:listener\\.(?:<ADDRESS>|<TAG_VALUE>)\\.|server\\.|listener_manager\\.)worker_((\\d+)\\.)', ''],
  [N.LISTENER_ADDRESS, '^listener\\.((<ADDRESS>|<TAG_VALUE>)\\.)', '', 'admin'],
  [N.RDS_ROUTE_CONFIG, '^http\\.<TAG_VALUE>\\.rds\\.((<ROUTE_CONFIG_NAME>)\\.)\\w+?$', '.rds.'],
].map(([name, regex, substr, neg]) => ({ name: name!, regex: expand(regex!), substr: substr ?? '', negativeMatch: neg ?? '' }));

/** The default token descriptors, in Envoy's order. */
const DEFAULT_TOKENS: readonly TokenDescriptor[] = [
  [N.MONGO_CALLSITE, 'mongo.*.collection.*.callsite.$.query.**'],
  [N.MONGO_COLLECTION, 'mongo.*.collection.$.**.query.*'],
  [N.MONGO_CMD, 'mongo.*.cmd.$.**'],
  [N.GRPC_BRIDGE_METHOD, 'cluster.*.grpc.*.$.**'],
  [N.HTTP_USER_AGENT, 'http.*.user_agent.$.**'],
  [N.VIRTUAL_CLUSTER, 'vhost.*.vcluster.$.**'],
  [N.FAULT_DOWNSTREAM_CLUSTER, 'http.*.fault.$.**'],
  [N.GRPC_BRIDGE_SERVICE, 'cluster.*.grpc.$.**'],
  [N.TCP_PREFIX, 'tcp.$.**'],
  [N.UDP_PREFIX, 'udp.$.**'],
  [N.CLIENTSSL_PREFIX, 'auth.clientssl.$.**'],
  [N.RATELIMIT_PREFIX, 'ratelimit.$.**'],
  [N.CLUSTER_NAME, 'cluster.$.**'],
  [N.EXT_AUTHZ_PREFIX, 'cluster.*.ext_authz.$.**'],
  [N.EXT_AUTHZ_PREFIX, 'http.*.ext_authz.$.**'],
  [N.HTTP_CONN_MANAGER_PREFIX, 'http.$.**'],
  [N.VIRTUAL_HOST, 'vhost.$.**'],
  [N.MONGO_PREFIX, 'mongo.$.**'],
  [N.ROUTE, 'vhost.*.route.$.**'],
  [N.THRIFT_PREFIX, 'thrift.$.**'],
  [N.REDIS_PREFIX, 'redis.$.**'],
  [N.LOCAL_HTTP_RATELIMIT_PREFIX, '$.http_local_rate_limit.**'],
  [N.LOCAL_NETWORK_RATELIMIT_PREFIX, 'local_rate_limit.$.**'],
  [N.LOCAL_LISTENER_RATELIMIT_PREFIX, 'listener_local_ratelimit.$.**'],
  [N.DNS_FILTER_PREFIX, 'dns_filter.$.**'],
].map(([name, pattern]) => ({ name: name!, pattern: pattern! }));

/**
 * The first tokens whose default extractor has the `<kind>.$.**` shape: a scope created as `<kind>.<name>.` directly
 * on the store pins `<name>` as one token (see the file comment).
 */
export const NAMED_SCOPE_KINDS: ReadonlySet<string> = new Set(
  DEFAULT_TOKENS.filter((d) => /^[a-z_]+\.\$\.\*\*$/.test(d.pattern)).map((d) => d.pattern.slice(0, d.pattern.indexOf('.'))),
);

/** Per-name state shared by the extractors: the name and its tokens (computed once, on first use). */
class Context {
  private toks: string[] | undefined;
  private starts: number[] | undefined;
  constructor(
    readonly name: string,
    private readonly pinEnd: number,
  ) {}

  tokens(): string[] {
    if (!this.toks) this.split();
    return this.toks!;
  }
  tokenStarts(): number[] {
    if (!this.starts) this.split();
    return this.starts!;
  }

  private split(): void {
    const name = this.name;
    const toks: string[] = [];
    const starts: number[] = [];
    let start = 0;
    const firstDot = name.indexOf('.');
    for (let i = 0; i <= name.length; i++) {
      if (i === name.length || name.charCodeAt(i) === 46) {
        // Inside the pinned range (after the first token, up to pinEnd) dots do not split.
        if (i < name.length && this.pinEnd > 0 && i > firstDot && i < this.pinEnd) continue;
        toks.push(name.slice(start, i));
        starts.push(start);
        start = i + 1;
      }
    }
    this.toks = toks;
    this.starts = starts;
  }
}

abstract class Extractor {
  /** Set when another extractor has the same tag name (only the first match of those adds a tag). */
  sameNameExists = false;
  constructor(
    readonly name: string,
    readonly prefix: string,
  ) {}
  /** Adds [name, value] to `tags` and a [start, end) range to `remove` on a match. */
  abstract extract(ctx: Context, tags: string[], remove: number[]): boolean;
}

/**
 * Envoy's extractRegexPrefix: `^word\.`, `^word(?=\.)` or `^word$` → `word`; anything else → no prefix.
 */
export function regexPrefix(regex: string): string {
  if (!regex.startsWith('^')) return '';
  for (let i = 1; i < regex.length; i++) {
    const c = regex[i]!;
    if (!/[A-Za-z0-9_]/.test(c)) {
      if (i > 1) {
        const last = i === regex.length - 1;
        const rest = regex.slice(i);
        if ((!last && (rest.startsWith('\\.') || rest.startsWith('(?=\\.)'))) || (last && c === '$')) return regex.slice(1, i);
      }
      return '';
    }
  }
  return '';
}

class RegexExtractor extends Extractor {
  private readonly re: RegExp;
  constructor(
    name: string,
    regex: string,
    private readonly substr: string,
    private readonly negativeMatch: string,
    /** Envoy's default (RE2) extractors need a non-empty removal; custom (std::regex) ones take group 2 whenever the regex has one. */
    private readonly re2: boolean,
  ) {
    super(name, regexPrefix(regex));
    this.re = new RegExp(regex, 'd');
  }

  extract(ctx: Context, tags: string[], remove: number[]): boolean {
    const name = ctx.name;
    if (this.substr !== '' && name.indexOf(this.substr) < 0) return false;
    const m = this.re.exec(name);
    if (!m || m.length < 2) return false;
    const idx = m.indices!;
    const rm = idx[1];
    let value: string;
    if (this.re2) {
      if (!rm || m[1] === '') return false;
      value = m[2] !== undefined && m[2] !== '' ? m[2] : m[1]!;
      if (this.negativeMatch !== '' && value === this.negativeMatch) return false;
    } else {
      value = m.length > 2 ? (m[2] ?? '') : (m[1] ?? '');
    }
    tags.push(this.name, value);
    if (rm) remove.push(rm[0], rm[1]);
    return true;
  }
}

class TokenExtractor extends Extractor {
  private readonly pattern: string[];
  private readonly matchIndex: number;
  constructor(name: string, pattern: string) {
    const toks = pattern.split('.');
    const first = toks[0]!;
    super(name, first !== '$' && first !== '*' && first !== '**' ? first : '');
    this.pattern = toks;
    this.matchIndex = toks.indexOf('$');
    if (this.matchIndex < 0) throw new Error(`token pattern ${pattern} has no $`);
  }

  extract(ctx: Context, tags: string[], remove: number[]): boolean {
    const input = ctx.tokens();
    this.matchAt = -1;
    if (!this.search(input, 0, 0) || this.matchAt < 0) return false;
    const at = this.matchAt;
    const starts = ctx.tokenStarts();
    const value = input[at]!;
    let start = starts[at]!;
    let end = start + value.length;
    // Remove the dot after the token, or before it when it is the last one.
    if (at < input.length - 1) end++;
    else if (start > 0) start--;
    tags.push(this.name, value);
    remove.push(start, end);
    return true;
  }

  /** The input index the `$` of the last successful `search` matched. */
  private matchAt = -1;

  /** Whether pattern[patIdx..] matches input[inIdx..] completely; records the `$` position in `matchAt`. */
  private search(input: string[], inIdx: number, patIdx: number): boolean {
    const pat = this.pattern;
    for (; inIdx < input.length && patIdx < pat.length; inIdx++, patIdx++) {
      if (patIdx === this.matchIndex) {
        this.matchAt = inIdx;
        continue;
      }
      const expected = pat[patIdx]!;
      if (expected === '**') {
        // A trailing `**` takes the rest (at least one token); elsewhere the remainder must match some suffix.
        if (patIdx === pat.length - 1) return true;
        for (; inIdx < input.length; inIdx++) if (this.search(input, inIdx, patIdx + 1)) return true;
        return false;
      }
      if (expected !== '*' && expected !== input[inIdx]) return false;
    }
    return patIdx === pat.length && inIdx === input.length;
  }
}

class FixedExtractor extends Extractor {
  constructor(
    name: string,
    private readonly value: string,
  ) {
    super(name, '');
  }
  extract(_ctx: Context, tags: string[]): boolean {
    tags.push(this.name, this.value);
    return true;
  }
}

/** Envoy's TagProducer: the ordered set of extractors. Construct once; `produce` is pure. */
export class TagProducer {
  private readonly withoutPrefix: Extractor[] = [];
  private readonly byPrefix = new Map<string, Extractor[]>();
  private readonly byName = new Map<string, Extractor>();

  /** Throws on an invalid specifier (an empty name, a bad regex, or neither regex nor a default of that name). */
  constructor(opts: TagProducerOptions = {}) {
    if (opts.useAllDefaultTags !== false) {
      for (const d of DEFAULT_REGEXES) this.add(new RegexExtractor(d.name, d.regex, d.substr, d.negativeMatch, true));
      for (const d of DEFAULT_TOKENS) this.add(new TokenExtractor(d.name, d.pattern));
    }
    for (const spec of opts.statsTags ?? []) {
      if (!spec.tagName) throw new Error('tag_name cannot be empty');
      if (spec.fixedValue !== undefined) {
        this.add(new FixedExtractor(spec.tagName, spec.fixedValue));
      } else if (spec.regex) {
        let ex: RegexExtractor;
        try {
          ex = new RegexExtractor(spec.tagName, spec.regex, '', '', false);
        } catch (e) {
          throw new Error(`Invalid regex '${spec.regex}': ${(e as Error).message}`);
        }
        this.add(ex);
      } else {
        let found = 0;
        for (const d of DEFAULT_REGEXES) {
          if (d.name === spec.tagName) {
            this.add(new RegexExtractor(d.name, d.regex, d.substr, d.negativeMatch, true));
            found++;
          }
        }
        for (const d of DEFAULT_TOKENS) {
          if (d.name === spec.tagName) {
            this.add(new TokenExtractor(d.name, d.pattern));
            found++;
          }
        }
        if (found === 0) throw new Error(`No regex specified for tag specifier and no default regex for name: '${spec.tagName}'`);
      }
    }
  }

  private add(ex: Extractor): void {
    const other = this.byName.get(ex.name);
    if (other) {
      other.sameNameExists = true;
      ex.sameNameExists = true;
    } else {
      this.byName.set(ex.name, ex);
    }
    if (ex.prefix === '') {
      this.withoutPrefix.push(ex);
    } else {
      let list = this.byPrefix.get(ex.prefix);
      if (!list) this.byPrefix.set(ex.prefix, (list = []));
      list.push(ex);
    }
  }

  /**
   * Extracts the tags of `name`. `pinEnd` > 0 makes the characters from after the first dot up to `pinEnd` one
   * token for the token extractors (a named scope's name).
   */
  produce(name: string, pinEnd = 0): ExtractedTags {
    const ctx = new Context(name, pinEnd);
    const tags: string[] = [];
    const remove: number[] = [];
    let matchedDup: Set<string> | undefined;
    const run = (ex: Extractor): void => {
      if (ex.sameNameExists && matchedDup?.has(ex.name)) return;
      if (ex.extract(ctx, tags, remove) && ex.sameNameExists) (matchedDup ??= new Set()).add(ex.name);
    };
    for (const ex of this.withoutPrefix) run(ex);
    const dot = name.indexOf('.');
    if (dot >= 0) {
      const list = this.byPrefix.get(name.slice(0, dot));
      if (list) for (const ex of list) run(ex);
    }
    return { extractedName: removeRanges(name, remove), tags };
  }
}

/** Cuts the union of the [start, end) ranges out of `s`. */
function removeRanges(s: string, ranges: number[]): string {
  if (ranges.length === 0) return s;
  const pairs: Array<[number, number]> = [];
  for (let i = 0; i < ranges.length; i += 2) pairs.push([ranges[i]!, ranges[i + 1]!]);
  pairs.sort((a, b) => a[0] - b[0]);
  let out = '';
  let pos = 0;
  for (const [start, end] of pairs) {
    if (start > pos) out += s.slice(pos, start);
    if (end > pos) pos = end;
  }
  return out + s.slice(pos);
}
