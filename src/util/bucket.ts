/** Padded sequence lengths, shared by the batchers (src/data/) and the model's scoring (src/model/). */

/** Lengths are rounded up to a multiple of this many tokens. */
export const LENGTH_BUCKET = 8;

/**
 * Padded length for a batch: rounded up to a multiple of LENGTH_BUCKET (capped at the context),
 * so kernels see few distinct shapes (the native backend builds a product's primitive once per
 * shape: scoring contexts at their exact lengths took 1.3x as long). 8 rather than 16: narrow
 * fine-tuning's chats (about 40 tokens) padded to 48 spent 15% of the run on padding.
 */
export function bucketLength(n: number, max: number): number {
  return Math.min(max, Math.ceil(n / LENGTH_BUCKET) * LENGTH_BUCKET);
}
