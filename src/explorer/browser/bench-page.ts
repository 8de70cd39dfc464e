/**
 * The browser side of `npm run bench -- --backend webgpu|webgl` and of the browser parity test:
 * the trainer's real step (src/train/loop.ts trainStep with src/train/optimizer.ts AdamW over a
 * WindowSampler) on the project's GPT, run on tfjs's WebGPU or WebGL backend. WebGPU cannot read
 * tensors synchronously, so there the step is trainStepAsync (async-reads.ts: the same GPT.loss
 * gradients and AdamW.apply update, its two reads awaited). The node side (src/bench/browser.ts)
 * serves the inputs and calls these functions through playwright.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchSource } from '../../data/batches.js';
import { WindowSampler } from '../../data/batches.js';
import type { TensorSet } from '../../model/checkpoint.js';
import type { ModelConfig } from '../../model/model-config.js';
import { GPT, parameterShapes } from '../../model/gpt.js';
import { trainStep } from '../../train/loop.js';
import { learningRate } from '../../train/optimizer.js';
import type { BenchResult, BenchSpec, ParityResult, ParitySpec, RuntimeInfo } from '../protocol.js';
import { AsyncNormAdamW, syncReads, trainStepAsync } from './async-reads.js';
import { startRuntime, type BrowserBackend } from './runtime.js';

async function floats(url: string): Promise<Float32Array> {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return new Float32Array(await r.arrayBuffer());
}

/** Split a flat array into the model's parameters (parameterShapes order). */
function split(cfg: ModelConfig, flat: Float32Array, offset = 0): { map: Map<string, Float32Array>; end: number } {
  const map = new Map<string, Float32Array>();
  let o = offset;
  for (const [name, shape] of parameterShapes(cfg)) {
    const n = shape.reduce((a, b) => a * b, 1);
    map.set(name, flat.slice(o, o + n));
    o += n;
  }
  return { map, end: o };
}

/** Wait for the device: read one value of a tensor (asynchronously: WebGPU has no synchronous read). */
async function settle(t: tf.Tensor): Promise<void> {
  const one = tf.tidy(() => t.reshape([-1]).slice(0, 1));
  await one.data();
  one.dispose();
}

/** The trainer's step: loop.ts trainStep where reads can be synchronous, else its async counterpart. */
async function step(model: GPT, optimizer: AsyncNormAdamW, source: BatchSource, lr: number, stepIndex: number): Promise<{ loss: number; gradNorm: number }> {
  if (syncReads()) return trainStep(model, optimizer, source, 1, lr, stepIndex);
  return trainStepAsync(model, optimizer, source.next(), lr);
}

async function start(backend: BrowserBackend): Promise<RuntimeInfo> {
  return startRuntime([backend]);
}

async function bench(backend: BrowserBackend, spec: BenchSpec): Promise<BenchResult> {
  const runtime = await start(backend);
  const cfg = spec.config;
  const T = cfg.block_size;
  const stream = new Uint16Array(await (await fetch('/bench/stream.bin')).arrayBuffer());
  const weights = split(cfg, await floats('/bench/weights.bin')).map;
  const model = new GPT(cfg, weights);
  const optimizer = new AsyncNormAdamW(model.params, spec.adam);
  const sampler = new WindowSampler(stream, spec.batch, T, spec.seed);
  let index = 0;
  let loss = Number.NaN;
  const steps = async (n: number) => {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) {
      // Each step reads the loss and the gradient norm back: it ends when the device is done.
      loss = (await step(model, optimizer, sampler, learningRate(index, spec.schedule), index)).loss;
      index++;
    }
    return (performance.now() - t0) / n;
  };
  if (spec.warmup > 0) await steps(spec.warmup);

  const [m, k, n] = spec.peakShape;
  const a = tf.randomNormal([m, k], 0, 1, 'float32', 1);
  const b = tf.randomNormal([k, n], 0, 1, 'float32', 2);
  const mm = async (reps: number) => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const c = tf.matMul(a, b);
      if (i === reps - 1) await settle(c);
      c.dispose();
    }
    return (performance.now() - t0) / reps;
  };
  await mm(2);
  const first = await mm(1);
  const inner = Math.max(1, Math.min(10, Math.round(20 / Math.max(first, 1e-3))));
  const peakMs: number[] = [];
  for (let r = 0; r < Math.max(5, spec.repeats); r++) peakMs.push(await mm(inner));
  peakMs.sort((x, y) => x - y);
  const peakGflops = (2 * m * k * n) / (peakMs[Math.floor(peakMs.length / 2)] / 1e3) / 1e9;
  tf.dispose([a, b]);

  const stepMs: number[] = [];
  for (let r = 0; r < spec.repeats; r++) stepMs.push(await steps(spec.steps));
  const fwd = sampler.next();
  const forward = async (reps: number) => {
    const t0 = performance.now();
    for (let i = 0; i < reps; i++) {
      const logits = tf.tidy(() => model.forward(tf.tensor2d(fwd.ids, [fwd.batch, fwd.T], 'int32')).logits);
      await settle(logits);
      logits.dispose();
    }
    return (performance.now() - t0) / reps;
  };
  await forward(1);
  const forwardMs: number[] = [];
  for (let r = 0; r < spec.repeats; r++) forwardMs.push(await forward(spec.steps));
  // Kernel calls of one step (tf.profile; the step's own reads happen inside).
  const prof = await tf.profile(async () => {
    await step(model, optimizer, sampler, learningRate(index, spec.schedule), index);
  });
  index++;
  const compute = prof.kernels.filter((x) => x.name !== 'Identity' && x.name !== 'Reshape' && tf.getKernel(x.name, runtime.backend) !== undefined).length;
  optimizer.dispose();
  model.dispose();
  return { runtime, stepMs, forwardMs, peakGflops, loss, kernelCalls: prof.kernels.length, computeKernelCalls: compute, peakBytes: prof.peakBytes, userAgent: navigator.userAgent, trainStep: syncReads() ? 'trainStep' : 'trainStepAsync' };
}

async function parity(backend: BrowserBackend, spec: ParitySpec): Promise<ParityResult> {
  const runtime = await start(backend);
  const cfg = spec.config;
  // /parity/inputs.bin: weights, m, v, perturbed weights (float32, parameter order each).
  const all = await floats('/parity/inputs.bin');
  let o = 0;
  const next = () => {
    const r = split(cfg, all, o);
    o = r.end;
    return r.map;
  };
  const [weights, m, v, perturbed] = [next(), next(), next(), next()];
  const b = spec.batch;
  const batch: Batch = {
    ids: Int32Array.from(b.ids), targets: Int32Array.from(b.targets), weights: Float32Array.from(b.weights), batch: b.batch, T: b.T,
    tokens: b.weights.filter((w) => w > 0).length,
  };
  const names = parameterShapes(cfg).map(([name]) => name);
  const gradients = async (w: Map<string, Float32Array>): Promise<{ loss: number; flat: number[] }> => {
    const model = new GPT(cfg, w);
    const { value, grads } = tf.tidy(() => {
      const ids = tf.tensor2d(batch.ids, [b.batch, b.T], 'int32');
      const targets = tf.tensor2d(batch.targets, [b.batch, b.T], 'int32');
      const lw = tf.tensor2d(batch.weights, [b.batch, b.T], 'float32');
      return tf.variableGrads(() => model.loss(ids, targets, lw), [...model.params.values()]);
    });
    const named = new Map(Object.entries(grads).map(([key, g]) => [model.paramName(key), g]));
    const flat: number[] = [];
    for (const n of names) flat.push(...Array.from(await named.get(n)!.data()));
    const loss = (await value.data())[0];
    tf.dispose([value, ...Object.values(grads)]);
    model.dispose();
    return { loss, flat };
  };
  const g0 = await gradients(weights);
  const g1 = await gradients(perturbed);

  const model = new GPT(cfg, weights);
  const opt = new AsyncNormAdamW(model.params, spec.optimizer);
  const moments: TensorSet = new Map();
  for (const [name, shape] of parameterShapes(cfg)) {
    moments.set(`m/${name}`, { shape, values: m.get(name)!.slice() });
    moments.set(`v/${name}`, { shape, values: v.get(name)!.slice() });
  }
  opt.load({ step: spec.optimizer.priorSteps, moments });
  const source: BatchSource = { next: () => batch, state: () => null, restore: () => {} };
  const { loss: stepLoss, gradNorm } = await step(model, opt, source, spec.optimizer.lr, 0);
  const after: number[] = [];
  for (const n of names) after.push(...Array.from(await model.params.get(n)!.data()));
  opt.dispose();
  model.dispose();
  return { runtime, loss: g0.loss, perturbedLoss: g1.loss, grads: g0.flat, perturbedGrads: g1.flat, stepLoss, gradNorm, after, trainStep: syncReads() ? 'trainStep' : 'trainStepAsync' };
}

Object.assign(globalThis, { personaBench: { bench, parity, version: tf.version.tfjs } });
document.body.dataset.ready = 'true';
