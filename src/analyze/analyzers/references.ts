/**
 * References that must resolve (WFT0101, IST0101's meaning): route destinations and mirrors (VirtualService,
 * HTTPRoute backendRefs, TrafficSplit backends), their ports (and WFT0112 when a multi-port service is routed
 * without one), subsets (defined in a DestinationRule), the Service a GAMMA route or TrafficSplit attaches to,
 * and gateways. Also all-zero weights (WFT1006).
 */
import type { Destination, MirrorPolicy, Origin, RouteTable, Service } from '../../api/model.js';
import { tableGateways } from '../../api/precedence.js';
import { resolveHost } from '../../api/build.js';
import type { AnalysisContext } from '../context.js';
import { writtenHostNames } from '../locate.js';
import type { Analyzer } from '../types.js';

const HOST_KEYS = new Set(['host', 'name', 'service']);

/** Finds the raw leaf that wrote `host` under the object's path. */
function hostLeaf(ctx: AnalysisContext, host: string, extra: Array<string | number> = []) {
  return ctx.findUnder((v, k) => typeof v === 'string' && HOST_KEYS.has(String(k)) && writtenHostNames(v, host), extra);
}

interface Lookup {
  services: Service[];
  visible: Service[];
}

function lookupHost(ctx: AnalysisContext, host: string, fromNs: string): Lookup {
  const services = ctx.servicesFor(host);
  return { services, visible: services.filter((s) => ctx.serviceVisible(s, fromNs)) };
}

function notFoundHint(t: RouteTable): string {
  return `define a Service or ServiceEntry for it, or fix the name (a short name resolves in the namespace of the ${t.origin.kind}, ${t.namespace})`;
}

function checkDestination(ctx: AnalysisContext, t: RouteTable, origin: Origin, d: Destination | MirrorPolicy, what: 'host' | 'mirror host'): void {
  // A TrafficSplit with matches sends the other requests to its root service: checked as the root (route.parents).
  if (t.origin.family === 'smi' && t.hosts.includes(d.host)) return;
  const where = ctx.whereOf(origin, hostLeaf(ctx, d.host));
  const { services, visible } = lookupHost(ctx, d.host, t.namespace);
  if (!services.length) {
    ctx.report('WFT0101', where, `referenced ${what} not found: "${d.host}"`, notFoundHint(t));
    return;
  }
  if (!visible.length) {
    ctx.report('WFT0101', where, `referenced ${what} "${d.host}" is not exported to namespace ${t.namespace} (exportTo of ${services.map((s) => `${s.origin.kind} ${s.origin.namespace}/${s.origin.name}`).join(', ')})`, `add ${t.namespace} (or "*") to the service's exportTo, or route to a service visible from ${t.namespace}`);
    return;
  }
  const concrete = visible.filter((s) => !s.hostname.includes('*') && s.ports.length > 0);
  if (!concrete.length) return;
  if (d.port !== undefined) {
    if (!concrete.some((s) => s.ports.some((p) => p.port === d.port))) {
      const portWhere = ctx.whereOf(origin, ctx.findUnder((v, k) => (k === 'number' || k === 'port') && v === d.port));
      const ports = [...new Set(concrete.flatMap((s) => s.ports.map((p) => p.port)))].sort((a, b) => a - b);
      ctx.report('WFT0101', portWhere, `referenced ${what}:port not found: "${d.host}:${d.port}" (the service has port${ports.length > 1 ? 's' : ''} ${ports.join(', ')})`, `use one of the service's ports: ${ports.join(', ')}`);
    }
  } else if (t.origin.family === 'istio') {
    const ports = [...new Set(concrete.flatMap((s) => s.ports.map((p) => p.port)))].sort((a, b) => a - b);
    if (ports.length > 1) {
      ctx.report('WFT0112', where, `this ${t.origin.kind} routes to service "${d.host}" that exposes several ports [${ports.join(', ')}]; the destination must say which port`, `add destination.port.number (one of ${ports.join(', ')})`);
    }
  }
}

function checkSubset(ctx: AnalysisContext, t: RouteTable, origin: Origin, d: Destination | MirrorPolicy): void {
  if (!d.subset) return;
  if (!lookupHost(ctx, d.host, t.namespace).visible.length) return; // reported as a missing host
  const policies = ctx.destinationPoliciesFor(d.host, t.namespace);
  if (policies.some((p) => p.subsets.some((s) => s.name === d.subset))) return;
  const where = ctx.whereOf(origin, ctx.findUnder((v, k) => k === 'subset' && v === d.subset));
  const known = [...new Set(policies.flatMap((p) => p.subsets.map((s) => s.name)))];
  ctx.report(
    'WFT0101',
    where,
    `referenced host+subset in destinationrule not found: "${d.host}+${d.subset}"`,
    policies.length
      ? `define subset ${d.subset} in DestinationRule ${policies.map((p) => `${p.namespace}/${p.origin.name}`).join(', ')} (defined: ${known.join(', ') || 'none'}) or use one of those`
      : `add a DestinationRule for host ${d.host} with a subset named ${d.subset}`,
  );
}

export const destinationHostAnalyzer: Analyzer = {
  name: 'route.destinations',
  description: 'Checks that route destinations and mirrors name existing, visible services, ports and subsets',
  codes: ['WFT0101', 'WFT0112'],
  analyze(ctx) {
    for (const t of ctx.model.routes) {
      for (const r of t.http) {
        if (r.action.kind === 'route') {
          for (const d of r.action.destinations) {
            checkDestination(ctx, t, r.origin, d, 'host');
            checkSubset(ctx, t, r.origin, d);
          }
        }
        for (const m of r.mirrors) {
          checkDestination(ctx, t, r.origin, m, 'mirror host');
          checkSubset(ctx, t, r.origin, m);
        }
      }
      for (const r of [...t.tcp, ...t.tls]) {
        for (const d of r.destinations) {
          checkDestination(ctx, t, r.origin, d, 'host');
          checkSubset(ctx, t, r.origin, d);
        }
      }
    }
  },
};

export const parentAnalyzer: Analyzer = {
  name: 'route.parents',
  description: 'Checks that the Service a GAMMA route or TrafficSplit attaches to, and every gateway a route binds to, exist',
  codes: ['WFT0101'],
  analyze(ctx) {
    // Gateway API parentRefs of kind Service, as written (a route whose parent is missing is not in the model).
    for (const res of [...ctx.ofKind('HTTPRoute', 'gateway.networking.k8s.io'), ...ctx.ofKind('GRPCRoute', 'gateway.networking.k8s.io')]) {
      const refs = (res.spec as { parentRefs?: Array<{ group?: string; kind?: string; name?: string; namespace?: string }> }).parentRefs ?? [];
      refs.forEach((ref, i) => {
        if ((ref.group !== '' && ref.group !== 'core') || ref.kind !== 'Service' || !ref.name) return;
        const ns = ref.namespace ?? res.namespace;
        const host = resolveHost(ref.name, ns, ctx.domain);
        if (ctx.servicesFor(host).length) return;
        ctx.report(
          'WFT0101',
          ctx.whereIn(res, ['spec', 'parentRefs', i]),
          `referenced parent Service not found: "${ns}/${ref.name}" (${host})`,
          'a GAMMA route attaches to an existing Service: define it, or fix parentRefs name/namespace',
          ['WFT0101'],
        );
      });
    }
    const gatewayNames = new Set(ctx.model.gateways.map((g) => `${g.namespace}/${g.name}`));
    for (const t of ctx.model.routes) {
      if (t.origin.family === 'smi' && tableGateways(t).includes('mesh')) {
        for (const host of t.hosts) {
          if (ctx.servicesFor(host).length) continue;
          ctx.report('WFT0101', ctx.whereOf(t.origin, hostLeaf(ctx, host, ['spec'])), `referenced root service not found: "${host}"`, 'spec.service must name a Service in the TrafficSplit namespace');
        }
      }
      for (const g of tableGateways(t)) {
        if (g === 'mesh' || gatewayNames.has(g)) continue;
        const [gns, gname] = g.includes('/') ? [g.slice(0, g.indexOf('/')), g.slice(g.indexOf('/') + 1)] : [t.namespace, g];
        const where = ctx.whereOf(t.origin, ctx.findUnder((v, k) => typeof v === 'string' && (v === g || v === gname) && (typeof k === 'number' || k === 'name')));
        ctx.report('WFT0101', where, `referenced gateway not found: "${g}"`, `define Gateway ${gname} in namespace ${gns}, or fix the reference (namespace/name; a bare name means the route's namespace)`, ['WFT0101']);
      }
    }
  },
};

export const zeroWeightAnalyzer: Analyzer = {
  name: 'route.zero-weights',
  description: 'Finds weighted routes whose destinations all have weight 0',
  codes: ['WFT1006'],
  analyze(ctx) {
    const hint = 'give at least one destination a positive weight, or remove the rule';
    // Gateway API: the translator turns such a rule into a direct 500 (503 for gRPC), so look at the spec.
    for (const res of [...ctx.ofKind('HTTPRoute', 'gateway.networking.k8s.io'), ...ctx.ofKind('GRPCRoute', 'gateway.networking.k8s.io')]) {
      const rules = (res.spec as { rules?: Array<{ backendRefs?: Array<{ weight?: number }> }> }).rules ?? [];
      rules.forEach((rule, i) => {
        const refs = rule.backendRefs ?? [];
        if (!refs.length || refs.some((r) => (r.weight ?? 1) > 0)) return;
        ctx.report(
          'WFT1006',
          ctx.whereIn(res, ['spec', 'rules', i, 'backendRefs']),
          `every backendRef of ${res.kind} ${res.namespace}/${res.name} rule #${i} has weight 0, so no backend receives its traffic (requests get ${res.kind === 'GRPCRoute' ? '503' : '500'})`,
          hint,
          ['WFT0106'],
        );
      });
    }
    for (const t of ctx.model.routes) {
      if (t.origin.family === 'gateway-api') continue;
      const lists: Array<{ origin: Origin; dests: Destination[] }> = [];
      for (const r of t.http) if (r.action.kind === 'route') lists.push({ origin: r.origin, dests: r.action.destinations });
      for (const r of [...t.tcp, ...t.tls]) lists.push({ origin: r.origin, dests: r.destinations });
      for (const { origin, dests } of lists) {
        // Istio routes all traffic to a single destination whatever its weight.
        if (!dests.length || (t.origin.family === 'istio' && dests.length === 1)) continue;
        if (dests.some((d) => d.weight > 0)) continue;
        ctx.report(
          'WFT1006',
          ctx.whereOf(origin, ctx.findUnder((_v, k) => k === 'weight')),
          `every destination of this ${t.origin.kind} rule has weight 0, so no backend receives its traffic`,
          hint,
        );
      }
    }
  },
};

export const referenceAnalyzers: Analyzer[] = [destinationHostAnalyzer, parentAnalyzer, zeroWeightAnalyzer];
