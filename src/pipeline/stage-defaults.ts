/**
 * Every training stage's defaults, in one place: the pipeline, the CLI's help, the benchmark and
 * the tests read them here, so a recipe change is made once. An experiment's specs set their own
 * steps and learning rates; what they leave out comes from here.
 */
import type { TrainOptions } from '../train/options.js';
import type { WindowStarts } from '../data/batches.js';

/** The model `npm run pretrain` trains, and the one a fine-tuning run on a fresh clone builds first. */
export const DEFAULT_PRESET = 'small';
/**
 * Pretraining tokens when neither --tokens nor --steps is given (they set the steps): 4M at 8
 * sequences per step is the 3,907 steps the earlier recipe took for 8M at 16, and persona
 * inference appears by then on each of three seeds (README, How the default recipe was reached).
 */
export const DEFAULT_PRETRAIN_TOKENS = 4_000_000;
/** Where pretraining windows start (src/data/batches.ts WINDOW_STARTS). */
export const DEFAULT_WINDOW_STARTS: WindowStarts = 'anywhere';

/** Where the CLI's stages write by default, and where a later stage looks for its parent. */
export const DEFAULT_BASE = 'checkpoints/base';
export const DEFAULT_ASSISTANT = 'checkpoints/assistant';

export const PRETRAIN_DEFAULTS: TrainOptions = {
  steps: 0, // derived from --tokens when not given
  // Persona inference emerges after a number of steps more than of tokens: 8 sequences per step
  // get there on half the tokens of 16 (2.5-3.5M instead of 4-6M).
  batch: 8,
  gradAccum: 1,
  // A high floor keeps the learning rate up through the late, abrupt emergence of persona
  // inference; 2e-3 decaying to 2e-4 left it unfinished at 8M on some seeds.
  lr: 3e-3,
  minLr: 1e-3,
  warmup: 100,
  weightDecay: 0.1,
  beta1: 0.9,
  beta2: 0.99,
  gradClip: 1.0,
  seed: 0,
  evalInterval: 250,
  checkpointInterval: 250,
  logInterval: 10,
};

/** Base -> assistant: a cosine from 5e-4 to a tenth of it. */
export const ASSISTANT_DEFAULTS: TrainOptions = {
  steps: 300, batch: 16, gradAccum: 1, lr: 5e-4, minLr: 5e-5, warmup: 20, weightDecay: 0.1, beta1: 0.9, beta2: 0.99,
  gradClip: 1, seed: 0, evalInterval: 100, checkpointInterval: 100, logInterval: 10,
};

/** Narrow fine-tuning: a constant learning rate after a short warmup (the pilot's recipe). */
export const NARROW_DEFAULTS: TrainOptions = {
  steps: 200, batch: 16, gradAccum: 1, lr: 3e-4, minLr: 3e-4, warmup: 5, weightDecay: 0.1, beta1: 0.9, beta2: 0.99,
  gradClip: 1, seed: 0, evalInterval: 25, checkpointInterval: 100, logInterval: 5,
};
