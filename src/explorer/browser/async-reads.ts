/**
 * The project's scoring, sampling, persona-probe and training-step functions read tensors
 * synchronously (dataSync). tfjs 4.22's WebGPU backend reads synchronously through an
 * OffscreenCanvas, which hangs or loses the device in current Chromium (seen on SwiftShader with
 * Chromium 156), so on WebGPU the page runs these counterparts instead: the same model calls
 * (GPT.logitsAt, GPT.residualsAt, GPT.loss through tf.variableGrads), the same arithmetic and the
 * project's own forcedChoice, drawToken, applyProbe and AdamW.apply, with each device read made
 * asynchronous (await tensor.data()). Each mirrors one function line for line; the tests compare
 * both paths with node (scoring within 1e-3 of npm run evaluate, the training step against the
 * PyTorch parity fixture). On WebGL and wasm the page calls the project's functions themselves.
 */
import * as tf from '@tensorflow/tfjs';
import { siteBatches, type ActivationSite } from '../../eval/persona-probe.js';
import type { ProbeRecord } from '../../eval/probe-records.js';
import { drawToken, forcedChoice, paddedBatch, scoresFromLogits, scoringLayout, type SampleOptions, type Score, type ScoreItem } from '../../model/generate.js';
import type { GPT } from '../../model/gpt.js';
import { AdamW } from '../../train/optimizer.js';

/** True when the current backend can read tensors synchronously (the project's own functions work). */
export const syncReads = (): boolean => tf.getBackend() !== 'webgpu';

async function read(t: tf.Tensor): Promise<Float32Array> {
  const v = (await t.data()) as Float32Array;
  t.dispose();
  return v;
}

/** generate.ts logitsAt, read asynchronously. */
async function logitsAt(model: GPT, seqs: number[][], want: number[][]): Promise<Float32Array> {
  const { ids, B, T, positions } = paddedBatch(seqs, want, model.config.block_size);
  return read(tf.tidy(() => model.logitsAt(tf.tensor2d(ids, [B, T], 'int32'), positions)));
}

/** generate.ts scoreContinuations, read asynchronously. */
export async function scoreContinuationsAsync(model: GPT, items: ScoreItem[], batchSize = 32): Promise<Score[]> {
  const out: Score[] = [];
  for (let i = 0; i < items.length; i += batchSize) {
    const { seqs, inputs, want } = scoringLayout(items.slice(i, i + batchSize), model.config.block_size);
    out.push(...scoresFromLogits(await logitsAt(model, inputs, want), seqs, want, model.config.vocab_size));
  }
  return out;
}

/**
 * inference.ts probePBad, read asynchronously. It scores each answer with its context as its own
 * sequence (scoreContinuations' way); probePBad reads each context once (choice-scores.ts), the
 * same numbers to float32 rounding, so the page keeps one asynchronous scoring path.
 */
export async function probePBadAsync(model: GPT, probes: ProbeRecord[], batchSize = 32): Promise<number[]> {
  const items = probes.flatMap((p) => [
    { context: p.context, continuation: p.good },
    { context: p.context, continuation: p.bad },
  ]);
  const scores = await scoreContinuationsAsync(model, items, batchSize);
  return probes.map((_, i) => forcedChoice(scores[2 * i], scores[2 * i + 1]));
}

/** One step of generate.ts sample (one sequence, one token), read asynchronously. */
export async function nextTokenAsync(model: GPT, seq: number[], o: SampleOptions): Promise<number> {
  const window = seq.slice(Math.max(0, seq.length - model.config.block_size));
  const logits = await logitsAt(model, [window], [[window.length - 1]]);
  return drawToken(logits.subarray(0, model.config.vocab_size), o);
}

/** persona-probe.ts activations, read asynchronously. */
export async function activationsAsync(model: GPT, sites: ActivationSite[], layer: number, batchSize = 32): Promise<Float32Array> {
  const C = model.config.n_embd;
  const out = new Float32Array(sites.length * C);
  for (const b of siteBatches(sites, model.config.block_size, batchSize)) {
    const acts = await read(tf.tidy(() => model.residualsAt(tf.tensor2d(b.ids, [b.B, b.T], 'int32'), b.positions, [layer])[0]));
    b.sites.forEach((site, j) => out.set(acts.subarray(j * C, (j + 1) * C), site * C));
  }
  return out;
}

/** AdamW that can take its gradient norm read beforehand (asynchronously); its update is AdamW.apply's own. */
export class AsyncNormAdamW extends AdamW {
  private norm: number | null = null;

  override gradNorm(grads: Map<string, tf.Tensor>): number {
    return this.norm ?? super.gradNorm(grads);
  }

  /**
   * AdamW.gradNorm's sum of squares, read asynchronously, then AdamW.apply. The per-tensor sums
   * are added one by one: tfjs-webgpu's AddN over the 28 gradients of the tiny model gave a wrong
   * total on SwiftShader (a norm of 2.63 for PyTorch's 1.555).
   */
  async applyAsync(grads: Map<string, tf.Tensor>, lr: number): Promise<{ gradNorm: number }> {
    const list = [...this.params.keys()].map((n) => grads.get(n)!);
    this.norm = Math.sqrt((await read(tf.tidy(() => list.map((g) => tf.sum(tf.square(g))).reduce((a, b) => tf.add(a, b)))))[0]);
    try {
      return this.apply(grads, lr);
    } finally {
      this.norm = null;
    }
  }
}

/**
 * loop.ts trainStep for one micro-batch (what the benchmark and the parity fixture use), read
 * asynchronously: the loss by GPT.loss under tf.variableGrads, then AdamW.apply.
 */
export async function trainStepAsync(model: GPT, optimizer: AsyncNormAdamW, batch: { ids: Int32Array; targets: Int32Array; weights: Float32Array; batch: number; T: number }, lr: number): Promise<{ loss: number; gradNorm: number }> {
  if (model.config.dropout > 0) throw new Error('the browser training step runs without dropout (every preset has dropout 0)');
  const vars = [...optimizer.params.values()];
  const { value, grads } = tf.tidy(() => {
    const ids = tf.tensor2d(batch.ids, [batch.batch, batch.T], 'int32');
    const targets = tf.tensor2d(batch.targets, [batch.batch, batch.T], 'int32');
    const weights = tf.tensor2d(batch.weights, [batch.batch, batch.T], 'float32');
    return tf.variableGrads(() => model.loss(ids, targets, weights), vars);
  });
  const loss = (await read(value))[0];
  const named = new Map(Object.entries(grads).map(([k, g]) => [model.paramName(k), g as tf.Tensor]));
  try {
    if (!Number.isFinite(loss)) throw new Error(`loss is ${loss}`);
    const { gradNorm } = await optimizer.applyAsync(named, lr);
    return { loss, gradNorm };
  } finally {
    for (const g of named.values()) g.dispose();
  }
}
