/**
 * The run axis of stacked runs (GPT.stack): R runs' arrays of one parameter (or optimizer moment)
 * laid end to end, and run r's part of them. One layout for weights and moments alike.
 */

/** Equal-length arrays, one per run, as one array [R, ...]. */
export function stackRuns(parts: Float32Array[], what: string): Float32Array {
  const size = parts[0].length;
  const all = new Float32Array(parts.length * size);
  parts.forEach((p, r) => {
    if (p.length !== size) throw new Error(`run ${r}: ${what} has ${p.length} values, run 0's has ${size}`);
    all.set(p, r * size);
  });
  return all;
}

/** A copy of run r's part of an array stacked over `runs` runs. */
export function runSlice(all: Float32Array, runs: number, r: number): Float32Array {
  const size = all.length / runs;
  return all.slice(r * size, (r + 1) * size);
}
