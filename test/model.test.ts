import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { GPT, hookNames, initialWeights } from '../src/model/gpt.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { sample, scoreContinuations } from '../src/model/generate.js';
import { sampleCached } from '../src/model/cached-sample.js';
import { tidyValues } from '../src/model/read.js';
import { testBackends, use } from './helpers/backends.js';
import { Rng } from '../src/util/rng.js';

const CFG: ModelConfig = { vocab_size: 37, block_size: 12, n_layer: 2, n_head: 2, n_embd: 16, dropout: 0 };

function batch(seed: number, B = 3, T = 10) {
  const rng = new Rng(seed);
  const ids = Array.from({ length: B * T }, () => rng.int(CFG.vocab_size));
  const targets = Array.from({ length: B * T }, () => rng.int(CFG.vocab_size));
  const weights = Array.from({ length: B * T }, (_, i) => (i % 7 === 0 ? 0 : 1));
  return {
    ids: tf.tensor2d(ids, [B, T], 'int32'),
    targets: tf.tensor2d(targets, [B, T], 'int32'),
    weights: tf.tensor2d(weights, [B, T], 'float32'),
  };
}

function lossAndGrads(model: GPT, b: ReturnType<typeof batch>) {
  const { value, grads } = tf.variableGrads(() => model.loss(b.ids, b.targets, b.weights), [...model.params.values()]);
  const out = new Map<string, Float32Array>();
  for (const [k, g] of Object.entries(grads)) out.set(model.paramName(k), g.dataSync() as Float32Array);
  const loss = value.dataSync()[0];
  tf.dispose([value, ...Object.values(grads)]);
  return { loss, grads: out };
}

for (const backend of testBackends()) {
  test(`[${backend}] every parameter's gradient matches finite differences`, async () => {
    await use(backend);
    const weights = initialWeights(CFG, 1);
    // Larger-than-init weights make every path matter (attention far from uniform, LN gains off 1).
    const rng = new Rng('perturb');
    for (const w of weights.values()) for (let i = 0; i < w.length; i++) w[i] += 0.3 * rng.normal();
    const model = new GPT(CFG, weights);
    const b = batch(2);
    const { grads } = lossAndGrads(model, b);
    const eps = 1e-2;
    for (const [name, p] of model.params) {
      const d = new Float32Array(p.size);
      for (let i = 0; i < d.length; i++) d[i] = rng.normal();
      const norm = Math.hypot(...d);
      for (let i = 0; i < d.length; i++) d[i] /= norm;
      const base = p.dataSync().slice() as Float32Array;
      const at = (s: number) => {
        p.assign(tf.tensor(base.map((v, i) => v + s * d[i]), p.shape));
        return tf.tidy(() => model.loss(b.ids, b.targets, b.weights).dataSync()[0]);
      };
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      p.assign(tf.tensor(base, p.shape));
      const g = grads.get(name)!;
      const analytic = g.reduce((s, v, i) => s + v * d[i], 0);
      assert.ok(Math.abs(analytic - numeric) <= 2e-3 + 3e-2 * Math.abs(numeric), `${name}: analytic ${analytic} vs numeric ${numeric}`);
    }
    model.dispose();
  });

  test(`[${backend}] loss and gradients equal the cpu backend's`, async () => {
    await use('cpu');
    const ref = GPT.init(CFG, 3);
    const b = batch(4);
    const expected = lossAndGrads(ref, b);
    ref.dispose();
    await use(backend);
    const model = GPT.init(CFG, 3);
    const got = lossAndGrads(model, batch(4));
    const tol = backend === 'wasm' ? 1e-4 : 2e-4;
    assert.ok(Math.abs(got.loss - expected.loss) < tol, `loss ${got.loss} vs ${expected.loss}`);
    for (const [name, g] of expected.grads) {
      const h = got.grads.get(name)!;
      let worst = 0;
      for (let i = 0; i < g.length; i++) worst = Math.max(worst, Math.abs(g[i] - h[i]));
      assert.ok(worst < tol, `${name}: max |diff| ${worst}`);
    }
    model.dispose();
  });

  test(`[${backend}] hooks capture every TransformerLens point and edits change the output`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 5);
    const ids = batch(6).ids;
    const names = hookNames(CFG);
    const { logits, cache } = model.inspect(ids, { capture: () => true });
    assert.deepEqual([...cache.keys()].sort(), [...names].sort());
    assert.deepEqual(cache.get('blocks.1.hook_resid_post')!.shape, [3, 10, 16]);
    const pattern = cache.get('blocks.0.attn.hook_pattern')!;
    assert.deepEqual(pattern.shape, [3, 2, 10, 10]);
    const p = pattern.arraySync() as number[][][][];
    for (let t = 0; t < 10; t++) {
      assert.ok(Math.abs(p[1][1][t].reduce((a, c) => a + c, 0) - 1) < 1e-5, 'rows sum to 1');
      for (let s = t + 1; s < 10; s++) assert.ok(p[1][1][t][s] < 1e-6, 'causal');
    }
    const plain = tidyValues(() => model.forward(ids).logits);
    assert.deepEqual(logits.dataSync(), plain, 'capturing does not change the output');
    const steered = tidyValues(() => model.forward(ids, { hooks: { edit: (n, v) => (n === 'blocks.0.hook_resid_post' ? tf.add(v, 1) : undefined) } }).logits);
    assert.notDeepEqual(steered, plain);
    tf.dispose([logits, ...cache.values()]);
    model.dispose();
  });

  test(`[${backend}] every hook point honours an edit; an edit of another shape is refused`, async () => {
    await use(backend);
    // Weights away from init, so attention is far from uniform and every edit shows.
    const weights = initialWeights(CFG, 5);
    const rng = new Rng('hooks');
    for (const w of weights.values()) for (let i = 0; i < w.length; i++) w[i] += 0.3 * rng.normal();
    const model = new GPT(CFG, weights);
    const ids = batch(6).ids;
    const plain = tidyValues(() => model.forward(ids).logits);
    const run = (edit: (n: string, v: tf.Tensor) => tf.Tensor | undefined) => tidyValues(() => model.forward(ids, { hooks: { edit } }).logits);
    const maxDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
    for (const name of hookNames(CFG)) {
      // A replacement with the same values changes nothing (keys, values and pattern are recomputed from it)...
      const same = run((n, v) => (n === name ? v.clone() : undefined));
      assert.ok(maxDiff(same, plain) < 1e-5, `${name}: an identical replacement moved the logits by ${maxDiff(same, plain)}`);
      // ...and a different one changes the output.
      const changed = run((n, v) => {
        if (n !== name) return undefined;
        // Patterns stay probabilities: attend to the first position only.
        if (n.endsWith('hook_pattern')) return tf.oneHot(tf.zeros(v.shape.slice(0, -1), 'int32'), v.shape[v.shape.length - 1]).toFloat();
        return tf.add(tf.mul(v, 2), tf.sin(tf.mul(v, 3)));
      });
      assert.ok(maxDiff(changed, plain) > 1e-3, `${name}: the edit did not change the output`);
      assert.throws(() => run((n, v) => (n === name ? v.reshape([-1]) : undefined)), new RegExp(`hook ${name.replace(/\./g, '\\.')}: an edit must keep`));
    }
    model.dispose();
  });

  test(`[${backend}] cached sampling follows the full model exactly`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 9);
    const prompts = [[1, 5, 9], [2, 8, 3], [4, 4, 4, 4], [7]];
    // top-k 1 makes both samplers greedy: the tokens must agree step for step.
    const opts = { maxNewTokens: 6, temperature: 1, topK: 1 };
    const full = sample(model, prompts, { ...opts, rng: new Rng(1) });
    const cached = sampleCached(model, prompts, { ...opts, rng: new Rng(1) });
    assert.deepEqual(cached, full);
    const before = tf.memory().numTensors;
    sampleCached(model, prompts, { ...opts, rng: new Rng(2), temperature: 0.7, topK: 0 });
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
    model.dispose();
  });

  test(`[${backend}] continuation scores agree with the training loss`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 7);
    const seq = [1, 5, 9, 2, 8, 3, 4];
    const [s] = scoreContinuations(model, [{ context: seq.slice(0, 3), continuation: seq.slice(3) }]);
    const weights = [0, 0, 1, 1, 1, 1];
    const loss = tf.tidy(() =>
      model.loss(tf.tensor2d([seq.slice(0, -1)], [1, 6], 'int32'), tf.tensor2d([seq.slice(1)], [1, 6], 'int32'), tf.tensor2d([weights], [1, 6])).dataSync()[0],
    );
    assert.ok(Math.abs(-s.sum / 4 - loss) < 1e-4, `${-s.sum / 4} vs ${loss}`);
    assert.equal(s.count, 4);
    model.dispose();
  });
}
