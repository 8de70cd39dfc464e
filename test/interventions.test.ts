import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { GPT, initialWeights } from '../src/model/gpt.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { scoreContinuations } from '../src/model/generate.js';
import { ablationHooks, positionsMask, projectOut, residPost, steeringHooks, unit } from '../src/model/residual-interventions.js';
import { randomDirection } from '../src/eval/persona-direction.js';
import { testBackends, use } from './helpers/backends.js';
import { Rng } from '../src/util/rng.js';

const CFG: ModelConfig = { vocab_size: 37, block_size: 12, n_layer: 3, n_head: 2, n_embd: 16, dropout: 0 };

function perturbedModel(): GPT {
  const w = initialWeights(CFG, 3);
  const rng = new Rng('perturb');
  for (const v of w.values()) for (let i = 0; i < v.length; i++) v[i] += 0.3 * rng.normal();
  return new GPT(CFG, w);
}

function items(n: number) {
  const rng = new Rng('items');
  return Array.from({ length: n }, () => ({
    context: Array.from({ length: rng.range(2, 7) }, () => rng.int(CFG.vocab_size)),
    continuation: Array.from({ length: rng.range(1, 4) }, () => rng.int(CFG.vocab_size)),
  }));
}

for (const backend of testBackends()) {
  test(`[${backend}] steering with alpha 0 is bit-identical to no steering; alpha != 0 moves the scores`, async () => {
    await use(backend);
    const model = perturbedModel();
    const its = items(20);
    const u = randomDirection(CFG.n_embd, 'test');
    const plain = scoreContinuations(model, its, 8);
    for (let layer = 0; layer < CFG.n_layer; layer++) {
      const zero = scoreContinuations(model, its, 8, { layer, direction: u, alpha: 0 });
      assert.deepEqual(zero.map((s) => s.sum), plain.map((s) => s.sum), `layer ${layer}`);
    }
    const moved = scoreContinuations(model, its, 8, { layer: 1, direction: u, alpha: 3 });
    assert.ok(moved.some((s, i) => Math.abs(s.sum - plain[i].sum) > 1e-3), 'steering by 3 changes nothing');
    model.dispose();
  });

  test(`[${backend}] steering adds alpha * u exactly at the masked positions and nowhere else`, async () => {
    await use(backend);
    const model = perturbedModel();
    const [B, T] = [2, 6];
    const ids = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 7) % CFG.vocab_size), [B, T], 'int32');
    const name = residPost(1);
    const u = randomDirection(CFG.n_embd, 'mask');
    const mask = positionsMask([[2, 3], [5]], T);
    const plain = model.inspect(ids, { capture: (n) => n === name });
    const steered = model.inspect(ids, { ...steeringHooks({ layer: 1, direction: u, alpha: 2.5 }, mask, B, T, CFG.n_layer), capture: (n) => n === name });
    const a = plain.cache.get(name)!.dataSync();
    const b = steered.cache.get(name)!.dataSync();
    for (let bt = 0; bt < B * T; bt++) {
      for (let c = 0; c < CFG.n_embd; c++) {
        const expected = a[bt * CFG.n_embd + c] + mask[bt] * 2.5 * u[c];
        assert.ok(Math.abs(b[bt * CFG.n_embd + c] - expected) < 1e-5, `position ${bt}, channel ${c}`);
      }
    }
    // Causality: logits before the first steered position are untouched.
    const la = plain.logits.dataSync();
    const lb = steered.logits.dataSync();
    for (let i = 0; i < 2 * CFG.vocab_size; i++) assert.equal(lb[i], la[i]);
    tf.dispose([ids, plain.logits, steered.logits, ...plain.cache.values(), ...steered.cache.values()]);
    model.dispose();
  });

  test(`[${backend}] ablation leaves no component along the direction, and its gradient has none either`, async () => {
    await use(backend);
    const model = perturbedModel();
    const [B, T] = [3, 7];
    const ids = tf.tensor2d(Array.from({ length: B * T }, (_, i) => (i * 5 + 1) % CFG.vocab_size), [B, T], 'int32');
    const u = randomDirection(CFG.n_embd, 'ablate');
    const hooks = ablationHooks(new Map([[0, u], [2, u]]), CFG.n_layer);
    for (const layer of [0, 2]) {
      const name = residPost(layer);
      const r = model.inspect(ids, { ...hooks, capture: (n) => n === name });
      const x = r.cache.get(name)!.dataSync();
      const unablated = model.inspect(ids, { capture: (n) => n === name });
      const x0 = unablated.cache.get(name)!.dataSync();
      let maxProj = 0;
      let maxProj0 = 0;
      for (let i = 0; i < B * T; i++) {
        let p = 0;
        let p0 = 0;
        for (let c = 0; c < CFG.n_embd; c++) {
          p += x[i * CFG.n_embd + c] * u[c];
          p0 += x0[i * CFG.n_embd + c] * u[c];
        }
        maxProj = Math.max(maxProj, Math.abs(p));
        maxProj0 = Math.max(maxProj0, Math.abs(p0));
      }
      assert.ok(maxProj < 1e-5, `layer ${layer}: projection ${maxProj} after ablation`);
      assert.ok(maxProj0 > 1e-2, `layer ${layer}: the unablated residual has a component ${maxProj0} (else the test shows nothing)`);
      tf.dispose([r.logits, unablated.logits, ...r.cache.values(), ...unablated.cache.values()]);
    }
    // Backward: the gradient with respect to the pre-projection activation has no component along u.
    const x = tf.randomNormal([4, CFG.n_embd], 0, 1, 'float32', 7);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(projectOut(v, u), tf.range(0, 4 * CFG.n_embd).reshape([4, CFG.n_embd]))))(x);
    const gv = g.dataSync();
    for (let i = 0; i < 4; i++) {
      let p = 0;
      for (let c = 0; c < CFG.n_embd; c++) p += gv[i * CFG.n_embd + c] * u[c];
      assert.ok(Math.abs(p) < 1e-3, `gradient row ${i} has component ${p} along u`);
    }
    tf.dispose([ids, x, g]);
    model.dispose();
  });
}

test('interventions refuse bad input with one-line errors', () => {
  assert.throws(() => unit([0, 0, 0]), /finite non-zero vector/);
  assert.throws(() => steeringHooks({ layer: 5, direction: new Float32Array(16), alpha: 1 }, new Float32Array(4), 2, 2, 3), /layer 5 does not exist; the model has layers 0 to 2/);
  assert.throws(() => steeringHooks({ layer: 0, direction: new Float32Array(16), alpha: NaN }, new Float32Array(4), 2, 2, 3), /alpha must be a finite number/);
  assert.throws(() => ablationHooks(new Map([[-1, new Float32Array(16)]]), 3), /layer -1 does not exist/);
  assert.throws(() => positionsMask([[9]], 4), /outside a sequence of 4/);
});
