/**
 * Values for every item, in order: an item's known value where it has one, the others from one
 * call of `compute` on the items without (in their order). For reusing results computed earlier
 * on the same model without computing them again.
 */
export function withKnown<I, V>(items: I[], known: (item: I) => V | undefined, compute: (missing: I[]) => V[]): V[] {
  const found = items.map(known);
  const computed = compute(items.filter((_, i) => found[i] === undefined));
  let next = 0;
  return found.map((v) => v ?? computed[next++]);
}
