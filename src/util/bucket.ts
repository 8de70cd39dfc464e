/** Padded sequence lengths, shared by the batchers (src/data/) and the model's scoring (src/model/). */

/** Lengths are rounded up to a multiple of this many tokens. */
export const LENGTH_BUCKET = 16;

/**
 * Padded length for a batch: rounded up to a multiple of LENGTH_BUCKET (capped at the context),
 * so kernels see few distinct shapes (the native backend compiles a matmul primitive per shape).
 */
export function bucketLength(n: number, max: number): number {
  return Math.min(max, Math.ceil(n / LENGTH_BUCKET) * LENGTH_BUCKET);
}
