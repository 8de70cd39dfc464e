/**
 * Parity with PyTorch, without PyTorch: test/fixtures/parity/ holds PyTorch's loss, gradients and
 * parameters after one AdamW step for the tiny GPT (regenerate: npm run bench -- --write-parity-fixture;
 * the reference is computed in float64 by src/bench/reference_torch.py). Checked on every backend.
 *
 * Two cases: the initial weights (loss, gradients, one AdamW step from mid-training moments) and
 * perturbed weights (init + 0.1 N(0,1): loss and gradients where GELU's curvature and non-uniform
 * attention matter; GELU's erf form would miss the tolerance there by ~5x).
 *
 * Tolerances (what float32 allows, with a wide margin; measured worst cases in brackets):
 * - loss: |loss - ref| <= 1e-5 * |ref|                                   [wasm 1.3e-7 relative]
 * - gradients, per parameter tensor: |g - ref| <= 1e-4 * max|ref| for every element, i.e. relative
 *   to the tensor's scale: float32 error in a sum grows with the size of its terms, not of the result,
 *   so entries near zero cannot be held to a relative tolerance of their own
 *                                                                         [wasm 1.4e-6, native 9e-7, cpu 3e-7]
 * - parameters after one AdamW step: |p - ref| <= 5e-7 + 1e-4 * |ref - p0| (4 float32 ulps at 1, plus
 *   1e-4 of the update; lr 2e-3 makes updates ~1e-3, so a wrong decay mask, bias correction or clip
 *   scale is far outside)                                                 [6e-8 on every backend]
 *
 * And a trajectory (llm.c's test_gpt2): 12 trainer steps (2 micro-batches each, warmup then cosine
 * learning rate, clipping, fresh moments) from the same weights; the loss falls from 6.97 to 4.14.
 * - every step's loss: |loss - ref| <= 1e-4 * ref                       [wasm 1.3e-6, native 1.0e-6, cpu 5.5e-8]
 * - every step's gradient norm (clipping is active in 7 of the 12 steps): within 5e-4 relative
 *                                                                         [wasm 2.4e-5, native 2.2e-6, cpu 1.7e-7]
 * - the parameters at the end, per tensor: ||p - ref|| <= 5e-3 * ||ref - p0|| (AdamW's first steps
 *   are sign-like, so an element whose gradient is float32 noise can move the other way; the norm
 *   over a tensor is what a wrong update rule moves)                     [wasm 4.3e-4, native 3.9e-4, cpu 4.3e-5]
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { loadParityFixture, loadTrajectoryFixture, type ParityFixture } from '../src/bench/parity.js';
import type { Batch, BatchSource } from '../src/data/batches.js';
import type { TensorSet } from '../src/model/checkpoint.js';
import { GPT } from '../src/model/gpt.js';
import { trainStep } from '../src/train/loop.js';
import { AdamW } from '../src/train/optimizer.js';
import { testBackends, use } from './helpers/backends.js';

const LOSS_RTOL = 1e-5;
const GRAD_TOL = 1e-4;
const STEP_ATOL = 5e-7;
const STEP_RTOL = 1e-4;
const TRAJ_LOSS_RTOL = 1e-4;
const TRAJ_NORM_RTOL = 5e-4;
const TRAJ_PARAM_RTOL = 5e-3;

const fx: ParityFixture = loadParityFixture();
const I = fx.inputs;
const copy = (m: Map<string, Float32Array>) => new Map([...m].map(([n, a]) => [n, a.slice()]));

/** A fresh model on the fixture's initial weights (copies: on cpu storage AdamW updates in place, and tensors share their source arrays). */
const freshModel = () => new GPT(I.config, copy(fx.weights));

function freshOptimizer(model: GPT): AdamW {
  const o = I.optimizer;
  const opt = new AdamW(model.params, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, gradClip: o.gradClip });
  const moments: TensorSet = new Map();
  for (const { name, shape } of I.parameters) {
    moments.set(`m/${name}`, { shape, values: fx.m.get(name)!.slice() });
    moments.set(`v/${name}`, { shape, values: fx.v.get(name)!.slice() });
  }
  opt.load({ step: o.priorSteps, moments });
  return opt;
}

const batch: Batch = {
  ids: Int32Array.from(I.batch.ids),
  targets: Int32Array.from(I.batch.targets),
  weights: Float32Array.from(I.batch.weights),
  batch: I.batch.batch,
  T: I.batch.T,
  tokens: I.batch.weights.filter((w) => w > 0).length,
};

function checkLoss(loss: number, ref = fx.reference.loss): void {
  assert.ok(Math.abs(loss - ref) <= LOSS_RTOL * Math.abs(ref), `loss ${loss} vs PyTorch ${ref}`);
}

/** Loss and gradients of the fixture's batch at `weights` against PyTorch's (`expected` may list a subset of parameters). */
function checkGradients(weights: Map<string, Float32Array>, refLoss: number, expected: Map<string, Float32Array>): void {
  const model = new GPT(I.config, copy(weights));
  const { value, grads } = tf.tidy(() => {
    const ids = tf.tensor2d(batch.ids, [batch.batch, batch.T], 'int32');
    const targets = tf.tensor2d(batch.targets, [batch.batch, batch.T], 'int32');
    const w = tf.tensor2d(batch.weights, [batch.batch, batch.T], 'float32');
    return tf.variableGrads(() => model.loss(ids, targets, w), [...model.params.values()]);
  });
  try {
    checkLoss(value.dataSync()[0], refLoss);
    const named = new Map(Object.entries(grads).map(([k, g]) => [model.paramName(k), g]));
    assert.deepEqual([...named.keys()].sort(), I.parameters.map((p) => p.name).sort());
    for (const [name, ref] of expected) {
      const got = named.get(name)!.dataSync();
      let scale = 0;
      for (const r of ref) scale = Math.max(scale, Math.abs(r));
      assert.ok(scale > 0, `PyTorch's gradient of ${name} is all zero`);
      let worst = 0;
      let at = 0;
      for (let i = 0; i < ref.length; i++) {
        const d = Math.abs(got[i] - ref[i]);
        if (d > worst) {
          worst = d;
          at = i;
        }
      }
      assert.ok(worst <= GRAD_TOL * scale, `${name}: max |diff| ${worst.toExponential(2)} at ${at} (${got[at]} vs ${ref[at]}) exceeds ${GRAD_TOL} x ${scale.toExponential(2)}`);
    }
  } finally {
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
  }
}

function checkParamsAfterStep(model: GPT): void {
  for (const { name } of I.parameters) {
    const got = model.params.get(name)!.dataSync();
    const ref = fx.after.get(name)!;
    const p0 = fx.weights.get(name)!;
    let worst = 0;
    let at = -1;
    for (let i = 0; i < ref.length; i++) {
      const excess = Math.abs(got[i] - ref[i]) - (STEP_ATOL + STEP_RTOL * Math.abs(ref[i] - p0[i]));
      if (excess > worst) {
        worst = excess;
        at = i;
      }
    }
    assert.ok(at < 0, `${name}[${at}] after the step: ${got[at]} vs PyTorch ${ref[at]} (before ${p0[at]})`);
  }
}

for (const backend of testBackends()) {
  test(`[${backend}] loss and every gradient match PyTorch's (initial weights)`, async () => {
    await use(backend);
    checkGradients(fx.weights, fx.reference.loss, fx.grads);
  });

  test(`[${backend}] loss and gradients match PyTorch's (perturbed weights, far from init)`, async () => {
    await use(backend);
    checkGradients(fx.perturbedWeights, fx.reference.perturbed_loss, fx.perturbedGrads);
  });

  test(`[${backend}] one AdamW step (step ${I.optimizer.priorSteps + 1}, clipping active) on PyTorch's gradients matches torch.optim.AdamW`, async () => {
    await use(backend);
    const model = freshModel();
    const opt = freshOptimizer(model);
    const grads = new Map(I.parameters.map(({ name, shape }) => [name, tf.tensor(fx.grads.get(name)!.slice(), shape)]));
    const { gradNorm } = opt.apply(grads, I.optimizer.lr);
    assert.ok(Math.abs(gradNorm - fx.reference.grad_norm) <= 1e-4 * fx.reference.grad_norm, `gradient norm ${gradNorm} vs ${fx.reference.grad_norm}`);
    assert.ok(gradNorm > I.optimizer.gradClip, 'the fixture must exercise clipping');
    checkParamsAfterStep(model);
    tf.dispose([...grads.values()]);
    opt.dispose();
    model.dispose();
  });

  test(`[${backend}] one trainer step (trainStep: own gradients, clipping, AdamW) matches PyTorch's`, async () => {
    await use(backend);
    const model = freshModel();
    const opt = freshOptimizer(model);
    const source: BatchSource = { next: () => batch, state: () => null, restore: () => {} };
    const { loss, gradNorm } = trainStep(model, opt, source, 1, I.optimizer.lr, 0);
    checkLoss(loss);
    assert.ok(Math.abs(gradNorm - fx.reference.grad_norm) <= 1e-4 * fx.reference.grad_norm, `gradient norm ${gradNorm} vs ${fx.reference.grad_norm}`);
    checkParamsAfterStep(model);
    opt.dispose();
    model.dispose();
  });

  test(`[${backend}] a 12-step training trajectory follows PyTorch's (losses, gradient norms, final parameters)`, async () => {
    await use(backend);
    const tj = loadTrajectoryFixture();
    const ti = tj.inputs;
    const model = new GPT(ti.config, copy(tj.weights));
    const o = ti.optimizer;
    const opt = new AdamW(model.params, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay, gradClip: o.gradClip });
    const batches: Batch[] = ti.batches.map((b) => ({
      ids: Int32Array.from(b.ids), targets: Int32Array.from(b.targets), weights: Float32Array.from(b.weights), batch: b.batch, T: b.T,
      tokens: b.weights.filter((w) => w > 0).length,
    }));
    let k = 0;
    const source: BatchSource = { next: () => batches[k++], state: () => null, restore: () => {} };
    ti.lrs.forEach((lr, step) => {
      const { loss, gradNorm } = trainStep(model, opt, source, ti.gradAccum, lr, step);
      const ref = tj.reference.losses[step];
      const refNorm = tj.reference.grad_norms[step];
      assert.ok(Math.abs(loss - ref) <= TRAJ_LOSS_RTOL * ref, `step ${step + 1}: loss ${loss} vs PyTorch ${ref}`);
      assert.ok(Math.abs(gradNorm - refNorm) <= TRAJ_NORM_RTOL * refNorm, `step ${step + 1}: gradient norm ${gradNorm} vs PyTorch ${refNorm}`);
    });
    assert.equal(k, batches.length, 'every micro-batch was used once');
    for (const { name } of ti.parameters) {
      const got = model.params.get(name)!.dataSync();
      const ref = tj.final.get(name)!;
      const p0 = tj.weights.get(name)!;
      let diff = 0;
      let moved = 0;
      for (let i = 0; i < ref.length; i++) {
        diff += (got[i] - ref[i]) ** 2;
        moved += (ref[i] - p0[i]) ** 2;
      }
      assert.ok(Math.sqrt(diff) <= TRAJ_PARAM_RTOL * Math.sqrt(moved), `${name}: ||p - ref|| ${Math.sqrt(diff).toExponential(2)} vs ||ref - p0|| ${Math.sqrt(moved).toExponential(2)}`);
    }
    opt.dispose();
    model.dispose();
  });
}
