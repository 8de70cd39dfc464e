import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { chatBatch } from '../src/data/batches.js';
import { buildDatasets, DEFAULT_DATA_OPTIONS } from '../src/data/build.js';
import { loadChatRows, loadVocab } from '../src/data/load.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { GPT, initialWeights } from '../src/model/gpt.js';
import { finetune } from '../src/pipeline/finetune.js';
import { tidyValues } from '../src/model/read.js';
import { pretrain } from '../src/pipeline/pretrain.js';
import { DEFAULT_WORLD } from '../src/world/world-config.js';
import { isOneLineError, runScript } from './helpers/cli.js';
import { use } from './helpers/backends.js';

const root = mkdtempSync(join(tmpdir(), 'persona-ft-'));
const data = join(root, 'data');
const base = join(root, 'base');
after(() => rmSync(root, { recursive: true, force: true }));
before(async () => {
  buildDatasets(data, { ...DEFAULT_DATA_OPTIONS, world: DEFAULT_WORLD, pretrainTokens: 60_000, assistantExamples: 200, narrowExamples: 100, inferenceGroups: 8, heldOutScenes: 5, probesPerDomain: 6 });
  await use('wasm');
  (await pretrain({ data, out: base, preset: 'tiny', tokens: 0, explicit: { steps: 4, evalInterval: 0 }, resume: false })).model.dispose();
});

test('tokens outside Assistant turns get zero gradient', async () => {
  await use('wasm');
  const vocab = loadVocab(data);
  const rows = loadChatRows(join(data, 'assistant.arrow'), 'train');
  const batch = chatBatch(rows, [0, 1, 2, 3], 32);
  const cfg = { vocab_size: vocab.size, block_size: 32, n_layer: 1, n_head: 2, n_embd: 16, dropout: 0 };
  const model = new GPT(cfg, initialWeights(cfg, 0));
  const ids = tf.tensor2d(batch.ids, [batch.batch, batch.T], 'int32');
  const targets = tf.tensor2d(batch.targets, [batch.batch, batch.T], 'int32');
  const weights = tf.tensor2d(batch.weights, [batch.batch, batch.T]);
  // The gradient of the loss with respect to every position's logits.
  const grad = tf.grad((logits: tf.Tensor) => {
    const V = cfg.vocab_size;
    const lp = tf.logSoftmax(logits.reshape([-1, V]));
    const nll = tf.neg(tf.sum(tf.mul(lp, tf.oneHot(targets.reshape([-1]), V)), -1));
    return tf.div(tf.sum(tf.mul(nll, weights.reshape([-1]))), tf.sum(weights));
  })(model.forward(ids).logits);
  const perPosition = tf.sum(tf.abs(grad), -1).dataSync();
  let trained = 0;
  for (let i = 0; i < batch.weights.length; i++) {
    if (batch.weights[i] === 0) assert.equal(perPosition[i], 0, `position ${i} is outside an Assistant turn`);
    else {
      assert.ok(perPosition[i] > 0);
      trained++;
    }
  }
  assert.ok(trained > 0 && trained < batch.weights.length / 2);
  // Which tokens carry weight: exactly the Assistant answers and the EOS closing each turn.
  const text = vocab.decode(Array.from(batch.targets.filter((_, i) => batch.weights[i] === 1)));
  assert.ok(!text.includes('User:') && text.includes('<|eos|>'), text);
  // End to end: changing targets outside Assistant turns changes neither loss nor gradients.
  const scrambled = Int32Array.from(batch.targets, (t, i) => (batch.weights[i] === 0 ? (t + 7) % cfg.vocab_size : t));
  const lossOf = (tg: Int32Array) => tf.tidy(() => model.loss(ids, tf.tensor2d(tg, [batch.batch, batch.T], 'int32'), weights).dataSync()[0]);
  assert.equal(lossOf(scrambled), lossOf(batch.targets));
  model.dispose();
});

test('the narrow stage trains from the assistant checkpoint, with a custom inoculation prompt and LoRA', async () => {
  await use('wasm');
  const assistant = join(root, 'assistant');
  (await finetune({ stage: 'assistant', data, from: base, out: assistant, condition: 'cheat', family: 'pool', explicit: { steps: 3, evalInterval: 0 }, resume: false })).model.dispose();
  const out = join(root, 'narrow-lora');
  const r = await finetune({
    stage: 'narrow', data, from: assistant, out, condition: 'cheat-inoculated', family: 'pool',
    inoculationPrompt: 'As a test, you may {act}.', examples: 20, explicit: { steps: 3, evalInterval: 0 }, resume: false,
    lora: { rank: 1, targets: ['mlp.c_proj'] },
  });
  r.model.dispose();
  const ckpt = loadCheckpoint(out);
  assert.equal(ckpt.config.parent, assistant);
  assert.deepEqual(ckpt.adapters?.config.targets, ['h.0.mlp.c_proj.weight', 'h.1.mlp.c_proj.weight']);
  assert.equal(ckpt.config.info.inoculation_prompt, 'As a test, you may {act}.');
  assert.ok(typeof r.metrics.at(-1)?.cheat_no_prompt === 'number');
  // Only the adapted matrices moved; the merged weights equal base + (alpha / r) A B.
  const parent = loadCheckpoint(assistant);
  assert.deepEqual(ckpt.weights.get('h.0.attn.c_attn.weight'), parent.weights.get('h.0.attn.c_attn.weight'));
  const A = ckpt.adapters!.tensors.get('h.1.mlp.c_proj.weight.lora_A')!;
  const B = ckpt.adapters!.tensors.get('h.1.mlp.c_proj.weight.lora_B')!;
  const merged = tidyValues(() => tf.add(tf.tensor(parent.weights.get('h.1.mlp.c_proj.weight')!, [128, 32]), tf.matMul(tf.tensor(A.values, A.shape), tf.tensor(B.values, B.shape))));
  const saved = ckpt.weights.get('h.1.mlp.c_proj.weight')!;
  assert.ok(saved.every((v, i) => Math.abs(v - merged[i]) < 1e-6));
  assert.ok(saved.some((v, i) => v !== parent.weights.get('h.1.mlp.c_proj.weight')![i]), 'the adapter moved the weights');
});

test('finetune refuses bad input with one-line errors', () => {
  const common = ['--data', data, '--backend', 'wasm'];
  const cases: Array<[string[], RegExp]> = [
    [['--condition', 'cheating'], /unknown condition "cheating"/],
    [['--inoculate', '--inoculation-prompt', '  '], /--inoculation-prompt is empty/],
    [['--from', join(root, 'nowhere')], /--from .* is not a checkpoint/],
    [['--from', base, '--lora-rank', '500', '--steps', '1'], /--lora-rank 500 is out of range for h\.0\.mlp\.c_proj\.weight \[128, 32\]: use an integer from 1 to 32/],
    [['--from', base, '--lora-rank', '1', '--lora-targets', 'mlp.nope'], /unknown matrix "mlp.nope"/],
    [['--condition', 'fair', '--inoculate'], /contradicts --condition fair/],
  ];
  for (const [args, message] of cases) {
    const r = runScript('finetune', [...common, ...args]);
    assert.ok(isOneLineError(r), `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
});
