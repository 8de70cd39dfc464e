/**
 * The training loop, in the manner of nanoGPT's train.py: warmup then cosine learning rate,
 * gradient accumulation, global-norm clipping, periodic evaluation and checkpoints, a progress
 * bar with loss, tokens/s and ETA, a NaN guard that stops without touching the last good
 * checkpoint, and exact resume (the batch source and the step are the whole loop state; dropout
 * masks are seeded by step).
 */
import * as tf from '@tensorflow/tfjs';
import { withPrecision, type Precision } from '../backend/product-precision.js';
import { stackBatches, type BatchSource } from '../data/batches.js';
import type { GPT, Hooks } from '../model/gpt.js';
import { microDropoutSeed, stepDropoutSeed } from './dropout-seeds.js';
import { AdamW, learningRate, NonFiniteError } from './optimizer.js';
import type { MetricRow } from './metrics.js';

export interface LoopOptions {
  steps: number;
  gradAccum: number;
  lr: number;
  minLr: number;
  warmup: number;
  /** Evaluate every this many steps (and at the end); 0 = only at the end. */
  evalInterval: number;
  /** Checkpoint every this many steps (and at the end). */
  checkpointInterval: number;
  logInterval: number;
  seed: number;
  /** How the training step's products run (evaluation always runs in fp32) [fp32]. */
  precision?: Precision;
  /** Edits applied to every training forward pass (and so to its backward pass), e.g. an ablation. */
  hooks?: Hooks;
}

export interface LoopState {
  step: number;
  tokens: number;
  elapsed: number;
  source: unknown;
}

export interface LoopCallbacks {
  /** Extra measurements at evaluation steps (validation loss, samples, inference gap...). */
  evaluate?: (step: number) => Promise<MetricRow> | MetricRow;
  /** Persist a checkpoint of the current state; `metrics` is the whole log so far. */
  save: (state: LoopState, metrics: MetricRow[]) => void;
  progress?: (step: number, total: number, fields: Record<string, string | number>) => void;
  log?: (line: string) => void;
  /** Polled between steps, after yielding to the event loop: true to save and stop (Ctrl-C). */
  shouldStop?: () => boolean;
}

export class TrainingDiverged extends Error {
  override name = 'TrainingDiverged';
}

export interface LoopResult {
  state: LoopState;
  metrics: MetricRow[];
  stopped: boolean;
}

export interface StepResult {
  /** Mean loss over the step's micro-batches. */
  loss: number;
  gradNorm: number;
  /** Trained tokens (non-zero loss weight). */
  tokens: number;
}

/** One optimizer step over `gradAccum` micro-batches; returns the mean loss and the gradient norm. */
export function trainStep(model: GPT, optimizer: AdamW, source: BatchSource, gradAccum: number, lr: number, dropoutSeed: number, hooks?: Hooks): StepResult {
  const vars = [...optimizer.params.values()];
  let total: Map<string, tf.Tensor> | null = null;
  let lossSum = 0;
  let tokens = 0;
  for (let micro = 0; micro < gradAccum; micro++) {
    const b = source.next();
    tokens += b.tokens;
    const { value, grads } = tf.tidy(() => {
      const ids = tf.tensor2d(b.ids, [b.batch, b.T], 'int32');
      const targets = tf.tensor2d(b.targets, [b.batch, b.T], 'int32');
      const weights = tf.tensor2d(b.weights, [b.batch, b.T], 'float32');
      const seed = model.config.dropout > 0 ? microDropoutSeed(dropoutSeed, micro) : undefined;
      return tf.variableGrads(() => tf.div(model.loss(ids, targets, weights, { dropoutSeed: seed, hooks }), gradAccum) as tf.Scalar, vars);
    });
    lossSum += value.dataSync()[0];
    value.dispose();
    total = accumulate(total, model, grads);
  }
  const grads = total!;
  try {
    if (!Number.isFinite(lossSum)) throw new NonFiniteError(`loss is ${lossSum}`);
    const { gradNorm } = optimizer.apply(grads, lr);
    return { loss: lossSum, gradNorm, tokens };
  } finally {
    for (const g of grads.values()) g.dispose();
  }
}

/** Gradients by parameter name, added to those of earlier micro-batches (which are disposed). */
function accumulate(total: Map<string, tf.Tensor> | null, model: GPT, grads: tf.NamedTensorMap): Map<string, tf.Tensor> {
  const named = new Map(Object.entries(grads).map(([k, g]) => [model.paramName(k), g]));
  if (total === null) return named;
  for (const [k, g] of named) {
    const sum = tf.add(total.get(k)!, g);
    total.get(k)!.dispose();
    g.dispose();
    total.set(k, sum);
  }
  return total;
}

/**
 * One optimizer step of stacked runs (GPT.stack), each on batches from its own source: one
 * forward and backward pass for all of them, each run's loss and clip its own.
 */
export function stackedTrainStep(model: GPT, optimizer: AdamW, sources: BatchSource[], gradAccum: number, lr: number): StepResult[] {
  if (model.config.dropout > 0) throw new Error('stacked runs train without dropout (their masks could not match those of the runs trained alone)');
  const R = sources.length;
  const vars = [...optimizer.params.values()];
  let total: Map<string, tf.Tensor> | null = null;
  const lossSum = new Array<number>(R).fill(0);
  const tokens = new Array<number>(R).fill(0);
  for (let micro = 0; micro < gradAccum; micro++) {
    const batches = sources.map((s) => s.next());
    batches.forEach((b, r) => (tokens[r] += b.tokens));
    const b = stackBatches(batches);
    const kept: { losses?: tf.Tensor } = {};
    const { value, grads } = tf.tidy(() => {
      const shape: [number, number, number] = [R, b.batch, b.T];
      const ids = tf.tensor3d(b.ids, shape, 'int32');
      const targets = tf.tensor3d(b.targets, shape, 'int32');
      const weights = tf.tensor3d(b.weights, shape, 'float32');
      return tf.variableGrads(() => tf.div(model.runLosses(ids, targets, weights, (l) => (kept.losses = l)), gradAccum) as tf.Scalar, vars);
    });
    const values = kept.losses!.dataSync();
    kept.losses!.dispose();
    value.dispose();
    values.forEach((v, r) => (lossSum[r] += v / gradAccum));
    total = accumulate(total, model, grads);
  }
  const grads = total!;
  try {
    const bad = lossSum.findIndex((l) => !Number.isFinite(l));
    if (bad >= 0) throw new NonFiniteError(`run ${bad}'s loss is ${lossSum[bad]}`);
    const { gradNorms } = optimizer.applyRuns(grads, lr);
    return lossSum.map((loss, r) => ({ loss, gradNorm: gradNorms[r], tokens: tokens[r] }));
  } finally {
    for (const g of grads.values()) g.dispose();
  }
}

export async function trainLoop(model: GPT, optimizer: AdamW, source: BatchSource, o: LoopOptions, cb: LoopCallbacks, start: LoopState, metrics: MetricRow[]): Promise<LoopResult> {
  const r = await trainRuns(model, optimizer, [{ source, start, metrics, evaluate: cb.evaluate, save: cb.save, log: cb.log }], o, cb);
  return { state: r.states[0], metrics: r.metrics[0], stopped: r.stopped };
}

/** One run of a loop: its batches, where it starts, its log so far and its own callbacks. */
export interface LoopRun {
  source: BatchSource;
  start: LoopState;
  metrics: MetricRow[];
  evaluate?: LoopCallbacks['evaluate'];
  save: LoopCallbacks['save'];
  log?: (line: string) => void;
}

export interface RunsResult {
  states: LoopState[];
  metrics: MetricRow[][];
  stopped: boolean;
}

/** The step of one model (one run) or of stacked runs (one per source). */
function stepRuns(model: GPT, optimizer: AdamW, sources: BatchSource[], o: LoopOptions, lr: number, step: number): StepResult[] {
  if (model.runs === null) return [trainStep(model, optimizer, sources[0], o.gradAccum, lr, stepDropoutSeed(o.seed, step), o.hooks)];
  return stackedTrainStep(model, optimizer, sources, o.gradAccum, lr);
}

/**
 * The loop over one model, or over stacked runs that share every setting but their batches: one
 * step count, schedule and checkpoint cadence; each run keeps its own tokens, losses, gradient
 * norms, evaluations and checkpoints (exactly what it would log and save alone).
 */
export async function trainRuns(model: GPT, optimizer: AdamW, runs: LoopRun[], o: LoopOptions, cb: Pick<LoopCallbacks, 'progress' | 'shouldStop'>): Promise<RunsResult> {
  const R = runs.length;
  if ((model.runs ?? 1) !== R) throw new Error(`${R} runs for a model of ${model.runs ?? 1}`);
  const steps = new Set(runs.map((r) => r.start.step));
  if (steps.size !== 1) throw new Error(`stacked runs must start at one step, got ${[...steps].join(', ')}`);
  const states: LoopState[] = runs.map((r) => ({ ...r.start }));
  let step = states[0].step;
  const windowLoss = new Array<number>(R).fill(0);
  const windowTokens = new Array<number>(R).fill(0);
  let windowSteps = 0;
  let windowStart = performance.now();
  const runStart = performance.now();
  const elapsedBefore = runs.map((r) => r.start.elapsed);
  let lastGradNorm = new Array<number>(R).fill(0);
  let stopped = false;
  const snapshot = (r: number): LoopState => ({ ...states[r], step, elapsed: elapsedBefore[r] + (performance.now() - runStart) / 1000, source: runs[r].source.state() });

  while (step < o.steps) {
    const lr = learningRate(step, o);
    let results: StepResult[];
    try {
      results = withPrecision(o.precision ?? 'fp32', () => stepRuns(model, optimizer, runs.map((r) => r.source), o, lr, step));
    } catch (err) {
      if (err instanceof NonFiniteError) {
        throw new TrainingDiverged(`training diverged at step ${step + 1} (${err.message}); the last good checkpoint was kept; lower --lr or raise --warmup`);
      }
      throw err;
    }
    step += 1;
    results.forEach((x, r) => {
      states[r].tokens += x.tokens;
      windowLoss[r] += x.loss;
      windowTokens[r] += x.tokens;
    });
    windowSteps += 1;
    lastGradNorm = results.map((x) => x.gradNorm);

    const isLast = step === o.steps;
    const isEval = isLast || (o.evalInterval > 0 && step % o.evalInterval === 0);
    const isLog = isEval || step % o.logInterval === 0;
    if (isLog) {
      const now = performance.now();
      const seconds = (now - windowStart) / 1000;
      for (let r = 0; r < R; r++) {
        const row: MetricRow = {
          step,
          tokens: states[r].tokens,
          loss: windowLoss[r] / windowSteps,
          lr,
          grad_norm: lastGradNorm[r],
          tokens_per_s: windowTokens[r] / Math.max(seconds, 1e-9),
          elapsed_s: elapsedBefore[r] + (now - runStart) / 1000,
        };
        if (isEval && runs[r].evaluate) Object.assign(row, await runs[r].evaluate!(step));
        runs[r].metrics.push(row);
        if (isEval) runs[r].log?.(formatEvalRow(row));
      }
      const allTokens = windowTokens.reduce((a, b) => a + b, 0);
      cb.progress?.(step, o.steps, {
        loss: (windowLoss.reduce((a, b) => a + b, 0) / (R * windowSteps)).toFixed(4),
        'tok/s': Math.round(allTokens / Math.max(seconds, 1e-9)),
        eta: formatSeconds((seconds / windowSteps) * (o.steps - step)),
      });
      windowLoss.fill(0);
      windowTokens.fill(0);
      windowSteps = 0;
      windowStart = performance.now();
    }
    // Let signal handlers (Ctrl-C, SIGTERM) and timers run between steps: a step is synchronous.
    await new Promise<void>((res) => setImmediate(res));
    const stopNow = cb.shouldStop?.() ?? false;
    if (isLast || stopNow || (o.checkpointInterval > 0 && step % o.checkpointInterval === 0)) {
      const pause = performance.now();
      runs.forEach((run, r) => run.save(snapshot(r), run.metrics));
      // Do not count checkpoint writing as training time in tokens/s.
      windowStart += performance.now() - pause;
    }
    if (stopNow && !isLast) {
      stopped = true;
      break;
    }
  }
  return { states: runs.map((_, r) => snapshot(r)), metrics: runs.map((r) => r.metrics), stopped };
}

/** A duration as 42s, 3m05s or 1h07m, rounded to its last unit before it is split (179.6 s is 3m00s, not 2m60s). */
export function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const two = (n: number) => String(n).padStart(2, '0');
  const secs = Math.round(s);
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m${two(secs % 60)}s`;
  const mins = Math.round(s / 60);
  return `${Math.floor(mins / 60)}h${two(mins % 60)}m`;
}

function formatEvalRow(row: MetricRow): string {
  const parts = [`step ${row.step}`];
  for (const [k, v] of Object.entries(row)) {
    if (['step', 'lr', 'tokens', 'elapsed_s', 'grad_norm'].includes(k) || typeof v !== 'number') continue;
    parts.push(`${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`);
  }
  return parts.join(' | ');
}
