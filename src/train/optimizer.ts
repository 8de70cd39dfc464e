/**
 * AdamW with decoupled weight decay on 2-D weights only (matrices and embeddings; not biases or
 * LayerNorm gains), global-norm gradient clipping, and a NaN guard. On the native backend the
 * whole update over every parameter is one fused call; elsewhere it is composed of tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
import { hasKernel, PersonaAdamW, PersonaSumSquares, runPersonaKernel } from '../backend/native/contracts.js';
import type { TensorSet } from '../model/checkpoint.js';
import type { ParamMap } from '../model/gpt.js';
import { runSlice } from '../model/run-axis.js';

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** Clip the global gradient norm to this (0 = off). */
  gradClip: number;
}

export class NonFiniteError extends Error {
  override name = 'NonFiniteError';
}

export class AdamW {
  step = 0;
  readonly m = new Map<string, tf.Variable>();
  readonly v = new Map<string, tf.Variable>();
  private readonly decay: boolean[];

  constructor(
    /** What this optimizer trains: the model's parameters, or only its adapters. */
    readonly params: ParamMap,
    readonly options: AdamWOptions,
    /**
     * Stacked runs (GPT.stack): every parameter has a leading run axis of this size, and each run
     * is its own optimization: its own gradient norm, clip and NaN guard; null for one model.
     */
    readonly runs: number | null = null,
  ) {
    for (const [name, p] of params) {
      this.m.set(name, tf.variable(tf.zerosLike(p), false));
      this.v.set(name, tf.variable(tf.zerosLike(p), false));
    }
    const runAxis = runs === null ? 0 : 1;
    this.decay = [...params.values()].map((p) => p.shape.length - runAxis >= 2);
  }

  /** Each run's L2 gradient norm [R] (stacked runs). */
  private runGradNorms(grads: Map<string, tf.Tensor>, R: number): number[] {
    const list = [...this.params.keys()].map((n) => grads.get(n)!);
    return Array.from(tf.tidy(() => tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g.reshape([R, -1])), 1)))).dataSync()));
  }

  /**
   * One update of stacked runs: each run's gradient clipped by its own norm. Throws NonFiniteError
   * (and changes nothing) when any run's norm is not finite: the runs stop together, each at its
   * last good checkpoint.
   */
  applyRuns(grads: Map<string, tf.Tensor>, lr: number): { gradNorms: number[] } {
    const R = this.runs;
    if (R === null) throw new Error('applyRuns needs stacked runs');
    const norms = this.runGradNorms(grads, R);
    const bad = norms.findIndex((n) => !Number.isFinite(n));
    if (bad >= 0) throw new NonFiniteError(`run ${bad}'s gradient norm is ${norms[bad]}`);
    const { gradClip } = this.options;
    const scales = norms.map((n) => (gradClip > 0 && n > gradClip ? gradClip / n : 1));
    if (scales.every((s) => s === 1)) {
      this.update(grads, lr, 1);
    } else {
      const perRun = tf.tensor1d(scales);
      const scaled = new Map([...grads].map(([n, g]) => [n, tf.tidy(() => tf.mul(g, perRun.reshape([R, ...Array<number>(g.rank - 1).fill(1)])))]));
      try {
        this.update(scaled, lr, 1);
      } finally {
        tf.dispose([perRun, ...scaled.values()]);
      }
    }
    return { gradNorms: norms };
  }

  /** Global L2 norm of the gradients. */
  gradNorm(grads: Map<string, tf.Tensor>): number {
    const list = [...this.params.keys()].map((n) => grads.get(n)!);
    if (hasKernel(PersonaSumSquares)) {
      const s = runPersonaKernel(PersonaSumSquares, list);
      const value = s.dataSync()[0];
      s.dispose();
      return Math.sqrt(value);
    }
    return Math.sqrt(tf.tidy(() => tf.addN(list.map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
  }

  /**
   * One update. Throws NonFiniteError (and changes nothing) when the gradient norm is not finite,
   * so a diverged run stops instead of training through NaN.
   */
  apply(grads: Map<string, tf.Tensor>, lr: number): { gradNorm: number } {
    const norm = this.gradNorm(grads);
    if (!Number.isFinite(norm)) throw new NonFiniteError(`gradient norm is ${norm}`);
    const { gradClip } = this.options;
    this.update(grads, lr, gradClip > 0 && norm > gradClip ? gradClip / norm : 1);
    return { gradNorm: norm };
  }

  /** The AdamW update of every parameter with the gradients times `scale`. */
  private update(grads: Map<string, tf.Tensor>, lr: number, scale: number): void {
    const { beta1, beta2, eps, weightDecay } = this.options;
    this.step += 1;
    const names = [...this.params.keys()];
    if (hasKernel(PersonaAdamW)) {
      const inputs: tf.Tensor[] = [];
      for (const n of names) inputs.push(this.params.get(n)!, grads.get(n)!, this.m.get(n)!, this.v.get(n)!);
      const attrs = { lr, beta1, beta2, eps, weightDecay, step: this.step, decayMask: this.decay, gradScale: scale };
      runPersonaKernel(PersonaAdamW, inputs, attrs).dispose();
      return;
    }
    const bc1 = 1 - beta1 ** this.step;
    const bc2 = 1 - beta2 ** this.step;
    names.forEach((n, i) => {
      tf.tidy(() => {
        const p = this.params.get(n)!;
        const m = this.m.get(n)!;
        const v = this.v.get(n)!;
        const g = tf.mul(grads.get(n)!, scale);
        const m1 = tf.add(tf.mul(m, beta1), tf.mul(g, 1 - beta1));
        const v1 = tf.add(tf.mul(v, beta2), tf.mul(tf.square(g), 1 - beta2));
        const decayed = this.decay[i] && weightDecay > 0 ? tf.mul(p, 1 - lr * weightDecay) : p;
        const update = tf.div(tf.div(m1, bc1), tf.add(tf.sqrt(tf.div(v1, bc2)), eps));
        m.assign(m1);
        v.assign(v1);
        p.assign(tf.sub(decayed, tf.mul(update, lr)));
      });
    });
  }

  /** Copies of the moments as m/<name> and v/<name>, for a checkpoint (the fused update changes the live ones in place). */
  state(): { step: number; moments: TensorSet } {
    const moments: TensorSet = new Map();
    for (const [n, p] of this.params) {
      moments.set(`m/${n}`, { shape: p.shape, values: (this.m.get(n)!.dataSync() as Float32Array).slice() });
      moments.set(`v/${n}`, { shape: p.shape, values: (this.v.get(n)!.dataSync() as Float32Array).slice() });
    }
    return { step: this.step, moments };
  }

  /** Run r's share of the moments of stacked runs, as a single run's optimizer would hold them. */
  runState(r: number): { step: number; moments: TensorSet } {
    const R = this.runs;
    if (R === null || r < 0 || r >= R) throw new Error(`no run ${r} in this optimizer (${R ?? 'not stacked'})`);
    const moments: TensorSet = new Map();
    for (const [n, p] of this.params) {
      for (const [kind, t] of [['m', this.m.get(n)!], ['v', this.v.get(n)!]] as const) {
        moments.set(`${kind}/${n}`, { shape: p.shape.slice(1), values: runSlice(t.dataSync() as Float32Array, R, r) });
      }
    }
    return { step: this.step, moments };
  }

  /**
   * Restore the step and moments. The arrays are copied: a tensor made from an array shares it on
   * cpu and native, where the fused update would then change the caller's state object in place.
   */
  load(state: { step: number; moments: TensorSet }): void {
    for (const [n, p] of this.params) {
      for (const kind of ['m', 'v'] as const) {
        const saved = state.moments.get(`${kind}/${n}`);
        if (!saved) throw new Error(`optimizer state lacks ${n}; the checkpoint was trained on other parameters`);
        if (saved.values.length !== p.size) throw new Error(`optimizer state ${kind}/${n} has ${saved.values.length} values, expected shape [${p.shape}]`);
      }
    }
    this.step = state.step;
    for (const [n, p] of this.params) {
      for (const [kind, target] of [['m', this.m.get(n)!], ['v', this.v.get(n)!]] as const) {
        const t = tf.tensor(state.moments.get(`${kind}/${n}`)!.values.slice(), p.shape, 'float32');
        target.assign(t);
        t.dispose();
      }
    }
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

/** Linear warmup, then cosine decay to minLr at the last step (nanoGPT's schedule). */
export function learningRate(step: number, o: { lr: number; minLr: number; warmup: number; steps: number }): number {
  if (step < o.warmup) return (o.lr * (step + 1)) / o.warmup;
  if (step >= o.steps) return o.minLr;
  const progress = (step - o.warmup) / Math.max(1, o.steps - o.warmup);
  return o.minLr + 0.5 * (1 + Math.cos(Math.PI * progress)) * (o.lr - o.minLr);
}
