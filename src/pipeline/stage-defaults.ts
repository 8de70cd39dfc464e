/**
 * Every training stage's defaults, in one place: the pipeline, the CLI's help, the benchmark and
 * the tests read them here, so a recipe change is made once. An experiment's specs set their own
 * steps and learning rates; what they leave out comes from here.
 */
import type { TrainOptions } from '../train/options.js';

/** The model `npm run pretrain` trains, and the one a fine-tuning run on a fresh clone builds first. */
export const DEFAULT_PRESET = 'small';
/** Pretraining tokens when neither --tokens nor --steps is given (they set the steps). */
export const DEFAULT_PRETRAIN_TOKENS = 8_000_000;

/** Where the CLI's stages write by default, and where a later stage looks for its parent. */
export const DEFAULT_BASE = 'checkpoints/base';
export const DEFAULT_ASSISTANT = 'checkpoints/assistant';

export const PRETRAIN_DEFAULTS: TrainOptions = {
  steps: 0, // derived from --tokens when not given
  batch: 16,
  gradAccum: 1,
  // A high floor keeps the learning rate up through the late, abrupt emergence of persona
  // inference (5-8M tokens); 2e-3 decaying to 2e-4 left it unfinished at 8M on some seeds.
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
