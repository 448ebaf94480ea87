/** The analyzers by name. Adding a check is writing one `Analyzer` and listing it here. */
import { deprecatedFieldsAnalyzer } from './analyzers/deprecated.js';
import { gatewayConflictAnalyzer } from './analyzers/gateways.js';
import { destinationRuleAnalyzers } from './analyzers/destinationrules.js';
import { jwtClaimRouteAnalyzer } from './analyzers/jwt.js';
import { portNameAnalyzer } from './analyzers/ports.js';
import { routeConflictAnalyzer } from './analyzers/conflicts.js';
import { referenceAnalyzers } from './analyzers/references.js';
import { ruleAnalyzers } from './analyzers/rules.js';
import { sidecarEgressAnalyzer } from './analyzers/sidecar.js';
import type { Analyzer } from './types.js';

const builtin: Analyzer[] = [
  ...referenceAnalyzers,
  ...ruleAnalyzers,
  routeConflictAnalyzer,
  ...destinationRuleAnalyzers,
  jwtClaimRouteAnalyzer,
  portNameAnalyzer,
  sidecarEgressAnalyzer,
  gatewayConflictAnalyzer,
  deprecatedFieldsAnalyzer,
];

const byName = new Map<string, Analyzer>();

/** Registers an analyzer; names are unique. */
export function registerAnalyzer(a: Analyzer): void {
  if (byName.has(a.name)) throw new Error(`analyzer ${a.name} registered twice`);
  byName.set(a.name, a);
}

for (const a of builtin) registerAnalyzer(a);

/** Removes an analyzer (tests, plugins); returns whether it was registered. */
export function unregisterAnalyzer(name: string): boolean {
  return byName.delete(name);
}

export function getAnalyzer(name: string): Analyzer | undefined {
  return byName.get(name);
}

/** Every registered analyzer, in registration order. */
export function allAnalyzers(): Analyzer[] {
  return [...byName.values()];
}
