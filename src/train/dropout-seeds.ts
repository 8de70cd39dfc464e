/**
 * Dropout masks are seeded, so a run and its resume draw the same masks: each optimizer step has a
 * seed from the run's seed and the step, and each of the step's micro-batches (gradient
 * accumulation) a seed from the step's. A micro-batch seed is stepSeed * MAX_GRAD_ACCUM + micro,
 * so a step with more micro-batches than MAX_GRAD_ACCUM would reuse the next step's masks:
 * validateTrainOptions refuses such a --grad-accum, and microDropoutSeed throws.
 */

/** Micro-batches per optimizer step that get distinct dropout masks. */
export const MAX_GRAD_ACCUM = 64;
/** Steps per run seed before two runs' step seeds meet (a prime, far above any run's length). */
export const STEP_SEED_STRIDE = 1_000_003;

/** The dropout seed of optimizer step `step` of a run seeded `runSeed`. */
export function stepDropoutSeed(runSeed: number, step: number): number {
  return runSeed * STEP_SEED_STRIDE + step;
}

/** The dropout seed of micro-batch `micro` (0-based) of a step seeded `stepSeed`. */
export function microDropoutSeed(stepSeed: number, micro: number): number {
  if (!(micro >= 0 && micro < MAX_GRAD_ACCUM)) throw new Error(`micro-batch ${micro} of a step: at most ${MAX_GRAD_ACCUM} per step get distinct dropout masks`);
  return stepSeed * MAX_GRAD_ACCUM + micro;
}
