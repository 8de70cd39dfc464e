/**
 * --precision: what auto resolves to on which machine and backend, the precision scope of a
 * training step, and a training session that records its precision and resumes in it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { productPrecision, withPrecision } from '../src/backend/product-precision.js';
import { resolvePrecision, type Bf16Support } from '../src/backend/resolve-precision.js';
import { WindowSampler } from '../src/data/batches.js';
import { loadCheckpoint } from '../src/model/checkpoint.js';
import { initialWeights } from '../src/model/gpt.js';
import type { ModelConfig } from '../src/model/model-config.js';
import { linear } from '../src/model/ops.js';
import type { TrainOptions } from '../src/train/options.js';
import { runSession, type SessionSpec } from '../src/train/training-session.js';
import { Rng } from '../src/util/rng.js';
import { worldVocabulary } from '../src/world/lexicon-strings.js';
import { testBackends, use } from './helpers/backends.js';

const amx: Bf16Support = { hardware: true, kernel: 'oneDNN brg:avx512_core_amx_bf16', native: true };
const avx2: Bf16Support = { hardware: false, kernel: 'oneDNN gemm:jit on bf16-rounded inputs (float32 products: no bf16 matmul here)', native: false };
const capped: Bf16Support = { hardware: true, kernel: avx2.kernel, native: false };

test('auto is bf16 only on the native backend of a CPU with bf16 hardware that oneDNN uses', () => {
  assert.equal(resolvePrecision('auto', 'native', () => amx).precision, 'bf16');
  assert.match(resolvePrecision('auto', 'native', () => amx).reason, /brg:avx512_core_amx_bf16/);
  assert.equal(resolvePrecision('auto', 'native', () => avx2).precision, 'fp32');
  assert.match(resolvePrecision('auto', 'native', () => avx2).reason, /neither AVX512-BF16 nor AMX/);
  assert.equal(resolvePrecision('auto', 'native', () => capped).precision, 'fp32', 'ONEDNN_MAX_CPU_ISA below bf16: no bf16 kernel, so fp32');
  assert.equal(resolvePrecision('auto', 'wasm', () => amx).precision, 'fp32');
  assert.equal(resolvePrecision('fp32', 'native', () => amx).precision, 'fp32');
});

test('an explicit bf16 needs the native backend, and says when it is emulated', () => {
  assert.throws(() => resolvePrecision('bf16', 'wasm', () => amx), /--precision bf16 needs the native backend \(this run uses wasm/);
  const emulated = resolvePrecision('bf16', 'native', () => avx2);
  assert.equal(emulated.precision, 'bf16');
  assert.match(emulated.reason, /emulated here .*slower than fp32/);
  assert.throws(() => resolvePrecision('fp16' as 'fp32', 'native', () => amx), /--precision must be one of fp32, bf16, auto/);
});

test('withPrecision scopes the products\' precision and restores it, also after an exception', () => {
  assert.equal(productPrecision(), 'fp32');
  assert.equal(withPrecision('bf16', () => productPrecision()), 'bf16');
  assert.throws(() => withPrecision('bf16', () => {
    throw new Error('inside');
  }), /inside/);
  assert.equal(productPrecision(), 'fp32');
});

test('composed layers (no fused kernels) refuse bf16 instead of silently computing in fp32', async () => {
  await use('cpu');
  const x = tf.ones([2, 3]), w = tf.ones([3, 4]);
  assert.throws(() => withPrecision('bf16', () => linear(x, w)), /need the native backend's fused kernels; the cpu backend computes in fp32 only/);
  tf.dispose([x, w]);
});

const vocab = worldVocabulary();
const CFG: ModelConfig = { vocab_size: vocab.size, block_size: 16, n_layer: 2, n_head: 2, n_embd: 32, dropout: 0 };
const root = mkdtempSync(join(tmpdir(), 'persona-precision-'));
after(() => rmSync(root, { recursive: true, force: true }));
const OPTIONS: TrainOptions = {
  steps: 6, batch: 4, gradAccum: 1, lr: 3e-3, minLr: 1e-3, warmup: 2, weightDecay: 0.1, beta1: 0.9, beta2: 0.99, gradClip: 1, seed: 0,
  evalInterval: 0, checkpointInterval: 100, logInterval: 1,
};

function spec(out: string, precision: SessionSpec['precision'], resume = false): SessionSpec {
  const rng = new Rng(1);
  const stream = Uint16Array.from({ length: 5000 }, () => 3 + rng.int(200));
  return {
    stage: 'pretrain', out, model: CFG, initialWeights: () => initialWeights(CFG, 0), vocab, data: 'synthetic', parent: null, info: {},
    options: OPTIONS, explicit: {}, resume, source: new WindowSampler(stream, OPTIONS.batch, CFG.block_size, 0), run: { data: 'synthetic' }, precision,
  };
}
const losses = (rows: Array<Record<string, unknown>>) => rows.map((r) => r.loss as number);

test('a session records its precision; --resume keeps it (auto) and refuses another; old checkpoints count as fp32', { skip: testBackends().includes('native') ? false : 'needs the native backend' }, async () => {
  await use('native');
  const fp32 = await runSession(spec(join(root, 'fp32'), 'fp32'));
  assert.equal(loadCheckpoint(join(root, 'fp32')).config.run?.precision, 'fp32');
  const whole = await runSession(spec(join(root, 'bf16-whole'), 'bf16'));
  assert.equal(whole.precision.precision, 'bf16');
  assert.notDeepEqual(losses(whole.metrics), losses(fp32.metrics), 'bf16 products change the losses');
  for (const [a, b] of losses(whole.metrics).map((l, i) => [l, losses(fp32.metrics)[i]])) assert.ok(Math.abs(a - b) < 1e-2 * b, `bf16 ${a} vs fp32 ${b}`);

  const out = join(root, 'bf16-split');
  const first = await runSession(spec(out, 'bf16'), { shouldStop: (step) => step === 3 });
  assert.ok(first.stopped);
  first.model.dispose();
  assert.equal(loadCheckpoint(out).config.run?.precision, 'bf16');
  await assert.rejects(runSession(spec(out, 'fp32', true)), /--resume with a different run: --precision is fp32 but .* was trained with bf16/);
  const resumed = await runSession(spec(out, 'auto', true));
  assert.equal(resumed.precision.precision, 'bf16');
  assert.deepEqual(losses(resumed.metrics), losses(whole.metrics), 'a bf16 run interrupted and resumed equals the uninterrupted one');

  // A checkpoint from before precision was recorded resumes in fp32.
  const old = join(root, 'old');
  const o = await runSession({ ...spec(old, 'fp32'), options: { ...OPTIONS, steps: 2 } });
  o.model.dispose();
  const configFile = join(old, 'config.json');
  const config = JSON.parse(readFileSync(configFile, 'utf8')) as { run: Record<string, unknown> };
  delete config.run.precision;
  writeFileSync(configFile, JSON.stringify(config));
  await assert.rejects(runSession({ ...spec(old, 'bf16', true), options: { ...OPTIONS, steps: 3 } }), /--precision is bf16 but .* was trained with fp32/);
  const continued = await runSession({ ...spec(old, 'auto', true), options: { ...OPTIONS, steps: 3 } });
  assert.equal(continued.precision.precision, 'fp32');
  for (const r of [fp32, whole, resumed, continued]) r.model.dispose();
});
