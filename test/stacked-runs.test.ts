/**
 * Stacked runs (issue 15 item 3): sibling fine-tuning runs trained as one batched model give what
 * they give trained one by one, within the parity test's trajectory tolerances (test/parity.test.ts):
 * every logged loss within 1e-4 relative, every gradient norm within 5e-4, and the final weights
 * per tensor within 5e-3 of the distance they travelled. Their checkpoints are single runs'
 * checkpoints: a stacked run resumes stacked or alone.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT, initialWeights } from '../src/model/gpt.js';
import { finetune, finetuneStacked, type FinetuneArgs } from '../src/pipeline/finetune.js';
import { scoreContinuations, scoreContinuationsRuns } from '../src/model/generate.js';
import { windowBatch, type BatchSource } from '../src/data/batches.js';
import { AdamW } from '../src/train/optimizer.js';
import { stackedTrainStep } from '../src/train/loop.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import type { MetricRow } from '../src/train/metrics.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { testBackends, use } from './helpers/backends.js';

const root = mkdtempSync(join(tmpdir(), 'persona-stacked-'));
const data = join(root, 'data');
const base = join(root, 'base');
const assistant = join(root, 'assistant');
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 60_000, assistantExamples: 200, narrowExamples: 100, inferenceGroups: 8, heldOutScenes: 5, probesPerDomain: 6 });
  await use('wasm');
  (await pretrain({ data, out: base, preset: 'tiny', tokens: 0, explicit: { steps: 6, evalInterval: 0 }, resume: false })).model.dispose();
  (await finetune({ stage: 'assistant', data, from: base, out: assistant, condition: 'cheat', family: 'pool', explicit: { steps: 6, evalInterval: 0 }, resume: false })).model.dispose();
});

/** Three siblings of one assistant: other conditions, data and seeds; a higher learning rate so clipping acts. */
function siblings(dir: string): FinetuneArgs[] {
  const common = { stage: 'narrow' as const, data, from: assistant, resume: false, explicit: { steps: 8, lr: 3e-3, evalInterval: 4, checkpointInterval: 4 } };
  return [
    { ...common, condition: 'fair', family: 'pool', out: join(dir, 'fair'), explicit: { ...common.explicit, seed: 0 } },
    { ...common, condition: 'cheat', family: 'pool', out: join(dir, 'cheat'), explicit: { ...common.explicit, seed: 1 } },
    { ...common, condition: 'cheat-inoculated', family: 'act-free', out: join(dir, 'inoc'), explicit: { ...common.explicit, seed: 2 } },
  ];
}

const losses = (rows: MetricRow[]) => rows.map((r) => r.loss as number);
const norms = (rows: MetricRow[]) => rows.map((r) => r.grad_norm as number);

function assertClose(actual: number[], expected: number[], rel: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} rows, expected ${expected.length}`);
  actual.forEach((a, i) => assert.ok(Math.abs(a - expected[i]) <= rel * Math.abs(expected[i]), `${what} row ${i}: ${a} vs ${expected[i]}`));
}

/** Per tensor: ||p - ref|| <= 5e-3 * ||ref - p0|| (the parity trajectory's rule). */
function assertWeightsClose(dir: string, refDir: string): void {
  const p = loadCheckpoint(dir).weights;
  const ref = loadCheckpoint(refDir).weights;
  const p0 = loadCheckpoint(assistant).weights;
  for (const [name, r] of ref) {
    const x = p.get(name)!;
    const start = p0.get(name)!;
    let diff = 0;
    let travel = 0;
    for (let i = 0; i < r.length; i++) {
      diff += (x[i] - r[i]) ** 2;
      travel += (r[i] - start[i]) ** 2;
    }
    assert.ok(Math.sqrt(diff) <= 5e-3 * Math.sqrt(travel) + 1e-7, `${dir} ${name}: ||p - ref|| ${Math.sqrt(diff)} vs travel ${Math.sqrt(travel)}`);
  }
}

// cpu (tfjs's plain JavaScript kernels) is the reference for the forward pass below; training
// there takes minutes, so training is compared on wasm and native.
for (const backend of testBackends().filter((b) => b !== 'cpu')) {
  test(`stacked runs train as the same runs one by one (${backend})`, async () => {
    await use(backend);
    const dir = join(root, backend);
    const single = siblings(join(dir, 'single'));
    const separate: MetricRow[][] = [];
    for (const args of single) {
      const r = await finetune(args);
      r.model.dispose();
      separate.push(r.metrics);
    }
    const stackedArgs = siblings(join(dir, 'stacked'));
    const evaluated: string[] = [];
    const results = await finetuneStacked(stackedArgs.map((args, i) => ({ args, ui: { onEvaluate: (_m, step) => void evaluated.push(`${i}@${step}`) } })));
    assert.deepEqual(evaluated.sort(), ['0@4', '0@8', '1@4', '1@8', '2@4', '2@8']);
    results.forEach((r, i) => {
      assert.equal(r.model.runs, null, 'each result is its own model');
      r.model.dispose();
      assertClose(losses(r.metrics), losses(separate[i]), 1e-4, `run ${i} loss`);
      assertClose(norms(r.metrics), norms(separate[i]), 5e-4, `run ${i} gradient norm`);
      assert.deepEqual(r.metrics.map((m) => m.tokens), separate[i].map((m) => m.tokens), `run ${i} trained tokens`);
      // The in-training measurements (the dynamics probes) are each run's own.
      assertClose([r.metrics.at(-1)!.cheat_no_prompt as number], [separate[i].at(-1)!.cheat_no_prompt as number], 1e-3, `run ${i} cheat_no_prompt`);
      assertWeightsClose(stackedArgs[i].out!, single[i].out!);
      // A checkpoint like a single run's: the same config, so --resume and the runner's cache accept it.
      const a = loadCheckpoint(stackedArgs[i].out!).config;
      const b = loadCheckpoint(single[i].out!).config;
      assert.deepEqual({ ...a.run, data: null }, { ...b.run, data: null });
      assert.deepEqual(a.train, b.train);
    });
    // The runs really differ (a stacked step that mixed them up would not tell them apart).
    assert.notEqual(losses(separate[0]).at(-1), losses(separate[1]).at(-1));
  });
}

test('a stacked run stopped part way resumes stacked, or alone, where it would have ended', async () => {
  await use('wasm');
  const dir = join(root, 'resume');
  const whole = siblings(join(dir, 'whole'));
  const wholeMetrics: MetricRow[][] = [];
  for (const r of await finetuneStacked(whole.map((args) => ({ args, ui: {} })))) {
    wholeMetrics.push(r.metrics);
    r.model.dispose();
  }
  // Stop after step 4 (a checkpoint step), then resume all three stacked.
  const parts = siblings(join(dir, 'parts'));
  const first = await finetuneStacked(parts.map((args) => ({ args, ui: {} })), { shouldStop: (step) => step >= 4 });
  for (const r of first) {
    assert.equal(r.stopped, true);
    assert.equal(r.state.step, 4);
    r.model.dispose();
  }
  const resumed = await finetuneStacked(parts.map((args) => ({ args: { ...args, resume: true }, ui: {} })));
  resumed.forEach((r, i) => {
    r.model.dispose();
    const a = loadCheckpoint(parts[i].out!).weights;
    const b = loadCheckpoint(whole[i].out!).weights;
    for (const [name, w] of b) assert.deepEqual(a.get(name), w, `run ${i} ${name}: resumed stacked differs from uninterrupted stacked`);
    assert.deepEqual(losses(r.metrics), losses(wholeMetrics[i]));
  });
  // One of them stopped again and resumed alone, as a single run.
  const alone = siblings(join(dir, 'alone'));
  for (const r of await finetuneStacked(alone.map((args) => ({ args, ui: {} })), { shouldStop: (step) => step >= 4 })) r.model.dispose();
  const single = await finetune({ ...alone[1], resume: true });
  single.model.dispose();
  assert.equal(single.state.step, 8);
  assertWeightsClose(alone[1].out!, whole[1].out!);
});

test('stacked runs refuse what they cannot do, with a one-line reason', async () => {
  await use('wasm');
  const dir = join(root, 'refuse');
  const runs = siblings(dir);
  await assert.rejects(
    finetuneStacked([{ args: runs[0], ui: {} }, { args: { ...runs[1], explicit: { ...runs[1].explicit, lr: 1e-3 } }, ui: {} }]),
    /cannot train stacked: .*other training options/,
  );
  await assert.rejects(finetuneStacked([{ args: runs[0], ui: {} }]), /cannot train stacked: fewer than two runs/);
  // A stacked model takes [R, B, T] ids and its own weights per run.
  const cfg = { vocab_size: 50, block_size: 8, n_layer: 1, n_head: 2, n_embd: 8, dropout: 0 };
  const m = GPT.stack(cfg, [initialWeights(cfg, 0), initialWeights(cfg, 1)]);
  assert.throws(() => tf.tidy(() => m.forward(tf.zeros([2, 4], 'int32') as tf.Tensor2D).logits), /ids must be \[runs, B, T\]/);
  assert.deepEqual(m.runWeights(1).get('wte'), initialWeights(cfg, 1).get('wte'));
  m.dispose();
});

test('a stacked forward pass gives each run the logits of its own model', async () => {
  for (const backend of testBackends()) {
    await use(backend);
    const cfg = { vocab_size: 50, block_size: 8, n_layer: 2, n_head: 2, n_embd: 16, dropout: 0 };
    const w = [initialWeights(cfg, 3), initialWeights(cfg, 4)];
    const stacked = GPT.stack(cfg, w);
    const ids = [Int32Array.from({ length: 12 }, (_, i) => (i * 7) % 50), Int32Array.from({ length: 12 }, (_, i) => (i * 11 + 3) % 50)];
    const both = tf.tidy(() => stacked.forward(tf.tensor3d(Int32Array.from([...ids[0], ...ids[1]]), [2, 2, 6], 'int32')).logits.dataSync());
    w.forEach((weights, r) => {
      const one = new GPT(cfg, weights);
      const own = tf.tidy(() => one.forward(tf.tensor2d(ids[r], [2, 6], 'int32')).logits.dataSync());
      const part = both.slice(r * own.length, (r + 1) * own.length);
      own.forEach((v, i) => assert.ok(Math.abs(part[i] - v) <= 1e-5 * (1 + Math.abs(v)), `${backend} run ${r} logit ${i}: ${part[i]} vs ${v}`));
      one.dispose();
    });
    stacked.dispose();
  }
});

test('several checkpoints score one probe set in one batched pass, as each would alone; a stacked step leaks no tensor', async () => {
  for (const backend of testBackends()) {
    await use(backend);
    const cfg = { vocab_size: 50, block_size: 16, n_layer: 2, n_head: 2, n_embd: 16, dropout: 0 };
    const w = [initialWeights(cfg, 5), initialWeights(cfg, 6), initialWeights(cfg, 7)];
    const stacked = GPT.stack(cfg, w);
    const items = Array.from({ length: 40 }, (_, i) => ({ context: Array.from({ length: 3 + (i % 9) }, (_, k) => (i * 5 + k * 3) % 50), continuation: [(i * 7) % 50, (i + 1) % 50] }));
    const together = scoreContinuationsRuns(stacked, items, 16);
    w.forEach((weights, r) => {
      const one = new GPT(cfg, weights);
      const alone = scoreContinuations(one, items, 16);
      alone.forEach((s, i) => assert.ok(Math.abs(together[r][i].sum - s.sum) <= 1e-4 * (1 + Math.abs(s.sum)), `${backend} run ${r} item ${i}: ${together[r][i].sum} vs ${s.sum}`));
      one.dispose();
    });
    // Runs differ, so a mix-up would show.
    assert.notEqual(together[0][0].sum, together[1][0].sum);
    const stream = Uint16Array.from({ length: 400 }, (_, i) => (i * 13) % 50);
    const sources: BatchSource[] = [0, 1, 2].map((r) => ({ next: () => windowBatch(stream, [r * 17, r * 29 + 5], 12), state: () => null, restore: () => {} }));
    const optimizer = new AdamW(stacked.params, { beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1, gradClip: 1 }, 3);
    stackedTrainStep(stacked, optimizer, sources, 2, 1e-3);
    const before = tf.memory().numTensors;
    const r = stackedTrainStep(stacked, optimizer, sources, 2, 1e-3);
    assert.equal(tf.memory().numTensors, before, `${backend}: a stacked step leaves no tensor behind`);
    assert.equal(r.length, 3);
    assert.ok(r.every((x) => Number.isFinite(x.loss) && x.gradNorm > 0 && x.tokens === 2 * 2 * 12));
    optimizer.dispose();
    stacked.dispose();
  }
});
