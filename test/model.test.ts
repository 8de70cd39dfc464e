import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import { GPT, hookNames, initialWeights } from '../src/model/gpt.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { sample, scoreContinuations } from '../src/model/generate.js';
import { sampleCached } from '../src/model/cached-sample.js';
import { choiceLayout, scoreChoices } from '../src/model/choice-scores.js';
import { activationsAt, siteBatches, type ActivationSite } from '../src/eval/persona-probe.js';
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

  test(`[${backend}] the cached sampler draws what the full model draws, prompts of any length in one batch`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 11);
    // Lengths 1 to 3 (every sequence stays inside the context of 12, as sample()'s sliding window
    // would not), repeats (read once, then copied).
    const rng = new Rng('prompts');
    const seq = (n: number) => Array.from({ length: n }, () => 1 + rng.int(CFG.vocab_size - 1));
    const base = [seq(1), seq(3), seq(2), seq(3), seq(1)];
    const prompts = [...base, base[2], base[2], base[4], base[1]];
    // Temperature sampling with stops at some tokens, so sequences finish at different steps and leave the batch.
    const opts = { maxNewTokens: 9, temperature: 0.9, topK: 0, stopAtNewline: (t: number) => t % 5 === 0 };
    const full = sample(model, prompts, { ...opts, rng: new Rng('draw') });
    const before = tf.memory().numTensors;
    const cached = sampleCached(model, prompts, { ...opts, rng: new Rng('draw') });
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
    assert.deepEqual(cached, full);
    assert.ok(cached.some((c) => c.length === 9) && cached.some((c) => c.length < 9), 'some sequences stop early, some run to the end');
    const inTwos = { ...opts, batchSize: 2 };
    assert.deepEqual(sampleCached(model, prompts, { ...inTwos, rng: new Rng('draw') }), sample(model, prompts, { ...inTwos, rng: new Rng('draw') }), 'batches of 2');
    // At the end of the context a sequence stops: the token after position 11 has no position.
    const long = sampleCached(model, [seq(12), seq(15), seq(10), seq(2)], { ...opts, stopAtNewline: undefined, rng: new Rng(3) });
    assert.deepEqual(long.map((c) => c.length), [1, 1, 3, 9]);
    assert.throws(() => sampleCached(model, [[1, 2], []], { ...opts, rng: new Rng(1) }), /prompt 1 is empty/);
    model.dispose();
  });

  test(`[${backend}] choice scores read each context and shared answer start once and match scoring each continuation alone`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 13);
    const rng = new Rng('choices');
    const seq = (n: number) => Array.from({ length: n }, () => 1 + rng.int(CFG.vocab_size - 1));
    const opening = seq(9);
    const [a, x, y] = seq(3);
    const items = [
      { context: seq(4), continuations: [seq(3), seq(3)] },
      { context: seq(1), continuations: [seq(1), seq(4), seq(2)] }, // one-token context, uneven and three continuations
      { context: seq(9), continuations: [seq(4), seq(1)] }, // 9 + 4 - 1 = 12: just fits
      { context: seq(11), continuations: [seq(3), seq(2)] }, // does not fit: clipped as scoreContinuations clips
      { context: seq(6), continuations: [seq(1), seq(1)] },
      // Continuations that share their first tokens read those once (one continuation the start
      // of another, one equal to it); contexts that share an opening (read by separate rows).
      { context: [...opening, ...seq(1)], continuations: [[a, x], [a, y, x]] },
      { context: [...opening, ...seq(2)], continuations: [[a], [a, x], [a]] },
      { context: opening, continuations: [seq(2), seq(3)] },
      { context: [...opening, ...seq(2)], continuations: [[a, x], [a, y]] },
    ];
    assert.deepEqual(choiceLayout(items[5]).stem, [items[5].context.at(-1), a], 'the first answer token both continuations share is read once');
    assert.deepEqual(choiceLayout(items[5]).branches, [[x], [y, x]]);
    assert.deepEqual(choiceLayout(items[6]).branches, [[a], [a, x], [a]], 'each branch keeps a token');
    scoreChoices(model, items, 2); // the first call keeps a causal mask per new length (ops.ts causalMask)
    const before = tf.memory().numTensors;
    const got = scoreChoices(model, items, 2);
    assert.equal(tf.memory().numTensors, before, 'no tensors leak');
    items.forEach((it, i) => {
      const want = scoreContinuations(model, it.continuations.map((continuation) => ({ context: it.context, continuation })));
      want.forEach((w, k) => {
        assert.equal(got[i][k].count, w.count);
        assert.ok(Math.abs(got[i][k].sum - w.sum) < 1e-4 * (1 + Math.abs(w.sum)), `item ${i} continuation ${k}: ${got[i][k].sum} vs ${w.sum}`);
      });
    });
    assert.throws(() => scoreChoices(model, [{ context: seq(2), continuations: [seq(1), []] }]), /empty continuation/);
    model.dispose();
  });

  test(`[${backend}] residualsAt reads what the hooks capture, without the later blocks`, async () => {
    await use(backend);
    const model = GPT.init({ ...CFG, n_layer: 3 }, 17);
    const rng = new Rng('resid');
    const ids = tf.tensor2d(Array.from({ length: 2 * 10 }, () => rng.int(CFG.vocab_size)), [2, 10], 'int32');
    const positions = Int32Array.from([3, 9, 10, 17]);
    const { logits, cache } = model.inspect(ids, { capture: (n) => n.endsWith('hook_resid_post') });
    for (const layers of [[0], [2, 1], [0, 1, 2]]) {
      const got = model.residualsAt(ids, positions, layers).map((t) => { const v = t.arraySync() as number[][]; t.dispose(); return v; });
      layers.forEach((l, k) => {
        const want = tf.tidy(() => tf.gather(cache.get(`blocks.${l}.hook_resid_post`)!.reshape([-1, CFG.n_embd]), tf.tensor1d(positions, 'int32')).arraySync()) as number[][];
        const diff = Math.max(...got[k].flatMap((row, i) => row.map((v, j) => Math.abs(v - want[i][j]))));
        assert.ok(diff < 1e-5, `layer ${l}: ${diff}`);
      });
    }
    assert.throws(() => tf.tidy(() => model.residualsAt(ids, positions, [3])[0]), /layer 3 does not exist; the model has layers 0 to 2/);
    tf.dispose([ids, logits, ...cache.values()]);
    model.dispose();
  });

  test(`[${backend}] a document's sites are read from one row and give what each site's own window gives`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 19);
    const rng = new Rng('sites');
    const doc = Uint16Array.from({ length: 20 }, () => rng.int(CFG.vocab_size));
    const other = Uint16Array.from(doc, (t, i) => (i === 2 ? (t + 1) % CFG.vocab_size : t));
    const sites: ActivationSite[] = [
      { tokens: doc.subarray(0, 5), label: 0, doc: 0 },
      { tokens: doc.subarray(0, 12), label: 1, doc: 0 },
      { tokens: doc.subarray(0, 9), label: 0, doc: 0 },
      { tokens: other.subarray(0, 7), label: 1, doc: 0 }, // same document number, different tokens: a row of its own
      { tokens: doc.subarray(0, 17), label: 0, doc: 0 }, // deeper than the context: its last 12 tokens
      { tokens: doc.subarray(0, 3), label: 1 }, // no document
      { tokens: doc.subarray(0, 1), label: 1, doc: 0 },
    ];
    const rows = siteBatches(sites, CFG.block_size, 2).flatMap((b) => Array.from({ length: b.B }, (_, r) => b.ids.subarray(r * b.T, (r + 1) * b.T)));
    assert.equal(rows.length, 4, 'doc 0 fitting sites share one row; the changed, deep and doc-less sites have their own');
    const acts = activationsAt(model, sites, [0, 1], 2);
    sites.forEach((s, i) => {
      const window = s.tokens.subarray(Math.max(0, s.tokens.length - CFG.block_size));
      const alone = tidyValues(() => tf.concat(model.residualsAt(tf.tensor2d(Int32Array.from(window), [1, window.length], 'int32'), Int32Array.from([window.length - 1]), [0, 1])));
      [0, 1].forEach((l) => {
        const got = acts[l].subarray(i * CFG.n_embd, (i + 1) * CFG.n_embd);
        const diff = Math.max(...got.map((v, j) => Math.abs(v - alone[l * CFG.n_embd + j])));
        assert.ok(diff < 1e-5, `site ${i} layer ${l}: ${diff}`);
      });
    });
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
