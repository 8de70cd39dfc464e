/**
 * Copies where copies are promised: GPT.weights() / adapterWeights() and AdamW.state() return
 * arrays that later training does not change, and AdamW.load() neither keeps nor changes the
 * arrays it is given (on cpu and native a tensor made from an array shares it, and the fused
 * AdamW updates in place), nor leaks the tensors it makes.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchSource } from '../src/data/batches.js';
import type { TensorSet } from '../src/model/checkpoint.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { GPT } from '../src/model/gpt.js';
import { trainStep } from '../src/train/loop.js';
import { AdamW } from '../src/train/optimizer.js';
import { Rng } from '../src/util/rng.js';
import { testBackends, use } from './helpers/backends.js';

const CFG: ModelConfig = { vocab_size: 40, block_size: 8, n_layer: 1, n_head: 2, n_embd: 16, dropout: 0 };
const OPTS = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, gradClip: 1 };

function source(): BatchSource {
  const rng = new Rng('copies');
  const n = 2 * CFG.block_size;
  return {
    next: (): Batch => ({
      ids: Int32Array.from({ length: n }, () => rng.int(CFG.vocab_size)),
      targets: Int32Array.from({ length: n }, () => rng.int(CFG.vocab_size)),
      weights: new Float32Array(n).fill(1),
      batch: 2,
      T: CFG.block_size,
      tokens: n,
    }),
    state: () => null,
    restore: () => {},
  };
}

const snapshot = (m: Map<string, Float32Array>) => new Map([...m].map(([k, v]) => [k, v.slice()]));

for (const backend of testBackends()) {
  test(`[${backend}] weights(), adapterWeights() and AdamW.state() are copies that training leaves alone`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 1);
    model.addAdapters({ rank: 2, alpha: 4, targets: ['h.0.mlp.c_fc.weight'] }, 1);
    const opt = new AdamW(new Map([...model.params, ...model.adapters]), OPTS);
    const src = source();
    trainStep(model, opt, src, 1, 1e-2, 0);
    const weights = model.weights();
    const adapters = model.adapterWeights();
    const state = opt.state();
    const before = [snapshot(weights), snapshot(adapters), new Map([...state.moments].map(([k, v]) => [k, v.values.slice()]))];
    trainStep(model, opt, src, 1, 1e-2, 1);
    assert.deepEqual(snapshot(weights), before[0], 'weights() changed under training');
    assert.deepEqual(snapshot(adapters), before[1], 'adapterWeights() changed under training');
    assert.deepEqual(new Map([...state.moments].map(([k, v]) => [k, v.values])), before[2], 'state() changed under training');
    assert.notDeepEqual(model.weights(), weights, 'the model did train');
    opt.dispose();
    model.dispose();
  });

  test(`[${backend}] AdamW.load copies the state it is given and leaks nothing`, async () => {
    await use(backend);
    const model = GPT.init(CFG, 2);
    const trained = new AdamW(model.params, OPTS);
    const src = source();
    trainStep(model, trained, src, 1, 1e-2, 0);
    const state = trained.state();
    const saved: TensorSet = new Map([...state.moments].map(([k, v]) => [k, { shape: v.shape, values: v.values.slice() }]));
    const frozen = new Map([...saved].map(([k, v]) => [k, v.values.slice()]));
    trained.dispose();

    const opt = new AdamW(model.params, OPTS);
    const tensors = tf.memory().numTensors;
    opt.load({ step: state.step, moments: saved });
    assert.equal(tf.memory().numTensors, tensors, 'load() leaves no tensors behind');
    trainStep(model, opt, src, 1, 1e-2, 1);
    trainStep(model, opt, src, 1, 1e-2, 2);
    assert.deepEqual(new Map([...saved].map(([k, v]) => [k, v.values])), frozen, 'training changed the loaded state object');
    // The object can be loaded again and still holds what was saved.
    const opt2 = new AdamW(model.params, OPTS);
    opt2.load({ step: state.step, moments: saved });
    assert.deepEqual(new Map([...opt2.state().moments].map(([k, v]) => [k, v.values])), frozen);
    assert.throws(() => opt2.load({ step: 1, moments: new Map([...saved].slice(1)) }), /optimizer state lacks/);
    const short: TensorSet = new Map([...saved].map(([k, v]) => [k, { shape: v.shape, values: v.values.slice(1) }]));
    assert.throws(() => opt2.load({ step: 1, moments: short }), /has \d+ values, expected shape/);
    opt.dispose();
    opt2.dispose();
    model.dispose();
  });
}
