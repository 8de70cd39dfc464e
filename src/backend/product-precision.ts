/**
 * The precision of the model's matrix products while a training step runs (see Precision in
 * native/contracts.ts). Browser-safe: the model reads it (src/model/ops.ts), and the explorer
 * bundles the model for the browser; resolve-precision.ts decides what `--precision` means here.
 *
 * It is process state, like tfjs's current backend: the products are deep in the model's forward
 * pass (each layer reads it when it runs, and its backward uses what its forward used), and a flag
 * through every caller would change every signature of the model for what is an execution
 * setting, not part of the model. Only `withPrecision` sets it, around synchronous work (a training
 * step), and restores it after, so evaluation, sampling and everything else run in fp32.
 */
import { PRECISIONS, type Precision } from './native/contracts.js';

export { PRECISIONS, type Precision };

let current: Precision = 'fp32';

/** The precision the model's products use right now (fp32 outside `withPrecision`). */
export function productPrecision(): Precision {
  return current;
}

/** Runs `f` (synchronous: kernels run as they are called on the CPU backends) with products in `p`, then restores the previous precision. */
export function withPrecision<T>(p: Precision, f: () => T): T {
  if (!(PRECISIONS as readonly string[]).includes(p)) throw new Error(`unknown precision "${String(p)}"; choose ${PRECISIONS.join(' or ')}`);
  const before = current;
  current = p;
  try {
    return f();
  } finally {
    current = before;
  }
}
