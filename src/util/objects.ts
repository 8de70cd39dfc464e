/** The entries of `o` whose value is not undefined (so spreading it never overrides a default with undefined). */
export function definedOnly<T extends object>(o: Partial<T>): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
