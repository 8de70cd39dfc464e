/** Padded sequence lengths, shared by the batchers (src/data/) and the model's scoring (src/model/). */

/** Lengths of batches that are read (sampling prompts, validation, continuation scoring) are rounded up to a multiple of this many tokens. */
export const LENGTH_BUCKET = 16;

/**
 * Lengths of training batches of chats are rounded up to a multiple of this many tokens: narrow
 * fine-tuning's chats (about 40 tokens) padded to 48 instead of 40 made a run 1.2x as long (6.1 s
 * vs 5.2 s). Reading keeps 16: with 8, evaluations in the experiment's workers, which build a
 * product primitive for every new shape, took 11-12 s instead of 9-10 s.
 */
export const TRAIN_LENGTH_BUCKET = 8;

/**
 * Padded length for a batch: rounded up to a multiple of `bucket` (capped at the context), so
 * kernels see few distinct shapes (the native backend builds a product's primitive once per
 * shape). Choice scoring pads its contexts to the longest (bucket 1): it reads the same probe set
 * at every evaluation, so its shapes recur.
 */
export function bucketLength(n: number, max: number, bucket = LENGTH_BUCKET): number {
  return Math.min(max, Math.ceil(n / bucket) * bucket);
}
