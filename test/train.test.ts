import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { WindowSampler, type Batch, type BatchSource } from '../src/data/batches.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT, initialWeights } from '../src/model/gpt.js';
import { formatSeconds, trainStep } from '../src/train/loop.js';
import { AdamW, learningRate } from '../src/train/optimizer.js';
import type { TrainOptions } from '../src/train/options.js';
import { PRETRAIN_DEFAULTS } from '../src/pipeline/stage-defaults.js';
import { runSession, type SessionSpec } from '../src/train/training-session.js';
import { Rng } from '../src/util/rng.js';
import { testBackends, use } from './helpers/backends.js';
import { worldVocabulary } from '../src/world/lexicon-strings.js';

const vocab = worldVocabulary();
const CFG: ModelConfig = { vocab_size: vocab.size, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, dropout: 0.1 };
const root = mkdtempSync(join(tmpdir(), 'persona-train-'));
after(() => rmSync(root, { recursive: true, force: true }));

function stream(n = 5000, seed = 1): Uint16Array {
  const rng = new Rng(seed);
  return Uint16Array.from({ length: n }, () => 3 + rng.int(200));
}

function spec(out: string, options: Partial<TrainOptions>, resume = false): SessionSpec {
  const o: TrainOptions = { ...PRETRAIN_DEFAULTS, steps: 8, batch: 4, warmup: 2, lr: 3e-3, evalInterval: 0, checkpointInterval: 100, logInterval: 1, ...options };
  return {
    stage: 'pretrain', out, model: CFG, initialWeights: () => initialWeights(CFG, 0), vocab, data: 'synthetic', parent: null, info: {},
    options: o, explicit: resume ? {} : options, resume, source: new WindowSampler(stream(), o.batch, CFG.block_size, o.seed),
  };
}

const losses = (rows: Array<Record<string, unknown>>) => rows.map((r) => r.loss as number);

test('durations print rounded to their last unit, never as 2m60s', () => {
  assert.deepEqual([0.4, 59.4, 59.6, 125, 179.6, 3599.4, 3599.9, 7140, 86_399].map(formatSeconds), ['0s', '59s', '1m00s', '2m05s', '3m00s', '59m59s', '1h00m', '1h59m', '24h00m']);
  assert.equal(formatSeconds(Number.NaN), '?');
});

test('the learning rate warms up linearly and decays by cosine to min_lr', () => {
  const o = { lr: 1, minLr: 0.1, warmup: 10, steps: 110 };
  assert.equal(learningRate(0, o), 0.1);
  assert.equal(learningRate(9, o), 1);
  assert.ok(Math.abs(learningRate(60, o) - 0.55) < 1e-12);
  assert.ok(Math.abs(learningRate(110, o) - 0.1) < 1e-12);
});

// The pure-JS cpu backend is the reference in the model tests; training runs on wasm and native.
for (const backend of testBackends().filter((b) => b !== 'cpu')) {
  test(`[${backend}] the tiny model overfits one fixed batch`, async () => {
    await use(backend);
    const model = new GPT({ ...CFG, dropout: 0 }, initialWeights({ ...CFG, dropout: 0 }, 0));
    const opt = new AdamW(model.params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0, gradClip: 1 });
    const fixed = new WindowSampler(stream(200, 2), 4, CFG.block_size, 0).next();
    const source: BatchSource = { next: (): Batch => fixed, state: () => null, restore: () => {} };
    let loss = Infinity;
    for (let i = 0; i < 150; i++) loss = trainStep(model, opt, source, 1, 1e-2, i).loss;
    assert.ok(loss < 0.05, `loss after 150 steps: ${loss}`);
    opt.dispose();
    model.dispose();
  });

  test(`[${backend}] no tensor leaks over 50 steps`, async () => {
    await use(backend);
    const model = new GPT(CFG, initialWeights(CFG, 0));
    const opt = new AdamW(model.params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1 });
    const source = new WindowSampler(stream(), 4, CFG.block_size, 0);
    trainStep(model, opt, source, 2, 1e-3, 0);
    const before = tf.memory().numTensors;
    for (let i = 1; i <= 50; i++) trainStep(model, opt, source, 2, 1e-3, i);
    assert.equal(tf.memory().numTensors, before);
    opt.dispose();
    model.dispose();
  });

  test(`[${backend}] runs are deterministic and resume exactly where they stopped`, async () => {
    await use(backend);
    const whole = await runSession(spec(join(root, `${backend}-whole`), {}));
    const again = await runSession(spec(join(root, `${backend}-again`), {}));
    assert.deepEqual(losses(again.metrics), losses(whole.metrics), 'same seed, same backend, same losses');
    const out = join(root, `${backend}-split`);
    const first = await runSession(spec(out, {}), { shouldStop: (step) => step === 3 });
    assert.ok(first.stopped);
    assert.equal(first.state.step, 3);
    first.model.dispose();
    const resumed = await runSession(spec(out, {}, true));
    assert.equal(resumed.state.step, 8);
    assert.deepEqual(losses(resumed.metrics), losses(whole.metrics), 'interrupted and resumed equals uninterrupted');
    const ckpt = loadCheckpoint(out);
    assert.deepEqual(ckpt.weights.get('h.1.mlp.c_fc.weight'), whole.model.weights().get('h.1.mlp.c_fc.weight'));
    for (const r of [whole, again, resumed]) r.model.dispose();
  });
}

test('resume refuses a different config and a missing checkpoint', async () => {
  await use('wasm');
  const out = join(root, 'refuse');
  (await runSession(spec(out, { steps: 2 }))).model.dispose();
  await assert.rejects(runSession({ ...spec(out, { lr: 1e-2 }), resume: true, explicit: { lr: 1e-2 } }), /--resume with a different config: --lr is 0.01 but .* was trained with 0.003/);
  await assert.rejects(runSession({ ...spec(out, {}), model: { ...CFG, n_layer: 3 }, resume: true }), /different model config/);
  await assert.rejects(runSession(spec(join(root, 'nothing-here'), {}, true)), /does not exist; run without --resume/);
});

test('a diverging run stops with a clear error and keeps the last good checkpoint', async () => {
  await use('wasm');
  const out = join(root, 'diverge');
  (await runSession(spec(out, { steps: 2 }))).model.dispose();
  const saved = readFileSync(join(out, 'weights.bin'));
  await assert.rejects(runSession(spec(out, { steps: 4, lr: 1e30, warmup: 0 })), /training diverged at step \d+ .*the last good checkpoint was kept/);
  assert.ok(readFileSync(join(out, 'weights.bin')).equals(saved));
});

test('corrupt checkpoints are one-line errors', async () => {
  await use('wasm');
  const out = join(root, 'corrupt');
  (await runSession(spec(out, { steps: 1 }))).model.dispose();
  const weights = readFileSync(join(out, 'weights.bin'));
  writeFileSync(join(out, 'weights.bin'), weights.subarray(0, 100));
  assert.throws(() => loadCheckpoint(out), /weights.bin is truncated \(corrupt checkpoint\)/);
  writeFileSync(join(out, 'config.json'), '{');
  assert.throws(() => loadCheckpoint(out), /config.json is not valid JSON \(corrupt checkpoint\)/);
  assert.throws(() => loadCheckpoint(join(root, 'absent')), /does not exist/);
});
