/**
 * Weighted destination lists in the model are reduced by the greatest common divisor of their weights, so that
 * 80/20, 800/200 and 4/1 are the same model whatever API family wrote them (see model.ts).
 */

function gcd(a: number, b: number): number {
  let x = Math.abs(a);
  let y = Math.abs(b);
  while (y !== 0) [x, y] = [y, x % y];
  return x;
}

/**
 * Divides every weight by the GCD of the non-zero weights. Zero weights stay zero (such a destination gets no
 * traffic); a list whose weights are all zero, or that holds a non-integer or negative weight, is returned
 * unchanged (validation rejects those before translation).
 */
export function reduceWeights(weights: readonly number[]): number[] {
  if (weights.some((w) => !Number.isInteger(w) || w < 0)) return [...weights];
  const divisor = weights.reduce((g, w) => (w === 0 ? g : gcd(g, w)), 0);
  if (divisor <= 1) return [...weights];
  return weights.map((w) => w / divisor);
}

/** Reduces the `weight` of each item in place by the list's GCD (see `reduceWeights`) and returns the list. */
export function reduceWeightsOf<T extends { weight: number }>(items: T[]): T[] {
  const reduced = reduceWeights(items.map((i) => i.weight));
  items.forEach((item, i) => {
    item.weight = reduced[i]!;
  });
  return items;
}
