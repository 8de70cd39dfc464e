/** Dropout seeds: every micro-batch of every step draws its own masks, and --grad-accum cannot make them repeat. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MAX_GRAD_ACCUM, microDropoutSeed, stepDropoutSeed } from '../src/train/dropout-seeds.js';
import { validateTrainOptions } from '../src/train/options.js';
import { PRETRAIN_DEFAULTS } from '../src/pipeline/stage-defaults.js';

test('micro-batch seeds are distinct across the steps of a run and match the trainer\'s scheme', () => {
  const seen = new Set<number>();
  for (let step = 0; step < 50; step++) {
    for (let micro = 0; micro < MAX_GRAD_ACCUM; micro++) seen.add(microDropoutSeed(stepDropoutSeed(3, step), micro));
  }
  assert.equal(seen.size, 50 * MAX_GRAD_ACCUM);
  // The numbers every earlier run used (resume and reproducibility depend on them).
  assert.equal(stepDropoutSeed(3, 7), 3 * 1_000_003 + 7);
  assert.equal(microDropoutSeed(stepDropoutSeed(3, 7), 5), (3 * 1_000_003 + 7) * 64 + 5);
  assert.throws(() => microDropoutSeed(0, MAX_GRAD_ACCUM), /at most 64 per step/);
});

test(`--grad-accum above ${MAX_GRAD_ACCUM} is refused: its masks would repeat the next step's`, () => {
  validateTrainOptions({ ...PRETRAIN_DEFAULTS, steps: 10, gradAccum: MAX_GRAD_ACCUM });
  assert.throws(() => validateTrainOptions({ ...PRETRAIN_DEFAULTS, steps: 10, gradAccum: MAX_GRAD_ACCUM + 1 }), /--grad-accum must be at most 64/);
});
